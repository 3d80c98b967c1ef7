//! The systemd user unit (`contrib/systemd/s3credsfs.service`) and the readiness protocol
//! of `mount --foreground` under `Type=notify`, spoken to a socket of the test's own (no
//! real systemd): READY=1 only once the mount serves credentials, STOPPING=1 when SIGTERM
//! starts the unmount, and a broken NOTIFY_SOCKET never stops the mount.

use crate::common;

use common::mount::*;
use common::wait_for;
use s3credsfs::dev::gateway::DEFAULT_PASSWORD;
use s3credsfs::mountpoint::{self, MountState};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Waits for a datagram holding `field` (a line of its own), failing after 30 s or when
/// the daemon exits; returns that datagram.
pub(crate) fn wait_for_message(socket: &UnixDatagram, daemon: &mut Mounted, field: &str) -> String {
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let mut last = None;
    wait_for(field, Duration::from_secs(30), || {
        if let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            if message.lines().any(|l| l == field) {
                return Ok(message);
            }
            last = Some(message);
        }
        if let Ok(Some(status)) = daemon.child.try_wait() {
            panic!(
                "the daemon exited ({status}) before {field}:\n{}",
                daemon.log()
            );
        }
        Err(format!(
            "last message {last:?}; daemon log:\n{}",
            daemon.log()
        ))
    })
}

#[test]
fn ready_only_once_mounted_and_stopping_on_sigterm() {
    let gw = TestGateway::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    // The password command records whether NOTIFY_SOCKET reached a program the daemon
    // starts (it must not: such a program could speak for the daemon).
    let leak = dir.path().join("leak");
    let command = format!(
        "printenv NOTIFY_SOCKET > '{}'; printf %s '{DEFAULT_PASSWORD}'",
        leak.display()
    );
    let args = [
        "--api-gateway",
        &gw.gw.base_url(),
        "--username",
        "dev",
        "--password-command",
        &command,
    ]
    .map(String::from);
    let notify = [("NOTIFY_SOCKET", socket_path.to_str().unwrap())];
    let mut daemon = Mounted::launch(&args, &notify, None);

    let ready = wait_for_message(&socket, &mut daemon, "READY=1");
    // At this very moment, with no waiting: the credentials are already served.
    let json = std::fs::read_to_string(daemon.path.join("json"))
        .unwrap_or_else(|e| panic!("READY=1 came before the mount served json ({e})"));
    let creds: serde_json::Value = serde_json::from_str(&json).unwrap();
    let secret = creds["SecretAccessKey"].as_str().unwrap();
    assert!(
        ready.contains(&format!(
            "STATUS=mounted at {}; credentials valid until ",
            daemon.path.display()
        )),
        "{ready:?}"
    );
    assert!(!ready.contains(secret));
    assert_eq!(
        std::fs::read_to_string(&leak).unwrap(),
        "",
        "NOTIFY_SOCKET was passed on to a child"
    );

    daemon.signal(libc::SIGTERM);
    let stopping = wait_for_message(&socket, &mut daemon, "STOPPING=1");
    assert!(
        stopping.contains("STATUS=unmounting on SIGTERM"),
        "{stopping:?}"
    );
    let status = daemon.wait_exit();
    assert!(status.success(), "{}", daemon.log());
    assert_eq!(mountpoint::state(&daemon.path), MountState::Free);
}

#[test]
fn a_broken_notify_socket_does_not_stop_the_mount() {
    let gw = TestGateway::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let regular = dir.path().join("regular-file");
    std::fs::write(&regular, "").unwrap();
    let missing = dir.path().join("missing.sock");
    for target in [&missing, &regular] {
        let target = target.to_str().unwrap();
        let m = Mounted::start_with_env(&gw, &[], &[("NOTIFY_SOCKET", target)]);
        assert!(m.read("json").unwrap().contains("AccessKeyId"));
        wait_for("the warning", Duration::from_secs(10), || {
            m.log().contains(&format!(
                "cannot notify systemd through NOTIFY_SOCKET {target}"
            ))
        });
    }
}

/// The shipped unit, its `ExecStart=` pointed at the binary under test (verify checks
/// that the program exists), in a directory of its own.
fn unit_under_test(dir: &Path) -> PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd/s3credsfs.service");
    let text = std::fs::read_to_string(shipped).unwrap();
    let exec = "ExecStart=/usr/bin/s3credsfs mount --foreground\n";
    assert!(text.contains(exec), "the RPM installs /usr/bin/s3credsfs");
    assert!(text.contains("\nType=notify\n"));
    let text = text.replace("/usr/bin/s3credsfs", env!("CARGO_BIN_EXE_s3credsfs"));
    let path = dir.join("s3credsfs.service");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_under_test(dir.path());
    // A user manager needs a runtime directory; a container has none of its own.
    let runtime = dir.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    for user in [false, true] {
        let mut cmd = Command::new("systemd-analyze");
        cmd.env_clear()
            .envs(common::clean_env())
            .env("HOME", dir.path())
            .env("XDG_RUNTIME_DIR", &runtime);
        if user {
            cmd.arg("--user");
        }
        let out = cmd.arg("verify").arg(&unit).output().unwrap_or_else(|e| {
            panic!("cannot run systemd-analyze ({e}); run scripts/venv, which installs the systemd package")
        });
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "user={user}: {stderr}");
        // An unknown or misspelt key is only a warning, still exit 0.
        assert!(stderr.trim().is_empty(), "user={user}: {stderr}");
    }
}

#[test]
fn the_unit_keeps_out_what_breaks_fuse() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(unit_under_test(dir.path())).unwrap();
    // NoNewPrivileges (and what implies it in a user unit) stops the setuid fusermount3;
    // a private mount namespace hides the mount from everything else.
    let forbidden = [
        "NoNewPrivileges",
        "SystemCallFilter",
        "SystemCallArchitectures",
        "RestrictNamespaces",
        "RestrictAddressFamilies",
        "LockPersonality",
        "MemoryDenyWriteExecute",
        "RestrictRealtime",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectClock",
        "PrivateDevices",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateMounts",
        "ReadOnlyPaths",
        "InaccessiblePaths",
        "TemporaryFileSystem",
        "BindPaths",
        "PrivateUsers",
    ];
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let key = line.split('=').next().unwrap().trim();
        assert!(!forbidden.contains(&key), "the unit sets {line}");
    }
    for needed in ["Restart=on-failure", "RestartSec=10s", "KillMode=mixed"] {
        assert!(text.lines().any(|l| l == needed), "{needed}");
    }
    // systemd must not give up on a first fetch that is still within its budget (6
    // requests of the default 30 s --timeout).
    let start = text
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStartSec="))
        .expect("TimeoutStartSec");
    let start = humantime::parse_duration(start).unwrap();
    assert!(start > s3credsfs::sts::refresh_budget(Duration::from_secs(30)));
}

#[test]
fn the_unit_prevents_restarts_exactly_for_what_a_restart_cannot_fix() {
    use s3credsfs::exit_status::ExitStatus;
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(unit_under_test(dir.path())).unwrap();
    let listed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("RestartPreventExitStatus="))
        .collect();
    assert_eq!(listed.len(), 1, "one RestartPreventExitStatus= line");
    let mut unit: Vec<u8> = listed[0]
        .split_whitespace()
        .map(|c| c.parse().unwrap())
        .collect();
    unit.sort_unstable();
    let mut code: Vec<u8> = ExitStatus::ALL
        .into_iter()
        .filter(|s| !s.restart_helps())
        .map(ExitStatus::code)
        .collect();
    code.sort_unstable();
    assert_eq!(unit, code);
    assert!(code.contains(&ExitStatus::LoginRefused.code()));
    assert!(code.contains(&ExitStatus::Config.code()));
}

/// What systemd sees of a wrong password: the foreground daemon exits with the status
/// the unit does not restart after, having tried the password once.
#[test]
fn a_refused_password_exits_with_a_status_the_unit_does_not_restart() {
    use s3credsfs::exit_status::ExitStatus;
    let gw = TestGateway::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("creds");
    let out = mount_with_a_wrong_password(&gw, dir.path(), &path, None);
    assert_eq!(
        out.status.code(),
        Some(i32::from(ExitStatus::LoginRefused.code()))
    );
    assert!(!ExitStatus::LoginRefused.restart_helps());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Invalid user credentials"), "{stderr}");
    assert!(!stderr.contains("wrong-password"), "{stderr}");
    assert_eq!(gw.stats().token_requests, 1, "one login, no retry");
    assert_eq!(mountpoint::state(&path), MountState::Free);
}

/// `mount --foreground` on `path` with a password the gateway refuses, HOME at `home`
/// and, for a unit-started mount, `NOTIFY_SOCKET` at `notify`; nothing is left mounted.
pub fn mount_with_a_wrong_password(
    gw: &TestGateway,
    home: &Path,
    path: &Path,
    notify: Option<&Path>,
) -> std::process::Output {
    let mut cmd = bin();
    cmd.arg("mount")
        .arg(path)
        .arg("--foreground")
        .args(login_args(gw))
        .env("PW", "wrong-password")
        .env("HOME", home)
        .stdin(Stdio::null());
    if let Some(socket) = notify {
        cmd.env("NOTIFY_SOCKET", socket);
    }
    let out = cmd.output().unwrap();
    force_unmount(path);
    out
}
