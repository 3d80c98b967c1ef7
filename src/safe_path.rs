//! Resolving a directory path so that no other local user can redirect it: the mountpoint
//! and the default log directory; and, by the same rules, the mount a command names
//! (`look_up`).
//!
//! The path is walked one component at a time from `/`, each opened with
//! `openat(O_PATH | O_NOFOLLOW)` relative to the descriptor of the directory before it and
//! judged by `fstat` on the descriptor just opened, never by its name again. Every
//! directory on the way must belong to root or the caller, and one that others may write
//! must have the sticky bit (so they can rename or remove only their own entries, and
//! every entry we go on through is root's or ours). A symbolic link on the way is followed
//! only if it belongs to root or the caller (it sits in a directory that passed the same
//! test, so no one else can replace it). The last component must be a real directory (not
//! a link) of the caller's own. A directory on a FUSE filesystem that another user
//! mounted is refused whatever it claims (its server makes up owners and lookups).
//!
//! What that buys: once a walk succeeded, only root and the caller can change which
//! directory the resolved path names, because every entry on it sits in a directory only
//! they may change. So a later use of the resolved path (the mount(2) call, or the setuid
//! `fusermount3`, which resolves it once more, `chdir`s into it as the calling user and
//! mounts on `.`) reaches the directory the checks were made on; no other user can swap a
//! component in between.

mod look_up;
mod steps;

pub use look_up::{look_up, LookedUp};
use steps::{
    components, foreign_fuse, kind, next_name, open_step, root_step, untrusted_dir, walked,
    MAX_LINKS,
};

use crate::error::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::readlinkat;
use nix::sys::stat::{fstat, mkdirat, FileStat, Mode, SFlag};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// A directory found by [`resolve_dir`].
#[derive(Debug)]
pub struct Resolved {
    /// The absolute path, with no symbolic link and no `.` or `..` left in it.
    pub path: PathBuf,
    /// An `O_PATH` descriptor of the directory itself (the one the checks were made on).
    pub dir: OwnedFd,
    /// What `fstat` said of it.
    pub stat: FileStat,
}

/// Resolves the absolute `path` to a directory of the caller's own that no other user can
/// redirect (see the module's notes), creating it and its missing parents (mode 0700).
/// `fix` ends every refusal, e.g. "use a directory of your own such as ~/.s3creds".
pub fn resolve_dir(path: &Path, fix: &str) -> Result<Resolved> {
    resolve(path, path, fix, true)
}

/// Resolves the absolute `path`, the directory that holds `child`, as [`resolve_dir`]
/// does, but judges `path` itself as a directory on the way to `child` (root's or the
/// caller's, not writable by others without the sticky bit) rather than as one of the
/// caller's own: so no other user can change what `child`'s name in it leads to.
/// Refusals name `child`.
pub fn resolve_parent(path: &Path, child: &Path, fix: &str) -> Result<PathBuf> {
    resolve(path, child, fix, false).map(|found| found.path)
}

fn resolve(path: &Path, child: &Path, fix: &str, own: bool) -> Result<Resolved> {
    let shown = child.display();
    let refuse = |why: String| Error::Config(format!("{why}; {fix}"));
    if !path.is_absolute() {
        return Err(refuse(format!("{shown} is not an absolute path")));
    }
    let me = nix::unistd::geteuid().as_raw();
    let mut stack = vec![root_step().map_err(refuse)?];
    let mut queue: VecDeque<OsString> = components(path);
    let mut links = 0;
    while let Some(name) = next_name(&mut queue, &mut stack) {
        let top = &stack.last().expect("/ stays on the stack").0;
        let here = walked(&stack).join(&name);
        if let Some(why) = untrusted_dir(&stack.last().expect("/").2, me) {
            return Err(refuse(format!(
                "{shown} lies under {}, which {why}",
                walked(&stack).display()
            )));
        }
        let fd = match open_step(top, &name) {
            Err(Errno::ENOENT) => {
                match mkdirat(top, name.as_os_str(), Mode::from_bits_truncate(0o700)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => {
                        return Err(refuse(format!(
                            "cannot create the directory {} ({})",
                            here.display(),
                            std::io::Error::from(e)
                        )))
                    }
                }
                open_step(top, &name)
            }
            other => other,
        }
        .map_err(|e| {
            refuse(format!(
                "cannot use {shown} ({}: {})",
                here.display(),
                std::io::Error::from(e)
            ))
        })?;
        let stat = fstat(&fd).map_err(|e| {
            refuse(format!(
                "cannot inspect {} ({})",
                here.display(),
                std::io::Error::from(e)
            ))
        })?;
        match kind(&stat) {
            SFlag::S_IFLNK => {
                // A parent's own name may be a link, followed as any on the way.
                if queue.is_empty() && own {
                    return Err(refuse(format!(
                        "{shown} is a symbolic link, which could be re-pointed elsewhere while mounted or in use"
                    )));
                }
                if stat.st_uid != 0 && stat.st_uid != me {
                    return Err(refuse(format!(
                        "{shown} goes through the symbolic link {}, which belongs to user id {}, who could re-point it",
                        here.display(),
                        stat.st_uid
                    )));
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(refuse(format!(
                        "{shown} goes through more than {MAX_LINKS} symbolic links"
                    )));
                }
                let target = readlinkat(top, name.as_os_str()).map_err(|e| {
                    refuse(format!(
                        "cannot read the link {} ({})",
                        here.display(),
                        std::io::Error::from(e)
                    ))
                })?;
                let target = PathBuf::from(target);
                if target.is_absolute() {
                    stack.truncate(1);
                }
                for (i, part) in components(&target).into_iter().enumerate() {
                    queue.insert(i, part);
                }
            }
            SFlag::S_IFDIR => {
                if let Some(why) = foreign_fuse(&fd, me) {
                    return Err(refuse(format!("{} {why}", here.display())));
                }
                stack.push((fd, name, stat));
            }
            _ if queue.is_empty() => {
                return Err(refuse(format!("{shown} exists and is not a directory")))
            }
            _ => {
                return Err(refuse(format!(
                    "{shown} goes through {}, which is not a directory",
                    here.display()
                )))
            }
        }
    }
    let path = walked(&stack);
    let (dir, _, stat) = stack.pop().expect("/ stays on the stack");
    if !own {
        if let Some(why) = untrusted_dir(&stat, me) {
            return Err(refuse(format!(
                "{shown} lies under {}, which {why}",
                path.display()
            )));
        }
    } else if stat.st_uid != me {
        return Err(refuse(format!(
            "{} belongs to user id {}, not to you (id {me})",
            path.display(),
            stat.st_uid
        )));
    }
    Ok(Resolved { path, dir, stat })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn refused(path: &Path) -> String {
        resolve_dir(path, "FIX").unwrap_err().to_string()
    }

    #[test]
    fn creates_missing_directories_privately_and_resolves_links_and_dots() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let found = resolve_dir(&base.join("a/b"), "FIX").unwrap();
        assert_eq!(found.path, base.join("a/b"));
        for dir in ["a", "a/b"] {
            let mode = std::fs::metadata(base.join(dir))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700, "{dir}");
        }
        // A link of ours, relative and absolute, and `..`: the resolved path has none.
        symlink("a", base.join("rel")).unwrap();
        symlink(base.join("a/b"), base.join("abs")).unwrap();
        assert_eq!(
            resolve_dir(&base.join("rel/b"), "FIX").unwrap().path,
            base.join("a/b")
        );
        assert_eq!(
            resolve_dir(&base.join("abs/../b"), "FIX").unwrap().path,
            base.join("a/b")
        );
        assert_eq!(
            resolve_dir(&base.join("a/./b/.."), "FIX").unwrap().path,
            base.join("a")
        );
        // `..` at `/` stays at `/`, as the kernel has it.
        let above_root = Path::new("/..").join(base.strip_prefix("/").unwrap().join("a"));
        assert_eq!(
            resolve_dir(&above_root, "FIX").unwrap().path,
            base.join("a")
        );
    }

    #[test]
    fn a_link_as_the_last_component_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        std::fs::create_dir(base.join("real")).unwrap();
        symlink(base.join("real"), base.join("link")).unwrap();
        let link = base.join("link");
        assert_eq!(
            refused(&link),
            format!("{} is a symbolic link, which could be re-pointed elsewhere while mounted or in use; FIX", link.display())
        );
        // Forty links in a row are followed, as the kernel does; one more is too many.
        std::fs::create_dir_all(base.join("real/sub")).unwrap();
        symlink("real", base.join("l1")).unwrap();
        for i in 2..=41 {
            symlink(format!("l{}", i - 1), base.join(format!("l{i}"))).unwrap();
        }
        let forty = resolve_dir(&base.join("l40/sub"), "FIX").unwrap();
        assert_eq!(forty.path, base.join("real/sub"));
        assert!(refused(&base.join("l41/sub")).contains("more than 40 symbolic links"));
        symlink("loop", base.join("loop")).unwrap();
        assert!(refused(&base.join("loop/x")).contains("more than 40 symbolic links"));
        std::fs::write(base.join("file"), "").unwrap();
        assert!(refused(&base.join("file")).ends_with("file exists and is not a directory; FIX"));
        assert!(refused(&base.join("file/x")).contains("which is not a directory; FIX"));
    }

    #[test]
    fn a_directory_others_can_write_is_passed_through_only_with_the_sticky_bit() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let open = base.join("open");
        std::fs::create_dir_all(open.join("mine")).unwrap();
        chmod(&open, 0o777);
        assert_eq!(
            refused(&open.join("mine")),
            format!(
                "{} lies under {}, which can be written by group or others (mode 0777) without the sticky bit, so they could swap what is in it; FIX",
                open.join("mine").display(),
                open.display()
            )
        );
        chmod(&open, 0o775);
        assert!(refused(&open.join("mine")).contains("(mode 0775) without the sticky bit"));
        chmod(&open, 0o1777);
        assert_eq!(
            resolve_dir(&open.join("mine"), "FIX").unwrap().path,
            open.join("mine")
        );
        // The last directory itself is judged by the caller (a mountpoint must not be
        // writable by others; a log directory is made private).
        chmod(&open, 0o777);
        assert_eq!(resolve_dir(&open, "FIX").unwrap().path, open);
        // As the parent of a mountpoint, it is judged as a directory on the way.
        let child = open.join("mine");
        assert_eq!(
            resolve_parent(&open, &child, "FIX").unwrap_err().to_string(),
            format!(
                "{} lies under {}, which can be written by group or others (mode 0777) without the sticky bit, so they could swap what is in it; FIX",
                child.display(),
                open.display()
            )
        );
        chmod(&open, 0o1777);
        assert_eq!(resolve_parent(&open, &child, "FIX").unwrap(), open);
        // A link of the caller's as the parent's name is followed.
        symlink(&open, base.join("to-open")).unwrap();
        assert_eq!(
            resolve_parent(&base.join("to-open"), &child, "FIX").unwrap(),
            open
        );
        // One owned by root (as /tmp) is fine, though it is not the caller's own.
        assert_eq!(
            resolve_parent(Path::new("/"), &child, "FIX").unwrap(),
            Path::new("/")
        );
    }

    /// Another user's directory or link on the way is refused, since they could swap what
    /// it leads to; root's and the caller's own are passed through. As root, "root's" and
    /// "the caller's" are one user, so the ordinary user's half runs on a thread that is
    /// [`crate::test_users::NOBODY`].
    #[test]
    fn only_roots_and_the_callers_directories_and_links_are_passed_through() {
        use crate::test_users::*;
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(base.join("real/sub")).unwrap();
        symlink(base.join("real"), base.join("link")).unwrap();
        if !can_switch() {
            // An ordinary user already: root's `/` and the user's own link pass.
            let found = resolve_dir(&base.join("link/sub"), "FIX").unwrap();
            assert_eq!(found.path, base.join("real/sub"));
            return;
        }
        // As root: another user's directory, and another user's link, are refused.
        let theirs = base.join("theirs");
        std::fs::create_dir_all(theirs.join("sub")).unwrap();
        chmod(&theirs, 0o755);
        lchown(&theirs, OTHER);
        assert_eq!(
            refused(&theirs.join("sub")),
            format!(
                "{} lies under {}, which belongs to user id {OTHER}, who could swap what is in it; FIX",
                theirs.join("sub").display(),
                theirs.display()
            )
        );
        assert_eq!(
            resolve_dir(&base.join("link/sub"), "FIX").unwrap().path,
            base.join("real/sub")
        );
        lchown(&base.join("link"), OTHER);
        let through = base.join("link/sub");
        assert_eq!(
            refused(&through),
            format!(
                "{} goes through the symbolic link {}, which belongs to user id {OTHER}, who could re-point it; FIX",
                through.display(),
                base.join("link").display()
            )
        );
        // As an ordinary user, in a home of its own: root's directory and link and its own
        // link are passed through; another user's directory and link are not.
        let home_dir = dir_of(NOBODY);
        let home = home_dir.path().canonicalize().unwrap();
        let roots = home.join("roots");
        std::fs::create_dir(&roots).unwrap();
        chmod(&roots, 0o755);
        let mine = roots.join("mine");
        std::fs::create_dir(&mine).unwrap();
        lchown(&mine, NOBODY);
        let theirs = home.join("theirs");
        std::fs::create_dir_all(theirs.join("mine")).unwrap();
        lchown(&theirs.join("mine"), NOBODY);
        chmod(&theirs, 0o755);
        lchown(&theirs, OTHER);
        for (name, owner) in [
            ("root-link", 0),
            ("own-link", NOBODY),
            ("their-link", OTHER),
        ] {
            symlink(&roots, home.join(name)).unwrap();
            lchown(&home.join(name), owner);
        }
        let at = home.clone();
        let found = as_user(NOBODY, move || {
            [
                "roots/mine",
                "root-link/mine",
                "own-link/mine",
                "their-link/mine",
                "theirs/mine",
            ]
            .map(|p| {
                resolve_dir(&at.join(p), "FIX")
                    .map(|r| r.path)
                    .map_err(|e| e.to_string())
            })
        });
        let [direct, root_link, own_link, their_link, in_theirs] = found;
        assert_eq!(direct.unwrap(), mine);
        assert_eq!(root_link.unwrap(), mine, "root's link is trusted");
        assert_eq!(own_link.unwrap(), mine, "the user's own link is trusted");
        let err = their_link.unwrap_err();
        assert!(
            err.contains(&format!(
                "their-link, which belongs to user id {OTHER}, who could re-point it"
            )),
            "{err}"
        );
        let err = in_theirs.unwrap_err();
        assert!(
            err.contains(&format!(
                "lies under {}, which belongs to user id {OTHER},",
                theirs.display()
            )),
            "{err}"
        );
    }
}
