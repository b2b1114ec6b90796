//! The git and docker credential helpers, driven by the real programs (git 2.47; the
//! docker protocol exactly as docker's client speaks it) against the real OAuth server.
//! Guards against: a token handed to an unmapped server, a refresh token leaking to git,
//! a 401 that deletes credentials or spends more than one refresh, and anything but the
//! protocol on standard output.

// The helper command lines are sh syntax, and the docker entry point is a symlink.
#![cfg(unix)]

mod common;
#[path = "common/http.rs"]
mod http;
#[path = "common/oauth.rs"]
mod oauth;
use common::*;
use oauth::OAuthServer;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// `git` with only this test's configuration: no system or user config, no prompts, no
/// proxies, credlock as the only credential helper, CREDLOCK_STORE for the helper.
fn git(env: &Env, args: &[&str]) -> Command {
    let mut c = Command::new("git");
    c.arg("-c")
        .arg("credential.helper=")
        .arg("-c")
        .arg(format!("credential.helper=!'{BIN}' git-credential"))
        .args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("CREDLOCK_")
            || k.starts_with("GIT_")
            || k.to_ascii_lowercase().ends_with("_proxy")
        {
            c.env_remove(k);
        }
    }
    // HOME stays (the helper finds credlock's compiled-component cache there); git's own
    // configuration files are switched off instead.
    c.env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .env("SSH_ASKPASS", "/bin/false")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com");
    for (k, v) in &env.envs {
        c.env(k, v);
    }
    c
}

fn attrs(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn attr<'a>(a: &'a [(String, String)], key: &str) -> Option<&'a str> {
    a.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn put_grant(env: &Env, server: &OAuthServer, tenant: &str) -> serde_json::Value {
    let grant = server.grant("conf-basic");
    env.ok(&["put", tenant], &grant.to_string());
    grant
}

#[test]
fn git_credential_fill_approve_reject() {
    warm();
    let server = OAuthServer::start(3600);
    let env = Env::new();
    let grant = put_grant(&env, &server, "forge");
    let port = 1; // fill/approve/reject never connect: any loopback origin will do
    env.ok(
        &[
            "helper",
            "map",
            "git",
            &format!("http://127.0.0.1:{port}/team"),
            "forge",
            "--username",
            "x-access-token",
        ],
        "",
    );
    let request = format!("protocol=http\nhost=127.0.0.1:{port}\npath=team/repo.git\n\n");
    let fill = |input: &str| {
        run_cmd(
            git(
                &env,
                &["-c", "credential.useHttpPath=true", "credential", "fill"],
            ),
            input,
        )
    };

    let r = fill(&request);
    assert_eq!(r.code, 0, "{r:?}");
    let a = attrs(&r.stdout);
    assert_eq!(attr(&a, "username"), Some("x-access-token"));
    let first = attr(&a, "password").unwrap().to_owned();
    assert_eq!(first, grant["access_token"].as_str().unwrap());
    assert!(
        server.resource(&first),
        "the handed-out token is valid at the server"
    );
    let expiry: u64 = attr(&a, "password_expiry_utc").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        expiry > now + 3000 && expiry <= now + 3601,
        "{expiry} vs {now}"
    );
    // The refresh token never leaves credlock (promise 3: git would pass it to other helpers).
    let rt = grant["refresh_token"].as_str().unwrap();
    assert!(
        !r.stdout.contains("oauth_refresh_token") && !r.stdout.contains(rt),
        "{r:?}"
    );

    // approve: git's `store` after success changes nothing and prints nothing.
    let full = format!("protocol=http\nhost=127.0.0.1:{port}\npath=team/repo.git\nusername=x-access-token\npassword={first}\n\n");
    let r = run_cmd(
        git(
            &env,
            &["-c", "credential.useHttpPath=true", "credential", "approve"],
        ),
        &full,
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
    assert_eq!(server.stats()["refresh_requests"], 0);

    // reject (a 401): the refused token is replaced with exactly one refresh, and the
    // refresh token is kept (the next fill works without a login).
    let r = run_cmd(
        git(
            &env,
            &["-c", "credential.useHttpPath=true", "credential", "reject"],
        ),
        &full,
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
    assert_eq!(server.stats()["refresh_requests"], 1);
    let second = attr(&attrs(&fill(&request).stdout), "password")
        .unwrap()
        .to_owned();
    assert_ne!(second, first);
    assert!(server.resource(&second));
    // A second reject of the old token (another git process that saw the same 401) spends
    // nothing: the store no longer holds it.
    let r = run_cmd(
        git(
            &env,
            &["-c", "credential.useHttpPath=true", "credential", "reject"],
        ),
        &full,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(server.stats()["refresh_requests"], 1);
    assert_eq!(server.stats()["duplicate_presentations"], 0);
    assert_eq!(
        attr(&attrs(&fill(&request).stdout), "password"),
        Some(second.as_str())
    );

    // Unmapped: another path, port or scheme gets no answer at all (git would ask the next
    // helper or prompt), and nothing on stdout.
    for other in [
        format!("protocol=http\nhost=127.0.0.1:{port}\npath=other/repo.git\n\n"),
        "protocol=http\nhost=127.0.0.1:2\npath=team/repo.git\n\n".to_owned(),
        format!("protocol=https\nhost=127.0.0.1:{port}\npath=team/repo.git\n\n"),
        format!("protocol=http\nhost=127.0.0.1:{port}\n\n"),
    ] {
        let r = env.run(&["git-credential", "get"], &other);
        assert_eq!(
            (r.code, r.stdout.as_str(), r.stderr.as_str()),
            (0, "", ""),
            "{other}"
        );
    }
}

/// `credential.helper = credlock` (git's short form) runs `git-credential-credlock`, a
/// symlink to credlock, from PATH.
#[test]
fn git_short_helper_name_through_a_symlink() {
    warm();
    let env = Env::new();
    env.ok(
        &["put", "acme"],
        r#"{"access_token":"at-short","expires_in":3600}"#,
    );
    env.ok(
        &["helper", "map", "git", "https://git.example.com", "acme"],
        "",
    );
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(BIN, bin.path().join("git-credential-credlock")).unwrap();
    let mut c = git(
        &env,
        &[
            "-c",
            "credential.helper=",
            "-c",
            "credential.helper=credlock",
            "credential",
            "fill",
        ],
    );
    c.env(
        "PATH",
        format!(
            "{}:{}",
            bin.path().display(),
            std::env::var("PATH").unwrap()
        ),
    );
    let r = run_cmd(c, "protocol=https\nhost=git.example.com\n\n");
    assert_eq!(r.code, 0, "{r:?}");
    let a = attrs(&r.stdout);
    assert_eq!(
        (attr(&a, "username"), attr(&a, "password")),
        (Some("oauth2"), Some("at-short"))
    );
}

/// Several git processes that got the same 401 each run `erase` with the same token: the
/// refresh token is spent once (single-flight), never presented twice.
#[test]
fn concurrent_erases_of_one_token_refresh_once() {
    warm();
    let oauth = OAuthServer::start(3600);
    let env = Env::new();
    let grant = put_grant(&env, &oauth, "forge");
    env.ok(
        &["helper", "map", "git", "https://git.example.com", "forge"],
        "",
    );
    let refused = grant["access_token"].as_str().unwrap().to_owned();
    let input =
        format!("protocol=https\nhost=git.example.com\nusername=oauth2\npassword={refused}\n\n");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let c = env.command(&["git-credential", "erase"]);
            let input = input.clone();
            std::thread::spawn(move || run_cmd(c, &input))
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
        assert!(!r.stderr.contains(&refused), "{r:?}");
    }
    let stats = oauth.stats();
    assert_eq!(stats["refresh_requests"], 1, "{stats}");
    assert_eq!(stats["duplicate_presentations"], 0, "{stats}");
    let r = env.run(
        &["git-credential", "get"],
        "protocol=https\nhost=git.example.com\n\n",
    );
    let fresh = attr(&attrs(&r.stdout), "password").unwrap().to_owned();
    assert_ne!(fresh, refused);
    assert!(oauth.resource(&fresh));
}

#[test]
fn mappings_are_private_and_refused_when_others_can_write_them() {
    warm();
    let env = Env::new();
    env.ok(
        &["put", "acme"],
        r#"{"access_token":"at-1","expires_in":3600}"#,
    );
    // Typos are caught when mapping, not at the first fetch.
    let r = env.run(
        &["helper", "map", "git", "https://h.example/x", "acme2"],
        "",
    );
    assert_eq!(r.code, 3, "{r:?}");
    let r = env.run(&["helper", "map", "git", "http://h.example/x", "acme"], "");
    assert_eq!(r.code, 9, "plain http off loopback is refused: {r:?}");
    env.ok(&["helper", "map", "git", "https://h.example/x", "acme"], "");
    let file = env.store_dir().join("helpers.json");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    let get = || {
        env.run(
            &["git-credential", "get"],
            "protocol=https\nhost=h.example\npath=x/y\n\n",
        )
    };
    let refused = |r: Run, why: &str| {
        assert_eq!((r.code, r.stdout.as_str()), (6, ""), "{r:?}");
        assert!(r.stderr.contains(why), "{r:?}");
    };
    // Writable by the group: anyone in it could send the token elsewhere.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o620)).unwrap();
    refused(get(), "others can write it");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A store directory others can write: they could replace the file.
    let dir = env.store_dir();
    let dir_mode = mode(&dir);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o733)).unwrap();
    refused(get(), "others can write it");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(dir_mode)).unwrap();
    // A symlink to a file elsewhere is never followed.
    let elsewhere = tempfile::tempdir().unwrap();
    let moved = elsewhere.path().join("helpers.json");
    std::fs::rename(&file, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &file).unwrap();
    refused(get(), "symlink");
    std::fs::remove_file(&file).unwrap();
    std::fs::rename(&moved, &file).unwrap();
    let r = env.run(
        &["git-credential", "get"],
        "protocol=https\nhost=h.example\npath=x/y\n\n",
    );
    assert!(
        r.code == 0
            && r.stdout
                .starts_with("username=oauth2\npassword=at-1\npassword_expiry_utc="),
        "{r:?}"
    );
    let list = env.ok(&["helper", "list", "--json"], "");
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v[0]["url"], "https://h.example/x");
    assert!(!list.contains("at-1"));
    env.ok(&["helper", "unmap", "git", "https://h.example/x/"], "");
    let r = env.run(&["helper", "unmap", "git", "https://h.example/x"], "");
    assert_eq!(r.code, 3, "{r:?}");
    let r = env.run(
        &["git-credential", "get"],
        "protocol=https\nhost=h.example\npath=x/y\n\n",
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
}

/// A git server that demands a token currently valid at the OAuth server.
struct GitServer {
    port: u16,
    accepted: Arc<Mutex<Vec<String>>>,
    refused: Arc<Mutex<u32>>,
    /// Tokens this server refuses although the OAuth server still accepts them (a resource
    /// server that revoked a token on its own).
    deny: Arc<Mutex<Vec<String>>>,
}

fn git_server(root: &Path, oauth_base: &str) -> GitServer {
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(0));
    let deny = Arc::new(Mutex::new(Vec::new()));
    let (acc, refu, denied, root, base) = (
        Arc::clone(&accepted),
        Arc::clone(&refused),
        Arc::clone(&deny),
        root.to_owned(),
        oauth_base.to_owned(),
    );
    let server = http::Server::start(move |req| {
        let valid = req.basic_auth().filter(|(user, password)| {
            user == "oauth2" && !denied.lock().unwrap().contains(password) && {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .proxy(None)
                    .build()
                    .into();
                let r = agent
                    .get(format!("{base}/resource"))
                    .header("Authorization", format!("Bearer {password}"))
                    .call();
                r.map(|r| r.status().as_u16() == 200).unwrap_or(false)
            }
        });
        match valid {
            Some((_, password)) => {
                acc.lock().unwrap().push(password);
                http::git_http_backend(&root, &req)
            }
            None => {
                *refu.lock().unwrap() += 1;
                http::Response::new(401, "token required")
                    .header("WWW-Authenticate", "Basic realm=\"credlock test\"")
            }
        }
    });
    GitServer {
        port: server.port,
        accepted,
        refused,
        deny,
    }
}

fn commit(env: &Env, work: &Path, name: &str) {
    std::fs::write(work.join(name), name).unwrap();
    let w = work.to_str().unwrap();
    for args in [
        vec!["-C", w, "add", name],
        vec!["-C", w, "commit", "-q", "-m", name],
        vec!["-C", w, "push", "-q", "origin", "HEAD:refs/heads/main"],
    ] {
        let r = run_cmd(git(env, &args), "");
        assert_eq!(r.code, 0, "git {args:?}: {r:?}");
    }
}

/// A bare repository with one commit behind [`git_server`], mapped to tenant `forge`, and
/// a work tree that pushes to it directly.
struct Forge {
    env: Env,
    home: tempfile::TempDir,
    work: PathBuf,
    server: GitServer,
    origin: String,
}

fn forge(oauth: &OAuthServer) -> Forge {
    let env = Env::new();
    put_grant(&env, oauth, "forge");
    let home = tempfile::tempdir().unwrap();
    let h = home.path().to_owned();
    let root = h.join("srv");
    std::fs::create_dir(&root).unwrap();
    let bare = root.join("repo.git");
    let work = h.join("work");
    for args in [
        vec!["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
        vec![
            "clone",
            "-q",
            bare.to_str().unwrap(),
            work.to_str().unwrap(),
        ],
    ] {
        let r = run_cmd(git(&env, &args), "");
        assert_eq!(r.code, 0, "git {args:?}: {r:?}");
    }
    commit(&env, &work, "one");
    let server = git_server(&root, &oauth.base);
    let origin = format!("http://127.0.0.1:{}", server.port);
    env.ok(&["helper", "map", "git", &origin, "forge"], "");
    Forge {
        env,
        home,
        work,
        server,
        origin,
    }
}

/// `git clone` over HTTP with credlock as the helper; returns the clone's path.
fn clone(f: &Forge) -> PathBuf {
    let clone = f.home.path().join("clone");
    let url = format!("{}/repo.git", f.origin);
    let r = run_cmd(
        git(&f.env, &["clone", "-q", &url, clone.to_str().unwrap()]),
        "",
    );
    assert_eq!(r.code, 0, "clone: {r:?}");
    assert!(clone.join("one").exists());
    clone
}

#[test]
fn git_clone_and_fetch_over_http_refresh_an_expired_token_once() {
    warm();
    // Short-lived tokens, but long enough that one fetch never outlives its token.
    let oauth = OAuthServer::start(6);
    let f = forge(&oauth);
    let (env, server, work) = (&f.env, &f.server, &f.work);
    let clone = clone(&f);
    let first: Vec<String> = server.accepted.lock().unwrap().clone();
    assert!(!first.is_empty() && *server.refused.lock().unwrap() >= 1);
    let refreshes_before = oauth.stats()["refresh_requests"].as_u64().unwrap();

    // Let the token the clone used die at the server, then fetch a new commit.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while oauth.resource(first.last().unwrap()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the token never expired"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    commit(env, work, "two");
    let c = clone.to_str().unwrap();
    let r = run_cmd(git(env, &["-C", c, "fetch", "-q", "origin"]), "");
    assert_eq!(r.code, 0, "fetch: {r:?}");
    let r = run_cmd(
        git(env, &["-C", c, "merge", "-q", "--ff-only", "origin/main"]),
        "",
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(clone.join("two").exists());
    let stats = oauth.stats();
    assert_eq!(
        stats["refresh_requests"].as_u64().unwrap(),
        refreshes_before + 1,
        "exactly one refresh for the fetch: {stats}"
    );
    assert_eq!(stats["duplicate_presentations"], 0);
    let after: Vec<String> = server.accepted.lock().unwrap()[first.len()..].to_vec();
    assert!(
        !after.is_empty() && after.iter().all(|t| !first.contains(t)),
        "the fetch used the new token"
    );
}

/// A 401 for a token the OAuth server still accepts (the resource server revoked it):
/// git's fetch fails and git runs the helper's `erase`, which refreshes exactly once and
/// keeps the refresh token; the next fetch works with the new token. Long-lived tokens, so
/// nothing here refreshes by expiry.
#[test]
fn git_401_erases_by_refreshing_once() {
    warm();
    let oauth = OAuthServer::start(3600);
    let f = forge(&oauth);
    let (env, server, work) = (&f.env, &f.server, &f.work);
    let clone = clone(&f);
    let c = clone.to_str().unwrap();
    assert_eq!(oauth.stats()["refresh_requests"], 0);
    let current = server.accepted.lock().unwrap().last().unwrap().clone();
    server.deny.lock().unwrap().push(current.clone());
    let before = oauth.stats()["refresh_requests"].as_u64().unwrap();
    commit(env, work, "three");
    let r = run_cmd(git(env, &["-C", c, "fetch", "-q", "origin"]), "");
    assert_ne!(r.code, 0, "the refused token cannot fetch: {r:?}");
    assert_eq!(
        oauth.stats()["refresh_requests"].as_u64().unwrap(),
        before + 1,
        "git's erase after the 401 refreshed once"
    );
    let list: serde_json::Value = serde_json::from_str(&env.ok(&["list", "--json"], "")).unwrap();
    assert_eq!(list[0]["has_refresh_token"], true);
    let seen = server.accepted.lock().unwrap().len();
    let r = run_cmd(git(env, &["-C", c, "fetch", "-q", "origin"]), "");
    assert_eq!(r.code, 0, "fetch after the refresh: {r:?}");
    let newest: Vec<String> = server.accepted.lock().unwrap()[seen..].to_vec();
    assert!(!newest.is_empty() && !newest.contains(&current));
    assert_eq!(
        oauth.stats()["refresh_requests"].as_u64().unwrap(),
        before + 1
    );
    assert_eq!(oauth.stats()["duplicate_presentations"], 0);
}

/// Run `docker-credential-credlock ACTION` the way docker's client does
/// (docker-credential-helpers/client: the server URL on stdin without a newline, the
/// store request as JSON, standard output read whole).
fn docker_helper(env: &Env, dir: &Path, args: &[&str], stdin: &str) -> Run {
    let link = dir.join("docker-credential-credlock");
    if !link.exists() {
        std::os::unix::fs::symlink(BIN, &link).unwrap();
    }
    let mut c = env.command(args);
    // Same environment, started under the helper's name.
    let mut helper = Command::new(&link);
    helper.args(c.get_args());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => helper.env(k, v),
            None => helper.env_remove(k),
        };
    }
    c = helper;
    c.stdin(Stdio::piped());
    run_cmd(c, stdin)
}

#[test]
fn docker_credential_helper_protocol() {
    warm();
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    env.ok(
        &["put", "registry"],
        r#"{"access_token":"at-registry","expires_in":3600,"refresh_token":"rt-registry"}"#,
    );
    env.ok(
        &["helper", "map", "docker", "localhost:5000", "registry"],
        "",
    );
    env.ok(
        &[
            "helper",
            "map",
            "docker",
            "https://ghcr.io/acme",
            "registry",
            "--username",
            "x",
        ],
        "",
    );

    let r = docker_helper(&env, dir.path(), &["get"], "localhost:5000");
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"ServerURL":"localhost:5000","Username":"oauth2accesstoken","Secret":"at-registry"})
    );
    // With a scheme and a path, as docker passes some registries.
    let r = docker_helper(&env, dir.path(), &["get"], "https://localhost:5000/v2/\n");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()["Secret"],
        "at-registry"
    );
    let r = docker_helper(&env, dir.path(), &["get"], "https://ghcr.io/acme/app");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()["Username"],
        "x"
    );

    // A miss: exit 1 and the library's exact message on stdout, which docker's client reads
    // as "not found" and goes on without credentials.
    for miss in [
        "localhost:5001",
        "https://ghcr.io/other",
        "http://localhost:5000",
        "ghcr.io",
    ] {
        let r = docker_helper(&env, dir.path(), &["get"], miss);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (1, "credentials not found in native keychain\n"),
            "{miss}: {r:?}"
        );
    }
    let r = docker_helper(&env, dir.path(), &["get"], "");
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (1, "no credentials server URL\n")
    );

    let r = docker_helper(&env, dir.path(), &["list"], "");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap(),
        serde_json::json!({"https://localhost:5000":"oauth2accesstoken","https://ghcr.io/acme":"x"})
    );

    // store: what `get` handed out is accepted (docker stores it back after a login);
    // another secret is refused, never echoed, never stored.
    let same =
        r#"{"ServerURL":"localhost:5000","Username":"oauth2accesstoken","Secret":"at-registry"}"#;
    let r = docker_helper(&env, dir.path(), &["store"], same);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
    let other = r#"{"ServerURL":"localhost:5000","Username":"me","Secret":"hunter2-password"}"#;
    let r = docker_helper(&env, dir.path(), &["store"], other);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.starts_with("credlock: ")
            && !r.stdout.contains("hunter2")
            && !r.stderr.contains("hunter2"),
        "{r:?}"
    );
    let r = docker_helper(
        &env,
        dir.path(),
        &["store"],
        r#"{"ServerURL":"localhost:5000","Secret":"x"}"#,
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (1, "no credentials username\n")
    );

    // erase (docker logout) deletes nothing: the refresh token and the mapping stay.
    let r = docker_helper(&env, dir.path(), &["erase"], "localhost:5000");
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
    let r = docker_helper(&env, dir.path(), &["get"], "localhost:5000");
    assert_eq!(r.code, 0, "{r:?}");
    let list: serde_json::Value = serde_json::from_str(&env.ok(&["list", "--json"], "")).unwrap();
    assert_eq!(list[0]["has_refresh_token"], true);
    let r = docker_helper(&env, dir.path(), &["erase"], "localhost:5001");
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (1, "credentials not found in native keychain\n")
    );

    let r = docker_helper(&env, dir.path(), &["version"], "");
    assert!(
        r.code == 0 && r.stdout.starts_with("docker-credential-credlock"),
        "{r:?}"
    );
    let r = docker_helper(&env, dir.path(), &["frob"], "");
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (1, "Unknown credential action `frob`\n")
    );
    let r = docker_helper(&env, dir.path(), &[], "");
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (
            1,
            "Usage: docker-credential-credlock <store|get|erase|list|version>\n"
        )
    );
}

/// The docker client scripts/setup.sh installs (Debian's, in target/tools; `CREDLOCK_DOCKER`
/// names another). Missing is a failure, never a skip: a test nobody runs proves nothing.
fn docker_client() -> PathBuf {
    let p = std::env::var_os("CREDLOCK_DOCKER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/tools/docker-cli/docker"
            ))
        });
    let version = Command::new(&p).arg("--version").output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "no docker client at {}: bash scripts/setup.sh installs it ({version:?})",
        p.display()
    );
    p
}

/// The real docker client fetching a manifest from a loopback registry that accepts only a
/// token valid at the OAuth server, with credlock as its credential helper.
/// `docker manifest inspect` talks to the registry itself, so no docker daemon is needed.
#[test]
fn real_docker_client_uses_the_helper() {
    use sha2::Digest;
    let docker_bin = docker_client();
    warm();
    let oauth = OAuthServer::start(3600);
    let env = Env::new();
    let grant = put_grant(&env, &oauth, "registry");
    let base = oauth.base.clone();
    let config_blob: &'static [u8] =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(config_blob)));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": config_blob.len(),
            "digest": config_digest,
        },
        "layers": [],
    })
    .to_string();
    let digest = format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(manifest.as_bytes()))
    );
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen_in = Arc::clone(&seen);
    let (manifest_in, digest_in) = (manifest.clone(), digest.clone());
    let registry = http::Server::start(move |req| {
        let valid = req.basic_auth().filter(|(user, password)| {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .proxy(None)
                .build()
                .into();
            user == "oauth2accesstoken"
                && agent
                    .get(format!("{base}/resource"))
                    .header("Authorization", format!("Bearer {password}"))
                    .call()
                    .is_ok_and(|r| r.status().as_u16() == 200)
        });
        let Some((_, password)) = valid else {
            return http::Response::new(401, "{}")
                .header("WWW-Authenticate", "Basic realm=\"credlock test\"")
                .header("Docker-Distribution-API-Version", "registry/2.0");
        };
        seen_in.lock().unwrap().push(password);
        if req.path == "/v2/" {
            return http::Response::new(200, "{}")
                .header("Docker-Distribution-API-Version", "registry/2.0");
        }
        if req.path == "/v2/team/app/manifests/1.0" {
            return http::Response::new(200, manifest_in.clone())
                .header(
                    "Content-Type",
                    "application/vnd.docker.distribution.manifest.v2+json",
                )
                .header("Docker-Content-Digest", &digest_in)
                .header("Docker-Distribution-API-Version", "registry/2.0");
        }
        if req.path == format!("/v2/team/app/blobs/{config_digest}") {
            return http::Response::new(200, config_blob)
                .header("Content-Type", "application/octet-stream")
                .header("Docker-Content-Digest", &config_digest);
        }
        http::Response::new(404, "{}")
    });
    let registry_addr = format!("127.0.0.1:{}", registry.port);
    env.ok(&["helper", "map", "docker", &registry_addr, "registry"], "");
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("docker-credential-credlock")).unwrap();
    let docker_config = dir.path().join("docker");
    std::fs::create_dir(&docker_config).unwrap();
    std::fs::write(
        docker_config.join("config.json"),
        serde_json::json!({"credHelpers": {&registry_addr: "credlock"}}).to_string(),
    )
    .unwrap();
    let mut c = env.command(&[]);
    let mut docker = Command::new(&docker_bin);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => docker.env(k, v),
            None => docker.env_remove(k),
        };
    }
    c = docker;
    c.args([
        "manifest",
        "inspect",
        "--insecure",
        &format!("{registry_addr}/team/app:1.0"),
    ])
    .env("DOCKER_CONFIG", &docker_config)
    .env(
        "PATH",
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
    )
    .env_remove("DOCKER_HOST")
    .env("NO_PROXY", "127.0.0.1")
    .env("no_proxy", "127.0.0.1");
    let r = run_cmd(c, "");
    assert_eq!(r.code, 0, "docker manifest inspect: {r:?}");
    let got: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(got["schemaVersion"], 2, "{r:?}");
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(seen
        .iter()
        .all(|p| p == grant["access_token"].as_str().unwrap()));
    assert_eq!(oauth.stats()["refresh_requests"], 0);
}
