//! Refresh-ahead in a real mount: in the window before `--min-validity`, a read is served
//! the current credentials at once while one refresh runs in the background, even when
//! the gateway takes far longer than any reader would wait.

use crate::common;

use common::mount::*;
use common::wait_for;
use s3credsfs::dev::gateway::{Endpoint, Fault, Times};
use std::time::Duration;

/// 12 s credentials, due 2 s before expiry; the window opens at half-life (6 s).
const ARGS: [&str; 6] = [
    "--min-validity",
    "2s",
    "--refresh-ahead",
    "6s",
    "--timeout",
    "3s",
];

#[test]
fn a_read_in_the_window_does_not_wait_for_a_slow_gateway() {
    let gw = TestGateway::start(|c| c.lifetime = Duration::from_secs(12));
    let m = Mounted::start(&gw, &ARGS);
    let first = m.access_key();
    let before = gw.stats().sts_requests;
    // The next STS call takes a minute: a reader waiting for it would still be waiting.
    // The refresh ahead (the keeper's, at a random moment of the window) is that call.
    gw.gw.inject(
        Endpoint::Sts,
        Fault::Delay(Duration::from_secs(60)),
        Times::Once,
    );
    // Into the window (under 6 s left), still well above min-validity.
    wait_for("the refresh-ahead window", Duration::from_secs(15), || {
        m.status()["seconds_remaining"].as_i64().unwrap() <= 5
    });
    assert_eq!(m.status()["state"], "fresh");
    let reader = {
        let path = m.file("json");
        std::thread::spawn(move || std::fs::read_to_string(path))
    };
    wait_for("the read to return", Duration::from_secs(2), || {
        reader.is_finished()
    });
    let json: serde_json::Value = serde_json::from_str(&reader.join().unwrap().unwrap()).unwrap();
    assert_eq!(
        json["AccessKeyId"],
        first.as_str(),
        "served the current credentials"
    );
    wait_for(
        "the background refresh to reach the STS",
        Duration::from_secs(5),
        || gw.stats().sts_requests > before,
    );
    // The slow call times out (--timeout 3s), the refresh backs off, and the keeper (or a
    // later read) in the window starts another one, which succeeds. The keeper's moment
    // is random within the window: when it came late, the first credentials may expire
    // before the second call, and reads get EIO meanwhile (never the expired keys).
    wait_for("new credentials", Duration::from_secs(20), || {
        m.read("json").is_ok_and(|json| !json.contains(&first))
    });
    assert_eq!(gw.stats().sts_requests, before + 2, "{:?}", gw.stats());
    let status = m.status();
    assert_eq!(status["state"], "fresh", "{status}");
    assert_eq!(status["last_error"], serde_json::Value::Null, "{status}");
}

#[test]
fn refresh_ahead_zero_refreshes_only_when_due() {
    let gw = TestGateway::start(|c| c.lifetime = Duration::from_secs(12));
    let m = Mounted::start(&gw, &["--min-validity", "2s", "--refresh-ahead", "0"]);
    let first = m.access_key();
    wait_for("half the lifetime to pass", Duration::from_secs(15), || {
        m.status()["seconds_remaining"].as_i64().unwrap() <= 5
    });
    assert_eq!(m.access_key(), first, "no refresh before min-validity");
    assert_eq!(m.status()["refresh_count"], 1);
}
