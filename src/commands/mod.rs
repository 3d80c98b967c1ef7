//! The commands' bodies, one file per subcommand: each takes its parsed arguments (from
//! `crate::cli`) and runs the command on the machinery below (`mount`, `exec`, `sts`,
//! ...). With `main.rs` and `cli`, this is the command layer: nothing below imports it.

pub mod completions;
pub mod config;
pub mod exec;
pub mod fetch;
pub mod man;
pub mod mount;
mod our_mount;
pub mod refresh;
pub mod status;
pub mod unmount;

use crate::app_error::{AppError, Result};
use crate::mountpoint;
use std::path::PathBuf;

/// The mountpoint as given (or the default), relative to the current directory but with
/// no link resolved: what `mount` checks, link by link.
fn given_mountpoint(given: &Option<PathBuf>) -> Result<PathBuf> {
    let path = match given {
        Some(p) => p.clone(),
        None => mountpoint::default_mountpoint()?,
    };
    if path.is_absolute() {
        Ok(path)
    } else {
        Ok(std::env::current_dir().map_err(AppError::Cwd)?.join(path))
    }
}

/// The mountpoint a command works on, absolute: the one `mount` used for the same name.
fn mountpoint_of(given: &Option<PathBuf>) -> Result<PathBuf> {
    mountpoint::absolute(&given_mountpoint(given)?)
}
