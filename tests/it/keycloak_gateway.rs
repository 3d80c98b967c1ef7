//! The built-in gateway in front of a real Keycloak (`dev-gateway --keycloak`, and
//! `mount --dev --keycloak`): s3credsfs sends its grants to CSM's URL on the gateway, the
//! gateway forwards them to Keycloak, and its Istio/OPA checks verify the RS256 tokens
//! Keycloak really issued before STS hands out credentials.

use crate::common::keycloak::{Keycloak, KeycloakGateway, ONE_LOGIN_AT_A_TIME};
use crate::common::text;
use crate::fetch_cli::bin;
use std::process::Output;

/// `s3credsfs fetch --format json` through `gw` with `args`, the variables in `env` set.
async fn fetch(gw: &KeycloakGateway, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = bin();
    cmd.args(["fetch", "--api-gateway", &gw.api, "--timeout", "30s"])
        .args(["--format", "json"])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("run s3credsfs fetch")
}

/// The credentials a successful fetch printed, after checking no secret leaked to stderr.
fn credentials(out: &Output, secrets: &[&str]) -> serde_json::Value {
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "fetch failed: {stderr}");
    for secret in secrets {
        assert!(!stderr.contains(secret), "a secret in: {stderr}");
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON credentials");
    assert!(
        json["AccessKeyId"].as_str().is_some_and(|k| !k.is_empty()),
        "{json}"
    );
    json
}

#[tokio::test]
async fn a_password_login_through_the_gateway_gets_credentials() {
    let kc = Keycloak::shared();
    let gw = KeycloakGateway::start(&kc, &[]);
    let _turn = ONE_LOGIN_AT_A_TIME.lock().await;
    let password = kc.get("ADMIN_PASSWORD");
    let args = ["--username", kc.get("ADMIN_USER"), "--password-env", "PW"];
    let out = fetch(&gw, &args, &[("PW", password)]).await;
    credentials(&out, &[password]);
}

#[tokio::test]
async fn client_credentials_through_the_gateway_get_credentials() {
    let kc = Keycloak::shared();
    let gw = KeycloakGateway::start(&kc, &[]);
    let _turn = ONE_LOGIN_AT_A_TIME.lock().await;
    let secret = kc.get("CLIENT_SECRET");
    let args = [
        "--client-id",
        kc.get("CLIENT_ID"),
        "--client-secret-env",
        "CS",
    ];
    let out = fetch(&gw, &args, &[("CS", secret)]).await;
    credentials(&out, &[secret]);
}
