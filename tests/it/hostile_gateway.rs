//! A gateway that lies, redirects, floods or injects: the pipeline refuses, nothing is
//! written or re-sent, and the errors are plain, short and clean.

use crate::common;

use common::*;
use s3credsfs::dev::gateway::{Endpoint, Fault, Gateway, Times, DEFAULT_PASSWORD};
use std::process::Stdio;

/// A line that, written raw into the mounted `config`, would make every SDK run a command.
const PLANTED: &str = "\n[profile x]\ncredential_process = sh -c 'touch /tmp/pwned'";

/// A 201 STS reply that is valid but for `field`, which holds `value`.
fn sts_reply_with(field: &str, value: &str) -> Fault {
    let expiration = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let mut creds = serde_json::json!({
        "AccessKeyId": "AKIDHOSTILE",
        "EndpointURL": "http://rgw.local:8080",
        "Expiration": expiration,
        "SecretAccessKey": "secretsecret",
        "SessionToken": "tokentoken",
    });
    creds[field] = value.into();
    Fault::Status {
        status: 201,
        content_type: "application/json".into(),
        body: serde_json::json!({ "Credentials": creds }).to_string(),
    }
}

/// Settings that log in as the default user; the directory holds the password file.
fn password_settings(gw: &Gateway) -> (s3credsfs::config::Settings, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let pw = private_file(dir.path(), "pw", DEFAULT_PASSWORD);
    let s = settings(
        gw,
        &[("username", "dev"), ("password-file", pw.to_str().unwrap())],
    );
    (s, dir)
}

#[tokio::test]
async fn credentials_that_would_inject_lines_are_refused() {
    let gw = gateway(|_| {}).await;
    let (s, _dir) = password_settings(&gw);
    for field in [
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "EndpointURL",
    ] {
        gw.inject(
            Endpoint::Sts,
            sts_reply_with(field, &format!("ok{PLANTED}")),
            Times::Once,
        );
        let err = fetch_error(&s).await;
        assert!(
            err.starts_with(&format!(
                "{} answered HTTP 201 but its \"{field}\"",
                gw.sts_url()
            )),
            "{err}"
        );
        assert!(!err.contains("pwned") && !err.contains('\n'), "{err}");
    }
}

#[tokio::test]
async fn redirects_are_errors_and_nothing_is_resent() {
    let gw = gateway(|_| {}).await;
    let (s, _dir) = password_settings(&gw);
    let evil = Recorder::start();
    for endpoint in [Endpoint::Token, Endpoint::Sts] {
        // HTTP allows no control characters in a header; a long one is cut short.
        let location = format!("{}/steal{}", evil.url, "x".repeat(5000));
        gw.inject(endpoint, Fault::Redirect(location), Times::Once);
        let err = fetch_error(&s).await;
        let expected = format!("answered HTTP 307, a redirect to {}/stealxxx", evil.url);
        assert!(err.contains(&expected), "{endpoint:?}: {err}");
        assert!(err.len() < 700, "{} bytes", err.len());
    }
    assert!(
        evil.seen().is_empty(),
        "the password or token went to the redirect target: {:?}",
        evil.seen()
    );
}

#[tokio::test]
async fn endless_and_oversized_replies_stop_at_one_mebibyte() {
    let gw = gateway(|_| {}).await;
    let (s, _dir) = password_settings(&gw);
    let expected = "sent a reply longer than 1048576 bytes, which no CSM gateway does";
    for endpoint in [Endpoint::Token, Endpoint::Sts] {
        gw.inject(endpoint, Fault::EndlessBody, Times::Once);
        let err = fetch_error(&s).await;
        assert!(err.contains(expected), "{endpoint:?}: {err}");
    }
    // Announced by Content-Length: refused before reading.
    gw.inject(
        Endpoint::Sts,
        Fault::Status {
            status: 201,
            content_type: "application/json".into(),
            body: " ".repeat(2 * 1024 * 1024),
        },
        Times::Once,
    );
    assert!(fetch_error(&s).await.contains(expected));
}

#[tokio::test]
async fn server_text_reaches_messages_clean_and_short() {
    let gw = gateway(|_| {}).await;
    let (s, _dir) = password_settings(&gw);
    let nasty = format!("bad\r\n\x1b]0;owned\x07\x1b[2J{}", "x".repeat(10_000));
    gw.inject(
        Endpoint::Token,
        Fault::Status {
            status: 401,
            content_type: "application/json".into(),
            body: serde_json::json!({"error": "invalid_grant", "error_description": nasty})
                .to_string(),
        },
        Times::Once,
    );
    gw.inject(
        Endpoint::Sts,
        Fault::Status {
            status: 500,
            content_type: "application/problem+json".into(),
            body: serde_json::json!({"detail": nasty, "status": 500}).to_string(),
        },
        Times::Once,
    );
    for _ in 0..2 {
        let err = fetch_error(&s).await;
        assert!(err.contains("bad ]0;owned [2Jxxx"), "{err}");
        assert!(!err.chars().any(char::is_control), "{err:?}");
        assert!(err.len() < 600, "{} bytes", err.len());
    }
}

/// Runs `fetch` against `api_gateway` with every proxy variable pointing at `proxy`.
fn fetch_through_proxy(api_gateway: &str, proxy: &str, extra_env: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_s3credsfs"));
    cmd.env_clear()
        .envs(clean_env())
        .args(["fetch", "--api-gateway", api_gateway, "--allow-http"])
        .args([
            "--username",
            "dev",
            "--password-env",
            "PW",
            "--timeout",
            "5s",
        ])
        .env("PW", DEFAULT_PASSWORD)
        .stdin(Stdio::null());
    for var in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        cmd.env(var, proxy);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    if out.status.success() {
        String::new()
    } else {
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

#[test]
fn loopback_is_never_proxied_and_other_hosts_are() {
    let gw = mount::TestGateway::start(|_| {});
    let proxy = Recorder::start();
    let err = fetch_through_proxy(&gw.gw.base_url(), &proxy.url, &[]);
    assert_eq!(err, "", "fetch from the loopback gateway failed");
    assert!(
        proxy.seen().is_empty(),
        "loopback traffic (with the password) went to the proxy: {:?}",
        proxy.seen()
    );

    // Another host: the environment's proxy is used, unless NO_PROXY names the host.
    let err = fetch_through_proxy("http://gw.invalid", &proxy.url, &[]);
    assert!(err.contains("answered HTTP 502"), "{err}");
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with("POST http://gw.invalid/keycloak/"),
        "{seen:?}"
    );
    let err = fetch_through_proxy(
        "http://gw.invalid",
        &proxy.url,
        &[("NO_PROXY", "gw.invalid")],
    );
    assert!(err.contains("cannot reach http://gw.invalid/"), "{err}");
    assert_eq!(proxy.seen().len(), 1, "NO_PROXY was ignored");
}

#[cfg(feature = "fuse-tests")]
#[test]
fn a_hostile_refresh_keeps_serving_the_last_valid_credentials() {
    let gw = mount::TestGateway::start(|c| c.lifetime = std::time::Duration::from_secs(4));
    let m = mount::Mounted::start(&gw, &["--min-validity", "2s", "--timeout", "2s"]);
    let first = m.access_key();
    gw.gw.inject(
        Endpoint::Sts,
        sts_reply_with("EndpointURL", &format!("http://rgw{PLANTED}")),
        Times::Always,
    );
    wait_for(
        "a refresh to meet the hostile reply",
        std::time::Duration::from_secs(10),
        || {
            let _ = m.read("config");
            m.status()["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("\"EndpointURL\" is not a plain http(s) URL"))
        },
    );
    for name in [
        "config",
        "credentials",
        "s3cfg",
        "rclone.conf",
        "env",
        "json",
    ] {
        match m.read(name) {
            Ok(text) => {
                assert!(!text.contains("pwned"), "{name}: {text}");
                assert_eq!(
                    text.matches("credential_process").count(),
                    (name == "config") as usize
                );
            }
            // Once the last valid credentials expire, reads fail; nothing hostile is served.
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "{name}"),
        }
    }
    if let Ok(json) = m.read("json") {
        assert!(
            json.contains(&first),
            "the last valid credentials are served"
        );
    }
    assert!(
        m.log().contains("is not a plain http(s) URL"),
        "the log says why"
    );
}
