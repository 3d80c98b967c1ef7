//! Repeated identical failures logged once a minute with their count, not once per event:
//! a reader retrying every second against a failing profile ("refusing a read: no valid
//! credentials") would otherwise fill the log with one line per read.

use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// How often one message is logged again while it keeps happening.
pub const WINDOW: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// The most distinct messages remembered; past it the oldest are forgotten (and logged
/// again when they recur), so hostile variety cannot grow memory.
const MAX_KEYS: usize = 256;

/// What to do with one occurrence of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `suppressed` identical ones were not logged since it last was (0 the
    /// first time), within about a minute.
    Log { suppressed: u64 },
    /// Already logged within the window: counted, not logged.
    Quiet,
}

#[derive(Debug)]
struct Seen {
    logged_at: DateTime<Utc>,
    suppressed: u64,
}

/// Per message: when it was last logged and how many repeats were held back since.
#[derive(Debug, Default)]
pub struct Repeats {
    seen: HashMap<String, Seen>,
}

impl Repeats {
    /// Judges one occurrence of `message` at `now` (the caller's clock, so tests inject
    /// one).
    pub fn note(&mut self, message: &str, now: DateTime<Utc>) -> Verdict {
        if let Some(seen) = self.seen.get_mut(message) {
            // A clock set back counts as a new window, not as one that never ends.
            let since = now - seen.logged_at;
            if since >= chrono::TimeDelta::zero() && since < WINDOW {
                seen.suppressed += 1;
                return Verdict::Quiet;
            }
            let suppressed = seen.suppressed;
            *seen = Seen {
                logged_at: now,
                suppressed: 0,
            };
            return Verdict::Log { suppressed };
        }
        if self.seen.len() >= MAX_KEYS {
            if let Some(oldest) = self
                .seen
                .iter()
                .min_by_key(|(_, s)| s.logged_at)
                .map(|(k, _)| k.clone())
            {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(
            message.to_string(),
            Seen {
                logged_at: now,
                suppressed: 0,
            },
        );
        Verdict::Log { suppressed: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn a_repeated_message_is_logged_once_a_minute_with_its_count() {
        let mut r = Repeats::default();
        assert_eq!(r.note("a", at(0)), Verdict::Log { suppressed: 0 });
        for s in 1..60 {
            assert_eq!(r.note("a", at(s)), Verdict::Quiet, "{s}");
        }
        // Another message is its own.
        assert_eq!(r.note("b", at(30)), Verdict::Log { suppressed: 0 });
        assert_eq!(r.note("a", at(60)), Verdict::Log { suppressed: 59 });
        assert_eq!(r.note("a", at(61)), Verdict::Quiet);
        assert_eq!(r.note("a", at(500)), Verdict::Log { suppressed: 1 });
        assert_eq!(r.note("a", at(1000)), Verdict::Log { suppressed: 0 });
    }

    #[test]
    fn a_clock_set_back_starts_a_new_window() {
        let mut r = Repeats::default();
        assert_eq!(r.note("a", at(1000)), Verdict::Log { suppressed: 0 });
        assert_eq!(r.note("a", at(1010)), Verdict::Quiet);
        assert_eq!(r.note("a", at(0)), Verdict::Log { suppressed: 1 });
    }

    #[test]
    fn memory_is_bounded() {
        let mut r = Repeats::default();
        for i in 0..(MAX_KEYS as i64 * 3) {
            assert_eq!(
                r.note(&i.to_string(), at(i)),
                Verdict::Log { suppressed: 0 }
            );
        }
        assert_eq!(r.seen.len(), MAX_KEYS);
        // The newest are still known.
        let newest = (MAX_KEYS as i64 * 3 - 1).to_string();
        assert_eq!(r.note(&newest, at(MAX_KEYS as i64 * 3)), Verdict::Quiet);
    }
}
