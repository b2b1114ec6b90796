//! `credlock list`: every tenant without secrets, as a table or JSON, and the logins in
//! progress.

use crate::Failure;
use credlock::Credlock;
use std::io::Write;

pub fn run(store: &mut Credlock, json: bool, out: &mut impl Write) -> Result<(), Failure> {
    let tenants = store.list()?;
    let pending = store.pending_logins()?;
    if json {
        let v: Vec<serde_json::Value> = tenants
            .iter()
            .map(|t| {
                serde_json::json!({
                    "tenant": t.tenant, "token_type": t.token_type, "expires_at_ms": t.expires_at_ms,
                    "has_refresh_token": t.has_refresh_token, "scope": t.scope,
                    "token_endpoint": t.token_endpoint, "client_id": t.client_id,
                    "revision": t.revision, "needs_reauth": t.needs_reauth,
                        "refresh_intent": t.refresh_intent,
                })
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).expect("JSON values serialise")
        );
    } else {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "{:<32} {:<14} {:<8} {:<8} STATUS",
            "TENANT", "EXPIRES", "REFRESH", "REVISION"
        );
        for t in tenants {
            let expires = match t.expires_at_ms {
                None => "unknown".to_owned(),
                Some(ms) if ms <= now => "expired".to_owned(),
                Some(ms) => format!("in {}", human((ms - now) / 1000)),
            };
            let status = if t.needs_reauth {
                "re-login needed"
            } else if pending.iter().any(|p| p.tenant == t.tenant) {
                "login pending"
            } else {
                "ok"
            };
            let refresh = if t.has_refresh_token && t.token_endpoint.is_some() {
                "yes"
            } else {
                "no"
            };
            let _ = writeln!(
                out,
                "{:<32} {:<14} {:<8} {:<8} {status}",
                t.tenant, expires, refresh, t.revision
            );
        }
        let _ = write!(out, "{}", credlock::login::pending_text(&pending, now));
    }
    Ok(())
}

/// A duration as a person reads it at a glance: `90s`, `12m`, `5h`, `3d`.
pub fn human(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
