//! The wire of a login, as pure functions: discovery (RFC 8414, OpenID Connect Discovery),
//! the endpoint rule, the device authorization reply (RFC 8628), what a poll's reply means,
//! PKCE (RFC 7636), the client's form and the callback's query.

use super::*;

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
pub(super) fn url_host(url: &str) -> Option<&str> {
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

pub(super) fn is_loopback_host(host: &str) -> bool {
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

pub(super) fn metadata_url(
    obj: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, LoginError> {
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

pub(super) fn malformed(why: String) -> StoreError {
    StoreError::Endpoint(EndpointError::MalformedReply(why))
}

/// A failed request of a login, told apart from a refresh's (whose advice is about a refresh
/// token that may have been spent): `endpoint` names what was asked.
pub(super) fn login_failed(endpoint: &str, error: EndpointError) -> StoreError {
    StoreError::Login(LoginError::Endpoint {
        endpoint: endpoint.to_owned(),
        error,
    })
}

/// [`login_failed`] for an endpoint error among others (a reply's own checks).
pub(super) fn in_login(endpoint: &str, e: StoreError) -> StoreError {
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
pub(super) fn check_bearer(g: &TokenGrant) -> Result<(), EndpointError> {
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

pub(super) fn form_decode(s: &str) -> Option<String> {
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
