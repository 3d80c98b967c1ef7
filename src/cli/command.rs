//! The parser: the subcommands (`Cli`, `Command`) and the emulator's refusal in a
//! production build. Each subcommand's flags are in `args` (and `dev_gateway`).

use super::args::{
    CompletionsArgs, ConfigArgs, ExecArgs, FetchArgs, ManArgs, MountArgs, MountpointArgs,
    RefreshArgs, StatusArgs,
};
#[cfg(feature = "dev-gateway")]
use super::dev_gateway;
use crate::build_info;
use clap::{Parser, Subcommand};
use std::ffi::OsString;

/// What `--version` prints after the name: the version, the build, the commit and the
/// target, so a bug report says exactly which binary (build, commit and target come from
/// build.rs; "unknown" when built without git).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("BUILD_KIND"),
    ", commit ",
    env!("BUILD_COMMIT"),
    ", ",
    env!("BUILD_TARGET"),
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
    #[command(after_help = with_settings_note(&mount_examples()))]
    Mount(MountCommand),
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
    Completions(CompletionsArgs),
    /// Print the manual page, or write one page per subcommand with --out.
    #[command(
        after_help = "Examples:\n  s3credsfs man | man -l -\n  s3credsfs man --out ~/.local/share/man/man1"
    )]
    Man(ManArgs),
    /// Run the built-in gateway emulator (development and tests only).
    #[cfg(feature = "dev-gateway")]
    #[command(
        after_help = "Examples:\n  s3credsfs dev-gateway --listen 127.0.0.1:9443 --lifetime 2m\n  PW=dev-password s3credsfs fetch --api-gateway http://127.0.0.1:9443 --username dev --password-env PW"
    )]
    DevGateway(dev_gateway::DevGatewayArgs),
}

/// `mount`'s flags, and in a build with the emulator `--dev` and the built-in gateway's.
#[derive(clap::Args, Debug)]
pub struct MountCommand {
    #[command(flatten)]
    pub mount: MountArgs,
    /// `--dev` and the built-in gateway's flags, last in the help.
    #[cfg(feature = "dev-gateway")]
    #[command(flatten)]
    pub dev: dev_gateway::DevArgs,
}

/// What a production build says to `dev-gateway` and `mount --dev`: they need the
/// emulator, which only development builds have.
pub const DEV_ONLY: &str = "the built-in gateway emulator (`mount --dev`, `dev-gateway`) is \
only in development builds, and this is a production build; from the source, run the demo with \
`cargo demo` or build one with `cargo build --features dev-gateway`";

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
    !build_info::EMULATOR && asks_for_emulator(args, err.kind())
}

/// Whether a refusal of this kind, of `args`, is one of a parser without the emulator's
/// flags refusing them.
fn asks_for_emulator(args: &[OsString], kind: clap::error::ErrorKind) -> bool {
    use clap::error::ErrorKind;
    if !matches!(
        kind,
        ErrorKind::UnknownArgument | ErrorKind::InvalidSubcommand
    ) {
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

const MOUNT_EXAMPLES: &str = "Examples:
  s3credsfs mount                        # ~/.s3creds, settings from ~/.config/s3credsfs/config.toml
  s3credsfs mount --foreground           # under systemd: stay attached, log to stderr";

/// `mount`'s examples, first `--dev` in a build that has it (the production build has no
/// `--dev` to show).
fn mount_examples() -> String {
    const DEV: &str =
        "\n  s3credsfs mount --dev                  # the built-in gateway: a demo without a Cray system";
    match MOUNT_EXAMPLES.split_once('\n') {
        Some((title, rest)) if build_info::EMULATOR => format!("{title}{DEV}\n{rest}"),
        _ => MOUNT_EXAMPLES.to_owned(),
    }
}

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

    /// What a parser without the emulator refuses (the kind of refusal it gives each:
    /// the production binary's own answers are checked on the package, in
    /// tests/it/packaging.rs) is explained only when it asks for the emulator.
    #[test]
    fn a_refusal_of_the_emulators_flags_says_where_the_emulator_is() {
        use clap::error::ErrorKind::{InvalidSubcommand, UnknownArgument};
        for (args, kind, wants) in [
            (&["s3credsfs", "mount", "--dev"][..], UnknownArgument, true),
            (
                &["s3credsfs", "mount", "/mnt/x", "--dev", "--lifetime", "2m"],
                UnknownArgument,
                true,
            ),
            (&["s3credsfs", "mount", "--dev=true"], UnknownArgument, true),
            (&["s3credsfs", "dev-gateway"], InvalidSubcommand, true),
            (
                &["s3credsfs", "dev-gateway", "--listen", "127.0.0.1:9443"],
                InvalidSubcommand,
                true,
            ),
            (&["s3credsfs", "mount", "--devv"], UnknownArgument, false),
            (&["s3credsfs", "fetch", "--dev"], UnknownArgument, false),
            (
                &["s3credsfs", "mount", "--bogus", "--", "--dev"],
                UnknownArgument,
                false,
            ),
            (&["s3credsfs", "dev-gatewy"], InvalidSubcommand, false),
        ] {
            assert_eq!(asks_for_emulator(&words(args), kind), wants, "{args:?}");
        }
        let args = words(&["s3credsfs", "mount", "--dev"]);
        let missing = clap::error::ErrorKind::MissingRequiredArgument;
        assert!(!asks_for_emulator(&args, missing));
    }

    #[test]
    fn a_commands_help_ends_with_its_examples_then_where_settings_come_from() {
        use clap::CommandFactory;
        let mut cli = Cli::command();
        for name in ["fetch", "mount", "exec"] {
            let command = cli.find_subcommand_mut(name).unwrap();
            let after = command.get_after_help().unwrap().to_string();
            assert!(
                after.starts_with(&format!("Examples:\n  s3credsfs {name} ")),
                "{after}"
            );
            assert!(
                after.ends_with(&format!("\n\n{}", crate::config::SETTINGS_NOTE)),
                "{after}"
            );
        }
    }

    /// With the emulator built in (every test build), its flags parse, the help shows
    /// `--dev`, and nothing is explained away.
    #[test]
    fn a_development_build_has_the_emulator() {
        const { assert!(build_info::EMULATOR) };
        assert!(Cli::try_parse_from(["s3credsfs", "mount", "--dev"]).is_ok());
        assert!(Cli::try_parse_from(["s3credsfs", "dev-gateway"]).is_ok());
        let args = words(&["s3credsfs", "mount", "--dev", "--bogus"]);
        let err = Cli::try_parse_from(&args).unwrap_err();
        assert!(!wants_missing_emulator(&args, &err));
        let examples = mount_examples();
        assert!(
            examples.starts_with("Examples:\n  s3credsfs mount --dev "),
            "{examples}"
        );
        assert!(examples.ends_with(MOUNT_EXAMPLES.lines().last().unwrap()));
    }
}
