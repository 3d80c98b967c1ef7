//! The mount a command names: `status`, `refresh`, `unmount` and `exec` are given a path
//! (or `~/.s3creds`) and must find the mount `mount` made there, by its own path.

use crate::app_error::{AppError, Result};
use crate::error::Error;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Links followed in one walk before giving up, as the kernel's own limit (`MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// The path of the mount that `path` names: absolute, with `.`, `..` and every symbolic
/// link on it resolved, as the kernel walks it. mountinfo lists a mount by its own path,
/// and fusermount3 (which unmounts for a user) looks the path it is given up there, so a
/// mount named through a link (`ln -s creds creds-link`) is found only this way.
///
/// A link is followed only if it is root's or the caller's, as `mount`'s own checks
/// require: another user's link could be re-pointed at any mount of the caller's (or, for
/// root, at a stale mount of anything) between two commands, and `unmount` would stop it,
/// `refresh` log it in again, `exec` hand its credentials to a command.
///
/// Nothing on the path is opened or stat'ed but links (`readlink` first, which a stale
/// mount does not fail: every other access to it fails with ENOTCONN), and nothing is
/// created. A name that does not exist, or cannot be read, is kept as it is: nothing is
/// mounted there, which the commands go on to say.
pub fn named(path: &Path) -> Result<PathBuf> {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_err(AppError::Cwd)?.join(path)
    };
    let me = nix::unistd::geteuid().as_raw();
    let shown = path.display();
    let refuse = |why: String| -> AppError { Error::Config(why).into() };
    let mut found = PathBuf::from("/");
    let mut queue = parts(&path);
    let mut links = 0;
    while let Some(name) = queue.pop_front() {
        if name == ".." {
            found.pop();
            continue;
        }
        let here = found.join(&name);
        let Ok(target) = std::fs::read_link(&here) else {
            found = here;
            continue;
        };
        let owner = std::fs::symlink_metadata(&here)
            .map_err(|e| refuse(format!("cannot inspect the link {} ({e})", here.display())))?
            .uid();
        if owner != 0 && owner != me {
            let what = if here == path {
                format!("{shown} is a symbolic link")
            } else {
                format!("{shown} goes through the symbolic link {}", here.display())
            };
            return Err(refuse(format!(
                "{what} of user id {owner}, who could re-point it at another mount; name the mountpoint itself"
            )));
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(refuse(format!(
                "{shown} goes through more than {MAX_LINKS} symbolic links; name the mountpoint itself"
            )));
        }
        // A relative target is read in the link's directory, which `found` still is.
        if target.is_absolute() {
            found = PathBuf::from("/");
        }
        for (i, part) in parts(&target).into_iter().enumerate() {
            queue.insert(i, part);
        }
    }
    Ok(found)
}

/// `path`'s parts to walk, in order: names and `..` (`/` and `.` say nothing more).
fn parts(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A temporary directory (resolved) with the directory `creds` in it.
    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        std::fs::create_dir(base.join("creds")).unwrap();
        (dir, base)
    }

    #[test]
    fn a_command_names_the_mount_a_link_leads_to() {
        let (_dir, base) = setup();
        let real = base.join("creds");
        let link = |target: &str, at: &str| symlink(target, base.join(at)).unwrap();
        // Relative (as `ln -s creds link` makes), absolute, and through a linked directory
        // to a link in it, whose relative target is read in the directory it leads to.
        link("creds", "link");
        link(real.to_str().unwrap(), "absolute");
        std::fs::create_dir(base.join("sub")).unwrap();
        link("../creds", "sub/up");
        link("sub", "via");
        for name in [
            "link",
            "absolute",
            "via/up",
            "creds",
            "sub/../creds",
            "./via/../link",
        ] {
            assert_eq!(named(&base.join(name)).unwrap(), real, "{name}");
        }
        // `..` after a link leaves the directory the link leads to, as the kernel does.
        assert_eq!(named(&base.join("via/..")).unwrap(), base);
        // A link to a mountpoint that is not there yet names it all the same; so does a
        // path under a name that does not exist.
        link("later", "dangling");
        assert_eq!(named(&base.join("dangling")).unwrap(), base.join("later"));
        assert_eq!(named(&base.join("no/such")).unwrap(), base.join("no/such"));
        // Relative to the current directory.
        let here = std::env::current_dir().unwrap().canonicalize().unwrap();
        assert_eq!(named(Path::new("x")).unwrap(), here.join("x"));
        assert_eq!(named(Path::new("/")).unwrap(), Path::new("/"));
    }

    #[test]
    fn at_most_40_links_are_followed_as_the_kernel_does() {
        let (_dir, base) = setup();
        let chain = |count: usize, prefix: &str| {
            for i in 1..count {
                symlink(
                    format!("{prefix}{}", i + 1),
                    base.join(format!("{prefix}{i}")),
                )
                .unwrap();
            }
            symlink("creds", base.join(format!("{prefix}{count}"))).unwrap();
            base.join(format!("{prefix}1"))
        };
        let forty = chain(40, "a");
        assert!(std::fs::metadata(&forty).is_ok(), "the kernel follows 40");
        assert_eq!(named(&forty).unwrap(), base.join("creds"));
        let more = chain(41, "b");
        assert!(std::fs::metadata(&more).is_err(), "ELOOP from the 41st on");
        let err = named(&more).unwrap_err().to_string();
        assert!(
            err.contains("goes through more than 40 symbolic links"),
            "{err}"
        );
        symlink("loop2", base.join("loop1")).unwrap();
        symlink("loop1", base.join("loop2")).unwrap();
        let err = named(&base.join("loop1")).unwrap_err().to_string();
        assert!(err.contains("more than 40 symbolic links"), "{err}");
    }

    #[test]
    fn another_users_link_is_not_followed() {
        let (_dir, base) = setup();
        let link = base.join("theirs");
        symlink("creds", &link).unwrap();
        // Root's own link is followed like the caller's.
        assert_eq!(named(&link).unwrap(), base.join("creds"));
        if !nix::unistd::geteuid().is_root() {
            // Only root can give a link to another user (the other half: as root).
            return;
        }
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            &link,
            Some(nix::unistd::Uid::from_raw(65534)),
            None,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .unwrap();
        let err = named(&link).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{} is a symbolic link of user id 65534, who could re-point it at another mount; name the mountpoint itself",
                link.display()
            )
        );
        let under = link.join("x");
        let err = named(&under).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{} goes through the symbolic link {} of user id 65534, who could re-point it at another mount; name the mountpoint itself",
                under.display(),
                link.display()
            )
        );
    }
}
