//! A real Keycloak for the `keycloak-tests` tier, from `scripts/keycloak`: started once
//! per test process (a start takes a minute or more on two busy cores) and stopped when
//! the process exits, whether its tests passed or panicked. A process killed outright is
//! covered by the script's watchdog (`KEYCLOAK_TEST_OWNER_PID`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Held by every test that logs in: Keycloak 26.7 with brute-force detection refuses a
/// login ("Invalid user credentials"; its log says `user_temporarily_disabled`) while
/// another for the same user is in flight, even with the right password and no failure
/// counted, so the tests (of every file) take turns.
pub static ONE_LOGIN_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One running Keycloak: its run directory and what `scripts/keycloak up` wrote to its env
/// file (URLs, users, passwords, the client secret). Dropping it runs `down`.
pub struct Keycloak {
    dir: PathBuf,
    env: HashMap<String, String>,
}

/// The process's Keycloak: `None` before the first test asks, the start's failure after a
/// failed start (so that every later test fails at once with the reason, not after a
/// second wait), taken and dropped at exit.
static SHARED: Mutex<Option<Result<std::sync::Arc<Keycloak>, String>>> = Mutex::new(None);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn script(dir: &Path, verb: &str) -> std::process::Output {
    run_script(dir, verb, &[])
}

/// `scripts/keycloak VERB` with its run directory in `dir`, owned by this process (the
/// watchdog stops it if the process dies), with `env` added.
pub fn run_script(dir: &Path, verb: &str, env: &[(&str, &str)]) -> std::process::Output {
    Command::new(repo().join("scripts/keycloak"))
        .arg(verb)
        .env("KEYCLOAK_TEST_DIR", dir)
        .env("KEYCLOAK_TEST_OWNER_PID", std::process::id().to_string())
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/keycloak {verb}: {e}"))
}

/// Stops the shared Keycloak when the test binary exits (statics are never dropped).
extern "C" fn stop_at_exit() {
    let taken = SHARED.lock().map(|mut s| s.take()).unwrap_or(None);
    drop(taken);
}

impl Keycloak {
    /// The process's Keycloak, started by the first caller; panics with the script's
    /// sentence and the log's end when it cannot start.
    pub fn shared() -> std::sync::Arc<Keycloak> {
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if shared.is_none() {
            let started = std::time::Instant::now();
            let result = Keycloak::up().map(std::sync::Arc::new);
            if result.is_ok() {
                eprintln!(
                    "keycloak-tests: Keycloak answered {:.1}s after scripts/keycloak up",
                    started.elapsed().as_secs_f64()
                );
                // SAFETY: registers a plain function with no arguments, as atexit wants.
                unsafe { libc::atexit(stop_at_exit) };
            }
            *shared = Some(result);
        }
        match shared.as_ref().expect("set above") {
            Ok(keycloak) => keycloak.clone(),
            Err(why) => panic!("{why}"),
        }
    }

    fn up() -> Result<Keycloak, String> {
        let dir = repo()
            .join("target/keycloak")
            .join(format!("tests-{}", std::process::id()));
        // A fresh machine's first start also builds the server (about a minute more).
        let out = run_script(&dir, "up", &[("KEYCLOAK_TEST_WAIT", "300")]);
        if !out.status.success() {
            let log = std::fs::read_to_string(dir.join("keycloak.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            script(&dir, "down");
            return Err(format!(
                "{}\nthe end of Keycloak's log:\n{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                tail.join("\n")
            ));
        }
        let text = std::fs::read_to_string(dir.join("env")).map_err(|e| {
            script(&dir, "down");
            format!("scripts/keycloak up wrote no env file: {e}")
        })?;
        let env = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Keycloak { dir, env })
    }

    /// A value from the env file, by its name without the `KEYCLOAK_TEST_` prefix.
    pub fn get(&self, name: &str) -> &str {
        self.env
            .get(&format!("KEYCLOAK_TEST_{name}"))
            .unwrap_or_else(|| panic!("scripts/keycloak wrote no KEYCLOAK_TEST_{name}"))
    }

    /// Its run directory (`KEYCLOAK_TEST_DIR` of `scripts/keycloak`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What `--api-gateway` takes for s3credsfs to use Keycloak's own token URL.
    pub fn url(&self) -> &str {
        self.get("URL")
    }

    /// The realm's token endpoint, as CSM's gateway serves it.
    pub fn token_url(&self) -> &str {
        self.get("TOKEN_URL")
    }
}

impl Drop for Keycloak {
    fn drop(&mut self) {
        let out = script(&self.dir, "down");
        if !out.status.success() {
            eprintln!(
                "scripts/keycloak down failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
}

/// `s3credsfs dev-gateway --keycloak`: the built-in gateway in front of a real Keycloak,
/// doing Istio's and OPA's checks on its tokens; stopped (killed) when dropped.
pub struct KeycloakGateway {
    /// Its `api-gateway:` URL, what `--api-gateway` takes.
    pub api: String,
    _child: super::child::StopOnDrop,
}

impl KeycloakGateway {
    /// Starts the binary on a free loopback port in front of `kc`, with `extra`
    /// arguments (such as `--backend-sts`), and waits (bounded) for its banner.
    pub fn start(kc: &Keycloak, extra: &[&str]) -> KeycloakGateway {
        Self::start_with_env(kc, extra, &[])
    }

    /// [`KeycloakGateway::start`] with variables `env` set (a backend's keys).
    pub fn start_with_env(kc: &Keycloak, extra: &[&str], env: &[(&str, &str)]) -> KeycloakGateway {
        let mut child = super::child::StopOnDrop::kill(
            std::process::Command::new(env!("CARGO_BIN_EXE_s3credsfs"))
                .args(["dev-gateway", "--listen", "127.0.0.1:0", "--keycloak"])
                .arg(format!("{}/keycloak", kc.url()))
                .args(extra)
                .envs(env.iter().copied())
                .env_remove("S3CREDSFS_LOG")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::inherit())
                .spawn()
                .expect("run s3credsfs dev-gateway --keycloak"),
        );
        let banner = super::s3::Banner::new(&mut child);
        let api = banner.value("api-gateway: ", std::time::Duration::from_secs(60));
        KeycloakGateway { api, _child: child }
    }

    /// The realm's token URL through the gateway: CSM's URL on this gateway.
    pub fn token_url(&self) -> String {
        format!(
            "{}/keycloak/realms/shasta/protocol/openid-connect/token",
            self.api
        )
    }
}
