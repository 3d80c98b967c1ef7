//! The built-in gateway with AWS's own STS as its backend, as moto plays it: credentials
//! minted by `AssumeRole` open a signature-checking S3 for a real client (boto3), and
//! tampered ones do not. This is the one test left on moto, for what Ceph RGW does not
//! do: AWS's temporary key ids (`ASIA...`), AWS's error codes for a wrong or missing
//! session token (`InvalidToken`, `InvalidAccessKeyId`; RGW says `AccessDenied`), and IAM
//! that lets the backend user assume the role and nothing else (RGW's users own their
//! buckets). Everything else runs on a real RGW (`rgw-tests`; see docs/contributing.md).

use crate::common;

use common::s3::{S3Creds, S3Server};
use common::*;
use s3credsfs::sts::Pipeline;
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
    // Asked for an hour (as cray-sts asks), advertised for the configured 5 minutes.
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
