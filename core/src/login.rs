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

/// A completed login: the tenant's tokens as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutReport {
    pub revocation: Revocation,
    /// The tenant was deleted locally.
    pub deleted: bool,
}

/// A pending login as `list` and `doctor` show it: never a code or verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSummary {
    pub tenant: String,
    pub kind: String,
    pub started_at_ms: u64,
    pub expires_at_ms: u64,
    /// False for an entry written by a newer credlock: kept, never joined.
    pub understood: bool,
}

// ----- the wire: pure functions -----

/// The endpoints a login uses, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Endpoints {
    pub authorization: Option<String>,
    pub token: String,
    pub device_authorization: Option<String>,
    pub revocation: Option<String>,
    /// `code_challenge_methods_supported`, if the metadata lists it.
    pub code_challenge_methods: Option<Vec<String>>,
    /// The issuer an authorization response must name (RFC 9207): the metadata's `issuer`,
    /// else the one the login was given; `None` when neither is known.
    pub issuer: Option<String>,
    /// `authorization_response_iss_parameter_supported`: the server promises `iss` in every
    /// authorization response, so a callback without one is refused.
    pub iss_parameter_supported: bool,
}

/// Where to look for the metadata of `issuer`: RFC 8414 §3.1 first (the well-known suffix
/// goes between host and path), then OpenID Connect Discovery §4 (appended to the issuer).
pub fn discovery_urls(issuer: &str) -> Result<Vec<String>, LoginError> {
    let rest = issuer
        .strip_prefix("https://")
        .map(|r| ("https://", r))
        .or_else(|| issuer.strip_prefix("http://").map(|r| ("http://", r)));
    let Some((scheme, rest)) = rest else {
        return Err(LoginError::Metadata(
            "the issuer is not an http(s) URL".into(),
        ));
    };
    if rest.contains(['?', '#']) {
        return Err(LoginError::Metadata(
            "the issuer has a query or fragment (RFC 8414 §2)".into(),
        ));
    }
    check_endpoint("issuer", issuer)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    Ok(vec![
        format!("{scheme}{authority}/.well-known/oauth-authorization-server{path}"),
        format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ),
    ])
}

/// The host of an http(s) URL (without port or brackets), or `None` if it has none.
fn url_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        &v6[..v6.find(']')?]
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") || host == "::1" {
        return true;
    }
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4 && parts[0] == "127" && parts.iter().all(|p| p.parse::<u8>().is_ok())
}

/// An endpoint must be `https`, or `http` to a loopback address (a local test server, RFC
/// 8252 §8.3): a code, verifier or token must never cross a network in clear text.
pub fn check_endpoint(which: &str, url: &str) -> Result<(), LoginError> {
    if url.len() > MAX_FIELD_LEN || url.chars().any(|c| c.is_control() || c == ' ') {
        return Err(LoginError::Metadata(format!("the {which} is not a URL")));
    }
    let Some(host) = url_host(url) else {
        return Err(LoginError::Metadata(format!(
            "the {which} is not an http(s) URL with a host"
        )));
    };
    if url.starts_with("http://") && !is_loopback_host(host) {
        return Err(LoginError::InsecureEndpoint(which.to_owned()));
    }
    Ok(())
}

fn metadata_url(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, LoginError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            check_endpoint(field, s)?;
            Ok(Some(s.clone()))
        }
        Some(_) => Err(LoginError::Metadata(format!("`{field}` is not a string"))),
    }
}

/// Parse an authorization server's metadata (RFC 8414 §2) and check that it is `issuer`'s
/// (§3.3: the `issuer` value must be identical to the one asked for).
pub fn parse_metadata(json: &[u8], issuer: &str) -> Result<Endpoints, LoginError> {
    let value: Value = serde_json::from_slice(json).map_err(|e| {
        LoginError::Metadata(format!(
            "the metadata is not valid JSON ({})",
            crate::oauth::json_error(&e)
        ))
    })?;
    let Value::Object(obj) = value else {
        return Err(LoginError::Metadata(
            "the metadata is not a JSON object".into(),
        ));
    };
    let metadata_issuer = match obj.get("issuer") {
        Some(Value::String(s)) if s.trim_end_matches('/') == issuer.trim_end_matches('/') => {
            s.clone()
        }
        Some(Value::String(_)) => {
            return Err(LoginError::Metadata(
                "the metadata names another issuer (RFC 8414 §3.3)".into(),
            ))
        }
        _ => return Err(LoginError::Metadata("`issuer` is missing".into())),
    };
    let token = metadata_url(&obj, "token_endpoint")?
        .ok_or_else(|| LoginError::Metadata("`token_endpoint` is missing".into()))?;
    let code_challenge_methods = match obj.get("code_challenge_methods_supported") {
        Some(Value::Array(a)) => Some(
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    };
    Ok(Endpoints {
        authorization: metadata_url(&obj, "authorization_endpoint")?,
        token,
        device_authorization: metadata_url(&obj, "device_authorization_endpoint")?,
        revocation: metadata_url(&obj, "revocation_endpoint")?,
        code_challenge_methods,
        issuer: Some(metadata_issuer),
        iss_parameter_supported: obj.get("authorization_response_iss_parameter_supported")
            == Some(&Value::Bool(true)),
    })
}

/// What the browser callback must say about its issuer (RFC 9207 §2.4), from the metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseIssuer {
    /// The issuer identifier `iss` must equal, if known.
    pub issuer: Option<String>,
    /// The server promises `iss` (`authorization_response_iss_parameter_supported`).
    pub required: bool,
}

impl ResponseIssuer {
    /// Check the callback's query: an `iss` must be the login's issuer (a simple string
    /// comparison, ignoring only a trailing slash as discovery does), and a server that
    /// promises `iss` must send it. Otherwise the response may come from another server the
    /// user also uses (a mix-up attack), and its code is not exchanged.
    pub fn check(&self, query: &str) -> Result<(), LoginError> {
        let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
        match (query_param(query, "iss"), &self.issuer) {
            (Some(iss), Some(expected)) if !same(&iss, expected) => {
                Err(LoginError::IssuerMismatch(format!(
                    "it names the issuer {:?}, not {expected:?}",
                    iss.chars()
                        .filter(|c| !c.is_control())
                        .take(200)
                        .collect::<String>()
                )))
            }
            (None, _) if self.required => Err(LoginError::IssuerMismatch(
                "it carries no `iss`, which the server's metadata promises (authorization_response_iss_parameter_supported)".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// An RFC 8628 §3.2 device authorization response.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in_ms: u64,
    pub interval_ms: u64,
}

impl std::fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in_ms", &self.expires_in_ms)
            .field("interval_ms", &self.interval_ms)
            .finish_non_exhaustive()
    }
}

fn malformed(why: String) -> StoreError {
    StoreError::Endpoint(EndpointError::MalformedReply(why))
}

/// A failed request of a login, told apart from a refresh's (whose advice is about a refresh
/// token that may have been spent): `endpoint` names what was asked.
fn login_failed(endpoint: &str, error: EndpointError) -> StoreError {
    StoreError::Login(LoginError::Endpoint {
        endpoint: endpoint.to_owned(),
        error,
    })
}

/// [`login_failed`] for an endpoint error among others (a reply's own checks).
fn in_login(endpoint: &str, e: StoreError) -> StoreError {
    match e {
        StoreError::Endpoint(error) => login_failed(endpoint, error),
        other => other,
    }
}

/// Interpret the device authorization endpoint's reply.
pub fn parse_device_authorization(reply: &HttpReply) -> Result<DeviceAuthorization, StoreError> {
    if !(200..300).contains(&reply.status) {
        return Err(match classify_reply(reply.status, &reply.body, 0) {
            EndpointReply::OAuthError {
                status,
                error,
                description,
            } => StoreError::Endpoint(EndpointError::OAuth {
                status,
                error,
                description,
            }),
            _ => StoreError::Endpoint(EndpointError::Server(reply.status)),
        });
    }
    let value: Value = serde_json::from_slice(&reply.body).map_err(|e| {
        malformed(format!(
            "the device authorization reply is not valid JSON ({})",
            crate::oauth::json_error(&e)
        ))
    })?;
    let Value::Object(obj) = value else {
        return Err(malformed(
            "the device authorization reply is not a JSON object".into(),
        ));
    };
    let string = |name: &str| -> Result<Option<String>, StoreError> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s))
                if !s.is_empty()
                    && s.len() <= MAX_FIELD_LEN
                    && !s.chars().any(|c| c.is_control()) =>
            {
                Ok(Some(s.clone()))
            }
            Some(_) => Err(malformed(format!(
                "`{name}` of the device authorization reply is not a usable string"
            ))),
        }
    };
    let required = |name: &str| -> Result<String, StoreError> {
        string(name)?.ok_or_else(|| {
            malformed(format!(
                "`{name}` is missing from the device authorization reply"
            ))
        })
    };
    let device_code = required("device_code")?;
    let user_code = required("user_code")?;
    if user_code.len() > 64 {
        return Err(malformed("`user_code` is too long to type".into()));
    }
    let verification_uri = required("verification_uri")?;
    check_endpoint("verification_uri", &verification_uri).map_err(StoreError::Login)?;
    let verification_uri_complete = string("verification_uri_complete")?;
    if let Some(u) = &verification_uri_complete {
        check_endpoint("verification_uri_complete", u).map_err(StoreError::Login)?;
    }
    let seconds = |name: &str| -> Result<Option<u64>, StoreError> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
            Some(_) => Err(malformed(format!(
                "`{name}` of the device authorization reply is not a whole number of seconds"
            ))),
        }
    };
    let expires_in = seconds("expires_in")?.ok_or_else(|| {
        malformed("`expires_in` is missing from the device authorization reply".into())
    })?;
    let interval_ms = seconds("interval")?
        .map_or(DEFAULT_INTERVAL_MS, |s| s.saturating_mul(1000))
        .clamp(1000, MAX_INTERVAL_MS);
    Ok(DeviceAuthorization {
        device_code,
        user_code,
        verification_uri,
        verification_uri_complete,
        expires_in_ms: expires_in.saturating_mul(1000).min(MAX_LOGIN_MS),
        interval_ms,
    })
}

/// What one poll of the token endpoint (RFC 8628 §3.5) means for the flow.
#[derive(Debug, Clone, PartialEq)]
pub enum PollReply {
    Granted(TokenGrant),
    /// `authorization_pending`: poll again after the interval.
    Pending,
    /// `slow_down`: poll again after the interval plus [`SLOW_DOWN_MS`].
    SlowDown,
    Denied,
    Expired,
    /// Worth another poll (a 5xx or a connection that did not happen); the code still works.
    Transient(EndpointError),
    /// The flow is over (an unusable grant, another OAuth error).
    Failed(EndpointError),
}

/// The token type credlock stores from a login: RFC 6750 bearer tokens only (a DPoP or MAC
/// token presented as a bearer would be refused by every resource server).
fn check_bearer(g: &TokenGrant) -> Result<(), EndpointError> {
    if g.token_type.eq_ignore_ascii_case("bearer") {
        Ok(())
    } else {
        Err(EndpointError::MalformedReply(format!(
            "`token_type` is {:?}, not Bearer",
            g.token_type.chars().take(32).collect::<String>()
        )))
    }
}

/// Classify a token endpoint reply during a login (device poll or code exchange).
pub fn classify_poll(reply: &HttpReply, now_ms: u64) -> PollReply {
    match classify_reply(reply.status, &reply.body, now_ms) {
        EndpointReply::Granted(g) => match check_bearer(&g) {
            Ok(()) => PollReply::Granted(g),
            Err(e) => PollReply::Failed(e),
        },
        EndpointReply::OAuthError { error, .. } if error == "authorization_pending" => {
            PollReply::Pending
        }
        EndpointReply::OAuthError { error, .. } if error == "slow_down" => PollReply::SlowDown,
        EndpointReply::OAuthError { error, .. } if error == "access_denied" => PollReply::Denied,
        EndpointReply::OAuthError { error, .. } if error == "expired_token" => PollReply::Expired,
        EndpointReply::OAuthError {
            status,
            error,
            description,
        } => PollReply::Failed(EndpointError::OAuth {
            status,
            error,
            description,
        }),
        EndpointReply::ServerError(s) if s >= 500 => PollReply::Transient(EndpointError::Server(s)),
        EndpointReply::ServerError(s) => PollReply::Failed(EndpointError::Server(s)),
        EndpointReply::Malformed(why) => PollReply::Failed(EndpointError::MalformedReply(why)),
    }
}

/// The device flow's polling schedule: the interval, grown by `slow_down`, never past the
/// code's expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSchedule {
    pub interval_ms: u64,
    pub expires_at_ms: u64,
}

impl PollSchedule {
    /// How long to wait before the next poll at `now_ms`, or `None` if that poll would come
    /// after the code's expiry (RFC 8628 §3.5: stop polling then).
    pub fn next_wait_ms(&self, now_ms: u64) -> Option<u64> {
        (now_ms.saturating_add(self.interval_ms) < self.expires_at_ms).then_some(self.interval_ms)
    }

    pub fn slow_down(&mut self) {
        self.interval_ms = (self.interval_ms + SLOW_DOWN_MS).min(MAX_INTERVAL_MS);
    }
}

/// RFC 4648 §5 base64url without padding (RFC 7636 §3).
pub fn base64url(data: &[u8]) -> String {
    base64(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// RFC 7636 §4.2 `S256`: `BASE64URL(SHA256(ASCII(code_verifier)))`.
pub fn pkce_challenge(verifier: &str) -> String {
    use sha2::Digest;
    base64url(&sha2::Sha256::digest(verifier.as_bytes()))
}

/// A form body with the client's authentication (RFC 6749 §2.3.1): `params` (empty values
/// left out), then the client id (and secret, for `post`), or a Basic header.
pub fn client_form(
    params: &[(&str, Option<&str>)],
    client_id: &str,
    auth: &ClientAuth,
) -> (String, Option<String>) {
    let mut body = String::new();
    for (k, v) in params {
        if let Some(v) = v {
            if !body.is_empty() {
                body.push('&');
            }
            body.push_str(k);
            body.push('=');
            body.push_str(&form_encode(v));
        }
    }
    let mut push = |k: &str, v: &str| {
        if !body.is_empty() {
            body.push('&');
        }
        body.push_str(k);
        body.push('=');
        body.push_str(&form_encode(v));
    };
    let authorization = match auth {
        ClientAuth::None => {
            push("client_id", client_id);
            None
        }
        ClientAuth::Post { secret } => {
            push("client_id", client_id);
            push("client_secret", secret);
            None
        }
        ClientAuth::Basic { secret } => {
            let pair = format!("{}:{}", form_encode(client_id), form_encode(secret));
            Some(format!("Basic {}", base64(pair.as_bytes())))
        }
    };
    (body, authorization)
}

/// Whether `scope` asks for `offline_access` (OpenID Connect Core §11: a refresh token).
/// Such an authorization request must carry `prompt=consent`, or an OpenID provider drops
/// the scope and issues no refresh token.
pub fn asks_offline_access(scope: Option<&str>) -> bool {
    scope.is_some_and(|s| s.split(' ').any(|v| v == "offline_access"))
}

/// The value of `name` in a query string (`application/x-www-form-urlencoded`), decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(k)? == name).then(|| form_decode(v)).flatten()
    })
}

fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let h = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn prompt(p: &PendingLogin, joined: bool) -> LoginPrompt {
    LoginPrompt {
        kind: p.kind.clone(),
        url: p.url.clone(),
        user_code: p.user_code.clone(),
        url_complete: p.url_complete.clone(),
        expires_at_ms: p.expires_at_ms,
        joined,
    }
}

/// Proof that this process holds the tenant's refresh lock, which a login holds from before
/// it writes its pending entry until its outcome is committed.
struct LoginLockHeld<G> {
    _guard: G,
}

impl LoginRequest {
    fn validate(&self) -> Result<(), StoreError> {
        let bad = |why: &str| Err(StoreError::InvalidOptions(why.into()));
        if self.client_id.is_empty() || self.client_id.len() > MAX_FIELD_LEN {
            return bad("the client id must be 1 to 4096 characters");
        }
        if self.issuer.is_none() && self.token_endpoint.is_none() {
            return bad("give --issuer, or the endpoints (--token-endpoint and the flow's own)");
        }
        if matches!(&self.client_secret, Some(s) if s.is_empty()) {
            return bad("the client secret is empty");
        }
        Ok(())
    }

    fn client_auth(&self) -> ClientAuth {
        match &self.client_secret {
            Some(secret) => ClientAuth::Basic {
                secret: secret.clone(),
            },
            None => ClientAuth::None,
        }
    }
}

impl<'p, P: LoginPlatform> Store<'p, P> {
    /// Log `tenant` in, or join the login another process runs for it. See the module doc.
    pub fn login(&mut self, tenant: &str, req: &LoginRequest) -> Result<LoginOutcome, StoreError> {
        let tenant = tenant_name(tenant)?;
        req.validate()?;
        let lock_wait_ms = u64::from(
            self.opts
                .refresh_lock_timeout_ms()
                .expect("validated options"),
        );
        let started = self.p.monotonic_ms();
        let mut shown: Option<String> = None;
        let target = LockTarget::Refresh(tenant.id());
        for _ in 0..MAX_LOGIN_STEPS {
            if let Some(p) = self.pending_shared(&tenant)? {
                // Only the process listening for a browser login's callback can finish it:
                // one whose owner is gone is taken over at once, and its URL is never shown.
                if p.kind != "device" {
                    match self.p.acquire(&target, LockMode::Exclusive, 0) {
                        // Its owner holds the refresh lock until its flow ends: a free lock
                        // means the owner died (or has just finished).
                        Ok(guard) => {
                            match self.settle(&tenant, &p, LoginLockHeld { _guard: guard }) {
                                Ok(Joined::Done(outcome)) => return Ok(outcome),
                                // Nothing was shown or joined: a login that ended without
                                // tokens meanwhile is no reason to fail; start our own.
                                Ok(Joined::Again)
                                | Err(StoreError::Login(LoginError::JoinedFailed(_))) => continue,
                                Err(e) => return Err(e),
                            }
                        }
                        Err(LockError::Timeout(_)) => {}
                        Err(LockError::Io(io)) => {
                            return Err(StoreError::Io(crate::platform::FileError::Io(io)))
                        }
                    }
                }
                // A listener that refuses connections cannot take the callback (its owner is
                // past it, or dying): wait for the lock without showing its URL.
                let joinable = p.kind == "device" || self.listener_answers(&p);
                if joinable && shown.as_deref() != Some(p.id.as_str()) {
                    self.p.show(&prompt(&p, true));
                    shown = Some(p.id.clone());
                }
                match self.join(&tenant, &p)? {
                    Joined::Done(outcome) => return Ok(outcome),
                    Joined::Again => continue,
                }
            }
            match self.p.acquire(&target, LockMode::Exclusive, JOIN_CHECK_MS) {
                Ok(guard) => {
                    let lock = LoginLockHeld { _guard: guard };
                    // Another process may have written its pending login just before we got
                    // the lock (it released it since: its flow ended or it died). Look again.
                    if self.pending_shared(&tenant)?.is_some() {
                        continue;
                    }
                    return self.start(&tenant, req, lock);
                }
                Err(LockError::Timeout(_)) => {
                    if self.p.monotonic_ms().saturating_sub(started) > lock_wait_ms {
                        return Err(StoreError::LockTimeout {
                            lock: format!("refresh lock of tenant {tenant}"),
                            waited_ms: u32::try_from(lock_wait_ms).unwrap_or(u32::MAX),
                        });
                    }
                }
                Err(LockError::Io(io)) => {
                    return Err(StoreError::Io(crate::platform::FileError::Io(io)))
                }
            }
        }
        Err(StoreError::LockTimeout {
            lock: format!("refresh lock of tenant {tenant} (logins kept restarting)"),
            waited_ms: 0,
        })
    }

    /// Wait for the login `p` to end (its owner releases the refresh lock, or dies), then
    /// adopt its result or resume it.
    fn join(&mut self, tenant: &TenantName, p: &PendingLogin) -> Result<Joined, StoreError> {
        let now = self.p.wall_ms();
        let wait = p
            .expires_at_ms
            .saturating_sub(now)
            .saturating_add(u64::from(self.opts.lock_timeout_ms));
        let what = format!("refresh lock of tenant {tenant} (held by a login in progress)");
        let guard = self.acquire(
            &LockTarget::Refresh(tenant.id()),
            LockMode::Exclusive,
            u32::try_from(wait).unwrap_or(u32::MAX),
            &what,
        )?;
        self.settle(tenant, p, LoginLockHeld { _guard: guard })
    }

    /// With the refresh lock that the login `p` held, adopt its result or resume it.
    fn settle(
        &mut self,
        tenant: &TenantName,
        p: &PendingLogin,
        lock: LoginLockHeld<P::Guard>,
    ) -> Result<Joined, StoreError> {
        let loaded = self.read_shared(Scope::Tenant(tenant))?;
        let body = loaded.body();
        let now = self.p.wall_ms();
        let current = body.and_then(|b| b.pending_logins.get(tenant.as_str()));
        match current {
            // Its owner died with the flow alive: a device code can be polled by anyone who
            // holds it, so carry on where it stopped.
            Some(q) if q.id == p.id && q.expires_at_ms > now && q.kind == "device" => {
                let q = q.clone();
                drop(loaded);
                self.poll_device(tenant, lock, q, true).map(Joined::Done)
            }
            // A browser login's listener died with its owner: that flow cannot finish.
            Some(q) if q.id == p.id => {
                let id = q.id.clone();
                drop(loaded);
                self.remove_pending(tenant, &id)?;
                Ok(Joined::Again)
            }
            Some(_) => Ok(Joined::Again),
            None => {
                let entry: Option<&Entry> = body.and_then(|b| b.tenants.get(tenant.as_str()));
                match entry {
                    Some(e) if e.revision > p.base_revision => Ok(Joined::Done(LoginOutcome {
                        token: AccessToken::from_entry(e, false),
                        joined: true,
                        refreshable: e.refresh_token.is_some(),
                    })),
                    _ => Err(StoreError::Login(LoginError::JoinedFailed(
                        tenant.to_string(),
                    ))),
                }
            }
        }
    }

    /// This process runs the flow: discover, ask the server, record the pending login.
    fn start(
        &mut self,
        tenant: &TenantName,
        req: &LoginRequest,
        lock: LoginLockHeld<P::Guard>,
    ) -> Result<LoginOutcome, StoreError> {
        let endpoints = self.endpoints(req)?;
        let base_revision = {
            let loaded = self.read_shared(Scope::Tenant(tenant))?;
            loaded
                .body()
                .and_then(|b| b.tenants.get(tenant.as_str()))
                .map_or(0, |e| e.revision)
        };
        let client_auth = req.client_auth();
        let mut id = [0u8; 16];
        self.p.fill_random(&mut id);
        let now = self.p.wall_ms();
        let mut pending = PendingLogin {
            version: PENDING_LOGIN_VERSION,
            kind: String::new(),
            id: hex(&id),
            started_at_ms: now,
            expires_at_ms: 0,
            base_revision,
            url: String::new(),
            user_code: None,
            url_complete: None,
            device_code: None,
            interval_ms: None,
            code_verifier: None,
            state: None,
            redirect_uri: None,
            token_endpoint: endpoints.token.clone(),
            client_id: req.client_id.clone(),
            client_auth: client_auth.clone(),
            scope: req.scope.clone(),
            revocation_endpoint: endpoints.revocation.clone(),
            unknown: Map::new(),
        };
        match req.flow {
            LoginFlow::Device => {
                let url = endpoints.device_authorization.clone().ok_or_else(|| {
                    StoreError::Login(LoginError::Metadata(
                        "the server offers no device_authorization_endpoint (RFC 8628); try --browser".into(),
                    ))
                })?;
                let (body, authorization) = client_form(
                    &[
                        ("scope", req.scope.as_deref()),
                        ("audience", req.audience.as_deref()),
                        ("resource", req.resource.as_deref()),
                    ],
                    &req.client_id,
                    &client_auth,
                );
                let reply = self
                    .p
                    .post(&TokenRequest {
                        url,
                        body,
                        authorization,
                        timeout_ms: self.opts.http_timeout_ms,
                    })
                    .map_err(|t| {
                        login_failed("device_authorization_endpoint", EndpointError::Transport(t))
                    })?;
                let d = parse_device_authorization(&reply)
                    .map_err(|e| in_login("device_authorization_endpoint", e))?;
                pending.kind = "device".into();
                pending.expires_at_ms = now.saturating_add(d.expires_in_ms);
                pending.url = d.verification_uri;
                pending.user_code = Some(d.user_code);
                pending.url_complete = d.verification_uri_complete;
                pending.device_code = Some(d.device_code);
                pending.interval_ms = Some(d.interval_ms);
                self.record_pending(tenant, &pending)?;
                self.p.show(&prompt(&pending, false));
                self.poll_device(tenant, lock, pending, false)
            }
            LoginFlow::Browser { open } => {
                let auth_url = endpoints.authorization.clone().ok_or_else(|| {
                    StoreError::Login(LoginError::Metadata(
                        "the server offers no authorization_endpoint; try --device".into(),
                    ))
                })?;
                if let Some(methods) = &endpoints.code_challenge_methods {
                    if !methods.iter().any(|m| m == "S256") {
                        return Err(StoreError::Login(LoginError::Metadata(
                            "the server does not support PKCE with S256 (RFC 7636)".into(),
                        )));
                    }
                }
                let port = self
                    .p
                    .listen()
                    .map_err(|why| StoreError::Login(LoginError::Callback(why)))?;
                let redirect_uri = format!("http://127.0.0.1:{port}/callback");
                let mut verifier = [0u8; 32];
                self.p.fill_random(&mut verifier);
                let verifier = base64url(&verifier);
                let mut state = [0u8; 16];
                self.p.fill_random(&mut state);
                let state = hex(&state);
                let (query, _) = client_form(
                    &[
                        ("response_type", Some("code")),
                        ("redirect_uri", Some(&redirect_uri)),
                        ("scope", req.scope.as_deref()),
                        (
                            "prompt",
                            asks_offline_access(req.scope.as_deref()).then_some("consent"),
                        ),
                        ("state", Some(&state)),
                        ("code_challenge", Some(&pkce_challenge(&verifier))),
                        ("code_challenge_method", Some("S256")),
                        ("audience", req.audience.as_deref()),
                        ("resource", req.resource.as_deref()),
                    ],
                    &req.client_id,
                    // The authorization request carries the client id only, never a secret.
                    &ClientAuth::None,
                );
                let sep = if auth_url.contains('?') { '&' } else { '?' };
                pending.kind = "browser".into();
                pending.expires_at_ms = now.saturating_add(BROWSER_LOGIN_MS);
                pending.url = format!("{auth_url}{sep}{query}");
                pending.code_verifier = Some(verifier);
                pending.state = Some(state);
                pending.redirect_uri = Some(redirect_uri);
                self.record_pending(tenant, &pending)?;
                self.p.show(&prompt(&pending, false));
                if open {
                    // Where no browser opens, the URL shown above is the way in.
                    let _opened = self.p.open_browser(&pending.url);
                }
                let issuer = ResponseIssuer {
                    issuer: endpoints.issuer.clone(),
                    required: endpoints.iss_parameter_supported,
                };
                self.finish_browser(tenant, lock, pending, &issuer)
            }
        }
    }

    /// The endpoints: explicit ones win; the rest come from discovery.
    fn endpoints(&mut self, req: &LoginRequest) -> Result<Endpoints, StoreError> {
        let explicit = |which: &str, v: &Option<String>| -> Result<Option<String>, StoreError> {
            match v {
                Some(u) => {
                    check_endpoint(which, u).map_err(StoreError::Login)?;
                    Ok(Some(u.clone()))
                }
                None => Ok(None),
            }
        };
        let token = explicit("token_endpoint", &req.token_endpoint)?;
        let device = explicit(
            "device_authorization_endpoint",
            &req.device_authorization_endpoint,
        )?;
        let authorization = explicit("authorization_endpoint", &req.authorization_endpoint)?;
        let revocation = explicit("revocation_endpoint", &req.revocation_endpoint)?;
        let needs_discovery = token.is_none()
            || match req.flow {
                LoginFlow::Device => device.is_none(),
                LoginFlow::Browser { .. } => authorization.is_none(),
            };
        let discovered = match (&req.issuer, needs_discovery) {
            (Some(issuer), true) => Some(self.discover(issuer)?),
            _ => None,
        };
        let d = discovered.unwrap_or_default();
        let token = match token {
            Some(t) => t,
            None if !d.token.is_empty() => d.token,
            None => {
                return Err(StoreError::Login(LoginError::Metadata(
                    "no token endpoint: give --issuer or --token-endpoint".into(),
                )))
            }
        };
        Ok(Endpoints {
            authorization: authorization.or(d.authorization),
            token,
            device_authorization: device.or(d.device_authorization),
            revocation: revocation.or(d.revocation),
            code_challenge_methods: d.code_challenge_methods,
            issuer: d.issuer.or_else(|| req.issuer.clone()),
            iss_parameter_supported: d.iss_parameter_supported,
        })
    }

    /// RFC 8414 metadata, then OpenID Connect Discovery; the first that answers 200 counts.
    fn discover(&mut self, issuer: &str) -> Result<Endpoints, StoreError> {
        let mut statuses = Vec::new();
        for url in discovery_urls(issuer).map_err(StoreError::Login)? {
            let reply = self
                .p
                .get(&url, self.opts.http_timeout_ms)
                .map_err(|t| login_failed("metadata", EndpointError::Transport(t)))?;
            if reply.status == 200 {
                return parse_metadata(&reply.body, issuer).map_err(StoreError::Login);
            }
            statuses.push(reply.status.to_string());
        }
        Err(StoreError::Login(LoginError::Metadata(format!(
            "neither /.well-known/oauth-authorization-server nor /.well-known/openid-configuration answered (HTTP {})",
            statuses.join(", ")
        ))))
    }

    /// Whether the loopback listener of another process's browser login `p` still takes
    /// connections. A refused connection means nothing listens there any more; anything else
    /// (a reply, a timeout) counts as alive. The listener answers this GET with a 400 and
    /// keeps waiting for its callback.
    fn listener_answers(&mut self, p: &PendingLogin) -> bool {
        let Some(base) = p
            .redirect_uri
            .as_deref()
            .and_then(|u| u.strip_suffix("/callback"))
            .filter(|b| b.starts_with("http://127.0.0.1:"))
        else {
            return true;
        };
        !matches!(
            self.p.get(&format!("{base}/"), LISTENER_PROBE_MS),
            Err(TransportError::Connect(_))
        )
    }

    /// The live pending login of `tenant` this build understands, read under the shared lock.
    fn pending_shared(&mut self, tenant: &TenantName) -> Result<Option<PendingLogin>, StoreError> {
        let now = self.p.wall_ms();
        let loaded = self.read_shared(Scope::Header)?;
        Ok(loaded
            .body()
            .and_then(|b| b.pending_logins.get(tenant.as_str()))
            .filter(|p| p.expires_at_ms > now && p.understood())
            .cloned())
    }

    fn record_pending(&mut self, tenant: &TenantName, p: &PendingLogin) -> Result<(), StoreError> {
        self.mutate(Scope::Header, true, |body, _| {
            body.pending_logins
                .insert(tenant.as_str().to_owned(), p.clone());
            Ok(((), true))
        })?;
        Ok(())
    }

    /// Remove the pending login `id` of `tenant` (a flow that ended without tokens).
    fn remove_pending(&mut self, tenant: &TenantName, id: &str) -> Result<(), StoreError> {
        self.mutate(Scope::Header, false, |body, _| {
            let ours = body
                .pending_logins
                .get(tenant.as_str())
                .is_some_and(|p| p.id == id);
            if ours {
                body.pending_logins.remove(tenant.as_str());
            }
            Ok(((), ours))
        })?;
        Ok(())
    }

    /// End a flow with `err`, removing its pending login first. A failure to remove it is
    /// not reported over `err`: the entry expires and the next writer collects it.
    fn abandon<T>(
        &mut self,
        tenant: &TenantName,
        id: &str,
        err: StoreError,
    ) -> Result<T, StoreError> {
        let _ = self.remove_pending(tenant, id);
        Err(err)
    }

    /// Poll the token endpoint with the device code until the user finishes, the code
    /// expires, or the server refuses (RFC 8628 §3.4, §3.5).
    fn poll_device(
        &mut self,
        tenant: &TenantName,
        _lock: LoginLockHeld<P::Guard>,
        p: PendingLogin,
        joined: bool,
    ) -> Result<LoginOutcome, StoreError> {
        // `start` wrote both; a resumed entry was checked to be a device login.
        let device_code = p.device_code.clone().unwrap_or_default();
        let mut schedule = PollSchedule {
            interval_ms: p
                .interval_ms
                .unwrap_or(DEFAULT_INTERVAL_MS)
                .clamp(1000, MAX_INTERVAL_MS),
            expires_at_ms: p.expires_at_ms,
        };
        let mut transient = 0;
        for _ in 0..MAX_POLLS {
            let Some(wait) = schedule.next_wait_ms(self.p.wall_ms()) else {
                return self.abandon(
                    tenant,
                    &p.id,
                    StoreError::Login(LoginError::Expired(tenant.to_string())),
                );
            };
            self.p.sleep_ms(u32::try_from(wait).unwrap_or(u32::MAX));
            let (body, authorization) = client_form(
                &[
                    (
                        "grant_type",
                        Some("urn:ietf:params:oauth:grant-type:device_code"),
                    ),
                    ("device_code", Some(&device_code)),
                ],
                &p.client_id,
                &p.client_auth,
            );
            let sent_ms = self.p.wall_ms();
            let reply = self.p.post(&TokenRequest {
                url: p.token_endpoint.clone(),
                body,
                authorization,
                timeout_ms: self.opts.http_timeout_ms,
            });
            let outcome = match reply {
                Ok(reply) => classify_poll(&reply, sent_ms),
                // A server that did not answer may answer the next poll; one that sent more
                // than a token response is not a server to store tokens from.
                Err(t @ (TransportError::Connect(_) | TransportError::Timeout)) => {
                    PollReply::Transient(EndpointError::Transport(t))
                }
                Err(t) => PollReply::Failed(EndpointError::Transport(t)),
            };
            match outcome {
                PollReply::Granted(g) => return self.commit_login(tenant, &p, g, joined),
                PollReply::Pending => transient = 0,
                PollReply::SlowDown => {
                    transient = 0;
                    schedule.slow_down();
                }
                PollReply::Denied => {
                    return self.abandon(tenant, &p.id, StoreError::Login(LoginError::AccessDenied))
                }
                PollReply::Expired => {
                    return self.abandon(
                        tenant,
                        &p.id,
                        StoreError::Login(LoginError::Expired(tenant.to_string())),
                    )
                }
                PollReply::Transient(e) => {
                    transient += 1;
                    if transient >= MAX_TRANSIENT_FAILURES {
                        return self.abandon(tenant, &p.id, login_failed("token_endpoint", e));
                    }
                }
                PollReply::Failed(e) => {
                    return self.abandon(tenant, &p.id, login_failed("token_endpoint", e))
                }
            }
        }
        self.abandon(
            tenant,
            &p.id,
            StoreError::Login(LoginError::Expired(tenant.to_string())),
        )
    }

    /// Wait for the loopback callback, check it, and exchange its code (RFC 7636 §4.5).
    fn finish_browser(
        &mut self,
        tenant: &TenantName,
        _lock: LoginLockHeld<P::Guard>,
        p: PendingLogin,
        issuer: &ResponseIssuer,
    ) -> Result<LoginOutcome, StoreError> {
        // `start` wrote all three.
        let state = p.state.clone().unwrap_or_default();
        let verifier = p.code_verifier.clone().unwrap_or_default();
        let redirect_uri = p.redirect_uri.clone().unwrap_or_default();
        let left = p.expires_at_ms.saturating_sub(self.p.wall_ms());
        let query = match self
            .p
            .accept_callback(&state, u32::try_from(left).unwrap_or(u32::MAX))
        {
            Ok(q) => q.0,
            Err(why) => {
                return self.abandon(tenant, &p.id, StoreError::Login(LoginError::Callback(why)))
            }
        };
        // The host matched the state already; the core checks again, since it is the core's
        // promise that a callback for another request is never exchanged.
        if query_param(&query, "state").as_deref() != Some(state.as_str()) {
            return self.abandon(
                tenant,
                &p.id,
                StoreError::Login(LoginError::Callback(
                    "the callback's state does not match".into(),
                )),
            );
        }
        // RFC 9207: before anything else of the response is believed, error included.
        if let Err(e) = issuer.check(&query) {
            return self.abandon(tenant, &p.id, StoreError::Login(e));
        }
        if let Some(error) = query_param(&query, "error") {
            let err = if error == "access_denied" {
                LoginError::AccessDenied
            } else {
                LoginError::Callback(format!(
                    "the server answered {}",
                    error
                        .chars()
                        .filter(|c| c.is_ascii_graphic())
                        .take(64)
                        .collect::<String>()
                ))
            };
            return self.abandon(tenant, &p.id, StoreError::Login(err));
        }
        let Some(code) = query_param(&query, "code").filter(|c| !c.is_empty()) else {
            return self.abandon(
                tenant,
                &p.id,
                StoreError::Login(LoginError::Callback("the callback carries no code".into())),
            );
        };
        let (body, authorization) = client_form(
            &[
                ("grant_type", Some("authorization_code")),
                ("code", Some(&code)),
                ("redirect_uri", Some(&redirect_uri)),
                ("code_verifier", Some(&verifier)),
            ],
            &p.client_id,
            &p.client_auth,
        );
        let sent_ms = self.p.wall_ms();
        let reply = self.p.post(&TokenRequest {
            url: p.token_endpoint.clone(),
            body,
            authorization,
            timeout_ms: self.opts.http_timeout_ms,
        });
        match reply.map(|r| classify_poll(&r, sent_ms)) {
            Ok(PollReply::Granted(g)) => self.commit_login(tenant, &p, g, false),
            Ok(PollReply::Denied) => {
                self.abandon(tenant, &p.id, StoreError::Login(LoginError::AccessDenied))
            }
            Ok(PollReply::Failed(e) | PollReply::Transient(e)) => {
                self.abandon(tenant, &p.id, login_failed("token_endpoint", e))
            }
            Ok(other) => self.abandon(
                tenant,
                &p.id,
                in_login(
                    "token_endpoint",
                    malformed(format!("unexpected reply to a code exchange: {other:?}")),
                ),
            ),
            Err(t) => self.abandon(
                tenant,
                &p.id,
                login_failed("token_endpoint", EndpointError::Transport(t)),
            ),
        }
    }

    /// Store the login's tokens as `put` would, unless a newer write replaced the tenant
    /// while the login ran (its revision moved past the one the login started from).
    fn commit_login(
        &mut self,
        tenant: &TenantName,
        p: &PendingLogin,
        mut grant: TokenGrant,
        joined: bool,
    ) -> Result<LoginOutcome, StoreError> {
        if grant.scope.is_none() {
            grant.scope = p.scope.clone();
        }
        let config = RefreshConfig {
            token_endpoint: Some(p.token_endpoint.clone()),
            client_id: Some(p.client_id.clone()),
            client_auth: p.client_auth.clone(),
            retry_unknown_refresh: false,
            revocation_endpoint: p.revocation_endpoint.clone(),
            refresh_scope: None,
        };
        let name = tenant.as_str().to_owned();
        // What would have been stored, kept to revoke if newer tokens win (below).
        let discarded = p
            .revocation_endpoint
            .clone()
            .map(|url| (url, grant.clone(), config.clone()));
        let (result, _) = self.mutate(Scope::Tenant(tenant), true, |body, now| {
            let ours = body.pending_logins.get(&name).is_some_and(|q| q.id == p.id);
            if ours {
                body.pending_logins.remove(&name);
            }
            let current = body.tenants.get(&name).map_or(0, |e| e.revision);
            if current > p.base_revision {
                return Ok((
                    Err(StoreError::Login(LoginError::Superseded(name.clone()))),
                    ours,
                ));
            }
            let old = body.tenants.remove(&name);
            let mut entry = login_entry(old, grant, config, true, now);
            // A tenant deleted during the login restarts at 1; joiners look for a revision
            // above the one the login started from.
            entry.revision = entry.revision.max(p.base_revision + 1);
            let token = AccessToken::from_entry(&entry, false);
            let refreshable = entry.refresh_token.is_some();
            body.tenants.insert(name.clone(), entry);
            Ok((Ok((token, refreshable)), true))
        })?;
        if let (Err(StoreError::Login(LoginError::Superseded(_))), Some((url, grant, config))) =
            (&result, discarded)
        {
            // Discarded tokens would leave their grant live at the server, with nothing
            // that will ever use or revoke it. Best effort, outside the store lock (the
            // refresh lock is still held): the newer tokens are the result either way.
            let now = self.p.wall_ms();
            let entry = login_entry(None, grant, config, true, now);
            let _revocation = self.revoke(&url, &entry);
        }
        result.map(|(token, refreshable)| LoginOutcome {
            token,
            joined,
            refreshable,
        })
    }
}

enum Joined {
    Done(LoginOutcome),
    /// The joined login is gone without a result this process can adopt: look again.
    Again,
}

impl<'p, P: crate::Platform> Store<'p, P> {
    /// Revoke `tenant`'s refresh token (or, without one, its access token) where a revocation
    /// endpoint is known, then delete the tenant. A failed revocation deletes nothing unless
    /// `local`. Runs under the tenant's refresh lock, so no refresh presents the token while
    /// it is being revoked.
    pub fn logout(&mut self, tenant: &str, local: bool) -> Result<LogoutReport, StoreError> {
        let tenant = tenant_name(tenant)?;
        let timeout = self
            .opts
            .refresh_lock_timeout_ms()
            .expect("validated options");
        let what = format!("refresh lock of tenant {tenant}");
        let _lock = self.acquire(
            &LockTarget::Refresh(tenant.id()),
            LockMode::Exclusive,
            timeout,
            &what,
        )?;
        let entry = self.entry_shared(&tenant)?;
        let revocation = match &entry.revocation_endpoint {
            None => Revocation::NotOffered,
            Some(url) => self.revoke(url, &entry),
        };
        if let Revocation::Failed(why) = &revocation {
            if !local {
                return Err(StoreError::Login(LoginError::RevocationFailed(why.clone())));
            }
        }
        let deleted = self.delete(tenant.as_str())?;
        Ok(LogoutReport {
            revocation,
            deleted,
        })
    }

    fn revoke(&mut self, url: &str, entry: &Entry) -> Revocation {
        if let Err(e) = check_endpoint("revocation_endpoint", url) {
            return Revocation::Failed(StoreError::Login(e).to_string());
        }
        let (token, hint) = match &entry.refresh_token {
            Some(rt) => (rt.as_str(), "refresh_token"),
            None => (entry.access_token.as_str(), "access_token"),
        };
        let (body, authorization) = client_form(
            &[("token", Some(token)), ("token_type_hint", Some(hint))],
            entry.client_id.as_deref().unwrap_or(""),
            &entry.client_auth,
        );
        match self.p.post(&TokenRequest {
            url: url.to_owned(),
            body,
            authorization,
            timeout_ms: self.opts.http_timeout_ms,
        }) {
            // RFC 7009 §2.2: 200 whether or not the token was still valid.
            Ok(r) if r.status == 200 => Revocation::Revoked,
            Ok(r) => Revocation::Failed(match classify_reply(r.status, &r.body, 0) {
                EndpointReply::OAuthError { status, error, .. } => format!("HTTP {status} {error}"),
                _ => format!("HTTP {}", r.status),
            }),
            Err(t) => {
                Revocation::Failed(StoreError::Endpoint(EndpointError::Transport(t)).to_string())
            }
        }
    }

    /// Logins in progress, for `list` and `doctor`.
    pub fn pending_logins(&mut self) -> Result<Vec<PendingSummary>, StoreError> {
        let loaded = self.read_shared(Scope::Header)?;
        let Some(body) = loaded.body() else {
            return Ok(Vec::new());
        };
        Ok(body
            .pending_logins
            .iter()
            .map(|(tenant, p)| PendingSummary {
                tenant: tenant.clone(),
                kind: p.kind.clone(),
                started_at_ms: p.started_at_ms,
                expires_at_ms: p.expires_at_ms,
                understood: p.understood(),
            })
            .collect())
    }

    /// Whether a live login is pending for `tenant`: `token` says so instead of "not found"
    /// or "expired".
    pub(crate) fn login_pending(&mut self, tenant: &TenantName) -> bool {
        let now = self.p.wall_ms();
        self.read_shared(Scope::Header).is_ok_and(|l| {
            l.body()
                .and_then(|b| b.pending_logins.get(tenant.as_str()))
                .is_some_and(|p| p.expires_at_ms > now)
        })
    }
}

#[cfg(test)]
mod tests {
    //! Guards the wire details of logins (RFC 8414, 8628, 7636) and the rules that keep a
    //! login from sending a secret in clear text or overwriting newer tokens.
    use super::*;
    use crate::model::collect_expired_logins;

    fn reply(status: u16, body: &str) -> HttpReply {
        HttpReply {
            status,
            content_type: Some("application/json".into()),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn discovery_urls_follow_rfc8414_then_oidc() {
        assert_eq!(
            discovery_urls("https://as.example").unwrap(),
            [
                "https://as.example/.well-known/oauth-authorization-server",
                "https://as.example/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            discovery_urls("https://as.example/tenant1/").unwrap(),
            [
                "https://as.example/.well-known/oauth-authorization-server/tenant1",
                "https://as.example/tenant1/.well-known/openid-configuration"
            ]
        );
        assert!(matches!(
            discovery_urls("http://as.example"),
            Err(LoginError::InsecureEndpoint(_))
        ));
        assert!(discovery_urls("http://127.0.0.1:8080").is_ok());
        assert!(discovery_urls("ftp://x").is_err());
    }

    #[test]
    fn endpoints_must_be_https_or_loopback() {
        for ok in [
            "https://as.example/token",
            "http://127.0.0.1:9/t",
            "http://localhost/t",
            "http://[::1]:80/t",
        ] {
            assert_eq!(check_endpoint("token_endpoint", ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://as.example/token",
            "http://127.0.0.1.evil.example/t",
            "http://user@10.0.0.1/t",
        ] {
            assert_eq!(
                check_endpoint("token_endpoint", bad),
                Err(LoginError::InsecureEndpoint("token_endpoint".into())),
                "{bad}"
            );
        }
        assert!(matches!(
            check_endpoint("x", "file:///etc/passwd"),
            Err(LoginError::Metadata(_))
        ));
    }

    #[test]
    fn metadata_is_checked() {
        let ok = br#"{"issuer":"https://as","token_endpoint":"https://as/token",
            "device_authorization_endpoint":"https://as/device","revocation_endpoint":"https://as/revoke",
            "code_challenge_methods_supported":["S256"]}"#;
        let e = parse_metadata(ok, "https://as/").unwrap();
        assert_eq!(e.token, "https://as/token");
        assert_eq!(e.device_authorization.as_deref(), Some("https://as/device"));
        assert_eq!(e.revocation.as_deref(), Some("https://as/revoke"));
        assert!(matches!(
            parse_metadata(ok, "https://other"),
            Err(LoginError::Metadata(m)) if m.contains("another issuer")
        ));
        assert!(matches!(
            parse_metadata(br#"{"issuer":"https://as"}"#, "https://as"),
            Err(LoginError::Metadata(m)) if m.contains("token_endpoint")
        ));
        assert_eq!(
            parse_metadata(
                br#"{"issuer":"https://as","token_endpoint":"http://as/token"}"#,
                "https://as"
            ),
            Err(LoginError::InsecureEndpoint("token_endpoint".into()))
        );
        assert!(parse_metadata(b"{", "https://as").is_err());
    }

    #[test]
    fn the_callbacks_issuer_is_checked_rfc9207() {
        let m = br#"{"issuer":"https://as.example","token_endpoint":"https://as.example/t",
            "authorization_response_iss_parameter_supported":true}"#;
        let e = parse_metadata(m, "https://as.example/").unwrap();
        assert_eq!(e.issuer.as_deref(), Some("https://as.example"));
        assert!(e.iss_parameter_supported);
        let promised = ResponseIssuer {
            issuer: e.issuer,
            required: e.iss_parameter_supported,
        };
        assert_eq!(
            promised.check("code=c&state=s&iss=https%3A%2F%2Fas.example"),
            Ok(())
        );
        assert!(matches!(
            promised.check("code=c&state=s&iss=https%3A%2F%2Fevil.invalid"),
            Err(LoginError::IssuerMismatch(m)) if m.contains("evil.invalid")
        ));
        assert!(matches!(
            promised.check("code=c&state=s"),
            Err(LoginError::IssuerMismatch(m)) if m.contains("carries no `iss`")
        ));
        // A server that does not promise `iss` may leave it out, but one it sends is checked.
        let silent = ResponseIssuer {
            issuer: Some("https://as.example".into()),
            required: false,
        };
        assert_eq!(silent.check("code=c&state=s"), Ok(()));
        assert!(silent
            .check("code=c&iss=https%3A%2F%2Fevil.invalid")
            .is_err());
        let e = parse_metadata(
            br#"{"issuer":"https://as.example","token_endpoint":"https://as.example/t"}"#,
            "https://as.example",
        )
        .unwrap();
        assert!(!e.iss_parameter_supported);
    }

    #[test]
    fn device_authorization_reply() {
        let d = parse_device_authorization(&reply(
            200,
            r#"{"device_code":"dc","user_code":"ABCD-EFGH","verification_uri":"https://as/device",
            "verification_uri_complete":"https://as/device?user_code=ABCD-EFGH","expires_in":600}"#,
        ))
        .unwrap();
        assert_eq!(d.interval_ms, DEFAULT_INTERVAL_MS);
        assert_eq!(d.expires_in_ms, 600_000);
        assert!(
            !format!("{d:?}").contains("dc\""),
            "the device code stays out of Debug"
        );
        for (body, field) in [
            (
                r#"{"user_code":"u","verification_uri":"https://as/d","expires_in":1}"#,
                "device_code",
            ),
            (
                r#"{"device_code":"d","verification_uri":"https://as/d","expires_in":1}"#,
                "user_code",
            ),
            (
                r#"{"device_code":"d","user_code":"u","expires_in":1}"#,
                "verification_uri",
            ),
            (
                r#"{"device_code":"d","user_code":"u","verification_uri":"https://as/d"}"#,
                "expires_in",
            ),
        ] {
            let err = parse_device_authorization(&reply(200, body)).unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
        }
        assert!(matches!(
            parse_device_authorization(&reply(400, r#"{"error":"invalid_client"}"#)),
            Err(StoreError::Endpoint(EndpointError::OAuth { .. }))
        ));
        assert!(matches!(
            parse_device_authorization(&reply(
                200,
                r#"{"device_code":"d","user_code":"u","verification_uri":"http://evil.example/d","expires_in":9}"#
            )),
            Err(StoreError::Login(LoginError::InsecureEndpoint(_)))
        ));
        // The interval is clamped: a server cannot make credlock hammer it or sleep for hours.
        let d = parse_device_authorization(&reply(
            200,
            r#"{"device_code":"d","user_code":"u","verification_uri":"https://as/d","expires_in":99999,"interval":0}"#,
        ))
        .unwrap();
        assert_eq!((d.interval_ms, d.expires_in_ms), (1000, MAX_LOGIN_MS));
    }

    #[test]
    fn polling_schedule_honours_slow_down_and_expiry() {
        let mut s = PollSchedule {
            interval_ms: 5_000,
            expires_at_ms: 20_000,
        };
        assert_eq!(s.next_wait_ms(0), Some(5_000));
        s.slow_down();
        assert_eq!(s.next_wait_ms(0), Some(10_000));
        assert_eq!(
            s.next_wait_ms(10_000),
            None,
            "a poll at the expiry is not made"
        );
        for _ in 0..100 {
            s.slow_down();
        }
        assert_eq!(s.interval_ms, MAX_INTERVAL_MS);
    }

    #[test]
    fn poll_replies() {
        let at = r#"{"access_token":"a","token_type":"Bearer","refresh_token":"r"}"#;
        assert!(matches!(
            classify_poll(&reply(200, at), 0),
            PollReply::Granted(_)
        ));
        for (body, want) in [
            (r#"{"error":"authorization_pending"}"#, PollReply::Pending),
            (r#"{"error":"slow_down"}"#, PollReply::SlowDown),
            (r#"{"error":"access_denied"}"#, PollReply::Denied),
            (r#"{"error":"expired_token"}"#, PollReply::Expired),
        ] {
            assert_eq!(classify_poll(&reply(400, body), 0), want);
        }
        assert!(matches!(
            classify_poll(&reply(200, r#"{"access_token":"a","token_type":"DPoP"}"#), 0),
            PollReply::Failed(EndpointError::MalformedReply(m)) if m.contains("Bearer")
        ));
        assert!(matches!(
            classify_poll(&reply(200, r#"{"token_type":"Bearer"}"#), 0),
            PollReply::Failed(EndpointError::MalformedReply(m)) if m.contains("access_token")
        ));
        assert!(matches!(
            classify_poll(&reply(503, "<html>"), 0),
            PollReply::Transient(_)
        ));
    }

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn forms_and_queries() {
        let (body, auth) = client_form(
            &[("scope", Some("a b")), ("audience", None)],
            "cli",
            &ClientAuth::None,
        );
        assert_eq!(body, "scope=a+b&client_id=cli");
        assert_eq!(auth, None);
        let (body, auth) = client_form(
            &[("token", Some("t"))],
            "c",
            &ClientAuth::Basic { secret: "s".into() },
        );
        assert_eq!(body, "token=t");
        assert!(auth.unwrap().starts_with("Basic "));
        let q = "code=a%2Bb&state=x+y&iss=z";
        assert_eq!(query_param(q, "code").as_deref(), Some("a+b"));
        assert_eq!(query_param(q, "state").as_deref(), Some("x y"));
        assert_eq!(query_param(q, "nope"), None);
        assert_eq!(query_param("code=%zz", "code"), None);
    }

    #[test]
    fn writers_collect_expired_pending_logins() {
        let mut body = crate::model::Body::default();
        let p = |exp: u64| PendingLogin {
            version: PENDING_LOGIN_VERSION,
            kind: "device".into(),
            id: "00".into(),
            started_at_ms: 0,
            expires_at_ms: exp,
            base_revision: 0,
            url: "https://as/d".into(),
            user_code: None,
            url_complete: None,
            device_code: Some("dc".into()),
            interval_ms: None,
            code_verifier: None,
            state: None,
            redirect_uri: None,
            token_endpoint: "https://as/t".into(),
            client_id: "c".into(),
            client_auth: ClientAuth::None,
            scope: None,
            revocation_endpoint: None,
            unknown: Map::new(),
        };
        body.pending_logins.insert("old".into(), p(100));
        body.pending_logins.insert("live".into(), p(300));
        assert!(collect_expired_logins(&mut body, 200));
        assert_eq!(body.pending_logins.keys().collect::<Vec<_>>(), ["live"]);
        assert!(!collect_expired_logins(&mut body, 200));
        // The body round-trips, and a store without pending logins serialises as before.
        let json = serde_json::to_string(&body).unwrap();
        assert!(json.contains("pending_logins") && !format!("{body:?}").contains("\"dc\""));
        let empty = serde_json::to_string(&crate::model::Body::default()).unwrap();
        assert!(!empty.contains("pending_logins"), "{empty}");
    }
}
