//! The STS call (`PUT /apis/sts/token`) and the whole pipeline: JWT → STS → validated
//! credentials, with one retry on a fresh token after 401/403.

use crate::auth::Authenticator;
use crate::clock::{SystemTime, TimeSource};
use crate::config::Settings;
use crate::creds::{parse_sts_reply_for, Credentials, ReplyProblem};
use crate::error::{Error, Result};
use crate::fetch::Fetch;
use crate::http::{build_client, exchange};
use crate::secret::Secret;
use crate::untrusted::{clean, MAX_QUOTED};
use chrono::Utc;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// What one STS call came to: credentials, or a rejection of the token.
#[derive(Debug)]
pub enum StsOutcome {
    Issued(Credentials),
    /// 401/403: the token was refused; the text is the gateway's short reason.
    Rejected {
        status: u16,
        reason: String,
    },
}

/// Talks to the STS endpoint.
pub struct StsClient {
    http: reqwest::Client,
    url: String,
    timeout: Duration,
    /// Judges whether the issued credentials have already expired.
    time: Arc<dyn TimeSource>,
    /// The user's `s3-endpoint`, which replaces the STS's `EndpointURL` here, where the
    /// credentials come out of the STS step, so every file and format gets it.
    s3_endpoint: Option<String>,
}

#[derive(serde::Deserialize)]
struct Problem {
    detail: Option<String>,
}

/// Judges an STS reply; split out so tests can feed it bytes. `s3_endpoint`, the user's
/// setting, replaces the reply's `EndpointURL`.
pub fn interpret(
    url: &str,
    status: u16,
    body: &[u8],
    now: chrono::DateTime<Utc>,
    s3_endpoint: Option<&str>,
) -> Result<StsOutcome> {
    match status {
        200..=299 => {
            let creds =
                parse_sts_reply_for(body, s3_endpoint).map_err(|problem| match problem {
                    ReplyProblem::NoEndpointUrl => Error::NoEndpointUrl {
                        url: url.to_string(),
                    },
                    _ => Error::BadReply {
                        url: url.to_string(),
                        status,
                        problem: problem.to_string(),
                    },
                })?;
            if creds.expiration <= now {
                return Err(Error::Expired {
                    url: url.to_string(),
                    expiration: creds.expiration_rfc3339(),
                });
            }
            Ok(StsOutcome::Issued(creds))
        }
        401 | 403 => {
            let reason = clean(&String::from_utf8_lossy(body), 80);
            Ok(StsOutcome::Rejected { status, reason })
        }
        _ => {
            let detail = serde_json::from_slice::<Problem>(body)
                .ok()
                .and_then(|p| p.detail)
                .map(|d| format!(" ({})", clean(&d, MAX_QUOTED)))
                .unwrap_or_default();
            let fix = if status >= 500 {
                "the STS or its Ceph backend is failing; retry later or check the cray-sts service"
            } else {
                "check --sts-url and --api-gateway"
            };
            Err(Error::HttpStatus {
                url: url.to_string(),
                status,
                detail,
                fix: fix.to_string(),
            })
        }
    }
}

impl StsClient {
    /// A client for the configured STS URL, reading the time from `time`.
    pub fn new(http: reqwest::Client, settings: &Settings, time: Arc<dyn TimeSource>) -> Self {
        StsClient {
            http,
            url: settings.sts_url.to_string(),
            timeout: settings.timeout,
            time,
            s3_endpoint: settings.s3_endpoint.clone(),
        }
    }

    /// One `PUT` with the JWT.
    pub async fn put_token(&self, jwt: &Secret) -> Result<StsOutcome> {
        tracing::debug!(url = %self.url, "requesting S3 credentials");
        let request = self
            .http
            .put(&self.url)
            .bearer_auth(jwt.expose())
            .header(reqwest::header::CONTENT_LENGTH, 0);
        let (status, body) = exchange(&self.url, request, self.timeout).await?;
        interpret(
            &self.url,
            status,
            &body,
            self.time.now(),
            self.s3_endpoint.as_deref(),
        )
    }
}

/// The most gateway requests one refresh makes: a refresh-token grant refused and a
/// password grant instead, the STS call, and after a 401/403 the same again.
pub const MAX_REQUESTS_PER_REFRESH: u32 = 6;

/// The time a whole refresh may take: every request it can make, each within
/// `--timeout`. A refresh that outlasts it is reported as slow, not as one request's
/// timeout.
pub fn refresh_budget(request_timeout: Duration) -> Duration {
    request_timeout.saturating_mul(MAX_REQUESTS_PER_REFRESH)
}

/// Keycloak → JWT → STS → credentials: what `fetch` runs once and the mount on refresh.
pub struct Pipeline {
    auth: Authenticator,
    sts: StsClient,
    sts_url: String,
}

impl Pipeline {
    /// Builds the HTTP client and reads the login secret (may prompt); on the system clock.
    pub fn new(settings: &Settings) -> Result<Self> {
        Self::with_time(settings, Arc::new(SystemTime))
    }

    /// The same on `time`: token reuse and the credentials' expiry are judged by it (tests:
    /// a [`crate::clock::ManualClock`]).
    pub fn with_time(settings: &Settings, time: Arc<dyn TimeSource>) -> Result<Self> {
        if settings.insecure {
            eprintln!("s3credsfs: warning: --insecure is set: TLS certificates are NOT verified, so anyone on the network path can impersonate the gateway");
        }
        let http = build_client(settings)?;
        Ok(Pipeline {
            auth: Authenticator::new(settings, http.clone(), time.clone())?,
            sts: StsClient::new(http, settings, time),
            sts_url: settings.sts_url.to_string(),
        })
    }

    /// Keeps refused passwords across runs in the user's state directory (see
    /// [`crate::auth::refusals`]), so that a restarted command does not send one again:
    /// what every command that logs in does. Without `HOME` or `XDG_STATE_HOME`, nothing.
    pub fn remembering_refusals(mut self) -> Self {
        if let Some(memory) = crate::auth::refusals::RefusalMemory::from_env() {
            self.auth.remember_refusals(memory);
        }
        self
    }

    /// The user behind the current token, for status output.
    pub fn user(&self) -> Option<String> {
        self.auth.user()
    }

    /// Drops the cached login (access and refresh tokens), so the next fetch logs in
    /// anew and picks up a changed password or new roles.
    pub async fn forget_login(&self) {
        self.auth.forget().await;
    }

    /// Whether the password file or command now gives another password than the one in
    /// use (which it then replaces): after Keycloak refused it, the only reason to log in
    /// again without being asked.
    pub async fn password_changed(&self) -> bool {
        self.auth.reload_password().await
    }

    /// Obtains fresh credentials; on 401/403 gets a new token and retries once.
    pub async fn fetch(&self) -> Result<Credentials> {
        let token = self.auth.token(false).await?;
        // The rejection's text is not logged: a gateway or proxy may echo the header.
        let status = match self.sts.put_token(&token).await? {
            StsOutcome::Issued(creds) => return Ok(self.issued(creds)),
            StsOutcome::Rejected { status, .. } => status,
        };
        tracing::info!(
            status,
            "the gateway refused the token; retrying once with a new one"
        );
        let token = self.auth.token(true).await?;
        match self.sts.put_token(&token).await? {
            StsOutcome::Issued(creds) => Ok(self.issued(creds)),
            StsOutcome::Rejected { status, .. } => Err(Error::StsForbidden {
                url: self.sts_url.clone(),
                status,
            }),
        }
    }

    fn issued(&self, creds: Credentials) -> Credentials {
        tracing::info!(
            access_key_id = %creds.access_key_id,
            expiration = %creds.expiration_rfc3339(),
            "obtained S3 credentials"
        );
        creds
    }
}

impl Fetch for Pipeline {
    fn fetch(&self) -> impl Future<Output = Result<Credentials>> + Send {
        Pipeline::fetch(self)
    }

    async fn fetch_with_new_login(&self) -> Result<Credentials> {
        self.forget_login().await;
        Pipeline::fetch(self).await
    }

    async fn login_changed(&self) -> bool {
        self.password_changed().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After a refusal the cache logs in again only when the password file changed: the
    /// pipeline says so once per change, and not for the password already in use.
    #[tokio::test]
    async fn a_changed_password_file_is_noticed_once() {
        use crate::config::{resolve, Context, Layer, RawValue, Setting, Source};
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        let write = |text: &str| {
            std::fs::write(&file, text).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        };
        write("first");
        let mut layer = Layer::new();
        for (name, value) in [
            ("api-gateway", "https://gw.example"),
            ("username", "vers"),
            ("password-file", file.to_str().unwrap()),
        ] {
            let key = Setting::from_name(name).unwrap();
            let source = Source::Flag(key.flag());
            let value = value.to_string();
            layer.insert(key, RawValue { value, source });
        }
        let settings = resolve(&layer, &Context::default()).unwrap();
        let pipeline = Pipeline::new(&settings).unwrap();
        assert!(!Fetch::login_changed(&pipeline).await, "nothing changed");
        write("second");
        assert!(Fetch::login_changed(&pipeline).await, "the file changed");
        assert!(!pipeline.password_changed().await, "already in use");
    }

    fn now() -> chrono::DateTime<Utc> {
        chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    const GOOD: &str = r#"{"Credentials": {"AccessKeyId": "AK", "EndpointURL": "http://rgw",
        "Expiration": "2027-01-15T08:00:00.000001+00:00", "SecretAccessKey": "SK", "SessionToken": "ST"}}"#;

    #[test]
    fn the_refresh_budget_covers_every_request_of_a_refresh() {
        assert_eq!(
            refresh_budget(Duration::from_secs(30)),
            Duration::from_secs(180)
        );
        assert_eq!(refresh_budget(Duration::MAX), Duration::MAX);
    }

    #[test]
    fn accepts_200_and_201() {
        for status in [200, 201] {
            assert!(matches!(
                interpret("u", status, GOOD.as_bytes(), now(), None),
                Ok(StsOutcome::Issued(_))
            ));
        }
    }

    #[test]
    fn refuses_expired_credentials() {
        let later = chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        let err = interpret(
            "https://gw/apis/sts/token",
            201,
            GOOD.as_bytes(),
            later,
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the STS at https://gw/apis/sts/token returned credentials that expired at 2027-01-15T08:00:00Z; \
             check this host's clock and the gateway's (`date -u` on both)"
        );
    }

    #[test]
    fn server_errors_carry_problem_detail() {
        let body = br#"{"detail": "The server encountered an internal error", "status": 500, "title": "Internal Server Error", "type": "about:blank"}"#;
        let err = interpret("https://gw/t", 500, body, now(), None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "https://gw/t answered HTTP 500 (The server encountered an internal error); the STS or its Ceph \
             backend is failing; retry later or check the cray-sts service"
        );
        let err = interpret("https://gw/t", 500, b"\"Error\"", now(), None)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("https://gw/t answered HTTP 500; "), "{err}");
    }

    #[test]
    fn rejections_are_retryable_outcomes() {
        match interpret("u", 401, b"Jwt is expired", now(), None).unwrap() {
            StsOutcome::Rejected { status, reason } => {
                assert_eq!((status, reason.as_str()), (401, "Jwt is expired"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_s3_endpoint_setting_replaces_the_sts_endpoint_or_its_absence() {
        let cmn = "https://rgw-vip.cmn.example.com";
        match interpret("u", 200, GOOD.as_bytes(), now(), Some(cmn)).unwrap() {
            StsOutcome::Issued(creds) => assert_eq!(creds.endpoint_url, cmn),
            other => panic!("{other:?}"),
        }
        let null = GOOD.replace(r#""http://rgw""#, "null");
        match interpret("u", 200, null.as_bytes(), now(), Some(cmn)).unwrap() {
            StsOutcome::Issued(creds) => assert_eq!(creds.endpoint_url, cmn),
            other => panic!("{other:?}"),
        }
        let err = interpret(
            "https://gw/apis/sts/token",
            200,
            null.as_bytes(),
            now(),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("set s3-endpoint"), "{err}");
        assert!(err.contains("ext_endpoint_url"), "{err}");
    }
}
