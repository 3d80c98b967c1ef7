//! The flags of `s3credsfs dev-gateway` and of `mount --dev`, and their conversion into
//! the emulator's own plain options (`crate::dev`), which check them. The secrets in them
//! are `Secret`s from the moment clap parses them, so `{:?}` can never show one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use crate::dev::gateway::DEFAULT_BACKEND_REGION;
use crate::dev::{BackendOptions, GatewayOptions, MountOptions, NamedSecret};
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

    /// S3 endpoint URL reported with the credentials (EndpointURL); `null` sends JSON
    /// null, as cray-sts does when none is configured. With a backend STS, use
    /// --backend-s3-endpoint instead.
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

    /// Front a real Keycloak at this URL (with its relative path, such as
    /// http://127.0.0.1:8080/keycloak) instead of the emulated one: /keycloak/... is
    /// forwarded to it, and STS takes only its realm's RS256 tokens (checked against its
    /// key set), with audience shasta and the shasta client's admin role, as Istio and OPA
    /// check them on CSM. Accounts and token lifetimes are then Keycloak's.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with_all = ["users", "non_admin_users", "clients"]
    )]
    pub keycloak: Option<String>,
}

impl DevGatewayArgs {
    /// The emulator's options, unchecked ([`GatewayOptions::to_config`] checks them).
    pub fn options(&self) -> GatewayOptions {
        GatewayOptions {
            listen: self.listen,
            lifetime: self.lifetime,
            token_lifetime: self.token_lifetime,
            refresh_lifetime: self.refresh_lifetime,
            users: self.users.clone(),
            non_admin_users: self.non_admin_users.clone(),
            clients: self.clients.clone(),
            endpoint_url: self.endpoint_url.clone(),
            backend: self.backend.options(),
            keycloak: self.keycloak.clone(),
        }
    }
}

/// The flags of `mount` that start the built-in gateway.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Development: the built-in gateway")]
pub struct DevArgs {
    /// Start the built-in gateway emulator on loopback and log in as its default user
    #[arg(long)]
    pub dev: bool,
    /// With --dev: lifetime of the S3 credentials the built-in gateway hands out, to
    /// watch renewal without waiting an hour [default: 1h]
    #[arg(long, value_name = "DURATION", requires = "dev", value_parser = humantime::parse_duration)]
    pub lifetime: Option<Duration>,
    /// With --dev: lifetime of the built-in gateway's Keycloak access tokens [default: 5m]
    #[arg(long, value_name = "DURATION", requires = "dev", value_parser = humantime::parse_duration)]
    pub token_lifetime: Option<Duration>,
    /// With --dev: mint credentials by AssumeRole on a real S3 STS
    #[command(flatten)]
    pub backend: Box<BackendArgs>,
    /// With --dev: front the real Keycloak at this URL (such as
    /// http://127.0.0.1:8080/keycloak) and log in with the configured login, not the
    /// built-in user; STS checks its tokens as Istio and OPA do on CSM
    #[arg(long, value_name = "URL", requires = "dev")]
    pub keycloak: Option<String>,
}

impl DevArgs {
    /// The emulator's options for `mount`, unchecked (`dev::local_gateway` checks them).
    pub fn options(&self) -> MountOptions {
        MountOptions {
            dev: self.dev,
            lifetime: self.lifetime,
            token_lifetime: self.token_lifetime,
            backend: self.backend.options(),
            keycloak: self.keycloak.clone(),
        }
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

impl BackendArgs {
    /// The emulator's backend options, unchecked ([`BackendOptions::to_backend`] checks
    /// them).
    pub fn options(&self) -> BackendOptions {
        BackendOptions {
            sts: self.backend_sts.clone(),
            access_key: self.backend_access_key.clone(),
            secret_key: self.backend_secret_key.clone(),
            role_arn: self.role_arn.clone(),
            region: self.backend_region.clone(),
            s3_endpoint: self.backend_s3_endpoint.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::gateway::Account;
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
        let config = args.options().to_config().unwrap();
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
        let config = args.options().to_config().unwrap();
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
        let only_viewer = parse(&["--non-admin-user", "bob:x"])
            .options()
            .to_config()
            .unwrap();
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
        let backend = args.backend.options().to_backend().unwrap().unwrap();
        assert_eq!(backend.secret_key.expose(), "backend-sk");
    }

    #[test]
    fn bad_values_are_plain_sentences() {
        let err = parse(&["--user", "nocolon"])
            .options()
            .to_config()
            .unwrap_err();
        assert!(
            err.contains("--user") && err.contains("NAME:PASSWORD"),
            "{err}"
        );
        assert!(!err.contains("nocolon"));
        let err = parse(&["--client", ":secret"])
            .options()
            .to_config()
            .unwrap_err();
        assert!(
            err.contains("--client") && err.contains("NAME:SECRET"),
            "{err}"
        );
        let err = parse(&["--user", "a:b", "--user", "a:c"])
            .options()
            .to_config()
            .unwrap_err();
        assert!(err.contains("more than once"), "{err}");
        let err = parse(&["--endpoint-url", "not a url"])
            .options()
            .to_config()
            .unwrap_err();
        assert!(err.contains("--endpoint-url"), "{err}");
        let none = parse(&["--endpoint-url", "null"]).options().to_config();
        assert_eq!(none.unwrap().endpoint_url, None, "null sends JSON null");
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
        assert_eq!(parse(&[]).options().to_config().unwrap().backend, None);
        let backend = parse(BACKEND)
            .options()
            .to_config()
            .unwrap()
            .backend
            .unwrap();
        assert_eq!(backend.url, "http://127.0.0.1:5000");
        assert_eq!(backend.s3_endpoint, "http://127.0.0.1:5000");
        assert_eq!(backend.region, "us-east-1");
        assert_eq!(backend.secret_key.expose(), "backend-secret");
        for drop in [0, 2, 4, 6] {
            let mut argv = BACKEND.to_vec();
            let flag = argv.remove(drop);
            argv.remove(drop);
            let err = parse(&argv).options().to_config().unwrap_err();
            assert!(err.contains(&format!("needs {flag}")), "{err}");
            assert!(!err.contains("backend-secret\""), "{err}");
        }
        let err = parse(&["--role-arn", "arn"])
            .options()
            .to_config()
            .unwrap_err();
        assert!(
            err.contains("--backend-sts, --backend-access-key (or S3CREDSFS_BACKEND_ACCESS_KEY)"),
            "{err}"
        );
        let err = parse(&["--backend-s3-endpoint", "http://h"])
            .options()
            .to_config()
            .unwrap_err();
        assert!(err.contains("--backend-sts"), "{err}");
    }

    #[test]
    fn default_backend_options_match_an_empty_command_line() {
        assert_eq!(parse(&[]).backend.options(), BackendOptions::default());
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
        let backend = parse(&argv).options().to_config().unwrap().backend.unwrap();
        assert_eq!(
            (backend.region.as_str(), backend.s3_endpoint.as_str()),
            ("eu-1", "http://s3:80")
        );
        let mut bad = BACKEND.to_vec();
        bad[1] = "127.0.0.1:5000";
        let err = parse(&bad).options().to_config().unwrap_err();
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

    #[test]
    fn keycloak_replaces_the_emulated_accounts() {
        let config = parse(&["--keycloak", "http://127.0.0.1:8080/keycloak/"])
            .options()
            .to_config()
            .unwrap();
        assert_eq!(
            config.keycloak.as_deref(),
            Some("http://127.0.0.1:8080/keycloak")
        );
        for accounts in [
            ["--user", "a:b"],
            ["--non-admin-user", "a:b"],
            ["--client", "a:b"],
        ] {
            let argv = [&["--keycloak", "http://k"][..], &accounts[..]].concat();
            let refused = Cli::try_parse_from(std::iter::once("dev-gateway").chain(argv));
            assert!(refused.is_err(), "{accounts:?} goes with --keycloak");
        }
        let err = parse(&["--keycloak", "keycloak:8080"])
            .options()
            .to_config()
            .unwrap_err();
        assert!(
            err.starts_with("--keycloak expects Keycloak's absolute http(s) URL"),
            "{err}"
        );
    }
}
