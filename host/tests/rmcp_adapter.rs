//! rmcp's own `AuthorizationManager` over credlock (feature `rmcp`), in separate processes,
//! against the real OAuth server. It guards against the race rmcp's file-backed stores have
//! (rust-sdk #1232): each process refreshes by itself when its token is due or after a 401,
//! presents a refresh token another process already spent, and the server's reuse detection
//! revokes the grant. With the adapter every refresh is credlock's: one per expiry across all
//! processes, no refresh token presented twice, no grant revoked, every token accepted; a 401
//! met by eight processes costs one refresh; and a rejection or `clear` after another process
//! rotated leaves the newer tokens in place.
//!
//! Its own `main` (harness = false): the same binary is the worker the tests spawn
//! (`RMCP_WORKER=...`), so the workers run rmcp exactly as a program that uses it would.

mod common;
#[path = "common/oauth.rs"]
mod oauth;
use common::*;
use credlock::adapters::rmcp::{authorization_manager, CredlockCredentialStore};
use credlock::{OpenOptions, Store};
use oauth::{follow_to_callback, OAuthServer, Use};
use rmcp::transport::auth::{AuthError, AuthorizationManager, CredentialStore};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WORKER_ENV: &str = "RMCP_WORKER";
const PROCESSES: usize = 8;
/// rmcp tasks in each process, sharing one manager.
const TASKS: usize = 4;
const SECONDS: u64 = 10;
/// The server's access-token lifetime: several expiries within the run.
const ACCESS_TTL_S: u32 = 2;
const TENANT: &str = "acme";

/// What credlock promises of each token rmcp is handed: the adapter asks for a minute,
/// capped at half the lifetime credlock dates (the TTL less a second of granularity).
fn promised_ms() -> u64 {
    (u64::from(ACCESS_TTL_S) * 1000 - credlock_core::oauth::EXPIRY_GRANULARITY_MS) / 2
}

fn open(dir: &str) -> Arc<Store> {
    Arc::new(
        Store::open_with(&OpenOptions {
            store_dir: Some(dir.into()),
            ignore_env: true,
            lock_timeout: Some(30.0),
            ..Default::default()
        })
        .expect("open the store"),
    )
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// rmcp's manager for the test server, as a program would make it.
async fn manager(store: Arc<Store>, base: &str) -> AuthorizationManager {
    let mut m = authorization_manager(store, TENANT, base)
        .await
        .expect("authorization_manager");
    assert!(
        m.initialize_from_store()
            .await
            .expect("initialize_from_store"),
        "rmcp found no credentials in the store"
    );
    m
}

fn main() {
    if let Ok(mode) = std::env::var(WORKER_ENV) {
        return worker(&mode);
    }
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let tests: [(&str, fn()); 4] = [
        (
            "eight_processes_of_rmcp_refresh_once_per_expiry",
            eight_processes_of_rmcp_refresh_once_per_expiry,
        ),
        (
            "a_401_met_by_eight_processes_costs_one_refresh",
            a_401_met_by_eight_processes_costs_one_refresh,
        ),
        (
            "a_rejection_or_clear_after_another_process_rotated_keeps_the_newer_tokens",
            a_rejection_or_clear_after_another_process_rotated_keeps_the_newer_tokens,
        ),
        (
            "rmcps_own_login_is_stored_so_that_credlock_refreshes_it",
            rmcps_own_login_is_stored_so_that_credlock_refreshes_it,
        ),
    ];
    warm();
    let mut ran = 0;
    for (name, test) in tests {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let t = Instant::now();
        eprintln!("test {name} ...");
        test();
        eprintln!("test {name} ... ok ({:.1} s)", t.elapsed().as_secs_f64());
        ran += 1;
    }
    assert!(ran > 0, "no test matches {filter:?}");
    eprintln!("test result: ok. {ran} passed");
}

/// A worker process: `calls` (get_access_token in TASKS tasks until the deadline, each
/// token used at once) or `401` (one token, refused, then rmcp's reaction to a 401).
fn worker(mode: &str) {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is set by the test"));
    let (dir, base) = (var("RMCP_STORE"), var("RMCP_OAUTH"));
    let rt = runtime();
    let report = rt.block_on(async {
        let manager = Arc::new(manager(open(&dir), &base).await);
        match mode {
            "calls" => {
                let deadline =
                    Instant::now() + Duration::from_secs(var("RMCP_SECONDS").parse().unwrap());
                let tasks: Vec<_> = (0..TASKS)
                    .map(|_| {
                        let (manager, base) = (Arc::clone(&manager), base.clone());
                        tokio::spawn(async move {
                            let agent = agent();
                            let (mut calls, mut late, mut refused) = (0u64, 0u64, Vec::new());
                            while Instant::now() < deadline {
                                let started_ms = oauth::wall_ms();
                                let token = match manager.get_access_token().await {
                                    Ok(t) => t,
                                    Err(e) => {
                                        refused.push(format!("get_access_token: {e}"));
                                        continue;
                                    }
                                };
                                let (agent2, base2) = (agent.clone(), base.clone());
                                let used = tokio::task::spawn_blocking(move || {
                                    oauth::use_token(
                                        &agent2,
                                        &base2,
                                        &token,
                                        started_ms,
                                        promised_ms(),
                                    )
                                })
                                .await
                                .unwrap();
                                match used {
                                    Use::Accepted => {}
                                    Use::Late => late += 1,
                                    Use::Refused(why) => refused.push(why),
                                }
                                calls += 1;
                            }
                            (calls, late, refused)
                        })
                    })
                    .collect();
                let (mut calls, mut late, mut refused) = (0, 0, Vec::<String>::new());
                for t in tasks {
                    let (c, l, r) = t.await.expect("a worker task");
                    calls += c;
                    late += l;
                    refused.extend(r);
                }
                json!({"calls": calls, "late": late, "refused": refused})
            }
            "401" => {
                let start_at_ms: u64 = var("RMCP_START_AT_MS").parse().unwrap();
                let token = manager.get_access_token().await.expect("get_access_token");
                // Meet the 401 together: every process holds the token before any refreshes.
                tokio::time::sleep(Duration::from_millis(
                    start_at_ms.saturating_sub(oauth::wall_ms()),
                ))
                .await;
                let a = agent();
                let refused = !resource(&a, &base, &token);
                // What rmcp's AuthClient does on a 401: refresh_token(), then retry with the
                // new token (try_refresh_or_reauth is refresh_token and its error mapping).
                let fresh = manager
                    .refresh_token()
                    .await
                    .expect("rmcp's refresh after a 401");
                let fresh = secret(&fresh);
                json!({
                    "refused": refused,
                    "changed": fresh != token,
                    "accepted": resource(&a, &base, &fresh),
                    "fresh_sha256": credlock::sha256_hex(fresh.as_bytes()),
                })
            }
            other => panic!("unknown worker mode {other}"),
        }
    });
    println!("{report}");
}

fn resource(agent: &ureq::Agent, base: &str, token: &str) -> bool {
    agent
        .get(format!("{base}/resource"))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .expect("the protected resource answers")
        .status()
        .as_u16()
        == 200
}

/// Run `PROCESSES` workers of `mode` on the store in `env`; their reports.
fn workers(env: &Env, server: &OAuthServer, mode: &str, extra: &[(&str, String)]) -> Vec<Value> {
    let exe = std::env::current_exe().expect("the test binary");
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            let mut c = std::process::Command::new(&exe);
            c.env(WORKER_ENV, mode)
                .env("RMCP_STORE", env.store_dir())
                .env("RMCP_OAUTH", &server.base)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            for (k, v) in extra {
                c.env(k, v);
            }
            c.spawn().expect("spawn a worker")
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("a worker");
            assert!(
                out.status.success(),
                "a worker failed: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice(&out.stdout).expect("a worker's report")
        })
        .collect()
}

/// A store with the server's grant for `conf-basic`, refreshed once so that every token
/// the test meets was dated by credlock from its own request; counters from zero.
fn seeded(server: &OAuthServer) -> Env {
    let env = Env::new();
    env.ok(&["put", TENANT], &server.grant("conf-basic").to_string());
    env.ok(&["refresh", TENANT], "");
    server.reset();
    env
}

fn eight_processes_of_rmcp_refresh_once_per_expiry() {
    let server = OAuthServer::start(ACCESS_TTL_S);
    let env = seeded(&server);
    let t = Instant::now();
    let reports = workers(
        &env,
        &server,
        "calls",
        &[("RMCP_SECONDS", SECONDS.to_string())],
    );
    let elapsed_s = t.elapsed().as_secs_f64();
    let stats = server.stats();
    let calls: u64 = reports.iter().map(|r| r["calls"].as_u64().unwrap()).sum();
    let late: u64 = reports.iter().map(|r| r["late"].as_u64().unwrap()).sum();
    let refused: Vec<&Value> = reports
        .iter()
        .flat_map(|r| r["refused"].as_array().unwrap())
        .collect();
    let refreshes = stats["refresh_requests"].as_u64().unwrap();
    eprintln!(
        "figures: {PROCESSES} processes x {TASKS} rmcp tasks, {SECONDS} s of 2-second tokens: \
         {calls} get_access_token calls, {} refused, {late} used late, {refreshes} refreshes, \
         {} duplicate presentations, {} invalid_grant, {} grants revoked",
        refused.len(),
        stats["duplicate_presentations"],
        stats["invalid_grant"],
        stats["grants_revoked"]
    );
    assert!(
        refused.is_empty(),
        "tokens rmcp was handed were refused: {refused:#?}\n{stats}"
    );
    assert!(
        calls >= (PROCESSES * TASKS) as u64 * SECONDS,
        "too few calls: {calls}"
    );
    assert_eq!(stats["duplicate_presentations"], 0, "{stats}");
    // A handle presented to the server would be an invalid_grant: there is none.
    assert_eq!(stats["invalid_grant"], 0, "{stats}");
    assert_eq!(stats["grants_revoked"], 0, "{stats}");
    assert_eq!(
        stats["refresh_requests"], stats["refresh_successes"],
        "{stats}"
    );
    // One refresh per expiry, not one per process: credlock refreshes when less than half
    // the lifetime it dates is left, so each token serves at least promised_ms (plus the one
    // in flight at the end); and there is at least one refresh per real lifetime.
    let most = (elapsed_s * 1000.0 / promised_ms() as f64) as u64 + 2;
    let least = SECONDS / u64::from(ACCESS_TTL_S);
    assert!(
        (least..=most).contains(&refreshes),
        "{refreshes} refreshes in {elapsed_s:.1} s, expected {least}..={most}: {stats}"
    );
}

fn a_401_met_by_eight_processes_costs_one_refresh() {
    // An access token the resource server does not accept while credlock deems it fresh for
    // an hour (revoked there, or issued by a server that forgot it); the refresh token is good.
    let server = OAuthServer::start(60);
    let env = Env::new();
    let mut grant = server.grant("conf-basic");
    grant["access_token"] = "an-access-token-the-server-does-not-know".into();
    grant["expires_in"] = 3600.into();
    env.ok(&["put", TENANT], &grant.to_string());
    server.reset();
    // Long enough for eight processes to start, compile nothing and load their token.
    let start_at_ms = oauth::wall_ms() + 5_000;
    let reports = workers(
        &env,
        &server,
        "401",
        &[("RMCP_START_AT_MS", start_at_ms.to_string())],
    );
    let stats = server.stats();
    eprintln!(
        "figures: a 401 met by {} of {PROCESSES} rmcp processes: {} refresh, {} duplicate presentations",
        reports.iter().filter(|r| r["refused"] == true).count(),
        stats["refresh_requests"],
        stats["duplicate_presentations"]
    );
    for r in &reports {
        assert_eq!(r["refused"], true, "{reports:#?}");
        assert_eq!(r["changed"], true, "{reports:#?}");
        assert_eq!(r["accepted"], true, "{reports:#?}");
        assert_eq!(
            r["fresh_sha256"], reports[0]["fresh_sha256"],
            "one new token for all: {reports:#?}"
        );
    }
    assert_eq!(stats["refresh_requests"], 1, "{stats}");
    assert_eq!(stats["duplicate_presentations"], 0, "{stats}");
    assert_eq!(stats["grants_revoked"], 0, "{stats}");
}

/// Revoke a grant at the server through its refresh token (RFC 7009), as a user revoking
/// the app's access would: its next refresh is answered invalid_grant.
fn revoke(server: &OAuthServer, refresh_token: &str) {
    let (_, authorization) = credlock_core::oauth::refresh_request_parts(
        refresh_token,
        Some("conf-basic"),
        &credlock_core::model::ClientAuth::Basic {
            secret: "basic-secret".into(),
        },
        None,
        None,
    );
    let body = format!("token={refresh_token}&token_type_hint=refresh_token");
    let r = agent()
        .post(format!("{}/token/revocation", server.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Authorization", authorization.unwrap())
        .send(body.as_bytes())
        .expect("the revocation endpoint answers");
    assert_eq!(r.status().as_u16(), 200, "revocation refused");
}

fn access_token(c: &rmcp::transport::auth::StoredCredentials) -> String {
    secret(c.token_response.as_ref().expect("a token response"))
}

/// The access token of a token response (serialised: its accessor is oauth2's trait).
fn secret(r: &rmcp::transport::auth::OAuthTokenResponse) -> String {
    serde_json::to_value(r).unwrap()["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

fn current(env: &Env) -> String {
    env.ok(&["token", TENANT], "").trim().to_owned()
}

fn a_rejection_or_clear_after_another_process_rotated_keeps_the_newer_tokens() {
    let server = OAuthServer::start(60);
    let env = Env::new();
    env.ok(&["put", TENANT], &server.grant("conf-basic").to_string());
    let dir = env.store_dir().display().to_string();
    runtime().block_on(async {
        let store = open(&dir);
        let adapter = CredlockCredentialStore::new(Arc::clone(&store), TENANT);
        let manager = manager(Arc::clone(&store), &server.base).await;
        let seen = manager.get_access_token().await.unwrap();
        let held = adapter.load().await.unwrap().expect("credentials");

        // Another process rotates: rmcp's copy is now the older one.
        env.ok(&["refresh", TENANT], "");
        let newer = current(&env);
        assert_ne!(newer, seen);
        // rmcp's reaction to a 401 on what it held: the replacement, no second refresh.
        server.reset();
        let fresh = manager.refresh_token().await.expect("refresh after a 401");
        let fresh = secret(&fresh);
        assert_eq!(
            fresh, newer,
            "rmcp was not handed the other process's token"
        );
        assert_eq!(
            server.stats()["refresh_requests"],
            0,
            "a replaced token was refreshed again"
        );
        // A rejection of the older credentials, and clear() of what this adapter saw (the
        // older token): neither touches the newer ones, which the adapter serves at once.
        adapter.on_refresh_token_rejected(&held).await.unwrap();
        adapter.clear().await.unwrap();
        assert_eq!(current(&env), newer, "the newer tokens were cleared");
        assert_eq!(
            access_token(&adapter.load().await.unwrap().expect("the newer tokens")),
            newer
        );
        assert_eq!(manager.get_access_token().await.unwrap(), newer);
        // clear() of what it saw last (now the newer token) hides it from this adapter,
        // deleting nothing, until the store holds something else.
        adapter.clear().await.unwrap();
        assert!(
            adapter.load().await.unwrap().is_none(),
            "clear() hid nothing"
        );
        assert_eq!(current(&env), newer, "clear() deleted the tokens");
        env.ok(&["refresh", TENANT], "");
        let newest = current(&env);
        let shown = adapter
            .load()
            .await
            .unwrap()
            .expect("newer tokens show through clear()");
        assert_eq!(access_token(&shown), newest);

        // A real invalid_grant: the grant is revoked at the server (its access token stays
        // dated for an hour here), credlock's refresh is refused, and rmcp is told so...
        let mut revoked = server.grant("conf-basic");
        let rt = revoked["refresh_token"].as_str().unwrap().to_owned();
        revoked["expires_in"] = 3600.into();
        env.ok(&["put", TENANT], &revoked.to_string());
        revoke(&server, &rt);
        let dead = manager.get_access_token().await.unwrap();
        assert!(!resource(&agent(), &server.base, &dead));
        match manager.refresh_token().await {
            Err(AuthError::TokenRefreshRejected(why)) => {
                assert!(why.contains("invalid_grant"), "{why}")
            }
            other => panic!("expected the rejection to reach rmcp, got {other:?}"),
        }
        // ...while a new login by another process is kept and served at once.
        env.ok(&["put", TENANT], &server.grant("conf-basic").to_string());
        let relogged = current(&env);
        assert_ne!(relogged, dead);
        assert_eq!(manager.get_access_token().await.unwrap(), relogged);
        assert!(resource(&agent(), &server.base, &relogged));

        // A manager whose HTTP client belongs to another tenant's adapter: its refresh is
        // refused before the network, saying why, and spends nothing.
        env.ok(&["put", "other"], &server.grant("conf-basic").to_string());
        let theirs = CredlockCredentialStore::new(Arc::clone(&store), "other");
        let http = adapter.http_client(Arc::new(
            rmcp::transport::auth::default_oauth_http_client().unwrap(),
        ));
        let mut crossed =
            AuthorizationManager::new_with_oauth_http_client(server.base.as_str(), Arc::new(http))
                .await
                .unwrap();
        crossed.set_credential_store(theirs);
        assert!(crossed.initialize_from_store().await.unwrap());
        server.reset();
        match crossed.refresh_token().await {
            Err(AuthError::TokenRefreshFailed(why)) => assert!(
                why.contains("of tenant 'other' to the adapter of another tenant")
                    && why.contains("what to do:"),
                "{why}"
            ),
            other => panic!("a foreign handle was not refused: {other:?}"),
        }
        assert_eq!(server.stats()["refresh_requests"], 0);
    });
    eprintln!("figures: a rejection and a clear() after another process rotated: the newer tokens kept, served, accepted");
}

/// The resource the server issued `token` for (`null`: none), from its protected resource.
fn audience(server: &OAuthServer, token: &str) -> Value {
    let mut r = agent()
        .get(format!("{}/resource", server.base))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .expect("the protected resource answers");
    assert_eq!(r.status().as_u16(), 200, "the token was refused");
    let body: Value = serde_json::from_slice(&r.body_mut().read_to_vec().unwrap()).unwrap();
    body["audience"].clone()
}

fn query_param(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("{name} in {url}"))
        .1
        .into_owned()
}

/// rmcp's own authorization-code login (PKCE, client_secret_basic) through the adapter:
/// `save` stores it with the exchange's token endpoint and client authentication, so that
/// credlock refreshes it, and rmcp is then handed credlock's tokens.
fn rmcps_own_login_is_stored_so_that_credlock_refreshes_it() {
    use rmcp::transport::auth::OAuthClientConfig;
    let server = OAuthServer::start(60);
    let env = Env::new();
    let dir = env.store_dir().display().to_string();
    let store = open(&dir);
    store.init().unwrap();
    runtime().block_on(async {
        let mut m = authorization_manager(Arc::clone(&store), TENANT, &server.base)
            .await
            .unwrap();
        assert!(!m.initialize_from_store().await.unwrap(), "an empty store");
        // Tokens with a refresh token that came by another route than the adapter's HTTP
        // client: credlock could not refresh them, so nothing is stored, and the error says
        // what to do.
        let foreign = rmcp::transport::auth::StoredCredentials::new(
            "conf-basic".into(),
            Some(
                serde_json::from_value(json!({"access_token": "at", "token_type": "Bearer",
                    "expires_in": 60, "refresh_token": "rt"}))
                .unwrap(),
            ),
            vec![],
            None,
        );
        let adapter = CredlockCredentialStore::new(Arc::clone(&store), TENANT);
        match adapter.save(foreign).await {
            Err(AuthError::CredentialStoreError(why)) => assert!(
                why.contains("no token endpoint is known") && why.contains("what to do:"),
                "{why}"
            ),
            other => panic!("a refresh token credlock cannot refresh was stored: {other:?}"),
        }
        assert!(store.list().unwrap().is_empty(), "something was stored");
        let resolved = m.resolve_metadata().await.expect("discovery at the server");
        m.set_metadata(resolved.metadata);
        m.configure_client(
            OAuthClientConfig::new("conf-basic", "http://127.0.0.1/callback")
                .with_client_secret("basic-secret"),
        )
        .unwrap();
        let url = m
            .get_authorization_url(&["openid", "offline_access", "api"])
            .await
            .unwrap();
        // OpenID Connect keeps offline_access (a refresh token) only with prompt=consent.
        let (url2, base) = (format!("{url}&prompt=consent"), server.base.clone());
        let callback = tokio::task::spawn_blocking(move || follow_to_callback(&url2, &base))
            .await
            .unwrap();
        let (code, state, iss) = (
            query_param(&callback, "code"),
            query_param(&callback, "state"),
            query_param(&callback, "iss"),
        );
        let issued = m
            .exchange_code_for_token_with_issuer(&code, &state, Some(&iss))
            .await
            .expect("rmcp's code exchange, saved through the adapter");
        let issued = secret(&issued);
        let status: Value =
            serde_json::from_str(&env.ok(&["status", TENANT, "--json"], "")).unwrap();
        let t = &status[0];
        assert_eq!(t["has_refresh_token"], true, "{status}");
        assert_eq!(t["client_id"], "conf-basic", "{status}");
        assert_eq!(
            t["token_endpoint"],
            format!("{}/token", server.base),
            "{status}"
        );
        assert_eq!(current(&env), issued);
        assert_eq!(m.get_access_token().await.unwrap(), issued);
        // credlock refreshes it with the client authentication rmcp used.
        server.reset();
        env.ok(&["refresh", TENANT], "");
        let stats = server.stats();
        assert_eq!(stats["refresh_successes"], 1, "{stats}");
        assert_eq!(stats["by_auth_method"]["client_secret_basic"], 1, "{stats}");
        let refreshed = current(&env);
        assert_ne!(refreshed, issued);
        assert_eq!(m.get_access_token().await.unwrap(), refreshed);
        // Refreshed for the resource rmcp's login named (its MCP server): the refresh sent
        // it (refresh_resource), or the server would have issued a token for no audience.
        let (issued_for, refreshed_for) =
            (audience(&server, &issued), audience(&server, &refreshed));
        assert!(
            issued_for.is_string(),
            "the login named no resource: {issued_for}"
        );
        assert_eq!(refreshed_for, issued_for);
    });
    eprintln!("figures: rmcp's own login stored with its token endpoint and client_secret_basic, refreshed once by credlock");
}
