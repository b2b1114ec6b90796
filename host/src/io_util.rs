//! Small POSIX helpers shared by the lock and file modules.

use credlock_core::platform::IoError;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Map an OS error to the WIT's `io-error`, naming the path. Never includes file contents.
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

/// Create `dir` (and parents) if missing; the leaf gets mode 0700 when we create it.
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
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
            // DirBuilder's mode is filtered by the umask; make the leaf exactly 0700.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        }
        Err(e) => Err(e),
    }
}

/// Open (creating if needed, 0600) a file without following a symlink at its path.
pub fn open_nofollow_create(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(
            rustix::fs::OFlags::NOFOLLOW.bits() as i32 | rustix::fs::OFlags::CLOEXEC.bits() as i32,
        )
        .open(path)
}

/// fsync a directory, making renames and creations in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
