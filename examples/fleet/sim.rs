//! The fleet simulation's engine, shared by `examples/fleet` and the plain-tier test
//! (tests/it/fleet.rs): N real `CredentialCache`s, each with the mount's keeper and a
//! reader, on tokio's paused clock (a discrete-event loop: time jumps to the next timer,
//! nothing sleeps) against a simulated gateway that serves at most C STS calls a second
//! and answers 503 beyond that, as Envoy in front of cray-sts would. The only simulated
//! parts are the gateway and the HTTP under the login: when to log in, refresh, retry and
//! serve is decided by the crate's own code (the cache, its rule, its keeper, and the
//! login's token reuse rules).

use chrono::{DateTime, Utc};
use s3credsfs::auth::{refresh_token_usable, refresh_usable_until, token_stale_at};
use s3credsfs::cache::{CredentialCache, Fetch, TimeSource};
use s3credsfs::creds::Credentials;
use s3credsfs::error::{Error, Result};
use s3credsfs::secret::Secret;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// How a node's mount comes up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boot {
    /// `s3credsfs mount --foreground` under the shipped unit: a first fetch that failed
    /// for a transient cause (here the gateway's 503) leaves the mount up, and its keeper
    /// retries on the cache's backoff.
    Unit,
    /// The unit as it was before: a failed first fetch ended the daemon, and systemd
    /// started it again after `RestartSec=10s` (a new process: no token, no backoff).
    Restart,
    /// `s3credsfs mount --lazy`, read at once: a failed first read leaves the mount up, and
    /// its keeper retries on the cache's backoff.
    Lazy,
}

/// One simulated run: the fleet, its settings and the gateway's.
#[derive(Clone, Debug)]
pub struct Fleet {
    pub nodes: usize,
    /// STS calls the gateway serves per second; beyond, 503.
    pub capacity: u32,
    /// Every node mounts at a uniformly random moment within this window from the start.
    pub mount_window: Duration,
    pub run_for: Duration,
    /// The gateway answers nothing but 503 from `.0` for `.1`.
    pub outage: Option<(Duration, Duration)>,
    pub boot: Boot,
    /// The mean time between two reads on a node (exponentially distributed).
    pub read_every: Duration,
    /// How long the STS's credentials live (cray-sts: one hour).
    pub lifetime: Duration,
    /// Keycloak's access token lifespan.
    pub access_token: Duration,
    /// Keycloak's SSO session idle timeout (a refresh token lives this long) and maximum.
    pub sso_idle: Duration,
    pub sso_max: Duration,
    pub min_validity: Duration,
    pub refresh_ahead: Duration,
    /// The shipped unit's `RestartSec`.
    pub restart_after: Duration,
    pub seed: u64,
}

impl Fleet {
    /// The defaults of a mount, cray-sts and Keycloak as a CSM site has them.
    pub fn new(nodes: usize, capacity: u32) -> Self {
        Fleet {
            nodes,
            capacity,
            mount_window: Duration::from_secs(60),
            run_for: Duration::from_secs(3600),
            outage: None,
            boot: Boot::Unit,
            read_every: Duration::from_secs(300),
            lifetime: Duration::from_secs(3600),
            access_token: Duration::from_secs(300),
            sso_idle: Duration::from_secs(1800),
            sso_max: Duration::from_secs(10 * 3600),
            min_validity: Duration::from_secs(1200),
            refresh_ahead: Duration::from_secs(600),
            restart_after: Duration::from_secs(10),
            seed: 23,
        }
    }

    /// N / C: the shortest time in which the gateway can serve every node once.
    pub fn drain_seconds(&self) -> f64 {
        self.nodes as f64 / f64::from(self.capacity)
    }
}

/// What happened, second by second.
pub struct Run {
    pub fleet: Fleet,
    /// STS calls accepted and refused (a refused one may have failed at its login, which
    /// goes through the same gateway), indexed by second.
    pub accepted: Vec<u32>,
    pub refused: Vec<u32>,
    pub password_grants: Vec<u32>,
    pub refresh_grants: Vec<u32>,
    /// Each node's mount time and the times it got credentials, in seconds.
    pub mounted_at: Vec<f64>,
    pub successes: Vec<Vec<f64>>,
    pub reads: u64,
    /// Reads answered with an error (no valid credentials): EIO to the reader.
    pub failed_reads: u64,
    /// Reads answered with credentials past their expiration: must stay 0.
    pub expired_served: u64,
}

impl Run {
    fn seconds(&self) -> usize {
        self.accepted.len()
    }

    /// Requests offered (accepted + refused) in second `s`.
    pub fn offered(&self, s: usize) -> u32 {
        self.accepted.get(s).copied().unwrap_or(0) + self.refused.get(s).copied().unwrap_or(0)
    }

    /// The most requests offered in one second within [from, to).
    pub fn peak_offered(&self, from: f64, to: f64) -> u32 {
        let (from, to) = (from.max(0.0) as usize, (to as usize).min(self.seconds()));
        (from..to).map(|s| self.offered(s)).max().unwrap_or(0)
    }

    /// Sum of a per-second series over [from, to).
    pub fn sum(series: &[u32], from: f64, to: f64) -> u64 {
        let (from, to) = (from.max(0.0) as usize, (to as usize).min(series.len()));
        series
            .get(from..to)
            .map_or(0, |s| s.iter().map(|&n| u64::from(n)).sum())
    }

    /// The most STS calls offered in any 60 s window within [from, to), and the mean
    /// per 60 s over the same span.
    pub fn windows(&self, from: f64, to: f64) -> (u64, f64) {
        let (from, to) = (from as usize, (to as usize).min(self.seconds()));
        let mut window: u64 = (from..from + 60).map(|s| u64::from(self.offered(s))).sum();
        let mut peak = window;
        for s in from + 60..to {
            window = window + u64::from(self.offered(s)) - u64::from(self.offered(s - 60));
            peak = peak.max(window);
        }
        let total: u64 = (from..to).map(|s| u64::from(self.offered(s))).sum();
        (peak, total as f64 * 60.0 / (to - from) as f64)
    }

    /// Seconds from `after` until the last node got credentials at or after it; `None`
    /// when some node never did.
    pub fn last_success_after(&self, after: f64) -> Option<f64> {
        self.successes
            .iter()
            .map(|times| times.iter().find(|&&t| t >= after).map(|t| t - after))
            .try_fold(0.0f64, |worst, t| Some(worst.max(t?)))
    }

    /// The first mount, and how many nodes had credentials by `t`.
    pub fn first_mount(&self) -> f64 {
        self.mounted_at.iter().copied().fold(f64::MAX, f64::min)
    }

    pub fn ready_by(&self, t: f64) -> usize {
        self.successes
            .iter()
            .filter(|times| times.first().is_some_and(|&s| s <= t))
            .count()
    }
}

/// A small xorshift generator: mount moments, read intervals and jitter need variety,
/// not cryptography, and a seed makes a run repeatable.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        // splitmix64 of the pair, so neighbouring nodes get unrelated sequences.
        let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    /// A number in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Tokio's (paused) clock as the cache's, with each node's own jitter.
struct NodeClock {
    start: Instant,
    base: DateTime<Utc>,
    rng: Mutex<Rng>,
}

impl TimeSource for NodeClock {
    fn now(&self) -> DateTime<Utc> {
        self.base + chrono::Duration::from_std(self.start.elapsed()).expect("a short run")
    }
    fn jitter(&self) -> f64 {
        lock(&self.rng).unit()
    }
}

/// The gateway and what it counts.
struct Gateway {
    start: Instant,
    capacity: u32,
    outage: Option<(f64, f64)>,
    log: Mutex<Log>,
}

struct Log {
    accepted: Vec<u32>,
    refused: Vec<u32>,
    password_grants: Vec<u32>,
    refresh_grants: Vec<u32>,
    successes: Vec<Vec<f64>>,
}

impl Gateway {
    fn now(&self) -> (f64, usize) {
        let t = self.start.elapsed().as_secs_f64();
        (t, t as usize)
    }

    fn down(&self, t: f64) -> bool {
        self.outage.is_some_and(|(from, to)| t >= from && t < to)
    }
}

fn bump(series: &mut Vec<u32>, s: usize) {
    if series.len() <= s {
        series.resize(s + 1, 0);
    }
    series[s] += 1;
}

/// A login's tokens, as the real `Authenticator` keeps them.
#[derive(Default)]
struct Tokens {
    access_stale_at: Option<DateTime<Utc>>,
    refresh_usable_until: Option<DateTime<Utc>>,
    session_ends: Option<DateTime<Utc>>,
}

/// One node's login and STS call against the simulated gateway: what `sts::Pipeline` is
/// to a real mount. A new process (a restart) starts with no tokens.
struct Node {
    id: usize,
    gateway: Arc<Gateway>,
    clock: Arc<NodeClock>,
    fleet: Arc<Fleet>,
    tokens: Mutex<Tokens>,
}

fn refused(what: &str) -> Error {
    Error::HttpStatus {
        url: format!("https://api-gw-service-nmn.local/{what}"),
        status: 503,
        detail: String::new(),
        fix: "the gateway is overloaded or down; retry later".into(),
    }
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).expect("a short duration")
}

impl Node {
    fn fetch_now(&self) -> Result<Credentials> {
        let now = self.clock.now();
        let (t, s) = self.gateway.now();
        let mut log = lock(&self.gateway.log);
        let mut tokens = lock(&self.tokens);
        if self.gateway.down(t) {
            bump(&mut log.refused, s);
            return Err(refused("keycloak"));
        }
        if tokens.access_stale_at.is_none_or(|stale| now >= stale) {
            let fleet = &self.fleet;
            let refresh = tokens
                .refresh_usable_until
                .filter(|&until| refresh_token_usable(Some(until), now));
            if refresh.is_some() {
                bump(&mut log.refresh_grants, s);
            } else {
                bump(&mut log.password_grants, s);
                tokens.session_ends = Some(now + chrono(fleet.sso_max));
            }
            let session_ends = tokens.session_ends.expect("set at the login");
            let refresh_expires = std::cmp::min(now + chrono(fleet.sso_idle), session_ends);
            tokens.refresh_usable_until = refresh_usable_until(now, Some(refresh_expires));
            tokens.access_stale_at = Some(token_stale_at(now, now + chrono(fleet.access_token)));
        }
        let served = log.accepted.get(s).copied().unwrap_or(0);
        if served >= self.gateway.capacity {
            bump(&mut log.refused, s);
            return Err(refused("apis/sts/token"));
        }
        bump(&mut log.accepted, s);
        log.successes[self.id].push(t);
        Ok(Credentials {
            access_key_id: format!("SIM{}", self.id),
            secret_access_key: Secret::new("simulated"),
            session_token: Secret::new("simulated"),
            expiration: now + chrono(self.fleet.lifetime),
            endpoint_url: "http://rgw.local".into(),
        })
    }
}

impl Fetch for Node {
    fn fetch(&self) -> impl std::future::Future<Output = Result<Credentials>> + Send {
        std::future::ready(self.fetch_now())
    }
}

#[derive(Default)]
struct Reads {
    reads: u64,
    failed: u64,
    expired: u64,
}

/// Runs the fleet to the end of `fleet.run_for` and returns what happened.
pub fn simulate(fleet: &Fleet) -> Run {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a tokio runtime");
    let fleet = Arc::new(fleet.clone());
    runtime.block_on(async {
        let start = Instant::now();
        let gateway = Arc::new(Gateway {
            start,
            capacity: fleet.capacity,
            outage: fleet
                .outage
                .map(|(from, len)| (from.as_secs_f64(), (from + len).as_secs_f64())),
            log: Mutex::new(Log {
                accepted: Vec::new(),
                refused: Vec::new(),
                password_grants: Vec::new(),
                refresh_grants: Vec::new(),
                successes: vec![Vec::new(); fleet.nodes],
            }),
        });
        let reads = Arc::new(Mutex::new(Reads::default()));
        let base = DateTime::from_timestamp(1_800_000_000, 0).expect("a valid time");
        let mut mounted_at = Vec::with_capacity(fleet.nodes);
        for id in 0..fleet.nodes {
            let mut rng = Rng::new(fleet.seed, id as u64);
            let mount_at = fleet.mount_window.mul_f64(rng.unit());
            mounted_at.push(mount_at.as_secs_f64());
            let clock = Arc::new(NodeClock {
                start,
                base,
                rng: Mutex::new(Rng::new(fleet.seed ^ 0xC10C, id as u64)),
            });
            let node = NodeRun {
                id,
                fleet: fleet.clone(),
                gateway: gateway.clone(),
                clock,
                reads: reads.clone(),
            };
            tokio::spawn(node.run(start + mount_at, rng));
        }
        tokio::time::sleep(fleet.run_for).await;
        let mut guard = lock(&gateway.log);
        let log = &mut *guard;
        let seconds = fleet.run_for.as_secs() as usize;
        for series in [
            &mut log.accepted,
            &mut log.refused,
            &mut log.password_grants,
            &mut log.refresh_grants,
        ] {
            series.resize(seconds, 0);
        }
        let reads = lock(&reads);
        Run {
            fleet: (*fleet).clone(),
            accepted: std::mem::take(&mut log.accepted),
            refused: std::mem::take(&mut log.refused),
            password_grants: std::mem::take(&mut log.password_grants),
            refresh_grants: std::mem::take(&mut log.refresh_grants),
            mounted_at,
            successes: std::mem::take(&mut log.successes),
            reads: reads.reads,
            failed_reads: reads.failed,
            expired_served: reads.expired,
        }
    })
}

/// One node: its mount (restarted as systemd would), keeper and reader.
struct NodeRun {
    id: usize,
    fleet: Arc<Fleet>,
    gateway: Arc<Gateway>,
    clock: Arc<NodeClock>,
    reads: Arc<Mutex<Reads>>,
}

impl NodeRun {
    fn cache(&self) -> Arc<CredentialCache<Node>> {
        let node = Node {
            id: self.id,
            gateway: self.gateway.clone(),
            clock: self.clock.clone(),
            fleet: self.fleet.clone(),
            tokens: Mutex::default(),
        };
        let fleet = &self.fleet;
        let budget = s3credsfs::sts::refresh_budget(Duration::from_secs(30));
        Arc::new(
            CredentialCache::new(node, fleet.min_validity, budget, "https://api-gw.local")
                .with_refresh_ahead(fleet.refresh_ahead)
                .with_time(self.clock.clone()),
        )
    }

    async fn run(self, mount_at: Instant, mut rng: Rng) {
        tokio::time::sleep_until(mount_at).await;
        let cache = loop {
            let cache = self.cache();
            let first = cache.current().await;
            match (first, self.fleet.boot) {
                (Err(_), Boot::Restart) => tokio::time::sleep(self.fleet.restart_after).await,
                // The first fetch is no read: the keeper carries on from its failure.
                (Err(e), Boot::Unit) if e.is_transient() => break cache,
                (first, _) => {
                    self.count(first);
                    break cache;
                }
            }
        };
        tokio::spawn(CredentialCache::keep_current(Arc::downgrade(&cache)));
        loop {
            let pause = -self.fleet.read_every.as_secs_f64() * (1.0 - rng.unit()).ln();
            tokio::time::sleep(Duration::from_secs_f64(pause)).await;
            self.count(cache.current().await);
        }
    }

    fn count(&self, read: Result<Arc<s3credsfs::cache::Snapshot>>) {
        let mut reads = lock(&self.reads);
        reads.reads += 1;
        match read {
            Ok(snapshot) if snapshot.creds.expiration <= self.clock.now() => reads.expired += 1,
            Ok(_) => {}
            Err(_) => reads.failed += 1,
        }
    }
}
