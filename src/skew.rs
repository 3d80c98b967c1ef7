//! This host's clock against the gateway's, read from the HTTP `Date` header of every
//! gateway reply. Tokens and credentials carry absolute times: a clock off by minutes
//! makes fresh ones look expired (or not yet valid), which otherwise shows up only as
//! puzzling min-validity warnings or refused tokens.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use std::sync::Mutex;

/// More than this between the two clocks, in either direction, gets a warning. The
/// `Date` header has whole seconds, and a reply takes a moment: 30 s is well clear of both.
pub const MAX_SKEW_SECONDS: i64 = 30;

/// The gateway's time from a `Date` header value (`Sun, 06 Nov 1994 08:49:37 GMT`), if it
/// is one.
pub fn parse_date(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(value.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// What the tracker decided about one reply's `Date`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Within bounds, or the same skew as already reported: nothing to say.
    Quiet,
    /// Skewed beyond [`MAX_SKEW_SECONDS`] (first time, or by a different amount): warn.
    Warn(String),
    /// Back within bounds after a warning: say so once.
    Recovered,
}

/// Remembers the skew last warned about, so a daemon warns when the skew appears or
/// changes, not on every request.
#[derive(Debug, Default)]
pub struct Tracker {
    warned: Option<i64>,
    /// The warning in force, for `status`, until the clocks agree again.
    warning: Option<String>,
}

impl Tracker {
    /// Judges one reply from `host` whose `Date` said `gateway`, received at `local`.
    pub fn observe(&mut self, host: &str, gateway: DateTime<Utc>, local: DateTime<Utc>) -> Verdict {
        let skew = (gateway - local).num_seconds();
        if skew.abs() <= MAX_SKEW_SECONDS {
            self.warning = None;
            return match self.warned.take() {
                Some(_) => Verdict::Recovered,
                None => Verdict::Quiet,
            };
        }
        // The same skew give or take the header's rounding: already said.
        if self
            .warned
            .is_some_and(|w| (w - skew).abs() <= MAX_SKEW_SECONDS)
        {
            return Verdict::Quiet;
        }
        self.warned = Some(skew);
        let warning = sentence(host, gateway, local);
        self.warning = Some(warning.clone());
        Verdict::Warn(warning)
    }

    /// The warning in force: the last one given, unless the clocks agreed since.
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }
}

/// The warning: both times, which way, and the fix.
pub fn sentence(host: &str, gateway: DateTime<Utc>, local: DateTime<Utc>) -> String {
    let skew = (gateway - local).num_seconds();
    // Whole minutes once they matter: the header's seconds are rounded anyway.
    let shown_skew = match skew.unsigned_abs() {
        s if s >= 120 => (s + 30) / 60 * 60,
        s => s,
    };
    let by = humantime::format_duration(std::time::Duration::from_secs(shown_skew));
    let way = if skew > 0 { "behind" } else { "ahead of" };
    let shown = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    format!(
        "this host's clock is {by} {way} the gateway's (the gateway {host} says {}, this host \
         {}); tokens and credentials would look expired or not yet valid: sync this host's \
         clock (chronyd or NTP: `chronyc tracking`, `timedatectl status`)",
        shown(gateway),
        shown(local)
    )
}

/// The process's tracker: one per process is enough, its gateways share one clock.
static TRACKER: Mutex<Tracker> = Mutex::new(Tracker {
    warned: None,
    warning: None,
});

/// This process's clock warning in force, if any, for `status`.
pub fn current_warning() -> Option<String> {
    TRACKER
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .warning()
        .map(str::to_string)
}

/// Checks one reply's `Date` header from `host` against this host's clock now, and logs
/// a warning when they are more than [`MAX_SKEW_SECONDS`] apart.
pub fn check(host: &str, date: Option<&str>) {
    let Some(gateway) = date.and_then(parse_date) else {
        return;
    };
    let verdict = TRACKER.lock().unwrap_or_else(|e| e.into_inner()).observe(
        host,
        gateway,
        Utc::now().trunc_subsecs(0),
    );
    match verdict {
        Verdict::Quiet => {}
        Verdict::Warn(sentence) => tracing::warn!("{sentence}"),
        Verdict::Recovered => {
            tracing::info!(host, "this host's clock agrees with the gateway's again")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn reads_http_dates() {
        assert_eq!(
            parse_date("Fri, 15 Jan 2027 08:00:00 GMT"),
            DateTime::parse_from_rfc3339("2027-01-15T08:00:00Z")
                .ok()
                .map(|t| t.with_timezone(&Utc))
        );
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(parse_date(""), None);
    }

    #[test]
    fn warns_beyond_thirty_seconds_either_way() {
        for (skew, warns) in [
            (0, false),
            (30, false),
            (-30, false),
            (31, true),
            (-31, true),
            (7200, true),
            (-3000, true),
        ] {
            let verdict = Tracker::default().observe("gw", at(skew), at(0));
            assert_eq!(matches!(verdict, Verdict::Warn(_)), warns, "{skew}");
        }
    }

    #[test]
    fn the_sentence_gives_both_times_the_direction_and_the_fix() {
        let ahead = sentence("gw.example", at(7200), at(0));
        assert_eq!(
            ahead,
            "this host's clock is 2h behind the gateway's (the gateway gw.example says \
             2027-01-15T10:00:00Z, this host 2027-01-15T08:00:00Z); tokens and credentials \
             would look expired or not yet valid: sync this host's clock (chronyd or NTP: \
             `chronyc tracking`, `timedatectl status`)"
        );
        let behind = sentence("gw", at(0), at(3000));
        assert!(behind.starts_with("this host's clock is 50m ahead of the gateway's"));
        let rounded = sentence("gw", at(7199), at(0));
        assert!(
            rounded.starts_with("this host's clock is 2h behind"),
            "{rounded}"
        );
        let short = sentence("gw", at(0), at(45));
        assert!(
            short.starts_with("this host's clock is 45s ahead of"),
            "{short}"
        );
    }

    #[test]
    fn a_skew_is_told_once_until_it_changes_or_recovers() {
        let mut t = Tracker::default();
        assert!(matches!(t.observe("gw", at(100), at(0)), Verdict::Warn(_)));
        assert_eq!(t.observe("gw", at(101), at(0)), Verdict::Quiet);
        assert_eq!(t.observe("gw", at(1100), at(1000)), Verdict::Quiet);
        assert!(matches!(t.observe("gw", at(900), at(0)), Verdict::Warn(_)));
        assert_eq!(t.observe("gw", at(5), at(0)), Verdict::Recovered);
        assert_eq!(t.observe("gw", at(5), at(0)), Verdict::Quiet);
        assert!(matches!(t.observe("gw", at(0), at(100)), Verdict::Warn(_)));
    }

    #[test]
    fn the_warning_stays_in_force_until_the_clocks_agree() {
        let mut t = Tracker::default();
        assert_eq!(t.warning(), None);
        let Verdict::Warn(said) = t.observe("gw", at(100), at(0)) else {
            panic!("no warning")
        };
        assert_eq!(t.warning(), Some(said.as_str()));
        assert_eq!(t.observe("gw", at(101), at(0)), Verdict::Quiet);
        assert_eq!(t.warning(), Some(said.as_str()), "still in force");
        t.observe("gw", at(0), at(0));
        assert_eq!(t.warning(), None);
    }
}
