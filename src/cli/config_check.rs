//! `s3credsfs config check [--try]`: validates the configuration and every profile, and
//! with `--try` logs in and calls the STS for each, saying per profile what works.

use crate::config::AuthConfig;
use crate::config::{load_profiles, Context, FetchSettings, PasswordSource};
use crate::error::{Error, Result};
use crate::sts::Pipeline;
use std::io::Write;

/// `config`'s actions.
#[derive(clap::Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: ConfigAction,
}

/// What to do with the configuration.
#[derive(clap::Subcommand, Debug)]
pub enum ConfigAction {
    /// Validate the configuration and every profile; with --try, also log in and get
    /// credentials for each (nothing is kept)
    #[command(
        after_help = "Examples:\n  s3credsfs config check                 # settings, files, logins of every profile\n  s3credsfs config check --try           # and whether each gateway issues credentials"
    )]
    Check(CheckArgs),
}

/// `config check`'s flags plus the shared settings.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Also log in and call the STS for each profile
    #[arg(long = "try")]
    pub try_it: bool,
    #[command(flatten)]
    pub settings: FetchSettings,
}

/// Runs `config check`, writing one line per profile to `out`; fails when a profile does.
pub fn run(args: ConfigArgs, ctx: &Context, out: &mut impl Write) -> Result<()> {
    let ConfigAction::Check(args) = args.action;
    let profiles = load_profiles(&args.settings.0, ctx)?;
    let file = match &args.settings.0.config_file {
        Some(path) => path.display().to_string(),
        None => match ctx.default_config_file() {
            Some(path) if path.exists() => path.display().to_string(),
            Some(path) => format!("none ({} does not exist)", path.display()),
            None => "none".into(),
        },
    };
    let _ = writeln!(out, "config file: {file}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime ({e})")))?;
    let names: Vec<String> = profiles.names().map(String::from).collect();
    let mut failed = 0;
    for name in &names {
        let label = match name == profiles.default_name() {
            true => format!("{name} (default)"),
            false => name.clone(),
        };
        let line = match check_one(&profiles, name, ctx, args.try_it, &runtime) {
            Ok(line) => line,
            Err(e) => {
                failed += 1;
                format!("error: {e}")
            }
        };
        let _ = writeln!(out, "profile {label}: {line}");
    }
    let _ = out.flush();
    match failed {
        0 => Ok(()),
        n => Err(Error::Config(format!(
            "{n} of {} profiles failed the check (see above); fix them, then run `s3credsfs config check{}` again",
            names.len(),
            if args.try_it { " --try" } else { "" }
        ))),
    }
}

/// One profile's verdict: a description of what it will do, or what it did with `--try`.
fn check_one(
    profiles: &crate::config::Profiles,
    name: &str,
    ctx: &Context,
    try_it: bool,
    runtime: &tokio::runtime::Runtime,
) -> Result<String> {
    let settings = profiles.resolve(Some(name), ctx)?;
    let login = match &settings.auth {
        AuthConfig::Password { username, .. } => format!("password login as {username}"),
        other => format!("{} login", other.describe()),
    };
    let described = format!(
        "gateway {}, {login}, region {}",
        settings.api_gateway.as_str().trim_end_matches('/'),
        settings.region
    );
    // A password command or prompt is only run when asked to log in.
    let deferred = match &settings.auth {
        AuthConfig::Password {
            password: PasswordSource::Command(_),
            ..
        } => Some("its password command is run only with --try"),
        AuthConfig::Password {
            password: PasswordSource::Prompt,
            ..
        } => Some("its password is asked only with --try"),
        _ => None,
    };
    if let (Some(why), false) = (deferred, try_it) {
        return Ok(format!("ok: {described} ({why})"));
    }
    let pipeline = Pipeline::new(&settings)?;
    if !try_it {
        return Ok(format!("ok: {described}"));
    }
    let creds = runtime.block_on(pipeline.fetch())?;
    Ok(format!(
        "works: {described}; credentials valid until {}",
        creds.expiration_rfc3339()
    ))
}
