//! A throwaway PostgreSQL server of the test's own, which the test may stop and restart without
//! disturbing other tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::free_port;

/// A PostgreSQL server in a temporary directory on a free port (trust auth, user `postgres`).
pub struct PgCluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

fn bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> =
        std::fs::read_dir(root).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    versions.sort();
    versions.pop().map(|v| v.join("bin")).unwrap_or_else(|| panic!("no PostgreSQL under {}", root.display()))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// Runs a PostgreSQL program as the `postgres` user (initdb refuses root).
fn as_postgres(program: &Path, args: &[&str]) -> Output {
    let output = if is_root() {
        Command::new("runuser").args(["-u", "postgres", "--"]).arg(program).args(args).output()
    } else {
        Command::new(program).args(args).output()
    };
    output.unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

fn check(what: &str, output: Output) {
    assert!(
        output.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl PgCluster {
    /// Initializes and starts a server (about two seconds).
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(crate::unique_name("hourglass-pg"));
        std::fs::create_dir_all(&dir).expect("creating the cluster directory");
        if is_root() {
            let uid = Command::new("id").args(["-u", "postgres"]).output().expect("id postgres");
            let gid = Command::new("id").args(["-g", "postgres"]).output().expect("id postgres");
            let parse = |o: Output| String::from_utf8_lossy(&o.stdout).trim().parse::<u32>().expect("numeric id");
            std::os::unix::fs::chown(&dir, Some(parse(uid)), Some(parse(gid))).expect("chown to postgres");
        }
        let bin = bin_dir();
        let data = dir.join("data");
        let data_str = data.to_string_lossy().to_string();
        check("initdb", as_postgres(&bin.join("initdb"), &["-D", &data_str, "-A", "trust", "-U", "postgres"]));
        let cluster = Self { dir, port: free_port(), bin };
        cluster.start_server();
        cluster
    }

    fn start_server(&self) {
        let data = self.dir.join("data").to_string_lossy().to_string();
        let log = self.dir.join("server.log").to_string_lossy().to_string();
        let options = format!("-p {} -c listen_addresses=127.0.0.1 -k {}", self.port, self.dir.display());
        check(
            "pg_ctl start",
            as_postgres(&self.bin.join("pg_ctl"), &["-D", &data, "-l", &log, "-o", &options, "-w", "start"]),
        );
    }

    /// Stops the server (fast shutdown: open connections are closed).
    pub fn stop(&self) {
        let data = self.dir.join("data").to_string_lossy().to_string();
        check("pg_ctl stop", as_postgres(&self.bin.join("pg_ctl"), &["-D", &data, "-m", "fast", "-w", "stop"]));
    }

    /// Starts the server again after [`PgCluster::stop`], on the same port.
    pub fn restart(&self) {
        self.start_server();
    }

    /// URL of the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data").to_string_lossy().to_string();
        let _ = as_postgres(&self.bin.join("pg_ctl"), &["-D", &data, "-m", "immediate", "-w", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
