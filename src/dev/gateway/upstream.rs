//! A real Keycloak behind the built-in gateway (`dev-gateway --keycloak URL`): its realm's
//! issuer and key set, fetched from its OpenID configuration, and the forwarding of
//! `/keycloak/...` to it, so clients use exactly CSM's URLs while Istio's and OPA's checks
//! in front of STS run against the tokens Keycloak really issues.
//!
//! The issuer. Keycloak writes into `iss` the URL it was reached by. The gateway reaches
//! it at the `--keycloak` URL itself (the `Host` of that URL, no `X-Forwarded-*` headers),
//! so every token, whether got through the gateway or from Keycloak directly, names
//! `{--keycloak URL}/realms/shasta`, which is the one issuer accepted, as CSM's OPA
//! accepts Keycloak's in-cluster URL `http://keycloak:8080/keycloak/realms/shasta`. The
//! OpenID configuration must name exactly that issuer, and a `jwks_uri` on the same
//! origin, or the gateway does not start.
//!
//! Everything Keycloak sends is hostile until checked: replies are read with a size
//! limit and a time limit, and the key set is checked by `jwks`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use hyper::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use hyper::Method;
use serde_json::Value;

use super::config::REALM;
use super::jwks::{Jwks, KeyCheck, MAX_JWKS_BYTES};
use super::jwt::Decoded;
use super::reply::Reply;
use crate::sync::lock;

/// Limit for connecting and for one fetch of the configuration or the key set.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest OpenID configuration read (Keycloak's is about 6 KiB).
const MAX_CONFIGURATION_BYTES: usize = 64 * 1024;
/// Largest forwarded reply (token replies are a few KiB).
const MAX_FORWARDED_BYTES: usize = 1024 * 1024;
/// Least time between two fetches of the key set for an unknown `kid`, so tokens with
/// made-up key ids cannot make the gateway hammer Keycloak.
pub(crate) const REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// The real Keycloak the gateway fronts.
pub(crate) struct KeycloakUpstream {
    /// The `--keycloak` URL without a trailing slash, e.g. `http://127.0.0.1:8080/keycloak`.
    base: String,
    /// `{base}/realms/shasta`: the only `iss` accepted.
    issuer: String,
    /// Where the key set is fetched again when a token names an unknown key.
    jwks_uri: String,
    client: reqwest::Client,
    keys: Mutex<Arc<Jwks>>,
    /// When the key set was last fetched for an unknown `kid` (`None`: not yet).
    last_refetch: Mutex<Option<Instant>>,
}

/// The HTTP client towards Keycloak: no proxy (Keycloak is local or in the lab), no
/// redirects followed (a gateway passes them on), bounded times.
fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(FETCH_TIMEOUT)
        .user_agent(concat!("s3credsfs-dev-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot set up the HTTP client for Keycloak: {e}"))
}

/// Reads a reply's body, refusing one longer than `limit`.
async fn read_bounded(mut reply: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = reply
        .chunk()
        .await
        .map_err(|e| format!("its reply broke off: {e}"))?
    {
        if body.len() + chunk.len() > limit {
            return Err(format!("its reply is larger than {} KiB", limit / 1024));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `GET url`, expecting 200 and at most `limit` bytes, within [`FETCH_TIMEOUT`].
async fn get(client: &reqwest::Client, url: &str, limit: usize) -> Result<Vec<u8>, String> {
    let fetch = async {
        let reply = client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("cannot reach it: {}", super::backend::error_chain(&e)))?;
        if reply.status() != reqwest::StatusCode::OK {
            return Err(format!("it answered HTTP {}", reply.status().as_u16()));
        }
        read_bounded(reply, limit).await
    };
    tokio::time::timeout(FETCH_TIMEOUT, fetch)
        .await
        .map_err(|_| format!("it did not answer within {}s", FETCH_TIMEOUT.as_secs()))?
}

/// Checks an OpenID configuration and returns its `jwks_uri`.
fn jwks_uri_of(configuration: &[u8], issuer: &str, base: &url::Url) -> Result<String, String> {
    let json: Value = serde_json::from_slice(configuration)
        .map_err(|_| "its OpenID configuration is not JSON".to_owned())?;
    let named = json.get("issuer").and_then(Value::as_str).unwrap_or("");
    if named != issuer {
        let shown: String = named.chars().take(200).collect();
        return Err(format!(
            "its OpenID configuration names the issuer {shown:?}, not {issuer:?}; give --keycloak \
             the URL Keycloak is reached by, with its relative path (such as http://127.0.0.1:8080/keycloak)"
        ));
    }
    let uri = json
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or("its OpenID configuration has no jwks_uri")?;
    match url::Url::parse(uri) {
        Ok(parsed) if parsed.origin() == base.origin() => Ok(uri.to_owned()),
        _ => Err("its OpenID configuration's jwks_uri is not on Keycloak's own origin".to_owned()),
    }
}

impl KeycloakUpstream {
    /// Reads the realm's OpenID configuration and key set from the Keycloak at `url`
    /// (its base, e.g. `http://127.0.0.1:8080/keycloak`). `Err` is a plain sentence.
    pub async fn connect(url: &str) -> Result<KeycloakUpstream, String> {
        let parsed = url::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                format!("--keycloak expects an absolute http(s) URL such as http://127.0.0.1:8080/keycloak, not {url:?}.")
            })?;
        let base = url.trim_end_matches('/').to_owned();
        let issuer = format!("{base}/realms/{REALM}");
        let client = client()?;
        let why = |e: String| format!("Keycloak at {base}: {e}.");
        let configuration = get(
            &client,
            &format!("{issuer}/.well-known/openid-configuration"),
            MAX_CONFIGURATION_BYTES,
        )
        .await
        .map_err(why)?;
        let jwks_uri = jwks_uri_of(&configuration, &issuer, &parsed).map_err(why)?;
        let jwks = get(&client, &jwks_uri, MAX_JWKS_BYTES)
            .await
            .and_then(|body| Jwks::parse(&body))
            .map_err(why)?;
        Ok(KeycloakUpstream {
            base,
            issuer,
            jwks_uri,
            client,
            keys: Mutex::new(Arc::new(jwks)),
            last_refetch: Mutex::new(None),
        })
    }

    /// An upstream at `base` holding `jwks`, with no network until a key is unknown.
    #[cfg(test)]
    pub fn with_keys(base: &str, jwks: Jwks) -> KeycloakUpstream {
        KeycloakUpstream {
            base: base.to_owned(),
            issuer: format!("{base}/realms/{REALM}"),
            jwks_uri: format!("{base}/realms/{REALM}/protocol/openid-connect/certs"),
            client: client().expect("a client"),
            keys: Mutex::new(Arc::new(jwks)),
            last_refetch: Mutex::new(None),
        }
    }

    /// The realm's issuer, the only `iss` accepted.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// True when an RS256 token was signed by a key of the realm. A token naming a key the
    /// set lacks makes one fetch of the set (at most one per [`REFETCH_INTERVAL`]); a
    /// failed fetch keeps the keys held.
    pub async fn check_signature(&self, decoded: &Decoded) -> bool {
        let keys = lock(&self.keys).clone();
        match keys.check(decoded) {
            KeyCheck::Verified => true,
            KeyCheck::BadSignature => false,
            KeyCheck::UnknownKid => {
                if !self.may_refetch(Instant::now()) {
                    return false;
                }
                match get(&self.client, &self.jwks_uri, MAX_JWKS_BYTES)
                    .await
                    .and_then(|body| Jwks::parse(&body))
                {
                    Ok(fresh) => {
                        let fresh = Arc::new(fresh);
                        *lock(&self.keys) = fresh.clone();
                        fresh.check(decoded) == KeyCheck::Verified
                    }
                    Err(why) => {
                        tracing::warn!(error = %why, "dev-gateway: cannot fetch Keycloak's key set again");
                        false
                    }
                }
            }
        }
    }

    /// True (and the time noted) when no refetch happened within [`REFETCH_INTERVAL`]
    /// before `now`.
    pub(crate) fn may_refetch(&self, now: Instant) -> bool {
        let mut last = lock(&self.last_refetch);
        match *last {
            Some(at) if now.saturating_duration_since(at) < REFETCH_INTERVAL => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }

    /// Sends a request for `/keycloak{rest}` to Keycloak at `{base}{rest}` and passes its
    /// status, content type and body back, as Istio routes `/keycloak` on CSM. Only the
    /// headers a token, logout or key request needs go along. A Keycloak that cannot be
    /// reached or does not answer within `timeout` gets Envoy's 503 or 504.
    pub async fn forward(
        &self,
        method: &Method,
        rest: &str,
        headers: &HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Reply {
        let Ok(method) = reqwest::Method::from_bytes(method.as_str().as_bytes()) else {
            return Reply::text(405, "");
        };
        let mut request = self
            .client
            .request(method, format!("{}{rest}", self.base))
            .body(body);
        for name in [CONTENT_TYPE, ACCEPT, AUTHORIZATION] {
            if let Some(value) = headers.get(&name).and_then(|v| v.to_str().ok()) {
                request = request.header(name.as_str(), value);
            }
        }
        let exchange = async {
            let reply = request.send().await.map_err(|e| {
                tracing::warn!(error = %super::backend::error_chain(&e), "dev-gateway: Keycloak unreachable");
                Reply::text(
                    503,
                    "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
                )
            })?;
            let status = reply.status().as_u16();
            let content_type = reply
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let location = reply
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = read_bounded(reply, MAX_FORWARDED_BYTES)
                .await
                .map_err(|why| {
                    tracing::warn!(error = %why, "dev-gateway: Keycloak's reply refused");
                    Reply::text(502, "upstream reply refused")
                })?;
            let Ok(body) = String::from_utf8(body) else {
                return Err(Reply::text(502, "upstream reply refused"));
            };
            let mut out = Reply {
                content_type,
                ..Reply::text(status, "")
            };
            out.body = body;
            if let Some(location) = location {
                out = out.with_header("location", location);
            }
            Ok(out)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(reply)) | Ok(Err(reply)) => reply,
            Err(_) => Reply::text(504, "upstream request timeout"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> url::Url {
        url::Url::parse("http://127.0.0.1:8080/keycloak").unwrap()
    }

    const ISSUER: &str = "http://127.0.0.1:8080/keycloak/realms/shasta";

    #[test]
    fn the_configuration_must_name_the_issuer_and_keep_keys_at_home() {
        let doc = |issuer: &str, jwks: &str| {
            serde_json::json!({"issuer": issuer, "jwks_uri": jwks}).to_string()
        };
        let good = doc(ISSUER, &format!("{ISSUER}/protocol/openid-connect/certs"));
        assert_eq!(
            jwks_uri_of(good.as_bytes(), ISSUER, &base()).unwrap(),
            format!("{ISSUER}/protocol/openid-connect/certs")
        );
        // Reached through the gateway's own URL, Keycloak names that instead.
        let other = doc("http://127.0.0.1:9443/keycloak/realms/shasta", ISSUER);
        let err = jwks_uri_of(other.as_bytes(), ISSUER, &base()).unwrap_err();
        assert!(
            err.contains("names the issuer \"http://127.0.0.1:9443/"),
            "{err}"
        );
        let elsewhere = doc(ISSUER, "http://attacker.example/certs");
        assert_eq!(
            jwks_uri_of(elsewhere.as_bytes(), ISSUER, &base()).unwrap_err(),
            "its OpenID configuration's jwks_uri is not on Keycloak's own origin"
        );
        let other_port = doc(ISSUER, "http://127.0.0.1:8081/keycloak/certs");
        assert!(jwks_uri_of(other_port.as_bytes(), ISSUER, &base()).is_err());
        assert!(jwks_uri_of(b"<html>", ISSUER, &base()).is_err());
    }

    /// A one-route HTTP server on loopback that answers every request with `body` (as
    /// JSON) and counts them; a stand-in for Keycloak's key set endpoint.
    async fn serve_jwks(body: Vec<u8>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/keycloak", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            }
        });
        (base, count)
    }

    #[tokio::test]
    async fn a_rotated_key_is_fetched_once_and_a_made_up_kid_costs_one_fetch() {
        use super::super::jwks::test_keys::{jwks_of, key_a, key_b};
        use super::super::jwt::decode;
        use std::sync::atomic::Ordering;
        let (a, b) = (key_a(), key_b());
        // Keycloak now publishes A and B; the gateway still holds A only.
        let (base, fetches) = serve_jwks(jwks_of(&[&a, &b])).await;
        let held = Jwks::parse(&jwks_of(&[&a])).unwrap();
        let upstream = KeycloakUpstream::with_keys(&base, held);
        let token = |k: &super::super::jwks::test_keys::TestKey, kid: &str| {
            let header = serde_json::json!({"alg": "RS256", "kid": kid});
            decode(
                &k.sign_with_header(&header, &serde_json::json!({})),
                "RS256",
            )
            .unwrap()
        };
        assert!(upstream.check_signature(&token(&b, b.kid)).await);
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // B is held now: no fetch. A made-up kid within the interval: no fetch either.
        assert!(upstream.check_signature(&token(&b, b.kid)).await);
        assert!(!upstream.check_signature(&token(&b, "made-up")).await);
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_oversize_key_set_is_not_read_past_its_limit() {
        let (base, _) = serve_jwks(vec![b' '; MAX_JWKS_BYTES + 1]).await;
        let client = client().unwrap();
        let err = get(&client, &format!("{base}/certs"), MAX_JWKS_BYTES)
            .await
            .unwrap_err();
        assert_eq!(err, "its reply is larger than 64 KiB");
    }

    #[test]
    fn unknown_kids_refetch_at_most_once_per_interval() {
        let a = super::super::jwks::test_keys::key_a();
        let jwks = Jwks::parse(&super::super::jwks::test_keys::jwks_of(&[&a])).unwrap();
        let upstream = KeycloakUpstream::with_keys("http://127.0.0.1:1/keycloak", jwks);
        let t0 = Instant::now();
        assert!(upstream.may_refetch(t0));
        assert!(!upstream.may_refetch(t0 + Duration::from_secs(1)));
        assert!(!upstream.may_refetch(t0 + REFETCH_INTERVAL - Duration::from_millis(1)));
        assert!(upstream.may_refetch(t0 + REFETCH_INTERVAL));
    }
}
