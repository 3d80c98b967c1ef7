//! Faults of the gateway, each recovering by itself with no restart (but a refused
//! password, which waits for `s3credsfs refresh`): for every fault a mounted daemon meets, readers get valid credentials or EIO (never expired ones),
//! `status` and the log say why, gateway calls stay within what the backoff allows, and
//! once the fault clears, reads work again.

use crate::common;

use common::mount::*;
use common::{status_fault, wait_for};
use s3credsfs::dev::gateway::{Endpoint, Fault, Times};
use std::time::{Duration, Instant};

/// 4 s credentials refreshed when under 2 s remain; JWTs of 2 s; 2 s request timeout.
fn mount() -> (TestGateway, Mounted) {
    let gw = TestGateway::start(|c| {
        c.lifetime = Duration::from_secs(4);
        c.token_lifetime = Duration::from_secs(2);
    });
    let m = Mounted::start(&gw, &["--min-validity", "2s", "--timeout", "2s"]);
    (gw, m)
}

/// A 201 reply whose credentials are valid but for `field`, set to `value`.
fn sts_with(field: &str, value: serde_json::Value) -> Fault {
    let mut creds = serde_json::json!({
        "AccessKeyId": "AKID", "EndpointURL": "http://rgw", "SecretAccessKey": "sk",
        "SessionToken": "st",
        "Expiration": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
    });
    creds[field] = value;
    status_fault(
        201,
        "application/json",
        &serde_json::json!({ "Credentials": creds }).to_string(),
    )
}

/// Reads `json`; a success must carry credentials that have not expired.
fn read_checked(m: &Mounted) -> Result<String, i32> {
    match m.read("json") {
        Ok(text) => {
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            let expiration =
                chrono::DateTime::parse_from_rfc3339(json["Expiration"].as_str().unwrap()).unwrap();
            // Rendered rounded down to the second: the true expiry is up to 1 s later.
            assert!(
                expiration + chrono::Duration::seconds(1) > chrono::Utc::now(),
                "expired credentials were served: {text}"
            );
            Ok(json["AccessKeyId"].as_str().unwrap().to_string())
        }
        Err(e) => {
            let errno = e.raw_os_error().unwrap();
            assert_eq!(errno, libc::EIO, "a failed read is EIO");
            Err(errno)
        }
    }
}

/// Most gateway requests one refresh makes: token refresh or grant, STS, and on 401/403
/// a new token and a second STS call.
const REQUESTS_PER_REFRESH: u64 = 4;

/// The most refresh attempts in `window` when backoff starts at 0.5–1 s and doubles.
fn attempts_allowed(window: Duration) -> u64 {
    // Delays are at least 0.5·2^(n-1) s, so k attempts need 0.5·(2^(k-1) − 1) s; plus
    // one attempt for a read already due when the fault arrived.
    2 + (2.0 * window.as_secs_f64() + 1.0).log2().ceil() as u64
}

/// Injects `fault` on `endpoint` until `status` reports `expected`, checks what readers,
/// the log and the gateway's counters saw, then clears it and waits for recovery.
fn cycle(
    gw: &TestGateway,
    m: &Mounted,
    name: &str,
    endpoint: Endpoint,
    fault: Fault,
    expected: &str,
) {
    wait_for(
        &format!("{name}: a healthy start"),
        Duration::from_secs(20),
        || read_checked(m).is_ok() && m.status()["last_error"].is_null(),
    );
    let before = gw.stats();
    let started = Instant::now();
    gw.gw.inject(endpoint, fault, Times::Always);
    wait_for(
        &format!("{name}: status to report it"),
        Duration::from_secs(20),
        || {
            let _ = read_checked(m);
            m.status()["last_error"]
                .as_str()
                .is_some_and(|e| e.contains(expected))
        },
    );
    // Readers keep coming while the fault lasts; the backoff must keep their refresh
    // attempts few.
    let load = Instant::now();
    while load.elapsed() < Duration::from_secs(2) {
        let _ = read_checked(m);
        std::thread::sleep(Duration::from_millis(10));
    }
    let window = started.elapsed();
    let after = gw.stats();
    let requests =
        (after.token_requests - before.token_requests) + (after.sts_requests - before.sts_requests);
    let allowed = attempts_allowed(window) * REQUESTS_PER_REFRESH;
    assert!(
        requests <= allowed,
        "{name}: {requests} gateway requests in {window:?}, backoff allows {allowed}"
    );
    assert!(m.log().contains(expected), "{name}: the log says why");
    gw.gw.clear_faults();
    // After a 503 the next attempt comes only after the overload wait.
    let overload = s3credsfs::cache::OVERLOAD_DELAY + s3credsfs::cache::OVERLOAD_SPREAD;
    wait_for(
        &format!("{name}: recovery"),
        Duration::from_secs(30) + overload,
        || read_checked(m).is_ok() && m.status()["last_error"].is_null(),
    );
}

#[test]
fn sts_faults_recover_by_themselves() {
    let (gw, m) = mount();
    let cases: Vec<(&str, Fault, &str)> = vec![
        ("connection closed", Fault::CloseConnection, "cannot reach"),
        ("reset mid-reply", Fault::CutMidReply, "cannot reach"),
        (
            "hang",
            Fault::Delay(Duration::from_secs(5)),
            "did not answer within 2s",
        ),
        (
            "500 with HTML",
            status_fault(500, "text/html", "<html><body>Bad</body></html>"),
            "answered HTTP 500;",
        ),
        (
            "500 problem+json",
            status_fault(
                500,
                "application/problem+json",
                r#"{"detail": "Ceph is down", "status": 500}"#,
            ),
            "answered HTTP 500 (Ceph is down)",
        ),
        (
            "truncated JSON",
            status_fault(
                201,
                "application/json",
                r#"{"Credentials": {"AccessKeyId": "AK"#,
            ),
            "its body is not the expected JSON object",
        ),
        ("missing field", Fault::Incomplete, "lacks \"SessionToken\""),
        (
            "empty field",
            sts_with("SessionToken", "".into()),
            "its \"SessionToken\" is empty",
        ),
        (
            "expired",
            Fault::ExpiredCredentials,
            "returned credentials that expired at",
        ),
        (
            "not RFC 3339",
            sts_with("Expiration", "tomorrow".into()),
            "is not an RFC 3339 time",
        ),
        (
            "always forbidden",
            status_fault(403, "text/plain", "RBAC: access denied"),
            "refused a freshly issued token (HTTP 403)",
        ),
    ];
    for (name, fault, expected) in cases {
        cycle(&gw, &m, name, Endpoint::Sts, fault, expected);
    }
}

/// A refused password is the one fault that must not recover by itself: each retry
/// would count toward Keycloak's brute-force lockout. It stays refused, however many
/// reads come, until `s3credsfs refresh`.
#[test]
fn a_refused_password_waits_for_refresh() {
    let (gw, m) = mount();
    wait_for("a healthy start", Duration::from_secs(20), || {
        read_checked(&m).is_ok() && m.status()["last_error"].is_null()
    });
    let refused = status_fault(
        401,
        "application/json",
        r#"{"error":"invalid_grant","error_description":"Invalid user credentials"}"#,
    );
    gw.gw.inject(Endpoint::Token, refused, Times::Always);
    wait_for(
        "status to report the refusal",
        Duration::from_secs(20),
        || {
            let _ = read_checked(&m);
            m.status()["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("rejected the password for user \"dev\""))
        },
    );
    // The credentials held expire (4 s): nothing valid is left to serve.
    wait_for("the credentials to expire", Duration::from_secs(10), || {
        let _ = read_checked(&m);
        m.status()["state"] == "error"
    });
    let (tries, logins) = (gw.stats().token_requests, gw.stats().password_grants);
    // The password is right again at Keycloak (an administrator unlocked the account):
    // still, reads for 3 s (the backoff alone would retry 3 times) attempt no login.
    gw.gw.clear_faults();
    let load = Instant::now();
    while load.elapsed() < Duration::from_secs(3) {
        assert_eq!(read_checked(&m), Err(libc::EIO));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        gw.stats().token_requests,
        tries,
        "a refused password was sent again"
    );
    assert_eq!(m.status()["state"], "error");
    assert!(m
        .log()
        .contains("not trying again until `s3credsfs refresh`"));
    // `refresh` logs in again at once.
    let out = bin().arg("refresh").arg(&m.path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(gw.stats().password_grants, logins + 1);
    assert!(read_checked(&m).is_ok());
    assert!(m.status()["last_error"].is_null(), "{}", m.status());
}

#[test]
fn keycloak_faults_recover_by_themselves() {
    let (gw, m) = mount();
    // Tokens already expired when issued, as from a gateway whose clock runs far ahead.
    cycle(
        &gw,
        &m,
        "gateway clock far off",
        Endpoint::Token,
        Fault::ExpiredCredentials,
        "refused a freshly issued token (HTTP 401)",
    );
    cycle(
        &gw,
        &m,
        "token endpoint down",
        Endpoint::Token,
        status_fault(503, "text/html", "<html>"),
        "answered HTTP 503",
    );

    // A revoked refresh token is no failure at all: a new password login replaces it.
    let logins = gw.stats().password_grants;
    gw.gw.revoke_sessions();
    wait_for(
        "a new login after revocation",
        Duration::from_secs(20),
        || read_checked(&m).is_ok() && gw.stats().password_grants > logins,
    );
    assert!(m.status()["last_error"].is_null(), "{}", m.status());

    // 401 then 403: the retry with a fresh token is refused too.
    gw.gw.inject(
        Endpoint::Sts,
        status_fault(401, "text/plain", "Jwt is expired"),
        Times::Once,
    );
    cycle(
        &gw,
        &m,
        "401 then 403",
        Endpoint::Sts,
        status_fault(403, "text/plain", "RBAC: access denied"),
        "refused a freshly issued token (HTTP 403)",
    );
}

/// The gateway goes away altogether (its port refuses connections) and comes back as a
/// new instance on the same port, with new signing keys: the old JWT and refresh token
/// are no good there, and the daemon logs in again by itself.
#[test]
fn an_unreachable_gateway_recovers_when_it_returns() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = || s3credsfs::dev::gateway::GatewayConfig {
        lifetime: Duration::from_secs(4),
        ..Default::default()
    };
    let gw = runtime
        .block_on(s3credsfs::dev::gateway::Gateway::start(config()))
        .unwrap();
    let addr = gw.addr();
    let m = Mounted::start_at(
        &gw.base_url(),
        &["--min-validity", "2s", "--timeout", "2s"],
        &[],
    );
    drop(gw);
    wait_for(
        "status to say the gateway is unreachable",
        Duration::from_secs(20),
        || {
            let _ = m.read("json");
            m.status()["last_error"]
                .as_str()
                .is_some_and(|e| e.starts_with("cannot reach http://127.0.0.1"))
        },
    );
    let mut second = config();
    second.listen = addr;
    let gw = runtime
        .block_on(s3credsfs::dev::gateway::Gateway::start(second))
        .unwrap();
    wait_for(
        "recovery on the new gateway",
        Duration::from_secs(30),
        || m.read("json").is_ok() && m.status()["last_error"].is_null(),
    );
    assert!(gw.stats().password_grants >= 1, "logged in again");
    assert!(m.log().contains("cannot reach"), "the log says why");
}
