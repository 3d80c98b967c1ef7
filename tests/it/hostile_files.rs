//! Files a user points us at, as a neighbour could have left them: each is refused with
//! a sentence naming the file and the fix, before anything is sent anywhere.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    let mut cmd = Command::new(crate::common::exe());
    cmd.env_clear()
        .envs(common::clean_env())
        .stdin(Stdio::null());
    cmd
}

fn file(dir: &Path, name: &str, content: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// Runs `fetch` against a gateway that records every connection, with `args`.
fn fetch(args: &[&str]) -> (Output, common::Recorder) {
    let gateway = common::Recorder::start();
    let out = bin()
        .args(["fetch", "--api-gateway", &gateway.url])
        .args(args)
        .output()
        .unwrap();
    (out, gateway)
}

fn assert_refused(out: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {stderr}");
    assert!(stderr.contains(expected), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

#[test]
fn secret_files_open_to_group_or_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [0o640, 0o620, 0o604, 0o602] {
        let pw = file(dir.path(), &format!("pw{mode:o}"), "pw", mode);
        let pw = pw.to_str().unwrap();
        let (out, gw) = fetch(&["--username", "dev", "--password-file", pw]);
        assert_refused(&out, &format!("the password file {pw} is accessible by group or others (mode {mode:04o}); run `chmod 600 {pw}`"));
        let (out2, gw2) = fetch(&["--client-secret-file", pw]);
        assert_refused(
            &out2,
            &format!(
                "the client secret file {pw} is accessible by group or others (mode {mode:04o})"
            ),
        );
        let (out3, gw3) = fetch(&["--token-file", pw]);
        assert_refused(
            &out3,
            &format!("the token file {pw} is accessible by group or others (mode {mode:04o})"),
        );
        for g in [gw, gw2, gw3] {
            assert!(g.seen().is_empty(), "contacted the gateway: {:?}", g.seen());
        }
    }
}

#[test]
fn a_config_file_others_can_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A planted config could run any command as the user.
    let text = "username = \"dev\"\npassword-command = \"touch /tmp/s3credsfs-pwned\"\n";
    for mode in [0o666, 0o620, 0o602] {
        let config = file(dir.path(), &format!("c{mode:o}.toml"), text, mode);
        let config = config.to_str().unwrap();
        let (out, gw) = fetch(&["--config", config]);
        assert_refused(&out, &format!("the config file {config} is writable by group or others (mode {mode:04o}); run `chmod go-w {config}`"));
        assert!(gw.seen().is_empty());
    }
    let ca = file(dir.path(), "ca.pem", "not used", 0o646);
    let ca = ca.to_str().unwrap();
    let (out, _) = fetch(&["--ca-file", ca, "--token-env", "T"]);
    assert_refused(
        &out,
        &format!("the CA bundle {ca} is writable by group or others"),
    );
}

#[test]
fn a_planted_fifo_or_directory_does_not_hang_or_pass() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (out, _) = fetch(&["--token-file", fifo.to_str().unwrap()]);
    assert_refused(&out, "is not a regular file");
    let (out, _) = fetch(&["--config", dir.path().to_str().unwrap()]);
    assert_refused(&out, "is not a regular file");
}

#[test]
fn a_log_file_symlink_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let victim = file(dir.path(), "victim", "keep me\n", 0o644);
    let link = dir.path().join("daemon.log");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let out = bin()
        .args(["mount", "--dev", "--lazy", "--log-file"])
        .arg(&link)
        .arg(dir.path().join("mnt"))
        .output()
        .unwrap();
    assert_refused(&out, "(it is a symbolic link); fix --log-file");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
}

/// The metrics file is written by the mount's user into a directory node_exporter reads:
/// a link planted at its name would make us overwrite whatever it points at.
#[test]
fn a_metrics_file_symlink_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let victim = file(dir.path(), "victim", "keep me\n", 0o644);
    let link = dir.path().join("s3credsfs.prom");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let out = bin()
        .args(["mount", "--dev", "--lazy", "--metrics-file"])
        .arg(&link)
        .arg(dir.path().join("mnt"))
        .output()
        .unwrap();
    assert_refused(
        &out,
        &format!(
            "the metrics file {} is a symbolic link, which s3credsfs does not write through; remove it or fix --metrics-file",
            link.display()
        ),
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}

/// Another process of the same user must not read our memory (ptrace, /proc/PID/mem,
/// core dumps) from the very start: the password command runs while the password is
/// being read, and sees its parent's /proc files owned by root only if we are not
/// dumpable. The gateway accepts the password "0" (root's uid) and nothing else; the
/// command runs as a user other than root.
#[test]
fn the_process_is_not_dumpable_before_the_password_is_read() {
    use std::os::unix::process::CommandExt;
    let gw = common::mount::TestGateway::start(|c| {
        c.users = vec![s3credsfs::dev::gateway::Account::new("dev", "0", true)]
    });
    let mut cmd = bin();
    cmd.args([
        "fetch",
        "--api-gateway",
        &gw.gw.base_url(),
        "--username",
        "dev",
    ])
    .args(["--password-command", "stat -c %u /proc/$PPID/mem"])
    .current_dir("/");
    // As root every /proc file is root's anyway: run as nobody to tell the two apart.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the password command saw a dumpable process: {stderr}"
    );
    assert_eq!(gw.stats().password_grants, 1);
}

#[test]
fn dev_null_as_the_config_file_means_none() {
    let (out, gateway) = fetch(&["--config", "/dev/null", "--token-env", "UNSET_TOKEN_VAR"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("environment variable UNSET_TOKEN_VAR (from --token-env) is not set"),
        "the config file was accepted as empty: {stderr}"
    );
    assert!(gateway.seen().is_empty());
}
