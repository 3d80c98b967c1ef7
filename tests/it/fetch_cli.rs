//! `s3credsfs fetch` as a person (and an AWS SDK) runs it: the real binary, real HTTP.

use crate::common;

use common::*;
use s3credsfs::dev::gateway::{Gateway, DEFAULT_PASSWORD};
use std::process::Output;
use tokio::process::Command;

pub(crate) fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3credsfs"));
    // Keep the user's own configuration and cray login out of the tests.
    cmd.env_clear().envs(clean_env()).kill_on_drop(true);
    cmd
}

pub(crate) fn fetch(gw: &Gateway, args: &[&str]) -> Command {
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
    assert_eq!(out.status.code(), Some(77), "a refused login");
    assert!(!text(&out.stderr).contains("wrong-pw-123"));

    let out = fetch(&gw, &["--timeout", "soon"]).output().await.unwrap();
    assert_failed_with(
        &out,
        "bad value \"soon\" for --timeout: expected a duration",
    );
    assert_eq!(out.status.code(), Some(78), "a configuration error");

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
    wait_for_async(
        "the JWT to expire",
        std::time::Duration::from_secs(5),
        async || chrono::Utc::now().timestamp() > exp,
    )
    .await;
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
        .env_clear()
        .envs(clean_env())
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
    // RGW's secrets, and so the gateway's, are 39 or 40 characters.
    let end = stdout.trim_end();
    assert!(
        end.ends_with(" 40 True") || end.ends_with(" 39 True"),
        "{stdout}"
    );
    assert_eq!(gw.stats().sts_issued, 1);
}

/// What a person saw on the terminal and what the command printed on stdout.
struct Session {
    status: std::process::ExitStatus,
    screen: String,
    stdout: String,
}

/// Runs the binary with `args` on a new pseudo-terminal of its own (its controlling
/// terminal, also its stdin), types `typed` once the prompt is up and the terminal's echo
/// is off, and returns what the terminal showed.
fn on_a_terminal(args: &[String], typed: &str) -> Session {
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two descriptors we then own; no name, termios or size given.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both were just opened and are owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let master = std::fs::File::from(master);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_s3credsfs"));
    cmd.env_clear()
        .envs(clean_env())
        .args(args)
        .stdin(std::process::Stdio::from(slave.try_clone().unwrap()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::from(slave));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 || libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = StopOnDrop::kill(cmd.spawn().unwrap());
    drop(cmd); // our copy of the terminal's side: the screen ends when the child's does
    let screen = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let (mut master, screen) = (master.try_clone().unwrap(), screen.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            // Ends with EIO once the child has closed the terminal.
            loop {
                match master.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => screen.lock().unwrap().extend_from_slice(&buf[..n]),
                }
            }
        })
    };
    let seen = || String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
    wait_for("the password prompt", Duration::from_secs(20), || {
        seen().contains("Password for ")
    });
    wait_for(
        "the terminal's echo to be turned off",
        Duration::from_secs(10),
        || {
            // SAFETY: termios is plain data; on a pty's master, tcgetattr reads the
            // terminal's (the slave's) settings.
            let mut termios: libc::termios = unsafe { std::mem::zeroed() };
            let read = unsafe { libc::tcgetattr(master.as_raw_fd(), &mut termios) };
            read == 0 && termios.c_lflag & libc::ECHO == 0
        },
    );
    (&master).write_all(typed.as_bytes()).unwrap();
    let status = wait_for("the command to finish", Duration::from_secs(20), || {
        child.try_wait().unwrap()
    });
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    reader.join().unwrap();
    Session {
        status,
        screen: seen(),
        stdout,
    }
}

#[tokio::test]
async fn asks_for_the_password_on_a_terminal_without_echoing_it() {
    let gw = gateway(|_| {}).await;
    let args: Vec<String> = [
        "fetch",
        "--api-gateway",
        &gw.base_url(),
        "--username",
        "dev",
    ]
    .into_iter()
    .chain(["--format", "credentials"])
    .map(str::to_string)
    .collect();
    let typed = format!("{DEFAULT_PASSWORD}\n");
    let session = tokio::task::spawn_blocking(move || on_a_terminal(&args, &typed))
        .await
        .unwrap();
    let screen = &session.screen;
    assert!(session.status.success(), "{screen}");
    assert!(
        screen.contains(&format!("Password for dev at {}/: ", gw.base_url())),
        "{screen:?}"
    );
    assert!(!screen.contains(DEFAULT_PASSWORD), "echoed: {screen:?}");
    assert!(
        session.stdout.contains("aws_session_token = "),
        "{}",
        session.stdout
    );
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
    .env("SECRET", s3credsfs::dev::gateway::DEFAULT_CLIENT_SECRET);
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

#[tokio::test]
async fn completions_are_printed_for_each_shell() {
    // The packages ship these files, generated by running the binary (scripts/package).
    for (shell, mark) in [
        ("bash", "complete -F _s3credsfs"),
        ("zsh", "#compdef s3credsfs"),
        ("fish", "complete -c s3credsfs"),
    ] {
        let out = bin().args(["completions", shell]).output().await.unwrap();
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains(mark), "{shell}: {script}");
        assert!(
            script.contains("mount") && script.contains("profile"),
            "{shell}"
        );
    }
}

#[tokio::test]
async fn version_says_the_build_the_commit_and_the_target() {
    let out = bin().arg("--version").output().await.unwrap();
    assert!(out.status.success());
    let line = text(&out.stdout);
    let rest = line
        .strip_prefix(&format!(
            "s3credsfs {} (development build with the built-in gateway, commit ",
            env!("CARGO_PKG_VERSION")
        ))
        .unwrap_or_else(|| panic!("{line}"));
    let (commit, target) = rest.split_once(", ").unwrap_or_else(|| panic!("{line}"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{line}"
    );
    // The target triple the binary was built for (this test runs on the same host).
    let arch = std::env::consts::ARCH;
    assert!(
        target.starts_with(arch) && target.ends_with("-linux-gnu)\n"),
        "{line}"
    );
    // A subcommand's --version is the same line.
    let sub = bin().args(["mount", "--version"]).output().await.unwrap();
    assert_eq!(
        text(&sub.stdout).replacen("s3credsfs-mount", "s3credsfs", 1),
        line
    );
}

#[tokio::test]
async fn a_refused_password_is_not_sent_again_by_the_next_run_until_its_record_is_removed() {
    // What a script running `fetch` again and again, or a restarted mount, does: the
    // memory lies under XDG_STATE_HOME, and the sentence names the way out.
    let gw = gateway(|_| {}).await;
    let state = tempfile::tempdir().unwrap();
    let run = || async {
        fetch(&gw, &[])
            .env("PW", "wrong-pw-456")
            .env("XDG_STATE_HOME", state.path())
            .output()
            .await
            .unwrap()
    };
    let first = run().await;
    assert_failed_with(&first, "Invalid user credentials");
    assert_eq!(gw.stats().token_requests, 1);
    let second = run().await;
    assert_eq!(second.status.code(), Some(77), "a refused login");
    let stderr = text(&second.stderr);
    assert!(stderr.contains("so it is not sent again until"), "{stderr}");
    assert!(!stderr.contains("wrong-pw-456"), "{stderr}");
    assert_eq!(gw.stats().token_requests, 1, "sent again");
    let records = state.path().join("s3credsfs/refused");
    let named = std::fs::read_dir(&records)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| stderr.contains(&format!("remove {}", path.display())))
        .expect("the sentence names the record");
    std::fs::remove_file(named).unwrap();
    assert_failed_with(&run().await, "Invalid user credentials");
    assert_eq!(
        gw.stats().token_requests,
        2,
        "not sent after the record was removed"
    );
}
