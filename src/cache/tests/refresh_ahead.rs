//! Refresh-ahead: inside its window readers are served at once while one refresh runs
//! in the background, a failed one keeps serving and backs off, and below min-validity
//! readers wait for the refresh in flight.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_refresh_ahead_window_readers_never_wait_and_one_refresh_runs() {
    let cache = cache_ahead();
    let first = cache.current().await.unwrap();
    assert_eq!(first.refresh_ahead_at, t(30 * 60));
    advance(&cache, 30.0 * 60.0 - 1.0);
    assert_eq!(cache.current().await.unwrap().generation, 1);
    assert_eq!(calls(&cache), 1, "no refresh before the window");
    advance(&cache, 1.0);
    // Many readers in the window: every one is served the current snapshot at once
    // (the fetch takes 50 ms; none of them waits for it) and one refresh starts.
    let started = std::time::Instant::now();
    for _ in 0..100 {
        assert_eq!(cache.current().await.unwrap().generation, 1);
    }
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "a reader waited"
    );
    until("the background refresh", || {
        cache.peek().is_some_and(|s| s.generation == 2)
    })
    .await;
    assert_eq!(calls(&cache), 2, "exactly one background refresh");
    let second = cache.current().await.unwrap();
    assert_eq!(second.fetched_at, t(30 * 60));
    assert_eq!(cache.status().state, State::Fresh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_ahead_keeps_serving_and_backs_off() {
    let cache = cache_ahead();
    cache.current().await.unwrap();
    fail(&cache, true);
    advance(&cache, 30.0 * 60.0);
    assert_eq!(cache.current().await.unwrap().generation, 1);
    until("the failed background refresh", || {
        cache.status().last_error.is_some()
    })
    .await;
    // Backing off: served without a new attempt.
    for _ in 0..10 {
        assert_eq!(cache.current().await.unwrap().generation, 1);
    }
    assert_eq!(calls(&cache), 2);
    // After the backoff (1 s at most with jitter 1), the next read starts another one.
    advance(&cache, 1.0);
    fail(&cache, false);
    assert_eq!(cache.current().await.unwrap().generation, 1);
    until("the second background refresh", || {
        cache.peek().is_some_and(|s| s.generation == 2)
    })
    .await;
    assert_eq!(calls(&cache), 3);
    assert_eq!(cache.status().last_error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_min_validity_a_reader_waits_for_the_refresh_in_flight() {
    let cache = cache_ahead();
    cache.current().await.unwrap();
    advance(&cache, 30.0 * 60.0);
    assert_eq!(cache.current().await.unwrap().generation, 1);
    // The background refresh is in flight (50 ms); the clock passes the refresh time.
    advance(&cache, 10.0 * 60.0);
    let waited = cache.current().await.unwrap();
    assert_eq!(
        waited.generation, 2,
        "the reader got the refreshed credentials"
    );
    assert!(waited.creds.expiration - cache.now() >= chrono::Duration::minutes(20));
    until("the background task to finish", || {
        !cache.inner().ahead_in_flight
    })
    .await;
    assert_eq!(
        calls(&cache),
        2,
        "the waiting reader shared the background refresh"
    );
}
