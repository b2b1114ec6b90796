//! Promise 3 on a real server: 32 processes call `credlock token` in a loop for 20 seconds
//! with 2-second access tokens, using each token on a protected resource at once. The server
//! must see no refresh token twice, no invalid_grant, no revoked grant, no refused call
//! unless the token's own expiry shows credlock kept its promise and the use came late
//! (`oauth::use_token`; never judged by how long the round trip took), and about one
//! refresh per expiry, not one per process.

mod common;
#[path = "common/oauth.rs"]
mod oauth;
use common::*;
use oauth::{OAuthServer, Use};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROCESSES: usize = 32;
const SECONDS: u64 = 20;
/// Long enough that half the lifetime credlock dates (TTL less a second of granularity, less
/// the refresh's own round trip) stays above MIN_VALID_S: the promise is then exactly
/// MIN_VALID_S. With 2 s tokens the cap bound instead, a few ms under what the test could
/// compute, and a token used late could be miscounted as refused.
const ACCESS_TTL_S: u32 = 4;
/// What each call asks for.
const MIN_VALID_S: u64 = 1;

/// How long credlock promises a token valid after it decides: the min-valid each call asks
/// for, capped at half the lifetime it dates (the server's TTL less a second of granularity).
fn promised_ms() -> u64 {
    let lifetime_ms = u64::from(ACCESS_TTL_S) * 1000 - credlock_core::oauth::EXPIRY_GRANULARITY_MS;
    // The cap must not bind (see ACCESS_TTL_S), with room for the refresh's round trip.
    assert!(lifetime_ms / 2 >= MIN_VALID_S * 1000 + 250);
    (MIN_VALID_S * 1000).min(lifetime_ms / 2)
}

#[test]
fn storm_of_32_processes_spends_each_refresh_token_once() {
    warm();
    let server = OAuthServer::start(ACCESS_TTL_S);
    let env = Arc::new(Env::new());
    env.ok(&["put", "acme"], &server.grant("conf-basic").to_string());
    // The grant's first token was issued before `put` dated it, so credlock may think it
    // lives a little longer than it does: refresh once, so that every token in the storm is
    // one credlock dated from its own request, then count from zero.
    env.ok(&["refresh", "acme"], "");
    server.reset();
    let calls = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let workers: Vec<_> = (0..PROCESSES)
        .map(|_| {
            let (env, calls) = (Arc::clone(&env), Arc::clone(&calls));
            let base = server.base.clone();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .proxy(None)
                    .build()
                    .into();
                let (mut refused, mut late) = (Vec::new(), 0);
                while Instant::now() < deadline {
                    let started_ms = oauth::wall_ms();
                    let r = env.run(
                        &["token", "acme", "--min-valid", &MIN_VALID_S.to_string()],
                        "",
                    );
                    assert_eq!(r.code, 0, "credlock token failed in the storm: {r:?}");
                    // Every refusal counts, judged by the token's own expiry at the server
                    // (oauth::use_token), never by how long this round trip took.
                    match oauth::use_token(
                        &agent,
                        &base,
                        r.stdout.trim(),
                        started_ms,
                        promised_ms(),
                    ) {
                        Use::Accepted => {}
                        Use::Late => late += 1,
                        Use::Refused(why) => refused.push(why),
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                }
                if late > 0 {
                    eprintln!("figures: {late} token(s) refused after an expiry that kept credlock's promise (used late)");
                }
                refused
            })
        })
        .collect();
    let refused: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("a storm worker failed"))
        .collect();
    let stats = server.stats();
    eprintln!(
        "figures: storm {PROCESSES} processes x {SECONDS} s, {} token calls, server: {stats}",
        calls.load(Ordering::Relaxed)
    );
    assert_eq!(stats["invalid_grant"], 0, "{stats}");
    assert_eq!(stats["duplicate_presentations"], 0, "{stats}");
    assert_eq!(stats["grants_revoked"], 0, "{stats}");
    assert!(
        refused.is_empty(),
        "calls with a credlock token were refused: {refused:#?}\n{stats}"
    );
    // One refresh per expiry, not one per process: every refresh presented the then-current
    // refresh token exactly once (no duplicates above), so each refresh is one token's
    // expiry. As a sanity bound on the count: credlock dates a token's expiry from the
    // request, less a second of server granularity, and refreshes at half of what is left,
    // so each token serves at least (TTL - 1 s) / 2; and there is at least one per real TTL.
    let refreshes = stats["refresh_requests"].as_u64().unwrap();
    let min_served_ms =
        (u64::from(ACCESS_TTL_S) * 1000 - credlock_core::oauth::EXPIRY_GRANULARITY_MS) / 2;
    let most = SECONDS * 1000 / min_served_ms + 2;
    let least = SECONDS / u64::from(ACCESS_TTL_S);
    assert!(
        refreshes >= least,
        "too few refreshes for a {SECONDS} s storm: {stats}"
    );
    assert!(
        refreshes <= most,
        "more refreshes than token lifetimes: {refreshes} > {most}"
    );
    eprintln!("figures: {refreshes} refreshes for {PROCESSES} processes in {SECONDS} s (bounds {least}..={most})");
}
