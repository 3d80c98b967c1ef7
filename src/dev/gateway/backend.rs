//! Minting through a real STS: a SigV4-signed `AssumeRole`, as cray-sts does against Ceph
//! RGW, so the credentials the emulator hands out open a real S3 server (moto in the
//! tests, or RGW/MinIO by hand) that checks their signatures.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials as SigningKey;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use chrono::{DateTime, Utc};
use zeroize::Zeroize;

use super::mint::{CredentialMinter, MintFuture};
use super::random::random_uuid;
use crate::creds::Credentials;
use crate::secret::Secret;

/// Region used to sign `AssumeRole` when none is given; RGW and moto accept any region,
/// and this is what AWS SDKs fall back to.
pub const DEFAULT_BACKEND_REGION: &str = "us-east-1";

/// `DurationSeconds` of every `AssumeRole`: one hour, what cray-sts asks RGW for (and
/// the default maximum of an RGW role, above which RGW refuses with 400
/// `InvalidArgument` rather than capping).
pub const ASSUME_ROLE_SECONDS: u64 = 3600;

/// Refuses a `--lifetime` the backend cannot honour: the credentials it mints live one
/// hour, so a longer advertised lifetime would hand out credentials that expire early.
/// Without a backend, random credentials may live as long as a demo wants.
pub fn check_lifetime(lifetime: Duration) -> Result<(), String> {
    if lifetime.as_secs() > ASSUME_ROLE_SECONDS {
        return Err(format!(
            "--lifetime {} is longer than the one hour a backend STS grants (cray-sts asks RGW for {ASSUME_ROLE_SECONDS} seconds, and RGW refuses more); use --lifetime 1h or less with --backend-sts.",
            humantime::format_duration(lifetime)
        ));
    }
    Ok(())
}
/// Limit for connecting and for one `AssumeRole` round trip: botocore's 60 s, as cray-sts
/// waits. A hung backend therefore meets the gateway's shorter timeout first and gets
/// Envoy's 504, as on CSM.
const BACKEND_TIMEOUT: Duration = Duration::from_secs(60);

/// A real STS that mints the credentials the emulated cray-sts returns, the way cray-sts
/// itself asks Ceph RGW: `AssumeRole` on one fixed role with one service user's keys. With
/// it, `PUT /apis/sts/token` hands out credentials that a signature-checking S3 accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendSts {
    /// The STS endpoint that answers the Query API (`POST /` with `Action=AssumeRole`),
    /// e.g. `http://127.0.0.1:5000` for moto or the RGW URL.
    pub url: String,
    /// Access key id of the user that may assume the role (cray-sts's own RGW user).
    pub access_key: String,
    /// Secret key of that user; never printed, not even by `{:?}`.
    pub secret_key: crate::secret::Secret,
    /// The role assumed for every caller (cray-sts uses one role with `s3:*`).
    pub role_arn: String,
    /// Region in the SigV4 credential scope.
    pub region: String,
    /// Returned to callers as `EndpointURL`: the S3 server these credentials open
    /// (moto and RGW serve S3 and STS on the same port, so usually equal to `url`).
    pub s3_endpoint: String,
}

impl BackendSts {
    /// A backend in region [`DEFAULT_BACKEND_REGION`] whose S3 endpoint is the STS URL
    /// itself, which is how moto and RGW are set up.
    pub fn new(
        url: impl Into<String>,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
        role_arn: impl Into<String>,
    ) -> BackendSts {
        let url = url.into();
        BackendSts {
            s3_endpoint: url.clone(),
            url,
            access_key: access_key.into(),
            secret_key: crate::secret::Secret::new(secret_key),
            role_arn: role_arn.into(),
            region: DEFAULT_BACKEND_REGION.to_owned(),
        }
    }
}

/// Mints by calling `AssumeRole` on a [`BackendSts`].
///
/// It asks for one hour ([`ASSUME_ROLE_SECONDS`]), as cray-sts does, but advertises
/// `Expiration = min(backend's expiration, now + lifetime)`: tests use short lifetimes to
/// watch clients refresh, and the credentials stay valid at least as long as advertised
/// (a lifetime above the hour is refused when the minter is made).
pub(crate) struct AssumeRoleMinter {
    backend: BackendSts,
    /// The parsed, normalised STS URL (with a path), signed and sent exactly as is.
    url: String,
    lifetime: Duration,
    client: reqwest::Client,
}

impl AssumeRoleMinter {
    /// Checks the URL and prepares the HTTP client (rustls, no proxy: the backend is a
    /// local test S3 or a lab RGW, reached directly).
    pub fn new(backend: BackendSts, lifetime: Duration) -> Result<AssumeRoleMinter, String> {
        check_lifetime(lifetime)?;
        let url = url::Url::parse(&backend.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                format!(
                    "the backend STS URL {:?} is not an absolute http(s) URL",
                    backend.url
                )
            })?;
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .no_proxy()
            .timeout(BACKEND_TIMEOUT)
            .connect_timeout(BACKEND_TIMEOUT)
            .user_agent(concat!("s3credsfs-dev-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client for the backend STS: {e}"))?;
        Ok(AssumeRoleMinter {
            url: url.to_string(),
            backend,
            lifetime,
            client,
        })
    }

    async fn assume_role(&self) -> Result<Credentials, String> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "AssumeRole")
            .append_pair("Version", "2011-06-15")
            .append_pair("RoleArn", &self.backend.role_arn)
            .append_pair("RoleSessionName", &random_uuid())
            .append_pair("DurationSeconds", &ASSUME_ROLE_SECONDS.to_string())
            .finish();
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let signed = self.sign(&body, content_type)?;
        let mut request = self
            .client
            .post(&self.url)
            .header("content-type", content_type)
            .body(body);
        for (name, value) in &signed {
            request = request.header(*name, value.as_str());
        }
        let requested_at = Utc::now();
        let at = &self.backend.url;
        let reply = request
            .send()
            .await
            .map_err(|e| format!("AssumeRole at {at} failed: {}", error_chain(&e)))?;
        let status = reply.status();
        let mut text = reply
            .text()
            .await
            .map_err(|e| format!("AssumeRole at {at}: cannot read the reply: {e}"))?;
        let result = if status.is_success() {
            parse_assume_role(&text).map(|mut creds| {
                creds.endpoint_url = self.backend.s3_endpoint.clone();
                let advertised = requested_at
                    + chrono::Duration::from_std(self.lifetime)
                        .unwrap_or_else(|_| chrono::Duration::days(3650));
                creds.expiration = creds.expiration.min(advertised);
                creds
            })
        } else {
            Err(describe_error(status.as_u16(), &text))
        };
        text.zeroize();
        if let Ok(creds) = &result {
            tracing::info!(
                access_key = %creds.access_key_id,
                expiration = %creds.expiration.to_rfc3339(),
                "dev-gateway: AssumeRole at {at} minted credentials"
            );
        }
        result.map_err(|why| format!("AssumeRole at {at}: {why}"))
    }

    /// SigV4 headers (`authorization`, `x-amz-date`) for the form POST to the STS URL.
    fn sign(&self, body: &str, content_type: &str) -> Result<Vec<(&'static str, String)>, String> {
        let identity = SigningKey::new(
            self.backend.access_key.as_str(),
            self.backend.secret_key.expose(),
            None,
            None,
            "s3credsfs-dev-gateway",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.backend.region)
            .name("sts")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("cannot sign AssumeRole: {e}"))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            self.url.as_str(),
            [("content-type", content_type)].into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| format!("cannot sign AssumeRole for {}: {e}", self.url))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| format!("cannot sign AssumeRole: {e}"))?
            .into_parts();
        let (headers, _params) = instructions.into_parts();
        Ok(headers
            .iter()
            .map(|h| (h.name(), h.value().to_owned()))
            .collect())
    }
}

impl CredentialMinter for AssumeRoleMinter {
    fn mint(&self) -> MintFuture<'_> {
        Box::pin(self.assume_role())
    }
}

/// A transport error with its causes ("error sending request: connection refused").
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut current = err.source();
    while let Some(cause) = current {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        current = cause.source();
    }
    text
}

/// The credentials in an `AssumeRoleResponse`.
fn parse_assume_role(xml: &str) -> Result<Credentials, String> {
    let creds = element(xml, "AssumeRoleResult")
        .and_then(|result| element(result, "Credentials"))
        .ok_or("the reply has no AssumeRoleResult/Credentials")?;
    let field = |name: &str| {
        element(creds, name)
            .map(unescape)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("the reply's Credentials lack {name}"))
    };
    let expiration = field("Expiration")?;
    let expiration = DateTime::parse_from_rfc3339(&expiration)
        .map_err(|_| format!("the reply's Expiration {expiration:?} is not an RFC 3339 time"))?
        .with_timezone(&Utc);
    Ok(Credentials {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: Secret::new(field("SecretAccessKey")?),
        session_token: Secret::new(field("SessionToken")?),
        endpoint_url: String::new(),
        expiration,
    })
}

/// A one-line description of a refusal, from the STS error document (`Code`, `Message`)
/// and never the whole body.
fn describe_error(status: u16, xml: &str) -> String {
    let code = element(xml, "Code").map(unescape);
    let message = element(xml, "Message").map(unescape);
    let mut text = format!("HTTP {status}");
    for part in [code, message].into_iter().flatten() {
        let part: String = part.chars().take(200).collect();
        text.push_str(": ");
        text.push_str(part.trim());
    }
    text
}

/// The text between `<name>` and the next `</name>`. Enough for the flat, attribute-free
/// documents STS returns; not a general XML parser.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(&xml[start..end])
}

/// Resolves XML's predefined and numeric character references.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').and_then(|semi| {
            let entity = &rest[1..semi];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .map(|hex| u32::from_str_radix(hex, 16))
                    .or_else(|| entity.strip_prefix('#').map(str::parse::<u32>))
                    .and_then(Result::ok)
                    .and_then(char::from_u32),
            }?;
            Some((c, semi + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPLY: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
      <SecretAccessKey>wJal/rXUtn+FEMI&amp;K7</SecretAccessKey>
      <SessionToken>FQoGZXIvYXdzE&#61;&#x3D;</SessionToken>
      <Expiration>2030-01-02T03:04:05.123Z</Expiration>
    </Credentials>
    <AssumedRoleUser><Arn>arn:aws:sts::123:assumed-role/r/s</Arn></AssumedRoleUser>
  </AssumeRoleResult>
</AssumeRoleResponse>"#;

    #[test]
    fn parses_an_assume_role_reply() {
        let c = parse_assume_role(REPLY).unwrap();
        assert_eq!(c.access_key_id, "ASIAEXAMPLE");
        assert_eq!(c.secret_access_key.expose(), "wJal/rXUtn+FEMI&K7");
        assert_eq!(c.session_token.expose(), "FQoGZXIvYXdzE==");
        assert_eq!(c.expiration.to_rfc3339(), "2030-01-02T03:04:05.123+00:00");
    }

    #[test]
    fn incomplete_replies_are_errors() {
        let no_token = REPLY.replace("<SessionToken>FQoGZXIvYXdzE&#61;&#x3D;</SessionToken>", "");
        let err = parse_assume_role(&no_token).err().unwrap();
        assert!(err.contains("SessionToken"), "{err}");
        let bad_time = REPLY.replace("2030-01-02T03:04:05.123Z", "tomorrow");
        assert!(parse_assume_role(&bad_time).is_err());
        assert!(parse_assume_role("<html>oops</html>").is_err());
    }

    #[test]
    fn errors_show_code_and_message_only() {
        let xml = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>\
                   <Message>User: arn:aws:iam::1:user/u is not authorized</Message></Error>\
                   </ErrorResponse>";
        assert_eq!(
            describe_error(403, xml),
            "HTTP 403: AccessDenied: User: arn:aws:iam::1:user/u is not authorized"
        );
        assert_eq!(describe_error(502, "<html>bad gateway</html>"), "HTTP 502");
    }

    #[test]
    fn unescape_leaves_stray_ampersands() {
        assert_eq!(
            unescape("a &amp b &lt;c&gt; &#9999999999; &"),
            "a &amp b <c> &#9999999999; &"
        );
    }

    #[test]
    fn lifetimes_above_the_hour_asked_for_are_refused() {
        let backend = BackendSts::new("http://127.0.0.1:1", "AK", "SK", "arn:aws:iam::1:role/r");
        let minter = |secs| AssumeRoleMinter::new(backend.clone(), Duration::from_secs(secs));
        assert!(minter(60).is_ok());
        assert!(minter(3600).is_ok());
        let err = minter(3601).err().unwrap();
        assert!(
            err.starts_with("--lifetime 1h 1s is longer than the one hour")
                && err.contains("--backend-sts"),
            "{err}"
        );
        assert_eq!(minter(60).unwrap().url, "http://127.0.0.1:1/");
        assert!(AssumeRoleMinter::new(
            BackendSts::new("ftp://x", "AK", "SK", "r"),
            Duration::from_secs(60)
        )
        .is_err());
    }

    #[test]
    fn debug_hides_the_secret_key() {
        let shown = format!(
            "{:?}",
            BackendSts::new("http://h", "AKID", "very-secret", "arn")
        );
        assert!(
            shown.contains("AKID") && !shown.contains("very-secret"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn unreachable_backend_is_a_plain_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let backend = BackendSts::new(
            format!("http://127.0.0.1:{port}"),
            "AK",
            "very-secret",
            "arn:aws:iam::1:role/r",
        );
        let minter = AssumeRoleMinter::new(backend, Duration::from_secs(60)).unwrap();
        let err = minter.mint().await.err().unwrap();
        assert!(err.starts_with("AssumeRole at http://127.0.0.1:"), "{err}");
        assert!(!err.contains("very-secret"));
    }
}
