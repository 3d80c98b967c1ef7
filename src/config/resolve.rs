//! Parsing the merged layer into `Settings`: every value checked, every default applied,
//! every error naming the key and where its value came from.

use super::keys::{Fallback, Setting};
use super::layers::{Layer, RawValue, Source};
use super::names::check_name;
use super::settings::{AuthConfig, Context, PasswordSource, SecretSource, Settings};
use crate::error::{Error, Result};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

fn parse_duration(raw: &RawValue, key: Setting) -> Result<Duration> {
    let d = humantime::parse_duration(raw.value.trim()).map_err(|_| {
        match raw.value.trim().parse::<u64>() {
            Ok(n) => raw.error(
                key,
                &format!("a duration needs its unit; write {n}s (or 2m, 1h)"),
            ),
            Err(_) => raw.error(key, "expected a duration like 30s, 90s or 15m"),
        }
    })?;
    if d.is_zero() {
        return Err(raw.error(key, "the duration must be more than zero"));
    }
    Ok(d)
}

/// Whether a URL names this host (`localhost`, 127.0.0.0/8, `::1`): the only place plain
/// http is allowed by default, and never reached through a proxy.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn parse_url(raw: &RawValue, key: Setting, allow_http: bool) -> Result<Url> {
    let url = Url::parse(raw.value.trim())
        .map_err(|_| raw.error(key, "expected a URL like https://api-gw-service-nmn.local"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(raw.error(key, "do not put credentials in the URL"));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_http || is_loopback(&url) => Ok(url),
        "http" => Err(raw.error(
            key,
            "plain http is only allowed to loopback addresses; use https, or pass --allow-http",
        )),
        _ => Err(raw.error(key, "the URL must start with https:// or http://")),
    }
}

/// A default as a raw value, so it is parsed (and any error reported) like a given one.
fn default_value(key: Setting, value: String) -> RawValue {
    RawValue {
        value,
        source: Source::Flag(format!("{} (default)", key.flag())),
    }
}

fn nonempty(raw: &RawValue, key: Setting) -> Result<String> {
    let value = raw.value.trim();
    if value.is_empty() {
        return Err(raw.error(key, "the value is empty"));
    }
    Ok(value.to_string())
}

/// The value of `key`: given, or its `Fallback::Value` default.
fn given_or_default(layer: &Layer, key: Setting) -> Result<RawValue> {
    match (layer.get(&key), key.spec().fallback) {
        (Some(raw), _) => Ok(raw.clone()),
        (None, Fallback::Value(text)) => Ok(default_value(key, text.into())),
        (None, _) => Err(no_default(key)),
    }
}

/// Only reachable if `Setting::spec` loses a default that `resolve` relies on.
fn no_default(key: Setting) -> Error {
    Error::Config(format!(
        "{} has no default (a bug in s3credsfs); set it explicitly",
        key.flag()
    ))
}

/// Parses the merged layer into `Settings`; every error names the key and its source.
pub fn resolve(layer: &Layer, ctx: &Context) -> Result<Settings> {
    let get = |key: Setting| layer.get(&key);
    let flag = |key: Setting| get(key).is_some_and(|v| v.value == "true");
    let allow_http = flag(Setting::AllowHttp);
    let text = |key: Setting| nonempty(&given_or_default(layer, key)?, key);

    let gateway_raw = given_or_default(layer, Setting::ApiGateway)?;
    let api_gateway = parse_url(&gateway_raw, Setting::ApiGateway, allow_http)?;
    let base = api_gateway.as_str().trim_end_matches('/').to_string();
    let realm = text(Setting::Realm)?;
    let client_id = text(Setting::ClientId)?;
    let derived = |key: Setting| -> Result<Url> {
        let raw = match (get(key), key.spec().fallback) {
            (Some(raw), _) => raw.clone(),
            (None, Fallback::Derived(template)) => default_value(
                key,
                template
                    .replace("{gateway}", &base)
                    .replace("{realm}", &realm),
            ),
            (None, _) => return Err(no_default(key)),
        };
        parse_url(&raw, key, allow_http)
    };
    let token_url = derived(Setting::TokenUrl)?;
    let sts_url = derived(Setting::StsUrl)?;

    let duration = |key: Setting| parse_duration(&given_or_default(layer, key)?, key);
    let timeout = duration(Setting::Timeout)?;
    let min_validity = duration(Setting::MinValidity)?;
    // Zero is allowed here: it turns refreshing ahead off.
    let refresh_ahead = {
        let raw = given_or_default(layer, Setting::RefreshAhead)?;
        if raw.value.trim().parse::<u64>() == Ok(0) {
            Duration::ZERO
        } else {
            humantime::parse_duration(raw.value.trim()).map_err(|_| {
                let why = match raw.value.trim().parse::<u64>() {
                    Ok(n) => format!(
                        "a duration needs its unit; write {n}s (or 5m, 10m), or 0 to refresh \
                         only on demand"
                    ),
                    Err(_) => {
                        "expected a duration like 5m or 10m, or 0 to refresh only on demand".into()
                    }
                };
                raw.error(Setting::RefreshAhead, &why)
            })?
        }
    };

    let profile = text(Setting::Profile)?;
    if let Err(why) = check_name(&profile) {
        return Err(given_or_default(layer, Setting::Profile)?.error(Setting::Profile, why));
    }

    let region = text(Setting::Region)?;
    if region.len() > 64
        || !region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        return Err(given_or_default(layer, Setting::Region)?.error(
            Setting::Region,
            "use at most 64 letters, digits, `_`, `.` and `-` (for example us-east-1)",
        ));
    }

    let s3_endpoint = get(Setting::S3Endpoint)
        .map(|raw| {
            let value = raw.value.trim();
            if crate::creds::is_plain_endpoint(value) {
                Ok(value.to_string())
            } else {
                Err(raw.error(
                    Setting::S3Endpoint,
                    "use an http:// or https:// URL with a host and nothing after the path \
                     (no user, password, query or fragment), such as \
                     https://rgw-vip.cmn.SYSTEM.DOMAIN",
                ))
            }
        })
        .transpose()?;

    let ca_file = match (get(Setting::CaFile), Setting::CaFile.spec().fallback) {
        (Some(raw), _) => Some(PathBuf::from(nonempty(raw, Setting::CaFile)?)),
        (None, Fallback::IfPresent(_)) => ctx.platform_ca.clone().filter(|p| p.exists()),
        (None, _) => None,
    };
    let log_file = get(Setting::LogFile)
        .map(|raw| nonempty(raw, Setting::LogFile).map(PathBuf::from))
        .transpose()?;
    // Absolute: the daemon leaves its directory.
    let metrics_file = get(Setting::MetricsFile)
        .map(|raw| {
            nonempty(raw, Setting::MetricsFile)
                .map(|p| std::path::absolute(&p).unwrap_or_else(|_| p.into()))
        })
        .transpose()?;
    let log_format = {
        let raw = given_or_default(layer, Setting::LogFormat)?;
        crate::logging::LogFormat::parse(&raw.value)
            .ok_or_else(|| raw.error(Setting::LogFormat, "expected text or json"))?
    };

    Ok(Settings {
        auth: resolve_auth(layer, ctx, &api_gateway)?,
        api_gateway,
        token_url,
        sts_url,
        client_id,
        ca_file,
        insecure: flag(Setting::Insecure),
        timeout,
        profile,
        region,
        s3_endpoint,
        min_validity,
        refresh_ahead,
        log_file,
        metrics_file,
        log_format,
    })
}

/// The `cray` CLI's token file name for a gateway host: `-` and `.` become `_`.
pub fn cray_token_prefix(gateway: &Url) -> String {
    gateway
        .host_str()
        .unwrap_or_default()
        .replace(['-', '.'], "_")
}

/// Finds the `cray` CLI's saved login for this gateway, if there is exactly one.
fn find_cray_login(ctx: &Context, gateway: &Url) -> Result<Option<PathBuf>> {
    if let Some(path) = &ctx.cray_credentials {
        return Ok(path.exists().then(|| path.clone()));
    }
    let Some(home) = &ctx.home else {
        return Ok(None);
    };
    let dir = home.join(".config/cray/tokens");
    let prefix = format!("{}.", cray_token_prefix(gateway));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(None);
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    found.sort();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => {
            Err(Error::Config(format!(
            "found several `cray` CLI logins for this gateway ({}); choose one with --token-file",
            found.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )))
        }
    }
}

fn resolve_auth(layer: &Layer, ctx: &Context, gateway: &Url) -> Result<AuthConfig> {
    let value = |key: Setting| -> Result<Option<String>> {
        layer.get(&key).map(|raw| nonempty(raw, key)).transpose()
    };
    let place = |key: Setting| layer.get(&key).map(|raw| raw.source.to_string());

    let password_sources: Vec<(Setting, PasswordSource)> = [
        (
            Setting::PasswordEnv,
            value(Setting::PasswordEnv)?.map(PasswordSource::Env),
        ),
        (
            Setting::PasswordFile,
            value(Setting::PasswordFile)?.map(|p| PasswordSource::File(p.into())),
        ),
        (
            Setting::PasswordCommand,
            value(Setting::PasswordCommand)?.map(PasswordSource::Command),
        ),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    if password_sources.len() > 1 {
        let names: Vec<String> = password_sources
            .iter()
            .filter_map(|(k, _)| place(*k))
            .collect();
        return Err(Error::Config(format!(
            "several password sources are set ({}); keep exactly one",
            names.join(", ")
        )));
    }

    let mut methods: Vec<(String, AuthConfig)> = Vec::new();
    if let Some(username) = value(Setting::Username)? {
        let password = match password_sources.into_iter().next() {
            Some((_, source)) => source,
            None if ctx.stdin_is_terminal => PasswordSource::Prompt,
            None => {
                return Err(Error::Config(format!(
                    "no password for user {username:?} and stdin is not a terminal to ask on; \
                     give --password-env, --password-file or --password-command"
                )))
            }
        };
        methods.push((
            place(Setting::Username).unwrap_or_default(),
            AuthConfig::Password { username, password },
        ));
    } else if let Some((key, _)) = password_sources.first() {
        return Err(Error::Config(format!(
            "{} gives a password but no user; add --username",
            place(*key).unwrap_or_default()
        )));
    }
    let secret_sources: Vec<(Setting, SecretSource)> = [
        (
            Setting::ClientSecretFile,
            value(Setting::ClientSecretFile)?.map(|p| SecretSource::File(p.into())),
        ),
        (
            Setting::ClientSecretEnv,
            value(Setting::ClientSecretEnv)?.map(SecretSource::Env),
        ),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    for (key, secret) in secret_sources {
        methods.push((
            place(key).unwrap_or_default(),
            AuthConfig::ClientCredentials { secret },
        ));
    }
    if let Some(var) = value(Setting::TokenEnv)? {
        methods.push((
            place(Setting::TokenEnv).unwrap_or_default(),
            AuthConfig::TokenEnv { var },
        ));
    }
    if let Some(path) = value(Setting::TokenFile)? {
        // Re-read on every use, also by a daemon that has left this directory.
        let path = std::path::absolute(&path).unwrap_or_else(|_| path.into());
        methods.push((
            place(Setting::TokenFile).unwrap_or_default(),
            AuthConfig::TokenFile { path },
        ));
    }

    match methods.len() {
        1 => Ok(methods.remove(0).1),
        0 => match find_cray_login(ctx, gateway)? {
            Some(path) => Ok(AuthConfig::TokenFile { path }),
            None => Err(Error::Config(
                "no way to log in is configured; give --username (with --password-env, --password-file \
                 or --password-command), --client-secret-file, --token-env or --token-file, \
                 or run `cray auth login` first"
                    .into(),
            )),
        },
        _ => {
            let names: Vec<String> = methods.into_iter().map(|(place, _)| place).collect();
            Err(Error::Config(format!(
                "several ways to log in are configured ({}); keep exactly one",
                names.join(", ")
            )))
        }
    }
}
