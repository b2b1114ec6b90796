//! One simulated run: a seed chooses the process count, operations, fault rates, token
//! lifetimes and clock skews; a safety phase runs them with faults, then a liveness phase
//! without faults in which fresh processes must each obtain a valid token.

#[cfg(feature = "component")]
use crate::component::{ComponentProcess, Perturbation};
use crate::naive::NaiveOps;
use crate::platform::SimPlatform;
use crate::platform::KEYRING_FAULT;
use crate::rng::Rng;
use crate::sched::Sim;
use crate::world::{Faults, KnownBugs, NaivePlatform, Pid, World};
use credlock_core::platform::{IoError, KeyError, KeySlot};
use credlock_core::store::Naive;
use credlock_core::{
    AccessToken, ImportReport, Options, RecoverError, RecoverReport, Store, StoreError, StoreInfo,
    TenantSummary, WriteReceipt,
};
use std::sync::Arc;

/// The tenant that refreshes against the simulated server.
pub const REFRESHING: &str = "acme";

#[derive(Debug, Clone)]
pub struct Plan {
    pub seed: u64,
    pub processes: usize,
    pub ops_per_process: usize,
    pub faults: Faults,
    pub token_lifetime_ms: u64,
    pub naive: Naive,
    pub naive_platform: NaivePlatform,
    /// Maintenance done by hand instead of by the core (see [`crate::naive`]).
    pub naive_ops: NaiveOps,
    /// Which operations the workload may draw (see [`Op`]).
    pub ops: Vec<OpKind>,
    pub liveness: bool,
    pub max_steps: u64,
    pub options: Options,
    /// Only for a zoo scenario that isolates another checker.
    pub allow_duplicate_presentations: bool,
    /// The setup login stores an already expired access token.
    pub initial_expired: bool,
    /// See [`KnownBugs`].
    pub known_core_bugs: KnownBugs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    PutOwn,
    PutShared,
    Token,
    TokenForceRefresh,
    Refresh,
    List,
    DeleteOwn,
    /// Re-seal under a new data key (`rekey`), racing readers and writers.
    Rekey,
    /// Add a key slot of a random kind (some volatile, one the host cannot make).
    AddSlot,
    /// Remove a random slot, never leaving only volatile ones.
    RemoveSlot,
    /// `recover` without force: restores the backup only if the store is unreadable.
    Recover,
    /// `recover --force`: a deliberate rollback to the backup.
    RecoverForce,
    /// Move a damaged store aside (refused for one that opens).
    Quarantine,
    /// `quarantine --force`: also a store that reads as another key or a newer format.
    QuarantineForce,
    /// Import a small map of tokens in one write (an agent `auth.json`).
    Import,
}

impl OpKind {
    /// The name checkers see for a process doing this operation.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::PutOwn | OpKind::PutShared => "put",
            OpKind::Token | OpKind::TokenForceRefresh => "token",
            OpKind::Refresh => "refresh",
            OpKind::List => "list",
            OpKind::DeleteOwn => "delete",
            OpKind::Rekey => "rekey",
            OpKind::AddSlot => "add-slot",
            OpKind::RemoveSlot => "remove-slot",
            OpKind::Recover => "recover",
            OpKind::RecoverForce => "recover-force",
            OpKind::Quarantine => "quarantine",
            OpKind::QuarantineForce => "quarantine-force",
            OpKind::Import => "import",
        }
    }
}

/// The store operations every plan draws from.
pub const BASE_OPS: [OpKind; 7] = [
    OpKind::PutOwn,
    OpKind::PutShared,
    OpKind::Token,
    OpKind::TokenForceRefresh,
    OpKind::Refresh,
    OpKind::List,
    OpKind::DeleteOwn,
];

/// The maintenance operations half the plans add to the mix.
pub const MAINTENANCE_OPS: [OpKind; 5] = [
    OpKind::Rekey,
    OpKind::AddSlot,
    OpKind::RemoveSlot,
    OpKind::Recover,
    OpKind::Import,
];

/// Which build of the core the simulated processes run. The plan, the platform, the faults
/// and the checkers are the same for each: only the road from an operation to the platform
/// differs, so the same seed must give the same trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CoreBuild {
    /// The core compiled natively into the simulator (with the bug zoo's naive switches).
    #[default]
    Native,
    /// The shipped component, in wasmtime (see [`crate::component`]). Has no naive switches.
    #[cfg(feature = "component")]
    Component,
    /// The component with one import deliberately wrong: only to show that a difference
    /// between the builds is caught.
    #[cfg(feature = "component")]
    ComponentPerturbed(Perturbation),
}

/// One simulated process's way into the store: the store operations the workload uses,
/// whichever build answers them. Each call is one whole store operation, as the CLI or a
/// binding makes it; the process keeps nothing between calls but its platform.
pub trait Process {
    /// The process's own platform, for what a simulated user does by hand (see
    /// [`crate::naive`]).
    fn platform(&mut self) -> &mut SimPlatform;
    fn put(&mut self, tenant: &str, token_response: &str) -> Result<WriteReceipt, StoreError>;
    fn token(&mut self, tenant: &str, min_valid_ms: u64) -> Result<AccessToken, StoreError>;
    fn refresh(&mut self, tenant: &str, rejected: Option<&str>) -> Result<AccessToken, StoreError>;
    fn list(&mut self) -> Result<Vec<TenantSummary>, StoreError>;
    fn delete(&mut self, tenant: &str) -> Result<bool, StoreError>;
    fn rekey(&mut self) -> Result<StoreInfo, StoreError>;
    fn add_slot(&mut self, kind: &str) -> Result<Vec<KeySlot>, StoreError>;
    fn remove_slot(
        &mut self,
        index: u32,
        allow_volatile_only: bool,
    ) -> Result<Vec<KeySlot>, StoreError>;
    fn recover(&mut self, force: bool) -> Result<RecoverReport, StoreError>;
    fn quarantine(&mut self, force: bool) -> Result<String, StoreError>;
    fn import_tokens(
        &mut self,
        source: &str,
        tenant: Option<&str>,
        replace: bool,
    ) -> Result<ImportReport, StoreError>;
}

/// The native core, called directly: a fresh `Store` per call, as the component makes one
/// per export call (a `Store` holds nothing but the platform and the options).
pub struct NativeProcess {
    pub p: SimPlatform,
    pub opts: Options,
    pub naive: Naive,
}

impl NativeProcess {
    fn store(&mut self) -> Store<'_, SimPlatform> {
        let mut store = Store::new(&mut self.p, self.opts).expect("valid options");
        store.naive = self.naive;
        store
    }
}

impl Process for NativeProcess {
    fn platform(&mut self) -> &mut SimPlatform {
        &mut self.p
    }
    fn put(&mut self, tenant: &str, token_response: &str) -> Result<WriteReceipt, StoreError> {
        self.store().put(tenant, token_response)
    }
    fn token(&mut self, tenant: &str, min_valid_ms: u64) -> Result<AccessToken, StoreError> {
        self.store().token(tenant, min_valid_ms)
    }
    fn refresh(&mut self, tenant: &str, rejected: Option<&str>) -> Result<AccessToken, StoreError> {
        self.store().refresh(tenant, rejected)
    }
    fn list(&mut self) -> Result<Vec<TenantSummary>, StoreError> {
        self.store().list()
    }
    fn delete(&mut self, tenant: &str) -> Result<bool, StoreError> {
        self.store().delete(tenant)
    }
    fn rekey(&mut self) -> Result<StoreInfo, StoreError> {
        self.store().rekey()
    }
    fn add_slot(&mut self, kind: &str) -> Result<Vec<KeySlot>, StoreError> {
        self.store().add_slot(kind)
    }
    fn remove_slot(
        &mut self,
        index: u32,
        allow_volatile_only: bool,
    ) -> Result<Vec<KeySlot>, StoreError> {
        self.store().remove_slot(index, allow_volatile_only)
    }
    fn recover(&mut self, force: bool) -> Result<RecoverReport, StoreError> {
        self.store().recover(force)
    }
    fn quarantine(&mut self, force: bool) -> Result<String, StoreError> {
        self.store().quarantine(force)
    }
    fn import_tokens(
        &mut self,
        source: &str,
        tenant: Option<&str>,
        replace: bool,
    ) -> Result<ImportReport, StoreError> {
        let how = credlock_core::ImportOptions {
            replace,
            ..Default::default()
        };
        self.store().import_tokens(source, tenant, &how)
    }
}

/// Process `pid`'s way into the store, in `build`.
fn process(
    sim: &Arc<Sim>,
    pid: Pid,
    build: CoreBuild,
    opts: Options,
    naive: Naive,
) -> Box<dyn Process> {
    let p = SimPlatform {
        sim: Arc::clone(sim),
        pid,
    };
    match build {
        CoreBuild::Native => Box::new(NativeProcess { p, opts, naive }),
        #[cfg(feature = "component")]
        CoreBuild::Component => Box::new(ComponentProcess::new(p, opts, None)),
        #[cfg(feature = "component")]
        CoreBuild::ComponentPerturbed(x) => Box::new(ComponentProcess::new(p, opts, Some(x))),
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub failures: Vec<String>,
    pub trace_hash: String,
    /// What the run left behind (see [`world_hash`]).
    pub world_hash: String,
    /// The traced events, if asked for ([`run_with`]).
    pub log: Vec<String>,
    pub steps: u64,
    pub refreshes: u64,
    pub presentations: usize,
    pub ops_done: u64,
    pub errors: std::collections::BTreeMap<String, u64>,
    pub succeeded: std::collections::BTreeMap<&'static str, u64>,
    pub queue: std::collections::BTreeMap<&'static str, u64>,
}

impl Plan {
    /// Whether the plan models a database store (`World::database`): the platform then
    /// keeps the store as a header and tenant records.
    pub fn database(&self) -> bool {
        self.faults.session_loss > 0
    }

    /// A random plan from a seed.
    pub fn random(seed: u64) -> Plan {
        Plan::random_with(seed, KnownBugs::default())
    }

    /// A random plan from a seed, with the operations and faults that trigger the given
    /// reported core bugs (see [`KnownBugs`]).
    pub fn random_with(seed: u64, known_core_bugs: KnownBugs) -> Plan {
        let mut r = Rng::new(seed.wrapping_mul(31).wrapping_add(7));
        let scale = |r: &mut Rng, max: u32| {
            if r.chance(250_000) {
                0
            } else {
                r.range(0, u64::from(max)) as u32
            }
        };
        let faults = Faults {
            crash: scale(&mut r, 4_000),
            power_loss: scale(&mut r, 300),
            write_error: scale(&mut r, 40_000),
            dir_fsync_error: scale(&mut r, 20_000),
            keyring_unavailable: scale(&mut r, 30_000),
            connect_error: scale(&mut r, 100_000),
            server_unavailable: scale(&mut r, 100_000),
            reply_lost: scale(&mut r, 100_000),
            malformed_reply: scale(&mut r, 50_000),
            clock_jump: scale(&mut r, 2_000),
            corruption: if r.chance(100_000) { 20_000 } else { 0 },
            session_loss: 0,
        };
        let mut plan = Plan {
            seed,
            processes: r.range(2, 8) as usize,
            ops_per_process: r.range(2, 12) as usize,
            faults,
            token_lifetime_ms: r.range(1, 5) * 1000,
            naive: Naive::default(),
            naive_platform: NaivePlatform::default(),
            naive_ops: NaiveOps::default(),
            ops: BASE_OPS.to_vec(),
            liveness: true,
            max_steps: 400_000,
            allow_duplicate_presentations: false,
            initial_expired: r.chance(500_000),
            known_core_bugs,
            options: Options {
                lock_timeout_ms: r.range(50, 2_000) as u32,
                http_timeout_ms: 100,
                allow_insecure_http: false,
            },
        };
        // Drawn last, so that the rest of a seed's plan is what it was before maintenance
        // operations existed.
        if r.chance(500_000) {
            plan.ops.extend(MAINTENANCE_OPS);
            if r.chance(250_000) {
                plan.ops.push(OpKind::RecoverForce);
            }
            if r.chance(250_000) {
                plan.ops.push(OpKind::Quarantine);
            }
            if r.chance(250_000) {
                plan.ops.push(OpKind::QuarantineForce);
            }
        }
        // After everything else, for the same reason: a third of the campaigns model a
        // database store that loses sessions (`Faults::session_loss`). Such a store keeps its
        // tenants as records (`World::database`), and a database is not corrupted at rest.
        if r.chance(330_000) {
            plan.faults.session_loss = 30_000;
            plan.faults.corruption = 0;
        }
        plan
    }
}

fn record_error(sim: &Sim, e: &StoreError) {
    let kind = format!("{e:?}")
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or("")
        .to_owned();
    let mut st = sim.lock();
    *st.world.history.errors.entry(kind).or_default() += 1;
    // A torn or undecodable read is never acceptable, unless corruption was injected. A
    // store moved aside beside its backup (a quarantine, or a recover cut short) is refused
    // as damage on purpose, until `recover` restores the backup: that is no torn read.
    let missing_beside_backup = matches!(e, StoreError::Corrupt(d) if d == credlock_core::store::MISSING_BESIDE_BACKUP)
        && st.world.disk.store.live.is_none()
        && st.world.disk.backup.live.is_some();
    if matches!(e, StoreError::Corrupt(_) | StoreError::NotAStore(_))
        && !st.world.disk.corrupted
        && !missing_beside_backup
    {
        st.world
            .fail(format!("a reader saw an undecodable store: {e}"));
    }
    // Every key is available to every process: a key error is an injected keyring fault,
    // a slot kind the host cannot make, or a corrupted header (a flipped bit in the key id
    // or a slot); anything else means a header that does not open its own key (a rekey or
    // slot change gone wrong, or a store left with volatile slots only).
    if let (StoreError::Key(k), false) = (e, st.world.disk.corrupted) {
        let injected = match k {
            KeyError::Io(IoError::Other(d)) | KeyError::Keyring(d) => d.contains(KEYRING_FAULT),
            KeyError::SlotUnavailable(_) => true,
            _ => false,
        };
        if !injected {
            st.world
                .fail(format!("a process could not open the store: {e}"));
        }
    }
}

/// Record what process `pid` is doing, for the checkers of platform calls.
fn doing(sim: &Sim, pid: Pid, what: &'static str) {
    sim.lock().procs[pid].doing = what;
}

/// Log in at the simulated server and store the grant.
fn login(sim: &Arc<Sim>, store: &mut dyn Process, expired: bool) -> Result<(), StoreError> {
    let json = {
        let mut st = sim.lock();
        let (at, rt) = st.world.server.login();
        let life = if expired {
            0
        } else {
            st.world.server.lifetime_ms / 1000
        };
        format!(
            r#"{{"access_token":"{at}","refresh_token":"{rt}","expires_in":{life},"token_endpoint":"https://as.sim/token","client_id":"sim","client_secret":"s"}}"#
        )
    };
    let receipt = store.put(REFRESHING, &json)?;
    let at = json.split('"').nth(3).unwrap_or_default().to_owned();
    sim.lock().world.history.acked_puts.push((
        REFRESHING.into(),
        receipt.revision,
        at,
        receipt.generation,
    ));
    Ok(())
}

/// Run `kind` as a naive procedure if the plan says so; returns whether it did.
fn naive_op(
    sim: &Arc<Sim>,
    p: &mut SimPlatform,
    kind: OpKind,
    naive_ops: NaiveOps,
    opts: Options,
) -> bool {
    let procedure = match kind {
        OpKind::Rekey if naive_ops.rekey_outside_lock => crate::naive::rekey_outside_lock,
        OpKind::Recover if naive_ops.recover_unmarked => crate::naive::recover_unmarked,
        _ => return false,
    };
    doing(sim, p.pid, kind.name());
    let result = procedure(p, opts.lock_timeout_ms);
    let mut st = sim.lock();
    if result.is_err() {
        *st.world.history.errors.entry("Naive".into()).or_default() += 1;
    }
    st.world.history.ops_done += 1;
    true
}

fn op(sim: &Arc<Sim>, store: &mut dyn Process, pid: Pid, k: usize, kind: OpKind, lifetime_ms: u64) {
    doing(sim, pid, kind.name());
    let result: Result<(), StoreError> = match kind {
        OpKind::PutOwn | OpKind::PutShared => {
            let tenant = if kind == OpKind::PutOwn {
                format!("p{pid}")
            } else {
                "shared".into()
            };
            let token = format!("p{pid}-{k}");
            store
                .put(
                    &tenant,
                    &format!(r#"{{"access_token":"{token}","expires_in":3600}}"#),
                )
                .map(|r| {
                    sim.lock().world.history.acked_puts.push((
                        tenant,
                        r.revision,
                        token,
                        r.generation,
                    ));
                })
        }
        OpKind::Token => store.token(REFRESHING, 500).map(|_| ()),
        // Asks for as much validity as a token can give (capped at half its lifetime).
        OpKind::TokenForceRefresh => store.token(REFRESHING, lifetime_ms).map(|_| ()),
        OpKind::Refresh => store.refresh(REFRESHING, None).map(|_| ()),
        OpKind::List => store.list().map(|_| ()),
        OpKind::DeleteOwn => {
            let tenant = format!("p{pid}");
            // Recorded before the call: a delete that fails after its rename (a directory
            // fsync error) is unacknowledged but may still have taken effect.
            sim.lock()
                .world
                .history
                .attempted_deletes
                .insert(tenant.clone());
            store.delete(&tenant).map(|existed| {
                if existed {
                    let mut st = sim.lock();
                    let n = st.world.history.versions.len();
                    st.world.history.acked_deletes.push((tenant, n));
                }
            })
        }
        // An absent store (after a quarantine) is not rekeyed: nothing to record.
        OpKind::Rekey => store.rekey().map(|info| {
            if !info.exists {
                return;
            }
            // The core formats the new key id as 32 hex digits.
            let id: Vec<u8> = (0..info.key_id.len() / 2)
                .filter_map(|i| u8::from_str_radix(&info.key_id[2 * i..2 * i + 2], 16).ok())
                .collect();
            let mut st = sim.lock();
            match <[u8; 16]>::try_from(id) {
                Ok(id) => st.world.history.rekeys.push((info.generation, id)),
                Err(_) => st
                    .world
                    .fail(format!("rekey reported key id {:?}", info.key_id)),
            }
        }),
        OpKind::AddSlot => {
            let kind = {
                let mut st = sim.lock();
                ["passphrase", "kernel-keyring", "sim", "foreign"][st.world.rng.below(4) as usize]
            };
            store.add_slot(kind).map(|_| ())
        }
        OpKind::RemoveSlot => {
            let index = sim.lock().world.rng.below(3) as u32;
            store.remove_slot(index, false).map(|_| ())
        }
        OpKind::Recover | OpKind::RecoverForce => store
            .recover(kind == OpKind::RecoverForce)
            .map(|r| sim.lock().world.history.recovers.push(r.generation)),
        OpKind::Quarantine => store.quarantine(false).map(|_| ()),
        OpKind::QuarantineForce => store.quarantine(true).map(|_| ()),
        OpKind::Import => import(sim, store, pid, k),
    };
    // `recover` and `quarantine` restore or move a store file and its backup: a database
    // store keeps its tenants as records and has neither, so they must refuse it, having
    // done nothing; and nothing else may give that refusal.
    let files_only = matches!(
        kind,
        OpKind::Recover | OpKind::RecoverForce | OpKind::Quarantine | OpKind::QuarantineForce
    );
    let refused = matches!(
        result,
        Err(StoreError::Recover(RecoverError::TenantRecords))
    );
    {
        let mut st = sim.lock();
        let database = st.world.database();
        if files_only && database && !refused {
            let what = match &result {
                Ok(()) => "succeeded".to_owned(),
                Err(e) => format!("failed otherwise: {e}"),
            };
            st.world.fail(format!(
                "{} on a database store (tenant records) {what}: it must refuse",
                kind.name()
            ));
        } else if refused && !(files_only && database) {
            st.world.fail(format!(
                "{} refused as a store of tenant records, on a {} store",
                kind.name(),
                if database { "database" } else { "file" }
            ));
        }
    }
    match &result {
        Err(e) => record_error(sim, e),
        Ok(()) => {
            *sim.lock()
                .world
                .history
                .succeeded
                .entry(kind.name())
                .or_default() += 1
        }
    }
    sim.lock().world.history.ops_done += 1;
}

/// Import a small agent `auth.json`: an OAuth entry of the process's own, an API key (which
/// must be skipped), and sometimes a new login of the refreshing tenant; mostly replacing.
fn import(sim: &Arc<Sim>, store: &mut dyn Process, pid: Pid, k: usize) -> Result<(), StoreError> {
    let own = format!("imp{pid}");
    let own_token = format!("imp{pid}-{k}");
    let (source, acme_token, replace) = {
        let mut st = sim.lock();
        let expires_ms = st.world.now_ms + 3_600_000;
        let mut source = format!(
            r#"{{"{own}": {{"type": "oauth", "access": "{own_token}", "expires": {expires_ms}}}, "key": {{"type": "api", "key": "sk-sim"}}"#
        );
        let mut acme_token = None;
        if st.world.rng.chance(300_000) {
            let (at, rt) = st.world.server.login();
            let life = st.world.server.lifetime_ms / 1000;
            source.push_str(&format!(
                r#", "{REFRESHING}": {{"access_token": "{at}", "refresh_token": "{rt}", "expires_in": {life}, "token_endpoint": "https://as.sim/token", "client_id": "sim", "client_secret": "s"}}"#
            ));
            acme_token = Some(at);
        }
        source.push('}');
        (source, acme_token, st.world.rng.chance(750_000))
    };
    let report = store.import_tokens(&source, None, replace)?;
    let mut st = sim.lock();
    let w = &mut st.world;
    if report
        .skipped
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        != ["key"]
    {
        w.fail(format!(
            "import skipped {:?}, not just the API key",
            report.skipped
        ));
    }
    let mut acked = vec![(own, own_token)];
    acked.extend(acme_token.map(|t| (REFRESHING.to_owned(), t)));
    for (tenant, token) in acked {
        // The import reports the generation it wrote; that version holds the revision.
        let revision = w
            .history
            .versions
            .iter()
            .rev()
            .find(|v| v.body.generation == report.generation)
            .and_then(|v| v.body.tenants.get(&tenant))
            .filter(|e| e.access_token == token)
            .map(|e| e.revision);
        match revision {
            Some(r) => w
                .history
                .acked_puts
                .push((tenant, r, token, report.generation)),
            None => w.fail(format!(
                "acknowledged import of {tenant} is not in generation {}",
                report.generation
            )),
        }
    }
    Ok(())
}

/// A digest of what a run left behind: every file's live and durable bytes (store, backup,
/// and what was moved aside), a database store's tenant records, every refresh token
/// presented and what became of it, and the errors and successes counted. The trace hash covers which platform calls were made in
/// which order; this covers what they carried, so two builds that make the same calls but
/// write different bytes still differ.
pub fn world_hash(w: &World) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut bytes = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    let file = |f: &crate::world::File, bytes: &mut dyn FnMut(&[u8])| {
        for copy in [&f.live, &f.durable] {
            match copy {
                Some(b) => bytes(b),
                None => bytes(b"absent"),
            }
        }
    };
    file(&w.disk.store, &mut bytes);
    file(&w.disk.backup, &mut bytes);
    // A database store's records (none in a file world, which so hashes as before).
    for (id, sealed) in &w.disk.records {
        bytes(id.as_bytes());
        bytes(sealed);
    }
    for a in &w.disk.aside {
        bytes(a.name.as_bytes());
        file(&a.file, &mut bytes);
    }
    for p in &w.server.presentations {
        let line = format!("{}:{}:{}:{}", p.pid, p.at_ms, p.outcome, p.refresh_token);
        bytes(line.as_bytes());
    }
    bytes(format!("{:?} {:?}", w.history.errors, w.history.succeeded).as_bytes());
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Run `plan` on the native core.
pub fn run(plan: &Plan) -> Outcome {
    run_on(plan, CoreBuild::Native)
}

/// Run `plan` on `build`. The naive switches exist only in the native build.
pub fn run_on(plan: &Plan, build: CoreBuild) -> Outcome {
    run_with(plan, build, false)
}

/// Run `plan` on `build`, and with `log` keep every traced event in [`Outcome::log`].
pub fn run_with(plan: &Plan, build: CoreBuild, log: bool) -> Outcome {
    assert!(
        build == CoreBuild::Native || plan.naive == Naive::default(),
        "the core's naive switches exist only in the native build"
    );
    let mut world = World::new(plan.seed);
    world.faults = plan.faults;
    world.known_core_bugs = plan.known_core_bugs;
    world.naive_platform = plan.naive_platform;
    world.server.lifetime_ms = plan.token_lifetime_ms;
    let sim = Sim::new(world, plan.max_steps);
    if log {
        sim.lock().log = Some(Vec::new());
    }
    let opts = plan.options;
    let naive = plan.naive;
    let naive_ops = plan.naive_ops;
    let initial_expired = plan.initial_expired;

    // Setup: one process logs in, without faults.
    sim.run(vec![Box::new({
        let sim = Arc::clone(&sim);
        move |pid| {
            let mut store = process(&sim, pid, build, opts, naive);
            doing(&sim, pid, "login");
            if let Err(e) = login(&sim, store.as_mut(), initial_expired) {
                sim.lock().world.fail(format!("setup login failed: {e}"));
            }
        }
    })]);

    // Safety phase: the workload, with faults.
    let workloads: Vec<Vec<OpKind>> = {
        let mut st = sim.lock();
        st.faults_on = true;
        (0..plan.processes)
            .map(|_| {
                (0..plan.ops_per_process)
                    .map(|_| plan.ops[st.world.rng.below(plan.ops.len() as u64) as usize])
                    .collect()
            })
            .collect()
    };
    let lifetime = plan.token_lifetime_ms;
    let bodies: Vec<Box<dyn FnOnce(Pid) + Send>> = workloads
        .into_iter()
        .map(|ops| {
            let sim = Arc::clone(&sim);
            Box::new(move |pid: Pid| {
                let mut store = process(&sim, pid, build, opts, naive);
                for (k, kind) in ops.into_iter().enumerate() {
                    if naive_op(&sim, store.platform(), kind, naive_ops, opts) {
                        continue;
                    }
                    op(&sim, store.as_mut(), pid, k, kind, lifetime);
                }
            }) as Box<dyn FnOnce(Pid) + Send>
        })
        .collect();
    sim.run(bodies);

    // Liveness phase: no faults; every fresh process must reach a valid token.
    if plan.liveness {
        sim.lock().faults_on = false;
        let bodies: Vec<Box<dyn FnOnce(Pid) + Send>> = (0..plan.processes.min(4))
            .map(|_| {
                let sim = Arc::clone(&sim);
                Box::new(move |pid: Pid| {
                    let mut store = process(&sim, pid, build, opts, naive);
                    const ATTEMPTS: usize = 6;
                    for attempt in 0..ATTEMPTS {
                        doing(&sim, pid, "token");
                        match store.token(REFRESHING, 100) {
                            Ok(t) => {
                                let mut st = sim.lock();
                                let now = st.world.now_ms;
                                if t.expires_at_ms.is_some_and(|e| e <= now) {
                                    st.world.fail(format!(
                                        "liveness: process {pid} got an expired token"
                                    ));
                                }
                                return;
                            }
                            // What a user does: log in again.
                            Err(
                                StoreError::ReauthNeeded(_)
                                | StoreError::RefreshOutcomeUnknown(_)
                                | StoreError::Expired(_)
                                | StoreError::NotFound(_),
                            ) => {
                                doing(&sim, pid, "login");
                                let _ = login(&sim, store.as_mut(), false);
                            }
                            // An unreadable store (a flipped bit in the header reads as a
                            // key that opens nothing, or a newer format): restore the backup,
                            // or if there is none that opens, move the store aside and start
                            // again. What a user does: `recover`; if credlock cannot prove
                            // the damage, `recover --force`; with no backup to restore,
                            // `quarantine`, then `quarantine --force`.
                            Err(
                                e @ (StoreError::Corrupt(_)
                                | StoreError::NotAStore(_)
                                | StoreError::UnsupportedVersion(_)
                                | StoreError::Key(_)),
                            ) => {
                                record_error(&sim, &e);
                                doing(&sim, pid, "recover");
                                let mut recovered = store.recover(false);
                                if let Err(StoreError::Key(_) | StoreError::UnsupportedVersion(_)) =
                                    recovered
                                {
                                    doing(&sim, pid, "recover-force");
                                    recovered = store.recover(true);
                                }
                                match recovered {
                                    Err(StoreError::Recover(
                                        RecoverError::NoBackup | RecoverError::BackupUnreadable(_),
                                    )) => {
                                        doing(&sim, pid, "quarantine");
                                        if store.quarantine(false).is_err() {
                                            doing(&sim, pid, "quarantine-force");
                                            let _ = store.quarantine(true);
                                        }
                                    }
                                    Ok(r) => sim.lock().world.history.recovers.push(r.generation),
                                    // No faults now: a store that does not decode is damaged,
                                    // and a forced recover must take it (or say why not).
                                    Err(e @ StoreError::Key(_)) => {
                                        let mut st = sim.lock();
                                        let w = &mut st.world;
                                        let damaged = w
                                            .disk
                                            .store
                                            .live
                                            .as_ref()
                                            .is_some_and(|b| crate::check::decode(w, b).is_none());
                                        if damaged && attempt + 1 == ATTEMPTS {
                                            w.fail(format!("liveness: recover --force refused a damaged store as a key error: {e}"));
                                        }
                                    }
                                    Err(_) => {}
                                }
                            }
                            // A lock held elsewhere, or (a database store) a refresh still
                            // in flight in a process whose session ended: what a user does is
                            // retry a little later, once a refresh could have recorded its
                            // outcome.
                            Err(StoreError::LockTimeout { .. }) => {
                                let wait = opts.refresh_lock_timeout_ms().unwrap_or(u32::MAX);
                                let until = sim.lock().world.now_ms + u64::from(wait);
                                while sim.lock().world.now_ms < until {
                                    sim.block(pid, until, "wait to retry");
                                }
                            }
                            Err(e) => {
                                record_error(&sim, &e);
                                if attempt + 1 == ATTEMPTS {
                                    sim.lock().world.fail(format!(
                                        "liveness: process {pid} never got a token: {e}"
                                    ));
                                }
                            }
                        }
                    }
                    sim.lock().world.fail(format!(
                        "liveness: process {pid} got no token in {ATTEMPTS} attempts"
                    ));
                }) as Box<dyn FnOnce(Pid) + Send>
            })
            .collect();
        sim.run(bodies);
    }

    let mut st = sim.lock();
    let allow_dups = plan.allow_duplicate_presentations;
    crate::check::final_checks(&mut st.world, allow_dups);
    let trace_hash = {
        use sha2::Digest;
        let h = st.trace.clone().finalize();
        h.iter().take(16).map(|b| format!("{b:02x}")).collect()
    };
    Outcome {
        failures: st.world.history.failures.clone(),
        trace_hash,
        world_hash: world_hash(&st.world),
        log: st.log.take().unwrap_or_default(),
        steps: st.steps,
        refreshes: st.world.server.successes,
        presentations: st.world.server.presentations.len(),
        ops_done: st.world.history.ops_done,
        errors: st.world.history.errors.clone(),
        succeeded: st.world.history.succeeded.clone(),
        queue: st.world.history.queue.clone(),
    }
}
