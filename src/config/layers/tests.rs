//! The layers' tests: flags and variables as layers, the file's keys and its mistakes.

use super::*;
use clap::Parser;

#[derive(Parser, Debug)]
struct TestCli {
    #[command(flatten)]
    settings: MountSettings,
}

fn raw(value: &str, source: Source) -> RawValue {
    RawValue {
        value: value.into(),
        source,
    }
}

#[test]
fn flags_become_a_layer_with_their_source() {
    let cli = TestCli::try_parse_from(["x", "--realm", "r1", "--insecure"]).unwrap();
    let layer = cli.settings.0.layer;
    assert_eq!(
        layer[&Setting::Realm],
        raw("r1", Source::Flag("--realm".into()))
    );
    assert_eq!(layer[&Setting::Insecure].value, "true");
    assert!(!layer.contains_key(&Setting::Timeout));
}

/// The default `--help` shows for each setting is the one resolution uses: the line
/// names exactly `spec().fallback` and no other default.
#[test]
fn help_shows_each_default_once() {
    let help = <MountSettings as Args>::augment_args(Command::new("x"))
        .render_help()
        .to_string();
    for &key in Setting::ALL {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{} ", key.flag())))
            .unwrap_or_else(|| panic!("no help line for {key}:\n{help}"));
        match key.spec().fallback.shown() {
            Some(default) => {
                assert!(line.contains(&format!("[default: {default}]")), "{line}");
                assert_eq!(line.matches("[default:").count(), 1, "{line}");
            }
            None => assert!(!line.contains("[default:"), "{line}"),
        }
    }
    assert!(help.contains("[default: 30s]") && help.contains("[default: shasta]"));
}

#[test]
fn file_keys_are_checked() {
    let path = Path::new("/etc/x.toml");
    let layer = parse_file_layer("api-gateway = \"https://gw\"\ninsecure = true\n", path).unwrap();
    assert_eq!(layer[&Setting::ApiGateway].value, "https://gw");
    assert_eq!(layer[&Setting::Insecure].value, "true");

    let err = parse_file_layer("api_gateway = \"x\"", path)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "unknown key `api_gateway` in config file /etc/x.toml; did you mean `api-gateway`? \
             valid keys are: api-gateway"
        ),
        "{err}"
    );
    assert!(err.ends_with(", default-profile, [profiles.NAME]"), "{err}");
    for (typo, meant) in [
        ("pasword-file", "password-file"),
        ("password_command", "password-command"),
        ("default_profile", "default-profile"),
    ] {
        let err = parse_file_layer(&format!("{typo} = \"x\""), path)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "unknown key `{typo}` in config file /etc/x.toml; did you mean `{meant}`? \
                 valid keys are: "
            )),
            "{err}"
        );
    }
    let err = parse_file_layer("colour = \"x\"", path)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("unknown key `colour` in config file /etc/x.toml; valid keys are: "),
        "{err}"
    );
    let err = parse_file_layer("timeout = 30", path)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "bad value 30 for key `timeout` in config file /etc/x.toml: a duration is a quoted \
         number with its unit; write timeout = \"30s\" (or \"2m\", \"1h\")"
    );
    let err = parse_file_layer("min-validity = 1.5", path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("write min-validity = \"90s\""), "{err}");
    let err = parse_file_layer("realm = 7", path).unwrap_err().to_string();
    assert!(
        err.ends_with("expected a quoted string; write realm = \"7\""),
        "{err}"
    );
    let err = parse_file_layer("realm = [1]", path)
        .unwrap_err()
        .to_string();
    assert!(err.ends_with("expected a quoted string"), "{err}");
    let err = parse_file_layer("insecure = \"yes\"", path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected true or false"), "{err}");
    let err = parse_file_layer("realm = ", path).unwrap_err().to_string();
    assert!(
        err.starts_with("config file /etc/x.toml is not valid TOML at line 1, column 9: "),
        "{err}"
    );
}

#[test]
fn aws_style_and_dotted_profile_tables_point_at_the_fix() {
    let path = Path::new("/etc/x.toml");
    let err = parse_config_file("[profile.tds]\nrealm = \"r\"\n", path)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "`[profile.tds]` in config file /etc/x.toml: did you mean `[profiles.tds]`? \
         Profile tables are [profiles.NAME]"
    );
    let err = parse_config_file("[profile]\n", path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("did you mean `[profiles.NAME]`?"), "{err}");
    let err = parse_config_file("[profiles.a.b]\nrealm = \"r\"\n", path)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "`[profiles.a.b]` in config file /etc/x.toml is a table inside profile \"a\"; \
         a profile name with a `.` needs quotes: `[profiles.\"a.b\"]`"
    );
    let err = parse_config_file("[profiles.a.b.c]\n", path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`[profiles.\"a.b.c\"]`"), "{err}");
    // Quoted, the name is one profile.
    let file = parse_config_file("[profiles.\"a.b\"]\nrealm = \"r\"\n", path).unwrap();
    assert_eq!(file.profiles["a.b"][&Setting::Realm].value, "r");
    // A setting's misplaced table is no profile hint.
    let err = parse_config_file("[realm]\n", path)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("bad value {} for key `realm`"), "{err}");
}

#[test]
fn toml_errors_give_line_and_column() {
    let path = Path::new("/etc/x.toml");
    let text = "realm = \"shasta\"\n# é\nusername = \"vers\nclient-id = \"x\"\n";
    let err = parse_file_layer(text, path).unwrap_err().to_string();
    assert!(
        err.starts_with("config file /etc/x.toml is not valid TOML at line 3, column 17: "),
        "{err}"
    );
    let err = parse_file_layer("[profiles.a]\nrealm = shasta\n", path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("at line 2, column 9: "), "{err}");
    // The parser quotes a key as it decoded it: no escape reaches the terminal.
    let err = parse_file_layer("\"\\u001b[2J\" = 1\n\"\\u001b[2J\" = 2\n", path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("duplicate key") && err.contains("[2J"),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert_eq!(line_and_column("ab\ncd", 4), (2, 2));
    assert_eq!(line_and_column("éé", 2), (1, 2), "columns count characters");
    assert_eq!(line_and_column("é", 1), (1, 1), "inside a character");
    assert_eq!(line_and_column("x", 99), (1, 2), "past the end");
}

#[test]
fn earlier_layers_win() {
    let mut cli = Layer::new();
    cli.insert(
        Setting::Realm,
        raw("from-flag", Source::Flag("--realm".into())),
    );
    let mut file = Layer::new();
    file.insert(Setting::Realm, raw("from-file", Source::File("/f".into())));
    file.insert(Setting::Timeout, raw("5s", Source::File("/f".into())));
    let merged = merge([cli, file]);
    assert_eq!(merged[&Setting::Realm].value, "from-flag");
    assert_eq!(merged[&Setting::Timeout].value, "5s");
}

#[test]
fn errors_name_key_and_source() {
    let v = raw("soon", Source::Env("S3CREDSFS_TIMEOUT".into()));
    assert_eq!(
        v.error(Setting::Timeout, "expected a duration like 30s")
            .to_string(),
        "bad value \"soon\" for environment variable S3CREDSFS_TIMEOUT: expected a duration like 30s"
    );
}

#[test]
fn a_variable_is_a_layer_value_named_after_the_variable() {
    // A variable no other unit test reads or expects unset.
    std::env::set_var("S3CREDSFS_CLIENT_ID", "from-the-environment");
    let cli = TestCli::try_parse_from(["x"]).unwrap();
    std::env::remove_var("S3CREDSFS_CLIENT_ID");
    assert_eq!(
        cli.settings.0.layer[&Setting::ClientId],
        raw(
            "from-the-environment",
            Source::Env("S3CREDSFS_CLIENT_ID".into())
        )
    );
}

#[test]
fn an_at_sign_before_the_scheme_is_not_user_info() {
    let err = raw("a@b://c", Source::Flag("--api-gateway".into()))
        .error(Setting::ApiGateway, "why")
        .to_string();
    assert_eq!(err, "bad value \"a@b://c\" for --api-gateway: why");
}

#[test]
fn errors_never_quote_a_password_in_a_url() {
    for value in [
        "https://admin:hunter2@gw.example",
        "https://admin:hunter2@gw example",
        "ftp://hunter2@gw",
        "https://admin:p@ss:hunter2@gw/x",
        // What the URL parser also reads as user info: no slashes, one, or backslashes.
        "https:admin:hunter2@gw.example",
        "https:/admin:hunter2@gw.example",
        "https:\\\\admin:hunter2@gw.example",
        "HTTP:admin:hunter2@gw.example",
        " https://admin:hunter2@gw.example",
        "https:\t//admin:hunter2@gw.example",
    ] {
        if let Ok(url) = url::Url::parse(value) {
            // The parser reads these as credentials, so they are ones the user wrote.
            assert!(
                url.password().is_some() || url.username() == "hunter2",
                "{value}"
            );
        }
        let err = raw(value, Source::Flag("--api-gateway".into()))
            .error(Setting::ApiGateway, "why")
            .to_string();
        assert!(!err.contains("hunter2") && !err.contains("admin"), "{err}");
        assert!(err.contains("<redacted>@"), "{err}");
    }
    let long = raw(
        &"x\u{1b}".repeat(1000),
        Source::Env("S3CREDSFS_REALM".into()),
    );
    let err = long.error(Setting::Realm, "why").to_string();
    assert!(err.len() < 400 && !err.contains('\u{1b}'), "{err}");
}

#[test]
fn a_redacted_url_keeps_its_scheme_slashes_and_host() {
    // What the user can recognise stays: the scheme with the slashes after it, and the
    // host; only what lies between them is hidden.
    for (value, shown) in [
        (
            "https://admin:hunter2@gw.example",
            r#""https://<redacted>@gw.example""#,
        ),
        ("https:/admin:hunter2@gw", r#""https:/<redacted>@gw""#),
        ("https:admin:hunter2@gw", r#""https:<redacted>@gw""#),
        (r"https:\admin:pw@gw", r#""https:\\<redacted>@gw""#),
        ("ftp://hunter2@gw/x", r#""ftp://<redacted>@gw/x""#),
        ("gw.example@x", r#""gw.example@x""#),
    ] {
        let value = raw(value, Source::Flag("--api-gateway".into()));
        assert_eq!(value.shown(), shown);
    }
}

#[test]
fn logins_clash_across_ways_and_between_sources_of_one_secret() {
    use Setting::*;
    for (a, b, clash) in [
        (TokenFile, Username, true),
        (TokenEnv, TokenFile, true),
        (ClientSecretEnv, PasswordFile, true),
        (PasswordEnv, PasswordFile, true),
        (ClientSecretEnv, ClientSecretFile, true),
        (Username, PasswordFile, false),
        (PasswordCommand, Username, false),
        (Username, Username, false),
        (TokenFile, TokenFile, false),
        (TokenFile, Realm, false),
        (Realm, ApiGateway, false),
    ] {
        assert_eq!(logins_clash(a, b), clash, "{a} {b}");
        assert_eq!(logins_clash(b, a), clash, "{b} {a}");
    }
}

#[test]
fn profile_names_are_quoted_in_headers_only_when_a_bare_key_cannot_hold_them() {
    assert_eq!(section_name("tds"), "tds");
    assert_eq!(section_name("a-b_c9"), "a-b_c9");
    assert_eq!(section_name("a.b"), "\"a.b\"");
    assert_eq!(section_name(""), "\"\"");
    assert_eq!(section_name("a b"), "\"a b\"");
}
