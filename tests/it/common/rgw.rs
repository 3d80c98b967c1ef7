//! A real Ceph RGW for the `rgw-tests` tier: `scripts/rgw up` once per test process (a
//! cold start takes 15-20 s, far more than any test using it), in a scratch directory
//! under the target directory, and `scripts/rgw down` when the process exits, whether
//! tests passed or panicked. A run that was killed before it could stop its RGW leaves the
//! daemons' pids in that directory; the next run stops them first.
//!
//! [`OnRgw`] is the stack a test uses: `s3credsfs dev-gateway --backend-sts` on that RGW,
//! a mount of that gateway, and a clean client environment. A test that counts the
//! gateway's work (or has no mount) runs the in-process gateway on [`Rgw::backend`].

use super::clients::{config_with_tampered_process, tamper_ini, ClientEnv};
use super::mount::{bin, Mounted};
use super::s3::Banner;
use super::{poll_until, StopOnDrop};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How far the second radosgw's clock runs ahead (`S3CREDSFS_RGW_AHEAD`): credentials
/// from cray-sts's one-hour session are past their expiry there once they are 30 s old.
/// RGW refuses requests more than 15 minutes off its clock, so its clients run as far
/// ahead (libfaketime, `Rgw::faketime_lib`).
pub const AHEAD_SECONDS: i64 = 3570;

/// How long `scripts/rgw up` may take: a cold start is 15-20 s on a loaded machine; the
/// first run also installs the Debian packages (about 70 MB).
const UP_DEADLINE: Duration = Duration::from_secs(900);

/// The running RGW: its S3 and STS endpoint, and what cray-sts holds to call `AssumeRole`.
pub struct Rgw {
    /// `http://127.0.0.1:PORT`: S3 and STS on one port, as CSM's `rgw-vip` serves them.
    pub endpoint: String,
    /// Access key of the service user whose keys cray-sts holds.
    pub access_key: String,
    /// That user's secret key.
    pub secret_key: String,
    /// The role every caller gets (trust policy: the service user; policy: `s3:*`).
    pub role_arn: String,
    /// A second radosgw on the same cluster whose clock runs [`AHEAD_SECONDS`] ahead
    /// (libfaketime): the honest way to see what RGW does with credentials past their
    /// real expiry without waiting the hour cray-sts's credentials live.
    pub ahead_endpoint: String,
    /// The libfaketime that runs it ahead, for its clients (RGW refuses a request signed
    /// more than 15 minutes off its own clock).
    pub faketime_lib: String,
}

impl Rgw {
    /// This RGW as the in-process gateway's backend (`TestGateway`), for tests that count
    /// its grants or drive `s3credsfs fetch` and `exec` without a mount.
    pub fn backend(&self) -> s3credsfs::dev::gateway::BackendSts {
        s3credsfs::dev::gateway::BackendSts::new(
            &self.endpoint,
            &self.access_key,
            &self.secret_key,
            &self.role_arn,
        )
    }
}

/// `aws "$@"`, and when it fails, the `<Code>` of the S3 error it received. AWS CLI 1.x
/// cannot show RGW 16.2's errors itself: their `<Message>` is empty, and its S3 error
/// hook crashes on that with "argument of type 'NoneType' is not iterable". The code is
/// taken from `--debug`'s copy of the reply; nothing else of that log is printed.
pub const AWS_ERROR_CODE: &str = r#"log=$(aws --debug "$@" 2>&1 >/dev/null) && exit 0
grep -o '<Code>[A-Za-z]*</Code>' <<<"$log" | sort -u
exit 1"#;

/// What [`AWS_ERROR_CODE`] prints for a request signed with an altered secret.
pub const AWS_BAD_SIGNATURE: &str = "<Code>SignatureDoesNotMatch</Code>";

/// Creates `bucket` with boto3 signing with the credentials `credentials` and `config`
/// give it (RGW has no bucket until a client makes one).
pub fn create_bucket(env: &ClientEnv, credentials: &Path, config: &Path, bucket: &str) {
    let python = super::s3::on_path("python3").expect("python3 on PATH");
    env.run(
        env.command(python)
            .args(["-c", CREATE_BUCKET])
            .env("AWS_SHARED_CREDENTIALS_FILE", credentials)
            .env("AWS_CONFIG_FILE", config)
            .env("S3_BUCKET", bucket),
    )
    .ok();
}

const CREATE_BUCKET: &str = r#"
import os, boto3
boto3.Session().client("s3").create_bucket(Bucket=os.environ["S3_BUCKET"])
"#;

/// The one RGW of this test process, started on first use. Panics with the script's own
/// sentence (a missing package, a busy port, a daemon that died, and its log) when it
/// cannot start; every later test then fails with the same sentence at once.
pub fn rgw() -> &'static Rgw {
    static RGW: OnceLock<Result<Rgw, String>> = OnceLock::new();
    match RGW.get_or_init(start) {
        Ok(rgw) => rgw,
        Err(why) => panic!("{why}"),
    }
}

/// The scratch directory of this tier's RGW (`scripts/rgw`'s `S3CREDSFS_RGW_DIR`).
fn scratch_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("rgw-tests")
}

/// `scripts/rgw ACTION` on [`scratch_dir`], with nothing of the developer's environment
/// but `PATH`.
fn script(action: &str) -> Command {
    let mut cmd = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/rgw"));
    cmd.arg(action)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("S3CREDSFS_RGW_DIR", scratch_dir())
        .env("S3CREDSFS_RGW_AHEAD", AHEAD_SECONDS.to_string())
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(".."),
        )
        .stdin(Stdio::null());
    cmd
}

/// Runs at process exit (`exit` runs it after the harness reports, also when tests
/// failed): stops exactly the daemons `up` recorded. A static is never dropped, so this
/// is the process-wide guard's `Drop`.
extern "C" fn stop_at_exit() {
    let _ = script("down")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status();
}

fn start() -> Result<Rgw, String> {
    // What a killed earlier run left running, by the pids it recorded; nothing else.
    let _ = script("down").stdout(Stdio::null()).status();
    // SAFETY: registers a plain function with no captured state; it runs once at exit.
    if unsafe { libc::atexit(stop_at_exit) } != 0 {
        return Err("cannot register scripts/rgw down to run at exit".to_owned());
    }
    let log = tempfile::NamedTempFile::new().map_err(|e| format!("temporary file: {e}"))?;
    // One open file for both streams: they share its offset, so neither overwrites the other.
    let out = log.reopen().map_err(|e| format!("temporary file: {e}"))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("temporary file: {e}"))?;
    let began = Instant::now();
    let mut child = script("up")
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run scripts/rgw up: {e}"))?;
    // `Some` once it has ended (or `try_wait` failed).
    let Ok(status) = poll_until(UP_DEADLINE, || child.try_wait().transpose()) else {
        // SIGTERM: the script's trap stops what it started.
        // SAFETY: signalling our own child, not yet reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
        return Err(format!(
            "scripts/rgw up did not finish within {UP_DEADLINE:?}"
        ));
    };
    let status = status.map_err(|e| format!("cannot wait for scripts/rgw up: {e}"))?;
    let printed = std::fs::read_to_string(log.path()).unwrap_or_default();
    if !status.success() {
        // The daemons' logs go with the scratch directory at exit: their ends go here.
        return Err(format!(
            "scripts/rgw up failed ({status}): {}{}",
            printed.trim(),
            log_tails(&scratch_dir().join("log"))
        ));
    }
    eprintln!(
        "rgw-tests: scripts/rgw up took {:.1} s: {}",
        began.elapsed().as_secs_f64(),
        printed
            .lines()
            .find(|l| l.contains(" up in "))
            .unwrap_or("")
    );
    read_env_file(&scratch_dir().join("env"))
}

/// The last lines of each daemon log in `dir`, for a failure message.
fn log_tails(dir: &Path) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    files.sort();
    let mut text = String::new();
    for file in files {
        let content = std::fs::read_to_string(&file).unwrap_or_default();
        let lines: Vec<&str> = content.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        text.push_str(&format!("\n--- {} (end):\n{tail}", file.display()));
    }
    text
}

/// The `export NAME=VALUE` lines `scripts/rgw up` wrote.
fn read_env_file(path: &Path) -> Result<Rgw, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .map(str::to_owned)
            .ok_or_else(|| format!("{} has no {name}", path.display()))
    };
    Ok(Rgw {
        endpoint: value("RGW_ENDPOINT")?,
        access_key: value("S3CREDSFS_BACKEND_ACCESS_KEY")?,
        secret_key: value("S3CREDSFS_BACKEND_SECRET_KEY")?,
        role_arn: value("RGW_ROLE_ARN")?,
        ahead_endpoint: value("RGW_AHEAD_ENDPOINT")?,
        faketime_lib: value("RGW_FAKETIME_LIB")?,
    })
}

/// `s3credsfs dev-gateway --backend-sts RGW`: the emulated CSM gateway minting on RGW.
pub struct DevGateway {
    /// Its `api-gateway:` URL.
    pub api: String,
    _child: StopOnDrop,
}

impl DevGateway {
    /// Starts the binary on a free loopback port with RGW as its backend (the service
    /// user's keys in the environment, as the flag's help advises) and waits for its
    /// banner, which must name RGW as where it mints and as the endpoint it hands out,
    /// and never show the service user's secret.
    pub fn start(rgw: &Rgw, extra: &[&str]) -> DevGateway {
        let mut child = StopOnDrop::kill(
            bin()
                .args(["dev-gateway", "--listen", "127.0.0.1:0"])
                .args(extra)
                .args(["--backend-sts", &rgw.endpoint, "--role-arn", &rgw.role_arn])
                .env("S3CREDSFS_BACKEND_ACCESS_KEY", &rgw.access_key)
                .env("S3CREDSFS_BACKEND_SECRET_KEY", &rgw.secret_key)
                .env_remove("S3CREDSFS_LOG")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("run s3credsfs dev-gateway"),
        );
        let banner = Banner::new(&mut child);
        let deadline = Duration::from_secs(30);
        let api = banner.value("api-gateway: ", deadline);
        let minted_by = banner.value("credentials: ", deadline);
        assert!(
            minted_by.starts_with(&format!("minted by AssumeRole at {} ", rgw.endpoint))
                && !minted_by.contains(&rgw.secret_key),
            "{minted_by}"
        );
        assert_eq!(banner.value("endpoint-url: ", deadline), rgw.endpoint);
        DevGateway { api, _child: child }
    }
}

/// RGW, the gateway minting on it, a mount of that gateway and a clean client
/// environment. Drops in field order: unmount, stop the gateway, remove `HOME`.
pub struct OnRgw {
    pub mount: Mounted,
    /// `None` once a test stopped it.
    pub gateway: Option<DevGateway>,
    pub env: ClientEnv,
    pub rgw: &'static Rgw,
}

impl OnRgw {
    /// The whole stack with default settings.
    pub fn start() -> OnRgw {
        Self::start_with(&[], &[])
    }

    /// The whole stack, with extra `dev-gateway` and `mount` arguments.
    pub fn start_with(gateway_args: &[&str], mount_args: &[&str]) -> OnRgw {
        let rgw = rgw();
        let gateway = DevGateway::start(rgw, gateway_args);
        let mount = Mounted::start_at(&gateway.api, mount_args, &[]);
        let t = OnRgw {
            mount,
            gateway: Some(gateway),
            env: ClientEnv::new(),
            rgw,
        };
        let json: serde_json::Value = serde_json::from_str(&t.read("json")).expect("json");
        assert_eq!(
            json["EndpointURL"], t.rgw.endpoint,
            "the mount serves RGW as the S3 endpoint"
        );
        t
    }

    /// A file in the mount.
    pub fn file(&self, name: &str) -> PathBuf {
        self.mount.file(name)
    }

    /// A mounted file's content.
    pub fn read(&self, name: &str) -> String {
        self.mount
            .read(name)
            .unwrap_or_else(|e| panic!("read {name} from the mount: {e}"))
    }

    /// Creates `bucket` with the mounted credentials and returns its name.
    pub fn bucket(&self, bucket: &str) -> String {
        create_bucket(
            &self.env,
            &self.file("credentials"),
            &self.file("config"),
            bucket,
        );
        bucket.to_owned()
    }

    /// A copy of the mounted `config` whose `credential_process` reads a copy of `json`
    /// with its secret altered: see [`config_with_tampered_process`].
    pub fn config_with_tampered_process(&self) -> PathBuf {
        config_with_tampered_process(&self.env, &self.mount)
    }

    /// A copy of the mounted file `name` with the value of its `key = ` line altered.
    pub fn tampered(&self, name: &str, key: &str) -> PathBuf {
        self.env.write(
            &format!("{name}-tampered"),
            &tamper_ini(&self.read(name), key),
        )
    }
}
