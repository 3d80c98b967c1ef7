//! The `metrics-file` writer: a small task of the mount that keeps the Prometheus text of
//! [`crate::metrics::render`] in a file for node_exporter's textfile collector.
//!
//! The file is replaced whole (temporary file, then rename) on every refresh or failure
//! and every [`INTERVAL`] besides, so the seconds until expiry are never more than that
//! old; at unmount it is written once more with `s3credsfs_up 0`. A daemon that dies
//! leaves its last file: node_exporter's `node_textfile_mtime_seconds` shows its age.

use crate::cache::{CredentialCache, Fetch};
use crate::error::Result;
use crate::metrics::{render, Build, ProfileSample, Sample};
use crate::sync::lock;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest the file goes unwritten while the mount runs.
pub const INTERVAL: Duration = Duration::from_secs(15);

/// The file's mode: node_exporter runs as another user and must read it; it holds no
/// secret.
const MODE: u32 = 0o644;

/// What the errors about the file tell the user to change.
const FIX: &str = "fix --metrics-file";

/// Reads every profile's state at one moment.
type Sampler = dyn Fn() -> (chrono::DateTime<chrono::Utc>, Vec<ProfileSample>) + Send + Sync;

/// One mount's metrics file.
pub struct MetricsFile {
    path: PathBuf,
    mountpoint: String,
    sample: Box<Sampler>,
    changed: Arc<tokio::sync::Notify>,
    /// Held across every write of the writer task and of `finish`, so the last file
    /// written is the one saying the mount is down.
    state: Mutex<WriterState>,
}

#[derive(Default)]
struct WriterState {
    /// The last write error logged, so a failing write is logged once, not every 15 s.
    last_error: Option<String>,
    /// `finish` has written the last file.
    down: bool,
}

impl MetricsFile {
    /// The file at `path` showing `profiles` (name and cache, the default first), woken
    /// by `changed` (the `Notify` every profile's metrics were made with).
    pub fn new<F: Fetch>(
        path: &Path,
        mountpoint: &Path,
        profiles: Vec<(String, Arc<CredentialCache<F>>)>,
        changed: Arc<tokio::sync::Notify>,
    ) -> Self {
        let sample = move || {
            let now = profiles
                .first()
                .map_or_else(chrono::Utc::now, |(_, cache)| cache.now());
            let samples = profiles
                .iter()
                .map(|(name, cache)| {
                    let status = cache.status();
                    ProfileSample {
                        name: name.clone(),
                        expiration: status.expiration,
                        last_refresh: status.last_refresh,
                        counts: cache.metrics().counts(),
                    }
                })
                .collect();
            (now, samples)
        };
        MetricsFile {
            path: path.to_path_buf(),
            mountpoint: mountpoint.display().to_string(),
            sample: Box::new(sample),
            changed,
            state: Mutex::default(),
        }
    }

    /// Checks the path before the mount starts, so a symbolic link or a missing directory
    /// is refused with a sentence instead of a log line.
    pub fn check(path: &Path) -> Result<()> {
        crate::files::check_replaceable(path, "metrics file", FIX)
    }

    /// Renders and replaces the file now; `up` is false only for the last write.
    pub fn write(&self, up: bool) -> Result<()> {
        let (now, profiles) = (self.sample)();
        let text = render(&Sample {
            now,
            build: Build::current(),
            up,
            mountpoint: self.mountpoint.clone(),
            profiles,
        });
        crate::files::replace_file(&self.path, text.as_bytes(), MODE, "metrics file", FIX)
    }

    /// Writes the file, then keeps it current on `runtime`. Called before mounting: a path
    /// that cannot be written is a configuration error, said now rather than in the log.
    pub fn start(self: &Arc<Self>, runtime: &tokio::runtime::Handle) -> Result<()> {
        self.write(true)?;
        runtime.spawn(Arc::clone(self).run());
        Ok(())
    }

    /// Writes, logging a failure once until it changes or a write succeeds again; says
    /// whether it logged.
    fn write_logged(&self, up: bool) -> bool {
        let mut state = lock(&self.state);
        if state.down {
            return false;
        }
        state.down = !up;
        let outcome = self.write(up).err().map(|e| e.to_string());
        let last = &mut state.last_error;
        let logged = match &outcome {
            Some(error) if last.as_ref() != Some(error) => {
                tracing::warn!(error = %error, "cannot update the metrics file");
                true
            }
            None if last.is_some() => {
                tracing::info!(path = %self.path.display(), "the metrics file is written again");
                true
            }
            _ => false,
        };
        *last = outcome;
        logged
    }

    /// Rewrites the file on every change and every [`INTERVAL`], until the task is
    /// dropped with the runtime.
    pub async fn run(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.changed.notified() => {}
                _ = tokio::time::sleep(INTERVAL) => {}
            }
            let _ = self.write_logged(true);
        }
    }

    /// The last write, at unmount: the mount is down.
    pub fn finish(&self) {
        let _ = self.write_logged(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::ManualClock;
    use crate::creds::Credentials;
    use crate::error::Error;
    use crate::metrics::ProfileMetrics;

    /// A fetcher that hands out credentials valid for an hour of the shared clock.
    struct Hourly(Arc<ManualClock>);

    impl Fetch for Hourly {
        async fn fetch(&self) -> crate::error::Result<Credentials> {
            use crate::cache::TimeSource;
            Ok(Credentials {
                access_key_id: "AK".into(),
                secret_access_key: "SK".into(),
                session_token: "ST".into(),
                endpoint_url: "http://rgw".into(),
                expiration: self.0.now() + chrono::Duration::hours(1),
            })
        }
    }

    /// The loop writes at start of each change and every 15 s of tokio's (paused) clock,
    /// and the file always shows the cache's state on the cache's clock.
    #[tokio::test(start_paused = true)]
    async fn rewrites_on_change_and_every_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s3credsfs.prom");
        let start = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let clock = Arc::new(ManualClock::new(start, 0.0));
        let changed = Arc::new(tokio::sync::Notify::new());
        let cache = Arc::new(
            CredentialCache::new(
                Hourly(clock.clone()),
                Duration::from_secs(1200),
                Duration::from_secs(60),
                "https://gw",
            )
            .with_time(clock.clone())
            .with_metrics(Arc::new(ProfileMetrics::new(changed.clone()))),
        );
        let file = Arc::new(MetricsFile::new(
            &path,
            Path::new("/m"),
            vec![("default".into(), cache.clone())],
            changed.clone(),
        ));
        file.start(&tokio::runtime::Handle::current()).unwrap();
        let read = || std::fs::read_to_string(&path).unwrap();
        assert!(read().contains("s3credsfs_up{mountpoint=\"/m\"} 1\n"));
        assert!(!read().contains("s3credsfs_credentials_expiry_seconds{"));

        // A refresh is a change: written without waiting for the interval.
        cache.current().await.unwrap();
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        let text = read();
        assert!(
            text.contains("s3credsfs_credentials_expiry_seconds{profile=\"default\"} 3600\n"),
            "{text}"
        );
        assert!(text.contains("s3credsfs_refreshes_total{profile=\"default\",cause=\"read\"} 1\n"));

        // Time passes without a change: the next interval's write shows it.
        clock.advance(Duration::from_secs(600));
        tokio::time::sleep(INTERVAL - Duration::from_secs(1)).await;
        assert!(read().contains("expiry_seconds{profile=\"default\"} 3600\n"));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            read().contains("expiry_seconds{profile=\"default\"} 3000\n"),
            "{}",
            read()
        );

        file.finish();
        assert!(read().contains("s3credsfs_up{mountpoint=\"/m\"} 0\n"));
        // The writer task, woken after the last write, leaves it alone.
        changed.notify_one();
        tokio::time::sleep(INTERVAL * 2).await;
        assert!(read().contains("s3credsfs_up{mountpoint=\"/m\"} 0\n"));
    }

    #[test]
    fn a_failed_write_is_an_error_naming_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone/s3credsfs.prom");
        let changed = Arc::new(tokio::sync::Notify::new());
        let cache = Arc::new(CredentialCache::new(
            Hourly(Arc::new(ManualClock::new(chrono::Utc::now(), 0.0))),
            Duration::from_secs(1200),
            Duration::from_secs(60),
            "https://gw",
        ));
        let file = MetricsFile::new(&path, Path::new("/m"), vec![("p".into(), cache)], changed);
        let err = file.write(true).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(
            err.to_string().ends_with("create it or fix --metrics-file"),
            "{err}"
        );
        assert!(MetricsFile::check(&path).is_err());
        // A failing write is logged once, not every 15 s, and its end once.
        assert!(file.write_logged(true), "the first failure");
        assert!(!file.write_logged(true), "the same failure again");
        std::fs::create_dir(dir.path().join("gone")).unwrap();
        assert!(file.write_logged(true), "written again");
        assert!(!file.write_logged(true), "and again, quietly");
    }
}
