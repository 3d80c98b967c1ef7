//! `s3credsfs config check [--try]`: every profile judged, each on its own line.

use crate::common;

use common::*;
use s3credsfs::dev::gateway::{Endpoint, Times, DEFAULT_PASSWORD};
use std::process::Output;
use tokio::process::Command;

async fn check(config: &std::path::Path, extra: &[&str]) -> (Output, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_s3credsfs"))
        .env_clear()
        .envs(clean_env())
        .kill_on_drop(true)
        .args(["config", "check", "--config"])
        .arg(config)
        .args(extra)
        .env("PW", DEFAULT_PASSWORD)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    (out, stdout, stderr)
}

fn config(prod: &str, tds: &str, tds_extra: &str) -> String {
    format!(
        "username = \"dev\"\npassword-env = \"PW\"\ndefault-profile = \"prod\"\n\
         [profiles.prod]\napi-gateway = \"{prod}\"\n\
         [profiles.tds]\napi-gateway = \"{tds}\"\n{tds_extra}"
    )
}

#[tokio::test]
async fn every_profile_gets_a_line_and_a_bad_one_fails_the_check() {
    let (prod, tds) = (gateway(|_| {}).await, gateway(|_| {}).await);
    let dir = tempfile::tempdir().unwrap();
    let good = private_file(
        dir.path(),
        "good.toml",
        &config(&prod.base_url(), &tds.base_url(), ""),
    );
    let (out, stdout, stderr) = check(&good, &[]).await;
    assert!(out.status.success(), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], format!("config file: {}", good.display()));
    assert!(lines[1].starts_with("site config file: "), "{stdout}");
    assert_eq!(
        lines[2],
        format!(
            "profile prod (default): ok: gateway {}, password login as dev, region us-east-1",
            prod.base_url()
        )
    );
    // Each value given, with where it came from.
    let shown = good.display();
    assert_eq!(
        lines[3..7],
        [
            format!(
                "  api-gateway = \"{}\" (config file {shown})",
                prod.base_url()
            ),
            format!("  username = \"dev\" (config file {shown})"),
            format!("  password-env = \"PW\" (config file {shown})"),
            format!("  profile = \"prod\" (config file {shown})"),
        ]
    );
    assert!(
        lines[7].starts_with("profile tds: ok: gateway "),
        "{stdout}"
    );
    // Without --try nothing is asked of any gateway.
    assert_eq!(prod.stats().token_requests + tds.stats().token_requests, 0);

    let bad = private_file(
        dir.path(),
        "bad.toml",
        &config(&prod.base_url(), &tds.base_url(), "timeout = \"soon\"\n"),
    );
    let (out, stdout, stderr) = check(&bad, &[]).await;
    assert!(!out.status.success());
    assert!(stdout.contains("profile prod (default): ok: "), "{stdout}");
    assert!(
        stdout.contains("profile tds: error: in profile tds: bad value \"soon\" for key `timeout`"),
        "{stdout}"
    );
    assert_eq!(
        stderr,
        "s3credsfs: error: 1 of 2 profiles failed the check (see above); fix them, then run `s3credsfs config check` again\n"
    );
}

#[tokio::test]
async fn with_try_a_password_command_is_run_and_the_login_tried() {
    // Without --try the command is left alone (the unit tests show the note); with it, the
    // line is the login's result like any other's.
    let gw = gateway(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let file = private_file(
        dir.path(),
        "c.toml",
        &format!(
            "api-gateway = \"{}\"\nusername = \"dev\"\npassword-command = \"printenv PW\"\n",
            gw.base_url()
        ),
    );
    let (out, stdout, stderr) = check(&file, &["--try", "--timeout", "5s"]).await;
    assert!(out.status.success(), "{stdout}{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("profile default (default): "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains(": works: gateway ") && line.contains("; credentials valid until "),
        "{line}"
    );
    assert_eq!(gw.stats().password_grants, 1, "{stdout}");
}

#[tokio::test]
async fn with_try_each_gateway_is_asked_and_a_failing_one_is_named() {
    let (prod, tds) = (gateway(|_| {}).await, gateway(|_| {}).await);
    tds.inject(
        Endpoint::Sts,
        crate::common::status_fault(403, "text/plain", "no"),
        Times::Always,
    );
    let dir = tempfile::tempdir().unwrap();
    let file = private_file(
        dir.path(),
        "c.toml",
        &config(&prod.base_url(), &tds.base_url(), ""),
    );
    let (out, stdout, stderr) = check(&file, &["--try", "--timeout", "5s"]).await;
    assert!(!out.status.success(), "{stdout}");
    let prod_line = stdout
        .lines()
        .find(|l| l.starts_with("profile prod"))
        .unwrap();
    assert!(
        prod_line.starts_with("profile prod (default): works: ")
            && prod_line.contains("credentials valid until 20"),
        "{prod_line}"
    );
    let tds_line = stdout
        .lines()
        .find(|l| l.starts_with("profile tds"))
        .unwrap();
    assert!(
        tds_line.starts_with("profile tds: error: ") && tds_line.contains("403"),
        "{tds_line}"
    );
    assert!(
        stderr.contains("1 of 2 profiles failed the check")
            && stderr.contains("config check --try"),
        "{stderr}"
    );
    assert_eq!(prod.stats().sts_issued, 1);
    // No secret reaches the screen.
    assert!(!stdout.contains(DEFAULT_PASSWORD) && !stderr.contains(DEFAULT_PASSWORD));
}

#[tokio::test]
async fn a_broken_file_is_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = private_file(dir.path(), "c.toml", "[profiles.a]\nusernme = \"x\"\n");
    let (out, stdout, stderr) = check(&file, &[]).await;
    assert!(!out.status.success());
    assert_eq!(stdout, "");
    assert!(
        stderr
            .starts_with("s3credsfs: error: unknown key `usernme` in [profiles.a] of config file"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);
}

#[tokio::test]
async fn a_missing_ca_file_is_caught_whatever_the_password_source() {
    let gw = gateway(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-ca.pem");
    for login in [
        "password-command = \"echo dev-password\"",
        "password-env = \"PW\"",
    ] {
        let text = format!(
            "username = \"dev\"\n{login}\napi-gateway = \"{}\"\nca-file = \"{}\"\n",
            gw.base_url(),
            missing.display()
        );
        let file = private_file(dir.path(), "c.toml", &text);
        let (out, stdout, _) = check(&file, &[]).await;
        assert_eq!(out.status.code(), Some(78), "{login}: {stdout}");
        assert!(
            stdout.contains("profile default (default): error: ")
                && stdout.contains(&missing.display().to_string()),
            "{login}: {stdout}"
        );
    }
    // The command itself is still not run without --try.
    let marker = dir.path().join("ran");
    let text = format!(
        "username = \"dev\"\npassword-command = \"touch {}; echo dev-password\"\napi-gateway = \"{}\"\n",
        marker.display(),
        gw.base_url()
    );
    let file = private_file(dir.path(), "c.toml", &text);
    let (out, stdout, _) = check(&file, &[]).await;
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("(its password command is run only with --try)"));
    assert!(!marker.exists(), "the password command ran without --try");
}

#[tokio::test]
async fn json_gives_every_profile_with_stable_fields() {
    let (prod, tds) = (gateway(|_| {}).await, gateway(|_| {}).await);
    let dir = tempfile::tempdir().unwrap();
    let file = private_file(
        dir.path(),
        "c.toml",
        &config(&prod.base_url(), &tds.base_url(), "timeout = \"soon\"\n"),
    );
    let (out, stdout, stderr) = check(&file, &["--json"]).await;
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect(&stdout);
    assert_eq!(doc["config_file"], file.display().to_string());
    assert_eq!(
        (doc["ok"].clone(), doc["tried"].clone()),
        (false.into(), false.into())
    );
    let prod_doc = &doc["profiles"][0];
    assert_eq!(prod_doc["name"], "prod");
    assert_eq!(prod_doc["default"], true);
    assert_eq!(prod_doc["ok"], true);
    assert_eq!(prod_doc["gateway"], prod.base_url());
    assert_eq!(prod_doc["login"], "password login as dev");
    assert_eq!(prod_doc["region"], "us-east-1");
    assert_eq!(prod_doc["credentials_expire"], serde_json::Value::Null);
    assert_eq!(prod_doc["error"], serde_json::Value::Null);
    let tds_doc = &doc["profiles"][1];
    assert_eq!(
        (tds_doc["name"].as_str(), tds_doc["ok"].as_bool()),
        (Some("tds"), Some(false))
    );
    assert!(
        tds_doc["error"]
            .as_str()
            .unwrap()
            .contains("bad value \"soon\" for key `timeout`"),
        "{tds_doc}"
    );
    // --try fills in the expiry.
    let good = private_file(
        dir.path(),
        "good.toml",
        &config(&prod.base_url(), &tds.base_url(), ""),
    );
    let (out, stdout, stderr) = check(&good, &["--json", "--try"]).await;
    assert!(out.status.success(), "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (doc["ok"].clone(), doc["tried"].clone()),
        (true.into(), true.into())
    );
    for profile in doc["profiles"].as_array().unwrap() {
        assert!(
            profile["credentials_expire"]
                .as_str()
                .unwrap()
                .ends_with('Z'),
            "{profile}"
        );
    }
}

/// The config-file mistakes people make, each answered by the real binary with one
/// sentence that says what to write instead.
#[tokio::test]
async fn config_mistakes_point_at_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    for (text, expected) in [
        (
            "username = \"u\"\npasword-file = \"/p\"\n",
            "unknown key `pasword-file` in config file PATH; did you mean `password-file`?",
        ),
        (
            "username = \"u\"\npassword_command = \"pass show csm\"\n",
            "unknown key `password_command` in config file PATH; did you mean `password-command`?",
        ),
        (
            "[profile.tds]\nrealm = \"shasta\"\n",
            "`[profile.tds]` in config file PATH: did you mean `[profiles.tds]`?",
        ),
        (
            "[profiles.site.b]\nrealm = \"shasta\"\n",
            "`[profiles.site.b]` in config file PATH is a table inside profile \"site\"; a \
             profile name with a `.` needs quotes: `[profiles.\"site.b\"]`",
        ),
        (
            "timeout = 30\n",
            "bad value 30 for key `timeout` in config file PATH: a duration is a quoted number \
             with its unit; write timeout = \"30s\"",
        ),
        (
            "realm = \"shasta\"\n\nusername = vers\n",
            "config file PATH is not valid TOML at line 3, column 12: ",
        ),
    ] {
        let file = private_file(dir.path(), "c.toml", text);
        let (out, stdout, stderr) = check(&file, &[]).await;
        let expected = expected.replace("PATH", file.to_str().unwrap());
        assert!(!out.status.success(), "{text}");
        assert_eq!(stdout, "", "{text}");
        assert!(
            stderr.starts_with(&format!("s3credsfs: error: {expected}")),
            "{text}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}
