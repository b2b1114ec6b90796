//! One POST to a token endpoint over a real HTTP client (ureq, rustls).
//!
//! Exactly one request per call: no retries and no redirects, because a refresh token sent
//! twice can revoke its whole grant; retrying is the core's decision. Plain `http` is only
//! allowed to loopback addresses unless the user explicitly allows it.

use credlock_core::platform::{HttpReply, TokenRequest, TransportError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use ureq::http::Uri;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, DefaultConnector, NextTimeout, Transport,
};

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
    let (agent, sent) = agent_for(&request.url, request.timeout_ms, policy)?;
    let mut req = agent
        .post(&request.url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json");
    if let Some(auth) = &request.authorization {
        req = req.header("Authorization", auth);
    }
    let response = req
        .send(request.body.as_bytes())
        .map_err(|e| sent.transport_error(e))?;
    read_reply(response)
}

/// Whether a byte of the request can have reached the server: set when the request is first
/// handed to the connection that carries it (after name resolution, connect, a proxy's
/// CONNECT and the TLS handshake all succeeded). Until then nothing was sent, whatever the
/// error says: a failure before is `connect` (the core withdraws its refresh intent, the
/// refresh token is unspent), one after is `timeout` or `interrupted` (it may be spent).
/// Classifying by ureq's error type instead got this wrong: a failed DNS lookup and a TLS
/// alert arrive as `Io` errors, a refused CONNECT as `ConnectProxyFailed`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sent(Arc<AtomicBool>);

impl Sent {
    fn mark(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The WIT's transport error for a failure of this call.
    pub(crate) fn transport_error(&self, e: ureq::Error) -> TransportError {
        transport_error(e, self.get())
    }
}

/// The last link of the connector chain: wraps the connection that carries the request so
/// that its first write marks [`Sent`]. A CONNECT proxy runs the whole chain for its own
/// connection first, and writes its CONNECT there: that connection is the one left alone
/// (a refused CONNECT sent nothing to the endpoint). Any other is wrapped, so that a doubt
/// errs towards "may have arrived".
#[derive(Debug)]
struct MarkSent {
    /// The request's scheme and authority.
    target: (Option<String>, Option<String>),
    /// The proxy's, if the agent has one.
    proxy: Option<(Option<String>, Option<String>)>,
    sent: Sent,
}

fn scheme_and_authority(uri: &Uri) -> (Option<String>, Option<String>) {
    (
        uri.scheme_str().map(str::to_ascii_lowercase),
        uri.authority().map(|a| a.as_str().to_ascii_lowercase()),
    )
}

impl Connector<Box<dyn Transport>> for MarkSent {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<Box<dyn Transport>>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let this = scheme_and_authority(details.uri);
        let to_proxy = self.proxy.as_ref() == Some(&this) && this != self.target;
        Ok(chained.map(|inner| {
            if to_proxy {
                inner
            } else {
                Box::new(MarkedTransport {
                    inner,
                    sent: self.sent.clone(),
                }) as Box<dyn Transport>
            }
        }))
    }
}

#[derive(Debug)]
struct MarkedTransport {
    inner: Box<dyn Transport>,
    sent: Sent,
}

impl Transport for MarkedTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        // Before the write: a write that fails half-way may still have delivered bytes.
        if amount > 0 {
            self.sent.mark();
        }
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// An agent for one call to `url` under the endpoint rules every OAuth call here follows
/// (the token endpoint's `post`, and the login's GETs): `https`, or `http` only to a
/// loopback host unless the user allowed otherwise; no redirect followed; one deadline for
/// connect plus total; no proxy from the environment for a loopback host. With it, the
/// [`Sent`] that classifies its failures.
pub(crate) fn agent_for(
    url: &str,
    timeout_ms: u32,
    policy: EndpointPolicy,
) -> Result<(ureq::Agent, Sent), TransportError> {
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
    let config = config.build();
    let sent = Sent::default();
    let connector = DefaultConnector::new().chain(MarkSent {
        target: scheme_and_authority(&uri),
        proxy: config.proxy().map(|p| scheme_and_authority(p.uri())),
        sent: sent.clone(),
    });
    let agent = ureq::Agent::with_parts(config, connector, DefaultResolver::default());
    Ok((agent, sent))
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
        // A reply came, so the request was sent.
        .map_err(|e| transport_error(e, true))?;
    Ok(HttpReply {
        status,
        content_type,
        body,
    })
}

/// The WIT's transport error for `e`, given whether a byte of the request can have reached
/// the server (`sent`, see [`Sent`]).
fn transport_error(e: ureq::Error, sent: bool) -> TransportError {
    use ureq::Error as E;
    match e {
        E::BadUri(_) | E::Http(_) => {
            TransportError::BadUrl("the request could not be built".into())
        }
        E::BodyExceedsLimit(_) => TransportError::ReplyTooLarge,
        // Before the request was written nothing was sent, however the connection failed
        // (name resolution, connect, a proxy's CONNECT, the TLS handshake): safe to forget.
        e if !sent => TransportError::Connect(not_sent_detail(e)),
        E::Timeout(_) => TransportError::Timeout,
        // Everything else happened with the request possibly on the wire.
        other => TransportError::Interrupted(other.to_string()),
    }
}

/// Why a connection was not made, in words (ureq's own are terse for some cases).
fn not_sent_detail(e: ureq::Error) -> String {
    use ureq::Error as E;
    match e {
        E::HostNotFound => "host not found".into(),
        E::ConnectionFailed => "connection failed".into(),
        E::Timeout(_) => "timed out connecting".into(),
        E::Tls(d) => format!("TLS: {d}"),
        E::Rustls(e) => format!("TLS: {e}"),
        E::ConnectProxyFailed(why) => format!("the proxy refused the connection: {why}"),
        E::Io(e) => e.to_string(),
        other => other.to_string(),
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
