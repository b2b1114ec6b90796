//! The seam: everything the core needs from the world, and nothing more.
//!
//! This trait mirrors the WIT `platform` world (`wit/*.wit`) one method per import, with the
//! same contracts. Three things implement it: the component adapter (`core/component`), which
//! forwards to the wasm imports; the native host (`host/`); and the simulator. Each method's
//! documentation states what an implementation must guarantee; the core's promises rest on
//! exactly these guarantees and no others.

/// A failure of the filesystem under the store. Strings are host-written detail (OS error and
/// path) and never contain secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoError {
    /// The path is a symlink, directory or device where a regular file was expected.
    NotARegularFile(String),
    /// EACCES, EPERM, EROFS.
    PermissionDenied(String),
    /// ENOSPC, EDQUOT.
    NoSpace(String),
    /// Owner or mode would let another user read or replace secrets; the detail names the
    /// path, the problem and the command that fixes it.
    UnsafePermissions(String),
    /// The store is locked with another lock protocol (its `lock-protocol` marker).
    OtherLockProtocol(String),
    /// The store's server could not be reached, or the session holding a lock ended; a
    /// write failing this way was not acknowledged.
    Unreachable(String),
    /// A write refused because the store changed since this process read it under its
    /// lock (the lock was lost): nothing was written.
    Fenced(String),
    /// The store's server did not accept this process's credentials (a wrong password, an
    /// unknown role, a rule refusing the role from here).
    AuthFailed(String),
    /// Anything else.
    Other(String),
}

/// What a lock protects. See `wit/locks.wit`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LockTarget {
    /// The store file: shared for reads, exclusive for read-modify-write.
    Store,
    /// One tenant's refresh lock; the payload is the tenant's path-safe id (64 hex chars).
    Refresh(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockMode {
    Shared,
    Exclusive,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockError {
    /// Still held elsewhere when the timeout ran out; payload: milliseconds waited.
    Timeout(u32),
    Io(IoError),
}

/// The files the core may touch. See `wit/files.wit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreFile {
    Store,
    Backup,
}

/// How a platform keeps a store. See `wit/files.wit`, "Layouts".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The whole store is one sealed file (`Store`, with its `Backup`).
    Blob,
    /// `Store` is the store's header; each tenant is a sealed record of its own.
    Records,
}

/// One record of [`Platform::write_records`]: the tenant's id and its sealed bytes, or `None`
/// to remove the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordWrite {
    pub id: String,
    pub sealed: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    Io(IoError),
    /// The file exceeds the host's size limit; payload: its size.
    TooLarge(u64),
}

/// A wrapped copy of the data key, as stored in the header. Opaque to the core.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySlot {
    pub kind: String,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for KeySlot {
    // The wrapped key is not a secret on its own, but it has no business in logs either.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeySlot({}, {} bytes)", self.kind, self.data.len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    NoKeySource,
    /// No configured key source opens any slot; payload: the kinds of slot present.
    NoMatchingSlot(Vec<String>),
    WrongPassphrase,
    WrongKeyFile,
    MalformedSlot(String),
    Io(IoError),
    /// A keyring slot's entry is gone and nothing else opened the store.
    KeyringEntryMissing {
        backend: String,
        other_slots: Vec<String>,
    },
    /// The OS keyring failed or timed out (backend and detail).
    Keyring(String),
    /// The host cannot make a slot of this kind (kind and why).
    SlotUnavailable(String),
}

/// Slot kinds the core knows to be volatile: lost at reboot or idle expiry.
pub const VOLATILE_SLOT_KINDS: &[&str] = &["kernel-keyring"];

/// Whether a slot of `kind` survives a reboot. Unknown kinds count as durable: the core
/// cannot know, and the host that wrote them chose them.
pub fn slot_is_durable(kind: &str) -> bool {
    !VOLATILE_SLOT_KINDS.contains(&kind)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    BadNonce,
    AuthenticationFailed,
}

/// A data key held by the platform. The core never sees key bytes.
pub trait SealingKey {
    /// The 16-byte id of this key.
    fn key_id(&self) -> Vec<u8>;
    /// The slots that wrap this key, for a new header.
    fn slots(&self) -> Vec<KeySlot>;
    /// AES-256-GCM seal; returns ciphertext followed by the 16-byte tag.
    fn seal(&self, nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError>;
    /// AES-256-GCM open; `AuthenticationFailed` for any change to nonce, aad or ciphertext.
    fn open(&self, nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, SealError>;
    /// A new slot of `kind` wrapping this key, from the host's configured source.
    fn add_slot(&self, kind: &str) -> Result<KeySlot, KeyError>;
}

/// One POST to a token endpoint, built entirely by the core.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub url: String,
    /// Form-urlencoded body.
    pub body: String,
    /// The whole `Authorization` header value.
    pub authorization: Option<String>,
    pub timeout_ms: u32,
}

impl std::fmt::Debug for TokenRequest {
    // The body holds the refresh token and perhaps the client secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("url", &self.url)
            .field("body", &"<redacted>")
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for HttpReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpReply({}, {} bytes)", self.status, self.body.len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// Not an acceptable URL (scheme, host). The request was not sent.
    BadUrl(String),
    /// No connection was made. The request was not sent.
    Connect(String),
    /// The timeout ran out; the server may or may not have acted.
    Timeout,
    /// The connection broke after the request was sent; the server may have acted.
    Interrupted(String),
    ReplyTooLarge,
}

impl TransportError {
    /// Whether the server can have acted on the request. Only a request that certainly never
    /// left is safe to forget: anything else may have spent the refresh token.
    pub fn request_may_have_arrived(&self) -> bool {
        !matches!(self, TransportError::BadUrl(_) | TransportError::Connect(_))
    }
}

/// Everything the core needs from the world. Implementations: the wasm imports, the native
/// host, the simulator. Every contract below is also written in `wit/`.
pub trait Platform {
    /// A held lock; dropping it releases the lock.
    type Guard;
    type Key: SealingKey;

    /// Take `target` in `mode`, waiting at most `timeout_ms`.
    ///
    /// Must: exclude every other process's conflicting lock on the same target of the same
    /// store (whatever its host); wake a waiter on release rather than poll; release on drop
    /// of the guard and when the process dies; never wait much longer than `timeout_ms`.
    fn acquire(
        &mut self,
        target: &LockTarget,
        mode: LockMode,
        timeout_ms: u32,
    ) -> Result<Self::Guard, LockError>;

    /// The whole contents of one version of `file`, or `None` if absent. Never a prefix or
    /// a mix of two writes.
    fn read(&mut self, file: StoreFile) -> Result<Option<Vec<u8>>, FileError>;

    /// Replace `file` atomically and durably. On `Ok`, the new contents survive any crash;
    /// on `Err` or a crash during the call, the file holds exactly the old or exactly the new
    /// contents and the write is not acknowledged. Replacing `Store` first keeps its previous
    /// contents as `Backup`.
    fn replace(&mut self, file: StoreFile, contents: &[u8]) -> Result<(), FileError>;

    /// Remove `file`, durably; a missing file is not an error.
    fn remove(&mut self, file: StoreFile) -> Result<(), FileError>;

    /// Rename `file` aside to `<name>.corrupt-<unix ms>[-n]`, durably, never replacing
    /// anything; returns the new name. Only on explicit request, under the store lock.
    fn quarantine(&mut self, file: StoreFile) -> Result<String, FileError>;

    /// How this platform keeps a store. A `Blob` platform (the default) never sees a call
    /// of the three record methods below.
    fn layout(&mut self) -> Layout {
        Layout::Blob
    }

    /// The sealed record `id`, or `None`. As of one version of the store (the core reads
    /// records only under the store lock).
    fn read_record(&mut self, id: &str) -> Result<Option<Vec<u8>>, FileError> {
        let _ = id;
        Err(no_records())
    }

    /// Every record of the store, `(id, sealed)`, in any order.
    fn read_records(&mut self) -> Result<Vec<(String, Vec<u8>)>, FileError> {
        Err(no_records())
    }

    /// One atomic, durable write: `store` replaces the header (the old one kept as the
    /// backup) and every record in `records` is written or removed; all of it or none. On
    /// `Err`, or a crash during the call, the write is not acknowledged. Only under the
    /// exclusive store lock, after a read of `Store` under it.
    fn write_records(&mut self, store: &[u8], records: &[RecordWrite]) -> Result<(), FileError> {
        let _ = (store, records);
        Err(no_records())
    }

    /// Whether this platform keeps a queue of writes for group commit (`wit/files.wit`,
    /// "Queued writes"). Without one (the default) the core makes none of the queue calls
    /// below.
    fn queue_enabled(&mut self) -> bool {
        false
    }

    /// Create queue entry `id` (32 lowercase hex) as *posted*, owner-only, without fsync.
    fn queue_post(&mut self, id: &str, sealed: &[u8]) -> Result<(), FileError> {
        let _ = (id, sealed);
        Err(no_queue())
    }

    /// Claim every posted entry and return it, `(id, sealed)`, in any order. Only under the
    /// exclusive store lock, before a write: the claims are durable when that write is.
    fn queue_take(&mut self) -> Result<Vec<(String, Vec<u8>)>, FileError> {
        Err(no_queue())
    }

    /// After the write under the same lock: acknowledge a claimed entry with `receipt`, or
    /// (`None`) remove it, unwritten (its poster then writes it itself).
    fn queue_settle(&mut self, id: &str, receipt: Option<&[u8]>) -> Result<(), FileError> {
        let _ = (id, receipt);
        Err(no_queue())
    }

    /// The state of entry `id`, which this call removes (with `acknowledged_only`, only if
    /// it is acknowledged). By its poster, under the store lock (shared or exclusive).
    fn queue_collect(&mut self, id: &str, acknowledged_only: bool) -> Result<Queued, FileError> {
        let _ = (id, acknowledged_only);
        Err(no_queue())
    }

    /// Remove entry `id` if it is still posted (atomically against `queue_take`); false if
    /// it was claimed or acknowledged. By its poster, without the lock.
    fn queue_withdraw(&mut self, id: &str) -> Result<bool, FileError> {
        let _ = id;
        Err(no_queue())
    }

    /// Open data key `key_id` from one of `slots`. Must never create a key.
    fn unlock(&mut self, key_id: &[u8], slots: &[KeySlot]) -> Result<Self::Key, KeyError>;

    /// A new random data key, wrapped by every configured key source. The core calls this
    /// only under the exclusive store lock, with the store absent.
    fn create_key(&mut self) -> Result<Self::Key, KeyError>;

    /// A new random data key wrapped by the same sources as `slots`, one slot each, in
    /// order; `SlotUnavailable` if a source is missing. Only under the exclusive store lock.
    fn rekey(&mut self, slots: &[KeySlot]) -> Result<Self::Key, KeyError>;

    /// Send exactly one POST; no retries, no redirects; ends within `timeout_ms`.
    fn post(&mut self, request: &TokenRequest) -> Result<HttpReply, TransportError>;

    /// Unix time in milliseconds; may jump.
    fn wall_ms(&mut self) -> u64;

    /// Milliseconds from an arbitrary origin; never decreases within a process.
    fn monotonic_ms(&mut self) -> u64;

    /// Cryptographically secure random bytes.
    fn fill_random(&mut self, buf: &mut [u8]);
}

/// Where a queued write is. See `wit/files.wit`, "Queued writes".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queued {
    /// Written durably; the receipt its writer left.
    Acknowledged(Vec<u8>),
    /// Not taken by any holder.
    Posted,
    /// Taken by a holder that died before settling it: not acknowledged, maybe written.
    Claimed,
    Absent,
}

/// What a platform without a queue answers to a queue call (the core makes none there).
pub fn no_queue() -> FileError {
    FileError::Io(IoError::Other(
        "this platform keeps no queue of writes".into(),
    ))
}

/// What a `Blob` platform answers to a record call (the core makes none there).
pub fn no_records() -> FileError {
    FileError::Io(IoError::Other(
        "this platform keeps a store as one file and has no tenant records".into(),
    ))
}

/// What a user must see to finish a login: the device flow's code and page, or the browser
/// flow's URL. Mirrors `prompt` in `wit/login.wit`. The user code is short-lived and meant to
/// be shown; the device code and PKCE verifier never appear here.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoginPrompt {
    /// `device` or `browser`.
    pub kind: String,
    /// The page to visit: RFC 8628 `verification_uri`, or the authorization URL.
    pub url: String,
    /// RFC 8628 `user_code` (device flow only).
    pub user_code: Option<String>,
    /// RFC 8628 `verification_uri_complete`, which carries the code (device flow only).
    pub url_complete: Option<String>,
    /// Unix ms after which the code or URL no longer works.
    pub expires_at_ms: u64,
    /// This process joined a login another process started.
    pub joined: bool,
}

/// A loopback redirect's callback as it arrived: the query string of `GET /callback?...`.
#[derive(Clone, PartialEq, Eq)]
pub struct CallbackQuery(pub String);

impl std::fmt::Debug for CallbackQuery {
    // The query holds the authorization code.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackQuery(<redacted>)")
    }
}

/// What a login flow needs from the world beyond [`Platform`]: GET for discovery, a wait
/// for the polling interval, a way to show the user what to do, and (browser flow) a loopback
/// listener and a browser. Mirrors `wit/login.wit`; a platform that cannot offer a part
/// answers with the error that part documents. Kept apart from [`Platform`] so the simulator,
/// which never logs in, implements exactly the store's seam.
pub trait LoginPlatform: Platform {
    /// One GET of `url` (`Accept: application/json`) under the rules of [`Platform::post`]:
    /// one request, no redirects, `http` only to loopback, a reply of at most 1 MiB.
    fn get(&mut self, url: &str, timeout_ms: u32) -> Result<HttpReply, TransportError>;

    /// Return after about `ms` milliseconds (never much later).
    fn sleep_ms(&mut self, ms: u32);

    /// Show `prompt` to the user. Must not write it anywhere but to the user (stderr, a
    /// binding's callback).
    fn show(&mut self, prompt: &LoginPrompt);

    /// Bind a listener on `127.0.0.1:0` for the one expected callback; returns its port.
    /// A platform without one returns `Err(why)`.
    fn listen(&mut self) -> Result<u16, String>;

    /// Wait at most `timeout_ms` for `GET /callback?...` on the listener from
    /// [`LoginPlatform::listen`] whose `state` parameter equals `state`, answer it with a
    /// short page, and return its query. Requests for other paths, or with another state,
    /// are answered 400 and do not end the wait; once one callback is accepted the listener
    /// is closed, so a second one is refused. `Err(why)` on timeout or failure.
    fn accept_callback(&mut self, state: &str, timeout_ms: u32) -> Result<CallbackQuery, String>;

    /// Open `url` in the user's browser; false if there is none to open.
    fn open_browser(&mut self, url: &str) -> bool;
}
