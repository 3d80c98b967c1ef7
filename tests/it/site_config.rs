//! The site-wide config file the RPM ships (`contrib/etc/config.toml`, installed as
//! `/etc/s3credsfs/config.toml`): inert as shipped, and every example in it is a valid
//! setting, so uncommenting one never meets "unknown key".

use s3credsfs::config::{parse_config_file, ConfigFile, Setting};
use std::path::Path;

fn shipped() -> (String, &'static Path) {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/etc/config.toml"
    ));
    (std::fs::read_to_string(path).unwrap(), path)
}

#[test]
fn the_shipped_site_file_sets_nothing() {
    let (text, path) = shipped();
    assert_eq!(
        parse_config_file(&text, path).unwrap(),
        ConfigFile {
            path: path.into(),
            ..ConfigFile::default()
        }
    );
}

#[test]
fn every_commented_example_in_the_site_file_is_a_valid_setting() {
    let (text, path) = shipped();
    let examples: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.starts_with('[') || l.contains(" = "))
        .map(|l| format!("{l}\n"))
        .collect();
    let file = parse_config_file(&examples, path).unwrap_or_else(|e| panic!("{e}\n{examples}"));
    assert_eq!(file.default_profile.as_deref(), Some("prod"));
    assert_eq!(file.profiles.len(), 2, "{examples}");
    for key in [
        Setting::ApiGateway,
        Setting::CaFile,
        Setting::Realm,
        Setting::ClientId,
        Setting::Timeout,
        Setting::Region,
    ] {
        assert!(file.top.contains_key(&key), "{key} in {examples}");
    }
}
