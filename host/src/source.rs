//! Plaintext token files being imported: read once with their identity, removed only if
//! they are still the very file that was read. One implementation for the CLI and every
//! binding (`import FILE --remove-source`, `Store.import_file(..., remove_source=True)`).

use crate::io_util::sync_dir;
use crate::Error;
use credlock_core::StoreError;
use credlock_core::{ImportOptions, ImportReport};
use std::io::Read;
use std::path::Path;
use zeroize::Zeroizing;

/// The most a token source (one response for `put`, or a map for `import`) may hold: far
/// above any real token response or agent `auth.json`, far below what could exhaust memory.
pub const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// What identifies the version of a file that was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl Identity {
    /// When the file was last written, in Unix milliseconds (`None` before 1970 or unknown):
    /// a token kept in it was received no later than this.
    pub fn saved_at_ms(&self) -> Option<u64> {
        u64::try_from(self.mtime_ns / 1_000_000)
            .ok()
            .filter(|ms| *ms > 0)
    }
}

/// Import the file at `path` with `import` (one store's `import_tokens`): read once, dated
/// by its mtime (a token kept with only `expires_in` was received no later), and with
/// `remove` removed once the import is durable, only if it is still the file read.
pub fn import_file(
    path: &Path,
    how: &ImportOptions,
    remove: bool,
    import: impl FnOnce(&str, &ImportOptions) -> Result<ImportReport, Error>,
) -> Result<ImportFileReport, Error> {
    let (text, identity) = read_source(path)?;
    let how = ImportOptions {
        saved_at_ms: identity.saved_at_ms(),
        ..how.clone()
    };
    let report = import(&text, &how)?;
    let kept_reason = if remove {
        remove_source(path, identity, &report)
    } else {
        None
    };
    Ok(ImportFileReport {
        source_removed: remove && kept_reason.is_none(),
        kept_reason,
        report,
    })
}

/// The outcome of importing a file. Serialized as the [`ImportReport`]'s fields followed by
/// this one's (`#[serde(flatten)]`): one flat result, as `import_tokens` gives plus two.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportFileReport {
    #[serde(flatten)]
    pub report: ImportReport,
    pub source_removed: bool,
    /// Why the file stayed, when removal was asked for and not done.
    pub kept_reason: Option<String>,
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> Identity {
    use std::os::unix::fs::MetadataExt;
    Identity {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
    }
}

#[cfg(not(unix))]
fn identity(meta: &std::fs::Metadata) -> Identity {
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    Identity {
        dev: 0,
        ino: 0,
        size: meta.len(),
        mtime_ns,
    }
}

fn invalid(why: String) -> StoreError {
    StoreError::InvalidTokenResponse(why)
}

/// Read a whole token source from `reader`, refusing more than [`MAX_INPUT_BYTES`].
pub fn read_limited(reader: impl Read, what: &str) -> Result<Zeroizing<String>, StoreError> {
    let mut raw = Zeroizing::new(Vec::new());
    reader
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(|e| StoreError::InvalidOptions(format!("reading {what}: {e}")))?;
    if raw.len() as u64 > MAX_INPUT_BYTES {
        return Err(invalid(format!(
            "{what} is larger than {MAX_INPUT_BYTES} bytes"
        )));
    }
    let text = std::str::from_utf8(&raw).map_err(|_| invalid(format!("{what} is not UTF-8")))?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// The file's contents and the identity of what was read (one open file, so the two agree).
/// Follows symlinks, as any reader of the caller's file would; a FIFO or device is refused
/// rather than waited on.
pub fn read_source(path: &Path) -> Result<(Zeroizing<String>, Identity), StoreError> {
    let shown = path.display();
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let file = opts
        .open(path)
        .map_err(|e| invalid(format!("cannot open {shown}: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| invalid(format!("cannot inspect {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(invalid(format!("{shown} is not a regular file")));
    }
    let text = read_limited(&file, &shown.to_string())?;
    Ok((text, identity(&meta)))
}

/// Remove an imported source durably; `None` if removed, else why it was kept.
///
/// A program may rewrite its token file at any time (a refresh rotates the refresh token):
/// removing a newer version than the one imported would lose that token, so the file must
/// still be the one read. `symlink_metadata`, not `metadata`: unlinking a symlink leaves its
/// target, and the plaintext with it.
pub fn remove_source(path: &Path, read: Identity, report: &ImportReport) -> Option<String> {
    if !report.skipped.is_empty() {
        let names: Vec<&str> = report.skipped.iter().map(|(n, _)| n.as_str()).collect();
        return Some(format!("entries were skipped: {}", names.join(", ")));
    }
    if report.imported.is_empty() {
        return Some("nothing was imported".into());
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return Some(format!("it could not be checked: {e}")),
    };
    if !meta.is_file() || identity(&meta) != read {
        return Some("it changed (or is a symlink) since it was read".into());
    }
    if let Err(e) = std::fs::remove_file(path) {
        return Some(format!("it could not be removed: {e}"));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Err(e) = sync_dir(dir) {
        return Some(format!(
            "it was removed, but the removal may not survive a crash: {e}"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imported() -> ImportReport {
        ImportReport {
            imported: vec!["a".into()],
            skipped: vec![],
            generation: 1,
        }
    }

    #[test]
    fn removes_only_the_file_that_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("auth.json");
        std::fs::write(&p, "{}").unwrap();
        let (_, id) = read_source(&p).unwrap();
        // Rewritten meanwhile (a refresh rotated its token): kept.
        std::fs::write(&p, "{\"x\":1}").unwrap();
        assert!(remove_source(&p, id, &imported()).is_some());
        assert!(p.exists());
        let (_, id) = read_source(&p).unwrap();
        assert_eq!(remove_source(&p, id, &imported()), None);
        assert!(!p.exists());
    }

    // Unix symlinks; on Windows a symlink needs a privilege tests do not have.
    #[cfg(unix)]
    #[test]
    fn never_removes_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.json");
        std::fs::write(&target, "{}").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let (_, id) = read_source(&link).unwrap();
        assert!(remove_source(&link, id, &imported()).is_some());
        assert!(target.exists() && link.exists());
    }
}
