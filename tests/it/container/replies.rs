//! What every reply of the container endpoint says about caching and failures.

use super::endpoint::*;
use crate::common::mount::*;
use crate::common::wait_for;
use s3credsfs::dev::gateway::{Endpoint, Times};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

/// One request (its request line, then any header lines) on a fresh connection: the
/// whole response.
fn request(m: &Mounted, head: &str) -> String {
    let (line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    let headers = if headers.is_empty() {
        String::new()
    } else {
        format!("{headers}\r\n")
    };
    let addr = endpoint_addr(m);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "{line} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    read_response(&mut stream).expect("an answer")
}

fn status_of(response: &str) -> &str {
    response.split(' ').nth(1).unwrap_or_default()
}

fn assert_no_store(response: &str) {
    assert!(
        response
            .lines()
            .any(|l| l.eq_ignore_ascii_case("cache-control: no-store")),
        "{response}"
    );
}

#[test]
fn a_failing_gateway_is_503_with_the_reason_and_no_reply_is_cached() {
    let gw = TestGateway::start(|c| c.lifetime = Duration::from_secs(3));
    let m = Mounted::start(&gw, &["--container-endpoint", "--min-validity", "2s"]);
    let token = owner_token(&m);
    let credentials = format!("GET /credentials\r\nAuthorization: {token}");
    let ok = request(&m, &credentials);
    assert_eq!(status_of(&ok), "200", "{ok}");
    assert_no_store(&ok);
    // The gateway fails from now on: once the credentials have expired, nothing is left
    // to serve.
    gw.gw.inject(
        Endpoint::Sts,
        crate::common::status_fault(500, "text/plain", "\"Error\""),
        Times::Always,
    );
    let mut failed = String::new();
    wait_for("a 503 once they expire", Duration::from_secs(30), || {
        failed = request(&m, &credentials);
        status_of(&failed) != "200"
    });
    assert_eq!(status_of(&failed), "503", "{failed}");
    assert!(failed.contains("answered HTTP 500"), "{failed}");
    assert!(!failed.contains("AccessKeyId"), "{failed}");
    assert_no_store(&failed);

    gw.gw.clear_faults();
    let mut ok = String::new();
    wait_for(
        "credentials after the backoff",
        Duration::from_secs(30),
        || {
            ok = request(&m, &credentials);
            status_of(&ok) == "200"
        },
    );
    assert!(ok.contains("\"AccessKeyId\""), "{ok}");
    for head in [
        "GET /credentials".to_string(),
        "GET /credentials\r\nAuthorization: wrong".to_string(),
        format!("GET /other\r\nAuthorization: {token}"),
        format!("POST /credentials\r\nAuthorization: {token}"),
    ] {
        let refused = request(&m, &head);
        assert!(status_of(&refused).starts_with('4'), "{refused}");
        assert_no_store(&refused);
    }
}
