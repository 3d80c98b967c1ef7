//! The fleet simulation (`examples/fleet`, `scripts/fleet`) at 1,000 nodes: the real
//! credential cache, its keeper and its backoff, in virtual time against a simulated
//! gateway (BENCHMARKS.md has the 10,000-node run). Virtual time: seconds, even in a
//! debug build.
//!
//! Where nodes queue at the gateway (the boot storm, the 70-minute outage) it serves 5
//! STS calls a second here, so that N/C (200 s) and the mounts' arrival rate against C
//! are those of 10,000 nodes on 50 a second: at C = 50 a thousand nodes never queue, and
//! the 1.3 × N/C targets (26 s) would be shorter than the 60 s the mounts take to arrive.
//! Where they do not (steady state, the 10-minute outage), C is the 50: at 5, a
//! second's load of about 10 calls would be judged against 15 by chance alone.
//!
//! Judged here: every target that holds at 10,000 nodes. Not judged: the boot storm's
//! offered load under 3 × C, which fails at 10,000 nodes too (BENCHMARKS.md says why);
//! and the steady state's 60 s windows, which at 1,000 nodes hold about 30 calls each, so
//! that chance alone moves a window by a fifth (the 10,000-node run judges them).

#[allow(dead_code)]
#[path = "../../examples/fleet/sim.rs"]
mod sim;

#[allow(dead_code)]
#[path = "../../examples/fleet/report.rs"]
mod report;

use report::Target;
use sim::Boot;

const NODES: usize = 1_000;
/// 10,000 nodes' N/C with a tenth of the nodes.
const CAPACITY: u32 = 5;

/// Asserts every target whose wording starts with none of `skipped`, and that some were.
fn assert_held(targets: Vec<Target>, skipped: &[&str]) {
    let judged: Vec<&Target> = targets
        .iter()
        .filter(|t| !skipped.iter().any(|s| t.target.starts_with(s)))
        .collect();
    assert!(!judged.is_empty());
    for t in judged {
        assert!(
            t.pass,
            "{}: {} (measured {})",
            t.scenario, t.target, t.measured
        );
    }
}

#[test]
fn in_a_boot_storm_every_node_gets_credentials_in_time_however_the_mount_retries() {
    for boot in [Boot::Restart, Boot::Lazy] {
        let targets = report::boot_storm(NODES, CAPACITY, boot, 1);
        assert_held(targets, &["offered load"]);
    }
}

#[test]
fn six_hours_of_steady_state_serve_nothing_expired() {
    assert_held(report::steady(NODES, 50, 3), &["STS calls in any 60 s"]);
}

#[test]
fn after_a_10_minute_outage_nothing_expired_is_served_and_recovery_is_gentle() {
    assert_held(report::outage(NODES, 50, 10, 4), &[]);
}

#[test]
fn after_a_70_minute_outage_every_node_recovers_in_time() {
    assert_held(report::outage(NODES, CAPACITY, 70, 5), &[]);
}
