//! Dropping re-sent events: an event whose (tenant, event_id) is already buffered, or appears
//! earlier in the same commit group, is stored once.

use std::collections::HashSet;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;

use crate::Result;
use crate::buffer::{Buffer, DedupKey};

/// One request's rows after de-duplication.
pub(crate) struct Deduped {
    pub raw: RecordBatch,
    pub events: RecordBatch,
    pub keys: Vec<DedupKey>,
    pub duplicates: usize,
}

/// Removes rows whose key is buffered or already in `seen`, and adds the kept keys to `seen`.
pub(crate) fn dedupe(
    buffer: &Buffer,
    seen: &mut HashSet<DedupKey>,
    raw: RecordBatch,
    events: RecordBatch,
    keys: Vec<DedupKey>,
) -> Result<Deduped> {
    let keep: Vec<bool> = keys.iter().map(|k| !buffer.contains(k) && seen.insert(*k)).collect();
    let kept = keep.iter().filter(|k| **k).count();
    if kept == keys.len() {
        return Ok(Deduped { raw, events, keys, duplicates: 0 });
    }
    let mask = BooleanArray::from(keep.clone());
    let keys = keys.into_iter().zip(keep).filter_map(|(k, keep)| keep.then_some(k)).collect();
    Ok(Deduped {
        raw: filter_record_batch(&raw, &mask)?,
        events: filter_record_batch(&events, &mask)?,
        keys,
        duplicates: mask.len() - kept,
    })
}
