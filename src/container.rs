//! The container credentials endpoint (`mount --container-endpoint`): what every AWS SDK
//! polls through `AWS_CONTAINER_CREDENTIALS_FULL_URI`, for processes that cannot run a
//! `credential_process`. Same cache, same freshness rules as the files.

use crate::cache::{CredentialCache, Fetch};
use crate::secret::Secret;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The path credentials are served on.
pub const PATH: &str = "/credentials";

/// Where the endpoint listens and the token callers must present.
#[derive(Debug, Clone)]
pub struct ContainerEndpoint {
    /// `http://127.0.0.1:PORT/credentials`.
    pub url: String,
    /// Random per mount; SDKs send it as the `Authorization` header.
    pub token: Secret,
}

/// A fresh random token: 32 bytes, hex.
fn random_token() -> Secret {
    let mut bytes = [0u8; 32];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Equality whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn message(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    reply(status, serde_json::json!({ "message": text }).to_string())
}

/// Answers one request: the right token gets current credentials, nothing else does.
async fn answer<F: Fetch>(
    request: Request<Incoming>,
    cache: Arc<CredentialCache<F>>,
    token: Secret,
) -> Response<Full<Bytes>> {
    if request.uri().path() != PATH {
        return message(StatusCode::NOT_FOUND, "not found");
    }
    if request.method() != Method::GET {
        return message(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    let Some(presented) = request.headers().get(AUTHORIZATION) else {
        return message(StatusCode::UNAUTHORIZED, "missing Authorization token");
    };
    if !constant_time_eq(presented.as_bytes(), token.expose().as_bytes()) {
        tracing::warn!("container endpoint: request with a wrong Authorization token refused");
        return message(StatusCode::FORBIDDEN, "wrong Authorization token");
    }
    match cache.current().await {
        Ok(snapshot) => {
            let creds = &snapshot.creds;
            let body = serde_json::json!({
                "AccessKeyId": creds.access_key_id,
                "SecretAccessKey": creds.secret_access_key.expose(),
                "Token": creds.session_token.expose(),
                "Expiration": creds.expiration_rfc3339(),
            });
            reply(StatusCode::OK, body.to_string())
        }
        Err(error) => message(StatusCode::SERVICE_UNAVAILABLE, &error.to_string()),
    }
}

/// Starts serving on a random loopback port; runs until the runtime ends.
pub async fn start<F: Fetch>(cache: Arc<CredentialCache<F>>) -> std::io::Result<ContainerEndpoint> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = ContainerEndpoint {
        url: format!("http://{}{PATH}", listener.local_addr()?),
        token: random_token(),
    };
    let token = endpoint.token.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let cache = cache.clone();
            let token = token.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let (cache, token) = (cache.clone(), token.clone());
                    async move { Ok::<_, std::convert::Infallible>(answer(request, cache, token).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_in_full() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a, b);
        assert!(constant_time_eq(
            a.expose().as_bytes(),
            a.clone().expose().as_bytes()
        ));
        assert!(!constant_time_eq(
            a.expose().as_bytes(),
            b.expose().as_bytes()
        ));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
