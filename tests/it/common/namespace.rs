//! Mounts by a user other than root, each in a private mount namespace of its own.

use super::mount::{bin, login_args, TestGateway};
use super::{wait_for, StopOnDrop};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The unprivileged user the tests mount as, and another one.
pub const NOBODY: (u32, u32) = (65534, 65534);
pub const OTHER_USER: (u32, u32) = (65533, 65533);

fn check(result: libc::c_int, what: &str) {
    assert!(
        result == 0,
        "{what} failed: {}",
        std::io::Error::last_os_error()
    );
}

fn c_path(path: &Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap()
}

fn bind(source: &Path, target: &Path) {
    // SAFETY: both paths are valid NUL-terminated strings for the duration of the call.
    let result = unsafe {
        libc::mount(
            c_path(source).as_ptr(),
            c_path(target).as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    check(
        result,
        &format!("binding {} over {}", source.display(), target.display()),
    );
}

/// A private mount namespace in which `/dev/fuse` is a device node of the test's choosing
/// (say, open to one user, as an administrator grants FUSE to users) and the fusermount
/// helpers can be hidden. Nothing mounted in it shows outside, and its mounts vanish with
/// it, so these tests never touch the machine's own `/dev/fuse`.
pub struct FuseNamespace {
    ns: std::os::fd::OwnedFd,
    _dir: tempfile::TempDir,
}

impl FuseNamespace {
    /// `device_owner` owns the namespace's `/dev/fuse` (mode 0600); with `hide_helpers`,
    /// every `fusermount3`/`fusermount` where fuser and s3credsfs look is replaced by an
    /// empty, non-executable file, as if the fuse3 package were not installed.
    pub fn new(device_owner: (u32, u32), hide_helpers: bool) -> FuseNamespace {
        crate::common::require_root("it makes a mount namespace with a /dev/fuse of its own");
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().to_path_buf();
        let helpers = if hide_helpers { helper_paths() } else { vec![] };
        let ns = std::thread::spawn(move || {
            // SAFETY: plain syscalls on this thread; CLONE_NEWNS also unshares its fs state.
            check(unsafe { libc::unshare(libc::CLONE_NEWNS) }, "unshare");
            // SAFETY: "/" is a valid string; no propagation either way from here on.
            check(
                unsafe {
                    libc::mount(
                        std::ptr::null(),
                        c"/".as_ptr(),
                        std::ptr::null(),
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    )
                },
                "making / private",
            );
            // SAFETY: valid strings; a tmpfs only this namespace sees holds the device node.
            check(
                unsafe {
                    libc::mount(
                        c"tmpfs".as_ptr(),
                        c_path(&private).as_ptr(),
                        c"tmpfs".as_ptr(),
                        0,
                        c"mode=0755".as_ptr().cast(),
                    )
                },
                "mounting a tmpfs",
            );
            let node = private.join("fuse");
            // SAFETY: a valid path; 10:229 is the FUSE device.
            check(
                unsafe {
                    libc::mknod(
                        c_path(&node).as_ptr(),
                        libc::S_IFCHR | 0o600,
                        libc::makedev(10, 229),
                    )
                },
                "mknod",
            );
            std::os::unix::fs::chown(&node, Some(device_owner.0), Some(device_owner.1)).unwrap();
            bind(&node, Path::new("/dev/fuse"));
            let empty = private.join("empty");
            std::fs::write(&empty, "").unwrap();
            for helper in helpers {
                bind(&empty, &helper);
            }
            std::os::fd::OwnedFd::from(std::fs::File::open("/proc/thread-self/ns/mnt").unwrap())
        })
        .join()
        .unwrap();
        FuseNamespace { ns, _dir: dir }
    }

    /// Runs `f` on a thread inside the namespace, as `user` (uid, gid, no supplementary
    /// groups; per-thread credentials) or as root when `None`. Processes it spawns start
    /// in the namespace.
    pub fn run<T: Send>(&self, user: Option<(u32, u32)>, f: impl FnOnce() -> T + Send) -> T {
        use std::os::fd::AsRawFd;
        let ns = self.ns.as_raw_fd();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // SAFETY: plain syscalls that change only this thread's fs state,
                    // mount namespace and credentials (raw syscalls, not libc's
                    // process-wide wrappers).
                    unsafe {
                        check(libc::unshare(libc::CLONE_FS), "unshare(CLONE_FS)");
                        check(libc::setns(ns, libc::CLONE_NEWNS), "setns");
                        if let Some((uid, gid)) = user {
                            let none = std::ptr::null::<libc::gid_t>();
                            check(
                                libc::syscall(libc::SYS_setgroups, 0, none) as i32,
                                "setgroups",
                            );
                            check(
                                libc::syscall(libc::SYS_setresgid, gid, gid, gid) as i32,
                                "setresgid",
                            );
                            check(
                                libc::syscall(libc::SYS_setresuid, uid, uid, uid) as i32,
                                "setresuid",
                            );
                        }
                    }
                    f()
                })
                .join()
                .unwrap()
        })
    }

    /// The mountinfo line of what is mounted at `path` in the namespace, if anything.
    pub fn mount_line(&self, path: &Path) -> Option<String> {
        let wanted = path.display().to_string();
        self.run(None, || {
            let mountinfo = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
            mountinfo
                .lines()
                .rev()
                .find(|line| line.split(' ').nth(4) == Some(wanted.as_str()))
                .map(str::to_string)
        })
    }
}

/// Every file fuser or s3credsfs would run as the fusermount helper, resolved.
fn helper_paths() -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/sbin", "/bin", "/usr/sbin", "/usr/bin"].map(PathBuf::from));
    let mut found: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|dir| ["fusermount3", "fusermount"].map(|name| dir.join(name)))
        .filter_map(|candidate| candidate.canonicalize().ok())
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The errno of a failed call, `None` if it succeeded.
pub fn errno<T>(result: std::io::Result<T>) -> Option<i32> {
    result.err().map(|e| e.raw_os_error().unwrap_or(-1))
}

/// A foreground `s3credsfs mount` by [`NOBODY`] inside a [`FuseNamespace`], on
/// `HOME/creds` where HOME is a directory the user owns. Drop stops the daemon and
/// unmounts (as root) whatever is left.
pub struct UserMount {
    pub ns: FuseNamespace,
    pub home: PathBuf,
    pub path: PathBuf,
    pub child: Option<StopOnDrop>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl UserMount {
    /// A home for [`NOBODY`] in `ns`, nothing mounted yet.
    pub fn new(ns: FuseNamespace) -> UserMount {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(NOBODY.0), Some(NOBODY.1)).unwrap();
        let home = dir.path().to_path_buf();
        UserMount {
            ns,
            path: home.join("creds"),
            log: home.join("daemon.log"),
            home,
            child: None,
            _dir: dir,
        }
    }

    /// `s3credsfs ARGS...` as [`NOBODY`] in the namespace, with this HOME and `$PW` set.
    pub fn command(&self, args: &[&str]) -> Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = bin();
        cmd.args(args)
            .env("PW", s3credsfs::dev::gateway::DEFAULT_PASSWORD)
            .env("HOME", &self.home)
            .uid(NOBODY.0)
            .gid(NOBODY.1)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `cmd` to completion inside the namespace.
    pub fn output(&self, mut cmd: Command) -> std::process::Output {
        self.ns.run(None, move || cmd.output().unwrap())
    }

    /// Starts `s3credsfs mount --foreground` against `gw` (appending to the log).
    pub fn spawn(&mut self, gw: &TestGateway) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = self.command(&["mount", self.path.to_str().unwrap(), "--foreground"]);
        cmd.args(login_args(gw)).stdout(Stdio::null()).stderr(log);
        let child = self.ns.run(None, move || cmd.spawn().unwrap());
        self.child = Some(StopOnDrop::term(child));
    }

    /// Starts the daemon and waits until the user can read its status file.
    pub fn start(&mut self, gw: &TestGateway) {
        self.spawn(gw);
        wait_for("the user's mount to serve", Duration::from_secs(30), || {
            if let Ok(Some(status)) = self.child.as_mut().unwrap().try_wait() {
                panic!(
                    "the daemon exited ({status}) before mounting:\n{}",
                    self.log()
                );
            }
            let Some(line) = self.mount_line() else {
                return Err(format!("not mounted yet; daemon log:\n{}", self.log()));
            };
            let path = self.path.clone();
            if self
                .ns
                .run(Some(NOBODY), move || path.join("status").exists())
            {
                return Ok(());
            }
            Err(format!(
                "mounted ({line}) but no status file yet; daemon log:\n{}",
                self.log()
            ))
        });
    }

    /// The mountinfo line at the mountpoint in the namespace, if mounted.
    pub fn mount_line(&self) -> Option<String> {
        self.ns.mount_line(&self.path)
    }

    /// The daemons' stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("a daemon was started");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
    }

    /// Waits for the daemon to exit and returns its exit status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("a daemon was started");
        wait_for("the daemon to exit", Duration::from_secs(15), || {
            child.try_wait().unwrap()
        })
    }
}

impl Drop for UserMount {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            child.stop();
        }
        if self.mount_line().is_some() {
            let path = c_path(&self.path);
            // SAFETY: a valid path; root detaches the leftover mount in the namespace.
            self.ns.run(None, move || unsafe {
                libc::umount2(path.as_ptr(), libc::MNT_DETACH)
            });
        }
    }
}
