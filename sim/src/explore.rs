//! Exhaustive exploration of small cases: every schedule of 2-3 processes and a few
//! operations, up to a bound on preemptions (a switch away from a process that could have
//! continued). Depth-first over the choice points, replaying each prefix.

use crate::platform::SimPlatform;
use crate::sched::{Script, Sim};
use crate::world::{Pid, World};
use credlock_core::{Options, Store, StoreError};
use std::sync::Arc;

pub struct Case {
    pub name: &'static str,
    pub processes: Vec<Vec<&'static str>>,
    /// Corrupt the store after the setup (which leaves a backup to recover from).
    pub corrupt: bool,
    /// Errors this case expects (any other error fails the schedule).
    pub expected: fn(&StoreError) -> bool,
}

fn none_expected(_: &StoreError) -> bool {
    false
}

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "two puts to one tenant, one to another",
            processes: vec![vec!["put shared", "put own"], vec!["put shared"]],
            corrupt: false,
            expected: none_expected,
        },
        Case {
            // Group commit: whoever holds the lock writes what the others posted, in every
            // order of posting, taking, settling and collecting.
            name: "three writers queueing behind one another",
            processes: vec![vec!["put shared"], vec!["put shared"], vec!["put own"]],
            corrupt: false,
            expected: none_expected,
        },
        Case {
            name: "two expired-token refreshes",
            processes: vec![vec!["token"], vec!["token"]],
            corrupt: false,
            expected: none_expected,
        },
        Case {
            name: "refresh beside a new login",
            processes: vec![vec!["token"], vec!["login"]],
            corrupt: false,
            expected: none_expected,
        },
        Case {
            name: "three processes: refresh, put, list",
            processes: vec![vec!["token"], vec!["put shared"], vec!["list"]],
            corrupt: false,
            expected: none_expected,
        },
        Case {
            name: "rekey beside a put and a reader",
            processes: vec![vec!["rekey"], vec!["put shared", "list"]],
            corrupt: false,
            expected: none_expected,
        },
        Case {
            name: "slot add beside a rekey and a refresh",
            processes: vec![vec!["add-slot", "remove-slot"], vec!["rekey", "token"]],
            corrupt: false,
            expected: none_expected,
        },
        Case {
            name: "recover of a corrupt store beside a writer and a refresh",
            processes: vec![vec!["recover"], vec!["put shared", "token"]],
            corrupt: true,
            // Before the recover, the store is unreadable; after it, the restored refresh
            // token is of unknown outcome (it may have been spent since the backup).
            expected: |e| {
                matches!(
                    e,
                    StoreError::Corrupt(_) | StoreError::RefreshOutcomeUnknown(_)
                )
            },
        },
    ]
}

fn one(case: &Case, script: Script) -> (Vec<String>, Script, u64) {
    let mut world = World::new(1);
    world.server.lifetime_ms = 1_000;
    let sim = Sim::new(world, 50_000);
    let opts = Options {
        lock_timeout_ms: 10_000,
        http_timeout_ms: 1_000,
        allow_insecure_http: false,
    };
    // Setup: an expired refreshable token and an empty shared tenant, without scheduling
    // choices; for a corrupt case, one more write (so that a backup exists), then a flipped
    // bit in the body.
    let corrupt = case.corrupt;
    sim.run(vec![Box::new({
        let sim = Arc::clone(&sim);
        move |pid| {
            let mut p = SimPlatform { sim: Arc::clone(&sim), pid };
            let json = {
                let mut st = sim.lock();
                let (at, rt) = st.world.server.login();
                format!(r#"{{"access_token":"{at}","refresh_token":"{rt}","expires_in":0,"token_endpoint":"https://as.sim/token","client_id":"sim"}}"#)
            };
            Store::new(&mut p, opts).unwrap().put(crate::run::REFRESHING, &json).unwrap();
            if corrupt {
                Store::new(&mut p, opts).unwrap().put("other", r#"{"access_token":"o"}"#).unwrap();
                let mut st = sim.lock();
                let w = &mut st.world;
                let bytes = w.disk.store.live.as_mut().expect("written above");
                let last = bytes.len() - 1;
                bytes[last] ^= 1;
                let bytes = bytes.clone();
                w.disk.store.durable = Some(bytes.clone());
                w.disk.corrupted = true;
                w.history.unreadable.push(bytes);
            }
        }
    })]);
    sim.lock().script = Some(script);
    let bodies: Vec<Box<dyn FnOnce(Pid) + Send>> = case
        .processes
        .iter()
        .map(|ops| {
            let ops = ops.clone();
            let sim = Arc::clone(&sim);
            let expected = case.expected;
            Box::new(move |pid: Pid| {
                let mut p = SimPlatform { sim: Arc::clone(&sim), pid };
                for op in ops {
                    sim.lock().procs[pid].doing = op.split(' ').next().unwrap_or(op);
                    let mut s = Store::new(&mut p, opts).unwrap();
                    let r: Result<(), StoreError> = match op {
                        "put shared" => s.put("shared", &format!(r#"{{"access_token":"s{pid}"}}"#)).map(|r| {
                            sim.lock().world.history.acked_puts.push(("shared".into(), r.revision, format!("s{pid}"), r.generation));
                        }),
                        "put own" => s.put(&format!("p{pid}"), r#"{"access_token":"own"}"#).map(|r| {
                            sim.lock().world.history.acked_puts.push((format!("p{pid}"), r.revision, "own".into(), r.generation));
                        }),
                        "token" => s.token(crate::run::REFRESHING, 100).map(|_| ()),
                        "list" => s.list().map(|_| ()),
                        "rekey" => s.rekey().map(|_| ()),
                        "add-slot" => s.add_slot("passphrase").map(|_| ()),
                        "remove-slot" => s.remove_slot(0, false).map(|_| ()),
                        "recover" => s.recover(false).map(|_| ()),
                        "login" => {
                            let json = {
                                let mut st = sim.lock();
                                let (at, rt) = st.world.server.login();
                                format!(r#"{{"access_token":"{at}","refresh_token":"{rt}","expires_in":60}}"#)
                            };
                            s.put(crate::run::REFRESHING, &json).map(|_| ())
                        }
                        other => unreachable!("unknown op {other}"),
                    };
                    match r {
                        Err(e) if !(expected)(&e) => {
                            sim.lock().world.fail(format!("process {pid}: {op} failed without faults: {e}"));
                        }
                        _ => {}
                    }
                }
            }) as Box<dyn FnOnce(Pid) + Send>
        })
        .collect();
    sim.run(bodies);
    let mut st = sim.lock();
    crate::check::final_checks(&mut st.world, false);
    // Fault-free: two processes finding one expired token cost one refresh.
    if case.name == "two expired-token refreshes" && st.world.server.successes != 1 {
        let n = st.world.server.successes;
        st.world.fail(format!("{n} refreshes for one expiry"));
    }
    let script = st.script.take().expect("set above");
    (st.world.history.failures.clone(), script, st.steps)
}

/// How an exploration ended.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Every schedule up to the preemption bound ran and passed.
    All,
    /// The schedule limit was reached first: every schedule run passed, but not every
    /// schedule up to the preemption bound was run.
    Bounded,
    /// This schedule (its choice prefix) failed.
    Failed { prefix: Vec<usize>, why: String },
}

/// What [`explore`] did: how many schedules it ran and how it ended.
#[derive(Debug)]
pub struct Exploration {
    pub schedules: u64,
    pub outcome: Outcome,
}

/// Explore `case` up to `preemptions`, running at most `limit` schedules.
pub fn explore(case: &Case, preemptions: usize, limit: u64) -> Exploration {
    let mut prefix: Vec<usize> = Vec::new();
    let mut count = 0;
    loop {
        let script = Script {
            choices: prefix.clone(),
            pos: 0,
            seen: Vec::new(),
            preemptions_left: preemptions,
        };
        let (failures, script, _) = one(case, script);
        count += 1;
        if let Some(f) = failures.first() {
            return Exploration {
                schedules: count,
                outcome: Outcome::Failed {
                    prefix,
                    why: f.clone(),
                },
            };
        }
        // Next schedule: the deepest choice point with an untried alternative.
        let taken: Vec<usize> = (0..script.seen.len())
            .map(|i| {
                script
                    .choices
                    .get(i)
                    .copied()
                    .unwrap_or(0)
                    .min(script.seen[i] - 1)
            })
            .collect();
        let mut next = None;
        for i in (0..taken.len()).rev() {
            if taken[i] + 1 < script.seen[i] {
                let mut p = taken[..i].to_vec();
                p.push(taken[i] + 1);
                next = Some(p);
                break;
            }
        }
        match next {
            // More schedules remain: only the limit can stop the exploration here, and it
            // is then reported as bounded, never as complete.
            Some(_) if count >= limit => {
                return Exploration {
                    schedules: count,
                    outcome: Outcome::Bounded,
                }
            }
            Some(p) => prefix = p,
            None => {
                return Exploration {
                    schedules: count,
                    outcome: Outcome::All,
                }
            }
        }
    }
}
