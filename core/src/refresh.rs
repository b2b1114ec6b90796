//! The refresh state machine: one refresh token is presented at most once, by one process.
//!
//! Each state is a struct named after what it waits for; each transition consumes the state
//! and returns the next one. The order is the protocol in [`crate::manual::locking`]:
//!
//! ```text
//! ExpectRefreshLock ──lock──▶ ExpectReadUnderLock ──fresh? adopt──▶ done
//!                                   │ (refresh token read under the lock)
//!                                   ▼
//!                             ExpectIntentRecorded ──durable intent──▶ ExpectEndpointReply
//!                                   ──reply──▶ ExpectCommit ──merge──▶ done
//! ```
//! The refresh token presented is only ever the one in [`ReadUnderRefreshLock`], which only
//! [`ExpectReadUnderLock::read`] makes while the tenant's refresh lock is held.

use crate::error::{EndpointError, StoreError};
use crate::model::{Entry, RefreshIntent};
use crate::oauth::{classify_reply, refresh_request_parts, EndpointReply, TokenGrant};
use crate::platform::{FileError, IoError, LockMode, LockTarget, Platform, TokenRequest};
use crate::store::{tenant_name, AccessToken, Scope, Store};
use crate::tenant::{sha256_hex, TenantName};

/// Bounds the restarts when a concurrent `put` replaces the tokens between our read and
/// our intent. Each restart needs a new login to race us; three in a row is a livelock.
pub const MAX_REFRESH_RESTARTS: u32 = 3;

/// Why the caller wants a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// A token valid for at least this many more milliseconds.
    ValidFor(u64),
    /// A new token now (`refresh` without `rejected`).
    Forced,
    /// A new token unless the stored one is no longer the rejected one: `rejected` is a
    /// lowercase hex SHA-256 prefix (16 to 64 chars) of the access token a server refused.
    Rejected(String),
}

impl Want {
    /// Whether `entry` already satisfies this want without a refresh.
    fn satisfied_by(&self, entry: &Entry, now_ms: u64, read_before_lock: Option<&Entry>) -> bool {
        match self {
            // Someone refreshed while we waited for the lock: their still-valid token serves
            // this expiry too, even if it is shorter-lived than asked for.
            Want::ValidFor(ms) => {
                entry.fresh_for(now_ms, *ms)
                    || read_before_lock.is_some_and(|before| {
                        before.access_token != entry.access_token && entry.fresh_for(now_ms, 0)
                    })
            }
            // Forced: someone else's refresh after our first read counts as ours.
            Want::Forced => {
                read_before_lock.is_some_and(|before| before.access_token != entry.access_token)
            }
            Want::Rejected(prefix) => {
                !sha256_hex(entry.access_token.as_bytes()).starts_with(prefix.as_str())
            }
        }
    }
}

/// Waiting for the tenant's refresh lock.
struct ExpectRefreshLock {
    tenant: TenantName,
    want: Want,
    /// The entry as read before the lock, only to decide whether anyone refreshed meanwhile.
    before: Option<Entry>,
}

/// Holding the refresh lock; waiting for the store's current state.
struct ExpectReadUnderLock<G> {
    tenant: TenantName,
    want: Want,
    before: Option<Entry>,
    lock: RefreshLockHeld<G>,
}

/// Proof that the tenant's refresh lock is held.
struct RefreshLockHeld<G> {
    _guard: G,
}

/// The refresh token, read while the refresh lock was held. Only [`ExpectReadUnderLock::read`]
/// makes one: a refresh token read before the lock can never be presented.
struct ReadUnderRefreshLock {
    refresh_token: String,
    entry: Entry,
    /// The naive variant's bug: the refresh token read before the lock, presented instead.
    #[cfg(feature = "naive")]
    stale: Option<String>,
}

impl ReadUnderRefreshLock {
    /// The refresh token to present: always the one read under the lock.
    fn presented(&self) -> &str {
        #[cfg(feature = "naive")]
        if let Some(stale) = &self.stale {
            return stale;
        }
        &self.refresh_token
    }
}

/// Ready to record the intent that makes a crash visible to the next process.
struct ExpectIntentRecorded<G> {
    tenant: TenantName,
    want: Want,
    lock: RefreshLockHeld<G>,
    read: ReadUnderRefreshLock,
    attempts: u32,
}

/// The intent is durable; waiting for the token endpoint.
struct ExpectEndpointReply<G> {
    tenant: TenantName,
    lock: RefreshLockHeld<G>,
    read: ReadUnderRefreshLock,
}

/// The endpoint answered; waiting to merge its answer into the store.
struct ExpectCommit<G> {
    tenant: TenantName,
    _lock: RefreshLockHeld<G>,
    presented_sha256: String,
    outcome: Outcome,
}

enum Outcome {
    Granted(TokenGrant),
    InvalidGrant,
    /// A definite failure: the server did not spend the token. Clear the intent.
    Rejected(EndpointError),
    /// The server may have spent the token: keep the intent.
    Ambiguous(EndpointError),
}

enum AfterRead<G> {
    Adopted(AccessToken),
    Spend(Box<ExpectIntentRecorded<G>>),
}

impl<'p, P: Platform> Store<'p, P> {
    /// The tenant's access token, valid for `min_valid_ms` more, refreshed if needed.
    pub fn token(&mut self, tenant: &str, min_valid_ms: u64) -> Result<AccessToken, StoreError> {
        let name = tenant_name(tenant)?;
        match self.token_inner(name.clone(), min_valid_ms) {
            // With no usable token, a login in progress is the news, not "log in again".
            Err(
                StoreError::NotFound(_)
                | StoreError::Expired(_)
                | StoreError::ReauthNeeded(_)
                | StoreError::RefreshOutcomeUnknown(_)
                | StoreError::LockTimeout { .. },
            ) if self.login_pending(&name) => Err(StoreError::Login(
                crate::error::LoginError::Pending(name.to_string()),
            )),
            other => other,
        }
    }

    fn token_inner(
        &mut self,
        tenant: TenantName,
        min_valid_ms: u64,
    ) -> Result<AccessToken, StoreError> {
        let entry = self.entry_shared(&tenant)?;
        if entry.needs_reauth {
            return Err(StoreError::ReauthNeeded(tenant.to_string()));
        }
        let now = self.p.wall_ms();
        if entry.fresh_for(now, min_valid_ms) {
            return Ok(AccessToken::from_entry(&entry, false));
        }
        if !entry.can_refresh() {
            return Err(StoreError::Expired(tenant.to_string()));
        }
        self.run_refresh(ExpectRefreshLock {
            tenant,
            want: Want::ValidFor(min_valid_ms),
            before: Some(entry),
        })
    }

    /// Refresh now; with `rejected`, only if the stored access token is still that one.
    pub fn refresh(
        &mut self,
        tenant: &str,
        rejected: Option<&str>,
    ) -> Result<AccessToken, StoreError> {
        let tenant = tenant_name(tenant)?;
        let want = match rejected {
            None => Want::Forced,
            Some(r) => {
                let r = r.to_ascii_lowercase();
                if r.len() < 16 || r.len() > 64 || !r.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(StoreError::InvalidOptions(
                        "`rejected` must be 16 to 64 hex characters of the SHA-256 of the refused access token".into(),
                    ));
                }
                Want::Rejected(r)
            }
        };
        let entry = self.entry_shared(&tenant)?;
        if !entry.can_refresh() {
            return Err(StoreError::Expired(tenant.to_string()));
        }
        self.run_refresh(ExpectRefreshLock {
            tenant,
            want,
            before: Some(entry),
        })
    }

    fn run_refresh(&mut self, start: ExpectRefreshLock) -> Result<AccessToken, StoreError> {
        let mut state = self.take_refresh_lock(start)?;
        for _ in 0..MAX_REFRESH_RESTARTS {
            let spend = match self.read_under_refresh_lock(state)? {
                AfterRead::Adopted(token) => return Ok(token),
                AfterRead::Spend(s) => s,
            };
            match self.record_intent(*spend)? {
                Ok(ready) => {
                    let answered = self.call_endpoint(ready);
                    return self.commit_outcome(answered);
                }
                // A `put` replaced the tokens after our read: read again, still under the lock.
                Err(again) => state = again,
            }
        }
        Err(StoreError::RefreshContended(state.tenant.to_string()))
    }

    fn take_refresh_lock(
        &mut self,
        s: ExpectRefreshLock,
    ) -> Result<ExpectReadUnderLock<P::Guard>, StoreError> {
        // Validated by Options::validate when the store was made.
        let timeout = self
            .opts
            .refresh_lock_timeout_ms()
            .expect("validated options");
        let what = format!("refresh lock of tenant {}", s.tenant);
        let guard = self.acquire(
            &LockTarget::Refresh(s.tenant.id()),
            LockMode::Exclusive,
            timeout,
            &what,
        )?;
        Ok(ExpectReadUnderLock {
            tenant: s.tenant,
            want: s.want,
            before: s.before,
            lock: RefreshLockHeld { _guard: guard },
        })
    }

    fn read_under_refresh_lock(
        &mut self,
        s: ExpectReadUnderLock<P::Guard>,
    ) -> Result<AfterRead<P::Guard>, StoreError> {
        let entry = self.entry_shared(&s.tenant)?;
        let now = self.p.wall_ms();
        if entry.needs_reauth {
            return Err(StoreError::ReauthNeeded(s.tenant.to_string()));
        }
        #[cfg(feature = "naive")]
        let reread = !self.naive.no_reread_under_lock;
        #[cfg(not(feature = "naive"))]
        let reread = true;
        // Another process may have refreshed while we waited: adopt its token.
        if reread && s.want.satisfied_by(&entry, now, s.before.as_ref()) {
            return Ok(AfterRead::Adopted(AccessToken::from_entry(&entry, false)));
        }
        let (Some(refresh_token), true) =
            (entry.refresh_token.clone(), entry.token_endpoint.is_some())
        else {
            return Err(StoreError::Expired(s.tenant.to_string()));
        };
        let mut attempts = 1;
        #[cfg(feature = "naive")]
        let intent = entry
            .refresh_intent
            .as_ref()
            .filter(|_| !self.naive.ignore_intent);
        #[cfg(not(feature = "naive"))]
        let intent = entry.refresh_intent.as_ref();
        if let Some(intent) = intent {
            if intent.refresh_token_sha256 == sha256_hex(refresh_token.as_bytes()) {
                // This very token may already be spent. Present it again only where the
                // tenant explicitly allows one retry, and only once.
                if !entry.retry_unknown_refresh || intent.attempts >= 2 {
                    if let Some(left_ms) = self.may_still_land(intent, now) {
                        return Err(StoreError::LockTimeout {
                            lock: format!(
                                "refresh lock of tenant {} (in effect still held: a refresh is in flight in a process whose database session ended, after a server restart or a failover; it may record its outcome within about {} s; retry then)",
                                s.tenant,
                                left_ms.div_ceil(1000)
                            ),
                            waited_ms: 0,
                        });
                    }
                    return Err(StoreError::RefreshOutcomeUnknown(s.tenant.to_string()));
                }
                attempts = intent.attempts + 1;
            }
            // An intent for another refresh token is stale (that token was replaced): ignore it.
        }
        Ok(AfterRead::Spend(Box::new(ExpectIntentRecorded {
            tenant: s.tenant,
            want: s.want,
            lock: s.lock,
            read: ReadUnderRefreshLock {
                #[cfg(feature = "naive")]
                stale: s
                    .before
                    .as_ref()
                    .and_then(|b| b.refresh_token.clone())
                    .filter(|_| self.naive.stale_refresh_token),
                refresh_token,
                entry,
            },
            attempts,
        })))
    }

    /// On a database store, the refresh lock is an advisory lock on a session, and a session
    /// can end (a server restart, a failover) while its process lives on and its refresh is
    /// still in flight: the lock is free, yet the intent's owner may still record the outcome
    /// (it commits under the store lock, retrying). Until the longest a healthy refresh holds
    /// its lock (what a waiter for that lock waits, [`crate::Options::refresh_lock_timeout_ms`]) has
    /// passed since the intent was written, its outcome is not known *yet*: the caller is
    /// told to retry, not to log in again. Returns the milliseconds left. (With flock, a free
    /// refresh lock means its holder is gone: an intent found then is of unknown outcome.)
    fn may_still_land(&mut self, intent: &RefreshIntent, now: u64) -> Option<u64> {
        if self.p.layout() != crate::platform::Layout::Records {
            return None;
        }
        let longest = self.opts.refresh_lock_timeout_ms()?;
        let deadline = intent.started_at_ms.saturating_add(u64::from(longest));
        (now < deadline).then(|| deadline - now)
    }

    /// Make the intent durable before the token leaves, so a crash or lost reply is visible.
    /// Returns `Err(state)` to re-read if the tokens changed since the read.
    #[allow(clippy::type_complexity)]
    fn record_intent(
        &mut self,
        s: ExpectIntentRecorded<P::Guard>,
    ) -> Result<Result<ExpectEndpointReply<P::Guard>, ExpectReadUnderLock<P::Guard>>, StoreError>
    {
        let presented = sha256_hex(s.read.refresh_token.as_bytes());
        let name = s.tenant.as_str().to_owned();
        let attempts = s.attempts;
        let intent_read = s.read.entry.refresh_intent.clone();
        let mut ours = None;
        let tenant = s.tenant.clone();
        let written = self.mutate(Scope::Tenant(&tenant), false, |body, now| {
            let Some(e) = body.tenants.get_mut(&name) else {
                return Err(StoreError::NotFound(name.clone()));
            };
            // The intent is compared and set, not only set: if it is no longer what we read
            // under the refresh lock, another process recorded its own and may be spending
            // this very token. That cannot happen while the refresh lock holds, but a lock
            // that can be lost without its holder noticing (a database session ended) must
            // not be all that keeps a token from being presented twice. Re-read: the other
            // intent then reads as an outcome not known yet.
            if e.refresh_intent != intent_read {
                return Ok((false, false));
            }
            if e.refresh_token
                .as_deref()
                .map(|t| sha256_hex(t.as_bytes()))
                .as_deref()
                != Some(presented.as_str())
            {
                return Ok((false, false));
            }
            let intent = RefreshIntent {
                refresh_token_sha256: presented.clone(),
                started_at_ms: now,
                attempts,
            };
            ours = Some(intent.clone());
            e.refresh_intent = Some(intent);
            e.revision += 1;
            Ok((true, true))
        });
        let (recorded, _) = match written {
            // A write that was not acknowledged may still have landed (a database connection
            // cut during the commit, a directory fsync that failed after the rename). Then an
            // intent would say "maybe spent" of a token that never left: every later refresh
            // would stop at an unknown outcome. Take it back, as nothing was sent.
            Err(e @ StoreError::Io(FileError::Io(IoError::Unreachable(_) | IoError::Other(_)))) => {
                if let Some(ours) = ours {
                    self.withdraw_intent(&name, &ours, &intent_read);
                }
                return Err(e);
            }
            other => other?,
        };
        if recorded {
            Ok(Ok(ExpectEndpointReply {
                tenant: s.tenant,
                lock: s.lock,
                read: s.read,
            }))
        } else {
            // Keep what the caller wanted; the entry we read counts as "before", so the new
            // login's token is adopted rather than refreshed again.
            Ok(Err(ExpectReadUnderLock {
                tenant: s.tenant,
                want: s.want,
                before: Some(s.read.entry),
                lock: s.lock,
            }))
        }
    }

    /// Put back the intent `intent_read` where `ours` (written, not acknowledged) may stand:
    /// only while the stored intent is exactly ours, a few tries. Best effort: if the store
    /// stays unreachable, the next refresh reads an unknown outcome, which is safe.
    fn withdraw_intent(
        &mut self,
        name: &str,
        ours: &RefreshIntent,
        intent_read: &Option<RefreshIntent>,
    ) {
        let Ok(tenant) = tenant_name(name) else {
            return;
        };
        for _ in 0..COMMIT_ATTEMPTS {
            let withdrawn = self.mutate(Scope::Tenant(&tenant), false, |body, _| {
                let Some(e) = body.tenants.get_mut(name) else {
                    return Ok(((), false));
                };
                if e.refresh_intent.as_ref() != Some(ours) {
                    return Ok(((), false));
                }
                e.refresh_intent = intent_read.clone();
                e.revision += 1;
                Ok(((), true))
            });
            if withdrawn.is_ok() {
                return;
            }
        }
    }

    fn call_endpoint(&mut self, s: ExpectEndpointReply<P::Guard>) -> ExpectCommit<P::Guard> {
        let e = &s.read.entry;
        // read_under_refresh_lock checked that the endpoint is there.
        let url = e.token_endpoint.clone().expect("checked under the lock");
        let (body, authorization) = refresh_request_parts(
            s.read.presented(),
            e.client_id.as_deref(),
            &e.client_auth,
            e.refresh_scope.as_deref(),
            e.refresh_resource.as_deref(),
        );
        let request = TokenRequest {
            url,
            body,
            authorization,
            timeout_ms: self.opts.http_timeout_ms,
        };
        // Expiry counts from when the request left: the token cannot be older than that.
        let sent_ms = self.p.wall_ms();
        let outcome = match self.p.post(&request) {
            Err(t) if t.request_may_have_arrived() => {
                Outcome::Ambiguous(EndpointError::Transport(t))
            }
            Err(t) => Outcome::Rejected(EndpointError::Transport(t)),
            Ok(reply) => {
                match classify_reply(reply.status, &reply.body, sent_ms) {
                    EndpointReply::Granted(g) => Outcome::Granted(g),
                    EndpointReply::OAuthError { error, .. } if error == "invalid_grant" => {
                        Outcome::InvalidGrant
                    }
                    EndpointReply::OAuthError {
                        status,
                        error,
                        description,
                    } => Outcome::Rejected(EndpointError::OAuth {
                        status,
                        error,
                        description,
                    }),
                    EndpointReply::ServerError(status) => {
                        Outcome::Rejected(EndpointError::Server(status))
                    }
                    // A success status we cannot read: the server has probably rotated.
                    EndpointReply::Malformed(why) => {
                        Outcome::Ambiguous(EndpointError::MalformedReply(why))
                    }
                }
            }
        };
        ExpectCommit {
            tenant: s.tenant,
            _lock: s.lock,
            presented_sha256: sha256_hex(s.read.presented().as_bytes()),
            outcome,
        }
    }

    /// Merge the endpoint's answer, comparing against the token we presented: a concurrent
    /// `put` always wins, and a loser of `invalid_grant` never wipes a winner's tokens.
    fn commit_outcome(&mut self, s: ExpectCommit<P::Guard>) -> Result<AccessToken, StoreError> {
        let name = s.tenant.as_str().to_owned();
        let presented = s.presented_sha256;
        let outcome = s.outcome;
        let still_presented = |e: &Entry| {
            e.refresh_token
                .as_deref()
                .map(|t| sha256_hex(t.as_bytes()))
                .as_deref()
                == Some(presented.as_str())
        };
        // The tokens the server just issued exist nowhere else: a commit that failed because
        // the store's server was briefly unreachable or this process's lock was lost (a
        // database store) is tried again under a fresh lock, a few times, each attempt
        // bounded by the lock timeout. The merge below is safe to repeat: a commit that did
        // land shows up as the stored refresh token no longer being the one presented.
        let mut attempts = 0;
        let committed = loop {
            attempts += 1;
            match self.commit_once(&name, &outcome, still_presented) {
                Err(StoreError::Io(FileError::Io(
                    IoError::Unreachable(_) | IoError::Fenced(_),
                ))) if attempts < COMMIT_ATTEMPTS => continue,
                other => break other,
            }
        };
        committed?
    }

    fn commit_once(
        &mut self,
        name: &str,
        outcome: &Outcome,
        still_presented: impl Fn(&Entry) -> bool,
    ) -> Result<Result<AccessToken, StoreError>, StoreError> {
        #[cfg(feature = "naive")]
        let naive_wipes = self.naive.invalid_grant_wipes;
        let tenant = tenant_name(name)?;
        let name = name.to_owned();
        let (result, _) = self.mutate(Scope::Tenant(&tenant), false, |body, now| {
            let Some(e) = body.tenants.get_mut(&name) else {
                return Err(StoreError::NotFound(name.clone()));
            };
            #[cfg(feature = "naive")]
            let wipes = naive_wipes && matches!(outcome, Outcome::InvalidGrant);
            #[cfg(not(feature = "naive"))]
            let wipes = false;
            if !still_presented(e) && !wipes {
                // Replaced by a new login meanwhile: the store's tokens are newer than ours.
                return Ok((Ok(AccessToken::from_entry(e, false)), false));
            }
            let clear_intent = |e: &mut Entry| {
                let had = e.refresh_intent.take().is_some();
                if had {
                    e.revision += 1;
                }
                had
            };
            match outcome {
                Outcome::Granted(g) => {
                    e.access_token = g.access_token.clone();
                    e.token_type = g.token_type.clone();
                    e.expires_at_ms = g.expires_at_ms;
                    // RFC 6749 §6: without a new refresh token, the old one stays valid.
                    if let Some(rt) = &g.refresh_token {
                        e.refresh_token = Some(rt.clone());
                    }
                    if g.scope.is_some() {
                        e.scope = g.scope.clone();
                    }
                    for (k, v) in &g.extra {
                        e.response_extra.insert(k.clone(), v.clone());
                    }
                    e.refresh_intent = None;
                    e.needs_reauth = false;
                    e.updated_at_ms = now;
                    e.revision += 1;
                    Ok((Ok(AccessToken::from_entry(e, true)), true))
                }
                Outcome::InvalidGrant => {
                    e.needs_reauth = true;
                    e.refresh_intent = None;
                    e.revision += 1;
                    Ok((Err(StoreError::ReauthNeeded(name.clone())), true))
                }
                Outcome::Rejected(err) => {
                    let changed = clear_intent(e);
                    Ok((Err(StoreError::Endpoint(err.clone())), changed))
                }
                Outcome::Ambiguous(err) => Ok((Err(StoreError::Endpoint(err.clone())), false)),
            }
        })?;
        Ok(result)
    }
}

/// How many times a refresh's commit is tried when the store's server is unreachable or the
/// lock was lost ([`Store::commit_outcome`]).
const COMMIT_ATTEMPTS: u32 = 3;
