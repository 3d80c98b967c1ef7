//! A mount systemd starts (`mount --foreground` with `NOTIFY_SOCKET`, as the shipped unit
//! runs it) against a gateway that is busy at boot: it does not exit for systemd to
//! restart every 10 s (a whole system booting would hammer the gateway in step), but
//! mounts, says why it has no credentials, and retries on the cache's backoff until the
//! gateway serves. What a restart cannot cure (a refused password) still ends it.

use crate::common;
use crate::systemd::{mount_with_a_wrong_password, wait_for_message};

use common::mount::*;
use common::{status_fault, wait_for};
use s3credsfs::cache::{OVERLOAD_DELAY, OVERLOAD_SPREAD};
use s3credsfs::dev::gateway::{Endpoint, Times};
use s3credsfs::exit_status::ExitStatus;
use s3credsfs::mountpoint::{self, MountState};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

#[test]
fn a_unit_started_mount_outlasts_a_503_gateway_and_gets_credentials_once_it_serves() {
    let gw = TestGateway::start(|_| {});
    gw.gw.inject(
        Endpoint::Sts,
        status_fault(503, "text/plain", "no healthy upstream"),
        Times::Always,
    );
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let notify = [("NOTIFY_SOCKET", socket_path.to_str().unwrap())];
    let mut daemon = Mounted::launch(&login_args(&gw), &notify, None);

    // Up and ready for systemd, without credentials, saying why.
    let ready = wait_for_message(&socket, &mut daemon, "READY=1");
    assert!(
        ready.contains("no credentials yet") && ready.contains("HTTP 503"),
        "{ready}"
    );
    let started = Instant::now();
    let read = std::fs::read_to_string(daemon.path.join("json")).unwrap_err();
    assert_eq!(read.raw_os_error(), Some(libc::EIO), "{read}");
    let status = daemon.status();
    assert!(
        status["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("HTTP 503")),
        "{status}"
    );
    // Not asked again within seconds, however often it is read (the doubling from 1 s
    // would have asked three times in 4 s; a restart every 10 s with a new login each).
    while started.elapsed() < Duration::from_secs(4) {
        assert!(std::fs::read_to_string(daemon.path.join("json")).is_err());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(gw.stats().sts_requests, 1, "one STS call in the first 4 s");
    assert_eq!(gw.stats().password_grants, 1, "one login");
    assert!(daemon.child.try_wait().unwrap().is_none(), "still running");

    // The gateway recovers: credentials within the overload wait, no restart needed.
    gw.gw.clear_faults();
    let deadline = OVERLOAD_DELAY + OVERLOAD_SPREAD + Duration::from_secs(20);
    wait_for("credentials once the gateway serves", deadline, || {
        daemon
            .read("json")
            .ok()
            .filter(|json| json.contains("AccessKeyId"))
            .ok_or_else(|| daemon.log())
    });
    let served = started.elapsed();
    assert!(
        served >= OVERLOAD_DELAY - OVERLOAD_SPREAD - Duration::from_secs(5),
        "asked again after {served:?}, before the overload wait"
    );
    assert_eq!(gw.stats().sts_requests, 2, "the 503, then the credentials");
    assert!(daemon.status()["last_error"].is_null());
    // systemctl status says so too.
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    wait_for(
        "STATUS= with the credentials",
        Duration::from_secs(30),
        || {
            let n = socket.recv(&mut buf).map_err(|e| e.to_string())?;
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            message
                .lines()
                .any(|l| {
                    l.starts_with("STATUS=mounted at") && l.contains("credentials valid until")
                })
                .then_some(())
                .ok_or(message)
        },
    );
}

/// What a restart cannot cure ends a unit-started mount as before: the refused
/// password's status, which the unit does not restart after, and no mount left.
#[test]
fn a_unit_started_mount_still_exits_on_a_refused_password() {
    let gw = TestGateway::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let _socket = UnixDatagram::bind(&socket_path).unwrap();
    let path = dir.path().join("creds");
    let out = mount_with_a_wrong_password(&gw, dir.path(), &path, Some(&socket_path));
    assert_eq!(
        out.status.code(),
        Some(i32::from(ExitStatus::LoginRefused.code()))
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Invalid user credentials"), "{stderr}");
    assert_eq!(mountpoint::state(&path), MountState::Free);
}
