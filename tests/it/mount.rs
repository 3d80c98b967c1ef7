//! The mounted files: formats, modes, sizes, refresh on read, one refresh for many
//! readers, failures and backoff. Real FUSE mounts against the built-in gateway.

use crate::common;

use common::mount::*;
use common::wait_for;
use s3credsfs::dev::gateway::{Endpoint, Fault, Times};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::Duration;

const NAMES: [&str; 7] = [
    "credentials",
    "config",
    "env",
    "json",
    "s3cfg",
    "rclone.conf",
    "status",
];

fn short_lived() -> TestGateway {
    TestGateway::start(|c| c.lifetime = Duration::from_secs(4))
}

/// Credentials of 12 s refreshed when under 8 s remain: after one is due for refresh, 8 s
/// pass before it expires, room for a loaded machine to act inside that window.
fn roomy() -> (TestGateway, [&'static str; 4]) {
    let gw = TestGateway::start(|c| c.lifetime = Duration::from_secs(12));
    (gw, ["--min-validity", "8s", "--timeout", "4s"])
}

/// Short credentials (4 s) refreshed when under 2 s remain.
const SHORT: [&str; 4] = ["--min-validity", "2s", "--timeout", "2s"];

/// The gateway's own answer when the STS behind it fails.
fn status_500() -> Fault {
    common::status_fault(500, "text/plain", "\"Error\"")
}

fn slow_down_next_sts_call(gw: &TestGateway, delay: Duration) {
    gw.gw
        .inject(Endpoint::Sts, Fault::Delay(delay), Times::Once);
}

fn assert_last_error(status: &serde_json::Value, expected: &str) {
    let last_error = status["last_error"].as_str().unwrap_or_default();
    assert!(last_error.contains(expected), "{status}");
}

/// Waits (reading only `status`, which never fetches) until the next read must refresh.
fn wait_until_due(m: &Mounted) {
    wait_for(
        "the credentials to need a refresh",
        Duration::from_secs(10),
        || m.status()["state"] != "fresh",
    );
}

#[test]
fn every_file_has_its_format_mode_and_exact_size() {
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &[]);
    let mut names: Vec<String> = std::fs::read_dir(&m.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected = NAMES.to_vec();
    expected.push("profiles");
    expected.sort();
    assert_eq!(names, expected);
    let profiles = std::fs::metadata(m.file("profiles")).unwrap();
    assert!(profiles.is_dir() && profiles.permissions().mode() & 0o777 == 0o500);

    let root = std::fs::metadata(&m.path).unwrap();
    assert_eq!(root.permissions().mode() & 0o777, 0o500);
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    for name in NAMES {
        let meta = std::fs::metadata(m.file(name)).unwrap();
        assert!(meta.is_file(), "{name}");
        assert_eq!(meta.permissions().mode() & 0o777, 0o400, "{name}");
        assert_eq!(meta.uid(), uid, "{name}");
        if name != "status" {
            let bytes = std::fs::read(m.file(name)).unwrap();
            assert_eq!(
                meta.len(),
                bytes.len() as u64,
                "{name}: stat size equals content length"
            );
        }
    }

    let key = m.access_key();
    let json: serde_json::Value = serde_json::from_str(&m.read("json").unwrap()).unwrap();
    assert_eq!(json["Version"], 1);
    assert!(m
        .read("credentials")
        .unwrap()
        .contains(&format!("[default]\naws_access_key_id = {key}\n")));
    assert!(m.read("config").unwrap().ends_with(&format!(
        "region = us-east-1\nrequest_checksum_calculation = when_required\n\
         credential_process = cat {}/json\n",
        m.path.display()
    )));
    assert!(m
        .read("s3cfg")
        .unwrap()
        .contains(&format!("access_key = {key}\n")));
    assert!(m
        .read("rclone.conf")
        .unwrap()
        .contains("type = s3\nprovider = Ceph\n"));

    // The readers people use: cat, bash `source` (reads exactly st_size bytes), Python.
    let cat = Command::new("cat").arg(m.file("json")).output().unwrap();
    assert_eq!(
        String::from_utf8(cat.stdout).unwrap(),
        m.read("json").unwrap()
    );
    let script = format!(
        "source {} && printf %s \"$AWS_ACCESS_KEY_ID:$AWS_ENDPOINT_URL\"",
        m.file("env").display()
    );
    let sourced = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert_eq!(
        String::from_utf8(sourced.stdout).unwrap(),
        format!("{key}:http://127.0.0.1:8080")
    );
    let python = Command::new("python3")
        .args([
            "-c",
            "import json,sys; print(json.loads(open(sys.argv[1]).read())['AccessKeyId'])",
        ])
        .arg(m.file("json"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(python.stdout).unwrap().trim(), key);

    // The status file carries no secret.
    let status = m.read("status").unwrap();
    for secret in [
        json["SecretAccessKey"].as_str().unwrap(),
        json["SessionToken"].as_str().unwrap(),
    ] {
        assert!(!status.contains(secret));
        assert!(
            !m.log().contains(secret),
            "a secret reached the daemon's log"
        );
    }
    assert!(!m.log().contains(s3credsfs::dev::gateway::DEFAULT_PASSWORD));
}

#[test]
fn writes_creates_and_unknown_names_are_refused() {
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &[]);
    let refused = |r: std::io::Result<std::fs::File>| {
        let code = r.unwrap_err().raw_os_error().unwrap();
        assert!(code == libc::EROFS || code == libc::EACCES, "errno {code}");
    };
    refused(std::fs::OpenOptions::new().write(true).open(m.file("json")));
    refused(std::fs::OpenOptions::new().append(true).open(m.file("env")));
    refused(std::fs::File::create(m.file("new-file")));
    let err = std::fs::create_dir(m.path.join("dir"))
        .unwrap_err()
        .raw_os_error();
    assert!(
        matches!(err, Some(libc::EROFS) | Some(libc::EACCES)),
        "{err:?}"
    );
    let err = std::fs::remove_file(m.file("json"))
        .unwrap_err()
        .raw_os_error();
    assert!(
        matches!(err, Some(libc::EROFS) | Some(libc::EACCES)),
        "{err:?}"
    );
    let err = std::fs::read(m.file("no-such-file")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
}

#[test]
fn credentials_are_refreshed_on_read_after_their_lifetime() {
    let gw = short_lived();
    let m = Mounted::start(&gw, &SHORT);
    let first = m.access_key();
    let first_mtime = std::fs::metadata(m.file("json"))
        .unwrap()
        .modified()
        .unwrap();
    wait_for("a refreshed access key", Duration::from_secs(15), || {
        m.access_key() != first
    });
    let status = m.status();
    assert!(status["refresh_count"].as_u64().unwrap() >= 2, "{status}");
    assert!(
        std::fs::metadata(m.file("json"))
            .unwrap()
            .modified()
            .unwrap()
            > first_mtime,
        "mtime = fetch time"
    );
    // Every read between refreshes was served from the cache: far fewer STS calls than reads.
    assert!(gw.stats().sts_issued <= 4, "{:?}", gw.stats());
}

#[test]
fn a_hundred_readers_at_refresh_time_cause_one_sts_call() {
    // The refreshed credentials stay fresh for 4 s: a reader that comes late must not
    // start a second refresh.
    let (gw, args) = roomy();
    let m = Mounted::start(&gw, &args);
    let first = m.access_key();
    let before = gw.stats().sts_requests;
    // Slow the STS so every reader arrives while the refresh is in flight (the readers'
    // own, or the keeper's, which refreshes at the same time whether or not anyone reads).
    slow_down_next_sts_call(&gw, Duration::from_millis(1500));
    wait_until_due(&m);
    let barrier = Arc::new(Barrier::new(100));
    let readers: Vec<_> = (0..100)
        .map(|_| {
            let barrier = barrier.clone();
            let path = m.file("json");
            std::thread::spawn(move || {
                barrier.wait();
                std::fs::read(path).unwrap()
            })
        })
        .collect();
    let results: Vec<Vec<u8>> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    assert!(
        results.iter().all(|r| r == &results[0]),
        "all readers got identical bytes"
    );
    assert_eq!(gw.stats().sts_requests - before, 1, "exactly one STS call");
    assert_ne!(m.access_key(), first);
}

#[test]
fn a_failing_gateway_serves_valid_credentials_then_eio_with_the_reason() {
    let (gw, args) = roomy();
    let m = Mounted::start(&gw, &args);
    let first = m.access_key();
    gw.gw.inject(Endpoint::Sts, status_500(), Times::Always);
    wait_until_due(&m);
    // Still valid: served, and the failure is recorded.
    assert_eq!(m.access_key(), first);
    let status = m.status();
    assert_last_error(&status, "answered HTTP 500");
    assert_eq!(status["state"], "expiring");

    // Once expired they are never served: EIO, and status says why.
    let expiration =
        chrono::DateTime::parse_from_rfc3339(status["expiration"].as_str().unwrap()).unwrap();
    // `expiration` is rounded down to the second; the credentials live up to 1 s longer.
    let expired = expiration + chrono::Duration::seconds(1);
    wait_for("the credentials to expire", Duration::from_secs(20), || {
        chrono::Utc::now() > expired
    });
    let err = m.read("json").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    let status = m.status();
    assert_eq!(status["state"], "error", "{status}");
    assert_last_error(&status, "answered HTTP 500");
    assert!(
        m.log().contains("answered HTTP 500"),
        "the log says why too"
    );

    // When the gateway recovers (and the backoff passes) reads work again.
    gw.gw.clear_faults();
    wait_for("recovery", Duration::from_secs(20), || {
        m.read("json").is_ok()
    });
    assert_ne!(m.access_key(), first);
}

/// The most refresh attempts the backoff allows within `elapsed` of the first one: each
/// delay is at least half of 1 s, 2 s, 4 s, ... (jitter scales them by 0.5 to 1).
fn most_attempts_within(elapsed: Duration) -> u64 {
    let (mut attempts, mut earliest, mut delay) = (1, 0.0, 0.5);
    while earliest + delay <= elapsed.as_secs_f64() {
        earliest += delay;
        delay *= 2.0;
        attempts += 1;
    }
    attempts
}

#[test]
fn backoff_keeps_a_down_gateway_from_being_hammered() {
    let gw = TestGateway::start(|_| {});
    gw.gw.inject(Endpoint::Sts, status_500(), Times::Always);
    let m = Mounted::start(&gw, &["--lazy"]);
    // At least 100 reads over at least 2.5 s, however slowly this machine runs them; the
    // bound on STS calls follows from the time they actually took.
    let mut opens = 0;
    let start = std::time::Instant::now();
    while opens < 100 || start.elapsed() < Duration::from_millis(2500) {
        let err = std::fs::read(m.file("json")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        opens += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    let calls = gw.stats().sts_requests;
    let allowed = most_attempts_within(start.elapsed());
    assert!(
        (1..=allowed).contains(&calls),
        "{opens} opens in {:?} caused {calls} STS calls (at most {allowed} allowed)",
        start.elapsed()
    );
}

#[test]
fn a_slow_refresh_does_not_block_status_or_listing() {
    let gw = short_lived();
    let m = Mounted::start(&gw, &["--min-validity", "2s", "--timeout", "10s"]);
    let before = gw.stats().sts_requests;
    let refreshes_before = m.status()["refresh_count"].as_u64().unwrap();
    // Long enough that status and listing, asked while it lasts, answer inside it even on
    // a loaded machine. Slowed before it is due: the keeper refreshes at that moment
    // whether or not anyone reads, and must not get a quick one in first.
    slow_down_next_sts_call(&gw, Duration::from_secs(6));
    wait_until_due(&m);
    // More waiting readers than the daemon has FUSE threads (4): none may hold one.
    let slow: Vec<_> = [
        "json",
        "credentials",
        "env",
        "config",
        "s3cfg",
        "rclone.conf",
        "json",
        "env",
    ]
    .into_iter()
    .map(|name| {
        let path = m.file(name);
        std::thread::spawn(move || std::fs::read(path))
    })
    .collect();
    wait_for(
        "the refresh to reach the STS",
        Duration::from_secs(10),
        || gw.stats().sts_requests > before,
    );
    // While that refresh is in flight, status (showing it unfinished) and listing answer.
    assert_eq!(
        m.status()["refresh_count"].as_u64().unwrap(),
        refreshes_before
    );
    assert_eq!(
        std::fs::read_dir(&m.path).unwrap().count(),
        NAMES.len() + 1,
        "the files and profiles/"
    );
    assert!(
        slow.iter().all(|reader| !reader.is_finished()),
        "status and ls answered while every reader still waited for the slow refresh"
    );
    for reader in slow {
        assert!(reader.join().unwrap().is_ok());
    }
    assert_eq!(
        gw.stats().sts_requests,
        before + 1,
        "all the readers shared one refresh"
    );
    assert_eq!(
        m.status()["refresh_count"].as_u64().unwrap(),
        refreshes_before + 1
    );
}

#[test]
fn lazy_mounts_fetch_on_first_read() {
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &["--lazy"]);
    assert_eq!(m.status()["state"], "empty");
    assert_eq!(
        gw.stats().sts_requests,
        0,
        "mounting and reading status fetched nothing"
    );
    // The first look at a credentials file (a stat here) fetches, so its size is exactly
    // what a read then returns; later reads share that fetch.
    let size = std::fs::metadata(m.file("json")).unwrap().len();
    assert_eq!(gw.stats().sts_issued, 1);
    assert_eq!(size, m.read("json").unwrap().len() as u64);
    m.access_key();
    assert_eq!(gw.stats().sts_issued, 1);
    assert_eq!(m.status()["state"], "fresh");
}

#[test]
fn only_the_mounting_user_can_use_the_mount() {
    common::require_root("it reads the mount as another user, uid 65534");
    use std::os::unix::process::CommandExt;
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &[]);
    // Let another user reach the mountpoint, so only the FUSE owner rule stands in the way.
    let parent = m.path.parent().unwrap();
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |args: &[&str]| {
        Command::new(args[0])
            .args(&args[1..])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    let json = m.file("json");
    let out = as_nobody(&["cat", json.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );
    assert!(out.stdout.is_empty());
    let out = as_nobody(&["ls", m.path.to_str().unwrap()]);
    assert!(!out.status.success(), "{out:?}");
    assert!(m.read("json").is_ok(), "the owner still reads");
    // The file modes alone would stop uid 65534; the mount itself must not admit others.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == m.path.to_str())
        .expect("the mount is listed");
    assert!(!line.contains("allow_other"), "{line}");
}
