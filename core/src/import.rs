//! Import of plaintext token files: migration from the files programs keep today.
//!
//! Two shapes are understood:
//! - one tenant's tokens, imported as a named tenant: a token response (RFC 6749 §5.1 JSON,
//!   plus credlock's optional refresh settings) or one of the files the tools users already
//!   have (`sources`: Go's `oauth2.Token`, Claude Code, Codex, Google's application default
//!   credentials, an MSAL cache, the MCP SDKs'), detected or named with `kind`;
//! - a JSON object mapping names to token responses, as multi-account tools keep them. Agent
//!   runtimes' `auth.json` files use `{"type": "oauth", "access", "refresh", "expires"}`
//!   (`expires` in Unix milliseconds); those entries are translated. Entries that are not
//!   OAuth credentials (API keys, `null`, strings) are skipped and reported, never guessed at.
//!
//! Everything is imported in one atomic write, so no reader ever sees half a migration, and
//! the host removes the source only after that write is durable and only if nothing was
//! skipped.

mod sources;

use crate::error::StoreError;
use crate::expiry::Reading;
use crate::oauth::{parse_refresh_config, parse_token_object, TokenGrant};
use crate::platform::Platform;
use crate::store::{login_entry, tenant_name, Scope, Store};
use serde::ser::{SerializeSeq, Serializer};
use serde_json::{Map, Value};

pub use sources::SourceKind;

/// How to import: the caller's choices, and what the host knows of the source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Overwrite tenants that already exist (otherwise a conflict imports nothing).
    pub replace: bool,
    /// The kind of file (`SourceKind::name`); detected when `None`. Only for one tenant.
    pub kind: Option<String>,
    /// Which account of a file that holds several (an MSAL cache).
    pub account: Option<String>,
    /// When the source file was last written (Unix ms), if it is a file: a token saved
    /// with only `expires_in` was received no later than that.
    pub saved_at_ms: Option<u64>,
}

/// What `import_tokens` did. Mirrors `import-report` in the WIT.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    pub imported: Vec<String>,
    /// Name and why, for each entry left out.
    #[serde(serialize_with = "skipped_by_name")]
    pub skipped: Vec<Skipped>,
    pub generation: u64,
}

/// One entry ready to store.
struct Candidate {
    tenant: crate::tenant::TenantName,
    /// The token response, in RFC 6749 shape.
    response: Map<String, Value>,
    /// When the source says it was received, if it says.
    received_at_ms: Option<u64>,
    /// Only a refresh token: the first `token` refreshes.
    refresh_only: bool,
}

impl Candidate {
    fn new(tenant: crate::tenant::TenantName, response: Map<String, Value>) -> Self {
        Candidate {
            tenant,
            response,
            received_at_ms: None,
            refresh_only: false,
        }
    }
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

/// The WIT's `tuple<string, string>` as `{"tenant", "reason"}`: JSON has no tuple, and a
/// pair serialized as an array would be read by position, the thing names are for. The C
/// ABI (Go's `ImportSkip`) has always named them so; Python turns them back into its pairs.
fn skipped_by_name<S: Serializer>(skipped: &[Skipped], serializer: S) -> Result<S::Ok, S::Error> {
    let mut seq = serializer.serialize_seq(Some(skipped.len()))?;
    for (tenant, reason) in skipped {
        seq.serialize_element(&SkippedByName { tenant, reason })?;
    }
    seq.end()
}

/// One element of [`skipped_by_name`].
#[derive(serde::Serialize)]
struct SkippedByName<'a> {
    tenant: &'a str,
    reason: &'a str,
}

/// Parse `source` into entries to import and entries skipped.
fn candidates(
    source: &str,
    tenant: Option<&str>,
    how: &ImportOptions,
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
        let kind = match how.kind.as_deref() {
            None => sources::detect(&obj),
            Some(k) => SourceKind::from_name(k).ok_or_else(|| {
                StoreError::InvalidOptions(format!(
                    "{k:?} is not a kind of file credlock imports; the kinds are {}",
                    SourceKind::names()
                ))
            })?,
        };
        let t = sources::translate(kind, obj, how.account.as_deref()).map_err(invalid)?;
        let mut skipped = t.skipped;
        skipped.sort();
        return Ok((
            vec![Candidate {
                tenant,
                response: t.response,
                received_at_ms: t.received_at_ms,
                refresh_only: t.refresh_only,
            }],
            skipped,
        ));
    }
    if how.kind.is_some() || how.account.is_some() {
        return Err(StoreError::InvalidOptions(
            "a kind of file or an account is chosen for one tenant's file, not a map of tenants"
                .into(),
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
            Ok(response) if response.contains_key("access_token") => {
                ok.push(Candidate::new(tenant, response))
            }
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
        how: &ImportOptions,
    ) -> Result<ImportReport, StoreError> {
        let replace = how.replace;
        let (candidates, mut skipped) = candidates(source, tenant, how)?;
        let now = self.p.wall_ms();
        let mut parsed = Vec::with_capacity(candidates.len());
        let allow_insecure_http = self.opts.allow_insecure_http;
        for c in candidates {
            // `expires_in` counts from when the source says the token was received, else
            // from when its file was written (it was received before), else from now.
            let received = c.received_at_ms.or(how.saved_at_ms).unwrap_or(now).min(now);
            let grant = if c.refresh_only {
                parse_refresh_only(c.response, received)
            } else {
                parse_token_object(c.response, Reading::kept(received))
            };
            match grant.and_then(|(grant, config)| {
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

/// A grant from a source that holds only a refresh token: no access token, expired from the
/// start, so that the first `token` refreshes (and never serves the empty token).
fn parse_refresh_only(
    mut response: Map<String, Value>,
    received_at_ms: u64,
) -> Result<(TokenGrant, Map<String, Value>), String> {
    // The translation wrote no access token; the parser's rules for everything else apply.
    response.insert("access_token".into(), Value::String("-".into()));
    let (mut grant, config) = parse_token_object(response, Reading::kept(received_at_ms))?;
    if grant.refresh_token.is_none() {
        return Err("`refresh_token` is missing".into());
    }
    grant.access_token = String::new();
    grant.expires_at_ms = Some(0);
    Ok((grant, config))
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
        let none = ImportOptions::default();
        let (ok, skipped) = candidates(src, None, &none).unwrap();
        let names: Vec<_> = ok.iter().map(|c| c.tenant.to_string()).collect();
        assert_eq!(names, ["anthropic", "plain"]);
        let v = Value::Object(ok[0].response.clone());
        assert_eq!(
            v,
            serde_json::json!({"access_token": "at", "refresh_token": "rt", "expires_at": 1900000000u64})
        );
        let skipped: Vec<_> = skipped.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(skipped, ["bad name!", "nothing", "openai"]);
        // No skip reason repeats a secret.
        let (_, skipped) = candidates(src, None, &none).unwrap();
        assert!(skipped.iter().all(|(_, why)| !why.contains("sk-not")));
    }

    #[test]
    fn a_single_response_needs_a_name_and_a_map_does_not_take_one_silently() {
        let none = ImportOptions::default();
        let single = r#"{"access_token": "a"}"#;
        assert!(matches!(
            candidates(single, None, &none),
            Err(StoreError::InvalidTokenResponse(_))
        ));
        let (ok, skipped) = candidates(single, Some("acme"), &none).unwrap();
        assert_eq!((ok.len(), skipped.len()), (1, 0));
        assert!(matches!(
            candidates("[1]", None, &none),
            Err(StoreError::InvalidTokenResponse(_))
        ));
        let go = ImportOptions {
            kind: Some("go-oauth2".into()),
            ..ImportOptions::default()
        };
        assert!(matches!(
            candidates(r#"{"m": {"access_token": "a"}}"#, None, &go),
            Err(StoreError::InvalidOptions(_))
        ));
        let e = candidates(single, Some("acme"), &go)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not Go's oauth2.Token JSON"), "{e}");
        let bogus = ImportOptions {
            kind: Some("gcloud".into()),
            ..ImportOptions::default()
        };
        let e = candidates(single, Some("acme"), &bogus)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("claude-code") && e.contains("msal"), "{e}");
    }
}
