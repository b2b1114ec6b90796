//! The database model's layout: a world that loses sessions keeps its store as PostgreSQL
//! does, a header plus one sealed record per tenant. What this guards against: the core's
//! record reads and writes (a call about one tenant reads and writes that tenant's record
//! only) going unexplored under interleavings, crashes and session loss, or checkers that
//! look only at a header without tenants and so would prove nothing about them.

use credlock_sim::run::{run_with, CoreBuild, OpKind, Plan};
use credlock_sim::zoo::scenarios;

/// How many database seeds the range test runs.
const DATABASE_SEEDS: usize = 30;

#[test]
fn a_range_of_database_seeds_passes_on_tenant_records() {
    let mut ran = 0;
    let (mut record_reads, mut record_writes, mut fenced) = (0, 0, 0);
    for seed in 0.. {
        let plan = Plan::random(seed);
        if !plan.database() {
            continue;
        }
        let out = run_with(&plan, CoreBuild::Native, true);
        assert!(out.failures.is_empty(), "seed {seed}: {:?}", out.failures);
        // A file store's platform calls never appear here, and record calls do.
        assert!(
            !out.log.iter().any(|e| e.contains("replace:")),
            "seed {seed} wrote a store file in a database world"
        );
        record_reads += out
            .log
            .iter()
            .filter(|e| e.contains(":read-record"))
            .count();
        record_writes += out
            .log
            .iter()
            .filter(|e| e.ends_with(":write-records:commit;"))
            .count();
        fenced += out.errors.get("Io").copied().unwrap_or(0);
        ran += 1;
        if ran == DATABASE_SEEDS {
            break;
        }
    }
    assert!(record_reads > 0, "no seed read a tenant record");
    assert!(record_writes > 0, "no seed wrote tenant records");
    assert!(
        fenced > 0,
        "no seed met a database error (session loss, fence)"
    );
}

#[test]
fn recover_and_quarantine_refuse_a_database_store() {
    // The run's own check fails a recover or quarantine that does anything but refuse with
    // `tenant-records` on a database store; here it must have been asked, and refused.
    let mut refused = 0;
    for seed in 0..6 {
        let mut plan = Plan::random(seed);
        plan.faults.session_loss = 30_000;
        plan.faults.corruption = 0;
        plan.ops = vec![
            OpKind::PutOwn,
            OpKind::Token,
            OpKind::Recover,
            OpKind::RecoverForce,
            OpKind::Quarantine,
            OpKind::QuarantineForce,
        ];
        let out = run_with(&plan, CoreBuild::Native, false);
        assert!(out.failures.is_empty(), "seed {seed}: {:?}", out.failures);
        refused += out.errors.get("Recover").copied().unwrap_or(0);
        for op in ["recover", "recover-force", "quarantine", "quarantine-force"] {
            assert!(
                !out.succeeded.contains_key(op),
                "seed {seed}: {op} succeeded"
            );
        }
    }
    assert!(refused > 0, "no recover or quarantine was run");
}

/// The first of the zoo's first seeds that catches `name` with its bug switched on: the
/// seed and its failures. The real platform must pass that very seed.
fn caught(name: &str) -> (u64, Vec<String>, Vec<String>) {
    let scenario = scenarios()
        .into_iter()
        .find(|s| s.name == name)
        .expect("the zoo has the scenario");
    let caught = (0..12).find_map(|seed| {
        let plan = (scenario.plan)(seed, true);
        assert!(plan.database(), "{name} is not a database world");
        let out = run_with(&plan, CoreBuild::Native, true);
        (!out.failures.is_empty()).then_some((seed, out))
    });
    let (seed, out) = caught.unwrap_or_else(|| panic!("no seed caught {name}"));
    let real = run_with(&(scenario.plan)(seed, false), CoreBuild::Native, false);
    assert!(real.failures.is_empty(), "seed {seed}: {:?}", real.failures);
    (seed, out.failures, out.log)
}

#[test]
fn an_unfenced_record_write_is_caught() {
    // A database world's writes are record writes: a writer whose lock was lost applies its
    // header and records over newer ones.
    let (seed, failures, log) = caught("unfenced-database-write");
    assert!(
        log.iter().any(|e| e.ends_with(":write-records:commit;")),
        "seed {seed} did not write records"
    );
    assert!(
        failures
            .iter()
            .any(|f| f.contains("lost") || f.contains("went from")),
        "seed {seed}: {failures:?}"
    );
}

#[test]
fn an_unfenced_record_read_is_caught() {
    // A reader under the shared lock pairs the header it read with records a lock-lost
    // writer committed since: after a rekey they do not open.
    let (seed, failures, log) = caught("unfenced-record-read");
    assert!(
        log.iter().any(|e| e.contains(":read-record")),
        "seed {seed} did not read records"
    );
    assert!(
        failures
            .iter()
            .any(|f| f.contains("a reader saw an undecodable store")),
        "seed {seed}: {failures:?}"
    );
}

#[cfg(feature = "component")]
#[test]
fn the_shipped_component_reads_and_writes_the_same_records() {
    // The component's `files` imports for records forward to the same platform: the same
    // calls in the same order (trace hash) and the same header and record bytes (world hash).
    use credlock_sim::compare::compare;
    let seeds = (0..).filter(|&s| Plan::random(s).database()).take(5);
    for seed in seeds {
        let c = compare(&Plan::random(seed), CoreBuild::Component);
        assert!(c.problems().is_empty(), "seed {seed}: {:?}", c.problems());
        assert!(c.native.ops_done > 0, "seed {seed} did nothing");
    }
}
