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
    // A login and a logout through it: Keycloak's 204 comes back bare.
    let _turn = ONE_LOGIN_AT_A_TIME.lock().await;
    let login = [
        ("grant_type", "password"),
        ("client_id", "shasta"),
        ("username", kc.get("ADMIN_USER")),
        ("password", kc.get("ADMIN_PASSWORD")),
    ];
    let granted = http.post(gw.token_url()).form(&login).send().await.unwrap();
    assert_eq!(granted.status(), 200);
    let granted: serde_json::Value = granted.json().await.unwrap();
    let logout = [
        ("client_id", "shasta"),
        ("refresh_token", granted["refresh_token"].as_str().unwrap()),
    ];
    let logout_url = gw.token_url().replace("/token", "/logout");
    let ended = http.post(&logout_url).form(&logout).send().await.unwrap();
    assert_eq!(ended.status(), 204);
    assert!(ended.headers().get("content-type").is_none());
    // The session is over: its refresh token is refused, through the gateway too.
    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", "shasta"),
        ("refresh_token", granted["refresh_token"].as_str().unwrap()),
    ];
    let refused = http
        .post(gw.token_url())
        .form(&refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
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

/// `scripts/demo-csm`, the whole real chain (Keycloak, the gateway, RGW, a mount, the AWS
/// CLI), on this process's Keycloak: it must succeed, show every hop, and leave nothing
/// running or mounted.
#[cfg(feature = "rgw-tests")]
#[tokio::test]
async fn the_csm_demo_runs_the_whole_chain_and_stops_everything() {
    let kc = Keycloak::shared();
    let _turn = ONE_LOGIN_AT_A_TIME.lock().await;
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new(repo.join("scripts/demo-csm"))
        .env("S3CREDSFS_BIN", env!("CARGO_BIN_EXE_s3credsfs"))
        .env("DEMO_CSM_KEYCLOAK_DIR", kc.dir())
        .env_remove("S3CREDSFS_LOG")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(600), out)
        .await
        .expect("scripts/demo-csm ends within 10 minutes")
        .expect("run scripts/demo-csm");
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for hop in [
        "make_bucket: demo-csm-",
        "hello through Keycloak, the gateway and RGW",
        "token request forwarded to Keycloak realm=\"shasta\" grant=\"password\" status=200",
        "JWT verified (signature, issuer, expiry) and OPA allowed it",
        "alg=\"RS256\"",
        "AssumeRole at http://127.0.0.1:",
        "/credentials: aws_access_key_id = ",
    ] {
        assert!(stdout.contains(hop), "no {hop:?} in:\n{stdout}");
    }
    for secret in [kc.get("ADMIN_PASSWORD"), kc.get("CLIENT_SECRET")] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
    // Its scratch directory (named in the mount's path) and everything in it are gone.
    let mounted = stdout
        .lines()
        .find_map(|l| l.strip_prefix("  mounted at "))
        .and_then(|l| l.split(':').next())
        .expect("the mount's path");
    let scratch = std::path::Path::new(mounted).parent().unwrap();
    assert!(!scratch.exists(), "{} is left behind", scratch.display());
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!table.contains(mounted), "{mounted} is still mounted");
    let scratch = scratch.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !cmdline.contains(&scratch),
            "still running from the demo: {cmdline}"
        );
    }
}
