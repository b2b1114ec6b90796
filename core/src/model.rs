//! What the sealed body holds: the store's generation and one entry per tenant.
//!
//! The body is JSON (serde_json) inside the AEAD. Fields this build does not know, at the
//! top level and in each entry, are kept and written back unchanged, so an older credlock
//! never drops what a newer one stored.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The decrypted store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Body {
    /// Grows by one with every successful write; never decreases.
    pub generation: u64,
    pub tenants: BTreeMap<String, Entry>,
    /// Logins in progress, by tenant (see [`PendingLogin`]). Absent in stores written before
    /// logins existed, and omitted when empty, so such stores read and write as before.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending_logins: BTreeMap<String, PendingLogin>,
    /// The tenants are not in this body but each in its own sealed record beside it: this
    /// body is the header of a store on a `records` platform (FORMAT.md, "Tenant records").
    /// Such a body never holds tenants, and a `blob` platform refuses it (it would read as a
    /// store without tenants).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tenant_records: bool,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

/// What a tenant record holds, sealed: the tenant's name (a record is found by the name's
/// id, and the name is checked against it) and its entry.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub tenant: String,
    pub entry: Entry,
}

/// The version of [`PendingLogin`] this build writes and joins. An entry of another version
/// is never joined or resumed; it is kept until its `expires_at_ms`, then collected.
pub const PENDING_LOGIN_VERSION: u32 = 1;

/// A login in progress for one tenant: what a second process needs to join it (show the same
/// code or URL, wait for the same result) or, for the device flow, to resume polling if its
/// owner died. Sealed like everything in the body; see FORMAT.md, "Pending logins".
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingLogin {
    pub version: u32,
    /// `device` or `browser`.
    pub kind: String,
    /// Random hex naming this flow: a result is committed only by the flow that wrote it.
    pub id: String,
    pub started_at_ms: u64,
    /// After this the device code or authorization request is dead: any writer removes it.
    pub expires_at_ms: u64,
    /// The tenant's revision when the login started (0: no tenant). A result is stored only
    /// if the tenant's revision is still this: a newer `put` is never overwritten.
    pub base_revision: u64,
    /// What the user is shown.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_complete: Option<String>,
    /// RFC 8628 `device_code` (device flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_code: Option<String>,
    /// Milliseconds between polls (device flow), grown by `slow_down`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    /// RFC 7636 `code_verifier` (browser flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_verifier: Option<String>,
    /// The `state` the callback must carry (browser flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    /// How the result is stored, as `put` would: endpoint, client, requested scope.
    pub token_endpoint: String,
    pub client_id: String,
    #[serde(default)]
    pub client_auth: ClientAuth,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// Fields written by a newer credlock, kept.
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

impl std::fmt::Debug for PendingLogin {
    // The device code, verifier and client secret are secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("version", &self.version)
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("base_revision", &self.base_revision)
            .finish_non_exhaustive()
    }
}

impl PendingLogin {
    /// Whether this build may join or resume it.
    pub fn understood(&self) -> bool {
        self.version == PENDING_LOGIN_VERSION && (self.kind == "device" || self.kind == "browser")
    }
}

/// Remove every pending login past its expiry; true if any was removed. Every writer runs
/// this, so a login whose process died is collected by whoever writes next.
pub fn collect_expired_logins(body: &mut Body, now_ms: u64) -> bool {
    let before = body.pending_logins.len();
    body.pending_logins.retain(|_, p| p.expires_at_ms > now_ms);
    body.pending_logins.len() != before
}

/// How the client authenticates at the token endpoint (RFC 6749 §2.3.1).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum ClientAuth {
    /// A public client: `client_id` in the form body, no secret.
    #[default]
    None,
    /// `client_secret_basic`: HTTP Basic with the form-urlencoded id and secret.
    Basic { secret: String },
    /// `client_secret_post`: id and secret in the form body.
    Post { secret: String },
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.method_name())
    }
}

impl ClientAuth {
    pub fn method_name(&self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::Basic { .. } => "client_secret_basic",
            ClientAuth::Post { .. } => "client_secret_post",
        }
    }
}

/// A refresh that was started and whose outcome is not yet recorded. While it is in the
/// store, the refresh token it names may already be spent at the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshIntent {
    /// SHA-256 (hex) of the refresh token about to be presented.
    pub refresh_token_sha256: String,
    pub started_at_ms: u64,
    /// How many times this refresh token has been presented (1, or 2 after an allowed retry).
    #[serde(default = "one")]
    pub attempts: u32,
}

fn one() -> u32 {
    1
}

/// One tenant's credentials and the metadata needed to refresh them.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub access_token: String,
    pub token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// RFC 7009 revocation endpoint, used by `logout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// Sent as `scope` with every refresh, for servers that require it (Microsoft's v2.0
    /// endpoint); none is sent when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_scope: Option<String>,
    /// Sent as `resource` (RFC 8707) with every refresh; none is sent when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_resource: Option<String>,
    /// Grows by one with every write to this entry.
    pub revision: u64,
    pub updated_at_ms: u64,
    /// The refresh token was rejected, or a refresh's outcome is unknown: log in again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_reauth: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_intent: Option<RefreshIntent>,
    /// Allow one more presentation of a refresh token whose earlier outcome is unknown. Only
    /// for servers with a reuse grace window; off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry_unknown_refresh: bool,
    /// Fields of the token response credlock does not interpret (`id_token`, ...), kept.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub response_extra: Map<String, Value>,
    /// Small named values a program keeps with the tenant (`crate::attachment`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attachments: BTreeMap<String, String>,
    /// Entry fields written by a newer credlock, kept.
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

impl std::fmt::Debug for Entry {
    // Secrets never reach a log, even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_at_ms", &self.expires_at_ms)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("client_auth", &self.client_auth)
            .field("revision", &self.revision)
            .field("needs_reauth", &self.needs_reauth)
            .field("refresh_intent", &self.refresh_intent)
            .finish_non_exhaustive()
    }
}

impl Entry {
    /// Whether the access token stays valid for `min_valid_ms` more at `now_ms`. A token
    /// without a known expiry is taken as valid: only the resource server can say otherwise,
    /// and `refresh` with `rejected` is how a caller reports that.
    pub fn fresh_for(&self, now_ms: u64, min_valid_ms: u64) -> bool {
        // An imported refresh token without its access token (Google's application default
        // credentials) is never served: the first `token` refreshes.
        if self.access_token.is_empty() {
            return false;
        }
        match self.expires_at_ms {
            None => true,
            Some(exp) => exp > now_ms.saturating_add(self.effective_min_valid_ms(min_valid_ms)),
        }
    }

    /// The validity a caller can ask of this token: at most half its lifetime. A server that
    /// issues 60-second tokens can never satisfy "valid for 60 more seconds"; without this
    /// cap every call would refresh.
    pub fn effective_min_valid_ms(&self, min_valid_ms: u64) -> u64 {
        match self.expires_at_ms {
            Some(exp) if exp > self.updated_at_ms => {
                min_valid_ms.min((exp - self.updated_at_ms) / 2)
            }
            _ => min_valid_ms,
        }
    }

    pub fn can_refresh(&self) -> bool {
        self.refresh_token.is_some() && self.token_endpoint.is_some()
    }

    /// Whether the entry holds tokens at all. One that holds only attachments (a client
    /// registered before its first login) has none to serve or refresh.
    pub fn holds_credentials(&self) -> bool {
        !self.access_token.is_empty() || self.refresh_token.is_some()
    }

    /// A tenant that has attachments and no tokens yet. Its revision is 1, as every entry's
    /// first (a store with a revision 0 is corrupt to every credlock, older ones included).
    pub fn without_credentials(now_ms: u64) -> Entry {
        Entry {
            access_token: String::new(),
            token_type: String::new(),
            expires_at_ms: None,
            refresh_token: None,
            scope: None,
            token_endpoint: None,
            client_id: None,
            client_auth: ClientAuth::default(),
            revocation_endpoint: None,
            refresh_scope: None,
            refresh_resource: None,
            revision: 1,
            updated_at_ms: now_ms,
            needs_reauth: false,
            refresh_intent: None,
            retry_unknown_refresh: false,
            response_extra: Map::new(),
            attachments: BTreeMap::new(),
            unknown: Map::new(),
        }
    }
}
