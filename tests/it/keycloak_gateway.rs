//! The built-in gateway in front of a real Keycloak (`dev-gateway --keycloak`, and
//! `mount --dev --keycloak`): s3credsfs sends its grants to CSM's URL on the gateway, the
//! gateway forwards them to Keycloak, and its Istio/OPA checks verify the RS256 tokens
//! Keycloak really issued before STS hands out credentials. The grants themselves (and
//! OPA's refusal of a user without `admin`) are in `keycloak.rs`.

use crate::common::keycloak::{Keycloak, KeycloakGateway, ONE_LOGIN_AT_A_TIME};
use crate::common::text;
use crate::fetch_cli::bin;
use std::process::Output;

/// The product's sentence when the gateway's OPA refuses a token Keycloak issued, with
/// `{sts}` for the STS URL.
pub(crate) const OPA_REFUSAL: &str = "s3credsfs: error: the STS at {sts} refused a freshly \
    issued token (HTTP 403); the gateway's policy refused it: the account needs the `admin` \
    role of the `shasta` client in Keycloak";

/// `s3credsfs fetch --format json` through `gw` with `args`, the variables in `env` set.
pub(crate) async fn fetch_through(
    gw: &KeycloakGateway,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut cmd = bin();
    cmd.args(["fetch", "--api-gateway", &gw.api, "--timeout", "30s"])
        .args(["--format", "json"])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("run s3credsfs fetch")
}

/// The credentials a successful fetch printed, after checking that no secret reached its
/// stderr.
pub(crate) fn fetched_credentials(out: &Output, secrets: &[&str]) -> serde_json::Value {
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

/// A token for a user with `admin` on a `shasta` client with audience `shasta`, in a realm
/// made for this test through Keycloak's admin REST API: right in every claim the gateway
/// reads but the issuer, and signed with that realm's own key.
async fn token_of_another_realm(kc: &Keycloak) -> String {
    let http = reqwest::Client::new();
    let admin: serde_json::Value = http
        .post(format!(
            "{}/keycloak/realms/master/protocol/openid-connect/token",
            kc.url()
        ))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "admin-cli"),
            ("username", kc.get("SERVER_ADMIN_USER")),
            ("password", kc.get("SERVER_ADMIN_PASSWORD")),
        ])
        .send()
        .await
        .expect("the server admin's login")
        .json()
        .await
        .expect("the server admin's token");
    let admin = admin["access_token"].as_str().expect("an admin token");
    let realm = format!("elsewhere-{}", std::process::id());
    let password = "elsewhere-password-1";
    let audience = serde_json::json!({
        "name": "shasta-audience", "protocol": "openid-connect",
        "protocolMapper": "oidc-audience-mapper",
        "config": {"included.client.audience": "shasta", "access.token.claim": "true"},
    });
    let definition = serde_json::json!({
        "realm": realm, "enabled": true, "sslRequired": "none",
        "clients": [{"clientId": "shasta", "publicClient": true,
                     "directAccessGrantsEnabled": true, "protocolMappers": [audience]}],
        "users": [{"username": "vers", "enabled": true, "firstName": "Other", "lastName": "Realm",
                   "email": "vers@elsewhere.invalid", "emailVerified": true,
                   "credentials": [{"type": "password", "value": password, "temporary": false}],
                   "clientRoles": {"shasta": ["admin"]}}],
    });
    let created = http
        .post(format!("{}/keycloak/admin/realms", kc.url()))
        .bearer_auth(admin)
        .json(&definition)
        .send()
        .await
        .expect("create a realm");
    assert!(
        created.status() == 201 || created.status() == 409,
        "creating realm {realm}: HTTP {}",
        created.status()
    );
    let reply: serde_json::Value = http
        .post(format!(
            "{}/keycloak/realms/{realm}/protocol/openid-connect/token",
            kc.url()
        ))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "shasta"),
            ("username", "vers"),
            ("password", password),
        ])
        .send()
        .await
        .expect("a login in the other realm")
        .json()
        .await
        .expect("its token reply");
    let token = reply["access_token"].as_str().expect("an access token");
    let claims = s3credsfs::jwt::claims(token).expect("a JWT");
    assert_eq!(claims["resource_access"]["shasta"]["roles"][0], "admin");
    token.to_owned()
}

#[tokio::test]
async fn a_token_of_another_realm_is_refused_by_istio() {
    let kc = Keycloak::shared();
    let gw = KeycloakGateway::start(&kc, &[]);
    let token = token_of_another_realm(&kc).await;
    let reply = reqwest::Client::new()
        .put(format!("{}/apis/sts/token", gw.api))
        .bearer_auth(&token)
        .send()
        .await
        .expect("PUT /apis/sts/token");
    assert_eq!(reply.status(), 401);
    assert_eq!(reply.text().await.unwrap(), "Jwt issuer is not configured");
    // And the product says so, without the token.
    let out = fetch_through(&gw, &["--token-env", "TOKEN"], &[("TOKEN", &token)]).await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success() && out.stdout.is_empty(), "{stderr}");
    assert!(stderr.contains("HTTP 401"), "{stderr}");
    assert!(!stderr.contains(&token), "the token in: {stderr}");
}

#[tokio::test]
async fn keycloak_replies_pass_through_the_gateway_unchanged() {
    let kc = Keycloak::shared();
    let gw = KeycloakGateway::start(&kc, &[]);
    let http = reqwest::Client::new();
    let path = "/keycloak/realms/shasta/.well-known/openid-configuration";
    let direct = http
        .get(format!("{}{path}", kc.url()))
        .send()
        .await
        .unwrap();
    let forwarded = http.get(format!("{}{path}", gw.api)).send().await.unwrap();
    assert_eq!(forwarded.status(), 200);
    assert_eq!(
        forwarded.headers()["content-type"],
        direct.headers()["content-type"]
    );
    assert_eq!(
        forwarded.text().await.unwrap(),
        direct.text().await.unwrap()
    );
    // A refusal keeps Keycloak's status and body. (A user Keycloak does not know: a wrong
    // password for a real one would count towards its brute-force lockout.)
    let form = [
        ("grant_type", "password"),
        ("client_id", "shasta"),
        ("username", "nobody-in-this-realm"),
        ("password", "not-the-password"),
    ];
    let direct = http.post(kc.token_url()).form(&form).send().await.unwrap();
    let refused = http.post(gw.token_url()).form(&form).send().await.unwrap();
    assert!(direct.status().is_client_error(), "{}", direct.status());
    assert_eq!(refused.status(), direct.status());
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body, direct.json::<serde_json::Value>().await.unwrap());
    assert_eq!(body["error_description"], "Invalid user credentials");
}

#[tokio::test]
async fn a_gateway_given_keycloaks_url_without_its_path_does_not_start() {
    let kc = Keycloak::shared();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_s3credsfs"))
        .args([
            "dev-gateway",
            "--listen",
            "127.0.0.1:0",
            "--keycloak",
            kc.url(),
        ])
        .output()
        .expect("run dev-gateway");
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "no banner: {}", text(&out.stdout));
    assert!(
        stderr.contains(&format!("Keycloak at {}: it answered HTTP 404.", kc.url())),
        "{stderr}"
    );
}

/// `mount --dev --keycloak`: the mount's own built-in gateway in front of the real
/// Keycloak, logging in with the user's login.
#[cfg(feature = "fuse-tests")]
#[tokio::test]
async fn a_mount_with_dev_keycloak_serves_credentials() {
    let kc = Keycloak::shared();
    let _turn = ONE_LOGIN_AT_A_TIME.lock().await;
    let base = format!("{}/keycloak", kc.url());
    let args = [
        "--dev",
        "--keycloak",
        &base,
        "--username",
        kc.get("ADMIN_USER"),
        "--password-env",
        "KC_PW",
    ];
    let mount =
        crate::common::mount::Mounted::start_args(&args, &[("KC_PW", kc.get("ADMIN_PASSWORD"))]);
    let json: serde_json::Value =
        serde_json::from_str(&mount.read("json").expect("read json")).expect("JSON");
    assert!(json["AccessKeyId"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(!mount.log().contains(kc.get("ADMIN_PASSWORD")));
}
