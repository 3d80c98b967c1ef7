//! Where JWTs come from: one `Authenticator` per configuration, caching the token until
//! shortly before its own expiry, refreshing it, and re-reading token files.

pub mod keycloak;
mod source;

use crate::clock::TimeSource;
use crate::config::{AuthConfig, PasswordSource, Settings};
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::sync::lock;
use crate::untrusted::clean;
use chrono::{DateTime, Utc};
use keycloak::{Grant, GrantError, Issued};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// How long before a JWT's expiry we stop using it (at most a quarter of its lifetime).
const TOKEN_MARGIN: chrono::Duration = chrono::Duration::seconds(30);

enum Method {
    Password {
        username: String,
        /// Where the password came from, read again after a refusal.
        source: PasswordSource,
        /// The password in use: replaced when its file or command gives another.
        password: std::sync::Mutex<Secret>,
    },
    ClientCredentials {
        secret: Secret,
    },
    TokenEnv {
        var: String,
    },
    TokenFile {
        path: PathBuf,
    },
}

/// When an access token obtained at `now` and expiring at `expires_at` stops being sent:
/// 30 s (at most a quarter of its life) before it expires, so that it cannot
/// expire on its way. Public, with [`refresh_token_usable`], so the fleet simulation
/// counts Keycloak grants by the rules the login follows.
pub fn token_stale_at(now: DateTime<Utc>, expires_at: DateTime<Utc>) -> DateTime<Utc> {
    let margin = std::cmp::min(TOKEN_MARGIN, (expires_at - now) / 4);
    expires_at - margin
}

/// Whether a refresh token expiring at `expires` (unknown: `None`) is still worth a
/// refresh grant at `now`, rather than a new login.
pub fn refresh_token_usable(expires: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires.is_none_or(|t| t.checked_sub_signed(TOKEN_MARGIN) > Some(now))
}

/// A JWT and the moment it stops being worth sending.
#[derive(Clone)]
struct CachedToken {
    jwt: Secret,
    stale_at: Option<DateTime<Utc>>,
}

impl CachedToken {
    fn from_issued(issued: &Issued, now: DateTime<Utc>) -> Self {
        // Keycloak counts `exp` from the whole second it issued the token, so the token
        // can end up to a second before `expires_in` says: believe the earlier.
        let expires_at = jwt_expiry(issued.access_token.expose())
            .map_or(issued.expires_at, |exp| {
                std::cmp::min(exp, issued.expires_at)
            });
        CachedToken {
            jwt: issued.access_token.clone(),
            stale_at: Some(token_stale_at(now, expires_at)),
        }
    }

    fn usable(&self, now: DateTime<Utc>) -> bool {
        self.stale_at.is_none_or(|t| now < t)
    }
}

#[derive(Default)]
struct State {
    access: Option<CachedToken>,
    refresh: Option<(Secret, Option<DateTime<Utc>>)>,
    /// For token files: the file's access token that `access` was refreshed from.
    refreshed_from: Option<Secret>,
}

/// Hands out JWTs for the STS; safe to call from many tasks at once (one request in flight).
pub struct Authenticator {
    method: Method,
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    timeout: Duration,
    /// Judges tokens' freshness and dates Keycloak's lifetimes (tests: a manual clock).
    time: Arc<dyn TimeSource>,
    state: Mutex<State>,
    /// `preferred_username` of the last token, for status output (never blocks).
    user: std::sync::Mutex<Option<String>>,
    /// The password source gave two passwords in a row and that was logged: said once,
    /// not at every look, until it gives one password again.
    unstable_logged: std::sync::atomic::AtomicBool,
}

/// The claims of a JWT, without verifying it (the gateway verifies; we only read times
/// and names).
pub use crate::jwt::claims as jwt_claims;

fn jwt_expiry(token: &str) -> Option<DateTime<Utc>> {
    let exp = jwt_claims(token)?.get("exp")?.as_f64()?;
    DateTime::from_timestamp(exp as i64, 0)
}

fn jwt_user(token: &str) -> Option<String> {
    let claims = jwt_claims(token)?;
    // A claim is the token issuer's text: it reaches `status` and terminals.
    claims
        .get("preferred_username")?
        .as_str()
        .map(|name| clean(name, 64))
}

fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What a token file holds: a raw JWT, or the `cray` CLI's saved OAuth token.
struct FileToken {
    access: Secret,
    refresh: Option<Secret>,
    expires_at: Option<DateTime<Utc>>,
    client_id: Option<String>,
}

fn read_token_file(path: &Path) -> Result<FileToken> {
    // A token file steers who we are at the gateway and holds a JWT: ours, private.
    let bytes = zeroize::Zeroizing::new(
        crate::files::read_checked(
            path,
            "token file",
            "fix --token-file or run `cray auth login`",
            crate::files::Kind::Secret,
        )
        .map_err(|e| Error::Token(e.to_string()))?,
    );
    parse_token_file(Secret::new(String::from_utf8_lossy(&bytes).trim()), path)
}

/// Judges a token file's text: a raw JWT, or a `cray` CLI login JSON.
fn parse_token_file(text: Secret, path: &Path) -> Result<FileToken> {
    let invalid = || {
        Error::Token(format!(
            "the token file {} holds neither a JWT nor a `cray` CLI login with an access_token; \
             run `cray auth login` or fix --token-file",
            path.display()
        ))
    };
    if text.expose().starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(text.expose()).map_err(|_| invalid())?;
        let field = |name: &str| {
            json.get(name)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
        };
        let access = Secret::new(field("access_token").ok_or_else(invalid)?);
        let expires_at = json
            .get("expires_at")
            .and_then(|v| v.as_f64())
            .and_then(|t| DateTime::from_timestamp(t as i64, 0))
            .or_else(|| jwt_expiry(access.expose()));
        Ok(FileToken {
            refresh: field("refresh_token").map(Secret::new),
            client_id: field("client_id").map(str::to_string),
            access,
            expires_at,
        })
    } else if text.expose().split('.').count() == 3 {
        Ok(FileToken {
            expires_at: jwt_expiry(text.expose()),
            access: text,
            refresh: None,
            client_id: None,
        })
    } else {
        Err(invalid())
    }
}

impl Authenticator {
    /// Reads the password or client secret now (asking on the terminal if configured), so
    /// problems show at start, before a background mount detaches. Every time it judges
    /// comes from `time`.
    pub fn new(
        settings: &Settings,
        http: reqwest::Client,
        time: Arc<dyn TimeSource>,
    ) -> Result<Self> {
        let method = match &settings.auth {
            AuthConfig::Password { username, password } => Method::Password {
                username: username.clone(),
                source: password.clone(),
                password: std::sync::Mutex::new(source::password(
                    password,
                    username,
                    settings.api_gateway.as_str(),
                )?),
            },
            AuthConfig::ClientCredentials { secret } => Method::ClientCredentials {
                secret: source::client_secret(secret)?,
            },
            AuthConfig::TokenEnv { var } => Method::TokenEnv { var: var.clone() },
            AuthConfig::TokenFile { path } => Method::TokenFile { path: path.clone() },
        };
        Ok(Authenticator {
            method,
            http,
            token_url: settings.token_url.to_string(),
            client_id: settings.client_id.clone(),
            timeout: settings.timeout,
            time,
            state: Mutex::new(State::default()),
            user: std::sync::Mutex::new(None),
            unstable_logged: false.into(),
        })
    }

    /// The user (or service account) of the last token, for status output.
    pub fn user(&self) -> Option<String> {
        let last = lock(&self.user).clone();
        last.or_else(|| match &self.method {
            Method::Password { username, .. } => Some(username.clone()),
            _ => None,
        })
    }

    /// Forgets every cached token: the next `token` logs in (or re-reads its file) anew,
    /// with the password its file or command gives now.
    pub async fn forget(&self) {
        let mut state = self.state.lock().await;
        *state = State::default();
        drop(state);
        self.reload_password().await;
    }

    /// Reads the password again from its file or command; true when it differs from the
    /// one in use, which it then replaces. A variable cannot change in a running process
    /// and a prompt is not asked again, so those never change. A new password counts only
    /// if a second read gives it again: a command that prints another value every time
    /// would otherwise lift the refused login's hold on every look, a login every 30 s
    /// that ends with Keycloak locking the account.
    pub async fn reload_password(&self) -> bool {
        let Method::Password {
            username,
            source: from,
            password,
        } = &self.method
        else {
            return false;
        };
        if !matches!(from, PasswordSource::File(_) | PasswordSource::Command(_)) {
            return false;
        }
        let (from, user) = (from.clone(), username.clone());
        // A command may take its time: not on a runtime worker.
        let in_use = lock(password).clone();
        let read = tokio::task::spawn_blocking(move || {
            let new = source::password(&from, &user, "")?;
            // Unchanged: no second read needed. Changed: it must read the same twice.
            let again = (new != in_use).then(|| source::password(&from, &user, ""));
            Ok::<_, crate::error::Error>((new, again.transpose()?))
        });
        match read.await {
            Ok(Ok((new, again))) => {
                let unstable = again.as_ref().is_some_and(|again| *again != new);
                let logged = self.unstable_logged.swap(unstable, Ordering::Relaxed);
                if unstable {
                    if !logged {
                        tracing::warn!(
                            "the password file or command gave two different passwords in a \
                             row; not logging in with either (Keycloak would lock the \
                             account): make it give the same password every time"
                        );
                    }
                    return false;
                }
                let mut current = lock(password);
                let changed = *current != new;
                *current = new;
                changed
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the password again");
                false
            }
            Err(_) => false,
        }
    }

    /// A JWT to send to the STS. `force_new` after the gateway rejected the last one.
    pub async fn token(&self, force_new: bool) -> Result<Secret> {
        let mut state = self.state.lock().await;
        let now = self.time.now();
        let token = match &self.method {
            Method::TokenEnv { var } => self.env_token(var, now)?,
            Method::TokenFile { path } => self.file_token(&mut state, path, force_new, now).await?,
            _ => match state.access.clone() {
                Some(cached) if !force_new && cached.usable(now) => cached.jwt,
                _ => self.grant_token(&mut state, now).await?,
            },
        };
        if let Some(user) = jwt_user(token.expose()) {
            *lock(&self.user) = Some(user);
        }
        Ok(token)
    }

    fn env_token(&self, var: &str, now: DateTime<Utc>) -> Result<Secret> {
        let token = match std::env::var(var) {
            Ok(t) if !t.trim().is_empty() => Secret::new(t.trim()),
            _ => {
                return Err(Error::Token(format!(
                    "environment variable {var} (from --token-env) is not set or is empty; put a JWT there"
                )))
            }
        };
        match jwt_expiry(token.expose()) {
            Some(exp) if exp <= now => Err(Error::Token(format!(
                "the JWT in {var} expired at {}; get a new token and set {var} again",
                format_time(exp)
            ))),
            _ => Ok(token),
        }
    }

    async fn file_token(
        &self,
        state: &mut State,
        path: &Path,
        force_new: bool,
        now: DateTime<Utc>,
    ) -> Result<Secret> {
        let file = read_token_file(path)?;
        // A token we refreshed in memory stays in use while the file still holds the
        // token it was refreshed from (we never write the file; its owner may).
        if state.refreshed_from.as_ref() == Some(&file.access) {
            if let Some(cached) = state.access.clone().filter(|c| !force_new && c.usable(now)) {
                return Ok(cached.jwt);
            }
        } else {
            state.refreshed_from = None;
            state.access = None;
            let fresh = file
                .expires_at
                .is_none_or(|exp| exp.checked_sub_signed(TOKEN_MARGIN / 2) > Some(now));
            if fresh && !force_new {
                return Ok(file.access);
            }
        }
        let refresh = state
            .refreshed_from
            .is_some()
            .then(|| state.refresh.as_ref().map(|(t, _)| t.clone()))
            .flatten()
            .or(file.refresh.clone());
        let Some(refresh) = refresh else {
            if force_new {
                return Ok(file.access);
            }
            return Err(Error::Token(format!(
                "the token in {} expired at {} and has no refresh token; run `cray auth login` \
                 or refresh the file",
                path.display(),
                file.expires_at.map(format_time).unwrap_or_default()
            )));
        };
        let client_id = file
            .client_id
            .clone()
            .unwrap_or_else(|| self.client_id.clone());
        let grant = Grant::Refresh {
            refresh_token: &refresh,
        };
        match self.request(&client_id, grant).await {
            Ok(issued) => {
                tracing::info!(file = %path.display(), "refreshed the token file's expired token in memory");
                let cached = CachedToken::from_issued(&issued, now);
                state.refresh = issued.refresh_token.map(|t| (t, issued.refresh_expires_at));
                state.access = Some(cached.clone());
                state.refreshed_from = Some(file.access);
                Ok(cached.jwt)
            }
            Err(GrantError::Refused { description, .. }) => Err(Error::RefreshInactive {
                url: self.token_url.clone(),
                description,
            }),
            Err(GrantError::Failed(e)) => Err(e),
        }
    }

    /// Password or client-credentials: refresh when we can, else a full grant.
    async fn grant_token(&self, state: &mut State, now: DateTime<Utc>) -> Result<Secret> {
        let refresh = state
            .refresh
            .take()
            .filter(|(_, expires)| refresh_token_usable(*expires, now));
        if let Some((refresh_token, _)) = refresh {
            let grant = Grant::Refresh {
                refresh_token: &refresh_token,
            };
            match self.request(&self.client_id, grant).await {
                Ok(issued) => return Ok(self.keep(state, issued, now)),
                Err(GrantError::Refused { description, .. }) => {
                    tracing::info!(reason = %description, "refresh token refused; logging in again");
                }
                Err(GrantError::Failed(e)) => return Err(e),
            }
        }
        let password = match &self.method {
            Method::Password { password, .. } => Some(lock(password).clone()),
            _ => None,
        };
        let (grant, who, fix) = match (&self.method, &password) {
            (Method::Password { username, .. }, Some(password)) => (
                Grant::Password { username, password },
                format!("the password for user {username:?}"),
                "check the user name and password (--username, --password-env/--password-file/--password-command)",
            ),
            (Method::ClientCredentials { secret }, _) => (
                Grant::ClientCredentials { secret },
                format!("client {:?} and its secret", self.client_id),
                "check --client-id and the secret (Kubernetes secret `admin-client-auth`, key `client-secret`)",
            ),
            _ => unreachable!("grant_token is only used by password and client-credentials logins"),
        };
        match self.request(&self.client_id, grant).await {
            Ok(issued) => Ok(self.keep(state, issued, now)),
            // A password is never checked against a client Keycloak does not know.
            Err(GrantError::Refused {
                error, description, ..
            }) if matches!(self.method, Method::Password { .. })
                && keycloak::names_the_client(&error, &description) =>
            {
                Err(Error::AuthRejected {
                    url: self.token_url.clone(),
                    who: format!("client id {:?}", self.client_id),
                    description,
                    fix: format!(
                        "check --client-id (password logins use the public client `{}`, as the \
                         `cray` CLI does)",
                        crate::config::Setting::ClientId
                            .spec()
                            .fallback
                            .shown()
                            .unwrap_or_default()
                    ),
                })
            }
            // A disabled or unfinished account: the password is not what to fix.
            Err(GrantError::Refused { description, .. }) => {
                let (who, fix) = match (&self.method, keycloak::account_fix(&description)) {
                    (Method::Password { username, .. }, Some(account_fix)) => {
                        (format!("the account of user {username:?}"), account_fix)
                    }
                    _ => (who, fix),
                };
                Err(Error::AuthRejected {
                    url: self.token_url.clone(),
                    who,
                    description,
                    fix: fix.to_string(),
                })
            }
            Err(GrantError::Failed(e)) => Err(e),
        }
    }

    /// One grant against this configuration's token endpoint.
    async fn request(
        &self,
        client_id: &str,
        grant: Grant<'_>,
    ) -> std::result::Result<Issued, GrantError> {
        let (url, timeout) = (&self.token_url, self.timeout);
        keycloak::request(&self.http, url, client_id, grant, timeout, &*self.time).await
    }

    fn keep(&self, state: &mut State, issued: Issued, now: DateTime<Utc>) -> Secret {
        tracing::debug!(expires_at = %format_time(issued.expires_at), "obtained a token");
        let cached = CachedToken::from_issued(&issued, now);
        state.refresh = issued.refresh_token.map(|t| (t, issued.refresh_expires_at));
        state.access = Some(cached.clone());
        cached.jwt
    }
}

#[cfg(test)]
mod tests;
