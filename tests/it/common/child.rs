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
