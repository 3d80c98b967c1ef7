//! Lifecycle races: two `mount` commands for one path, and SIGTERM while a refresh is
//! in flight. Each ends with exactly one mount or none, and no process left behind.

use crate::common;

use common::mount::*;
use common::{wait_for, StopOnDrop};
use s3credsfs::dev::gateway::{Endpoint, Fault, Times};
use s3credsfs::mountpoint::{self, MountState};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

/// How many s3credsfs mounts sit on `path` (the kernel would stack a second one).
fn mounts_at(path: &Path) -> usize {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let path = path.to_str().unwrap();
    mountinfo
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(path) && l.contains("s3credsfs"))
        .count()
}

fn spawn_mount(gw: &TestGateway, path: &Path, log: &Path) -> Child {
    bin()
        .arg("mount")
        .arg(path)
        .arg("--foreground")
        .args(login_args(gw))
        .env("PW", s3credsfs::dev::gateway::DEFAULT_PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Stops the children and clears their mounts, whatever happened.
struct Reaper<'a>(&'a Path, Vec<StopOnDrop>);

impl Drop for Reaper<'_> {
    fn drop(&mut self) {
        for child in &mut self.1 {
            child.stop();
        }
        while mounts_at(self.0) > 0 {
            force_unmount(self.0);
        }
    }
}

#[test]
fn two_mounts_racing_for_one_path_leave_exactly_one() {
    let gw = TestGateway::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    for round in 0..6 {
        let path = dir.path().join(format!("creds{round}"));
        let logs = [
            dir.path().join(format!("a{round}")),
            dir.path().join(format!("b{round}")),
        ];
        let children = vec![
            StopOnDrop::term(spawn_mount(&gw, &path, &logs[0])),
            StopOnDrop::term(spawn_mount(&gw, &path, &logs[1])),
        ];
        let mut reaper = Reaper(&path, children);
        let mut loser = None;
        wait_for("one winner and one loser", Duration::from_secs(30), || {
            for (i, child) in reaper.1.iter_mut().enumerate() {
                if let Ok(Some(status)) = child.try_wait() {
                    loser = Some((i, status));
                }
            }
            loser.is_some() && path.join("status").exists()
        });
        let (i, status) = loser.unwrap();
        assert!(!status.success(), "round {round}: the loser must fail");
        let said = std::fs::read_to_string(&logs[i]).unwrap();
        assert!(
            [
                "is already mounted",
                "is mounting on",
                "was mounted by another s3credsfs",
            ]
            .iter()
            .any(|m| said.contains(m)),
            "round {round}: {said}"
        );
        assert_eq!(mounts_at(&path), 1, "round {round}: exactly one mount");
        let winner = &mut reaper.1[1 - i];
        assert!(winner.try_wait().unwrap().is_none(), "the winner serves");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(winner.id() as i32, libc::SIGTERM) };
        let status = wait_for("the winner to exit", Duration::from_secs(10), || {
            winner.try_wait().unwrap()
        });
        assert!(status.success(), "round {round}: {status:?}");
        assert_eq!(mountpoint::state(&path), MountState::Free);
    }
}

#[test]
fn sigterm_during_an_in_flight_refresh_exits_cleanly() {
    let gw = TestGateway::start(|_| {});
    let mut m = Mounted::start(&gw, &["--lazy", "--timeout", "20s"]);
    gw.gw.inject(
        Endpoint::Sts,
        Fault::Delay(Duration::from_secs(3)),
        Times::Once,
    );
    let json = m.file("json");
    let reader = std::thread::spawn(move || std::fs::read_to_string(json));
    wait_for(
        "the refresh to be in flight",
        Duration::from_secs(10),
        || gw.stats().sts_requests >= 1,
    );
    m.signal(libc::SIGTERM);
    let status = m.wait_exit();
    assert!(status.success(), "{status:?}: {}", m.log());
    assert_eq!(mountpoint::state(&m.path), MountState::Free);
    // The reader got an answer (the credentials, or an error), not a hang.
    let _ = reader.join().unwrap();
}
