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
