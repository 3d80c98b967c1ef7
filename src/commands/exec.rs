//! `s3credsfs exec -- COMMAND`: runs a command with current credentials in its
//! environment (see `crate::exec` for the pieces): from a running mount of ours when it
//! serves the profile, else from the gateway; as keys, or with `--container-endpoint` as a
//! private endpoint served from this process while the command runs.

use crate::app_error::AppError;
use crate::cache::{CredentialCache, Fetch};
use crate::cli::ExecArgs;
use crate::config::{load_config_files, load_layers, resolve, Context, Setting};
use crate::creds::Credentials;
use crate::exec::{
    child, child_env, default_env, mounted, profile_dir, secret_sources, unloaded, Grant,
    MountFiles, SECRET_SOURCES,
};
use crate::mountpoint::{self, MountState, FSTYPE};
use crate::sts::Pipeline;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn warn(text: &str) {
    eprintln!("s3credsfs: warning: {text}");
}

/// The mount `exec` looks at (`--mountpoint`, else `~/.s3creds`), if one of ours is
/// live there; another kind of mount, or a stale one, is reported and passed over.
fn our_mount(args: &ExecArgs) -> Option<PathBuf> {
    let given = match &args.mountpoint {
        Some(path) => path.clone(),
        None => mountpoint::default_mountpoint().ok()?,
    };
    let mount = match mountpoint::named(&given) {
        Ok(mount) => mount,
        Err(why) => {
            warn(&format!("{why}; fetching credentials instead"));
            return None;
        }
    };
    match mountpoint::state(&mount) {
        MountState::Free => return None,
        MountState::Live { fstype } if fstype == FSTYPE => {}
        MountState::Live { fstype } => {
            let what = match mountpoint::foreign_owner(&fstype) {
                Some(owner) => format!("the s3credsfs mount of {owner}, not one of yours"),
                None => format!("a {fstype} mount, not s3credsfs"),
            };
            warn(&format!(
                "{} is {what}; fetching credentials instead",
                mount.display()
            ));
            return None;
        }
        MountState::Stale { .. } => {
            warn(&format!(
                "{} is a stale mount (its daemon died); fetching credentials instead (run `s3credsfs unmount {}` to clear it)",
                mount.display(),
                mount.display()
            ));
            return None;
        }
    }
    Some(mount)
}

/// The mount's files for the profile, if our mount (from [`our_mount`]) serves it and
/// they are sound; an odd mount is reported and passed over.
fn from_mount(args: &ExecArgs, mount: &Path) -> Option<(MountFiles, Credentials)> {
    let mount = mount.to_path_buf();
    let profile = args.settings.0.layer.get(&Setting::Profile);
    let dir = match profile {
        Some(raw) => profile_dir(&mount, Some(raw.value.trim()))?,
        // A mount of several profiles: the default one's own directory (the root's
        // `config` holds every profile).
        None => mounted::default_profile(&mount)
            .and_then(|name| profile_dir(&mount, Some(&name)))
            .filter(|dir| dir.is_dir())
            .or_else(|| profile_dir(&mount, None))?,
    };
    // A mount that does not serve this profile is not an error: fetch it.
    if profile.is_some() && !dir.is_dir() {
        return None;
    }
    match MountFiles::open(&dir) {
        // A gateway given on the command line or in the environment that is not the
        // mount's: the mount holds another system's credentials.
        Ok((files, _))
            if args
                .settings
                .0
                .layer
                .get(&Setting::ApiGateway)
                .is_some_and(|raw| {
                    raw.value.trim().trim_end_matches('/') != files.gateway.trim_end_matches('/')
                }) =>
        {
            tracing::debug!(mount_gateway = %files.gateway, "the mount serves another gateway; fetching");
            None
        }
        Ok(found) => Some(found),
        Err(problem) => {
            warn(&format!(
                "not using the mount at {} ({problem}); fetching credentials instead",
                mount.display()
            ));
            None
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, AppError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("s3credsfs-io")
        .enable_all()
        .build()
        .map_err(AppError::Runtime)
}

/// Starts the endpoint over `cache` after a first successful read, so that a failure is
/// reported before the command runs.
fn serve<F: Fetch>(
    runtime: &tokio::runtime::Runtime,
    cache: CredentialCache<F>,
    region: String,
) -> Result<Grant, AppError> {
    let cache = Arc::new(cache);
    let snapshot = runtime.block_on(cache.current())?;
    let endpoint = runtime
        .block_on(crate::container::start(cache))
        .map_err(AppError::ContainerEndpoint)?;
    Ok(Grant::Endpoint {
        endpoint,
        endpoint_url: snapshot.creds.endpoint_url.clone(),
        region,
    })
}

/// Runs `s3credsfs exec`; returns only on an error before the command ran, otherwise
/// exits with the command's code.
pub fn run(args: ExecArgs) -> Result<(), AppError> {
    // First, while this is the only thread: every later thread inherits the mask.
    let forwarder = child::Forwarder::start().map_err(AppError::Signals)?;
    crate::logging::init_stderr("warn");
    let runtime = runtime()?;
    let mount = our_mount(&args);
    let hidden = {
        let (cli, ctx) = (&args.settings.0, Context::from_process());
        let files = load_config_files(cli, &ctx);
        let mut also = match files {
            Ok(_) => Vec::new(),
            Err(_) => unloaded::texts(cli, &ctx)
                .iter()
                .flat_map(|text| unloaded::names(text, &SECRET_SOURCES))
                .collect(),
        };
        also.extend(
            mount
                .as_deref()
                .map(mounted::secret_envs)
                .unwrap_or_default(),
        );
        let files = files.unwrap_or_default();
        secret_sources(cli, &files, &also, |v| std::env::var_os(v))
    };
    let mounted = mount.and_then(|mount| from_mount(&args, &mount));
    let grant = match (mounted, args.container_endpoint) {
        (Some((files, creds)), false) => Grant::Keys {
            creds,
            region: files.region,
        },
        (Some((files, _)), true) => {
            let (region, min_validity) = (files.region.clone(), files.min_validity);
            let budget = crate::sts::refresh_budget(std::time::Duration::from_secs(30));
            serve(
                &runtime,
                CredentialCache::new(files, min_validity, budget, "the mount"),
                region,
            )?
        }
        (None, endpoint) => {
            let ctx = Context::from_process();
            let settings = resolve(&load_layers(&args.settings.0, &ctx)?, &ctx)?;
            crate::logging::set_stderr_format(settings.log_format);
            let pipeline = Pipeline::new(&settings)?.remembering_refusals();
            if endpoint {
                let cache = CredentialCache::new(
                    pipeline,
                    settings.min_validity,
                    crate::sts::refresh_budget(settings.timeout),
                    settings.api_gateway.as_str(),
                )
                .with_refresh_ahead(settings.refresh_ahead);
                serve(&runtime, cache, settings.region)?
            } else {
                Grant::Keys {
                    creds: runtime.block_on(pipeline.fetch())?,
                    region: settings.region,
                }
            }
        }
    };
    let mut env = child_env(&grant);
    env.extend(default_env(|name| std::env::var_os(name)));
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let code = match child::run(&forwarder, program, rest, &env, &hidden) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("s3credsfs: error: {}", failure.sentence);
            failure.code
        }
    };
    // The endpoint, if any, ends with us.
    std::process::exit(code)
}
