//! The application's errors: why a command failed. The pipeline's own errors
//! ([`crate::error::Error`]: a setting, the gateway) pass through with their sentence
//! unchanged; the rest are the machinery around it (a pipe, fork, the runtime, signal
//! handlers, the FUSE session, unmounting) and the state of a mountpoint (nothing or
//! something else mounted there, a stale mount, a mount racing ours), none of which is a
//! setting's fault. Each is one sentence that keeps the system error behind it as its
//! `source()`, and [`AppError::exit_status`] is what the process exits with.

use crate::exit_status::ExitStatus;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
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
    AlsoRefused(Box<(AppError, String, crate::error::Error)>),

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

    /// `unmount`, `status` or `refresh` found nothing mounted at the path.
    #[error("nothing is mounted at {}; start it with `s3credsfs mount {}`", .0.display(), .0.display())]
    NothingMounted(PathBuf),

    /// The mount at the path lost its daemon.
    #[error("{} is a stale mount (its daemon died); run `s3credsfs unmount {}` or mount again", .0.display(), .0.display())]
    StaleMount(PathBuf),

    /// Another user's s3credsfs mount: never touched.
    #[error("{} is the s3credsfs mount of {owner}, not one of yours; leaving it alone (run this as that user)", path.display())]
    ForeignMount { path: PathBuf, owner: String },

    /// A mount of another filesystem: never touched.
    #[error("{} is a {fstype} mount, not s3credsfs; leaving it alone", path.display())]
    OtherMount { path: PathBuf, fstype: String },

    /// Our mount's `status` file could not be read.
    #[error("cannot read {}/status ({source})", path.display())]
    StatusUnreadable { path: PathBuf, source: io::Error },

    /// Our mount's `status` file is not the document the daemon writes.
    #[error("{}/status is not the expected JSON ({source})", path.display())]
    StatusNotJson {
        path: PathBuf,
        source: serde_json::Error,
    },

    /// `mount` on a path where something is mounted already; `ours` when it is an
    /// s3credsfs mount, which `unmount` clears.
    #[error("{} is already mounted ({fstype}); {}", path.display(), already_mounted_fix(path, *ours))]
    AlreadyMounted {
        path: PathBuf,
        fstype: String,
        ours: bool,
    },

    /// The mountpoint's directory could not be opened again to be claimed.
    #[error("cannot use {} as a mountpoint ({source})", path.display())]
    MountpointUnusable { path: PathBuf, source: io::Error },

    /// Another `mount` holds the mountpoint's lock right now.
    #[error("another s3credsfs is mounting on {} right now; wait for it, or stop it with `s3credsfs unmount {}`", .0.display(), .0.display())]
    MountpointClaimed(PathBuf),

    /// Another `mount` mounted on the path between our checks and our claim.
    #[error("{} was mounted by another s3credsfs a moment ago; run `s3credsfs unmount {}` first, or choose another directory", .0.display(), .0.display())]
    MountedMeanwhile(PathBuf),

    /// A user other than root cannot mount: the FUSE device is missing.
    #[error("{} does not exist, so FUSE cannot be used; load the fuse module (`modprobe fuse`) or, in a container, pass the device in (`--device /dev/fuse`)", .0.display())]
    NoFuseDevice(PathBuf),

    /// A user other than root cannot mount: the FUSE device is not open to them.
    #[error("{} (mode {mode:04o}, owner uid {owner}) is not open to uid {uid}, and fusermount3 opens it as the calling user too, so this user cannot mount FUSE filesystems; ask an administrator to `chmod 0666 {}` (the usual mode) or mount as root", device.display(), device.display())]
    FuseDeviceClosed {
        device: PathBuf,
        mode: u32,
        owner: u32,
        uid: u32,
    },

    /// A user other than root cannot mount: the FUSE device failed otherwise.
    #[error("{} is not usable by uid {uid} ({source}); ask an administrator to make it readable and writable for you (`chmod 0666 {}` is the usual mode) or mount as root", device.display(), device.display())]
    FuseDeviceUnusable {
        device: PathBuf,
        uid: u32,
        source: io::Error,
    },

    /// A user other than root needs the setuid helper, and there is none.
    #[error("a user other than root mounts through the setuid fusermount3 and none was found in PATH, /sbin or /bin; install the fuse3 package (or mount as root)")]
    NoFusermount,

    /// `man --out` could not write its pages.
    #[error("cannot write the manual pages into {} ({source}); give --out an existing directory you can write to", dir.display())]
    ManPages { dir: PathBuf, source: io::Error },

    /// `--dev`: the built-in gateway's loopback port.
    #[error("cannot listen on loopback for --dev ({0})")]
    DevListen(#[source] io::Error),

    /// `--dev`: the built-in gateway itself.
    #[error("cannot start the built-in gateway ({0})")]
    DevGateway(#[source] io::Error),
}

impl AppError {
    /// The process's exit status when this error ends a command.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            AppError::Pipeline(e) => e.exit_status(),
            AppError::Daemon { status, .. } => *status,
            AppError::AlsoRefused(both) => both.2.exit_status(),
            // FUSE itself is missing or closed to the user: what the table promises 72 for
            // (and the unit restarts on it, so an administrator's fix is picked up).
            AppError::Mount { .. }
            | AppError::NoFuseDevice(_)
            | AppError::FuseDeviceClosed { .. }
            | AppError::FuseDeviceUnusable { .. }
            | AppError::NoFusermount => ExitStatus::Fuse,
            // The mountpoint is wrong, or not what the command needs: as a setting would be.
            AppError::LogFile(_)
            | AppError::NothingMounted(_)
            | AppError::StaleMount(_)
            | AppError::ForeignMount { .. }
            | AppError::OtherMount { .. }
            | AppError::StatusUnreadable { .. }
            | AppError::StatusNotJson { .. }
            | AppError::AlreadyMounted { .. }
            | AppError::MountpointUnusable { .. }
            | AppError::MountpointClaimed(_)
            | AppError::MountedMeanwhile(_)
            | AppError::ManPages { .. } => ExitStatus::Config,
            AppError::Refresh(_) | AppError::DaemonVanished | AppError::NoVerdict(_) => {
                ExitStatus::Failure
            }
            AppError::Pipe(_)
            | AppError::Fork(_)
            | AppError::Verdict(_)
            | AppError::Runtime(_)
            | AppError::Signals(_)
            | AppError::Session(_)
            | AppError::ContainerEndpoint(_)
            | AppError::Control(_)
            | AppError::Cwd(_)
            | AppError::Unmount { .. }
            | AppError::HelperUnmount { .. }
            | AppError::DevListen(_)
            | AppError::DevGateway(_) => ExitStatus::System,
        }
    }
}

/// The advice after "already mounted": our own mount can be unmounted first.
fn already_mounted_fix(path: &std::path::Path, ours: bool) -> String {
    if ours {
        format!(
            "run `s3credsfs unmount {}` first, or choose another directory",
            path.display()
        )
    } else {
        "choose another directory".to_string()
    }
}

/// Shorthand for results of a command.
pub type Result<T> = std::result::Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_sentences_pass_through_and_system_causes_stay_sources() {
        let config = crate::error::Error::Config("bad flag; fix it".into());
        let wrapped = AppError::from(config.clone());
        assert_eq!(wrapped.to_string(), config.to_string());
        let pipe = AppError::Pipe(io::Error::from_raw_os_error(libc::EMFILE));
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
    fn already_mounted_names_unmount_only_for_our_own_mount() {
        let ours = AppError::AlreadyMounted {
            path: "/home/u/.s3creds".into(),
            fstype: "fuse.s3credsfs".into(),
            ours: true,
        };
        assert_eq!(
            ours.to_string(),
            "/home/u/.s3creds is already mounted (fuse.s3credsfs); run \
             `s3credsfs unmount /home/u/.s3creds` first, or choose another directory"
        );
        let other = AppError::AlreadyMounted {
            path: "/mnt".into(),
            fstype: "nfs".into(),
            ours: false,
        };
        assert_eq!(
            other.to_string(),
            "/mnt is already mounted (nfs); choose another directory"
        );
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
            AppError::from(refused).exit_status(),
            ExitStatus::LoginRefused
        );
        let config = crate::error::Error::Config("bad".into());
        assert_eq!(AppError::from(config).exit_status(), ExitStatus::Config);
        let mount = AppError::Mount {
            path: "/m".into(),
            source: io::Error::from_raw_os_error(libc::ENODEV),
        };
        assert_eq!(mount.exit_status(), ExitStatus::Fuse);
        for unavailable in [
            AppError::NoFuseDevice("/dev/fuse".into()),
            AppError::NoFusermount,
            AppError::FuseDeviceClosed {
                device: "/dev/fuse".into(),
                mode: 0o600,
                owner: 0,
                uid: 1000,
            },
            AppError::FuseDeviceUnusable {
                device: "/dev/fuse".into(),
                uid: 1000,
                source: io::Error::from_raw_os_error(libc::ENXIO),
            },
        ] {
            assert_eq!(unavailable.exit_status(), ExitStatus::Fuse, "{unavailable}");
        }
        assert_eq!(
            AppError::Fork(io::Error::from_raw_os_error(libc::EAGAIN)).exit_status(),
            ExitStatus::System
        );
        let relayed = AppError::Daemon {
            message: "m".into(),
            status: ExitStatus::Gateway,
        };
        assert_eq!(relayed.exit_status(), ExitStatus::Gateway);
    }
}
