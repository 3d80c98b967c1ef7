//! The one HTTP client for the gateway, and the translation of transport failures into
//! the pipeline's plain-sentence errors.
//!
//! Every request carries a secret (a password form, a client secret, a Bearer JWT), so the
//! client follows no redirect (a redirect would re-send it to wherever `Location` points),
//! never sends loopback traffic through a proxy, and reads at most [`MAX_REPLY`] bytes.

use crate::config::Settings;
use crate::error::{Cause, Error, Result};
use crate::proxy::ProxyEnv;
use crate::untrusted::{clean, MAX_QUOTED};
use std::time::Duration;
use zeroize::Zeroizing;

/// The largest reply body read from the gateway; real replies are a few KiB.
pub const MAX_REPLY: usize = 1024 * 1024;

/// Builds the client every gateway request uses: rustls, system roots plus `--ca-file`,
/// `--timeout` per request, no redirects, proxies from the environment but never for
/// loopback.
pub fn build_client(settings: &Settings) -> Result<reqwest::Client> {
    let proxies = ProxyEnv::from_env();
    // reqwest's `NoProxy` is ignored by custom proxies, so `ProxyEnv` applies NO_PROXY.
    let proxy = reqwest::Proxy::custom(move |url| proxies.proxy_for(url));
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .proxy(proxy)
        .user_agent(concat!("s3credsfs/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &settings.ca_file {
        // Whoever can write the CA bundle can impersonate the gateway.
        let pem = crate::files::read_checked(
            path,
            "CA bundle",
            "fix --ca-file",
            crate::files::Kind::Steering,
        )?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                Error::Config(format!(
                    "{} holds no PEM certificate; give --ca-file a PEM CA bundle",
                    path.display()
                ))
            })?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if settings.insecure {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder
        .build()
        .map_err(|e| Error::Config(format!("cannot set up the HTTP client: {e}")))
}

/// What kind of transport failure an error is, told by the types in its cause chain
/// (never by its text, which changes between library versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Timeout,
    Tls,
    /// A TLS handshake answered by plain http (an `https://` URL at an http port).
    PlainHttp,
    Unreachable,
}

/// Every cause in `err`'s chain, including the error an `io::Error` wraps (its own
/// `source()` skips that one).
fn causes<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut found = Vec::new();
    let mut pending = vec![err];
    while let Some(cause) = pending.pop() {
        found.push(cause);
        if let Some(source) = cause.source() {
            pending.push(source);
        }
        if let Some(inner) = cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            pending.push(inner);
        }
    }
    found
}

fn failure_of(err: &reqwest::Error) -> Failure {
    failure_in(err, err.is_timeout())
}

fn failure_in(err: &(dyn std::error::Error + 'static), timed_out: bool) -> Failure {
    if timed_out {
        return Failure::Timeout;
    }
    let causes = causes(err);
    // A plain-http server answers a ClientHello with `HTTP/1.1 400`, whose first byte is
    // no TLS record type.
    let plain_http = causes.iter().any(|c| {
        matches!(
            c.downcast_ref::<rustls::Error>(),
            Some(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            ))
        )
    });
    if plain_http {
        return Failure::PlainHttp;
    }
    if causes.iter().any(|c| c.is::<rustls::Error>()) {
        return Failure::Tls;
    }
    let timed_out = causes.iter().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    });
    if timed_out {
        Failure::Timeout
    } else {
        Failure::Unreachable
    }
}

/// Turns a transport error into one sentence (unreachable, TLS or timeout) that keeps
/// `err` as its source. The sentence names `url`; `err`'s own copy of the requested URL
/// is dropped, so no query string or path that ever held a secret can reach a message.
pub fn classify(url: &str, err: reqwest::Error, timeout: Duration) -> Error {
    let url = url.to_string();
    let failure = failure_of(&err);
    let cause = Cause::new(err.without_url());
    match failure {
        Failure::Timeout => Error::Timeout {
            url,
            timeout: humantime::format_duration(timeout).to_string(),
            cause,
        },
        Failure::Tls => Error::Tls { url, cause },
        Failure::PlainHttp => Error::PlainHttp {
            plain: plain_origin(&url),
            url,
        },
        Failure::Unreachable => Error::Unreachable { url, cause },
    }
}

/// `http://host:port` for an `https://host:port/...` URL: what to write instead when that
/// port speaks plain http.
fn plain_origin(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or_default();
            match parsed.port_or_known_default() {
                Some(port) => format!("http://{host}:{port}"),
                None => format!("http://{host}"),
            }
        }
        Err(_) => "http://".into(),
    }
}

/// Sends a request and reads its reply: the status and at most [`MAX_REPLY`] bytes of
/// body (zeroed when dropped: it may hold tokens). A redirect is an error naming where
/// it pointed; nothing is re-sent there.
pub async fn exchange(
    url: &str,
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<(u16, Zeroizing<Vec<u8>>)> {
    let started = std::time::Instant::now();
    let outcome = exchange_untimed(url, request, timeout).await;
    crate::metrics::observe_request(started.elapsed());
    outcome
}

async fn exchange_untimed(
    url: &str,
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<(u16, Zeroizing<Vec<u8>>)> {
    let mut response = request
        .send()
        .await
        .map_err(|e| classify(url, e, timeout))?;
    let status = response.status().as_u16();
    crate::skew::check(
        response.url().host_str().unwrap_or_default(),
        response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok()),
    );
    if response.status().is_redirection() {
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|v| clean(&String::from_utf8_lossy(v.as_bytes()), MAX_QUOTED))
            .unwrap_or_else(|| "nowhere".into());
        return Err(Error::Redirected {
            url: url.to_string(),
            status,
            location,
        });
    }
    let too_large = || Error::TooLarge {
        url: url.to_string(),
        limit: MAX_REPLY,
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_REPLY as u64)
    {
        return Err(too_large());
    }
    let mut body = Zeroizing::new(Vec::new());
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| classify(url, e, timeout))?
    {
        if body.len() + chunk.len() > MAX_REPLY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn failures_are_told_by_type_not_text() {
        let tls = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert_eq!(failure_in(&tls, false), Failure::Tls);
        let wrapped = io::Error::other(tls);
        assert_eq!(
            failure_in(&wrapped, false),
            Failure::Tls,
            "found under two wrappers"
        );
        let timed_out = io::Error::new(io::ErrorKind::TimedOut, "no answer");
        assert_eq!(failure_in(&timed_out, false), Failure::Timeout);
        // Words are not types: a refused connection that mentions certificates and
        // timing out is still unreachable.
        let refused = io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "certificate handshake timed out",
        );
        assert_eq!(failure_in(&refused, false), Failure::Unreachable);
        assert_eq!(failure_in(&refused, true), Failure::Timeout);
        let plain = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        );
        assert_eq!(failure_in(&plain, false), Failure::PlainHttp);
        let other = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::MissingData("x")),
        );
        assert_eq!(failure_in(&other, false), Failure::Tls);
        assert_eq!(
            plain_origin("https://gw.example/t"),
            "http://gw.example:443"
        );
        assert_eq!(plain_origin("https://[::1]:8443/t"), "http://[::1]:8443");
    }

    #[tokio::test]
    async fn a_refused_connection_keeps_its_cause_but_not_the_requested_url() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let requested = format!("http://127.0.0.1:{port}/token?code=query-secret");
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let err = client.get(&requested).send().await.unwrap_err();
        let shown = format!("http://127.0.0.1:{port}/token");
        let error = classify(&shown, err, Duration::from_secs(5));
        assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot reach {shown} (Connection refused")),
            "{error}"
        );
        let mut kinds = Vec::new();
        let mut seen = vec![format!("{error} {error:?}")];
        let mut link = std::error::Error::source(&error);
        assert!(link.is_some(), "the cause is kept");
        while let Some(cause) = link {
            seen.push(format!("{cause} {cause:?}"));
            if let Some(io) = cause.downcast_ref::<io::Error>() {
                kinds.push(io.kind());
            }
            link = cause.source();
        }
        assert!(
            kinds.contains(&io::ErrorKind::ConnectionRefused),
            "{kinds:?} in {seen:#?}"
        );
        assert!(
            seen.iter().all(|text| !text.contains("query-secret")),
            "{seen:#?}"
        );
        // A clone keeps the cause, and equality compares the causes: the same URL with
        // another cause is another error.
        let copy = error.clone();
        assert_eq!(copy, error);
        assert_eq!(copy.to_string(), error.to_string());
        assert!(
            std::error::Error::source(&copy).is_some(),
            "the clone keeps the cause"
        );
        let other = Error::Unreachable {
            url: shown.clone(),
            cause: Cause::new(io::Error::other("another cause")),
        };
        assert_ne!(other, error);
    }

    /// Settings as these flags give them, against a gateway that is never reached (the
    /// login is a variable's token, never read here).
    fn settings_with(flags: &[(&str, &str)]) -> Settings {
        use crate::config::{resolve, Context, Layer, RawValue, Setting, Source};
        let mut layer = Layer::new();
        let base = [
            ("api-gateway", "http://127.0.0.1:9"),
            ("token-env", "S3CREDSFS_UNSET"),
        ];
        for (name, value) in base.iter().chain(flags) {
            let key = Setting::from_name(name).unwrap();
            let source = Source::Flag(key.flag());
            let value = value.to_string();
            layer.insert(key, RawValue { value, source });
        }
        resolve(&layer, &Context::default()).unwrap()
    }

    /// Every request carries a secret, so a redirect is not followed: the 302 itself is
    /// the answer, and the place it names is never asked.
    #[tokio::test]
    async fn the_client_follows_no_redirect() {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = asked.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(2) {
                let stream = stream.unwrap();
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                seen.lock().unwrap().push(line.trim_end().to_string());
                let mut header = String::new();
                while reader.read_line(&mut header).unwrap_or(0) > 2 {
                    header.clear();
                }
                let reply = if line.contains("/moved") {
                    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                } else {
                    "HTTP/1.1 302 Found\r\nLocation: /moved\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                };
                let mut out = stream;
                let _ = out.write_all(reply.as_bytes());
            }
        });
        let client = build_client(&settings_with(&[])).unwrap();
        let reply = client
            .post(format!("http://{addr}/token"))
            .body("password=secret")
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 302);
        assert_eq!(*asked.lock().unwrap(), ["POST /token HTTP/1.1"]);
    }

    /// `--ca-file` must hold a PEM certificate: a real CA is taken, anything else gets the
    /// sentence that names the file and the fix.
    #[test]
    fn a_ca_file_must_hold_a_pem_certificate() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            path
        };
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let good = write("ca.pem", &ca.pem());
        assert!(build_client(&settings_with(&[("ca-file", good.to_str().unwrap())])).is_ok());
        let bad = write("not.pem", "not a certificate\n");
        let refused = build_client(&settings_with(&[("ca-file", bad.to_str().unwrap())]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            refused,
            format!(
                "{} holds no PEM certificate; give --ca-file a PEM CA bundle",
                bad.display()
            )
        );
    }

    /// A server on loopback that answers one request with `len` bytes of body, declared
    /// in `Content-Length` or sent chunked without one; returns its URL.
    fn serve_body(len: usize, chunked: bool) -> String {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/reply", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let mut out = std::io::BufWriter::new(stream);
            let body = vec![b'x'; len];
            // Errors are ignored: the client may hang up once it has read enough.
            let _ = if chunked {
                write!(out, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").and_then(
                    |_| {
                        for chunk in body.chunks(60_000) {
                            write!(out, "{:x}\r\n", chunk.len())?;
                            out.write_all(chunk)?;
                            out.write_all(b"\r\n")?;
                        }
                        out.write_all(b"0\r\n\r\n")?;
                        out.flush()
                    },
                )
            } else {
                write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n")
                    .and_then(|_| out.write_all(&body))
                    .and_then(|_| out.flush())
            };
        });
        url
    }

    #[tokio::test]
    async fn replies_up_to_the_cap_are_read_and_one_byte_more_is_refused() {
        assert_eq!(MAX_REPLY, 1 << 20);
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        for chunked in [false, true] {
            for (len, fits) in [(MAX_REPLY, true), (MAX_REPLY + 1, false)] {
                let url = serve_body(len, chunked);
                let result = exchange(&url, client.get(&url), Duration::from_secs(10)).await;
                let case = format!("{len} bytes, chunked: {chunked}");
                match result {
                    Ok((status, body)) => {
                        assert!(fits, "{case}: read");
                        assert_eq!((status, body.len()), (200, len), "{case}");
                    }
                    Err(error) => {
                        assert!(!fits, "{case}: {error}");
                        assert_eq!(
                            error,
                            Error::TooLarge {
                                url: url.clone(),
                                limit: MAX_REPLY
                            },
                            "{case}"
                        );
                    }
                }
            }
        }
    }
}
