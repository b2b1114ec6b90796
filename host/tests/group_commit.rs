//! Group commit with real processes on real flock (`core/src/queue.rs`, FORMAT.md "Queued
//! writes"): writers that find the store lock busy post their change, and the next holder
//! writes them all in one durable write. Each test stops processes at exact steps with
//! failpoints and kills them with SIGKILL, and shows promise 1 (nothing acknowledged is
//! lost), that a change is acknowledged only by the write that carries it, and that a
//! change whose caller is gone or gave up is never written.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A `credlock put TENANT` process, its stderr read line by line in the background.
struct Put {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Put {
    fn start(env: &Env, tenant: &str, failpoints: &str) -> Put {
        let mut cmd = env.command(&["put", tenant]);
        if !failpoints.is_empty() {
            cmd.env("CREDLOCK_FAILPOINTS", failpoints);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        write!(stdin, r#"{{"access_token":"{tenant}-token"}}"#).unwrap();
        drop(stdin);
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Put {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Wait until the process reports failpoint `name`.
    fn reached(&mut self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.contains(&format!("failpoint {name} reached")) => return,
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!(
            "pid {} never reached {name}: {:?}, {:?}",
            self.child.id(),
            self.seen,
            self.child.try_wait()
        );
    }

    /// SIGKILL: no destructor, no unlock, no cleanup; the kernel drops the flock.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn exit_code(mut self) -> i32 {
        let status = self.child.wait().unwrap();
        let rest: Vec<String> = self.lines.try_iter().collect();
        self.seen.extend(rest);
        eprintln!("pid {} said: {:?}", self.child.id(), self.seen);
        status.code().unwrap_or(-1)
    }
}

/// The queue entries in the store directory, as `state-pid`.
fn entries(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let rest = name.strip_prefix(".credentials.")?;
            let (state, rest) = rest.split_once('-')?;
            let (pid, _id) = rest.split_once('-')?;
            matches!(state, "queued" | "claimed" | "done").then(|| format!("{state}-{pid}"))
        })
        .collect();
    found.sort();
    found
}

/// Wait until `pid` has posted an entry.
fn posted(dir: &Path, pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if entries(dir).contains(&format!("queued-{pid}")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("pid {pid} posted nothing: {:?}", entries(dir));
}

fn revision(env: &Env, tenant: &str) -> Option<u64> {
    let list: serde_json::Value = serde_json::from_str(&env.ok(&["list", "--json"], "")).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == tenant)
        .map(|t| t["revision"].as_u64().unwrap())
}

fn generation(env: &Env) -> u64 {
    let doctor = env.ok(&["doctor"], "");
    let at = doctor
        .find("generation ")
        .expect("doctor names the generation")
        + 11;
    doctor[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn new_store() -> Env {
    warm();
    let env = Env::new().env("CREDLOCK_LOCK_TIMEOUT", "60");
    env.ok(&["put", "seed"], r#"{"access_token":"seed-token"}"#);
    env
}

#[test]
fn writers_behind_one_holder_are_written_in_one_write_and_each_acknowledged() {
    let env = new_store();
    let before = generation(&env);
    // The holder stays inside its write (lock held) for a while, then finishes.
    let mut holder = Put::start(&env, "h", "replace:before-rename=sleep:2000");
    holder.reached("replace:before-rename");
    let posters: Vec<Put> = (0..5)
        .map(|i| Put::start(&env, &format!("w{i}"), ""))
        .collect();
    for p in &posters {
        posted(&env.store_dir(), p.child.id());
    }
    assert_eq!(holder.exit_code(), 0);
    for p in posters {
        assert_eq!(p.exit_code(), 0);
    }
    // The holder's write, then one write for all five: whichever poster got the lock first
    // wrote the other four's changes with its own, and each of them read its receipt.
    assert_eq!(
        generation(&env),
        before + 2,
        "five queued writes took more than one write"
    );
    for t in ["h", "w0", "w1", "w2", "w3", "w4"] {
        assert_eq!(revision(&env, t), Some(1), "{t}");
        assert_eq!(
            env.ok(&["token", t, "--min-valid", "0"], ""),
            format!("{t}-token\n")
        );
    }
    assert_eq!(
        entries(&env.store_dir()),
        Vec::<String>::new(),
        "entries left behind"
    );
}

/// A poster whose change a leader claimed, and that leader stopped at failpoint `point`
/// (after its claim): `(poster, leader)`. The poster posts, then sleeps before waiting, so
/// that the leader gets the lock first when the holder in front of both is killed.
fn leader_stopped_at(env: &Env, point: &str) -> (Put, Put) {
    let mut holder = Put::start(env, "h", "replace:before-rename=pause");
    holder.reached("replace:before-rename");
    let mut poster = Put::start(env, "p", "queue:after-post=sleep:3000");
    poster.reached("queue:after-post");
    let mut leader = Put::start(env, "l", &format!("{point}=pause"));
    posted(&env.store_dir(), leader.child.id());
    holder.kill();
    leader.reached(point);
    // (Nothing can be read here: the leader holds the lock.)
    let poster_pid = poster.child.id();
    assert_eq!(
        entries(&env.store_dir()),
        vec![format!("claimed-{poster_pid}")]
    );
    (poster, leader)
}

#[test]
fn a_holder_killed_after_claiming_leaves_the_change_to_its_poster() {
    let env = new_store();
    let (poster, leader) = leader_stopped_at(&env, "queue:after-take");
    leader.kill();
    // The poster finds its change claimed by a holder that died: written or not, it was
    // not acknowledged, so the poster writes it itself.
    assert_eq!(poster.exit_code(), 0);
    assert_eq!(revision(&env, "p"), Some(1));
    assert_eq!(env.ok(&["token", "p", "--min-valid", "0"], ""), "p-token\n");
    assert_eq!(revision(&env, "h"), None, "killed before its rename");
    assert_eq!(revision(&env, "l"), None, "killed before its write");
    assert_eq!(entries(&env.store_dir()), Vec::<String>::new());
}

#[test]
fn a_holder_killed_after_its_write_before_acknowledging() {
    let env = new_store();
    // The leader's write carried the poster's change, durably, but left no receipt.
    let (poster, leader) = leader_stopped_at(&env, "queue:before-settle");
    leader.kill();
    // Not acknowledged, so the poster writes it again: a second revision (the first is the
    // leader's write), the same tokens.
    assert_eq!(poster.exit_code(), 0);
    assert_eq!(revision(&env, "p"), Some(2));
    assert_eq!(env.ok(&["token", "p", "--min-valid", "0"], ""), "p-token\n");
    assert_eq!(
        revision(&env, "l"),
        Some(1),
        "the leader's own change was written"
    );
    assert_eq!(entries(&env.store_dir()), Vec::<String>::new());
}

#[test]
fn a_poster_killed_while_waiting_is_never_written() {
    let env = new_store();
    let mut holder = Put::start(&env, "h", "replace:before-rename=pause");
    holder.reached("replace:before-rename");
    let mut dead = Put::start(&env, "dead", "queue:after-post=pause");
    dead.reached("queue:after-post");
    let dead_pid = dead.child.id();
    dead.kill();
    let leader = Put::start(&env, "l", "");
    posted(&env.store_dir(), leader.child.id());
    assert_eq!(entries(&env.store_dir()), {
        let mut e = vec![
            format!("queued-{dead_pid}"),
            format!("queued-{}", leader.child.id()),
        ];
        e.sort();
        e
    });
    holder.kill();
    assert_eq!(leader.exit_code(), 0);
    assert_eq!(revision(&env, "l"), Some(1));
    assert_eq!(
        revision(&env, "dead"),
        None,
        "the change of a process that died waiting was written"
    );
    assert_eq!(entries(&env.store_dir()), Vec::<String>::new());
}

#[test]
fn a_poster_that_times_out_withdraws_its_change() {
    let env = new_store();
    let mut holder = Put::start(&env, "h", "replace:before-rename=pause");
    holder.reached("replace:before-rename");
    let impatient = env.clone_with(&[("CREDLOCK_LOCK_TIMEOUT", "1")]);
    let r = impatient.run(&["put", "late"], r#"{"access_token":"late-token"}"#);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("timed out"), "{r:?}");
    assert_eq!(
        entries(&env.store_dir()),
        Vec::<String>::new(),
        "not withdrawn"
    );
    holder.kill();
    env.ok(&["put", "after"], r#"{"access_token":"after-token"}"#);
    assert_eq!(
        revision(&env, "late"),
        None,
        "a withdrawn change was written"
    );
    assert_eq!(revision(&env, "after"), Some(1));
}
