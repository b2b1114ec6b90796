//! The refresh grant against a real OAuth server with refresh-token rotation and reuse
//! detection (tests/oauth-server): each client authentication method, the 401 path, and
//! every server fault leaving the store in its last good state with a specific error.

mod common;
#[path = "common/oauth.rs"]
mod oauth;
use common::*;
use oauth::OAuthServer;

fn stored(env: &Env, server: &OAuthServer, client: &str) {
    env.ok(&["put", "acme"], &server.grant(client).to_string());
}

#[test]
fn each_client_auth_method_refreshes_once_and_rotates() {
    warm();
    let server = OAuthServer::start(60);
    for client in ["conf-basic", "conf-post", "public-app"] {
        let env = Env::new();
        stored(&env, &server, client);
        let before = env.ok(&["token", "acme"], "");
        let requests_before = server.stats()["refresh_requests"].as_u64().unwrap();
        // A fresh token costs no request.
        assert_eq!(env.ok(&["token", "acme"], ""), before);
        assert_eq!(
            server.stats()["refresh_requests"].as_u64().unwrap(),
            requests_before
        );
        let after = env.ok(&["refresh", "acme"], "");
        assert_ne!(after, before, "{client}: refresh returned the old token");
        assert!(
            server.resource(after.trim()),
            "{client}: the refreshed token is not accepted"
        );
        // And the rotated refresh token works in turn.
        let third = env.ok(&["refresh", "acme"], "");
        assert!(server.resource(third.trim()), "{client}");
        let stats = server.stats();
        assert_eq!(
            stats["refresh_requests"].as_u64().unwrap(),
            requests_before + 2,
            "{client}: {stats}"
        );
        assert_eq!(stats["duplicate_presentations"], 0, "{stats}");
        assert_eq!(stats["invalid_grant"], 0, "{stats}");
        // `--force` used to be accepted and ignored; an option that does nothing is refused
        // as a usage error (refresh always refreshes unless --rejected says otherwise).
        let forced = env.run(&["refresh", "acme", "--force"], "");
        assert_eq!(forced.code, 2, "{client}: {}", forced.stderr);
        assert!(forced.stderr.contains("--force"), "{}", forced.stderr);
    }
}

#[test]
fn token_refreshes_transparently_when_not_fresh_enough() {
    warm();
    // 4-second tokens count as 3 (a second of server granularity); asked for 1 more second,
    // the token is fresh at first and due after 2 seconds.
    let server = OAuthServer::start(4);
    let env = Env::new();
    stored(&env, &server, "conf-basic");
    let first = env.ok(&["token", "acme", "--min-valid", "1"], "");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let second = env.ok(&["token", "acme", "--min-valid", "1"], "");
    assert_ne!(first, second);
    assert!(server.resource(second.trim()));
    assert_eq!(server.stats()["refresh_successes"], 1);
}

#[test]
fn rejected_token_path_refreshes_only_the_refused_token() {
    warm();
    let server = OAuthServer::start(60);
    let env = Env::new();
    stored(&env, &server, "conf-post");
    let old = env.ok(&["token", "acme"], "").trim().to_owned();
    let old_sha = credlock_core::sha256_hex(old.as_bytes());
    // A 401 for the current token: refresh.
    let new = env
        .ok(&["refresh", "acme", "--rejected", &old_sha[..20]], "")
        .trim()
        .to_owned();
    assert_ne!(new, old);
    // A late 401 for the old token, from another process: no second refresh.
    let again = env
        .ok(&["refresh", "acme", "--rejected", &old_sha], "")
        .trim()
        .to_owned();
    assert_eq!(again, new);
    // The token itself can come on stdin instead of argv.
    let r = env.run(
        &["refresh", "acme", "--rejected-stdin"],
        &format!("{old}\n"),
    );
    assert_eq!((r.code, r.stdout.trim()), (0, new.as_str()), "{r:?}");
    assert_eq!(server.stats()["refresh_requests"], 1);
}

/// Put a tenant, inject `mode` for one refresh, and return the results of that refresh and
/// of the next one.
fn with_fault(server: &OAuthServer, mode: &str) -> (Run, Run, Env) {
    let env = Env::new().env("CREDLOCK_HTTP_TIMEOUT", "2");
    stored(&env, server, "conf-basic");
    server.fault(mode, 1);
    let first = env.run(&["refresh", "acme"], "");
    let second = env.run(&["refresh", "acme"], "");
    (first, second, env)
}

#[test]
fn server_faults_give_specific_errors_and_keep_the_store() {
    warm();
    let server = OAuthServer::start(60);
    // Definite failures: the token was not spent; the next call refreshes normally.
    for (mode, message) in [
        ("http500", "answered 500"),
        ("http503_html", "failed with HTTP 503"),
    ] {
        let (first, second, env) = with_fault(&server, mode);
        assert_eq!(first.code, 7, "{mode}: {first:?}");
        assert!(first.stderr.contains(message), "{mode}: {first:?}");
        assert_eq!(
            second.code, 0,
            "{mode}: the next call should refresh: {second:?}"
        );
        assert!(server.resource(second.stdout.trim()));
        assert!(env.ok(&["list"], "").contains(" ok"), "{mode}");
    }
    // Ambiguous failures: the token may be spent; never presented again silently.
    for (mode, message) in [
        ("hang", "did not answer in time"),
        ("malformed", "not a valid token response"),
        ("cut_after_rotate", "broke after the request was sent"),
    ] {
        let before = server.stats();
        let (first, second, env) = with_fault(&server, mode);
        assert_eq!(first.code, 7, "{mode}: {first:?}");
        assert!(first.stderr.contains(message), "{mode}: {first:?}");
        assert_eq!(second.code, 4, "{mode}: {second:?}");
        assert!(
            second
                .stderr
                .contains("interrupted after its refresh token may have been spent"),
            "{mode}: {second:?}"
        );
        // The last good access token is still there, readable.
        assert_eq!(
            env.run(&["token", "acme", "--min-valid", "0"], "").code,
            0,
            "{mode}"
        );
        assert!(env.ok(&["list"], "").contains("re-login needed"), "{mode}");
        let after = server.stats();
        assert_eq!(
            after["duplicate_presentations"], before["duplicate_presentations"],
            "{mode}: {after}"
        );
        assert_eq!(
            after["grants_revoked"], before["grants_revoked"],
            "{mode}: {after}"
        );
    }
}

#[test]
fn reply_without_expires_in_is_stored_with_unknown_expiry() {
    warm();
    let server = OAuthServer::start(60);
    let env = Env::new();
    stored(&env, &server, "conf-basic");
    server.fault("no_expires_in", 1);
    // RFC 6749 §5.1 makes expires_in optional: the new tokens are kept (dropping them would
    // lose a rotated refresh token), and the expiry shows as unknown until a 401 says more.
    let token = env.ok(&["refresh", "acme"], "");
    assert!(server.resource(token.trim()));
    assert!(
        env.ok(&["list"], "").contains("unknown"),
        "the expiry should show as unknown"
    );
    // `token` serves it as is, however much validity is asked for...
    assert_eq!(env.ok(&["token", "acme", "--min-valid", "3600"], ""), token);
    // ...until a resource server rejects it.
    let sha = credlock_core::sha256_hex(token.trim().as_bytes());
    let next = env.ok(&["refresh", "acme", "--rejected", &sha], "");
    assert_ne!(next, token);
    assert!(server.resource(next.trim()));
    assert_eq!(server.stats()["duplicate_presentations"], 0);
}

#[test]
fn invalid_grant_marks_reauth_only_for_the_presented_token() {
    warm();
    let server = OAuthServer::start(60);
    let env = Env::new();
    let grant = server.grant("conf-basic");
    env.ok(&["put", "acme"], &grant.to_string());
    // Spend the refresh token behind credlock's back (as a buggy peer would).
    assert_eq!(
        server.raw_refresh(
            "conf-basic",
            "basic-secret",
            grant["refresh_token"].as_str().unwrap()
        ),
        200
    );
    let r = env.run(&["refresh", "acme"], "");
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("rejected the refresh token"), "{r:?}");
    assert!(env.ok(&["list"], "").contains("re-login needed"));
    // Sticky: no further presentations.
    let n = server.stats()["refresh_requests"].as_u64().unwrap();
    assert_eq!(
        env.run(&["token", "acme", "--min-valid", "3600"], "").code,
        4
    );
    assert_eq!(server.stats()["refresh_requests"].as_u64().unwrap(), n);
    // A new login clears it.
    env.ok(&["put", "acme"], &server.grant("conf-basic").to_string());
    assert_eq!(env.run(&["refresh", "acme"], "").code, 0);
}

/// `openssl s_server` on 127.0.0.1 with a self-signed certificate for another name: every
/// handshake fails on the client's side, before a byte of a request is written.
struct WrongCertServer {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl WrongCertServer {
    fn start() -> WrongCertServer {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
        let made = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=wrong.example", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("running openssl (scripts/setup.sh installs it)");
        assert!(made.success(), "openssl req failed");
        let mut child = Command::new("openssl")
            // -www: answer each connection on its own, never wait on standard input.
            .args(["s_server", "-www", "-accept", "127.0.0.1:0", "-cert"])
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("running openssl s_server");
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut port = None;
        let mut line = String::new();
        while port.is_none() && out.read_line(&mut line).unwrap() > 0 {
            port = line
                .trim()
                .strip_prefix("ACCEPT 127.0.0.1:")
                .and_then(|p| p.parse().ok());
            line.clear();
        }
        // Keep draining what it prints, so that it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        WrongCertServer {
            child,
            port: port.expect("openssl s_server printed no ACCEPT line"),
            _dir: dir,
        }
    }
}

impl Drop for WrongCertServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Read one request (head and Content-Length body) whole from `r`, then drop the connection
/// without a word: the request arrived, its outcome is unknown.
fn read_request_then_close(mut r: std::io::BufReader<std::net::TcpStream>) {
    use std::io::{BufRead, Read};
    let mut length = 0;
    let mut line = String::new();
    while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        line.clear();
    }
    let mut body = vec![0; length];
    let _ = r.read_exact(&mut body);
}

/// Serve each connection to a new listener on 127.0.0.1 with `serve` on its own thread;
/// returns the port.
fn serve(serve: fn(std::io::BufReader<std::net::TcpStream>)) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(std::io::BufReader::new(stream)));
        }
    });
    port
}

/// An HTTP proxy's answer to CONNECT: read the CONNECT head, answer `status`.
fn answer_connect(r: &mut std::io::BufReader<std::net::TcpStream>, status: &str) {
    use std::io::{BufRead, Write};
    let mut line = String::new();
    while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
        line.clear();
    }
    let _ = write!(
        r.get_mut(),
        "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n"
    );
}

/// A proxy that refuses every CONNECT: nothing reaches the endpoint.
fn refusing_proxy(mut r: std::io::BufReader<std::net::TcpStream>) {
    answer_connect(&mut r, "403 Forbidden");
}

/// A proxy that opens every tunnel, where the "endpoint" reads the request and closes.
fn tunnel_then_close(mut r: std::io::BufReader<std::net::TcpStream>) {
    answer_connect(&mut r, "200 Connection established");
    read_request_then_close(r);
}

const PROXY_VARS: [&str; 7] = [
    "ALL_PROXY",
    "all_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
];

/// `credlock token acme` with `proxy` as the only proxy setting of its environment.
fn token_call(env: &Env, proxy: Option<&str>) -> Run {
    let mut c = env.command(&["token", "acme"]);
    for k in PROXY_VARS {
        c.env_remove(k);
    }
    if let Some(p) = proxy {
        c.env("HTTPS_PROXY", p);
    }
    run_cmd(c, "")
}

/// Issue 22, item 1: a refresh that failed before a byte of its request can have reached the
/// server (name resolution, connect, TLS handshake, a proxy's CONNECT) is "not sent": the
/// token was not spent, the intent is withdrawn, the next call tries again. Only a failure
/// after the request was written leaves the outcome unknown (a re-login). Before the fix an
/// unresolvable name, a bad certificate and a refused CONNECT all read as "broke after the
/// request was sent" (exit 7, then exit 4 and needs_reauth on every later call): a short DNS
/// outage stranded every tenant whose token expired during it.
#[test]
fn a_request_that_never_left_keeps_the_refresh_token() {
    warm();
    let tls = WrongCertServer::start();
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let proxy = format!("http://127.0.0.1:{}", serve(refusing_proxy));
    // RFC 6761 §6.4: a name under .invalid never resolves; nothing leaves the machine.
    let unresolvable = "https://tokens.credlock-test.invalid/token".to_owned();
    // What went wrong, the endpoint, the proxy, and a word of the detail that shows the
    // failure was the one meant (a dead TLS server would be "refused" instead).
    let not_sent = [
        ("an unresolvable name", unresolvable.clone(), None, "lookup"),
        (
            "a refused port",
            format!("http://127.0.0.1:{refused}/token"),
            None,
            "refused",
        ),
        (
            "a TLS server with a wrong certificate",
            format!("https://127.0.0.1:{}/token", tls.port),
            None,
            "certificate",
        ),
        (
            "a refused proxy CONNECT",
            unresolvable,
            Some(proxy.as_str()),
            "proxy",
        ),
    ];
    let put = |env: &Env, url: &str| {
        let doc = serde_json::json!({
            "access_token": "at-expired", "expires_at": 1_700_000_000,
            "refresh_token": "rt-unspent", "token_endpoint": url, "client_id": "c",
        });
        env.ok(&["put", "acme"], &doc.to_string());
    };
    let status = |env: &Env| {
        let s: serde_json::Value =
            serde_json::from_str(&env.ok(&["status", "acme", "--json"], "")).unwrap();
        s[0].clone()
    };
    for (what, url, proxy, detail) in not_sent {
        let env = Env::new().env("CREDLOCK_HTTP_TIMEOUT", "5");
        put(&env, &url);
        for attempt in 1..=2 {
            let r = token_call(&env, proxy);
            assert_eq!(r.code, 7, "{what}, call {attempt}: {r:?}");
            assert!(
                r.stderr.contains("cannot connect to the token endpoint")
                    && r.stderr.contains(detail),
                "{what}, call {attempt}: {r:?}"
            );
            let s = status(&env);
            assert_eq!(s["needs_reauth"], false, "{what}: {s}");
            assert_eq!(s["can_refresh"], true, "{what}: {s}");
        }
    }
    // A server that read the request and closed: it may have rotated the token. Directly,
    // and through a proxy's tunnel (only the proxy's own connection is left unmarked).
    let tunnel = format!("http://127.0.0.1:{}", serve(tunnel_then_close));
    for (what, url, proxy) in [
        (
            "directly",
            format!("http://127.0.0.1:{}/token", serve(read_request_then_close)),
            None,
        ),
        (
            "through a proxy",
            "http://tokens.credlock-test.invalid/token".to_owned(),
            Some(tunnel.as_str()),
        ),
    ] {
        // Plain http off loopback, so that the proxy sees the request (a test server).
        let env = Env::new()
            .env("CREDLOCK_HTTP_TIMEOUT", "5")
            .env("CREDLOCK_ALLOW_INSECURE_HTTP", "1");
        put(&env, &url);
        let first = token_call(&env, proxy);
        assert_eq!(first.code, 7, "{what}: {first:?}");
        assert!(
            first.stderr.contains("broke after the request was sent"),
            "{what}: {first:?}"
        );
        let second = token_call(&env, proxy);
        assert_eq!(second.code, 4, "{what}: {second:?}");
        assert_eq!(status(&env)["needs_reauth"], true, "{what}");
    }
}
