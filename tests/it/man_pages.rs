//! The man pages as a user reads them: `s3credsfs man --out DIR` writes them, and man(1)
//! renders each without a groff warning, so a roff mistake shows here rather than on a
//! user's screen. Needs `man` (package man-db, which scripts/venv installs).

use crate::common;

use std::process::{Command, Stdio};

#[test]
fn man_renders_every_page_without_warnings() {
    common::clients::require_tool("man");
    let dir = tempfile::tempdir().unwrap();
    let out = common::mount::bin()
        .args(["man", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (page, wants) in [
        (
            "s3credsfs.1",
            &[
                "FILES",
                "ENVIRONMENT",
                "SEE ALSO",
                "S3CREDSFS_METRICS_FILE",
                "/etc/s3credsfs/config.toml",
            ][..],
        ),
        (
            "s3credsfs.toml.5",
            &["PRECEDENCE", "KEYS", "PROFILES", "EXAMPLES", "metrics-file"][..],
        ),
    ] {
        let out = Command::new("man")
            .args(["--warnings=w", "-l", "-E", "UTF-8", "-P", "cat"])
            .arg(dir.path().join(page))
            .env_clear()
            .envs(common::clean_env())
            .env("MANWIDTH", "100")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && warnings.is_empty(),
            "{page}: {warnings}"
        );
        for want in wants {
            assert!(text.contains(want), "{page} lacks {want}:\n{text}");
        }
    }
}

/// The check above can fail: a broken request is a warning.
#[test]
fn a_roff_mistake_is_a_warning() {
    common::clients::require_tool("man");
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("broken.1");
    std::fs::write(
        &page,
        ".TH broken 1\n.SH NAME\nbroken \\- x\n.BOGUS\n\\fQ\n",
    )
    .unwrap();
    let out = Command::new("man")
        .args(["--warnings=w", "-l", "-P", "cat"])
        .arg(&page)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.stderr.is_empty(), "no warning for a broken page");
}
