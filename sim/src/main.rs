//! `credlock-sim`: deterministic multi-process simulation of the credlock core.
//!
//! ```text
//! credlock-sim --seeds N [--from S]   N random seeds (N > 0); stop at the first failure
//! credlock-sim --seed S [--trace-hash] replay one seed
//! credlock-sim --zoo                  every bug-zoo scenario, naive vs real core
//! credlock-sim --exhaustive [--preemptions P] [--max-schedules N] [--allow-bounded]
//!                                     every schedule of small cases up to P preemptions;
//!                                     a case cut short at N schedules (200000) is reported
//!                                     "bounded at N" and fails (exit 3) unless allowed
//! credlock-sim --component --seeds N [--from S]  each seed on the native core and on the
//!                                     shipped component: both pass, same trace and
//!                                     world hashes
//! credlock-sim --component --seed S [--trace-hash]  replay one seed on the component
//! ```
//! `--perturb read-twice|random-short` (with `--component`) runs a component with one
//! import deliberately wrong, to see that the comparison catches it.
//! `--known-core-bugs [NAMES]` also injects the faults and operations that trigger reported,
//! not yet fixed core bugs: all of them, or the comma-separated names (see `KnownBugs`).

#[cfg(feature = "component")]
use credlock_sim::component::Perturbation;
use credlock_sim::run::CoreBuild;
use credlock_sim::world::KnownBugs;
#[cfg(feature = "component")]
use credlock_sim::{compare, component};
use credlock_sim::{explore, run, zoo};

use std::process::ExitCode;
use std::time::Instant;

/// The number after `name`, if `name` is given; a missing or unparsable number is an error
/// (never the default: `--seeds ''` must not quietly run the default count).
fn arg(args: &[String], name: &str) -> Result<Option<u64>, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => match args.get(i + 1).map(|v| v.parse::<u64>()) {
            Some(Ok(n)) => Ok(Some(n)),
            _ => Err(format!("{name} takes a number")),
        },
    }
}

/// The schedules `--exhaustive` runs per case unless `--max-schedules` says otherwise.
const MAX_SCHEDULES: u64 = 200_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run_main(args) {
        Ok(code) => code,
        Err(why) => {
            eprintln!("{why}");
            ExitCode::from(2)
        }
    }
}

/// The run `args` ask for; Err for arguments that ask for nothing or make no sense (exit 2).
fn run_main(args: Vec<String>) -> Result<ExitCode, String> {
    let has = |f: &str| args.iter().any(|a| a == f);
    let known_core_bugs = match args.iter().position(|a| a == "--known-core-bugs") {
        None => KnownBugs::default(),
        Some(i) => match args.get(i + 1).filter(|v| !v.starts_with("--")) {
            None => KnownBugs::all(),
            Some(list) => match KnownBugs::parse(list) {
                Some(k) => k,
                None => {
                    eprintln!(
                        "--known-core-bugs takes a comma-separated list of {}",
                        KnownBugs::NAMES.join(", ")
                    );
                    return Ok(ExitCode::from(2));
                }
            },
        },
    };
    let random_plan = |seed| run::Plan::random_with(seed, known_core_bugs);
    let extra = if known_core_bugs == KnownBugs::default() {
        String::new()
    } else {
        format!(" --known-core-bugs {}", known_core_bugs.names())
    };
    let build = match core_build(&args) {
        Ok(b) => b,
        Err(why) => {
            eprintln!("{why}");
            return Ok(ExitCode::from(2));
        }
    };
    if has("--no-group-commit") {
        credlock_sim::world::GROUP_COMMIT.store(false, std::sync::atomic::Ordering::Relaxed);
    }
    if has("--zoo") {
        let ok = zoo::run_zoo(has("--verbose"));
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    if has("--exhaustive") {
        let preemptions = arg(&args, "--preemptions")?.unwrap_or(2) as usize;
        let limit = arg(&args, "--max-schedules")?.unwrap_or(MAX_SCHEDULES);
        if limit == 0 {
            return Err("--max-schedules 0 would check nothing".into());
        }
        let mut total = 0;
        let mut bounded = Vec::new();
        for case in explore::cases() {
            let started = Instant::now();
            let e = explore::explore(&case, preemptions, limit);
            total += e.schedules;
            let secs = started.elapsed().as_secs_f64();
            let n = e.schedules;
            match e.outcome {
                explore::Outcome::All => println!(
                    "exhaustive: {} ({preemptions} preemptions): all {n} schedules in {secs:.1} s",
                    case.name
                ),
                explore::Outcome::Bounded => {
                    println!(
                        "exhaustive: {} ({preemptions} preemptions): bounded at {n} schedules in {secs:.1} s, not all of them",
                        case.name
                    );
                    bounded.push(case.name);
                }
                explore::Outcome::Failed { prefix, why } => {
                    println!(
                        "exhaustive: {} ({preemptions} preemptions): schedule {n} failed",
                        case.name
                    );
                    println!("FAILED on schedule {prefix:?}: {why}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        if bounded.is_empty() {
            println!(
                "exhaustive: {total} schedules checked, every schedule up to {preemptions} preemptions, all passed"
            );
            return Ok(ExitCode::SUCCESS);
        }
        // Every schedule run passed, but the run was not the exhaustive one asked for.
        println!(
            "exhaustive: {total} schedules checked and passed, but bounded at {limit} per case in {} case(s) ({}): not every schedule up to {preemptions} preemptions ran; raise --max-schedules, or pass --allow-bounded to accept a partial run",
            bounded.len(),
            bounded.join("; ")
        );
        return Ok(if has("--allow-bounded") {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        });
    }
    if let Some(seed) = arg(&args, "--seed")? {
        let plan = match args
            .iter()
            .position(|a| a == "--scenario")
            .and_then(|i| args.get(i + 1))
        {
            Some(name) => {
                let Some(s) = zoo::scenarios().into_iter().find(|s| s.name == name) else {
                    eprintln!("no scenario {name}");
                    return Ok(ExitCode::from(2));
                };
                (s.plan)(seed, has("--naive"))
            }
            None => random_plan(seed),
        };
        if build != CoreBuild::Native && has("--naive") {
            eprintln!("--naive switches exist only in the native build, not with --component");
            return Ok(ExitCode::from(2));
        }
        let out = run::run_on(&plan, build);
        println!(
            "seed {seed}: {} processes, {} ops, {} steps, {} refreshes, {} presentations",
            plan.processes, out.ops_done, out.steps, out.refreshes, out.presentations
        );
        for f in &out.failures {
            println!("FAILURE: {f}");
        }
        if has("--verbose") {
            println!("errors seen: {:?}", out.errors);
            println!("operations done: {:?}", out.succeeded);
            println!("queued writes: {:?}", out.queue);
        }
        if has("--trace-hash") {
            println!("{}", out.trace_hash);
        }
        return Ok(if out.failures.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let n = arg(&args, "--seeds")?.unwrap_or(100);
    let from = arg(&args, "--from")?.unwrap_or(0);
    if n == 0 {
        return Err("--seeds 0 would check nothing: give at least one seed".into());
    }
    #[cfg(feature = "component")]
    if build != CoreBuild::Native {
        return Ok(compare_builds(build, from, n, &random_plan, &extra));
    }
    let started = Instant::now();
    let mut steps = 0;
    let mut succeeded = std::collections::BTreeMap::new();
    let mut queue = std::collections::BTreeMap::new();
    let mut records = 0;
    for seed in from..from + n {
        let plan = random_plan(seed);
        records += u64::from(plan.database());
        let out = run::run(&plan);
        steps += out.steps;
        for (k, v) in out.succeeded {
            *succeeded.entry(k).or_insert(0u64) += v;
        }
        for (k, v) in out.queue {
            *queue.entry(k).or_insert(0u64) += v;
        }
        if !out.failures.is_empty() {
            println!("seed {seed} FAILED:");
            for f in &out.failures {
                println!("  {f}");
            }
            println!(
                "replay: cargo run --release -p credlock-sim -- --seed {seed} --trace-hash{extra}"
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{n} seeds passed ({steps} scheduling steps) in {secs:.1} s: {:.1} seeds/s",
        n as f64 / secs
    );
    println!("{records} of them on a database store (tenant records)");
    let maintenance: Vec<String> = [
        "rekey",
        "add-slot",
        "remove-slot",
        "recover",
        "recover-force",
        "quarantine",
        "import",
    ]
    .iter()
    .filter_map(|k| succeeded.get(k).map(|v| format!("{v} {k}")))
    .collect();
    if !maintenance.is_empty() {
        println!("maintenance operations done: {}", maintenance.join(", "));
    }
    if !queue.is_empty() {
        let events: Vec<String> = queue.iter().map(|(k, v)| format!("{v} {k}")).collect();
        println!("queued writes (group commit): {}", events.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// Which build `--component` and `--perturb` ask for.
#[cfg(feature = "component")]
fn core_build(args: &[String]) -> Result<CoreBuild, String> {
    let perturbation = match args
        .iter()
        .position(|a| a == "--perturb")
        .map(|i| args.get(i + 1).map(String::as_str))
    {
        None => None,
        Some(Some("read-twice")) => Some(Perturbation::ReadTwice),
        Some(Some("random-short")) => Some(Perturbation::RandomShort),
        Some(_) => return Err("--perturb takes read-twice or random-short".into()),
    };
    match (args.iter().any(|a| a == "--component"), perturbation) {
        (true, None) => Ok(CoreBuild::Component),
        (true, Some(p)) => Ok(CoreBuild::ComponentPerturbed(p)),
        (false, None) => Ok(CoreBuild::Native),
        (false, Some(_)) => Err("--perturb perturbs the component: add --component".into()),
    }
}

#[cfg(not(feature = "component"))]
fn core_build(args: &[String]) -> Result<CoreBuild, String> {
    if args.iter().any(|a| a == "--component" || a == "--perturb") {
        return Err("this credlock-sim was built without the `component` feature".into());
    }
    Ok(CoreBuild::Native)
}

/// `--component --seeds N`: every seed on the native core and on the shipped component; stop
/// at the first seed where either fails a checker or the two differ.
#[cfg(feature = "component")]
fn compare_builds(
    build: CoreBuild,
    from: u64,
    n: u64,
    random_plan: &dyn Fn(u64) -> run::Plan,
    extra: &str,
) -> ExitCode {
    let started = Instant::now();
    let loaded = component::warm_up();
    let load = started.elapsed().as_secs_f64();
    let (mut native_secs, mut component_secs) = (0.0, 0.0);
    let mut records = 0;
    for seed in from..from + n {
        let plan = random_plan(seed);
        records += u64::from(plan.database());
        let c = compare::compare(&plan, build);
        native_secs += c.native_time.as_secs_f64();
        component_secs += c.component_time.as_secs_f64();
        let problems = c.problems();
        if problems.is_empty() {
            continue;
        }
        println!("seed {seed} FAILED on the native core vs the shipped component:");
        println!("  native trace hash    {}", c.native.trace_hash);
        println!("  component trace hash {}", c.component.trace_hash);
        for p in &problems {
            println!("  {p}");
        }
        if let Some((i, a, b)) = compare::first_divergence(&plan, build) {
            let show = |e: Option<String>| e.unwrap_or_else(|| "(trace ended)".into());
            println!(
                "  traces part at event {i}: native {}, component {}",
                show(a),
                show(b)
            );
        }
        println!(
            "replay: cargo run --release -p credlock-sim -- --seed {seed} --trace-hash{extra} [--component]"
        );
        return ExitCode::FAILURE;
    }
    println!(
        "{n} seeds passed on the native core and on the shipped component, with the same trace \
         and world hashes: native {native_secs:.1} s, component {component_secs:.1} s \
         (+{load:.1} s {loaded}), {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
    println!("{records} of them on a database store (tenant records)");
    ExitCode::SUCCESS
}
