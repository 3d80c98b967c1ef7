//! `s3credsfs exec` with real clients against a real S3 that checks signatures (moto),
//! with credentials the built-in gateway mints there: the AWS CLI with the keys `exec`
//! puts in its environment (and refused once the secret is altered), and a long-running
//! boto3 process renewing by itself through `exec --container-endpoint`.

use crate::common;

use common::clients::*;
use common::mount::{login_args, TestGateway};
use common::s3::S3Server;
use std::process::Command;
use std::time::Duration;

/// moto, a gateway minting credentials there (living `lifetime`), a clean client
/// environment.
fn stack(lifetime: Option<Duration>) -> (S3Server, TestGateway, ClientEnv) {
    let s3 = S3Server::start();
    let gw = TestGateway::start(|c| {
        c.backend = Some(s3.backend());
        if let Some(lifetime) = lifetime {
            c.lifetime = lifetime;
        }
    });
    (s3, gw, ClientEnv::new())
}

/// `s3credsfs exec [extra] -- COMMAND...` in `env` (its `HOME` has no mount, so `exec`
/// fetches); the caller appends the command's arguments.
fn exec(env: &ClientEnv, gw: &TestGateway, extra: &[&str], command: &[&str]) -> Command {
    let mut cmd = env.command(env!("CARGO_BIN_EXE_s3credsfs"));
    cmd.arg("exec")
        .args(login_args(gw))
        .args(extra)
        .arg("--")
        .args(command)
        .env("PW", s3credsfs::dev::gateway::DEFAULT_PASSWORD)
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            env.home().join("no-such-file"),
        )
        .env("AWS_CONFIG_FILE", env.home().join("no-such-file"));
    cmd
}

/// Alters the secret `exec` gave, then runs `aws` with the script's arguments.
const TAMPERED: &str = r#"s=$AWS_SECRET_ACCESS_KEY && case $s in *A) t=B ;; *) t=A ;; esac &&
export AWS_SECRET_ACCESS_KEY="${s%?}$t" && exec aws "$@""#;

#[test]
fn aws_cli_under_exec() {
    require_tool("aws");
    let (s3, gw, env) = stack(None);
    aws_round_trip(&env, &s3.bucket, "exec/object", || {
        exec(&env, &gw, &[], &["aws"])
    });
    // The keys in the environment are what signs: altered, S3 refuses.
    aws_refused(&env, &s3.bucket, "SignatureDoesNotMatch", || {
        exec(&env, &gw, &[], &["bash", "-c", TAMPERED, "tampered"])
    });
    env.assert_stayed_on_loopback();
}

/// Credentials live this long; `exec`'s endpoint renews them at half their life.
const LIFETIME: Duration = Duration::from_secs(6);

/// The process stops once it has signed with this many different access keys...
const WANTED_KEYS: usize = 4;

/// ...or after this long, far more than the lifetimes it needs.
const GIVE_UP: Duration = Duration::from_secs(45);

/// One boto3 session for the whole run, S3 calls paced by a short sleep, recording the
/// access key in use after each call, until `WANTED_KEYS` keys or `GIVE_UP`. Any failure
/// raises. Prints `{"keys": [...], "method": ..., "seconds": S}`.
const LONG_RUNNING: &str = r#"
import json, os, time, boto3
session = boto3.Session()
s3 = session.client("s3")
bucket, give_up = os.environ["S3_BUCKET"], float(os.environ["GIVE_UP_SECONDS"])
wanted = int(os.environ["WANTED_KEYS"])
start, calls, keys = time.monotonic(), 0, []
while len(set(keys)) < wanted and time.monotonic() - start < give_up:
    name, body = "exec-long/%d" % calls, os.urandom(8).hex().encode()
    s3.put_object(Bucket=bucket, Key=name, Body=body)
    assert s3.get_object(Bucket=bucket, Key=name)["Body"].read() == body
    keys.append(session.get_credentials().get_frozen_credentials().access_key)
    calls += 1
    time.sleep(0.2)
print(json.dumps({"keys": keys, "method": session.get_credentials().method,
                  "seconds": time.monotonic() - start}))
"#;

#[test]
fn a_long_running_boto3_child_renews_through_the_private_endpoint() {
    let (s3, gw, env) = stack(Some(LIFETIME));
    let python = s3.python.to_str().unwrap();
    let ran = env
        .run(
            exec(
                &env,
                &gw,
                &["--container-endpoint"],
                &[python, "-c", LONG_RUNNING],
            )
            // exec warns that such short lifetimes are refreshed at half their life.
            .env("S3CREDSFS_LOG", "error")
            .env("S3_BUCKET", &s3.bucket)
            .env("WANTED_KEYS", WANTED_KEYS.to_string())
            .env("GIVE_UP_SECONDS", GIVE_UP.as_secs().to_string()),
        )
        .ok();
    assert!(ran.stderr.trim().is_empty(), "stderr:\n{}", ran.stderr);
    let report: serde_json::Value = serde_json::from_str(&ran.stdout).expect("the report");
    assert_eq!(report["method"], "container-role", "{report}");
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
        "signed with {} keys in {} s: {keys:?}",
        distinct.len(),
        report["seconds"]
    );
    // Each key was replaced for good: renewals, not flapping.
    let mut sorted = distinct.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), distinct.len(), "a key came back: {keys:?}");
    env.assert_stayed_on_loopback();
}
