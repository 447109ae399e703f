//! The benchmark's data set, written directly as persisted partitions: many tenants with
//! Zipf-skewed traffic over many days, with realistic pages, referrers, campaigns, user agents
//! and sessions, passed through the real processor and written as the ingester would write it
//! (hourly Parquet files of `raw_events` and `events` sorted by tenant and time, recorded in
//! the catalog). Writing through HTTP ingest would take as long as the ingest benchmark says
//! per event; this takes the processor's and the Parquet encoder's time only.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use arrow::compute::concat_batches;
use hourglass_catalog::{Catalog, NewFile};
use hourglass_ingest::batch::{HashedEvent, build_raw_batch};
use hourglass_ingest::parse::{TEXT_FIELDS, ValidEvent};
use hourglass_processor::{Options, humans, process};
use hourglass_storage::{ParquetOptions, encode_parquet, sort_for_parquet};
use hourglass_types::schema;
use hourglass_types::{PartitionKey, TableName};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// What to generate.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// Events in all.
    pub events: u64,
    /// Days of traffic, ending at `end_ms`.
    pub days: u32,
    /// Tenants; tenant `i` (named `t{i:05}`) gets a share proportional to `1 / (i + 1)`.
    pub tenants: usize,
    /// The end of the data (exclusive), epoch ms.
    pub end_ms: i64,
}

/// The tenant id of tenant number `i`.
pub(crate) fn tenant_id(i: usize) -> String {
    format!("t{i:05}")
}

const AGENTS: [(&str, u32); 12] = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        28,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        10,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        7,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        18,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
        14,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
        5,
    ),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", 5),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        6,
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        3,
    ),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", 2),
    ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", 1),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 1),
];

/// (query string, referrer) of how a visit arrives, with weights.
const ARRIVALS: [(&str, &str, u32); 14] = [
    ("", "", 30),
    ("", "https://www.google.com/", 25),
    ("", "https://www.bing.com/", 3),
    ("", "https://duckduckgo.com/", 2),
    ("", "https://www.facebook.com/", 4),
    ("", "https://t.co/abc", 2),
    ("", "https://www.linkedin.com/feed/", 1),
    ("", "https://news.ycombinator.com/item?id=1", 1),
    ("", "https://chatgpt.com/", 2),
    ("", "https://partner-blog.example/review", 3),
    ("?utm_source=newsletter&utm_medium=email&utm_campaign=weekly", "", 8),
    ("?utm_source=google&utm_medium=cpc&utm_campaign=brand&gclid=x1", "", 10),
    ("?utm_source=facebook&utm_medium=paid_social&utm_campaign=retargeting&utm_content=carousel", "", 5),
    ("?utm_source=affiliate-network&utm_medium=affiliate&utm_campaign=black_friday", "", 4),
];

const COUNTRIES: [(&str, u32); 12] = [
    ("US", 30),
    ("DE", 10),
    ("GB", 8),
    ("FR", 7),
    ("IN", 6),
    ("BR", 5),
    ("JP", 4),
    ("CA", 4),
    ("ES", 3),
    ("NL", 3),
    ("AU", 2),
    ("PL", 2),
];

const LANGUAGES: [&str; 6] = ["en-US", "de-DE", "en-GB", "fr-FR", "pt-BR", "ja-JP"];
const SECTIONS: [&str; 8] = ["product", "blog", "docs", "category", "help", "pricing", "about", "careers"];

fn weighted<T: Copy>(items: &[(T, u32)], rng: &mut StdRng) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random_range(0..total);
    for (item, w) in items {
        if x < *w {
            return *item;
        }
        x -= w;
    }
    items[0].0
}

/// One generated event before it becomes a row.
struct Gen {
    tenant: u32,
    ts: i64,
    name: &'static str,
    path: String,
    query: &'static str,
    referrer: &'static str,
    agent: &'static str,
    visitor: u64,
    country: &'static str,
    language: &'static str,
    screen: i32,
    revenue: Option<f64>,
}

/// Zipf-skewed tenants, pages and visitors.
struct Model {
    cumulative: Vec<f64>,
    pages: Vec<u32>,
    visitors: Vec<u64>,
}

impl Model {
    fn new(shape: &Shape) -> Self {
        let weights: Vec<f64> = (0..shape.tenants.max(1)).map(|i| 1.0 / (i as f64 + 1.0)).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let cumulative = weights.iter().map(|w| {
            acc += w / total;
            acc
        });
        let cumulative: Vec<f64> = cumulative.collect();
        let share = |i: usize| weights[i] / total;
        // Larger sites have more pages and more visitors; a visitor makes about 6 events over
        // the period, so most visitors come once or twice.
        let pages = (0..weights.len()).map(|i| (share(i) * 40_000.0).clamp(8.0, 2_000.0) as u32).collect();
        let visitors = (0..weights.len()).map(|i| ((share(i) * shape.events as f64) / 6.0).max(3.0) as u64).collect();
        Self { cumulative, pages, visitors }
    }

    fn tenant(&self, rng: &mut StdRng) -> u32 {
        let x: f64 = rng.random_range(0.0..1.0);
        self.cumulative.partition_point(|c| *c < x).min(self.cumulative.len() - 1) as u32
    }

    /// A page index skewed towards the first pages.
    fn page(&self, tenant: u32, rng: &mut StdRng) -> u32 {
        let n = self.pages[tenant as usize];
        let u: f64 = rng.random_range(0.0..1.0);
        ((u * u * u) * f64::from(n)) as u32
    }

    fn path(&self, tenant: u32, rng: &mut StdRng) -> String {
        match self.page(tenant, rng) {
            0 => "/".to_string(),
            k => format!("/{}/{}", SECTIONS[(k as usize) % SECTIONS.len()], k),
        }
    }
}

/// Sessions starting in the hour at `hour_ms`, their events pushed into `pending` by hour.
fn sessions_of_hour(
    model: &Model,
    hour_ms: i64,
    events_in_hour: u64,
    rng: &mut StdRng,
    pending: &mut BTreeMap<i64, Vec<Gen>>,
) {
    let mut made = 0u64;
    while made < events_in_hour {
        let tenant = model.tenant(rng);
        // Returning visitors: the lower ids come back more often.
        let pool = model.visitors[tenant as usize];
        let u: f64 = rng.random_range(0.0..1.0);
        let visitor = ((u * u) * pool as f64) as u64;
        let profile = visitor.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut visitor_rng = StdRng::seed_from_u64(profile ^ u64::from(tenant));
        let agent = weighted(&AGENTS, &mut visitor_rng);
        let country = weighted(&COUNTRIES, &mut visitor_rng);
        let language = LANGUAGES[visitor_rng.random_range(0..LANGUAGES.len())];
        let mobile = agent.contains("Mobile") || agent.contains("iPad");
        let screen = if mobile {
            [390, 412, 820][visitor_rng.random_range(0..3)]
        } else {
            [1280, 1440, 1920][visitor_rng.random_range(0..3)]
        };
        let (query, referrer, _) = ARRIVALS[{
            let total: u32 = ARRIVALS.iter().map(|a| a.2).sum();
            let mut x = rng.random_range(0..total);
            let mut pick = 0;
            for (i, a) in ARRIVALS.iter().enumerate() {
                if x < a.2 {
                    pick = i;
                    break;
                }
                x -= a.2;
            }
            pick
        }];
        let mut ts = hour_ms + rng.random_range(0..HOUR_MS);
        let length = 1 + (rng.random_range(0.0f64..1.0).ln() / 0.7f64.ln()).floor().min(20.0) as u32;
        for k in 0..length {
            let name = match rng.random_range(0..100) {
                0..80 => "pageview",
                80..88 => "click",
                88..93 => "download",
                93..97 => "signup",
                _ => "purchase",
            };
            let path = model.path(tenant, rng);
            let revenue = (name == "purchase").then(|| (rng.random_range(500..50_000) as f64) / 100.0);
            let (q, r) = if k == 0 { (query, referrer) } else { ("", "") };
            pending.entry(ts.div_euclid(HOUR_MS) * HOUR_MS).or_default().push(Gen {
                tenant,
                ts,
                name,
                path,
                query: q,
                referrer: r,
                agent,
                visitor,
                country,
                language,
                screen,
                revenue,
            });
            made += 1;
            ts += rng.random_range(5_000..240_000);
        }
    }
}

/// The raw row of a generated event.
fn hashed(g: &Gen, host: &str, id: u64) -> HashedEvent {
    let url = format!("https://{host}{}{}", g.path, g.query);
    let referrer = (!g.referrer.is_empty()).then(|| g.referrer.to_string());
    // In the order of TEXT_FIELDS: client_id, user_id, session_id, url, referrer, title, user_agent.
    let fields: [Option<String>; TEXT_FIELDS.len()] =
        [Some(format!("v{}", g.visitor)), None, None, Some(url), referrer, None, Some(g.agent.to_string())];
    HashedEvent {
        event: ValidEvent {
            event_id: format!("{id:016x}"),
            id_assigned: false,
            timestamp_ms: g.ts,
            name: g.name.to_string(),
            text: fields,
            ip: None,
            country: Some(g.country.to_string()),
            language: Some(g.language.to_string()),
            screen_width: Some(g.screen),
            revenue: g.revenue,
            currency: g.revenue.map(|_| "USD".to_string()),
            interactive: true,
            props: if g.name == "purchase" { vec![("plan".into(), "pro".into())] } else { Vec::new() },
        },
        ip_hash: None,
        ip_hash_prev: None,
    }
}

/// Writes the hour's events as the ingester would: `raw_events` and `events` Parquet files
/// recorded in the catalog in one commit. Returns the events written.
async fn write_hour(
    store: &Arc<dyn ObjectStore>,
    catalog: &Arc<dyn Catalog>,
    hour_ms: i64,
    mut events: Vec<Gen>,
    next_id: &mut u64,
    position: u64,
) -> anyhow::Result<usize> {
    events.sort_by_key(|g| (g.tenant, g.ts));
    let mut raw_parts = Vec::new();
    let mut start = 0;
    while start < events.len() {
        let tenant = events[start].tenant;
        let end = start + events[start..].iter().take_while(|g| g.tenant == tenant).count();
        let id = tenant_id(tenant as usize);
        let host = format!("{id}.example");
        let rows: Vec<HashedEvent> = events[start..end]
            .iter()
            .map(|g| {
                *next_id += 1;
                hashed(g, &host, *next_id)
            })
            .collect();
        raw_parts.push(build_raw_batch(&id, hour_ms, &rows)?);
        start = end;
    }
    let raw = concat_batches(&schema::raw_events(), &raw_parts)?;
    let events_batch = humans(&process(&raw, &Options::default())?)?;
    let hour = hour_ms.div_euclid(HOUR_MS);
    let mut files = Vec::new();
    for (table, batch) in [(TableName::RawEvents, &raw), (TableName::Events, &events_batch)] {
        let Some((sorted, stats)) = sort_for_parquet(batch)? else { continue };
        let data = encode_parquet(&sorted, &ParquetOptions::default())?;
        let key = PartitionKey { table, hour, shard: 0 };
        let path = key.file_key(1, &uuid_like(*next_id, table));
        let bytes = data.len() as u64;
        store
            .put(&Path::from(path.as_str()), PutPayload::from(data))
            .await
            .with_context(|| format!("writing {path}"))?;
        let version = (table == TableName::Events).then_some(hourglass_processor::PROCESSOR_VERSION);
        files.push(NewFile::new(key, 1, path, bytes, stats, version));
    }
    catalog.commit_persist("bench-loader", position, &files).await?;
    Ok(raw.num_rows())
}

fn uuid_like(n: u64, table: TableName) -> String {
    format!("{:08x}-bench-{n:016x}-{}", n % 0xffff_ffff, table.as_str())
}

/// Generates `shape` into `store` and `catalog`; prints progress to stderr. Returns the events
/// written.
pub(crate) async fn generate(
    shape: &Shape,
    store: Arc<dyn ObjectStore>,
    catalog: Arc<dyn Catalog>,
    seed: u64,
) -> anyhow::Result<u64> {
    let model = Model::new(shape);
    let mut rng = StdRng::seed_from_u64(seed);
    let hours = i64::from(shape.days) * 24;
    let first_hour = (shape.end_ms - i64::from(shape.days) * DAY_MS).div_euclid(HOUR_MS) * HOUR_MS;
    let per_hour = shape.events as f64 / hours as f64;
    let mut pending: BTreeMap<i64, Vec<Gen>> = BTreeMap::new();
    let (mut written, mut next_id, mut position) = (0u64, 0u64, 0u64);
    let started = std::time::Instant::now();
    for h in 0..hours {
        let hour_ms = first_hour + h * HOUR_MS;
        // A daily rhythm: busiest in the (UTC) afternoon, quietest at night.
        let phase = ((hour_ms.rem_euclid(DAY_MS) / HOUR_MS) as f64 - 15.0) / 24.0 * std::f64::consts::TAU;
        let target = (per_hour * (1.0 + 0.5 * phase.cos())).round() as u64;
        sessions_of_hour(&model, hour_ms, target, &mut rng, &mut pending);
        // Events of this hour are complete once no later session can start in it.
        while let Some((&ready, _)) = pending.first_key_value() {
            if ready > hour_ms {
                break;
            }
            let Some((ready, events)) = pending.pop_first() else { break };
            if ready >= shape.end_ms {
                continue;
            }
            position += 1;
            written += write_hour(&store, &catalog, ready, events, &mut next_id, position).await? as u64;
        }
        if h % 24 == 23 {
            let rate = written as f64 / started.elapsed().as_secs_f64();
            eprintln!("generated day {} of {}: {written} events, {rate:.0} events/s", h / 24 + 1, shape.days);
        }
    }
    for (ready, events) in std::mem::take(&mut pending) {
        if ready < shape.end_ms {
            position += 1;
            written += write_hour(&store, &catalog, ready, events, &mut next_id, position).await? as u64;
        }
    }
    Ok(written)
}
