//! The `mount`, `unmount` and `status` commands: the mount's whole lifecycle.
//!
//! parse → validate → check the mountpoint → read the login secret (may prompt) → fork
//! (background) → first fetch (unless `--lazy`) → mount → signal handlers → report ready
//! (to the parent, or to systemd's `NOTIFY_SOCKET` in the foreground) → serve → unmount
//! on SIGTERM/SIGINT/SIGHUP.

pub mod daemon;
pub mod error;
mod first_fetch;
pub mod local_gateway;
pub mod metrics_file;
pub mod mountpoint;
pub mod notify;
pub mod refresh;
mod signals;
pub mod status_check;

use crate::cache::CredentialCache;
use crate::config::{load_profiles, Context, MountSettings, Settings};
use crate::error::Error;
use crate::fs::CredsFs;
use crate::fuse::FuseAdapter;
use crate::status::{MountInfo, StatusDoc};
use crate::sts::Pipeline;
use daemon::{Notifier, Side};
pub use error::{MountError, Result};
use local_gateway::{LocalGateway, PreparedGateway};
use mountpoint::{MountState, FSTYPE};
use nix::unistd::Pid;
pub use status_check::{run_status, StatusArgs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `mount`'s own flags plus the shared settings.
#[derive(clap::Args, Debug)]
pub struct MountArgs {
    /// Where to mount [default: ~/.s3creds, created with mode 0700]
    pub mountpoint: Option<PathBuf>,
    /// Stay attached and log to stderr (for systemd and tests)
    #[arg(long, help_heading = "Mount")]
    pub foreground: bool,
    /// Mount without fetching; credentials come on the first read
    #[arg(long, help_heading = "Mount")]
    pub lazy: bool,
    /// Also serve the container credentials endpoint on a random loopback port (see the
    /// `container-env` file)
    #[arg(long, help_heading = "Mount")]
    pub container_endpoint: bool,
    #[command(flatten)]
    pub settings: MountSettings,
}

/// `unmount`'s and `status`'s arguments.
#[derive(clap::Args, Debug)]
pub struct MountpointArgs {
    /// The mountpoint [default: ~/.s3creds]
    pub mountpoint: Option<PathBuf>,
}

/// The mountpoint as given (or the default), relative to the current directory but with
/// no link resolved: what `mount` checks, link by link.
fn given_mountpoint(given: &Option<PathBuf>) -> Result<PathBuf> {
    let path = match given {
        Some(p) => p.clone(),
        None => mountpoint::default_mountpoint()?,
    };
    if path.is_absolute() {
        Ok(path)
    } else {
        Ok(std::env::current_dir().map_err(MountError::Cwd)?.join(path))
    }
}

pub(crate) fn mountpoint_of(given: &Option<PathBuf>) -> Result<PathBuf> {
    mountpoint::absolute(&given_mountpoint(given)?)
}

/// Runs `s3credsfs mount`, against `local` instead of the configured gateway if given
/// (`mount --dev`'s built-in one, plugged in by the command layer).
pub fn run_mount(args: MountArgs, local: Option<Box<dyn LocalGateway>>) -> Result<()> {
    // First, while this is the only thread; only a foreground mount is systemd's main
    // process.
    let sd = notify::SdNotify::take_from_env()
        .filter(|_| args.foreground)
        .map(Arc::new);
    let ctx = Context::from_process();
    let mountpoint = mountpoint_of(&args.mountpoint)?;
    let profiles = load_profiles(&args.settings.0, &ctx)?;
    let (settings, dev) = match local {
        Some(local) => {
            let (settings, prepared) = local.settings(profiles.layer(None)?, &ctx)?;
            (settings, Some(prepared))
        }
        None => (crate::config::resolve(profiles.layer(None)?, &ctx)?, None),
    };
    // A local gateway serves its one profile.
    let others = match dev {
        Some(_) => Vec::new(),
        None => profiles.resolve_all(&ctx)?.split_off(1),
    };
    let log = settings
        .log_file
        .as_deref()
        .map(|path| crate::files::open_log(path).map(|file| (path.to_path_buf(), file)))
        .transpose()?;
    // A background daemon without --log-file logs to the default file, or (say why once
    // mounted) nowhere.
    let (log, no_log) = match log {
        None if !args.foreground => match crate::logging::open_default_log(&mountpoint) {
            Ok(log) => (Some(log), None),
            Err(why) => (None, Some(why)),
        },
        log => (log, None),
    };
    if let Some(path) = &settings.metrics_file {
        metrics_file::MetricsFile::check(path)?;
    }
    let checked = mountpoint::prepare(&given_mountpoint(&args.mountpoint)?)?;
    let claim = mountpoint::claim(&checked)?;
    // The checked path from here on: mounted on, shown, and written into the files.
    let mountpoint = checked.path;
    // Built before the fork: a login may prompt for its password.
    let mut pipelines = vec![Pipeline::new(&settings)?];
    for other in &others {
        pipelines.push(Pipeline::new(other)?);
    }
    let job = Job {
        settings,
        others,
        mountpoint,
        lazy: args.lazy,
        container_endpoint: args.container_endpoint,
        dev,
        pipelines,
        log_file: log
            .as_ref()
            .filter(|_| !args.foreground)
            .map(|(path, _)| path.clone()),
        sd,
        config_files: profiles.config_files().to_vec(),
        refused: None,
        _claim: claim,
    };
    if args.foreground {
        crate::logging::init_stderr("info");
        crate::logging::set_stderr_format(job.settings.log_format);
        return job.serve(None, None);
    }
    match daemon::fork()? {
        Side::Parent { pipe, child } => {
            let detail = daemon::wait_for_child(pipe, child, daemon::READY_TIMEOUT)?;
            println!(
                "s3credsfs: mounted at {} ({detail})",
                job.mountpoint.display()
            );
            if let Some(why) = no_log {
                eprintln!("s3credsfs: warning: the daemon keeps no log: {why}");
            }
            Ok(())
        }
        Side::Child(notifier) => {
            // Hold no directory busy (every path we use later is absolute).
            let _ = std::env::set_current_dir("/");
            if let Some((path, file)) = &log {
                let file = file.try_clone().map_err(MountError::LogFile)?;
                let limit = crate::logging::LOG_LIMIT;
                let log = crate::logging::RotatingLog::new(path.clone(), file, limit, true);
                crate::logging::init_log(log, job.settings.log_format);
            }
            // Errors were already sent to the parent, which prints them.
            let log = log.as_ref().map(|(_, file)| file);
            let code = match job.serve(Some(notifier), log) {
                Ok(()) => 0,
                Err(e) => i32::from(e.exit_status().code()),
            };
            std::process::exit(code);
        }
    }
}

/// Everything a daemon needs once the configuration is valid.
struct Job {
    /// The default profile's settings (and the mount's own: log file, container).
    settings: Settings,
    /// The other profiles' settings.
    others: Vec<Settings>,
    mountpoint: PathBuf,
    lazy: bool,
    container_endpoint: bool,
    /// The local gateway to start first (`--dev`).
    dev: Option<Box<dyn PreparedGateway>>,
    /// One per profile, the default first; built before the fork (a login may have
    /// prompted); taken by `start`.
    pipelines: Vec<Pipeline>,
    /// The background daemon's log file, shown by `status`.
    log_file: Option<PathBuf>,
    /// systemd's notification socket (foreground only).
    sd: Option<Arc<notify::SdNotify>>,
    /// The config files read, for the start line.
    config_files: Vec<PathBuf>,
    /// A profile whose first login was refused: a failed start exits as refused.
    refused: first_fetch::Refused,
    /// Held until exit: no other `mount` can take the same directory meanwhile.
    _claim: mountpoint::Claim,
}

impl Job {
    /// Fetches, mounts, reports readiness, then serves until unmounted.
    fn serve(mut self, notifier: Option<Notifier>, log: Option<&std::fs::File>) -> Result<()> {
        self.log_start();
        let mut notifier = notifier;
        match self.start() {
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
                result.map_err(MountError::Session)
            }
            Err(error) => {
                let error = first_fetch::with_refusal(error, self.refused.take());
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

    fn start(&mut self) -> Result<(Running, String)> {
        // Before any descriptor is opened; see container.rs for why it matters.
        crate::limits::raise_nofile_or_warn();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3credsfs-io")
            .enable_all()
            .build()
            .map_err(MountError::Runtime)?;
        // Before mounting: a mount that `refresh` could not reach is a failed start.
        let control_name = crate::control::new_name().map_err(MountError::Control)?;
        let control = {
            let _entered = runtime.enter();
            crate::control::bind(&control_name).map_err(MountError::Control)?
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
            let (detail, refused) = first_fetch::first_fetch(&runtime, &caches, &names)?;
            self.refused = refused;
            detail
        };
        // From now on every profile is kept current whether or not it is read.
        for cache in &caches {
            runtime.spawn(CredentialCache::keep_current(Arc::downgrade(cache)));
        }
        let container = if self.container_endpoint {
            let endpoint = runtime
                .block_on(crate::container::start(cache.clone()))
                .map_err(MountError::ContainerEndpoint)?;
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
                MountError::Mount {
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

fn require_our_mount(path: &Path) -> crate::error::Result<()> {
    match mountpoint::state(path) {
        MountState::Live { fstype } if fstype == FSTYPE => Ok(()),
        MountState::Live { fstype } => match mountpoint::foreign_owner(&fstype) {
            Some(owner) => Err(Error::Config(format!(
                "{} is the s3credsfs mount of {owner}, not one of yours; leaving it alone (run this as that user)",
                path.display()
            ))),
            None => Err(Error::Config(format!(
                "{} is a {fstype} mount, not s3credsfs; leaving it alone",
                path.display()
            ))),
        },
        MountState::Stale { .. } => Err(Error::Config(format!(
            "{} is a stale mount (its daemon died); run `s3credsfs unmount {}` or mount again",
            path.display(),
            path.display()
        ))),
        MountState::Free => Err(Error::Config(format!(
            "nothing is mounted at {}; start it with `s3credsfs mount {}`",
            path.display(),
            path.display()
        ))),
    }
}

/// The largest status file read; ours is well under 2 KiB.
const MAX_STATUS: u64 = 64 * 1024;

fn read_status(path: &Path) -> crate::error::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path.join("status"))
        .and_then(|f| f.take(MAX_STATUS).read_to_string(&mut text))
        .map_err(|e| Error::Config(format!("cannot read {}/status ({e})", path.display())))?;
    Ok(text)
}

/// The pid a status file names, if it is a live s3credsfs process of this user: the file
/// is only as trustworthy as the mount, and `kill` with 0 or -1 would signal a whole
/// process group or every process we may signal.
fn our_daemon(pid: u32) -> Option<Pid> {
    let pid = libc::pid_t::try_from(pid).ok().filter(|p| *p > 0)?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let real_uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse::<u32>()
        .ok()?;
    let me = nix::unistd::getuid().as_raw();
    (comm.trim_end() == "s3credsfs" && real_uid == me).then_some(Pid::from_raw(pid))
}

/// Runs `s3credsfs unmount`: stops the daemon (which unmounts), or clears a stale mount.
pub fn run_unmount(args: MountpointArgs) -> Result<()> {
    let path = mountpoint_of(&args.mountpoint)?;
    if let MountState::Stale { .. } = mountpoint::state(&path) {
        mountpoint::lazy_unmount(&path)?;
        println!("s3credsfs: cleared the stale mount at {}", path.display());
        return Ok(());
    }
    require_our_mount(&path)?;
    let pid = read_status(&path)
        .ok()
        .and_then(|text| serde_json::from_str::<StatusDoc>(&text).ok())
        .and_then(|doc| our_daemon(doc.pid));
    if let Some(pid) = pid {
        // Our own daemon, checked by `our_daemon`.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && mountpoint::state(&path) != MountState::Free {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if mountpoint::state(&path) != MountState::Free {
        mountpoint::lazy_unmount(&path)?;
    }
    println!("s3credsfs: unmounted {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_daemons_are_signalled() {
        // 0 and u32::MAX (-1 as a pid_t) would signal a group or everything.
        assert_eq!(our_daemon(0), None);
        assert_eq!(our_daemon(u32::MAX), None);
        assert_eq!(our_daemon(i32::MAX as u32 + 1), None);
        // A live process of ours that is not s3credsfs: this test binary.
        assert_eq!(our_daemon(std::process::id()), None);
        // A process of ours named s3credsfs (the kernel names it after the path run).
        let dir = tempfile::tempdir().unwrap();
        let named = dir.path().join("s3credsfs");
        std::os::unix::fs::symlink("/bin/sleep", &named).unwrap();
        let mut child = std::process::Command::new(&named).arg("5").spawn().unwrap();
        // The kernel renames the child when its exec completes, which may be just after
        // `spawn` returns.
        let found = (0..100).find_map(|_| {
            std::thread::sleep(Duration::from_millis(10));
            our_daemon(child.id())
        });
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found, Some(Pid::from_raw(child.id() as libc::pid_t)));
    }
}
