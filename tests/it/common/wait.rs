//! Waiting on a condition with a deadline, never sleeping and hoping: every wait in the
//! tests goes through [`wait_for`] (or [`wait_for_async`] on a runtime), so a timeout
//! always says what was awaited and what was seen last.

use std::time::{Duration, Instant};

/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(20);

/// What one look at a condition saw: done (with what the wait returns), or not yet (with
/// the state seen instead, for the timeout's message).
pub trait Probe {
    /// What the wait returns once the condition holds.
    type Value;
    /// `Ok` when the condition holds, else a description of the state seen.
    fn seen(self) -> Result<Self::Value, String>;
}

/// A plain condition: there is no state to tell beyond "not yet".
impl Probe for bool {
    type Value = ();
    fn seen(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("the condition did not hold".into())
        }
    }
}

/// `Some(value)` once there (a child's exit status from `try_wait`, a parsed line).
impl<T> Probe for Option<T> {
    type Value = T;
    fn seen(self) -> Result<T, String> {
        self.ok_or_else(|| "nothing yet".into())
    }
}

/// `Ok(value)` once there; the error is the state seen (the probe's own words, or the
/// last I/O error).
impl<T, E: std::fmt::Display> Probe for Result<T, E> {
    type Value = T;
    fn seen(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Looks at `probe` until it holds or `deadline` passes; `Err` holds the last state seen.
/// Never panics itself: for Drop and clean-up paths, which must not panic.
pub fn poll_until<P: Probe>(
    deadline: Duration,
    mut probe: impl FnMut() -> P,
) -> Result<P::Value, String> {
    let start = Instant::now();
    loop {
        let last = match probe().seen() {
            Ok(value) => return Ok(value),
            Err(last) => last,
        };
        if start.elapsed() >= deadline {
            return Err(last);
        }
        std::thread::sleep(POLL);
    }
}

/// Looks at `probe` until it holds and returns its value; after `deadline` panics naming
/// `what` was awaited and the last state the probe saw.
pub fn wait_for<P: Probe>(what: &str, deadline: Duration, probe: impl FnMut() -> P) -> P::Value {
    poll_until(deadline, probe).unwrap_or_else(|last| timed_out(what, deadline, &last))
}

/// [`wait_for`] for a test on a runtime: the probe may await (a request, a fetch), and
/// the runtime keeps serving (the gateway) while the wait sleeps.
pub async fn wait_for_async<P: Probe>(
    what: &str,
    deadline: Duration,
    mut probe: impl std::ops::AsyncFnMut() -> P,
) -> P::Value {
    let start = Instant::now();
    loop {
        let last = match probe().await.seen() {
            Ok(value) => return value,
            Err(last) => last,
        };
        if start.elapsed() >= deadline {
            timed_out(what, deadline, &last)
        }
        tokio::time::sleep(POLL).await;
    }
}

fn timed_out(what: &str, deadline: Duration, last: &str) -> ! {
    panic!("timed out after {deadline:?} waiting for {what}; last seen: {last}")
}
