//! Every conversion between a WIT type and the core's, once, as `From` impls.
//!
//! Import direction: the guest's arguments become the core's types for the platform, and the
//! platform's answers become WIT types. Export direction: the host's arguments become WIT
//! types for the component, and its answers (values and `store-error`) become the core's, so
//! that the host reports them, and the simulator judges them, with the core's own code.
//! Each `match` names every case on both sides: a new WIT case fails to compile here until it
//! is converted, in both directions.

use crate::{api, files, locks, login, sealing, token_endpoint, types};
use credlock_core::login::{
    LoginFlow, LoginOutcome, LoginRequest, LogoutReport, PendingSummary, Revocation,
};
use credlock_core::platform as core_p;
use credlock_core::{
    AccessToken, EndpointError, ImportOptions, ImportReport, LoginError, Options, RecoverError,
    RecoverReport, SlotChangeError, StoreError, StoreInfo, TenantSummary, WriteReceipt,
};

// ----- the platform's types (imports, and the errors they carry into store-error) -----

impl From<core_p::IoError> for types::IoError {
    fn from(e: core_p::IoError) -> Self {
        use core_p::IoError as C;
        match e {
            C::NotARegularFile(d) => Self::NotARegularFile(d),
            C::PermissionDenied(d) => Self::PermissionDenied(d),
            C::NoSpace(d) => Self::NoSpace(d),
            C::UnsafePermissions(d) => Self::UnsafePermissions(d),
            C::OtherLockProtocol(d) => Self::OtherLockProtocol(d),
            C::Unreachable(d) => Self::Unreachable(d),
            C::Fenced(d) => Self::Fenced(d),
            C::AuthFailed(d) => Self::AuthFailed(d),
            C::Other(d) => Self::Other(d),
        }
    }
}

impl From<types::IoError> for core_p::IoError {
    fn from(e: types::IoError) -> Self {
        use types::IoError as W;
        match e {
            W::NotARegularFile(d) => Self::NotARegularFile(d),
            W::PermissionDenied(d) => Self::PermissionDenied(d),
            W::NoSpace(d) => Self::NoSpace(d),
            W::UnsafePermissions(d) => Self::UnsafePermissions(d),
            W::OtherLockProtocol(d) => Self::OtherLockProtocol(d),
            W::Unreachable(d) => Self::Unreachable(d),
            W::Fenced(d) => Self::Fenced(d),
            W::AuthFailed(d) => Self::AuthFailed(d),
            W::Other(d) => Self::Other(d),
        }
    }
}

impl From<core_p::Queued> for files::Queued {
    fn from(q: core_p::Queued) -> Self {
        match q {
            core_p::Queued::Acknowledged(receipt) => Self::Acknowledged(receipt),
            core_p::Queued::Posted => Self::Posted,
            core_p::Queued::Claimed => Self::Claimed,
            core_p::Queued::Absent => Self::Absent,
        }
    }
}

impl From<core_p::FileError> for files::FileError {
    fn from(e: core_p::FileError) -> Self {
        match e {
            core_p::FileError::Io(io) => Self::Io(io.into()),
            core_p::FileError::TooLarge(n) => Self::TooLarge(n),
        }
    }
}

impl From<files::FileError> for core_p::FileError {
    fn from(e: files::FileError) -> Self {
        match e {
            files::FileError::Io(io) => Self::Io(io.into()),
            files::FileError::TooLarge(n) => Self::TooLarge(n),
        }
    }
}

impl From<core_p::KeyError> for sealing::KeyError {
    fn from(e: core_p::KeyError) -> Self {
        use core_p::KeyError as C;
        match e {
            C::NoKeySource => Self::NoKeySource,
            C::NoMatchingSlot(k) => Self::NoMatchingSlot(k),
            C::WrongPassphrase => Self::WrongPassphrase,
            C::WrongKeyFile => Self::WrongKeyFile,
            C::MalformedSlot(d) => Self::MalformedSlot(d),
            C::Io(io) => Self::Io(io.into()),
            C::KeyringEntryMissing {
                backend,
                other_slots,
            } => Self::KeyringEntryMissing(sealing::KeyringMissing {
                backend,
                other_slots,
            }),
            C::Keyring(d) => Self::Keyring(d),
            C::SlotUnavailable(d) => Self::SlotUnavailable(d),
        }
    }
}

impl From<sealing::KeyError> for core_p::KeyError {
    fn from(e: sealing::KeyError) -> Self {
        use sealing::KeyError as W;
        match e {
            W::NoKeySource => Self::NoKeySource,
            W::NoMatchingSlot(k) => Self::NoMatchingSlot(k),
            W::WrongPassphrase => Self::WrongPassphrase,
            W::WrongKeyFile => Self::WrongKeyFile,
            W::MalformedSlot(d) => Self::MalformedSlot(d),
            W::Io(io) => Self::Io(io.into()),
            W::KeyringEntryMissing(m) => Self::KeyringEntryMissing {
                backend: m.backend,
                other_slots: m.other_slots,
            },
            W::Keyring(d) => Self::Keyring(d),
            W::SlotUnavailable(d) => Self::SlotUnavailable(d),
        }
    }
}

impl From<core_p::SealError> for sealing::SealError {
    fn from(e: core_p::SealError) -> Self {
        match e {
            core_p::SealError::BadNonce => Self::BadNonce,
            core_p::SealError::AuthenticationFailed => Self::AuthenticationFailed,
        }
    }
}

impl From<sealing::KeySlot> for core_p::KeySlot {
    fn from(s: sealing::KeySlot) -> Self {
        Self {
            kind: s.kind,
            data: s.data,
        }
    }
}

impl From<core_p::KeySlot> for sealing::KeySlot {
    fn from(s: core_p::KeySlot) -> Self {
        Self {
            kind: s.kind,
            data: s.data,
        }
    }
}

impl From<files::StoreFile> for core_p::StoreFile {
    fn from(f: files::StoreFile) -> Self {
        match f {
            files::StoreFile::Store => Self::Store,
            files::StoreFile::Backup => Self::Backup,
        }
    }
}

impl From<core_p::Layout> for files::Layout {
    fn from(l: core_p::Layout) -> Self {
        match l {
            core_p::Layout::Blob => Self::Blob,
            core_p::Layout::Records => Self::Records,
        }
    }
}

impl From<files::RecordWrite> for core_p::RecordWrite {
    fn from(r: files::RecordWrite) -> Self {
        Self {
            id: r.id,
            sealed: r.sealed,
        }
    }
}

impl From<locks::LockMode> for core_p::LockMode {
    fn from(m: locks::LockMode) -> Self {
        match m {
            locks::LockMode::Shared => Self::Shared,
            locks::LockMode::Exclusive => Self::Exclusive,
        }
    }
}

/// The target as the guest named it; whether a refresh lock's id may reach the platform is
/// the host's check ([`crate::Hooks::check_refresh_id`]).
impl From<locks::LockTarget> for core_p::LockTarget {
    fn from(t: locks::LockTarget) -> Self {
        match t {
            locks::LockTarget::Store => Self::Store,
            locks::LockTarget::Refresh(id) => Self::Refresh(id),
        }
    }
}

impl From<core_p::LockError> for locks::LockError {
    fn from(e: core_p::LockError) -> Self {
        match e {
            core_p::LockError::Timeout(ms) => Self::Timeout(ms),
            core_p::LockError::Io(io) => Self::Io(io.into()),
        }
    }
}

impl From<token_endpoint::TokenRequest> for core_p::TokenRequest {
    fn from(r: token_endpoint::TokenRequest) -> Self {
        Self {
            url: r.url,
            body: r.body,
            authorization: r.authorization,
            timeout_ms: r.timeout_ms,
        }
    }
}

impl From<core_p::HttpReply> for token_endpoint::HttpReply {
    fn from(r: core_p::HttpReply) -> Self {
        Self {
            status: r.status,
            content_type: r.content_type,
            body: r.body,
        }
    }
}

impl From<core_p::TransportError> for token_endpoint::TransportError {
    fn from(e: core_p::TransportError) -> Self {
        use core_p::TransportError as C;
        match e {
            C::BadUrl(d) => Self::BadUrl(d),
            C::Connect(d) => Self::Connect(d),
            C::Timeout => Self::Timeout,
            C::Interrupted(d) => Self::Interrupted(d),
            C::ReplyTooLarge => Self::ReplyTooLarge,
        }
    }
}

impl From<token_endpoint::TransportError> for core_p::TransportError {
    fn from(e: token_endpoint::TransportError) -> Self {
        use token_endpoint::TransportError as W;
        match e {
            W::BadUrl(d) => Self::BadUrl(d),
            W::Connect(d) => Self::Connect(d),
            W::Timeout => Self::Timeout,
            W::Interrupted(d) => Self::Interrupted(d),
            W::ReplyTooLarge => Self::ReplyTooLarge,
        }
    }
}

impl From<login::Prompt> for core_p::LoginPrompt {
    fn from(p: login::Prompt) -> Self {
        Self {
            kind: p.kind,
            url: p.url,
            user_code: p.user_code,
            url_complete: p.url_complete,
            expires_at_ms: p.expires_at_ms,
            joined: p.joined,
        }
    }
}

// ----- the store's exports: arguments out, answers and errors in -----

impl From<&Options> for api::Options {
    fn from(o: &Options) -> Self {
        Self {
            lock_timeout_ms: o.lock_timeout_ms,
            http_timeout_ms: o.http_timeout_ms,
            allow_insecure_http: o.allow_insecure_http,
        }
    }
}

impl From<&ImportOptions> for api::ImportOptions {
    fn from(how: &ImportOptions) -> Self {
        Self {
            replace: how.replace,
            kind: how.kind.clone(),
            account: how.account.clone(),
            saved_at_ms: how.saved_at_ms,
        }
    }
}

impl From<&LoginRequest> for api::LoginRequest {
    fn from(r: &LoginRequest) -> Self {
        Self {
            issuer: r.issuer.clone(),
            client_id: r.client_id.clone(),
            client_secret: r.client_secret.clone(),
            scope: r.scope.clone(),
            flow: match r.flow {
                LoginFlow::Device => api::LoginFlow::Device,
                LoginFlow::Browser { open } => api::LoginFlow::Browser(open),
            },
            audience: r.audience.clone(),
            resource: r.resource.clone(),
            authorization_endpoint: r.authorization_endpoint.clone(),
            token_endpoint: r.token_endpoint.clone(),
            device_authorization_endpoint: r.device_authorization_endpoint.clone(),
            revocation_endpoint: r.revocation_endpoint.clone(),
        }
    }
}

impl From<api::AccessToken> for AccessToken {
    fn from(t: api::AccessToken) -> Self {
        Self {
            token: t.token,
            token_type: t.token_type,
            expires_at_ms: t.expires_at_ms,
            revision: t.revision,
            refreshed: t.refreshed,
        }
    }
}

impl From<api::WriteReceipt> for WriteReceipt {
    fn from(r: api::WriteReceipt) -> Self {
        Self {
            revision: r.revision,
            generation: r.generation,
        }
    }
}

impl From<api::TenantSummary> for TenantSummary {
    fn from(t: api::TenantSummary) -> Self {
        Self {
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
        }
    }
}

impl From<api::StoreInfo> for StoreInfo {
    fn from(i: api::StoreInfo) -> Self {
        Self {
            exists: i.exists,
            generation: i.generation,
            format_version: i.format_version,
            key_id: i.key_id,
            slot_kinds: i.slot_kinds,
            tenants: i.tenants,
        }
    }
}

impl From<api::ImportReport> for ImportReport {
    fn from(r: api::ImportReport) -> Self {
        Self {
            imported: r.imported,
            skipped: r.skipped,
            generation: r.generation,
        }
    }
}

impl From<api::RecoverReport> for RecoverReport {
    fn from(r: api::RecoverReport) -> Self {
        Self {
            quarantined_as: r.quarantined_as,
            generation: r.generation,
            tenants: r.tenants,
            refresh_unknown: r.refresh_unknown,
        }
    }
}

impl From<api::LoginResult> for LoginOutcome {
    fn from(r: api::LoginResult) -> Self {
        Self {
            token: r.token.into(),
            joined: r.joined,
            refreshable: r.refreshable,
        }
    }
}

impl From<api::LogoutReport> for LogoutReport {
    fn from(r: api::LogoutReport) -> Self {
        Self {
            revocation: match r.revocation {
                api::Revocation::Revoked => Revocation::Revoked,
                api::Revocation::NotOffered => Revocation::NotOffered,
                api::Revocation::Failed(why) => Revocation::Failed(why),
            },
            deleted: r.deleted,
        }
    }
}

impl From<api::PendingLogin> for PendingSummary {
    fn from(p: api::PendingLogin) -> Self {
        Self {
            tenant: p.tenant,
            kind: p.kind,
            started_at_ms: p.started_at_ms,
            expires_at_ms: p.expires_at_ms,
            understood: p.understood,
        }
    }
}

/// The WIT's endpoint error as the core's (for `store-error` and `login-error`).
impl From<api::EndpointError> for EndpointError {
    fn from(e: api::EndpointError) -> Self {
        match e {
            api::EndpointError::Oauth(o) => Self::OAuth {
                status: o.status,
                error: o.error,
                description: o.error_description,
            },
            api::EndpointError::Server(s) => Self::Server(s),
            api::EndpointError::MalformedReply(d) => Self::MalformedReply(d),
            api::EndpointError::Transport(t) => Self::Transport(t.into()),
        }
    }
}

impl From<api::LoginError> for LoginError {
    fn from(e: api::LoginError) -> Self {
        use api::LoginError as W;
        match e {
            W::Metadata(d) => Self::Metadata(d),
            W::InsecureEndpoint(d) => Self::InsecureEndpoint(d),
            W::AccessDenied => Self::AccessDenied,
            W::Expired(t) => Self::Expired(t),
            W::Pending(t) => Self::Pending(t),
            W::JoinedFailed(t) => Self::JoinedFailed(t),
            W::Superseded(t) => Self::Superseded(t),
            W::RevocationFailed(d) => Self::RevocationFailed(d),
            W::Callback(d) => Self::Callback(d),
            W::Unsupported(d) => Self::Unsupported(d),
            W::IssuerMismatch(d) => Self::IssuerMismatch(d),
            W::Endpoint(f) => Self::Endpoint {
                endpoint: f.endpoint,
                error: f.error.into(),
            },
        }
    }
}

impl From<api::SlotChangeError> for SlotChangeError {
    fn from(e: api::SlotChangeError) -> Self {
        match e {
            api::SlotChangeError::NoSuchSlot(i) => Self::NoSuchSlot(i),
            api::SlotChangeError::LastSlot => Self::LastSlot,
            api::SlotChangeError::OnlyVolatileLeft(k) => Self::OnlyVolatileLeft(k),
            api::SlotChangeError::TooManySlots(n) => Self::TooManySlots(n),
        }
    }
}

impl From<api::RecoverError> for RecoverError {
    fn from(e: api::RecoverError) -> Self {
        match e {
            api::RecoverError::StoreReadable => Self::StoreReadable,
            api::RecoverError::NoBackup => Self::NoBackup,
            api::RecoverError::BackupUnreadable(d) => Self::BackupUnreadable(d),
            api::RecoverError::TenantRecords => Self::TenantRecords,
        }
    }
}

/// The component's `store-error` as the core's [`StoreError`], which knows how to describe
/// itself and what to recommend.
impl From<api::StoreError> for StoreError {
    fn from(e: api::StoreError) -> Self {
        use api::StoreError as W;
        match e {
            W::InvalidTenant(d) => Self::InvalidTenant(d),
            W::InvalidTokenResponse(d) => Self::InvalidTokenResponse(d),
            W::InvalidOptions(d) => Self::InvalidOptions(d),
            W::InvalidAttachment(d) => Self::InvalidAttachment(d),
            W::NotFound(t) => Self::NotFound(t),
            W::Expired(t) => Self::Expired(t),
            W::ReauthNeeded(t) => Self::ReauthNeeded(t),
            W::RefreshOutcomeUnknown(t) => Self::RefreshOutcomeUnknown(t),
            W::Endpoint(e) => Self::Endpoint(e.into()),
            W::LockTimeout(l) => Self::LockTimeout {
                lock: l.lock,
                waited_ms: l.waited_ms,
            },
            W::RefreshContended(t) => Self::RefreshContended(t),
            W::Io(e) => Self::Io(e.into()),
            W::Key(k) => Self::Key(k.into()),
            W::NotAStore(d) => Self::NotAStore(d),
            W::UnsupportedVersion(v) => Self::UnsupportedVersion(v),
            W::Corrupt(d) => Self::Corrupt(d),
            W::SlotChange(e) => Self::SlotChange(e.into()),
            W::Recover(e) => Self::Recover(e.into()),
            W::ImportConflict(names) => Self::ImportConflict(names),
            W::Login(e) => Self::Login(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variant's name in a `Debug` rendering (`IoError::Fenced("x")` and `Fenced("x")`
    /// both give `Fenced`), so a case mapped to a case of another name is caught.
    fn case<T: std::fmt::Debug>(v: &T) -> String {
        let d = format!("{v:?}");
        let head = d.split(['(', ' ', '{']).next().unwrap_or_default();
        head.rsplit("::").next().unwrap_or_default().to_owned()
    }

    fn io_cases() -> Vec<core_p::IoError> {
        use core_p::IoError as C;
        vec![
            C::NotARegularFile("a".into()),
            C::PermissionDenied("b".into()),
            C::NoSpace("c".into()),
            C::UnsafePermissions("d".into()),
            C::OtherLockProtocol("e".into()),
            C::Unreachable("f".into()),
            C::Fenced("g".into()),
            C::AuthFailed("h".into()),
            C::Other("i".into()),
        ]
    }

    #[test]
    fn io_errors_keep_their_case_and_detail_both_ways() {
        for e in io_cases() {
            let wit = types::IoError::from(e.clone());
            assert_eq!(case(&wit), case(&e));
            assert_eq!(core_p::IoError::from(wit), e);
        }
    }

    #[test]
    fn key_and_file_errors_keep_their_case_both_ways() {
        use core_p::KeyError as K;
        let mut keys = vec![
            K::NoKeySource,
            K::NoMatchingSlot(vec!["passphrase".into()]),
            K::WrongPassphrase,
            K::WrongKeyFile,
            K::MalformedSlot("m".into()),
            K::KeyringEntryMissing {
                backend: "secret-service".into(),
                other_slots: vec!["key-file".into()],
            },
            K::Keyring("k".into()),
            K::SlotUnavailable("s".into()),
        ];
        keys.extend(io_cases().into_iter().map(K::Io));
        for e in keys {
            let wit = sealing::KeyError::from(e.clone());
            assert_eq!(case(&wit), case(&e));
            assert_eq!(core_p::KeyError::from(wit), e);
        }
        let mut file = vec![core_p::FileError::TooLarge(7)];
        file.extend(io_cases().into_iter().map(core_p::FileError::Io));
        for e in file {
            let wit = files::FileError::from(e.clone());
            assert_eq!(case(&wit), case(&e));
            assert_eq!(core_p::FileError::from(wit), e);
        }
    }

    #[test]
    fn transport_errors_keep_their_case_both_ways() {
        use core_p::TransportError as T;
        for e in [
            T::BadUrl("u".into()),
            T::Connect("c".into()),
            T::Timeout,
            T::Interrupted("i".into()),
            T::ReplyTooLarge,
        ] {
            let wit = token_endpoint::TransportError::from(e.clone());
            assert_eq!(case(&wit), case(&e));
            assert_eq!(core_p::TransportError::from(wit), e);
        }
    }

    #[test]
    fn store_errors_arrive_as_the_core_case_of_the_same_name() {
        use api::StoreError as W;
        let endpoint = || api::EndpointError::Server(503);
        let cases = vec![
            W::InvalidTenant("t".into()),
            W::InvalidTokenResponse("r".into()),
            W::InvalidOptions("o".into()),
            W::InvalidAttachment("a".into()),
            W::NotFound("t".into()),
            W::Expired("t".into()),
            W::ReauthNeeded("t".into()),
            W::RefreshOutcomeUnknown("t".into()),
            W::Endpoint(endpoint()),
            W::LockTimeout(api::LockTimeout {
                lock: "store".into(),
                waited_ms: 5,
            }),
            W::RefreshContended("t".into()),
            W::Io(files::FileError::TooLarge(1)),
            W::Key(sealing::KeyError::WrongPassphrase),
            W::NotAStore("n".into()),
            W::UnsupportedVersion(9),
            W::Corrupt("c".into()),
            W::SlotChange(api::SlotChangeError::LastSlot),
            W::Recover(api::RecoverError::NoBackup),
            W::ImportConflict(vec!["t".into()]),
            W::Login(api::LoginError::AccessDenied),
        ];
        for wit in cases {
            let name = case(&wit);
            assert_eq!(case(&StoreError::from(wit)), name);
        }
        let login = LoginError::from(api::LoginError::Endpoint(api::LoginEndpointFailure {
            endpoint: "token".into(),
            error: endpoint(),
        }));
        assert_eq!(
            login,
            LoginError::Endpoint {
                endpoint: "token".into(),
                error: EndpointError::Server(503),
            }
        );
    }
}
