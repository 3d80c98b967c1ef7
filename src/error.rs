//! The pipeline's errors: each variant is one plain sentence a person reads (cause and fix).
//!
//! No secret ever enters an error value: variants carry URLs, names, statuses and
//! server-supplied descriptions only.

use thiserror::Error;

/// Everything that can stop us from handing out credentials.
///
/// `Clone` so that every reader waiting on one shared refresh gets the same error.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Error {
    /// A bad flag, environment variable, config key or value; the message names the source.
    #[error("{0}")]
    Config(String),

    /// The host could not be reached (DNS, refused connection, reset).
    #[error("cannot reach {url} ({detail}); check --api-gateway (or --token-url/--sts-url) and that this host can reach the gateway")]
    Unreachable { url: String, detail: String },

    /// The server's certificate did not verify.
    #[error("TLS verification of {url} failed ({detail}); give the gateway's CA bundle with --ca-file (on CSM nodes: /etc/pki/trust/anchors/platform-ca-certs.crt)")]
    Tls { url: String, detail: String },

    /// No complete answer within `--timeout`.
    #[error(
        "{url} did not answer within {timeout}; check the gateway's health, or raise --timeout"
    )]
    Timeout { url: String, timeout: String },

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
    #[error("the STS at {url} refused a freshly issued token (HTTP {status}); the account needs the `admin` role of the `shasta` client in Keycloak")]
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

    /// A value that would break a line of an INI file (and could plant a key such as
    /// `credential_process`); only reachable if validation upstream missed it.
    #[error("refused to write `{key}` into the {format} file: its value holds a line break or control character that could inject settings; the gateway's reply is suspect, check --api-gateway")]
    Unrenderable {
        key: &'static str,
        format: &'static str,
    },

    /// The mount's own machinery failed (a pipe, fork, the runtime, signal handlers, the
    /// FUSE session, unmounting): neither a setting nor the gateway is at fault.
    #[error("{0}")]
    Lifecycle(String),

    /// A bug in s3credsfs (a panic caught on the refresh path); the refresh counts as failed.
    #[error("{0}: this is a bug in s3credsfs, please report it; reads retry after a pause")]
    Internal(String),

    /// Credentials whose expiration already passed; we never hand these out.
    #[error("the STS at {url} returned credentials that expired at {expiration}; check this host's clock and the gateway's (`date -u` on both)")]
    Expired { url: String, expiration: String },
}

impl Error {
    /// The errno a filesystem read fails with when this error leaves no valid credentials.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Config(_) => libc::EINVAL,
            _ => libc::EIO,
        }
    }
}

/// Shorthand for results of the credential pipeline.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configuration_errors_are_einval() {
        assert_eq!(Error::Config("bad flag".into()).errno(), libc::EINVAL);
        assert_eq!(Error::Lifecycle("cannot fork".into()).errno(), libc::EIO);
        assert_eq!(Error::Internal("bug".into()).errno(), libc::EIO);
    }
}
