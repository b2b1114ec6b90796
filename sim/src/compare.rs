//! The native core against the shipped component: one plan, run once on each build
//! ([`crate::run::CoreBuild`]), must pass every checker on both and leave the same trace
//! hash (the same platform calls in the same order, so the same schedule, faults and
//! crashes) and the same world hash (the same bytes written, the same tokens presented).
//! The simulator's seeds test the native build; this is what makes them a test of the
//! `.wasm` that ships.

use crate::run::{run_on, run_with, CoreBuild, Outcome, Plan};
use std::time::{Duration, Instant};

/// Both runs of one plan, and how long each took.
pub struct Comparison {
    pub native: Outcome,
    pub component: Outcome,
    pub native_time: Duration,
    pub component_time: Duration,
}

impl Comparison {
    /// What is wrong: a checker that failed on either build, or a difference between them.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (build, o) in [("native", &self.native), ("component", &self.component)] {
            out.extend(o.failures.iter().map(|f| format!("{build}: {f}")));
        }
        if self.native.trace_hash != self.component.trace_hash {
            out.push(format!(
                "trace hashes differ: native {}, component {}",
                self.native.trace_hash, self.component.trace_hash
            ));
        }
        if self.native.world_hash != self.component.world_hash {
            out.push(format!(
                "world hashes differ: native {}, component {}",
                self.native.world_hash, self.component.world_hash
            ));
        }
        out
    }
}

/// Run `plan` natively and on `component` (the component, or a perturbed one in a test).
pub fn compare(plan: &Plan, component: CoreBuild) -> Comparison {
    let started = Instant::now();
    let native = run_on(plan, CoreBuild::Native);
    let native_time = started.elapsed();
    let started = Instant::now();
    let component_out = run_on(plan, component);
    Comparison {
        native,
        component: component_out,
        native_time,
        component_time: started.elapsed(),
    }
}

/// Where two builds part: the index of the first traced event that differs, and that
/// event in each (`None` where one trace ended first). `None` if the traces are the same.
pub fn first_divergence(
    plan: &Plan,
    component: CoreBuild,
) -> Option<(usize, Option<String>, Option<String>)> {
    let a = run_with(plan, CoreBuild::Native, true).log;
    let b = run_with(plan, component, true).log;
    (0..a.len().max(b.len()))
        .find(|&i| a.get(i) != b.get(i))
        .map(|i| (i, a.get(i).cloned(), b.get(i).cloned()))
}
