//! The development wing: the built-in emulator of the CSM gateway and everything that
//! plugs it in (`s3credsfs dev-gateway`, `mount --dev` and its settings layer). Only builds
//! with the `dev-gateway` feature have it (`cargo demo`, and every test build); `cargo
//! build` and `cargo install` give the production binary, which has none of it.
//!
//! It sits above `mount` and below the command layer: only `main.rs`, `cli` and tests
//! import it, and nothing in the product imports anything from here.

pub mod gateway;
mod mount;
mod options;
pub mod settings;

pub use mount::{local_gateway, MountOptions};
pub use options::{BackendOptions, GatewayOptions, NamedSecret};
