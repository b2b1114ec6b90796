//! Core tests over an in-memory platform: the format's three distinct read failures, tamper
//! detection through the header-as-AAD, the merge, and the refresh state machine's decisions
//! against a scripted token endpoint. (Multi-process behaviour is tested in host/tests with
//! real processes, and explored by the simulator.)

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use credlock_core::platform::*;
use credlock_core::{ImportOptions, Options, RecoverError, SlotChangeError, Store, StoreError};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

#[derive(Clone)]
struct MemKey {
    id: Vec<u8>,
    key: [u8; 32],
}

impl SealingKey for MemKey {
    fn key_id(&self) -> Vec<u8> {
        self.id.clone()
    }
    fn slots(&self) -> Vec<KeySlot> {
        vec![KeySlot {
            kind: "mem".into(),
            data: self.key.to_vec(),
        }]
    }
    fn seal(&self, nonce: &[u8], aad: &[u8], pt: &[u8]) -> Result<Vec<u8>, SealError> {
        Aes256Gcm::new(&self.key.into())
            .encrypt(Nonce::from_slice(nonce), Payload { msg: pt, aad })
            .map_err(|_| SealError::AuthenticationFailed)
    }
    fn open(&self, nonce: &[u8], aad: &[u8], ct: &[u8]) -> Result<Vec<u8>, SealError> {
        Aes256Gcm::new(&self.key.into())
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| SealError::AuthenticationFailed)
    }
    fn add_slot(&self, kind: &str) -> Result<KeySlot, KeyError> {
        Ok(KeySlot {
            kind: kind.into(),
            data: self.key.to_vec(),
        })
    }
}

#[derive(Default)]
struct World {
    files: BTreeMap<&'static str, Vec<u8>>,
    writes: usize,
    requests: Vec<TokenRequest>,
    replies: VecDeque<Result<HttpReply, TransportError>>,
    /// Login: scripted GET replies, and what the core slept and showed.
    get_replies: VecDeque<Result<HttpReply, TransportError>>,
    gets: Vec<String>,
    sleeps_ms: Vec<u32>,
    prompts: Vec<LoginPrompt>,
    /// Keys made by `rekey`, which any process can open (as a shared key source would).
    rekeyed: Vec<MemKey>,
    /// Store files another process writes just before each exclusive store lock is granted
    /// (it held the lock first): a put racing every write of ours.
    written_before_exclusive: VecDeque<Vec<u8>>,
    /// A `records` platform (the database's layout): `store` is the header, and each tenant
    /// a record here. Counts what the core read and wrote of them.
    records_layout: bool,
    records: BTreeMap<String, Vec<u8>>,
    record_reads: usize,
    all_record_reads: usize,
    /// The records each `write_records` wrote or removed.
    record_writes: Vec<usize>,
}

struct Mem {
    world: Rc<RefCell<World>>,
    /// The key this "process" can open; `None` = no key source.
    key: Option<MemKey>,
    now_ms: u64,
    rng: u64,
}

impl Mem {
    fn new(world: &Rc<RefCell<World>>) -> Self {
        Mem {
            world: Rc::clone(world),
            key: Some(MemKey {
                id: vec![1; 16],
                key: [7; 32],
            }),
            now_ms: 1_000_000,
            rng: 1,
        }
    }
}

fn name(f: StoreFile) -> &'static str {
    match f {
        StoreFile::Store => "store",
        StoreFile::Backup => "backup",
    }
}

impl Platform for Mem {
    type Guard = ();
    type Key = MemKey;
    fn acquire(&mut self, t: &LockTarget, m: LockMode, _: u32) -> Result<(), LockError> {
        let mut w = self.world.borrow_mut();
        if (t, m) == (&LockTarget::Store, LockMode::Exclusive) {
            if let Some(next) = w.written_before_exclusive.pop_front() {
                w.files.insert("store", next);
            }
        }
        Ok(())
    }
    fn read(&mut self, f: StoreFile) -> Result<Option<Vec<u8>>, FileError> {
        Ok(self.world.borrow().files.get(name(f)).cloned())
    }
    fn replace(&mut self, f: StoreFile, c: &[u8]) -> Result<(), FileError> {
        let mut w = self.world.borrow_mut();
        w.writes += 1;
        // The contract: replacing the store keeps its previous contents as the backup.
        if let (StoreFile::Store, Some(old)) = (f, w.files.get("store").cloned()) {
            w.files.insert("backup", old);
        }
        w.files.insert(name(f), c.to_vec());
        Ok(())
    }
    fn remove(&mut self, f: StoreFile) -> Result<(), FileError> {
        self.world.borrow_mut().files.remove(name(f));
        Ok(())
    }
    fn quarantine(&mut self, f: StoreFile) -> Result<String, FileError> {
        let mut w = self.world.borrow_mut();
        let bytes = w
            .files
            .remove(name(f))
            .expect("quarantine of a present file");
        w.files.insert("quarantined", bytes);
        Ok("store.corrupt-1".into())
    }
    fn layout(&mut self) -> Layout {
        if self.world.borrow().records_layout {
            Layout::Records
        } else {
            Layout::Blob
        }
    }
    fn read_record(&mut self, id: &str) -> Result<Option<Vec<u8>>, FileError> {
        let mut w = self.world.borrow_mut();
        assert!(w.records_layout, "a record read on a blob platform");
        w.record_reads += 1;
        Ok(w.records.get(id).cloned())
    }
    fn read_records(&mut self) -> Result<Vec<(String, Vec<u8>)>, FileError> {
        let mut w = self.world.borrow_mut();
        assert!(w.records_layout, "a record read on a blob platform");
        w.all_record_reads += 1;
        Ok(w.records
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
    fn write_records(&mut self, store: &[u8], records: &[RecordWrite]) -> Result<(), FileError> {
        let mut w = self.world.borrow_mut();
        assert!(w.records_layout, "a record write on a blob platform");
        w.writes += 1;
        if let Some(old) = w.files.get("store").cloned() {
            w.files.insert("backup", old);
        }
        w.files.insert("store", store.to_vec());
        for r in records {
            match &r.sealed {
                Some(s) => w.records.insert(r.id.clone(), s.clone()),
                None => w.records.remove(&r.id),
            };
        }
        w.record_writes.push(records.len());
        Ok(())
    }
    fn rekey(&mut self, slots: &[KeySlot]) -> Result<MemKey, KeyError> {
        let mut key = MemKey {
            id: vec![0; 16],
            key: [0; 32],
        };
        self.fill_random(&mut key.id);
        self.fill_random(&mut key.key);
        assert!(!slots.is_empty());
        self.world.borrow_mut().rekeyed.push(key.clone());
        Ok(key)
    }
    fn unlock(&mut self, key_id: &[u8], slots: &[KeySlot]) -> Result<MemKey, KeyError> {
        if let Some(k) = self.world.borrow().rekeyed.iter().find(|k| k.id == key_id) {
            return Ok(k.clone());
        }
        match &self.key {
            Some(k) if k.id == key_id => Ok(k.clone()),
            Some(_) => Err(KeyError::WrongKeyFile),
            None => Err(KeyError::NoMatchingSlot(
                slots.iter().map(|s| s.kind.clone()).collect(),
            )),
        }
    }
    fn create_key(&mut self) -> Result<MemKey, KeyError> {
        self.key.clone().ok_or(KeyError::NoKeySource)
    }
    fn post(&mut self, r: &TokenRequest) -> Result<HttpReply, TransportError> {
        let mut w = self.world.borrow_mut();
        w.requests.push(r.clone());
        w.replies.pop_front().expect("a scripted reply")
    }
    fn wall_ms(&mut self) -> u64 {
        self.now_ms
    }
    fn monotonic_ms(&mut self) -> u64 {
        self.now_ms
    }
    fn fill_random(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.rng = self
                .rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (self.rng >> 56) as u8;
        }
    }
}

impl LoginPlatform for Mem {
    fn get(&mut self, url: &str, _timeout_ms: u32) -> Result<HttpReply, TransportError> {
        let mut w = self.world.borrow_mut();
        w.gets.push(url.to_owned());
        w.get_replies.pop_front().expect("a scripted GET reply")
    }
    /// Time passes only here: the polling schedule is exactly what the core asked for.
    fn sleep_ms(&mut self, ms: u32) {
        self.world.borrow_mut().sleeps_ms.push(ms);
        self.now_ms += u64::from(ms);
    }
    fn show(&mut self, prompt: &LoginPrompt) {
        self.world.borrow_mut().prompts.push(prompt.clone());
    }
    fn listen(&mut self) -> Result<u16, String> {
        Err("no listener in memory".into())
    }
    fn accept_callback(&mut self, _: &str, _: u32) -> Result<CallbackQuery, String> {
        Err("no listener in memory".into())
    }
    fn open_browser(&mut self, _: &str) -> bool {
        false
    }
}

fn store(p: &mut Mem) -> Store<'_, Mem> {
    Store::new(p, Options::default()).unwrap()
}

const REFRESHABLE: &str = r#"{"access_token":"at-1","expires_in":3600,"refresh_token":"rt-1",
    "token_endpoint":"https://as.example/token","client_id":"cli","client_secret":"cs-9f8e7d","id_token":"keep-me"}"#;

fn ok_reply(body: &str) -> Result<HttpReply, TransportError> {
    Ok(HttpReply {
        status: 200,
        content_type: Some("application/json".into()),
        body: body.as_bytes().to_vec(),
    })
}

#[test]
fn put_and_token_round_trip() {
    let world = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&world);
    let r = store(&mut p).put("acme", REFRESHABLE).unwrap();
    assert_eq!((r.revision, r.generation), (1, 1));
    let t = store(&mut p).token("acme", 60_000).unwrap();
    assert_eq!(t.token, "at-1");
    assert!(!t.refreshed);
    assert!(world.borrow().requests.is_empty());
}

#[test]
fn three_distinct_read_failures_and_nothing_written() {
    let world = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&world);
    store(&mut p).put("acme", REFRESHABLE).unwrap();
    let good = world.borrow().files["store"].clone();

    let check = |bytes: Vec<u8>, key: Option<MemKey>, expect: &dyn Fn(&StoreError) -> bool| {
        world.borrow_mut().files.insert("store", bytes.clone());
        let writes = world.borrow().writes;
        let mut p = Mem::new(&world);
        p.key = key;
        let err = store(&mut p)
            .put("other", r#"{"access_token":"x"}"#)
            .unwrap_err();
        assert!(expect(&err), "unexpected {err:?}");
        for op in 0..3 {
            let r = match op {
                0 => store(&mut p).delete("acme").map(|_| ()),
                1 => store(&mut p).init().map(|_| ()),
                _ => store(&mut p).token("acme", 0).map(|_| ()),
            };
            assert!(r.is_err());
        }
        assert_eq!(
            world.borrow().writes,
            writes,
            "an unreadable store was written"
        );
        assert_eq!(world.borrow().files["store"], bytes);
    };

    let mut unknown_version = good.clone();
    unknown_version[9] = 9;
    check(
        unknown_version,
        Some(MemKey {
            id: vec![1; 16],
            key: [7; 32],
        }),
        &|e| matches!(e, StoreError::UnsupportedVersion(9)),
    );
    check(
        good.clone(),
        Some(MemKey {
            id: vec![1; 16],
            key: [8; 32],
        }),
        &|e| matches!(e, StoreError::Corrupt(_)),
    );
    check(
        good.clone(),
        Some(MemKey {
            id: vec![2; 16],
            key: [7; 32],
        }),
        &|e| matches!(e, StoreError::Key(KeyError::WrongKeyFile)),
    );
    check(
        good.clone(),
        None,
        &|e| matches!(e, StoreError::Key(KeyError::NoMatchingSlot(k)) if k == &["mem".to_string()]),
    );
    let mut body_flip = good.clone();
    *body_flip.last_mut().unwrap() ^= 1;
    check(
        body_flip,
        Some(MemKey {
            id: vec![1; 16],
            key: [7; 32],
        }),
        &|e| matches!(e, StoreError::Corrupt(_)),
    );
    check(
        good[..good.len() - 5].to_vec(),
        Some(MemKey {
            id: vec![1; 16],
            key: [7; 32],
        }),
        &|e| matches!(e, StoreError::Corrupt(_)),
    );
    check(
        b"{\"tokens\":{}}".to_vec(),
        Some(MemKey {
            id: vec![1; 16],
            key: [7; 32],
        }),
        &|e| matches!(e, StoreError::NotAStore(_)),
    );
}

#[test]
fn every_header_byte_is_authenticated() {
    let world = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&world);
    store(&mut p).put("acme", REFRESHABLE).unwrap();
    let good = world.borrow().files["store"].clone();
    let header_len = u16::from_be_bytes([good[10], good[11]]) as usize;
    // Skip the key id (12..28): changing it asks the platform for another key, a key error.
    for i in (0..header_len).filter(|i| !(12..28).contains(i)) {
        let mut bad = good.clone();
        bad[i] ^= 0x20;
        world.borrow_mut().files.insert("store", bad);
        let err = store(&mut Mem::new(&world)).list().unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Corrupt(_)
                    | StoreError::NotAStore(_)
                    | StoreError::UnsupportedVersion(_)
            ),
            "byte {i}: {err:?}"
        );
    }
}

#[test]
fn merge_keeps_other_tenants_and_counts_revisions() {
    let world = Rc::new(RefCell::new(World::default()));
    let mut a = Mem::new(&world);
    let mut b = Mem::new(&world);
    store(&mut a).put("a", r#"{"access_token":"a1"}"#).unwrap();
    store(&mut b).put("b", r#"{"access_token":"b1"}"#).unwrap();
    store(&mut a).put("a", r#"{"access_token":"a2"}"#).unwrap();
    let list = store(&mut b).list().unwrap();
    assert_eq!(
        list.iter()
            .map(|t| (t.tenant.as_str(), t.revision))
            .collect::<Vec<_>>(),
        [("a", 2), ("b", 1)]
    );
    assert_eq!(store(&mut b).token("a", 0).unwrap().token, "a2");
    assert_eq!(store(&mut b).info().unwrap().generation, 3);
    assert!(store(&mut a).delete("a").unwrap());
    assert!(!store(&mut a).delete("a").unwrap());
    assert_eq!(
        store(&mut b).info().unwrap().generation,
        5,
        "a delete writes twice (so the backup forgets the tenant); a no-op delete writes nothing"
    );
}

#[test]
fn refresh_success_keeps_unknown_fields_and_old_refresh_token_when_absent() {
    let world = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&world);
    store(&mut p).put("acme", REFRESHABLE).unwrap();
    p.now_ms += 3_600_000;
    world.borrow_mut().replies.push_back(ok_reply(
        r#"{"access_token":"at-2","expires_in":60,"token_type":"Bearer","x_new":1}"#,
    ));
    let t = store(&mut p).token("acme", 10_000).unwrap();
    assert_eq!((t.token.as_str(), t.refreshed), ("at-2", true));
    let req = world.borrow().requests[0].clone();
    assert_eq!(req.body, "grant_type=refresh_token&refresh_token=rt-1");
    assert!(req.authorization.as_deref().unwrap().starts_with("Basic "));
    // The old refresh token stays (RFC 6749 §6); a second expiry presents it again.
    p.now_ms += 120_000;
    world.borrow_mut().replies.push_back(ok_reply(
        r#"{"access_token":"at-3","expires_in":60,"refresh_token":"rt-2"}"#,
    ));
    assert_eq!(store(&mut p).token("acme", 10_000).unwrap().token, "at-3");
    assert!(world.borrow().requests[1]
        .body
        .contains("refresh_token=rt-1"));
    assert_eq!(
        store(&mut p).list().unwrap()[0].revision,
        5,
        "put, intent, commit, intent, commit"
    );
}

#[test]
fn invalid_grant_marks_reauth_and_is_sticky() {
    let world = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&world);
    store(&mut p).put("acme", REFRESHABLE).unwrap();
    p.now_ms += 3_600_000;
    world.borrow_mut().replies.push_back(Ok(HttpReply {
        status: 400,
        content_type: None,
        body: br#"{"error":"invalid_grant"}"#.to_vec(),
    }));
    assert!(matches!(
        store(&mut p).token("acme", 0),
        Err(StoreError::ReauthNeeded(_))
    ));
    assert!(matches!(
        store(&mut p).token("acme", 0),
        Err(StoreError::ReauthNeeded(_))
    ));
    assert_eq!(
        world.borrow().requests.len(),
        1,
        "a rejected token is never presented again"
    );
    assert!(store(&mut p).list().unwrap()[0].needs_reauth);
    // A new login clears it.
    store(&mut p)
        .put("acme", r#"{"access_token":"fresh","expires_in":100}"#)
        .unwrap();
    assert_eq!(store(&mut p).token("acme", 0).unwrap().token, "fresh");
}

#[test]
fn ambiguous_failures_keep_the_intent_and_never_present_again() {
    for reply in [
        Err(TransportError::Timeout),
        Err(TransportError::Interrupted("reset".into())),
        ok_reply(r#"{"access_token":"#),
    ] {
        let world = Rc::new(RefCell::new(World::default()));
        let mut p = Mem::new(&world);
        store(&mut p).put("acme", REFRESHABLE).unwrap();
        p.now_ms += 3_600_000;
        world.borrow_mut().replies.push_back(reply);
        assert!(matches!(
            store(&mut p).token("acme", 0),
            Err(StoreError::Endpoint(_))
        ));
        assert!(matches!(
            store(&mut p).token("acme", 0),
            Err(StoreError::RefreshOutcomeUnknown(_))
        ));
        assert_eq!(world.borrow().requests.len(), 1);
        assert!(store(&mut p).list().unwrap()[0].needs_reauth);
    }
}

#[test]
fn definite_failures_clear_the_intent() {
    for reply in [
        Err(TransportError::Connect("refused".into())),
        Ok(HttpReply {
            status: 503,
            content_type: None,
            body: b"<html>".to_vec(),
        }),
        Ok(HttpReply {
            status: 401,
            content_type: None,
            body: br#"{"error":"invalid_client"}"#.to_vec(),
        }),
    ] {
        let world = Rc::new(RefCell::new(World::default()));
        let mut p = Mem::new(&world);
        store(&mut p).put("acme", REFRESHABLE).unwrap();
        p.now_ms += 3_600_000;
        world.borrow_mut().replies.push_back(reply);
        assert!(matches!(
            store(&mut p).token("acme", 0),
            Err(StoreError::Endpoint(_))
        ));
        world
            .borrow_mut()
            .replies
            .push_back(ok_reply(r#"{"access_token":"at-2","expires_in":60}"#));
        assert_eq!(store(&mut p).token("acme", 0).unwrap().token, "at-2");
    }
}

#[test]
fn retry_unknown_refresh_allows_exactly_one_more_presentation() {
    let world = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&world);
    let json = REFRESHABLE.replace(
        "\"id_token\"",
        "\"retry_unknown_refresh\":true,\"id_token\"",
    );
    store(&mut p).put("acme", &json).unwrap();
    p.now_ms += 3_600_000;
    world
        .borrow_mut()
        .replies
        .push_back(Err(TransportError::Timeout));
    world
        .borrow_mut()
        .replies
        .push_back(Err(TransportError::Timeout));
    assert!(store(&mut p).token("acme", 0).is_err());
    assert!(matches!(
        store(&mut p).token("acme", 0),
        Err(StoreError::Endpoint(_))
    ));
    assert!(matches!(
        store(&mut p).token("acme", 0),
        Err(StoreError::RefreshOutcomeUnknown(_))
    ));
    assert_eq!(world.borrow().requests.len(), 2);
}

#[test]
fn rejected_refreshes_only_the_refused_token() {
    let world = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&world);
    store(&mut p).put("acme", REFRESHABLE).unwrap();
    let other = credlock_core::sha256_hex(b"some-older-token");
    let t = store(&mut p).refresh("acme", Some(&other[..20])).unwrap();
    assert_eq!((t.token.as_str(), t.refreshed), ("at-1", false));
    let mine = credlock_core::sha256_hex(b"at-1");
    world
        .borrow_mut()
        .replies
        .push_back(ok_reply(r#"{"access_token":"at-2","expires_in":60}"#));
    let t = store(&mut p)
        .refresh("acme", Some(&mine.to_uppercase()[..16]))
        .unwrap();
    assert_eq!((t.token.as_str(), t.refreshed), ("at-2", true));
    assert!(matches!(
        store(&mut p).refresh("acme", Some("abc")),
        Err(StoreError::InvalidOptions(_))
    ));
}

#[test]
fn errors_never_contain_secrets() {
    let world = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&world);
    store(&mut p).put("acme", REFRESHABLE).unwrap();
    p.now_ms += 3_600_000;
    world.borrow_mut().replies.push_back(Ok(HttpReply {
        status: 400,
        content_type: None,
        body: br#"{"error":"invalid_request","error_description":"bad"}"#.to_vec(),
    }));
    let err = store(&mut p).token("acme", 0).unwrap_err();
    let text = format!("{err} {err:?} {}", err.recommendation());
    for secret in ["at-1", "rt-1", "cs-9f8e7d"] {
        assert!(!text.contains(secret), "{secret} leaked in {text}");
    }
}

#[test]
fn short_lived_tokens_are_not_refreshed_on_every_call() {
    // The server issues 60 s tokens; callers ask for 60 s of validity (the CLI default).
    let world = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&world);
    store(&mut p)
        .put(
            "acme",
            &REFRESHABLE.replace("\"expires_in\":3600", "\"expires_in\":60"),
        )
        .unwrap();
    for _ in 0..5 {
        assert_eq!(store(&mut p).token("acme", 60_000).unwrap().token, "at-1");
        p.now_ms += 1_000;
    }
    assert!(
        world.borrow().requests.is_empty(),
        "a 60 s token was refreshed while 55+ s remained"
    );
    // Past half its lifetime it is refreshed, once.
    p.now_ms += 30_000;
    world
        .borrow_mut()
        .replies
        .push_back(ok_reply(r#"{"access_token":"at-2","expires_in":60}"#));
    assert_eq!(store(&mut p).token("acme", 60_000).unwrap().token, "at-2");
    assert_eq!(store(&mut p).token("acme", 60_000).unwrap().token, "at-2");
    assert_eq!(world.borrow().requests.len(), 1);
}

// ----- maintenance: slots, rekey, recover, import -----

fn kinds(slots: &[KeySlot]) -> Vec<&str> {
    slots.iter().map(|s| s.kind.as_str()).collect()
}

#[test]
fn slot_changes_keep_a_durable_way_in() {
    let w = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&w);
    let mut s = store(&mut p);
    s.put("acme", r#"{"access_token":"a"}"#).unwrap();
    assert_eq!(kinds(&s.slots().unwrap()), ["mem"]);
    assert!(matches!(
        s.remove_slot(0, false),
        Err(StoreError::SlotChange(SlotChangeError::LastSlot))
    ));
    assert_eq!(
        kinds(&s.add_slot("kernel-keyring").unwrap()),
        ["mem", "kernel-keyring"]
    );
    // Leaving only the volatile slot needs an explicit yes.
    assert_eq!(
        s.remove_slot(0, false).err(),
        Some(StoreError::SlotChange(SlotChangeError::OnlyVolatileLeft(
            vec!["kernel-keyring".into()]
        )))
    );
    assert!(matches!(
        s.remove_slot(5, false),
        Err(StoreError::SlotChange(SlotChangeError::NoSuchSlot(5)))
    ));
    let before = w.borrow().files["store"].clone();
    assert_eq!(
        kinds(&s.add_slot("passphrase").unwrap()),
        ["mem", "kernel-keyring", "passphrase"]
    );
    assert_ne!(w.borrow().files["store"], before);
    assert!(w.borrow().files.contains_key("backup"));
    // The backup still holds the slot being removed: it goes with it.
    assert_eq!(
        kinds(&s.remove_slot(2, false).unwrap()),
        ["mem", "kernel-keyring"]
    );
    assert!(!w.borrow().files.contains_key("backup"));
    assert_eq!(kinds(&s.remove_slot(0, true).unwrap()), ["kernel-keyring"]);
    assert_eq!(
        s.token("acme", 0).unwrap().token,
        "a",
        "the data survives every change"
    );
}

#[test]
fn rekey_reseals_under_a_new_key_and_drops_the_old_backup() {
    let w = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&w);
    let mut s = store(&mut p);
    s.put("acme", r#"{"access_token":"a","refresh_token":"r"}"#)
        .unwrap();
    s.put("beta", r#"{"access_token":"b"}"#).unwrap();
    let old = s.info().unwrap();
    let new = s.rekey().unwrap();
    assert_ne!(new.key_id, old.key_id);
    assert_eq!(new.generation, old.generation + 1);
    assert_eq!(
        (new.tenants, new.slot_kinds.clone()),
        (2, vec!["mem".to_string()])
    );
    assert!(
        !w.borrow().files.contains_key("backup"),
        "the backup is sealed under the old key"
    );
    assert_eq!(s.token("beta", 0).unwrap().token, "b");
    assert_eq!(s.info().unwrap().key_id, new.key_id);
}

#[test]
fn recover_restores_the_backup_only_when_asked_and_never_replays_a_spent_refresh_token() {
    let w = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&w);
    let mut s = store(&mut p);
    assert!(matches!(
        s.recover(false),
        Err(StoreError::Recover(RecoverError::NoBackup))
    ));
    s.put("acme", r#"{"access_token":"a1","refresh_token":"r1","expires_at":1000,"token_endpoint":"https://as.example/token","client_id":"c"}"#).unwrap();
    s.put("beta", r#"{"access_token":"b1"}"#).unwrap();
    assert!(matches!(
        s.recover(false),
        Err(StoreError::Recover(RecoverError::StoreReadable))
    ));
    // The live store is damaged: recover moves it aside and restores the backup.
    let generation = s.info().unwrap().generation;
    let damaged = {
        let mut f = w.borrow().files["store"].clone();
        let n = f.len();
        f[n - 1] ^= 1;
        f
    };
    w.borrow_mut().files.insert("store", damaged.clone());
    assert!(matches!(s.list(), Err(StoreError::Corrupt(_))));
    let r = s.recover(false).unwrap();
    assert_eq!(r.quarantined_as.as_deref(), Some("store.corrupt-1"));
    assert_eq!(
        w.borrow().files["quarantined"],
        damaged,
        "moved aside, byte for byte"
    );
    assert!(r.generation > generation, "the generation never goes back");
    assert_eq!(r.tenants, 1);
    // acme's refresh token in the backup may have been spent since: never presented again.
    assert_eq!(r.refresh_unknown, ["acme"]);
    assert!(matches!(
        s.token("acme", 0),
        Err(StoreError::RefreshOutcomeUnknown(_))
    ));
    assert!(w.borrow().requests.is_empty());
    assert_eq!(s.list().unwrap()[0].tenant, "acme");
}

#[test]
fn quarantine_only_moves_an_unreadable_store() {
    let w = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&w);
    let mut s = store(&mut p);
    s.put("acme", r#"{"access_token":"a"}"#).unwrap();
    for force in [false, true] {
        assert!(matches!(
            s.quarantine(force),
            Err(StoreError::Recover(RecoverError::StoreReadable))
        ));
    }
    w.borrow_mut()
        .files
        .insert("store", b"not a store at all".to_vec());
    assert_eq!(s.quarantine(false).unwrap(), "store.corrupt-1");
    assert!(!w.borrow().files.contains_key("store"));
    assert_eq!(w.borrow().files["quarantined"], b"not a store at all");
}

#[test]
fn import_is_one_atomic_write_and_conflicts_change_nothing() {
    let w = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&w);
    let mut s = store(&mut p);
    s.put("acme", r#"{"access_token":"old"}"#).unwrap();
    let writes = w.borrow().writes;
    let src = r#"{"acme": {"access_token": "new"}, "beta": {"type": "oauth", "access": "b", "refresh": "rb", "expires": 2000000000000}, "key": {"type": "api", "key": "sk"}}"#;
    assert_eq!(
        s.import_tokens(src, None, &ImportOptions::default()).err(),
        Some(StoreError::ImportConflict(vec!["acme".into()]))
    );
    assert_eq!(w.borrow().writes, writes, "nothing written on conflict");
    let r = s
        .import_tokens(
            src,
            None,
            &ImportOptions {
                replace: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.imported, ["acme", "beta"]);
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(
        w.borrow().writes,
        writes + 1,
        "one write for the whole import"
    );
    assert_eq!(s.token("acme", 0).unwrap().token, "new");
    let beta = s.token("beta", 0).unwrap();
    assert_eq!(
        (beta.token.as_str(), beta.expires_at_ms),
        ("b", Some(2_000_000_000_000))
    );
    assert!(matches!(
        s.import_tokens(
            r#"{"access_token":"x"}"#,
            Some("bad name"),
            &ImportOptions::default()
        ),
        Err(StoreError::InvalidTenant(_))
    ));
}

#[test]
fn recover_of_a_recovered_store_still_goes_above_and_a_damaged_slot_counts_as_damage() {
    let w = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&w);
    let mut s = store(&mut p);
    s.put("acme", r#"{"access_token":"a1"}"#).unwrap();
    s.put("acme", r#"{"access_token":"a2"}"#).unwrap();
    let flip_last = |w: &Rc<RefCell<World>>| {
        let mut f = w.borrow().files["store"].clone();
        let n = f.len();
        f[n - 1] ^= 1;
        w.borrow_mut().files.insert("store", f);
    };
    flip_last(&w);
    let first = s.recover(false).unwrap().generation;
    flip_last(&w);
    let second = s.recover(false).unwrap().generation;
    assert!(
        second > first,
        "{second} > {first}: generations never repeat"
    );
    // A flipped bit in the header's key id would read as a wrong key; with the backup
    // opening under the same key (a bit away), it is reported as damage (a corrupt header,
    // not "check your key"), and recover takes it.
    {
        let mut f = w.borrow().files["store"].clone();
        f[16] ^= 0x01; // inside the key id (FORMAT.md: magic 8, version 2, length 4, key id 16)
        w.borrow_mut().files.insert("store", f);
    }
    assert!(
        matches!(s.list(), Err(StoreError::Corrupt(ref d)) if d.contains("header was altered"))
    );
    s.recover(false).unwrap();
    // What the first recover restored (the backup of a2's store held a1).
    assert_eq!(s.token("acme", 0).unwrap().token, "a1");
}

#[test]
fn recover_force_marks_a_token_with_a_refresh_under_way() {
    let w = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&w);
    let mut s = store(&mut p);
    s.put("acme", r#"{"access_token":"a1","refresh_token":"r1","expires_at":1000,"token_endpoint":"https://as.example/token","client_id":"c"}"#).unwrap();
    s.put("beta", r#"{"access_token":"b1"}"#).unwrap();
    // A refresh whose reply was lost: the intent stays in the live store.
    w.borrow_mut()
        .replies
        .push_back(Err(TransportError::Timeout));
    assert!(s.token("acme", 0).is_err());
    let r = s.recover(true).unwrap();
    assert_eq!(
        r.refresh_unknown,
        ["acme"],
        "r1 may be spent: it stays marked"
    );
    assert!(matches!(
        s.token("acme", 0),
        Err(StoreError::RefreshOutcomeUnknown(_))
    ));
    assert_eq!(
        w.borrow().requests.len(),
        1,
        "r1 was presented once, never again"
    );
}

/// A host that breaks the platform contract (a key id that is not 16 bytes) is a bug to
/// trap on, never a "corrupt store" whose advice is `credlock recover` (hardening item 9).
#[test]
fn a_host_bug_is_a_panic_not_a_corrupt_store() {
    let w = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&w);
    if let Some(k) = &mut p.key {
        k.id.truncate(15);
    }
    let mut s = store(&mut p);
    let put = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        s.put("acme", r#"{"access_token":"a"}"#)
    }));
    let panic = put.expect_err("a 15-byte key id was taken as a store error");
    let why = panic.downcast_ref::<String>().cloned().unwrap_or_default()
        + panic.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(why.contains("platform contract"), "{why}");
    assert!(
        !w.borrow().files.contains_key("store"),
        "a store was written"
    );
}

/// Each time the refresh is about to record its intent, another process has just stored new
/// tokens for the tenant (already expired, with a new refresh token): the refresh reads again
/// and tries again, a few times, then gives up with its own error, having sent nothing. It
/// was reported as a lock timeout with `waited_ms: 0` (hardening item 9).
#[test]
fn a_refresh_that_keeps_meeting_new_tokens_gives_up_with_its_own_error() {
    let expired = |i: u32| {
        format!(
            r#"{{"access_token":"at-{i}","expires_in":0,"refresh_token":"rt-{i}","token_endpoint":"https://as.example/token","client_id":"cli"}}"#
        )
    };
    let mut others = VecDeque::new();
    for i in 2..12 {
        let w2 = Rc::new(RefCell::new(World::default()));
        let mut p2 = Mem::new(&w2);
        store(&mut p2).put("acme", &expired(i)).unwrap();
        let bytes = w2.borrow().files["store"].clone();
        others.push_back(bytes);
    }
    let w = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&w);
    store(&mut p).put("acme", &expired(1)).unwrap();
    w.borrow_mut().written_before_exclusive = others;
    let e = store(&mut p).token("acme", 60_000).unwrap_err();
    assert_eq!(e, StoreError::RefreshContended("acme".into()), "{e}");
    assert_eq!(e.code(), "refresh-contended");
    assert!(w.borrow().requests.is_empty(), "a refresh token was sent");
    assert_eq!(
        w.borrow().written_before_exclusive.len(),
        10 - credlock_core::refresh::MAX_REFRESH_RESTARTS as usize
    );
}

// ----- login (RFC 8628) over the in-memory platform -----

fn reply(status: u16, body: &str) -> Result<HttpReply, TransportError> {
    Ok(HttpReply {
        status,
        content_type: Some("application/json".into()),
        body: body.as_bytes().to_vec(),
    })
}

fn device_login_world(expires_in: u64) -> Rc<RefCell<World>> {
    let world = Rc::new(RefCell::new(World::default()));
    world.borrow_mut().get_replies.push_back(reply(
        200,
        r#"{"issuer":"https://as.example","token_endpoint":"https://as.example/token",
        "device_authorization_endpoint":"https://as.example/device","revocation_endpoint":"https://as.example/revoke"}"#,
    ));
    world.borrow_mut().replies.push_back(reply(
        200,
        &format!(
            r#"{{"device_code":"dc-secret-77","user_code":"ABCD-EFGH","verification_uri":"https://as.example/verify",
            "expires_in":{expires_in},"interval":5}}"#
        ),
    ));
    world
}

fn device_request() -> credlock_core::LoginRequest {
    credlock_core::LoginRequest {
        issuer: Some("https://as.example".into()),
        client_id: "cli".into(),
        client_secret: None,
        scope: Some("openid offline_access".into()),
        flow: credlock_core::LoginFlow::Device,
        audience: None,
        resource: None,
        authorization_endpoint: None,
        token_endpoint: None,
        device_authorization_endpoint: None,
        revocation_endpoint: None,
    }
}

#[test]
fn device_login_polls_at_the_interval_honours_slow_down_and_stores_as_put() {
    let world = device_login_world(600);
    for body in [
        r#"{"error":"authorization_pending"}"#,
        r#"{"error":"slow_down"}"#,
        r#"{"error":"authorization_pending"}"#,
    ] {
        world.borrow_mut().replies.push_back(reply(400, body));
    }
    world.borrow_mut().replies.push_back(ok_reply(
        r#"{"access_token":"at-login","token_type":"bearer","expires_in":60,"refresh_token":"rt-login"}"#,
    ));
    let mut p = Mem::new(&world);
    let out = store(&mut p).login("acme", &device_request()).unwrap();
    assert_eq!(out.token.token, "at-login");
    assert!(!out.joined);
    let w = world.borrow();
    // RFC 8414 first (it answered), the prompt once, polls at 5 s, then 10 s after slow_down.
    assert_eq!(
        w.gets,
        ["https://as.example/.well-known/oauth-authorization-server"]
    );
    assert_eq!(w.prompts.len(), 1);
    assert_eq!(w.prompts[0].user_code.as_deref(), Some("ABCD-EFGH"));
    assert_eq!(w.sleeps_ms, [5_000, 5_000, 10_000, 10_000]);
    let polls: Vec<&TokenRequest> = w.requests.iter().skip(1).collect();
    assert_eq!(polls.len(), 4);
    assert!(polls
        .iter()
        .all(|r| r.body.contains("device_code=dc-secret-77")
            && r.body.contains("client_id=cli")
            && !format!("{r:?}").contains("dc-secret-77")));
    drop(w);
    // Stored as `put` would: no pending entry left, and the refresh grant works with what
    // the login stored (endpoint, client).
    assert!(store(&mut p).pending_logins().unwrap().is_empty());
    p.now_ms += 120_000;
    world
        .borrow_mut()
        .replies
        .push_back(ok_reply(r#"{"access_token":"at-2","expires_in":60}"#));
    let t = store(&mut p).token("acme", 0).unwrap();
    assert!(t.refreshed && t.token == "at-2");
    let w = world.borrow();
    let refresh = w.requests.last().unwrap();
    assert_eq!(refresh.url, "https://as.example/token");
    assert!(
        refresh.body.contains("refresh_token=rt-login") && refresh.body.contains("client_id=cli")
    );
}

#[test]
fn device_login_stops_polling_at_the_codes_expiry_and_stores_nothing() {
    let world = device_login_world(12);
    for _ in 0..2 {
        world
            .borrow_mut()
            .replies
            .push_back(reply(400, r#"{"error":"authorization_pending"}"#));
    }
    let mut p = Mem::new(&world);
    let err = store(&mut p).login("acme", &device_request()).unwrap_err();
    assert!(
        matches!(err, StoreError::Login(credlock_core::LoginError::Expired(ref t)) if t == "acme"),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), credlock_core::error::exit::LOGIN);
    // Polls at 5 and 10 s; one at 15 s would be after the 12 s expiry, so none is made.
    assert_eq!(world.borrow().sleeps_ms, [5_000, 5_000]);
    assert_eq!(world.borrow().requests.len(), 3);
    assert!(store(&mut p).pending_logins().unwrap().is_empty());
    assert!(matches!(
        store(&mut p).token("acme", 0),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn a_denied_or_hostile_device_login_stores_nothing() {
    for (last, want) in [
        (reply(400, r#"{"error":"access_denied"}"#), "access-denied"),
        (reply(400, r#"{"error":"expired_token"}"#), "expired"),
        // A failed request of a login is the login's, not a refresh's: its advice never
        // speaks of a spent refresh token (there is none yet).
        (
            ok_reply(r#"{"access_token":"a","token_type":"mac"}"#),
            "endpoint",
        ),
        (Err(TransportError::ReplyTooLarge), "endpoint"),
    ] {
        let world = device_login_world(600);
        world.borrow_mut().replies.push_back(last);
        let mut p = Mem::new(&world);
        let err = store(&mut p).login("acme", &device_request()).unwrap_err();
        assert_eq!((err.code(), err.case()), ("login", Some(want)), "{err:?}");
        assert!(!err.recommendation().contains("spent"), "{err:?}");
        if want == "endpoint" {
            assert!(err.to_string().contains("token_endpoint"), "{err}");
        }
        assert!(store(&mut p).pending_logins().unwrap().is_empty());
        assert!(store(&mut p).list().unwrap().is_empty());
    }
}

// ----- a `records` platform: one sealed record per tenant (FORMAT.md, "Tenant records") -----

fn records_world() -> Rc<RefCell<World>> {
    Rc::new(RefCell::new(World {
        records_layout: true,
        ..World::default()
    }))
}

fn put_n(p: &mut Mem, n: usize) {
    for i in 0..n {
        store(p).put(&format!("t{i}"), REFRESHABLE).unwrap();
    }
}

#[test]
fn records_a_call_about_one_tenant_reads_and_writes_that_tenant_only() {
    let world = records_world();
    let mut p = Mem::new(&world);
    put_n(&mut p, 20);
    {
        let w = world.borrow();
        assert_eq!(w.records.len(), 20);
        // Each put wrote its own record and nothing else.
        assert_eq!(w.record_writes, vec![1; 20]);
        assert_eq!(w.all_record_reads, 0, "a put read every record");
        // The header holds no tenant: no name, no token.
        let header = String::from_utf8_lossy(&w.files["store"]).to_string();
        assert!(!header.contains("t19") && !header.contains("rt-1"));
    }
    let reads = world.borrow().record_reads;
    let t = store(&mut p).token("t7", 60_000).unwrap();
    assert_eq!(t.token, "at-1");
    assert_eq!(world.borrow().record_reads, reads + 1);
    assert_eq!(world.borrow().all_record_reads, 0);
    // A second put of one tenant: revision 2, one record written.
    let r = store(&mut p).put("t7", REFRESHABLE).unwrap();
    assert_eq!((r.revision, r.generation), (2, 21));
    assert_eq!(world.borrow().record_writes.last(), Some(&1));
    // Every tenant is still there, each once.
    let list = store(&mut p).list().unwrap();
    assert_eq!(list.len(), 20);
    assert_eq!(store(&mut p).info().unwrap().tenants, 20);
    // Delete removes the record, in one write.
    let writes = world.borrow().writes;
    assert!(store(&mut p).delete("t3").unwrap());
    assert_eq!(world.borrow().writes, writes + 1);
    assert_eq!(world.borrow().records.len(), 19);
    assert!(matches!(
        store(&mut p).token("t3", 0),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn records_a_refresh_touches_only_its_tenant() {
    let world = records_world();
    let mut p = Mem::new(&world);
    put_n(&mut p, 5);
    let before = world.borrow().records.clone();
    p.now_ms += 3_600_000;
    world.borrow_mut().replies.push_back(ok_reply(
        r#"{"access_token":"at-2","expires_in":3600,"refresh_token":"rt-2"}"#,
    ));
    let t = store(&mut p).token("t2", 60_000).unwrap();
    assert!(t.refreshed);
    assert_eq!(t.token, "at-2");
    let w = world.borrow();
    assert_eq!(w.requests.len(), 1);
    assert_eq!(w.all_record_reads, 0);
    for (id, sealed) in &before {
        let changed = w.records[id] != *sealed;
        assert_eq!(
            changed,
            w.records.len() == 5 && id == &tenant_id("t2"),
            "record {id}"
        );
    }
}

fn tenant_id(name: &str) -> String {
    credlock_core::tenant::TenantName::new(name).unwrap().id()
}

#[test]
fn records_a_record_moved_to_another_tenant_does_not_open_and_the_rest_do() {
    let world = records_world();
    let mut p = Mem::new(&world);
    put_n(&mut p, 3);
    {
        let mut w = world.borrow_mut();
        let a = w.records[&tenant_id("t0")].clone();
        w.records.insert(tenant_id("t1"), a);
    }
    let e = store(&mut p).token("t1", 0).unwrap_err();
    assert!(
        matches!(&e, StoreError::Corrupt(d) if d.contains(&tenant_id("t1"))),
        "{e:?}"
    );
    // Nothing unreadable is overwritten: a put of that tenant is refused too.
    let writes = world.borrow().writes;
    assert!(store(&mut p).put("t1", REFRESHABLE).is_err());
    assert_eq!(world.borrow().writes, writes);
    assert_eq!(store(&mut p).token("t2", 0).unwrap().token, "at-1");
}

#[test]
fn records_a_blob_moved_in_is_split_by_its_first_write_and_export_gives_it_back() {
    let world = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&world);
    put_n(&mut p, 4);
    let blob = world.borrow().files["store"].clone();
    // The same bytes on a records platform (what `migrate` into a database did before
    // adopt): readable as they are, split into records by the first write.
    world.borrow_mut().records_layout = true;
    assert_eq!(store(&mut p).token("t1", 0).unwrap().token, "at-1");
    assert_eq!(world.borrow().record_reads, 0);
    store(&mut p).put("t9", REFRESHABLE).unwrap();
    assert_eq!(world.borrow().records.len(), 5);
    assert_eq!(world.borrow().record_writes, vec![5]);
    assert_ne!(world.borrow().files["store"], blob);
    // Export: one sealed file with every tenant, which a blob platform adopts.
    let exported = store(&mut p).export_sealed().unwrap().unwrap();
    let generation = store(&mut p).info().unwrap().generation;
    let other = Rc::new(RefCell::new(World::default()));
    let mut q = Mem::new(&other);
    let info = store(&mut q).adopt_sealed(&exported).unwrap();
    assert_eq!((info.generation, info.tenants), (generation, 5));
    assert_eq!(store(&mut q).token("t9", 0).unwrap().token, "at-1");
    // Adopt never replaces a store.
    assert!(matches!(
        store(&mut q).adopt_sealed(&exported),
        Err(StoreError::InvalidOptions(_))
    ));
    // And back into records: one write of every record.
    let third = records_world();
    let mut r = Mem::new(&third);
    store(&mut r).adopt_sealed(&exported).unwrap();
    assert_eq!(third.borrow().records.len(), 5);
    assert_eq!(store(&mut r).list().unwrap().len(), 5);
}

#[test]
fn records_a_header_is_never_read_as_a_whole_store() {
    let world = records_world();
    let mut p = Mem::new(&world);
    put_n(&mut p, 2);
    let header = world.borrow().files["store"].clone();
    let blob = Rc::new(RefCell::new(World::default()));
    blob.borrow_mut().files.insert("store", header.clone());
    let mut q = Mem::new(&blob);
    // It would read as a store without tenants, and the next put would drop them.
    let e = store(&mut q).put("t5", REFRESHABLE).unwrap_err();
    assert!(
        matches!(&e, StoreError::Corrupt(d) if d.contains("records")),
        "{e:?}"
    );
    assert_eq!(blob.borrow().files["store"], header);
    assert!(store(&mut q).adopt_sealed(&header).is_err());
}

#[test]
fn records_rekey_reseals_every_record_and_recover_refuses() {
    let world = records_world();
    let mut p = Mem::new(&world);
    put_n(&mut p, 6);
    let before = world.borrow().records.clone();
    let info = store(&mut p).rekey().unwrap();
    assert_eq!(info.tenants, 6);
    {
        let w = world.borrow();
        assert_eq!(w.record_writes.last(), Some(&6));
        assert!(w.records.iter().all(|(id, s)| before[id] != *s));
    }
    for i in 0..6 {
        assert_eq!(
            store(&mut p).token(&format!("t{i}"), 0).unwrap().token,
            "at-1"
        );
    }
    // A record left from the old key does not open under the new one.
    world
        .borrow_mut()
        .records
        .insert(tenant_id("t4"), before[&tenant_id("t4")].clone());
    assert!(matches!(
        store(&mut p).token("t4", 0),
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store(&mut p).recover(true),
        Err(StoreError::Recover(RecoverError::TenantRecords))
    ));
    assert!(matches!(
        store(&mut p).quarantine(true),
        Err(StoreError::Recover(RecoverError::TenantRecords))
    ));
}

#[test]
fn records_an_intent_whose_session_may_have_ended_is_retry_until_it_could_have_landed() {
    let world = records_world();
    let mut p = Mem::new(&world);
    store(&mut p).put("acme", REFRESHABLE).unwrap();
    p.now_ms += 3_600_000;
    world
        .borrow_mut()
        .replies
        .push_back(Err(TransportError::Timeout));
    assert!(matches!(
        store(&mut p).token("acme", 0),
        Err(StoreError::Endpoint(_))
    ));
    // On a database store a free refresh lock does not prove its holder gone (its session
    // may have ended while it lives): retry, not "log in again", while its refresh could
    // still record an outcome; nothing is presented meanwhile.
    let e = store(&mut p).token("acme", 0).unwrap_err();
    assert!(
        matches!(&e, StoreError::LockTimeout { lock, .. } if lock.contains("in flight")),
        "{e:?}"
    );
    assert_eq!(e.exit_code(), 5);
    let o = Options::default();
    p.now_ms += u64::from(o.refresh_lock_timeout_ms().unwrap());
    assert!(matches!(
        store(&mut p).token("acme", 0),
        Err(StoreError::RefreshOutcomeUnknown(_))
    ));
    assert_eq!(world.borrow().requests.len(), 1);
}

/// Google's application default credentials hold a refresh token and no access token: the
/// imported tenant must refresh at its first `token` (with the file's client, the secret in
/// the form body) and never serve an empty token.
#[test]
fn a_refresh_only_import_refreshes_first_and_never_serves_an_empty_token() {
    let world = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&world);
    let adc = r#"{"type": "authorized_user", "client_id": "cid.apps", "client_secret": "cs",
        "refresh_token": "1//rt", "quota_project_id": "proj"}"#;
    let r = store(&mut p)
        .import_tokens(adc, Some("gcp"), &ImportOptions::default())
        .unwrap();
    assert_eq!((r.imported.len(), r.skipped.len()), (1, 0));
    let l = store(&mut p).list().unwrap();
    assert_eq!(l[0].expires_at_ms, Some(0));
    assert_eq!(
        l[0].token_endpoint.as_deref(),
        Some("https://oauth2.googleapis.com/token")
    );
    world
        .borrow_mut()
        .replies
        .push_back(ok_reply(r#"{"access_token":"ya29.a","expires_in":3599}"#));
    let t = store(&mut p).token("gcp", 0).unwrap();
    assert_eq!((t.token.as_str(), t.refreshed), ("ya29.a", true));
    let req = world.borrow().requests[0].clone();
    assert_eq!(
        req.body,
        "grant_type=refresh_token&refresh_token=1%2F%2Frt&client_id=cid.apps&client_secret=cs"
    );
    assert_eq!(req.url, "https://oauth2.googleapis.com/token");
    // A refresh that fails leaves nothing servable: an error, not the empty token.
    let mut q = Mem::new(&world);
    store(&mut q)
        .import_tokens(adc, Some("gcp2"), &ImportOptions::default())
        .unwrap();
    world
        .borrow_mut()
        .replies
        .push_back(Err(TransportError::Connect("refused".into())));
    let e = store(&mut q).token("gcp2", 0).unwrap_err();
    assert!(matches!(e, StoreError::Endpoint(_)), "{e:?}");
}

/// A token kept with only `expires_in` was received no later than its file was written: its
/// expiry counts from then, not from the import.
#[test]
fn expires_in_counts_from_when_the_file_was_saved() {
    let world = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&world);
    p.now_ms = 10_000_000;
    let how = ImportOptions {
        saved_at_ms: Some(4_000_000),
        ..ImportOptions::default()
    };
    store(&mut p)
        .import_tokens(r#"{"access_token":"a","expires_in":3600}"#, Some("t"), &how)
        .unwrap();
    // Saved 6000 s ago with a 3600 s lifetime: expired, not valid for another hour.
    let l = store(&mut p).list().unwrap();
    assert_eq!(l[0].expires_at_ms, Some(4_000_000 + 3_599_000));
    assert!(matches!(
        store(&mut p).token("t", 0),
        Err(StoreError::Expired(_))
    ));
    // A file dated in the future (a clock set wrong) counts from now, never later.
    let how = ImportOptions {
        saved_at_ms: Some(99_000_000),
        replace: true,
        ..ImportOptions::default()
    };
    store(&mut p)
        .import_tokens(r#"{"access_token":"a","expires_in":3600}"#, Some("t"), &how)
        .unwrap();
    assert_eq!(
        store(&mut p).list().unwrap()[0].expires_at_ms,
        Some(10_000_000 + 3_599_000)
    );
}

/// A tenant whose server wants the scopes on every refresh (Microsoft's v2.0 endpoint, an
/// MSAL cache's import) sends `refresh_scope`; every other refresh sends no scope.
#[test]
fn refresh_scope_is_sent_only_when_set() {
    let world = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&world);
    store(&mut p)
        .put(
            "ms",
            r#"{"access_token":"a","expires_in":60,"refresh_token":"rt","client_id":"c",
            "token_endpoint":"https://login.example/t/oauth2/v2.0/token",
            "refresh_scope":"https://graph.example/.default offline_access"}"#,
        )
        .unwrap();
    p.now_ms += 3_600_000;
    world
        .borrow_mut()
        .replies
        .push_back(ok_reply(r#"{"access_token":"b","expires_in":60}"#));
    assert_eq!(store(&mut p).token("ms", 0).unwrap().token, "b");
    assert_eq!(
        world.borrow().requests[0].body,
        "grant_type=refresh_token&refresh_token=rt&scope=https%3A%2F%2Fgraph.example%2F.default+offline_access&client_id=c"
    );
}

/// Attachments ride along with the tenant: a refresh (which writes the entry twice) and a
/// new login keep them, they never change what `token` serves or the revision, a tenant with
/// only attachments has no token, and on a records platform each lives in its tenant's record.
#[test]
fn attachments_survive_refreshes_and_logins_and_go_with_the_tenant() {
    for records in [false, true] {
        let world = Rc::new(RefCell::new(World::default()));
        world.borrow_mut().records_layout = records;
        let mut p = Mem::new(&world);
        let client = r#"{"client_id":"dyn-1","client_secret":"cs-attached"}"#;
        let r = store(&mut p)
            .set_attachment("acme", "client-information", Some(client))
            .unwrap();
        assert_eq!(r.revision, 1);
        assert!(matches!(
            store(&mut p).token("acme", 0),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store(&mut p).refresh("acme", None),
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(store(&mut p).put("acme", REFRESHABLE).unwrap().revision, 2);
        p.now_ms += 3_600_000;
        world
            .borrow_mut()
            .replies
            .push_back(ok_reply(r#"{"access_token":"at-2","expires_in":600}"#));
        assert_eq!(store(&mut p).token("acme", 10_000).unwrap().token, "at-2");
        let got = store(&mut p)
            .attachment("acme", "client-information")
            .unwrap();
        assert_eq!(got.as_deref(), Some(client), "records: {records}");
        let before = store(&mut p).list().unwrap()[0].revision;
        store(&mut p)
            .set_attachment("acme", "code-verifier", Some("v-1"))
            .unwrap();
        assert_eq!(store(&mut p).list().unwrap()[0].revision, before);
        assert_eq!(store(&mut p).token("acme", 10_000).unwrap().token, "at-2");
        // Every write's sealed bytes: the attachment's secret never appears in clear.
        let w = world.borrow();
        let sealed: Vec<&Vec<u8>> = w.files.values().chain(w.records.values()).collect();
        assert!(sealed
            .iter()
            .all(|b| !b.windows(11).any(|x| x == b"cs-attached")));
        drop(w);
        assert!(store(&mut p).delete("acme").unwrap());
        assert_eq!(
            store(&mut p)
                .attachment("acme", "client-information")
                .unwrap(),
            None
        );
        // The sixteenth is the last one a tenant may have.
        for i in 0..16 {
            store(&mut p)
                .set_attachment("many", &format!("a{i}"), Some("x"))
                .unwrap();
        }
        assert!(matches!(
            store(&mut p).set_attachment("many", "a16", Some("x")),
            Err(StoreError::InvalidAttachment(_))
        ));
        // Removing them all removes the tenant, which never had tokens.
        for i in 0..16 {
            store(&mut p)
                .set_attachment("many", &format!("a{i}"), None)
                .unwrap();
        }
        assert!(store(&mut p).list().unwrap().is_empty());
    }
}

/// A tenant whose tokens are for one resource (RFC 8707; an MCP client's login names its
/// server) sends `refresh_resource` as `resource` with every refresh, so that the refreshed
/// token keeps its audience; a put without it keeps what the tenant had only when it gives
/// no refresh settings at all.
#[test]
fn refresh_resource_is_sent_as_resource_with_every_refresh() {
    let world = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&world);
    store(&mut p)
        .put(
            "mcp",
            r#"{"access_token":"a","expires_in":60,"refresh_token":"rt","client_id":"c",
            "token_endpoint":"https://as.example/token",
            "refresh_resource":"https://mcp.example/mcp"}"#,
        )
        .unwrap();
    p.now_ms += 3_600_000;
    world.borrow_mut().replies.push_back(ok_reply(
        r#"{"access_token":"b","expires_in":60,"refresh_token":"rt2"}"#,
    ));
    assert_eq!(store(&mut p).token("mcp", 0).unwrap().token, "b");
    assert_eq!(
        world.borrow().requests[0].body,
        "grant_type=refresh_token&refresh_token=rt&resource=https%3A%2F%2Fmcp.example%2Fmcp&client_id=c"
    );
    // Kept across the refresh, and by a put of tokens alone.
    store(&mut p)
        .put(
            "mcp",
            r#"{"access_token":"c","expires_in":60,"refresh_token":"rt3"}"#,
        )
        .unwrap();
    p.now_ms += 3_600_000;
    world
        .borrow_mut()
        .replies
        .push_back(ok_reply(r#"{"access_token":"d","expires_in":60}"#));
    assert_eq!(store(&mut p).token("mcp", 0).unwrap().token, "d");
    assert!(
        world.borrow().requests[1]
            .body
            .contains("&resource=https%3A%2F%2Fmcp.example%2Fmcp&"),
        "{}",
        world.borrow().requests[1].body
    );
    assert!(store(&mut p)
        .put("mcp", r#"{"access_token":"e","refresh_resource":7}"#)
        .unwrap_err()
        .to_string()
        .contains("`refresh_resource` is not a non-empty string"));
}

/// The body of the store file in `world`, opened with `key`: (header bytes, nonce, JSON).
fn open_body(world: &Rc<RefCell<World>>, key: &MemKey) -> (Vec<u8>, Vec<u8>, String) {
    let file = world.borrow().files["store"].clone();
    let (header, len) = credlock_core::format::Header::decode(&file).unwrap();
    let plain = key.open(&header.nonce, &file[..len], &file[len..]).unwrap();
    (
        file[..len].to_vec(),
        header.nonce.to_vec(),
        String::from_utf8(plain).unwrap(),
    )
}

/// A call about one tenant of a file store decodes only that tenant (core/src/unread.rs): a
/// tenant whose entry this build cannot read (a newer writer's, a damaged one) is carried
/// through another tenant's writes byte for byte, and is reported by every call that reads
/// it; nothing of it is lost (promises 4 and 5).
#[test]
fn a_tenant_that_cannot_be_read_is_carried_byte_for_byte_and_reported_where_read() {
    let world = Rc::new(RefCell::new(World::default()));
    let mut p = Mem::new(&world);
    store(&mut p).put("a", r#"{"access_token":"a1"}"#).unwrap();
    store(&mut p).put("b", r#"{"access_token":"b1"}"#).unwrap();
    let key = p.key.clone().unwrap();
    // Rewrite b's entry as a writer this build does not understand would: its revision a
    // string, and a field of its own.
    let (header, nonce, json) = open_body(&world, &key);
    let mut body: serde_json::Value = serde_json::from_str(&json).unwrap();
    body["tenants"]["b"]["revision"] = "seven".into();
    body["tenants"]["b"]["from_the_future"] = serde_json::json!([1, {"z": 2}]);
    let json = serde_json::to_string(&body).unwrap();
    let b_text = serde_json::to_string(&body["tenants"]["b"]).unwrap();
    assert!(json.contains(&b_text));
    let mut file = header.clone();
    file.extend(key.seal(&nonce, &header, json.as_bytes()).unwrap());
    world.borrow_mut().files.insert("store", file);

    // Calls about `a` read and write around it.
    assert_eq!(store(&mut p).token("a", 0).unwrap().token, "a1");
    let r = store(&mut p).put("a", r#"{"access_token":"a2"}"#).unwrap();
    assert_eq!(r.revision, 2);
    assert_eq!(store(&mut p).token("a", 0).unwrap().token, "a2");
    let (_, _, after) = open_body(&world, &key);
    assert!(after.contains(&b_text), "b changed: {after}");
    assert!(after.contains(r#""access_token":"a2""#));

    // Every call that reads `b` says the store is damaged, and writes nothing.
    let writes = world.borrow().writes;
    let corrupt = |e: StoreError| matches!(e, StoreError::Corrupt(_));
    assert!(corrupt(store(&mut p).token("b", 0).unwrap_err()));
    assert!(corrupt(
        store(&mut p)
            .put("b", r#"{"access_token":"b2"}"#)
            .unwrap_err()
    ));
    assert!(corrupt(store(&mut p).list().unwrap_err()));
    assert!(corrupt(store(&mut p).rekey().unwrap_err()));
    assert_eq!(world.borrow().writes, writes);
    let (_, _, last) = open_body(&world, &key);
    assert_eq!(last, after);
}
