//! credlock's one WIT conversion layer for wasmtime hosts.
//!
//! The component (`core/component`) talks to its host only through the WIT in `wit/`. Every
//! host that runs it in wasmtime, the shipped host (`host/`) and the simulator (`sim/`),
//! needs the same three things, and this crate holds each of them once:
//!
//! - the bindings: one `wasmtime::component::bindgen!` over `wit/` ([`Credlock`],
//!   [`CredlockPre`], the generated [`credlock`] and [`exports`] modules);
//! - every conversion between a WIT type and the core's type, both ways, as `From` impls
//!   (`convert.rs`): a new case of a WIT variant is written here once;
//! - the imports: [`HostState`] serves every WIT import from any core
//!   [`Platform`](credlock_core::Platform), converting the arguments, calling the platform
//!   and converting the answer back. Where hosts differ (the simulator's deliberate faults,
//!   the shipped host's answers to a full resource table) they say so through [`Hooks`],
//!   whose defaults are the shipped host's behaviour.
//!
//! The same sources are built twice: as `credlock-witglue` against `credlock-core` (for the
//! host), and as `credlock-witglue-naive` against `credlock-core-naive` (for the simulator,
//! whose platform implements that crate's seam; see sim/witglue/Cargo.toml).
//!
//! The guest side cannot share any of this: `core/component` and `host/wasi-command` are
//! built for wasm32 with `wit-bindgen`, whose generated types and traits are the guest's view
//! of the same WIT (exports become traits to implement, imports become functions to call),
//! and wasmtime, which generates these, does not build for wasm32 guests at all. Their
//! conversions stay beside their own bindings.

mod convert;
mod imports;

pub use imports::{linker, Held, Hooks, HostState, Shipped, WitPlatform};

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "credlock",
    with: {
        "credlock:store/locks.lock-guard": crate::LockGuard,
        "credlock:store/sealing.sealing-key": crate::SealingKey,
    },
});

pub use self::credlock::store::{
    clock, files, locks, login, random, sealing, token_endpoint, types,
};
pub use exports::credlock::store::store as api;

/// The WIT `lock-guard` resource's handle type. No value of it exists: the resource table
/// holds the platform's own guard (`P::Guard`) under the handle's index, so serving a lock
/// costs no allocation beyond the table's own, and [`HostState`] stays generic over the
/// platform while bindgen's `with` gets the concrete type it needs.
pub enum LockGuard {}

/// The WIT `sealing-key` resource's handle type; the table holds the platform's `P::Key`
/// (see [`LockGuard`]).
pub enum SealingKey {}
