//! Who may read or replace what credlock keeps. Like ssh with an unprotected private key,
//! credlock refuses to use a store directory or key file that another user could read or
//! replace, and says which command fixes it, instead of using it silently:
//!
//! - the store directory (and a symlink standing for it) must belong to the user running
//!   credlock, and no one else may write to it: anyone who can write there can replace the
//!   store, its key file or its lock files. Root is held to the same rule (as git's
//!   `safe.directory`): a root process writing a user's store would leave files the user can
//!   no longer read, locking the owner out of their own credentials;
//! - a key file must be readable by its owner alone, and belong to the user or to root.
//!
//! The store's own files are always created 0600 (`files`, `io_util::owner_only`); a backup
//! made from an older, looser file is tightened when it is made.
//!
//! Unix only: Windows has no mode bits; a store there inherits its parent's ACL.

use std::path::Path;

/// A path quoted for a POSIX shell, for the fix commands we print.
pub fn shell_quote(path: &Path) -> String {
    let s = path.display().to_string();
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@%".contains(&b))
    {
        return s;
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(unix)]
mod imp {
    use super::shell_quote;
    use credlock_core::platform::IoError;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    fn me() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    /// The store directory, if it exists: ours, and writable by no one else. A missing
    /// directory is fine (it is created 0700 when the store is made).
    pub fn check_store_dir(dir: &Path) -> Result<(), IoError> {
        let me = me();
        let q = shell_quote(dir);
        let link = match std::fs::symlink_metadata(dir) {
            Ok(m) => m,
            Err(_) => return Ok(()),
        };
        if link.file_type().is_symlink() && link.uid() != me && link.uid() != 0 {
            return Err(IoError::UnsafePermissions(format!(
                "the store directory {} is a symlink owned by uid {}, who can point it elsewhere; fix: replace the link with the directory itself, or `chown -h {me} {q}`",
                dir.display(),
                link.uid()
            )));
        }
        let Ok(meta) = std::fs::metadata(dir) else {
            return Ok(());
        };
        if meta.uid() != me {
            return Err(IoError::UnsafePermissions(format!(
                "the store directory {} belongs to uid {}, not to you (uid {me}); writing it as you would leave files its owner cannot read. Run credlock as its owner (`sudo -u '#{}' credlock ...`), or, if the store is yours, `chown -R {me} {q}`",
                dir.display(),
                meta.uid(),
                meta.uid()
            )));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(IoError::UnsafePermissions(format!(
                "other users can write to the store directory {} (mode {:04o}) and so replace the store or its key; fix: `chmod 700 {q}`",
                dir.display(),
                mode
            )));
        }
        Ok(())
    }

    /// A key file just opened (its metadata from the open descriptor): readable by its
    /// owner alone, and owned by the user or root.
    pub fn check_key_file(path: &Path, meta: &std::fs::Metadata) -> Result<(), IoError> {
        let me = me();
        let q = shell_quote(path);
        if meta.uid() != me && meta.uid() != 0 {
            return Err(IoError::UnsafePermissions(format!(
                "the key file {} belongs to uid {}, who can replace it; fix: `chown {me} {q}`",
                path.display(),
                meta.uid()
            )));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(IoError::UnsafePermissions(format!(
                "other users can read or change the key file {} (mode {:04o}); fix: `chmod 600 {q}`, then `credlock rekey` if anyone else may have read it (for a mounted secret, mount it with mode 0400)",
                path.display(),
                mode
            )));
        }
        Ok(())
    }
}

#[cfg(not(unix))]
mod imp {
    use credlock_core::platform::IoError;
    use std::path::Path;

    pub fn check_store_dir(_dir: &Path) -> Result<(), IoError> {
        Ok(())
    }

    pub fn check_key_file(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), IoError> {
        Ok(())
    }
}

pub use imp::{check_key_file, check_store_dir};

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use credlock_core::platform::IoError;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(shell_quote(Path::new("/a/b-c_d.e")), "/a/b-c_d.e");
        assert_eq!(shell_quote(Path::new("/a b")), "'/a b'");
        assert_eq!(shell_quote(Path::new("/it's")), r"'/it'\''s'");
    }

    #[test]
    fn a_directory_others_can_write_is_refused_with_the_fix() {
        let d = tempfile::tempdir().unwrap();
        check_store_dir(d.path()).unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_store_dir(d.path()).unwrap_err();
        let IoError::UnsafePermissions(why) = e else {
            panic!("{e:?}")
        };
        assert!(why.contains("chmod 700"), "{why}");
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        check_store_dir(d.path()).unwrap();
        check_store_dir(&d.path().join("missing")).unwrap();
    }
}
