//! The secret-source variables that a config file which does not load still names.
//!
//! `exec` may not need the config file at all (a running mount supplies the keys), so a
//! file with a typo, an unknown key or broken TOML does not stop it; but the variables
//! that file names as holding the password, client secret or JWT are still the user's
//! secrets, and must not reach the command either.

use crate::config::{CliLayer, Context, Setting};
use std::path::Path;

/// The texts of the config files this run would read, the user's (`--config`, else the
/// default one) and the site-wide one, each when it passes the checks its kind gets (a
/// regular file that others cannot write; the site file root's).
pub fn texts(cli: &CliLayer, ctx: &Context) -> Vec<String> {
    let read = |path: &Path, kind| {
        let bytes = crate::files::read_checked(path, "config file", "", kind).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    };
    let user = crate::config::user_config_path(cli, ctx)
        .filter(|path| path != Path::new("/dev/null"))
        .and_then(|path| read(&path, crate::files::Kind::Steering));
    let site = (ctx.site_config.as_deref()).and_then(|path| read(path, crate::files::Kind::Site));
    user.into_iter().chain(site).collect()
}

/// Every value of a `keys` entry in `text`, at any depth (the top level, any profile,
/// inline tables); a text that is not TOML at all is read line by line
/// (`KEY = "VALUE"`, `profiles.a.KEY = 'VALUE'`, `KEY = VALUE # comment`).
pub fn names(text: &str, keys: &[Setting]) -> Vec<String> {
    let keys: Vec<&str> = keys.iter().map(|k| k.name()).collect();
    let mut found = Vec::new();
    match text.parse::<toml::Table>() {
        Ok(table) => collect(&toml::Value::Table(table), &keys, &mut found),
        Err(_) => {
            for line in text.lines() {
                let Some((key, value)) = line.split_once('=') else {
                    continue;
                };
                let key = key.trim().rsplit('.').next().unwrap_or_default();
                if keys.contains(&key.trim_matches(['"', '\''])) {
                    found.push(first_value(value));
                }
            }
        }
    }
    found
}

fn collect(value: &toml::Value, keys: &[&str], found: &mut Vec<String>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                match value {
                    toml::Value::String(name) if keys.contains(&key.as_str()) => {
                        found.push(name.clone())
                    }
                    _ => collect(value, keys, found),
                }
            }
        }
        toml::Value::Array(values) => values.iter().for_each(|v| collect(v, keys, found)),
        _ => {}
    }
}

/// The value at the start of `text`: a quoted string's contents, or the bare word.
fn first_value(text: &str) -> String {
    let text = text.trim_start();
    match text.chars().next() {
        Some(quote @ ('"' | '\'')) => text[1..].split(quote).next().unwrap_or_default().into(),
        _ => text
            .split(|c: char| c.is_whitespace() || c == '#')
            .next()
            .unwrap_or_default()
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: [Setting; 3] = [
        Setting::PasswordEnv,
        Setting::ClientSecretEnv,
        Setting::TokenEnv,
    ];

    #[test]
    fn toml_that_does_not_load_is_searched_at_every_depth() {
        let text = "password-env = \"TOP\"\nnot-a-setting = 1\n\
                    [profiles.a]\ntoken-env = \"TOKEN_A\"\nusername = \"PW_NOT\"\n\
                    [profiles.a]\nb = { client-secret-env = \"INLINE\" }\n";
        // [profiles.a] twice makes it invalid TOML: read line by line.
        assert!(text.parse::<toml::Table>().is_err());
        let mut found = names(text, &KEYS);
        found.sort();
        assert_eq!(found, ["TOKEN_A", "TOP"]);
        let valid = "password-env = \"TOP\"\nnot-a-setting = 1\n\
                     [profiles.a]\ntoken-env = \"TOKEN_A\"\nusername = \"PW_NOT\"\n\
                     [profiles.b]\nc = { client-secret-env = \"INLINE\" }\n";
        let mut found = names(valid, &KEYS);
        found.sort();
        assert_eq!(found, ["INLINE", "TOKEN_A", "TOP"]);
        // Arrays too: an array of tables, and a table inside an array.
        let arrays = "[[extra]]\npassword-env = \"IN_ARRAY\"\n\
                      [profiles.c]\nlist = [1, { token-env = \"IN_LIST\" }]\n";
        let mut found = names(arrays, &KEYS);
        found.sort();
        assert_eq!(found, ["IN_ARRAY", "IN_LIST"]);
    }

    #[test]
    fn the_texts_are_those_of_the_config_files_this_run_would_read() {
        let dir = tempfile::tempdir().unwrap();
        let default = dir.path().join("s3credsfs").join("config.toml");
        std::fs::create_dir(default.parent().unwrap()).unwrap();
        std::fs::write(&default, "password-env = \"DEFAULT\"\n").unwrap();
        let given = dir.path().join("given.toml");
        std::fs::write(&given, "password-env = \"GIVEN\"\n").unwrap();
        let ctx = Context {
            xdg_config_home: Some(dir.path().to_path_buf()),
            ..Context::default()
        };
        let with = |config_file: Option<&Path>| CliLayer {
            config_file: config_file.map(Path::to_path_buf),
            ..CliLayer::default()
        };
        assert_eq!(texts(&with(None), &ctx), ["password-env = \"DEFAULT\"\n"]);
        assert_eq!(
            texts(&with(Some(&given)), &ctx),
            ["password-env = \"GIVEN\"\n"]
        );
        // `--config /dev/null` means no file; a file the checks refuse is not read.
        assert!(texts(&with(Some(Path::new("/dev/null"))), &ctx).is_empty());
        assert!(texts(&with(Some(dir.path())), &ctx).is_empty());
    }

    #[test]
    fn lines_that_are_not_toml_give_their_first_value() {
        let text = "this is not toml\n profiles.x.password-env = 'SINGLE' # quoted\n\
                    \"token-env\" = BARE # a comment\nclient-secret-env =\n\
                    region = \"PW_NOT\"\n";
        assert_eq!(names(text, &KEYS), ["SINGLE", "BARE", ""]);
    }
}
