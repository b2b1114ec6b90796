//! Key slots against real OS keyrings: a Secret Service (gnome-keyring on a private D-Bus
//! session bus, started here) and the Linux kernel's persistent keyring. scripts/setup.sh
//! installs gnome-keyring, dbus and keyutils; without them these tests fail (they are not
//! skipped: a keyring path nobody runs is a keyring path that does not work).

mod common;
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn need(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed: run scripts/setup.sh (gnome-keyring, dbus, keyutils, libsecret-tools)"
    );
}

/// A private session bus with gnome-keyring's Secret Service on it, unlocked, with a fresh
/// keyring directory. Both processes are ours and are ended by id on drop.
struct SecretService {
    dbus: Child,
    keyring: Child,
    home: tempfile::TempDir,
    address: String,
}

impl SecretService {
    fn start() -> SecretService {
        for tool in [
            "dbus-daemon",
            "dbus-send",
            "gnome-keyring-daemon",
            "secret-tool",
        ] {
            need(tool);
        }
        let home = tempfile::tempdir().unwrap();
        let run = home.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let mut dbus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting dbus-daemon");
        let mut line = String::new();
        BufReader::new(dbus.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line.trim().to_owned();
        assert!(address.starts_with("unix:"), "dbus-daemon said {line:?}");
        let mut keyring = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env("HOME", home.path())
            .env("XDG_RUNTIME_DIR", &run)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting gnome-keyring-daemon");
        // The login keyring's password, on stdin as --unlock wants it; then EOF.
        keyring
            .stdin
            .take()
            .unwrap()
            .write_all(b"test-login-password")
            .unwrap();
        let ss = SecretService {
            dbus,
            keyring,
            home,
            address,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ss.ready() {
            assert!(
                Instant::now() < deadline,
                "the Secret Service did not appear on the bus"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ss
    }

    fn ready(&self) -> bool {
        let out = self
            .tool("dbus-send")
            .args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                "string:org.freedesktop.secrets",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("boolean true")
    }

    fn tool(&self, name: &str) -> Command {
        let mut c = Command::new(name);
        c.env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .env("HOME", self.home.path())
            .env("XDG_RUNTIME_DIR", self.home.path().join("run"));
        c
    }

    /// Point a test's credlock processes at this bus. (Not at this HOME: their compiled
    /// component cache lives under the real one.)
    fn env(&self, env: Env) -> Env {
        env.env("DBUS_SESSION_BUS_ADDRESS", &self.address)
    }

    /// How many credlock entries the keyring holds.
    fn entries(&self) -> usize {
        let out = self
            .tool("secret-tool")
            .args(["search", "--all", "service", "credlock"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .chain(String::from_utf8_lossy(&out.stdout).lines())
            .filter(|l| l.starts_with("attribute.service = credlock"))
            .count()
    }

    /// What a reboot or a wiped keyring leaves: no credlock entries.
    fn wipe(&self) {
        let ok = self
            .tool("secret-tool")
            .args(["clear", "service", "credlock"])
            .status()
            .unwrap();
        assert!(ok.success());
        assert_eq!(self.entries(), 0);
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        let _ = self.keyring.kill();
        let _ = self.keyring.wait();
        let _ = self.dbus.kill();
        let _ = self.dbus.wait();
    }
}

const TOKEN: &str = r#"{"access_token":"at-secret-1","expires_in":3600}"#;

fn slots(env: &Env) -> serde_json::Value {
    serde_json::from_str(&env.ok(&["slot", "list", "--json"], "")).unwrap()
}

fn kinds(env: &Env) -> Vec<String> {
    slots(env)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn secret_service_slot_opens_and_a_wiped_keyring_names_the_passphrase_slot() {
    warm();
    let ss = SecretService::start();
    let env = ss.env(Env::new().env("CREDLOCK_KEYRING", "secret-service"));
    env.ok(&["put", "acme"], TOKEN);
    assert_eq!(kinds(&env), ["keyring"]);
    assert!(
        !env.store_dir().join("key").exists(),
        "a keyring store gets no key file beside it"
    );
    assert_eq!(ss.entries(), 1);
    // Opens through the keyring alone.
    assert_eq!(env.ok(&["token", "acme"], ""), "at-secret-1\n");
    // A second way in, then the keyring is wiped (as after a reboot or a new machine).
    let env = env.env("CREDLOCK_NEW_PASSPHRASE", "correct horse");
    env.ok(&["slot", "add", "passphrase"], "");
    assert_eq!(kinds(&env), ["keyring", "passphrase"]);
    ss.wipe();
    let before = std::fs::read(env.store_file()).unwrap();
    let r = env.run(&["token", "acme"], "");
    assert_eq!(r.code, 6, "{r:?}");
    assert!(
        r.stderr
            .contains("secret-service keyring no longer holds this store's key")
            && r.stderr.contains("other slots: passphrase"),
        "the error names the slot that can still open the store: {r:?}"
    );
    // Never re-keyed or re-initialised implicitly: a put fails the same way and writes nothing.
    let r = env.run(&["put", "acme"], r#"{"access_token":"replacement"}"#);
    assert_eq!(r.code, 6, "{r:?}");
    assert_eq!(std::fs::read(env.store_file()).unwrap(), before);
    assert_eq!(ss.entries(), 0, "no key was minted");
    // The passphrase opens it; a new keyring slot replaces the dead one.
    let env = env.env("CREDLOCK_PASSPHRASE", "correct horse");
    assert_eq!(env.ok(&["token", "acme"], ""), "at-secret-1\n");
    env.ok(&["slot", "add", "keyring"], "");
    assert_eq!(kinds(&env), ["keyring", "passphrase", "keyring"]);
    env.ok(&["slot", "remove", "0"], "");
    let env = ss.env(Env {
        dir: tempfile::tempdir().unwrap(),
        envs: vec![(
            "CREDLOCK_STORE".into(),
            env.store_dir().display().to_string(),
        )],
    });
    assert_eq!(
        env.ok(&["token", "acme"], ""),
        "at-secret-1\n",
        "the new keyring slot opens it without the passphrase"
    );
    // Keep the first Env's directory alive until here.
    drop(before);
}

#[test]
fn wrong_passphrase_is_specific_and_leaves_the_file_untouched() {
    warm();
    let env = Env::new().env("CREDLOCK_PASSPHRASE", "right one");
    env.ok(&["put", "acme"], TOKEN);
    let before = sha256_file(&env.store_file());
    let wrong = Env {
        dir: tempfile::tempdir().unwrap(),
        envs: vec![
            (
                "CREDLOCK_STORE".into(),
                env.store_dir().display().to_string(),
            ),
            ("CREDLOCK_PASSPHRASE".into(), "wrong one".into()),
        ],
    };
    for args in [&["token", "acme"][..], &["rekey"], &["slot", "list"]] {
        let r = wrong.run(args, "");
        assert_eq!(r.code, 6, "{args:?}: {r:?}");
        assert!(r.stderr.contains("wrong passphrase"), "{r:?}");
        assert!(!r.stderr.contains("right one") && !r.stderr.contains("wrong one"));
    }
    let r = wrong.run(&["put", "acme"], r#"{"access_token":"x"}"#);
    assert_eq!(r.code, 6, "{r:?}");
    assert_eq!(sha256_file(&env.store_file()), before);
}

/// The kernel keyring: key ids are per user, so entries are removed by id (never the whole
/// keyring: other tests and programs share it).
fn kernel_keyring_forget(entry: &str) {
    need("keyctl");
    let script = format!(
        "P=$(keyctl get_persistent @s) && K=$(keyctl search \"$P\" user 'keyring:{entry}@credlock') && keyctl invalidate \"$K\""
    );
    let ok = Command::new("keyctl")
        .args(["session", "-", "sh", "-c", &script])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "could not remove the kernel keyring entry");
}

#[test]
fn kernel_keyring_is_volatile_so_never_alone_unless_allowed() {
    warm();
    need("keyctl");
    let env = Env::new().env("CREDLOCK_KEYRING", "keyutils");
    let r = env.run(&["put", "acme"], TOKEN);
    assert_eq!(r.code, 9, "{r:?}");
    assert!(
        r.stderr.contains("lose the store at the next reboot"),
        "{r:?}"
    );
    assert!(!env.store_file().exists());
    let env = env.env("CREDLOCK_PASSPHRASE", "pw");
    env.ok(&["put", "acme"], TOKEN);
    assert_eq!(kinds(&env), ["passphrase", "kernel-keyring"]);
    // Another process opens it through the kernel keyring alone (no passphrase).
    let plain = Env {
        dir: tempfile::tempdir().unwrap(),
        envs: vec![(
            "CREDLOCK_STORE".into(),
            env.store_dir().display().to_string(),
        )],
    };
    assert_eq!(plain.ok(&["token", "acme"], ""), "at-secret-1\n");
    // The durable slot cannot be removed while only the volatile one would remain...
    let r = env.run(&["slot", "remove", "0"], "");
    assert_eq!(r.code, 9, "{r:?}");
    assert!(
        r.stderr.contains("only volatile slots would remain"),
        "{r:?}"
    );
    // ... and after a "reboot" the passphrase still opens the store, and the error says so.
    let entry = slots(&env)[1]["description"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    kernel_keyring_forget(&entry);
    let r = plain.run(&["token", "acme"], "");
    assert_eq!(r.code, 6, "{r:?}");
    assert!(
        r.stderr.contains("keyutils keyring no longer holds")
            && r.stderr.contains("other slots: passphrase"),
        "{r:?}"
    );
    assert_eq!(env.ok(&["token", "acme"], ""), "at-secret-1\n");
    // Volatile-only only when asked explicitly (slot list proves what is left).
    let env = env.env("CREDLOCK_ALLOW_VOLATILE_ONLY", "1");
    env.ok(&["slot", "add", "kernel-keyring"], "");
    env.ok(&["slot", "remove", "1"], "");
    env.ok(&["slot", "remove", "0"], "");
    assert_eq!(kinds(&plain), ["kernel-keyring"]);
    assert_eq!(plain.ok(&["token", "acme"], ""), "at-secret-1\n");
}

#[test]
fn two_first_writers_mint_one_key_in_the_keyring() {
    warm();
    let ss = SecretService::start();
    let env = ss.env(Env::new().env("CREDLOCK_KEYRING", "secret-service"));
    let children: Vec<_> = (0..6)
        .map(|i| {
            let mut c = env.command(&["put", &format!("t{i}")]);
            c.stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut child = c.spawn().unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(TOKEN.as_bytes())
                .unwrap();
            child
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(kinds(&env), ["keyring"]);
    assert_eq!(ss.entries(), 1, "one key for one store, however many raced");
    let list: serde_json::Value = serde_json::from_str(&env.ok(&["list", "--json"], "")).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 6, "no write lost");
}

#[test]
fn rekey_under_concurrent_readers_and_writers_loses_nothing() {
    warm();
    need("keyctl");
    // A key file and a kernel-keyring slot: rekey must re-make both.
    let env = Env::new();
    env.ok(&["put", "seed"], TOKEN);
    let env = env.env("CREDLOCK_KEYRING", "keyutils");
    env.ok(&["slot", "add", "kernel-keyring"], "");
    let store = env.store_dir().display().to_string();
    let bin = BIN;
    // Writers: each puts its own tenant 15 times; readers read `seed` in a loop. Any error
    // fails the shell loop.
    let writer = |w: usize| {
        let mut c = Command::new("sh");
        c.args(["-c", &format!(
            "for i in $(seq 1 15); do printf '{{\"access_token\":\"w{w}-%d\"}}' $i | {bin} put w{w} 2>&1 >/dev/null || {{ echo \"put $i failed\"; exit 1; }}; done"
        )]);
        c.env("CREDLOCK_STORE", &store)
            .env_remove("CREDLOCK_KEYRING");
        c.stdout(Stdio::piped()).spawn().unwrap()
    };
    let reader = || {
        let mut c = Command::new("sh");
        c.args(["-c", &format!(
            "for i in $(seq 1 30); do {bin} token seed >/dev/null 2>/tmp/credlock-reader-$$ || {{ cat /tmp/credlock-reader-$$; exit 1; }}; done; rm -f /tmp/credlock-reader-$$"
        )]);
        c.env("CREDLOCK_STORE", &store)
            .env_remove("CREDLOCK_KEYRING");
        c.stdout(Stdio::piped()).spawn().unwrap()
    };
    let mut procs: Vec<Child> = (0..3).map(writer).collect();
    procs.extend((0..2).map(|_| reader()));
    let mut key_ids = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let r = env.run(&["rekey"], "");
        assert_eq!(r.code, 0, "{r:?}");
        key_ids.insert(r.stderr.split("new data key ").nth(1).unwrap()[..32].to_owned());
    }
    for p in procs {
        let out = p.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a concurrent reader or writer failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert_eq!(key_ids.len(), 5, "every rekey made a new key");
    for w in 0..3 {
        assert_eq!(
            env.ok(&["token", &format!("w{w}")], ""),
            format!("w{w}-15\n"),
            "writer {w}'s last acknowledged write survives every rekey"
        );
    }
    assert_eq!(kinds(&env), ["key-file", "kernel-keyring"]);
}

#[test]
fn doctor_reports_keyring_backends_and_slot_health() {
    warm();
    let ss = SecretService::start();
    let env = ss.env(
        Env::new()
            .env("CREDLOCK_KEYRING", "secret-service")
            .env("CREDLOCK_PASSPHRASE", "pw"),
    );
    env.ok(&["put", "acme"], TOKEN);
    let out = env.ok(&["doctor"], "");
    assert!(out.contains("secret-service: working"), "{out}");
    assert!(out.contains("keyutils: working"), "{out}");
    assert!(
        out.contains("slot 0 passphrase") && out.contains("slot 1 keyring"),
        "{out}"
    );
    ss.wipe();
    let r = env.run(&["doctor"], "");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("entry missing"), "{r:?}");
}
