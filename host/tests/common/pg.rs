//! A private PostgreSQL cluster for one test: `initdb` and `pg_ctl` from the Debian
//! `postgresql` package (scripts/setup.sh installs it) in a temporary directory, listening
//! on a free loopback port, stopped by its postmaster's PID when dropped.
//!
//! PostgreSQL refuses to run as root: as root (CI containers), the server runs as the
//! package's `postgres` user.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct PgCluster {
    dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
    /// The CA that signed the server's certificate, when it speaks TLS.
    pub ca: Option<PathBuf>,
}

/// The directory of `initdb` and `pg_ctl`: `$CREDLOCK_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`.
fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CREDLOCK_PG_BIN") {
        return d.into();
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, b)| b)
        .expect("PostgreSQL is not installed: run scripts/setup.sh (Debian package postgresql)")
}

fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgCluster {
    pub fn start() -> PgCluster {
        Self::start_with(false)
    }

    /// A cluster that speaks TLS, with a certificate for 127.0.0.1 and localhost signed by
    /// a CA of its own (`ca`), made with the openssl CLI.
    pub fn start_with_tls() -> PgCluster {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> PgCluster {
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown to the postgres user");
        }
        let mut c = PgCluster {
            port: 0,
            bin: bin_dir(),
            dir,
            ca: None,
        };
        let data = c.data();
        let status = c
            .command("initdb")
            .args(["-D"])
            .arg(&data)
            .args([
                "-U",
                "credlock",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        if tls {
            c.make_certificates();
        }
        c.port = free_port();
        c.start_server();
        c
    }

    fn make_certificates(&mut self) {
        let d = self.dir.path();
        let sh = format!(
            "set -e; cd {d}; \
             openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=credlock-test-ca 2>/dev/null; \
             openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null; \
             printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > ext; \
             openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile ext 2>/dev/null; \
             chmod 600 server.key",
            d = d.display()
        );
        let ok = Command::new("bash")
            .args(["-c", &sh])
            .status()
            .unwrap()
            .success();
        assert!(ok, "making the test certificates with openssl");
        if is_root() {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(d.join("server.key"))
                .arg(d.join("server.crt"))
                .status()
                .unwrap()
                .success();
            assert!(ok);
        }
        self.ca = Some(d.join("ca.pem"));
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// Start (or start again) on the same port and data.
    pub fn start_server(&self) {
        let mut opts = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c max_connections=400 -c shared_buffers=32MB",
            self.port,
            self.dir.path().display()
        );
        if self.ca.is_some() {
            let d = self.dir.path().display();
            opts.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key -c log_connections=on"
            ));
        }
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-o", &opts, "-w", "-t", "60", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            self.log()
        );
    }

    /// The server log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// The postmaster's PID, from its pid file.
    pub fn pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Stop the server by its PID: `fast` ends every session (SIGINT), otherwise an
    /// immediate stop, as a crash (SIGQUIT). Waits until it is gone.
    pub fn stop(&self, fast: bool) {
        let Some(pid) = self.pid() else { return };
        let sig = if fast { libc::SIGINT } else { libc::SIGQUIT };
        // SAFETY: kill(2) on the postmaster this test started.
        unsafe { libc::kill(pid, sig) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // An immediate stop leaves the pid file; remove it so the next start is clean.
        let _ = std::fs::remove_file(self.data().join("postmaster.pid"));
    }

    /// A store URL on this cluster.
    pub fn url(&self, query: &str) -> String {
        format!(
            "postgres://credlock@127.0.0.1:{}/postgres{}{query}",
            self.port,
            if query.is_empty() { "" } else { "?" }
        )
    }

    /// An administrator's connection (the test's own, not credlock's).
    pub fn admin(&self) -> postgres::Client {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user("credlock")
            .dbname("postgres")
            .connect(postgres::NoTls)
            .unwrap()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop(false);
    }
}
