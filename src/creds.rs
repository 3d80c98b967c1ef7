//! Temporary S3 credentials and the validation of the STS reply that carries them.

use crate::secret::Secret;
use crate::untrusted::{clean, is_visible_ascii};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;

/// One set of temporary credentials as the STS issued them, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Not a secret on its own (S3 logs it), but useful to tell two credential sets apart.
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Secret,
    pub expiration: DateTime<Utc>,
    /// The S3 endpoint the credentials are meant for.
    pub endpoint_url: String,
}

impl Credentials {
    /// `Expiration` as every renderer writes it: RFC 3339 UTC with a `Z`, whole seconds.
    pub fn expiration_rfc3339(&self) -> String {
        self.expiration.to_rfc3339_opts(SecondsFormat::Secs, true)
    }
}

#[derive(Deserialize)]
struct StsReply {
    #[serde(rename = "Credentials")]
    credentials: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Longest credential field we accept. Real values are tens to a few hundred bytes (a
/// session token at most a few KiB); anything longer is not an STS reply.
const MAX_FIELD: usize = 16 * 1024;

/// What is wrong with an STS reply body, as the phrase that ends "... answered HTTP 200
/// but": never quoting a value, which may be a secret (the expiration excepted, cut short
/// and cleaned).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyProblem {
    #[error("its body is not the expected JSON object")]
    NotJson,
    #[error("its JSON has no \"Credentials\" object")]
    NoCredentials,
    #[error("its \"Credentials\" object lacks \"{0}\"")]
    Missing(&'static str),
    #[error("its \"{0}\" is not a string")]
    NotString(&'static str),
    #[error("its \"{0}\" is empty")]
    Empty(&'static str),
    #[error("its \"{0}\" is longer than {MAX_FIELD} bytes")]
    TooLong(&'static str),
    #[error("its \"{0}\" holds a space, a control character or non-ASCII text")]
    NotVisible(&'static str),
    #[error("its \"AccessKeyId\" holds characters other than letters and digits")]
    AccessKeyId,
    #[error("its \"EndpointURL\" is not a plain http(s) URL with a host")]
    EndpointUrl,
    /// `EndpointURL` JSON `null` or missing, which cray-sts sends when its configmap has
    /// no `ext_endpoint_url`: the caller gives it its own sentence, since the fix is on
    /// the STS, not in our settings.
    #[error("its \"EndpointURL\" is null or missing")]
    NoEndpointUrl,
    /// The expiration as given, cleaned and cut short.
    #[error("its \"Expiration\" ({0:?}) is not an RFC 3339 time")]
    Expiration(String),
}

/// Parses and validates a 2xx STS body; the error says what is wrong with it.
///
/// The reply is untrusted: its fields end up in files that SDKs execute
/// (`credential_process`), so a line break in one of them would be code execution. Every
/// field is checked for what it may hold and the whole reply refused otherwise.
/// Expiry is checked separately by the caller, which knows the clock and the URL.
pub fn parse_sts_reply(body: &[u8]) -> Result<Credentials, ReplyProblem> {
    parse_sts_reply_for(body, None)
}

/// The same, for a user whose `s3-endpoint` (already checked with [`is_plain_endpoint`])
/// replaces the STS's `EndpointURL`: the STS's value is then not used, so a null, missing
/// or odd one does not stop the credentials (cray-sts hands out the node network's
/// endpoint, which a host on the customer network cannot reach).
pub fn parse_sts_reply_for(
    body: &[u8],
    s3_endpoint: Option<&str>,
) -> Result<Credentials, ReplyProblem> {
    let reply: StsReply = serde_json::from_slice(body).map_err(|_| ReplyProblem::NotJson)?;
    let fields = ZeroizedStrings(reply.credentials.ok_or(ReplyProblem::NoCredentials)?);
    let fields = &fields.0;
    let field = |name: &'static str| -> Result<String, ReplyProblem> {
        match fields.get(name) {
            Some(serde_json::Value::String(s)) if s.len() > MAX_FIELD => {
                Err(ReplyProblem::TooLong(name))
            }
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Some(serde_json::Value::String(_)) => Err(ReplyProblem::Empty(name)),
            Some(_) => Err(ReplyProblem::NotString(name)),
            None => Err(ReplyProblem::Missing(name)),
        }
    };
    let visible = |name: &'static str| -> Result<String, ReplyProblem> {
        let value = field(name)?;
        if !is_visible_ascii(&value) {
            return Err(ReplyProblem::NotVisible(name));
        }
        Ok(value)
    };
    let access_key_id = field("AccessKeyId")?;
    if !access_key_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ReplyProblem::AccessKeyId);
    }
    let secret_access_key = Secret::new(visible("SecretAccessKey")?);
    let session_token = Secret::new(visible("SessionToken")?);
    let endpoint_url = match (s3_endpoint, fields.get("EndpointURL")) {
        (Some(ours), _) => ours.to_string(),
        (None, None | Some(serde_json::Value::Null)) => return Err(ReplyProblem::NoEndpointUrl),
        (None, Some(_)) => check_endpoint(&field("EndpointURL")?)?,
    };
    let raw_expiration = field("Expiration")?;
    let expiration = parse_expiration(&raw_expiration)
        .ok_or_else(|| ReplyProblem::Expiration(clean(&raw_expiration, 40)))?;
    Ok(Credentials {
        access_key_id,
        secret_access_key,
        session_token,
        expiration,
        endpoint_url,
    })
}

/// The parsed JSON object, whose string values (the secrets among them) are zeroed when
/// it is dropped; the validated copies live on in `Secret`s.
struct ZeroizedStrings(serde_json::Map<String, serde_json::Value>);

impl Drop for ZeroizedStrings {
    fn drop(&mut self) {
        for value in self.0.values_mut() {
            if let serde_json::Value::String(text) = value {
                zeroize::Zeroize::zeroize(text);
            }
        }
    }
}

/// `EndpointURL` must be a plain `http`/`https` URL with a host and nothing after the
/// path (no user info, query or fragment), written in visible ASCII. It is returned as
/// given, since clients compare it textually.
fn check_endpoint(text: &str) -> Result<String, ReplyProblem> {
    if !is_plain_endpoint(text) {
        return Err(ReplyProblem::EndpointUrl);
    }
    Ok(text.to_string())
}

/// Whether `text` may stand as an S3 endpoint in the files: the rule for the STS's
/// `EndpointURL`, shared with the `s3-endpoint` setting so both end up the same in every
/// file and format.
pub fn is_plain_endpoint(text: &str) -> bool {
    // Checked before parsing: a URL parser drops tabs and newlines silently.
    if !is_visible_ascii(text) {
        return false;
    }
    let Ok(url) = url::Url::parse(text) else {
        return false;
    };
    matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none()
        && !text.contains(['?', '#'])
}

/// Accepts RFC 3339 with or without fraction, with `Z` or an offset, and (leniently)
/// a missing offset, which the STS never sends but Python's `isoformat()` can.
pub fn parse_expiration(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(expiration: &str) -> String {
        format!(
            r#"{{"Credentials": {{"AccessKeyId": "AK", "EndpointURL": "http://rgw.local:8080",
            "Expiration": "{expiration}", "SecretAccessKey": "SK", "SessionToken": "ST"}}}}"#
        )
    }

    #[test]
    fn parses_the_documented_reply() {
        let creds = parse_sts_reply(body("2019-10-14T15:15:43.480741+00:00").as_bytes()).unwrap();
        assert_eq!(creds.access_key_id, "AK");
        assert_eq!(creds.secret_access_key.expose(), "SK");
        assert_eq!(creds.session_token.expose(), "ST");
        assert_eq!(creds.endpoint_url, "http://rgw.local:8080");
        assert_eq!(creds.expiration_rfc3339(), "2019-10-14T15:15:43Z");
    }

    #[test]
    fn accepts_every_rfc3339_form() {
        for text in [
            "2019-10-14T15:15:43Z",
            "2019-10-14T15:15:43.5Z",
            "2019-10-14T17:15:43+02:00",
            "2019-10-14T15:15:43.480741+00:00",
            "2019-10-14T15:15:43.480741",
        ] {
            let t = parse_expiration(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(t.timestamp(), 1571066143, "{text}");
        }
        assert!(parse_expiration("tomorrow").is_none());
        assert!(parse_expiration("1571066143").is_none());
    }

    #[test]
    fn names_what_is_wrong() {
        assert_eq!(
            parse_sts_reply(b"<html>").unwrap_err().to_string(),
            "its body is not the expected JSON object"
        );
        assert_eq!(
            parse_sts_reply(b"{}").unwrap_err().to_string(),
            "its JSON has no \"Credentials\" object"
        );
        let missing = body("2030-01-01T00:00:00Z").replace(r#""SessionToken": "ST""#, r#""X": 1"#);
        assert_eq!(
            parse_sts_reply(missing.as_bytes()).unwrap_err().to_string(),
            "its \"Credentials\" object lacks \"SessionToken\""
        );
        let empty = body("2030-01-01T00:00:00Z").replace(r#""SK""#, r#""  ""#);
        assert_eq!(
            parse_sts_reply(empty.as_bytes()).unwrap_err().to_string(),
            "its \"SecretAccessKey\" is empty"
        );
        let bad_time = body("soon");
        assert!(parse_sts_reply(bad_time.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("is not an RFC 3339 time"));
    }

    #[test]
    fn a_null_or_missing_endpoint_is_named_as_such() {
        let null = body("2030-01-01T00:00:00Z").replace(r#""http://rgw.local:8080""#, "null");
        assert_eq!(
            parse_sts_reply(null.as_bytes()).unwrap_err(),
            ReplyProblem::NoEndpointUrl
        );
        let missing =
            body("2030-01-01T00:00:00Z").replace(r#""EndpointURL": "http://rgw.local:8080","#, "");
        assert_eq!(
            parse_sts_reply(missing.as_bytes()).unwrap_err(),
            ReplyProblem::NoEndpointUrl
        );
        let number = body("2030-01-01T00:00:00Z").replace(r#""http://rgw.local:8080""#, "8080");
        assert_eq!(
            parse_sts_reply(number.as_bytes()).unwrap_err(),
            ReplyProblem::NotString("EndpointURL")
        );
    }

    #[test]
    fn the_users_s3_endpoint_wins_over_the_sts_value() {
        let cmn = "https://rgw-vip.cmn.example.com";
        let given = body("2030-01-01T00:00:00Z");
        let null = given.replace(r#""http://rgw.local:8080""#, "null");
        let missing = given.replace(r#""EndpointURL": "http://rgw.local:8080","#, "");
        for reply in [&given, &null, &missing] {
            let creds = parse_sts_reply_for(reply.as_bytes(), Some(cmn)).unwrap();
            assert_eq!(creds.endpoint_url, cmn, "{reply}");
            assert_eq!(creds.access_key_id, "AK");
        }
        assert_eq!(
            parse_sts_reply_for(given.as_bytes(), None)
                .unwrap()
                .endpoint_url,
            "http://rgw.local:8080"
        );
        // The rest of the reply is still checked.
        let bad = given.replace(r#""AK""#, r#""A/K""#);
        assert_eq!(
            parse_sts_reply_for(bad.as_bytes(), Some(cmn)).unwrap_err(),
            ReplyProblem::AccessKeyId
        );
    }

    #[test]
    fn plain_endpoints_are_http_urls_with_a_host_and_nothing_after_the_path() {
        for good in [
            "https://rgw-vip.cmn.example.com",
            "http://rgw-vip.nmn",
            "https://s3.example.com:8443/base/path",
            "http://[::1]:9000",
        ] {
            assert!(is_plain_endpoint(good), "{good}");
        }
        for bad in [
            "ftp://x",
            "https://u:p@x",
            "https://u@x",
            "https://x/?q",
            "https://x/?",
            "https://x/#f",
            "https://",
            "x.example.com",
            "https://x\n.example.com",
            "https://x\t",
            " https://x",
            "",
        ] {
            assert!(!is_plain_endpoint(bad), "{bad:?}");
        }
    }

    /// A reply whose one field is replaced by `value` (a JSON string literal body).
    fn with_field(name: &str, value: &str) -> String {
        let mut reply: serde_json::Value =
            serde_json::from_str(&body("2030-01-01T00:00:00Z")).unwrap();
        reply["Credentials"][name] = serde_json::Value::String(value.into());
        reply.to_string()
    }

    #[test]
    fn refuses_fields_that_would_inject_lines() {
        let planted = "\n[profile x]\ncredential_process = sh -c 'touch /tmp/pwned'";
        for name in [
            "AccessKeyId",
            "SecretAccessKey",
            "SessionToken",
            "EndpointURL",
        ] {
            for value in [
                format!("ok{planted}"),
                "ok\rcredential_process=x".to_string(),
                "ok\u{85}x".to_string(),
                "ok\u{2028}x".to_string(),
                "ok\x1b[2Jx".to_string(),
                "ok x".to_string(),
                "ok\tx".to_string(),
            ] {
                let problem = parse_sts_reply(with_field(name, &value).as_bytes())
                    .expect_err(&format!("{name} = {value:?} must be refused"))
                    .to_string();
                assert!(problem.contains(name), "{problem}");
                assert!(!problem.contains("pwned"), "{problem}");
            }
        }
    }

    #[test]
    fn access_key_ids_are_letters_and_digits() {
        for bad in ["AK/1", "AK+1", "AK=", "AK-1", "ÄK"] {
            assert_eq!(
                parse_sts_reply(with_field("AccessKeyId", bad).as_bytes())
                    .unwrap_err()
                    .to_string(),
                "its \"AccessKeyId\" holds characters other than letters and digits"
            );
        }
        let ok = parse_sts_reply(with_field("AccessKeyId", "KtSRFzmAkoDfgCnBLYt").as_bytes());
        assert_eq!(ok.unwrap().access_key_id, "KtSRFzmAkoDfgCnBLYt");
    }

    #[test]
    fn endpoint_must_be_a_plain_http_url() {
        for good in [
            "http://rgw-vip.nmn",
            "http://rgw.local:8080",
            "https://s3.example.com/base/path",
            "http://[::1]:9000",
        ] {
            let creds = parse_sts_reply(with_field("EndpointURL", good).as_bytes()).unwrap();
            assert_eq!(creds.endpoint_url, good);
        }
        for bad in [
            "rgw.local:8080",
            "ftp://rgw",
            "file:///etc/passwd",
            "http://user:pw@rgw",
            "http://rgw/?x=1",
            "http://rgw/#frag",
            "http://",
            "http://rg\nw",
            "javascript:alert(1)",
        ] {
            assert_eq!(
                parse_sts_reply(with_field("EndpointURL", bad).as_bytes())
                    .unwrap_err()
                    .to_string(),
                "its \"EndpointURL\" is not a plain http(s) URL with a host",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn huge_fields_are_refused_and_not_quoted() {
        let largest = "A".repeat(MAX_FIELD);
        assert!(parse_sts_reply(with_field("SessionToken", &largest).as_bytes()).is_ok());
        let huge = "A".repeat(MAX_FIELD + 1);
        let problem = parse_sts_reply(with_field("SessionToken", &huge).as_bytes())
            .unwrap_err()
            .to_string();
        assert_eq!(problem, "its \"SessionToken\" is longer than 16384 bytes");
        let problem = parse_sts_reply(with_field("Expiration", &"9".repeat(5000)).as_bytes())
            .unwrap_err()
            .to_string();
        assert!(problem.len() < 120, "{problem}");
        let problem = parse_sts_reply(with_field("Expiration", "soon\n\x1b[31m").as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            !problem.contains('\n') && !problem.contains('\x1b'),
            "{problem}"
        );
    }

    #[test]
    fn problems_never_quote_secrets() {
        let marker = "MARKs3cr3tMARK";
        for name in ["SecretAccessKey", "SessionToken"] {
            for value in [
                format!("{marker} tail"),
                format!("{marker}\x01"),
                format!("{marker}\n[x]"),
                format!("{marker}{}", "A".repeat(MAX_FIELD)),
            ] {
                let problem = parse_sts_reply(with_field(name, &value).as_bytes())
                    .expect_err(&format!("{name} = {value:?} must be refused"))
                    .to_string();
                assert!(problem.contains(name), "{problem}");
                assert!(!problem.contains(marker), "{problem}");
            }
        }
    }
}
