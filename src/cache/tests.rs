use super::*;
use crate::secret::Secret;
use std::sync::atomic::{AtomicUsize, Ordering};

fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
}

fn creds(expiration: DateTime<Utc>) -> Credentials {
    Credentials {
        access_key_id: "AK".into(),
        secret_access_key: Secret::new("SK"),
        session_token: Secret::new("ST"),
        expiration,
        endpoint_url: "http://rgw".into(),
    }
}

fn snapshot(refresh: i64, expiry: i64) -> Snapshot {
    Snapshot {
        generation: 1,
        creds: creds(t(expiry)),
        fetched_at: t(0),
        refresh_at: t(refresh),
        refresh_ahead_at: t(refresh),
    }
}

#[test]
fn the_staleness_rule() {
    let s = snapshot(100, 200);
    assert_eq!(plan(t(0), None, None), Plan::Refresh);
    assert_eq!(plan(t(99), Some(&s), None), Plan::Serve);
    assert_eq!(plan(t(100), Some(&s), None), Plan::Refresh);
    assert_eq!(plan(t(250), Some(&s), None), Plan::Refresh);
    // Backing off: serve what is still valid, fail fast when nothing is.
    assert_eq!(plan(t(150), Some(&s), Some(t(160))), Plan::Serve);
    assert_eq!(plan(t(210), Some(&s), Some(t(220))), Plan::FailFast);
    assert_eq!(plan(t(0), None, Some(t(10))), Plan::FailFast);
    assert_eq!(plan(t(221), Some(&s), Some(t(220))), Plan::Refresh);
    // Never serve expired credentials, even when the refresh time was set too late.
    let odd = snapshot(300, 200);
    assert_eq!(plan(t(200), Some(&odd), None), Plan::Refresh);
    // The refresh-ahead window: served at once with a background refresh, except while
    // refreshes back off; below min-validity a reader waits as before.
    let ahead = Snapshot {
        refresh_ahead_at: t(80),
        ..snapshot(100, 200)
    };
    assert_eq!(plan(t(79), Some(&ahead), None), Plan::Serve);
    assert_eq!(plan(t(80), Some(&ahead), None), Plan::ServeAndRefresh);
    assert_eq!(plan(t(99), Some(&ahead), None), Plan::ServeAndRefresh);
    assert_eq!(plan(t(90), Some(&ahead), Some(t(95))), Plan::Serve);
    assert_eq!(
        plan(t(96), Some(&ahead), Some(t(95))),
        Plan::ServeAndRefresh
    );
    assert_eq!(plan(t(100), Some(&ahead), None), Plan::Refresh);
}

#[test]
fn refresh_ahead_never_cuts_below_half_the_lifetime() {
    let ten_minutes = Duration::from_secs(600);
    // An hour's credentials due at 40 min: the window opens at 30 min.
    assert_eq!(
        refresh_ahead_at(t(0), t(2400), t(3600), ten_minutes, 1.0),
        t(1800)
    );
    // A window wider than the first half of the life starts at half-life.
    assert_eq!(
        refresh_ahead_at(t(0), t(2400), t(3600), Duration::from_secs(3000), 1.0),
        t(1800)
    );
    assert_eq!(
        refresh_ahead_at(t(0), t(2400), t(3600), Duration::ZERO, 1.0),
        t(2400)
    );
    // Due at half-life already (short-lived credentials): no earlier window.
    assert_eq!(
        refresh_ahead_at(t(0), t(300), t(600), ten_minutes, 1.0),
        t(300)
    );
    // A small window: exactly refresh-ahead early.
    assert_eq!(
        refresh_ahead_at(t(0), t(2400), t(3600), Duration::from_secs(60), 1.0),
        t(2340)
    );
    // Never after the refresh time, even for odd inputs.
    assert_eq!(refresh_ahead_at(t(0), t(10), t(4), ten_minutes, 1.0), t(2));
    assert_eq!(
        refresh_ahead_at(t(0), t(2400), t(3600), Duration::MAX, 1.0),
        t(1800)
    );
}

/// The refresh-ahead moment is spread over the whole window, from its opening (jitter 1)
/// to the refresh time (jitter 0): a fleet that fetched at one moment must not refresh in
/// one wave every interval after (`scripts/fleet`, the scenario after a boot storm).
#[test]
fn refresh_ahead_is_spread_over_its_window_by_jitter() {
    let ten_minutes = Duration::from_secs(600);
    let ahead = |jitter| refresh_ahead_at(t(0), t(2400), t(3600), ten_minutes, jitter);
    assert_eq!(ahead(1.0), t(1800), "the window's opening");
    assert_eq!(ahead(0.5), t(2100), "its middle");
    assert_eq!(ahead(0.0), t(2400), "the refresh time, never later");
    assert_eq!(ahead(-3.0), t(2400), "jitter is clamped");
    assert_eq!(ahead(7.0), t(1800), "jitter is clamped");
    // Credentials due at half-life: no window to spread over.
    assert_eq!(
        refresh_ahead_at(t(0), t(300), t(600), ten_minutes, 0.3),
        t(300)
    );
    // Refresh-ahead off: the refresh time, whatever the jitter.
    assert_eq!(
        refresh_ahead_at(t(0), t(2400), t(3600), Duration::ZERO, 0.7),
        t(2400)
    );
}

#[test]
fn refresh_time_keeps_min_validity_with_jitter() {
    let twenty = Duration::from_secs(1200);
    assert_eq!(refresh_at(t(0), t(3600), twenty, 0.0), t(2400));
    assert_eq!(
        refresh_at(t(0), t(3600), twenty, 1.0),
        t(2340),
        "at most a minute early"
    );
    assert_eq!(
        refresh_at(t(0), t(3600), Duration::from_secs(100), 1.0),
        t(3490),
        "10% of min-validity"
    );
    // Lifetime shorter than min-validity: half-life, not every read.
    assert_eq!(refresh_at(t(0), t(600), twenty, 0.5), t(300));
    // Exactly min-validity of life is too short too, else it would refresh at once.
    assert_eq!(refresh_at(t(0), t(1200), twenty, 0.5), t(600));
}

/// A minute at most, not five: a fleet whose credentials expired during a long outage
/// must all get new ones within 1.3 × N/C of the gateway's return (`scripts/fleet`,
/// BENCHMARKS.md); with five minutes the last nodes waited up to five minutes after it.
#[test]
fn backoff_doubles_to_a_minute() {
    let secs = |n| backoff_delay(n, 1.0).as_secs();
    assert_eq!(
        [
            secs(1),
            secs(2),
            secs(3),
            secs(6),
            secs(7),
            secs(9),
            secs(1000)
        ],
        [1, 2, 4, 32, 60, 60, 60]
    );
    assert_eq!(BACKOFF_MAX, Duration::from_secs(60));
    assert_eq!(
        backoff_delay(3, 0.0),
        Duration::from_secs(2),
        "jitter halves at most"
    );
    let r = crate::random::unit();
    assert!((0.0..1.0).contains(&r));
}

/// A fetcher that counts calls, waits a little (so callers overlap) and can fail.
struct Fake {
    calls: AtomicUsize,
    fail: std::sync::atomic::AtomicBool,
    panic: std::sync::atomic::AtomicBool,
    /// Keycloak refuses the password.
    refuse: std::sync::atomic::AtomicBool,
    /// The password file gives another password at the next look.
    password_changes: std::sync::atomic::AtomicBool,
    /// Looks at the password source so far.
    password_looks: AtomicUsize,
    lifetime: chrono::Duration,
    clock: Arc<ManualClock>,
}

impl Fetch for Fake {
    async fn fetch(&self) -> Result<Credentials> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        if self.panic.load(Ordering::SeqCst) {
            panic!("a bug in the refresh path, quoting secret-token-xyz");
        }
        if self.refuse.load(Ordering::SeqCst) {
            return Err(Error::AuthRejected {
                url: "https://gw/token".into(),
                who: "the password for user \"vers\"".into(),
                description: "Invalid user credentials".into(),
                fix: "check the user name and password".into(),
            });
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::Unreachable {
                url: "https://gw".into(),
                cause: crate::error::Cause::new(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "refused",
                )),
            });
        }
        Ok(creds(self.clock.now() + self.lifetime))
    }

    async fn login_changed(&self) -> bool {
        self.password_looks.fetch_add(1, Ordering::SeqCst);
        self.password_changes.swap(false, Ordering::SeqCst)
    }
}

/// A cache over the fake fetcher, on a manual clock standing at `t(0)` with jitter 1
/// (the longest backoff delays, the earliest refresh times).
fn cache(lifetime: chrono::Duration, min_validity: Duration) -> Arc<CredentialCache<Fake>> {
    Arc::new(build(lifetime, min_validity, Duration::from_secs(5), 1.0))
}

/// A cache over the fake fetcher on a manual clock standing at `t(0)` with `jitter`, whose
/// whole refresh may take `budget`.
fn build(
    lifetime: chrono::Duration,
    min_validity: Duration,
    budget: Duration,
    jitter: f64,
) -> CredentialCache<Fake> {
    let clock = Arc::new(ManualClock::new(t(0), jitter));
    let fake = Fake {
        calls: AtomicUsize::new(0),
        fail: false.into(),
        panic: false.into(),
        refuse: false.into(),
        password_changes: false.into(),
        password_looks: AtomicUsize::new(0),
        lifetime,
        clock: clock.clone(),
    };
    CredentialCache::new(fake, min_validity, budget, "https://gw").with_time(clock)
}

fn calls(cache: &CredentialCache<Fake>) -> usize {
    cache.fetcher().calls.load(Ordering::SeqCst)
}

fn advance(cache: &CredentialCache<Fake>, seconds: f64) {
    cache
        .fetcher()
        .clock
        .advance(Duration::from_secs_f64(seconds));
}

fn fail(cache: &CredentialCache<Fake>, failing: bool) {
    cache.fetcher().fail.store(failing, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_share_one_refresh() {
    let cache = cache(chrono::Duration::hours(1), Duration::from_secs(1200));
    assert_eq!(cache.status().state, State::Empty);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.current().await.unwrap().generation })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 1);
    }
    assert_eq!(cache.fetcher().calls.load(Ordering::SeqCst), 1);
    assert_eq!(cache.status().state, State::Fresh);
    assert_eq!(cache.status().refresh_count, 1);
}

#[tokio::test]
async fn failures_back_off_and_never_serve_expired() {
    let cache = cache(chrono::Duration::hours(1), Duration::from_secs(1200));
    cache.fetcher().fail.store(true, Ordering::SeqCst);
    let err = cache.current().await.unwrap_err();
    assert!(err.to_string().starts_with("cannot reach https://gw"));
    // Within the backoff window: the same error at once, no new call.
    assert_eq!(cache.current().await.unwrap_err(), err);
    assert_eq!(cache.fetcher().calls.load(Ordering::SeqCst), 1);
    let status = cache.status();
    assert_eq!(status.state, State::Error);
    assert_eq!(status.last_error.as_deref(), Some(err.to_string().as_str()));
    assert!(cache.peek().is_none());
}

/// 1 h credentials, 20 min of min-validity, jitter 1: refresh at 39 min (a minute of
/// jitter early), expiry at 60 min.
#[tokio::test]
async fn refresh_happens_at_the_planned_time_and_not_before() {
    let cache = cache(chrono::Duration::hours(1), Duration::from_secs(1200));
    let first = cache.current().await.unwrap();
    assert_eq!(first.refresh_at, t(39 * 60));
    advance(&cache, 39.0 * 60.0 - 1.0);
    assert_eq!(cache.current().await.unwrap().generation, 1);
    assert_eq!(cache.status().state, State::Fresh);
    assert_eq!(calls(&cache), 1, "no refresh before the planned time");
    advance(&cache, 1.0);
    assert_eq!(cache.status().state, State::Expiring);
    let second = cache.current().await.unwrap();
    assert_eq!((second.generation, calls(&cache)), (2, 2));
    // Every snapshot handed out keeps at least min-validity left at its refresh time.
    assert!(second.creds.expiration - second.refresh_at >= chrono::Duration::minutes(20));
    assert_eq!(second.fetched_at, t(39 * 60), "mtime is the fetch time");
}

#[tokio::test]
async fn stale_while_error_then_fail_then_recover() {
    let cache = cache(chrono::Duration::hours(1), Duration::from_secs(1200));
    let first = cache.current().await.unwrap();
    fail(&cache, true);
    advance(&cache, 40.0 * 60.0);
    // Due for refresh but the gateway fails: the still-valid credentials are served.
    let served = cache.current().await.unwrap();
    assert_eq!(served.generation, first.generation);
    let status = cache.status();
    assert_eq!(status.state, State::Expiring);
    assert!(status
        .last_error
        .as_deref()
        .unwrap()
        .starts_with("cannot reach"));
    // Past expiry: never served, whatever the backoff says.
    advance(&cache, 20.0 * 60.0);
    let err = cache.current().await.unwrap_err();
    assert_eq!(err.errno(), libc::EIO);
    assert!(cache.peek().is_none());
    assert_eq!(cache.status().state, State::Error);
    // The gateway recovers: the next attempt after the backoff succeeds and the error
    // is forgotten.
    fail(&cache, false);
    advance(&cache, 300.0);
    let fresh = cache.current().await.unwrap();
    assert!(fresh.generation > first.generation);
    let status = cache.status();
    assert_eq!((status.state, status.last_error), (State::Fresh, None));
}

#[tokio::test]
async fn backoff_doubles_while_failing_and_resets_after_success() {
    let cache = cache(chrono::Duration::hours(1), Duration::from_secs(1200));
    fail(&cache, true);
    // Jitter 1: delays of exactly 1, 2, 4, 8 s. Just before each delay ends a read fails
    // fast without a call; at its end the next attempt is made.
    let mut expected_calls = 1;
    assert!(cache.current().await.is_err());
    for delay in [1.0, 2.0, 4.0, 8.0] {
        advance(&cache, delay - 0.001);
        assert!(cache.current().await.is_err());
        assert_eq!(
            calls(&cache),
            expected_calls,
            "failing fast within {delay} s"
        );
        advance(&cache, 0.001);
        assert!(cache.current().await.is_err());
        expected_calls += 1;
        assert_eq!(calls(&cache), expected_calls, "retried after {delay} s");
    }
    fail(&cache, false);
    advance(&cache, 16.0);
    cache.current().await.unwrap();
    // After a success the next failure backs off for 1 s again, not 32 s.
    fail(&cache, true);
    advance(&cache, 40.0 * 60.0 + 16.0);
    let _ = cache.current().await;
    let attempts = calls(&cache);
    advance(&cache, 1.0);
    let _ = cache.current().await;
    assert_eq!(calls(&cache), attempts + 1, "the backoff restarted at 1 s");
}

#[tokio::test]
async fn an_expired_snapshot_is_never_served() {
    let cache = cache(chrono::Duration::hours(1), Duration::from_secs(1200));
    cache.current().await.unwrap();
    fail(&cache, true);
    advance(&cache, 3600.0);
    assert!(
        cache.current().await.is_err(),
        "expired at exactly its expiration"
    );
    assert!(cache.peek().is_none());
    // Even while backing off (fail fast), nothing expired comes back.
    assert!(cache.current().await.is_err());
}

#[tokio::test]
async fn a_panicking_refresh_is_a_failure_that_backs_off() {
    let cache = cache(chrono::Duration::hours(1), Duration::from_secs(1200));
    cache.fetcher().panic.store(true, Ordering::SeqCst);
    let err = cache.current().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "refreshing credentials panicked: this is a bug in s3credsfs, please report it; \
         reads retry after a pause"
    );
    assert_eq!(err.errno(), libc::EIO);
    // Backing off: the next read fails at once without another attempt.
    assert_eq!(cache.current().await.unwrap_err(), err);
    assert_eq!(cache.fetcher().calls.load(Ordering::SeqCst), 1);
    let status = cache.status();
    assert_eq!(status.state, State::Error);
    assert!(!status.last_error.unwrap().contains("secret-token-xyz"));
}

#[test]
fn refresh_times_never_overflow() {
    let end = DateTime::<Utc>::MAX_UTC;
    let start = DateTime::<Utc>::MIN_UTC;
    for min_validity in [Duration::ZERO, Duration::from_secs(1200), Duration::MAX] {
        for (fetched, expiration) in [(t(0), end), (start, t(0)), (start, end), (t(0), t(1))] {
            let at = refresh_at(fetched, expiration, min_validity, 1.0);
            assert!(
                at >= fetched && at <= expiration,
                "{at} for {min_validity:?}"
            );
        }
    }
}

#[test]
fn an_expiration_years_away_still_gets_refreshed() {
    let far = DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
        .unwrap()
        .to_utc();
    let at = refresh_at(t(0), far, Duration::from_secs(1200), 0.0);
    assert_eq!(at, t(36 * 3600 - 1200));
}

#[tokio::test]
async fn a_refresh_over_its_budget_is_reported_as_slow() {
    // The fake takes 50 ms; the budget is 10 ms.
    let cache = Arc::new(build(
        chrono::Duration::hours(1),
        Duration::from_secs(1200),
        Duration::from_millis(10),
        1.0,
    ));
    let err = cache.current().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "refreshing credentials from https://gw took longer than its budget of 10ms (every \
         gateway request it makes, each within --timeout); check the gateway's health, or \
         raise --timeout"
    );
    assert_eq!(cache.status().state, State::Error);
}

#[test]
fn system_jitter_is_spread_over_the_unit_interval() {
    let draws: Vec<f64> = (0..200).map(|_| SystemTime.jitter()).collect();
    assert!(draws.iter().all(|j| (0.0..1.0).contains(j)), "{draws:?}");
    let low = draws.iter().filter(|j| **j < 0.5).count();
    assert!((40..=160).contains(&low), "{low} of 200 below one half");
}

#[test]
fn the_manual_clock_keeps_its_jitter_within_the_unit_interval() {
    assert_eq!(ManualClock::new(t(0), 0.25).jitter(), 0.25);
    assert_eq!(ManualClock::new(t(0), 7.0).jitter(), 1.0);
    assert_eq!(ManualClock::new(t(0), -1.0).jitter(), 0.0);
}

#[tokio::test]
async fn credentials_nobody_read_until_expiry_show_as_expired() {
    let cache = cache(chrono::Duration::hours(1), Duration::from_secs(1200));
    cache.current().await.unwrap();
    advance(&cache, 3600.0);
    let status = cache.status();
    assert_eq!(status.state, State::Expired);
    assert_eq!(status.last_error, None);
}

/// A cache like [`cache`] that refreshes ten minutes ahead: 1 h credentials are due at
/// 39 min and refreshed in the background from 30 min (not 29: half their life).
fn cache_ahead() -> Arc<CredentialCache<Fake>> {
    let hour = chrono::Duration::hours(1);
    let cache = build(hour, Duration::from_secs(1200), Duration::from_secs(5), 1.0);
    Arc::new(cache.with_refresh_ahead(Duration::from_secs(600)))
}

/// Waits (in real time: the fake fetcher takes 50 ms) until `done`, or panics.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Jitter 0.5, where the other tests use 1: the refresh comes half of its jitter window
/// early, and every backoff delay is scaled by 0.75. Were the cache to ignore its time
/// source's jitter (as if it were always 0 or 1), both times would be off.
#[tokio::test]
async fn the_time_sources_jitter_moves_refreshes_and_scales_backoff() {
    let cache = Arc::new(build(
        chrono::Duration::hours(1),
        Duration::from_secs(1200),
        Duration::from_secs(5),
        0.5,
    ));
    let clock = cache.fetcher().clock.clone();
    // 20 min of min-validity, jitter 0.5 of its 60 s window: 30 s earlier than 40 min.
    let first = cache.current().await.unwrap();
    assert_eq!(first.refresh_at, t(40 * 60 - 30));
    clock.advance(Duration::from_secs(40 * 60 - 31));
    let _ = cache.current().await;
    assert_eq!(cache.fetcher().calls.load(Ordering::SeqCst), 1);
    clock.advance(Duration::from_secs(1));
    cache.fetcher().fail.store(true, Ordering::SeqCst);
    // Due: the refresh fails and the still-valid credentials are served meanwhile.
    let _ = cache.current().await;
    let mut expected = 2;
    assert_eq!(cache.fetcher().calls.load(Ordering::SeqCst), expected);
    // Delays of 1 s, 2 s, 4 s scaled by 0.5 + 0.5 * 0.5.
    for delay_ms in [750, 1500, 3000] {
        clock.advance(Duration::from_millis(delay_ms - 1));
        let _ = cache.current().await;
        assert_eq!(
            cache.fetcher().calls.load(Ordering::SeqCst),
            expected,
            "no retry before {delay_ms} ms"
        );
        clock.advance(Duration::from_millis(1));
        let _ = cache.current().await;
        expected += 1;
        assert_eq!(
            cache.fetcher().calls.load(Ordering::SeqCst),
            expected,
            "a retry at {delay_ms} ms"
        );
    }
}

mod keeper;
mod metrics;
mod overload;
mod refresh_ahead;
mod refused;
