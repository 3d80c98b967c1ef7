//! The options of `s3credsfs dev-gateway` and of `mount --dev`'s backend, and their
//! conversion into the emulator's own `GatewayConfig`. The secrets in them are `Secret`s
//! from the moment clap parses them, so `{:?}` can never show one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use crate::gateway::{
    Account, BackendSts, GatewayConfig, DEFAULT_BACKEND_REGION, DEFAULT_CLIENT,
    DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD, DEFAULT_USER,
};
use crate::secret::Secret;

/// Options of `s3credsfs dev-gateway`. Accounts are given on the command line, so use only
/// throw-away passwords: the gateway is for development and demos, never for real secrets.
#[derive(clap::Args, Debug)]
pub struct DevGatewayArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9443")]
    pub listen: SocketAddr,

    /// Lifetime of the S3 credentials STS hands out. With --backend-sts: the advertised
    /// Expiration (the backend is asked for at least 15m and may allow longer).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub lifetime: Duration,

    /// Lifetime of Keycloak access tokens (expires_in).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub token_lifetime: Duration,

    /// Lifetime of Keycloak refresh tokens (refresh_expires_in).
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = humantime::parse_duration)]
    pub refresh_lifetime: Duration,

    /// A user with the admin role, for the password grant (repeatable).
    /// Without any --user: dev:dev-password.
    #[arg(long = "user", value_name = "NAME:PASSWORD", value_parser = NamedSecret::parse)]
    pub users: Vec<NamedSecret>,

    /// A user without the admin role: logs in, but STS answers 403 (repeatable).
    #[arg(long = "non-admin-user", value_name = "NAME:PASSWORD", value_parser = NamedSecret::parse)]
    pub non_admin_users: Vec<NamedSecret>,

    /// A confidential client with the admin role, for the client-credentials grant
    /// (repeatable). Without any: admin-client:dev-client-secret.
    #[arg(long = "client", value_name = "NAME:SECRET", value_parser = NamedSecret::parse)]
    pub clients: Vec<NamedSecret>,

    /// S3 endpoint URL reported with the credentials (EndpointURL). With a backend STS,
    /// use --backend-s3-endpoint instead.
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080",
        conflicts_with = "backend_sts"
    )]
    pub endpoint_url: String,

    /// Where real credentials come from, if anywhere (boxed: it is large, and the
    /// subcommand enum holds these options inline).
    #[command(flatten)]
    pub backend: Box<BackendArgs>,
}

/// A `NAME:SECRET` value as given. Kept whole until `DevGatewayArgs::to_config` checks
/// it, so that a malformed one is refused with a sentence naming the flag, never (as a
/// clap error would) quoting a value that holds a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedSecret {
    /// The part before the first colon; `None` without a colon (all of it is then held,
    /// unseen, as the secret).
    name: Option<String>,
    secret: Secret,
}

impl NamedSecret {
    /// Splits at the first colon (a secret may hold colons); never fails, see the type.
    pub fn parse(value: &str) -> Result<NamedSecret, Infallible> {
        Ok(match value.split_once(':') {
            Some((name, secret)) => NamedSecret {
                name: Some(name.to_owned()),
                secret: Secret::new(secret),
            },
            None => NamedSecret {
                name: None,
                secret: Secret::new(value),
            },
        })
    }
}

/// clap's parser for a secret value: straight into a `Secret`.
fn secret(value: &str) -> Result<Secret, Infallible> {
    Ok(Secret::new(value))
}

/// Options that make the emulated STS mint real credentials with `AssumeRole` on an S3
/// server's STS (moto, Ceph RGW, MinIO), as cray-sts does on CSM. A separate group so that
/// every command that runs the emulator (`dev-gateway`, `mount --dev`) can flatten it in.
/// Give all of --backend-sts, --backend-access-key, --backend-secret-key and --role-arn,
/// or none (then credentials are random and open nothing).
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
#[command(next_help_heading = "Credential backend (AssumeRole on a real STS)")]
pub struct BackendArgs {
    /// STS endpoint to call AssumeRole on, e.g. http://127.0.0.1:5000 (moto) or the RGW
    /// URL. Without it, STS hands out random credentials.
    #[arg(long, value_name = "URL")]
    pub backend_sts: Option<String>,

    /// Access key id of the user that assumes the role.
    #[arg(long, value_name = "KEY", env = "S3CREDSFS_BACKEND_ACCESS_KEY")]
    pub backend_access_key: Option<String>,

    /// Secret key of that user; prefer the environment variable (command lines are
    /// visible to other users).
    #[arg(
        long,
        value_name = "SECRET",
        env = "S3CREDSFS_BACKEND_SECRET_KEY",
        hide_env_values = true,
        value_parser = secret
    )]
    pub backend_secret_key: Option<Secret>,

    /// The role assumed for every caller (cray-sts uses one role with s3:*).
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,

    /// Region used to sign AssumeRole.
    #[arg(long, value_name = "REGION", default_value = DEFAULT_BACKEND_REGION)]
    pub backend_region: String,

    /// S3 endpoint returned as EndpointURL [default: the --backend-sts URL].
    #[arg(long, value_name = "URL")]
    pub backend_s3_endpoint: Option<String>,
}

/// No backend, with the same region default as the command line, so code that builds
/// these options by hand (rather than parsing them) behaves like an empty command line.
impl Default for BackendArgs {
    fn default() -> BackendArgs {
        BackendArgs {
            backend_sts: None,
            backend_access_key: None,
            backend_secret_key: None,
            role_arn: None,
            backend_region: DEFAULT_BACKEND_REGION.to_owned(),
            backend_s3_endpoint: None,
        }
    }
}

impl BackendArgs {
    /// The backend these options describe: `Ok(None)` when none of them is given,
    /// `Err(sentence)` when only some are, or a URL or value is malformed. Messages never
    /// repeat the secret key.
    pub fn to_backend(&self) -> Result<Option<BackendSts>, String> {
        let required = [
            ("--backend-sts", self.backend_sts.is_some(), ""),
            (
                "--backend-access-key",
                self.backend_access_key.is_some(),
                " (or S3CREDSFS_BACKEND_ACCESS_KEY)",
            ),
            (
                "--backend-secret-key",
                self.backend_secret_key.is_some(),
                " (or S3CREDSFS_BACKEND_SECRET_KEY)",
            ),
            ("--role-arn", self.role_arn.is_some(), ""),
        ];
        let given: Vec<&str> = required
            .iter()
            .filter(|(_, set, _)| *set)
            .map(|(flag, _, _)| *flag)
            .collect();
        let missing: Vec<String> = required
            .iter()
            .filter(|(_, set, _)| !*set)
            .map(|(flag, _, env)| format!("{flag}{env}"))
            .collect();
        if given.is_empty() {
            return match self.backend_s3_endpoint {
                Some(_) => Err(
                    "--backend-s3-endpoint needs a backend: give --backend-sts, \
                     --backend-access-key, --backend-secret-key and --role-arn too."
                        .to_owned(),
                ),
                None => Ok(None),
            };
        }
        if !missing.is_empty() {
            return Err(format!(
                "The AssumeRole backend needs {} as well (given: {}).",
                join_and(&missing),
                given.join(", ")
            ));
        }
        let (Some(url), Some(access_key), Some(secret_key), Some(role_arn)) = (
            &self.backend_sts,
            &self.backend_access_key,
            &self.backend_secret_key,
            &self.role_arn,
        ) else {
            unreachable!("checked above");
        };
        check_url("--backend-sts", url)?;
        if let Some(s3) = &self.backend_s3_endpoint {
            check_url("--backend-s3-endpoint", s3)?;
        }
        for (flag, value) in [
            ("--backend-access-key", access_key.as_str()),
            ("--backend-secret-key", secret_key.expose()),
            ("--role-arn", role_arn),
            ("--backend-region", &self.backend_region),
        ] {
            if value.trim().is_empty() {
                return Err(format!("{flag} must not be empty."));
            }
        }
        Ok(Some(BackendSts {
            url: url.clone(),
            access_key: access_key.clone(),
            secret_key: secret_key.clone(),
            role_arn: role_arn.clone(),
            region: self.backend_region.clone(),
            s3_endpoint: self.backend_s3_endpoint.as_ref().unwrap_or(url).clone(),
        }))
    }
}

/// "a", "a and b", "a, b and c".
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Refuses anything but an absolute http(s) URL with a host.
fn check_url(flag: &str, value: &str) -> Result<(), String> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(format!(
            "{flag} expects an absolute http(s) URL such as http://127.0.0.1:5000, not {value:?}."
        )),
    }
}

/// Checks the `NAME:SECRET` values of `flag`. Messages never repeat a value (it holds a
/// secret).
fn accounts(
    flag: &str,
    form: &str,
    values: &[NamedSecret],
    admin: bool,
) -> Result<Vec<Account>, String> {
    values
        .iter()
        .map(|v| {
            let Some(name) = &v.name else {
                return Err(format!(
                    "{flag} expects {form}, with a colon between them (for example {flag} dev:dev-password)."
                ));
            };
            if name.is_empty() || v.secret.is_empty() {
                return Err(format!(
                    "{flag} expects {form} with neither part empty."
                ));
            }
            Ok(Account {
                name: name.clone(),
                secret: v.secret.clone(),
                admin,
            })
        })
        .collect()
}

impl DevGatewayArgs {
    /// The gateway configuration these options describe, refusing malformed ones with a
    /// sentence that names the flag.
    pub fn to_config(&self) -> Result<GatewayConfig, String> {
        let mut users = accounts("--user", "NAME:PASSWORD", &self.users, true)?;
        let non_admin = accounts(
            "--non-admin-user",
            "NAME:PASSWORD",
            &self.non_admin_users,
            false,
        )?;
        // The default user stays unless --user is given (or --non-admin-user takes its name).
        if users.is_empty() && !non_admin.iter().any(|u| u.name == DEFAULT_USER) {
            users.push(Account::new(DEFAULT_USER, DEFAULT_PASSWORD, true));
        }
        users.extend(non_admin);
        let mut clients = accounts("--client", "NAME:SECRET", &self.clients, true)?;
        if clients.is_empty() {
            clients.push(Account::new(DEFAULT_CLIENT, DEFAULT_CLIENT_SECRET, true));
        }
        for (kind, list) in [("user", &users), ("client", &clients)] {
            for (i, a) in list.iter().enumerate() {
                if list[..i].iter().any(|b| b.name == a.name) {
                    return Err(format!("The {kind} {:?} is given more than once.", a.name));
                }
            }
        }
        if url::Url::parse(&self.endpoint_url).is_err() {
            return Err(format!(
                "--endpoint-url expects an absolute URL such as http://127.0.0.1:8080, not {:?}.",
                self.endpoint_url
            ));
        }
        Ok(GatewayConfig {
            listen: self.listen,
            lifetime: self.lifetime,
            token_lifetime: self.token_lifetime,
            refresh_lifetime: self.refresh_lifetime,
            users,
            clients,
            endpoint_url: self.endpoint_url.clone(),
            backend: self.backend.to_backend()?,
            tls: None,
            date_offset_seconds: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: DevGatewayArgs,
    }

    fn parse(argv: &[&str]) -> DevGatewayArgs {
        Cli::try_parse_from(std::iter::once("dev-gateway").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn defaults() {
        let args = parse(&[]);
        assert_eq!(args.listen, "127.0.0.1:9443".parse().unwrap());
        let config = args.to_config().unwrap();
        assert_eq!(config.lifetime, Duration::from_secs(3600));
        assert_eq!(config.token_lifetime, Duration::from_secs(300));
        assert_eq!(config.refresh_lifetime, Duration::from_secs(1800));
        assert_eq!(
            config.users,
            vec![Account::new("dev", "dev-password", true)]
        );
        assert_eq!(config.clients[0].name, "admin-client");
    }

    #[test]
    fn accounts_and_durations() {
        let args = parse(&[
            "--user",
            "alice:pw:with:colons",
            "--non-admin-user",
            "bob:x",
            "--client",
            "c1:s1",
            "--lifetime",
            "15m",
            "--token-lifetime",
            "30s",
        ]);
        let config = args.to_config().unwrap();
        assert_eq!(
            config.users,
            vec![
                Account::new("alice", "pw:with:colons", true),
                Account::new("bob", "x", false)
            ]
        );
        assert_eq!(config.clients, vec![Account::new("c1", "s1", true)]);
        assert_eq!(config.lifetime, Duration::from_secs(900));
        assert_eq!(config.token_lifetime, Duration::from_secs(30));
        let shown = format!("{args:?}");
        let only_viewer = parse(&["--non-admin-user", "bob:x"]).to_config().unwrap();
        assert_eq!(
            only_viewer.users,
            vec![
                Account::new("dev", "dev-password", true),
                Account::new("bob", "x", false)
            ]
        );
        assert!(shown.contains("alice") && !shown.contains("pw:with"));
    }

    /// `{:?}` of parsed options (as a log line or a panic might show them) holds none of
    /// the secrets given, malformed values included; names stay.
    #[test]
    fn debug_never_shows_a_secret() {
        let secrets = ["pw-alice", "pw-bob", "sec-c1", "colonless-pw", "backend-sk"];
        let args = parse(&[
            "--user",
            "alice:pw-alice",
            "--user",
            "colonless-pw",
            "--non-admin-user",
            "bob:pw-bob",
            "--client",
            "c1:sec-c1",
            "--backend-sts",
            "http://127.0.0.1:5000",
            "--backend-access-key",
            "AKIDEXAMPLE",
            "--backend-secret-key",
            "backend-sk",
            "--role-arn",
            "arn",
        ]);
        let shown = format!("{args:?} {args:#?}");
        for secret in secrets {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        for name in ["alice", "bob", "c1", "AKIDEXAMPLE"] {
            assert!(shown.contains(name), "{name} missing from {shown}");
        }
        let backend = args.backend.to_backend().unwrap().unwrap();
        assert_eq!(backend.secret_key.expose(), "backend-sk");
    }

    #[test]
    fn bad_values_are_plain_sentences() {
        let err = parse(&["--user", "nocolon"]).to_config().unwrap_err();
        assert!(
            err.contains("--user") && err.contains("NAME:PASSWORD"),
            "{err}"
        );
        assert!(!err.contains("nocolon"));
        let err = parse(&["--client", ":secret"]).to_config().unwrap_err();
        assert!(
            err.contains("--client") && err.contains("NAME:SECRET"),
            "{err}"
        );
        let err = parse(&["--user", "a:b", "--user", "a:c"])
            .to_config()
            .unwrap_err();
        assert!(err.contains("more than once"), "{err}");
        let err = parse(&["--endpoint-url", "not a url"])
            .to_config()
            .unwrap_err();
        assert!(err.contains("--endpoint-url"), "{err}");
    }

    const BACKEND: &[&str] = &[
        "--backend-sts",
        "http://127.0.0.1:5000",
        "--backend-access-key",
        "AKIDEXAMPLE",
        "--backend-secret-key",
        "backend-secret",
        "--role-arn",
        "arn:aws:iam::123456789012:role/s3",
    ];

    #[test]
    fn backend_all_or_nothing() {
        assert_eq!(parse(&[]).to_config().unwrap().backend, None);
        let backend = parse(BACKEND).to_config().unwrap().backend.unwrap();
        assert_eq!(backend.url, "http://127.0.0.1:5000");
        assert_eq!(backend.s3_endpoint, "http://127.0.0.1:5000");
        assert_eq!(backend.region, "us-east-1");
        assert_eq!(backend.secret_key.expose(), "backend-secret");
        for drop in [0, 2, 4, 6] {
            let mut argv = BACKEND.to_vec();
            let flag = argv.remove(drop);
            argv.remove(drop);
            let err = parse(&argv).to_config().unwrap_err();
            assert!(err.contains(&format!("needs {flag}")), "{err}");
            assert!(!err.contains("backend-secret\""), "{err}");
        }
        let err = parse(&["--role-arn", "arn"]).to_config().unwrap_err();
        assert!(
            err.contains("--backend-sts, --backend-access-key (or S3CREDSFS_BACKEND_ACCESS_KEY)"),
            "{err}"
        );
        let err = parse(&["--backend-s3-endpoint", "http://h"])
            .to_config()
            .unwrap_err();
        assert!(err.contains("--backend-sts"), "{err}");
    }

    #[test]
    fn default_backend_args_match_an_empty_command_line() {
        assert_eq!(*parse(&[]).backend, BackendArgs::default());
    }

    #[test]
    fn backend_options_and_checks() {
        let mut argv = BACKEND.to_vec();
        argv.extend([
            "--backend-region",
            "eu-1",
            "--backend-s3-endpoint",
            "http://s3:80",
        ]);
        let backend = parse(&argv).to_config().unwrap().backend.unwrap();
        assert_eq!(
            (backend.region.as_str(), backend.s3_endpoint.as_str()),
            ("eu-1", "http://s3:80")
        );
        let mut bad = BACKEND.to_vec();
        bad[1] = "127.0.0.1:5000";
        let err = parse(&bad).to_config().unwrap_err();
        assert!(err.starts_with("--backend-sts expects"), "{err}");
        let shown = format!("{:?}", parse(BACKEND));
        assert!(
            shown.contains("AKIDEXAMPLE") && !shown.contains("backend-secret"),
            "{shown}"
        );
        let mut both = BACKEND.to_vec();
        both.extend(["--endpoint-url", "http://x:1"]);
        let cli = Cli::try_parse_from(std::iter::once("dev-gateway").chain(both));
        assert!(cli.is_err(), "--endpoint-url conflicts with --backend-sts");
    }
}
