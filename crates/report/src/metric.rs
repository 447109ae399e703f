//! Report metrics: names, types, rounding and how a comparison's change is computed.

/// One metric of ANALYTICS.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Distinct visitors of the row's sessions.
    Visitors,
    /// The row's sessions.
    Visits,
    /// The row's events named `pageview`.
    Pageviews,
    /// The row's events.
    Events,
    /// Pageviews of the row's sessions per session.
    ViewsPerVisit,
    /// Percent of the row's sessions that bounced.
    BounceRate,
    /// Mean session duration in seconds, bounces counted as 0.
    VisitDuration,
    /// Percent of the row's sessions that were engaged.
    EngagementRate,
    /// Percent of visitors who did the goal.
    ConversionRate,
    /// Revenue in the reporting currency.
    Revenue,
    /// Distinct visitors with a pageview in the last 5 minutes.
    CurrentVisitors,
}

/// Every metric with its name, in the order `GET /api/v1/metadata` lists them.
pub const METRICS: [(Metric, &str); 11] = [
    (Metric::Visitors, "visitors"),
    (Metric::Visits, "visits"),
    (Metric::Pageviews, "pageviews"),
    (Metric::Events, "events"),
    (Metric::ViewsPerVisit, "views_per_visit"),
    (Metric::BounceRate, "bounce_rate"),
    (Metric::VisitDuration, "visit_duration"),
    (Metric::EngagementRate, "engagement_rate"),
    (Metric::ConversionRate, "conversion_rate"),
    (Metric::Revenue, "revenue"),
    (Metric::CurrentVisitors, "current_visitors"),
];

impl Metric {
    /// Parses a metric name; `None` for an unknown one.
    pub fn parse(name: &str) -> Option<Self> {
        METRICS.iter().find(|(_, n)| *n == name).map(|(m, _)| *m)
    }

    /// The metric's name in requests and responses.
    pub fn name(self) -> &'static str {
        METRICS.iter().find(|(m, _)| *m == self).map_or("?", |(_, n)| n)
    }

    /// The JSON type clients see: `integer`, `number` or `percentage`.
    pub fn value_type(self) -> &'static str {
        match self {
            Self::Visitors | Self::Visits | Self::Pageviews | Self::Events | Self::CurrentVisitors => "integer",
            Self::VisitDuration => "integer",
            Self::ViewsPerVisit | Self::Revenue => "number",
            Self::BounceRate | Self::EngagementRate | Self::ConversionRate => "percentage",
        }
    }

    /// Decimals of the shown value (ANALYTICS.md's rounding; revenue to cents).
    pub fn decimals(self) -> i32 {
        match self {
            Self::BounceRate | Self::VisitDuration => 0,
            Self::EngagementRate => 1,
            Self::ViewsPerVisit | Self::ConversionRate | Self::Revenue => 2,
            _ => 0,
        }
    }

    /// Whether a comparison's change is the difference in points rather than a percent change.
    pub fn is_rate(self) -> bool {
        matches!(self, Self::BounceRate | Self::EngagementRate | Self::ConversionRate)
    }

    /// Whether the value is computed over sessions (rather than events).
    pub fn is_session_metric(self) -> bool {
        !matches!(self, Self::Pageviews | Self::Events | Self::Revenue | Self::CurrentVisitors)
    }
}

/// A metric's exact value: a ratio of integers (counts, sums of whole seconds) or, for
/// revenue, a float sum. Rounding and comparison changes are computed from it exactly, so
/// that 12.5 rounds to 13 however the division would have come out in binary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Exact {
    /// `numerator / denominator`, the denominator positive.
    Ratio(i128, i128),
    /// A sum of floats.
    Float(f64),
}

impl Exact {
    /// A whole number.
    pub fn count(n: u64) -> Self {
        Self::Ratio(i128::from(n), 1)
    }

    /// `numerator / denominator`; `None` when the denominator is 0.
    pub fn ratio(numerator: i128, denominator: i128) -> Option<Self> {
        match denominator {
            0 => None,
            d if d < 0 => Some(Self::Ratio(-numerator, -d)),
            d => Some(Self::Ratio(numerator, d)),
        }
    }

    /// The value as a float, for sorting and `having`.
    pub fn to_f64(self) -> f64 {
        match self {
            Self::Ratio(n, d) => n as f64 / d as f64,
            Self::Float(f) => f,
        }
    }

    /// The value rounded half away from zero to `decimals` places.
    pub fn rounded(self, decimals: i32) -> f64 {
        match self {
            Self::Ratio(n, d) => round_ratio(n, d, decimals),
            Self::Float(f) => round_float(f, decimals),
        }
    }
}

/// `n / d` rounded half away from zero to `decimals` places, in integer arithmetic.
pub fn round_ratio(n: i128, d: i128, decimals: i32) -> f64 {
    let scale = 10i128.pow(decimals.max(0) as u32);
    let scaled = n * scale;
    let (mut q, r) = (scaled / d, scaled % d);
    if 2 * r.abs() >= d.abs() {
        q += if (scaled < 0) != (d < 0) { -1 } else { 1 };
    }
    q as f64 / scale as f64
}

/// `value` rounded half away from zero to `decimals` places (for sums of floats).
pub fn round_float(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// A comparison's change from `previous` to `current` (both exact, unrounded), one decimal:
/// the difference in points for rates, else the percent change; `None` where undefined
/// (either side missing; a percent change from 0).
pub fn change(metric: Metric, current: Option<Exact>, previous: Option<Exact>) -> Option<f64> {
    let (current, previous) = (current?, previous?);
    match (current, previous) {
        (Exact::Ratio(a, b), Exact::Ratio(c, d)) => {
            if metric.is_rate() {
                Exact::ratio(a * d - c * b, b * d).map(|x| x.rounded(1))
            } else {
                // (a/b - c/d) / (c/d) x 100 = (ad - cb) x 100 / cb
                Exact::ratio((a * d - c * b) * 100, c * b).map(|x| x.rounded(1))
            }
        }
        _ => {
            let (cur, prev) = (current.to_f64(), previous.to_f64());
            if metric.is_rate() {
                Some(round_float(cur - prev, 1))
            } else if prev == 0.0 {
                None
            } else {
                Some(round_float((cur - prev) / prev * 100.0, 1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_away_from_zero_and_exact() {
        assert_eq!(round_ratio(5, 2, 0), 3.0);
        assert_eq!(round_ratio(-5, 2, 0), -3.0);
        assert_eq!(round_ratio(100, 8, 0), 13.0, "12.5 rounds up");
        assert_eq!(round_ratio(1, 3, 2), 0.33);
        assert_eq!(round_ratio(2, 3, 2), 0.67);
        assert_eq!(round_ratio(1, 16, 1), 0.1);
        assert_eq!(round_ratio(100, 16, 1), 6.3, "6.25 rounds up");
        assert_eq!(round_ratio(1, 200, 2), 0.01, "0.005 rounds up");
        assert_eq!(Exact::ratio(3, -4), Some(Exact::Ratio(-3, 4)));
        assert_eq!(Exact::ratio(3, 0), None);
        assert_eq!(round_float(2.5, 0), 3.0);
    }

    #[test]
    fn change_is_points_for_rates_and_percent_otherwise() {
        let n = |x: u64| Some(Exact::count(x));
        assert_eq!(change(Metric::Visitors, n(150), n(100)), Some(50.0));
        assert_eq!(change(Metric::Visitors, n(1), n(3)), Some(-66.7));
        assert_eq!(change(Metric::Visitors, n(5), n(0)), None);
        assert_eq!(change(Metric::Visitors, n(5), None), None);
        let rate = |a: i128, b: i128| Exact::ratio(a * 100, b);
        assert_eq!(change(Metric::BounceRate, rate(2, 5), rate(5, 9)), Some(-15.6));
        assert_eq!(change(Metric::EngagementRate, rate(2, 5), rate(0, 3)), Some(40.0));
        assert_eq!(change(Metric::ViewsPerVisit, Exact::ratio(3, 2), Exact::ratio(1, 1)), Some(50.0));
        assert_eq!(change(Metric::Revenue, Some(Exact::Float(15.0)), Some(Exact::Float(10.0))), Some(50.0));
    }

    #[test]
    fn names_round_trip() {
        for (metric, name) in METRICS {
            assert_eq!(Metric::parse(name), Some(metric));
            assert_eq!(metric.name(), name);
        }
        assert_eq!(Metric::parse("uniques"), None);
    }
}
