//! What the credential cache needs from whatever obtains credentials: a leaf, so that the
//! cache (above) uses it and the STS pipeline (below) implements it without either
//! importing the other.

use crate::creds::Credentials;
use crate::error::Result;
use std::future::Future;

/// Where credentials come from; `sts::Pipeline` in production, a fake in unit tests.
pub trait Fetch: Send + Sync + 'static {
    /// Obtains new credentials.
    fn fetch(&self) -> impl Future<Output = Result<Credentials>> + Send;

    /// Obtains new credentials with a new login, not a cached token: after a password or
    /// role change (`s3credsfs refresh`).
    fn fetch_with_new_login(&self) -> impl Future<Output = Result<Credentials>> + Send {
        self.fetch()
    }

    /// After Keycloak refused the login: whether its secret changed since (a password
    /// file or command now gives another one, which is used from now on), so that a new
    /// login may succeed. Never contacts the gateway.
    fn login_changed(&self) -> impl Future<Output = bool> + Send {
        std::future::ready(false)
    }
}
