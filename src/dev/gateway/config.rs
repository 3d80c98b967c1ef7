//! What a gateway is told and what it counts: its configuration, the accounts and paths it
//! serves, the faults a test may inject, and its counters. Every other part of the gateway
//! reads these; they import nothing of the gateway but the backend's description.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::backend::BackendSts;

/// User name accepted when no `--user` is given (and in [`GatewayConfig::default`]), so a
/// demo works with no setup.
pub const DEFAULT_USER: &str = "dev";
/// Password of [`DEFAULT_USER`]; public on purpose, the gateway is development-only.
pub const DEFAULT_PASSWORD: &str = "dev-password";
/// Confidential client accepted when no `--client` is given; named like CSM's own
/// `admin-client` so client-credentials setups look the same as on a real system.
pub const DEFAULT_CLIENT: &str = "admin-client";
/// Secret of [`DEFAULT_CLIENT`]; public on purpose, the gateway is development-only.
pub const DEFAULT_CLIENT_SECRET: &str = "dev-client-secret";
/// The only Keycloak realm served, as on CSM; also the audience and the client whose
/// `admin` role STS requires.
pub const REALM: &str = "shasta";
/// The public Keycloak client used for password grants, as the `cray` CLI does.
pub const PUBLIC_CLIENT: &str = "shasta";
/// Path of the STS token endpoint behind the gateway.
pub const STS_TOKEN_PATH: &str = "/apis/sts/token";
/// Path of the STS health check behind the gateway.
pub const HEALTHZ_PATH: &str = "/apis/sts/healthz";

/// An account the emulated Keycloak accepts: a user (password grant) or a confidential
/// client (client-credentials grant), so tests can model both ways of logging in and both
/// outcomes at STS (with and without the `admin` role).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// User name or client id.
    pub name: String,
    /// Password (users) or client secret (clients); never printed, even by `{:?}`.
    pub secret: crate::secret::Secret,
    /// Whether its tokens carry `resource_access.shasta.roles: ["admin"]`, which STS
    /// requires; `false` models a user who may log in but gets 403 from STS.
    pub admin: bool,
}

impl Account {
    /// Convenience constructor.
    pub fn new(name: impl Into<String>, secret: impl Into<String>, admin: bool) -> Account {
        Account {
            name: name.into(),
            secret: crate::secret::Secret::new(secret),
            admin,
        }
    }
}

/// How to run a [`Gateway`]; every knob a test needs to shape the gateway's behaviour.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Address to listen on; the default `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// Lifetime of STS credentials (cray-sts asks RGW for one hour).
    pub lifetime: Duration,
    /// Access-token lifetime (`expires_in`); Keycloak's default is 5 minutes.
    pub token_lifetime: Duration,
    /// Refresh-token lifetime (`refresh_expires_in`); Keycloak's default is 30 minutes.
    pub refresh_lifetime: Duration,
    /// Users accepted by the password grant.
    pub users: Vec<Account>,
    /// Confidential clients accepted by the client-credentials grant.
    pub clients: Vec<Account>,
    /// `EndpointURL` returned with random STS credentials (the S3 endpoint); `None` sends
    /// JSON `null`, as cray-sts does when its configmap has no `ext_endpoint_url`.
    /// Ignored with a `backend`, whose `s3_endpoint` is returned instead.
    pub endpoint_url: Option<String>,
    /// Mint real credentials with `AssumeRole` on this STS instead of random ones. The
    /// advertised `Expiration` is then the earlier of the backend's and now + `lifetime`
    /// (the backend is asked for one hour, as cray-sts asks), so short test lifetimes
    /// still make clients refresh; a `lifetime` above one hour is refused at start.
    pub backend: Option<BackendSts>,
    /// How long the gateway waits for the STS behind it before it answers 504
    /// `upstream request timeout`, as Envoy does for a hung cray-sts or RGW; Envoy's
    /// default route timeout is 15 seconds.
    pub upstream_timeout: Duration,
    /// A real Keycloak to front instead of the emulated one (its base URL, such as
    /// `http://127.0.0.1:8080/keycloak`): `/keycloak/...` is forwarded to it, and the
    /// checks in front of STS verify its RS256 tokens against its realm's key set.
    /// Accounts (`users`, `clients`) and token lifetimes are then Keycloak's own.
    pub keycloak: Option<String>,
    /// Serve HTTPS with this configuration instead of plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Seconds added to the time in every reply's `Date` header (negative: behind), as
    /// from a gateway whose clock is off, for clients' clock-skew checks.
    pub date_offset_seconds: i64,
}

impl Default for GatewayConfig {
    fn default() -> GatewayConfig {
        GatewayConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            lifetime: Duration::from_secs(3600),
            token_lifetime: Duration::from_secs(300),
            refresh_lifetime: Duration::from_secs(1800),
            users: vec![Account::new(DEFAULT_USER, DEFAULT_PASSWORD, true)],
            clients: vec![Account::new(DEFAULT_CLIENT, DEFAULT_CLIENT_SECRET, true)],
            endpoint_url: Some("http://127.0.0.1:8080".to_owned()),
            backend: None,
            upstream_timeout: Duration::from_secs(15),
            keycloak: None,
            tls: None,
            date_offset_seconds: 0,
        }
    }
}

/// Which emulated endpoint a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST` to the Keycloak token URL (any realm; faults come before the realm check).
    Token,
    /// `PUT /apis/sts/token`.
    Sts,
}

/// How many requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    /// The next request only.
    Once,
    /// The next `n` requests (`N(0)` queues nothing).
    N(usize),
    /// Every request until `Gateway::clear_faults`; faults queued behind it never apply.
    Always,
}

/// A misbehaviour to inject, so clients' handling of gateway failures can be tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Reply exactly this instead of the normal reply (a status outside 100..=999 is sent
    /// as 500).
    Status {
        /// HTTP status code.
        status: u16,
        /// `Content-Type` header value.
        content_type: String,
        /// Response body.
        body: String,
    },
    /// Sleep this long, then handle the request normally (for client timeouts).
    Delay(Duration),
    /// A 2xx (201 for STS, 200 for the token endpoint) labelled JSON whose body is not JSON.
    Malformed,
    /// STS: 201 JSON credentials without `SessionToken`; token endpoint: 200 JSON without
    /// `access_token`.
    Incomplete,
    /// STS: 201 with well-formed credentials whose `Expiration` is an hour in the past.
    /// Token endpoint: the grant is processed normally (and counted), but the access token
    /// is already expired although `expires_in` is normal, as with a skewed clock.
    ExpiredCredentials,
    /// Drop the connection without replying.
    CloseConnection,
    /// `307 Temporary Redirect` to this `Location` (a client must not follow it: it would
    /// re-send the password or token there).
    Redirect(String),
    /// A 2xx (201 for STS, 200 for the token endpoint) whose body never ends (it stops
    /// after 1 GiB), for clients' reply-size limits.
    EndlessBody,
    /// A 2xx whose `Content-Length` promises more than is sent: the connection is cut
    /// after a few bytes of the body, as by a reset mid-reply.
    CutMidReply,
}

/// Counters of what the gateway has seen, so tests can assert on a client's behaviour
/// (e.g. "it refreshed instead of logging in again", "it retried exactly once").
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// `POST`s to a token URL, including those answered by a fault.
    pub token_requests: u64,
    /// Successful password grants.
    pub password_grants: u64,
    /// Successful refresh-token grants.
    pub refresh_grants: u64,
    /// Successful client-credentials grants.
    pub client_credentials_grants: u64,
    /// Token requests refused by the emulated Keycloak (not counting injected faults).
    pub token_failures: u64,
    /// `PUT /apis/sts/token` requests, including those answered by a fault.
    pub sts_requests: u64,
    /// Complete, valid credential sets handed out (not counting faulted replies).
    pub sts_issued: u64,
    /// STS requests (token or health check) refused with 401/403 by the JWT or role check.
    pub sts_rejected: u64,
    /// `GET /apis/sts/healthz` requests.
    pub healthz_requests: u64,
    /// Injected faults applied so far (each use of a `Times::N`/`Always` fault counts).
    pub faults_applied: u64,
    /// TCP connections accepted: clients that reuse keep-alive connections make few.
    pub connections: u64,
    /// Completed TLS handshakes (https gateways only).
    pub tls_handshakes: u64,
}
