//! Running the S3 client tools (`aws`, boto3, s3cmd, rclone, curl) as a user with
//! nothing configured would: a clean environment, tampering helpers, the round trips and
//! the long-running program's report, for the `rgw-tests` tier (whose stack is
//! [`super::rgw::OnRgw`]).

use super::s3::*;
use super::{wait_for, StopOnDrop};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
/// How long one client command may run before the test gives up on it (they take a
/// second or two; a hang must fail the test, not stall the suite).
const CLIENT_DEADLINE: Duration = Duration::from_secs(60);

/// The directory `tests/s3/loopback_only` whose `sitecustomize.py` every Python client
/// run through [`ClientEnv`] imports.
fn loopback_guard() -> PathBuf {
    script("loopback_only")
}

/// Panics with the way out unless `tool` is on `PATH`.
pub fn require_tool(tool: &str) {
    assert!(
        on_path(tool).is_some(),
        "{tool} is not on PATH: run the tests with scripts/test, which installs the AWS CLI, \
         boto3 and s3cmd into target/test-venv and rclone, jq, curl, promtool (package \
         prometheus) and man (package man-db) from Debian"
    );
}

/// A clean place to run S3 client tools, as a user with nothing configured would: an
/// empty environment but `PATH`, `HOME` in a temporary directory (so no `~/.aws`,
/// `~/.s3cfg` or rclone config of the host is read), no proxy for loopback, and the
/// loopback-only connection guard for Python clients.
pub struct ClientEnv {
    dir: tempfile::TempDir,
    home: PathBuf,
    connect_log: PathBuf,
}

/// What one client command did.
pub struct Ran {
    /// The command line, for messages.
    pub what: String,
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Panics with everything the command printed unless it succeeded.
    pub fn ok(self) -> Ran {
        assert!(
            self.status.success(),
            "`{}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the command failed and said `error` (S3's error code).
    pub fn refused(self, error: &str) -> Ran {
        assert!(
            !self.status.success() && (self.stderr.contains(error) || self.stdout.contains(error)),
            "`{}` should have been refused with {error} ({}):\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// The lines of stderr that start with `WARNING`.
    pub fn warnings(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.trim_start().starts_with("WARNING"))
            .collect()
    }
}

impl Default for ClientEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientEnv {
    pub fn new() -> ClientEnv {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let home = dir.path().join("home");
        std::fs::create_dir(&home).expect("create HOME");
        let connect_log = dir.path().join("blocked-connections");
        ClientEnv {
            dir,
            home,
            connect_log,
        }
    }

    /// The temporary `HOME`.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Writes `content` to `name` in `HOME`, readable by its owner only, and returns the
    /// path.
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.home.join(name);
        std::fs::write(&path, content).unwrap_or_else(|e| panic!("write {name}: {e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// Writes an executable shell script `name` in `HOME` and returns its path.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.write(name, &format!("#!/bin/sh\n{body}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
        path
    }

    /// `program` in this environment, in `HOME`, with stdin from /dev/null.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("LC_ALL", "C.UTF-8")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .env("PYTHONPATH", loopback_guard())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("S3CREDSFS_TEST_CONNECT_LOG", &self.connect_log)
            .current_dir(&self.home)
            .stdin(Stdio::null());
        cmd
    }

    /// `bash -c SCRIPT NAME ARGS...` in this environment (`$0` is `name`, `$@` the args
    /// appended later).
    pub fn bash(&self, script: &str, name: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = self.command("bash");
        cmd.arg("-c").arg(script).arg(name);
        cmd
    }

    /// Runs `cmd` to completion (at most [`CLIENT_DEADLINE`]) and keeps what it printed.
    pub fn run(&self, cmd: &mut Command) -> Ran {
        let what = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let stdout = tempfile::tempfile_in(self.dir.path()).unwrap();
        let stderr = tempfile::tempfile_in(self.dir.path()).unwrap();
        let mut child = StopOnDrop::kill(
            cmd.stdout(stdout.try_clone().unwrap())
                .stderr(stderr.try_clone().unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run `{what}`: {e}")),
        );
        let status = wait_for(&format!("`{what}` to finish"), CLIENT_DEADLINE, || {
            child.try_wait().expect("wait for a client")
        });
        let read = |mut f: std::fs::File| {
            use std::io::Seek;
            let mut text = String::new();
            f.rewind().unwrap();
            f.read_to_string(&mut text).unwrap();
            text
        };
        Ran {
            what,
            status,
            stdout: read(stdout),
            stderr: read(stderr),
        }
    }

    /// Every connection the guard refused so far, as `host:port` (it lets Python clients
    /// reach loopback only; the instance metadata service would show as
    /// `169.254.169.254:80`).
    pub fn blocked_connections(&self) -> Vec<String> {
        std::fs::read_to_string(&self.connect_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Panics unless no client has tried to leave loopback.
    pub fn assert_stayed_on_loopback(&self) {
        let blocked = self.blocked_connections();
        assert!(
            blocked.is_empty(),
            "a client tried to connect beyond loopback: {blocked:?}"
        );
    }
}

/// `s` with its last character changed, keeping the alphabet: a tampered secret.
pub fn tamper(s: &str) -> String {
    let mut out: Vec<char> = s.chars().collect();
    let last = out.last_mut().expect("non-empty");
    *last = if *last == 'A' { 'B' } else { 'A' };
    out.into_iter().collect()
}

/// `text` (an INI-style file) with the value of its `key = VALUE` line tampered; panics
/// when there is no such line.
pub fn tamper_ini(text: &str, key: &str) -> String {
    let prefix = format!("{key} = ");
    let mut found = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| match line.strip_prefix(&prefix) {
            Some(value) => {
                found = true;
                format!("{prefix}{}", tamper(value))
            }
            None => line.to_owned(),
        })
        .collect();
    assert!(found, "no `{key} = ` line in:\n{text}");
    lines.join("\n") + "\n"
}

/// `json` (credential_process output) with `SecretAccessKey` tampered.
pub fn tamper_json(json: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(json).expect("JSON credentials");
    let secret = value["SecretAccessKey"].as_str().expect("SecretAccessKey");
    value["SecretAccessKey"] = tamper(secret).into();
    value.to_string()
}

/// Object content nobody else writes: tells this run's object from any other.
pub fn unique_content(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag} {} {nanos}\n", std::process::id())
}

/// With the AWS CLI that `aws()` builds (its credentials and endpoint already set up):
/// copies a file with fresh content to `s3://BUCKET/KEY`, lists the bucket (with the
/// `/` delimiter, as `aws s3 ls s3://BUCKET/` does) and finds it, and reads it back.
pub fn aws_round_trip(env: &ClientEnv, bucket: &str, key: &str, aws: impl Fn() -> Command) {
    let content = unique_content(key);
    let local = env.write(&format!("upload-{}", key.replace('/', "-")), &content);
    env.run(
        aws()
            .args(["s3", "cp"])
            .arg(&local)
            .arg(format!("s3://{bucket}/{key}")),
    )
    .ok();
    let listed = env
        .run(aws().args(["s3", "ls", &format!("s3://{bucket}/")]))
        .ok();
    let (dir, name) = key.rsplit_once('/').map_or(("", key), |(d, n)| (d, n));
    let shown = if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/")
    };
    assert!(
        listed
            .stdout
            .lines()
            .any(|l| l.ends_with(&format!(" {shown}"))),
        "`aws s3 ls` does not show {shown}:\n{}",
        listed.stdout
    );
    let read = env
        .run(aws().args(["s3", "cp", &format!("s3://{bucket}/{key}"), "-"]))
        .ok();
    assert_eq!(read.stdout, content, "the object read back");
}

/// With the AWS CLI that `aws()` builds: listing the bucket is refused with `error`.
pub fn aws_refused(env: &ClientEnv, bucket: &str, error: &str, aws: impl Fn() -> Command) {
    env.run(aws().args(["s3", "ls", &format!("s3://{bucket}/")]))
        .refused(error);
}

/// How many different access keys the long-running boto3 process must sign with before
/// it stops: three renewals, so at least three lifetimes of calls.
pub const LONG_RUNNING_KEYS: usize = 4;

/// `tests/s3/long_running.py`, run by `cmd` (a `python` or a command that starts one):
/// one boto3 session calling `bucket` until it has signed with [`LONG_RUNNING_KEYS`]
/// keys or `give_up` has passed.
pub fn long_running<'a>(cmd: &'a mut Command, bucket: &str, give_up: Duration) -> &'a mut Command {
    cmd.env("S3_BUCKET", bucket)
        .env("WANTED_KEYS", LONG_RUNNING_KEYS.to_string())
        .env("GIVE_UP_SECONDS", give_up.as_secs().to_string())
}

/// The path of `tests/s3/long_running.py`, for a command line.
pub fn long_running_script() -> PathBuf {
    script("long_running.py")
}

/// What the long-running process reported, checked: boto3 said nothing on stderr, took
/// its credentials by `method`, and signed with at least [`LONG_RUNNING_KEYS`] keys, each
/// replaced for good (renewals, not flapping).
pub struct LongRun {
    /// The access key in use after each call, in order.
    pub keys: Vec<String>,
    /// The keys in order of first use.
    pub distinct: Vec<String>,
    /// The whole report (`calls`, `seconds`, ...).
    pub report: serde_json::Value,
}

impl LongRun {
    /// Reads and checks the report of `ran`.
    pub fn check(ran: &Ran, method: &str) -> LongRun {
        assert!(
            ran.stderr.trim().is_empty(),
            "botocore complained:\n{}",
            ran.stderr
        );
        let report: serde_json::Value = serde_json::from_str(&ran.stdout).expect("the report");
        assert_eq!(report["method"], method, "{report}");
        let keys: Vec<String> = report["keys"]
            .as_array()
            .expect("the report's keys")
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        let what = format!(
            "the process ({} s, {} calls)",
            report["seconds"], report["calls"]
        );
        let distinct = renewed(&what, &keys);
        LongRun {
            keys,
            distinct,
            report,
        }
    }
}

/// The keys in order of first use, after panicking unless `what` (a long-running
/// program) signed with at least [`LONG_RUNNING_KEYS`] of them, each replaced for good:
/// renewals, not flapping. `keys` is the key of each call, in order.
pub fn renewed(what: &str, keys: &[String]) -> Vec<String> {
    let mut distinct = keys.to_vec();
    distinct.dedup();
    assert!(
        distinct.len() >= LONG_RUNNING_KEYS,
        "{what} signed with {} different keys: {distinct:?}",
        distinct.len()
    );
    let mut sorted = distinct.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        distinct.len(),
        "{what}: a key came back: {keys:?}"
    );
    distinct
}

/// A copy of `mount`'s `config`, written in `env`'s `HOME`, whose `credential_process`
/// reads a copy of `json` with its secret altered: a client it lets sign must be refused,
/// which shows its keys came through `credential_process`.
pub fn config_with_tampered_process(env: &ClientEnv, mount: &super::mount::Mounted) -> PathBuf {
    let read = |name: &str| {
        mount
            .read(name)
            .unwrap_or_else(|e| panic!("read {name} from the mount: {e}"))
    };
    let bad_json = env.write("json-tampered", &tamper_json(&read("json")));
    let served = read("config");
    let process = format!(
        "credential_process = cat {}\n",
        mount.file("json").display()
    );
    assert!(served.contains(&process), "{served}");
    env.write(
        "config-tampered",
        &served.replace(
            &process,
            &format!("credential_process = cat {}\n", bad_json.display()),
        ),
    )
}

/// s3cmd the way docs/clients.md says: the session token on the command line too, read from
/// the same file just before s3cmd reads it. (s3cmd 2.4 asks the instance metadata
/// service for a role before every request unless the token comes from the command line
/// or the environment; see `plain_s3cmd_looks_for_an_instance_role_first`.)
pub const S3CMD: &str =
    r#"exec s3cmd -c "$0" --access_token="$(sed -n 's/^access_token = //p' "$0")" "$@""#;

/// The jq + curl recipe of docs/clients.md, with the mounted `json` as `$0`: one read of
/// the file (so the three values belong together) into shell variables, then `s3curl`
/// signs with curl's own SigV4, the secrets passed on stdin (`-K -`), not on the command line.
pub const JQ_CURL: &str = r#"set -eu
eval "$(jq -r '@sh "AWS_ACCESS_KEY_ID=\(.AccessKeyId) AWS_SECRET_ACCESS_KEY=\(.SecretAccessKey) AWS_SESSION_TOKEN=\(.SessionToken) S3_URL=\(.EndpointURL)"' "$0")"
s3curl() {
  curl -sS --fail-with-body --aws-sigv4 aws:amz:us-east-1:s3 \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -K - "$@" <<EOF
user = "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"
header = "x-amz-security-token: $AWS_SESSION_TOKEN"
EOF
}
"#;

/// Altering the secret after reading it.
pub const TAMPER_SECRET: &str = r#"s=$AWS_SECRET_ACCESS_KEY
case $s in *A) t=B ;; *) t=A ;; esac
AWS_SECRET_ACCESS_KEY="${s%?}$t"
"#;

/// Then: `s3curl [CURL FLAGS...] "$S3_URL/PATH"`, with PATH the first argument.
pub const REQUEST: &str = r#"s3curl "${@:2}" "$S3_URL/$1""#;
