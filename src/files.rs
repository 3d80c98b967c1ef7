//! Opening the files a user points us at (password, client secret, token, config, CA
//! bundle, log) so that another local user cannot plant or read what is in them.
//!
//! Each file is opened once and judged by `fstat` on that descriptor, so it cannot be
//! swapped between the check and the read. It must be a regular file owned by us or by
//! root; a secret must not be accessible by group or others (as ssh demands of keys), and
//! a file that steers us (config, CA bundle) must not be writable by them.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// What a file holds, which decides who else may touch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A password, client secret or token: no access at all for group or others.
    Secret,
    /// Settings or trust anchors: group and others may read but not write.
    Steering,
    /// The site-wide config file: as [`Kind::Steering`], and owned by root, since every
    /// user of the node reads it and must be able to trust it.
    Site,
}

/// The largest file read; a password, token or config is a few KiB, a CA bundle less
/// than a MiB.
pub const MAX_FILE: u64 = 4 * 1024 * 1024;

/// Opens `path` and checks it as `kind` demands; `what` names it in errors ("password
/// file", "config file") and `fix` says which setting to change.
pub fn read_checked(path: &Path, what: &str, fix: &str, kind: Kind) -> Result<Vec<u8>> {
    let shown = path.display();
    // O_NONBLOCK: a FIFO planted at the path must not hang us before the type check.
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| Error::Config(format!("cannot read the {what} {shown} ({e}); {fix}")))?;
    check(&file, path, what, kind)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Config(format!("cannot read the {what} {shown} ({e}); {fix}")))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(Error::Config(format!(
            "the {what} {shown} is larger than {MAX_FILE} bytes; {fix}"
        )));
    }
    Ok(bytes)
}

/// Judges an open file by its own metadata.
fn check(file: &File, path: &Path, what: &str, kind: Kind) -> Result<()> {
    let shown = path.display();
    let meta = file
        .metadata()
        .map_err(|e| Error::Config(format!("cannot inspect the {what} {shown} ({e})")))?;
    if !meta.file_type().is_file() {
        return Err(Error::Config(format!(
            "the {what} {shown} is not a regular file; point the setting at a regular file"
        )));
    }
    let me = nix::unistd::geteuid().as_raw();
    if kind == Kind::Site && meta.uid() != 0 {
        return Err(Error::Config(format!(
            "the {what} {shown} belongs to user id {}, not root; every user's mount reads it, \
             so only root may own it: run `chown root: {shown}`, or remove it",
            meta.uid()
        )));
    }
    if meta.uid() != me && meta.uid() != 0 {
        return Err(Error::Config(format!(
            "the {what} {shown} belongs to user id {}, not to you (id {me}) or root; \
             another user could change it: use a file of your own",
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    match kind {
        Kind::Secret if mode & 0o077 != 0 => Err(Error::Config(format!(
            "the {what} {shown} is accessible by group or others (mode {mode:04o}); run `chmod 600 {shown}`"
        ))),
        Kind::Steering | Kind::Site if mode & 0o022 != 0 => Err(Error::Config(format!(
            "the {what} {shown} is writable by group or others (mode {mode:04o}); run `chmod go-w {shown}`"
        ))),
        Kind::Site => check_root_dirs(path, what),
        _ => Ok(()),
    }
}

/// The directories a root-only file lies in, as given and as resolved: each must be
/// root's and writable by no one else (or sticky, as `/tmp` is), and a link on the way
/// root's. Whoever can write one of them can remove the file or swap it for another,
/// and the site file steers every user's mount on the node.
fn check_root_dirs(path: &Path, what: &str) -> Result<()> {
    let shown = path.display();
    let resolved = std::fs::canonicalize(path)
        .map_err(|e| Error::Config(format!("cannot resolve the {what} {shown} ({e})")))?;
    let given = path.ancestors().skip(1).map(|d| (d, false));
    let real = resolved.ancestors().skip(1).map(|d| (d, true));
    for (dir, follow) in given.chain(real) {
        if dir.as_os_str().is_empty() {
            continue;
        }
        let meta = match follow {
            true => std::fs::metadata(dir),
            false => std::fs::symlink_metadata(dir),
        };
        let meta = meta.map_err(|e| {
            Error::Config(format!(
                "cannot inspect {}, a directory of the {what} {shown} ({e})",
                dir.display()
            ))
        })?;
        let mode = meta.permissions().mode() & 0o7777;
        let writable =
            !meta.file_type().is_symlink() && mode & 0o022 != 0 && mode & libc::S_ISVTX == 0;
        if meta.uid() != 0 || writable {
            return Err(Error::Config(format!(
                "the {what} {shown} lies under {}, which {}; whoever can write there can \
                 swap the file every user's mount reads: run `chown root: {}` and \
                 `chmod go-w {}`",
                dir.display(),
                match meta.uid() {
                    0 => format!("group or others can write (mode {mode:04o})"),
                    uid => format!("belongs to user id {uid}, not root"),
                },
                dir.display(),
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Opens (creating) the daemon's log for appending: never through a symlink, mode 0600,
/// and an existing file must be a regular file of ours with no other name (hard link); its
/// mode is tightened to 0600.
pub fn open_log(path: &Path) -> Result<File> {
    open_log_with(path, "fix --log-file")
}

/// [`open_log`], with `fix` as the advice in its errors (the default log has no flag to
/// blame).
pub fn open_log_with(path: &Path, fix: &str) -> Result<File> {
    let shown = path.display();
    let file = File::options()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| {
            let why = if e.raw_os_error() == Some(libc::ELOOP) {
                "it is a symbolic link".to_string()
            } else {
                e.to_string()
            };
            Error::Config(format!("cannot open the log file {shown} ({why}); {fix}"))
        })?;
    let meta = file
        .metadata()
        .map_err(|e| Error::Config(format!("cannot inspect the log file {shown} ({e})")))?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.file_type().is_file() || meta.uid() != me {
        return Err(Error::Config(format!(
            "the log file {shown} is not a regular file of yours; {fix}"
        )));
    }
    // A second name is another file of ours (say, a hard link to root's /etc/shadow made
    // where root's log goes, which fs.protected_hardlinks=0 allows): appending and the
    // chmod below would change that file.
    if meta.nlink() != 1 {
        return Err(Error::Config(format!(
            "the log file {shown} has other names (hard links), so writing it would change another file; {fix}"
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| {
                Error::Config(format!("cannot make the log file {shown} private ({e})"))
            })?;
    }
    Ok(file)
}

/// Checks that `path` can be replaced by [`replace_file`]: its directory exists and the
/// name is free or a regular file, never a symbolic link. `what` and `fix` as in
/// [`read_checked`].
pub fn check_replaceable(path: &Path, what: &str, fix: &str) -> Result<()> {
    let shown = path.display();
    let (Some(dir), Some(_)) = (path.parent(), path.file_name()) else {
        return Err(Error::Config(format!(
            "the {what} {shown} names no file; {fix}"
        )));
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        _ => {
            return Err(Error::Config(format!(
                "the directory of the {what} {shown} does not exist (or is no directory); \
                 create it or {fix}"
            )))
        }
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Config(format!(
            "cannot inspect the {what} {shown} ({e}); {fix}"
        ))),
        Ok(meta) if meta.file_type().is_symlink() => Err(Error::Config(format!(
            "the {what} {shown} is a symbolic link, which s3credsfs does not write through; \
             remove it or {fix}"
        ))),
        Ok(meta) if !meta.is_file() => Err(Error::Config(format!(
            "the {what} {shown} is not a regular file; remove it or {fix}"
        ))),
        Ok(_) => Ok(()),
    }
}

/// Replaces `path` with `bytes` at once, so a reader sees the old file or the new one,
/// never a part: a temporary file in the same directory (a random name ending in `.tmp`,
/// created with `O_EXCL | O_NOFOLLOW`, so nothing planted at the name is written through)
/// gets mode `mode` whatever the umask, then is renamed over `path`. A symbolic link at
/// `path` is refused, not replaced.
pub fn replace_file(path: &Path, bytes: &[u8], mode: u32, what: &str, fix: &str) -> Result<()> {
    use std::io::Write;
    check_replaceable(path, what, fix)?;
    let shown = path.display();
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut random = [0u8; 8];
    crate::random::fill(&mut random)
        .map_err(|e| Error::Config(format!("cannot write the {what} {shown} ({e})")))?;
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let temp = path.with_file_name(format!(".{name}.{suffix}.tmp"));
    let failed = |e: std::io::Error| {
        let _ = std::fs::remove_file(&temp);
        Error::Config(format!("cannot write the {what} {shown} ({e}); {fix}"))
    };
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(&temp)
        .map_err(|e| Error::Config(format!("cannot write the {what} {shown} ({e}); {fix}")))?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(failed)?;
    file.write_all(bytes).map_err(failed)?;
    drop(file);
    std::fs::rename(&temp, path).map_err(failed)
}

/// Creates `dir` and its missing parents with mode 0700 and checks it as a mountpoint is
/// checked ([`crate::safe_path`]): no other user may own or write (without the sticky bit)
/// a directory on the way or own a link on it, and `dir` must be a real directory of ours
/// (not a link to elsewhere); one open to group or others is made private, as the log
/// files in it are. Otherwise a hostile `XDG_STATE_HOME` (inside a directory another user
/// owns) would let that user swap the directory for a link while the daemon runs, and the
/// log rotation, which reopens by name, would then create and rename files wherever they
/// chose. Returns the resolved path, which the log is opened and rotated under.
pub fn private_dir(dir: &Path) -> Result<std::path::PathBuf> {
    let fix = "set XDG_STATE_HOME to a directory of your own, or pass --log-file FILE";
    let found = crate::safe_path::resolve_dir(dir, fix)?;
    let shown = found.path.display();
    // Root's `/` is "of ours" to root, and making it 0700 would shut every other user out
    // of the whole system (a mutant that lost the log's directory did that once).
    if found.path == Path::new("/") {
        return Err(Error::Config(format!(
            "the root directory / cannot be a private log directory; {fix}"
        )));
    }
    if found.stat.st_mode & 0o077 != 0 {
        std::fs::set_permissions(&found.path, std::fs::Permissions::from_mode(0o700)).map_err(
            |e| Error::Config(format!("cannot make the directory {shown} private ({e})")),
        )?;
    }
    Ok(found.path)
}

#[cfg(test)]
mod tests;
