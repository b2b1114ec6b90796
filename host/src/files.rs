//! The store's files: whole reads, atomic durable replaces.
//!
//! What we assume of the filesystem (FORMAT.md, "Filesystem assumptions"): `rename(2)`
//! within a directory is atomic; data is durable after `fsync` of the file, and a rename or
//! link after `fsync` of the directory; `link(2)` is atomic and fails if the name exists.
//!
//! On Windows (NTFS) the same steps map to: `MoveFileExW` with `MOVEFILE_REPLACE_EXISTING`
//! (atomic within a volume) and `MOVEFILE_WRITE_THROUGH` (durable when it returns) in place of
//! rename and directory fsync, `FlushFileBuffers` for fsync, and `CreateHardLinkW` (which
//! fails if the name exists) for link; see `io_util` for the details and for what makes the
//! files private there.

use crate::io_util::{self, io_error, sync_dir};
use credlock_core::platform::{FileError, IoError};
use std::fs::File;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
#[cfg(unix)]
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The largest store file read (a store of thousands of tenants is well below this).
pub const MAX_STORE_BYTES: u64 = 16 * 1024 * 1024;

/// Open `path` for reading, or `None` if it does not exist. Refuses symlinks and non-regular
/// files: every read of a store file goes through here.
fn open_regular(path: &Path) -> Result<Option<(File, std::fs::Metadata)>, FileError> {
    // On Windows a symlink is opened itself here (io_util::no_follow) and refused below as
    // not a regular file.
    let file = match io_util::no_follow(OpenOptions::new().read(true)).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FileError::Io(io_error(&e, path))),
    };
    let meta = file
        .metadata()
        .map_err(|e| FileError::Io(io_error(&e, path)))?;
    if !meta.is_file() {
        return Err(FileError::Io(IoError::NotARegularFile(
            path.display().to_string(),
        )));
    }
    Ok(Some((file, meta)))
}

/// At most the first `max_bytes` of the file (a store's header), or `None` if it does not
/// exist; as [`read`], but a longer file is not an error.
pub fn read_head(path: &Path, max_bytes: u64) -> Result<Option<Vec<u8>>, FileError> {
    let Some((file, meta)) = open_regular(path)? else {
        return Ok(None);
    };
    let mut buf = Vec::with_capacity(meta.len().min(max_bytes) as usize);
    file.take(max_bytes)
        .read_to_end(&mut buf)
        .map_err(|e| FileError::Io(io_error(&e, path)))?;
    Ok(Some(buf))
}

/// The whole file, or `None` if it does not exist. Refuses symlinks and non-regular files.
pub fn read(path: &Path, max_bytes: u64) -> Result<Option<Vec<u8>>, FileError> {
    let Some((file, meta)) = open_regular(path)? else {
        return Ok(None);
    };
    read_opened(path, file, &meta, max_bytes)
}

/// As [`read`], for a secret (a key file): also refused if others could read or replace it
/// (`privacy::check_key_file`, checked on the descriptor that is read).
pub fn read_secret(path: &Path, max_bytes: u64) -> Result<Option<Vec<u8>>, FileError> {
    let Some((file, meta)) = open_regular(path)? else {
        return Ok(None);
    };
    crate::privacy::check_key_file(path, &meta).map_err(FileError::Io)?;
    read_opened(path, file, &meta, max_bytes)
}

fn read_opened(
    path: &Path,
    file: File,
    meta: &std::fs::Metadata,
    max_bytes: u64,
) -> Result<Option<Vec<u8>>, FileError> {
    if meta.len() > max_bytes {
        return Err(FileError::TooLarge(meta.len()));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    // The file is never written in place (only replaced), so this reads one version.
    file.take(max_bytes + 1)
        .read_to_end(&mut buf)
        .map_err(|e| FileError::Io(io_error(&e, path)))?;
    if buf.len() as u64 > max_bytes {
        return Err(FileError::TooLarge(buf.len() as u64));
    }
    Ok(Some(buf))
}

/// A temp name beside `target`: `.NAME.TAG-PID-HEX`. HEX is unique within the process (a
/// random base drawn once, plus a counter) and unguessable across processes, so a put costs
/// no `getrandom` per temp file; the pid lets a sweep tell a live writer's file from litter.
pub(crate) fn temp_name(target: &Path, tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static BASE: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| {
        let mut rnd = [0u8; 8];
        getrandom::getrandom(&mut rnd).expect("the OS random source is available");
        u64::from_le_bytes(rnd)
    });
    let rnd = base
        .wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed))
        .to_be_bytes();
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file");
    target.with_file_name(format!(
        ".{name}.{tag}-{}-{}",
        std::process::id(),
        hex::encode(rnd)
    ))
}

/// Refuse to replace a symlink: writing through one could land anywhere. Returns what is
/// there (`None`: nothing), which the backup reuses rather than asking again.
fn check_not_symlink(path: &Path) -> Result<Option<std::fs::Metadata>, FileError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() || !m.is_file() => Err(FileError::Io(
            IoError::NotARegularFile(format!("{}: not a regular file (refused)", path.display())),
        )),
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        // What cannot be looked at cannot be kept as the backup either: say so rather than
        // replace it without one.
        Err(e) => Err(FileError::Io(io_error(&e, path))),
    }
}

/// Replace `target` with `contents` atomically and durably; if `backup` is given and
/// `target` exists, its current version becomes `backup` first (a hard link: files are
/// never modified in place, so the old inode is exactly the old version).
pub fn replace(target: &Path, contents: &[u8], backup: Option<&Path>) -> Result<(), FileError> {
    let dir = target.parent().expect("store files live in a directory");
    let current = check_not_symlink(target)?;
    let tmp = temp_name(target, "tmp");
    let io = |e: io::Error| FileError::Io(io_error(&e, target));
    let written = (|| -> Result<(), FileError> {
        // create_new never follows a symlink (O_EXCL; on Windows CREATE_NEW on the link itself).
        let mut file = io_util::owner_only(io_util::no_follow(
            OpenOptions::new().write(true).create_new(true),
        ))
        .open(&tmp)
        .map_err(io)?;
        file.write_all(contents).map_err(io)?;
        // The backup is linked before the new file's fsync, so that its two directory
        // changes are committed by the journal commit that fsync makes anyway (journaled
        // ext4, xfs) instead of queueing behind it. It is the store's current, already
        // durable version, so making it early is safe: a crash from here on leaves store and
        // backup the same inode, which the next write's `same_file` check expects.
        if let (Some(backup), Some(current)) = (backup, &current) {
            keep_backup(target, current, backup)?;
        }
        file.sync_all().map_err(io)?;
        drop(file);
        crate::failpoints::hit("replace:before-rename");
        io_util::rename_over(&tmp, target).map_err(io)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    sync_dir(dir).map_err(|e| FileError::Io(io_error(&e, dir)))
}

/// Keep `target`'s current version (`current`: its metadata, just read) as `backup`.
fn keep_backup(target: &Path, current: &std::fs::Metadata, backup: &Path) -> Result<(), FileError> {
    // A writer killed between linking the backup and renaming leaves the store and the
    // backup one inode; renaming a link of it over the other would do nothing (POSIX), and
    // leave the link behind. The backup is already this version.
    if same_file(current, backup) {
        return Ok(());
    }
    let link_tmp = temp_name(backup, "tmp");
    match io_util::with_sharing_retries(|| std::fs::hard_link(target, &link_tmp)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(FileError::Io(io_error(&e, backup))),
    }
    // A store written by an older version (or copied by hand) may be 0644; its backup is
    // made owner-only like every file credlock writes. The store itself is replaced next.
    // The link is the same inode as `current` (the store is only ever replaced, under the
    // store lock we hold), so its mode is the one just read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if current.permissions().mode() & 0o077 != 0 {
            let private = std::fs::Permissions::from_mode(0o600);
            if let Err(e) = std::fs::set_permissions(&link_tmp, private) {
                let _ = std::fs::remove_file(&link_tmp);
                return Err(FileError::Io(io_error(&e, backup)));
            }
        }
    }
    io_util::rename_over(&link_tmp, backup).map_err(|e| {
        let _ = std::fs::remove_file(&link_tmp);
        FileError::Io(io_error(&e, backup))
    })
    // The directory fsync after the main rename makes this durable too (on Windows, the
    // write-through main rename: io_util::sync_dir).
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(b).is_ok_and(|b| a.dev() == b.dev() && a.ino() == b.ino())
}

#[cfg(not(unix))]
fn same_file(_a: &std::fs::Metadata, _b: &Path) -> bool {
    false
}

/// Temp files older than this, made outside any lock (a new key file, the lock-protocol
/// marker), belong to a writer that died: a live one links its file within milliseconds.
pub const STALE_UNLOCKED_TEMP: std::time::Duration = std::time::Duration::from_secs(60);

/// Temp files that writers which died left in `dir`, with their sizes: any whose writer
/// process is gone or that is older than [`STALE_UNLOCKED_TEMP`], and, for a caller holding
/// the exclusive store lock, every `.NAME.tmp-*` (only made under that lock).
pub fn litter(dir: &Path, under_store_lock: bool) -> Vec<(PathBuf, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with('.') {
            continue;
        }
        let Ok(meta) = e.path().symlink_metadata() else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let old = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age >= STALE_UNLOCKED_TEMP);
        let (locked_temp, tail) = match (name.split_once(".tmp-"), name.split_once(".new-")) {
            (Some((_, tail)), _) => (true, tail),
            (None, Some((_, tail))) => (false, tail),
            (None, None) => continue,
        };
        // `.NAME.TAG-PID-RAND` (temp_name): a writer that is gone cannot still be writing.
        let dead = tail
            .split_once('-')
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
            .is_some_and(|pid| !process_alive(pid));
        if (locked_temp && under_store_lock) || dead || old {
            found.push((e.path(), meta.len()));
        }
    }
    found.sort();
    found
}

/// Whether process `pid` exists on this machine (a store is local: FORMAT.md).
#[cfg(unix)]
#[allow(unsafe_code)]
pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 checks for existence and permission only; nothing is delivered.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(not(unix))]
pub(crate) fn process_alive(_pid: u32) -> bool {
    true
}

/// Remove [`litter`]; returns how many files went. Call only under the exclusive store lock.
pub fn sweep_litter(dir: &Path) -> usize {
    let gone = litter(dir, true)
        .into_iter()
        .filter(|(p, _)| std::fs::remove_file(p).is_ok())
        .count();
    if gone > 0 {
        let _ = sync_dir(dir);
    }
    gone
}

/// Remove `path` durably; missing is fine.
pub fn remove(path: &Path) -> Result<(), FileError> {
    match io_util::with_sharing_retries(|| std::fs::remove_file(path)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(FileError::Io(io_error(&e, path))),
    }
    let dir = path.parent().expect("store files live in a directory");
    sync_dir(dir).map_err(|e| FileError::Io(io_error(&e, dir)))
}

/// Create `path` with `contents` only if it does not exist, atomically (temp + link) and
/// durably; returns false if it existed. Used for the key file: two processes creating it
/// at once must end up with one key.
pub fn create_exclusive(path: &Path, contents: &[u8]) -> Result<bool, FileError> {
    let dir = path.parent().expect("files live in a directory");
    let tmp = temp_name(path, "new");
    let write = (|| -> io::Result<()> {
        let mut f = io_util::owner_only(io_util::no_follow(
            OpenOptions::new().write(true).create_new(true),
        ))
        .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()
    })();
    if let Err(e) = write {
        let _ = std::fs::remove_file(&tmp);
        return Err(FileError::Io(io_error(&e, path)));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(dir).map_err(|e| FileError::Io(io_error(&e, dir)))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(FileError::Io(io_error(&e, path))),
    }
}

/// Owner-only? (Used by `doctor`.) Returns the mode bits. Unix only: Windows has no mode
/// bits, and what protects a file there is its ACL (`io_util`'s module doc).
#[cfg(unix)]
pub fn mode_of(path: &Path) -> Option<u32> {
    File::open(path)
        .ok()?
        .metadata()
        .ok()
        .map(|m| m.mode() & 0o7777)
}

/// Move `path` aside to `<name>.corrupt-<now_ms>` (then `-1`, `-2`, ... if taken), never
/// replacing anything, durably; returns the new file name. Hard link then unlink rather than
/// rename, because only linking refuses to replace an existing name everywhere.
pub fn quarantine(path: &Path, now_ms: u64) -> Result<String, FileError> {
    let dir = path.parent().expect("store files live in a directory");
    let name = path
        .file_name()
        .expect("store files have names")
        .to_string_lossy()
        .into_owned();
    for n in 0..1000u32 {
        let aside = if n == 0 {
            format!("{name}.corrupt-{now_ms}")
        } else {
            format!("{name}.corrupt-{now_ms}-{n}")
        };
        match std::fs::hard_link(path, dir.join(&aside)) {
            Ok(()) => {
                std::fs::remove_file(path).map_err(|e| FileError::Io(io_error(&e, path)))?;
                sync_dir(dir).map_err(|e| FileError::Io(io_error(&e, dir)))?;
                return Ok(aside);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(FileError::Io(io_error(&e, path))),
        }
    }
    Err(FileError::Io(IoError::Other(format!(
        "{}: a thousand quarantined copies already exist for this moment",
        path.display()
    ))))
}

#[cfg(test)]
pub(crate) mod tests {
    //! Guards promise 2 (no torn file) and promise 4 (backup before replace).
    use super::*;

    /// A symlink at `link` to the file `target`, or false where the OS will not make one
    /// (Windows without Developer Mode or the symlink privilege; Wine, which reports success
    /// and makes none).
    pub(crate) fn symlink_file(target: &Path, link: &Path) -> bool {
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(target, link).unwrap();
            true
        }
        #[cfg(windows)]
        {
            if let Err(e) = std::os::windows::fs::symlink_file(target, link) {
                eprintln!("skipped: this account cannot create symlinks ({e})");
                return false;
            }
            let made = std::fs::symlink_metadata(link).is_ok_and(|m| m.file_type().is_symlink());
            if !made {
                eprintln!("skipped: creating a symlink reported success but made none");
            }
            made
        }
    }

    #[test]
    fn replace_keeps_backup_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let (t, b) = (dir.path().join("s"), dir.path().join("s.bak"));
        replace(&t, b"one", Some(&b)).unwrap();
        assert!(!b.exists());
        replace(&t, b"two", Some(&b)).unwrap();
        assert_eq!(std::fs::read(&t).unwrap(), b"two");
        assert_eq!(std::fs::read(&b).unwrap(), b"one");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&t).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, b"x").unwrap();
        let link = dir.path().join("link");
        if !symlink_file(&real, &link) {
            return;
        }
        assert!(matches!(
            read(&link, 100),
            Err(FileError::Io(IoError::NotARegularFile(_)))
        ));
        assert!(matches!(
            replace(&link, b"y", None),
            Err(FileError::Io(IoError::NotARegularFile(_)))
        ));
        assert_eq!(std::fs::read(&real).unwrap(), b"x");
    }

    #[test]
    fn create_exclusive_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        assert!(create_exclusive(&p, b"a").unwrap());
        assert!(!create_exclusive(&p, b"b").unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"a");
    }

    #[test]
    fn too_large_is_specific() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        std::fs::write(&p, vec![0u8; 101]).unwrap();
        assert_eq!(read(&p, 100), Err(FileError::TooLarge(101)));
    }

    /// Windows refuses to replace a file that another process holds open without sharing
    /// delete access (a virus scanner, an indexer): the replace must wait it out, not fail.
    #[cfg(windows)]
    #[test]
    fn replace_waits_for_a_briefly_unshared_target() {
        use std::os::windows::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (t, b) = (dir.path().join("s"), dir.path().join("s.bak"));
        replace(&t, b"one", Some(&b)).unwrap();
        let holder = OpenOptions::new()
            .read(true)
            .share_mode(0)
            .open(&t)
            .unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            drop(holder);
        });
        replace(&t, b"two", Some(&b)).unwrap();
        release.join().unwrap();
        assert_eq!(std::fs::read(&t).unwrap(), b"two");
        assert_eq!(std::fs::read(&b).unwrap(), b"one");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
