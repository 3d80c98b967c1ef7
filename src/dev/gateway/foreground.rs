//! `s3credsfs dev-gateway`: serves the emulated gateway in the foreground, so a person can
//! try the tool (or a `cray`-style client) without a Cray system. Its options are parsed
//! in `crate::cli`; this side takes only a `GatewayConfig`.

use std::io::Write;

use super::config::{Account, GatewayConfig, DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD, REALM};
use super::instance::Gateway;

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
    if let Some(keycloak) = &config.keycloak {
        out.push_str(&format!(
            "keycloak: {keycloak} (forwarded from /keycloak/)\n"
        ));
        out.push_str(&format!(
            "issuer: {keycloak}/realms/{REALM} (RS256 tokens checked against its key set; audience {REALM} and the {REALM} client's admin role required)\n"
        ));
        out.push_str(&format!(
            "lifetimes: credentials {}, tokens as Keycloak's realm sets them\n",
            humantime::format_duration(config.lifetime)
        ));
    }
    let emulated = config.keycloak.is_none();
    for u in config.users.iter().filter(|_| emulated) {
        let role = if u.admin { "admin" } else { "no admin role" };
        out.push_str(&format!(
            "user: {}{} [{role}]\n",
            u.name,
            secret_hint(u, "password", DEFAULT_PASSWORD)
        ));
    }
    for c in config.clients.iter().filter(|_| emulated) {
        out.push_str(&format!(
            "client: {}{} [admin]\n",
            c.name,
            secret_hint(c, "secret", DEFAULT_CLIENT_SECRET)
        ));
    }
    if emulated {
        out.push_str(&format!(
            "lifetimes: credentials {}, access token {}, refresh token {}\n",
            humantime::format_duration(config.lifetime),
            humantime::format_duration(config.token_lifetime),
            humantime::format_duration(config.refresh_lifetime),
        ));
    }
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
            let shown = config
                .endpoint_url
                .as_deref()
                .unwrap_or("null (none configured)");
            out.push_str(&format!("endpoint-url: {shown}\n"));
        }
    }
    out.push_str("Serving until interrupted (Ctrl-C or SIGTERM).\n");
    out
}

/// Runs the emulated gateway until SIGINT or SIGTERM. Prints a banner on stdout first.
/// `Err` holds a plain sentence for the user (bad option, address in use, ...).
pub async fn run_dev_gateway(config: GatewayConfig) -> Result<(), String> {
    let gateway = Gateway::start(config.clone())
        .await
        .map_err(|e| match e.kind() {
            // A backend or Keycloak it cannot use: the sentence says which and why.
            std::io::ErrorKind::InvalidInput => {
                format!("{}.", e.to_string().trim_end_matches('.'))
            }
            _ => format!("Cannot listen on {}: {e}.", config.listen),
        })?;
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
