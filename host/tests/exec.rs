//! `credlock exec`: guards against a token in argv (readable by every user in
//! /proc/PID/cmdline), credlock's own secrets leaking into the program, a lost exit status,
//! and signals that kill credlock but leave the program running.
#![cfg(unix)]

mod common;
use common::*;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn store_with_token() -> Env {
    warm();
    let env = Env::new();
    env.ok(
        &["put", "acme"],
        r#"{"access_token":"at-exec-1","token_type":"bearer","expires_in":3600}"#,
    );
    env
}

#[test]
fn the_program_gets_the_token_in_its_environment_not_its_argv() {
    let env = store_with_token().env("CREDLOCK_NEW_PASSPHRASE", "not-for-children");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let script = format!(
        "printf %s \"$CREDLOCK_TOKEN\" > {d}/token; tr '\\0' ' ' < /proc/$$/cmdline > {d}/cmdline; \
         printf %s \"${{CREDLOCK_NEW_PASSPHRASE-unset}}\" > {d}/pass; printf %s \"$OTHER\" > {d}/other"
    );
    let r = env.run(&["exec", "acme", "--", "sh", "-c", &script], "");
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    assert_eq!(read("token"), "at-exec-1");
    assert!(read("cmdline").starts_with("sh -c "), "{}", read("cmdline"));
    assert!(!read("cmdline").contains("at-exec-1"));
    assert_eq!(
        read("pass"),
        "unset",
        "credlock's own secrets are not inherited"
    );
    assert!(!r.stderr.contains("at-exec-1"));

    // --env names the variable.
    let r = env.run(
        &[
            "exec",
            "acme",
            "--env",
            "GH_TOKEN",
            "--",
            "sh",
            "-c",
            "printf %s \"$GH_TOKEN\"",
        ],
        "",
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "at-exec-1"), "{r:?}");
    let r = env.run(&["exec", "acme", "--env", "A=B", "--", "true"], "");
    assert_eq!(r.code, 2, "{r:?}");
}

#[test]
fn exit_status_passes_through() {
    let env = store_with_token();
    assert_eq!(
        env.run(&["exec", "acme", "--", "sh", "-c", "exit 42"], "")
            .code,
        42
    );
    assert_eq!(env.run(&["exec", "acme", "--", "true"], "").code, 0);
    // Death by signal N is 128+N, as a shell reports it.
    let r = env.run(&["exec", "acme", "--", "sh", "-c", "kill -KILL $$"], "");
    assert_eq!(r.code, 128 + 9, "{r:?}");
    let r = env.run(&["exec", "acme", "--", "/nonexistent/program"], "");
    assert_eq!(r.code, 127, "{r:?}");
    // No token, no program: credlock's own exit code.
    let r = env.run(&["exec", "nobody", "--", "true"], "");
    assert_eq!(r.code, 3, "{r:?}");
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn signals_are_forwarded_and_credlock_waits_for_the_program() {
    let env = store_with_token();
    for (signal, number) in [("TERM", 15), ("INT", 2), ("HUP", 1)] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        // The program survives the signal (it traps it) and exits with its own status:
        // credlock must pass the signal on and then wait, not die with it.
        let script = format!(
            "trap 'echo {signal} > {d}/got; exit 7' {signal}; touch {d}/ready; \
             while :; do sleep 0.05; done"
        );
        let mut child = env
            .command(&["exec", "acme", "--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        wait_for(&dir.path().join("ready"));
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let code = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s.code();
            }
            assert!(
                Instant::now() < deadline,
                "credlock exec did not end after SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(code, Some(7), "SIG{signal} ({number}) was not forwarded");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("got"))
                .unwrap()
                .trim(),
            signal
        );
    }
}

#[test]
fn header_file_is_private_and_removed() {
    let env = store_with_token();
    let dir = tempfile::tempdir().unwrap();
    let header = dir.path().join("auth.header");
    let h = header.display().to_string();
    let copy = dir.path().join("copy");
    let script = format!(
        "stat -c %a {h} > {c}.mode; cat {h} > {c}",
        c = copy.display()
    );
    let r = env.run(
        &[
            "exec",
            "acme",
            "--header-file",
            &h,
            "--",
            "sh",
            "-c",
            &script,
        ],
        "",
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(&copy).unwrap(),
        "Authorization: Bearer at-exec-1\n"
    );
    assert_eq!(
        std::fs::read_to_string(format!("{}.mode", copy.display()))
            .unwrap()
            .trim(),
        "600"
    );
    assert!(!header.exists(), "the header file outlived the program");
    // Removed even when the program fails; never written over an existing file.
    let r = env.run(&["exec", "acme", "--header-file", &h, "--", "false"], "");
    assert_eq!(r.code, 1);
    assert!(!header.exists());
    std::fs::write(&header, "mine").unwrap();
    let r = env.run(&["exec", "acme", "--header-file", &h, "--", "true"], "");
    assert_eq!(r.code, 8, "{r:?}");
    assert_eq!(std::fs::read_to_string(&header).unwrap(), "mine");
}

/// The second outside review (issue 22, item 6): `--env LD_PRELOAD` made the dynamic loader
/// print the whole token on standard error, and `--env PATH` broke the command. Names that
/// the loader, a shell or an interpreter reads are refused before anything runs, and the
/// error states the rule.
#[test]
fn env_names_the_loader_or_a_shell_reads_are_refused_with_the_rule() {
    let env = store_with_token();
    for name in [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "PATH",
        "IFS",
        "BASH_ENV",
        "ENV",
        "DYLD_INSERT_LIBRARIES",
        "PYTHONSTARTUP",
        "NODE_OPTIONS",
        "LC_ALL",
        "CREDLOCK_STORE",
    ] {
        let r = env.run(
            &["exec", "acme", "--env", name, "--", "sh", "-c", "echo ran"],
            "",
        );
        assert_eq!((r.code, r.stdout.as_str()), (2, ""), "{name}: {r:?}");
        assert!(
            r.stderr.contains(&format!("--env {name} names a variable")),
            "{name}: {r:?}"
        );
        // The advice lists the rule, not only the refusal.
        for listed in ["LD_", "DYLD_", "PATH", "BASH_ENV", "PYTHON", "NODE_OPTIONS"] {
            assert!(
                r.stderr.contains(listed),
                "{name}: the rule lacks {listed}: {r:?}"
            );
        }
        assert!(!r.stderr.contains("at-exec-1"), "{name}: {r:?}");
    }
}

fn alive(pid: i32) -> bool {
    // A zombie has ended; only its entry remains until init reaps it.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(") ").map(|(_, r)| r.chars().next());
            !matches!(state, Some(Some('Z' | 'X')))
        }
        Err(_) => false,
    }
}

/// Issue 22, item 8: `kill -9` of `credlock exec` left its program running, with the token,
/// no longer supervised. On Linux the kernel now signals the program when credlock dies.
#[cfg(target_os = "linux")]
#[test]
fn a_program_does_not_outlive_a_killed_credlock_exec() {
    let env = store_with_token();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let script = format!(
        "echo $$ > {}.tmp; mv {0}.tmp {0}; exec sleep 600",
        pidfile.display()
    );
    let mut credlock = env
        .command(&["exec", "acme", "--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&pidfile);
    let program: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(program));
    credlock.kill().unwrap(); // SIGKILL: credlock can neither catch it nor pass it on
    credlock.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(program) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let survived = alive(program);
    if survived {
        // Not left behind by a failing test either: it is the program this test started.
        // SAFETY: kill(2) on a pid this test's own child spawned.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(program, libc::SIGKILL);
        }
    }
    assert!(!survived, "the program outlived credlock exec's kill -9");
    // The help says what happens where there is no such request.
    let help = env.run(&["exec", "--help"], "");
    assert!(help.stdout.contains("kill -9"), "{help:?}");
    assert!(help.stdout.contains("other systems"), "{help:?}");
}
