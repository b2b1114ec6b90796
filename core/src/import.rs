//! Import of plaintext token files: migration from the files programs keep today.
//!
//! Two shapes are understood:
//! - one token response (RFC 6749 §5.1 JSON, plus credlock's optional refresh settings),
//!   imported as a named tenant;
//! - a JSON object mapping names to such responses, as multi-account tools keep them. Agent
//!   runtimes' `auth.json` files use `{"type": "oauth", "access", "refresh", "expires"}`
//!   (`expires` in Unix milliseconds); those entries are translated. Entries that are not
//!   OAuth credentials (API keys, `null`, strings) are skipped and reported, never guessed at.
//!
//! Everything is imported in one atomic write, so no reader ever sees half a migration, and
//! the host removes the source only after that write is durable and only if nothing was
//! skipped.

use crate::error::StoreError;
use crate::oauth::{parse_refresh_config, parse_token_response};
use crate::platform::Platform;
use crate::store::{login_entry, tenant_name, Scope, Store};
use serde_json::{Map, Value};

/// What `import_tokens` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub imported: Vec<String>,
    /// Name and why, for each entry left out.
    pub skipped: Vec<Skipped>,
    pub generation: u64,
}

/// One entry ready to store.
struct Candidate {
    tenant: crate::tenant::TenantName,
    /// The token response, in RFC 6749 shape.
    response: Vec<u8>,
}

/// Translate an agent-style `{"type": "oauth", "access", "refresh", "expires"}` entry into a
/// token response; other objects pass through as they are.
fn normalise(mut obj: Map<String, Value>) -> Result<Map<String, Value>, String> {
    match obj.get("type") {
        Some(Value::String(t)) if t == "oauth" => {}
        Some(Value::String(t)) if !obj.contains_key("access_token") => {
            return Err(format!("not OAuth tokens (type {t:?})"));
        }
        _ => return Ok(obj),
    }
    obj.remove("type");
    let mut out = Map::new();
    if let Some(access) = obj.remove("access") {
        out.insert("access_token".into(), access);
    }
    if let Some(refresh) = obj.remove("refresh") {
        out.insert("refresh_token".into(), refresh);
    }
    match obj.remove("expires") {
        Some(Value::Number(ms)) => {
            let ms = ms
                .as_u64()
                .ok_or("`expires` is not a non-negative integer")?;
            // Unix milliseconds; credlock's `expires_at` is in seconds (rounded down, so the
            // token is never taken for fresher than it is).
            out.insert("expires_at".into(), Value::from(ms / 1000));
        }
        None | Some(Value::Null) => {}
        Some(_) => return Err("`expires` is not a number".into()),
    }
    // Everything else (account ids, token_endpoint, client_id, ...) as given.
    out.extend(obj);
    Ok(out)
}

/// An entry left out of an import: its name and why.
type Skipped = (String, String);

/// Parse `source` into entries to import and entries skipped.
fn candidates(
    source: &str,
    tenant: Option<&str>,
) -> Result<(Vec<Candidate>, Vec<Skipped>), StoreError> {
    let invalid = StoreError::InvalidTokenResponse;
    let value: Value = serde_json::from_str(source).map_err(|e| {
        invalid(format!(
            "the file is not valid JSON ({})",
            crate::oauth::json_error(&e)
        ))
    })?;
    let Value::Object(obj) = value else {
        return Err(invalid("the file is not a JSON object".into()));
    };
    if let Some(name) = tenant {
        let tenant = tenant_name(name)?;
        let response = normalise(obj).map_err(invalid)?;
        return Ok((
            vec![Candidate {
                tenant,
                response: serde_json::to_vec(&response).expect("a map serialises"),
            }],
            Vec::new(),
        ));
    }
    if obj.contains_key("access_token") || obj.get("type").is_some_and(|t| t == "oauth") {
        return Err(invalid(
            "this is a single token response, not a map of tenants: name its tenant".into(),
        ));
    }
    let mut ok = Vec::new();
    let mut skipped = Vec::new();
    for (name, value) in obj {
        let tenant = match tenant_name(&name) {
            Ok(t) => t,
            Err(e) => {
                skipped.push((name, e.to_string()));
                continue;
            }
        };
        let Value::Object(entry) = value else {
            skipped.push((name, "not a JSON object".into()));
            continue;
        };
        match normalise(entry) {
            Ok(response) if response.contains_key("access_token") => ok.push(Candidate {
                tenant,
                response: serde_json::to_vec(&response).expect("a map serialises"),
            }),
            Ok(_) => skipped.push((name, "no access_token".into())),
            Err(why) => skipped.push((name, why)),
        }
    }
    skipped.sort();
    Ok((ok, skipped))
}

impl<'p, P: Platform> Store<'p, P> {
    /// Import `source` (see the module documentation) in one atomic write. Existing tenants
    /// are an `ImportConflict` unless `replace`; then, as with `put`, their tokens are
    /// replaced and refresh settings not given are kept.
    pub fn import_tokens(
        &mut self,
        source: &str,
        tenant: Option<&str>,
        replace: bool,
    ) -> Result<ImportReport, StoreError> {
        let (candidates, mut skipped) = candidates(source, tenant)?;
        let now = self.p.wall_ms();
        let mut parsed = Vec::with_capacity(candidates.len());
        let allow_insecure_http = self.opts.allow_insecure_http;
        for c in candidates {
            match parse_token_response(&c.response, now).and_then(|(grant, config)| {
                let given = !config.is_empty();
                let config = parse_refresh_config(config)?;
                crate::store::check_refresh_endpoints(&config, allow_insecure_http)?;
                Ok((grant, config, given))
            }) {
                Ok(p) => parsed.push((c.tenant, p)),
                // A single named tenant must import or fail; in a map, one bad entry must not
                // block the others (it is reported, and the source is kept).
                Err(why) if tenant.is_some() => return Err(StoreError::InvalidTokenResponse(why)),
                Err(why) => skipped.push((c.tenant.to_string(), why)),
            }
        }
        skipped.sort();
        let imported: Vec<String> = parsed.iter().map(|(t, _)| t.to_string()).collect();
        let ((), generation) = self.mutate(Scope::All, !parsed.is_empty(), |body, now| {
            let conflicts: Vec<String> = imported
                .iter()
                .filter(|t| body.tenants.contains_key(t.as_str()))
                .cloned()
                .collect();
            if !conflicts.is_empty() && !replace {
                return Err(StoreError::ImportConflict(conflicts));
            }
            for (tenant, (grant, config, given)) in parsed {
                let old = body.tenants.remove(tenant.as_str());
                let entry = login_entry(old, grant, config, given, now);
                body.tenants.insert(tenant.as_str().to_owned(), entry);
            }
            Ok(((), !imported.is_empty()))
        })?;
        let mut imported = imported;
        imported.sort();
        Ok(ImportReport {
            imported,
            skipped,
            generation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_auth_json_entries_are_translated_and_others_skipped() {
        let src = r#"{
            "anthropic": {"type": "oauth", "access": "at", "refresh": "rt", "expires": 1900000000123},
            "openai": {"type": "api", "key": "sk-not-a-token"},
            "plain": {"access_token": "p", "token_type": "Bearer", "expires_in": 60},
            "bad name!": {"access_token": "x"},
            "nothing": null
        }"#;
        let (ok, skipped) = candidates(src, None).unwrap();
        let names: Vec<_> = ok.iter().map(|c| c.tenant.to_string()).collect();
        assert_eq!(names, ["anthropic", "plain"]);
        let v: Value = serde_json::from_slice(&ok[0].response).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"access_token": "at", "refresh_token": "rt", "expires_at": 1900000000u64})
        );
        let skipped: Vec<_> = skipped.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(skipped, ["bad name!", "nothing", "openai"]);
        // No skip reason repeats a secret.
        let (_, skipped) = candidates(src, None).unwrap();
        assert!(skipped.iter().all(|(_, why)| !why.contains("sk-not")));
    }

    #[test]
    fn a_single_response_needs_a_name_and_a_map_does_not_take_one_silently() {
        let single = r#"{"access_token": "a"}"#;
        assert!(matches!(
            candidates(single, None),
            Err(StoreError::InvalidTokenResponse(_))
        ));
        let (ok, skipped) = candidates(single, Some("acme")).unwrap();
        assert_eq!((ok.len(), skipped.len()), (1, 0));
        assert!(matches!(
            candidates("[1]", None),
            Err(StoreError::InvalidTokenResponse(_))
        ));
    }
}
