//! Soak test of a real mount (run by `scripts/soak`): reader threads read the mounted
//! `json` for a long time across many short credential lifetimes while random faults
//! are injected into the built-in gateway, and the run reports what readers saw and
//! whether the daemon's memory and descriptors grew.
//!
//! Usage: soak BINARY [--duration 10m] [--readers 4] [--lifetime 20s]

mod support;

use s3credsfs::dev::gateway::{Endpoint, Fault, Gateway, GatewayConfig, Times};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{start_daemon, usage, Daemon};

/// After a fault ends, reads may still fail this long (backoff of short bursts) without
/// counting as failures "while the gateway was healthy".
const SETTLE: Duration = Duration::from_secs(10);

struct Options {
    binary: PathBuf,
    duration: Duration,
    readers: usize,
    lifetime: Duration,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let binary = PathBuf::from(
        args.next()
            .ok_or("usage: soak BINARY [--duration D] [--readers N] [--lifetime D]")?,
    );
    let mut o = Options {
        binary,
        duration: Duration::from_secs(600),
        readers: 4,
        lifetime: Duration::from_secs(20),
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let duration = || humantime::parse_duration(&value).map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--duration" => o.duration = duration()?,
            "--lifetime" => o.lifetime = duration()?,
            "--readers" => o.readers = value.parse().map_err(|e| format!("{flag}: {e}"))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(o)
}

/// A small xorshift generator: the faults need variety, not cryptography.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn random_fault(rng: &mut Rng) -> (Endpoint, Fault) {
    let status = |code: u16| Fault::Status {
        status: code,
        content_type: "text/plain".into(),
        body: "\"Error\"".into(),
    };
    match rng.below(9) {
        0 => (Endpoint::Sts, status(500)),
        1 => (Endpoint::Sts, Fault::CloseConnection),
        2 => (Endpoint::Sts, Fault::Delay(Duration::from_secs(3))),
        3 => (Endpoint::Sts, Fault::Malformed),
        4 => (Endpoint::Sts, Fault::Incomplete),
        5 => (Endpoint::Sts, Fault::ExpiredCredentials),
        6 => (Endpoint::Sts, Fault::CutMidReply),
        7 => (Endpoint::Token, status(503)),
        _ => (Endpoint::Token, Fault::CloseConnection),
    }
}

fn start(o: &Options, gateway: &str, path: &Path, log: &Path) -> Daemon {
    let min_validity = format!("{}ms", o.lifetime.as_millis() * 2 / 5);
    start_daemon(
        &o.binary,
        gateway,
        path,
        log,
        &["--timeout", "2s", "--min-validity", &min_validity],
    )
}

#[derive(Default)]
struct Counts {
    reads: AtomicU64,
    failed: AtomicU64,
    failed_healthy: AtomicU64,
    expired_served: AtomicU64,
}

fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = GatewayConfig {
        lifetime: o.lifetime,
        token_lifetime: o.lifetime / 2,
        ..GatewayConfig::default()
    };
    let gw = runtime.block_on(Gateway::start(config)).expect("gateway");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("creds");
    let log = dir.path().join("daemon.log");
    let daemon = start(&o, &gw.base_url(), &path, &log);
    let pid = daemon.child.id();
    std::thread::sleep(Duration::from_secs(2));
    let (rss_start, fds_start) = usage(pid);

    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    // When the last fault ended (None while one is active).
    let healthy_since: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(Some(Instant::now())));
    let readers: Vec<_> = (0..o.readers)
        .map(|_| {
            let (counts, stop, healthy, json) = (
                counts.clone(),
                stop.clone(),
                healthy_since.clone(),
                path.join("json"),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    counts.reads.fetch_add(1, Ordering::Relaxed);
                    match std::fs::read_to_string(&json) {
                        Ok(text) => {
                            let value: serde_json::Value =
                                serde_json::from_str(&text).unwrap_or_default();
                            let expired = value["Expiration"]
                                .as_str()
                                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                                .is_none_or(|t| {
                                    t + chrono::Duration::seconds(1) <= chrono::Utc::now()
                                });
                            if expired {
                                counts.expired_served.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(_) => {
                            counts.failed.fetch_add(1, Ordering::Relaxed);
                            let settled = healthy
                                .lock()
                                .unwrap()
                                .is_some_and(|t| t.elapsed() > SETTLE);
                            if settled {
                                counts.failed_healthy.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();

    let mut rng = Rng(std::process::id() as u64 | 1 << 40);
    let started = Instant::now();
    let mut faults = 0;
    while started.elapsed() < o.duration {
        std::thread::sleep(Duration::from_secs(5 + rng.below(10)));
        if started.elapsed() >= o.duration {
            break;
        }
        let (endpoint, fault) = random_fault(&mut rng);
        *healthy_since.lock().unwrap() = None;
        gw.inject(endpoint, fault, Times::Always);
        faults += 1;
        std::thread::sleep(Duration::from_millis(1000 + rng.below(3000)));
        gw.clear_faults();
        *healthy_since.lock().unwrap() = Some(Instant::now());
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        let _ = reader.join();
    }
    let (rss_end, fds_end) = usage(pid);
    let stats = gw.stats();
    drop(daemon);
    let c = &counts;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "soak: {:?} with {} readers, credential lifetime {:?}",
        o.duration, o.readers, o.lifetime
    );
    println!("faults injected:                       {faults}");
    println!(
        "refreshes (credentials issued):        {}",
        stats.sts_issued
    );
    println!(
        "gateway calls (token + STS):           {}",
        stats.token_requests + stats.sts_requests
    );
    println!("reads attempted:                       {}", load(&c.reads));
    println!("reads failed (any time):               {}", load(&c.failed));
    println!(
        "reads failed while the gateway was healthy: {}",
        load(&c.failed_healthy)
    );
    println!(
        "expired credentials served:            {}",
        load(&c.expired_served)
    );
    println!("daemon RSS start -> end (KiB):         {rss_start} -> {rss_end}");
    println!("daemon open descriptors start -> end:  {fds_start} -> {fds_end}");
    let ok = load(&c.expired_served) == 0
        && load(&c.failed_healthy) == 0
        && fds_end <= fds_start + 2
        && stats.sts_issued >= 2;
    println!("{}", if ok { "soak: PASS" } else { "soak: FAIL" });
    std::process::exit(if ok { 0 } else { 1 });
}
