//! `credlock login` and `logout` against the real OAuth server (tests/oauth-server, with its
//! device flow and authorization code + PKCE): the test plays the user over HTTP. Guards the
//! login promises: one flow at the server however many processes log in at once, polling at
//! the server's pace, nothing stored from a hostile reply or over a newer `put`, abandoned
//! logins collected, and a logout that really revokes.

mod common;
#[path = "common/http.rs"]
mod http;
#[path = "common/oauth.rs"]
mod oauth;
use common::*;
use oauth::{follow_to_callback, OAuthServer};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const SCOPE: &str = "openid offline_access api";

/// A running `credlock login`, its standard error streamed line by line.
struct Login {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Login {
    fn start(env: &Env, args: &[&str]) -> Login {
        let mut c = env.command(args);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawning credlock login");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Login {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    fn device(env: &Env, server: &OAuthServer, client: &str) -> Login {
        Login::start(
            env,
            &[
                "login",
                "acme",
                "--issuer",
                &server.base,
                "--client-id",
                client,
                "--scope",
                SCOPE,
            ],
        )
    }

    /// The next stderr line after one equal to `marker` (trimmed), within 30 s.
    fn line_after(&mut self, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut take_next = false;
        while Instant::now() < deadline {
            let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            self.seen.push(line.clone());
            if take_next {
                return line.trim().to_owned();
            }
            take_next = line.trim() == marker;
        }
        panic!("no line after {marker:?}; stderr so far: {:#?}", self.seen);
    }

    fn user_code(&mut self) -> String {
        self.line_after("and enter the code:")
    }

    /// Wait (at most 60 s) and return exit code, stdout and all of stderr.
    fn finish(mut self) -> Run {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "login did not end: {:#?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        // The reader thread ends at EOF, which the exit brought.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(line);
        }
        Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr: self.seen.join("\n"),
        }
    }
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("{e}: {s:?}"))
}

fn stat(server: &OAuthServer, key: &str) -> u64 {
    server.stats()[key].as_u64().unwrap()
}

/// Nothing of the login is left: no tenant, no pending login.
fn nothing_stored(env: &Env) {
    let list = env.ok(&["list"], "");
    assert!(!list.contains("acme"), "{list}");
}

#[test]
fn device_login_end_to_end_polls_at_the_interval_and_honours_slow_down() {
    warm();
    let server = OAuthServer::start(60);
    let env = Env::new();
    let mut login = Login::device(&env, &server, "device-app");
    let code = login.user_code();
    assert!(
        login.seen.iter().any(|l| l.contains("/device")),
        "{:#?}",
        login.seen
    );
    // The first poll answers slow_down: the next one must come 5 s later than the interval.
    server.device_fault("slow_down", 1);
    std::thread::sleep(Duration::from_millis(2500));
    server.device(&code, "approve");
    let run = login.finish();
    assert_eq!(run.code, 0, "{run:?}");
    let out = json(&run.stdout);
    assert_eq!(out["joined"], false);
    let token = env.ok(&["token", "acme"], "");
    assert_eq!(
        out["access_token_sha256"].as_str().unwrap(),
        sha256_hex(token.trim().as_bytes())
    );
    assert!(server.resource(token.trim()));
    // One device authorization; polls: one answered slow_down, the next one granted.
    assert_eq!(stat(&server, "device_authorizations"), 1);
    let polls: Vec<u64> = server.stats()["device_poll_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(polls.len(), 2, "{polls:?}");
    let gap = polls[1] - polls[0];
    // interval (1 s) + slow_down (5 s); a little slack for scheduling.
    assert!(
        (5_900..8_000).contains(&gap),
        "gap after slow_down: {gap} ms"
    );
    eprintln!("measured: poll gap after slow_down {gap} ms");
    // Stored as `put` would: the refresh grant works with what the login stored.
    let refreshed = env.ok(&["refresh", "acme"], "");
    assert_ne!(refreshed, token);
    assert_eq!(stat(&server, "refresh_successes"), 1);
    let list = env.ok(&["list", "--json"], "");
    let list = json(&list);
    assert_eq!(list[0]["client_id"], "device-app");
    assert_eq!(list[0]["token_endpoint"], server.token_endpoint());
    assert_eq!(list[0]["scope"], SCOPE);
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[test]
fn eight_concurrent_logins_run_one_flow_and_return_the_same_tokens() {
    warm();
    let server = OAuthServer::start(60);
    let env = Env::new();
    let logins: Vec<Login> = (0..8)
        .map(|_| Login::device(&env, &server, "device-app"))
        .collect();
    // Every process shows a code, and it is the same one.
    let mut codes = Vec::new();
    let mut logins: Vec<Login> = logins
        .into_iter()
        .map(|mut l| {
            codes.push(l.user_code());
            l
        })
        .collect();
    codes.dedup();
    assert_eq!(codes.len(), 1, "{codes:?}");
    let approved = Instant::now();
    server.device(&codes[0], "approve");
    let runs: Vec<Run> = logins.drain(..).map(Login::finish).collect();
    let all_done_ms = approved.elapsed().as_millis();
    let outs: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| {
            assert_eq!(r.code, 0, "{r:?}");
            json(&r.stdout)
        })
        .collect();
    for o in &outs {
        assert_eq!(o["access_token_sha256"], outs[0]["access_token_sha256"]);
        assert_eq!(o["revision"], outs[0]["revision"]);
    }
    let joined = outs.iter().filter(|o| o["joined"] == true).count();
    assert_eq!(joined, 7, "{outs:?}");
    assert_eq!(
        stat(&server, "device_authorizations"),
        1,
        "one flow at the server"
    );
    assert_eq!(stat(&server, "device_approvals"), 1);
    eprintln!(
        "measured: 8 logins, {} device authorization(s), {} poll(s), all 8 done {all_done_ms} ms after the approval",
        stat(&server, "device_authorizations"),
        stat(&server, "device_polls")
    );
}

#[test]
fn a_killed_login_is_resumed_by_the_next_one_or_collected_after_expiry() {
    warm();
    let server = OAuthServer::start(60);

    // Resumed: the second login joins the dead one's pending entry and polls its code.
    let env = Env::new();
    let mut first = Login::device(&env, &server, "device-app");
    let code = first.user_code();
    first.child.kill().unwrap();
    let _ = first.child.wait();
    assert!(env.ok(&["list"], "").contains("pending login: acme"));
    // `status` shows a tenant whose first login is in progress, never its code.
    let status = json(&env.ok(&["status", "--json"], ""));
    assert_eq!(status[0]["tenant"], "acme", "{status}");
    assert_eq!(status[0]["stored"], false, "{status}");
    assert_eq!(status[0]["pending_login"]["kind"], "device", "{status}");
    let text = env.ok(&["status", "acme"], "");
    assert!(text.contains("device login in progress"), "{text}");
    assert!(
        !text.contains(&code),
        "status printed the user code: {text}"
    );
    let r = env.run(&["token", "acme"], "");
    assert_eq!(r.code, 12, "token during a pending login says so: {r:?}");
    assert!(r.stderr.contains("in progress"), "{r:?}");
    let mut second = Login::device(&env, &server, "device-app");
    assert_eq!(second.user_code(), code, "the same code is shown");
    server.device(&code, "approve");
    let run = second.finish();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(stat(&server, "device_authorizations"), 1);
    assert!(!env.ok(&["list"], "").contains("pending login"));

    // Collected: a short-lived code, its login killed; the next writer after its expiry
    // removes it.
    let env = Env::new();
    let mut login = Login::device(&env, &server, "device-short");
    login.user_code();
    login.child.kill().unwrap();
    let _ = login.child.wait();
    let list = env.ok(&["list"], "");
    assert!(list.contains("pending login: acme (device"), "{list}");
    let doctor = env.run(&["doctor"], "");
    assert!(doctor.stdout.contains("pending login: acme"), "{doctor:?}");
    std::thread::sleep(Duration::from_millis(4_500));
    assert!(
        env.ok(&["list"], "").contains("expired"),
        "a reader does not write"
    );
    env.ok(
        &["put", "other"],
        r#"{"access_token":"x","expires_in":600}"#,
    );
    let list = env.ok(&["list"], "");
    assert!(!list.contains("pending login"), "{list}");
    assert_eq!(
        env.run(&["token", "acme"], "").code,
        3,
        "not found, no longer pending"
    );

    // Any writer collects, a maintenance one too (a rekey here), not only merges.
    let mut login = Login::device(&env, &server, "device-short");
    login.user_code();
    login.child.kill().unwrap();
    let _ = login.child.wait();
    assert!(env.ok(&["list"], "").contains("pending login: acme"));
    std::thread::sleep(Duration::from_millis(4_500));
    env.ok(&["rekey"], "");
    let list = env.ok(&["list"], "");
    assert!(!list.contains("pending login"), "{list}");
}

#[test]
fn a_login_completing_after_a_newer_put_does_not_overwrite_it() {
    warm();
    let server = OAuthServer::start(60);
    let env = Env::new();
    let mut login = Login::device(&env, &server, "device-app");
    let code = login.user_code();
    let put = server.grant("public-app");
    env.ok(&["put", "acme"], &put.to_string());
    let revoked = stat(&server, "grants_revoked");
    server.device(&code, "approve");
    let run = login.finish();
    assert_eq!(run.code, 11, "{run:?}");
    assert!(run.stderr.contains("newer tokens"), "{run:?}");
    assert_eq!(
        env.ok(&["token", "acme"], "").trim(),
        put["access_token"].as_str().unwrap()
    );
    assert!(!env.ok(&["list"], "").contains("pending login"));
    // The discarded tokens' grant is revoked at the server (it offers revocation), not left
    // live with nothing that will ever use it (issue 22, item 8); the kept one still works.
    assert_eq!(stat(&server, "grants_revoked"), revoked + 1);
    assert!(server.resource(put["access_token"].as_str().unwrap()));
}

#[test]
fn a_denied_login_stores_nothing() {
    warm();
    let server = OAuthServer::start(60);
    let env = Env::new();
    let mut login = Login::device(&env, &server, "device-app");
    let code = login.user_code();
    server.device(&code, "deny");
    let run = login.finish();
    assert_eq!(run.code, 11, "{run:?}");
    assert!(run.stderr.contains("denied"), "{run:?}");
    nothing_stored(&env);
}

#[test]
fn hostile_token_replies_give_a_specific_error_and_store_nothing() {
    warm();
    let server = OAuthServer::start(60);
    for (fault, says) in [
        ("wrong_token_type", "not Bearer"),
        ("missing_access_token", "`access_token` is missing"),
        ("malformed", "not valid JSON"),
        ("huge", "too large"),
    ] {
        let env = Env::new();
        let mut login = Login::device(&env, &server, "device-app");
        let code = login.user_code();
        server.device_fault(fault, 1);
        server.device(&code, "approve");
        let run = login.finish();
        assert_eq!(run.code, 7, "{fault}: {run:?}");
        assert!(run.stderr.contains(says), "{fault}: {run:?}");
        nothing_stored(&env);
    }
}

/// A one-route-per-path HTTP server on 127.0.0.1 answering canned replies, for metadata and
/// replies the real server would never send (`{BASE}` in a body is its own address): the
/// tests' one server (`common/http.rs`), with a table of routes.
fn fake_server(routes: Vec<(String, u16, String)>) -> String {
    // The address is known once the server listens; no request comes before that.
    let base = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let own = std::sync::Arc::clone(&base);
    let server = http::Server::start(move |req| {
        let (status, body) = routes
            .iter()
            .find(|(p, _, _)| *p == req.path)
            .map(|(_, s, b)| (*s, b.clone()))
            .unwrap_or((404, "{}".into()));
        let base = own.get().expect("the address is set before any request");
        http::Response::new(status, body.replace("{BASE}", base))
            .header("Content-Type", "application/json")
    });
    let url = format!("http://127.0.0.1:{}", server.port);
    base.set(url.clone()).expect("set once");
    url
}

#[test]
fn hostile_metadata_and_device_replies_give_a_specific_error() {
    warm();
    let env = Env::new();
    // Discovery that sends the token to a plain-http host on the network.
    let base = fake_server(vec![(
        "/.well-known/openid-configuration".into(),
        200,
        r#"{"issuer":"{BASE}","token_endpoint":"http://example.com/token","device_authorization_endpoint":"{BASE}/device"}"#.into(),
    )]);
    let r = env.run(
        &["login", "acme", "--issuer", &base, "--client-id", "c"],
        "",
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("token_endpoint is plain http"), "{r:?}");
    // Metadata for another issuer.
    let base = fake_server(vec![(
        "/.well-known/oauth-authorization-server".into(),
        200,
        r#"{"issuer":"https://elsewhere.example","token_endpoint":"{BASE}/token"}"#.into(),
    )]);
    let r = env.run(
        &["login", "acme", "--issuer", &base, "--client-id", "c"],
        "",
    );
    assert_eq!(r.code, 7, "{r:?}");
    assert!(r.stderr.contains("another issuer"), "{r:?}");
    // Malformed metadata.
    let base = fake_server(vec![(
        "/.well-known/oauth-authorization-server".into(),
        200,
        r#"{"issuer": "#.into(),
    )]);
    let r = env.run(
        &["login", "acme", "--issuer", &base, "--client-id", "c"],
        "",
    );
    assert_eq!(r.code, 7, "{r:?}");
    assert!(r.stderr.contains("not valid JSON"), "{r:?}");
    // A device authorization reply without a user code.
    let base = fake_server(vec![
        (
            "/.well-known/oauth-authorization-server".into(),
            200,
            r#"{"issuer":"{BASE}","token_endpoint":"{BASE}/token","device_authorization_endpoint":"{BASE}/device"}"#.into(),
        ),
        (
            "/device".into(),
            200,
            r#"{"device_code":"d","verification_uri":"{BASE}/v","expires_in":60}"#.into(),
        ),
    ]);
    let r = env.run(
        &["login", "acme", "--issuer", &base, "--client-id", "c"],
        "",
    );
    assert_eq!(r.code, 7, "{r:?}");
    assert!(r.stderr.contains("`user_code` is missing"), "{r:?}");
    // Explicit endpoints are held to the same rule.
    let r = env.run(
        &[
            "login",
            "acme",
            "--client-id",
            "c",
            "--token-endpoint",
            "https://as.example/token",
            "--device-authorization-endpoint",
            "http://as.example/device",
        ],
        "",
    );
    assert_eq!(r.code, 2, "{r:?}");
    nothing_stored(&env);
}

#[test]
fn logout_revokes_the_refresh_token_or_deletes_nothing() {
    warm();
    let server = OAuthServer::start(60);
    let env = Env::new();
    let mut doc = server.grant("conf-basic");
    let rt = doc["refresh_token"].as_str().unwrap().to_owned();
    doc["revocation_endpoint"] = format!("{}/token/revocation", server.base).into();
    env.ok(&["put", "acme"], &doc.to_string());
    let r = env.run(&["logout", "acme"], "");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("revoked"), "{r:?}");
    assert_eq!(stat(&server, "revocations"), 1);
    assert_eq!(
        server.raw_refresh("conf-basic", "basic-secret", &rt),
        400,
        "the server rejects the revoked refresh token"
    );
    assert_eq!(env.run(&["token", "acme"], "").code, 3);

    // A revocation endpoint that does not answer: nothing is deleted, unless --local.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut doc = server.grant("conf-basic");
    doc["revocation_endpoint"] = format!("http://127.0.0.1:{closed}/revoke").into();
    env.ok(&["put", "acme"], &doc.to_string());
    let r = env.run(&["logout", "acme"], "");
    assert_eq!(r.code, 7, "{r:?}");
    assert!(r.stderr.contains("--local"), "{r:?}");
    env.ok(&["token", "acme"], "");
    let r = env.run(&["logout", "acme", "--local"], "");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("FAILED"), "{r:?}");
    assert_eq!(env.run(&["token", "acme"], "").code, 3);

    // A login's tenant knows its revocation endpoint from discovery.
    let mut login = Login::device(&env, &server, "device-app");
    let code = login.user_code();
    server.device(&code, "approve");
    assert_eq!(login.finish().code, 0);
    let revoked = stat(&server, "grants_revoked");
    let r = env.run(&["logout", "acme"], "");
    assert!(r.code == 0 && r.stderr.contains("revoked"), "{r:?}");
    assert_eq!(stat(&server, "grants_revoked"), revoked + 1);
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .build()
        .into()
}

#[test]
fn browser_login_follows_the_printed_url_to_the_loopback_callback_once() {
    warm();
    let server = OAuthServer::start(60);
    let env = Env::new();
    let mut login = Login::start(
        &env,
        &[
            "login",
            "acme",
            "--issuer",
            &server.base,
            "--client-id",
            "device-app",
            "--scope",
            SCOPE,
            "--browser",
            "--no-open",
        ],
    );
    let url = login.line_after("To log in, open this URL in a browser:");
    assert!(
        url.contains("code_challenge_method=S256") && url.contains("state="),
        "{url}"
    );
    let callback = follow_to_callback(&url, &server.base);
    assert!(callback.starts_with("http://127.0.0.1:"), "{callback}");
    // A callback with another state is refused, and the login keeps waiting for its own.
    let state = oauth_param(&callback, "state");
    let wrong = callback.replace(&format!("state={state}"), "state=0123456789abcdef");
    let r = agent().get(&wrong).call().unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = agent()
        .get(callback.replace("/callback?", "/other?"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(login.child.try_wait().unwrap().is_none(), "still waiting");
    let r = agent().get(&callback).call().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let run = login.finish();
    assert_eq!(run.code, 0, "{run:?}");
    // The listener is gone: a second callback finds nothing to talk to.
    assert!(
        agent().get(&callback).call().is_err(),
        "second callback refused"
    );
    let token = env.ok(&["token", "acme"], "");
    assert!(server.resource(token.trim()));
    assert_eq!(stat(&server, "authorizations"), 1);
    // Stored so that refresh works.
    env.ok(&["refresh", "acme"], "");
    assert_eq!(stat(&server, "refresh_successes"), 1);
}

fn oauth_param(url: &str, name: &str) -> String {
    url.split(['?', '&'])
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap()
        .to_owned()
}

#[test]
fn a_second_browser_login_joins_the_first_and_gets_its_tokens() {
    warm();
    let server = OAuthServer::start(60);
    let env = Env::new();
    let args = [
        "login",
        "acme",
        "--issuer",
        &server.base,
        "--client-id",
        "device-app",
        "--scope",
        "openid api",
        "--browser",
        "--no-open",
    ];
    let mut first = Login::start(&env, &args);
    let url = first.line_after("To log in, open this URL in a browser:");
    let mut second = Login::start(&env, &args);
    assert_eq!(
        second.line_after("To log in, open this URL in a browser:"),
        url,
        "the joiner shows the same URL"
    );
    assert!(
        second.seen.iter().any(|l| l.contains("joining")),
        "{:#?}",
        second.seen
    );
    let callback = follow_to_callback(&url, &server.base);
    assert_eq!(
        agent().get(&callback).call().unwrap().status().as_u16(),
        200
    );
    let (a, b) = (first.finish(), second.finish());
    assert_eq!((a.code, b.code), (0, 0), "{a:?}\n{b:?}");
    let (a, b) = (json(&a.stdout), json(&b.stdout));
    assert_eq!(a["access_token_sha256"], b["access_token_sha256"]);
    assert_eq!(
        (a["joined"].clone(), b["joined"].clone()),
        (false.into(), true.into())
    );
    assert_eq!(stat(&server, "authorizations"), 1);
}

fn browser_args(server: &OAuthServer, scope: &str) -> Vec<String> {
    [
        "login",
        "acme",
        "--issuer",
        &server.base,
        "--client-id",
        "device-app",
        "--scope",
        scope,
        "--browser",
        "--no-open",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn start_browser(env: &Env, server: &OAuthServer, scope: &str) -> Login {
    let args = browser_args(server, scope);
    Login::start(env, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The loopback port of a callback URL.
fn callback_port(callback: &str) -> u16 {
    let rest = callback.strip_prefix("http://127.0.0.1:").unwrap();
    rest[..rest.find('/').unwrap()].parse().unwrap()
}

/// Issue 22, item 2: any local user could hold the callback listener, which served one
/// connection at a time with a 5 s limit per read: a connection sending a byte a second was
/// never dropped, and the real callback got no answer until the login timed out. Now each
/// connection is served on its own within a deadline, and one past the bound evicts the
/// oldest, so neither a trickle nor a crowd of idle connections delays the callback.
#[test]
fn no_connection_can_hold_off_the_browser_callback() {
    warm();
    let server = OAuthServer::start(60);
    let env = Env::new();
    let mut login = start_browser(&env, &server, "openid api");
    let url = login.line_after("To log in, open this URL in a browser:");
    let callback = follow_to_callback(&url, &server.base);
    let port = callback_port(&callback);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A request head trickled a byte every 300 ms, for longer than any limit per read.
    let trickle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            for b in b"GET /callback?state=x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
                .iter()
                .cycle()
            {
                if stop.load(std::sync::atomic::Ordering::SeqCst) || s.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    // And more idle connections than the listener serves at once.
    let idle: Vec<std::net::TcpStream> = (0..40)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(4)))
        .build()
        .into();
    let asked = Instant::now();
    let answer = agent.get(&callback).call();
    let took = asked.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let status = answer.map(|r| r.status().as_u16());
    assert!(
        matches!(status, Ok(200)),
        "the callback was not answered beside a trickling and 40 idle connections: {status:?}"
    );
    eprintln!("measured: callback answered in {} ms", took.as_millis());
    let run = login.finish();
    assert_eq!(run.code, 0, "{run:?}");
    drop(idle);
    trickle.join().unwrap();
    assert!(server.resource(env.ok(&["token", "acme"], "").trim()));
}

/// Issue 22, item 3 (RFC 9207, mix-up defence): the test server's metadata says
/// `authorization_response_iss_parameter_supported`, so a callback naming another issuer, or
/// none, is refused with its own error and its code never exchanged. Before, a callback with
/// `iss=https://evil.invalid` was accepted and its code exchanged.
#[test]
fn a_callback_from_another_issuer_is_refused_and_its_code_not_exchanged() {
    warm();
    let server = OAuthServer::start(60);
    // The server names itself in the callback, and that callback is accepted.
    let (login, callback, env) = follow_to_callback_of_a_new_login(&server);
    let iss = oauth_param(&callback, "iss");
    assert_eq!(iss, server.base.replace(':', "%3A").replace('/', "%2F"));
    assert_eq!(agent().get(&callback).call().unwrap().status(), 200);
    let run = login.finish();
    assert_eq!(run.code, 0, "{run:?}");
    assert!(server.resource(env.ok(&["token", "acme"], "").trim()));
    for (what, forged) in [
        (
            "another issuer",
            "iss=https%3A%2F%2Fevil.invalid".to_owned(),
        ),
        ("no issuer", String::new()),
    ] {
        let (login, callback, env) = follow_to_callback_of_a_new_login(&server);
        let exchanges = stat(&server, "code_exchanges");
        let forged = callback.replace(&format!("iss={iss}"), &forged);
        assert_ne!(forged, callback);
        agent().get(&forged).call().unwrap();
        let run = login.finish();
        assert_eq!(run.code, 11, "{what}: {run:?}");
        assert!(
            run.stderr.contains("another authorization server") && run.stderr.contains("RFC 9207"),
            "{what}: {run:?}"
        );
        if what == "another issuer" {
            assert!(run.stderr.contains("evil.invalid"), "{run:?}");
        }
        assert_eq!(stat(&server, "code_exchanges"), exchanges, "{what}");
        nothing_stored(&env);
    }
}

/// A browser login of its own store, followed to its callback (not visited).
fn follow_to_callback_of_a_new_login(server: &OAuthServer) -> (Login, String, Env) {
    let env = Env::new();
    let mut login = start_browser(&env, server, "openid api");
    let url = login.line_after("To log in, open this URL in a browser:");
    let callback = follow_to_callback(&url, &server.base);
    (login, callback, env)
}

/// Issue 22, item 4: OpenID Connect Core §11 requires `prompt=consent` with
/// `offline_access`; without it an OpenID provider (the test server, as oidc-provider does by
/// default) drops the scope and issues no refresh token, and the login reported success
/// with "refresh token: none" behind it. Now the request carries it, and a login that asked
/// for offline access and got no refresh token says so.
#[test]
fn a_browser_login_asking_for_offline_access_gets_a_refresh_token() {
    warm();
    let server = OAuthServer::start(60);
    let env = Env::new();
    let mut login = start_browser(&env, &server, SCOPE);
    let url = login.line_after("To log in, open this URL in a browser:");
    assert!(url.contains("&prompt=consent&"), "{url}");
    let callback = follow_to_callback(&url, &server.base);
    assert_eq!(agent().get(&callback).call().unwrap().status(), 200);
    let run = login.finish();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(json(&run.stdout)["refresh_token"], true, "{run:?}");
    assert!(!run.stderr.contains("warning"), "{run:?}");
    let status = json(&env.ok(&["status", "acme", "--json"], ""));
    assert_eq!(status[0]["has_refresh_token"], true, "{status}");
    env.ok(&["refresh", "acme"], "");
    assert_eq!(stat(&server, "refresh_successes"), 1);

    // Without prompt=consent (the old request, forwarded by hand) the server grants no
    // offline access: the login says so instead of a silent success.
    let mut login = start_browser(&env, &server, SCOPE);
    let url = login.line_after("To log in, open this URL in a browser:");
    let callback = follow_to_callback(&url.replace("&prompt=consent", ""), &server.base);
    assert_eq!(agent().get(&callback).call().unwrap().status(), 200);
    let run = login.finish();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(json(&run.stdout)["refresh_token"], false, "{run:?}");
    assert!(
        run.stderr.contains("no refresh token") && run.stderr.contains("offline_access"),
        "{run:?}"
    );
    // A login that did not ask for offline access is not warned.
    let mut login = start_browser(&env, &server, "openid api");
    let url = login.line_after("To log in, open this URL in a browser:");
    assert!(!url.contains("prompt="), "{url}");
    let callback = follow_to_callback(&url, &server.base);
    assert_eq!(agent().get(&callback).call().unwrap().status(), 200);
    let run = login.finish();
    assert_eq!(
        (run.code, run.stderr.contains("warning")),
        (0, false),
        "{run:?}"
    );
}

/// Issue 22, item 5: after `kill -9` of a browser login, the next login printed the dead
/// process's URL as "joining" (its loopback port closed: following it fails), then a second
/// URL, and a user who followed the first waited out the full 5 minutes. A browser login
/// whose owner is gone is now taken over at once: only the new URL is shown.
/// A login that found a dead one's pending entry showed its own URL, never the dead one's,
/// and never said it was joining.
fn assert_taken_over(login: &Login, url: &str, dead_url: &str) {
    assert_ne!(
        url, dead_url,
        "the dead login's URL was shown: {:#?}",
        login.seen
    );
    assert!(
        !login.seen.iter().any(|l| l.contains("joining")),
        "{:#?}",
        login.seen
    );
}

#[test]
fn a_killed_browser_login_is_taken_over_not_joined() {
    warm();
    let server = OAuthServer::start(60);
    let env = Env::new();
    let mut first = start_browser(&env, &server, SCOPE);
    let dead_url = first.line_after("To log in, open this URL in a browser:");
    first.child.kill().unwrap();
    let _ = first.child.wait();
    assert!(env
        .ok(&["list"], "")
        .contains("pending login: acme (browser"));
    let started = Instant::now();
    let mut second = start_browser(&env, &server, SCOPE);
    let url = second.line_after("To log in, open this URL in a browser:");
    let took = started.elapsed();
    assert_taken_over(&second, &url, &dead_url);
    eprintln!(
        "measured: the new URL shown {} ms after the login started",
        took.as_millis()
    );
    let callback = follow_to_callback(&url, &server.base);
    assert_eq!(agent().get(&callback).call().unwrap().status(), 200);
    let run = second.finish();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(json(&run.stdout)["joined"], false, "{run:?}");
    assert!(!env.ok(&["list"], "").contains("pending login"));
    assert!(server.resource(env.ok(&["token", "acme"], "").trim()));

    // The owner is dead but its refresh lock is busy (here: held by the test, as a refresh
    // of the tenant would): the dead listener refuses connections, so its URL is still not
    // shown; once the lock is free the login is taken over.
    let env = Env::new();
    let mut first = start_browser(&env, &server, SCOPE);
    let dead_url = first.line_after("To log in, open this URL in a browser:");
    first.child.kill().unwrap();
    let _ = first.child.wait();
    let id = sha256_hex(b"credlock tenant id\0acme");
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(
            env.store_dir()
                .join("locks")
                .join(format!("refresh-{id}.lock")),
        )
        .unwrap();
    lock.lock().unwrap();
    let mut second = start_browser(&env, &server, SCOPE);
    std::thread::sleep(Duration::from_millis(1500));
    lock.unlock().unwrap();
    let url = second.line_after("To log in, open this URL in a browser:");
    assert_taken_over(&second, &url, &dead_url);
    let callback = follow_to_callback(&url, &server.base);
    assert_eq!(agent().get(&callback).call().unwrap().status(), 200);
    let run = second.finish();
    assert_eq!(run.code, 0, "{run:?}");
}
