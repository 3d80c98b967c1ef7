//! State shared by every connection of one emulated gateway: configuration, signing key,
//! counters, queued faults and Keycloak sessions.

use crate::sync::lock;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::SystemTime;

use super::backend::AssumeRoleMinter;
use super::config::{Endpoint, Fault, GatewayConfig, Stats, Times, REALM};
use super::jwt::{self, Signer};
use super::mint::{CredentialMinter, RandomMinter};
use super::random::random_uuid;
use super::upstream::KeycloakUpstream;

/// A Keycloak user session, created by a password grant and kept alive by refreshes.
/// Refresh tokens name it (`sid`); a token whose session is gone is "not active".
pub(crate) struct Session {
    pub user: String,
    pub expires: u64,
}

struct Queued {
    fault: Fault,
    /// `None` for [`Times::Always`].
    remaining: Option<usize>,
}

#[derive(Default)]
struct FaultQueues {
    token: VecDeque<Queued>,
    sts: VecDeque<Queued>,
}

impl FaultQueues {
    fn queue(&mut self, endpoint: Endpoint) -> &mut VecDeque<Queued> {
        match endpoint {
            Endpoint::Token => &mut self.token,
            Endpoint::Sts => &mut self.sts,
        }
    }
}

/// Everything a request handler needs; one per gateway, behind an `Arc`.
pub(crate) struct State {
    pub config: GatewayConfig,
    /// `iss` of every token issued, and the only issuer the STS check accepts.
    pub issuer: String,
    pub signer: Signer,
    /// The real Keycloak fronted (`--keycloak`), whose tokens are verified instead of
    /// this gateway's own.
    pub keycloak: Option<KeycloakUpstream>,
    pub minter: Box<dyn CredentialMinter>,
    stats: Mutex<Stats>,
    /// Every secret received or issued, for tests that prove none leaks.
    secrets: Mutex<std::collections::BTreeSet<String>>,
    faults: Mutex<FaultQueues>,
    sessions: Mutex<HashMap<String, Session>>,
}

impl State {
    /// `Err` (a plain sentence) when the configured backend STS cannot be used. With
    /// `keycloak`, its realm's issuer is the one accepted.
    pub fn new(
        config: GatewayConfig,
        base_url: &str,
        keycloak: Option<KeycloakUpstream>,
    ) -> Result<State, String> {
        let minter: Box<dyn CredentialMinter> = match &config.backend {
            Some(backend) => Box::new(AssumeRoleMinter::new(backend.clone(), config.lifetime)?),
            None => Box::new(RandomMinter {
                endpoint_url: config.endpoint_url.clone().unwrap_or_default(),
                lifetime: config.lifetime,
            }),
        };
        Ok(State {
            issuer: match &keycloak {
                Some(upstream) => upstream.issuer().to_owned(),
                None => format!("{base_url}/keycloak/realms/{}", REALM),
            },
            signer: Signer::generate(),
            keycloak,
            minter,
            config,
            stats: Mutex::new(Stats::default()),
            secrets: Mutex::new(Default::default()),
            faults: Mutex::new(FaultQueues::default()),
            sessions: Mutex::new(HashMap::new()),
        })
    }

    /// The algorithm tokens presented to STS must be signed with: RS256 from a real
    /// Keycloak, else this gateway's own HS256.
    pub fn token_algorithm(&self) -> &'static str {
        match self.keycloak {
            Some(_) => super::jwks::RS256,
            None => jwt::HS256,
        }
    }

    /// True when a decoded token was signed by the realm: by a real Keycloak's key
    /// (fetching its key set again for an unknown `kid`), else by this gateway's key.
    pub async fn check_signature(&self, decoded: &jwt::Decoded) -> bool {
        match &self.keycloak {
            Some(upstream) => upstream.check_signature(decoded).await,
            None => self.signer.check_signature(decoded),
        }
    }

    pub fn stats(&self) -> Stats {
        lock(&self.stats).clone()
    }

    /// Remembers a secret this gateway received or issued (empty values are ignored).
    pub fn remember_secret(&self, secret: &str) {
        if !secret.is_empty() {
            lock(&self.secrets).insert(secret.to_owned());
        }
    }

    /// Every secret remembered so far.
    pub fn secrets(&self) -> Vec<String> {
        lock(&self.secrets).iter().cloned().collect()
    }

    /// Applies `f` to the counters under the lock.
    pub fn count(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut lock(&self.stats));
    }

    pub fn inject(&self, endpoint: Endpoint, fault: Fault, times: Times) {
        let remaining = match times {
            Times::Once => Some(1),
            Times::N(0) => return,
            Times::N(n) => Some(n),
            Times::Always => None,
        };
        lock(&self.faults)
            .queue(endpoint)
            .push_back(Queued { fault, remaining });
    }

    pub fn clear_faults(&self) {
        *lock(&self.faults) = FaultQueues::default();
    }

    /// The fault to apply to this request, if any: the head of the endpoint's FIFO, which is
    /// used up after its count (an `Always` head stays until cleared).
    pub fn take_fault(&self, endpoint: Endpoint) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let queue = faults.queue(endpoint);
        let head = queue.front_mut()?;
        let fault = head.fault.clone();
        if let Some(n) = head.remaining.as_mut() {
            *n -= 1;
            if *n == 0 {
                queue.pop_front();
            }
        }
        drop(faults);
        self.count(|s| s.faults_applied += 1);
        Some(fault)
    }

    /// Starts a session and returns its id (also Keycloak's `session_state`).
    pub fn new_session(&self, user: &str, expires: u64) -> String {
        let id = random_uuid();
        let now = jwt::unix_secs(SystemTime::now());
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(
            id.clone(),
            Session {
                user: user.to_owned(),
                expires,
            },
        );
        id
    }

    /// Looks up a live session and, when found, extends it to `new_expiry` (a refresh).
    /// Returns the session's user.
    pub fn refresh_session(&self, id: &str, new_expiry: u64) -> Option<String> {
        let now = jwt::unix_secs(SystemTime::now());
        let mut sessions = lock(&self.sessions);
        let session = sessions.get_mut(id).filter(|s| s.expires > now)?;
        session.expires = new_expiry;
        Some(session.user.clone())
    }

    /// Ends every session issued so far.
    pub fn revoke_sessions(&self) {
        lock(&self.sessions).clear();
    }
}
