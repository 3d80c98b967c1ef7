//! `s3credsfs fetch` as a person (and an AWS SDK) runs it: the real binary, real HTTP.

use crate::common;

use common::*;
use s3credsfs::gateway::{Gateway, DEFAULT_PASSWORD};
use std::process::Output;
use tokio::process::Command;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3credsfs"));
    // Keep the user's own configuration and cray login out of the tests.
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent")
        .kill_on_drop(true);
    cmd
}

fn fetch(gw: &Gateway, args: &[&str]) -> Command {
    let mut cmd = bin();
    cmd.args([
        "fetch",
        "--api-gateway",
        &gw.base_url(),
        "--username",
        "dev",
        "--password-env",
        "PW",
    ])
    .args(args)
    .env("PW", DEFAULT_PASSWORD);
    cmd
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

fn assert_failed_with(out: &Output, expected: &str) {
    assert!(
        !out.status.success(),
        "expected failure, got {:?}",
        out.status
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains(expected), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn prints_each_format() {
    let gw = gateway(|_| {}).await;
    let out = fetch(&gw, &[]).output().await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["Version"], 1);
    assert_eq!(json["EndpointURL"], "http://127.0.0.1:8080");
    let expected_start = [
        ("credentials", "[team]\naws_access_key_id = "),
        (
            "config",
            "[profile team]\nendpoint_url = http://127.0.0.1:8080\n",
        ),
        ("env", "export AWS_ACCESS_KEY_ID='"),
        ("s3cfg", "[default]\naccess_key = "),
        ("rclone", "[team]\ntype = s3\nprovider = Ceph\n"),
    ];
    for (format, needle) in expected_start {
        let out = fetch(&gw, &["--format", format, "--profile", "team"])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{format}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains(needle),
            "{format}: {}",
            text(&out.stdout)
        );
        assert!(out.stderr.is_empty(), "{format}: {}", text(&out.stderr));
    }
    // The region: us-east-1 unless set, in every format that carries one.
    let region_lines = [
        ("config", "\nregion = {}\n"),
        (
            "env",
            "\nexport AWS_REGION='{}'\nexport AWS_DEFAULT_REGION='{}'\n",
        ),
        ("s3cfg", "\nbucket_location = {}\n"),
        ("rclone", "\nregion = {}\n"),
    ];
    for (format, line) in region_lines {
        for (args, region) in [(&[][..], "us-east-1"), (&["--region", "zg-1"][..], "zg-1")] {
            let out = fetch(&gw, &[&["--format", format][..], args].concat())
                .env_remove("S3CREDSFS_REGION")
                .output()
                .await
                .unwrap();
            let stdout = text(&out.stdout);
            assert!(
                stdout.contains(&line.replace("{}", region)),
                "{format}: {stdout}"
            );
        }
    }
    let out = fetch(&gw, &["--format", "config"])
        .env("S3CREDSFS_REGION", "from-env")
        .output()
        .await
        .unwrap();
    assert!(text(&out.stdout).contains("\nregion = from-env\n"));

    let out = fetch(&gw, &["--format", "yaml"]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("invalid value 'yaml' for '--format <FORMAT>'")
            && stderr.contains("[possible values: json, credentials, config, env, s3cfg, rclone]"),
        "{stderr}"
    );
}

#[tokio::test]
async fn errors_are_one_line_with_nonzero_exit() {
    let gw = gateway(|_| {}).await;
    let out = fetch(&gw, &[])
        .env("PW", "wrong-pw-123")
        .output()
        .await
        .unwrap();
    assert_failed_with(
        &out,
        "rejected the password for user \"dev\": Invalid user credentials",
    );
    assert!(!text(&out.stderr).contains("wrong-pw-123"));

    let out = fetch(&gw, &["--timeout", "soon"]).output().await.unwrap();
    assert_failed_with(
        &out,
        "bad value \"soon\" for --timeout: expected a duration",
    );

    let out = fetch(&gw, &[])
        .env("S3CREDSFS_TIMEOUT", "-1")
        .output()
        .await
        .unwrap();
    assert_failed_with(&out, "for environment variable S3CREDSFS_TIMEOUT");

    let out = bin()
        .args(["fetch", "--no-such-flag"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unexpected argument '--no-such-flag'"));

    let out = bin().args(["fetch"]).output().await.unwrap();
    assert_failed_with(&out, "no way to log in is configured");
}

#[tokio::test]
async fn token_env_works_and_an_expired_jwt_is_named() {
    let gw = gateway(|c| c.token_lifetime = std::time::Duration::from_secs(3)).await;
    let token = password_grant(&gw).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut cmd = bin();
    cmd.args([
        "fetch",
        "--api-gateway",
        &gw.base_url(),
        "--token-env",
        "TOKEN",
    ])
    .env("TOKEN", &token);
    let out = cmd.output().await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let exp = s3credsfs::auth::jwt_claims(&token).unwrap()["exp"]
        .as_i64()
        .unwrap();
    assert!(
        wait_until(std::time::Duration::from_secs(5), || chrono::Utc::now()
            .timestamp()
            > exp)
        .await
    );
    let out = cmd.output().await.unwrap();
    assert_failed_with(&out, "the JWT in TOKEN expired at");
    assert!(!text(&out.stderr).contains(&token));
}

#[tokio::test]
async fn flag_beats_environment_beats_config_file() {
    let gw = gateway(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "realm = \"nonexistent\"\nprofile = \"from-file\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();

    // The file's wrong realm is used when nothing overrides it (Keycloak answers 404).
    let out = fetch(&gw, &["--config", config]).output().await.unwrap();
    assert_failed_with(
        &out,
        "/keycloak/realms/nonexistent/protocol/openid-connect/token answered HTTP 404",
    );
    // The environment beats the file...
    let out = fetch(&gw, &["--config", config, "-f", "credentials"])
        .env("S3CREDSFS_REALM", "shasta")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("[from-file]"));
    // ...and a flag beats both.
    let out = fetch(
        &gw,
        &[
            "--config",
            config,
            "--realm",
            "shasta",
            "--profile",
            "flag",
            "-f",
            "credentials",
        ],
    )
    .env("S3CREDSFS_REALM", "nonexistent")
    .output()
    .await
    .unwrap();
    assert!(
        text(&out.stdout).contains("[flag]"),
        "{}",
        text(&out.stderr)
    );
    // The default file location ($XDG_CONFIG_HOME/s3credsfs/config.toml) is read too.
    std::fs::create_dir_all(dir.path().join("s3credsfs")).unwrap();
    std::fs::write(dir.path().join("s3credsfs/config.toml"), "bogus-key = 1\n").unwrap();
    let out = fetch(&gw, &[])
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .await
        .unwrap();
    assert_failed_with(&out, "unknown key `bogus-key` in config file");
}

#[tokio::test]
async fn works_as_botocore_credential_process() {
    let gw = gateway(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("aws-config");
    std::fs::write(
        &config,
        format!(
            "[profile cray]\ncredential_process = {} fetch --format json --api-gateway {} --username dev --password-env PW\n",
            env!("CARGO_BIN_EXE_s3credsfs"),
            gw.base_url()
        ),
    )
    .unwrap();
    let script = "import botocore.session as s\n\
                  c = s.Session(profile='cray').get_credentials()\n\
                  f = c.get_frozen_credentials()\n\
                  print(type(c).__name__, f.access_key[:2], len(f.secret_key), bool(f.token))";
    let out = Command::new("python3")
        .args(["-c", script])
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .env("PW", DEFAULT_PASSWORD)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("RefreshableCredentials "), "{stdout}");
    assert!(stdout.trim_end().ends_with(" 40 True"), "{stdout}");
    assert_eq!(gw.stats().sts_issued, 1);
}

/// The terminal (`/dev/pts/N`) of the process `script` started.
fn terminal_of(script: u32) -> std::path::PathBuf {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; the name may hold spaces and parentheses.
        let after_name = &stat[stat.rfind(')').unwrap() + 1..];
        let ppid = after_name.split_whitespace().nth(1).unwrap();
        if ppid == script.to_string() {
            if let Ok(tty) = std::fs::read_link(entry.path().join("fd/0")) {
                return tty;
            }
        }
    }
    panic!("no child of `script` (pid {script}) with a terminal");
}

/// Whether the terminal at `path` echoes what is typed.
fn echoes(path: &std::path::Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let tty = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .unwrap();
    let settings = nix::sys::termios::tcgetattr(&tty).unwrap();
    settings
        .local_flags
        .contains(nix::sys::termios::LocalFlags::ECHO)
}

/// The prompt goes to the terminal, and the password typed there is not echoed: echo is
/// off before we type (waited for, since it is turned off just after the prompt is
/// written), and the password is nowhere in what the terminal showed.
#[tokio::test]
async fn asks_for_the_password_on_a_terminal_without_echo() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = gateway(|_| {}).await;
    let command = format!(
        "{} fetch --api-gateway {} --username dev --format credentials",
        env!("CARGO_BIN_EXE_s3credsfs"),
        gw.base_url()
    );
    // `script` gives the command a pseudo-terminal, so it prompts; we type the password.
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("HOME", "/nonexistent")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let prompt = format!("Password for dev at {}/: ", gw.base_url());
    let mut shown = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while !text(&shown).contains(&prompt) {
            let read = stdout.read_buf(&mut shown).await.unwrap();
            assert!(read > 0, "no prompt before the end: {}", text(&shown));
        }
    })
    .await
    .expect("the prompt appeared");
    let tty = terminal_of(child.id().unwrap());
    assert!(
        wait_until(std::time::Duration::from_secs(10), || !echoes(&tty)).await,
        "the terminal still echoes at the password prompt"
    );
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(DEFAULT_PASSWORD.as_bytes()).await.unwrap();
    stdin.write_all(b"\n").await.unwrap();
    let finished = async {
        stdout.read_to_end(&mut shown).await.unwrap();
        child.wait().await.unwrap()
    };
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), finished)
        .await
        .expect("fetch finished");
    let shown = text(&shown);
    assert!(status.success(), "{shown}");
    assert!(shown.contains("aws_session_token = "), "{shown}");
    assert!(!shown.contains(DEFAULT_PASSWORD), "{shown}");
    assert_eq!(gw.stats().password_grants, 1);
}

#[tokio::test]
async fn client_secret_from_the_environment() {
    let gw = gateway(|_| {}).await;
    let mut cmd = bin();
    cmd.args([
        "fetch",
        "--api-gateway",
        &gw.base_url(),
        "--client-id",
        "admin-client",
        "--client-secret-env",
        "SECRET",
    ])
    .env("SECRET", s3credsfs::gateway::DEFAULT_CLIENT_SECRET);
    let out = cmd.output().await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(gw.stats().client_credentials_grants, 1);
}

#[tokio::test]
async fn insecure_warns_on_every_start() {
    let gw = gateway(|_| {}).await;
    for _ in 0..2 {
        let out = fetch(&gw, &["--insecure"]).output().await.unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(
            stderr.starts_with(
                "s3credsfs: warning: --insecure is set: TLS certificates are NOT verified"
            ),
            "{stderr}"
        );
    }
}
