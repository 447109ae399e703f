//! Generated web traffic for `hourglass demo`: visits of a small online shop with a blog and
//! docs, shaped like real traffic (a daily and weekly rhythm, a month of growth, returning
//! visitors, search, social, email and paid campaigns, bounces, funnels to signup and
//! purchase), as NDJSON event lines for the events API.
//!
//! Deterministic for a seed, so a demo and its tests see the same month.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// The demo site's address; paths below are appended to it.
pub const SITE: &str = "https://shop.example";

/// A share of visits per UTC hour of the day: quiet nights, a busy afternoon and evening.
const HOUR_WEIGHTS: [f64; 24] = [
    0.35, 0.25, 0.2, 0.18, 0.2, 0.3, 0.5, 0.8, 1.1, 1.3, 1.4, 1.45, 1.5, 1.55, 1.6, 1.65, 1.6, 1.5, 1.45, 1.4, 1.3,
    1.1, 0.8, 0.55,
];

/// A visitor's device: user agent and screen width.
struct Device {
    user_agent: &'static str,
    screen_width: u32,
}

const DEVICES: [(Device, u32); 10] = [
    (
        Device {
            user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            screen_width: 1920,
        },
        24,
    ),
    (
        Device {
            user_agent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            screen_width: 1440,
        },
        12,
    ),
    (
        Device {
            user_agent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
            screen_width: 1512,
        },
        9,
    ),
    (
        Device {
            user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
            screen_width: 1920,
        },
        6,
    ),
    (
        Device {
            user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            screen_width: 1366,
        },
        6,
    ),
    (
        Device {
            user_agent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            screen_width: 2560,
        },
        3,
    ),
    (
        Device {
            user_agent: "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            screen_width: 390,
        },
        22,
    ),
    (
        Device {
            user_agent: "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
            screen_width: 412,
        },
        11,
    ),
    (
        Device {
            user_agent: "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
            screen_width: 360,
        },
        4,
    ),
    (
        Device {
            user_agent: "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            screen_width: 820,
        },
        3,
    ),
];

/// Countries with the language their visitors' browsers ask for.
const COUNTRIES: [((&str, &str), u32); 15] = [
    (("US", "en-US"), 30),
    (("DE", "de-DE"), 9),
    (("GB", "en-GB"), 8),
    (("IN", "en-IN"), 7),
    (("FR", "fr-FR"), 6),
    (("CA", "en-CA"), 4),
    (("BR", "pt-BR"), 4),
    (("JP", "ja-JP"), 3),
    (("NL", "nl-NL"), 3),
    (("AU", "en-AU"), 3),
    (("ES", "es-ES"), 3),
    (("IT", "it-IT"), 2),
    (("SE", "sv-SE"), 2),
    (("PL", "pl-PL"), 2),
    (("MX", "es-MX"), 2),
];

/// Where a visit lands from: which pages it tends to enter on.
#[derive(Clone, Copy)]
enum Intent {
    /// Search and community links: articles and products.
    Content,
    /// Typed addresses and social: the home page.
    Home,
    /// Paid and email campaigns: the pages they advertise.
    Campaign,
}

/// A way in: the referrer, the query string of the landing URL, and the intent.
struct Source {
    referrer: &'static str,
    query: &'static str,
    intent: Intent,
}

const SOURCES: [(Source, u32); 14] = [
    (Source { referrer: "https://www.google.com/", query: "", intent: Intent::Content }, 33),
    (Source { referrer: "", query: "", intent: Intent::Home }, 22),
    (Source { referrer: "https://www.bing.com/", query: "", intent: Intent::Content }, 4),
    (Source { referrer: "https://duckduckgo.com/", query: "", intent: Intent::Content }, 3),
    (Source { referrer: "https://l.facebook.com/", query: "", intent: Intent::Home }, 4),
    (Source { referrer: "https://t.co/", query: "", intent: Intent::Content }, 3),
    (Source { referrer: "https://www.reddit.com/r/webdev/", query: "", intent: Intent::Content }, 3),
    (Source { referrer: "https://news.ycombinator.com/", query: "", intent: Intent::Content }, 2),
    (Source { referrer: "https://github.com/", query: "", intent: Intent::Content }, 2),
    (Source { referrer: "https://blog.partner.example/best-desk-setups", query: "", intent: Intent::Content }, 2),
    (
        Source {
            referrer: "",
            query: "utm_source=newsletter&utm_medium=email&utm_campaign=weekly-digest",
            intent: Intent::Campaign,
        },
        7,
    ),
    (
        Source {
            referrer: "https://www.google.com/",
            query: "utm_source=google&utm_medium=cpc&utm_campaign=brand-search",
            intent: Intent::Campaign,
        },
        6,
    ),
    (
        Source {
            referrer: "https://l.facebook.com/",
            query: "utm_source=facebook&utm_medium=paid_social&utm_campaign=winter-sale",
            intent: Intent::Campaign,
        },
        4,
    ),
    (
        Source {
            referrer: "https://www.instagram.com/",
            query: "utm_source=instagram&utm_medium=social&utm_campaign=winter-sale",
            intent: Intent::Campaign,
        },
        3,
    ),
];

/// The site's pages with their titles.
const PAGES: [(&str, &str); 18] = [
    ("/", "Shop Example: desk goods for people who ship"),
    ("/pricing", "Pricing"),
    ("/features", "Features"),
    ("/blog", "Blog"),
    ("/blog/how-we-halved-page-load", "How we halved our page load"),
    ("/blog/choosing-a-standing-desk", "Choosing a standing desk"),
    ("/blog/release-notes-december", "Release notes: December"),
    ("/docs", "Docs"),
    ("/docs/getting-started", "Getting started"),
    ("/products/hourglass-mug", "Hourglass mug"),
    ("/products/desk-lamp", "Desk lamp"),
    ("/products/notebook", "Dot-grid notebook"),
    ("/cart", "Cart"),
    ("/checkout", "Checkout"),
    ("/signup", "Sign up"),
    ("/about", "About us"),
    ("/contact", "Contact"),
    ("/careers", "Careers"),
];

const ENTRY_CONTENT: [(&str, u32); 8] = [
    ("/blog/how-we-halved-page-load", 18),
    ("/blog/choosing-a-standing-desk", 16),
    ("/products/desk-lamp", 12),
    ("/products/hourglass-mug", 10),
    ("/", 14),
    ("/docs/getting-started", 8),
    ("/products/notebook", 7),
    ("/pricing", 5),
];
const ENTRY_HOME: [(&str, u32); 5] = [("/", 70), ("/pricing", 10), ("/blog", 8), ("/about", 5), ("/careers", 3)];
const ENTRY_CAMPAIGN: [(&str, u32); 4] =
    [("/pricing", 35), ("/products/desk-lamp", 25), ("/blog/release-notes-december", 25), ("/", 15)];

/// Where a visitor goes next from `page` (the visit ends by the caller's choice).
fn next_page(page: &str, rng: &mut StdRng) -> &'static str {
    let choices: &[(&'static str, u32)] = match page {
        "/" => &[
            ("/pricing", 25),
            ("/products/desk-lamp", 15),
            ("/products/hourglass-mug", 12),
            ("/features", 15),
            ("/blog", 12),
            ("/about", 6),
            ("/signup", 8),
        ],
        "/pricing" => &[("/signup", 45), ("/features", 20), ("/", 15), ("/contact", 10)],
        "/features" => &[("/pricing", 50), ("/signup", 20), ("/docs", 15)],
        p if p.starts_with("/products/") => &[
            ("/cart", 30),
            ("/products/notebook", 15),
            ("/products/desk-lamp", 12),
            ("/products/hourglass-mug", 12),
            ("/", 10),
        ],
        "/cart" => &[("/checkout", 60), ("/products/notebook", 15), ("/", 10)],
        "/checkout" => &[("/", 30), ("/blog", 10)],
        p if p.starts_with("/blog") => &[
            ("/blog/choosing-a-standing-desk", 15),
            ("/blog/how-we-halved-page-load", 15),
            ("/products/desk-lamp", 15),
            ("/", 20),
            ("/signup", 10),
            ("/blog", 10),
        ],
        p if p.starts_with("/docs") => &[("/docs/getting-started", 40), ("/pricing", 20), ("/signup", 20)],
        _ => &[("/", 50), ("/pricing", 20), ("/blog", 15)],
    };
    weighted(choices, rng)
}

fn title_of(path: &str) -> &'static str {
    PAGES.iter().find(|(p, _)| *p == path).map(|(_, t)| *t).unwrap_or("Shop Example")
}

fn weighted<T: Copy>(items: &[(T, u32)], rng: &mut StdRng) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random_range(0..total.max(1));
    for (item, w) in items {
        if x < *w {
            return *item;
        }
        x -= w;
    }
    items[0].0
}

/// A visitor who may come back: the id and the device and place that go with it.
#[derive(Clone)]
struct Visitor {
    client_id: String,
    device: usize,
    country: usize,
}

/// One generated event: when it happens and its NDJSON line.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedEvent {
    /// Epoch milliseconds.
    pub timestamp_ms: i64,
    /// The event as one line of the events API's NDJSON (without the newline).
    pub line: String,
}

/// Makes visits for spans of time; keeps the visitors it made so that some come back.
pub struct Traffic {
    rng: StdRng,
    seed: u64,
    visits_per_day: f64,
    /// Visitors seen so far, for returning visits (bounded: the oldest are forgotten).
    visitors: Vec<Visitor>,
    next_visitor: u64,
    /// Tells this run's visitors from an earlier run's (which counted from 1 too).
    run: i64,
    /// The start of the growth curve: a month before this, traffic was 25% lower.
    growth_end_ms: i64,
}

impl Traffic {
    /// Traffic averaging `visits_per_day` visits a day around `now_ms`.
    pub fn new(seed: u64, visits_per_day: u32, now_ms: i64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            seed,
            visits_per_day: f64::from(visits_per_day.max(1)),
            visitors: Vec::new(),
            next_visitor: 0,
            run: now_ms / 1000,
            growth_end_ms: now_ms,
        }
    }

    /// The visits that start in `[from_ms, to_ms)`, every event of each (some after `to_ms`,
    /// as visits go on), in no particular order.
    pub fn visits(&mut self, from_ms: i64, to_ms: i64) -> Vec<GeneratedEvent> {
        let mut events = Vec::new();
        let mut hour_start = from_ms - from_ms.rem_euclid(HOUR_MS);
        while hour_start < to_ms {
            let start = hour_start.max(from_ms);
            let end = (hour_start + HOUR_MS).min(to_ms);
            let expected = self.rate_per_hour(hour_start) * (end - start) as f64 / HOUR_MS as f64;
            let mut count = expected.floor() as u64;
            if self.rng.random_bool((expected - expected.floor()).clamp(0.0, 1.0)) {
                count += 1;
            }
            for _ in 0..count {
                let at = self.rng.random_range(start..end);
                self.visit(at, &mut events);
            }
            hour_start += HOUR_MS;
        }
        events
    }

    /// Expected visits in the hour starting at `hour_start_ms`.
    fn rate_per_hour(&self, hour_start_ms: i64) -> f64 {
        let day = hour_start_ms.div_euclid(DAY_MS);
        let hour = (hour_start_ms.rem_euclid(DAY_MS) / HOUR_MS) as usize;
        // 1970-01-01 was a Thursday: day 2 and 3 of the week (from Thursday) are the weekend.
        let weekend = matches!(day.rem_euclid(7), 2 | 3);
        let weekly = if weekend { 0.72 } else { 1.08 };
        let growth = 1.0 - 0.25 * ((self.growth_end_ms - hour_start_ms) as f64 / (30 * DAY_MS) as f64).clamp(0.0, 1.0);
        // The same day always gets the same ups and downs, whichever span asks for it.
        let mut day_rng = StdRng::seed_from_u64(self.seed ^ (day as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let noise = day_rng.random_range(0.85..1.15);
        let hour_share = HOUR_WEIGHTS[hour] / HOUR_WEIGHTS.iter().sum::<f64>();
        self.visits_per_day * hour_share * weekly * growth * noise
    }

    fn visitor(&mut self) -> Visitor {
        if !self.visitors.is_empty() && self.rng.random_bool(0.3) {
            let i = self.rng.random_range(0..self.visitors.len());
            return self.visitors[i].clone();
        }
        self.next_visitor += 1;
        let visitor = Visitor {
            client_id: format!("demo-{:x}-{:x}-{}", self.seed & 0xffff, self.run, self.next_visitor),
            device: weighted(&DEVICES.iter().enumerate().map(|(i, (_, w))| (i, *w)).collect::<Vec<_>>(), &mut self.rng),
            country: weighted(
                &COUNTRIES.iter().enumerate().map(|(i, (_, w))| (i, *w)).collect::<Vec<_>>(),
                &mut self.rng,
            ),
        };
        if self.visitors.len() >= 20_000 {
            let i = self.rng.random_range(0..self.visitors.len());
            self.visitors[i] = visitor.clone();
        } else {
            self.visitors.push(visitor.clone());
        }
        visitor
    }

    /// Appends the events of one visit that starts at `start_ms`.
    fn visit(&mut self, start_ms: i64, out: &mut Vec<GeneratedEvent>) {
        let visitor = self.visitor();
        let source = &SOURCES
            [weighted(&SOURCES.iter().enumerate().map(|(i, (_, w))| (i, *w)).collect::<Vec<_>>(), &mut self.rng)]
        .0;
        let entry = match source.intent {
            Intent::Content => weighted(&ENTRY_CONTENT, &mut self.rng),
            Intent::Home => weighted(&ENTRY_HOME, &mut self.rng),
            Intent::Campaign => weighted(&ENTRY_CAMPAIGN, &mut self.rng),
        };
        let device = &DEVICES[visitor.device].0;
        let (country, language) = COUNTRIES[visitor.country].0;
        let base = json!({
            "client_id": visitor.client_id,
            "user_agent": device.user_agent,
            "screen_width": device.screen_width,
            "country": country,
            "language": language,
        });
        // About four in ten visits bounce; the rest read a few pages.
        let pages = if self.rng.random_bool(0.42) { 1 } else { 2 + self.geometric(0.35).min(10) };
        let mut at = start_ms;
        let mut page = entry;
        let mut previous: Option<&str> = None;
        for i in 0..pages {
            let (url, referrer) = match previous {
                None if source.query.is_empty() => (format!("{SITE}{page}"), source.referrer.to_string()),
                None => (format!("{SITE}{page}?{}", source.query), source.referrer.to_string()),
                Some(prev) => (format!("{SITE}{page}"), format!("{SITE}{prev}")),
            };
            let mut event = base.clone();
            event["name"] = json!("pageview");
            event["timestamp"] = json!(at);
            event["url"] = json!(url);
            event["title"] = json!(title_of(page));
            if !referrer.is_empty() {
                event["referrer"] = json!(referrer);
            }
            out.push(GeneratedEvent { timestamp_ms: at, line: event.to_string() });
            if pages > 1 {
                self.page_action(page, at, &base, out);
            }
            if i + 1 == pages {
                break;
            }
            // Reading time: mostly short, sometimes long.
            at += self.rng.random_range(6_000..40_000)
                + if self.rng.random_bool(0.25) { self.rng.random_range(30_000..240_000) } else { 0 };
            previous = Some(page);
            page = next_page(page, &mut self.rng);
        }
    }

    /// What a reader may do on `page` besides viewing it: sign up, buy, add to cart, download.
    fn page_action(&mut self, page: &str, at: i64, base: &Value, out: &mut Vec<GeneratedEvent>) {
        let later = at + self.rng.random_range(3_000..20_000);
        let action = match page {
            "/signup" if self.rng.random_bool(0.4) => {
                let plan = weighted(&[("free", 6), ("pro", 3), ("team", 1)], &mut self.rng);
                Some(json!({"name": "signup", "props": {"plan": plan}}))
            }
            "/checkout" if self.rng.random_bool(0.5) => {
                let cents = self.rng.random_range(1_200..24_000);
                let items = self.rng.random_range(1..5).to_string();
                Some(
                    json!({"name": "purchase", "revenue": cents as f64 / 100.0, "currency": "USD", "props": {"items": items}}),
                )
            }
            p if p.starts_with("/products/") && self.rng.random_bool(0.25) => {
                let product = p.trim_start_matches("/products/");
                Some(json!({"name": "add_to_cart", "props": {"product": product}}))
            }
            p if p.starts_with("/docs") && self.rng.random_bool(0.2) => {
                Some(json!({"name": "file_download", "props": {"file": "shop-example-catalog.pdf"}}))
            }
            _ => None,
        };
        if let Some(Value::Object(fields)) = action {
            let mut event = base.clone();
            for (k, v) in fields {
                event[k] = v;
            }
            event["timestamp"] = json!(later);
            event["url"] = json!(format!("{SITE}{page}"));
            out.push(GeneratedEvent { timestamp_ms: later, line: event.to_string() });
        }
    }

    /// Failures before the first success, with success probability `p`.
    fn geometric(&mut self, p: f64) -> u32 {
        let mut n = 0;
        while n < 100 && !self.rng.random_bool(p) {
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_979_200_000; // 2025-12-06T00:00:00Z

    #[test]
    fn the_same_seed_makes_the_same_month() {
        let a = Traffic::new(7, 200, NOW).visits(NOW - 3 * DAY_MS, NOW);
        let b = Traffic::new(7, 200, NOW).visits(NOW - 3 * DAY_MS, NOW);
        assert_eq!(a, b);
        let c = Traffic::new(8, 200, NOW).visits(NOW - 3 * DAY_MS, NOW);
        assert_ne!(a, c);
    }

    #[test]
    fn visits_follow_the_rate_and_look_like_a_site() {
        let events = Traffic::new(1, 1_000, NOW).visits(NOW - 28 * DAY_MS, NOW);
        let pageviews: Vec<Value> = events
            .iter()
            .map(|e| serde_json::from_str::<Value>(&e.line).expect("json"))
            .filter(|v| v["name"] == "pageview")
            .collect();
        let entries = pageviews.iter().filter(|v| v["referrer"].as_str().is_none_or(|r| !r.starts_with(SITE))).count();
        // Growth and weekends pull the average under the nominal rate; noise is ±15% a day.
        assert!((20_000..30_000).contains(&entries), "{entries} visits in 28 days at ~1000 a day");
        assert!(pageviews.len() > entries * 2, "visits read more than one page on average");
        for name in ["signup", "purchase", "add_to_cart"] {
            assert!(events.iter().any(|e| e.line.contains(&format!("\"name\":\"{name}\""))), "some {name}");
        }
        assert!(pageviews.iter().any(|v| v["url"].as_str().is_some_and(|u| u.contains("utm_campaign=winter-sale"))));
        let returning = {
            let mut ids: Vec<&str> = pageviews.iter().filter_map(|v| v["client_id"].as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        };
        assert!(returning < entries, "some visitors come back: {returning} visitors, {entries} visits");
        assert!(events.iter().all(|e| e.timestamp_ms >= NOW - 28 * DAY_MS));
    }

    #[test]
    fn afternoons_are_busier_than_nights() {
        let events = Traffic::new(3, 2_000, NOW).visits(NOW - 14 * DAY_MS, NOW);
        let in_hour = |h: i64| events.iter().filter(|e| e.timestamp_ms.rem_euclid(DAY_MS) / HOUR_MS == h).count();
        assert!(in_hour(15) > 3 * in_hour(3), "15:00 {} vs 03:00 {}", in_hour(15), in_hour(3));
    }

    #[test]
    fn short_spans_still_get_visits_on_average() {
        let mut traffic = Traffic::new(5, 2_880, NOW);
        let mut visits = 0;
        for i in 0..360 {
            let from = NOW + i * 10_000;
            visits += traffic
                .visits(from, from + 10_000)
                .iter()
                .filter(|e| e.line.contains("pageview") && !e.line.contains(&format!("\"referrer\":\"{SITE}")))
                .count();
        }
        // One hour of 10-second ticks at 2880 a day (times the hour's weight) is dozens of visits.
        assert!(visits > 20, "{visits}");
    }
}
