//! The fleet simulation (run by `scripts/fleet`): what N mounts do to the gateway and
//! Keycloak, in virtual time. Prints one table per scenario and every target of issue 23
//! with pass/fail; exits 1 when a target fails.
//!
//! Usage: fleet [--nodes 10000] [--capacity 50] [--boot unit|restart|lazy] [--seed N]
//!              [--scenario boot|steady|reboot|outage10|outage70|keycloak]...

mod report;
mod sim;

use report::{Target, Targets};
use sim::Boot;

struct Options {
    nodes: usize,
    capacity: u32,
    boot: Boot,
    seed: u64,
    scenarios: Vec<String>,
}

const SCENARIOS: [&str; 5] = ["boot", "steady", "reboot", "outage10", "outage70"];

fn options() -> Result<Options, String> {
    let mut o = Options {
        nodes: 10_000,
        capacity: 50,
        boot: Boot::Unit,
        seed: 23,
        scenarios: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = |what: &str| format!("{flag} takes {what}, not {value:?}");
        match flag.as_str() {
            "--nodes" => {
                o.nodes = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(number("a count above 0"))?
            }
            "--capacity" => {
                o.capacity = value
                    .parse()
                    .ok()
                    .filter(|&c| c > 0)
                    .ok_or(number("a rate above 0"))?
            }
            "--seed" => o.seed = value.parse().map_err(|_| number("a number"))?,
            "--boot" => {
                o.boot = match value.as_str() {
                    "unit" => Boot::Unit,
                    "restart" => Boot::Restart,
                    "lazy" => Boot::Lazy,
                    _ => return Err(number("unit, restart or lazy")),
                }
            }
            "--scenario" if SCENARIOS.contains(&value.as_str()) || value == "keycloak" => {
                o.scenarios.push(value)
            }
            "--scenario" => {
                return Err(number(&format!(
                    "one of {} or keycloak",
                    SCENARIOS.join(", ")
                )))
            }
            _ => {
                return Err(format!(
                    "unknown flag {flag}; see the usage at the top of examples/fleet/main.rs"
                ))
            }
        }
    }
    if o.scenarios.is_empty() {
        o.scenarios = SCENARIOS.iter().map(|s| s.to_string()).collect();
    }
    Ok(o)
}

fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("fleet: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "# Fleet simulation: {} nodes, gateway capacity {} STS calls/s, boot {:?}, seed {}\n",
        o.nodes, o.capacity, o.boot, o.seed
    );
    let mut targets = Targets::default();
    for scenario in &o.scenarios {
        let started = std::time::Instant::now();
        let found: Vec<Target> = match scenario.as_str() {
            "boot" => report::boot_storm(o.nodes, o.capacity, o.boot, o.seed),
            "steady" | "keycloak" => report::steady(o.nodes, o.capacity, o.seed),
            "reboot" => report::after_reboot(o.nodes, o.capacity, o.boot, o.seed),
            "outage10" => report::outage(o.nodes, o.capacity, 10, o.seed),
            _ => report::outage(o.nodes, o.capacity, 70, o.seed),
        };
        println!("(simulated in {:.1} s)\n", started.elapsed().as_secs_f64());
        targets.0.extend(found);
    }
    targets.print();
    if !targets.all_pass() {
        std::process::exit(1);
    }
}
