//! Maintenance: key slots, rekey, imports, recovery of an unreadable store.

use crate::credlock_store;
use crate::ffi::*;
use credlock::Error;
use serde_json::json;
use std::ffi::{c_char, c_int};
use zeroize::Zeroizing;

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
