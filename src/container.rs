//! The container credentials endpoint (`mount --container-endpoint`): what every AWS SDK
//! polls through `AWS_CONTAINER_CREDENTIALS_FULL_URI`, for processes that cannot run a
//! `credential_process`. Same cache, same freshness rules as the files.

use crate::cache::{CredentialCache, Fetch};
use crate::secret::Secret;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
async fn answer<F: Fetch>(request: Request<Incoming>, shared: &Shared<F>) -> Response<Full<Bytes>> {
    if request.uri().path() != PATH {
        return message(StatusCode::NOT_FOUND, "not found");
    }
    if request.method() != Method::GET {
        return message(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    let Some(presented) = request.headers().get(AUTHORIZATION) else {
        return message(StatusCode::UNAUTHORIZED, "missing Authorization token");
    };
    if !constant_time_eq(presented.as_bytes(), shared.token.expose().as_bytes()) {
        if let Some(held_back) = shared.wrong_token.hit(Instant::now()) {
            tracing::warn!(
                held_back,
                "container endpoint: refused a request with a wrong Authorization token \
                 (a local process has a stale or guessed token; `held_back` more were \
                 refused since the last such line, which comes at most once a minute)"
            );
        }
        return message(StatusCode::FORBIDDEN, "wrong Authorization token");
    }
    match shared.cache.current().await {
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

/// Most connections served at once. A client that finds them all busy is accepted and
/// closed at once: holding it would keep its descriptor, and leaving it in the accept
/// queue would stall every client behind it; a closed connection is an error an SDK
/// retries. The real bound is `connection_cap`, lower under a small descriptor limit.
pub const MAX_CONNECTIONS: usize = 64;

/// Descriptors left to everything but the endpoint's connections. A mounted daemon
/// holds about 15 (measured: stdio and the log, the FUSE device, the runtime's epoll,
/// event and signal descriptors, the listener, a pooled connection to the gateway); a
/// refresh adds a connection or two and DNS files. 64 leaves room to spare.
const RESERVED_DESCRIPTORS: u64 = 64;

/// How long a client may take to send a request's headers; also how long a kept-alive
/// connection may sit idle between requests (hyper runs this timer while it waits for
/// the next request's headers).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest one connection is served, whatever it does (a client asking again and
/// again on one kept-alive connection would otherwise hold its slot for ever); then it
/// is shut down gracefully.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(15);

/// How long a request in progress at the deadline may still take: it may be waiting
/// for a refresh, which the cache bounds by the gateway timeouts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The first pause after accept() fails (typically EMFILE), doubled up to the maximum,
/// so a full descriptor table does not turn the accept loop into a busy spin.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest pause between failed accepts.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// At most one line per kind of refusal per this interval, so a neighbour cannot fill
/// the log.
pub const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// How many connections the endpoint serves at once under a soft descriptor limit of
/// `soft`: at most half of what the reserve leaves, at most `MAX_CONNECTIONS`, at least
/// one. The endpoint then holds at most cap + 2 descriptors (the listener, the served
/// connections, and one accepted only to be closed), which leaves at least the reserve
/// (64, about three times what the rest of the daemon uses) for the files' refreshes. With
/// the usual soft limit of 1024, or the raised hard limit, the cap is 64 and about
/// 1024 - 66 - 15 = 943 descriptors stay free.
pub fn connection_cap(soft: u64) -> usize {
    let share = soft.saturating_sub(RESERVED_DESCRIPTORS) / 2;
    share.clamp(1, MAX_CONNECTIONS as u64) as usize
}

/// Lets one log line through per interval and counts the events held back in between,
/// so a flood of bad requests costs the log one line a minute.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    /// When the last line was let through, and how many events were held back since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    /// A throttle letting one line through per `interval`.
    pub fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// Counts one event at `now`. `Some(n)`: log a line now, saying `n` more events were
    /// held back since the last one; `None`: stay quiet.
    pub fn hit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.0 {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                state.1 += 1;
                None
            }
            _ => {
                state.0 = Some(now);
                Some(std::mem::take(&mut state.1))
            }
        }
    }
}

/// What every connection of one endpoint shares.
struct Shared<F: Fetch> {
    cache: Arc<CredentialCache<F>>,
    token: Secret,
    wrong_token: Throttle,
}

/// Starts serving on a random loopback port; runs until the runtime ends.
pub async fn start<F: Fetch>(cache: Arc<CredentialCache<F>>) -> std::io::Result<ContainerEndpoint> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = ContainerEndpoint {
        url: format!("http://{}{PATH}", listener.local_addr()?),
        token: random_token(),
    };
    let soft = crate::limits::nofile().map_or(1024, |(soft, _)| soft);
    let slots = Arc::new(Semaphore::new(connection_cap(soft)));
    let shared = Arc::new(Shared {
        cache,
        token: endpoint.token.clone(),
        wrong_token: Throttle::new(WARN_INTERVAL),
    });
    tokio::spawn(accept_loop(listener, slots, shared));
    Ok(endpoint)
}

async fn accept_loop<F: Fetch>(
    listener: TcpListener,
    slots: Arc<Semaphore>,
    shared: Arc<Shared<F>>,
) {
    let (failures, full) = (Throttle::new(WARN_INTERVAL), Throttle::new(WARN_INTERVAL));
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                stream
            }
            Err(error) => {
                if let Some(held_back) = failures.hit(Instant::now()) {
                    tracing::warn!(
                        error = %error,
                        held_back,
                        "container endpoint: accept failed (out of descriptors?); pausing \
                         before trying again; raise `ulimit -n` if this persists"
                    );
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if let Some(held_back) = full.hit(Instant::now()) {
                tracing::warn!(
                    held_back,
                    "container endpoint: every connection slot is busy; closing new \
                     connections at once (clients retry); some local process may be \
                     flooding the endpoint"
                );
            }
            drop(stream);
            continue;
        };
        tokio::spawn(serve(stream, slot, shared.clone()));
    }
}

/// Serves one connection within the timeouts; the slot is freed when it ends.
async fn serve<F: Fetch>(stream: TcpStream, _slot: OwnedSemaphorePermit, shared: Arc<Shared<F>>) {
    let service = hyper::service::service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(answer(request, &shared).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = tokio::time::sleep(CONNECTION_DEADLINE) => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
        }
    }
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

    #[test]
    fn the_cap_leaves_the_reserve_free() {
        assert_eq!(connection_cap(1024), MAX_CONNECTIONS);
        assert_eq!(connection_cap(1 << 20), MAX_CONNECTIONS);
        assert_eq!(connection_cap(128), 32);
        assert_eq!(connection_cap(0), 1);
        for soft in [68, 100, 128, 192, 256, 1024] {
            let cap = connection_cap(soft) as u64;
            assert!(cap + 2 + RESERVED_DESCRIPTORS <= soft, "{soft}: {cap}");
        }
    }

    #[test]
    fn the_throttle_lets_one_line_a_minute_through_and_counts_the_rest() {
        let throttle = Throttle::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(throttle.hit(t0), Some(0));
        for s in 1..60 {
            assert_eq!(throttle.hit(t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(throttle.hit(t0 + Duration::from_secs(60)), Some(59));
        assert_eq!(throttle.hit(t0 + Duration::from_secs(61)), None);
        assert_eq!(throttle.hit(t0 + Duration::from_secs(200)), Some(1));
    }
}
