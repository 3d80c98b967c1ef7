//! `mount --dev`'s settings layer: the built-in gateway at its URL and its default user,
//! over whatever else is configured. Written here, so that `config` knows nothing of the
//! emulator: it only resolves the layer it is given.

use super::gateway::{DEFAULT_PASSWORD, DEFAULT_USER};
use crate::config::{
    AuthConfig, Context, Layer, PasswordSource, RawValue, Setting, Settings, Source,
};
use crate::error::Result;

/// The settings the built-in gateway replaces: its URL and its login stand for them, so
/// login and URL settings from flags, variables or the config file do not apply.
const REPLACED: [Setting; 11] = [
    Setting::ApiGateway,
    Setting::TokenUrl,
    Setting::StsUrl,
    Setting::Username,
    Setting::PasswordEnv,
    Setting::PasswordFile,
    Setting::PasswordCommand,
    Setting::ClientSecretFile,
    Setting::ClientSecretEnv,
    Setting::TokenEnv,
    Setting::TokenFile,
];

/// `configured` with the gateway and login replaced by the built-in gateway at
/// `gateway_url` and its default user. The password is named by a placeholder variable
/// that is never read: [`resolve`] gives it instead.
pub fn layer(configured: &Layer, gateway_url: &str) -> Layer {
    let mut layer = configured.clone();
    layer.retain(|key, _| !REPLACED.contains(key));
    let source = Source::Flag("--dev".into());
    let dev = |value: &str| RawValue {
        value: value.into(),
        source: source.clone(),
    };
    layer.insert(Setting::ApiGateway, dev(gateway_url));
    layer.insert(Setting::Username, dev(DEFAULT_USER));
    layer.insert(Setting::PasswordEnv, dev("UNUSED"));
    layer
}

/// The URL settings the built-in gateway replaces when it fronts a real Keycloak
/// (`--keycloak`): the login stays the configured one, since the accounts are Keycloak's.
const REPLACED_FRONTING: [Setting; 3] = [Setting::ApiGateway, Setting::TokenUrl, Setting::StsUrl];

/// Settings for `mount --dev --keycloak`: the configured settings with the gateway at
/// `gateway_url`, and the configured login (user and password, client and secret, or
/// token file) sent through it to the real Keycloak.
pub fn resolve_fronting(configured: &Layer, ctx: &Context, gateway_url: &str) -> Result<Settings> {
    let mut layer = configured.clone();
    layer.retain(|key, _| !REPLACED_FRONTING.contains(key));
    let source = Source::Flag("--dev".into());
    layer.insert(
        Setting::ApiGateway,
        RawValue {
            value: gateway_url.into(),
            source,
        },
    );
    crate::config::resolve(&layer, ctx)
}

/// Settings for `mount --dev`: [`layer`] resolved, logging in as the default user with
/// its public password.
pub fn resolve(configured: &Layer, ctx: &Context, gateway_url: &str) -> Result<Settings> {
    let mut settings = crate::config::resolve(&layer(configured, gateway_url), ctx)?;
    settings.auth = AuthConfig::Password {
        username: DEFAULT_USER.into(),
        password: PasswordSource::Given(DEFAULT_PASSWORD.into()),
    };
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn flags(pairs: &[(Setting, &str)]) -> Layer {
        pairs
            .iter()
            .map(|(key, value)| {
                let raw = RawValue {
                    value: (*value).into(),
                    source: Source::Flag(key.flag()),
                };
                (*key, raw)
            })
            .collect()
    }

    #[test]
    fn dev_mode_replaces_the_login_and_gateway_but_keeps_other_settings() {
        let configured = flags(&[
            (Setting::Username, "alice"),
            (Setting::PasswordEnv, "PW"),
            (Setting::Timeout, "5s"),
            (Setting::Region, "dev-region"),
            (Setting::ApiGateway, "https://elsewhere.example"),
            (Setting::TokenFile, "/t"),
        ]);
        let s = resolve(&configured, &Context::default(), "http://127.0.0.1:9").unwrap();
        assert_eq!(s.timeout, Duration::from_secs(5));
        assert_eq!(s.region, "dev-region");
        assert_eq!(s.api_gateway.as_str(), "http://127.0.0.1:9/");
        assert_eq!(
            s.auth,
            AuthConfig::Password {
                username: DEFAULT_USER.into(),
                password: PasswordSource::Given(DEFAULT_PASSWORD.into()),
            }
        );
    }

    #[test]
    fn fronting_keycloak_replaces_only_the_urls() {
        let configured = flags(&[
            (Setting::Username, "alice"),
            (Setting::PasswordEnv, "PW"),
            (Setting::ApiGateway, "https://elsewhere.example"),
        ]);
        let s = resolve_fronting(&configured, &Context::default(), "http://127.0.0.1:9").unwrap();
        assert_eq!(s.api_gateway.as_str(), "http://127.0.0.1:9/");
        assert!(
            matches!(&s.auth, AuthConfig::Password { username, password: PasswordSource::Env(var) }
                if username == "alice" && var == "PW"),
            "{:?}",
            s.auth
        );
    }
}
