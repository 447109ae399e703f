//! The `hourglass serve` process under test.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use hourglass_client::Client;

/// The admin token of the benchmarked server.
pub(crate) const ADMIN: &str = "bench-admin-token-0123456789";

/// A running server in a temporary directory, killed on drop.
pub(crate) struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub url: String,
}

impl Server {
    pub(crate) fn start(binary: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let data_dir = dir.path().join("data");
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let mut child = Command::new(binary)
            .args(["serve", "--http-addr", "127.0.0.1:0", "--admin-token", ADMIN, "--persist-max-age", "30m"])
            .arg("--data-dir")
            .arg(&data_dir)
            .env("HOURGLASS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut url = None;
        loop {
            let Some(line) = lines.next() else { anyhow::bail!("hourglass exited before it was ready") };
            let line = line?;
            if let Some(found) = line.split("listening on ").nth(1) {
                url = Some(found.trim().to_string());
            }
            if line == "hourglass ready" {
                break;
            }
        }
        let url = url.ok_or_else(|| anyhow::anyhow!("hourglass was ready before it printed its address"))?;
        Ok(Self { child, _dir: dir, data_dir, url })
    }

    /// CPU time (user and system) the server process has used, in seconds; 0 where
    /// `/proc` is not available. Persisting runs in the same process, so this is the whole
    /// cost of ingesting, not only of answering requests.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())) else { return 0.0 };
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<f64>().ok()).sum();
        ticks / 100.0
    }

    pub(crate) fn admin(&self) -> Client {
        Client::new(&self.url, ADMIN)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (requests committed, WAL syncs, seconds spent syncing) from the server's metrics.
pub(crate) async fn wal_counters(server: &Server) -> anyhow::Result<(f64, f64, f64)> {
    let text = reqwest_get(&format!("{}/metrics", server.url)).await?;
    let value = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse::<f64>().ok())).unwrap_or(0.0)
    };
    Ok((
        value("hourglass_wal_grouped_requests_total "),
        value("hourglass_wal_sync_seconds_count "),
        value("hourglass_wal_sync_seconds_sum "),
    ))
}

async fn reqwest_get(url: &str) -> anyhow::Result<String> {
    Ok(reqwest::get(url).await?.text().await?)
}
