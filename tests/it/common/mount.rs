//! Real FUSE mounts for tests: a gateway on its own runtime, a foreground daemon as a
//! child process, and guards that always unmount, even when the test fails.

use crate::common::{poll_until, wait_for, StopOnDrop};
use s3credsfs::dev::gateway::{Gateway, GatewayConfig, Stats};
use s3credsfs::mountpoint::{self, MountState};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The binary under test, in an environment of its own: nothing but `PATH` is inherited,
/// so a developer's `S3CREDSFS_*` settings, proxies, `CRAY_CREDENTIALS`, `FUSERMOUNT_PATH`
/// or config file (under `HOME` or `XDG_CONFIG_HOME`) never reach it. `HOME` names a
/// directory that does not exist; a test that needs one sets its own temporary `HOME`.
pub fn bin() -> Command {
    let mut cmd = Command::new(crate::common::exe());
    cmd.env_clear()
        .envs(crate::common::clean_env())
        .env("S3CREDSFS_LOG", "debug");
    cmd
}

/// A built-in gateway served by a runtime of its own, so tests can block freely.
pub struct TestGateway {
    pub gw: Gateway,
    runtime: tokio::runtime::Runtime,
}

impl TestGateway {
    /// Starts a gateway with the default accounts and `tweak` applied.
    pub fn start(tweak: impl FnOnce(&mut GatewayConfig)) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut config = GatewayConfig::default();
        tweak(&mut config);
        let gw = runtime.block_on(Gateway::start(config)).unwrap();
        TestGateway { gw, runtime }
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.gw.stats()
    }

    /// Keeps the runtime referenced (it serves the gateway until drop).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }
}

/// A foreground `s3credsfs mount` child on a temporary directory.
pub struct Mounted {
    pub path: PathBuf,
    pub child: StopOnDrop,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// Arguments that log in to `gw` as the default user (password in `$PW`).
pub fn login_args(gw: &TestGateway) -> Vec<String> {
    login_args_for(&gw.gw.base_url())
}

/// Arguments that log in as the default user (password in `$PW`) to the gateway at `base`.
pub fn login_args_for(base: &str) -> Vec<String> {
    [
        "--api-gateway",
        base,
        "--username",
        "dev",
        "--password-env",
        "PW",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Mounted {
    /// Mounts in the foreground with `extra` arguments and waits until it serves.
    pub fn start(gw: &TestGateway, extra: &[&str]) -> Mounted {
        Self::start_with_env(gw, extra, &[])
    }

    /// Like [`Mounted::start`], with extra environment variables for the daemon.
    pub fn start_with_env(gw: &TestGateway, extra: &[&str], env: &[(&str, &str)]) -> Mounted {
        Self::start_at(&gw.gw.base_url(), extra, env)
    }

    /// Mounts against the gateway at `base`, for a test that owns the gateway itself
    /// (to stop and restart it).
    pub fn start_at(base: &str, extra: &[&str], env: &[(&str, &str)]) -> Mounted {
        let mut args = login_args_for(base);
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::spawn(&args, env, None)
    }

    /// Mounts with exactly `args` (the login included) and `env`, and waits until it
    /// serves: for a gateway whose accounts are not the built-in ones (a real Keycloak).
    pub fn start_with_args(args: &[String], env: &[(&str, &str)]) -> Mounted {
        Self::spawn(args, env, None)
    }

    /// [`Mounted::start_configured`] with variables `env` for the daemon (not `PW`, which
    /// holds the built-in gateway's password).
    pub fn start_configured_with_env(
        config: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Mounted {
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Self::spawn(&args, env, Some(config))
    }

    /// Mounts with the config file `config` (written mode 0600 in the mount's temporary
    /// directory) and `extra` arguments, no login flags: the file says it all.
    pub fn start_configured(config: &str, extra: &[&str]) -> Mounted {
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Self::spawn(&args, &[], Some(config))
    }

    /// Mounts with exactly `args` (no login flags added; `$PW` is the built-in gateway's
    /// password, so give another variable) and waits until it serves.
    pub fn start_args(args: &[&str], env: &[(&str, &str)]) -> Mounted {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Self::spawn(&args, env, None)
    }

    fn spawn(args: &[String], env: &[(&str, &str)], config: Option<&str>) -> Mounted {
        let mut mounted = Self::launch(args, env, config);
        mounted.wait_until_serving();
        mounted
    }

    /// Starts the daemon with `args` (no login flags added) and does not wait: for a test
    /// that watches the start itself (systemd's readiness messages).
    pub fn launch(args: &[String], env: &[(&str, &str)], config: Option<&str>) -> Mounted {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds");
        let log = dir.path().join("daemon.log");
        let mut cmd = bin();
        cmd.envs(env.iter().copied())
            .arg("mount")
            .arg(&path)
            .arg("--foreground");
        if let Some(text) = config {
            let file = crate::common::private_file(dir.path(), "config.toml", text);
            cmd.arg("--config").arg(file);
        }
        let child = cmd
            .args(args)
            .env("PW", s3credsfs::dev::gateway::DEFAULT_PASSWORD)
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Mounted {
            path,
            child: StopOnDrop::term(child),
            log,
            _dir: dir,
        }
    }

    fn wait_until_serving(&mut self) {
        wait_for("the mount to serve", Duration::from_secs(30), || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the daemon exited ({status}) before mounting:\n{}",
                    self.log()
                );
            }
            let state = mountpoint::state(&self.path);
            let status = self.path.join("status");
            if state != MountState::Free && status.exists() {
                return Ok(());
            }
            Err(format!(
                "{state:?}, status file: {}; daemon log:\n{}",
                status.exists(),
                self.log()
            ))
        });
    }

    /// The daemon's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A file in the mount.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Reads a file in the mount.
    pub fn read(&self, name: &str) -> std::io::Result<String> {
        std::fs::read_to_string(self.file(name))
    }

    /// The parsed status file.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.read("status").unwrap()).unwrap()
    }

    /// The access key id currently served.
    pub fn access_key(&self) -> String {
        let json: serde_json::Value = serde_json::from_str(&self.read("json").unwrap()).unwrap();
        json["AccessKeyId"].as_str().unwrap().to_string()
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, signal: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits for the daemon to exit and returns its exit status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        wait_for("the daemon to exit", Duration::from_secs(15), || {
            self.child.try_wait().unwrap()
        })
    }
}

/// Unmounts `path` whatever state it is in.
pub fn force_unmount(path: &Path) {
    if mountpoint::state(path) != MountState::Free {
        let _ = mountpoint::lazy_unmount(path);
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.child.stop();
        force_unmount(&self.path);
    }
}

/// A background (daemonized) mount; Drop stops its daemon and unmounts. Made before the
/// mount is started: every process started through [`BackgroundMount::bin`] carries a tag
/// in its environment (which the forked daemon inherits), so Drop finds the daemon by its
/// tag even when its status file never answers (a wedged daemon) or the mount failed.
pub struct BackgroundMount {
    pub path: PathBuf,
    tag: String,
}

/// The environment variable holding a [`BackgroundMount`]'s tag.
const TAG_VAR: &str = "S3CREDSFS_TEST_DAEMON_TAG";

impl BackgroundMount {
    /// A guard for a background mount at `path`; nothing is started yet.
    pub fn new(path: &Path) -> BackgroundMount {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        BackgroundMount {
            path: path.to_path_buf(),
            tag: format!("{}-{n}", std::process::id()),
        }
    }

    /// [`bin`] with this guard's tag.
    pub fn bin(&self) -> Command {
        let mut cmd = bin();
        cmd.env(TAG_VAR, &self.tag);
        cmd
    }

    /// The pids of live processes carrying this guard's tag.
    pub fn tagged(&self) -> Vec<i32> {
        let wanted = format!("{TAG_VAR}={}", self.tag).into_bytes();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return vec![];
        };
        dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == wanted))
            })
            // A zombie has no environment left, so a listed process is alive.
            .collect()
    }
}

impl Drop for BackgroundMount {
    fn drop(&mut self) {
        // Signals first: reading the status file of a wedged daemon would block for ever.
        for pid in self.tagged() {
            // SAFETY: a process this guard started (it carries the guard's tag).
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = poll_until(Duration::from_secs(10), || self.tagged().is_empty());
        for pid in self.tagged() {
            // SAFETY: as above; it ignored SIGTERM for 10 s.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        force_unmount(&self.path);
    }
}
