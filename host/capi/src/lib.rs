//! The C ABI of credlock: one opaque [`credlock_store`] handle over [`credlock::Store`],
//! calls that return the CLI's exit code as a status, and results and errors as UTF-8 JSON
//! strings handed out through out-pointers. `include/credlock.h` is generated from this file
//! by cbindgen (`build.rs`); its header comment states the conventions every call follows.
//!
//! Nothing here decides anything: settings are resolved by [`credlock::OpenOptions`] (so the
//! `CREDLOCK_*` variables mean what they mean to the CLI), and every error, whatever its
//! source, is the [`credlock::ErrorReport`] that the CLI and the other bindings show.

use credlock::{AccessToken, Error, OpenOptions, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use zeroize::{Zeroize, Zeroizing};

/// An open credential store. Opaque: made by `credlock_open` or `credlock_open_dir`,
/// released by `credlock_close`. Safe to use from many threads at once.
#[allow(non_camel_case_types)]
pub struct credlock_store {
    inner: Store,
}

/// Status of a successful call.
pub const CREDLOCK_OK: c_int = 0;

// ----- strings in and out -----

/// A required string argument.
fn arg<'a>(p: *const c_char, what: &str, bad: fn(String) -> StoreError) -> Result<&'a str, Error> {
    opt_arg(p, what, bad)?.ok_or_else(|| bad(format!("{what} is NULL")).into())
}

/// An optional string argument: NULL is `None`.
fn opt_arg<'a>(
    p: *const c_char,
    what: &str,
    bad: fn(String) -> StoreError,
) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller passes a NUL-terminated string that outlives the call (the ABI's
    // contract, stated in the header); NULL was handled above.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map(Some)
        .map_err(|_| bad(format!("{what} is not valid UTF-8")).into())
}

fn options_error(why: String) -> StoreError {
    StoreError::InvalidOptions(why)
}

fn tenant_error(why: String) -> StoreError {
    StoreError::InvalidTenant(why)
}

fn token_error(why: String) -> StoreError {
    StoreError::InvalidTokenResponse(why)
}

fn attachment_error(why: String) -> StoreError {
    StoreError::InvalidAttachment(why)
}

/// Counts what a serializer writes, so the output buffer is allocated once, at its final
/// size: a growing buffer would leave copies of a token behind in freed memory.
struct Count(usize);

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `value` as a NUL-terminated JSON string in one allocation, for `credlock_string_free`.
fn json_out<T: Serialize + ?Sized>(value: &T) -> Result<CString, Error> {
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).map_err(|e| Error::Runtime(e.into()))?;
    let mut buf = Zeroizing::new(Vec::with_capacity(count.0 + 1));
    serde_json::to_writer(&mut *buf, value).map_err(|e| Error::Runtime(e.into()))?;
    debug_assert!(buf.capacity() > buf.len(), "no reallocation");
    let bytes = std::mem::take(&mut *buf);
    // JSON escapes NUL, so there is none inside; the capacity already has room for the NUL.
    CString::new(bytes).map_err(|e| {
        let mut v = e.into_vec();
        v.zeroize();
        Error::Runtime(anyhow::anyhow!("JSON with a NUL byte"))
    })
}

fn put_out(out: *mut *mut c_char, s: CString) {
    if out.is_null() {
        free_cstring(s);
    } else {
        // SAFETY: a non-NULL out-pointer points to writable storage for one pointer.
        unsafe { *out = s.into_raw() };
    }
}

fn free_cstring(s: CString) {
    let mut bytes = s.into_bytes_with_nul();
    bytes.zeroize();
}

fn clear_out(out: *mut *mut c_char) {
    if !out.is_null() {
        // SAFETY: as in `put_out`.
        unsafe { *out = std::ptr::null_mut() };
    }
}

fn panic_error(payload: Box<dyn std::any::Any + Send>) -> Error {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    Error::Runtime(anyhow::anyhow!("panic in the C ABI: {what}"))
}

fn report_error(error: *mut *mut c_char, e: &Error) -> c_int {
    let report = e.report();
    if let Ok(s) = json_out(&report.to_json()) {
        put_out(error, s);
    }
    c_int::from(report.exit_code.max(1))
}

/// Run one call: catch panics, hand out the result or the error report, return the status.
fn run(
    result: *mut *mut c_char,
    error: *mut *mut c_char,
    f: impl FnOnce() -> Result<CString, Error>,
) -> c_int {
    clear_out(result);
    clear_out(error);
    let outcome = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(panic_error(p)));
    match outcome {
        Ok(s) => {
            put_out(result, s);
            CREDLOCK_OK
        }
        Err(e) => catch_unwind(AssertUnwindSafe(|| report_error(error, &e)))
            .unwrap_or(c_int::from(credlock::exit::INTERNAL)),
    }
}

fn store<'a>(s: *const credlock_store) -> Result<&'a Store, Error> {
    if s.is_null() {
        return Err(options_error("the store handle is NULL".into()).into());
    }
    // SAFETY: a non-NULL handle came from credlock_open and has not been closed (the ABI's
    // contract); `Store` is Sync, so shared references from many threads are fine.
    Ok(unsafe { &(*s).inner })
}

// ----- result shapes -----

// Results are the library's own types serialized by name (their `Serialize` is declared once,
// in credlock-core and credlock, with the WIT's field names); only the one-field wrappers of
// a bare value (`{"created": bool}`, ...) are written here.

/// An access token as JSON; the token's copy in `t` is zeroized once it is written.
fn token_out(mut t: AccessToken) -> Result<CString, Error> {
    let out = json_out(&t);
    t.token.zeroize();
    out
}

// ----- opening -----

fn open_into(
    options: Result<OpenOptions, Error>,
    out_store: *mut *mut credlock_store,
    error: *mut *mut c_char,
) -> c_int {
    if !out_store.is_null() {
        // SAFETY: a non-NULL out-pointer points to writable storage for one pointer.
        unsafe { *out_store = std::ptr::null_mut() };
    }
    run(std::ptr::null_mut(), error, || {
        if out_store.is_null() {
            return Err(options_error("out_store is NULL".into()).into());
        }
        let inner = Store::open_with(&options?)?;
        let handle = Box::into_raw(Box::new(credlock_store { inner }));
        // SAFETY: checked non-NULL above.
        unsafe { *out_store = handle };
        Ok(CString::default())
    })
}

/// Open a store from a JSON object of settings (`options_json`; NULL or "" for all
/// defaults). Every field is optional (absent or null: from the `CREDLOCK_*` variable, as the
/// CLI reads it, else the default); an unknown field is an error. The fields:
// --- generated by host/tests/surface.rs from credlock::OpenOptions: edit there ---
/// - `store_dir` (a string): The store directory, or a PostgreSQL URL
///   (postgres://user@host/db?schema=credlock) for a store many machines share. Default:
///   $CREDLOCK_STORE, else the platform's data directory ($XDG_DATA_HOME/credlock on Linux). A
///   URL's password goes in PGPASSWORD or $CREDLOCK_STORE, not in a URL given here (other users
///   see a command's arguments).
/// - `passphrase` (a string): The passphrase of a passphrase slot, which opens the store (or
///   protects a new one). Default: $CREDLOCK_PASSPHRASE.
/// - `key_file` (a string): The key file. Default: $CREDLOCK_KEY_FILE, else DIR/key. A new
///   store gets a key-file slot (creating the file with a random key) unless a passphrase or a
///   keyring protects it and no key file is named; the default key file is still tried for
///   opening.
/// - `keyring` (a string): The OS keyring a new store (and adding a keyring slot) keeps its key
///   in: secret-service, keyutils (the kernel keyring: volatile), apple-keychain,
///   windows-credential, auto (this platform's durable one), or off (never ask a keyring, even
///   to open a store). Default: $CREDLOCK_KEYRING, else none for a new store; an existing
///   store's keyring slots are always tried.
/// - `lock_timeout` (seconds, a number): How long to wait for the store lock before failing.
///   Default: $CREDLOCK_LOCK_TIMEOUT, else 10 seconds. Below a millisecond (but not zero) it
///   means "do not wait". A refresh waits for another process's refresh up to the HTTP timeout
///   plus twice this.
/// - `http_timeout` (seconds, a number): How long one token-endpoint call may take. Default:
///   $CREDLOCK_HTTP_TIMEOUT, else 30 seconds.
/// - `keyring_timeout` (seconds, a number): How long one keyring call may take (they can hang,
///   or wait for an unlock prompt). Default: $CREDLOCK_KEYRING_TIMEOUT, else 10 seconds.
/// - `allow_insecure_http` (a boolean): Allow plain-http token endpoints on hosts other than
///   loopback. Default: $CREDLOCK_ALLOW_INSECURE_HTTP.
/// - `allow_volatile_only` (a boolean): Allow a store whose only key slots are volatile (the
///   kernel keyring): a reboot loses it. Default: $CREDLOCK_ALLOW_VOLATILE_ONLY.
/// - `kdf` (an object of m_cost_kib, t_cost and p_cost): The argon2id costs of a new passphrase
///   slot: memory (KiB), iterations and lanes, each optional (default 65536 KiB, 3 iterations,
///   1 lane). Tests lower them.
/// - `new_passphrase` (a string): The passphrase of a new passphrase slot (adding a slot).
///   Default: $CREDLOCK_NEW_PASSPHRASE.
/// - `ignore_env` (a boolean): Read no CREDLOCK_* variable: everything is configured here.
// --- end of generated code ---
///
/// Opening touches no store file (the first call does) but loads the component, so a broken
/// installation fails here. On success `*out_store` receives the handle; release it with
/// `credlock_close`. On failure `*out_store` is NULL and `*error` the report.
///
/// # Safety
/// `options_json` is NULL or a NUL-terminated string; `out_store` and `error` are NULL or
/// point to writable pointers.
#[no_mangle]
pub unsafe extern "C" fn credlock_open(
    options_json: *const c_char,
    out_store: *mut *mut credlock_store,
    error: *mut *mut c_char,
) -> c_int {
    let options = opt_arg(options_json, "options_json", options_error)
        .and_then(|t| Ok(OpenOptions::from_json(t.unwrap_or(""))?));
    open_into(options, out_store, error)
}

/// Open the store in `store_dir` (NULL: `$CREDLOCK_STORE`, else the platform default) with
/// `passphrase` (NULL: `$CREDLOCK_PASSPHRASE`, else the key file); everything else from the
/// environment, as `credlock_open` with those two fields.
///
/// # Safety
/// `store_dir` and `passphrase` are NULL or NUL-terminated strings; `out_store` and `error`
/// are NULL or point to writable pointers.
#[no_mangle]
pub unsafe extern "C" fn credlock_open_dir(
    store_dir: *const c_char,
    passphrase: *const c_char,
    out_store: *mut *mut credlock_store,
    error: *mut *mut c_char,
) -> c_int {
    let options = (|| {
        Ok(OpenOptions {
            store_dir: opt_arg(store_dir, "store_dir", options_error)?.map(PathBuf::from),
            passphrase: opt_arg(passphrase, "passphrase", options_error)?
                .map(|p| Zeroizing::new(p.to_owned())),
            ..Default::default()
        })
    })();
    open_into(options, out_store, error)
}

/// Release a store handle (NULL: nothing). No call on it may be running or follow.
///
/// # Safety
/// `store` is NULL or a handle from `credlock_open*` not yet closed.
#[no_mangle]
pub unsafe extern "C" fn credlock_close(store: *mut credlock_store) {
    if store.is_null() {
        return;
    }
    // SAFETY: the handle came from Box::into_raw in `open_into` and is closed once.
    let boxed = unsafe { Box::from_raw(store) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
}

/// Zero and free a string handed out by any credlock call (NULL: nothing).
///
/// # Safety
/// `s` is NULL or a string from a credlock out-pointer, freed once.
#[no_mangle]
pub unsafe extern "C" fn credlock_string_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    // SAFETY: `s` came from CString::into_raw in `put_out`.
    let s = unsafe { CString::from_raw(s) };
    free_cstring(s);
}

/// The library's version, a static string (never freed): every credlock artifact's.
#[no_mangle]
pub extern "C" fn credlock_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Hex SHA-256 of the component this library embeds, a static string (never freed).
#[no_mangle]
pub extern "C" fn credlock_component_sha256() -> *const c_char {
    static HEX: std::sync::OnceLock<std::ffi::CString> = std::sync::OnceLock::new();
    HEX.get_or_init(|| {
        std::ffi::CString::new(credlock::build_info::COMPONENT_SHA256)
            .expect("a hex digest has no NUL byte")
    })
    .as_ptr()
}

/// For bindings whose strings may hold NUL bytes (Go, Python, ...), which a C string cannot
/// carry: the error report for argument `argument` (`"tenant"`, `"token_response"`, or any
/// other name) containing a NUL byte, so that the binding reports it as the library would.
/// Always returns a non-zero status (2).
///
/// # Safety
/// `argument` is NULL or a NUL-terminated string; `error` is NULL or points to a writable
/// pointer.
#[no_mangle]
pub unsafe extern "C" fn credlock_nul_error(
    argument: *const c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(std::ptr::null_mut(), error, || {
        let name = opt_arg(argument, "argument", options_error)?.unwrap_or("an argument");
        let why = format!("{name} contains a NUL byte");
        Err(match name {
            "tenant" => tenant_error(why),
            "token_response" | "source" => token_error(why),
            "name" | "value" => attachment_error(why),
            _ => options_error(why),
        }
        .into())
    })
}

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

/// The store's header. Result: `{"exists", "generation", "format_version", "key_id",
/// "slot_kinds", "tenants"}`.
///
/// # Safety
/// As `credlock_list`.
#[no_mangle]
pub unsafe extern "C" fn credlock_info(
    store: *const credlock_store,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || json_out(&self::store(store)?.info()?))
}

/// The key slots. Result: `[{"index", "kind", "describe", "durable"}, ...]`.
///
/// # Safety
/// As `credlock_list`.
#[no_mangle]
pub unsafe extern "C" fn credlock_slots(
    store: *const credlock_store,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || json_out(&self::store(store)?.slots()?))
}

/// Add a slot of `kind` (`key-file`, `passphrase`, `keyring`, `kernel-keyring`); for
/// `passphrase`, `new_passphrase` (NULL: the configured one). Result: the new slot list.
///
/// # Safety
/// As `credlock_put`; `new_passphrase` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn credlock_add_slot(
    store: *const credlock_store,
    kind: *const c_char,
    new_passphrase: *const c_char,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || {
        let s = self::store(store)?;
        let kind = arg(kind, "kind", options_error)?;
        let p = opt_arg(new_passphrase, "new_passphrase", options_error)?
            .map(|p| Zeroizing::new(p.to_owned()));
        json_out(&s.add_slot(kind, p)?)
    })
}

/// Remove slot `index`: never the last one, never leaving only volatile slots unless
/// `allow_volatile_only`. Result: the new slot list.
///
/// # Safety
/// As `credlock_list`.
#[no_mangle]
pub unsafe extern "C" fn credlock_remove_slot(
    store: *const credlock_store,
    index: u32,
    allow_volatile_only: bool,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || {
        let s = self::store(store)?;
        json_out(&s.remove_slot(index, allow_volatile_only)?)
    })
}

/// Re-seal under a new data key from the same sources. Result: as `credlock_info`.
///
/// # Safety
/// As `credlock_list`.
#[no_mangle]
pub unsafe extern "C" fn credlock_rekey(
    store: *const credlock_store,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || json_out(&self::store(store)?.rekey()?))
}

/// How to import: `replace`, and the kind of file and account (NULL: detected; see the
/// CLI's `import --from` and `--account`).
fn import_options(
    replace: bool,
    kind: *const c_char,
    account: *const c_char,
) -> Result<credlock::ImportOptions, Error> {
    Ok(credlock::ImportOptions {
        replace,
        kind: opt_arg(kind, "kind", options_error)?.map(str::to_owned),
        account: opt_arg(account, "account", options_error)?.map(str::to_owned),
        saved_at_ms: None,
    })
}

/// Import plaintext tokens from `source` (one tenant's tokens for `tenant`, in any shape the
/// CLI's `import --from` lists: `kind`, or detected when NULL; `account` chooses among an
/// MSAL cache's accounts; or with `tenant` NULL a JSON map of tenants) in one atomic write.
/// Result: `{"imported": [...], "skipped": [{"tenant", "reason"}], "generation": n}`.
///
/// # Safety
/// As `credlock_put`; `tenant`, `kind` and `account` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn credlock_import_tokens(
    store: *const credlock_store,
    source: *const c_char,
    tenant: *const c_char,
    replace: bool,
    kind: *const c_char,
    account: *const c_char,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || {
        let s = self::store(store)?;
        let source = arg(source, "source", token_error)?;
        let tenant = opt_arg(tenant, "tenant", tenant_error)?;
        let how = import_options(replace, kind, account)?;
        json_out(&s.import_tokens(source, tenant, &how)?)
    })
}

/// `credlock_import_tokens` of the file at `path` (a token kept with only `expires_in` is
/// taken as received when the file was last written); with `remove_source`, the file is
/// removed once the import is durable, only if everything in it was imported. Result: as
/// `credlock_import_tokens` plus `"source_removed": bool, "kept_reason": string | null`.
///
/// # Safety
/// As `credlock_put`; `tenant`, `kind` and `account` may be NULL.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn credlock_import_file(
    store: *const credlock_store,
    path: *const c_char,
    tenant: *const c_char,
    replace: bool,
    remove_source: bool,
    kind: *const c_char,
    account: *const c_char,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || {
        let s = self::store(store)?;
        let path = arg(path, "path", options_error)?;
        let tenant = opt_arg(tenant, "tenant", tenant_error)?;
        let how = import_options(replace, kind, account)?;
        json_out(&s.import_file(path.as_ref(), tenant, &how, remove_source)?)
    })
}

/// Restore the backup of an unreadable store (with `force`, of any store). Result:
/// `{"quarantined_as": string | null, "generation", "tenants", "refresh_unknown": [...]}`.
///
/// # Safety
/// As `credlock_list`.
#[no_mangle]
pub unsafe extern "C" fn credlock_recover(
    store: *const credlock_store,
    force: bool,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || {
        json_out(&self::store(store)?.recover(force)?)
    })
}

/// Move a damaged store aside (with `force`, also one that fails for a reason of its own
/// that may not be damage: a wrong key, a newer format). Result:
/// `{"quarantined_as": "<file name>"}`.
///
/// # Safety
/// As `credlock_list`.
#[no_mangle]
pub unsafe extern "C" fn credlock_quarantine(
    store: *const credlock_store,
    force: bool,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || {
        json_out(&json!({ "quarantined_as": self::store(store)?.quarantine(force)? }))
    })
}

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

/// The logins in progress. Result: `[{"tenant", "kind", "started_at_ms", "expires_at_ms",
/// "understood"}, ...]` (never a code or verifier).
///
/// # Safety
/// As `credlock_list`.
#[no_mangle]
pub unsafe extern "C" fn credlock_pending_logins(
    store: *const credlock_store,
    result: *mut *mut c_char,
    error: *mut *mut c_char,
) -> c_int {
    run(result, error, || {
        json_out(&self::store(store)?.pending_logins()?)
    })
}

#[cfg(test)]
mod tests {
    //! The result JSON is the C ABI's wire format (Go's `json` tags read it): since it is the
    //! library types' `Serialize`, pin each one's bytes here, as the hand-built objects wrote
    //! them, so a renamed or reordered field fails a test rather than a consumer.
    use super::*;
    use credlock::{ImportFileReport, ImportReport, LoginOutcome, LoginPrompt, LogoutReport};
    use credlock::{PendingSummary, RecoverReport, Revocation, SlotInfo, StoreInfo};
    use credlock::{TenantSummary, WriteReceipt};

    fn text<T: Serialize>(v: &T) -> String {
        json_out(v).unwrap().into_string().unwrap()
    }

    fn token() -> AccessToken {
        AccessToken {
            token: "at\"1".into(),
            token_type: "Bearer".into(),
            expires_at_ms: Some(5),
            revision: 2,
            refreshed: true,
        }
    }

    #[test]
    fn tokens_and_receipts() {
        assert_eq!(
            text(&token()),
            r#"{"token":"at\"1","token_type":"Bearer","expires_at_ms":5,"revision":2,"refreshed":true}"#
        );
        let t = token_out(AccessToken {
            expires_at_ms: None,
            ..token()
        });
        assert_eq!(
            t.unwrap().into_string().unwrap(),
            r#"{"token":"at\"1","token_type":"Bearer","expires_at_ms":null,"revision":2,"refreshed":true}"#
        );
        let w = WriteReceipt {
            revision: 1,
            generation: 9,
        };
        assert_eq!(text(&w), r#"{"revision":1,"generation":9}"#);
    }

    #[test]
    fn list_info_and_slots() {
        let t = TenantSummary {
            tenant: "acme".into(),
            token_type: "Bearer".into(),
            expires_at_ms: None,
            has_refresh_token: true,
            scope: Some("a b".into()),
            token_endpoint: None,
            client_id: Some("c".into()),
            revision: 3,
            needs_reauth: false,
            refresh_intent: true,
        };
        assert_eq!(
            text(&vec![t]),
            r#"[{"tenant":"acme","token_type":"Bearer","expires_at_ms":null,"has_refresh_token":true,"scope":"a b","token_endpoint":null,"client_id":"c","revision":3,"needs_reauth":false,"refresh_intent":true}]"#
        );
        let i = StoreInfo {
            exists: true,
            generation: 4,
            format_version: 1,
            key_id: "ab".into(),
            slot_kinds: vec!["key-file".into(), "passphrase".into()],
            tenants: 2,
        };
        assert_eq!(
            text(&i),
            r#"{"exists":true,"generation":4,"format_version":1,"key_id":"ab","slot_kinds":["key-file","passphrase"],"tenants":2}"#
        );
        let s = SlotInfo {
            index: 0,
            kind: "key-file".into(),
            describe: "key file ab".into(),
            durable: true,
        };
        assert_eq!(
            text(&vec![s]),
            r#"[{"index":0,"kind":"key-file","describe":"key file ab","durable":true}]"#
        );
    }

    #[test]
    fn imports_and_recovery() {
        let r = ImportReport {
            imported: vec!["g".into()],
            skipped: vec![("k".into(), "an API key".into())],
            generation: 7,
        };
        assert_eq!(
            text(&r),
            r#"{"imported":["g"],"skipped":[{"tenant":"k","reason":"an API key"}],"generation":7}"#
        );
        let f = ImportFileReport {
            report: r,
            source_removed: false,
            kept_reason: Some("something was skipped".into()),
        };
        assert_eq!(
            text(&f),
            r#"{"imported":["g"],"skipped":[{"tenant":"k","reason":"an API key"}],"generation":7,"source_removed":false,"kept_reason":"something was skipped"}"#
        );
        let r = RecoverReport {
            quarantined_as: None,
            generation: 14,
            tenants: 2,
            refresh_unknown: vec!["acme".into()],
        };
        assert_eq!(
            text(&r),
            r#"{"quarantined_as":null,"generation":14,"tenants":2,"refresh_unknown":["acme"]}"#
        );
    }

    #[test]
    fn login_logout_and_pending() {
        let o = LoginOutcome {
            token: token(),
            joined: false,
            refreshable: true,
        };
        assert_eq!(
            text(&o),
            r#"{"token":{"token":"at\"1","token_type":"Bearer","expires_at_ms":5,"revision":2,"refreshed":true},"joined":false,"refreshable":true}"#
        );
        let p = LoginPrompt {
            kind: "device".into(),
            url: "http://127.0.0.1/d".into(),
            user_code: Some("ABCD".into()),
            url_complete: None,
            expires_at_ms: 8,
            joined: true,
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"kind":"device","url":"http://127.0.0.1/d","user_code":"ABCD","url_complete":null,"expires_at_ms":8,"joined":true}"#
        );
        let cases = [
            (Revocation::Revoked, r#""revoked","revocation_error":null"#),
            (
                Revocation::NotOffered,
                r#""not-offered","revocation_error":null"#,
            ),
            (
                Revocation::Failed("HTTP 500".into()),
                r#""failed","revocation_error":"HTTP 500""#,
            ),
        ];
        for (revocation, shown) in cases {
            let r = LogoutReport {
                revocation,
                deleted: true,
            };
            assert_eq!(
                text(&r),
                format!(r#"{{"revocation":{shown},"deleted":true}}"#)
            );
        }
        let p = PendingSummary {
            tenant: "acme".into(),
            kind: "browser".into(),
            started_at_ms: 1,
            expires_at_ms: 2,
            understood: false,
        };
        assert_eq!(
            text(&vec![p]),
            r#"[{"tenant":"acme","kind":"browser","started_at_ms":1,"expires_at_ms":2,"understood":false}]"#
        );
    }
}
