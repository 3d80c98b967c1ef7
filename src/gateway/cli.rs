//! `s3credsfs dev-gateway`: runs the emulated gateway in the foreground, so a person can
//! try the tool (or a `cray`-style client) without a Cray system.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use super::{
    Account, Gateway, GatewayConfig, DEFAULT_CLIENT, DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD,
    DEFAULT_USER,
};

/// Options of `s3credsfs dev-gateway`. Accounts are given on the command line, so use only
/// throw-away passwords: the gateway is for development and demos, never for real secrets.
#[derive(clap::Args)]
pub struct DevGatewayArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9443")]
    pub listen: SocketAddr,

    /// Lifetime of the S3 credentials STS hands out.
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

    /// S3 endpoint URL reported with the credentials (EndpointURL).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub endpoint_url: String,
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
        tls: None,
    })
}

/// The banner printed on start: what this is, where it listens, whom it accepts.
fn banner(gateway: &Gateway, config: &GatewayConfig) -> String {
    // Only the built-in defaults are shown: they are public constants anyway.
    let secret_hint = |a: &Account, label: &str, default: &str| {
        if a.secret == default {
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
    out.push_str(&format!("endpoint-url: {}\n", config.endpoint_url));
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
}
