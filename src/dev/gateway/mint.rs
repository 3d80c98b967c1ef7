//! Where credentials come from once a caller is authorised: the [`CredentialMinter`] trait
//! and its random implementation (the backend's is in `backend`).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::Utc;

use super::random::{random_base64, random_string};
// What the emulator mints is the type the client parses a reply into: one type, whose
// secrets are redacted in `Debug` and zeroed on drop on both sides.
use crate::creds::Credentials;
use crate::secret::Secret;

/// A boxed future, so that [`CredentialMinter`] stays object-safe.
pub(crate) type MintFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Credentials, String>> + Send + 'a>>;

/// Where credentials come from once a caller is authorised. The emulator makes up random
/// ones ([`RandomMinter`]) or, with a configured backend, asks a real STS with
/// `AssumeRole` as cray-sts does against Ceph RGW (`backend::AssumeRoleMinter`);
/// the request handling is the same for both.
pub(crate) trait CredentialMinter: Send + Sync {
    /// Mints one set of credentials. An `Err` becomes cray-sts's plain 500 "Error".
    fn mint(&self) -> MintFuture<'_>;
}

/// Random credentials of the right shape, valid for the configured lifetime.
pub(crate) struct RandomMinter {
    pub endpoint_url: String,
    pub lifetime: Duration,
}

const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

impl RandomMinter {
    pub(crate) fn make(&self) -> Credentials {
        let lifetime = chrono::Duration::from_std(self.lifetime)
            .unwrap_or_else(|_| chrono::Duration::days(3650));
        Credentials {
            access_key_id: random_string(UPPER_ALNUM, 20),
            secret_access_key: Secret::new(random_string(ALNUM, 40)),
            session_token: Secret::new(random_base64(192)),
            endpoint_url: self.endpoint_url.clone(),
            expiration: Utc::now() + lifetime,
        }
    }
}

impl CredentialMinter for RandomMinter {
    fn mint(&self) -> MintFuture<'_> {
        let creds = self.make();
        Box::pin(async move { Ok(creds) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_shapes() {
        let minter = RandomMinter {
            endpoint_url: "http://rgw.local:8080".into(),
            lifetime: Duration::from_secs(3600),
        };
        let c = minter.make();
        assert_eq!(c.access_key_id.len(), 20);
        assert!(c
            .access_key_id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        assert_eq!(c.secret_access_key.expose().len(), 40);
        assert_eq!(c.session_token.expose().len(), 256);
        assert_eq!(c.endpoint_url, "http://rgw.local:8080");
    }
}
