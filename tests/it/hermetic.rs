//! The helpers that start the binary give it an environment of their own: a developer's
//! `S3CREDSFS_*` settings, config files, cray login, proxies and fusermount path never
//! change a test's result. Proven by running tests that use each helper again, in a
//! child of this test binary whose own environment is full of such settings.

use crate::common::{private_file, wait_for, StopOnDrop};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A test per helper: `bin` with `BackgroundMount` (and `status`/`unmount`), `Mounted`,
/// `fetch_cli`'s and `hostile_files`' own commands.
const TESTS: [&str; 4] = [
    "mount_lifecycle::background_mount_unmount_and_status",
    "mount::lazy_mounts_fetch_on_first_read",
    "fetch_cli::prints_each_format",
    "hostile_files::dev_null_as_the_config_file_means_none",
];

#[test]
fn the_helpers_ignore_the_developers_environment() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let hostile = "api-gateway = \"http://bad.invalid\"\ntimeout = \"0s\"\nbogus-key = 1\n";
    std::fs::create_dir_all(home.join(".config/s3credsfs")).unwrap();
    let config = private_file(&home.join(".config/s3credsfs"), "config.toml", hostile);
    let cray = private_file(home, "cray.json", "not a login");
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args(TESTS)
        .args(["--exact", "--test-threads=2"])
        .env("S3CREDSFS_API_GATEWAY", "http://bad.invalid")
        .env("S3CREDSFS_USERNAME", "intruder")
        .env("S3CREDSFS_TIMEOUT", "0s")
        .env("S3CREDSFS_CONFIG", &config)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("CRAY_CREDENTIALS", &cray)
        .env("FUSERMOUNT_PATH", "/nonexistent")
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(out.reopen().unwrap());
    for proxy in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
    ] {
        child.env(proxy, "http://127.0.0.1:9");
    }
    let mut child = StopOnDrop::kill(child.spawn().unwrap());
    let status = wait_for("the tests in the child", Duration::from_secs(300), || {
        child.try_wait().unwrap()
    });
    let report = std::fs::read_to_string(out.path()).unwrap();
    assert!(status.success(), "{report}");
    assert!(
        report.contains(&format!("test result: ok. {} passed", TESTS.len())),
        "{report}"
    );
}
