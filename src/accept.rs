//! Taking connections off a listener, for both servers in this crate (the container
//! endpoint and the built-in gateway): what they share is surviving a full descriptor
//! table without a busy loop or a flooded log. What they do with a connection differs and
//! stays in each (the endpoint's slots, eviction and deadlines; the emulator's TLS and
//! injected faults).

use crate::sync::lock;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

/// The first pause after accept() fails (typically EMFILE), doubled up to the maximum,
/// so a full descriptor table does not turn the accept loop into a busy spin.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest pause between failed accepts.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// At most one line per kind of refusal per this interval, so a neighbour cannot fill
/// the log.
pub const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// A listener whose `accept` only returns connections: failures are paused over and
/// logged (at most one line per [`WARN_INTERVAL`]).
pub(crate) struct Acceptor {
    listener: TcpListener,
    /// Names the server in log lines ("container endpoint", "dev-gateway").
    server: &'static str,
    backoff: Duration,
    failures: Throttle,
}

impl Acceptor {
    pub(crate) fn new(listener: TcpListener, server: &'static str) -> Acceptor {
        Acceptor {
            listener,
            server,
            backoff: ACCEPT_BACKOFF_MIN,
            failures: Throttle::new(WARN_INTERVAL),
        }
    }

    /// The next connection. Cancel-safe (the emulator selects on it): the pause grows
    /// before it is slept, and the listener's own accept is cancel-safe.
    pub(crate) async fn accept(&mut self) -> TcpStream {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    self.backoff = ACCEPT_BACKOFF_MIN;
                    return stream;
                }
                Err(error) => {
                    if let Some(held_back) = self.failures.hit(Instant::now()) {
                        tracing::warn!(
                            error = %error,
                            held_back,
                            "{}: accept failed (out of descriptors?); pausing before trying \
                             again; raise `ulimit -n` if this persists",
                            self.server
                        );
                    }
                    let pause = self.backoff;
                    self.backoff = next_pause(pause);
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
}

/// The pause after `pause` when accept() fails again: twice as long, at most
/// [`ACCEPT_BACKOFF_MAX`].
fn next_pause(pause: Duration) -> Duration {
    (pause * 2).min(ACCEPT_BACKOFF_MAX)
}

/// Lets one log line through per interval and counts the events held back in between,
/// so a flood of bad requests costs the log one line a minute.
#[derive(Debug)]
pub(crate) struct Throttle {
    interval: Duration,
    /// When the last line was let through, and how many events were held back since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    /// A throttle letting one line through per `interval`.
    pub(crate) fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// Counts one event at `now`. `Some(n)`: log a line now, saying `n` more events were
    /// held back since the last one; `None`: stay quiet.
    pub(crate) fn hit(&self, now: Instant) -> Option<u64> {
        let mut state = lock(&self.state);
        match state.0 {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                state.1 += 1;
                None
            }
            _ => {
                state.0 = Some(now);
                Some(std::mem::take(&mut state.1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Failed accepts pause 0.1, 0.2, 0.4, 0.8 s, then 1 s each: never shorter (which
    /// would spin the accept loop while the descriptor table is full), never longer.
    #[test]
    fn accept_pauses_double_up_to_the_maximum() {
        let mut pause = ACCEPT_BACKOFF_MIN;
        let mut pauses = Vec::new();
        for _ in 0..6 {
            pauses.push(pause.as_millis());
            pause = next_pause(pause);
        }
        assert_eq!(pauses, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn the_throttle_lets_one_line_a_minute_through_and_counts_the_rest() {
        let throttle = Throttle::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(throttle.hit(t0), Some(0));
        for s in 1..60 {
            assert_eq!(throttle.hit(t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(throttle.hit(t0 + Duration::from_secs(60)), Some(59));
        assert_eq!(throttle.hit(t0 + Duration::from_secs(61)), None);
        assert_eq!(throttle.hit(t0 + Duration::from_secs(200)), Some(1));
    }
}
