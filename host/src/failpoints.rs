//! Named points where a test can stop this process, to `kill -9` it at an exact step of a
//! refresh or a write (crash tests, `host/tests/refresh_crash.rs`).
//!
//! Configured only by the environment variable `CREDLOCK_FAILPOINTS`, a comma-separated list
//! of `NAME[@HIT]=ACTION`: `HIT` is which hit of the point acts (default every one), and
//! `ACTION` is `pause` (print `credlock: failpoint NAME reached` to stderr, then sleep for a
//! minute so the test can kill the process), `sleep:MS` (print the same, then sleep MS
//! milliseconds and go on: the test stops, cuts or fences the process meanwhile), `abort`, or `panic` (a bug inside a call: what a
//! binding must turn into an internal error without losing the process or a lock). Unset, each point costs one branch.
//! The points are: `post:before`, `post:after`, `replace:before-rename`, `db-write:before`
//! (a database store's write, on the session holding the exclusive lock, after the read),
//! and group commit's (`queue.rs`): `queue:after-post` (a writer posted its change and is
//! about to wait for the lock), `queue:after-take` (a holder claimed posted changes, before
//! its write) and `queue:before-settle` (after that write, before acknowledging one).
#![cfg_attr(
    not(any(debug_assertions, feature = "failpoints")),
    allow(dead_code, unused_imports)
)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy)]
enum Action {
    Pause,
    Sleep(u64),
    Abort,
    Panic,
}

struct Point {
    hit: Option<u32>,
    action: Action,
    count: AtomicU32,
}

#[cfg(any(debug_assertions, feature = "failpoints"))]
fn points() -> &'static HashMap<String, Point> {
    static POINTS: OnceLock<HashMap<String, Point>> = OnceLock::new();
    POINTS.get_or_init(|| {
        let mut map = HashMap::new();
        let Ok(spec) = std::env::var("CREDLOCK_FAILPOINTS") else {
            return map;
        };
        for item in spec.split(',').filter(|s| !s.is_empty()) {
            let Some((name, action)) = item.split_once('=') else {
                continue;
            };
            let (name, hit) = match name.split_once('@') {
                Some((n, h)) => (n, h.parse().ok()),
                None => (name, None),
            };
            let action = match action {
                "pause" => Action::Pause,
                "abort" => Action::Abort,
                "panic" => Action::Panic,
                a => match a.strip_prefix("sleep:").and_then(|ms| ms.parse().ok()) {
                    Some(ms) => Action::Sleep(ms),
                    None => continue,
                },
            };
            map.insert(
                name.to_owned(),
                Point {
                    hit,
                    action,
                    count: AtomicU32::new(0),
                },
            );
        }
        map
    })
}

/// Pass through point `name`. Compiled in only where tests run (debug builds, or the
/// `failpoints` feature): a release build of the CLI or a binding cannot be made to abort
/// mid-refresh by an environment variable.
#[cfg(not(any(debug_assertions, feature = "failpoints")))]
#[inline(always)]
pub fn hit(_name: &str) {}

/// Pass through point `name`.
#[cfg(any(debug_assertions, feature = "failpoints"))]
pub fn hit(name: &str) {
    let points = points();
    if points.is_empty() {
        return;
    }
    let Some(p) = points.get(name) else { return };
    let n = p.count.fetch_add(1, Ordering::SeqCst) + 1;
    if p.hit.is_some_and(|h| h != n) {
        return;
    }
    match p.action {
        Action::Abort => std::process::abort(),
        Action::Panic => panic!("failpoint {name}"),
        Action::Pause => {
            eprintln!("credlock: failpoint {name} reached");
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
        Action::Sleep(ms) => {
            eprintln!("credlock: failpoint {name} reached");
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }
}
