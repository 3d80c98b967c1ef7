//! The fleet simulation (`examples/fleet`, `scripts/fleet`) in the plain tier: the real
//! credential cache, its keeper and its backoff, in virtual time against a simulated
//! gateway (BENCHMARKS.md has the full run). Virtual time: seconds, even in a debug build.
//!
//! Where nodes queue at the gateway (the boot storm, the 70-minute outage) the run is the
//! issue's own, 10,000 nodes on 50 STS calls a second (about 2 s and 20 s here). A
//! thousand nodes on 5 a second (the same N/C) were used before, but at that scale chance
//! decides: a second's load of about 15 calls moves by a third, and a node refused by
//! chance in the last seconds waits the overload delay (a minute) again, which puts the
//! last node 260–290 s after the gateway's return depending on the seed. Where they do
//! not queue (steady state, the 10-minute outage), 1,000 nodes and C = 50.
//!
//! Judged here: every target that holds at 10,000 nodes. Not judged: the boot storm's
//! offered load under 3 × C *from the first 30 s*, which cannot hold as worded (the mounts'
//! first fetches alone arrive at N/60 s = 167/s until 60 s; BENCHMARKS.md), so the
//! strongest form that does hold is judged instead: under 3 × C from 30 s after the last
//! mount (133/s with the seed of BENCHMARKS.md), which the restart storm the unit used to
//! cause fails (617/s). Nor the steady state's 60 s windows, which at 1,000 nodes hold
//! about 30 calls each, so that chance alone moves a window by a fifth (the 10,000-node
//! run judges them).

#[allow(dead_code)]
#[path = "../../examples/fleet/sim.rs"]
mod sim;

#[allow(dead_code)]
#[path = "../../examples/fleet/report.rs"]
mod report;

use report::Target;
use sim::Boot;

const NODES: usize = 1_000;

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

/// The boot storm's nodes and gateway: the issue's own.
const STORM_NODES: usize = 10_000;
const STORM_CAPACITY: u32 = 50;
/// The target that cannot hold as worded (see the top of this file).
const AS_WORDED: &str = "offered load < 3 × C = 150/s after the first 30 s";
/// Its strongest form that holds.
const AFTER_THE_MOUNTS: &str = "offered load < 3 × C = 150/s from 30 s after the last mount";

#[test]
fn in_a_boot_storm_every_node_gets_credentials_in_time_and_the_load_falls_under_3c() {
    for boot in [Boot::Unit, Boot::Lazy] {
        let targets = report::boot_storm(STORM_NODES, STORM_CAPACITY, boot, 1);
        assert!(targets
            .iter()
            .any(|t| t.target == AFTER_THE_MOUNTS && t.pass));
        assert_held(targets, &[AS_WORDED]);
    }
}

/// The unit as it was (a failed first fetch ended the daemon, and systemd restarted it
/// every 10 s) gets every node served in time too, but with a restart storm several times
/// 3 × C: the load target tells the two apart.
#[test]
fn the_restart_storm_the_unit_used_to_cause_fails_the_load_target() {
    let targets = report::boot_storm(STORM_NODES, STORM_CAPACITY, Boot::Restart, 1);
    let load = targets
        .iter()
        .find(|t| t.target == AFTER_THE_MOUNTS)
        .expect("the load target");
    assert!(!load.pass, "{}", load.measured);
    assert_held(targets, &[AS_WORDED, AFTER_THE_MOUNTS]);
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
    assert_held(report::outage(STORM_NODES, STORM_CAPACITY, 70, 5), &[]);
}
