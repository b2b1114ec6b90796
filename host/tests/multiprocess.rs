//! Promise 1 and 2 with real processes on real flock: 32 writer processes each put to their
//! own tenant and to one shared tenant while reader processes run `token` and `list`. Every
//! acknowledged put must be there at the end, the shared tenant's revision must count every
//! put, and no reader may ever fail to decode the store.

mod common;
use common::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

const WRITERS: usize = 32;
const PUTS_PER_WRITER: usize = 6;
const READERS: usize = 4;

#[test]
fn thirty_two_processes_lose_nothing_and_readers_never_see_a_torn_store() {
    warm();
    let env = Arc::new(Env::new().env("CREDLOCK_LOCK_TIMEOUT", "120"));
    env.ok(&["put", "shared"], r#"{"access_token":"shared-0"}"#);
    let started = std::time::Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..READERS)
        .map(|i| {
            let (env, done, reads) = (Arc::clone(&env), Arc::clone(&done), Arc::clone(&reads));
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let r = if i % 2 == 0 {
                        env.run(&["token", "shared", "--min-valid", "0"], "")
                    } else {
                        env.run(&["list", "--json"], "")
                    };
                    assert_eq!(r.code, 0, "a reader failed: {r:?}");
                    if i % 2 == 1 {
                        serde_json::from_str::<serde_json::Value>(&r.stdout)
                            .expect("list --json is JSON");
                    } else {
                        assert!(
                            r.stdout.starts_with("shared-") || r.stdout.starts_with("w"),
                            "{r:?}"
                        );
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let env = Arc::clone(&env);
            std::thread::spawn(move || {
                for k in 0..PUTS_PER_WRITER {
                    // Each put is a separate process: the contention is between processes.
                    env.ok(
                        &["put", &format!("w{w}")],
                        &format!(r#"{{"access_token":"w{w}-{k}"}}"#),
                    );
                    env.ok(
                        &["put", "shared"],
                        &format!(r#"{{"access_token":"w{w}-{k}"}}"#),
                    );
                }
            })
        })
        .collect();
    for t in writers {
        t.join().expect("a writer failed");
    }
    done.store(true, Ordering::Relaxed);
    for t in readers {
        t.join().expect("a reader saw a failure");
    }
    let list: serde_json::Value = serde_json::from_str(&env.ok(&["list", "--json"], "")).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), WRITERS + 1);
    for t in list {
        let name = t["tenant"].as_str().unwrap();
        let revision = t["revision"].as_u64().unwrap() as usize;
        if name == "shared" {
            assert_eq!(
                revision,
                1 + WRITERS * PUTS_PER_WRITER,
                "a shared write was lost"
            );
        } else {
            assert_eq!(revision, PUTS_PER_WRITER, "{name} lost a write");
            let last = env.ok(&["token", name, "--min-valid", "0"], "");
            assert_eq!(last, format!("{name}-{}\n", PUTS_PER_WRITER - 1));
        }
    }
    // Every put was written (the revisions above), by fewer writes than puts where writers
    // queued behind a holder that wrote their changes with its own (group commit).
    let info = env.ok(&["doctor"], "");
    let puts = 1 + 2 * WRITERS * PUTS_PER_WRITER;
    let at = info
        .find("generation ")
        .expect("doctor names the generation")
        + 11;
    let generation: usize = info[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=puts).contains(&generation), "{info}");
    eprintln!(
        "figures: {} processes x {} puts x 2 tenants in {generation} writes, {} reads alongside: {:.2} s wall",
        WRITERS,
        PUTS_PER_WRITER,
        reads.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}
