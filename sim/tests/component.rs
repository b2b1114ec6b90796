//! The shipped component under the simulator. What this guards against: a `.wasm` that
//! behaves differently from the native core the simulator's seeds test (a different build,
//! an import mapped wrongly, a crash that does not unwind through wasmtime as it does
//! natively, a trapped instance whose locks stay held), going unnoticed because only the
//! native build was simulated.
#![cfg(feature = "component")]

use credlock_sim::compare::{compare, first_divergence};
use credlock_sim::component::Perturbation;
use credlock_sim::run::{run_with, CoreBuild, Plan};
use std::process::Command;

/// Seeds with rekeys and slot changes beside writers (3, 17), a recovered corrupted store
/// (36), and a few plain ones.
const SEEDS: [u64; 6] = [0, 1, 3, 17, 36, 123_456_789];

#[test]
fn the_component_leaves_the_native_trace() {
    let mut crashes = 0;
    for seed in SEEDS {
        let plan = Plan::random(seed);
        let native = run_with(&plan, CoreBuild::Native, true);
        let component = run_with(&plan, CoreBuild::Component, true);
        assert!(
            native.failures.is_empty(),
            "seed {seed}: {:?}",
            native.failures
        );
        assert!(
            component.failures.is_empty(),
            "seed {seed}: {:?}",
            component.failures
        );
        // The logs first: a difference shows where the builds part.
        let first = (0..native.log.len().max(component.log.len()))
            .find(|&i| native.log.get(i) != component.log.get(i));
        if let Some(i) = first {
            panic!(
                "seed {seed}: the traces part at event {i}: native {:?}, component {:?}",
                native.log.get(i),
                component.log.get(i)
            );
        }
        assert_eq!(native.trace_hash, component.trace_hash, "seed {seed}");
        assert_eq!(native.world_hash, component.world_hash, "seed {seed}");
        assert!(native.ops_done > 0, "seed {seed} did nothing");
        crashes += native.log.iter().filter(|e| e.ends_with(":crash;")).count();
    }
    // The comparison covers crashes: processes killed inside a platform call, which in the
    // component is a panic carried out through wasmtime.
    assert!(crashes > 0, "no seed crashed a process: pick other seeds");
}

#[test]
fn a_perturbed_import_is_caught() {
    for seed in [0, 3] {
        let plan = Plan::random(seed);
        let perturbed = CoreBuild::ComponentPerturbed(Perturbation::ReadTwice);
        let c = compare(&plan, perturbed);
        let problems = c.problems();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("trace hashes differ")),
            "seed {seed}: {problems:?}"
        );
        let (_, native, component) = first_divergence(&plan, perturbed).expect("the traces differ");
        // The extra read is where they part: the component's next event is a read too.
        assert!(
            component.as_deref().is_some_and(|e| e.contains("read")),
            "seed {seed}: native {native:?}, component {component:?}"
        );
    }
}

#[test]
fn a_trapped_instance_ends_its_process_and_releases_its_locks() {
    let plan = Plan::random(1);
    let out = run_with(
        &plan,
        CoreBuild::ComponentPerturbed(Perturbation::RandomShort),
        false,
    );
    assert!(
        out.failures
            .iter()
            .any(|f| f.contains("panicked: the credlock component trapped")),
        "{:?}",
        out.failures
    );
    // The setup process trapped while holding the store lock (it seals under it): had its
    // instance not been discarded with its resources, the lock would still be held.
    assert!(
        !out.failures.iter().any(|f| f.contains("ended holding")),
        "{:?}",
        out.failures
    );
}

#[test]
fn the_cli_compares_the_builds() {
    let out = Command::new(env!("CARGO_BIN_EXE_credlock-sim"))
        .args(["--component", "--seeds", "3", "--from", "40"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("3 seeds passed on the native core and on the shipped component"),
        "{stdout}"
    );
}

#[test]
fn the_cli_fails_on_a_difference_and_prints_both_hashes() {
    let out = Command::new(env!("CARGO_BIN_EXE_credlock-sim"))
        .args(["--component", "--seeds", "3", "--from", "40"])
        .args(["--perturb", "read-twice"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for expected in [
        "seed 40 FAILED on the native core vs the shipped component",
        "native trace hash",
        "component trace hash",
        "trace hashes differ",
        "traces part at event",
        "--seed 40 --trace-hash",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in {stdout}");
    }
}
