//! `s3credsfs dev-gateway`: runs the emulated gateway in the foreground, so a person can
//! try the tool (or a `cray`-style client) without a Cray system.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use super::{
    Account, BackendSts, Gateway, GatewayConfig, DEFAULT_BACKEND_REGION, DEFAULT_CLIENT,
    DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD, DEFAULT_USER,
};

/// Options of `s3credsfs dev-gateway`. Accounts are given on the command line, so use only
/// throw-away passwords: the gateway is for development and demos, never for real secrets.
#[derive(clap::Args)]
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
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    pub users: Vec<String>,

    /// A user without the admin role: logs in, but STS answers 403 (repeatable).
    #[arg(long = "non-admin-user", value_name = "NAME:PASSWORD")]
    pub non_admin_users: Vec<String>,

    /// A confidential client with the admin role, for the client-credentials grant
    /// (repeatable). Without any: admin-client:dev-client-secret.
    #[arg(long = "client", value_name = "NAME:SECRET")]
    pub clients: Vec<String>,

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

/// Options that make the emulated STS mint real credentials with `AssumeRole` on an S3
/// server's STS (moto, Ceph RGW, MinIO), as cray-sts does on CSM. A separate group so that
/// every command that runs the emulator (`dev-gateway`, `mount --dev`) can flatten it in.
/// Give all of --backend-sts, --backend-access-key, --backend-secret-key and --role-arn,
/// or none (then credentials are random and open nothing).
#[derive(clap::Args, Clone, PartialEq, Eq)]
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
        hide_env_values = true
    )]
    pub backend_secret_key: Option<String>,

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

/// Shows the options without the secret key.
impl std::fmt::Debug for BackendArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendArgs")
            .field("backend_sts", &self.backend_sts)
            .field("backend_access_key", &self.backend_access_key)
            .field(
                "backend_secret_key",
                &self.backend_secret_key.as_ref().map(|_| "<redacted>"),
            )
            .field("role_arn", &self.role_arn)
            .field("backend_region", &self.backend_region)
            .field("backend_s3_endpoint", &self.backend_s3_endpoint)
            .finish()
    }
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
            ("--backend-sts", self.backend_sts.as_deref(), ""),
            (
                "--backend-access-key",
                self.backend_access_key.as_deref(),
                " (or S3CREDSFS_BACKEND_ACCESS_KEY)",
            ),
            (
                "--backend-secret-key",
                self.backend_secret_key.as_deref(),
                " (or S3CREDSFS_BACKEND_SECRET_KEY)",
            ),
            ("--role-arn", self.role_arn.as_deref(), ""),
        ];
        let given: Vec<&str> = required
            .iter()
            .filter(|(_, v, _)| v.is_some())
            .map(|(flag, _, _)| *flag)
            .collect();
        let missing: Vec<String> = required
            .iter()
            .filter(|(_, v, _)| v.is_none())
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
            ("--backend-access-key", access_key),
            ("--backend-secret-key", secret_key),
            ("--role-arn", role_arn),
            ("--backend-region", &self.backend_region),
        ] {
            if value.trim().is_empty() {
                return Err(format!("{flag} must not be empty."));
            }
        }
        let mut backend = BackendSts::new(url, access_key, secret_key, role_arn);
        backend.region = self.backend_region.clone();
        if let Some(s3) = &self.backend_s3_endpoint {
            backend.s3_endpoint = s3.clone();
        }
        Ok(Some(backend))
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

/// Shows the options without the passwords and secrets they contain.
impl std::fmt::Debug for DevGatewayArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |list: &[String]| -> Vec<String> {
            list.iter()
                .map(|v| v.split_once(':').map_or("?", |(n, _)| n).to_owned())
                .collect()
        };
        f.debug_struct("DevGatewayArgs")
            .field("listen", &self.listen)
            .field("lifetime", &self.lifetime)
            .field("token_lifetime", &self.token_lifetime)
            .field("refresh_lifetime", &self.refresh_lifetime)
            .field("users", &names(&self.users))
            .field("non_admin_users", &names(&self.non_admin_users))
            .field("clients", &names(&self.clients))
            .field("endpoint_url", &self.endpoint_url)
            .field("backend", &self.backend)
            .finish()
    }
}

/// Parses `NAME:SECRET` values of `flag`. Messages never repeat the value (it holds a secret).
fn parse_accounts(
    flag: &str,
    form: &str,
    values: &[String],
    admin: bool,
) -> Result<Vec<Account>, String> {
    values
        .iter()
        .map(|v| {
            let Some((name, secret)) = v.split_once(':') else {
                return Err(format!(
                    "{flag} expects {form}, with a colon between them (for example {flag} dev:dev-password)."
                ));
            };
            if name.is_empty() || secret.is_empty() {
                return Err(format!(
                    "{flag} expects {form} with neither part empty."
                ));
            }
            Ok(Account::new(name, secret, admin))
        })
        .collect()
}

/// Builds the gateway configuration from the options, refusing malformed ones.
fn config_from_args(args: &DevGatewayArgs) -> Result<GatewayConfig, String> {
    let mut users = parse_accounts("--user", "NAME:PASSWORD", &args.users, true)?;
    let non_admin = parse_accounts(
        "--non-admin-user",
        "NAME:PASSWORD",
        &args.non_admin_users,
        false,
    )?;
    // The default user stays unless --user is given (or --non-admin-user takes its name).
    if users.is_empty() && !non_admin.iter().any(|u| u.name == DEFAULT_USER) {
        users.push(Account::new(DEFAULT_USER, DEFAULT_PASSWORD, true));
    }
    users.extend(non_admin);
    let mut clients = parse_accounts("--client", "NAME:SECRET", &args.clients, true)?;
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
    if url::Url::parse(&args.endpoint_url).is_err() {
        return Err(format!(
            "--endpoint-url expects an absolute URL such as http://127.0.0.1:8080, not {:?}.",
            args.endpoint_url
        ));
    }
    Ok(GatewayConfig {
        listen: args.listen,
        lifetime: args.lifetime,
        token_lifetime: args.token_lifetime,
        refresh_lifetime: args.refresh_lifetime,
        users,
        clients,
        endpoint_url: args.endpoint_url.clone(),
        backend: args.backend.to_backend()?,
        tls: None,
    })
}

/// The banner printed on start: what this is, where it listens, whom it accepts.
fn banner(gateway: &Gateway, config: &GatewayConfig) -> String {
    // Only the built-in defaults are shown: they are public constants anyway.
    let secret_hint = |a: &Account, label: &str, default: &str| {
        if a.secret.expose() == default {
            format!(" ({label}: {default})")
        } else {
            String::new()
        }
    };
    let mut out = String::new();
    out.push_str("s3credsfs dev-gateway: DEVELOPMENT ONLY, not a real CSM gateway\n");
    out.push_str(&format!("api-gateway: {}\n", gateway.base_url()));
    out.push_str(&format!("token-url: {}\n", gateway.token_url()));
    out.push_str(&format!("sts-url: {}\n", gateway.sts_url()));
    for u in &config.users {
        let role = if u.admin { "admin" } else { "no admin role" };
        out.push_str(&format!(
            "user: {}{} [{role}]\n",
            u.name,
            secret_hint(u, "password", DEFAULT_PASSWORD)
        ));
    }
    for c in &config.clients {
        out.push_str(&format!(
            "client: {}{} [admin]\n",
            c.name,
            secret_hint(c, "secret", DEFAULT_CLIENT_SECRET)
        ));
    }
    out.push_str(&format!(
        "lifetimes: credentials {}, access token {}, refresh token {}\n",
        humantime::format_duration(config.lifetime),
        humantime::format_duration(config.token_lifetime),
        humantime::format_duration(config.refresh_lifetime),
    ));
    match &config.backend {
        Some(b) => {
            out.push_str(&format!(
                "credentials: minted by AssumeRole at {} (role {}, access key {})\n",
                b.url, b.role_arn, b.access_key
            ));
            out.push_str(&format!("endpoint-url: {}\n", b.s3_endpoint));
        }
        None => {
            out.push_str("credentials: random (they open nothing; see --backend-sts)\n");
            out.push_str(&format!("endpoint-url: {}\n", config.endpoint_url));
        }
    }
    out.push_str("Serving until interrupted (Ctrl-C or SIGTERM).\n");
    out
}

/// Runs the emulated gateway until SIGINT or SIGTERM. Prints a banner on stdout first.
/// `Err` holds a plain sentence for the user (bad option, address in use, ...).
pub async fn run_dev_gateway(args: DevGatewayArgs) -> Result<(), String> {
    let config = config_from_args(&args)?;
    let gateway = Gateway::start(config.clone())
        .await
        .map_err(|e| format!("Cannot listen on {}: {e}.", args.listen))?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(banner(&gateway, &config).as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("Cannot write to standard output: {e}."))?;
    drop(stdout);
    wait_for_stop_signal().await?;
    gateway.shutdown().await;
    Ok(())
}

async fn wait_for_stop_signal() -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("Cannot listen for SIGTERM: {e}."))?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| format!("Cannot listen for SIGINT: {e}.")),
        _ = term.recv() => Ok(()),
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
        let config = config_from_args(&args).unwrap();
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
        let config = config_from_args(&args).unwrap();
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
        let only_viewer = config_from_args(&parse(&["--non-admin-user", "bob:x"])).unwrap();
        assert_eq!(
            only_viewer.users,
            vec![
                Account::new("dev", "dev-password", true),
                Account::new("bob", "x", false)
            ]
        );
        assert!(shown.contains("alice") && !shown.contains("pw:with"));
    }

    #[test]
    fn bad_values_are_plain_sentences() {
        let err = config_from_args(&parse(&["--user", "nocolon"])).unwrap_err();
        assert!(
            err.contains("--user") && err.contains("NAME:PASSWORD"),
            "{err}"
        );
        assert!(!err.contains("nocolon"));
        let err = config_from_args(&parse(&["--client", ":secret"])).unwrap_err();
        assert!(
            err.contains("--client") && err.contains("NAME:SECRET"),
            "{err}"
        );
        let err = config_from_args(&parse(&["--user", "a:b", "--user", "a:c"])).unwrap_err();
        assert!(err.contains("more than once"), "{err}");
        let err = config_from_args(&parse(&["--endpoint-url", "not a url"])).unwrap_err();
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
        assert_eq!(config_from_args(&parse(&[])).unwrap().backend, None);
        let backend = config_from_args(&parse(BACKEND)).unwrap().backend.unwrap();
        assert_eq!(backend.url, "http://127.0.0.1:5000");
        assert_eq!(backend.s3_endpoint, "http://127.0.0.1:5000");
        assert_eq!(backend.region, "us-east-1");
        assert_eq!(backend.secret_key.expose(), "backend-secret");
        for drop in [0, 2, 4, 6] {
            let mut argv = BACKEND.to_vec();
            let flag = argv.remove(drop);
            argv.remove(drop);
            let err = config_from_args(&parse(&argv)).unwrap_err();
            assert!(err.contains(&format!("needs {flag}")), "{err}");
            assert!(!err.contains("backend-secret\""), "{err}");
        }
        let err = config_from_args(&parse(&["--role-arn", "arn"])).unwrap_err();
        assert!(
            err.contains("--backend-sts, --backend-access-key (or S3CREDSFS_BACKEND_ACCESS_KEY)"),
            "{err}"
        );
        let err = config_from_args(&parse(&["--backend-s3-endpoint", "http://h"])).unwrap_err();
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
        let backend = config_from_args(&parse(&argv)).unwrap().backend.unwrap();
        assert_eq!(
            (backend.region.as_str(), backend.s3_endpoint.as_str()),
            ("eu-1", "http://s3:80")
        );
        let mut bad = BACKEND.to_vec();
        bad[1] = "127.0.0.1:5000";
        let err = config_from_args(&parse(&bad)).unwrap_err();
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
