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

/// How long the process keeps calling S3: more than three lifetimes.
const RUN_FOR: Duration = Duration::from_secs(20);

/// One boto3 session for the whole run, S3 calls paced by a short sleep; after each call,
/// the access key the session holds. Any failure raises (and exits non-zero). Prints
/// `{"calls": N, "keys": [...], "method": ..., "seconds": S}`.
const LONG_RUNNING: &str = r#"
import json, os, time, boto3
session = boto3.Session()
s3 = session.client("s3")
bucket, run_for = os.environ["S3_BUCKET"], float(os.environ["RUN_SECONDS"])
start, calls, keys = time.monotonic(), 0, []
def key_in_use():
    keys.append(session.get_credentials().get_frozen_credentials().access_key)
while time.monotonic() - start < run_for:
    name, body = "long-running/%d" % calls, os.urandom(8).hex().encode()
    s3.put_object(Bucket=bucket, Key=name, Body=body)
    key_in_use()
    assert s3.get_object(Bucket=bucket, Key=name)["Body"].read() == body
    key_in_use()
    calls += 2
    time.sleep(0.2)
print(json.dumps({"calls": calls, "keys": keys, "method": session.get_credentials().method,
                  "seconds": time.monotonic() - start}))
"#;

#[test]
fn a_long_running_boto3_process_refreshes_through_credential_process() {
    let t = MountedS3::start(|c| c.lifetime = LIFETIME, &["--min-validity", "3s"]);
    let env = &t.env;
    // 5. AWS_CONFIG_FILE=MNT/config only.
    let ran = env
        .run(
            env.command(&t.s3.python)
                .arg("-c")
                .arg(LONG_RUNNING)
                .env("AWS_CONFIG_FILE", t.file("config"))
                .env(
                    "AWS_SHARED_CREDENTIALS_FILE",
                    env.home().join("no-such-file"),
                )
                .env("S3_BUCKET", t.bucket())
                .env("RUN_SECONDS", RUN_FOR.as_secs().to_string()),
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
    assert!(
        seconds > 3.0 * LIFETIME.as_secs_f64(),
        "ran {seconds} s, more than three lifetimes"
    );
    let keys: Vec<&str> = report["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let mut distinct = keys.clone();
    distinct.dedup();
    assert!(
        distinct.len() >= 3,
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
    assert!(t.gw.stats().sts_issued as usize >= distinct.len());
    env.assert_stayed_on_loopback();
}
