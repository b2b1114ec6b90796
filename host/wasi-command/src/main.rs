//! `credlock` as a `wasi:cli` command over the store interface, for the wasmtime CLI:
//!
//! ```text
//! wasmtime run --dir STORE::/store target/credlock-cli.wasm token acme
//! ```
//! Same subcommands, output and exit codes as the native CLI (README, "CLI"), minus `doctor`,
//! including the maintenance commands: `slot list|add|remove`, `rekey`, `import`, `recover`,
//! `quarantine`. The core's error type supplies the messages and hints, so they read the
//! same. What WASI cannot do: pass a descriptor (`--passphrase-fd`, `--new-passphrase-fd`:
//! use `CREDLOCK_PASSPHRASE` and `CREDLOCK_NEW_PASSPHRASE`), reach an OS keyring (keyring
//! slots cannot be added or re-made here), or read a file outside a preopened directory
//! (`import` needs `--dir` for the file's directory too).

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
use credlock_core::error::exit;
use credlock_core::platform as p;
use credlock_core::{EndpointError, RecoverError, SlotChangeError, StoreError};
use std::io::Read;
use std::process::ExitCode;

fn io(e: types::IoError) -> p::IoError {
    match e {
        types::IoError::NotARegularFile(d) => p::IoError::NotARegularFile(d),
        types::IoError::PermissionDenied(d) => p::IoError::PermissionDenied(d),
        types::IoError::NoSpace(d) => p::IoError::NoSpace(d),
        types::IoError::UnsafePermissions(d) => p::IoError::UnsafePermissions(d),
        types::IoError::OtherLockProtocol(d) => p::IoError::OtherLockProtocol(d),
        types::IoError::Unreachable(d) => p::IoError::Unreachable(d),
        types::IoError::Fenced(d) => p::IoError::Fenced(d),
        types::IoError::AuthFailed(d) => p::IoError::AuthFailed(d),
        types::IoError::Other(d) => p::IoError::Other(d),
    }
}

fn error(e: api::StoreError) -> StoreError {
    use api::StoreError as W;
    match e {
        W::InvalidTenant(d) => StoreError::InvalidTenant(d),
        W::InvalidTokenResponse(d) => StoreError::InvalidTokenResponse(d),
        W::InvalidOptions(d) => StoreError::InvalidOptions(d),
        W::InvalidAttachment(d) => StoreError::InvalidAttachment(d),
        W::NotFound(t) => StoreError::NotFound(t),
        W::Expired(t) => StoreError::Expired(t),
        W::ReauthNeeded(t) => StoreError::ReauthNeeded(t),
        W::RefreshOutcomeUnknown(t) => StoreError::RefreshOutcomeUnknown(t),
        W::Endpoint(e) => StoreError::Endpoint(endpoint_error(e)),
        W::LockTimeout(l) => StoreError::LockTimeout {
            lock: l.lock,
            waited_ms: l.waited_ms,
        },
        W::RefreshContended(t) => StoreError::RefreshContended(t),
        W::Io(files::FileError::Io(e)) => StoreError::Io(p::FileError::Io(io(e))),
        W::Io(files::FileError::TooLarge(n)) => StoreError::Io(p::FileError::TooLarge(n)),
        W::Key(k) => StoreError::Key(match k {
            sealing::KeyError::NoKeySource => p::KeyError::NoKeySource,
            sealing::KeyError::NoMatchingSlot(k) => p::KeyError::NoMatchingSlot(k),
            sealing::KeyError::WrongPassphrase => p::KeyError::WrongPassphrase,
            sealing::KeyError::WrongKeyFile => p::KeyError::WrongKeyFile,
            sealing::KeyError::MalformedSlot(d) => p::KeyError::MalformedSlot(d),
            sealing::KeyError::Io(e) => p::KeyError::Io(io(e)),
            sealing::KeyError::KeyringEntryMissing(m) => p::KeyError::KeyringEntryMissing {
                backend: m.backend,
                other_slots: m.other_slots,
            },
            sealing::KeyError::Keyring(d) => p::KeyError::Keyring(d),
            sealing::KeyError::SlotUnavailable(d) => p::KeyError::SlotUnavailable(d),
        }),
        W::NotAStore(d) => StoreError::NotAStore(d),
        W::UnsupportedVersion(v) => StoreError::UnsupportedVersion(v),
        W::Corrupt(d) => StoreError::Corrupt(d),
        W::SlotChange(e) => StoreError::SlotChange(match e {
            api::SlotChangeError::NoSuchSlot(i) => SlotChangeError::NoSuchSlot(i),
            api::SlotChangeError::LastSlot => SlotChangeError::LastSlot,
            api::SlotChangeError::OnlyVolatileLeft(k) => SlotChangeError::OnlyVolatileLeft(k),
            api::SlotChangeError::TooManySlots(n) => SlotChangeError::TooManySlots(n),
        }),
        W::Recover(e) => StoreError::Recover(match e {
            api::RecoverError::StoreReadable => RecoverError::StoreReadable,
            api::RecoverError::NoBackup => RecoverError::NoBackup,
            api::RecoverError::BackupUnreadable(d) => RecoverError::BackupUnreadable(d),
            api::RecoverError::TenantRecords => RecoverError::TenantRecords,
        }),
        W::ImportConflict(names) => StoreError::ImportConflict(names),
        W::Login(e) => StoreError::Login({
            use api::LoginError as L;
            use credlock_core::LoginError as C;
            match e {
                L::Metadata(d) => C::Metadata(d),
                L::InsecureEndpoint(d) => C::InsecureEndpoint(d),
                L::AccessDenied => C::AccessDenied,
                L::Expired(t) => C::Expired(t),
                L::Pending(t) => C::Pending(t),
                L::JoinedFailed(t) => C::JoinedFailed(t),
                L::Superseded(t) => C::Superseded(t),
                L::RevocationFailed(d) => C::RevocationFailed(d),
                L::Callback(d) => C::Callback(d),
                L::Unsupported(d) => C::Unsupported(d),
                L::IssuerMismatch(d) => C::IssuerMismatch(d),
                L::Endpoint(f) => C::Endpoint {
                    endpoint: f.endpoint,
                    error: endpoint_error(f.error),
                },
            }
        }),
    }
}

const USAGE: &str = "usage: credlock (init | put TENANT < token.json | token TENANT [--min-valid SECONDS] | refresh TENANT [--rejected SHA256_HEX] | list [--json] | delete TENANT
  | slot list [--json] | slot add KIND | slot remove INDEX [--allow-volatile-only] | rekey
  | import [--replace] [--remove-source] (TENANT FILE | --map FILE) | recover [--force] | quarantine [--force])";

fn usage(msg: &str) -> ExitCode {
    eprintln!("credlock: error: {msg}\n{USAGE}");
    ExitCode::from(exit::USAGE)
}

/// A failure outside the store (reading or removing an import's file).
fn fail(code: u8, msg: &str, hint: Option<&str>) -> ExitCode {
    eprintln!("credlock: error: {msg}");
    if let Some(hint) = hint {
        eprintln!("credlock: hint: {hint}");
    }
    ExitCode::from(code)
}

/// The arguments after the command that are not flags (`-` is a file: standard input),
/// or the first flag not in `allowed`.
fn operands<'a>(rest: &'a [String], allowed: &[&str]) -> Result<Vec<&'a str>, String> {
    let mut out = Vec::new();
    for a in rest {
        if a.starts_with("--") {
            if !allowed.contains(&a.as_str()) {
                return Err(format!("unknown option {a}"));
            }
        } else {
            out.push(a.as_str());
        }
    }
    Ok(out)
}

/// Whether the environment variable is set to something other than empty, `0` or `false`
/// (as clap's falsey parser reads the native CLI's flags from the environment).
fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false" | "no" | "off"))
}

/// The slot table (or JSON) of the native CLI.
fn print_slots(slots: &[sealing::KeySlot], json: bool) {
    if json {
        let v: Vec<serde_json::Value> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                serde_json::json!({
                    "index": i, "kind": s.kind,
                    "durable": p::slot_is_durable(&s.kind),
                    "description": credlock_keyslots::describe_slot(&s.kind, &s.data),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("JSON values serialise")
        );
        return;
    }
    println!("{:<6} {:<15} WHAT", "INDEX", "KIND");
    for (i, s) in slots.iter().enumerate() {
        println!(
            "{i:<6} {:<15} {}",
            s.kind,
            credlock_keyslots::describe_slot(&s.kind, &s.data)
        );
    }
}

/// `slot list|add|remove`.
fn slot(opts: api::Options, rest: &[String]) -> Result<Result<(), api::StoreError>, ExitCode> {
    let allowed = ["--json", "--allow-volatile-only", "--new-passphrase-fd"];
    let ops = operands(rest, &allowed).map_err(|m| usage(&m))?;
    let has = |f: &str| rest.iter().any(|a| a == f);
    if has("--new-passphrase-fd") {
        return Err(usage(
            "WASI cannot pass a descriptor: give the new passphrase in CREDLOCK_NEW_PASSPHRASE",
        ));
    }
    Ok(match ops.as_slice() {
        ["list"] => api::slots(opts).map(|slots| print_slots(&slots, has("--json"))),
        ["add", kind] => api::add_slot(opts, kind).map(|slots| {
            eprintln!("credlock: added a {kind} slot");
            print_slots(&slots, false);
        }),
        ["remove", index] => {
            let Ok(index) = index.parse::<u32>() else {
                return Err(usage("slot remove takes the INDEX shown by `slot list`"));
            };
            let allow = has("--allow-volatile-only") || env_flag("CREDLOCK_ALLOW_VOLATILE_ONLY");
            api::remove_slot(opts, index, allow).map(|slots| {
                eprintln!(
                    "credlock: removed slot {index}; the backup, which still had it, is gone too"
                );
                print_slots(&slots, false);
            })
        }
        _ => return Err(usage("slot takes list, add KIND or remove INDEX")),
    })
}

/// `import [--replace] [--remove-source] (TENANT FILE | --map FILE)`; FILE `-` is standard
/// input. The file is read through WASI, so its directory must be preopened.
fn import(opts: api::Options, rest: &[String]) -> Result<Result<(), api::StoreError>, ExitCode> {
    let ops = operands(rest, &["--map", "--replace", "--remove-source"]).map_err(|m| usage(&m))?;
    let has = |f: &str| rest.iter().any(|a| a == f);
    let (tenant, file) = match (has("--map"), ops.as_slice()) {
        (true, [file]) => (None, *file),
        (false, [tenant, file]) => (Some(*tenant), *file),
        (true, _) => return Err(usage("import --map takes one FILE")),
        (false, _) => {
            return Err(usage(
                "import takes TENANT FILE (or --map FILE for a map of tenants)",
            ))
        }
    };
    let remove_source = has("--remove-source");
    const LIMIT: u64 = 1024 * 1024;
    let mut source = String::new();
    if file == "-" {
        if remove_source {
            return Err(usage("--remove-source needs a FILE, not standard input"));
        }
        if std::io::stdin()
            .take(LIMIT + 1)
            .read_to_string(&mut source)
            .is_err()
        {
            return Err(usage(
                "reading the tokens to import from standard input failed",
            ));
        }
    } else {
        let read =
            std::fs::File::open(file).and_then(|f| f.take(LIMIT + 1).read_to_string(&mut source));
        if let Err(e) = read {
            return Err(fail(
                exit::IO,
                &format!("cannot read {file}: {e}"),
                Some("under WASI the file's directory must be preopened too (wasmtime run --dir DIR)"),
            ));
        }
    }
    if source.len() as u64 > LIMIT {
        return Err(usage(&format!("{file} is larger than {LIMIT} bytes")));
    }
    // Durable when it returns: the one atomic write of the whole import is fsync'd.
    // The kind of file is detected (the native CLI's --from and --account are not offered
    // here); a token kept with only `expires_in` counts from when its file was written.
    let saved_at_ms = (file != "-")
        .then(|| std::fs::metadata(file).and_then(|m| m.modified()).ok())
        .flatten()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64);
    let how = api::ImportOptions {
        replace: has("--replace"),
        kind: None,
        account: None,
        saved_at_ms,
    };
    let report = match api::import_tokens(opts, &source, tenant, &how) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    eprintln!(
        "credlock: imported {} tenant(s){}",
        report.imported.len(),
        if report.imported.is_empty() {
            String::new()
        } else {
            format!(": {}", report.imported.join(", "))
        }
    );
    for (name, why) in &report.skipped {
        eprintln!("credlock: skipped {name:?}: {why}");
    }
    if remove_source {
        if !report.skipped.is_empty() || report.imported.is_empty() {
            eprintln!("credlock: kept {file}: not everything in it was imported");
        } else {
            let path = std::path::Path::new(file);
            let removed = std::fs::remove_file(path).and_then(|()| {
                match path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    Some(dir) => std::fs::File::open(dir).and_then(|d| d.sync_all()),
                    None => Ok(()),
                }
            });
            if let Err(e) = removed {
                return Err(fail(
                    exit::IO,
                    &format!("imported, but could not remove {file}: {e}"),
                    Some("the tokens are in the store; delete the file yourself"),
                ));
            }
            eprintln!("credlock: removed {file}");
        }
    }
    Ok(Ok(()))
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
        // The rule of its wasi:http client (wasi-platform's http.rs), applied at `put` too.
        allow_insecure_http: std::env::var("CREDLOCK_ALLOW_INSECURE_HTTP").as_deref() == Ok("1"),
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
        Some("slot") => match slot(opts, &args[1..]) {
            Ok(r) => r,
            Err(code) => return code,
        },
        Some("rekey") => api::rekey(opts).map(|info| {
            eprintln!(
                "credlock: re-sealed {} tenant(s) under a new data key {} (generation {}); the old backup was removed",
                info.tenants, info.key_id, info.generation
            )
        }),
        Some("import") => match import(opts, &args[1..]) {
            Ok(r) => r,
            Err(code) => return code,
        },
        Some("recover") => {
            if let Err(m) = operands(&args[1..], &["--force"]) {
                return usage(&m);
            }
            api::recover(opts, args.iter().any(|a| a == "--force")).map(|r| {
                let report = credlock_core::RecoverReport {
                    quarantined_as: r.quarantined_as,
                    generation: r.generation,
                    tenants: r.tenants,
                    refresh_unknown: r.refresh_unknown,
                };
                for line in report.messages() {
                    eprintln!("credlock: {line}");
                }
            })
        }
        Some("quarantine") => {
            if let Err(m) = operands(&args[1..], &["--force"]) {
                return usage(&m);
            }
            api::quarantine(opts, args.iter().any(|a| a == "--force"))
                .map(|name| eprintln!("credlock: moved the unreadable store aside to {name}"))
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
            ExitCode::from(e.exit_code())
        }
    }
}

/// The WIT's endpoint error as the core's (for `store-error` and `login-error`).
fn endpoint_error(e: api::EndpointError) -> EndpointError {
    match e {
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
    }
}
