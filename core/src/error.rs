//! The store's errors, grouped by whose fault they are, each with what to do about it.
//!
//! These mirror `store-error` in `wit/store.wit` one to one. No variant carries a token,
//! a client secret or key material: payloads are tenant names, field names, codes and
//! host-written OS detail.

use crate::format::HeaderError;
use crate::platform::{FileError, IoError, KeyError, TransportError};

/// Exit codes of the credlock command lines (README, "Exit codes"): distinct per kind of
/// failure so scripts can react. The native CLI and the WASI command both use this table.
pub mod exit {
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    /// The credential needs a new login.
    pub const REAUTH: u8 = 4;
    pub const LOCK_TIMEOUT: u8 = 5;
    /// The store cannot be read with what was given (key, damage, version).
    pub const UNREADABLE: u8 = 6;
    pub const ENDPOINT: u8 = 7;
    pub const IO: u8 = 8;
    /// A maintenance request refused as asked (slot change, recover, import conflict).
    pub const REFUSED: u8 = 9;
    /// A bug in credlock: the runtime failed or the component trapped.
    pub const INTERNAL: u8 = 10;
    /// A login did not store tokens: denied, expired, superseded by a newer `put`, or the
    /// login this process joined ended without tokens.
    pub const LOGIN: u8 = 11;
    /// A login for this tenant is in progress (another process shows its code or URL).
    pub const LOGIN_PENDING: u8 = 12;
}

/// Why a login or logout did not complete. Mirrors `login-error`. Payloads name fields,
/// tenants and server error codes, never a code, verifier or token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    // --- the server's metadata or replies ---
    /// Discovery failed, or the metadata lacks what the flow needs (payload: why).
    Metadata(String),
    /// An endpoint is plain `http` to a host that is not loopback (payload: which one).
    InsecureEndpoint(String),
    // --- the user's or server's decision ---
    /// The user (or the server) refused the authorization (`access_denied`).
    AccessDenied,
    /// The code or authorization request expired before the user finished (payload: tenant).
    Expired(String),
    // --- other processes ---
    /// Another process's login for this tenant is in progress (payload: tenant).
    Pending(String),
    /// The login this process joined ended without storing tokens (payload: tenant).
    JoinedFailed(String),
    /// Tokens stored while this login ran are newer; they were kept (payload: tenant).
    Superseded(String),
    // --- logout ---
    /// The server did not confirm the revocation; nothing was deleted (payload: why).
    RevocationFailed(String),
    // --- the browser flow ---
    /// The loopback callback did not come, or was not acceptable (payload: why).
    Callback(String),
    /// This host cannot run this part of a login (payload: what).
    Unsupported(String),
    // --- the authorization response's issuer (RFC 9207) ---
    /// The browser callback names another issuer than the login's, or none where the
    /// server's metadata promises one: a mix-up attack, or a misconfigured server. Its code
    /// was not exchanged (payload: why).
    IssuerMismatch(String),
    /// A request of the login to the server failed: `endpoint` is `metadata` (discovery),
    /// `device_authorization_endpoint` or `token_endpoint`. Kept apart from
    /// [`StoreError::Endpoint`], whose advice is about a refresh: a login has no refresh token
    /// yet that could have been spent.
    Endpoint {
        endpoint: String,
        error: EndpointError,
    },
}

/// What went wrong with one request, without naming the endpoint (the caller does).
fn endpoint_failure(e: &EndpointError) -> String {
    match e {
        EndpointError::OAuth {
            status,
            error,
            description,
        } => match description {
            Some(d) => format!("it answered {status} {error}: {d}"),
            None => format!("it answered {status} {error}"),
        },
        EndpointError::Server(status) => format!("it failed with HTTP {status}"),
        EndpointError::MalformedReply(why) => format!("its reply is not usable: {why}"),
        EndpointError::Transport(t) => match t {
            TransportError::BadUrl(why) => format!("its URL is not acceptable: {why}"),
            TransportError::Connect(d) => format!("cannot connect: {d}"),
            TransportError::Timeout => "it did not answer in time".into(),
            TransportError::Interrupted(d) => {
                format!("the connection broke after the request was sent: {d}")
            }
            TransportError::ReplyTooLarge => {
                "its reply is too large (more than credlock reads of any server reply)".into()
            }
        },
    }
}

/// How a token endpoint failed. Mirrors `endpoint-error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointError {
    /// An OAuth error response (RFC 6749 §5.2) other than `invalid_grant`.
    OAuth {
        status: u16,
        error: String,
        description: Option<String>,
    },
    /// A failure status without an OAuth error body.
    Server(u16),
    /// A success status whose body is not a usable token response.
    MalformedReply(String),
    /// The request did not complete.
    Transport(TransportError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    // The caller's input.
    InvalidTenant(String),
    InvalidTokenResponse(String),
    InvalidOptions(String),
    /// An attachment's name or value is not acceptable, or the tenant has too many
    /// (payload: why).
    InvalidAttachment(String),
    NotFound(String),
    // The credential's state.
    Expired(String),
    ReauthNeeded(String),
    RefreshOutcomeUnknown(String),
    Endpoint(EndpointError),
    // The environment.
    LockTimeout {
        lock: String,
        waited_ms: u32,
    },
    RefreshContended(String),
    Io(FileError),
    Key(KeyError),
    // The store file's contents.
    NotAStore(String),
    UnsupportedVersion(u16),
    Corrupt(String),
    // Maintenance.
    SlotChange(SlotChangeError),
    Recover(RecoverError),
    ImportConflict(Vec<String>),
    // Login and logout.
    Login(LoginError),
}

/// Why a slot change was refused. Mirrors `slot-change-error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotChangeError {
    NoSuchSlot(u32),
    LastSlot,
    OnlyVolatileLeft(Vec<String>),
    TooManySlots(u32),
}

/// Why `recover` refused. Mirrors `recover-error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoverError {
    StoreReadable,
    NoBackup,
    BackupUnreadable(String),
    TenantRecords,
}

impl From<HeaderError> for StoreError {
    fn from(e: HeaderError) -> Self {
        match e {
            HeaderError::NotAStore(d) => StoreError::NotAStore(d),
            HeaderError::UnsupportedVersion(v) => StoreError::UnsupportedVersion(v),
            HeaderError::Corrupt(d) => StoreError::Corrupt(d),
        }
    }
}

impl From<FileError> for StoreError {
    fn from(e: FileError) -> Self {
        StoreError::Io(e)
    }
}

impl From<KeyError> for StoreError {
    fn from(e: KeyError) -> Self {
        StoreError::Key(e)
    }
}

fn io_detail(e: &IoError) -> String {
    match e {
        IoError::NotARegularFile(d) => format!("not a regular file: {d}"),
        IoError::PermissionDenied(d) => format!("permission denied: {d}"),
        IoError::NoSpace(d) => format!("no space left: {d}"),
        IoError::UnsafePermissions(d) => format!("unsafe permissions: {d}"),
        IoError::OtherLockProtocol(d) => d.clone(),
        IoError::Unreachable(d) => format!("the store's server is unreachable: {d}"),
        IoError::Fenced(d) => format!("write fenced off: {d}"),
        IoError::AuthFailed(d) => format!("the store's server did not accept this role: {d}"),
        IoError::Other(d) => d.clone(),
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use StoreError::*;
        match self {
            InvalidTenant(why) => write!(f, "invalid tenant name: {why}"),
            InvalidTokenResponse(why) => write!(f, "invalid token response: {why}"),
            InvalidOptions(why) => write!(f, "invalid options: {why}"),
            InvalidAttachment(why) => write!(f, "invalid attachment: {why}"),
            NotFound(t) => write!(f, "no credentials stored for tenant '{t}'"),
            Expired(t) => write!(f, "the access token of '{t}' has expired and cannot be refreshed (no refresh token or token endpoint)"),
            ReauthNeeded(t) => write!(f, "the server rejected the refresh token of '{t}' (invalid_grant)"),
            RefreshOutcomeUnknown(t) => write!(f, "an earlier refresh of '{t}' was interrupted after its refresh token may have been spent; presenting it again could revoke the grant"),
            Endpoint(EndpointError::OAuth { status, error, description }) => {
                write!(f, "the token endpoint answered {status} {error}")?;
                if let Some(d) = description {
                    write!(f, ": {d}")?;
                }
                Ok(())
            }
            Endpoint(EndpointError::Server(status)) => write!(f, "the token endpoint failed with HTTP {status}"),
            Endpoint(EndpointError::MalformedReply(why)) => write!(f, "the token endpoint's reply is not a valid token response: {why}"),
            Endpoint(EndpointError::Transport(t)) => match t {
                TransportError::BadUrl(why) => write!(f, "the token endpoint URL is not acceptable: {why}"),
                TransportError::Connect(d) => write!(f, "cannot connect to the token endpoint: {d}"),
                TransportError::Timeout => write!(f, "the token endpoint did not answer in time"),
                TransportError::Interrupted(d) => write!(f, "the connection to the token endpoint broke after the request was sent: {d}"),
                TransportError::ReplyTooLarge => write!(f, "the token endpoint's reply is too large"),
            },
            LockTimeout { lock, waited_ms } => write!(f, "timed out after {waited_ms} ms waiting for the {lock} lock"),
            RefreshContended(t) => write!(f, "the tokens of tenant '{t}' were replaced {} times in a row while this refresh waited to send, each time by tokens that did not serve; nothing was sent", crate::refresh::MAX_REFRESH_RESTARTS),
            Io(FileError::Io(e)) => write!(f, "store I/O failed: {}", io_detail(e)),
            Io(FileError::TooLarge(n)) => write!(f, "the store file is too large ({n} bytes)"),
            Key(KeyError::NoKeySource) => write!(f, "no key source is configured"),
            Key(KeyError::NoMatchingSlot(kinds)) => write!(f, "none of the configured keys opens this store; it can be opened by: {}", kinds.join(", ")),
            Key(KeyError::WrongPassphrase) => write!(f, "wrong passphrase for this store"),
            Key(KeyError::WrongKeyFile) => write!(f, "the key file does not open this store"),
            Key(KeyError::MalformedSlot(d)) => write!(f, "a key slot of the store is damaged: {d}"),
            Key(KeyError::Io(e)) => write!(f, "cannot read the key: {}", io_detail(e)),
            Key(KeyError::KeyringEntryMissing { backend, other_slots }) => {
                write!(f, "the {backend} keyring no longer holds this store's key (wiped, rebooted, or another machine)")?;
                if other_slots.is_empty() {
                    write!(f, "; no other slot can open the store")
                } else {
                    write!(f, "; it can still be opened by its other slots: {}", other_slots.join(", "))
                }
            }
            Key(KeyError::Keyring(d)) => write!(f, "the OS keyring failed: {d}"),
            Key(KeyError::SlotUnavailable(d)) => write!(f, "cannot make that key slot: {d}"),
            NotAStore(d) => write!(f, "not a credlock store: {d}"),
            UnsupportedVersion(v) => write!(f, "the store has format version {v}, which this credlock does not know"),
            Corrupt(d) => write!(f, "the store is damaged: {d}"),
            SlotChange(SlotChangeError::NoSuchSlot(i)) => write!(f, "the store has no key slot {i}"),
            SlotChange(SlotChangeError::LastSlot) => write!(f, "that is the store's only key slot; removing it would leave nothing that opens the store"),
            SlotChange(SlotChangeError::OnlyVolatileLeft(kinds)) => write!(f, "only volatile slots would remain ({}), and they are lost at reboot", kinds.join(", ")),
            SlotChange(SlotChangeError::TooManySlots(n)) => write!(f, "the store already has {n} key slots, the most a header holds"),
            Recover(RecoverError::StoreReadable) => write!(f, "the store opens; restoring the backup would discard the writes made since it"),
            Recover(RecoverError::NoBackup) => write!(f, "there is no backup of the store to restore"),
            Recover(RecoverError::BackupUnreadable(d)) => write!(f, "the backup cannot be read either: {d}"),
            Recover(RecoverError::TenantRecords) => write!(f, "this database store keeps each tenant as its own record: there is no store file and backup to restore or move aside"),
            ImportConflict(names) => write!(f, "these tenants already exist: {}; nothing was imported", names.join(", ")),
            Login(LoginError::Metadata(why)) => write!(f, "the authorization server's metadata is not usable: {why}"),
            Login(LoginError::InsecureEndpoint(which)) => write!(f, "the {which} is plain http to a host that is not loopback; credentials would cross the network in clear text"),
            Login(LoginError::AccessDenied) => write!(f, "the authorization was denied (access_denied)"),
            Login(LoginError::Expired(t)) => write!(f, "the login for '{t}' expired before it was completed"),
            Login(LoginError::Pending(t)) => write!(f, "a login for '{t}' is in progress and has not completed yet"),
            Login(LoginError::JoinedFailed(t)) => write!(f, "the login for '{t}' that this process joined ended without storing tokens"),
            Login(LoginError::Superseded(t)) => write!(f, "newer tokens were stored for '{t}' while this login ran; they were kept and this login's tokens discarded"),
            Login(LoginError::RevocationFailed(why)) => write!(f, "the server did not confirm the revocation ({why}); nothing was deleted"),
            Login(LoginError::Callback(why)) => write!(f, "the browser login did not complete: {why}"),
            Login(LoginError::Unsupported(what)) => write!(f, "this credlock build cannot {what}"),
            Login(LoginError::IssuerMismatch(why)) => write!(f, "the browser login's callback may come from another authorization server: {why}; its code was not exchanged (RFC 9207)"),
            Login(LoginError::Endpoint { endpoint, error }) => {
                if endpoint == "metadata" {
                    write!(f, "the login's request for the authorization server's metadata failed: ")?;
                } else {
                    write!(f, "the login's request to the {endpoint} failed: ")?;
                }
                f.write_str(&endpoint_failure(error))
            }
        }
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    /// The WIT case name (`store-error`), the same in every host: test vectors and
    /// programs compare these, never messages.
    pub fn code(&self) -> &'static str {
        use StoreError::*;
        match self {
            InvalidTenant(_) => "invalid-tenant",
            InvalidTokenResponse(_) => "invalid-token-response",
            InvalidOptions(_) => "invalid-options",
            InvalidAttachment(_) => "invalid-attachment",
            NotFound(_) => "not-found",
            Expired(_) => "expired",
            ReauthNeeded(_) => "reauth-needed",
            RefreshOutcomeUnknown(_) => "refresh-outcome-unknown",
            Endpoint(_) => "endpoint",
            LockTimeout { .. } => "lock-timeout",
            RefreshContended(_) => "refresh-contended",
            Io(_) => "io",
            Key(_) => "key",
            NotAStore(_) => "not-a-store",
            UnsupportedVersion(_) => "unsupported-version",
            Corrupt(_) => "corrupt",
            SlotChange(_) => "slot-change",
            Recover(_) => "recover",
            ImportConflict(_) => "import-conflict",
            Login(_) => "login",
        }
    }

    /// The inner case of the variant, where it has one (`oauth`, `wrong-passphrase`,
    /// `last-slot`, ...): the WIT case names of `endpoint-error`, `file-error`, `key-error`,
    /// `slot-change-error` and `recover-error`. Bindings expose it beside [`Self::code`].
    pub fn case(&self) -> Option<&'static str> {
        use StoreError::*;
        Some(match self {
            Endpoint(EndpointError::OAuth { .. }) => "oauth",
            Endpoint(EndpointError::Server(_)) => "server",
            Endpoint(EndpointError::MalformedReply(_)) => "malformed-reply",
            Endpoint(EndpointError::Transport(_)) => "transport",
            Io(FileError::Io(_)) => "io",
            Io(FileError::TooLarge(_)) => "too-large",
            Key(k) => match k {
                KeyError::NoKeySource => "no-key-source",
                KeyError::NoMatchingSlot(_) => "no-matching-slot",
                KeyError::WrongPassphrase => "wrong-passphrase",
                KeyError::WrongKeyFile => "wrong-key-file",
                KeyError::MalformedSlot(_) => "malformed-slot",
                KeyError::Io(_) => "io",
                KeyError::KeyringEntryMissing { .. } => "keyring-entry-missing",
                KeyError::Keyring(_) => "keyring",
                KeyError::SlotUnavailable(_) => "slot-unavailable",
            },
            SlotChange(SlotChangeError::NoSuchSlot(_)) => "no-such-slot",
            SlotChange(SlotChangeError::LastSlot) => "last-slot",
            SlotChange(SlotChangeError::OnlyVolatileLeft(_)) => "only-volatile-left",
            SlotChange(SlotChangeError::TooManySlots(_)) => "too-many-slots",
            Recover(RecoverError::StoreReadable) => "store-readable",
            Recover(RecoverError::NoBackup) => "no-backup",
            Recover(RecoverError::BackupUnreadable(_)) => "backup-unreadable",
            Recover(RecoverError::TenantRecords) => "tenant-records",
            Login(l) => match l {
                LoginError::Metadata(_) => "metadata",
                LoginError::InsecureEndpoint(_) => "insecure-endpoint",
                LoginError::AccessDenied => "access-denied",
                LoginError::Expired(_) => "expired",
                LoginError::Pending(_) => "pending",
                LoginError::JoinedFailed(_) => "joined-failed",
                LoginError::Superseded(_) => "superseded",
                LoginError::RevocationFailed(_) => "revocation-failed",
                LoginError::Callback(_) => "callback",
                LoginError::Unsupported(_) => "unsupported",
                LoginError::IssuerMismatch(_) => "issuer-mismatch",
                LoginError::Endpoint { .. } => "endpoint",
            },
            _ => return None,
        })
    }

    /// The exit code the CLIs (native and WASI) end with for this error: one table for
    /// every front end, documented in the README ("Exit codes").
    pub fn exit_code(&self) -> u8 {
        use StoreError::*;
        match self {
            InvalidTenant(_)
            | InvalidTokenResponse(_)
            | InvalidOptions(_)
            | InvalidAttachment(_) => exit::USAGE,
            NotFound(_) => exit::NOT_FOUND,
            Expired(_) | ReauthNeeded(_) | RefreshOutcomeUnknown(_) => exit::REAUTH,
            Endpoint(_) => exit::ENDPOINT,
            // Transient like a lock wait: a retry may well succeed.
            LockTimeout { .. } | RefreshContended(_) => exit::LOCK_TIMEOUT,
            // An unprotected key file is refused like an unprotected store directory: the
            // same exit code for the same fix (a chmod), not "unreadable store".
            Io(_) | Key(KeyError::Io(IoError::UnsafePermissions(_) | IoError::AuthFailed(_))) => {
                exit::IO
            }
            // A maintenance request refused as asked: nothing was changed.
            Key(KeyError::SlotUnavailable(_)) | SlotChange(_) | Recover(_) | ImportConflict(_) => {
                exit::REFUSED
            }
            Key(_) | NotAStore(_) | UnsupportedVersion(_) | Corrupt(_) => exit::UNREADABLE,
            Login(
                LoginError::Metadata(_)
                | LoginError::RevocationFailed(_)
                | LoginError::Endpoint { .. },
            ) => exit::ENDPOINT,
            Login(LoginError::InsecureEndpoint(_)) => exit::USAGE,
            Login(LoginError::Unsupported(_)) => exit::REFUSED,
            Login(LoginError::Pending(_)) => exit::LOGIN_PENDING,
            Login(
                LoginError::AccessDenied
                | LoginError::Expired(_)
                | LoginError::JoinedFailed(_)
                | LoginError::Superseded(_)
                | LoginError::Callback(_),
            ) => exit::LOGIN,
            Login(LoginError::IssuerMismatch(_)) => exit::LOGIN,
        }
    }

    /// What the user should do next, in one sentence.
    pub fn recommendation(&self) -> &'static str {
        use StoreError::*;
        match self {
            InvalidTenant(_) => "use 1-128 characters from letters, digits and . _ @ + : -",
            InvalidTokenResponse(_) => "fix what is named above: pass a token response with access_token, an expiry in a form the README's `put` section lists and endpoints that are https (or http to this machine); for `import`, a file of a kind `credlock import --help` lists (--from KIND names one); nothing was stored",
            InvalidOptions(_) => "fix the option named above (the store's URL or directory, a timeout, an import's --from or --account, or for a login the issuer, client id and endpoints)",
            InvalidAttachment(_) => "name attachments with 1 to 64 of a-z, 0-9 and . _ - (starting with a letter or digit), keep each value under 64 KiB and at most 16 per tenant; nothing was stored",
            NotFound(_) => "log in with `credlock login` (or store tokens with `credlock put`)",
            Expired(_) | ReauthNeeded(_) => "log in again with `credlock login` (or store new tokens with `credlock put`)",
            RefreshOutcomeUnknown(_) => "log in again; if your server tolerates one reuse, set retry_unknown_refresh for this tenant",
            Endpoint(EndpointError::Transport(TransportError::Timeout | TransportError::Interrupted(_)))
            | Endpoint(EndpointError::MalformedReply(_)) => {
                "the refresh token may have been spent; if the next attempt reports an unknown outcome, log in again"
            }
            Endpoint(EndpointError::OAuth { .. }) => "check the client id, secret and authentication method stored for this tenant",
            Endpoint(_) => "retry later; the stored tokens are unchanged",
            LockTimeout { .. } => "another process holds the lock; retry, or raise --lock-timeout",
            RefreshContended(_) => "retry; if it keeps happening, find the process that keeps storing (`put`, `import`) tokens for this tenant",
            Io(FileError::Io(IoError::NotARegularFile(_))) => "a store file is a symlink or not a regular file, which credlock never follows or replaces: put the real file there (or move the link away); nothing was changed",
            Io(FileError::Io(IoError::NoSpace(_))) => "free space on the store's filesystem; nothing was changed",
            Io(FileError::Io(IoError::UnsafePermissions(_))) | Key(KeyError::Io(IoError::UnsafePermissions(_))) => "credlock refuses files that other users could read or replace, as ssh refuses an unprotected private key: run the command above (`credlock doctor` checks the rest); nothing was read or changed",
            Io(FileError::Io(IoError::PermissionDenied(_))) => "check the store directory's owner and permissions, or for a database store the role's privileges named above (`credlock doctor`); nothing was changed",
            Io(FileError::Io(IoError::AuthFailed(_))) | Key(KeyError::Io(IoError::AuthFailed(_))) => "check the database role and its password (PGPASSWORD or ~/.pgpass, never in the URL) and that the server's pg_hba.conf lets this role in from here (`credlock doctor`); nothing was changed",
            Io(FileError::Io(IoError::OtherLockProtocol(_))) => "open this store with the kind of credlock host that made it (its lock-protocol file says which); two kinds on one store would not exclude each other; nothing was changed",
            Io(FileError::Io(IoError::Unreachable(_))) | Key(KeyError::Io(IoError::Unreachable(_))) => "check that the database is running and reachable from here (`credlock doctor`), then retry; a write that failed this way was not acknowledged",
            Io(FileError::Io(IoError::Fenced(_))) => "retry: this process lost its lock (its database session ended) while another process wrote; nothing of this call was written",
            Io(_) => "check the store directory's permissions and free space; nothing was changed",
            Key(KeyError::NoMatchingSlot(_)) => "provide a key that opens one of the listed slots (CREDLOCK_PASSPHRASE or the key file)",
            Key(KeyError::WrongPassphrase) => "check CREDLOCK_PASSPHRASE; the store was not changed",
            Key(KeyError::KeyringEntryMissing { .. }) => "open it with one of the other slots (for a passphrase: CREDLOCK_PASSPHRASE), then `credlock slot add keyring` and `credlock slot remove` the dead slot; never re-initialise",
            Key(KeyError::Keyring(_)) => "check that the keyring service is running and unlocked (`credlock doctor`), or use another slot",
            Key(KeyError::SlotUnavailable(_)) => "configure that key source (CREDLOCK_PASSPHRASE, the key file, CREDLOCK_KEYRING) and retry",
            Key(_) => "check the key file or passphrase; the store was not changed",
            NotAStore(_) | Corrupt(_) => "the damaged file was not changed; `credlock recover` restores the previous good version (credentials.sealed.bak)",
            UnsupportedVersion(_) => "use the credlock version that wrote this store; if none did (a damaged header), `credlock recover --force` restores the backup and `credlock quarantine --force` moves the file aside (neither deletes it)",
            SlotChange(SlotChangeError::OnlyVolatileLeft(_)) => "add a durable slot first (passphrase, key-file or keyring), or allow volatile-only explicitly",
            SlotChange(_) => "see `credlock slot list`",
            Recover(RecoverError::StoreReadable) => "nothing needs recovering; use --force only to roll back on purpose",
            Recover(RecoverError::TenantRecords) => "restore the database from its own backups, or copy the store to a directory with `credlock migrate --to DIR` and recover there; nothing was changed",
            Recover(_) => "the store was not changed; restore from your own backups or log in again",
            ImportConflict(_) => "import with --replace to overwrite them, or delete them first",
            Login(LoginError::Metadata(_)) => "check --issuer, or give the endpoints explicitly (--token-endpoint, --device-authorization-endpoint, --authorization-endpoint); nothing was stored",
            Login(LoginError::InsecureEndpoint(_)) => "use the server's https endpoints; nothing was stored",
            Login(LoginError::AccessDenied) => "run `credlock login` again and approve the request; nothing was stored",
            Login(LoginError::Expired(_)) => "run `credlock login` again and finish before the code expires; nothing was stored",
            Login(LoginError::Pending(_)) => "finish the login shown by the other process, or run `credlock login` to join it",
            Login(LoginError::JoinedFailed(_)) => "run `credlock login` again",
            Login(LoginError::Superseded(_)) => "nothing to do: `credlock token` returns the newer tokens (this login's own were revoked where the server offers revocation)",
            Login(LoginError::RevocationFailed(_)) => "retry later, or `credlock logout --local` to delete the tokens without revoking them",
            Login(LoginError::Callback(_)) => "run `credlock login --browser` again and finish in the browser it opens (or use --device)",
            Login(LoginError::Unsupported(_)) => "run the native credlock (or its bindings) to log in",
            Login(LoginError::IssuerMismatch(_)) => "run `credlock login --browser` again; if it happens again, another authorization server is answering in this one's place (a mix-up attack): check --issuer and the browser's sessions; nothing was stored",
            Login(LoginError::Endpoint { error: EndpointError::OAuth { .. }, .. }) => "check --client-id, the client secret (--client-secret-fd) and that the server lets this client use this grant, then run `credlock login` again; nothing was stored",
            Login(LoginError::Endpoint {
                error:
                    EndpointError::Server(_)
                    | EndpointError::Transport(
                        TransportError::Connect(_) | TransportError::Timeout | TransportError::Interrupted(_),
                    ),
                ..
            }) => "check that the authorization server is up and reachable from here, then run `credlock login` again; nothing was stored",
            Login(LoginError::Endpoint { .. }) => "the server's reply cannot be used (see above; credlock stores only Bearer token responses): check that --issuer or the endpoints given are the OAuth server's, and the client's settings there, then run `credlock login` again; nothing was stored",
        }
    }
}
