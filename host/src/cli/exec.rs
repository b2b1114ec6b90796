//! `credlock exec TENANT -- CMD ARGS...`: run a program with a fresh access token in its
//! environment (never in its argv, which every user of the machine can read in
//! /proc/PID/cmdline), and end with its status.
//!
//! Signals: SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1 and SIGUSR2 sent to credlock are passed
//! on to the program, and credlock keeps waiting for it; a program killed by signal N makes
//! credlock exit 128+N, as a shell reports it. A signal the terminal sends (Ctrl-C) reaches
//! the whole foreground process group, the program included, so on Linux it is not sent a
//! second time (its `si_code` is `SI_KERNEL`).
//!
//! If credlock itself is killed outright (SIGKILL, which no process can catch), on Linux the
//! kernel sends the program SIGTERM (`PR_SET_PDEATHSIG`), as credlock would have passed on a
//! polite stop; elsewhere there is no such request and the program keeps running.
//!
//! The token is valid for at least `--min-valid` seconds when the program starts; a program
//! that runs longer should ask `credlock token` itself when it needs one.
//!
//! `--env` refuses the names that the dynamic loader, a shell or an interpreter reads as
//! code, a path or options (`LD_PRELOAD`, `PATH`, `BASH_ENV`, `PYTHONSTARTUP`, ...): the
//! token there is run, printed in an error ("cannot be preloaded: TOKEN"), or breaks the
//! command.

use crate::Failure;
use credlock::{Config, Credlock};
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ExecArgs {
    tenant: String,
    /// The environment variable the token is passed in: not one that the loader, a shell or
    /// an interpreter reads (LD_*, DYLD_*, PATH, IFS, ENV, BASH_ENV, PYTHON*, NODE_OPTIONS...).
    #[arg(long = "env", value_name = "NAME", default_value = "CREDLOCK_TOKEN")]
    env_name: String,
    /// Also write `Authorization: Bearer TOKEN` to PATH (created new, owner-only, removed
    /// when CMD exits), for programs that read headers from a file (`curl -H @PATH`).
    #[arg(long, value_name = "PATH")]
    header_file: Option<PathBuf>,
    /// The token stays valid at least this many seconds (capped at half its lifetime).
    #[arg(long, default_value = "60", value_name = "SECONDS")]
    min_valid: u64,
    /// The program and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// Secrets of credlock's own that the program must not inherit.
const NOT_INHERITED: [&str; 2] = ["CREDLOCK_PASSPHRASE", "CREDLOCK_NEW_PASSPHRASE"];

/// Exit statuses when the program cannot be started, as shells use them.
const CANNOT_EXECUTE: u8 = 126;
const COMMAND_NOT_FOUND: u8 = 127;

/// What can go wrong in `exec` itself (the store's errors keep their own), each with its
/// exit status and advice.
#[derive(Debug)]
enum ExecError {
    BadEnvName(String),
    /// `--env` names a variable that something other than the program reads as code, a
    /// path or options (payload: the name).
    InterpretedEnvName(String),
    /// The header file could not be made (it exists, or the directory is not writable).
    HeaderCreate(PathBuf, std::io::Error),
    HeaderWrite(PathBuf, std::io::Error),
    /// The program could not be started.
    Spawn(OsString, std::io::Error),
    /// waitpid failed: a bug, or a broken system.
    Wait(OsString, std::io::Error),
}

impl From<ExecError> for Failure {
    fn from(e: ExecError) -> Self {
        use credlock_core::error::exit;
        let (code, message, hint) = match e {
            ExecError::BadEnvName(name) => (
                exit::USAGE,
                format!("--env {name:?} is not a variable name"),
                Some("use letters, digits and _, not starting with a digit"),
            ),
            ExecError::InterpretedEnvName(name) => (
                exit::USAGE,
                format!("--env {name} names a variable that the dynamic loader, a shell or another program reads as code, a command, a path or options: the token would be run or printed, or break the command"),
                Some(INTERPRETED_RULE),
            ),
            ExecError::HeaderCreate(path, e) => (
                exit::IO,
                format!("cannot create the header file {}: {e}", path.display()),
                Some("name a file that does not exist yet, in a directory only you can write"),
            ),
            ExecError::HeaderWrite(path, e) => (
                exit::IO,
                format!("cannot write the header file {}: {e}", path.display()),
                Some("check the free space of its filesystem"),
            ),
            ExecError::Spawn(program, e) => (
                if e.kind() == std::io::ErrorKind::NotFound {
                    COMMAND_NOT_FOUND
                } else {
                    CANNOT_EXECUTE
                },
                format!("cannot run {}: {e}", program.to_string_lossy()),
                Some("check the program's name, PATH and permissions"),
            ),
            ExecError::Wait(program, e) => (
                exit::INTERNAL,
                format!("lost track of {}: {e}", program.to_string_lossy()),
                Some("this is a bug in credlock; please report it"),
            ),
        };
        Failure {
            code,
            message,
            hint,
        }
    }
}

fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Variables read by something other than the program itself, as code (`BASH_ENV`,
/// `PYTHONSTARTUP`, `PERL5OPT`), as a command to run (`EDITOR`, `GIT_SSH_COMMAND`), as a
/// path to search or load (`PATH`, `LD_PRELOAD`), or as options (`NODE_OPTIONS`): a token
/// there is run, printed in the loader's or interpreter's error, or breaks the command.
/// `CREDLOCK_*` are credlock's own settings, read by a `credlock` the program runs.
const INTERPRETED_NAMES: [&str; 36] = [
    "PATH",
    "IFS",
    "ENV",
    "BASH_ENV",
    "CDPATH",
    "PS4",
    "SHELLOPTS",
    "BASHOPTS",
    "GLOBIGNORE",
    "PROMPT_COMMAND",
    "HOME",
    "SHELL",
    "TMPDIR",
    "GCONV_PATH",
    "LOCPATH",
    "HOSTALIASES",
    "RES_OPTIONS",
    "LOCALDOMAIN",
    "NODE_OPTIONS",
    "NODE_PATH",
    "JAVA_TOOL_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "_JAVA_OPTIONS",
    "LANG",
    "EDITOR",
    "VISUAL",
    "PAGER",
    "GIT_PAGER",
    "LESSOPEN",
    "BROWSER",
    "SSH_ASKPASS",
    "GIT_ASKPASS",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_EXEC_PATH",
    "GIT_CONFIG_PARAMETERS",
];
/// Families of such variables, by prefix: the dynamic loaders (glibc, musl, macOS), exported
/// bash functions, the locale, malloc tuning, and the interpreters' own.
const INTERPRETED_PREFIXES: [&str; 10] = [
    "LD_",
    "DYLD_",
    "BASH_FUNC_",
    "LC_",
    "MALLOC_",
    "GLIBC_",
    "PYTHON",
    "PERL",
    "RUBY",
    "CREDLOCK_",
];
/// The rule, as the error states it (a unit test checks it names every entry above).
const INTERPRETED_RULE: &str =
    "pass the token in a variable of your own (the default is CREDLOCK_TOKEN); refused are the \
     names the loader, shells, the C library and interpreters read: PATH, IFS, ENV, BASH_ENV, \
     CDPATH, PS4, SHELLOPTS, BASHOPTS, GLOBIGNORE, PROMPT_COMMAND, HOME, SHELL, TMPDIR, \
     GCONV_PATH, LOCPATH, HOSTALIASES, RES_OPTIONS, LOCALDOMAIN, NODE_OPTIONS, NODE_PATH, \
     JAVA_TOOL_OPTIONS, JDK_JAVA_OPTIONS, _JAVA_OPTIONS, LANG, the commands EDITOR, VISUAL, \
     PAGER, GIT_PAGER, LESSOPEN, BROWSER, SSH_ASKPASS, GIT_ASKPASS, GIT_SSH, GIT_SSH_COMMAND, \
     GIT_EXEC_PATH, GIT_CONFIG_PARAMETERS, and every name starting with \
     LD_, DYLD_, BASH_FUNC_, LC_, MALLOC_, GLIBC_, PYTHON, PERL, RUBY or CREDLOCK_ (other \
     than CREDLOCK_TOKEN)";

/// Whether `name` is read by something other than the program (see [`INTERPRETED_NAMES`]).
fn interpreted_env_name(name: &str) -> bool {
    // Windows looks variables up without regard to case (`Path` is `PATH`); unix does not.
    let name = if cfg!(windows) {
        name.to_ascii_uppercase()
    } else {
        name.to_owned()
    };
    name != "CREDLOCK_TOKEN"
        && (INTERPRETED_NAMES.contains(&name.as_str())
            || INTERPRETED_PREFIXES.iter().any(|p| name.starts_with(p)))
}

/// The header file: removed when dropped, so every way out of `run` removes it.
struct HeaderFile(PathBuf);

impl HeaderFile {
    fn create(path: PathBuf, authorization: &str) -> Result<HeaderFile, ExecError> {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
        }
        let mut file = match options.open(&path) {
            Ok(f) => f,
            Err(e) => return Err(ExecError::HeaderCreate(path, e)),
        };
        let written = file
            .write_all(format!("Authorization: {authorization}\n").as_bytes())
            .and_then(|()| file.sync_all());
        let header = HeaderFile(path);
        match written {
            Ok(()) => Ok(header),
            Err(e) => Err(ExecError::HeaderWrite(header.0.clone(), e)),
        }
    }
}

impl Drop for HeaderFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn run(args: &ExecArgs, config: Config) -> Result<u8, Failure> {
    if !valid_env_name(&args.env_name) {
        return Err(ExecError::BadEnvName(args.env_name.clone()).into());
    }
    if interpreted_env_name(&args.env_name) {
        return Err(ExecError::InterpretedEnvName(args.env_name.clone()).into());
    }
    let mut store = Credlock::open(config)?;
    let t = store.token(&args.tenant, args.min_valid.saturating_mul(1000))?;
    let scheme = if t.token_type.eq_ignore_ascii_case("bearer") {
        "Bearer"
    } else {
        t.token_type.as_str()
    };
    let _header = match &args.header_file {
        Some(path) => Some(HeaderFile::create(
            path.clone(),
            &format!("{scheme} {}", t.token),
        )?),
        None => None,
    };
    let (program, rest) = args
        .command
        .split_first()
        .expect("clap requires at least CMD");
    let mut command = std::process::Command::new(program);
    command.args(rest).env(&args.env_name, &t.token);
    for name in NOT_INHERITED {
        command.env_remove(name);
    }
    drop(store);
    forward::install();
    forward::die_with_parent(&mut command);
    let mut child = command
        .spawn()
        .map_err(|e| ExecError::Spawn(program.clone(), e))?;
    forward::to(child.id());
    let status = child
        .wait()
        .map_err(|e| ExecError::Wait(program.clone(), e))?;
    Ok(exit_code(status))
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        // A status is 0-255 on unix; Windows codes beyond a byte are reported as 1.
        return u8::try_from(code).unwrap_or(1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return 128u8.saturating_add(u8::try_from(signal).unwrap_or(127));
        }
    }
    1
}

#[cfg(unix)]
mod forward {
    //! Pass signals on to the child. The handler only reads and writes atomics and calls
    //! kill(2), both async-signal-safe.
    use std::sync::atomic::{AtomicI32, Ordering};

    const SIGNALS: [libc::c_int; 6] = [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ];
    /// The child's pid once it runs; 0 before.
    static CHILD: AtomicI32 = AtomicI32::new(0);
    /// A signal that came before the child existed, sent to it once it does.
    static PENDING: AtomicI32 = AtomicI32::new(0);

    extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // The terminal's signals (Ctrl-C, hang-up) already went to the child's process group.
        #[cfg(target_os = "linux")]
        // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
        #[allow(unsafe_code)]
        if !info.is_null() && unsafe { (*info).si_code } == libc::SI_KERNEL {
            return;
        }
        #[cfg(not(target_os = "linux"))]
        let _ = info;
        let pid = CHILD.load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill is async-signal-safe; pid is our child's.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid, sig);
            }
        } else {
            PENDING.store(sig, Ordering::SeqCst);
        }
    }

    /// Catch the signals from now on (before the child is spawned, so none is lost).
    /// Caught signals revert to their defaults in the child at exec.
    pub fn install() {
        for sig in SIGNALS {
            // SAFETY: a zeroed sigaction is valid; the handler is async-signal-safe (above).
            #[allow(unsafe_code)]
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = handler as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(sig, &action, std::ptr::null_mut());
            }
        }
    }

    /// Ask the kernel to send the program SIGTERM when credlock dies, so that a `kill -9` of
    /// credlock does not leave it running unsupervised (Linux's `PR_SET_PDEATHSIG`; other
    /// systems have no such request, and `--help` says so).
    #[cfg(target_os = "linux")]
    pub fn die_with_parent(command: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        let credlock = i32::try_from(std::process::id()).expect("pids fit in pid_t");
        // SAFETY: the closure runs in the child between fork and exec and calls only prctl,
        // getppid and _exit, which are async-signal-safe.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // credlock may have died before the request was made: then no signal comes.
                if libc::getppid() != credlock {
                    libc::_exit(128 + libc::SIGTERM);
                }
                Ok(())
            });
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn die_with_parent(_command: &mut std::process::Command) {}

    pub fn to(pid: u32) {
        let pid = i32::try_from(pid).expect("pids fit in pid_t");
        CHILD.store(pid, Ordering::SeqCst);
        let early = PENDING.swap(0, Ordering::SeqCst);
        if early != 0 {
            // SAFETY: sending a signal to our own child.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid, early);
            }
        }
    }
}

#[cfg(not(unix))]
mod forward {
    //! Windows has no signals to pass on: Ctrl-C reaches every process of the console.
    pub fn install() {}
    pub fn die_with_parent(_command: &mut std::process::Command) {}
    pub fn to(_pid: u32) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stated_rule_names_every_refused_name() {
        for name in INTERPRETED_NAMES.iter().chain(&INTERPRETED_PREFIXES) {
            assert!(
                INTERPRETED_RULE.contains(name),
                "{name} is missing from the rule"
            );
        }
        for refused in [
            "LD_PRELOAD",
            "DYLD_INSERT_LIBRARIES",
            "PATH",
            "PYTHONSTARTUP",
            "BASH_FUNC_x%%",
            "CREDLOCK_STORE",
        ] {
            assert!(interpreted_env_name(refused), "{refused}");
        }
        for fine in ["CREDLOCK_TOKEN", "GH_TOKEN", "TOKEN_PATH", "MY_LD_PRELOAD"] {
            assert!(!interpreted_env_name(fine), "{fine}");
        }
    }
}
