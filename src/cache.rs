//! The one place that decides when credentials are stale, and the single-flight refresh.
//!
//! Like aws-sdk-rust's identity cache: a pure rule of (now, snapshot, backoff) says
//! serve / refresh / fail fast, and concurrent callers share one refresh. Readers get an
//! `Arc<Snapshot>` they keep for as long as they need, so a refresh never changes bytes
//! under a reader.

pub use crate::clock::{ManualClock, SystemTime, TimeSource};
use crate::creds::Credentials;
use crate::error::{Error, Result};
pub use crate::fetch::Fetch;
use crate::metrics::{ProfileMetrics, Trigger};
use crate::sync::lock;
use chrono::{DateTime, Utc};
use rule::too_short;
pub use rule::{
    backoff_delay, plan, refresh_ahead_at, refresh_at, retry_delay, Plan, BACKOFF_MAX,
    MAX_BELIEVED_LIFETIME, OVERLOAD_DELAY, OVERLOAD_SPREAD,
};
pub use snapshot::Snapshot;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tracing::Instrument;

/// How often a profile whose login Keycloak refused looks whether its password file or
/// command gives another password: local work only, no login is attempted meanwhile.
pub const REFUSED_RECHECK: Duration = Duration::from_secs(30);

/// The longest a keeper ([`CredentialCache::keep_current`]) sleeps between looks.
pub const KEEPER_NAP: Duration = Duration::from_secs(60);

/// The shortest: a keeper never spins.
const KEEPER_MIN_NAP: Duration = Duration::from_secs(1);

/// Polls a future, turning a panic inside it into `Err` so the caller can record a
/// failed refresh. The panic's message is dropped: it may quote a secret.
struct CatchPanic<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchPanic<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// The overall state a person sees in `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Valid and not yet due for refresh.
    Fresh,
    /// Valid, but the next read refreshes first.
    Expiring,
    /// Expired and no refresh has failed since (nothing read them yet).
    Expired,
    /// Nothing fetched yet (a `--lazy` mount before its first read).
    Empty,
    /// No valid credentials and the last refresh failed.
    Error,
}

impl State {
    /// The word `status` shows.
    pub fn name(self) -> &'static str {
        match self {
            State::Fresh => "fresh",
            State::Expiring => "expiring",
            State::Expired => "expired",
            State::Empty => "empty",
            State::Error => "error",
        }
    }
}

/// What `status` reports about the cache.
#[derive(Debug, Clone)]
pub struct CacheStatus {
    pub state: State,
    pub expiration: Option<DateTime<Utc>>,
    pub last_refresh: Option<DateTime<Utc>>,
    pub refresh_count: u64,
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Inner {
    snapshot: Option<Arc<Snapshot>>,
    /// A background (refresh-ahead) refresh has been started and not yet recorded.
    ahead_in_flight: bool,
    last_error: Option<Error>,
    failures: u32,
    backoff_until: Option<DateTime<Utc>>,
    refresh_count: u64,
    /// Keycloak refused the login: no login is attempted again by itself (each would
    /// count toward its brute-force lockout) until `s3credsfs refresh` or a changed
    /// password.
    refused: bool,
}

/// Current credentials for one profile, refreshed lazily on read.
pub struct CredentialCache<F: Fetch> {
    fetcher: F,
    time: Arc<dyn TimeSource>,
    min_validity: Duration,
    refresh_ahead: Duration,
    refresh_timeout: Duration,
    gateway: String,
    /// Refreshes, failures and request times, for the `metrics-file`.
    metrics: Arc<ProfileMetrics>,
    inner: Mutex<Inner>,
    /// Held across a refresh: concurrent readers queue here, then find the new snapshot.
    refresh_lock: tokio::sync::Mutex<()>,
    /// Names the profile on every log line of a refresh (see [`Self::with_profile`]).
    span: tracing::Span,
}

impl<F: Fetch> CredentialCache<F> {
    /// `refresh_timeout` bounds a whole refresh (token and STS calls together): see
    /// [`crate::sts::refresh_budget`].
    pub fn new(
        fetcher: F,
        min_validity: Duration,
        refresh_timeout: Duration,
        gateway: &str,
    ) -> Self {
        CredentialCache {
            fetcher,
            time: Arc::new(SystemTime),
            min_validity,
            refresh_ahead: Duration::ZERO,
            refresh_timeout,
            gateway: gateway.to_string(),
            metrics: Arc::default(),
            inner: Mutex::new(Inner::default()),
            refresh_lock: tokio::sync::Mutex::new(()),
            span: tracing::Span::none(),
        }
    }

    /// The same cache naming profile `name` (`profile=NAME`) on every line its refreshes
    /// log, the login's and the gateway requests' included: a mount serves several.
    pub fn with_profile(mut self, name: &str) -> Self {
        // At error level, so the span exists whatever level the logger lets through.
        self.span = tracing::error_span!("refresh", profile = %name);
        self
    }

    /// The same cache refreshing in the background at a random moment of the window that
    /// opens `refresh_ahead` before the refresh time (see [`refresh_ahead_at`]); without
    /// it, only on demand.
    pub fn with_refresh_ahead(mut self, refresh_ahead: Duration) -> Self {
        self.refresh_ahead = refresh_ahead;
        self
    }

    /// The same cache reading time and jitter from `time` (tests: a [`ManualClock`]).
    pub fn with_time(mut self, time: Arc<dyn TimeSource>) -> Self {
        self.time = time;
        self
    }

    /// The same cache counting into `metrics` (the mount's, which its metrics file shows).
    pub fn with_metrics(mut self, metrics: Arc<ProfileMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// This profile's counters.
    pub fn metrics(&self) -> &Arc<ProfileMetrics> {
        &self.metrics
    }

    /// The cache's idea of now, for everything that must agree with its decisions.
    pub fn now(&self) -> DateTime<Utc> {
        self.time.now()
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// The fetcher, for status details such as the logged-in user.
    pub fn fetcher(&self) -> &F {
        &self.fetcher
    }

    /// The current snapshot if it is still valid; never blocks, never fetches.
    pub fn peek(&self) -> Option<Arc<Snapshot>> {
        let inner = self.inner();
        inner.snapshot.clone().filter(|s| s.valid_at(self.now()))
    }

    /// The plan for a read now; `Ok` carries the snapshot to serve, and whether this
    /// reader is the one to start the background refresh.
    fn decide(&self) -> std::result::Result<(Arc<Snapshot>, bool), Plan> {
        let mut inner = self.inner();
        let now = self.now();
        match plan(now, inner.snapshot.as_deref(), inner.backoff_until) {
            Plan::Serve => Ok((
                inner.snapshot.clone().expect("Serve implies a snapshot"),
                false,
            )),
            Plan::ServeAndRefresh => {
                let start = !std::mem::replace(&mut inner.ahead_in_flight, true);
                Ok((
                    inner.snapshot.clone().expect("Serve implies a snapshot"),
                    start,
                ))
            }
            other => Err(other),
        }
    }

    fn last_error(&self) -> Error {
        self.inner()
            .last_error
            .clone()
            .unwrap_or_else(|| Error::Token("no credentials yet".into()))
    }

    /// Credentials fit to serve now, refreshing first when the rule says so. Many callers
    /// at once cause one refresh. In the refresh-ahead window the reader is served at once
    /// and one background refresh starts (on the current tokio runtime).
    pub async fn current(self: &Arc<Self>) -> Result<Arc<Snapshot>> {
        if let Some(answer) = self.answer_without_refresh() {
            return answer;
        }
        let _flight = self.refresh_lock.lock().await;
        // Whoever held the lock before us may have refreshed, or failed and backed off.
        if let Some(answer) = self.answer_without_refresh() {
            return answer;
        }
        self.refresh(Trigger::Read).await
    }

    /// The answer a read gets when the rule says not to refresh in its way: credentials
    /// fit to serve (starting the background refresh in the refresh-ahead window), or the
    /// last error while backing off. `None` when this reader must refresh.
    fn answer_without_refresh(self: &Arc<Self>) -> Option<Result<Arc<Snapshot>>> {
        match self.decide() {
            Ok((snapshot, start_refresh)) => {
                if start_refresh {
                    self.refresh_in_background();
                }
                Some(Ok(snapshot))
            }
            Err(Plan::FailFast) => Some(Err(self.last_error())),
            Err(_) => None,
        }
    }

    /// When the keeper should next refresh, whether or not anyone reads: the snapshot's
    /// refresh-ahead time (its refresh time without refresh-ahead), or for a profile that
    /// never got credentials and failed, at once; never before a backoff ends. `None`
    /// before the first fetch (a `--lazy` mount waits for a reader).
    fn keep_at(&self) -> Option<DateTime<Utc>> {
        let inner = self.inner();
        let due = match (&inner.snapshot, &inner.last_error) {
            (Some(s), _) => std::cmp::min(s.refresh_ahead_at, s.refresh_at),
            (None, Some(_)) => self.now(),
            (None, None) => return None,
        };
        Some(inner.backoff_until.map_or(due, |b| std::cmp::max(due, b)))
    }

    /// Keeps the profile current without readers: refreshes at its refresh-ahead time (the
    /// same rule and single flight as a read), so that every profile of a file of several
    /// is ready when read, and `status` and monitoring see a profile fail when it does,
    /// not when it is next read. Runs until the cache is dropped; it looks at least every
    /// [`KEEPER_NAP`], so a clock that jumps (a suspended laptop, NTP) is noticed.
    pub async fn keep_current(cache: std::sync::Weak<Self>) {
        loop {
            let nap = {
                let Some(cache) = cache.upgrade() else { return };
                let now = cache.now();
                match cache.keep_at() {
                    Some(at) if at <= now => {
                        let _ = cache.current().await;
                        // A refresh ahead runs on: look again shortly, not at once.
                        KEEPER_MIN_NAP
                    }
                    Some(at) => (at - now).to_std().unwrap_or_default().min(KEEPER_NAP),
                    None => KEEPER_NAP,
                }
            };
            tokio::time::sleep(nap.max(KEEPER_MIN_NAP)).await;
        }
    }

    /// Starts the one refresh-ahead refresh; readers meanwhile get the current snapshot.
    fn refresh_in_background(self: &Arc<Self>) {
        let cache = Arc::clone(self);
        tokio::spawn(async move {
            let _flight = cache.refresh_lock.lock().await;
            // A reader that found the snapshot due may have refreshed while we queued.
            let due = {
                let inner = cache.inner();
                inner
                    .snapshot
                    .as_ref()
                    .is_none_or(|s| cache.now() >= s.refresh_ahead_at)
            };
            if due {
                tracing::debug!(parent: &cache.span, "refreshing credentials ahead of time");
                let _ = cache.refresh(Trigger::Ahead).await;
            }
            cache.inner().ahead_in_flight = false;
        });
    }

    /// Refreshes now with a new login, whatever the staleness rule and any backoff say
    /// (`s3credsfs refresh`, after a password or role change). Readers queue behind it as
    /// behind any refresh. A failure is recorded as usual, so valid credentials stay
    /// served, but it is returned: the person asking must see it.
    pub async fn refresh_now(&self) -> Result<Arc<Snapshot>> {
        let _flight = self.refresh_lock.lock().await;
        let outcome = self
            .bounded(self.fetcher.fetch_with_new_login())
            .instrument(self.span.clone())
            .await;
        let failure = outcome.as_ref().err().cloned();
        let served = self.record(outcome, Trigger::Forced);
        match failure {
            Some(error) => Err(error),
            None => served,
        }
    }

    /// Fetches now (the caller holds `refresh_lock`) and records the outcome. After a
    /// refused login it only looks whether the password changed, and logs in only then.
    async fn refresh(&self, trigger: Trigger) -> Result<Arc<Snapshot>> {
        if self.inner().refused {
            let changed = self.fetcher.login_changed().instrument(self.span.clone());
            if !changed.await {
                return self.hold_refused();
            }
            tracing::info!(parent: &self.span, "the password changed since Keycloak refused it; logging in again");
        }
        let outcome = self
            .bounded(self.fetcher.fetch())
            .instrument(self.span.clone())
            .await;
        self.record(outcome, trigger)
    }

    /// Keeps a refused login refused for another [`REFUSED_RECHECK`]: the still valid
    /// snapshot, or the refusal.
    fn hold_refused(&self) -> Result<Arc<Snapshot>> {
        let mut inner = self.inner();
        let now = self.now();
        inner.backoff_until =
            Some(now + chrono::Duration::from_std(REFUSED_RECHECK).unwrap_or_default());
        match inner.snapshot.clone().filter(|s| s.valid_at(now)) {
            Some(still_valid) => Ok(still_valid),
            None => Err(inner
                .last_error
                .clone()
                .unwrap_or_else(|| Error::Token("no credentials yet".into()))),
        }
    }

    /// Runs a fetch within the refresh budget, a panic counting as a failure, timing its
    /// gateway requests into this profile's metrics.
    async fn bounded(
        &self,
        fetch: impl Future<Output = Result<Credentials>> + Send,
    ) -> Result<Credentials> {
        let refresh = CatchPanic(Box::pin(fetch));
        let timed = crate::metrics::timing_requests(self.metrics.clone(), refresh);
        match tokio::time::timeout(self.refresh_timeout, timed).await {
            Ok(Ok(outcome)) => outcome,
            // A bug must not skip `record`: without a backoff every read would retry.
            Ok(Err(_panic)) => Err(Error::Internal("refreshing credentials panicked".into())),
            Err(_) => Err(Error::RefreshTooSlow {
                url: self.gateway.clone(),
                budget: humantime::format_duration(self.refresh_timeout).to_string(),
            }),
        }
    }

    /// Stores a refresh's outcome and returns what the reader gets; counts it once it is
    /// stored, so the metrics writer it wakes sees the new state.
    fn record(&self, outcome: Result<Credentials>, trigger: Trigger) -> Result<Arc<Snapshot>> {
        let failure = outcome.as_ref().err().cloned();
        let served = self.store(outcome);
        self.metrics
            .record_refresh(trigger, failure.as_ref().map_or(Ok(()), Err));
        served
    }

    /// Stores a refresh's outcome and returns what the reader gets.
    fn store(&self, outcome: Result<Credentials>) -> Result<Arc<Snapshot>> {
        let _profile = self.span.enter();
        let mut inner = self.inner();
        let now = self.now();
        // With the outcome, under the same lock: a reader that sees it may start the
        // next background refresh (a queued one finds itself not due and does nothing).
        inner.ahead_in_flight = false;
        match outcome {
            Ok(creds) => {
                let lifetime = creds.expiration - now;
                if too_short(lifetime, self.min_validity) {
                    tracing::warn!(
                        lifetime_seconds = lifetime.num_seconds(),
                        "the STS issues credentials that live no longer than --min-validity; refreshing at half their life"
                    );
                }
                let refresh_at =
                    refresh_at(now, creds.expiration, self.min_validity, self.time.jitter());
                let snapshot = Arc::new(Snapshot {
                    generation: inner.refresh_count + 1,
                    refresh_at,
                    refresh_ahead_at: refresh_ahead_at(
                        now,
                        refresh_at,
                        creds.expiration,
                        self.refresh_ahead,
                        self.time.jitter(),
                    ),
                    fetched_at: now,
                    creds,
                });
                inner.refresh_count += 1;
                inner.failures = 0;
                inner.backoff_until = None;
                inner.last_error = None;
                inner.refused = false;
                inner.snapshot = Some(snapshot.clone());
                Ok(snapshot)
            }
            Err(error) => {
                inner.failures += 1;
                inner.refused = error.is_login_refused();
                let delay = match inner.refused {
                    true => REFUSED_RECHECK,
                    false => retry_delay(inner.failures, error.is_overload(), self.time.jitter()),
                };
                inner.backoff_until =
                    Some(now + chrono::Duration::from_std(delay).unwrap_or_default());
                if inner.refused {
                    tracing::error!(
                        error = %error,
                        "Keycloak refused the login; not trying again until `s3credsfs refresh` or the password file or command gives another password"
                    );
                } else {
                    tracing::warn!(
                        error = %error,
                        retry_in = %humantime::format_duration(Duration::from_millis(delay.as_millis() as u64)),
                        "refreshing credentials failed"
                    );
                }
                inner.last_error = Some(error.clone());
                match inner.snapshot.clone().filter(|s| s.valid_at(now)) {
                    Some(still_valid) => Ok(still_valid),
                    None => Err(error),
                }
            }
        }
    }

    /// The state for `status`; reading it never fetches.
    pub fn status(&self) -> CacheStatus {
        let inner = self.inner();
        let now = self.now();
        let snapshot = inner.snapshot.as_deref();
        let valid = snapshot.is_some_and(|s| s.valid_at(now));
        let state = match snapshot {
            _ if !valid && inner.last_error.is_some() => State::Error,
            None => State::Empty,
            Some(s) if !s.valid_at(now) => State::Expired,
            Some(s) if now >= s.refresh_at => State::Expiring,
            Some(_) => State::Fresh,
        };
        CacheStatus {
            state,
            expiration: snapshot.map(|s| s.creds.expiration),
            last_refresh: snapshot.map(|s| s.fetched_at),
            refresh_count: inner.refresh_count,
            last_error: inner.last_error.as_ref().map(|e| match inner.refused {
                true => format!("{e} (not tried again until `s3credsfs refresh` or the password file or command gives another password)"),
                false => e.to_string(),
            }),
        }
    }
}

mod rule;
mod snapshot;
#[cfg(test)]
mod tests;
