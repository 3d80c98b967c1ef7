//! Each subcommand's own flags and arguments (clap definitions only; the commands that
//! take them are in `crate::commands`). The settings several share (`FetchSettings`,
//! `MountSettings`) come from `config`, so flags, variables and config keys stay one list.

use crate::config::{FetchSettings, MountSettings};
use crate::render::Format;
use std::ffi::OsString;
use std::path::PathBuf;

/// `fetch`'s own flags plus the shared settings.
#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    /// Output format
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Json)]
    pub format: Format,
    #[command(flatten)]
    pub settings: FetchSettings,
}

/// `mount`'s own flags plus the shared settings.
#[derive(clap::Args, Debug)]
pub struct MountArgs {
    /// Where to mount [default: ~/.s3creds, created with mode 0700]
    pub mountpoint: Option<PathBuf>,
    /// Stay attached and log to stderr (for systemd and tests)
    #[arg(long, help_heading = "Mount")]
    pub foreground: bool,
    /// Mount without fetching; credentials come on the first read
    #[arg(long, help_heading = "Mount")]
    pub lazy: bool,
    /// Also serve the container credentials endpoint on a random loopback port (see the
    /// `container-env` file)
    #[arg(long, help_heading = "Mount")]
    pub container_endpoint: bool,
    #[command(flatten)]
    pub settings: MountSettings,
}

/// `unmount`'s and `status`'s arguments.
#[derive(clap::Args, Debug)]
pub struct MountpointArgs {
    /// The mountpoint [default: ~/.s3creds]
    pub mountpoint: Option<PathBuf>,
}

/// `status`'s arguments.
#[derive(clap::Args, Debug)]
#[command(after_help = STATUS_HELP)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: MountpointArgs,
    /// Print the status file's JSON instead of the summary (the fields are listed in the
    /// README)
    #[arg(long, conflicts_with = "check")]
    pub json: bool,
    /// Print one line for monitoring (Nagios/Icinga plugin convention) and exit 0 OK,
    /// 1 WARNING, 2 CRITICAL or 3 UNKNOWN
    #[arg(long)]
    pub check: bool,
    /// Judge only this profile (with --json, print only its document)
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
}

const STATUS_HELP: &str = "\
Exit status, in every form: 0 OK (fresh), 1 WARNING (expiring soon, or a profile's refresh
fails while its credentials are still valid), 2 CRITICAL (a profile has no valid
credentials, or the daemon is gone), 3 UNKNOWN (nothing of yours mounted there).

Examples:
  s3credsfs status                          # ~/.s3creds
  s3credsfs status --json | jq .profiles
  s3credsfs status --check --profile tds    # a monitoring check: one line, exit 0-3";

/// `refresh`'s arguments.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  s3credsfs refresh                  # the default profile of ~/.s3creds\n  s3credsfs refresh --profile tds    # after changing the tds password or roles"
)]
pub struct RefreshArgs {
    /// The mountpoint [default: ~/.s3creds]
    pub mountpoint: Option<PathBuf>,
    /// The profile to refresh [default: the mount's default profile]
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
}

/// `exec`'s own flags, the shared settings, and the command.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// The mount whose credentials to use when it serves the profile [default: ~/.s3creds]
    #[arg(long, value_name = "PATH")]
    pub mountpoint: Option<PathBuf>,
    /// Give the command a private container credentials endpoint instead of keys, so that
    /// a long-running command renews its credentials by itself
    #[arg(long)]
    pub container_endpoint: bool,
    #[command(flatten)]
    pub settings: FetchSettings,
    /// The command to run, and its arguments (after `--`)
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// `config`'s actions.
#[derive(clap::Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: ConfigAction,
}

/// What to do with the configuration.
#[derive(clap::Subcommand, Debug)]
pub enum ConfigAction {
    /// Validate the configuration and every profile; with --try, also log in and get
    /// credentials for each (nothing is kept)
    #[command(
        after_help = "Examples:\n  s3credsfs config check                 # settings, files, logins of every profile\n  s3credsfs config check --try           # and whether each gateway issues credentials"
    )]
    Check(CheckArgs),
}

/// `config check`'s flags plus the shared settings.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Also log in and call the STS for each profile
    #[arg(long = "try")]
    pub try_it: bool,
    /// Print one JSON document (its fields are listed in the README) instead of lines
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub settings: FetchSettings,
}

/// The shells a completion script can be written for (those a CSM node or a laptop runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

const COMPLETIONS_HELP: &str = "\
Where the script goes (the RPM and the tarball install these already):
  bash: /usr/share/bash-completion/completions/s3credsfs
        (one user: ~/.local/share/bash-completion/completions/s3credsfs)
  zsh:  /usr/share/zsh/site-functions/_s3credsfs (or any directory on $fpath, as _s3credsfs)
  fish: /usr/share/fish/vendor_completions.d/s3credsfs.fish
        (one user: ~/.config/fish/completions/s3credsfs.fish)
Example: s3credsfs completions bash > ~/.local/share/bash-completion/completions/s3credsfs";

/// `completions`' one argument.
#[derive(clap::Args, Debug)]
#[command(after_help = COMPLETIONS_HELP)]
pub struct CompletionsArgs {
    /// The shell to write the completion script for
    #[arg(value_enum)]
    pub shell: Shell,
}

const MAN_HELP: &str = "\
Without --out, prints the top-level page (s3credsfs.1), which lists the subcommands:
  s3credsfs man | gzip > /usr/share/man/man1/s3credsfs.1.gz
With --out, writes it, one page per subcommand (s3credsfs-mount.1, s3credsfs-fetch.1 ...)
and the config file's page (s3credsfs.toml.5, which belongs in man5) into DIR, as the RPM
and the tarball ship them:
  s3credsfs man --out /usr/local/share/man/man1 && mv /usr/local/share/man/man1/*.5 /usr/local/share/man/man5/";

/// `man`'s flags.
#[derive(clap::Args, Debug)]
#[command(after_help = MAN_HELP)]
pub struct ManArgs {
    /// Write s3credsfs.1, one page per subcommand and s3credsfs.toml.5 into this directory
    /// instead of printing s3credsfs.1
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}
