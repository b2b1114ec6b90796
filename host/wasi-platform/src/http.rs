//! The token endpoint over `wasi:http/outgoing-handler`: under `wasmtime run -S http` the
//! WASI build refreshes with the same single-flight rules as every native host (the core
//! decides; this only moves bytes, exactly once, never following a redirect).
//!
//! Two things a native host gets from its OS that this one must do itself:
//! - the loopback rule: plain `http` only to a loopback host unless
//!   `CREDLOCK_ALLOW_INSECURE_HTTP=1` (a refresh token in clear text on a network);
//! - a call never outlives the refresh lease that protects it: a lease is a file with an
//!   expiry, not a lock the kernel holds for a live process, so a call running past it
//!   could overlap another process's refresh. The timeout is cut to what is left of the
//!   shortest lease held, less a margin for the commit that follows.

use crate::bindings::exports::credlock::store::token_endpoint::{
    HttpReply, TokenRequest, TransportError,
};
use std::time::Duration;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

/// The largest reply read (the WIT's `http-reply.body` limit).
const MAX_REPLY: usize = 1 << 20;
/// Left of a refresh lease for the commit after the call.
const LEASE_MARGIN_MS: u64 = 10_000;

struct Target {
    scheme: Scheme,
    authority: String,
    path_with_query: String,
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn parse(url: &str) -> Result<Target, TransportError> {
    let bad = |why: &str| Err(TransportError::BadUrl(why.into()));
    let (scheme, rest) = match url.split_once("://") {
        Some(("https", rest)) => (Scheme::Https, rest),
        Some(("http", rest)) => (Scheme::Http, rest),
        _ => return bad("only http and https URLs"),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return bad("the URL needs a host and no user info");
    }
    let host = match authority.rsplit_once(':') {
        // An IPv6 literal without a port has colons but ends with `]`.
        Some((h, port)) if !port.contains(']') => {
            if port.parse::<u16>().is_err() {
                return bad("the port is not a number");
            }
            h
        }
        _ => authority,
    };
    if matches!(scheme, Scheme::Http)
        && !is_loopback(host)
        && std::env::var("CREDLOCK_ALLOW_INSECURE_HTTP").as_deref() != Ok("1")
    {
        return bad("plain http to a non-loopback host would send the refresh token in clear text; use https (or set CREDLOCK_ALLOW_INSECURE_HTTP=1)");
    }
    let path_with_query = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    let path_with_query = path_with_query.split('#').next().unwrap_or("/").to_owned();
    Ok(Target {
        scheme,
        authority: authority.to_owned(),
        path_with_query,
    })
}

/// Errors before the request could have reached the server: nothing was spent.
fn before_sending(code: &ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::DnsTimeout
            | ErrorCode::DnsError(_)
            | ErrorCode::DestinationNotFound
            | ErrorCode::DestinationUnavailable
            | ErrorCode::DestinationIpProhibited
            | ErrorCode::DestinationIpUnroutable
            | ErrorCode::ConnectionRefused
            | ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionLimitReached
            | ErrorCode::TlsProtocolError
            | ErrorCode::TlsCertificateError
            | ErrorCode::TlsAlertReceived(_)
            | ErrorCode::HttpRequestDenied
            | ErrorCode::HttpRequestUriInvalid
            | ErrorCode::ConfigurationError
    )
}

fn transport(code: ErrorCode) -> TransportError {
    match code {
        ErrorCode::HttpResponseTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout => TransportError::Timeout,
        c if before_sending(&c) => TransportError::Connect(format!("{c:?}")),
        c => TransportError::Interrupted(format!("{c:?}")),
    }
}

/// What is left, in ms, of the shortest lease this instance holds, if any.
fn lease_left_ms() -> Option<u64> {
    let now = crate::now_ms();
    crate::HELD.with(|h| {
        h.borrow()
            .iter()
            .map(|(_, expiry)| expiry.saturating_sub(now))
            .min()
    })
}

pub fn post(request: TokenRequest) -> Result<HttpReply, TransportError> {
    let target = parse(&request.url)?;
    let mut timeout_ms = u64::from(request.timeout_ms);
    if let Some(left) = lease_left_ms() {
        let usable = left.saturating_sub(LEASE_MARGIN_MS);
        if usable == 0 {
            return Err(TransportError::Connect(
                "the refresh lease is about to expire; nothing was sent".into(),
            ));
        }
        timeout_ms = timeout_ms.min(usable);
    }
    let deadline = std::time::Instant::now() + Duration::from_millis(timeout_ms);
    let mut headers: Vec<(String, Vec<u8>)> = vec![
        (
            "content-type".into(),
            b"application/x-www-form-urlencoded".to_vec(),
        ),
        ("accept".into(), b"application/json".to_vec()),
    ];
    if let Some(auth) = &request.authorization {
        headers.push(("authorization".into(), auth.as_bytes().to_vec()));
    }
    let fields = Fields::from_list(&headers)
        .map_err(|e| TransportError::BadUrl(format!("a header was refused: {e:?}")))?;
    let req = OutgoingRequest::new(fields);
    let bad = |what: &str| TransportError::BadUrl(format!("the {what} was refused"));
    req.set_method(&Method::Post).map_err(|()| bad("method"))?;
    req.set_scheme(Some(&target.scheme))
        .map_err(|()| bad("scheme"))?;
    req.set_authority(Some(&target.authority))
        .map_err(|()| bad("host"))?;
    req.set_path_with_query(Some(&target.path_with_query))
        .map_err(|()| bad("path"))?;
    let options = RequestOptions::new();
    let ns = timeout_ms.saturating_mul(1_000_000);
    // Refused by a runtime that does not support one of them: the deadline below still holds.
    let _ = options.set_connect_timeout(Some(ns));
    let _ = options.set_first_byte_timeout(Some(ns));
    let _ = options.set_between_bytes_timeout(Some(ns));
    let body = req
        .body()
        .map_err(|()| TransportError::Connect("no request body".into()))?;
    let future = outgoing_handler::handle(req, Some(options)).map_err(transport)?;
    {
        let out = body
            .write()
            .map_err(|()| TransportError::Connect("no request body stream".into()))?;
        for chunk in request.body.as_bytes().chunks(4096) {
            out.blocking_write_and_flush(chunk)
                .map_err(|e| TransportError::Interrupted(format!("writing the request: {e:?}")))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(transport)?;

    let response = loop {
        if let Some(r) = future.get() {
            break r
                .map_err(|()| TransportError::Interrupted("the reply was taken twice".into()))?
                .map_err(transport)?;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(TransportError::Timeout);
        }
        let timer = wasip2::clocks::monotonic_clock::subscribe_duration(
            left.as_nanos().min(u128::from(u64::MAX)) as u64,
        );
        wasip2::io::poll::poll(&[&future.subscribe(), &timer]);
    };
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .into_iter()
        .next()
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    let incoming = response
        .consume()
        .map_err(|()| TransportError::Interrupted("the reply has no body".into()))?;
    let body = read_body(&incoming, deadline)?;
    drop(incoming);
    Ok(HttpReply {
        status,
        content_type,
        body,
    })
}

fn read_body(
    incoming: &IncomingBody,
    deadline: std::time::Instant,
) -> Result<Vec<u8>, TransportError> {
    let stream = incoming
        .stream()
        .map_err(|()| TransportError::Interrupted("the reply body was taken twice".into()))?;
    let mut body = Vec::new();
    loop {
        if std::time::Instant::now() >= deadline {
            return Err(TransportError::Timeout);
        }
        match stream.read(65536) {
            Ok(chunk) if chunk.is_empty() => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let timer = wasip2::clocks::monotonic_clock::subscribe_duration(
                    left.as_nanos().min(u128::from(u64::MAX)) as u64,
                );
                wasip2::io::poll::poll(&[&stream.subscribe(), &timer]);
            }
            Ok(chunk) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_REPLY {
                    return Err(TransportError::ReplyTooLarge);
                }
            }
            Err(StreamError::Closed) => return Ok(body),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(TransportError::Interrupted(format!(
                    "reading the reply: {}",
                    e.to_debug_string()
                )))
            }
        }
    }
}
