//! credlock-sim: a deterministic simulation of many processes running the credlock core
//! against a simulated platform (disk with live and durable copies, flock-like locks, a token
//! endpoint with rotation and reuse detection, skewed clocks), with faults injected from a
//! seed and checkers that read only the world's history. See `world.rs` for the fault model.
//!
//! Also home to the fuzz bodies (`fuzz`), shared by the cargo-fuzz targets in `fuzz/` and by
//! the smoke tests that run them on stable in CI.

pub mod check;
#[cfg(feature = "component")]
pub mod compare;
#[cfg(feature = "component")]
pub mod component;
pub mod explore;
pub mod fuzz;
pub mod naive;
pub mod platform;
pub mod rng;
pub mod run;
pub mod sched;
pub mod world;
pub mod zoo;
