//! The raw configuration layers (flags and environment via clap, the TOML file) and their
//! merge by precedence. Values stay strings here; `Settings` parses them once.

use super::keys::{Kind, Scope, Setting};

/// The end of `fetch`'s and `mount`'s help: where else settings come from.
pub const SETTINGS_NOTE: &str =
    "Every setting is also an S3CREDSFS_* environment variable and a config-file key \
(--api-gateway: S3CREDSFS_API_GATEWAY, api-gateway = \"...\"); flags win over variables, \
variables over your config file (its [profiles.NAME] table, then its top level), that over \
the site-wide /etc/s3credsfs/config.toml (the same way).";
use crate::error::{Error, Result};
use clap::builder::FalseyValueParser;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a value came from, so an error can send the user to the right place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag(String),
    Env(String),
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "{flag}"),
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::File(path) => write!(f, "config file {}", path.display()),
        }
    }
}

/// A raw value and its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawValue {
    pub value: String,
    pub source: Source,
}

impl RawValue {
    /// "bad value ... for --x: why" naming key and source, as every config error does.
    pub fn error(&self, key: Setting, why: &str) -> Error {
        let place = match &self.source {
            Source::File(path) => format!("key `{key}` in config file {}", path.display()),
            Source::Flag(flag) => flag.clone(),
            Source::Env(var) => format!("environment variable {var}"),
        };
        Error::Config(format!("bad value {} for {place}: {why}", self.shown()))
    }

    /// The value as an error (or `config check`) may quote it: user info in a URL
    /// (`https://user:pw@gw`, and anything else between a `:` and an `@`) is hidden, control characters are escaped, and a long value
    /// is cut short.
    pub fn shown(&self) -> String {
        // Everything between the first `:` (and the slashes after it) and the last `@`:
        // the URL parser also reads `https:user:pw@gw`, `https:\\user:pw@gw` and
        // ` https://user:pw@gw` as user info.
        let value = match (self.value.find(':'), self.value.rfind('@')) {
            (Some(end), Some(at)) if at > end => {
                let slashes = self.value[end + 1..at]
                    .chars()
                    .take_while(|c| matches!(c, '/' | '\\'))
                    .count();
                format!(
                    "{}<redacted>{}",
                    &self.value[..end + 1 + slashes],
                    &self.value[at..]
                )
            }
            _ => self.value.clone(),
        };
        let quoted = format!("{value:?}");
        match quoted.char_indices().nth(crate::untrusted::MAX_QUOTED) {
            Some((cut, _)) => format!("{}…", &quoted[..cut]),
            None => quoted,
        }
    }
}

/// One layer: setting → value. Layers merge by precedence.
pub type Layer = BTreeMap<Setting, RawValue>;

/// Merges layers, earlier ones winning (flags, environment, then the file). A login is
/// replaced whole: a lower layer's login setting is dropped, with a note at debug level,
/// when a higher layer gave one it cannot go with (another way to log in, or another
/// password or client-secret source), so `--token-file` on the command line overrides a
/// password login in the config file instead of making two.
pub fn merge(layers: impl IntoIterator<Item = Layer>) -> Layer {
    let mut merged = Layer::new();
    for layer in layers {
        let higher: Vec<(Setting, Source)> = merged
            .iter()
            .filter(|(k, _)| login_way(**k).is_some())
            .map(|(k, v)| (*k, v.source.clone()))
            .collect();
        for (k, v) in layer {
            if let Some((_, source)) = higher.iter().find(|(h, _)| logins_clash(*h, k)) {
                tracing::debug!(
                    "the login from {source} overrides {} from {}",
                    k.name(),
                    v.source
                );
                continue;
            }
            merged.entry(k).or_insert(v);
        }
    }
    merged
}

/// Which way of logging in a setting belongs to, if it is a login setting.
fn login_way(key: Setting) -> Option<u8> {
    use Setting::*;
    match key {
        Username | PasswordEnv | PasswordFile | PasswordCommand => Some(0),
        ClientSecretFile | ClientSecretEnv => Some(1),
        TokenEnv => Some(2),
        TokenFile => Some(3),
        _ => None,
    }
}

/// Whether login settings `a` and `b` cannot both be used: different ways of logging in,
/// or two sources of the same secret. A user name goes with any password source.
fn logins_clash(a: Setting, b: Setting) -> bool {
    match (login_way(a), login_way(b)) {
        (Some(x), Some(y)) if x != y => true,
        (Some(_), Some(_)) => a != b && a != Setting::Username && b != Setting::Username,
        _ => false,
    }
}

/// `layer` as two layers, flags then variables, so that a login flag overrides a login
/// variable as a flag overrides its own variable.
pub fn split_flags(layer: Layer) -> [Layer; 2] {
    let (flags, vars) = layer
        .into_iter()
        .partition(|(_, v)| !matches!(v.source, Source::Env(_)));
    [flags, vars]
}

fn clap_id(key: Setting) -> String {
    key.name().replace('-', "_")
}

fn add_args(mut cmd: Command, scopes: &[Scope]) -> Command {
    for &key in Setting::ALL {
        let spec = key.spec();
        if !scopes.contains(&spec.scope) {
            continue;
        }
        let mut arg = Arg::new(clap_id(key))
            .long(spec.name)
            .env(key.env_var())
            .help(key.help())
            .help_heading(key.heading());
        arg = match spec.kind {
            Kind::Value(value_name) => arg.value_name(value_name).action(ArgAction::Set),
            Kind::Switch => arg
                .action(ArgAction::SetTrue)
                .value_parser(FalseyValueParser::new()),
        };
        cmd = cmd.arg(arg);
    }
    cmd.arg(
        Arg::new("config")
            .long("config")
            .env("S3CREDSFS_CONFIG")
            .value_name("FILE")
            .help("Config file (/dev/null for none) [default: $XDG_CONFIG_HOME/s3credsfs/config.toml or ~/.config/s3credsfs/config.toml]")
            .help_heading(super::keys::HEADING_GATEWAY),
    )
}

fn layer_from_matches(m: &ArgMatches) -> (Layer, Option<PathBuf>) {
    let mut layer = Layer::new();
    for &key in Setting::ALL {
        let id = clap_id(key);
        let source = match m.try_contains_id(&id) {
            Ok(true) => match m.value_source(&id) {
                Some(ValueSource::CommandLine) => Source::Flag(key.flag()),
                Some(ValueSource::EnvVariable) => Source::Env(key.env_var()),
                _ => continue,
            },
            _ => continue,
        };
        let value = match key.spec().kind {
            Kind::Value(_) => m.get_one::<String>(&id).cloned(),
            Kind::Switch => m.get_one::<bool>(&id).map(|b| b.to_string()),
        };
        if let Some(value) = value {
            layer.insert(key, RawValue { value, source });
        }
    }
    let config = m.get_one::<String>("config").map(PathBuf::from);
    (layer, config)
}

/// Settings given on the command line or in `S3CREDSFS_*` variables, for one command.
#[derive(Debug, Clone, Default)]
pub struct CliLayer {
    /// Flag and environment values (clap already ranks a flag over its variable).
    pub layer: Layer,
    /// `--config FILE`, if given.
    pub config_file: Option<PathBuf>,
}

macro_rules! settings_args {
    ($name:ident, $doc:literal, $scopes:expr) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Default)]
        pub struct $name(pub CliLayer);

        impl FromArgMatches for $name {
            fn from_arg_matches(m: &ArgMatches) -> std::result::Result<Self, clap::Error> {
                let (layer, config_file) = layer_from_matches(m);
                Ok($name(CliLayer { layer, config_file }))
            }
            fn update_from_arg_matches(
                &mut self,
                m: &ArgMatches,
            ) -> std::result::Result<(), clap::Error> {
                *self = Self::from_arg_matches(m)?;
                Ok(())
            }
        }

        impl Args for $name {
            fn augment_args(cmd: Command) -> Command {
                add_args(cmd, $scopes)
            }
            fn augment_args_for_update(cmd: Command) -> Command {
                add_args(cmd, $scopes)
            }
        }
    };
}

settings_args!(
    FetchSettings,
    "The settings `fetch` takes.",
    &[Scope::Common]
);
settings_args!(
    MountSettings,
    "The settings `mount` takes (all of `fetch`'s and the mount's own).",
    &[Scope::Common, Scope::Mount]
);

/// Reads the TOML config file; unknown keys and wrong types are errors, and so is a file
/// another user could have written.
pub fn read_config_file(path: &Path) -> Result<ConfigFile> {
    // `--config /dev/null` means "no config file", as with `ssh -F /dev/null`.
    if path == Path::new("/dev/null") {
        return Ok(ConfigFile::default());
    }
    // The config file can name a password command or a token URL: only ours, unwritable
    // by others.
    let bytes = crate::files::read_checked(
        path,
        "config file",
        "fix the path given with --config or S3CREDSFS_CONFIG",
        crate::files::Kind::Steering,
    )?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Config(format!("config file {} is not UTF-8 text", path.display())))?;
    parse_config_file(&text, path)
}

/// The top-level settings of a config file without profiles; split out so tests need no
/// file.
pub fn parse_file_layer(text: &str, path: &Path) -> Result<Layer> {
    Ok(parse_config_file(text, path)?.top)
}

/// A config file: settings every profile inherits, and the named profiles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFile {
    /// Where it was read from, for error messages and value sources.
    pub path: PathBuf,
    pub top: Layer,
    /// `default-profile = "NAME"`, the profile the root files and `fetch` use.
    pub default_profile: Option<String>,
    /// `[profiles.NAME]` tables, by name.
    pub profiles: BTreeMap<String, Layer>,
}

/// The file keys that are not settings.
const DEFAULT_PROFILE_KEY: &str = "default-profile";
const PROFILES_KEY: &str = "profiles";

/// Parses config-file text.
pub fn parse_config_file(text: &str, path: &Path) -> Result<ConfigFile> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let at = e
            .span()
            .map(|span| {
                let (line, column) = line_and_column(text, span.start);
                format!(" at line {line}, column {column}")
            })
            .unwrap_or_default();
        Error::Config(format!(
            "config file {} is not valid TOML{at}: {}",
            path.display(),
            // One line: the parser's message may have several. It quotes keys as written,
            // escapes (`"\u001b[2J"`) decoded: cleaned, as all quoted text is.
            crate::untrusted::clean(
                &e.message().trim().replace('\n', "; "),
                crate::untrusted::MAX_QUOTED * 2
            )
        ))
    })?;
    let mut file = ConfigFile {
        path: path.to_path_buf(),
        ..ConfigFile::default()
    };
    let mut settings = toml::Table::new();
    for (name, value) in table {
        match (name.as_str(), value) {
            (DEFAULT_PROFILE_KEY, toml::Value::String(s)) => file.default_profile = Some(s),
            (DEFAULT_PROFILE_KEY, other) => {
                return Err(Error::Config(format!(
                    "bad value {other} for key `{DEFAULT_PROFILE_KEY}` in config file {}: expected a quoted profile name",
                    path.display()
                )))
            }
            (PROFILES_KEY, toml::Value::Table(profiles)) => {
                for (profile, value) in profiles {
                    let section = format!("[profiles.{}]", section_name(&profile));
                    let toml::Value::Table(table) = value else {
                        return Err(Error::Config(format!(
                            "`{section}` in config file {} must be a table of settings, like [profiles.prod]",
                            path.display()
                        )));
                    };
                    if let Some(dotted) = dotted_name(&profile, &table) {
                        return Err(Error::Config(format!(
                            "`[profiles.{}]` in config file {} is a table inside profile {:?}; \
                             a profile name with a `.` needs quotes: `[profiles.{}]`",
                            crate::untrusted::clean(&dotted, 60),
                            path.display(),
                            crate::untrusted::clean(&profile, 60),
                            section_name(&dotted)
                        )));
                    }
                    super::names::check_name(&profile).map_err(|why| {
                        Error::Config(format!(
                            "bad profile name in `{section}` of config file {}: {why}",
                            path.display()
                        ))
                    })?;
                    file.profiles
                        .insert(profile, parse_table(table, path, Some(&section))?);
                }
            }
            (PROFILES_KEY, _) => {
                return Err(Error::Config(format!(
                    "`profiles` in config file {} must hold tables, like [profiles.prod]",
                    path.display()
                )))
            }
            // `[profile.tds]`, the AWS config's habit, or another near miss.
            (_, toml::Value::Table(table))
                if super::keys::closest(&name, [PROFILES_KEY]).is_some() =>
            {
                let first = table.keys().next().map_or("NAME", String::as_str);
                return Err(Error::Config(format!(
                    "`[{}.{}]` in config file {}: did you mean `[profiles.{}]`? \
                     Profile tables are [profiles.NAME]",
                    crate::untrusted::clean(&name, 60),
                    section_name(first),
                    path.display(),
                    section_name(first),
                )));
            }
            (_, value) => {
                settings.insert(name, value);
            }
        }
    }
    file.top = parse_table(settings, path, None)?;
    Ok(file)
}

/// A profile name as a TOML table header shows it: quoted if a bare key cannot hold it.
fn section_name(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let name = crate::untrusted::clean(name, 60);
    if bare {
        name
    } else {
        format!("{name:?}")
    }
}

/// `a.b` when profile `a`'s table holds a table `b` (`[profiles.a.b]`, a dotted name
/// written without quotes); `a.b.c` for deeper ones.
fn dotted_name(profile: &str, table: &toml::Table) -> Option<String> {
    let (sub, value) = table.iter().find(|(_, v)| v.is_table())?;
    let mut dotted = format!("{profile}.{sub}");
    let mut inner = value.as_table();
    while let Some((sub, value)) = inner.and_then(|t| t.iter().find(|(_, v)| v.is_table())) {
        dotted = format!("{dotted}.{sub}");
        inner = value.as_table();
    }
    Some(dotted)
}

/// The 1-based line and column (in characters) of byte `offset` of `text`, as editors
/// count them.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary(offset.min(text.len()))];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// The value name of the settings that take a duration (`timeout`, `min-validity` ...).
const DURATION: &str = "DURATION";

/// One table of settings: the top level, or a profile's (`section`).
fn parse_table(table: toml::Table, path: &Path, section: Option<&str>) -> Result<Layer> {
    let place = match section {
        Some(section) => format!("{section} of config file {}", path.display()),
        None => format!("config file {}", path.display()),
    };
    let mut layer = Layer::new();
    for (name, value) in table {
        let Some(key) = Setting::from_name(&name) else {
            let mut names: Vec<&str> = Setting::ALL.iter().map(|k| k.name()).collect();
            if section.is_none() {
                names.extend([DEFAULT_PROFILE_KEY, PROFILES_KEY]);
            }
            let guess = match super::keys::closest(&name, names.iter().copied()) {
                Some(PROFILES_KEY) => " did you mean `[profiles.NAME]`?".to_string(),
                Some(guess) => format!(" did you mean `{guess}`?"),
                None => String::new(),
            };
            let valid = names
                .iter()
                .map(|n| {
                    if *n == PROFILES_KEY {
                        "[profiles.NAME]"
                    } else {
                        n
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::Config(format!(
                "unknown key `{}` in {place};{guess} valid keys are: {valid}",
                crate::untrusted::clean(&name, 60),
            )));
        };
        let text = match (key.spec().kind, value) {
            (Kind::Value(_), toml::Value::String(s)) => s,
            (Kind::Switch, toml::Value::Boolean(b)) => b.to_string(),
            (Kind::Value(DURATION), toml::Value::Integer(n)) => {
                return Err(Error::Config(format!(
                    "bad value {n} for key `{key}` in {place}: a duration is a quoted number \
                     with its unit; write {key} = \"{n}s\" (or \"2m\", \"1h\")"
                )));
            }
            (Kind::Value(DURATION), other @ toml::Value::Float(_)) => {
                return Err(Error::Config(format!(
                    "bad value {other} for key `{key}` in {place}: a duration is a quoted number \
                     with its unit; write {key} = \"90s\" (or \"2m\", \"1h\")"
                )));
            }
            (Kind::Value(_), other @ (toml::Value::Integer(_) | toml::Value::Float(_))) => {
                return Err(Error::Config(format!(
                    "bad value {other} for key `{key}` in {place}: expected a quoted string; \
                     write {key} = \"{other}\""
                )));
            }
            (kind, other) => {
                let want = match kind {
                    Kind::Value(_) => "a quoted string",
                    Kind::Switch => "true or false",
                };
                return Err(Error::Config(format!(
                    "bad value {other} for key `{key}` in {place}: expected {want}"
                )));
            }
        };
        let source = Source::File(path.to_path_buf());
        layer.insert(
            key,
            RawValue {
                value: text,
                source,
            },
        );
    }
    Ok(layer)
}

#[cfg(test)]
mod tests;
