//! The HTTP/1.1 (optionally TLS) server: accepts connections, routes requests to the
//! Keycloak and STS handlers, and applies injected faults.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, PRAGMA};
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::accept::Acceptor;

use super::config::{Endpoint, Fault, HEALTHZ_PATH, STS_TOKEN_PATH};
use super::keycloak::{self, Outcome};
use super::reply::{DropConnection, Reply, ReplyBody};
use super::state::State;
use super::sts;

/// Largest token-request body read; Keycloak forms are tiny.
const MAX_BODY: usize = 64 * 1024;
/// How long a client may take over the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections until the task is aborted. Unlike the container endpoint's, the
/// connections are not capped (tests are the only clients) but owned by a `JoinSet`, so
/// that dropping the task stops every connection too and a stopped gateway is gone.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<TlsAcceptor>,
) {
    let mut acceptor = Acceptor::new(listener, "dev-gateway");
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            stream = acceptor.accept() => {
                state.count(|s| s.connections += 1);
                let state = state.clone();
                let tls = tls.clone();
                connections.spawn(async move {
                    let _ = stream.set_nodelay(true);
                    match tls {
                        None => serve(stream, state).await,
                        Some(acceptor) => {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(tls_stream)) => {
                                    state.count(|s| s.tls_handshakes += 1);
                                    serve(tls_stream, state).await
                                }
                                Ok(Err(e)) => tracing::debug!(error = %e, "dev-gateway: TLS handshake failed"),
                                Err(_) => tracing::debug!("dev-gateway: TLS handshake timed out"),
                            }
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve<S>(stream: S, state: Arc<State>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let state = state.clone();
        async move { handle(state, req).await }
    });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "dev-gateway: connection ended");
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<ReplyBody>, DropConnection> {
    let method = req.method().clone();
    // Only the path is logged: never query strings, headers or bodies (tokens, passwords).
    let path = req.uri().path().to_owned();
    if let Some(bearer) = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        state.remember_secret(bearer);
    }
    match route(&state, req).await {
        Ok(reply) => {
            remember_issued(&state, &reply.body);
            tracing::debug!(%method, %path, status = reply.status, "dev-gateway request");
            let mut response = reply.into_response();
            // hyper adds the real time unless a `Date` is set.
            let offset = chrono::Duration::seconds(state.config.date_offset_seconds);
            let date = (chrono::Utc::now() + offset).format("%a, %d %b %Y %H:%M:%S GMT");
            if let Ok(v) = HeaderValue::from_str(&date.to_string()) {
                response.headers_mut().insert(hyper::header::DATE, v);
            }
            if path.starts_with("/keycloak/") {
                let headers = response.headers_mut();
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
            }
            Ok(response)
        }
        Err(DropConnection) => {
            tracing::debug!(%method, %path, "dev-gateway request: connection dropped (fault)");
            Err(DropConnection)
        }
    }
}

/// Remembers the tokens and keys a reply body hands out.
fn remember_issued(state: &State, body: &str) {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(body) else {
        return;
    };
    let fields = [
        &json["access_token"],
        &json["refresh_token"],
        &json["Credentials"]["SecretAccessKey"],
        &json["Credentials"]["SessionToken"],
    ];
    for value in fields.into_iter().filter_map(|v| v.as_str()) {
        state.remember_secret(value);
    }
}

/// The realm named by a token-endpoint path, if `path` is one.
fn token_path_realm(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/keycloak/realms/")?;
    let (realm, tail) = rest.split_once('/')?;
    (tail == "protocol/openid-connect/token" && !realm.is_empty()).then_some(realm)
}

fn method_not_allowed(allow: &'static str) -> Reply {
    Reply::json(
        405,
        serde_json::json!({
            "detail": "The method is not allowed for the requested URL.",
            "status": 405,
            "title": "Method Not Allowed",
            "type": "about:blank",
        })
        .to_string(),
    )
    .with_header("allow", allow.to_owned())
}

/// Takes the endpoint's next fault and deals with the kinds that are the same for both
/// endpoints. `Ok(None)`: carry on normally; `Ok(Some(f))`: `f` replaces the reply.
async fn pre_fault(state: &State, endpoint: Endpoint) -> Result<Option<Fault>, DropConnection> {
    match state.take_fault(endpoint) {
        None => Ok(None),
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            Ok(None)
        }
        Some(Fault::CloseConnection) => Err(DropConnection),
        Some(other) => Ok(Some(other)),
    }
}

/// The reply for faults that are the same at every endpoint; `success` is the status a
/// normal reply of that endpoint has.
fn status_fault(fault: &Fault, success: u16) -> Option<Reply> {
    match fault {
        Fault::Status {
            status,
            content_type,
            body,
        } => Some(Reply {
            status: *status,
            content_type: content_type.clone(),
            body: body.clone(),
            headers: Vec::new(),
            endless: false,
            cut: false,
        }),
        Fault::Redirect(location) => {
            Some(Reply::text(307, "").with_header("location", location.clone()))
        }
        Fault::EndlessBody => Some(Reply {
            endless: true,
            ..Reply::json(success, String::new())
        }),
        Fault::CutMidReply => Some(Reply {
            cut: true,
            ..Reply::json(
                success,
                format!("{{\"padding\": \"{}\"}}", " ".repeat(1000)),
            )
        }),
        _ => None,
    }
}

async fn route(state: &State, req: Request<Incoming>) -> Result<Reply, DropConnection> {
    let path = req.uri().path();
    if path == STS_TOKEN_PATH {
        if req.method() != Method::PUT {
            return Ok(method_not_allowed("PUT"));
        }
        state.count(|s| s.sts_requests += 1);
        return Ok(match pre_fault(state, Endpoint::Sts).await? {
            None => sts::put_token(state, req.headers()).await,
            Some(fault) => match status_fault(&fault, 201) {
                Some(reply) => reply,
                None => sts::fault_reply(state, &fault).await,
            },
        });
    }
    if path == HEALTHZ_PATH {
        if req.method() != Method::GET {
            return Ok(method_not_allowed("GET"));
        }
        state.count(|s| s.healthz_requests += 1);
        // OPA has no rule that lets the health check through without an admin JWT.
        if let Err(refusal) = sts::authorize(state, req.headers()).await {
            state.count(|s| s.sts_rejected += 1);
            return Ok(refusal);
        }
        return Ok(Reply::json(200, r#"{"Status": "ok"}"#.to_owned()));
    }
    if let Some(realm) = token_path_realm(path) {
        if req.method() != Method::POST {
            return Ok(method_not_allowed("POST"));
        }
        let realm = realm.to_owned();
        return token_request(state, &realm, req).await;
    }
    if state.keycloak.is_some() && path.starts_with("/keycloak/") {
        let (parts, incoming) = req.into_parts();
        return Ok(match Limited::new(incoming, MAX_BODY).collect().await {
            Ok(collected) => forward(state, &parts, collected.to_bytes()).await,
            Err(_) => Reply::text(413, "Payload Too Large"),
        });
    }
    Ok(Reply::text(404, ""))
}

/// True for a path Istio routes to Keycloak but that must not reach it: one with a `.`
/// or `..` segment (plain or percent-encoded, which URL parsing would resolve to leave
/// `/keycloak`), or, as OPA refuses, an OpenID Connect request with `request_uri=`.
fn refused_keycloak_path(path: &str, query: &str) -> bool {
    let dot_segment = path.split('/').any(|segment| {
        let plain = segment.to_ascii_lowercase().replace("%2e", ".");
        plain == "." || plain == ".."
    });
    dot_segment || (path.contains("/protocol/openid-connect/") && query.contains("request_uri="))
}

/// Forwards a `/keycloak/...` request (its body read, at most [`MAX_BODY`]) to the real
/// Keycloak (`--keycloak`).
async fn forward(state: &State, parts: &hyper::http::request::Parts, body: Bytes) -> Reply {
    let Some(upstream) = &state.keycloak else {
        return Reply::text(404, "");
    };
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    if refused_keycloak_path(path, query) {
        return sts::opa_denied();
    }
    for (name, value) in url::form_urlencoded::parse(&body) {
        if matches!(&*name, "password" | "client_secret" | "refresh_token") {
            state.remember_secret(&value);
        }
    }
    let rest = path.strip_prefix("/keycloak").unwrap_or(path);
    let rest = match query {
        "" => rest.to_owned(),
        q => format!("{rest}?{q}"),
    };
    upstream
        .forward(
            &parts.method,
            &rest,
            &parts.headers,
            body,
            state.config.upstream_timeout,
        )
        .await
}

async fn token_request(
    state: &State,
    realm: &str,
    req: Request<Incoming>,
) -> Result<Reply, DropConnection> {
    state.count(|s| s.token_requests += 1);
    let mut expired_access = false;
    match pre_fault(state, Endpoint::Token).await? {
        None => {}
        Some(Fault::ExpiredCredentials) => expired_access = true,
        Some(Fault::Malformed) => return Ok(Reply::json(200, sts::MALFORMED_BODY.to_owned())),
        Some(Fault::Incomplete) => {
            let body = serde_json::json!({
                "expires_in": state.config.token_lifetime.as_secs(),
                "refresh_expires_in": state.config.refresh_lifetime.as_secs(),
                "token_type": "Bearer",
                "not-before-policy": 0,
                "scope": "profile email",
            });
            return Ok(Reply::json(200, body.to_string()));
        }
        Some(other) => return Ok(status_fault(&other, 200).unwrap_or_else(|| Reply::text(500, ""))),
    }
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            state.count(|s| s.token_failures += 1);
            return Ok(Reply::json(
                400,
                serde_json::json!({"error": "invalid_request", "error_description": "Request body unreadable"})
                    .to_string(),
            ));
        }
    };
    for (name, value) in url::form_urlencoded::parse(&bytes) {
        if matches!(&*name, "password" | "client_secret" | "refresh_token") {
            state.remember_secret(&value);
        }
    }
    let (reply, outcome) = if state.keycloak.is_some() {
        let grant = url::form_urlencoded::parse(&bytes)
            .find(|(name, _)| name == "grant_type")
            .map(|(_, value)| value.into_owned());
        let reply = forward(state, &parts, bytes).await;
        tracing::info!(
            realm,
            grant = grant.as_deref().unwrap_or("-"),
            status = reply.status,
            "dev-gateway: token request forwarded to Keycloak"
        );
        let outcome = match (reply.status, grant.as_deref()) {
            (200, Some("password")) => Outcome::Password,
            (200, Some("refresh_token")) => Outcome::Refresh,
            (200, Some("client_credentials")) => Outcome::ClientCredentials,
            _ => Outcome::Failed,
        };
        (reply, outcome)
    } else {
        keycloak::token(state, realm, &parts.headers, &bytes, expired_access)
    };
    state.count(|s| match outcome {
        Outcome::Password => s.password_grants += 1,
        Outcome::Refresh => s.refresh_grants += 1,
        Outcome::ClientCredentials => s.client_credentials_grants += 1,
        Outcome::Failed => s.token_failures += 1,
    });
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::refused_keycloak_path;

    #[test]
    fn paths_that_would_leave_keycloak_or_fetch_a_request_uri_are_refused() {
        for path in [
            "/keycloak/../apis/sts/token",
            "/keycloak/realms/%2e%2e/x",
            "/keycloak/realms/%2E./x",
            "/keycloak/./realms",
            "/keycloak/realms/shasta/..",
        ] {
            assert!(refused_keycloak_path(path, ""), "{path}");
        }
        let auth = "/keycloak/realms/shasta/protocol/openid-connect/auth";
        assert!(refused_keycloak_path(auth, "request_uri=http://x"));
        assert!(!refused_keycloak_path(auth, "client_id=shasta"));
        assert!(!refused_keycloak_path(
            "/keycloak/realms/shasta/.well-known/openid-configuration",
            ""
        ));
        assert!(!refused_keycloak_path("/keycloak/realms/a..b/x", ""));
    }
}
