//! The settings as a type: one `Setting` per key, so a misspelt key is a compile error,
//! and one `spec` per setting, so its flag, variable, file key, help and default cannot
//! drift apart.

use std::fmt;

/// Which commands accept a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `fetch` and `mount`.
    Common,
    /// `mount` only.
    Mount,
}

/// Whether a setting takes a value (named in `--help` by the string) or is an on/off switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--flag VALUE`; the config file wants a quoted string.
    Value(&'static str),
    /// `--flag`; the config file wants `true` or `false`.
    Switch,
}

/// What a setting is when nobody sets it. Resolution and `--help` both read this, so the
/// documented default is the one used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Unset, and `--help` says nothing (logins, switches).
    Unset,
    /// Unset, and `--help` says so (`[default: none]`).
    Nothing,
    /// This text, parsed as if the user had given it.
    Value(&'static str),
    /// This text with `{gateway}` (the gateway URL without a trailing `/`) and `{realm}`
    /// filled in.
    Derived(&'static str),
    /// This path, if it exists.
    IfPresent(&'static str),
}

impl Fallback {
    /// The default as `--help` shows it, if it shows one.
    pub fn shown(self) -> Option<String> {
        match self {
            Fallback::Unset => None,
            Fallback::Nothing => Some("none".into()),
            Fallback::Value(text) | Fallback::Derived(text) => Some(text.into()),
            Fallback::IfPresent(path) => Some(format!("{path} if present")),
        }
    }
}

/// Everything about one setting except its identity.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The long flag without `--`, and the config-file key.
    pub name: &'static str,
    pub kind: Kind,
    /// One line for `--help`, without the default (that is added from `fallback`).
    pub about: &'static str,
    pub fallback: Fallback,
    pub scope: Scope,
}

/// The heading of the gateway settings, `--config` and `--profile`.
pub const HEADING_GATEWAY: &str = "Gateway and profile";

macro_rules! settings {
    ($($(#[$doc:meta])* $variant:ident,)*) => {
        /// One configuration key. Layers are keyed by it, so the compiler checks every
        /// lookup.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Setting {
            $($(#[$doc])* $variant,)*
        }

        impl Setting {
            /// Every setting, in the order `--help` lists them.
            pub const ALL: &'static [Setting] = &[$(Setting::$variant,)*];
        }
    };
}

settings! {
    ApiGateway,
    TokenUrl,
    StsUrl,
    Realm,
    ClientId,
    Username,
    PasswordEnv,
    PasswordFile,
    PasswordCommand,
    ClientSecretFile,
    ClientSecretEnv,
    TokenEnv,
    TokenFile,
    CaFile,
    Insecure,
    AllowHttp,
    Timeout,
    Profile,
    Region,
    S3Endpoint,
    /// `mount` only.
    MinValidity,
    /// `mount` only.
    RefreshAhead,
    /// `mount` only.
    LogFile,
    /// `mount` only.
    MetricsFile,
    LogFormat,
}

const fn value(
    name: &'static str,
    value_name: &'static str,
    about: &'static str,
    fallback: Fallback,
) -> Spec {
    Spec {
        name,
        kind: Kind::Value(value_name),
        about,
        fallback,
        scope: Scope::Common,
    }
}

const fn switch(name: &'static str, about: &'static str) -> Spec {
    Spec {
        name,
        kind: Kind::Switch,
        about,
        fallback: Fallback::Unset,
        scope: Scope::Common,
    }
}

const fn mount_only(spec: Spec) -> Spec {
    Spec {
        scope: Scope::Mount,
        ..spec
    }
}

impl Setting {
    /// The single source of truth for flag names, `S3CREDSFS_*` variables, config-file
    /// keys, help and defaults.
    pub const fn spec(self) -> Spec {
        use Fallback::{Derived, IfPresent, Nothing, Unset};
        use Setting::*;
        match self {
            ApiGateway => value("api-gateway", "URL", "Base URL of the CSM API gateway", Fallback::Value(super::defaults::DEFAULT_GATEWAY)),
            TokenUrl => value("token-url", "URL", "Keycloak token endpoint", Derived("{gateway}/keycloak/realms/{realm}/protocol/openid-connect/token")),
            StsUrl => value("sts-url", "URL", "STS endpoint", Derived("{gateway}/apis/sts/token")),
            Realm => value("realm", "REALM", "Keycloak realm", Fallback::Value("shasta")),
            ClientId => value("client-id", "ID", "Keycloak client id", Fallback::Value("shasta")),
            Username => value("username", "NAME", "Log in with this user's password (password grant)", Unset),
            PasswordEnv => value("password-env", "VAR", "Read the password from this environment variable", Unset),
            PasswordFile => value("password-file", "FILE", "Read the password from this file (must not be readable by group or others)", Unset),
            PasswordCommand => value("password-command", "CMD", "Run this shell command and use its output as the password", Unset),
            ClientSecretFile => value("client-secret-file", "FILE", "Use the client_credentials grant with the secret in this file", Unset),
            ClientSecretEnv => value("client-secret-env", "VAR", "Use the client_credentials grant with the secret in this variable", Unset),
            TokenEnv => value("token-env", "VAR", "Use the JWT in this environment variable (like $TOKEN in the CSM docs)", Unset),
            TokenFile => value("token-file", "FILE", "Use the JWT, or the `cray` CLI's saved login JSON, in this file (re-read on every use)", Unset),
            CaFile => value("ca-file", "PEM", "Trust this CA bundle in addition to the system roots", IfPresent(super::defaults::PLATFORM_CA)),
            Insecure => switch("insecure", "Do not verify TLS certificates (prints a warning on every start)"),
            AllowHttp => switch("allow-http", "Allow plain http to hosts other than loopback"),
            Timeout => value("timeout", "DURATION", "Time limit for one gateway request, e.g. 30s or 2m", Fallback::Value("30s")),
            Profile => value("profile", "NAME", "The profile to use, one of the config file's [profiles.NAME] tables (a mount serves them all, this one at its root); without tables, the name written into the files", Fallback::Value("default")),
            Region => value("region", "REGION", "Region written for the S3 clients that need one (config, env, container-env, s3cfg, rclone)", Fallback::Value("us-east-1")),
            S3Endpoint => value("s3-endpoint", "URL", "S3 endpoint written into every file instead of the one the STS hands out, e.g. https://rgw-vip.cmn.SYSTEM.DOMAIN from the customer network", Nothing),
            MinValidity => mount_only(value("min-validity", "DURATION", "Refresh before serving when less than this validity remains", Fallback::Value("20m"))),
            RefreshAhead => mount_only(value("refresh-ahead", "DURATION", "Refresh in the background, serving the current credentials meanwhile, at a random moment of the window that opens this long before the refresh at min-validity (never before half their life), so a system's nodes do not refresh at once; 0 turns it off", Fallback::Value("10m"))),
            LogFile => mount_only(value("log-file", "FILE", "Where the background daemon writes its log", Nothing)),
            MetricsFile => mount_only(value("metrics-file", "FILE", "Keep Prometheus metrics in this file (for node_exporter's textfile collector; name it *.prom), replaced whole on every change and every 15s", Nothing)),
            LogFormat => value("log-format", "FORMAT", "Log lines as text, or as json (one JSON object per line, for journald and log shippers)", Fallback::Value("text")),
        }
    }

    /// The `--help` heading the setting is listed under.
    pub const fn heading(self) -> &'static str {
        use Setting::*;
        match self {
            ApiGateway | TokenUrl | StsUrl | Realm | ClientId | Timeout | Profile | Region
            | S3Endpoint => HEADING_GATEWAY,
            Username | PasswordEnv | PasswordFile | PasswordCommand | ClientSecretFile
            | ClientSecretEnv | TokenEnv | TokenFile => "Login (exactly one way)",
            CaFile | Insecure | AllowHttp => "TLS",
            MinValidity | RefreshAhead => "Refresh",
            LogFile | LogFormat => "Logging",
            MetricsFile => "Monitoring",
        }
    }

    /// The long flag without `--`, which is also the config-file key.
    pub const fn name(self) -> &'static str {
        self.spec().name
    }

    /// The setting a flag or config-file key names, if any.
    pub fn from_name(name: &str) -> Option<Setting> {
        Setting::ALL.iter().copied().find(|s| s.name() == name)
    }

    /// The setting a misspelt name most likely meant (`pasword-file`, `password_command`,
    /// `Realm`), for a "did you mean".
    pub fn closest(name: &str) -> Option<Setting> {
        let found = closest(name, Setting::ALL.iter().map(|s| s.name()))?;
        Setting::from_name(found)
    }

    /// The long flag: `--` + name.
    pub fn flag(self) -> String {
        format!("--{}", self.name())
    }

    /// The environment variable that sets it: `S3CREDSFS_` + upper snake case.
    pub fn env_var(self) -> String {
        env_var(self.name())
    }

    /// The `--help` line: the description, then the default from the same spec that
    /// resolution uses.
    pub fn help(self) -> String {
        let spec = self.spec();
        match spec.fallback.shown() {
            Some(default) => format!("{} [default: {default}]", spec.about),
            None => spec.about.to_string(),
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The candidate a misspelt `name` most likely meant: the same name but for case and
/// `_` for `-`, else the nearest within a few typos (one per four letters, at least one).
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('_', "-");
    let wanted = norm(name);
    let limit = (wanted.chars().count() / 4).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&wanted, &norm(c)), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance in characters (insertions, deletions, substitutions).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// What every variable of ours starts with.
pub const ENV_PREFIX: &str = "S3CREDSFS_";

/// The environment variable for a flag name: `S3CREDSFS_` + upper snake case.
pub fn env_var(name: &str) -> String {
    format!("{ENV_PREFIX}{}", name.to_uppercase().replace('-', "_"))
}

/// Our variables that are no setting: the config file, the log filter, the built-in
/// gateway's backend keys, and the packaging switch of `scripts/test`. Names starting
/// `S3CREDSFS_TEST_` belong to the test suite.
pub const OTHER_VARIABLES: &[&str] = &[
    "S3CREDSFS_CONFIG",
    crate::logging::LOG_ENV,
    "S3CREDSFS_BACKEND_ACCESS_KEY",
    "S3CREDSFS_BACKEND_SECRET_KEY",
    "S3CREDSFS_PACKAGE",
];

/// The warning for `S3CREDSFS_*` variable `name` when it names no setting and is not
/// another of ours nor one a `*-env` setting names (`named`, e.g. a password variable
/// `S3CREDSFS_PASSWORD`): a misspelt variable is otherwise silently ignored.
pub fn unknown_variable(name: &str, named: &[&str]) -> Option<String> {
    let suffix = name.strip_prefix(ENV_PREFIX)?;
    let known = Setting::ALL.iter().any(|s| s.env_var() == name)
        || OTHER_VARIABLES.contains(&name)
        || suffix.starts_with("TEST_")
        || named.contains(&name);
    if known {
        return None;
    }
    let others: Vec<&str> = OTHER_VARIABLES
        .iter()
        .filter_map(|v| v.strip_prefix(ENV_PREFIX))
        .collect();
    let candidates = Setting::ALL.iter().map(|s| s.name()).chain(others);
    let guess = closest(suffix, candidates)
        .map(|c| format!("; did you mean {}?", env_var(c)))
        .unwrap_or_default();
    Some(format!(
        "environment variable {} names no setting and is ignored{guess}",
        crate::untrusted::clean(name, 80)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_back_to_settings() {
        for &s in Setting::ALL {
            assert_eq!(Setting::from_name(s.name()), Some(s));
        }
        assert_eq!(Setting::from_name("api_gateway"), None);
        assert_eq!(Setting::TokenUrl.flag(), "--token-url");
        assert_eq!(Setting::ApiGateway.env_var(), "S3CREDSFS_API_GATEWAY");
        // Misspellings find their setting; other words find none.
        for (typo, meant) in [
            ("pasword-file", Setting::PasswordFile),
            ("password_command", Setting::PasswordCommand),
            ("API_GATEWAY", Setting::ApiGateway),
            ("api-gatway", Setting::ApiGateway),
            ("timout", Setting::Timeout),
            ("clientid", Setting::ClientId),
            ("min-valdity", Setting::MinValidity),
        ] {
            assert_eq!(Setting::closest(typo), Some(meant), "{typo}");
        }
        for unrelated in ["colour", "x", "", "password", "endpoint"] {
            assert_eq!(Setting::closest(unrelated), None, "{unrelated}");
        }
        // One typo per four letters: three in a name of twelve.
        assert_eq!(
            Setting::closest("pasword-fiel"),
            Some(Setting::PasswordFile)
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("abc", "abcd"), 1);
        assert_eq!(edit_distance("abcd", "bcd"), 1);
        assert_eq!(edit_distance("abcd", "abc"), 1);
        assert_eq!(edit_distance("abxc", "abc"), 1);
        assert_eq!(edit_distance("a", "b"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
        // ALL lists each variant once, in declaration order.
        assert_eq!(
            unknown_variable("S3CREDSFS_API_GATEWY", &[]).as_deref(),
            Some(
                "environment variable S3CREDSFS_API_GATEWY names no setting and is ignored; \
                 did you mean S3CREDSFS_API_GATEWAY?"
            )
        );
        assert_eq!(
            unknown_variable("S3CREDSFS_CONFG", &[]).as_deref(),
            Some(
                "environment variable S3CREDSFS_CONFG names no setting and is ignored; \
                 did you mean S3CREDSFS_CONFIG?"
            )
        );
        assert_eq!(
            unknown_variable("S3CREDSFS_COLOUR", &[]).as_deref(),
            Some("environment variable S3CREDSFS_COLOUR names no setting and is ignored")
        );
        for known in [
            "S3CREDSFS_API_GATEWAY",
            "S3CREDSFS_MIN_VALIDITY",
            "S3CREDSFS_CONFIG",
            "S3CREDSFS_LOG",
            "S3CREDSFS_TEST_DAEMON_TAG",
            "PATH",
        ] {
            assert_eq!(unknown_variable(known, &[]), None, "{known}");
        }
        assert_eq!(
            unknown_variable("S3CREDSFS_PASSWORD", &["S3CREDSFS_PASSWORD"]),
            None,
            "a password variable named by --password-env"
        );
        for (i, &s) in Setting::ALL.iter().enumerate() {
            assert_eq!(s as usize, i);
        }
    }
}
