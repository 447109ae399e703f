//! Dropping events stored more than once.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use hourglass_types::schema::col;

/// The events seen so far across several batches, by a 128-bit hash of (tenant_id,
/// event_id): 16 bytes an event rather than its strings, with a collision chance far below
/// that of a disk error for any partition Hourglass holds.
#[derive(Debug, Default)]
pub(crate) struct SeenEvents {
    seen: HashSet<u128>,
    /// Set for rows that come tenant by tenant: the ids of earlier tenants are forgotten.
    tenant_by_tenant: bool,
    /// The tenant of the last row seen, when going tenant by tenant.
    tenant: Option<String>,
}

fn event_key(tenant: &str, id: &str) -> u128 {
    let half = |salt: u8| {
        let mut h = DefaultHasher::new();
        salt.hash(&mut h);
        tenant.hash(&mut h);
        id.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

impl SeenEvents {
    /// For rows in tenant order (a merge of sorted files): only the current tenant's ids are
    /// remembered, so memory follows the largest tenant, not the whole partition.
    pub(crate) fn tenant_by_tenant() -> Self {
        Self { tenant_by_tenant: true, ..Self::default() }
    }

    /// Keeps the rows of `batch` whose event was not seen in it or in an earlier batch;
    /// returns them and how many were dropped. A batch without those columns is returned as
    /// is.
    pub(crate) fn keep_first(&mut self, batch: RecordBatch) -> Result<(RecordBatch, usize), arrow::error::ArrowError> {
        let (Some(tenants), Some(ids)) = (batch.column_by_name(col::TENANT_ID), batch.column_by_name(col::EVENT_ID))
        else {
            return Ok((batch, 0));
        };
        let (Some(tenants), Some(ids)) = (tenants.as_string_opt::<i32>(), ids.as_string_opt::<i32>()) else {
            return Ok((batch, 0));
        };
        let keep: BooleanArray = (0..batch.num_rows())
            .map(|i| {
                if tenants.is_null(i) || ids.is_null(i) {
                    return Some(true);
                }
                let tenant = tenants.value(i);
                if self.tenant_by_tenant && self.tenant.as_deref() != Some(tenant) {
                    self.tenant = Some(tenant.to_string());
                    self.seen.clear();
                }
                Some(self.seen.insert(event_key(tenant, ids.value(i))))
            })
            .collect();
        let dropped = keep.false_count();
        if dropped == 0 {
            return Ok((batch, 0));
        }
        Ok((filter_record_batch(&batch, &keep)?, dropped))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    /// Rows of (tenant, event id).
    fn batch(tenants: Vec<&str>, ids: Vec<&str>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new(col::TENANT_ID, DataType::Utf8, false),
            Field::new(col::EVENT_ID, DataType::Utf8, true),
        ]));
        RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(tenants)), Arc::new(StringArray::from(ids))])
            .expect("batch")
    }

    #[test]
    fn seen_events_span_batches() {
        let mut seen = SeenEvents::default();
        let (first, dropped) = seen.keep_first(batch(vec!["a", "a", "a"], vec!["1", "2", "1"])).expect("first");
        assert_eq!((first.num_rows(), dropped), (2, 1));
        let (second, dropped) = seen.keep_first(batch(vec!["a", "b", "a"], vec!["2", "2", "3"])).expect("second");
        assert_eq!((second.num_rows(), dropped), (2, 1), "a/2 was in the first batch; b/2 is another tenant's");
        let ids: Vec<&str> = second.column(1).as_string::<i32>().iter().flatten().collect();
        assert_eq!(ids, ["2", "3"]);
    }

    #[test]
    fn tenant_by_tenant_forgets_earlier_tenants_only() {
        let mut seen = SeenEvents::tenant_by_tenant();
        let (_, dropped) = seen.keep_first(batch(vec!["a", "a", "b"], vec!["1", "1", "1"])).expect("first");
        assert_eq!(dropped, 1, "a/1 twice; b/1 is another tenant's");
        let (kept, dropped) = seen.keep_first(batch(vec!["b", "c"], vec!["1", "1"])).expect("second");
        assert_eq!((kept.num_rows(), dropped), (1, 1), "b/1 is remembered across batches while b lasts");
        assert_eq!(seen.seen.len(), 1, "only the current tenant's ids are kept");
    }
}
