//! A Keycloak realm's JSON Web Key Set and the RS256 check of its tokens, as Istio (Envoy's
//! jwt_authn) and OPA (`io.jwt.decode_verify`) do on CSM. Pure: the set arrives as bytes
//! (fetched by `upstream`), so every check here is tested without a network.
//!
//! The set comes from outside and is hostile until checked: its size, the number of keys,
//! and each key's fields are bounded, and only RSA signing keys are kept (Keycloak also
//! publishes an `RSA-OAEP` encryption key, which must never verify a signature).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use serde_json::Value;

use super::jwt::Decoded;

/// The only algorithm accepted from Keycloak (its realms sign with RS256 by default, and
/// CSM's realm does). Tokens naming another (`none`, `HS256` with the public key as the
/// secret) are refused before any key is looked at.
pub(crate) const RS256: &str = "RS256";
/// Largest key set read: Keycloak's is about 3 KiB (two keys).
pub(crate) const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Most keys a set may hold; more is not a realm's key set.
const MAX_KEYS: usize = 32;
/// Longest `kid` kept; Keycloak's are 43 characters.
const MAX_KID_CHARS: usize = 256;
/// Modulus sizes ring verifies with (`RSA_PKCS1_2048_8192_SHA256`), in bytes.
const MODULUS_BYTES: std::ops::RangeInclusive<usize> = 256..=1024;
/// Longest public exponent accepted, in bytes (Keycloak's is 65537, three bytes).
const MAX_EXPONENT_BYTES: usize = 8;

/// One RSA signing key of the set.
struct RsaKey {
    kid: String,
    public: RsaPublicKeyComponents<Vec<u8>>,
}

/// The usable keys of a realm's key set.
pub(crate) struct Jwks {
    keys: Vec<RsaKey>,
}

/// What a token's signature check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyCheck {
    /// Signed by a key of the set.
    Verified,
    /// The key it names is in the set, but the signature does not match (or, without a
    /// `kid`, no key of the set made it).
    BadSignature,
    /// It names a key the set does not hold: the realm may have rotated its keys, so the
    /// caller may fetch the set again, once.
    UnknownKid,
}

/// The bytes of a base64url field of a key, or why not.
fn field(key: &serde_json::Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let text = key
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("an RSA key of the JWKS has no {name:?}"))?;
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| format!("the {name:?} of an RSA key of the JWKS is not base64url"))
}

/// Strips the leading zero bytes some encoders add; ring wants none.
fn minimal(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

impl Jwks {
    /// Parses a key set (`{"keys": [...]}`), keeping its RSA signing keys. `Err` is a
    /// plain description of what is wrong with it, never its content.
    pub fn parse(body: &[u8]) -> Result<Jwks, String> {
        if body.len() > MAX_JWKS_BYTES {
            return Err(format!(
                "the JWKS is larger than {} KiB",
                MAX_JWKS_BYTES / 1024
            ));
        }
        let json: Value =
            serde_json::from_slice(body).map_err(|_| "the JWKS is not JSON".to_owned())?;
        let listed = json
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("the JWKS has no \"keys\" list")?;
        if listed.len() > MAX_KEYS {
            return Err(format!("the JWKS lists more than {MAX_KEYS} keys"));
        }
        let mut keys = Vec::new();
        for key in listed {
            let key = key
                .as_object()
                .ok_or("a key of the JWKS is not an object")?;
            let text = |name: &str| key.get(name).and_then(Value::as_str);
            let signing = text("kty") == Some("RSA")
                && text("use").is_none_or(|u| u == "sig")
                && text("alg").is_none_or(|a| a == RS256);
            if !signing {
                continue;
            }
            let kid = text("kid")
                .filter(|k| !k.is_empty() && k.chars().count() <= MAX_KID_CHARS)
                .ok_or("an RSA key of the JWKS has no usable \"kid\"")?;
            let n = minimal(field(key, "n")?);
            let e = minimal(field(key, "e")?);
            if !MODULUS_BYTES.contains(&n.len()) {
                return Err(format!(
                    "the RSA key {kid:?} of the JWKS has a modulus of {} bits, outside 2048 to 8192",
                    n.len() * 8
                ));
            }
            if e.is_empty() || e.len() > MAX_EXPONENT_BYTES {
                return Err(format!(
                    "the RSA key {kid:?} of the JWKS has an unusable exponent"
                ));
            }
            keys.push(RsaKey {
                kid: kid.to_owned(),
                public: RsaPublicKeyComponents { n, e },
            });
        }
        if keys.is_empty() {
            return Err("the JWKS holds no RS256 signing key".to_owned());
        }
        Ok(Jwks { keys })
    }

    /// Checks an RS256 token's signature: with the key its `kid` names, or without a
    /// `kid` with each key in turn (as Envoy does).
    pub fn check(&self, decoded: &Decoded) -> KeyCheck {
        let verifies = |key: &RsaKey| {
            key.public
                .verify(
                    &RSA_PKCS1_2048_8192_SHA256,
                    decoded.signing_input(),
                    decoded.signature(),
                )
                .is_ok()
        };
        match decoded.header.get("kid") {
            Some(Value::String(kid)) => match self.keys.iter().find(|k| &k.kid == kid) {
                Some(key) if verifies(key) => KeyCheck::Verified,
                Some(_) => KeyCheck::BadSignature,
                None => KeyCheck::UnknownKid,
            },
            Some(_) => KeyCheck::BadSignature,
            None if self.keys.iter().any(verifies) => KeyCheck::Verified,
            None => KeyCheck::BadSignature,
        }
    }
}

#[cfg(test)]
pub(crate) mod test_keys {
    //! Two fixed RSA keys (tests/keycloak/test-keys: RSA 2048, PKCS#1 DER, made
    //! with `openssl genpkey`) that
    //! sign RS256 tokens as a Keycloak realm would, and their JWKS entries.

    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
    use serde_json::json;

    /// A test signing key and the `kid` it is published under.
    pub(crate) struct TestKey {
        pair: RsaKeyPair,
        pub kid: &'static str,
    }

    /// Key A, published as `kid-a`.
    pub(crate) fn key_a() -> TestKey {
        key(
            include_bytes!("../../../tests/keycloak/test-keys/rsa-a.der"),
            "kid-a",
        )
    }

    /// Key B, published as `kid-b` (another realm's, or the realm's after a rotation).
    pub(crate) fn key_b() -> TestKey {
        key(
            include_bytes!("../../../tests/keycloak/test-keys/rsa-b.der"),
            "kid-b",
        )
    }

    fn key(der: &[u8], kid: &'static str) -> TestKey {
        TestKey {
            pair: RsaKeyPair::from_der(der).expect("a test key"),
            kid,
        }
    }

    impl TestKey {
        /// Its JWKS entry, as Keycloak publishes a signing key.
        pub fn jwk(&self) -> Value {
            let public = RsaPublicKeyComponents::<Vec<u8>>::from(self.pair.public());
            json!({"kid": self.kid, "kty": "RSA", "alg": "RS256", "use": "sig",
                   "n": URL_SAFE_NO_PAD.encode(&public.n), "e": URL_SAFE_NO_PAD.encode(&public.e)})
        }

        /// The modulus bytes, e.g. to misuse as an HMAC secret.
        pub fn modulus(&self) -> Vec<u8> {
            RsaPublicKeyComponents::<Vec<u8>>::from(self.pair.public()).n
        }

        /// A compact JWS of `claims` with `header` (`alg` and `kid` as given).
        pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let mut sig = vec![0; self.pair.public().modulus_len()];
            self.pair
                .sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    input.as_bytes(),
                    &mut sig,
                )
                .expect("sign");
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
        }

        /// An RS256 token of `claims` under this key's `kid`.
        pub fn sign(&self, claims: &Value) -> String {
            self.sign_with_header(
                &json!({"alg": RS256, "typ": "JWT", "kid": self.kid}),
                claims,
            )
        }
    }

    /// A key set of these keys' entries.
    pub(crate) fn jwks_of(keys: &[&TestKey]) -> Vec<u8> {
        let keys: Vec<Value> = keys.iter().map(|k| k.jwk()).collect();
        json!({ "keys": keys }).to_string().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::test_keys::*;
    use super::*;
    use crate::dev::gateway::jwt::decode;
    use serde_json::json;

    fn check(jwks: &Jwks, token: &str) -> KeyCheck {
        jwks.check(&decode(token, RS256).expect("an RS256 token"))
    }

    #[test]
    fn a_token_signed_by_a_key_of_the_set_verifies() {
        let (a, b) = (key_a(), key_b());
        let jwks = Jwks::parse(&jwks_of(&[&a, &b])).unwrap();
        assert_eq!(
            check(&jwks, &a.sign(&json!({"sub": "x"}))),
            KeyCheck::Verified
        );
        assert_eq!(
            check(&jwks, &b.sign(&json!({"sub": "x"}))),
            KeyCheck::Verified
        );
    }

    #[test]
    fn a_forged_or_altered_signature_is_refused() {
        let (a, b) = (key_a(), key_b());
        let jwks = Jwks::parse(&jwks_of(&[&a])).unwrap();
        // Key B's signature under key A's kid.
        let forged = b.sign_with_header(&json!({"alg": RS256, "kid": a.kid}), &json!({"sub": "x"}));
        assert_eq!(check(&jwks, &forged), KeyCheck::BadSignature);
        // Key A's token with other claims spliced in.
        let token = a.sign(&json!({"sub": "x"}));
        let parts: Vec<&str> = token.split('.').collect();
        let other = URL_SAFE_NO_PAD.encode(json!({"sub": "root"}).to_string());
        let spliced = format!("{}.{other}.{}", parts[0], parts[2]);
        assert_eq!(check(&jwks, &spliced), KeyCheck::BadSignature);
    }

    #[test]
    fn a_kid_the_set_lacks_is_unknown_and_none_tries_every_key() {
        let (a, b) = (key_a(), key_b());
        let jwks = Jwks::parse(&jwks_of(&[&a])).unwrap();
        assert_eq!(check(&jwks, &b.sign(&json!({}))), KeyCheck::UnknownKid);
        // Without a kid, each key of the set is tried: key A's token verifies, key B's
        // does not (B is not in the set). A kid that is not a string matches no key.
        let no_kid = |k: &TestKey| k.sign_with_header(&json!({"alg": RS256}), &json!({}));
        assert_eq!(check(&jwks, &no_kid(&a)), KeyCheck::Verified);
        assert_eq!(check(&jwks, &no_kid(&b)), KeyCheck::BadSignature);
        let numeric_kid = a.sign_with_header(&json!({"alg": RS256, "kid": 1}), &json!({}));
        assert_eq!(check(&jwks, &numeric_kid), KeyCheck::BadSignature);
    }

    #[test]
    fn encryption_and_other_keys_never_verify() {
        let a = key_a();
        let mut enc = a.jwk();
        enc["use"] = "enc".into();
        enc["alg"] = "RSA-OAEP".into();
        let mut ec = a.jwk();
        ec["kty"] = "EC".into();
        let mut hs = a.jwk();
        hs["alg"] = "HS256".into();
        for only in [enc, ec, hs] {
            let body = json!({ "keys": [only] }).to_string();
            assert_eq!(
                Jwks::parse(body.as_bytes()).err().unwrap(),
                "the JWKS holds no RS256 signing key"
            );
        }
    }

    #[test]
    fn hostile_key_sets_are_refused_with_a_sentence() {
        let a = key_a();
        let oversize = vec![b' '; MAX_JWKS_BYTES + 1];
        assert_eq!(
            Jwks::parse(&oversize).err().unwrap(),
            "the JWKS is larger than 64 KiB"
        );
        let many: Vec<Value> = (0..=MAX_KEYS).map(|_| a.jwk()).collect();
        let many = json!({ "keys": many }).to_string();
        assert!(many.len() < MAX_JWKS_BYTES);
        assert_eq!(
            Jwks::parse(many.as_bytes()).err().unwrap(),
            "the JWKS lists more than 32 keys"
        );
        let mut small = a.jwk();
        small["n"] = URL_SAFE_NO_PAD.encode([0xffu8; 128]).into();
        let small = json!({ "keys": [small] }).to_string();
        assert!(Jwks::parse(small.as_bytes())
            .err()
            .unwrap()
            .contains("modulus of 1024 bits"));
        let mut no_kid = a.jwk();
        no_kid.as_object_mut().unwrap().remove("kid");
        let no_kid = json!({ "keys": [no_kid] }).to_string();
        assert!(Jwks::parse(no_kid.as_bytes()).is_err());
        for garbage in [
            &b"[]"[..],
            b"{}",
            b"{\"keys\": 3}",
            b"\xff",
            b"{\"keys\": [3]}",
        ] {
            assert!(Jwks::parse(garbage).is_err(), "{garbage:?}");
        }
    }
}
