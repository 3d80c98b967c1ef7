//! The integration tests, as one test binary (linking the crate once instead of once per
//! file, which is most of a build on two cores). Tiers, as mountpoint-s3 has them:
//!
//! - always: the pipeline against the built-in gateway over loopback HTTP, the CLI, TLS,
//!   hostile replies and files, property tests; nothing but Rust is needed;
//! - `fuse-tests`: real FUSE mounts on temporary directories (needs `/dev/fuse`, root or
//!   fusermount3);
//! - `s3-tests` (implies `fuse-tests`): what needs the tools `scripts/venv` installs but no
//!   real S3 (boto3 refused by the container endpoint, man, promtool), and the one test
//!   left on moto, for what only AWS's own STS does (`backend_sts`);
//! - `keycloak-tests`: the logins against a real Keycloak (`scripts/keycloak`), directly and
//!   through the built-in gateway in front of it (`dev-gateway --keycloak`), started
//!   once per test process; its brute-force lockout and concurrent logins
//!   (`keycloak_lockout`), and, with `fuse-tests` too, real mounts whose session is
//!   refreshed, revoked and left idle (`keycloak_sessions`);
//! - `ansible-tests` (implies `package-tests`): contrib/ansible's role and playbook by ansible-core and ansible-lint
//!   (scripts/ansible-tools) on scripts/package's tarball, against scratch image roots;
//! - `rgw-tests` (implies `fuse-tests`): every client (AWS CLI, boto3, s3cmd, rclone, curl,
//!   the JavaScript, Go and Rust SDKs), every way of taking credentials and every renewal,
//!   through a mount or `fetch`/`exec`, against a real Ceph RGW, which `scripts/rgw up`
//!   starts once per test process (and installs when missing).
//!
//! docs/contributing.md's "What runs where" table says which tests run on which server,
//! and why.
//!
//! `scripts/test` turns these on. Without its feature a gated test is not compiled; with
//! it, a missing tool fails with the way to install it. Run as root, it then runs the
//! permission-sensitive tests once more as uid 65534 (`scripts/it-as-user`, whose list
//! names them; a test whose setup needs root calls `common::require_root`).

mod common;

mod auth_tokens;
mod clean_tree;
mod config_check;
mod config_rules;
mod daemon_ready;
mod exec;
mod exec_secrets;
mod fetch_cli;
mod fetch_warnings;
mod fleet;
mod gateway_cray_sts;
mod gateway_keycloak;
mod gateway_sts;
mod hostile_files;
mod hostile_gateway;
mod imports;
mod parsers_never_panic;
mod pipeline;
mod profiles;
mod readme;
mod site_config;
mod test_helpers;
mod tls;

#[cfg(feature = "fuse-tests")]
mod container;
#[cfg(feature = "fuse-tests")]
mod faults;
#[cfg(feature = "fuse-tests")]
mod foreign_mounts;
#[cfg(feature = "fuse-tests")]
mod hermetic;
#[cfg(feature = "fuse-tests")]
mod in_process;
#[cfg(feature = "fuse-tests")]
mod logs;
#[cfg(feature = "fuse-tests")]
mod metrics;
#[cfg(feature = "fuse-tests")]
mod mount;
#[cfg(feature = "fuse-tests")]
mod mount_lifecycle;
#[cfg(feature = "fuse-tests")]
mod mount_races;
#[cfg(feature = "fuse-tests")]
mod mount_unprivileged;
#[cfg(feature = "fuse-tests")]
mod mountpoint_hostile;
#[cfg(feature = "fuse-tests")]
mod refresh_ahead;
#[cfg(feature = "fuse-tests")]
mod refresh_cmd;
#[cfg(feature = "fuse-tests")]
mod systemd;
#[cfg(feature = "fuse-tests")]
mod systemd_boot;

#[cfg(feature = "s3-tests")]
mod backend_sts;
#[cfg(feature = "s3-tests")]
mod man_pages;

#[cfg(feature = "rgw-tests")]
mod rgw;
#[cfg(feature = "rgw-tests")]
mod rgw_commands;
#[cfg(feature = "rgw-tests")]
mod rgw_hadoop;
#[cfg(feature = "rgw-tests")]
mod rgw_sdk;

#[cfg(feature = "package-tests")]
mod packaging;
#[cfg(feature = "package-tests")]
mod zypper;

#[cfg(feature = "ansible-tests")]
mod ansible;

#[cfg(feature = "keycloak-tests")]
mod keycloak;
#[cfg(feature = "keycloak-tests")]
mod keycloak_gateway;
#[cfg(feature = "keycloak-tests")]
mod keycloak_lockout;
#[cfg(all(feature = "keycloak-tests", feature = "fuse-tests"))]
mod keycloak_sessions;
