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

/// The long-running process gives up after this long, far more than the lifetimes it
/// needs.
const GIVE_UP: Duration = Duration::from_secs(45);

#[test]
fn a_long_running_boto3_child_renews_through_the_private_endpoint() {
    let (s3, gw, env) = stack(Some(LIFETIME));
    let python = s3.python.to_str().unwrap();
    let script = long_running_script();
    let mut cmd = exec(
        &env,
        &gw,
        &["--container-endpoint"],
        &[python, script.to_str().unwrap()],
    );
    // exec warns that such short lifetimes are refreshed at half their life.
    cmd.env("S3CREDSFS_LOG", "error");
    let ran = env.run(long_running(&mut cmd, &s3.bucket, GIVE_UP)).ok();
    LongRun::check(&ran, "container-role");
    env.assert_stayed_on_loopback();
}
