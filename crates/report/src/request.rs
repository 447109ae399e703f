//! The report request: parsed from JSON and checked field by field, every error naming the
//! JSON path it is about.

use chrono_tz::Tz;
use serde_json::{Map, Value};

use crate::dimension::{Dimension, EventDim, Grain};
use crate::error::{RequestError, code};
use crate::filter::{Filter, parse_filters};
use crate::metric::Metric;
use crate::time::{PRESETS, RangeSpec, parse_date, parse_datetime};

/// Most metrics in one request.
pub const MAX_METRICS: usize = 10;
/// Most dimensions in one request.
pub const MAX_DIMENSIONS: usize = 5;
/// Rows per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 1000;
/// Largest `limit`.
pub const MAX_LIMIT: usize = 10_000;
/// Largest `offset`.
pub const MAX_OFFSET: usize = 1_000_000;

/// Which endpoint the request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportKind {
    /// `POST /api/v1/report`.
    Standard,
    /// `POST /api/v1/report/realtime`: the last 30 minutes; `time:minute` and
    /// `current_visitors` are available.
    Realtime,
}

/// How unique counts are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Accuracy {
    /// Exact (the default).
    #[default]
    Exact,
    /// HyperLogLog sketches from rollups where they answer; the error bound is reported.
    Fast,
}

/// A comparison range.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Compare {
    /// The range of equal length just before.
    PreviousPeriod,
    /// The same dates a year earlier.
    YearOverYear,
    /// A range of the caller's choosing.
    Custom(RangeSpec),
}

/// A `having` operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HavingOp {
    /// `=`.
    Eq,
    /// `!=`.
    Neq,
    /// `>`.
    Gt,
    /// `>=`.
    Gte,
    /// `<`.
    Lt,
    /// `<=`.
    Lte,
    /// Within `[low, high]`, both included.
    Between,
}

/// One `having` condition on a metric's shown (rounded) value.
#[derive(Debug, Clone, PartialEq)]
pub struct Having {
    /// The operator.
    pub op: HavingOp,
    /// The metric tested (one of the request's).
    pub metric: Metric,
    /// The value, or the low end of `between`.
    pub value: f64,
    /// The high end of `between`.
    pub high: f64,
}

impl Having {
    /// Whether `value` (`None` for a null metric) passes; nulls pass only `neq`.
    pub fn passes(&self, value: Option<f64>) -> bool {
        let Some(v) = value else {
            return self.op == HavingOp::Neq;
        };
        match self.op {
            HavingOp::Eq => v == self.value,
            HavingOp::Neq => v != self.value,
            HavingOp::Gt => v > self.value,
            HavingOp::Gte => v >= self.value,
            HavingOp::Lt => v < self.value,
            HavingOp::Lte => v <= self.value,
            HavingOp::Between => self.value <= v && v <= self.high,
        }
    }
}

/// What rows are sorted by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OrderKey {
    /// The `i`-th requested metric.
    Metric(usize),
    /// The `i`-th requested dimension.
    Dimension(usize),
}

/// One sort key with its direction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderBy {
    /// What is compared.
    pub key: OrderKey,
    /// Descending when true.
    pub descending: bool,
}

/// What the response includes besides rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Include {
    /// Totals over all rows (computed, not summed). Default true.
    pub totals: bool,
    /// Every time bucket of the range in `meta.time_labels`. Default true when there is a
    /// time dimension.
    pub time_labels: bool,
    /// The number of rows before `limit` and `offset` in `meta.total_rows`. Default false.
    pub total_rows: bool,
}

/// A checked report request.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    /// Which endpoint.
    pub kind: ReportKind,
    /// The range (always set for standard reports; realtime has its own).
    pub range: Option<RangeSpec>,
    /// The zone; `None` means the tenant's.
    pub timezone: Option<Tz>,
    /// 1 to 10 metrics.
    pub metrics: Vec<Metric>,
    /// 0 to 5 dimensions, at most one of time.
    pub dimensions: Vec<Dimension>,
    /// The filters, all of which must hold.
    pub filter: Option<Filter>,
    /// Conditions on the rows' shown metric values.
    pub having: Vec<Having>,
    /// Sort keys; the default order follows when empty.
    pub order_by: Vec<OrderBy>,
    /// Rows per page.
    pub limit: usize,
    /// Rows skipped.
    pub offset: usize,
    /// A comparison.
    pub compare: Option<Compare>,
    /// Extra parts of the response.
    pub include: Include,
    /// How unique counts are computed.
    pub accuracy: Accuracy,
}

impl ReportRequest {
    /// The position of the time dimension, if there is one.
    pub fn time_dimension(&self) -> Option<(usize, Grain)> {
        self.dimensions.iter().enumerate().find_map(|(i, d)| d.grain().map(|g| (i, g)))
    }

    /// The sort keys: the request's, then the default order (time ascending, else the first
    /// metric descending), then every dimension ascending, so that pages never overlap.
    pub fn effective_order(&self) -> Vec<OrderBy> {
        let mut order = self.order_by.clone();
        if order.is_empty() {
            match self.time_dimension() {
                Some((i, _)) => order.push(OrderBy { key: OrderKey::Dimension(i), descending: false }),
                None => order.push(OrderBy { key: OrderKey::Metric(0), descending: true }),
            }
        }
        for i in 0..self.dimensions.len() {
            if !order.iter().any(|o| o.key == OrderKey::Dimension(i)) {
                order.push(OrderBy { key: OrderKey::Dimension(i), descending: false });
            }
        }
        order
    }
}

const FIELDS: [&str; 12] = [
    "date_range",
    "timezone",
    "metrics",
    "dimensions",
    "filters",
    "having",
    "order_by",
    "limit",
    "offset",
    "compare",
    "include",
    "accuracy",
];

fn invalid(path: &str, message: impl Into<String>) -> RequestError {
    RequestError::new(code::INVALID_REQUEST, path, message)
}

/// Parses and checks a request body.
pub fn parse(body: &Value, kind: ReportKind) -> Result<ReportRequest, RequestError> {
    let object = body.as_object().ok_or_else(|| invalid("", "the request must be a JSON object"))?;
    for key in object.keys() {
        if !FIELDS.contains(&key.as_str()) {
            return Err(invalid(key, format!("unknown field {key:?}; fields are {}", FIELDS.join(", "))));
        }
    }
    let range = match (kind, object.get("date_range")) {
        (ReportKind::Standard, Some(v)) => Some(parse_range(v, "date_range", code::INVALID_DATE_RANGE)?),
        (ReportKind::Standard, None) => {
            return Err(RequestError::new(code::INVALID_DATE_RANGE, "date_range", "date_range is required"));
        }
        (ReportKind::Realtime, Some(_)) => {
            return Err(RequestError::new(
                code::INVALID_DATE_RANGE,
                "date_range",
                "the realtime report always covers the last 30 minutes",
            ));
        }
        (ReportKind::Realtime, None) => None,
    };
    let timezone = match object.get("timezone") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(hourglass_types::settings::parse_timezone(name).ok_or_else(|| {
            RequestError::new(code::INVALID_TIMEZONE, "timezone", format!("{name:?} is not an IANA time zone"))
        })?),
        Some(_) => return Err(RequestError::new(code::INVALID_TIMEZONE, "timezone", "timezone must be a string")),
    };
    let metrics = parse_metrics(object, kind)?;
    let dimensions = parse_dimensions(object, kind)?;
    let filter = match object.get("filters") {
        None | Some(Value::Null) => None,
        Some(v) => parse_filters(v)?,
    };
    check_conversion_goal(&metrics, &dimensions, filter.as_ref())?;
    let having = parse_having(object.get("having"), &metrics)?;
    let order_by = parse_order(object.get("order_by"), &metrics, &dimensions)?;
    let limit = parse_count(object.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let offset = parse_count(object.get("offset"), "offset", 0, 0, MAX_OFFSET)?;
    let compare = match (kind, object.get("compare")) {
        (_, None | Some(Value::Null)) => None,
        (ReportKind::Realtime, Some(_)) => {
            return Err(RequestError::new(code::INVALID_COMPARE, "compare", "the realtime report has no comparison"));
        }
        (ReportKind::Standard, Some(v)) => Some(parse_compare(v)?),
    };
    let include = parse_include(object.get("include"), dimensions.iter().any(|d| d.grain().is_some()))?;
    let accuracy = match object.get("accuracy") {
        None | Some(Value::Null) => Accuracy::Exact,
        Some(Value::String(s)) if s == "exact" => Accuracy::Exact,
        Some(Value::String(s)) if s == "fast" => Accuracy::Fast,
        Some(_) => return Err(invalid("accuracy", "accuracy is \"exact\" or \"fast\"")),
    };
    Ok(ReportRequest {
        kind,
        range,
        timezone,
        metrics,
        dimensions,
        filter,
        having,
        order_by,
        limit,
        offset,
        compare,
        include,
        accuracy,
    })
}

fn parse_range(value: &Value, path: &str, error_code: &'static str) -> Result<RangeSpec, RequestError> {
    let bad = |message: String| RequestError::new(error_code, path, message);
    match value {
        Value::String(name) => {
            PRESETS.iter().find(|(_, n)| n == name).map(|(p, _)| RangeSpec::Preset(*p)).ok_or_else(|| {
                let names: Vec<&str> = PRESETS.iter().map(|(_, n)| *n).collect();
                bad(format!("unknown preset {name:?}; use two dates or datetimes, or one of {}", names.join(", ")))
            })
        }
        Value::Array(items) if items.len() == 2 => {
            let texts: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            if texts.len() != 2 {
                return Err(bad("a range is two strings: [from, to]".into()));
            }
            if let (Some(first), Some(last)) = (parse_date(texts[0]), parse_date(texts[1])) {
                if last < first {
                    return Err(RequestError::new(error_code, format!("{path}[1]"), "the range ends before it starts"));
                }
                return Ok(RangeSpec::Dates(first, last));
            }
            let mut moments = Vec::with_capacity(2);
            for (i, text) in texts.iter().enumerate() {
                if parse_date(text).is_some() {
                    return Err(RequestError::new(
                        error_code,
                        format!("{path}[{i}]"),
                        "use two dates or two datetimes, not one of each",
                    ));
                }
                moments.push(parse_datetime(text).ok_or_else(|| {
                    RequestError::new(
                        error_code,
                        format!("{path}[{i}]"),
                        format!("{text:?} is not a date (YYYY-MM-DD) or datetime (YYYY-MM-DDTHH:MM:SS[+HH:MM])"),
                    )
                })?);
            }
            Ok(RangeSpec::Times(moments[0], moments[1]))
        }
        _ => Err(bad("a range is a preset name or two dates or datetimes".into())),
    }
}

fn string_list<'a>(object: &'a Map<String, Value>, field: &str) -> Result<Vec<(usize, &'a str)>, RequestError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(|s| (i, s)).ok_or_else(|| invalid(&format!("{field}[{i}]"), "must be a string"))
            })
            .collect(),
        Some(_) => Err(invalid(field, format!("{field} must be a list of strings"))),
    }
}

fn parse_metrics(object: &Map<String, Value>, kind: ReportKind) -> Result<Vec<Metric>, RequestError> {
    let names = string_list(object, "metrics")?;
    if names.is_empty() {
        return Err(RequestError::new(code::UNKNOWN_METRIC, "metrics", "ask for 1 to 10 metrics"));
    }
    if names.len() > MAX_METRICS {
        return Err(RequestError::new(code::UNKNOWN_METRIC, "metrics", format!("at most {MAX_METRICS} metrics")));
    }
    let mut metrics = Vec::with_capacity(names.len());
    for (i, name) in names {
        let path = format!("metrics[{i}]");
        let metric = Metric::parse(name)
            .ok_or_else(|| RequestError::new(code::UNKNOWN_METRIC, &path, format!("unknown metric {name:?}")))?;
        if metric == Metric::CurrentVisitors && kind == ReportKind::Standard {
            return Err(RequestError::new(
                code::UNKNOWN_METRIC,
                &path,
                "current_visitors is a realtime metric: POST /api/v1/report/realtime",
            ));
        }
        if metrics.contains(&metric) {
            return Err(invalid(&path, format!("{name} is asked for twice")));
        }
        metrics.push(metric);
    }
    Ok(metrics)
}

fn parse_dimensions(object: &Map<String, Value>, kind: ReportKind) -> Result<Vec<Dimension>, RequestError> {
    let names = string_list(object, "dimensions")?;
    if names.len() > MAX_DIMENSIONS {
        return Err(RequestError::new(
            code::UNKNOWN_DIMENSION,
            "dimensions",
            format!("at most {MAX_DIMENSIONS} dimensions"),
        ));
    }
    let mut dimensions: Vec<Dimension> = Vec::with_capacity(names.len());
    for (i, name) in names {
        let path = format!("dimensions[{i}]");
        let dimension = Dimension::parse(name)
            .ok_or_else(|| RequestError::new(code::UNKNOWN_DIMENSION, &path, format!("unknown dimension {name:?}")))?;
        if dimension.grain().is_some() && dimensions.iter().any(|d| d.grain().is_some()) {
            return Err(RequestError::new(
                code::MULTIPLE_TIME_DIMENSIONS,
                &path,
                "at most one time dimension per request",
            ));
        }
        if dimension == Dimension::Time(Grain::Minute) && kind == ReportKind::Standard {
            return Err(RequestError::new(
                code::UNKNOWN_DIMENSION,
                &path,
                "time:minute is for the realtime report: POST /api/v1/report/realtime",
            ));
        }
        if dimensions.contains(&dimension) {
            return Err(invalid(&path, format!("{name} is asked for twice")));
        }
        dimensions.push(dimension);
    }
    Ok(dimensions)
}

/// `conversion_rate` needs a goal: an `event:name` filter leaf or dimension.
fn check_conversion_goal(
    metrics: &[Metric],
    dimensions: &[Dimension],
    filter: Option<&Filter>,
) -> Result<(), RequestError> {
    let Some(i) = metrics.iter().position(|m| *m == Metric::ConversionRate) else {
        return Ok(());
    };
    let name = Dimension::Event(EventDim::Name);
    let in_filter = filter.is_some_and(|f| f.leaves().iter().any(|l| l.dimension == name));
    if in_filter || dimensions.contains(&name) {
        return Ok(());
    }
    Err(invalid(
        &format!("metrics[{i}]"),
        "conversion_rate needs a goal: an event:name filter or the event:name dimension",
    ))
}

fn metric_index(metrics: &[Metric], name: &str) -> Option<usize> {
    Metric::parse(name).and_then(|m| metrics.iter().position(|x| *x == m))
}

fn parse_having(value: Option<&Value>, metrics: &[Metric]) -> Result<Vec<Having>, RequestError> {
    let bad = |path: &str, message: &str| RequestError::new(code::INVALID_HAVING, path, message);
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(bad("having", "having is a list of [op, metric, value]")),
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("having[{i}]");
        let parts =
            item.as_array().filter(|p| p.len() == 3).ok_or_else(|| bad(&path, "a condition is [op, metric, value]"))?;
        let op = match parts[0].as_str().unwrap_or_default() {
            "eq" => HavingOp::Eq,
            "neq" => HavingOp::Neq,
            "gt" => HavingOp::Gt,
            "gte" => HavingOp::Gte,
            "lt" => HavingOp::Lt,
            "lte" => HavingOp::Lte,
            "between" => HavingOp::Between,
            _ => return Err(bad(&format!("{path}[0]"), "the operator is eq, neq, gt, gte, lt, lte or between")),
        };
        let name = parts[1].as_str().unwrap_or_default();
        let metric = metric_index(metrics, name)
            .map(|m| metrics[m])
            .ok_or_else(|| bad(&format!("{path}[1]"), "having tests one of the request's metrics"))?;
        let number = |v: &Value, p: String| {
            v.as_f64().ok_or_else(|| RequestError::new(code::INVALID_HAVING, p, "must be a number"))
        };
        let (low, high) = if op == HavingOp::Between {
            let pair = parts[2]
                .as_array()
                .filter(|p| p.len() == 2)
                .ok_or_else(|| bad(&format!("{path}[2]"), "between takes [low, high]"))?;
            (number(&pair[0], format!("{path}[2][0]"))?, number(&pair[1], format!("{path}[2][1]"))?)
        } else {
            let v = number(&parts[2], format!("{path}[2]"))?;
            (v, v)
        };
        out.push(Having { op, metric, value: low, high });
    }
    Ok(out)
}

fn parse_order(
    value: Option<&Value>,
    metrics: &[Metric],
    dimensions: &[Dimension],
) -> Result<Vec<OrderBy>, RequestError> {
    let bad = |path: &str, message: String| RequestError::new(code::INVALID_ORDER_BY, path, message);
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(bad("order_by", "order_by is a list of [metric or dimension, \"asc\"|\"desc\"]".into())),
    };
    let mut out: Vec<OrderBy> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("order_by[{i}]");
        let parts = item
            .as_array()
            .filter(|p| p.len() == 2)
            .ok_or_else(|| bad(&path, "a sort key is [name, \"asc\"|\"desc\"]".into()))?;
        let name = parts[0].as_str().unwrap_or_default();
        let key = if let Some(m) = metric_index(metrics, name) {
            OrderKey::Metric(m)
        } else if let Some(d) = Dimension::parse(name).and_then(|d| dimensions.iter().position(|x| *x == d)) {
            OrderKey::Dimension(d)
        } else {
            return Err(bad(
                &format!("{path}[0]"),
                format!("{name:?} is not one of the request's metrics or dimensions"),
            ));
        };
        let descending = match parts[1].as_str() {
            Some("asc") => false,
            Some("desc") => true,
            _ => return Err(bad(&format!("{path}[1]"), "the direction is \"asc\" or \"desc\"".into())),
        };
        if out.iter().any(|o| o.key == key) {
            return Err(bad(&format!("{path}[0]"), format!("{name} is sorted by twice")));
        }
        out.push(OrderBy { key, descending });
    }
    Ok(out)
}

fn parse_count(
    value: Option<&Value>,
    field: &str,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, RequestError> {
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(v) => {
            v.as_u64().and_then(|n| usize::try_from(n).ok()).filter(|n| (min..=max).contains(n)).ok_or_else(|| {
                RequestError::new(code::INVALID_PAGINATION, field, format!("{field} is an integer from {min} to {max}"))
            })
        }
    }
}

fn parse_compare(value: &Value) -> Result<Compare, RequestError> {
    match value {
        Value::String(s) if s == "previous_period" => Ok(Compare::PreviousPeriod),
        Value::String(s) if s == "year_over_year" => Ok(Compare::YearOverYear),
        Value::Object(o) if o.len() == 1 && o.contains_key("date_range") => {
            let range = o.get("date_range").unwrap_or(&Value::Null);
            match parse_range(range, "compare.date_range", code::INVALID_COMPARE)? {
                RangeSpec::Preset(_) => Err(RequestError::new(
                    code::INVALID_COMPARE,
                    "compare.date_range",
                    "a custom comparison is two dates or datetimes",
                )),
                spec => Ok(Compare::Custom(spec)),
            }
        }
        _ => Err(RequestError::new(
            code::INVALID_COMPARE,
            "compare",
            "compare is \"previous_period\", \"year_over_year\" or {\"date_range\": [from, to]}",
        )),
    }
}

fn parse_include(value: Option<&Value>, has_time: bool) -> Result<Include, RequestError> {
    let mut include = Include { totals: true, time_labels: has_time, total_rows: false };
    let mut set = |name: &str, on: bool, path: &str| -> Result<(), RequestError> {
        match name {
            "totals" => include.totals = on,
            "time_labels" => include.time_labels = on,
            "total_rows" => include.total_rows = on,
            other => {
                return Err(invalid(path, format!("unknown include {other:?}; use totals, time_labels, total_rows")));
            }
        }
        Ok(())
    };
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) => {
            for (key, v) in o {
                let on = v.as_bool().ok_or_else(|| invalid(&format!("include.{key}"), "must be true or false"))?;
                set(key, on, &format!("include.{key}"))?;
            }
        }
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let name = item.as_str().ok_or_else(|| invalid(&format!("include[{i}]"), "must be a string"))?;
                set(name, true, &format!("include[{i}]"))?;
            }
        }
        Some(_) => return Err(invalid("include", "include is an object of booleans or a list of names")),
    }
    Ok(include)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error(body: Value) -> RequestError {
        parse(&body, ReportKind::Standard).expect_err("invalid")
    }

    #[test]
    fn a_full_request_parses() {
        let r = parse(
            &json!({
                "date_range": ["2026-11-01", "2026-11-30"],
                "timezone": "Europe/Berlin",
                "metrics": ["visitors", "bounce_rate"],
                "dimensions": ["visit:source", "time:day"],
                "filters": [["is", "visit:country", ["DE"]]],
                "having": [["gt", "visitors", 10]],
                "order_by": [["visitors", "desc"]],
                "limit": 50,
                "offset": 100,
                "compare": "previous_period",
                "include": {"total_rows": true},
                "accuracy": "fast"
            }),
            ReportKind::Standard,
        )
        .expect("valid");
        assert_eq!(r.metrics, [Metric::Visitors, Metric::BounceRate]);
        assert_eq!(r.time_dimension(), Some((1, Grain::Day)));
        assert!(r.include.totals && r.include.time_labels && r.include.total_rows);
        assert_eq!((r.limit, r.offset), (50, 100));
        assert_eq!(r.accuracy, Accuracy::Fast);
        assert_eq!(
            r.effective_order(),
            [
                OrderBy { key: OrderKey::Metric(0), descending: true },
                OrderBy { key: OrderKey::Dimension(0), descending: false },
                OrderBy { key: OrderKey::Dimension(1), descending: false }
            ]
        );
    }

    #[test]
    fn errors_have_stable_codes_and_paths() {
        let base = || json!({"date_range": "7d", "metrics": ["visitors"]});
        let with = |key: &str, value: Value| {
            let mut b = base();
            b[key] = value;
            error(b)
        };
        let e = with("metrics", json!(["visitors", "uniques"]));
        assert_eq!((e.code, e.path.as_str()), (code::UNKNOWN_METRIC, "metrics[1]"));
        let e = with("dimensions", json!(["time:day", "visit:source", "time:week"]));
        assert_eq!((e.code, e.path.as_str()), (code::MULTIPLE_TIME_DIMENSIONS, "dimensions[2]"));
        let e = with("filters", json!([["matches", "event:page", ["("]]]));
        assert_eq!((e.code, e.path.as_str()), (code::INVALID_REGEX, "filters[0][2][0]"));
        let e = with("date_range", json!(["2026-11-30", "2026-11-01"]));
        assert_eq!((e.code, e.path.as_str()), (code::INVALID_DATE_RANGE, "date_range[1]"));
        let e = with("date_range", json!("last_week"));
        assert_eq!((e.code, e.path.as_str()), (code::INVALID_DATE_RANGE, "date_range"));
        let e = with("date_range", json!(["2026-11-01", "2026-11-02T10:00"]));
        assert_eq!(e.path, "date_range[0]");
        let e = with("timezone", json!("Mars/Base"));
        assert_eq!(e.code, code::INVALID_TIMEZONE);
        let e = with("limit", json!(0));
        assert_eq!((e.code, e.path.as_str()), (code::INVALID_PAGINATION, "limit"));
        let e = with("order_by", json!([["visits", "desc"]]));
        assert_eq!((e.code, e.path.as_str()), (code::INVALID_ORDER_BY, "order_by[0][0]"));
        let e = with("metrics", json!(["visitors", "conversion_rate"]));
        assert_eq!((e.code, e.path.as_str()), (code::INVALID_REQUEST, "metrics[1]"));
        let e = with("dimensions", json!(["time:minute"]));
        assert_eq!((e.code, e.path.as_str()), (code::UNKNOWN_DIMENSION, "dimensions[0]"));
        let e = with("surprise", json!(1));
        assert_eq!((e.code, e.path.as_str()), (code::INVALID_REQUEST, "surprise"));
        let e = with("having", json!([["gt", "visits", 1]]));
        assert_eq!((e.code, e.path.as_str()), (code::INVALID_HAVING, "having[0][1]"));
        let e = error(json!({"metrics": ["visitors"]}));
        assert_eq!(e.code, code::INVALID_DATE_RANGE);
    }

    #[test]
    fn a_goal_makes_conversion_rate_valid() {
        let ok = |body: Value| parse(&body, ReportKind::Standard).is_ok();
        assert!(ok(
            json!({"date_range": "7d", "metrics": ["conversion_rate"], "filters": [["is", "event:name", ["signup"]]]})
        ));
        assert!(ok(json!({"date_range": "7d", "metrics": ["conversion_rate"], "dimensions": ["event:name"]})));
    }

    #[test]
    fn realtime_has_its_own_range_and_metrics() {
        let r = parse(&json!({"metrics": ["current_visitors"], "dimensions": ["time:minute"]}), ReportKind::Realtime);
        assert!(r.is_ok());
        let e =
            parse(&json!({"date_range": "7d", "metrics": ["visitors"]}), ReportKind::Realtime).expect_err("no range");
        assert_eq!(e.path, "date_range");
        let e = error(json!({"date_range": "7d", "metrics": ["current_visitors"]}));
        assert_eq!(e.path, "metrics[0]");
    }

    #[test]
    fn having_passes_on_shown_values() {
        let h = Having { op: HavingOp::Between, metric: Metric::Visits, value: 2.0, high: 4.0 };
        assert!(h.passes(Some(2.0)) && h.passes(Some(4.0)) && !h.passes(Some(4.5)) && !h.passes(None));
        let neq = Having { op: HavingOp::Neq, metric: Metric::BounceRate, value: 0.0, high: 0.0 };
        assert!(neq.passes(None));
    }
}
