//! Inter-process locks: `flock(2)` on sidecar files that are never deleted.
//!
//! Why flock: it belongs to the open file description, so it dies with its process (a crash
//! never leaves a lock held), it is what Python's `fcntl.flock` and a Node addon take too,
//! and a blocked `flock` is woken by the kernel the moment the holder releases. We want that
//! fast hand-over (microseconds) but also a timeout, which blocking flock lacks: so we first
//! try without blocking, and only if that fails block in a helper thread while the caller
//! waits on a channel with a deadline. A helper that wins after its caller gave up releases
//! at once.

use crate::io_util::{io_error, open_nofollow_create};
use credlock_core::platform::{LockError, LockMode};
use fs4::fs_std::FileExt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A held lock. Dropping it closes the file, which releases the flock.
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
    let waited =
        |started: Instant| u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
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
            Err(LockError::Timeout(waited(started)))
        }
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

    #[test]
    fn refuses_a_symlinked_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"").unwrap();
        let link = dir.path().join("l.lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            acquire(&link, LockMode::Exclusive, Duration::ZERO),
            Err(LockError::Io(_))
        ));
    }
}
