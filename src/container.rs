//! The container credentials endpoint (`mount --container-endpoint`): what every AWS SDK
//! polls through `AWS_CONTAINER_CREDENTIALS_FULL_URI`, for processes that cannot run a
//! `credential_process`. Same cache, same freshness rules as the files.

use crate::accept::WARN_INTERVAL;
use crate::accept::{Acceptor, Throttle};
// The tests wait this long at most for the endpoint to accept again.
pub use crate::accept::ACCEPT_BACKOFF_MAX;
use crate::cache::{CredentialCache, Fetch};
use crate::secret::Secret;
use crate::sync::lock;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

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

/// A fresh random token: 32 bytes, hex; an error if the system cannot supply them.
fn random_token() -> std::io::Result<Secret> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    crate::random::fill(&mut *bytes)?;
    Ok(Secret::new(
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    ))
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A refusal, which also closes the connection: a client that was refused has no use for
/// its slot, and keeping it open would let it sit there for the keep-alive timeout.
fn message(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = reply(status, serde_json::json!({ "message": text }).to_string());
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Answers one request on connection `id`: the right token gets current credentials
/// (and makes the connection one that is never evicted), nothing else does.
async fn answer<F: Fetch>(
    request: Request<Incoming>,
    id: u64,
    shared: &Shared<F>,
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
    if !shared.token.ct_eq(presented.as_bytes()) {
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
    shared.registry.authenticate(id);
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

/// Most connections served at once. A newcomer that finds them all busy takes the slot
/// of the oldest connection that has not presented the token (a neighbour flooding the
/// endpoint cannot keep the owner out); only when every slot holds a connection that
/// presented the token is the newcomer closed at once (holding it would keep its
/// descriptor, and leaving it in the accept queue would stall every client behind it; a
/// closed connection is an error an SDK retries). The real bound is `connection_cap`,
/// lower under a small descriptor limit.
pub const MAX_CONNECTIONS: usize = 64;

/// How many connections the kernel queues until they are accepted (it caps this at
/// `net.core.somaxconn`). A neighbour that keeps the queue full makes the kernel drop the
/// owner's connection attempts until their retransmission a second or more later; the
/// usual 128 takes 200 sockets to fill, this takes over a thousand.
const LISTEN_BACKLOG: u32 = 1024;

/// How long the kernel keeps a connection that has sent nothing before handing it to
/// accept (`TCP_DEFER_ACCEPT`, whole seconds). An SDK sends its request as soon as it has
/// connected, so its connection reaches the endpoint with the request waiting, which
/// eviction passes over; a connection that says nothing costs the endpoint no slot and
/// no descriptor for this long. Without it a client that is slow to send after
/// connecting (a loaded machine) held a slot while still silent, and a neighbour's stream
/// of new connections, each of which evicts the oldest silent one, closed it within
/// milliseconds. A silent connection reaches accept after this, and is closed
/// `FIRST_REQUEST_TIMEOUT` later.
pub const DEFER_ACCEPT: Duration = Duration::from_secs(1);

/// Descriptors left to everything but the endpoint's connections. A mounted daemon
/// holds about 15 (measured: stdio and the log, the FUSE device, the runtime's epoll,
/// event and signal descriptors, the listener, a pooled connection to the gateway); a
/// refresh adds a connection or two and DNS files. 64 leaves room to spare.
const RESERVED_DESCRIPTORS: u64 = 64;

/// How long a new connection may take to send its first request's headers, from accept
/// (for one that said nothing, [`DEFER_ACCEPT`] after it connected). An SDK sends its
/// request as soon as it has connected; a connection that says nothing is most likely
/// holding a slot for a neighbour.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a client may take to send a later request's headers; also how long a
/// kept-alive connection may sit idle between requests (hyper runs this timer while it
/// waits for the next request's headers).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest the accept loop waits for an evicted connection to let go of its slot
/// (it normally takes microseconds); then the newcomer is closed instead.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// The longest one connection is served, whatever it does (a client asking again and
/// again on one kept-alive connection would otherwise hold its slot for ever); then it
/// is shut down gracefully.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(15);

/// How long a request in progress at the deadline may still take: it may be waiting
/// for a refresh, which the cache bounds by the gateway timeouts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How many connections the endpoint serves at once under a soft descriptor limit of
/// `soft`: at most half of what the reserve leaves, at most `MAX_CONNECTIONS`, at least
/// one. The endpoint then holds at most cap + 2 descriptors (the listener, the served
/// connections, and one newcomer accepted but not yet served: it waits until the
/// connection it evicts has been closed, or is itself closed), which leaves at least the
/// reserve (64, about three times what the rest of the daemon uses) for the files'
/// refreshes. With the usual soft limit of 1024, or the raised hard limit, the cap is 64
/// and about 1024 - 66 - 15 = 943 descriptors stay free.
pub fn connection_cap(soft: u64) -> usize {
    let share = soft.saturating_sub(RESERVED_DESCRIPTORS) / 2;
    share.clamp(1, MAX_CONNECTIONS as u64) as usize
}

/// The connections being served, in the order they were accepted, so that under a flood
/// the slot of the oldest one that has not presented the token can be given to a
/// newcomer.
#[derive(Debug, Default)]
struct Registry {
    live: Mutex<(u64, BTreeMap<u64, Live>)>,
}

/// One served connection.
#[derive(Debug)]
struct Live {
    /// Whether it has presented the right token; such a connection is never evicted.
    authenticated: bool,
    /// Its socket, to ask the kernel whether a request is waiting unread on it. The
    /// entry leaves the registry before the socket is closed (see `serve`), so the
    /// number never names another file while it is here.
    socket: RawFd,
    /// Dropping this tells the serving task to drop the connection.
    _stop: oneshot::Sender<()>,
}

impl Registry {
    fn table(&self) -> std::sync::MutexGuard<'_, (u64, BTreeMap<u64, Live>)> {
        lock(&self.live)
    }

    /// Records a newly accepted connection on `socket`: its id (ids grow with accept
    /// order), and a receiver that completes when the connection is evicted.
    fn admit(&self, socket: RawFd) -> (u64, oneshot::Receiver<()>) {
        let (stop, stopped) = oneshot::channel();
        let mut table = self.table();
        let id = table.0;
        table.0 += 1;
        let live = Live {
            authenticated: false,
            socket,
            _stop: stop,
        };
        table.1.insert(id, live);
        (id, stopped)
    }

    /// Connection `id` presented the right token.
    fn authenticate(&self, id: u64) {
        if let Some(live) = self.table().1.get_mut(&id) {
            live.authenticated = true;
        }
    }

    /// Connection `id` has ended.
    fn leave(&self, id: u64) {
        self.table().1.remove(&id);
    }

    /// Tells the oldest connection that has not presented the token to stop, and returns
    /// its id; `None` when every connection has presented it. A connection with a
    /// request waiting unread in the kernel is passed over while an idle one remains: an
    /// SDK sends its request the moment it connects, but its task may not have read it
    /// yet when a neighbour's stream of new connections (each of which evicts one) would
    /// otherwise reach it.
    fn evict_oldest_unauthenticated(&self) -> Option<u64> {
        let mut table = self.table();
        let unauthenticated = || table.1.iter().filter(|(_, live)| !live.authenticated);
        let id = unauthenticated()
            .find(|(_, live)| unread_bytes(live.socket) == 0)
            .or_else(|| unauthenticated().next())
            .map(|(id, _)| *id)?;
        table.1.remove(&id);
        Some(id)
    }
}

/// How many bytes the kernel holds unread on `socket` (0 if it cannot say).
fn unread_bytes(socket: RawFd) -> libc::c_int {
    let mut unread: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int, into `unread`, which lives for the call; the
    // descriptor is the registry's live connection's (an invalid one gives an error).
    let rc = unsafe { libc::ioctl(socket, libc::FIONREAD, &mut unread) };
    if rc == 0 {
        unread
    } else {
        0
    }
}

/// What every connection of one endpoint shares.
struct Shared<F: Fetch> {
    cache: Arc<CredentialCache<F>>,
    token: Secret,
    wrong_token: Throttle,
    registry: Registry,
}

/// Listens on a random loopback port, with connections that have sent nothing held back
/// in the kernel for [`DEFER_ACCEPT`].
fn listen() -> std::io::Result<tokio::net::TcpListener> {
    let socket = TcpSocket::new_v4()?;
    let seconds = DEFER_ACCEPT.as_secs() as libc::c_int;
    // SAFETY: TCP_DEFER_ACCEPT reads one int, from `seconds`, which lives for the call;
    // the descriptor is the socket's own.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&seconds as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    socket.bind((std::net::Ipv4Addr::LOCALHOST, 0).into())?;
    socket.listen(LISTEN_BACKLOG)
}

/// Starts serving on a random loopback port; runs until the runtime ends.
pub async fn start<F: Fetch>(cache: Arc<CredentialCache<F>>) -> std::io::Result<ContainerEndpoint> {
    let listener = listen()?;
    let endpoint = ContainerEndpoint {
        url: format!("http://{}{PATH}", listener.local_addr()?),
        token: random_token()?,
    };
    let soft = crate::limits::nofile().map_or(1024, |(soft, _)| soft);
    let slots = Arc::new(Semaphore::new(connection_cap(soft)));
    let shared = Arc::new(Shared {
        cache,
        token: endpoint.token.clone(),
        wrong_token: Throttle::new(WARN_INTERVAL),
        registry: Registry::default(),
    });
    let acceptor = Acceptor::new(listener, "container endpoint");
    tokio::spawn(accept_loop(acceptor, slots, shared));
    Ok(endpoint)
}

/// Gives each accepted connection a slot (evicting if need be) and its own task; the
/// tasks are detached, since the endpoint lives as long as the runtime.
async fn accept_loop<F: Fetch>(
    mut acceptor: Acceptor,
    slots: Arc<Semaphore>,
    shared: Arc<Shared<F>>,
) {
    let (full, evicting) = (Throttle::new(WARN_INTERVAL), Throttle::new(WARN_INTERVAL));
    loop {
        let stream = acceptor.accept().await;
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) if shared.registry.evict_oldest_unauthenticated().is_some() => {
                if let Some(held_back) = evicting.hit(Instant::now()) {
                    tracing::warn!(
                        held_back,
                        "container endpoint: every connection slot is busy; closing the \
                         oldest connection that has not presented the token to serve a new \
                         one; some local process may be flooding the endpoint"
                    );
                }
                // The evicted connection's task frees its slot once it has closed the
                // connection, so the endpoint never holds more descriptors than slots.
                tokio::time::timeout(EVICTION_WAIT, slots.clone().acquire_owned())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            Err(_) => None,
        };
        let Some(slot) = slot else {
            if let Some(held_back) = full.hit(Instant::now()) {
                tracing::warn!(
                    held_back,
                    "container endpoint: every connection slot holds a client that presented \
                     the token; closing new connections at once (clients retry)"
                );
            }
            drop(stream);
            continue;
        };
        let (id, stopped) = shared.registry.admit(stream.as_raw_fd());
        tokio::spawn(serve(stream, id, stopped, slot, shared.clone()));
    }
}

/// Serves connection `id` within the timeouts until it ends or is evicted (`stopped`);
/// then the slot is freed.
async fn serve<F: Fetch>(
    stream: TcpStream,
    id: u64,
    stopped: oneshot::Receiver<()>,
    slot: OwnedSemaphorePermit,
    shared: Arc<Shared<F>>,
) {
    /// Takes connection `id` out of the registry; declared after the connection, so it
    /// runs before the socket is closed (the registry never holds a closed descriptor,
    /// whose number the next accept could reuse), whether the task ends or is dropped.
    struct Leave<F: Fetch> {
        shared: Arc<Shared<F>>,
        id: u64,
    }
    impl<F: Fetch> Drop for Leave<F> {
        fn drop(&mut self) {
            self.shared.registry.leave(self.id);
        }
    }
    // Declared first, so freed last, after the connection has been closed.
    let _slot = slot;
    let registry = shared.clone();
    let asked = Arc::new(AtomicBool::new(false));
    let service = {
        let asked = asked.clone();
        hyper::service::service_fn(move |request| {
            asked.store(true, Ordering::Relaxed);
            let shared = shared.clone();
            async move { Ok::<_, std::convert::Infallible>(answer(request, id, &shared).await) }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection, stopped);
    // After `pin!`, which moves the connection into a new binding.
    let _leave = Leave {
        shared: registry,
        id,
    };
    let first_request = tokio::time::sleep(FIRST_REQUEST_TIMEOUT);
    let deadline = tokio::time::sleep(CONNECTION_DEADLINE);
    tokio::pin!(first_request, deadline);
    let mut waiting_for_first = true;
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = stopped.as_mut() => return,
            _ = first_request.as_mut(), if waiting_for_first => {
                if !asked.load(Ordering::Relaxed) {
                    return;
                }
                waiting_for_first = false;
            }
            _ = deadline.as_mut() => break,
        }
    }
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        _ = tokio::time::timeout(SHUTDOWN_GRACE, connection) => {}
        _ = stopped => {}
    }
}

#[cfg(test)]
mod tests;
