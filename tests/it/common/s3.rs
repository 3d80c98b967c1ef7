//! AWS's S3 + STS as moto plays them, signature-checking: moto in server mode (started by
//! `tests/s3/moto_server.py`, which fixes moto's check of query strings holding a `/`),
//! prepared by `tests/s3/moto_setup.py` (a user that may assume one `s3:*` role, a bucket,
//! then authentication switched on). Only `backend_sts` uses it, for what RGW does not do
//! (AWS's key shapes and error codes, IAM); every client test runs on a real RGW
//! (`super::rgw`). The helpers below it (`on_path`, `clean_aws_env`, [`Banner`]) serve
//! both tiers.
//!
//! What moto checks once authentication is on: every request must carry a SigV4
//! signature that it recomputes from the secret key of a known access key
//! (`SignatureDoesNotMatch` otherwise), temporary keys need their own session token
//! (`InvalidToken` for a wrong one, `InvalidAccessKeyId` without), and IAM policy must
//! allow the action (`AccessDenied`). It does not check expiry: tests that care about
//! refresh assert that the access key changed.
//!
//! Needs `moto_server` and a `python3` with boto3 next to it on `PATH`: `scripts/test`
//! installs both into `target/test-venv` and puts its `bin` first on `PATH`.

use super::{wait_for, StopOnDrop};
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long moto may take to start answering (it imports a lot of Python first).
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A running moto server with authentication on. Dropping it kills and reaps the server.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`: both the S3 endpoint and the STS endpoint.
    pub url: String,
    /// Access key id of the IAM user that may assume [`S3Server::role_arn`] (and do
    /// nothing else).
    pub access_key: String,
    /// That user's secret key.
    pub secret_key: String,
    /// A role allowed `s3:*` on everything, like the one cray-sts assumes on RGW.
    pub role_arn: String,
    /// A bucket that exists.
    pub bucket: String,
    /// The Python interpreter next to `moto_server` (it has boto3).
    pub python: PathBuf,
    child: StopOnDrop,
    log: tempfile::NamedTempFile,
}

/// Credentials to try against the server, as a client would hold them.
#[derive(Clone, Debug)]
pub struct S3Creds {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, if any.
    pub session_token: Option<String>,
}

impl S3Creds {
    /// The credentials the built-in gateway handed out through the pipeline.
    pub fn from_pipeline(c: &s3credsfs::creds::Credentials) -> S3Creds {
        S3Creds {
            access_key_id: c.access_key_id.clone(),
            secret_access_key: c.secret_access_key.expose().to_owned(),
            session_token: Some(c.session_token.expose().to_owned()),
        }
    }
}

/// `name` found in a directory of `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// Where `scripts/test`'s helper scripts live.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/s3")
        .join(name)
}

impl S3Server {
    /// Starts moto on a free loopback port, waits until it answers, and prepares it.
    /// Panics with the way out when `moto_server` is not installed.
    pub fn start() -> S3Server {
        let moto = on_path("moto_server").unwrap_or_else(|| {
            panic!(
                "moto_server is not on PATH: run the tests with scripts/test, which installs \
                 moto[server] into target/test-venv and puts it first on PATH"
            )
        });
        let python = moto
            .parent()
            .map(|dir| dir.join("python3"))
            .filter(|p| p.is_file())
            .or_else(|| on_path("python3"))
            .expect("python3 next to moto_server or on PATH");
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("create moto's log file");
        // moto_server's own main, with its signature check fixed for `/` in query values.
        let child = Command::new(&python)
            .arg(script("moto_server.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("moto log"))
            .stderr(log.reopen().expect("moto log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        let mut server = S3Server {
            url: format!("http://127.0.0.1:{port}"),
            access_key: String::new(),
            secret_key: String::new(),
            role_arn: String::new(),
            bucket: String::new(),
            python,
            child: StopOnDrop::kill(child),
            log,
        };
        server.wait_until_listening(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        server.set_up();
        server
    }

    /// Polls until moto accepts connections; panics with its log if it exits or the
    /// deadline passes.
    fn wait_until_listening(&mut self, addr: SocketAddr) {
        wait_for(
            &format!("moto_server to listen on {addr}"),
            START_DEADLINE,
            || {
                let connected = TcpStream::connect_timeout(&addr, Duration::from_millis(200));
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!(
                        "moto_server exited ({status}) before answering:\n{}",
                        self.log_text()
                    );
                }
                connected.map_err(|e| format!("{e}; its log:\n{}", self.log_text()))
            },
        );
    }

    /// Runs `moto_setup.py` and keeps the account it prints.
    fn set_up(&mut self) {
        let out = clean_aws_env(&mut Command::new(&self.python))
            .arg(script("moto_setup.py"))
            .arg(&self.url)
            .output()
            .expect("run moto_setup.py");
        assert!(
            out.status.success(),
            "moto_setup.py failed: {}\nmoto's log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        let line = String::from_utf8_lossy(&out.stdout);
        let account: serde_json::Value =
            serde_json::from_str(line.trim()).expect("moto_setup.py prints one JSON line");
        let field = |k: &str| account[k].as_str().expect(k).to_owned();
        self.access_key = field("access_key");
        self.secret_key = field("secret_key");
        self.role_arn = field("role_arn");
        self.bucket = field("bucket");
    }

    /// The last lines moto logged, for failure messages.
    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = self.log.reopen() {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// This server as the gateway's credential backend (cray-sts's view of RGW).
    pub fn backend(&self) -> s3credsfs::dev::gateway::BackendSts {
        s3credsfs::dev::gateway::BackendSts::new(
            &self.url,
            &self.access_key,
            &self.secret_key,
            &self.role_arn,
        )
    }

    /// Runs Python `code` with boto3 importable, no AWS configuration from the host, and
    /// `env` added (`S3_URL` and `S3_BUCKET` are always set).
    pub fn python(&self, code: &str, env: &[(&str, &str)]) -> Output {
        clean_aws_env(&mut Command::new(&self.python))
            .arg("-c")
            .arg(code)
            .env("S3_URL", &self.url)
            .env("S3_BUCKET", &self.bucket)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("run python")
    }

    /// With `creds` and boto3: puts an object with random content under `key`, lists the
    /// bucket and reads the object back. `Ok(())` when all of that worked; `Err(code)` with
    /// S3's error code (`SignatureDoesNotMatch`, `InvalidToken`, `AccessDenied`, ...) when
    /// the server refused.
    pub fn round_trip(&self, creds: &S3Creds, key: &str) -> Result<(), String> {
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID", creds.access_key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", creds.secret_access_key.as_str()),
            ("S3_KEY", key),
        ];
        if let Some(token) = &creds.session_token {
            env.push(("AWS_SESSION_TOKEN", token));
        }
        let out = self.python(ROUND_TRIP, &env);
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        match out.status.code() {
            Some(0) if stdout == "ok" => Ok(()),
            Some(3) => Err(stdout),
            _ => panic!(
                "the boto3 round trip crashed ({}): {}{}",
                out.status,
                stdout,
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
}

/// Keeps the host's AWS configuration (profiles, keys, CA bundle, endpoint overrides,
/// instance metadata) and proxies out of a boto3 child.
pub fn clean_aws_env(cmd: &mut Command) -> &mut Command {
    for var in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CA_BUNDLE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_STS",
        "AWS_ENDPOINT_URL_IAM",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
}

/// Exit 0 and prints `ok`, or exit 3 and prints S3's error code.
const ROUND_TRIP: &str = r#"
import os, sys, boto3, botocore
from botocore.config import Config
s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["S3_URL"],
    config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
)
bucket, key = os.environ["S3_BUCKET"], os.environ["S3_KEY"]
body = os.urandom(16).hex().encode()
try:
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert key in listed, listed
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
except botocore.exceptions.ClientError as e:
    print(e.response["Error"]["Code"])
    sys.exit(3)
print("ok")
"#;

/// The lines a spawned server prints on stdout (the dev gateway prints `api-gateway: URL`
/// and more), read on a thread of their own, so that a server that prints nothing fails
/// the test with a message after a deadline instead of hanging it.
pub struct Banner {
    lines: std::sync::mpsc::Receiver<String>,
}

impl Banner {
    /// Starts reading `child`'s piped stdout.
    pub fn new(child: &mut Child) -> Banner {
        let stdout = child.stdout.take().expect("stdout is piped");
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Banner { lines }
    }

    /// The rest of the next line that starts with `prefix`; panics when none comes within
    /// `deadline` or the server closes its stdout first.
    pub fn value(&self, prefix: &str, deadline: Duration) -> String {
        let end = Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_owned();
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    panic!("the server printed no `{prefix}` line within {deadline:?}")
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("the server closed its stdout without printing a `{prefix}` line")
                }
            }
        }
    }
}
