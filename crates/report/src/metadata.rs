//! `GET /api/v1/metadata`: what a report can ask for.

use serde_json::{Value, json};

use crate::dimension::{GRAINS, VISIT_DIMS};
use crate::filter::OPS;
use crate::metric::METRICS;
use crate::time::PRESETS;

/// Days of events the prop keys are listed from.
pub const PROP_KEY_DAYS: i64 = 30;

fn describe_metric(name: &str) -> &'static str {
    match name {
        "visitors" => "distinct visitors of the row's sessions",
        "visits" => "sessions that start in the range",
        "pageviews" => "events named pageview",
        "events" => "all events",
        "views_per_visit" => "pageviews of the sessions per session, 2 decimals",
        "bounce_rate" => {
            "percent of sessions with fewer than 2 pageviews and no interactive event; with a page filter or dimension, of sessions entering on the page"
        }
        "visit_duration" => "mean session duration in seconds, bounces counted as 0",
        "engagement_rate" => "percent of sessions over 10 s, with 2+ pageviews or a key event, 1 decimal",
        "conversion_rate" => {
            "percent of visitors who did the goal (needs an event:name filter or dimension), 2 decimals"
        }
        "revenue" => "sum of revenue in the reporting currency",
        "current_visitors" => "distinct visitors with a pageview in the last 5 minutes (realtime only)",
        _ => "",
    }
}

/// The static part of the metadata, with `prop_keys` added.
pub fn document(prop_keys: &[String]) -> Value {
    let mut dimensions = vec![
        json!({"name": "event:name", "scope": "event", "type": "string"}),
        json!({"name": "event:page", "scope": "event", "type": "string"}),
        json!({"name": "event:hostname", "scope": "event", "type": "string"}),
    ];
    for key in prop_keys {
        dimensions.push(json!({"name": format!("event:props:{key}"), "scope": "event", "type": "string"}));
    }
    for (_, name) in VISIT_DIMS {
        dimensions.push(json!({"name": format!("visit:{name}"), "scope": "visit", "type": "string"}));
    }
    for (_, name) in GRAINS {
        let mut d = json!({"name": format!("time:{name}"), "scope": "time", "type": "time"});
        if name == "minute" {
            d["realtime_only"] = json!(true);
        }
        dimensions.push(d);
    }
    let metrics: Vec<Value> = METRICS
        .iter()
        .map(|(m, name)| {
            json!({
                "name": name,
                "type": m.value_type(),
                "decimals": m.decimals(),
                "scope": if m.is_session_metric() { "visit" } else { "event" },
                "description": describe_metric(name),
            })
        })
        .collect();
    json!({
        "dimensions": dimensions,
        "metrics": metrics,
        "filter_operators": OPS.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        "date_range_presets": PRESETS.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        "prop_keys": prop_keys,
        "prop_keys_days": PROP_KEY_DAYS,
        "limits": {
            "metrics": crate::request::MAX_METRICS,
            "dimensions": crate::request::MAX_DIMENSIONS,
            "limit": crate::request::MAX_LIMIT,
        }
    })
}
