//! `s3credsfs exec -- COMMAND`: runs a command with current credentials in its
//! environment, like `aws-vault exec`, so a tool needs no file and no configuration.
//!
//! The credentials come from a running mount when one serves the profile (no new
//! credentials are issued; see [`mounted`]), else from the gateway. By default the
//! command gets keys in `AWS_*` variables, which cannot renew; with
//! `--container-endpoint` it gets a private container credentials endpoint instead,
//! served from this process while the command runs, so a long-running command renews by
//! itself. Secrets go into the command's environment only (readable by its user alone,
//! unlike its argv). Its exit code is ours; see [`child`] for signals. The command itself
//! (`commands/exec.rs`, in the command layer) puts these pieces together.

pub mod child;
pub mod mounted;
pub mod unloaded;

pub use child::{should_forward, FORWARDED};
pub use mounted::{parse_json, parse_region, MountFiles};

use crate::config::{CliLayer, ConfigFile, Setting};
use crate::container::ContainerEndpoint;
use crate::creds::Credentials;
use crate::render::CHECKSUM_SETTING;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Every variable `exec` sets or removes. Each is always one or the other, so nothing
/// of the caller's (a stale `AWS_SESSION_TOKEN`, an `AWS_PROFILE` naming a profile the
/// command would then look for) can mix with what `exec` gives.
pub const OWNED: [&str; 15] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];

/// The settings that name an environment variable holding a login secret.
pub const SECRET_SOURCES: [Setting; 3] = [
    Setting::PasswordEnv,
    Setting::ClientSecretEnv,
    Setting::TokenEnv,
];

/// Every variable that a setting of this run names as the source of a login secret
/// (`--password-env`, `--client-secret-env`, `--token-env`): as a flag, an `S3CREDSFS_*`
/// variable (even one a flag overrides) or a key of a config file, the user's or the
/// site's (its top level and every profile, even one a flag overrides). `exec` removes
/// each from the command's environment, which should hold short-lived keys, never the
/// password or JWT behind them. `files` is empty when the config files could not be
/// loaded (a mount is used): the flags and variables still count. `also` are names found
/// elsewhere: in the text of a config file that did not load, and in the `status` of a
/// running mount (whose settings may not be this run's). `var` reads the environment. An
/// [`OWNED`] name is left
/// to [`child_env`], which sets or removes it anyway.
///
/// `CRAY_CREDENTIALS` stays: it names a file (a `cray` CLI token file), not a secret; the
/// command runs as the same user and could read that file whatever the variable said, and
/// a command that is itself `cray` or `s3credsfs` needs it to find its login.
pub fn secret_sources(
    cli: &CliLayer,
    files: &[ConfigFile],
    also: &[String],
    var: impl Fn(&str) -> Option<OsString>,
) -> Vec<String> {
    let mut names: Vec<String> = SECRET_SOURCES
        .iter()
        .filter_map(|key| var(&key.env_var()))
        .filter_map(|name| name.into_string().ok())
        .collect();
    let mut layers = vec![&cli.layer];
    for file in files {
        layers.push(&file.top);
        layers.extend(file.profiles.values());
    }
    names.extend(
        layers
            .iter()
            .flat_map(|layer| SECRET_SOURCES.iter().filter_map(|key| layer.get(key)))
            .map(|raw| raw.value.clone()),
    );
    names.extend(also.iter().cloned());
    let mut names: Vec<String> = names
        .iter()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty() && !name.contains(['=', '\0']))
        .filter(|name| !OWNED.contains(&name.as_str()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// What the command is given.
pub enum Grant {
    /// Keys, valid until their expiration.
    Keys { creds: Credentials, region: String },
    /// A container credentials endpoint, and the S3 endpoint and region to use.
    Endpoint {
        endpoint: ContainerEndpoint,
        endpoint_url: String,
        region: String,
    },
}

/// The command's environment changes: every [`OWNED`] variable, set (`Some`) or removed.
pub fn child_env(grant: &Grant) -> Vec<(&'static str, Option<OsString>)> {
    let mut set: Vec<(&'static str, String)> = match grant {
        Grant::Keys { creds, region } => vec![
            ("AWS_ACCESS_KEY_ID", creds.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY",
                creds.secret_access_key.expose().to_string(),
            ),
            (
                "AWS_SESSION_TOKEN",
                creds.session_token.expose().to_string(),
            ),
            ("AWS_CREDENTIAL_EXPIRATION", creds.expiration_rfc3339()),
            ("AWS_ENDPOINT_URL", creds.endpoint_url.clone()),
            ("AWS_REGION", region.clone()),
            ("AWS_DEFAULT_REGION", region.clone()),
        ],
        Grant::Endpoint {
            endpoint,
            endpoint_url,
            region,
        } => vec![
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint.url.clone()),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                endpoint.token.expose().to_string(),
            ),
            ("AWS_ENDPOINT_URL", endpoint_url.clone()),
            ("AWS_REGION", region.clone()),
            ("AWS_DEFAULT_REGION", region.clone()),
        ],
    };
    OWNED
        .iter()
        .map(|name| {
            let value = set
                .iter_mut()
                .find(|(n, _)| n == name)
                .map(|(_, v)| OsString::from(std::mem::take(v)));
            (*name, value)
        })
        .collect()
}

/// Settings the command gets only when its environment has none of its own: what the
/// mount's `config` and `env` files carry for RGW ([`CHECKSUM_SETTING`]), left to the user
/// to override (for a newer RGW), unlike the [`OWNED`] variables.
pub fn default_env(
    var: impl Fn(&str) -> Option<OsString>,
) -> Vec<(&'static str, Option<OsString>)> {
    let (_, name, value) = CHECKSUM_SETTING;
    match var(name) {
        Some(_) => Vec::new(),
        None => vec![(name, Some(OsString::from(value)))],
    }
}

/// The directory of a mount that serves `profile` (the root serves the default; a named
/// profile lives in `profiles/NAME`), or `None` for a name no profile can have
/// ([`crate::config::check_name`]: `..` would climb out of `profiles`).
pub fn profile_dir(mount: &Path, profile: Option<&str>) -> Option<PathBuf> {
    let Some(name) = profile else {
        return Some(mount.to_path_buf());
    };
    let valid = crate::config::check_name(name).is_ok();
    valid.then(|| mount.join("profiles").join(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: Secret::new("SECRET"),
            session_token: Secret::new("TOKEN"),
            expiration: chrono::DateTime::from_timestamp(4_000_000_000, 0).unwrap(),
            endpoint_url: "http://rgw:8080".into(),
        }
    }

    fn set<'a>(env: &'a [(&'static str, Option<OsString>)]) -> Vec<(&'static str, &'a str)> {
        env.iter()
            .filter_map(|(n, v)| v.as_ref().map(|v| (*n, v.to_str().unwrap())))
            .collect()
    }

    #[test]
    fn keys_set_their_variables_and_remove_every_other_owned_one() {
        let grant = Grant::Keys {
            creds: creds(),
            region: "eu-1".into(),
        };
        let env = child_env(&grant);
        assert_eq!(env.len(), OWNED.len());
        assert_eq!(
            set(&env),
            [
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", "SECRET"),
                ("AWS_SESSION_TOKEN", "TOKEN"),
                ("AWS_CREDENTIAL_EXPIRATION", "2096-10-02T07:06:40Z"),
                ("AWS_ENDPOINT_URL", "http://rgw:8080"),
                ("AWS_REGION", "eu-1"),
                ("AWS_DEFAULT_REGION", "eu-1"),
            ]
        );
    }

    #[test]
    fn an_endpoint_removes_the_keys_which_would_win_over_it() {
        let grant = Grant::Endpoint {
            endpoint: ContainerEndpoint {
                url: "http://127.0.0.1:1/credentials".into(),
                token: Secret::new("T"),
            },
            endpoint_url: "http://rgw:8080".into(),
            region: "eu-1".into(),
        };
        let env = child_env(&grant);
        assert_eq!(env.len(), OWNED.len());
        assert_eq!(
            set(&env),
            [
                ("AWS_ENDPOINT_URL", "http://rgw:8080"),
                ("AWS_REGION", "eu-1"),
                ("AWS_DEFAULT_REGION", "eu-1"),
                (
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                    "http://127.0.0.1:1/credentials"
                ),
                ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "T"),
            ]
        );
    }

    #[test]
    fn every_variable_named_as_a_secret_source_anywhere_is_hidden() {
        use crate::config::{parse_config_file, RawValue, Source};
        let flag = |v: &str| RawValue {
            value: v.into(),
            source: Source::Flag("--password-env".into()),
        };
        let mut cli = CliLayer::default();
        cli.layer.insert(Setting::PasswordEnv, flag(" PW "));
        cli.layer
            .insert(Setting::TokenEnv, flag("AWS_SESSION_TOKEN"));
        let file = parse_config_file(
            "default-profile = \"a\"\nclient-secret-env = \"TOP\"\n\
             [profiles.a]\ntoken-env = \"TOKEN_A\"\n\
             [profiles.b]\nclient-secret-env = \"B_SECRET\"\n",
            Path::new("/c.toml"),
        )
        .unwrap();
        let vars = |name: &str| match name {
            "S3CREDSFS_PASSWORD_ENV" => Some(OsString::from("PW_VAR")),
            "S3CREDSFS_TOKEN_ENV" => Some(OsString::from("A=B")),
            _ => None,
        };
        assert_eq!(
            secret_sources(&cli, std::slice::from_ref(&file), &[], vars),
            ["B_SECRET", "PW", "PW_VAR", "TOKEN_A", "TOP"],
            "overridden settings count too; an AWS_* name is exec's own to set; no name holds '='"
        );
        assert_eq!(secret_sources(&cli, &[], &[], |_| None), ["PW"]);
        let unloaded = [" LOOSE ".to_string(), "X=Y".into(), String::new()];
        assert_eq!(
            secret_sources(&cli, &[], &unloaded, |_| None),
            ["LOOSE", "PW"]
        );
    }

    #[test]
    fn a_profile_name_cannot_leave_the_profiles_directory() {
        let mount = Path::new("/m");
        assert_eq!(profile_dir(mount, None).unwrap(), Path::new("/m"));
        assert_eq!(
            profile_dir(mount, Some("team-a.1_x")).unwrap(),
            Path::new("/m/profiles/team-a.1_x")
        );
        let long = "x".repeat(65);
        for bad in ["..", ".", "", "a/b", "../x", "x\n", ".hidden", "-x", &long] {
            assert_eq!(profile_dir(mount, Some(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn the_checksum_default_yields_to_the_users_own_setting() {
        assert_eq!(
            default_env(|_| None),
            [(
                "AWS_REQUEST_CHECKSUM_CALCULATION",
                Some(OsString::from("when_required"))
            )]
        );
        let own = |name: &str| {
            (name == "AWS_REQUEST_CHECKSUM_CALCULATION").then(|| OsString::from("when_supported"))
        };
        assert!(default_env(own).is_empty());
    }
}
