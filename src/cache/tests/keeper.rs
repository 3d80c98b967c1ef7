//! The keeper refreshes every profile on schedule with nobody reading, so a file of
//! several profiles never waits for (or omits) a healthy one. Tokio's time is paused:
//! the keeper's naps pass at once, and the cache's own clock moves only when told.

use super::*;

fn spawn_keeper(cache: &Arc<CredentialCache<Fake>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(CredentialCache::keep_current(Arc::downgrade(cache)))
}

/// Lets the keeper run for `seconds` of tokio's (paused) time.
async fn nap(seconds: u64) {
    tokio::time::sleep(Duration::from_secs(seconds)).await;
}

#[tokio::test(start_paused = true)]
async fn the_keeper_refreshes_ahead_with_nobody_reading() {
    let cache = cache_ahead();
    let first = cache.current().await.unwrap();
    let keeper = spawn_keeper(&cache);
    // An hour of naps with the clock before the refresh-ahead time: nothing happens.
    nap(3600).await;
    assert_eq!(calls(&cache), 1);
    // Past the refresh-ahead time (half-life, 30 min): the keeper refreshes, with no
    // reader, and the credentials never got near the refresh time.
    advance(&cache, 31.0 * 60.0);
    nap(KEEPER_NAP.as_secs() + 1).await;
    assert_eq!(calls(&cache), 2);
    let kept = cache.peek().unwrap();
    assert!(kept.generation > first.generation);
    assert_eq!(cache.status().state, State::Fresh);
    // And again an interval later: it keeps the profile current for as long as it runs.
    advance(&cache, 31.0 * 60.0);
    nap(KEEPER_NAP.as_secs() + 1).await;
    assert_eq!(calls(&cache), 3);
    keeper.abort();
}

#[tokio::test(start_paused = true)]
async fn the_keeper_fetches_nothing_before_a_first_read() {
    // A --lazy mount: credentials come on the first read, not from the keeper.
    let cache = cache_ahead();
    let keeper = spawn_keeper(&cache);
    advance(&cache, 7200.0);
    nap(7200).await;
    assert_eq!(calls(&cache), 0);
    keeper.abort();
}

#[tokio::test(start_paused = true)]
async fn the_keeper_retries_a_failing_profile_after_its_backoff_only() {
    let cache = cache_ahead();
    fail(&cache, true);
    assert!(cache.current().await.is_err());
    let keeper = spawn_keeper(&cache);
    // Backing off (at most 1 s after the first failure): the keeper waits for it.
    nap(30).await;
    assert_eq!(calls(&cache), 1, "retried within the backoff");
    advance(&cache, 1.0);
    nap(2).await;
    assert_eq!(calls(&cache), 2);
    // It recovers: the keeper's retry brings the credentials; no reader was needed.
    fail(&cache, false);
    advance(&cache, 300.0);
    nap(KEEPER_NAP.as_secs() + 1).await;
    assert_eq!(calls(&cache), 3);
    assert_eq!(cache.status().state, State::Fresh);
    keeper.abort();
}

#[tokio::test(start_paused = true)]
async fn the_keeper_ends_with_its_cache() {
    let cache = cache_ahead();
    let keeper = spawn_keeper(&cache);
    drop(cache);
    nap(KEEPER_NAP.as_secs() + 1).await;
    assert!(keeper.is_finished());
}

/// The cache's clock, counting how often it is read: each look of the keeper reads it.
struct CountedClock {
    clock: Arc<ManualClock>,
    reads: AtomicUsize,
}

impl TimeSource for CountedClock {
    fn now(&self) -> DateTime<Utc> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.clock.now()
    }
    fn jitter(&self) -> f64 {
        self.clock.jitter()
    }
}

#[tokio::test(start_paused = true)]
async fn an_idle_keeper_looks_at_most_once_a_minute() {
    // With fresh credentials due in half an hour, the keeper sleeps until then (looking
    // at least every KEEPER_NAP for a clock that jumped), not every KEEPER_MIN_NAP: a
    // daemon on every node of a system must not wake each second for nothing.
    let built = build(
        chrono::Duration::hours(1),
        Duration::from_secs(1200),
        Duration::from_secs(5),
        1.0,
    );
    let counted = Arc::new(CountedClock {
        clock: built.fetcher().clock.clone(),
        reads: AtomicUsize::new(0),
    });
    let cache = Arc::new(
        built
            .with_time(counted.clone())
            .with_refresh_ahead(Duration::from_secs(600)),
    );
    cache.current().await.unwrap();
    let keeper = spawn_keeper(&cache);
    let before = counted.reads.load(Ordering::SeqCst);
    nap(600).await;
    let looks = counted.reads.load(Ordering::SeqCst) - before;
    assert!(
        (1..=2 * (600 / KEEPER_NAP.as_secs() as usize + 1)).contains(&looks),
        "{looks} clock reads in 10 idle minutes"
    );
    assert_eq!(calls(&cache), 1);
    keeper.abort();
}
