//! The simulated platform: the core's seam implemented over the shared [`World`], one
//! instance per virtual process. Every method is a scheduling point.

use crate::sched::Sim;
use crate::world::{Pid, QEntry, QState};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use credlock_core::platform::*;
use std::sync::Arc;

pub struct SimPlatform {
    pub sim: Arc<Sim>,
    pub pid: Pid,
}

/// A held simulated lock; dropping it releases (also while a crash unwinds, as the kernel
/// releases a dead process's flock), and so does [`SimGuard::release`], once.
pub struct SimGuard {
    sim: Arc<Sim>,
    pid: Pid,
    target: LockTarget,
    inode: u64,
    released: bool,
}

impl Drop for SimGuard {
    fn drop(&mut self) {
        self.release();
    }
}

impl SimGuard {
    /// Let go of the lock now (the WIT `lock-guard.release`); dropping it later does nothing
    /// more.
    pub fn release(&mut self) {
        if std::mem::replace(&mut self.released, true) {
            return;
        }
        let mut st = self.sim.lock();
        let naive_delete = st.world.naive_platform.delete_lock_files;
        let mut fresh_inode = None;
        if naive_delete {
            fresh_inode = Some(st.world.next_inode);
            st.world.next_inode += 1;
        }
        if let Some(l) = st.world.locks.get_mut(&self.target) {
            if let Some(i) = l
                .holders
                .iter()
                .position(|&(p, _, ino)| p == self.pid && ino == self.inode)
            {
                l.holders.remove(i);
            }
            if let Some(ino) = fresh_inode {
                // The file is unlinked: the next open creates a new inode.
                l.inode = ino;
            }
        }
        // Corruption strikes at rest: once the writer has let go of the store (a flipped bit
        // between two writes of one holder would only hit its own first copy).
        if self.target == LockTarget::Store && st.world.disk.written_by == Some(self.pid) {
            st.world.disk.written_by = None;
            let rate = st.world.faults.corruption;
            if st.faults_on && st.world.rng.chance(rate) {
                corrupt_store(&mut st.world);
            }
        }
        Sim::wake_all(&mut st);
    }
}

/// Flip a bit of the store, anywhere: in the body (fails authentication), or in the header
/// (a flipped bit in the key id or a slot reads as a wrong key, in the version as a newer
/// format: damage only `recover --force` or `quarantine --force` can move aside when no
/// backup proves it).
/// A write of the store's row raises its version, and the writer has seen the new one (its
/// next write under the same lock is fenced by it).
fn new_version(w: &mut crate::world::World, pid: Pid) {
    w.db_version += 1;
    let version = w.db_version;
    w.db_seen.insert(pid, version);
}

/// A database store's write (a campaign that loses sessions): `UPDATE ... WHERE version =
/// <what this process read>`, atomic with the write; the naive platform drops the fence, and
/// a file store has none. Then the row's new version.
fn fence(w: &mut crate::world::World, pid: Pid) -> Result<(), FileError> {
    if w.database()
        && w.db_seen.get(&pid) != Some(&w.db_version)
        && !w.naive_platform.unfenced_writes
    {
        return Err(FileError::Io(IoError::Fenced(
            "simulated: the store changed since this process read it under its lock".into(),
        )));
    }
    new_version(w, pid);
    Ok(())
}

/// The store file (or a database store's header) is about to be replaced: the one there
/// becomes the backup (a hard link, then the rename; with none, after a quarantine, the backup
/// stays as it was). Overwriting one that does not decode breaks promise 4. Returns whether
/// there was none.
fn retire_store(w: &mut crate::world::World) -> bool {
    let old = w.disk.store.live.take();
    if old
        .as_ref()
        .is_some_and(|b| crate::check::decode(w, b).is_none())
    {
        w.fail("an unreadable store was overwritten".into());
    }
    let was_absent = old.is_none();
    if old.is_some() {
        w.disk.backup.live = old;
    }
    was_absent
}

/// The queue's contract: only a holder of the exclusive store lock takes or settles
/// entries; a poster collects its own under the store lock, shared or exclusive.
fn assert_holds_store_lock(st: &crate::sched::State, pid: Pid, what: &str, exclusive: bool) {
    let held = st.world.locks.get(&LockTarget::Store).is_some_and(|l| {
        l.holders
            .iter()
            .any(|&(p, ex, _)| p == pid && (ex || !exclusive))
    });
    assert!(held, "{what} without the store lock");
}

fn corrupt_store(w: &mut crate::world::World) {
    // A database checksums its own pages: no bit flips at rest (see the fault model).
    if w.database() {
        return;
    }
    if let Some(bytes) = &mut w.disk.store.live {
        let i = w.rng.below(bytes.len() as u64) as usize;
        bytes[i] ^= 1 << w.rng.below(8);
        let bytes = bytes.clone();
        w.disk.store.durable = Some(bytes.clone());
        w.disk.corrupted = true;
        w.history.unreadable.push(bytes);
    }
}

/// The slot kinds the simulated host can make. A slot's data is the id of the key it wraps.
pub const SIM_SLOT: &str = "sim";
pub const PASSPHRASE_SLOT: &str = "passphrase";
/// Volatile: its entries are lost at reboot (power loss).
pub const KERNEL_KEYRING_SLOT: &str = "kernel-keyring";

/// What the simulated keyring fault says; `record_error` accepts key errors carrying it.
pub const KEYRING_FAULT: &str = "simulated keyring unavailable";

fn known_kind(kind: &str) -> bool {
    matches!(kind, SIM_SLOT | PASSPHRASE_SLOT | KERNEL_KEYRING_SLOT)
}

/// The process a key belongs to, so that its own calls (`add-slot`) are scheduling points
/// and see the world. `None` for the fuzzers' single-process platform.
#[derive(Clone)]
pub struct KeyCtx {
    pub sim: Arc<Sim>,
    pub pid: Pid,
}

#[derive(Clone)]
pub struct SimKey {
    pub id: [u8; 16],
    pub key: [u8; 32],
    /// The slots that wrap this key: the header's when unlocked, new ones when minted.
    pub slots: Vec<KeySlot>,
    pub ctx: Option<KeyCtx>,
}

impl SimKey {
    /// A key outside any simulation (the fuzzers' platform), with one `sim` slot.
    pub fn plain(id: [u8; 16], key: [u8; 32]) -> SimKey {
        SimKey {
            id,
            key,
            slots: vec![slot(SIM_SLOT, &id)],
            ctx: None,
        }
    }
}

fn slot(kind: &str, id: &[u8; 16]) -> KeySlot {
    KeySlot {
        kind: kind.into(),
        data: id.to_vec(),
    }
}

impl SealingKey for SimKey {
    fn key_id(&self) -> Vec<u8> {
        self.id.to_vec()
    }
    fn slots(&self) -> Vec<KeySlot> {
        self.slots.clone()
    }
    fn seal(&self, nonce: &[u8], aad: &[u8], pt: &[u8]) -> Result<Vec<u8>, SealError> {
        seal(&self.key, nonce, aad, pt)
    }
    fn open(&self, nonce: &[u8], aad: &[u8], ct: &[u8]) -> Result<Vec<u8>, SealError> {
        open(&self.key, nonce, aad, ct)
    }
    fn add_slot(&self, kind: &str) -> Result<KeySlot, KeyError> {
        if let Some(ctx) = &self.ctx {
            ctx.sim.point(ctx.pid, &format!("add-slot {kind}"));
            let mut st = ctx.sim.lock();
            let fault = st.faults_on && {
                let r = st.world.faults.keyring_unavailable;
                st.world.rng.chance(r)
            };
            if kind == KERNEL_KEYRING_SLOT {
                if fault {
                    return Err(KeyError::Keyring(format!("keyutils: {KEYRING_FAULT}")));
                }
                st.world.kernel_keyring.insert(self.id);
            }
        }
        if !known_kind(kind) {
            return Err(KeyError::SlotUnavailable(format!(
                "{kind}: the simulated host has no such key source"
            )));
        }
        Ok(slot(kind, &self.id))
    }
}

pub fn seal(key: &[u8; 32], nonce: &[u8], aad: &[u8], pt: &[u8]) -> Result<Vec<u8>, SealError> {
    if nonce.len() != 12 {
        return Err(SealError::BadNonce);
    }
    Aes256Gcm::new(key.into())
        .encrypt(Nonce::from_slice(nonce), Payload { msg: pt, aad })
        .map_err(|_| SealError::AuthenticationFailed)
}

pub fn open(key: &[u8; 32], nonce: &[u8], aad: &[u8], ct: &[u8]) -> Result<Vec<u8>, SealError> {
    if nonce.len() != 12 {
        return Err(SealError::BadNonce);
    }
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| SealError::AuthenticationFailed)
}

fn form_value<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    body.split('&')
        .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}

impl SimPlatform {
    fn key_ctx(&self) -> KeyCtx {
        KeyCtx {
            sim: Arc::clone(&self.sim),
            pid: self.pid,
        }
    }

    /// A new random data key, registered so that every process can open it.
    fn mint(&self) -> ([u8; 16], [u8; 32]) {
        let mut st = self.sim.lock();
        let mut id = [0u8; 16];
        let mut key = [0u8; 32];
        st.world.rng.fill(&mut id);
        st.world.rng.fill(&mut key);
        st.world.keys.push((id, key));
        (id, key)
    }

    /// Take this process's locks that match `which` away, as a database ending its session
    /// does (the `session_loss` fault); true if one was taken. Waiters are woken.
    fn lose_locks(&self, which: impl Fn(&LockTarget) -> bool) -> bool {
        let mut st = self.sim.lock();
        let rate = st.world.faults.session_loss;
        if !(st.faults_on && rate > 0 && st.world.rng.chance(rate)) {
            return false;
        }
        let mut lost = false;
        for (target, l) in st.world.locks.iter_mut() {
            if which(target) {
                let before = l.holders.len();
                l.holders.retain(|h| h.0 != self.pid);
                lost |= l.holders.len() != before;
            }
        }
        if lost {
            *st.world
                .history
                .errors
                .entry("SessionLost".into())
                .or_default() += 1;
            Sim::wake_all(&mut st);
        }
        lost
    }

    /// The contract of a record read: the records as of the version of the store this
    /// process read (its header). The store lock guarantees that, unless this world took a
    /// lock from its holder and let the holder's write land anyway (`session_loss`, the
    /// branch where only the lock is lost): a reader holding the shared lock may then see a
    /// header of one version and records of the next (after a rekey, records that do not
    /// open with the header's key). So a record read is fenced like a write: refused if the
    /// store's version is no longer the one this process read.
    fn records_as_read(&self, w: &mut crate::world::World) -> Result<(), FileError> {
        assert!(w.database(), "a record read on a file store");
        if w.db_seen.get(&self.pid) == Some(&w.db_version) || w.naive_platform.unfenced_record_reads
        {
            return Ok(());
        }
        *w.history
            .errors
            .entry("RecordReadFenced".into())
            .or_default() += 1;
        Err(FileError::Io(IoError::Fenced(
            "simulated: the store changed since this process read its header".into(),
        )))
    }

    fn faulty(&self, rate: impl Fn(&crate::world::Faults) -> u32) -> bool {
        let mut st = self.sim.lock();
        let r = rate(&st.world.faults);
        st.faults_on && st.world.rng.chance(r)
    }
}

impl Platform for SimPlatform {
    type Guard = SimGuard;
    type Key = SimKey;

    fn acquire(
        &mut self,
        target: &LockTarget,
        mode: LockMode,
        timeout_ms: u32,
    ) -> Result<SimGuard, LockError> {
        // A refresh lock's session can end while its holder goes on to record its intent
        // (the store lock is the next thing it takes): the intent's compare-and-set must
        // then keep a second process from spending the same token.
        if *target == LockTarget::Store && mode == LockMode::Exclusive {
            self.lose_locks(|t| matches!(t, LockTarget::Refresh(_)));
        }
        self.sim
            .point(self.pid, &format!("acquire {target:?} {mode:?}"));
        let exclusive = mode == LockMode::Exclusive;
        let (start, deadline) = {
            let st = self.sim.lock();
            (st.world.now_ms, st.world.now_ms + u64::from(timeout_ms))
        };
        // The inode this process opened: a naive host may unlink it while we wait.
        let my_inode = {
            let mut st = self.sim.lock();
            let fresh = st.world.next_inode;
            let l = st.world.locks.entry(target.clone()).or_default();
            if l.inode == 0 {
                l.inode = fresh;
            }
            let ino = l.inode;
            if ino == fresh {
                st.world.next_inode += 1;
            }
            ino
        };
        loop {
            {
                let mut st = self.sim.lock();
                let now = st.world.now_ms;
                let l = st.world.locks.get_mut(target).expect("created above");
                let conflict = l
                    .holders
                    .iter()
                    .any(|&(p, ex, ino)| ino == my_inode && p != self.pid && (ex || exclusive));
                if !conflict {
                    l.holders.push((self.pid, exclusive, my_inode));
                    // An exclusive holder beside any other holder of the same lock name (on
                    // another inode): the lock protocol is broken.
                    let exclusive = l.holders.iter().any(|h| h.1);
                    if exclusive && l.holders.len() > 1 {
                        let n = l.holders.len();
                        st.world.fail(format!(
                            "{n} processes hold {target:?} at once, one exclusively"
                        ));
                    }
                    return Ok(SimGuard {
                        sim: Arc::clone(&self.sim),
                        pid: self.pid,
                        target: target.clone(),
                        inode: my_inode,
                        released: false,
                    });
                }
                if now >= deadline {
                    return Err(LockError::Timeout((now - start) as u32));
                }
            }
            self.sim
                .block(self.pid, deadline, &format!("wait {target:?}"));
        }
    }

    fn read(&mut self, file: StoreFile) -> Result<Option<Vec<u8>>, FileError> {
        self.sim.point(self.pid, &format!("read {file:?}"));
        let mut st = self.sim.lock();
        let version = st.world.db_version;
        st.world.db_seen.insert(self.pid, version);
        Ok(match file {
            StoreFile::Store => st.world.disk.store.live.clone(),
            StoreFile::Backup => st.world.disk.backup.live.clone(),
        })
    }

    fn replace(&mut self, file: StoreFile, contents: &[u8]) -> Result<(), FileError> {
        // A database store's write runs on the session holding the store lock. If the
        // database ends that session now, others may take the lock and write before this
        // write arrives: then either the session is gone (the write fails), or, with the
        // session still there and only the lock lost, the version fence refuses it.
        let lost = self.lose_locks(|t| *t == LockTarget::Store);
        self.sim.point(self.pid, "replace:write-temp");
        if lost && self.sim.lock().world.rng.chance(500_000) {
            return Err(FileError::Io(IoError::Unreachable(
                "simulated: the database session holding the store lock ended".into(),
            )));
        }
        if self.faulty(|f| f.write_error) {
            return Err(FileError::Io(IoError::NoSpace("simulated ENOSPC".into())));
        }
        let in_place = self.sim.lock().world.naive_platform.in_place_writes;
        if in_place && file == StoreFile::Store {
            // The naive host: truncate, then write(2) in chunks; a process that dies between
            // them leaves a torn file.
            const CHUNKS: usize = 4;
            for i in 0..CHUNKS {
                {
                    let mut st = self.sim.lock();
                    st.world.disk.store.live =
                        Some(contents[..contents.len() * i / CHUNKS].to_vec());
                }
                self.sim.point(self.pid, "replace:in-place-chunk");
            }
            let mut st = self.sim.lock();
            st.world.disk.store.live = Some(contents.to_vec());
            st.world.disk.store.durable = Some(contents.to_vec());
            crate::check::record_version(&mut st.world, contents, false);
            crate::check::mark_durable(&mut st.world);
            let id = st.world.next_write_id - 1;
            crate::check::ack_version(&mut st.world, id);
            st.world.disk.written_by = Some(self.pid);
            return Ok(());
        }
        self.sim.point(self.pid, "replace:fsync-temp");
        if self.faulty(|f| f.write_error) {
            return Err(FileError::Io(IoError::Other(
                "simulated EIO on fsync".into(),
            )));
        }
        let write_id;
        {
            let mut st = self.sim.lock();
            let w = &mut st.world;
            fence(w, self.pid)?;
            match file {
                StoreFile::Store => {
                    let was_absent = retire_store(w);
                    crate::check::record_version(w, contents, was_absent);
                    w.disk.store.live = Some(contents.to_vec());
                }
                StoreFile::Backup => w.disk.backup.live = Some(contents.to_vec()),
            }
            write_id = w.next_write_id.wrapping_sub(1);
        }
        self.sim.point(self.pid, "replace:fsync-dir");
        if self.faulty(|f| f.dir_fsync_error) {
            return Err(FileError::Io(IoError::Other(
                "simulated EIO on directory fsync".into(),
            )));
        }
        let mut st = self.sim.lock();
        let w = &mut st.world;
        w.disk.sync_dir();
        crate::check::mark_durable(w);
        if file == StoreFile::Store {
            crate::check::ack_version(w, write_id);
        }
        if file == StoreFile::Store {
            w.disk.written_by = Some(self.pid);
        }
        Ok(())
    }

    /// A database world keeps its store as a header and tenant records, as the PostgreSQL
    /// platform does; a file world as one sealed file. Fixed for a run, and no scheduling
    /// point (the component asks for it through its own import, and both builds must make
    /// the same calls that are points).
    fn layout(&mut self) -> Layout {
        if self.sim.lock().world.database() {
            Layout::Records
        } else {
            Layout::Blob
        }
    }

    fn read_record(&mut self, id: &str) -> Result<Option<Vec<u8>>, FileError> {
        self.sim.point(self.pid, &format!("read-record {id}"));
        let mut st = self.sim.lock();
        self.records_as_read(&mut st.world)?;
        Ok(st.world.disk.records.get(id).cloned())
    }

    fn read_records(&mut self) -> Result<Vec<(String, Vec<u8>)>, FileError> {
        self.sim.point(self.pid, "read-records");
        let mut st = self.sim.lock();
        self.records_as_read(&mut st.world)?;
        Ok(st
            .world
            .disk
            .records
            .iter()
            .map(|(id, b)| (id.clone(), b.clone()))
            .collect())
    }

    /// One statement on the session holding the store lock: the header and the records, fenced
    /// by the version this process read under its lock, committed at one instant (visible and
    /// durable together, the old header kept as the backup). The session can end first
    /// (`Unreachable`, or, with only the lock lost, the fence refuses), the database can fail
    /// the write, and the commit's reply can be lost (committed, not acknowledged).
    fn write_records(&mut self, store: &[u8], records: &[RecordWrite]) -> Result<(), FileError> {
        let lost = self.lose_locks(|t| *t == LockTarget::Store);
        self.sim.point(self.pid, "write-records:send");
        if lost && self.sim.lock().world.rng.chance(500_000) {
            return Err(FileError::Io(IoError::Unreachable(
                "simulated: the database session holding the store lock ended".into(),
            )));
        }
        if self.faulty(|f| f.write_error) {
            return Err(FileError::Io(IoError::NoSpace(
                "simulated: the database could not extend its files".into(),
            )));
        }
        self.sim.point(self.pid, "write-records:commit");
        let write_id;
        {
            let mut st = self.sim.lock();
            let w = &mut st.world;
            assert!(w.database(), "a record write on a file store");
            fence(w, self.pid)?;
            let was_absent = retire_store(w);
            for r in records {
                match &r.sealed {
                    Some(sealed) => w.disk.records.insert(r.id.clone(), sealed.clone()),
                    None => w.disk.records.remove(&r.id),
                };
            }
            w.disk.store.live = Some(store.to_vec());
            // The checker decodes the header with the records just written: the logical
            // store as of this version.
            crate::check::record_version(w, store, was_absent);
            // A commit is durable when it is visible: everything before it too.
            w.disk.sync_dir();
            crate::check::mark_durable(w);
            write_id = w.next_write_id.wrapping_sub(1);
            w.disk.written_by = Some(self.pid);
        }
        self.sim.point(self.pid, "write-records:reply");
        if self.faulty(|f| f.dir_fsync_error) {
            return Err(FileError::Io(IoError::Unreachable(
                "simulated: the reply to the commit was lost".into(),
            )));
        }
        crate::check::ack_version(&mut self.sim.lock().world, write_id);
        Ok(())
    }

    fn remove(&mut self, file: StoreFile) -> Result<(), FileError> {
        self.sim.point(self.pid, &format!("remove {file:?}"));
        let mut st = self.sim.lock();
        new_version(&mut st.world, self.pid);
        let f = match file {
            StoreFile::Store => &mut st.world.disk.store,
            StoreFile::Backup => &mut st.world.disk.backup,
        };
        f.live = None;
        f.durable = None;
        Ok(())
    }

    fn quarantine(&mut self, file: StoreFile) -> Result<String, FileError> {
        self.sim
            .point(self.pid, &format!("quarantine:rename {file:?}"));
        {
            let mut st = self.sim.lock();
            let wall = (st.world.now_ms as i64 + st.procs[self.pid].skew_ms) as u64;
            let doing = st.procs[self.pid].doing;
            new_version(&mut st.world, self.pid);
            let w = &mut st.world;
            let (base, f) = match file {
                StoreFile::Store => ("credentials.sealed", &mut w.disk.store),
                StoreFile::Backup => ("credentials.sealed.bak", &mut w.disk.backup),
            };
            let Some(bytes) = f.live.take() else {
                return Err(FileError::Io(IoError::Other(format!(
                    "{base}: no such file to quarantine"
                ))));
            };
            // `<name>.corrupt-<unix ms>`, then `-1`, `-2`, ...: never replace anything.
            let stem = format!("{base}.corrupt-{wall}");
            let mut name = stem.clone();
            let mut n = 0;
            while w.disk.aside.iter().any(|a| a.name == name) {
                n += 1;
                name = format!("{stem}-{n}");
            }
            let readable = crate::check::decode(w, &bytes).is_some();
            w.disk.aside.push(crate::world::Aside {
                name: name.clone(),
                file: crate::world::File {
                    live: Some(bytes),
                    durable: None,
                },
            });
            w.history.quarantines.push(crate::world::Quarantine {
                name,
                pid: self.pid,
                doing,
                readable,
            });
            crate::check::check_quarantine(w);
        }
        self.sim.point(self.pid, "quarantine:fsync-dir");
        if self.faulty(|f| f.dir_fsync_error) {
            return Err(FileError::Io(IoError::Other(
                "simulated EIO on directory fsync".into(),
            )));
        }
        let mut st = self.sim.lock();
        st.world.disk.sync_dir();
        crate::check::mark_durable(&mut st.world);
        let name = st
            .world
            .history
            .quarantines
            .last()
            .map(|q| q.name.clone())
            .expect("recorded above");
        Ok(name)
    }

    /// A file world keeps a queue of writes (unless `--no-group-commit`); a database world
    /// does not. No scheduling point, as for `layout`.
    fn queue_enabled(&mut self) -> bool {
        let st = self.sim.lock();
        !st.world.database()
            && crate::world::GROUP_COMMIT.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A temp file renamed into place: the entry appears whole or not at all. Not durable
    /// until some write's directory fsync.
    fn queue_post(&mut self, id: &str, sealed: &[u8]) -> Result<(), FileError> {
        self.sim.point(self.pid, "queue-post");
        if self.faulty(|f| f.write_error) {
            return Err(FileError::Io(IoError::NoSpace("simulated ENOSPC".into())));
        }
        let mut st = self.sim.lock();
        let entry = QEntry {
            pid: self.pid,
            state: QState::Posted,
            bytes: sealed.to_vec(),
        };
        let old = st.world.disk.queue.insert(id.to_owned(), entry);
        assert!(old.is_none(), "queue entry id {id} posted twice");
        *st.world.history.queue.entry("posted").or_default() += 1;
        Ok(())
    }

    fn queue_take(&mut self) -> Result<Vec<(String, Vec<u8>)>, FileError> {
        self.sim.point(self.pid, "queue-take");
        let mut st = self.sim.lock();
        assert_holds_store_lock(&st, self.pid, "queue-take", true);
        let st = &mut *st;
        let alive: Vec<bool> = st
            .procs
            .iter()
            .map(|p| !p.crashing && p.status != crate::sched::Status::Done)
            .collect();
        let mut taken = Vec::new();
        let mut dropped = 0;
        st.world.disk.queue.retain(|id, e| {
            // A gone poster's entries: removed, and never written.
            if !alive.get(e.pid).copied().unwrap_or(false) {
                dropped += u64::from(e.state == QState::Posted);
                return false;
            }
            if e.state == QState::Posted {
                e.state = QState::Claimed;
                taken.push((id.clone(), e.bytes.clone()));
            }
            true
        });
        if dropped > 0 {
            *st.world
                .history
                .queue
                .entry("dropped (poster gone)")
                .or_default() += dropped;
        }
        Ok(taken)
    }

    fn queue_settle(&mut self, id: &str, receipt: Option<&[u8]>) -> Result<(), FileError> {
        self.sim.point(self.pid, "queue-settle");
        let mut st = self.sim.lock();
        assert_holds_store_lock(&st, self.pid, "queue-settle", true);
        let st = &mut *st;
        let Some(e) = st.world.disk.queue.get_mut(id) else {
            return Ok(());
        };
        if e.state != QState::Claimed {
            let why = format!("queue entry {id} settled while {:?}", e.state);
            st.world.fail(why);
            return Ok(());
        }
        match receipt {
            Some(r) => {
                e.state = QState::Done;
                e.bytes = r.to_vec();
                *st.world
                    .history
                    .queue
                    .entry("written by a holder")
                    .or_default() += 1;
            }
            None => {
                *st.world
                    .history
                    .queue
                    .entry("removed unwritten")
                    .or_default() += 1;
                st.world.disk.queue.remove(id);
            }
        }
        Ok(())
    }

    fn queue_collect(&mut self, id: &str, acknowledged_only: bool) -> Result<Queued, FileError> {
        self.sim.point(self.pid, "queue-collect");
        let mut st = self.sim.lock();
        assert_holds_store_lock(&st, self.pid, "queue-collect", false);
        let q = &mut st.world.disk.queue;
        let remove = !acknowledged_only || q.get(id).is_some_and(|e| e.state == QState::Done);
        let entry = if remove {
            q.remove(id)
        } else {
            q.get(id).cloned()
        };
        let found = match entry {
            None => Queued::Absent,
            Some(e) => {
                assert_eq!(e.pid, self.pid, "a process collected another's queue entry");
                match e.state {
                    QState::Posted => Queued::Posted,
                    QState::Claimed => Queued::Claimed,
                    QState::Done => Queued::Acknowledged(e.bytes),
                }
            }
        };
        let event = match (&found, acknowledged_only) {
            (Queued::Acknowledged(_), _) => "collected acknowledged",
            (_, true) => "looked, not yet written",
            (Queued::Absent, false) => "collected absent",
            (Queued::Posted, false) => "collected still posted",
            (Queued::Claimed, false) => "collected claimed (holder died)",
        };
        *st.world.history.queue.entry(event).or_default() += 1;
        Ok(found)
    }

    fn queue_withdraw(&mut self, id: &str) -> Result<bool, FileError> {
        self.sim.point(self.pid, "queue-withdraw");
        let mut st = self.sim.lock();
        let q = &mut st.world.disk.queue;
        if q.get(id).is_some_and(|e| e.state == QState::Posted) {
            q.remove(id);
            *st.world.history.queue.entry("withdrawn").or_default() += 1;
            return Ok(true);
        }
        Ok(false)
    }

    fn unlock(&mut self, key_id: &[u8], slots: &[KeySlot]) -> Result<SimKey, KeyError> {
        self.sim.point(self.pid, "unlock");
        if self.faulty(|f| f.keyring_unavailable) {
            return Err(KeyError::Io(IoError::Other(KEYRING_FAULT.into())));
        }
        let st = self.sim.lock();
        let kinds = || slots.iter().map(|s| s.kind.clone()).collect::<Vec<_>>();
        let Some(&(id, key)) = st.world.keys.iter().find(|(id, _)| id.as_slice() == key_id) else {
            return Err(KeyError::NoMatchingSlot(kinds()));
        };
        // A slot opens the key if it names it and its source is there: the kernel keyring's
        // entries are gone after a reboot.
        let opens = |s: &KeySlot| {
            s.data == key_id
                && match s.kind.as_str() {
                    SIM_SLOT | PASSPHRASE_SLOT => true,
                    KERNEL_KEYRING_SLOT => st.world.kernel_keyring.contains(&id),
                    _ => false,
                }
        };
        if !slots.iter().any(opens) {
            if slots.iter().any(|s| s.kind == KERNEL_KEYRING_SLOT) {
                return Err(KeyError::KeyringEntryMissing {
                    backend: "keyutils".into(),
                    other_slots: slots
                        .iter()
                        .filter(|s| s.kind != KERNEL_KEYRING_SLOT)
                        .map(|s| s.kind.clone())
                        .collect(),
                });
            }
            return Err(KeyError::NoMatchingSlot(kinds()));
        }
        Ok(SimKey {
            id,
            key,
            slots: slots.to_vec(),
            ctx: Some(self.key_ctx()),
        })
    }

    fn create_key(&mut self) -> Result<SimKey, KeyError> {
        self.sim.point(self.pid, "create-key");
        let (id, key) = self.mint();
        Ok(SimKey {
            id,
            key,
            slots: vec![slot(SIM_SLOT, &id)],
            ctx: Some(self.key_ctx()),
        })
    }

    fn rekey(&mut self, slots: &[KeySlot]) -> Result<SimKey, KeyError> {
        self.sim.point(self.pid, "rekey");
        if self.faulty(|f| f.keyring_unavailable) {
            return Err(KeyError::Keyring(format!("keyutils: {KEYRING_FAULT}")));
        }
        // Every source must be re-made, or the rekey fails: never drop a way in.
        if let Some(s) = slots.iter().find(|s| !known_kind(&s.kind)) {
            return Err(KeyError::SlotUnavailable(format!(
                "{}: the simulated host has no such key source",
                s.kind
            )));
        }
        let (id, key) = self.mint();
        let mut st = self.sim.lock();
        if slots.iter().any(|s| s.kind == KERNEL_KEYRING_SLOT) {
            st.world.kernel_keyring.insert(id);
        }
        drop(st);
        Ok(SimKey {
            id,
            key,
            slots: slots.iter().map(|s| slot(&s.kind, &id)).collect(),
            ctx: Some(self.key_ctx()),
        })
    }

    fn post(&mut self, request: &TokenRequest) -> Result<HttpReply, TransportError> {
        self.sim.point(self.pid, "post:send");
        let pid = self.pid;
        // Every presentation is recorded, with what became of it, for the checkers.
        let present =
            |w: &mut crate::world::World, refresh_token: String, outcome: &'static str| {
                let at_ms = w.now_ms;
                w.server.presentations.push(crate::world::Presentation {
                    refresh_token,
                    pid,
                    at_ms,
                    outcome,
                });
            };
        let rt = form_value(&request.body, "refresh_token")
            .unwrap_or("")
            .to_owned();
        let mut st = self.sim.lock();
        let faults = st.faults_on;
        let f = st.world.faults;
        if faults && st.world.rng.chance(f.connect_error) {
            present(&mut st.world, rt, "not-arrived");
            return Err(TransportError::Connect(
                "simulated connection refused".into(),
            ));
        }
        if faults && st.world.rng.chance(f.server_unavailable) {
            present(&mut st.world, rt, "unavailable");
            return Ok(HttpReply {
                status: 503,
                content_type: None,
                body: b"unavailable".to_vec(),
            });
        }
        let result = st.world.server.refresh(&rt);
        let outcome = if result.is_ok() {
            "ok"
        } else {
            "invalid_grant"
        };
        if result.is_err() {
            st.world.server.invalid_granted.insert(rt.clone());
        }
        present(&mut st.world, rt, outcome);
        let lifetime_s = st.world.server.lifetime_ms / 1000;
        let latency = st.world.rng.range(5, 40);
        st.world.now_ms += latency;
        let lost = faults && st.world.rng.chance(f.reply_lost);
        let malformed = faults && st.world.rng.chance(f.malformed_reply);
        drop(st);
        self.sim.point(self.pid, "post:reply");
        if lost {
            return Err(TransportError::Timeout);
        }
        match result {
            Ok((at, new_rt)) => {
                let body = if malformed {
                    br#"{"access_token": "#.to_vec()
                } else {
                    format!(r#"{{"access_token":"{at}","token_type":"Bearer","expires_in":{lifetime_s},"refresh_token":"{new_rt}"}}"#).into_bytes()
                };
                Ok(HttpReply {
                    status: 200,
                    content_type: Some("application/json".into()),
                    body,
                })
            }
            Err(code) => Ok(HttpReply {
                status: 400,
                content_type: None,
                body: format!(r#"{{"error":"{code}"}}"#).into_bytes(),
            }),
        }
    }

    fn wall_ms(&mut self) -> u64 {
        self.sim.point(self.pid, "clock");
        let st = self.sim.lock();
        (st.world.now_ms as i64 + st.procs[self.pid].skew_ms) as u64
    }

    fn monotonic_ms(&mut self) -> u64 {
        self.sim.point(self.pid, "monotonic");
        self.sim.lock().world.now_ms
    }

    fn fill_random(&mut self, buf: &mut [u8]) {
        self.sim.point(self.pid, "random");
        self.sim.lock().world.rng.fill(buf);
    }
}
