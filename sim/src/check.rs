//! Checkers. They read the world's history, never the core's internals: what was renamed into
//! place, what was acknowledged, what the server saw.

use crate::world::{Version, World};
use credlock_core::format::{record_aad, record_parts, Header};
use credlock_core::model::{Body, Entry, TenantRecord};
use credlock_core::platform::slot_is_durable;
use credlock_core::{sha256_hex, TenantName};

/// Decrypt a store file with any key minted in this world: the logical store. The header
/// of a database store whose tenants are records (`tenant_records`) is assembled with the
/// records as they are in the world now (a header and its records are only ever written
/// together, so these are the records of the newest header). `None` if anything of it does
/// not open: the header, or any record.
pub fn decode(world: &World, bytes: &[u8]) -> Option<Body> {
    let (header, len) = Header::decode(bytes).ok()?;
    let (_, key) = world.keys.iter().find(|(id, _)| *id == header.key_id)?;
    let plain = crate::platform::open(key, &header.nonce, &bytes[..len], &bytes[len..]).ok()?;
    let mut body: Body = serde_json::from_slice(&plain).ok()?;
    if body.tenant_records {
        if !body.tenants.is_empty() {
            return None;
        }
        for (id, sealed) in &world.disk.records {
            let (name, entry) = open_record(key, &header.key_id, id, sealed)?;
            body.tenants.insert(name, entry);
        }
    }
    Some(body)
}

/// Open tenant record `id` as the core does (`open_record` in core/src/store.rs): its
/// additional data binds it to the header's key and to its id, and the tenant it names must
/// have that id.
fn open_record(key: &[u8; 32], key_id: &[u8], id: &str, sealed: &[u8]) -> Option<(String, Entry)> {
    let (nonce, ciphertext) = record_parts(sealed).ok()?;
    let plain = crate::platform::open(key, nonce, &record_aad(key_id, id), ciphertext).ok()?;
    let record: TenantRecord = serde_json::from_slice(&plain).ok()?;
    let name = TenantName::new(&record.tenant).ok()?;
    (name.id() == id && record.entry.revision > 0).then_some((record.tenant, record.entry))
}

/// A version became visible (renamed into place). The generation must follow the previous
/// visible version's: a write that did not start from the latest version lost an update.
/// `was_absent`: there was no store file (it was quarantined): then the version is a fresh
/// store (generation 1) or a restored backup (its contents, above every generation before).
pub fn record_version(world: &mut World, bytes: &[u8], was_absent: bool) {
    let id = world.next_write_id;
    world.next_write_id += 1;
    let Some(body) = decode(world, bytes) else {
        world.fail("a store version that does not decode was written".into());
        return;
    };
    let mut problems = Vec::new();
    // A database store keeps its tenants as records: a whole store written there would be
    // read as one that has no tenants.
    if world.database() != body.tenant_records {
        problems.push(format!(
            "a store version with tenant_records = {} was written to a {} store",
            body.tenant_records,
            if world.database() { "database" } else { "file" }
        ));
    }
    if let Ok((header, _)) = Header::decode(bytes) {
        // Every slot must wrap this version's key (a rekey that kept the old slots would
        // lock everyone out), and one must survive a reboot.
        if header.slots.iter().any(|s| s.data != header.key_id) {
            problems.push("a version's key slot does not wrap its key".to_string());
        }
        if !header.slots.iter().any(|s| slot_is_durable(&s.kind)) {
            problems.push(
                "a version has only volatile key slots: a reboot would lock the store".into(),
            );
        }
    }
    let reset = was_absent && !world.history.versions.is_empty();
    if let Some(prev) = world.history.versions.last() {
        let (p, n) = (prev.body.generation, body.generation);
        if reset {
            if world.history.quarantines.is_empty() {
                problems.push(format!(
                    "generation {n} written where the store vanished without a quarantine"
                ));
            }
            if n != 1 {
                check_restore(world, &body, prev, &mut problems);
            }
        } else if n != p + 1 {
            problems.push(format!(
                "lost update: generation {n} written over generation {p}"
            ));
        }
        // Revisions never go backwards for a tenant that stays (a restore rolls back).
        if !reset {
            for (name, e) in &body.tenants {
                if let Some(old) = prev.body.tenants.get(name) {
                    if e.revision < old.revision {
                        problems.push(format!(
                            "tenant {name}: revision went from {} back to {}",
                            old.revision, e.revision
                        ));
                    }
                }
            }
        }
    }
    for why in problems {
        world.fail(why);
    }
    // A tenant marked for re-login must have had its refresh token rejected by the server.
    for (name, e) in &body.tenants {
        if e.needs_reauth {
            let rejected = e
                .refresh_token
                .as_ref()
                .is_some_and(|rt| world.server.invalid_granted.contains(rt));
            if !rejected {
                let why = format!("tenant {name} was marked for re-login though its refresh token was never rejected (a winner's tokens wiped)");
                world.fail(why);
            }
        }
    }
    world.history.versions.push(Version {
        body,
        write_id: id,
        acked: false,
        durable: false,
        reset,
    });
}

/// A restored backup (`recover`): its generation is above the store's it replaced, its
/// tenants are the backup's, and every restored refresh token the server has already seen
/// is marked as of unknown outcome, so that it is never presented again.
fn check_restore(world: &World, body: &Body, prev: &Version, problems: &mut Vec<String>) {
    let (p, n) = (prev.body.generation, body.generation);
    if n <= p {
        problems.push(format!(
            "recover wrote generation {n}, not above the store's generation {p}"
        ));
    }
    let backup = world
        .disk
        .backup
        .live
        .as_ref()
        .and_then(|b| decode(world, b));
    let unmarked = |b: &Body| -> Vec<(String, Entry)> {
        b.tenants
            .iter()
            .map(|(k, e)| {
                let mut e = e.clone();
                e.refresh_intent = None;
                (k.clone(), e)
            })
            .collect()
    };
    match backup {
        Some(b) if unmarked(&b) == unmarked(body) => {
            if n <= b.generation {
                problems.push(format!(
                    "recover wrote generation {n}, not above the backup's {}",
                    b.generation
                ));
            }
        }
        _ => problems.push("recover wrote something other than the backup".into()),
    }
    for (name, e) in &body.tenants {
        let Some(rt) = &e.refresh_token else { continue };
        let spent = world
            .server
            .presentations
            .iter()
            .any(|pr| pr.refresh_token == *rt && matches!(pr.outcome, "ok" | "invalid_grant"));
        let marked = e
            .refresh_intent
            .as_ref()
            .is_some_and(|i| i.refresh_token_sha256 == sha256_hex(rt.as_bytes()));
        if spent && !marked {
            problems.push(format!(
                "recover restored tenant {name}'s refresh token, already presented to the server, without marking its outcome unknown"
            ));
        }
    }
}

/// A directory fsync made every version so far durable.
pub fn mark_durable(world: &mut World) {
    for v in world.history.versions.iter_mut().rev() {
        if v.durable {
            break;
        }
        v.durable = true;
    }
}

/// The quarantine just recorded: only `recover` and `quarantine` move a store aside, and a
/// store that opens only with `recover --force`.
pub fn check_quarantine(world: &mut World) {
    let Some(q) = world.history.quarantines.last().cloned() else {
        return;
    };
    if !matches!(
        q.doing,
        "recover" | "recover-force" | "quarantine" | "quarantine-force"
    ) {
        world.fail(format!(
            "process {} moved the store aside while doing {}",
            q.pid, q.doing
        ));
    } else if q.readable && q.doing != "recover-force" {
        world.fail(format!(
            "process {} moved a readable store aside ({}) while doing {} without force",
            q.pid, q.name, q.doing
        ));
    }
}

pub fn ack_version(world: &mut World, write_id: u64) {
    if let Some(v) = world
        .history
        .versions
        .iter_mut()
        .rev()
        .find(|v| v.write_id == write_id)
    {
        v.acked = true;
    }
}

/// Checks at the end of a run.
pub fn final_checks(world: &mut World, allow_duplicate_presentations: bool) {
    // Every acknowledged put is in some visible version, and the last version keeps it
    // unless a later acknowledged write to that tenant replaced it, or a later reset (a
    // restored backup, or a new store after a quarantine) rolled it back on request.
    let last_reset = world.history.versions.iter().rposition(|v| v.reset);
    let puts = world.history.acked_puts.clone();
    for (tenant, revision, token, generation) in &puts {
        let first = world.history.versions.iter().position(|v| {
            v.body
                .tenants
                .get(tenant)
                .is_some_and(|e| e.revision == *revision && e.access_token == *token)
        });
        let Some(first) = first else {
            // Group commit: puts of one tenant written together are applied one after
            // another, and only the last is visible; an earlier one was replaced within the
            // very write that acknowledged it.
            let superseded = world.history.versions.iter().any(|v| {
                v.body.generation == *generation
                    && v.body
                        .tenants
                        .get(tenant)
                        .is_some_and(|e| e.revision > *revision)
            });
            if !superseded {
                world.fail(format!(
                    "acknowledged put of {tenant} revision {revision} is in no version"
                ));
            }
            continue;
        };
        if last_reset.is_some_and(|r| first < r) {
            continue;
        }
        // A tenant some process deleted may be gone or re-created with a lower revision;
        // the chain checks in `record_version` still cover every step in between.
        if world.history.attempted_deletes.contains(tenant) {
            continue;
        }
        if let Some(last) = world.history.versions.last() {
            match last.body.tenants.get(tenant) {
                Some(e) if e.revision < *revision => {
                    let why = format!(
                        "acknowledged put of {tenant} revision {revision} lost: final revision {}",
                        e.revision
                    );
                    world.fail(why);
                }
                None => world.fail(format!("acknowledged put of {tenant} lost: tenant gone")),
                _ => {}
            }
        }
    }
    // What was unreadable was moved aside at most, never overwritten or removed.
    let unreadable = world.history.unreadable.clone();
    for bytes in &unreadable {
        let kept = world.disk.store.live.as_ref() == Some(bytes)
            || world
                .disk
                .aside
                .iter()
                .any(|a| a.file.live.as_ref() == Some(bytes));
        if !kept {
            world.fail(
                "an unreadable store's contents are gone (neither the store nor moved aside)"
                    .into(),
            );
        }
    }
    // No refresh token presented twice (that arrived at the server).
    if !allow_duplicate_presentations {
        let mut seen = std::collections::BTreeSet::new();
        let mut dups = Vec::new();
        for p in &world.server.presentations {
            if p.outcome == "not-arrived" || p.outcome == "unavailable" {
                continue;
            }
            if !seen.insert(p.refresh_token.clone()) {
                dups.push(p.refresh_token.clone());
            }
        }
        if !dups.is_empty() {
            world.fail(format!(
                "refresh token presented twice: {} time(s), e.g. {}",
                dups.len(),
                dups[0]
            ));
        }
    }
}
