//! What `s3credsfs fetch` warns about beside its credentials, and how it logs: a gateway
//! clock out of step, a misspelt `S3CREDSFS_*` variable, a login flag over the config
//! file's login, and JSON log lines (none of which may hold a secret).

use crate::common;
use crate::common::text;
use crate::fetch_cli::{bin, fetch};

use common::*;
use s3credsfs::dev::gateway::DEFAULT_PASSWORD;

/// A gateway whose clock is off by more than 30 s, either way, gets a warning on stderr
/// with both times and the fix; the fetch itself still works. A gateway in step gets none.
#[tokio::test]
async fn a_skewed_gateway_clock_is_warned_about_in_either_direction() {
    for (offset, words) in [
        (7200, "this host's clock is 2h behind the gateway's"),
        (-3000, "this host's clock is 50m ahead of the gateway's"),
        (-45, "s ahead of the gateway's"),
    ] {
        let gw = gateway(|c| c.date_offset_seconds = offset).await;
        let out = fetch(&gw, &[]).output().await.unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(stderr.contains(words), "{offset}: {stderr}");
        assert!(stderr.contains("WARN"), "{stderr}");
        assert!(
            stderr.contains("(the gateway 127.0.0.1 says 20"),
            "{stderr}"
        );
        assert!(
            stderr.contains("sync this host's clock (chronyd or NTP"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "warned once: {stderr}");
    }
    for offset in [0, 25, -25] {
        let gw = gateway(|c| c.date_offset_seconds = offset).await;
        let out = fetch(&gw, &[]).output().await.unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "", "{offset}");
    }
}

/// A misspelt `S3CREDSFS_*` variable is warned about with the one it most likely meant;
/// the fetch goes on. The password variable the command line names is no mistake.
#[tokio::test]
async fn a_misspelt_variable_is_warned_about() {
    let gw = gateway(|_| {}).await;
    let mut cmd = bin();
    cmd.args([
        "fetch",
        "--api-gateway",
        &gw.base_url(),
        "--username",
        "dev",
    ])
    .args(["--password-env", "S3CREDSFS_PW"])
    .env("S3CREDSFS_API_GATEWY", "https://typo.example")
    .env("S3CREDSFS_PW", DEFAULT_PASSWORD);
    let out = cmd.output().await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "s3credsfs: warning: environment variable S3CREDSFS_API_GATEWY names no setting and \
         is ignored; did you mean S3CREDSFS_API_GATEWAY?\n"
    );
}

/// A login on the command line overrides a different one in the config file (the
/// documented precedence), with a note at debug level.
#[tokio::test]
async fn a_login_flag_overrides_the_config_files_login() {
    let gw = gateway(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let config = private_file(dir.path(), "config.toml", "token-env = \"NO_SUCH_TOKEN\"\n");
    let config = config.to_str().unwrap();
    let out = fetch(&gw, &["--config", config]).output().await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    let out = fetch(&gw, &["--config", config])
        .env("S3CREDSFS_LOG", "debug")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let note = format!("the login from --username overrides token-env from config file {config}");
    assert!(text(&out.stderr).contains(&note), "{}", text(&out.stderr));
}

/// Each stderr line, parsed as one JSON object.
fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{stderr}"));
            assert!(value.is_object(), "{line}");
            value
        })
        .collect()
}

/// `--log-format json`, `log-format = "json"` and `S3CREDSFS_LOG_FORMAT=json` each give
/// one JSON object per line, with no secret in any.
#[tokio::test]
async fn json_logs_are_one_object_per_line_and_hold_no_secret() {
    let gw = gateway(|c| c.date_offset_seconds = 600).await;
    let dir = tempfile::tempdir().unwrap();
    let config = private_file(dir.path(), "config.toml", "log-format = \"json\"\n");
    let config = config.to_str().unwrap();
    for (args, env) in [
        (&["--log-format", "json"][..], None),
        (&["--config", config][..], None),
        (&[][..], Some(("S3CREDSFS_LOG_FORMAT", "json"))),
    ] {
        let mut cmd = fetch(&gw, args);
        cmd.env("S3CREDSFS_LOG", "trace");
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().await.unwrap();
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let lines = json_lines(&stderr);
        assert!(lines.len() > 3, "{args:?}: {stderr}");
        let skew = lines
            .iter()
            .find(|l| l["level"] == "WARN")
            .unwrap_or_else(|| panic!("no warning: {stderr}"));
        assert!(
            skew["fields"]["message"]
                .as_str()
                .unwrap()
                .starts_with("this host's clock is 10m behind the gateway's"),
            "{skew}"
        );
        for secret in gw.secrets().iter().chain([&DEFAULT_PASSWORD.to_string()]) {
            assert!(!stderr.contains(secret.as_str()), "a secret in the log");
        }
    }
    // Text stays the default.
    let out = fetch(&gw, &[]).output().await.unwrap();
    assert!(
        text(&out.stderr).contains(" WARN "),
        "{}",
        text(&out.stderr)
    );
}
