//! The OAuth 2.0 wire: parsing token responses (RFC 6749 §5.1, §5.2) and building the
//! refresh request (§6) with client authentication (§2.3.1).
//!
//! Nothing here may put a token or secret into an error message: messages name fields.

use crate::expiry::{take_expiry, Reading};
use crate::model::ClientAuth;
use serde_json::{Map, Value};

pub use crate::expiry::{EXPIRY_GRANULARITY_MS, MAX_EXPIRES_IN_SECONDS};

/// A successful token response, parsed and validated.
#[derive(Clone, PartialEq)]
pub struct TokenGrant {
    pub access_token: String,
    pub token_type: String,
    pub expires_at_ms: Option<u64>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    /// Fields not interpreted by credlock, kept verbatim.
    pub extra: Map<String, Value>,
}

impl std::fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrant")
            .field("token_type", &self.token_type)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

/// What `put` accepts beyond a token response: how to refresh.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RefreshConfig {
    pub token_endpoint: Option<String>,
    pub client_id: Option<String>,
    pub client_auth: ClientAuth,
    pub retry_unknown_refresh: bool,
    pub revocation_endpoint: Option<String>,
    /// Sent as `scope` with every refresh, for servers that require it (Microsoft's v2.0
    /// endpoint does); RFC 6749 §6 makes it optional, so credlock sends none otherwise.
    pub refresh_scope: Option<String>,
    /// Sent as `resource` (RFC 8707) with every refresh: the resource the tokens are for, as
    /// MCP clients name their server, so that a refreshed token keeps its audience.
    pub refresh_resource: Option<String>,
}

/// Fields credlock reads from a token response itself (and the expiry fields
/// `expiry::take_expiry` takes).
const RESPONSE_FIELDS: &[&str] = &["access_token", "token_type", "refresh_token", "scope"];
/// Fields `put` reads as configuration; never kept among the response's extra fields.
const CONFIG_FIELDS: &[&str] = &[
    "token_endpoint",
    "client_id",
    "client_secret",
    "client_auth",
    "retry_unknown_refresh",
    "revocation_endpoint",
    "refresh_scope",
    "refresh_resource",
];

/// Parse a token response: a reply a token endpoint just sent, or tokens a program kept
/// (`how` says which, and when they were received: see `expiry`).
pub fn parse_token_response(
    json: &[u8],
    how: Reading,
) -> Result<(TokenGrant, Map<String, Value>), String> {
    let value: Value =
        serde_json::from_slice(json).map_err(|e| format!("not valid JSON ({})", json_error(&e)))?;
    let Value::Object(obj) = value else {
        return Err("not a JSON object".into());
    };
    parse_token_object(obj, how)
}

/// `parse_token_response` of a JSON object already parsed.
pub fn parse_token_object(
    mut obj: Map<String, Value>,
    how: Reading,
) -> Result<(TokenGrant, Map<String, Value>), String> {
    let access_token = match obj.remove("access_token") {
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(Value::String(_)) => return Err("`access_token` is empty".into()),
        Some(_) => return Err("`access_token` is not a string".into()),
        None => return Err("`access_token` is missing".into()),
    };
    check_token_chars("access_token", &access_token)?;
    let token_type = match obj.remove("token_type") {
        Some(Value::String(s)) if !s.is_empty() => s,
        // RFC 6749 requires it, but servers omit it; Bearer is the only type in use.
        None | Some(Value::Null) => "Bearer".to_owned(),
        Some(_) => return Err("`token_type` is not a non-empty string".into()),
    };
    let expires_at_ms = take_expiry(&mut obj, how)?;
    let refresh_token = match obj.remove("refresh_token") {
        Some(Value::String(s)) if !s.is_empty() => {
            check_token_chars("refresh_token", &s)?;
            Some(s)
        }
        None | Some(Value::Null) => None,
        Some(_) => return Err("`refresh_token` is not a non-empty string".into()),
    };
    let scope = match obj.remove("scope") {
        Some(Value::String(s)) => Some(s),
        None | Some(Value::Null) => None,
        Some(_) => return Err("`scope` is not a string".into()),
    };
    debug_assert!(RESPONSE_FIELDS.iter().all(|f| !obj.contains_key(*f)));
    let mut config = Map::new();
    for f in CONFIG_FIELDS {
        if let Some(v) = obj.remove(*f) {
            config.insert((*f).to_owned(), v);
        }
    }
    Ok((
        TokenGrant {
            access_token,
            token_type,
            expires_at_ms,
            refresh_token,
            scope,
            extra: obj,
        },
        config,
    ))
}

/// Interpret `put`'s configuration fields.
pub fn parse_refresh_config(mut config: Map<String, Value>) -> Result<RefreshConfig, String> {
    let mut string = |name: &str| -> Result<Option<String>, String> {
        match config.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
            Some(_) => Err(format!("`{name}` is not a non-empty string")),
        }
    };
    let token_endpoint = string("token_endpoint")?;
    let revocation_endpoint = string("revocation_endpoint")?;
    let refresh_scope = string("refresh_scope")?;
    let refresh_resource = string("refresh_resource")?;
    let client_id = string("client_id")?;
    let secret = string("client_secret")?;
    let method = string("client_auth")?;
    let retry_unknown_refresh = match config.remove("retry_unknown_refresh") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err("`retry_unknown_refresh` is not a boolean".into()),
    };
    for (name, url) in [
        ("token_endpoint", &token_endpoint),
        ("revocation_endpoint", &revocation_endpoint),
    ] {
        if let Some(url) = url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(format!("`{name}` is not an http(s) URL"));
            }
        }
    }
    let client_auth = match (method.as_deref(), secret) {
        (None, None) | (Some("none"), None) => ClientAuth::None,
        // A secret without a method: client_secret_basic is the method every server must support.
        (None | Some("basic" | "client_secret_basic"), Some(secret)) => {
            ClientAuth::Basic { secret }
        }
        (Some("post" | "client_secret_post"), Some(secret)) => ClientAuth::Post { secret },
        (Some("none"), Some(_)) => {
            return Err("`client_auth` is none but a `client_secret` is given".into())
        }
        (Some("basic" | "client_secret_basic" | "post" | "client_secret_post"), None) => {
            return Err("`client_auth` needs a `client_secret`".into())
        }
        (Some(_), _) => return Err("`client_auth` is not one of basic, post, none".into()),
    };
    if client_id.is_none() && (token_endpoint.is_some() || client_auth != ClientAuth::None) {
        return Err("`client_id` is missing (needed to refresh)".into());
    }
    Ok(RefreshConfig {
        token_endpoint,
        client_id,
        client_auth,
        retry_unknown_refresh,
        revocation_endpoint,
        refresh_scope,
        refresh_resource,
    })
}

/// Describe a JSON error by kind and position only: serde_json's own message can quote
/// the offending value, which may be a token.
pub fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let kind = match e.classify() {
        Category::Io => "I/O error",
        Category::Syntax => "syntax error",
        Category::Data => "unexpected structure",
        Category::Eof => "unexpected end",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}

/// Tokens go into HTTP headers: refuse anything that could split one (RFC 6750 b64token is
/// stricter; this is the part that matters for safety).
fn check_token_chars(name: &str, token: &str) -> Result<(), String> {
    if token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!(
            "`{name}` contains whitespace or control characters"
        ));
    }
    Ok(())
}

/// `application/x-www-form-urlencoded` encoding of one value (WHATWG URL, as RFC 6749 §2.3.1
/// requires for client credentials and Appendix B for the body).
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
    out
}

pub(crate) fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The form body and `Authorization` header of a refresh request (RFC 6749 §6), with
/// `resource` (RFC 8707) when given.
pub fn refresh_request_parts(
    refresh_token: &str,
    client_id: Option<&str>,
    auth: &ClientAuth,
    scope: Option<&str>,
    resource: Option<&str>,
) -> (String, Option<String>) {
    let mut body = format!(
        "grant_type=refresh_token&refresh_token={}",
        form_encode(refresh_token)
    );
    if let Some(scope) = scope {
        body.push_str("&scope=");
        body.push_str(&form_encode(scope));
    }
    if let Some(resource) = resource {
        body.push_str("&resource=");
        body.push_str(&form_encode(resource));
    }
    let id = client_id.unwrap_or("");
    let authorization = match auth {
        ClientAuth::None => {
            body.push_str("&client_id=");
            body.push_str(&form_encode(id));
            None
        }
        ClientAuth::Post { secret } => {
            body.push_str("&client_id=");
            body.push_str(&form_encode(id));
            body.push_str("&client_secret=");
            body.push_str(&form_encode(secret));
            None
        }
        ClientAuth::Basic { secret } => {
            let pair = format!("{}:{}", form_encode(id), form_encode(secret));
            Some(format!("Basic {}", base64(pair.as_bytes())))
        }
    };
    (body, authorization)
}

/// How a token endpoint answered, as RFC 6749 §5 classifies it.
#[derive(Debug, Clone, PartialEq)]
pub enum EndpointReply {
    Granted(TokenGrant),
    /// An error response with an `error` code (§5.2).
    OAuthError {
        status: u16,
        error: String,
        description: Option<String>,
    },
    /// A failure status without an OAuth error body.
    ServerError(u16),
    /// A 2xx reply that is not a usable token response: the server may have rotated.
    Malformed(String),
}

pub fn classify_reply(status: u16, body: &[u8], now_ms: u64) -> EndpointReply {
    if (200..300).contains(&status) {
        return match parse_token_response(body, Reading::reply(now_ms)) {
            Ok((grant, _)) => EndpointReply::Granted(grant),
            Err(why) => EndpointReply::Malformed(why),
        };
    }
    if let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) {
        if let Some(Value::String(error)) = obj.get("error") {
            // The description is the server's text; bound it and keep printable characters only.
            let description = match obj.get("error_description") {
                Some(Value::String(d)) => {
                    Some(d.chars().filter(|c| !c.is_control()).take(300).collect())
                }
                _ => None,
            };
            let error = error
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect();
            return EndpointReply::OAuthError {
                status,
                error,
                description,
            };
        }
    }
    EndpointReply::ServerError(status)
}

#[cfg(test)]
mod tests {
    //! Guards the wire details that interoperability depends on.
    use super::*;

    #[test]
    fn parses_a_full_response_and_keeps_unknown_fields() {
        let json =
            br#"{"access_token":"at","token_type":"bearer","expires_in":3600,"refresh_token":"rt",
            "scope":"a b","id_token":"x.y.z","client_id":"c","token_endpoint":"https://as/token"}"#;
        let (g, config) = parse_token_response(json, Reading::reply(1_000)).unwrap();
        assert_eq!(g.access_token, "at");
        assert_eq!(g.token_type, "bearer");
        assert_eq!(
            g.expires_at_ms,
            Some(1_000 + 3_600_000 - EXPIRY_GRANULARITY_MS)
        );
        assert_eq!(g.refresh_token.as_deref(), Some("rt"));
        assert_eq!(
            g.extra.get("id_token"),
            Some(&Value::String("x.y.z".into()))
        );
        assert!(!g.extra.contains_key("client_id"));
        let c = parse_refresh_config(config).unwrap();
        assert_eq!(c.client_id.as_deref(), Some("c"));
        assert_eq!(c.client_auth, ClientAuth::None);
    }

    #[test]
    fn expiry_forms() {
        let (g, _) = parse_token_response(
            br#"{"access_token":"a","expires_in":"60"}"#,
            Reading::reply(0),
        )
        .unwrap();
        assert_eq!(g.expires_at_ms, Some(59_000));
        let (g, _) = parse_token_response(
            br#"{"access_token":"a","expires_at":1700000000}"#,
            Reading::reply(0),
        )
        .unwrap();
        assert_eq!(g.expires_at_ms, Some(1_700_000_000_000));
        let (g, _) = parse_token_response(br#"{"access_token":"a"}"#, Reading::reply(0)).unwrap();
        assert_eq!(g.expires_at_ms, None);
        // A 1-second token is not born expired: at most half its lifetime counts as spent.
        let (g, _) =
            parse_token_response(br#"{"access_token":"a","expires_in":1}"#, Reading::reply(0))
                .unwrap();
        assert_eq!(g.expires_at_ms, Some(500));
        assert!(parse_token_response(
            br#"{"access_token":"a","expires_in":-1}"#,
            Reading::reply(0)
        )
        .is_err());
        let huge = parse_token_response(
            br#"{"access_token":"a","expires_in":1e30}"#,
            Reading::reply(0),
        )
        .map(|_| ())
        .unwrap_err();
        assert!(huge.contains("1e+30 seconds"), "{huge}");
    }

    #[test]
    fn errors_name_the_field_never_the_value() {
        let secret = "s3cr3t-value";
        let json = format!(r#"{{"access_token":"{secret} x"}}"#);
        let err = parse_token_response(json.as_bytes(), Reading::reply(0)).unwrap_err();
        assert!(
            err.contains("access_token") && !err.contains(secret),
            "{err}"
        );
        assert!(parse_token_response(b"[1]", Reading::reply(0))
            .unwrap_err()
            .contains("object"));
        assert!(parse_token_response(b"{", Reading::reply(0))
            .unwrap_err()
            .contains("JSON"));
    }

    #[test]
    fn client_auth_forms() {
        let cfg = |j: &str| parse_refresh_config(serde_json::from_str(j).unwrap());
        assert!(matches!(
            cfg(r#"{"client_id":"c","client_secret":"s"}"#)
                .unwrap()
                .client_auth,
            ClientAuth::Basic { .. }
        ));
        assert!(matches!(
            cfg(r#"{"client_id":"c","client_secret":"s","client_auth":"post"}"#)
                .unwrap()
                .client_auth,
            ClientAuth::Post { .. }
        ));
        assert!(cfg(r#"{"client_id":"c","client_auth":"post"}"#).is_err());
        assert!(cfg(r#"{"client_id":"c","client_secret":"s","client_auth":"none"}"#).is_err());
        assert!(cfg(r#"{"token_endpoint":"https://x"}"#).is_err());
        assert!(cfg(r#"{"client_id":"c","token_endpoint":"ftp://x"}"#).is_err());
    }

    #[test]
    fn refresh_request_encoding() {
        let (body, auth) = refresh_request_parts(
            "r t+/",
            Some("my id"),
            &ClientAuth::Basic {
                secret: "p:w".into(),
            },
            None,
            None,
        );
        assert_eq!(body, "grant_type=refresh_token&refresh_token=r+t%2B%2F");
        // RFC 6749 §2.3.1: form-encode, then "id:secret", then base64.
        assert_eq!(
            auth.as_deref(),
            Some(format!("Basic {}", base64(b"my+id:p%3Aw")).as_str())
        );
        assert_eq!(base64(b"my+id:p%3Aw"), "bXkraWQ6cCUzQXc=");
        let (body, auth) = refresh_request_parts(
            "rt",
            Some("c"),
            &ClientAuth::Post { secret: "s".into() },
            Some("a b"),
            None,
        );
        assert_eq!(
            body,
            "grant_type=refresh_token&refresh_token=rt&scope=a+b&client_id=c&client_secret=s"
        );
        assert_eq!(auth, None);
        let (body, _) = refresh_request_parts("rt", Some("c"), &ClientAuth::None, None, None);
        assert!(body.ends_with("&client_id=c"));
    }

    #[test]
    fn classifies_replies() {
        assert!(matches!(
            classify_reply(200, br#"{"access_token":"a"}"#, 0),
            EndpointReply::Granted(_)
        ));
        assert!(matches!(
            classify_reply(200, br#"{"access_token":"#, 0),
            EndpointReply::Malformed(_)
        ));
        assert!(matches!(
            classify_reply(400, br#"{"error":"invalid_grant"}"#, 0),
            EndpointReply::OAuthError { status: 400, ref error, .. } if error == "invalid_grant"
        ));
        assert_eq!(
            classify_reply(503, b"<html>", 0),
            EndpointReply::ServerError(503)
        );
        assert_eq!(classify_reply(404, b"", 0), EndpointReply::ServerError(404));
    }
}
