//! `s3credsfs mount`: reads the settings, checks the mountpoint, reads the login secret
//! (which may prompt) and builds one pipeline per profile; then serves the mount in the
//! foreground, or forks a daemon and waits for its verdict. The mount itself (fetch,
//! mount, serve, unmount on a signal) is `crate::mount`'s [`Job`].

use super::given_mountpoint;
use crate::app_error::{AppError, Result};
use crate::cli::MountCommand;
use crate::config::{load_profiles, Context};
use crate::mount::daemon::{self, Side};
use crate::mount::local_gateway::LocalGateway;
use crate::mount::{metrics_file, notify, Job};
use crate::mountpoint;
use crate::sts::Pipeline;
use std::sync::Arc;

/// Runs `s3credsfs mount`, with `--dev`'s built-in gateway plugged in when it is asked
/// for (and this build has it).
pub fn run(command: MountCommand) -> Result<()> {
    #[cfg(feature = "dev-gateway")]
    let local = crate::dev::local_gateway(&command.dev.options())?;
    #[cfg(not(feature = "dev-gateway"))]
    let local = None;
    serve(command.mount, local)
}

/// Mounts against `local` instead of the configured gateway if given.
fn serve(args: crate::cli::MountArgs, local: Option<Box<dyn LocalGateway>>) -> Result<()> {
    // First, while this is the only thread; only a foreground mount is systemd's main
    // process.
    let sd = notify::SdNotify::take_from_env()
        .filter(|_| args.foreground)
        .map(Arc::new);
    let ctx = Context::from_process();
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
    if let Some(path) = &settings.metrics_file {
        metrics_file::MetricsFile::check(path)?;
    }
    let checked = mountpoint::prepare(&given_mountpoint(&args.mountpoint)?)?;
    let claim = mountpoint::claim(&checked)?;
    // The checked path from here on: mounted on, shown, and written into the files.
    let mountpoint = checked.path;
    // A background daemon without --log-file logs to the default file (named after the
    // mountpoint it mounts on), or (say why once mounted) nowhere.
    let (log, no_log) = match log {
        None if !args.foreground => match crate::logging::open_default_log(&mountpoint) {
            Ok(log) => (Some(log), None),
            Err(why) => (None, Some(why)),
        },
        log => (log, None),
    };
    // Built before the fork: a login may prompt for its password.
    let mut pipelines = vec![Pipeline::new(&settings)?.remembering_refusals()];
    for other in &others {
        pipelines.push(Pipeline::new(other)?.remembering_refusals());
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
        claim,
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
                let file = file.try_clone().map_err(AppError::LogFile)?;
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
