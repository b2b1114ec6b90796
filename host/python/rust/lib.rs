//! `credlock._credlock`: the Python binding of the credlock host library.
//!
//! Conversions only. Results reach Python by name: each is the library's own type, whose
//! `Serialize` (declared once, with the WIT's field names) [`by_name`] turns into a dict that
//! `credlock._store` hands to its dataclass as keywords. Settings arrive as the JSON object
//! [`OpenOptions::from_json`] reads, their one declaration. Every call releases the GIL
//! (`py.detach`) around the store, which is `Send + Sync` and pools component instances, so
//! Python threads run truly in parallel and exclude each other through the store's flock
//! protocol exactly as processes do. Errors become Python exceptions built by
//! `credlock.errors._from_report` from the one [`credlock::ErrorReport`]: no message or advice
//! is written here.
#![deny(unsafe_code)]

use credlock::{Error, OpenOptions, Store};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde::Serialize;
use serde_json::Value;
use std::ffi::OsString;
use std::path::PathBuf;
use zeroize::{Zeroize, Zeroizing};

/// A Python object for a JSON value (the report's `detail`: strings, numbers, lists, null).
fn json_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.into_pyobject(py)?.into_any(),
            (None, Some(i)) => i.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => s.into_pyobject(py)?.into_any(),
        Value::Array(a) => {
            let list = PyList::empty(py);
            for x in a {
                list.append(json_to_py(py, x)?)?;
            }
            list.into_any()
        }
        Value::Object(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, json_to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}

/// The Python exception for `e`, built from its report by `credlock.errors`.
fn py_err(py: Python<'_>, e: Error) -> PyErr {
    let r = e.report();
    let build = || -> PyResult<PyErr> {
        let d = PyDict::new(py);
        d.set_item("code", r.code)?;
        d.set_item("case", r.case)?;
        d.set_item("message", &r.message)?;
        d.set_item("recommendation", r.recommendation)?;
        d.set_item("exit_code", r.exit_code)?;
        d.set_item("detail", json_to_py(py, &Value::Object(r.detail.clone()))?)?;
        let exc = py
            .import("credlock.errors")?
            .getattr("_from_report")?
            .call1((d,))?;
        Ok(PyErr::from_value(exc))
    };
    // Only if credlock.errors itself is broken: still say what failed, and why not better.
    build().unwrap_or_else(|broken| {
        let e = PyException::new_err(r.message.clone());
        e.set_cause(py, Some(broken));
        e
    })
}

/// Run a store call without the GIL. A panic (a bug in credlock) becomes the internal
/// error every front end reports, not a Python `PanicException`.
fn call<R: Send>(py: Python<'_>, f: impl FnOnce() -> Result<R, Error> + Send) -> PyResult<R> {
    let result = py.detach(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            Err(Error::Runtime(anyhow::anyhow!("panicked: {what}")))
        })
    });
    result.map_err(|e| py_err(py, e))
}

mod by_name;

/// A result by name: a dict of its fields (a list of dicts for a list), as its `Serialize`
/// names them.
fn by_name<'py, T: Serialize + ?Sized>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    by_name::to_py(py, value)
}

/// An access token by name; the Rust copy of the token is zeroized once Python has its own.
fn token_by_name(py: Python<'_>, mut t: credlock::AccessToken) -> PyResult<Bound<'_, PyAny>> {
    let d = by_name(py, &t);
    t.token.zeroize();
    d
}

fn secret(s: Option<String>) -> Option<Zeroizing<String>> {
    s.map(Zeroizing::new)
}

/// An open store; `credlock.Store` wraps it. Safe to share between threads.
#[pyclass(frozen, module = "credlock._credlock")]
struct NativeStore {
    inner: Store,
}

#[pymethods]
impl NativeStore {
    /// Open with the settings in `options_json` (the object `OpenOptions::from_json` reads;
    /// `None` or `""` for none), the rest from `CREDLOCK_*` as the CLI reads them. The two
    /// paths come beside it as OS paths: a directory name need not be UTF-8, and JSON text
    /// must be (Python hands such a name over with surrogate escapes, which PyO3 turns back
    /// into its bytes).
    #[new]
    #[pyo3(signature = (options_json=None, store_dir=None, key_file=None))]
    fn new(
        py: Python<'_>,
        options_json: Option<String>,
        store_dir: Option<PathBuf>,
        key_file: Option<PathBuf>,
    ) -> PyResult<Self> {
        // It may hold a passphrase.
        let text = Zeroizing::new(options_json.unwrap_or_default());
        let mut options = OpenOptions::from_json(&text).map_err(|e| py_err(py, e.into()))?;
        options.store_dir = store_dir.or(options.store_dir);
        options.key_file = key_file.or(options.key_file);
        let inner = call(py, || Store::open_with(&options))?;
        Ok(NativeStore { inner })
    }

    /// A `str` (the OS string, as `os.fsdecode` gives it), not a `pathlib.Path`: PyO3 makes a
    /// `PathBuf` a `Path`, and importing `pathlib` (with `re`, `enum`, `urllib.parse`...)
    /// cost a one-shot process ~10 ms in `Store.open`. `Store.path` makes the `Path` when
    /// asked.
    #[getter]
    fn store_dir(&self) -> OsString {
        self.inner.store_dir().as_os_str().to_owned()
    }

    #[getter]
    fn lock_timeout_ms(&self) -> u32 {
        self.inner.config().options.lock_timeout_ms
    }

    #[getter]
    fn http_timeout_ms(&self) -> u32 {
        self.inner.config().options.http_timeout_ms
    }

    fn init(&self, py: Python<'_>) -> PyResult<bool> {
        call(py, || self.inner.init())
    }

    fn put<'py>(
        &self,
        py: Python<'py>,
        tenant: &str,
        token_response: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        by_name(py, &call(py, || self.inner.put(tenant, token_response))?)
    }

    /// `min_valid` in seconds.
    fn token<'py>(
        &self,
        py: Python<'py>,
        tenant: &str,
        min_valid: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let min_valid_ms = if min_valid.is_finite() && min_valid >= 0.0 {
            (min_valid * 1000.0).round() as u64 // saturates
        } else {
            let e = credlock::open::seconds_ms("min_valid", min_valid).unwrap_err();
            return Err(py_err(py, e.into()));
        };
        token_by_name(py, call(py, || self.inner.token(tenant, min_valid_ms))?)
    }

    #[pyo3(signature = (tenant, rejected=None, rejected_sha256=None))]
    fn refresh<'py>(
        &self,
        py: Python<'py>,
        tenant: &str,
        rejected: Option<String>,
        rejected_sha256: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rejected = secret(rejected);
        let t = call(py, || match &rejected {
            Some(t) => self.inner.refresh_rejected(tenant, t.trim()),
            None => self.inner.refresh(tenant, rejected_sha256),
        })?;
        token_by_name(py, t)
    }

    fn list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        by_name(py, &call(py, || self.inner.list())?)
    }

    fn delete(&self, py: Python<'_>, tenant: &str) -> PyResult<bool> {
        call(py, || self.inner.delete(tenant))
    }

    fn attachment(&self, py: Python<'_>, tenant: &str, name: &str) -> PyResult<Option<String>> {
        call(py, || self.inner.attachment(tenant, name))
    }

    #[pyo3(signature = (tenant, name, value=None))]
    fn set_attachment<'py>(
        &self,
        py: Python<'py>,
        tenant: &str,
        name: &str,
        value: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        by_name(
            py,
            &call(py, || self.inner.set_attachment(tenant, name, value))?,
        )
    }

    fn slots<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        by_name(py, &call(py, || self.inner.slots())?)
    }

    #[pyo3(signature = (kind, new_passphrase=None))]
    fn add_slot<'py>(
        &self,
        py: Python<'py>,
        kind: &str,
        new_passphrase: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let p = secret(new_passphrase);
        by_name(py, &call(py, || self.inner.add_slot(kind, p))?)
    }

    fn remove_slot<'py>(
        &self,
        py: Python<'py>,
        index: u32,
        allow_volatile_only: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        by_name(
            py,
            &call(py, || self.inner.remove_slot(index, allow_volatile_only))?,
        )
    }

    #[pyo3(signature = (source, tenant, replace, kind=None, account=None))]
    fn import_tokens<'py>(
        &self,
        py: Python<'py>,
        source: String,
        tenant: Option<&str>,
        replace: bool,
        kind: Option<String>,
        account: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let source = Zeroizing::new(source);
        let how = credlock::ImportOptions {
            replace,
            kind,
            account,
            saved_at_ms: None,
        };
        by_name(
            py,
            &call(py, || self.inner.import_tokens(&source, tenant, &how))?,
        )
    }

    /// The import's report plus `source_removed` and `kept_reason`.
    #[pyo3(signature = (path, tenant, replace, remove_source, kind=None, account=None))]
    #[allow(clippy::too_many_arguments)]
    fn import_file<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        tenant: Option<&str>,
        replace: bool,
        remove_source: bool,
        kind: Option<String>,
        account: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let how = credlock::ImportOptions {
            replace,
            kind,
            account,
            saved_at_ms: None,
        };
        let r = call(py, || {
            self.inner.import_file(&path, tenant, &how, remove_source)
        })?;
        by_name(py, &r)
    }

    fn quarantine(&self, py: Python<'_>, force: bool) -> PyResult<String> {
        call(py, || self.inner.quarantine(force))
    }

    /// `{"token", "joined", "refreshable"}`. `on_prompt` is called (with the GIL) with the
    /// prompt as a dict: kind, url, user_code, url_complete, expires_at_ms, joined.
    #[pyo3(signature = (tenant, client_id, issuer, client_secret, scope, browser, open_browser,
        audience, resource, authorization_endpoint, token_endpoint,
        device_authorization_endpoint, revocation_endpoint, on_prompt))]
    #[allow(clippy::too_many_arguments)]
    fn login<'py>(
        &self,
        py: Python<'py>,
        tenant: &str,
        client_id: String,
        issuer: Option<String>,
        client_secret: Option<String>,
        scope: Option<String>,
        browser: bool,
        open_browser: bool,
        audience: Option<String>,
        resource: Option<String>,
        authorization_endpoint: Option<String>,
        token_endpoint: Option<String>,
        device_authorization_endpoint: Option<String>,
        revocation_endpoint: Option<String>,
        on_prompt: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = credlock::LoginRequest {
            issuer,
            client_id,
            client_secret,
            scope,
            flow: if browser {
                credlock::LoginFlow::Browser { open: open_browser }
            } else {
                credlock::LoginFlow::Device
            },
            audience,
            resource,
            authorization_endpoint,
            token_endpoint,
            device_authorization_endpoint,
            revocation_endpoint,
        };
        let sink = on_prompt.map(|cb| -> credlock::login::PromptSink {
            std::sync::Arc::new(move |p: &credlock::LoginPrompt| {
                Python::attach(|py| {
                    // A callback that raises cannot stop the login (it waits for the
                    // server either way); Python reports it as unraisable.
                    let shown = by_name(py, p).and_then(|d| cb.call1(py, (d,)).map(|_| ()));
                    if let Err(e) = shown {
                        e.write_unraisable(py, None);
                    }
                })
            })
        });
        let mut o = call(py, || self.inner.login(tenant, &request, sink))?;
        let d = by_name(py, &o);
        o.token.token.zeroize();
        d
    }

    /// `revocation` is `revoked`, `not-offered` or `failed` (then `revocation_error` says why).
    fn logout<'py>(
        &self,
        py: Python<'py>,
        tenant: &str,
        local: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        by_name(py, &call(py, || self.inner.logout(tenant, local))?)
    }

    // --- generated by host/surface/tests/operations.rs from wit/store.wit: edit there ---
    fn pending_logins<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        by_name(py, &call(py, || self.inner.pending_logins())?)
    }

    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        by_name(py, &call(py, || self.inner.info())?)
    }

    fn rekey<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        by_name(py, &call(py, || self.inner.rekey())?)
    }

    fn recover<'py>(&self, py: Python<'py>, force: bool) -> PyResult<Bound<'py, PyAny>> {
        by_name(py, &call(py, || self.inner.recover(force))?)
    }
    // --- end of generated operations ---
}

/// The store directory used when none is given and `CREDLOCK_STORE` is unset.
#[pyfunction]
fn default_store_dir() -> Option<OsString> {
    // A `str`, as `store_dir` (above); `credlock.default_store_dir()` makes the `Path`.
    credlock::layout::default_store_dir().map(PathBuf::into_os_string)
}

/// Hex SHA-256 of the component this module runs.
#[pyfunction]
fn component_sha256() -> &'static str {
    credlock::component::COMPONENT_SHA256.trim()
}

#[pymodule]
fn _credlock(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeStore>()?;
    m.add_function(wrap_pyfunction!(default_store_dir, m)?)?;
    m.add_function(wrap_pyfunction!(component_sha256, m)?)?;
    // What a fleet checks it runs (credlock::build_info): the version every artifact shares.
    m.add("__version__", credlock::build_info::VERSION)?;
    m.add("COMPONENT_SHA256", credlock::build_info::COMPONENT_SHA256)?;
    Ok(())
}
