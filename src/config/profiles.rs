//! Named profiles: several systems (gateways, logins) in one configuration.
//!
//! A config file may hold `[profiles.NAME]` tables; each profile's settings are, by
//! precedence, flags and `S3CREDSFS_*` variables, its own table, then the file's top
//! level, then the defaults. A file without tables is one profile, named by the `profile`
//! setting (`default`), so configurations from before profiles keep working.

use super::keys::Setting;
use super::layers::{
    merge, read_config_file, split_flags, CliLayer, ConfigFile, Layer, RawValue, Source,
};
use super::resolve::resolve;
use super::settings::{Context, Settings};
use crate::error::{Error, Result};

/// The most profiles one configuration may hold; each has a cache and a directory.
pub const MAX_PROFILES: usize = 32;

/// Every profile's merged layer, and which one is the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profiles {
    default: String,
    /// By name, in name order.
    layers: Vec<(String, Layer)>,
    /// The config files read, the user's then the site's: the start line names them.
    config_files: Vec<std::path::PathBuf>,
}

/// Reads the site-wide config file (if it exists) and the user's (given, or the default
/// one if it exists), and builds every profile's layer.
pub fn load_profiles(cli: &CliLayer, ctx: &Context) -> Result<Profiles> {
    let profiles = Profiles::from_files(cli.layer.clone(), load_config_files(cli, ctx)?)?;
    for warning in profiles.variable_warnings(ctx) {
        // Before any logger exists (a mount logs only once it runs), so on stderr.
        eprintln!("s3credsfs: warning: {warning}");
    }
    Ok(profiles)
}

/// The config files a command reads, the most important first: the user's (`--config`,
/// else the default one if it exists), then the site-wide one if it exists.
pub fn load_config_files(cli: &CliLayer, ctx: &Context) -> Result<Vec<ConfigFile>> {
    let user = user_config_path(cli, ctx)
        .map(|path| read_config_file(&path))
        .transpose()?;
    let site = match &ctx.site_config {
        Some(path) if path.exists() => Some(read_site_file(path)?),
        _ => None,
    };
    Ok(user.into_iter().chain(site).collect())
}

/// The user's config file a command reads: `--config` (read even if missing, so that a
/// mistyped name is an error), else the default one if it exists.
pub fn user_config_path(cli: &CliLayer, ctx: &Context) -> Option<std::path::PathBuf> {
    match &cli.config_file {
        Some(path) => Some(path.clone()),
        None => ctx.default_config_file().filter(|path| path.exists()),
    }
}

/// Reads the site-wide config file, which only root may have written: it steers every
/// user's mount on the node.
pub fn read_site_file(path: &std::path::Path) -> Result<ConfigFile> {
    let bytes = crate::files::read_checked(
        path,
        "site config file",
        "an administrator must fix it (it applies to every user of this node)",
        crate::files::Kind::Site,
    )?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::Config(format!(
            "site config file {} is not UTF-8 text; an administrator must fix it",
            path.display()
        ))
    })?;
    super::layers::parse_config_file(&text, path)
}

impl Profiles {
    /// Combines the command line's layer with a parsed config file.
    pub fn from_parts(cli: Layer, file: ConfigFile) -> Result<Profiles> {
        Self::from_files(cli, vec![file])
    }

    /// Combines the command line's layer with the config files, the most important first
    /// (the user's, then the site's). Flags beat variables, which beat everything a file
    /// says; everything a file says beats everything a later file says, its top level
    /// included; within a file a profile's table beats the top level. Each step is a
    /// layer of its own, so a login given higher replaces a different one given lower
    /// as a whole. The profiles are those of every file together.
    pub fn from_files(cli: Layer, files: Vec<ConfigFile>) -> Result<Profiles> {
        let config_files: Vec<std::path::PathBuf> = files
            .iter()
            .map(|f| f.path.clone())
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        let paths: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
        let (shown, defines) = match paths.len() {
            0 | 1 => (format!("config file {}", paths.concat()), "defines"),
            _ => (format!("config files {}", paths.join(" and ")), "define"),
        };
        let mut all: std::collections::BTreeMap<&str, &ConfigFile> = Default::default();
        for file in &files {
            for name in file.profiles.keys() {
                all.entry(name.as_str()).or_insert(file);
            }
        }
        let chosen = files
            .iter()
            .find_map(|f| f.default_profile.as_ref().map(|name| (name, f)));
        if all.is_empty() {
            if let Some((name, file)) = chosen {
                return Err(Error::Config(format!(
                    "config file {} sets default-profile = {:?} but defines no profiles; \
                     add a [profiles.{}] table or remove default-profile",
                    file.path.display(),
                    crate::untrusted::clean(name, 60),
                    crate::untrusted::clean(name, 60),
                )));
            }
            let layers = split_flags(cli)
                .into_iter()
                .chain(files.into_iter().map(|f| f.top));
            let layer = merge(layers);
            let name = layer
                .get(&Setting::Profile)
                .map_or_else(|| "default".to_string(), |raw| raw.value.trim().to_string());
            return Ok(Profiles {
                default: name.clone(),
                layers: vec![(name, layer)],
                config_files,
            });
        }
        for file in &files {
            check_file(file)?;
        }
        if all.len() > MAX_PROFILES {
            return Err(Error::Config(format!(
                "{shown} {defines} {} profiles; at most {MAX_PROFILES} are allowed",
                all.len()
            )));
        }
        let known = || all.keys().copied().collect::<Vec<_>>().join(", ");
        let unknown = |name: &str, place: String| {
            Error::Config(format!(
                "unknown profile {:?} ({place}); {shown} {defines}: {}",
                crate::untrusted::clean(name, 60),
                known()
            ))
        };
        let default = match (cli.get(&Setting::Profile), chosen) {
            (Some(raw), _) => {
                let name = raw.value.trim();
                if !all.contains_key(name) {
                    return Err(unknown(name, format!("from {}", raw.source)));
                }
                name.to_string()
            }
            (None, Some((name, _))) => {
                if !all.contains_key(name.as_str()) {
                    return Err(unknown(name, "default-profile".into()));
                }
                name.clone()
            }
            (None, None) if all.contains_key("default") => "default".into(),
            (None, None) if all.len() == 1 => all.keys().next().unwrap().to_string(),
            (None, None) => {
                return Err(Error::Config(format!(
                    "{shown} {defines} several profiles ({}) and no default-profile; \
                     add default-profile = \"NAME\" or pass --profile NAME",
                    known()
                )))
            }
        };
        // The root's `credentials` and `config` show the default profile as `[default]`
        // too: a profile of that name that is not the default would make two.
        if default != "default" && all.contains_key("default") {
            return Err(Error::Config(format!(
                "config file {} has a [profiles.default] table but its default profile is \
                 {default:?}; the mount's files name the default profile `default`, so rename \
                 that table or make it the default",
                all["default"].path.display()
            )));
        }
        let mut cli_rest = cli;
        cli_rest.remove(&Setting::Profile);
        let layers = all
            .iter()
            .map(|(name, first)| {
                let own_name = Layer::from([(
                    Setting::Profile,
                    RawValue {
                        value: name.to_string(),
                        source: Source::File(first.path.clone()),
                    },
                )]);
                let mut layers: Vec<Layer> = split_flags(cli_rest.clone()).into();
                layers.push(own_name);
                for file in &files {
                    layers.extend(file.profiles.get(*name).cloned());
                    layers.push(file.top.clone());
                }
                (name.to_string(), merge(layers))
            })
            .collect();
        Ok(Profiles {
            default,
            layers,
            config_files,
        })
    }

    /// The config files these profiles were read from, the user's then the site's
    /// (`--config /dev/null` and a missing default file are none).
    pub fn config_files(&self) -> &[std::path::PathBuf] {
        &self.config_files
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
            .filter_map(|var| super::keys::unknown_variable(var, &named))
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

/// Why `key` may not stand in a `[profiles.NAME]` table, if it may not: the settings of
/// the mount as a whole, and the profile's own name.
pub fn top_level_only(key: Setting) -> Option<&'static str> {
    match key {
        Setting::Profile => Some("a profile's name is its table's name; remove the key"),
        Setting::LogFile | Setting::LogFormat => {
            Some("one mount has one log; move it to the top level")
        }
        Setting::MetricsFile => Some(
            "one mount has one metrics file, which shows every profile; move it to the top level",
        ),
        _ => None,
    }
}

/// The rules one file of a configuration with profiles must keep.
fn check_file(file: &ConfigFile) -> Result<()> {
    let shown = file.path.display();
    if file.top.contains_key(&Setting::Profile) {
        return Err(Error::Config(format!(
            "key `profile` in config file {shown} conflicts with [profiles.NAME] tables; \
             use default-profile = \"NAME\" to choose the default"
        )));
    }
    for (name, table) in &file.profiles {
        for key in table.keys() {
            if let Some(why) = top_level_only(*key) {
                return Err(Error::Config(format!(
                    "key `{key}` in [profiles.{name}] of config file {shown} is not allowed: {why}"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod site_tests;
#[cfg(test)]
mod tests;
