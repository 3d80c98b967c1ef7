//! Several systems in one configuration: `[profiles.NAME]` tables, each against a
//! built-in gateway of its own. `fetch --profile` here; real mounts and the AWS CLI in
//! the gated tiers.

use crate::common;

use common::*;
use s3credsfs::gateway::{Gateway, DEFAULT_PASSWORD};
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
    use s3credsfs::gateway::{Endpoint, Fault, Times};

    #[test]
    fn one_mount_serves_every_profile_and_fetches_each_on_first_read() {
        let (prod, tds) = (TestGateway::start(|_| {}), TestGateway::start(|_| {}));
        let m =
            Mounted::start_configured(&two_profiles(&prod.gw.base_url(), &tds.gw.base_url()), &[]);
        // Mounting fetched the default profile only.
        assert_eq!((prod.stats().sts_issued, tds.stats().sts_issued), (1, 0));
        let listed: Vec<String> = std::fs::read_dir(m.file("profiles"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(listed.len(), 2);
        assert!(listed.contains(&"prod".into()) && listed.contains(&"tds".into()));
        assert_eq!(tds.stats().sts_issued, 0, "listing fetches nothing");

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
        let broken = Fault::Status {
            status: 500,
            content_type: "application/json".into(),
            body: r#"{"detail": "Ceph is down"}"#.into(),
        };
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
        let refused = Fault::Status {
            status: 403,
            content_type: "text/plain".into(),
            body: "role missing".into(),
        };
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

        let out = bin().arg("status").arg(&m.path).output().unwrap();
        assert!(out.status.success());
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

#[cfg(feature = "s3-tests")]
mod clients {
    use super::two_profiles;
    use crate::common::clients::*;
    use crate::common::mount::*;
    use crate::common::s3::S3Server;

    /// `AWS_PROFILE=tds aws s3 ls` with the mount's root files: the AWS CLI takes the
    /// tds section and its `credential_process`, and the tds gateway is the one asked.
    #[test]
    fn aws_cli_picks_a_profile_from_the_root_files() {
        let s3 = S3Server::start();
        let prod = TestGateway::start(|c| c.backend = Some(s3.backend()));
        let tds = TestGateway::start(|c| c.backend = Some(s3.backend()));
        let m =
            Mounted::start_configured(&two_profiles(&prod.gw.base_url(), &tds.gw.base_url()), &[]);
        let env = ClientEnv::new();
        let aws = |profile: &str| {
            let mut cmd = env.command("aws");
            cmd.env("AWS_SHARED_CREDENTIALS_FILE", m.file("credentials"))
                .env("AWS_CONFIG_FILE", m.file("config"))
                .env("AWS_PROFILE", profile)
                .args(["s3", "ls", &format!("s3://{}/", s3.bucket)]);
            cmd
        };
        assert_eq!(tds.stats().sts_issued, 0);
        env.run(&mut aws("tds")).ok();
        assert_eq!(tds.stats().sts_issued, 1, "the tds profile was read");
        env.run(&mut aws("prod")).ok();
        env.run(&mut aws("default")).ok();
        env.run(&mut aws("staging")).refused("staging");
    }
}
