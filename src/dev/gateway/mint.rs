//! Where credentials come from once a caller is authorised: the [`CredentialMinter`] trait
//! and its random implementation (the backend's is in `backend`).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::Utc;

use super::random::{fill_random, random_base64, random_string};
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
    /// Mints one set of credentials. An `Err` becomes cray-sts's 500 problem document.
    fn mint(&self) -> MintFuture<'_>;
}

/// Random credentials shaped like those Ceph RGW 16.2's `AssumeRole` returns (what
/// cray-sts passes on), so clients and the product's parsers meet the real shapes:
/// `AccessKeyId` 19 or 20 letters of both cases and digits, a secret of 39 or 40
/// characters, and a session token of about 364 base64 characters with `+`, `/` and `=`.
pub(crate) struct RandomMinter {
    /// Empty when none is configured: the reply then says `"EndpointURL": null`.
    pub endpoint_url: String,
    pub lifetime: Duration,
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `low` or `low + 1`, at random: RGW's lengths vary by one between key sets.
fn length_from(low: usize) -> usize {
    let mut coin = [0u8; 1];
    fill_random(&mut coin);
    low + usize::from(coin[0] & 1)
}

impl RandomMinter {
    pub(crate) fn make(&self) -> Credentials {
        let lifetime = chrono::Duration::from_std(self.lifetime)
            .unwrap_or_else(|_| chrono::Duration::days(3650));
        Credentials {
            access_key_id: random_string(ALNUM, length_from(19)),
            secret_access_key: Secret::new(random_string(ALNUM, length_from(39))),
            // 271 or 272 bytes: 364 characters ending in `==` or `=`, as RGW's do.
            session_token: Secret::new(random_base64(length_from(271))),
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
    fn minted_shapes_are_rgws() {
        let minter = RandomMinter {
            endpoint_url: "http://rgw.local:8080".into(),
            lifetime: Duration::from_secs(3600),
        };
        let minted: Vec<Credentials> = (0..40).map(|_| minter.make()).collect();
        let mut key_lengths = std::collections::BTreeSet::new();
        let mut tokens = String::new();
        for c in &minted {
            let key = &c.access_key_id;
            key_lengths.insert(key.len());
            assert!((19..=20).contains(&key.len()), "{key}");
            assert!(key.bytes().all(|b| b.is_ascii_alphanumeric()), "{key}");
            let secret = c.secret_access_key.expose();
            assert!((39..=40).contains(&secret.len()));
            assert!(secret.bytes().all(|b| b.is_ascii_alphanumeric()));
            let token = c.session_token.expose();
            assert_eq!(token.len(), 364);
            assert!(token.ends_with('='));
            tokens.push_str(token);
            assert_eq!(c.endpoint_url, "http://rgw.local:8080");
        }
        assert_eq!(key_lengths.len(), 2, "both lengths appear in 40 sets");
        let keys: String = minted.iter().map(|c| c.access_key_id.as_str()).collect();
        assert!(keys.bytes().any(|b| b.is_ascii_lowercase()));
        assert!(keys.bytes().any(|b| b.is_ascii_uppercase()));
        assert!(tokens.contains('+') && tokens.contains('/'));
    }
}
