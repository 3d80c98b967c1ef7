//! The real filesystem (`CredsFs` behind the FUSE adapter) mounted in this process over a
//! fake fetcher and a manual clock: what the kernel sees (sizes, mtimes, errno, one
//! snapshot per open) is tested by moving the clock, with no gateway.
//!
//! The kernel keeps names and attributes for at most `MAX_TTL` of real time (less when the
//! credentials are due or expire sooner, which a real clock cannot jump past). A jump of
//! the manual clock therefore reaches the kernel within one TTL: tests wait for it with a
//! deadline, as a reader on a real clock would see it within one TTL.

use crate::common::wait_for;
use s3credsfs::cache::{CredentialCache, Fetch, ManualClock, TimeSource};
use s3credsfs::creds::Credentials;
use s3credsfs::error::{Error, Result};
use s3credsfs::fs::CredsFs;
use s3credsfs::fuse::FuseAdapter;
use s3credsfs::mountpoint;
use s3credsfs::secret::Secret;
use s3credsfs::status::MountInfo;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a test steers in the fake fetcher.
struct Control {
    calls: AtomicUsize,
    fail: AtomicBool,
    clock: Arc<ManualClock>,
}

struct Fake(Arc<Control>);

impl Fetch for Fake {
    async fn fetch(&self) -> Result<Credentials> {
        let n = self.0.calls.fetch_add(1, Ordering::SeqCst);
        if self.0.fail.load(Ordering::SeqCst) {
            return Err(Error::Unreachable {
                url: "https://gw".into(),
                cause: s3credsfs::error::Cause::new(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "refused",
                )),
            });
        }
        // Every set has different field lengths, so a size one refresh behind shows.
        Ok(Credentials {
            access_key_id: format!("AKID{n:04}"),
            secret_access_key: Secret::new("s".repeat(40 + n)),
            session_token: Secret::new("t".repeat(100 + 37 * n)),
            expiration: self.0.clock.now() + chrono::Duration::hours(1),
            endpoint_url: "http://rgw:8080".into(),
        })
    }
}

/// An in-process mount on a temporary directory; unmounts when dropped.
struct InProcess {
    path: PathBuf,
    control: Arc<Control>,
    fs: Arc<CredsFs<Fake>>,
    session: Option<fuser::BackgroundSession>,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl InProcess {
    fn start() -> InProcess {
        let start = chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z").unwrap();
        let clock = Arc::new(ManualClock::new(start.to_utc(), 0.0));
        let control = Arc::new(Control {
            calls: AtomicUsize::new(0),
            fail: AtomicBool::new(false),
            clock: clock.clone(),
        });
        let cache = Arc::new(
            CredentialCache::new(
                Fake(control.clone()),
                Duration::from_secs(1200),
                Duration::from_secs(5),
                "https://gw",
            )
            .with_time(clock.clone()),
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds");
        std::fs::create_dir(&path).unwrap();
        let info = MountInfo {
            gateway: "https://gw".into(),
            auth: "fake".into(),
            profile: "default".into(),
            region: "us-east-1".into(),
            mountpoint: path.display().to_string(),
            pid: std::process::id(),
            min_validity_seconds: 1200,
            container_endpoint: None,
            log_file: None,
            control_socket: None,
            secret_env: None,
        };
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let fs = Arc::new(CredsFs::new(cache, info, None, |_: &Fake| None).with_time(clock));
        let adapter = FuseAdapter::shared(fs.clone(), runtime.handle().clone());
        let config = s3credsfs::mount::fuse_config();
        let session = fuser::Session::new(adapter, &path, &config)
            .expect("mount (needs /dev/fuse and root)")
            .spawn()
            .unwrap();
        InProcess {
            path,
            control,
            fs,
            session: Some(session),
            runtime,
            _dir: dir,
        }
    }

    fn advance(&self, seconds: u64) {
        self.control.clock.advance(Duration::from_secs(seconds));
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    fn calls(&self) -> usize {
        self.control.calls.load(Ordering::SeqCst)
    }

    fn read(&self, name: &str) -> std::io::Result<String> {
        std::fs::read_to_string(self.file(name))
    }

    /// Waits (within a few TTLs) until a fresh open of `json` shows access key `key`.
    fn wait_for_key(&self, key: &str) {
        wait_for(key, Duration::from_secs(5), || {
            self.read("json").is_ok_and(|t| t.contains(key))
        });
    }

    /// Opens `name`, then reads it through that handle: (size fstat gave, bytes read).
    fn open_stat_read(&self, name: &str) -> std::io::Result<(u64, String)> {
        let mut file = std::fs::File::open(self.file(name))?;
        let size = file.metadata()?.len();
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        Ok((size, text))
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = session.umount_and_join();
        }
        if mountpoint::state(&self.path) != mountpoint::MountState::Free {
            let _ = mountpoint::lazy_unmount(&self.path);
        }
    }
}

#[test]
fn sizes_match_what_a_read_returns_across_refreshes() {
    let m = InProcess::start();
    let mut sizes = Vec::new();
    for round in 0..3 {
        for (name, _) in s3credsfs::fs::FILES.iter().filter(|(n, _)| *n != "status") {
            let (size, text) = m.open_stat_read(name).unwrap();
            assert_eq!(size as usize, text.len(), "round {round}: {name}");
            // A plain stat after the open agrees too.
            assert_eq!(std::fs::metadata(m.file(name)).unwrap().len(), size);
        }
        sizes.push(std::fs::metadata(m.file("json")).unwrap().len());
        // Past the refresh time (40 min into a 1 h lifetime): new opens refresh.
        m.advance(41 * 60);
        m.wait_for_key(&format!("AKID{:04}", round + 1));
    }
    assert!(
        sizes[0] < sizes[1] && sizes[1] < sizes[2],
        "each refresh changed the size: {sizes:?}"
    );
    assert_eq!(m.calls(), 4);
}

#[test]
fn mtime_is_the_fetch_time_and_stable_between_refreshes() {
    let m = InProcess::start();
    let _ = m.open_stat_read("json").unwrap();
    let fetched = std::time::UNIX_EPOCH + Duration::from_secs(1_893_456_000); // 2030-01-01
    let mtime = || {
        std::fs::metadata(m.file("json"))
            .unwrap()
            .modified()
            .unwrap()
    };
    assert_eq!(mtime(), fetched);
    m.advance(600);
    let _ = m.open_stat_read("json").unwrap();
    assert_eq!(mtime(), fetched, "no refresh, no new mtime");
    m.advance(40 * 60);
    m.wait_for_key("AKID0001");
    assert_eq!(mtime(), fetched + Duration::from_secs(50 * 60));
}

/// Drops the kernel's cached pages of `file`, so the next read reaches the daemon.
fn drop_page_cache(file: &std::fs::File) {
    // SAFETY: a valid descriptor; fadvise reads no memory of ours.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0);
}

#[test]
fn one_open_reads_one_snapshot_even_across_a_refresh() {
    let m = InProcess::start();
    let old = std::fs::File::open(m.file("json")).unwrap();
    let size = old.metadata().unwrap().len();
    let mut whole = Vec::new();
    let mut piece = [0u8; 7];
    let mut refreshed = false;
    loop {
        // Every piece after the first comes from the daemon again, not from the pages
        // the first read cached: what a reader evicted by memory pressure would get.
        drop_page_cache(&old);
        let n = old.read_at(&mut piece, whole.len() as u64).unwrap();
        if n == 0 {
            break;
        }
        whole.extend_from_slice(&piece[..n]);
        if !refreshed {
            // A refresh, and a new reader of the new credentials, between two pieces.
            m.advance(41 * 60);
            m.wait_for_key("AKID0001");
            refreshed = true;
        }
    }
    assert_eq!(whole.len() as u64, size, "the size fstat gave");
    assert_eq!(old.metadata().unwrap().len(), size);
    let json: serde_json::Value = serde_json::from_slice(&whole).expect("no splice");
    assert_eq!(json["AccessKeyId"], "AKID0000");
}

#[test]
fn stat_then_refresh_then_open_fstat_read_agree() {
    // What bash `source` does (stat, open, fstat, read st_size bytes), with a refresh
    // landing between the stat and the open.
    let m = InProcess::start();
    for round in 0..3 {
        let before = std::fs::metadata(m.file("json")).unwrap().len();
        m.advance(41 * 60);
        // Another reader refreshes (straight through the filesystem, so at once).
        let entry = m.runtime.block_on(m.fs.lookup(1, "credentials")).unwrap();
        let refreshed = m.fs.read(entry.attr.ino, 0, 4096).unwrap();
        let refreshed = String::from_utf8_lossy(&refreshed);
        assert!(
            refreshed.contains(&format!("AKID{:04}\n", round + 1)),
            "the refresh happened: {refreshed}"
        );
        let (size, text) = m.open_stat_read("json").unwrap();
        assert_eq!(size as usize, text.len(), "round {round}");
        let json: serde_json::Value = serde_json::from_str(&text).expect("one whole snapshot");
        let key = json["AccessKeyId"].as_str().unwrap();
        assert!(
            size == before || key.ends_with(&format!("{}", round + 1)),
            "{key}"
        );
        let key = format!("AKID{:04}", round + 1);
        wait_for(&key, Duration::from_secs(5), || {
            m.read("json").unwrap().contains(&key)
        });
        let (size, text) = m.open_stat_read("json").unwrap();
        assert_eq!(size as usize, text.len(), "round {round}, refreshed");
        assert_ne!(size, before, "each refresh changes the size");
    }
}

#[test]
fn a_descriptor_held_past_expiry_gets_eio() {
    let m = InProcess::start();
    let held = std::fs::File::open(m.file("credentials")).unwrap();
    let mut buf = [0u8; 4096];
    let n = held.read_at(&mut buf, 0).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("AKID0000"));
    m.control.fail.store(true, Ordering::SeqCst);
    m.advance(61 * 60);
    // Within one attribute TTL the kernel re-asks, and then never serves the old pages.
    wait_for("EIO on the held descriptor", Duration::from_secs(5), || {
        held.read_at(&mut buf, 0).is_err()
    });
    for _ in 0..3 {
        let err = held.read_at(&mut buf, 0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        assert_eq!(held.metadata().unwrap_err().raw_os_error(), Some(libc::EIO));
    }
    // A fresh open with nothing valid and the gateway down: EIO too.
    let err = m.open_stat_read("credentials").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
}

#[test]
fn below_min_validity_new_opens_get_new_credentials_within_a_ttl() {
    let m = InProcess::start();
    assert!(m.read("credentials").unwrap().contains("AKID0000"));
    m.advance(41 * 60);
    let start = std::time::Instant::now();
    wait_for("refreshed credentials", Duration::from_secs(5), || {
        m.read("credentials").unwrap().contains("AKID0001")
    });
    // One TTL, plus room for a loaded machine.
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn status_never_fetches_and_shows_each_change() {
    let m = InProcess::start();
    let status = |m: &InProcess| -> serde_json::Value {
        serde_json::from_str(&m.read("status").unwrap()).unwrap()
    };
    for _ in 0..50 {
        assert_eq!(status(&m)["state"], "empty");
        let meta = std::fs::metadata(m.file("status")).unwrap();
        assert_eq!(meta.len() as usize, m.read("status").unwrap().len());
    }
    assert_eq!(m.calls(), 0, "status fetched nothing");
    m.read("json").unwrap();
    assert_eq!(status(&m)["state"], "fresh");
    m.advance(41 * 60);
    // No waiting: every open of status sees the state of that moment.
    assert_eq!(status(&m)["state"], "expiring");
    m.advance(20 * 60);
    assert_eq!(status(&m)["state"], "expired");
    assert_eq!(m.calls(), 1);
}

#[test]
fn repeated_reads_are_served_by_the_kernel_page_cache() {
    let m = InProcess::start();
    let expected = m.read("credentials").unwrap();
    let before = m.fs.reads();
    for _ in 0..1000 {
        assert_eq!(m.read("credentials").unwrap(), expected);
    }
    let reads = m.fs.reads() - before;
    assert!(reads < 100, "{reads} of 1000 reads reached the daemon");
    // The counter is real: once the cached pages are dropped, a read reaches the daemon.
    let file = std::fs::File::open(m.file("credentials")).unwrap();
    drop_page_cache(&file);
    let dropped = m.fs.reads();
    assert_eq!(std::io::read_to_string(&file).unwrap(), expected);
    assert!(
        m.fs.reads() > dropped,
        "a read after dropping the cache was counted"
    );
    assert!(before >= 1, "the first read reached the daemon");
    assert_eq!(m.calls(), 1);
}

#[test]
fn expired_credentials_give_eio_and_status_says_why() {
    let m = InProcess::start();
    m.open_stat_read("json").unwrap();
    m.control.fail.store(true, Ordering::SeqCst);
    m.advance(41 * 60);
    // Due but the gateway fails: the still-valid credentials are served.
    assert!(m.open_stat_read("json").unwrap().1.contains("AKID0000"));
    m.advance(20 * 60);
    // The kernel may still hold a name looked up under a second ago (when the real
    // clock could not have passed expiry): within one TTL every open fails, with EIO.
    for name in ["credentials", "json", "env"] {
        wait_for("EIO", Duration::from_secs(5), || {
            m.open_stat_read(name).is_err()
        });
        let err = m.open_stat_read(name).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "{name}");
    }
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(m.file("status")).unwrap()).unwrap();
    assert_eq!(status["state"], "error");
    assert!(status["last_error"]
        .as_str()
        .unwrap()
        .starts_with("cannot reach"));
    // Recovery after the backoff, by the clock alone. The kernel may still hold `json`
    // pointing at the expired generation it looked up under a second ago (its entry was
    // trusted for up to `MAX_TTL`, on the real clock): once that lapses, the next open
    // looks the name up again and gets the new credentials.
    m.control.fail.store(false, Ordering::SeqCst);
    m.advance(300);
    wait_for("recovered credentials", Duration::from_secs(5), || {
        m.open_stat_read("json")
            .is_ok_and(|(_, text)| text.contains("AccessKeyId"))
    });
}

/// What `stat` shows beyond size and mtime, as the adapter fills it in: one link per
/// file and two per directory (what `find` and `ls -l` count), blocks of 512 bytes that
/// cover the size (what `du` adds up), 4 KiB I/O blocks, and all three times the fetch time.
#[test]
fn stat_shows_links_blocks_and_times_as_a_disk_filesystem_would() {
    use std::os::unix::fs::MetadataExt;
    let m = InProcess::start();
    let root = std::fs::metadata(&m.path).unwrap();
    assert!(root.is_dir());
    assert_eq!(root.nlink(), 2, "a directory: itself and its entry");
    let meta = std::fs::metadata(m.file("credentials")).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.nlink(), 1);
    assert!(meta.size() > 0);
    assert_eq!(meta.blocks(), meta.size().div_ceil(512), "{meta:?}");
    assert_eq!(meta.blksize(), 4096);
    assert_eq!((meta.atime(), meta.ctime()), (meta.mtime(), meta.mtime()));
}

/// Closing a file of the mount succeeds: `cat` and others report a failed `close(2)`
/// as an error of the file they read.
#[test]
fn closing_a_file_after_reading_it_succeeds() {
    let m = InProcess::start();
    for name in ["credentials", "json", "status", "credentials"] {
        let mut file = std::fs::File::open(m.file(name)).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert!(!text.is_empty(), "{name}");
        assert_eq!(nix::unistd::close(file), Ok(()), "{name}");
    }
    let cat = std::process::Command::new("cat")
        .arg(m.file("json"))
        .output()
        .unwrap();
    assert!(
        cat.status.success(),
        "{}",
        String::from_utf8_lossy(&cat.stderr)
    );
}

/// Listing the mount names every file and the profiles directory, with their types,
/// and never fetches; a name that is not there is ENOENT.
#[test]
fn listing_names_every_file_without_fetching_and_a_missing_name_is_enoent() {
    let m = InProcess::start();
    let mut listed: Vec<(String, bool)> = std::fs::read_dir(&m.path)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, e.file_type().unwrap().is_dir())
        })
        .collect();
    listed.sort();
    let mut expected: Vec<(String, bool)> = s3credsfs::fs::FILES
        .iter()
        .map(|(name, _)| (name.to_string(), false))
        .collect();
    expected.push(("profiles".into(), true));
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(m.calls(), 0, "listing fetched nothing");
    let missing = std::fs::metadata(m.file("no-such-file")).unwrap_err();
    assert_eq!(missing.raw_os_error(), Some(libc::ENOENT));
    let missing = std::fs::File::open(m.file("no-such-file")).unwrap_err();
    assert_eq!(missing.raw_os_error(), Some(libc::ENOENT));
}
