//! The scheduler: virtual processes are OS threads, but exactly one runs at a time and
//! every platform call is a scheduling point where the seeded generator (or, in exhaustive
//! mode, a scripted choice) picks who runs next. A run is therefore a pure function of its
//! seed: the same seed gives the same trace hash.

use crate::world::{Pid, World};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Unwinds a crashed process's thread; caught at the thread's top.
pub struct Crashed;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Runnable,
    /// Waiting for a lock until `deadline_ms` (simulated).
    Blocked {
        deadline_ms: u64,
    },
    Done,
}

#[derive(Debug, Clone)]
pub struct Proc {
    pub status: Status,
    pub crashing: bool,
    pub skew_ms: i64,
    pub started: bool,
    /// The store operation the process is in (`put`, `recover`, ...), for checkers that
    /// judge a platform call by who made it.
    pub doing: &'static str,
}

/// How the next process is chosen.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Choices to follow (index into the candidates, current process first).
    pub choices: Vec<usize>,
    pub pos: usize,
    /// Candidate counts seen at each point (for the exhaustive explorer).
    pub seen: Vec<usize>,
    /// Preemptions left (a switch away from a runnable current process).
    pub preemptions_left: usize,
}

pub struct State {
    pub world: World,
    pub procs: Vec<Proc>,
    pub running: Option<Pid>,
    pub steps: u64,
    pub max_steps: u64,
    pub trace: Sha256,
    /// Every event the trace hash covers, when asked for (to show where two runs part).
    pub log: Option<Vec<String>>,
    pub script: Option<Script>,
    pub faults_on: bool,
}

pub struct Sim {
    pub state: Mutex<State>,
    cv: Condvar,
}

impl Sim {
    pub fn new(world: World, max_steps: u64) -> Arc<Sim> {
        Arc::new(Sim {
            state: Mutex::new(State {
                world,
                procs: Vec::new(),
                running: None,
                steps: 0,
                max_steps,
                trace: Sha256::new(),
                log: None,
                script: None,
                faults_on: false,
            }),
            cv: Condvar::new(),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // Only this module's code holds the mutex, never across a panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A scheduling point for `pid`: record `event`, let the scheduler pick the next process,
    /// and return when `pid` runs again. Unwinds with [`Crashed`] if `pid` was crashed.
    pub fn point(&self, pid: Pid, event: &str) {
        let mut st = self.lock();
        st.record(&format!("{pid}:{event};"));
        st.schedule(pid);
        self.cv.notify_all();
        st = self.wait_turn(st, pid);
        let crashing = st.procs[pid].crashing;
        drop(st);
        if crashing {
            std::panic::resume_unwind(Box::new(Crashed));
        }
    }

    fn wait_turn<'a>(&'a self, mut st: MutexGuard<'a, State>, pid: Pid) -> MutexGuard<'a, State> {
        while st.running != Some(pid) {
            st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st
    }

    /// Block `pid` until a lock may be free or `deadline_ms`, then continue.
    pub fn block(&self, pid: Pid, deadline_ms: u64, event: &str) {
        {
            let mut st = self.lock();
            st.procs[pid].status = Status::Blocked { deadline_ms };
        }
        self.point(pid, event);
    }

    /// Wake every blocked process (a lock was released): they re-check their lock.
    pub fn wake_all(st: &mut State) {
        for p in &mut st.procs {
            if let Status::Blocked { .. } = p.status {
                p.status = Status::Runnable;
            }
        }
    }

    /// Mark `pid` finished and hand over.
    pub fn finish(&self, pid: Pid) {
        let mut st = self.lock();
        st.procs[pid].status = Status::Done;
        st.record(&format!("{pid}:done;"));
        st.schedule(pid);
        self.cv.notify_all();
    }

    /// Run `bodies` as processes to completion. Returns when all are done.
    pub fn run(self: &Arc<Sim>, bodies: Vec<Box<dyn FnOnce(Pid) + Send>>) {
        let base = {
            let mut st = self.lock();
            let base = st.procs.len();
            for _ in &bodies {
                let skew = if st.faults_on {
                    st.world.rng.range(0, 1000) as i64 - 500
                } else {
                    0
                };
                st.procs.push(Proc {
                    status: Status::Runnable,
                    crashing: false,
                    skew_ms: skew,
                    started: false,
                    doing: "",
                });
            }
            base
        };
        let mut handles = Vec::new();
        for (i, body) in bodies.into_iter().enumerate() {
            let pid = base + i;
            let sim = Arc::clone(self);
            handles.push(std::thread::spawn(move || {
                {
                    let st = sim.lock();
                    let mut st = sim.wait_turn(st, pid);
                    st.procs[pid].started = true;
                }
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(pid)));
                if let Err(payload) = result {
                    if payload.downcast_ref::<Crashed>().is_none() {
                        let msg = payload
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        sim.lock()
                            .world
                            .fail(format!("process {pid} panicked: {msg}"));
                    }
                }
                sim.finish(pid);
            }));
        }
        {
            let mut st = self.lock();
            st.schedule(usize::MAX);
            self.cv.notify_all();
        }
        for h in handles {
            // Panics are caught inside; a join error would be a bug in the simulator itself.
            h.join().expect("simulator thread");
        }
        // Every process has ended, so no lock may be held: the kernel releases a dead
        // process's locks, and so must whatever ran it (a wasmtime store dropped with its
        // resources, a guard dropped by an unwinding core).
        let mut st = self.lock();
        let leaked: Vec<String> = st
            .world
            .locks
            .iter()
            .flat_map(|(target, l)| {
                l.holders
                    .iter()
                    .map(move |(pid, _, _)| format!("process {pid} ended holding {target:?}"))
            })
            .collect();
        for l in leaked {
            st.world.fail(l);
        }
    }
}

impl State {
    /// Add `event` to the trace (and to the log, if kept).
    fn record(&mut self, event: &str) {
        self.trace.update(event.as_bytes());
        if let Some(log) = &mut self.log {
            log.push(event.to_owned());
        }
    }

    /// Pick the next process to run after `current` reached a point (or finished).
    fn schedule(&mut self, current: Pid) {
        self.steps += 1;
        self.world.now_ms += 1;
        if self.steps > self.max_steps {
            if self.steps == self.max_steps + 1 {
                self.world.fail(format!(
                    "liveness: no progress within {} steps",
                    self.max_steps
                ));
            }
            // End the run: crash everyone still going.
            for p in &mut self.procs {
                p.crashing = true;
                if matches!(p.status, Status::Blocked { .. }) {
                    p.status = Status::Runnable;
                }
            }
        }
        loop {
            // Wake waiters whose deadline passed.
            let now = self.world.now_ms;
            for p in &mut self.procs {
                if let Status::Blocked { deadline_ms } = p.status {
                    if deadline_ms <= now {
                        p.status = Status::Runnable;
                    }
                }
            }
            let mut candidates: Vec<Pid> = (0..self.procs.len())
                .filter(|&p| self.procs[p].status == Status::Runnable)
                .collect();
            if candidates.is_empty() {
                let next_deadline = self.procs.iter().filter_map(|p| match p.status {
                    Status::Blocked { deadline_ms } => Some(deadline_ms),
                    _ => None,
                });
                match next_deadline.min() {
                    Some(d) => {
                        self.world.now_ms = d;
                        continue;
                    }
                    None => {
                        self.running = None;
                        return;
                    }
                }
            }
            // The current process first, so a script's choice 0 means "keep running".
            if let Some(i) = candidates.iter().position(|&p| p == current) {
                candidates.swap(0, i);
            }
            let current_runnable = candidates[0] == current;
            let choice = match &mut self.script {
                Some(script) => {
                    let allowed = if current_runnable && script.preemptions_left == 0 {
                        1
                    } else {
                        candidates.len()
                    };
                    let c = script
                        .choices
                        .get(script.pos)
                        .copied()
                        .unwrap_or(0)
                        .min(allowed - 1);
                    script.seen.push(allowed);
                    script.pos += 1;
                    if current_runnable && c != 0 {
                        script.preemptions_left -= 1;
                    }
                    c
                }
                None => self.world.rng.below(candidates.len() as u64) as usize,
            };
            let next = candidates[choice];
            if self.faults_on
                && self.procs[next].started
                && self.world.rng.chance(self.world.faults.crash)
            {
                self.procs[next].crashing = true;
                self.record(&format!("{next}:crash;"));
            }
            if self.faults_on && self.world.rng.chance(self.world.faults.power_loss) {
                self.record("power-loss;");
                for p in &mut self.procs {
                    if p.status != Status::Done {
                        p.crashing = true;
                    }
                }
                self.world.power_loss();
            }
            if self.faults_on && self.world.rng.chance(self.world.faults.clock_jump) {
                let jump = self.world.rng.range(0, 10_000) as i64 - 5_000;
                self.procs[next].skew_ms += jump;
            }
            self.running = Some(next);
            return;
        }
    }
}
