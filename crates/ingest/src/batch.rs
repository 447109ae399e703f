//! Building the `raw_events` Arrow batch of one request, and the WAL entry that carries it.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, MapBuilder, RecordBatch, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use bytes::Bytes;
use hourglass_types::schema;

use crate::parse::{TEXT_FIELDS, ValidEvent};
use crate::{Error, Result};

/// A validated event with its IP address replaced by the salted hash.
#[derive(Debug, Clone)]
pub struct HashedEvent {
    /// The event.
    pub event: ValidEvent,
    /// Salted hash of the client IP, if one was given.
    pub ip_hash: Option<String>,
    /// The same under the previous day's salt, for events early in their UTC day.
    pub ip_hash_prev: Option<String>,
}

/// Builds the `raw_events` batch for one tenant's events received at `received_at_ms`.
pub fn build_raw_batch(tenant: &str, received_at_ms: i64, events: &[HashedEvent]) -> Result<RecordBatch> {
    let n = events.len();
    let mut tenant_b = StringBuilder::with_capacity(n, n * tenant.len());
    let mut id_b = StringBuilder::with_capacity(n, n * 36);
    let mut ts_b = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut recv_b = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut name_b = StringBuilder::with_capacity(n, n * 8);
    let mut text_b: [StringBuilder; TEXT_FIELDS.len()] = std::array::from_fn(|_| StringBuilder::new());
    let mut ip_b = StringBuilder::new();
    let mut ip_prev_b = StringBuilder::new();
    let mut country_b = StringBuilder::new();
    let mut language_b = StringBuilder::new();
    let mut screen_b = Int32Builder::with_capacity(n);
    let mut revenue_b = Float64Builder::with_capacity(n);
    let mut currency_b = StringBuilder::new();
    let mut interactive_b = BooleanBuilder::with_capacity(n);
    let mut props_b = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());

    for HashedEvent { event: e, ip_hash, ip_hash_prev } in events {
        tenant_b.append_value(tenant);
        id_b.append_value(&e.event_id);
        ts_b.append_value(e.timestamp_ms);
        recv_b.append_value(received_at_ms);
        name_b.append_value(&e.name);
        for (b, v) in text_b.iter_mut().zip(&e.text) {
            b.append_option(v.as_deref());
        }
        ip_b.append_option(ip_hash.as_deref());
        ip_prev_b.append_option(ip_hash_prev.as_deref());
        country_b.append_option(e.country.as_deref());
        language_b.append_option(e.language.as_deref());
        screen_b.append_option(e.screen_width);
        revenue_b.append_option(e.revenue);
        currency_b.append_option(e.currency.as_deref());
        interactive_b.append_value(e.interactive);
        if e.props.is_empty() {
            props_b.append(false)?;
        } else {
            for (k, v) in &e.props {
                props_b.keys().append_value(k);
                props_b.values().append_value(v);
            }
            props_b.append(true)?;
        }
    }

    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(tenant_b.finish()),
        Arc::new(id_b.finish()),
        Arc::new(ts_b.finish()),
        Arc::new(recv_b.finish()),
        Arc::new(name_b.finish()),
    ];
    for mut b in text_b {
        columns.push(Arc::new(b.finish()));
    }
    columns.push(Arc::new(ip_b.finish()));
    columns.push(Arc::new(country_b.finish()));
    columns.push(Arc::new(language_b.finish()));
    columns.push(Arc::new(screen_b.finish()));
    columns.push(Arc::new(revenue_b.finish()));
    columns.push(Arc::new(currency_b.finish()));
    columns.push(Arc::new(interactive_b.finish()));
    columns.push(Arc::new(props_b.finish()));
    columns.push(Arc::new(ip_prev_b.finish()));
    Ok(RecordBatch::try_new(schema::raw_events(), columns)?)
}

/// Encodes a raw batch as one WAL entry (an Arrow IPC stream).
pub fn encode_entry(batch: &RecordBatch) -> Result<Bytes> {
    let mut out = Vec::with_capacity(batch.get_array_memory_size());
    let mut writer = StreamWriter::try_new(&mut out, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(Bytes::from(out))
}

/// Decodes a WAL entry written by [`encode_entry`], checking it has the `raw_events` schema.
pub fn decode_entry(entry: &Bytes) -> Result<Vec<RecordBatch>> {
    let reader = StreamReader::try_new(Cursor::new(entry.as_ref()), None)?;
    if reader.schema().fields() != schema::raw_events().fields() {
        return Err(Error::WalSchema);
    }
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    // Re-attach the canonical schema so batches from replay and from ingest compare equal.
    batches
        .into_iter()
        .map(|b| RecordBatch::try_new(schema::raw_events(), b.columns().to_vec()).map_err(Error::from))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::IngestLimits;
    use crate::parse::validate;

    fn event(json: serde_json::Value) -> HashedEvent {
        let serde_json::Value::Object(map) = json else { panic!("object") };
        HashedEvent {
            event: validate(0, &map, &IngestLimits::default(), 1_000).expect("valid"),
            ip_hash: None,
            ip_hash_prev: None,
        }
    }

    #[test]
    fn batches_round_trip_through_wal_entries() {
        let events = vec![
            event(serde_json::json!({"name": "a", "props": {"k": "v"}, "revenue": 1.5})),
            event(serde_json::json!({"name": "b", "url": "https://x.example/"})),
        ];
        let batch = build_raw_batch("t", 1_000, &events).expect("build");
        assert_eq!(batch.num_rows(), 2);
        let decoded = decode_entry(&encode_entry(&batch).expect("encode")).expect("decode");
        assert_eq!(decoded, vec![batch]);
    }

    #[test]
    fn garbage_entries_are_errors() {
        assert!(decode_entry(&Bytes::from_static(b"garbage")).is_err());
    }
}
