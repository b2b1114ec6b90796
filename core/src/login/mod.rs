//! Logging in and out: the device authorization grant (RFC 8628), the authorization code
//! grant with PKCE (RFC 7636) over a loopback redirect (RFC 8252), discovery (RFC 8414 and
//! OpenID Connect Discovery) and revocation (RFC 7009), with one flow per tenant across
//! processes.
//!
//! A login in progress is a [`PendingLogin`] in the sealed body, written under the store lock
//! by the process that started the flow while it holds the tenant's refresh lock, which it
//! keeps until the flow ends (the lock order of [`crate::manual::locking`]: refresh lock, then
//! store lock). Nothing slow happens under the store lock.
//!
//! ```text
//! read pending ──none──▶ take the refresh lock (in short slices, re-reading between them)
//!     │                        └─▶ ExpectMetadata ─▶ ExpectDeviceAuthorization ─▶ pending written
//!     │                                 ─▶ ExpectToken (poll at the interval; slow_down +5 s)
//!     │                                 ─▶ commit (only if the tenant's revision is unchanged)
//!     └─some─▶ show the same code ─▶ wait for the refresh lock until the pending expires
//!                 ─▶ pending gone: the tenant's newer tokens are the result
//!                 ─▶ pending still there (its owner died): resume polling with its device code
//! ```
//! A browser login can only be finished by the process listening for its callback. One whose
//! owner is gone (the refresh lock is free) is taken over at once, and one whose loopback
//! listener refuses connections is waited for without showing its URL: a joiner never shows
//! a URL that leads nowhere.
//! Every wait is bounded: by the code's expiry, by a named constant, or by a timeout option.

use crate::error::{EndpointError, LoginError, StoreError};
use crate::model::{ClientAuth, Entry, PendingLogin, PENDING_LOGIN_VERSION};
use crate::oauth::{base64, classify_reply, form_encode, EndpointReply, RefreshConfig, TokenGrant};
use crate::platform::{
    HttpReply, LockError, LockMode, LockTarget, LoginPlatform, LoginPrompt, TokenRequest,
    TransportError,
};
use crate::store::{login_entry, tenant_name, AccessToken, Scope, Store};
use crate::tenant::{hex, TenantName};
use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::{Map, Value};

/// RFC 8628 §3.2: the interval when the server names none.
pub const DEFAULT_INTERVAL_MS: u64 = 5_000;
/// RFC 8628 §3.5: what `slow_down` adds to the interval.
pub const SLOW_DOWN_MS: u64 = 5_000;
/// The longest interval credlock waits between polls, whatever the server says.
pub const MAX_INTERVAL_MS: u64 = 60_000;
/// The longest a login may stay pending, whatever the server's `expires_in`.
pub const MAX_LOGIN_MS: u64 = 30 * 60 * 1000;
/// How long a browser login waits for its callback.
pub const BROWSER_LOGIN_MS: u64 = 5 * 60 * 1000;
/// Polls of one device code: at the shortest interval (1 s) this outlasts `MAX_LOGIN_MS`.
pub const MAX_POLLS: u32 = 1_900;
/// Consecutive failed polls (5xx, connection) before a device login gives up.
pub const MAX_TRANSIENT_FAILURES: u32 = 3;
/// The slice in which a starting login tries the refresh lock before looking again for a
/// pending login to join: the lock's holder may be a login that has just written one.
pub const JOIN_CHECK_MS: u32 = 250;
/// Bounds the outer loop of [`Store::login`] (join, lock slices, restarts).
pub const MAX_LOGIN_STEPS: u32 = 100_000;
/// Fields of a server's reply longer than this are refused (a code or URL is far shorter).
pub const MAX_FIELD_LEN: usize = 4096;
/// How long a look at another process's loopback listener may take.
pub const LISTENER_PROBE_MS: u32 = 2_000;

/// Which grant a login runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFlow {
    Device,
    /// `open`: ask the platform to open the browser (otherwise only show the URL).
    Browser {
        open: bool,
    },
}

/// What `credlock login` asks for. Mirrors `login-request` in the WIT.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginRequest {
    /// The issuer to discover the endpoints from; optional when they are all given.
    pub issuer: Option<String>,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub scope: Option<String>,
    pub flow: LoginFlow,
    pub audience: Option<String>,
    pub resource: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub device_authorization_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("flow", &self.flow)
            .finish_non_exhaustive()
    }
}

/// A completed login: the tenant's tokens as stored. Mirrors `login-result` in the WIT.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoginOutcome {
    pub token: AccessToken,
    /// This process joined a login another process ran.
    pub joined: bool,
    /// The stored tokens include a refresh token. Without one (a server that granted no
    /// offline access) the login lasts until the access token expires.
    pub refreshable: bool,
}

/// What `logout` did about the server's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// The server accepted the revocation (RFC 7009 §2.2).
    Revoked,
    /// No revocation endpoint is known for the tenant.
    NotOffered,
    /// The server did not confirm it (payload: why); only with `local` is this a success.
    Failed(String),
}

/// Two fields, `revocation` (the WIT's case name) and `revocation_error` (the `failed`
/// payload, else null), not serde's shape for an enum: the C ABI, Go and Python have always
/// shown a logout this way, and a language without sum types reads two plain fields.
/// [`LogoutReport`] flattens them into itself.
impl Serialize for Revocation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (case, why) = match self {
            Revocation::Revoked => ("revoked", None),
            Revocation::NotOffered => ("not-offered", None),
            Revocation::Failed(why) => ("failed", Some(why)),
        };
        let mut s = serializer.serialize_struct("Revocation", 2)?;
        s.serialize_field("revocation", case)?;
        s.serialize_field("revocation_error", &why)?;
        s.end()
    }
}

/// Serialized flat, as every binding has shown it: `{"revocation": "revoked" | "not-offered"
/// | "failed", "revocation_error": null | why, "deleted": bool}` (see [`Revocation`]'s
/// `Serialize`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogoutReport {
    #[serde(flatten)]
    pub revocation: Revocation,
    /// The tenant was deleted locally.
    pub deleted: bool,
}

/// A pending login as `list` and `doctor` show it: never a code or verifier. Mirrors
/// `pending-login` in the WIT.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PendingSummary {
    pub tenant: String,
    pub kind: String,
    pub started_at_ms: u64,
    pub expires_at_ms: u64,
    /// False for an entry written by a newer credlock: kept, never joined.
    pub understood: bool,
}

mod flow;
mod logout;
mod wire;

pub use wire::*;
