//! `s3credsfs refresh`: asks a running mount's daemon to refresh a profile now, with a
//! new login, and prints the outcome (see `control.rs` for the channel).

use super::mountpoint_of;
use super::our_mount::{our_daemon, read_status, require_our_mount};
use crate::app_error::{AppError, Result};
use crate::cli::RefreshArgs;
use crate::status::StatusDoc;
use std::time::Duration;

/// How long `refresh` waits for the daemon: a whole refresh with slow gateways.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `s3credsfs refresh`.
pub fn run(args: RefreshArgs) -> Result<()> {
    let path = mountpoint_of(&args.mountpoint)?;
    require_our_mount(&path)?;
    let text = read_status(&path)?;
    let doc: StatusDoc = serde_json::from_str(&text).map_err(|source| AppError::StatusNotJson {
        path: path.clone(),
        source,
    })?;
    if our_daemon(doc.pid).is_none() {
        return Err(AppError::Refresh(format!(
            "the daemon of {} (pid {}) is not a process of yours; run `s3credsfs status {}`",
            path.display(),
            doc.pid,
            path.display()
        )));
    }
    let Some(name) = doc.control_socket.filter(|n| crate::control::is_name(n)) else {
        return Err(AppError::Refresh(format!(
            "the daemon of {} (pid {}) names no control socket in its status (it predates random socket names); remount with `s3credsfs unmount {}` and `s3credsfs mount`",
            path.display(),
            doc.pid,
            path.display()
        )));
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AppError::Runtime)?;
    let reply = runtime
        .block_on(crate::control::request_refresh(
            doc.pid,
            &name,
            args.profile.as_deref(),
            ANSWER_TIMEOUT,
        ))
        .map_err(|problem| AppError::Refresh(problem.to_string()))?;
    let profile = crate::untrusted::clean(&reply.profile, 64);
    match (reply.expiration, reply.error) {
        (Some(expiration), None) => {
            println!(
                "s3credsfs: refreshed profile {profile}; the new credentials are valid until {}",
                crate::untrusted::clean(&expiration, 64)
            );
            Ok(())
        }
        (_, Some(error)) => Err(AppError::Refresh(format!(
            "refreshing profile {profile} failed: {}",
            crate::untrusted::clean(&error, crate::untrusted::MAX_QUOTED * 4)
        ))),
        (None, None) => Err(AppError::Refresh(
            "the daemon answered neither an expiry nor an error".into(),
        )),
    }
}
