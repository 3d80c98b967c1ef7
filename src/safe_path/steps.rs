//! The steps every walk of [`super`] takes, shared by `resolve_dir` and `look_up`: a
//! component opened by descriptor relative to the directory before it, and the tests a
//! directory on the way must pass.

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

/// Links followed in one walk before giving up, as the kernel's own limit.
pub(super) const MAX_LINKS: usize = 40;

pub(super) fn open_step(dir: &OwnedFd, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

pub(super) fn kind(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT
}

/// Mode bits: group or others may write.
pub(super) const WRITABLE_BY_OTHERS: u32 = 0o022;

/// Why a directory that is not the last one of the path could be changed by another user,
/// if it could.
pub(super) fn untrusted_dir(stat: &FileStat, me: u32) -> Option<String> {
    let mode = stat.st_mode & 0o7777;
    if stat.st_uid != 0 && stat.st_uid != me {
        Some(format!(
            "belongs to user id {}, who could swap what is in it",
            stat.st_uid
        ))
    } else if mode & WRITABLE_BY_OTHERS != 0 && mode & libc::S_ISVTX == 0 {
        Some(format!(
            "can be written by group or others (mode {mode:04o}) without the sticky bit, so they could swap what is in it"
        ))
    } else {
        None
    }
}

/// Who mounted the FUSE filesystem `fd` lies on, when that is a user other than root and
/// `me`: such a filesystem's server reports whatever owner and mode it likes (with
/// `allow_other`, which `user_allow_other` lets any user ask for, to everyone) and can
/// answer a lookup differently at any moment, so nothing it says is believed. The mount's
/// `user_id` is set from the mounting user's real uid by the kernel or `fusermount3`.
pub(super) fn foreign_fuse(fd: &OwnedFd, me: u32) -> Option<String> {
    use std::os::fd::AsRawFd;
    let fs = nix::sys::statfs::fstatfs(fd).ok()?;
    if fs.filesystem_type() != nix::sys::statfs::FUSE_SUPER_MAGIC {
        return None;
    }
    let fdinfo = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()));
    let mount_id = fdinfo.ok().and_then(|t| {
        t.lines()
            .find_map(|l| Some(l.strip_prefix("mnt_id:")?.trim().to_string()))
    });
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let owner = mount_id.and_then(|id| {
        let line = mountinfo
            .lines()
            .find(|l| l.split(' ').next() == Some(id.as_str()))?;
        let (_, fields) = line.split_once(" - ")?;
        let options = fields.split(' ').nth(2)?;
        options
            .split(',')
            .find_map(|o| o.strip_prefix("user_id=")?.parse::<u32>().ok())
    });
    match owner {
        Some(uid) if uid == 0 || uid == me => None,
        Some(uid) => Some(format!(
            "lies on a FUSE filesystem that user id {uid} mounted, whose server can claim any owner"
        )),
        None => Some("lies on a FUSE filesystem whose owner cannot be told".into()),
    }
}

/// A directory on the way, held open: its descriptor, its name, and what `fstat` said.
pub(super) type Step = (OwnedFd, OsString, FileStat);

/// The first step of every walk: `/`, opened and inspected. The error is a sentence.
pub(super) fn root_step() -> std::result::Result<Step, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let root: OwnedFd = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open("/")
        .map_err(|e| format!("cannot open / ({e})"))?
        .into();
    let stat =
        fstat(&root).map_err(|e| format!("cannot inspect / ({})", std::io::Error::from(e)))?;
    Ok((root, OsString::new(), stat))
}

/// The path of the directories walked so far: `/`, then each by its name.
pub(super) fn walked(stack: &[Step]) -> PathBuf {
    let mut p = PathBuf::from("/");
    p.extend(stack[1..].iter().map(|(_, name, _)| name));
    p
}

/// The next name a walk looks up in `queue`, after the `..`s before it have taken their
/// directories off `stack` (never `/` itself, whose `..` is `/`).
pub(super) fn next_name(queue: &mut VecDeque<OsString>, stack: &mut Vec<Step>) -> Option<OsString> {
    loop {
        let name = queue.pop_front()?;
        if name != ".." {
            return Some(name);
        }
        if stack.len() > 1 {
            stack.pop();
        }
    }
}

/// `path`'s parts to walk, in order: names and `..` (`/` and `.` say nothing more).
pub(super) fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}
