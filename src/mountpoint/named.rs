//! The mount a command names: `status`, `refresh`, `unmount` and `exec` are given a path
//! (or `~/.s3creds`) and must find the mount `mount` made there, by its own path.

use crate::app_error::{AppError, Result};
pub use crate::safe_path::LookedUp;
use std::path::{Path, PathBuf};

/// The path of the mount that `path` names: absolute, with `.`, `..` and every symbolic
/// link on it resolved, as the kernel walks it. mountinfo lists a mount by its own path,
/// and fusermount3 (which unmounts for a user) looks the path it is given up there, so a
/// mount named through a link (`ln -s creds creds-link`) is found only this way.
///
/// The walk ([`crate::safe_path::look_up`]) keeps `mount`'s rules: only root's and the
/// caller's links are followed, and only through directories no other user can change,
/// judged by descriptor so that nothing can be swapped between a check and its use.
/// Otherwise another user could point the name at another mount of the caller's (or, for
/// root, at a stale mount of anything), and `unmount` would stop it, `refresh` log it in
/// again, `exec` hand its credentials to a command. Nothing is created, and the mount
/// itself is never inspected (a stale one fails every access with ENOTCONN).
pub fn named(path: &Path) -> Result<PathBuf> {
    Ok(looked_up(path)?.path)
}

/// [`named`], saying also whether another user could change what the path names (see
/// [`LookedUp`]): `unmount` acts on a path only if no one could.
pub fn looked_up(path: &Path) -> Result<LookedUp> {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_err(AppError::Cwd)?.join(path)
    };
    Ok(crate::safe_path::look_up(&path)?)
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
        // `..` at `/` stays there, as the kernel's does.
        assert_eq!(named(Path::new("/..")).unwrap(), Path::new("/"));
        let above = PathBuf::from(format!("/../..{}", base.display()));
        assert_eq!(named(&above).unwrap(), base);
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
        assert_eq!(named(&link).unwrap(), base.join("creds"));
        // Root's links are followed for every user (`/proc/self` is root's).
        let me = PathBuf::from(format!("/proc/{}", std::process::id()));
        assert_eq!(named(Path::new("/proc/self")).unwrap(), me);
        if !nix::unistd::geteuid().is_root() {
            // Only root can give a link to another user (the other half: as root).
            return;
        }
        crate::test_users::lchown(&link, 65534);
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

    /// Past a directory others may change (not root's or the caller's, or writable by
    /// others without the sticky bit), whose entries they could swap to lead to another
    /// mount, no link is followed: the rest is kept as given, where no mount of the
    /// caller's can be (`mount` refuses such a directory).
    #[test]
    fn past_a_directory_others_could_change_no_link_is_followed() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, base) = setup();
        let open = base.join("open");
        std::fs::create_dir(&open).unwrap();
        symlink("../creds", open.join("link")).unwrap();
        let chmod =
            |mode| std::fs::set_permissions(&open, std::fs::Permissions::from_mode(mode)).unwrap();
        let link = open.join("link");
        chmod(0o777);
        assert_eq!(named(&link).unwrap(), link);
        // Nor may `unmount` detach anything by that path.
        let why = looked_up(&link).unwrap().untrusted.unwrap();
        assert_eq!(
            why,
            format!(
                "{} can be written by group or others (mode 0777) without the sticky bit, so they could swap what is in it",
                open.display()
            )
        );
        assert!(
            looked_up(&open).unwrap().untrusted.is_none(),
            "the directory itself is not past it"
        );
        assert_eq!(named(&open.join("a/../link")).unwrap(), link);
        // Reached through a link of the caller's own, the directory is judged the same.
        symlink("open", base.join("to-open")).unwrap();
        assert_eq!(named(&base.join("to-open/link")).unwrap(), link);
        // The sticky bit (as on /tmp) lets others change only their own entries.
        chmod(0o1777);
        assert_eq!(named(&link).unwrap(), base.join("creds"));
        assert_eq!(looked_up(&link).unwrap().untrusted, None);
        chmod(0o700);
        assert_eq!(named(&link).unwrap(), base.join("creds"));
        if !nix::unistd::geteuid().is_root() {
            // Only root can give a directory to another user (the other half: as root).
            return;
        }
        std::os::unix::fs::chown(&open, Some(65534), None).unwrap();
        assert_eq!(
            looked_up(&link).unwrap(),
            LookedUp {
                path: link.clone(),
                untrusted: Some(format!(
                    "{} belongs to user id 65534, who could swap what is in it",
                    open.display()
                ))
            }
        );
    }

    /// Where the walk cannot go on, the rest is kept as given (nothing of the caller's is
    /// mounted there): a file on the way, a name that does not exist.
    #[test]
    fn what_cannot_be_walked_is_kept_as_given() {
        let (_dir, base) = setup();
        std::fs::write(base.join("file"), "").unwrap();
        assert_eq!(
            named(&base.join("file/x/../y")).unwrap(),
            base.join("file/y")
        );
        assert_eq!(
            looked_up(&base.join("none/a/../b")).unwrap(),
            LookedUp {
                path: base.join("none/b"),
                untrusted: None
            }
        );
        // A walk that stops at a file follows nothing after it, even back up through `..`
        // (the kernel fails the path with ENOTDIR).
        symlink("creds", base.join("link")).unwrap();
        assert_eq!(
            named(&base.join("file/../link")).unwrap(),
            base.join("link")
        );
        symlink("none/deeper", base.join("dangling-deep")).unwrap();
        assert_eq!(
            named(&base.join("dangling-deep")).unwrap(),
            base.join("none/deeper")
        );
    }
}
