//! The `credlock` command line. Its output and exit codes are an API (README, "CLI").

use clap::{Parser, Subcommand};
use credlock::keys::{KdfParams, KeySources};
use credlock::{Backend, Config, Credlock, Error, StoreError};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use zeroize::Zeroizing;

/// Exit codes (README, "Exit codes"). Distinct per kind of failure so scripts can react.
mod exit {
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    pub const REAUTH: u8 = 4;
    pub const LOCK_TIMEOUT: u8 = 5;
    pub const UNREADABLE: u8 = 6;
    pub const ENDPOINT: u8 = 7;
    pub const IO: u8 = 8;
    pub const INTERNAL: u8 = 10;
}

#[derive(Parser)]
#[command(
    name = "credlock",
    version,
    about = "OAuth credentials that many processes share safely"
)]
struct Cli {
    /// The store directory [default: $XDG_DATA_HOME/credlock].
    #[arg(long, global = true, env = "CREDLOCK_STORE", value_name = "DIR")]
    store: Option<PathBuf>,
    /// Seconds to wait for the store lock before failing.
    #[arg(
        long,
        global = true,
        env = "CREDLOCK_LOCK_TIMEOUT",
        value_name = "SECONDS",
        default_value = "10"
    )]
    lock_timeout: f64,
    /// Seconds a token-endpoint call may take.
    #[arg(
        long,
        global = true,
        env = "CREDLOCK_HTTP_TIMEOUT",
        value_name = "SECONDS",
        default_value = "30"
    )]
    http_timeout: f64,
    /// The key file [default: DIR/key]. Created with a random key when a new store is made
    /// without a passphrase.
    #[arg(long, global = true, env = "CREDLOCK_KEY_FILE", value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// Read the passphrase from this file descriptor (CREDLOCK_PASSPHRASE also works;
    /// a passphrase is never accepted as an argument).
    #[arg(long, global = true, value_name = "FD")]
    passphrase_fd: Option<i32>,
    /// Allow plain-http token endpoints on non-loopback hosts.
    #[arg(long, global = true, env = "CREDLOCK_ALLOW_INSECURE_HTTP")]
    allow_insecure_http: bool,
    /// Run the core natively instead of as the WebAssembly component (for comparison).
    #[arg(long, global = true, hide = true)]
    native: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the store (and its key) if it does not exist.
    Init,
    /// Store a token response for TENANT, read as JSON from standard input.
    Put { tenant: String },
    /// Print TENANT's access token, refreshing it first if needed.
    Token {
        tenant: String,
        /// Refresh if the token expires within this many seconds.
        #[arg(long, default_value = "60", value_name = "SECONDS")]
        min_valid: u64,
    },
    /// Refresh TENANT's token now and print the new access token.
    Refresh {
        tenant: String,
        /// Accepted for clarity: `refresh` always refreshes unless --rejected says otherwise.
        #[arg(long)]
        force: bool,
        /// Hex SHA-256 (or a 16+ character prefix) of an access token a server refused (401):
        /// refresh only if the stored token is still that one.
        #[arg(long, value_name = "SHA256_HEX", conflicts_with = "rejected_stdin")]
        rejected: Option<String>,
        /// Read the refused access token itself from standard input (kept out of argv).
        #[arg(long)]
        rejected_stdin: bool,
    },
    /// List tenants (never prints secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove TENANT's credentials.
    Delete { tenant: String },
    /// Check the store, its key sources, permissions and filesystem.
    Doctor,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure {
            code,
            message,
            hint,
        }) => {
            eprintln!("credlock: error: {message}");
            if let Some(hint) = hint {
                eprintln!("credlock: hint: {hint}");
            }
            ExitCode::from(code)
        }
    }
}

struct Failure {
    code: u8,
    message: String,
    hint: Option<&'static str>,
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: exit::USAGE,
        message: message.into(),
        hint: None,
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            Error::Store(s) => {
                use StoreError::*;
                let code = match &s {
                    InvalidTenant(_) | InvalidTokenResponse(_) | InvalidOptions(_) => exit::USAGE,
                    NotFound(_) => exit::NOT_FOUND,
                    Expired(_) | ReauthNeeded(_) | RefreshOutcomeUnknown(_) => exit::REAUTH,
                    Endpoint(_) => exit::ENDPOINT,
                    LockTimeout { .. } => exit::LOCK_TIMEOUT,
                    Io(_) => exit::IO,
                    Key(_) | NotAStore(_) | UnsupportedVersion(_) | Corrupt(_) => exit::UNREADABLE,
                    _ => exit::INTERNAL,
                };
                Failure {
                    code,
                    message: s.to_string(),
                    hint: Some(s.recommendation()),
                }
            }
            Error::Runtime(e) => Failure {
                code: exit::INTERNAL,
                message: format!("internal error in the credlock runtime: {e:#}"),
                hint: Some("this is a bug in credlock; please report it"),
            },
        }
    }
}

fn seconds_ms(name: &str, s: f64) -> Result<u32, Failure> {
    if !(s.is_finite() && s >= 0.0 && s * 1000.0 <= f64::from(u32::MAX / 4)) {
        return Err(usage(format!(
            "{name} must be a number of seconds between 0 and 12 days"
        )));
    }
    Ok((s * 1000.0).round() as u32)
}

fn read_stdin(limit: u64, what: &str) -> Result<Zeroizing<String>, Failure> {
    let mut buf = Zeroizing::new(String::new());
    std::io::stdin()
        .take(limit + 1)
        .read_to_string(&mut buf)
        .map_err(|e| usage(format!("reading {what} from standard input: {e}")))?;
    if buf.len() as u64 > limit {
        return Err(usage(format!(
            "{what} on standard input is larger than {limit} bytes"
        )));
    }
    Ok(buf)
}

fn passphrase(cli: &Cli) -> Result<Option<Zeroizing<String>>, Failure> {
    if let Some(fd) = cli.passphrase_fd {
        use std::os::fd::FromRawFd;
        if fd < 3 && fd != 0 {
            return Err(usage("--passphrase-fd must be 0 or a descriptor above 2"));
        }
        // The caller handed us this descriptor for exactly this purpose; we take ownership
        // and close it after reading.
        #[allow(unsafe_code)]
        let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
        let mut s = Zeroizing::new(String::new());
        file.read_to_string(&mut s)
            .map_err(|e| usage(format!("reading the passphrase from fd {fd}: {e}")))?;
        let trimmed = Zeroizing::new(s.trim_end_matches(['\n', '\r']).to_owned());
        return Ok(Some(trimmed));
    }
    Ok(std::env::var("CREDLOCK_PASSPHRASE")
        .ok()
        .filter(|p| !p.is_empty())
        .map(Zeroizing::new))
}

fn config(cli: &Cli) -> Result<Config, Failure> {
    let dir = match &cli.store {
        Some(d) => d.clone(),
        None => credlock::layout::default_store_dir()
            .ok_or_else(|| usage("no home directory: pass --store DIR or set CREDLOCK_STORE"))?,
    };
    let mut config = Config::for_dir(&dir);
    let pass = passphrase(cli)?;
    config.keys = KeySources {
        // With a passphrase and no explicit key file, a new store gets only the passphrase
        // slot; an existing store's key file is still used to open it if present.
        create_key_file: pass.is_none() || cli.key_file.is_some(),
        passphrase: pass,
        key_file: Some(
            cli.key_file
                .clone()
                .unwrap_or_else(|| config.store_dir.join("key")),
        ),
        kdf: KdfParams::default(),
    };
    config.options.lock_timeout_ms = seconds_ms("--lock-timeout", cli.lock_timeout)?;
    config.options.http_timeout_ms = seconds_ms("--http-timeout", cli.http_timeout)?.max(1);
    config.endpoint.allow_insecure_http = cli.allow_insecure_http;
    if cli.native {
        config.backend = Backend::Native;
    }
    Ok(config)
}

fn run(cli: Cli) -> Result<(), Failure> {
    let config = config(&cli)?;
    if let Command::Doctor = cli.command {
        return doctor::run(config);
    }
    let mut store = Credlock::open(config)?;
    let mut out = std::io::stdout().lock();
    match &cli.command {
        Command::Init => {
            let created = store.init()?;
            eprintln!(
                "credlock: {} {}",
                if created {
                    "created"
                } else {
                    "already exists:"
                },
                store.layout().store().display()
            );
        }
        Command::Put { tenant } => {
            let json = read_stdin(1024 * 1024, "the token response")?;
            let receipt = store.put(tenant, &json)?;
            eprintln!(
                "credlock: stored '{tenant}' (revision {})",
                receipt.revision
            );
        }
        Command::Token { tenant, min_valid } => {
            let t = store.token(tenant, min_valid.saturating_mul(1000))?;
            let _ = writeln!(out, "{}", t.token);
        }
        Command::Refresh {
            tenant,
            force: _,
            rejected,
            rejected_stdin,
        } => {
            let hash = if *rejected_stdin {
                let token = read_stdin(64 * 1024, "the rejected access token")?;
                Some(credlock_core::sha256_hex(token.trim().as_bytes()))
            } else {
                rejected.clone()
            };
            let t = store.refresh(tenant, hash.as_deref())?;
            let _ = writeln!(out, "{}", t.token);
        }
        Command::List { json } => {
            let tenants = store.list()?;
            if *json {
                let v: Vec<serde_json::Value> = tenants
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "tenant": t.tenant, "token_type": t.token_type, "expires_at_ms": t.expires_at_ms,
                            "has_refresh_token": t.has_refresh_token, "scope": t.scope,
                            "token_endpoint": t.token_endpoint, "client_id": t.client_id,
                            "revision": t.revision, "needs_reauth": t.needs_reauth,
                        })
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&v).expect("JSON values serialise")
                );
            } else {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                let _ = writeln!(
                    out,
                    "{:<32} {:<14} {:<8} {:<8} STATUS",
                    "TENANT", "EXPIRES", "REFRESH", "REVISION"
                );
                for t in tenants {
                    let expires = match t.expires_at_ms {
                        None => "unknown".to_owned(),
                        Some(ms) if ms <= now => "expired".to_owned(),
                        Some(ms) => format!("in {}", human((ms - now) / 1000)),
                    };
                    let status = if t.needs_reauth {
                        "re-login needed"
                    } else {
                        "ok"
                    };
                    let refresh = if t.has_refresh_token && t.token_endpoint.is_some() {
                        "yes"
                    } else {
                        "no"
                    };
                    let _ = writeln!(
                        out,
                        "{:<32} {:<14} {:<8} {:<8} {status}",
                        t.tenant, expires, refresh, t.revision
                    );
                }
            }
        }
        Command::Delete { tenant } => {
            if !store.delete(tenant)? {
                return Err(Failure {
                    code: exit::NOT_FOUND,
                    message: format!("no credentials stored for tenant '{tenant}'"),
                    hint: None,
                });
            }
            eprintln!("credlock: deleted '{tenant}'");
        }
        Command::Doctor => unreachable!("handled above"),
    }
    Ok(())
}

fn human(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

mod doctor {
    //! `credlock doctor`: what a user needs to know to trust (or fix) a store.
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn fs_warning(dir: &std::path::Path) -> Option<&'static str> {
        let st = rustix::fs::statfs(dir).ok()?;
        // f_type magic numbers from statfs(2).
        match st.f_type as u64 {
            0x6969 => Some(
                "NFS: flock may not be coherent across machines; keep the store on a local disk",
            ),
            0xFF534D42 | 0xFE534D42 | 0x517B => {
                Some("SMB/CIFS: locks and renames are unreliable; keep the store on a local disk")
            }
            0x65735546 => Some(
                "FUSE: lock and rename semantics depend on the filesystem; check it supports flock",
            ),
            _ => None,
        }
    }

    pub fn run(config: Config) -> Result<(), Failure> {
        let mut out = std::io::stdout().lock();
        let layout = credlock::layout::Layout::new(&config.store_dir);
        let mut problems = 0;
        let _ = writeln!(out, "store directory: {}", layout.dir.display());
        match std::fs::metadata(&layout.dir) {
            Ok(m) => {
                let mode = m.mode() & 0o777;
                let ok = mode & 0o077 == 0;
                problems += usize::from(!ok);
                let _ = writeln!(
                    out,
                    "  permissions: {mode:03o} {}",
                    if ok {
                        "ok (owner only)"
                    } else {
                        "WARNING: others can list it; chmod 700"
                    }
                );
                match fs_warning(&layout.dir) {
                    Some(w) => {
                        problems += 1;
                        let _ = writeln!(out, "  filesystem: WARNING: {w}");
                    }
                    None => {
                        let _ = writeln!(
                            out,
                            "  filesystem: local (flock and atomic rename supported)"
                        );
                    }
                }
            }
            Err(_) => {
                let _ = writeln!(
                    out,
                    "  does not exist yet (created by the first `put` or `init`)"
                );
            }
        }
        for (name, path) in [("store file", layout.store()), ("backup", layout.backup())] {
            match credlock::files::mode_of(&path) {
                Some(mode) => {
                    let ok = mode & 0o077 == 0;
                    problems += usize::from(!ok);
                    let _ = writeln!(
                        out,
                        "{name}: {} ({mode:03o}{})",
                        path.display(),
                        if ok {
                            ""
                        } else {
                            ", WARNING: readable by others"
                        }
                    );
                }
                None => {
                    let _ = writeln!(out, "{name}: none");
                }
            }
        }
        let _ = writeln!(
            out,
            "lock files: {} and {}/refresh-*.lock (flock; never deleted)",
            layout.store_lock().display(),
            layout.lock_dir().display()
        );
        let _ = writeln!(out, "key sources:");
        let _ = writeln!(
            out,
            "  passphrase: {}",
            if config.keys.passphrase.is_some() {
                "given (argon2id)"
            } else {
                "not given"
            }
        );
        if let Some(kf) = &config.keys.key_file {
            match credlock::files::mode_of(kf) {
                Some(mode) => {
                    let ok = mode & 0o077 == 0;
                    problems += usize::from(!ok);
                    let _ = writeln!(
                        out,
                        "  key file: {} ({mode:03o}{})",
                        kf.display(),
                        if ok {
                            ""
                        } else {
                            ", WARNING: readable by others"
                        }
                    );
                    let _ = writeln!(
                        out,
                        "    strength: a random 256-bit key, protected only by file permissions. It stops other users and\n    \
                         copies of the store made without the key file; it does not stop your own account or root.\n    \
                         A passphrase (CREDLOCK_PASSPHRASE) or an OS keyring slot protects the key itself."
                    );
                }
                None => {
                    let _ = writeln!(out, "  key file: {} (absent)", kf.display());
                }
            }
        }
        match Credlock::open(config) {
            Ok(mut store) => {
                if let Some(rt) = store.runtime() {
                    let _ = writeln!(
                        out,
                        "component: {} bytes, {:?}",
                        credlock::component::COMPONENT_WASM.len(),
                        rt.loaded_from
                    );
                }
                match store.info() {
                    Ok(i) if i.exists => {
                        let _ = writeln!(
                            out,
                            "store: format v{}, generation {}, {} tenant(s), key {}, slots: {}",
                            i.format_version,
                            i.generation,
                            i.tenants,
                            i.key_id,
                            i.slot_kinds.join(", ")
                        );
                    }
                    Ok(_) => {
                        let _ = writeln!(out, "store: none yet");
                    }
                    Err(e) => {
                        problems += 1;
                        let f = Failure::from(e);
                        let _ = writeln!(
                            out,
                            "store: ERROR: {}\n  hint: {}",
                            f.message,
                            f.hint.unwrap_or("")
                        );
                    }
                }
            }
            Err(e) => {
                problems += 1;
                let _ = writeln!(out, "runtime: ERROR: {e}");
            }
        }
        let _ = writeln!(
            out,
            "{}",
            if problems == 0 {
                "doctor: no problems found".to_owned()
            } else {
                format!("doctor: {problems} problem(s) found")
            }
        );
        if problems == 0 {
            Ok(())
        } else {
            Err(Failure {
                code: 1,
                message: format!("{problems} problem(s) found"),
                hint: None,
            })
        }
    }
}
