//! Logging a tenant in and out, and the logins in progress.

use crate::credlock_store;
use crate::ffi::*;
use serde::Deserialize;
use std::ffi::{c_char, c_int, CString};
use zeroize::Zeroize;

// ----- login and logout -----

/// What `credlock_login` reads from `request_json`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginJson {
    issuer: Option<String>,
    client_id: String,
    client_secret: Option<String>,
    scope: Option<String>,
    flow: Option<String>,
    open_browser: Option<bool>,
    audience: Option<String>,
    resource: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    device_authorization_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
}

impl Drop for LoginJson {
    fn drop(&mut self) {
        self.client_secret.zeroize();
    }
}

/// Called with a login's prompt as JSON (`{"kind": "device" | "browser", "url",
/// "user_code", "url_complete", "expires_at_ms", "joined"}`, valid only during the call) and
/// the `context` given to `credlock_login`. Called from the thread running the login.
#[allow(non_camel_case_types)]
pub type credlock_prompt_fn =
    Option<unsafe extern "C" fn(prompt_json: *const c_char, context: *mut std::ffi::c_void)>;

/// The context pointer, handed back to the caller's callback only.
struct PromptContext(*mut std::ffi::c_void);
// SAFETY: the pointer is never dereferenced here, only passed back to the caller's
// callback on the thread that runs the login (the caller's own thread), as documented.
unsafe impl Send for PromptContext {}
unsafe impl Sync for PromptContext {}

impl PromptContext {
    // A method, so that closures capture the whole (Send) wrapper, not its raw field.
    fn ptr(&self) -> *mut std::ffi::c_void {
        self.0
    }
}

/// Log `tenant` in (or join the login in progress for it) and store the tokens as `put`
/// would. `request_json`: `{"client_id", "issuer"?, "client_secret"?, "scope"?, "flow"?:
/// "device" (default) | "browser", "open_browser"?: bool, "audience"?, "resource"?,
/// "authorization_endpoint"?, "token_endpoint"?, "device_authorization_endpoint"?,
/// "revocation_endpoint"?}`. `on_prompt` (NULL: the prompt goes to standard error) is called
/// with the code or URL to show. Blocks until the user finishes or the code expires.
/// Result (a secret): `{"token": {as credlock_token}, "joined": bool, "refreshable": bool}`
/// (`refreshable`: the stored tokens include a refresh token).
///
/// # Safety
/// As `credlock_put`; `on_prompt` is NULL or a function safe to call with the documented
/// arguments; `context` is passed to it unchanged.
#[no_mangle]
pub unsafe extern "C" fn credlock_login(
    store: *const credlock_store,
    tenant: *const c_char,
    request_json: *const c_char,
    on_prompt: credlock_prompt_fn,
    context: *mut std::ffi::c_void,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || {
        let s = self::store(store)?;
        let tenant = arg(tenant, "tenant", tenant_error)?;
        let text = arg(request_json, "request_json", options_error)?;
        let mut j: LoginJson = serde_json::from_str(text).map_err(|e| {
            options_error(format!(
                "the login request is not a valid JSON object (line {}, column {}; `client_id` is required)",
                e.line(),
                e.column()
            ))
        })?;
        let flow = match j.flow.as_deref() {
            None | Some("device") => credlock::LoginFlow::Device,
            Some("browser") => credlock::LoginFlow::Browser {
                open: j.open_browser.unwrap_or(true),
            },
            Some(_) => {
                return Err(options_error("flow must be \"device\" or \"browser\"".into()).into())
            }
        };
        let request = credlock::LoginRequest {
            issuer: j.issuer.take(),
            client_id: std::mem::take(&mut j.client_id),
            client_secret: j.client_secret.take(),
            scope: j.scope.take(),
            flow,
            audience: j.audience.take(),
            resource: j.resource.take(),
            authorization_endpoint: j.authorization_endpoint.take(),
            token_endpoint: j.token_endpoint.take(),
            device_authorization_endpoint: j.device_authorization_endpoint.take(),
            revocation_endpoint: j.revocation_endpoint.take(),
        };
        let sink = on_prompt.map(|f| -> credlock::login::PromptSink {
            let ctx = PromptContext(context);
            std::sync::Arc::new(move |p: &credlock::LoginPrompt| {
                // A URL or code never holds a NUL (they are JSON-escaped text).
                let text = serde_json::to_string(p).ok();
                if let Some(c) = text.and_then(|t| CString::new(t).ok()) {
                    // SAFETY: the caller promised a callable `on_prompt`; the string lives
                    // for the call.
                    unsafe { f(c.as_ptr(), ctx.ptr()) };
                }
            })
        });
        let mut o = s.login(tenant, &request, sink)?;
        let out = json_out(&o);
        o.token.token.zeroize();
        out
    })
}

/// Revoke the tenant's refresh token where the server offers revocation (RFC 7009), then
/// delete the tenant; a failed revocation deletes nothing unless `local`. Result:
/// `{"revocation": "revoked" | "not-offered" | "failed", "revocation_error": null | "...",
/// "deleted": bool}`.
///
/// # Safety
/// As `credlock_put`.
#[no_mangle]
pub unsafe extern "C" fn credlock_logout(
    store: *const credlock_store,
    tenant: *const c_char,
    local: bool,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || {
        let s = self::store(store)?;
        let tenant = arg(tenant, "tenant", tenant_error)?;
        json_out(&s.logout(tenant, local)?)
    })
}
