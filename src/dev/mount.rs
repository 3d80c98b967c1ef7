//! `mount --dev`: the built-in gateway started in the daemon, so that one command shows the
//! whole tool working without a Cray system. Plugged into `mount` as its
//! [`LocalGateway`](crate::mount::local_gateway::LocalGateway) by the command layer.

use super::gateway::{check_lifetime, BackendSts, Gateway, GatewayConfig};
use super::options::{check_keycloak, BackendOptions};
use crate::app_error::{AppError, Result};
use crate::config::{Context, Layer, Settings};
use crate::error::Error;
use crate::mount::local_gateway::{LocalGateway, PreparedGateway};
use std::time::Duration;

/// `mount`'s development options, as plain values (their flags are parsed in `cli`).
#[derive(Clone, Debug, Default)]
pub struct MountOptions {
    /// `--dev`: start the built-in gateway and log in as its default user.
    pub dev: bool,
    /// `--lifetime`: of the S3 credentials the built-in gateway hands out.
    pub lifetime: Option<Duration>,
    /// `--token-lifetime`: of its Keycloak access tokens.
    pub token_lifetime: Option<Duration>,
    /// The AssumeRole backend it mints credentials with, if any.
    pub backend: BackendOptions,
    /// `--keycloak`: the real Keycloak it fronts; the login is then the configured one.
    pub keycloak: Option<String>,
}

/// The built-in gateway `mount` is to serve: `Some` with `--dev`, `None` without, and
/// backend or Keycloak options without `--dev` refused (they would silently do nothing).
pub fn local_gateway(options: &MountOptions) -> Result<Option<Box<dyn LocalGateway>>> {
    let backend = options.backend.to_backend().map_err(Error::Config)?;
    let keycloak = check_keycloak(options.keycloak.as_deref()).map_err(Error::Config)?;
    if keycloak.is_some() && !options.dev {
        return Err(
            Error::Config("--keycloak configures the built-in gateway; add --dev".into()).into(),
        );
    }
    if keycloak.is_some() && options.token_lifetime.is_some() {
        return Err(Error::Config(
            "--token-lifetime sets the built-in Keycloak's tokens; with --keycloak the real Keycloak's realm decides, so drop it"
                .into(),
        )
        .into());
    }
    if !options.dev {
        if backend.is_some() {
            return Err(Error::Config(
                "--backend-sts and the other backend flags configure the built-in gateway; add --dev"
                    .into(),
            )
            .into());
        }
        return Ok(None);
    }
    if let (Some(_), Some(lifetime)) = (&backend, options.lifetime) {
        check_lifetime(lifetime).map_err(Error::Config)?;
    }
    Ok(Some(Box::new(DevGateway {
        backend,
        lifetime: options.lifetime,
        token_lifetime: options.token_lifetime,
        keycloak,
    })))
}

/// The built-in gateway `mount --dev` serves, as asked for.
struct DevGateway {
    backend: Option<BackendSts>,
    lifetime: Option<Duration>,
    token_lifetime: Option<Duration>,
    keycloak: Option<String>,
}

/// The gateway a `--dev` daemon starts: its port is bound before the fork, so the
/// settings can name it.
struct DevPlan {
    gateway: DevGateway,
    listener: std::net::TcpListener,
}

impl LocalGateway for DevGateway {
    fn settings(
        self: Box<Self>,
        layer: &Layer,
        ctx: &Context,
    ) -> Result<(Settings, Box<dyn PreparedGateway>)> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(AppError::DevListen)?;
        let url = format!(
            "http://{}",
            listener.local_addr().map_err(AppError::DevListen)?
        );
        let settings = match self.keycloak {
            Some(_) => super::settings::resolve_fronting(layer, ctx, &url)?,
            None => super::settings::resolve(layer, ctx, &url)?,
        };
        Ok((
            settings,
            Box::new(DevPlan {
                gateway: *self,
                listener,
            }),
        ))
    }
}

impl PreparedGateway for DevPlan {
    fn start(self: Box<Self>, runtime: &tokio::runtime::Runtime) -> Result<Box<dyn std::any::Any>> {
        let defaults = GatewayConfig::default();
        let config = GatewayConfig {
            backend: self.gateway.backend,
            lifetime: self.gateway.lifetime.unwrap_or(defaults.lifetime),
            token_lifetime: self
                .gateway
                .token_lifetime
                .unwrap_or(defaults.token_lifetime),
            keycloak: self.gateway.keycloak,
            ..defaults
        };
        let gateway = runtime
            .block_on(Gateway::start_on(self.listener, config))
            .map_err(AppError::DevGateway)?;
        tracing::info!(url = %gateway.base_url(), "built-in gateway (development only) started");
        Ok(Box::new(gateway))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_backend(lifetime: Option<Duration>) -> MountOptions {
        MountOptions {
            dev: true,
            lifetime,
            token_lifetime: None,
            backend: BackendOptions {
                sts: Some("http://127.0.0.1:1".into()),
                access_key: Some("AK".into()),
                secret_key: Some(crate::secret::Secret::new("SK")),
                role_arn: Some("arn:aws:iam::1:role/r".into()),
                ..BackendOptions::default()
            },
            keycloak: None,
        }
    }

    #[test]
    fn a_lifetime_above_an_hour_with_a_backend_is_refused_before_mounting() {
        let err = local_gateway(&with_backend(Some(Duration::from_secs(7200))))
            .err()
            .expect("refused");
        assert!(
            err.to_string()
                .contains("--lifetime 2h is longer than the one hour a backend STS grants"),
            "{err}"
        );
        assert!(local_gateway(&with_backend(Some(Duration::from_secs(3600)))).is_ok());
        assert!(local_gateway(&with_backend(None)).is_ok());
        let no_backend = MountOptions {
            backend: BackendOptions::default(),
            ..with_backend(Some(Duration::from_secs(86_400)))
        };
        assert!(local_gateway(&no_backend).is_ok());
    }

    #[test]
    fn keycloak_needs_dev_and_its_own_token_lifetimes() {
        let keycloak = |dev, token_lifetime| MountOptions {
            dev,
            lifetime: None,
            token_lifetime,
            backend: BackendOptions::default(),
            keycloak: Some("http://127.0.0.1:8080/keycloak".into()),
        };
        assert!(local_gateway(&keycloak(true, None)).unwrap().is_some());
        let err = local_gateway(&keycloak(false, None)).err().unwrap();
        assert!(
            err.to_string()
                .contains("--keycloak configures the built-in gateway; add --dev"),
            "{err}"
        );
        let err = local_gateway(&keycloak(true, Some(Duration::from_secs(30))))
            .err()
            .unwrap();
        assert!(err.to_string().contains("drop it"), "{err}");
    }
}
