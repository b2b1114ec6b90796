//! The credlock core as a WebAssembly component.
//!
//! A thin adapter and nothing more: [`Imports`] implements the core's `Platform` seam by
//! calling the component's WIT imports, and [`Component`] exports the store by calling the
//! core. Type conversions live here; no logic does.

// The only unsafe code is what wit-bindgen generates for the canonical ABI, confined to
// `bindings`; ours stays safe (the core itself forbids unsafe outright).
// Only a wasm build makes sense: exported names such as `credlock:store/files@0.1.0#read`
// are not valid in a native shared library's symbol list, so a native build (`cargo build
// --workspace`) compiles this crate empty instead of failing to link.
#![cfg(target_family = "wasm")]
#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "credlock",
    });
    use super::Component;
    export!(Component);
}

mod login;

use bindings::credlock::store::{clock, files, locks, random, sealing, token_endpoint, types};
use bindings::exports::credlock::store::store as api;
use credlock_core::platform as core_p;
use credlock_core::{Platform, StoreError};

struct Component;

/// The platform as seen from inside the component: every call is a WIT import.
struct Imports;

/// A data key held by the host, behind the `sealing-key` resource.
struct Key(sealing::SealingKey);

impl core_p::SealingKey for Key {
    fn key_id(&self) -> Vec<u8> {
        self.0.key_id()
    }
    fn slots(&self) -> Vec<core_p::KeySlot> {
        self.0.slots().into_iter().map(slot_in).collect()
    }
    fn seal(
        &self,
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, core_p::SealError> {
        self.0.seal(nonce, aad, plaintext).map_err(seal_error)
    }
    fn open(
        &self,
        nonce: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, core_p::SealError> {
        self.0.open(nonce, aad, ciphertext).map_err(seal_error)
    }
    fn add_slot(&self, kind: &str) -> Result<core_p::KeySlot, core_p::KeyError> {
        self.0.add_slot(kind).map(slot_in).map_err(key_error)
    }
}

fn slot_in(s: sealing::KeySlot) -> core_p::KeySlot {
    core_p::KeySlot {
        kind: s.kind,
        data: s.data,
    }
}

fn slot_out(s: &core_p::KeySlot) -> sealing::KeySlot {
    sealing::KeySlot {
        kind: s.kind.clone(),
        data: s.data.clone(),
    }
}

fn seal_error(e: sealing::SealError) -> core_p::SealError {
    match e {
        sealing::SealError::BadNonce => core_p::SealError::BadNonce,
        sealing::SealError::AuthenticationFailed => core_p::SealError::AuthenticationFailed,
    }
}

fn io_error(e: types::IoError) -> core_p::IoError {
    match e {
        types::IoError::NotARegularFile(d) => core_p::IoError::NotARegularFile(d),
        types::IoError::PermissionDenied(d) => core_p::IoError::PermissionDenied(d),
        types::IoError::NoSpace(d) => core_p::IoError::NoSpace(d),
        types::IoError::UnsafePermissions(d) => core_p::IoError::UnsafePermissions(d),
        types::IoError::OtherLockProtocol(d) => core_p::IoError::OtherLockProtocol(d),
        types::IoError::Unreachable(d) => core_p::IoError::Unreachable(d),
        types::IoError::Fenced(d) => core_p::IoError::Fenced(d),
        types::IoError::AuthFailed(d) => core_p::IoError::AuthFailed(d),
        types::IoError::Other(d) => core_p::IoError::Other(d),
    }
}

fn io_error_out(e: core_p::IoError) -> types::IoError {
    match e {
        core_p::IoError::NotARegularFile(d) => types::IoError::NotARegularFile(d),
        core_p::IoError::PermissionDenied(d) => types::IoError::PermissionDenied(d),
        core_p::IoError::NoSpace(d) => types::IoError::NoSpace(d),
        core_p::IoError::UnsafePermissions(d) => types::IoError::UnsafePermissions(d),
        core_p::IoError::OtherLockProtocol(d) => types::IoError::OtherLockProtocol(d),
        core_p::IoError::Unreachable(d) => types::IoError::Unreachable(d),
        core_p::IoError::Fenced(d) => types::IoError::Fenced(d),
        core_p::IoError::AuthFailed(d) => types::IoError::AuthFailed(d),
        core_p::IoError::Other(d) => types::IoError::Other(d),
    }
}

fn file_error(e: files::FileError) -> core_p::FileError {
    match e {
        files::FileError::Io(io) => core_p::FileError::Io(io_error(io)),
        files::FileError::TooLarge(n) => core_p::FileError::TooLarge(n),
    }
}

fn key_error(e: sealing::KeyError) -> core_p::KeyError {
    match e {
        sealing::KeyError::NoKeySource => core_p::KeyError::NoKeySource,
        sealing::KeyError::NoMatchingSlot(k) => core_p::KeyError::NoMatchingSlot(k),
        sealing::KeyError::WrongPassphrase => core_p::KeyError::WrongPassphrase,
        sealing::KeyError::WrongKeyFile => core_p::KeyError::WrongKeyFile,
        sealing::KeyError::MalformedSlot(d) => core_p::KeyError::MalformedSlot(d),
        sealing::KeyError::Io(io) => core_p::KeyError::Io(io_error(io)),
        sealing::KeyError::KeyringEntryMissing(m) => core_p::KeyError::KeyringEntryMissing {
            backend: m.backend,
            other_slots: m.other_slots,
        },
        sealing::KeyError::Keyring(d) => core_p::KeyError::Keyring(d),
        sealing::KeyError::SlotUnavailable(d) => core_p::KeyError::SlotUnavailable(d),
    }
}

fn key_error_out(k: core_p::KeyError) -> sealing::KeyError {
    match k {
        core_p::KeyError::NoKeySource => sealing::KeyError::NoKeySource,
        core_p::KeyError::NoMatchingSlot(k) => sealing::KeyError::NoMatchingSlot(k),
        core_p::KeyError::WrongPassphrase => sealing::KeyError::WrongPassphrase,
        core_p::KeyError::WrongKeyFile => sealing::KeyError::WrongKeyFile,
        core_p::KeyError::MalformedSlot(d) => sealing::KeyError::MalformedSlot(d),
        core_p::KeyError::Io(io) => sealing::KeyError::Io(io_error_out(io)),
        core_p::KeyError::KeyringEntryMissing {
            backend,
            other_slots,
        } => sealing::KeyError::KeyringEntryMissing(sealing::KeyringMissing {
            backend,
            other_slots,
        }),
        core_p::KeyError::Keyring(d) => sealing::KeyError::Keyring(d),
        core_p::KeyError::SlotUnavailable(d) => sealing::KeyError::SlotUnavailable(d),
    }
}

fn file(f: core_p::StoreFile) -> files::StoreFile {
    match f {
        core_p::StoreFile::Store => files::StoreFile::Store,
        core_p::StoreFile::Backup => files::StoreFile::Backup,
    }
}

impl Platform for Imports {
    type Guard = locks::LockGuard;
    type Key = Key;

    fn acquire(
        &mut self,
        target: &core_p::LockTarget,
        mode: core_p::LockMode,
        timeout_ms: u32,
    ) -> Result<Self::Guard, core_p::LockError> {
        let target = match target {
            core_p::LockTarget::Store => locks::LockTarget::Store,
            core_p::LockTarget::Refresh(id) => locks::LockTarget::Refresh(id.clone()),
        };
        let mode = match mode {
            core_p::LockMode::Shared => locks::LockMode::Shared,
            core_p::LockMode::Exclusive => locks::LockMode::Exclusive,
        };
        locks::acquire(&target, mode, timeout_ms).map_err(|e| match e {
            locks::LockError::Timeout(ms) => core_p::LockError::Timeout(ms),
            locks::LockError::Io(io) => core_p::LockError::Io(io_error(io)),
        })
    }

    fn read(&mut self, f: core_p::StoreFile) -> Result<Option<Vec<u8>>, core_p::FileError> {
        match files::read(file(f)).map_err(file_error)? {
            files::Blob::Present(bytes) => Ok(Some(bytes)),
            files::Blob::Absent => Ok(None),
        }
    }

    fn replace(&mut self, f: core_p::StoreFile, contents: &[u8]) -> Result<(), core_p::FileError> {
        files::replace(file(f), contents).map_err(file_error)
    }

    fn remove(&mut self, f: core_p::StoreFile) -> Result<(), core_p::FileError> {
        files::remove(file(f)).map_err(file_error)
    }

    fn quarantine(&mut self, f: core_p::StoreFile) -> Result<String, core_p::FileError> {
        files::quarantine(file(f)).map_err(file_error)
    }

    fn layout(&mut self) -> core_p::Layout {
        match files::store_layout() {
            files::Layout::Blob => core_p::Layout::Blob,
            files::Layout::Records => core_p::Layout::Records,
        }
    }

    fn read_record(&mut self, id: &str) -> Result<Option<Vec<u8>>, core_p::FileError> {
        match files::read_record(id).map_err(file_error)? {
            files::Blob::Present(bytes) => Ok(Some(bytes)),
            files::Blob::Absent => Ok(None),
        }
    }

    fn read_records(&mut self) -> Result<Vec<(String, Vec<u8>)>, core_p::FileError> {
        files::read_records().map_err(file_error)
    }

    fn write_records(
        &mut self,
        store: &[u8],
        records: &[core_p::RecordWrite],
    ) -> Result<(), core_p::FileError> {
        let records: Vec<files::RecordWrite> = records
            .iter()
            .map(|r| files::RecordWrite {
                id: r.id.clone(),
                sealed: r.sealed.clone(),
            })
            .collect();
        files::write_records(store, &records).map_err(file_error)
    }

    fn queue_enabled(&mut self) -> bool {
        files::queue_enabled()
    }

    fn queue_post(&mut self, id: &str, sealed: &[u8]) -> Result<(), core_p::FileError> {
        files::queue_post(id, sealed).map_err(file_error)
    }

    fn queue_take(&mut self) -> Result<Vec<(String, Vec<u8>)>, core_p::FileError> {
        files::queue_take().map_err(file_error)
    }

    fn queue_settle(&mut self, id: &str, receipt: Option<&[u8]>) -> Result<(), core_p::FileError> {
        files::queue_settle(id, receipt).map_err(file_error)
    }

    fn queue_collect(
        &mut self,
        id: &str,
        acknowledged_only: bool,
    ) -> Result<core_p::Queued, core_p::FileError> {
        Ok(
            match files::queue_collect(id, acknowledged_only).map_err(file_error)? {
                files::Queued::Acknowledged(receipt) => core_p::Queued::Acknowledged(receipt),
                files::Queued::Posted => core_p::Queued::Posted,
                files::Queued::Claimed => core_p::Queued::Claimed,
                files::Queued::Absent => core_p::Queued::Absent,
            },
        )
    }

    fn queue_withdraw(&mut self, id: &str) -> Result<bool, core_p::FileError> {
        files::queue_withdraw(id).map_err(file_error)
    }

    fn unlock(
        &mut self,
        key_id: &[u8],
        slots: &[core_p::KeySlot],
    ) -> Result<Key, core_p::KeyError> {
        let slots: Vec<sealing::KeySlot> = slots.iter().map(slot_out).collect();
        sealing::unlock(key_id, &slots).map(Key).map_err(key_error)
    }

    fn create_key(&mut self) -> Result<Key, core_p::KeyError> {
        sealing::create().map(Key).map_err(key_error)
    }

    fn rekey(&mut self, slots: &[core_p::KeySlot]) -> Result<Key, core_p::KeyError> {
        let slots: Vec<sealing::KeySlot> = slots.iter().map(slot_out).collect();
        sealing::rekey(&slots).map(Key).map_err(key_error)
    }

    fn post(
        &mut self,
        r: &core_p::TokenRequest,
    ) -> Result<core_p::HttpReply, core_p::TransportError> {
        let request = token_endpoint::TokenRequest {
            url: r.url.clone(),
            body: r.body.clone(),
            authorization: r.authorization.clone(),
            timeout_ms: r.timeout_ms,
        };
        match token_endpoint::post(&request) {
            Ok(reply) => Ok(core_p::HttpReply {
                status: reply.status,
                content_type: reply.content_type,
                body: reply.body,
            }),
            Err(e) => Err(match e {
                token_endpoint::TransportError::BadUrl(d) => core_p::TransportError::BadUrl(d),
                token_endpoint::TransportError::Connect(d) => core_p::TransportError::Connect(d),
                token_endpoint::TransportError::Timeout => core_p::TransportError::Timeout,
                token_endpoint::TransportError::Interrupted(d) => {
                    core_p::TransportError::Interrupted(d)
                }
                token_endpoint::TransportError::ReplyTooLarge => {
                    core_p::TransportError::ReplyTooLarge
                }
            }),
        }
    }

    fn wall_ms(&mut self) -> u64 {
        clock::wall_ms()
    }

    fn monotonic_ms(&mut self) -> u64 {
        clock::monotonic_ms()
    }

    fn fill_random(&mut self, buf: &mut [u8]) {
        let bytes = random::fill(buf.len() as u32);
        // The WIT requires exactly `len` bytes; anything else is a host bug, so trap.
        assert_eq!(
            bytes.len(),
            buf.len(),
            "host random returned the wrong length"
        );
        buf.copy_from_slice(&bytes);
    }
}

fn options(o: api::Options) -> credlock_core::Options {
    credlock_core::Options {
        lock_timeout_ms: o.lock_timeout_ms,
        http_timeout_ms: o.http_timeout_ms,
        allow_insecure_http: o.allow_insecure_http,
    }
}

fn with_store<R>(
    o: api::Options,
    f: impl FnOnce(&mut credlock_core::Store<'_, Imports>) -> Result<R, StoreError>,
) -> Result<R, api::StoreError> {
    let mut imports = Imports;
    let mut store = credlock_core::Store::new(&mut imports, options(o)).map_err(store_error)?;
    f(&mut store).map_err(store_error)
}

fn store_error(e: StoreError) -> api::StoreError {
    use api::StoreError as W;
    match e {
        StoreError::InvalidTenant(d) => W::InvalidTenant(d),
        StoreError::InvalidTokenResponse(d) => W::InvalidTokenResponse(d),
        StoreError::InvalidOptions(d) => W::InvalidOptions(d),
        StoreError::InvalidAttachment(d) => W::InvalidAttachment(d),
        StoreError::NotFound(t) => W::NotFound(t),
        StoreError::Expired(t) => W::Expired(t),
        StoreError::ReauthNeeded(t) => W::ReauthNeeded(t),
        StoreError::RefreshOutcomeUnknown(t) => W::RefreshOutcomeUnknown(t),
        StoreError::Endpoint(e) => W::Endpoint(endpoint_error_out(e)),
        StoreError::LockTimeout { lock, waited_ms } => {
            W::LockTimeout(api::LockTimeout { lock, waited_ms })
        }
        StoreError::RefreshContended(t) => W::RefreshContended(t),
        StoreError::Io(core_p::FileError::Io(io)) => W::Io(files::FileError::Io(io_error_out(io))),
        StoreError::Io(core_p::FileError::TooLarge(n)) => W::Io(files::FileError::TooLarge(n)),
        StoreError::Key(k) => W::Key(key_error_out(k)),
        StoreError::NotAStore(d) => W::NotAStore(d),
        StoreError::UnsupportedVersion(v) => W::UnsupportedVersion(v),
        StoreError::Corrupt(d) => W::Corrupt(d),
        StoreError::SlotChange(e) => W::SlotChange(match e {
            credlock_core::SlotChangeError::NoSuchSlot(i) => api::SlotChangeError::NoSuchSlot(i),
            credlock_core::SlotChangeError::LastSlot => api::SlotChangeError::LastSlot,
            credlock_core::SlotChangeError::OnlyVolatileLeft(k) => {
                api::SlotChangeError::OnlyVolatileLeft(k)
            }
            credlock_core::SlotChangeError::TooManySlots(n) => {
                api::SlotChangeError::TooManySlots(n)
            }
        }),
        StoreError::Recover(e) => W::Recover(match e {
            credlock_core::RecoverError::StoreReadable => api::RecoverError::StoreReadable,
            credlock_core::RecoverError::NoBackup => api::RecoverError::NoBackup,
            credlock_core::RecoverError::TenantRecords => api::RecoverError::TenantRecords,
            credlock_core::RecoverError::BackupUnreadable(d) => {
                api::RecoverError::BackupUnreadable(d)
            }
        }),
        StoreError::ImportConflict(names) => W::ImportConflict(names),
        StoreError::Login(e) => W::Login(login::error_out(e)),
        // StoreError is non_exhaustive for other crates; a new variant must be added to the
        // WIT first, so reaching this is a build that forgot to.
        #[allow(unreachable_patterns)]
        other => W::Corrupt(format!("unmapped error: {other}")),
    }
}

fn access_token(t: credlock_core::AccessToken) -> api::AccessToken {
    api::AccessToken {
        token: t.token,
        token_type: t.token_type,
        expires_at_ms: t.expires_at_ms,
        revision: t.revision,
        refreshed: t.refreshed,
    }
}

fn store_info(i: credlock_core::StoreInfo) -> api::StoreInfo {
    api::StoreInfo {
        exists: i.exists,
        generation: i.generation,
        format_version: i.format_version,
        key_id: i.key_id,
        slot_kinds: i.slot_kinds,
        tenants: i.tenants,
    }
}

impl api::Guest for Component {
    fn init(opts: api::Options) -> Result<bool, api::StoreError> {
        with_store(opts, |s| s.init())
    }

    fn put(
        opts: api::Options,
        tenant: String,
        token_response: String,
    ) -> Result<api::WriteReceipt, api::StoreError> {
        with_store(opts, |s| s.put(&tenant, &token_response)).map(|r| api::WriteReceipt {
            revision: r.revision,
            generation: r.generation,
        })
    }

    fn token(
        opts: api::Options,
        tenant: String,
        min_valid_ms: u64,
    ) -> Result<api::AccessToken, api::StoreError> {
        with_store(opts, |s| s.token(&tenant, min_valid_ms)).map(access_token)
    }

    fn refresh(
        opts: api::Options,
        tenant: String,
        rejected: Option<String>,
    ) -> Result<api::AccessToken, api::StoreError> {
        with_store(opts, |s| s.refresh(&tenant, rejected.as_deref())).map(access_token)
    }

    fn list(opts: api::Options) -> Result<Vec<api::TenantSummary>, api::StoreError> {
        with_store(opts, |s| s.list()).map(|v| {
            v.into_iter()
                .map(|t| api::TenantSummary {
                    tenant: t.tenant,
                    token_type: t.token_type,
                    expires_at_ms: t.expires_at_ms,
                    has_refresh_token: t.has_refresh_token,
                    scope: t.scope,
                    token_endpoint: t.token_endpoint,
                    client_id: t.client_id,
                    revision: t.revision,
                    needs_reauth: t.needs_reauth,
                    refresh_intent: t.refresh_intent,
                })
                .collect()
        })
    }

    fn delete(opts: api::Options, tenant: String) -> Result<bool, api::StoreError> {
        with_store(opts, |s| s.delete(&tenant))
    }

    fn attachment(
        opts: api::Options,
        tenant: String,
        name: String,
    ) -> Result<Option<String>, api::StoreError> {
        with_store(opts, |s| s.attachment(&tenant, &name))
    }

    fn set_attachment(
        opts: api::Options,
        tenant: String,
        name: String,
        value: Option<String>,
    ) -> Result<api::WriteReceipt, api::StoreError> {
        with_store(opts, |s| s.set_attachment(&tenant, &name, value.as_deref())).map(|r| {
            api::WriteReceipt {
                revision: r.revision,
                generation: r.generation,
            }
        })
    }

    fn info(opts: api::Options) -> Result<api::StoreInfo, api::StoreError> {
        with_store(opts, |s| s.info()).map(store_info)
    }

    fn slots(opts: api::Options) -> Result<Vec<sealing::KeySlot>, api::StoreError> {
        with_store(opts, |s| s.slots()).map(|v| v.iter().map(slot_out).collect())
    }

    fn add_slot(
        opts: api::Options,
        kind: String,
    ) -> Result<Vec<sealing::KeySlot>, api::StoreError> {
        with_store(opts, |s| s.add_slot(&kind)).map(|v| v.iter().map(slot_out).collect())
    }

    fn remove_slot(
        opts: api::Options,
        index: u32,
        allow_volatile_only: bool,
    ) -> Result<Vec<sealing::KeySlot>, api::StoreError> {
        with_store(opts, |s| s.remove_slot(index, allow_volatile_only))
            .map(|v| v.iter().map(slot_out).collect())
    }

    fn rekey(opts: api::Options) -> Result<api::StoreInfo, api::StoreError> {
        with_store(opts, |s| s.rekey()).map(store_info)
    }

    fn import_tokens(
        opts: api::Options,
        source: String,
        tenant: Option<String>,
        how: api::ImportOptions,
    ) -> Result<api::ImportReport, api::StoreError> {
        let how = credlock_core::ImportOptions {
            replace: how.replace,
            kind: how.kind,
            account: how.account,
            saved_at_ms: how.saved_at_ms,
        };
        with_store(opts, |s| s.import_tokens(&source, tenant.as_deref(), &how)).map(|r| {
            api::ImportReport {
                imported: r.imported,
                skipped: r.skipped,
                generation: r.generation,
            }
        })
    }

    fn recover(opts: api::Options, force: bool) -> Result<api::RecoverReport, api::StoreError> {
        with_store(opts, |s| s.recover(force)).map(|r| api::RecoverReport {
            quarantined_as: r.quarantined_as,
            generation: r.generation,
            tenants: r.tenants,
            refresh_unknown: r.refresh_unknown,
        })
    }

    fn quarantine(opts: api::Options, force: bool) -> Result<String, api::StoreError> {
        with_store(opts, |s| s.quarantine(force))
    }

    fn export_sealed(opts: api::Options) -> Result<Option<Vec<u8>>, api::StoreError> {
        with_store(opts, |s| s.export_sealed())
    }

    fn adopt_sealed(
        opts: api::Options,
        sealed: Vec<u8>,
    ) -> Result<api::StoreInfo, api::StoreError> {
        with_store(opts, |s| s.adopt_sealed(&sealed)).map(store_info)
    }

    fn login(
        opts: api::Options,
        tenant: String,
        request: api::LoginRequest,
    ) -> Result<api::LoginResult, api::StoreError> {
        let request = login::request_in(request);
        with_store(opts, |s| s.login(&tenant, &request)).map(|o| api::LoginResult {
            token: access_token(o.token),
            joined: o.joined,
            refreshable: o.refreshable,
        })
    }

    fn logout(
        opts: api::Options,
        tenant: String,
        local: bool,
    ) -> Result<api::LogoutReport, api::StoreError> {
        with_store(opts, |s| s.logout(&tenant, local)).map(|r| api::LogoutReport {
            revocation: login::revocation_out(r.revocation),
            deleted: r.deleted,
        })
    }

    fn pending_logins(opts: api::Options) -> Result<Vec<api::PendingLogin>, api::StoreError> {
        with_store(opts, |s| s.pending_logins()).map(|v| {
            v.into_iter()
                .map(|p| api::PendingLogin {
                    tenant: p.tenant,
                    kind: p.kind,
                    started_at_ms: p.started_at_ms,
                    expires_at_ms: p.expires_at_ms,
                    understood: p.understood,
                })
                .collect()
        })
    }
}

/// The core's endpoint error as the WIT's (for `store-error` and `login-error`).
pub(crate) fn endpoint_error_out(e: credlock_core::EndpointError) -> api::EndpointError {
    match e {
        credlock_core::EndpointError::OAuth {
            status,
            error,
            description,
        } => api::EndpointError::Oauth(api::OauthError {
            status,
            error,
            error_description: description,
        }),
        credlock_core::EndpointError::Server(s) => api::EndpointError::Server(s),
        credlock_core::EndpointError::MalformedReply(d) => api::EndpointError::MalformedReply(d),
        credlock_core::EndpointError::Transport(t) => api::EndpointError::Transport(match t {
            core_p::TransportError::BadUrl(d) => token_endpoint::TransportError::BadUrl(d),
            core_p::TransportError::Connect(d) => token_endpoint::TransportError::Connect(d),
            core_p::TransportError::Timeout => token_endpoint::TransportError::Timeout,
            core_p::TransportError::Interrupted(d) => {
                token_endpoint::TransportError::Interrupted(d)
            }
            core_p::TransportError::ReplyTooLarge => token_endpoint::TransportError::ReplyTooLarge,
        }),
    }
}
