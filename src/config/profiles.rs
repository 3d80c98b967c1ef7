//! Named profiles: several systems (gateways, logins) in one configuration.
//!
//! A config file may hold `[profiles.NAME]` tables; each profile's settings are, by
//! precedence, flags and `S3CREDSFS_*` variables, its own table, then the file's top
//! level, then the defaults. A file without tables is one profile, named by the `profile`
//! setting (`default`), so configurations from before profiles keep working.

use super::layers::{
    merge, read_config_file, split_flags, CliLayer, ConfigFile, Layer, RawValue, Source,
};
use super::{resolve, Context, Setting, Settings};
use crate::error::{Error, Result};

/// The most profiles one configuration may hold; each has a cache and a directory.
pub const MAX_PROFILES: usize = 32;

/// A profile name is a directory name in the mount and a section name in INI files:
/// letters, digits, `_`, `.` and `-`, starting with a letter or digit (so never `.` or
/// `..`), at most 64 characters.
pub fn check_name(name: &str) -> std::result::Result<(), &'static str> {
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !first_ok || !rest_ok || name.len() > 64 {
        return Err(
            "use at most 64 letters, digits, `_`, `.` and `-`, starting with a letter or digit",
        );
    }
    Ok(())
}

/// Every profile's merged layer, and which one is the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profiles {
    default: String,
    /// By name, in name order.
    layers: Vec<(String, Layer)>,
    /// The config file read, if any: the start line names it.
    config_file: Option<std::path::PathBuf>,
}

/// Reads the config file (given, or the default one if it exists) and builds every
/// profile's layer.
pub fn load_profiles(cli: &CliLayer, ctx: &Context) -> Result<Profiles> {
    let file = match &cli.config_file {
        Some(path) => read_config_file(path)?,
        None => match ctx.default_config_file() {
            Some(path) if path.exists() => read_config_file(&path)?,
            _ => ConfigFile::default(),
        },
    };
    let profiles = Profiles::from_parts(cli.layer.clone(), file)?;
    for warning in profiles.variable_warnings(ctx) {
        // Before any logger exists (a mount logs only once it runs), so on stderr.
        eprintln!("s3credsfs: warning: {warning}");
    }
    Ok(profiles)
}

/// A parsed file's path, unless it is the empty stand-in for "no file".
fn file_path(file: &ConfigFile) -> Option<std::path::PathBuf> {
    Some(file.path.clone()).filter(|p| !p.as_os_str().is_empty())
}

impl Profiles {
    /// Combines the command line's layer with a parsed config file.
    pub fn from_parts(cli: Layer, file: ConfigFile) -> Result<Profiles> {
        let config_file = file_path(&file);
        let shown = file.path.display().to_string();
        if file.profiles.is_empty() {
            if let Some(name) = &file.default_profile {
                return Err(Error::Config(format!(
                    "config file {shown} sets default-profile = {:?} but defines no profiles; \
                     add a [profiles.{}] table or remove default-profile",
                    crate::untrusted::clean(name, 60),
                    crate::untrusted::clean(name, 60),
                )));
            }
            let [flags, vars] = split_flags(cli);
            let layer = merge([flags, vars, file.top]);
            let name = layer
                .get(&Setting::Profile)
                .map_or_else(|| "default".to_string(), |raw| raw.value.trim().to_string());
            return Ok(Profiles {
                default: name.clone(),
                layers: vec![(name, layer)],
                config_file,
            });
        }
        if file.top.contains_key(&Setting::Profile) {
            return Err(Error::Config(format!(
                "key `profile` in config file {shown} conflicts with its [profiles.NAME] tables; \
                 use default-profile = \"NAME\" to choose the default"
            )));
        }
        for (name, table) in &file.profiles {
            if table.contains_key(&Setting::Profile) {
                return Err(Error::Config(format!(
                    "key `profile` in [profiles.{name}] of config file {shown} is not allowed: \
                     a profile's name is its table's name; remove the key"
                )));
            }
            for key in [Setting::LogFile, Setting::LogFormat] {
                if table.contains_key(&key) {
                    return Err(Error::Config(format!(
                        "key `{key}` in [profiles.{name}] of config file {shown} is not allowed: \
                         one mount has one log; move it to the top level"
                    )));
                }
            }
        }
        if file.profiles.len() > MAX_PROFILES {
            return Err(Error::Config(format!(
                "config file {shown} defines {} profiles; at most {MAX_PROFILES} are allowed",
                file.profiles.len()
            )));
        }
        let known = || {
            file.profiles
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let unknown = |name: &str, place: String| {
            Error::Config(format!(
                "unknown profile {:?} ({place}); config file {shown} defines: {}",
                crate::untrusted::clean(name, 60),
                known()
            ))
        };
        let default = match (cli.get(&Setting::Profile), &file.default_profile) {
            (Some(raw), _) => {
                let name = raw.value.trim();
                if !file.profiles.contains_key(name) {
                    return Err(unknown(name, format!("from {}", raw.source)));
                }
                name.to_string()
            }
            (None, Some(name)) => {
                if !file.profiles.contains_key(name) {
                    return Err(unknown(name, "default-profile".into()));
                }
                name.clone()
            }
            (None, None) if file.profiles.contains_key("default") => "default".into(),
            (None, None) if file.profiles.len() == 1 => {
                file.profiles.keys().next().unwrap().clone()
            }
            (None, None) => {
                return Err(Error::Config(format!(
                    "config file {shown} defines several profiles ({}) and no default-profile; \
                     add default-profile = \"NAME\" or pass --profile NAME",
                    known()
                )))
            }
        };
        // The root's `credentials` and `config` show the default profile as `[default]`
        // too: a profile of that name that is not the default would make two.
        if default != "default" && file.profiles.contains_key("default") {
            return Err(Error::Config(format!(
                "config file {shown} has a [profiles.default] table but its default profile is \
                 {default:?}; the mount's files name the default profile `default`, so rename \
                 that table or make it the default"
            )));
        }
        let mut cli_rest = cli;
        cli_rest.remove(&Setting::Profile);
        let layers = file
            .profiles
            .iter()
            .map(|(name, table)| {
                let own_name = Layer::from([(
                    Setting::Profile,
                    RawValue {
                        value: name.clone(),
                        source: Source::File(file.path.clone()),
                    },
                )]);
                let [flags, vars] = split_flags(cli_rest.clone());
                let layer = merge([flags, vars, own_name, table.clone(), file.top.clone()]);
                (name.clone(), layer)
            })
            .collect();
        Ok(Profiles {
            default,
            layers,
            config_file,
        })
    }

    /// The config file these profiles were read from, if any (`--config /dev/null` and
    /// a missing default file are none).
    pub fn config_file(&self) -> Option<&std::path::Path> {
        self.config_file.as_deref()
    }

    /// A warning for each `S3CREDSFS_*` variable of `ctx` that names no setting; one that
    /// a `*-env` setting of some profile names (a password variable) is no mistake.
    pub fn variable_warnings(&self, ctx: &Context) -> Vec<String> {
        let env_settings = [
            Setting::PasswordEnv,
            Setting::ClientSecretEnv,
            Setting::TokenEnv,
        ];
        let named: Vec<&str> = self
            .layers
            .iter()
            .flat_map(|(_, layer)| env_settings.iter().filter_map(|k| layer.get(k)))
            .map(|raw| raw.value.trim())
            .collect();
        ctx.our_variables
            .iter()
            .filter_map(|var| super::unknown_variable(var, &named))
            .collect()
    }

    /// The default profile's name: root files, `fetch` and `exec` without `--profile`.
    pub fn default_name(&self) -> &str {
        &self.default
    }

    /// Every profile's name, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.layers.iter().map(|(name, _)| name.as_str())
    }

    /// The merged layer of profile `name`, or of the default one.
    pub fn layer(&self, name: Option<&str>) -> Result<&Layer> {
        let name = name.unwrap_or(&self.default);
        self.layers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, layer)| layer)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown profile {:?}; the known profiles are: {}",
                    crate::untrusted::clean(name, 60),
                    self.names().collect::<Vec<_>>().join(", ")
                ))
            })
    }

    /// The settings of profile `name` (or the default one); an error names the profile
    /// when there are several.
    pub fn resolve(&self, name: Option<&str>, ctx: &Context) -> Result<Settings> {
        let layer = self.layer(name)?;
        resolve(layer, ctx).map_err(|e| match e {
            Error::Config(why) if self.layers.len() > 1 => Error::Config(format!(
                "in profile {}: {why}",
                name.unwrap_or(&self.default)
            )),
            other => other,
        })
    }

    /// Every profile's settings, the default one first.
    pub fn resolve_all(&self, ctx: &Context) -> Result<Vec<Settings>> {
        let mut names: Vec<&str> = vec![&self.default];
        names.extend(self.names().filter(|n| *n != self.default));
        names.iter().map(|n| self.resolve(Some(n), ctx)).collect()
    }
}

#[cfg(test)]
mod tests;
