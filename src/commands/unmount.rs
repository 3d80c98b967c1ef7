//! `s3credsfs unmount`: stops the daemon (which unmounts), or clears a stale mount.

use super::looked_up_mountpoint;
use super::our_mount::{our_daemon, read_status, require_our_mount};
use crate::app_error::Result;
use crate::cli::MountpointArgs;
use crate::error::Error;
use crate::mountpoint::{self, MountState};
use crate::status::StatusDoc;
use std::time::{Duration, Instant};

/// Runs `s3credsfs unmount`.
pub fn run(args: MountpointArgs) -> Result<()> {
    let found = looked_up_mountpoint(&args.mountpoint)?;
    let path = found.path;
    // What is detached by its path: only where no other user could re-point the path at
    // another mount between the look and the detach.
    let detach = |path: &std::path::Path| -> Result<()> {
        if let Some(why) = &found.untrusted {
            return Err(Error::Config(format!(
                "not unmounting {}: {why}, and so could re-point the name at another mount before it is detached; a mount there is not one s3credsfs made for you (its owner can run `s3credsfs unmount` on it, root `umount -l` on its own path)",
                path.display()
            ))
            .into());
        }
        mountpoint::lazy_unmount(path)
    };
    if let MountState::Stale { .. } = mountpoint::state(&path) {
        detach(&path)?;
        println!("s3credsfs: cleared the stale mount at {}", path.display());
        return Ok(());
    }
    require_our_mount(&path)?;
    let pid = read_status(&path)
        .ok()
        .and_then(|text| serde_json::from_str::<StatusDoc>(&text).ok())
        .and_then(|doc| our_daemon(doc.pid));
    if let Some(pid) = pid {
        // Our own daemon, checked by `our_daemon`.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && mountpoint::state(&path) != MountState::Free {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if mountpoint::state(&path) != MountState::Free {
        detach(&path)?;
    }
    println!("s3credsfs: unmounted {}", path.display());
    Ok(())
}
