use super::*;
use crate::creds::Credentials;
use crate::secret::Secret;
use chrono::Utc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

struct Fake {
    calls: AtomicUsize,
    lifetime: chrono::Duration,
    fail: bool,
}

impl Fetch for Fake {
    async fn fetch(&self) -> crate::error::Result<Credentials> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail {
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
            expiration: Utc::now() + self.lifetime,
            endpoint_url: "http://rgw:8080".into(),
        })
    }
}

struct Harness {
    fs: CredsFs<Fake>,
    runtime: tokio::runtime::Runtime,
}

impl Harness {
    fn names(&self) -> Vec<&'static str> {
        let entries = self.fs.readdir(ROOT_INO, 0).unwrap();
        entries.iter().map(|e| e.2).collect()
    }

    fn open(&self, ino: u64, write: bool) -> Result<u64, FsError> {
        self.runtime.block_on(self.fs.open(ino, write))
    }
}

fn harness(lifetime: chrono::Duration, fail: bool) -> Harness {
    harness_with(lifetime, fail, None)
}

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
    let fake = Fake {
        calls: AtomicUsize::new(0),
        lifetime,
        fail,
    };
    let cache = Arc::new(CredentialCache::new(
        fake,
        Duration::from_secs(3600),
        Duration::from_secs(5),
        "https://gw",
    ));
    let info = MountInfo {
        gateway: "https://gw".into(),
        auth: "password".into(),
        profile: "default".into(),
        region: "us-east-1".into(),
        mountpoint: "/m nt".into(),
        pid: 1,
        min_validity_seconds: 3600,
        container_endpoint: container.as_ref().map(|c| c.url.clone()),
    };
    let fs = CredsFs::new(cache, info, container, |_| Some("dev".into()));
    Harness { fs, runtime }
}

fn read_all(h: &Harness, name: &str) -> Vec<u8> {
    let fs = &h.fs;
    let ino = fs.lookup(ROOT_INO, name).unwrap().ino;
    let handle = h.open(ino, false).unwrap();
    let mut out = Vec::new();
    loop {
        let chunk = fs.read(handle, out.len() as u64, 7).unwrap();
        if chunk.is_empty() {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    fs.release(handle);
    out
}

fn calls(fs: &CredsFs<Fake>) -> usize {
    fs.cache.fetcher().calls.load(Ordering::SeqCst)
}

#[test]
fn names_modes_and_errors() {
    let h = harness(chrono::Duration::hours(1), false);
    let root = h.fs.getattr(ROOT_INO).unwrap();
    assert!(root.is_dir);
    assert_eq!(root.perm, 0o500);
    for (name, _) in FILES {
        let attr = h.fs.lookup(ROOT_INO, name).unwrap();
        assert_eq!((attr.is_dir, attr.perm), (false, 0o400), "{name}");
    }
    assert_eq!(
        h.fs.lookup(ROOT_INO, "nope").unwrap_err().errno(),
        libc::ENOENT
    );
    assert_eq!(h.fs.lookup(5, "json").unwrap_err().errno(), libc::ENOTDIR);
    let json = h.fs.lookup(ROOT_INO, "json").unwrap().ino;
    assert_eq!(h.open(json, true).unwrap_err().errno(), libc::EROFS);
    assert_eq!(h.open(ROOT_INO, false).unwrap_err().errno(), libc::EISDIR);
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
            "status"
        ]
    );
    assert_eq!(h.fs.readdir(ROOT_INO, 8).unwrap().len(), 1);
    assert_eq!(calls(&h.fs), 0, "nothing above fetches");
}

#[test]
fn sizes_match_what_a_read_returns() {
    let h = harness(chrono::Duration::hours(1), false);
    let json = read_all(&h, "json");
    for (name, _) in FILES.iter().filter(|(n, _)| *n != "status") {
        let bytes = read_all(&h, name);
        assert_eq!(
            h.fs.lookup(ROOT_INO, name).unwrap().size,
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
    assert_eq!(lock(&h.fs.handles).len(), 0);
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
fn an_open_handle_keeps_its_snapshot_across_a_refresh() {
    // Two seconds of life against an hour of min-validity: due again after one second.
    let h = harness(chrono::Duration::seconds(2), false);
    let ino = h.fs.lookup(ROOT_INO, "credentials").unwrap().ino;
    let old = h.open(ino, false).unwrap();
    let first_part = h.fs.read(old, 0, 10).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while calls(&h.fs) < 2 {
        assert!(std::time::Instant::now() < deadline, "no refresh");
        let handle = h.open(ino, false).unwrap();
        h.fs.release(handle);
        std::thread::sleep(Duration::from_millis(20));
    }
    let rest = h.fs.read(old, 10, 4096).unwrap();
    let whole = String::from_utf8([first_part.as_slice(), rest.as_slice()].concat()).unwrap();
    assert!(whole.contains("aws_access_key_id = AK0000\n"), "{whole}");
    assert!(
        whole.contains("aws_secret_access_key = secret-0\n"),
        "{whole}"
    );
    assert!(String::from_utf8(read_all(&h, "credentials"))
        .unwrap()
        .contains("AK0001"));
}

#[test]
fn no_credentials_is_eio() {
    let h = harness(chrono::Duration::hours(1), true);
    let ino = h.fs.lookup(ROOT_INO, "json").unwrap().ino;
    let err = h.open(ino, false).unwrap_err();
    assert_eq!(err.errno(), libc::EIO);
    let status: serde_json::Value = serde_json::from_slice(&read_all(&h, "status")).unwrap();
    assert_eq!(status["state"], "error");
    assert!(status["last_error"]
        .as_str()
        .unwrap()
        .starts_with("cannot reach https://gw"));
    assert_eq!(h.fs.getattr(ino).unwrap().size, 0);
}

#[test]
fn container_env_appears_only_with_the_endpoint() {
    let h = harness(chrono::Duration::hours(1), false);
    assert!(h.fs.lookup(ROOT_INO, CONTAINER_ENV).is_err());
    let endpoint = ContainerEndpoint {
        url: "http://127.0.0.1:1/credentials".into(),
        token: Secret::new("tok"),
    };
    let h = harness_with(chrono::Duration::hours(1), false, Some(endpoint));
    let names = h.names();
    assert_eq!(names.last(), Some(&CONTAINER_ENV));
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
        h.fs.lookup(ROOT_INO, CONTAINER_ENV).unwrap().size,
        text.len() as u64
    );
}
