//! One simulated run: a seed chooses the process count, operations, fault rates, token
//! lifetimes and clock skews; a safety phase runs them with faults, then a liveness phase
//! without faults in which fresh processes must each obtain a valid token.

use crate::platform::SimPlatform;
use crate::rng::Rng;
use crate::sched::Sim;
use crate::world::{Faults, NaivePlatform, Pid, World};
use credlock_core::store::Naive;
use credlock_core::{Options, Store, StoreError};
use std::sync::Arc;

/// The tenant that refreshes against the simulated server.
pub const REFRESHING: &str = "acme";

#[derive(Debug, Clone)]
pub struct Plan {
    pub seed: u64,
    pub processes: usize,
    pub ops_per_process: usize,
    pub faults: Faults,
    pub token_lifetime_ms: u64,
    pub naive: Naive,
    pub naive_platform: NaivePlatform,
    /// Which operations the workload may draw (see [`Op`]).
    pub ops: Vec<OpKind>,
    pub liveness: bool,
    pub max_steps: u64,
    pub options: Options,
    /// Only for a zoo scenario that isolates another checker.
    pub allow_duplicate_presentations: bool,
    /// The setup login stores an already expired access token.
    pub initial_expired: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    PutOwn,
    PutShared,
    Token,
    TokenForceRefresh,
    Refresh,
    List,
    DeleteOwn,
}

#[derive(Debug)]
pub struct Outcome {
    pub failures: Vec<String>,
    pub trace_hash: String,
    pub steps: u64,
    pub refreshes: u64,
    pub presentations: usize,
    pub ops_done: u64,
    pub errors: std::collections::BTreeMap<String, u64>,
}

impl Plan {
    /// A random plan from a seed.
    pub fn random(seed: u64) -> Plan {
        let mut r = Rng::new(seed.wrapping_mul(31).wrapping_add(7));
        let scale = |r: &mut Rng, max: u32| {
            if r.chance(250_000) {
                0
            } else {
                r.range(0, u64::from(max)) as u32
            }
        };
        let faults = Faults {
            crash: scale(&mut r, 4_000),
            power_loss: scale(&mut r, 300),
            write_error: scale(&mut r, 40_000),
            dir_fsync_error: scale(&mut r, 20_000),
            keyring_unavailable: scale(&mut r, 30_000),
            connect_error: scale(&mut r, 100_000),
            server_unavailable: scale(&mut r, 100_000),
            reply_lost: scale(&mut r, 100_000),
            malformed_reply: scale(&mut r, 50_000),
            clock_jump: scale(&mut r, 2_000),
            corruption: if r.chance(100_000) { 20_000 } else { 0 },
        };
        Plan {
            seed,
            processes: r.range(2, 8) as usize,
            ops_per_process: r.range(2, 12) as usize,
            faults,
            token_lifetime_ms: r.range(1, 5) * 1000,
            naive: Naive::default(),
            naive_platform: NaivePlatform::default(),
            ops: vec![
                OpKind::PutOwn,
                OpKind::PutShared,
                OpKind::Token,
                OpKind::TokenForceRefresh,
                OpKind::Refresh,
                OpKind::List,
                OpKind::DeleteOwn,
            ],
            liveness: true,
            max_steps: 400_000,
            allow_duplicate_presentations: false,
            initial_expired: r.chance(500_000),
            options: Options {
                lock_timeout_ms: r.range(50, 2_000) as u32,
                http_timeout_ms: 100,
            },
        }
    }
}

fn record_error(sim: &Sim, e: &StoreError) {
    let kind = format!("{e:?}")
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or("")
        .to_owned();
    let mut st = sim.lock();
    *st.world.history.errors.entry(kind).or_default() += 1;
    // A torn or undecodable read is never acceptable, unless corruption was injected.
    if matches!(e, StoreError::Corrupt(_) | StoreError::NotAStore(_)) && !st.world.disk.corrupted {
        st.world
            .fail(format!("a reader saw an undecodable store: {e}"));
    }
}

/// Log in at the simulated server and store the grant.
fn login(
    sim: &Arc<Sim>,
    store: &mut Store<'_, SimPlatform>,
    expired: bool,
) -> Result<(), StoreError> {
    let json = {
        let mut st = sim.lock();
        let (at, rt) = st.world.server.login();
        let life = if expired {
            0
        } else {
            st.world.server.lifetime_ms / 1000
        };
        format!(
            r#"{{"access_token":"{at}","refresh_token":"{rt}","expires_in":{life},"token_endpoint":"https://as.sim/token","client_id":"sim","client_secret":"s"}}"#
        )
    };
    let receipt = store.put(REFRESHING, &json)?;
    let at = json.split('"').nth(3).unwrap_or_default().to_owned();
    sim.lock()
        .world
        .history
        .acked_puts
        .push((REFRESHING.into(), receipt.revision, at));
    Ok(())
}

fn op(
    sim: &Arc<Sim>,
    store: &mut Store<'_, SimPlatform>,
    pid: Pid,
    k: usize,
    kind: OpKind,
    lifetime_ms: u64,
) {
    let result: Result<(), StoreError> = match kind {
        OpKind::PutOwn | OpKind::PutShared => {
            let tenant = if kind == OpKind::PutOwn {
                format!("p{pid}")
            } else {
                "shared".into()
            };
            let token = format!("p{pid}-{k}");
            store
                .put(
                    &tenant,
                    &format!(r#"{{"access_token":"{token}","expires_in":3600}}"#),
                )
                .map(|r| {
                    sim.lock()
                        .world
                        .history
                        .acked_puts
                        .push((tenant, r.revision, token));
                })
        }
        OpKind::Token => store.token(REFRESHING, 500).map(|_| ()),
        // Asks for as much validity as a token can give (capped at half its lifetime).
        OpKind::TokenForceRefresh => store.token(REFRESHING, lifetime_ms).map(|_| ()),
        OpKind::Refresh => store.refresh(REFRESHING, None).map(|_| ()),
        OpKind::List => store.list().map(|_| ()),
        OpKind::DeleteOwn => {
            let tenant = format!("p{pid}");
            // Recorded before the call: a delete that fails after its rename (a directory
            // fsync error) is unacknowledged but may still have taken effect.
            sim.lock()
                .world
                .history
                .attempted_deletes
                .insert(tenant.clone());
            store.delete(&tenant).map(|existed| {
                if existed {
                    let mut st = sim.lock();
                    let n = st.world.history.versions.len();
                    st.world.history.acked_deletes.push((tenant, n));
                }
            })
        }
    };
    if let Err(e) = &result {
        record_error(sim, e);
    }
    sim.lock().world.history.ops_done += 1;
}

pub fn run(plan: &Plan) -> Outcome {
    let mut world = World::new(plan.seed);
    world.faults = plan.faults;
    world.naive_platform = plan.naive_platform;
    world.server.lifetime_ms = plan.token_lifetime_ms;
    let sim = Sim::new(world, plan.max_steps);
    let opts = plan.options;
    let naive = plan.naive;
    let initial_expired = plan.initial_expired;

    // Setup: one process logs in, without faults.
    sim.run(vec![Box::new({
        let sim = Arc::clone(&sim);
        move |pid| {
            let mut p = SimPlatform {
                sim: Arc::clone(&sim),
                pid,
            };
            let mut store = Store::new(&mut p, opts).expect("valid options");
            store.naive = naive;
            if let Err(e) = login(&sim, &mut store, initial_expired) {
                sim.lock().world.fail(format!("setup login failed: {e}"));
            }
        }
    })]);

    // Safety phase: the workload, with faults.
    let workloads: Vec<Vec<OpKind>> = {
        let mut st = sim.lock();
        st.faults_on = true;
        (0..plan.processes)
            .map(|_| {
                (0..plan.ops_per_process)
                    .map(|_| plan.ops[st.world.rng.below(plan.ops.len() as u64) as usize])
                    .collect()
            })
            .collect()
    };
    let lifetime = plan.token_lifetime_ms;
    let bodies: Vec<Box<dyn FnOnce(Pid) + Send>> = workloads
        .into_iter()
        .map(|ops| {
            let sim = Arc::clone(&sim);
            Box::new(move |pid: Pid| {
                let mut p = SimPlatform {
                    sim: Arc::clone(&sim),
                    pid,
                };
                for (k, kind) in ops.into_iter().enumerate() {
                    let mut store = Store::new(&mut p, opts).expect("valid options");
                    store.naive = naive;
                    op(&sim, &mut store, pid, k, kind, lifetime);
                }
            }) as Box<dyn FnOnce(Pid) + Send>
        })
        .collect();
    sim.run(bodies);

    // Liveness phase: no faults; every fresh process must reach a valid token.
    if plan.liveness && !sim.lock().world.disk.corrupted {
        sim.lock().faults_on = false;
        let bodies: Vec<Box<dyn FnOnce(Pid) + Send>> = (0..plan.processes.min(4))
            .map(|_| {
                let sim = Arc::clone(&sim);
                Box::new(move |pid: Pid| {
                    let mut p = SimPlatform {
                        sim: Arc::clone(&sim),
                        pid,
                    };
                    const ATTEMPTS: usize = 6;
                    for attempt in 0..ATTEMPTS {
                        let mut store = Store::new(&mut p, opts).expect("valid options");
                        store.naive = naive;
                        match store.token(REFRESHING, 100) {
                            Ok(t) => {
                                let mut st = sim.lock();
                                let now = st.world.now_ms;
                                if t.expires_at_ms.is_some_and(|e| e <= now) {
                                    st.world.fail(format!(
                                        "liveness: process {pid} got an expired token"
                                    ));
                                }
                                return;
                            }
                            // What a user does: log in again.
                            Err(
                                StoreError::ReauthNeeded(_)
                                | StoreError::RefreshOutcomeUnknown(_)
                                | StoreError::Expired(_)
                                | StoreError::NotFound(_),
                            ) => {
                                let _ = login(&sim, &mut store, false);
                            }
                            Err(StoreError::LockTimeout { .. }) => {}
                            Err(e) => {
                                record_error(&sim, &e);
                                if attempt + 1 == ATTEMPTS {
                                    sim.lock().world.fail(format!(
                                        "liveness: process {pid} never got a token: {e}"
                                    ));
                                }
                            }
                        }
                    }
                    sim.lock().world.fail(format!(
                        "liveness: process {pid} got no token in {ATTEMPTS} attempts"
                    ));
                }) as Box<dyn FnOnce(Pid) + Send>
            })
            .collect();
        sim.run(bodies);
    }

    let mut st = sim.lock();
    let allow_dups = plan.allow_duplicate_presentations;
    crate::check::final_checks(&mut st.world, allow_dups);
    let trace_hash = {
        use sha2::Digest;
        let h = st.trace.clone().finalize();
        h.iter().take(16).map(|b| format!("{b:02x}")).collect()
    };
    Outcome {
        failures: st.world.history.failures.clone(),
        trace_hash,
        steps: st.steps,
        refreshes: st.world.server.successes,
        presentations: st.world.server.presentations.len(),
        ops_done: st.world.history.ops_done,
        errors: st.world.history.errors.clone(),
    }
}
