//! The built-in gateway's Keycloak token endpoint over real HTTP on loopback.

use crate::common;

use common::gw::*;
use common::wait_for_async;

#[tokio::test]
async fn password_grant_issues_keycloak_shaped_tokens() {
    let gw = start_default().await;
    let c = client();
    let r = login(&gw, &c, DEFAULT_USER, DEFAULT_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(content_type(&r), "application/json");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["refresh_expires_in"], 1800);
    assert_eq!(body["not-before-policy"], 0);
    assert_eq!(body["scope"], "profile email");
    let session = body["session_state"].as_str().unwrap();
    assert_eq!(session.len(), 36);
    assert_eq!(session.matches('-').count(), 4);

    let access = claims(body["access_token"].as_str().unwrap());
    assert_eq!(access["typ"], "Bearer");
    assert_eq!(access["aud"], "shasta");
    assert_eq!(access["azp"], "shasta");
    assert_eq!(access["preferred_username"], DEFAULT_USER);
    assert_eq!(
        access["iss"],
        format!("{}/keycloak/realms/shasta", gw.base_url())
    );
    assert_eq!(access["resource_access"]["shasta"]["roles"][0], "admin");
    let exp = access["exp"].as_f64().unwrap();
    assert!((exp - now_secs() - 300.0).abs() < 5.0);
    let refresh = claims(body["refresh_token"].as_str().unwrap());
    assert_eq!(refresh["typ"], "Refresh");
    assert_eq!(refresh["sid"], session);

    let stats = gw.stats();
    assert_eq!((stats.token_requests, stats.password_grants), (1, 1));
    assert_eq!(stats.token_failures, 0);
}

/// `secret` with its last character changed: as long as the secret, and equal up to the
/// end, so only a comparison of the whole value refuses it.
fn near_miss(secret: &str) -> String {
    let mut close = secret.to_owned();
    let last = close.pop().unwrap();
    close.push(if last == 'x' { 'y' } else { 'x' });
    close
}

#[tokio::test]
async fn password_grant_failures() {
    let gw = start_default().await;
    let c = client();
    for wrong in ["wrong", &near_miss(DEFAULT_PASSWORD)] {
        let r = login(&gw, &c, DEFAULT_USER, wrong).await;
        assert_oauth_error(r, 401, "invalid_grant", "Invalid user credentials").await;
    }
    let r = login(&gw, &c, "nobody", DEFAULT_PASSWORD).await;
    assert_oauth_error(r, 401, "invalid_grant", "Invalid user credentials").await;
    let f = [
        ("grant_type", "password"),
        ("client_id", "shasta"),
        ("password", "x"),
    ];
    let r = post_form(&gw, &c, &f).await;
    assert_oauth_error(
        r,
        400,
        "invalid_request",
        "Missing form parameter: username",
    )
    .await;
    let f = [
        ("grant_type", "password"),
        ("client_id", "shasta"),
        ("username", "dev"),
    ];
    let r = post_form(&gw, &c, &f).await;
    assert_oauth_error(
        r,
        400,
        "invalid_request",
        "Missing form parameter: password",
    )
    .await;
    // A confidential client without its secret.
    let f = [
        ("grant_type", "password"),
        ("client_id", DEFAULT_CLIENT),
        ("username", DEFAULT_USER),
        ("password", DEFAULT_PASSWORD),
    ];
    let r = post_form(&gw, &c, &f).await;
    let bad_client = "Invalid client or Invalid client credentials";
    assert_oauth_error(r, 401, "unauthorized_client", bad_client).await;
    let f = [
        ("grant_type", "password"),
        ("client_id", "no-such-client"),
        ("username", DEFAULT_USER),
        ("password", DEFAULT_PASSWORD),
    ];
    let r = post_form(&gw, &c, &f).await;
    assert_oauth_error(r, 401, "unauthorized_client", bad_client).await;

    let r = post_form(
        &gw,
        &c,
        &[("grant_type", "implicit"), ("client_id", "shasta")],
    )
    .await;
    assert_oauth_error(r, 400, "unsupported_grant_type", "Unsupported grant_type").await;
    let r = post_form(&gw, &c, &[("client_id", "shasta")]).await;
    assert_oauth_error(
        r,
        400,
        "invalid_request",
        "Missing form parameter: grant_type",
    )
    .await;
    let other_realm = gw.token_url().replace("/shasta/", "/master/");
    let r = c
        .post(other_realm)
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"error": "Realm does not exist"}));
    let r = c
        .post(gw.token_url())
        .body("{}")
        .header("content-type", "application/json");
    assert_eq!(
        r.send().await.unwrap().status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let r = c.get(gw.token_url()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);

    let stats = gw.stats();
    assert_eq!(stats.password_grants, 0);
    assert_eq!(stats.token_requests, 11);
    assert_eq!(stats.token_failures, 11);
}

#[tokio::test]
async fn refresh_grant_and_its_failures() {
    let gw = start_default().await;
    let c = client();
    let first = login_ok(&gw, &c).await;
    let old_refresh = first["refresh_token"].as_str().unwrap();
    let r = refresh(&gw, &c, old_refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    let second: Value = r.json().await.unwrap();
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(second["session_state"], first["session_state"]);
    assert_eq!(second["refresh_expires_in"], 1800);
    let access = second["access_token"].as_str().unwrap();
    assert_eq!(
        sts_bearer(&gw, &c, access).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(gw.stats().refresh_grants, 1);

    // An access token is not a refresh token.
    let r = refresh(&gw, &c, access).await;
    assert_oauth_error(r, 400, "invalid_grant", "Invalid refresh token").await;
    // Another client may not use this session's refresh token.
    let f = [
        ("grant_type", "refresh_token"),
        ("client_id", DEFAULT_CLIENT),
        ("client_secret", DEFAULT_CLIENT_SECRET),
        ("refresh_token", old_refresh),
    ];
    let r = post_form(&gw, &c, &f).await;
    let mismatch = "Invalid refresh token. Token client and authorized client don't match";
    assert_oauth_error(r, 400, "invalid_grant", mismatch).await;
    // Forged: payload swapped, signature kept.
    let parts: Vec<&str> = old_refresh.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(b"{\"typ\":\"Refresh\"}"),
        parts[2]
    );
    let r = refresh(&gw, &c, &forged).await;
    assert_oauth_error(r, 400, "invalid_grant", "Token is not active").await;
    let r = refresh(&gw, &c, "garbage").await;
    assert_oauth_error(r, 400, "invalid_grant", "Token is not active").await;
    let f = [("grant_type", "refresh_token"), ("client_id", "shasta")];
    let r = post_form(&gw, &c, &f).await;
    assert_oauth_error(r, 400, "invalid_request", "No refresh token").await;

    // Revoked: every refresh token so far is dead; access tokens live on; new logins work.
    gw.revoke_sessions();
    for token in [old_refresh, second["refresh_token"].as_str().unwrap()] {
        let r = refresh(&gw, &c, token).await;
        assert_oauth_error(r, 400, "invalid_grant", "Token is not active").await;
    }
    assert_eq!(
        sts_bearer(&gw, &c, access).await.status(),
        StatusCode::CREATED
    );
    let third = login_ok(&gw, &c).await;
    let r = refresh(&gw, &c, third["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let stats = gw.stats();
    assert_eq!((stats.password_grants, stats.refresh_grants), (2, 2));
    assert_eq!(stats.token_failures, 7);
}

#[tokio::test]
async fn expired_refresh_token_is_not_active() {
    let gw = start(GatewayConfig {
        refresh_lifetime: Duration::from_secs(1),
        ..GatewayConfig::default()
    })
    .await;
    let c = client();
    let body = login_ok(&gw, &c).await;
    assert_eq!(body["refresh_expires_in"], 1);
    let token = body["refresh_token"].as_str().unwrap();
    let r = wait_for_async("the refresh token to expire", WAIT, async || {
        let r = refresh(&gw, &c, token).await;
        if r.status() == StatusCode::BAD_REQUEST {
            return Ok(r);
        }
        assert_eq!(r.status(), StatusCode::OK);
        Err(format!("HTTP {}", r.status()))
    })
    .await;
    assert_oauth_error(r, 400, "invalid_grant", "Token is not active").await;
}

#[tokio::test]
async fn client_credentials_grant() {
    let gw = start_default().await;
    let c = client();
    let f = [
        ("grant_type", "client_credentials"),
        ("client_id", DEFAULT_CLIENT),
        ("client_secret", DEFAULT_CLIENT_SECRET),
    ];
    let r = post_form(&gw, &c, &f).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body.get("session_state").is_none(), "{body}");
    assert_eq!(body["refresh_expires_in"], 0);
    assert_eq!(body["token_type"], "Bearer");
    let token = body["access_token"].as_str().unwrap();
    let cl = claims(token);
    assert_eq!(cl["azp"], DEFAULT_CLIENT);
    assert_eq!(
        cl["preferred_username"],
        format!("service-account-{DEFAULT_CLIENT}")
    );
    assert_eq!(
        sts_bearer(&gw, &c, token).await.status(),
        StatusCode::CREATED
    );

    // HTTP Basic client authentication.
    let r = c
        .post(gw.token_url())
        .basic_auth(DEFAULT_CLIENT, Some(DEFAULT_CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let bad_client = "Invalid client or Invalid client credentials";
    let close = near_miss(DEFAULT_CLIENT_SECRET);
    for (id, secret) in [
        (DEFAULT_CLIENT, "wrong"),
        (DEFAULT_CLIENT, close.as_str()),
        ("nobody", DEFAULT_CLIENT_SECRET),
    ] {
        let f = [
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ];
        let r = post_form(&gw, &c, &f).await;
        assert_oauth_error(r, 401, "unauthorized_client", bad_client).await;
    }
    let r = c
        .post(gw.token_url())
        .basic_auth(DEFAULT_CLIENT, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(r, 401, "unauthorized_client", bad_client).await;
    let f = [
        ("grant_type", "client_credentials"),
        ("client_id", "shasta"),
    ];
    let r = post_form(&gw, &c, &f).await;
    let public = "Public client not allowed to retrieve service account";
    assert_oauth_error(r, 401, "unauthorized_client", public).await;
    let stats = gw.stats();
    assert_eq!(
        (stats.client_credentials_grants, stats.token_failures),
        (2, 5)
    );
}
