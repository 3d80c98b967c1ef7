//! The FUSE adapter: decodes kernel requests, calls `fs::CredsFs`, encodes replies. No
//! logic of its own.

use crate::cache::Fetch;
use crate::fs::{Attr, CredsFs, Entry, FsError, Lookup};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    IoctlFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen, ReplyWrite, ReplyXattr, Request,
    WriteFlags,
};
use std::ffi::OsStr;
use std::sync::Arc;

/// Serves a `CredsFs` to the kernel.
pub struct FuseAdapter<F: Fetch> {
    fs: Arc<CredsFs<F>>,
    /// Where lookups that may refresh run, so FUSE worker threads never wait on the network.
    runtime: tokio::runtime::Handle,
    /// The kernel agreed to FUSE_NO_OPEN_SUPPORT: open answers ENOSYS once, and the kernel
    /// then opens without asking and reads from its page cache.
    no_open: bool,
}

impl<F: Fetch> FuseAdapter<F> {
    /// Wraps the filesystem logic; `runtime` runs the lookups.
    pub fn new(fs: CredsFs<F>, runtime: tokio::runtime::Handle) -> Self {
        Self::shared(Arc::new(fs), runtime)
    }

    /// Like `new`, for a caller that keeps a handle on the filesystem (tests count reads).
    pub fn shared(fs: Arc<CredsFs<F>>, runtime: tokio::runtime::Handle) -> Self {
        FuseAdapter {
            fs,
            runtime,
            no_open: false,
        }
    }
}

/// How loud a failed request is in the log. Warnings are for what someone must act on, and
/// a refusal for want of credentials is already one: `fs` logs its sentence, naming the
/// profile, once a minute. A reader still holding expired credentials is worth a line; the
/// rest are the ordinary answers of a read-only filesystem without extended attributes
/// (a name that is not there, a write, `ls -l`'s and `lsattr`'s probes).
fn level(e: &FsError) -> tracing::Level {
    match e {
        FsError::Gone => tracing::Level::INFO,
        FsError::NotFound
        | FsError::ReadOnly
        | FsError::NotADirectory
        | FsError::IsADirectory
        | FsError::Credentials(_) => tracing::Level::DEBUG,
    }
}

/// Logs request `op` on inode `ino` as failed with `errno`, by name and meaning (as
/// mountpoint-s3's `fuse_error!` does), and gives the errno to reply with.
fn failed(op: &'static str, ino: u64, errno: i32, level: tracing::Level) -> Errno {
    let name = nix::errno::Errno::from_raw(errno);
    let meaning = std::io::Error::from_raw_os_error(errno);
    let what = format_args!("{op} failed: {name:?}: {meaning}");
    match level {
        tracing::Level::DEBUG => tracing::debug!(op, ino, errno, "{what}"),
        tracing::Level::INFO => tracing::info!(op, ino, errno, "{what}"),
        _ => tracing::warn!(op, ino, errno, "{what}"),
    }
    Errno::from_i32(errno)
}

/// The kernel's errno for `e`, logged as request `op` on `ino` failing.
fn errno(op: &'static str, ino: u64, e: &FsError) -> Errno {
    failed(op, ino, e.errno(), level(e))
}

/// A fixed answer of this read-only filesystem (`EROFS`, `ENOSYS`, `ENODATA`, `ENOTTY`),
/// logged at debug level like the other ordinary failures.
fn answer(op: &'static str, ino: u64, errno: Errno) -> Errno {
    failed(op, ino, i32::from(errno), tracing::Level::DEBUG)
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.mtime,
        mtime: a.mtime,
        ctime: a.mtime,
        crtime: a.mtime,
        kind: if a.is_dir {
            FileType::Directory
        } else {
            FileType::RegularFile
        },
        perm: a.perm,
        nlink: if a.is_dir { 2 } else { 1 },
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl<F: Fetch> Filesystem for FuseAdapter<F> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Page-cache reads need the first two: without no-open every open is a round
        // trip, and without auto-inval-data a reader holding a descriptor would not
        // re-check attributes (and so expiry) on each read. Opens wait in lookup, so
        // lookups must run in parallel: without parallel-dirops the kernel holds the root
        // directory's lock across a lookup, and one waiting for a refresh would hold up
        // `status` and `ls`.
        for flag in [
            InitFlags::FUSE_NO_OPEN_SUPPORT,
            InitFlags::FUSE_AUTO_INVAL_DATA,
            InitFlags::FUSE_PARALLEL_DIROPS,
        ] {
            match config.add_capabilities(flag) {
                Ok(()) => self.no_open |= flag == InitFlags::FUSE_NO_OPEN_SUPPORT,
                Err(missing) => tracing::warn!(
                    capability = ?missing,
                    "the kernel lacks a FUSE capability; reads take a slower path"
                ),
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let entry = move |reply: ReplyEntry, result: Result<Entry, FsError>| match result {
            Ok(entry) => reply.entry_with_ttls(
                &entry.attr.ttl,
                &entry.ttl,
                &file_attr(&entry.attr),
                Generation(0),
            ),
            Err(e) => reply.error(errno("lookup", parent.0, &e)),
        };
        match self.fs.lookup_local(parent.0, &name.to_string_lossy()) {
            Ok(Lookup::Done(done)) => entry(reply, Ok(done)),
            Ok(Lookup::Credentials(index)) => {
                let fs = self.fs.clone();
                // Answered from the runtime: a refresh in flight holds no FUSE thread.
                self.runtime.spawn(async move {
                    entry(reply, fs.lookup_credentials(index).await);
                });
            }
            Err(e) => reply.error(errno("lookup", parent.0, &e)),
        }
    }

    // fuser's default `batch_forget` calls this for each inode.
    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.getattr(ino.0) {
            Ok(attr) => reply.attr(&attr.ttl, &file_attr(&attr)),
            Err(e) => reply.error(errno("getattr", ino.0, &e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if self.no_open {
            // The kernel never asks again, and serves reads from its page cache: an
            // inode's bytes never change, so that cache is always right.
            reply.error(answer("open", ino.0, Errno::ENOSYS));
            return;
        }
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY
            || flags.0 & (libc::O_TRUNC | libc::O_APPEND) != 0;
        match self.fs.open(ino.0, write) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(errno("open", ino.0, &e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.fs.read(ino.0, offset, size) {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(errno("read", ino.0, &e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing to flush; ENOSYS makes the kernel stop sending flush on every close.
        reply.error(answer("flush", ino.0, Errno::ENOSYS));
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.fs.getattr(ino.0) {
            Ok(attr) if attr.is_dir => reply.opened(FileHandle(0), FopenFlags::empty()),
            Ok(_) => reply.error(errno("opendir", ino.0, &FsError::NotADirectory)),
            Err(e) => reply.error(errno("opendir", ino.0, &e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.fs.readdir(ino.0, offset) {
            Ok(entries) => {
                for (ino, is_dir, name, next) in entries {
                    let kind = if is_dir {
                        FileType::Directory
                    } else {
                        FileType::RegularFile
                    };
                    if reply.add(INodeNo(ino), next, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(errno("readdir", ino.0, &e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(errno("write", ino.0, &FsError::ReadOnly));
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(errno("create", parent.0, &FsError::ReadOnly));
    }

    // The kernel asks for extended attributes on `ls -l` (security.selinux, ACLs) and
    // SDKs' stat calls; fuser's defaults answer ENOSYS with a warning each. There are
    // none: "no such attribute" and an empty list, as on a filesystem without xattrs.
    fn getxattr(&self, _req: &Request, ino: INodeNo, _name: &OsStr, _size: u32, reply: ReplyXattr) {
        match self.fs.getattr(ino.0) {
            Ok(_) => reply.error(answer("getxattr", ino.0, Errno::NO_XATTR)),
            Err(e) => reply.error(errno("getxattr", ino.0, &e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.fs.getattr(ino.0) {
            Ok(_) if size == 0 => reply.size(0),
            Ok(_) => reply.data(&[]),
            Err(e) => reply.error(errno("listxattr", ino.0, &e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(errno("setxattr", ino.0, &FsError::ReadOnly));
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(errno("removexattr", ino.0, &FsError::ReadOnly));
    }

    /// No file here is a device: "inappropriate ioctl", as for any regular file
    /// (`lsattr`, terminal checks).
    fn ioctl(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        reply.error(answer("ioctl", ino.0, Errno::ENOTTY));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a reader of expired credentials is above debug level: a refusal for want of
    /// credentials is `fs`'s warning already, the rest are a read-only filesystem's
    /// ordinary answers.
    #[test]
    fn failures_are_logged_at_the_level_they_deserve() {
        use tracing::Level;
        assert_eq!(level(&FsError::Gone), Level::INFO);
        let refused = FsError::Credentials(crate::error::Error::Config("x".into()));
        for e in [
            FsError::NotFound,
            FsError::ReadOnly,
            FsError::NotADirectory,
            FsError::IsADirectory,
            refused,
        ] {
            assert_eq!(level(&e), Level::DEBUG, "{e:?}");
        }
    }

    /// Each failure is one line with the request's name, the errno's name and meaning,
    /// and the errno the kernel gets.
    #[test]
    fn a_failure_names_the_request_and_the_errno() {
        let mut replied = Vec::new();
        let text = crate::test_log::logged(tracing::Level::DEBUG, || {
            replied = vec![
                errno("read", 7, &FsError::Gone),
                errno("lookup", 1, &FsError::NotFound),
                answer("ioctl", 9, Errno::ENOTTY),
            ]
        });
        let replied: Vec<i32> = replied.into_iter().map(i32::from).collect();
        assert_eq!(replied, [libc::EIO, libc::ENOENT, libc::ENOTTY]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        for (line, (level, want)) in lines.iter().zip([
            (
                "INFO",
                "read failed: EIO: Input/output error (os error 5) op=\"read\" ino=7 errno=5",
            ),
            (
                "DEBUG",
                "lookup failed: ENOENT: No such file or directory (os error 2) op=\"lookup\" \
                 ino=1 errno=2",
            ),
            (
                "DEBUG",
                "ioctl failed: ENOTTY: Inappropriate ioctl for device (os error 25) \
                 op=\"ioctl\" ino=9 errno=25",
            ),
        ]) {
            assert!(line.contains(level) && line.ends_with(want), "{line}");
        }
    }
}
