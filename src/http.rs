//! The one HTTP client for the gateway, and the translation of transport failures into
//! the pipeline's plain-sentence errors.

use crate::config::Settings;
use crate::error::{Error, Result};
use std::time::Duration;

/// Builds the client every gateway request uses: rustls, system roots plus `--ca-file`,
/// `--timeout` per request.
pub fn build_client(settings: &Settings) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .user_agent(concat!("s3credsfs/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            Error::Config(format!(
                "cannot read the CA bundle {} ({e}); fix --ca-file",
                path.display()
            ))
        })?;
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

/// The innermost cause of an error, which is the part a person can act on.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut current = err;
    while let Some(next) = current.source() {
        parts.push(next.to_string());
        current = next;
    }
    parts.join(": ")
}

/// Turns a transport error into one sentence: unreachable, TLS or timeout.
pub fn classify(url: &str, err: &reqwest::Error, timeout: Duration) -> Error {
    let chain = chain_text(err);
    let url = url.to_string();
    if err.is_timeout() || chain.contains("timed out") {
        return Error::Timeout {
            url,
            timeout: humantime::format_duration(timeout).to_string(),
        };
    }
    let lower = chain.to_lowercase();
    if lower.contains("certificate")
        || lower.contains("unknownissuer")
        || lower.contains("tls handshake")
    {
        return Error::Tls {
            url,
            detail: root_cause(err),
        };
    }
    Error::Unreachable {
        url,
        detail: root_cause(err),
    }
}

/// Reads a whole response body, classifying a failure mid-body like any transport error.
pub async fn body_bytes(
    url: &str,
    response: reqwest::Response,
    timeout: Duration,
) -> Result<Vec<u8>> {
    response
        .bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| classify(url, &e, timeout))
}
