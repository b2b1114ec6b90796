//! `credlock._credlock`: the Python binding of the credlock host library.
//!
//! Conversions only. Every call releases the GIL (`py.detach`) around the store, which is
//! `Send + Sync` and pools component instances, so Python threads run truly in parallel and
//! exclude each other through the store's flock protocol exactly as processes do. Errors
//! become Python exceptions built by `credlock.errors._from_report` from the one
//! [`credlock::ErrorReport`]: no message or advice is written here.
#![deny(unsafe_code)]

use credlock::keys::KdfParams;
use credlock::{Error, OpenOptions, SlotInfo, Store};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::Value;
use std::path::PathBuf;
use zeroize::Zeroizing;

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

type TokenTuple = (String, String, Option<u64>, u64, bool);
/// `(tenant, kind, started_at_ms, expires_at_ms, understood)`.
type PendingTuple = (String, String, u64, u64, bool);

fn token_tuple(t: credlock::AccessToken) -> TokenTuple {
    (
        t.token,
        t.token_type,
        t.expires_at_ms,
        t.revision,
        t.refreshed,
    )
}

type InfoTuple = (bool, u64, u16, String, Vec<String>, u32);

fn info_tuple(i: credlock::StoreInfo) -> InfoTuple {
    (
        i.exists,
        i.generation,
        i.format_version,
        i.key_id,
        i.slot_kinds,
        i.tenants,
    )
}

type SlotTuple = (u32, String, String, bool);

fn slot_tuples(v: Vec<SlotInfo>) -> Vec<SlotTuple> {
    v.into_iter()
        .map(|s| (s.index, s.kind, s.describe, s.durable))
        .collect()
}

type ImportTuple = (Vec<String>, Vec<(String, String)>, u64);

fn import_tuple(r: credlock::ImportReport) -> ImportTuple {
    (r.imported, r.skipped, r.generation)
}

type ImportFileTuple = (
    Vec<String>,
    Vec<(String, String)>,
    u64,
    bool,
    Option<String>,
);

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
    /// Open with explicit settings, the rest from `CREDLOCK_*` as the CLI reads them.
    #[new]
    #[pyo3(signature = (store_dir=None, passphrase=None, key_file=None, keyring=None,
        lock_timeout=None, http_timeout=None, keyring_timeout=None, allow_insecure_http=None,
        allow_volatile_only=None, kdf=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        store_dir: Option<PathBuf>,
        passphrase: Option<String>,
        key_file: Option<PathBuf>,
        keyring: Option<String>,
        lock_timeout: Option<f64>,
        http_timeout: Option<f64>,
        keyring_timeout: Option<f64>,
        allow_insecure_http: Option<bool>,
        allow_volatile_only: Option<bool>,
        kdf: Option<(u32, u32, u32)>,
    ) -> PyResult<Self> {
        let options = OpenOptions {
            store_dir,
            passphrase: secret(passphrase),
            key_file,
            keyring,
            lock_timeout,
            http_timeout,
            keyring_timeout,
            allow_insecure_http,
            allow_volatile_only,
            kdf: kdf.map(|(m_cost_kib, t_cost, p_cost)| KdfParams {
                m_cost_kib,
                t_cost,
                p_cost,
            }),
            new_passphrase: None,
            ignore_env: false,
        };
        let inner = call(py, || Store::open_with(&options))?;
        Ok(NativeStore { inner })
    }

    #[getter]
    fn store_dir(&self) -> PathBuf {
        self.inner.store_dir().to_path_buf()
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

    /// `(revision, generation)`.
    fn put(&self, py: Python<'_>, tenant: &str, token_response: &str) -> PyResult<(u64, u64)> {
        let r = call(py, || self.inner.put(tenant, token_response))?;
        Ok((r.revision, r.generation))
    }

    /// `(token, token_type, expires_at_ms, revision, refreshed)`; `min_valid` in seconds.
    fn token(&self, py: Python<'_>, tenant: &str, min_valid: f64) -> PyResult<TokenTuple> {
        let min_valid_ms = if min_valid.is_finite() && min_valid >= 0.0 {
            (min_valid * 1000.0).round() as u64 // saturates
        } else {
            let e = credlock::open::seconds_ms("min_valid", min_valid).unwrap_err();
            return Err(py_err(py, e.into()));
        };
        call(py, || self.inner.token(tenant, min_valid_ms)).map(token_tuple)
    }

    #[pyo3(signature = (tenant, rejected=None, rejected_sha256=None))]
    fn refresh(
        &self,
        py: Python<'_>,
        tenant: &str,
        rejected: Option<String>,
        rejected_sha256: Option<&str>,
    ) -> PyResult<TokenTuple> {
        let rejected = secret(rejected);
        call(py, || match &rejected {
            Some(t) => self.inner.refresh_rejected(tenant, t.trim()),
            None => self.inner.refresh(tenant, rejected_sha256),
        })
        .map(token_tuple)
    }

    #[allow(clippy::type_complexity)]
    fn list(
        &self,
        py: Python<'_>,
    ) -> PyResult<
        Vec<(
            String,
            String,
            Option<u64>,
            bool,
            Option<String>,
            Option<String>,
            Option<String>,
            u64,
            bool,
            bool,
        )>,
    > {
        let v = call(py, || self.inner.list())?;
        Ok(v.into_iter()
            .map(|t| {
                (
                    t.tenant,
                    t.token_type,
                    t.expires_at_ms,
                    t.has_refresh_token,
                    t.scope,
                    t.token_endpoint,
                    t.client_id,
                    t.revision,
                    t.needs_reauth,
                    t.refresh_intent,
                )
            })
            .collect())
    }

    fn delete(&self, py: Python<'_>, tenant: &str) -> PyResult<bool> {
        call(py, || self.inner.delete(tenant))
    }

    fn attachment(&self, py: Python<'_>, tenant: &str, name: &str) -> PyResult<Option<String>> {
        call(py, || self.inner.attachment(tenant, name))
    }

    /// `(revision, generation)`.
    #[pyo3(signature = (tenant, name, value=None))]
    fn set_attachment(
        &self,
        py: Python<'_>,
        tenant: &str,
        name: &str,
        value: Option<&str>,
    ) -> PyResult<(u64, u64)> {
        let r = call(py, || self.inner.set_attachment(tenant, name, value))?;
        Ok((r.revision, r.generation))
    }

    fn info(&self, py: Python<'_>) -> PyResult<InfoTuple> {
        call(py, || self.inner.info()).map(info_tuple)
    }

    fn slots(&self, py: Python<'_>) -> PyResult<Vec<SlotTuple>> {
        call(py, || self.inner.slots()).map(slot_tuples)
    }

    #[pyo3(signature = (kind, new_passphrase=None))]
    fn add_slot(
        &self,
        py: Python<'_>,
        kind: &str,
        new_passphrase: Option<String>,
    ) -> PyResult<Vec<SlotTuple>> {
        let p = secret(new_passphrase);
        call(py, || self.inner.add_slot(kind, p)).map(slot_tuples)
    }

    fn remove_slot(
        &self,
        py: Python<'_>,
        index: u32,
        allow_volatile_only: bool,
    ) -> PyResult<Vec<SlotTuple>> {
        call(py, || self.inner.remove_slot(index, allow_volatile_only)).map(slot_tuples)
    }

    fn rekey(&self, py: Python<'_>) -> PyResult<InfoTuple> {
        call(py, || self.inner.rekey()).map(info_tuple)
    }

    #[pyo3(signature = (source, tenant, replace, kind=None, account=None))]
    fn import_tokens(
        &self,
        py: Python<'_>,
        source: String,
        tenant: Option<&str>,
        replace: bool,
        kind: Option<String>,
        account: Option<String>,
    ) -> PyResult<ImportTuple> {
        let source = Zeroizing::new(source);
        let how = credlock::ImportOptions {
            replace,
            kind,
            account,
            saved_at_ms: None,
        };
        call(py, || self.inner.import_tokens(&source, tenant, &how)).map(import_tuple)
    }

    /// `(imported, skipped, generation, source_removed, kept_reason)`.
    #[pyo3(signature = (path, tenant, replace, remove_source, kind=None, account=None))]
    #[allow(clippy::too_many_arguments)]
    fn import_file(
        &self,
        py: Python<'_>,
        path: PathBuf,
        tenant: Option<&str>,
        replace: bool,
        remove_source: bool,
        kind: Option<String>,
        account: Option<String>,
    ) -> PyResult<ImportFileTuple> {
        let how = credlock::ImportOptions {
            replace,
            kind,
            account,
            saved_at_ms: None,
        };
        let r = call(py, || {
            self.inner.import_file(&path, tenant, &how, remove_source)
        })?;
        let (a, b, c) = import_tuple(r.report);
        Ok((a, b, c, r.source_removed, r.kept_reason))
    }

    /// `(quarantined_as, generation, tenants, refresh_unknown)`.
    fn recover(
        &self,
        py: Python<'_>,
        force: bool,
    ) -> PyResult<(Option<String>, u64, u32, Vec<String>)> {
        let r = call(py, || self.inner.recover(force))?;
        Ok((r.quarantined_as, r.generation, r.tenants, r.refresh_unknown))
    }

    fn quarantine(&self, py: Python<'_>, force: bool) -> PyResult<String> {
        call(py, || self.inner.quarantine(force))
    }

    /// `(token tuple, joined)`. `on_prompt` is called (with the GIL) with a dict: kind, url,
    /// user_code, url_complete, expires_at_ms, joined.
    #[pyo3(signature = (tenant, client_id, issuer, client_secret, scope, browser, open_browser,
        audience, resource, authorization_endpoint, token_endpoint,
        device_authorization_endpoint, revocation_endpoint, on_prompt))]
    #[allow(clippy::too_many_arguments)]
    fn login(
        &self,
        py: Python<'_>,
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
    ) -> PyResult<(TokenTuple, bool, bool)> {
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
                    let d = PyDict::new(py);
                    let set = || -> PyResult<()> {
                        d.set_item("kind", &p.kind)?;
                        d.set_item("url", &p.url)?;
                        d.set_item("user_code", &p.user_code)?;
                        d.set_item("url_complete", &p.url_complete)?;
                        d.set_item("expires_at_ms", p.expires_at_ms)?;
                        d.set_item("joined", p.joined)?;
                        Ok(())
                    };
                    // A callback that raises cannot stop the login (it waits for the
                    // server either way); Python reports it as unraisable.
                    if let Err(e) = set().and_then(|()| cb.call1(py, (d,)).map(|_| ())) {
                        e.write_unraisable(py, None);
                    }
                })
            })
        });
        let o = call(py, || self.inner.login(tenant, &request, sink))?;
        Ok((token_tuple(o.token), o.joined, o.refreshable))
    }

    /// `(revocation, why, deleted)`: revocation is `revoked`, `not-offered` or `failed`.
    fn logout(
        &self,
        py: Python<'_>,
        tenant: &str,
        local: bool,
    ) -> PyResult<(String, Option<String>, bool)> {
        let r = call(py, || self.inner.logout(tenant, local))?;
        let (what, why) = match r.revocation {
            credlock::Revocation::Revoked => ("revoked", None),
            credlock::Revocation::NotOffered => ("not-offered", None),
            credlock::Revocation::Failed(why) => ("failed", Some(why)),
        };
        Ok((what.to_owned(), why, r.deleted))
    }

    /// `[(tenant, kind, started_at_ms, expires_at_ms, understood)]`.
    fn pending_logins(&self, py: Python<'_>) -> PyResult<Vec<PendingTuple>> {
        let v = call(py, || self.inner.pending_logins())?;
        Ok(v.into_iter()
            .map(|p| {
                (
                    p.tenant,
                    p.kind,
                    p.started_at_ms,
                    p.expires_at_ms,
                    p.understood,
                )
            })
            .collect())
    }
}

/// The store directory used when none is given and `CREDLOCK_STORE` is unset.
#[pyfunction]
fn default_store_dir() -> Option<PathBuf> {
    credlock::layout::default_store_dir()
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
