//! kill -9 at each step of a refresh (before the request, after the server answered, in the
//! middle of the commit): the store stays readable, no token is lost, and a refresh token
//! the server may have consumed is never presented again without the explicit opt-in.

mod common;
#[path = "common/oauth.rs"]
mod oauth;
use common::*;
use oauth::OAuthServer;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

/// Start `credlock refresh acme` paused at `point`, wait until it is there, kill -9 it.
fn kill_at(env: &Env, point: &str) {
    let mut cmd = env.command(&["refresh", "acme"]);
    cmd.env("CREDLOCK_FAILPOINTS", format!("{point}=pause"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let name = point.split('@').next().unwrap();
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.contains(&format!("failpoint {name} reached")) {
            // SIGKILL: no destructor, no unlock, no cleanup; the kernel drops the flock.
            child.kill().unwrap();
            child.wait().unwrap();
            return;
        }
        seen.push(line);
    }
    panic!(
        "the process ended before failpoint {point}: {seen:?} {:?}",
        child.wait()
    );
}

fn setup(server: &OAuthServer, retry: bool) -> (Env, String) {
    let env = Env::new();
    let mut grant = server.grant("conf-basic");
    if retry {
        grant["retry_unknown_refresh"] = true.into();
    }
    env.ok(&["put", "acme"], &grant.to_string());
    let access = env.ok(&["token", "acme"], "");
    (env, access)
}

/// What must hold after any crash: the store opens, and the old access token is still there.
fn store_intact(env: &Env, access: &str) {
    assert!(env.ok(&["list"], "").contains("acme"));
    assert_eq!(
        env.ok(&["token", "acme", "--min-valid", "0"], ""),
        access,
        "the last good token was lost"
    );
}

#[test]
fn killed_before_the_request() {
    warm();
    let server = OAuthServer::start(60);
    let (env, access) = setup(&server, false);
    kill_at(&env, "post:before");
    store_intact(&env, &access);
    let r = env.run(&["refresh", "acme"], "");
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("may have been spent"), "{r:?}");
    assert_eq!(
        server.stats()["refresh_requests"],
        0,
        "the token left although the process died first"
    );

    // With the opt-in, the one retry goes through (the token was in fact never sent).
    let (env, _) = setup(&server, true);
    kill_at(&env, "post:before");
    let r = env.run(&["refresh", "acme"], "");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(server.resource(r.stdout.trim()));
    assert_eq!(server.stats()["duplicate_presentations"], 0);
}

#[test]
fn killed_after_the_server_rotated_before_the_commit() {
    warm();
    let server = OAuthServer::start(60);
    let (env, access) = setup(&server, false);
    kill_at(&env, "post:after");
    store_intact(&env, &access);
    assert_eq!(
        server.stats()["refresh_successes"],
        1,
        "the server did rotate"
    );
    for _ in 0..3 {
        let r = env.run(&["refresh", "acme"], "");
        assert_eq!(r.code, 4, "{r:?}");
        assert!(r.stderr.contains("may have been spent"), "{r:?}");
    }
    let stats = server.stats();
    assert_eq!(
        stats["refresh_requests"], 1,
        "a consumed refresh token was presented again: {stats}"
    );
    assert_eq!(stats["duplicate_presentations"], 0, "{stats}");
    assert_eq!(stats["grants_revoked"], 0, "{stats}");
}

#[test]
fn killed_in_the_middle_of_the_commit() {
    warm();
    let server = OAuthServer::start(60);
    let (env, access) = setup(&server, false);
    // Hit 1 of replace is the intent; hit 2 is the commit of the new tokens.
    kill_at(&env, "replace:before-rename@2");
    store_intact(&env, &access);
    let r = env.run(&["refresh", "acme"], "");
    assert_eq!(r.code, 4, "{r:?}");
    let stats = server.stats();
    assert_eq!(
        (
            stats["refresh_requests"].as_u64(),
            stats["duplicate_presentations"].as_u64()
        ),
        (Some(1), Some(0)),
        "{stats}"
    );
}

#[test]
fn the_opt_in_retry_is_explicit_and_single() {
    warm();
    let server = OAuthServer::start(60);
    let (env, access) = setup(&server, true);
    kill_at(&env, "post:after");
    store_intact(&env, &access);
    // The tenant allowed one retry: it is made once. This server has no reuse grace window,
    // so it answers invalid_grant (and revokes the grant): the user asked for that risk.
    let r = env.run(&["refresh", "acme"], "");
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("rejected the refresh token"), "{r:?}");
    assert_eq!(env.run(&["refresh", "acme"], "").code, 4);
    let stats = server.stats();
    assert_eq!(stats["refresh_requests"], 2, "exactly one retry: {stats}");
}
