//! What a user other than root needs to mount: a `/dev/fuse` open to them and the setuid
//! `fusermount3` helper (which fuser falls back to when mount(2) says EPERM).
//!
//! The helper opens `/dev/fuse` with the caller's own file-system uid, so where the device
//! is mode 0600 (many containers and CI machines) no user but root can mount FUSE at all;
//! fuser then fails with a bare EACCES. These checks name the missing piece instead.

use crate::app_error::{AppError, Result};
use crate::error::Error;
use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Names the helper explicitly; fuser and libfuse read it too.
const PATH_VAR: &str = "FUSERMOUNT_PATH";
const NAMES: [&str; 2] = ["fusermount3", "fusermount"];
const DEVICE: &str = "/dev/fuse";
/// Where fuser looks after `PATH`.
const FALLBACK_DIRS: [&str; 2] = ["/sbin", "/bin"];

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Checks, as a user other than root, that the device is open to us and the helper exists.
pub fn check_unprivileged() -> Result<()> {
    check_device(Path::new(DEVICE))?;
    find().map(drop)
}

fn check_device(device: &Path) -> Result<()> {
    use nix::unistd::AccessFlags;
    let error = match nix::unistd::access(device, AccessFlags::R_OK | AccessFlags::W_OK) {
        Ok(()) => return Ok(()),
        Err(errno) => std::io::Error::from(errno),
    };
    let uid = nix::unistd::getuid().as_raw();
    let device = device.to_path_buf();
    Err(match std::fs::metadata(&device) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => AppError::NoFuseDevice(device),
        Ok(meta) if error.raw_os_error() == Some(libc::EACCES) => AppError::FuseDeviceClosed {
            device,
            mode: meta.permissions().mode() & 0o7777,
            owner: meta.uid(),
            uid,
        },
        _ => AppError::FuseDeviceUnusable {
            device,
            uid,
            source: error,
        },
    })
}

/// Finds the helper where fuser does: `$FUSERMOUNT_PATH` when set, else `fusermount3`
/// (then the FUSE 2 `fusermount`) in `PATH`, then in /sbin and /bin. The error says exactly
/// what is missing.
pub fn find() -> Result<PathBuf> {
    find_in(
        std::env::var_os(PATH_VAR),
        std::env::var_os("PATH"),
        &FALLBACK_DIRS,
    )
}

fn find_in(
    explicit: Option<OsString>,
    path: Option<OsString>,
    fallback_dirs: &[&str],
) -> Result<PathBuf> {
    if let Some(explicit) = explicit.filter(|p| !p.is_empty()) {
        let explicit = PathBuf::from(explicit);
        return if is_executable_file(&explicit) {
            Ok(explicit)
        } else {
            Err(Error::Config(format!(
                "{PATH_VAR} names {}, which is not an executable file; point it at the setuid fusermount3 or unset it",
                explicit.display()
            ))
            .into())
        };
    }
    let in_path: Vec<PathBuf> = path
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let fallbacks: Vec<PathBuf> = fallback_dirs.iter().map(PathBuf::from).collect();
    for dirs in [in_path, fallbacks] {
        for name in NAMES {
            if let Some(found) = dirs
                .iter()
                .map(|dir| dir.join(name))
                .find(|candidate| is_executable_file(candidate))
            {
                return Ok(found);
            }
        }
    }
    Err(AppError::NoFusermount)
}

/// Detaches `path` (even busy or stale) through `helper`, which lets a user unmount their
/// own FUSE mounts.
pub fn lazy_unmount(helper: &Path, path: &Path) -> std::io::Result<()> {
    let output = Command::new(helper)
        .args(["-u", "-z", "-q", "--"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()?;
    if output.status.success() {
        return Ok(());
    }
    // `-q` keeps some of its complaints to itself: then its exit status is all there is.
    let said = String::from_utf8_lossy(&output.stderr).trim().to_string();
    Err(std::io::Error::other(if said.is_empty() {
        output.status.to_string()
    } else {
        said
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_failure_of_the_helper_still_says_something() {
        // A helper that fails without a word, as fusermount3 -q may.
        let dir = tempfile::tempdir().unwrap();
        let err = lazy_unmount(Path::new("/bin/false"), dir.path()).unwrap_err();
        assert_eq!(err.to_string(), "exit status: 1");
    }

    #[test]
    fn finding_the_helper_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let empty = Some(dir.path().as_os_str().to_owned());
        let missing = find_in(None, empty.clone(), &[]).unwrap_err().to_string();
        assert!(
            missing.contains("setuid fusermount3 and none was found in PATH, /sbin or /bin; install the fuse3 package"),
            "{missing}"
        );
        let named = dir.path().join("nope");
        let wrong = find_in(Some(named.clone().into()), empty.clone(), &[])
            .unwrap_err()
            .to_string();
        assert!(
            wrong.contains(&format!("FUSERMOUNT_PATH names {}", named.display())),
            "{wrong}"
        );
        let helper = dir.path().join("fusermount3");
        std::fs::write(&helper, "#!/bin/sh\n").unwrap();
        assert!(find_in(None, empty.clone(), &[]).is_err(), "not executable");
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_in(None, empty.clone(), &[]).unwrap(), helper);
        assert_eq!(
            find_in(Some(helper.clone().into()), None, &[]).unwrap(),
            helper
        );
        let fallback = dir.path().to_str().unwrap();
        assert_eq!(find_in(None, None, &[fallback]).unwrap(), helper);
    }

    /// A device the user cannot open for reading and writing, as `/dev/fuse` is on
    /// machines that keep it root's with mode 0600: named with its mode, owner and the
    /// user's id.
    #[test]
    fn a_device_closed_to_the_user_is_named() {
        use crate::test_users::*;
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("fuse");
        std::fs::write(&device, "").unwrap();
        // Readable but not writable: a check of existence or of reading alone passes it.
        std::fs::set_permissions(&device, std::fs::Permissions::from_mode(0o0400)).unwrap();
        let check = || check_device(&device).map_err(|e| e.to_string());
        let (error, uid) = if can_switch() {
            std::os::unix::fs::chown(dir.path(), Some(NOBODY), None).unwrap();
            std::os::unix::fs::chown(&device, Some(NOBODY), None).unwrap();
            (as_user(NOBODY, check), NOBODY)
        } else {
            (check(), nix::unistd::getuid().as_raw())
        };
        let owner = std::fs::metadata(&device).unwrap().uid();
        assert_eq!(owner, uid, "the user's own file");
        let shown = device.display();
        assert_eq!(
            error.unwrap_err(),
            format!(
                "{shown} (mode 0400, owner uid {owner}) is not open to uid {uid}, and fusermount3 opens it as the calling user too, so this user cannot mount FUSE filesystems; ask an administrator to `chmod 0666 {shown}` (the usual mode) or mount as root"
            )
        );
    }

    /// A device path that fails for another reason than being missing (here a component
    /// that is a file) is reported with the system's error, not as a missing module.
    #[test]
    fn a_device_that_cannot_be_reached_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let device = file.join("fuse");
        let error = check_device(&device).unwrap_err().to_string();
        let uid = nix::unistd::getuid().as_raw();
        assert!(
            error.starts_with(&format!(
                "{} is not usable by uid {uid} ({})",
                device.display(),
                std::io::Error::from_raw_os_error(libc::ENOTDIR)
            )),
            "{error}"
        );
    }

    /// `find` looks where fuser does with this process's environment: what it gives is
    /// an executable file, or it says there is none.
    #[test]
    fn the_helper_found_is_an_executable_file() {
        match find() {
            Ok(helper) => assert!(is_executable_file(&helper), "{}", helper.display()),
            Err(error) => {
                let error = error.to_string();
                assert!(
                    error.contains("fusermount3") || error.contains(PATH_VAR),
                    "{error}"
                );
            }
        }
    }

    #[test]
    fn a_missing_device_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let error = check_device(&dir.path().join("fuse"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("does not exist, so FUSE cannot be used; load the fuse module"),
            "{error}"
        );
    }
}
