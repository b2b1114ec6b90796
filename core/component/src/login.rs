//! The login imports and exports: type conversions only, like the rest of this crate.

use crate::bindings::credlock::store::login as wit;
use crate::bindings::credlock::store::token_endpoint;
use crate::bindings::exports::credlock::store::store as api;
use crate::Imports;
use credlock_core::login::{LoginFlow, LoginRequest, Revocation};
use credlock_core::platform as core_p;
use credlock_core::LoginError;

pub(crate) fn transport_in(e: token_endpoint::TransportError) -> core_p::TransportError {
    match e {
        token_endpoint::TransportError::BadUrl(d) => core_p::TransportError::BadUrl(d),
        token_endpoint::TransportError::Connect(d) => core_p::TransportError::Connect(d),
        token_endpoint::TransportError::Timeout => core_p::TransportError::Timeout,
        token_endpoint::TransportError::Interrupted(d) => core_p::TransportError::Interrupted(d),
        token_endpoint::TransportError::ReplyTooLarge => core_p::TransportError::ReplyTooLarge,
    }
}

impl core_p::LoginPlatform for Imports {
    fn get(
        &mut self,
        url: &str,
        timeout_ms: u32,
    ) -> Result<core_p::HttpReply, core_p::TransportError> {
        wit::get(url, timeout_ms)
            .map(|r| core_p::HttpReply {
                status: r.status,
                content_type: r.content_type,
                body: r.body,
            })
            .map_err(transport_in)
    }

    fn sleep_ms(&mut self, ms: u32) {
        wit::sleep(ms)
    }

    fn show(&mut self, p: &core_p::LoginPrompt) {
        wit::show(&wit::Prompt {
            kind: p.kind.clone(),
            url: p.url.clone(),
            user_code: p.user_code.clone(),
            url_complete: p.url_complete.clone(),
            expires_at_ms: p.expires_at_ms,
            joined: p.joined,
        })
    }

    fn listen(&mut self) -> Result<u16, String> {
        wit::listen()
    }

    fn accept_callback(
        &mut self,
        state: &str,
        timeout_ms: u32,
    ) -> Result<core_p::CallbackQuery, String> {
        wit::accept_callback(state, timeout_ms).map(core_p::CallbackQuery)
    }

    fn open_browser(&mut self, url: &str) -> bool {
        wit::open_browser(url)
    }
}

pub(crate) fn request_in(r: api::LoginRequest) -> LoginRequest {
    LoginRequest {
        issuer: r.issuer,
        client_id: r.client_id,
        client_secret: r.client_secret,
        scope: r.scope,
        flow: match r.flow {
            api::LoginFlow::Device => LoginFlow::Device,
            api::LoginFlow::Browser(open) => LoginFlow::Browser { open },
        },
        audience: r.audience,
        resource: r.resource,
        authorization_endpoint: r.authorization_endpoint,
        token_endpoint: r.token_endpoint,
        device_authorization_endpoint: r.device_authorization_endpoint,
        revocation_endpoint: r.revocation_endpoint,
    }
}

pub(crate) fn revocation_out(r: Revocation) -> api::Revocation {
    match r {
        Revocation::Revoked => api::Revocation::Revoked,
        Revocation::NotOffered => api::Revocation::NotOffered,
        Revocation::Failed(why) => api::Revocation::Failed(why),
    }
}

pub(crate) fn error_out(e: LoginError) -> api::LoginError {
    use api::LoginError as W;
    match e {
        LoginError::Metadata(d) => W::Metadata(d),
        LoginError::InsecureEndpoint(d) => W::InsecureEndpoint(d),
        LoginError::AccessDenied => W::AccessDenied,
        LoginError::Expired(t) => W::Expired(t),
        LoginError::Pending(t) => W::Pending(t),
        LoginError::JoinedFailed(t) => W::JoinedFailed(t),
        LoginError::Superseded(t) => W::Superseded(t),
        LoginError::RevocationFailed(d) => W::RevocationFailed(d),
        LoginError::Callback(d) => W::Callback(d),
        LoginError::Unsupported(d) => W::Unsupported(d),
        LoginError::IssuerMismatch(d) => W::IssuerMismatch(d),
        LoginError::Endpoint { endpoint, error } => W::Endpoint(api::LoginEndpointFailure {
            endpoint,
            error: crate::endpoint_error_out(error),
        }),
    }
}
