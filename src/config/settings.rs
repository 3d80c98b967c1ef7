//! What configuration produces: the validated `Settings` everything downstream takes,
//! the login it names (`AuthConfig`), and the process environment (`Context`) that
//! resolving reads, explicit so tests can fake it.

use super::defaults::{PLATFORM_CA, SITE_CONFIG};
use super::keys::ENV_PREFIX;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// How to obtain a JWT; exactly one per configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// Password grant for a user, with refresh-token reuse.
    Password {
        username: String,
        password: PasswordSource,
    },
    /// client_credentials grant for a confidential client such as `admin-client`.
    ClientCredentials { secret: SecretSource },
    /// A raw JWT in an environment variable.
    TokenEnv { var: String },
    /// A raw JWT or `cray` CLI login JSON in a file, re-read on every use.
    TokenFile { path: PathBuf },
}

impl AuthConfig {
    /// A short name for status output and logs.
    pub fn describe(&self) -> &'static str {
        match self {
            AuthConfig::Password { .. } => "password",
            AuthConfig::ClientCredentials { .. } => "client-credentials",
            AuthConfig::TokenEnv { .. } => "token-env",
            AuthConfig::TokenFile { .. } => "token-file",
        }
    }

    /// The environment variable the login secret is read from, if it is one: a mount
    /// publishes its name (never its value) so that `exec` keeps it from its command.
    pub fn secret_env(&self) -> Option<&str> {
        match self {
            AuthConfig::Password {
                password: PasswordSource::Env(var),
                ..
            }
            | AuthConfig::ClientCredentials {
                secret: SecretSource::Env(var),
            }
            | AuthConfig::TokenEnv { var } => Some(var),
            _ => None,
        }
    }
}

/// Where a password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    Env(String),
    File(PathBuf),
    Command(String),
    /// Ask on the terminal without echo.
    Prompt,
    /// Known in advance, never from a flag, variable or file: set by code that fixes the
    /// login, as `mount --dev` does with the built-in gateway's public password.
    Given(crate::secret::Secret),
}

/// Where a client secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

/// The validated configuration of `fetch` and `mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub api_gateway: Url,
    pub token_url: Url,
    pub sts_url: Url,
    pub client_id: String,
    pub auth: AuthConfig,
    /// The CA bundle to add to the system roots, if any.
    pub ca_file: Option<PathBuf>,
    pub insecure: bool,
    pub timeout: Duration,
    pub profile: String,
    /// Written into the files for SDKs that refuse to sign without a region (the JS v3
    /// and Rust SDKs); Ceph RGW accepts any, and `us-east-1` is what it expects by default.
    pub region: String,
    /// The S3 endpoint written into every file instead of the STS's `EndpointURL` (a
    /// host on the customer network cannot reach the node network's one the STS hands
    /// out); checked like `EndpointURL` and kept as given, since clients compare it as text.
    pub s3_endpoint: Option<String>,
    pub min_validity: Duration,
    /// How long before `min_validity` a background refresh starts, so readers in steady
    /// state never wait for the gateway.
    pub refresh_ahead: Duration,
    pub log_file: Option<PathBuf>,
    /// Where the mount keeps its Prometheus metrics, if anywhere.
    pub metrics_file: Option<PathBuf>,
    /// How log lines look: text, or one JSON object per line.
    pub log_format: crate::logging::LogFormat,
}

/// What `resolve` needs from the process environment, explicit so tests can fake it.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub home: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    /// `CRAY_CREDENTIALS`, naming a `cray` CLI token file.
    pub cray_credentials: Option<PathBuf>,
    /// Whether a missing password may be asked for on the terminal.
    pub stdin_is_terminal: bool,
    /// Where the platform CA bundle would be ([`PLATFORM_CA`] on a real run), trusted by
    /// default when the file exists.
    pub platform_ca: Option<PathBuf>,
    /// The site-wide config file ([`SITE_CONFIG`] on a real run), read when it exists.
    pub site_config: Option<PathBuf>,
    /// The names of the `S3CREDSFS_*` variables set, so a misspelt one can be warned about.
    pub our_variables: Vec<String>,
}

impl Context {
    /// Reads the real environment.
    pub fn from_process() -> Self {
        Context {
            our_variables: std::env::vars_os()
                .filter_map(|(name, _)| name.into_string().ok())
                .filter(|name| name.starts_with(ENV_PREFIX))
                .collect(),
            ..Self::from_vars(
                |var| std::env::var_os(var),
                std::io::IsTerminal::is_terminal(&std::io::stdin()),
            )
        }
    }

    /// The context from environment variables read by `var`; an empty variable counts
    /// as unset, as the XDG rules say.
    pub fn from_vars(var: impl Fn(&str) -> Option<std::ffi::OsString>, terminal: bool) -> Self {
        let path = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        Context {
            home: path("HOME"),
            xdg_config_home: path("XDG_CONFIG_HOME"),
            cray_credentials: path("CRAY_CREDENTIALS"),
            stdin_is_terminal: terminal,
            platform_ca: Some(PathBuf::from(PLATFORM_CA)),
            site_config: Some(PathBuf::from(SITE_CONFIG)),
            our_variables: Vec::new(),
        }
    }

    /// The config file read when `--config` is not given.
    pub fn default_config_file(&self) -> Option<PathBuf> {
        let base = match &self.xdg_config_home {
            Some(dir) => dir.clone(),
            None => self.home.as_ref()?.join(".config"),
        };
        Some(base.join("s3credsfs").join("config.toml"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_secret_read_from_the_environment_names_its_variable() {
        let password = |source| AuthConfig::Password {
            username: "vers".into(),
            password: source,
        };
        let client = |secret| AuthConfig::ClientCredentials { secret };
        let named = [
            (password(PasswordSource::Env("VERS_PW".into())), "VERS_PW"),
            (
                client(SecretSource::Env("ADMIN_SECRET".into())),
                "ADMIN_SECRET",
            ),
            (AuthConfig::TokenEnv { var: "JWT".into() }, "JWT"),
        ];
        for (auth, var) in &named {
            assert_eq!(auth.secret_env(), Some(*var), "{auth:?}");
        }
        for auth in [
            password(PasswordSource::File("/home/vers/.pw".into())),
            password(PasswordSource::Command("pass show vers".into())),
            client(SecretSource::File("/etc/secret".into())),
            AuthConfig::TokenFile {
                path: "/home/vers/.token".into(),
            },
        ] {
            assert_eq!(auth.secret_env(), None, "{auth:?}");
        }
    }
}
