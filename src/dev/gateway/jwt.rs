//! JSON Web Tokens as the gateway reads them: HS256 for the emulated Keycloak, which both
//! issues and verifies with a per-instance HMAC key, and the decoding that the RS256 check
//! of a real Keycloak's tokens (`jwks`) shares with it.
//!
//! Verification compares MACs in constant time (`ring::hmac::verify`).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use serde_json::{json, Map, Value};
use zeroize::Zeroize;

/// Why a token was refused. Kept coarse: callers map these onto the exact error bodies the
/// real components return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JwtError {
    /// Not three base64url sections, not JSON objects, or another algorithm than expected.
    Malformed,
    /// Well formed, but the MAC does not match this gateway's key.
    BadSignature,
    /// Signature fine (or not yet checked), but `exp` has passed.
    Expired,
}

/// A decoded but not yet trusted token: the parts needed to check it in any order
/// (Envoy checks the time constraints before the signature; Keycloak does not care).
pub(crate) struct Decoded {
    /// The header object (`alg`, `kid`), untrusted.
    pub header: Map<String, Value>,
    /// The claims object (untrusted until the signature is checked).
    pub claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

impl Decoded {
    /// True when the token carries an `exp` that is not after `now`. A token without `exp`
    /// never expires (as in Envoy's jwt_authn); this gateway always sets it.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        match self.claims.get("exp").and_then(Value::as_f64) {
            Some(exp) => now_secs_f64(now) >= exp,
            None => false,
        }
    }

    /// True when the token carries an `nbf` that is still after `now` (Envoy's "Jwt not
    /// yet valid"). Keycloak sets none by default; a token without it is valid at once.
    pub fn is_premature(&self, now: SystemTime) -> bool {
        match self.claims.get("nbf").and_then(Value::as_f64) {
            Some(nbf) => now_secs_f64(now) < nbf,
            None => false,
        }
    }

    /// The bytes the signature covers: `base64url(header).base64url(claims)`.
    pub fn signing_input(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }

    /// The decoded signature.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

/// The algorithm of this gateway's own tokens.
pub(crate) const HS256: &str = "HS256";

/// Signs and verifies tokens with one random HMAC-SHA256 key that lives as long as the
/// gateway instance, so tokens from another instance (or forged ones) never verify.
pub(crate) struct Signer {
    key: hmac::Key,
    kid: String,
}

impl Signer {
    /// A signer with a fresh random 32-byte key.
    pub fn generate() -> Signer {
        let mut secret = [0u8; 32];
        super::random::fill_random(&mut secret);
        let signer = Signer::from_secret(&secret);
        secret.zeroize();
        signer
    }

    /// A signer with a given key; used by tests that need two signers to disagree.
    pub fn from_secret(secret: &[u8]) -> Signer {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        // A key id derived from the key, like a JWKS `kid`; reveals nothing useful.
        let tag = hmac::sign(&key, b"kid");
        let kid = URL_SAFE_NO_PAD.encode(&tag.as_ref()[..12]);
        Signer { key, kid }
    }

    /// Serialises `claims` into a compact JWS (`header.payload.signature`).
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let tag = hmac::sign(&self.key, signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// True when the token's MAC was made with this signer's key.
    pub fn check_signature(&self, decoded: &Decoded) -> bool {
        hmac::verify(
            &self.key,
            decoded.signing_input.as_bytes(),
            &decoded.signature,
        )
        .is_ok()
    }

    /// Full check in the usual order: shape, signature, then expiry. Returns the claims.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Map<String, Value>, JwtError> {
        let decoded = decode(token, HS256)?;
        if !self.check_signature(&decoded) {
            return Err(JwtError::BadSignature);
        }
        if decoded.is_expired(now) {
            return Err(JwtError::Expired);
        }
        Ok(decoded.claims)
    }
}

/// Splits and decodes a compact JWS without trusting it. Only the algorithm `alg` is
/// accepted, so a token claiming `alg: none` (or HS256 where RS256 is expected, the
/// public key used as an HMAC secret) is malformed rather than unsigned.
pub(crate) fn decode(token: &str, alg: &str) -> Result<Decoded, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header = crate::jwt::part(h).ok_or(JwtError::Malformed)?;
    if header.get("alg").and_then(Value::as_str) != Some(alg) {
        return Err(JwtError::Malformed);
    }
    let claims = crate::jwt::part(p).ok_or(JwtError::Malformed)?;
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
    Ok(Decoded {
        header,
        claims,
        signing_input: format!("{h}.{p}"),
        signature,
    })
}

/// Seconds since the Unix epoch, with fractions, for comparing against `exp`.
fn now_secs_f64(now: SystemTime) -> f64 {
    now.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Whole seconds since the Unix epoch, as Keycloak writes `iat` and `exp`.
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn claims(exp: u64) -> Value {
        json!({"sub": "someone", "exp": exp, "resource_access": {"shasta": {"roles": ["admin"]}}})
    }

    fn later() -> u64 {
        unix_secs(SystemTime::now()) + 300
    }

    #[test]
    fn round_trip() {
        let signer = Signer::generate();
        let token = signer.sign(&claims(later()));
        assert_eq!(token.split('.').count(), 3);
        let got = signer.verify(&token, SystemTime::now()).unwrap();
        assert_eq!(got["sub"], "someone");
        assert_eq!(got["resource_access"]["shasta"]["roles"][0], "admin");
    }

    #[test]
    fn other_key_is_bad_signature() {
        let a = Signer::from_secret(b"one key, 32 bytes long, exactly!");
        let b = Signer::from_secret(b"another key that is also 32 byte");
        let token = a.sign(&claims(later()));
        assert_eq!(
            b.verify(&token, SystemTime::now()),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn tampered_payload_is_detected() {
        let signer = Signer::generate();
        let token = signer.sign(&claims(later()));
        let parts: Vec<&str> = token.split('.').collect();
        let forged_claims = json!({"sub": "attacker", "exp": later(),
            "resource_access": {"shasta": {"roles": ["admin"]}}});
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(forged_claims.to_string()),
            parts[2]
        );
        assert_eq!(
            signer.verify(&forged, SystemTime::now()),
            Err(JwtError::BadSignature)
        );
        // Flipping one character of the signature also fails.
        let mut sig = parts[2].to_string();
        let last = sig.pop().unwrap();
        sig.push(if last == 'A' { 'B' } else { 'A' });
        let flipped = format!("{}.{}.{}", parts[0], parts[1], sig);
        assert!(signer.verify(&flipped, SystemTime::now()).is_err());
    }

    #[test]
    fn alg_none_and_garbage_are_malformed() {
        let signer = Signer::generate();
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims(later()).to_string());
        let unsigned = format!("{header}.{payload}.");
        assert_eq!(
            signer.verify(&unsigned, SystemTime::now()),
            Err(JwtError::Malformed)
        );
        for garbage in ["", "abc", "a.b", "a.b.c", "a.b.c.d", "...."] {
            assert_eq!(
                signer.verify(garbage, SystemTime::now()),
                Err(JwtError::Malformed),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn expiry() {
        let signer = Signer::generate();
        let now = SystemTime::now();
        let exp = unix_secs(now) + 10;
        let token = signer.sign(&claims(exp));
        assert!(signer.verify(&token, now).is_ok());
        let after = UNIX_EPOCH + Duration::from_secs(exp);
        assert_eq!(signer.verify(&token, after), Err(JwtError::Expired));
        assert!(decode(&token, HS256).unwrap().is_expired(after));
        assert!(!decode(&token, HS256).unwrap().is_expired(now));
    }
}
