//! rmcp's OAuth over credlock (feature `rmcp`): one tenant of a [`Store`] as the credentials
//! of an rmcp [`AuthorizationManager`], so that every refresh rmcp asks for is credlock's (a
//! durable intent, one refresh across every process, a refresh token presented at most once).
//!
//! ```no_run
//! # async fn connect() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let store = Arc::new(credlock::Store::open_with(&credlock::OpenOptions::default())?);
//! let mut manager =
//!     credlock::adapters::rmcp::authorization_manager(store, "acme", "https://mcp.example.com/mcp")
//!         .await?;
//! manager.initialize_from_store().await?; // false: no credentials yet, authorize as usual
//! // then as usual: AuthClient::new(reqwest::Client::default(), manager) for the transport
//! # Ok(())
//! # }
//! ```
//!
//! Two pieces, used together:
//! - [`CredlockCredentialStore`], rmcp's [`CredentialStore`]: `load` returns what
//!   [`Store::token`] returns (refreshed by credlock when it is about to expire), dated now,
//!   so rmcp never finds it due for a refresh of its own. It never hands rmcp the refresh
//!   token: in its place goes a *handle* (`credlock-rmcp.v1...`, no secret in it) naming the
//!   access token rmcp held.
//! - [`CredlockOAuthHttpClient`], the [`OAuthHttpClient`] rmcp sends its OAuth requests
//!   through: a refresh that presents a handle (rmcp's reaction to a 401, or a refresh it
//!   decided on) never reaches the network. It becomes [`Store::refresh`] of the access token
//!   the handle names, which refreshes only if the store still holds that token: processes
//!   and tasks that meet the same 401 together cost one refresh, and a token another process
//!   already replaced is answered with its replacement. Every other request (discovery,
//!   registration, the authorization-code exchange) goes to the client it wraps.
//!
//! Tokens rmcp obtains itself (its own authorization-code login) are stored through
//! [`Store::put`] by `save`, with the token endpoint, client, client authentication and RFC
//! 8707 resource (the MCP server, as `refresh_resource`) the wrapped exchange used, so that
//! credlock refreshes them as rmcp would have. `clear` and a rejected refresh
//! never delete anything: credlock records a rejected refresh token itself (the tenant then
//! needs a new login, and `load` reports no credentials, which is rmcp's cue to authorize),
//! and `clear` hides from this adapter only the tokens rmcp last saw: a newer login or
//! refresh by any process shows through.
//!
//! rmcp's own refresh guard ([`CredentialStore::acquire_refresh_guard`]) is not used: the
//! refresh runs inside [`Store::refresh`], under credlock's own refresh lock, for exactly
//! the token request and its commit; a second lock around rmcp's load, request and save
//! would be held across the whole exchange, and credlock's call inside it would wait for it.
//!
//! [`AuthorizationManager::new_with_oauth_http_client`] (what [`authorization_manager`]
//! calls) leaves the network policy to the wrapped client: rmcp's default client
//! ([`default_oauth_http_client`]) does not filter the addresses discovered metadata
//! resolves to, as [`AuthorizationManager::new`] does. Wrap a client with a policy of your
//! own with [`CredlockOAuthHttpClient::new`] where that matters.

use crate::{AccessToken, Store, StoreError, TenantSummary};
use rmcp::transport::auth::{
    default_oauth_http_client, AuthError, AuthorizationManager, CredentialRefreshGuard,
    CredentialStore, OAuthHttpClient, OAuthHttpClientFuture, OAuthHttpRequest, OAuthTokenResponse,
    StoredCredentials,
};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use zeroize::Zeroizing;

/// How long a token `load` returns must stay valid: credlock refreshes it when less is left
/// (capped at half the token's lifetime), as the other adapters do.
pub const DEFAULT_MIN_VALID_MS: u64 = 60_000;

/// What every refresh handle starts with. rmcp stores and presents it as a refresh token.
const HANDLE_PREFIX: &str = "credlock-rmcp.v1.";

/// The tasks (or threads) whose last token the adapter remembers; the least recent is
/// forgotten beyond this. A task that is forgotten and then meets a 401 names the token
/// its refresh load returns instead, which costs at most one refresh more.
const MAX_CALLERS: usize = 1024;

/// The smallest lifetime `load` reports, in seconds. rmcp refreshes when fewer than
/// `max(1, min(30, expires_in / 2))` of the reported seconds are left, reading its clock
/// after `load` returns: 2 keeps that false across one tick of its second-granular clock,
/// however short the token (credlock's own rule already kept it valid long enough).
const MIN_REPORTED_EXPIRES_IN_S: u64 = 2;

/// Why an adapter call failed: what happened and, from [`AdapterError::recommendation`],
/// what to do. rmcp receives it as [`AuthError::CredentialStoreError`] (from the store) or
/// as a failed refresh (from the HTTP client), with both in the message.
#[derive(Debug)]
#[non_exhaustive]
pub enum AdapterError {
    /// A store call failed; its report carries credlock's own advice.
    Store(crate::Error),
    /// rmcp's login produced a refresh token, but no authorization-code exchange went
    /// through this adapter's HTTP client, so the token endpoint that would refresh it is
    /// unknown. Nothing was stored.
    UnknownTokenEndpoint,
    /// rmcp asked to handle a refresh token that is not one of this adapter's handles.
    ForeignRefreshToken,
    /// rmcp presented a refresh token that starts like a handle but cannot be read. It was
    /// answered here, never sent.
    MalformedHandle,
    /// rmcp presented the handle of another tenant (its credentials store and HTTP client
    /// belong to different adapters). It was answered here, never sent.
    ForeignHandle { tenant: String },
    /// A store call stopped on its blocking thread (a panic in credlock: a bug).
    Blocking(String),
}

impl AdapterError {
    /// What to do about it.
    pub fn recommendation(&self) -> &'static str {
        match self {
            AdapterError::Store(e) => e.report().recommendation,
            AdapterError::UnknownTokenEndpoint => "build the AuthorizationManager with credlock::adapters::rmcp::authorization_manager (or wrap its HTTP client in CredlockOAuthHttpClient) so that the adapter sees the code exchange, then log in again; or store the tokens with `credlock put` including token_endpoint and client_id",
            AdapterError::ForeignRefreshToken => "use one CredlockCredentialStore with the CredlockOAuthHttpClient made from it (credlock::adapters::rmcp::authorization_manager does both); a handle reached a token endpoint that is not the adapter's, which refuses it without effect",
            AdapterError::MalformedHandle => "authorize again: the stored refresh handle is damaged (the tokens in the credlock store are unaffected)",
            AdapterError::ForeignHandle { .. } => "build the AuthorizationManager's credential store and HTTP client from one CredlockCredentialStore (credlock::adapters::rmcp::authorization_manager does both)",
            AdapterError::Blocking(_) => "report this as a credlock bug, with the message above",
        }
    }
}

impl std::fmt::Display for AdapterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdapterError::Store(e) => e.fmt(f),
            AdapterError::UnknownTokenEndpoint => f.write_str("rmcp obtained a refresh token credlock cannot refresh: no token endpoint is known for it (the code exchange did not go through the adapter's HTTP client)"),
            AdapterError::ForeignRefreshToken => f.write_str("the refresh token rmcp presented is not a credlock handle"),
            AdapterError::MalformedHandle => f.write_str("rmcp presented a credlock refresh handle that cannot be read"),
            AdapterError::ForeignHandle { tenant } => write!(f, "rmcp presented a refresh handle of tenant '{tenant}' to the adapter of another tenant"),
            AdapterError::Blocking(why) => write!(f, "a credlock call stopped on its thread: {why}"),
        }
    }
}

impl std::error::Error for AdapterError {}

impl From<crate::Error> for AdapterError {
    fn from(e: crate::Error) -> Self {
        AdapterError::Store(e)
    }
}

impl From<AdapterError> for AuthError {
    fn from(e: AdapterError) -> Self {
        AuthError::CredentialStoreError(format!("{e} (what to do: {})", e.recommendation()))
    }
}

/// Store errors that mean "authorize again" to rmcp: no credentials, none that can be
/// refreshed, a refresh token the server rejected, or one that may have been spent by an
/// interrupted refresh (presenting it again could revoke the grant).
fn needs_authorization(e: &crate::Error) -> bool {
    matches!(
        e,
        crate::Error::Store(
            StoreError::NotFound(_)
                | StoreError::Expired(_)
                | StoreError::ReauthNeeded(_)
                | StoreError::RefreshOutcomeUnknown(_)
        )
    )
}

/// Who called: the tokio task, or the thread outside any task. rmcp's reaction to a 401
/// (`get_access_token`, the request, then `refresh_token`) runs in one task, so the token
/// the task was last given is the one the server refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Caller {
    Task(tokio::task::Id),
    Thread(std::thread::ThreadId),
}

fn caller() -> Caller {
    match tokio::task::try_id() {
        Some(id) => Caller::Task(id),
        None => Caller::Thread(std::thread::current().id()),
    }
}

/// A token the adapter handed out, as far as it needs to recognise it again: never the
/// token itself. `revision` and `expires_at_ms` are what [`Store::list`] shows of it, so a
/// hidden token can be recognised without reading (or refreshing) the token.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    sha256: String,
    revision: u64,
    expires_at_ms: Option<u64>,
}

impl Seen {
    fn of(t: &AccessToken) -> Seen {
        Seen {
            sha256: crate::sha256_hex(t.token.as_bytes()),
            revision: t.revision,
            expires_at_ms: t.expires_at_ms,
        }
    }

    fn is(&self, s: &TenantSummary) -> bool {
        self.revision == s.revision && self.expires_at_ms == s.expires_at_ms
    }
}

/// What `list` says of the tenant, kept for the revision it was read at (every refresh and
/// put changes the revision, so this is read once per token, not once per `load`).
#[derive(Debug, Clone)]
struct TenantInfo {
    revision: u64,
    client_id: String,
    refreshable: bool,
    scope: Option<String>,
}

/// How rmcp's own authorization-code exchange authenticated: what `save` stores with the
/// tokens it returned, so that credlock refreshes them the same way.
struct Exchange {
    token_endpoint: String,
    client_id: Option<String>,
    client_secret: Option<Zeroizing<String>>,
    client_auth: &'static str,
    /// The RFC 8707 resource rmcp named (its MCP server), which every refresh must name too.
    resource: Option<String>,
}

#[derive(Default)]
struct State {
    /// The last token each caller was given (by `load` or a refresh answer), with the
    /// sequence number that orders them for forgetting.
    handed: HashMap<Caller, (Seen, u64)>,
    sequence: u64,
    /// The last token anyone was given: what `clear` hides.
    latest: Option<Seen>,
    /// Hidden by `clear` until the store holds anything else.
    hidden: Option<Seen>,
    tenant: Option<TenantInfo>,
    exchange: Option<Exchange>,
}

impl State {
    /// Record that `caller` was given `seen`; returns what it was given before.
    fn hand(&mut self, caller: Caller, seen: &Seen) -> Option<Seen> {
        self.sequence += 1;
        let before = self
            .handed
            .insert(caller, (seen.clone(), self.sequence))
            .map(|(s, _)| s);
        if self.handed.len() > MAX_CALLERS {
            let oldest = self
                .handed
                .iter()
                .min_by_key(|(_, (_, n))| *n)
                .map(|(c, _)| *c);
            if let Some(c) = oldest {
                self.handed.remove(&c);
            }
        }
        self.latest = Some(seen.clone());
        before
    }
}

struct Shared {
    store: Arc<Store>,
    tenant: String,
    min_valid_ms: u64,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state whole; a panic elsewhere cannot tear it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn summary(&self) -> Result<Option<TenantSummary>, crate::Error> {
        Ok(self
            .store
            .list()?
            .into_iter()
            .find(|s| s.tenant == self.tenant))
    }

    /// The tenant's client and whether credlock can refresh it, for the revision of `t`.
    fn info(&self, t: &AccessToken) -> Result<TenantInfo, crate::Error> {
        if let Some(info) = &self.state().tenant {
            if info.revision == t.revision {
                return Ok(info.clone());
            }
        }
        let info = match self.summary()? {
            Some(s) => TenantInfo {
                revision: s.revision,
                client_id: s.client_id.clone().unwrap_or_default(),
                refreshable: s.has_refresh_token && s.token_endpoint.is_some(),
                scope: s.scope,
            },
            // Deleted since the token was read: nothing to refresh, and the next call says so.
            None => TenantInfo {
                revision: t.revision,
                client_id: String::new(),
                refreshable: false,
                scope: None,
            },
        };
        self.state().tenant = Some(info.clone());
        Ok(info)
    }

    /// rmcp's `load`: `None` when rmcp must authorize.
    fn load(&self, caller: Caller) -> Result<Option<StoredCredentials>, crate::Error> {
        let hidden = self.state().hidden.clone();
        if let Some(hidden) = hidden {
            // Read the summary, not the token: reading the token could refresh the very
            // credentials rmcp cleared.
            match self.summary()? {
                Some(s) if hidden.is(&s) => return Ok(None),
                None => return Ok(None),
                Some(_) => self.state().hidden = None,
            }
        }
        let t = match self.store.token(&self.tenant, self.min_valid_ms) {
            Ok(t) => t,
            Err(e) if needs_authorization(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let info = self.info(&t)?;
        let seen = Seen::of(&t);
        // The handle names what this caller held before: after a 401 that is the refused
        // token, even when another process has replaced it since (its refresh then costs
        // nothing). A first load names its own token.
        let named = self.state().hand(caller, &seen).unwrap_or(seen);
        let response = token_response(&t, &info, &named, &self.tenant)?;
        let granted = info
            .scope
            .as_deref()
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        Ok(Some(StoredCredentials::new(
            info.client_id,
            Some(response),
            granted,
            Some(now_ms() / 1000),
        )))
    }

    /// Answer rmcp's refresh that presented `handle`: the body of the token endpoint's reply.
    fn refresh(&self, caller: Caller, handle: &Handle) -> Result<Reply, crate::Error> {
        let t = match self.store.refresh(&self.tenant, Some(&handle.sha256)) {
            // Another process replaced the refused token already: make sure its replacement
            // serves as long as `load` would promise.
            Ok(t) if !t.refreshed => self.store.token(&self.tenant, self.min_valid_ms),
            other => other,
        };
        let t = match t {
            Ok(t) => t,
            Err(e) if needs_authorization(&e) => return Ok(Reply::InvalidGrant(e)),
            Err(e) => return Err(e),
        };
        let info = self.info(&t)?;
        let seen = Seen::of(&t);
        self.state().hand(caller, &seen);
        let body = token_json(&t, &info, &seen, &self.tenant);
        Ok(Reply::Token(body))
    }

    /// rmcp's `save` of tokens it obtained itself.
    fn save(&self, credentials: &StoredCredentials) -> Result<(), AdapterError> {
        let Some(response) = &credentials.token_response else {
            // rmcp saves a bare client id only when it discards tokens of another
            // authorization server, which cannot happen here (`load` names no issuer).
            return Ok(());
        };
        let mut doc = match serde_json::to_value(response) {
            Ok(Value::Object(m)) => m,
            // A token response always serialises to an object.
            _ => unreachable!("rmcp's token response serialises to a JSON object"),
        };
        if doc
            .get("refresh_token")
            .and_then(Value::as_str)
            .is_some_and(|r| r.starts_with(HANDLE_PREFIX))
        {
            // The answer to a refresh this adapter gave: credlock stored it already.
            return Ok(());
        }
        // Dated from when rmcp received it, not from now.
        if let (Some(expires_in), Some(received_s)) = (
            doc.get("expires_in").and_then(Value::as_u64),
            credentials.token_received_at,
        ) {
            doc.remove("expires_in");
            doc.insert("expires_at".into(), (received_s + expires_in).into());
        }
        if !doc.contains_key("scope") && !credentials.granted_scopes.is_empty() {
            doc.insert("scope".into(), credentials.granted_scopes.join(" ").into());
        }
        if doc.contains_key("refresh_token") {
            let state = self.state();
            let Some(x) = &state.exchange else {
                return Err(AdapterError::UnknownTokenEndpoint);
            };
            doc.insert("token_endpoint".into(), x.token_endpoint.clone().into());
            let client_id = x.client_id.clone().unwrap_or(credentials.client_id.clone());
            doc.insert("client_id".into(), client_id.into());
            if let Some(secret) = &x.client_secret {
                doc.insert("client_secret".into(), secret.as_str().into());
            }
            doc.insert("client_auth".into(), x.client_auth.into());
            if let Some(resource) = &x.resource {
                doc.insert("refresh_resource".into(), resource.clone().into());
            }
        }
        let doc = Zeroizing::new(Value::Object(doc).to_string());
        self.store.put(&self.tenant, &doc)?;
        Ok(())
    }

    /// rmcp's `clear`: hide what rmcp last saw, delete nothing.
    fn clear(&self) {
        let mut state = self.state();
        state.hidden = state.latest.clone();
    }
}

/// What the adapter answers in place of the token endpoint.
enum Reply {
    Token(Value),
    /// credlock cannot refresh: rmcp must authorize again.
    InvalidGrant(crate::Error),
}

/// A refresh handle: what rmcp stores and presents as its refresh token,
/// `credlock-rmcp.v1.<sha256 hex of the access token>.<tenant>`. No secret is in it.
#[derive(Debug, PartialEq, Eq)]
struct Handle {
    /// SHA-256 (hex) of the access token it names.
    sha256: String,
    tenant: String,
}

impl Handle {
    fn encode(seen: &Seen, tenant: &str) -> String {
        format!("{HANDLE_PREFIX}{}.{tenant}", seen.sha256)
    }

    /// `None` unless it starts like a handle; `Some(Err)` when it does but cannot be read.
    fn parse(s: &str) -> Option<Result<Handle, AdapterError>> {
        let rest = s.strip_prefix(HANDLE_PREFIX)?;
        let read = || {
            let sha = rest.get(..64)?;
            let tenant = rest.get(64..)?.strip_prefix('.')?;
            (sha.bytes().all(|b| b.is_ascii_hexdigit()) && !tenant.is_empty()).then(|| Handle {
                sha256: sha.to_owned(),
                tenant: tenant.to_owned(),
            })
        };
        Some(read().ok_or(AdapterError::MalformedHandle))
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        // Any machine this runs on has a clock after 1970.
        .unwrap_or_default()
        .as_millis() as u64
}

/// The token response rmcp reads for `t`: a handle naming `named` where a refresh token
/// would be, when credlock can refresh the tenant.
fn token_json(t: &AccessToken, info: &TenantInfo, named: &Seen, tenant: &str) -> Value {
    let mut m = Map::new();
    m.insert("access_token".into(), t.token.clone().into());
    // rmcp writes the header's scheme itself; the type only has to parse.
    m.insert("token_type".into(), "Bearer".into());
    if let Some(at) = t.expires_at_ms {
        let left_s = at.saturating_sub(now_ms()).div_ceil(1000);
        m.insert(
            "expires_in".into(),
            left_s.max(MIN_REPORTED_EXPIRES_IN_S).into(),
        );
    }
    if info.refreshable {
        m.insert("refresh_token".into(), Handle::encode(named, tenant).into());
    }
    if let Some(scope) = &info.scope {
        m.insert("scope".into(), scope.clone().into());
    }
    Value::Object(m)
}

fn token_response(
    t: &AccessToken,
    info: &TenantInfo,
    named: &Seen,
    tenant: &str,
) -> Result<OAuthTokenResponse, crate::Error> {
    serde_json::from_value(token_json(t, info, named, tenant)).map_err(|e| {
        crate::Error::Runtime(anyhow::anyhow!(
            "rmcp did not accept a token response credlock built: {e}"
        ))
    })
}

/// Run a store call on tokio's blocking pool: it may wait for a lock or a token endpoint,
/// and rmcp's futures must not block the runtime meanwhile.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, AdapterError> + Send + 'static,
) -> Result<R, AdapterError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AdapterError::Blocking(e.to_string()))?
}

/// One tenant of a credlock store as rmcp's [`CredentialStore`]. Cheap to clone; clones
/// share what they remember of the tokens they handed out. Use it with the
/// [`CredlockOAuthHttpClient`] made by [`CredlockCredentialStore::http_client`].
#[derive(Clone)]
pub struct CredlockCredentialStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for CredlockCredentialStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredlockCredentialStore")
            .field("tenant", &self.shared.tenant)
            .finish_non_exhaustive()
    }
}

impl CredlockCredentialStore {
    /// `tenant` of `store`. The tenant name is checked at the first call.
    pub fn new(store: Arc<Store>, tenant: impl Into<String>) -> Self {
        Self::with_min_valid_ms(store, tenant, DEFAULT_MIN_VALID_MS)
    }

    /// As [`CredlockCredentialStore::new`], with tokens valid at least `min_valid_ms` when
    /// handed out (capped by credlock at half the token's lifetime).
    pub fn with_min_valid_ms(
        store: Arc<Store>,
        tenant: impl Into<String>,
        min_valid_ms: u64,
    ) -> Self {
        CredlockCredentialStore {
            shared: Arc::new(Shared {
                store,
                tenant: tenant.into(),
                min_valid_ms,
                state: Mutex::new(State::default()),
            }),
        }
    }

    pub fn tenant(&self) -> &str {
        &self.shared.tenant
    }

    /// The HTTP client to build the [`AuthorizationManager`] with: `inner` carries every
    /// request except the refreshes this store's handles ask for.
    pub fn http_client(&self, inner: Arc<dyn OAuthHttpClient>) -> CredlockOAuthHttpClient {
        CredlockOAuthHttpClient::new(self.clone(), inner)
    }
}

#[async_trait::async_trait]
impl CredentialStore for CredlockCredentialStore {
    async fn load(&self) -> Result<Option<StoredCredentials>, AuthError> {
        let (shared, caller) = (Arc::clone(&self.shared), caller());
        Ok(blocking(move || Ok(shared.load(caller)?)).await?)
    }

    async fn save(&self, credentials: StoredCredentials) -> Result<(), AuthError> {
        let shared = Arc::clone(&self.shared);
        Ok(blocking(move || shared.save(&credentials)).await?)
    }

    /// Hides the tokens rmcp last saw from this adapter until the store holds newer ones;
    /// deletes nothing (`Store::delete` or `logout` do, where that is meant).
    async fn clear(&self) -> Result<(), AuthError> {
        self.shared.clear();
        Ok(())
    }

    /// credlock recorded the rejection itself, under its refresh lock and only for the
    /// tokens it still held (a refresh answered with `invalid_grant` marks the tenant for a
    /// new login; newer tokens from any process replace that mark): nothing to change here,
    /// and never credentials newer than `credentials`.
    async fn on_refresh_token_rejected(
        &self,
        credentials: &StoredCredentials,
    ) -> Result<(), AuthError> {
        let ours = credentials
            .token_response
            .as_ref()
            .and_then(|r| serde_json::to_value(r).ok())
            .and_then(|v| v.get("refresh_token")?.as_str().and_then(Handle::parse))
            .is_some_and(|h| h.is_ok_and(|h| h.tenant == self.shared.tenant));
        if ours {
            Ok(())
        } else {
            Err(AdapterError::ForeignRefreshToken.into())
        }
    }

    /// None: see the module documentation (credlock's refresh lock covers the refresh).
    async fn acquire_refresh_guard(&self) -> Result<Option<CredentialRefreshGuard>, AuthError> {
        Ok(None)
    }
}

/// rmcp's [`OAuthHttpClient`] with the adapter's refreshes answered by credlock.
#[derive(Clone)]
pub struct CredlockOAuthHttpClient {
    store: CredlockCredentialStore,
    inner: Arc<dyn OAuthHttpClient>,
}

impl std::fmt::Debug for CredlockOAuthHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredlockOAuthHttpClient")
            .field("tenant", &self.store.shared.tenant)
            .finish_non_exhaustive()
    }
}

/// What an OAuth request rmcp sends asks for.
enum Request {
    /// A refresh presenting one of the adapter's handles (or something that starts like
    /// one: never sent, whatever it is).
    Refresh(Result<Handle, AdapterError>),
    /// The authorization-code exchange: forwarded, and its client authentication kept.
    CodeExchange(Exchange),
    /// Anything else, a refresh token that is not a handle included: forwarded untouched.
    Other,
}

fn form(body: &[u8]) -> HashMap<String, Zeroizing<String>> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), Zeroizing::new(v.into_owned())))
        .collect()
}

/// `Authorization: Basic` as RFC 6749 2.3.1 writes it (each part form-urlencoded).
fn basic_credentials(request: &http::Request<Vec<u8>>) -> Option<(String, Zeroizing<String>)> {
    let value = request
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = Zeroizing::new(base64_decode(encoded.trim())?);
    let text = std::str::from_utf8(&decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| -> String {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), Zeroizing::new(unescape(secret))))
}

/// Standard base64 (with padding), for the one header above.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

fn classify(request: &http::Request<Vec<u8>>) -> Request {
    if request.method() != http::Method::POST {
        return Request::Other;
    }
    let params = form(request.body());
    match params.get("grant_type").map(|g| g.as_str()) {
        Some("refresh_token") => match params.get("refresh_token").and_then(|r| Handle::parse(r)) {
            Some(h) => Request::Refresh(h),
            None => Request::Other,
        },
        Some("authorization_code") => {
            let (client_id, client_secret, client_auth) = match basic_credentials(request) {
                Some((id, secret)) => (Some(id), Some(secret), "basic"),
                None => match params.get("client_secret") {
                    Some(secret) => (
                        params.get("client_id").map(|c| c.to_string()),
                        Some(secret.clone()),
                        "post",
                    ),
                    None => (params.get("client_id").map(|c| c.to_string()), None, "none"),
                },
            };
            Request::CodeExchange(Exchange {
                token_endpoint: request.uri().to_string(),
                client_id,
                client_secret,
                client_auth,
                resource: params.get("resource").map(|r| r.to_string()),
            })
        }
        _ => Request::Other,
    }
}

fn json_reply(status: http::StatusCode, body: &Value) -> http::Response<Vec<u8>> {
    let mut r = http::Response::new(body.to_string().into_bytes());
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

fn error_description(e: &crate::Error) -> String {
    format!("{e} (what to do: {})", e.report().recommendation)
}

impl CredlockOAuthHttpClient {
    /// `store`'s refreshes answered by credlock; everything else sent through `inner`.
    pub fn new(store: CredlockCredentialStore, inner: Arc<dyn OAuthHttpClient>) -> Self {
        CredlockOAuthHttpClient { store, inner }
    }

    async fn answer_refresh(
        &self,
        handle: Handle,
    ) -> Result<http::Response<Vec<u8>>, AdapterError> {
        let (shared, caller) = (Arc::clone(&self.store.shared), caller());
        let reply = blocking(move || Ok(shared.refresh(caller, &handle)?)).await;
        Ok(match reply {
            Ok(Reply::Token(body)) => json_reply(http::StatusCode::OK, &body),
            // rmcp reads invalid_grant as a definitive rejection: it asks for a new login.
            Ok(Reply::InvalidGrant(e)) => json_reply(
                http::StatusCode::BAD_REQUEST,
                &json!({"error": "invalid_grant", "error_description": error_description(&e)}),
            ),
            // Anything else may pass (a lock, the network, the server): rmcp reports a
            // refresh failure the caller may retry, with credlock's message and advice.
            Err(e) => json_reply(
                http::StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": "temporarily_unavailable", "error_description": format!("{e} (what to do: {})", e.recommendation())}),
            ),
        })
    }
}

impl OAuthHttpClient for CredlockOAuthHttpClient {
    fn execute(&self, request: OAuthHttpRequest) -> OAuthHttpClientFuture<'_> {
        match classify(&request.request) {
            Request::Refresh(Ok(handle)) if handle.tenant == self.store.shared.tenant => {
                Box::pin(async move {
                    self.answer_refresh(handle)
                        .await
                        .map_err(|e| Box::new(e) as rmcp::transport::auth::OAuthHttpClientError)
                })
            }
            // Not this tenant's, or unreadable: refused here, with what to do. Not as
            // invalid_grant, which would ask for a new login that cannot cure it.
            Request::Refresh(refused) => {
                let e = match refused {
                    Ok(h) => AdapterError::ForeignHandle { tenant: h.tenant },
                    Err(e) => e,
                };
                let reply = json_reply(
                    http::StatusCode::BAD_REQUEST,
                    &json!({"error": "invalid_request", "error_description": format!("{e} (what to do: {})", e.recommendation())}),
                );
                Box::pin(async move { Ok(reply) })
            }
            Request::CodeExchange(exchange) => {
                self.store.shared.state().exchange = Some(exchange);
                self.inner.execute(request)
            }
            Request::Other => self.inner.execute(request),
        }
    }
}

/// An [`AuthorizationManager`] for `base_url` whose credentials are `tenant` of `store`:
/// rmcp's default HTTP client wrapped in [`CredlockOAuthHttpClient`], and
/// [`CredlockCredentialStore`] as its credential store. Call
/// [`AuthorizationManager::initialize_from_store`] next, as with any credential store.
pub async fn authorization_manager(
    store: Arc<Store>,
    tenant: &str,
    base_url: &str,
) -> Result<AuthorizationManager, AuthError> {
    let credentials = CredlockCredentialStore::new(store, tenant);
    let http = credentials.http_client(Arc::new(default_oauth_http_client()?));
    let mut manager =
        AuthorizationManager::new_with_oauth_http_client(base_url, Arc::new(http)).await?;
    manager.set_credential_store(credentials);
    Ok(manager)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_round_trips_and_nothing_else_parses_as_one() {
        let seen = Seen {
            sha256: crate::sha256_hex(b"at"),
            revision: 3,
            expires_at_ms: Some(5),
        };
        let h = Handle::parse(&Handle::encode(&seen, "acme.prod"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.sha256, h.tenant.as_str()),
            (seen.sha256.clone(), "acme.prod")
        );
        assert!(Handle::parse("a-real-refresh-token").is_none());
        // Starts like one: read as a damaged handle, so it is refused and never sent.
        for damaged in ["abc", &format!("{}.", seen.sha256), &seen.sha256] {
            assert!(matches!(
                Handle::parse(&format!("{HANDLE_PREFIX}{damaged}")),
                Some(Err(AdapterError::MalformedHandle))
            ));
        }
    }

    #[test]
    fn basic_credentials_are_decoded_and_unescaped() {
        // RFC 6749 2.3.1: "my client" / "s3cr:t" form-urlencoded, then base64.
        let r = http::Request::builder()
            .method("POST")
            .uri("http://127.0.0.1/token")
            .header("authorization", "Basic bXkrY2xpZW50OnMzY3IlM0F0")
            .body(b"grant_type=authorization_code&code=c".to_vec())
            .unwrap();
        let Request::CodeExchange(x) = classify(&r) else {
            panic!("not read as a code exchange");
        };
        assert_eq!(x.client_id.as_deref(), Some("my client"));
        assert_eq!(
            x.client_secret.as_deref().map(|s| s.as_str()),
            Some("s3cr:t")
        );
        assert_eq!(x.client_auth, "basic");
        assert_eq!(x.token_endpoint, "http://127.0.0.1/token");
    }

    #[test]
    fn a_refresh_with_a_real_refresh_token_is_forwarded() {
        let r = http::Request::builder()
            .method("POST")
            .uri("http://127.0.0.1/token")
            .body(b"grant_type=refresh_token&refresh_token=rt".to_vec())
            .unwrap();
        assert!(matches!(classify(&r), Request::Other));
    }
}
