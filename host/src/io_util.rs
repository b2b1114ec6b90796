//! Small filesystem helpers shared by the lock and file modules, one per platform difference:
//! error mapping, private directories and files, opening without following a symlink, making
//! a rename durable, and the replacing rename itself.
//!
//! On unix (Linux, macOS) privacy is the mode: directories 0700, files 0600, and `O_NOFOLLOW`
//! refuses a symlink at open. On Windows there are no mode bits: a file or directory we create
//! inherits the access control list of its parent. The default store directory lives in the
//! user's profile (`%LOCALAPPDATA%\credlock\data`), whose inherited ACL grants access only to
//! the user, SYSTEM and the Administrators group; that is what we rely on there, and a store
//! placed elsewhere with `CREDLOCK_STORE` gets whatever its parent directory grants.
//! Symlinks (and junctions) are refused on Windows by opening with
//! `FILE_FLAG_OPEN_REPARSE_POINT`, which opens the link itself, and refusing what was opened.

use credlock_core::platform::IoError;
use std::fs::{File, OpenOptions};
use std::io;
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
#[cfg(windows)]
use std::os::windows::fs::OpenOptionsExt;
use std::path::Path;

/// Map an OS error to the WIT's `io-error`, naming the path. Never includes file contents.
#[cfg(unix)]
pub fn io_error(e: &io::Error, path: &Path) -> IoError {
    let detail = format!("{}: {}", path.display(), e);
    match e.raw_os_error() {
        Some(libc_enospc) if libc_enospc == rustix::io::Errno::NOSPC.raw_os_error() => {
            IoError::NoSpace(detail)
        }
        Some(code) if code == rustix::io::Errno::DQUOT.raw_os_error() => IoError::NoSpace(detail),
        Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => {
            IoError::NotARegularFile(format!("{}: is a symbolic link (refused)", path.display()))
        }
        Some(code) if code == rustix::io::Errno::ROFS.raw_os_error() => {
            IoError::PermissionDenied(detail)
        }
        _ => match e.kind() {
            io::ErrorKind::PermissionDenied => IoError::PermissionDenied(detail),
            io::ErrorKind::StorageFull => IoError::NoSpace(detail),
            _ => IoError::Other(detail),
        },
    }
}

/// Map an OS error to the WIT's `io-error`, naming the path. Never includes file contents.
#[cfg(windows)]
pub fn io_error(e: &io::Error, path: &Path) -> IoError {
    use windows_sys::Win32::Foundation::{
        ERROR_CANT_RESOLVE_FILENAME, ERROR_DISK_FULL, ERROR_HANDLE_DISK_FULL, ERROR_WRITE_PROTECT,
    };
    let detail = format!("{}: {}", path.display(), e);
    match e.raw_os_error().and_then(|code| u32::try_from(code).ok()) {
        Some(ERROR_DISK_FULL | ERROR_HANDLE_DISK_FULL) => IoError::NoSpace(detail),
        // A chain of symbolic links too long to resolve: the ELOOP of Windows.
        Some(ERROR_CANT_RESOLVE_FILENAME) => {
            IoError::NotARegularFile(format!("{}: is a symbolic link (refused)", path.display()))
        }
        Some(ERROR_WRITE_PROTECT) => IoError::PermissionDenied(detail),
        _ => match e.kind() {
            io::ErrorKind::PermissionDenied => IoError::PermissionDenied(detail),
            io::ErrorKind::StorageFull => IoError::NoSpace(detail),
            _ => IoError::Other(detail),
        },
    }
}

/// Create `dir` (and parents) if missing; the leaf gets mode 0700 when we create it (on
/// Windows: the ACL its parent passes on, see the module doc).
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(m)
            if m.file_type().is_symlink()
                && std::fs::metadata(dir).map(|m| m.is_dir()).unwrap_or(false) =>
        {
            Ok(())
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "exists and is not a directory",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => create_private_dir(dir),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // DirBuilder's mode is filtered by the umask; make the leaf exactly 0700.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(windows)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    // No mode to set: the new directory inherits its parent's ACL (module doc).
    std::fs::DirBuilder::new().recursive(true).create(dir)
}

/// Make `options` refuse a symlink at the path instead of following it: `O_NOFOLLOW` on unix
/// (the open fails with `ELOOP`); on Windows `FILE_FLAG_OPEN_REPARSE_POINT` opens the link
/// itself, so the caller must check what it opened ([`refuse_link`]).
pub fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        options.custom_flags(
            rustix::fs::OFlags::NOFOLLOW.bits() as i32 | rustix::fs::OFlags::CLOEXEC.bits() as i32,
        )
    }
    #[cfg(windows)]
    {
        options.custom_flags(windows_sys::Win32::Storage::FileSystem::FILE_FLAG_OPEN_REPARSE_POINT)
    }
}

/// Make a file that `options` creates private to its owner: mode 0600 on unix; on Windows
/// the ACL inherited from the directory (module doc).
pub fn owner_only(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        options.mode(0o600)
    }
    #[cfg(windows)]
    {
        options
    }
}

/// The symlink check that `O_NOFOLLOW` makes at open on unix, made after the open on Windows,
/// where [`no_follow`] opened the link itself: a file opened through a link is refused.
pub fn refuse_link(file: File, path: &Path) -> io::Result<File> {
    #[cfg(windows)]
    {
        if file.metadata()?.file_type().is_symlink() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: is a symbolic link (refused)", path.display()),
            ));
        }
    }
    let _ = path;
    Ok(file)
}

/// Open (creating if needed, 0600) a file without following a symlink at its path.
pub fn open_nofollow_create(path: &Path) -> io::Result<File> {
    let file = owner_only(no_follow(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
    ))
    .open(path)?;
    refuse_link(file, path)
}

/// fsync a directory, making renames and creations in it durable.
///
/// Windows cannot fsync a directory; there a rename is made durable by [`rename_over`]
/// itself (`MOVEFILE_WRITE_THROUGH`), and NTFS writes its metadata log in order, so that also
/// makes every earlier link, creation and removal on the volume durable. So this does nothing
/// on Windows: a `remove` or `create_exclusive` becomes durable with the next replace, or
/// when NTFS flushes its log (within seconds).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(windows)]
    {
        let _ = dir;
        Ok(())
    }
}

/// Rename `from` over `to`, replacing it atomically.
///
/// On unix this is `rename(2)`. On Windows it is `MoveFileExW` with
/// `MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH` (atomic within a volume, and not
/// returning before the rename is on disk), retried while another process (a virus scanner,
/// an indexer, a backup tool) holds `to` open without sharing delete access: Windows then
/// refuses the replace with a sharing violation or access denied, where unix would not care.
/// The retries are bounded by [`RENAME_MAX_ATTEMPTS`]; the last error is returned.
pub fn rename_over(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::rename(from, to)
    }
    #[cfg(windows)]
    {
        with_sharing_retries(|| move_file_replace(from, to))
    }
}

/// How many times a Windows rename, link or remove is tried while another process holds the
/// file without sharing it. With the delays below, ~1.9 s in all before giving up.
#[cfg(windows)]
pub const RENAME_MAX_ATTEMPTS: u32 = 16;
/// The pause after the first refused attempt; it doubles up to [`RENAME_MAX_DELAY`].
#[cfg(windows)]
const RENAME_FIRST_DELAY: std::time::Duration = std::time::Duration::from_millis(1);
#[cfg(windows)]
const RENAME_MAX_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

/// Run `op` once: on unix another process holding a file open never stops a rename, link or
/// remove.
#[cfg(unix)]
pub fn with_sharing_retries<T>(op: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    op()
}

/// Run `op` until it succeeds, fails for a reason other than another process holding the
/// file, or [`RENAME_MAX_ATTEMPTS`] attempts have been made.
#[cfg(windows)]
pub fn with_sharing_retries<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    use windows_sys::Win32::Foundation::{
        ERROR_ACCESS_DENIED, ERROR_LOCK_VIOLATION, ERROR_SHARING_VIOLATION,
    };
    let mut delay = RENAME_FIRST_DELAY;
    let mut attempt = 1;
    loop {
        let err = match op() {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        let busy = matches!(
            err.raw_os_error().and_then(|code| u32::try_from(code).ok()),
            Some(ERROR_SHARING_VIOLATION | ERROR_ACCESS_DENIED | ERROR_LOCK_VIOLATION)
        );
        if !busy || attempt >= RENAME_MAX_ATTEMPTS {
            return Err(err);
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(RENAME_MAX_DELAY);
        attempt += 1;
    }
}

/// One `MoveFileExW(from, to, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)`.
///
/// The paths are passed as they are: a path longer than `MAX_PATH` (260) fails unless the
/// process is long-path aware, as it would through most of Windows.
#[cfg(windows)]
#[allow(unsafe_code)]
fn move_file_replace(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::windows::ffi::OsStrExt;
    use windows_sys::Win32::Storage::FileSystem::{
        MoveFileExW, MOVEFILE_REPLACE_EXISTING, MOVEFILE_WRITE_THROUGH,
    };
    let wide = |p: &Path| -> io::Result<Vec<u16>> {
        let w: Vec<u16> = p.as_os_str().encode_wide().chain(Some(0)).collect();
        if w[..w.len() - 1].contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: the path contains a NUL character", p.display()),
            ));
        }
        Ok(w)
    };
    let (from_w, to_w) = (wide(from)?, wide(to)?);
    // SAFETY: both arguments are NUL-terminated UTF-16 strings without interior NULs that
    // outlive the call; MoveFileExW only reads them.
    let moved = unsafe {
        MoveFileExW(
            from_w.as_ptr(),
            to_w.as_ptr(),
            MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH,
        )
    };
    if moved == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
