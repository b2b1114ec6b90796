//! Fuzzes the artifact that ships: the credlock component (the very .wasm the host embeds),
//! instantiated in wasmtime with an in-memory `platform` whose answers come from the fuzz
//! input: file contents, write failures, lock timeouts, key errors and token-endpoint
//! replies, and the maintenance operations (slots, rekey, import, recover, quarantine). The
//! component must never trap, and an unreadable store must never be written: only moved
//! aside by `quarantine`.
#![no_main]

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "credlock",
    with: {
        "credlock:store/locks.lock-guard": LockGuard,
        "credlock:store/sealing.sealing-key": Key,
    },
});

use self::credlock::store::{clock, files, locks, login, random, sealing, token_endpoint, types};
use exports::credlock::store::store as api;

pub struct LockGuard;
/// A data key: its id (`rekey` makes new ones) and the slots that wrap it (the header's when
/// unlocked, re-made ones of the same kinds after `rekey`, as the contract says); every key
/// seals with the same AES key.
pub struct Key(Vec<u8>, Vec<sealing::KeySlot>);

/// The fuzz input, consumed a byte at a time by the imports.
struct Input {
    data: Vec<u8>,
    pos: usize,
}

impl Input {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

struct State {
    input: Input,
    store_file: Option<Vec<u8>>,
    backup_file: Option<Vec<u8>>,
    /// Files moved aside by `quarantine`.
    aside: Vec<Vec<u8>>,
    unreadable: bool,
    writes: usize,
    /// Key ids `create` and `rekey` made; `unlock` opens these.
    key_ids: Vec<Vec<u8>>,
    table: ResourceTable,
    wasi: WasiCtx,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

const KEY: [u8; 32] = [7; 32];
const KEY_ID: [u8; 16] = [1; 16];

impl types::Host for State {}
impl locks::Host for State {
    fn acquire(&mut self, _: locks::LockTarget, _: locks::LockMode, ms: u32) -> Result<Resource<LockGuard>, locks::LockError> {
        if self.input.byte() == 0xff {
            return Err(locks::LockError::Timeout(ms));
        }
        Ok(self.table.push(LockGuard).unwrap())
    }
}
impl locks::HostLockGuard for State {
    fn release(&mut self, _: Resource<LockGuard>) {}
    fn drop(&mut self, r: Resource<LockGuard>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}
impl files::Host for State {
    fn read(&mut self, f: files::StoreFile) -> Result<files::Blob, files::FileError> {
        let file = match f {
            files::StoreFile::Store => &self.store_file,
            files::StoreFile::Backup => &self.backup_file,
        };
        Ok(match file {
            Some(b) => files::Blob::Present(b.clone()),
            None => files::Blob::Absent,
        })
    }
    fn replace(&mut self, f: files::StoreFile, c: Vec<u8>) -> Result<(), files::FileError> {
        if self.input.byte() == 0xfe {
            return Err(files::FileError::Io(types::IoError::NoSpace("fuzz".into())));
        }
        match f {
            files::StoreFile::Store => {
                assert!(!self.unreadable, "the component wrote over an unreadable store");
                self.writes += 1;
                if let Some(old) = self.store_file.replace(c) {
                    self.backup_file = Some(old);
                }
            }
            files::StoreFile::Backup => self.backup_file = Some(c),
        }
        Ok(())
    }
    fn remove(&mut self, f: files::StoreFile) -> Result<(), files::FileError> {
        match f {
            files::StoreFile::Store => {
                assert!(!self.unreadable, "the component removed an unreadable store");
                self.store_file = None;
            }
            files::StoreFile::Backup => self.backup_file = None,
        }
        Ok(())
    }
    fn quarantine(&mut self, f: files::StoreFile) -> Result<String, files::FileError> {
        let file = match f {
            files::StoreFile::Store => &mut self.store_file,
            files::StoreFile::Backup => &mut self.backup_file,
        };
        let Some(bytes) = file.take() else {
            return Err(files::FileError::Io(types::IoError::Other("no such file".into())));
        };
        // Moved aside, not written: what was unreadable is now out of the way, intact.
        self.aside.push(bytes);
        if f == files::StoreFile::Store {
            self.unreadable = false;
        }
        Ok(format!("quarantined-{}", self.aside.len()))
    }
    // One sealed file, as a directory store: the core never asks for records here.
    fn store_layout(&mut self) -> files::Layout {
        files::Layout::Blob
    }
    fn read_record(&mut self, _id: String) -> Result<files::Blob, files::FileError> {
        Err(files::FileError::Io(types::IoError::Other("no records".into())))
    }
    fn read_records(&mut self) -> Result<Vec<(String, Vec<u8>)>, files::FileError> {
        Err(files::FileError::Io(types::IoError::Other("no records".into())))
    }
    fn write_records(&mut self, _s: Vec<u8>, _r: Vec<files::RecordWrite>) -> Result<(), files::FileError> {
        Err(files::FileError::Io(types::IoError::Other("no records".into())))
    }
    // No queue: every write goes the direct way (the simulator explores the queue).
    fn queue_enabled(&mut self) -> bool {
        false
    }
    fn queue_post(&mut self, _id: String, _s: Vec<u8>) -> Result<(), files::FileError> {
        Err(files::FileError::Io(types::IoError::Other("no queue".into())))
    }
    fn queue_take(&mut self) -> Result<Vec<(String, Vec<u8>)>, files::FileError> {
        Err(files::FileError::Io(types::IoError::Other("no queue".into())))
    }
    fn queue_settle(&mut self, _id: String, _r: Option<Vec<u8>>) -> Result<(), files::FileError> {
        Err(files::FileError::Io(types::IoError::Other("no queue".into())))
    }
    fn queue_collect(&mut self, _id: String, _a: bool) -> Result<files::Queued, files::FileError> {
        Err(files::FileError::Io(types::IoError::Other("no queue".into())))
    }
    fn queue_withdraw(&mut self, _id: String) -> Result<bool, files::FileError> {
        Err(files::FileError::Io(types::IoError::Other("no queue".into())))
    }
}
impl sealing::Host for State {
    fn unlock(&mut self, id: Vec<u8>, slots: Vec<sealing::KeySlot>) -> Result<Resource<Key>, sealing::KeyError> {
        if !self.key_ids.contains(&id) || self.input.byte() == 0xfd {
            return Err(sealing::KeyError::WrongKeyFile);
        }
        Ok(self.table.push(Key(id, slots)).unwrap())
    }
    fn create(&mut self) -> Result<Resource<Key>, sealing::KeyError> {
        let slots = vec![sealing::KeySlot { kind: "fuzz".into(), data: vec![] }];
        Ok(self.table.push(Key(KEY_ID.to_vec(), slots)).unwrap())
    }
    fn rekey(&mut self, slots: Vec<sealing::KeySlot>) -> Result<Resource<Key>, sealing::KeyError> {
        if slots.is_empty() || self.input.byte() == 0xfc {
            return Err(sealing::KeyError::SlotUnavailable("fuzz".into()));
        }
        let n = self.key_ids.len() as u8;
        let id = vec![n.wrapping_add(1); 16];
        self.key_ids.push(id.clone());
        let slots = slots
            .into_iter()
            .map(|s| sealing::KeySlot { kind: s.kind, data: id.clone() })
            .collect();
        Ok(self.table.push(Key(id, slots)).unwrap())
    }
}
impl sealing::HostSealingKey for State {
    fn key_id(&mut self, k: Resource<Key>) -> Vec<u8> {
        self.table.get(&k).unwrap().0.clone()
    }
    fn add_slot(&mut self, _: Resource<Key>, kind: String) -> Result<sealing::KeySlot, sealing::KeyError> {
        if self.input.byte() == 0xfb {
            return Err(sealing::KeyError::SlotUnavailable(kind));
        }
        Ok(sealing::KeySlot { kind, data: vec![] })
    }
    fn slots(&mut self, k: Resource<Key>) -> Vec<sealing::KeySlot> {
        self.table.get(&k).unwrap().1.clone()
    }
    fn seal(&mut self, _: Resource<Key>, n: Vec<u8>, aad: Vec<u8>, pt: Vec<u8>) -> Result<Vec<u8>, sealing::SealError> {
        if n.len() != 12 {
            return Err(sealing::SealError::BadNonce);
        }
        Ok(Aes256Gcm::new(&KEY.into()).encrypt(Nonce::from_slice(&n), Payload { msg: &pt, aad: &aad }).unwrap())
    }
    fn open(&mut self, _: Resource<Key>, n: Vec<u8>, aad: Vec<u8>, ct: Vec<u8>) -> Result<Vec<u8>, sealing::SealError> {
        if n.len() != 12 {
            return Err(sealing::SealError::BadNonce);
        }
        Aes256Gcm::new(&KEY.into()).decrypt(Nonce::from_slice(&n), Payload { msg: &ct, aad: &aad }).map_err(|_| sealing::SealError::AuthenticationFailed)
    }
    fn drop(&mut self, r: Resource<Key>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}
impl token_endpoint::Host for State {
    fn post(&mut self, _: token_endpoint::TokenRequest) -> Result<token_endpoint::HttpReply, token_endpoint::TransportError> {
        match self.input.byte() % 4 {
            0 => Err(token_endpoint::TransportError::Timeout),
            1 => Err(token_endpoint::TransportError::Connect("fuzz".into())),
            _ => {
                let status = [200u16, 400, 401, 500, 503][self.input.byte() as usize % 5];
                let len = self.input.byte() as usize;
                Ok(token_endpoint::HttpReply { status, content_type: None, body: self.input.bytes(len) })
            }
        }
    }
}
// The operations fuzzed never log in; the imports answer as a host without them would.
impl login::Host for State {
    fn get(&mut self, _: String, _: u32) -> Result<token_endpoint::HttpReply, token_endpoint::TransportError> {
        Err(token_endpoint::TransportError::Connect("fuzz".into()))
    }
    fn sleep(&mut self, _: u32) {}
    fn show(&mut self, _: login::Prompt) {}
    fn listen(&mut self) -> Result<u16, String> {
        Err("fuzz".into())
    }
    fn accept_callback(&mut self, _: String, _: u32) -> Result<String, String> {
        Err("fuzz".into())
    }
    fn open_browser(&mut self, _: String) -> bool {
        false
    }
}
impl clock::Host for State {
    fn wall_ms(&mut self) -> u64 {
        1_700_000_000_000 + u64::from(self.input.byte()) * 1000
    }
    fn monotonic_ms(&mut self) -> u64 {
        0
    }
}
impl random::Host for State {
    fn fill(&mut self, len: u32) -> Vec<u8> {
        vec![0x42; len as usize]
    }
}

fn instance() -> &'static (Engine, CredlockPre<State>) {
    static PRE: std::sync::OnceLock<(Engine, CredlockPre<State>)> = std::sync::OnceLock::new();
    PRE.get_or_init(|| {
        let engine = Engine::default();
        let component = wasmtime::component::Component::new(&engine, ::credlock::component::COMPONENT_WASM).unwrap();
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
        Credlock::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s).unwrap();
        let pre = CredlockPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
        (engine, pre)
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (engine, pre) = instance();
    // The first bytes choose the starting file: none, or a prefix of the rest as a store.
    let (store_file, rest) = match data.split_first() {
        Some((&n, rest)) if n & 1 == 1 => {
            let len = (n as usize * 4).min(rest.len());
            (Some(rest[..len].to_vec()), &rest[len..])
        }
        Some((_, rest)) => (None, rest),
        None => (None, data),
    };
    let mut state = State {
        input: Input { data: rest.to_vec(), pos: 0 },
        store_file,
        backup_file: None,
        aside: Vec::new(),
        unreadable: false,
        writes: 0,
        key_ids: vec![KEY_ID.to_vec()],
        table: ResourceTable::new(),
        wasi: WasiCtx::builder().build(),
    };
    let opts = api::Options { lock_timeout_ms: 100, http_timeout_ms: 100, allow_insecure_http: false };
    state.unreadable = false;
    let mut store = Store::new(engine, state);
    let bindings = pre.instantiate(&mut store).unwrap();
    let s = bindings.credlock_store_store();
    // A store the component cannot list must stay untouched by every later call.
    if let Ok(Err(e)) = s.call_list(&mut store, opts) {
        if !matches!(e, api::StoreError::LockTimeout(_) | api::StoreError::Key(_)) {
            store.data_mut().unreadable = true;
        }
    }
    for round in 0..4 {
        let op = store.data_mut().input.byte();
        let arg = store.data_mut().input.byte();
        let aside_before = store.data().aside.len();
        let result = match op % 12 {
            0 => s.call_put(&mut store, opts, "acme", r#"{"access_token":"a","refresh_token":"r","expires_in":1,"token_endpoint":"https://as/token","client_id":"c"}"#).map(|_| ()),
            1 => s.call_token(&mut store, opts, "acme", 3_600_000).map(|_| ()),
            2 => s.call_refresh(&mut store, opts, "acme", None).map(|_| ()),
            3 => s.call_delete(&mut store, opts, "acme").map(|_| ()),
            4 => s.call_list(&mut store, opts).map(|_| ()),
            5 => s.call_slots(&mut store, opts).map(|_| ()),
            6 => {
                let kind = ["passphrase", "key-file", "kernel-keyring", "Bad Kind!"][arg as usize % 4];
                s.call_add_slot(&mut store, opts, kind).map(|_| ())
            }
            7 => s.call_remove_slot(&mut store, opts, u32::from(arg % 4), arg & 0x80 != 0).map(|_| ()),
            8 => s.call_rekey(&mut store, opts).map(|_| ()),
            9 => {
                let source = r#"{"acme": {"type": "oauth", "access": "i", "refresh": "r", "expires": 1900000000000}, "key": {"type": "api", "key": "k"}}"#;
                let how = api::ImportOptions {
                    replace: arg & 1 == 1,
                    kind: None,
                    account: None,
                    saved_at_ms: None,
                };
                s.call_import_tokens(&mut store, opts, source, None, &how).map(|_| ())
            }
            10 => s.call_recover(&mut store, opts, arg & 1 == 1).map(|_| ()),
            _ => s.call_quarantine(&mut store, opts, arg & 1 == 1).map(|_| ()),
        };
        // Only recover and quarantine move a file aside.
        if !matches!(op % 12, 10 | 11) {
            assert_eq!(store.data().aside.len(), aside_before, "op {op} moved a file aside");
        }
        // A trap is a bug in the core: the guest panicked.
        result.unwrap_or_else(|trap| panic!("the component trapped in round {round}: {trap:?}"));
    }
});
