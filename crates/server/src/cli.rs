//! Command-line flags. Every flag also reads an `HOURGLASS_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use bytesize::ByteSize;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Hourglass: a columnar time-series database for web and app analytics.
#[derive(Debug, Parser)]
#[command(name = "hourglass", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs every role in one process on embedded defaults (local directory, SQLite catalog).
    Serve(Box<ServeArgs>),
    /// Runs `serve` with a demo tenant filled with a month of generated web traffic (and live
    /// visits while it runs); prints the dashboard's address and the tenant's read token.
    Demo(Box<DemoServeArgs>),
    /// Runs the ingester role: validates, buffers and persists events; serves its buffer to
    /// queriers over Arrow Flight.
    Ingester(Box<IngesterArgs>),
    /// Runs the querier role: answers SQL from Parquet files and the ingesters' buffers.
    Querier(Box<QuerierArgs>),
    /// Runs the compactor role: merges small files, drops duplicate events, deletes garbage.
    Compactor(Box<CompactorArgs>),
    /// Runs the gateway role: authenticates clients and routes ingest by tenant to ingesters
    /// and queries to queriers.
    Gateway(Box<GatewayArgs>),
    /// Manages tenants on a running server.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Runs SQL against a running server and prints the result.
    Query(QueryArgs),
    /// Imports a CSV, NDJSON or Parquet file as one of the tenant's tables (with its write
    /// key), replacing an earlier import of the same name.
    Import(ImportArgs),
    /// Rebuilds `events` (and so sessions and rollups) from the raw events of a range, with a
    /// processor version, while ingest and queries go on; shows its progress until it ends
    /// (admin token). Also lists, follows and cancels backfills.
    Backfill(BackfillArgs),
    /// Shows which processor versions derived which ranges of `events` (admin token).
    ProcessorVersions {
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// The derived table to rebuild.
    #[arg(long, default_value = "events")]
    pub table: String,
    /// Only this tenant's rows (default: every tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// First day (YYYY-MM-DD, UTC) or hour (an RFC 3339 time) to rebuild.
    #[arg(long, required_unless_present_any = ["list", "watch", "cancel"])]
    pub from: Option<String>,
    /// Last day (YYYY-MM-DD, UTC, included) or hour (an RFC 3339 time, its hour included).
    #[arg(long, required_unless_present_any = ["list", "watch", "cancel"])]
    pub to: Option<String>,
    /// The processor version to rebuild with (default: the newest the server has).
    #[arg(long, value_parser = processor_version)]
    pub processor_version: Option<i32>,
    /// Queue the backfill and print it, without following its progress.
    #[arg(long)]
    pub detach: bool,
    /// List the newest backfills instead.
    #[arg(long, conflicts_with_all = ["watch", "cancel", "from", "to", "tenant"])]
    pub list: bool,
    /// Follow the progress of backfill ID instead (to its end).
    #[arg(long, value_name = "ID", conflicts_with_all = ["cancel", "from", "to", "tenant"])]
    pub watch: Option<i64>,
    /// Cancel backfill ID instead; partitions it already rebuilt stay rebuilt.
    #[arg(long, value_name = "ID", conflicts_with_all = ["from", "to", "tenant"])]
    pub cancel: Option<i64>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to import.
    pub file: std::path::PathBuf,
    /// The table's name in SQL.
    #[arg(long)]
    pub table: String,
    /// The file's format; by default from its extension (.csv, .tsv, .ndjson, .jsonl, .json,
    /// .parquet).
    #[arg(long, value_enum)]
    pub format: Option<ImportFormat>,
    /// The table's columns as name:type pairs (string, int64, int32, float64, boolean,
    /// timestamp, date), instead of inferring them: `--schema email:string,seats:int64`.
    #[arg(long)]
    pub schema: Option<String>,
    /// CSV: the first line is data, not column names.
    #[arg(long)]
    pub no_header: bool,
    /// CSV: the field delimiter (one character, or `tab`).
    #[arg(long)]
    pub delimiter: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ImportFormat {
    /// Comma-separated values.
    Csv,
    /// Tab-separated values.
    Tsv,
    /// One JSON object per line.
    Ndjson,
    /// Apache Parquet.
    Parquet,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Creates a tenant and prints its write key, read token and site key as JSON.
    Create {
        /// Tenant id: 1-64 characters of a-z, 0-9, '-' and '_'.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Prints a tenant's settings as JSON, after changing those given as options.
    Settings(TenantSettingsArgs),
}

/// `hourglass tenant settings`: each option given changes that setting; with none, the
/// settings are only printed.
#[derive(Debug, Args)]
pub struct TenantSettingsArgs {
    /// Tenant id.
    pub id: String,
    /// Session timeout: a visitor's next event more than this long after the previous one
    /// starts a new session (60s to 7h55m; for example 30m, 1h30m, 900s).
    #[arg(long, value_parser = parse_duration_ms)]
    pub session_timeout: Option<i64>,
    /// Whether a `user_id` identifies the visitor (true or false).
    #[arg(long)]
    pub identified_mode: Option<bool>,
    /// Hostnames pages may send browser events from, comma-separated (`*.example.com`
    /// allows subdomains); an empty value allows every hostname.
    #[arg(long)]
    pub allowed_hostnames: Option<String>,
    /// Event names that count as conversions, comma-separated.
    #[arg(long)]
    pub key_events: Option<String>,
    /// ISO 4217 code revenue is reported in.
    #[arg(long)]
    pub reporting_currency: Option<String>,
    /// IANA time zone reports use when a request names none (for example Europe/Berlin).
    #[arg(long)]
    pub timezone: Option<String>,
    /// Days of raw events kept for this tenant (1 to 36500), or `default` for the
    /// deployment's.
    #[arg(long, value_parser = parse_retention_days)]
    pub retention_raw_days: Option<RetentionChoice>,
    /// Days of events (and of the sessions and rollups derived from them) kept for this
    /// tenant (1 to 36500), or `default` for the deployment's.
    #[arg(long, value_parser = parse_retention_days)]
    pub retention_events_days: Option<RetentionChoice>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// A tenant's retention for one table as the CLI takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionChoice {
    /// This many days.
    Days(u32),
    /// The deployment's default.
    Default,
}

/// Parses a number of days, or `default`; the server checks the range.
fn parse_retention_days(text: &str) -> Result<RetentionChoice, String> {
    match text.trim() {
        "default" => Ok(RetentionChoice::Default),
        days => days.parse().map(RetentionChoice::Days).map_err(|_| format!("{text:?} is not a number of days")),
    }
}

/// Parses `1h30m`, `30m`, `900s` or `1500ms` into milliseconds.
fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let mut total: i64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let number: i64 =
            rest[..digits].parse().map_err(|_| format!("{text:?} is not a duration like 30m or 1h30m"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit_ms = match &rest[..unit_len] {
            "h" => 3_600_000,
            "m" | "min" => 60_000,
            "s" => 1_000,
            "ms" => 1,
            other => return Err(format!("unknown unit {other:?} in {text:?}: use h, m, s or ms")),
        };
        rest = &rest[unit_len..];
        total = number.checked_mul(unit_ms).and_then(|ms| total.checked_add(ms)).ok_or("duration too long")?;
    }
    Ok(total)
}

/// Where the CLI finds the server.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Base URL of the server's HTTP API.
    #[arg(long, env = "HOURGLASS_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Token to authenticate with (the admin token for tenant commands, a read token for
    /// queries, the write key for imports).
    #[arg(long, env = "HOURGLASS_TOKEN", hide_env_values = true)]
    pub token: String,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SQL statement.
    pub sql: String,
    /// Output format.
    #[arg(long, env = "HOURGLASS_FORMAT", value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    /// An aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of objects.
    Json,
}

/// Flags every role shares: where it listens, where the state lives, how it joins the cluster.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Address of the HTTP API (ingest, query, admin, health, metrics). Port 0 picks a free port.
    #[arg(long, env = "HOURGLASS_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Directory for the embedded catalog (catalog.db) and the local object store (objects/).
    #[arg(long, env = "HOURGLASS_DATA_DIR", default_value = "./hourglass-data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Admin token to accept (added on start). Without it, `serve`'s first start creates one
    /// and prints it once.
    #[arg(long, env = "HOURGLASS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Log output format.
    #[arg(long, env = "HOURGLASS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// This node's id in system.nodes (default: ROLE-HOSTNAME-PORT; an ingester's id is its
    /// --ingester-id).
    #[arg(long, env = "HOURGLASS_NODE_ID")]
    pub node_id: Option<String>,
    /// Host name or IP other nodes use to reach this one (default: the bound IP, or the
    /// machine's host name when bound to 0.0.0.0).
    #[arg(long, env = "HOURGLASS_ADVERTISE_HOST")]
    pub advertise_host: Option<String>,
    /// Secret shared by every node of a cluster; authenticates internal calls (queriers
    /// reading ingester buffers). Required by the ingester and querier roles.
    #[arg(long, env = "HOURGLASS_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// How long a node counts as alive after its last heartbeat. A restarted ingester waits for
    /// its previous incarnation's lease to lapse before it takes its id (and WAL) over.
    #[arg(long, env = "HOURGLASS_NODE_LEASE", default_value = "10s")]
    pub node_lease: humantime::Duration,
    /// Header a proxy in front of Hourglass sets to the client's address (first entry of an
    /// X-Forwarded-For style list), for browser and Measurement Protocol events. Only set it
    /// when that proxy overwrites the header: clients can send any value.
    #[arg(long, env = "HOURGLASS_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<axum::http::HeaderName>,
    /// Header a CDN sets to the client's ISO 3166 country, such as CF-IPCountry, for browser
    /// and Measurement Protocol events that carry no country.
    #[arg(long, env = "HOURGLASS_COUNTRY_HEADER")]
    pub country_header: Option<axum::http::HeaderName>,
}

/// Where a node with a querier serves SQL clients.
#[derive(Debug, Args)]
pub struct SqlPortArgs {
    /// Address of the gRPC service: Arrow Flight SQL. Port 0 picks a free port.
    #[arg(long, env = "HOURGLASS_GRPC_ADDR", default_value = "127.0.0.1:8082")]
    pub grpc_addr: SocketAddr,
    /// Address of the PostgreSQL wire protocol (psql, psycopg, JDBC, Grafana). Port 0 picks a
    /// free port.
    #[arg(long, env = "HOURGLASS_PG_ADDR", default_value = "127.0.0.1:5433")]
    pub pg_addr: SocketAddr,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub sql: SqlPortArgs,
    #[command(flatten)]
    pub ingest: IngestArgs,
    #[command(flatten)]
    pub query: QueryEngineArgs,
    #[command(flatten)]
    pub compact: CompactArgs,
}

/// `hourglass demo`: the flags of `serve` and of the demo traffic.
#[derive(Debug, Args)]
pub struct DemoServeArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(flatten)]
    pub demo: DemoArgs,
}

/// The demo tenant's generated traffic.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Days of past traffic to generate (at most 30: the events API takes events up to 31
    /// days old).
    #[arg(long, env = "HOURGLASS_DEMO_DAYS", default_value_t = 30)]
    pub demo_days: u32,
    /// Average visits a day (weekends are quieter, the month grows by a quarter).
    #[arg(long, env = "HOURGLASS_DEMO_VISITS_PER_DAY", default_value_t = 1500)]
    pub demo_visits_per_day: u32,
    /// Whether live visits keep arriving while the demo runs (the dashboard's "visitors now").
    #[arg(long, env = "HOURGLASS_DEMO_LIVE", default_value_t = true, action = clap::ArgAction::Set)]
    pub demo_live: bool,
    /// Seed of the generated traffic: the same seed makes the same visits.
    #[arg(long, env = "HOURGLASS_DEMO_SEED", default_value_t = 2026)]
    pub demo_seed: u64,
}

#[derive(Debug, Args)]
pub struct IngesterArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub ingest: IngestArgs,
    /// Address of the gRPC (Arrow Flight) service queriers read this ingester's buffer from.
    #[arg(long, env = "HOURGLASS_GRPC_ADDR", default_value = "127.0.0.1:8082")]
    pub grpc_addr: SocketAddr,
}

#[derive(Debug, Args)]
pub struct QuerierArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub sql: SqlPortArgs,
    #[command(flatten)]
    pub query: QueryEngineArgs,
}

#[derive(Debug, Args)]
pub struct CompactorArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub compact: CompactArgs,
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub forward: ForwardArgs,
}

/// Limits of the gateway role's forwarding.
#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// Largest ingest request body forwarded to an ingester.
    #[arg(long, env = "HOURGLASS_MAX_BODY_BYTES", default_value = "16MiB")]
    pub max_body_bytes: ByteSize,
    /// Ingest requests forwarded at once; more get 429 with Retry-After.
    #[arg(long, env = "HOURGLASS_MAX_CONCURRENT_INGEST", default_value_t = 256)]
    pub max_concurrent_ingest: usize,
    /// Queries forwarded at once; more get 429 with Retry-After.
    #[arg(long, env = "HOURGLASS_MAX_CONCURRENT_QUERIES", default_value_t = 64)]
    pub max_concurrent_queries: usize,
}

/// Compaction settings.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// How often the compactor looks for partitions to merge.
    #[arg(long, env = "HOURGLASS_COMPACT_INTERVAL", default_value = "30s")]
    pub compact_interval: humantime::Duration,
    /// A partition whose hour ended this long ago is merged once it holds two files.
    #[arg(long, env = "HOURGLASS_COMPACT_MIN_AGE", default_value = "10m")]
    pub compact_min_age: humantime::Duration,
    /// A younger partition is merged once it holds this many files.
    #[arg(long, env = "HOURGLASS_COMPACT_MAX_OPEN_FILES", default_value_t = 16)]
    pub compact_max_open_files: usize,
    /// Most Parquet bytes read for one merge.
    #[arg(long, env = "HOURGLASS_COMPACT_MAX_INPUT_BYTES", default_value = "512MiB")]
    pub compact_max_input_bytes: ByteSize,
    /// Memory one merge may hold (input row groups and batches, the output row group): a
    /// larger partition is merged as a stream, in several passes if its files' row groups do
    /// not fit at once.
    #[arg(long, env = "HOURGLASS_COMPACT_MEMORY", default_value = "256MiB")]
    pub compact_memory: ByteSize,
    /// Whether the hours of a settled UTC day of `events` and `raw_events` are merged into one
    /// object per shard (each hour keeps row groups of its own), so long ranges open fewer
    /// objects.
    #[arg(long, env = "HOURGLASS_COMPACT_MERGE_DAYS", default_value_t = true, action = clap::ArgAction::Set)]
    pub compact_merge_days: bool,
    /// A day's hours are merged once the day (UTC) ended this long ago and none of its files
    /// changed for as long.
    #[arg(long, env = "HOURGLASS_COMPACT_MERGE_AFTER", default_value = "2h")]
    pub compact_merge_after: humantime::Duration,
    /// A day's hours are merged only when their files are at most this large together.
    #[arg(long, env = "HOURGLASS_COMPACT_MAX_DAY_BYTES", default_value = "256MiB")]
    pub compact_max_day_bytes: ByteSize,
    /// How long replaced files stay readable before they are deleted.
    #[arg(long, env = "HOURGLASS_GARBAGE_GRACE", default_value = "10m")]
    pub garbage_grace: humantime::Duration,
    /// An object in storage that the catalog does not know (left by a crash between writing
    /// and committing it) is deleted as garbage once it is this old. Compactors look for such
    /// objects once an hour.
    #[arg(long, env = "HOURGLASS_ORPHAN_AGE", default_value = "1d")]
    pub orphan_age: humantime::Duration,
    /// How often the rollup job looks for hours to roll up (new, or changed by late events).
    #[arg(long, env = "HOURGLASS_ROLLUP_INTERVAL", default_value = "10s")]
    pub rollup_interval: humantime::Duration,
    /// An hour is rolled up once it ended this long ago; reports read younger hours from
    /// events.
    #[arg(long, env = "HOURGLASS_ROLLUP_SETTLE", default_value = "30m")]
    pub rollup_settle: humantime::Duration,
    /// Whether a settled UTC day's rollup hours are merged into one file, so a report over a
    /// month opens 30 rollup objects rather than 720.
    #[arg(long, env = "HOURGLASS_ROLLUP_MERGE_DAYS", default_value_t = true, action = clap::ArgAction::Set)]
    pub rollup_merge_days: bool,
    /// A day's rollup hours are merged once the day (UTC) ended this long ago.
    #[arg(long, env = "HOURGLASS_ROLLUP_MERGE_AFTER", default_value = "2h")]
    pub rollup_merge_after: humantime::Duration,
    /// How often the compactor looks for a queued backfill.
    #[arg(long, env = "HOURGLASS_BACKFILL_INTERVAL", default_value = "5s")]
    pub backfill_interval: humantime::Duration,
    /// A running backfill whose compactor reported no progress for this long is taken over
    /// by another compactor (a restarted compactor takes its own back at once).
    #[arg(long, env = "HOURGLASS_BACKFILL_LEASE", default_value = "2m")]
    pub backfill_lease: humantime::Duration,
    /// Days of raw events kept for tenants that set no retention of their own (unset:
    /// forever). Backfills rebuild only from raw events still kept.
    #[arg(long, env = "HOURGLASS_RETENTION_RAW_DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub retention_raw_days: Option<u32>,
    /// Days of events, and of the sessions and rollups derived from them, kept for tenants
    /// that set no retention of their own (unset: forever).
    #[arg(long, env = "HOURGLASS_RETENTION_EVENTS_DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub retention_events_days: Option<u32>,
    /// How often the compactor removes data past its retention.
    #[arg(long, env = "HOURGLASS_RETENTION_INTERVAL", default_value = "10m")]
    pub retention_interval: humantime::Duration,
}

/// Where the persistent state lives: the object store and the catalog.
#[derive(Debug, Args)]
pub struct StorageArgs {
    /// Object store for WAL segments and Parquet files: a local directory under --data-dir,
    /// an S3-compatible service (--bucket, --endpoint, --region; credentials from the standard
    /// AWS_* variables), or memory (lost at exit; for tests).
    #[arg(long, env = "HOURGLASS_OBJECT_STORE", value_enum, default_value_t = ObjectStoreKind::Local)]
    pub object_store: ObjectStoreKind,
    /// S3 bucket (required with --object-store s3).
    #[arg(long, env = "HOURGLASS_BUCKET")]
    pub bucket: Option<String>,
    /// S3 endpoint URL, for services other than AWS (MinIO, Garage, Ceph...); requests are
    /// path-style.
    #[arg(long, env = "HOURGLASS_ENDPOINT")]
    pub endpoint: Option<String>,
    /// S3 region (default: AWS_REGION, else us-east-1).
    #[arg(long, env = "HOURGLASS_REGION")]
    pub region: Option<String>,
    /// Whether the S3 service honours conditional PUT (If-None-Match). Set false for stores
    /// that ignore it, such as Garage; ingester ids must then be unique, which the catalog's
    /// node leases enforce.
    #[arg(long, env = "HOURGLASS_S3_CONDITIONAL_PUT", default_value_t = true, action = clap::ArgAction::Set)]
    pub s3_conditional_put: bool,
    /// How long the object store may keep retrying one operation before it is reported
    /// unavailable (ingest then answers 503 with Retry-After).
    #[arg(long, env = "HOURGLASS_OBJECT_STORE_RETRY_TIMEOUT", default_value = "10s")]
    pub object_store_retry_timeout: humantime::Duration,
    /// Catalog database: sqlite://PATH or postgres://USER:PASSWORD@HOST/DB (default: SQLite in
    /// --data-dir). A cluster's nodes share one PostgreSQL catalog.
    #[arg(long, env = "HOURGLASS_CATALOG", hide_env_values = true)]
    pub catalog: Option<String>,
    /// Most connections to the catalog database.
    #[arg(long, env = "HOURGLASS_CATALOG_MAX_CONNECTIONS", default_value_t = 10)]
    pub catalog_max_connections: u32,
}

/// Object store kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ObjectStoreKind {
    /// A directory under --data-dir, every write synced to disk.
    Local,
    /// An S3-compatible service.
    S3,
    /// Process memory: everything is lost at exit.
    Memory,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// This ingester's id: names its WAL and its position in the catalog. Never share one
    /// between two live processes.
    #[arg(long, env = "HOURGLASS_INGESTER_ID", default_value = "ingester-0")]
    pub ingester_id: String,
    /// Number of shards tenants are hashed over; each (table, hour, shard) is one partition.
    #[arg(long, env = "HOURGLASS_SHARDS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub shards: u32,
    /// Persist the buffer once it holds this much.
    #[arg(long, env = "HOURGLASS_PERSIST_MAX_BYTES", default_value = "256MiB")]
    pub persist_max_bytes: ByteSize,
    /// Persist the buffer once its oldest event has waited this long.
    #[arg(long, env = "HOURGLASS_PERSIST_MAX_AGE", default_value = "5m")]
    pub persist_max_age: humantime::Duration,
    /// Refuse ingest with 429 while the buffer holds more than this.
    #[arg(long, env = "HOURGLASS_MAX_BUFFER_BYTES", default_value = "1GiB")]
    pub max_buffer_bytes: ByteSize,
    /// Largest ingest request body, as sent.
    #[arg(long, env = "HOURGLASS_MAX_BODY_BYTES", default_value = "16MiB")]
    pub max_body_bytes: ByteSize,
    /// Largest ingest body after gzip decompression.
    #[arg(long, env = "HOURGLASS_MAX_DECOMPRESSED_BYTES", default_value = "64MiB")]
    pub max_decompressed_bytes: ByteSize,
    /// Ingest requests handled at once; more get 429 with Retry-After.
    #[arg(long, env = "HOURGLASS_MAX_CONCURRENT_INGEST", default_value_t = 64)]
    pub max_concurrent_ingest: usize,
    /// Oldest event timestamp accepted, as an age; older events are rejected (raise it for
    /// backfills).
    #[arg(long, env = "HOURGLASS_MAX_PAST", default_value = "31days")]
    pub max_past: humantime::Duration,
    /// Most events in one ingest request.
    #[arg(long, env = "HOURGLASS_MAX_EVENTS_PER_REQUEST", default_value_t = 10_000)]
    pub max_events_per_request: usize,
    /// Longest string field or property value.
    #[arg(long, env = "HOURGLASS_MAX_STRING_BYTES", default_value = "8KiB")]
    pub max_string_bytes: ByteSize,
    /// Most entries in an event's props.
    #[arg(long, env = "HOURGLASS_MAX_PROPS", default_value_t = 64)]
    pub max_props: usize,
    /// How far ahead of the server clock an event timestamp may be.
    #[arg(long, env = "HOURGLASS_MAX_FUTURE", default_value = "1h")]
    pub max_future: humantime::Duration,
    /// A MaxMind-format GeoIP database (such as GeoLite2-Country.mmdb) that gives the country
    /// of events that carry an address but no country. Read once at start; restart to load a
    /// newer file.
    #[arg(long, env = "HOURGLASS_GEOIP_DATABASE")]
    pub geoip_database: Option<std::path::PathBuf>,
    /// The processor version new events are derived with: the newest this build has by
    /// default. Pin an older supported version while a new one rolls out; move history with
    /// `hourglass backfill`.
    #[arg(long, env = "HOURGLASS_PROCESSOR_VERSION", default_value_t = hourglass_processor::PROCESSOR_VERSION,
          value_parser = processor_version)]
    pub processor_version: i32,
}

/// A processor version this build can run.
pub fn processor_version(text: &str) -> Result<i32, String> {
    let version: i32 = text.trim().parse().map_err(|_| format!("{text:?} is not a version number"))?;
    hourglass_processor::supported(version).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct QueryEngineArgs {
    /// Memory all running queries may use together.
    #[arg(long, env = "HOURGLASS_QUERY_MEMORY", default_value = "2GiB")]
    pub query_memory: ByteSize,
    /// Memory one query may use; sorts and grouped aggregations spill to disk past it, other
    /// queries fail with `query_memory_limit`.
    #[arg(long, env = "HOURGLASS_QUERY_MEMORY_PER_QUERY", default_value = "512MiB")]
    pub query_memory_per_query: ByteSize,
    /// Disk that spilling queries may fill together (in the system's temporary directory).
    #[arg(long, env = "HOURGLASS_QUERY_SPILL_LIMIT", default_value = "16GiB")]
    pub query_spill_limit: ByteSize,
    /// Largest result one query may return.
    #[arg(long, env = "HOURGLASS_QUERY_MAX_RESULT_BYTES", default_value = "256MiB")]
    pub query_max_result_bytes: ByteSize,
    /// Most rows one query may return.
    #[arg(long, env = "HOURGLASS_QUERY_MAX_RESULT_ROWS", default_value_t = 10_000_000)]
    pub query_max_result_rows: usize,
    /// Queries running at once, all tenants together; more wait their tenant's turn.
    #[arg(long, env = "HOURGLASS_MAX_CONCURRENT_QUERIES", default_value_t = 16)]
    pub max_concurrent_queries: usize,
    /// Queries of one tenant running at once; more wait in the tenant's queue.
    #[arg(long, env = "HOURGLASS_MAX_CONCURRENT_QUERIES_PER_TENANT", default_value_t = 4)]
    pub max_concurrent_queries_per_tenant: usize,
    /// Queries of one tenant waiting for a slot; more get `too_many_queries` (HTTP 429).
    #[arg(long, env = "HOURGLASS_MAX_QUEUED_QUERIES_PER_TENANT", default_value_t = 32)]
    pub max_queued_queries_per_tenant: usize,
    /// Longest a query waits for a slot before it gets `too_many_queries`.
    #[arg(long, env = "HOURGLASS_QUERY_QUEUE_TIMEOUT", default_value = "10s")]
    pub query_queue_timeout: humantime::Duration,
    /// Longest a query may run; past it the query is cancelled and answered 504.
    #[arg(long, env = "HOURGLASS_QUERY_TIMEOUT", default_value = "60s")]
    pub query_timeout: humantime::Duration,
    /// Whether reports read rollups where they can; false answers every report from events
    /// (slower, the same numbers; for comparisons and diagnosis).
    #[arg(long, env = "HOURGLASS_REPORT_ROLLUPS", default_value_t = true, action = clap::ArgAction::Set)]
    pub report_rollups: bool,
    /// Largest file `POST /api/v1/tables/{name}/import` accepts.
    #[arg(long, env = "HOURGLASS_MAX_IMPORT_BYTES", default_value = "1GiB")]
    pub max_import_bytes: ByteSize,
    /// Memory for cached Parquet footers and page indexes.
    #[arg(long, env = "HOURGLASS_QUERY_METADATA_CACHE", default_value = "128MiB")]
    pub query_metadata_cache: ByteSize,
    /// Memory for cached byte ranges of Parquet files (the pages recent queries read); 0 turns
    /// it off.
    #[arg(long, env = "HOURGLASS_QUERY_OBJECT_CACHE", default_value = "256MiB")]
    pub query_object_cache: ByteSize,
    /// Memory for cached report responses (validated before every use).
    #[arg(long, env = "HOURGLASS_REPORT_CACHE", default_value = "64MiB")]
    pub report_cache: ByteSize,
    /// Memory for cached rollup aggregates of reports.
    #[arg(long, env = "HOURGLASS_REPORT_ROLLUP_CACHE", default_value = "256MiB")]
    pub report_rollup_cache: ByteSize,
    /// Threads of the query runtime (0: one per core).
    #[arg(long, env = "HOURGLASS_QUERY_THREADS", default_value_t = 0)]
    pub query_threads: usize,
}
