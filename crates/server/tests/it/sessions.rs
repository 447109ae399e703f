//! Property test of visitors and sessions: random event streams for several tenants (shuffled,
//! late, duplicated, crossing midnight, with and without client ids, across a SIGKILL and
//! restart) go through the real server, and every row of `sessions` must equal a plain-loop
//! recomputation written here from ANALYTICS.md, independent of the server's code.

use std::collections::{BTreeMap, HashMap};

use hourglass_client::Client;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::support::TestServer;

const MIN: i64 = 60_000;
const DAY: i64 = 86_400_000;
const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// Who sends a generated visitor's events.
#[derive(Debug, Clone)]
enum Who {
    /// A cookie: `client_id`, sometimes with client session ids.
    Cookie { client_id: String, session_ids: bool },
    /// Cookieless: address, browser and site.
    Cookieless { ip: String, user_agent: &'static str, host: &'static str },
}

#[derive(Debug, Clone)]
struct Event {
    id: String,
    ts: i64,
    name: &'static str,
    path: &'static str,
    interactive: bool,
    who: Who,
    session_id: Option<String>,
    /// Revenue and its currency.
    revenue: Option<(f64, &'static str)>,
}

impl Event {
    fn json(&self) -> serde_json::Value {
        let host = match &self.who {
            Who::Cookieless { host, .. } => host,
            Who::Cookie { .. } => &"shop.example",
        };
        let mut e = serde_json::json!({
            "event_id": self.id,
            "timestamp": self.ts,
            "name": self.name,
            "url": format!("https://{host}{}", self.path),
            "interactive": self.interactive,
        });
        match &self.who {
            Who::Cookie { client_id, .. } => {
                e["client_id"] = client_id.clone().into();
                e["user_agent"] = CHROME.into();
            }
            Who::Cookieless { ip, user_agent, .. } => {
                e["ip"] = ip.clone().into();
                e["user_agent"] = (*user_agent).into();
            }
        }
        if let Some(sid) = &self.session_id {
            e["session_id"] = sid.clone().into();
        }
        if let Some((amount, currency)) = self.revenue {
            e["revenue"] = amount.into();
            e["currency"] = currency.into();
        }
        e
    }

    /// The visitor by ANALYTICS.md's rules, as a label: a cookie is one visitor; a cookieless
    /// browser is a new visitor each UTC day.
    fn visitor(&self) -> String {
        match &self.who {
            Who::Cookie { client_id, .. } => format!("c:{client_id}"),
            Who::Cookieless { ip, user_agent, host } => {
                format!("a:{ip}|{user_agent}|{host}|{}", self.ts.div_euclid(DAY))
            }
        }
    }

    /// The browser behind the visitor, across days: cookieless sessions continue over midnight.
    fn browser(&self) -> String {
        match &self.who {
            Who::Cookie { client_id, .. } => format!("c:{client_id}"),
            Who::Cookieless { ip, user_agent, host } => format!("a:{ip}|{user_agent}|{host}"),
        }
    }
}

/// Random visitors around a midnight, each a walk of events with gaps near the timeout.
fn generate(rng: &mut StdRng, tenant: &str, midnight: i64, timeout: i64) -> Vec<Event> {
    let gaps = [MIN, 10 * MIN, timeout - 1, timeout, timeout + 1, timeout + 15 * MIN, 3 * 60 * MIN];
    let pages = ["/", "/pricing", "/blog/a", "/checkout", "/docs/start"];
    let mut events = Vec::new();
    for v in 0..14 {
        let who = if v >= 9 {
            Who::Cookie { client_id: format!("{tenant}-cid-{v}"), session_ids: v % 2 == 0 }
        } else {
            // Three visitors per address: the second differs from the first only by site, the
            // third only by browser, so the visitor hash must take in both.
            Who::Cookieless {
                ip: format!("198.51.100.{}", v / 3),
                user_agent: if v % 3 == 2 { FIREFOX } else { CHROME },
                host: if v % 3 == 1 { "blog.example" } else { "shop.example" },
            }
        };
        let mut ts = midnight - rng.random_range(0..4 * 60) * MIN - rng.random_range(0..MIN);
        let mut session_no = 0;
        for k in 0..rng.random_range(1..12) {
            if k > 0 {
                let gap = gaps[rng.random_range(0..gaps.len())];
                // A client keeps its session id over some long gaps (which still cut the
                // session) and changes it within some short ones (which splits it).
                if (gap > timeout && rng.random_range(0..2) == 0) || rng.random_range(0..6) == 0 {
                    session_no += 1;
                }
                ts += gap;
            }
            let name = match rng.random_range(0..12) {
                0 => "signup",
                1 => "scroll",
                2 => "purchase",
                _ => "pageview",
            };
            let revenue = (name == "purchase").then(|| [(10.0, "USD"), (5.0, "EUR")][rng.random_range(0..2)]);
            let session_id = match &who {
                Who::Cookie { session_ids: true, .. } => Some(format!("s{session_no}")),
                _ => None,
            };
            events.push(Event {
                id: format!("{tenant}-{v}-{k}"),
                ts,
                name,
                path: pages[rng.random_range(0..pages.len())],
                interactive: name != "scroll",
                who: who.clone(),
                session_id,
                revenue,
            });
        }
    }
    // A cookieless visitor whose session surely crosses midnight, so the salt change is tested
    // on every run.
    let who = Who::Cookieless { ip: "198.51.100.200".into(), user_agent: CHROME, host: "shop.example" };
    let times = [midnight - timeout / 2, midnight + timeout / 2 - 1, midnight + timeout / 2 + 5 * MIN];
    for (k, ts) in times.into_iter().enumerate() {
        let id = format!("{tenant}-x-{k}");
        events.push(Event {
            id,
            ts,
            name: "pageview",
            path: "/",
            interactive: true,
            who: who.clone(),
            session_id: None,
            revenue: None,
        });
    }
    events
}

/// One expected session, in the columns the test reads back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Session {
    key: String,
    started_at: i64,
    ended_at: i64,
    duration: i64,
    events: i64,
    pageviews: i64,
    is_bounce: bool,
    is_engaged: bool,
    key_events: i64,
    revenue_cents: i64,
    entry_page: Option<String>,
    exit_page: Option<String>,
}

/// The tenant settings the expectation depends on.
struct Rules {
    timeout: i64,
    key_events: &'static [&'static str],
    currency: &'static str,
}

/// The batch definition, as a plain loop: per browser (a cookie, or a cookieless browser over
/// all days) and client session id (or none), events split where a gap exceeds the timeout.
/// Each session's visitor is the visitor of its first event.
fn expected(events: &[Event], rules: &Rules) -> (Vec<Session>, HashMap<String, String>) {
    let timeout = rules.timeout;
    let mut unique: BTreeMap<String, Event> = BTreeMap::new();
    for e in events {
        unique.entry(e.id.clone()).or_insert_with(|| e.clone());
    }
    let mut groups: BTreeMap<(String, Option<String>), Vec<Event>> = BTreeMap::new();
    for e in unique.into_values() {
        groups.entry((e.browser(), e.session_id.clone())).or_default().push(e);
    }
    let mut sessions: Vec<Vec<Event>> = Vec::new();
    for (_, mut list) in groups {
        list.sort_by(|a, b| (a.ts, &a.id).cmp(&(b.ts, &b.id)));
        let mut current: Vec<Event> = Vec::new();
        for e in list {
            if let Some(last) = current.last()
                && e.ts - last.ts > timeout
            {
                sessions.push(std::mem::take(&mut current));
            }
            current.push(e);
        }
        sessions.push(current);
    }
    let mut visitor_of_session = HashMap::new();
    let out = sessions
        .into_iter()
        .map(|s| {
            let pageviews: Vec<&Event> = s.iter().filter(|e| e.name == "pageview").collect();
            let interacted = s.iter().any(|e| e.name != "pageview" && e.interactive);
            let is_bounce = pageviews.len() < 2 && !interacted;
            let (first, last) = (&s[0], &s[s.len() - 1]);
            visitor_of_session.insert(first.id.clone(), first.visitor());
            let key_events = s.iter().filter(|e| rules.key_events.contains(&e.name)).count() as i64;
            let span = (last.ts - first.ts).div_euclid(1000);
            let revenue: f64 =
                s.iter().filter_map(|e| e.revenue).filter(|(_, c)| *c == rules.currency).map(|(a, _)| a).sum();
            Session {
                key: first.id.clone(),
                started_at: first.ts,
                ended_at: last.ts,
                duration: if is_bounce { 0 } else { (last.ts - first.ts).div_euclid(1000) },
                events: s.len() as i64,
                pageviews: pageviews.len() as i64,
                is_bounce,
                is_engaged: span > 10 || pageviews.len() >= 2 || key_events > 0,
                key_events,
                revenue_cents: (revenue * 100.0).round() as i64,
                entry_page: pageviews.first().map(|e| e.path.to_string()),
                exit_page: pageviews.last().map(|e| e.path.to_string()),
            }
        })
        .collect();
    (out, visitor_of_session)
}

async fn actual(reader: &Client) -> (Vec<Session>, HashMap<String, u64>) {
    let rows = reader
        .query_json(
            "SELECT session_key, visitor_id, CAST(started_at AS BIGINT) AS s, CAST(ended_at AS BIGINT) AS e, \
             duration, events, pageviews, is_bounce, is_engaged, key_events, \
             CAST(round(revenue * 100) AS BIGINT) AS revenue_cents, entry_page, exit_page FROM sessions",
        )
        .await
        .expect("query sessions");
    let mut visitors = HashMap::new();
    let mut sessions: Vec<Session> = rows
        .iter()
        .map(|r| {
            let key = r["session_key"].as_str().expect("key").to_string();
            visitors.insert(key.clone(), r["visitor_id"].as_u64().expect("visitor_id"));
            Session {
                key,
                started_at: r["s"].as_i64().expect("s"),
                ended_at: r["e"].as_i64().expect("e"),
                duration: r["duration"].as_i64().expect("duration"),
                events: r["events"].as_i64().expect("events"),
                pageviews: r["pageviews"].as_i64().expect("pageviews"),
                is_bounce: r["is_bounce"].as_bool().expect("is_bounce"),
                is_engaged: r["is_engaged"].as_bool().expect("is_engaged"),
                key_events: r["key_events"].as_i64().expect("key_events"),
                revenue_cents: r["revenue_cents"].as_i64().expect("revenue_cents"),
                entry_page: r.get("entry_page").and_then(|v| v.as_str()).map(str::to_string),
                exit_page: r.get("exit_page").and_then(|v| v.as_str()).map(str::to_string),
            }
        })
        .collect();
    sessions.sort();
    (sessions, visitors)
}

async fn send(writer: &Client, events: &[Event]) {
    let body: String = events.iter().map(|e| format!("{}\n", e.json())).collect();
    let answer = writer.ingest(body).await.expect("ingest");
    assert_eq!(answer.rejected, 0, "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_equal_a_batch_recomputation() {
    let mut server = TestServer::start(&[]);
    let now = chrono::Utc::now().timestamp_millis();
    let midnight = now.div_euclid(DAY) * DAY - 2 * DAY;
    let defaults = Rules { timeout: 30 * MIN, key_events: &["signup", "purchase"], currency: "USD" };
    let custom = Rules { timeout: 10 * MIN, key_events: &["scroll"], currency: "EUR" };
    let tenants = [("sess-a", &defaults), ("sess-b", &defaults), ("sess-c", &custom)];
    let mut keys = Vec::new();
    for (tenant, rules) in tenants {
        let creds = server.admin().create_tenant(tenant).await.expect("tenant");
        if rules.timeout != defaults.timeout {
            let patch = serde_json::json!({
                "session_timeout_ms": rules.timeout,
                "key_events": rules.key_events,
                "reporting_currency": rules.currency,
            });
            server.admin().update_tenant_settings(tenant, &patch).await.expect("settings");
        }
        keys.push((creds.write_key, creds.read_token));
    }

    let mut rng = StdRng::seed_from_u64(0x5e55_1075);
    let mut streams = Vec::new();
    for (tenant, rules) in tenants {
        let events = generate(&mut rng, tenant, midnight, rules.timeout);
        // Duplicates: a fifth of the events are sent twice.
        let mut sent = events.clone();
        sent.extend(events.iter().filter(|_| rng.random_range(0..5) == 0).cloned());
        sent.shuffle(&mut rng);
        streams.push((events, sent));
    }

    // A third of each stream, then a flush (later events are late for persisted hours), a
    // third, a SIGKILL and restart (the WAL replays), and the rest.
    for part in 0..3 {
        for ((_, sent), (write_key, _)) in streams.iter().zip(&keys) {
            let third = sent.len().div_ceil(3);
            let chunk: Vec<Event> = sent.iter().skip(part * third).take(third).cloned().collect();
            let writer = server.admin().with_token(write_key);
            for batch in chunk.chunks(7) {
                send(&writer, batch).await;
            }
        }
        match part {
            0 => server.admin().flush().await.expect("flush"),
            1 => server.restart(),
            _ => {}
        }
    }

    for (((tenant, rules), (events, _)), (_, read_token)) in tenants.iter().zip(&streams).zip(&keys) {
        let reader = server.admin().with_token(read_token);
        let (want, visitor_labels) = expected(events, rules);
        let mut want_sorted = want.clone();
        want_sorted.sort();
        let (got, visitor_ids) = actual(&reader).await;
        let only_got: Vec<&Session> = got.iter().filter(|s| !want_sorted.contains(s)).collect();
        let only_want: Vec<&Session> = want_sorted.iter().filter(|s| !got.contains(s)).collect();
        assert!(
            got == want_sorted,
            "{tenant}: sessions differ\nonly in Hourglass: {only_got:#?}\nonly expected: {only_want:#?}"
        );
        // Sessions of one visitor share a visitor_id, and different visitors differ.
        let mut id_of_label: HashMap<&str, u64> = HashMap::new();
        let mut label_of_id: HashMap<u64, &str> = HashMap::new();
        for (key, label) in &visitor_labels {
            let id = visitor_ids[key];
            assert_eq!(*id_of_label.entry(label).or_insert(id), id, "{tenant}: {label} has two visitor ids");
            assert_eq!(*label_of_id.entry(id).or_insert(label), label.as_str(), "{tenant}: visitors share an id");
        }
        let crossing = want.iter().filter(|s| s.started_at < midnight && s.ended_at >= midnight).count();
        assert!(crossing > 0, "{tenant}: the stream must hold sessions crossing midnight");
        let across = got.iter().find(|s| s.key == format!("{tenant}-x-0")).expect("the crossing session");
        assert_eq!(across.events, 3, "{tenant}: the cookieless session continues after midnight");
    }
}
