//! Unit tests of the owner rules as a user other than root, while the test process runs
//! as root (as CI and the developer's container do): Linux keeps credentials per thread
//! under the raw syscalls, so one thread can become an ordinary user and the rest of the
//! process stays root. Without it the non-root half of every "ours or root's" check would
//! only ever run with "ours" and "root's" being the same user.

/// The ordinary user the tests become, and another one whose files must be refused.
pub const NOBODY: u32 = 65534;
pub const OTHER: u32 = 65533;

/// Changes the owner of `path` itself, a symbolic link included (root only): another
/// user's link or file, for the owner rules to refuse.
pub fn lchown(path: &std::path::Path, uid: u32) {
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        path,
        Some(nix::unistd::Uid::from_raw(uid)),
        None,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// Whether this process can change user (it is root).
pub fn can_switch() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Runs `f` on a thread that is user and group `uid` (no supplementary groups); panics
/// when the process is not root (check [`can_switch`] first).
pub fn as_user<T: Send>(uid: u32, f: impl FnOnce() -> T + Send) -> T {
    assert!(
        can_switch(),
        "only root can run a test thread as another user"
    );
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                // SAFETY: raw syscalls that change this thread's credentials alone (libc's
                // wrappers would change every thread's); the thread ends after `f`.
                let results = unsafe {
                    [
                        libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()),
                        libc::syscall(libc::SYS_setresgid, uid, uid, uid),
                        libc::syscall(libc::SYS_setresuid, uid, uid, uid),
                    ]
                };
                assert_eq!(results, [0, 0, 0], "{}", std::io::Error::last_os_error());
                assert_eq!(nix::unistd::geteuid().as_raw(), uid);
                f()
            })
            .join()
            .unwrap()
    })
}

/// A directory user `uid` owns (mode 0700), removed when dropped.
pub fn dir_of(uid: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), Some(uid), Some(uid)).unwrap();
    dir
}
