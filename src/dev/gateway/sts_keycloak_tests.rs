//! The checks in front of STS against a real Keycloak's RS256 tokens (`--keycloak`), with
//! fixed test keys and an injected time: each refusal is made by one altered token that
//! is otherwise valid, so removing that check makes its test fail.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use ring::hmac;
use serde_json::{json, Value};

use super::authorize_at;
use crate::dev::gateway::config::GatewayConfig;
use crate::dev::gateway::jwks::test_keys::{jwks_of, key_a, key_b};
use crate::dev::gateway::jwks::Jwks;
use crate::dev::gateway::state::State;
use crate::dev::gateway::upstream::KeycloakUpstream;

/// Where the test realm's Keycloak would be: nothing listens there, so a key set fetched
/// again for an unknown `kid` never arrives.
const KEYCLOAK: &str = "http://127.0.0.1:1/keycloak";
const ISSUER: &str = "http://127.0.0.1:1/keycloak/realms/shasta";
/// The injected time every token is checked at.
const NOW: u64 = 1_800_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

/// A gateway state fronting a Keycloak whose key set holds key A only.
fn state() -> State {
    let jwks = Jwks::parse(&jwks_of(&[&key_a()])).unwrap();
    let upstream = KeycloakUpstream::with_keys(KEYCLOAK, jwks);
    State::new(
        GatewayConfig::default(),
        "http://127.0.0.1:9443",
        Some(upstream),
    )
    .unwrap()
}

/// The claims of an access token Keycloak issues to the test admin through client
/// `shasta`, valid at [`NOW`].
fn claims() -> Value {
    json!({
        "exp": NOW + 60, "iat": NOW - 1, "iss": ISSUER, "typ": "Bearer", "azp": "shasta",
        "aud": ["shasta", "account"], "sub": "f00", "preferred_username": "vers",
        "resource_access": {"shasta": {"roles": ["admin"]}, "account": {"roles": ["view-profile"]}},
    })
}

/// What the checks answer for `token`: `Ok` or the status and body of the refusal.
async fn answer(token: &str) -> Result<(), (u16, String)> {
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    headers.insert(AUTHORIZATION, value);
    authorize_at(&state(), &headers, now())
        .await
        .map_err(|reply| (reply.status, reply.body))
}

fn istio(message: &str) -> Result<(), (u16, String)> {
    Err((401, message.to_owned()))
}

fn opa() -> Result<(), (u16, String)> {
    Err((403, "Unauthorized Request".to_owned()))
}

/// `claims()` with `change` applied.
fn with(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut c = claims();
    change(c.as_object_mut().unwrap());
    c
}

#[tokio::test]
async fn a_token_of_the_realm_with_the_admin_role_passes() {
    assert_eq!(answer(&key_a().sign(&claims())).await, Ok(()));
    let single_audience = with(|c| {
        c.insert("aud".into(), "shasta".into());
    });
    assert_eq!(answer(&key_a().sign(&single_audience)).await, Ok(()));
}

#[tokio::test]
async fn signatures_by_other_keys_are_refused() {
    let (a, b) = (key_a(), key_b());
    // Key B's signature under the realm key's kid.
    let forged = b.sign_with_header(&json!({"alg": "RS256", "kid": a.kid}), &claims());
    assert_eq!(answer(&forged).await, istio("Jwt verification fails"));
    // Key B under its own kid, which the set lacks (and cannot be fetched again here).
    assert_eq!(
        answer(&b.sign(&claims())).await,
        istio("Jwt verification fails")
    );
}

#[tokio::test]
async fn unsigned_and_hmac_tokens_are_refused() {
    let body = URL_SAFE_NO_PAD.encode(claims().to_string());
    let header = |h: Value| URL_SAFE_NO_PAD.encode(h.to_string());
    let unsigned = format!("{}.{body}.", header(json!({"alg": "none", "kid": "kid-a"})));
    assert_eq!(answer(&unsigned).await, istio("Jwt verification fails"));
    // HS256 keyed with the realm's public key (which anyone can fetch).
    let input = format!("{}.{body}", header(json!({"alg": "HS256", "kid": "kid-a"})));
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key_a().modulus());
    let tag = hmac::sign(&key, input.as_bytes());
    let confused = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    assert_eq!(answer(&confused).await, istio("Jwt verification fails"));
}

#[tokio::test]
async fn another_issuer_is_refused() {
    for other in [
        "http://127.0.0.1:1/keycloak/realms/elsewhere",
        "http://127.0.0.1:9443/keycloak/realms/shasta",
    ] {
        let token = key_a().sign(&with(|c| {
            c.insert("iss".into(), other.into());
        }));
        assert_eq!(answer(&token).await, istio("Jwt issuer is not configured"));
    }
    let none = key_a().sign(&with(|c| {
        c.remove("iss");
    }));
    assert_eq!(answer(&none).await, istio("Jwt issuer is not configured"));
}

#[tokio::test]
async fn times_are_checked_on_the_injected_clock() {
    let expired = key_a().sign(&with(|c| {
        c.insert("exp".into(), NOW.into());
    }));
    assert_eq!(answer(&expired).await, istio("Jwt is expired"));
    let early = key_a().sign(&with(|c| {
        c.insert("nbf".into(), (NOW + 5).into());
    }));
    assert_eq!(answer(&early).await, istio("Jwt not yet valid"));
    let begun = key_a().sign(&with(|c| {
        c.insert("nbf".into(), NOW.into());
    }));
    assert_eq!(answer(&begun).await, Ok(()));
}

#[tokio::test]
async fn opa_wants_audience_shasta_not_just_azp() {
    for aud in [None, Some(json!("account")), Some(json!(["account"]))] {
        let token = key_a().sign(&with(|c| match aud {
            Some(aud) => {
                c.insert("aud".into(), aud);
            }
            None => {
                c.remove("aud");
            }
        }));
        assert_eq!(
            answer(&token).await,
            opa(),
            "azp shasta alone is not enough"
        );
    }
}

#[tokio::test]
async fn opa_wants_the_admin_role_of_client_shasta() {
    for access in [
        json!({"account": {"roles": ["view-profile"]}}),
        json!({"shasta": {"roles": ["user"]}}),
        json!({"admin-client": {"roles": ["admin"]}}),
    ] {
        let token = key_a().sign(&with(|c| {
            c.insert("resource_access".into(), access);
        }));
        assert_eq!(answer(&token).await, opa());
    }
    // A realm role of that name is not the client role.
    let realm_role = key_a().sign(&with(|c| {
        c.remove("resource_access");
        c.insert("realm_access".into(), json!({"roles": ["admin"]}));
    }));
    assert_eq!(answer(&realm_role).await, opa());
}
