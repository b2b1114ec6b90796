//! An error as every front end shows it: the WIT case, the inner case, the message, what to
//! do next, the CLI's exit code and the variant's fields. The language bindings build their
//! exception types from this one description, so no message or advice is written twice.

use crate::Error;
use credlock_core::error::exit;
use credlock_core::platform::{FileError, IoError, KeyError, TransportError};
use credlock_core::{EndpointError, RecoverError, SlotChangeError, StoreError};
use serde_json::{json, Map, Value};

/// What a binding needs to raise a faithful, specific error. Never holds a secret: the
/// fields are tenant names, OAuth error codes, lock names, slot kinds and OS detail.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorReport {
    /// The WIT `store-error` case (`lock-timeout`, `key`, ...), or `internal`.
    pub code: &'static str,
    /// The inner case, where the variant has one (`wrong-passphrase`, `oauth`, ...).
    pub case: Option<&'static str>,
    pub message: String,
    pub recommendation: &'static str,
    pub exit_code: u8,
    /// The variant's fields by name (`tenant`, `lock`, `waited_ms`, `status`, `slot_kinds`...).
    pub detail: Map<String, Value>,
}

impl ErrorReport {
    /// The whole report as one JSON object (what the C ABI hands out).
    pub fn to_json(&self) -> Value {
        json!({
            "code": self.code,
            "case": self.case,
            "message": self.message,
            "recommendation": self.recommendation,
            "exit_code": self.exit_code,
            "detail": Value::Object(self.detail.clone()),
        })
    }
}

fn io_fields(e: &IoError, m: &mut Map<String, Value>) {
    let (kind, detail) = match e {
        IoError::NotARegularFile(d) => ("not-a-regular-file", d),
        IoError::PermissionDenied(d) => ("permission-denied", d),
        IoError::NoSpace(d) => ("no-space", d),
        IoError::UnsafePermissions(d) => ("unsafe-permissions", d),
        IoError::OtherLockProtocol(d) => ("other-lock-protocol", d),
        IoError::Unreachable(d) => ("unreachable", d),
        IoError::Fenced(d) => ("fenced", d),
        IoError::AuthFailed(d) => ("auth-failed", d),
        IoError::Other(d) => ("other", d),
    };
    m.insert("io_kind".into(), kind.into());
    m.insert("detail".into(), detail.as_str().into());
}

fn detail(e: &StoreError) -> Map<String, Value> {
    use StoreError::*;
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    match e {
        InvalidTenant(why)
        | InvalidTokenResponse(why)
        | InvalidOptions(why)
        | InvalidAttachment(why) => put("reason", why.as_str().into()),
        NotFound(t)
        | Expired(t)
        | ReauthNeeded(t)
        | RefreshOutcomeUnknown(t)
        | RefreshContended(t) => put("tenant", t.as_str().into()),
        Endpoint(EndpointError::OAuth {
            status,
            error,
            description,
        }) => {
            put("status", (*status).into());
            put("error", error.as_str().into());
            put("error_description", description.as_deref().into());
        }
        Endpoint(EndpointError::Server(status)) => put("status", (*status).into()),
        Endpoint(EndpointError::MalformedReply(d)) => put("detail", d.as_str().into()),
        Endpoint(EndpointError::Transport(t)) => {
            let (kind, d) = match t {
                TransportError::BadUrl(d) => ("bad-url", Some(d)),
                TransportError::Connect(d) => ("connect", Some(d)),
                TransportError::Timeout => ("timeout", None),
                TransportError::Interrupted(d) => ("interrupted", Some(d)),
                TransportError::ReplyTooLarge => ("reply-too-large", None),
            };
            put("transport", kind.into());
            put("detail", d.map(String::as_str).into());
            // Whether the server may have received the refresh token: then it may be spent.
            put(
                "request_may_have_arrived",
                matches!(t, TransportError::Timeout | TransportError::Interrupted(_)).into(),
            );
        }
        LockTimeout { lock, waited_ms } => {
            put("lock", lock.as_str().into());
            put("waited_ms", (*waited_ms).into());
        }
        Io(FileError::Io(e)) => io_fields(e, &mut m),
        Io(FileError::TooLarge(n)) => {
            put("io_kind", "too-large".into());
            put("size", (*n).into());
        }
        Key(k) => match k {
            KeyError::NoMatchingSlot(kinds) => put("slot_kinds", kinds.clone().into()),
            KeyError::MalformedSlot(d) | KeyError::Keyring(d) | KeyError::SlotUnavailable(d) => {
                put("detail", d.as_str().into())
            }
            KeyError::Io(e) => io_fields(e, &mut m),
            KeyError::KeyringEntryMissing {
                backend,
                other_slots,
            } => {
                put("backend", backend.as_str().into());
                put("slot_kinds", other_slots.clone().into());
            }
            KeyError::NoKeySource | KeyError::WrongPassphrase | KeyError::WrongKeyFile => {}
        },
        NotAStore(d) | Corrupt(d) => put("detail", d.as_str().into()),
        UnsupportedVersion(v) => put("version", (*v).into()),
        SlotChange(SlotChangeError::NoSuchSlot(i)) => put("index", (*i).into()),
        SlotChange(SlotChangeError::OnlyVolatileLeft(kinds)) => {
            put("slot_kinds", kinds.clone().into())
        }
        SlotChange(SlotChangeError::TooManySlots(n)) => put("max_slots", (*n).into()),
        SlotChange(SlotChangeError::LastSlot) => {}
        Recover(RecoverError::BackupUnreadable(d)) => put("detail", d.as_str().into()),
        Recover(_) => {}
        ImportConflict(names) => put("tenants", names.clone().into()),
        Login(
            credlock_core::LoginError::Metadata(d)
            | credlock_core::LoginError::InsecureEndpoint(d)
            | credlock_core::LoginError::RevocationFailed(d)
            | credlock_core::LoginError::Callback(d)
            | credlock_core::LoginError::Unsupported(d)
            | credlock_core::LoginError::IssuerMismatch(d),
        ) => put("detail", d.as_str().into()),
        Login(
            credlock_core::LoginError::Expired(t)
            | credlock_core::LoginError::Pending(t)
            | credlock_core::LoginError::JoinedFailed(t)
            | credlock_core::LoginError::Superseded(t),
        ) => put("tenant", t.as_str().into()),
        Login(credlock_core::LoginError::Endpoint { endpoint, error }) => {
            // The same fields as a refresh's endpoint failure, plus which endpoint it was.
            m = detail(&Endpoint(error.clone()));
            m.insert("endpoint".into(), endpoint.as_str().into());
        }
        // A variant added to the core later: its message and advice still come through.
        _ => {}
    }
    m
}

impl From<&StoreError> for ErrorReport {
    fn from(e: &StoreError) -> Self {
        let mut detail = detail(e);
        if let Some(case) = e.case() {
            detail.insert("reason".into(), case.into());
        }
        ErrorReport {
            code: e.code(),
            case: e.case(),
            message: e.to_string(),
            recommendation: e.recommendation(),
            exit_code: e.exit_code(),
            detail,
        }
    }
}

/// The advice for an error that is credlock's own fault.
pub const INTERNAL_RECOMMENDATION: &str = "this is a bug in credlock; please report it";

impl Error {
    /// This error as every front end reports it.
    pub fn report(&self) -> ErrorReport {
        match self {
            Error::Store(s) => s.into(),
            Error::Runtime(_) => ErrorReport {
                code: "internal",
                case: None,
                message: self.to_string(),
                recommendation: INTERNAL_RECOMMENDATION,
                exit_code: exit::INTERNAL,
                detail: Map::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_carry_fields_and_one_message() {
        let e = StoreError::LockTimeout {
            lock: "store".into(),
            waited_ms: 10,
        };
        let r = ErrorReport::from(&e);
        assert_eq!(r.code, "lock-timeout");
        assert_eq!(r.exit_code, exit::LOCK_TIMEOUT);
        assert_eq!(r.message, e.to_string());
        assert_eq!(r.detail["lock"], "store");
        assert_eq!(r.detail["waited_ms"], 10);

        let r = ErrorReport::from(&StoreError::Key(KeyError::WrongPassphrase));
        assert_eq!(r.case, Some("wrong-passphrase"));
        assert_eq!(r.detail["reason"], "wrong-passphrase");
        assert_eq!(r.exit_code, exit::UNREADABLE);

        // Advice by cause, not one line for every I/O failure.
        let symlink = StoreError::Io(FileError::Io(IoError::NotARegularFile("x".into())));
        assert!(ErrorReport::from(&symlink)
            .recommendation
            .contains("symlink"));
        let full = StoreError::Io(FileError::Io(IoError::NoSpace("x".into())));
        assert!(ErrorReport::from(&full)
            .recommendation
            .starts_with("free space"));
    }
}
