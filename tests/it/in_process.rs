//! The real filesystem (`CredsFs` behind the FUSE adapter) mounted in this process over a
//! fake fetcher and a manual clock: what the kernel sees (sizes, mtimes, errno, one
//! snapshot per open) is tested by moving the clock, with no gateway and no waiting.

use s3credsfs::cache::{CredentialCache, Fetch, ManualClock, TimeSource};
use s3credsfs::creds::Credentials;
use s3credsfs::error::{Error, Result};
use s3credsfs::fs::CredsFs;
use s3credsfs::fuse::FuseAdapter;
use s3credsfs::mount::mountpoint;
use s3credsfs::secret::Secret;
use s3credsfs::status::MountInfo;
use std::io::Read;
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
    session: Option<fuser::BackgroundSession>,
    _runtime: tokio::runtime::Runtime,
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
            .with_time(clock),
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
        };
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let fs = CredsFs::new(cache, info, None, |_: &Fake| None);
        let adapter = FuseAdapter::new(fs, runtime.handle().clone());
        let config = s3credsfs::mount::fuse_config();
        let session = fuser::Session::new(adapter, &path, &config)
            .expect("mount (needs /dev/fuse and root)")
            .spawn()
            .unwrap();
        InProcess {
            path,
            control,
            session: Some(session),
            _runtime: runtime,
            _dir: dir,
        }
    }

    fn advance(&self, seconds: u64) {
        self.control.clock.advance(Duration::from_secs(seconds));
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
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
        // Past the refresh time (40 min into a 1 h lifetime): the next open refreshes.
        m.advance(41 * 60);
    }
    assert!(
        sizes[0] < sizes[1] && sizes[1] < sizes[2],
        "each refresh changed the size: {sizes:?}"
    );
    assert_eq!(m.control.calls.load(Ordering::SeqCst), 3);
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
    let _ = m.open_stat_read("json").unwrap();
    assert_eq!(mtime(), fetched + Duration::from_secs(50 * 60));
}

#[test]
fn one_open_reads_one_snapshot_even_across_a_refresh() {
    let m = InProcess::start();
    let mut old = std::fs::File::open(m.file("json")).unwrap();
    let mut first_part = [0u8; 20];
    old.read_exact(&mut first_part).unwrap();
    m.advance(41 * 60);
    let (_, newer) = m.open_stat_read("json").unwrap();
    assert!(newer.contains("AKID0001"), "{newer}");
    let mut rest = String::new();
    old.read_to_string(&mut rest).unwrap();
    let whole = format!("{}{rest}", String::from_utf8_lossy(&first_part));
    let json: serde_json::Value = serde_json::from_str(&whole).expect("no splice");
    assert_eq!(json["AccessKeyId"], "AKID0000");
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
    for name in ["credentials", "json", "env"] {
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
    // Recovery after the backoff, by the clock alone.
    m.control.fail.store(false, Ordering::SeqCst);
    m.advance(300);
    assert!(m.open_stat_read("json").unwrap().1.contains("AccessKeyId"));
}
