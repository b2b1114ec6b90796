//! OS keyrings, through the keyring-rs v4 store crates: where a keyring slot's wrapping key
//! lives (FORMAT.md, "Key slots").
//!
//! Only a 32-byte wrapping key goes into a keyring, never the token bundle: keyrings cap item
//! sizes (Windows at 2560 bytes). Every call runs on a worker thread and is abandoned after a
//! deadline, because a keyring can hang (a dead D-Bus peer) or prompt (a locked collection).
//! The caller ([`crate::keys`]) asks each entry at most once per process.
//!
//! Backends:
//! - `secret-service` (Linux, BSD): the freedesktop Secret Service over D-Bus (GNOME Keyring,
//!   KWallet). Durable. Needs a session bus; containers usually have none.
//! - `keyutils` (Linux): the kernel's per-user *persistent* keyring. Volatile: lost at reboot
//!   and after `/proc/sys/kernel/keys/persistent_keyring_expiry` seconds unused (3 days by
//!   default), so it is allowed only beside a durable slot unless the user says otherwise.
//! - `apple-keychain` (macOS), `windows-credential` (Windows Credential Manager). Durable.

use std::sync::mpsc;
use std::time::Duration;
use zeroize::Zeroizing;

/// The service name of every credlock keyring entry; the user name is the wrapping key's id.
pub const SERVICE: &str = credlock_keyslots::KEYRING_SERVICE;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    SecretService,
    Keyutils,
    AppleKeychain,
    WindowsCredential,
}

impl Backend {
    pub const ALL: [Backend; 4] = [
        Backend::SecretService,
        Backend::Keyutils,
        Backend::AppleKeychain,
        Backend::WindowsCredential,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Backend::SecretService => "secret-service",
            Backend::Keyutils => "keyutils",
            Backend::AppleKeychain => "apple-keychain",
            Backend::WindowsCredential => "windows-credential",
        }
    }

    pub fn parse(name: &str) -> Option<Backend> {
        Backend::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The slot kind a key in this backend makes: volatile backends get their own kind, so
    /// the core (which cannot read slot data) knows what survives a reboot.
    pub fn slot_kind(self) -> &'static str {
        match self {
            Backend::Keyutils => credlock_keyslots::KERNEL_KEYRING_SLOT,
            _ => credlock_keyslots::KEYRING_SLOT,
        }
    }

    /// Whether this build can reach the backend at all.
    pub fn compiled_in(self) -> bool {
        match self {
            Backend::SecretService | Backend::Keyutils => cfg!(target_os = "linux"),
            Backend::AppleKeychain => cfg!(target_os = "macos"),
            Backend::WindowsCredential => cfg!(windows),
        }
    }

    /// The durable backend of this platform, for `CREDLOCK_KEYRING=auto`.
    pub fn platform_default() -> Backend {
        if cfg!(target_os = "macos") {
            Backend::AppleKeychain
        } else if cfg!(windows) {
            Backend::WindowsCredential
        } else {
            Backend::SecretService
        }
    }
}

/// Why a keyring call failed. Messages carry backend detail, never secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyringError {
    /// The keyring answered: no such entry.
    Missing,
    /// The keyring cannot be reached or refused (no D-Bus session, locked, denied).
    Failed(String),
    /// No answer within the deadline; the call was abandoned.
    Timeout(Duration),
}

impl std::fmt::Display for KeyringError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyringError::Missing => f.write_str("no such entry"),
            KeyringError::Failed(d) => f.write_str(d),
            KeyringError::Timeout(t) => write!(
                f,
                "no answer within {:.1} s (is it locked and prompting, or hung?)",
                t.as_secs_f64()
            ),
        }
    }
}

enum Op {
    Get,
    Set(Zeroizing<Vec<u8>>),
    Delete,
}

/// Run one keyring operation on a worker thread, waiting at most `timeout`.
fn call(
    backend: Backend,
    user: &str,
    op: Op,
    timeout: Duration,
) -> Result<Option<Zeroizing<Vec<u8>>>, KeyringError> {
    if !backend.compiled_in() {
        return Err(KeyringError::Failed(format!(
            "the {} keyring does not exist on this platform",
            backend.name()
        )));
    }
    let (tx, rx) = mpsc::channel();
    let user = user.to_owned();
    std::thread::Builder::new()
        .name("credlock-keyring".into())
        .spawn(move || {
            // The receiver may be gone (deadline passed): nothing left to tell.
            let _ = tx.send(platform::run(backend, &user, op));
        })
        .map_err(|e| KeyringError::Failed(format!("cannot start the keyring thread: {e}")))?;
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        // The worker is abandoned, not killed: it holds no lock of ours and no file.
        Err(_) => Err(KeyringError::Timeout(timeout)),
    }
}

pub fn get(
    backend: Backend,
    user: &str,
    timeout: Duration,
) -> Result<Zeroizing<Vec<u8>>, KeyringError> {
    call(backend, user, Op::Get, timeout)?.ok_or(KeyringError::Missing)
}

pub fn set(
    backend: Backend,
    user: &str,
    secret: &[u8],
    timeout: Duration,
) -> Result<(), KeyringError> {
    call(
        backend,
        user,
        Op::Set(Zeroizing::new(secret.to_vec())),
        timeout,
    )
    .map(|_| ())
}

/// Remove an entry; a missing one is not an error.
pub fn delete(backend: Backend, user: &str, timeout: Duration) -> Result<(), KeyringError> {
    match call(backend, user, Op::Delete, timeout) {
        Ok(_) | Err(KeyringError::Missing) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(any(target_os = "linux", target_os = "macos", windows))]
mod platform {
    use super::*;
    use keyring_core::Error as E;
    use std::sync::Arc;

    fn store(backend: Backend) -> Result<Arc<keyring_core::CredentialStore>, E> {
        match backend {
            #[cfg(target_os = "linux")]
            Backend::SecretService => Ok(dbus_secret_service_keyring_store::Store::new()?),
            #[cfg(target_os = "linux")]
            Backend::Keyutils => {
                join_session_keyring();
                Ok(linux_keyutils_keyring_store::Store::new()?)
            }
            #[cfg(target_os = "macos")]
            Backend::AppleKeychain => Ok(apple_native_keyring_store::keychain::Store::new()?),
            #[cfg(windows)]
            Backend::WindowsCredential => Ok(windows_native_keyring_store::Store::new()?),
            #[allow(unreachable_patterns)]
            _ => Err(E::NotSupportedByStore(backend.name().into())),
        }
    }

    /// The keyutils store adds keys to the session keyring and links them into the per-user
    /// persistent keyring. A process whose session keyring it does not possess (containers,
    /// services, `su`) gets "access denied" from `set` although the key was written. A fresh
    /// anonymous session keyring for this thread alone (credentials are per thread in Linux,
    /// and this is the keyring worker thread) fixes that; the key lives on in the persistent
    /// keyring, where the next process finds it.
    #[cfg(target_os = "linux")]
    fn join_session_keyring() {
        const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
        // SAFETY: keyctl(JOIN_SESSION_KEYRING, NULL) takes no pointers we own and only
        // replaces the calling thread's session keyring; failure leaves it as it was, and
        // the store calls that follow report their own errors.
        #[allow(unsafe_code)]
        unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                KEYCTL_JOIN_SESSION_KEYRING,
                std::ptr::null::<libc::c_char>(),
            );
        }
    }

    pub(super) fn run(
        backend: Backend,
        user: &str,
        op: Op,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, KeyringError> {
        let failed = |e: E| match e {
            E::NoEntry => KeyringError::Missing,
            // keyring-core's messages name the platform error, never the secret.
            other => KeyringError::Failed(other.to_string()),
        };
        let entry = store(backend)
            .and_then(|s| s.build(SERVICE, user, None))
            .map_err(failed)?;
        match op {
            Op::Get => entry
                .get_secret()
                .map(|s| Some(Zeroizing::new(s)))
                .map_err(failed),
            Op::Set(secret) => entry.set_secret(&secret).map(|_| None).map_err(failed),
            Op::Delete => entry.delete_credential().map(|_| None).map_err(failed),
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
mod platform {
    use super::*;
    pub(super) fn run(
        backend: Backend,
        _: &str,
        _: Op,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, KeyringError> {
        Err(KeyringError::Failed(format!(
            "the {} keyring is not supported on this platform",
            backend.name()
        )))
    }
}
