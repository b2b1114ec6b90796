//! How a store is configured: explicit settings first, then the environment the CLI reads,
//! then the defaults. The CLI and every language binding resolve their settings here, so
//! `CREDLOCK_PASSPHRASE`, `CREDLOCK_KEYRING`, the timeouts and the key-file rule mean the
//! same thing everywhere.

use crate::keys::{KdfParams, KeySources};
use crate::oskeyring::Backend as KeyringBackend;
use crate::{Config, StoreError};
use serde::{Deserialize, Deserializer};
use std::path::PathBuf;
use std::time::Duration;
use zeroize::Zeroizing;

/// Settings for opening a store; `None` means "from the environment, else the default".
///
/// This struct is the one declaration of the settings. Every binding hands its settings
/// over by name, as the JSON object [`OpenOptions::from_json`] reads, and the CLI's flags are
/// these fields (`clap::Args`, flattened into the command line). Each binding's typed
/// declaration (Python's `Store.open`, Node's `OpenOptions`, Go's `Options`, the C ABI's
/// `credlock_open` comment) is generated from the fields and their doc comments by
/// `host/surface/tests/settings.rs`, which fails when one is stale. A new setting is a field here
/// (its doc comment is its documentation everywhere; write it without Markdown, as the CLI
/// prints it) and its resolution in [`OpenOptions::resolve`].
///
/// How long a duration is, is never part of a doc comment: each front end says it (seconds
/// for the CLI, Python, Node and C; a `time.Duration` in Go).
#[derive(Clone, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct OpenOptions {
    /// The store directory, or a PostgreSQL URL (postgres://user@host/db?schema=credlock)
    /// for a store many machines share. Default: $CREDLOCK_STORE, else the platform's data
    /// directory ($XDG_DATA_HOME/credlock on Linux). A URL's password goes in PGPASSWORD or
    /// $CREDLOCK_STORE, not in a URL given here (other users see a command's arguments).
    #[arg(long = "store", global = true, value_name = "DIR|URL")]
    pub store_dir: Option<PathBuf>,
    /// The passphrase of a passphrase slot, which opens the store (or protects a new one).
    /// Default: $CREDLOCK_PASSPHRASE.
    #[arg(skip)]
    pub passphrase: Option<Zeroizing<String>>,
    /// The key file. Default: $CREDLOCK_KEY_FILE, else DIR/key. A new store gets a key-file
    /// slot (creating the file with a random key) unless a passphrase or a keyring protects
    /// it and no key file is named; the default key file is still tried for opening.
    #[arg(long, global = true, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// The OS keyring a new store (and adding a keyring slot) keeps its key in:
    /// secret-service, keyutils (the kernel keyring: volatile), apple-keychain,
    /// windows-credential, auto (this platform's durable one), or off (never ask a keyring,
    /// even to open a store). Default: $CREDLOCK_KEYRING, else none for a new store; an
    /// existing store's keyring slots are always tried.
    #[arg(long, global = true, value_name = "BACKEND")]
    pub keyring: Option<String>,
    /// How long to wait for the store lock before failing. Default: $CREDLOCK_LOCK_TIMEOUT,
    /// else 10 seconds. Below a millisecond (but not zero) it means "do not wait". A refresh
    /// waits for another process's refresh up to the HTTP timeout plus twice this.
    #[arg(long, global = true, value_name = "SECONDS")]
    #[serde(deserialize_with = "seconds_field")]
    pub lock_timeout: Option<f64>,
    /// How long one token-endpoint call may take. Default: $CREDLOCK_HTTP_TIMEOUT, else 30
    /// seconds.
    #[arg(long, global = true, value_name = "SECONDS")]
    #[serde(deserialize_with = "seconds_field")]
    pub http_timeout: Option<f64>,
    /// How long one keyring call may take (they can hang, or wait for an unlock prompt).
    /// Default: $CREDLOCK_KEYRING_TIMEOUT, else 10 seconds.
    #[arg(long, global = true, value_name = "SECONDS")]
    #[serde(deserialize_with = "seconds_field")]
    pub keyring_timeout: Option<f64>,
    /// Allow plain-http token endpoints on hosts other than loopback. Default:
    /// $CREDLOCK_ALLOW_INSECURE_HTTP.
    #[arg(long, global = true, num_args = 0, default_missing_value = "true")]
    pub allow_insecure_http: Option<bool>,
    /// Allow a store whose only key slots are volatile (the kernel keyring): a reboot loses
    /// it. Default: $CREDLOCK_ALLOW_VOLATILE_ONLY.
    #[arg(long, global = true, num_args = 0, default_missing_value = "true")]
    pub allow_volatile_only: Option<bool>,
    /// The argon2id costs of a new passphrase slot: memory (KiB), iterations and lanes, each
    /// optional (default 65536 KiB, 3 iterations, 1 lane). Tests lower them.
    #[arg(skip)]
    #[serde(deserialize_with = "kdf_field")]
    pub kdf: Option<KdfParams>,
    /// The passphrase of a new passphrase slot (adding a slot). Default:
    /// $CREDLOCK_NEW_PASSPHRASE.
    #[arg(skip)]
    pub new_passphrase: Option<Zeroizing<String>>,
    /// Read no CREDLOCK_* variable: everything is configured here.
    #[arg(skip)]
    pub ignore_env: bool,
}

impl std::fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenOptions")
            .field("store_dir", &self.store_dir)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<set>"))
            .field("key_file", &self.key_file)
            .field("keyring", &self.keyring)
            .field("lock_timeout", &self.lock_timeout)
            .field("http_timeout", &self.http_timeout)
            .finish_non_exhaustive()
    }
}

/// A number of seconds, or a numeric string (as the environment spells it). Anything else
/// becomes NaN, which [`OpenOptions::resolve`] refuses with the message that names the
/// setting, so every binding reports a bad timeout in the same words.
fn seconds_field<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Number(f64),
        Text(String),
    }
    Ok(Option::<Seconds>::deserialize(d)?.map(|s| match s {
        Seconds::Number(n) => n,
        Seconds::Text(t) => t.trim().parse().unwrap_or(f64::NAN),
    }))
}

const KDF_WHOLE: &str = "kdf must have whole numbers: m_cost_kib, t_cost, p_cost";

/// A new passphrase slot's argon2id parameters; a field left out keeps its default.
fn kdf_field<'de, D: Deserializer<'de>>(d: D) -> Result<Option<KdfParams>, D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Kdf {
        m_cost_kib: Option<f64>,
        t_cost: Option<f64>,
        p_cost: Option<f64>,
    }
    let Some(k) = Option::<Kdf>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = |v: Option<f64>, default: u32| match v {
        None => Ok(default),
        Some(n) if n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n) => Ok(n as u32),
        Some(_) => Err(serde::de::Error::custom(KDF_WHOLE)),
    };
    let default = KdfParams::default();
    Ok(Some(KdfParams {
        m_cost_kib: whole(k.m_cost_kib, default.m_cost_kib)?,
        t_cost: whole(k.t_cost, default.t_cost)?,
        p_cost: whole(k.p_cost, default.p_cost)?,
    }))
}

fn invalid(why: impl Into<String>) -> StoreError {
    StoreError::InvalidOptions(why.into())
}

/// Seconds as milliseconds, bounded so that the refresh-lock wait (HTTP + 2x lock) fits.
pub fn seconds_ms(name: &str, s: f64) -> Result<u32, StoreError> {
    if !(s.is_finite() && s >= 0.0 && s * 1000.0 <= f64::from(u32::MAX / 4)) {
        return Err(invalid(format!(
            "{name} must be a number of seconds between 0 and 12 days"
        )));
    }
    Ok((s * 1000.0).round() as u32)
}

/// clap's `FalseyValueParser` rule, so that the CLI and the bindings agree.
pub fn env_flag_value(raw: &str) -> bool {
    !matches!(
        raw.trim().to_ascii_lowercase().as_str(),
        "" | "n" | "no" | "f" | "false" | "off" | "0"
    )
}

impl OpenOptions {
    /// Options for the store in `dir`, everything else from the environment.
    pub fn for_dir(dir: impl Into<PathBuf>) -> Self {
        OpenOptions {
            store_dir: Some(dir.into()),
            ..Default::default()
        }
    }

    /// The settings in a JSON object (`""` for none): the form every binding passes. Absent
    /// or null fields mean "from the environment, else the default"; an unknown field is an
    /// error that names it. A value is never quoted back: it may be a passphrase.
    pub fn from_json(text: &str) -> Result<OpenOptions, StoreError> {
        if text.trim().is_empty() {
            return Ok(OpenOptions::default());
        }
        serde_json::from_str(text).map_err(|e| {
            let msg = e.to_string();
            invalid(if msg.starts_with("unknown field") {
                // serde lists the expected fields after the unknown one; names only.
                format!("the options JSON has an {msg}")
            } else if msg.starts_with(KDF_WHOLE) {
                msg
            } else {
                format!(
                    "the options are not a valid JSON object of settings (line {}, column {})",
                    e.line(),
                    e.column()
                )
            })
        })
    }

    fn env(&self, name: &str) -> Option<String> {
        if self.ignore_env {
            return None;
        }
        std::env::var(name).ok()
    }

    fn seconds(
        &self,
        given: Option<f64>,
        env: &str,
        default: f64,
        name: &str,
    ) -> Result<u32, StoreError> {
        let s = match (given, self.env(env)) {
            (Some(s), _) => s,
            (None, Some(raw)) => raw
                .trim()
                .parse::<f64>()
                .map_err(|_| invalid(format!("{env}={raw:?} is not a number of seconds")))?,
            (None, None) => default,
        };
        // Name the setting the user actually wrote.
        let name = if given.is_some() { name } else { env };
        seconds_ms(name, s)
    }

    fn flag(&self, given: Option<bool>, env: &str) -> bool {
        given.unwrap_or_else(|| self.env(env).is_some_and(|v| env_flag_value(&v)))
    }

    fn secret(
        &self,
        given: &Option<Zeroizing<String>>,
        env: &str,
    ) -> Result<Option<Zeroizing<String>>, StoreError> {
        if let Some(p) = given {
            if p.is_empty() {
                return Err(invalid("the passphrase is empty"));
            }
            return Ok(Some(p.clone()));
        }
        match self.env(env) {
            None => Ok(None),
            // An empty passphrase is a mistake (an unset shell variable), never "no
            // passphrase": silently making a key-file store instead would surprise.
            Some(v) if v.is_empty() => Err(invalid(format!(
                "{env} is set but empty: unset it, or set the passphrase"
            ))),
            Some(v) => Ok(Some(Zeroizing::new(v))),
        }
    }

    /// The configuration these options describe.
    pub fn resolve(&self) -> Result<Config, StoreError> {
        let dir = match (&self.store_dir, self.env("CREDLOCK_STORE")) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) if !d.is_empty() => PathBuf::from(d),
            _ => crate::layout::default_store_dir().ok_or_else(|| {
                invalid("no home directory: pass a store directory or set CREDLOCK_STORE")
            })?,
        };
        let database = match dir.to_str().filter(|s| crate::pg::database::is_url(s)) {
            Some(url) => Some(
                crate::pg::Database::parse(url)
                    .map_err(invalid)?
                    .with_password_fallback(self.env("PGPASSWORD").as_deref()),
            ),
            None => None,
        };
        // A database store keeps only local things in a directory: the default data directory.
        let dir = match &database {
            Some(_) => crate::layout::default_store_dir().ok_or_else(|| {
                invalid("no home directory: set HOME (or XDG_DATA_HOME) for this machine's credlock files")
            })?,
            None => dir,
        };
        let mut config = Config::for_dir(&dir);
        let passphrase = self.secret(&self.passphrase, "CREDLOCK_PASSPHRASE")?;
        let new_passphrase = self.secret(&self.new_passphrase, "CREDLOCK_NEW_PASSPHRASE")?;
        let explicit_key_file = match (&self.key_file, self.env("CREDLOCK_KEY_FILE")) {
            (Some(k), _) => Some(k.clone()),
            (None, Some(k)) if !k.is_empty() => Some(PathBuf::from(k)),
            _ => None,
        };
        let keyring_name = self
            .keyring
            .clone()
            .or_else(|| self.env("CREDLOCK_KEYRING"));
        let (keyring, use_keyrings) = match keyring_name.as_deref() {
            None | Some("") => (None, true),
            Some("off") => (None, false),
            Some("auto") => (Some(KeyringBackend::platform_default()), true),
            Some(name) => match KeyringBackend::parse(name) {
                Some(b) if b.compiled_in() => (Some(b), true),
                Some(b) => {
                    return Err(invalid(format!(
                        "the {} keyring does not exist on this platform",
                        b.name()
                    )))
                }
                None => {
                    return Err(invalid(format!(
                        "unknown keyring {name:?}: use secret-service, keyutils, apple-keychain, windows-credential, auto or off"
                    )))
                }
            },
        };
        let keyring_timeout = self.seconds(
            self.keyring_timeout,
            "CREDLOCK_KEYRING_TIMEOUT",
            10.0,
            "the keyring timeout",
        )?;
        config.keys = KeySources {
            // A new store gets a key file only when nothing else protects it, or when one is
            // named explicitly: a key file beside the store would defeat a passphrase or
            // keyring. An existing store's key file is still used to open it if present.
            //
            // A database store is opened on many machines: each needs the same key, so it
            // never gets a machine-local default key file, only one named explicitly (a
            // mounted secret) or a passphrase.
            create_key_file: (passphrase.is_none() && keyring.is_none() && database.is_none())
                || explicit_key_file.is_some(),
            passphrase,
            key_file: match (&database, explicit_key_file) {
                (_, Some(k)) => Some(k),
                (Some(_), None) => None,
                (None, None) => Some(dir.join("key")),
            },
            kdf: self.kdf.unwrap_or_default(),
            keyring,
            use_keyrings,
            keyring_timeout: Duration::from_millis(u64::from(keyring_timeout.max(1))),
            new_passphrase,
            allow_volatile_only: self
                .flag(self.allow_volatile_only, "CREDLOCK_ALLOW_VOLATILE_ONLY"),
        };
        config.options.lock_timeout_ms = self.seconds(
            self.lock_timeout,
            "CREDLOCK_LOCK_TIMEOUT",
            10.0,
            "the lock timeout",
        )?;
        config.options.http_timeout_ms = self
            .seconds(
                self.http_timeout,
                "CREDLOCK_HTTP_TIMEOUT",
                30.0,
                "the HTTP timeout",
            )?
            .max(1);
        config.endpoint.allow_insecure_http =
            self.flag(self.allow_insecure_http, "CREDLOCK_ALLOW_INSECURE_HTTP");
        config.options.validate()?;
        config.database = database;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CLI's flags are these fields: a flag given is Some, one left out None (then the
    /// environment decides), so a boolean flag never defaults to Some(false), which would
    /// override CREDLOCK_ALLOW_*.
    #[test]
    fn the_cli_flags_are_the_settings() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            open: OpenOptions,
        }
        let none = Cli::parse_from(["credlock"]).open;
        assert_eq!(none.allow_insecure_http, None);
        assert_eq!(none.allow_volatile_only, None);
        assert_eq!(none.keyring_timeout, None);
        let given = Cli::parse_from([
            "credlock",
            "--allow-insecure-http",
            "--keyring-timeout",
            "2.5",
            "--store",
            "/tmp/s",
        ])
        .open;
        assert_eq!(given.allow_insecure_http, Some(true));
        assert_eq!(given.allow_volatile_only, None);
        assert_eq!(given.keyring_timeout, Some(2.5));
        assert_eq!(
            given.store_dir.as_deref(),
            Some(std::path::Path::new("/tmp/s"))
        );
    }

    fn opts() -> OpenOptions {
        OpenOptions {
            store_dir: Some("/tmp/s".into()),
            ignore_env: true,
            ..Default::default()
        }
    }

    #[test]
    fn key_file_rule() {
        let c = opts().resolve().unwrap();
        assert!(c.keys.create_key_file);
        assert_eq!(c.keys.key_file.as_deref(), Some("/tmp/s/key".as_ref()));
        let c = OpenOptions {
            passphrase: Some(Zeroizing::new("pw".into())),
            ..opts()
        }
        .resolve()
        .unwrap();
        assert!(
            !c.keys.create_key_file,
            "a passphrase store gets no key file"
        );
        assert_eq!(c.options.lock_timeout_ms, 10_000);
        assert_eq!(c.options.http_timeout_ms, 30_000);
    }

    #[test]
    fn json_is_read_by_name() {
        let o = OpenOptions::from_json(
            r#"{"store_dir": "/tmp/s", "lock_timeout": "2.5", "http_timeout": 3,
                "kdf": {"m_cost_kib": 64, "t_cost": 1, "p_cost": 1}, "ignore_env": true,
                "passphrase": null}"#,
        )
        .unwrap();
        assert_eq!(o.store_dir.as_deref(), Some("/tmp/s".as_ref()));
        assert_eq!((o.lock_timeout, o.http_timeout), (Some(2.5), Some(3.0)));
        assert_eq!(o.kdf.map(|k| k.m_cost_kib), Some(64));
        assert!(o.ignore_env && o.passphrase.is_none());
        let c = o.resolve().unwrap();
        assert_eq!(c.options.lock_timeout_ms, 2_500);

        let err = |t: &str| OpenOptions::from_json(t).err().unwrap().to_string();
        assert!(err(r#"{"lock_timout": 1}"#).contains("unknown field `lock_timout`"));
        // A secret in a malformed document is never quoted back.
        let e = err(r#"{"passphrase": "hunter2hunter2", "kdf": 7}"#);
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("line 1"), "{e}");
        // A timeout that is not a number is refused by resolve, naming the setting.
        assert!(err(r#"{"kdf": {"t_cost": 1.5}}"#).contains(KDF_WHOLE));
        let o = OpenOptions::from_json(r#"{"kdf": {"t_cost": 1}}"#).unwrap();
        assert_eq!(o.kdf.unwrap().m_cost_kib, KdfParams::default().m_cost_kib);
        let o = OpenOptions::from_json(r#"{"lock_timeout": "soon", "ignore_env": true}"#).unwrap();
        assert!(o
            .resolve()
            .err()
            .unwrap()
            .to_string()
            .contains("the lock timeout"));
    }

    #[test]
    fn refuses_what_is_wrong() {
        let bad = |o: OpenOptions| o.resolve().unwrap_err().to_string();
        assert!(bad(OpenOptions {
            passphrase: Some(Zeroizing::new(String::new())),
            ..opts()
        })
        .contains("passphrase is empty"));
        assert!(bad(OpenOptions {
            lock_timeout: Some(-1.0),
            ..opts()
        })
        .contains("the lock timeout"));
        assert!(bad(OpenOptions {
            keyring: Some("gnome".into()),
            ..opts()
        })
        .contains("unknown keyring"));
    }
}
