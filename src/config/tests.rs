use super::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn layer(pairs: &[(Setting, &str)]) -> Layer {
    pairs
        .iter()
        .map(|(k, v)| {
            let raw = RawValue {
                value: v.to_string(),
                source: Source::Flag(k.flag()),
            };
            (*k, raw)
        })
        .collect()
}

fn ctx() -> Context {
    Context::default()
}

fn password_user() -> Vec<(Setting, &'static str)> {
    vec![(Setting::Username, "vers"), (Setting::PasswordEnv, "PW")]
}

#[test]
fn defaults_derive_urls_from_the_gateway() {
    let s = resolve(&layer(&password_user()), &ctx()).unwrap();
    assert_eq!(s.api_gateway.as_str(), "https://api-gw-service-nmn.local/");
    assert_eq!(
        s.token_url.as_str(),
        "https://api-gw-service-nmn.local/keycloak/realms/shasta/protocol/openid-connect/token"
    );
    assert_eq!(
        s.sts_url.as_str(),
        "https://api-gw-service-nmn.local/apis/sts/token"
    );
    assert_eq!(s.client_id, "shasta");
    assert_eq!(s.timeout, Duration::from_secs(30));
    assert_eq!(s.min_validity, Duration::from_secs(1200));
    assert_eq!(s.profile, "default");
    assert_eq!(s.region, "us-east-1");
    assert_eq!(s.refresh_ahead, Duration::from_secs(600));
    assert_eq!(
        s.auth,
        AuthConfig::Password {
            username: "vers".into(),
            password: PasswordSource::Env("PW".into())
        }
    );
}

#[test]
fn explicit_urls_and_realm() {
    let mut pairs = password_user();
    pairs.extend([
        (Setting::ApiGateway, "https://gw.example/"),
        (Setting::Realm, "other"),
        (Setting::StsUrl, "https://sts.example/token"),
        (Setting::Timeout, "90s"),
    ]);
    let s = resolve(&layer(&pairs), &ctx()).unwrap();
    assert_eq!(
        s.token_url.as_str(),
        "https://gw.example/keycloak/realms/other/protocol/openid-connect/token"
    );
    assert_eq!(s.sts_url.as_str(), "https://sts.example/token");
    assert_eq!(s.timeout, Duration::from_secs(90));
}

#[test]
fn plain_http_only_to_loopback_unless_allowed() {
    let mut pairs = password_user();
    pairs.push((Setting::ApiGateway, "http://127.0.0.1:9443"));
    assert!(resolve(&layer(&pairs), &ctx()).is_ok());
    pairs.pop();
    pairs.push((Setting::ApiGateway, "http://gw.example"));
    let err = resolve(&layer(&pairs), &ctx()).unwrap_err().to_string();
    assert_eq!(
        err,
        "bad value \"http://gw.example\" for --api-gateway: plain http is only allowed to \
         loopback addresses; use https, or pass --allow-http"
    );
    pairs.push((Setting::AllowHttp, "true"));
    assert!(resolve(&layer(&pairs), &ctx()).is_ok());
}

#[test]
fn bad_values_name_key_and_source() {
    let mut pairs = password_user();
    pairs.push((Setting::Timeout, "soon"));
    let err = resolve(&layer(&pairs), &ctx()).unwrap_err().to_string();
    assert!(
        err.starts_with("bad value \"soon\" for --timeout:"),
        "{err}"
    );
    let mut pairs = password_user();
    pairs.push((Setting::RefreshAhead, "300"));
    let err = resolve(&layer(&pairs), &ctx()).unwrap_err().to_string();
    assert!(
        err.ends_with(
            "a duration needs its unit; write 300s (or 5m, 10m), or 0 to refresh only on demand"
        ),
        "{err}"
    );
    // A bare number, from a flag or variable, gets the unit it lacks.
    for key in [Setting::Timeout, Setting::MinValidity] {
        let mut pairs = password_user();
        pairs.push((key, "30"));
        let err = resolve(&layer(&pairs), &ctx()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "bad value \"30\" for {}: a duration needs its unit; write 30s (or 2m, 1h)",
                key.flag()
            )
        );
    }

    let mut pairs = password_user();
    pairs.push((Setting::Profile, "a b"));
    let err = resolve(&layer(&pairs), &ctx()).unwrap_err().to_string();
    assert!(err.contains("for --profile"), "{err}");

    for region in ["us east", "x\nregion = evil", "eu'1", &"a".repeat(65)] {
        let mut pairs = password_user();
        pairs.push((Setting::Region, region));
        let err = resolve(&layer(&pairs), &ctx()).unwrap_err().to_string();
        assert!(err.contains("for --region"), "{err}");
        assert!(err.contains("letters, digits"), "{err}");
    }
    for (value, expected) in [("0", 0), ("0s", 0), ("90s", 90), ("1h", 3600)] {
        let mut pairs = password_user();
        pairs.push((Setting::RefreshAhead, value));
        let s = resolve(&layer(&pairs), &ctx()).unwrap();
        assert_eq!(s.refresh_ahead, Duration::from_secs(expected), "{value}");
    }
    let mut pairs = password_user();
    pairs.push((Setting::RefreshAhead, "soon"));
    let err = resolve(&layer(&pairs), &ctx()).unwrap_err().to_string();
    assert!(err.contains("for --refresh-ahead"), "{err}");

    let mut pairs = password_user();
    pairs.push((Setting::Region, "default.zonegroup-2"));
    assert_eq!(
        resolve(&layer(&pairs), &ctx()).unwrap().region,
        "default.zonegroup-2"
    );

    let mut pairs = password_user();
    pairs.push((Setting::ApiGateway, "gw.example"));
    let err = resolve(&layer(&pairs), &ctx()).unwrap_err().to_string();
    assert!(err.contains("expected a URL"), "{err}");
}

#[test]
fn exactly_one_login_method() {
    let err = resolve(&layer(&[]), &ctx()).unwrap_err().to_string();
    assert!(err.starts_with("no way to log in is configured"), "{err}");

    let both = layer(&[
        (Setting::Username, "u"),
        (Setting::PasswordEnv, "P"),
        (Setting::TokenEnv, "TOKEN"),
    ]);
    let err = resolve(&both, &ctx()).unwrap_err().to_string();
    assert_eq!(
        err,
        "several ways to log in are configured (--username, --token-env); keep exactly one"
    );

    let two_passwords = layer(&[
        (Setting::Username, "u"),
        (Setting::PasswordEnv, "P"),
        (Setting::PasswordFile, "/f"),
    ]);
    let err = resolve(&two_passwords, &ctx()).unwrap_err().to_string();
    assert!(err.starts_with("several password sources"), "{err}");

    let no_user = layer(&[(Setting::PasswordEnv, "P")]);
    let err = resolve(&no_user, &ctx()).unwrap_err().to_string();
    assert_eq!(
        err,
        "--password-env gives a password but no user; add --username"
    );

    let no_password = layer(&[(Setting::Username, "u")]);
    let err = resolve(&no_password, &ctx()).unwrap_err().to_string();
    assert!(err.contains("stdin is not a terminal"), "{err}");
    let tty = Context {
        stdin_is_terminal: true,
        ..ctx()
    };
    let s = resolve(&no_password, &tty).unwrap();
    assert!(matches!(
        s.auth,
        AuthConfig::Password {
            password: PasswordSource::Prompt,
            ..
        }
    ));

    let client = layer(&[
        (Setting::ClientSecretFile, "/s"),
        (Setting::ClientId, "admin-client"),
    ]);
    let s = resolve(&client, &ctx()).unwrap();
    assert_eq!(
        s.auth,
        AuthConfig::ClientCredentials {
            secret: SecretSource::File("/s".into())
        }
    );
    assert_eq!(s.client_id, "admin-client");
}

#[test]
fn finds_the_cray_cli_login_for_this_gateway() {
    let home = tempfile::tempdir().unwrap();
    let tokens = home.path().join(".config/cray/tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let context = Context {
        home: Some(home.path().to_path_buf()),
        ..ctx()
    };
    assert!(resolve(&layer(&[]), &context).is_err());

    std::fs::write(tokens.join("api_gw_service_nmn_local.vers"), "{}").unwrap();
    std::fs::write(tokens.join("other_gw.vers"), "{}").unwrap();
    let s = resolve(&layer(&[]), &context).unwrap();
    assert_eq!(
        s.auth,
        AuthConfig::TokenFile {
            path: tokens.join("api_gw_service_nmn_local.vers")
        }
    );

    std::fs::write(tokens.join("api_gw_service_nmn_local.root"), "{}").unwrap();
    let err = resolve(&layer(&[]), &context).unwrap_err().to_string();
    assert!(err.contains("choose one with --token-file"), "{err}");

    let explicit = Context {
        cray_credentials: Some(tokens.join("other_gw.vers")),
        ..context
    };
    let s = resolve(&layer(&[]), &explicit).unwrap();
    assert_eq!(
        s.auth,
        AuthConfig::TokenFile {
            path: tokens.join("other_gw.vers")
        }
    );
}

#[test]
fn precedence_flag_over_file_over_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        "realm = \"from-file\"\ntimeout = \"5s\"\nusername = \"u\"\npassword-env = \"P\"\n",
    )
    .unwrap();
    let cli = CliLayer {
        layer: layer(&[(Setting::Realm, "from-flag")]),
        config_file: Some(file.clone()),
    };
    let s = resolve(&load_layers(&cli, &ctx()).unwrap(), &ctx()).unwrap();
    assert!(
        s.token_url.path().contains("/realms/from-flag/"),
        "{}",
        s.token_url
    );
    assert_eq!(s.timeout, Duration::from_secs(5));
    assert_eq!(s.min_validity, Duration::from_secs(1200));

    // The default file location is used when --config is absent.
    let xdg = Context {
        xdg_config_home: Some(dir.path().to_path_buf()),
        ..ctx()
    };
    std::fs::create_dir_all(dir.path().join("s3credsfs")).unwrap();
    std::fs::copy(&file, dir.path().join("s3credsfs/config.toml")).unwrap();
    let s = resolve(&load_layers(&CliLayer::default(), &xdg).unwrap(), &xdg).unwrap();
    assert!(
        s.token_url.path().contains("/realms/from-file/"),
        "{}",
        s.token_url
    );

    // An explicit --config that does not exist is an error, not silently ignored.
    let missing = CliLayer {
        config_file: Some(dir.path().join("nope.toml")),
        ..CliLayer::default()
    };
    let err = load_layers(&missing, &ctx()).unwrap_err().to_string();
    assert!(err.starts_with("cannot read the config file"), "{err}");
}

#[test]
fn each_login_method_has_its_short_name() {
    let file = PathBuf::from("/f");
    let names = [
        AuthConfig::Password {
            username: "u".into(),
            password: PasswordSource::Prompt,
        },
        AuthConfig::ClientCredentials {
            secret: SecretSource::File(file.clone()),
        },
        AuthConfig::TokenEnv { var: "T".into() },
        AuthConfig::TokenFile { path: file },
    ]
    .map(|a| a.describe());
    assert_eq!(
        names,
        ["password", "client-credentials", "token-env", "token-file"]
    );
}

#[test]
fn the_context_reads_the_environment_and_an_empty_variable_is_unset() {
    let vars = |name: &str| match name {
        "HOME" => Some("/home/u".into()),
        "XDG_CONFIG_HOME" => Some("".into()),
        "CRAY_CREDENTIALS" => Some("/c".into()),
        _ => None,
    };
    let c = Context::from_vars(vars, true);
    assert_eq!(c.home, Some(PathBuf::from("/home/u")));
    assert_eq!(c.xdg_config_home, None, "empty means unset");
    assert_eq!(c.cray_credentials, Some(PathBuf::from("/c")));
    assert!(c.stdin_is_terminal);
    assert_eq!(c.platform_ca, Some(PathBuf::from(PLATFORM_CA)));
    // The real one looks where CSM nodes keep the platform CA, as `--help` says.
    assert_eq!(
        Context::from_process().platform_ca,
        Some(PathBuf::from(PLATFORM_CA))
    );
    assert_eq!(
        Setting::CaFile.spec().fallback,
        Fallback::IfPresent(PLATFORM_CA)
    );
}

#[test]
fn the_platform_ca_is_trusted_by_default_only_when_present() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("platform-ca-certs.crt");
    let at = |path: &Path| Context {
        platform_ca: Some(path.to_path_buf()),
        ..ctx()
    };
    let s = resolve(&layer(&password_user()), &at(&ca)).unwrap();
    assert_eq!(s.ca_file, None, "absent");
    std::fs::write(&ca, "pem").unwrap();
    let s = resolve(&layer(&password_user()), &at(&ca)).unwrap();
    assert_eq!(s.ca_file, Some(ca.clone()));
    let mut pairs = password_user();
    pairs.push((Setting::CaFile, "/given.pem"));
    let s = resolve(&layer(&pairs), &at(&ca)).unwrap();
    assert_eq!(
        s.ca_file,
        Some(PathBuf::from("/given.pem")),
        "a given file wins"
    );
}

#[test]
fn a_url_with_only_a_user_name_is_refused_too() {
    for url in ["https://vers@gw.example", "https://:pw@gw.example"] {
        let mut pairs = password_user();
        pairs.push((Setting::ApiGateway, url));
        let err = resolve(&layer(&pairs), &ctx()).unwrap_err().to_string();
        assert!(
            err.ends_with("do not put credentials in the URL"),
            "{url}: {err}"
        );
    }
}

#[test]
fn a_region_may_have_64_characters_not_65() {
    let region = |len: usize| {
        let mut pairs = password_user();
        let value = "r".repeat(len);
        pairs.push((Setting::Region, Box::leak(value.into_boxed_str())));
        resolve(&layer(&pairs), &ctx())
    };
    assert_eq!(region(64).unwrap().region.len(), 64);
    assert!(region(65).is_err());
}

#[test]
fn an_empty_cray_token_directory_is_no_login_not_several() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".config/cray/tokens")).unwrap();
    let c = Context {
        home: Some(home.path().to_path_buf()),
        ..ctx()
    };
    let err = resolve(&Layer::new(), &c).unwrap_err().to_string();
    assert!(err.starts_with("no way to log in is configured"), "{err}");
}

#[test]
fn mount_settings_are_mount_only_and_every_setting_is_under_its_heading() {
    for key in [
        Setting::MinValidity,
        Setting::RefreshAhead,
        Setting::LogFile,
    ] {
        assert_eq!(key.spec().scope, Scope::Mount, "{key}");
    }
    assert_eq!(Setting::Timeout.spec().scope, Scope::Common);
    let help = <MountSettings as clap::Args>::augment_args(clap::Command::new("x"))
        .render_help()
        .to_string();
    let fetch_help = <FetchSettings as clap::Args>::augment_args(clap::Command::new("x"))
        .render_help()
        .to_string();
    assert!(help.contains("--min-validity") && !fetch_help.contains("--min-validity"));
    for &key in Setting::ALL {
        // The nearest heading above the flag's line is the setting's own.
        let at = help.find(&format!("  {} ", key.flag())).unwrap();
        let heading = help[..at]
            .lines()
            .rev()
            .find(|l| !l.starts_with(' ') && l.ends_with(':'))
            .unwrap();
        assert_eq!(heading, format!("{}:", key.heading()), "{key}");
    }
    assert_eq!(Setting::Username.heading(), "Login (exactly one way)");
}

#[test]
fn log_format_is_text_json_or_an_error() {
    use crate::logging::LogFormat;
    let s = resolve(&layer(&password_user()), &ctx()).unwrap();
    assert_eq!(s.log_format, LogFormat::Text, "the default");
    for (given, format) in [
        ("json", LogFormat::Json),
        ("JSON", LogFormat::Json),
        ("text", LogFormat::Text),
    ] {
        let mut pairs = password_user();
        pairs.push((Setting::LogFormat, given));
        assert_eq!(resolve(&layer(&pairs), &ctx()).unwrap().log_format, format);
    }
    let mut pairs = password_user();
    pairs.push((Setting::LogFormat, "xml"));
    let err = resolve(&layer(&pairs), &ctx()).unwrap_err().to_string();
    assert_eq!(
        err,
        "bad value \"xml\" for --log-format: expected text or json"
    );
}

/// The logger reads `log-format`'s variable before the configuration exists, under its
/// own name for it: the two must stay one variable.
#[test]
fn the_logger_reads_log_formats_own_variable() {
    assert_eq!(Setting::LogFormat.env_var(), crate::logging::LOG_FORMAT_ENV);
}

#[test]
fn s3_endpoint_is_unset_by_default_and_checked_like_the_sts_endpoint_url() {
    assert_eq!(
        resolve(&layer(&password_user()), &ctx())
            .unwrap()
            .s3_endpoint,
        None
    );
    let resolved = |url: &'static str| {
        let mut pairs = password_user();
        pairs.push((Setting::S3Endpoint, url));
        resolve(&layer(&pairs), &ctx())
    };
    for good in [
        "https://rgw-vip.cmn.example.com",
        // Only written into the files, never fetched by us: plain http is the STS's norm.
        "http://rgw-vip.nmn",
        "https://s3.example.com:8443/base",
    ] {
        assert_eq!(resolved(good).unwrap().s3_endpoint.as_deref(), Some(good));
    }
    for bad in [
        "ftp://x",
        "https://u:p@x",
        "https://u@x",
        "https://x/?q",
        "https://x/#f",
        "rgw-vip.cmn.example.com",
        "https://x\n.example.com",
        "",
    ] {
        let err = resolved(bad).unwrap_err();
        assert_eq!(err.exit_status(), crate::exit_status::ExitStatus::Config);
        let err = err.to_string();
        assert!(err.contains("for --s3-endpoint: "), "{bad:?}: {err}");
        assert!(
            err.ends_with(
                "use an http:// or https:// URL with a host and nothing after the path (no user, \
                 password, query or fragment), such as https://rgw-vip.cmn.SYSTEM.DOMAIN"
            ),
            "{bad:?}: {err}"
        );
        assert!(!err.contains("u:p"), "a password is never quoted: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
