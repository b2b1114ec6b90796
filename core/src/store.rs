//! Store operations: every read under the shared store lock, every write a merge under the
//! exclusive one. See [`crate::manual::locking`] for the protocol.

use crate::error::StoreError;
use crate::format::{Header, KEY_ID_LEN, NONCE_LEN};
use crate::model::{Body, Entry, TenantRecord};
use crate::platform::{
    KeySlot, Layout, LockError, LockMode, LockTarget, Platform, RecordWrite, SealError, SealingKey,
    StoreFile,
};
use crate::queue::PutChange;
use crate::tenant::TenantName;
use crate::unread::Unread;
use serde::Serialize;
use std::collections::BTreeMap;
use std::marker::PhantomData;

/// Settings chosen by the embedding host for one call. Mirrors `options` in the WIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub lock_timeout_ms: u32,
    pub http_timeout_ms: u32,
    /// Accept plain-http endpoints to hosts other than loopback in `put` and `import` (see
    /// [`check_refresh_endpoints`]); the host's HTTP client must allow them as well.
    pub allow_insecure_http: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lock_timeout_ms: 10_000,
            http_timeout_ms: 30_000,
            allow_insecure_http: false,
        }
    }
}

impl Options {
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.http_timeout_ms == 0 {
            return Err(StoreError::InvalidOptions(
                "the HTTP timeout must be positive".into(),
            ));
        }
        if self.refresh_lock_timeout_ms().is_none() {
            return Err(StoreError::InvalidOptions(
                "the lock and HTTP timeouts add up to more than 49 days".into(),
            ));
        }
        Ok(())
    }

    /// The refresh lock's holder may be inside a token-endpoint call and then commit under
    /// the store lock, so a waiter must outlast both, or it would time out behind a healthy
    /// refresh.
    pub fn refresh_lock_timeout_ms(&self) -> Option<u32> {
        self.http_timeout_ms
            .checked_add(self.lock_timeout_ms.checked_mul(2)?)
    }
}

/// What `list` shows of a tenant: never a secret.
///
/// The result types below derive `Serialize` once, with the WIT's field names (snake case):
/// the C ABI's result JSON and the Python binding's dicts are made from them, so a field is
/// declared here and nowhere else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantSummary {
    pub tenant: String,
    pub token_type: String,
    pub expires_at_ms: Option<u64>,
    pub has_refresh_token: bool,
    pub scope: Option<String>,
    pub token_endpoint: Option<String>,
    pub client_id: Option<String>,
    pub revision: u64,
    pub needs_reauth: bool,
    /// A refresh intent is recorded (in flight, or interrupted with its outcome unknown).
    pub refresh_intent: bool,
}

/// `Serialize` writes the access token itself: handing it to the caller is what `token`,
/// `refresh` and `login` are for. `Debug` (what a log would show) still redacts it, and the
/// front ends zeroize what they serialized it into.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct AccessToken {
    pub token: String,
    pub token_type: String,
    pub expires_at_ms: Option<u64>,
    pub revision: u64,
    pub refreshed: bool,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .field("revision", &self.revision)
            .field("refreshed", &self.refreshed)
            .finish()
    }
}

impl AccessToken {
    pub(crate) fn from_entry(e: &Entry, refreshed: bool) -> Self {
        AccessToken {
            token: e.access_token.clone(),
            token_type: e.token_type.clone(),
            expires_at_ms: e.expires_at_ms,
            revision: e.revision,
            refreshed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WriteReceipt {
    pub revision: u64,
    pub generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreInfo {
    pub exists: bool,
    pub generation: u64,
    pub format_version: u16,
    pub key_id: String,
    pub slot_kinds: Vec<String>,
    pub tenants: u32,
}

/// Proof that this process holds the exclusive store lock. Only [`Store::lock_exclusive`]
/// makes one; the guard inside releases the lock when the proof is dropped.
pub(crate) struct ExclusiveStoreLock<G> {
    _guard: G,
}

/// The store as read while holding the exclusive lock `'l`. [`Store::commit`] consumes it, so a
/// write can only be derived from a read made under the same lock (never from a stale one).
pub(crate) struct ReadUnderLock<'l, K> {
    _lock: PhantomData<&'l ()>,
    pub(crate) loaded: Loaded<K>,
}

/// A decrypted store, or its absence.
// One per call, moved, never kept in a collection: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Loaded<K> {
    Absent,
    Present {
        header: Header,
        key: K,
        body: Body,
        view: View,
    },
}

/// Which tenants a read needs. A `blob` platform reads them all (they are one file) but
/// decodes only these (`unread.rs`); a `records` platform reads only these. Either way a call
/// about one tenant costs little more whatever the number of tenants.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// The header only: key slots, generation, logins in progress.
    Header,
    Tenant(&'a TenantName),
    All,
}

/// Which tenants a loaded body holds, so that a write changes exactly what changed.
#[derive(Debug, Clone)]
pub(crate) enum View {
    /// One blob, written back whole: the tenants in the body, and beside them the ones the
    /// read left undecoded, as they were read.
    Blob(Unread),
    /// Tenant records (a `records` platform): `read` holds each tenant read, as read (`None`:
    /// it had no record); `all` if every record was read; `key_id` is the key they were
    /// sealed under. A write seals the tenants that differ from what was read and removes
    /// the ones the body no longer holds; a body may hold no tenant it did not read.
    Records {
        read: BTreeMap<String, Option<Entry>>,
        all: bool,
        key_id: Vec<u8>,
    },
}

impl<K> ReadUnderLock<'_, K> {
    /// The body as read, for a change to work on: moved out rather than copied (every
    /// tenant, on a file store). Of the read, `commit` needs only the generation, which is
    /// left in place. An absent store gives an empty body.
    pub(crate) fn take_body(&mut self) -> Body {
        match &mut self.loaded {
            Loaded::Present { body, .. } => {
                let generation = body.generation;
                std::mem::replace(
                    body,
                    Body {
                        generation,
                        ..Body::default()
                    },
                )
            }
            Loaded::Absent => Body::default(),
        }
    }
}

impl<K> Loaded<K> {
    pub(crate) fn body(&self) -> Option<&Body> {
        match self {
            Loaded::Absent => None,
            Loaded::Present { body, .. } => Some(body),
        }
    }
}

/// Deliberately broken behaviours, each one a bug seen in the field. Only the simulator's
/// bug zoo turns them on, to show that its checkers catch each bug; with the `naive` feature
/// off (every shipped build) they do not exist.
#[cfg(feature = "naive")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Naive {
    /// Present the refresh token read before taking the refresh lock.
    pub stale_refresh_token: bool,
    /// Do not re-read under the refresh lock: refresh even if another process just did.
    pub no_reread_under_lock: bool,
    /// On `invalid_grant`, mark re-login even if the stored tokens changed meanwhile.
    pub invalid_grant_wipes: bool,
    /// Treat an unreadable store (corrupt, unknown version) as empty, and write.
    pub overwrite_unreadable: bool,
    /// On a key error, mint a new key and start an empty store.
    pub mint_key_on_key_error: bool,
    /// Ignore refresh intents: retry a refresh whose outcome is unknown.
    pub ignore_intent: bool,
    /// Group commit: acknowledge the changes a holder took before its write is durable.
    pub ack_before_write: bool,
}

/// The credential store, driven through a [`Platform`].
pub struct Store<'p, P: Platform> {
    pub(crate) p: &'p mut P,
    pub(crate) opts: Options,
    #[cfg(feature = "naive")]
    pub naive: Naive,
}

impl<'p, P: Platform> Store<'p, P> {
    pub fn new(platform: &'p mut P, opts: Options) -> Result<Self, StoreError> {
        opts.validate()?;
        Ok(Store {
            p: platform,
            opts,
            #[cfg(feature = "naive")]
            naive: Naive::default(),
        })
    }

    // ----- locks -----

    pub(crate) fn lock_exclusive(&mut self) -> Result<ExclusiveStoreLock<P::Guard>, StoreError> {
        let guard = self.acquire(
            &LockTarget::Store,
            LockMode::Exclusive,
            self.opts.lock_timeout_ms,
            "store",
        )?;
        Ok(ExclusiveStoreLock { _guard: guard })
    }

    /// The exclusive lock if no one holds the store lock now; `None` if someone does.
    pub(crate) fn try_lock_exclusive(
        &mut self,
    ) -> Result<Option<ExclusiveStoreLock<P::Guard>>, StoreError> {
        match self.p.acquire(&LockTarget::Store, LockMode::Exclusive, 0) {
            Ok(guard) => Ok(Some(ExclusiveStoreLock { _guard: guard })),
            Err(LockError::Timeout(_)) => Ok(None),
            Err(LockError::Io(io)) => Err(StoreError::Io(crate::platform::FileError::Io(io))),
        }
    }

    pub(crate) fn acquire(
        &mut self,
        target: &LockTarget,
        mode: LockMode,
        timeout_ms: u32,
        what: &str,
    ) -> Result<P::Guard, StoreError> {
        self.p
            .acquire(target, mode, timeout_ms)
            .map_err(|e| match e {
                LockError::Timeout(waited_ms) => StoreError::LockTimeout {
                    lock: what.to_owned(),
                    waited_ms,
                },
                LockError::Io(io) => StoreError::Io(crate::platform::FileError::Io(io)),
            })
    }

    // ----- reading -----

    /// Read and decrypt the store file. Any failure is returned as is: the caller must not
    /// write after a failed read (an unreadable store is never overwritten).
    ///
    /// No store beside a backup reads as damage, never as "no store yet": that is what an
    /// interrupted `recover` (or a store file moved away) leaves, and starting a new store
    /// there would make the next write's backup replace the good one (promise 4).
    pub(crate) fn load(&mut self, scope: Scope<'_>) -> Result<Loaded<P::Key>, StoreError> {
        use crate::platform::KeyError;
        match self.load_scoped(StoreFile::Store, scope) {
            Ok(Loaded::Absent) if self.p.read(StoreFile::Backup)?.is_some() => {
                Err(StoreError::Corrupt(MISSING_BESIDE_BACKUP.into()))
            }
            // A flipped bit in the key id or a slot reads as "this key does not open it".
            // When the backup opens with the same keys and names the same key (or one a bit
            // away), the header is what changed: say so, and point at `recover`, instead of
            // sending the user to check a key that is fine. (Error path only: the backup is
            // read once, with keys already cached.)
            Err(
                e @ StoreError::Key(
                    KeyError::WrongKeyFile
                    | KeyError::WrongPassphrase
                    | KeyError::NoMatchingSlot(_),
                ),
            ) => {
                let backup = self.load_file(StoreFile::Backup);
                if self.damaged(&e, &backup)? {
                    Err(StoreError::Corrupt(format!(
                        "the header was altered: its key id or a key slot no longer matches the backup, which opens with the same keys ({e})"
                    )))
                } else {
                    Err(e)
                }
            }
            loaded => loaded,
        }
    }

    /// Read and decrypt `file` (the store, or its backup for `recover`), every tenant.
    pub(crate) fn load_file(&mut self, file: StoreFile) -> Result<Loaded<P::Key>, StoreError> {
        self.load_scoped(file, Scope::All)
    }

    /// Read and decrypt `file` and, on a `records` platform, the records `scope` asks for.
    /// A backup is only ever a header there: records have no backup.
    pub(crate) fn load_scoped(
        &mut self,
        file: StoreFile,
        scope: Scope<'_>,
    ) -> Result<Loaded<P::Key>, StoreError> {
        let Some(bytes) = self.p.read(file)? else {
            return Ok(Loaded::Absent);
        };
        let scope = if file == StoreFile::Backup {
            Scope::Header
        } else {
            scope
        };
        // A records platform's body holds no tenants to leave undecoded (a blob migrated in
        // reads whole, as every record read).
        let decode = match (self.p.layout(), file, scope) {
            (Layout::Blob, StoreFile::Store, scope) => scope,
            _ => Scope::All,
        };
        let (header, key, mut body, unread) = self.open_sealed(&bytes, decode)?;
        let mut view = self.load_records(&key, &mut body, scope)?;
        match &mut view {
            View::Blob(left) => *left = unread,
            View::Records { .. } => assert!(unread.is_empty(), "records read whole"),
        }
        Ok(Loaded::Present {
            header,
            key,
            body,
            view,
        })
    }

    /// Decode, unlock and open a sealed store (a header and its body), decoding the tenants
    /// `scope` names and leaving the others [`Unread`].
    pub(crate) fn open_sealed(
        &mut self,
        bytes: &[u8],
        scope: Scope<'_>,
    ) -> Result<(Header, P::Key, Body, Unread), StoreError> {
        let (header, header_len) = Header::decode(bytes)?;
        let key = self.p.unlock(&header.key_id, &header.slots)?;
        // A host that hands back another key than asked for would make us seal the store
        // under a key its header does not name.
        assert_eq!(
            key.key_id(),
            header.key_id,
            "platform unlock returned a different key"
        );
        let plaintext = key
            .open(&header.nonce, &bytes[..header_len], &bytes[header_len..])
            .map_err(|e| match e {
                SealError::AuthenticationFailed => StoreError::Corrupt(
                    "the body fails authentication (the file was altered or truncated)".into(),
                ),
                SealError::BadNonce => StoreError::Corrupt("bad nonce".into()),
            })?;
        let (body, unread) = crate::unread::parse(&plaintext, |name| match scope {
            Scope::All => true,
            Scope::Tenant(t) => name == t.as_str(),
            Scope::Header => false,
        })
        .map_err(|e| {
            StoreError::Corrupt(format!(
                "the body authenticates but is not a valid store ({})",
                crate::oauth::json_error(&e)
            ))
        })?;
        check_body(&body)?;
        unread.names().try_for_each(check_name)?;
        Ok((header, key, body, unread))
    }

    /// On a `records` platform, read the records `scope` asks for into `body`. A store whose
    /// tenants are still in its body there (one migrated in as a blob) reads as every record
    /// read: its first write splits it into records.
    fn load_records(
        &mut self,
        key: &P::Key,
        body: &mut Body,
        scope: Scope<'_>,
    ) -> Result<View, StoreError> {
        if !body.tenant_records {
            return Ok(self.new_view(key));
        }
        if self.p.layout() == Layout::Blob {
            return Err(StoreError::Corrupt(RECORDS_HEADER_AS_FILE.into()));
        }
        if !body.tenants.is_empty() {
            return Err(StoreError::Corrupt(
                "the store's header holds tenants although its tenants are kept as records".into(),
            ));
        }
        let mut read = BTreeMap::new();
        match scope {
            Scope::Header => {}
            Scope::Tenant(tenant) => {
                let id = tenant.id();
                let entry = match self.p.read_record(&id)? {
                    Some(sealed) => Some(open_record(key, &id, &sealed)?.1),
                    None => None,
                };
                if let Some(e) = &entry {
                    body.tenants.insert(tenant.as_str().to_owned(), e.clone());
                }
                read.insert(tenant.as_str().to_owned(), entry);
            }
            Scope::All => {
                for (id, sealed) in self.p.read_records()? {
                    let (name, entry) = open_record(key, &id, &sealed)?;
                    body.tenants.insert(name.clone(), entry.clone());
                    read.insert(name, Some(entry));
                }
            }
        }
        Ok(View::Records {
            read,
            all: matches!(scope, Scope::All),
            key_id: key.key_id(),
        })
    }

    /// Read under the shared lock: a consistent snapshot for readers.
    pub(crate) fn read_shared(&mut self, scope: Scope<'_>) -> Result<Loaded<P::Key>, StoreError> {
        let _guard = self.lock_shared()?;
        self.load(scope)
    }

    pub(crate) fn lock_shared(&mut self) -> Result<P::Guard, StoreError> {
        self.acquire(
            &LockTarget::Store,
            LockMode::Shared,
            self.opts.lock_timeout_ms,
            "store",
        )
    }

    pub(crate) fn read_under<'l>(
        &mut self,
        _lock: &'l ExclusiveStoreLock<P::Guard>,
        scope: Scope<'_>,
    ) -> Result<ReadUnderLock<'l, P::Key>, StoreError> {
        let loaded = self.load(scope);
        #[cfg(feature = "naive")]
        let loaded = match loaded {
            Err(
                StoreError::Corrupt(_)
                | StoreError::NotAStore(_)
                | StoreError::UnsupportedVersion(_),
            ) if self.naive.overwrite_unreadable => Ok(Loaded::Absent),
            Err(StoreError::Key(_)) if self.naive.mint_key_on_key_error => Ok(Loaded::Absent),
            other => other,
        };
        Ok(ReadUnderLock {
            _lock: PhantomData,
            loaded: loaded?,
        })
    }

    // ----- writing -----

    /// Seal `body` and replace the store with it. The store must have been read under the
    /// same exclusive lock (`read`), and the body must derive from that read.
    pub(crate) fn commit(
        &mut self,
        lock: &ExclusiveStoreLock<P::Guard>,
        read: ReadUnderLock<'_, P::Key>,
        body: Body,
    ) -> Result<u64, StoreError> {
        let (key, slots, old_generation, view) = match read.loaded {
            Loaded::Absent => {
                // Key creation only under the exclusive lock and only with no store: two first
                // writers can never mint two keys, and an existing ciphertext never gets a new one.
                let key = self.p.create_key()?;
                let slots = key.slots();
                let view = self.new_view(&key);
                (key, slots, 0, view)
            }
            // Keep the header's slots verbatim, including kinds this host does not know.
            Loaded::Present {
                header,
                key,
                body: old,
                view,
            } => (key, header.slots, old.generation, view),
        };
        self.seal_and_replace(lock, &key, slots, old_generation, body, &view)
    }

    /// The view of a store whose tenants are all in its body (a new one, or a whole store
    /// adopted or moved in), on this platform: on a records platform, every tenant is to be
    /// written as a record.
    pub(crate) fn new_view(&mut self, key: &P::Key) -> View {
        match self.p.layout() {
            Layout::Blob => View::Blob(Unread::default()),
            Layout::Records => View::Records {
                read: BTreeMap::new(),
                all: true,
                key_id: key.key_id(),
            },
        }
    }

    /// Seal `body` under `key` with a header of `slots` and replace the store with it, at
    /// generation `old_generation + 1`. Only [`Store::commit`] and the maintenance
    /// operations (a new header or key, derived from a read under the same lock) call this.
    pub(crate) fn seal_and_replace(
        &mut self,
        lock: &ExclusiveStoreLock<P::Guard>,
        key: &P::Key,
        slots: Vec<KeySlot>,
        old_generation: u64,
        body: Body,
        view: &View,
    ) -> Result<u64, StoreError> {
        match view {
            View::Blob(unread) => self.seal_into(
                lock,
                StoreFile::Store,
                key,
                slots,
                old_generation,
                body,
                unread,
            ),
            View::Records { .. } => self.seal_records(key, slots, old_generation, body, view),
        }
    }

    /// [`Store::seal_and_replace`] into `file`: `recover` writes the restored store as the
    /// backup first.
    // The lock (as proof), where, under what key and header, and the body with the tenants
    // it left undecoded: each is needed, and grouping them would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn seal_into(
        &mut self,
        _lock: &ExclusiveStoreLock<P::Guard>,
        file: StoreFile,
        key: &P::Key,
        slots: Vec<KeySlot>,
        old_generation: u64,
        mut body: Body,
        unread: &Unread,
    ) -> Result<u64, StoreError> {
        assert_eq!(
            self.p.layout(),
            Layout::Blob,
            "a records platform's store is written with its records"
        );
        self.prepare(&mut body, old_generation)?;
        let out = self.seal_header(key, slots, &body, unread);
        self.p.replace(file, &out)?;
        Ok(body.generation)
    }

    /// What every write does to a body: collect abandoned logins (maintenance writes too:
    /// rekey, slot changes, recover, import; FORMAT.md, "Pending logins"), raise the
    /// generation, check the invariants.
    fn prepare(&mut self, body: &mut Body, old_generation: u64) -> Result<(), StoreError> {
        let now = self.p.wall_ms();
        crate::model::collect_expired_logins(body, now);
        body.generation = old_generation.checked_add(1).expect("generation overflow");
        check_body(body)
    }

    /// `body` (with `unread` among its tenants) sealed under `key` behind a header of
    /// `slots`: the store file's bytes.
    pub(crate) fn seal_header(
        &mut self,
        key: &P::Key,
        slots: Vec<KeySlot>,
        body: &Body,
        unread: &Unread,
    ) -> Vec<u8> {
        assert!(!slots.is_empty(), "a store header without key slots");
        // Platform contract (wit/sealing.wit): a key id is 16 bytes, and sealing with the
        // 12-byte nonce we draw cannot fail. A host that breaks it is a bug, a trap in the
        // component, never a "corrupt store" whose advice would be `credlock recover`.
        let key_id: [u8; KEY_ID_LEN] = key
            .key_id()
            .try_into()
            .expect("platform contract: a key id is 16 bytes");
        let mut nonce = [0u8; NONCE_LEN];
        self.p.fill_random(&mut nonce);
        let header = Header {
            key_id,
            slots,
            nonce,
        };
        let mut out = header.encode();
        let plaintext = crate::unread::to_json(body, unread);
        let ciphertext = key
            .seal(&nonce, &out, &plaintext)
            .expect("platform contract: sealing with a 12-byte nonce cannot fail");
        out.extend_from_slice(&ciphertext);
        // What we are about to write must parse back to the header we meant.
        debug_assert_eq!(Header::decode(&out).map(|(h, _)| h).as_ref(), Ok(&header));
        out
    }

    /// The write of a `records` platform: the header (without tenants), and a record for
    /// each tenant that differs from what `view` read (every tenant, under a new key), in
    /// one atomic write that also removes the records of tenants the body no longer holds.
    fn seal_records(
        &mut self,
        key: &P::Key,
        slots: Vec<KeySlot>,
        old_generation: u64,
        mut body: Body,
        view: &View,
    ) -> Result<u64, StoreError> {
        let View::Records { read, all, key_id } = view else {
            unreachable!("seal_records is given a records view");
        };
        self.prepare(&mut body, old_generation)?;
        let tenants = std::mem::take(&mut body.tenants);
        let same_key = *key_id == key.key_id();
        // A partial view cannot write a tenant it did not read (its record may exist and be
        // newer), nor re-seal under a new key (the records it did not read would not open).
        assert!(
            *all || (same_key && tenants.keys().all(|t| read.contains_key(t))),
            "a write of tenant records that were not read"
        );
        let mut writes = Vec::new();
        for (name, entry) in &tenants {
            if same_key
                && read
                    .get(name)
                    .is_some_and(|old| old.as_ref() == Some(entry))
            {
                continue;
            }
            let id = record_id(name);
            let sealed = self.seal_record(key, &id, name, entry);
            writes.push(RecordWrite {
                id,
                sealed: Some(sealed),
            });
        }
        for (name, old) in read {
            if old.is_some() && !tenants.contains_key(name) {
                writes.push(RecordWrite {
                    id: record_id(name),
                    sealed: None,
                });
            }
        }
        body.tenant_records = true;
        let out = self.seal_header(key, slots, &body, &Unread::default());
        self.p.write_records(&out, &writes)?;
        Ok(body.generation)
    }

    fn seal_record(&mut self, key: &P::Key, id: &str, tenant: &str, entry: &Entry) -> Vec<u8> {
        let record = TenantRecord {
            tenant: tenant.to_owned(),
            entry: entry.clone(),
        };
        let plaintext = serde_json::to_vec(&record).expect("a record always serialises");
        let aad = crate::format::record_aad(&key.key_id(), id);
        let mut out = vec![crate::format::RECORD_VERSION];
        self.seal_fresh(key, &aad, &plaintext, &mut out);
        out
    }

    /// Append `nonce || seal(key, nonce, aad, plaintext)` to `out`, under a nonce drawn now:
    /// a tenant record's sealed bytes (after its version byte), or a queued write's.
    pub(crate) fn seal_fresh(
        &mut self,
        key: &P::Key,
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) {
        let mut nonce = [0u8; NONCE_LEN];
        self.p.fill_random(&mut nonce);
        let ciphertext = key
            .seal(&nonce, aad, plaintext)
            .expect("platform contract: sealing with a 12-byte nonce cannot fail");
        out.reserve(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
    }

    /// The merge: take the exclusive lock, re-read, apply only `change`, write atomically.
    /// `change` returns its result and whether it changed anything (no write if not).
    pub(crate) fn mutate<R>(
        &mut self,
        scope: Scope<'_>,
        create: bool,
        change: impl FnOnce(&mut Body, u64) -> Result<(R, bool), StoreError>,
    ) -> Result<(R, u64), StoreError> {
        let lock = self.lock_exclusive()?;
        let mut read = self.read_under(&lock, scope)?;
        let present = read.loaded.body().is_some();
        let generation = read.loaded.body().map_or(0, |b| b.generation);
        let mut body = read.take_body();
        let now = self.p.wall_ms();
        let (r, changed) = change(&mut body, now)?;
        // Every writer collects abandoned logins (FORMAT.md, "Pending logins").
        let changed = crate::model::collect_expired_logins(&mut body, now) || changed;
        // Nothing to write: an absent store that this call may not create (a delete, a
        // refresh's bookkeeping), or a present store the change left as it was.
        if (!present && !create) || (present && !changed) {
            return Ok((r, generation));
        }
        let generation = self.commit(&lock, read, body)?;
        Ok((r, generation))
    }

    // ----- the API -----

    /// Create the store if absent; true if this call created it.
    pub fn init(&mut self) -> Result<bool, StoreError> {
        let lock = self.lock_exclusive()?;
        let read = self.read_under(&lock, Scope::Header)?;
        if read.loaded.body().is_some() {
            return Ok(false);
        }
        self.commit(&lock, read, Body::default())?;
        Ok(true)
    }

    pub fn put(&mut self, tenant: &str, token_response: &str) -> Result<WriteReceipt, StoreError> {
        let tenant = tenant_name(tenant)?;
        let now = self.p.wall_ms();
        let put = PutChange::parse(tenant, token_response, now, self.opts.allow_insecure_http)?;
        // Group commit where the platform keeps a queue (`queue.rs`); a records platform
        // writes one tenant's record per put, which costs little whatever the contention.
        if self.p.layout() == Layout::Blob && self.p.queue_enabled() {
            return self.put_grouped(put, token_response, now);
        }
        let tenant = put.tenant.clone();
        let (revision, generation) = self.mutate(Scope::Tenant(&tenant), true, |body, now| {
            Ok((put.apply(body, now), true))
        })?;
        Ok(WriteReceipt {
            revision,
            generation,
        })
    }

    pub fn list(&mut self) -> Result<Vec<TenantSummary>, StoreError> {
        let loaded = self.read_shared(Scope::All)?;
        let Some(body) = loaded.body() else {
            return Ok(Vec::new());
        };
        Ok(body
            .tenants
            .iter()
            .map(|(name, e)| TenantSummary {
                tenant: name.clone(),
                token_type: e.token_type.clone(),
                expires_at_ms: e.expires_at_ms,
                has_refresh_token: e.refresh_token.is_some(),
                scope: e.scope.clone(),
                token_endpoint: e.token_endpoint.clone(),
                client_id: e.client_id.clone(),
                revision: e.revision,
                needs_reauth: e.needs_reauth
                    || e.refresh_intent.is_some() && !e.retry_unknown_refresh,
                refresh_intent: e.refresh_intent.is_some(),
            })
            .collect())
    }

    /// Remove a tenant from every file credlock keeps. The first write leaves the previous
    /// version, which still holds the tenant's refresh token, as the backup; a second write of
    /// the same store under the same lock makes the backup the store without it. A crash
    /// between the two leaves the tenant in the backup of an unacknowledged delete.
    pub fn delete(&mut self, tenant: &str) -> Result<bool, StoreError> {
        let tenant = tenant_name(tenant)?;
        let lock = self.lock_exclusive()?;
        let read = self.read_under(&lock, Scope::Tenant(&tenant))?;
        let Loaded::Present {
            header,
            key,
            mut body,
            view,
        } = read.loaded
        else {
            return Ok(false);
        };
        if body.tenants.remove(tenant.as_str()).is_none() {
            return Ok(false);
        }
        let generation = body.generation;
        let generation = self.seal_and_replace(
            &lock,
            &key,
            header.slots.clone(),
            generation,
            body.clone(),
            &view,
        )?;
        // A records platform removed the record itself, and a header has no tenants.
        if matches!(view, View::Blob(_)) {
            self.seal_and_replace(&lock, &key, header.slots, generation, body, &view)?;
        }
        Ok(true)
    }

    pub fn info(&mut self) -> Result<StoreInfo, StoreError> {
        match self.read_shared(Scope::All)? {
            Loaded::Absent => Ok(StoreInfo {
                exists: false,
                generation: 0,
                format_version: crate::format::FORMAT_VERSION,
                key_id: String::new(),
                slot_kinds: Vec::new(),
                tenants: 0,
            }),
            Loaded::Present { header, body, .. } => Ok(StoreInfo {
                exists: true,
                generation: body.generation,
                format_version: crate::format::FORMAT_VERSION,
                key_id: crate::tenant::hex(&header.key_id),
                slot_kinds: header.slots.iter().map(|s| s.kind.clone()).collect(),
                tenants: u32::try_from(body.tenants.len()).unwrap_or(u32::MAX),
            }),
        }
    }

    /// The entry of `tenant` as read under the shared lock; one that holds only attachments
    /// is no credentials (`not-found`).
    pub(crate) fn entry_shared(&mut self, tenant: &TenantName) -> Result<Entry, StoreError> {
        let loaded = self.read_shared(Scope::Tenant(tenant))?;
        loaded
            .body()
            .and_then(|b| b.tenants.get(tenant.as_str()))
            .filter(|e| e.holds_credentials())
            .cloned()
            .ok_or_else(|| StoreError::NotFound(tenant.to_string()))
    }
}

/// The entry a new login (`put`, an import) stores: its tokens replace the old ones. Refresh
/// settings not given are kept, so a re-login need not repeat the client configuration.
/// Refuse, when tokens are stored, an endpoint that every later refresh (or `logout`) would
/// refuse to use: plain http to a host that is not loopback would carry the refresh token in
/// clear text, and a tenant stored with one used to fail only at its first refresh, with
/// advice to retry. `login` holds its endpoints to the same rule (`login::check_endpoint`).
pub(crate) fn check_refresh_endpoints(
    config: &crate::oauth::RefreshConfig,
    allow_insecure_http: bool,
) -> Result<(), String> {
    if allow_insecure_http {
        return Ok(());
    }
    for (field, url) in [
        ("token_endpoint", &config.token_endpoint),
        ("revocation_endpoint", &config.revocation_endpoint),
    ] {
        if let Some(url) = url {
            if let Err(crate::error::LoginError::InsecureEndpoint(_)) =
                crate::login::check_endpoint(field, url)
            {
                return Err(format!(
                    "`{field}` is plain http to a host that is not loopback: refreshing would send the refresh token across the network in clear text; give its https URL, or allow plain http with --allow-insecure-http (CREDLOCK_ALLOW_INSECURE_HTTP=1) for a server you trust"
                ));
            }
        }
    }
    Ok(())
}

pub(crate) fn login_entry(
    old: Option<Entry>,
    grant: crate::oauth::TokenGrant,
    config: crate::oauth::RefreshConfig,
    config_given: bool,
    now: u64,
) -> Entry {
    let revision = old.as_ref().map_or(0, |e| e.revision) + 1;
    let config = match (&old, config_given) {
        (Some(o), false) => crate::oauth::RefreshConfig {
            token_endpoint: o.token_endpoint.clone(),
            client_id: o.client_id.clone(),
            client_auth: o.client_auth.clone(),
            retry_unknown_refresh: o.retry_unknown_refresh,
            revocation_endpoint: o.revocation_endpoint.clone(),
            refresh_scope: o.refresh_scope.clone(),
            refresh_resource: o.refresh_resource.clone(),
        },
        _ => config,
    };
    let crate::oauth::RefreshConfig {
        token_endpoint,
        client_id,
        client_auth,
        retry_unknown_refresh: retry,
        revocation_endpoint,
        refresh_scope,
        refresh_resource,
    } = config;
    Entry {
        access_token: grant.access_token,
        token_type: grant.token_type,
        expires_at_ms: grant.expires_at_ms,
        refresh_token: grant.refresh_token,
        scope: grant.scope,
        token_endpoint,
        client_id,
        client_auth,
        revocation_endpoint,
        refresh_scope,
        refresh_resource,
        revision,
        updated_at_ms: now,
        needs_reauth: false,
        refresh_intent: None,
        retry_unknown_refresh: retry,
        response_extra: grant.extra,
        attachments: old
            .as_ref()
            .map(|o| o.attachments.clone())
            .unwrap_or_default(),
        unknown: old.map(|o| o.unknown).unwrap_or_default(),
    }
}

pub(crate) fn tenant_name(name: &str) -> Result<TenantName, StoreError> {
    TenantName::new(name).map_err(|e| StoreError::InvalidTenant(e.to_string()))
}

/// Invariants of every body read or written.
pub(crate) fn check_body(body: &Body) -> Result<(), StoreError> {
    for (name, e) in &body.tenants {
        check_name(name)?;
        if e.revision == 0 {
            return Err(StoreError::Corrupt(format!(
                "tenant '{name}' has revision 0"
            )));
        }
    }
    Ok(())
}

/// A tenant name a store holds must be one `TenantName::new` accepts.
fn check_name(name: &str) -> Result<(), StoreError> {
    match TenantName::new(name) {
        Ok(_) => Ok(()),
        Err(_) => Err(StoreError::Corrupt(
            "the store holds an invalid tenant name".into(),
        )),
    }
}

/// The id of a tenant's record: its refresh lock's id. `name` is a checked tenant name.
fn record_id(name: &str) -> String {
    TenantName::new(name)
        .expect("check_body checked every tenant name")
        .id()
}

/// Open a sealed record found as `id`: the tenant it names and its entry.
fn open_record<K: SealingKey>(
    key: &K,
    id: &str,
    sealed: &[u8],
) -> Result<(String, Entry), StoreError> {
    // Only this tenant is lost: the others open one by one (`token`, `put`), but a call that
    // reads every record (`list`, `info`, `rekey`, `import`) fails on this one too.
    let damaged = |what: &str| {
        StoreError::Corrupt(format!(
            "the tenant record {id} {what}; every other tenant is intact and opens on its own; restore that row of the records table from the database's backups, or delete the row to give up this one tenant"
        ))
    };
    let (nonce, ciphertext) = crate::format::record_parts(sealed).map_err(|e| match e {
        crate::format::HeaderError::UnsupportedVersion(v) => StoreError::UnsupportedVersion(v),
        crate::format::HeaderError::Corrupt(what) | crate::format::HeaderError::NotAStore(what) => {
            damaged(&what)
        }
    })?;
    let aad = crate::format::record_aad(&key.key_id(), id);
    let plaintext = key.open(nonce, &aad, ciphertext).map_err(|_| {
        damaged("fails authentication (it was altered, or moved from another tenant)")
    })?;
    let record: TenantRecord = serde_json::from_slice(&plaintext)
        .map_err(|_| damaged("authenticates but is not a valid record"))?;
    let name = TenantName::new(&record.tenant).map_err(|_| damaged("names an invalid tenant"))?;
    if name.id() != id || record.entry.revision == 0 {
        return Err(damaged("does not match its id"));
    }
    Ok((record.tenant, record.entry))
}

/// Why a store header whose tenants are records is refused as a file.
pub const RECORDS_HEADER_AS_FILE: &str = "this is the header of a database store whose tenants are kept as separate records, not a whole store: it cannot be used as a store file (`credlock migrate` copies a database store into a directory)";

/// Why a missing store file beside a backup is not read as "no store yet" ([`Store::load`]).
pub const MISSING_BESIDE_BACKUP: &str = "the store file is missing but its backup (credentials.sealed.bak) is there: a recover was interrupted, or the store was moved away; credlock starts no new store beside a backup (if the backup cannot be read either, `credlock quarantine --force` moves it aside)";
