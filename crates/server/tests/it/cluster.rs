//! A cluster of separate processes on a real S3-protocol server and PostgreSQL: ingesters,
//! queriers, a compactor and gateways, as `deploy/` describes.

use std::time::Duration;

use hourglass_client::Client;
use hourglass_testkit::{PgCluster, PgDatabase, S3Server};

use crate::support::{ADMIN_TOKEN, TestServer, pageviews, s3_and_postgres};

pub const CLUSTER_SECRET: &str = "test-cluster-secret-0123456789";

/// The processes of a cluster and the servers they share.
pub struct Cluster {
    pub ingesters: Vec<TestServer>,
    pub queriers: Vec<TestServer>,
    pub compactor: TestServer,
    pub gateways: Vec<TestServer>,
    // Dropped last: the processes above use them.
    _pg: Option<PgDatabase>,
    _s3: S3Server,
}

impl Cluster {
    /// Starts `ingesters` ingesters, `queriers` queriers, one compactor and `gateways` gateways.
    pub async fn start(ingesters: usize, queriers: usize, gateways: usize) -> Self {
        let pg = PgDatabase::create().await;
        let url = pg.url().to_string();
        Self::start_on(&url, Some(pg), ingesters, queriers, gateways).await
    }

    /// The same on the PostgreSQL database at `catalog` (which the caller keeps alive).
    pub async fn start_on(
        catalog: &str,
        pg: Option<PgDatabase>,
        ingesters: usize,
        queriers: usize,
        gateways: usize,
    ) -> Self {
        let s3 = S3Server::start().await;
        let (mut common, env) = s3_and_postgres(&s3, s3.endpoint(), catalog);
        common.extend(["--cluster-secret", CLUSTER_SECRET, "--node-lease", "3s"].map(String::from));
        let with = |extra: &[&str]| -> Vec<String> {
            let mut args = common.clone();
            args.extend(extra.iter().map(|s| s.to_string()));
            args
        };
        let ingesters = (0..ingesters)
            .map(|i| {
                let id = format!("ingester-{i}");
                let args = with(&["--ingester-id", &id, "--grpc-addr", "127.0.0.1:0", "--persist-max-age", "2s"]);
                TestServer::start_role("ingester", &args, &env)
            })
            .collect();
        let queriers = (0..queriers).map(|_| TestServer::start_role("querier", &with(&[]), &env)).collect();
        let compactor = TestServer::start_role(
            "compactor",
            &with(&["--compact-interval", "1s", "--compact-max-open-files", "2", "--garbage-grace", "2s"]),
            &env,
        );
        let gateways = (0..gateways).map(|_| TestServer::start_role("gateway", &with(&[]), &env)).collect();
        let cluster = Self { ingesters, queriers, compactor, gateways, _pg: pg, _s3: s3 };
        cluster.wait_until_routable().await;
        cluster
    }

    /// Waits until every gateway sees every ingester and querier (membership refreshes every
    /// quarter lease).
    async fn wait_until_routable(&self) {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }

    /// The logs of every process, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let named = self
            .ingesters
            .iter()
            .map(|s| ("ingester", s))
            .chain(self.queriers.iter().map(|s| ("querier", s)))
            .chain(std::iter::once(("compactor", &self.compactor)))
            .chain(self.gateways.iter().map(|s| ("gateway", s)));
        for (role, server) in named {
            let logs = server.logs();
            let tail: Vec<&str> = logs.lines().rev().take(30).collect();
            out.push_str(&format!("---- {role} {}\n", server.url));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Runs SQL returning one integer; on failure, panics with every process's log.
    pub async fn count(&self, reader: &Client, sql: &str) -> i64 {
        match reader.query_json(sql).await {
            Ok(rows) => rows
                .first()
                .and_then(|r| r.values().next())
                .and_then(|v| v.as_i64())
                .unwrap_or_else(|| panic!("{sql}: not one integer: {rows:?}")),
            Err(e) => panic!("{sql}: {e}\n{}", self.logs()),
        }
    }

    /// An admin client of the first gateway.
    pub fn admin(&self) -> Client {
        Client::new(&self.gateways[0].url, ADMIN_TOKEN)
    }
}

/// Events sent to one gateway are visible through another at once (from the ingesters'
/// buffers, over Flight), are spread over both ingesters by tenant, and stay exact through
/// persist and compaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_route_by_tenant_and_queriers_read_fresh_buffers() {
    let cluster = Cluster::start(2, 1, 2).await;
    let admin = cluster.admin();
    let mut tenants = Vec::new();
    for i in 0..6 {
        let creds = admin.create_tenant(&format!("shop-{i}")).await.expect("tenant through a gateway");
        tenants.push(creds);
    }
    for (i, creds) in tenants.iter().enumerate() {
        let gateway = &cluster.gateways[i % 2];
        let writer = Client::new(&gateway.url, &creds.write_key);
        let outcome = writer.ingest(pageviews(&format!("t{i}"), 40 + i)).await.expect("ingest through a gateway");
        assert_eq!(outcome.accepted, 40 + i);
    }
    // Read through the other gateway right away: the rows are still in the ingesters' buffers.
    for (i, creds) in tenants.iter().enumerate() {
        let reader = Client::new(&cluster.gateways[(i + 1) % 2].url, &creds.read_token);
        assert_eq!(cluster.count(&reader, "SELECT count(*) FROM events").await, 40 + i as i64, "tenant {i}");
        // The report API goes through gateways to queriers too, fresh from the buffers.
        let report = reader
            .report(&serde_json::json!({"date_range": "today", "metrics": ["pageviews"]}))
            .await
            .expect("a report through a gateway");
        assert_eq!(report["totals"]["metrics"][0], 40 + i, "tenant {i}: {report}");
        assert!(reader.metadata().await.is_ok(), "metadata through a gateway");
    }
    let nodes = admin.query_json("SELECT id, roles FROM system.nodes ORDER BY id").await.expect("system.nodes");
    assert_eq!(nodes.len(), 6, "{nodes:?}");
    let ingesters = nodes.iter().filter(|n| n["roles"] == "ingester").count();
    assert_eq!(ingesters, 2, "{nodes:?}");
    let mut used = 0;
    for ingester in &cluster.ingesters {
        let (_, metrics) = ingester.get("/metrics").await;
        let events: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("hourglass_ingest_events_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        if events > 0.0 {
            used += 1;
        }
    }
    assert_eq!(used, 2, "tenants were not spread over both ingesters");

    // Persisted, then compacted: the counts stay exact.
    admin.flush().await.expect("flush every ingester through the gateway");
    for (i, creds) in tenants.iter().enumerate() {
        let reader = Client::new(&cluster.gateways[i % 2].url, &creds.read_token);
        assert_eq!(
            cluster.count(&reader, "SELECT count(*) FROM raw_events").await,
            40 + i as i64,
            "tenant {i} after flush"
        );
    }
    // The compactor merges each partition's files (one per ingester and persist) into one.
    let waited = std::time::Instant::now();
    loop {
        let most = cluster.count(&admin, "SELECT max(files) FROM system.partitions").await;
        if most == 1 {
            break;
        }
        assert!(waited.elapsed() < Duration::from_secs(30), "partitions still hold {most} files\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (i, creds) in tenants.iter().enumerate() {
        let reader = Client::new(&cluster.gateways[i % 2].url, &creds.read_token);
        assert_eq!(
            cluster.count(&reader, "SELECT count(*) FROM events").await,
            40 + i as i64,
            "tenant {i} after compaction"
        );
    }
}

/// PostgreSQL restarted under a running cluster: every role notices (`/ready` names the
/// catalog), reconnects by itself, and no acknowledged event is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_reconnects_after_postgres_restarts() {
    let pg = tokio::task::block_in_place(PgCluster::start);
    let cluster = Cluster::start_on(&pg.url(), None, 1, 1, 1).await;
    let admin = cluster.admin();
    let creds = admin.create_tenant("pg-restart").await.expect("tenant");
    let writer = Client::new(&cluster.gateways[0].url, &creds.write_key);
    let reader = Client::new(&cluster.gateways[0].url, &creds.read_token);
    writer.ingest(pageviews("before", 30)).await.expect("ingest");
    assert_eq!(cluster.count(&reader, "SELECT count(*) FROM events").await, 30);

    tokio::task::block_in_place(|| pg.stop());
    let everyone = || {
        cluster
            .ingesters
            .iter()
            .chain(&cluster.queriers)
            .chain(std::iter::once(&cluster.compactor))
            .chain(&cluster.gateways)
    };
    for node in everyone() {
        let waited = std::time::Instant::now();
        loop {
            let (status, body) = node.get("/ready").await;
            if status == 503 {
                assert!(body.contains("catalog unreachable"), "{body}");
                break;
            }
            assert!(waited.elapsed() < Duration::from_secs(15), "{} stayed ready without its catalog", node.url);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    tokio::task::block_in_place(|| pg.restart());
    for node in everyone() {
        let waited = std::time::Instant::now();
        while node.get("/ready").await.0 != 200 {
            assert!(waited.elapsed() < Duration::from_secs(30), "{} did not reconnect\n{}", node.url, cluster.logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Leases lapsed while the catalog was down; until nodes renew them, gateways answer 503 with
    // Retry-After, and clients retry.
    let waited = std::time::Instant::now();
    while let Err(e) = writer.ingest(pageviews("after", 20)).await {
        assert!(waited.elapsed() < Duration::from_secs(15), "ingest after the restart: {e}\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    admin.flush().await.expect("persist after the restart");
    assert_eq!(cluster.count(&reader, "SELECT count(*) FROM raw_events").await, 50);
}
