//! Keycloak's brute-force detection against the product (realm `shasta` has it on:
//! lockout after `failureFactor` 5 failures, and at once for two failures within a second):
//! a mount restarted again and again with a wrong password must not lock the account, and
//! logins of one user at once, which Keycloak 26.7 refuses with the reply of a wrong
//! password, must all get their token. As in `keycloak`, `--api-gateway` names Keycloak
//! itself, so a login that worked ends at the STS step (Keycloak has no STS).

use crate::common::keycloak::{Keycloak, ONE_LOGIN_AT_A_TIME};
use crate::common::text;
use crate::fetch_cli::bin;
use crate::keycloak::{failure, fetch, login};
use std::process::Output;

/// The sentence of a login that got its token: the STS step (Keycloak has no STS) failed.
fn past_the_token_step(kc: &Keycloak) -> String {
    format!(
        "s3credsfs: error: {}/apis/sts/token answered HTTP 404; check --sts-url and --api-gateway",
        kc.url()
    )
}

/// Runs `s3credsfs mount --foreground` once with `args` and `env`, as a supervisor's
/// `ExecStart=` would, with `home` as its `HOME` (where it remembers refusals).
async fn mount_once(home: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mountpoint = home.join("s3creds");
    std::fs::create_dir_all(&mountpoint).unwrap();
    let mut cmd = bin();
    cmd.args(["mount", "--foreground", "--timeout", "30s"])
        .args(args)
        .arg(&mountpoint)
        .env("HOME", home);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("run s3credsfs mount")
}

fn last_line(out: &Output) -> String {
    text(&out.stderr)
        .trim_end()
        .lines()
        .last()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn a_mount_restarted_with_a_wrong_password_never_locks_the_account() {
    let kc = Keycloak::shared();
    let user = kc.get("RESTARTED_USER");
    let realm = kc.admin_get("").await;
    let threshold = realm["failureFactor"].as_u64().expect("failureFactor");
    assert_eq!(
        realm["bruteForceProtected"], true,
        "the realm must test lockout"
    );
    let home = tempfile::tempdir().unwrap();
    let wrong = "not-the-password";
    let refused = format!(
        "s3credsfs: error: Keycloak at {} rejected the password for user \"{user}\": Invalid user \
         credentials",
        kc.token_url()
    );
    // A supervisor that restarts whatever the exit status (`Restart=always`; the shipped
    // unit stops at 77): more starts than Keycloak's threshold.
    let mut outs = Vec::new();
    for _ in 0..threshold + 2 {
        let args = [
            "--api-gateway",
            kc.url(),
            "--username",
            user,
            "--password-env",
            "PW",
        ];
        outs.push(mount_once(home.path(), &args, &[("PW", wrong)]).await);
    }
    let record = kc.brute_force(user).await;
    eprintln!("keycloak-tests: after {} starts: {record}", threshold + 2);
    assert_eq!(record["disabled"], false, "locked: {record}");
    // The first start's two tries, a second apart or more: never a quick-login lockout.
    assert_eq!(record["numFailures"], 2, "{record}");
    assert_eq!(record["numTemporaryLockouts"], 0, "{record}");
    for (start, out) in outs.iter().enumerate() {
        assert_eq!(
            out.status.code(),
            Some(77),
            "start {start}: {}",
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).contains(wrong));
        let line = last_line(out);
        assert!(line.starts_with(&refused), "start {start}: {line}");
        if start > 0 {
            assert!(line.contains("so it is not sent again until"), "{line}");
        }
    }
    // The account still works, with the right password.
    let password = kc.get("RESTARTED_PASSWORD");
    let out = login(&kc, user, password, &[]).await;
    assert_eq!(failure(&out, &[password]), past_the_token_step(&kc));
    let record = kc.brute_force(user).await;
    eprintln!("keycloak-tests: after the right password: {record}");
    assert_eq!(record["disabled"], false, "{record}");
}

/// Two `s3credsfs fetch` of the test admin at once (a `fetch` while a mount logs in, two
/// nodes of a fleet): Keycloak refuses one while the other is in flight; the product tries
/// it once more after a wait and both get their token. Three rounds, as the collision
/// depends on timing (without the retry every round measured refused one).
#[tokio::test]
async fn two_commands_logging_in_as_one_user_at_once_both_get_a_token() {
    let kc = Keycloak::shared();
    let _turn = ONE_LOGIN_AT_A_TIME.lock().await;
    let (user, password) = (kc.get("ADMIN_USER"), kc.get("ADMIN_PASSWORD"));
    let args = ["--username", user, "--password-env", "PW"];
    let env = [("PW", password), ("S3CREDSFS_LOG", "info")];
    let mut collisions = 0;
    for round in 0..3 {
        let (one, two) = tokio::join!(fetch(&kc, &args, &env), fetch(&kc, &args, &env));
        for out in [&one, &two] {
            let stderr = text(&out.stderr);
            assert!(!stderr.contains(password));
            assert!(
                stderr.trim_end().ends_with(&past_the_token_step(&kc)),
                "round {round}: {stderr}"
            );
            collisions += stderr.matches("trying once more after a wait").count();
        }
    }
    eprintln!("keycloak-tests: {collisions} of 3 rounds' logins were refused at first");
}

/// A mount whose profiles log in as one user (two systems behind one Keycloak, or one
/// system with two regions) logs them in at once at start: they take turns, so Keycloak
/// never refuses one and none waits for a retry.
#[tokio::test]
async fn a_mounts_profiles_of_one_user_take_turns() {
    let kc = Keycloak::shared();
    let _turn = ONE_LOGIN_AT_A_TIME.lock().await;
    let (user, password) = (kc.get("ADMIN_USER"), kc.get("ADMIN_PASSWORD"));
    let home = tempfile::tempdir().unwrap();
    let url = kc.url();
    let config = crate::common::private_file(
        home.path(),
        "config.toml",
        &format!(
            "username = \"{user}\"\npassword-env = \"PW\"\napi-gateway = \"{url}\"\n\
             default-profile = \"a\"\n\n[profiles.a]\n\n[profiles.b]\nregion = \"b\"\n\n\
             [profiles.c]\nregion = \"c\"\n"
        ),
    );
    let config = config.to_str().unwrap();
    let env = [("PW", password), ("S3CREDSFS_LOG", "info")];
    let out = mount_once(home.path(), &["--config", config], &env).await;
    let stderr = text(&out.stderr);
    assert!(!stderr.contains(password));
    assert!(!out.status.success());
    assert!(
        last_line(&out).ends_with(&past_the_token_step(&kc)),
        "{stderr}"
    );
    assert!(!stderr.contains("rejected the password"), "{stderr}");
    assert!(
        !stderr.contains("trying once more after a wait"),
        "a profile's login was refused: {stderr}"
    );
}
