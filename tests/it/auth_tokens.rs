//! Which token a refresh sends, told by the gateway's counters: a refresh token too close
//! to its end is not tried, and a `cray` CLI login refreshed in memory is reused until its
//! owner rewrites the file, whose new token then wins at once.

use crate::common;

use common::gw::{client, login};
use common::*;
use s3credsfs::dev::gateway::{Account, DEFAULT_PASSWORD};
use s3credsfs::sts::Pipeline;
use std::time::Duration;

#[tokio::test]
async fn a_refresh_token_about_to_expire_is_not_tried() {
    // Access tokens of 8 s are stale after 6 s (a quarter of their life before their end);
    // refresh tokens of 7 s are then 1 s from their end, inside the last quarter of their
    // life (under two minutes, that is the margin rather than 30 s) in which one is no
    // longer worth sending.
    let gw = gateway(|c| {
        c.token_lifetime = Duration::from_secs(8);
        c.refresh_lifetime = Duration::from_secs(7);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let pw = private_file(dir.path(), "pw", DEFAULT_PASSWORD);
    let s = settings(
        &gw,
        &[("username", "dev"), ("password-file", pw.to_str().unwrap())],
    );
    let pipeline = Pipeline::new(&s).unwrap();
    fetch_until(
        "a second token",
        Duration::from_secs(20),
        &pipeline,
        &gw,
        |s| s.password_grants + s.refresh_grants >= 2,
    )
    .await;
    let stats = gw.stats();
    assert_eq!(
        (
            stats.password_grants,
            stats.refresh_grants,
            stats.token_failures
        ),
        (2, 0, 0),
        "logged in again without trying the refresh token: {stats:?}"
    );
    assert_eq!(stats.token_requests, 2, "{stats:?}");
}

/// A `cray auth login` file for `user`, expiring `expires_in` seconds from now.
async fn cray_login(
    gw: &s3credsfs::dev::gateway::Gateway,
    user: &str,
    pw: &str,
    expires_in: i64,
) -> String {
    let response = login(gw, &client(), user, pw).await;
    assert!(response.status().is_success(), "login as {user}");
    let mut json: serde_json::Value = response.json().await.unwrap();
    json["expires_at"] = (chrono::Utc::now().timestamp() + expires_in).into();
    json["client_id"] = "shasta".into();
    json.to_string()
}

#[tokio::test]
async fn a_cray_token_refreshed_in_memory_is_reused_until_the_file_is_rewritten() {
    let gw = gateway(|c| c.users.push(Account::new("other", "other-pw", true))).await;
    let dir = tempfile::tempdir().unwrap();
    // `expires_at` an hour ago: the saved access token must be refreshed first.
    let expired = cray_login(&gw, "dev", DEFAULT_PASSWORD, -3600).await;
    let path = private_file(dir.path(), "api_gw_service_nmn_local.dev", &expired);
    let s = settings(&gw, &[("token-file", path.to_str().unwrap())]);
    let pipeline = Pipeline::new(&s).unwrap();
    let before = gw.stats().token_requests;
    pipeline.fetch().await.unwrap();
    pipeline.fetch().await.unwrap();
    pipeline.fetch().await.unwrap();
    let stats = gw.stats();
    assert_eq!(
        (
            stats.refresh_grants,
            stats.token_requests - before,
            stats.sts_issued
        ),
        (1, 1, 3),
        "one refresh, then its token reused while the file is unchanged: {stats:?}"
    );
    assert_eq!(pipeline.user().as_deref(), Some("dev"));

    // Its owner logs in again, as another user: the file's new token is used at once.
    let fresh = cray_login(&gw, "other", "other-pw", 300).await;
    std::fs::write(&path, fresh).unwrap();
    let before = gw.stats().token_requests;
    pipeline.fetch().await.unwrap();
    let stats = gw.stats();
    assert_eq!(pipeline.user().as_deref(), Some("other"), "{stats:?}");
    assert_eq!(
        stats.token_requests, before,
        "a fresh file token is sent as it is"
    );
    assert_eq!(stats.sts_issued, 4);
}
