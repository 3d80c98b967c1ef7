//! Shared test helpers: an in-process gateway, settings built like flags, condition waits
//! ([`wait`]) and the guard of every child process ([`child`]).
#![allow(dead_code)]

pub mod child;
pub mod clients;
pub mod gw;
#[cfg(feature = "keycloak-tests")]
pub mod keycloak;
pub mod mount;
pub mod namespace;
pub mod rgw;
pub mod s3;
pub mod sdk;
pub mod wait;
#[cfg(feature = "package-tests")]
pub mod zypper;

pub use child::StopOnDrop;
pub use wait::{poll_until, wait_for, wait_for_async};

use s3credsfs::config::{resolve, Context, Layer, RawValue, Setting, Settings, Source};
use s3credsfs::dev::gateway::{Fault, Gateway, GatewayConfig, Stats};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole environment the tests give a program they start: `PATH` only. Helpers
/// clear everything else first, so that nothing of the developer's (`S3CREDSFS_*`
/// settings, proxies, `HOME` and its config file, `CRAY_CREDENTIALS`) changes a result.
/// `HOME` names a directory that does not exist, unless a test sets its own.
pub fn clean_env() -> Vec<(&'static str, std::ffi::OsString)> {
    vec![
        ("PATH", std::env::var_os("PATH").unwrap_or_default()),
        ("HOME", "/nonexistent/s3credsfs-tests".into()),
    ]
}

/// The `s3credsfs` binary under test: cargo's build, or the copy named by
/// `S3CREDSFS_TEST_BIN`, which `scripts/it-as-user` sets because the ordinary user it runs
/// the tests as may not be able to enter the build directory (a checkout under `/root`).
pub fn exe() -> PathBuf {
    std::env::var_os("S3CREDSFS_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_s3credsfs")))
}

/// Fails the test, naming `why`, unless it runs as root: a test whose setup needs root
/// (another user's file, a mount namespace) must fail as an ordinary user, not pass having
/// proved nothing. `scripts/it-as-user` leaves these out by name.
pub fn require_root(why: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root ({why}); run it as root, or leave it out of scripts/it-as-user's list"
    );
}

/// Starts a gateway with the default accounts and the given tweaks.
pub async fn gateway(tweak: impl FnOnce(&mut GatewayConfig)) -> Gateway {
    let mut config = GatewayConfig::default();
    tweak(&mut config);
    Gateway::start(config).await.expect("start gateway")
}

/// Settings as if the pairs were given as flags, against `gateway`.
pub fn settings(gateway: &Gateway, pairs: &[(&'static str, &str)]) -> Settings {
    try_settings(gateway, pairs).expect("settings")
}

/// Like `settings` but returns the configuration error.
pub fn try_settings(
    gateway: &Gateway,
    pairs: &[(&'static str, &str)],
) -> s3credsfs::error::Result<Settings> {
    settings_for(&gateway.base_url(), pairs)
}

/// Settings as if the pairs were given as flags, against the gateway at `base`.
pub fn settings_for(
    base: &str,
    pairs: &[(&'static str, &str)],
) -> s3credsfs::error::Result<Settings> {
    let mut layer = Layer::new();
    for (k, v) in [("api-gateway", base)].iter().chain(pairs) {
        let key = Setting::from_name(k).unwrap_or_else(|| panic!("no setting is named {k:?}"));
        layer.insert(
            key,
            RawValue {
                value: v.to_string(),
                source: Source::Flag(key.flag()),
            },
        );
    }
    resolve(&layer, &Context::default())
}

/// A program's output as text, for messages and matching (invalid UTF-8 shown as �).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes a file readable only by its owner (as secret files must be).
pub fn private_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Fetches through `pipeline` until the gateway's counters satisfy `done` (a renewal has
/// happened), failing after `deadline` with the counters last seen.
pub async fn fetch_until(
    what: &str,
    deadline: Duration,
    pipeline: &s3credsfs::sts::Pipeline,
    gateway: &Gateway,
    done: impl Fn(&Stats) -> bool,
) {
    wait_for_async(what, deadline, async || {
        let stats = gateway.stats();
        if done(&stats) {
            return Ok(());
        }
        pipeline.fetch().await.unwrap();
        Err(format!("{stats:?}"))
    })
    .await
}

/// A fault that answers with `status`, `content_type` and `body` instead of the
/// endpoint: a refusal, an outage, a proxy's error page.
pub fn status_fault(status: u16, content_type: &str, body: &str) -> Fault {
    Fault::Status {
        status,
        content_type: content_type.into(),
        body: body.into(),
    }
}

/// A password grant straight to the gateway, returning Keycloak's JSON reply.
pub async fn password_grant(gateway: &Gateway) -> serde_json::Value {
    reqwest::Client::new()
        .post(gateway.token_url())
        .form(&[
            ("grant_type", "password"),
            ("client_id", "shasta"),
            ("username", s3credsfs::dev::gateway::DEFAULT_USER),
            ("password", s3credsfs::dev::gateway::DEFAULT_PASSWORD),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A CA and a `localhost` server certificate it signed: (CA PEM, rustls server config).
pub fn test_tls() -> (String, std::sync::Arc<rustls::ServerConfig>) {
    test_tls_for(vec!["localhost".to_string()])
}

/// A CA and a server certificate it signed for `names`.
pub fn test_tls_for(names: Vec<String>) -> (String, std::sync::Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "s3credsfs test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(names)
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    (ca.pem(), std::sync::Arc::new(config))
}

/// Runs the pipeline once with `settings`, expecting it to fail; returns the sentence.
pub async fn fetch_error(settings: &Settings) -> String {
    let pipeline = s3credsfs::sts::Pipeline::new(settings).expect("pipeline");
    pipeline
        .fetch()
        .await
        .expect_err("the fetch should fail")
        .to_string()
}

/// A random address in 127.0.0.0/8 outside 127.0.0.x (Linux answers all of 127/8 on
/// the loopback interface).
fn own_loopback() -> std::net::Ipv4Addr {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(0u8);
    let [a, b, c, ..] = random.to_le_bytes();
    std::net::Ipv4Addr::new(127, 1 + a % 254, b, 1 + c % 254)
}

/// A TCP listener that records every connection and the first bytes sent on it, then
/// answers 502: stands for a host that must never be contacted (a redirect target, a
/// proxy).
pub struct Recorder {
    pub url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Recorder {
    /// Listens on a random port of a loopback address of its own, on a thread of its
    /// own. Not 127.0.0.1: tests that bind a port there and close it, to have one that
    /// refuses (`pipeline::an_unreachable_gateway`), then dial it, and a listener given
    /// that port number in between would record their connection as ours (a flake seen
    /// under load, when such a dial waits longest); nothing dials a random 127.x.y.z.
    pub fn start() -> Recorder {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind((own_loopback(), 0)).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                record
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let _ = stream.write_all(
                    b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Recorder { url, seen }
    }

    /// What each connection sent first, in order.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}
