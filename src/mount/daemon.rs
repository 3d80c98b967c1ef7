//! Background mode: fork before any thread exists, let the child mount and fetch, and
//! have the parent wait (at most 30 s) for the child's one-line verdict on a pipe.

use crate::app_error::{AppError, Result};
use crate::exit_status::ExitStatus;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{ForkResult, Pid};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
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

    /// Tells the parent why the daemon could not start, and the exit status that
    /// says so, which the parent exits with.
    pub fn failed(mut self, error: &AppError) {
        let _ = writeln!(self.pipe, "ERR {} {error}", error.exit_status().code());
    }
}

/// Which side of the fork we are on.
pub enum Side {
    /// The parent: wait for the verdict with [`wait_for_child`].
    Parent { pipe: OwnedFd, child: Pid },
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
    let (read_end, write_end) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| AppError::Pipe(e.into()))?;
    // SAFETY: single-threaded here, so the child may run arbitrary code.
    match unsafe { nix::unistd::fork() }.map_err(|e| AppError::Fork(e.into()))? {
        ForkResult::Child => {
            drop(read_end);
            // Detach from the terminal's session so its signals do not reach us.
            let _ = nix::unistd::setsid();
            Ok(Side::Child(Notifier {
                pipe: std::fs::File::from(write_end),
            }))
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            Ok(Side::Parent {
                pipe: read_end,
                child,
            })
        }
    }
}

/// Waits for the child's verdict: `Ok(detail)` when it mounted, else the error it sent.
pub fn wait_for_child(pipe: OwnedFd, child: Pid, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    let mut file = std::fs::File::from(pipe);
    let mut text = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // poll(2) counts whole milliseconds: round up, or it gives up just before the
        // deadline.
        let wait =
            PollTimeout::try_from(left + Duration::from_micros(999)).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, wait) {
            Ok(0) if Instant::now() < deadline => continue,
            Ok(0) => {
                // The child is ours; it did not answer in time.
                let _ = kill(child, Signal::SIGTERM);
                return Err(AppError::NoVerdict(timeout));
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(AppError::Verdict(e.into())),
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
            Err(e) => return Err(AppError::Verdict(e)),
        }
    }
    let text = String::from_utf8_lossy(&text);
    let line = text.lines().next().unwrap_or_default();
    if let Some(detail) = line.strip_prefix("OK ") {
        return Ok(detail.to_string());
    }
    if let Some(rest) = line.strip_prefix("ERR ") {
        // Reap the child, which exits right after reporting.
        let _ = nix::sys::wait::waitpid(child, None);
        return Err(relayed(rest));
    }
    Err(AppError::DaemonVanished)
}

/// The daemon's `ERR` line after its prefix: the exit status's number, a space, the
/// sentence. A line without a known number keeps its whole text and a plain failure.
fn relayed(rest: &str) -> AppError {
    let parsed = rest.split_once(' ').and_then(|(code, message)| {
        let status = code.parse().ok().and_then(ExitStatus::from_code)?;
        Some((status, message))
    });
    let (status, message) = parsed.unwrap_or((ExitStatus::Failure, rest));
    AppError::Daemon {
        message: message.to_string(),
        status,
    }
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
    let _ = nix::unistd::dup2_stdin(&null);
    let _ = nix::unistd::dup2_stdout(&null);
    let _ = match log {
        Some(file) => nix::unistd::dup2_stderr(file),
        None => nix::unistd::dup2_stderr(&null),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A readiness pipe: the child's [`Notifier`] and the parent's end.
    fn pipe() -> (Notifier, OwnedFd) {
        let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let pipe = std::fs::File::from(write_end);
        (Notifier { pipe }, read_end)
    }

    /// A process of ours standing in for the daemon, killed and reaped when the test
    /// ends, even if it fails.
    struct Daemon(std::process::Child);

    impl Drop for Daemon {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn child(program: &str, args: &[&str]) -> (Daemon, Pid) {
        let child = std::process::Command::new(program)
            .args(args)
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        (Daemon(child), pid)
    }

    #[test]
    fn the_parent_gets_the_detail_of_the_ready_line() {
        let (notifier, read_end) = pipe();
        let (mut daemon, pid) = child("sleep", &["30"]);
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            notifier.ready("credentials valid until 2026-12-06T05:00:00Z");
        });
        let verdict = wait_for_child(read_end, pid, Duration::from_secs(10));
        writer.join().unwrap();
        assert_eq!(
            verdict.unwrap(),
            "credentials valid until 2026-12-06T05:00:00Z"
        );
        // Ready: the daemon runs on, untouched.
        assert!(daemon.0.try_wait().unwrap().is_none());
    }

    #[test]
    fn the_parent_relays_the_failure_and_reaps_the_daemon() {
        let (notifier, read_end) = pipe();
        let (mut daemon, pid) = child("true", &[]);
        let error = AppError::from(crate::error::Error::Config("bad setting; fix it".into()));
        notifier.failed(&error);
        let relayed = wait_for_child(read_end, pid, Duration::from_secs(10)).unwrap_err();
        assert_eq!(relayed.to_string(), "bad setting; fix it");
        assert_eq!(relayed.exit_status(), ExitStatus::Config);
        // Reaped by wait_for_child: nothing is left for anyone else to wait for.
        let gone = daemon.0.try_wait().unwrap_err();
        assert_eq!(gone.raw_os_error(), Some(libc::ECHILD), "{gone}");
    }

    #[test]
    fn a_daemon_that_closes_the_pipe_without_a_word_has_vanished() {
        let (notifier, read_end) = pipe();
        let (mut daemon, pid) = child("true", &[]);
        drop(notifier);
        let error = wait_for_child(read_end, pid, Duration::from_secs(10)).unwrap_err();
        assert!(matches!(error, AppError::DaemonVanished), "{error}");
        daemon.0.wait().unwrap();
    }

    #[test]
    fn a_silent_daemon_is_stopped_when_the_wait_is_over() {
        use std::os::unix::process::ExitStatusExt;
        let (notifier, read_end) = pipe();
        let (mut daemon, pid) = child("sleep", &["30"]);
        let timeout = Duration::from_millis(300);
        let started = Instant::now();
        let error = wait_for_child(read_end, pid, timeout).unwrap_err();
        let waited = started.elapsed();
        assert!(
            matches!(error, AppError::NoVerdict(t) if t == timeout),
            "{error}"
        );
        assert!(waited >= timeout, "gave up after {waited:?}");
        assert!(waited < timeout * 10, "gave up only after {waited:?}");
        // Told to stop (SIGTERM), not left running.
        assert_eq!(daemon.0.wait().unwrap().signal(), Some(libc::SIGTERM));
        drop(notifier);
    }

    #[test]
    fn the_thread_count_sees_every_thread() {
        // `fork` asserts a single thread with it (in debug builds): this test's thread
        // and the one it starts are two at least.
        let (stop, parked) = std::sync::mpsc::channel::<()>();
        let extra = std::thread::spawn(move || parked.recv());
        let counted = threads_in_process();
        assert!(counted >= 2, "{counted} threads");
        stop.send(()).unwrap();
        extra.join().unwrap().unwrap();
    }

    #[test]
    fn the_daemons_exit_status_crosses_the_pipe() {
        let error = AppError::from(crate::error::Error::Config("bad setting; fix it".into()));
        let mut line = Vec::new();
        writeln!(line, "ERR {} {error}", error.exit_status().code()).unwrap();
        let line = String::from_utf8(line).unwrap();
        let rest = line.trim_end().strip_prefix("ERR ").unwrap();
        let parent_sees = relayed(rest);
        assert_eq!(parent_sees.exit_status(), ExitStatus::Config);
        assert_eq!(parent_sees.to_string(), "bad setting; fix it");
        // An older daemon's line (no number) keeps its text.
        let old = relayed("cannot mount on /m (denied)");
        assert_eq!(old.exit_status(), ExitStatus::Failure);
        assert_eq!(old.to_string(), "cannot mount on /m (denied)");
    }
}
