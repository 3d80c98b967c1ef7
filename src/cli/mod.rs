//! The command line: subcommands and their own flags (clap definitions only), and what is
//! generated from them (completions, manual pages). The commands' bodies are in
//! `crate::commands`. Settings shared by `fetch` and `mount` come from `config` so flags,
//! variables and config keys stay one list.

mod args;
#[cfg(feature = "dev-gateway")]
mod dev_gateway;
pub mod extras;
pub mod manual;

pub use args::{
    CheckArgs, ConfigAction, ConfigArgs, ExecArgs, FetchArgs, MountArgs, MountpointArgs,
    RefreshArgs, StatusArgs,
};
#[cfg(feature = "dev-gateway")]
pub use dev_gateway::{BackendArgs, DevGatewayArgs, NamedSecret};

use clap::{Parser, Subcommand};
use std::ffi::OsString;

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
    Mount(MountArgs),
    /// Unmount (stale mounts too) and stop the daemon.
    #[command(
        after_help = "Examples:\n  s3credsfs unmount                  # ~/.s3creds\n  s3credsfs unmount /run/user/1000/s3creds"
    )]
    Unmount(MountpointArgs),
    /// Show a mount's state: expiry, last refresh, last error, every profile, the log.
    #[command(
        after_help = "Examples:\n  s3credsfs status                   # ~/.s3creds\n  s3credsfs status --json | jq .profiles"
    )]
    Status(StatusArgs),
    /// Refresh a mounted profile now, with a new login (after a password or role change).
    Refresh(RefreshArgs),
    /// Run a command with current credentials in its environment (like `aws-vault exec`).
    #[command(after_help = with_settings_note(EXEC_EXAMPLES))]
    Exec(ExecArgs),
    /// Check the configuration: every profile, and with --try each gateway.
    Config(ConfigArgs),
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

/// What a production build says to `dev-gateway` and `mount --dev`: they need the
/// emulator, which only development builds have.
pub const DEV_ONLY: &str = "the built-in gateway emulator (`mount --dev`, `dev-gateway`) is \
only in development builds, and this is a production build; build one from the source with \
`cargo build` (its default features include the emulator), or run `cargo run -- mount --dev`";

impl Cli {
    /// Parses the process's arguments, exiting with clap's message on a usage error;
    /// a production build asked for the emulator says [`DEV_ONLY`] instead of clap's
    /// "unexpected argument".
    pub fn parse_args() -> Cli {
        let args: Vec<OsString> = std::env::args_os().collect();
        match Cli::try_parse_from(&args) {
            Ok(cli) => cli,
            Err(e) if wants_missing_emulator(&args, &e) => {
                eprintln!("s3credsfs: error: {DEV_ONLY}");
                std::process::exit(2)
            }
            Err(e) => e.exit(),
        }
    }
}

/// Whether clap refused `args` because they ask for the emulator this build lacks
/// (`dev-gateway`, or `mount ... --dev`). The emulator's flags stay out of a production
/// build's parser, help and completions: the refusal is recognised here instead.
pub fn wants_missing_emulator(args: &[OsString], err: &clap::Error) -> bool {
    use clap::error::ErrorKind;
    if cfg!(feature = "dev-gateway")
        || !matches!(
            err.kind(),
            ErrorKind::UnknownArgument | ErrorKind::InvalidSubcommand
        )
    {
        return false;
    }
    let words: Vec<&str> = args
        .iter()
        .skip(1)
        .map_while(|a| a.to_str())
        .take_while(|a| *a != "--")
        .collect();
    match words.iter().position(|w| !w.starts_with('-')) {
        Some(i) if words[i] == "dev-gateway" => true,
        Some(i) if words[i] == "mount" => words[i + 1..]
            .iter()
            .any(|w| *w == "--dev" || w.starts_with("--dev=")),
        _ => false,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn words(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    /// The production build's answer, compiled (and run) only without the emulator:
    /// `cargo test --no-default-features --lib cli::`.
    #[cfg(not(feature = "dev-gateway"))]
    #[test]
    fn a_production_build_says_where_the_emulator_is() {
        for (args, wants) in [
            (&["s3credsfs", "mount", "--dev"][..], true),
            (
                &["s3credsfs", "mount", "/mnt/x", "--dev", "--lifetime", "2m"],
                true,
            ),
            (&["s3credsfs", "mount", "--dev=true"], true),
            (&["s3credsfs", "dev-gateway"], true),
            (
                &["s3credsfs", "dev-gateway", "--listen", "127.0.0.1:9443"],
                true,
            ),
            (&["s3credsfs", "mount", "--devv"], false),
            (&["s3credsfs", "fetch", "--dev"], false),
            (&["s3credsfs", "mount", "--bogus", "--", "--dev"], false),
            (&["s3credsfs", "dev-gatewy"], false),
        ] {
            let args = words(args);
            let err = Cli::try_parse_from(&args).unwrap_err();
            assert_eq!(wants_missing_emulator(&args, &err), wants, "{args:?}");
        }
    }

    /// With the emulator built in, its flags parse and nothing is explained away.
    #[cfg(feature = "dev-gateway")]
    #[test]
    fn a_development_build_has_the_emulator() {
        assert!(Cli::try_parse_from(["s3credsfs", "mount", "--dev"]).is_ok());
        assert!(Cli::try_parse_from(["s3credsfs", "dev-gateway"]).is_ok());
        let args = words(&["s3credsfs", "mount", "--dev", "--bogus"]);
        let err = Cli::try_parse_from(&args).unwrap_err();
        assert!(!wants_missing_emulator(&args, &err));
    }
}
