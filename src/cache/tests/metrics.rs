//! The counters the metrics file shows, as the cache keeps them.

use super::*;

/// Each refresh is counted once, by what started it, and each failure by its cause, for
/// the metrics file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_and_failures_are_counted_by_cause() {
    let cache = cache_ahead();
    cache.current().await.unwrap();
    advance(&cache, 30.0 * 60.0);
    cache.current().await.unwrap();
    until("the background refresh", || {
        cache.peek().is_some_and(|s| s.generation == 2)
    })
    .await;
    cache.refresh_now().await.unwrap();
    fail(&cache, true);
    assert!(cache.refresh_now().await.is_err());
    let counts = cache.metrics().counts();
    let refreshes: Vec<_> = counts.refreshes.into_iter().collect();
    assert_eq!(refreshes, [("ahead", 1), ("forced", 1), ("read", 1)]);
    let failures: Vec<_> = counts
        .failures
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(failures, [("unreachable", 1)]);
}
