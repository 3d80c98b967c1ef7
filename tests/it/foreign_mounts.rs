//! `status`, `unmount` and `mount` leave alone what is not this user's s3credsfs: another
//! filesystem, or an s3credsfs mounted by another user (whose status file would otherwise
//! steer `unmount` to signal a pid of their choosing). Each test works in a private mount
//! namespace, so nothing it mounts is seen outside.

use crate::common;

use common::mount::*;
use common::namespace::*;
use common::text;
use std::process::Output;

/// Runs `s3credsfs ARGS PATH` as root inside `ns`, tagged for `guard`.
fn run_as_root(ns: &FuseNamespace, guard: &BackgroundMount, args: &[&str]) -> Output {
    let mut cmd = guard.bin();
    cmd.args(args)
        .arg(&guard.path)
        .env("PW", s3credsfs::dev::gateway::DEFAULT_PASSWORD)
        .stdin(std::process::Stdio::null());
    ns.run(None, move || cmd.output().unwrap())
}

fn assert_refused(out: &Output, expected: &str) {
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(expected), "{stderr}");
}

/// Mounts a tmpfs at `path`; called inside a namespace's `run`, so only it sees the mount.
fn mount_tmpfs(path: &std::path::Path) {
    let target = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: valid strings; a tmpfs only this namespace sees.
    let mounted = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    assert_eq!(mounted, 0, "{}", std::io::Error::last_os_error());
}

#[test]
fn another_filesystem_is_left_alone() {
    let ns = FuseNamespace::new((0, 0), false);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("creds");
    std::fs::create_dir(&path).unwrap();
    let at = path.clone();
    ns.run(None, move || mount_tmpfs(&at));
    let guard = BackgroundMount::new(&path);
    let not_ours = format!(
        "{} is a tmpfs mount, not s3credsfs; leaving it alone",
        path.display()
    );
    assert_refused(&run_as_root(&ns, &guard, &["status"]), &not_ours);
    assert_refused(&run_as_root(&ns, &guard, &["unmount"]), &not_ours);
    let gateway = ["--api-gateway", "http://127.0.0.1:9", "--username", "dev"];
    let mount: Vec<&str> = ["mount", "--lazy", "--password-env", "PW"]
        .into_iter()
        .chain(gateway)
        .collect();
    assert_refused(
        &run_as_root(&ns, &guard, &mount),
        &format!(
            "{} is already mounted (tmpfs); choose another directory",
            path.display()
        ),
    );
    let line = ns.mount_line(&path).expect("the tmpfs is still mounted");
    assert!(
        line.contains(" - tmpfs "),
        "only the tmpfs is there: {line}"
    );
}

#[test]
fn another_users_s3credsfs_is_left_alone() {
    let gw = TestGateway::start(|_| {});
    let mut theirs = UserMount::new(FuseNamespace::new(NOBODY, false));
    theirs.start(&gw);
    let guard = BackgroundMount::new(&theirs.path);
    let not_ours = format!(
        "{} is the s3credsfs mount of user nobody (uid {}), not one of yours; leaving it alone (run this as that user)",
        theirs.path.display(),
        NOBODY.0
    );
    assert_refused(&run_as_root(&theirs.ns, &guard, &["status"]), &not_ours);
    assert_refused(&run_as_root(&theirs.ns, &guard, &["unmount"]), &not_ours);
    // Their daemon still serves them, untouched.
    assert!(theirs.child.as_mut().unwrap().try_wait().unwrap().is_none());
    let path = theirs.path.clone();
    let served = theirs.ns.run(Some(NOBODY), move || {
        std::fs::read_to_string(path.join("json"))
    });
    assert!(served.unwrap().contains("AccessKeyId"));
    assert!(theirs.mount_line().is_some());
}

/// A tmpfs at the mountpoint holding a copy of a real mount's files, with a key of the
/// neighbour's choosing: `exec` must not hand that to the command (nor the endpoint the
/// look-alike names), but say what is there and fetch its own.
#[test]
fn exec_takes_no_keys_from_a_look_alike_of_the_mount() {
    let gw = TestGateway::start(|_| {});
    let real = Mounted::start(&gw, &[]);
    let json = real.read("json").unwrap();
    let real_key = real.access_key();
    let planted_key = format!("PLANTED{}", &real_key[7..]);
    let planted = json.replace(&real_key, &planted_key);
    assert_ne!(planted, json);
    let files = [
        ("status", real.read("status").unwrap()),
        ("config", real.read("config").unwrap()),
        ("json", planted),
    ];
    let ns = FuseNamespace::new((0, 0), false);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("creds");
    std::fs::create_dir(&path).unwrap();
    let at = path.clone();
    ns.run(None, move || {
        mount_tmpfs(&at);
        for (name, text) in files {
            std::fs::write(at.join(name), text).unwrap();
        }
    });
    let issued = gw.stats().sts_issued;
    let mut cmd = bin();
    cmd.args(["exec", "--mountpoint", path.to_str().unwrap()])
        .args(login_args(&gw))
        .args(["--", "env"])
        .env("PW", s3credsfs::dev::gateway::DEFAULT_PASSWORD)
        .stdin(std::process::Stdio::null());
    let out = ns.run(None, move || cmd.output().unwrap());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("AWS_ACCESS_KEY_ID="))
        .expect("the command got keys");
    assert_ne!(key, planted_key, "the look-alike's key reached the command");
    assert!(
        stderr.contains(&format!(
            "{} is a tmpfs mount, not s3credsfs; fetching credentials instead",
            path.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        gw.stats().sts_issued,
        issued + 1,
        "fetched from the gateway"
    );
    let line = ns.mount_line(&path).expect("the tmpfs is still mounted");
    assert!(line.contains(" - tmpfs "), "{line}");
}
