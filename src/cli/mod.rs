//! The command line: subcommands and their own flags. Settings shared by `fetch` and
//! `mount` come from `config` so flags, variables and config keys stay one list.

pub mod config_check;
#[cfg(feature = "dev-gateway")]
mod dev_gateway;
pub mod extras;
pub mod manual;

#[cfg(feature = "dev-gateway")]
pub use dev_gateway::{BackendArgs, DevGatewayArgs, NamedSecret};

use crate::config::FetchSettings;
use crate::render::Format;
use clap::{Parser, Subcommand};

/// Which build this is, for `--version`: the shipped one has no gateway emulator.
#[cfg(feature = "dev-gateway")]
macro_rules! build_kind {
    () => {
        "development build with the built-in gateway"
    };
}
#[cfg(not(feature = "dev-gateway"))]
macro_rules! build_kind {
    () => {
        "production build"
    };
}

/// What `--version` prints after the name: the version, the build, the commit and the
/// target, so a bug report says exactly which binary (commit and target come from
/// build.rs; "unknown" when built without git).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    build_kind!(),
    ", commit ",
    env!("S3CREDSFS_COMMIT"),
    ", ",
    env!("S3CREDSFS_TARGET"),
    ")"
);

/// Always-current temporary S3 credentials from an HPE Cray EX (CSM) gateway.
#[derive(Parser, Debug)]
#[command(name = "s3credsfs", version = VERSION, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Get credentials once and print them (usable as an AWS `credential_process`).
    #[command(after_help = with_settings_note(FETCH_EXAMPLES))]
    Fetch(FetchArgs),
    /// Mount a directory whose files always hold current credentials.
    #[command(after_help = with_settings_note(MOUNT_EXAMPLES))]
    Mount(crate::mount::MountArgs),
    /// Unmount (stale mounts too) and stop the daemon.
    #[command(
        after_help = "Examples:\n  s3credsfs unmount                  # ~/.s3creds\n  s3credsfs unmount /run/user/1000/s3creds"
    )]
    Unmount(crate::mount::MountpointArgs),
    /// Show a mount's state: expiry, last refresh, last error, every profile, the log.
    #[command(
        after_help = "Examples:\n  s3credsfs status                   # ~/.s3creds\n  s3credsfs status --json | jq .profiles"
    )]
    Status(crate::mount::StatusArgs),
    /// Refresh a mounted profile now, with a new login (after a password or role change).
    Refresh(crate::mount::refresh::RefreshArgs),
    /// Run a command with current credentials in its environment (like `aws-vault exec`).
    #[command(after_help = with_settings_note(EXEC_EXAMPLES))]
    Exec(crate::exec::ExecArgs),
    /// Check the configuration: every profile, and with --try each gateway.
    Config(config_check::ConfigArgs),
    /// Print a shell completion script (bash, zsh, fish).
    #[command(
        after_help = "Examples:\n  s3credsfs completions bash > ~/.local/share/bash-completion/completions/s3credsfs\n  s3credsfs completions zsh > ~/.zfunc/_s3credsfs"
    )]
    Completions(extras::CompletionsArgs),
    /// Print the manual page, or write one page per subcommand with --out.
    #[command(
        after_help = "Examples:\n  s3credsfs man | man -l -\n  s3credsfs man --out ~/.local/share/man/man1"
    )]
    Man(extras::ManArgs),
    /// Run the built-in gateway emulator (development and tests only).
    #[cfg(feature = "dev-gateway")]
    #[command(
        after_help = "Examples:\n  s3credsfs dev-gateway --listen 127.0.0.1:9443 --lifetime 2m\n  PW=dev-password s3credsfs fetch --api-gateway http://127.0.0.1:9443 --username dev --password-env PW"
    )]
    DevGateway(DevGatewayArgs),
}

const FETCH_EXAMPLES: &str = "Examples:
  s3credsfs fetch --username vers --password-file ~/.vers-password -f env
  s3credsfs fetch --profile tds -f credentials     # a [profiles.tds] table of the config file";

#[cfg(feature = "dev-gateway")]
const MOUNT_EXAMPLES: &str = "Examples:
  s3credsfs mount --dev                  # the built-in gateway: a demo without a Cray system
  s3credsfs mount                        # ~/.s3creds, settings from ~/.config/s3credsfs/config.toml
  s3credsfs mount --foreground           # under systemd: stay attached, log to stderr";

/// The production build has no `--dev` to show.
#[cfg(not(feature = "dev-gateway"))]
const MOUNT_EXAMPLES: &str = "Examples:
  s3credsfs mount                        # ~/.s3creds, settings from ~/.config/s3credsfs/config.toml
  s3credsfs mount --foreground           # under systemd: stay attached, log to stderr";

const EXEC_EXAMPLES: &str = "Examples:
  s3credsfs exec -- aws s3 ls                        # keys from ~/.s3creds, else fetched
  s3credsfs exec --profile tds --container-endpoint -- python3 long_job.py";

/// Examples, then where settings come from.
fn with_settings_note(examples: &str) -> String {
    format!("{examples}\n\n{}", crate::config::SETTINGS_NOTE)
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
