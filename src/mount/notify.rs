//! systemd's readiness protocol (`sd_notify`) for `mount --foreground` in a `Type=notify`
//! unit: systemd starts the units that need the credentials only once `READY=1` says the
//! mount is up, and `STOPPING=1` tells it the stop it asked for has begun.
//!
//! The protocol is one datagram per message on the `AF_UNIX` socket that `NOTIFY_SOCKET`
//! names (a path, or `@name` in the abstract namespace). Nothing here can stop the mount:
//! a socket that is missing, not a socket, or never read only earns a warning.
//!
//! Not the `sd-notify` crate (0.5): it reads `NOTIFY_SOCKET` at every send, so the variable
//! would have to stay in the environment that fusermount3 and a `--password-command`
//! inherit; its send has no timeout, so a socket nobody reads would hold the mount (and
//! its unmount) for good; and it connects `@name` as a file path, not the abstract name.

use crate::untrusted::clean;
use std::ffi::{OsStr, OsString};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The variable systemd sets for a `Type=notify` service.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// How long one message may wait for room in a receiver's queue: a socket nobody reads
/// must not hold up the mount or its unmount.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest `STATUS=` text sent (systemd shows it in `systemctl status`).
const MAX_STATUS: usize = 200;

/// The service manager's notification socket, when there is one.
#[derive(Debug)]
pub struct SdNotify {
    target: OsString,
    timeout: Duration,
    stopping_sent: AtomicBool,
}

impl SdNotify {
    /// Takes `NOTIFY_SOCKET` out of the environment, so that no program we start
    /// (fusermount3, a `--password-command`) inherits it and speaks for us. Call it before
    /// any thread exists: changing the environment races with threads reading it.
    pub fn take_from_env() -> Option<SdNotify> {
        let value = std::env::var_os(NOTIFY_SOCKET)?;
        std::env::remove_var(NOTIFY_SOCKET);
        Some(Self::new(&value))
    }

    /// A notifier for the socket `value` names; nothing is checked until the first send.
    pub fn new(value: &OsStr) -> SdNotify {
        SdNotify {
            target: value.to_owned(),
            timeout: SEND_TIMEOUT,
            stopping_sent: AtomicBool::new(false),
        }
    }

    /// Says the mount serves (and holds credentials unless `--lazy`).
    pub fn ready(&self, status: &str) {
        self.send("READY=1", status);
    }

    /// Says the unmount has begun; only the first call sends.
    pub fn stopping(&self, status: &str) {
        if !self.stopping_sent.swap(true, Ordering::SeqCst) {
            self.send("STOPPING=1", status);
        }
    }

    /// Updates the text `systemctl status` shows.
    pub fn status(&self, status: &str) {
        self.send("", status);
    }

    fn send(&self, state: &str, status: &str) {
        // One line per field: a newline in the text (a mountpoint may hold one) must not
        // become a field of its own.
        let status = clean(status, MAX_STATUS);
        let message = if state.is_empty() {
            format!("STATUS={status}\n")
        } else {
            format!("{state}\nSTATUS={status}\n")
        };
        if let Err(e) = self.try_send(message.as_bytes()) {
            tracing::warn!(
                "cannot notify systemd through NOTIFY_SOCKET {} ({e}); the mount carries on, \
                 but a Type=notify unit will not see it ready: check the unit file",
                clean(&self.target.to_string_lossy(), MAX_STATUS)
            );
        }
    }

    fn try_send(&self, message: &[u8]) -> std::io::Result<usize> {
        let addr = address(&self.target)?;
        let socket = UnixDatagram::unbound()?;
        socket.set_write_timeout(Some(self.timeout))?;
        socket.send_to_addr(message, &addr)
    }
}

/// `@name` is in the abstract namespace; anything else must be an absolute path.
fn address(target: &OsStr) -> std::io::Result<SocketAddr> {
    let bytes = target.as_bytes();
    match bytes.first() {
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
        Some(b'/') => SocketAddr::from_pathname(target),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "neither an absolute path nor @name",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn receiver(dir: &std::path::Path) -> (UnixDatagram, OsString) {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (socket, path.into_os_string())
    }

    fn recv(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn ready_and_stopping_once_with_a_status_line() {
        let dir = tempfile::tempdir().unwrap();
        let (socket, path) = receiver(dir.path());
        let notify = SdNotify::new(&path);
        notify.ready("mounted at /m\nSTOPPING=1");
        // The newline in the text stays inside STATUS=.
        assert_eq!(recv(&socket), "READY=1\nSTATUS=mounted at /m STOPPING=1\n");
        notify.stopping("unmounting");
        notify.stopping("unmounted");
        notify.status("bye");
        assert_eq!(recv(&socket), "STOPPING=1\nSTATUS=unmounting\n");
        assert_eq!(
            recv(&socket),
            "STATUS=bye\n",
            "the second STOPPING was not sent"
        );
    }

    #[test]
    fn the_abstract_namespace_is_spelled_with_an_at() {
        let name = format!("s3credsfs-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        SdNotify::new(OsStr::new(&format!("@{name}"))).ready("up");
        assert_eq!(recv(&socket), "READY=1\nSTATUS=up\n");
    }

    #[test]
    fn hostile_sockets_fail_without_stopping_anything() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("regular");
        std::fs::write(&file, "").unwrap();
        for target in [
            dir.path().join("missing.sock").into_os_string(),
            file.into_os_string(),
            "relative.sock".into(),
            "".into(),
            "@".into(),
        ] {
            let notify = SdNotify::new(&target);
            assert!(notify.try_send(b"READY=1\n").is_err(), "{target:?}");
            // The public calls only warn.
            notify.ready("x");
            notify.stopping("x");
        }
    }

    #[test]
    fn a_socket_nobody_reads_cannot_block_the_daemon() {
        let dir = tempfile::tempdir().unwrap();
        // Bound but never read: its queue fills after a few messages.
        let (_socket, path) = receiver(dir.path());
        let mut notify = SdNotify::new(&path);
        notify.timeout = Duration::from_millis(50);
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for _ in 0..40 {
                notify.status("still here");
            }
            let _ = done.send(());
        });
        let started = Instant::now();
        assert!(
            finished.recv_timeout(Duration::from_secs(30)).is_ok(),
            "sending blocked on a full socket"
        );
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}
