//! Checkers. They read the world's history, never the core's internals: what was renamed into
//! place, what was acknowledged, what the server saw.

use crate::world::{Version, World};
use credlock_core::format::Header;
use credlock_core::model::Body;

/// Decrypt a store file with any key minted in this world.
pub fn decode(world: &World, bytes: &[u8]) -> Option<Body> {
    let (header, len) = Header::decode(bytes).ok()?;
    let (_, key) = world.keys.iter().find(|(id, _)| *id == header.key_id)?;
    let plain = crate::platform::open(key, &header.nonce, &bytes[..len], &bytes[len..]).ok()?;
    serde_json::from_slice(&plain).ok()
}

/// A version became visible (renamed into place). The generation must follow the previous
/// visible version's: a write that did not start from the latest version lost an update.
pub fn record_version(world: &mut World, bytes: &[u8]) {
    let id = world.next_write_id;
    world.next_write_id += 1;
    let Some(body) = decode(world, bytes) else {
        world.fail("a store version that does not decode was written".into());
        return;
    };
    let mut problems = Vec::new();
    if let Some(prev) = world.history.versions.last() {
        let (p, n) = (prev.body.generation, body.generation);
        if n != p + 1 {
            problems.push(format!(
                "lost update: generation {n} written over generation {p}"
            ));
        }
        // Revisions never go backwards for a tenant that stays.
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
    });
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
    // unless a later acknowledged write to that tenant replaced it.
    let puts = world.history.acked_puts.clone();
    for (tenant, revision, token) in &puts {
        let seen = world.history.versions.iter().any(|v| {
            v.body
                .tenants
                .get(tenant)
                .is_some_and(|e| e.revision == *revision && e.access_token == *token)
        });
        if !seen {
            world.fail(format!(
                "acknowledged put of {tenant} revision {revision} is in no version"
            ));
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
