//! Inter-process locks on sidecar files that are never deleted: `flock(2)` on unix,
//! `LockFileEx` on Windows.
//!
//! Why flock: it belongs to the open file description, so it dies with its process (a crash
//! never leaves a lock held), it is what Python's `fcntl.flock` and the Node addon take too,
//! and a blocked `flock` is woken by the kernel the moment the holder releases. We want that
//! fast hand-over (microseconds) but also a timeout, which blocking flock lacks.
//!
//! So, on Linux: try without blocking; if the lock is busy, block in `flock` *in the calling
//! thread*, so the kernel hands the lock straight to it, while a POSIX timer aimed at that
//! thread (`SIGEV_THREAD_ID`) interrupts the wait at the deadline with a real-time signal
//! whose handler does nothing (installed without `SA_RESTART`, so `flock` returns `EINTR`).
//! Measured here: hand-over p50 ~5 µs this way (~31 µs when each wait started a watchdog
//! thread), ~110 µs when a helper thread waits and passes the lock on through a channel, because
//! that costs a second wake-up, which under load means a trip through the run queue while
//! the lock is held. The signal handler is installed only if the application has not claimed
//! that signal; otherwise we fall back to the helper thread.
//!
//! On macOS (and any other unix) there are no real-time signals to claim, so a busy lock is
//! always waited for by the helper thread: the same flock protocol, a slower hand-over. A
//! helper that times out stays blocked in `flock` until it gets the lock, then drops it.
//!
//! On Windows the lock is `LockFileEx` over the whole file (offset 0, length 2^64 - 1, as
//! fs4 and the standard library take it), shared or exclusive, on the same sidecar files.
//! Like flock it belongs to the handle, so a second handle in the same process conflicts, and
//! Windows releases it when its process dies. `LockFileEx` has no timed wait, so a busy lock
//! is polled with `LOCKFILE_FAIL_IMMEDIATELY` and a backoff from `POLL_FIRST_DELAY` doubling
//! up to `POLL_MAX_DELAY` until the deadline: a hand-over takes up to that delay, and
//! waiters are not queued. Any other program taking these locks on Windows must lock a range
//! that includes byte 0 (byte-range locks conflict when their ranges overlap).

use crate::io_util::{io_error, open_nofollow_create};
use credlock_core::platform::{LockError, LockMode};
use fs4::fs_std::FileExt;
use std::fs::File;
use std::path::{Path, PathBuf};
#[cfg(unix)]
use std::sync::mpsc;
#[cfg(unix)]
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A held lock. Dropping it unlocks and closes the file (Windows releases a closed handle's
/// locks only eventually, so the explicit unlock matters there).
#[derive(Debug)]
pub struct LockGuard {
    file: Option<File>,
    path: PathBuf,
}

impl LockGuard {
    pub fn release(&mut self) {
        if let Some(file) = self.file.take() {
            // Closing releases the lock too; unlocking first makes the release independent
            // of any duplicate of this descriptor (none is made, but be explicit).
            let _ = FileExt::unlock(&file);
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.release();
    }
}

fn try_lock(file: &File, mode: LockMode) -> std::io::Result<bool> {
    match mode {
        LockMode::Shared => FileExt::try_lock_shared(file),
        LockMode::Exclusive => FileExt::try_lock_exclusive(file),
    }
}

#[cfg(unix)]
fn block_lock(file: &File, mode: LockMode) -> std::io::Result<()> {
    match mode {
        LockMode::Shared => FileExt::lock_shared(file),
        LockMode::Exclusive => FileExt::lock_exclusive(file),
    }
}

/// Take the lock at `path` in `mode`, waiting at most `timeout`.
pub fn acquire(path: &Path, mode: LockMode, timeout: Duration) -> Result<LockGuard, LockError> {
    let file = open_nofollow_create(path).map_err(|e| LockError::Io(io_error(&e, path)))?;
    if try_lock(&file, mode).map_err(|e| LockError::Io(io_error(&e, path)))? {
        return Ok(LockGuard {
            file: Some(file),
            path: path.to_path_buf(),
        });
    }
    if timeout.is_zero() {
        return Err(LockError::Timeout(0));
    }
    #[cfg(target_os = "linux")]
    if let Some(signal) = wake_signal().filter(|&s| !blocked_in_this_thread(s)) {
        return block_until(file, mode, timeout, signal)
            .map(|file| LockGuard {
                file: Some(file),
                path: path.to_path_buf(),
            })
            .map_err(|e| match e {
                Wait::Timeout(ms) => LockError::Timeout(ms),
                Wait::Io(e) => LockError::Io(io_error(&e, path)),
            });
    }
    #[cfg(unix)]
    {
        wait_in_helper(file, mode, timeout, path)
    }
    #[cfg(windows)]
    {
        poll_until(file, mode, timeout, path)
    }
}

fn waited_ms(started: Instant) -> u32 {
    u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX)
}

/// Wait for a busy flock in a helper thread that blocks in `flock` and hands the file over
/// through a channel; give up at `timeout`, leaving the helper to drop the lock if it gets
/// it later.
#[cfg(unix)]
fn wait_in_helper(
    file: File,
    mode: LockMode,
    timeout: Duration,
    path: &Path,
) -> Result<LockGuard, LockError> {
    let started = Instant::now();
    // `abandoned` is decided under the mutex, so the helper either hands the file over or
    // drops it; never both, never neither.
    let abandoned = Arc::new(Mutex::new(false));
    let (tx, rx) = mpsc::sync_channel::<std::io::Result<File>>(1);
    let helper_abandoned = Arc::clone(&abandoned);
    std::thread::Builder::new()
        .name("credlock-lock-wait".into())
        .spawn(move || {
            let result = block_lock(&file, mode).map(|()| file);
            // The mutex only guards a bool; a poisoned one still holds a valid bool.
            let gone = helper_abandoned.lock().unwrap_or_else(|p| p.into_inner());
            if !*gone {
                let _ = tx.send(result);
            }
            // If abandoned, `result` (and the lock with it) is dropped here.
        })
        .map_err(|e| LockError::Io(io_error(&e, path)))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(file)) => Ok(LockGuard {
            file: Some(file),
            path: path.to_path_buf(),
        }),
        Ok(Err(e)) => Err(LockError::Io(io_error(&e, path))),
        Err(_) => {
            let mut gone = abandoned.lock().unwrap_or_else(|p| p.into_inner());
            // The helper may have won just before we took the mutex.
            if let Ok(Ok(file)) = rx.try_recv() {
                return Ok(LockGuard {
                    file: Some(file),
                    path: path.to_path_buf(),
                });
            }
            *gone = true;
            Err(LockError::Timeout(waited_ms(started)))
        }
    }
}

/// The pause before the first retry of a busy lock on Windows; it doubles after each
/// refused try up to [`POLL_MAX_DELAY`].
#[cfg(windows)]
pub const POLL_FIRST_DELAY: Duration = Duration::from_millis(1);
/// The longest pause between two tries of a busy lock on Windows: the worst hand-over delay.
#[cfg(windows)]
pub const POLL_MAX_DELAY: Duration = Duration::from_millis(20);

/// Wait for a busy `LockFileEx` lock by trying it again with backoff until `timeout`; the
/// loop is bounded by the deadline, and the last try is made at it.
#[cfg(windows)]
fn poll_until(
    file: File,
    mode: LockMode,
    timeout: Duration,
    path: &Path,
) -> Result<LockGuard, LockError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut delay = POLL_FIRST_DELAY;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(LockError::Timeout(waited_ms(started)));
        }
        std::thread::sleep(delay.min(deadline - now));
        if try_lock(&file, mode).map_err(|e| LockError::Io(io_error(&e, path)))? {
            return Ok(LockGuard {
                file: Some(file),
                path: path.to_path_buf(),
            });
        }
        delay = (delay * 2).min(POLL_MAX_DELAY);
    }
}

#[cfg(target_os = "linux")]
enum Wait {
    Timeout(u32),
    Io(std::io::Error),
}

#[cfg(target_os = "linux")]
/// The real-time signal that interrupts a lock wait, if we could claim it.
fn wake_signal() -> Option<libc::c_int> {
    static SIGNAL: std::sync::OnceLock<Option<libc::c_int>> = std::sync::OnceLock::new();
    *SIGNAL.get_or_init(install_wake_handler)
}

#[cfg(target_os = "linux")]
extern "C" fn on_wake(_: libc::c_int) {
    // Nothing: the point is that the blocked flock returns EINTR.
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn install_wake_handler() -> Option<libc::c_int> {
    // Above glibc's reserved range; an application that uses it keeps it.
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
        // No SA_RESTART: interrupted syscalls return EINTR. SA_ONSTACK: Go (and any runtime
        // that runs threads on small stacks with an alternate signal stack) requires it of
        // every handler installed in its process.
        action.sa_flags = libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
            return None;
        }
    }
    Some(signal)
}

/// Whether `signal` is blocked in the calling thread: then the watchdog's signal could not
/// interrupt a blocked flock, and the wait would outlast its deadline. Runtimes that embed us
/// (Node's worker threads, Go's scheduler threads, an application's own threads) choose
/// their threads' masks, so this is asked on every wait, not once.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn blocked_in_this_thread(signal: libc::c_int) -> bool {
    // SAFETY: a null new set only queries the calling thread's mask into `current`.
    unsafe {
        let mut current: libc::sigset_t = std::mem::zeroed();
        if libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut current) != 0 {
            return true;
        }
        libc::sigismember(&current, signal) == 1
    }
}

#[cfg(target_os = "linux")]
/// Block in flock in this thread until the lock is ours or `timeout` passes.
fn block_until(
    file: File,
    mode: LockMode,
    timeout: Duration,
    signal: libc::c_int,
) -> Result<File, Wait> {
    let started = Instant::now();
    let deadline = started + timeout;
    let timer = WakeTimer::arm(signal, timeout).map_err(Wait::Io)?;
    let result = loop {
        match block_lock(&file, mode) {
            Ok(()) => break Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                if Instant::now() >= deadline {
                    break Err(Wait::Timeout(
                        u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX),
                    ));
                }
            }
            Err(e) => break Err(Wait::Io(e)),
        }
    };
    drop(timer);
    result.map(|()| file)
}

/// A POSIX timer that sends `signal` to the calling thread at the deadline and every 2 ms
/// after it, until dropped: the watchdog of one lock wait.
///
/// Why a kernel timer and not a watchdog thread: a contended lock is waited for once per
/// update, and a thread per wait (clone, a stack mapped and unmapped, its exit) cost more
/// CPU than the rest of the wait, taken from the lock holder on a machine with few cores:
/// with 32 processes racing, about a quarter of the updates per second. A timer is three
/// system calls and no state shared between calls, so a child of `fork` needs nothing of
/// its parent. The repeat covers a signal that lands just before the thread enters
/// `flock`: the next one interrupts it.
#[cfg(target_os = "linux")]
struct WakeTimer(libc::timer_t);

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
impl WakeTimer {
    fn arm(signal: libc::c_int, after: Duration) -> std::io::Result<WakeTimer> {
        let spec = |d: Duration| libc::timespec {
            // Lock timeouts are at most days (open::seconds_ms): no `time_t` overflows.
            tv_sec: d.as_secs().min(i32::MAX as u64) as _,
            tv_nsec: libc::c_long::from(d.subsec_nanos()),
        };
        // SAFETY: a zeroed sigevent is a valid "no notification" value; every field used
        // is set below.
        let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
        event.sigev_notify = libc::SIGEV_THREAD_ID;
        event.sigev_signo = signal;
        // SAFETY: gettid has no preconditions; it names this thread, which outlives the
        // timer (dropped before block_until returns).
        event.sigev_notify_thread_id = unsafe { libc::syscall(libc::SYS_gettid) } as libc::c_int;
        let mut id: libc::timer_t = std::ptr::null_mut();
        // SAFETY: `event` and `id` are valid for the call.
        if unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut event, &mut id) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let timer = WakeTimer(id);
        let when = libc::itimerspec {
            // A zero first expiry would disarm the timer.
            it_value: spec(after.max(Duration::from_nanos(1))),
            it_interval: spec(Duration::from_millis(2)),
        };
        // SAFETY: `id` is the timer just created; `when` is valid; no old value wanted.
        if unsafe { libc::timer_settime(id, 0, &when, std::ptr::null_mut()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(timer)
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
impl Drop for WakeTimer {
    fn drop(&mut self) {
        // SAFETY: the timer was created by `arm` and is deleted once. A signal it already
        // queued is delivered on this call's return, to the handler that does nothing.
        unsafe { libc::timer_delete(self.0) };
    }
}

#[cfg(test)]
mod tests {
    //! Guards promise 7 (every wait ends) and the exclusion itself.
    use super::*;

    #[test]
    fn exclusive_excludes_and_times_out_then_hands_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = acquire(&path, LockMode::Exclusive, Duration::from_millis(100)).unwrap();
        // flock locks are per open file description, so a second open in this process conflicts.
        let t = Instant::now();
        let err = acquire(&path, LockMode::Shared, Duration::from_millis(150)).unwrap_err();
        assert!(
            matches!(err, LockError::Timeout(ms) if ms >= 140),
            "{err:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(2));
        let waiter = std::thread::spawn({
            let path = path.clone();
            move || {
                acquire(&path, LockMode::Exclusive, Duration::from_secs(10)).map(|_| Instant::now())
            }
        });
        std::thread::sleep(Duration::from_millis(50));
        let released = Instant::now();
        drop(held);
        let got = waiter.join().unwrap().unwrap();
        assert!(got.duration_since(released) < Duration::from_secs(1));
    }

    #[test]
    fn many_waiters_each_time_out_or_acquire() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.lock");
        let held = acquire(&path, LockMode::Exclusive, Duration::ZERO).unwrap();
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    acquire(&path, LockMode::Exclusive, Duration::from_millis(100)).map(|_| ())
                })
            })
            .collect();
        for w in waiters {
            assert!(matches!(w.join().unwrap(), Err(LockError::Timeout(_))));
        }
        drop(held);
        assert!(acquire(&path, LockMode::Exclusive, Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn shared_locks_coexist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.lock");
        let _a = acquire(&path, LockMode::Shared, Duration::ZERO).unwrap();
        let _b = acquire(&path, LockMode::Shared, Duration::ZERO).unwrap();
        assert!(matches!(
            acquire(&path, LockMode::Exclusive, Duration::ZERO),
            Err(LockError::Timeout(0))
        ));
    }

    /// The helper-thread wait is the only wait on macOS, and on Linux only when the
    /// application owns our signal: exercise it here directly.
    #[cfg(unix)]
    #[test]
    fn helper_wait_times_out_then_hands_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.lock");
        let held = acquire(&path, LockMode::Exclusive, Duration::ZERO).unwrap();
        let file = open_nofollow_create(&path).unwrap();
        let t = Instant::now();
        let err =
            wait_in_helper(file, LockMode::Shared, Duration::from_millis(100), &path).unwrap_err();
        assert!(matches!(err, LockError::Timeout(ms) if ms >= 90), "{err:?}");
        assert!(t.elapsed() < Duration::from_secs(2));
        let waiter = std::thread::spawn({
            let path = path.clone();
            move || {
                let file = open_nofollow_create(&path).unwrap();
                wait_in_helper(file, LockMode::Exclusive, Duration::from_secs(10), &path)
                    .map(|_| Instant::now())
            }
        });
        std::thread::sleep(Duration::from_millis(50));
        let released = Instant::now();
        drop(held);
        let got = waiter.join().unwrap().unwrap();
        assert!(got.duration_since(released) < Duration::from_secs(1));
        // The helper abandoned by the timeout above got the lock and dropped it.
        assert!(acquire(&path, LockMode::Exclusive, Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn refuses_a_symlinked_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"").unwrap();
        let link = dir.path().join("l.lock");
        if !crate::files::tests::symlink_file(&target, &link) {
            return;
        }
        assert!(matches!(
            acquire(&link, LockMode::Exclusive, Duration::ZERO),
            Err(LockError::Io(_))
        ));
    }
}
