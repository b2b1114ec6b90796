//! The native part of credlock's Node.js host: what Node cannot do itself.
//!
//! - `acquire`: `flock(2)` on a sidecar lock file, with a timeout and a kernel wake-up on
//!   release. The algorithm is exactly `host/src/locks.rs`: try without blocking; if that
//!   fails, block in a helper thread while the caller waits on a channel with a deadline;
//!   a helper that wins after its caller gave up releases at once. The JS thread blocks in
//!   that wait (the WIT import is synchronous), never in a poll loop.
//! - `argon2id`: the passphrase KDF, with the `argon2` crate the Rust host uses, because
//!   Node 20 has no synchronous argon2id and WIT imports are synchronous.
//!
//! Errors are returned as values (`OsFailure`: errno and text), so the JS side maps them
//! to the WIT's `io-error` with one table, the same for locks and files.

use napi::bindgen_prelude::{Buffer, Either3};
use napi_derive::napi;
use rustix::fs::FlockOperation;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// A failed system call: what the JS side turns into an `io-error`.
#[napi(object)]
pub struct OsFailure {
    /// The errno, or 0 if there is none.
    pub errno: i32,
    /// The OS's text for it (never file contents).
    pub message: String,
}

/// The lock was still held by someone else when the timeout ran out.
#[napi(object)]
pub struct Timeout {
    pub waited_ms: u32,
}

fn failure(e: &std::io::Error) -> OsFailure {
    OsFailure {
        errno: e.raw_os_error().unwrap_or(0),
        message: e.to_string(),
    }
}

/// A held `flock`. Releasing (or garbage collection of the object) closes the file, which
/// releases the lock.
#[napi]
pub struct LockGuard {
    file: Option<File>,
}

#[napi]
impl LockGuard {
    /// Release the lock now. Idempotent.
    #[napi]
    pub fn release(&mut self) {
        if let Some(file) = self.file.take() {
            // Closing releases the lock too; unlocking first makes the release independent
            // of any duplicate of this descriptor (none is made, but be explicit).
            let _ = rustix::fs::flock(&file, FlockOperation::Unlock);
        }
    }

    /// Whether the lock is still held by this guard.
    #[napi(getter)]
    pub fn held(&self) -> bool {
        self.file.is_some()
    }
}

/// Open (creating if needed, 0600) without following a symlink: `host/src/io_util.rs`.
fn open_nofollow_create(path: &str) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(
            rustix::fs::OFlags::NOFOLLOW.bits() as i32 | rustix::fs::OFlags::CLOEXEC.bits() as i32,
        )
        .open(path)
}

fn op(exclusive: bool, blocking: bool) -> FlockOperation {
    match (exclusive, blocking) {
        (true, true) => FlockOperation::LockExclusive,
        (true, false) => FlockOperation::NonBlockingLockExclusive,
        (false, true) => FlockOperation::LockShared,
        (false, false) => FlockOperation::NonBlockingLockShared,
    }
}

/// Ok(true) if taken, Ok(false) if someone else holds a conflicting lock.
fn try_lock(file: &File, exclusive: bool) -> std::io::Result<bool> {
    loop {
        match rustix::fs::flock(file, op(exclusive, false)) {
            Ok(()) => return Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(false),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn block_lock(file: &File, exclusive: bool) -> std::io::Result<()> {
    loop {
        match rustix::fs::flock(file, op(exclusive, true)) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Take `flock` on `path` (shared or exclusive), waiting at most `timeout_ms`.
///
/// Returns the guard, a `Timeout`, or the `OsFailure` of opening or locking the file.
#[napi]
pub fn acquire(
    path: String,
    exclusive: bool,
    timeout_ms: u32,
) -> Either3<LockGuard, Timeout, OsFailure> {
    let file = match open_nofollow_create(&path) {
        Ok(f) => f,
        Err(e) => return Either3::C(failure(&e)),
    };
    match try_lock(&file, exclusive) {
        Ok(true) => return Either3::A(LockGuard { file: Some(file) }),
        Ok(false) => {}
        Err(e) => return Either3::C(failure(&e)),
    }
    if timeout_ms == 0 {
        return Either3::B(Timeout { waited_ms: 0 });
    }
    let started = Instant::now();
    // `abandoned` is decided under the mutex, so the helper either hands the file over or
    // drops it; never both, never neither.
    let abandoned = Arc::new(Mutex::new(false));
    let (tx, rx) = mpsc::sync_channel::<std::io::Result<File>>(1);
    let helper_abandoned = Arc::clone(&abandoned);
    let spawned = std::thread::Builder::new()
        .name("credlock-lock-wait".into())
        .spawn(move || {
            let result = block_lock(&file, exclusive).map(|()| file);
            let gone = helper_abandoned.lock().unwrap_or_else(|p| p.into_inner());
            if !*gone {
                let _ = tx.send(result);
            }
            // If abandoned, `result` (and the lock with it) is dropped here.
        });
    if let Err(e) = spawned {
        return Either3::C(failure(&e));
    }
    let waited =
        |started: Instant| u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
    match rx.recv_timeout(Duration::from_millis(u64::from(timeout_ms))) {
        Ok(Ok(file)) => Either3::A(LockGuard { file: Some(file) }),
        Ok(Err(e)) => Either3::C(failure(&e)),
        Err(_) => {
            let mut gone = abandoned.lock().unwrap_or_else(|p| p.into_inner());
            // The helper may have won just before we took the mutex.
            if let Ok(Ok(file)) = rx.try_recv() {
                return Either3::A(LockGuard { file: Some(file) });
            }
            *gone = true;
            Either3::B(Timeout {
                waited_ms: waited(started),
            })
        }
    }
}

/// argon2id v1.3 of `passphrase` and `salt` into 32 bytes, as `host/src/keys.rs` derives a
/// passphrase slot's key-encryption key. The caller checks the parameter bounds first.
#[napi(js_name = "argon2id")]
pub fn argon2id(
    passphrase: Buffer,
    salt: Buffer,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
) -> napi::Result<Buffer> {
    let params = argon2::Params::new(m_cost_kib, t_cost, p_cost, Some(32))
        .map_err(|_| napi::Error::from_reason("invalid argon2id parameters"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(&passphrase, &salt, out.as_mut())
        .map_err(|_| napi::Error::from_reason("argon2id failed"))?;
    Ok(Buffer::from(out.to_vec()))
}
