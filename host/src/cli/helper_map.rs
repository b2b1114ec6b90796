//! Which tenant's token the git and docker credential helpers hand to which server.
//!
//! A mapping decides where a token goes, so whoever can change it can send a token to a
//! server of their choosing. It is kept with the store's own file discipline: `helpers.json`
//! in the owner-only store directory, mode 0600, replaced atomically and durably (temp file,
//! fsync, rename, directory fsync: `files::replace`) under the exclusive store lock, and
//! refused when read if the file or the directory can be written by anyone but its owner,
//! or belongs to another user, or is a symlink. It holds no secrets: URLs, tenant names and
//! user names.
//!
//! URLs match exactly on scheme, host and port (the scheme's default port when none is
//! written), and on the path by whole segments: `https://h/org` covers `https://h/org/repo`
//! but not `https://h/organisation`. The mapping with the longest path wins. Plain `http` to
//! a host that is not loopback is refused unless `--allow-insecure-http` (or
//! `CREDLOCK_ALLOW_INSECURE_HTTP`) allows it, when the mapping is made and again when a
//! token would be handed out.

use crate::Failure;
use credlock::layout::Layout;
use credlock::StoreError;
use credlock_core::error::exit;
use credlock_core::platform::{FileError, IoError, LockError, LockMode};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The mapping file's name in the store directory.
pub const FILE_NAME: &str = "helpers.json";
/// Far above any real list of mappings; a bigger file is not ours.
const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// The version this credlock writes; a higher one is refused, never guessed at.
const FORMAT_VERSION: u32 = 1;

/// Which helper protocol a mapping serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Git,
    Docker,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Git => "git",
            Kind::Docker => "docker",
        }
    }

    /// The user name handed out when the mapping names none: what GitLab and most git
    /// hosts accept with an OAuth token, and what Google's registries expect.
    fn default_username(self) -> &'static str {
        match self {
            Kind::Git => "oauth2",
            Kind::Docker => "oauth2accesstoken",
        }
    }
}

/// One mapping: a URL (canonical form, see [`Url`]) to a tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub kind: Kind,
    pub url: String,
    pub tenant: String,
    pub username: String,
}

#[derive(Serialize, Deserialize)]
struct MapFile {
    version: u32,
    mappings: Vec<Mapping>,
}

/// `credlock helper ...`
#[derive(clap::Subcommand)]
pub enum HelperAction {
    /// Hand TENANT's token to the git or docker credential helper for URL (and every URL
    /// under its path). Replaces an existing mapping of the same URL.
    Map {
        kind: Kind,
        /// scheme://host[:port][/path]; for docker a bare host[:port] means https.
        url: String,
        tenant: String,
        /// The user name handed out with the token [default: oauth2 for git,
        /// oauth2accesstoken for docker; GitHub wants x-access-token].
        #[arg(long)]
        username: Option<String>,
    },
    /// Remove the mapping of URL.
    Unmap { kind: Kind, url: String },
    /// Show the mappings (never tokens).
    List {
        #[arg(long)]
        json: bool,
    },
}

/// What can go wrong with mappings, each with its advice (one place, like `StoreError`).
#[derive(Debug)]
pub enum MapError {
    /// The caller's URL cannot be used.
    BadUrl { url: String, why: &'static str },
    /// A token would travel in clear text to a host that is not this machine.
    InsecureHttp(String),
    /// `unmap` of a URL that has no mapping.
    NoMapping { kind: Kind, url: String },
    /// The user name would break the helper protocols.
    BadUsername,
    /// The file or directory could be changed by someone else: not trusted.
    Unsafe { path: PathBuf, why: &'static str },
    /// The file is not a mapping file this credlock can read.
    Malformed(String),
    /// The store's lock or files failed (their own messages and advice).
    Store(StoreError),
}

impl std::fmt::Display for MapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MapError::BadUrl { url, why } => write!(f, "cannot use the URL {url:?}: {why}"),
            MapError::InsecureHttp(url) => write!(
                f,
                "{url} is plain http to a host that is not this machine: a token sent there can be read on the network"
            ),
            MapError::NoMapping { kind, url } => {
                write!(f, "there is no {} mapping for {url}", kind.name())
            }
            MapError::BadUsername => write!(
                f,
                "the user name must be 1-256 printable characters without spaces"
            ),
            MapError::Unsafe { path, why } => {
                write!(f, "refusing the helper mappings at {}: {why}", path.display())
            }
            MapError::Malformed(why) => write!(f, "the helper mappings file is not readable: {why}"),
            MapError::Store(e) => e.fmt(f),
        }
    }
}

impl MapError {
    fn advice(&self) -> &'static str {
        match self {
            MapError::BadUrl { .. } => "write scheme://host[:port][/path], without a user name, query or fragment",
            MapError::InsecureHttp(_) => "use https, or pass --allow-insecure-http if the network is trusted",
            MapError::NoMapping { .. } => "see `credlock helper list`",
            MapError::BadUsername => "use the name your server expects, e.g. oauth2 or x-access-token",
            MapError::Unsafe { .. } => "make the store directory 0700 and helpers.json 0600, owned by you, then check `credlock helper list`: someone may have redirected your tokens",
            MapError::Malformed(_) => "check `credlock helper list`; remove helpers.json and map the URLs again if it stays unreadable",
            MapError::Store(e) => e.recommendation(),
        }
    }

    fn exit_code(&self) -> u8 {
        match self {
            MapError::BadUrl { .. } | MapError::BadUsername => exit::USAGE,
            MapError::InsecureHttp(_) => exit::REFUSED,
            MapError::NoMapping { .. } => exit::NOT_FOUND,
            MapError::Unsafe { .. } | MapError::Malformed(_) => exit::UNREADABLE,
            MapError::Store(e) => e.exit_code(),
        }
    }
}

impl From<MapError> for Failure {
    fn from(e: MapError) -> Self {
        Failure {
            code: e.exit_code(),
            message: e.to_string(),
            hint: Some(e.advice()),
        }
    }
}

/// A URL reduced to what matching looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub path: Vec<String>,
}

impl Url {
    /// Parse `raw`; `bare_is_https` lets a bare `host[:port][/path]` (docker's server
    /// addresses) mean https.
    pub fn parse(raw: &str, bare_is_https: bool) -> Result<Url, MapError> {
        let bad = |why| MapError::BadUrl {
            url: raw.to_owned(),
            why,
        };
        let raw_trim = raw.trim();
        let (scheme, rest) = match raw_trim.split_once("://") {
            Some((s, r)) => (s.to_ascii_lowercase(), r),
            None if bare_is_https => ("https".to_owned(), raw_trim),
            None => return Err(bad("it has no scheme (https://...)")),
        };
        Self::from_parts(&scheme, rest, bad)
    }

    /// From git's `protocol`, `host` (host[:port]) and optional `path` attributes.
    pub fn from_git(protocol: &str, host: &str, path: Option<&str>) -> Result<Url, MapError> {
        let raw = format!("{protocol}://{host}/{}", path.unwrap_or(""));
        let bad = |why| MapError::BadUrl {
            url: raw.clone(),
            why,
        };
        Self::from_parts(
            &protocol.to_ascii_lowercase(),
            &format!("{host}/{}", path.unwrap_or("")),
            bad,
        )
    }

    fn from_parts(
        scheme: &str,
        rest: &str,
        bad: impl Fn(&'static str) -> MapError,
    ) -> Result<Url, MapError> {
        let default_port = match scheme {
            "https" => 443,
            "http" => 80,
            _ => return Err(bad("only http and https URLs are served")),
        };
        if rest.contains(['?', '#']) {
            return Err(bad("it has a query or fragment"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad("it carries a user name or password"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in host"))?;
            if !after.is_empty() && !after.starts_with(':') {
                return Err(bad("text after the ] of the host"));
            }
            (
                format!("[{}]", h.to_ascii_lowercase()),
                after.strip_prefix(':'),
            )
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
                None => (authority.to_ascii_lowercase(), None),
            }
        };
        let host = host.trim_end_matches('.').to_owned();
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(bad("it has no usable host"));
        }
        let port = match port {
            None | Some("") => default_port,
            Some(p) => p.parse().map_err(|_| bad("the port is not a number"))?,
        };
        let path: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if path.iter().any(|s| s == "." || s == "..") {
            return Err(bad("its path has . or .. segments"));
        }
        if path.iter().any(|s| s.contains(|c: char| c.is_control())) {
            return Err(bad("its path has control characters"));
        }
        Ok(Url {
            scheme: scheme.to_owned(),
            host,
            port,
            path,
        })
    }

    pub fn is_loopback(&self) -> bool {
        let h = self.host.trim_start_matches('[').trim_end_matches(']');
        h == "localhost"
            || h.parse::<std::net::IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false)
    }

    /// Whether a token may be sent to this URL at all.
    pub fn check_transport(&self, allow_insecure_http: bool) -> Result<(), MapError> {
        if self.scheme == "http" && !self.is_loopback() && !allow_insecure_http {
            return Err(MapError::InsecureHttp(self.to_string()));
        }
        Ok(())
    }

    /// Does this (a mapping's URL) cover `other` (a request's)?
    fn covers(&self, other: &Url) -> bool {
        self.scheme == other.scheme
            && self.host == other.host
            && self.port == other.port
            && other.path.len() >= self.path.len()
            && self.path.iter().zip(&other.path).all(|(a, b)| a == b)
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        let default = if self.scheme == "https" { 443 } else { 80 };
        if self.port != default {
            write!(f, ":{}", self.port)?;
        }
        for s in &self.path {
            write!(f, "/{s}")?;
        }
        Ok(())
    }
}

/// The most specific mapping of `kind` that covers `request`.
pub fn best<'a>(mappings: &'a [Mapping], kind: Kind, request: &Url) -> Option<(&'a Mapping, Url)> {
    mappings
        .iter()
        .filter(|m| m.kind == kind)
        // Stored URLs were canonical when written; one that no longer parses matches nothing.
        .filter_map(|m| Url::parse(&m.url, false).ok().map(|u| (m, u)))
        .filter(|(_, u)| u.covers(request))
        .max_by_key(|(_, u)| u.path.len())
}

fn path_of(layout: &Layout) -> PathBuf {
    layout.dir.join(FILE_NAME)
}

/// Someone other than the owner could change it, or it is not the owner's: not trusted.
#[cfg(unix)]
fn check_owner_only(path: &Path, meta: &std::fs::Metadata) -> Result<(), MapError> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid cannot fail and touches no memory.
    #[allow(unsafe_code)]
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(MapError::Unsafe {
            path: path.to_owned(),
            why: "it belongs to another user",
        });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(MapError::Unsafe {
            path: path.to_owned(),
            why: "others can write it",
        });
    }
    Ok(())
}

/// Windows: the store directory's ACL (inherited from %LOCALAPPDATA%) protects it.
#[cfg(not(unix))]
fn check_owner_only(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), MapError> {
    Ok(())
}

fn io(e: &std::io::Error, path: &Path) -> MapError {
    let detail = format!("{}: {e}", path.display());
    MapError::Store(StoreError::Io(FileError::Io(match e.kind() {
        std::io::ErrorKind::PermissionDenied => IoError::PermissionDenied(detail),
        _ => IoError::Other(detail),
    })))
}

/// The mappings (none if the file does not exist). No lock needed: the file is only ever
/// replaced whole, so a read sees one version.
pub fn load(layout: &Layout) -> Result<Vec<Mapping>, MapError> {
    use std::io::Read;
    match std::fs::metadata(&layout.dir) {
        Ok(meta) => check_owner_only(&layout.dir, &meta)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&e, &layout.dir)),
    }
    let path = path_of(layout);
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    let file = match options.open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(MapError::Unsafe {
                path,
                why: "it is a symlink",
            })
        }
        Err(e) => return Err(io(&e, &path)),
    };
    // The checks are on the open file itself, so a rename in between cannot fool them.
    let meta = file.metadata().map_err(|e| io(&e, &path))?;
    if !meta.is_file() {
        return Err(MapError::Unsafe {
            path,
            why: "it is not a regular file",
        });
    }
    check_owner_only(&path, &meta)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io(&e, &path))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(MapError::Malformed("larger than 1 MiB".into()));
    }
    let file: MapFile =
        serde_json::from_slice(&bytes).map_err(|e| MapError::Malformed(e.to_string()))?;
    if file.version != FORMAT_VERSION {
        return Err(MapError::Malformed(format!(
            "format version {} is not one this credlock knows ({FORMAT_VERSION})",
            file.version
        )));
    }
    Ok(file.mappings)
}

/// Change the mappings under the exclusive store lock; durable when this returns.
fn update<R>(
    layout: &Layout,
    lock_timeout: Duration,
    change: impl FnOnce(&mut Vec<Mapping>) -> Result<R, MapError>,
) -> Result<R, MapError> {
    if !layout.dir.is_dir() {
        return Err(MapError::Store(StoreError::NotFound(
            "(no store yet: run `credlock init` or `credlock put` first)".into(),
        )));
    }
    let _lock = credlock::locks::acquire(&layout.store_lock(), LockMode::Exclusive, lock_timeout)
        .map_err(|e| {
        MapError::Store(match e {
            LockError::Timeout(waited_ms) => StoreError::LockTimeout {
                lock: "store".into(),
                waited_ms,
            },
            LockError::Io(e) => StoreError::Io(FileError::Io(e)),
        })
    })?;
    let mut mappings = load(layout)?;
    let r = change(&mut mappings)?;
    let json = serde_json::to_vec_pretty(&MapFile {
        version: FORMAT_VERSION,
        mappings,
    })
    .expect("mappings serialise");
    credlock::files::replace(&path_of(layout), &json, None)
        .map_err(|e| MapError::Store(StoreError::Io(e)))?;
    Ok(r)
}

fn check_username(name: &str) -> Result<(), MapError> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name.chars().all(|c| !c.is_whitespace() && !c.is_control());
    if ok {
        Ok(())
    } else {
        Err(MapError::BadUsername)
    }
}

/// What `helper map|unmap` take from the store's configuration.
#[derive(Clone, Copy)]
pub struct Policy {
    lock_timeout: Duration,
    allow_insecure_http: bool,
}

impl Policy {
    pub fn of(config: &credlock::Config) -> Policy {
        Policy {
            lock_timeout: Duration::from_millis(u64::from(config.options.lock_timeout_ms)),
            allow_insecure_http: config.endpoint.allow_insecure_http,
        }
    }
}

/// `credlock helper map|unmap|list`.
pub fn run(
    action: &HelperAction,
    store: &mut credlock::Credlock,
    policy: Policy,
    out: &mut impl std::io::Write,
) -> Result<(), Failure> {
    let layout = store.layout().clone();
    let lock_timeout = policy.lock_timeout;
    match action {
        HelperAction::Map {
            kind,
            url,
            tenant,
            username,
        } => {
            let parsed = Url::parse(url, *kind == Kind::Docker)?;
            parsed.check_transport(policy.allow_insecure_http)?;
            let username = username
                .clone()
                .unwrap_or_else(|| kind.default_username().to_owned());
            check_username(&username)?;
            // A mapping to a tenant that does not exist is a typo, caught now rather than
            // at the first `git fetch`.
            if !store.list()?.iter().any(|t| &t.tenant == tenant) {
                return Err(credlock::Error::Store(StoreError::NotFound(tenant.clone())).into());
            }
            let mapping = Mapping {
                kind: *kind,
                url: parsed.to_string(),
                tenant: tenant.clone(),
                username,
            };
            let replaced = update(&layout, lock_timeout, |all| {
                let before = all.len();
                all.retain(|m| !(m.kind == mapping.kind && m.url == mapping.url));
                let replaced = all.len() != before;
                all.push(mapping.clone());
                Ok(replaced)
            })?;
            eprintln!(
                "credlock: {} {} {} -> '{}' (user name {})",
                if replaced { "replaced" } else { "mapped" },
                kind.name(),
                mapping.url,
                mapping.tenant,
                mapping.username
            );
        }
        HelperAction::Unmap { kind, url } => {
            let canonical = Url::parse(url, *kind == Kind::Docker)?.to_string();
            update(&layout, lock_timeout, |all| {
                let before = all.len();
                all.retain(|m| !(m.kind == *kind && m.url == canonical));
                if all.len() == before {
                    return Err(MapError::NoMapping {
                        kind: *kind,
                        url: canonical.clone(),
                    });
                }
                Ok(())
            })?;
            eprintln!("credlock: unmapped {} {canonical}", kind.name());
        }
        HelperAction::List { json } => {
            let all = load(&layout)?;
            if *json {
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&all).expect("mappings serialise")
                );
            } else {
                let _ = writeln!(out, "{:<7} {:<48} {:<24} USERNAME", "KIND", "URL", "TENANT");
                for m in &all {
                    let _ = writeln!(
                        out,
                        "{:<7} {:<48} {:<24} {}",
                        m.kind.name(),
                        m.url,
                        m.tenant,
                        m.username
                    );
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Guards against a token handed to the wrong server: a sibling path, another port,
    //! another scheme, or a less specific mapping winning over a more specific one.
    use super::*;

    fn m(url: &str, tenant: &str) -> Mapping {
        Mapping {
            kind: Kind::Git,
            url: Url::parse(url, false).unwrap().to_string(),
            tenant: tenant.into(),
            username: "u".into(),
        }
    }

    fn pick(all: &[Mapping], url: &str) -> Option<String> {
        best(all, Kind::Git, &Url::parse(url, false).unwrap()).map(|(m, _)| m.tenant.clone())
    }

    #[test]
    fn matching_is_exact_on_origin_and_by_segments_on_path() {
        let all = [
            m("https://git.example.com", "host"),
            m("https://git.example.com/org", "org"),
            m("https://git.example.com/org/secret.git", "secret"),
            m("http://127.0.0.1:8080/", "local"),
        ];
        assert_eq!(
            pick(&all, "https://git.example.com/x").as_deref(),
            Some("host")
        );
        assert_eq!(
            pick(&all, "https://GIT.example.com:443/org/a.git").as_deref(),
            Some("org")
        );
        assert_eq!(
            pick(&all, "https://git.example.com/organisation/a").as_deref(),
            Some("host")
        );
        assert_eq!(
            pick(&all, "https://git.example.com/org/secret.git/info/refs").as_deref(),
            Some("secret")
        );
        assert_eq!(pick(&all, "https://git.example.com:8443/org"), None);
        assert_eq!(pick(&all, "http://git.example.com/org"), None);
        assert_eq!(pick(&all, "https://example.com/org"), None);
        assert_eq!(pick(&all, "https://git.example.com.evil.net/org"), None);
        assert_eq!(
            pick(&all, "http://127.0.0.1:8080/r").as_deref(),
            Some("local")
        );
        assert_eq!(pick(&all, "http://127.0.0.1/r"), None);
        // A mapping with a path never answers a request without one (git sends no path
        // unless credential.useHttpPath is set).
        let only_path = [m("https://h/org", "org")];
        assert_eq!(pick(&only_path, "https://h"), None);
    }

    #[test]
    fn urls_that_could_mislead_are_refused() {
        for bad in [
            "https://user:pw@h/x",
            "https://h/x?q=1",
            "https://h/../x",
            "ftp://h/x",
            "h/x",
            "https://h:99999/",
            "https:///x",
            "https://[::1]evil/x",
        ] {
            assert!(Url::parse(bad, false).is_err(), "{bad}");
        }
        // docker's bare server addresses mean https.
        assert_eq!(
            Url::parse("localhost:5000", true).unwrap().to_string(),
            "https://localhost:5000"
        );
        assert_eq!(
            Url::parse("https://index.docker.io/v1/", true)
                .unwrap()
                .to_string(),
            "https://index.docker.io/v1"
        );
    }

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        let remote = Url::parse("http://git.example.com/x", false).unwrap();
        assert!(matches!(
            remote.check_transport(false),
            Err(MapError::InsecureHttp(_))
        ));
        assert!(remote.check_transport(true).is_ok());
        for local in [
            "http://127.0.0.1:1/",
            "http://localhost/",
            "http://[::1]:8/",
        ] {
            assert!(
                Url::parse(local, false)
                    .unwrap()
                    .check_transport(false)
                    .is_ok(),
                "{local}"
            );
        }
    }
}
