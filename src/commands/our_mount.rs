//! The running mount that `unmount`, `status` and `refresh` talk to: ours and live at the
//! path, its `status` file, and its daemon (only ever a process of this user's).

use crate::app_error::{AppError, Result};
use crate::mountpoint::{self, MountState, FSTYPE};
use nix::unistd::Pid;
use std::path::Path;

/// Succeeds when one of our own mounts is live at `path`; otherwise says what is there.
pub(super) fn require_our_mount(path: &Path) -> Result<()> {
    let path = path.to_path_buf();
    match mountpoint::state(&path) {
        MountState::Live { fstype } if fstype == FSTYPE => Ok(()),
        MountState::Live { fstype } => match mountpoint::foreign_owner(&fstype) {
            Some(owner) => Err(AppError::ForeignMount {
                path,
                owner: owner.to_string(),
            }),
            None => Err(AppError::OtherMount { path, fstype }),
        },
        MountState::Stale { .. } => Err(AppError::StaleMount(path)),
        MountState::Free => Err(AppError::NothingMounted(path)),
    }
}

/// The largest status file read; ours is well under 2 KiB.
const MAX_STATUS: u64 = 64 * 1024;

/// The text of the mount's root `status` file.
pub(super) fn read_status(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path.join("status"))
        .and_then(|f| f.take(MAX_STATUS).read_to_string(&mut text))
        .map_err(|source| AppError::StatusUnreadable {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(text)
}

/// The pid a status file names, if it is a live s3credsfs process of this user: the file
/// is only as trustworthy as the mount, and `kill` with 0 or -1 would signal a whole
/// process group or every process we may signal.
pub(super) fn our_daemon(pid: u32) -> Option<Pid> {
    let pid = libc::pid_t::try_from(pid).ok().filter(|p| *p > 0)?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let real_uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse::<u32>()
        .ok()?;
    let me = nix::unistd::getuid().as_raw();
    (comm.trim_end() == "s3credsfs" && real_uid == me).then_some(Pid::from_raw(pid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_our_own_daemons_are_signalled() {
        // 0 and u32::MAX (-1 as a pid_t) would signal a group or everything.
        assert_eq!(our_daemon(0), None);
        assert_eq!(our_daemon(u32::MAX), None);
        assert_eq!(our_daemon(i32::MAX as u32 + 1), None);
        // A live process of ours that is not s3credsfs: this test binary.
        assert_eq!(our_daemon(std::process::id()), None);
        // A process of ours named s3credsfs (the kernel names it after the path run).
        let dir = tempfile::tempdir().unwrap();
        let named = dir.path().join("s3credsfs");
        std::os::unix::fs::symlink("/bin/sleep", &named).unwrap();
        let mut child = std::process::Command::new(&named).arg("5").spawn().unwrap();
        // The kernel renames the child when its exec completes, which may be just after
        // `spawn` returns.
        let found = (0..100).find_map(|_| {
            std::thread::sleep(Duration::from_millis(10));
            our_daemon(child.id())
        });
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found, Some(Pid::from_raw(child.id() as libc::pid_t)));
    }
}
