//! An `Authenticator` against the built-in gateway over loopback: which grant each call
//! makes (the gateway's counters tell), and which token each source hands out.

use super::super::*;
use super::jwt;
use crate::clock::{ManualClock, SystemTime};
use crate::config::{resolve, Context, Layer, RawValue, Setting, Source};
use crate::dev::gateway::{Gateway, GatewayConfig, DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD};
use std::os::unix::fs::PermissionsExt;

pub(super) async fn gateway() -> Gateway {
    Gateway::start(GatewayConfig::default()).await.unwrap()
}

/// An authenticator configured as if by these flags, against `gw`, on the system clock.
pub(super) fn authenticator(gw: &Gateway, flags: &[(&str, &str)]) -> Authenticator {
    authenticator_at(gw, flags, Arc::new(SystemTime))
}

/// The same on `time`.
pub(super) fn authenticator_at(
    gw: &Gateway,
    flags: &[(&str, &str)],
    time: Arc<dyn TimeSource>,
) -> Authenticator {
    let mut layer = Layer::new();
    let base = gw.base_url();
    for (name, value) in [("api-gateway", base.as_str())].iter().chain(flags) {
        let key = Setting::from_name(name).unwrap();
        let source = Source::Flag(key.flag());
        let value = value.to_string();
        layer.insert(key, RawValue { value, source });
    }
    let settings = resolve(&layer, &Context::default()).unwrap();
    Authenticator::new(
        &settings,
        crate::http::build_client(&settings).unwrap(),
        time,
    )
    .unwrap()
}

pub(super) fn private_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_string()
}

fn user_of(token: &Secret) -> serde_json::Value {
    jwt_claims(token.expose()).unwrap()["preferred_username"].clone()
}

/// (password, refresh, client-credentials) grants the gateway has seen.
fn grants(gw: &Gateway) -> (u64, u64, u64) {
    let s = gw.stats();
    (
        s.password_grants,
        s.refresh_grants,
        s.client_credentials_grants,
    )
}

#[tokio::test]
async fn a_password_login_is_reused_and_refreshed_only_when_forced() {
    let gw = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let pw = private_file(dir.path(), "pw", DEFAULT_PASSWORD);
    let auth = authenticator(&gw, &[("username", "dev"), ("password-file", &pw)]);
    assert_eq!(auth.user().as_deref(), Some("dev"), "the configured user");
    let first = auth.token(false).await.unwrap();
    assert_eq!(user_of(&first), "dev");
    assert!(auth.token(false).await.unwrap() == first);
    assert_eq!(grants(&gw), (1, 0, 0), "the cached token was reused");
    // After a rejection: a new token, through the refresh token rather than the password.
    assert_eq!(user_of(&auth.token(true).await.unwrap()), "dev");
    assert_eq!(grants(&gw), (1, 1, 0));
    assert_eq!(gw.stats().token_failures, 0);
}

/// `s3credsfs refresh` makes the next token a new login: no cached token, and no refresh
/// token either (a changed password or new roles need the password grant).
#[tokio::test]
async fn a_forgotten_login_is_made_anew_with_the_password() {
    let gw = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let pw = private_file(dir.path(), "pw", DEFAULT_PASSWORD);
    let auth = authenticator(&gw, &[("username", "dev"), ("password-file", &pw)]);
    auth.token(false).await.unwrap();
    auth.forget().await;
    auth.token(false).await.unwrap();
    assert_eq!(grants(&gw), (2, 0, 0));
    auth.forget().await;
    auth.token(true).await.unwrap();
    assert_eq!(grants(&gw), (3, 0, 0), "not through the refresh token");
}

/// A refusal names what to fix: the client id only when Keycloak names the client of a
/// password login; the password, or a service account's client and secret, otherwise.
#[tokio::test]
async fn a_refused_login_names_what_keycloak_refused() {
    let gw = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let good = private_file(dir.path(), "good", DEFAULT_PASSWORD);
    let bad = private_file(dir.path(), "bad", "wrong-password");
    let refusal = |flags: Vec<(&str, &str)>| {
        let auth = authenticator(&gw, &flags);
        async move { auth.token(false).await.unwrap_err().to_string() }
    };
    let url = gw.token_url();
    let client = refusal(vec![
        ("username", "dev"),
        ("password-file", &good),
        ("client-id", "shasta-typo"),
    ])
    .await;
    let want = format!("Keycloak at {url} rejected client id \"shasta-typo\": ");
    assert!(client.starts_with(&want), "{client}");
    let password = refusal(vec![("username", "dev"), ("password-file", &bad)]).await;
    let want = format!("Keycloak at {url} rejected the password for user \"dev\": ");
    assert!(password.starts_with(&want), "{password}");
    let secret = refusal(vec![
        ("client-id", "admin-client"),
        ("client-secret-file", &bad),
    ])
    .await;
    let want = format!("Keycloak at {url} rejected client \"admin-client\" and its secret: ");
    assert!(secret.starts_with(&want), "{secret}");
}

#[tokio::test]
async fn a_client_credentials_login_names_its_service_account() {
    let gw = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = private_file(dir.path(), "secret", DEFAULT_CLIENT_SECRET);
    let flags = [
        ("client-id", "admin-client"),
        ("client-secret-file", &secret),
    ];
    let auth = authenticator(&gw, &flags);
    assert_eq!(auth.user(), None, "no name before the first token");
    let token = auth.token(false).await.unwrap();
    assert_eq!(user_of(&token), "service-account-admin-client");
    assert_eq!(auth.user().as_deref(), Some("service-account-admin-client"));
    assert_eq!(grants(&gw), (0, 0, 1));
}

#[tokio::test]
async fn a_raw_token_file_is_sent_as_it_is_until_its_last_15_seconds() {
    let gw = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now().timestamp();
    // 40 s left: fresh (the margin is half of 30 s).
    let fresh = jwt(serde_json::json!({"exp": now + 40, "preferred_username": "dev"}));
    let path = private_file(dir.path(), "token", &fresh);
    let auth = authenticator(&gw, &[("token-file", &path)]);
    assert_eq!(auth.token(false).await.unwrap().expose(), fresh);
    // Forced (the gateway refused it) with no refresh token: the file's token again.
    assert_eq!(auth.token(true).await.unwrap().expose(), fresh);
    assert_eq!(auth.user().as_deref(), Some("dev"));
    // 10 s left: not worth sending, and nothing to refresh it with.
    let stale = jwt(serde_json::json!({"exp": now + 10}));
    private_file(dir.path(), "token", &stale);
    let err = auth.token(false).await.err().unwrap().to_string();
    let at = format_time(DateTime::from_timestamp(now + 10, 0).unwrap());
    assert_eq!(
        err,
        format!(
            "the token in {path} expired at {at} and has no refresh token; run `cray auth login` \
             or refresh the file"
        )
    );
    assert_eq!(gw.stats().token_requests, 0);
}

/// The token file's limit on the injected clock, to the nanosecond: a token is sent while
/// more than half the margin (15 s) is left, and not at exactly 15 s.
#[tokio::test]
async fn a_raw_token_file_is_refused_at_exactly_15_seconds_before_its_expiry() {
    let gw = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let exp = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
    let token = jwt(serde_json::json!({"exp": exp.timestamp()}));
    let path = private_file(dir.path(), "token", &token);
    let limit = exp - chrono::Duration::seconds(15);
    let clock = Arc::new(ManualClock::new(
        limit - chrono::Duration::nanoseconds(1),
        0.0,
    ));
    let auth = authenticator_at(&gw, &[("token-file", &path)], clock.clone());
    assert_eq!(auth.token(false).await.unwrap().expose(), token);
    clock.advance(Duration::from_nanos(1));
    let err = auth.token(false).await.err().unwrap().to_string();
    assert!(
        err.starts_with(&format!(
            "the token in {path} expired at {}",
            format_time(exp)
        )),
        "{err}"
    );
    assert_eq!(gw.stats().token_requests, 0);
}

/// Logs in through `gw` on an injected clock, then asks for a refresh 1 ns before
/// `usable_for` has passed (a refresh grant) and again `usable_for` after that refresh (a
/// password login: the new refresh token is given up as the first was).
async fn assert_refresh_token_used_for(gw: &Gateway, usable_for: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let pw = private_file(dir.path(), "pw", DEFAULT_PASSWORD);
    // The gateway checks its tokens on the real clock: start there, so they stay valid.
    let clock = Arc::new(ManualClock::new(Utc::now(), 0.0));
    let flags = [("username", "dev"), ("password-file", pw.as_str())];
    let auth = authenticator_at(gw, &flags, clock.clone());
    auth.token(false).await.unwrap();
    assert_eq!(grants(gw), (1, 0, 0));
    clock.advance(usable_for - Duration::from_nanos(1));
    auth.token(true).await.unwrap();
    assert_eq!(grants(gw), (1, 1, 0), "1 ns before the limit: refreshed");
    // That refresh gave a new refresh token, as long-lived, from the clock's now.
    clock.advance(usable_for);
    auth.token(true).await.unwrap();
    assert_eq!(grants(gw), (2, 1, 0), "at the limit: a password login");
}

/// A refresh token is used while more than 30 s of it is left on the injected clock, and
/// at exactly 30 s the login is made again with the password instead.
#[tokio::test]
async fn a_refresh_token_is_given_up_at_exactly_30_seconds_before_its_expiry() {
    // The gateway's refresh tokens live 30 minutes, counted from the reply on our clock.
    assert_refresh_token_used_for(&gateway().await, Duration::from_secs(1800 - 30)).await;
}

/// A refresh token of under two minutes (Keycloak's client session idle set short) is
/// used until a quarter of its life before its end, not given up at once by the 30 s
/// margin.
#[tokio::test]
async fn a_short_refresh_token_is_used_until_a_quarter_of_its_life_before_its_end() {
    let gw = Gateway::start(GatewayConfig {
        refresh_lifetime: Duration::from_secs(20),
        ..GatewayConfig::default()
    })
    .await
    .unwrap();
    assert_refresh_token_used_for(&gw, Duration::from_secs(20 - 5)).await;
}

/// An access token is reused until its margin before expiry, judged on the injected
/// clock: 30 s before the gateway's 5-minute token ends, the next call logs in anew.
#[tokio::test]
async fn a_cached_access_token_is_reused_until_its_margin_on_the_injected_clock() {
    let gw = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let pw = private_file(dir.path(), "pw", DEFAULT_PASSWORD);
    // The JWT's `exp` counts from the gateway's real clock: start 10 s before it, so
    // `expires_in` (300 s from our clock) is the earlier limit and the one judged.
    let start = Utc::now() - chrono::Duration::seconds(10);
    let clock = Arc::new(ManualClock::new(start, 0.0));
    let flags = [("username", "dev"), ("password-file", pw.as_str())];
    let auth = authenticator_at(&gw, &flags, clock.clone());
    let first = auth.token(false).await.unwrap();
    clock.advance(Duration::from_secs(300 - 30) - Duration::from_nanos(1));
    assert!(auth.token(false).await.unwrap() == first);
    assert_eq!(grants(&gw), (1, 0, 0), "reused until the margin");
    clock.advance(Duration::from_nanos(1));
    auth.token(false).await.unwrap();
    assert_eq!(grants(&gw), (1, 1, 0), "at the margin: refreshed");
}

#[tokio::test]
async fn an_expired_cray_login_is_refreshed_once_and_reused_until_the_file_changes() {
    let gw = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let token_url = &gw.token_url();
    let login = |expires_at: i64| async move {
        let password = Secret::new(DEFAULT_PASSWORD);
        let grant = Grant::Password {
            username: "dev",
            password: &password,
        };
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let timeout = Duration::from_secs(10);
        let issued = keycloak::request(&http, token_url, "shasta", grant, timeout, &SystemTime)
            .await
            .unwrap();
        let saved = serde_json::json!({
            "access_token": issued.access_token.expose(),
            "refresh_token": issued.refresh_token.unwrap().expose(),
            "expires_at": expires_at, "client_id": "shasta",
        });
        (issued.access_token, saved.to_string())
    };
    let now = Utc::now().timestamp();
    let (saved, text) = login(now - 3600).await;
    let path = private_file(dir.path(), "cray", &text);
    let auth = authenticator(&gw, &[("token-file", &path)]);
    let refreshed = auth.token(false).await.unwrap();
    assert!(refreshed != saved, "the expired saved token was sent");
    for _ in 0..2 {
        assert!(auth.token(false).await.unwrap() == refreshed);
    }
    assert_eq!(grants(&gw), (1, 1, 0), "one refresh, then reuse");
    // Rejected: refreshed again, from the refresh token we were given.
    let again = auth.token(true).await.unwrap();
    assert!(again != refreshed && again != saved);
    assert_eq!(grants(&gw), (1, 2, 0));
    // Its owner logs in again: the file's new token wins at once.
    let (newer, text) = login(now + 3600).await;
    private_file(dir.path(), "cray", &text);
    assert!(auth.token(false).await.unwrap() == newer);
    assert_eq!(grants(&gw), (2, 2, 0));
}

#[tokio::test]
async fn a_token_from_the_environment_must_be_set_and_unexpired() {
    let gw = gateway().await;
    let now = Utc::now().timestamp();
    let valid = jwt(serde_json::json!({"exp": now + 300, "preferred_username": "dev"}));
    let expired = jwt(serde_json::json!({"exp": now - 60}));
    // Names no other test uses; std serialises access to the environment.
    std::env::set_var("S3CREDSFS_UNIT_JWT_VALID", &valid);
    std::env::set_var("S3CREDSFS_UNIT_JWT_EXPIRED", &expired);
    std::env::set_var("S3CREDSFS_UNIT_JWT_BLANK", "  \n");
    let auth = |var: &str| authenticator(&gw, &[("token-env", var)]);
    let token = auth("S3CREDSFS_UNIT_JWT_VALID").token(false).await.unwrap();
    assert_eq!(token.expose(), valid);
    let at = format_time(DateTime::from_timestamp(now - 60, 0).unwrap());
    let err = auth("S3CREDSFS_UNIT_JWT_EXPIRED")
        .token(false)
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "the JWT in S3CREDSFS_UNIT_JWT_EXPIRED expired at {at}; get a new token and set \
             S3CREDSFS_UNIT_JWT_EXPIRED again"
        )
    );
    let err = auth("S3CREDSFS_UNIT_JWT_BLANK")
        .token(false)
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "environment variable S3CREDSFS_UNIT_JWT_BLANK (from --token-env) is not set or is \
         empty; put a JWT there"
    );
    assert_eq!(gw.stats().token_requests, 0);
}

/// After Keycloak refused a password, the mount logs in again only once the password
/// file (or command) gives another one: `reload_password` says whether it did, and the
/// next login uses it.
#[tokio::test]
async fn a_changed_password_file_is_seen_and_used() {
    let gw = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let pw = private_file(dir.path(), "pw", "wrong-password");
    let auth = authenticator(&gw, &[("username", "dev"), ("password-file", &pw)]);
    let refused = auth.token(false).await.unwrap_err();
    assert!(refused.is_login_refused(), "{refused}");
    assert!(!auth.reload_password().await, "the file did not change");
    private_file(dir.path(), "pw", DEFAULT_PASSWORD);
    assert!(auth.reload_password().await, "the file changed");
    assert!(!auth.reload_password().await, "and is in use now");
    assert_eq!(user_of(&auth.token(false).await.unwrap()), "dev");
    // A file that became unreadable (or insecure) keeps the password in use.
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(!auth.reload_password().await);
    // A password from a variable cannot change in a running process.
    std::env::set_var("S3CREDSFS_UNIT_RELOAD_PW", DEFAULT_PASSWORD);
    let auth = authenticator(
        &gw,
        &[
            ("username", "dev"),
            ("password-env", "S3CREDSFS_UNIT_RELOAD_PW"),
        ],
    );
    assert!(!auth.reload_password().await);
}

#[tokio::test]
async fn a_changed_password_command_is_seen() {
    let gw = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let source = private_file(dir.path(), "pw", "wrong-password");
    let command = format!("cat {source}");
    let auth = authenticator(&gw, &[("username", "dev"), ("password-command", &command)]);
    assert!(auth.token(false).await.unwrap_err().is_login_refused());
    assert!(!auth.reload_password().await);
    private_file(dir.path(), "pw", DEFAULT_PASSWORD);
    assert!(auth.reload_password().await);
    assert_eq!(user_of(&auth.token(false).await.unwrap()), "dev");
}

/// A password command that prints another value on every run (a counter, a timestamp, a
/// one-time code) does not lift a refused login's hold: each look would otherwise be a
/// new login, one every 30 s until Keycloak locks the account. One that settles on a new
/// password is still seen.
#[tokio::test]
async fn a_password_command_that_never_gives_the_same_password_twice_is_no_change() {
    let gw = gateway().await;
    let dir = tempfile::tempdir().unwrap();
    let counter = private_file(dir.path(), "n", "0");
    let settled = dir.path().join("settled");
    let command = format!(
        "if [ -e {settled} ]; then echo {DEFAULT_PASSWORD}; else \
         n=$(cat {counter}); echo $((n + 1)) > {counter}; echo wrong-$n; fi",
        settled = settled.display()
    );
    let auth = authenticator(&gw, &[("username", "dev"), ("password-command", &command)]);
    assert!(auth.token(false).await.unwrap_err().is_login_refused());
    let log = crate::test_log::Captured::default();
    let guard = tracing::subscriber::set_default(log.subscriber(tracing::Level::INFO));
    for look in 0..3 {
        assert!(!auth.reload_password().await, "look {look}");
    }
    drop(guard);
    let text = log.text();
    assert_eq!(
        text.matches("gave two different passwords in a row")
            .count(),
        1,
        "said once, not at every look: {text}"
    );
    std::fs::write(&settled, "").unwrap();
    assert!(
        auth.reload_password().await,
        "a password given twice is a change"
    );
    assert_eq!(user_of(&auth.token(false).await.unwrap()), "dev");
}
