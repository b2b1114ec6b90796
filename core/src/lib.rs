//! The pure core of credlock: the sealed store format, the merge, and the refresh state
//! machine.
//!
//! This crate does no I/O. It opens no file, reads no clock and draws no randomness of its
//! own: every effect goes through [`platform::Platform`], which mirrors the WIT `platform`
//! world. The same code runs as the WebAssembly component (`core/component`), natively in
//! hosts and the simulator, and under the fuzzers. `clippy.toml` forbids the std calls that
//! would break this.
#![forbid(unsafe_code)]

pub mod attachment;
pub mod error;

/// Whether this build has the bug zoo's naive switches compiled in: only the
/// `credlock-core-naive` package (the simulator's) does; the host and the shipped component
/// never. A host test asserts it, so a build that unifies them in fails.
pub fn naive_switches() -> bool {
    cfg!(feature = "naive")
}
pub mod expiry;
pub mod format;
pub mod import;
pub mod login;
pub mod maintenance;
pub mod manual;
pub mod model;
pub mod oauth;
pub mod platform;
pub mod queue;
pub mod refresh;
pub mod store;
pub mod tenant;
pub mod unread;

pub use error::{EndpointError, LoginError, RecoverError, SlotChangeError, StoreError};
pub use import::{ImportOptions, ImportReport, SourceKind};
pub use login::{LoginFlow, LoginOutcome, LoginRequest, LogoutReport, PendingSummary};
pub use maintenance::RecoverReport;
pub use platform::Platform;
pub use store::{AccessToken, Options, Store, StoreInfo, TenantSummary, WriteReceipt};
pub use tenant::{sha256_hex, TenantName};
