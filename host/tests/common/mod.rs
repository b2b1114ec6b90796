//! Helpers for tests that run the real `credlock` binary as separate processes.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_credlock");

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A store directory of its own, removed at the end of the test.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub envs: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Env {
            envs: vec![(
                "CREDLOCK_STORE".into(),
                dir.path().join("store").display().to_string(),
            )],
            dir,
        }
    }

    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn store_file(&self) -> PathBuf {
        self.store_dir().join("credentials.sealed")
    }

    /// Another handle on the same store (the directory stays owned by `self`), with more
    /// variables: another process's view, with other keys.
    pub fn clone_with(&self, extra: &[(&str, &str)]) -> Env {
        let mut envs = self.envs.clone();
        envs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Env {
            dir: tempfile::tempdir().unwrap(),
            envs,
        }
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.envs.push((k.into(), v.into()));
        self
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args);
        // Only what the test sets: no CREDLOCK_* from the developer's shell.
        for (k, _) in std::env::vars() {
            if k.starts_with("CREDLOCK_") {
                c.env_remove(k);
            }
        }
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str], stdin: &str) -> Run {
        run_cmd(self.command(args), stdin)
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str], stdin: &str) -> String {
        let r = self.run(args, stdin);
        assert_eq!(r.code, 0, "credlock {args:?} failed: {r:?}");
        r.stdout
    }
}

pub fn run_cmd(mut c: Command, stdin: &str) -> Run {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawning credlock");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.as_bytes().to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn sha256_file(p: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

/// Compile the component once into the cache before tests start many processes at once.
pub fn warm() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let env = Env::new();
        env.ok(&["list"], "");
    });
}

/// The files moved aside in `dir` (`<name>.corrupt-<ms>`: the store's, or its backup's),
/// sorted.
pub fn corrupt_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".corrupt-"))
        .collect();
    v.sort();
    v
}
