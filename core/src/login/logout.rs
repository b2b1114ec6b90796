//! Logging out (revocation, RFC 7009, under the tenant's refresh lock) and the logins in
//! progress as `pending_logins` and `token` see them.

use super::*;

impl<'p, P: crate::Platform> Store<'p, P> {
    /// Revoke `tenant`'s refresh token (or, without one, its access token) where a revocation
    /// endpoint is known, then delete the tenant. A failed revocation deletes nothing unless
    /// `local`. Runs under the tenant's refresh lock, so no refresh presents the token while
    /// it is being revoked.
    pub fn logout(&mut self, tenant: &str, local: bool) -> Result<LogoutReport, StoreError> {
        let tenant = tenant_name(tenant)?;
        let timeout = self
            .opts
            .refresh_lock_timeout_ms()
            .expect("validated options");
        let what = format!("refresh lock of tenant {tenant}");
        let _lock = self.acquire(
            &LockTarget::Refresh(tenant.id()),
            LockMode::Exclusive,
            timeout,
            &what,
        )?;
        let entry = self.entry_shared(&tenant)?;
        let revocation = match &entry.revocation_endpoint {
            None => Revocation::NotOffered,
            Some(url) => self.revoke(url, &entry),
        };
        if let Revocation::Failed(why) = &revocation {
            if !local {
                return Err(StoreError::Login(LoginError::RevocationFailed(why.clone())));
            }
        }
        let deleted = self.delete(tenant.as_str())?;
        Ok(LogoutReport {
            revocation,
            deleted,
        })
    }

    pub(super) fn revoke(&mut self, url: &str, entry: &Entry) -> Revocation {
        if let Err(e) = check_endpoint("revocation_endpoint", url) {
            return Revocation::Failed(StoreError::Login(e).to_string());
        }
        let (token, hint) = match &entry.refresh_token {
            Some(rt) => (rt.as_str(), "refresh_token"),
            None => (entry.access_token.as_str(), "access_token"),
        };
        let (body, authorization) = client_form(
            &[("token", Some(token)), ("token_type_hint", Some(hint))],
            entry.client_id.as_deref().unwrap_or(""),
            &entry.client_auth,
        );
        match self.p.post(&TokenRequest {
            url: url.to_owned(),
            body,
            authorization,
            timeout_ms: self.opts.http_timeout_ms,
        }) {
            // RFC 7009 §2.2: 200 whether or not the token was still valid.
            Ok(r) if r.status == 200 => Revocation::Revoked,
            Ok(r) => Revocation::Failed(match classify_reply(r.status, &r.body, 0) {
                EndpointReply::OAuthError { status, error, .. } => format!("HTTP {status} {error}"),
                _ => format!("HTTP {}", r.status),
            }),
            Err(t) => {
                Revocation::Failed(StoreError::Endpoint(EndpointError::Transport(t)).to_string())
            }
        }
    }

    /// Logins in progress, for `list` and `doctor`.
    pub fn pending_logins(&mut self) -> Result<Vec<PendingSummary>, StoreError> {
        let loaded = self.read_shared(Scope::Header)?;
        let Some(body) = loaded.body() else {
            return Ok(Vec::new());
        };
        Ok(body
            .pending_logins
            .iter()
            .map(|(tenant, p)| PendingSummary {
                tenant: tenant.clone(),
                kind: p.kind.clone(),
                started_at_ms: p.started_at_ms,
                expires_at_ms: p.expires_at_ms,
                understood: p.understood(),
            })
            .collect())
    }

    /// Whether a live login is pending for `tenant`: `token` says so instead of "not found"
    /// or "expired".
    pub(crate) fn login_pending(&mut self, tenant: &TenantName) -> bool {
        let now = self.p.wall_ms();
        self.read_shared(Scope::Header).is_ok_and(|l| {
            l.body()
                .and_then(|b| b.pending_logins.get(tenant.as_str()))
                .is_some_and(|p| p.expires_at_ms > now)
        })
    }
}
