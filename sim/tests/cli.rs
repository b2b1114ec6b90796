//! The simulator's own contract: a seed fully determines a run, and its checkers do fire
//! (a zoo scenario with the bug switched on must fail and print how to replay it).

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_credlock-sim");

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn same_seed_same_trace_hash() {
    // 3 and 17 rekey and change slots beside writers; 36 recovers a corrupted store.
    for seed in ["3", "17", "36", "123456789"] {
        let (code_a, a) = run(&["--seed", seed, "--trace-hash"]);
        let (code_b, b) = run(&["--seed", seed, "--trace-hash"]);
        assert_eq!((code_a, code_b), (0, 0), "{a}");
        assert_eq!(a, b, "seed {seed} is not deterministic");
        assert_eq!(a.lines().last().unwrap().len(), 32);
    }
    let (_, x) = run(&["--seed", "3", "--trace-hash"]);
    let (_, y) = run(&["--seed", "4", "--trace-hash"]);
    assert_ne!(x.lines().last(), y.lines().last());
}

#[test]
fn checkers_fire_on_a_naive_core() {
    // Like the zoo: some seed among the first few must catch the naive core...
    let caught = (0..12).map(|s| s.to_string()).find_map(|seed| {
        let (code, out) = run(&["--scenario", "retry-lost-reply", "--seed", &seed, "--naive"]);
        (code == 1).then_some((seed, out))
    });
    let (seed, out) =
        caught.expect("no seed caught a core that retries refreshes whose reply was lost");
    assert!(
        out.contains("FAILURE: refresh token presented twice"),
        "{out}"
    );
    // ...and the real core passes that very seed.
    let (code, out) = run(&["--scenario", "retry-lost-reply", "--seed", &seed]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_failing_batch_prints_its_replay_command() {
    // Every random seed passes on the real core, so check the format on a passing batch and
    // the replay line on the zoo's naive output instead.
    let (code, out) = run(&["--seeds", "5"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("5 seeds passed"), "{out}");
    let (code, out) = run(&["--zoo", "--verbose"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("replay: credlock-sim --scenario"), "{out}");
    assert_eq!(out.matches("credlock=PASS").count(), 14, "{out}");
}

#[test]
fn an_exploration_cut_short_says_so_and_fails() {
    // 10 schedules cannot cover any case at 2 preemptions: "bounded", never "all passed".
    let (code, out) = run(&[
        "--exhaustive",
        "--preemptions",
        "2",
        "--max-schedules",
        "10",
    ]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("bounded at 10 schedules"), "{out}");
    assert!(!out.contains("all passed"), "{out}");
    // Accepted when asked for, and still reported as bounded.
    let (code, out) = run(&[
        "--exhaustive",
        "--preemptions",
        "2",
        "--max-schedules",
        "10",
        "--allow-bounded",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("but bounded at 10 per case"), "{out}");
    // A complete exploration says it covered every schedule.
    let (code, out) = run(&["--exhaustive", "--preemptions", "0"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("every schedule up to 0 preemptions, all passed"),
        "{out}"
    );
}

#[test]
fn a_run_that_checks_nothing_is_refused() {
    for args in [
        &["--seeds", "0"][..],
        &["--seeds", ""],
        &["--seeds", "many"],
        &["--exhaustive", "--max-schedules", "0"],
    ] {
        let (code, out) = run(args);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(!out.contains("passed"), "{args:?}: {out}");
    }
}
