//! Machine-readable output: `credlock token TENANT --json` and `credlock status`.

use crate::Failure;
use credlock::{AccessToken, Credlock, TenantSummary};
use std::io::Write;

/// `{"access_token","token_type","expires_at","scope"}`, as `gcloud auth
/// print-access-token --format=json` users expect; `expires_at` is RFC 3339 UTC (null when
/// the server gave no lifetime). The scope comes from the same revision of the entry as the
/// token, or is null if the entry changed in between (another process refreshed it).
pub fn print_token_json(
    store: &mut Credlock,
    tenant: &str,
    t: &AccessToken,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let scope = store
        .list()?
        .into_iter()
        .find(|s| s.tenant == tenant && s.revision == t.revision)
        .and_then(|s| s.scope);
    let json = zeroize::Zeroizing::new(
        serde_json::to_string(&serde_json::json!({
            "access_token": t.token,
            "token_type": t.token_type,
            "expires_at": t.expires_at_ms.map(rfc3339),
            "scope": scope,
        }))
        .expect("JSON values serialise"),
    );
    let _ = writeln!(out, "{}", json.as_str());
    Ok(())
}

/// One tenant's state as `status` reports it.
struct TenantStatus {
    tenant: String,
    /// `None` for a tenant whose first login is still in progress.
    summary: Option<TenantSummary>,
    /// Helper mappings (kind and URL) that hand out this tenant's token.
    mappings: Vec<String>,
    /// A login in progress for the tenant (never its code or verifier).
    pending: Option<credlock::PendingSummary>,
}

/// `credlock status [TENANT] [--json]`: what `list` shows, plus whether a refresh token
/// exists, whether a refresh intent is pending (a refresh in flight now, or one interrupted
/// after its token may have been spent, which credlock will not present again unless the
/// tenant allows one retry), whether a re-login is needed, and which helper mappings hand
/// its token out, and any login in progress for it (a tenant whose first login is still in
/// progress is shown too).
pub fn run(
    store: &mut Credlock,
    tenant: Option<&str>,
    json: bool,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let mut tenants = store.list()?;
    let mut pending = store.pending_logins()?;
    if let Some(name) = tenant {
        tenants.retain(|t| t.tenant == name);
        pending.retain(|p| p.tenant == name);
        if tenants.is_empty() && pending.is_empty() {
            return Err(
                credlock::Error::Store(credlock::StoreError::NotFound(name.to_owned())).into(),
            );
        }
    }
    let mappings = super::helper_map::load(store.layout())?;
    let mut names: Vec<String> = tenants
        .iter()
        .map(|t| t.tenant.clone())
        .chain(pending.iter().map(|p| p.tenant.clone()))
        .collect();
    names.sort();
    names.dedup();
    let statuses: Vec<TenantStatus> = names
        .into_iter()
        .map(|name| TenantStatus {
            mappings: mappings
                .iter()
                .filter(|m| m.tenant == name)
                .map(|m| format!("{} {}", m.kind.name(), m.url))
                .collect(),
            summary: tenants.iter().find(|t| t.tenant == name).cloned(),
            pending: pending.iter().find(|p| p.tenant == name).cloned(),
            tenant: name,
        })
        .collect();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    if json {
        let v: Vec<serde_json::Value> = statuses
            .iter()
            .map(|s| {
                let login = s.pending.as_ref().map(|p| {
                    serde_json::json!({
                        "kind": p.kind,
                        "started_at": rfc3339(p.started_at_ms),
                        "expires_at": rfc3339(p.expires_at_ms),
                        "joinable": p.understood,
                    })
                });
                let Some(t) = &s.summary else {
                    return serde_json::json!({
                        "tenant": s.tenant,
                        "stored": false,
                        "pending_login": login,
                        "helper_mappings": s.mappings,
                    });
                };
                serde_json::json!({
                    "tenant": t.tenant,
                    "stored": true,
                    "pending_login": login,
                    "token_type": t.token_type,
                    "expires_at": t.expires_at_ms.map(rfc3339),
                    "expires_at_ms": t.expires_at_ms,
                    "expired": t.expires_at_ms.is_some_and(|ms| ms <= now_ms),
                    "has_refresh_token": t.has_refresh_token,
                    "can_refresh": t.has_refresh_token && t.token_endpoint.is_some() && !t.needs_reauth,
                    "needs_reauth": t.needs_reauth,
                    "refresh_intent": t.refresh_intent,
                    "scope": t.scope,
                    "token_endpoint": t.token_endpoint,
                    "client_id": t.client_id,
                    "revision": t.revision,
                    "helper_mappings": s.mappings,
                })
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).expect("JSON values serialise")
        );
        return Ok(());
    }
    for s in &statuses {
        let _ = writeln!(out, "{}", s.tenant);
        if let Some(p) = &s.pending {
            let left = p.expires_at_ms.saturating_sub(now_ms) / 1000;
            let _ = writeln!(
                out,
                "  login:         {} login in progress (expires in {}){}",
                p.kind,
                crate::cli::list::human(left),
                if p.understood {
                    "; `credlock login` joins it"
                } else {
                    "; written by a newer credlock"
                }
            );
        }
        let Some(t) = &s.summary else {
            let _ = writeln!(out, "  access token:  none yet");
            continue;
        };
        let expires = match t.expires_at_ms {
            None => "unknown (the server gave no lifetime)".to_owned(),
            Some(ms) if ms <= now_ms => format!("expired at {}", rfc3339(ms)),
            Some(ms) => format!(
                "{} (in {})",
                rfc3339(ms),
                crate::cli::list::human((ms - now_ms) / 1000)
            ),
        };
        let _ = writeln!(out, "  access token:  {} {expires}", t.token_type);
        let refresh = match (t.has_refresh_token, t.token_endpoint.is_some()) {
            (true, true) => "present",
            (true, false) => "present, but no token endpoint to spend it at",
            (false, _) => "none",
        };
        let _ = writeln!(out, "  refresh token: {refresh}");
        let state = match (t.needs_reauth, t.refresh_intent) {
            (true, true) => "re-login needed: a refresh was interrupted after its refresh token may have been spent",
            (true, false) => "re-login needed: the server rejected the refresh token",
            (false, true) => "refresh pending: one is in flight, or an interrupted one may be retried once",
            (false, false) => "ok",
        };
        let _ = writeln!(out, "  status:        {state}");
        if let Some(scope) = &t.scope {
            let _ = writeln!(out, "  scope:         {scope}");
        }
        if let Some(endpoint) = &t.token_endpoint {
            let _ = writeln!(out, "  endpoint:      {endpoint}");
        }
        let _ = writeln!(out, "  revision:      {}", t.revision);
        for m in &s.mappings {
            let _ = writeln!(out, "  helper:        {m}");
        }
    }
    Ok(())
}

/// `2026-11-29T23:05:00Z` from milliseconds since the epoch: the core's, so that what
/// `status` prints is what `put` and `import` read.
pub use credlock_core::expiry::rfc3339;

#[cfg(test)]
mod tests {
    //! A wrong date in `expires_at` makes every consumer refresh too late or too early.
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000_999), "2023-11-14T22:13:20Z");
        assert_eq!(super::rfc3339(4_102_444_799_000), "2099-12-31T23:59:59Z");
    }
}
