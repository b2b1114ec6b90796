//! The simulated world that virtual processes share: a disk, flock-like locks, a token
//! endpoint with rotation and reuse detection, a clock, and the history the checkers read.
//!
//! # Fault model
//! Every fault is drawn from the run's seed, only during the safety phase:
//! - **process crash** at any scheduling point (kill -9): the process stops; its locks are
//!   released (as the kernel does); files keep what was written (the page cache survives).
//! - **machine crash** (power loss): every process stops; each file reverts to its last
//!   durable state: data is durable after the temp file's fsync, a rename after the
//!   directory's fsync.
//! - **write faults**: ENOSPC or EIO when writing the temp file, EIO on its fsync (the old
//!   file stays), and EIO on the directory fsync after the rename (the new file is visible
//!   but not durable, and the write is not acknowledged).
//! - **lock timeouts**: waits are bounded in simulated time; a holder that is slow or
//!   descheduled makes waiters time out.
//! - **keyring unavailable**: unlocking the store key fails transiently.
//! - **network**: the request never arrives (connect error); 503 before processing; the
//!   reply lost after the server rotated (timeout); a malformed 200 after rotation.
//! - **clock**: each process has its own skew, and its clock can jump by seconds.
//! - **corruption**: a bit of the store's body flips on disk (a bad sector or a stray
//!   writer), at rest: when a process that wrote it releases the store lock, anywhere in
//!   the file, header included.
//!   From then on the store must never be written; only `recover` and `quarantine` may move
//!   it aside (a durable rename, with the same crash and directory-fsync faults as a write),
//!   and its bytes must survive, as the store or beside it, to the end of the run.
//! - **database store** (`session_loss > 0`): the platform keeps the store as PostgreSQL
//!   does, in the `records` layout: the store's header, and each tenant as its own sealed
//!   record. A write of the header and its records is one fenced commit, durable and
//!   visible at once (no temp file, no directory fsync); its reply can be lost after the
//!   commit (the write is then not acknowledged). A record read is fenced too: refused if
//!   the store's version is no longer the one whose header the process read (possible only
//!   when a lock was taken while its holder's write still landed). A database is not
//!   corrupted at rest (it
//!   checksums its own pages): the corruption fault never strikes it, and `recover` and
//!   `quarantine` must refuse it (`tenant-records`).
//! - **reboot**: a power loss also empties the kernel keyring, so a `kernel-keyring` slot
//!   (volatile) no longer opens anything; a store must always keep a durable slot.
//!
//! Keys: every data key minted (`create`, `rekey`) is registered in the world, so every
//! process can open it from a slot that names it; the checkers decode every version with
//! them. A slot's data is the id of the key it wraps.

use crate::rng::Rng;
use credlock_core::model::Body;
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub type Pid = usize;

/// Fault rates in parts per million per opportunity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub crash: u32,
    pub power_loss: u32,
    pub write_error: u32,
    pub dir_fsync_error: u32,
    pub keyring_unavailable: u32,
    pub connect_error: u32,
    pub server_unavailable: u32,
    pub reply_lost: u32,
    pub malformed_reply: u32,
    pub clock_jump: u32,
    pub corruption: u32,
    /// A lock is taken from its holder as a database does when a session ends
    /// (`pg_terminate_backend`, an idle timeout, a pooler): the store lock at a write (the
    /// write then fails, or, with the session still there, meets the version fence), or a
    /// refresh lock just before its holder records its intent. The platform then models a
    /// database store: fenced writes (FORMAT.md, "PostgreSQL").
    pub session_loss: u32,
}

/// The faults that trigger credlock-core bugs reported but not yet fixed. All off by
/// default, so that a campaign checks everything else; `--known-core-bugs [LIST]` turns them
/// on (all, or the comma-separated names) to check a fix. None is open now. (Fixed since, and
/// now injected in every campaign: `recover --force` restoring a refresh token unmarked while
/// the newer store had a refresh of it under way, b42bb9b; `recover` and `quarantine` taking a
/// transient key error for damage and moving a good store aside, 1dbe2a5; a recover
/// interrupted between its writes leaving a store that a later recover repeated the
/// generation of, b42bb9b and cad6928; `header-damage`, a flipped bit anywhere in the file
/// (the key id or a slot reads as a wrong key, the version as a newer format) that credlock
/// could not move aside after a write that changed the header or removed the backup: now
/// `recover --force` and `quarantine --force`, and no new store beside a backup.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KnownBugs {}

impl KnownBugs {
    pub const NAMES: [&'static str; 0] = [];

    pub fn all() -> KnownBugs {
        KnownBugs {}
    }

    /// From a comma-separated list of names; `None` for an unknown name.
    pub fn parse(list: &str) -> Option<KnownBugs> {
        list.split(',')
            .all(|name| name.is_empty())
            .then_some(KnownBugs {})
    }

    /// The names switched on, comma-separated.
    pub fn names(&self) -> String {
        String::new()
    }
}

/// Buggy platform behaviours for the zoo (the core's own bugs are `credlock_core::store::Naive`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NaivePlatform {
    /// Write the store in place (O_TRUNC, then the bytes), not temp + rename.
    pub in_place_writes: bool,
    /// Delete the lock file on release: a waiter on the old inode and a newcomer on a new
    /// one both "hold" the lock.
    pub delete_lock_files: bool,
    /// A database host without the version fence: a holder whose lock was lost writes what
    /// it read, over whatever was written meanwhile.
    pub unfenced_writes: bool,
    /// A database host that reads tenant records without checking that the store is still
    /// at the version whose header the process read: after a lost lock whose holder's
    /// write landed anyway, a reader mixes a header of one version with records of the
    /// next.
    pub unfenced_record_reads: bool,
}

#[derive(Debug, Clone, Default)]
pub struct File {
    pub live: Option<Vec<u8>>,
    pub durable: Option<Vec<u8>>,
}

/// A file moved aside by `quarantine` (`credentials.sealed.corrupt-<ms>[-n]`).
#[derive(Debug, Clone)]
pub struct Aside {
    pub name: String,
    pub file: File,
}

/// A queued write's state (`wit/files.wit`, "Queued writes").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QState {
    Posted,
    Claimed,
    /// Acknowledged; `bytes` is then the receipt.
    Done,
}

/// One entry of the store's queue of writes: a file in the store's directory whose name is
/// its state, its poster and its id.
#[derive(Debug, Clone)]
pub struct QEntry {
    pub pid: Pid,
    pub state: QState,
    pub bytes: Vec<u8>,
}

/// Whether file stores keep a queue of writes (group commit). On by default;
/// `--no-group-commit` turns it off, to compare with runs (and trace hashes) from before it.
pub static GROUP_COMMIT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

#[derive(Debug, Default)]
pub struct Disk {
    pub store: File,
    pub backup: File,
    /// Files renamed aside by `quarantine`; nothing ever writes or removes them.
    pub aside: Vec<Aside>,
    /// The process that last wrote the store and still holds the store lock: the corruption
    /// fault may strike when it lets go.
    pub written_by: Option<Pid>,
    /// A database store's tenant records (the `records` layout), by id: written only with
    /// the header, in one commit, so always as of the header in `store`. Durable when
    /// written.
    pub records: BTreeMap<String, Vec<u8>>,
    /// Set once the corruption fault flipped a bit in this run (readers may then see a
    /// corrupt store). Whether the store is unreadable *now* is decided by decoding it.
    pub corrupted: bool,
    /// The queue of writes by entry id, as the directory lists it now, and as a power loss
    /// would leave it: entries are files in the store's directory, so a directory fsync (any
    /// write of the store) makes every post, claim and settle so far durable, and a power
    /// loss reverts the rest.
    pub queue: BTreeMap<String, QEntry>,
    pub queue_durable: BTreeMap<String, QEntry>,
}

impl Disk {
    /// A directory fsync: every rename so far is durable.
    pub fn sync_dir(&mut self) {
        self.store.durable = self.store.live.clone();
        self.backup.durable = self.backup.live.clone();
        for a in &mut self.aside {
            a.file.durable = a.file.live.clone();
        }
        self.queue_durable = self.queue.clone();
    }
}

/// One lock file's state. `inode` changes when a naive host deletes the file.
#[derive(Debug, Default, Clone)]
pub struct LockState {
    pub inode: u64,
    /// Holders per inode: (pid, exclusive).
    pub holders: Vec<(Pid, bool, u64)>,
}

#[derive(Debug, Clone)]
pub struct Presentation {
    pub refresh_token: String,
    #[allow(dead_code)] // shown in failure investigations with a debugger
    pub pid: Pid,
    #[allow(dead_code)]
    pub at_ms: u64,
    /// `ok`, `invalid_grant`, `not-arrived`, `unavailable`
    pub outcome: &'static str,
}

#[derive(Debug, Default)]
pub struct Grant {
    pub current_refresh: String,
    pub consumed: BTreeSet<String>,
    pub revoked: bool,
}

#[derive(Debug, Default)]
pub struct Server {
    pub grants: Vec<Grant>,
    pub by_token: HashMap<String, usize>,
    pub presentations: Vec<Presentation>,
    pub invalid_granted: BTreeSet<String>,
    pub issued: u64,
    pub lifetime_ms: u64,
    pub successes: u64,
}

impl Server {
    /// A new grant (a login): returns (access, refresh).
    pub fn login(&mut self) -> (String, String) {
        let g = self.grants.len();
        self.issued += 1;
        let rt = format!("rt-{g}-{}", self.issued);
        let at = format!("at-{g}-{}", self.issued);
        self.grants.push(Grant {
            current_refresh: rt.clone(),
            ..Default::default()
        });
        self.by_token.insert(rt.clone(), g);
        (at, rt)
    }

    /// Process a refresh with rotation and RFC 9700 reuse detection.
    pub fn refresh(&mut self, rt: &str) -> Result<(String, String), &'static str> {
        let Some(&g) = self.by_token.get(rt) else {
            return Err("invalid_grant");
        };
        let grant = &mut self.grants[g];
        if grant.revoked {
            return Err("invalid_grant");
        }
        if grant.current_refresh != rt {
            // A consumed token presented again: revoke the whole grant.
            grant.revoked = true;
            return Err("invalid_grant");
        }
        self.issued += 1;
        let new_rt = format!("rt-{g}-{}", self.issued);
        let at = format!("at-{g}-{}", self.issued);
        grant.consumed.insert(rt.to_owned());
        grant.current_refresh = new_rt.clone();
        self.by_token.insert(new_rt.clone(), g);
        self.successes += 1;
        Ok((at, new_rt))
    }
}

/// A store version as renamed into place, decoded by the checker.
#[derive(Debug, Clone)]
pub struct Version {
    pub body: Body,
    pub write_id: u64,
    pub acked: bool,
    /// Made durable by a directory fsync (a power loss drops the versions after the last
    /// durable one).
    pub durable: bool,
    /// Written where there was no store file (after a quarantine): a fresh store
    /// (generation 1) or a restored backup (a generation above every earlier one). Writes
    /// acknowledged before it may be rolled back by it.
    pub reset: bool,
}

/// A quarantine that happened: what was moved aside, by whom, doing what.
#[derive(Debug, Clone)]
pub struct Quarantine {
    pub name: String,
    pub pid: Pid,
    pub doing: &'static str,
    /// Whether the file moved aside was readable (decodes with a world key).
    pub readable: bool,
}

/// What the checkers read after (and during) a run.
#[derive(Debug, Default)]
pub struct History {
    /// Store versions in the order they became visible (rename order).
    pub versions: Vec<Version>,
    /// Acknowledged puts: (tenant, revision, access token, generation of the write).
    pub acked_puts: Vec<(String, u64, String, u64)>,
    /// Acknowledged deletes: (tenant, index into versions at the time).
    pub acked_deletes: Vec<(String, usize)>,
    /// Tenants some process tried to delete (acknowledged or not).
    pub attempted_deletes: BTreeSet<String>,
    /// Every quarantine, in order.
    pub quarantines: Vec<Quarantine>,
    /// The contents of every store the corruption fault made unreadable: each must still
    /// exist at the end, as the store or as a file moved aside (never overwritten).
    pub unreadable: Vec<Vec<u8>>,
    /// Acknowledged rekeys: (generation written, new key id).
    pub rekeys: Vec<(u64, [u8; 16])>,
    /// Successful recovers: the generation they wrote.
    pub recovers: Vec<u64>,
    pub failures: Vec<String>,
    /// Count of store errors by kind, for the run summary.
    pub errors: BTreeMap<String, u64>,
    /// Count of successful operations by name, for the run summary.
    pub succeeded: BTreeMap<&'static str, u64>,
    /// What became of queued writes (group commit), by event, for the run summary.
    pub queue: BTreeMap<&'static str, u64>,
    pub ops_done: u64,
}

pub struct World {
    pub rng: Rng,
    pub now_ms: u64,
    pub disk: Disk,
    pub locks: BTreeMap<credlock_core::platform::LockTarget, LockState>,
    pub next_inode: u64,
    pub server: Server,
    pub faults: Faults,
    /// Which reported, not yet fixed credlock-core bugs to trigger (see [`KnownBugs`]).
    pub known_core_bugs: KnownBugs,
    pub naive_platform: NaivePlatform,
    /// Data keys minted in this world: (id, key). The checker decodes versions with them.
    pub keys: Vec<([u8; 16], [u8; 32])>,
    /// Key ids with an entry in the (volatile) kernel keyring; emptied by a reboot.
    pub kernel_keyring: BTreeSet<[u8; 16]>,
    pub history: History,
    pub next_write_id: u64,
    /// The store row's version (a database store's fence): raised by every write.
    pub db_version: u64,
    /// The version each process last read or wrote: its writes are fenced by it.
    pub db_seen: BTreeMap<usize, u64>,
}

impl World {
    pub fn new(seed: u64) -> Self {
        World {
            rng: Rng::new(seed),
            now_ms: 1_700_000_000_000,
            disk: Disk::default(),
            locks: BTreeMap::new(),
            next_inode: 1,
            server: Server {
                lifetime_ms: 2_000,
                ..Default::default()
            },
            faults: Faults::default(),
            known_core_bugs: KnownBugs::default(),
            naive_platform: NaivePlatform::default(),
            keys: Vec::new(),
            kernel_keyring: BTreeSet::new(),
            history: History::default(),
            next_write_id: 0,
            db_version: 0,
            db_seen: BTreeMap::new(),
        }
    }

    /// Whether this world's store is a database (a campaign that loses sessions): then the
    /// platform keeps it in the `records` layout.
    pub fn database(&self) -> bool {
        self.faults.session_loss > 0
    }

    pub fn fail(&mut self, why: String) {
        if self.history.failures.len() < 20 {
            self.history.failures.push(why);
        }
    }

    /// Power loss (and reboot): every file reverts to its durable state and the kernel
    /// keyring is emptied. Versions written after the last durable one disappear; none of
    /// them may have been acknowledged.
    pub fn power_loss(&mut self) {
        self.disk.store.live = self.disk.store.durable.clone();
        self.disk.backup.live = self.disk.backup.durable.clone();
        for a in &mut self.disk.aside {
            a.file.live = a.file.durable.clone();
        }
        self.disk.queue = self.disk.queue_durable.clone();
        self.kernel_keyring.clear();
        let keep = self
            .history
            .versions
            .iter()
            .rposition(|v| v.durable)
            .map_or(0, |i| i + 1);
        let lost: Vec<Version> = self.history.versions.drain(keep..).collect();
        for v in lost {
            if v.acked {
                self.fail(format!(
                    "power loss dropped acknowledged generation {}",
                    v.body.generation
                ));
            }
        }
    }
}
