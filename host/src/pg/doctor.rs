//! What `credlock doctor` checks of a database store: the connection, the schema, the
//! settings credlock's promises rest on, the locks, and who holds the store lock now.

use super::{schema, Database};
use credlock_core::platform::LockTarget;
use postgres::Client;
use std::time::Instant;

/// One finding: a line to print, and whether it is a problem.
pub struct Finding {
    pub problem: bool,
    pub line: String,
}

fn ok(line: impl Into<String>) -> Finding {
    Finding {
        problem: false,
        line: line.into(),
    }
}

fn problem(line: impl Into<String>) -> Finding {
    Finding {
        problem: true,
        line: line.into(),
    }
}

/// The advisory lock key as `pg_locks` shows it: (classid, objid) are its high and low
/// 32 bits.
fn split_key(key: i64) -> (i64, i64) {
    let k = key as u64;
    ((k >> 32) as i64, (k & 0xffff_ffff) as i64)
}

pub fn check(db: &Database) -> Vec<Finding> {
    let mut out = Vec::new();
    let started = Instant::now();
    let mut client = match db.connect() {
        Ok(c) => c,
        Err(e) => {
            out.push(problem(format!(
                "connection: ERROR: {}; check the URL, that the server runs and accepts this role from here (pg_hba.conf), and PGPASSWORD",
                super::io_text(&super::io_error(db, "could not connect", &e))
            )));
            return out;
        }
    };
    let connect_ms = started.elapsed().as_secs_f64() * 1000.0;
    let one = |c: &mut Client, sql: &str| -> Option<String> {
        c.simple_query(sql).ok()?.into_iter().find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
    };
    let version = one(&mut client, "SHOW server_version").unwrap_or_default();
    let user = one(&mut client, "SELECT current_user").unwrap_or_default();
    out.push(ok(format!(
        "connection: ok, {connect_ms:.0} ms; PostgreSQL {version}, role {user}"
    )));
    let major: u32 = version
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if major < 14 {
        out.push(problem(format!(
            "server: WARNING: PostgreSQL {version}: credlock needs 14 or newer (idle_session_timeout)"
        )));
    }
    // Durability: credlock's sessions commit synchronously; the server must also sync.
    for (name, want, why) in [
        ("synchronous_commit", "on", "credlock sets it for its sessions: a write is durable when it returns"),
        ("fsync", "on", "with fsync off a crash of the server can lose acknowledged writes"),
        ("full_page_writes", "on", "with full_page_writes off a crash can tear pages"),
        ("idle_session_timeout", "0", "credlock sets it to 0 for its sessions: a refresh lock is held across a token-endpoint call"),
    ] {
        let got = one(&mut client, &format!("SHOW {name}")).unwrap_or_default();
        if got == want {
            out.push(ok(format!("  {name}: {got} ({why})")));
        } else {
            out.push(problem(format!("  {name}: WARNING: {got}, not {want}: {why}")));
        }
    }
    let idle_tx = one(&mut client, "SHOW idle_in_transaction_session_timeout").unwrap_or_default();
    out.push(ok(format!(
        "  idle_in_transaction_session_timeout: {idle_tx} (credlock holds no transaction open between statements)"
    )));
    // The schema.
    match schema::version(&mut client, db) {
        Ok(None) => {
            let can_create = one(
                &mut client,
                "SELECT has_database_privilege(current_database(), 'CREATE')",
            )
            .as_deref()
                == Some("t");
            if can_create {
                out.push(ok(format!(
                    "schema {}: not created yet (`credlock init` or the first write creates it)",
                    db.schema
                )));
            } else {
                out.push(problem(format!(
                    "schema {}: not created yet, and role {user} may not create it: GRANT CREATE ON DATABASE to it, or have an owner run `credlock init`",
                    db.schema
                )));
            }
        }
        Ok(Some(v)) if v > schema::SCHEMA_VERSION => out.push(problem(format!(
            "schema {}: version {v}, newer than this credlock ({}): upgrade credlock here",
            db.schema,
            schema::SCHEMA_VERSION
        ))),
        Ok(Some(v)) => {
            if v < schema::SCHEMA_VERSION {
                out.push(ok(format!(
                    "schema {}: version {v} (the next write upgrades it to {}: one sealed record per tenant)",
                    db.schema,
                    schema::SCHEMA_VERSION
                )));
            } else {
                out.push(ok(format!("schema {}: version {v}", db.schema)));
            }
            let mut tables = vec![("stores", "SELECT, INSERT, UPDATE")];
            if v >= 2 {
                tables.push(("records", "SELECT, INSERT, UPDATE, DELETE"));
            }
            for (table, needed) in tables {
                let privs = one(
                    &mut client,
                    &format!(
                        "SELECT has_table_privilege('{}.{table}', '{needed}')",
                        db.schema_ident().replace('\'', "''")
                    ),
                );
                if privs.as_deref() != Some("t") {
                    out.push(problem(format!(
                        "  privileges: WARNING: role {user} lacks one of {needed} on {}.{table}",
                        db.schema
                    )));
                }
            }
            let row = client.query_opt(
                &format!(
                    "SELECT version, octet_length(store), octet_length(backup), updated_at::text FROM {}.stores WHERE name = $1",
                    db.schema_ident()
                ),
                &[&db.store],
            );
            match row {
                Ok(Some(r)) => out.push(ok(format!(
                    "store {}: row version {}, {} bytes, backup {} bytes, last written {}",
                    db.store,
                    r.get::<_, i64>(0),
                    r.get::<_, Option<i32>>(1)
                        .map_or("no".into(), |n| n.to_string()),
                    r.get::<_, Option<i32>>(2)
                        .map_or("no".into(), |n| n.to_string()),
                    r.get::<_, String>(3)
                ))),
                Ok(None) => out.push(ok(format!("store {}: none yet", db.store))),
                Err(e) => out.push(problem(format!(
                    "store {}: ERROR: {}",
                    db.store,
                    super::io_text(&super::io_error(db, "could not read the store row", &e))
                ))),
            }
            if v >= 2 {
                // The store name is checked to need no quoting (database.rs).
                if let Some(n) = one(
                    &mut client,
                    &format!(
                        "SELECT count(*) || ' tenant record(s), ' || coalesce(sum(octet_length(sealed)), 0) || ' bytes' FROM {}.records WHERE store = '{}'",
                        db.schema_ident(),
                        db.store
                    ),
                ) {
                    out.push(ok(format!("  {n}")));
                }
            }
            if let Some(n) = one(
                &mut client,
                &format!(
                    "SELECT count(*) FROM {}.quarantined WHERE name = '{}'",
                    db.schema_ident(),
                    db.store
                ),
            )
            .filter(|n| n != "0")
            {
                out.push(ok(format!(
                    "  quarantined: {n} damaged cop(ies) moved aside (table {}.quarantined)",
                    db.schema
                )));
            }
        }
        Err(e) => out.push(problem(format!(
            "schema {}: ERROR: {}",
            db.schema,
            super::io_text(&super::io_error(
                db,
                "could not read the schema version",
                &e
            ))
        ))),
    }
    // Advisory locks: can this role take them, and who holds the store lock right now.
    let probe = one(
        &mut client,
        "SELECT pg_try_advisory_lock(7297761223712384) AND pg_advisory_unlock(7297761223712384)",
    );
    if probe.as_deref() == Some("t") {
        out.push(ok("advisory locks: working"));
    } else {
        out.push(problem(
            "advisory locks: ERROR: this role cannot take advisory locks; credlock cannot lock the store",
        ));
    }
    let (classid, objid) = split_key(db.lock_key(&LockTarget::Store));
    let holders = client.query(
        "SELECT l.pid, l.mode, COALESCE(a.client_addr::text, 'local'), COALESCE(a.application_name, ''), \
         COALESCE(extract(epoch FROM now() - a.state_change)::bigint, 0) \
         FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 1",
        &[&classid, &objid],
    );
    match holders {
        Ok(rows) if rows.is_empty() => out.push(ok("store lock: free")),
        Ok(rows) => {
            for r in rows {
                out.push(ok(format!(
                    "store lock: held ({}) by backend {} from {} ({}), idle {} s; if its process is gone for good, `SELECT pg_terminate_backend({})` releases it",
                    r.get::<_, String>(1),
                    r.get::<_, i32>(0),
                    r.get::<_, String>(2),
                    r.get::<_, String>(3),
                    r.get::<_, i64>(4),
                    r.get::<_, i32>(0),
                )));
            }
        }
        Err(_) => out.push(ok("store lock: cannot see pg_locks with this role")),
    }
    out
}
