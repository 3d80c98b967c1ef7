//! A long-running boto3 process keeps working across several credential lifetimes,
//! picking up new credentials by itself through the mounted `config`'s
//! `credential_process = cat MNT/json`, against a real S3 that checks signatures (moto).
//! moto does not check expiry, so the proof of refresh is that the access key the process
//! signs with changes while it runs, with no call failing.

use crate::common;

use common::clients::*;
use std::time::Duration;

/// Credentials live this long; the mount renews them when under half remains.
const LIFETIME: Duration = Duration::from_secs(6);

/// The process stops once it has signed with this many different access keys (three
/// renewals, so at least three lifetimes of calls)...
const WANTED_KEYS: usize = 4;

/// ...or after this long, far more than the `WANTED_KEYS` lifetimes it needs.
const GIVE_UP: Duration = Duration::from_secs(90);

#[test]
fn a_long_running_boto3_process_refreshes_through_credential_process() {
    let t = MountedS3::start(|c| c.lifetime = LIFETIME, &["--min-validity", "3s"]);
    let env = &t.env;
    // 5. AWS_CONFIG_FILE=MNT/config only.
    let ran = env
        .run(
            env.command(&t.s3.python)
                .arg("-c")
                .arg(BOTO3_LONG_RUNNING)
                .env("AWS_CONFIG_FILE", t.file("config"))
                .env(
                    "AWS_SHARED_CREDENTIALS_FILE",
                    env.home().join("no-such-file"),
                )
                .env("S3_BUCKET", t.bucket())
                .env("WANTED_KEYS", WANTED_KEYS.to_string())
                .env("GIVE_UP_SECONDS", GIVE_UP.as_secs().to_string()),
        )
        .ok();
    assert!(
        ran.stderr.trim().is_empty(),
        "botocore complained:\n{}",
        ran.stderr
    );
    let report: serde_json::Value = serde_json::from_str(&ran.stdout).expect("the report");
    assert_eq!(report["method"], "custom-process", "{report}");
    let seconds = report["seconds"].as_f64().unwrap();
    let keys: Vec<&str> = report["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let mut distinct = keys.clone();
    distinct.dedup();
    assert!(
        distinct.len() >= WANTED_KEYS,
        "the process signed with {} different keys in {seconds} s ({} calls): {distinct:?}",
        distinct.len(),
        report["calls"]
    );
    println!(
        "{} calls in {seconds:.1} s signed with {} keys",
        report["calls"],
        distinct.len()
    );
    // Each key was used for a stretch, then replaced for good: refreshes, not flapping.
    let mut sorted = distinct.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), distinct.len(), "a key came back: {keys:?}");
    // Every key but the newest served two calls or more: renewed near its end, not on
    // every read.
    for key in &distinct[..distinct.len() - 1] {
        let uses = keys.iter().filter(|k| *k == key).count();
        assert!(uses >= 4, "key {key} signed only {uses} calls: {keys:?}");
    }
    env.assert_stayed_on_loopback();
}
