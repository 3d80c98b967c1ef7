//! The staleness rule and the refresh schedule: pure functions of times and settings, so
//! tests drive them with any clock.

use super::snapshot::Snapshot;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// What a read should do, decided by [`plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The snapshot is fresh enough (or valid while refreshes back off): serve it.
    Serve,
    /// Serve the snapshot now, and refresh in the background (the refresh-ahead window).
    ServeAndRefresh,
    /// Refresh first; on failure serve the snapshot if it is still valid.
    Refresh,
    /// No valid credentials and refreshes are backing off: fail with the last error.
    FailFast,
}

/// The staleness rule, pure so tests can drive it with any clock.
pub fn plan(
    now: DateTime<Utc>,
    snapshot: Option<&Snapshot>,
    backoff_until: Option<DateTime<Utc>>,
) -> Plan {
    let valid = snapshot.is_some_and(|s| s.valid_at(now));
    let backing_off = backoff_until.is_some_and(|until| now < until);
    if valid && snapshot.is_some_and(|s| now < s.refresh_at) {
        if !backing_off && snapshot.is_some_and(|s| now >= s.refresh_ahead_at) {
            return Plan::ServeAndRefresh;
        }
        return Plan::Serve;
    }
    match backoff_until {
        Some(until) if now < until => {
            if valid {
                Plan::Serve
            } else {
                Plan::FailFast
            }
        }
        _ => Plan::Refresh,
    }
}

/// The longest credential lifetime believed when scheduling a refresh: the CSM STS issues
/// one hour, and Ceph allows at most twelve.
pub const MAX_BELIEVED_LIFETIME: chrono::Duration = chrono::Duration::hours(36);

/// When to refresh credentials fetched at `fetched`: `min_validity` (plus up to 10% of it,
/// at most a minute, of jitter so a fleet spreads out) before expiry. When the STS issues
/// credentials that live no longer than `min_validity`, refresh at half their life rather
/// than on every read.
pub fn refresh_at(
    fetched: DateTime<Utc>,
    expiration: DateTime<Utc>,
    min_validity: Duration,
    jitter_unit: f64,
) -> DateTime<Utc> {
    // An `Expiration` years away (a broken or hostile STS) must not mean "never refresh".
    let horizon = fetched
        .checked_add_signed(MAX_BELIEVED_LIFETIME)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let expiration = std::cmp::min(expiration, horizon);
    let lifetime = expiration - fetched;
    if too_short(lifetime, min_validity) {
        return fetched + lifetime / 2;
    }
    let min_validity = chrono::Duration::from_std(min_validity).unwrap_or(chrono::Duration::MAX);
    let max_jitter = std::cmp::min(min_validity / 10, chrono::Duration::seconds(60));
    let jitter = chrono::Duration::milliseconds(
        (max_jitter.num_milliseconds() as f64 * jitter_unit.clamp(0.0, 1.0)) as i64,
    );
    expiration
        .checked_sub_signed(min_validity + jitter)
        .map_or(fetched, |t| std::cmp::max(t, fetched))
}

/// When a read (or the keeper) starts a background refresh of credentials due at
/// `refresh_at`: at a random moment of the refresh-ahead window, which opens
/// `refresh_ahead` earlier but never before half their life has passed (so short-lived
/// credentials are not refreshed on every read), and closes at `refresh_at`. Jitter 1 is
/// the window's opening, 0 its close. The spread keeps a fleet that fetched at one moment
/// (a whole system booted at once) from refreshing in one wave every interval after:
/// without it the window's opening, half-life for the default settings, has no jitter
/// at all and the boot storm's wave comes back every half hour for good.
pub fn refresh_ahead_at(
    fetched: DateTime<Utc>,
    refresh_at: DateTime<Utc>,
    expiration: DateTime<Utc>,
    refresh_ahead: Duration,
    jitter_unit: f64,
) -> DateTime<Utc> {
    let half_life = fetched + (std::cmp::max(expiration, fetched) - fetched) / 2;
    let ahead = chrono::Duration::from_std(refresh_ahead).unwrap_or(chrono::Duration::MAX);
    let early = refresh_at
        .checked_sub_signed(ahead)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let opens = std::cmp::min(std::cmp::max(early, half_life), refresh_at);
    let window_ms = (refresh_at - opens).num_milliseconds() as f64;
    let later = (1.0 - jitter_unit.clamp(0.0, 1.0)) * window_ms;
    opens + chrono::Duration::milliseconds(later as i64)
}

/// Whether credentials living `lifetime` can never keep `min_validity` in hand: they are
/// then refreshed at half their life instead of on every read.
pub(super) fn too_short(lifetime: chrono::Duration, min_validity: Duration) -> bool {
    lifetime <= chrono::Duration::from_std(min_validity).unwrap_or(chrono::Duration::MAX)
}

/// The longest wait between two attempts of a failing refresh: see [`backoff_delay`].
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Delay before the next attempt after `failures` consecutive failures: 1 s doubling to
/// [`BACKOFF_MAX`], scaled by a random factor in [0.5, 1] so many nodes do not retry in
/// step.
pub fn backoff_delay(failures: u32, jitter_unit: f64) -> Duration {
    let base = Duration::from_secs(1) * 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    let capped = std::cmp::min(base, BACKOFF_MAX);
    capped.mul_f64(0.5 + 0.5 * jitter_unit.clamp(0.0, 1.0))
}

/// The wait after the gateway said it is overloaded (HTTP 429 or 503), give or take
/// [`OVERLOAD_SPREAD`]: a minute from the first such answer, without the doubling from
/// 1 s. A fleet booting together against a gateway that serves C calls a second must not
/// come back within seconds: those refused would offer several times C (BENCHMARKS.md,
/// the fleet's boot storm). Not longer: once the gateway keeps up, every node waiting
/// gets its turn within one such wait, so the last one is served soon after the gateway
/// has caught up. An unreachable or slow gateway, or a 502/504, keeps the doubling from
/// 1 s, which brings a node back quickly after a blip.
pub const OVERLOAD_DELAY: Duration = Duration::from_secs(60);

/// How far [`OVERLOAD_DELAY`] is moved either way at random, so nodes refused in the same
/// second come back spread over 20 s.
pub const OVERLOAD_SPREAD: Duration = Duration::from_secs(10);

/// Delay before the next attempt after `failures` consecutive failures, the last of which
/// was the gateway saying it is overloaded when `overloaded`: [`OVERLOAD_DELAY`] ±
/// [`OVERLOAD_SPREAD`], else [`backoff_delay`].
pub fn retry_delay(failures: u32, overloaded: bool, jitter_unit: f64) -> Duration {
    match overloaded {
        true => {
            OVERLOAD_DELAY - OVERLOAD_SPREAD
                + (OVERLOAD_SPREAD * 2).mul_f64(jitter_unit.clamp(0.0, 1.0))
        }
        false => backoff_delay(failures, jitter_unit),
    }
}
