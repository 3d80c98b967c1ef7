//! The command line: subcommands and their own flags (clap definitions only), and what is
//! generated from them (completions, manual pages). The commands' bodies are in
//! `crate::commands`. Settings shared by `fetch` and `mount` come from `config` so flags,
//! variables and config keys stay one list.
//!
//! The children sit in one order, each importing only those below it: `extras` >
//! `command` > `args`, `dev_gateway`, and `manual`; this file only gathers them.

mod args;
mod command;
/// The emulator's flags (the `dev-gateway` feature); the emulator itself is `crate::dev`.
#[cfg(feature = "dev-gateway")]
pub mod dev_gateway;
pub mod extras;
pub mod manual;

pub use args::{
    CheckArgs, CompletionsArgs, ConfigAction, ConfigArgs, ExecArgs, FetchArgs, ManArgs, MountArgs,
    MountpointArgs, RefreshArgs, Shell, StatusArgs,
};
pub use command::{wants_missing_emulator, Cli, Command, MountCommand, DEV_ONLY, VERSION};
#[cfg(feature = "dev-gateway")]
pub use dev_gateway::{BackendArgs, DevArgs, DevGatewayArgs};
