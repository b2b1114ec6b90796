//! A PostgreSQL store's address: `postgres://user@host:port/db?schema=credlock&store=default`.
//!
//! The URL is libpq's, read by tokio-postgres, plus two parameters of ours: `schema` (the
//! schema holding credlock's tables, default `credlock`) and `store` (the store's name
//! within it, default `default`, so that one schema can hold several stores). A password
//! may come from the URL (through `CREDLOCK_STORE`; the CLI refuses one in its arguments,
//! where `ps` shows it) or from `PGPASSWORD`; it never appears in [`Database`]'s display.
//!
//! TLS is rustls with the Mozilla roots, plus the certificates of `sslrootcert=PATH` (a
//! managed database's CA). It always verifies the server's certificate and name: `require`
//! here is libpq's `verify-full`. To a host that is not this machine, TLS is required unless
//! the URL says `sslmode=disable`; on loopback or a Unix socket, `prefer` (the default) falls
//! back to plain text when the server has no TLS.

use sha2::{Digest, Sha256};
use std::time::Duration;

/// How long a new connection may take, unless the URL says (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a store lives in PostgreSQL. Cloning is cheap; `Debug` and `Display` never show
/// the password.
#[derive(Clone)]
pub struct Database {
    pub(crate) config: postgres::Config,
    /// The schema of credlock's tables (a plain identifier, checked).
    pub schema: String,
    /// The store's name within the schema.
    pub store: String,
    /// Whether the URL itself carried a password (the CLI refuses that in argv).
    pub password_in_url: bool,
    redacted: String,
    tls: std::sync::Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// Whether a `--store` value names a database rather than a directory.
pub fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

fn valid_schema(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(b'a'..=b'z' | b'_'))
        && s.len() <= 63
        && b.all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

/// Schemas a store must not use: PostgreSQL's own (`pg_catalog`, `information_schema`, and
/// every `pg_` name, which it reserves) and `public`, the database's default, where every
/// role may create objects and the application's tables live: credlock's tables there
/// would share their grants and their search path with everything else.
fn system_schema(s: &str) -> bool {
    s.starts_with("pg_") || s == "information_schema" || s == "public"
}

fn valid_store(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

impl Database {
    /// Parse a store URL. The error says what is wrong without repeating the URL (it may
    /// hold a password).
    pub fn parse(url: &str) -> Result<Database, String> {
        if !is_url(url) {
            return Err("a database store URL starts with postgres:// or postgresql://".into());
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut schema = "credlock".to_owned();
        let mut store = "default".to_owned();
        let mut root_cert = None;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "schema" => schema = v.to_owned(),
                "store" => store = v.to_owned(),
                // Not a tokio-postgres option: the CA file, read here for rustls.
                "sslrootcert" => root_cert = Some(v.to_owned()),
                _ => rest.push(pair),
            }
        }
        if !valid_schema(&schema) {
            return Err(format!(
                "schema={schema:?} is not a plain identifier: use 1-63 characters from a-z, 0-9 and _, not starting with a digit"
            ));
        }
        if system_schema(&schema) {
            return Err(format!(
                "schema={schema} is PostgreSQL's own or the database's shared default schema: credlock's tables there would mix with other objects and their grants; name a schema of credlock's own (the default is credlock), e.g. schema=credlock"
            ));
        }
        if !valid_store(&store) {
            return Err(format!(
                "store={store:?}: use 1-64 characters from letters, digits and . _ -"
            ));
        }
        let libpq = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let mut config: postgres::Config = libpq.parse().map_err(|e| {
            // tokio-postgres's messages name the option, never the password.
            format!("the database URL is not valid: {e}")
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // A server that vanished (a cut cable, a dead machine) must fail a call in bounded
        // time, including one waiting for a commit's answer (promise 7).
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(15));
        if config.get_application_name().is_none() {
            config.application_name("credlock");
        }
        // Every credlock session: commits are durable when they return, whatever the
        // server's default; a session is never killed for idling while it holds a lock
        // across a token-endpoint call; a statement never runs unbounded.
        let ours = "-c synchronous_commit=on -c idle_session_timeout=0 -c idle_in_transaction_session_timeout=60000 -c statement_timeout=60000";
        let options = match config.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {ours}"),
            _ => ours.to_owned(),
        };
        config.options(&options);
        let password_in_url = config.get_password().is_some();
        let redacted = redact(&config, &schema, &store);
        let tls = std::sync::Arc::new(tls_config(root_cert.as_deref())?);
        let mut db = Database {
            config,
            schema,
            store,
            password_in_url,
            redacted,
            tls,
        };
        db.check_transport();
        Ok(db)
    }

    /// A new session (TLS as the URL's `sslmode` says, see the module doc).
    pub fn connect(&self) -> Result<postgres::Client, postgres::Error> {
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new((*self.tls).clone());
        self.config.connect(tls)
    }

    /// Use `password` unless the URL gave one (`PGPASSWORD`, as libpq reads it).
    pub fn with_password_fallback(mut self, password: Option<&str>) -> Self {
        if let (None, Some(p)) = (self.config.get_password(), password) {
            self.config.password(p);
        }
        self
    }

    /// To a host that is not this machine, TLS is required: `prefer` would let anyone on
    /// the path answer "no TLS" and read the password. `sslmode=disable` says plain text on
    /// purpose (a private network the user trusts).
    fn check_transport(&mut self) {
        use postgres::config::{Host, SslMode};
        let remote = self.config.get_hosts().iter().any(|h| match h {
            Host::Unix(_) => false,
            Host::Tcp(name) => !is_loopback(name),
        });
        if remote && self.config.get_ssl_mode() == SslMode::Prefer {
            self.config.ssl_mode(SslMode::Require);
        }
    }

    /// The advisory lock key of a lock target: the first 8 bytes of SHA-256 over the
    /// schema, the store and the target, so that stores never share a lock (FORMAT.md,
    /// "PostgreSQL").
    pub fn lock_key(&self, target: &credlock_core::platform::LockTarget) -> i64 {
        use credlock_core::platform::LockTarget;
        let what = match target {
            LockTarget::Store => "store".to_owned(),
            LockTarget::Refresh(id) => format!("refresh-{id}"),
        };
        advisory_key(&format!(
            "credlock-lock\0{}\0{}\0{what}",
            self.schema, self.store
        ))
    }

    /// The schema as an SQL identifier (checked to need no quoting; quoted anyway).
    pub(crate) fn schema_ident(&self) -> String {
        format!("\"{}\"", self.schema)
    }
}

/// rustls with the Mozilla roots and those of `root_cert` (PEM).
fn tls_config(root_cert: Option<&str>) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = root_cert {
        let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("sslrootcert={path}: cannot read PEM certificates: {e}"))?;
        if certs.is_empty() {
            return Err(format!("sslrootcert={path}: no certificate in the file"));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| format!("sslrootcert={path}: not a usable CA certificate: {e}"))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// An advisory lock key: the first 8 bytes (big-endian, signed) of SHA-256 over `name`.
pub(crate) fn advisory_key(name: &str) -> i64 {
    let digest = Sha256::digest(name.as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn redact(config: &postgres::Config, schema: &str, store: &str) -> String {
    use postgres::config::Host;
    let user = config.get_user().unwrap_or("");
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(h, port)| match h {
            Host::Tcp(name) => format!("{name}:{port}"),
            Host::Unix(path) => format!("{}:{port}", path.display()),
        })
        .collect();
    let db = config.get_dbname().unwrap_or("");
    let at = if user.is_empty() { "" } else { "@" };
    let secret = if config.get_password().is_some() {
        ":***"
    } else {
        ""
    };
    format!(
        "postgres://{user}{secret}{at}{}/{db}?schema={schema}&store={store}",
        hosts.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ours_and_libpqs() {
        let d =
            Database::parse("postgres://fleet@127.0.0.1:5433/app?schema=creds&store=ci").unwrap();
        assert_eq!((d.schema.as_str(), d.store.as_str()), ("creds", "ci"));
        assert_eq!(d.config.get_dbname(), Some("app"));
        assert_eq!(
            d.to_string(),
            "postgres://fleet@127.0.0.1:5433/app?schema=creds&store=ci"
        );
        let d = Database::parse("postgresql://u:hunter2@localhost/app").unwrap();
        assert!(d.password_in_url);
        assert!(!format!("{d} {d:?}").contains("hunter2"));
        assert_eq!(d.schema, "credlock");
    }

    #[test]
    fn refuses_what_is_unsafe_or_wrong() {
        use postgres::config::SslMode;
        let remote = Database::parse("postgres://u@db.example.com/app").unwrap();
        assert_eq!(
            remote.config.get_ssl_mode(),
            SslMode::Require,
            "TLS to another host"
        );
        let plain = Database::parse("postgres://u@db.example.com/app?sslmode=disable").unwrap();
        assert_eq!(plain.config.get_ssl_mode(), SslMode::Disable);
        let local = Database::parse("postgres://u@127.0.0.1/app").unwrap();
        assert_eq!(local.config.get_ssl_mode(), SslMode::Prefer);
        assert!(
            Database::parse("postgres://u@localhost/app?sslrootcert=/nonexistent.pem")
                .unwrap_err()
                .contains("sslrootcert")
        );
        assert!(
            Database::parse("postgres://u@localhost/app?schema=Bad;drop")
                .unwrap_err()
                .contains("identifier")
        );
        // Issue 22, item 8: system schemas were accepted.
        for schema in ["pg_catalog", "public", "information_schema", "pg_toast"] {
            let e = Database::parse(&format!("postgres://u@localhost/app?schema={schema}"))
                .map(|_| ())
                .unwrap_err();
            assert!(e.contains("schema of credlock's own"), "{schema}: {e}");
        }
        assert!(Database::parse("postgres://u@localhost/app?schema=public_creds").is_ok());
        assert!(Database::parse("postgres://u:pw@localhost/app?bogus=1")
            .map(|_| ())
            .unwrap_err()
            .contains("not valid"));
        assert!(
            !Database::parse("postgres://u:s3cret@localhost/app?bogus=1")
                .map(|_| ())
                .unwrap_err()
                .contains("s3cret")
        );
    }

    #[test]
    fn every_store_and_target_has_its_own_lock() {
        use credlock_core::platform::LockTarget;
        let a = Database::parse("postgres://u@localhost/app?store=a").unwrap();
        let b = Database::parse("postgres://u@localhost/app?store=b").unwrap();
        let id = "0".repeat(64);
        let keys = [
            a.lock_key(&LockTarget::Store),
            b.lock_key(&LockTarget::Store),
            a.lock_key(&LockTarget::Refresh(id.clone())),
            b.lock_key(&LockTarget::Refresh(id)),
        ];
        for i in 0..keys.len() {
            for j in i + 1..keys.len() {
                assert_ne!(keys[i], keys[j]);
            }
        }
    }
}
