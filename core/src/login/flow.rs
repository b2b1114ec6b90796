//! The flows: one login per tenant across processes (start, join, take over), the device
//! grant's polling, the browser's callback and the code exchange, and the commit that never
//! overwrites newer tokens.

use super::*;

pub(super) fn prompt(p: &PendingLogin, joined: bool) -> LoginPrompt {
    LoginPrompt {
        kind: p.kind.clone(),
        url: p.url.clone(),
        user_code: p.user_code.clone(),
        url_complete: p.url_complete.clone(),
        expires_at_ms: p.expires_at_ms,
        joined,
    }
}

/// Proof that this process holds the tenant's refresh lock, which a login holds from before
/// it writes its pending entry until its outcome is committed.
pub(super) struct LoginLockHeld<G> {
    _guard: G,
}

impl LoginRequest {
    fn validate(&self) -> Result<(), StoreError> {
        let bad = |why: &str| Err(StoreError::InvalidOptions(why.into()));
        if self.client_id.is_empty() || self.client_id.len() > MAX_FIELD_LEN {
            return bad("the client id must be 1 to 4096 characters");
        }
        if self.issuer.is_none() && self.token_endpoint.is_none() {
            return bad("give --issuer, or the endpoints (--token-endpoint and the flow's own)");
        }
        if matches!(&self.client_secret, Some(s) if s.is_empty()) {
            return bad("the client secret is empty");
        }
        Ok(())
    }

    fn client_auth(&self) -> ClientAuth {
        match &self.client_secret {
            Some(secret) => ClientAuth::Basic {
                secret: secret.clone(),
            },
            None => ClientAuth::None,
        }
    }
}

impl<'p, P: LoginPlatform> Store<'p, P> {
    /// Log `tenant` in, or join the login another process runs for it. See the module doc.
    pub fn login(&mut self, tenant: &str, req: &LoginRequest) -> Result<LoginOutcome, StoreError> {
        let tenant = tenant_name(tenant)?;
        req.validate()?;
        let lock_wait_ms = u64::from(
            self.opts
                .refresh_lock_timeout_ms()
                .expect("validated options"),
        );
        let started = self.p.monotonic_ms();
        let mut shown: Option<String> = None;
        let target = LockTarget::Refresh(tenant.id());
        for _ in 0..MAX_LOGIN_STEPS {
            if let Some(p) = self.pending_shared(&tenant)? {
                // Only the process listening for a browser login's callback can finish it:
                // one whose owner is gone is taken over at once, and its URL is never shown.
                if p.kind != "device" {
                    match self.p.acquire(&target, LockMode::Exclusive, 0) {
                        // Its owner holds the refresh lock until its flow ends: a free lock
                        // means the owner died (or has just finished).
                        Ok(guard) => {
                            match self.settle(&tenant, &p, LoginLockHeld { _guard: guard }) {
                                Ok(Joined::Done(outcome)) => return Ok(outcome),
                                // Nothing was shown or joined: a login that ended without
                                // tokens meanwhile is no reason to fail; start our own.
                                Ok(Joined::Again)
                                | Err(StoreError::Login(LoginError::JoinedFailed(_))) => continue,
                                Err(e) => return Err(e),
                            }
                        }
                        Err(LockError::Timeout(_)) => {}
                        Err(LockError::Io(io)) => {
                            return Err(StoreError::Io(crate::platform::FileError::Io(io)))
                        }
                    }
                }
                // A listener that refuses connections cannot take the callback (its owner is
                // past it, or dying): wait for the lock without showing its URL.
                let joinable = p.kind == "device" || self.listener_answers(&p);
                if joinable && shown.as_deref() != Some(p.id.as_str()) {
                    self.p.show(&prompt(&p, true));
                    shown = Some(p.id.clone());
                }
                match self.join(&tenant, &p)? {
                    Joined::Done(outcome) => return Ok(outcome),
                    Joined::Again => continue,
                }
            }
            match self.p.acquire(&target, LockMode::Exclusive, JOIN_CHECK_MS) {
                Ok(guard) => {
                    let lock = LoginLockHeld { _guard: guard };
                    // Another process may have written its pending login just before we got
                    // the lock (it released it since: its flow ended or it died). Look again.
                    if self.pending_shared(&tenant)?.is_some() {
                        continue;
                    }
                    return self.start(&tenant, req, lock);
                }
                Err(LockError::Timeout(_)) => {
                    if self.p.monotonic_ms().saturating_sub(started) > lock_wait_ms {
                        return Err(StoreError::LockTimeout {
                            lock: format!("refresh lock of tenant {tenant}"),
                            waited_ms: u32::try_from(lock_wait_ms).unwrap_or(u32::MAX),
                        });
                    }
                }
                Err(LockError::Io(io)) => {
                    return Err(StoreError::Io(crate::platform::FileError::Io(io)))
                }
            }
        }
        Err(StoreError::LockTimeout {
            lock: format!("refresh lock of tenant {tenant} (logins kept restarting)"),
            waited_ms: 0,
        })
    }

    /// Wait for the login `p` to end (its owner releases the refresh lock, or dies), then
    /// adopt its result or resume it.
    fn join(&mut self, tenant: &TenantName, p: &PendingLogin) -> Result<Joined, StoreError> {
        let now = self.p.wall_ms();
        let wait = p
            .expires_at_ms
            .saturating_sub(now)
            .saturating_add(u64::from(self.opts.lock_timeout_ms));
        let what = format!("refresh lock of tenant {tenant} (held by a login in progress)");
        let guard = self.acquire(
            &LockTarget::Refresh(tenant.id()),
            LockMode::Exclusive,
            u32::try_from(wait).unwrap_or(u32::MAX),
            &what,
        )?;
        self.settle(tenant, p, LoginLockHeld { _guard: guard })
    }

    /// With the refresh lock that the login `p` held, adopt its result or resume it.
    fn settle(
        &mut self,
        tenant: &TenantName,
        p: &PendingLogin,
        lock: LoginLockHeld<P::Guard>,
    ) -> Result<Joined, StoreError> {
        let loaded = self.read_shared(Scope::Tenant(tenant))?;
        let body = loaded.body();
        let now = self.p.wall_ms();
        let current = body.and_then(|b| b.pending_logins.get(tenant.as_str()));
        match current {
            // Its owner died with the flow alive: a device code can be polled by anyone who
            // holds it, so carry on where it stopped.
            Some(q) if q.id == p.id && q.expires_at_ms > now && q.kind == "device" => {
                let q = q.clone();
                drop(loaded);
                self.poll_device(tenant, lock, q, true).map(Joined::Done)
            }
            // A browser login's listener died with its owner: that flow cannot finish.
            Some(q) if q.id == p.id => {
                let id = q.id.clone();
                drop(loaded);
                self.remove_pending(tenant, &id)?;
                Ok(Joined::Again)
            }
            Some(_) => Ok(Joined::Again),
            None => {
                let entry: Option<&Entry> = body.and_then(|b| b.tenants.get(tenant.as_str()));
                match entry {
                    Some(e) if e.revision > p.base_revision => Ok(Joined::Done(LoginOutcome {
                        token: AccessToken::from_entry(e, false),
                        joined: true,
                        refreshable: e.refresh_token.is_some(),
                    })),
                    _ => Err(StoreError::Login(LoginError::JoinedFailed(
                        tenant.to_string(),
                    ))),
                }
            }
        }
    }

    /// This process runs the flow: discover, ask the server, record the pending login.
    fn start(
        &mut self,
        tenant: &TenantName,
        req: &LoginRequest,
        lock: LoginLockHeld<P::Guard>,
    ) -> Result<LoginOutcome, StoreError> {
        let endpoints = self.endpoints(req)?;
        let base_revision = {
            let loaded = self.read_shared(Scope::Tenant(tenant))?;
            loaded
                .body()
                .and_then(|b| b.tenants.get(tenant.as_str()))
                .map_or(0, |e| e.revision)
        };
        let client_auth = req.client_auth();
        let mut id = [0u8; 16];
        self.p.fill_random(&mut id);
        let now = self.p.wall_ms();
        let mut pending = PendingLogin {
            version: PENDING_LOGIN_VERSION,
            kind: String::new(),
            id: hex(&id),
            started_at_ms: now,
            expires_at_ms: 0,
            base_revision,
            url: String::new(),
            user_code: None,
            url_complete: None,
            device_code: None,
            interval_ms: None,
            code_verifier: None,
            state: None,
            redirect_uri: None,
            token_endpoint: endpoints.token.clone(),
            client_id: req.client_id.clone(),
            client_auth: client_auth.clone(),
            scope: req.scope.clone(),
            revocation_endpoint: endpoints.revocation.clone(),
            unknown: Map::new(),
        };
        match req.flow {
            LoginFlow::Device => {
                let url = endpoints.device_authorization.clone().ok_or_else(|| {
                    StoreError::Login(LoginError::Metadata(
                        "the server offers no device_authorization_endpoint (RFC 8628); try --browser".into(),
                    ))
                })?;
                let (body, authorization) = client_form(
                    &[
                        ("scope", req.scope.as_deref()),
                        ("audience", req.audience.as_deref()),
                        ("resource", req.resource.as_deref()),
                    ],
                    &req.client_id,
                    &client_auth,
                );
                let reply = self
                    .p
                    .post(&TokenRequest {
                        url,
                        body,
                        authorization,
                        timeout_ms: self.opts.http_timeout_ms,
                    })
                    .map_err(|t| {
                        login_failed("device_authorization_endpoint", EndpointError::Transport(t))
                    })?;
                let d = parse_device_authorization(&reply)
                    .map_err(|e| in_login("device_authorization_endpoint", e))?;
                pending.kind = "device".into();
                pending.expires_at_ms = now.saturating_add(d.expires_in_ms);
                pending.url = d.verification_uri;
                pending.user_code = Some(d.user_code);
                pending.url_complete = d.verification_uri_complete;
                pending.device_code = Some(d.device_code);
                pending.interval_ms = Some(d.interval_ms);
                self.record_pending(tenant, &pending)?;
                self.p.show(&prompt(&pending, false));
                self.poll_device(tenant, lock, pending, false)
            }
            LoginFlow::Browser { open } => {
                let auth_url = endpoints.authorization.clone().ok_or_else(|| {
                    StoreError::Login(LoginError::Metadata(
                        "the server offers no authorization_endpoint; try --device".into(),
                    ))
                })?;
                if let Some(methods) = &endpoints.code_challenge_methods {
                    if !methods.iter().any(|m| m == "S256") {
                        return Err(StoreError::Login(LoginError::Metadata(
                            "the server does not support PKCE with S256 (RFC 7636)".into(),
                        )));
                    }
                }
                let port = self
                    .p
                    .listen()
                    .map_err(|why| StoreError::Login(LoginError::Callback(why)))?;
                let redirect_uri = format!("http://127.0.0.1:{port}/callback");
                let mut verifier = [0u8; 32];
                self.p.fill_random(&mut verifier);
                let verifier = base64url(&verifier);
                let mut state = [0u8; 16];
                self.p.fill_random(&mut state);
                let state = hex(&state);
                let (query, _) = client_form(
                    &[
                        ("response_type", Some("code")),
                        ("redirect_uri", Some(&redirect_uri)),
                        ("scope", req.scope.as_deref()),
                        (
                            "prompt",
                            asks_offline_access(req.scope.as_deref()).then_some("consent"),
                        ),
                        ("state", Some(&state)),
                        ("code_challenge", Some(&pkce_challenge(&verifier))),
                        ("code_challenge_method", Some("S256")),
                        ("audience", req.audience.as_deref()),
                        ("resource", req.resource.as_deref()),
                    ],
                    &req.client_id,
                    // The authorization request carries the client id only, never a secret.
                    &ClientAuth::None,
                );
                let sep = if auth_url.contains('?') { '&' } else { '?' };
                pending.kind = "browser".into();
                pending.expires_at_ms = now.saturating_add(BROWSER_LOGIN_MS);
                pending.url = format!("{auth_url}{sep}{query}");
                pending.code_verifier = Some(verifier);
                pending.state = Some(state);
                pending.redirect_uri = Some(redirect_uri);
                self.record_pending(tenant, &pending)?;
                self.p.show(&prompt(&pending, false));
                if open {
                    // Where no browser opens, the URL shown above is the way in.
                    let _opened = self.p.open_browser(&pending.url);
                }
                let issuer = ResponseIssuer {
                    issuer: endpoints.issuer.clone(),
                    required: endpoints.iss_parameter_supported,
                };
                self.finish_browser(tenant, lock, pending, &issuer)
            }
        }
    }

    /// The endpoints: explicit ones win; the rest come from discovery.
    fn endpoints(&mut self, req: &LoginRequest) -> Result<Endpoints, StoreError> {
        let explicit = |which: &str, v: &Option<String>| -> Result<Option<String>, StoreError> {
            match v {
                Some(u) => {
                    check_endpoint(which, u).map_err(StoreError::Login)?;
                    Ok(Some(u.clone()))
                }
                None => Ok(None),
            }
        };
        let token = explicit("token_endpoint", &req.token_endpoint)?;
        let device = explicit(
            "device_authorization_endpoint",
            &req.device_authorization_endpoint,
        )?;
        let authorization = explicit("authorization_endpoint", &req.authorization_endpoint)?;
        let revocation = explicit("revocation_endpoint", &req.revocation_endpoint)?;
        let needs_discovery = token.is_none()
            || match req.flow {
                LoginFlow::Device => device.is_none(),
                LoginFlow::Browser { .. } => authorization.is_none(),
            };
        let discovered = match (&req.issuer, needs_discovery) {
            (Some(issuer), true) => Some(self.discover(issuer)?),
            _ => None,
        };
        let d = discovered.unwrap_or_default();
        let token = match token {
            Some(t) => t,
            None if !d.token.is_empty() => d.token,
            None => {
                return Err(StoreError::Login(LoginError::Metadata(
                    "no token endpoint: give --issuer or --token-endpoint".into(),
                )))
            }
        };
        Ok(Endpoints {
            authorization: authorization.or(d.authorization),
            token,
            device_authorization: device.or(d.device_authorization),
            revocation: revocation.or(d.revocation),
            code_challenge_methods: d.code_challenge_methods,
            issuer: d.issuer.or_else(|| req.issuer.clone()),
            iss_parameter_supported: d.iss_parameter_supported,
        })
    }

    /// RFC 8414 metadata, then OpenID Connect Discovery; the first that answers 200 counts.
    fn discover(&mut self, issuer: &str) -> Result<Endpoints, StoreError> {
        let mut statuses = Vec::new();
        for url in discovery_urls(issuer).map_err(StoreError::Login)? {
            let reply = self
                .p
                .get(&url, self.opts.http_timeout_ms)
                .map_err(|t| login_failed("metadata", EndpointError::Transport(t)))?;
            if reply.status == 200 {
                return parse_metadata(&reply.body, issuer).map_err(StoreError::Login);
            }
            statuses.push(reply.status.to_string());
        }
        Err(StoreError::Login(LoginError::Metadata(format!(
            "neither /.well-known/oauth-authorization-server nor /.well-known/openid-configuration answered (HTTP {})",
            statuses.join(", ")
        ))))
    }

    /// Whether the loopback listener of another process's browser login `p` still takes
    /// connections. A refused connection means nothing listens there any more; anything else
    /// (a reply, a timeout) counts as alive. The listener answers this GET with a 400 and
    /// keeps waiting for its callback.
    fn listener_answers(&mut self, p: &PendingLogin) -> bool {
        let Some(base) = p
            .redirect_uri
            .as_deref()
            .and_then(|u| u.strip_suffix("/callback"))
            .filter(|b| b.starts_with("http://127.0.0.1:"))
        else {
            return true;
        };
        !matches!(
            self.p.get(&format!("{base}/"), LISTENER_PROBE_MS),
            Err(TransportError::Connect(_))
        )
    }

    /// The live pending login of `tenant` this build understands, read under the shared lock.
    fn pending_shared(&mut self, tenant: &TenantName) -> Result<Option<PendingLogin>, StoreError> {
        let now = self.p.wall_ms();
        let loaded = self.read_shared(Scope::Header)?;
        Ok(loaded
            .body()
            .and_then(|b| b.pending_logins.get(tenant.as_str()))
            .filter(|p| p.expires_at_ms > now && p.understood())
            .cloned())
    }

    fn record_pending(&mut self, tenant: &TenantName, p: &PendingLogin) -> Result<(), StoreError> {
        self.mutate(Scope::Header, true, |body, _| {
            body.pending_logins
                .insert(tenant.as_str().to_owned(), p.clone());
            Ok(((), true))
        })?;
        Ok(())
    }

    /// Remove the pending login `id` of `tenant` (a flow that ended without tokens).
    fn remove_pending(&mut self, tenant: &TenantName, id: &str) -> Result<(), StoreError> {
        self.mutate(Scope::Header, false, |body, _| {
            let ours = body
                .pending_logins
                .get(tenant.as_str())
                .is_some_and(|p| p.id == id);
            if ours {
                body.pending_logins.remove(tenant.as_str());
            }
            Ok(((), ours))
        })?;
        Ok(())
    }

    /// End a flow with `err`, removing its pending login first. A failure to remove it is
    /// not reported over `err`: the entry expires and the next writer collects it.
    fn abandon<T>(
        &mut self,
        tenant: &TenantName,
        id: &str,
        err: StoreError,
    ) -> Result<T, StoreError> {
        let _ = self.remove_pending(tenant, id);
        Err(err)
    }

    /// Poll the token endpoint with the device code until the user finishes, the code
    /// expires, or the server refuses (RFC 8628 §3.4, §3.5).
    fn poll_device(
        &mut self,
        tenant: &TenantName,
        _lock: LoginLockHeld<P::Guard>,
        p: PendingLogin,
        joined: bool,
    ) -> Result<LoginOutcome, StoreError> {
        // `start` wrote both; a resumed entry was checked to be a device login.
        let device_code = p.device_code.clone().unwrap_or_default();
        let mut schedule = PollSchedule {
            interval_ms: p
                .interval_ms
                .unwrap_or(DEFAULT_INTERVAL_MS)
                .clamp(1000, MAX_INTERVAL_MS),
            expires_at_ms: p.expires_at_ms,
        };
        let mut transient = 0;
        for _ in 0..MAX_POLLS {
            let Some(wait) = schedule.next_wait_ms(self.p.wall_ms()) else {
                return self.abandon(
                    tenant,
                    &p.id,
                    StoreError::Login(LoginError::Expired(tenant.to_string())),
                );
            };
            self.p.sleep_ms(u32::try_from(wait).unwrap_or(u32::MAX));
            let (body, authorization) = client_form(
                &[
                    (
                        "grant_type",
                        Some("urn:ietf:params:oauth:grant-type:device_code"),
                    ),
                    ("device_code", Some(&device_code)),
                ],
                &p.client_id,
                &p.client_auth,
            );
            let sent_ms = self.p.wall_ms();
            let reply = self.p.post(&TokenRequest {
                url: p.token_endpoint.clone(),
                body,
                authorization,
                timeout_ms: self.opts.http_timeout_ms,
            });
            let outcome = match reply {
                Ok(reply) => classify_poll(&reply, sent_ms),
                // A server that did not answer may answer the next poll; one that sent more
                // than a token response is not a server to store tokens from.
                Err(t @ (TransportError::Connect(_) | TransportError::Timeout)) => {
                    PollReply::Transient(EndpointError::Transport(t))
                }
                Err(t) => PollReply::Failed(EndpointError::Transport(t)),
            };
            match outcome {
                PollReply::Granted(g) => return self.commit_login(tenant, &p, g, joined),
                PollReply::Pending => transient = 0,
                PollReply::SlowDown => {
                    transient = 0;
                    schedule.slow_down();
                }
                PollReply::Denied => {
                    return self.abandon(tenant, &p.id, StoreError::Login(LoginError::AccessDenied))
                }
                PollReply::Expired => {
                    return self.abandon(
                        tenant,
                        &p.id,
                        StoreError::Login(LoginError::Expired(tenant.to_string())),
                    )
                }
                PollReply::Transient(e) => {
                    transient += 1;
                    if transient >= MAX_TRANSIENT_FAILURES {
                        return self.abandon(tenant, &p.id, login_failed("token_endpoint", e));
                    }
                }
                PollReply::Failed(e) => {
                    return self.abandon(tenant, &p.id, login_failed("token_endpoint", e))
                }
            }
        }
        self.abandon(
            tenant,
            &p.id,
            StoreError::Login(LoginError::Expired(tenant.to_string())),
        )
    }

    /// Wait for the loopback callback, check it, and exchange its code (RFC 7636 §4.5).
    fn finish_browser(
        &mut self,
        tenant: &TenantName,
        _lock: LoginLockHeld<P::Guard>,
        p: PendingLogin,
        issuer: &ResponseIssuer,
    ) -> Result<LoginOutcome, StoreError> {
        // `start` wrote all three.
        let state = p.state.clone().unwrap_or_default();
        let verifier = p.code_verifier.clone().unwrap_or_default();
        let redirect_uri = p.redirect_uri.clone().unwrap_or_default();
        let left = p.expires_at_ms.saturating_sub(self.p.wall_ms());
        let query = match self
            .p
            .accept_callback(&state, u32::try_from(left).unwrap_or(u32::MAX))
        {
            Ok(q) => q.0,
            Err(why) => {
                return self.abandon(tenant, &p.id, StoreError::Login(LoginError::Callback(why)))
            }
        };
        // The host matched the state already; the core checks again, since it is the core's
        // promise that a callback for another request is never exchanged.
        if query_param(&query, "state").as_deref() != Some(state.as_str()) {
            return self.abandon(
                tenant,
                &p.id,
                StoreError::Login(LoginError::Callback(
                    "the callback's state does not match".into(),
                )),
            );
        }
        // RFC 9207: before anything else of the response is believed, error included.
        if let Err(e) = issuer.check(&query) {
            return self.abandon(tenant, &p.id, StoreError::Login(e));
        }
        if let Some(error) = query_param(&query, "error") {
            let err = if error == "access_denied" {
                LoginError::AccessDenied
            } else {
                LoginError::Callback(format!(
                    "the server answered {}",
                    error
                        .chars()
                        .filter(|c| c.is_ascii_graphic())
                        .take(64)
                        .collect::<String>()
                ))
            };
            return self.abandon(tenant, &p.id, StoreError::Login(err));
        }
        let Some(code) = query_param(&query, "code").filter(|c| !c.is_empty()) else {
            return self.abandon(
                tenant,
                &p.id,
                StoreError::Login(LoginError::Callback("the callback carries no code".into())),
            );
        };
        let (body, authorization) = client_form(
            &[
                ("grant_type", Some("authorization_code")),
                ("code", Some(&code)),
                ("redirect_uri", Some(&redirect_uri)),
                ("code_verifier", Some(&verifier)),
            ],
            &p.client_id,
            &p.client_auth,
        );
        let sent_ms = self.p.wall_ms();
        let reply = self.p.post(&TokenRequest {
            url: p.token_endpoint.clone(),
            body,
            authorization,
            timeout_ms: self.opts.http_timeout_ms,
        });
        match reply.map(|r| classify_poll(&r, sent_ms)) {
            Ok(PollReply::Granted(g)) => self.commit_login(tenant, &p, g, false),
            Ok(PollReply::Denied) => {
                self.abandon(tenant, &p.id, StoreError::Login(LoginError::AccessDenied))
            }
            Ok(PollReply::Failed(e) | PollReply::Transient(e)) => {
                self.abandon(tenant, &p.id, login_failed("token_endpoint", e))
            }
            Ok(other) => self.abandon(
                tenant,
                &p.id,
                in_login(
                    "token_endpoint",
                    malformed(format!("unexpected reply to a code exchange: {other:?}")),
                ),
            ),
            Err(t) => self.abandon(
                tenant,
                &p.id,
                login_failed("token_endpoint", EndpointError::Transport(t)),
            ),
        }
    }

    /// Store the login's tokens as `put` would, unless a newer write replaced the tenant
    /// while the login ran (its revision moved past the one the login started from).
    fn commit_login(
        &mut self,
        tenant: &TenantName,
        p: &PendingLogin,
        mut grant: TokenGrant,
        joined: bool,
    ) -> Result<LoginOutcome, StoreError> {
        if grant.scope.is_none() {
            grant.scope = p.scope.clone();
        }
        let config = RefreshConfig {
            token_endpoint: Some(p.token_endpoint.clone()),
            client_id: Some(p.client_id.clone()),
            client_auth: p.client_auth.clone(),
            retry_unknown_refresh: false,
            revocation_endpoint: p.revocation_endpoint.clone(),
            refresh_scope: None,
            refresh_resource: None,
        };
        let name = tenant.as_str().to_owned();
        // What would have been stored, kept to revoke if newer tokens win (below).
        let discarded = p
            .revocation_endpoint
            .clone()
            .map(|url| (url, grant.clone(), config.clone()));
        let (result, _) = self.mutate(Scope::Tenant(tenant), true, |body, now| {
            let ours = body.pending_logins.get(&name).is_some_and(|q| q.id == p.id);
            if ours {
                body.pending_logins.remove(&name);
            }
            let current = body.tenants.get(&name).map_or(0, |e| e.revision);
            if current > p.base_revision {
                return Ok((
                    Err(StoreError::Login(LoginError::Superseded(name.clone()))),
                    ours,
                ));
            }
            let old = body.tenants.remove(&name);
            let mut entry = login_entry(old, grant, config, true, now);
            // A tenant deleted during the login restarts at 1; joiners look for a revision
            // above the one the login started from.
            entry.revision = entry.revision.max(p.base_revision + 1);
            let token = AccessToken::from_entry(&entry, false);
            let refreshable = entry.refresh_token.is_some();
            body.tenants.insert(name.clone(), entry);
            Ok((Ok((token, refreshable)), true))
        })?;
        if let (Err(StoreError::Login(LoginError::Superseded(_))), Some((url, grant, config))) =
            (&result, discarded)
        {
            // Discarded tokens would leave their grant live at the server, with nothing
            // that will ever use or revoke it. Best effort, outside the store lock (the
            // refresh lock is still held): the newer tokens are the result either way.
            let now = self.p.wall_ms();
            let entry = login_entry(None, grant, config, true, now);
            let _revocation = self.revoke(&url, &entry);
        }
        result.map(|(token, refreshable)| LoginOutcome {
            token,
            joined,
            refreshable,
        })
    }
}

pub(super) enum Joined {
    Done(LoginOutcome),
    /// The joined login is gone without a result this process can adopt: look again.
    Again,
}
