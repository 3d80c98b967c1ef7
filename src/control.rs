//! The mount's control channel: `s3credsfs refresh` asks a running daemon to refresh a
//! profile now (after a password or role change) and gets the outcome.
//!
//! A Linux abstract Unix socket: nothing on disk to plant or clean up. Its name carries 128
//! random bits, chosen at start-up and published only in the mount's `status` file, which
//! no one but the mounting user can read; so no other user can take the name first and
//! leave `refresh` without its daemon (a name made of the pid could be taken for every
//! likely pid in advance). Once bound, the name shows in `/proc/net/unix`, which matters
//! not: taking it is then too late, and connecting gets nothing. Only the mounting user may
//! use it: the daemon checks each peer's uid (`SO_PEERCRED`) and hangs up on anyone else;
//! the client checks that the peer is the pid the mount's `status` names, running as the
//! same user, so no other process can answer in the daemon's place.

use crate::accept::{Throttle, WARN_INTERVAL};
use crate::cache::{CredentialCache, Fetch};
use crate::untrusted::clean;
use serde::{Deserialize, Serialize};
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// The longest request line: `refresh ` and a profile name.
const MAX_REQUEST: u64 = 256;
/// The longest reply line (an error sentence and a few fields).
const MAX_REPLY: u64 = 16 * 1024;
/// How long a reply waits for the kernel to drop the refreshed profile's names.
const FORGET_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What every control socket's name starts with.
pub const NAME_PREFIX: &str = "s3credsfs/control/";

/// A new socket name: [`NAME_PREFIX`] and 128 random bits in hex. Fails only when the
/// system's random generator does, as a start-up error (a guessable name would do).
pub fn new_name() -> io::Result<String> {
    let mut bits = [0u8; 16];
    crate::random::fill(&mut bits)?;
    let hex: String = bits.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{NAME_PREFIX}{hex}"))
}

/// Whether `name` (read back from a mount's status file) is one [`new_name`] makes.
pub fn is_name(name: &str) -> bool {
    name.strip_prefix(NAME_PREFIX).is_some_and(|hex| {
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// What the daemon answers to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The profile refreshed (or asked for).
    pub profile: String,
    /// The new credentials' expiry (RFC 3339), when the refresh succeeded.
    pub expiration: Option<String>,
    /// Why the refresh failed, as one sentence.
    pub error: Option<String>,
}

/// Binds the daemon's socket at `name` (from [`new_name`]); needs a tokio runtime context.
pub fn bind(name: &str) -> io::Result<UnixListener> {
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr)?;
    listener.set_nonblocking(true)?;
    UnixListener::from_std(listener)
}

/// The profiles a daemon serves, the default one first.
pub type Served<F> = Vec<(String, Arc<CredentialCache<F>>)>;

/// Called with a profile's index after it was refreshed on request, so the mount can make
/// the kernel drop names that still point at the old credentials. It may block (the
/// kernel takes the directory's lock, which a lookup waiting for a refresh holds), so it
/// runs on the blocking pool, never on a runtime worker that would finish that lookup.
pub type Forget = Arc<dyn Fn(usize) + Send + Sync>;

/// Answers requests until the runtime stops.
pub async fn serve<F: Fetch>(listener: UnixListener, profiles: Arc<Served<F>>, forget: Forget) {
    let me = nix::unistd::geteuid().as_raw();
    // At most one line a minute: another user must not be able to flood the owner's log
    // (and rotate its history away).
    let refusals = Throttle::new(WARN_INTERVAL);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "control socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == me => {}
            Ok(cred) => {
                if let Some(held_back) = refusals.hit(std::time::Instant::now()) {
                    tracing::warn!(
                        uid = cred.uid(),
                        refused = held_back + 1,
                        "control socket: refused connections from another user"
                    );
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "control socket: cannot identify a peer; refused");
                continue;
            }
        }
        tokio::spawn(answer(stream, profiles.clone(), forget.clone()));
    }
}

async fn answer<F: Fetch>(stream: UnixStream, profiles: Arc<Served<F>>, forget: Forget) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
    let read = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await;
    if !matches!(read, Ok(Ok(n)) if n > 0 && line.ends_with('\n')) {
        return;
    }
    let reply = handle(line.trim_end_matches('\n'), &profiles, &forget).await;
    let mut text = serde_json::to_string(&reply).unwrap_or_default();
    text.push('\n');
    let _ = write.write_all(text.as_bytes()).await;
}

/// Carries out one request line: `refresh` (the default profile) or `refresh NAME`.
async fn handle<F: Fetch>(request: &str, profiles: &Served<F>, forget: &Forget) -> Reply {
    let failed = |profile: &str, error: String| Reply {
        profile: profile.to_string(),
        expiration: None,
        error: Some(error),
    };
    let Some(rest) = request.strip_prefix("refresh") else {
        return failed(
            "",
            "unknown request; this daemon understands `refresh [PROFILE]`".into(),
        );
    };
    let name = rest.trim();
    let found = match name {
        "" => (!profiles.is_empty()).then_some(0),
        name => profiles.iter().position(|(n, _)| n == name),
    };
    let Some(index) = found else {
        let known: Vec<&str> = profiles.iter().map(|(n, _)| n.as_str()).collect();
        return failed(
            &clean(name, 64),
            format!(
                "unknown profile {:?}; this mount serves: {}",
                clean(name, 64),
                known.join(", ")
            ),
        );
    };
    let (profile, cache) = &profiles[index];
    tracing::info!(profile = %profile, "refresh requested through the control socket");
    match cache.refresh_now().await {
        Ok(snapshot) => {
            // On a blocking-pool thread: the kernel may hold it until a lookup that the
            // runtime's workers must finish is answered. The reply waits for it (so the
            // next open sees the new credentials), but not for ever.
            let forget = forget.clone();
            let dropped = tokio::task::spawn_blocking(move || forget(index));
            let _ = tokio::time::timeout(FORGET_TIMEOUT, dropped).await;
            Reply {
                profile: profile.clone(),
                expiration: Some(snapshot.creds.expiration_rfc3339()),
                error: None,
            }
        }
        Err(e) => failed(profile, e.to_string()),
    }
}

/// Asks daemon `pid`, listening at `name`, to refresh `profile` (the default one when
/// `None`), waiting up to `timeout` for the answer.
pub async fn request_refresh(
    pid: u32,
    name: &str,
    profile: Option<&str>,
    timeout: Duration,
) -> Result<Reply, AskProblem> {
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    let stream = std::os::unix::net::UnixStream::connect_addr(&addr)
        .map_err(|source| AskProblem::Unreachable { pid, source })?;
    stream.set_nonblocking(true)?;
    let stream = UnixStream::from_std(stream)?;
    let cred = stream.peer_cred()?;
    let me = nix::unistd::geteuid().as_raw();
    if cred.pid() != Some(pid as i32) || cred.uid() != me {
        return Err(AskProblem::Impostor {
            pid,
            holder: cred.pid(),
            uid: cred.uid(),
        });
    }
    let (read, mut write) = stream.into_split();
    let request = format!("refresh {}\n", profile.unwrap_or_default());
    write.write_all(request.as_bytes()).await?;
    let mut line = String::new();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REPLY));
    match tokio::time::timeout(timeout, reader.read_line(&mut line)).await {
        Ok(Ok(n)) if n > 0 => {
            serde_json::from_str(line.trim_end()).map_err(|_| AskProblem::NotJson)
        }
        Ok(_) => Err(AskProblem::Closed),
        Err(_) => Err(AskProblem::Silent(timeout)),
    }
}

/// Why `request_refresh` got no answer; each sentence says what `s3credsfs refresh` prints.
#[derive(Debug, thiserror::Error)]
pub enum AskProblem {
    /// Nothing listens on the name: the daemon is gone, or older than `refresh`.
    #[error("cannot reach the daemon (pid {pid}) on its control socket ({source}); it may predate `refresh`: remount")]
    Unreachable {
        /// The daemon's pid, from its status.
        pid: u32,
        /// Why connecting failed.
        source: io::Error,
    },
    /// Another process answers on the name; it is not asked (the request would be wasted
    /// and its answer could be a lie).
    #[error("the control socket of pid {pid} is held by another process (pid {holder:?}, uid {uid}); not asking it")]
    Impostor {
        /// The daemon's pid, from its status.
        pid: u32,
        /// The pid that holds the socket, if the kernel knows it.
        holder: Option<i32>,
        /// The uid that holds the socket.
        uid: u32,
    },
    /// The socket failed while talking.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The answer came but does not parse.
    #[error("the daemon's answer is not the expected JSON")]
    NotJson,
    /// The daemon hung up first.
    #[error("the daemon closed the control socket without answering")]
    Closed,
    /// The daemon kept the connection open but said nothing in time.
    #[error("the daemon did not answer within {}", humantime::format_duration(*.0))]
    Silent(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::creds::Credentials;
    use crate::secret::Secret;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(&'static str, AtomicUsize);

    impl Fetch for Counting {
        async fn fetch(&self) -> crate::error::Result<Credentials> {
            unreachable!("a forced refresh logs in anew")
        }
        async fn fetch_with_new_login(&self) -> crate::error::Result<Credentials> {
            let n = self.1.fetch_add(1, Ordering::SeqCst);
            Ok(Credentials {
                access_key_id: format!("AK-{}-{n}", self.0),
                secret_access_key: Secret::new("s"),
                session_token: Secret::new("t"),
                expiration: chrono::Utc::now() + chrono::Duration::hours(1),
                endpoint_url: "http://rgw".into(),
            })
        }
    }

    /// The profiles forgotten so far, once `n` are (the forgetting runs on threads).
    fn forgotten_once(seen: &std::sync::Mutex<Vec<usize>>, n: usize) -> Vec<usize> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut now = seen.lock().unwrap().clone();
            if now.len() >= n || std::time::Instant::now() > deadline {
                now.sort();
                return now;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn served() -> Served<Counting> {
        ["prod", "tds"]
            .into_iter()
            .map(|name| {
                let cache = CredentialCache::new(
                    Counting(name, AtomicUsize::new(0)),
                    Duration::from_secs(60),
                    Duration::from_secs(5),
                    "https://gw",
                );
                (name.to_string(), Arc::new(cache))
            })
            .collect()
    }

    #[tokio::test]
    async fn requests_name_a_profile_or_mean_the_default() {
        let profiles = served();
        let forgotten = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = forgotten.clone();
        let forget: Forget = Arc::new(move |i| seen.lock().unwrap().push(i));
        let handle = |line: &'static str| {
            let (profiles, forget) = (&profiles, &forget);
            async move { handle(line, profiles, forget).await }
        };
        let reply = handle("refresh").await;
        assert_eq!(reply.profile, "prod");
        assert!(reply.expiration.is_some() && reply.error.is_none());
        let reply = handle("refresh tds").await;
        assert_eq!(reply.profile, "tds");
        assert_eq!(profiles[1].1.fetcher().1.load(Ordering::SeqCst), 1);
        assert_eq!(profiles[0].1.fetcher().1.load(Ordering::SeqCst), 1);
        let reply = handle("refresh no\u{1b}pe").await;
        assert_eq!(
            reply.error.as_deref(),
            Some("unknown profile \"no pe\"; this mount serves: prod, tds")
        );
        let reply = handle("unmount").await;
        assert!(reply.error.unwrap().starts_with("unknown request"));
        // The names of each refreshed profile were dropped, and no other's.
        assert_eq!(forgotten_once(&forgotten, 2), [0, 1]);
    }

    /// A process that took a daemon's socket name is not asked: the peer must be the
    /// daemon's pid.
    #[tokio::test]
    async fn a_squatter_on_the_name_is_not_asked() {
        // Above any pid_max, so no real daemon has it.
        let pid = 4_194_999;
        let name = new_name().unwrap();
        let listener = bind(&name).unwrap();
        let squatter = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (_, mut write) = stream.into_split();
            let _ = write
                .write_all(
                    b"{\"profile\":\"x\",\"expiration\":\"2099-01-01T00:00:00Z\",\"error\":null}\n",
                )
                .await;
        });
        let err = request_refresh(pid, &name, None, Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("the control socket of pid 4194999 is held by another process"),
            "{err}"
        );
        squatter.abort();
    }

    /// Names are 128 random bits, new each time, and only such names are accepted.
    #[test]
    fn names_are_random_and_checked() {
        let (a, b) = (new_name().unwrap(), new_name().unwrap());
        assert_ne!(a, b);
        assert!(is_name(&a) && is_name(&b), "{a} {b}");
        assert_eq!(a.len(), NAME_PREFIX.len() + 32);
        for bad in [
            "s3credsfs/control/42",
            "",
            "x/0123456789abcdef0123456789abcdef",
            "s3credsfs/control/0123456789ABCDEF0123456789abcdef",
            "s3credsfs/control/0123456789abcdef0123456789abcdef0",
        ] {
            assert!(!is_name(bad), "{bad}");
        }
    }

    /// The whole channel in this process: a server on a fresh name, the client asking it.
    /// Another user's connections are hung up on unanswered, and logged at most once a
    /// minute (`accept::Throttle`): three in a row make one line.
    #[tokio::test]
    async fn another_user_is_hung_up_on_and_logged_once_a_minute() {
        use std::io::{Read, Write};
        if !crate::test_users::can_switch() {
            return; // Needs a second user: the root tier runs it.
        }
        let log = crate::test_log::Captured::default();
        let _guard = tracing::subscriber::set_default(log.subscriber(tracing::Level::INFO));
        let name = new_name().unwrap();
        let profiles = Arc::new(served());
        let server = tokio::spawn(serve(bind(&name).unwrap(), profiles, Arc::new(|_| {})));
        for _ in 0..3 {
            let name = name.clone();
            let got = tokio::task::spawn_blocking(move || {
                crate::test_users::as_user(crate::test_users::NOBODY, || {
                    let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name)?;
                    let mut stream = std::os::unix::net::UnixStream::connect_addr(&addr)?;
                    let _ = stream.write_all(b"refresh\n");
                    let mut got = Vec::new();
                    match stream.read_to_end(&mut got) {
                        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(got),
                        other => other.map(|_| got),
                    }
                })
            })
            .await
            .unwrap()
            .unwrap();
            assert_eq!(got, b"", "hung up on, unanswered");
        }
        server.abort();
        let _ = server.await;
        let text = log.text();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("refused connections from another user"))
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(lines[0].contains("uid=65534 refused=1"), "{text}");
    }

    #[tokio::test]
    async fn a_client_gets_the_daemon_s_answer_over_the_socket() {
        let pid = std::process::id();
        let name = new_name().unwrap();
        let profiles = Arc::new(served());
        let forgotten = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = forgotten.clone();
        let server = tokio::spawn(serve(
            bind(&name).unwrap(),
            profiles.clone(),
            Arc::new(move |i| seen.lock().unwrap().push(i)),
        ));
        let timeout = Duration::from_secs(10);
        let reply = request_refresh(pid, &name, Some("tds"), timeout)
            .await
            .unwrap();
        assert_eq!(reply.profile, "tds");
        assert!(
            reply.expiration.is_some() && reply.error.is_none(),
            "{reply:?}"
        );
        let reply = request_refresh(pid, &name, None, timeout).await.unwrap();
        assert_eq!(reply.profile, "prod");
        let reply = request_refresh(pid, &name, Some("nope"), timeout)
            .await
            .unwrap();
        assert!(reply.error.unwrap().starts_with("unknown profile \"nope\""));
        assert_eq!(forgotten_once(&forgotten, 2), [0, 1]);
        server.abort();
        let _ = server.await;

        // A long answer (a long error sentence) is read whole, up to the limit.
        let listener = bind(&name).unwrap();
        let long = Reply {
            profile: "p".into(),
            expiration: None,
            error: Some("e".repeat(8000)),
        };
        let text = serde_json::to_string(&long).unwrap() + "\n";
        let answerer = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (_, mut write) = stream.into_split();
            write.write_all(text.as_bytes()).await.unwrap();
        });
        assert_eq!(
            request_refresh(pid, &name, None, timeout).await.unwrap(),
            long
        );
        answerer.await.unwrap();

        // A daemon that hangs up without answering.
        let listener = bind(&name).unwrap();
        // It reads the request first, so the client sees the end of the stream (not a
        // reset for unread data).
        let silent = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; MAX_REQUEST as usize];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut request).await;
        });
        let err = request_refresh(pid, &name, None, timeout)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "the daemon closed the control socket without answering"
        );
        silent.await.unwrap();
    }
}
