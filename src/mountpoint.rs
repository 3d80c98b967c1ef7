//! Mountpoints: finding what is mounted where, telling a live mount from a stale one,
//! checking what a user other than root needs to mount, and unmounting (lazily when busy or
//! stale). A module of its own, below `mount` and `exec`, so that both (and the commands)
//! look at mountpoints the same way without importing each other.

pub mod fusermount;
mod named;

pub use named::{looked_up, named, LookedUp};

use crate::app_error::{AppError, Result};
use crate::error::Error;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How our mounts show in `/proc/self/mountinfo`: type `fuse` (or `fuse.s3credsfs` when
/// mounted through fusermount) with source `s3credsfs`.
pub const FSTYPE: &str = "s3credsfs";

/// The default mountpoint: `~/.s3creds`.
pub fn default_mountpoint() -> crate::error::Result<PathBuf> {
    default_mountpoint_in(std::env::var_os("HOME"))
}

/// [`default_mountpoint`] for a given `HOME`, which may be unset or empty.
fn default_mountpoint_in(home: Option<std::ffi::OsString>) -> crate::error::Result<PathBuf> {
    home.filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".s3creds"))
        .ok_or_else(|| Error::Config("HOME is not set, so there is no default mountpoint; give one, e.g. `s3credsfs mount /path/to/dir`".into()))
}

/// What is at a mountpoint now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountState {
    /// Nothing mounted.
    Free,
    /// A working mount of this filesystem type.
    Live { fstype: String },
    /// A mount whose daemon died: every access fails with ENOTCONN.
    Stale { fstype: String },
}

fn unescape(field: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = u8::from_str_radix(&field[i + 1..i + 4], 8).unwrap_or(b'?');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What is mounted at `path` (the last mount there wins), from mountinfo text: its type,
/// or [`FSTYPE`] for one of ours. Ours means an s3credsfs FUSE mount made by user `uid`:
/// anyone can name a FUSE mount "s3credsfs", but the kernel (or the setuid fusermount3)
/// sets `user_id` from the real mounting user, so another user's mount is never taken
/// for ours (`unmount` would signal the pid its status file names).
pub fn fstype_at(mountinfo: &str, path: &Path, uid: u32) -> Option<String> {
    let wanted = path.to_string_lossy();
    let owner = format!("user_id={uid}");
    mountinfo.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let separator = fields.iter().position(|f| *f == "-")?;
        let mountpoint = unescape(fields.get(4)?);
        let fstype = fields.get(separator + 1)?;
        let source = fields.get(separator + 2).copied().unwrap_or_default();
        let options = fields.get(separator + 3).copied().unwrap_or_default();
        let named_ours = fstype.starts_with("fuse") && source == FSTYPE;
        let mounted_by_us = options.split(',').any(|o| o == owner);
        (mountpoint == wanted).then(|| match (named_ours, mounted_by_us) {
            (true, true) => FSTYPE.to_string(),
            (true, false) => {
                let uid = options
                    .split(',')
                    .find_map(|o| o.strip_prefix("user_id="))
                    .and_then(|u| u.parse::<u32>().ok());
                format!("{fstype}{OF}{}", user_label(uid))
            }
            _ => fstype.to_string(),
        })
    })
}

/// What joins a mount's type to its owner for a mount of another user.
const OF: &str = " of ";

/// "user NAME (uid N)", or "uid N" for a uid without a name, or "an unknown user".
fn user_label(uid: Option<u32>) -> String {
    let Some(uid) = uid else {
        return "an unknown user".into();
    };
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => format!(
            "user {} (uid {uid})",
            crate::untrusted::clean(&user.name, 64)
        ),
        _ => format!("uid {uid}"),
    }
}

/// For the type [`fstype_at`] gives another user's s3credsfs mount: whose it is, as
/// "user NAME (uid N)".
pub fn foreign_owner(fstype: &str) -> Option<&str> {
    let (kind, owner) = fstype.split_once(OF)?;
    kind.starts_with("fuse").then_some(owner)
}

/// Inspects `path`.
pub fn state(path: &Path) -> MountState {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let fstype = fstype_at(&mountinfo, path, nix::unistd::getuid().as_raw());
    // statfs always reaches the daemon; a stat may be answered from attributes the
    // kernel still caches for up to a second after the daemon died.
    let stale = matches!(
        nix::sys::statfs::statfs(path),
        Err(nix::errno::Errno::ENOTCONN)
    );
    match fstype {
        Some(fstype) if stale => MountState::Stale { fstype },
        Some(fstype) => MountState::Live { fstype },
        None if stale => MountState::Stale {
            fstype: "unknown".into(),
        },
        None => MountState::Free,
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Detaches whatever is mounted at `path`, even if busy or stale.
pub fn lazy_unmount(path: &Path) -> Result<()> {
    if path.as_os_str().as_bytes().contains(&0) {
        return Err(Error::Config(format!("{} contains a NUL byte", path.display())).into());
    }
    // A link at the last name is not followed (the name was resolved before).
    let flags = nix::mount::MntFlags::MNT_DETACH | nix::mount::MntFlags::UMOUNT_NOFOLLOW;
    let os_error = match nix::mount::umount2(path, flags) {
        Ok(()) => return Ok(()),
        Err(errno) => std::io::Error::from(errno),
    };
    if !is_root() {
        // The kernel lets only root unmount; the setuid helper unmounts a user's own mounts.
        let helper = fusermount::find()?;
        return fusermount::lazy_unmount(&helper, path).map_err(|source| AppError::HelperUnmount {
            path: path.to_path_buf(),
            helper,
            source,
        });
    }
    Err(AppError::Unmount {
        path: path.to_path_buf(),
        source: os_error,
    })
}

/// The advice that ends every refusal of a mountpoint.
pub const OWN_DIRECTORY: &str = "use a directory of your own such as ~/.s3creds";

/// A mountpoint that passed every check: see [`prepare`].
#[derive(Debug)]
pub struct Checked {
    /// The resolved path (no symbolic link, `.` or `..`): what is mounted on, shown, and
    /// written into the files (`credential_process = cat <path>/json`).
    pub path: PathBuf,
    /// The directory the checks were made on, held open (`O_PATH`).
    dir: std::os::fd::OwnedFd,
}

/// Makes `path` ready to mount on: clears a stale mount, refuses a live one, creates the
/// directory (mode 0700) when missing, and checks that no other user can redirect it or
/// plant files in it (a `config` whose `credential_process` runs their command whenever
/// the daemon is down). Fails early, before any fetch, when a user other than root could
/// not mount (no `/dev/fuse` open to them, or no `fusermount3`).
///
/// The path is resolved by [`crate::safe_path::resolve_dir`]: every directory on it is
/// root's or the caller's and not writable by others (or sticky), no link on it is
/// another user's, and the mountpoint itself is a real directory of the caller's, writable
/// by no one else. That is what makes the later mount land on this very directory: the
/// mount is made on the resolved path, whose every entry only root and the caller can
/// change, so no other user can swap a component between this check and the mount (by
/// mount(2) as root, or by `fusermount3`, which resolves the same path again and mounts
/// after `chdir`ing into it as the caller). The same rules apply to root, which is
/// refused a directory another user owns.
///
/// `given` is the absolute path as the user gave it, with no link resolved yet: the
/// checks must see every link on it.
pub fn prepare(given: &Path) -> Result<Checked> {
    if !is_root() {
        fusermount::check_unprivileged()?;
    }
    let path = &inspected_path(given)?;
    match state(path) {
        MountState::Live { fstype } => {
            return Err(AppError::AlreadyMounted {
                path: path.clone(),
                ours: fstype == FSTYPE,
                fstype,
            });
        }
        MountState::Stale { fstype } => {
            tracing::info!(path = %path.display(), fstype, "clearing a stale mount left by a daemon that died");
            eprintln!(
                "s3credsfs: clearing the stale mount at {} left by a daemon that died",
                path.display()
            );
            lazy_unmount(path)?;
        }
        MountState::Free => {}
    }
    check(given).map_err(AppError::from)
}

/// Where [`prepare`] looks for a mount, and detaches a stale one: `given` with its parent
/// resolved, trusting no other user's link or directory, so no one else can re-point the
/// name. A symbolic link as the last name is walked too, by the same rule: another user's
/// link (in `/tmp`, say) is refused here, before `statfs` and `umount2` would follow it to
/// whatever stale mount it names.
fn inspected_path(given: &Path) -> Result<PathBuf> {
    let is_link = given
        .symlink_metadata()
        .is_ok_and(|meta| meta.file_type().is_symlink());
    Ok(match (given.parent(), given.file_name()) {
        (Some(parent), Some(name)) if !is_link => {
            crate::safe_path::resolve_parent(parent, given, OWN_DIRECTORY)?.join(name)
        }
        // `/`, a name ending in `..`, or a link: walked whole the same way.
        _ => crate::safe_path::resolve_parent(given, given, OWN_DIRECTORY)?,
    })
}

/// The checks of [`prepare`] on a path where nothing is mounted.
fn check(path: &Path) -> crate::error::Result<Checked> {
    let found = crate::safe_path::resolve_dir(path, OWN_DIRECTORY)?;
    let mode = found.stat.st_mode & 0o7777;
    if mode & 0o022 != 0 {
        let shown = found.path.display();
        return Err(Error::Config(format!(
            "{shown} can be written by group or others (mode {mode:04o}), who could plant files in it; run `chmod go-w {shown}` or {OWN_DIRECTORY}"
        )));
    }
    Ok(Checked {
        path: found.path,
        dir: found.dir,
    })
}

/// This process's hold on a mountpoint: an exclusive lock on the directory itself, taken
/// before mounting and kept until exit, so that two `mount` commands racing for one path
/// cannot both mount (the kernel would stack the second mount on the first).
///
/// A latecomer either opens the same directory and finds it locked, or opens it after the
/// winner mounted and finds a FUSE filesystem there instead.
#[derive(Debug)]
pub struct Claim {
    /// Never read: holding it holds the lock.
    _locked_dir: nix::fcntl::Flock<std::fs::File>,
}

/// Claims the checked directory for this process: the one [`prepare`] held open, not
/// whatever its name may lead to now.
pub fn claim(checked: &Checked) -> Result<Claim> {
    use nix::fcntl::{Flock, FlockArg, OFlag};
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let dir = nix::fcntl::openat(&checked.dir, ".", flags, nix::sys::stat::Mode::empty())
        .map(std::fs::File::from)
        .map_err(|e| AppError::MountpointUnusable {
            path: checked.path.clone(),
            source: e.into(),
        })?;
    let Ok(dir) = Flock::lock(dir, FlockArg::LockExclusiveNonblock) else {
        return Err(AppError::MountpointClaimed(checked.path.clone()));
    };
    let mounted = nix::sys::statfs::fstatfs(&*dir)
        .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::FUSE_SUPER_MAGIC);
    if mounted {
        return Err(AppError::MountedMeanwhile(checked.path.clone()));
    }
    Ok(Claim { _locked_dir: dir })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
95 22 0:50 / /home/u/.s3creds rw,nosuid,nodev,relatime shared:60 - fuse.s3credsfs s3credsfs ro,user_id=1000,group_id=1000
97 22 0:52 / /root/.s3creds ro,nosuid,nodev,noexec,noatime - fuse s3credsfs ro,user_id=0,group_id=0
96 22 0:51 / /tmp/with\\040space rw,relatime shared:61 - fuse.sshfs host: rw
";

    /// A link at the mountpoint's name is followed before a mount is looked for there only
    /// when it is the caller's or root's; a plain name is its resolved parent and the name.
    #[test]
    fn a_link_at_the_mountpoint_is_walked_only_if_it_is_ours() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        let target = base.join("target");
        std::fs::create_dir(&target).unwrap();
        let plain = base.join("plain");
        assert_eq!(inspected_path(&plain).unwrap(), plain);
        let ours = base.join("ours");
        std::os::unix::fs::symlink(&target, &ours).unwrap();
        assert_eq!(inspected_path(&ours).unwrap(), target);
        if nix::unistd::geteuid().is_root() {
            // Another user's link: refused before anything follows it.
            let theirs = base.join("theirs");
            std::os::unix::fs::symlink(&target, &theirs).unwrap();
            std::os::unix::fs::lchown(&theirs, Some(65534), Some(65534)).unwrap();
            let refused = inspected_path(&theirs).unwrap_err().to_string();
            assert!(refused.contains(&theirs.display().to_string()), "{refused}");
            assert!(refused.ends_with(OWN_DIRECTORY), "{refused}");
            // A real directory at the name is not judged here, whoever owns it: what is
            // mounted there is looked at first (another user's mount gets its own
            // sentence), and `check` judges the directory after.
            let their_dir = base.join("their-dir");
            std::fs::create_dir(&their_dir).unwrap();
            std::os::unix::fs::lchown(&their_dir, Some(65534), Some(65534)).unwrap();
            assert_eq!(inspected_path(&their_dir).unwrap(), their_dir);
        }
    }

    #[test]
    fn finds_mounts_in_mountinfo() {
        let at = |path: &str, uid| fstype_at(MOUNTINFO, Path::new(path), uid);
        assert_eq!(at("/home/u/.s3creds", 1000).as_deref(), Some(FSTYPE));
        assert_eq!(at("/root/.s3creds", 0).as_deref(), Some(FSTYPE));
        assert_eq!(at("/tmp/with space", 0).as_deref(), Some("fuse.sshfs"));
        assert_eq!(at("/home/u", 1000), None);
    }

    #[test]
    fn a_mount_named_s3credsfs_by_another_user_is_not_ours() {
        let at = |path: &str, uid| fstype_at(MOUNTINFO, Path::new(path), uid);
        // Whose it is: the name of a uid this system knows, else the number.
        let theirs = at("/root/.s3creds", 1000).unwrap();
        assert_eq!(theirs, "fuse of user root (uid 0)");
        assert_eq!(foreign_owner(&theirs), Some("user root (uid 0)"));
        let unnamed =
            "95 22 0:50 / /home/v/x rw - fuse.s3credsfs s3credsfs ro,user_id=4000123,group_id=1\n";
        let theirs = fstype_at(unnamed, Path::new("/home/v/x"), 1000).unwrap();
        assert_eq!(
            theirs, "fuse.s3credsfs of uid 4000123",
            "user_id=4000123 is not user_id=1000"
        );
        assert_eq!(foreign_owner(&theirs), Some("uid 4000123"));
        // Ours, and mounts of other types, have no foreign owner.
        assert_eq!(foreign_owner(FSTYPE), None);
        assert_eq!(foreign_owner("fuse.sshfs"), None);
    }

    /// Runs `f` as an ordinary user, with a directory of that user's: as
    /// [`crate::test_users::NOBODY`] on a thread of its own when the tests run as root
    /// (so `is_root()` is false there), else as the user running them.
    fn as_ordinary_user(f: impl FnOnce(&Path) + Send) {
        use crate::test_users::*;
        if !can_switch() {
            return f(tempfile::tempdir().unwrap().path());
        }
        let dir = dir_of(NOBODY);
        as_user(NOBODY, || f(dir.path()));
    }

    #[test]
    fn prepare_creates_a_private_directory() {
        if nix::unistd::geteuid().is_root() {
            prepares_a_private_directory_in(tempfile::tempdir().unwrap().path());
        }
        as_ordinary_user(prepares_a_private_directory_in);
    }

    fn prepares_a_private_directory_in(dir: &Path) {
        let target = dir.join("a/b");
        // A user who cannot mount (no access to /dev/fuse, no fusermount3; scripts/test
        // runs these tests as one) is stopped first, before anything is made; the rest
        // is then checked on what prepare makes after that check.
        let can_mount =
            nix::unistd::geteuid().is_root() || fusermount::check_unprivileged().is_ok();
        let prepare = |path: &Path| {
            if can_mount {
                return prepare(path);
            }
            let existed = path.exists();
            let err = prepare(path).unwrap_err().to_string();
            assert!(
                err.contains("/dev/fuse") || err.contains("fusermount3"),
                "{err}"
            );
            assert_eq!(path.exists(), existed, "nothing made");
            check(path).map_err(AppError::from)
        };
        prepare(&target).unwrap();
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let file = dir.join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(prepare(&file)
            .unwrap_err()
            .to_string()
            .contains("is not a directory"));
        assert_eq!(state(&target), MountState::Free);
        let dotted = dir.join("a/../a/b");
        assert_eq!(named(&dotted).unwrap(), target.canonicalize().unwrap());
        // The checked path is the one `status` and `unmount` compute from the same name.
        let checked = prepare(&dotted).unwrap();
        assert_eq!(checked.path, named(&dotted).unwrap());
    }

    #[test]
    fn a_mountpoint_others_can_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().canonicalize().unwrap().join("open");
        std::fs::create_dir(&target).unwrap();
        for mode in [0o777, 0o770, 0o702] {
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).unwrap();
            // `check`: the directory checks of `prepare`, which also run for a user who
            // cannot mount (scripts/unit-as-user runs these tests as one).
            let error = check(&target).unwrap_err().to_string();
            let shown = target.display();
            assert_eq!(
                error,
                format!("{shown} can be written by group or others (mode {mode:04o}), who could plant files in it; run `chmod go-w {shown}` or {OWN_DIRECTORY}")
            );
        }
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(check(&target).unwrap().path, target);
    }

    #[test]
    fn mountinfo_escapes_are_undone_and_nothing_else_is() {
        for (field, path) in [
            ("/run/user/1000", "/run/user/1000"),
            ("/home/u/.s3creds", "/home/u/.s3creds"),
            ("/tmp/with\\040space", "/tmp/with space"),
            ("/t\\011ab\\012nl\\134bs", "/t\tab\nnl\\bs"),
            ("\\040", " "),
            // A backslash without three octal digits after it is kept as it is.
            ("/a\\", "/a\\"),
            ("/a\\04", "/a\\04"),
            ("/a\\089", "/a\\089"),
            ("/777/0400", "/777/0400"),
        ] {
            assert_eq!(unescape(field), path, "{field:?}");
        }
    }

    #[test]
    fn a_failed_unmount_says_where_and_keeps_the_system_error() {
        // A user goes through fusermount3, whose failure is its own text; root's advice
        // (`umount -l`) would not work for them.
        as_ordinary_user(|dir| {
            let error = lazy_unmount(dir).unwrap_err().to_string();
            assert!(!error.contains("umount -l"), "{error}");
            assert!(
                error.starts_with(&format!("cannot unmount {}", dir.display()))
                    || error.contains("fusermount3"),
                "{error}"
            );
        });
        // The real user, not `is_root()`, which this test covers too.
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let error = lazy_unmount(dir.path()).unwrap_err();
        let shown = dir.path().display();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot unmount {shown} ({}); try `umount -l {shown}`",
                std::io::Error::from_raw_os_error(libc::EINVAL)
            )
        );
        let source = std::error::Error::source(&error)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("the system error is the source");
        assert_eq!(source.raw_os_error(), Some(libc::EINVAL), "not a mount");
    }

    #[test]
    fn the_default_mountpoint_is_s3creds_in_home() {
        assert_eq!(
            default_mountpoint_in(Some("/home/u".into())).unwrap(),
            Path::new("/home/u/.s3creds")
        );
        for home in [None, Some("".into())] {
            let error = default_mountpoint_in(home).unwrap_err().to_string();
            assert!(
                error.starts_with("HOME is not set, so there is no default mountpoint"),
                "{error}"
            );
        }
        // `default_mountpoint` is that, for this process's HOME.
        assert_eq!(
            default_mountpoint().ok(),
            default_mountpoint_in(std::env::var_os("HOME")).ok()
        );
    }

    /// One claim at a time: a second `mount` of the same directory is refused while the
    /// first holds it, and the lock is not handed to the helpers a mount runs.
    #[test]
    fn a_claimed_directory_is_refused_to_a_second_claim_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().canonicalize().unwrap().join("m");
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
        let checked = check(&target).unwrap();
        let first = claim(&checked).unwrap();
        let flags = nix::fcntl::fcntl(&*first._locked_dir, nix::fcntl::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0, "close-on-exec");
        let error = claim(&checked).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "another s3credsfs is mounting on {0} right now; wait for it, or stop it with `s3credsfs unmount {0}`",
                target.display()
            )
        );
        drop(first);
        claim(&checked).expect("free again once the first claim is gone");
    }
}
