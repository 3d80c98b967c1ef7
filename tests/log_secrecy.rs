//! No secret reaches an error message or a log line at any level, for any login method.
//!
//! The built-in gateway remembers every secret it receives or issues (passwords, client
//! secrets, refresh tokens, JWTs, secret keys, session tokens); the log is captured at
//! TRACE for every crate, with `log` records (reqwest, rustls, fuser) bridged in, and
//! searched for each of them. Alone in its own test binary: the capturing subscriber is
//! the process-wide default.

#[path = "it/common/mod.rs"]
mod common;

use common::*;
use s3credsfs::dev::gateway::{Endpoint, Fault, Gateway, Times, DEFAULT_CLIENT_SECRET};
use s3credsfs::sts::Pipeline;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs a TRACE subscriber for every crate, `log` records included, as the global
/// default (so the gateway's and reqwest's threads are captured too), writing each
/// event twice: as text and as the JSON of `log-format = "json"`.
fn capture_everything() -> (Captured, Captured) {
    use s3credsfs::logging::{format_layer, LogFormat};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (text, json) = (Captured::default(), Captured::default());
    let (text_sink, json_sink) = (text.clone(), json.clone());
    tracing_subscriber::registry()
        .with(vec![
            format_layer(LogFormat::Text, move || text_sink.clone(), false, true),
            format_layer(LogFormat::Json, move || json_sink.clone(), false, true),
        ])
        .with(tracing_subscriber::EnvFilter::new("trace"))
        .init();
    (text, json)
}

/// Every string in a JSON value, decoded (a secret escaped in the JSON text is found).
fn strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k.clone());
            strings(v, out)
        }),
        _ => {}
    }
}

/// Runs one login method through success, a rejected token, broken replies and (for
/// grants) a refresh, collecting every error sentence.
async fn exercise(gw: &Gateway, pairs: &[(&'static str, &str)], errors: &mut Vec<String>) {
    let s = settings(gw, pairs);
    errors.push(format!("{s:?}"));
    let pipeline = Pipeline::new(&s).unwrap();
    pipeline.fetch().await.unwrap();
    let rejected = Fault::Status {
        status: 401,
        content_type: "text/plain".into(),
        body: "Jwt is expired".into(),
    };
    gw.inject(Endpoint::Sts, rejected, Times::Once);
    pipeline.fetch().await.unwrap();
    for fault in [
        Fault::Malformed,
        Fault::Incomplete,
        Fault::ExpiredCredentials,
        Fault::Redirect("http://127.0.0.1:9/elsewhere".into()),
    ] {
        gw.inject(Endpoint::Sts, fault, Times::Once);
        errors.push(pipeline.fetch().await.unwrap_err().to_string());
    }
    // Let the short-lived JWT age out, so refresh (or a new grant) runs and is logged.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    pipeline.fetch().await.unwrap();
}

#[test]
fn no_secret_in_any_log_line_or_error() {
    let (captured, captured_json) = capture_everything();
    let mut errors: Vec<String> = Vec::new();
    let mut extra_secrets = vec!["wrong-password-xyzzy".to_string()];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let gw = rt.block_on(async {
        let gw = gateway(|c| c.token_lifetime = Duration::from_secs(1)).await;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let pw = private_file(d, "pw", s3credsfs::dev::gateway::DEFAULT_PASSWORD);
        let pw = pw.to_str().unwrap();
        exercise(
            &gw,
            &[("username", "dev"), ("password-file", pw)],
            &mut errors,
        )
        .await;

        let secret = private_file(d, "secret", DEFAULT_CLIENT_SECRET);
        let client = [
            ("client-id", "admin-client"),
            ("client-secret-file", secret.to_str().unwrap()),
        ];
        exercise(&gw, &client, &mut errors).await;

        // Tokens given to us: a gateway whose JWTs live long enough to be used as given.
        let long = gateway(|_| {}).await;
        let login = password_grant(&long).await;
        let jwt = login["access_token"].as_str().unwrap().to_string();
        std::env::set_var("S3CREDSFS_TEST_JWT", &jwt);
        let s = settings(&long, &[("token-env", "S3CREDSFS_TEST_JWT")]);
        Pipeline::new(&s).unwrap().fetch().await.unwrap();
        let raw = private_file(d, "raw-jwt", &jwt);
        let s = settings(&long, &[("token-file", raw.to_str().unwrap())]);
        Pipeline::new(&s).unwrap().fetch().await.unwrap();
        extra_secrets.extend(long.secrets());

        // A `cray` CLI login whose access token has expired: refreshed in memory.
        let mut cray = password_grant(&gw).await;
        cray["expires_at"] = serde_json::json!(chrono::Utc::now().timestamp() - 60);
        cray["client_id"] = serde_json::json!("shasta");
        let cray_file = private_file(d, "api_gw_service_nmn_local.dev", &cray.to_string());
        let s = settings(&gw, &[("token-file", cray_file.to_str().unwrap())]);
        let refreshes = gw.stats().refresh_grants;
        Pipeline::new(&s).unwrap().fetch().await.unwrap();
        assert_eq!(gw.stats().refresh_grants, refreshes + 1, "refreshed");

        // Refusals: a wrong password, a wrong client secret, a revoked refresh token.
        let wrong = private_file(d, "wrong", "wrong-password-xyzzy");
        let s = settings(
            &gw,
            &[
                ("username", "dev"),
                ("password-file", wrong.to_str().unwrap()),
            ],
        );
        errors.push(fetch_error(&s).await);
        let s = settings(
            &gw,
            &[
                ("client-id", "admin-client"),
                ("client-secret-file", wrong.to_str().unwrap()),
            ],
        );
        errors.push(fetch_error(&s).await);
        gw.revoke_sessions();
        let s = settings(&gw, &[("token-file", cray_file.to_str().unwrap())]);
        errors.push(fetch_error(&s).await);
        gw
    });
    let secrets: Vec<String> = gw.secrets().into_iter().chain(extra_secrets).collect();
    drop(gw);
    drop(rt);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("obtained S3 credentials"),
        "our logging was captured"
    );
    assert!(
        log.contains("reqwest::connect") || log.contains("hyper_util"),
        "records of other crates (the `log` bridge) were captured"
    );
    // Every kind of secret was seen: passwords, client secrets, JWTs, refresh tokens,
    // secret keys and session tokens, from every login method above.
    assert!(
        secrets.len() >= 30,
        "only {} secrets recorded",
        secrets.len()
    );
    assert_no_secret(&secrets, &log, &errors);

    // The JSON log: one object per line, every event of the text log, no secret in its
    // text nor in any string it decodes to.
    let json = String::from_utf8(captured_json.0.lock().unwrap().clone()).unwrap();
    // As many events (a text message may span lines; a JSON one never does).
    let events = log.lines().filter(|l| l.starts_with("20")).count();
    assert_eq!(json.lines().count(), events);
    let mut decoded = Vec::new();
    for line in json.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value.is_object(), "{line}");
        strings(&value, &mut decoded);
    }
    assert!(
        json.contains("\"obtained S3 credentials\""),
        "our logging, as JSON"
    );
    assert_no_secret(&secrets, &json, &errors);
    assert_no_secret(&secrets, &decoded.join("\n"), &errors);
}

/// Fails naming the first place a secret appears (with the secret itself masked).
pub fn assert_no_secret(secrets: &[String], log: &str, errors: &[String]) {
    for secret in secrets {
        if let Some(line) = log.lines().find(|l| l.contains(secret.as_str())) {
            panic!(
                "a secret appears in this log line: {}",
                line.replace(secret.as_str(), "<SECRET>")
            );
        }
        for error in errors {
            assert!(
                !error.contains(secret.as_str()),
                "a secret appears in an error: {}",
                error.replace(secret.as_str(), "<SECRET>")
            );
        }
    }
}

/// The daemon at TRACE for every crate (FUSE requests, HTTP, TLS), through logins,
/// refreshes, a rejected token, the container endpoint and `status`: its log, its status
/// file and the `status` command hold none of the secrets it handled.
#[cfg(feature = "fuse-tests")]
#[test]
fn the_daemon_logs_no_secret_at_trace() {
    use common::mount::{bin, Mounted, TestGateway};
    use common::wait_for;
    let gw = TestGateway::start(|c| {
        c.lifetime = Duration::from_secs(4);
        c.token_lifetime = Duration::from_secs(2);
    });
    let m = Mounted::start_with_env(
        &gw,
        &["--min-validity", "2s", "--container-endpoint"],
        &[("S3CREDSFS_LOG", "trace,s3credsfs=trace")],
    );
    let first = m.access_key();
    gw.gw.inject(
        Endpoint::Sts,
        Fault::Status {
            status: 401,
            content_type: "text/plain".into(),
            body: "Jwt is expired".into(),
        },
        Times::Once,
    );
    wait_for("two refreshes", Duration::from_secs(20), || {
        for (name, _) in s3credsfs::fs::FILES {
            let _ = m.read(name);
        }
        gw.stats().sts_issued >= 3 && m.access_key() != first
    });
    let env = m.read("container-env").unwrap();
    let export = |name: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .unwrap()
            .trim_matches('\'')
            .to_string()
    };
    let token = export("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    let url = export("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    gw.runtime().block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        for auth in [token.as_str(), "wrong"] {
            let _ = client.get(&url).header("Authorization", auth).send().await;
        }
    });
    let status = m.read("status").unwrap();
    let human = bin().arg("status").arg(&m.path).output().unwrap();
    let mut secrets = gw.gw.secrets();
    secrets.push(token);
    secrets.push(s3credsfs::dev::gateway::DEFAULT_PASSWORD.into());
    let log = m.log();
    assert!(log.contains("TRACE"), "the daemon logged at TRACE");
    assert!(log.contains("FUSE("), "fuser's `log` records were captured");

    let outputs = [status, String::from_utf8_lossy(&human.stdout).into_owned()];
    assert_no_secret(&secrets, &log, &outputs);
}
