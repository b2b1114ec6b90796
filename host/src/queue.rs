//! A directory store's queue of writes (group commit; `wit/files.wit`, "Queued writes";
//! FORMAT.md, "Queued writes"): one file per entry in the store's directory, its state in
//! its name.
//!
//! - `.credentials.queued-PID-ID`: posted by process PID (written to a temp file and renamed
//!   into place, so a holder never takes half an entry);
//! - `.credentials.claimed-PID-ID`: taken by a holder (a rename), before its write; the
//!   write's directory fsync makes the claim durable with it (same directory);
//! - `.credentials.done-PID-ID`: acknowledged: the claimed file, rewritten with the receipt
//!   after the write returned, and renamed.
//!
//! The poster's process id lets a holder tell the entries of a poster that is gone (killed
//! while it waited): it removes them, unwritten (a `put` that never returned need not land,
//! and one that landed long after its caller died could bring back spent tokens).
//! Entries are sealed by the core under the store's key; the files are owner-only.

use crate::files::{process_alive, temp_name};
use crate::io_util::{self, io_error};
use credlock_core::platform::{FileError, Queued};
use credlock_core::queue::valid_entry_id;
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The largest entry read: a token response with room to spare.
const MAX_ENTRY_BYTES: u64 = 1024 * 1024;

#[derive(Clone, Copy)]
enum State {
    Queued,
    Claimed,
    Done,
}

impl State {
    fn word(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Claimed => "claimed",
            State::Done => "done",
        }
    }
}

/// The queue of the store in `dir`. `posters` remembers, from the last `take`, whose entry
/// each id is (the name holds the poster's pid, the core knows ids only).
pub struct Queue {
    dir: PathBuf,
    posters: HashMap<String, u32>,
    /// Whether posting paid off lately in this process: +1 for each change a holder wrote,
    /// -1 for each this process had to write itself after all (see [`Queue::enabled`]).
    paid: i32,
    /// `put`s since this process stopped posting.
    resting: u32,
}

/// Posts in a row (net) that a holder did not take, after which a process stops posting.
const PATIENCE: i32 = 4;
/// `put`s a process makes without posting before it tries again.
const REST: u32 = 64;

fn other(e: io::Error, path: &Path) -> FileError {
    FileError::Io(io_error(&e, path))
}

impl Queue {
    pub fn new(dir: PathBuf) -> Self {
        Queue {
            dir,
            posters: HashMap::new(),
            paid: 0,
            resting: 0,
        }
    }

    /// Whether this process should post its `put`s when the lock is busy. Posting pays when
    /// a holder takes the change; with two writers it rarely does (the holder's write is
    /// under way before the other posts), and then a post and a second lock turn cost about
    /// 150 µs for nothing (BENCHMARKS.md, "Group commit"). So a process whose posts keep
    /// coming back to it waits for the lock as before, for a while, then tries again.
    /// Correctness never depends on it: a `put` that does not post is the plain merge.
    pub fn enabled(&mut self) -> bool {
        if self.paid > -PATIENCE {
            return true;
        }
        self.resting += 1;
        if self.resting < REST {
            return false;
        }
        self.paid = 0;
        self.resting = 0;
        true
    }

    fn path(&self, state: State, pid: u32, id: &str) -> PathBuf {
        // The core makes ids; anything else here is a bug that must not reach a path.
        assert!(valid_entry_id(id), "bad queue entry id");
        self.dir
            .join(format!(".credentials.{}-{pid}-{id}", state.word()))
    }

    /// `(state, pid, id)` of an entry's file name; `None` for any other file.
    fn parse(name: &str) -> Option<(State, u32, &str)> {
        let rest = name.strip_prefix(".credentials.")?;
        let (word, rest) = rest.split_once('-')?;
        let state = match word {
            "queued" => State::Queued,
            "claimed" => State::Claimed,
            "done" => State::Done,
            _ => return None,
        };
        let (pid, id) = rest.split_once('-')?;
        let pid = pid.parse().ok()?;
        valid_entry_id(id).then_some((state, pid, id))
    }

    pub fn post(&mut self, id: &str, sealed: &[u8]) -> Result<(), FileError> {
        let target = self.path(State::Queued, std::process::id(), id);
        let tmp = temp_name(&target, "new");
        let written = (|| -> io::Result<()> {
            let mut f = io_util::owner_only(io_util::no_follow(
                OpenOptions::new().write(true).create_new(true),
            ))
            .open(&tmp)?;
            // No fsync: an entry matters only once a holder's durable write carries it.
            f.write_all(sealed)?;
            drop(f);
            io_util::rename_over(&tmp, &target)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(other(e, &target));
        }
        crate::failpoints::hit("queue:after-post");
        Ok(())
    }

    pub fn take(&mut self) -> Result<Vec<(String, Vec<u8>)>, FileError> {
        self.posters.clear();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| other(e, &self.dir))?;
        let mut taken = Vec::new();
        for e in entries {
            let e = e.map_err(|e| other(e, &self.dir))?;
            let name = e.file_name();
            let Some((state, pid, id)) = name.to_str().and_then(Self::parse) else {
                continue;
            };
            // Only the owner can write this directory (privacy::check_store_dir); still,
            // what is not a regular file is no entry of ours.
            if !e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            match state {
                // A change whose caller is gone is not written: it could land long after it
                // was made, over newer tokens (and its caller was never told it succeeded).
                State::Queued | State::Claimed | State::Done if !process_alive(pid) => {
                    let _ = std::fs::remove_file(e.path());
                }
                State::Queued => {
                    let claimed = self.path(State::Claimed, pid, id);
                    match io_util::rename_over(&e.path(), &claimed) {
                        Ok(()) => {}
                        // Withdrawn by its poster meanwhile.
                        Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                        Err(err) => return Err(other(err, &e.path())),
                    }
                    // One that cannot be read stays claimed: its poster writes it itself (or,
                    // gone, a later holder removes it). It must not fail this holder's write.
                    if let Ok(Some(bytes)) = read_entry(&claimed) {
                        self.posters.insert(id.to_owned(), pid);
                        taken.push((id.to_owned(), bytes));
                    }
                }
                // Its poster collects it.
                State::Claimed | State::Done => {}
            }
        }
        if !taken.is_empty() {
            crate::failpoints::hit("queue:after-take");
        }
        Ok(taken)
    }

    pub fn settle(&mut self, id: &str, receipt: Option<&[u8]>) -> Result<(), FileError> {
        let Some(&pid) = self.posters.get(id) else {
            return Ok(());
        };
        let claimed = self.path(State::Claimed, pid, id);
        let Some(receipt) = receipt else {
            // Not written: its poster finds it absent and writes the change itself.
            return remove(&claimed).map(|_| ());
        };
        crate::failpoints::hit("queue:before-settle");
        let written = (|| -> io::Result<()> {
            // Not created: a claim its poster collected (it gave up waiting) stays gone.
            let mut f =
                io_util::no_follow(OpenOptions::new().write(true).truncate(true)).open(&claimed)?;
            f.write_all(receipt)?;
            drop(f);
            io_util::rename_over(&claimed, &self.path(State::Done, pid, id))
        })();
        match written {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(other(e, &claimed)),
            _ => Ok(()),
        }
    }

    pub fn collect(&mut self, id: &str, acknowledged_only: bool) -> Result<Queued, FileError> {
        let pid = std::process::id();
        let done = self.path(State::Done, pid, id);
        if let Some(receipt) = read_entry(&done)? {
            remove(&done)?;
            self.paid = (self.paid + 1).min(PATIENCE);
            return Ok(Queued::Acknowledged(receipt));
        }
        if !acknowledged_only {
            // The poster writes it itself.
            self.paid -= 1;
        }
        // Removed, or (only looking) checked: an entry's file has one of three names.
        let gone = |path: &Path| -> Result<bool, FileError> {
            if acknowledged_only {
                Ok(path.symlink_metadata().is_ok())
            } else {
                remove(path)
            }
        };
        if gone(&self.path(State::Queued, pid, id))? {
            return Ok(Queued::Posted);
        }
        if gone(&self.path(State::Claimed, pid, id))? {
            return Ok(Queued::Claimed);
        }
        Ok(Queued::Absent)
    }

    pub fn withdraw(&mut self, id: &str) -> Result<bool, FileError> {
        remove(&self.path(State::Queued, std::process::id(), id))
    }
}

/// Remove `path`; false if it was not there. Not durable: an entry's removal matters to no
/// one after a power loss (its poster is gone, and a holder removes what a gone poster left).
fn remove(path: &Path) -> Result<bool, FileError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(other(e, path)),
    }
}

/// The entry at `path`, or `None` if there is none.
fn read_entry(path: &Path) -> Result<Option<Vec<u8>>, FileError> {
    let f = match io_util::no_follow(OpenOptions::new().read(true)).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(other(e, path)),
    };
    let mut bytes = Vec::new();
    f.take(MAX_ENTRY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| other(e, path))?;
    if bytes.len() as u64 > MAX_ENTRY_BYTES {
        return Err(FileError::TooLarge(bytes.len() as u64));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> String {
        format!("{:032x}", n)
    }

    #[test]
    fn an_entry_goes_posted_claimed_acknowledged_and_is_collected_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::new(dir.path().to_path_buf());
        q.post(&id(1), b"sealed").unwrap();
        assert_eq!(q.take().unwrap(), vec![(id(1), b"sealed".to_vec())]);
        // Claimed: no longer withdrawable.
        assert!(!q.withdraw(&id(1)).unwrap());
        q.settle(&id(1), Some(b"receipt")).unwrap();
        // Acknowledged: not taken again.
        assert_eq!(q.take().unwrap(), vec![]);
        assert_eq!(
            q.collect(&id(1), true).unwrap(),
            Queued::Acknowledged(b"receipt".to_vec())
        );
        assert_eq!(q.collect(&id(1), false).unwrap(), Queued::Absent);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing left"
        );
        // Removed unwritten: its poster finds it absent.
        q.post(&id(2), b"x").unwrap();
        q.take().unwrap();
        q.settle(&id(2), None).unwrap();
        assert_eq!(q.collect(&id(2), false).unwrap(), Queued::Absent);
        // Looking under the shared lock leaves a posted entry for the next holder.
        q.post(&id(3), b"y").unwrap();
        assert_eq!(q.collect(&id(3), true).unwrap(), Queued::Posted);
        assert_eq!(q.take().unwrap().len(), 1);
    }

    #[test]
    fn a_process_whose_posts_keep_coming_back_rests_then_tries_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = Queue::new(dir.path().to_path_buf());
        for n in 0..PATIENCE as u8 {
            assert!(q.enabled());
            q.post(&id(n), b"x").unwrap();
            // No holder took it: the poster writes it itself.
            assert_eq!(q.collect(&id(n), false).unwrap(), Queued::Posted);
        }
        let resting = (0..REST).take_while(|_| !q.enabled()).count();
        assert_eq!(resting as u32, REST - 1);
        assert!(q.enabled(), "tries again");
        // One that paid off counts for it.
        q.post(&id(9), b"x").unwrap();
        q.take().unwrap();
        q.settle(&id(9), Some(b"r")).unwrap();
        q.collect(&id(9), false).unwrap();
        assert_eq!(q.paid, 1);
    }
}
