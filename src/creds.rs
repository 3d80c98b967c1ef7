//! Temporary S3 credentials and the validation of the STS reply that carries them.

use crate::secret::Secret;
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

/// Parses and validates a 2xx STS body; the error is a phrase saying what is wrong with it.
///
/// Expiry is checked separately by the caller, which knows the clock and the URL.
pub fn parse_sts_reply(body: &[u8]) -> std::result::Result<Credentials, String> {
    let reply: StsReply = serde_json::from_slice(body)
        .map_err(|_| "its body is not the expected JSON object".to_string())?;
    let fields = reply
        .credentials
        .ok_or_else(|| "its JSON has no \"Credentials\" object".to_string())?;
    let field = |name: &str| -> std::result::Result<String, String> {
        match fields.get(name) {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Some(serde_json::Value::String(_)) => Err(format!("its \"{name}\" is empty")),
            Some(_) => Err(format!("its \"{name}\" is not a string")),
            None => Err(format!("its \"Credentials\" object lacks \"{name}\"")),
        }
    };
    let access_key_id = field("AccessKeyId")?;
    let secret_access_key = Secret::new(field("SecretAccessKey")?);
    let session_token = Secret::new(field("SessionToken")?);
    let endpoint_url = field("EndpointURL")?;
    let raw_expiration = field("Expiration")?;
    let expiration = parse_expiration(&raw_expiration).ok_or_else(|| {
        format!("its \"Expiration\" ({raw_expiration:?}) is not an RFC 3339 time")
    })?;
    Ok(Credentials {
        access_key_id,
        secret_access_key,
        session_token,
        expiration,
        endpoint_url,
    })
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
            parse_sts_reply(b"<html>").unwrap_err(),
            "its body is not the expected JSON object"
        );
        assert_eq!(
            parse_sts_reply(b"{}").unwrap_err(),
            "its JSON has no \"Credentials\" object"
        );
        let missing = body("2030-01-01T00:00:00Z").replace(r#""SessionToken": "ST""#, r#""X": 1"#);
        assert_eq!(
            parse_sts_reply(missing.as_bytes()).unwrap_err(),
            "its \"Credentials\" object lacks \"SessionToken\""
        );
        let empty = body("2030-01-01T00:00:00Z").replace(r#""SK""#, r#""  ""#);
        assert_eq!(
            parse_sts_reply(empty.as_bytes()).unwrap_err(),
            "its \"SecretAccessKey\" is empty"
        );
        let bad_time = body("soon");
        assert!(parse_sts_reply(bad_time.as_bytes())
            .unwrap_err()
            .contains("is not an RFC 3339 time"));
    }

    #[test]
    fn problems_never_quote_secrets() {
        let bad = body("2030-01-01T00:00:00Z").replace(r#""AK""#, "17");
        let problem = parse_sts_reply(bad.as_bytes()).unwrap_err();
        assert!(!problem.contains("SK") && !problem.contains("ST\""));
    }
}
