use super::inodes::{Rendering, Renderings};
use super::*;
use crate::secret::SecretBytes;

/// An empty rendering of `slot`, valid for an hour from `now`.
fn empty_rendering(slot: Slot, now: chrono::DateTime<chrono::Utc>) -> Rendering {
    Rendering::new(
        slot,
        now + chrono::Duration::hours(1),
        now,
        SystemTime::now(),
        Ok(Arc::new(SecretBytes::new(String::new()))),
    )
}

/// File `file` of the root.
fn root_slot(file: usize) -> Slot {
    Slot {
        dir: Dir::Root,
        file,
    }
}
use crate::cache::{ManualClock, TimeSource};
use crate::creds::Credentials;
use crate::secret::Secret;
use std::sync::atomic::{AtomicBool, AtomicUsize};

struct Fake {
    calls: AtomicUsize,
    lifetime: chrono::Duration,
    fail: AtomicBool,
    clock: Arc<ManualClock>,
}

impl Fetch for Fake {
    async fn fetch(&self) -> crate::error::Result<Credentials> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::Unreachable {
                url: "https://gw".into(),
                cause: crate::error::Cause::new(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "refused",
                )),
            });
        }
        Ok(Credentials {
            access_key_id: format!("AK{n:04}"),
            secret_access_key: Secret::new(format!("secret-{n}")),
            session_token: Secret::new("token".repeat(n + 1)),
            expiration: self.clock.now() + self.lifetime,
            endpoint_url: "http://rgw:8080".into(),
        })
    }
}

struct Harness {
    fs: CredsFs<Fake>,
    clock: Arc<ManualClock>,
    runtime: tokio::runtime::Runtime,
}

impl Harness {
    fn names(&self) -> Vec<String> {
        let entries = self.fs.readdir(ROOT_INO, 0).unwrap();
        entries.into_iter().map(|e| e.2).collect()
    }

    fn lookup(&self, name: &str) -> Result<Entry, FsError> {
        self.runtime.block_on(self.fs.lookup(ROOT_INO, name))
    }

    fn ino(&self, name: &str) -> u64 {
        self.lookup(name).unwrap().attr.ino
    }

    fn advance(&self, seconds: u64) {
        self.clock.advance(Duration::from_secs(seconds));
    }

    /// An inode's whole content, read 7 bytes at a time as the kernel might.
    fn read_ino(&self, ino: u64) -> Result<Vec<u8>, FsError> {
        let mut out = Vec::new();
        loop {
            let chunk = self.fs.read(ino, out.len() as u64, 7)?;
            if chunk.is_empty() {
                return Ok(out);
            }
            out.extend_from_slice(&chunk);
        }
    }
}

fn harness(lifetime: chrono::Duration, fail: bool) -> Harness {
    harness_with(lifetime, fail, None)
}

/// Min-validity is 20 minutes: one-hour credentials are due after 40.
fn harness_with(
    lifetime: chrono::Duration,
    fail: bool,
    container: Option<ContainerEndpoint>,
) -> Harness {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let start = chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z").unwrap();
    let clock = Arc::new(ManualClock::new(start.to_utc(), 0.0));
    let fake = Fake {
        calls: AtomicUsize::new(0),
        lifetime,
        fail: AtomicBool::new(fail),
        clock: clock.clone(),
    };
    let cache = Arc::new(
        CredentialCache::new(
            fake,
            Duration::from_secs(1200),
            Duration::from_secs(5),
            "https://gw",
        )
        .with_time(clock.clone()),
    );
    let info = MountInfo {
        gateway: "https://gw".into(),
        auth: "password".into(),
        profile: "default".into(),
        region: "us-east-1".into(),
        mountpoint: "/m nt".into(),
        pid: 1,
        min_validity_seconds: 1200,
        container_endpoint: container.as_ref().map(|c| c.url.clone()),
        log_file: None,
        control_socket: None,
        secret_env: None,
    };
    let fs = CredsFs::new(cache, info, container, |_| Some("dev".into())).with_time(clock.clone());
    Harness { fs, clock, runtime }
}

fn read_all(h: &Harness, name: &str) -> Vec<u8> {
    let ino = h.ino(name);
    h.read_ino(ino).unwrap()
}

fn calls(fs: &CredsFs<Fake>) -> usize {
    fs.profiles[0].cache.fetcher().calls.load(Ordering::SeqCst)
}

#[test]
fn names_modes_and_errors() {
    let h = harness(chrono::Duration::hours(1), false);
    let root = h.fs.getattr(ROOT_INO).unwrap();
    assert!(root.is_dir);
    assert_eq!(root.perm, 0o500);
    let names = h.names();
    assert_eq!(
        names,
        [
            ".",
            "..",
            "credentials",
            "config",
            "env",
            "json",
            "s3cfg",
            "rclone.conf",
            "status",
            "profiles"
        ]
    );
    assert_eq!(h.fs.readdir(ROOT_INO, 9).unwrap().len(), 1);
    assert_eq!(h.lookup("status").unwrap().attr.perm, 0o400);
    assert_eq!(calls(&h.fs), 0, "listing, the root and status never fetch");
    for (name, _) in FILES {
        let attr = h.lookup(name).unwrap().attr;
        assert_eq!((attr.is_dir, attr.perm), (false, 0o400), "{name}");
    }
    assert_eq!(h.lookup("nope").unwrap_err().errno(), libc::ENOENT);
    let json = h.ino("json");
    let not_dir = h.runtime.block_on(h.fs.lookup(json, "json"));
    assert_eq!(not_dir.unwrap_err().errno(), libc::ENOTDIR);
    let nothing = h.runtime.block_on(h.fs.lookup(5, "json"));
    assert_eq!(nothing.unwrap_err().errno(), libc::ENOENT);
    assert_eq!(h.fs.open(json, true).unwrap_err().errno(), libc::EROFS);
    assert_eq!(
        h.fs.open(ROOT_INO, false).unwrap_err().errno(),
        libc::EISDIR
    );
    assert!(h.fs.open(json, false).is_ok());
    assert_eq!(h.fs.getattr(0x7f).unwrap_err().errno(), libc::ENOENT);
    assert_eq!(calls(&h.fs), 1, "one fetch served every credentials lookup");
}

#[test]
fn sizes_match_what_a_read_returns() {
    let h = harness(chrono::Duration::hours(1), false);
    let json = read_all(&h, "json");
    for (name, _) in FILES.iter().filter(|(n, _)| *n != "status") {
        let bytes = read_all(&h, name);
        assert_eq!(
            h.lookup(name).unwrap().attr.size,
            bytes.len() as u64,
            "{name}"
        );
    }
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(value["AccessKeyId"], "AK0000");
    let config = String::from_utf8(read_all(&h, "config")).unwrap();
    assert!(
        config.ends_with("credential_process = cat '/m nt/json'\n"),
        "{config}"
    );
    assert_eq!(calls(&h.fs), 1);
    for (file, _) in FILES
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| *n != "status")
    {
        assert_eq!(lock(&h.fs.renderings).kept(root_slot(file)), 1);
    }
}

#[test]
fn status_never_fetches() {
    let h = harness(chrono::Duration::hours(1), false);
    let status: serde_json::Value = serde_json::from_slice(&read_all(&h, "status")).unwrap();
    assert_eq!(status["state"], "empty");
    assert_eq!(status["user"], "dev");
    assert_eq!(calls(&h.fs), 0);
    read_all(&h, "env");
    let status: serde_json::Value = serde_json::from_slice(&read_all(&h, "status")).unwrap();
    assert_eq!(status["refresh_count"], 1);
    assert!(!status.to_string().contains("secret-0"));
}

#[test]
fn an_inode_keeps_its_generation_across_a_refresh() {
    let h = harness(chrono::Duration::hours(1), false);
    let old = h.ino("credentials");
    let first_part = h.fs.read(old, 0, 10).unwrap();
    h.advance(41 * 60);
    let new = h.ino("credentials");
    assert_ne!(old, new, "a refresh gives the name a new inode");
    assert_eq!(calls(&h.fs), 2);
    // Another reader of the new generation in between changes nothing for the old one.
    assert!(String::from_utf8(h.read_ino(new).unwrap())
        .unwrap()
        .contains("AK0001"));
    let rest = h.read_ino(old).unwrap().split_off(10);
    let whole = String::from_utf8([first_part.as_slice(), rest.as_slice()].concat()).unwrap();
    assert_eq!(whole.len() as u64, h.fs.getattr(old).unwrap().size);
    assert!(whole.contains("aws_access_key_id = AK0000\n"), "{whole}");
    assert!(
        whole.contains("aws_secret_access_key = secret-0\n"),
        "{whole}"
    );
}

/// The filesystem judges inodes and dates its root on its own clock, not on a profile's
/// cache's: here the two differ, and the filesystem's decides.
#[test]
fn the_filesystem_judges_its_inodes_on_its_own_clock() {
    let Harness { fs, clock, runtime } = harness(chrono::Duration::hours(1), false);
    let start = clock.now();
    let own = Arc::new(ManualClock::new(start, 0.0));
    let h = Harness {
        fs: fs.with_time(own.clone()),
        clock,
        runtime,
    };
    assert_eq!(
        h.fs.getattr(ROOT_INO).unwrap().mtime,
        SystemTime::from(start)
    );
    let json = h.ino("json");
    own.advance(Duration::from_secs(3600) - Duration::from_millis(500));
    assert_eq!(h.fs.getattr(json).unwrap().ttl, Duration::from_millis(500));
    own.advance(Duration::from_millis(500));
    assert_eq!(h.fs.getattr(json).unwrap_err().errno(), libc::EIO);
    assert!(
        h.fs.profiles[0].cache.peek().is_some(),
        "the caches' clock did not move"
    );
}

#[test]
fn expired_generations_are_eio_and_dropped() {
    let h = harness(chrono::Duration::hours(1), false);
    let old = h.ino("json");
    assert_eq!(h.fs.getattr(old).unwrap().ttl, MAX_TTL);
    h.advance(41 * 60);
    let new = h.ino("json");
    // Still valid: the old inode serves its own bytes, its attributes expire with it.
    assert!(h.read_ino(old).is_ok());
    h.advance(19 * 60 - 1);
    h.clock.advance(Duration::from_millis(500));
    assert_eq!(h.fs.getattr(old).unwrap().ttl, Duration::from_millis(500));
    h.clock.advance(Duration::from_millis(500));
    assert_eq!(h.fs.getattr(old).unwrap_err().errno(), libc::EIO);
    assert_eq!(h.fs.read(old, 0, 4096).unwrap_err().errno(), libc::EIO);
    assert_eq!(
        lock(&h.fs.renderings).kept(root_slot(3)),
        1,
        "the expired one was dropped"
    );
    assert!(h.read_ino(new).is_ok());
    // A name's entry is trusted no longer than until its generation is due.
    h.advance(21 * 60 - 1);
    let entry = h.lookup("json").unwrap();
    assert_eq!(entry.attr.ino, new);
    assert!(entry.ttl <= Duration::from_secs(1), "{:?}", entry.ttl);
    h.fs.profiles[0]
        .cache
        .fetcher()
        .fail
        .store(true, Ordering::SeqCst);
    h.advance(21 * 60);
    assert_eq!(h.lookup("json").unwrap_err().errno(), libc::EIO);
    assert_eq!(h.fs.read(new, 0, 4096).unwrap_err().errno(), libc::EIO);
}

#[test]
fn expired_and_all_but_the_newest_generations_are_dropped() {
    // Credentials living 10 s against 20 min of min-validity: due at half their life.
    let h = harness(chrono::Duration::seconds(10), false);
    let first = h.ino("env");
    for _ in 0..3 {
        h.advance(5);
        h.ino("env");
    }
    assert_eq!(calls(&h.fs), 4);
    assert_eq!(
        lock(&h.fs.renderings).kept(root_slot(2)),
        2,
        "expired ones went first"
    );
    assert_eq!(h.fs.getattr(first).unwrap_err().errno(), libc::EIO);

    let now = h.clock.now();
    let mut kept = Renderings::default();
    let make = |slot: Slot| move || empty_rendering(slot, now);
    let mut inos = Vec::new();
    for generation in 1..=KEPT_GENERATIONS as u64 + 2 {
        let inputs = [Input::Generation(generation)];
        inos.push(
            kept.get_or_render(root_slot(0), &inputs, now, make(root_slot(0)))
                .0,
        );
        // The same inputs again: the same inode, nothing new rendered.
        let again = kept.get_or_render(root_slot(0), &inputs, now, || unreachable!());
        assert_eq!(again.0, *inos.last().unwrap());
    }
    // Another file's renderings do not count against this one's.
    kept.get_or_render(
        root_slot(1),
        &[Input::Generation(1)],
        now,
        make(root_slot(1)),
    );
    assert_eq!(kept.kept(root_slot(0)), KEPT_GENERATIONS);
    assert_eq!(kept.kept(root_slot(1)), 1);
    let seq = |ino: u64| match decode(ino) {
        Ino::Rendering(seq) => seq,
        other => panic!("{other:?}"),
    };
    assert!(kept.get(seq(inos[1]), now).is_none(), "the oldest went");
    assert!(kept.get(seq(inos[2]), now).is_some());
    assert_eq!(kept.newest(root_slot(0)), inos.last().copied());
}

#[test]
fn status_inodes_are_frozen_freed_on_forget_and_capped() {
    let h = harness(chrono::Duration::hours(1), false);
    let before = h.lookup("status").unwrap().attr;
    let text = h.read_ino(before.ino).unwrap();
    assert_eq!(text.len() as u64, before.size);
    read_all(&h, "json");
    let after = h.lookup("status").unwrap().attr;
    assert_ne!(before.ino, after.ino);
    assert_eq!(
        h.read_ino(before.ino).unwrap(),
        text,
        "frozen at its lookup"
    );
    let status: serde_json::Value =
        serde_json::from_slice(&h.read_ino(after.ino).unwrap()).unwrap();
    assert_eq!(status["refresh_count"], 1);
    h.fs.forget(before.ino, 1);
    assert_eq!(h.fs.read(before.ino, 0, 10).unwrap_err().errno(), libc::EIO);
    for _ in 0..KEPT_STATUS + 10 {
        h.lookup("status").unwrap();
    }
    assert_eq!(lock(&h.fs.status_docs).kept(), KEPT_STATUS);
    assert_eq!(
        h.fs.getattr(after.ino).unwrap_err().errno(),
        libc::EIO,
        "oldest dropped"
    );
    assert_eq!(calls(&h.fs), 1);
}

#[test]
fn inode_numbers_never_collide() {
    let mut seen = std::collections::HashSet::from([ROOT_INO, PROFILES_INO, UNRENDERED_INO]);
    for file in 0..FILES.len() + 1 {
        assert!(seen.insert(unrendered_ino(file)));
        assert_eq!(decode(unrendered_ino(file)), Ino::Unknown);
    }
    for i in 0..crate::config::MAX_PROFILES {
        let ino = profile_dir_ino(i);
        assert!(seen.insert(ino), "{ino:#x}");
        assert_eq!(decode(ino), Ino::ProfileDir(i));
    }
    let now = chrono::Utc::now();
    let mut renderings = Renderings::default();
    let mut docs = StatusDocs::default();
    for n in 0..300 {
        let slot = root_slot(n % FILES.len());
        let (ino, _) = renderings.get_or_render(slot, &[Input::Generation(n as u64)], now, || {
            empty_rendering(slot, now)
        });
        assert!(seen.insert(ino), "{ino:#x}");
        assert!(matches!(decode(ino), Ino::Rendering(_)));
        let ino = docs.insert(Vec::new(), SystemTime::now());
        assert!(seen.insert(ino), "{ino:#x}");
        assert!(matches!(decode(ino), Ino::Status(_)));
    }
    assert_eq!(decode(0x40), Ino::Unknown, "rendering number 0");
    assert_eq!(decode(0x80), Ino::Unknown, "status number 0");
    assert_eq!(decode(0), Ino::Unknown);
}

#[test]
fn container_env_appears_only_with_the_endpoint() {
    let h = harness(chrono::Duration::hours(1), false);
    assert!(h.lookup(CONTAINER_ENV).is_err());
    let endpoint = ContainerEndpoint {
        url: "http://127.0.0.1:1/credentials".into(),
        token: Secret::new("tok"),
    };
    let h = harness_with(chrono::Duration::hours(1), false, Some(endpoint));
    let names = h.names();
    assert_eq!(names[names.len() - 2], CONTAINER_ENV);
    let text = String::from_utf8(read_all(&h, CONTAINER_ENV)).unwrap();
    assert!(
        text.contains("export AWS_CONTAINER_AUTHORIZATION_TOKEN='tok'\n"),
        "{text}"
    );
    assert!(
        text.contains("export AWS_ENDPOINT_URL='http://rgw:8080'\n"),
        "{text}"
    );
    assert_eq!(
        h.lookup(CONTAINER_ENV).unwrap().attr.size,
        text.len() as u64
    );
}

#[test]
fn the_credential_process_line_quotes_only_what_needs_it() {
    assert_eq!(
        credential_process_for("/home/u-1/.s3creds/"),
        "cat /home/u-1/.s3creds/json"
    );
    assert_eq!(
        credential_process_for("/mnt/a+b@c%d=e:f,g"),
        "cat /mnt/a+b@c%d=e:f,g/json"
    );
    assert_eq!(
        credential_process_for("/home/o'neil/my creds"),
        r"cat '/home/o'\''neil/my creds/json'"
    );
}

#[test]
fn listing_shows_the_newest_generation_and_resumes_where_it_stopped() {
    let h = harness(chrono::Duration::hours(1), false);
    let ino = h.ino("json");
    let entries = h.fs.readdir(ROOT_INO, 0).unwrap();
    // Each entry's offset is where the next listing call resumes.
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry.3, i as u64 + 1, "{entry:?}");
        let rest = h.fs.readdir(ROOT_INO, entry.3).unwrap();
        assert_eq!(
            rest.first().map(|e| e.2.clone()),
            entries.get(i + 1).map(|e| e.2.clone())
        );
    }
    let by_name = |name: &str| entries.iter().find(|e| e.2 == name).unwrap().0;
    assert_eq!(by_name("json"), ino, "the generation a lookup gives");
    assert_eq!(by_name("status"), UNRENDERED_INO);
    assert_ne!(by_name("status"), by_name("credentials"));
}

mod profiles;

/// What `body` logs at info level and above, as the daemon's log would show it.
fn logged(body: impl FnOnce()) -> String {
    crate::test_log::logged(tracing::Level::INFO, body)
}

/// A reader retrying every second against a failing profile logs its refusal once a
/// minute, naming the profile, with the count of the ones not logged.
#[test]
fn repeated_refusals_are_logged_once_a_minute_with_a_count() {
    let h = harness(chrono::Duration::hours(1), true);
    let log = logged(|| {
        for _ in 0..30 {
            assert!(matches!(
                h.lookup("credentials"),
                Err(FsError::Credentials(_))
            ));
            h.advance(1);
        }
    });
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refusing a read"))
        .collect();
    assert_eq!(refusals.len(), 1, "{log}");
    assert!(refusals[0].contains("profile=default"), "{log}");
    assert!(refusals[0].contains("cannot reach https://gw"), "{log}");
    h.advance(60);
    let log = logged(|| {
        assert!(h.lookup("credentials").is_err());
        assert!(h.lookup("credentials").is_err());
    });
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refusing a read"))
        .collect();
    assert_eq!(refusals.len(), 1, "{log}");
    assert!(
        refusals[0].contains("(29 more like it in the last minute, not logged)"),
        "{log}"
    );
}
