//! The product's commands other than `mount` against the real Ceph RGW of the `rgw-tests`
//! tier, through the in-process gateway minting there by `AssumeRole` as cray-sts does
//! (so a test can count its grants): `s3credsfs fetch` as an AWS `credential_process`
//! with no mount, `s3credsfs exec` with the AWS CLI and a long-running boto3 child, and
//! the gateway's answer when RGW refuses cray-sts's own keys. Every way that works is
//! also refused once the secret is altered by one character.

use crate::common;

use common::clients::*;
use common::mount::{login_args, TestGateway};
use common::rgw::{rgw, AWS_BAD_SIGNATURE, AWS_ERROR_CODE};
use common::s3::on_path;
use std::process::Command;
use std::time::Duration;

/// The in-process gateway minting on RGW (advertising `lifetime` when given), and a
/// clean client environment.
fn stack(lifetime: Option<Duration>) -> (TestGateway, ClientEnv) {
    let rgw = rgw();
    let gw = TestGateway::start(|c| {
        c.backend = Some(rgw.backend());
        if let Some(lifetime) = lifetime {
            c.lifetime = lifetime;
        }
    });
    (gw, ClientEnv::new())
}

#[test]
fn fetch_as_credential_process_without_a_mount_on_rgw() {
    require_tool("aws");
    require_tool("jq");
    let (gw, env) = stack(None);
    // An AWS config of the user's own: credential_process is `s3credsfs fetch`, by
    // absolute path (botocore runs it without a shell), the password in $PW.
    let fetch = format!(
        "{} fetch --format json --api-gateway {} --username dev --password-env PW",
        env!("CARGO_BIN_EXE_s3credsfs"),
        gw.gw.base_url()
    );
    let config_with = |process: &str| {
        format!(
            "[default]\ncredential_process = {process}\nendpoint_url = {}\n",
            rgw().endpoint
        )
    };
    let nowhere = env.home().join("no-such-file");
    // `program` (aws, or the script that shows RGW's error code) with `config`.
    let aws = |program: Command, config: &std::path::Path| {
        let mut cmd = program;
        cmd.env("AWS_CONFIG_FILE", config)
            .env("AWS_SHARED_CREDENTIALS_FILE", &nowhere)
            .env("PW", s3credsfs::dev::gateway::DEFAULT_PASSWORD);
        cmd
    };
    let config = env.write("config", &config_with(&fetch));
    env.run(aws(env.command("aws"), &config).args(["s3", "mb", "s3://fetch-process"]))
        .ok();
    aws_round_trip(&env, "fetch-process", "object", || {
        aws(env.command("aws"), &config)
    });
    let fetched = gw.stats().sts_issued;
    assert!(
        fetched >= 4,
        "each aws command ran fetch: {fetched} STS calls"
    );

    // The same command with its output's SecretAccessKey altered on the way: refused.
    let tampering = env.script(
        "tampering",
        "\"$@\" | jq '.SecretAccessKey |= .[:-1] + (if endswith(\"A\") then \"B\" else \"A\" end)'\n",
    );
    let bad = env.write(
        "config-tampered",
        &config_with(&format!("{} {fetch}", tampering.display())),
    );
    aws_refused(&env, "fetch-process", AWS_BAD_SIGNATURE, || {
        aws(env.bash(AWS_ERROR_CODE, "aws"), &bad)
    });
    assert!(
        gw.stats().sts_issued > fetched,
        "the tampered run fetched too"
    );
    env.assert_stayed_on_loopback();
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

#[test]
fn aws_cli_under_exec_on_rgw() {
    require_tool("aws");
    let (gw, env) = stack(None);
    env.run(&mut exec(&env, &gw, &[], &["aws", "s3", "mb", "s3://exec"]))
        .ok();
    aws_round_trip(&env, "exec", "object", || exec(&env, &gw, &[], &["aws"]));
    // The keys in the environment are what signs: altered, RGW refuses.
    let tampered = format!("{TAMPER_SECRET}{AWS_ERROR_CODE}");
    aws_refused(&env, "exec", AWS_BAD_SIGNATURE, || {
        exec(&env, &gw, &[], &["bash", "-c", &tampered, "aws"])
    });
    env.assert_stayed_on_loopback();
}

/// Credentials advertised this long (RGW's live the hour cray-sts asks for); `exec`'s
/// endpoint renews them at half their life.
const LIFETIME: Duration = Duration::from_secs(6);

/// The long-running process gives up after this long, far more than the lifetimes it
/// needs.
const GIVE_UP: Duration = Duration::from_secs(45);

#[test]
fn a_long_running_boto3_child_renews_through_the_private_endpoint_on_rgw() {
    let (gw, env) = stack(Some(LIFETIME));
    let python = on_path("python3").expect("python3 on PATH");
    let python = python.to_str().unwrap();
    let bucket = "exec-renewal";
    let create = format!("import boto3; boto3.client('s3').create_bucket(Bucket='{bucket}')");
    env.run(&mut exec(&env, &gw, &[], &[python, "-c", &create]))
        .ok();
    let script = long_running_script();
    let mut cmd = exec(
        &env,
        &gw,
        &["--container-endpoint"],
        &[python, script.to_str().unwrap()],
    );
    // exec warns that such short lifetimes are refreshed at half their life.
    cmd.env("S3CREDSFS_LOG", "error");
    let ran = env.run(long_running(&mut cmd, bucket, GIVE_UP)).ok();
    LongRun::check(&ran, "container-role");
    env.assert_stayed_on_loopback();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_from_rgw_is_cray_sts_problem_500() {
    let mut backend = tokio::task::spawn_blocking(|| rgw().backend())
        .await
        .unwrap();
    backend.secret_key = tamper(backend.secret_key.expose()).into();
    let gw = common::gateway(|c| c.backend = Some(backend)).await;
    let token = common::password_grant(&gw).await["access_token"]
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
    // cray-sts does not catch RGW's refusal of its AssumeRole: connexion's problem document.
    assert_eq!(reply.status(), 500);
    assert_eq!(reply.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(problem["status"], 500);
    assert_eq!(problem["title"], "Internal Server Error");
    assert_eq!(problem["type"], "about:blank");
    assert!(problem["detail"].is_string());
    assert_eq!(problem.as_object().unwrap().len(), 4);
    assert!(!problem.to_string().contains(&rgw().secret_key));
    assert_eq!(gw.stats().sts_issued, 0);
}
