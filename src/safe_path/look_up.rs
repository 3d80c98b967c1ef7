//! Finding, by the same rules, a mount that `mount` made: `status`, `refresh`, `unmount`
//! and `exec` are given a path and act on the mount at the end of it.

use super::steps::{
    components, foreign_fuse, kind, next_name, open_step, root_step, untrusted_dir, walked,
    MAX_LINKS,
};
use crate::error::{Error, Result};
use nix::fcntl::readlinkat;
use nix::sys::stat::{fstat, SFlag};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The path of what the absolute `path` names, walked as [`super::resolve_dir`] walks
/// (from `/`, by descriptor, at most 40 links), so that no other user can point it at
/// another mount of the caller's. A symbolic link is followed only if it is root's or the
/// caller's and sits in a directory no other user can change (root's or the caller's, not
/// writable by others without the sticky bit, not on another user's FUSE filesystem);
/// its owner and target come from one descriptor. Another user's link in such a
/// directory is refused with a sentence (`ln -s /root/.s3creds /tmp/jobcreds` for a root
/// script's `s3credsfs unmount /tmp/jobcreds`).
///
/// Past a directory another user can change, nothing more is followed: the rest is kept
/// as given. `mount` never mounts under such a directory, so no mount of the caller's
/// has that path, and the commands match the path against mountinfo, which lists mounts
/// by their own paths (root asking about a user's mount under their home is told whose
/// it is). Likewise where the walk cannot go on (a name that does not exist or cannot be
/// searched, a file, a stale mount on the way).
///
/// Unlike `resolve_dir` it creates nothing, and never inspects the last component unless
/// it is a link: that may be a stale mount, which fails every `stat` with ENOTCONN.
pub fn look_up(path: &Path) -> Result<LookedUp> {
    let shown = path.display();
    let refuse = |why: String| Error::Config(why);
    if !path.is_absolute() {
        return Err(refuse(format!("{shown} is not an absolute path")));
    }
    let me = nix::unistd::geteuid().as_raw();
    let mut stack = vec![root_step().map_err(refuse)?];
    let mut queue = components(path);
    let mut links = 0;
    while let Some(name) = next_name(&mut queue, &mut stack) {
        let (top, _, top_stat) = stack.last().expect("/ stays on the stack");
        let here = walked(&stack).join(&name);
        if let Some(why) = untrusted_dir(top_stat, me) {
            let why = format!("{} {why}", walked(&stack).display());
            return Ok(LookedUp::untrusted(kept_as_given(here, queue), why));
        }
        let Ok(fd) = open_step(top, &name) else {
            return Ok(LookedUp::trusted(kept_as_given(here, queue)));
        };
        if let Ok(target) = readlinkat(&fd, "") {
            let owner = fstat(&fd)
                .map_err(|e| {
                    refuse(format!(
                        "cannot inspect the link {} ({})",
                        here.display(),
                        std::io::Error::from(e)
                    ))
                })?
                .st_uid;
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
            let target = PathBuf::from(target);
            if target.is_absolute() {
                stack.truncate(1);
            }
            for (i, part) in components(&target).into_iter().enumerate() {
                queue.insert(i, part);
            }
            continue;
        }
        if queue.is_empty() {
            // What the commands look at: not inspected (see above).
            return Ok(LookedUp::trusted(here));
        }
        let stat = match fstat(&fd) {
            Ok(stat) if kind(&stat) == SFlag::S_IFDIR => stat,
            _ => return Ok(LookedUp::trusted(kept_as_given(here, queue))),
        };
        if let Some(why) = foreign_fuse(&fd, me) {
            let why = format!("{} {why}", here.display());
            return Ok(LookedUp::untrusted(kept_as_given(here, queue), why));
        }
        stack.push((fd, name, stat));
    }
    Ok(LookedUp::trusted(walked(&stack)))
}

/// What [`look_up`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookedUp {
    /// The path, resolved as far as the walk went.
    pub path: PathBuf,
    /// Why another user could change what the path names, if they could: past a
    /// directory they can change ("/home/alice belongs to user id 1000, who could swap
    /// what is in it"), whose entries they could swap for a link to any mount between a
    /// look and an unmount by this path.
    pub untrusted: Option<String>,
}

impl LookedUp {
    fn trusted(path: PathBuf) -> Self {
        LookedUp {
            path,
            untrusted: None,
        }
    }

    fn untrusted(path: PathBuf, why: String) -> Self {
        LookedUp {
            path,
            untrusted: Some(why),
        }
    }
}

/// `here` with the parts not walked added as given, `..` taking one off.
fn kept_as_given(mut here: PathBuf, rest: VecDeque<OsString>) -> PathBuf {
    for part in rest {
        if part == ".." {
            here.pop();
        } else {
            here.push(part);
        }
    }
    here
}
