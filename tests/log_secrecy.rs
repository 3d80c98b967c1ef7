//! No secret reaches an error message or a log line at any level. Alone in its own test
//! binary: tracing caches per-callsite interest process-wide, so a concurrent test without
//! the capturing subscriber could hide events from it.

mod common;

use common::*;
use s3credsfs::gateway::{Endpoint, Fault, Times, DEFAULT_PASSWORD};
use s3credsfs::sts::Pipeline;
use std::io::Write;
use std::sync::{Arc, Mutex};

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

/// Drives every path (login, refresh, retry, failures) with every crate logging at TRACE,
/// then looks for each secret in the log and in every error message.
#[test]
fn no_secret_in_any_log_line_or_error() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_writer(move || sink.clone())
        .finish();
    let mut secrets: Vec<String> = vec![DEFAULT_PASSWORD.into(), "wrong-password-xyzzy".into()];
    let mut errors: Vec<String> = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let gw = gateway(|c| c.token_lifetime = std::time::Duration::from_secs(2)).await;
            let dir = tempfile::tempdir().unwrap();
            let pw = private_file(dir.path(), "pw", DEFAULT_PASSWORD);
            let s = settings(
                &gw,
                &[("username", "dev"), ("password-file", pw.to_str().unwrap())],
            );
            let pipeline = Pipeline::new(&s).unwrap();
            let reply = password_grant(&gw).await;
            secrets.push(reply["access_token"].as_str().unwrap().into());
            secrets.push(reply["refresh_token"].as_str().unwrap().into());
            let mut collect = |c: s3credsfs::creds::Credentials| {
                secrets.push(c.secret_access_key.expose().into());
                secrets.push(c.session_token.expose().into());
            };
            collect(pipeline.fetch().await.unwrap());
            gw.inject(
                Endpoint::Sts,
                Fault::Status {
                    status: 401,
                    content_type: "text/plain".into(),
                    body: "Jwt is expired".into(),
                },
                Times::Once,
            );
            collect(pipeline.fetch().await.unwrap());
            for fault in [
                Fault::Malformed,
                Fault::Incomplete,
                Fault::ExpiredCredentials,
            ] {
                gw.inject(Endpoint::Sts, fault, Times::Once);
                errors.push(pipeline.fetch().await.unwrap_err().to_string());
            }
            // Let the token age out so the refresh grant runs and is logged.
            let refreshes = gw.stats().refresh_grants;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while gw.stats().refresh_grants == refreshes {
                assert!(std::time::Instant::now() < deadline);
                collect(pipeline.fetch().await.unwrap());
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            let wrong = private_file(dir.path(), "wrong", "wrong-password-xyzzy");
            let s = settings(
                &gw,
                &[
                    ("username", "dev"),
                    ("password-file", wrong.to_str().unwrap()),
                ],
            );
            errors.push(fetch_error(&s).await);
            errors.push(format!("{:?}", s.auth));
        });
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("obtained S3 credentials"),
        "logging was captured"
    );
    for secret in &secrets {
        if let Some(line) = log.lines().find(|l| l.contains(secret.as_str())) {
            panic!(
                "a secret appears in this log line: {}",
                line.replace(secret.as_str(), "<SECRET>")
            );
        }
        for error in &errors {
            assert!(
                !error.contains(secret.as_str()),
                "a secret appears in an error: {error}"
            );
        }
    }
}
