//! The built-in gateway with a real credential backend: STS credentials minted by
//! `AssumeRole` on moto (as cray-sts mints them on Ceph RGW) open a signature-checking S3
//! for a real client (boto3), and tampered ones do not.

use crate::common;

use common::mount::bin;
use common::s3::{Banner, S3Creds, S3Server};
use common::*;
use s3credsfs::dev::gateway::BackendSts;
use s3credsfs::sts::Pipeline;
use std::process::Stdio;
use std::time::Duration;

/// Settings that log in as the default user with a password file.
fn password_settings(base: &str, dir: &std::path::Path) -> s3credsfs::config::Settings {
    let pw = private_file(dir, "pw", s3credsfs::dev::gateway::DEFAULT_PASSWORD);
    settings_for(
        base,
        &[("username", "dev"), ("password-file", pw.to_str().unwrap())],
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assumed_role_credentials_open_the_real_s3() {
    let s3 = tokio::task::spawn_blocking(S3Server::start).await.unwrap();
    let lifetime = Duration::from_secs(300);
    let gw = gateway(|c| {
        c.backend = Some(s3.backend());
        c.lifetime = lifetime;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::new(&password_settings(&gw.base_url(), dir.path())).unwrap();
    let before = chrono::Utc::now();
    let creds = pipeline.fetch().await.unwrap();
    assert_eq!(
        creds.endpoint_url, s3.url,
        "EndpointURL is the backend's S3"
    );
    assert!(
        creds.access_key_id.starts_with("ASIA"),
        "moto's temporary keys start with ASIA: {}",
        creds.access_key_id
    );
    // Asked for 15 minutes (STS's minimum), advertised for the configured 5.
    let advertised = creds.expiration - before;
    assert!(
        advertised <= chrono::Duration::seconds(301) && advertised > chrono::Duration::seconds(280),
        "advertised lifetime {advertised}"
    );

    let good = S3Creds::from_pipeline(&creds);
    // boto3 runs in a child process; keep the gateway's runtime serving meanwhile.
    let results = tokio::task::block_in_place(|| {
        let mut wrong_secret = good.clone();
        wrong_secret.secret_access_key = tamper(&good.secret_access_key);
        let mut wrong_token = good.clone();
        wrong_token.session_token = good.session_token.as_deref().map(tamper);
        let mut no_token = good.clone();
        no_token.session_token = None;
        [
            s3.round_trip(&good, "good"),
            s3.round_trip(&wrong_secret, "wrong-secret"),
            s3.round_trip(&wrong_token, "wrong-token"),
            s3.round_trip(&no_token, "no-token"),
        ]
    });
    assert_eq!(results[0], Ok(()), "moto's log:\n{}", s3.log_text());
    assert_eq!(results[1], Err("SignatureDoesNotMatch".to_owned()));
    assert_eq!(results[2], Err("InvalidToken".to_owned()));
    assert_eq!(results[3], Err("InvalidAccessKeyId".to_owned()));

    // Every PUT /apis/sts/token is a new AssumeRole (a new session), as with cray-sts.
    let again = pipeline.fetch().await.unwrap();
    assert_ne!(again.access_key_id, creds.access_key_id);
    assert_eq!(gw.stats().sts_issued, 2);

    // The backend user itself may only assume the role: S3 refuses its own keys.
    let user = S3Creds {
        access_key_id: s3.access_key.clone(),
        secret_access_key: s3.secret_key.clone(),
        session_token: None,
    };
    let refused = tokio::task::block_in_place(|| s3.round_trip(&user, "user"));
    assert_eq!(refused, Err("AccessDenied".to_owned()));
}

/// Changes the last character, keeping the alphabet.
fn tamper(s: &str) -> String {
    let mut out: Vec<char> = s.chars().collect();
    let last = out.last_mut().expect("non-empty");
    *last = if *last == 'A' { 'B' } else { 'A' };
    out.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_backend_is_cray_sts_problem_500() {
    let s3 = tokio::task::spawn_blocking(S3Server::start).await.unwrap();
    let mut backend: BackendSts = s3.backend();
    backend.secret_key = tamper(backend.secret_key.expose()).into();
    let gw = gateway(|c| c.backend = Some(backend)).await;
    let token = password_grant(&gw).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .put(gw.sts_url())
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    // cray-sts does not catch the backend's refusal: connexion's problem document.
    assert_eq!(reply.status(), 500);
    assert_eq!(reply.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(problem["status"], 500);
    assert_eq!(problem["title"], "Internal Server Error");
    assert_eq!(problem["type"], "about:blank");
    assert!(problem["detail"].is_string());
    assert_eq!(problem.as_object().unwrap().len(), 4);
    assert_eq!(gw.stats().sts_issued, 0);
}

#[test]
fn dev_gateway_binary_mints_from_the_backend() {
    let s3 = S3Server::start();
    let mut gateway = StopOnDrop::kill(
        bin()
            .args([
                "dev-gateway",
                "--listen",
                "127.0.0.1:0",
                "--lifetime",
                "20m",
            ])
            .args(["--backend-sts", &s3.url, "--role-arn", &s3.role_arn])
            .env("S3CREDSFS_BACKEND_ACCESS_KEY", &s3.access_key)
            .env("S3CREDSFS_BACKEND_SECRET_KEY", &s3.secret_key)
            .env_remove("S3CREDSFS_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let banner = Banner::new(&mut gateway);
    let deadline = Duration::from_secs(30);
    let api = banner.value("api-gateway: ", deadline);
    let minted_by = banner.value("credentials: ", deadline);
    let endpoint = banner.value("endpoint-url: ", deadline);
    let dir = tempfile::tempdir().unwrap();
    let pw = private_file(dir.path(), "pw", s3credsfs::dev::gateway::DEFAULT_PASSWORD);
    let out = bin()
        .args(["fetch", "--api-gateway", &api, "--username", "dev"])
        .arg("--password-file")
        .arg(&pw)
        .args(["--format", "json"])
        .output()
        .unwrap();
    drop(gateway);
    assert!(
        minted_by.starts_with(&format!("minted by AssumeRole at {}", s3.url))
            && !minted_by.contains(&s3.secret_key),
        "{minted_by}"
    );
    assert_eq!(endpoint, s3.url);
    assert!(
        out.status.success(),
        "fetch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["EndpointURL"], s3.url.as_str());
    let creds = S3Creds {
        access_key_id: json["AccessKeyId"].as_str().unwrap().to_owned(),
        secret_access_key: json["SecretAccessKey"].as_str().unwrap().to_owned(),
        session_token: json["SessionToken"].as_str().map(str::to_owned),
    };
    assert_eq!(s3.round_trip(&creds, "from-binary"), Ok(()));
}

#[test]
fn backend_flags_are_all_or_nothing() {
    let out = bin()
        .args(["dev-gateway", "--listen", "127.0.0.1:0"])
        .args(["--backend-sts", "http://127.0.0.1:9", "--role-arn", "arn"])
        .env("S3CREDSFS_BACKEND_SECRET_KEY", "top-secret-value")
        .env_remove("S3CREDSFS_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no banner: it never started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("needs --backend-access-key (or S3CREDSFS_BACKEND_ACCESS_KEY) as well"),
        "{stderr}"
    );
    assert!(!stderr.contains("top-secret-value"), "{stderr}");
}
