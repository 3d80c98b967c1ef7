//! The credential pipeline against the built-in gateway over real loopback HTTP.

use crate::common;

use common::*;
use s3credsfs::dev::gateway::{
    Account, Endpoint, Fault, Times, DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD,
};
use s3credsfs::error::Error;
use s3credsfs::sts::Pipeline;
use std::time::Duration;

/// How long a renewal may take on a loaded machine.
const WAIT: Duration = Duration::from_secs(30);

/// Logs in as the default user with a password file.
fn password_settings(
    gw: &s3credsfs::dev::gateway::Gateway,
    dir: &std::path::Path,
) -> s3credsfs::config::Settings {
    let pw = private_file(dir, "pw", DEFAULT_PASSWORD);
    settings(
        gw,
        &[("username", "dev"), ("password-file", pw.to_str().unwrap())],
    )
}

#[tokio::test]
async fn password_login_reuses_the_token() {
    let gw = gateway(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::new(&password_settings(&gw, dir.path())).unwrap();
    let first = pipeline.fetch().await.unwrap();
    let second = pipeline.fetch().await.unwrap();
    assert_ne!(
        first.access_key_id, second.access_key_id,
        "each STS call mints new credentials"
    );
    assert!(first.expiration > chrono::Utc::now() + chrono::Duration::minutes(59));
    let stats = gw.stats();
    assert_eq!((stats.password_grants, stats.sts_issued), (1, 2));
    assert_eq!(pipeline.user().as_deref(), Some("dev"));
}

/// The pipeline judges the issued credentials on its injected clock: one two hours ahead
/// of the gateway's sees the gateway's one-hour credentials as already expired.
#[tokio::test]
async fn the_pipeline_judges_expiry_on_its_injected_clock() {
    use s3credsfs::clock::ManualClock;
    let gw = gateway(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let ahead = chrono::Utc::now() + chrono::Duration::hours(2);
    let clock = std::sync::Arc::new(ManualClock::new(ahead, 0.0));
    let pipeline = Pipeline::with_time(&password_settings(&gw, dir.path()), clock).unwrap();
    let err = pipeline.fetch().await.unwrap_err();
    assert!(matches!(err, Error::Expired { .. }), "{err}");
    assert_eq!(gw.stats().sts_issued, 1, "the gateway did issue them");
}

#[tokio::test]
async fn password_command_works() {
    let gw = gateway(|_| {}).await;
    let s = settings(
        &gw,
        &[
            ("username", "dev"),
            ("password-command", "echo dev-password"),
        ],
    );
    Pipeline::new(&s).unwrap().fetch().await.unwrap();
}

#[tokio::test]
async fn expired_jwt_is_refreshed_with_the_refresh_token() {
    // 8 s tokens are renewed 2 s before their end (a quarter of their life): time enough
    // for a loaded machine to get the last one to the STS before it expires.
    let gw = gateway(|c| c.token_lifetime = Duration::from_secs(8)).await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::new(&password_settings(&gw, dir.path())).unwrap();
    fetch_until("a refresh grant", WAIT, &pipeline, &gw, |s| {
        s.refresh_grants >= 1
    })
    .await;
    let stats = gw.stats();
    assert_eq!(stats.password_grants, 1, "refreshed, not logged in again");
    // The JWT is renewed before it expires: the STS never has to refuse one.
    assert_eq!(stats.sts_rejected, 0, "{stats:?}");
    assert_eq!(stats.sts_requests, stats.sts_issued, "{stats:?}");
}

#[tokio::test]
async fn refused_refresh_falls_back_to_the_password() {
    let gw = gateway(|c| c.token_lifetime = Duration::from_secs(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::new(&password_settings(&gw, dir.path())).unwrap();
    pipeline.fetch().await.unwrap();
    gw.revoke_sessions();
    fetch_until("a second password grant", WAIT, &pipeline, &gw, |s| {
        s.password_grants >= 2
    })
    .await;
    assert_eq!(gw.stats().refresh_grants, 0);
    assert!(
        gw.stats().token_failures >= 1,
        "the refresh was tried and refused"
    );
}

#[tokio::test]
async fn wrong_password_is_one_clear_sentence() {
    let gw = gateway(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let pw = private_file(dir.path(), "pw", "not-the-password");
    let s = settings(
        &gw,
        &[("username", "dev"), ("password-file", pw.to_str().unwrap())],
    );
    let err = Pipeline::new(&s).unwrap().fetch().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "Keycloak at {} rejected the password for user \"dev\": Invalid user credentials; check the \
             user name and password (--username, --password-env/--password-file/--password-command)",
            gw.token_url()
        )
    );
    assert!(!err.to_string().contains("not-the-password"));
}

/// A client id Keycloak does not know names --client-id, not the user's password.
#[tokio::test]
async fn a_wrong_client_id_names_client_id() {
    let gw = gateway(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let pw = private_file(dir.path(), "pw", DEFAULT_PASSWORD);
    let s = settings(
        &gw,
        &[
            ("username", "dev"),
            ("password-file", pw.to_str().unwrap()),
            ("client-id", "shasta-typo"),
        ],
    );
    let err = Pipeline::new(&s).unwrap().fetch().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "Keycloak at {} rejected client id \"shasta-typo\": Invalid client or Invalid client \
             credentials; check --client-id (password logins use the public client `shasta`, as \
             the `cray` CLI does)",
            gw.token_url()
        )
    );
}

#[tokio::test]
async fn client_credentials_grant() {
    let gw = gateway(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = private_file(dir.path(), "secret", DEFAULT_CLIENT_SECRET);
    let s = settings(
        &gw,
        &[
            ("client-id", "admin-client"),
            ("client-secret-file", secret.to_str().unwrap()),
        ],
    );
    let pipeline = Pipeline::new(&s).unwrap();
    pipeline.fetch().await.unwrap();
    pipeline.fetch().await.unwrap();
    assert_eq!(gw.stats().client_credentials_grants, 1);
    assert_eq!(
        pipeline.user().as_deref(),
        Some("service-account-admin-client")
    );

    let wrong = private_file(dir.path(), "wrong", "nope");
    let s = settings(
        &gw,
        &[
            ("client-id", "admin-client"),
            ("client-secret-file", wrong.to_str().unwrap()),
        ],
    );
    let err = fetch_error(&s).await;
    assert!(
        err.contains("rejected client \"admin-client\" and its secret: Invalid client or Invalid client credentials"),
        "{err}"
    );
}

#[tokio::test]
async fn token_file_with_a_raw_jwt_is_reread_on_every_use() {
    let gw = gateway(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let reply = password_grant(&gw).await;
    let path = private_file(
        dir.path(),
        "token",
        &format!("{}\n", reply["access_token"].as_str().unwrap()),
    );
    let s = settings(&gw, &[("token-file", path.to_str().unwrap())]);
    let pipeline = Pipeline::new(&s).unwrap();
    pipeline.fetch().await.unwrap();

    std::fs::write(&path, "garbage").unwrap();
    let err = pipeline.fetch().await.unwrap_err().to_string();
    assert!(
        err.contains("holds neither a JWT nor a `cray` CLI login"),
        "{err}"
    );

    let reply = password_grant(&gw).await;
    std::fs::write(&path, reply["access_token"].as_str().unwrap()).unwrap();
    pipeline.fetch().await.unwrap();
    assert_eq!(gw.stats().sts_issued, 2);
}

#[tokio::test]
async fn cray_cli_login_is_refreshed_in_memory_and_never_written() {
    let gw = gateway(|c| c.token_lifetime = Duration::from_secs(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut login = password_grant(&gw).await;
    let issued = chrono::Utc::now().timestamp() as f64;
    login["expires_at"] = serde_json::json!(issued + 1.0);
    login["client_id"] = serde_json::json!("shasta");
    let path = private_file(
        dir.path(),
        "api_gw_service_nmn_local.dev",
        &login.to_string(),
    );
    let before = std::fs::read(&path).unwrap();
    // Wait for the saved access token to expire, so it must be refreshed.
    wait_for_async(
        "the saved access token to expire",
        Duration::from_secs(5),
        async || chrono::Utc::now().timestamp() as f64 > issued + 1.0,
    )
    .await;

    let s = settings(&gw, &[("token-file", path.to_str().unwrap())]);
    let pipeline = Pipeline::new(&s).unwrap();
    pipeline.fetch().await.unwrap();
    assert_eq!(gw.stats().refresh_grants, 1);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the cray CLI's file is never rewritten"
    );

    // A dead refresh token is reported as such.
    gw.revoke_sessions();
    wait_for_async(
        "the refreshed token to die",
        Duration::from_secs(5),
        async || chrono::Utc::now().timestamp() as f64 > issued + 3.0,
    )
    .await;
    let err = pipeline.fetch().await.unwrap_err().to_string();
    assert!(
        err.contains(
            "says the refresh token is no longer active (Token is not active); log in again"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_rejected_token_is_replaced_and_retried_once() {
    let gw = gateway(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::new(&password_settings(&gw, dir.path())).unwrap();
    gw.inject(
        Endpoint::Sts,
        status_fault(401, "text/plain", "Jwt is expired"),
        Times::Once,
    );
    pipeline.fetch().await.unwrap();
    let stats = gw.stats();
    assert_eq!((stats.sts_requests, stats.sts_issued), (2, 1));
    assert_eq!(
        stats.token_requests, 2,
        "a new token was obtained for the retry"
    );
}

#[tokio::test]
async fn an_account_without_admin_is_told_so() {
    let gw = gateway(|c| c.users.push(Account::new("guest", "guest-pw", false))).await;
    let dir = tempfile::tempdir().unwrap();
    let pw = private_file(dir.path(), "pw", "guest-pw");
    let s = settings(
        &gw,
        &[
            ("username", "guest"),
            ("password-file", pw.to_str().unwrap()),
        ],
    );
    let err = Pipeline::new(&s).unwrap().fetch().await.unwrap_err();
    assert_eq!(
        err,
        Error::StsForbidden {
            url: gw.sts_url(),
            status: 403
        }
    );
    assert!(err
        .to_string()
        .contains("needs the `admin` role of the `shasta` client"));
    assert_eq!(gw.stats().sts_requests, 2, "exactly one retry");
}

#[tokio::test]
async fn server_errors_and_bad_replies() {
    let gw = gateway(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::new(&password_settings(&gw, dir.path())).unwrap();
    let problem = r#"{"detail": "Ceph RGW is unavailable", "status": 500, "title": "Internal Server Error", "type": "about:blank"}"#;
    let cases = [
        (
            status_fault(500, "application/problem+json", problem),
            "answered HTTP 500 (Ceph RGW is unavailable); the STS or its Ceph backend is failing",
        ),
        (
            status_fault(503, "text/plain", "Error"),
            "answered HTTP 503; the STS or its Ceph backend is failing",
        ),
        (
            Fault::Malformed,
            "answered HTTP 201 but its body is not the expected JSON object",
        ),
        (
            Fault::Incomplete,
            "answered HTTP 201 but its \"Credentials\" object lacks \"SessionToken\"",
        ),
        (
            Fault::ExpiredCredentials,
            "returned credentials that expired at",
        ),
        (Fault::CloseConnection, "cannot reach"),
    ];
    for (fault, expected) in cases {
        gw.inject(Endpoint::Sts, fault.clone(), Times::Once);
        let err = pipeline.fetch().await.unwrap_err().to_string();
        assert!(err.contains(expected), "{fault:?}: {err}");
        assert!(err.contains(&gw.sts_url()), "{err}");
    }
    pipeline.fetch().await.unwrap();
}

#[tokio::test]
async fn a_bad_token_reply_is_reported() {
    let gw = gateway(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::new(&password_settings(&gw, dir.path())).unwrap();
    gw.inject(Endpoint::Token, Fault::Incomplete, Times::Once);
    let err = pipeline.fetch().await.unwrap_err().to_string();
    assert!(
        err.contains("answered HTTP 200 but its JSON has no \"access_token\""),
        "{err}"
    );
    gw.inject(
        Endpoint::Token,
        status_fault(502, "application/json", r#"{"error":"unknown_error"}"#),
        Times::Once,
    );
    let err = pipeline.fetch().await.unwrap_err().to_string();
    assert!(
        err.contains("answered HTTP 502 (unknown_error); Keycloak is failing"),
        "{err}"
    );
}

/// A URL that is not Keycloak (a web server's 404 page, another service's 500) says so
/// and points at --api-gateway, instead of blaming Keycloak.
#[tokio::test]
async fn a_url_that_is_not_keycloak_says_so() {
    let gw = gateway(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::new(&password_settings(&gw, dir.path())).unwrap();
    for code in [500, 404] {
        let page = format!("<html><body><h1>{code}</h1></body></html>");
        gw.inject(
            Endpoint::Token,
            status_fault(code, "text/html", &page),
            Times::Once,
        );
        let err = pipeline.fetch().await.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{} answered HTTP {code} with an HTML page; the reply does not look like Keycloak's: \
                 check that --api-gateway (or --token-url) points at a CSM gateway",
                gw.token_url()
            )),
            "{err}"
        );
        assert!(!err.contains("Keycloak is failing"), "{err}");
    }
}

#[tokio::test]
async fn a_slow_gateway_hits_the_timeout() {
    let gw = gateway(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let pw = private_file(dir.path(), "pw", DEFAULT_PASSWORD);
    let s = settings(
        &gw,
        &[
            ("username", "dev"),
            ("password-file", pw.to_str().unwrap()),
            ("timeout", "300ms"),
        ],
    );
    gw.inject(
        Endpoint::Sts,
        Fault::Delay(Duration::from_secs(3)),
        Times::Once,
    );
    let err = Pipeline::new(&s).unwrap().fetch().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} did not answer within 300ms; check the gateway's health, or raise --timeout",
            gw.sts_url()
        )
    );
}

#[tokio::test]
async fn an_unreachable_gateway() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let pw = private_file(dir.path(), "pw", DEFAULT_PASSWORD);
    let s = settings_for(
        &closed,
        &[("username", "dev"), ("password-file", pw.to_str().unwrap())],
    )
    .unwrap();
    let err = fetch_error(&s).await;
    assert!(
        err.starts_with(&format!("cannot reach {closed}/keycloak/")),
        "{err}"
    );
    assert!(err.contains("Connection refused"), "{err}");
}
