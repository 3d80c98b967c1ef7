use super::*;

#[test]
fn tokens_are_random() {
    let (a, b) = (random_token().unwrap(), random_token().unwrap());
    assert_eq!(a.expose().len(), 64);
    assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
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
fn eviction_takes_the_oldest_connection_that_has_not_presented_the_token() {
    use tokio::sync::oneshot::error::TryRecvError;
    let registry = Registry::default();
    let mut live: Vec<_> = (0..4).map(|_| registry.admit(-1)).collect();
    registry.authenticate(live[0].0);
    assert_eq!(registry.evict_oldest_unauthenticated(), Some(live[1].0));
    // The evicted connection is told to stop; the others are not.
    assert_eq!(live[1].1.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(live[2].1.try_recv(), Err(TryRecvError::Empty));
    registry.leave(live[2].0);
    assert_eq!(registry.evict_oldest_unauthenticated(), Some(live[3].0));
    // Only the connection that presented the token is left, and it stays.
    assert_eq!(registry.evict_oldest_unauthenticated(), None);
    assert_eq!(live[0].1.try_recv(), Err(TryRecvError::Empty));
}

/// Under a flood each newcomer evicts one connection; the owner's SDK has sent its
/// request as soon as it connected, so while an idle connection remains, one with
/// bytes waiting is not the one evicted, however old.
#[test]
fn eviction_passes_over_a_connection_whose_request_is_waiting() {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    let pairs: Vec<_> = (0..3).map(|_| UnixStream::pair().unwrap()).collect();
    let registry = Registry::default();
    let ids: Vec<u64> = pairs
        .iter()
        .map(|(served, _)| registry.admit(served.as_raw_fd()).0)
        .collect();
    // The oldest connection's client has sent its request; the others say nothing.
    (&pairs[0].1).write_all(b"GET /").unwrap();
    assert_eq!(registry.evict_oldest_unauthenticated(), Some(ids[1]));
    assert_eq!(registry.evict_oldest_unauthenticated(), Some(ids[2]));
    // With no idle connection left, the oldest unauthenticated one goes after all.
    assert_eq!(registry.evict_oldest_unauthenticated(), Some(ids[0]));
    assert_eq!(registry.evict_oldest_unauthenticated(), None);
}
/// Credentials that stay valid for the whole test.
struct Valid;

impl Fetch for Valid {
    async fn fetch(&self) -> crate::error::Result<crate::creds::Credentials> {
        Ok(crate::creds::Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: Secret::new("SECRET"),
            session_token: Secret::new("TOKEN"),
            expiration: chrono::DateTime::from_timestamp(4_000_000_000, 0).unwrap(),
            endpoint_url: "http://rgw:8080".into(),
        })
    }
}

/// Sends one request on `stream` and returns the status line of the answer.
async fn ask(stream: &mut TcpStream, authorization: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("GET {PATH} HTTP/1.1\r\nHost: x\r\n{authorization}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer.lines().next().unwrap_or_default().to_string()
}

/// Waits (at most 10 s) until the number of registered connections passes `done`.
async fn held(registry: &Registry, what: &str, done: impl Fn(usize) -> bool) {
    let start = Instant::now();
    loop {
        let n = registry.table().1.len();
        if done(n) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: {n} held"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An endpoint with `cap` slots, whose token is `right`, accepting on `listener`.
fn serve_on(
    listener: tokio::net::TcpListener,
    cap: usize,
) -> (Arc<Shared<Valid>>, tokio::task::JoinHandle<()>) {
    let cache = CredentialCache::new(
        Valid,
        Duration::from_secs(1),
        Duration::from_secs(5),
        "test",
    );
    let shared = Arc::new(Shared {
        cache: Arc::new(cache),
        token: Secret::new("right"),
        wrong_token: Throttle::new(WARN_INTERVAL),
        registry: Registry::default(),
    });
    let server = tokio::spawn(accept_loop(
        Acceptor::new(listener, "test endpoint"),
        Arc::new(Semaphore::new(cap)),
        shared.clone(),
    ));
    (shared, server)
}

/// Every connection, however it ended, leaves the registry: otherwise it grows with
/// each one a local user opens, and eviction picks dead entries (whose slots are
/// already free) instead of the live connections holding the slots.
#[tokio::test]
async fn closed_connections_leave_the_registry() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cap = 4;
    let (shared, server) = serve_on(listener, cap);
    // More connections than slots, in rounds: silent, refused, and kept alive after
    // presenting the token; the client closes each.
    for round in 0..3 {
        let mut open = Vec::new();
        for kind in 0..cap {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            match kind {
                0 => {}
                1 => assert!(ask(&mut stream, "Authorization: wrong\r\n")
                    .await
                    .starts_with("HTTP/1.1 403")),
                _ => assert!(ask(&mut stream, "Authorization: right\r\n")
                    .await
                    .starts_with("HTTP/1.1 200")),
            }
            open.push(stream);
        }
        held(&shared.registry, "every connection admitted", |n| {
            n >= cap - 1
        })
        .await;
        drop(open);
        held(
            &shared.registry,
            &format!("round {round}: closed ones gone"),
            |n| n == 0,
        )
        .await;
    }
    server.abort();
}

/// A connection that has sent nothing stays in the kernel for `DEFER_ACCEPT`: it holds
/// no slot and no descriptor of the endpoint, and a client that asks is served past it.
#[tokio::test]
async fn connections_that_have_sent_nothing_wait_in_the_kernel() {
    let listener = listen().unwrap();
    let addr = listener.local_addr().unwrap();
    let (shared, server) = serve_on(listener, 4);
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // Well within DEFER_ACCEPT (a loaded machine only makes accept later).
    tokio::time::sleep(DEFER_ACCEPT / 4).await;
    assert_eq!(
        shared.registry.table().1.len(),
        0,
        "a silent one was accepted"
    );
    let mut asking = TcpStream::connect(addr).await.unwrap();
    let answer = ask(&mut asking, "Authorization: right\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Then the silent ones reach accept after all, and take the other slots.
    held(&shared.registry, "the silent ones accepted", |n| n == 4).await;
    server.abort();
}

/// A neighbour's flood: one thread per socket, each connecting, sending the start of a
/// request it never finishes (so the kernel hands the connection over at once and it
/// takes a slot), and connecting again as soon as the endpoint closes it.
struct Flood {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Flood {
    fn start(addr: std::net::SocketAddr, sockets: usize) -> Flood {
        use std::io::{Read, Write};
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..sockets)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
                            continue;
                        };
                        let _ = stream.write_all(b"GET /credentials HTTP/1.1\r\n");
                        // Short reads, so the thread notices `stop` while it is held.
                        let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
                        while !stop.load(Ordering::Relaxed) {
                            match stream.read(&mut buf) {
                                Ok(0) => break,
                                Ok(_) => {}
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                                Err(_) => break,
                            }
                        }
                    }
                })
            })
            .collect();
        Flood { stop, threads }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Connects, waits `pause` (a client descheduled on a loaded machine), then asks with the
/// right token; the status line of the answer, or what went wrong.
fn slow_owner_asks(addr: std::net::SocketAddr, pause: Duration) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    std::thread::sleep(pause);
    let request = format!("GET {PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: right\r\n\r\n");
    if let Err(e) = stream.write_all(request.as_bytes()) {
        return format!("write: {e}");
    }
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 256];
    while !answer.contains(&b'\n') {
        match stream.read(&mut buf) {
            Ok(0) => return format!("closed after {:?}", String::from_utf8_lossy(&answer)),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => return format!("read: {e}"),
        }
    }
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap()
        .to_string()
}

/// Under a flood every newcomer evicts the oldest connection that has not presented the
/// token. A client that connected but has not sent its request yet used to be such a
/// connection, closed after `cap - 1` of the neighbour's reconnects (milliseconds); now
/// its connection reaches the endpoint only with its request, which eviction passes over.
#[tokio::test]
async fn a_flood_cannot_evict_a_client_that_is_slow_to_send_its_request() {
    let listener = listen().unwrap();
    let addr = listener.local_addr().unwrap();
    let cap = 16;
    let (shared, server) = serve_on(listener, cap);
    let flood = Flood::start(addr, cap);
    for attempt in 0..5 {
        held(&shared.registry, "the flood to hold every slot", |n| {
            n == cap
        })
        .await;
        let answer =
            tokio::task::spawn_blocking(move || slow_owner_asks(addr, Duration::from_millis(200)))
                .await
                .unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "attempt {attempt}: {answer}"
        );
    }
    drop(flood);
    server.abort();
}

/// At the cap, a newcomer takes the slot of the oldest connection that has not presented
/// the token, at once: that connection is closed well before its first-request timeout
/// would have closed it, and the younger one stays.
#[tokio::test]
async fn a_newcomer_at_the_cap_evicts_the_oldest_silent_connection_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = listen().unwrap();
    let addr = listener.local_addr().unwrap();
    let (shared, server) = serve_on(listener, 2);
    let started = Instant::now();
    let mut oldest = TcpStream::connect(addr).await.unwrap();
    oldest.write_all(b"GET /credentials").await.unwrap();
    held(&shared.registry, "the oldest admitted", |n| n == 1).await;
    let mut younger = TcpStream::connect(addr).await.unwrap();
    younger.write_all(b"GET /credentials").await.unwrap();
    held(&shared.registry, "both admitted", |n| n == 2).await;
    let mut newcomer = TcpStream::connect(addr).await.unwrap();
    let answer = ask(&mut newcomer, "Authorization: right\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut buf = [0u8; 64];
    let end = oldest.read(&mut buf).await;
    assert!(matches!(end, Ok(0) | Err(_)), "the oldest is open: {end:?}");
    assert!(
        started.elapsed() < FIRST_REQUEST_TIMEOUT,
        "closed after {:?}: by its timeout, not evicted",
        started.elapsed()
    );
    assert!(
        matches!(younger.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the younger one is still open"
    );
    server.abort();
}
