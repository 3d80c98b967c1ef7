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

/// The mountpoint a command works on, absolute and with links followed (see
/// [`mountpoint::named`]): the one `mount` mounted on for the same name.
fn mountpoint_of(given: &Option<PathBuf>) -> Result<PathBuf> {
    mountpoint::named(&given_mountpoint(given)?)
}

/// [`mountpoint_of`], saying also whether another user could change what the path names
/// (`unmount` detaches only what no one else can re-point).
fn looked_up_mountpoint(given: &Option<PathBuf>) -> Result<mountpoint::LookedUp> {
    mountpoint::looked_up(&given_mountpoint(given)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_given_mountpoint_is_made_absolute_without_resolving_links() {
        let cwd = std::env::current_dir().unwrap();
        let absolute = PathBuf::from("/run/user/1000/creds");
        assert_eq!(given_mountpoint(&Some(absolute.clone())).unwrap(), absolute);
        let relative = PathBuf::from("some/creds");
        assert_eq!(
            given_mountpoint(&Some(relative.clone())).unwrap(),
            cwd.join(&relative)
        );
        assert_eq!(
            given_mountpoint(&None).unwrap(),
            mountpoint::default_mountpoint().unwrap()
        );
    }

    #[test]
    fn a_command_works_on_the_mountpoint_with_its_parent_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        // The parent (a link here) is resolved; the last name, no link, is kept as given
        // (links at the last name: `mountpoint::named`'s own tests).
        let got = mountpoint_of(&Some(link.join("creds"))).unwrap();
        assert_eq!(got, real.canonicalize().unwrap().join("creds"));
        assert_eq!(
            mountpoint_of(&None).unwrap(),
            mountpoint::named(&mountpoint::default_mountpoint().unwrap()).unwrap()
        );
    }
}
