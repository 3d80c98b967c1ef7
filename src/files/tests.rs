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
    // A FIFO: `a_fifo_at_a_read_path_fails_at_once` (bounded, should the open block).
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
    replace_file(path, text.as_bytes(), 0o644, "metrics file", "fix it").map_err(|e| e.to_string())
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

/// The site file's directories must be root's and unwritable by others, a link on the
/// way root's too: whoever can write one could swap the file every user's mount reads.
#[test]
fn the_site_file_lies_only_under_roots_directories() {
    let dir = tempfile::tempdir().unwrap();
    let site = |sub: &Path| {
        std::fs::create_dir_all(sub).unwrap();
        file(sub, "config.toml", 0o644)
    };
    let ok = site(&dir.path().join("etc/s3credsfs"));
    if !nix::unistd::geteuid().is_root() {
        // An ordinary user's own file is refused before its directories are looked at.
        assert!(read(&ok, Kind::Site).unwrap_err().contains("not root"));
        return;
    }
    assert!(read(&ok, Kind::Site).is_ok());
    // A directory of another user's on the way.
    let theirs = dir.path().join("theirs");
    let inside = site(&theirs.join("s3credsfs"));
    std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
    let err = read(&inside, Kind::Site).unwrap_err();
    assert!(
        err.contains(&format!(
            "lies under {}, which belongs to user id 65534, not root;",
            theirs.display()
        )),
        "{err}"
    );
    // A directory others can write, without the sticky bit; with it, as /tmp, it is fine.
    let open = dir.path().join("open");
    let inside = site(&open);
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = read(&inside, Kind::Site).unwrap_err();
    assert!(
        err.contains("which group or others can write (mode 0777)"),
        "{err}"
    );
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert!(read(&inside, Kind::Site).is_ok());
    // Through a link: another user's link is refused, and so is a root link that leads
    // into another user's directory.
    let link = dir.path().join("link");
    symlink(dir.path().join("etc"), &link).unwrap();
    let through = link.join("s3credsfs/config.toml");
    assert!(read(&through, Kind::Site).is_ok());
    crate::test_users::lchown(&link, 65534);
    let err = read(&through, Kind::Site).unwrap_err();
    assert!(
        err.contains(&format!(
            "lies under {}, which belongs to user id 65534",
            link.display()
        )),
        "{err}"
    );
    let to_theirs = dir.path().join("to-theirs");
    symlink(&theirs, &to_theirs).unwrap();
    let err = read(&to_theirs.join("s3credsfs/config.toml"), Kind::Site).unwrap_err();
    assert!(
        err.contains(&format!(
            "lies under {}, which belongs to user id 65534",
            theirs.display()
        )),
        "{err}"
    );
}

/// A FIFO with no writer, planted where a secret or config is read: refused at once, not
/// waited on (which would hang the command before the type check).
#[test]
fn a_fifo_at_a_read_path_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("password");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (done, outcome) = std::sync::mpsc::channel();
    let at = fifo.clone();
    let reader = std::thread::spawn(move || {
        let _ = done.send(read(&at, Kind::Secret));
    });
    let result = outcome.recv_timeout(std::time::Duration::from_secs(10));
    if result.is_err() {
        // Release the stuck open, so the test ends instead of hanging too.
        let _writer = File::options().write(true).open(&fifo);
    }
    reader.join().unwrap();
    let err = result
        .expect("opening a FIFO with no writer hung")
        .unwrap_err();
    assert!(err.contains("is not a regular file"), "{err}");
}

/// A name the system cannot look up (longer than a file name may be) is refused with
/// the system's reason before anything is written, not taken for a free name.
#[test]
fn a_name_that_cannot_be_inspected_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let long = dir.path().join("m".repeat(300));
    let err = check_replaceable(&long, "metrics file", "fix it")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "cannot inspect the metrics file {} (",
            long.display()
        )) && err.ends_with("); fix it"),
        "{err}"
    );
}

/// Only a log or log directory open to group or others is changed: one already private
/// keeps its mode whole (a setgid directory, say, which a site may use to keep a group).
#[test]
fn a_private_log_and_directory_are_left_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o2700)).unwrap();
    private_dir(&logs).unwrap();
    let mode = std::fs::metadata(&logs).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o2700);
    let log = file(&logs, "m.log", 0o2600);
    open_log(&log).unwrap();
    let mode = std::fs::metadata(&log).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o2600);
}

/// `/` is never made a private log directory: as root it counts as "ours", and 0700 on it
/// would lock every other user out of the system. Its mode is left as it was.
#[test]
fn the_root_directory_is_never_made_private() {
    use std::os::unix::fs::MetadataExt;
    let before = std::fs::metadata("/").unwrap().mode();
    let answer = private_dir(Path::new("/"));
    let after = std::fs::metadata("/").unwrap().mode();
    if after != before {
        // Without the guard, as root: put the machine back before failing.
        std::fs::set_permissions("/", std::fs::Permissions::from_mode(before & 0o7777)).unwrap();
    }
    assert_eq!(after, before, "/ was made private");
    let refused = answer.unwrap_err().to_string();
    if nix::unistd::geteuid().is_root() {
        assert!(
            refused.starts_with("the root directory / cannot be a private log directory"),
            "{refused}"
        );
    }
}
