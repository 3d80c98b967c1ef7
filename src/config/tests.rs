use super::*;

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
