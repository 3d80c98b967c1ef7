//! The way in for a gateway that a mount's daemon serves itself instead of the configured
//! one: `mount --dev`'s built-in emulator, which the command layer plugs in. `mount` only
//! knows these two steps, never the emulator, so a production build has none of it.

use crate::app_error::Result;
use crate::config::{Context, Layer, Settings};

/// A gateway to serve in the daemon, replacing the configured gateway and login.
pub trait LocalGateway {
    /// The mount's one profile, against this gateway, from the default profile's settings
    /// layer; called before the fork, so that whatever must be reserved (its port) is.
    fn settings(
        self: Box<Self>,
        layer: &Layer,
        ctx: &Context,
    ) -> Result<(Settings, Box<dyn PreparedGateway>)>;
}

/// A local gateway whose settings are known, ready to start.
pub trait PreparedGateway {
    /// Starts serving on the daemon's runtime, before the first fetch; serving stops when
    /// the value returned is dropped.
    fn start(self: Box<Self>, runtime: &tokio::runtime::Runtime) -> Result<Box<dyn std::any::Any>>;
}
