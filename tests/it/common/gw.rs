//! Raw HTTP helpers for testing the built-in gateway itself.
#![allow(dead_code, unused_imports)]

pub use std::sync::Arc;
pub use std::time::{Duration, Instant};

pub use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
pub use base64::Engine;
pub use reqwest::{Client, Response, StatusCode};
pub use s3credsfs::dev::gateway::{
    Account, Endpoint, Fault, Gateway, GatewayConfig, Stats, Times, DEFAULT_CLIENT,
    DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD, DEFAULT_USER,
};
pub use serde_json::Value;

pub const WAIT: Duration = Duration::from_secs(5);

pub async fn start(config: GatewayConfig) -> Gateway {
    Gateway::start(config).await.expect("gateway starts")
}

pub async fn start_default() -> Gateway {
    start(GatewayConfig::default()).await
}

pub fn client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub async fn post_form(gw: &Gateway, c: &Client, form: &[(&str, &str)]) -> Response {
    c.post(gw.token_url()).form(form).send().await.unwrap()
}

pub async fn login(gw: &Gateway, c: &Client, user: &str, password: &str) -> Response {
    post_form(
        gw,
        c,
        &[
            ("grant_type", "password"),
            ("client_id", "shasta"),
            ("username", user),
            ("password", password),
        ],
    )
    .await
}

/// Logs in as the default user and returns the token reply.
pub async fn login_ok(gw: &Gateway, c: &Client) -> Value {
    let r = login(gw, c, DEFAULT_USER, DEFAULT_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

pub async fn access_token(gw: &Gateway, c: &Client) -> String {
    login_ok(gw, c).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub async fn sts(gw: &Gateway, c: &Client, auth: Option<&str>) -> Response {
    let mut req = c.put(gw.sts_url());
    if let Some(value) = auth {
        req = req.header("authorization", value);
    }
    req.send().await.unwrap()
}

pub async fn sts_bearer(gw: &Gateway, c: &Client, token: &str) -> Response {
    sts(gw, c, Some(&format!("Bearer {token}"))).await
}

/// Asserts a Keycloak-style error reply.
pub async fn assert_oauth_error(r: Response, status: u16, error: &str, description: &str) {
    assert_eq!(r.status().as_u16(), status);
    assert_eq!(content_type(&r), "application/json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_description"], description, "{body}");
}

/// Asserts a plain-text gateway reply (Istio/OPA style).
pub async fn assert_text(r: Response, status: u16, text: &str) {
    assert_eq!(r.status().as_u16(), status);
    assert_eq!(content_type(&r), "text/plain");
    assert_eq!(r.text().await.unwrap(), text);
}

pub fn content_type(r: &Response) -> String {
    r.headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The claims of a JWT the emulator issued, through the crate's one decoder.
pub fn claims(jwt: &str) -> serde_json::Map<String, Value> {
    s3credsfs::auth::jwt_claims(jwt).expect("a JWT whose claims are a JSON object")
}

pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A refresh_token grant for the public client.
pub async fn refresh(gw: &Gateway, c: &Client, token: &str) -> Response {
    let f = [
        ("grant_type", "refresh_token"),
        ("client_id", "shasta"),
        ("refresh_token", token),
    ];
    post_form(gw, c, &f).await
}
