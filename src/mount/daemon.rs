//! Background mode: fork before any thread exists, let the child mount and fetch, and
//! have the parent wait (at most 30 s) for the child's one-line verdict on a pipe.

use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// How long the parent waits for the daemon's verdict.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The child's end of the readiness pipe.
pub struct Notifier {
    pipe: std::fs::File,
}

impl Notifier {
    /// Tells the parent the mount is ready; `detail` is printed by the parent.
    pub fn ready(mut self, detail: &str) {
        let _ = writeln!(self.pipe, "OK {detail}");
    }

    /// Tells the parent why the daemon could not start.
    pub fn failed(mut self, error: &Error) {
        let _ = writeln!(self.pipe, "ERR {error}");
    }
}

/// Which side of the fork we are on.
pub enum Side {
    /// The parent: wait for the verdict with [`wait_for_child`].
    Parent { pipe: OwnedFd, child: libc::pid_t },
    /// The child: carry on as the daemon.
    Child(Notifier),
}

fn threads_in_process() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(1)
}

/// Forks. Must be called while the process has a single thread.
pub fn fork() -> Result<Side> {
    debug_assert_eq!(threads_in_process(), 1, "fork with threads running");
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::Lifecycle(format!(
            "cannot create a pipe ({})",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: fds were just created and are owned by nobody else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: single-threaded here, so the child may run arbitrary code.
    match unsafe { libc::fork() } {
        -1 => Err(Error::Lifecycle(format!(
            "cannot fork ({})",
            std::io::Error::last_os_error()
        ))),
        0 => {
            drop(read_end);
            // SAFETY: detach from the terminal's session so its signals do not reach us.
            unsafe { libc::setsid() };
            Ok(Side::Child(Notifier {
                pipe: std::fs::File::from(write_end),
            }))
        }
        child => {
            drop(write_end);
            Ok(Side::Parent {
                pipe: read_end,
                child,
            })
        }
    }
}

/// Waits for the child's verdict: `Ok(detail)` when it mounted, else the error it sent.
pub fn wait_for_child(pipe: OwnedFd, child: libc::pid_t, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    let mut file = std::fs::File::from(pipe);
    let mut text = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut poll = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready =
            unsafe { libc::poll(&mut poll, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if ready == 0 {
            // SAFETY: the child is ours; it did not answer in time.
            unsafe { libc::kill(child, libc::SIGTERM) };
            return Err(Error::Lifecycle(format!(
                "the background daemon did not report within {}s; run with --foreground to see what it is doing",
                timeout.as_secs()
            )));
        }
        let mut buf = [0u8; 4096];
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                text.extend_from_slice(&buf[..n]);
                if text.contains(&b'\n') {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::Lifecycle(format!(
                    "cannot read the daemon's verdict ({e})"
                )))
            }
        }
    }
    let text = String::from_utf8_lossy(&text);
    let line = text.lines().next().unwrap_or_default();
    if let Some(detail) = line.strip_prefix("OK ") {
        return Ok(detail.to_string());
    }
    if let Some(message) = line.strip_prefix("ERR ") {
        // Reap the child, which exits right after reporting.
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(child, &mut status, 0) };
        return Err(Error::Config(message.to_string()));
    }
    Err(Error::Lifecycle(
        "the background daemon exited before mounting; run with --foreground to see why".into(),
    ))
}

/// Points stdin and stdout at /dev/null and stderr at the log (or /dev/null), so the
/// daemon holds no terminal.
pub fn detach_stdio(log: Option<&std::fs::File>) {
    let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    else {
        return;
    };
    let err_fd = log.map_or(null.as_raw_fd(), |f| f.as_raw_fd());
    // SAFETY: dup2 onto the standard descriptors with descriptors we hold open.
    unsafe {
        libc::dup2(null.as_raw_fd(), 0);
        libc::dup2(null.as_raw_fd(), 1);
        libc::dup2(err_fd, 2);
    }
}
