//! `docker-credential-credlock`: the docker-credential-helpers protocol, served when the
//! `credlock` binary is started under that name (a symlink: `argv[0]` decides).
//!
//! The protocol, as docker's client (`github.com/docker/docker-credential-helpers/client`)
//! drives it: one argument (`get`, `store`, `erase`, `list`, `version`); `get` and `erase`
//! read a server URL on standard input, `store` reads `{"ServerURL","Username","Secret"}`;
//! `get` answers `{"ServerURL","Username","Secret"}`, `list` `{"URL":"username",...}`. A
//! failure exits 1 with its message on *standard output*, which is where the library's
//! `Serve` prints it and where the client reads it: "credentials not found in native
//! keychain" means a miss (docker then goes on without credentials). The hint goes to
//! standard error.
//!
//! Rules as for git: a server address maps to a tenant (`credlock helper map docker`), its
//! token is handed out fresh, plain http is refused off loopback. `store` accepts only the
//! token credlock itself handed out (docker stores what `get` returned after a login) and
//! refuses any other secret rather than drop it silently; `erase` (`docker logout`) deletes
//! nothing: the tokens are the store's, `credlock helper unmap docker URL` stops handing
//! them to docker.

use super::helper_map::{self, Kind, Url};
use credlock::{Credlock, OpenOptions};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::process::ExitCode;
use zeroize::Zeroizing;

/// The name docker looks for, `docker-credential-` + the `credsStore` value.
pub const PREFIX: &str = "docker-credential-";
/// The library's messages, matched by docker's client: exact strings.
const NOT_FOUND: &str = "credentials not found in native keychain";
const NO_URL: &str = "no credentials server URL";
const NO_USERNAME: &str = "no credentials username";
const MAX_INPUT_BYTES: u64 = 64 * 1024;

#[derive(Serialize, Deserialize)]
struct Credentials {
    #[serde(rename = "ServerURL", default)]
    server_url: String,
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

impl Drop for Credentials {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

/// One failure: the protocol line for standard output, and what to do, for standard error.
struct Fail {
    message: String,
    hint: Option<&'static str>,
}

impl Fail {
    fn plain(message: &str) -> Fail {
        Fail {
            message: message.to_owned(),
            hint: None,
        }
    }
}

/// Why `store` keeps nothing, each with its own advice: the registry is not mapped, or it
/// is and docker hands back a secret other than the token credlock handed out.
enum StoreRefusal {
    /// Payload: the server URL.
    NotMapped(String),
    /// Payload: the server URL and the tenant it is mapped to.
    ForeignSecret(String, String),
}

impl From<StoreRefusal> for Fail {
    fn from(r: StoreRefusal) -> Self {
        match r {
            StoreRefusal::NotMapped(url) => Fail {
                message: format!(
                    "credlock: credlock keeps OAuth tokens, not passwords, and {url} is not mapped to a tenant"
                ),
                hint: Some("map the registry to a tenant with `credlock helper map docker URL TENANT`; docker then gets its token from credlock"),
            },
            StoreRefusal::ForeignSecret(url, tenant) => Fail {
                message: format!(
                    "credlock: {url} is mapped to tenant '{tenant}', and this secret is not its current token (a password, or a token credlock did not hand out); credlock keeps only its own tokens, so nothing was stored"
                ),
                hint: Some("no `docker login` is needed for a mapped registry: docker gets the tenant's token from credlock; to log in with this secret instead, remove the mapping first (`credlock helper unmap docker URL`) and let another credential helper keep it"),
            },
        }
    }
}

impl From<helper_map::MapError> for Fail {
    fn from(e: helper_map::MapError) -> Self {
        let f = crate::Failure::from(e);
        Fail {
            message: format!("credlock: {}", f.message),
            hint: f.hint,
        }
    }
}

impl From<credlock::Error> for Fail {
    fn from(e: credlock::Error) -> Self {
        let f = crate::Failure::from(e);
        Fail {
            message: format!("credlock: {}", f.message),
            hint: f.hint,
        }
    }
}

/// Serve the protocol if this process was started as `docker-credential-*`.
pub fn main_if_invoked() -> Option<ExitCode> {
    let argv0 = std::env::args_os().next()?;
    let name = std::path::Path::new(&argv0)
        .file_name()?
        .to_str()?
        .to_owned();
    let name = name.strip_suffix(".exe").unwrap_or(&name).to_owned();
    if !name.starts_with(PREFIX) {
        return None;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = std::io::stdout().lock();
    let result = match args.as_slice() {
        [action] => serve(action, &mut out),
        _ => Err(Fail::plain(&format!(
            "Usage: {name} <store|get|erase|list|version>"
        ))),
    };
    match result {
        Ok(()) => Some(ExitCode::SUCCESS),
        Err(f) => {
            let _ = writeln!(out, "{}", f.message);
            let _ = out.flush();
            if let Some(hint) = f.hint {
                eprintln!("credlock: hint: {hint}");
            }
            Some(ExitCode::from(1))
        }
    }
}

fn read_input() -> Result<Zeroizing<String>, Fail> {
    let mut raw = Zeroizing::new(Vec::new());
    std::io::stdin()
        .lock()
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(|e| Fail::plain(&format!("credlock: reading standard input: {e}")))?;
    if raw.len() as u64 > MAX_INPUT_BYTES {
        return Err(Fail::plain("credlock: the request is too large"));
    }
    let s =
        std::str::from_utf8(&raw).map_err(|_| Fail::plain("credlock: the request is not UTF-8"))?;
    Ok(Zeroizing::new(s.to_owned()))
}

fn server_url() -> Result<String, Fail> {
    let input = read_input()?;
    let url = input.trim();
    if url.is_empty() {
        return Err(Fail::plain(NO_URL));
    }
    Ok(url.to_owned())
}

fn serve(action: &str, out: &mut impl Write) -> Result<(), Fail> {
    if action == "version" {
        let _ = writeln!(
            out,
            "docker-credential-credlock (credlock) {}",
            credlock::build_info::LONG_VERSION
        );
        return Ok(());
    }
    if !matches!(action, "get" | "store" | "erase" | "list") {
        return Err(Fail::plain(&format!(
            "Unknown credential action `{action}`"
        )));
    }
    // Docker runs the helper with no options: the environment configures the store.
    let config = OpenOptions::default()
        .resolve()
        .map_err(|e| Fail::from(credlock::Error::Store(e)))?;
    let layout = credlock::layout::Layout::new(&config.store_dir);
    let mappings = helper_map::load(&layout)?;
    let lookup = |raw: &str| -> Result<(helper_map::Mapping, Url), Fail> {
        // An address that cannot be parsed cannot have been mapped.
        let url = Url::parse(raw, true).map_err(|_| Fail::plain(NOT_FOUND))?;
        let (m, _) = helper_map::best(&mappings, Kind::Docker, &url)
            .ok_or_else(|| Fail::plain(NOT_FOUND))?;
        Ok((m.clone(), url))
    };
    match action {
        "get" => {
            let raw = server_url()?;
            let (mapping, url) = lookup(&raw)?;
            url.check_transport(config.endpoint.allow_insecure_http)?;
            let mut store = Credlock::open(config)?;
            let t = store.token(&mapping.tenant, super::git::MIN_VALID_MS)?;
            let answer = Zeroizing::new(
                serde_json::to_string(&Credentials {
                    server_url: raw,
                    username: mapping.username,
                    secret: t.token.clone(),
                })
                .expect("credentials serialise"),
            );
            let _ = writeln!(out, "{}", answer.as_str());
        }
        "store" => {
            let input = read_input()?;
            let creds: Credentials = serde_json::from_str(&input).map_err(|e| {
                Fail::plain(&format!("credlock: the credentials are not JSON: {e}"))
            })?;
            if creds.server_url.trim().is_empty() {
                return Err(Fail::plain(NO_URL));
            }
            if creds.username.is_empty() {
                return Err(Fail::plain(NO_USERNAME));
            }
            let url = creds.server_url.trim().to_owned();
            let (mapping, _) =
                lookup(&url).map_err(|_| Fail::from(StoreRefusal::NotMapped(url.clone())))?;
            // Docker stores what `get` returned after a login: that is the stored token
            // already. Compared by digest, never echoed.
            let mut store = Credlock::open(config)?;
            let current = store.token(&mapping.tenant, 0)?;
            let same = credlock_core::sha256_hex(current.token.as_bytes())
                == credlock_core::sha256_hex(creds.secret.as_bytes());
            if !same {
                return Err(StoreRefusal::ForeignSecret(url, mapping.tenant).into());
            }
        }
        "erase" => {
            let raw = server_url()?;
            let (mapping, _) = lookup(&raw)?;
            eprintln!(
                "credlock: kept the tokens of '{}'; `credlock helper unmap docker {}` stops handing them to docker",
                mapping.tenant, mapping.url
            );
        }
        "list" => {
            let all: serde_json::Map<String, serde_json::Value> = mappings
                .iter()
                .filter(|m| m.kind == Kind::Docker)
                .map(|m| (m.url.clone(), m.username.clone().into()))
                .collect();
            let _ = writeln!(out, "{}", serde_json::Value::Object(all));
        }
        _ => unreachable!("actions are checked above"),
    }
    Ok(())
}
