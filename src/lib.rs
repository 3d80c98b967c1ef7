//! s3credsfs: always-current temporary S3 credentials from a CSM gateway.

pub(crate) mod accept;
pub mod app_error;
pub mod auth;
pub mod build_info;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod container;
pub mod control;
pub mod creds;
#[cfg(feature = "dev-gateway")]
pub mod dev;
pub mod error;
pub mod exec;
pub mod exit_status;
pub mod fetch;
pub(crate) mod files;
pub mod fs;
pub mod fuse;
pub(crate) mod http;
pub mod jwt;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod mount;
pub mod mountpoint;
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
