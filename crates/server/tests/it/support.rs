//! `TestServer`: the real binary, started and stopped by tests.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hourglass_client::Client;
use hourglass_testkit::S3Server;
use tempfile::TempDir;

/// The admin token every test server accepts.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A running `hourglass serve` with its own data directory.
pub struct TestServer {
    child: Option<Child>,
    _dir: TempDir,
    pub data_dir: PathBuf,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    role: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    pub url: String,
    /// `grpc://ADDR` of the Flight SQL service, for roles that serve it.
    pub grpc_url: Option<String>,
    /// `HOST:PORT` of the PostgreSQL wire protocol, for roles that serve it.
    pub pg_addr: Option<String>,
}

/// Flags and environment that put a server's state on a real S3-protocol server and a real
/// PostgreSQL catalog.
pub fn s3_and_postgres(s3: &S3Server, endpoint: &str, catalog: &str) -> (Vec<String>, Vec<(String, String)>) {
    let args = ["--object-store", "s3", "--bucket", s3.bucket(), "--endpoint", endpoint, "--catalog", catalog];
    let env = s3.aws_env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    (args.iter().map(|s| s.to_string()).collect(), env)
}

impl TestServer {
    /// Starts a server with extra `serve` flags.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &[])
    }

    /// Starts a server with extra `serve` flags and environment variables.
    pub fn start_with(args: &[String], env: &[(String, String)]) -> Self {
        Self::start_role("serve", args, env)
    }

    /// Starts `hourglass ROLE` (`serve`, `demo`, `ingester`, `querier`, `compactor`, `gateway`).
    pub fn start_role(role: &str, args: &[String], env: &[(String, String)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let mut server = Self {
            child: None,
            stdout_path: dir.path().join("stdout.log"),
            stderr_path: dir.path().join("stderr.log"),
            _dir: dir,
            data_dir,
            role: role.to_string(),
            args: args.to_vec(),
            env: env.to_vec(),
            url: String::new(),
            grpc_url: None,
            pg_addr: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let offset = std::fs::metadata(&self.stdout_path).map(|m| m.len()).unwrap_or(0);
        let open = |p: &Path| -> File { OpenOptions::new().create(true).append(true).open(p).expect("log file") };
        // Every role that serves gRPC gets a free port too.
        let grpc: &[&str] = if matches!(self.role.as_str(), "serve" | "querier" | "demo") {
            &["--grpc-addr", "127.0.0.1:0", "--pg-addr", "127.0.0.1:0"]
        } else {
            &[]
        };
        let child = Command::new(env!("CARGO_BIN_EXE_hourglass"))
            .arg(&self.role)
            .args(grpc)
            .args(["--http-addr", "127.0.0.1:0", "--admin-token", ADMIN_TOKEN])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("HOURGLASS_LOG", "info")
            .stdin(Stdio::null())
            .stdout(open(&self.stdout_path))
            .stderr(open(&self.stderr_path))
            .spawn()
            .expect("spawn hourglass");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = std::fs::read(&self.stdout_path).unwrap_or_default();
            let fresh = String::from_utf8_lossy(&out[offset as usize..]).to_string();
            // The URL is printed when the port is bound; "hourglass ready" once the WAL has
            // replayed and the API serves.
            if let Some(line) = fresh.lines().find(|l| l.contains("listening on http://")) {
                self.url = line.split("listening on ").nth(1).expect("url").trim().to_string();
                if fresh.lines().any(|l| l == "hourglass ready") {
                    self.grpc_url = fresh
                        .lines()
                        .find_map(|l| l.split("flight sql listening on ").nth(1))
                        .map(|u| u.trim().to_string());
                    self.pg_addr = fresh
                        .lines()
                        .find_map(|l| l.split("postgres listening on postgresql://").nth(1))
                        .map(|u| u.trim().to_string());
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("hourglass exited with {status} before listening:\n{}", self.logs());
            }
            assert!(Instant::now() < deadline, "hourglass did not start:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the server printed to stdout so far, across restarts.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Everything the server wrote to stderr so far, across restarts.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// A client with the admin token.
    pub fn admin(&self) -> Client {
        Client::new(&self.url, ADMIN_TOKEN)
    }

    /// A client with no token.
    pub fn anonymous(&self) -> Client {
        Client::new(&self.url, "")
    }

    /// Creates a tenant; returns (writer, reader) clients.
    pub async fn tenant(&self, id: &str) -> (Client, Client) {
        let creds = self.admin().create_tenant(id).await.expect("create tenant");
        (self.admin().with_token(&creds.write_key), self.admin().with_token(&creds.read_token))
    }

    /// Kills the server with SIGKILL and waits for it to die.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("wait");
        }
    }

    /// Sends SIGTERM and waits for a clean exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same data directory (a new port).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Kills the server and starts it again on the same data with `extra` flags added.
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.kill();
        self.args.extend(extra.iter().map(|a| a.to_string()));
        self.spawn();
    }

    /// Kills the server and starts it again on the same data with `args` instead of the
    /// flags it had.
    pub fn restart_as(&mut self, args: &[&str]) {
        self.kill();
        self.args = args.iter().map(|a| a.to_string()).collect();
        self.spawn();
    }

    /// Paths of every file under the data directory's object store matching `suffix`.
    pub fn objects(&self, suffix: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, suffix, out);
                } else if p.to_string_lossy().ends_with(suffix) {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.data_dir.join("objects"), suffix, &mut out);
        out.sort();
        out
    }

    /// GET a path and return (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("{}{path}", self.url)).await.expect("GET");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `python3 tests/{script} ARGS...`, a client nobody on the team wrote (installed by
/// `scripts/test-deps`), and asserts that it exits 0 having printed `done`; the failure shows
/// the client's output and the server's log. Needs a multi-threaded test runtime.
pub fn run_python_client(server: &TestServer, script: &str, args: &[&str], done: &str) {
    let path = format!("{}/../../tests/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = tokio::task::block_in_place(|| {
        Command::new("python3")
            .arg(&path)
            .args(args)
            .output()
            .expect("python3 (scripts/test-deps installs the clients)")
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(done),
        "{script} failed:\n{stdout}{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.logs()
    );
}

/// Runs SQL that returns one integer (the first column of the first row).
pub async fn scalar(reader: &Client, sql: &str) -> i64 {
    let rows = reader.query_json(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let row = rows.first().unwrap_or_else(|| panic!("{sql}: no rows"));
    row.values().next().and_then(|v| v.as_i64()).unwrap_or_else(|| panic!("{sql}: not an integer: {row:?}"))
}

/// NDJSON of `n` pageviews with ids `{prefix}-{i}`.
pub fn pageviews(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!("{{\"event_id\":\"{prefix}-{i}\",\"name\":\"pageview\",\"url\":\"https://shop.example/p/{i}\"}}\n")
        })
        .collect()
}

/// The status code of a client error, or panics.
pub fn status_of(result: Result<impl std::fmt::Debug, hourglass_client::Error>) -> u16 {
    match result {
        Err(hourglass_client::Error::Status { status, .. }) => status,
        other => panic!("expected an error status, got {other:?}"),
    }
}

/// Runs the `hourglass` CLI against `server` with `token`; returns (success, stdout, stderr).
pub fn hourglass(args: &[&str], token: &str, server: &str) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_hourglass"))
        .args(args)
        .env("HOURGLASS_SERVER", server)
        .env("HOURGLASS_TOKEN", token)
        .output()
        .expect("run hourglass");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}
