//! `s3credsfs refresh`: asks a running mount's daemon to refresh a profile now, with a
//! new login, and prints the outcome (see `control.rs` for the channel).

use super::{mountpoint_of, our_daemon, read_status, require_our_mount, MountError, Result};
use crate::error::Error;
use crate::status::StatusDoc;
use std::path::PathBuf;
use std::time::Duration;

/// How long `refresh` waits for the daemon: a whole refresh with slow gateways.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

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

/// Runs `s3credsfs refresh`.
pub fn run_refresh(args: RefreshArgs) -> Result<()> {
    let path = mountpoint_of(&args.mountpoint)?;
    require_our_mount(&path)?;
    let text = read_status(&path)?;
    let doc: StatusDoc = serde_json::from_str(&text).map_err(|e| {
        Error::Config(format!(
            "{}/status is not the expected JSON ({e})",
            path.display()
        ))
    })?;
    if our_daemon(doc.pid).is_none() {
        return Err(MountError::Refresh(format!(
            "the daemon of {} (pid {}) is not a process of yours; run `s3credsfs status {}`",
            path.display(),
            doc.pid,
            path.display()
        )));
    }
    let Some(name) = doc.control_socket.filter(|n| crate::control::is_name(n)) else {
        return Err(MountError::Refresh(format!(
            "the daemon of {} (pid {}) names no control socket in its status (it predates random socket names); remount with `s3credsfs unmount {}` and `s3credsfs mount`",
            path.display(),
            doc.pid,
            path.display()
        )));
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(MountError::Runtime)?;
    let reply = runtime
        .block_on(crate::control::request_refresh(
            doc.pid,
            &name,
            args.profile.as_deref(),
            ANSWER_TIMEOUT,
        ))
        .map_err(MountError::Refresh)?;
    let profile = crate::untrusted::clean(&reply.profile, 64);
    match (reply.expiration, reply.error) {
        (Some(expiration), None) => {
            println!(
                "s3credsfs: refreshed profile {profile}; the new credentials are valid until {}",
                crate::untrusted::clean(&expiration, 64)
            );
            Ok(())
        }
        (_, Some(error)) => Err(MountError::Refresh(format!(
            "refreshing profile {profile} failed: {}",
            crate::untrusted::clean(&error, crate::untrusted::MAX_QUOTED * 4)
        ))),
        (None, None) => Err(MountError::Refresh(
            "the daemon answered neither an expiry nor an error".into(),
        )),
    }
}
