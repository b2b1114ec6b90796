//! Where a store's files live. One directory per store; every name is fixed here, and a
//! tenant name never becomes part of a path (refresh locks use the tenant's hash id).

use std::path::PathBuf;

/// The files of one store directory. See FORMAT.md, "Files".
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Layout { dir: dir.into() }
    }

    /// The sealed store.
    pub fn store(&self) -> PathBuf {
        self.dir.join("credentials.sealed")
    }

    /// The previous good store, kept by every write.
    pub fn backup(&self) -> PathBuf {
        self.dir.join("credentials.sealed.bak")
    }

    /// The store lock's sidecar file (never deleted).
    pub fn store_lock(&self) -> PathBuf {
        self.dir.join("credentials.lock")
    }

    /// Which lock protocol this store uses: `flock`, or `wasi-lease` for the WASI build.
    /// Created exclusively by the first host to touch the store.
    pub fn lock_protocol(&self) -> PathBuf {
        self.dir.join("lock-protocol")
    }

    /// The directory of per-tenant refresh lock files.
    pub fn lock_dir(&self) -> PathBuf {
        self.dir.join("locks")
    }

    /// One tenant's refresh lock; `id` is 64 lowercase hex characters.
    pub fn refresh_lock(&self, id: &str) -> PathBuf {
        // The core makes ids; anything else here is a bug that must not reach a path.
        assert!(
            id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "bad tenant id"
        );
        self.lock_dir().join(format!("refresh-{id}.lock"))
    }

    /// The default key file: a random wrapping key, owner-only.
    pub fn default_key_file(&self) -> PathBuf {
        self.dir.join("key")
    }
}

/// The default store directory: `$XDG_DATA_HOME/credlock` (`~/.local/share/credlock`) on
/// Linux, `~/Library/Application Support/credlock` on macOS, `%LOCALAPPDATA%\credlock\data`
/// on Windows. The local (not roaming) application data on Windows: a roaming profile is
/// copied between machines, and a store must stay on one (README, non-goals); its ACL is
/// what keeps the store private there (`io_util`'s module doc).
pub fn default_store_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "credlock").map(|d| d.data_local_dir().to_path_buf())
}

/// Where compiled components are cached: `$XDG_CACHE_HOME/credlock` on Linux,
/// `~/Library/Caches/credlock` on macOS, `%LOCALAPPDATA%\credlock\cache` on Windows.
pub fn default_cache_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "credlock").map(|d| d.cache_dir().to_path_buf())
}
