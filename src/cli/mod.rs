//! The command line: subcommands and their own flags. Settings shared by `fetch` and
//! `mount` come from `config` so flags, variables and config keys stay one list.

#[cfg(feature = "dev-gateway")]
mod dev_gateway;
pub mod extras;

#[cfg(feature = "dev-gateway")]
pub use dev_gateway::{BackendArgs, DevGatewayArgs, NamedSecret};

use crate::config::FetchSettings;
use crate::render::Format;
use clap::{Parser, Subcommand};

/// Always-current temporary S3 credentials from an HPE Cray EX (CSM) gateway.
#[derive(Parser, Debug)]
#[command(name = "s3credsfs", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Get credentials once and print them (usable as an AWS `credential_process`).
    Fetch(FetchArgs),
    /// Mount a directory whose files always hold current credentials.
    Mount(crate::mount::MountArgs),
    /// Unmount (stale mounts too) and stop the daemon.
    Unmount(crate::mount::MountpointArgs),
    /// Show a mount's state: expiry, last refresh, last error.
    Status(crate::mount::StatusArgs),
    /// Print a shell completion script (bash, zsh, fish).
    Completions(extras::CompletionsArgs),
    /// Print the manual page, or write one page per subcommand with --out.
    Man(extras::ManArgs),
    /// Run the built-in gateway emulator (development and tests only).
    #[cfg(feature = "dev-gateway")]
    DevGateway(DevGatewayArgs),
}

/// `fetch`'s own flags plus the shared settings.
#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    /// Output format
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Json)]
    pub format: Format,
    #[command(flatten)]
    pub settings: FetchSettings,
}
