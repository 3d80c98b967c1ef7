//! The AWS SDK probes (tests/sdk/, built by scripts/sdk-probes): where they are and what
//! they report, for the `rgw-tests` tier that drives them.

use super::clients::Ran;
use std::path::PathBuf;

/// The four SDKs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sdk {
    Js,
    Go,
    Rust,
    Java,
}

/// Where scripts/sdk-probes puts the probes: `sdk-probes` in the target directory that
/// holds this test binary (`TARGET/debug/deps/it-HASH`).
fn probes() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the test binary lies in TARGET/debug/deps");
    target.join("sdk-probes")
}

impl Sdk {
    /// The probe's command line (the mode is appended by the caller).
    pub fn probe(self) -> Vec<String> {
        let dir = probes();
        let file = dir.join(match self {
            Sdk::Js => "js/probe.js",
            Sdk::Go => "go-probe",
            Sdk::Rust => "rust-probe",
            Sdk::Java => "java-probe",
        });
        assert!(
            file.exists(),
            "{} is missing: run scripts/sdk-probes (scripts/test runs it), which builds the \
             JavaScript, Go, Rust and Java SDK probes",
            file.display()
        );
        let file = file.display().to_string();
        let runtime = match self {
            Sdk::Js => Some("node"),
            Sdk::Java => Some("java"),
            Sdk::Go | Sdk::Rust => None,
        };
        if let Some(runtime) = runtime {
            let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .any(|dir| dir.join(runtime).is_file());
            assert!(
                found,
                "{runtime} is not on PATH: run scripts/venv as root, which installs it from Debian"
            );
        }
        if self == Sdk::Js {
            vec!["node".to_owned(), file]
        } else {
            vec![file]
        }
    }

    /// A short lower-case name, for bucket names.
    pub fn name(self) -> &'static str {
        match self {
            Sdk::Js => "js",
            Sdk::Go => "go",
            Sdk::Rust => "rust",
            Sdk::Java => "java",
        }
    }

    /// Whether the SDK signs with the config file's `credential_process` rather than the
    /// keys the credentials file has for the same profile (botocore's order is the
    /// other way round).
    pub fn prefers_credential_process(self) -> bool {
        matches!(self, Sdk::Rust | Sdk::Java)
    }
}

/// What a probe printed: `{"calls": N, "keys": [...], "seconds": S}`; from the Go probe
/// `"endpoints": [...]` too (where each call was sent), and from the Java probe
/// `"provider": P`, the credentials provider its default chain settled on.
pub struct Report {
    pub calls: u64,
    pub keys: Vec<String>,
    pub endpoints: Option<Vec<String>>,
    pub seconds: f64,
    pub provider: Option<String>,
}

impl Report {
    /// Panics unless every call the probe reported went to `endpoint` (scheme://host:port,
    /// as the mount serves it): the SDK found the endpoint in what the mount served, since
    /// nothing else named it. Probes that do not report endpoints pass (their round trip
    /// reading back what they wrote shows it less directly).
    pub fn assert_sent_to(&self, sdk: Sdk, endpoint: &str) {
        let Some(endpoints) = &self.endpoints else {
            return;
        };
        let endpoint = endpoint.trim_end_matches('/');
        assert!(
            !endpoints.is_empty() && endpoints.iter().all(|e| e == endpoint),
            "{sdk:?} sent its calls to {endpoints:?}, the mount serves {endpoint}"
        );
    }
}

/// The report `ran` printed; panics with all it printed when there is none.
pub fn report(ran: &Ran) -> Report {
    let value: serde_json::Value = serde_json::from_str(ran.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "`{}` printed no report ({e}):\n{}\n{}",
            ran.what, ran.stdout, ran.stderr
        )
    });
    Report {
        calls: value["calls"].as_u64().expect("calls"),
        keys: value["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k.as_str().expect("a key").to_owned())
            .collect(),
        endpoints: value.get("endpoints").map(|e| {
            e.as_array()
                .expect("endpoints")
                .iter()
                .map(|e| e.as_str().expect("an endpoint").to_owned())
                .collect()
        }),
        seconds: value["seconds"].as_f64().expect("seconds"),
        provider: value["provider"].as_str().map(str::to_owned),
    }
}
