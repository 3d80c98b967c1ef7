//! The container credentials endpoint (`mount --container-endpoint`): only the mount's
//! token gets credentials, boto3 says so when its token is wrong, and a neighbour's flood
//! does not keep boto3 from its credentials (on the real RGW of the `rgw-tests` tier).
//! boto3 renewing through it over several lifetimes is `rgw::long_running_boto3_renews_on_rgw`.

use crate::common;
mod endpoint;
mod replies;

use common::mount::*;
use common::wait_for;
use endpoint::*;
use std::time::Duration;

#[test]
fn only_the_mounts_token_gets_credentials() {
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &["--container-endpoint", "--region", "zg-1"]);
    let env = exports(&m.read("container-env").unwrap());
    assert_eq!(value(&env, "AWS_REGION"), "zg-1");
    assert_eq!(value(&env, "AWS_DEFAULT_REGION"), "zg-1");
    let url = value(&env, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    let token = value(&env, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/credentials"),
        "{url}"
    );
    assert_eq!(value(&env, "AWS_ENDPOINT_URL"), "http://127.0.0.1:8080");
    assert_eq!(m.status()["container_endpoint"], url.as_str());
    assert!(
        !m.read("status").unwrap().contains(&token),
        "status shows the URL, never the token"
    );

    let get = |auth: Option<&str>| {
        gw.runtime().block_on(async {
            let mut request = reqwest::Client::new().get(&url);
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        })
    };
    let (status, body) = get(None);
    assert_eq!(status, 401);
    assert!(
        !body.contains("SecretAccessKey") && !body.contains("AccessKeyId"),
        "{body}"
    );
    let last = if token.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &token[..token.len() - 1]);
    let (status, body) = get(Some(&wrong));
    assert_eq!(status, 403);
    assert!(!body.contains("AccessKeyId"), "{body}");

    let (status, body) = get(Some(&token));
    assert_eq!(status, 200);
    let creds: serde_json::Value = serde_json::from_str(&body).unwrap();
    let served: serde_json::Value = serde_json::from_str(&m.read("json").unwrap()).unwrap();
    assert_eq!(creds["AccessKeyId"], served["AccessKeyId"]);
    assert_eq!(creds["SecretAccessKey"], served["SecretAccessKey"]);
    assert_eq!(creds["Token"], served["SessionToken"]);
    assert_eq!(creds["Expiration"], served["Expiration"]);
    assert!(!m.log().contains(&token), "the token is never logged");
}

/// Runs Python `script` with the `python3` first on `PATH` (scripts/venv's, with boto3),
/// no AWS setting of the host, and `env` added.
#[cfg(any(feature = "s3-tests", feature = "rgw-tests"))]
fn boto3(script: &str, env: &[(&str, &str)]) -> std::process::Output {
    let python = common::s3::on_path("python3").expect("python3 on PATH");
    common::s3::clean_aws_env(&mut std::process::Command::new(python))
        .arg("-c")
        .arg(script)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run python")
}

/// The refusal comes from the endpoint before any S3 call, so no S3 server is needed.
#[cfg(feature = "s3-tests")]
#[test]
fn boto3_is_refused_with_a_wrong_token() {
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &["--container-endpoint"]);
    let mut env = exports(&m.read("container-env").unwrap());
    for (name, value) in env.iter_mut() {
        if name == "AWS_CONTAINER_AUTHORIZATION_TOKEN" {
            value.replace_range(0..1, if value.starts_with('0') { "1" } else { "0" });
        }
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let script = r#"
import boto3
boto3.Session().client("s3").list_buckets()
"#;
    let out = boto3(script, &env);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Received non 200 response 403 from container metadata"),
        "{stderr}"
    );
}

// ---- A neighbour cannot break the mount through the endpoint ----

use s3credsfs::container::{
    ACCEPT_BACKOFF_MAX, CONNECTION_DEADLINE, DEFER_ACCEPT, FIRST_REQUEST_TIMEOUT,
    HEADER_READ_TIMEOUT, MAX_CONNECTIONS,
};
use std::io::Write;
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Instant;

/// Tests that change this process's descriptor limit (children inherit it) run one at a time.
static LIMITS: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    LIMITS.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_flood_of_idle_connections_does_not_starve_refreshes() {
    let _serial = serial();
    // The flood's own 1000 sockets must fit in this process.
    s3credsfs::limits::raise_nofile().unwrap();
    let gw = TestGateway::start(|c| c.lifetime = Duration::from_secs(4));
    // Lazy: no credentials yet, so the first read must open a new connection to the gateway.
    let m = Mounted::start(
        &gw,
        &["--container-endpoint", "--lazy", "--min-validity", "2s"],
    );
    let (addr, pid) = (endpoint_addr(&m), m.child.id());
    // A tight limit that 1000 held connections would exhaust.
    set_nofile(pid, 256, 256);
    // Each sends a byte of a request it never finishes, so the kernel hands it to the
    // daemon at once rather than after DEFER_ACCEPT.
    let flood: Vec<TcpStream> = (0..1000)
        .map(|i| {
            let mut stream =
                TcpStream::connect(addr).unwrap_or_else(|e| panic!("connection {i}: {e}"));
            stream.write_all(b"G").unwrap();
            stream
        })
        .collect();
    wait_for(
        "the daemon to take every queued connection or run out of descriptors",
        Duration::from_secs(20),
        || accept_queue(addr.port()) == Some(0) || fds(pid).len() >= 250,
    );
    let held = fds(pid).len();
    let first = m.read("json").unwrap_or_else(|e| {
        panic!(
            "first read during the flood failed ({e}); daemon holds {held} descriptors:\n{}",
            m.log()
        )
    });
    let first = access_key(&first);
    wait_for(
        "a refresh during the flood to change the access key",
        Duration::from_secs(20),
        || {
            let json = m
                .read("json")
                .unwrap_or_else(|e| panic!("read during the flood failed ({e}):\n{}", m.log()));
            access_key(&json) != first
        },
    );
    assert!(
        fds(pid).len() < 256 - 64,
        "the endpoint holds at most {MAX_CONNECTIONS} connections"
    );
    // The idle connections time out; then the right token gets credentials again.
    let env = exports(&m.read("container-env").unwrap());
    let token = value(&env, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
    wait_for(
        "a request with the right token to succeed",
        Duration::from_secs(30),
        || matches!(get(addr, Some(&token)), Ok((200, _))),
    );
    drop(flood);
}

#[test]
fn silent_slow_and_idle_connections_are_closed() {
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &["--container-endpoint"]);
    let addr = endpoint_addr(&m);
    let token = owner_token(&m);
    let start = Instant::now();

    // Sends nothing at all.
    let silent = TcpStream::connect(addr).unwrap();
    // Sends its headers one byte every 200 ms, forever (slowloris).
    let slow = TcpStream::connect(addr).unwrap();
    let mut writer = slow.try_clone().unwrap();
    let dribble = std::thread::spawn(move || {
        for byte in b"GET /credentials HTTP/1.1\r\nX-Padding: "
            .iter()
            .chain([b'a'; 200].iter())
        {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    // Asks once with keep-alive, then stays idle.
    let idle = TcpStream::connect(addr).unwrap();
    write!(
        &idle,
        "GET /credentials HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {token}\r\n\r\n"
    )
    .unwrap();

    // A first request gets FIRST_REQUEST_TIMEOUT (counted from accept, which for the
    // silent connection comes DEFER_ACCEPT after it connected); later ones
    // HEADER_READ_TIMEOUT. The margins leave a loaded machine room while staying below
    // what the next timeout would give (HEADER_READ_TIMEOUT for a first request,
    // CONNECTION_DEADLINE after).
    // (Checked when the tests are compiled, against the product's timeouts.)
    const FIRST_MARGIN: Duration = Duration::from_millis(2500);
    const LATER_MARGIN: Duration = Duration::from_secs(6);
    const _: () = assert!(
        FIRST_REQUEST_TIMEOUT.as_millis() + FIRST_MARGIN.as_millis()
            < HEADER_READ_TIMEOUT.as_millis()
            && HEADER_READ_TIMEOUT.as_millis() + LATER_MARGIN.as_millis()
                < CONNECTION_DEADLINE.as_millis()
    );
    // Each is closed by its own timeout: not before it, and before the next one.
    for (what, stream, timeout, margin) in [
        (
            "silent",
            &silent,
            DEFER_ACCEPT + FIRST_REQUEST_TIMEOUT,
            FIRST_MARGIN,
        ),
        ("slow", &slow, FIRST_REQUEST_TIMEOUT, FIRST_MARGIN),
        ("idle", &idle, HEADER_READ_TIMEOUT, LATER_MARGIN),
    ] {
        time_to_close(stream);
        let took = start.elapsed();
        assert!(
            took < timeout + margin,
            "the {what} connection stayed open {took:?}"
        );
        assert!(
            took >= timeout,
            "the {what} connection was closed after {took:?}, before its {timeout:?}"
        );
    }
    let _ = slow.shutdown(std::net::Shutdown::Both);
    dribble.join().unwrap();
}

#[test]
fn a_busy_kept_alive_connection_ends_at_the_deadline() {
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &["--container-endpoint"]);
    let (addr, token) = (endpoint_addr(&m), owner_token(&m));
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let start = Instant::now();
    // Well within the header-read timeout each time, so only the deadline can end it.
    loop {
        let request =
            format!("GET /credentials HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {token}\r\n\r\n");
        if stream.write_all(request.as_bytes()).is_err() {
            break;
        }
        match read_response(&mut stream) {
            Some(response) => assert!(response.starts_with("HTTP/1.1 200"), "{response}"),
            None => break,
        }
        assert!(
            start.elapsed() < CONNECTION_DEADLINE + Duration::from_secs(5),
            "a busy connection was still served after {:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        start.elapsed() >= CONNECTION_DEADLINE - Duration::from_secs(1),
        "closed after only {:?}",
        start.elapsed()
    );
}

#[test]
fn wrong_token_warnings_are_rate_limited() {
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &["--container-endpoint"]);
    let addr = endpoint_addr(&m);
    for _ in 0..200 {
        let (status, _) = get(addr, Some("not-the-token")).unwrap();
        assert_eq!(status, 403);
    }
    let lines = || {
        m.log()
            .lines()
            .filter(|l| l.contains("wrong Authorization token"))
            .count()
    };
    wait_for("the first warning", Duration::from_secs(10), || {
        lines() >= 1
    });
    // Every refusal is answered before `get` returns, so every line that will be logged is.
    assert_eq!(lines(), 1, "{}", m.log());
}

#[test]
fn accept_failures_back_off_instead_of_spinning() {
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &["--container-endpoint"]);
    let (addr, pid) = (endpoint_addr(&m), m.child.id());
    let hard = starve_accept(pid);
    let waiting = TcpStream::connect(addr).unwrap();
    wait_for(
        "the daemon to log the failed accept",
        Duration::from_secs(10),
        || m.log().contains("accept failed"),
    );
    let (before, start) = (cpu_ticks(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(pid) - before;
    // SAFETY: sysconf takes an integer and returns one.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let share = used as f64 / ticks_per_second / start.elapsed().as_secs_f64();
    assert!(
        share < 0.2,
        "the daemon used {:.0}% of a CPU while accept() failed",
        share * 100.0
    );
    let warnings = m.log().matches("accept failed").count();
    assert!(warnings <= 2, "{warnings} accept warnings:\n{}", m.log());
    // With descriptors back, the endpoint serves again (within one backoff step).
    set_nofile(pid, hard, hard);
    drop(waiting);
    wait_for(
        "the endpoint to answer again",
        ACCEPT_BACKOFF_MAX + Duration::from_secs(5),
        || matches!(get(addr, None), Ok((401, _))),
    );
}

#[test]
fn the_daemon_raises_its_open_file_limit() {
    let _serial = serial();
    let (soft, hard) = s3credsfs::limits::nofile().unwrap();
    let gw = TestGateway::start(|_| {});
    // The daemon inherits a soft limit below the hard one...
    set_nofile(std::process::id(), hard - 1, hard);
    let m = Mounted::start(&gw, &[]);
    set_nofile(std::process::id(), soft, hard);
    // ...and raises it.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", m.child.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers, [hard.to_string(), hard.to_string()], "{line}");
}

// ---- A neighbour cannot keep the owner out of the endpoint ----

/// One GET with the right token as an SDK makes it: a connection closed before any
/// answer is retried once, and the whole attempt must succeed within `budget`. Returns
/// the status and whether the retry was needed.
fn owner_get(addr: std::net::SocketAddr, token: &str, budget: Duration) -> (u16, bool) {
    let start = Instant::now();
    let (outcome, retried) = match get_within(addr, Some(token), budget) {
        Ok(answer) => (Ok(answer), false),
        Err(_) => {
            let left = budget.saturating_sub(start.elapsed());
            (
                get_within(addr, Some(token), left.max(Duration::from_millis(1))),
                true,
            )
        }
    };
    let (status, _) = outcome.unwrap_or_else(|e| panic!("no answer, retried: {retried} ({e})"));
    assert!(start.elapsed() < budget, "took {:?}", start.elapsed());
    (status, retried)
}

#[test]
fn a_flood_of_unauthenticated_connections_does_not_keep_the_owner_out() {
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &["--container-endpoint"]);
    let (addr, token, pid) = (endpoint_addr(&m), owner_token(&m), m.child.id());
    let (flood, start) = (
        Flood::start(addr, MAX_CONNECTIONS, Duration::from_secs(120)),
        Instant::now(),
    );
    let mut retries = 0;
    for attempt in 0..20 {
        wait_for(
            "the neighbour to hold every slot",
            Duration::from_secs(20),
            || held_connections(pid, addr.port()) == MAX_CONNECTIONS,
        );
        let (status, retried) = owner_get(addr, &token, Duration::from_secs(2));
        assert_eq!(status, 200, "attempt {attempt}");
        retries += usize::from(retried);
    }
    eprintln!(
        "20 of 20 owner requests got 200 while the neighbour opened {} connections; \
         {retries} needed the one retry",
        flood.connects()
    );
    // The owner's connections took the neighbour's slots, and the log says so once a minute.
    let warnings = m
        .log()
        .matches("closing the oldest connection that has not presented the token")
        .count();
    let minutes = start.elapsed().as_secs() as usize / 60;
    assert!(
        (1..=minutes + 1).contains(&warnings),
        "{warnings} eviction warnings:\n{}",
        m.log()
    );
    drop(flood);
}

#[test]
fn connections_that_presented_the_token_are_never_evicted() {
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &["--container-endpoint"]);
    let (addr, token) = (endpoint_addr(&m), owner_token(&m));
    let ask = |stream: &mut TcpStream| {
        let request =
            format!("GET /credentials HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {token}\r\n\r\n");
        stream.write_all(request.as_bytes()).ok()?;
        read_response(stream)
    };
    // The owner fills every slot with kept-alive connections that presented the token.
    let mut owned: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|i| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let answer = ask(&mut stream).unwrap_or_else(|| panic!("connection {i}: closed"));
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            stream
        })
        .collect();
    // Newcomers find no connection to evict and are closed unanswered.
    for i in 0..200 {
        let refused = get_within(addr, None, Duration::from_secs(2));
        assert!(refused.is_err(), "newcomer {i} was served: {refused:?}");
    }
    // Every one of the owner's connections is still served.
    for (i, stream) in owned.iter_mut().enumerate() {
        let answer = ask(stream).unwrap_or_else(|| panic!("connection {i} was closed"));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}

#[test]
fn refused_requests_close_the_connection() {
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &["--container-endpoint"]);
    let (addr, token) = (endpoint_addr(&m), owner_token(&m));
    for (head, status) in [
        ("GET /credentials".to_string(), 401),
        (
            "GET /credentials\r\nAuthorization: not-the-token".into(),
            403,
        ),
        (format!("GET /other\r\nAuthorization: {token}"), 404),
        (format!("POST /credentials\r\nAuthorization: {token}"), 405),
    ] {
        let (line, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // Keep-alive (HTTP/1.1 without `Connection: close`): only the server can close it.
        let headers = if headers.is_empty() {
            String::new()
        } else {
            format!("{headers}\r\n")
        };
        write!(
            stream,
            "{line} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: 0\r\n\r\n"
        )
        .unwrap();
        let answer = read_response(&mut stream).expect("an answer");
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{answer}"
        );
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
        let took = time_to_close(&stream);
        // Kept alive it would stay open for HEADER_READ_TIMEOUT (5 s).
        assert!(
            took < Duration::from_secs(3),
            "{status}: open {took:?} more"
        );
    }
}

#[test]
fn the_kernel_queues_hundreds_of_connections_for_the_endpoint() {
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &["--container-endpoint"]);
    let (addr, pid) = (endpoint_addr(&m), m.child.id());
    // Every accept() fails, so whatever connects stays in the kernel's queue.
    let hard = starve_accept(pid);
    // A full queue would drop the SYN and leave connect() waiting for a retransmission.
    // Each sends a byte, which puts it in the accept queue at once (a silent one would
    // wait DEFER_ACCEPT in the kernel's queue of half-open connections).
    let queued: Vec<TcpStream> = (0..600)
        .map(|i| {
            let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))
                .unwrap_or_else(|e| panic!("connection {i} was not queued ({e})"));
            stream.write_all(b"G").unwrap();
            stream
        })
        .collect();
    set_nofile(pid, hard, hard);
    drop(queued);
}

#[cfg(feature = "rgw-tests")]
#[test]
fn boto3_gets_credentials_while_a_neighbour_floods_the_endpoint() {
    let rgw = common::rgw::rgw();
    let gw = TestGateway::start(|c| c.backend = Some(rgw.backend()));
    let m = Mounted::start(&gw, &["--container-endpoint"]);
    let (addr, pid) = (endpoint_addr(&m), m.child.id());
    let env = exports(&m.read("container-env").unwrap());
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let _flood = Flood::start(addr, MAX_CONNECTIONS, Duration::from_secs(120));
    wait_for(
        "the neighbour to hold every slot",
        Duration::from_secs(20),
        || held_connections(pid, addr.port()) == MAX_CONNECTIONS,
    );
    // Fresh sessions, so each one asks the endpoint. botocore retries a failed fetch (a
    // connection closed under it) after 1 s; with one attempt, any failure fails the
    // script, so the test asserts what happened rather than how long it took.
    let script = r#"
import time, boto3, botocore.utils
botocore.utils.ContainerMetadataFetcher.RETRY_ATTEMPTS = 1
slowest = 0.0
for i in range(10):
    session = boto3.Session()
    start = time.time()
    session.get_credentials().get_frozen_credentials()
    slowest = max(slowest, time.time() - start)
    session.client("s3").list_buckets()
print("%.3f" % slowest)
"#;
    let out = boto3(script, &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "a fetch failed on its only attempt during the flood:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "boto3 fetched credentials 10 times during the flood, each on its first attempt; \
         slowest {} s",
        stdout.trim()
    );
}
