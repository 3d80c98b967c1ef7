//! `mount --dev`: the built-in gateway emulator started in the daemon, so that one command
//! shows the whole tool working without a Cray system. Only builds with the
//! `dev-gateway` feature (the default) have it; a production build has no `--dev` flag,
//! no backend flags and none of the emulator's code.

use crate::app_error::Result;
use crate::config::{Context, Layer, Settings};

pub use imp::{DevArgs, DevGateway, DevPlan};

/// Settings for a mount: against the built-in gateway with `--dev`, else as configured,
/// and the gateway to start in the daemon, if any.
pub fn settings(
    args: &DevArgs,
    layer: &Layer,
    ctx: &Context,
) -> Result<(Settings, Option<DevPlan>)> {
    imp::settings(args, layer, ctx)
}

#[cfg(feature = "dev-gateway")]
mod imp {
    use super::*;
    use crate::app_error::AppError;
    use crate::cli::BackendArgs;
    use crate::config::resolve_dev;
    use crate::error::Error;
    use crate::gateway::{BackendSts, Gateway, GatewayConfig};

    /// The flags that start the built-in gateway.
    #[derive(clap::Args, Debug)]
    #[command(next_help_heading = "Development: the built-in gateway")]
    pub struct DevArgs {
        /// Start the built-in gateway emulator on loopback and log in as its default user
        #[arg(long)]
        pub dev: bool,
        /// With --dev: lifetime of the S3 credentials the built-in gateway hands out, to
        /// watch renewal without waiting an hour [default: 1h]
        #[arg(long, value_name = "DURATION", requires = "dev", value_parser = humantime::parse_duration)]
        pub lifetime: Option<std::time::Duration>,
        /// With --dev: lifetime of the built-in gateway's Keycloak access tokens [default: 5m]
        #[arg(long, value_name = "DURATION", requires = "dev", value_parser = humantime::parse_duration)]
        pub token_lifetime: Option<std::time::Duration>,
        /// With --dev: mint credentials by AssumeRole on a real S3 STS
        #[command(flatten)]
        pub backend: Box<BackendArgs>,
    }

    /// The gateway a `--dev` daemon starts: its port is bound before the fork, so the
    /// settings can name it.
    pub struct DevPlan {
        listener: std::net::TcpListener,
        backend: Option<BackendSts>,
        lifetime: Option<std::time::Duration>,
        token_lifetime: Option<std::time::Duration>,
    }

    /// A running built-in gateway; serving stops when it is dropped.
    pub type DevGateway = Gateway;

    pub fn settings(
        args: &DevArgs,
        layer: &Layer,
        ctx: &Context,
    ) -> Result<(Settings, Option<DevPlan>)> {
        let backend = args.backend.to_backend().map_err(Error::Config)?;
        if !args.dev {
            if backend.is_some() {
                return Err(Error::Config(
                    "--backend-sts and the other backend flags configure the built-in gateway; add --dev"
                        .into(),
                )
                .into());
            }
            return Ok((crate::config::resolve(layer, ctx)?, None));
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(AppError::DevListen)?;
        let url = format!(
            "http://{}",
            listener.local_addr().map_err(AppError::DevListen)?
        );
        let settings = resolve_dev(layer, ctx, &url)?;
        Ok((
            settings,
            Some(DevPlan {
                listener,
                backend,
                lifetime: args.lifetime,
                token_lifetime: args.token_lifetime,
            }),
        ))
    }

    impl DevPlan {
        /// Starts the gateway on the daemon's runtime.
        pub fn start(self, runtime: &tokio::runtime::Runtime) -> Result<DevGateway> {
            let defaults = GatewayConfig::default();
            let config = GatewayConfig {
                backend: self.backend,
                lifetime: self.lifetime.unwrap_or(defaults.lifetime),
                token_lifetime: self.token_lifetime.unwrap_or(defaults.token_lifetime),
                ..defaults
            };
            let gateway = runtime
                .block_on(Gateway::start_on(self.listener, config))
                .map_err(AppError::DevGateway)?;
            tracing::info!(url = %gateway.base_url(), "built-in gateway (development only) started");
            Ok(gateway)
        }
    }
}

#[cfg(not(feature = "dev-gateway"))]
mod imp {
    use super::*;

    /// No flags: this build has no built-in gateway.
    #[derive(clap::Args, Debug)]
    pub struct DevArgs {}

    /// Cannot exist in this build.
    pub enum DevPlan {}

    /// Cannot exist in this build.
    pub enum DevGateway {}

    pub fn settings(
        _args: &DevArgs,
        layer: &Layer,
        ctx: &Context,
    ) -> Result<(Settings, Option<DevPlan>)> {
        Ok((crate::config::resolve(layer, ctx)?, None))
    }

    impl DevPlan {
        /// Never called: no value of this type exists.
        pub fn start(self, _runtime: &tokio::runtime::Runtime) -> Result<DevGateway> {
            match self {}
        }
    }
}
