//! Generated tenants and events.

use bytes::Bytes;
use hourglass_client::Client;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::server::Server;

pub(crate) const PATHS: [&str; 12] = [
    "/",
    "/pricing",
    "/blog",
    "/blog/launch",
    "/docs",
    "/docs/start",
    "/cart",
    "/checkout",
    "/product/1",
    "/product/2",
    "/product/3",
    "/about",
];
pub(crate) const REFERRERS: [&str; 5] =
    ["https://www.google.com/", "https://news.example/", "", "https://t.co/x", "https://duckduckgo.com/"];
pub(crate) const AGENTS: [&str; 3] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15",
];

/// The benchmark's tenants; tenant `i` sends a share of traffic proportional to `1 / (i + 1)`.
pub(crate) struct Tenants {
    pub writers: Vec<Client>,
    /// Read client of `t000`, the largest tenant.
    pub reader: Client,
    weights: Vec<f64>,
}

impl Tenants {
    pub(crate) async fn create(server: &Server, n: usize) -> anyhow::Result<Self> {
        let admin = server.admin();
        let mut writers = Vec::with_capacity(n);
        let mut reader = None;
        for i in 0..n.max(1) {
            let creds = admin.create_tenant(&format!("t{i:03}")).await?;
            writers.push(admin.with_token(&creds.write_key));
            if i == 0 {
                reader = Some(admin.with_token(&creds.read_token));
            }
        }
        let weights = (0..writers.len()).map(|i| 1.0 / (i as f64 + 1.0)).collect();
        Ok(Self { writers, reader: reader.ok_or_else(|| anyhow::anyhow!("no tenant"))?, weights })
    }

    /// `count` request bodies of `batch` NDJSON events each, with the tenant each is for.
    /// Events carry no `event_id`, so a body can be sent many times.
    pub(crate) fn bodies(&self, batch: usize, count: usize, seed: u64) -> Vec<(usize, Bytes)> {
        generate(&self.weights, batch, count, seed)
    }
}

/// Bodies as [`Tenants::bodies`] makes them for `tenants` tenants, without a server.
pub(crate) fn sample_bodies(tenants: usize, batch: usize, count: usize, seed: u64) -> Vec<(usize, Bytes)> {
    let weights: Vec<f64> = (0..tenants.max(1)).map(|i| 1.0 / (i as f64 + 1.0)).collect();
    generate(&weights, batch, count, seed)
}

fn generate(weights: &[f64], batch: usize, count: usize, seed: u64) -> Vec<(usize, Bytes)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    (0..count)
            .map(|_| {
                let tenant = pick(weights, &mut rng);
                let mut body = String::with_capacity(batch * 400);
                for _ in 0..batch {
                    let name = match rng.random_range(0..100) {
                        0..80 => "pageview",
                        80..95 => "click",
                        95..98 => "signup",
                        _ => "purchase",
                    };
                    let screen = [390, 1280, 1920][rng.random_range(0..3)];
                    let country = ["US", "DE", "FR", "JP"][rng.random_range(0..4)];
                    let plan = ["free", "pro"][rng.random_range(0..2)];
                    let event = serde_json::json!({
                        "name": name,
                        "timestamp": now - rng.random_range(0..24 * 3_600_000i64),
                        "url": format!("https://shop{tenant}.example{}?utm_source=s{}", PATHS[rng.random_range(0..PATHS.len())], rng.random_range(0..4)),
                        "referrer": REFERRERS[rng.random_range(0..REFERRERS.len())],
                        "user_agent": AGENTS[rng.random_range(0..AGENTS.len())],
                        "client_id": format!("c{}", rng.random_range(0..10_000)),
                        "screen_width": screen,
                        "country": country,
                        "revenue": if name == "purchase" { serde_json::json!(rng.random_range(5.0..500.0f64)) } else { serde_json::Value::Null },
                        "props": {"plan": plan},
                    });
                    body.push_str(&event.to_string());
                    body.push('\n');
                }
                (tenant, Bytes::from(body))
            })
            .collect()
}

/// A tenant index drawn with probability proportional to its weight.
fn pick(weights: &[f64], rng: &mut StdRng) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.random_range(0.0..total);
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    0
}
