//! One validated `Settings`, built from flags > `S3CREDSFS_*` variables > the user's config
//! file > the site-wide config file > defaults. Everything downstream takes `Settings`,
//! never raw strings.
//!
//! The children sit in one order, each importing only those below it: `profiles` >
//! `resolve` > `settings` > `layers` > `keys` > `defaults`, `names`; this file only
//! gathers them.

mod defaults;
mod keys;
mod layers;
mod names;
mod profiles;
mod resolve;
mod settings;

pub use defaults::{DEFAULT_GATEWAY, PLATFORM_CA, SITE_CONFIG};
pub use keys::{env_var, unknown_variable, Fallback, Kind, Scope, Setting, Spec};
pub use layers::{
    merge, parse_config_file, parse_file_layer, read_config_file, CliLayer, ConfigFile,
    FetchSettings, Layer, MountSettings, RawValue, Source, SETTINGS_NOTE,
};
pub use names::check_name;
pub use profiles::{
    load_config_files, load_profiles, read_site_file, top_level_only, user_config_path, Profiles,
    MAX_PROFILES,
};
pub use resolve::{cray_token_prefix, is_loopback, resolve};
pub use settings::{AuthConfig, Context, PasswordSource, SecretSource, Settings};

use crate::error::Result;

/// The merged layer of the profile a command uses: `--profile`, else the default one.
pub fn load_layers(cli: &CliLayer, ctx: &Context) -> Result<Layer> {
    Ok(load_profiles(cli, ctx)?.layer(None)?.clone())
}

#[cfg(test)]
mod tests;
