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
}

#[test]
fn backoff_doubles_to_five_minutes() {
    let secs = |n| backoff_delay(n, 1.0).as_secs();
    assert_eq!(
        [secs(1), secs(2), secs(3), secs(9), secs(10), secs(1000)],
        [1, 2, 4, 256, 300, 300]
    );
    assert_eq!(
        backoff_delay(3, 0.0),
        Duration::from_secs(2),
        "jitter halves at most"
    );
    let r = random_unit();
    assert!((0.0..1.0).contains(&r));
}

/// A fetcher that counts calls, waits a little (so callers overlap) and can fail.
struct Fake {
    calls: AtomicUsize,
    fail: std::sync::atomic::AtomicBool,
    panic: std::sync::atomic::AtomicBool,
    lifetime: chrono::Duration,
}

impl Fetch for Fake {
    async fn fetch(&self) -> Result<Credentials> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        if self.panic.load(Ordering::SeqCst) {
            panic!("a bug in the refresh path, quoting secret-token-xyz");
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::Unreachable {
                url: "https://gw".into(),
                detail: "refused".into(),
            });
        }
        Ok(creds(Utc::now() + self.lifetime))
    }
}

fn cache(lifetime: chrono::Duration, min_validity: Duration) -> Arc<CredentialCache<Fake>> {
    let fake = Fake {
        calls: AtomicUsize::new(0),
        fail: false.into(),
        panic: false.into(),
        lifetime,
    };
    Arc::new(CredentialCache::new(
        fake,
        min_validity,
        Duration::from_secs(5),
        "https://gw",
    ))
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

#[tokio::test]
async fn a_failed_refresh_serves_still_valid_credentials() {
    // 10 minutes of life against 20 minutes of min-validity: due for refresh at half-life.
    let cache = cache(chrono::Duration::minutes(10), Duration::from_secs(1200));
    let first = cache.current().await.unwrap();
    {
        let mut inner = cache.inner();
        let mut aged = Snapshot {
            ..clone_snapshot(&first)
        };
        aged.refresh_at = Utc::now() - chrono::Duration::seconds(1);
        inner.snapshot = Some(Arc::new(aged));
    }
    assert_eq!(cache.status().state, State::Expiring);
    cache.fetcher().fail.store(true, Ordering::SeqCst);
    let served = cache.current().await.unwrap();
    assert_eq!(
        served.generation, first.generation,
        "old but valid credentials are served"
    );
    let status = cache.status();
    assert_eq!(status.state, State::Expiring);
    assert!(status.last_error.is_some());
    assert_eq!(cache.fetcher().calls.load(Ordering::SeqCst), 2);
}

fn clone_snapshot(s: &Snapshot) -> Snapshot {
    Snapshot {
        generation: s.generation,
        creds: s.creds.clone(),
        fetched_at: s.fetched_at,
        refresh_at: s.refresh_at,
    }
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
