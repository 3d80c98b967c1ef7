//! A running gateway: binds, starts the server task, and gives tests its URLs, counters
//! and fault injection.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::config::{Endpoint, Fault, GatewayConfig, Stats, Times, REALM, STS_TOKEN_PATH};
use super::{server, state, upstream};

/// A running emulated gateway. Dropping it (or [`Gateway::shutdown`]) stops serving.
pub struct Gateway {
    state: Arc<state::State>,
    addr: SocketAddr,
    base_url: String,
    task: Option<JoinHandle<()>>,
}

impl Gateway {
    /// Binds `config.listen` and serves on the current tokio runtime. A backend STS whose
    /// URL is unusable is an `InvalidInput` error.
    pub async fn start(config: GatewayConfig) -> std::io::Result<Gateway> {
        let listener = TcpListener::bind(config.listen).await?;
        Self::serve(listener, config).await
    }

    /// Serves on a listener bound earlier (`mount --dev` binds before it forks, so the
    /// URL is known before the runtime exists); `config.listen` is ignored.
    pub async fn start_on(
        listener: std::net::TcpListener,
        config: GatewayConfig,
    ) -> std::io::Result<Gateway> {
        listener.set_nonblocking(true)?;
        Self::serve(TcpListener::from_std(listener)?, config).await
    }

    /// With `config.keycloak`, first reads that Keycloak's realm configuration and keys:
    /// one it cannot read is an `InvalidInput` error whose text is a plain sentence.
    async fn serve(listener: TcpListener, config: GatewayConfig) -> std::io::Result<Gateway> {
        let invalid = |why| std::io::Error::new(std::io::ErrorKind::InvalidInput, why);
        let addr = listener.local_addr()?;
        let base_url = base_url_for(addr, config.tls.is_some());
        let tls = config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let keycloak = match &config.keycloak {
            Some(url) => Some(
                upstream::KeycloakUpstream::connect(url)
                    .await
                    .map_err(invalid)?,
            ),
            None => None,
        };
        let state = state::State::new(config, &base_url, keycloak).map_err(invalid)?;
        let state = Arc::new(state);
        let task = tokio::spawn(server::accept_loop(listener, state.clone(), tls));
        Ok(Gateway {
            state,
            addr,
            base_url,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`, or `https://localhost:PORT` with TLS (so a certificate for
    /// `localhost` verifies). An unspecified listen address is reached via loopback.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Keycloak token URL of realm `shasta`.
    pub fn token_url(&self) -> String {
        format!(
            "{}/keycloak/realms/{REALM}/protocol/openid-connect/token",
            self.base_url
        )
    }

    /// The STS token URL.
    pub fn sts_url(&self) -> String {
        format!("{}{STS_TOKEN_PATH}", self.base_url)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// Every secret this gateway has received (passwords, client secrets, refresh tokens,
    /// Bearer JWTs) or issued (access and refresh tokens, secret keys, session tokens), so
    /// a test can search logs and messages for all of them.
    pub fn secrets(&self) -> Vec<String> {
        self.state.secrets()
    }

    /// Queues `fault` for `endpoint`. Faults are used in FIFO order per endpoint.
    pub fn inject(&self, endpoint: Endpoint, fault: Fault, times: Times) {
        self.state.inject(endpoint, fault, times);
    }

    /// Removes every queued fault, including `Times::Always` ones.
    pub fn clear_faults(&self) {
        self.state.clear_faults();
    }

    /// Ends every Keycloak session so far: their refresh tokens now get 400
    /// "Token is not active" (as after an admin logs a user out). Access tokens already
    /// issued stay valid until they expire, as with the real gateway.
    pub fn revoke_sessions(&self) {
        self.state.revoke_sessions();
    }

    /// Polls the counters every 10 ms until `what` holds (true) or `deadline` passes
    /// (false); lets tests wait for a background client without fixed sleeps.
    pub async fn wait_for(&self, what: impl Fn(&Stats) -> bool, deadline: Duration) -> bool {
        let end = Instant::now() + deadline;
        loop {
            if what(&self.stats()) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops serving and waits until the listener and all connections are closed.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn base_url_for(addr: SocketAddr, tls: bool) -> String {
    let ip = addr.ip();
    if tls && (ip.is_loopback() || ip.is_unspecified()) {
        return format!("https://localhost:{}", addr.port());
    }
    let ip = match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        other => other,
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::gateway::backend::BackendSts;
    use crate::dev::gateway::config::{DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD};

    #[test]
    fn base_urls() {
        let a: SocketAddr = "127.0.0.1:9443".parse().unwrap();
        assert_eq!(base_url_for(a, false), "http://127.0.0.1:9443");
        assert_eq!(base_url_for(a, true), "https://localhost:9443");
        let any: SocketAddr = "0.0.0.0:80".parse().unwrap();
        assert_eq!(base_url_for(any, false), "http://127.0.0.1:80");
        let v6: SocketAddr = "[::]:80".parse().unwrap();
        assert_eq!(base_url_for(v6, false), "http://[::1]:80");
        let lan: SocketAddr = "10.1.2.3:443".parse().unwrap();
        assert_eq!(base_url_for(lan, true), "https://10.1.2.3:443");
    }

    #[test]
    fn debug_hides_secrets() {
        let config = GatewayConfig {
            backend: Some(BackendSts::new(
                "http://h:1",
                "AKID",
                "backend-secret",
                "arn",
            )),
            ..GatewayConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("backend-secret"));
        assert!(!shown.contains(DEFAULT_PASSWORD));
        assert!(!shown.contains(DEFAULT_CLIENT_SECRET));
    }
}
