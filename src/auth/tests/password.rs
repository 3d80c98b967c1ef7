//! The password grant against the built-in gateway with Keycloak 26's refusals injected,
//! on a manual clock: the one retry after a refusal a concurrent login also gets, the
//! turns of one user's logins, and refused passwords remembered across authenticators
//! (as across runs).

use super::super::password::{CONTENDED_JITTER, CONTENDED_RETRY};
use super::super::refusals::RefusalMemory;
use super::super::*;
use super::login::{authenticator, authenticator_at, gateway, private_file};
use crate::clock::ManualClock;
use crate::dev::gateway::{Endpoint, Fault, Times, DEFAULT_PASSWORD};

/// Keycloak 26.7's reply to a wrong password, and to a right one while another login of
/// the same user is in flight (measured; tests/keycloak/README.md).
fn keycloak_26_refusal() -> Fault {
    Fault::Status {
        status: 400,
        content_type: "application/json".into(),
        body: r#"{"error":"invalid_grant","error_description":"Invalid user credentials"}"#.into(),
    }
}

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

#[tokio::test]
async fn a_refusal_a_concurrent_login_also_gets_is_tried_once_more_after_the_quick_login_window() {
    let gw = gateway().await;
    gw.inject(Endpoint::Token, keycloak_26_refusal(), Times::Once);
    let dir = tempfile::tempdir().unwrap();
    let pw = private_file(dir.path(), "pw", DEFAULT_PASSWORD);
    let clock = Arc::new(ManualClock::new(start(), 0.5));
    let auth = authenticator_at(
        &gw,
        &[("username", "dev"), ("password-file", &pw)],
        clock.clone(),
    );
    auth.token(false).await.expect("the second try logs in");
    let stats = gw.stats();
    assert_eq!((stats.token_requests, stats.password_grants), (2, 1));
    // 2 s, more than Keycloak's 1 s quick-login window, plus half the jitter's second.
    let waited = (clock.now() - start()).to_std().unwrap();
    assert_eq!(waited, CONTENDED_RETRY + CONTENDED_JITTER / 2);
    assert!(waited > Duration::from_secs(1));
}

#[tokio::test]
async fn a_wrong_password_is_sent_twice_then_remembered_across_runs_until_a_login_works() {
    let gw = gateway().await;
    gw.inject(Endpoint::Token, keycloak_26_refusal(), Times::Always);
    let dir = tempfile::tempdir().unwrap();
    let memory = RefusalMemory::in_dir(dir.path().join("refused"));
    let pw = private_file(dir.path(), "pw", "wrong-password");
    let clock = Arc::new(ManualClock::new(start(), 0.0));
    let run = || {
        let mut auth = authenticator_at(
            &gw,
            &[("username", "dev"), ("password-file", &pw)],
            clock.clone(),
        );
        auth.remember_refusals(memory.clone());
        auth
    };
    let first = run().token(false).await.unwrap_err();
    assert!(first.is_login_refused(), "{first}");
    assert!(first.to_string().ends_with(": Invalid user credentials; check the user name and password (--username, --password-env/--password-file/--password-command)"), "{first}");
    assert_eq!(gw.stats().token_requests, 2, "sent twice");
    // A restarted run (a supervisor's) refuses it itself: nothing reaches Keycloak.
    for restart in 0..5 {
        clock.advance(Duration::from_secs(10));
        let again = run().token(false).await.unwrap_err();
        assert!(again.is_login_refused(), "{again}");
        let text = again.to_string();
        assert!(text.contains("Invalid user credentials at 2027-01-15T08:00:02Z, so it is not sent again until 2027-01-15T20:00:02Z"), "{text}");
        assert!(
            text.contains(
                "if the password is right after all (Keycloak refuses a right one too while \
                 the account is locked), remove "
            ),
            "{text}"
        );
        assert!(!text.contains("wrong-password"), "{text}");
        assert_eq!(gw.stats().token_requests, 2, "restart {restart} sent it");
    }
    // Twelve hours after the refusal Keycloak has forgotten the failure: sent again.
    clock.advance(Duration::from_secs(12 * 3600));
    assert!(run().token(false).await.is_err());
    assert_eq!(gw.stats().token_requests, 4);
    // A login that works forgets it, as Keycloak resets its count.
    gw.clear_faults();
    private_file(dir.path(), "pw", DEFAULT_PASSWORD);
    run().token(false).await.expect("the right password");
    private_file(dir.path(), "pw", "wrong-password");
    gw.inject(Endpoint::Token, keycloak_26_refusal(), Times::Always);
    assert!(run().token(false).await.is_err());
    assert_eq!(
        gw.stats().token_requests,
        5 + 2,
        "sent again after the good login"
    );
}

#[tokio::test]
async fn the_users_refresh_lets_a_remembered_password_go_again() {
    let gw = gateway().await;
    gw.inject(Endpoint::Token, keycloak_26_refusal(), Times::N(2));
    let dir = tempfile::tempdir().unwrap();
    let pw = private_file(dir.path(), "pw", DEFAULT_PASSWORD);
    let clock = Arc::new(ManualClock::new(start(), 0.0));
    let mut auth = authenticator_at(
        &gw,
        &[("username", "dev"), ("password-file", &pw)],
        clock.clone(),
    );
    auth.remember_refusals(RefusalMemory::in_dir(dir.path().join("refused")));
    assert!(auth.token(false).await.is_err());
    assert!(auth.token(false).await.is_err(), "remembered");
    assert_eq!(gw.stats().token_requests, 2);
    // `s3credsfs refresh`: the user says the password is right now.
    auth.forget().await;
    auth.token(false).await.expect("sent again, and right");
}

#[tokio::test]
async fn an_older_keycloaks_401_is_not_tried_again() {
    // The built-in gateway answers a wrong password as Keycloak before 26 did: 401.
    let gw = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let pw = private_file(dir.path(), "pw", "wrong-password");
    let auth = authenticator(&gw, &[("username", "dev"), ("password-file", &pw)]);
    assert!(auth.token(false).await.unwrap_err().is_login_refused());
    assert_eq!(gw.stats().token_requests, 1);
}

#[tokio::test]
async fn two_logins_of_one_user_take_turns() {
    // Each login takes 300 ms at the gateway: side by side they would end together.
    let gw = gateway().await;
    gw.inject(
        Endpoint::Token,
        Fault::Delay(Duration::from_millis(300)),
        Times::N(2),
    );
    let dir = tempfile::tempdir().unwrap();
    let pw = private_file(dir.path(), "pw", DEFAULT_PASSWORD);
    let flags = [("username", "dev"), ("password-file", pw.as_str())];
    let (one, two) = (authenticator(&gw, &flags), authenticator(&gw, &flags));
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(one.token(false), two.token(false));
    a.unwrap();
    b.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "the logins overlapped: {:?}",
        started.elapsed()
    );
    assert_eq!(gw.stats().password_grants, 2);
}

#[tokio::test]
async fn another_invalid_grant_is_neither_tried_again_nor_remembered() {
    // "Account disabled" is not a wrong password: no failure counts, and it ends only when
    // an administrator acts, so a second try or a remembered refusal would help nobody.
    let gw = gateway().await;
    gw.inject(
        Endpoint::Token,
        Fault::Status {
            status: 400,
            content_type: "application/json".into(),
            body: r#"{"error":"invalid_grant","error_description":"Account disabled"}"#.into(),
        },
        Times::Always,
    );
    let dir = tempfile::tempdir().unwrap();
    let memory = RefusalMemory::in_dir(dir.path().join("refused"));
    let pw = private_file(dir.path(), "pw", DEFAULT_PASSWORD);
    let clock = Arc::new(ManualClock::new(start(), 0.0));
    let mut auth = authenticator_at(
        &gw,
        &[("username", "dev"), ("password-file", &pw)],
        clock.clone(),
    );
    auth.remember_refusals(memory.clone());
    let error = auth.token(false).await.unwrap_err();
    // The account, not the password, is named, with the account's fix.
    assert!(
        error.to_string().contains(
            "rejected the account of user \"dev\": Account disabled; the password is right \
             but the account is disabled in Keycloak"
        ),
        "{error}"
    );
    assert_eq!(gw.stats().token_requests, 1, "tried again");
    assert_eq!(clock.now(), start(), "waited");
    let url = auth.token_url.clone();
    assert_eq!(memory.refused(&url, "dev", DEFAULT_PASSWORD, start()), None);
}
