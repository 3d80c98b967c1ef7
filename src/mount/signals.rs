//! The signals that end a mount: SIGTERM (systemd's stop), SIGINT (^C in the foreground)
//! and SIGHUP (a closed terminal) each unmount, falling back to a lazy detach when the
//! mount is busy, so the kernel never keeps a mount whose daemon is gone.

use super::notify;
use crate::app_error::{AppError, Result};
use crate::mountpoint;
use std::path::PathBuf;
use std::sync::Arc;

/// SIGTERM, SIGINT and SIGHUP, registered before the mount reports ready.
pub(super) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn new() -> Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        let register = |kind| signal(kind).map_err(AppError::Signals);
        Ok(Signals {
            term: register(SignalKind::terminate())?,
            int: register(SignalKind::interrupt())?,
            hup: register(SignalKind::hangup())?,
        })
    }

    pub(super) async fn unmount_on_signal(
        mut self,
        mut unmounter: fuser::SessionUnmounter,
        mountpoint: PathBuf,
        sd: Option<Arc<notify::SdNotify>>,
    ) {
        let name = tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
            _ = self.hup.recv() => "SIGHUP",
        };
        tracing::info!(signal = name, "unmounting");
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(sd) = &sd {
                sd.stopping(&format!("unmounting on {name}"));
            }
            if let Err(e) = unmounter.unmount() {
                tracing::info!(error = %e, "plain unmount failed (busy?); detaching lazily");
                if let Err(e) = mountpoint::lazy_unmount(&mountpoint) {
                    tracing::error!(error = %e, "cannot unmount");
                }
            }
        })
        .await;
    }
}
