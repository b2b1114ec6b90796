//! The bug zoo: each failure mode seen in the field, as a scenario. The naive variant (the
//! bug switched on) must fail it and the real core must pass it, over several seeds each.

use crate::naive::NaiveOps;
use crate::run::{run, OpKind, Plan};
use crate::world::{Faults, NaivePlatform};
use credlock_core::store::Naive;

pub struct Scenario {
    pub name: &'static str,
    pub what: &'static str,
    /// Shape the plan; `naive` says whether to switch the bug on.
    pub plan: fn(u64, bool) -> Plan,
}

const SEEDS_PER_SCENARIO: u64 = 12;

fn base(seed: u64, ops: Vec<OpKind>, processes: usize, per: usize) -> Plan {
    let mut p = Plan::random(seed);
    p.faults = Faults::default();
    p.ops = ops;
    p.processes = processes;
    p.ops_per_process = per;
    // Long enough that clock skew (±0.5 s) is small beside it, as with real tokens.
    p.token_lifetime_ms = 30_000;
    p.options.lock_timeout_ms = 5_000;
    p.options.http_timeout_ms = 1_000;
    p
}

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "stale-refresh-token",
            what: "exchanging the refresh token read before taking the lock",
            plan: |seed, naive| {
                // An expired token, several callers, and clocks that jump: a caller whose
                // clock runs ahead finds even the winner's new token expired and refreshes
                // again, with whatever refresh token it holds.
                let mut p = base(seed, vec![OpKind::Token], 4, 3);
                p.initial_expired = true;
                p.token_lifetime_ms = 4_000;
                p.faults.clock_jump = 300_000;
                p.naive = Naive {
                    stale_refresh_token: naive,
                    ..Naive::default()
                };
                p.liveness = false;
                p
            },
        },
        Scenario {
            name: "no-reread-under-lock",
            what: "not re-reading under the refresh lock: two refreshes for one expiry",
            plan: |seed, naive| {
                let mut p = base(seed, vec![OpKind::Token], 2, 1);
                p.initial_expired = true;
                p.naive = Naive {
                    no_reread_under_lock: naive,
                    ..Naive::default()
                };
                p.liveness = false;
                p
            },
        },
        Scenario {
            name: "thundering-herd",
            what: "many processes waking together with one expired token",
            plan: |seed, naive| {
                let mut p = base(seed, vec![OpKind::Token], 12, 1);
                p.initial_expired = true;
                p.naive = Naive {
                    no_reread_under_lock: naive,
                    ..Naive::default()
                };
                p.liveness = false;
                p
            },
        },
        Scenario {
            name: "invalid-grant-wipes-winner",
            what: "the loser of invalid_grant wiping the winner's fresh tokens",
            plan: |seed, naive| {
                // Processes that present a stale refresh token lose with invalid_grant; the
                // bug is what the loser then does to the winner's tokens. Duplicates are
                // allowed here so that only the wipe checker can catch it.
                let mut p = base(seed, vec![OpKind::Token], 4, 3);
                p.initial_expired = true;
                p.token_lifetime_ms = 4_000;
                p.faults.clock_jump = 300_000;
                p.naive = Naive {
                    stale_refresh_token: naive,
                    invalid_grant_wipes: naive,
                    ..Naive::default()
                };
                p.allow_duplicate_presentations = true;
                p.liveness = false;
                p
            },
        },
        Scenario {
            name: "torn-in-place-write",
            what: "writing the store in place with O_TRUNC: readers see torn files",
            plan: |seed, naive| {
                // Readers hold the shared lock, so the tear shows when a writer dies mid-write.
                let mut p = base(
                    seed,
                    vec![OpKind::PutShared, OpKind::List, OpKind::Token],
                    4,
                    6,
                );
                p.faults.crash = 30_000;
                p.naive_platform = NaivePlatform {
                    in_place_writes: naive,
                    ..NaivePlatform::default()
                };
                p
            },
        },
        Scenario {
            name: "ack-before-write",
            what: "group commit acknowledging queued writes before the write that carries them is durable",
            plan: |seed, naive| {
                // Writers queue behind one another; writes fail and processes crash, so some
                // write that a receipt promised never lands.
                let mut p = base(seed, vec![OpKind::PutOwn, OpKind::PutShared], 5, 6);
                p.faults.crash = 40_000;
                p.faults.write_error = 150_000;
                p.naive = Naive {
                    ack_before_write: naive,
                    ..Naive::default()
                };
                p
            },
        },
        Scenario {
            name: "overwrite-unreadable",
            what: "overwriting a store that was only unreadable (corrupt)",
            plan: |seed, naive| {
                let mut p = base(
                    seed,
                    vec![OpKind::PutOwn, OpKind::PutShared, OpKind::List],
                    3,
                    5,
                );
                p.faults.corruption = 400_000;
                p.naive = Naive {
                    overwrite_unreadable: naive,
                    ..Naive::default()
                };
                p
            },
        },
        Scenario {
            name: "mint-key-over-ciphertext",
            what:
                "minting a new key when the keyring entry is unavailable, while a ciphertext exists",
            plan: |seed, naive| {
                let mut p = base(seed, vec![OpKind::PutOwn, OpKind::PutShared], 3, 5);
                p.faults.keyring_unavailable = 300_000;
                p.naive = Naive {
                    mint_key_on_key_error: naive,
                    ..Naive::default()
                };
                p
            },
        },
        Scenario {
            name: "delete-lock-file",
            what: "deleting the lock file on release: two holders of one lock",
            plan: |seed, naive| {
                let mut p = base(seed, vec![OpKind::PutShared], 6, 4);
                p.naive_platform = NaivePlatform {
                    delete_lock_files: naive,
                    ..NaivePlatform::default()
                };
                p
            },
        },
        Scenario {
            name: "unfenced-database-write",
            what: "a database store written without the version fence: a writer whose lock was lost overwrites newer writes",
            plan: |seed, naive| {
                let mut p = base(seed, vec![OpKind::PutOwn, OpKind::PutShared], 4, 5);
                p.faults.session_loss = 300_000;
                p.naive_platform = NaivePlatform {
                    unfenced_writes: naive,
                    ..NaivePlatform::default()
                };
                p
            },
        },
        Scenario {
            name: "unfenced-record-read",
            what: "a database store's tenant records read without the version fence: a reader mixes the header of one version with the records of the next",
            plan: |seed, naive| {
                // Rekeys re-seal every record, so a reader that pairs an old header with new
                // records finds records that do not open: an undecodable read.
                let mut p = base(
                    seed,
                    vec![OpKind::Rekey, OpKind::List, OpKind::Token, OpKind::PutShared],
                    5,
                    6,
                );
                p.faults.session_loss = 500_000;
                p.naive_platform = NaivePlatform {
                    unfenced_record_reads: naive,
                    ..NaivePlatform::default()
                };
                p
            },
        },
        Scenario {
            name: "retry-lost-reply",
            what: "retrying a refresh whose reply was lost after the server rotated",
            plan: |seed, naive| {
                let mut p = base(seed, vec![OpKind::Token], 2, 3);
                p.initial_expired = true;
                p.faults.reply_lost = 500_000;
                p.naive = Naive {
                    ignore_intent: naive,
                    ..Naive::default()
                };
                p.liveness = false;
                p
            },
        },
        Scenario {
            name: "rekey-outside-lock",
            what: "a rekey that reads under the shared lock and writes the re-sealed copy later: a write in between is lost",
            plan: |seed, naive| {
                let mut p = base(
                    seed,
                    vec![OpKind::PutShared, OpKind::PutOwn, OpKind::Rekey, OpKind::List],
                    4,
                    4,
                );
                p.naive_ops = NaiveOps {
                    rekey_outside_lock: naive,
                    ..NaiveOps::default()
                };
                p
            },
        },
        Scenario {
            name: "recover-replays-spent-token",
            what: "restoring the backup with its refresh tokens as they were: one spent since the backup is presented again",
            plan: |seed, naive| {
                // Refreshes, corruption striking what they write, and recovers: a backup
                // from before a refresh's intent restores a refresh token already spent.
                let mut p = base(
                    seed,
                    vec![OpKind::Token, OpKind::TokenForceRefresh, OpKind::Recover],
                    3,
                    8,
                );
                p.initial_expired = true;
                p.token_lifetime_ms = 4_000;
                p.faults.corruption = 300_000;
                p.naive_ops = NaiveOps {
                    recover_unmarked: naive,
                    ..NaiveOps::default()
                };
                p
            },
        },
    ]
}

/// Whether a plan "fails": a checker fired, or (for refresh scenarios) more than one refresh
/// went out for what one refresh could serve.
fn failed(name: &str, plan: &Plan) -> Option<String> {
    let out = run(plan);
    if let Some(f) = out.failures.first() {
        return Some(f.clone());
    }
    if matches!(name, "no-reread-under-lock" | "thundering-herd") && out.refreshes > 1 {
        return Some(format!("{} refreshes for one expiry", out.refreshes));
    }
    None
}

/// Run every scenario on both cores; returns whether the real core passed them all.
pub fn run_zoo(verbose: bool) -> bool {
    let mut all_pass = true;
    for s in scenarios() {
        let naive_failure = (0..SEEDS_PER_SCENARIO)
            .find_map(|seed| failed(s.name, &(s.plan)(seed, true)).map(|f| (seed, f)));
        let real_failure = (0..SEEDS_PER_SCENARIO)
            .find_map(|seed| failed(s.name, &(s.plan)(seed, false)).map(|f| (seed, f)));
        println!(
            "{}: naive={} credlock={}",
            s.name,
            if naive_failure.is_some() {
                "FAIL"
            } else {
                "pass"
            },
            if real_failure.is_some() {
                "FAIL"
            } else {
                "PASS"
            }
        );
        if verbose {
            println!("    ({})", s.what);
            if let Some((seed, f)) = &naive_failure {
                println!("    naive, seed {seed}: {f}");
                println!(
                    "    replay: credlock-sim --scenario {} --seed {seed} --naive",
                    s.name
                );
            }
        }
        if let Some((seed, f)) = real_failure {
            println!("    credlock FAILED on seed {seed}: {f}");
            println!(
                "    replay: credlock-sim --scenario {} --seed {seed}",
                s.name
            );
            all_pass = false;
        }
        if naive_failure.is_none() {
            println!(
                "    the naive variant was not caught: the checkers are too weak for this scenario"
            );
            all_pass = false;
        }
    }
    all_pass
}
