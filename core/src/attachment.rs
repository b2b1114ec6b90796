//! Attachments: small named values a program keeps with a tenant, sealed with its tokens.
//!
//! The programs credlock serves keep more than tokens per server: an MCP client keeps the
//! client registration it got by dynamic registration (RFC 7591) and, between two calls of
//! one login, a PKCE verifier. Kept in a file of their own they would need their own lock,
//! their own atomic write and their own protection; kept here they get the store's.
//!
//! Rules:
//! - a write of tokens (`put`, `import`, `login`, a refresh) keeps the tenant's attachments;
//!   `delete` and `logout` remove them with the tenant;
//! - an attachment may be set before the tenant has tokens (a client registers before its
//!   first login): the tenant then exists without credentials, and `token` says there are
//!   none (`not-found`) until tokens are stored;
//! - attachments do not change the entry's `revision`, which counts writes of the tokens (a
//!   login compares it to tell whether newer tokens were stored while it ran);
//! - names and sizes are bounded, so an attachment cannot grow the store without limit.

use crate::error::StoreError;
use crate::model::Entry;
use crate::platform::Platform;
use crate::store::{tenant_name, Scope, Store, WriteReceipt};

/// The longest attachment name, in bytes.
pub const NAME_MAX_BYTES: usize = 64;
/// The largest attachment value, in bytes: a client registration with its metadata fits
/// many times over.
pub const VALUE_MAX_BYTES: usize = 64 * 1024;
/// The most attachments one tenant may have.
pub const PER_TENANT_MAX: usize = 16;

/// An attachment name: 1 to 64 bytes of `[a-z0-9._-]`, starting with a letter or digit.
fn check_name(name: &str) -> Result<(), StoreError> {
    let bad = |why: String| Err(StoreError::InvalidAttachment(why));
    if name.is_empty() {
        return bad("the attachment name is empty".into());
    }
    if name.len() > NAME_MAX_BYTES {
        return bad(format!(
            "the attachment name is {} bytes long; the limit is {NAME_MAX_BYTES}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
    {
        return bad(format!(
            "the attachment name contains {c:?}; allowed are a-z, 0-9 and . _ -"
        ));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return bad("the attachment name must start with a letter or digit".into());
    }
    Ok(())
}

impl<'p, P: Platform> Store<'p, P> {
    /// The attachment `name` of `tenant`; `None` when the tenant or the attachment is absent.
    pub fn attachment(&mut self, tenant: &str, name: &str) -> Result<Option<String>, StoreError> {
        let tenant = tenant_name(tenant)?;
        check_name(name)?;
        let loaded = self.read_shared(Scope::Tenant(&tenant))?;
        Ok(loaded
            .body()
            .and_then(|b| b.tenants.get(tenant.as_str()))
            .and_then(|e| e.attachments.get(name))
            .cloned())
    }

    /// Set (`Some`) or remove (`None`) the attachment `name` of `tenant`, under the store
    /// lock, leaving everything else of the tenant as it is. Setting one on a tenant without
    /// tokens creates the tenant; removing the last one of such a tenant removes it.
    pub fn set_attachment(
        &mut self,
        tenant: &str,
        name: &str,
        value: Option<&str>,
    ) -> Result<WriteReceipt, StoreError> {
        let tenant = tenant_name(tenant)?;
        check_name(name)?;
        if let Some(v) = value {
            if v.len() > VALUE_MAX_BYTES {
                return Err(StoreError::InvalidAttachment(format!(
                    "the value of '{name}' is {} bytes long; the limit is {VALUE_MAX_BYTES}",
                    v.len()
                )));
            }
        }
        let (revision, generation) =
            self.mutate(Scope::Tenant(&tenant), value.is_some(), |body, now| {
                let Some(value) = value else {
                    let Some(entry) = body.tenants.get_mut(tenant.as_str()) else {
                        return Ok((0, false));
                    };
                    let revision = entry.revision;
                    if entry.attachments.remove(name).is_none() {
                        return Ok((revision, false));
                    }
                    if entry.attachments.is_empty() && !entry.holds_credentials() {
                        body.tenants.remove(tenant.as_str());
                    }
                    return Ok((revision, true));
                };
                let entry = body
                    .tenants
                    .entry(tenant.as_str().to_owned())
                    .or_insert_with(|| Entry::without_credentials(now));
                if entry.attachments.get(name).map(String::as_str) == Some(value) {
                    return Ok((entry.revision, false));
                }
                if !entry.attachments.contains_key(name)
                    && entry.attachments.len() >= PER_TENANT_MAX
                {
                    return Err(StoreError::InvalidAttachment(format!(
                        "'{tenant}' already has {PER_TENANT_MAX} attachments, the limit; remove one first"
                    )));
                }
                entry.attachments.insert(name.to_owned(), value.to_owned());
                Ok((entry.revision, true))
            })?;
        Ok(WriteReceipt {
            revision,
            generation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names() {
        for ok in [
            "client",
            "mcp.client-info",
            "code_verifier",
            "0",
            &"a".repeat(64),
        ] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-x",
            ".x",
            "_x",
            "Client",
            "a/b",
            "a b",
            "ä",
            &"a".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
