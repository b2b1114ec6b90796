//! The `credlock` command line. Its output and exit codes are an API (README, "CLI").

use clap::{CommandFactory, Parser, Subcommand};
use credlock::{Backend, Config, Credlock, Error, OpenOptions};
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
    about = "OAuth credentials that many processes share safely",
    // Not OpenOptions' doc comment, which a flattened struct's would otherwise become.
    long_about = None
)]
struct Cli {
    /// The settings every front end shares (`OpenOptions`: one declaration, with its help).
    #[command(flatten)]
    open: OpenOptions,
    /// Read the passphrase from this file descriptor (CREDLOCK_PASSPHRASE also works;
    /// a passphrase is never accepted as an argument).
    #[arg(long, global = true, value_name = "FD")]
    passphrase_fd: Option<i32>,
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
    no_password_in_argv(cli.open.store_dir.as_ref(), "--store")?;
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
        passphrase,
        new_passphrase,
        ..cli.open.clone()
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
        Command::Migrate { to } => return cli::migrate::run(&config, to),
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
        Command::List { json } => cli::list::run(&mut store, *json, &mut out)?,
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
            cli::maintenance::slot(&mut store, action, allow_volatile_only, &mut out)?
        }
        Command::Rekey => cli::maintenance::rekey(&mut store)?,
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
            cli::maintenance::import(&mut store, *map, how, *remove_source, args)?
        }
        Command::Recover { force } => cli::maintenance::recover(&mut store, *force)?,
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
        Command::Login(a) => cli::login::run(&mut store, a, &mut out)?,
        Command::Logout { tenant, local } => {
            let report = store.logout(tenant, *local)?;
            eprintln!("{}", credlock::login::logout_text(tenant, &report));
        }
    }
    Ok(())
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
