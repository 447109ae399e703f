//! Date ranges, presets and time buckets in a request's time zone, correct across daylight
//! saving changes: ranges resolve to half-open UTC instants; buckets are local minutes,
//! hours, days, ISO weeks or months, keyed by the UTC instant they start at.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike};
use chrono_tz::Tz;

use crate::dimension::Grain;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

/// A half-open range of UTC instants, epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeRange {
    /// First instant in the range.
    pub start_ms: i64,
    /// First instant after the range.
    pub end_ms: i64,
}

impl TimeRange {
    /// Whether `t` lies in the range.
    pub fn contains(&self, t: i64) -> bool {
        self.start_ms <= t && t < self.end_ms
    }

    /// Length in milliseconds.
    pub fn len_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }
}

/// A range as the request gave it, before the time zone and clock resolve it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RangeSpec {
    /// Inclusive local days.
    Dates(NaiveDate, NaiveDate),
    /// Half-open: from the first moment up to (not including) the second.
    Times(Moment, Moment),
    /// A named preset.
    Preset(Preset),
}

/// A datetime as given: with an offset it is an instant, without one it is read in the
/// request's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Moment {
    /// An instant, epoch ms.
    Instant(i64),
    /// A local time.
    Local(NaiveDateTime),
}

impl Moment {
    /// The instant in `tz`.
    pub fn resolve(self, tz: Tz) -> i64 {
        match self {
            Self::Instant(t) => t,
            Self::Local(local) => local_to_utc(tz, local),
        }
    }
}

/// The presets of ANALYTICS.md; each covers whole local days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    /// Today.
    Today,
    /// Yesterday.
    Yesterday,
    /// The last 7 days including today.
    Days7,
    /// The last 30 days including today.
    Days30,
    /// This calendar month, whole.
    Month,
    /// The previous calendar month.
    LastMonth,
    /// The last 12 calendar months including this one, whole.
    Months12,
    /// This calendar year, whole.
    Year,
    /// From the tenant's first event to today.
    All,
}

/// Every preset with its name.
pub const PRESETS: [(Preset, &str); 9] = [
    (Preset::Today, "today"),
    (Preset::Yesterday, "yesterday"),
    (Preset::Days7, "7d"),
    (Preset::Days30, "30d"),
    (Preset::Month, "month"),
    (Preset::LastMonth, "last_month"),
    (Preset::Months12, "12mo"),
    (Preset::Year, "year"),
    (Preset::All, "all"),
];

/// A range resolved in a zone: the instants, and the local days it covers when it is a range
/// of whole days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Resolved {
    /// The instants.
    pub range: TimeRange,
    /// First and last local day, for ranges of whole days.
    pub days: Option<(NaiveDate, NaiveDate)>,
}

/// The UTC instant of local time `local` in `tz`: the earlier one when the local time
/// happens twice (autumn), and the end of the gap when it does not happen (spring).
pub fn local_to_utc(tz: Tz, local: NaiveDateTime) -> i64 {
    if let Some(t) = tz.from_local_datetime(&local).earliest() {
        return t.timestamp_millis();
    }
    // Inside a gap: the first minute after it.
    let mut probe = local;
    for _ in 0..(24 * 60) {
        probe += Duration::minutes(1);
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            let minute = t.timestamp_millis().div_euclid(MINUTE_MS) * MINUTE_MS;
            return minute;
        }
    }
    local.and_utc().timestamp_millis()
}

/// The instant `t` as local time in `tz`.
pub fn to_local(tz: Tz, t: i64) -> DateTime<Tz> {
    let utc = DateTime::from_timestamp_millis(t).unwrap_or_default();
    utc.with_timezone(&tz)
}

/// The instant local day `day` starts at.
pub fn day_start(tz: Tz, day: NaiveDate) -> i64 {
    local_to_utc(tz, day.and_time(NaiveTime::MIN))
}

/// The local date of instant `t`.
pub fn local_date(tz: Tz, t: i64) -> NaiveDate {
    to_local(tz, t).date_naive()
}

/// Inclusive local days as instants.
pub fn days(tz: Tz, first: NaiveDate, last: NaiveDate) -> Resolved {
    let end = last.succ_opt().unwrap_or(last);
    Resolved {
        range: TimeRange { start_ms: day_start(tz, first), end_ms: day_start(tz, end) },
        days: Some((first, last)),
    }
}

fn first_of_month(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

fn add_months(day: NaiveDate, months: i32) -> NaiveDate {
    let total = day.year() * 12 + day.month0() as i32 + months;
    let (year, month0) = (total.div_euclid(12), total.rem_euclid(12) as u32);
    let mut d = day.day();
    loop {
        if let Some(date) = NaiveDate::from_ymd_opt(year, month0 + 1, d) {
            return date;
        }
        d -= 1;
    }
}

fn last_of_month(day: NaiveDate) -> NaiveDate {
    add_months(first_of_month(day), 1).pred_opt().unwrap_or(day)
}

/// Resolves a preset in `tz` at `now_ms`; `first_event_ms` bounds `all`.
pub fn resolve_preset(preset: Preset, tz: Tz, now_ms: i64, first_event_ms: Option<i64>) -> Resolved {
    let today = local_date(tz, now_ms);
    let back = |n: i64| today - Duration::days(n);
    let (first, last) = match preset {
        Preset::Today => (today, today),
        Preset::Yesterday => (back(1), back(1)),
        Preset::Days7 => (back(6), today),
        Preset::Days30 => (back(29), today),
        Preset::Month => (first_of_month(today), last_of_month(today)),
        Preset::LastMonth => {
            let previous = add_months(first_of_month(today), -1);
            (previous, last_of_month(previous))
        }
        Preset::Months12 => (add_months(first_of_month(today), -11), last_of_month(today)),
        Preset::Year => (
            NaiveDate::from_ymd_opt(today.year(), 1, 1).unwrap_or(today),
            NaiveDate::from_ymd_opt(today.year(), 12, 31).unwrap_or(today),
        ),
        Preset::All => (first_event_ms.map_or(today, |t| local_date(tz, t).min(today)), today),
    };
    days(tz, first, last)
}

/// Resolves a range spec (presets at `now_ms`).
pub fn resolve(spec: &RangeSpec, tz: Tz, now_ms: i64, first_event_ms: Option<i64>) -> Resolved {
    match spec {
        RangeSpec::Dates(first, last) => days(tz, *first, *last),
        RangeSpec::Times(start, end) => {
            Resolved { range: TimeRange { start_ms: start.resolve(tz), end_ms: end.resolve(tz) }, days: None }
        }
        RangeSpec::Preset(p) => resolve_preset(*p, tz, now_ms, first_event_ms),
    }
}

/// The range of equal length that ends just before `r` starts: the same number of days for
/// day ranges.
pub fn previous_period(tz: Tz, r: &Resolved) -> Resolved {
    match r.days {
        Some((first, last)) => {
            let n = (last - first).num_days() + 1;
            days(tz, first - Duration::days(n), first - Duration::days(1))
        }
        None => {
            let len = r.range.len_ms();
            Resolved { range: TimeRange { start_ms: r.range.start_ms - len, end_ms: r.range.start_ms }, days: None }
        }
    }
}

/// The same local dates or datetimes one year earlier (29 February becomes 28 February).
pub fn year_over_year(tz: Tz, r: &Resolved) -> Resolved {
    let shift = |d: NaiveDate| add_months(d, -12);
    match r.days {
        Some((first, last)) => days(tz, shift(first), shift(last)),
        None => {
            let back = |t: i64| {
                let local = to_local(tz, t).naive_local();
                local_to_utc(tz, shift(local.date()).and_time(local.time()))
            };
            Resolved { range: TimeRange { start_ms: back(r.range.start_ms), end_ms: back(r.range.end_ms) }, days: None }
        }
    }
}

/// The start of the local bucket of `grain` holding instant `t`.
pub fn bucket_start(grain: Grain, tz: Tz, t: i64) -> i64 {
    let local = to_local(tz, t);
    match grain {
        Grain::Minute => t - i64::from(local.second()) * 1000 - i64::from(local.timestamp_subsec_millis()),
        Grain::Hour => {
            t - i64::from(local.minute()) * MINUTE_MS
                - i64::from(local.second()) * 1000
                - i64::from(local.timestamp_subsec_millis())
        }
        Grain::Day => day_start(tz, local.date_naive()),
        Grain::Week => {
            let date = local.date_naive();
            day_start(tz, date - Duration::days(i64::from(date.weekday().num_days_from_monday())))
        }
        Grain::Month => day_start(tz, first_of_month(local.date_naive())),
    }
}

/// The start of the bucket after the one starting at `start`.
pub fn next_bucket(grain: Grain, tz: Tz, start: i64) -> i64 {
    let date = local_date(tz, start);
    let next = match grain {
        Grain::Minute => return start + MINUTE_MS,
        Grain::Hour => return bucket_start(grain, tz, start + HOUR_MS).max(start + MINUTE_MS),
        Grain::Day => date.succ_opt().unwrap_or(date),
        Grain::Week => date + Duration::days(7),
        Grain::Month => add_months(first_of_month(date), 1),
    };
    day_start(tz, next).max(start + MINUTE_MS)
}

/// The label of the bucket starting at `start`: hours and minutes as local time with the
/// offset (unique across daylight saving changes), days as `YYYY-MM-DD`, weeks as their
/// Monday or `range_start`'s day if later, months as `YYYY-MM`.
pub fn label(grain: Grain, tz: Tz, start: i64, range_start: i64) -> String {
    let local = to_local(tz, start);
    let offset = local.offset().fix();
    match grain {
        Grain::Minute => format!("{}{}", local.format("%Y-%m-%dT%H:%M:00"), offset),
        Grain::Hour => format!("{}{}", local.format("%Y-%m-%dT%H:00:00"), offset),
        Grain::Day => local.format("%Y-%m-%d").to_string(),
        Grain::Week => {
            if start < range_start {
                to_local(tz, range_start).format("%Y-%m-%d").to_string()
            } else {
                local.format("%Y-%m-%d").to_string()
            }
        }
        Grain::Month => local.format("%Y-%m").to_string(),
    }
}

/// The bucket starts of every bucket of `grain` that overlaps `range`, in order.
pub fn buckets(grain: Grain, tz: Tz, range: &TimeRange, max: usize) -> Vec<i64> {
    let mut out = Vec::new();
    if range.end_ms <= range.start_ms {
        return out;
    }
    let mut b = bucket_start(grain, tz, range.start_ms);
    while b < range.end_ms && out.len() < max {
        out.push(b);
        b = next_bucket(grain, tz, b);
    }
    out
}

/// Whether every offset `tz` uses during `range` is a whole number of hours, so that its local
/// hours, days, weeks and months are unions of UTC hours (what hourly rollups need).
pub fn whole_hour_offsets(tz: Tz, range: &TimeRange) -> bool {
    let mut t = range.start_ms;
    // Offsets change at most a few times a year; probing every 6 hours finds each one.
    loop {
        let seconds = to_local(tz, t).offset().fix().local_minus_utc();
        if seconds % 3600 != 0 {
            return false;
        }
        if t >= range.end_ms {
            return true;
        }
        t = (t + 6 * HOUR_MS).min(range.end_ms);
    }
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().filter(|_| text.len() == 10)
}

/// Parses an RFC 3339 datetime, or one without offset (a local time).
pub fn parse_datetime(text: &str) -> Option<Moment> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(Moment::Instant(t.timestamp_millis()));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
    {
        if let Ok(local) = NaiveDateTime::parse_from_str(text, format) {
            return Some(Moment::Local(local));
        }
    }
    None
}

/// An instant as RFC 3339 local time with offset, for responses.
pub fn rfc3339(tz: Tz, t: i64) -> String {
    to_local(tz, t).to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> Tz {
        "Europe/Berlin".parse().expect("zone")
    }

    fn ms(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text).expect("rfc3339").timestamp_millis()
    }

    fn date(text: &str) -> NaiveDate {
        parse_date(text).expect("date")
    }

    #[test]
    fn dates_are_inclusive_local_days() {
        let r = days(berlin(), date("2026-03-28"), date("2026-03-29"));
        assert_eq!(r.range.start_ms, ms("2026-03-28T00:00:00+01:00"));
        // 29 March is 23 hours long in Berlin.
        assert_eq!(r.range.end_ms, ms("2026-03-30T00:00:00+02:00"));
        assert_eq!(r.range.len_ms(), 47 * HOUR_MS);
    }

    #[test]
    fn hour_labels_are_unique_across_the_autumn_change() {
        let tz = berlin();
        let r = days(tz, date("2026-10-25"), date("2026-10-25"));
        let hours = buckets(Grain::Hour, tz, &r.range, 100);
        assert_eq!(hours.len(), 25, "25 local hours on the day clocks go back");
        let labels: Vec<String> = hours.iter().map(|h| label(Grain::Hour, tz, *h, r.range.start_ms)).collect();
        assert_eq!(labels[2], "2026-10-25T02:00:00+02:00");
        assert_eq!(labels[3], "2026-10-25T02:00:00+01:00");
        let unique: std::collections::HashSet<&String> = labels.iter().collect();
        assert_eq!(unique.len(), 25);
        let spring = days(tz, date("2026-03-29"), date("2026-03-29"));
        let hours = buckets(Grain::Hour, tz, &spring.range, 100);
        assert_eq!(hours.len(), 23);
        assert!(!hours.iter().any(|h| label(Grain::Hour, tz, *h, 0).starts_with("2026-03-29T02")));
    }

    #[test]
    fn days_weeks_and_months_bucket_locally() {
        let tz = berlin();
        let t = ms("2026-06-30T23:30:00+00:00"); // 1 July 01:30 in Berlin
        assert_eq!(label(Grain::Day, tz, bucket_start(Grain::Day, tz, t), 0), "2026-07-01");
        assert_eq!(label(Grain::Month, tz, bucket_start(Grain::Month, tz, t), 0), "2026-07");
        // 1 July 2026 is a Wednesday: its week starts on Monday 29 June.
        let week = bucket_start(Grain::Week, tz, t);
        assert_eq!(label(Grain::Week, tz, week, 0), "2026-06-29");
        let range_start = day_start(tz, date("2026-07-01"));
        assert_eq!(label(Grain::Week, tz, week, range_start), "2026-07-01", "the range start if later");
        let r = days(tz, date("2026-07-01"), date("2026-07-20"));
        let weeks: Vec<String> = buckets(Grain::Week, tz, &r.range, 10)
            .iter()
            .map(|w| label(Grain::Week, tz, *w, r.range.start_ms))
            .collect();
        assert_eq!(weeks, ["2026-07-01", "2026-07-06", "2026-07-13", "2026-07-20"]);
    }

    #[test]
    fn presets_cover_whole_local_days() {
        let tz = berlin();
        let now = ms("2026-12-04T10:00:00+00:00");
        let today = resolve_preset(Preset::Today, tz, now, None);
        assert_eq!(today.days, Some((date("2026-12-04"), date("2026-12-04"))));
        let d7 = resolve_preset(Preset::Days7, tz, now, None);
        assert_eq!(d7.days, Some((date("2026-11-28"), date("2026-12-04"))));
        let last = resolve_preset(Preset::LastMonth, tz, now, None);
        assert_eq!(last.days, Some((date("2026-11-01"), date("2026-11-30"))));
        let m12 = resolve_preset(Preset::Months12, tz, now, None);
        assert_eq!(m12.days, Some((date("2026-01-01"), date("2026-12-31"))));
        let all = resolve_preset(Preset::All, tz, now, Some(ms("2026-10-03T12:00:00+00:00")));
        assert_eq!(all.days, Some((date("2026-10-03"), date("2026-12-04"))));
    }

    #[test]
    fn comparison_ranges() {
        let tz = berlin();
        let r = days(tz, date("2026-03-01"), date("2026-03-31"));
        assert_eq!(previous_period(tz, &r).days, Some((date("2026-01-29"), date("2026-02-28"))));
        let leap = days(tz, date("2028-02-29"), date("2028-03-01"));
        assert_eq!(year_over_year(tz, &leap).days, Some((date("2027-02-28"), date("2027-03-01"))));
        let instants = Resolved { range: TimeRange { start_ms: 10 * HOUR_MS, end_ms: 12 * HOUR_MS }, days: None };
        assert_eq!(previous_period(tz, &instants).range, TimeRange { start_ms: 8 * HOUR_MS, end_ms: 10 * HOUR_MS });
    }

    #[test]
    fn datetimes_without_offset_are_local() {
        let tz = berlin();
        let at = |text: &str| parse_datetime(text).map(|m| m.resolve(tz));
        assert_eq!(at("2026-07-01T12:00:00"), Some(ms("2026-07-01T12:00:00+02:00")));
        assert_eq!(at("2026-07-01T12:00:00Z"), Some(ms("2026-07-01T12:00:00+00:00")));
        // 02:30 does not exist on 29 March in Berlin: the end of the gap.
        assert_eq!(at("2026-03-29T02:30"), Some(ms("2026-03-29T03:00:00+02:00")));
        assert_eq!(at("yesterday"), None);
        assert_eq!(parse_date("2026-7-1"), None);
    }

    #[test]
    fn half_hour_zones_are_not_hour_aligned() {
        let kolkata: Tz = "Asia/Kolkata".parse().expect("zone");
        let r = TimeRange { start_ms: 0, end_ms: 86_400_000 };
        assert!(!whole_hour_offsets(kolkata, &r));
        assert!(whole_hour_offsets(berlin(), &r));
    }
}
