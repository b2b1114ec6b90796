//! The ABI's conventions, written once: strings in (checked, never undefined behaviour),
//! JSON and errors out through out-pointers, panics caught, the handle borrowed.

use crate::{credlock_store, CREDLOCK_OK};
use credlock::{AccessToken, Error, Store, StoreError};
use serde::Serialize;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use zeroize::{Zeroize, Zeroizing};

// ----- strings in and out -----

/// A required string argument.
pub(crate) fn arg<'a>(
    p: *const c_char,
    what: &str,
    bad: fn(String) -> StoreError,
) -> Result<&'a str, Error> {
    opt_arg(p, what, bad)?.ok_or_else(|| bad(format!("{what} is NULL")).into())
}

/// An optional string argument: NULL is `None`.
pub(crate) fn opt_arg<'a>(
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

pub(crate) fn options_error(why: String) -> StoreError {
    StoreError::InvalidOptions(why)
}

pub(crate) fn tenant_error(why: String) -> StoreError {
    StoreError::InvalidTenant(why)
}

pub(crate) fn token_error(why: String) -> StoreError {
    StoreError::InvalidTokenResponse(why)
}

pub(crate) fn attachment_error(why: String) -> StoreError {
    StoreError::InvalidAttachment(why)
}

/// Counts what a serializer writes, so the output buffer is allocated once, at its final
/// size: a growing buffer would leave copies of a token behind in freed memory.
pub(crate) struct Count(usize);

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
pub(crate) fn json_out<T: Serialize + ?Sized>(value: &T) -> Result<CString, Error> {
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

pub(crate) fn put_out(out: *mut *mut c_char, s: CString) {
    if out.is_null() {
        free_cstring(s);
    } else {
        // SAFETY: a non-NULL out-pointer points to writable storage for one pointer.
        unsafe { *out = s.into_raw() };
    }
}

pub(crate) fn free_cstring(s: CString) {
    let mut bytes = s.into_bytes_with_nul();
    bytes.zeroize();
}

pub(crate) fn clear_out(out: *mut *mut c_char) {
    if !out.is_null() {
        // SAFETY: as in `put_out`.
        unsafe { *out = std::ptr::null_mut() };
    }
}

pub(crate) fn panic_error(payload: Box<dyn std::any::Any + Send>) -> Error {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    Error::Runtime(anyhow::anyhow!("panic in the C ABI: {what}"))
}

pub(crate) fn report_error(error: *mut *mut c_char, e: &Error) -> c_int {
    let report = e.report();
    if let Ok(s) = json_out(&report.to_json()) {
        put_out(error, s);
    }
    c_int::from(report.exit_code.max(1))
}

/// Run one call: catch panics, hand out the result or the error report, return the status.
pub(crate) fn run(
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

pub(crate) fn store<'a>(s: *const credlock_store) -> Result<&'a Store, Error> {
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
pub(crate) fn token_out(mut t: AccessToken) -> Result<CString, Error> {
    let out = json_out(&t);
    t.token.zeroize();
    out
}
