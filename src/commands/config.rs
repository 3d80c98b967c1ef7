//! `s3credsfs config check [--try]`: validates the configuration and every profile, and
//! with `--try` logs in and calls the STS for each, saying per profile what works.

use crate::cli::{ConfigAction, ConfigArgs};
use crate::config::AuthConfig;
use crate::config::{load_profiles, Context, PasswordSource};
use crate::error::{Error, Result};
use crate::sts::Pipeline;
use std::io::Write;

/// `config check --json`'s document. Its fields are stable: scripts and monitoring read
/// them (the README lists them).
#[derive(Debug, serde::Serialize)]
pub struct CheckReport {
    /// The config file read, or `null` when there is none.
    pub config_file: Option<String>,
    /// The site-wide config file read, or `null` when there is none.
    pub site_config_file: Option<String>,
    /// Whether every profile passed.
    pub ok: bool,
    /// Whether gateways were asked (`--try`).
    pub tried: bool,
    pub profiles: Vec<ProfileReport>,
}

/// One profile's verdict in [`CheckReport`].
#[derive(Debug, serde::Serialize)]
pub struct ProfileReport {
    pub name: String,
    pub default: bool,
    pub ok: bool,
    /// `null` when the profile's settings could not be resolved.
    pub gateway: Option<String>,
    pub login: Option<String>,
    pub region: Option<String>,
    /// With `--try`, when the credentials it got expire (RFC 3339).
    pub credentials_expire: Option<String>,
    /// What was not checked, and why (a password command runs only with `--try`).
    pub note: Option<String>,
    /// The sentence saying what is wrong and how to fix it.
    pub error: Option<String>,
    /// Every setting given for this profile, as `key = value (source)`; the others take
    /// their defaults.
    pub sources: Vec<String>,
}

/// What one profile's check found out.
#[derive(Default)]
struct Verdict {
    gateway: String,
    login: String,
    region: String,
    note: Option<&'static str>,
    expiration: Option<String>,
}

impl Verdict {
    fn line(&self) -> String {
        let described = format!(
            "gateway {}, {}, region {}",
            self.gateway, self.login, self.region
        );
        match (&self.expiration, self.note) {
            (Some(until), _) => format!("works: {described}; credentials valid until {until}"),
            (None, Some(why)) => format!("ok: {described} ({why})"),
            (None, None) => format!("ok: {described}"),
        }
    }
}

/// Runs `s3credsfs config` in this process: its environment, its standard output.
pub fn run_on_stdout(args: ConfigArgs) -> Result<()> {
    crate::logging::init_stderr("warn");
    let ctx = Context::from_process();
    run(args, &ctx, &mut std::io::stdout().lock())
}

/// Runs `config check`, writing one line per profile (or the JSON document) to `out`;
/// fails when a profile does.
pub fn run(args: ConfigArgs, ctx: &Context, out: &mut impl Write) -> Result<()> {
    let ConfigAction::Check(args) = args.action;
    let profiles = load_profiles(&args.settings.0, ctx)?;
    let (file, shown) = match &args.settings.0.config_file {
        Some(path) => (Some(path.display().to_string()), path.display().to_string()),
        None => match ctx.default_config_file() {
            Some(path) if path.exists() => {
                (Some(path.display().to_string()), path.display().to_string())
            }
            Some(path) => (None, format!("none ({} does not exist)", path.display())),
            None => (None, "none".into()),
        },
    };
    let (site_file, site_shown) = match &ctx.site_config {
        Some(path) if path.exists() => {
            (Some(path.display().to_string()), path.display().to_string())
        }
        Some(path) => (None, format!("none ({} does not exist)", path.display())),
        None => (None, "none".into()),
    };
    if !args.json {
        let _ = writeln!(out, "config file: {shown}");
        let _ = writeln!(out, "site config file: {site_shown}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime ({e})")))?;
    let names: Vec<String> = profiles.names().map(String::from).collect();
    let mut reports = Vec::new();
    for name in &names {
        let default = name == profiles.default_name();
        let label = match default {
            true => format!("{name} (default)"),
            false => name.clone(),
        };
        let verdict = check_one(&profiles, name, ctx, args.try_it, &runtime);
        if !args.json {
            let line = match &verdict {
                Ok(v) => v.line(),
                Err(e) => format!("error: {e}"),
            };
            let _ = writeln!(out, "profile {label}: {line}");
        }
        let sources = profiles.layer(Some(name)).map(sources).unwrap_or_default();
        if !args.json {
            for line in &sources {
                let _ = writeln!(out, "  {line}");
            }
        }
        reports.push(match verdict {
            Ok(v) => ProfileReport {
                name: name.clone(),
                default,
                ok: true,
                gateway: Some(v.gateway),
                login: Some(v.login),
                region: Some(v.region),
                credentials_expire: v.expiration,
                note: v.note.map(String::from),
                error: None,
                sources,
            },
            Err(e) => ProfileReport {
                name: name.clone(),
                default,
                ok: false,
                gateway: None,
                login: None,
                region: None,
                credentials_expire: None,
                note: None,
                error: Some(e.to_string()),
                sources,
            },
        });
    }
    let failed = reports.iter().filter(|r| !r.ok).count();
    if args.json {
        let report = CheckReport {
            config_file: file,
            site_config_file: site_file,
            ok: failed == 0,
            tried: args.try_it,
            profiles: reports,
        };
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        let _ = writeln!(out, "{text}");
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

/// Where each setting of a profile comes from, one line each (`key = value (source)`),
/// so a value from the site file or a forgotten variable is found at a glance; settings
/// not listed take their defaults. A password command is not quoted: it may carry what
/// it unlocks.
fn sources(layer: &crate::config::Layer) -> Vec<String> {
    use crate::config::Setting;
    layer
        .iter()
        .map(|(key, raw)| {
            let value = match key {
                Setting::PasswordCommand => "(a command, not shown)".to_string(),
                _ => raw.shown(),
            };
            format!("{key} = {value} ({})", raw.source)
        })
        .collect()
}

/// One profile's verdict: a description of what it will do, or what it did with `--try`.
fn check_one(
    profiles: &crate::config::Profiles,
    name: &str,
    ctx: &Context,
    try_it: bool,
    runtime: &tokio::runtime::Runtime,
) -> Result<Verdict> {
    let settings = profiles.resolve(Some(name), ctx)?;
    let login = match &settings.auth {
        AuthConfig::Password { username, .. } => format!("password login as {username}"),
        other => format!("{} login", other.describe()),
    };
    let mut verdict = Verdict {
        gateway: settings
            .api_gateway
            .as_str()
            .trim_end_matches('/')
            .to_string(),
        login,
        region: settings.region.clone(),
        ..Verdict::default()
    };
    // A password command or prompt is only run when asked to log in.
    verdict.note = match &settings.auth {
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
    if verdict.note.is_some() && !try_it {
        // The rest is checked all the same: the CA bundle, the proxies.
        crate::http::build_client(&settings)?;
        return Ok(verdict);
    }
    verdict.note = None;
    let pipeline = Pipeline::new(&settings)?.remembering_refusals();
    if try_it {
        let creds = runtime.block_on(pipeline.fetch())?;
        verdict.expiration = Some(creds.expiration_rfc3339());
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::os::unix::fs::PermissionsExt;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: ConfigArgs,
    }

    /// The site file is named, and each value says which file (or flag) it came from.
    #[test]
    fn the_check_names_the_site_file_and_each_values_source() {
        if !nix::unistd::geteuid().is_root() {
            return; // only root can own a site file that is read at all
        }
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site.toml");
        std::fs::write(
            &site,
            "api-gateway = \"https://site.example\"\ntoken-env = \"T\"\nregion = \"site\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&site, std::fs::Permissions::from_mode(0o644)).unwrap();
        let user = dir.path().join("user.toml");
        std::fs::write(
            &user,
            "region = \"mine\"\npassword-command = \"pass show gw\"\n",
        )
        .unwrap();
        let ctx = Context {
            site_config: Some(site.clone()),
            ..Context::default()
        };
        let cli = Cli::parse_from([
            "x",
            "check",
            "--config",
            user.to_str().unwrap(),
            "--client-id",
            "mine",
        ]);
        let mut out = Vec::new();
        // The user's login (a password command, without a user) replaces the site's
        // token as a whole; the check fails for the missing user, and still shows where
        // each value came from.
        let _ = run(cli.config, &ctx, &mut out);
        let text = String::from_utf8(out).unwrap();
        let (s, u) = (site.display(), user.display());
        assert!(
            text.contains(&format!("\nsite config file: {s}\n")),
            "{text}"
        );
        for line in [
            format!("  api-gateway = \"https://site.example\" (config file {s})\n"),
            "  client-id = \"mine\" (--client-id)\n".to_string(),
            format!("  password-command = (a command, not shown) (config file {u})\n"),
            format!("  region = \"mine\" (config file {u})\n"),
        ] {
            assert!(text.contains(&line), "{line} in\n{text}");
        }
        assert!(!text.contains("pass show"), "{text}");
        assert!(!text.contains("token-env"), "{text}");
        assert!(text.contains("gives a password but no user"), "{text}");
    }

    /// Without --try nothing logs in: each profile's line says what would be used, and
    /// which password source is left alone until --try.
    #[test]
    fn each_profile_gets_a_line_saying_what_it_would_use() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("s3credsfs/config.toml");
        std::fs::create_dir(config.parent().unwrap()).unwrap();
        std::fs::write(
            &config,
            "default-profile = \"vers\"\napi-gateway = \"https://gw.example\"\n\
             region = \"r1\"\n\
             [profiles.vers]\nusername = \"vers\"\npassword-command = \"pass show vers\"\n\
             [profiles.ask]\nusername = \"ann\"\n\
             [profiles.tds]\napi-gateway = \"https://tds.example/\"\ntoken-env = \"T\"\n\
             region = \"r2\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        let missing_site = dir.path().join("site.toml");
        let ctx = Context {
            xdg_config_home: Some(dir.path().to_path_buf()),
            site_config: Some(missing_site.clone()),
            stdin_is_terminal: true,
            ..Context::default()
        };
        let check = |extra: &[&str]| {
            let cli = Cli::parse_from(["x", "check"].iter().chain(extra));
            let mut out = Vec::new();
            let result = run(cli.config, &ctx, &mut out);
            (result, String::from_utf8(out).unwrap())
        };
        let (result, text) = check(&[]);
        assert!(
            result.is_ok(),
            "{:?} {text}",
            result.err().map(|e| e.to_string())
        );
        let expected = [
            format!("config file: {}", config.display()),
            format!(
                "site config file: none ({} does not exist)",
                missing_site.display()
            ),
            "profile ask: ok: gateway https://gw.example, password login as ann, region r1 \
             (its password is asked only with --try)"
                .to_string(),
            "profile tds: ok: gateway https://tds.example, token-env login, region r2".to_string(),
            "profile vers (default): ok: gateway https://gw.example, password login as \
             vers, region r1 (its password command is run only with --try)"
                .to_string(),
        ];
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("  ")).collect();
        assert_eq!(lines, expected, "{text}");
        // The JSON document says the same: every profile fine.
        let (result, json) = check(&["--json"]);
        assert!(result.is_ok(), "{json}");
        let report: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(report["ok"], true, "{json}");
        assert_eq!(
            report["site_config_file"],
            serde_json::Value::Null,
            "{json}"
        );
        // Without a config file where the default would be, the check says so.
        std::fs::remove_file(&config).unwrap();
        let (_, text) = check(&["--api-gateway", "https://gw.example", "--token-env", "T"]);
        assert!(
            text.starts_with(&format!(
                "config file: none ({} does not exist)\n",
                config.display()
            )),
            "{text}"
        );
    }

    /// A password in a URL is shown by neither the check's error nor its sources, in
    /// every spelling the URL parser reads as one.
    #[test]
    fn config_check_never_shows_a_password_in_a_url() {
        for gateway in ["https://admin:hunter2@gw", "https:admin:hunter2@gw"] {
            let cli = Cli::parse_from([
                "x",
                "check",
                "--config",
                "/dev/null",
                "--api-gateway",
                gateway,
                "--token-env",
                "T",
            ]);
            let mut out = Vec::new();
            let err = run(cli.config, &Context::default(), &mut out).unwrap_err();
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("do not put credentials in the URL"), "{text}");
            assert!(text.contains("api-gateway = \"https:"), "{text}");
            assert!(!format!("{text}{err}").contains("hunter2"), "{text}");
        }
    }
}
