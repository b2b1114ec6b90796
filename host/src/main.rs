//! The `credlock` command line. Its output and exit codes are an API (README, "CLI").

use clap::{CommandFactory, Parser, Subcommand};
use credlock::{Backend, Config, Credlock, Error, OpenOptions, StoreError};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use zeroize::Zeroizing;

use credlock_core::error::exit;

mod cli;

#[derive(Parser)]
#[command(
    name = "credlock",
    version = credlock::build_info::LONG_VERSION,
    about = "OAuth credentials that many processes share safely"
)]
struct Cli {
    /// The store directory, or a PostgreSQL URL (postgres://user@host/db?schema=credlock)
    /// for a store many machines share [default: $CREDLOCK_STORE, else
    /// $XDG_DATA_HOME/credlock]. A URL's password goes in PGPASSWORD or CREDLOCK_STORE,
    /// never here (other users see arguments).
    #[arg(long, global = true, value_name = "DIR|URL")]
    store: Option<PathBuf>,
    /// Seconds to wait for the store lock before failing [default: $CREDLOCK_LOCK_TIMEOUT,
    /// else 10]. A refresh waits for another process's refresh up to the HTTP timeout plus
    /// twice this.
    #[arg(long, global = true, value_name = "SECONDS")]
    lock_timeout: Option<f64>,
    /// Seconds a token-endpoint call may take [default: $CREDLOCK_HTTP_TIMEOUT, else 30].
    #[arg(long, global = true, value_name = "SECONDS")]
    http_timeout: Option<f64>,
    /// The key file [default: $CREDLOCK_KEY_FILE, else DIR/key]. Created with a random key
    /// when a new store is made without a passphrase.
    #[arg(long, global = true, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// Read the passphrase from this file descriptor (CREDLOCK_PASSPHRASE also works;
    /// a passphrase is never accepted as an argument).
    #[arg(long, global = true, value_name = "FD")]
    passphrase_fd: Option<i32>,
    /// The OS keyring a new store (and `slot add keyring`) keeps its key in:
    /// secret-service, keyutils (volatile), apple-keychain, windows-credential, auto (this
    /// platform's durable one), or off (never ask a keyring, even to open a store)
    /// [default: $CREDLOCK_KEYRING].
    #[arg(long, global = true, value_name = "BACKEND")]
    keyring: Option<String>,
    /// Seconds one keyring call may take (they can hang, or wait for an unlock prompt)
    /// [default: $CREDLOCK_KEYRING_TIMEOUT, else 10].
    #[arg(long, global = true, value_name = "SECONDS")]
    keyring_timeout: Option<f64>,
    /// Allow a store whose only key slots are volatile (the kernel keyring): a reboot loses it.
    /// [env: CREDLOCK_ALLOW_VOLATILE_ONLY]
    #[arg(long, global = true)]
    allow_volatile_only: bool,
    /// Allow plain-http token endpoints on non-loopback hosts [env: CREDLOCK_ALLOW_INSECURE_HTTP].
    #[arg(long, global = true)]
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
        /// Refresh if the token expires within this many seconds. Capped at half the
        /// token's lifetime: a 2-minute token asked to stay valid 5 minutes is refreshed
        /// when half its life is left, not on every call.
        #[arg(long, default_value = "60", value_name = "SECONDS")]
        min_valid: u64,
        /// Print {"access_token","token_type","expires_at","scope"} (expires_at in RFC 3339).
        #[arg(long)]
        json: bool,
    },
    /// Refresh TENANT's token now and print the new access token.
    Refresh {
        tenant: String,
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
    /// Check the store, its key slots and sources, keyrings, permissions and filesystem.
    Doctor,
    /// The store's key slots: list, add, remove.
    Slot {
        #[command(subcommand)]
        action: SlotAction,
    },
    /// Re-seal the store under a new data key, wrapped by the same key sources.
    Rekey,
    /// Import plaintext tokens: `import TENANT FILE` (one tenant's tokens, in any shape
    /// --from lists, detected) or `import --map FILE` (a JSON object of tenant -> token
    /// response, e.g. an agent's auth.json). FILE `-` reads standard input. One atomic write
    /// for everything.
    #[command(after_help = IMPORT_KINDS)]
    Import {
        /// FILE is a map of tenants to token responses.
        #[arg(long)]
        map: bool,
        /// The kind of file, when detection is not wanted (see below).
        #[arg(long, value_name = "KIND")]
        from: Option<String>,
        /// Which account of a file that holds several (an MSAL cache): a user name or home
        /// account id, optionally with /CLIENT_ID.
        #[arg(long, value_name = "ACCOUNT")]
        account: Option<String>,
        /// Overwrite tenants that already exist (otherwise nothing is imported).
        #[arg(long)]
        replace: bool,
        /// Delete FILE once the store is durable, if every entry was imported.
        #[arg(long)]
        remove_source: bool,
        /// TENANT FILE, or FILE with --map.
        #[arg(required = true, num_args = 1..=2, value_name = "TENANT FILE")]
        args: Vec<String>,
    },
    /// Restore the backup of a store that is damaged (or missing beside its backup); the
    /// damaged file is moved aside, never deleted.
    Recover {
        /// Restore even though the store opens (discards the writes since the backup), or
        /// fails in a way that may be damage credlock cannot prove: a header that reads as
        /// another key, or as a format version no credlock wrote.
        #[arg(long)]
        force: bool,
    },
    /// Move a damaged store aside (to credentials.sealed.corrupt-TIME) so a new one can be
    /// made. Never deletes. With no store file, moves aside a backup that cannot be restored.
    Quarantine {
        /// Also a store that does not open for a reason of its own that may not be damage
        /// (a wrong key, a newer format): for header damage no check can prove. Never one
        /// that opens, and never for a lock, I/O or keyring failure.
        #[arg(long)]
        force: bool,
    },
    /// Copy the store to DEST, a directory or a PostgreSQL URL (a fleet's store), with the
    /// same keys: atomic, verified by opening the copy, and deleting nothing. DEST must hold
    /// no store. The password of a URL goes in PGPASSWORD, never in the arguments.
    Migrate {
        #[arg(long, value_name = "DIR|URL")]
        to: PathBuf,
    },
    /// Run CMD with TENANT's access token in an environment variable (never in argv); exits
    /// with CMD's status (128+N if a signal N killed it) and passes signals on to it. If
    /// credlock is killed outright (kill -9), on Linux CMD gets SIGTERM; on other systems CMD
    /// keeps running.
    Exec(cli::exec::ExecArgs),
    /// Tenants' state: what `list` shows, whether a refresh token exists, whether a re-login
    /// is needed, and which helper mappings hand out the token.
    Status {
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The git credential helper (credential.helper = credlock): reads git's request on
    /// standard input. See `credlock helper map git`.
    GitCredential {
        #[arg(value_enum)]
        action: cli::git::GitAction,
    },
    /// Which tenant's token the git and docker credential helpers hand to which URL.
    Helper {
        #[command(subcommand)]
        action: cli::helper_map::HelperAction,
    },
    /// Print shell completions for bash, zsh or fish.
    Completions {
        #[arg(value_enum)]
        shell: cli::generate::Shell,
    },
    /// Print the man page (roff), or write one page per subcommand into DIR.
    Man {
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Log TENANT in at an OAuth server (device flow by default, or --browser) and store the
    /// tokens as `put` would. A login already in progress for TENANT in another process is
    /// joined: the same code is shown and its result is this one's.
    Login(Box<LoginArgs>),
    /// Revoke TENANT's refresh token at the server (RFC 7009) where it offers revocation, then
    /// delete TENANT. If the revocation fails nothing is deleted, unless --local.
    Logout {
        tenant: String,
        /// Delete locally even if the server did not confirm the revocation.
        #[arg(long)]
        local: bool,
    },
}

#[derive(clap::Args)]
struct LoginArgs {
    tenant: String,
    /// The authorization server's issuer URL: its endpoints are discovered from
    /// /.well-known/oauth-authorization-server, then /.well-known/openid-configuration.
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
    #[arg(long, value_name = "ID")]
    client_id: String,
    /// Read a confidential client's secret from this file descriptor (never argv).
    #[arg(long, value_name = "FD")]
    client_secret_fd: Option<i32>,
    /// The scopes to ask for (space-separated), e.g. "openid offline_access api".
    #[arg(long, value_name = "S")]
    scope: Option<String>,
    /// The device authorization grant (RFC 8628): a code to enter on another device. The
    /// default.
    #[arg(long, conflicts_with = "browser")]
    device: bool,
    /// The authorization code grant with PKCE, redirected to http://127.0.0.1:PORT/callback.
    #[arg(long)]
    browser: bool,
    /// With --browser: print the URL instead of opening a browser.
    #[arg(long, requires = "browser")]
    no_open: bool,
    #[arg(long, value_name = "A")]
    audience: Option<String>,
    #[arg(long, value_name = "R")]
    resource: Option<String>,
    #[arg(long, value_name = "URL")]
    authorization_endpoint: Option<String>,
    #[arg(long, value_name = "URL")]
    token_endpoint: Option<String>,
    #[arg(long, value_name = "URL")]
    device_authorization_endpoint: Option<String>,
    #[arg(long, value_name = "URL")]
    revocation_endpoint: Option<String>,
}

#[derive(Subcommand)]
enum SlotAction {
    /// Show the slots: index, kind and what each is (never key material).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a slot: key-file (--key-file or DIR/key, created if absent), passphrase (the new
    /// one from --new-passphrase-fd or CREDLOCK_NEW_PASSPHRASE), keyring (--keyring, or this
    /// platform's), kernel-keyring.
    Add {
        kind: String,
        /// Read the new passphrase from this file descriptor (0: standard input).
        #[arg(long, value_name = "FD")]
        new_passphrase_fd: Option<i32>,
    },
    /// Remove slot INDEX (see `slot list`).
    Remove { index: u32 },
}

fn main() -> ExitCode {
    // Started as docker-credential-credlock (a symlink): docker's helper protocol.
    if let Some(code) = cli::docker::main_if_invoked() {
        return code;
    }
    let cli = match Cli::try_parse_from(cli::git::args()) {
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
                let code = s.exit_code();
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

fn read_stdin(what: &str) -> Result<Zeroizing<String>, Failure> {
    credlock::source::read_limited(
        std::io::stdin().lock(),
        &format!("{what} on standard input"),
    )
    .map_err(|e| usage(e.to_string()))
}

/// A passphrase from a descriptor the caller opened for us (never argv); `None` leaves it
/// to the environment.
fn read_passphrase(fd: Option<i32>, flag: &str) -> Result<Option<Zeroizing<String>>, Failure> {
    let Some(fd) = fd else { return Ok(None) };
    let s = read_fd(fd, flag)?;
    let trimmed = Zeroizing::new(s.trim_end_matches(['\n', '\r']).to_owned());
    if trimmed.is_empty() {
        return Err(usage(format!("the passphrase from {flag} is empty")));
    }
    Ok(Some(trimmed))
}

#[cfg(not(unix))]
fn read_fd(fd: i32, flag: &str) -> Result<Zeroizing<String>, Failure> {
    // Windows passes handles, not descriptors: only standard input is supported.
    if fd != 0 {
        return Err(usage(format!("{flag} must be 0 (standard input) here")));
    }
    read_stdin("the passphrase")
}

#[cfg(unix)]
fn read_fd(fd: i32, flag: &str) -> Result<Zeroizing<String>, Failure> {
    use std::os::fd::FromRawFd;
    if fd < 3 && fd != 0 {
        return Err(usage(format!("{flag} must be 0 or a descriptor above 2")));
    }
    // The caller handed us this descriptor for exactly this purpose; we take ownership
    // and close it after reading.
    #[allow(unsafe_code)]
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    credlock::source::read_limited(file, &format!("the passphrase from fd {fd}"))
        .map_err(|e| usage(e.to_string()))
}

/// Refuse a database URL with a password in the arguments: `ps` shows them to every user
/// (promise 6).
fn no_password_in_argv(store: Option<&PathBuf>, flag: &str) -> Result<(), Failure> {
    let Some(url) = store.and_then(|s| s.to_str()) else {
        return Ok(());
    };
    if credlock::pg::database::is_url(url)
        && credlock::pg::Database::parse(url).is_ok_and(|d| d.password_in_url)
    {
        return Err(usage(format!(
            "{flag} holds a password, which other users can read in the process list: pass the URL without it and set PGPASSWORD (or put the whole URL in CREDLOCK_STORE)"
        )));
    }
    Ok(())
}

fn config(cli: &Cli) -> Result<Config, Failure> {
    no_password_in_argv(cli.store.as_ref(), "--store")?;
    if let Command::Migrate { to } = &cli.command {
        no_password_in_argv(Some(to), "--to")?;
    }
    let passphrase = read_passphrase(cli.passphrase_fd, "--passphrase-fd")?;
    let new_passphrase = match &cli.command {
        Command::Slot {
            action: SlotAction::Add {
                new_passphrase_fd, ..
            },
        } => read_passphrase(*new_passphrase_fd, "--new-passphrase-fd")?,
        _ => None,
    };
    // Flags override the environment, which OpenOptions reads: one rule for every front end.
    let options = OpenOptions {
        store_dir: cli.store.clone(),
        passphrase,
        key_file: cli.key_file.clone(),
        keyring: cli.keyring.clone(),
        lock_timeout: cli.lock_timeout,
        http_timeout: cli.http_timeout,
        keyring_timeout: cli.keyring_timeout,
        allow_insecure_http: cli.allow_insecure_http.then_some(true),
        allow_volatile_only: cli.allow_volatile_only.then_some(true),
        kdf: None,
        new_passphrase,
        ignore_env: false,
    };
    let mut config = options
        .resolve()
        .map_err(|e| Failure::from(Error::Store(e)))?;
    if cli.native {
        config.backend = Backend::Native;
    }
    Ok(config)
}

fn run(cli: Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Completions { shell } => {
            return cli::generate::completions(Cli::command(), *shell)
        }
        Command::Man { dir } => return cli::generate::man(Cli::command(), dir.as_deref()),
        _ => {}
    }
    let config = config(&cli)?;
    let allow_volatile_only = config.keys.allow_volatile_only;
    match &cli.command {
        Command::Doctor => return cli::doctor::run(config),
        Command::Exec(args) => {
            let code = cli::exec::run(args, config)?;
            // The program's status is credlock's: flush, then leave with it.
            let _ = std::io::stdout().flush();
            std::process::exit(i32::from(code));
        }
        Command::GitCredential { action } => return cli::git::run(*action, config),
        Command::Migrate { to } => {
            let dest = OpenOptions {
                store_dir: Some(to.clone()),
                ..Default::default()
            }
            .resolve()
            .map_err(|e| Failure::from(Error::Store(e)))?;
            // Its own refusals (a store already there, a source that changed) are neither
            // bad options nor damage: say that nothing changed.
            let r = credlock::migrate::migrate(&config, &dest).map_err(|e| match e {
                Error::Store(StoreError::InvalidOptions(why)) => Failure {
                    code: exit::REFUSED,
                    message: why,
                    hint: Some("the source store is unchanged, and nothing was written"),
                },
                e => Failure::from(e),
            })?;
            eprintln!(
                "credlock: copied {} ({} bytes, generation {}, {} tenant(s)) to {}, and opened the copy; {} is unchanged: point every process at the new store, then remove the old one",
                r.from, r.bytes, r.generation, r.tenants, r.to, r.from
            );
            if dest.database.is_some() && config.keys.passphrase.is_none() {
                if let Some(k) = &config.keys.key_file {
                    eprintln!(
                        "credlock: every machine opens it with the same key: give each a copy of {} (a mounted secret) as CREDLOCK_KEY_FILE",
                        k.display()
                    );
                }
            }
            return Ok(());
        }
        _ => {}
    }
    let helper_policy = cli::helper_map::Policy::of(&config);
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
                store.location()
            );
        }
        Command::Put { tenant } => {
            let json = read_stdin("the token response")?;
            let receipt = store.put(tenant, &json)?;
            eprintln!(
                "credlock: stored '{tenant}' (revision {})",
                receipt.revision
            );
        }
        Command::Token {
            tenant,
            min_valid,
            json,
        } => {
            let t = store.token(tenant, min_valid.saturating_mul(1000))?;
            if *json {
                cli::status::print_token_json(&mut store, tenant, &t, &mut out)?;
            } else {
                let _ = writeln!(out, "{}", t.token);
            }
        }
        Command::Refresh {
            tenant,
            rejected,
            rejected_stdin,
        } => {
            let hash = if *rejected_stdin {
                let token = read_stdin("the rejected access token")?;
                Some(credlock_core::sha256_hex(token.trim().as_bytes()))
            } else {
                rejected.clone()
            };
            let t = store.refresh(tenant, hash.as_deref())?;
            let _ = writeln!(out, "{}", t.token);
        }
        Command::List { json } => {
            let tenants = store.list()?;
            let pending = store.pending_logins()?;
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
                    } else if pending.iter().any(|p| p.tenant == t.tenant) {
                        "login pending"
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
                let _ = write!(out, "{}", credlock::login::pending_text(&pending, now));
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
        Command::Slot { action } => {
            match action {
                SlotAction::List { json } => print_slots(&mut out, &store.slots()?, *json),
                SlotAction::Add { kind, .. } => {
                    let slots = store.add_slot(kind)?;
                    eprintln!("credlock: added a {kind} slot");
                    print_slots(&mut out, &slots, false);
                }
                SlotAction::Remove { index } => {
                    // The flag or CREDLOCK_ALLOW_VOLATILE_ONLY, as OpenOptions resolved them.
                    let slots = store.remove_slot(*index, allow_volatile_only)?;
                    eprintln!("credlock: removed slot {index}; the backup, which still had it, is gone too");
                    print_slots(&mut out, &slots, false);
                }
            }
        }
        Command::Rekey => {
            let info = store.rekey()?;
            eprintln!(
                "credlock: re-sealed {} tenant(s) under a new data key {} (generation {}); the old backup was removed",
                info.tenants, info.key_id, info.generation
            );
        }
        Command::Import {
            map,
            from,
            account,
            replace,
            remove_source,
            args,
        } => {
            let how = credlock::ImportOptions {
                replace: *replace,
                kind: from.clone(),
                account: account.clone(),
                saved_at_ms: None,
            };
            import(&mut store, *map, how, *remove_source, args)?
        }
        Command::Recover { force } => {
            let r = store.recover(*force)?;
            if let Some(q) = &r.quarantined_as {
                eprintln!("credlock: moved the store file aside to {q}");
            }
            eprintln!(
                "credlock: restored the backup: {} tenant(s), generation {}",
                r.tenants, r.generation
            );
            if !r.refresh_unknown.is_empty() {
                eprintln!(
                    "credlock: warning: the refresh tokens of {} may have been spent after the backup was written; \
                     they will not be presented again (log in again if their access tokens expire)",
                    r.refresh_unknown.join(", ")
                );
            }
        }
        Command::Quarantine { force } => {
            let name = store.quarantine(*force)?;
            eprintln!("credlock: moved the unreadable store aside to {name}");
        }
        Command::Status { tenant, json } => {
            cli::status::run(&mut store, tenant.as_deref(), *json, &mut out)?
        }
        Command::Helper { action } => {
            cli::helper_map::run(action, &mut store, helper_policy, &mut out)?
        }
        Command::Doctor
        | Command::Exec(_)
        | Command::GitCredential { .. }
        | Command::Migrate { .. }
        | Command::Completions { .. }
        | Command::Man { .. } => unreachable!("handled above"),
        Command::Login(a) => {
            let client_secret = match a.client_secret_fd {
                Some(fd) => {
                    let s = read_fd(fd, "--client-secret-fd")?;
                    Some(s.trim_end_matches(['\n', '\r']).to_owned())
                }
                None => None,
            };
            let request = credlock::LoginRequest {
                issuer: a.issuer.clone(),
                client_id: a.client_id.clone(),
                client_secret,
                scope: a.scope.clone(),
                flow: if a.browser {
                    credlock::LoginFlow::Browser { open: !a.no_open }
                } else {
                    credlock::LoginFlow::Device
                },
                audience: a.audience.clone(),
                resource: a.resource.clone(),
                authorization_endpoint: a.authorization_endpoint.clone(),
                token_endpoint: a.token_endpoint.clone(),
                device_authorization_endpoint: a.device_authorization_endpoint.clone(),
                revocation_endpoint: a.revocation_endpoint.clone(),
            };
            let outcome = store.login(&a.tenant, &request, None)?;
            eprintln!("{}", credlock::login::outcome_text(&a.tenant, &outcome));
            if let Some(warning) =
                credlock::login::no_refresh_token_text(&a.tenant, &request, &outcome)
            {
                eprintln!("{warning}");
            }
            let _ = writeln!(
                out,
                "{}",
                credlock::login::outcome_json(&a.tenant, &outcome)
            );
        }
        Command::Logout { tenant, local } => {
            let report = store.logout(tenant, *local)?;
            eprintln!("{}", credlock::login::logout_text(tenant, &report));
        }
    }
    Ok(())
}

fn print_slots(out: &mut impl Write, slots: &[credlock::KeySlot], json: bool) {
    if json {
        let v: Vec<serde_json::Value> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                serde_json::json!({
                    "index": i, "kind": s.kind,
                    "durable": credlock_core::platform::slot_is_durable(&s.kind),
                    "description": credlock::keys::describe_slot(s),
                })
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).expect("JSON values serialise")
        );
        return;
    }
    let _ = writeln!(out, "{:<6} {:<15} WHAT", "INDEX", "KIND");
    for (i, s) in slots.iter().enumerate() {
        let _ = writeln!(
            out,
            "{i:<6} {:<15} {}",
            s.kind,
            credlock::keys::describe_slot(s)
        );
    }
}

/// The kinds of file `import` reads, for `import --help` (README, "Import").
const IMPORT_KINDS: &str = "\
Kinds of file (--from KIND; detected when not given):
  token        a token response (RFC 6749: access_token, expires_in or an absolute expiry)
  go-oauth2    Go's golang.org/x/oauth2.Token as JSON (expiry in RFC 3339)
  claude-code  Claude Code's ~/.claude/.credentials.json
  codex        OpenAI Codex CLI's ~/.codex/auth.json (expiry from the access token's JWT exp)
  google-adc   gcloud's application_default_credentials.json (authorized_user; refreshes at Google)
  msal         an MSAL token cache (msal_token_cache.json; --account chooses the account)
  mcp          the MCP SDKs' stored OAuthTokens (issuer kept)
  rmcp         rmcp's StoredCredentials JSON
A token saved with only expires_in is taken as received when its file was last written.";

fn import(
    store: &mut Credlock,
    map: bool,
    how: credlock::ImportOptions,
    remove_source: bool,
    args: &[String],
) -> Result<(), Failure> {
    let (tenant, file) = match (map, args) {
        (true, [file]) => (None, file.as_str()),
        (false, [tenant, file]) => (Some(tenant.as_str()), file.as_str()),
        (true, _) => return Err(usage("import --map takes one FILE")),
        (false, _) => {
            return Err(usage(
                "import takes TENANT FILE (or --map FILE for a map of tenants)",
            ))
        }
    };
    // Durable when it returns: the one atomic write of the whole import is fsync'd.
    let (report, kept) = if file == "-" {
        if remove_source {
            return Err(usage("--remove-source needs a FILE, not standard input"));
        }
        let source = read_stdin("the tokens to import")?;
        (store.import_tokens(&source, tenant, &how)?, None)
    } else {
        let r = credlock::source::import_file(
            std::path::Path::new(file),
            &how,
            remove_source,
            |text, how| store.import_tokens(text, tenant, how),
        )?;
        (r.report, remove_source.then_some(r.kept_reason))
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
    // A tenant that cannot refresh serves its token until it expires, then fails: say so now,
    // while the user still has the file in mind.
    if !report.imported.is_empty() {
        for t in store.list()? {
            if report.imported.contains(&t.tenant)
                && !(t.has_refresh_token && t.token_endpoint.is_some())
            {
                eprintln!(
                    "credlock: {} cannot be refreshed (no {}): add a token_endpoint and client_id with `credlock put`, or log in with `credlock login`",
                    t.tenant,
                    if t.has_refresh_token { "token endpoint" } else { "refresh token" }
                );
            }
        }
    }
    match kept {
        Some(None) => eprintln!("credlock: removed {file}"),
        Some(Some(why)) => eprintln!("credlock: kept {file}: {why}"),
        None => {}
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
