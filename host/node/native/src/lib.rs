//! The native part of credlock's Node.js host: what Node cannot do itself.
//!
//! - `acquire`: `flock(2)` on a sidecar lock file, with a timeout and a kernel wake-up on
//!   release. The algorithm is exactly `host/src/locks.rs`: try without blocking; if the lock
//!   is busy, block in `flock` *in the calling thread* (the JS thread: the WIT import is
//!   synchronous), so the kernel hands the lock straight to it, while a watchdog thread
//!   interrupts the wait at the deadline with a real-time signal whose handler does nothing
//!   (installed without `SA_RESTART`, so `flock` returns `EINTR`). If that signal is already
//!   claimed by the application, or blocked in the calling thread, fall back to a helper
//!   thread that blocks in `flock` while the caller waits on a channel with the deadline; a
//!   helper that wins after its caller gave up releases at once. Never a poll loop.
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
    let timeout = Duration::from_millis(u64::from(timeout_ms));
    if let Some(signal) = signal_wait() {
        return match block_until(file, exclusive, timeout, signal) {
            Ok(file) => Either3::A(LockGuard { file: Some(file) }),
            Err(Wait::Timeout(waited_ms)) => Either3::B(Timeout { waited_ms }),
            Err(Wait::Io(e)) => Either3::C(failure(&e)),
        };
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
    match rx.recv_timeout(timeout) {
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

enum Wait {
    Timeout(u32),
    Io(std::io::Error),
}

/// The real-time signal that interrupts a lock wait, if we could claim it (the same one the
/// Rust host uses; each process has its own handler).
fn wake_signal() -> Option<libc::c_int> {
    static SIGNAL: std::sync::OnceLock<Option<libc::c_int>> = std::sync::OnceLock::new();
    *SIGNAL.get_or_init(install_wake_handler)
}

extern "C" fn on_wake(_: libc::c_int) {
    // Nothing: the point is that the blocked flock returns EINTR.
}

fn install_wake_handler() -> Option<libc::c_int> {
    // Above glibc's reserved range; an application (or Node) that uses it keeps it.
    let signal = libc::SIGRTMIN() + 6;
    // SAFETY: sigaction with a zeroed struct queries the current disposition; we install our
    // handler only where it is SIG_DFL, with an async-signal-safe handler that does nothing.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(signal, std::ptr::null(), &mut old) != 0
            || old.sa_sigaction != libc::SIG_DFL
        {
            return None;
        }
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_wake as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = 0; // no SA_RESTART: interrupted syscalls return EINTR
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
            return None;
        }
    }
    Some(signal)
}

/// Is `signal` blocked in the calling thread (then it could not interrupt our flock)?
fn blocked_here(signal: libc::c_int) -> bool {
    // SAFETY: querying the calling thread's mask (a null new set changes nothing).
    unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut mask);
        if libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask) != 0 {
            return true;
        }
        libc::sigismember(&mask, signal) == 1
    }
}

/// Block in flock in this thread until the lock is ours or `timeout` passes
/// (`host/src/locks.rs` `block_until`).
fn block_until(
    file: File,
    exclusive: bool,
    timeout: Duration,
    signal: libc::c_int,
) -> Result<File, Wait> {
    let started = Instant::now();
    let deadline = started + timeout;
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    // `done` is set, under the mutex, before this function returns; the watchdog signals
    // only while holding the mutex and seeing `done == false`, so it never signals a thread
    // that has left (or a reused thread id).
    let state = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let watchdog_state = Arc::clone(&state);
    let me_id = me as usize;
    let watchdog = std::thread::Builder::new()
        .name("credlock-lock-watchdog".into())
        .spawn(move || {
            let (lock, cv) = &*watchdog_state;
            let mut done = lock.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                let now = Instant::now();
                if *done {
                    return;
                }
                if now >= deadline {
                    // SAFETY: the waiting thread is alive: it cannot set `done` and leave while
                    // we hold the mutex. The handler for `signal` is installed and does nothing.
                    unsafe { libc::pthread_kill(me_id as libc::pthread_t, signal) };
                    // Repeat in case the signal landed just before flock was entered.
                    done = cv
                        .wait_timeout(done, Duration::from_millis(2))
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                } else {
                    done = cv
                        .wait_timeout(done, deadline - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        });
    if let Err(e) = watchdog {
        return Err(Wait::Io(e));
    }
    let result = loop {
        match rustix::fs::flock(&file, op(exclusive, true)) {
            Ok(()) => break Ok(()),
            Err(rustix::io::Errno::INTR) => {
                if Instant::now() >= deadline {
                    break Err(Wait::Timeout(
                        u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX),
                    ));
                }
            }
            Err(e) => break Err(Wait::Io(e.into())),
        }
    };
    let (lock, cv) = &*state;
    *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
    cv.notify_all();
    result.map(|()| file)
}

/// The signal to interrupt a wait in this thread, unless the helper thread must be used:
/// the signal is taken or blocked here, or `CREDLOCK_NODE_LOCK_WAIT=thread` (for tests and
/// comparisons) asks for it.
fn signal_wait() -> Option<libc::c_int> {
    if std::env::var_os("CREDLOCK_NODE_LOCK_WAIT").is_some_and(|v| v == "thread") {
        return None;
    }
    wake_signal().filter(|&s| !blocked_here(s))
}

/// Which wait the next contended `acquire` in this thread uses: `signal` or `helper-thread`.
#[napi(js_name = "waitStrategy")]
pub fn wait_strategy() -> String {
    match signal_wait() {
        Some(_) => "signal".into(),
        None => "helper-thread".into(),
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
