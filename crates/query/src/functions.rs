//! SQL functions Hourglass adds to every session, whatever the interface.
//!
//! `date_trunc(unit, ts, zone)`: PostgreSQL's three-argument form, which truncates in a time
//! zone (days, weeks, months in the merchant's zone, across DST changes) and returns the UTC
//! instant the local bucket starts at. The two-argument form is DataFusion's own.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use datafusion::arrow::array::{Array, ArrayRef, TimestampMicrosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    Coercion, ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    TypeSignatureClass, Volatility,
};
use datafusion::prelude::SessionContext;

/// Registers Hourglass's functions in `ctx`.
pub(crate) fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(ZonedDateTrunc::new()));
}

/// `date_trunc` with PostgreSQL's optional time zone argument.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ZonedDateTrunc {
    inner: Arc<ScalarUDF>,
    signature: Signature,
}

impl ZonedDateTrunc {
    fn new() -> Self {
        let inner = datafusion::functions::datetime::date_trunc();
        let mut variants = match &inner.signature().type_signature {
            TypeSignature::OneOf(variants) => variants.clone(),
            other => vec![other.clone()],
        };
        let string = || Coercion::new_exact(TypeSignatureClass::Native(datafusion::common::types::logical_string()));
        variants.push(TypeSignature::Coercible(vec![
            string(),
            Coercion::new_exact(TypeSignatureClass::Timestamp),
            string(),
        ]));
        let signature = Signature::one_of(variants, Volatility::Immutable);
        Self { inner, signature }
    }
}

fn scalar_string(value: &ColumnarValue, what: &str) -> Result<String> {
    match value {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(s)))
        | ColumnarValue::Scalar(ScalarValue::LargeUtf8(Some(s)))
        | ColumnarValue::Scalar(ScalarValue::Utf8View(Some(s))) => Ok(s.clone()),
        _ => exec_err!("date_trunc: the {what} must be a constant string"),
    }
}

/// The start of the `unit` containing `local`, in local time.
fn truncate(local: NaiveDateTime, unit: &str) -> Result<NaiveDateTime> {
    let date = local.date();
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or(local);
    Ok(match unit {
        "microsecond" | "microseconds" => local,
        "millisecond" | "milliseconds" => {
            local.with_nanosecond(local.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(local)
        }
        "second" => local.with_nanosecond(0).unwrap_or(local),
        "minute" => local.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(local),
        "hour" => date.and_hms_opt(local.hour(), 0, 0).unwrap_or(local),
        "day" => midnight(date),
        "week" => midnight(date - Duration::days(i64::from(date.weekday().num_days_from_monday()))),
        "month" => midnight(date.with_day(1).unwrap_or(date)),
        "quarter" => {
            let month = (date.month() - 1) / 3 * 3 + 1;
            midnight(NaiveDate::from_ymd_opt(date.year(), month, 1).unwrap_or(date))
        }
        "year" => midnight(NaiveDate::from_ymd_opt(date.year(), 1, 1).unwrap_or(date)),
        other => return plan_err!("date_trunc: unknown unit '{other}'"),
    })
}

/// The UTC instant of the local bucket start; in a DST gap, the first instant after it.
fn to_utc(zone: &Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let mut probe = local;
    for _ in 0..4 {
        if let Some(t) = zone.from_local_datetime(&probe).earliest() {
            return Some(t.with_timezone(&Utc));
        }
        probe += Duration::minutes(30);
    }
    None
}

impl ScalarUDFImpl for ZonedDateTrunc {
    fn name(&self) -> &str {
        "date_trunc"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Err(DataFusionError::Internal("date_trunc: return_field_from_args is used".into()))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if args.arg_fields.len() == 3 {
            Ok(Arc::new(Field::new(self.name(), DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true)))
        } else {
            self.inner.return_field_from_args(args)
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if args.args.len() != 3 {
            return self.inner.invoke_with_args(args);
        }
        let unit = scalar_string(&args.args[0], "unit")?.to_ascii_lowercase();
        let zone_name = scalar_string(&args.args[2], "time zone")?;
        let zone: Tz =
            zone_name.parse().map_err(|_| DataFusionError::Plan(format!("unknown time zone '{zone_name}'")))?;
        let timestamps: ArrayRef = args.args[1].clone().into_array(args.number_rows)?;
        let micros = cast(&timestamps, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
        let micros = micros
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .ok_or_else(|| DataFusionError::Internal("date_trunc: cast to microseconds".into()))?;
        let mut out = Vec::with_capacity(micros.len());
        for i in 0..micros.len() {
            if micros.is_null(i) {
                out.push(None);
                continue;
            }
            let Some(instant) = DateTime::<Utc>::from_timestamp_micros(micros.value(i)) else {
                out.push(None);
                continue;
            };
            let local = instant.with_timezone(&zone).naive_local();
            out.push(to_utc(&zone, truncate(local, &unit)?).map(|t| t.timestamp_micros()));
        }
        let array = TimestampMicrosecondArray::from(out).with_timezone("UTC");
        Ok(ColumnarValue::Array(Arc::new(array)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").expect("datetime")
    }

    #[test]
    fn buckets_start_in_local_time() {
        let berlin: Tz = "Europe/Berlin".parse().expect("zone");
        // 2026-03-29 01:30 UTC is 03:30 summer time in Berlin; the day began at 00:00 winter time.
        let local = DateTime::<Utc>::from_naive_utc_and_offset(at("2026-03-29 01:30:00"), Utc).with_timezone(&berlin);
        let start = to_utc(&berlin, truncate(local.naive_local(), "day").expect("unit")).expect("instant");
        assert_eq!(start.naive_utc(), at("2026-03-28 23:00:00"));
        assert_eq!(truncate(at("2026-05-14 10:11:12"), "week").expect("unit"), at("2026-05-11 00:00:00"));
        assert_eq!(truncate(at("2026-05-14 10:11:12"), "quarter").expect("unit"), at("2026-04-01 00:00:00"));
        assert!(truncate(at("2026-05-14 10:11:12"), "fortnight").is_err());
    }

    #[test]
    fn a_local_start_inside_a_dst_gap_moves_forward() {
        let berlin: Tz = "Europe/Berlin".parse().expect("zone");
        let start = to_utc(&berlin, at("2026-03-29 02:00:00")).expect("instant");
        assert_eq!(start.naive_utc(), at("2026-03-29 01:00:00"));
    }
}
