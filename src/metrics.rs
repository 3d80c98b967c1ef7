//! What a mount counts for monitoring (refreshes, failures by cause, gateway request
//! latency) and the pure rendering of it as Prometheus text, for the `metrics-file`
//! setting (node_exporter's textfile collector reads it).
//!
//! The counters live here, below the cache: the cache records its refreshes and the HTTP
//! layer its request times into them. Writing the file is the mount's business
//! (`mount::metrics_file`); rendering is a pure function of the counters, the caches'
//! state and an injected `now`, so it is tested byte for byte.

use crate::error::Error;
use crate::sync::lock;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a refresh ran: the `cause` of `s3credsfs_refreshes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A read (or the mount's first fetch) needed credentials.
    Read,
    /// A background refresh ahead of time (`refresh-ahead`).
    Ahead,
    /// `s3credsfs refresh`.
    Forced,
}

impl Trigger {
    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Read => "read",
            Trigger::Ahead => "ahead",
            Trigger::Forced => "forced",
        }
    }
}

/// Every trigger, so each series exists (at 0) before its first increment: a counter that
/// appears only on its first failure hides that failure from `rate()`.
pub const TRIGGERS: [Trigger; 3] = [Trigger::Read, Trigger::Ahead, Trigger::Forced];

/// Every failure cause [`cause_of`] can give, for the same reason.
pub const CAUSES: [&str; 17] = [
    "bad_reply",
    "config",
    "expired",
    "http_status",
    "internal",
    "login_refused",
    "plain_http",
    "redirected",
    "refresh_token_inactive",
    "sts_forbidden",
    "timeout",
    "tls",
    "token",
    "too_large",
    "too_slow",
    "unreachable",
    "unrenderable",
];

/// The `cause` label of a failed refresh: one word per kind of error, stable for alert
/// rules (the sentences may change; these do not).
pub fn cause_of(error: &Error) -> &'static str {
    match error {
        Error::Config(_) => "config",
        Error::Unreachable { .. } => "unreachable",
        Error::Tls { .. } => "tls",
        Error::PlainHttp { .. } => "plain_http",
        Error::Timeout { .. } => "timeout",
        Error::RefreshTooSlow { .. } => "too_slow",
        Error::AuthRejected { .. } => "login_refused",
        Error::RefreshInactive { .. } => "refresh_token_inactive",
        Error::Token(_) => "token",
        Error::StsForbidden { .. } => "sts_forbidden",
        Error::HttpStatus { .. } => "http_status",
        Error::Redirected { .. } => "redirected",
        Error::TooLarge { .. } => "too_large",
        Error::BadReply { .. } => "bad_reply",
        Error::NoEndpointUrl { .. } => "no_endpoint_url",
        Error::Unrenderable { .. } => "unrenderable",
        Error::Internal(_) => "internal",
        Error::Expired { .. } => "expired",
    }
}

/// The upper bounds of the request latency histogram, in seconds: a healthy gateway
/// answers in tens of milliseconds, `--timeout` defaults to 30 s.
pub const BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A latency histogram: counts per bucket (not cumulative), the sum and the count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// One per [`BUCKETS`] bound; observations above the last bound only count in `count`.
    pub buckets: [u64; BUCKETS.len()],
    pub sum_seconds: f64,
    pub count: u64,
}

impl Histogram {
    /// Adds one observation.
    pub fn observe(&mut self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&bound| seconds <= bound) {
            self.buckets[i] += 1;
        }
        self.sum_seconds += seconds;
        self.count += 1;
    }
}

/// One profile's counters at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Counts {
    /// Successful refreshes by [`Trigger::name`].
    pub refreshes: BTreeMap<&'static str, u64>,
    /// Failed refreshes by [`cause_of`].
    pub failures: BTreeMap<&'static str, u64>,
    /// Gateway requests (Keycloak and STS).
    pub requests: Histogram,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            refreshes: TRIGGERS.iter().map(|t| (t.name(), 0)).collect(),
            failures: CAUSES.iter().map(|c| (*c, 0)).collect(),
            requests: Histogram::default(),
        }
    }
}

/// One profile's counters, shared by its cache (which records) and the metrics writer
/// (which reads); every record wakes the writer through `changed`.
#[derive(Debug, Default)]
pub struct ProfileMetrics {
    counts: Mutex<Counts>,
    changed: Arc<tokio::sync::Notify>,
}

impl ProfileMetrics {
    /// Counters that wake `changed` on every record (one `Notify` for a whole mount).
    pub fn new(changed: Arc<tokio::sync::Notify>) -> Self {
        ProfileMetrics {
            counts: Mutex::default(),
            changed,
        }
    }

    /// A copy of the counters now.
    pub fn counts(&self) -> Counts {
        lock(&self.counts).clone()
    }

    /// Counts one refresh's outcome.
    pub fn record_refresh(&self, trigger: Trigger, outcome: Result<(), &Error>) {
        {
            let mut counts = lock(&self.counts);
            let (map, key) = match outcome {
                Ok(()) => (&mut counts.refreshes, trigger.name()),
                Err(error) => (&mut counts.failures, cause_of(error)),
            };
            *map.entry(key).or_default() += 1;
        }
        self.changed.notify_one();
    }

    /// Counts one gateway request's time.
    pub fn record_request(&self, elapsed: Duration) {
        lock(&self.counts).requests.observe(elapsed);
    }
}

tokio::task_local! {
    /// The counters of the profile whose refresh is running on this task: the HTTP layer
    /// times every request without each client carrying a profile.
    static REQUESTS: Arc<ProfileMetrics>;
}

/// Runs `refresh` so that every gateway request it makes is timed into `metrics`.
pub async fn timing_requests<T>(
    metrics: Arc<ProfileMetrics>,
    refresh: impl Future<Output = T>,
) -> T {
    REQUESTS.scope(metrics, refresh).await
}

/// Records one gateway request's time into the profile refreshing on this task, if any
/// (`fetch` and `config check` have none).
pub fn observe_request(elapsed: Duration) {
    let _ = REQUESTS.try_with(|metrics| metrics.record_request(elapsed));
}

/// The running program, for `s3credsfs_build_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub version: String,
    /// `production`, or `dev-gateway` for a build with the built-in gateway.
    pub build: String,
}

impl Build {
    /// This binary.
    pub fn current() -> Self {
        Build {
            version: env!("CARGO_PKG_VERSION").into(),
            build: crate::build_info::LABEL.into(),
        }
    }
}

/// One profile as the metrics show it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileSample {
    pub name: String,
    /// The current credentials' expiry, if any were fetched.
    pub expiration: Option<DateTime<Utc>>,
    /// The last successful refresh, if any.
    pub last_refresh: Option<DateTime<Utc>>,
    pub counts: Counts,
}

/// Everything the file shows at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub now: DateTime<Utc>,
    pub build: Build,
    /// Whether the mount is serving (0 in the last file written at unmount).
    pub up: bool,
    pub mountpoint: String,
    pub profiles: Vec<ProfileSample>,
}

/// A label value in the text format: `\`, `"` and line feeds escaped. Profile names are
/// validated, but a mountpoint can hold anything, and an unescaped quote or newline
/// would let it forge samples.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A float as the text format writes it (`+Inf`, and integers without a fraction).
fn number(value: f64) -> String {
    if value == f64::INFINITY {
        "+Inf".into()
    } else {
        format!("{value}")
    }
}

/// Writes one metric family's `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The file's text: Prometheus text exposition format 0.0.4, every family once, every
/// profile's series together under it, in the order of `sample.profiles`.
pub fn render(sample: &Sample) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "s3credsfs_build_info",
        "gauge",
        "The running s3credsfs: its version and build (production, or dev-gateway with the built-in gateway).",
    );
    let _ = writeln!(
        out,
        "s3credsfs_build_info{{version=\"{}\",build=\"{}\"}} 1",
        escape_label(&sample.build.version),
        escape_label(&sample.build.build)
    );
    family(
        &mut out,
        "s3credsfs_up",
        "gauge",
        "1 while the mount serves credentials, 0 once it has unmounted.",
    );
    let _ = writeln!(
        out,
        "s3credsfs_up{{mountpoint=\"{}\"}} {}",
        escape_label(&sample.mountpoint),
        u8::from(sample.up)
    );
    let profiles: Vec<(String, &ProfileSample)> = sample
        .profiles
        .iter()
        .map(|p| (escape_label(&p.name), p))
        .collect();

    family(
        &mut out,
        "s3credsfs_credentials_expiry_seconds",
        "gauge",
        "Seconds until the profile's current credentials expire; negative once expired, absent before the first fetch.",
    );
    for (name, p) in &profiles {
        if let Some(expiration) = p.expiration {
            let left = (expiration - sample.now).num_seconds();
            let _ = writeln!(
                out,
                "s3credsfs_credentials_expiry_seconds{{profile=\"{name}\"}} {left}"
            );
        }
    }
    family(
        &mut out,
        "s3credsfs_last_refresh_timestamp_seconds",
        "gauge",
        "When the profile's credentials were last fetched, in Unix seconds; absent before the first fetch.",
    );
    for (name, p) in &profiles {
        if let Some(at) = p.last_refresh {
            let _ = writeln!(
                out,
                "s3credsfs_last_refresh_timestamp_seconds{{profile=\"{name}\"}} {}",
                at.timestamp()
            );
        }
    }
    family(
        &mut out,
        "s3credsfs_refreshes_total",
        "counter",
        "Successful credential refreshes, by cause: read (a read needed them), ahead (refreshed before they were due), forced (s3credsfs refresh).",
    );
    for (name, p) in &profiles {
        for (cause, n) in &p.counts.refreshes {
            let _ = writeln!(
                out,
                "s3credsfs_refreshes_total{{profile=\"{name}\",cause=\"{}\"}} {n}",
                escape_label(cause)
            );
        }
    }
    family(
        &mut out,
        "s3credsfs_refresh_failures_total",
        "counter",
        "Failed credential refreshes, by cause (login_refused, unreachable, tls, timeout, ...).",
    );
    for (name, p) in &profiles {
        for (cause, n) in &p.counts.failures {
            let _ = writeln!(
                out,
                "s3credsfs_refresh_failures_total{{profile=\"{name}\",cause=\"{}\"}} {n}",
                escape_label(cause)
            );
        }
    }
    let latency = "s3credsfs_gateway_request_duration_seconds";
    family(
        &mut out,
        latency,
        "histogram",
        "Time of one gateway request (Keycloak or STS), from sending it to the end of the reply.",
    );
    for (name, p) in &profiles {
        let h = &p.counts.requests;
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(h.buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "{latency}_bucket{{profile=\"{name}\",le=\"{}\"}} {cumulative}",
                number(*bound)
            );
        }
        let _ = writeln!(
            out,
            "{latency}_bucket{{profile=\"{name}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "{latency}_sum{{profile=\"{name}\"}} {}",
            number(h.sum_seconds)
        );
        let _ = writeln!(out, "{latency}_count{{profile=\"{name}\"}} {}", h.count);
    }
    out
}

#[cfg(test)]
mod tests;
