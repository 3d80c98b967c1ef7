//! The one clock along the credential path (login, STS, cache, filesystem): the system's,
//! and one tests move by hand. A leaf, so every layer can take it injected.

use crate::sync::lock;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

/// A wait a [`TimeSource`] hands out: owns everything it needs, so it can be awaited
/// while the caller holds locks of its own.
pub type Wait = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where the credential path reads the time and its jitter: the system clock and the OS
/// random source in production, a [`ManualClock`] and a fixed jitter in tests, so token
/// reuse, refresh timing, backoff and expiry are tested by moving the clock instead of
/// waiting.
pub trait TimeSource: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// A number in [0, 1) that spreads refreshes and retries over a fleet.
    fn jitter(&self) -> f64;
    /// Waits `for_` on this clock: the real time on the system's, and no time at all on a
    /// manual one, which moves itself forward instead, so a test of a retry's wait runs at
    /// once and still sees the time it would have waited.
    fn sleep(&self, for_: Duration) -> Wait {
        Box::pin(tokio::time::sleep(for_))
    }
}

/// The production time source.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemTime;

impl TimeSource for SystemTime {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn jitter(&self) -> f64 {
        crate::random::unit()
    }
}

/// A clock that moves only when told to, with a fixed jitter; for tests of the login, the
/// cache and the filesystem above them.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    jitter: f64,
}

impl ManualClock {
    /// A clock standing at `start` whose jitter is always `jitter` (clamped to [0, 1]).
    pub fn new(start: DateTime<Utc>, jitter: f64) -> Self {
        ManualClock {
            now: Mutex::new(start),
            jitter: jitter.clamp(0.0, 1.0),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = lock(&self.now);
        *now += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
    }
}

impl TimeSource for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *lock(&self.now)
    }
    fn jitter(&self) -> f64 {
        self.jitter
    }
    fn sleep(&self, for_: Duration) -> Wait {
        self.advance(for_);
        Box::pin(std::future::ready(()))
    }
}
