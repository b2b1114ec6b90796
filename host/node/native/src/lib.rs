//! The Node.js binding of credlock: a thin napi-rs layer over [`credlock::Store`].
//!
//! Everything real (locks, files, key slots, the KDF, AEAD, HTTP, the environment rules,
//! every error message) is the Rust host library's. This crate converts types, runs the
//! `*Async` variants on the libuv thread pool (napi `AsyncTask`) so that a lock wait or a
//! refresh never blocks the event loop, and hands errors to JavaScript as the host's one
//! [`credlock::ErrorReport`].
//!
//! Errors: a store error is thrown as a JS `Error` whose message is
//! `ERROR_MARK + report-as-JSON`; `src/index.js` turns it into a `CredlockError` (the same
//! for a sync throw and an async rejection). Anything else is a plain `Error`.
#![deny(clippy::all)]

mod login;
// The operations that follow the bindings' conventions, generated from wit/store.wit.
mod operations;
// The generated operations name every result type at the crate root.
pub(crate) use login::PendingLogin;

use credlock::{Error as CredError, OpenOptions, StoreError};
use napi::bindgen_prelude::{AsyncTask, Buffer, Either};
use napi::{Env, Task};
use napi_derive::napi;
use std::sync::{Arc, RwLock};
use zeroize::Zeroizing;

/// The prefix of a thrown store error's message (the rest is the report as JSON).
#[napi]
pub const ERROR_MARK: &str = "\u{1}credlock-error:";

fn report_error(e: &CredError) -> napi::Error {
    napi::Error::from_reason(format!("{ERROR_MARK}{}", e.report().to_json()))
}

fn invalid_options(why: &str) -> CredError {
    CredError::Store(StoreError::InvalidOptions(why.to_owned()))
}

type CResult<T> = Result<T, CredError>;

fn to_napi<T>(r: CResult<T>) -> napi::Result<T> {
    r.map_err(|e| report_error(&e))
}

// ----- options -----

/// `Store.open`'s settings, read by name by the host (`OpenOptions::from_json`); only the
/// store path is Node's to settle: relative to the process's directory now, so a later
/// `process.chdir` does not move the store.
fn open_options(json: &str) -> CResult<OpenOptions> {
    let mut o = OpenOptions::from_json(json).map_err(CredError::Store)?;
    o.store_dir = match o.store_dir.take() {
        None => None,
        Some(d) if d.as_os_str().is_empty() => {
            return Err(invalid_options("the store path must be a non-empty string"))
        }
        // A database URL is a store too (a fleet's); only a path is made absolute.
        Some(d) if d.to_str().is_some_and(credlock::pg::database::is_url) => Some(d),
        Some(d) => Some(std::path::absolute(&d).unwrap_or(d)),
    };
    Ok(o)
}

/// `$XDG_DATA_HOME/credlock`, else `~/.local/share/credlock`: the CLI's default.
#[napi]
pub fn default_store_dir() -> Option<String> {
    credlock::layout::default_store_dir().map(|p| p.display().to_string())
}

/// The version every credlock artifact shares (credlock::build_info).
#[napi]
pub fn version() -> &'static str {
    credlock::build_info::VERSION
}

/// Hex SHA-256 of the component this addon embeds.
#[napi]
pub fn component_sha256() -> &'static str {
    credlock::build_info::COMPONENT_SHA256
}

// ----- argument conversions -----

fn tenant(v: &serde_json::Value) -> CResult<&str> {
    v.as_str()
        .ok_or_else(|| CredError::Store(StoreError::InvalidTenant("not a string".into())))
}

/// Seconds of remaining validity as ms; negative or NaN refused, saturating like the CLI.
fn min_valid_ms(s: Option<f64>) -> CResult<u64> {
    match s {
        None => Ok(60_000),
        Some(s) if s.is_nan() || s < 0.0 => Err(invalid_options(
            "minValid must be a non-negative number of seconds",
        )),
        // `as` saturates: Infinity and anything beyond u64 become u64::MAX.
        Some(s) => Ok((s * 1000.0).round() as u64),
    }
}

fn rejected_sha256(rejected: Option<String>, sha: Option<String>) -> CResult<Option<String>> {
    match (rejected, sha) {
        (Some(_), Some(_)) => Err(invalid_options("give rejected or rejectedSha256, not both")),
        // Hashed here: the refused token itself never goes further.
        (Some(t), None) => Ok(Some(credlock::sha256_hex(t.trim().as_bytes()))),
        (None, s) => Ok(s),
    }
}

fn slot_index(i: f64) -> CResult<u32> {
    if i.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&i) {
        Ok(i as u32)
    } else {
        Err(invalid_options(
            "the slot index must be a whole number from 0",
        ))
    }
}

fn token_source(src: Either<String, Buffer>) -> CResult<Zeroizing<String>> {
    match src {
        Either::A(s) => Ok(Zeroizing::new(s)),
        Either::B(b) => Ok(credlock::source::read_limited(&b[..], "the token source")?),
    }
}

fn token_response(r: Option<String>) -> CResult<String> {
    r.ok_or_else(|| CredError::Store(StoreError::InvalidTokenResponse("not a JSON object".into())))
}

// ----- results -----

#[napi(object)]
pub struct WriteReceipt {
    pub revision: f64,
    pub generation: f64,
}

#[napi(object)]
pub struct AccessToken {
    pub token: String,
    pub token_type: String,
    pub expires_at_ms: Option<f64>,
    pub revision: f64,
    pub refreshed: bool,
}

#[napi(object)]
pub struct TenantSummary {
    pub tenant: String,
    pub token_type: String,
    pub expires_at_ms: Option<f64>,
    pub has_refresh_token: bool,
    pub scope: Option<String>,
    pub token_endpoint: Option<String>,
    pub client_id: Option<String>,
    pub revision: f64,
    pub needs_reauth: bool,
    pub refresh_intent: bool,
}

#[napi(object)]
pub struct StoreInfo {
    pub exists: bool,
    pub generation: f64,
    pub format_version: u32,
    pub key_id: String,
    pub slot_kinds: Vec<String>,
    pub tenants: u32,
}

#[napi(object)]
pub struct KeySlotInfo {
    pub index: u32,
    pub kind: String,
    pub describe: String,
    pub durable: bool,
}

#[napi(object)]
pub struct ImportReport {
    pub imported: Vec<String>,
    pub skipped: Vec<Vec<String>>,
    pub generation: f64,
}

#[napi(object)]
pub struct ImportFileReport {
    pub imported: Vec<String>,
    pub skipped: Vec<Vec<String>>,
    pub generation: f64,
    pub source_removed: bool,
    pub kept_reason: Option<String>,
}

#[napi(object)]
pub struct RecoverReport {
    pub quarantined_as: Option<String>,
    pub generation: f64,
    pub tenants: u32,
    pub refresh_unknown: Vec<String>,
}

impl From<credlock::WriteReceipt> for WriteReceipt {
    fn from(r: credlock::WriteReceipt) -> Self {
        WriteReceipt {
            revision: r.revision as f64,
            generation: r.generation as f64,
        }
    }
}

impl From<credlock::AccessToken> for AccessToken {
    fn from(t: credlock::AccessToken) -> Self {
        AccessToken {
            expires_at_ms: t.expires_at_ms.map(|v| v as f64),
            revision: t.revision as f64,
            refreshed: t.refreshed,
            token_type: t.token_type.clone(),
            token: t.token.clone(),
        }
    }
}

impl From<credlock::TenantSummary> for TenantSummary {
    fn from(t: credlock::TenantSummary) -> Self {
        TenantSummary {
            tenant: t.tenant,
            token_type: t.token_type,
            expires_at_ms: t.expires_at_ms.map(|v| v as f64),
            has_refresh_token: t.has_refresh_token,
            scope: t.scope,
            token_endpoint: t.token_endpoint,
            client_id: t.client_id,
            revision: t.revision as f64,
            needs_reauth: t.needs_reauth,
            refresh_intent: t.refresh_intent,
        }
    }
}

impl From<credlock::StoreInfo> for StoreInfo {
    fn from(i: credlock::StoreInfo) -> Self {
        StoreInfo {
            exists: i.exists,
            generation: i.generation as f64,
            format_version: u32::from(i.format_version),
            key_id: i.key_id,
            slot_kinds: i.slot_kinds,
            tenants: i.tenants,
        }
    }
}

fn slots(v: Vec<credlock::SlotInfo>) -> Vec<KeySlotInfo> {
    v.into_iter()
        .map(|s| KeySlotInfo {
            index: s.index,
            kind: s.kind,
            describe: s.describe,
            durable: s.durable,
        })
        .collect()
}

fn skipped(v: Vec<(String, String)>) -> Vec<Vec<String>> {
    v.into_iter().map(|(a, b)| vec![a, b]).collect()
}

impl From<credlock::ImportReport> for ImportReport {
    fn from(r: credlock::ImportReport) -> Self {
        ImportReport {
            imported: r.imported,
            skipped: skipped(r.skipped),
            generation: r.generation as f64,
        }
    }
}

impl From<credlock::ImportFileReport> for ImportFileReport {
    fn from(r: credlock::ImportFileReport) -> Self {
        ImportFileReport {
            imported: r.report.imported,
            skipped: skipped(r.report.skipped),
            generation: r.report.generation as f64,
            source_removed: r.source_removed,
            kept_reason: r.kept_reason,
        }
    }
}

impl From<credlock::RecoverReport> for RecoverReport {
    fn from(r: credlock::RecoverReport) -> Self {
        RecoverReport {
            quarantined_as: r.quarantined_as,
            generation: r.generation as f64,
            tenants: r.tenants,
            refresh_unknown: r.refresh_unknown,
        }
    }
}

// ----- async -----

type Job<R> = Box<dyn FnOnce() -> napi::Result<R> + Send>;

/// One store call on the libuv thread pool; resolves with its converted result.
pub struct StoreTask<R: Send + 'static> {
    job: Option<Job<R>>,
}

impl<R> Task for StoreTask<R>
where
    R: Send + 'static + napi::bindgen_prelude::ToNapiValue + napi::bindgen_prelude::TypeName,
{
    type Output = R;
    type JsValue = R;

    fn compute(&mut self) -> napi::Result<R> {
        let job = self.job.take().expect("a task is computed once");
        job()
    }

    fn resolve(&mut self, _env: Env, output: R) -> napi::Result<R> {
        Ok(output)
    }
}

// ----- the store -----

/// An open store. `src/index.js` wraps it; use that.
#[napi]
pub struct NativeStore {
    inner: RwLock<Option<Arc<credlock::Store>>>,
    path: String,
}

const CLOSED: &str = "this credlock Store is closed";

impl NativeStore {
    fn store(&self) -> napi::Result<Arc<credlock::Store>> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| napi::Error::from_reason(CLOSED))
    }
}

#[napi]
impl NativeStore {
    /// Open the store: explicit options, then the `CREDLOCK_*` environment, then defaults.
    #[napi(factory)]
    pub fn open(options_json: String) -> napi::Result<NativeStore> {
        let store =
            to_napi(open_options(&options_json).and_then(|o| credlock::Store::open_with(&o)))?;
        Ok(NativeStore {
            path: store.store_dir().display().to_string(),
            inner: RwLock::new(Some(Arc::new(store))),
        })
    }

    #[napi(getter)]
    pub fn path(&self) -> String {
        self.path.clone()
    }

    /// Release the pooled instances; later calls throw. Calls already running finish.
    #[napi]
    pub fn close(&self) {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).take();
    }

    #[napi]
    pub fn init(&self) -> napi::Result<bool> {
        to_napi(self.store()?.init())
    }

    #[napi]
    pub fn put(
        &self,
        tenant: serde_json::Value,
        response: Option<String>,
    ) -> napi::Result<WriteReceipt> {
        let s = self.store()?;
        to_napi((|| {
            Ok(s.put(self::tenant(&tenant)?, &token_response(response)?)?
                .into())
        })())
    }

    /// The access token alone: the hot path, one string back.
    #[napi]
    pub fn token(&self, tenant: serde_json::Value, min_valid: Option<f64>) -> napi::Result<String> {
        let s = self.store()?;
        to_napi((|| {
            Ok(s.token(self::tenant(&tenant)?, min_valid_ms(min_valid)?)?
                .token
                .clone())
        })())
    }

    #[napi]
    pub fn token_info(
        &self,
        tenant: serde_json::Value,
        min_valid: Option<f64>,
    ) -> napi::Result<AccessToken> {
        let s = self.store()?;
        to_napi((|| {
            Ok(s.token(self::tenant(&tenant)?, min_valid_ms(min_valid)?)?
                .into())
        })())
    }

    #[napi]
    pub fn refresh(
        &self,
        tenant: serde_json::Value,
        rejected: Option<String>,
        rejected_sha256: Option<String>,
    ) -> napi::Result<AccessToken> {
        let s = self.store()?;
        to_napi((|| {
            let t = self::tenant(&tenant)?;
            let sha = self::rejected_sha256(rejected, rejected_sha256)?;
            Ok(s.refresh(t, sha.as_deref())?.into())
        })())
    }

    #[napi]
    pub fn list(&self) -> napi::Result<Vec<TenantSummary>> {
        to_napi(
            self.store()?
                .list()
                .map(|v| v.into_iter().map(Into::into).collect()),
        )
    }

    #[napi]
    pub fn delete(&self, tenant: serde_json::Value) -> napi::Result<bool> {
        let s = self.store()?;
        to_napi((|| s.delete(self::tenant(&tenant)?))())
    }

    #[napi]
    pub fn attachment(
        &self,
        tenant: serde_json::Value,
        name: String,
    ) -> napi::Result<Option<String>> {
        let s = self.store()?;
        to_napi((|| s.attachment(self::tenant(&tenant)?, &name))())
    }

    #[napi]
    pub fn set_attachment(
        &self,
        tenant: serde_json::Value,
        name: String,
        value: Option<String>,
    ) -> napi::Result<WriteReceipt> {
        let s = self.store()?;
        to_napi((|| {
            Ok(
                s.set_attachment(self::tenant(&tenant)?, &name, value.as_deref())?
                    .into(),
            )
        })())
    }

    #[napi]
    pub fn slots(&self) -> napi::Result<Vec<KeySlotInfo>> {
        to_napi(self.store()?.slots().map(slots))
    }

    /// `passphrase`: the NEW passphrase of a `passphrase` slot, seen by this call only.
    #[napi]
    pub fn add_slot(
        &self,
        kind: String,
        passphrase: Option<String>,
    ) -> napi::Result<Vec<KeySlotInfo>> {
        to_napi(add_slot(&*self.store()?, &kind, passphrase))
    }

    #[napi]
    pub fn remove_slot(
        &self,
        index: f64,
        allow_volatile_only: Option<bool>,
    ) -> napi::Result<Vec<KeySlotInfo>> {
        to_napi(remove_slot(&*self.store()?, index, allow_volatile_only))
    }

    #[napi]
    pub fn import_tokens(
        &self,
        source: Either<String, Buffer>,
        tenant: Option<String>,
        replace: Option<bool>,
        kind: Option<String>,
        account: Option<String>,
    ) -> napi::Result<ImportReport> {
        let s = self.store()?;
        let how = import_options(replace, kind, account);
        to_napi((|| {
            let text = token_source(source)?;
            Ok(s.import_tokens(&text, tenant.as_deref(), &how)?.into())
        })())
    }

    #[napi]
    pub fn import_file(
        &self,
        file: String,
        tenant: Option<String>,
        replace: Option<bool>,
        remove_source: Option<bool>,
        kind: Option<String>,
        account: Option<String>,
    ) -> napi::Result<ImportFileReport> {
        let s = self.store()?;
        let how = import_options(replace, kind, account);
        to_napi(
            s.import_file(
                file.as_ref(),
                tenant.as_deref(),
                &how,
                remove_source.unwrap_or(false),
            )
            .map(Into::into),
        )
    }

    #[napi]
    pub fn quarantine(&self, force: Option<bool>) -> napi::Result<String> {
        to_napi(self.store()?.quarantine(force.unwrap_or(false)))
    }

    // ----- the same on the libuv thread pool -----

    /// Run `job` on the libuv pool with this store; a closed store rejects.
    fn spawn<R: Send + 'static>(
        &self,
        job: impl FnOnce(&credlock::Store) -> CResult<R> + Send + 'static,
    ) -> AsyncTask<StoreTask<R>>
    where
        StoreTask<R>: Task,
    {
        let store = self.store();
        AsyncTask::new(StoreTask {
            job: Some(Box::new(move || to_napi(job(&*store?)))),
        })
    }

    #[napi(ts_return_type = "Promise<string>")]
    pub fn token_async(
        &self,
        tenant: serde_json::Value,
        min_valid: Option<f64>,
    ) -> AsyncTask<StoreTask<String>> {
        self.spawn(move |s| {
            Ok(s.token(self::tenant(&tenant)?, min_valid_ms(min_valid)?)?
                .token
                .clone())
        })
    }

    #[napi(ts_return_type = "Promise<AccessToken>")]
    pub fn token_info_async(
        &self,
        tenant: serde_json::Value,
        min_valid: Option<f64>,
    ) -> AsyncTask<StoreTask<AccessToken>> {
        self.spawn(move |s| {
            Ok(s.token(self::tenant(&tenant)?, min_valid_ms(min_valid)?)?
                .into())
        })
    }

    #[napi(ts_return_type = "Promise<WriteReceipt>")]
    pub fn put_async(
        &self,
        tenant: serde_json::Value,
        response: Option<String>,
    ) -> AsyncTask<StoreTask<WriteReceipt>> {
        self.spawn(move |s| {
            Ok(s.put(self::tenant(&tenant)?, &token_response(response)?)?
                .into())
        })
    }

    #[napi(ts_return_type = "Promise<AccessToken>")]
    pub fn refresh_async(
        &self,
        tenant: serde_json::Value,
        rejected: Option<String>,
        rejected_sha256: Option<String>,
    ) -> AsyncTask<StoreTask<AccessToken>> {
        self.spawn(move |s| {
            let t = self::tenant(&tenant)?;
            let sha = self::rejected_sha256(rejected, rejected_sha256)?;
            Ok(s.refresh(t, sha.as_deref())?.into())
        })
    }

    #[napi(ts_return_type = "Promise<TenantSummary[]>")]
    pub fn list_async(&self) -> AsyncTask<StoreTask<Vec<TenantSummary>>> {
        self.spawn(|s| s.list().map(|v| v.into_iter().map(Into::into).collect()))
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn delete_async(&self, tenant: serde_json::Value) -> AsyncTask<StoreTask<bool>> {
        self.spawn(move |s| s.delete(self::tenant(&tenant)?))
    }

    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn attachment_async(
        &self,
        tenant: serde_json::Value,
        name: String,
    ) -> AsyncTask<StoreTask<Option<String>>> {
        self.spawn(move |s| s.attachment(self::tenant(&tenant)?, &name))
    }

    #[napi(ts_return_type = "Promise<WriteReceipt>")]
    pub fn set_attachment_async(
        &self,
        tenant: serde_json::Value,
        name: String,
        value: Option<String>,
    ) -> AsyncTask<StoreTask<WriteReceipt>> {
        self.spawn(move |s| {
            Ok(
                s.set_attachment(self::tenant(&tenant)?, &name, value.as_deref())?
                    .into(),
            )
        })
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn init_async(&self) -> AsyncTask<StoreTask<bool>> {
        self.spawn(|s| s.init())
    }

    #[napi(ts_return_type = "Promise<ImportFileReport>")]
    pub fn import_file_async(
        &self,
        file: String,
        tenant: Option<String>,
        replace: Option<bool>,
        remove_source: Option<bool>,
        kind: Option<String>,
        account: Option<String>,
    ) -> AsyncTask<StoreTask<ImportFileReport>> {
        let how = import_options(replace, kind, account);
        self.spawn(move |s| {
            Ok(s.import_file(
                file.as_ref(),
                tenant.as_deref(),
                &how,
                remove_source.unwrap_or(false),
            )?
            .into())
        })
    }

    #[napi]
    pub fn slots_async(&self) -> AsyncTask<StoreTask<Vec<KeySlotInfo>>> {
        self.spawn(|s| Ok(slots(s.slots()?)))
    }

    #[napi]
    pub fn add_slot_async(
        &self,
        kind: String,
        passphrase: Option<String>,
    ) -> AsyncTask<StoreTask<Vec<KeySlotInfo>>> {
        self.spawn(move |s| add_slot(s, &kind, passphrase))
    }

    #[napi]
    pub fn remove_slot_async(
        &self,
        index: f64,
        allow_volatile_only: Option<bool>,
    ) -> AsyncTask<StoreTask<Vec<KeySlotInfo>>> {
        self.spawn(move |s| remove_slot(s, index, allow_volatile_only))
    }

    /// The source is copied out of the JS value on this thread; the import runs on the pool.
    #[napi]
    pub fn import_tokens_async(
        &self,
        source: Either<String, Buffer>,
        tenant: Option<String>,
        replace: Option<bool>,
        kind: Option<String>,
        account: Option<String>,
    ) -> napi::Result<AsyncTask<StoreTask<ImportReport>>> {
        let text = to_napi(token_source(source))?;
        let how = import_options(replace, kind, account);
        Ok(self.spawn(move |s| Ok(s.import_tokens(&text, tenant.as_deref(), &how)?.into())))
    }

    #[napi]
    pub fn quarantine_async(&self, force: Option<bool>) -> AsyncTask<StoreTask<String>> {
        self.spawn(move |s| s.quarantine(force.unwrap_or(false)))
    }
}

/// `addSlot`, on whichever thread runs it.
fn add_slot(
    s: &credlock::Store,
    kind: &str,
    passphrase: Option<String>,
) -> CResult<Vec<KeySlotInfo>> {
    if passphrase.is_some() && kind != "passphrase" {
        return Err(invalid_options(
            "a passphrase is given only for a passphrase slot",
        ));
    }
    Ok(slots(s.add_slot(kind, passphrase.map(Zeroizing::new))?))
}

/// `removeSlot`, on whichever thread runs it.
fn remove_slot(
    s: &credlock::Store,
    index: f64,
    allow_volatile_only: Option<bool>,
) -> CResult<Vec<KeySlotInfo>> {
    Ok(slots(s.remove_slot(
        slot_index(index)?,
        allow_volatile_only.unwrap_or(false),
    )?))
}

/// `importTokens`/`importFile`'s options: the kind of file is detected unless named.
fn import_options(
    replace: Option<bool>,
    kind: Option<String>,
    account: Option<String>,
) -> credlock::ImportOptions {
    credlock::ImportOptions {
        replace: replace.unwrap_or(false),
        kind,
        account,
        saved_at_ms: None,
    }
}
