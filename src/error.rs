//! The pipeline's errors: each variant is one plain sentence a person reads (cause and fix).
//!
//! No secret ever enters an error value: variants carry URLs, names, statuses and
//! server-supplied descriptions only, and a transport failure's [`Cause`] is the HTTP
//! library's error with its URL removed.

use crate::exit_status::ExitStatus;
use crate::untrusted::{clean, MAX_QUOTED};
use std::sync::Arc;
use thiserror::Error;

/// The original failure behind a transport error, kept so that `source()` leads down to
/// the `io::Error` or `rustls::Error` a caller can act on (or log), instead of a string.
///
/// Shared behind an `Arc` so that [`Error`] stays `Clone`. It is transparent: its
/// `Display` and `source()` are the wrapped error's own. Equality (which tests use on
/// [`Error`]) compares the text of every link of the two chains, since the underlying
/// error types have no equality of their own.
#[derive(Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    /// Wraps `error`; it must hold no secret (strip a reqwest error's URL first).
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Cause(Arc::new(error))
    }

    /// The wrapped error itself, to downcast.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }

    /// The innermost cause, cleaned for a terminal: the part a person can act on, quoted
    /// in the sentence.
    pub fn detail(&self) -> String {
        let mut current: &(dyn std::error::Error + 'static) = self.get();
        while let Some(next) = current.source() {
            current = next;
        }
        clean(&current.to_string(), MAX_QUOTED)
    }

    /// The text of every link, outermost first.
    fn chain(&self) -> Vec<String> {
        let mut links = Vec::new();
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(self.get());
        while let Some(link) = current {
            links.push(link.to_string());
            current = link.source();
        }
        links
    }
}

impl std::fmt::Debug for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.chain() == other.chain()
    }
}

impl Eq for Cause {}

/// Everything that can stop us from handing out credentials.
///
/// `Clone` so that every reader waiting on one shared refresh gets the same error.
/// `PartialEq` is derived: a transport error's [`Cause`] compares by the text of its chain.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Error {
    /// A bad flag, environment variable, config key or value; the message names the source.
    #[error("{0}")]
    Config(String),

    /// The host could not be reached (DNS, refused connection, reset).
    #[error("cannot reach {url} ({}); check --api-gateway (or --token-url/--sts-url) and that this host can reach the gateway", .cause.detail())]
    Unreachable {
        url: String,
        #[source]
        cause: Cause,
    },

    /// The server's certificate did not verify.
    #[error("TLS verification of {url} failed ({}); give the gateway's CA bundle with --ca-file (on CSM nodes: /etc/pki/trust/anchors/platform-ca-certs.crt)", .cause.detail())]
    Tls {
        url: String,
        #[source]
        cause: Cause,
    },

    /// An `https://` URL at a port that answered in plain http: not a CA problem.
    #[error("{url} answered in plain http, not TLS: that port speaks plain http; use {plain} instead (plain http is allowed to loopback, elsewhere only with --allow-http), or the port that serves https")]
    PlainHttp { url: String, plain: String },

    /// No complete answer within `--timeout`.
    #[error(
        "{url} did not answer within {timeout}; check the gateway's health, or raise --timeout"
    )]
    Timeout {
        url: String,
        timeout: String,
        #[source]
        cause: Cause,
    },

    /// A whole refresh (its token and STS requests together) outlasted its budget,
    /// although no single request timed out.
    #[error("refreshing credentials from {url} took longer than its budget of {budget} (every gateway request it makes, each within --timeout); check the gateway's health, or raise --timeout")]
    RefreshTooSlow { url: String, budget: String },

    /// Keycloak refused the password or client secret.
    #[error("Keycloak at {url} rejected {who}: {description}; {fix}")]
    AuthRejected {
        url: String,
        who: String,
        description: String,
        fix: String,
    },

    /// A refresh token Keycloak no longer accepts and nothing to fall back on.
    #[error("Keycloak at {url} says the refresh token is no longer active ({description}); log in again (for example `cray auth login`)")]
    RefreshInactive { url: String, description: String },

    /// A token source (environment variable, token file, saved cray login) failed.
    #[error("{0}")]
    Token(String),

    /// The gateway refused a fresh token too: an authorization problem, not a stale token.
    /// A 403 is OPA's policy (the account lacks the role); a 401 is Istio's JWT check
    /// refusing the token itself, which no role fixes.
    #[error("the STS at {url} refused a freshly issued token (HTTP {status}); {}", sts_refusal_fix(*status))]
    StsForbidden { url: String, status: u16 },

    /// An HTTP error status we do not handle specially.
    #[error("{url} answered HTTP {status}{detail}; {fix}")]
    HttpStatus {
        url: String,
        status: u16,
        detail: String,
        fix: String,
    },

    /// A 3xx reply; following it would re-send the password or token elsewhere.
    #[error("{url} answered HTTP {status}, a redirect to {location}; s3credsfs follows no redirects because they would carry the password or token elsewhere: set --api-gateway (or --token-url/--sts-url) to the final address")]
    Redirected {
        url: String,
        status: u16,
        location: String,
    },

    /// A reply body longer than any real gateway reply.
    #[error("{url} sent a reply longer than {limit} bytes, which no CSM gateway does; check that --api-gateway (or --token-url/--sts-url) points at a CSM gateway")]
    TooLarge { url: String, limit: usize },

    /// A success status whose body is not what the API promises.
    #[error("{url} answered HTTP {status} but {problem}; check that --api-gateway (or --token-url/--sts-url) points at a CSM gateway")]
    BadReply {
        url: String,
        status: u16,
        problem: String,
    },

    /// Credentials without an S3 endpoint (`"EndpointURL": null` or none), as cray-sts
    /// sends when its configmap has no `ext_endpoint_url`, and no `s3-endpoint` set: the
    /// user can name the endpoint, or the STS's operators can configure one.
    #[error("{url} sent credentials without an S3 endpoint (its \"EndpointURL\" is null or missing, as cray-sts sends when the ext_endpoint_url of its configmap sts-rados-config is not set): set s3-endpoint (--s3-endpoint, S3CREDSFS_S3_ENDPOINT or the config key) to this system's S3 endpoint, such as https://rgw-vip.cmn.SYSTEM.DOMAIN, or ask the system's administrators to set ext_endpoint_url")]
    NoEndpointUrl { url: String },

    /// A value that would break a line of an INI file (and could plant a key such as
    /// `credential_process`); only reachable if validation upstream missed it.
    #[error("refused to write `{key}` into the {format} file: its value holds a line break or control character that could inject settings; the gateway's reply is suspect, check --api-gateway")]
    Unrenderable {
        key: &'static str,
        format: &'static str,
    },

    /// A bug in s3credsfs (a panic caught on the refresh path); the refresh counts as failed.
    #[error("{0}: this is a bug in s3credsfs, please report it; reads retry after a pause")]
    Internal(String),

    /// Credentials whose expiration already passed; we never hand these out.
    #[error("the STS at {url} returned credentials that expired at {expiration}; check this host's clock and the gateway's (`date -u` on both)")]
    Expired { url: String, expiration: String },
}

/// What to do about a fresh token the STS's gateway refused, by who refused it.
fn sts_refusal_fix(status: u16) -> &'static str {
    match status {
        401 => "the gateway's JWT check did not accept it: check that this host's clock is right and that the token comes from the Keycloak the gateway trusts (--api-gateway, or --token-url)",
        _ => "the gateway's policy refused it: the account needs the `admin` role of the `shasta` client in Keycloak",
    }
}

impl Error {
    /// The errno a filesystem read fails with when this error leaves no valid credentials.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Config(_) => libc::EINVAL,
            _ => libc::EIO,
        }
    }

    /// The process's exit status when this error ends a command.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            // A TLS failure's fix is --ca-file, a redirect's or plain http's --api-gateway:
            // settings.
            Error::Config(_)
            | Error::Tls { .. }
            | Error::PlainHttp { .. }
            | Error::Redirected { .. } => ExitStatus::Config,
            Error::AuthRejected { .. } | Error::StsForbidden { .. } => ExitStatus::LoginRefused,
            Error::RefreshInactive { .. } | Error::Token(_) => ExitStatus::TokenExpired,
            Error::Internal(_) => ExitStatus::Internal,
            Error::Unreachable { .. }
            | Error::Timeout { .. }
            | Error::RefreshTooSlow { .. }
            | Error::HttpStatus { .. }
            | Error::TooLarge { .. }
            | Error::BadReply { .. }
            | Error::NoEndpointUrl { .. }
            | Error::Unrenderable { .. }
            | Error::Expired { .. } => ExitStatus::Gateway,
        }
    }

    /// The gateway was out of reach, too slow or briefly unable to answer (HTTP 429, 502,
    /// 503, 504): the same request may well work later, unlike a refused login or a wrong
    /// setting. A mount started by systemd keeps retrying these instead of exiting, so a
    /// fleet booting against a busy gateway is not restarted into a storm.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::Timeout { .. } | Error::RefreshTooSlow { .. } => {
                true
            }
            Error::HttpStatus { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// The gateway said it is overloaded (HTTP 429 or 503, as Envoy or cray-sts answer
    /// beyond their capacity): a retry at once would only add to the load, so the backoff
    /// starts further up (see `cache::backoff_delay`).
    pub fn is_overload(&self) -> bool {
        matches!(
            self,
            Error::HttpStatus {
                status: 429 | 503,
                ..
            }
        )
    }

    /// Keycloak refused the password or client secret: retrying the same one cannot
    /// succeed, and each retry counts toward Keycloak's brute-force lockout, so a mount
    /// waits for `s3credsfs refresh` or a changed password instead. (A refresh token
    /// that is no longer active is not this: a new login follows it at once.)
    pub fn is_login_refused(&self) -> bool {
        matches!(self, Error::AuthRejected { .. })
    }
}

/// Shorthand for results of the credential pipeline.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_shows_the_wrapped_error_itself() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused here");
        let expected_debug = format!("{inner:?}");
        let cause = Cause::new(inner);
        assert_eq!(cause.to_string(), "refused here");
        assert_eq!(format!("{cause:?}"), expected_debug);
    }

    #[test]
    fn a_refused_fresh_token_names_who_refused_it_and_the_fix() {
        let refused = |status| {
            Error::StsForbidden {
                url: "https://api-gw/apis/sts/token".into(),
                status,
            }
            .to_string()
        };
        assert_eq!(
            refused(401),
            "the STS at https://api-gw/apis/sts/token refused a freshly issued token (HTTP 401); \
             the gateway's JWT check did not accept it: check that this host's clock is right \
             and that the token comes from the Keycloak the gateway trusts (--api-gateway, or \
             --token-url)"
        );
        assert_eq!(
            refused(403),
            "the STS at https://api-gw/apis/sts/token refused a freshly issued token (HTTP 403); \
             the gateway's policy refused it: the account needs the `admin` role of the \
             `shasta` client in Keycloak"
        );
    }

    #[test]
    fn only_configuration_errors_are_einval() {
        assert_eq!(Error::Config("bad flag".into()).errno(), libc::EINVAL);
        assert_eq!(
            Error::RefreshTooSlow {
                url: "u".into(),
                budget: "1m".into()
            }
            .errno(),
            libc::EIO
        );
        assert_eq!(Error::Internal("bug".into()).errno(), libc::EIO);
    }

    #[test]
    fn only_a_refused_password_or_secret_is_a_refused_login() {
        let refused = Error::AuthRejected {
            url: "u".into(),
            who: "the password for user \"vers\"".into(),
            description: "Invalid user credentials".into(),
            fix: "check it".into(),
        };
        assert!(refused.is_login_refused());
        assert_eq!(refused.exit_status(), ExitStatus::LoginRefused);
        // An expired refresh token is not: a new login follows it.
        let inactive = Error::RefreshInactive {
            url: "u".into(),
            description: "Token is not active".into(),
        };
        assert!(!inactive.is_login_refused());
        assert_eq!(inactive.exit_status(), ExitStatus::TokenExpired);
        let config = Error::Config("bad".into());
        assert!(!config.is_login_refused());
        assert_eq!(config.exit_status(), ExitStatus::Config);
    }
}
