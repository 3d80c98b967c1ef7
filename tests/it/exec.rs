//! `s3credsfs exec -- COMMAND` as a person runs it: the real binary, the built-in gateway
//! over loopback HTTP, real child processes (and, with `fuse-tests`, a real mount).

use crate::common;

use common::mount::{login_args, TestGateway};
use common::{wait_for, StopOnDrop};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long one `exec` may take; they take well under a second.
const DEADLINE: Duration = Duration::from_secs(30);

/// `s3credsfs exec` logging in to `gw`, in the tests' clean environment; `args` go
/// between the settings and the command (flags, then `--` and the command).
fn exec(gw: &TestGateway, args: &[&str]) -> Command {
    let mut cmd = Command::new(crate::common::exe());
    cmd.env_clear()
        .envs(common::clean_env())
        .env("PW", s3credsfs::dev::gateway::DEFAULT_PASSWORD)
        .arg("exec")
        .args(login_args(gw))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// What a finished `exec` did.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Waits (at most [`DEADLINE`]) for `child` to end and collects its output.
/// Should exec end while its command lives on holding the output pipes, the command is
/// killed and the test fails, rather than waiting for ever or leaving it running.
fn finish(mut child: Child) -> Ran {
    let mut pipes = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let inodes = [pipe_inode(&pipes.0), pipe_inode(&pipes.1)];
    let (sender, output) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut stdout, mut stderr) = (String::new(), String::new());
        let _ = pipes.0.read_to_string(&mut stdout);
        let _ = pipes.1.read_to_string(&mut stderr);
        let _ = sender.send((stdout, stderr));
    });
    let mut child = StopOnDrop::kill(child);
    let status = wait_for("exec to end", DEADLINE, || child.try_wait().unwrap());
    let (stdout, stderr) = output.recv_timeout(DEADLINE).unwrap_or_else(|_| {
        let killed = common::child::kill_pipe_holders(&inodes);
        panic!("exec ended ({status}) but processes it started still held its output; killed {killed:?}")
    });
    assert_eq!(status.signal(), None, "exec itself was killed: {stderr}");
    Ran {
        code: status.code(),
        stdout,
        stderr,
    }
}

fn pipe_inode(pipe: &impl std::os::fd::AsRawFd) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let fd = pipe.as_raw_fd();
    std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .unwrap()
        .ino()
}

fn run(cmd: &mut Command) -> Ran {
    finish(cmd.spawn().expect("start s3credsfs exec"))
}

/// The `NAME=VALUE` lines that `env` printed.
fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The inherited variables a test plants in `exec`'s own environment: stale credentials
/// and settings that must not reach the command.
const STALE: [(&str, &str); 8] = [
    ("AWS_ACCESS_KEY_ID", "AKSTALE"),
    ("AWS_SECRET_ACCESS_KEY", "stale-secret"),
    ("AWS_SESSION_TOKEN", "stale-token"),
    ("AWS_SECURITY_TOKEN", "stale-token"),
    ("AWS_CREDENTIAL_EXPIRATION", "2001-01-01T00:00:00Z"),
    ("AWS_PROFILE", "no-such-profile"),
    (
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "http://127.0.0.1:9/stale",
    ),
    ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "stale"),
];

#[test]
fn the_command_gets_fresh_keys_and_nothing_stale() {
    let gw = TestGateway::start(|_| {});
    let issued = gw.stats().sts_issued;
    let ran = run(exec(&gw, &["--region", "eu-test-1", "--", "env"])
        .envs(STALE)
        .env("KEPT", "yes"));
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let env = parse_env(&ran.stdout);
    let var = |name: &str| env.get(name).map(String::as_str).unwrap_or("");
    assert_eq!(gw.stats().sts_issued, issued + 1, "one fetch");
    let key = var("AWS_ACCESS_KEY_ID");
    assert!(
        !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{key:?}"
    );
    assert_ne!(key, "AKSTALE");
    for (name, stale) in [
        ("AWS_SECRET_ACCESS_KEY", "stale-secret"),
        ("AWS_SESSION_TOKEN", "stale-token"),
    ] {
        assert!(!var(name).is_empty() && var(name) != stale, "{name}");
    }
    let expiration = s3credsfs::creds::parse_expiration(var("AWS_CREDENTIAL_EXPIRATION"))
        .expect("an RFC 3339 expiration");
    assert!(expiration > chrono::Utc::now());
    // What `fetch` gives: the gateway's endpoint, and the region as set.
    assert_eq!(var("AWS_ENDPOINT_URL"), "http://127.0.0.1:8080");
    assert_eq!(var("AWS_REGION"), "eu-test-1");
    assert_eq!(var("AWS_DEFAULT_REGION"), "eu-test-1");
    // Checksums only when required, as the mount's files say (RGW before 19 refuses the
    // SDKs' default trailers), unless the command's environment says otherwise.
    assert_eq!(var("AWS_REQUEST_CHECKSUM_CALCULATION"), "when_required");
    let own =
        run(exec(&gw, &["--", "env"]).env("AWS_REQUEST_CHECKSUM_CALCULATION", "when_supported"));
    assert_eq!(own.code, Some(0), "{}", own.stderr);
    assert_eq!(
        parse_env(&own.stdout)
            .get("AWS_REQUEST_CHECKSUM_CALCULATION")
            .map(String::as_str),
        Some("when_supported")
    );
    for gone in [
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    ] {
        assert!(!env.contains_key(gone), "{gone} reached the command");
    }
    assert_eq!(
        var("KEPT"),
        "yes",
        "the rest of the environment is inherited"
    );
    assert!(ran.stderr.is_empty(), "{}", ran.stderr);
}

#[test]
fn exit_codes_pass_through() {
    let gw = TestGateway::start(|_| {});
    for (command, code) in [
        (vec!["true"], 0),
        (vec!["sh", "-c", "exit 3"], 3),
        // Killed by SIGTERM: 128 + 15, as shells report it.
        (vec!["sh", "-c", "kill -TERM $$"], 143),
    ] {
        let mut args = vec!["--"];
        args.extend(command.iter().copied());
        let ran = run(&mut exec(&gw, &args));
        assert_eq!(ran.code, Some(code), "{command:?}: {}", ran.stderr);
    }
}

#[test]
fn a_missing_or_unexecutable_command_fails_like_in_a_shell() {
    let gw = TestGateway::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let plain = common::private_file(dir.path(), "not-a-program", "echo hi\n");
    let plain = plain.to_str().unwrap();
    for (command, code, sentence) in [
        (
            "no-such-command-s3credsfs",
            127,
            "cannot run `no-such-command-s3credsfs`: there is no such command (searched PATH); check its name or give its full path",
        ),
        (plain, 126, "it is not executable (permission denied); check its mode with `ls -l`"),
    ] {
        let ran = run(&mut exec(&gw, &["--", command]));
        assert_eq!(ran.code, Some(code), "{}", ran.stderr);
        assert!(ran.stderr.contains(sentence), "{}", ran.stderr);
        assert_eq!(ran.stderr.lines().count(), 1, "one line: {}", ran.stderr);
        assert!(ran.stdout.is_empty());
    }
}

#[test]
fn no_secret_is_in_any_argv() {
    let gw = TestGateway::start(|_| {});
    // Prints exec's argv, its own, then the secret and the token it was given.
    let script = r#"tr '\0' ' ' < /proc/$PPID/cmdline; echo; tr '\0' ' ' < /proc/$$/cmdline; echo; printf '%s\n%s\n' "$AWS_SECRET_ACCESS_KEY" "$AWS_SESSION_TOKEN""#;
    let ran = run(&mut exec(&gw, &["--", "sh", "-c", script]));
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    let [exec_argv, child_argv, secret, token] = lines[..] else {
        panic!("{}", ran.stdout)
    };
    assert!(exec_argv.contains(" exec "), "{exec_argv}");
    assert!(secret.len() >= 16 && token.len() >= 16, "{}", ran.stdout);
    for argv in [exec_argv, child_argv] {
        assert!(
            !argv.contains(secret) && !argv.contains(token),
            "a secret in {argv}"
        );
    }
}

/// Waits until `path` exists.
fn wait_for_file(path: &Path) {
    wait_for(&path.display().to_string(), DEADLINE, || path.exists());
}

#[test]
fn signals_sent_to_exec_reach_the_command() {
    let gw = TestGateway::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let script = r#"trap 'echo term > "$D/got"; exit 7' TERM; : > "$D/ready"
while :; do sleep 0.05; done"#;
    let child = exec(&gw, &["--", "sh", "-c", script])
        .env("D", dir.path())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    wait_for_file(&dir.path().join("ready"));
    // SAFETY: signalling the exec process this test started (not yet reaped).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let ran = finish(child);
    assert_eq!(ran.code, Some(7), "the command's trap ran: {}", ran.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("got")).unwrap(),
        "term\n"
    );
}

/// A signal that comes while exec is still logging in ends it as it would have ended it
/// without forwarding (there is no command to pass it to), with the shell's 128 + N.
#[test]
fn a_signal_before_the_command_starts_ends_exec_with_the_shells_code() {
    // A gateway that takes the connection and never answers: exec waits in its login.
    let gateway = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    gateway.set_nonblocking(true).unwrap();
    let base = format!("http://{}", gateway.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    let child = Command::new(env!("CARGO_BIN_EXE_s3credsfs"))
        .env_clear()
        .envs(common::clean_env())
        .env("PW", s3credsfs::dev::gateway::DEFAULT_PASSWORD)
        .arg("exec")
        .args(common::mount::login_args_for(&base))
        .args(["--", "touch"])
        .arg(&started)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let _held = wait_for("exec to connect to the gateway", DEADLINE, || {
        gateway.accept()
    });
    // SAFETY: signalling the exec process this test started (not yet reaped).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let ran = finish(child);
    assert_eq!(ran.code, Some(128 + libc::SIGTERM), "{}", ran.stderr);
    assert!(!started.exists(), "the command ran");
}

/// A terminal's ^C reaches the whole foreground process group, the command included: exec
/// must not pass it on a second time. Run on a real pseudo-terminal whose foreground group
/// is exec's (exec leads a session with it as controlling terminal).
#[test]
fn a_terminal_interrupt_is_not_passed_on_twice() {
    let gw = TestGateway::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let pty = nix::pty::openpty(None, None).unwrap();
    let script = r#"trap 'echo int >> "$D/log"' INT; trap 'echo usr1 >> "$D/log"; exit 0' USR1
: > "$D/ready"; while :; do sleep 0.05; done"#;
    let mut cmd = exec(&gw, &["--", "sh", "-c", script]);
    cmd.env("D", dir.path())
        .env("S3CREDSFS_LOG", "debug")
        .stdin(std::fs::File::from(pty.slave.try_clone().unwrap()));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            // The test harness ignores SIGINT, which exec would leave ignored.
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    let pid = child.id() as i32;
    drop(pty.slave);
    wait_for_file(&dir.path().join("ready"));
    let log = dir.path().join("log");
    nix::unistd::write(&pty.master, b"\x03").unwrap();
    wait_for("the command's INT trap", DEADLINE, || log.exists());
    // SAFETY: signalling the exec process this test started (not yet reaped).
    unsafe { libc::kill(pid, libc::SIGUSR1) };
    let ran = finish(child);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text, "int\nusr1\n", "the INT trap ran once, then USR1's");
    // Without the terminal's colours: `signal=SIGINT` as plain text.
    let plain: String = ran
        .stderr
        .split('\x1b')
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                part
            } else {
                part.split_once('m').map_or("", |(_, rest)| rest)
            }
        })
        .collect();
    let said = |phrase: &str, signal: &str| {
        plain
            .lines()
            .any(|l| l.contains(phrase) && l.contains(&format!("signal={signal}")))
    };
    assert!(
        said("not passing on a signal", "SIGINT"),
        "exec should have kept the terminal's SIGINT:\n{}",
        ran.stderr
    );
    assert!(
        !said("passing a signal on", "SIGINT"),
        "exec passed the terminal's SIGINT on:\n{}",
        ran.stderr
    );
    assert!(said("passing a signal on", "SIGUSR1"), "{}", ran.stderr);
}

/// `env` of a command run through `exec --container-endpoint` that waits for the file `go`
/// in `dir` before it ends; returns the running exec and the command's environment.
pub fn endpoint_command(cmd: &mut Command, dir: &Path) -> (Child, BTreeMap<String, String>) {
    let script = r#"env > "$D/env.tmp" && mv "$D/env.tmp" "$D/env"
while [ ! -e "$D/go" ]; do sleep 0.05; done"#;
    let child = cmd
        .args(["--container-endpoint", "--", "sh", "-c", script])
        .env("D", dir)
        .spawn()
        .unwrap();
    let env = dir.join("env");
    wait_for_file(&env);
    (child, parse_env(&std::fs::read_to_string(env).unwrap()))
}

/// The endpoint's answer to a GET with `token`: (status, JSON body).
pub fn ask_endpoint(gw: &TestGateway, url: &str, token: &str) -> reqwest::Result<(u16, String)> {
    gw.runtime().block_on(async {
        let client = reqwest::Client::builder().no_proxy().build()?;
        let response = client
            .get(url)
            .header("authorization", token)
            .send()
            .await?;
        Ok((response.status().as_u16(), response.text().await?))
    })
}

/// Checks an endpoint command's environment and returns the access key the endpoint
/// serves; a wrong token is refused.
pub fn check_endpoint_env(gw: &TestGateway, env: &BTreeMap<String, String>) -> String {
    for gone in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION",
        "AWS_PROFILE",
    ] {
        assert!(
            !env.contains_key(gone),
            "{gone} would win over the endpoint"
        );
    }
    let url = &env["AWS_CONTAINER_CREDENTIALS_FULL_URI"];
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let token = &env["AWS_CONTAINER_AUTHORIZATION_TOKEN"];
    assert_ne!(token, "stale");
    assert_eq!(env["AWS_ENDPOINT_URL"], "http://127.0.0.1:8080");
    let (status, _) = ask_endpoint(gw, url, "wrong").unwrap();
    assert_eq!(status, 403);
    let (status, body) = ask_endpoint(gw, url, token).unwrap();
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(body["Token"].as_str().is_some_and(|t| !t.is_empty()));
    body["AccessKeyId"].as_str().unwrap().to_string()
}

#[test]
fn a_container_endpoint_serves_the_command_while_it_runs() {
    let gw = TestGateway::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let (child, env) = endpoint_command(exec(&gw, &[]).envs(STALE), dir.path());
    let key = check_endpoint_env(&gw, &env);
    assert!(key.bytes().all(|b| b.is_ascii_alphanumeric()), "{key}");
    std::fs::write(dir.path().join("go"), "").unwrap();
    let ran = finish(child);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    // The endpoint ended with the command.
    let url = &env["AWS_CONTAINER_CREDENTIALS_FULL_URI"];
    let token = &env["AWS_CONTAINER_AUTHORIZATION_TOKEN"];
    assert!(ask_endpoint(&gw, url, token).is_err(), "still served");
}

#[cfg(feature = "fuse-tests")]
mod from_a_mount {
    use super::*;
    use common::mount::Mounted;

    #[test]
    fn a_running_mount_supplies_the_credentials() {
        let gw = TestGateway::start(|_| {});
        let m = Mounted::start(&gw, &["--region", "eu-mnt-1"]);
        let served: serde_json::Value = serde_json::from_str(&m.read("json").unwrap()).unwrap();
        let issued = gw.stats().sts_issued;
        let at = m.path.to_str().unwrap();

        // Keys: exactly the mount's, its region, and no new credentials issued.
        let ran = run(&mut exec(&gw, &["--mountpoint", at, "--", "env"]));
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        assert!(ran.stderr.is_empty(), "{}", ran.stderr);
        let env = parse_env(&ran.stdout);
        assert_eq!(
            env["AWS_ACCESS_KEY_ID"],
            served["AccessKeyId"].as_str().unwrap()
        );
        assert_eq!(
            env["AWS_SESSION_TOKEN"],
            served["SessionToken"].as_str().unwrap()
        );
        assert_eq!(
            env["AWS_CREDENTIAL_EXPIRATION"],
            served["Expiration"].as_str().unwrap()
        );
        assert_eq!(env["AWS_REGION"], "eu-mnt-1");
        assert_eq!(gw.stats().sts_issued, issued, "the gateway was asked");

        // Named through a link of the user's own (`ln -s creds creds-link`): the same mount.
        let link = m.path.with_file_name("creds-link");
        std::os::unix::fs::symlink(m.path.file_name().unwrap(), &link).unwrap();
        let through = ["--mountpoint", link.to_str().unwrap(), "--", "env"];
        let ran = run(&mut exec(&gw, &through));
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        assert!(ran.stderr.is_empty(), "{}", ran.stderr);
        assert_eq!(parse_env(&ran.stdout)["AWS_ACCESS_KEY_ID"], m.access_key());
        assert_eq!(gw.stats().sts_issued, issued, "the gateway was asked");

        // The endpoint serves the mount's credentials too.
        let dir = tempfile::tempdir().unwrap();
        let (child, env) = endpoint_command(&mut exec(&gw, &["--mountpoint", at]), dir.path());
        assert_eq!(check_endpoint_env(&gw, &env), m.access_key());
        assert_eq!(env["AWS_REGION"], "eu-mnt-1");
        std::fs::write(dir.path().join("go"), "").unwrap();
        assert_eq!(finish(child).code, Some(0));
        assert_eq!(gw.stats().sts_issued, issued, "the gateway was asked");

        // A profile the mount does not serve is fetched.
        let ran = run(&mut exec(
            &gw,
            &["--mountpoint", at, "--profile", "other", "--", "env"],
        ));
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        let env = parse_env(&ran.stdout);
        assert_ne!(env["AWS_ACCESS_KEY_ID"], m.access_key());
        assert_eq!(gw.stats().sts_issued, issued + 1);
    }

    /// With profiles, `--profile NAME` takes `profiles/NAME/` of the mount: its keys and
    /// region, nothing new issued.
    #[test]
    fn a_named_profile_comes_from_its_directory_in_the_mount() {
        let (prod, tds) = (TestGateway::start(|_| {}), TestGateway::start(|_| {}));
        let config = format!(
            "username = \"dev\"\npassword-env = \"PW\"\ndefault-profile = \"prod\"\n\
             [profiles.prod]\napi-gateway = \"{}\"\n\
             [profiles.tds]\napi-gateway = \"{}\"\nregion = \"tds-region\"\n",
            prod.gw.base_url(),
            tds.gw.base_url()
        );
        let m = Mounted::start_configured(&config, &[]);
        let served: serde_json::Value =
            serde_json::from_str(&m.read("profiles/tds/json").unwrap()).unwrap();
        let issued = (prod.stats().sts_issued, tds.stats().sts_issued);
        let at = m.path.to_str().unwrap();
        let mut cmd = common::mount::bin();
        cmd.args(["exec", "--mountpoint", at, "--profile", "tds", "--", "env"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let ran = run(&mut cmd);
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        let env = parse_env(&ran.stdout);
        assert_eq!(
            env["AWS_ACCESS_KEY_ID"],
            served["AccessKeyId"].as_str().unwrap()
        );
        assert_eq!(env["AWS_REGION"], "tds-region");
        assert_eq!(
            (prod.stats().sts_issued, tds.stats().sts_issued),
            issued,
            "no gateway was asked"
        );

        // Without --profile: the mount's default profile, from its own directory.
        let exec_env = |extra: &[&str]| {
            let mut cmd = common::mount::bin();
            cmd.args(["exec", "--mountpoint", at])
                .args(extra)
                .args(["--", "env"])
                .env("PW", s3credsfs::dev::gateway::DEFAULT_PASSWORD)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            run(&mut cmd)
        };
        let ran = exec_env(&[]);
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        assert!(!ran.stderr.contains("warning"), "{}", ran.stderr);
        assert_eq!(parse_env(&ran.stdout)["AWS_ACCESS_KEY_ID"], m.access_key());
        assert_eq!(
            (prod.stats().sts_issued, tds.stats().sts_issued),
            issued,
            "no gateway was asked"
        );

        // A gateway given that is not the one the mount's tds profile uses: fetched there.
        let prod_url = prod.gw.base_url();
        let ran = exec_env(&[
            "--profile",
            "tds",
            "--api-gateway",
            &prod_url,
            "--username",
            "dev",
            "--password-env",
            "PW",
        ]);
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        let key = parse_env(&ran.stdout)["AWS_ACCESS_KEY_ID"].clone();
        assert_ne!(key, served["AccessKeyId"].as_str().unwrap());
        assert_eq!(
            prod.stats().sts_issued,
            issued.0 + 1,
            "asked the gateway given"
        );
    }
}
