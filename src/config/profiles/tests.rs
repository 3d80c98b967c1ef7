use super::*;
use crate::config::check_name;
use crate::config::parse_config_file;
use crate::config::CliLayer;
use std::path::Path;

const PATH: &str = "/home/u/.config/s3credsfs/config.toml";

fn file(text: &str) -> ConfigFile {
    parse_config_file(text, Path::new(PATH)).unwrap()
}

/// A layer of one setting given as its flag.
pub(super) fn flag(key: Setting, value: &str) -> Layer {
    Layer::from([(
        key,
        RawValue {
            value: value.into(),
            source: Source::Flag(key.flag()),
        },
    )])
}

fn profiles(cli: Layer, text: &str) -> Result<Profiles> {
    Profiles::from_parts(cli, file(text))
}

fn err(cli: Layer, text: &str) -> String {
    profiles(cli, text).unwrap_err().to_string()
}

const TWO: &str = r#"
username = "vers"
password-env = "PW"
region = "top-region"
default-profile = "prod"

[profiles.prod]
api-gateway = "https://prod.example"

[profiles.tds]
api-gateway = "https://tds.example"
region = "tds-region"
timeout = "5s"
"#;

#[test]
fn without_tables_the_configuration_is_one_profile_named_by_the_profile_setting() {
    let p = profiles(Layer::new(), "username = \"u\"\npassword-env = \"P\"\n").unwrap();
    assert_eq!(p.default_name(), "default");
    assert_eq!(p.names().collect::<Vec<_>>(), ["default"]);
    let s = p.resolve(None, &Context::default()).unwrap();
    assert_eq!(s.profile, "default");
    // As before profiles: --profile names the sections of the files.
    let p = profiles(
        flag(Setting::Profile, "cray"),
        "username = \"u\"\npassword-env = \"P\"\n",
    )
    .unwrap();
    assert_eq!(p.default_name(), "cray");
    assert_eq!(
        p.resolve(None, &Context::default()).unwrap().profile,
        "cray"
    );
}

#[test]
fn each_profile_inherits_the_top_level_and_flags_win_over_all() {
    let p = profiles(flag(Setting::Timeout, "9s"), TWO).unwrap();
    assert_eq!(p.default_name(), "prod");
    assert_eq!(p.names().collect::<Vec<_>>(), ["prod", "tds"]);
    let all = p.resolve_all(&Context::default()).unwrap();
    let (prod, tds) = (&all[0], &all[1]);
    assert_eq!(prod.profile, "prod");
    assert_eq!(prod.api_gateway.as_str(), "https://prod.example/");
    assert_eq!(prod.region, "top-region");
    assert_eq!(tds.profile, "tds");
    assert_eq!(tds.api_gateway.as_str(), "https://tds.example/");
    assert_eq!(tds.region, "tds-region");
    // The flag beats the table's own timeout; the login is inherited by both.
    assert_eq!(tds.timeout, std::time::Duration::from_secs(9));
    assert_eq!(prod.auth, tds.auth);
    assert_eq!(p.resolve(Some("tds"), &Context::default()).unwrap(), all[1]);
}

#[test]
fn the_default_comes_from_the_flag_then_default_profile_then_a_profile_named_default() {
    let p = profiles(flag(Setting::Profile, "tds"), TWO).unwrap();
    assert_eq!(p.default_name(), "tds");
    // The selected profile keeps its own name even though --profile is in every layer.
    let all = p.resolve_all(&Context::default()).unwrap();
    assert_eq!(
        [all[0].profile.as_str(), all[1].profile.as_str()],
        ["tds", "prod"]
    );

    let named_default = "[profiles.b]\nusername=\"u\"\npassword-env=\"P\"\n[profiles.default]\nusername=\"u\"\npassword-env=\"P\"\n";
    assert_eq!(
        profiles(Layer::new(), named_default)
            .unwrap()
            .default_name(),
        "default"
    );
    let only = "[profiles.solo]\nusername=\"u\"\npassword-env=\"P\"\n";
    assert_eq!(profiles(Layer::new(), only).unwrap().default_name(), "solo");

    let e = err(Layer::new(), "[profiles.a]\n[profiles.b]\n");
    assert_eq!(
        e,
        format!("config file {PATH} defines several profiles (a, b) and no default-profile; add default-profile = \"NAME\" or pass --profile NAME")
    );
}

#[test]
fn an_unknown_profile_is_an_error_listing_the_known_ones() {
    let e = err(flag(Setting::Profile, "nope"), TWO);
    assert_eq!(
        e,
        format!("unknown profile \"nope\" (from --profile); config file {PATH} defines: prod, tds")
    );
    let e = err(Layer::new(), "default-profile = \"gone\"\n[profiles.a]\n");
    assert!(
        e.starts_with("unknown profile \"gone\" (default-profile)"),
        "{e}"
    );
    let p = profiles(Layer::new(), TWO).unwrap();
    let e = p.layer(Some("x")).unwrap_err().to_string();
    assert_eq!(
        e,
        "unknown profile \"x\"; the known profiles are: prod, tds"
    );
    let e = err(Layer::new(), "default-profile = \"prod\"\n");
    assert!(e.contains("defines no profiles"), "{e}");
}

#[test]
fn profile_names_must_be_safe_directory_and_section_names() {
    for bad in [
        "..",
        ".",
        ".hidden",
        "a/b",
        "a b",
        "a]b",
        "",
        "é",
        &"x".repeat(65),
    ] {
        let text = format!("[profiles.{}]\n", toml::Value::String(bad.into()));
        let e = parse_config_file(&text, Path::new(PATH))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("bad profile name in `[profiles."),
            "{bad:?}: {e}"
        );
        assert!(check_name(bad).is_err(), "{bad:?}");
    }
    for good in ["prod", "tds-2", "cmn_nmn", "a.b", "9", &"x".repeat(64)] {
        assert_eq!(check_name(good), Ok(()), "{good:?}");
    }
}

#[test]
fn keys_that_make_no_sense_in_a_profile_are_refused() {
    let e = err(Layer::new(), "[profiles.a]\nprofile = \"b\"\n");
    assert!(e.starts_with("key `profile` in [profiles.a]"), "{e}");
    let e = err(
        Layer::new(),
        "log-file = \"/x\"\n[profiles.a]\nlog-file = \"/y\"\n",
    );
    assert!(e.starts_with("key `log-file` in [profiles.a]"), "{e}");
    let e = err(Layer::new(), "[profiles.a]\nmetrics-file = \"/m.prom\"\n");
    assert_eq!(
        e,
        format!(
            "key `metrics-file` in [profiles.a] of config file {PATH} is not allowed: one mount \
             has one metrics file, which shows every profile; move it to the top level"
        )
    );
    let e = err(Layer::new(), "[profiles.a]\nlog-format = \"json\"\n");
    assert!(e.starts_with("key `log-format` in [profiles.a]"), "{e}");
    let e = err(Layer::new(), "profile = \"x\"\n[profiles.a]\n");
    assert!(e.contains("use default-profile"), "{e}");
    let e = parse_config_file("[profiles.a]\nusernme = \"u\"\n", Path::new(PATH))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!("unknown key `usernme` in [profiles.a] of config file {PATH}; did you mean `username`? valid keys are: api-gateway")),
        "{e}"
    );
    let e = parse_config_file("profiles = 3\n", Path::new(PATH))
        .unwrap_err()
        .to_string();
    assert!(e.contains("must hold tables"), "{e}");
    let e = parse_config_file("[profiles]\na = 1\n", Path::new(PATH))
        .unwrap_err()
        .to_string();
    assert!(e.contains("must be a table of settings"), "{e}");
    let e = parse_config_file("default-profile = 1\n", Path::new(PATH))
        .unwrap_err()
        .to_string();
    assert!(e.contains("expected a quoted profile name"), "{e}");
    let many: String = (0..=MAX_PROFILES)
        .map(|i| format!("[profiles.p{i}]\n"))
        .collect();
    let e = err(Layer::new(), &format!("default-profile = \"p0\"\n{many}"));
    assert!(e.contains("at most 32 are allowed"), "{e}");
    let most: String = (0..MAX_PROFILES)
        .map(|i| format!("[profiles.p{i}]\n"))
        .collect();
    assert!(profiles(Layer::new(), &format!("default-profile = \"p0\"\n{most}")).is_ok());
}

#[test]
fn an_error_in_one_profile_names_it() {
    let text = TWO.replace("timeout = \"5s\"", "timeout = \"soon\"");
    let p = profiles(Layer::new(), &text).unwrap();
    assert!(p.resolve(Some("prod"), &Context::default()).is_ok());
    let e = p
        .resolve(Some("tds"), &Context::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!("in profile tds: bad value \"soon\" for key `timeout` in config file {PATH}: expected a duration like 30s, 90s or 15m")
    );
    assert_eq!(
        p.resolve_all(&Context::default()).unwrap_err().to_string(),
        e
    );
    // One profile alone: the message is as before profiles.
    let e = profiles(Layer::new(), "timeout = \"soon\"\n")
        .unwrap()
        .resolve(None, &Context::default())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("bad value \"soon\" for key `timeout`"), "{e}");
}

#[test]
fn without_a_config_file_there_is_one_default_profile() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context {
        xdg_config_home: Some(dir.path().to_path_buf()),
        ..Context::default()
    };
    let p = load_profiles(&CliLayer::default(), &ctx).unwrap();
    assert_eq!(p.names().collect::<Vec<_>>(), ["default"]);
    // Once the default file exists, it is read.
    std::fs::create_dir_all(dir.path().join("s3credsfs")).unwrap();
    std::fs::write(
        dir.path().join("s3credsfs/config.toml"),
        "[profiles.only]\n",
    )
    .unwrap();
    let p = load_profiles(&CliLayer::default(), &ctx).unwrap();
    assert_eq!(p.default_name(), "only");
}

#[test]
fn a_profile_named_default_must_be_the_default() {
    let text = "default-profile = \"prod\"\n[profiles.prod]\n[profiles.default]\n";
    let e = err(Layer::new(), text);
    assert!(
        e.contains("has a [profiles.default] table but its default profile is \"prod\""),
        "{e}"
    );
    let e = err(
        flag(Setting::Profile, "prod"),
        "[profiles.prod]\n[profiles.default]\n",
    );
    assert!(e.contains("[profiles.default]"), "{e}");
    assert!(profiles(Layer::new(), "[profiles.prod]\n[profiles.default]\n").is_ok());
}

#[test]
fn a_misspelt_variable_is_warned_about_unless_a_profile_names_it() {
    let p = profiles(
        Layer::new(),
        "default-profile = \"a\"\nusername = \"u\"\npassword-env = \"S3CREDSFS_PW\"\n[profiles.a]\n[profiles.b]\ntoken-env = \"S3CREDSFS_TOKEN\"\n",
    );
    let p = match p {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let ctx = Context {
        our_variables: [
            "S3CREDSFS_API_GATEWY",
            "S3CREDSFS_PW",
            "S3CREDSFS_TOKEN",
            "S3CREDSFS_REALM",
        ]
        .map(String::from)
        .to_vec(),
        ..Context::default()
    };
    assert_eq!(
        p.variable_warnings(&ctx),
        ["environment variable S3CREDSFS_API_GATEWY names no setting and is ignored; did you mean S3CREDSFS_API_GATEWAY?"]
    );
}

/// The documented precedence holds for logins too: a higher layer's login replaces a
/// lower layer's instead of making two.
#[test]
fn a_login_from_a_higher_layer_replaces_the_files() {
    use crate::config::{AuthConfig, PasswordSource};
    let ctx = Context::default();
    let auth = |cli: Layer, text: &str| {
        profiles(cli, text)
            .and_then(|p| p.resolve(None, &ctx))
            .map(|s| s.auth)
    };
    let file_password = "username = \"vers\"\npassword-file = \"/p\"\n";
    // Another way on the command line: the file's user and password go.
    assert_eq!(
        auth(flag(Setting::TokenEnv, "TOKEN"), file_password).unwrap(),
        AuthConfig::TokenEnv {
            var: "TOKEN".into()
        }
    );
    // Another password source: the file's user stays, its password source goes.
    assert_eq!(
        auth(flag(Setting::PasswordEnv, "PW"), file_password).unwrap(),
        AuthConfig::Password {
            username: "vers".into(),
            password: PasswordSource::Env("PW".into())
        }
    );
    // A flag beats a variable.
    let mut cli = flag(Setting::TokenEnv, "TOKEN");
    cli.insert(
        Setting::PasswordCommand,
        RawValue {
            value: "pass csm".into(),
            source: Source::Env("S3CREDSFS_PASSWORD_COMMAND".into()),
        },
    );
    assert!(matches!(
        auth(cli, "").unwrap(),
        AuthConfig::TokenEnv { .. }
    ));
    // A profile's table beats the file's top level.
    let text = format!("{file_password}[profiles.a]\ntoken-file = \"/t\"\n");
    assert!(matches!(
        auth(Layer::new(), &text).unwrap(),
        AuthConfig::TokenFile { .. }
    ));
    // Two ways in one place are still a mistake to say.
    let err = auth(Layer::new(), "token-env = \"T\"\ntoken-file = \"/t\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("several ways to log in are configured"),
        "{err}"
    );
    let mut cli = flag(Setting::TokenEnv, "TOKEN");
    cli.extend(flag(Setting::TokenFile, "/t"));
    let err = auth(cli, "").unwrap_err().to_string();
    assert!(
        err.starts_with("several ways to log in are configured"),
        "{err}"
    );
}

#[test]
fn s3_endpoint_is_set_per_profile() {
    let text = format!(
        "{TWO}\n[profiles.cmn]\napi-gateway = \"https://cmn.example\"\n\
         s3-endpoint = \"https://rgw-vip.cmn.example.com\"\n"
    );
    let all = profiles(Layer::new(), &text)
        .unwrap()
        .resolve_all(&Context::default())
        .unwrap();
    let endpoint = |name: &str| {
        let s = all.iter().find(|s| s.profile == name).unwrap();
        s.s3_endpoint.clone()
    };
    assert_eq!(
        endpoint("cmn").as_deref(),
        Some("https://rgw-vip.cmn.example.com")
    );
    assert_eq!(endpoint("prod"), None);
    assert_eq!(endpoint("tds"), None);
    let e = profiles(
        Layer::new(),
        "username = \"u\"\npassword-env = \"P\"\n[profiles.a]\ns3-endpoint = \"ftp://x\"\n",
    )
    .unwrap()
    .resolve_all(&Context::default())
    .unwrap_err()
    .to_string();
    assert!(e.contains("s3-endpoint"), "{e}");
    assert!(e.contains("with a host and nothing after the path"), "{e}");
}

/// The files named in the log's first line: the ones read, in order; an empty path (no
/// file: `--config /dev/null`, or a missing default file) is none.
#[test]
fn the_config_files_read_are_kept_in_order_and_an_empty_path_is_none() {
    let nothing = || parse_config_file("", Path::new("")).unwrap();
    let site = parse_config_file("", Path::new("/etc/s3credsfs/config.toml")).unwrap();
    let p = Profiles::from_files(Layer::new(), vec![file(""), nothing(), site]).unwrap();
    assert_eq!(
        p.config_files(),
        [
            std::path::PathBuf::from(PATH),
            "/etc/s3credsfs/config.toml".into()
        ]
    );
    let p = Profiles::from_files(Layer::new(), vec![nothing()]).unwrap();
    assert_eq!(p.config_files(), [] as [std::path::PathBuf; 0]);
}
