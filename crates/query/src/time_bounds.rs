//! Reading the time range a query asks for out of its filters, so that the catalog and the
//! buffers can skip whole hours and files.

use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use datafusion::scalar::ScalarValue;
use hourglass_types::schema::col;

/// A half-open range `[min_ms, max_ms)` of event timestamps; `None` is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeBounds {
    /// Inclusive lower bound, epoch ms.
    pub min_ms: Option<i64>,
    /// Exclusive upper bound, epoch ms.
    pub max_ms: Option<i64>,
}

impl TimeBounds {
    /// The bounds implied by a conjunction of filters on the `timestamp` column. Filters it
    /// does not understand are ignored, which only widens the range.
    pub fn from_filters(filters: &[Expr]) -> Self {
        let mut bounds = Self::default();
        for f in filters {
            bounds.add(f);
        }
        bounds
    }

    /// Whether no timestamp can satisfy the bounds.
    pub fn is_empty(&self) -> bool {
        matches!((self.min_ms, self.max_ms), (Some(lo), Some(hi)) if lo >= hi)
    }

    fn lower(&mut self, v: i64) {
        self.min_ms = Some(self.min_ms.map_or(v, |m| m.max(v)));
    }

    fn upper(&mut self, v: i64) {
        self.max_ms = Some(self.max_ms.map_or(v, |m| m.min(v)));
    }

    fn add(&mut self, expr: &Expr) {
        match expr {
            Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
                self.add(left);
                self.add(right);
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (op, literal) = if is_time_column(left) {
                    (*op, right)
                } else if is_time_column(right) {
                    match op.swap() {
                        Some(swapped) => (swapped, left),
                        None => return,
                    }
                } else {
                    return;
                };
                let Some((floor, ceil)) = literal_ms(literal) else {
                    return;
                };
                match op {
                    Operator::Gt => self.lower(floor),
                    Operator::GtEq => self.lower(floor),
                    Operator::Lt => self.upper(ceil),
                    Operator::LtEq => self.upper(ceil.saturating_add(1)),
                    Operator::Eq => {
                        self.lower(floor);
                        self.upper(ceil.saturating_add(1));
                    }
                    _ => {}
                }
            }
            Expr::Between(Between { expr, negated: false, low, high }) if is_time_column(expr) => {
                if let Some((floor, _)) = literal_ms(low) {
                    self.lower(floor);
                }
                if let Some((_, ceil)) = literal_ms(high) {
                    self.upper(ceil.saturating_add(1));
                }
            }
            _ => {}
        }
    }
}

fn is_time_column(expr: &Expr) -> bool {
    matches!(expr, Expr::Column(c) if c.name == col::TIMESTAMP)
}

/// A timestamp literal as epoch ms, rounded down and up (they differ for sub-ms units).
fn literal_ms(expr: &Expr) -> Option<(i64, i64)> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    let (v, per_ms): (i64, i64) = match value {
        ScalarValue::TimestampSecond(Some(v), _) => {
            return Some((v.saturating_mul(1000), v.saturating_mul(1000)));
        }
        ScalarValue::TimestampMillisecond(Some(v), _) => (*v, 1),
        ScalarValue::TimestampMicrosecond(Some(v), _) => (*v, 1_000),
        ScalarValue::TimestampNanosecond(Some(v), _) => (*v, 1_000_000),
        _ => return None,
    };
    Some((v.div_euclid(per_ms), v.div_euclid(per_ms) + i64::from(v.rem_euclid(per_ms) != 0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col as column, lit};

    fn ts(ms: i64) -> Expr {
        lit(ScalarValue::TimestampMillisecond(Some(ms), Some("UTC".into())))
    }

    #[test]
    fn comparisons_narrow_the_range() {
        let t = || column("timestamp");
        let b = TimeBounds::from_filters(&[t().gt_eq(ts(100)), t().lt(ts(200))]);
        assert_eq!(b, TimeBounds { min_ms: Some(100), max_ms: Some(200) });
        let b = TimeBounds::from_filters(&[ts(100).lt_eq(t()), t().lt_eq(ts(200))]);
        assert_eq!(b, TimeBounds { min_ms: Some(100), max_ms: Some(201) });
        let b = TimeBounds::from_filters(&[t().eq(ts(7))]);
        assert_eq!(b, TimeBounds { min_ms: Some(7), max_ms: Some(8) });
        let b = TimeBounds::from_filters(&[t().between(ts(1), ts(5)).and(t().gt(ts(2)))]);
        assert_eq!(b, TimeBounds { min_ms: Some(2), max_ms: Some(6) });
        assert!(TimeBounds::from_filters(&[t().gt_eq(ts(5)), t().lt(ts(5))]).is_empty());
    }

    #[test]
    fn other_filters_do_not_narrow() {
        let b = TimeBounds::from_filters(&[
            column("name").eq(lit("x")),
            column("timestamp").gt(ts(1)).or(column("timestamp").lt(ts(0))),
            column("received_at").gt(ts(1)),
        ]);
        assert_eq!(b, TimeBounds::default());
    }

    #[test]
    fn sub_millisecond_literals_round_outwards() {
        let micros = lit(ScalarValue::TimestampMicrosecond(Some(1_500), None));
        let b =
            TimeBounds::from_filters(&[column("timestamp").gt_eq(micros.clone()), column("timestamp").lt_eq(micros)]);
        assert_eq!(b, TimeBounds { min_ms: Some(1), max_ms: Some(3) });
    }
}
