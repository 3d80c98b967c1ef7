//! The mount lifecycle's own errors: the machinery around the pipeline (a pipe, fork, the
//! runtime, signal handlers, the FUSE session, unmounting) failed, and neither a setting
//! nor the gateway is at fault. Each is one sentence that keeps the system error behind it
//! as its `source()`; the pipeline's own errors pass through with their sentence unchanged.

use crate::exit_status::ExitStatus;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Why `mount`, `unmount` or `status` failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A setting, the mountpoint's checks or the gateway: the pipeline's sentence as is.
    #[error(transparent)]
    Pipeline(#[from] crate::error::Error),

    /// The readiness pipe between the background daemon and its parent.
    #[error("cannot create a pipe ({0})")]
    Pipe(#[source] io::Error),

    /// Going to the background.
    #[error("cannot fork ({0})")]
    Fork(#[source] io::Error),

    /// The background daemon kept silent past the deadline (it was sent SIGTERM).
    #[error("the background daemon did not report within {}s; run with --foreground to see what it is doing", .0.as_secs())]
    NoVerdict(Duration),

    /// Waiting for or reading the daemon's verdict failed.
    #[error("cannot read the daemon's verdict ({0})")]
    Verdict(#[source] io::Error),

    /// The daemon closed the pipe without a verdict (it crashed or was killed).
    #[error("the background daemon exited before mounting; run with --foreground to see why")]
    DaemonVanished,

    /// The background daemon's own sentence and exit status, relayed across the pipe (its
    /// cause stayed in the other process), so the parent exits as the daemon would have.
    #[error("{message}")]
    Daemon { message: String, status: ExitStatus },

    /// The mount failed (the default profile's gateway, FUSE) after Keycloak refused
    /// another profile's login at the first fetch. The exit status is the refusal's: a
    /// supervisor that restarted the mount for the failure would log in with the refused
    /// password on every start, and Keycloak would lock the account.
    #[error("{}; also, profile {}'s login was refused: {}", .0.0, .0.1, .0.2)]
    AlsoRefused(Box<(MountError, String, crate::error::Error)>),

    /// `refresh` could not get a refresh done: the daemon's or the channel's sentence.
    #[error("{0}")]
    Refresh(String),

    /// The daemon's log file could not be handed to the logger.
    #[error("cannot use the log file ({0}); check --log-file")]
    LogFile(#[source] io::Error),

    /// The tokio runtime for HTTP and timers.
    #[error("cannot start the async runtime ({0})")]
    Runtime(#[source] io::Error),

    /// SIGTERM, SIGINT or SIGHUP handlers.
    #[error("cannot install signal handlers ({0})")]
    Signals(#[source] io::Error),

    /// The kernel (or fusermount3) refused the mount.
    #[error("cannot mount on {} ({source}); check that /dev/fuse exists and that you own the directory", path.display())]
    Mount { path: PathBuf, source: io::Error },

    /// The FUSE session stopped with an error rather than by being unmounted.
    #[error("the FUSE session ended with an error ({0})")]
    Session(#[source] io::Error),

    /// The control socket `s3credsfs refresh` talks to.
    #[error("cannot open the control socket that `s3credsfs refresh` uses ({0}); check the limit on open files (`ulimit -n`)")]
    Control(#[source] io::Error),

    /// The container credentials endpoint (`--container-endpoint`).
    #[error("cannot start the container credentials endpoint ({0})")]
    ContainerEndpoint(#[source] io::Error),

    /// A relative mountpoint needs the current directory.
    #[error("cannot find the current directory ({0})")]
    Cwd(#[source] io::Error),

    /// umount2 failed as root.
    #[error("cannot unmount {} ({source}); try `umount -l {}`", path.display(), path.display())]
    Unmount { path: PathBuf, source: io::Error },

    /// The setuid helper failed to unmount for a user other than root.
    #[error("cannot unmount {} ({}: {source}); only its owner or root can unmount it", path.display(), helper.display())]
    HelperUnmount {
        path: PathBuf,
        helper: PathBuf,
        source: io::Error,
    },

    /// `--dev`: the built-in gateway's loopback port.
    #[error("cannot listen on loopback for --dev ({0})")]
    DevListen(#[source] io::Error),

    /// `--dev`: the built-in gateway itself.
    #[error("cannot start the built-in gateway ({0})")]
    DevGateway(#[source] io::Error),
}

impl MountError {
    /// The process's exit status when this error ends a command.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            MountError::Pipeline(e) => e.exit_status(),
            MountError::Daemon { status, .. } => *status,
            MountError::AlsoRefused(both) => both.2.exit_status(),
            MountError::Mount { .. } => ExitStatus::Fuse,
            MountError::LogFile(_) => ExitStatus::Config,
            MountError::Refresh(_) | MountError::DaemonVanished | MountError::NoVerdict(_) => {
                ExitStatus::Failure
            }
            MountError::Pipe(_)
            | MountError::Fork(_)
            | MountError::Verdict(_)
            | MountError::Runtime(_)
            | MountError::Signals(_)
            | MountError::Session(_)
            | MountError::ContainerEndpoint(_)
            | MountError::Control(_)
            | MountError::Cwd(_)
            | MountError::Unmount { .. }
            | MountError::HelperUnmount { .. }
            | MountError::DevListen(_)
            | MountError::DevGateway(_) => ExitStatus::System,
        }
    }
}

/// Shorthand for results of the mount lifecycle.
pub type Result<T> = std::result::Result<T, MountError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_sentences_pass_through_and_system_causes_stay_sources() {
        let config = crate::error::Error::Config("bad flag; fix it".into());
        let wrapped = MountError::from(config.clone());
        assert_eq!(wrapped.to_string(), config.to_string());
        let pipe = MountError::Pipe(io::Error::from_raw_os_error(libc::EMFILE));
        assert_eq!(
            pipe.to_string(),
            format!(
                "cannot create a pipe ({})",
                io::Error::from_raw_os_error(libc::EMFILE)
            )
        );
        let source = std::error::Error::source(&pipe)
            .and_then(|s| s.downcast_ref::<io::Error>())
            .expect("the io::Error is the source");
        assert_eq!(source.raw_os_error(), Some(libc::EMFILE));
    }

    #[test]
    fn each_error_exits_with_its_class() {
        let refused = crate::error::Error::AuthRejected {
            url: "u".into(),
            who: "the password for user \"vers\"".into(),
            description: "Invalid user credentials".into(),
            fix: "check it".into(),
        };
        assert_eq!(
            MountError::from(refused).exit_status(),
            ExitStatus::LoginRefused
        );
        let config = crate::error::Error::Config("bad".into());
        assert_eq!(MountError::from(config).exit_status(), ExitStatus::Config);
        let mount = MountError::Mount {
            path: "/m".into(),
            source: io::Error::from_raw_os_error(libc::ENODEV),
        };
        assert_eq!(mount.exit_status(), ExitStatus::Fuse);
        assert_eq!(
            MountError::Fork(io::Error::from_raw_os_error(libc::EAGAIN)).exit_status(),
            ExitStatus::System
        );
        let relayed = MountError::Daemon {
            message: "m".into(),
            status: ExitStatus::Gateway,
        };
        assert_eq!(relayed.exit_status(), ExitStatus::Gateway);
    }
}
