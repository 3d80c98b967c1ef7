//! Mounts by a user other than root. fusermount3 opens `/dev/fuse` as the calling user, so
//! an unprivileged mount works only where the device is open to that user (as distributions
//! ship it, mode 0666). Each test runs in a private mount namespace whose `/dev/fuse` is a
//! node the test sets up: open to `nobody` (the mount works, is theirs alone, and unmounts)
//! or root-only 0600 like this machine's (the error names it), or with fusermount3 hidden.

use crate::common;

use common::mount::*;
use common::namespace::*;
use common::text;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The setuid helper must be installed: these tests fail rather than skip without it.
fn require_fusermount3() -> PathBuf {
    let helper = ["/usr/bin/fusermount3", "/bin/fusermount3"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("fusermount3 is not installed, so unprivileged mounts cannot be tested; run scripts/venv as root (it installs the fuse3 package)");
    let meta = std::fs::metadata(&helper).unwrap();
    assert!(
        meta.uid() == 0 && meta.permissions().mode() & 0o4000 != 0,
        "{} is not setuid root; reinstall the fuse3 package (scripts/venv installs it)",
        helper.display()
    );
    helper
}

/// What `user` (root when `None`) gets from stat, read and list in the mount.
fn access_errnos(m: &UserMount, user: Option<(u32, u32)>) -> [Option<i32>; 3] {
    let path = m.path.clone();
    m.ns.run(user, move || {
        [
            errno(std::fs::metadata(path.join("json"))),
            errno(std::fs::read_to_string(path.join("json"))),
            errno(std::fs::read_dir(&path)),
        ]
    })
}

#[test]
fn a_users_mount_goes_through_fusermount3_and_is_theirs_alone() {
    require_fusermount3();
    let gw = TestGateway::start(|_| {});
    let mut m = UserMount::new(FuseNamespace::new(NOBODY, false));
    m.start(&gw);
    // Type fuse.s3credsfs: mounted by the helper (fuser's own mount(2) says plain "fuse").
    let line = m.mount_line().unwrap();
    assert!(
        line.contains(" - fuse.s3credsfs s3credsfs ") && line.contains("user_id=65534,"),
        "{line}"
    );

    let path = m.path.clone();
    let (json, names) = m.ns.run(Some(NOBODY), move || {
        let json = std::fs::read_to_string(path.join("json")).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        (json, names)
    });
    assert!(json.contains("\"AccessKeyId\""), "{json}");
    assert!(
        ["credentials", "env", "json", "status"]
            .iter()
            .all(|n| names.iter().any(|have| have == n)),
        "{names:?}"
    );

    let denied = [Some(libc::EACCES); 3];
    assert_eq!(access_errnos(&m, Some(OTHER_USER)), denied, "another user");
    assert_eq!(access_errnos(&m, None), denied, "root");

    // SIGTERM: the user's daemon unmounts through the helper and exits cleanly.
    m.signal(libc::SIGTERM);
    let status = m.wait_exit();
    assert!(status.success(), "{status}\n{}", m.log());
    assert_eq!(m.mount_line(), None, "{}", m.log());
}

#[test]
fn the_user_unmounts_and_clears_stale_mounts_without_root() {
    require_fusermount3();
    let gw = TestGateway::start(|_| {});
    let mut m = UserMount::new(FuseNamespace::new(NOBODY, false));
    let path = m.path.to_str().unwrap().to_string();
    m.start(&gw);
    let out = m.output(m.command(&["unmount", &path]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("s3credsfs: unmounted {path}\n"));
    assert!(m.wait_exit().success(), "{}", m.log());
    assert_eq!(m.mount_line(), None);

    // A killed daemon leaves a stale mount; mounting again clears it and mounts.
    m.start(&gw);
    m.signal(libc::SIGKILL);
    m.wait_exit();
    let probe = m.path.clone();
    assert_eq!(
        m.ns.run(Some(NOBODY), move || errno(
            nix::sys::statfs::statfs(&probe).map_err(std::io::Error::from)
        )),
        Some(libc::ENOTCONN),
        "the mount should be stale"
    );
    m.start(&gw);
    assert!(
        m.log().contains(&format!(
            "clearing the stale mount at {path} left by a daemon that died"
        )),
        "{}",
        m.log()
    );

    // `s3credsfs unmount` clears a stale mount too.
    m.signal(libc::SIGKILL);
    m.wait_exit();
    let out = m.output(m.command(&["unmount", &path]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("s3credsfs: cleared the stale mount at {path}\n")
    );
    assert_eq!(m.mount_line(), None);
}

/// docs/troubleshooting.md's exit statuses: FUSE is unavailable (72), a setting is wrong (78).
const FUSE_UNAVAILABLE: i32 = 72;
const WRONG_SETTING: i32 = 78;

/// Runs `mount --foreground` as nobody and expects it to fail before mounting or fetching.
/// `status` is the exit status it must end with.
fn mount_fails(m: &UserMount, gw: &TestGateway, env: &[(&str, &str)], status: i32) -> String {
    let mut cmd = m.command(&["mount", m.path.to_str().unwrap(), "--foreground"]);
    cmd.args(login_args(gw)).envs(env.iter().copied());
    let out = m.output(cmd);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "the mount should fail:\n{stderr}");
    assert_eq!(m.mount_line(), None, "nothing may stay mounted:\n{stderr}");
    assert_eq!(out.status.code(), Some(status), "{stderr}");
    assert_eq!(
        gw.stats().token_requests,
        0,
        "it should fail before logging in"
    );
    stderr
}

#[test]
fn a_dev_fuse_closed_to_the_user_is_named() {
    require_fusermount3();
    let gw = TestGateway::start(|_| {});
    // Root-only 0600, as on this machine: fusermount3 could not open it either.
    let m = UserMount::new(FuseNamespace::new((0, 0), false));
    let stderr = mount_fails(&m, &gw, &[], FUSE_UNAVAILABLE);
    assert!(
        stderr.contains(
            "/dev/fuse (mode 0600, owner uid 0) is not open to uid 65534, and fusermount3 opens it as the calling user too, so this user cannot mount FUSE filesystems; ask an administrator to `chmod 0666 /dev/fuse` (the usual mode) or mount as root"
        ),
        "{stderr}"
    );
}

#[test]
fn a_missing_fusermount3_is_named() {
    require_fusermount3();
    let gw = TestGateway::start(|_| {});
    let m = UserMount::new(FuseNamespace::new(NOBODY, true));
    let stderr = mount_fails(&m, &gw, &[], FUSE_UNAVAILABLE);
    assert!(
        stderr.contains(
            "a user other than root mounts through the setuid fusermount3 and none was found in PATH, /sbin or /bin; install the fuse3 package (or mount as root)"
        ),
        "{stderr}"
    );
    let missing = Path::new("/nonexistent/fusermount3");
    // A setting that names no helper is a wrong setting.
    let stderr = mount_fails(
        &m,
        &gw,
        &[("FUSERMOUNT_PATH", missing.to_str().unwrap())],
        WRONG_SETTING,
    );
    assert!(
        stderr.contains(
            "FUSERMOUNT_PATH names /nonexistent/fusermount3, which is not an executable file; point it at the setuid fusermount3 or unset it"
        ),
        "{stderr}"
    );
}
