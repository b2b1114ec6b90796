//! The WIT imports served from a core [`Platform`]: each converts its arguments, calls the
//! platform, and converts the answer back. Where the hosts that use this differ, they say so
//! through [`Hooks`]; nothing else here knows which host it serves.

use crate::{
    clock, files, locks, login, random, sealing, token_endpoint, types, Credlock, CredlockPre,
    LockGuard, SealingKey,
};
use credlock_core::platform::{self as core_p, LoginPlatform, SealingKey as _};
use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceTable};
use wasmtime::Engine;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// A platform the imports can be served from: the core's seam (with its login part), plus
/// what the WIT asks beyond it.
pub trait WitPlatform:
    LoginPlatform<Guard: Send + 'static, Key: Send + 'static> + Send + 'static
{
    /// `lock-guard.release`: let go of the lock now. Dropping the guard later (when the
    /// guest drops the handle, or the store is torn down) must then do nothing more.
    fn release(guard: &mut Self::Guard);
}

/// What a resource table that is full was asked to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    Lock,
    Key,
}

/// Where the hosts differ. Every default is the shipped host's behaviour; the simulator
/// overrides them to fail loudly (a simulated run never reaches a limit) and to inject its
/// deliberate faults. Called only on the paths named, so a host that overrides nothing pays
/// nothing: `H` is a type parameter, not a trait object.
pub trait Hooks<P: WitPlatform>: Send + 'static {
    /// The panic message for a key handle this host never gave out. The component model
    /// hands a host function only handles of live resources it made, so a failed lookup is
    /// a bug in the host, never the store's fault: it panics (the call fails as an internal
    /// error), rather than returning an error the core would report as a damaged slot.
    const HANDLE_BUG: &'static str =
        "credlock host bug: the component passed a key handle this host does not hold";

    /// A refresh lock's id as the guest sent it, before it reaches the platform. The WIT
    /// promises 64 lowercase hex; a guest that sends anything else must not get to choose a
    /// path.
    fn check_refresh_id(&mut self, id: &str) -> Result<(), core_p::IoError> {
        if !is_refresh_id(id) {
            return Err(core_p::IoError::Other("invalid refresh lock id".into()));
        }
        Ok(())
    }

    /// The resource table is full: the error the guest gets. A full table is this process's
    /// limit, not damage to the store.
    fn table_full(&mut self, held: Held) -> core_p::IoError {
        core_p::IoError::Other(
            match held {
                Held::Lock => "too many held locks",
                Held::Key => "this process holds too many open keys",
            }
            .into(),
        )
    }

    /// `release` of a lock guard handle this host does not hold: nothing to release.
    fn release_unheld(&mut self) {}

    /// Before `files.read` reads `file`.
    fn before_read(&mut self, _platform: &mut P, _file: core_p::StoreFile) {}

    /// After `random.fill` filled `buf`, before the guest gets it.
    fn after_fill(&mut self, _buf: &mut Vec<u8>) {}
}

/// The WIT's form of a refresh lock's id: 64 lowercase hex (a SHA-256), nothing that could
/// name another path.
fn is_refresh_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The shipped host's behaviour: every [`Hooks`] default.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shipped;

impl<P: WitPlatform> Hooks<P> for Shipped {}

/// What one wasmtime `Store` holds: the platform the imports are served from, the resource
/// table (lock guards, sealing keys, WASI's resources), the WASI context, and the hooks.
pub struct HostState<P, H = Shipped> {
    pub platform: P,
    pub hooks: H,
    table: ResourceTable,
    wasi: WasiCtx,
}

impl<P: WitPlatform, H: Hooks<P>> HostState<P, H> {
    /// A state with an empty table and an empty WASI context: Rust's std makes the guest
    /// import WASI p2, and it gets no files, no environment, no clock it may use, no network.
    /// Everything real goes through credlock's own imports.
    pub fn new(platform: P, hooks: H) -> Self {
        HostState {
            platform,
            hooks,
            table: ResourceTable::new(),
            wasi: WasiCtx::builder().build(),
        }
    }

    fn guard(handle: &Resource<LockGuard>) -> Resource<P::Guard> {
        Resource::new_borrow(handle.rep())
    }

    fn key(&self, handle: &Resource<SealingKey>) -> &P::Key {
        self.table
            .get(&Resource::<P::Key>::new_borrow(handle.rep()))
            .expect(H::HANDLE_BUG)
    }

    fn push_key(&mut self, key: P::Key) -> Result<Resource<SealingKey>, sealing::KeyError> {
        match self.table.push(key) {
            Ok(r) => Ok(Resource::new_own(r.rep())),
            Err(_) => Err(sealing::KeyError::Io(
                self.hooks.table_full(Held::Key).into(),
            )),
        }
    }
}

impl<P, H> WasiView for HostState<P, H>
where
    P: Send + 'static,
    H: Send + 'static,
{
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A linker with WASI p2 and every credlock import served by `HostState<P, H>`, and the
/// component instantiated against it, ready to instantiate per store.
pub fn linker<P: WitPlatform, H: Hooks<P>>(
    engine: &Engine,
    component: &Component,
) -> wasmtime::Result<CredlockPre<HostState<P, H>>> {
    let mut linker = Linker::<HostState<P, H>>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    Credlock::add_to_linker::<HostState<P, H>, HasSelf<HostState<P, H>>>(&mut linker, |s| s)?;
    CredlockPre::new(linker.instantiate_pre(component)?)
}

impl<P: WitPlatform, H: Hooks<P>> types::Host for HostState<P, H> {}

impl<P: WitPlatform, H: Hooks<P>> locks::Host for HostState<P, H> {
    fn acquire(
        &mut self,
        target: locks::LockTarget,
        mode: locks::LockMode,
        timeout_ms: u32,
    ) -> Result<Resource<LockGuard>, locks::LockError> {
        if let locks::LockTarget::Refresh(id) = &target {
            self.hooks
                .check_refresh_id(id)
                .map_err(|e| locks::LockError::Io(e.into()))?;
        }
        let guard = self
            .platform
            .acquire(&target.into(), mode.into(), timeout_ms)?;
        match self.table.push(guard) {
            Ok(r) => Ok(Resource::new_own(r.rep())),
            Err(_) => Err(locks::LockError::Io(
                self.hooks.table_full(Held::Lock).into(),
            )),
        }
    }
}

impl<P: WitPlatform, H: Hooks<P>> locks::HostLockGuard for HostState<P, H> {
    fn release(&mut self, guard: Resource<LockGuard>) {
        match self.table.get_mut(&Self::guard(&guard)) {
            Ok(g) => P::release(g),
            Err(_) => self.hooks.release_unheld(),
        }
    }

    fn drop(&mut self, guard: Resource<LockGuard>) -> wasmtime::Result<()> {
        self.table
            .delete(Resource::<P::Guard>::new_own(guard.rep()))?;
        Ok(())
    }
}

fn blob(read: Option<Vec<u8>>) -> files::Blob {
    match read {
        Some(bytes) => files::Blob::Present(bytes),
        None => files::Blob::Absent,
    }
}

impl<P: WitPlatform, H: Hooks<P>> files::Host for HostState<P, H> {
    fn read(&mut self, file: files::StoreFile) -> Result<files::Blob, files::FileError> {
        self.hooks.before_read(&mut self.platform, file.into());
        Ok(blob(self.platform.read(file.into())?))
    }

    fn replace(
        &mut self,
        file: files::StoreFile,
        contents: Vec<u8>,
    ) -> Result<(), files::FileError> {
        Ok(self.platform.replace(file.into(), &contents)?)
    }

    fn remove(&mut self, file: files::StoreFile) -> Result<(), files::FileError> {
        Ok(self.platform.remove(file.into())?)
    }

    fn quarantine(&mut self, file: files::StoreFile) -> Result<String, files::FileError> {
        Ok(self.platform.quarantine(file.into())?)
    }

    fn store_layout(&mut self) -> files::Layout {
        self.platform.layout().into()
    }

    fn read_record(&mut self, id: String) -> Result<files::Blob, files::FileError> {
        Ok(blob(self.platform.read_record(&id)?))
    }

    fn read_records(&mut self) -> Result<Vec<(String, Vec<u8>)>, files::FileError> {
        Ok(self.platform.read_records()?)
    }

    fn write_records(
        &mut self,
        store: Vec<u8>,
        records: Vec<files::RecordWrite>,
    ) -> Result<(), files::FileError> {
        let records: Vec<core_p::RecordWrite> = records.into_iter().map(Into::into).collect();
        Ok(self.platform.write_records(&store, &records)?)
    }

    fn queue_enabled(&mut self) -> bool {
        self.platform.queue_enabled()
    }

    fn queue_post(&mut self, id: String, sealed: Vec<u8>) -> Result<(), files::FileError> {
        Ok(self.platform.queue_post(&id, &sealed)?)
    }

    fn queue_take(&mut self) -> Result<Vec<(String, Vec<u8>)>, files::FileError> {
        Ok(self.platform.queue_take()?)
    }

    fn queue_settle(
        &mut self,
        id: String,
        receipt: Option<Vec<u8>>,
    ) -> Result<(), files::FileError> {
        Ok(self.platform.queue_settle(&id, receipt.as_deref())?)
    }

    fn queue_collect(
        &mut self,
        id: String,
        acknowledged_only: bool,
    ) -> Result<files::Queued, files::FileError> {
        Ok(self.platform.queue_collect(&id, acknowledged_only)?.into())
    }

    fn queue_withdraw(&mut self, id: String) -> Result<bool, files::FileError> {
        Ok(self.platform.queue_withdraw(&id)?)
    }
}

fn slots_in(slots: Vec<sealing::KeySlot>) -> Vec<core_p::KeySlot> {
    slots.into_iter().map(Into::into).collect()
}

impl<P: WitPlatform, H: Hooks<P>> sealing::Host for HostState<P, H> {
    fn unlock(
        &mut self,
        key_id: Vec<u8>,
        slots: Vec<sealing::KeySlot>,
    ) -> Result<Resource<SealingKey>, sealing::KeyError> {
        let key = self.platform.unlock(&key_id, &slots_in(slots))?;
        self.push_key(key)
    }

    fn create(&mut self) -> Result<Resource<SealingKey>, sealing::KeyError> {
        let key = self.platform.create_key()?;
        self.push_key(key)
    }

    fn rekey(
        &mut self,
        slots: Vec<sealing::KeySlot>,
    ) -> Result<Resource<SealingKey>, sealing::KeyError> {
        let key = self.platform.rekey(&slots_in(slots))?;
        self.push_key(key)
    }
}

impl<P: WitPlatform, H: Hooks<P>> sealing::HostSealingKey for HostState<P, H> {
    fn key_id(&mut self, key: Resource<SealingKey>) -> Vec<u8> {
        self.key(&key).key_id()
    }

    fn slots(&mut self, key: Resource<SealingKey>) -> Vec<sealing::KeySlot> {
        self.key(&key).slots().into_iter().map(Into::into).collect()
    }

    fn add_slot(
        &mut self,
        key: Resource<SealingKey>,
        kind: String,
    ) -> Result<sealing::KeySlot, sealing::KeyError> {
        Ok(self.key(&key).add_slot(&kind)?.into())
    }

    fn seal(
        &mut self,
        key: Resource<SealingKey>,
        nonce: Vec<u8>,
        aad: Vec<u8>,
        plaintext: Vec<u8>,
    ) -> Result<Vec<u8>, sealing::SealError> {
        Ok(self.key(&key).seal(&nonce, &aad, &plaintext)?)
    }

    fn open(
        &mut self,
        key: Resource<SealingKey>,
        nonce: Vec<u8>,
        aad: Vec<u8>,
        ciphertext: Vec<u8>,
    ) -> Result<Vec<u8>, sealing::SealError> {
        Ok(self.key(&key).open(&nonce, &aad, &ciphertext)?)
    }

    fn drop(&mut self, key: Resource<SealingKey>) -> wasmtime::Result<()> {
        self.table.delete(Resource::<P::Key>::new_own(key.rep()))?;
        Ok(())
    }
}

impl<P: WitPlatform, H: Hooks<P>> token_endpoint::Host for HostState<P, H> {
    fn post(
        &mut self,
        r: token_endpoint::TokenRequest,
    ) -> Result<token_endpoint::HttpReply, token_endpoint::TransportError> {
        Ok(self.platform.post(&r.into())?.into())
    }
}

impl<P: WitPlatform, H: Hooks<P>> login::Host for HostState<P, H> {
    fn get(
        &mut self,
        url: String,
        timeout_ms: u32,
    ) -> Result<token_endpoint::HttpReply, token_endpoint::TransportError> {
        Ok(LoginPlatform::get(&mut self.platform, &url, timeout_ms)?.into())
    }

    fn sleep(&mut self, ms: u32) {
        self.platform.sleep_ms(ms)
    }

    fn show(&mut self, p: login::Prompt) {
        self.platform.show(&p.into())
    }

    fn listen(&mut self) -> Result<u16, String> {
        self.platform.listen()
    }

    fn accept_callback(&mut self, state: String, timeout_ms: u32) -> Result<String, String> {
        self.platform
            .accept_callback(&state, timeout_ms)
            .map(|q| q.0)
    }

    fn open_browser(&mut self, url: String) -> bool {
        self.platform.open_browser(&url)
    }
}

impl<P: WitPlatform, H: Hooks<P>> clock::Host for HostState<P, H> {
    fn wall_ms(&mut self) -> u64 {
        self.platform.wall_ms()
    }
    fn monotonic_ms(&mut self) -> u64 {
        self.platform.monotonic_ms()
    }
}

impl<P: WitPlatform, H: Hooks<P>> random::Host for HostState<P, H> {
    fn fill(&mut self, len: u32) -> Vec<u8> {
        let mut buf = vec![0u8; len as usize];
        self.platform.fill_random(&mut buf);
        self.hooks.after_fill(&mut buf);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::is_refresh_id;

    #[test]
    fn refresh_ids_are_64_lowercase_hex_and_nothing_else() {
        let good = "0123456789abcdef".repeat(4);
        assert!(is_refresh_id(&good));
        assert!(!is_refresh_id(&good[..63]), "too short");
        assert!(!is_refresh_id(&format!("{good}0")), "too long");
        assert!(!is_refresh_id(&good.to_uppercase()), "uppercase");
        let path = format!("../{}", &good[3..]);
        assert_eq!(path.len(), 64);
        assert!(!is_refresh_id(&path), "a path");
        assert!(!is_refresh_id(""));
    }
}
