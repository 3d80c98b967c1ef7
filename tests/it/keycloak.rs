//! The product's own logins against a real Keycloak (`scripts/keycloak`, realm
//! `tests/keycloak/shasta-realm.json`). Refusals go to Keycloak itself: `--api-gateway`
//! names Keycloak, so `s3credsfs fetch` sends its grants to Keycloak's real
//! `/keycloak/realms/shasta/protocol/openid-connect/token`, and each refusal must be the
//! product's sentence for Keycloak's real reply, on one line, with nothing on stdout.
//! Logins that Keycloak grants go all the way through the built-in gateway in front of it
//! (`dev-gateway --keycloak`), whose Istio/OPA checks take the real token to STS.

use crate::common::keycloak::{run_script, Keycloak};
use crate::common::text;
use crate::fetch_cli::bin;
use std::process::Output;

use crate::common::keycloak::{KeycloakGateway, ONE_LOGIN_AT_A_TIME};
use crate::keycloak_gateway::{fetch_through, fetched_credentials, OPA_REFUSAL};

/// `s3credsfs fetch` against Keycloak with `args`, the variables in `env` set.
async fn fetch(kc: &Keycloak, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = bin();
    cmd.args(["fetch", "--api-gateway", kc.url(), "--timeout", "30s"])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("run s3credsfs fetch")
}

/// A password login as `user` with `password`, and `extra` flags.
async fn login(kc: &Keycloak, user: &str, password: &str, extra: &[&str]) -> Output {
    let mut args = vec!["--username", user, "--password-env", "PW"];
    args.extend_from_slice(extra);
    fetch(kc, &args, &[("PW", password)]).await
}

/// The one line the command failed with; no credentials printed, no secret in it.
fn failure(out: &Output, secrets: &[&str]) -> String {
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "expected a failure: {stderr}");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    for secret in secrets {
        assert!(!stderr.contains(secret), "a secret in: {stderr}");
    }
    stderr.trim_end().to_string()
}

fn token_url_of(kc: &Keycloak) -> String {
    kc.token_url().to_string()
}

#[tokio::test]
async fn a_correct_password_gets_credentials_through_the_gateway() {
    let kc = Keycloak::shared();
    let gw = KeycloakGateway::start(&kc, &[]);
    let _turn = ONE_LOGIN_AT_A_TIME.lock().await;
    let password = kc.get("ADMIN_PASSWORD");
    let args = ["--username", kc.get("ADMIN_USER"), "--password-env", "PW"];
    let out = fetch_through(&gw, &args, &[("PW", password)]).await;
    fetched_credentials(&out, &[password]);
}

#[tokio::test]
async fn a_user_without_admin_gets_a_token_but_opas_refusal() {
    // Keycloak issues the token; the gateway's OPA check refuses it, with its sentence.
    let kc = Keycloak::shared();
    let gw = KeycloakGateway::start(&kc, &[]);
    let _turn = ONE_LOGIN_AT_A_TIME.lock().await;
    let password = kc.get("NOROLE_PASSWORD");
    let args = ["--username", kc.get("NOROLE_USER"), "--password-env", "PW"];
    let out = fetch_through(&gw, &args, &[("PW", password)]).await;
    assert_eq!(
        failure(&out, &[password]),
        OPA_REFUSAL.replace("{sts}", &format!("{}/apis/sts/token", gw.api))
    );
}

#[tokio::test]
async fn client_credentials_get_credentials_through_the_gateway() {
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
    let out = fetch_through(&gw, &args, &[("CS", secret)]).await;
    fetched_credentials(&out, &[secret]);
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_keycloaks_reason() {
    let kc = Keycloak::shared();
    let _turn = ONE_LOGIN_AT_A_TIME.lock().await;
    // A user of its own, so that no lockout of this user's can touch the other tests.
    let out = login(&kc, kc.get("MISTYPED_USER"), "not-the-password", &[]).await;
    assert_eq!(
        failure(&out, &["not-the-password"]),
        format!(
            "s3credsfs: error: Keycloak at {} rejected the password for user \"mistyped\": Invalid user \
             credentials; check the user name and password (--username, \
             --password-env/--password-file/--password-command)",
            token_url_of(&kc)
        )
    );
}

#[tokio::test]
async fn a_disabled_user_is_told_the_account_not_the_password_is_the_problem() {
    // Keycloak says "Account disabled" only to the right password (a wrong one gets
    // "Invalid user credentials"): "check the password" would send the user astray.
    let kc = Keycloak::shared();
    let _turn = ONE_LOGIN_AT_A_TIME.lock().await;
    let password = kc.get("DISABLED_PASSWORD");
    let out = login(&kc, kc.get("DISABLED_USER"), password, &[]).await;
    assert_eq!(
        failure(&out, &[password]),
        format!(
            "s3credsfs: error: Keycloak at {} rejected the account of user \"disabled\": \
             Account disabled; the password is right but the account is disabled in Keycloak; \
             an administrator must enable it",
            token_url_of(&kc)
        )
    );
}

#[tokio::test]
async fn a_wrong_client_id_names_the_client_not_the_password() {
    let kc = Keycloak::shared();
    let _turn = ONE_LOGIN_AT_A_TIME.lock().await;
    let password = kc.get("ADMIN_PASSWORD");
    let out = login(
        &kc,
        kc.get("ADMIN_USER"),
        password,
        &["--client-id", "nosuch"],
    )
    .await;
    assert_eq!(
        failure(&out, &[password]),
        format!(
            "s3credsfs: error: Keycloak at {} rejected client id \"nosuch\": Invalid client or Invalid \
             client credentials; check --client-id (password logins use the public client \
             `shasta`, as the `cray` CLI does)",
            token_url_of(&kc)
        )
    );
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused() {
    let kc = Keycloak::shared();
    let _turn = ONE_LOGIN_AT_A_TIME.lock().await;
    let args = [
        "--client-id",
        kc.get("CLIENT_ID"),
        "--client-secret-env",
        "CS",
    ];
    let out = fetch(&kc, &args, &[("CS", "not-the-secret")]).await;
    assert_eq!(
        failure(&out, &["not-the-secret", kc.get("CLIENT_SECRET")]),
        format!(
            "s3credsfs: error: Keycloak at {} rejected client \"admin-client\" and its secret: Invalid \
             client or Invalid client credentials; check --client-id and the secret \
             (Kubernetes secret `admin-client-auth`, key `client-secret`)",
            token_url_of(&kc)
        )
    );
}

#[tokio::test]
async fn a_wrong_realm_says_which_settings_to_check() {
    let kc = Keycloak::shared();
    let _turn = ONE_LOGIN_AT_A_TIME.lock().await;
    let password = kc.get("ADMIN_PASSWORD");
    let out = login(&kc, kc.get("ADMIN_USER"), password, &["--realm", "nosuch"]).await;
    assert_eq!(
        failure(&out, &[password]),
        format!(
            "s3credsfs: error: {}/keycloak/realms/nosuch/protocol/openid-connect/token answered HTTP 404 \
             (Realm does not exist); check --realm, --token-url and --api-gateway",
            kc.url()
        )
    );
}

/// Keycloak's own reply to a password grant for the test admin, as JSON.
async fn keycloak_login(kc: &Keycloak) -> serde_json::Value {
    let reply = reqwest::Client::new()
        .post(kc.token_url())
        .form(&[
            ("grant_type", "password"),
            ("client_id", "shasta"),
            ("username", kc.get("ADMIN_USER")),
            ("password", kc.get("ADMIN_PASSWORD")),
        ])
        .send()
        .await
        .expect("password grant");
    assert_eq!(reply.status(), 200, "Keycloak refused the test admin");
    reply.json().await.expect("Keycloak's token reply")
}

/// The `cray` CLI's saved login (the OAuth token dict, `client_id`, `expires_at`) of a
/// Keycloak reply, in a private file; `expires_at` as given.
fn cray_login_file(dir: &std::path::Path, reply: &serde_json::Value, expires_at: f64) -> String {
    let mut saved = reply.clone();
    saved["client_id"] = "shasta".into();
    saved["expires_at"] = expires_at.into();
    let path =
        crate::common::private_file(dir, "api_gw_service_nmn_local.vers", &saved.to_string());
    path.to_str().expect("a UTF-8 temporary path").to_string()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs_f64()
}

#[tokio::test]
async fn a_cray_login_keycloak_issued_is_accepted() {
    // Got from Keycloak directly, not through the gateway: the same issuer, accepted.
    let kc = Keycloak::shared();
    let gw = KeycloakGateway::start(&kc, &[]);
    let _turn = ONE_LOGIN_AT_A_TIME.lock().await;
    let reply = keycloak_login(&kc).await;
    let dir = tempfile::tempdir().unwrap();
    let file = cray_login_file(dir.path(), &reply, unix_now() + 60.0);
    let out = fetch_through(&gw, &["--token-file", &file], &[]).await;
    let access = reply["access_token"].as_str().unwrap();
    fetched_credentials(&out, &[access]);
}

#[tokio::test]
async fn an_expired_cray_login_is_refreshed_by_keycloak() {
    // The file says its token expired: the product must use the refresh token with
    // Keycloak's real refresh grant (client `shasta`, from the file) to get past it.
    let kc = Keycloak::shared();
    let gw = KeycloakGateway::start(&kc, &[]);
    let _turn = ONE_LOGIN_AT_A_TIME.lock().await;
    let reply = keycloak_login(&kc).await;
    let dir = tempfile::tempdir().unwrap();
    let file = cray_login_file(dir.path(), &reply, unix_now() - 10.0);
    let env = [("S3CREDSFS_LOG", "info")];
    let out = fetch_through(&gw, &["--token-file", &file], &env).await;
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("refreshed the token file's expired token in memory"),
        "{stderr}"
    );
    let secrets: Vec<&str> = ["access_token", "refresh_token"]
        .iter()
        .map(|name| reply[*name].as_str().unwrap())
        .collect();
    fetched_credentials(&out, &secrets);
}

#[tokio::test]
async fn a_cray_login_whose_session_ended_says_log_in_again() {
    let kc = Keycloak::shared();
    let _turn = ONE_LOGIN_AT_A_TIME.lock().await;
    let reply = keycloak_login(&kc).await;
    let refresh = reply["refresh_token"].as_str().unwrap();
    // The user logs out: Keycloak ends the session and its refresh token with it.
    let logout = reqwest::Client::new()
        .post(kc.token_url().replace("/token", "/logout"))
        .form(&[("client_id", "shasta"), ("refresh_token", refresh)])
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), 204, "Keycloak's logout");
    let dir = tempfile::tempdir().unwrap();
    let file = cray_login_file(dir.path(), &reply, unix_now() - 10.0);
    let out = fetch(&kc, &["--token-file", &file], &[]).await;
    assert_eq!(
        failure(&out, &[refresh]),
        format!(
            "s3credsfs: error: Keycloak at {} says the refresh token is no longer active \
             (Session not active); log in again (for example `cray auth login`)",
            token_url_of(&kc)
        )
    );
}

/// What `scripts/keycloak up` said on stderr, after checking it failed and left no
/// process and no run directory of its own behind once `down` ran.
fn up_failure(env: &[(&str, &str)]) -> (String, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = run_script(&run, "up", env);
    let stderr = text(&out.stderr).trim_end().to_string();
    assert!(!out.status.success(), "{stderr}");
    assert!(!run.join("pid").exists(), "a failed up keeps no pid file");
    let down = run_script(&run, "down", &[]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    assert!(!run.exists(), "down removes the run directory");
    (stderr, run)
}

#[test]
fn up_names_a_busy_port() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let (stderr, _) = up_failure(&[("KEYCLOAK_TEST_PORT", &port)]);
    assert_eq!(
        stderr,
        format!(
            "scripts/keycloak: port {port} on 127.0.0.1 is busy (KEYCLOAK_TEST_PORT); pick \
             another or leave it unset for a free one"
        )
    );
}

#[test]
fn up_names_a_missing_java() {
    let (stderr, _) = up_failure(&[("KEYCLOAK_TEST_JAVA_HOME", "/nonexistent/jdk")]);
    assert_eq!(
        stderr,
        "scripts/keycloak: no java in /nonexistent/jdk/bin (from KEYCLOAK_TEST_JAVA_HOME or \
         JAVA_HOME); point it at a JDK 17, 21 or 25"
    );
}

#[test]
fn up_names_the_log_of_a_server_that_died() {
    // A "JDK" whose java exits at once, as a JVM that cannot start does.
    let jdk = tempfile::tempdir().unwrap();
    std::fs::create_dir(jdk.path().join("bin")).unwrap();
    let java = jdk.path().join("bin/java");
    std::fs::write(&java, "#!/bin/sh\necho 'Error: no JVM today' >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&java, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (stderr, run) = up_failure(&[("KEYCLOAK_TEST_JAVA_HOME", jdk.path().to_str().unwrap())]);
    assert_eq!(
        stderr,
        format!(
            "scripts/keycloak: Keycloak exited during its start; see {}",
            run.join("keycloak.log").display()
        )
    );
}
