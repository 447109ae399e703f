//! Arrow types as PostgreSQL types, and result batches as `DataRow`s in the text or binary
//! format each column was asked for.
//!
//! Every Arrow type has an answer: the ones PostgreSQL has a type for travel as that type
//! (integers, floats, numerics, text, bytea, dates, times, timestamps and arrays of the simple
//! types); maps, structs and other lists travel as `json` (so `props` arrives as a JSON object,
//! as in the HTTP API's CSV); anything else as `text` in Arrow's display form.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, RecordBatch, StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
    UInt64Array,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::json::writer::{EncoderOptions, make_encoder};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use futures::{Stream, StreamExt, stream};
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{DataRowEncoder, FieldInfo};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use rust_decimal::Decimal;

/// Largest decimal precision PostgreSQL clients receive as `numeric`; wider decimals do not
/// fit `rust_decimal` and travel as text.
const MAX_NUMERIC_PRECISION: u8 = 28;

/// The PostgreSQL type a column of `data_type` is sent as.
pub(crate) fn pg_type(data_type: &DataType) -> Type {
    match data_type {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 => Type::INT8,
        DataType::UInt64 => Type::NUMERIC,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s)
            if *p <= MAX_NUMERIC_PRECISION && *s >= 0 =>
        {
            Type::NUMERIC
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Type::TEXT,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => Type::BYTEA,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Time32(_) | DataType::Time64(_) => Type::TIME,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Dictionary(_, values) => pg_type(values),
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            match pg_type(item.data_type()) {
                Type::BOOL => Type::BOOL_ARRAY,
                Type::INT2 => Type::INT2_ARRAY,
                Type::INT4 => Type::INT4_ARRAY,
                Type::INT8 => Type::INT8_ARRAY,
                Type::FLOAT4 => Type::FLOAT4_ARRAY,
                Type::FLOAT8 => Type::FLOAT8_ARRAY,
                Type::TEXT => Type::TEXT_ARRAY,
                _ => Type::JSON,
            }
        }
        DataType::Map(..) | DataType::Struct(_) | DataType::ListView(_) | DataType::LargeListView(_) => Type::JSON,
        _ => Type::TEXT,
    }
}

/// The name `format_type` and `information_schema` give a PostgreSQL type.
pub(crate) fn sql_name(ty: &Type) -> &'static str {
    match *ty {
        Type::BOOL => "boolean",
        Type::INT2 => "smallint",
        Type::INT4 => "integer",
        Type::INT8 => "bigint",
        Type::NUMERIC => "numeric",
        Type::FLOAT4 => "real",
        Type::FLOAT8 => "double precision",
        Type::TEXT => "text",
        Type::BYTEA => "bytea",
        Type::DATE => "date",
        Type::TIME => "time without time zone",
        Type::TIMESTAMP => "timestamp without time zone",
        Type::TIMESTAMPTZ => "timestamp with time zone",
        Type::JSON => "json",
        Type::BOOL_ARRAY => "boolean[]",
        Type::INT2_ARRAY => "smallint[]",
        Type::INT4_ARRAY => "integer[]",
        Type::INT8_ARRAY => "bigint[]",
        Type::FLOAT4_ARRAY => "real[]",
        Type::FLOAT8_ARRAY => "double precision[]",
        Type::TEXT_ARRAY => "text[]",
        _ => "text",
    }
}

/// Row descriptions for `schema`, each column in the format the client asked for.
pub(crate) fn fields(schema: &Schema, format: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            FieldInfo::new(field.name().clone(), None, None, pg_type(field.data_type()), format.format_for(i))
        })
        .collect()
}

/// The rows of `batches`, encoded one batch at a time as the client reads them.
pub(crate) fn rows(
    fields: Arc<Vec<FieldInfo>>,
    batches: Vec<RecordBatch>,
) -> impl Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    stream::iter(batches).flat_map(move |batch| {
        let rows = match encode_batch(&fields, &batch) {
            Ok(rows) => rows.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        };
        stream::iter(rows)
    })
}

fn encode_error(message: impl std::fmt::Display) -> PgWireError {
    PgWireError::ApiError(format!("encoding a result column: {message}").into())
}

/// One result column, converted once per batch into what its PostgreSQL type is written from.
enum Column {
    Bool(BooleanArray),
    Int2(Int16Array),
    Int4(Int32Array),
    Int8(Int64Array),
    Float4(Float32Array),
    Float8(Float64Array),
    Numeric(Decimal128Array, u32),
    Unsigned(UInt64Array),
    Text(StringArray),
    Bytes(BinaryArray),
    Date(Date32Array),
    Time(Time64MicrosecondArray),
    Timestamp(TimestampMicrosecondArray),
    TimestampTz(TimestampMicrosecondArray),
    Array(ArrayRef, Type),
    /// JSON or display text, rendered for every row up front.
    Rendered(Vec<Option<String>>),
}

fn cast(array: &ArrayRef, to: &DataType) -> PgWireResult<ArrayRef> {
    cast_with_options(array, to, &CastOptions::default()).map_err(encode_error)
}

fn column(array: &ArrayRef, ty: &Type) -> PgWireResult<Column> {
    let data_type = array.data_type();
    Ok(match *ty {
        Type::BOOL => Column::Bool(cast(array, &DataType::Boolean)?.as_boolean().clone()),
        Type::INT2 => Column::Int2(cast(array, &DataType::Int16)?.as_primitive().clone()),
        Type::INT4 => Column::Int4(cast(array, &DataType::Int32)?.as_primitive().clone()),
        Type::INT8 => Column::Int8(cast(array, &DataType::Int64)?.as_primitive().clone()),
        Type::FLOAT4 => Column::Float4(cast(array, &DataType::Float32)?.as_primitive().clone()),
        Type::FLOAT8 => Column::Float8(cast(array, &DataType::Float64)?.as_primitive().clone()),
        Type::NUMERIC => match data_type {
            DataType::UInt64 => Column::Unsigned(array.as_primitive().clone()),
            DataType::Dictionary(_, values) if **values == DataType::UInt64 => {
                Column::Unsigned(cast(array, &DataType::UInt64)?.as_primitive().clone())
            }
            _ => {
                let scale = match data_type {
                    DataType::Decimal32(_, s) | DataType::Decimal64(_, s) | DataType::Decimal128(_, s) => *s,
                    DataType::Dictionary(_, values) => match values.as_ref() {
                        DataType::Decimal32(_, s) | DataType::Decimal64(_, s) | DataType::Decimal128(_, s) => *s,
                        _ => 0,
                    },
                    _ => 0,
                };
                let decimals = cast(array, &DataType::Decimal128(38, scale))?;
                Column::Numeric(decimals.as_primitive().clone(), u32::try_from(scale).unwrap_or(0))
            }
        },
        Type::TEXT if is_string(data_type) => Column::Text(cast(array, &DataType::Utf8)?.as_string::<i32>().clone()),
        Type::BYTEA => Column::Bytes(cast(array, &DataType::Binary)?.as_binary::<i32>().clone()),
        Type::DATE => Column::Date(cast(array, &DataType::Date32)?.as_primitive().clone()),
        Type::TIME => Column::Time(cast(array, &DataType::Time64(TimeUnit::Microsecond))?.as_primitive().clone()),
        Type::TIMESTAMP => {
            Column::Timestamp(cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?.as_primitive().clone())
        }
        Type::TIMESTAMPTZ => Column::TimestampTz(
            cast(array, &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))?.as_primitive().clone(),
        ),
        Type::BOOL_ARRAY
        | Type::INT2_ARRAY
        | Type::INT4_ARRAY
        | Type::INT8_ARRAY
        | Type::FLOAT4_ARRAY
        | Type::FLOAT8_ARRAY
        | Type::TEXT_ARRAY => Column::Array(Arc::clone(array), ty.clone()),
        Type::JSON => Column::Rendered(json(array)?),
        _ => Column::Rendered(display(array)?),
    })
}

fn is_string(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => is_string(values),
        _ => false,
    }
}

fn json(array: &ArrayRef) -> PgWireResult<Vec<Option<String>>> {
    let field = Arc::new(Field::new("value", array.data_type().clone(), true));
    let options = EncoderOptions::default();
    let mut encoder = make_encoder(&field, array.as_ref(), &options).map_err(encode_error)?;
    let mut out = Vec::with_capacity(array.len());
    let mut buffer = Vec::new();
    for i in 0..array.len() {
        if array.is_null(i) {
            out.push(None);
            continue;
        }
        buffer.clear();
        encoder.encode(i, &mut buffer);
        out.push(Some(String::from_utf8_lossy(&buffer).into_owned()));
    }
    Ok(out)
}

fn display(array: &ArrayRef) -> PgWireResult<Vec<Option<String>>> {
    let options = FormatOptions::default();
    let formatter = ArrayFormatter::try_new(array.as_ref(), &options).map_err(encode_error)?;
    Ok((0..array.len()).map(|i| (!array.is_null(i)).then(|| formatter.value(i).to_string())).collect())
}

fn list_values(list: &ArrayRef, row: usize) -> Option<ArrayRef> {
    if list.is_null(row) {
        return None;
    }
    match list.data_type() {
        DataType::List(_) => Some(list.as_list::<i32>().value(row)),
        DataType::LargeList(_) => Some(list.as_list::<i64>().value(row)),
        DataType::FixedSizeList(..) => Some(list.as_fixed_size_list().value(row)),
        _ => None,
    }
}

fn encode_array(encoder: &mut DataRowEncoder, list: &ArrayRef, ty: &Type, row: usize) -> PgWireResult<()> {
    let Some(values) = list_values(list, row) else {
        return encoder.encode_field(&None::<Vec<Option<i64>>>);
    };
    macro_rules! items {
        ($to:expr, $typed:ty, $conv:expr) => {{
            let cast = cast(&values, &$to)?;
            let typed =
                cast.as_any().downcast_ref::<$typed>().ok_or_else(|| encode_error("the cast gave another type"))?;
            let items: Vec<Option<_>> =
                (0..typed.len()).map(|i| (!typed.is_null(i)).then(|| $conv(typed, i))).collect();
            encoder.encode_field(&Some(items))
        }};
    }
    match *ty {
        Type::BOOL_ARRAY => items!(DataType::Boolean, BooleanArray, |a: &BooleanArray, i| a.value(i)),
        Type::INT2_ARRAY => items!(DataType::Int16, Int16Array, |a: &Int16Array, i| a.value(i)),
        Type::INT4_ARRAY => items!(DataType::Int32, Int32Array, |a: &Int32Array, i| a.value(i)),
        Type::INT8_ARRAY => items!(DataType::Int64, Int64Array, |a: &Int64Array, i| a.value(i)),
        Type::FLOAT4_ARRAY => items!(DataType::Float32, Float32Array, |a: &Float32Array, i| a.value(i)),
        Type::FLOAT8_ARRAY => items!(DataType::Float64, Float64Array, |a: &Float64Array, i| a.value(i)),
        _ => items!(DataType::Utf8, StringArray, |a: &StringArray, i| a.value(i).to_string()),
    }
}

fn micros_to_naive(micros: i64) -> Option<NaiveDateTime> {
    DateTime::<Utc>::from_timestamp_micros(micros).map(|t| t.naive_utc())
}

fn encode_batch(fields: &Arc<Vec<FieldInfo>>, batch: &RecordBatch) -> PgWireResult<Vec<DataRow>> {
    let columns = batch
        .columns()
        .iter()
        .zip(fields.iter())
        .map(|(array, field)| column(array, field.datatype()))
        .collect::<PgWireResult<Vec<_>>>()?;
    let mut encoder = DataRowEncoder::new(Arc::clone(fields));
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        for column in &columns {
            match column {
                Column::Bool(a) => encoder.encode_field(&(!a.is_null(row)).then(|| a.value(row)))?,
                Column::Int2(a) => encoder.encode_field(&(!a.is_null(row)).then(|| a.value(row)))?,
                Column::Int4(a) => encoder.encode_field(&(!a.is_null(row)).then(|| a.value(row)))?,
                Column::Int8(a) => encoder.encode_field(&(!a.is_null(row)).then(|| a.value(row)))?,
                Column::Float4(a) => encoder.encode_field(&(!a.is_null(row)).then(|| a.value(row)))?,
                Column::Float8(a) => encoder.encode_field(&(!a.is_null(row)).then(|| a.value(row)))?,
                Column::Numeric(a, scale) => {
                    let value = match a.is_null(row) {
                        true => None,
                        false => Some(Decimal::try_from_i128_with_scale(a.value(row), *scale).map_err(encode_error)?),
                    };
                    encoder.encode_field(&value)?
                }
                Column::Unsigned(a) => encoder.encode_field(&(!a.is_null(row)).then(|| Decimal::from(a.value(row))))?,
                Column::Text(a) => encoder.encode_field(&(!a.is_null(row)).then(|| a.value(row)))?,
                Column::Bytes(a) => encoder.encode_field(&(!a.is_null(row)).then(|| a.value(row)))?,
                Column::Date(a) => {
                    let value = (!a.is_null(row))
                        .then(|| NaiveDate::from_num_days_from_ce_opt(a.value(row).saturating_add(719_163)))
                        .flatten();
                    encoder.encode_field(&value)?
                }
                Column::Time(a) => {
                    let value = (!a.is_null(row))
                        .then(|| {
                            let micros = a.value(row);
                            let seconds = u32::try_from(micros.div_euclid(1_000_000)).ok()?;
                            let nanos = u32::try_from(micros.rem_euclid(1_000_000) * 1000).ok()?;
                            NaiveTime::from_num_seconds_from_midnight_opt(seconds, nanos)
                        })
                        .flatten();
                    encoder.encode_field(&value)?
                }
                Column::Timestamp(a) => {
                    encoder.encode_field(&(!a.is_null(row)).then(|| micros_to_naive(a.value(row))).flatten())?
                }
                Column::TimestampTz(a) => encoder.encode_field(
                    &(!a.is_null(row)).then(|| DateTime::<Utc>::from_timestamp_micros(a.value(row))).flatten(),
                )?,
                Column::Array(list, ty) => encode_array(&mut encoder, list, ty, row)?,
                Column::Rendered(values) => encoder.encode_field(&values[row].as_deref())?,
            }
        }
        rows.push(encoder.take_row());
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_column_type_has_a_postgres_type() {
        let tables = [hourglass_types::schema::raw_events(), hourglass_types::schema::events()];
        for field in tables.iter().flat_map(|schema| schema.fields().iter()) {
            let ty = pg_type(field.data_type());
            assert_ne!(ty, Type::UNKNOWN, "{}", field.name());
        }
        assert_eq!(pg_type(&DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))), Type::TIMESTAMPTZ);
        assert_eq!(pg_type(&DataType::Int32), Type::INT4);
        assert_eq!(pg_type(&DataType::Decimal128(38, 2)), Type::TEXT);
        assert_eq!(pg_type(&DataType::Decimal128(10, 2)), Type::NUMERIC);
        assert_eq!(pg_type(&DataType::new_list(DataType::Utf8, true)), Type::TEXT_ARRAY);
    }
}
