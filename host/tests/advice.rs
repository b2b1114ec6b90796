//! Advice that points the right way (promise 5: an error says what to do). The second
//! outside review (issue 22, item 7) found failures whose exit code was right but whose
//! advice sent the user elsewhere: a wrong database password advised role grants and the
//! store directory's owner; a failed login advised about a refresh token that "may have been
//! spent" (a login has none yet); an oversized discovery document was "the token endpoint's
//! reply"; docker's `store` of a foreign secret for a mapped registry said "not mapped"; a
//! plain-http token endpoint was accepted by `put` and refused at refresh with "retry later";
//! the browser page said "login complete" after `access_denied`. Each failure is triggered
//! for real here, through the `credlock` binary, and its advice line is checked.
#![cfg(unix)]

mod common;
#[path = "common/http.rs"]
mod http;
#[path = "common/pg.rs"]
mod pg;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The line `credlock: hint: ...` of a failed run.
fn hint(r: &Run) -> String {
    r.stderr
        .lines()
        .find_map(|l| l.strip_prefix("credlock: hint: "))
        .unwrap_or_else(|| panic!("no hint line: {r:?}"))
        .to_owned()
}

/// The line `credlock: error: ...` of a failed run.
fn error(r: &Run) -> String {
    r.stderr
        .lines()
        .find_map(|l| l.strip_prefix("credlock: error: "))
        .unwrap_or_else(|| panic!("no error line: {r:?}"))
        .to_owned()
}

/// A route's reply: a status and body, or no answer at all (the connection stays open
/// until the client gives up).
#[derive(Clone)]
enum Reply {
    Json(u16, String),
    Never,
}

/// An HTTP server on 127.0.0.1 answering canned replies by path (`{BASE}` in a body is
/// its own address), for replies the real OAuth server never sends: the tests' one server
/// (`common/http.rs`), with a table of routes.
fn fake_server(routes: Vec<(&str, Reply)>) -> String {
    let routes: Vec<(String, Reply)> = routes.into_iter().map(|(p, r)| (p.to_owned(), r)).collect();
    // The address is known once the server listens; no request comes before that.
    let base = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let own = std::sync::Arc::clone(&base);
    let server = http::Server::start(move |req| {
        let reply = routes
            .iter()
            .find(|(p, _)| *p == req.path)
            .map(|(_, r)| r.clone())
            .unwrap_or(Reply::Json(404, "{}".into()));
        match reply {
            Reply::Json(status, body) => {
                let base = own.get().expect("the address is set before any request");
                http::Response::new(status, body.replace("{BASE}", base))
                    .header("Content-Type", "application/json")
            }
            // Held past any client timeout the tests set (each connection has its thread).
            Reply::Never => {
                std::thread::sleep(Duration::from_secs(30));
                http::Response::new(503, "")
            }
        }
    });
    let url = format!("http://127.0.0.1:{}", server.port);
    base.set(url.clone()).expect("set once");
    url
}

fn metadata() -> (&'static str, Reply) {
    (
        "/.well-known/oauth-authorization-server",
        Reply::Json(
            200,
            r#"{"issuer":"{BASE}","token_endpoint":"{BASE}/token","device_authorization_endpoint":"{BASE}/device","authorization_endpoint":"{BASE}/authorize"}"#.into(),
        ),
    )
}

fn device_reply() -> (&'static str, Reply) {
    (
        "/device",
        Reply::Json(
            200,
            r#"{"device_code":"dc","user_code":"ABCD-EFGH","verification_uri":"{BASE}/verify","expires_in":60,"interval":1}"#.into(),
        ),
    )
}

/// Bigger than any reply credlock reads (1 MiB), smaller than the review's 60 MB.
fn huge_json() -> String {
    format!("{{\"pad\":\"{}\"}}", "x".repeat(2 * 1024 * 1024))
}

const SPENT: &str = "may have been spent";

/// What the server does (described, and its routes), what the message must name, and what
/// the advice must say.
type LoginCase = (
    &'static str,
    Vec<(&'static str, Reply)>,
    &'static [&'static str],
    &'static str,
);

#[test]
fn a_failed_login_advises_a_login_not_a_spent_refresh_token() {
    warm();
    let env = Env::new().env("CREDLOCK_HTTP_TIMEOUT", "1");
    let login = |base: &str| env.run(&["login", "acme", "--issuer", base, "--client-id", "c"], "");
    let cases: Vec<LoginCase> = vec![
        (
            "no device code",
            vec![
                metadata(),
                (
                    "/device",
                    Reply::Json(
                        200,
                        r#"{"user_code":"ABCD","verification_uri":"{BASE}/v","expires_in":60}"#
                            .into(),
                    ),
                ),
            ],
            &["device_authorization_endpoint", "`device_code` is missing"],
            "--issuer",
        ),
        (
            "a token type other than Bearer",
            vec![
                metadata(),
                device_reply(),
                (
                    "/token",
                    Reply::Json(
                        200,
                        r#"{"access_token":"at","token_type":"mac","expires_in":60}"#.into(),
                    ),
                ),
            ],
            &["token_endpoint", "not Bearer"],
            "Bearer",
        ),
        (
            "a device endpoint that never answers",
            vec![metadata(), ("/device", Reply::Never)],
            &["device_authorization_endpoint", "did not answer in time"],
            "reachable",
        ),
        (
            "an oversized discovery document",
            vec![(
                "/.well-known/oauth-authorization-server",
                Reply::Json(200, huge_json()),
            )],
            &["authorization server's metadata", "too large"],
            "--issuer",
        ),
        (
            "an oversized device authorization reply",
            vec![metadata(), ("/device", Reply::Json(200, huge_json()))],
            &["device_authorization_endpoint", "too large"],
            "--issuer",
        ),
        (
            "an OAuth error from the device endpoint",
            vec![
                metadata(),
                (
                    "/device",
                    Reply::Json(400, r#"{"error":"invalid_client"}"#.into()),
                ),
            ],
            &["device_authorization_endpoint", "invalid_client"],
            "--client-id",
        ),
    ];
    for (what, routes, names, advice) in cases {
        let base = fake_server(routes);
        let r = login(&base);
        assert_eq!(r.code, 7, "{what}: {r:?}");
        let (message, hint) = (error(&r), hint(&r));
        for name in names {
            assert!(
                message.contains(name),
                "{what}: the message lacks {name:?}: {r:?}"
            );
        }
        assert!(
            !message.contains("the token endpoint's reply"),
            "{what}: {r:?}"
        );
        assert!(!hint.contains(SPENT), "{what}: {r:?}");
        assert!(
            hint.contains(advice),
            "{what}: the advice lacks {advice:?}: {r:?}"
        );
        assert!(hint.contains("credlock login"), "{what}: {r:?}");
        assert!(
            !env.ok(&["list"], "").contains("acme"),
            "{what}: nothing stored"
        );
    }
}

/// A `credlock login --browser --no-open` run, its URL read from its standard error.
struct BrowserLogin {
    child: std::process::Child,
    url: String,
}

impl BrowserLogin {
    fn start(env: &Env, base: &str) -> BrowserLogin {
        let mut child = env
            .command(&[
                "login",
                "acme",
                "--browser",
                "--no-open",
                "--issuer",
                base,
                "--client-id",
                "c",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("credlock printed no URL").unwrap();
            if line.contains("state=") {
                break line.trim().to_owned();
            }
        };
        // Keep reading so that credlock never blocks on a full pipe; the lines are not needed.
        std::thread::spawn(move || lines.for_each(drop));
        BrowserLogin { child, url }
    }

    fn param(&self, name: &str) -> String {
        let query = self.url.split_once('?').unwrap().1;
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_owned()
    }

    /// What the browser shows for the callback with `extra` beside the state.
    fn callback(&self, extra: &str) -> String {
        // redirect_uri=http%3A%2F%2F127.0.0.1%3APORT%2Fcallback
        let port = self
            .param("redirect_uri")
            .split("%3A")
            .nth(2)
            .unwrap()
            .split('%')
            .next()
            .unwrap()
            .to_owned();
        let mut s = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "GET /callback?state={}&{extra} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            self.param("state")
        )
        .unwrap();
        let mut page = String::new();
        let _ = s.read_to_string(&mut page);
        page
    }

    fn code(mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "the login did not end");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn the_browser_page_says_what_happened() {
    warm();
    let env = Env::new();
    let base = fake_server(vec![
        metadata(),
        (
            "/token",
            Reply::Json(400, r#"{"error":"invalid_grant"}"#.into()),
        ),
    ]);
    // Denied in the browser: the page says so, and nothing was stored.
    let login = BrowserLogin::start(&env, &base);
    let page = login.callback("error=access_denied");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("denied") && page.contains("nothing was stored"),
        "{page}"
    );
    assert!(!page.contains("complete."), "{page}");
    assert_eq!(login.code(), 11);
    // A code whose exchange then fails: the page cannot know yet, so it says where the
    // outcome is shown instead of "login complete".
    let login = BrowserLogin::start(&env, &base);
    let page = login.callback("code=c0de");
    assert!(
        page.contains("exchanges it for tokens") && page.contains("terminal"),
        "{page}"
    );
    assert!(!page.contains("login complete."), "{page}");
    assert_eq!(login.code(), 7);
    assert!(!env.ok(&["list"], "").contains("acme"));
}

#[test]
fn put_and_import_refuse_a_plain_http_token_endpoint_off_loopback() {
    warm();
    let env = Env::new();
    let doc = r#"{"access_token":"at","refresh_token":"rt","expires_in":60,"client_id":"c","token_endpoint":"http://as.example/token"}"#;
    let r = env.run(&["put", "acme"], doc);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        error(&r).contains("`token_endpoint` is plain http"),
        "{r:?}"
    );
    assert!(error(&r).contains("--allow-insecure-http"), "{r:?}");
    assert!(
        hint(&r).contains("https") && hint(&r).contains("nothing was stored"),
        "{r:?}"
    );
    let file = env.dir.path().join("token.json");
    std::fs::write(&file, doc).unwrap();
    let r = env.run(&["import", "acme", &file.display().to_string()], "");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        error(&r).contains("`token_endpoint` is plain http"),
        "{r:?}"
    );
    let revoke = r#"{"access_token":"at","revocation_endpoint":"http://as.example/revoke"}"#;
    let r = env.run(&["put", "acme"], revoke);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        error(&r).contains("`revocation_endpoint` is plain http"),
        "{r:?}"
    );
    assert!(!env.ok(&["list"], "").contains("acme"));
    // In a map, the entry is skipped and reported; the others are imported.
    let map = env.dir.path().join("map.json");
    std::fs::write(
        &map,
        format!(r#"{{"insecure":{doc},"fine":{{"access_token":"at2","client_id":"c","token_endpoint":"http://127.0.0.1:9/token"}}}}"#),
    )
    .unwrap();
    let r = env.run(&["import", "--map", &map.display().to_string()], "");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("plain http"), "{r:?}");
    let list = env.ok(&["list"], "");
    assert!(
        list.contains("fine") && !list.contains("insecure"),
        "{list}"
    );
    // Allowed explicitly, as the refresh would then be.
    env.ok(&["--allow-insecure-http", "put", "acme"], doc);
    let insecure = env.clone_with(&[("CREDLOCK_ALLOW_INSECURE_HTTP", "1")]);
    insecure.ok(&["put", "other"], doc);
}

/// Run `docker-credential-credlock store` the way docker's client does.
fn docker_store(env: &Env, dir: &std::path::Path, stdin: &str) -> Run {
    let link = dir.join("docker-credential-credlock");
    if !link.exists() {
        std::os::unix::fs::symlink(BIN, &link).unwrap();
    }
    let template = env.command(&["store"]);
    let mut c = std::process::Command::new(&link);
    c.args(template.get_args());
    for (k, v) in template.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    run_cmd(c, stdin)
}

#[test]
fn docker_store_of_a_foreign_secret_for_a_mapped_registry_says_so() {
    warm();
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    env.ok(
        &["put", "registry"],
        r#"{"access_token":"at-registry","expires_in":3600}"#,
    );
    env.ok(
        &["helper", "map", "docker", "localhost:5000", "registry"],
        "",
    );
    let r = docker_store(
        &env,
        dir.path(),
        r#"{"ServerURL":"localhost:5000","Username":"me","Secret":"hunter2-password"}"#,
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("is mapped to tenant 'registry'"), "{r:?}");
    assert!(!r.stdout.contains("not mapped"), "{r:?}");
    assert!(hint(&r).contains("credlock helper unmap docker"), "{r:?}");
    assert!(!format!("{r:?}").contains("hunter2"), "{r:?}");
    // An unmapped registry still says that, with the advice to map it.
    let r = docker_store(
        &env,
        dir.path(),
        r#"{"ServerURL":"other.example","Username":"me","Secret":"hunter2-password"}"#,
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("not mapped"), "{r:?}");
    assert!(hint(&r).contains("credlock helper map docker"), "{r:?}");
}

#[test]
fn a_wrong_database_password_advises_the_password_not_grants() {
    warm();
    let cluster = pg::PgCluster::start();
    let mut admin = cluster.admin();
    // The cluster trusts every local connection; make this one ask for a password.
    admin
        .batch_execute("SET password_encryption = 'scram-sha-256'; ALTER ROLE credlock PASSWORD 'right-password'")
        .unwrap();
    let hba: String = admin.query_one("SHOW hba_file", &[]).unwrap().get(0);
    admin
        .batch_execute(&format!(
            "COPY (SELECT 'host all all 127.0.0.1/32 scram-sha-256') TO '{hba}'; SELECT pg_reload_conf();"
        ))
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let env = Env::new()
        .env("CREDLOCK_STORE", &cluster.url("schema=advice"))
        .env("XDG_DATA_HOME", &data.path().display().to_string())
        .env(
            "CREDLOCK_KEY_FILE",
            &data.path().join("key").display().to_string(),
        )
        .env("PGPASSWORD", "wrong-password");
    let r = env.run(&["list"], "");
    assert_eq!(r.code, 8, "{r:?}");
    assert!(
        error(&r).contains("password authentication failed"),
        "{r:?}"
    );
    assert!(!error(&r).contains("USAGE and CREATE"), "{r:?}");
    let advice = hint(&r);
    assert!(
        advice.contains("PGPASSWORD") && advice.contains("pg_hba.conf"),
        "{r:?}"
    );
    assert!(!advice.contains("directory"), "{r:?}");
    assert!(!format!("{r:?}").contains("wrong-password"), "{r:?}");
    // The right password opens it (the check above was about the password, nothing else).
    env.clone_with(&[("PGPASSWORD", "right-password")])
        .ok(&["init"], "");
}

#[test]
fn system_schemas_are_refused_as_a_store_s_schema() {
    warm();
    for schema in ["pg_catalog", "public", "information_schema"] {
        // Refused before any connection: nothing listens on port 9.
        let env = Env::new().env(
            "CREDLOCK_STORE",
            &format!("postgres://credlock@127.0.0.1:9/postgres?schema={schema}"),
        );
        let r = env.run(&["list"], "");
        assert_eq!(r.code, 2, "{schema}: {r:?}");
        assert!(
            error(&r).contains(&format!("schema={schema} is PostgreSQL's own")),
            "{r:?}"
        );
        assert!(error(&r).contains("schema=credlock"), "{r:?}");
        assert!(hint(&r).contains("store's URL"), "{r:?}");
    }
}
