//! What a mount holds: its files' names and what each serves. A leaf of `fs`, so
//! rendering a file reads its kind without importing the filesystem above it.

use crate::render::Format;

/// The directory holding one directory per profile.
pub const PROFILES_DIR: &str = "profiles";

/// What a file serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A rendering of the current credentials.
    Creds(Format),
    /// The status JSON (never triggers a fetch).
    Status,
    /// `export` lines for the container credentials endpoint (`--container-endpoint`).
    ContainerEnv,
}

/// The files of the root and of every profile's directory, in `ls` order.
pub const FILES: [(&str, FileKind); 7] = [
    ("credentials", FileKind::Creds(Format::Credentials)),
    ("config", FileKind::Creds(Format::Config)),
    ("env", FileKind::Creds(Format::Env)),
    ("json", FileKind::Creds(Format::Json)),
    ("s3cfg", FileKind::Creds(Format::S3cfg)),
    ("rclone.conf", FileKind::Creds(Format::Rclone)),
    ("status", FileKind::Status),
];

/// The extra file the root of a mount with `--container-endpoint` has.
pub const CONTAINER_ENV: &str = "container-env";
