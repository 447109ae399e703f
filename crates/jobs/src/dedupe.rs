//! Dropping events stored more than once.

use std::collections::HashSet;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::DataType;
use hourglass_types::schema::col;

/// Keeps the first row of each (tenant_id, event_id); returns the batch and how many rows were
/// dropped. A batch without those columns is returned as is.
pub(crate) fn first_of_each_event(batch: RecordBatch) -> Result<(RecordBatch, usize), arrow::error::ArrowError> {
    let (Some(tenants), Some(ids)) = (batch.column_by_name(col::TENANT_ID), batch.column_by_name(col::EVENT_ID)) else {
        return Ok((batch, 0));
    };
    if tenants.data_type() != &DataType::Utf8 || ids.data_type() != &DataType::Utf8 {
        return Ok((batch, 0));
    }
    let (tenants, ids) = (tenants.as_string::<i32>(), ids.as_string::<i32>());
    let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(batch.num_rows());
    let keep: BooleanArray = (0..batch.num_rows())
        .map(|i| {
            // A row without an id cannot be a retry of another; keep it.
            if tenants.is_null(i) || ids.is_null(i) {
                return Some(true);
            }
            Some(seen.insert((tenants.value(i), ids.value(i))))
        })
        .collect();
    let dropped = keep.false_count();
    if dropped == 0 {
        return Ok((batch, 0));
    }
    Ok((filter_record_batch(&batch, &keep)?, dropped))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn keeps_the_first_copy_per_tenant_and_id() {
        let schema = Arc::new(Schema::new(vec![
            Field::new(col::TENANT_ID, DataType::Utf8, false),
            Field::new(col::EVENT_ID, DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "a", "b", "a", "a", "a"])),
                Arc::new(StringArray::from(vec![Some("1"), Some("2"), Some("1"), Some("1"), None, None])),
                Arc::new(Int64Array::from(vec![0, 1, 2, 3, 4, 5])),
            ],
        )
        .expect("batch");
        let (kept, dropped) = first_of_each_event(batch).expect("dedupe");
        assert_eq!(dropped, 1);
        let n: Vec<i64> = kept.column(2).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec();
        assert_eq!(n, [0, 1, 2, 4, 5], "the same id of another tenant and rows without ids stay");
    }
}
