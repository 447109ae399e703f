//! Events sent as Arrow record batches (Flight `DoPut`): columns named like the fields of a
//! JSON event, turned row by row into [`EventFields`] so that they meet exactly the rules of
//! JSON ingest, with an error per bad row.
//!
//! Columns may come in any order and any may be left out (`name` is required per row, as in
//! JSON). A column whose name is not an event field, or whose type cannot carry that field,
//! fails the whole batch: it is a mistake in the sender's schema, not in one row.

use std::collections::BTreeMap;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, MapArray, RecordBatch, StringArray, StructArray,
    TimestampMillisecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};

use crate::limits::IngestLimits;
use crate::parse::{EventError, EventFields, KNOWN_FIELDS, Props, Timestamp, ValidEvent, check_fields};
use crate::{Error, Result};

/// The string fields, in the order of [`StringColumns::values`].
const STRING_FIELDS: [&str; 14] = [
    "event_id",
    "name",
    "client_id",
    "user_id",
    "session_id",
    "url",
    "referrer",
    "title",
    "user_agent",
    "ip",
    "country",
    "language",
    "currency",
    "timestamp",
];

/// How a batch's `timestamp` column is read.
enum TimestampColumn {
    Millis(TimestampMillisecondArray),
    Integer(Int64Array),
    Text(StringArray),
}

/// How a batch's `props` column is read.
enum PropsColumn {
    /// `map<string, scalar>`, values cast to text.
    Map { map: Box<MapArray>, keys: StringArray, values: StringArray },
    /// A struct whose fields are the property keys, values cast to text.
    Struct { fields: Vec<(String, StringArray)>, nulls: StructArray },
}

/// A batch's columns cast to the types the row loop reads.
#[derive(Default)]
struct Columns {
    strings: [Option<StringArray>; STRING_FIELDS.len()],
    timestamp: Option<TimestampColumn>,
    screen_width: Option<Int64Array>,
    revenue: Option<Float64Array>,
    interactive: Option<BooleanArray>,
    props: Option<PropsColumn>,
}

fn bad(message: String) -> Error {
    Error::BadBody { message }
}

fn type_error(column: &str, expected: &str, found: &DataType) -> Error {
    bad(format!("column {column:?} must be {expected}, found {found}"))
}

fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, value) => is_text(value),
        _ => false,
    }
}

fn is_scalar(t: &DataType) -> bool {
    is_text(t) || t.is_numeric() || matches!(t, DataType::Boolean | DataType::Null)
}

fn cast_to(column: &str, array: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    cast(array, to).map_err(|e| bad(format!("column {column:?} cannot be read as {to}: {e}")))
}

fn text(column: &str, array: &ArrayRef) -> Result<StringArray> {
    if !is_text(array.data_type()) {
        return Err(type_error(column, "a string column", array.data_type()));
    }
    Ok(cast_to(column, array, &DataType::Utf8)?.as_string::<i32>().clone())
}

fn props_column(array: &ArrayRef) -> Result<PropsColumn> {
    match array.data_type() {
        DataType::Map(entry, _) => {
            let map = Box::new(array.as_map().clone());
            let DataType::Struct(kv) = entry.data_type() else {
                return Err(type_error("props", "a map of strings to scalars", array.data_type()));
            };
            if kv.len() != 2 || !is_text(kv[0].data_type()) || !is_scalar(kv[1].data_type()) {
                return Err(type_error("props", "a map of strings to scalars", array.data_type()));
            }
            let keys = text("props", map.keys())?;
            let values = cast_to("props", map.values(), &DataType::Utf8)?.as_string::<i32>().clone();
            Ok(PropsColumn::Map { map, keys, values })
        }
        DataType::Struct(fields) => {
            let nulls = array.as_struct().clone();
            let mut columns = Vec::with_capacity(fields.len());
            for (field, child) in fields.iter().zip(nulls.columns()) {
                if !is_scalar(field.data_type()) {
                    return Err(bad(format!(
                        "props field {:?} must be a string, number or boolean, found {}",
                        field.name(),
                        field.data_type()
                    )));
                }
                let values = cast_to("props", child, &DataType::Utf8)?.as_string::<i32>().clone();
                columns.push((field.name().clone(), values));
            }
            Ok(PropsColumn::Struct { fields: columns, nulls })
        }
        other => Err(type_error("props", "a map or struct of strings to scalars", other)),
    }
}

fn columns(batch: &RecordBatch) -> Result<Columns> {
    let mut out = Columns::default();
    let schema = batch.schema();
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        let name = field.name().as_str();
        let t = array.data_type();
        match name {
            "timestamp" => {
                out.timestamp = Some(match t {
                    DataType::Timestamp(..) | DataType::Date64 => TimestampColumn::Millis(
                        cast_to(name, array, &DataType::Timestamp(TimeUnit::Millisecond, None))?.as_primitive().clone(),
                    ),
                    t if t.is_integer() => {
                        TimestampColumn::Integer(cast_to(name, array, &DataType::Int64)?.as_primitive().clone())
                    }
                    t if is_text(t) => TimestampColumn::Text(text(name, array)?),
                    other => {
                        return Err(type_error(
                            name,
                            "a timestamp, integer epoch milliseconds or RFC 3339 text",
                            other,
                        ));
                    }
                })
            }
            "screen_width" if t.is_integer() => {
                out.screen_width = Some(cast_to(name, array, &DataType::Int64)?.as_primitive().clone());
            }
            "screen_width" => return Err(type_error(name, "an integer column", t)),
            "revenue" if t.is_numeric() => {
                out.revenue = Some(cast_to(name, array, &DataType::Float64)?.as_primitive().clone());
            }
            "revenue" => return Err(type_error(name, "a numeric column", t)),
            "interactive" if *t == DataType::Boolean => out.interactive = Some(array.as_boolean().clone()),
            "interactive" => return Err(type_error(name, "a boolean column", t)),
            "props" => out.props = Some(props_column(array)?),
            _ => match STRING_FIELDS.iter().position(|f| *f == name) {
                Some(i) => out.strings[i] = Some(text(name, array)?),
                None => {
                    return Err(bad(format!(
                        "unknown column {name:?}; the columns of an event are {} and props",
                        KNOWN_FIELDS.join(", ")
                    )));
                }
            },
        }
    }
    Ok(out)
}

fn string_at(column: &Option<StringArray>, row: usize) -> Option<String> {
    column.as_ref().filter(|c| c.is_valid(row)).map(|c| c.value(row).to_string())
}

fn value_at<T: arrow::array::ArrowPrimitiveType>(
    column: &Option<arrow::array::PrimitiveArray<T>>,
    row: usize,
) -> Option<T::Native> {
    column.as_ref().filter(|c| c.is_valid(row)).map(|c| c.value(row))
}

fn props_at(column: &PropsColumn, row: usize) -> Option<Props> {
    // Keys are ordered and a repeated key keeps its last value, as in a JSON object.
    let mut props = BTreeMap::new();
    match column {
        PropsColumn::Map { map, keys, values } => {
            if map.is_null(row) {
                return None;
            }
            let offsets = map.value_offsets();
            for i in offsets[row] as usize..offsets[row + 1] as usize {
                if keys.is_valid(i) && values.is_valid(i) {
                    props.insert(keys.value(i).to_string(), values.value(i).to_string());
                }
            }
        }
        PropsColumn::Struct { fields, nulls } => {
            if nulls.is_null(row) {
                return None;
            }
            for (key, values) in fields {
                if values.is_valid(row) {
                    props.insert(key.clone(), values.value(row).to_string());
                }
            }
        }
    }
    Some(Props(props.into_iter().collect()))
}

fn fields_at(c: &Columns, row: usize) -> EventFields {
    let s = |i: usize| string_at(&c.strings[i], row);
    let timestamp = match &c.timestamp {
        None => None,
        Some(TimestampColumn::Millis(a)) => a.is_valid(row).then(|| Timestamp::Millis(a.value(row))),
        Some(TimestampColumn::Integer(a)) => a.is_valid(row).then(|| Timestamp::Millis(a.value(row))),
        Some(TimestampColumn::Text(a)) => a.is_valid(row).then(|| Timestamp::Text(a.value(row).to_string())),
    };
    EventFields {
        event_id: s(0),
        name: s(1),
        client_id: s(2),
        user_id: s(3),
        session_id: s(4),
        url: s(5),
        referrer: s(6),
        title: s(7),
        user_agent: s(8),
        ip: s(9),
        country: s(10),
        language: s(11),
        currency: s(12),
        timestamp,
        screen_width: value_at(&c.screen_width, row),
        revenue: value_at(&c.revenue, row),
        interactive: c.interactive.as_ref().filter(|a| a.is_valid(row)).map(|a| a.value(row)),
        props: c.props.as_ref().and_then(|p| props_at(p, row)),
    }
}

/// Validates every row of `batch` received at `now_ms`: each row is an event or the reason it
/// was rejected, with the row's index. Fails as a whole only when the schema is wrong.
pub fn events_from_batch(
    batch: &RecordBatch,
    limits: &IngestLimits,
    now_ms: i64,
) -> Result<Vec<Result<ValidEvent, EventError>>> {
    let columns = columns(batch)?;
    if columns.strings[1].is_none() {
        return Err(bad("the batch has no \"name\" column; every event needs a name".into()));
    }
    Ok((0..batch.num_rows()).map(|row| check_fields(row, fields_at(&columns, row), limits, now_ms)).collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int32Array, MapBuilder, StringBuilder, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Fields, Schema};

    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let fields: Vec<Field> =
            columns.iter().map(|(name, a)| Field::new(*name, a.data_type().clone(), true)).collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, a)| a).collect())
            .expect("batch")
    }

    fn strings(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    #[test]
    fn rows_meet_the_rules_of_json_ingest_with_an_error_per_row() {
        let b = batch(vec![
            ("name", strings(&[Some("pageview"), None, Some("click"), Some("pageview")])),
            ("event_id", strings(&[Some("e1"), Some("e2"), Some("e3"), None])),
            ("country", strings(&[Some("de"), Some("FR"), Some("Germany"), None])),
            ("timestamp", Arc::new(TimestampMicrosecondArray::from(vec![Some((NOW - 5) * 1000), None, None, None]))),
            ("screen_width", Arc::new(Int32Array::from(vec![Some(1280), None, None, Some(-1)]))),
        ]);
        let rows = events_from_batch(&b, &IngestLimits::default(), NOW).expect("schema is fine");
        let first = rows[0].as_ref().expect("row 0 is valid");
        assert_eq!(first.event_id, "e1");
        assert_eq!(first.timestamp_ms, NOW - 5);
        assert_eq!(first.country.as_deref(), Some("DE"));
        assert_eq!(first.screen_width, Some(1280));
        let errors: Vec<(usize, Option<&str>)> =
            rows.iter().filter_map(|r| r.as_ref().err()).map(|e| (e.index, e.field.as_deref())).collect();
        assert_eq!(errors, vec![(1, Some("name")), (2, Some("country")), (3, Some("screen_width"))]);
    }

    #[test]
    fn props_come_as_a_map_or_a_struct() {
        let mut map = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        map.keys().append_value("plan");
        map.values().append_value("pro");
        map.keys().append_value("a");
        map.values().append_value("1");
        map.append(true).expect("map row");
        map.append(false).expect("null row");
        let b = batch(vec![("name", strings(&[Some("signup"), Some("signup")])), ("props", Arc::new(map.finish()))]);
        let rows = events_from_batch(&b, &IngestLimits::default(), NOW).expect("map props");
        let props = &rows[0].as_ref().expect("valid").props;
        assert_eq!(props, &vec![("a".to_string(), "1".to_string()), ("plan".to_string(), "pro".to_string())]);
        assert!(rows[1].as_ref().expect("valid").props.is_empty());

        let fields =
            Fields::from(vec![Field::new("plan", DataType::Utf8, true), Field::new("seats", DataType::Int32, true)]);
        let props = StructArray::new(
            fields,
            vec![strings(&[Some("pro"), None]), Arc::new(Int32Array::from(vec![Some(3), Some(4)]))],
            None,
        );
        let b = batch(vec![("name", strings(&[Some("signup"), Some("signup")])), ("props", Arc::new(props))]);
        let rows = events_from_batch(&b, &IngestLimits::default(), NOW).expect("struct props");
        assert_eq!(
            rows[0].as_ref().expect("valid").props,
            vec![("plan".to_string(), "pro".to_string()), ("seats".to_string(), "3".to_string())]
        );
        assert_eq!(rows[1].as_ref().expect("valid").props, vec![("seats".to_string(), "4".to_string())]);
    }

    #[test]
    fn a_wrong_schema_fails_the_whole_batch() {
        let unknown = batch(vec![("name", strings(&[Some("x")])), ("colour", strings(&[Some("red")]))]);
        let e = events_from_batch(&unknown, &IngestLimits::default(), NOW).expect_err("unknown column");
        assert!(e.to_string().contains("unknown column \"colour\""), "{e}");
        let mistyped = batch(vec![("name", Arc::new(Int32Array::from(vec![1])) as ArrayRef)]);
        let e = events_from_batch(&mistyped, &IngestLimits::default(), NOW).expect_err("name is a number");
        assert!(e.to_string().contains("column \"name\" must be a string column"), "{e}");
        let nameless = batch(vec![("url", strings(&[Some("https://a.example/")]))]);
        assert!(events_from_batch(&nameless, &IngestLimits::default(), NOW).is_err());
    }
}
