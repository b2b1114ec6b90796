//! One POST to a token endpoint over a real HTTP client (ureq, rustls).
//!
//! Exactly one request per call: no retries and no redirects, because a refresh token sent
//! twice can revoke its whole grant; retrying is the core's decision. Plain `http` is only
//! allowed to loopback addresses unless the user explicitly allows it.

use credlock_core::platform::{HttpReply, TokenRequest, TransportError};
use std::time::Duration;
use ureq::http::Uri;

/// The largest reply read (the WIT's limit).
pub const MAX_REPLY_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone, Copy, Default)]
pub struct EndpointPolicy {
    /// Allow `http://` to non-loopback hosts (refresh tokens in clear text on a network).
    pub allow_insecure_http: bool,
}

pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

pub fn post(request: &TokenRequest, policy: EndpointPolicy) -> Result<HttpReply, TransportError> {
    let agent = agent_for(&request.url, request.timeout_ms, policy)?;
    let mut req = agent
        .post(&request.url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json");
    if let Some(auth) = &request.authorization {
        req = req.header("Authorization", auth);
    }
    let response = req.send(request.body.as_bytes()).map_err(transport_error)?;
    read_reply(response)
}

/// An agent for one call to `url` under the endpoint rules every OAuth call here follows
/// (the token endpoint's `post`, and the login's GETs): `https`, or `http` only to a
/// loopback host unless the user allowed otherwise; no redirect followed; one deadline for
/// connect plus total; no proxy from the environment for a loopback host.
pub(crate) fn agent_for(
    url: &str,
    timeout_ms: u32,
    policy: EndpointPolicy,
) -> Result<ureq::Agent, TransportError> {
    let uri: Uri = url
        .parse()
        .map_err(|_| TransportError::BadUrl("not a valid URL".into()))?;
    let host = uri
        .host()
        .ok_or_else(|| TransportError::BadUrl("the URL has no host".into()))?;
    let loopback = is_loopback(host);
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if loopback || policy.allow_insecure_http => {}
        Some("http") => {
            return Err(TransportError::BadUrl(
                "plain http to a non-loopback host would send OAuth secrets in clear text; use https (or CREDLOCK_ALLOW_INSECURE_HTTP=1)".into(),
            ))
        }
        _ => return Err(TransportError::BadUrl("only http and https URLs are accepted".into())),
    }
    let timeout = Duration::from_millis(u64::from(timeout_ms));
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .timeout_connect(Some(timeout))
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(concat!("credlock/", env!("CARGO_PKG_VERSION")));
    if loopback {
        // A proxy from the environment has no business with a loopback endpoint.
        config = config.proxy(None);
    }
    Ok(config.build().into())
}

/// A reply as the core reads it: status, content type, and the body up to
/// [`MAX_REPLY_BYTES`] (a longer one is `reply-too-large`).
pub(crate) fn read_reply(
    mut response: ureq::http::Response<ureq::Body>,
) -> Result<HttpReply, TransportError> {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_REPLY_BYTES)
        .read_to_vec()
        .map_err(transport_error)?;
    Ok(HttpReply {
        status,
        content_type,
        body,
    })
}

pub(crate) fn transport_error(e: ureq::Error) -> TransportError {
    use ureq::Error as E;
    match e {
        // Before a connection exists nothing was sent: safe to forget.
        E::HostNotFound => TransportError::Connect("host not found".into()),
        E::ConnectionFailed => TransportError::Connect("connection failed".into()),
        E::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect) => {
            TransportError::Connect("timed out connecting".into())
        }
        E::Tls(d) => TransportError::Connect(format!("TLS: {d}")),
        E::Rustls(e) => TransportError::Connect(format!("TLS: {e}")),
        E::BadUri(_) | E::Http(_) => {
            TransportError::BadUrl("the request could not be built".into())
        }
        E::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            TransportError::Connect(io.to_string())
        }
        E::Timeout(_) => TransportError::Timeout,
        E::BodyExceedsLimit(_) => TransportError::ReplyTooLarge,
        // Everything else happened with the request possibly on the wire.
        other => TransportError::Interrupted(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_plain_http_off_loopback() {
        let req = |url: &str| TokenRequest {
            url: url.into(),
            body: String::new(),
            authorization: None,
            timeout_ms: 200,
        };
        assert!(matches!(
            post(&req("http://example.com/token"), EndpointPolicy::default()),
            Err(TransportError::BadUrl(_))
        ));
        assert!(matches!(
            post(&req("ftp://127.0.0.1/token"), EndpointPolicy::default()),
            Err(TransportError::BadUrl(_))
        ));
        assert!(
            is_loopback("127.0.0.1")
                && is_loopback("[::1]")
                && is_loopback("localhost")
                && !is_loopback("10.0.0.1")
        );
    }

    #[test]
    fn connection_refused_is_not_ambiguous() {
        // Bind then drop a listener to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let req = TokenRequest {
            url: format!("http://127.0.0.1:{port}/token"),
            body: String::new(),
            authorization: None,
            timeout_ms: 2000,
        };
        let err = post(&req, EndpointPolicy::default()).unwrap_err();
        assert!(!err.request_may_have_arrived(), "{err:?}");
    }
}
