//! The fleet simulation's scenarios: each runs the engine, prints its table and judges
//! its targets (issue 23 §3), so the example and the plain-tier test judge alike.

use super::sim::{simulate, Boot, Fleet, Run};
use std::time::Duration;

/// One target: what it asks, what was measured, and whether it holds.
pub struct Target {
    pub scenario: String,
    pub target: String,
    pub measured: String,
    pub pass: bool,
}

/// Every target judged in a run.
#[derive(Default)]
pub struct Targets(pub Vec<Target>);

impl Targets {
    pub fn all_pass(&self) -> bool {
        self.0.iter().all(|t| t.pass)
    }

    pub fn print(&self) {
        println!("## Targets\n");
        println!("| scenario | target | measured | result |");
        println!("|---|---|---|---|");
        for t in &self.0 {
            let result = if t.pass { "pass" } else { "FAIL" };
            println!(
                "| {} | {} | {} | {result} |",
                t.scenario, t.target, t.measured
            );
        }
        println!();
    }
}

fn target(scenario: &str, target: String, measured: String, pass: bool) -> Target {
    Target {
        scenario: scenario.into(),
        target,
        measured,
        pass,
    }
}

/// The target every scenario shares: no reader is ever given expired credentials.
fn none_expired(scenario: &str, run: &Run) -> Target {
    let measured = format!(
        "{} of {} reads ({} failed: no valid credentials)",
        run.expired_served, run.reads, run.failed_reads
    );
    target(
        scenario,
        "0 expired credentials served".into(),
        measured,
        run.expired_served == 0,
    )
}

/// A table of the gateway's load in `step`-second rows over [from, to).
fn load_table(run: &Run, from: f64, to: f64, step: f64, since: Option<f64>) {
    let nodes = run.fleet.nodes;
    let recovered = match since {
        Some(_) => "nodes with credentials since",
        None => "nodes with credentials",
    };
    println!("| seconds | offered | accepted | refused | peak offered/s | {recovered} |");
    println!("|---|---|---|---|---|---|");
    let mut start = from;
    while start < to {
        let end = (start + step).min(to);
        let accepted = Run::sum(&run.accepted, start, end);
        let refused = Run::sum(&run.refused, start, end);
        let ready = match since {
            Some(t) => run
                .successes
                .iter()
                .filter(|s| s.iter().any(|&x| x >= t && x < end))
                .count(),
            None => run.ready_by(end),
        };
        println!(
            "| {start:.0}–{end:.0} | {} | {accepted} | {refused} | {} | {ready} of {nodes} |",
            accepted + refused,
            run.peak_offered(start, end)
        );
        start = end;
    }
    println!();
}

/// Boot storm: every node mounts at a random moment within 60 s.
pub fn boot_storm(nodes: usize, capacity: u32, boot: Boot, seed: u64) -> Vec<Target> {
    let mut fleet = Fleet::new(nodes, capacity);
    (fleet.boot, fleet.seed) = (boot, seed);
    let drain = fleet.drain_seconds();
    fleet.run_for = Duration::from_secs_f64(60.0 + 3.0 * drain + 120.0);
    let run = simulate(&fleet);
    let first = run.first_mount();
    let ready = run
        .successes
        .iter()
        .map(|s| s.first().map(|t| t - first))
        .try_fold(0.0f64, |worst, t| Some(worst.max(t?)));
    let shown_to = ready.map_or(fleet.run_for.as_secs_f64(), |r| first + r + 30.0);
    println!("## Boot storm: {nodes} nodes mount within 60 s\n");
    load_table(
        &run,
        0.0,
        shown_to.min(fleet.run_for.as_secs_f64()),
        30.0,
        None,
    );
    let scenario = "boot storm";
    let limit = 1.3 * drain;
    let c3 = 3 * capacity;
    let after_30 = run.peak_offered(first + 30.0, fleet.run_for.as_secs_f64());
    let last_mount = run.mounted_at.iter().copied().fold(0.0, f64::max);
    let after_mounts = run.peak_offered(last_mount + 30.0, fleet.run_for.as_secs_f64());
    let mounts_per_second = nodes as f64 / fleet.mount_window.as_secs_f64();
    vec![
        target(
            scenario,
            format!("every node has credentials within 1.3 × N/C = {limit:.0} s of the first mount"),
            ready.map_or("some node never did".into(), |r| format!("{r:.1} s")),
            ready.is_some_and(|r| r <= limit),
        ),
        target(
            scenario,
            format!("offered load < 3 × C = {c3}/s after the first 30 s"),
            format!("peak {after_30}/s (first fetches alone arrive at N/60 s = {mounts_per_second:.0}/s)"),
            after_30 < c3,
        ),
        target(
            scenario,
            format!("offered load < 3 × C = {c3}/s from 30 s after the last mount"),
            format!("peak {after_mounts}/s"),
            after_mounts < c3,
        ),
        none_expired(scenario, &run),
    ]
}

/// An hour-by-hour table of STS calls and Keycloak grants over [from, to), and the
/// worst 60 s window against the mean.
fn hourly_table(run: &Run, from: f64, to: f64) -> (u64, f64) {
    println!("| hour | STS calls | mean per 60 s | busiest 60 s | ratio | password grants | refresh grants |");
    println!("|---|---|---|---|---|---|---|");
    let mut start = from;
    while start < to {
        let end = (start + 3600.0).min(to);
        let (peak, mean) = run.windows(start, end);
        println!(
            "| {:.0}–{:.0} | {} | {mean:.0} | {peak} | {:.2} | {} | {} |",
            start / 3600.0,
            end / 3600.0,
            Run::sum(&run.accepted, start, end) + Run::sum(&run.refused, start, end),
            peak as f64 / mean,
            Run::sum(&run.password_grants, start, end),
            Run::sum(&run.refresh_grants, start, end),
        );
        start = end;
    }
    println!();
    run.windows(from, to)
}

fn waves_target(scenario: &str, run: &Run, from: f64, to: f64) -> Target {
    let (peak, mean) = run.windows(from, to);
    target(
        scenario,
        "STS calls in any 60 s window ≤ 1.5 × the mean".into(),
        format!("busiest {peak}, mean {mean:.0}: {:.2}×", peak as f64 / mean),
        peak as f64 <= 1.5 * mean,
    )
}

/// Steady state: a fleet whose nodes came up at random moments over an hour, watched for
/// six hours; and Keycloak's grants per node per hour over the same six hours.
pub fn steady(nodes: usize, capacity: u32, seed: u64) -> Vec<Target> {
    let mut fleet = Fleet::new(nodes, capacity);
    fleet.seed = seed;
    fleet.mount_window = Duration::from_secs(3600);
    fleet.run_for = Duration::from_secs(7 * 3600);
    let run = simulate(&fleet);
    let (from, to) = (3600.0, 7.0 * 3600.0);
    println!("## Steady state: {nodes} nodes (mounted over an hour), six hours\n");
    hourly_table(&run, from, to);
    let per_node_hour = |n: u64| n as f64 / nodes as f64 / 6.0;
    println!("## Keycloak: grants per node per hour (six hours of steady state)\n");
    println!("| access token | SSO session idle | credentials | password grants | refresh grants | STS calls |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {:.2} | {:.2} | {:.2} |\n",
        humantime::format_duration(fleet.access_token),
        humantime::format_duration(fleet.sso_idle),
        humantime::format_duration(fleet.lifetime),
        per_node_hour(Run::sum(&run.password_grants, from, to)),
        per_node_hour(Run::sum(&run.refresh_grants, from, to)),
        per_node_hour(Run::sum(&run.accepted, from, to) + Run::sum(&run.refused, from, to)),
    );
    vec![
        waves_target("steady state", &run, from, to),
        none_expired("steady state", &run),
    ]
}

/// The same six hours right after a boot storm (a whole system rebooted at once): how
/// long the storm's wave comes back. Reported, not judged: see BENCHMARKS.md.
pub fn after_reboot(nodes: usize, capacity: u32, boot: Boot, seed: u64) -> Vec<Target> {
    let mut fleet = Fleet::new(nodes, capacity);
    (fleet.boot, fleet.seed) = (boot, seed);
    fleet.run_for = Duration::from_secs(6 * 3600 + 600);
    let run = simulate(&fleet);
    println!("## After a boot storm: {nodes} nodes mounted within 60 s, the six hours after\n");
    hourly_table(&run, 600.0, fleet.run_for.as_secs_f64());
    vec![none_expired("after a boot storm", &run)]
}

/// The gateway down for `minutes`, two hours into a steady fleet.
pub fn outage(nodes: usize, capacity: u32, minutes: u64, seed: u64) -> Vec<Target> {
    let mut fleet = Fleet::new(nodes, capacity);
    fleet.seed = seed;
    fleet.mount_window = Duration::from_secs(3600);
    let down = 7200.0;
    let back = down + minutes as f64 * 60.0;
    fleet.outage = Some((Duration::from_secs(7200), Duration::from_secs(minutes * 60)));
    fleet.run_for = Duration::from_secs_f64(back + 2400.0);
    let run = simulate(&fleet);
    println!("## Outage: the gateway down for {minutes} minutes ({down:.0}–{back:.0} s)\n");
    load_table(&run, down - 600.0, back + 900.0, 300.0, Some(back));
    let scenario = format!("{minutes}-minute outage");
    let mut found = vec![none_expired(&scenario, &run)];
    let c3 = 3 * capacity;
    let recovery = run.peak_offered(back, fleet.run_for.as_secs_f64());
    if minutes < 60 {
        found.push(target(
            &scenario,
            format!("recovery load < 3 × C = {c3}/s"),
            format!("peak {recovery}/s"),
            recovery < c3,
        ));
    } else {
        let limit = 1.3 * fleet.drain_seconds();
        let last = run.last_success_after(back);
        found.push(target(
            &scenario,
            format!("every node recovers within 1.3 × N/C = {limit:.0} s of the gateway's return"),
            last.map_or("some node never did".into(), |t| {
                format!("{t:.1} s (peak load {recovery}/s)")
            }),
            last.is_some_and(|t| t <= limit),
        ));
    }
    found
}
