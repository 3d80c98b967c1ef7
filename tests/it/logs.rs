//! Where a mount's log goes: a background daemon without `--log-file` writes a private file
//! under `$XDG_STATE_HOME/s3credsfs/` (else `~/.local/state/s3credsfs/`), one per
//! mountpoint, that `status` names; `--foreground` keeps stderr. Real mounts.

use crate::common;

use common::mount::*;
use common::{text, wait_for};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `mount --dev` in the background at the guard's path (none: the default) with `env`.
fn mount_dev(guard: &BackgroundMount, at: Option<&Path>, env: &[(&str, &Path)]) -> Output {
    let mut cmd = guard.bin();
    cmd.args(["mount", "--dev"]);
    if let Some(path) = at {
        cmd.arg(path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    out
}

/// The single log file in `dir`.
fn only_log_in(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{} ({e})", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().unwrap()
}

#[test]
fn a_background_daemon_logs_to_a_private_file_that_status_names() {
    let home = tempfile::tempdir().unwrap();
    let guard = BackgroundMount::new(&home.path().join(".s3creds"));
    mount_dev(&guard, None, &[("HOME", home.path())]);
    let log = home.path().join(".local/state/s3credsfs/s3creds.log");
    wait_for(
        "the log to mention the fetch",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("obtained S3 credentials")
        },
    );
    assert_eq!(mode(&log), 0o600, "the log file is private");
    for dir in [".local", ".local/state", ".local/state/s3credsfs"] {
        assert_eq!(mode(&home.path().join(dir)), 0o700, "{dir}");
    }
    let json = std::fs::read_to_string(guard.path.join("json")).unwrap();
    let creds: serde_json::Value = serde_json::from_str(&json).unwrap();
    let logged = std::fs::read_to_string(&log).unwrap();
    let first = logged.lines().next().unwrap_or_default();
    assert!(
        first.contains("s3credsfs starting") && first.contains(&format!("log={}", log.display())),
        "{first}"
    );
    assert!(!logged.contains(creds["SecretAccessKey"].as_str().unwrap()));
    assert!(!logged.contains(creds["SessionToken"].as_str().unwrap()));

    let screen = bin().arg("status").arg(&guard.path).output().unwrap();
    let screen = text(&screen.stdout);
    assert!(
        screen.contains(&format!("log:          {}\n", log.display())),
        "{screen}"
    );
    let json = bin()
        .args(["status", "--json"])
        .arg(&guard.path)
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["log_file"], log.display().to_string());
}

#[test]
fn xdg_state_home_is_used_only_when_absolute_and_mounts_do_not_share_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let (home, state, cwd) = (
        dir.path().join("home"),
        dir.path().join("state"),
        dir.path().join("cwd"),
    );
    for d in [&home, &cwd] {
        std::fs::create_dir(d).unwrap();
    }
    let a = BackgroundMount::new(&dir.path().join("a/creds"));
    std::fs::create_dir(dir.path().join("a")).unwrap();
    mount_dev(
        &a,
        Some(&a.path),
        &[("HOME", &home), ("XDG_STATE_HOME", &state)],
    );
    // A relative XDG_STATE_HOME is ignored (it would name a directory under wherever the
    // daemon was started).
    let b = BackgroundMount::new(&dir.path().join("b/creds"));
    std::fs::create_dir(dir.path().join("b")).unwrap();
    let mut cmd = b.bin();
    let out = cmd
        .args(["mount", "--dev"])
        .arg(&b.path)
        .env("HOME", &home)
        .env("XDG_STATE_HOME", "state")
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    let log_a = only_log_in(&state.join("s3credsfs"));
    let log_b = only_log_in(&home.join(".local/state/s3credsfs"));
    assert!(
        !cwd.join("state").exists(),
        "a relative XDG_STATE_HOME was used"
    );
    let (name_a, name_b) = (log_a.file_name().unwrap(), log_b.file_name().unwrap());
    assert_ne!(name_a, name_b, "two mounts named creds share a log name");
    for log in [&log_a, &log_b] {
        assert_eq!(mode(log), 0o600);
        wait_for("the log to be written", Duration::from_secs(10), || {
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .contains("obtained S3 credentials")
        });
    }
}

#[test]
fn a_link_planted_at_the_default_log_is_never_written_through() {
    let home = tempfile::tempdir().unwrap();
    let logs = home.path().join(".local/state/s3credsfs");
    std::fs::create_dir_all(&logs).unwrap();
    let elsewhere = home.path().join("elsewhere");
    std::fs::write(&elsewhere, "untouched").unwrap();
    std::os::unix::fs::symlink(&elsewhere, logs.join("s3creds.log")).unwrap();
    let guard = BackgroundMount::new(&home.path().join(".s3creds"));
    let out = mount_dev(&guard, None, &[("HOME", home.path())]);
    // The mount goes on without a log, and says so once.
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "s3credsfs: warning: the daemon keeps no log: cannot open the log file {} (it is a symbolic link); remove it or pass --log-file FILE",
            logs.join("s3creds.log").display()
        )),
        "{stderr}"
    );
    assert!(std::fs::read_to_string(guard.path.join("json"))
        .unwrap()
        .contains("AccessKeyId"));
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(guard.path.join("status")).unwrap()).unwrap();
    assert_eq!(status["log_file"], serde_json::Value::Null);
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "untouched");
}

#[test]
fn the_foreground_logs_to_stderr_and_creates_no_log_file() {
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &[]);
    assert_eq!(m.status()["log_file"], serde_json::Value::Null);
    assert!(m.log().contains("obtained S3 credentials"), "{}", m.log());
    // The one line for a person at the terminal: where, until when, and how to stop.
    let shown = m.path.display();
    let said = m
        .log()
        .lines()
        .find(|l| l.starts_with("s3credsfs: mounted at "))
        .map(str::to_string);
    assert!(
        said.as_deref().is_some_and(|l| l.starts_with(&format!(
            "s3credsfs: mounted at {shown} (credentials valid until "
        )) && l.ends_with(&format!(
            "); stop with Ctrl-C or `s3credsfs unmount {shown}`"
        ))),
        "{}",
        m.log()
    );
    // HOME is the mountpoint's parent (see Mounted::start).
    let home = m.path.parent().unwrap();
    assert!(!home.join(".local").exists());
}

#[test]
fn a_home_that_does_not_exist_is_not_created_for_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("gone");
    let guard = BackgroundMount::new(&dir.path().join("creds"));
    let out = mount_dev(&guard, Some(&guard.path), &[("HOME", &home)]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "s3credsfs: warning: the daemon keeps no log: HOME ({}) is not a directory; set HOME or pass --log-file FILE",
            home.display()
        )),
        "{stderr}"
    );
    assert!(!home.exists(), "HOME was created");
    assert!(std::fs::read_to_string(guard.path.join("json"))
        .unwrap()
        .contains("AccessKeyId"));
}

/// An `XDG_STATE_HOME` inside a directory another user owns: they could swap the log
/// directory for a link while the daemon runs (rotation reopens by name). It is checked as
/// a mountpoint is, and refused; the mount goes on without a log and says why.
#[test]
fn a_log_directory_another_user_could_swap_is_not_used() {
    common::require_root("it gives a directory to another user");
    let home = tempfile::tempdir().unwrap();
    let theirs = home.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65533), Some(65533)).unwrap();
    let state = theirs.join("state");
    let guard = BackgroundMount::new(&home.path().join(".s3creds"));
    let env = [("HOME", home.path()), ("XDG_STATE_HOME", state.as_path())];
    let out = mount_dev(&guard, None, &env);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "s3credsfs: warning: the daemon keeps no log: {} lies under {}, which belongs to user id 65533, who could swap what is in it; set XDG_STATE_HOME to a directory of your own, or pass --log-file FILE",
            state.join("s3credsfs").display(),
            theirs.display()
        )),
        "{stderr}"
    );
    assert!(!state.exists(), "nothing was made in their directory");
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(guard.path.join("status")).unwrap()).unwrap();
    assert_eq!(status["log_file"], serde_json::Value::Null);
}

/// `getxattr(2)` of `name` on `path`: the errno it fails with, `None` if it succeeds.
fn getxattr(path: &Path, name: &str) -> Option<i32> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let c_name = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: valid C strings and a buffer of the length given.
    let n = unsafe {
        libc::getxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n < 0).then(|| std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// What the kernel asks on `ls -l` and an SDK's stat (extended attributes) and on
/// `lsattr` (an ioctl) is answered as by any filesystem without them, and logs no
/// warning: a warning in the log is for something someone must act on.
#[test]
fn the_kernels_ordinary_requests_log_no_warning() {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &[]);
    let ls = std::process::Command::new("ls")
        .arg("-la")
        .arg(&m.path)
        .output()
        .unwrap();
    assert!(ls.status.success(), "{}", text(&ls.stderr));
    let errno = || std::io::Error::last_os_error().raw_os_error();
    for path in [m.path.clone(), m.file("credentials")] {
        let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
        for name in ["security.selinux", "system.posix_acl_access", "user.x"] {
            let c_name = CString::new(name).unwrap();
            assert_eq!(
                getxattr(&path, name),
                Some(libc::ENODATA),
                "{path:?} {name}"
            );
            let buf = [0u8; 64];
            // SAFETY: valid C strings and an empty value.
            let n = unsafe {
                libc::setxattr(c_path.as_ptr(), c_name.as_ptr(), buf.as_ptr().cast(), 0, 0)
            };
            assert_eq!(n, -1, "{path:?} {name}");
        }
        // SAFETY: a null buffer of size 0 asks for the size only.
        let n = unsafe { libc::listxattr(c_path.as_ptr(), std::ptr::null_mut(), 0) };
        assert_eq!(n, 0, "{path:?}: no attributes ({:?})", errno());
        let mut buf = [0u8; 64];
        // SAFETY: a buffer of the length given.
        let n = unsafe { libc::listxattr(c_path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(n, 0, "{path:?}: an empty list ({:?})", errno());
    }
    let file = std::fs::File::open(m.file("credentials")).unwrap();
    let mut flags: libc::c_long = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one long to the pointer given.
    let n = unsafe { libc::ioctl(file.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
    assert_eq!((n, errno()), (-1, Some(libc::ENOTTY)));
    drop(file);
    let log = m.log();
    assert!(
        !log.contains("WARN") && !log.contains("Not Implemented"),
        "{log}"
    );
}

/// Every failed request is in the log with its name and errno, as mountpoint-s3 logs
/// them; a read-only filesystem's ordinary answers at debug level, never as a warning.
#[test]
fn failed_requests_are_logged_by_name_and_errno() {
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start_with_env(&gw, &[], &[("S3CREDSFS_LOG", "debug")]);
    let missing = std::fs::metadata(m.file("nope")).unwrap_err();
    assert_eq!(missing.raw_os_error(), Some(libc::ENOENT));
    assert_eq!(getxattr(&m.file("json"), "user.x"), Some(libc::ENODATA));
    let log = m.log();
    for want in [
        "lookup failed: ENOENT: No such file or directory",
        "getxattr failed: ENODATA: No data available",
    ] {
        let line = log.lines().find(|l| l.contains(want));
        let line = line.unwrap_or_else(|| panic!("no {want:?} in {log}"));
        assert!(line.contains("DEBUG") && line.contains("errno="), "{line}");
    }
    assert!(!log.contains("WARN"), "{log}");
}

/// The first line of a mount's log says what runs: version, build, the config file, the
/// profiles, the mountpoint and where the log goes.
#[test]
fn the_first_log_line_says_what_runs_from_which_configuration() {
    let gw = TestGateway::start(|_| {});
    let base = gw.gw.base_url();
    let config = format!(
        "username = \"dev\"\npassword-env = \"PW\"\ndefault-profile = \"prod\"\n\
         [profiles.prod]\napi-gateway = \"{base}\"\n[profiles.tds]\napi-gateway = \"{base}\"\n"
    );
    let m = Mounted::start_configured(&config, &[]);
    let log = m.log();
    let first = log.lines().next().unwrap_or_default();
    let config_file = m.path.parent().unwrap().join("config.toml");
    for field in [
        format!("version={}", env!("CARGO_PKG_VERSION")),
        "build=development (with the built-in gateway)".to_string(),
        format!("config={}", config_file.display()),
        "profiles=prod, tds".to_string(),
        format!("mountpoint={}", m.path.display()),
        "log=stderr".to_string(),
    ] {
        assert!(first.contains(&field), "{field} in {first}\n{log}");
    }
    assert!(first.contains("s3credsfs starting"), "{first}");
}

/// A mount with `--log-format json` writes nothing but JSON objects, one per line, on
/// stderr too; the start line's facts and the profile are fields.
#[test]
fn a_json_log_is_one_object_per_line() {
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &["--log-format", "json"]);
    m.read("credentials").unwrap();
    let log = m.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{log}"))
        })
        .collect();
    assert!(lines.iter().all(|l| l.is_object()), "{log}");
    let start = &lines[0];
    assert_eq!(start["fields"]["message"], "s3credsfs starting", "{log}");
    assert_eq!(start["fields"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(start["fields"]["log"], "stderr");
    let obtained = lines
        .iter()
        .find(|l| l["fields"]["message"] == "obtained S3 credentials")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(obtained["span"]["profile"], "default", "{obtained}");
    assert!(
        lines.iter().any(|l| l["fields"]["message"] == "mounted"),
        "{log}"
    );
    let json: serde_json::Value = serde_json::from_str(&m.read("json").unwrap()).unwrap();
    for secret in [&json["SecretAccessKey"], &json["SessionToken"]] {
        assert!(!log.contains(secret.as_str().unwrap()));
    }
}

/// A gateway whose clock is 2 h ahead: the mount's log warns with both times and the
/// fix, and `status` (the document and the screen) shows the warning too.
#[test]
fn a_skewed_gateway_clock_is_in_the_log_and_in_status() {
    let gw = TestGateway::start(|c| c.date_offset_seconds = 7200);
    let m = Mounted::start(&gw, &[]);
    let log = m.log();
    let warned: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warned.len(), 1, "{log}");
    assert!(
        warned[0].contains("this host's clock is 2h behind the gateway's")
            && warned[0].contains("sync this host's clock (chronyd or NTP"),
        "{log}"
    );
    let doc = m.status();
    assert!(
        doc["clock_warning"]
            .as_str()
            .unwrap_or_default()
            .starts_with("this host's clock is 2h behind the gateway's"),
        "{doc}"
    );
    let out = bin().arg("status").arg(&m.path).output().unwrap();
    let screen = text(&out.stdout);
    assert!(
        screen.contains("clock:        this host's clock is 2h behind the gateway's"),
        "{screen}"
    );
    // A gateway in step: no clock line.
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &[]);
    assert!(m.status().get("clock_warning").is_none());
}
