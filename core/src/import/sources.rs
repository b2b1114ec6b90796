//! The files users already have, translated into one tenant's token response.
//!
//! Each kind is a pure translation from the JSON a tool writes into credlock's `put` shape
//! (RFC 6749 §5.1 plus refresh settings). What credlock needs to refresh and the source holds
//! (client id, token endpoint, scopes, account) is kept; fields it does not interpret stay
//! with the token, verbatim; parts of the file that are not this tenant's tokens (an API key,
//! other accounts) are reported as skipped, so `--remove-source` keeps the file. A file that
//! is not the shape of its kind is an error that names the kind and the missing part, never a
//! guess. Secrets never appear in a message: messages name fields.

use super::Skipped;
use serde_json::{Map, Value};

/// A kind of file `import` understands (`--from KIND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A token response (RFC 6749 §5.1) as programs keep it, or an agent runtime's
    /// `{"type": "oauth", "access", "refresh", "expires"}` entry.
    Token,
    /// Go's `golang.org/x/oauth2.Token` marshalled to JSON.
    GoOauth2,
    /// Claude Code's `~/.claude/.credentials.json`.
    ClaudeCode,
    /// OpenAI Codex CLI's `~/.codex/auth.json`.
    Codex,
    /// Google's application default credentials (`gcloud auth application-default login`).
    GoogleAdc,
    /// The MSAL token cache (msal-extensions, the Azure CLI's `msal_token_cache.json`).
    Msal,
    /// The MCP SDKs' stored `OAuthTokens`.
    Mcp,
    /// rmcp's `StoredCredentials`.
    Rmcp,
}

impl SourceKind {
    pub const ALL: [SourceKind; 8] = [
        SourceKind::Token,
        SourceKind::GoOauth2,
        SourceKind::ClaudeCode,
        SourceKind::Codex,
        SourceKind::GoogleAdc,
        SourceKind::Msal,
        SourceKind::Mcp,
        SourceKind::Rmcp,
    ];

    /// The name `--from` takes.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Token => "token",
            SourceKind::GoOauth2 => "go-oauth2",
            SourceKind::ClaudeCode => "claude-code",
            SourceKind::Codex => "codex",
            SourceKind::GoogleAdc => "google-adc",
            SourceKind::Msal => "msal",
            SourceKind::Mcp => "mcp",
            SourceKind::Rmcp => "rmcp",
        }
    }

    /// What a file of this kind is, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            SourceKind::Token => "a token response (access_token, ...)",
            SourceKind::GoOauth2 => "Go's oauth2.Token JSON",
            SourceKind::ClaudeCode => "Claude Code's .credentials.json",
            SourceKind::Codex => "Codex CLI's auth.json",
            SourceKind::GoogleAdc => "Google application default credentials",
            SourceKind::Msal => "an MSAL token cache",
            SourceKind::Mcp => "MCP SDK OAuthTokens",
            SourceKind::Rmcp => "rmcp StoredCredentials",
        }
    }

    pub fn from_name(name: &str) -> Option<SourceKind> {
        SourceKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The names `--from` takes, for messages.
    pub fn names() -> String {
        let names: Vec<&str> = SourceKind::ALL.iter().map(|k| k.name()).collect();
        names.join(", ")
    }
}

/// One tenant's tokens, translated.
#[derive(Debug, Default)]
pub struct Translated {
    /// A token response in `put`'s shape.
    pub response: Map<String, Value>,
    /// When the source says the tokens were received (Unix ms): what `expires_in` counts
    /// from. `None`: from when the file was written, if known, else now.
    pub received_at_ms: Option<u64>,
    /// The source holds a refresh token but no access token: the first `token` refreshes.
    pub refresh_only: bool,
    /// Parts of the source that are not this tenant's tokens, and why they were left.
    pub skipped: Vec<Skipped>,
}

/// Which kind a file is, from the fields only that kind writes.
pub fn detect(obj: &Map<String, Value>) -> SourceKind {
    let has = |k: &str| obj.contains_key(k);
    if has("claudeAiOauth") {
        SourceKind::ClaudeCode
    } else if obj.get("tokens").is_some_and(Value::is_object)
        && (has("last_refresh") || has("OPENAI_API_KEY"))
    {
        SourceKind::Codex
    } else if has("AccessToken") || has("RefreshToken") || has("Account") {
        SourceKind::Msal
    } else if has("token_response") {
        SourceKind::Rmcp
    } else if obj
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| GOOGLE_TYPES.contains(&t))
    {
        SourceKind::GoogleAdc
    } else if has("access_token") && has("expiry") {
        SourceKind::GoOauth2
    } else if has("access_token") && has("issuer") {
        SourceKind::Mcp
    } else {
        SourceKind::Token
    }
}

/// Translate `obj` as a file of `kind`. `account` chooses among the accounts of a file that
/// holds several (MSAL).
pub fn translate(
    kind: SourceKind,
    obj: Map<String, Value>,
    account: Option<&str>,
) -> Result<Translated, String> {
    if account.is_some() && kind != SourceKind::Msal {
        return Err(format!(
            "--account chooses among the accounts of an MSAL token cache; this is {}",
            kind.describe()
        ));
    }
    let wrong = |why: String| format!("not {}: {why}", kind.describe());
    match kind {
        SourceKind::Token | SourceKind::Mcp => token(obj).map_err(wrong),
        SourceKind::GoOauth2 => go_oauth2(obj).map_err(wrong),
        SourceKind::ClaudeCode => claude_code(obj).map_err(wrong),
        SourceKind::Codex => codex(obj).map_err(wrong),
        SourceKind::GoogleAdc => google_adc(obj).map_err(wrong),
        SourceKind::Msal => msal(obj, account).map_err(wrong),
        SourceKind::Rmcp => rmcp(obj).map_err(wrong),
    }
}

/// A string field, required.
fn string(obj: &mut Map<String, Value>, path: &str, name: &str) -> Result<String, String> {
    match obj.remove(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        None | Some(Value::Null) => Err(format!("`{path}{name}` is missing")),
        Some(_) => Err(format!("`{path}{name}` is not a non-empty string")),
    }
}

/// A string field, optional.
fn optional_string(
    obj: &mut Map<String, Value>,
    path: &str,
    name: &str,
) -> Result<Option<String>, String> {
    match obj.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{path}{name}` is not a string")),
    }
}

/// An object field, required.
fn object(
    obj: &mut Map<String, Value>,
    path: &str,
    name: &str,
) -> Result<Map<String, Value>, String> {
    match obj.remove(name) {
        Some(Value::Object(o)) => Ok(o),
        None | Some(Value::Null) => Err(format!("`{path}{name}` is missing")),
        Some(_) => Err(format!("`{path}{name}` is not an object")),
    }
}

/// A list of scope strings as one space-separated `scope`.
fn scopes(v: Value, path: &str) -> Result<String, String> {
    let Value::Array(items) = v else {
        return Err(format!("`{path}` is not a list of scopes"));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(s) if !s.is_empty() && !s.contains(' ') => out.push(s),
            _ => return Err(format!("`{path}` holds something that is not a scope")),
        }
    }
    Ok(out.join(" "))
}

/// A token response, or an agent runtime's `{"type": "oauth", ...}` entry.
fn token(obj: Map<String, Value>) -> Result<Translated, String> {
    let response = super::normalise(obj)?;
    if !response.contains_key("access_token") {
        return Err("`access_token` is missing".into());
    }
    Ok(Translated {
        response,
        ..Translated::default()
    })
}

/// `{"access_token", "token_type", "refresh_token", "expiry", "expires_in"}`. Go writes
/// `expiry` always (its zero time when there is none), so a file without it is not Go's.
fn go_oauth2(obj: Map<String, Value>) -> Result<Translated, String> {
    if !obj.contains_key("expiry") {
        return Err(
            "`expiry` is missing (Go writes it always, 0001-01-01T00:00:00Z for none)".into(),
        );
    }
    token(obj)
}

/// `{"claudeAiOauth": {"accessToken", "refreshToken", "expiresAt" (ms), "scopes", ...}}`.
fn claude_code(mut obj: Map<String, Value>) -> Result<Translated, String> {
    let mut o = object(&mut obj, "", "claudeAiOauth")?;
    let p = "claudeAiOauth.";
    let mut response = Map::new();
    response.insert(
        "access_token".into(),
        string(&mut o, p, "accessToken")?.into(),
    );
    if let Some(r) = optional_string(&mut o, p, "refreshToken")? {
        response.insert("refresh_token".into(), r.into());
    }
    match o.remove("expiresAt") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Number(_)) => {
            response.insert("expiresAt".into(), v);
        }
        Some(_) => return Err(format!("`{p}expiresAt` is not a number of milliseconds")),
    }
    if let Some(v) = o.remove("scopes") {
        response.insert("scope".into(), scopes(v, "claudeAiOauth.scopes")?.into());
    }
    // subscriptionType, rateLimitTier, ...: kept with the token.
    response.extend(o);
    Ok(Translated {
        response,
        skipped: others(
            obj,
            "not the Claude.ai login (credlock imports one tenant a file)",
        ),
        ..Translated::default()
    })
}

/// `{"OPENAI_API_KEY", "tokens": {"id_token", "access_token", "refresh_token", "account_id"},
/// "last_refresh"}`. The access token's expiry is its JWT `exp` claim when it is a JWT;
/// nothing else in it is read, and nothing in it is verified or trusted.
fn codex(mut obj: Map<String, Value>) -> Result<Translated, String> {
    let mut t = object(&mut obj, "", "tokens")?;
    let access = string(&mut t, "tokens.", "access_token")?;
    let mut response = Map::new();
    if let Some(exp) = jwt_exp(&access) {
        response.insert("expires_at".into(), exp.into());
    }
    response.insert("access_token".into(), access.into());
    if let Some(r) = optional_string(&mut t, "tokens.", "refresh_token")? {
        response.insert("refresh_token".into(), r.into());
    }
    // id_token, account_id: kept with the token.
    response.extend(t);
    let received_at_ms = match obj.remove("last_refresh") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            crate::expiry::parse_rfc3339(&s)
                .and_then(|ms| u64::try_from(ms).ok())
                .ok_or("`last_refresh` is not an RFC 3339 time")?,
        ),
        Some(_) => return Err("`last_refresh` is not an RFC 3339 time".into()),
    };
    let mut skipped = Vec::new();
    match obj.remove("OPENAI_API_KEY") {
        None | Some(Value::Null) => {}
        Some(_) => skipped.push((
            "OPENAI_API_KEY".to_owned(),
            "an API key, not OAuth tokens: not imported".to_owned(),
        )),
    }
    skipped.extend(others(obj, "not the ChatGPT login's tokens"));
    Ok(Translated {
        response,
        received_at_ms,
        skipped,
        ..Translated::default()
    })
}

/// The `exp` claim of a JWT, unverified: only ever used to refresh early, never to trust.
fn jwt_exp(token: &str) -> Option<u64> {
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let claims: Value = serde_json::from_slice(&base64url_decode(payload)?).ok()?;
    claims.get("exp")?.as_u64()
}

/// Unpadded base64url (RFC 4648 §5), as JWTs use it.
fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The `type` of every credentials file Google's auth libraries read; only `authorized_user`
/// holds a user's tokens.
const GOOGLE_TYPES: &[&str] = &[
    "authorized_user",
    "service_account",
    "external_account",
    "external_account_authorized_user",
    "impersonated_service_account",
    "gdch_service_account",
];

/// Google's token endpoint, where `authorized_user` credentials refresh (Google's
/// documentation of OAuth 2.0 for installed applications).
const GOOGLE_TOKEN_ENDPOINT: &str = "https://oauth2.googleapis.com/token";

/// `{"type": "authorized_user", "client_id", "client_secret", "refresh_token"}`: no access
/// token; the tenant refreshes at Google's token endpoint with that client.
fn google_adc(mut obj: Map<String, Value>) -> Result<Translated, String> {
    match obj.remove("type") {
        Some(Value::String(t)) if t == "authorized_user" => {}
        Some(Value::String(t)) => {
            return Err(format!(
                "`type` is {t:?}, not a user's tokens: credlock keeps OAuth user tokens \
                 (`gcloud auth application-default login` writes type \"authorized_user\")"
            ))
        }
        _ => return Err("`type` is missing".into()),
    }
    let mut response = Map::new();
    response.insert(
        "refresh_token".into(),
        string(&mut obj, "", "refresh_token")?.into(),
    );
    response.insert(
        "client_id".into(),
        string(&mut obj, "", "client_id")?.into(),
    );
    response.insert(
        "client_secret".into(),
        string(&mut obj, "", "client_secret")?.into(),
    );
    // Google takes the client's secret in the form body, as its libraries send it.
    response.insert("client_auth".into(), "post".into());
    response.insert("token_endpoint".into(), GOOGLE_TOKEN_ENDPOINT.into());
    // quota_project_id, universe_domain, account: kept with the token.
    response.extend(obj);
    Ok(Translated {
        response,
        refresh_only: true,
        ..Translated::default()
    })
}

/// `{"client_id", "token_response": {...}, "granted_scopes", "token_received_at"}`.
fn rmcp(mut obj: Map<String, Value>) -> Result<Translated, String> {
    let client_id = string(&mut obj, "", "client_id")?;
    let mut response = match obj.remove("token_response") {
        Some(Value::Object(o)) => o,
        None | Some(Value::Null) => {
            return Err("`token_response` is empty: the client has not logged in".into())
        }
        Some(_) => return Err("`token_response` is not an object".into()),
    };
    if !response.contains_key("access_token") {
        return Err("`token_response.access_token` is missing".into());
    }
    response.insert("client_id".into(), client_id.into());
    match obj.remove("granted_scopes") {
        Some(v) if !response.contains_key("scope") => {
            let scope = scopes(v, "granted_scopes")?;
            if !scope.is_empty() {
                response.insert("scope".into(), scope.into());
            }
        }
        _ => {}
    }
    // rmcp stamps Unix seconds; read milliseconds too, as every absolute time here.
    let received_at_ms = match obj.remove("token_received_at") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .map(|n| if n >= 100_000_000_000 { n } else { n * 1000 })
                .ok_or("`token_received_at` is not a Unix time")?,
        ),
        Some(_) => return Err("`token_received_at` is not a Unix time".into()),
    };
    Ok(Translated {
        response,
        received_at_ms,
        skipped: others(obj, "not part of the stored credentials"),
        ..Translated::default()
    })
}

/// One account's tokens from an MSAL cache: `AccessToken`, `RefreshToken`, `Account` sections
/// keyed by cache key, each credential naming its `home_account_id` and `client_id`.
fn msal(mut obj: Map<String, Value>, account: Option<&str>) -> Result<Translated, String> {
    let mut section = |name: &str| -> Result<Vec<Map<String, Value>>, String> {
        match obj.remove(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Object(o)) => o
                .into_iter()
                .map(|(_, v)| match v {
                    Value::Object(c) => Ok(c),
                    _ => Err(format!("`{name}` holds an entry that is not an object")),
                })
                .collect(),
            Some(_) => Err(format!("`{name}` is not an object")),
        }
    };
    let access = section("AccessToken")?;
    let refresh = section("RefreshToken")?;
    let accounts = section("Account")?;
    let field =
        |c: &Map<String, Value>, k: &str| c.get(k).and_then(Value::as_str).map(str::to_owned);
    let username = |home: &str| {
        accounts
            .iter()
            .find(|a| field(a, "home_account_id").as_deref() == Some(home))
            .and_then(|a| field(a, "username"))
    };
    // One tenant per account and client: those that hold a refresh token, else an access token.
    let mut pairs: Vec<(String, String)> = Vec::new();
    for c in refresh.iter().chain(&access) {
        let (Some(home), Some(client)) = (field(c, "home_account_id"), field(c, "client_id"))
        else {
            return Err("a credential has no `home_account_id` or `client_id`".into());
        };
        if !pairs.contains(&(home.clone(), client.clone())) {
            pairs.push((home, client));
        }
    }
    if pairs.is_empty() {
        return Err("it holds no access or refresh token".into());
    }
    let label = |(home, client): &(String, String)| {
        format!(
            "{}/{client}",
            username(home).unwrap_or_else(|| home.clone())
        )
    };
    let matches = |pair: &(String, String)| match account {
        None => true,
        Some(want) => {
            let (who, client) = match want.split_once('/') {
                Some((w, c)) => (w, Some(c)),
                None => (want, None),
            };
            let user = username(&pair.0);
            (pair.0 == who || user.is_some_and(|u| u.eq_ignore_ascii_case(who)))
                && client.is_none_or(|c| c == pair.1)
        }
    };
    let (chosen, others): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|p| matches(p));
    let (home, client) = match chosen.as_slice() {
        [one] => one.clone(),
        [] => {
            let all: Vec<String> = others.iter().map(label).collect();
            return Err(format!(
                "no account matches --account; it holds {}",
                all.join(", ")
            ));
        }
        many => {
            let all: Vec<String> = many.iter().map(label).collect();
            return Err(format!(
                "it holds several accounts; choose one with --account ACCOUNT (or \
                 ACCOUNT/CLIENT_ID): {}",
                all.join(", ")
            ));
        }
    };
    let mine = |c: &&Map<String, Value>| {
        field(c, "home_account_id").as_deref() == Some(&home)
            && field(c, "client_id").as_deref() == Some(&client)
    };
    // The access token that lasts longest, for the tenant's `token` until it refreshes.
    let at = access
        .iter()
        .filter(mine)
        .max_by_key(|c| field(c, "expires_on").and_then(|s| s.parse::<u64>().ok()));
    let rt = refresh.iter().find(mine);
    let mut response = Map::new();
    let mut refresh_only = false;
    match at {
        Some(at) => {
            let secret = field(at, "secret").ok_or("an access token has no `secret`")?;
            response.insert("access_token".into(), secret.into());
            if let Some(t) = field(at, "token_type") {
                response.insert("token_type".into(), t.into());
            }
            match at.get("expires_on") {
                Some(v @ (Value::String(_) | Value::Number(_))) => {
                    response.insert("expires_on".into(), v.clone());
                }
                _ => return Err("an access token has no `expires_on`".into()),
            }
            if let Some(target) = field(at, "target") {
                // Microsoft's v2.0 endpoint wants the scopes again on every refresh.
                response.insert("refresh_scope".into(), target.clone().into());
                response.insert("scope".into(), target.into());
            }
        }
        None => refresh_only = true,
    }
    if let Some(rt) = rt {
        let secret = field(rt, "secret").ok_or("a refresh token has no `secret`")?;
        response.insert("refresh_token".into(), secret.into());
    }
    // The token endpoint of the authority the tokens came from: environment (the login host)
    // and realm (the directory), as MSAL builds it.
    let env = at
        .or(rt)
        .and_then(|c| field(c, "environment"))
        .ok_or("a credential has no `environment`")?;
    let realm = at.and_then(|c| field(c, "realm")).or_else(|| {
        accounts
            .iter()
            .find(|a| field(a, "home_account_id").as_deref() == Some(&home))
            .and_then(|a| field(a, "realm"))
    });
    let realm = realm.unwrap_or_else(|| "organizations".to_owned());
    if !env
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        || !realm
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return Err("`environment` or `realm` is not a host name or directory id".into());
    }
    if rt.is_some() {
        response.insert(
            "token_endpoint".into(),
            format!("https://{env}/{realm}/oauth2/v2.0/token").into(),
        );
        response.insert("client_id".into(), client.clone().into());
    }
    if let Some(user) = username(&home) {
        response.insert("username".into(), user.into());
    }
    response.insert("home_account_id".into(), home.into());
    let skipped = others
        .iter()
        .map(|p| {
            (
                label(p),
                "another account or client: import it with --account".to_owned(),
            )
        })
        .collect();
    Ok(Translated {
        response,
        refresh_only,
        skipped,
        ..Translated::default()
    })
}

/// The rest of a file, reported as skipped: nothing in it is silently dropped.
fn others(obj: Map<String, Value>, why: &str) -> Vec<Skipped> {
    obj.into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| (k, why.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    //! Each importer on a sample in its tool's exact shape (fake values), and on damaged
    //! samples: a specific error naming the kind, never a guess.
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(o) => o,
            _ => unreachable!("samples are objects"),
        }
    }
    fn run(v: Value) -> Result<(SourceKind, Translated), String> {
        let o = obj(v);
        let kind = detect(&o);
        translate(kind, o, None).map(|t| (kind, t))
    }

    /// A JWT with `exp` (unsigned: the importer never verifies it).
    fn jwt(exp: u64) -> String {
        let b64 = |s: &str| {
            crate::oauth::base64(s.as_bytes())
                .trim_end_matches('=')
                .replace('+', "-")
                .replace('/', "_")
        };
        format!(
            "{}.{}.sig",
            b64(r#"{"alg":"RS256"}"#),
            b64(&format!(r#"{{"exp":{exp},"sub":"fake"}}"#))
        )
    }

    #[test]
    fn go_oauth2_token() {
        let (kind, t) = run(json!({"access_token": "a", "token_type": "Bearer",
            "refresh_token": "r", "expiry": "2020-01-01T00:00:00Z"}))
        .unwrap();
        assert_eq!(kind, SourceKind::GoOauth2);
        assert_eq!(t.response["expiry"], "2020-01-01T00:00:00Z");
        let e = translate(
            SourceKind::GoOauth2,
            obj(json!({"access_token": "a"})),
            None,
        )
        .unwrap_err();
        assert!(
            e.starts_with("not Go's oauth2.Token JSON: `expiry` is missing"),
            "{e}"
        );
    }

    #[test]
    fn claude_code_credentials() {
        let (kind, t) = run(json!({"claudeAiOauth": {"accessToken": "sk-ant-oat-fake",
            "refreshToken": "sk-ant-ort-fake", "expiresAt": 1_900_000_000_000u64,
            "scopes": ["user:inference", "user:profile"], "subscriptionType": "pro"}}))
        .unwrap();
        assert_eq!(kind, SourceKind::ClaudeCode);
        assert_eq!(
            Value::Object(t.response),
            json!({"access_token": "sk-ant-oat-fake", "refresh_token": "sk-ant-ort-fake",
                "expiresAt": 1_900_000_000_000u64, "scope": "user:inference user:profile",
                "subscriptionType": "pro"})
        );
        assert!(t.skipped.is_empty());
        for (damaged, says) in [
            (
                json!({"claudeAiOauth": {"refreshToken": "r"}}),
                "`claudeAiOauth.accessToken` is missing",
            ),
            (
                json!({"claudeAiOauth": {"accessToken": 5}}),
                "`claudeAiOauth.accessToken` is not",
            ),
            (
                json!({"claudeAiOauth": {"accessToken": "a", "expiresAt": "soon"}}),
                "`claudeAiOauth.expiresAt`",
            ),
            (
                json!({"claudeAiOauth": {"accessToken": "a", "scopes": "x"}}),
                "`claudeAiOauth.scopes`",
            ),
            (
                json!({"claudeAiOauth": []}),
                "`claudeAiOauth` is not an object",
            ),
        ] {
            let e = run(damaged).unwrap_err();
            assert!(
                e.starts_with("not Claude Code's .credentials.json: "),
                "{e}"
            );
            assert!(e.contains(says), "{e}");
            assert!(!e.contains("fake"));
        }
    }

    #[test]
    fn codex_auth_json() {
        let (kind, t) = run(json!({"OPENAI_API_KEY": "sk-fake", "tokens": {
            "id_token": "x.y.z", "access_token": jwt(1_900_000_000), "refresh_token": "rt-fake",
            "account_id": "acct"}, "last_refresh": "2026-12-01T10:00:00.123456Z"}))
        .unwrap();
        assert_eq!(kind, SourceKind::Codex);
        assert_eq!(t.response["expires_at"], 1_900_000_000u64);
        assert_eq!(t.response["account_id"], "acct");
        assert_eq!(t.received_at_ms, Some(1_796_119_200_123));
        assert_eq!(t.skipped.len(), 1);
        assert_eq!(t.skipped[0].0, "OPENAI_API_KEY");
        assert!(!t.skipped[0].1.contains("sk-fake"));
        // An opaque access token: no expiry read, none invented.
        let (_, t) = run(
            json!({"OPENAI_API_KEY": null, "tokens": {"access_token": "opaque"},
            "last_refresh": null}),
        )
        .unwrap();
        assert!(!t.response.contains_key("expires_at") && t.skipped.is_empty());
        let e = run(json!({"OPENAI_API_KEY": "k", "tokens": {"refresh_token": "r"}})).unwrap_err();
        assert_eq!(
            e,
            "not Codex CLI's auth.json: `tokens.access_token` is missing"
        );
        let e = translate(SourceKind::Codex, obj(json!({"access_token": "a"})), None).unwrap_err();
        assert_eq!(e, "not Codex CLI's auth.json: `tokens` is missing");
    }

    #[test]
    fn google_application_default_credentials() {
        let (kind, t) = run(json!({"type": "authorized_user", "client_id": "c.apps",
            "client_secret": "s-fake", "refresh_token": "1//fake", "quota_project_id": "p"}))
        .unwrap();
        assert_eq!(kind, SourceKind::GoogleAdc);
        assert!(t.refresh_only);
        assert_eq!(t.response["token_endpoint"], GOOGLE_TOKEN_ENDPOINT);
        assert_eq!(t.response["client_auth"], "post");
        assert_eq!(t.response["quota_project_id"], "p");
        let e = run(json!({"type": "service_account", "client_email": "x", "private_key": "k"}))
            .unwrap_err();
        assert!(
            e.contains("\"service_account\", not a user's tokens"),
            "{e}"
        );
        let e = run(json!({"type": "authorized_user", "client_id": "c", "refresh_token": "r"}))
            .unwrap_err();
        assert_eq!(
            e,
            "not Google application default credentials: `client_secret` is missing"
        );
    }

    #[test]
    fn rmcp_stored_credentials() {
        let (kind, t) = run(
            json!({"client_id": "cid", "token_response": {"access_token": "a",
            "token_type": "bearer", "expires_in": 3600, "refresh_token": "r"},
            "granted_scopes": ["mcp:read", "mcp:write"], "token_received_at": 1_800_000_000u64}),
        )
        .unwrap();
        assert_eq!(kind, SourceKind::Rmcp);
        assert_eq!(t.received_at_ms, Some(1_800_000_000_000));
        assert_eq!(t.response["scope"], "mcp:read mcp:write");
        assert_eq!(t.response["client_id"], "cid");
        let e = run(json!({"client_id": "c", "token_response": null})).unwrap_err();
        assert!(
            e.starts_with("not rmcp StoredCredentials: `token_response` is empty"),
            "{e}"
        );
        let e = run(json!({"token_response": {"access_token": "a"}})).unwrap_err();
        assert_eq!(e, "not rmcp StoredCredentials: `client_id` is missing");
    }

    #[test]
    fn mcp_oauth_tokens_keep_their_issuer() {
        let (kind, t) = run(json!({"access_token": "a", "token_type": "Bearer",
            "refresh_token": "r", "expires_in": 3600, "issuer": "https://as.example"}))
        .unwrap();
        assert_eq!(kind, SourceKind::Mcp);
        assert_eq!(t.response["issuer"], "https://as.example");
    }

    fn msal_cache() -> Value {
        let at = |home: &str, client: &str, secret: &str, exp: &str| {
            json!({"home_account_id": home, "environment": "login.microsoftonline.com",
                "credential_type": "AccessToken", "client_id": client, "secret": secret,
                "realm": "tid-1", "target": "https://graph.microsoft.com/.default",
                "cached_at": "1799990000", "expires_on": exp, "extended_expires_on": exp,
                "token_type": "Bearer"})
        };
        json!({
            "AccessToken": {
                "k1": at("uid1.utid", "cli", "at-old", "1800000000"),
                "k2": at("uid1.utid", "cli", "at-new", "1800003600"),
                "k3": at("uid2.utid", "cli", "at-bob", "1800003600"),
            },
            "RefreshToken": {
                "r1": {"home_account_id": "uid1.utid", "environment": "login.microsoftonline.com",
                    "credential_type": "RefreshToken", "client_id": "cli", "secret": "rt-alice",
                    "family_id": "1"},
                "r2": {"home_account_id": "uid2.utid", "environment": "login.microsoftonline.com",
                    "credential_type": "RefreshToken", "client_id": "cli", "secret": "rt-bob"},
            },
            "Account": {
                "a1": {"home_account_id": "uid1.utid", "environment": "login.microsoftonline.com",
                    "realm": "tid-1", "local_account_id": "uid1", "username": "alice@example.com",
                    "authority_type": "MSSTS"},
                "a2": {"home_account_id": "uid2.utid", "environment": "login.microsoftonline.com",
                    "realm": "tid-1", "local_account_id": "uid2", "username": "bob@example.com",
                    "authority_type": "MSSTS"},
            },
            "IdToken": {},
            "AppMetadata": {}
        })
    }

    #[test]
    fn msal_cache_one_tenant_per_account() {
        let e = run(msal_cache()).unwrap_err();
        assert!(
            e.contains("several accounts")
                && e.contains("alice@example.com/cli")
                && e.contains("bob@example.com/cli"),
            "{e}"
        );
        assert!(!e.contains("rt-") && !e.contains("at-"));
        let t = translate(
            SourceKind::Msal,
            obj(msal_cache()),
            Some("Alice@example.com"),
        )
        .unwrap();
        assert_eq!(t.response["access_token"], "at-new");
        assert_eq!(t.response["expires_on"], "1800003600");
        assert_eq!(t.response["refresh_token"], "rt-alice");
        assert_eq!(
            t.response["token_endpoint"],
            "https://login.microsoftonline.com/tid-1/oauth2/v2.0/token"
        );
        assert_eq!(t.response["client_id"], "cli");
        assert_eq!(
            t.response["refresh_scope"],
            "https://graph.microsoft.com/.default"
        );
        assert_eq!(
            t.skipped,
            [(
                "bob@example.com/cli".to_owned(),
                "another account or client: import it with --account".to_owned()
            )]
        );
        let t = translate(SourceKind::Msal, obj(msal_cache()), Some("uid2.utid/cli")).unwrap();
        assert_eq!(t.response["refresh_token"], "rt-bob");
        let e = translate(SourceKind::Msal, obj(msal_cache()), Some("carol")).unwrap_err();
        assert!(
            e.starts_with("not an MSAL token cache: no account matches --account"),
            "{e}"
        );
        let e = run(json!({"AccessToken": {}, "Account": {}})).unwrap_err();
        assert_eq!(
            e,
            "not an MSAL token cache: it holds no access or refresh token"
        );
        let e = run(json!({"AccessToken": {"k": {"secret": "s"}}})).unwrap_err();
        assert!(e.contains("no `home_account_id`"), "{e}");
        // A hostile environment cannot point the token endpoint elsewhere.
        let mut bad = msal_cache();
        bad["RefreshToken"]["r2"]["environment"] = json!("evil.example/x?");
        bad["AccessToken"]["k3"]["environment"] = json!("evil.example/x?");
        let e = translate(SourceKind::Msal, obj(bad), Some("bob@example.com")).unwrap_err();
        assert!(e.contains("not a host name"), "{e}");
        let e = translate(
            SourceKind::Token,
            obj(json!({"access_token": "a"})),
            Some("x"),
        )
        .unwrap_err();
        assert!(e.contains("--account"), "{e}");
    }

    #[test]
    fn kinds_by_name() {
        for k in SourceKind::ALL {
            assert_eq!(SourceKind::from_name(k.name()), Some(k));
        }
        assert_eq!(SourceKind::from_name("gcloud"), None);
        // A token response that happens to carry `type` and `client_id` is not Google's.
        let o = obj(json!({"access_token": "a", "type": "bearer", "client_id": "c"}));
        assert_eq!(detect(&o), SourceKind::Token);
        let o = obj(json!({"type": "external_account", "audience": "a"}));
        assert_eq!(detect(&o), SourceKind::GoogleAdc);
    }
}
