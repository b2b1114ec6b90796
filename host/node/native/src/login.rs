//! `loginAsync` and `logout`: conversions only. A login waits for the user
//! for minutes, so it exists only on the libuv pool; its prompt reaches JavaScript through a
//! thread-safe function, called on the event loop while the login waits off it.

use crate::{tenant, to_napi, AccessToken, CResult, NativeStore, StoreTask};
use napi::bindgen_prelude::{AsyncTask, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

/// What the user must see to finish a login.
#[napi(object)]
pub struct LoginPrompt {
    /// `device` or `browser`.
    pub kind: String,
    /// The verification URI (device flow) or the authorization URL (browser flow).
    pub url: String,
    pub user_code: Option<String>,
    pub url_complete: Option<String>,
    pub expires_at_ms: f64,
    /// This process joined a login another process started.
    pub joined: bool,
}

#[napi(object)]
pub struct LoginOptions {
    pub issuer: Option<String>,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub scope: Option<String>,
    /// `device` (default) or `browser`.
    pub flow: Option<String>,
    /// Browser flow: open the browser (default true); false only shows the URL.
    pub open_browser: Option<bool>,
    pub audience: Option<String>,
    pub resource: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub device_authorization_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
}

#[napi(object)]
pub struct LoginResult {
    pub token: AccessToken,
    pub joined: bool,
    /// The stored tokens include a refresh token.
    pub refreshable: bool,
}

#[napi(object)]
pub struct LogoutReport {
    /// `revoked`, `not-offered` or `failed` (only with `local`).
    pub revocation: String,
    pub revocation_error: Option<String>,
    pub deleted: bool,
}

#[napi(object)]
pub struct PendingLogin {
    pub tenant: String,
    pub kind: String,
    pub started_at_ms: f64,
    pub expires_at_ms: f64,
    pub understood: bool,
}

type PromptFn = ThreadsafeFunction<LoginPrompt, Unknown<'static>, LoginPrompt, napi::Status, false>;

fn request(o: LoginOptions) -> CResult<credlock::LoginRequest> {
    let flow = match o.flow.as_deref() {
        None | Some("device") => credlock::LoginFlow::Device,
        Some("browser") => credlock::LoginFlow::Browser {
            open: o.open_browser.unwrap_or(true),
        },
        Some(_) => {
            return Err(crate::invalid_options(
                "flow must be \"device\" or \"browser\"",
            ))
        }
    };
    Ok(credlock::LoginRequest {
        issuer: o.issuer,
        client_id: o.client_id,
        client_secret: o.client_secret,
        scope: o.scope,
        flow,
        audience: o.audience,
        resource: o.resource,
        authorization_endpoint: o.authorization_endpoint,
        token_endpoint: o.token_endpoint,
        device_authorization_endpoint: o.device_authorization_endpoint,
        revocation_endpoint: o.revocation_endpoint,
    })
}

fn logout_report(r: credlock::LogoutReport) -> LogoutReport {
    let (revocation, revocation_error) = match r.revocation {
        credlock::Revocation::Revoked => ("revoked", None),
        credlock::Revocation::NotOffered => ("not-offered", None),
        credlock::Revocation::Failed(why) => ("failed", Some(why)),
    };
    LogoutReport {
        revocation: revocation.to_owned(),
        revocation_error,
        deleted: r.deleted,
    }
}

#[napi]
impl NativeStore {
    /// Log `tenant` in (or join the login in progress for it); `on_prompt` gets the code or
    /// URL to show (without it, standard error does).
    #[napi(ts_return_type = "Promise<LoginResult>")]
    pub fn login_async(
        &self,
        tenant: serde_json::Value,
        options: LoginOptions,
        #[napi(ts_arg_type = "((prompt: LoginPrompt) => void) | undefined | null")]
        on_prompt: Option<PromptFn>,
    ) -> AsyncTask<StoreTask<LoginResult>> {
        let request = request(options);
        let sink = on_prompt.map(|f| -> credlock::login::PromptSink {
            std::sync::Arc::new(move |p: &credlock::LoginPrompt| {
                f.call(
                    LoginPrompt {
                        kind: p.kind.clone(),
                        url: p.url.clone(),
                        user_code: p.user_code.clone(),
                        url_complete: p.url_complete.clone(),
                        expires_at_ms: p.expires_at_ms as f64,
                        joined: p.joined,
                    },
                    ThreadsafeFunctionCallMode::NonBlocking,
                );
            })
        });
        self.spawn(move |s| {
            let o = s.login(self::tenant(&tenant)?, &request?, sink)?;
            Ok(LoginResult {
                token: o.token.into(),
                joined: o.joined,
                refreshable: o.refreshable,
            })
        })
    }

    #[napi]
    pub fn logout(
        &self,
        tenant: serde_json::Value,
        local: Option<bool>,
    ) -> napi::Result<LogoutReport> {
        let s = self.store()?;
        to_napi((|| {
            Ok(logout_report(
                s.logout(self::tenant(&tenant)?, local.unwrap_or(false))?,
            ))
        })())
    }

    #[napi(ts_return_type = "Promise<LogoutReport>")]
    pub fn logout_async(
        &self,
        tenant: serde_json::Value,
        local: Option<bool>,
    ) -> AsyncTask<StoreTask<LogoutReport>> {
        self.spawn(move |s| {
            Ok(logout_report(
                s.logout(self::tenant(&tenant)?, local.unwrap_or(false))?,
            ))
        })
    }
}

/// A login in progress, as `pendingLogins` lists it (never a code or verifier).
impl From<credlock::PendingSummary> for PendingLogin {
    fn from(p: credlock::PendingSummary) -> Self {
        PendingLogin {
            tenant: p.tenant,
            kind: p.kind,
            started_at_ms: p.started_at_ms as f64,
            expires_at_ms: p.expires_at_ms as f64,
            understood: p.understood,
        }
    }
}
