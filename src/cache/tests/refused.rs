//! A refused login is never retried by itself: each retry of a wrong password counts
//! toward Keycloak's brute-force lockout, and the account is often an administrator's.

use super::*;

fn refuse(cache: &CredentialCache<Fake>, refusing: bool) {
    cache.fetcher().refuse.store(refusing, Ordering::SeqCst);
}

fn looks(cache: &CredentialCache<Fake>) -> usize {
    cache.fetcher().password_looks.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_refused_login_is_never_tried_again_however_long_it_waits() {
    let cache = cache(chrono::Duration::hours(1), Duration::from_secs(1200));
    refuse(&cache, true);
    let err = cache.current().await.unwrap_err();
    assert!(err.is_login_refused(), "{err}");
    assert_eq!(calls(&cache), 1);
    // A day of reads, every 10 s: never another login, only looks at the password file.
    for _ in 0..(24 * 360) {
        advance(&cache, 10.0);
        assert!(cache.current().await.unwrap_err().is_login_refused());
    }
    assert_eq!(calls(&cache), 1, "a refused password was sent again");
    let status = cache.status();
    assert_eq!(status.state, State::Error);
    let said = status.last_error.unwrap();
    assert!(
        said.contains("Invalid user credentials")
            && said.ends_with("(not tried again until `s3credsfs refresh` or the password file or command gives another password)"),
        "the refusal stays in status, saying what ends it: {said}"
    );
    // The password file was looked at, at most once per REFUSED_RECHECK.
    let most = (24 * 3600 / REFUSED_RECHECK.as_secs()) as usize + 1;
    assert!((1..=most).contains(&looks(&cache)), "{}", looks(&cache));

    // `s3credsfs refresh` logs in again at once.
    refuse(&cache, false);
    let fresh = cache.refresh_now().await.unwrap();
    assert_eq!(calls(&cache), 2);
    assert_eq!(cache.current().await.unwrap().generation, fresh.generation);
    assert_eq!(cache.status().state, State::Fresh);
}

#[tokio::test]
async fn a_refresh_refused_again_stays_refused() {
    let cache = cache(chrono::Duration::hours(1), Duration::from_secs(1200));
    refuse(&cache, true);
    assert!(cache.current().await.is_err());
    assert!(cache.refresh_now().await.unwrap_err().is_login_refused());
    assert_eq!(calls(&cache), 2);
    advance(&cache, 3600.0);
    assert!(cache.current().await.is_err());
    assert_eq!(calls(&cache), 2);
}

#[tokio::test]
async fn a_changed_password_is_tried_once_seen() {
    let cache = cache(chrono::Duration::hours(1), Duration::from_secs(1200));
    refuse(&cache, true);
    assert!(cache.current().await.is_err());
    advance(&cache, 600.0);
    assert!(cache.current().await.is_err());
    assert_eq!(calls(&cache), 1);
    // The administrator fixes the password file: the next look sees it and logs in.
    refuse(&cache, false);
    cache
        .fetcher()
        .password_changes
        .store(true, Ordering::SeqCst);
    advance(&cache, REFUSED_RECHECK.as_secs_f64());
    assert!(cache.current().await.is_ok());
    assert_eq!(calls(&cache), 2);
}

#[tokio::test]
async fn valid_credentials_stay_served_after_a_refusal_but_are_not_refreshed() {
    let cache = cache(chrono::Duration::hours(1), Duration::from_secs(1200));
    let first = cache.current().await.unwrap();
    refuse(&cache, true);
    // The refresh at 40 min is refused (a password changed in Keycloak): the still valid
    // credentials are served, and no login follows until they expire and after.
    advance(&cache, 40.0 * 60.0);
    assert_eq!(cache.current().await.unwrap().generation, first.generation);
    assert_eq!(calls(&cache), 2);
    for _ in 0..100 {
        advance(&cache, 60.0);
        let _ = cache.current().await;
    }
    assert_eq!(calls(&cache), 2);
    assert_eq!(cache.status().state, State::Error);
}

#[tokio::test]
async fn other_failures_are_still_retried() {
    // The rule above is for refusals only: an unreachable gateway is retried.
    let cache = cache(chrono::Duration::hours(1), Duration::from_secs(1200));
    fail(&cache, true);
    assert!(cache.current().await.is_err());
    advance(&cache, 600.0);
    assert!(cache.current().await.is_err());
    assert_eq!(calls(&cache), 2);
    assert_eq!(looks(&cache), 0);
}
