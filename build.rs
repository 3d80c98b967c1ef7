//! Tells `--version` which commit, target and build this binary is: the commit from
//! `git rev-parse` when building from a checkout, else `S3CREDSFS_COMMIT` if set (a
//! source tarball's packager), else "unknown"; the build is the production one unless the
//! `dev-gateway` feature is on (`src/build_info.rs`). Never fails the build for want of git.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `git` run in the package's directory, its trimmed output if it succeeded.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

/// The variables it sets for `env!` are not named `S3CREDSFS_*`: `cargo run` (and so
/// `cargo demo`) puts them into the program's environment too, where the program would warn
/// that they name no setting.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=S3CREDSFS_COMMIT");
    let commit = git(&["rev-parse", "--short=12", "HEAD"])
        .filter(|c| c.chars().all(|c| c.is_ascii_hexdigit()))
        .or_else(|| std::env::var("S3CREDSFS_COMMIT").ok())
        .filter(|c| !c.is_empty() && c.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BUILD_COMMIT={commit}");
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=BUILD_TARGET={target}");
    let build = match std::env::var_os("CARGO_FEATURE_DEV_GATEWAY") {
        Some(_) => "development build with the built-in gateway",
        None => "production build",
    };
    println!("cargo:rustc-env=BUILD_KIND={build}");
    // Build again when HEAD moves (a commit, a checkout): its reflog changes with it.
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    for name in ["HEAD", "logs/HEAD"] {
        if let Some(path) = git(&["rev-parse", "--git-path", name]) {
            let path = manifest.join(Path::new(&path));
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}
