//! The embedded artifact, run where it lies.
//!
//! `Component::deserialize` copies the 3.6 MB artifact into fresh memory and changes that
//! memory's protection twice before the first call: every page of it faulted in, zeroed,
//! copied and re-protected, in every process. A one-shot `credlock token` spent 1.8 ms of
//! its ~4.7 ms there (BENCHMARKS.md, "The artifact run in place").
//!
//! On x86-64 Linux the build's artifact is instead placed page-aligned in the binary's own
//! machine code (a `.text.*` section, which the linker puts in the read-only, executable
//! segment), and wasmtime runs it in place (`Component::deserialize_raw`): the process maps
//! the pages it touches from the page cache, as it does the rest of the binary, and nothing
//! is copied or re-protected. It is as trusted as the rest of the binary's code, because it
//! is part of it. Its tables (trap and address maps, type information, the wasm data
//! segments) lie in that segment too: executable but, like every byte there, never writable,
//! as constants a compiler places beside code are.
//!
//! wasmtime publishes code through the engine's [`CustomCodeMemory`] once one is set (the
//! only way it accepts code memory it does not own): for the artifact, already executable
//! and never writable, publishing is nothing; for code this engine compiles at run time (the
//! fallback where the artifact is refused), it is the `mprotect` wasmtime itself would make:
//! read and execute, never write (W^X). x86-64 needs no instruction-cache maintenance, which
//! is why other targets keep the copy (their wasmtime publishes its own way).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use wasmtime::CustomCodeMemory;

/// The artifact, page-aligned: wasmtime needs its text section on a page boundary (the
/// artifact's own layout puts it at a page offset), and the section starts at the first.
#[repr(C, align(4096))]
pub struct PageAligned<const N: usize>(pub [u8; N]);

/// How [`COMPILED`] is laid out in the binary.
pub const LEN: usize = include_bytes!(concat!(env!("OUT_DIR"), "/credlock.cwasm")).len();

/// The build's artifact, in the executable segment of whatever links this crate (the CLI,
/// the Python and Node modules, libcredlock). A `static`, never written: the section is
/// mapped read and execute.
#[allow(unsafe_code)]
#[cfg_attr(
    all(target_os = "linux", target_arch = "x86_64"),
    link_section = ".text.credlock_component"
)]
pub static COMPILED: PageAligned<LEN> =
    PageAligned(*include_bytes!(concat!(env!("OUT_DIR"), "/credlock.cwasm")));

/// Whether this build runs the artifact in place (else wasmtime copies it).
pub const SUPPORTED: bool = cfg!(all(target_os = "linux", target_arch = "x86_64"));

/// The engine's code publisher, where [`SUPPORTED`].
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub fn code_memory() -> Option<Arc<dyn CustomCodeMemory>> {
    Some(Arc::new(Publisher))
}

/// None elsewhere: wasmtime publishes the code it copied its own way.
#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
pub fn code_memory() -> Option<Arc<dyn CustomCodeMemory>> {
    None
}

/// Whether this load may run the artifact in place: true once per process, where
/// [`SUPPORTED`]. wasmtime registers loaded code by its address, process-wide, and refuses
/// (panics on) a second registration of the same range while the first lives, so a second
/// runtime in one process (a test's, the simulator's), and the runtime a child of `fork`
/// loads while the parent's, copied into it, is still registered, get a copy of their own.
/// The flag is inherited by such a child, which is what makes it copy.
pub fn take() -> bool {
    static TAKEN: AtomicBool = AtomicBool::new(false);
    SUPPORTED && !TAKEN.swap(true, Ordering::SeqCst)
}

/// Whether `ptr..ptr+len` lies inside [`COMPILED`].
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn embedded(ptr: *const u8, len: usize) -> bool {
    let start = COMPILED.0.as_ptr() as usize;
    let (p, end) = (ptr as usize, start + LEN);
    p >= start && p.checked_add(len).is_some_and(|e| e <= end)
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
struct Publisher;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
impl CustomCodeMemory for Publisher {
    fn required_alignment(&self) -> usize {
        rustix::param::page_size()
    }

    fn publish_executable(&self, ptr: *const u8, len: usize) -> wasmtime::Result<()> {
        use rustix::mm::MprotectFlags as F;
        // Read + execute is what wasmtime's own publisher sets.
        protect(
            ptr,
            len,
            F::READ | F::EXEC,
            "making compiled code executable",
        )
    }

    fn unpublish_executable(&self, ptr: *const u8, len: usize) -> wasmtime::Result<()> {
        use rustix::mm::MprotectFlags as F;
        protect(ptr, len, F::READ | F::WRITE, "unpublishing compiled code")
    }
}

/// Set the protection of code memory wasmtime hands over; the artifact's range is left as the
/// loader mapped it (read and execute, in the binary's executable segment).
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[allow(unsafe_code)]
fn protect(
    ptr: *const u8,
    len: usize,
    flags: rustix::mm::MprotectFlags,
    what: &str,
) -> wasmtime::Result<()> {
    if embedded(ptr, len) {
        return Ok(());
    }
    // SAFETY: wasmtime hands over the text of code memory it owns (an mmap it made and
    // filled, aligned as `required_alignment` says), and runs none of it while its
    // protection changes: before publishing, and after it guarantees no code runs there.
    unsafe { rustix::mm::mprotect(ptr as *mut _, len, flags) }
        .map_err(|e| wasmtime::Error::msg(format!("{what}: {e}")))
}
