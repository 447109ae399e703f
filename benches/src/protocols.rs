//! The protocols compared in one run on one `hourglass serve`:
//!
//! - bulk ingest of the same generated events as HTTP NDJSON (16 clients x 1000 events), Arrow
//!   Flight `DoPut` (batches of 32 768 rows) and the `hourglass.ingest.v1` streaming RPC
//!   (requests of 5000 events), each answered only once durable;
//! - a 1M-row result and small queries over HTTP JSON, HTTP Arrow, Flight SQL and the
//!   PostgreSQL wire protocol, each with rows in the client's hands (JSON parsed, Arrow
//!   decoded, PostgreSQL rows read).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, Int32Array, MapBuilder, RecordBatch, StringArray, StringBuilder, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::{FlightClient, FlightDescriptor};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use hourglass_client::{Client, QueryFormat};
use hourglass_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use hourglass_proto::ingest::v1::{Event, IngestRequest, event};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::{Connection, Row};
use tonic::transport::Channel;

use crate::data::{AGENTS, PATHS, REFERRERS};
use crate::median;
use crate::server::Server;

const ARROW_BATCH_ROWS: usize = 32_768;
const RPC_REQUEST_EVENTS: usize = 5000;
const NDJSON_REQUEST_EVENTS: usize = 1000;
const NDJSON_CLIENTS: usize = 16;

/// Generated events as columns, rendered for each protocol before any clock starts.
struct Events {
    ids: Vec<String>,
    timestamps: Vec<i64>,
    names: Vec<&'static str>,
    urls: Vec<String>,
    referrers: Vec<&'static str>,
    agents: Vec<&'static str>,
    clients: Vec<String>,
    screens: Vec<i32>,
    countries: Vec<&'static str>,
    plans: Vec<&'static str>,
}

impl Events {
    /// `n` events with ids `{run}-{i}`, over the last 24 hours.
    fn generate(run: usize, n: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(run as u64);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut e = Events {
            ids: Vec::with_capacity(n),
            timestamps: Vec::with_capacity(n),
            names: Vec::with_capacity(n),
            urls: Vec::with_capacity(n),
            referrers: Vec::with_capacity(n),
            agents: Vec::with_capacity(n),
            clients: Vec::with_capacity(n),
            screens: Vec::with_capacity(n),
            countries: Vec::with_capacity(n),
            plans: Vec::with_capacity(n),
        };
        for i in 0..n {
            e.ids.push(format!("{run}-{i}"));
            e.timestamps.push(now - rng.random_range(0..24 * 3_600_000i64));
            e.names.push(if rng.random_range(0..100) < 80 { "pageview" } else { "click" });
            e.urls.push(format!(
                "https://shop.example{}?utm_source=s{}",
                PATHS[rng.random_range(0..PATHS.len())],
                rng.random_range(0..4)
            ));
            e.referrers.push(REFERRERS[rng.random_range(0..REFERRERS.len())]);
            e.agents.push(AGENTS[rng.random_range(0..AGENTS.len())]);
            e.clients.push(format!("c{}", rng.random_range(0..10_000)));
            e.screens.push([390, 1280, 1920][rng.random_range(0..3)]);
            e.countries.push(["US", "DE", "FR", "JP"][rng.random_range(0..4)]);
            e.plans.push(["free", "pro"][rng.random_range(0..2)]);
        }
        e
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    fn ndjson(&self, range: std::ops::Range<usize>) -> Bytes {
        let mut body = String::with_capacity(range.len() * 400);
        for i in range {
            let line = serde_json::json!({
                "event_id": self.ids[i],
                "name": self.names[i],
                "timestamp": self.timestamps[i],
                "url": self.urls[i],
                "referrer": self.referrers[i],
                "user_agent": self.agents[i],
                "client_id": self.clients[i],
                "screen_width": self.screens[i],
                "country": self.countries[i],
                "props": {"plan": self.plans[i]},
            });
            body.push_str(&line.to_string());
            body.push('\n');
        }
        Bytes::from(body)
    }

    fn batch(&self, range: std::ops::Range<usize>) -> anyhow::Result<RecordBatch> {
        let strings = |v: &[String]| Arc::new(StringArray::from_iter_values(v)) as ArrayRef;
        let statics = |v: &[&str]| Arc::new(StringArray::from_iter_values(v)) as ArrayRef;
        let r = range.clone();
        let mut props = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        for plan in &self.plans[r.clone()] {
            props.keys().append_value("plan");
            props.values().append_value(plan);
            props.append(true)?;
        }
        let props = Arc::new(props.finish()) as ArrayRef;
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("event_id", strings(&self.ids[r.clone()])),
            ("timestamp", Arc::new(TimestampMillisecondArray::from(self.timestamps[r.clone()].to_vec()))),
            ("name", statics(&self.names[r.clone()])),
            ("url", strings(&self.urls[r.clone()])),
            ("referrer", statics(&self.referrers[r.clone()])),
            ("user_agent", statics(&self.agents[r.clone()])),
            ("client_id", strings(&self.clients[r.clone()])),
            ("screen_width", Arc::new(Int32Array::from(self.screens[r.clone()].to_vec()))),
            ("country", statics(&self.countries[r.clone()])),
            ("props", props),
        ];
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, a)| match a.data_type() {
                DataType::Timestamp(..) => Field::new(*name, DataType::Timestamp(TimeUnit::Millisecond, None), false),
                t => Field::new(*name, t.clone(), true),
            })
            .collect();
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, a)| a).collect())?)
    }

    fn request(&self, range: std::ops::Range<usize>) -> IngestRequest {
        let events = range
            .map(|i| Event {
                event_id: Some(self.ids[i].clone()),
                timestamp: Some(event::Timestamp::TimestampMs(self.timestamps[i])),
                name: self.names[i].to_string(),
                url: Some(self.urls[i].clone()),
                referrer: Some(self.referrers[i].to_string()),
                user_agent: Some(self.agents[i].to_string()),
                client_id: Some(self.clients[i].clone()),
                screen_width: Some(i64::from(self.screens[i])),
                country: Some(self.countries[i].to_string()),
                props: [("plan".to_string(), self.plans[i].to_string())].into(),
                ..Event::default()
            })
            .collect();
        IngestRequest { events }
    }
}

fn chunks(n: usize, size: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..n).step_by(size).map(move |start| start..(start + size).min(n))
}

async fn channel(grpc_url: &str) -> anyhow::Result<Channel> {
    let url = grpc_url.replace("grpc://", "http://");
    Ok(Channel::from_shared(url)?.connect().await?)
}

async fn http_ndjson(writer: &Client, events: &Events) -> anyhow::Result<Duration> {
    let bodies: Vec<Bytes> = chunks(events.len(), NDJSON_REQUEST_EVENTS).map(|r| events.ndjson(r)).collect();
    let bodies = Arc::new(bodies);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..NDJSON_CLIENTS {
        let bodies = Arc::clone(&bodies);
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            for body in bodies.iter().skip(c).step_by(NDJSON_CLIENTS) {
                let response = writer.ingest(body.clone()).await?;
                anyhow::ensure!(response.rejected == 0, "rejected events: {response:?}");
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

async fn flight_do_put(grpc_url: &str, token: &str, events: &Events, streams: usize) -> anyhow::Result<Duration> {
    let batches: Vec<RecordBatch> =
        chunks(events.len(), ARROW_BATCH_ROWS).map(|r| events.batch(r)).collect::<anyhow::Result<_>>()?;
    let batches = Arc::new(batches);
    let mut clients = Vec::new();
    for _ in 0..streams {
        let mut client = FlightClient::new(channel(grpc_url).await?);
        client.add_header("authorization", &format!("Bearer {token}"))?;
        clients.push(client);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (s, mut client) in clients.into_iter().enumerate() {
        let batches = Arc::clone(&batches);
        tasks.push(tokio::spawn(async move {
            let mine: Vec<RecordBatch> = batches.iter().skip(s).step_by(streams).cloned().collect();
            let expected = mine.len();
            let rows: usize = mine.iter().map(|b| b.num_rows()).sum();
            // arrow-rs splits batches into 2 MiB messages by default; keep each whole (one
            // batch, one WAL commit, one ack) under the server's 16 MiB message limit.
            let data = FlightDataEncoderBuilder::new()
                .with_max_flight_data_size(12 << 20)
                .with_flight_descriptor(Some(FlightDescriptor::new_path(vec!["events".to_string()])))
                .build(stream::iter(mine.into_iter().map(Ok)));
            let acks: Vec<_> = client.do_put(data).await?.try_collect().await?;
            let mut accepted = 0;
            for ack in &acks {
                let ack: serde_json::Value = serde_json::from_slice(&ack.app_metadata)?;
                anyhow::ensure!(ack["rejected"] == 0, "rejected rows: {ack}");
                accepted += ack["accepted"].as_u64().unwrap_or(0) as usize;
            }
            anyhow::ensure!(acks.len() == expected, "{} acks for {expected} batches", acks.len());
            anyhow::ensure!(accepted == rows, "{accepted} rows acknowledged of {rows}");
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

async fn streaming_rpc(grpc_url: &str, token: &str, events: &Events) -> anyhow::Result<Duration> {
    let requests: Vec<IngestRequest> = chunks(events.len(), RPC_REQUEST_EVENTS).map(|r| events.request(r)).collect();
    let mut client = IngestServiceClient::new(channel(grpc_url).await?).max_decoding_message_size(64 << 20);
    let mut request = tonic::Request::new(stream::iter(requests));
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse()?);
    let started = Instant::now();
    let response = client.ingest(request).await?.into_inner();
    let elapsed = started.elapsed();
    anyhow::ensure!(response.rejected == 0 && response.accepted as usize == events.len(), "{response:?}");
    Ok(elapsed)
}

/// Bulk ingest of `n` events per run, `runs` runs per protocol (protocols interleaved, so
/// that a noisy neighbour hurts them alike); prints a Markdown table.
pub(crate) async fn ingest(server: &Server, writer: &Client, n: usize, runs: usize) -> anyhow::Result<()> {
    let grpc = server.grpc_url.as_deref().ok_or_else(|| anyhow::anyhow!("the server has no gRPC address"))?;
    let token = writer.token().to_string();
    let names = [
        "HTTP NDJSON, 16 clients x 1000 events",
        "Flight DoPut, 1 stream",
        "Flight DoPut, 4 streams",
        "streaming RPC, 1 stream",
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    for run in 0..runs.max(1) {
        for (p, samples) in samples.iter_mut().enumerate() {
            let events = Events::generate(run * names.len() + p, n);
            let elapsed = match p {
                0 => http_ndjson(writer, &events).await?,
                1 => flight_do_put(grpc, &token, &events, 1).await?,
                2 => flight_do_put(grpc, &token, &events, 4).await?,
                _ => streaming_rpc(grpc, &token, &events).await?,
            };
            samples.push(elapsed);
        }
    }
    println!("## Bulk ingest, {n} events per run, median of {runs} runs (durable ack)\n");
    println!("| protocol | events/s | ratio to HTTP NDJSON |");
    println!("|---|---:|---:|");
    let rates: Vec<f64> = samples.into_iter().map(|s| n as f64 / median(s).as_secs_f64()).collect();
    for (name, rate) in names.iter().zip(&rates) {
        println!("| {name} | {rate:.0} | {:.2} |", rate / rates[0]);
    }
    println!();
    Ok(())
}

/// One way of asking a query, returning how many rows reached the client.
enum Interface {
    HttpJson(Client),
    HttpArrow(Client),
    FlightSql(FlightSqlServiceClient<Channel>),
    Postgres(sqlx::PgConnection),
}

impl Interface {
    fn name(&self) -> &'static str {
        match self {
            Self::HttpJson(_) => "HTTP JSON",
            Self::HttpArrow(_) => "HTTP Arrow IPC",
            Self::FlightSql(_) => "Flight SQL",
            Self::Postgres(_) => "PostgreSQL wire",
        }
    }

    async fn rows(&mut self, sql: &str) -> anyhow::Result<usize> {
        match self {
            Self::HttpJson(client) => {
                let body = client.query_raw(sql, QueryFormat::Json).await?;
                let rows: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_slice(&body)?;
                Ok(rows.len())
            }
            Self::HttpArrow(client) => Ok(client.query_arrow(sql).await?.iter().map(|b| b.num_rows()).sum()),
            Self::FlightSql(client) => {
                let info = client.execute(sql.to_string(), None).await?;
                let mut rows = 0;
                for endpoint in info.endpoint {
                    let ticket = endpoint.ticket.ok_or_else(|| anyhow::anyhow!("endpoint without a ticket"))?;
                    let mut batches = client.do_get(ticket).await?;
                    while let Some(batch) = batches.next().await {
                        rows += batch?.num_rows();
                    }
                }
                Ok(rows)
            }
            Self::Postgres(conn) => {
                let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).fetch(&mut *conn);
                // Every value's bytes are touched, as a client reading the rows would.
                let (mut n, mut bytes) = (0usize, 0usize);
                while let Some(row) = rows.try_next().await? {
                    for i in 0..row.len() {
                        if let Ok(value) = row.try_get_raw(i)?.as_bytes() {
                            bytes += value.len();
                        }
                    }
                    n += 1;
                }
                std::hint::black_box(bytes);
                Ok(n)
            }
        }
    }
}

/// Median time of `sql` on each interface, `runs` rounds with the interfaces interleaved in each
/// round (so that background work on the server hurts them alike), after one warm-up each;
/// also the row count, which must be the same on every interface and every run.
async fn timed(interfaces: &mut [Interface], sql: &str, runs: usize) -> anyhow::Result<(Vec<Duration>, usize)> {
    let mut rows = None;
    for interface in interfaces.iter_mut() {
        let n = interface.rows(sql).await?;
        anyhow::ensure!(*rows.get_or_insert(n) == n, "{}: {n} rows for {sql}", interface.name());
    }
    let mut samples = vec![Vec::with_capacity(runs); interfaces.len()];
    for _ in 0..runs.max(1) {
        for (interface, samples) in interfaces.iter_mut().zip(&mut samples) {
            let started = Instant::now();
            let n = interface.rows(sql).await?;
            samples.push(started.elapsed());
            anyhow::ensure!(Some(n) == rows, "{}: {n} rows for {sql}, then {rows:?}", interface.name());
        }
    }
    Ok((samples.into_iter().map(median).collect(), rows.unwrap_or(0)))
}

/// A 1M-row result and small queries over every SQL interface, as the tenant of `reader`;
/// prints a Markdown table.
pub(crate) async fn query(server: &Server, reader: &Client, runs: usize) -> anyhow::Result<()> {
    let grpc = server.grpc_url.as_deref().ok_or_else(|| anyhow::anyhow!("the server has no gRPC address"))?;
    let pg = server.pg_addr.as_deref().ok_or_else(|| anyhow::anyhow!("the server has no PostgreSQL address"))?;
    let token = reader.token();
    let mut flight = FlightSqlServiceClient::new(channel(grpc).await?);
    flight.set_token(token.to_string());
    let postgres =
        sqlx::PgConnection::connect(&format!("postgres://bench:{token}@{pg}/hourglass?sslmode=disable")).await?;
    let mut interfaces = [
        Interface::HttpJson(reader.clone()),
        Interface::HttpArrow(reader.clone()),
        Interface::FlightSql(flight),
        Interface::Postgres(postgres),
    ];
    let big = "SELECT event_id, timestamp, name, url, client_id, screen_width FROM events LIMIT 1000000";
    let small = "SELECT name, count(*) AS n FROM events GROUP BY name ORDER BY name";
    let trivial = "SELECT 1 AS one";
    println!("## Query interfaces\n");
    println!(
        "Medians of {} runs (1M rows) and {} runs (small, trivial), interfaces interleaved in each round.\n",
        runs.clamp(1, 5),
        runs.max(1) * 4
    );
    println!("1M rows: `{big}`; small: `{small}`; trivial: `{trivial}`. Timed until the rows are in the");
    println!("client's hands (JSON parsed, Arrow decoded, PostgreSQL rows read).\n");
    println!(
        "| interface | 1M-row result s | rows/s | speed vs HTTP JSON | small query ms | latency vs HTTP JSON | trivial query ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let (big_t, rows) = timed(&mut interfaces, big, runs.clamp(1, 5)).await?;
    let (small_t, _) = timed(&mut interfaces, small, runs * 4).await?;
    let (trivial_t, _) = timed(&mut interfaces, trivial, runs * 4).await?;
    let (base_big, base_small) = (big_t[0].as_secs_f64(), small_t[0].as_secs_f64());
    for (i, interface) in interfaces.iter().enumerate() {
        let (big_s, small_s) = (big_t[i].as_secs_f64(), small_t[i].as_secs_f64());
        println!(
            "| {} | {big_s:.2} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
            interface.name(),
            rows as f64 / big_s,
            base_big / big_s,
            small_s * 1000.0,
            small_s / base_small,
            trivial_t[i].as_secs_f64() * 1000.0
        );
    }
    println!();
    Ok(())
}
