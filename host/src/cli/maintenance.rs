//! The maintenance subcommands: key slots, `rekey`, `import`, `recover`. Each is one atomic
//! change under the exclusive store lock (the core's); these say what changed.

use crate::{read_stdin, usage, Failure, SlotAction};
use credlock::Credlock;
use std::io::Write;

pub fn slot(
    store: &mut Credlock,
    action: &SlotAction,
    allow_volatile_only: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    match action {
        SlotAction::List { json } => print_slots(out, &store.slots()?, *json),
        SlotAction::Add { kind, .. } => {
            let slots = store.add_slot(kind)?;
            eprintln!("credlock: added a {kind} slot");
            print_slots(out, &slots, false);
        }
        SlotAction::Remove { index } => {
            // The flag or CREDLOCK_ALLOW_VOLATILE_ONLY, as OpenOptions resolved them.
            let slots = store.remove_slot(*index, allow_volatile_only)?;
            eprintln!(
                "credlock: removed slot {index}; the backup, which still had it, is gone too"
            );
            print_slots(out, &slots, false);
        }
    }
    Ok(())
}

pub fn rekey(store: &mut Credlock) -> Result<(), Failure> {
    let info = store.rekey()?;
    eprintln!(
        "credlock: re-sealed {} tenant(s) under a new data key {} (generation {}); the old backup was removed",
        info.tenants, info.key_id, info.generation
    );
    Ok(())
}

pub fn recover(store: &mut Credlock, force: bool) -> Result<(), Failure> {
    for line in store.recover(force)?.messages() {
        eprintln!("credlock: {line}");
    }
    Ok(())
}

fn print_slots(out: &mut impl Write, slots: &[credlock::KeySlot], json: bool) {
    if json {
        let v: Vec<serde_json::Value> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                serde_json::json!({
                    "index": i, "kind": s.kind,
                    "durable": credlock_core::platform::slot_is_durable(&s.kind),
                    "description": credlock::keys::describe_slot(s),
                })
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).expect("JSON values serialise")
        );
        return;
    }
    let _ = writeln!(out, "{:<6} {:<15} WHAT", "INDEX", "KIND");
    for (i, s) in slots.iter().enumerate() {
        let _ = writeln!(
            out,
            "{i:<6} {:<15} {}",
            s.kind,
            credlock::keys::describe_slot(s)
        );
    }
}

/// `credlock import TENANT FILE` (or `--map FILE`, or `-` for standard input).
pub fn import(
    store: &mut Credlock,
    map: bool,
    how: credlock::ImportOptions,
    remove_source: bool,
    args: &[String],
) -> Result<(), Failure> {
    let (tenant, file) = match (map, args) {
        (true, [file]) => (None, file.as_str()),
        (false, [tenant, file]) => (Some(tenant.as_str()), file.as_str()),
        (true, _) => return Err(usage("import --map takes one FILE")),
        (false, _) => {
            return Err(usage(
                "import takes TENANT FILE (or --map FILE for a map of tenants)",
            ))
        }
    };
    // Durable when it returns: the one atomic write of the whole import is fsync'd.
    let (report, kept) = if file == "-" {
        if remove_source {
            return Err(usage("--remove-source needs a FILE, not standard input"));
        }
        let source = read_stdin("the tokens to import")?;
        (store.import_tokens(&source, tenant, &how)?, None)
    } else {
        let r = credlock::source::import_file(
            std::path::Path::new(file),
            &how,
            remove_source,
            |text, how| store.import_tokens(text, tenant, how),
        )?;
        (r.report, remove_source.then_some(r.kept_reason))
    };
    eprintln!(
        "credlock: imported {} tenant(s){}",
        report.imported.len(),
        if report.imported.is_empty() {
            String::new()
        } else {
            format!(": {}", report.imported.join(", "))
        }
    );
    for (name, why) in &report.skipped {
        eprintln!("credlock: skipped {name:?}: {why}");
    }
    // A tenant that cannot refresh serves its token until it expires, then fails: say so now,
    // while the user still has the file in mind.
    if !report.imported.is_empty() {
        for t in store.list()? {
            if report.imported.contains(&t.tenant)
                && !(t.has_refresh_token && t.token_endpoint.is_some())
            {
                eprintln!(
                    "credlock: {} cannot be refreshed (no {}): add a token_endpoint and client_id with `credlock put`, or log in with `credlock login`",
                    t.tenant,
                    if t.has_refresh_token { "token endpoint" } else { "refresh token" }
                );
            }
        }
    }
    match kept {
        Some(None) => eprintln!("credlock: removed {file}"),
        Some(Some(why)) => eprintln!("credlock: kept {file}: {why}"),
        None => {}
    }
    Ok(())
}
