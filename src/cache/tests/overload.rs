//! A gateway that says it is overloaded (HTTP 429 or 503) is not asked again for about a
//! minute, from the first such answer: a fleet booting together would otherwise come back
//! within seconds, several times what the gateway can serve (BENCHMARKS.md, the fleet's
//! boot storm). Other transient failures keep the doubling from 1 s.

use super::*;
use std::sync::Mutex;

/// A gateway answering with the queued answers, one per call; credentials once none is
/// left.
struct Queued {
    answers: Mutex<Vec<Error>>,
    calls: AtomicUsize,
    clock: Arc<ManualClock>,
}

impl Fetch for Queued {
    async fn fetch(&self) -> Result<Credentials> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let next = self.answers.lock().unwrap().pop();
        match next {
            Some(error) => Err(error),
            None => Ok(creds(self.clock.now() + chrono::Duration::hours(1))),
        }
    }
}

fn status(status: u16) -> Error {
    Error::HttpStatus {
        url: "https://gw/apis/sts/token".into(),
        status,
        detail: String::new(),
        fix: "retry later".into(),
    }
}

/// A cache whose gateway gives `answers` in order, on a manual clock with `jitter`.
fn over(answers: Vec<Error>, jitter: f64) -> Arc<CredentialCache<Queued>> {
    let clock = Arc::new(ManualClock::new(t(0), jitter));
    let fetcher = Queued {
        answers: Mutex::new(answers.into_iter().rev().collect()),
        calls: AtomicUsize::new(0),
        clock: clock.clone(),
    };
    Arc::new(
        CredentialCache::new(
            fetcher,
            Duration::from_secs(1200),
            Duration::from_secs(5),
            "gw",
        )
        .with_time(clock),
    )
}

fn calls(cache: &CredentialCache<Queued>) -> usize {
    cache.fetcher().calls.load(Ordering::SeqCst)
}

/// Advances the clock by `seconds` and reads; returns whether the gateway was asked.
async fn read_after(cache: &Arc<CredentialCache<Queued>>, seconds: f64) -> bool {
    cache
        .fetcher()
        .clock
        .advance(Duration::from_secs_f64(seconds));
    let before = calls(cache);
    let _ = cache.current().await;
    calls(cache) > before
}

#[test]
fn an_overload_answer_waits_a_minute_give_or_take_ten_seconds() {
    for failures in [1, 2, 5, 40] {
        assert_eq!(retry_delay(failures, true, 0.0), Duration::from_secs(50));
        assert_eq!(retry_delay(failures, true, 0.5), Duration::from_secs(60));
        assert_eq!(retry_delay(failures, true, 1.0), Duration::from_secs(70));
        assert_eq!(retry_delay(failures, true, 9.0), Duration::from_secs(70));
    }
    // Anything else keeps the doubling.
    assert_eq!(retry_delay(1, false, 1.0), Duration::from_secs(1));
    assert_eq!(retry_delay(3, false, 1.0), Duration::from_secs(4));
    assert!(status(503).is_overload() && status(429).is_overload());
    assert!(!status(502).is_overload() && !status(504).is_overload());
}

#[test]
fn only_a_busy_or_unreachable_gateway_is_transient() {
    for code in [429, 502, 503, 504] {
        assert!(status(code).is_transient(), "{code}");
    }
    for code in [400, 404, 500] {
        assert!(!status(code).is_transient(), "{code}");
    }
    let unreachable = Error::Unreachable {
        url: "https://gw".into(),
        cause: crate::error::Cause::new(std::io::Error::from(std::io::ErrorKind::TimedOut)),
    };
    assert!(unreachable.is_transient() && !unreachable.is_overload());
    assert!(!Error::Config("bad".into()).is_transient());
    let refused = Error::AuthRejected {
        url: "https://gw/t".into(),
        who: "dev".into(),
        description: "Invalid user credentials".into(),
        fix: "check the password".into(),
    };
    assert!(!refused.is_transient());
}

#[tokio::test]
async fn after_a_503_the_gateway_is_not_asked_again_for_a_minute() {
    for jitter in [0.0, 0.5, 1.0] {
        let wait = 50.0 + 20.0 * jitter;
        let cache = over(vec![status(503), status(429)], jitter);
        assert!(cache.current().await.is_err());
        assert_eq!(calls(&cache), 1);
        // Reads just before the wait ends fail fast, without asking.
        assert!(!read_after(&cache, wait - 0.001).await, "jitter {jitter}");
        assert!(
            read_after(&cache, 0.001).await,
            "asked again after {wait} s"
        );
        // A 429 second: the same wait, not a doubled one.
        assert!(!read_after(&cache, wait - 0.001).await, "jitter {jitter}");
        assert!(read_after(&cache, 0.001).await);
        assert!(
            cache.peek().is_some(),
            "credentials once the gateway serves"
        );
    }
}

#[tokio::test]
async fn after_a_502_the_backoff_still_starts_at_a_second() {
    let cache = over(vec![status(502), status(504)], 1.0);
    assert!(cache.current().await.is_err());
    assert!(!read_after(&cache, 0.999).await);
    assert!(read_after(&cache, 0.001).await, "1 s after a 502");
    assert!(!read_after(&cache, 1.999).await);
    assert!(read_after(&cache, 0.001).await, "2 s after a 504");
    assert!(cache.peek().is_some());
}
