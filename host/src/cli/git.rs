//! `credlock git-credential get|store|erase`: git's credential helper protocol
//! (`git help credential`, "Helpers"). Git writes `key=value` lines on standard input, ended
//! by a blank line or end of file; for `get` the helper answers in the same form on standard
//! output and may answer nothing, which lets git ask the next helper. Nothing but the
//! protocol is ever written to standard output; errors go to standard error, which git shows.
//!
//! What is handed out: `username` (the mapping's), `password` (an access token valid for at
//! least [`MIN_VALID_MS`]) and `password_expiry_utc` (git 2.41+ then never reuses it after
//! that moment). Never `oauth_refresh_token`: git passes that attribute on to every helper's
//! `store`, so `credential-store` would write it to ~/.git-credentials in clear text and an
//! OAuth helper such as git-credential-oauth would spend it itself, outside credlock's
//! single-flight refresh (promise 3), revoking the whole grant on servers that detect reuse.
//! The refresh token stays in the store; credlock refreshes when `get` needs it.
//!
//! `store` (after git used a credential successfully) changes nothing: the token already is
//! the store's. `erase` (after the server refused it) reports the refused token, like
//! `credlock refresh --rejected`: if the store still holds that very token it is refreshed
//! once, so the next `get` returns a new one; the refresh token is never deleted.

use super::helper_map::{self, Kind, Url};
use crate::Failure;
use credlock::{Config, Credlock};
use std::io::Write;
use zeroize::Zeroizing;

/// How long a handed-out token must stay valid: one git operation's worth (capped at half
/// the token's lifetime by the store, as for `credlock token`).
pub const MIN_VALID_MS: u64 = 60_000;
/// Git's input is a few short lines; anything near this is not git.
const MAX_INPUT_BYTES: usize = 64 * 1024;

/// The name git runs for `credential.helper = credlock`: `git credential-credlock ACTION`
/// finds `git-credential-credlock` on PATH (a symlink to credlock).
pub const HELPER_NAME: &str = "git-credential-credlock";

/// The process's arguments, with `git-credential-credlock ARGS` read as `credlock
/// git-credential ARGS` when started under that name.
pub fn args() -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as_helper = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_stem())
        .is_some_and(|name| name == HELPER_NAME);
    if invoked_as_helper {
        args.splice(0..1, ["credlock".into(), "git-credential".into()]);
    }
    args
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GitAction {
    Get,
    Store,
    Erase,
}

/// The attributes credlock reads; the rest (`capability[]`, `wwwauth[]`, ...) are ignored,
/// as the protocol asks of helpers that do not know them.
#[derive(Default)]
struct Request {
    protocol: Option<String>,
    host: Option<String>,
    path: Option<String>,
    password: Option<Zeroizing<String>>,
}

fn parse(input: &str) -> Request {
    let mut r = Request::default();
    for line in input.lines() {
        if line.is_empty() {
            break;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "protocol" => r.protocol = Some(value.to_owned()),
            "host" => r.host = Some(value.to_owned()),
            "path" => r.path = Some(value.to_owned()),
            "password" => r.password = Some(Zeroizing::new(value.to_owned())),
            _ => {}
        }
    }
    r
}

/// A value that would end or forge a protocol line must never be written.
fn protocol_safe(value: &str) -> bool {
    !value.contains(['\n', '\r', '\0'])
}

pub fn run(action: GitAction, config: Config) -> Result<(), Failure> {
    let input = credlock::source::read_limited(std::io::stdin().lock(), "git's request")
        .map_err(|e| crate::usage(e.to_string()))?;
    if input.len() > MAX_INPUT_BYTES {
        return Err(crate::usage("git's request is too large"));
    }
    let request = parse(&input);
    let (Some(protocol), Some(host)) = (&request.protocol, &request.host) else {
        return Ok(()); // nothing to match on: no answer, git asks elsewhere
    };
    // Another protocol (ssh, cert) or a host git could not parse: not ours to answer.
    let Ok(url) = Url::from_git(protocol, host, request.path.as_deref()) else {
        return Ok(());
    };
    let layout = credlock::layout::Layout::new(&config.store_dir);
    let mappings = helper_map::load(&layout)?;
    let Some((mapping, _)) = helper_map::best(&mappings, Kind::Git, &url) else {
        return Ok(());
    };
    url.check_transport(config.endpoint.allow_insecure_http)?;
    match action {
        GitAction::Get => {
            let mut store = Credlock::open(config)?;
            let t = store.token(&mapping.tenant, MIN_VALID_MS)?;
            if !protocol_safe(&t.token) || !protocol_safe(&mapping.username) {
                return Err(crate::usage(
                    "the access token or user name has a line break and cannot be passed to git",
                ));
            }
            let mut answer = Zeroizing::new(format!(
                "username={}\npassword={}\n",
                mapping.username, t.token
            ));
            if let Some(ms) = t.expires_at_ms {
                answer.push_str(&format!("password_expiry_utc={}\n", ms / 1000));
            }
            let mut out = std::io::stdout().lock();
            out.write_all(answer.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| crate::usage(format!("cannot answer git: {e}")))?;
        }
        GitAction::Store => {}
        GitAction::Erase => {
            let Some(refused) = &request.password else {
                return Ok(());
            };
            let hash = credlock_core::sha256_hex(refused.as_bytes());
            let mut store = Credlock::open(config)?;
            let t = store.refresh(&mapping.tenant, Some(&hash))?;
            if t.refreshed {
                eprintln!(
                    "credlock: the server refused the token of '{}'; refreshed it",
                    mapping.tenant
                );
            }
        }
    }
    Ok(())
}
