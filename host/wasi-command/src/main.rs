//! `credlock` as a `wasi:cli` command over the store interface, for the wasmtime CLI:
//!
//! ```text
//! wasmtime run --dir STORE::/store target/credlock-cli.wasm token acme
//! ```
//! Same subcommands, output and exit codes as the native CLI (README, "CLI"), minus `doctor`.
//! The core's error type supplies the messages and hints, so they read the same.

#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "command",
    });
}

use bindings::credlock::store::store as api;
use bindings::credlock::store::{files, sealing, token_endpoint, types};
use credlock_core::platform as p;
use credlock_core::{EndpointError, StoreError};
use std::io::Read;
use std::process::ExitCode;

fn io(e: types::IoError) -> p::IoError {
    match e {
        types::IoError::NotARegularFile(d) => p::IoError::NotARegularFile(d),
        types::IoError::PermissionDenied(d) => p::IoError::PermissionDenied(d),
        types::IoError::NoSpace(d) => p::IoError::NoSpace(d),
        types::IoError::Other(d) => p::IoError::Other(d),
    }
}

fn error(e: api::StoreError) -> StoreError {
    use api::StoreError as W;
    match e {
        W::InvalidTenant(d) => StoreError::InvalidTenant(d),
        W::InvalidTokenResponse(d) => StoreError::InvalidTokenResponse(d),
        W::InvalidOptions(d) => StoreError::InvalidOptions(d),
        W::NotFound(t) => StoreError::NotFound(t),
        W::Expired(t) => StoreError::Expired(t),
        W::ReauthNeeded(t) => StoreError::ReauthNeeded(t),
        W::RefreshOutcomeUnknown(t) => StoreError::RefreshOutcomeUnknown(t),
        W::Endpoint(e) => StoreError::Endpoint(match e {
            api::EndpointError::Oauth(o) => EndpointError::OAuth {
                status: o.status,
                error: o.error,
                description: o.error_description,
            },
            api::EndpointError::Server(s) => EndpointError::Server(s),
            api::EndpointError::MalformedReply(d) => EndpointError::MalformedReply(d),
            api::EndpointError::Transport(t) => EndpointError::Transport(match t {
                token_endpoint::TransportError::BadUrl(d) => p::TransportError::BadUrl(d),
                token_endpoint::TransportError::Connect(d) => p::TransportError::Connect(d),
                token_endpoint::TransportError::Timeout => p::TransportError::Timeout,
                token_endpoint::TransportError::Interrupted(d) => p::TransportError::Interrupted(d),
                token_endpoint::TransportError::ReplyTooLarge => p::TransportError::ReplyTooLarge,
            }),
        }),
        W::LockTimeout(l) => StoreError::LockTimeout {
            lock: l.lock,
            waited_ms: l.waited_ms,
        },
        W::Io(files::FileError::Io(e)) => StoreError::Io(p::FileError::Io(io(e))),
        W::Io(files::FileError::TooLarge(n)) => StoreError::Io(p::FileError::TooLarge(n)),
        W::Key(k) => StoreError::Key(match k {
            sealing::KeyError::NoKeySource => p::KeyError::NoKeySource,
            sealing::KeyError::NoMatchingSlot(k) => p::KeyError::NoMatchingSlot(k),
            sealing::KeyError::WrongPassphrase => p::KeyError::WrongPassphrase,
            sealing::KeyError::WrongKeyFile => p::KeyError::WrongKeyFile,
            sealing::KeyError::MalformedSlot(d) => p::KeyError::MalformedSlot(d),
            sealing::KeyError::Io(e) => p::KeyError::Io(io(e)),
        }),
        W::NotAStore(d) => StoreError::NotAStore(d),
        W::UnsupportedVersion(v) => StoreError::UnsupportedVersion(v),
        W::Corrupt(d) => StoreError::Corrupt(d),
    }
}

/// The native CLI's exit codes.
fn exit_code(e: &StoreError) -> u8 {
    use StoreError::*;
    match e {
        InvalidTenant(_) | InvalidTokenResponse(_) | InvalidOptions(_) => 2,
        NotFound(_) => 3,
        Expired(_) | ReauthNeeded(_) | RefreshOutcomeUnknown(_) => 4,
        LockTimeout { .. } => 5,
        Key(_) | NotAStore(_) | UnsupportedVersion(_) | Corrupt(_) => 6,
        Endpoint(_) => 7,
        Io(_) => 8,
        _ => 10,
    }
}

const USAGE: &str = "usage: credlock (init | put TENANT < token.json | token TENANT [--min-valid SECONDS] | refresh TENANT [--rejected SHA256_HEX] | list [--json] | delete TENANT)";

fn usage(msg: &str) -> ExitCode {
    eprintln!("credlock: error: {msg}\n{USAGE}");
    ExitCode::from(2)
}

fn seconds_env(name: &str, default_s: f64) -> u32 {
    let s = std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(default_s);
    (s * 1000.0).min(f64::from(u32::MAX / 4)) as u32
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = api::Options {
        lock_timeout_ms: seconds_env("CREDLOCK_LOCK_TIMEOUT", 10.0),
        http_timeout_ms: seconds_env("CREDLOCK_HTTP_TIMEOUT", 30.0).max(1),
    };
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let tenant = || args.get(1).cloned();
    let result = match args.first().map(String::as_str) {
        Some("init") => api::init(opts).map(|created| eprintln!("credlock: {}", if created { "created the store" } else { "the store already exists" })),
        Some("put") => {
            let Some(t) = tenant() else { return usage("put needs a TENANT") };
            let mut json = String::new();
            if std::io::stdin().take(1024 * 1024).read_to_string(&mut json).is_err() {
                return usage("reading the token response from standard input failed");
            }
            api::put(opts, &t, &json).map(|r| eprintln!("credlock: stored '{t}' (revision {})", r.revision))
        }
        Some("token") => {
            let Some(t) = tenant() else { return usage("token needs a TENANT") };
            let min_valid_s: u64 = match flag("--min-valid").map(|v| v.parse()) {
                None => 60,
                Some(Ok(v)) => v,
                Some(Err(_)) => return usage("--min-valid takes a number of seconds"),
            };
            api::token(opts, &t, min_valid_s.saturating_mul(1000)).map(|a| println!("{}", a.token))
        }
        Some("refresh") => {
            let Some(t) = tenant() else { return usage("refresh needs a TENANT") };
            api::refresh(opts, &t, flag("--rejected").as_deref()).map(|a| println!("{}", a.token))
        }
        Some("list") => api::list(opts).map(|tenants| {
            if args.iter().any(|a| a == "--json") {
                let rows: Vec<String> = tenants
                    .iter()
                    .map(|t| {
                        format!(
                            "  {{\"tenant\": {:?}, \"token_type\": {:?}, \"expires_at_ms\": {}, \"has_refresh_token\": {}, \"revision\": {}, \"needs_reauth\": {}}}",
                            t.tenant,
                            t.token_type,
                            t.expires_at_ms.map_or("null".to_string(), |v| v.to_string()),
                            t.has_refresh_token,
                            t.revision,
                            t.needs_reauth
                        )
                    })
                    .collect();
                println!("[\n{}\n]", rows.join(",\n"));
            } else {
                println!("{:<32} {:<8} STATUS", "TENANT", "REVISION");
                for t in tenants {
                    println!("{:<32} {:<8} {}", t.tenant, t.revision, if t.needs_reauth { "re-login needed" } else { "ok" });
                }
            }
        }),
        Some("delete") => {
            let Some(t) = tenant() else { return usage("delete needs a TENANT") };
            match api::delete(opts, &t) {
                Ok(true) => {
                    eprintln!("credlock: deleted '{t}'");
                    Ok(())
                }
                Ok(false) => Err(api::StoreError::NotFound(t)),
                Err(e) => Err(e),
            }
        }
        Some(other) => return usage(&format!("unknown command '{other}'")),
        None => return usage("no command"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e = error(e);
            eprintln!(
                "credlock: error: {e}\ncredlock: hint: {}",
                e.recommendation()
            );
            ExitCode::from(exit_code(&e))
        }
    }
}
