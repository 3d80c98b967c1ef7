//! The mount's lifecycle: background start and its failures, signals, a killed daemon,
//! `unmount`, `status`, `--dev` and the log file. Real mounts on temporary directories.

use crate::common;

use common::mount::*;
use common::{text, wait_for};
use s3credsfs::dev::gateway::DEFAULT_PASSWORD;
use s3credsfs::dev::gateway::{Endpoint, Fault, Times};
use s3credsfs::mountpoint::{self, MountState};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `s3credsfs mount PATH ...` in the background mode, tagged for `guard` (whose
/// path it mounts), and returns its output.
fn mount_background(
    gw: &TestGateway,
    guard: &BackgroundMount,
    extra: &[&str],
    password: &str,
) -> Output {
    guard
        .bin()
        .arg("mount")
        .arg(&guard.path)
        .args(login_args(gw))
        .args(extra)
        .env("PW", password)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn signals_unmount_cleanly() {
    let gw = TestGateway::start(|_| {});
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        let mut m = Mounted::start(&gw, &[]);
        m.signal(signal);
        let status = m.wait_exit();
        assert!(status.success(), "signal {signal}: {status}\n{}", m.log());
        assert_eq!(
            mountpoint::state(&m.path),
            MountState::Free,
            "signal {signal}"
        );
    }
}

#[test]
fn background_mount_unmount_and_status() {
    let gw = TestGateway::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("creds");
    let guard = BackgroundMount::new(&path);
    let out = mount_background(&gw, &guard, &[], DEFAULT_PASSWORD);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with(&format!(
        "s3credsfs: mounted at {} (credentials valid until ",
        path.display()
    )));
    assert!(std::fs::read_to_string(path.join("json"))
        .unwrap()
        .contains("AccessKeyId"));

    let status = bin().args(["status"]).arg(&path).output().unwrap();
    assert!(status.status.success());
    let screen = text(&status.stdout);
    assert!(screen.contains("state:        fresh\n"), "{screen}");
    assert!(
        screen.contains("auth:         password as dev\n"),
        "{screen}"
    );
    let json = bin()
        .args(["status", "--json"])
        .arg(&path)
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["refresh_count"], 1);

    // Mounting over a live mount is refused and changes nothing.
    let again = mount_background(&gw, &guard, &[], DEFAULT_PASSWORD);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("is already mounted (s3credsfs); run `s3credsfs unmount"),
        "{}",
        text(&again.stderr)
    );
    assert!(std::fs::read_to_string(path.join("json")).is_ok());

    let out = bin().arg("unmount").arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(mountpoint::state(&path), MountState::Free);
    let status = bin().args(["status"]).arg(&path).output().unwrap();
    assert!(!status.status.success());
    assert!(text(&status.stderr).contains("nothing is mounted at"));
    let out = bin().arg("unmount").arg(&path).output().unwrap();
    assert!(!out.status.success(), "unmounting nothing is an error");
}

#[test]
fn a_failed_start_reports_why_and_leaves_nothing_mounted() {
    let gw = TestGateway::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("creds");
    let guard = BackgroundMount::new(&path);
    let out = mount_background(&gw, &guard, &[], "wrong-password");
    // The daemon's exit status crosses the readiness pipe: a refused login, which the
    // systemd unit does not restart (it would get the account locked).
    assert_eq!(out.status.code(), Some(77));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("rejected the password for user \"dev\": Invalid user credentials"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("wrong-password"));
    assert_eq!(mountpoint::state(&path), MountState::Free);

    // An unreachable gateway: the same.
    let out = guard
        .bin()
        .arg("mount")
        .arg(&path)
        .args([
            "--api-gateway",
            "http://127.0.0.1:9",
            "--username",
            "dev",
            "--password-env",
            "PW",
            "--timeout",
            "2s",
        ])
        .env("PW", DEFAULT_PASSWORD)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(69),
        "an unreachable gateway may come back"
    );
    assert!(
        text(&out.stderr).contains("cannot reach http://127.0.0.1:9/"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(mountpoint::state(&path), MountState::Free);

    // A gateway that never answers: the same, once --timeout has passed, long before the
    // gateway would have answered.
    gw.gw.inject(
        Endpoint::Token,
        Fault::Delay(Duration::from_secs(120)),
        Times::Always,
    );
    let started = Instant::now();
    let out = mount_background(&gw, &guard, &["--timeout", "2s"], DEFAULT_PASSWORD);
    let took = started.elapsed();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("did not answer within 2s"), "{stderr}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(60),
        "the mount gave up after {took:?}"
    );
    assert_eq!(mountpoint::state(&path), MountState::Free);
}

#[test]
fn a_killed_daemon_is_recovered_by_the_next_mount() {
    let gw = TestGateway::start(|_| {});
    let mut m = Mounted::start(&gw, &[]);
    m.signal(libc::SIGKILL);
    m.wait_exit();
    // statfs, because a stat may be answered from the kernel's attribute cache (1 s).
    let err = nix::sys::statfs::statfs(&m.path).unwrap_err();
    assert_eq!(
        Some(err as i32),
        Some(libc::ENOTCONN),
        "a stale mount is left behind"
    );

    let guard = BackgroundMount::new(&m.path);
    let out = mount_background(&gw, &guard, &[], DEFAULT_PASSWORD);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("clearing the stale mount"),
        "{}",
        text(&out.stderr)
    );
    assert!(std::fs::read_to_string(m.path.join("json"))
        .unwrap()
        .contains("AccessKeyId"));
}

#[test]
fn unmount_clears_a_stale_mount() {
    let gw = TestGateway::start(|_| {});
    let mut m = Mounted::start(&gw, &[]);
    let path = m.path.clone();
    let check = || {
        bin()
            .args(["status", "--check"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let healthy = check();
    assert_eq!(healthy.status.code(), Some(0), "{}", text(&healthy.stdout));
    assert!(text(&healthy.stdout).starts_with("S3CREDSFS OK - default: fresh, valid for "));
    m.signal(libc::SIGKILL);
    m.wait_exit();
    // Monitoring sees the daemon gone: CRITICAL.
    let gone = check();
    assert_eq!(gone.status.code(), Some(2), "{}", text(&gone.stdout));
    assert!(
        text(&gone.stdout).starts_with("S3CREDSFS CRITICAL - ")
            && text(&gone.stdout).contains("is a stale mount (its daemon died)"),
        "{}",
        text(&gone.stdout)
    );
    let out = bin().arg("unmount").arg(&m.path).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("cleared the stale mount"));
    assert_eq!(mountpoint::state(&m.path), MountState::Free);
}

#[test]
fn unmount_clears_a_stale_mount_named_through_a_link() {
    // mountinfo lists the mountpoint, not the link: only statfs through the link (ENOTCONN)
    // tells that a stale mount is there.
    let gw = TestGateway::start(|_| {});
    let mut m = Mounted::start(&gw, &[]);
    m.signal(libc::SIGKILL);
    m.wait_exit();
    // A relative link, as `ln -s creds creds-link` makes; as a user, fusermount3 must be
    // given the mount's own path.
    let link = m.path.with_file_name("creds-link");
    std::os::unix::fs::symlink(m.path.file_name().unwrap(), &link).unwrap();
    let out = bin().arg("unmount").arg(&link).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("s3credsfs: cleared the stale mount at {}", m.path.display())
    );
    assert_eq!(mountpoint::state(&m.path), MountState::Free);
}

#[test]
fn status_refresh_and_unmount_find_a_live_mount_through_a_link() {
    // mountinfo lists the mountpoint, not the link, and fusermount3 (which unmounts for a
    // user) looks up the path it is given there: each command must follow the link.
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &[]);
    let link = m.path.with_file_name("creds-link");
    std::os::unix::fs::symlink(m.path.file_name().unwrap(), &link).unwrap();
    let status = bin()
        .args(["status", "--check"])
        .arg(&link)
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", text(&status.stdout));
    assert!(
        text(&status.stdout).starts_with("S3CREDSFS OK - "),
        "{}",
        text(&status.stdout)
    );
    let refresh = bin().arg("refresh").arg(&link).output().unwrap();
    assert!(refresh.status.success(), "{}", text(&refresh.stderr));
    let out = bin().arg("unmount").arg(&link).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("s3credsfs: unmounted {}", m.path.display())
    );
    assert_eq!(mountpoint::state(&m.path), MountState::Free);
}

/// Another user's link could be re-pointed at any of the caller's mounts between two
/// commands (`ln -s /root/.s3creds /tmp/jobcreds` for a root script's `unmount
/// /tmp/jobcreds`): no command follows it, and the mount is left alone.
#[test]
fn another_users_link_to_a_mount_is_not_followed() {
    common::require_root("gives a link to another user");
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &[]);
    let link = m.path.with_file_name("their-link");
    std::os::unix::fs::symlink(&m.path, &link).unwrap();
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        &link,
        Some(nix::unistd::Uid::from_raw(65534)),
        None,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .unwrap();
    let refusal = format!(
        "s3credsfs: error: {} is a symbolic link of user id 65534, who could re-point it at another mount; name the mountpoint itself",
        link.display()
    );
    let issued = gw.stats().sts_issued;
    // A setting's exit status; `status` exits with its UNKNOWN verdict, as always.
    for (command, code) in [("unmount", 78), ("refresh", 78), ("status", 3)] {
        let out = bin().arg(command).arg(&link).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{command}");
        assert_eq!(text(&out.stderr).trim(), refusal, "{command}");
    }
    let check = bin()
        .args(["status", "--check"])
        .arg(&link)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(3));
    assert!(text(&check.stdout).contains("is a symbolic link of user id 65534"));
    // `exec` warns and fetches its own credentials instead of the mount's.
    let out = bin()
        .args(["exec", "--mountpoint"])
        .arg(&link)
        .args(login_args(&gw))
        .args(["--", "printenv", "AWS_ACCESS_KEY_ID"])
        .env("PW", DEFAULT_PASSWORD)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("is a symbolic link of user id 65534")
            && text(&out.stderr).contains("; fetching credentials instead"),
        "{}",
        text(&out.stderr)
    );
    assert_ne!(text(&out.stdout).trim(), m.access_key());
    assert_eq!(gw.stats().sts_issued, issued + 1);
    assert!(matches!(
        mountpoint::state(&m.path),
        MountState::Live { .. }
    ));
}

#[test]
fn dev_mode_is_a_one_command_demo_with_a_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("creds");
    let log = dir.path().join("daemon.log");
    // A log left readable by everyone (as a shell's umask makes it) becomes private.
    std::fs::write(&log, "").unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    let guard = BackgroundMount::new(&path);
    let out = guard
        .bin()
        .args(["mount", "--dev", "--log-file"])
        .arg(&log)
        .arg(&path)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json = std::fs::read_to_string(path.join("json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path.join("status")).unwrap()).unwrap();
    assert!(status["gateway"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    assert_eq!(status["user"], "dev");
    wait_for(
        "the log to mention the fetch",
        Duration::from_secs(5),
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("obtained S3 credentials")
        },
    );
    let mode = std::fs::metadata(&log).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the log file is private");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains(value["SecretAccessKey"].as_str().unwrap()));
    assert!(!logged.contains(value["SessionToken"].as_str().unwrap()));
}

#[test]
fn dev_mode_takes_the_gateways_lifetimes_to_show_renewal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("creds");
    let guard = BackgroundMount::new(&path);
    let out = guard
        .bin()
        .args([
            "mount",
            "--dev",
            "--lifetime",
            "6s",
            "--token-lifetime",
            "3s",
        ])
        .args(["--min-validity", "2s"])
        .arg(&path)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json = |path: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path.join("json")).unwrap()).unwrap()
    };
    let first = json(&path);
    let expires = chrono::DateTime::parse_from_rfc3339(first["Expiration"].as_str().unwrap())
        .unwrap()
        .timestamp();
    let left = expires - chrono::Utc::now().timestamp();
    assert!(
        (3..=7).contains(&left),
        "credentials for 6 s expire in {left} s"
    );
    wait_for("renewed credentials", Duration::from_secs(20), || {
        json(&path)["AccessKeyId"] != first["AccessKeyId"]
    });

    // Without --dev the lifetimes mean nothing: refused, naming --dev.
    let out = bin()
        .args(["mount", "--lifetime", "6s"])
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--dev"), "{}", text(&out.stderr));
}

#[test]
fn bad_flags_and_config_fail_before_mounting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("creds");
    let out = bin()
        .args(["mount", "--min-validity", "soon"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "a configuration error");
    assert!(
        text(&out.stderr).contains("bad value \"soon\" for --min-validity"),
        "{}",
        text(&out.stderr)
    );
    let out = bin()
        .args(["mount", "--no-such-flag"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!path.exists(), "nothing was created");
}

#[test]
fn a_relative_token_file_still_works_after_the_daemon_detaches() {
    let gw = TestGateway::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let login = gw.runtime().block_on(common::password_grant(&gw.gw));
    common::private_file(dir.path(), "token", login["access_token"].as_str().unwrap());
    let path = dir.path().join("creds");
    // --lazy: the file is first read on the first read of `json`, long after the daemon
    // left the directory it was started in.
    let guard = BackgroundMount::new(&path);
    let out = guard
        .bin()
        .args([
            "mount",
            "--lazy",
            "--token-file",
            "token",
            "--api-gateway",
            &gw.gw.base_url(),
            "creds",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json = std::fs::read_to_string(path.join("json")).unwrap();
    assert!(json.contains("AccessKeyId"), "{json}");
}

#[test]
fn a_busy_mount_is_detached_on_sigterm_and_open_files_keep_working() {
    use std::io::Read;
    let gw = TestGateway::start(|_| {});
    let mut m = Mounted::start(&gw, &[]);
    let mut open = std::fs::File::open(m.file("json")).unwrap();
    m.signal(libc::SIGTERM);
    wait_for("the mount to be detached", Duration::from_secs(10), || {
        mountpoint::state(&m.path) == MountState::Free
    });
    let mut text = String::new();
    open.read_to_string(&mut text).unwrap();
    assert!(
        text.contains("AccessKeyId"),
        "the open file still reads: {text}"
    );
    drop(open);
    let status = m.wait_exit();
    assert!(status.success(), "{status}\n{}", m.log());
}

#[test]
fn insecure_warns_when_mounting() {
    let warning = "s3credsfs: warning: --insecure is set: TLS certificates are NOT verified";
    let gw = TestGateway::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let guard = BackgroundMount::new(&dir.path().join("creds"));
    let out = mount_background(&gw, &guard, &["--insecure"], DEFAULT_PASSWORD);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with(warning),
        "{}",
        text(&out.stderr)
    );
    drop(guard);
    let m = Mounted::start(&gw, &["--insecure"]);
    assert!(m.log().contains(warning), "{}", m.log());
}
