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
        _ => Ok(()),
    }
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
    if found.stat.st_mode & 0o077 != 0 {
        std::fs::set_permissions(&found.path, std::fs::Permissions::from_mode(0o700)).map_err(
            |e| Error::Config(format!("cannot make the directory {shown} private ({e})")),
        )?;
    }
    Ok(found.path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn file(dir: &Path, name: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, "content").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn read(path: &Path, kind: Kind) -> std::result::Result<Vec<u8>, String> {
        read_checked(path, "test file", "fix it", kind).map_err(|e| e.to_string())
    }

    #[test]
    fn secrets_allow_no_group_or_other_bit() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o640, 0o620, 0o610, 0o604, 0o602, 0o601, 0o644, 0o666] {
            let path = file(dir.path(), &format!("s{mode:o}"), mode);
            let err = read(&path, Kind::Secret).unwrap_err();
            assert!(
                err.contains(&format!("(mode {mode:04o}); run `chmod 600")),
                "{err}"
            );
        }
        for mode in [0o600, 0o400] {
            let path = file(dir.path(), &format!("ok{mode:o}"), mode);
            assert_eq!(read(&path, Kind::Secret).unwrap(), b"content");
        }
    }

    #[test]
    fn steering_files_allow_reading_but_not_writing() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o620, 0o602, 0o666, 0o660] {
            let path = file(dir.path(), &format!("w{mode:o}"), mode);
            let err = read(&path, Kind::Steering).unwrap_err();
            assert!(err.contains("is writable by group or others"), "{err}");
        }
        let path = file(dir.path(), "ok", 0o644);
        assert!(read(&path, Kind::Steering).is_ok());
    }

    #[test]
    fn the_site_file_must_be_roots_and_unwritable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        // An ordinary user's own file is refused first for not being root's.
        let expected = match nix::unistd::geteuid().is_root() {
            true => "is writable by group or others",
            false => "not root; every user's mount reads it",
        };
        for mode in [0o664, 0o646, 0o666] {
            let path = file(dir.path(), &format!("w{mode:o}"), mode);
            let err = read(&path, Kind::Site).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
        let path = file(dir.path(), "site", 0o644);
        if nix::unistd::geteuid().is_root() {
            assert!(read(&path, Kind::Site).is_ok());
            // Not root's: refused, even when it is the reader's own.
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            let err = read(&path, Kind::Site).unwrap_err();
            assert_eq!(
                err,
                format!(
                    "the test file {} belongs to user id 65534, not root; every user's mount \
                     reads it, so only root may own it: run `chown root: {}`, or remove it",
                    path.display(),
                    path.display()
                )
            );
        } else {
            let err = read(&path, Kind::Site).unwrap_err();
            assert!(err.contains("not root"), "{err}");
        }
    }

    #[test]
    fn only_regular_files_of_ours_or_roots() {
        let dir = tempfile::tempdir().unwrap();
        let err = read(dir.path(), Kind::Steering).unwrap_err();
        assert!(err.contains("is not a regular file"), "{err}");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = read(&fifo, Kind::Secret).unwrap_err();
        assert!(err.contains("is not a regular file"), "{err}");
        // A symlink is followed, and the file it names is what is judged.
        let target = file(dir.path(), "target", 0o644);
        let link = dir.path().join("link");
        symlink(&target, &link).unwrap();
        assert!(read(&link, Kind::Secret)
            .unwrap_err()
            .contains("(mode 0644)"));
        if nix::unistd::geteuid().is_root() {
            // Only root can give a file away; as root, a file of another user is refused.
            let path = file(dir.path(), "theirs", 0o600);
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            let err = read(&path, Kind::Secret).unwrap_err();
            assert!(err.contains("belongs to user id 65534"), "{err}");
        }
    }

    /// The owner rule as an ordinary user, for whom "ours" and "root's" are two users:
    /// both are accepted, a third user's file is refused. Run on a thread that is
    /// [`NOBODY`] when the tests run as root, else as the user running them.
    #[test]
    fn an_ordinary_user_reads_files_of_its_own_or_roots_only() {
        use crate::test_users::*;
        if !can_switch() {
            let dir = tempfile::tempdir().unwrap();
            let own = file(dir.path(), "own", 0o600);
            assert_eq!(read(&own, Kind::Secret).unwrap(), b"content");
            let roots = Path::new("/etc/passwd");
            assert_eq!(std::fs::metadata(roots).unwrap().uid(), 0);
            assert!(read(roots, Kind::Steering).is_ok());
            return;
        }
        let dir = dir_of(NOBODY);
        let roots = file(dir.path(), "roots", 0o644);
        let theirs = file(dir.path(), "theirs", 0o644);
        std::os::unix::fs::chown(&theirs, Some(OTHER), Some(OTHER)).unwrap();
        let path = dir.path().to_path_buf();
        let (own, roots, theirs) = as_user(NOBODY, move || {
            let own = file(&path, "own", 0o600);
            (
                read(&own, Kind::Secret),
                read(&roots, Kind::Steering),
                read(&theirs, Kind::Steering),
            )
        });
        assert_eq!(own.unwrap(), b"content");
        assert_eq!(roots.unwrap(), b"content", "root's files are trusted");
        let err = theirs.unwrap_err();
        assert!(
            err.contains(&format!(
                "belongs to user id {OTHER}, not to you (id {NOBODY}) or root"
            )),
            "{err}"
        );
    }

    #[test]
    fn files_up_to_the_cap_are_read_and_one_byte_more_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let at_cap = dir.path().join("bundle.pem");
        std::fs::write(&at_cap, vec![b'x'; MAX_FILE as usize]).unwrap();
        assert_eq!(MAX_FILE, 4 << 20, "a large CA bundle fits");
        assert_eq!(
            read(&at_cap, Kind::Steering).unwrap().len() as u64,
            MAX_FILE
        );
        let over = dir.path().join("over.pem");
        std::fs::write(&over, vec![b'x'; MAX_FILE as usize + 1]).unwrap();
        let err = read(&over, Kind::Steering).unwrap_err();
        assert_eq!(
            err,
            format!(
                "the test file {} is larger than 4194304 bytes; fix it",
                over.display()
            )
        );
    }

    #[test]
    fn logs_refuse_symlinks_and_become_private() {
        let dir = tempfile::tempdir().unwrap();
        let target = file(dir.path(), "elsewhere", 0o644);
        let link = dir.path().join("log");
        symlink(&target, &link).unwrap();
        let err = open_log(&link).unwrap_err().to_string();
        assert!(err.contains("it is a symbolic link"), "{err}");
        let existing = file(dir.path(), "old.log", 0o644);
        open_log(&existing).unwrap();
        let mode = std::fs::metadata(&existing).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let fresh = dir.path().join("new.log");
        open_log(&fresh).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    fn replace(path: &Path, text: &str) -> std::result::Result<(), String> {
        replace_file(path, text.as_bytes(), 0o644, "metrics file", "fix it")
            .map_err(|e| e.to_string())
    }

    #[test]
    fn replacing_is_whole_and_readable_by_others_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s3credsfs.prom");
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let first = replace(&path, "one\n");
        nix::sys::stat::umask(old);
        first.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        let before = std::fs::metadata(&path).unwrap().ino();
        replace(&path, "two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        // A new file renamed into place, not the old one rewritten in place (a reader
        // holding the old one sees it whole).
        assert_ne!(std::fs::metadata(&path).unwrap().ino(), before);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn replacing_refuses_links_and_odd_files_and_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let target = file(dir.path(), "victim", 0o600);
        let link = dir.path().join("s3credsfs.prom");
        symlink(&target, &link).unwrap();
        let err = replace(&link, "planted").unwrap_err();
        assert_eq!(
            err,
            format!(
                "the metrics file {} is a symbolic link, which s3credsfs does not write through; remove it or fix it",
                link.display()
            )
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "content");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        let err = replace(dir.path(), "x").unwrap_err();
        assert!(err.contains("is not a regular file"), "{err}");
        let err = replace(&dir.path().join("missing/m.prom"), "x").unwrap_err();
        assert!(
            err.contains("does not exist (or is no directory); create it or fix it"),
            "{err}"
        );
        let err = replace(&target.join("m.prom"), "x").unwrap_err();
        assert!(
            err.contains("does not exist (or is no directory); create it or fix it"),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn log_directories_are_private_and_never_links() {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("a/b/s3credsfs");
        private_dir(&made).unwrap();
        for d in [dir.path().join("a"), dir.path().join("a/b"), made.clone()] {
            let mode = std::fs::metadata(&d).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{}", d.display());
        }
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        private_dir(&open).unwrap();
        let mode = std::fs::metadata(&open).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // A link to a directory elsewhere is refused, and what it names is left alone.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = dir.path().join("link");
        symlink(&elsewhere, &link).unwrap();
        let err = private_dir(&link).unwrap_err().to_string();
        assert!(err.contains("is a symbolic link"), "{err}");
        let mode = std::fs::metadata(&elsewhere).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        // A file there: refused, and says so.
        let file = file(dir.path(), "plain", 0o600);
        let err = private_dir(&file).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{} exists and is not a directory", file.display())),
            "{err}"
        );
    }

    /// A directory that exists but belongs to someone else is refused and left as it is;
    /// as an ordinary user, root's directory too (the logs in it would be root's to read).
    #[test]
    fn log_directories_of_another_user_are_refused() {
        use crate::test_users::*;
        let refused = |err: Result<std::path::PathBuf>, dir: &Path| {
            let err = err.unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("{} belongs to user id ", dir.display()))
                    && err.contains(", not to you (id ")
                    && err.ends_with("pass --log-file FILE"),
                "{err}"
            );
        };
        if !can_switch() {
            refused(private_dir(Path::new("/")), Path::new("/"));
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&theirs, Some(OTHER), Some(OTHER)).unwrap();
        refused(private_dir(&theirs), &theirs);
        let mode = std::fs::metadata(&theirs).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "left as it was");
        let home = dir_of(NOBODY);
        let roots = home.path().join("roots");
        std::fs::create_dir(&roots).unwrap();
        let at = roots.clone();
        refused(as_user(NOBODY, move || private_dir(&at)), &roots);
    }

    /// What must not be taken for the log: a FIFO (with a reader, so that it opens), a
    /// file of another user, and for an ordinary user root's file; none is written to.
    #[test]
    fn logs_refuse_what_is_not_a_regular_file_of_ours() {
        use crate::test_users::*;
        let not_ours = |path: &Path, err: Result<File>| {
            let err = err.unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "the log file {} is not a regular file of yours; fix --log-file",
                    path.display()
                )
            );
        };
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.log");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let reader = File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        not_ours(&fifo, open_log(&fifo));
        drop(reader);
        if !can_switch() {
            // An ordinary user already: root's files are not its logs.
            not_ours(Path::new("/dev/null"), open_log(Path::new("/dev/null")));
            return;
        }
        let theirs = file(dir.path(), "theirs.log", 0o600);
        std::os::unix::fs::chown(&theirs, Some(OTHER), Some(OTHER)).unwrap();
        not_ours(&theirs, open_log(&theirs));
        let home = dir_of(NOBODY);
        // Writable by all, so that the open succeeds and the owner check decides.
        let roots = file(home.path(), "roots.log", 0o666);
        let at = roots.clone();
        not_ours(&roots, as_user(NOBODY, move || open_log(&at)));
        let mode = std::fs::metadata(&roots).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o666, "left as it was");
    }

    /// A hard link at the log path to another file of ours (root's, when root runs the
    /// daemon): neither written to nor made private.
    #[test]
    fn logs_refuse_a_hard_link_to_another_file() {
        let dir = tempfile::tempdir().unwrap();
        let victim = file(dir.path(), "victim", 0o644);
        let log = dir.path().join("m.log");
        std::fs::hard_link(&victim, &log).unwrap();
        let err = open_log(&log).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "the log file {} has other names (hard links), so writing it would change \
                 another file; fix --log-file",
                log.display()
            )
        );
        let mode = std::fs::metadata(&victim).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "left as it was");
    }

    /// A FIFO nobody reads, planted at the log path: opening it must fail at once, not
    /// wait for a reader (which would hang the daemon's start).
    #[test]
    fn a_fifo_at_the_log_path_fails_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.log");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let (done, outcome) = std::sync::mpsc::channel();
        let at = fifo.clone();
        let opener = std::thread::spawn(move || {
            let _ = done.send(open_log(&at).map(drop).map_err(|e| e.to_string()));
        });
        let result = outcome.recv_timeout(std::time::Duration::from_secs(10));
        if result.is_err() {
            // Release the stuck open, so the test ends instead of hanging too.
            let _reader = File::open(&fifo);
        }
        opener.join().unwrap();
        let err = result
            .expect("opening a FIFO with no reader hung")
            .unwrap_err();
        assert!(
            err.starts_with(&format!("cannot open the log file {} (", fifo.display())),
            "{err}"
        );
    }
}
