//! The bindings' surface, checked and generated from its declarations.
//!
//! Every binding (Python, Node, C, Go) declares what the Rust host offers in its own
//! language. Those declarations are derived from one source each, never written twice:
//!
//! - the settings of `Store.open` from `credlock::OpenOptions` (`tests/settings.rs`);
//! - the operations from `wit/store.wit` (`tests/operations.rs`), where the conventions
//!   cover them;
//! - what is still written by hand in each binding is checked against the same sources: every
//!   operation exists everywhere (`tests/parity.rs`), every result record has the WIT's
//!   fields (`tests/declarations.rs`).
//!
//! Generated files are committed (a binding's users need no generator). The tests fail when
//! one is stale; `CREDLOCK_BLESS=1 cargo test -p credlock-surface` rewrites them, then `cargo
//! build -p credlock-capi` regenerates credlock.h. This crate links nothing of credlock, so
//! it runs whatever state the generated code is in.

pub mod generated;
pub mod names;

use std::path::{Path, PathBuf};

/// The repository's root directory.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The file `rel` of the repository.
pub fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}
