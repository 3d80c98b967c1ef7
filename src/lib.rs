//! s3credsfs: always-current temporary S3 credentials from a CSM gateway.

pub(crate) mod accept;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod container;
pub mod control;
pub mod creds;
pub mod error;
pub mod exec;
pub mod exit_status;
pub mod fetch;
pub(crate) mod files;
pub mod fs;
pub mod fuse;
#[cfg(feature = "dev-gateway")]
pub mod gateway;
pub(crate) mod http;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod mount;
pub(crate) mod proxy;
pub(crate) mod random;
pub mod render;
pub(crate) mod safe_path;
pub mod secret;
pub mod skew;
pub mod status;
pub mod sts;
pub(crate) mod sync;
#[cfg(test)]
pub(crate) mod test_log;
#[cfg(test)]
pub(crate) mod test_users;
pub(crate) mod untrusted;
