//! `s3credsfs exec` gives the command short-lived keys, never the login secret behind
//! them: every variable a setting of the run names as a secret's source (as a flag, an
//! `S3CREDSFS_*` variable or a config-file key) is gone from the command's environment.
//! `CRAY_CREDENTIALS`, which names a file rather than holding a secret, stays.

use crate::common;

use common::mount::TestGateway;
use s3credsfs::dev::gateway::{
    DEFAULT_CLIENT, DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD, DEFAULT_USER,
};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};

/// A JWT from `gw`'s Keycloak, for `--token-env`.
fn jwt(gw: &TestGateway) -> String {
    let url = gw.gw.token_url();
    gw.runtime().block_on(async {
        let reply: serde_json::Value = reqwest::Client::new()
            .post(url)
            .form(&[
                ("grant_type", "password"),
                ("client_id", s3credsfs::dev::gateway::PUBLIC_CLIENT),
                ("username", DEFAULT_USER),
                ("password", DEFAULT_PASSWORD),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        reply["access_token"].as_str().unwrap().to_string()
    })
}

/// The environment `env` printed under `exec` with `args` and `vars`.
fn child_env(gw: &TestGateway, args: &[&str], vars: &[(&str, &str)]) -> BTreeMap<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_s3credsfs"))
        .env_clear()
        .envs(common::clean_env())
        .env("CRAY_CREDENTIALS", "/nonexistent/cray-token")
        .env("UNRELATED", "kept")
        .envs(vars.iter().copied())
        .args(["exec", "--api-gateway", &gw.gw.base_url()])
        .args(args)
        .args(["--", "env"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// How a run names the variable, its arguments, its variables, and the secret's name.
type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

#[test]
fn no_variable_named_as_a_login_secret_reaches_the_command() {
    let gw = TestGateway::start(|_| {});
    let token = jwt(&gw);
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str, text: &str| {
        common::private_file(dir.path(), name, text)
            .to_str()
            .unwrap()
            .to_string()
    };
    let password_file = config(
        "password.toml",
        &format!("username = \"{DEFAULT_USER}\"\npassword-env = \"PW_FILE\"\n"),
    );
    let secret_file = config(
        "secret.toml",
        &format!("client-id = \"{DEFAULT_CLIENT}\"\nclient-secret-env = \"CS_FILE\"\n"),
    );
    let token_file = config("token.toml", "token-env = \"TK_FILE\"\n");
    let user = ["--username", DEFAULT_USER];
    let client = ["--client-id", DEFAULT_CLIENT];
    let cases: Vec<Case> = vec![
        (
            "--password-env",
            [&user[..], &["--password-env", "PW"]].concat(),
            vec![("PW", DEFAULT_PASSWORD)],
            "PW",
        ),
        (
            "S3CREDSFS_PASSWORD_ENV",
            user.to_vec(),
            vec![
                ("S3CREDSFS_PASSWORD_ENV", "PW_VAR"),
                ("PW_VAR", DEFAULT_PASSWORD),
            ],
            "PW_VAR",
        ),
        (
            "S3CREDSFS_PASSWORD_ENV that the flag overrides",
            [&user[..], &["--password-env", "PW"]].concat(),
            vec![
                ("PW", DEFAULT_PASSWORD),
                ("S3CREDSFS_PASSWORD_ENV", "PW_OVERRIDDEN"),
                ("PW_OVERRIDDEN", "another-password"),
            ],
            "PW_OVERRIDDEN",
        ),
        (
            "password-env in the config file",
            vec!["--config", &password_file],
            vec![("PW_FILE", DEFAULT_PASSWORD)],
            "PW_FILE",
        ),
        (
            "--client-secret-env",
            [&client[..], &["--client-secret-env", "CS"]].concat(),
            vec![("CS", DEFAULT_CLIENT_SECRET)],
            "CS",
        ),
        (
            "S3CREDSFS_CLIENT_SECRET_ENV",
            client.to_vec(),
            vec![
                ("S3CREDSFS_CLIENT_SECRET_ENV", "CS_VAR"),
                ("CS_VAR", DEFAULT_CLIENT_SECRET),
            ],
            "CS_VAR",
        ),
        (
            "client-secret-env in the config file",
            vec!["--config", &secret_file],
            vec![("CS_FILE", DEFAULT_CLIENT_SECRET)],
            "CS_FILE",
        ),
        (
            "--token-env",
            vec!["--token-env", "TK"],
            vec![("TK", &token)],
            "TK",
        ),
        (
            "S3CREDSFS_TOKEN_ENV",
            vec![],
            vec![("S3CREDSFS_TOKEN_ENV", "TK_VAR"), ("TK_VAR", &token)],
            "TK_VAR",
        ),
        (
            "token-env in the config file",
            vec!["--config", &token_file],
            vec![("TK_FILE", &token)],
            "TK_FILE",
        ),
    ];
    for (way, args, vars, secret) in cases {
        let env = child_env(&gw, &args, &vars);
        assert!(env.contains_key("AWS_ACCESS_KEY_ID"), "{way}: {env:?}");
        assert_eq!(
            env.get(secret),
            None,
            "{way}: the secret reached the command"
        );
        let value = vars.iter().find(|(n, _)| *n == secret).unwrap().1;
        assert!(
            !env.values().any(|v| v == value),
            "{way}: the secret's value reached the command"
        );
        assert_eq!(env["UNRELATED"], "kept", "{way}");
        assert_eq!(env["CRAY_CREDENTIALS"], "/nonexistent/cray-token", "{way}");
    }
}

/// A config file that does not load (a typo, an unknown key, broken TOML) does not stop
/// `exec` when a mount supplies the keys; the variables it names as secret sources are
/// still hidden from the command.
#[cfg(feature = "fuse-tests")]
#[test]
fn a_config_file_that_does_not_load_still_hides_the_variables_it_names() {
    use common::mount::Mounted;
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &[]);
    let at = m.path.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = [
        (
            "an unknown key",
            "username = \"u\"\npassword-env = \"PW_TYPO\"\npasword-file = \"/x\"\n",
            "PW_TYPO",
        ),
        (
            "broken TOML",
            "[profiles.tds]\ntoken-env = \"TK_BROKEN\" # the team's\nthis is not TOML\n",
            "TK_BROKEN",
        ),
    ];
    for (why, text, secret) in files {
        let config = common::private_file(dir.path(), "config.toml", text);
        let env = child_env(
            &gw,
            &["--mountpoint", at, "--config", config.to_str().unwrap()],
            &[(secret, "the-login-secret")],
        );
        assert_eq!(
            env.get("AWS_ACCESS_KEY_ID").map(String::as_str),
            Some(m.access_key().as_str()),
            "{why}: the mount's keys"
        );
        assert_eq!(
            env.get(secret),
            None,
            "{why}: the secret reached the command"
        );
        assert!(
            !env.values().any(|v| v == "the-login-secret"),
            "{why}: the secret's value reached the command"
        );
        assert_eq!(env["UNRELATED"], "kept", "{why}");
    }
}

/// The variables a running mount reads its logins from are kept from the command of an
/// `exec` that uses it, though that run's own settings do not name them (the mount was
/// started with `--password-env PW` from a shell where `PW` stays exported): each
/// profile's, by name, from the mount's `status`.
#[cfg(feature = "fuse-tests")]
#[test]
fn the_variables_a_mount_reads_its_logins_from_are_hidden_too() {
    use common::mount::Mounted;
    let gw = TestGateway::start(|_| {});
    let config = format!(
        "default-profile = \"a\"\n\
         [profiles.a]\napi-gateway = \"{base}\"\nusername = \"dev\"\npassword-env = \"PW\"\n\
         [profiles.b]\napi-gateway = \"{base}\"\ntoken-env = \"TK_B\"\n",
        base = gw.gw.base_url()
    );
    let m = Mounted::start_configured(&config, &[]);
    let at = m.path.to_str().unwrap();
    let token = jwt(&gw);
    let env = child_env(
        &gw,
        &["--mountpoint", at],
        &[("PW", DEFAULT_PASSWORD), ("TK_B", &token)],
    );
    assert_eq!(
        env.get("AWS_ACCESS_KEY_ID").map(String::as_str),
        Some(m.access_key().as_str()),
        "the mount's keys"
    );
    for (name, value) in [("PW", DEFAULT_PASSWORD), ("TK_B", token.as_str())] {
        assert_eq!(env.get(name), None, "{name} reached the command");
        assert!(
            !env.values().any(|v| v == value),
            "{name}'s value reached the command"
        );
    }
    assert_eq!(env["UNRELATED"], "kept");
}
