//! A mount's whole life once its settings are valid, as a [`Job`] the `mount` command
//! builds (`commands/mount.rs`, which also checks the mountpoint, reads the login secret
//! and forks the daemon):
//!
//! first fetch (unless `--lazy`) → mount → signal handlers → report ready (to the parent,
//! or to systemd's `NOTIFY_SOCKET` in the foreground) → serve → unmount on
//! SIGTERM/SIGINT/SIGHUP.

pub mod daemon;
mod first_fetch;
pub mod local_gateway;
pub mod metrics_file;
pub mod notify;
mod signals;

use crate::app_error::{AppError, Result};
use crate::cache::CredentialCache;
use crate::config::Settings;
use crate::fs::CredsFs;
use crate::fuse::FuseAdapter;
use crate::mountpoint;
use crate::status::MountInfo;
use crate::sts::Pipeline;
use daemon::Notifier;
use local_gateway::PreparedGateway;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything a daemon needs once the configuration is valid.
pub struct Job {
    /// The default profile's settings (and the mount's own: log file, container).
    pub settings: Settings,
    /// The other profiles' settings.
    pub others: Vec<Settings>,
    /// The checked mountpoint: mounted on, shown, and written into the files.
    pub mountpoint: PathBuf,
    /// Mount without a first fetch (`--lazy`).
    pub lazy: bool,
    /// Also serve the container credentials endpoint (`--container-endpoint`).
    pub container_endpoint: bool,
    /// The built-in gateway to start first (`--dev`).
    pub dev: Option<Box<dyn PreparedGateway>>,
    /// One per profile, the default first; built before the fork (a login may have
    /// prompted); taken by `start`.
    pub pipelines: Vec<Pipeline>,
    /// The background daemon's log file, shown by `status`.
    pub log_file: Option<PathBuf>,
    /// systemd's notification socket (foreground only).
    pub sd: Option<Arc<notify::SdNotify>>,
    /// The config files read, for the start line.
    pub config_files: Vec<PathBuf>,
    /// Held until exit: no other `mount` can take the same directory meanwhile.
    pub claim: mountpoint::Claim,
}

impl Job {
    /// Fetches, mounts, reports readiness, then serves until unmounted.
    pub fn serve(mut self, notifier: Option<Notifier>, log: Option<&std::fs::File>) -> Result<()> {
        self.log_start();
        let mut notifier = notifier;
        // A profile whose first login was refused: a failed start exits as refused.
        let mut refused = None;
        match self.start(&mut refused) {
            Ok((session, detail)) => {
                match notifier.take() {
                    Some(n) => {
                        n.ready(&detail);
                        daemon::detach_stdio(log);
                    }
                    // A JSON log stays all JSON, also on stderr.
                    None if self.settings.log_format == crate::logging::LogFormat::Json => {
                        tracing::info!(mountpoint = %self.mountpoint.display(), %detail, "mounted")
                    }
                    None => eprintln!(
                        "s3credsfs: mounted at {} ({detail}); stop with Ctrl-C or `s3credsfs unmount {}`",
                        self.mountpoint.display(),
                        self.mountpoint.display()
                    ),
                }
                // Only now: the mount is up and (unless --lazy) holds credentials.
                if let Some(sd) = &self.sd {
                    sd.ready(&format!(
                        "mounted at {}; {detail}",
                        self.mountpoint.display()
                    ));
                }
                let result = session.run();
                if let Some(sd) = &self.sd {
                    sd.stopping("unmounted");
                }
                tracing::info!(mountpoint = %self.mountpoint.display(), "unmounted; exiting");
                result.map_err(AppError::Session)
            }
            Err(error) => {
                let error = first_fetch::with_refusal(error, refused);
                tracing::error!(error = %error, "could not start");
                if let Some(sd) = &self.sd {
                    sd.status(&format!("could not start: {error}"));
                }
                if let Some(n) = notifier.take() {
                    n.failed(&error);
                }
                Err(error)
            }
        }
    }

    /// The first line of every mount's log: what runs, from which configuration, where.
    fn log_start(&self) {
        let shown = |paths: &[PathBuf]| match paths {
            [] => "none".to_string(),
            paths => paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        };
        let profiles: Vec<&str> = std::iter::once(&self.settings)
            .chain(&self.others)
            .map(|s| s.profile.as_str())
            .collect();
        tracing::info!(
            version = %env!("CARGO_PKG_VERSION"),
            build = %crate::build_info::START_LINE,
            config = %shown(&self.config_files),
            profiles = %profiles.join(", "),
            mountpoint = %self.mountpoint.display(),
            log = %self.log_file.as_ref().map_or("stderr".into(), |p| p.display().to_string()),
            "s3credsfs starting"
        );
    }

    fn start(&mut self, refused: &mut first_fetch::Refused) -> Result<(Running, String)> {
        // Before any descriptor is opened; see container.rs for why it matters.
        crate::limits::raise_nofile_or_warn();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3credsfs-io")
            .enable_all()
            .build()
            .map_err(AppError::Runtime)?;
        // Before mounting: a mount that `refresh` could not reach is a failed start.
        let control_name = crate::control::new_name().map_err(AppError::Control)?;
        let control = {
            let _entered = runtime.enter();
            crate::control::bind(&control_name).map_err(AppError::Control)?
        };
        let gateway = self
            .dev
            .take()
            .map(|plan| plan.start(&runtime))
            .transpose()?;
        let pipelines = std::mem::take(&mut self.pipelines);
        let all: Vec<&Settings> = std::iter::once(&self.settings)
            .chain(&self.others)
            .collect();
        // Every profile's counters wake the one metrics writer.
        let changed = Arc::new(tokio::sync::Notify::new());
        let caches: Vec<Arc<CredentialCache<Pipeline>>> = pipelines
            .into_iter()
            .zip(&all)
            .map(|(pipeline, settings)| {
                let metrics = crate::metrics::ProfileMetrics::new(changed.clone());
                Arc::new(
                    CredentialCache::new(
                        pipeline,
                        settings.min_validity,
                        crate::sts::refresh_budget(settings.timeout),
                        settings.api_gateway.as_str(),
                    )
                    .with_refresh_ahead(settings.refresh_ahead)
                    .with_metrics(Arc::new(metrics))
                    .with_profile(&settings.profile),
                )
            })
            .collect();
        let metrics = self.settings.metrics_file.as_deref().map(|path| {
            let named = all.iter().map(|s| s.profile.clone()).zip(caches.clone());
            let file =
                metrics_file::MetricsFile::new(path, &self.mountpoint, named.collect(), changed);
            Arc::new(file)
        });
        let cache = caches[0].clone();
        let detail = if self.lazy {
            "credentials are fetched on first read".to_string()
        } else {
            let names: Vec<&str> = all.iter().map(|s| s.profile.as_str()).collect();
            // Under systemd a busy gateway does not end the daemon (see first_fetch).
            let keep_trying = self.sd.is_some();
            let (detail, first_refused) =
                first_fetch::first_fetch(&runtime, &caches, &names, keep_trying)?;
            *refused = first_refused;
            if let (Some(sd), None) = (&self.sd, cache.peek()) {
                runtime.spawn(say_when_served(
                    cache.clone(),
                    sd.clone(),
                    self.mountpoint.clone(),
                ));
            }
            detail
        };
        // From now on every profile is kept current whether or not it is read.
        for cache in &caches {
            runtime.spawn(CredentialCache::keep_current(Arc::downgrade(cache)));
        }
        let container = if self.container_endpoint {
            let endpoint = runtime
                .block_on(crate::container::start(cache.clone()))
                .map_err(AppError::ContainerEndpoint)?;
            tracing::info!(url = %endpoint.url, "container credentials endpoint started");
            Some(endpoint)
        } else {
            None
        };
        let container_url = container.as_ref().map(|c| c.url.clone());
        let profiles = caches
            .into_iter()
            .zip(&all)
            .enumerate()
            .map(|(i, (cache, settings))| {
                let info = MountInfo {
                    gateway: settings
                        .api_gateway
                        .as_str()
                        .trim_end_matches('/')
                        .to_string(),
                    auth: settings.auth.describe().to_string(),
                    profile: settings.profile.clone(),
                    region: settings.region.clone(),
                    mountpoint: self.mountpoint.display().to_string(),
                    pid: std::process::id(),
                    min_validity_seconds: settings.min_validity.as_secs(),
                    container_endpoint: if i == 0 { container_url.clone() } else { None },
                    log_file: self.log_file.as_ref().map(|p| p.display().to_string()),
                    control_socket: Some(control_name.clone()),
                    secret_env: settings.auth.secret_env().map(str::to_string),
                };
                (cache, info)
            })
            .collect::<Vec<_>>();
        let profile_names: Vec<String> = all.iter().map(|s| s.profile.clone()).collect();
        let caches_for_control: Vec<_> = profiles
            .iter()
            .map(|(cache, _)| Arc::clone(cache))
            .collect();
        let container_file = container.is_some();
        let user = |p: &Pipeline| p.user();
        if let Some(metrics) = &metrics {
            metrics.start(runtime.handle())?;
        }
        let fs = CredsFs::with_profiles(profiles, container, user);
        let config = fuse_config();
        let adapter = FuseAdapter::new(fs, runtime.handle().clone());
        let mut session =
            fuser::Session::new(adapter, &self.mountpoint, &config).map_err(|source| {
                AppError::Mount {
                    path: self.mountpoint.clone(),
                    source,
                }
            })?;
        let served: crate::control::Served<Pipeline> =
            profile_names.into_iter().zip(caches_for_control).collect();
        let _entered = runtime.enter();
        let forget = forget_names(session.notifier(), container_file);
        runtime.spawn(crate::control::serve(control, Arc::new(served), forget));
        let unmounter = session.unmount_callable();
        let signals = runtime.block_on(async { signals::Signals::new() })?;
        runtime.spawn(signals.unmount_on_signal(
            unmounter,
            self.mountpoint.clone(),
            self.sd.clone(),
        ));
        Ok((
            Running {
                session,
                metrics,
                _runtime: runtime,
                _gateway: gateway,
            },
            detail,
        ))
    }
}

/// For a mount that came up without credentials under systemd: once its keeper gets
/// them, `systemctl status` says so instead of the start's failure. Looks at the cache
/// (no gateway request) every [`SERVED_CHECK`].
async fn say_when_served(
    cache: Arc<CredentialCache<Pipeline>>,
    sd: Arc<notify::SdNotify>,
    mountpoint: PathBuf,
) {
    loop {
        tokio::time::sleep(SERVED_CHECK).await;
        if let Some(snapshot) = cache.peek() {
            sd.status(&format!(
                "mounted at {}; credentials valid until {}",
                mountpoint.display(),
                snapshot.creds.expiration_rfc3339()
            ));
            return;
        }
    }
}

/// How often [`say_when_served`] looks.
const SERVED_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// After a forced refresh of profile `i`: the kernel forgets the names that may show it
/// (the root's, and its own directory's), so the next open gets the new credentials at
/// once instead of within the entry's time to live.
fn forget_names(notifier: fuser::Notifier, container_file: bool) -> crate::control::Forget {
    use crate::fs::{profile_dir_ino, CONTAINER_ENV, FILES, ROOT_INO};
    use std::ffi::OsStr;
    Arc::new(move |i: usize| {
        let root = FILES
            .iter()
            .map(|(n, _)| *n)
            .chain(container_file.then_some(CONTAINER_ENV));
        for name in root {
            // ENOENT only says the kernel held no such entry.
            let _ = notifier.inval_entry(fuser::INodeNo(ROOT_INO), OsStr::new(name));
        }
        for (name, _) in FILES {
            let _ = notifier.inval_entry(fuser::INodeNo(profile_dir_ino(i)), OsStr::new(name));
        }
    })
}

/// A mounted session and what must outlive it.
struct Running {
    session: fuser::Session<FuseAdapter<Pipeline>>,
    /// The metrics file, written a last time (down) once the session ends.
    metrics: Option<Arc<metrics_file::MetricsFile>>,
    _runtime: tokio::runtime::Runtime,
    /// The local gateway (`--dev`), served until the session ends.
    _gateway: Option<Box<dyn std::any::Any>>,
}

impl Running {
    fn run(self) -> std::io::Result<()> {
        let result = self.session.run();
        if let Some(metrics) = &self.metrics {
            metrics.finish();
        }
        result
    }
}

/// The mount options every s3credsfs mount uses (also the in-process test mounts).
pub fn fuse_config() -> fuser::Config {
    use fuser::MountOption::*;
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        FSName("s3credsfs".into()),
        Subtype("s3credsfs".into()),
        RO,
        NoSuid,
        NoDev,
        NoExec,
        NoAtime,
        DefaultPermissions,
    ];
    config.acl = fuser::SessionACL::Owner;
    // More than one thread, so a slow refresh does not stall `status` or `ls`.
    config.n_threads = Some(4);
    config
}
