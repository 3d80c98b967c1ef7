//! Built-in emulator of the CSM API gateway (Keycloak + STS), for demos and tests only.
//!
//! It exists so that the credential-fetching code can be exercised end to end, over real
//! HTTP(S), without a Cray system: integration tests start one in-process, and the
//! `dev-gateway` subcommand serves one for people trying the tool. It emulates:
//!
//! - Keycloak's token endpoint for realm `shasta`
//!   (`POST /keycloak/realms/shasta/protocol/openid-connect/token`): password,
//!   refresh-token and client-credentials grants, with Keycloak's reply and error bodies;
//! - the Istio/OPA checks in front of STS (401 for a bad or expired JWT, 403 without the
//!   `admin` role) and cray-sts itself (`PUT /apis/sts/token` → 201 with random
//!   credentials, or with real ones from an `AssumeRole` on a [`BackendSts`] as cray-sts
//!   gets them from Ceph RGW; `GET /apis/sts/healthz`);
//! - misbehaviour on demand ([`Gateway::inject`]) so clients' error handling can be tested.
//!
//! It is not a security boundary: accounts come from its configuration, tokens are HS256
//! with a per-instance random key, and the credentials it hands out open nothing (unless
//! a backend STS mints them: then they open whatever its role allows).

//!
//! In front of a real Keycloak (`GatewayConfig::keycloak`), it forwards `/keycloak/...`
//! there and checks that Keycloak's RS256 tokens against its realm's key set instead.
//!
//! Its files depend on each other one way: `instance` starts `server`, which dispatches to
//! the `keycloak` and `sts` handlers; they use `state`, which uses `backend`, `mint`,
//! `upstream` (the real Keycloak), `jwks` and `jwt`; below them are the leaves `config`,
//! `reply` and `random`. This file only declares and re-exports.

mod backend;
mod config;
mod foreground;
mod instance;
mod jwks;
mod jwt;
mod keycloak;
mod mint;
mod random;
mod reply;
mod server;
mod state;
mod sts;
mod upstream;

pub use backend::{check_lifetime, BackendSts, ASSUME_ROLE_SECONDS, DEFAULT_BACKEND_REGION};
pub use config::{
    Account, Endpoint, Fault, GatewayConfig, Stats, Times, DEFAULT_CLIENT, DEFAULT_CLIENT_SECRET,
    DEFAULT_PASSWORD, DEFAULT_USER, HEALTHZ_PATH, PUBLIC_CLIENT, REALM, STS_TOKEN_PATH,
};
pub use foreground::run_dev_gateway;
pub use instance::Gateway;
