//! Keycloak's token endpoint: the password, refresh_token and client_credentials grants as
//! plain form posts, and its replies and errors.

use crate::clock::TimeSource;
use crate::error::Error;
use crate::http::exchange;
use crate::secret::Secret;
use crate::untrusted::{clean, MAX_QUOTED};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::time::Duration;

/// One grant request.
pub enum Grant<'a> {
    Password {
        username: &'a str,
        password: &'a Secret,
    },
    Refresh {
        refresh_token: &'a Secret,
    },
    ClientCredentials {
        secret: &'a Secret,
    },
}

impl Grant<'_> {
    fn grant_type(&self) -> &'static str {
        match self {
            Grant::Password { .. } => "password",
            Grant::Refresh { .. } => "refresh_token",
            Grant::ClientCredentials { .. } => "client_credentials",
        }
    }
}

/// A token Keycloak issued, with the times derived from its own `expires_in` numbers.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: Secret,
    pub expires_at: DateTime<Utc>,
    pub refresh_token: Option<Secret>,
    /// `None` when Keycloak gave no lifetime or 0 (offline tokens).
    pub refresh_expires_at: Option<DateTime<Utc>>,
}

/// Why a grant failed: Keycloak said no (with its reasons), or something else broke.
#[derive(Debug)]
pub enum GrantError {
    Refused {
        status: u16,
        error: String,
        description: String,
    },
    Failed(Error),
}

impl From<Error> for GrantError {
    fn from(e: Error) -> Self {
        GrantError::Failed(e)
    }
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: Option<String>,
    expires_in: Option<f64>,
    refresh_token: Option<String>,
    refresh_expires_in: Option<f64>,
}

#[derive(Deserialize, Default)]
struct ErrorReply {
    error: Option<String>,
    error_description: Option<String>,
}

/// The longest lifetime believed from a reply: ten years (some sites set one year). A
/// longer one is read as ten years, which no session outlives anyway.
const MAX_LIFETIME_SECONDS: f64 = 10.0 * 365.0 * 86_400.0;

/// `now` plus a lifetime from Keycloak's reply, or `None` when the number is negative.
/// Checked and saturating: a reply's `1e300` must not overflow the clock.
fn after(now: DateTime<Utc>, seconds: f64) -> Option<DateTime<Utc>> {
    if seconds.is_nan() || seconds < 0.0 {
        return None;
    }
    let millis = (seconds.min(MAX_LIFETIME_SECONDS) * 1000.0) as i64;
    let lifetime = chrono::Duration::try_milliseconds(millis)?;
    Some(
        now.checked_add_signed(lifetime)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    )
}

/// Runs one grant against the token endpoint; the reply's lifetimes count from `time`'s
/// now when it arrives.
pub async fn request(
    http: &reqwest::Client,
    url: &str,
    client_id: &str,
    grant: Grant<'_>,
    timeout: Duration,
    time: &dyn TimeSource,
) -> std::result::Result<Issued, GrantError> {
    let mut form: Vec<(&str, &str)> =
        vec![("grant_type", grant.grant_type()), ("client_id", client_id)];
    match &grant {
        Grant::Password { username, password } => {
            form.push(("username", username));
            form.push(("password", password.expose()));
        }
        Grant::Refresh { refresh_token } => form.push(("refresh_token", refresh_token.expose())),
        Grant::ClientCredentials { secret } => form.push(("client_secret", secret.expose())),
    }
    tracing::debug!(
        url,
        grant = grant.grant_type(),
        client_id,
        "requesting a token"
    );
    let (status, body) = exchange(url, http.post(url).form(&form), timeout).await?;
    parse_reply(url, status, &body, time.now())
}

/// Interprets a token endpoint reply; split out so tests can feed it bytes.
pub fn parse_reply(
    url: &str,
    status: u16,
    body: &[u8],
    now: DateTime<Utc>,
) -> std::result::Result<Issued, GrantError> {
    if (200..300).contains(&status) {
        let bad = |problem: &str| {
            GrantError::Failed(Error::BadReply {
                url: url.to_string(),
                status,
                problem: problem.to_string(),
            })
        };
        let reply: TokenReply = serde_json::from_slice(body)
            .map_err(|_| bad("its body is not the expected JSON token reply"))?;
        let access_token = reply
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("its JSON has no \"access_token\""))?;
        let refresh_expires_at = match reply.refresh_expires_in {
            None => None,
            Some(0.0) => None,
            Some(s) => {
                Some(after(now, s).ok_or_else(|| bad("its \"refresh_expires_in\" is negative"))?)
            }
        };
        let expires_at = after(now, reply.expires_in.unwrap_or(60.0))
            .ok_or_else(|| bad("its \"expires_in\" is negative"))?;
        return Ok(Issued {
            access_token: Secret::new(access_token),
            expires_at,
            refresh_token: reply
                .refresh_token
                .filter(|t| !t.is_empty())
                .map(Secret::new),
            refresh_expires_at,
        });
    }
    // Keycloak's errors are JSON objects with an "error"; anything else (an HTML page, a
    // proxy's text) came from something that is not Keycloak.
    let mut reply: ErrorReply = match serde_json::from_slice::<ErrorReply>(body) {
        Ok(reply) if reply.error.is_some() => reply,
        _ => return Err(GrantError::Failed(not_keycloak(url, status, body))),
    };
    // Keycloak's words reach terminals, logs and `status`: no escapes, no floods.
    reply.error = reply.error.map(|t| clean(&t, MAX_QUOTED));
    reply.error_description = reply.error_description.map(|t| clean(&t, MAX_QUOTED));
    match reply.error {
        Some(error) if matches!(status, 400 | 401 | 403) => Err(GrantError::Refused {
            status,
            description: reply.error_description.unwrap_or_else(|| error.clone()),
            error,
        }),
        _ => {
            let detail = reply
                .error_description
                .or(reply.error)
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            let fix = if status == 404 {
                "check --realm, --token-url and --api-gateway"
            } else if status >= 500 {
                "Keycloak is failing; retry later or check its health on the system"
            } else {
                "check --token-url and --client-id"
            };
            Err(GrantError::Failed(Error::HttpStatus {
                url: url.to_string(),
                status,
                detail,
                fix: fix.to_string(),
            }))
        }
    }
}

/// Whether Keycloak's refusal is about the client (`--client-id`), not the user: the
/// OAuth codes `unauthorized_client`/`invalid_client`, or Keycloak's "Invalid client"
/// and "Client not found" texts.
pub fn names_the_client(error: &str, description: &str) -> bool {
    let description = description.to_ascii_lowercase();
    matches!(error, "unauthorized_client" | "invalid_client")
        || description.contains("invalid client")
        || description.contains("client not found")
}

/// What to do when Keycloak refused a password login for the account itself, not the
/// password: it says "Account disabled" only when the password was right, and a new
/// password would not help there nor for the other two. `None` for every other reason.
pub fn account_fix(description: &str) -> Option<&'static str> {
    match description.trim().to_ascii_lowercase().as_str() {
        "account disabled" => Some(
            "the password is right but the account is disabled in Keycloak; an administrator \
             must enable it",
        ),
        "account temporarily disabled" => Some(
            "Keycloak locked the account for a while after failed logins; wait and try again, \
             or have an administrator unlock it",
        ),
        "account is not fully set up" => Some(
            "the account lacks a first name, last name or email, or has a required action \
             (such as a new password) pending; complete it in Keycloak",
        ),
        _ => None,
    }
}

/// An error status whose body is not Keycloak's JSON error: the URL most likely points
/// somewhere else (a web server's 404 page, another service's 500).
fn not_keycloak(url: &str, status: u16, body: &[u8]) -> Error {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let what = match first {
        None => "an empty reply",
        Some(b'<') => "an HTML page",
        Some(_) => "a reply that is not Keycloak's JSON",
    };
    let fix = if status >= 500 {
        "; if it does, Keycloak behind it may be failing"
    } else {
        ""
    };
    Error::HttpStatus {
        url: url.to_string(),
        status,
        detail: format!(" with {what}"),
        fix: format!(
            "the reply does not look like Keycloak's: check that --api-gateway (or --token-url) \
             points at a CSM gateway{fix}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn reads_keycloak_reply_numbers() {
        let body = br#"{"access_token":"a.b.c","expires_in":300,"refresh_expires_in":1800,
            "refresh_token":"r","token_type":"Bearer","not-before-policy":0,"session_state":"s","scope":"profile"}"#;
        let issued = parse_reply("u", 200, body, now()).unwrap();
        assert_eq!(issued.access_token.expose(), "a.b.c");
        assert_eq!((issued.expires_at - now()).num_seconds(), 300);
        assert_eq!(
            (issued.refresh_expires_at.unwrap() - now()).num_seconds(),
            1800
        );

        let offline =
            br#"{"access_token":"t","expires_in":60,"refresh_expires_in":0,"refresh_token":"r"}"#;
        assert!(parse_reply("u", 200, offline, now())
            .unwrap()
            .refresh_expires_at
            .is_none());
        let client = br#"{"access_token":"t","expires_in":60}"#;
        assert!(parse_reply("u", 200, client, now())
            .unwrap()
            .refresh_token
            .is_none());
    }

    #[test]
    fn a_refresh_token_is_kept_and_a_zero_lifetime_is_now() {
        let body = br#"{"access_token":"t","expires_in":0,"refresh_token":"r"}"#;
        let issued = parse_reply("u", 200, body, now()).unwrap();
        assert_eq!(issued.expires_at, now(), "0 is not negative");
        assert_eq!(issued.refresh_token.as_ref().map(Secret::expose), Some("r"));
        let body = br#"{"access_token":"t","refresh_token":""}"#;
        let issued = parse_reply("u", 200, body, now()).unwrap();
        assert!(
            issued.refresh_token.is_none(),
            "an empty refresh token is none"
        );
        assert_eq!((issued.expires_at - now()).num_seconds(), 60, "the default");
    }

    #[test]
    fn only_400_401_and_403_are_refusals() {
        let body = br#"{"error":"unknown_error","error_description":"Keycloak broke"}"#;
        for (status, fix) in [
            (
                500,
                "Keycloak is failing; retry later or check its health on the system",
            ),
            (404, "check --realm, --token-url and --api-gateway"),
            (429, "check --token-url and --client-id"),
        ] {
            match parse_reply("u", status, body, now()) {
                Err(GrantError::Failed(e)) => assert_eq!(
                    e.to_string(),
                    format!("u answered HTTP {status} (Keycloak broke); {fix}")
                ),
                other => panic!("{status}: {other:?}"),
            }
        }
        for status in [400, 401, 403] {
            assert!(matches!(
                parse_reply("u", status, body, now()),
                Err(GrantError::Refused { .. })
            ));
        }
    }

    #[test]
    fn absurd_lifetimes_never_panic() {
        let reply = |expires: &str, refresh: &str| {
            format!(
                r#"{{"access_token":"t","expires_in":{expires},"refresh_expires_in":{refresh},"refresh_token":"r"}}"#
            )
        };
        let ten_years = 10 * 365 * 86_400;
        for huge in ["1e300", "1.7976931348623157e308", "9223372036854775807"] {
            let issued = parse_reply("u", 200, reply(huge, huge).as_bytes(), now()).unwrap();
            assert_eq!((issued.expires_at - now()).num_seconds(), ten_years);
            assert_eq!(
                (issued.refresh_expires_at.unwrap() - now()).num_seconds(),
                ten_years
            );
        }
        for (expires, refresh, field) in [
            ("-1e300", "60", "expires_in"),
            ("-1", "60", "expires_in"),
            ("60", "-1e300", "refresh_expires_in"),
        ] {
            match parse_reply("u", 200, reply(expires, refresh).as_bytes(), now()) {
                Err(GrantError::Failed(Error::BadReply { problem, .. })) => {
                    assert_eq!(problem, format!("its \"{field}\" is negative"))
                }
                other => panic!("{expires} {refresh}: {other:?}"),
            }
        }
        // Out of f64's range: not valid JSON for us, so a bad reply, not a panic.
        assert!(parse_reply("u", 200, reply("1e400", "0").as_bytes(), now()).is_err());
        // The latest representable clock still does not overflow.
        let end = DateTime::<Utc>::MAX_UTC;
        assert!(parse_reply("u", 200, reply("300", "1800").as_bytes(), end).is_ok());
    }

    /// An HTML page or any body that is not Keycloak's JSON error says the URL is not
    /// Keycloak, whatever the status; 400/401/403 without Keycloak's JSON are no refusal.
    #[test]
    fn a_reply_that_is_not_keycloaks_says_so() {
        for (status, body, what) in [
            (
                500,
                &b"  <html><h1>500 Internal Server Error</h1></html>"[..],
                "an HTML page",
            ),
            (
                404,
                b"<!DOCTYPE html><title>Not Found</title>",
                "an HTML page",
            ),
            (401, b"Unauthorized", "a reply that is not Keycloak's JSON"),
            (502, b"", "an empty reply"),
            (
                404,
                br#"{"detail":"not found"}"#,
                "a reply that is not Keycloak's JSON",
            ),
        ] {
            let err = match parse_reply("https://gw/t", status, body, now()) {
                Err(GrantError::Failed(e)) => e.to_string(),
                other => panic!("{status}: {other:?}"),
            };
            let down = if status >= 500 {
                "; if it does, Keycloak behind it may be failing"
            } else {
                ""
            };
            assert_eq!(
                err,
                format!(
                    "https://gw/t answered HTTP {status} with {what}; the reply does not look like \
                     Keycloak's: check that --api-gateway (or --token-url) points at a CSM gateway{down}"
                )
            );
        }
    }

    #[test]
    fn client_refusals_are_told_from_user_refusals() {
        assert!(names_the_client(
            "unauthorized_client",
            "Invalid client or Invalid client credentials"
        ));
        assert!(names_the_client("invalid_client", ""));
        assert!(names_the_client("invalid_request", "Client not found."));
        assert!(names_the_client("x", "INVALID CLIENT"));
        assert!(!names_the_client(
            "invalid_grant",
            "Invalid user credentials"
        ));
        assert!(!names_the_client("invalid_grant", "Account disabled"));
    }

    /// Keycloak's texts for an account it will not log in, whatever the password; the
    /// password's own refusal and the client's are no account problem.
    #[test]
    fn account_refusals_are_told_from_password_refusals() {
        for description in [
            "Account disabled",
            "Account temporarily disabled",
            "Account is not fully set up",
            " account DISABLED ",
        ] {
            assert!(account_fix(description).is_some(), "{description}");
        }
        assert!(account_fix("Account disabled")
            .unwrap()
            .contains("an administrator must enable it"));
        for description in [
            "Invalid user credentials",
            "Invalid client or Invalid client credentials",
            "Account disabled for good measure",
            "",
        ] {
            assert_eq!(account_fix(description), None, "{description}");
        }
    }

    #[test]
    fn server_text_is_cleaned_and_short() {
        let body = format!(
            r#"{{"error":"invalid_grant\u001b[31m","error_description":"Invalid\r\nuser\u001b]0;pwned\u0007 {}"}}"#,
            "x".repeat(5000)
        );
        match parse_reply("u", 401, body.as_bytes(), now()) {
            Err(GrantError::Refused {
                error, description, ..
            }) => {
                assert_eq!(error, "invalid_grant [31m");
                assert!(
                    description.starts_with("Invalid user ]0;pwned xxx"),
                    "{description}"
                );
                assert!(description.chars().count() <= 201, "{}", description.len());
                assert!(!description.contains(['\r', '\n', '\u{1b}', '\u{7}']));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keeps_keycloaks_reasons() {
        let body = br#"{"error":"invalid_grant","error_description":"Invalid user credentials"}"#;
        match parse_reply("u", 401, body, now()) {
            Err(GrantError::Refused {
                status,
                error,
                description,
            }) => {
                assert_eq!((status, error.as_str()), (401, "invalid_grant"));
                assert_eq!(description, "Invalid user credentials");
            }
            other => panic!("{other:?}"),
        }
        match parse_reply("https://gw/t", 503, br#"{"error":"unknown_error"}"#, now()) {
            Err(GrantError::Failed(e)) => assert_eq!(
                e.to_string(),
                "https://gw/t answered HTTP 503 (unknown_error); Keycloak is failing; retry later or check its health on the system"
            ),
            other => panic!("{other:?}"),
        }
        match parse_reply("u", 200, b"not json", now()) {
            Err(GrantError::Failed(Error::BadReply { .. })) => {}
            other => panic!("{other:?}"),
        }
    }
}
