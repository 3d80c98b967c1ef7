//! The one place that decides when credentials are stale, and the single-flight refresh.
//!
//! Like aws-sdk-rust's identity cache: a pure rule of (now, snapshot, backoff) says
//! serve / refresh / fail fast, and concurrent callers share one refresh. Readers get an
//! `Arc<Snapshot>` they keep for as long as they need, so a refresh never changes bytes
//! under a reader.

use crate::creds::Credentials;
use crate::error::{Error, Result};
use crate::sync::lock;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tracing::Instrument;

/// Where credentials come from; `Pipeline` in production, a fake in unit tests.
pub trait Fetch: Send + Sync + 'static {
    /// Obtains new credentials.
    fn fetch(&self) -> impl Future<Output = Result<Credentials>> + Send;

    /// Obtains new credentials with a new login, not a cached token: after a password or
    /// role change (`s3credsfs refresh`).
    fn fetch_with_new_login(&self) -> impl Future<Output = Result<Credentials>> + Send {
        self.fetch()
    }
}

impl Fetch for crate::sts::Pipeline {
    fn fetch(&self) -> impl Future<Output = Result<Credentials>> + Send {
        crate::sts::Pipeline::fetch(self)
    }

    async fn fetch_with_new_login(&self) -> Result<Credentials> {
        self.forget_login().await;
        crate::sts::Pipeline::fetch(self).await
    }
}

/// One set of credentials as handed to readers, with the moment it stops being served
/// without a refresh.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one per successful refresh; lets renderers cache per snapshot.
    pub generation: u64,
    pub creds: Credentials,
    /// When the credentials were fetched: the files' mtime.
    pub fetched_at: DateTime<Utc>,
    /// From this moment a read refreshes first.
    pub refresh_at: DateTime<Utc>,
    /// From this moment a read is served at once and starts one background refresh, so
    /// that in steady state no reader waits for the gateway (`--refresh-ahead`).
    pub refresh_ahead_at: DateTime<Utc>,
}

impl Snapshot {
    /// True while the credentials have not expired.
    pub fn valid_at(&self, now: DateTime<Utc>) -> bool {
        now < self.creds.expiration
    }
}

/// What a read should do, decided by [`plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The snapshot is fresh enough (or valid while refreshes back off): serve it.
    Serve,
    /// Serve the snapshot now, and refresh in the background (the refresh-ahead window).
    ServeAndRefresh,
    /// Refresh first; on failure serve the snapshot if it is still valid.
    Refresh,
    /// No valid credentials and refreshes are backing off: fail with the last error.
    FailFast,
}

/// The staleness rule, pure so tests can drive it with any clock.
pub fn plan(
    now: DateTime<Utc>,
    snapshot: Option<&Snapshot>,
    backoff_until: Option<DateTime<Utc>>,
) -> Plan {
    let valid = snapshot.is_some_and(|s| s.valid_at(now));
    let backing_off = backoff_until.is_some_and(|until| now < until);
    if valid && snapshot.is_some_and(|s| now < s.refresh_at) {
        if !backing_off && snapshot.is_some_and(|s| now >= s.refresh_ahead_at) {
            return Plan::ServeAndRefresh;
        }
        return Plan::Serve;
    }
    match backoff_until {
        Some(until) if now < until => {
            if valid {
                Plan::Serve
            } else {
                Plan::FailFast
            }
        }
        _ => Plan::Refresh,
    }
}

/// The longest credential lifetime believed when scheduling a refresh: the CSM STS issues
/// one hour, and Ceph allows at most twelve.
pub const MAX_BELIEVED_LIFETIME: chrono::Duration = chrono::Duration::hours(36);

/// When to refresh credentials fetched at `fetched`: `min_validity` (plus up to 10% of it,
/// at most a minute, of jitter so a fleet spreads out) before expiry. When the STS issues
/// credentials that live no longer than `min_validity`, refresh at half their life rather
/// than on every read.
pub fn refresh_at(
    fetched: DateTime<Utc>,
    expiration: DateTime<Utc>,
    min_validity: Duration,
    jitter_unit: f64,
) -> DateTime<Utc> {
    // An `Expiration` years away (a broken or hostile STS) must not mean "never refresh".
    let horizon = fetched
        .checked_add_signed(MAX_BELIEVED_LIFETIME)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let expiration = std::cmp::min(expiration, horizon);
    let lifetime = expiration - fetched;
    if too_short(lifetime, min_validity) {
        return fetched + lifetime / 2;
    }
    let min_validity = chrono::Duration::from_std(min_validity).unwrap_or(chrono::Duration::MAX);
    let max_jitter = std::cmp::min(min_validity / 10, chrono::Duration::seconds(60));
    let jitter = chrono::Duration::milliseconds(
        (max_jitter.num_milliseconds() as f64 * jitter_unit.clamp(0.0, 1.0)) as i64,
    );
    expiration
        .checked_sub_signed(min_validity + jitter)
        .map_or(fetched, |t| std::cmp::max(t, fetched))
}

/// When a read starts a background refresh of credentials due at `refresh_at`:
/// `refresh_ahead` earlier, but never before half their life has passed, so short-lived
/// credentials are not refreshed on every read.
pub fn refresh_ahead_at(
    fetched: DateTime<Utc>,
    refresh_at: DateTime<Utc>,
    expiration: DateTime<Utc>,
    refresh_ahead: Duration,
) -> DateTime<Utc> {
    let half_life = fetched + (std::cmp::max(expiration, fetched) - fetched) / 2;
    let ahead = chrono::Duration::from_std(refresh_ahead).unwrap_or(chrono::Duration::MAX);
    let early = refresh_at
        .checked_sub_signed(ahead)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    std::cmp::min(std::cmp::max(early, half_life), refresh_at)
}

/// Whether credentials living `lifetime` can never keep `min_validity` in hand: they are
/// then refreshed at half their life instead of on every read.
fn too_short(lifetime: chrono::Duration, min_validity: Duration) -> bool {
    lifetime <= chrono::Duration::from_std(min_validity).unwrap_or(chrono::Duration::MAX)
}

/// Delay before the next attempt after `failures` consecutive failures: 1 s doubling to
/// 5 min, scaled by a random factor in [0.5, 1] so many nodes do not retry in step.
pub fn backoff_delay(failures: u32, jitter_unit: f64) -> Duration {
    let base = Duration::from_secs(1) * 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    let capped = std::cmp::min(base, Duration::from_secs(300));
    capped.mul_f64(0.5 + 0.5 * jitter_unit.clamp(0.0, 1.0))
}

/// Where the cache reads the time and its jitter: the system clock and the OS random
/// source in production, a [`ManualClock`] and a fixed jitter in tests, so refresh
/// timing, backoff and expiry are tested by moving the clock instead of waiting.
pub trait TimeSource: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// A number in [0, 1) that spreads refreshes and retries over a fleet.
    fn jitter(&self) -> f64;
}

/// The production time source.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemTime;

impl TimeSource for SystemTime {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn jitter(&self) -> f64 {
        crate::random::unit()
    }
}

/// A clock that moves only when told to, with a fixed jitter; for tests of the cache and
/// of the filesystem above it.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    jitter: f64,
}

impl ManualClock {
    /// A clock standing at `start` whose jitter is always `jitter` (clamped to [0, 1]).
    pub fn new(start: DateTime<Utc>, jitter: f64) -> Self {
        ManualClock {
            now: Mutex::new(start),
            jitter: jitter.clamp(0.0, 1.0),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = lock(&self.now);
        *now += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
    }
}

impl TimeSource for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *lock(&self.now)
    }
    fn jitter(&self) -> f64 {
        self.jitter
    }
}

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
}

/// Current credentials for one profile, refreshed lazily on read.
pub struct CredentialCache<F: Fetch> {
    fetcher: F,
    time: Arc<dyn TimeSource>,
    min_validity: Duration,
    refresh_ahead: Duration,
    refresh_timeout: Duration,
    gateway: String,
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

    /// The same cache refreshing in the background once less than `min_validity +
    /// refresh_ahead` remains (see [`refresh_ahead_at`]); without it, only on demand.
    pub fn with_refresh_ahead(mut self, refresh_ahead: Duration) -> Self {
        self.refresh_ahead = refresh_ahead;
        self
    }

    /// The same cache reading time and jitter from `time` (tests: a [`ManualClock`]).
    pub fn with_time(mut self, time: Arc<dyn TimeSource>) -> Self {
        self.time = time;
        self
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
        match self.decide() {
            Ok((snapshot, start_refresh)) => {
                if start_refresh {
                    self.refresh_in_background();
                }
                return Ok(snapshot);
            }
            Err(Plan::FailFast) => return Err(self.last_error()),
            Err(_) => {}
        }
        let _flight = self.refresh_lock.lock().await;
        // Whoever held the lock before us may have refreshed, or failed and backed off.
        match self.decide() {
            Ok((snapshot, start_refresh)) => {
                if start_refresh {
                    self.refresh_in_background();
                }
                return Ok(snapshot);
            }
            Err(Plan::FailFast) => return Err(self.last_error()),
            Err(_) => {}
        }
        self.refresh().await
    }

    /// Credentials fit to serve now without waiting for the gateway: `None` when a refresh
    /// must come first, which this then starts in the background (one in flight), so a
    /// later call finds them. For a file that shows other profiles beside its own.
    pub fn try_current(self: &Arc<Self>) -> Option<Result<Arc<Snapshot>>> {
        match self.decide() {
            Ok((snapshot, start_refresh)) => {
                if start_refresh {
                    self.refresh_in_background();
                }
                Some(Ok(snapshot))
            }
            Err(Plan::FailFast) => Some(Err(self.last_error())),
            Err(_) => {
                let cache = Arc::clone(self);
                tokio::spawn(async move {
                    let _ = cache.current().await;
                });
                None
            }
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
                let _ = cache.refresh().await;
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
        let served = self.record(outcome);
        match failure {
            Some(error) => Err(error),
            None => served,
        }
    }

    /// Fetches now (the caller holds `refresh_lock`) and records the outcome.
    async fn refresh(&self) -> Result<Arc<Snapshot>> {
        let outcome = self
            .bounded(self.fetcher.fetch())
            .instrument(self.span.clone())
            .await;
        self.record(outcome)
    }

    /// Runs a fetch within the refresh budget, a panic counting as a failure.
    async fn bounded(
        &self,
        fetch: impl Future<Output = Result<Credentials>> + Send,
    ) -> Result<Credentials> {
        let refresh = CatchPanic(Box::pin(fetch));
        match tokio::time::timeout(self.refresh_timeout, refresh).await {
            Ok(Ok(outcome)) => outcome,
            // A bug must not skip `record`: without a backoff every read would retry.
            Ok(Err(_panic)) => Err(Error::Internal("refreshing credentials panicked".into())),
            Err(_) => Err(Error::RefreshTooSlow {
                url: self.gateway.clone(),
                budget: humantime::format_duration(self.refresh_timeout).to_string(),
            }),
        }
    }

    /// Stores a refresh's outcome and returns what the reader gets.
    fn record(&self, outcome: Result<Credentials>) -> Result<Arc<Snapshot>> {
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
                    ),
                    fetched_at: now,
                    creds,
                });
                inner.refresh_count += 1;
                inner.failures = 0;
                inner.backoff_until = None;
                inner.last_error = None;
                inner.snapshot = Some(snapshot.clone());
                Ok(snapshot)
            }
            Err(error) => {
                inner.failures += 1;
                let delay = backoff_delay(inner.failures, self.time.jitter());
                inner.backoff_until =
                    Some(now + chrono::Duration::from_std(delay).unwrap_or_default());
                tracing::warn!(
                    error = %error,
                    retry_in = %humantime::format_duration(Duration::from_millis(delay.as_millis() as u64)),
                    "refreshing credentials failed"
                );
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
            last_error: inner.last_error.as_ref().map(|e| e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests;
