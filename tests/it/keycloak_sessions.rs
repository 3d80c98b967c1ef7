//! Real mounts through `dev-gateway --keycloak` in front of a real Keycloak, while
//! Keycloak's session ends under them. The client `shasta-short` of the test realm gives
//! 10 s access tokens and 20 s refresh tokens (client session idle), so that what takes
//! minutes on CSM takes seconds here; the gateway's STS hands out credentials of a few
//! seconds, which the mount renews at half their life, each time with a fresh JWT.
//! Keycloak's own event log (`LOGIN` for each password grant, `REFRESH_TOKEN` for each
//! refresh grant, per user) counts what the mount asked for. Each test has a user of its
//! own, so the counts are its own.

use crate::common::keycloak::{Keycloak, KeycloakGateway};
use crate::common::mount::Mounted;
use crate::common::wait_for_async;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a wait for Keycloak's events may take: several renewals, on two busy cores.
const DEADLINE: Duration = Duration::from_secs(90);

/// Mounts through `gw` as `user` (password from the env file) with client `shasta-short`.
fn mount(kc: &Keycloak, gw: &KeycloakGateway, user: &str, password: &str) -> Mounted {
    mount_as_client(gw, user, password, kc.get("SHORT_CLIENT_ID"))
}

/// Mounts through `gw` as `user` with the public client `client`.
fn mount_as_client(gw: &KeycloakGateway, user: &str, password: &str, client: &str) -> Mounted {
    let args: Vec<String> = [
        "--api-gateway",
        &gw.api,
        "--username",
        user,
        "--password-env",
        "KCPW",
        "--client-id",
        client,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Mounted::start_with_args(&args, &[("KCPW", password), ("S3CREDSFS_LOG", "info")])
}

/// A reader of the mount's `json` every 50 ms until stopped: every read must give
/// credentials that have not expired.
struct Reader {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<Vec<String>>,
}

impl Reader {
    fn start(json: PathBuf) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let (flag, count) = (stop.clone(), reads.clone());
        let thread = std::thread::spawn(move || {
            let mut errors = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Err(e) = read_valid(&json) {
                    errors.push(e);
                }
                count.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
            errors
        });
        Reader {
            stop,
            reads,
            thread,
        }
    }

    /// Stops it; the reads that failed (their reasons, never the credentials).
    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let errors = self.thread.join().expect("the reader panicked");
        (self.reads.load(Ordering::Relaxed), errors)
    }
}

fn read_valid(json: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(json).map_err(|e| format!("read: {e}"))?;
    let creds: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let expiration = creds["Expiration"].as_str().ok_or("no Expiration")?;
    let expiration = chrono::DateTime::parse_from_rfc3339(expiration)
        .map_err(|e| format!("Expiration {expiration}: {e}"))?;
    if expiration <= chrono::Utc::now() {
        return Err(format!("served expired credentials ({expiration})"));
    }
    Ok(())
}

/// Waits until Keycloak has recorded at least `count` events of `kind` for `user`.
async fn events_reach(kc: &Keycloak, user: &str, kind: &str, count: usize) -> usize {
    wait_for_async(
        &format!("{count} {kind} events of {user}"),
        DEADLINE,
        async || {
            // Each look logs the server admin in: not every 20 ms.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let seen = kc.events(user, kind).await;
            if seen >= count {
                Ok(seen)
            } else {
                Err(format!("{seen} so far"))
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mount_refreshes_its_login_and_logs_in_again_by_itself_when_its_sessions_are_revoked() {
    let kc = Keycloak::shared();
    let (user, password) = (kc.get("MOUNTED_USER"), kc.get("MOUNTED_PASSWORD"));
    let started = Instant::now();
    // Credentials of 16 s, renewed every 8 s: each renewal finds the 10 s access token
    // past its margin (a quarter of its life) and the 20 s refresh token alive.
    let gw = KeycloakGateway::start(&kc, &["--lifetime", "16s"]);
    let mounted = mount(&kc, &gw, user, password);
    let reader = Reader::start(mounted.file("json"));
    events_reach(&kc, user, "REFRESH_TOKEN", 3).await;
    assert_eq!(
        kc.events(user, "LOGIN").await,
        1,
        "the mount sent the password again while its session lived:\n{}",
        mounted.log()
    );
    // An administrator ends the user's sessions: the next refresh grant is refused
    // ("Session not active") and the mount logs in with the password by itself.
    kc.log_out_everywhere(user).await;
    events_reach(&kc, user, "LOGIN", 2).await;
    let refreshes = kc.events(user, "REFRESH_TOKEN").await;
    // ...and goes on refreshing the new session, not logging in.
    events_reach(&kc, user, "REFRESH_TOKEN", refreshes + 1).await;
    assert_eq!(kc.events(user, "LOGIN").await, 2, "{}", mounted.log());
    let (reads, errors) = reader.finish();
    assert!(
        errors.is_empty(),
        "readers saw {errors:?}\n{}",
        mounted.log()
    );
    let log = mounted.log();
    assert!(
        log.contains("refresh token refused; logging in again"),
        "{log}"
    );
    assert!(!log.contains(password));
    eprintln!(
        "keycloak-tests: revoked sessions: {reads} reads, none failed, in {:.0?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mount_whose_session_went_idle_logs_in_again_by_itself() {
    let kc = Keycloak::shared();
    let (user, password) = (kc.get("IDLE_USER"), kc.get("IDLE_PASSWORD"));
    let started = Instant::now();
    // Credentials of 50 s, renewed every 25 s: more than the 20 s a refresh token of
    // `shasta-short` lives unused, so every renewal finds the session idle too long.
    let gw = KeycloakGateway::start(&kc, &["--lifetime", "50s"]);
    let mounted = mount(&kc, &gw, user, password);
    let reader = Reader::start(mounted.file("json"));
    events_reach(&kc, user, "LOGIN", 2).await;
    let (reads, errors) = reader.finish();
    assert!(
        errors.is_empty(),
        "readers saw {errors:?}\n{}",
        mounted.log()
    );
    // Keycloak said how long the refresh token lives (`refresh_expires_in` 20): the mount
    // knew it had gone with the idle session and logged in without sending it.
    assert_eq!(kc.events(user, "REFRESH_TOKEN").await, 0);
    assert_eq!(kc.events(user, "REFRESH_TOKEN_ERROR").await, 0);
    let log = mounted.log();
    assert!(!log.contains("rejected"), "{log}");
    assert!(!log.contains(password));
    eprintln!(
        "keycloak-tests: idle session: {reads} reads, none failed, in {:.0?}",
        started.elapsed()
    );
}

/// Keycloak restarted under a running mount. It is a Keycloak of the test's own, since a
/// restart would interrupt every other test. Keycloak 26 keeps sessions in its database
/// (persistent user sessions; measured: a refresh token from before a restart is honoured
/// after it), so the mount's next renewal refreshes the same session: the password is not
/// sent again, and readers see only valid credentials throughout.
#[tokio::test(flavor = "multi_thread")]
async fn a_mount_rides_out_a_keycloak_restart() {
    let kc = Keycloak::own("restart").await;
    let (user, password) = (kc.get("MOUNTED_USER"), kc.get("MOUNTED_PASSWORD"));
    let started = Instant::now();
    // Client `shasta`: 60 s tokens, refresh tokens idle 120 s (usable for 90). Credentials
    // of 120 s are renewed at 60 s, after the restart unless it takes a minute, and with
    // the refresh token unless it takes 90 s; until then readers are served the first.
    let gw = KeycloakGateway::start(&kc, &["--lifetime", "120s"]);
    let mounted = mount_as_client(&gw, user, password, "shasta");
    let reader = Reader::start(mounted.file("json"));
    let restarting = Instant::now();
    kc.restart().await;
    let restart_took = restarting.elapsed();
    events_reach(&kc, user, "REFRESH_TOKEN", 1).await;
    assert_eq!(
        kc.events(user, "LOGIN").await,
        1,
        "the restart ended the session:\n{}",
        mounted.log()
    );
    let (reads, errors) = reader.finish();
    assert!(
        errors.is_empty(),
        "readers saw {errors:?}\n{}",
        mounted.log()
    );
    assert!(!mounted.log().contains(password));
    eprintln!(
        "keycloak-tests: Keycloak restart: {:.0?} down, {reads} reads, none failed, in {:.0?}",
        restart_took,
        started.elapsed()
    );
}

/// A mount whose default profile works (admin-client's client credentials) and whose
/// other profile has a wrong password stays up; that profile's password is sent once
/// (and tried once more, as a refusal a concurrent login gets) and then never again while
/// the mount runs: it only looks every 30 s whether its source gives another password.
/// Keycloak's brute-force record stays below the threshold, and the right password still
/// works afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn a_mounts_profile_with_a_wrong_password_left_running_never_locks_the_account() {
    let kc = Keycloak::shared();
    let user = kc.get("LEFTRUNNING_USER");
    let threshold = kc.admin_get("").await["failureFactor"]
        .as_u64()
        .expect("failureFactor");
    let gw = KeycloakGateway::start(&kc, &[]);
    let config = format!(
        "api-gateway = \"{}\"\ndefault-profile = \"good\"\n\n\
         [profiles.good]\nclient-id = \"{}\"\nclient-secret-env = \"CS\"\n\n\
         [profiles.typo]\nusername = \"{user}\"\npassword-env = \"KCPW\"\n",
        gw.api,
        kc.get("CLIENT_ID")
    );
    let wrong = "not-the-password";
    let env = [
        ("CS", kc.get("CLIENT_SECRET")),
        ("KCPW", wrong),
        ("S3CREDSFS_LOG", "info"),
    ];
    let mounted = Mounted::start_configured_with_env(&config, &[], &env);
    let started = Instant::now();
    // Left running through two of its looks at the password, watched all along.
    let left_running = 2 * s3credsfs::cache::REFUSED_RECHECK + Duration::from_secs(5);
    while started.elapsed() < left_running {
        let record = kc.brute_force(user).await;
        assert_eq!(record["disabled"], false, "locked: {record}");
        let failures = record["numFailures"].as_u64().unwrap_or(u64::MAX);
        assert!(failures <= 2 && failures < threshold, "{record}");
        assert!(
            read_valid(&mounted.file("json")).is_ok(),
            "{}",
            mounted.log()
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let record = kc.brute_force(user).await;
    assert_eq!(record["numFailures"], 2, "{record}");
    let log = mounted.log();
    assert!(!log.contains(wrong));
    assert_eq!(
        log.matches("Keycloak refused the login; not trying again")
            .count(),
        1,
        "{log}"
    );
    // The account still works, through the gateway, with the right password.
    let password = kc.get("LEFTRUNNING_PASSWORD");
    let args = ["--username", user, "--password-env", "PW"];
    let out = crate::keycloak_gateway::fetch_through(&gw, &args, &[("PW", password)]).await;
    crate::keycloak_gateway::fetched_credentials(&out, &[password]);
    eprintln!(
        "keycloak-tests: left running: {record} after {:.0?}",
        started.elapsed()
    );
}
