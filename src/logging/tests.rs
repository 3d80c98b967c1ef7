use super::*;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

fn log_in(dir: &Path, limit: u64) -> (PathBuf, RotatingLog) {
    let path = dir.join("m.log");
    let file = crate::files::open_log(&path).unwrap();
    (path.clone(), RotatingLog::new(path, file, limit, false))
}

fn size(path: &Path) -> u64 {
    std::fs::symlink_metadata(path).map_or(0, |m| m.len())
}

fn line(n: usize) -> Vec<u8> {
    format!("line {n:04} of the log, a little padding\n").into_bytes()
}

#[test]
fn the_log_rotates_past_its_limit_and_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut log) = log_in(dir.path(), 400);
    let old = dir.path().join("m.log.1");
    for n in 0..200 {
        log.write_all(&line(n)).unwrap();
        assert!(size(&path) <= 400, "the log grew to {}", size(&path));
        assert!(size(&old) <= 400);
    }
    // The newest line is in the log, the ones just before it in `.1`, the oldest gone.
    let now = std::fs::read_to_string(&path).unwrap();
    let before = std::fs::read_to_string(&old).unwrap();
    assert!(
        now.ends_with(&String::from_utf8(line(199)).unwrap()),
        "{now}"
    );
    assert!(!before.contains("line 0000"), "{before}");
    assert!(!before.is_empty());
    for p in [&path, &old] {
        let mode = std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", p.display());
    }
}

#[test]
fn a_log_that_cannot_rotate_is_truncated_instead() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut log) = log_in(dir.path(), 400);
    // A directory where the old log would go: the rename fails.
    std::fs::create_dir(dir.path().join("m.log.1")).unwrap();
    for n in 0..200 {
        log.write_all(&line(n)).unwrap();
        assert!(size(&path) <= 400, "the log grew to {}", size(&path));
    }
    let now = std::fs::read_to_string(&path).unwrap();
    assert!(
        now.ends_with(&String::from_utf8(line(199)).unwrap()),
        "{now}"
    );
}

#[test]
fn rotation_replaces_a_planted_link_and_never_writes_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut log) = log_in(dir.path(), 100);
    let outside = dir.path().join("outside");
    std::fs::write(&outside, "untouched").unwrap();
    std::os::unix::fs::symlink(&outside, dir.path().join("m.log.1")).unwrap();
    for n in 0..10 {
        log.write_all(&line(n)).unwrap();
    }
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "untouched");
    assert!(std::fs::symlink_metadata(dir.path().join("m.log.1"))
        .unwrap()
        .is_file());
    assert!(size(&path) <= 100);
}

#[test]
fn default_paths_follow_xdg_and_distrust_the_environment() {
    let mp = Path::new("/home/u/.s3creds");
    let path = |home: Option<&str>, state: Option<&str>| {
        default_log_path(home.map(OsStr::new), state.map(OsStr::new), mp)
    };
    assert_eq!(
        path(Some("/home/u"), None).unwrap(),
        (
            PathBuf::from("/home/u/.local/state/s3credsfs/s3creds.log"),
            Some(PathBuf::from("/home/u"))
        )
    );
    assert_eq!(
        path(Some("/home/u"), Some("/var/state")).unwrap(),
        (PathBuf::from("/var/state/s3credsfs/s3creds.log"), None)
    );
    // A relative XDG_STATE_HOME is ignored; a relative HOME is no home.
    assert_eq!(
        path(Some("/home/u"), Some("state")).unwrap().0,
        PathBuf::from("/home/u/.local/state/s3credsfs/s3creds.log")
    );
    for (home, state) in [(None, None), (Some("home/u"), Some("")), (Some(""), None)] {
        let err = path(home, state).unwrap_err().to_string();
        assert!(err.contains("pass --log-file FILE"), "{err}");
    }
}

#[test]
fn each_mountpoint_has_its_own_log_name() {
    let home = Some(Path::new("/home/u"));
    let a = log_name(Path::new("/a/creds"), home);
    let b = log_name(Path::new("/b/creds"), home);
    assert!(a.starts_with("creds-") && a.ends_with(".log"), "{a}");
    assert_ne!(a, b);
    assert_eq!(a, log_name(Path::new("/a/creds"), home), "stable");
    // Whatever the mountpoint is called, the name stays one plain file name.
    for hostile in ["/x/../..", "/x/a\nb c", "/", "/x/...", "/x/é\u{202e}"] {
        let name = log_name(Path::new(hostile), home);
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
            "{name:?}"
        );
        assert!(!name.starts_with('.') && name.len() < 64, "{name:?}");
    }
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_panic_is_logged_by_place_without_its_message() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let previous = std::panic::take_hook();
    install_panic_hook();
    let result = tracing::subscriber::with_default(subscriber, || {
        std::panic::catch_unwind(|| {
            let token = "eyJhbGciOiJSUzI1NiJ9.payload-secret";
            panic!("unexpected {token}");
        })
    });
    std::panic::set_hook(previous);
    assert!(result.is_err());
    let logged = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("internal error (a bug in s3credsfs)"),
        "{logged}"
    );
    assert!(logged.contains("src/logging/tests.rs:"), "{logged}");
    assert!(!logged.contains("payload-secret"), "{logged}");
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    use std::ffi::OsStr;
    assert!(colour(None, true));
    assert!(!colour(None, false), "a pipe, a file or the journal");
    assert!(!colour(Some(OsStr::new("1")), true));
    assert!(!colour(Some(OsStr::new("0")), true), "any non-empty value");
    assert!(
        colour(Some(OsStr::new("")), true),
        "an empty NO_COLOR is unset"
    );
}

/// The filter's directives, in order-independent form.
fn directives(filter: &EnvFilter) -> Vec<String> {
    let mut all: Vec<String> = filter.to_string().split(',').map(str::to_string).collect();
    all.sort();
    all
}

#[test]
fn a_level_applies_to_our_code_and_directives_are_taken_whole() {
    let ours = |level: &str| directives(&EnvFilter::new(format!("warn,s3credsfs={level}")));
    assert_eq!(directives(&filter(None, "info")), ours("info"));
    assert_eq!(directives(&filter(Some("  "), "info")), ours("info"));
    assert_eq!(directives(&filter(Some(" debug "), "info")), ours("debug"));
    // Directives (a `=` or a `,`) are used as they are, libraries included.
    assert_eq!(
        directives(&filter(Some("s3credsfs=trace"), "info")),
        ["s3credsfs=trace"]
    );
    assert_eq!(
        directives(&filter(Some("error,hyper=debug"), "info")),
        ["error", "hyper=debug"]
    );
    // What is not a filter falls back to the default level.
    assert_eq!(
        directives(&filter(Some("s3credsfs=[[["), "warn")),
        ours("warn")
    );
}

#[test]
fn the_daemon_s_log_rotates_at_1_mib_as_the_readme_says() {
    assert_eq!(LOG_LIMIT, 1 << 20);
}

#[test]
fn rotation_happens_only_past_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut log) = log_in(dir.path(), 100);
    let old = dir.path().join("m.log.1");
    // A first line longer than the limit is written whole into the empty file.
    log.write_all(&[b'a'; 150]).unwrap();
    assert_eq!((size(&path), old.exists()), (150, false));
    // The next write rotates; then the file fills to exactly the limit without rotating.
    log.write_all(&[b'b'; 60]).unwrap();
    assert_eq!((size(&path), size(&old)), (60, 150));
    log.write_all(&[b'c'; 40]).unwrap();
    assert_eq!((size(&path), size(&old)), (100, 150));
    // One byte past the limit rotates.
    log.write_all(b"d").unwrap();
    assert_eq!((size(&path), size(&old)), (1, 100));
    assert_eq!(std::fs::read(&path).unwrap(), b"d");
}

#[test]
fn same_file_means_the_same_inode() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&a, "x").unwrap();
    std::fs::write(&b, "x").unwrap();
    let link = dir.path().join("link");
    std::fs::hard_link(&a, &link).unwrap();
    let open = |p: &Path| File::open(p).unwrap();
    assert!(same_file(&open(&a), &open(&a)));
    assert!(same_file(&open(&a), &open(&link)), "one inode, two names");
    assert!(!same_file(&open(&a), &open(&b)), "same content, two files");
}

#[test]
fn log_names_are_bounded_and_never_empty() {
    let home = Some(Path::new("/home/u"));
    // Not the default mountpoint, though under the same home.
    let other = log_name(Path::new("/home/u/.s3creds2"), home);
    assert!(other.starts_with("s3creds2-"), "{other}");
    assert_eq!(log_name(Path::new("/home/u/.s3creds"), home), "s3creds.log");
    assert_eq!(log_name(Path::new("/home/u/.s3creds"), None).len(), 20);
    let dots = log_name(Path::new("/x/..."), home);
    assert!(dots.starts_with("mount-") && dots.len() == 18, "{dots}");
    let long = log_name(Path::new(&format!("/x/{}", "n".repeat(100))), home);
    assert_eq!(long, format!("{}-{}", "n".repeat(40), &long[41..]));
    assert_eq!(long.len(), 40 + 1 + 8 + 4);
}

#[test]
fn log_formats_are_text_and_json() {
    assert_eq!(LogFormat::parse("json"), Some(LogFormat::Json));
    assert_eq!(LogFormat::parse(" Text "), Some(LogFormat::Text));
    assert_eq!(LogFormat::parse("yaml"), None);
    assert_eq!(LogFormat::default(), LogFormat::Text);
}

/// The default log is made under HOME, private, and opened; a HOME that is no directory
/// is said to be one, and nothing is created for it.
#[test]
fn the_default_log_is_made_private_under_home() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().canonicalize().unwrap();
    let (path, _file) =
        open_default_log_in(Some(home.as_os_str()), None, &home.join(".s3creds")).unwrap();
    assert_eq!(path, home.join(".local/state/s3credsfs/s3creds.log"));
    for (p, private) in [
        (&path, 0o600),
        (&home.join(".local/state/s3credsfs"), 0o700),
    ] {
        let mode = std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, private, "{}", p.display());
    }
    let not_a_dir = home.join("file");
    std::fs::write(&not_a_dir, "").unwrap();
    let err = open_default_log_in(Some(not_a_dir.as_os_str()), None, Path::new("/m"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "HOME ({}) is not a directory; set HOME or pass --log-file FILE",
            not_a_dir.display()
        )
    );
    let missing = home.join("missing");
    assert!(open_default_log_in(Some(missing.as_os_str()), None, Path::new("/m")).is_err());
    assert!(!missing.exists(), "a missing HOME is not created");
}
