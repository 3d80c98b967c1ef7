//! The AWS CLI and boto3 with nothing but what the mount serves, against a real S3 that
//! checks signatures (moto), with credentials the built-in gateway mints there by
//! `AssumeRole`. Every way that works is also shown to fail once the served secret is
//! tampered with, so none of these can pass without the served credentials doing the
//! work. Each client runs with an empty environment and a temporary `HOME`
//! ([`ClientEnv`]): none of the host's `AWS_*` settings reach it.

use crate::common;

use common::clients::*;
use std::path::Path;
use std::process::Command;

/// `aws` reading its credentials file and config file where the test says.
fn aws_with(env: &ClientEnv, credentials: &Path, config: &Path) -> Command {
    let mut cmd = env.command("aws");
    cmd.env("AWS_SHARED_CREDENTIALS_FILE", credentials)
        .env("AWS_CONFIG_FILE", config);
    cmd
}

#[test]
fn aws_cli_with_the_mounted_credentials_and_config_files() {
    require_tool("aws");
    let t = MountedS3::start(|_| {}, &[]);
    let (env, bucket) = (&t.env, t.bucket());
    let (credentials, config) = (t.file("credentials"), t.file("config"));

    // 1. AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE into the mount: keys from
    //    `credentials`, the endpoint from `config`'s endpoint_url.
    aws_round_trip(env, bucket, "credentials-file/object", || {
        aws_with(env, &credentials, &config)
    });
    // The credentials file is what signs: with its secret altered (and the mounted config,
    // whose credential_process would give good keys, still in place) S3 refuses.
    let bad_credentials = env.write(
        "credentials-tampered",
        &tamper_ini(&t.read("credentials"), "aws_secret_access_key"),
    );
    aws_refused(env, bucket, "SignatureDoesNotMatch", || {
        aws_with(env, &bad_credentials, &config)
    });

    // 2. AWS_CONFIG_FILE alone: the keys come from its `credential_process = cat MNT/json`.
    let nowhere = env.home().join("no-such-file");
    aws_round_trip(env, bucket, "credential-process/object", || {
        aws_with(env, &nowhere, &config)
    });
    // The same config with credential_process reading a copy of `json` whose secret is
    // altered: refused, so the keys did come through credential_process.
    let bad_config = t.config_with_tampered_process();
    aws_refused(env, bucket, "SignatureDoesNotMatch", || {
        aws_with(env, &nowhere, &bad_config)
    });
    env.assert_stayed_on_loopback();
}

/// `source ENV && aws ...`: the keys and the endpoint come from the sourced variables only.
const SOURCED: &str = r#"source "$0" && exec aws "$@""#;

/// As [`SOURCED`], with the secret altered after sourcing.
const SOURCED_TAMPERED: &str = r#"source "$0" &&
s=$AWS_SECRET_ACCESS_KEY && case $s in *A) t=B ;; *) t=A ;; esac &&
export AWS_SECRET_ACCESS_KEY="${s%?}$t" && exec aws "$@""#;

#[test]
fn aws_cli_after_sourcing_the_env_file() {
    require_tool("aws");
    let t = MountedS3::start(|_| {}, &[]);
    let (env, bucket) = (&t.env, t.bucket());
    // 3. No AWS file at all: both settings point at nothing.
    let nowhere = env.home().join("no-such-file");
    let sourced = |script: &str| {
        let mut cmd = env.bash(script, t.file("env"));
        cmd.env("AWS_SHARED_CREDENTIALS_FILE", &nowhere)
            .env("AWS_CONFIG_FILE", &nowhere);
        cmd
    };
    aws_round_trip(env, bucket, "sourced-env/object", || sourced(SOURCED));
    aws_refused(env, bucket, "SignatureDoesNotMatch", || {
        sourced(SOURCED_TAMPERED)
    });
    env.assert_stayed_on_loopback();
}

/// boto3 as a program would use it: `boto3.Session()` and a client, nothing passed in.
/// Puts `S3_BODY` under `S3_KEY`, lists the bucket, reads it back; prints how botocore
/// found its credentials (`shared-credentials-file`, `custom-process`, ...), or exits 3
/// with S3's error code.
const BOTO3_ROUND_TRIP: &str = r#"
import os, sys, boto3, botocore
session = boto3.Session()
s3 = session.client("s3")
bucket, key, body = os.environ["S3_BUCKET"], os.environ["S3_KEY"], os.environ["S3_BODY"].encode()
try:
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    listed = s3.list_objects_v2(Bucket=bucket, Delimiter="/", Prefix=key).get("Contents", [])
    assert [o["Key"] for o in listed] == [key], listed
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
except botocore.exceptions.ClientError as e:
    print(e.response["Error"]["Code"])
    sys.exit(3)
print(session.get_credentials().method)
"#;

#[test]
fn boto3_session_with_the_mounted_files() {
    let t = MountedS3::start(|_| {}, &[]);
    let (env, bucket) = (&t.env, t.bucket());
    let boto3 = |credentials: &Path, key: &str| {
        let mut cmd = env.command(&t.s3.python);
        cmd.arg("-c")
            .arg(BOTO3_ROUND_TRIP)
            .env("AWS_SHARED_CREDENTIALS_FILE", credentials)
            .env("AWS_CONFIG_FILE", t.file("config"))
            .env("S3_BUCKET", bucket)
            .env("S3_KEY", key)
            .env("S3_BODY", unique_content(key));
        cmd
    };
    // 4. The same settings as the AWS CLI: the mounted credentials file signs.
    let ran = env
        .run(&mut boto3(&t.file("credentials"), "boto3/object"))
        .ok();
    assert_eq!(
        ran.stdout.trim(),
        "shared-credentials-file",
        "{}",
        ran.stderr
    );
    let bad = env.write(
        "credentials-tampered",
        &tamper_ini(&t.read("credentials"), "aws_secret_access_key"),
    );
    let ran = env.run(&mut boto3(&bad, "boto3/tampered"));
    assert_eq!(
        (ran.status.code(), ran.stdout.trim()),
        (Some(3), "SignatureDoesNotMatch"),
        "{}",
        ran.stderr
    );
    env.assert_stayed_on_loopback();
}
