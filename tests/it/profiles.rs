//! Several systems in one configuration: `[profiles.NAME]` tables, each against a
//! built-in gateway of its own. `fetch --profile` here; real mounts and the AWS CLI in
//! the gated tiers.

use crate::common;

use common::*;
use s3credsfs::dev::gateway::{Gateway, DEFAULT_PASSWORD};
use tokio::process::Command;

/// A config file with profiles `prod` (the default) and `tds`, one gateway each, sharing
/// the top-level login.
fn two_profiles(prod: &str, tds: &str) -> String {
    format!(
        "username = \"dev\"\npassword-env = \"PW\"\ndefault-profile = \"prod\"\n\n\
         [profiles.prod]\napi-gateway = \"{prod}\"\n\n\
         [profiles.tds]\napi-gateway = \"{tds}\"\nregion = \"tds-region\"\n"
    )
}

fn fetch_with(config: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3credsfs"));
    cmd.env_clear()
        .envs(clean_env())
        .kill_on_drop(true)
        .arg("fetch")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("PW", DEFAULT_PASSWORD);
    cmd
}

/// Two gateways and a private config file naming them as `prod` and `tds`.
async fn two_gateways() -> (Gateway, Gateway, tempfile::TempDir, std::path::PathBuf) {
    let (prod, tds) = (gateway(|_| {}).await, gateway(|_| {}).await);
    let dir = tempfile::tempdir().unwrap();
    let config = private_file(
        dir.path(),
        "config.toml",
        &two_profiles(&prod.base_url(), &tds.base_url()),
    );
    (prod, tds, dir, config)
}

#[tokio::test]
async fn fetch_uses_the_default_profile_or_the_one_named() {
    let (prod, tds, _dir, config) = two_gateways().await;
    let out = fetch_with(&config, &["-f", "credentials"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\n[prod]\n"), "{text}");
    assert_eq!((prod.stats().sts_issued, tds.stats().sts_issued), (1, 0));

    let out = fetch_with(&config, &["--profile", "tds", "-f", "config"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("[profile tds]\n") && text.contains("region = tds-region\n"),
        "{text}"
    );
    assert_eq!((prod.stats().sts_issued, tds.stats().sts_issued), (1, 1));

    // The variable selects as the flag does.
    let out = fetch_with(&config, &[])
        .env("S3CREDSFS_PROFILE", "tds")
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    assert_eq!(tds.stats().sts_issued, 2);
}

#[tokio::test]
async fn an_unknown_profile_is_refused_naming_the_known_ones() {
    let (prod, tds, _dir, config) = two_gateways().await;
    let out = fetch_with(&config, &["--profile", "staging"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr,
        format!(
            "s3credsfs: error: unknown profile \"staging\" (from --profile); config file {} defines: prod, tds\n",
            config.display()
        )
    );
    assert_eq!(prod.stats().token_requests + tds.stats().token_requests, 0);
}

#[cfg(feature = "fuse-tests")]
mod mounted {
    use super::two_profiles;
    use crate::common::mount::*;
    use s3credsfs::dev::gateway::{Endpoint, Fault, Times};

    /// `s3credsfs mount --config CONFIG` in the background on a new directory, run to its
    /// verdict: the default password in `PW`, and `env`. The guard unmounts on drop, before
    /// the directory goes (destructure in this order).
    fn mount_in_background(
        config: &str,
        env: &[(&str, &str)],
    ) -> (
        tempfile::TempDir,
        std::path::PathBuf,
        BackgroundMount,
        std::process::Output,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::common::private_file(dir.path(), "config.toml", config);
        let path = dir.path().join("creds");
        let guard = BackgroundMount::new(&path);
        let out = guard
            .bin()
            .arg("mount")
            .arg(&path)
            .arg("--config")
            .arg(&config)
            .args(["--timeout", "5s", "--log-file"])
            .arg(dir.path().join("daemon.log"))
            .env("PW", s3credsfs::dev::gateway::DEFAULT_PASSWORD)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (dir, path, guard, out)
    }

    #[test]
    fn the_first_read_after_mount_returns_holds_every_healthy_profile() {
        let (prod, tds, broken) = (
            TestGateway::start(|_| {}),
            TestGateway::start(|_| {}),
            TestGateway::start(|_| {}),
        );
        // tds answers late: a mount that did not wait for it would serve without it.
        tds.gw.inject(
            Endpoint::Sts,
            Fault::Delay(std::time::Duration::from_millis(1500)),
            Times::Once,
        );
        let refused = crate::common::status_fault(403, "text/plain", "role missing");
        broken.gw.inject(Endpoint::Sts, refused, Times::Always);
        let config = format!(
            "{}\n[profiles.broken]\napi-gateway = \"{}\"\n",
            two_profiles(&prod.gw.base_url(), &tds.gw.base_url()),
            broken.gw.base_url()
        );
        let (_dir, path, guard, out) = mount_in_background(&config, &[]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("; no credentials for profile broken (see `s3credsfs status`)"),
            "{stdout}"
        );
        // `mount` returned once every profile had been fetched.
        assert_eq!((prod.stats().sts_issued, tds.stats().sts_issued), (1, 1));
        // The very first read: every healthy profile, and the failing one's own error.
        let creds = std::fs::read_to_string(path.join("credentials")).unwrap();
        let sections: Vec<&str> = creds.lines().filter(|l| l.starts_with('[')).collect();
        assert_eq!(sections, ["[default]", "[prod]", "[tds]"], "{creds}");
        let broken_line = creds
            .lines()
            .find(|l| l.contains("profile broken"))
            .unwrap_or_else(|| panic!("{creds}"));
        assert!(
            broken_line.starts_with("# profile broken: no credentials: ")
                && broken_line.contains("HTTP 403"),
            "{broken_line}"
        );
        assert!(!creds.contains("being fetched"), "{creds}");
        let config_file = std::fs::read_to_string(path.join("config")).unwrap();
        assert!(config_file.contains("[profile tds]\n"), "{config_file}");
        assert_eq!((prod.stats().sts_issued, tds.stats().sts_issued), (1, 1));

        // Monitoring: the failing profile makes the mount CRITICAL; --profile narrows.
        let check = |extra: &[&str]| {
            let out = guard
                .bin()
                .args(["status", "--check"])
                .args(extra)
                .arg(&path)
                .output()
                .unwrap();
            (out.status.code(), String::from_utf8(out.stdout).unwrap())
        };
        let (code, line) = check(&[]);
        assert_eq!(code, Some(2), "{line}");
        assert!(
            line.starts_with("S3CREDSFS CRITICAL - broken: no valid credentials: "),
            "{line}"
        );
        assert_eq!(line.lines().count(), 1, "{line}");
        let (code, line) = check(&["--profile", "tds"]);
        assert_eq!(code, Some(0), "{line}");
        assert!(
            line.starts_with("S3CREDSFS OK - tds: fresh, valid for "),
            "{line}"
        );
        assert!(line.contains(" | 'tds'="), "{line}");
        let (code, line) = check(&["--profile", "staging"]);
        assert_eq!(code, Some(3), "{line}");
        assert!(
            line.starts_with("S3CREDSFS UNKNOWN - the mount at "),
            "{line}"
        );
        let json = guard
            .bin()
            .args(["status", "--json", "--profile", "tds"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(json.status.code(), Some(0));
        let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        assert_eq!(
            (doc["profile"].as_str(), doc["state"].as_str()),
            (Some("tds"), Some("fresh"))
        );
        let out = guard.bin().arg("unmount").arg(&path).output().unwrap();
        assert!(out.status.success());
        let (code, line) = check(&[]);
        assert_eq!(code, Some(3), "{line}");
        assert!(
            line.starts_with("S3CREDSFS UNKNOWN - nothing is mounted at "),
            "{line}"
        );
    }

    /// The default profile's gateway failing (which a restart may cure) while Keycloak
    /// refuses another profile's password exits as a refused login (77, which the unit
    /// does not restart): every restart would send the refused password again, until
    /// Keycloak locked the account.
    #[test]
    fn a_refused_profile_keeps_a_failed_mount_from_being_restarted() {
        let (prod, tds) = (TestGateway::start(|_| {}), TestGateway::start(|_| {}));
        let down = crate::common::status_fault(503, "text/plain", "down");
        prod.gw.inject(Endpoint::Sts, down, Times::Always);
        let config = format!(
            "{}password-env = \"WRONG\"\n",
            two_profiles(&prod.gw.base_url(), &tds.gw.base_url())
        );
        let (_dir, _path, _guard, out) =
            mount_in_background(&config, &[("WRONG", "not-the-password")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(77), "{stderr}");
        assert!(
            stderr.contains("HTTP 503") && stderr.contains("profile tds's login was refused"),
            "{stderr}"
        );
        let tds = tds.stats();
        assert_eq!(
            (tds.token_requests, tds.token_failures),
            (1, 1),
            "one login, refused"
        );
    }

    /// A profile's `s3-endpoint` reaches that profile's files in the mount (and the
    /// root's combined ones), while the other profile keeps its STS's endpoint.
    #[test]
    fn a_profiles_s3_endpoint_is_in_its_env_and_config_files() {
        let nmn = |c: &mut s3credsfs::dev::gateway::GatewayConfig| {
            c.endpoint_url = Some("http://rgw-vip.nmn".into())
        };
        let (prod, tds) = (TestGateway::start(nmn), TestGateway::start(nmn));
        let cmn = "https://rgw-vip.cmn.example.com";
        let config = format!(
            "{}s3-endpoint = \"{cmn}\"\n",
            two_profiles(&prod.gw.base_url(), &tds.gw.base_url())
        );
        let m = Mounted::start_configured(&config, &[]);
        let env = m.read("profiles/tds/env").unwrap();
        assert!(env.contains(&format!("AWS_ENDPOINT_URL='{cmn}'")), "{env}");
        assert!(!env.contains("nmn"), "{env}");
        let tds_config = m.read("profiles/tds/config").unwrap();
        assert!(
            tds_config.contains(&format!("endpoint_url = {cmn}\n")),
            "{tds_config}"
        );
        assert!(!tds_config.contains("nmn"), "{tds_config}");
        let prod_env = m.read("profiles/prod/env").unwrap();
        assert!(
            prod_env.contains("AWS_ENDPOINT_URL='http://rgw-vip.nmn'"),
            "{prod_env}"
        );
        // The root's config holds every profile, each with its own endpoint.
        let all = m.read("config").unwrap();
        let tds_section = all
            .split("[profile tds]")
            .nth(1)
            .unwrap_or_else(|| panic!("{all}"));
        assert!(
            tds_section.contains(&format!("endpoint_url = {cmn}\n")),
            "{all}"
        );
    }

    #[test]
    fn one_mount_serves_every_profile() {
        let (prod, tds) = (TestGateway::start(|_| {}), TestGateway::start(|_| {}));
        let m =
            Mounted::start_configured(&two_profiles(&prod.gw.base_url(), &tds.gw.base_url()), &[]);
        // Mounting fetched every profile.
        assert_eq!((prod.stats().sts_issued, tds.stats().sts_issued), (1, 1));
        let listed: Vec<String> = std::fs::read_dir(m.file("profiles"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(listed.len(), 2);
        assert!(listed.contains(&"prod".into()) && listed.contains(&"tds".into()));
        assert_eq!(tds.stats().sts_issued, 1, "listing fetches nothing");

        let tds_json: serde_json::Value =
            serde_json::from_str(&m.read("profiles/tds/json").unwrap()).unwrap();
        assert_eq!(tds.stats().sts_issued, 1);
        assert_ne!(tds_json["AccessKeyId"].as_str().unwrap(), m.access_key());

        let creds = m.read("credentials").unwrap();
        let sections: Vec<&str> = creds.lines().filter(|l| l.starts_with('[')).collect();
        assert_eq!(sections, ["[default]", "[prod]", "[tds]"], "{creds}");
        assert!(creds.contains(tds_json["AccessKeyId"].as_str().unwrap()));
        let config = m.read("config").unwrap();
        let tds_process = format!(
            "credential_process = cat {}/profiles/tds/json\n",
            m.path.display()
        );
        assert!(config.contains(&tds_process), "{config}");
        assert_eq!((prod.stats().sts_issued, tds.stats().sts_issued), (1, 1));
    }

    /// Every log line about a profile names it: its fetches, its login's requests, its
    /// failures and the reads refused for it (once, however many readers retry).
    #[test]
    fn every_log_line_about_a_profile_names_it() {
        let (prod, tds) = (TestGateway::start(|_| {}), TestGateway::start(|_| {}));
        let broken =
            crate::common::status_fault(500, "application/json", r#"{"detail": "Ceph is down"}"#);
        tds.gw.inject(Endpoint::Sts, broken, Times::Always);
        let m = Mounted::start_configured(
            &two_profiles(&prod.gw.base_url(), &tds.gw.base_url()),
            &["--timeout", "5s"],
        );
        for _ in 0..5 {
            let err = m.read("profiles/tds/json").unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EIO));
        }
        let log = m.log();
        // Every line saying `what` names a profile; returns how many name `profile`.
        let named = |profile: &str, what: &str| {
            let lines: Vec<&str> = log.lines().filter(|l| l.contains(what)).collect();
            for line in &lines {
                assert!(
                    line.contains("profile=prod") || line.contains("profile=tds"),
                    "{line}\n{log}"
                );
            }
            let count = lines
                .iter()
                .filter(|l| l.contains(&format!("profile={profile}")))
                .count();
            assert!(count > 0, "no {what:?} of {profile} in\n{log}");
            count
        };
        named("prod", "obtained S3 credentials");
        named("tds", "refreshing credentials failed");
        named("prod", "requesting a token");
        named("tds", "requesting a token");
        assert_eq!(named("tds", "refusing a read"), 1, "{log}");
        for line in log.lines().filter(|l| l.contains("Ceph is down")) {
            assert!(line.contains("profile=tds"), "{line}");
        }
    }

    #[test]
    fn a_failing_profile_shows_in_status_and_hides_no_other() {
        let (prod, tds) = (TestGateway::start(|_| {}), TestGateway::start(|_| {}));
        let refused = crate::common::status_fault(403, "text/plain", "role missing");
        tds.gw.inject(Endpoint::Sts, refused, Times::Always);
        let m = Mounted::start_configured(
            &two_profiles(&prod.gw.base_url(), &tds.gw.base_url()),
            &["--timeout", "5s"],
        );
        let err = m.read("profiles/tds/json").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        let creds = m.read("credentials").unwrap();
        assert!(creds.contains("\n[prod]\n"), "{creds}");
        let comment: Vec<&str> = creds.lines().filter(|l| l.contains("tds")).collect();
        assert_eq!(comment.len(), 1, "{creds}");
        assert!(
            comment[0].starts_with("# profile tds: no credentials: "),
            "{creds}"
        );

        // The exit status follows the state: a profile without credentials is CRITICAL.
        let out = bin().arg("status").arg(&m.path).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let screen = String::from_utf8(out.stdout).unwrap();
        let tds_line = screen
            .lines()
            .find(|l| l.trim_start().starts_with("tds:"))
            .unwrap_or_else(|| panic!("{screen}"));
        assert!(
            tds_line.contains("403") || tds_line.contains("refused"),
            "{tds_line}"
        );
        assert!(
            screen
                .lines()
                .any(|l| l.trim_start().starts_with("prod: fresh")),
            "{screen}"
        );
    }
}

/// On the real RGW of the `rgw-tests` tier, which checks every signature.
#[cfg(feature = "rgw-tests")]
mod clients {
    use super::two_profiles;
    use crate::common::clients::*;
    use crate::common::mount::*;
    use crate::common::rgw::rgw;

    /// `AWS_PROFILE=tds aws s3 ls` with the mount's root files, first thing after mount:
    /// the AWS CLI takes the tds section and its `credential_process`.
    #[test]
    fn aws_cli_picks_a_profile_from_the_root_files() {
        let rgw = rgw();
        let prod = TestGateway::start(|c| c.backend = Some(rgw.backend()));
        let tds = TestGateway::start(|c| c.backend = Some(rgw.backend()));
        let m =
            Mounted::start_configured(&two_profiles(&prod.gw.base_url(), &tds.gw.base_url()), &[]);
        let env = ClientEnv::new();
        let aws = |profile: &str| {
            let mut cmd = env.command("aws");
            cmd.env("AWS_SHARED_CREDENTIALS_FILE", m.file("credentials"))
                .env("AWS_CONFIG_FILE", m.file("config"))
                .env("AWS_PROFILE", profile)
                .args(["s3", "ls"]);
            cmd
        };
        // Right after mount, as an administrator would run it: the tds section is there.
        assert_eq!((prod.stats().sts_issued, tds.stats().sts_issued), (1, 1));
        env.run(&mut aws("tds")).ok();
        env.run(&mut aws("prod")).ok();
        env.run(&mut aws("default")).ok();
        env.run(&mut aws("staging")).refused("staging");
    }
}
