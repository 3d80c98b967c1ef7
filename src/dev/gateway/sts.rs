//! The emulated `PUT /apis/sts/token`: the Istio JWT check and OPA role check in front,
//! then cray-sts minting temporary S3 credentials.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use hyper::header::{HeaderMap, AUTHORIZATION};
use serde_json::{json, Value};

use super::config::{Fault, REALM, STS_TOKEN_PATH};
use super::jwt;
use super::reply::Reply;
use super::state::State;
use crate::creds::Credentials;

/// `Expiration` exactly as cray-sts writes it, with Python's `isoformat()`:
/// `2019-10-14T15:15:43.480741+00:00`, and `2019-10-14T15:15:43+00:00` (no fraction at
/// all) when the microseconds are 0, so clients meet both forms here as on CSM.
pub(crate) fn format_expiration(t: DateTime<Utc>) -> String {
    if t.timestamp_subsec_micros() == 0 {
        t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
    }
}

/// The 201 body; `with_session_token: false` gives the `Incomplete` fault's body. An
/// empty `endpoint_url` (none configured) is sent as JSON `null`, as cray-sts does.
pub(crate) fn credentials_body(c: &Credentials, with_session_token: bool) -> String {
    let endpoint = match c.endpoint_url.as_str() {
        "" => Value::Null,
        url => Value::String(url.to_owned()),
    };
    let mut creds = json!({
        "AccessKeyId": c.access_key_id,
        "EndpointURL": endpoint,
        "Expiration": format_expiration(c.expiration),
        "SecretAccessKey": c.secret_access_key.expose(),
    });
    if with_session_token {
        creds["SessionToken"] = Value::String(c.session_token.expose().to_owned());
    }
    json!({ "Credentials": creds }).to_string()
}

/// OPA's refusal (Cray-HPE/cray-opa): 403, a plain `Unauthorized Request`, and the header
/// its ext-authz filter adds.
pub(crate) fn opa_denied() -> Reply {
    Reply::text(403, "Unauthorized Request").with_header("x-ext-auth-allow", "no".to_owned())
}

/// Istio's refusal of a JWT it could not verify.
fn jwt_rejected(message: &str) -> Reply {
    Reply::text(401, message).with_header(
        "www-authenticate",
        format!("Bearer realm=\"{STS_TOKEN_PATH}\", error=\"invalid_token\""),
    )
}

/// The gateway's checks in front of cray-sts, for every path under `/apis/sts/`, on the
/// system clock; see [`authorize_at`].
pub(crate) async fn authorize(state: &State, headers: &HeaderMap) -> Result<(), Reply> {
    authorize_at(state, headers, SystemTime::now()).await
}

/// The gateway's checks in front of cray-sts at the time `now`. First Istio's JWT check,
/// in Envoy's order (algorithm, time, issuer, signature): a request without a bearer
/// token passes it, one with a bad token gets 401. The token must be signed as the realm
/// signs: HS256 by this gateway's own key, or RS256 by a key of the real Keycloak's set
/// (`--keycloak`). Then OPA's policy, which splits `Authorization` on one space into
/// exactly `Bearer` and a token and, as `io.jwt.decode_verify` with `"aud": "shasta"`
/// reads it, wants audience `shasta` (a string, or a list holding it; `azp` alone is not
/// enough) and client role `admin`: anything else gets its 403. `Err` holds the
/// rejection to send.
pub(crate) async fn authorize_at(
    state: &State,
    headers: &HeaderMap,
    now: SystemTime,
) -> Result<(), Reply> {
    let value = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let istio_token = value
        .trim()
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(token) = istio_token else {
        return Err(opa_denied());
    };
    let decoded = jwt::decode(token, state.token_algorithm())
        .map_err(|_| jwt_rejected("Jwt verification fails"))?;
    if decoded.is_expired(now) {
        return Err(jwt_rejected("Jwt is expired"));
    }
    if decoded.is_premature(now) {
        return Err(jwt_rejected("Jwt not yet valid"));
    }
    if decoded.claims.get("iss").and_then(Value::as_str) != Some(state.issuer.as_str()) {
        return Err(jwt_rejected("Jwt issuer is not configured"));
    }
    if !state.check_signature(&decoded).await {
        return Err(jwt_rejected("Jwt verification fails"));
    }
    let parts: Vec<&str> = value.split(' ').collect();
    if parts.len() != 2 || parts[0] != "Bearer" {
        return Err(opa_denied());
    }
    let claims = &decoded.claims;
    let audience_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == REALM,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(REALM)),
        _ => false,
    };
    let admin = claims
        .get("resource_access")
        .and_then(|r| r.get(REALM))
        .and_then(|c| c.get("roles"))
        .and_then(Value::as_array)
        .is_some_and(|roles| roles.iter().any(|r| r.as_str() == Some("admin")));
    if audience_ok && admin {
        // One line per accepted token, naming who and with which key (never the token):
        // what `scripts/demo-csm` shows as the "JWT checked" hop.
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("-").to_owned();
        tracing::info!(
            alg = state.token_algorithm(),
            kid = %text(decoded.header.get("kid")),
            user = %text(claims.get("preferred_username")),
            client = %text(claims.get("azp")),
            "dev-gateway: JWT verified (signature, issuer, expiry) and OPA allowed it (audience shasta, role admin)"
        );
        Ok(())
    } else {
        Err(opa_denied())
    }
}

/// What cray-sts answers when its backend fails: the exception nobody catches becomes
/// connexion's problem document for a 500 (Werkzeug's description of one).
fn backend_failed() -> Reply {
    let problem = json!({
        "detail": "The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application.",
        "status": 500,
        "title": "Internal Server Error",
        "type": "about:blank",
    });
    Reply {
        content_type: "application/problem+json".into(),
        ..Reply::json(500, problem.to_string())
    }
}

/// Envoy's answer when the service behind it does not reply within the route's timeout.
fn upstream_timeout() -> Reply {
    Reply::text(504, "upstream request timeout")
}

/// Mints within the gateway's upstream timeout; `Err` is the reply to send instead.
async fn mint(state: &State) -> Result<Credentials, Reply> {
    match tokio::time::timeout(state.config.upstream_timeout, state.minter.mint()).await {
        Ok(Ok(creds)) => Ok(creds),
        Ok(Err(why)) => {
            tracing::warn!(error = %why, "dev-gateway: credential backend failed");
            Err(backend_failed())
        }
        Err(_) => {
            tracing::warn!("dev-gateway: credential backend did not answer in time");
            Err(upstream_timeout())
        }
    }
}

/// Handles an STS request that no fault replaced: checks the caller, then mints.
pub(crate) async fn put_token(state: &State, headers: &HeaderMap) -> Reply {
    if let Err(reply) = authorize(state, headers).await {
        state.count(|s| s.sts_rejected += 1);
        return reply;
    }
    match mint(state).await {
        Ok(creds) => {
            state.count(|s| s.sts_issued += 1);
            Reply::json(201, credentials_body(&creds, true))
        }
        Err(reply) => reply,
    }
}

/// Body of the `Malformed` fault: a 2xx whose body is not JSON despite its content type.
pub(crate) const MALFORMED_BODY: &str = "<html><body>upstream connect error</body>";

/// The reply for an STS fault that replaces the normal one (everything but `Delay` and
/// `CloseConnection`, which the server handles).
pub(crate) async fn fault_reply(state: &State, fault: &Fault) -> Reply {
    match fault {
        Fault::Malformed => Reply::json(201, MALFORMED_BODY.to_owned()),
        Fault::Incomplete | Fault::ExpiredCredentials => match mint(state).await {
            Ok(mut creds) => {
                if matches!(fault, Fault::ExpiredCredentials) {
                    creds.expiration = Utc::now() - chrono::Duration::hours(1);
                }
                let complete = matches!(fault, Fault::ExpiredCredentials);
                Reply::json(201, credentials_body(&creds, complete))
            }
            Err(reply) => reply,
        },
        Fault::Status { .. }
        | Fault::Delay(_)
        | Fault::CloseConnection
        | Fault::Redirect(_)
        | Fault::EndlessBody
        | Fault::CutMidReply => {
            unreachable!("handled by the server")
        }
    }
}

#[cfg(test)]
#[path = "sts_keycloak_tests.rs"]
mod keycloak_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::gateway::mint::RandomMinter;
    use chrono::TimeZone;

    #[test]
    fn expiration_format_matches_cray_sts() {
        let t = Utc.with_ymd_and_hms(2019, 10, 14, 15, 15, 43).unwrap()
            + chrono::Duration::microseconds(480_741);
        assert_eq!(format_expiration(t), "2019-10-14T15:15:43.480741+00:00");
        let whole = Utc.with_ymd_and_hms(2019, 10, 14, 15, 15, 43).unwrap();
        assert_eq!(format_expiration(whole), "2019-10-14T15:15:43+00:00");
        // Below a microsecond, isoformat() has nothing to show either.
        let nanos = whole + chrono::Duration::nanoseconds(999);
        assert_eq!(format_expiration(nanos), "2019-10-14T15:15:43+00:00");
        let one = whole + chrono::Duration::microseconds(1);
        assert_eq!(format_expiration(one), "2019-10-14T15:15:43.000001+00:00");
    }

    #[test]
    fn incomplete_body_lacks_only_the_session_token() {
        let minter = RandomMinter {
            endpoint_url: "http://rgw.local:8080".into(),
            lifetime: std::time::Duration::from_secs(3600),
        };
        let c = minter.make();
        let body: Value = serde_json::from_str(&credentials_body(&c, false)).unwrap();
        assert!(body["Credentials"].get("SessionToken").is_none());
        assert_eq!(body["Credentials"]["EndpointURL"], "http://rgw.local:8080");
    }
}
