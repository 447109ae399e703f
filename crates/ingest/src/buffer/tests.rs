use super::*;
use crate::batch::{HashedEvent, build_raw_batch};
use crate::limits::IngestLimits;
use crate::parse::validate;

const HOUR: i64 = hourglass_types::partition::HOUR_MS;

fn raw(tenant: &str, events: &[(&str, i64)]) -> RecordBatch {
    let hashed: Vec<HashedEvent> = events
        .iter()
        .map(|(id, ts)| {
            let serde_json::Value::Object(map) =
                serde_json::json!({"name": "pageview", "event_id": id, "timestamp": ts})
            else {
                unreachable!()
            };
            HashedEvent {
                event: validate(0, &map, &IngestLimits::default(), 10 * HOUR).expect("valid"),
                ip_hash: None,
                ip_hash_prev: None,
            }
        })
        .collect();
    build_raw_batch(tenant, 0, &hashed).expect("batch")
}

fn insert(buffer: &mut Buffer, batch: &RecordBatch, seq: u64) {
    let events = hourglass_processor::process(batch, &hourglass_processor::Options::default()).expect("process");
    let keys = keys_of(batch).expect("keys");
    buffer.insert(batch, &events, &keys, seq, 0).expect("insert");
}

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).expect("tenant")
}

fn rows(snapshots: &[ChunkSnapshot]) -> usize {
    snapshots.iter().flat_map(|s| &s.batches).map(|b| b.num_rows()).sum()
}

#[test]
fn rows_split_by_hour_and_tenants_stay_apart() {
    let mut buffer = Buffer::new(4);
    insert(&mut buffer, &raw("a", &[("1", 0), ("2", HOUR + 5), ("3", 2 * HOUR)]), 1);
    insert(&mut buffer, &raw("b", &[("1", 10)]), 2);
    assert_eq!(buffer.rows(), 4);
    assert_eq!(
        buffer.active().partitions(TableName::Events).count(),
        if shard_of("a", 4) == shard_of("b", 4) { 3 } else { 4 }
    );

    let all_a = filter_snapshot(&tenant("a"), buffer.snapshot(TableName::Events, &tenant("a"), (0, 10))).expect("snap");
    assert_eq!(rows(&all_a), 3);
    let hour1 =
        filter_snapshot(&tenant("a"), buffer.snapshot(TableName::RawEvents, &tenant("a"), (1, 1))).expect("snap");
    assert_eq!(rows(&hour1), 1);
    let b = filter_snapshot(&tenant("b"), buffer.snapshot(TableName::Events, &tenant("b"), (0, 10))).expect("snap");
    assert_eq!(rows(&b), 1);
    assert_eq!(
        rows(&filter_snapshot(&tenant("c"), buffer.snapshot(TableName::Events, &tenant("c"), (0, 10))).expect("snap")),
        0
    );
}

#[test]
fn freeze_keeps_rows_visible_until_released() {
    let mut buffer = Buffer::new(1);
    insert(&mut buffer, &raw("a", &[("1", 0)]), 1);
    let chunk = buffer.freeze().expect("non-empty");
    assert!(buffer.freeze().is_none(), "empty active chunk does not freeze");
    assert_eq!(chunk.max_seq(), 1);
    insert(&mut buffer, &raw("a", &[("2", 0)]), 2);
    let snap = buffer.snapshot(TableName::Events, &tenant("a"), (0, 0));
    assert_eq!(snap.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), vec![1, 2]);
    assert!(buffer.contains(&dedup_key("a", "1")));
    buffer.release(&chunk, 0);
    assert!(buffer.contains(&dedup_key("a", "1")), "recently persisted keys are remembered");
    assert!(buffer.contains(&dedup_key("a", "2")));
    assert_eq!(buffer.rows(), 1);
    assert_eq!(buffer.snapshot(TableName::Events, &tenant("a"), (0, 0)).len(), 1);

    // Another release much later expires the first chunk's keys.
    let second = buffer.freeze().expect("non-empty");
    buffer.release(&second, RECENT_WINDOW_MS + 1);
    assert!(!buffer.contains(&dedup_key("a", "1")));
    assert!(buffer.contains(&dedup_key("a", "2")));
}

#[test]
fn many_small_batches_are_merged() {
    let mut buffer = Buffer::new(1);
    for i in 0..40u64 {
        insert(&mut buffer, &raw("a", &[(&i.to_string(), 0)]), i + 1);
    }
    let snap = buffer.snapshot(TableName::Events, &tenant("a"), (0, 0));
    let batches: usize = snap.iter().map(|(_, b)| b.len()).sum();
    assert!(batches < 16, "{batches} batches");
    assert_eq!(rows(&filter_snapshot(&tenant("a"), snap).expect("snap")), 40);
}

#[test]
fn dedup_keys_separate_tenants() {
    assert_ne!(dedup_key("a", "1"), dedup_key("b", "1"));
    assert_ne!(dedup_key("a", "1"), dedup_key("a1", ""));
    assert_eq!(dedup_key("a", "1"), dedup_key("a", "1"));
}
