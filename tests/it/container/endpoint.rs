//! Talking to a mount's container endpoint from tests: its address and token, raw HTTP
//! on fresh or kept-alive connections, the daemon's descriptors and CPU time, and a
//! neighbour that floods it with idle connections.

use crate::common::mount::Mounted;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `export NAME='value'` lines of a file the mount renders.
pub fn exports(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_string(), value.trim_matches('\'').to_string()))
        .collect()
}

/// The value of `name` among `pairs`.
pub fn value(pairs: &[(String, String)], name: &str) -> String {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap()
}

/// The endpoint's address, from the status file (which needs no credentials).
pub fn endpoint_addr(m: &Mounted) -> SocketAddr {
    let url = m.status()["container_endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    url.trim_start_matches("http://")
        .trim_end_matches("/credentials")
        .parse()
        .unwrap()
}

/// The token the mount's `container-env` file hands to SDKs.
pub fn owner_token(m: &Mounted) -> String {
    value(
        &exports(&m.read("container-env").unwrap()),
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    )
}

/// Sets the daemon's soft descriptor limit below its lowest free descriptor number, so
/// every accept() fails with EMFILE; returns the hard limit, to restore it with.
pub fn starve_accept(pid: u32) -> u64 {
    let (_, hard) = s3credsfs::limits::nofile().unwrap();
    let held = fds(pid);
    let lowest_free = (0..).find(|n| !held.contains(n)).unwrap();
    set_nofile(pid, lowest_free, hard);
    hard
}

/// Sets another process's soft and hard open-file limits (we are root).
pub fn set_nofile(pid: u32, soft: u64, hard: u64) {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: prlimit reads the struct we own and writes nothing (old limit null).
    let rc = unsafe {
        libc::prlimit(
            pid as i32,
            libc::RLIMIT_NOFILE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// The daemon makes itself undumpable, so its `/proc/PID/fd` is root's even to its user.
fn require_root_for_fds() {
    crate::common::require_root("it reads the daemon's /proc/PID/fd, which only root may");
}

/// The descriptor numbers a process holds.
pub fn fds(pid: u32) -> Vec<u64> {
    require_root_for_fds();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// How many connections to the loopback `port` process `pid` holds open (accepted, not
/// merely queued): its socket descriptors matched with the kernel's TCP table.
pub fn held_connections(pid: u32, port: u16) -> usize {
    require_root_for_fds();
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        // Established (01) connections on the port whose inode the process holds.
        .filter(|f| f[1] == local && f[3] == "01" && inodes.iter().any(|i| i == f[9]))
        .count()
}

/// How many connections wait in the accept queue of the loopback listener on `port`.
pub fn accept_queue(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // For a listener (state 0A) rx_queue is the accept queue's length.
        (fields[1] == local && fields[3] == "0A")
            .then(|| u64::from_str_radix(fields[4].split(':').nth(1).unwrap(), 16).unwrap())
    })
}

/// CPU time (user + system, in clock ticks) a process has used.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// One `GET /credentials` on a fresh connection: (status, body).
pub fn get(addr: SocketAddr, token: Option<&str>) -> std::io::Result<(u16, String)> {
    get_within(addr, token, Duration::from_secs(10))
}

/// Like [`get`], failing when connecting or any read takes longer than `timeout`.
pub fn get_within(
    addr: SocketAddr,
    token: Option<&str>,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    let auth = token
        .map(|t| format!("Authorization: {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET /credentials HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP answer: {text:?}")))?;
    Ok((status, text))
}

/// Waits for the server to close `stream`; returns how long that took.
pub fn time_to_close(mut stream: &TcpStream) -> Duration {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return start.elapsed(),
            Err(e) => panic!("the server did not close the connection within 60 s ({e})"),
        }
    }
}

pub fn access_key(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["AccessKeyId"].as_str().unwrap().to_string()
}

/// Reads one HTTP response (headers and a `Content-Length` body) from a kept-alive
/// connection; `None` when the server closed it instead.
pub fn read_response(stream: &mut TcpStream) -> Option<String> {
    let mut text = Vec::new();
    let mut byte = [0u8; 1];
    while !text.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => text.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8(text).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap();
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some(head + &String::from_utf8(body).unwrap())
}

/// A neighbour holding `sockets` connections to the endpoint that never finish a request
/// (each sends its first line, so the kernel hands it over at once instead of holding it
/// for `DEFER_ACCEPT`), each reopened as soon as the server closes it, as fast as it can,
/// until dropped or `limit` has passed.
pub struct Flood {
    stop: Arc<AtomicBool>,
    connects: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Flood {
    /// Starts one thread per socket.
    pub fn start(addr: SocketAddr, sockets: usize, limit: Duration) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let connects = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let threads = (0..sockets)
            .map(|_| {
                let (stop, connects) = (stop.clone(), connects.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while !stop.load(Ordering::Relaxed) && start.elapsed() < limit {
                        let Ok(mut stream) = TcpStream::connect_timeout(&addr, limit) else {
                            continue;
                        };
                        connects.fetch_add(1, Ordering::Relaxed);
                        let _ = stream.write_all(b"GET /credentials HTTP/1.1\r\n");
                        // Short reads, so the thread notices `stop` while the socket idles.
                        let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
                        while !stop.load(Ordering::Relaxed) {
                            match stream.read(&mut buf) {
                                Ok(0) => break,
                                Ok(_) => continue,
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock
                                            | std::io::ErrorKind::TimedOut
                                    ) =>
                                {
                                    continue
                                }
                                Err(_) => break,
                            }
                        }
                    }
                })
            })
            .collect();
        Flood {
            stop,
            connects,
            threads,
        }
    }

    /// How many connections the neighbour has opened so far.
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
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
