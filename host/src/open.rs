//! How a store is configured: explicit settings first, then the environment the CLI reads,
//! then the defaults. The CLI and every language binding resolve their settings here, so
//! `CREDLOCK_PASSPHRASE`, `CREDLOCK_KEYRING`, the timeouts and the key-file rule mean the
//! same thing everywhere.

use crate::keys::{KdfParams, KeySources};
use crate::oskeyring::Backend as KeyringBackend;
use crate::{Config, StoreError};
use std::path::PathBuf;
use std::time::Duration;
use zeroize::Zeroizing;

/// Settings for opening a store; `None` means "from the environment, else the default".
#[derive(Clone, Default)]
pub struct OpenOptions {
    /// The store directory, or a PostgreSQL URL (`postgres://user@host/db?schema=credlock`)
    /// for a store shared by many machines. Default: `$CREDLOCK_STORE`, else the
    /// platform's data directory.
    pub store_dir: Option<PathBuf>,
    /// A passphrase for a passphrase slot. Default: `$CREDLOCK_PASSPHRASE`.
    pub passphrase: Option<Zeroizing<String>>,
    /// The key file. Default: `$CREDLOCK_KEY_FILE`, else `DIR/key`.
    pub key_file: Option<PathBuf>,
    /// `secret-service`, `keyutils`, `apple-keychain`, `windows-credential`, `auto` or `off`.
    /// Default: `$CREDLOCK_KEYRING`, else none for new stores (existing keyring slots open).
    pub keyring: Option<String>,
    /// Seconds. Defaults: `$CREDLOCK_LOCK_TIMEOUT` or 10, `$CREDLOCK_HTTP_TIMEOUT` or 30,
    /// `$CREDLOCK_KEYRING_TIMEOUT` or 10.
    pub lock_timeout: Option<f64>,
    pub http_timeout: Option<f64>,
    pub keyring_timeout: Option<f64>,
    /// Default: `$CREDLOCK_ALLOW_INSECURE_HTTP`.
    pub allow_insecure_http: Option<bool>,
    /// Default: `$CREDLOCK_ALLOW_VOLATILE_ONLY`.
    pub allow_volatile_only: Option<bool>,
    /// argon2id parameters for a new passphrase slot (tests use small ones).
    pub kdf: Option<KdfParams>,
    /// The passphrase of a new passphrase slot. Default: `$CREDLOCK_NEW_PASSPHRASE`.
    pub new_passphrase: Option<Zeroizing<String>>,
    /// Read nothing from the environment (a program that configures everything itself).
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
