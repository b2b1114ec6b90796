//! `credlock doctor`: what a user needs to know to trust (or fix) a store.

use crate::Failure;
use credlock::{Config, Credlock, StoreError};
use std::io::Write;

/// The mode bits on unix; none elsewhere (Windows), where files inherit their
/// directory's ACL (under %LOCALAPPDATA%: the user, SYSTEM and Administrators).
#[cfg(unix)]
fn mode_of(path: &std::path::Path) -> Option<u32> {
    credlock::files::mode_of(path)
}
#[cfg(not(unix))]
fn mode_of(_path: &std::path::Path) -> Option<u32> {
    None
}

/// statfs(2) magic numbers are Linux's; elsewhere the filesystem type is not checked.
#[cfg(not(target_os = "linux"))]
fn fs_warning(_dir: &std::path::Path) -> Option<&'static str> {
    None
}

#[cfg(target_os = "linux")]
fn fs_warning(dir: &std::path::Path) -> Option<&'static str> {
    let st = rustix::fs::statfs(dir).ok()?;
    // f_type magic numbers from statfs(2).
    match st.f_type as u64 {
        0x6969 => {
            Some("NFS: flock may not be coherent across machines; keep the store on a local disk")
        }
        0xFF534D42 | 0xFE534D42 | 0x517B => {
            Some("SMB/CIFS: locks and renames are unreliable; keep the store on a local disk")
        }
        0x65735546 => Some(
            "FUSE: lock and rename semantics depend on the filesystem; check it supports flock",
        ),
        _ => None,
    }
}

/// Which keyrings this machine has, and whether a write-read-delete round trip works.
fn keyrings(out: &mut impl Write, config: &Config) -> usize {
    use credlock::oskeyring::{self, Backend};
    let _ = writeln!(out, "keyrings:");
    if !config.keys.use_keyrings {
        let _ = writeln!(out, "  not asked (CREDLOCK_KEYRING=off)");
        return 0;
    }
    let mut problems = 0;
    let timeout = config.keys.keyring_timeout;
    for b in Backend::ALL.into_iter().filter(|b| b.compiled_in()) {
        let probe = format!("doctor-probe-{}", std::process::id());
        let started = std::time::Instant::now();
        let result = oskeyring::set(b, &probe, b"credlock doctor probe", timeout)
            .and_then(|()| oskeyring::get(b, &probe, timeout))
            .and_then(|got| {
                oskeyring::delete(b, &probe, timeout)?;
                if got.as_slice() == b"credlock doctor probe" {
                    Ok(())
                } else {
                    Err(oskeyring::KeyringError::Failed(
                        "read back something else".into(),
                    ))
                }
            });
        let volatile = if !credlock_core::platform::slot_is_durable(b.slot_kind()) {
            " (volatile: lost at reboot and after idle expiry; only beside a durable slot)"
        } else {
            ""
        };
        match result {
            Ok(()) => {
                let _ = writeln!(
                    out,
                    "  {}: working, {:.0} ms for a write, read and delete{volatile}",
                    b.name(),
                    started.elapsed().as_secs_f64() * 1000.0
                );
            }
            Err(e) => {
                // An absent keyring is only a problem if the store or config uses it.
                let used = config.keys.keyring == Some(b);
                problems += usize::from(used);
                let _ = writeln!(
                    out,
                    "  {}: {}not available: {e}",
                    b.name(),
                    if used { "ERROR: configured but " } else { "" }
                );
            }
        }
    }
    problems
}

/// Each slot of the header and whether this process's sources can use it, read from the
/// header alone (so it works when the store cannot be opened, which is when it matters).
fn slot_health(
    out: &mut impl Write,
    config: &Config,
    layout: &credlock::layout::Layout,
    ring: &credlock::keys::Keyring,
) -> usize {
    let Ok(bytes) = std::fs::read(layout.store()) else {
        return 0;
    };
    let Ok((header, _)) = credlock_core::format::Header::decode(&bytes) else {
        return 0; // the store line below reports what is wrong with the file
    };
    let mut problems = 0;
    let mut durable = false;
    let _ = writeln!(out, "key slots:");
    for (i, slot) in header.slots.iter().enumerate() {
        durable |= credlock_core::platform::slot_is_durable(&slot.kind);
        let health = match slot.kind.as_str() {
            "key-file" => match &config.keys.key_file {
                Some(kf) if kf.exists() => "key file present".to_owned(),
                _ => "key file not found here".to_owned(),
            },
            "passphrase" => if config.keys.passphrase.is_some() {
                "passphrase given (checked when the store opens)"
            } else {
                "passphrase not given"
            }
            .to_owned(),
            "keyring" | "kernel-keyring" if config.keys.use_keyrings => {
                match ring.probe_keyring_slot(slot) {
                    Ok(()) => "entry present".to_owned(),
                    Err(credlock_core::platform::KeyError::KeyringEntryMissing { .. }) => {
                        problems += 1;
                        "WARNING: entry missing (wiped or another machine): open with another slot, then `slot add` a new one".to_owned()
                    }
                    Err(e) => {
                        problems += 1;
                        format!("WARNING: {}", StoreError::Key(e))
                    }
                }
            }
            _ => "not checked".to_owned(),
        };
        let _ = writeln!(
            out,
            "  slot {i} {}: {} - {health}",
            slot.kind,
            credlock::keys::describe_slot(slot)
        );
    }
    if !durable {
        let _ = writeln!(
            out,
            "  WARNING: every slot is volatile: a reboot loses the store; add a passphrase, key-file or keyring slot"
        );
        problems += 1;
    }
    problems
}

fn unsafe_detail(e: credlock_core::platform::IoError) -> String {
    match e {
        credlock_core::platform::IoError::UnsafePermissions(d) => d,
        other => format!("{other:?}"),
    }
}

/// A database store: the connection, schema, settings and locks (`credlock::pg::doctor`).
fn database(out: &mut impl Write, db: &credlock::pg::Database) -> usize {
    let _ = writeln!(out, "database store: {db}");
    let mut problems = 0;
    for f in credlock::pg::doctor::check(db) {
        problems += usize::from(f.problem);
        let _ = writeln!(out, "  {}", f.line);
    }
    let _ = writeln!(
        out,
        "  locks: PostgreSQL advisory locks, one session per held lock; a crashed process's session ends and releases them"
    );
    problems
}

/// A directory store: its permissions, filesystem, files and lock files.
fn directory(out: &mut impl Write, layout: &credlock::layout::Layout) -> usize {
    let mut problems = 0;
    let _ = writeln!(out, "store directory: {}", layout.dir.display());
    match std::fs::metadata(&layout.dir) {
        Ok(_) => {
            // Not known off unix: say nothing is wrong rather than guess.
            let mode = mode_of(&layout.dir).unwrap_or(0o700) & 0o777;
            let ok = mode & 0o077 == 0;
            problems += usize::from(!ok);
            let _ = writeln!(
                out,
                "  permissions: {mode:03o} {}",
                if ok {
                    "ok (owner only)"
                } else {
                    "WARNING: others can list it; chmod 700"
                }
            );
            // What every command refuses (privacy.rs): say it here with the fix.
            if let Err(e) = credlock::privacy::check_store_dir(&layout.dir) {
                problems += 1;
                let _ = writeln!(out, "  REFUSED by every command: {}", unsafe_detail(e));
            }
            // Temp files of writers that died (kill -9 mid-write): the next write removes
            // them; until then they hold plaintext-free but sealed copies and space.
            let litter = credlock::files::litter(&layout.dir, false);
            if !litter.is_empty() {
                problems += 1;
                let bytes: u64 = litter.iter().map(|(_, n)| n).sum();
                let _ = writeln!(
                    out,
                    "  leftovers: WARNING: {} temp file(s) of writers that died ({bytes} bytes); the next write removes them",
                    litter.len()
                );
            }
            match fs_warning(&layout.dir) {
                Some(w) => {
                    problems += 1;
                    let _ = writeln!(out, "  filesystem: WARNING: {w}");
                }
                None => {
                    let _ = writeln!(
                        out,
                        "  filesystem: local (flock and atomic rename supported)"
                    );
                }
            }
        }
        Err(_) => {
            let _ = writeln!(
                out,
                "  does not exist yet (created by the first `put` or `init`)"
            );
        }
    }
    for (name, path) in [("store file", layout.store()), ("backup", layout.backup())] {
        match mode_of(&path) {
            Some(mode) => {
                let ok = mode & 0o077 == 0;
                problems += usize::from(!ok);
                let _ = writeln!(
                    out,
                    "{name}: {} ({mode:03o}{})",
                    path.display(),
                    if ok {
                        ""
                    } else {
                        ", WARNING: readable by others"
                    }
                );
            }
            None => {
                let _ = writeln!(out, "{name}: none");
            }
        }
    }
    let _ = writeln!(
        out,
        "lock files: {} and {}/refresh-*.lock (flock; never deleted)",
        layout.store_lock().display(),
        layout.lock_dir().display()
    );
    problems
}

/// Where the compiled component came from. The embedded artifact needs no cache. Where it is
/// refused, the reason is said here, and so is a cache that cannot be written, once, and
/// never on a call: that costs every process a compile (about a second), not correctness.
fn compiled_text(
    from: &credlock::component::LoadedFrom,
    cache_dir: Option<&std::path::Path>,
) -> String {
    use credlock::component::LoadedFrom;
    let refused = |why: &str| {
        format!(
            "the compiled artifact built into this binary cannot be used here ({why}), so it is \
             compiled at run time: "
        )
    };
    match (from, cache_dir) {
        (LoadedFrom::Embedded, _) => {
            "loaded the compiled artifact built into this binary (no compile, no cache needed)"
                .to_owned()
        }
        (
            LoadedFrom::Cache {
                path,
                embedded_refused,
            },
            _,
        ) => format!(
            "{}loaded compiled from the cache ({})",
            refused(embedded_refused),
            path.display()
        ),
        (
            LoadedFrom::Compiled {
                cached_to: Some(p),
                embedded_refused,
            },
            _,
        ) => format!(
            "{}compiled now and cached ({})",
            refused(embedded_refused),
            p.display()
        ),
        (
            LoadedFrom::Compiled {
                cached_to: None,
                embedded_refused,
            },
            Some(dir),
        ) => format!(
            "{}compiled now and NOT cached: {} cannot be written, so every process compiles it \
             (about a second each); point XDG_CACHE_HOME at a directory this user can write",
            refused(embedded_refused),
            dir.display()
        ),
        (
            LoadedFrom::Compiled {
                cached_to: None,
                embedded_refused,
            },
            None,
        ) => format!(
            "{}compiled now; no cache directory (no home directory?), so every process compiles \
             it (about a second each); set XDG_CACHE_HOME to a directory this user can write",
            refused(embedded_refused)
        ),
    }
}

pub fn run(config: Config) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    let layout = credlock::layout::Layout::new(&config.store_dir);
    let mut problems = 0;
    match &config.database {
        Some(db) => problems += database(&mut out, db),
        None => problems += directory(&mut out, &layout),
    }
    let _ = writeln!(out, "key sources:");
    let _ = writeln!(
        out,
        "  passphrase: {}",
        if config.keys.passphrase.is_some() {
            "given (argon2id)"
        } else {
            "not given"
        }
    );
    if let Some(kf) = &config.keys.key_file {
        match mode_of(kf) {
            Some(mode) => {
                let refused = std::fs::symlink_metadata(kf)
                    .ok()
                    .and_then(|m| credlock::privacy::check_key_file(kf, &m).err());
                problems += usize::from(refused.is_some());
                let _ = writeln!(out, "  key file: {} ({mode:03o})", kf.display());
                if let Some(e) = refused {
                    let _ = writeln!(out, "    REFUSED by every command: {}", unsafe_detail(e));
                }
                let _ = writeln!(
                    out,
                    "    strength: a random 256-bit key, protected only by file permissions. It stops other users and\n    \
                     copies of the store made without the key file; it does not stop your own account or root.\n    \
                     A passphrase (CREDLOCK_PASSPHRASE) or an OS keyring slot protects the key itself."
                );
            }
            None => {
                let _ = writeln!(out, "  key file: {} (absent)", kf.display());
            }
        }
    }
    problems += keyrings(&mut out, &config);
    // One keyring for the slot probes and the store below: each entry is asked once.
    let opened = Credlock::open(config.clone());
    let ring = match &opened {
        Ok(store) => store.keyring().clone(),
        Err(_) => credlock::keys::Keyring::new(config.keys.clone()),
    };
    problems += slot_health(&mut out, &config, &layout, &ring);
    match opened {
        Ok(mut store) => {
            if let Some(rt) = store.runtime() {
                let _ = writeln!(
                    out,
                    "component: {} bytes, {}",
                    credlock::component::COMPONENT_WASM.len(),
                    compiled_text(&rt.loaded_from, config.cache_dir.as_deref())
                );
            }
            match store.info() {
                Ok(i) if i.exists => {
                    let _ = writeln!(
                        out,
                        "store: format v{}, generation {}, {} tenant(s), key {}, slots: {}",
                        i.format_version,
                        i.generation,
                        i.tenants,
                        i.key_id,
                        i.slot_kinds.join(", ")
                    );
                    // Logins in progress, and abandoned ones the next write collects.
                    if let Ok(pending) = store.pending_logins() {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as u64);
                        let _ = write!(out, "{}", credlock::login::pending_text(&pending, now));
                    }
                }
                Ok(_) => {
                    let _ = writeln!(out, "store: none yet");
                }
                Err(e) => {
                    problems += 1;
                    let f = Failure::from(e);
                    let _ = writeln!(
                        out,
                        "store: ERROR: {}\n  hint: {}",
                        f.message,
                        f.hint.unwrap_or("")
                    );
                }
            }
        }
        Err(e) => {
            problems += 1;
            let _ = writeln!(out, "runtime: ERROR: {e}");
        }
    }
    let _ = writeln!(
        out,
        "{}",
        if problems == 0 {
            "doctor: no problems found".to_owned()
        } else {
            format!("doctor: {problems} problem(s) found")
        }
    );
    if problems == 0 {
        Ok(())
    } else {
        Err(Failure {
            code: 1,
            message: format!("{problems} problem(s) found"),
            hint: None,
        })
    }
}
