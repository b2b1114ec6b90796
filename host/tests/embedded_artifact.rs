//! The first call of a process, fast: every credlock binary carries its component already
//! compiled (host/build.rs, `credlock::component::COMPILED_COMPONENT`). These tests guard
//! against a first call that compiles (a second and 70 MB before it does anything) where the
//! build's artifact should have served: with an empty HOME, with one nobody can write, and
//! in the library. And against the fallback breaking: where wasmtime refuses the artifact
//! (another CPU, a damaged build), the process must compile, cache as before, and `doctor`
//! must say why, once, while the call itself says nothing.

mod common;
use common::*;
use std::path::{Path, PathBuf};

const EMBEDDED: &str = "loaded the compiled artifact built into this binary";

/// Everything under `dir`, relative, sorted: what a call left behind in a HOME.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// An `Env` whose HOME and XDG_CACHE_HOME are a new empty directory (returned).
fn with_empty_home(env: Env) -> (Env, PathBuf) {
    let home = env.dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let h = home.display().to_string();
    (env.env("HOME", &h).env("XDG_CACHE_HOME", &h), home)
}

#[test]
fn first_call_with_an_empty_home_uses_the_embedded_artifact_and_writes_no_cache() {
    let (env, home) = with_empty_home(Env::new());
    env.ok(&["put", "acme"], r#"{"access_token":"first-call"}"#);
    assert_eq!(env.ok(&["token", "acme"], ""), "first-call\n");
    let doctor = env.ok(&["doctor"], "");
    assert!(doctor.contains(EMBEDDED), "{doctor}");
    // Nothing needed a cache: the HOME is as empty as it was.
    assert_eq!(tree(&home), Vec::<PathBuf>::new());
}

/// HOME of mode 0555 stops every user but root; XDG_CACHE_HOME below a regular file stops
/// root too (the tests run as root in CI), so no process can create the cache.
#[test]
fn first_call_with_a_read_only_home_uses_the_embedded_artifact_and_says_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let home = env.dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o555)).unwrap();
    let blocker = env.dir.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let env = env.env("HOME", &home.display().to_string()).env(
        "XDG_CACHE_HOME",
        &blocker.join("cache").display().to_string(),
    );
    let r = env.run(&["put", "acme"], r#"{"access_token":"read-only-home"}"#);
    assert_eq!(r.code, 0, "{r:?}");
    // Its one line is the write's receipt; nothing about a cache or a compile.
    assert!(
        !r.stderr.contains("cache") && !r.stderr.contains("compil"),
        "{r:?}"
    );
    let r = env.run(&["token", "acme"], "");
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "read-only-home\n", "")
    );
    let doctor = env.ok(&["doctor"], "");
    assert!(doctor.contains(EMBEDDED), "{doctor}");
    // No cache is needed, so an unwritable one is no problem worth a line.
    assert!(!doctor.contains("NOT cached"), "{doctor}");
    assert_eq!(tree(&home), Vec::<PathBuf>::new());
}

/// The library (every binding's first `Store.open`) loads the embedded artifact and leaves
/// the cache directory it was given untouched.
#[test]
fn the_library_loads_the_embedded_artifact_without_a_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let rt = credlock::component::Runtime::load(Some(&cache)).unwrap();
    assert_eq!(rt.loaded_from, credlock::component::LoadedFrom::Embedded);
    assert!(!cache.exists());
    let rt = credlock::component::Runtime::load(None).unwrap();
    assert_eq!(rt.loaded_from, credlock::component::LoadedFrom::Embedded);
    // And it runs: a store opened through the library answers.
    let mut config = credlock::Config::for_dir(dir.path().join("store"));
    config.cache_dir = None;
    let mut store = credlock::Credlock::open(config).unwrap();
    store
        .put("acme", r#"{"access_token":"from-the-library"}"#)
        .unwrap();
    assert_eq!(store.token("acme", 0).unwrap().token, "from-the-library");
}

/// What the embedded artifact is: made for this target's baseline CPU (so it loads on any
/// CPU of the target), by the same wasmtime and engine configuration as the host's (so
/// wasmtime's compatibility check, which `Runtime::load` relies on, accepts it here).
#[test]
fn the_embedded_artifact_is_for_this_target_and_engine() {
    let artifact = credlock::component::COMPILED_COMPONENT;
    assert!(artifact.len() > 64 * 1024, "{} bytes", artifact.len());
    let engine = credlock::component::engine().unwrap();
    assert_eq!(
        wasmtime::Engine::detect_precompiled(artifact),
        Some(wasmtime::Precompiled::Component)
    );
    // A configuration other than the host's one is refused by wasmtime's check: the check
    // is what stands between a stale artifact and running it.
    let other = wasmtime::Engine::default(); // signals-based traps: different tunables
                                             // SAFETY: the bytes are the build's own artifact; wasmtime checks them before use.
    #[allow(unsafe_code)]
    let refused = unsafe { wasmtime::component::Component::deserialize(&other, artifact) };
    assert!(refused.is_err());
    #[allow(unsafe_code)]
    // SAFETY: as above.
    let accepted = unsafe { wasmtime::component::Component::deserialize(&engine, artifact) };
    assert!(accepted.is_ok(), "{:?}", accepted.err());
}

/// On x86-64 Linux the artifact runs where it lies: page-aligned in the read-only, executable
/// segment of the binary that links the host (here, this test), so that no process copies
/// 3.6 MB and re-protects it before its first call (`host/src/component/in_place.rs`).
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn the_embedded_artifact_runs_in_place_from_the_binary() {
    let artifact = credlock::component::COMPILED_COMPONENT;
    let (start, end) = (
        artifact.as_ptr() as usize,
        artifact.as_ptr() as usize + artifact.len(),
    );
    assert_eq!(start % 4096, 0, "the artifact is page-aligned");
    let exe = std::env::current_exe().unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let holding: Vec<&str> = maps
        .lines()
        .filter(|l| {
            let (range, _) = l.split_once(' ').unwrap();
            let (a, b) = range.split_once('-').unwrap();
            let (a, b) = (
                usize::from_str_radix(a, 16).unwrap(),
                usize::from_str_radix(b, 16).unwrap(),
            );
            a < end && start < b
        })
        .collect();
    assert!(!holding.is_empty(), "the artifact is in no mapping");
    for l in &holding {
        let perms = l.split_whitespace().nth(1).unwrap();
        assert_eq!(perms, "r-xp", "mapped as {l}");
        assert!(
            l.ends_with(exe.to_str().unwrap()),
            "mapped from the binary: {l}"
        );
    }
    // And wasmtime runs it from there.
    let dir = tempfile::tempdir().unwrap();
    let mut config = credlock::Config::for_dir(dir.path().join("store"));
    config.cache_dir = None;
    let mut store = credlock::Credlock::open(config).unwrap();
    store.put("acme", r#"{"access_token":"in-place"}"#).unwrap();
    assert_eq!(store.token("acme", 0).unwrap().token, "in-place");
}

// The fallback, through a debug-only hook (`CREDLOCK_TEST_EMBEDDED_ARTIFACT`) no release
// build reads: these tests exist only where the hook does.

/// A damaged artifact is refused by wasmtime's check, never run: the process compiles,
/// caches, and `doctor` says why; the next process loads the cache.
#[cfg(debug_assertions)]
#[test]
fn a_refused_embedded_artifact_falls_back_to_the_compiled_cache() {
    let (env, home) = with_empty_home(Env::new());
    let env = env.env("CREDLOCK_TEST_EMBEDDED_ARTIFACT", "corrupt");
    env.ok(&["put", "acme"], r#"{"access_token":"fell-back"}"#);
    let r = env.run(&["token", "acme"], "");
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "fell-back\n", "")
    );
    // The first process compiled and cached; this one loads the cache.
    let doctor = env.ok(&["doctor"], "");
    assert!(
        doctor.contains("the compiled artifact built into this binary cannot be used here (")
            && doctor.contains("loaded compiled from the cache"),
        "{doctor}"
    );
    assert!(tree(&home)
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "cwasm")));
}

/// A build with no artifact for its target compiles at run time, and says so in `doctor`.
#[cfg(debug_assertions)]
#[test]
fn a_build_without_an_artifact_compiles_and_doctor_says_so() {
    let (env, _home) = with_empty_home(Env::new());
    let env = env.env("CREDLOCK_TEST_EMBEDDED_ARTIFACT", "none");
    let doctor = env.ok(&["doctor"], "");
    assert!(
        doctor.contains("this build carries none") && doctor.contains("compiled now and cached"),
        "{doctor}"
    );
}

/// Where the artifact is refused and the cache cannot be written, every process compiles:
/// `doctor` says so, with the fix, and an ordinary call says nothing about it.
#[cfg(debug_assertions)]
#[test]
fn doctor_names_a_compiled_component_cache_that_cannot_be_written() {
    let env = Env::new().env("CREDLOCK_TEST_EMBEDDED_ARTIFACT", "corrupt");
    env.ok(&["put", "acme"], r#"{"access_token":"a"}"#);
    let blocked = env.dir.path().join("not-a-directory");
    std::fs::write(&blocked, "").unwrap();
    let env = env.env("XDG_CACHE_HOME", &blocked.display().to_string());
    let r = env.run(&["doctor"], "");
    assert!(
        r.stdout.contains("compiled now and NOT cached")
            && r.stdout
                .contains("point XDG_CACHE_HOME at a directory this user can write"),
        "{r:?}"
    );
    let r = env.run(&["token", "acme"], "");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("cache"), "{r:?}");
    // A cache that can be written is used by the next process.
    let cache = env.dir.path().join("cache").display().to_string();
    let env = env.env("XDG_CACHE_HOME", &cache);
    assert!(env.ok(&["doctor"], "").contains("compiled now and cached"));
    assert!(env
        .ok(&["doctor"], "")
        .contains("loaded compiled from the cache"));
}
