//! The store's everyday operations: tokens, writes, listing, attachments.

use crate::credlock_store;
use crate::ffi::*;
use serde_json::json;
use std::ffi::{c_char, c_int};

// ----- operations -----

/// Create the store if it does not exist. Result: `{"created": bool}`.
///
/// # Safety
/// `store` is a live handle; `result` and `error` are NULL or point to writable pointers.
#[no_mangle]
pub unsafe extern "C" fn credlock_init(
    store: *const credlock_store,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || {
        let created = self::store(store)?.init()?;
        json_out(&json!({ "created": created }))
    })
}

/// Store a token response (`token_response`: the JSON a token endpoint returned, plus
/// `token_endpoint`, `client_id`, ... to enable refresh) for `tenant`. Durable when this
/// returns. Result: `{"revision": n, "generation": n}`.
///
/// # Safety
/// `store` is a live handle; `tenant` and `token_response` are NUL-terminated strings (NULL
/// is an error); `result` and `error` are NULL or point to writable pointers.
#[no_mangle]
pub unsafe extern "C" fn credlock_put(
    store: *const credlock_store,
    tenant: *const c_char,
    token_response: *const c_char,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || {
        let s = self::store(store)?;
        let tenant = arg(tenant, "tenant", tenant_error)?;
        let response = arg(token_response, "token_response", token_error)?;
        json_out(&s.put(tenant, response)?)
    })
}

/// An access token valid for at least `min_valid_ms` more milliseconds, refreshed (once,
/// whatever else is asking) if needed. Result (a secret: free it with credlock_string_free,
/// which zeroes it): `{"token": "...", "token_type": "Bearer", "expires_at_ms": n | null,
/// "revision": n, "refreshed": bool}`.
///
/// # Safety
/// As `credlock_put`.
#[no_mangle]
pub unsafe extern "C" fn credlock_token(
    store: *const credlock_store,
    tenant: *const c_char,
    min_valid_ms: u64,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || {
        let s = self::store(store)?;
        let tenant = arg(tenant, "tenant", tenant_error)?;
        token_out(s.token(tenant, min_valid_ms)?)
    })
}

/// Refresh now. With `rejected_sha256` (hex SHA-256, or a prefix of at least 16 characters,
/// of an access token a server refused; NULL for none), only if the stored token is still
/// that one; otherwise the newer stored token is returned. Result as `credlock_token`.
///
/// # Safety
/// As `credlock_put`; `rejected_sha256` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn credlock_refresh(
    store: *const credlock_store,
    tenant: *const c_char,
    rejected_sha256: *const c_char,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || {
        let s = self::store(store)?;
        let tenant = arg(tenant, "tenant", tenant_error)?;
        let rejected = opt_arg(rejected_sha256, "rejected_sha256", options_error)?;
        token_out(s.refresh(tenant, rejected)?)
    })
}

/// `credlock_refresh` given the refused access token itself (hashed here, never stored).
///
/// # Safety
/// As `credlock_put`; `rejected_token` is required.
#[no_mangle]
pub unsafe extern "C" fn credlock_refresh_rejected(
    store: *const credlock_store,
    tenant: *const c_char,
    rejected_token: *const c_char,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || {
        let s = self::store(store)?;
        let tenant = arg(tenant, "tenant", tenant_error)?;
        let rejected = arg(rejected_token, "rejected_token", options_error)?;
        token_out(s.refresh_rejected(tenant, rejected)?)
    })
}

/// The tenants, sorted. Result: `[{"tenant", "token_type", "expires_at_ms", "has_refresh_token",
/// "scope", "token_endpoint", "client_id", "revision", "needs_reauth", "refresh_intent"}, ...]`
/// (no secrets).
///
/// # Safety
/// `store` is a live handle; `result` and `error` are NULL or point to writable pointers.
#[no_mangle]
pub unsafe extern "C" fn credlock_list(
    store: *const credlock_store,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || json_out(&self::store(store)?.list()?))
}

/// Remove a tenant. Result: `{"deleted": bool}` (false: it did not exist).
///
/// # Safety
/// As `credlock_put`.
#[no_mangle]
pub unsafe extern "C" fn credlock_delete(
    store: *const credlock_store,
    tenant: *const c_char,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || {
        let s = self::store(store)?;
        let tenant = arg(tenant, "tenant", tenant_error)?;
        json_out(&json!({ "deleted": s.delete(tenant)? }))
    })
}

/// A small value kept, sealed, with the tenant (an MCP client's registration, a PKCE
/// verifier). Result (may be a secret: free it with credlock_string_free, which zeroes it):
/// `{"value": "..." | null}`, null when the tenant or the attachment is absent.
///
/// # Safety
/// As `credlock_put`; `name` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn credlock_attachment(
    store: *const credlock_store,
    tenant: *const c_char,
    name: *const c_char,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || {
        let s = self::store(store)?;
        let tenant = arg(tenant, "tenant", tenant_error)?;
        let name = arg(name, "name", attachment_error)?;
        json_out(&json!({ "value": s.attachment(tenant, name)? }))
    })
}

/// Set an attachment to `value`, or remove it when `value` is NULL, leaving the tenant's
/// tokens as they are. Durable when this returns. Result: `{"revision": n, "generation": n}`.
///
/// # Safety
/// As `credlock_put`; `name` is a NUL-terminated string, `value` one or NULL.
#[no_mangle]
pub unsafe extern "C" fn credlock_set_attachment(
    store: *const credlock_store,
    tenant: *const c_char,
    name: *const c_char,
    value: *const c_char,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || {
        let s = self::store(store)?;
        let tenant = arg(tenant, "tenant", tenant_error)?;
        let name = arg(name, "name", attachment_error)?;
        let value = opt_arg(value, "value", attachment_error)?;
        json_out(&s.set_attachment(tenant, name, value)?)
    })
}
