//! The parent of a background mount waits for its daemon's verdict on a pipe
//! (`mount::daemon::wait_for_child`): a daemon that never reports is stopped and named
//! after the timeout, and one that dies without a word is reported as such.

use s3credsfs::mount::daemon::wait_for_child;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A pipe: (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: just created, owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

#[test]
fn a_daemon_that_never_reports_is_stopped_after_the_timeout() {
    let (read, _write) = pipe();
    // Stands for a daemon wedged before it could report (the pipe stays open).
    let mut daemon = crate::common::StopOnDrop::kill(
        Command::new("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let err = wait_for_child(
        read,
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        Duration::from_secs(1),
    )
    .unwrap_err();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        err.to_string(),
        "the background daemon did not report within 1s; run with --foreground to see what \
         it is doing"
    );
    // It was told to stop, not left running.
    let status = crate::common::wait_for("the daemon to stop", Duration::from_secs(10), || {
        daemon.try_wait().unwrap()
    });
    assert_eq!(status.signal(), Some(libc::SIGTERM));
}

#[test]
fn a_daemon_that_dies_without_a_word_is_reported() {
    let (read, write) = pipe();
    // The daemon's end closes with nothing written, as when it is killed.
    drop(write);
    let mut daemon = crate::common::StopOnDrop::kill(Command::new("true").spawn().unwrap());
    let started = Instant::now();
    let err = wait_for_child(
        read,
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        Duration::from_secs(30),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the background daemon exited before mounting; run with --foreground to see why"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "told at once, not after the timeout"
    );
    let _ = daemon.wait();
}
