//! The one guard for every child process a test starts: a daemon, a server, a client.

use super::wait::poll_until;
use std::process::Child;
use std::time::Duration;

/// A child process that is stopped and reaped when the guard is dropped, also when the
/// test panics: no test leaves a process or a zombie behind. A daemon is asked first
/// (SIGTERM, so it unmounts) and killed only if it has not ended within its grace time; a
/// server or a client is killed at once.
pub struct StopOnDrop {
    child: Child,
    grace: Duration,
}

impl StopOnDrop {
    /// Killed at once on drop: a server or a client, which has nothing to clean up.
    pub fn kill(child: Child) -> StopOnDrop {
        StopOnDrop {
            child,
            grace: Duration::ZERO,
        }
    }

    /// Sent SIGTERM on drop and given 10 s to end before it is killed: a daemon, which
    /// unmounts on SIGTERM.
    pub fn term(child: Child) -> StopOnDrop {
        StopOnDrop {
            child,
            grace: Duration::from_secs(10),
        }
    }

    /// Stops and reaps the child now, unless it has already ended; then does nothing.
    pub fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        if !self.grace.is_zero() {
            // SAFETY: signalling our own child, not yet reaped (so its pid is still ours).
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let _ = poll_until(self.grace, || self.child.try_wait().ok().flatten());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl std::ops::Deref for StopOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl std::ops::DerefMut for StopOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Kills every other process that holds an end of one of the pipes whose inodes are
/// given: what a test reading a child's output uses when the child has ended but
/// something it started (a command left running) still holds the pipe, so the test
/// neither waits forever nor leaves that process behind.
pub fn kill_pipe_holders(pipe_inodes: &[u64]) -> Vec<i32> {
    let me = std::process::id() as i32;
    let wanted: Vec<String> = pipe_inodes.iter().map(|i| format!("pipe:[{i}]")).collect();
    let mut killed = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return killed;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| wanted.iter().any(|w| target.as_os_str() == w.as_str()))
        });
        if holds {
            // SAFETY: kill(2) with a pid read from /proc and a valid signal number.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed.push(pid);
        }
    }
    killed
}
