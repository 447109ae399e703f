//! The Hourglass processes under test: one `hourglass serve` on a local directory, or a
//! loopback cluster (ingesters, a querier and a gateway as separate processes) on a real
//! S3-protocol server and PostgreSQL.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use hourglass_client::Client;
use hourglass_storage::{ObjectStoreConfig, S3Config};
use hourglass_testkit::{PgDatabase, S3Server};
use object_store::ObjectStore;

/// The admin token of the benchmarked servers.
pub(crate) const ADMIN: &str = "bench-admin-token-0123456789";
const CLUSTER_SECRET: &str = "bench-cluster-secret-0123456789";

/// Where the Parquet files are, for bare DataFusion to read the same ones.
pub(crate) enum ParquetHome {
    /// `objects/` of a local data directory.
    Local(PathBuf),
    /// A bucket, and a store that reaches it.
    S3 { bucket: String, store: Arc<dyn ObjectStore> },
}

/// One process.
struct Proc {
    child: Child,
    url: String,
    grpc_url: Option<String>,
    pg_addr: Option<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The processes under test, killed on drop.
pub(crate) struct Server {
    procs: Vec<Proc>,
    pub url: String,
    /// `grpc://ADDR` of `serve`'s Flight SQL and bulk ingest (not set for a cluster).
    pub grpc_url: Option<String>,
    /// `HOST:PORT` of `serve`'s PostgreSQL wire protocol (not set for a cluster).
    pub pg_addr: Option<String>,
    pub parquet: ParquetHome,
    pub description: String,
    binary: PathBuf,
    data_dir: PathBuf,
    dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
    _s3: Option<S3Server>,
}

fn spawn(binary: &Path, args: &[String], env: &[(String, String)], log: &Path) -> anyhow::Result<Proc> {
    let log = std::fs::File::create(log)?;
    let mut child = Command::new(binary)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("HOURGLASS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| anyhow::anyhow!("starting {}: {e}", binary.display()))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let (mut url, mut grpc_url, mut pg_addr) = (None, None, None);
    loop {
        let Some(line) = lines.next() else { anyhow::bail!("hourglass {} exited before it was ready", args[0]) };
        let line = line?;
        let after = |marker: &str| line.split(marker).nth(1).map(|found| found.trim().to_string());
        if let Some(found) = after("hourglass listening on ") {
            url = Some(found);
        } else if let Some(found) = after("flight sql listening on ") {
            grpc_url = Some(found);
        } else if let Some(found) = after("postgres listening on postgresql://") {
            pg_addr = Some(found);
        }
        if line == "hourglass ready" {
            break;
        }
    }
    let url = url.ok_or_else(|| anyhow::anyhow!("hourglass was ready before it printed its address"))?;
    Ok(Proc { child, url, grpc_url, pg_addr })
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl Server {
    /// `hourglass serve` on a local directory.
    pub(crate) fn start(binary: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let data_dir = dir.path().join("data");
        Self::serve(binary, dir, &data_dir, &[])
    }

    /// `hourglass serve` on an existing data directory, with `extra` flags.
    pub(crate) fn start_on(binary: &Path, data_dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        Self::serve(binary, tempfile::tempdir()?, data_dir, extra)
    }

    /// Stops every process and starts `hourglass serve` again on the same data directory
    /// with `extra` flags: caches start cold.
    pub(crate) fn restart(self, extra: &[&str]) -> anyhow::Result<Self> {
        let (binary, data_dir) = (self.binary.clone(), self.data_dir.clone());
        drop(self);
        Self::start_on(&binary, &data_dir, extra)
    }

    fn serve(binary: &Path, dir: tempfile::TempDir, data_dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let mut args =
            strings(&["serve", "--http-addr", "127.0.0.1:0", "--admin-token", ADMIN, "--persist-max-age", "30m"]);
        args.extend(strings(&["--grpc-addr", "127.0.0.1:0", "--pg-addr", "127.0.0.1:0"]));
        // The interface comparison asks for a million rows as JSON.
        args.extend(strings(&["--query-max-result-bytes", "2GiB"]));
        args.extend(["--data-dir".to_string(), data_dir.display().to_string()]);
        args.extend(strings(extra));
        let proc = spawn(binary, &args, &[], &dir.path().join("serve.log"))?;
        Ok(Self {
            binary: binary.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            url: proc.url.clone(),
            grpc_url: proc.grpc_url.clone(),
            pg_addr: proc.pg_addr.clone(),
            procs: vec![proc],
            parquet: ParquetHome::Local(data_dir.join("objects")),
            description: "one `hourglass serve` process, local directory, SQLite catalog".to_string(),
            dir,
            _pg: None,
            _s3: None,
        })
    }

    /// `ingesters` ingesters, a querier and a gateway on moto (S3 protocol) and PostgreSQL,
    /// all on loopback.
    pub(crate) async fn start_cluster(binary: &Path, ingesters: usize) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let s3 = S3Server::start().await;
        let pg = PgDatabase::create().await;
        let common = strings(&[
            "--http-addr",
            "127.0.0.1:0",
            "--admin-token",
            ADMIN,
            "--object-store",
            "s3",
            "--bucket",
            s3.bucket(),
            "--endpoint",
            s3.endpoint(),
            "--catalog",
            pg.url(),
            "--cluster-secret",
            CLUSTER_SECRET,
            "--data-dir",
            &dir.path().join("data").display().to_string(),
        ]);
        let env: Vec<(String, String)> = s3.aws_env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let mut procs = Vec::new();
        for i in 0..ingesters {
            let mut args = vec!["ingester".to_string()];
            args.extend(common.clone());
            args.extend(strings(&["--ingester-id", &format!("ingester-{i}"), "--grpc-addr", "127.0.0.1:0"]));
            args.extend(strings(&["--persist-max-age", "30m"]));
            procs.push(spawn(binary, &args, &env, &dir.path().join(format!("ingester-{i}.log")))?);
        }
        for role in ["querier", "gateway"] {
            let mut args = vec![role.to_string()];
            args.extend(common.clone());
            if role == "querier" {
                args.extend(strings(&["--grpc-addr", "127.0.0.1:0", "--pg-addr", "127.0.0.1:0"]));
            }
            procs.push(spawn(binary, &args, &env, &dir.path().join(format!("{role}.log")))?);
        }
        // Gateways learn about nodes from the catalog within a quarter lease.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let mut config = S3Config::new(s3.bucket());
        config.endpoint = Some(s3.endpoint().to_string());
        config.access_key = Some(("hourglass-test".to_string(), "hourglass-test-secret".to_string()));
        let store = ObjectStoreConfig::S3(config).build()?;
        let url = procs.last().map(|p| p.url.clone()).unwrap_or_default();
        Ok(Self {
            binary: binary.to_path_buf(),
            data_dir: dir.path().join("data"),
            url,
            grpc_url: None,
            pg_addr: None,
            procs,
            parquet: ParquetHome::S3 { bucket: s3.bucket().to_string(), store },
            description: format!(
                "a loopback cluster: {ingesters} ingesters, 1 querier and 1 gateway as separate processes, \
                 moto (S3 protocol) and PostgreSQL; clients talk to the gateway"
            ),
            dir,
            _pg: Some(pg),
            _s3: Some(s3),
        })
    }

    /// CPU time (user and system) all Hourglass processes have used, in seconds; 0 where
    /// `/proc` is not available. Persisting runs in the ingesters, so this is the whole cost
    /// of ingesting, not only of answering requests. (moto and PostgreSQL are not counted.)
    pub(crate) fn cpu_seconds(&self) -> f64 {
        self.procs.iter().map(|p| process_cpu_seconds(p.child.id())).sum()
    }

    pub(crate) fn admin(&self) -> Client {
        Client::new(&self.url, ADMIN)
    }

    /// The sum of a metric over every process.
    pub(crate) async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let mut total = 0.0;
        for p in &self.procs {
            let text = reqwest::get(format!("{}/metrics", p.url)).await?.text().await?;
            let prefix = format!("{name} ");
            total += text
                .lines()
                .find_map(|l| l.strip_prefix(&prefix).and_then(|rest| rest.trim().parse::<f64>().ok()))
                .unwrap_or(0.0);
        }
        Ok(total)
    }

    /// Where the processes' logs are.
    pub(crate) fn log_dir(&self) -> &Path {
        self.dir.path()
    }
}

fn process_cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<f64>().ok()).sum();
    ticks / 100.0
}

/// (requests committed, WAL syncs, seconds spent syncing, object-store PUTs) over every process.
pub(crate) async fn wal_counters(server: &Server) -> anyhow::Result<(f64, f64, f64, f64)> {
    Ok((
        server.metric("hourglass_wal_grouped_requests_total").await?,
        server.metric("hourglass_wal_sync_seconds_count").await?,
        server.metric("hourglass_wal_sync_seconds_sum").await?,
        server.metric("hourglass_object_store_puts_total").await?
            + server.metric("hourglass_object_store_multipart_uploads_total").await?,
    ))
}
