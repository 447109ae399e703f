//! The aggregate functions rollup SQL uses: `visitor_set` and `hll` over 64-bit ids, and their
//! `_union` forms over the encodings they produce (`hourglass_report::sketch`).

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, UInt64Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Accumulator, AggregateUDF, Volatility, create_udaf};
use datafusion::prelude::SessionContext;
use hourglass_report::sketch::{Hll, encode_set, extend_from_set};

fn ids(values: &ArrayRef) -> Result<impl Iterator<Item = u64> + '_> {
    let array = values
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(|| DataFusionError::Execution(format!("expected UInt64 ids, got {}", values.data_type())))?;
    Ok(array.iter().flatten())
}

fn binaries(values: &ArrayRef) -> Result<impl Iterator<Item = &[u8]> + '_> {
    let array = values
        .as_binary_opt::<i32>()
        .ok_or_else(|| DataFusionError::Execution(format!("expected Binary, got {}", values.data_type())))?;
    Ok(array.iter().flatten())
}

/// The exact set of ids seen.
#[derive(Debug, Default)]
struct SetAccumulator {
    ids: HashSet<u64>,
    /// Whether the input is encoded sets (`visitor_set_union`) rather than ids.
    of_sets: bool,
}

impl Accumulator for SetAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if self.of_sets {
            return self.merge_batch(values);
        }
        self.ids.extend(ids(&values[0])?);
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for set in binaries(&states[0])? {
            extend_from_set(&mut self.ids, set);
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Binary(Some(encode_set(self.ids.iter().copied()))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.ids.capacity() * 16
    }
}

/// A HyperLogLog sketch of the ids seen.
#[derive(Debug, Default)]
struct HllAccumulator {
    sketch: Hll,
    of_sketches: bool,
}

impl Accumulator for HllAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if self.of_sketches {
            return self.merge_batch(values);
        }
        for id in ids(&values[0])? {
            self.sketch.insert(id);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for bytes in binaries(&states[0])? {
            if !self.sketch.merge_bytes(bytes) {
                return Err(DataFusionError::Execution("a value is not a HyperLogLog sketch".into()));
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Binary(Some(self.sketch.encode())))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + 4096
    }
}

fn udaf(name: &str, input: DataType, make: fn() -> Box<dyn Accumulator>) -> AggregateUDF {
    create_udaf(
        name,
        vec![input],
        Arc::new(DataType::Binary),
        Volatility::Immutable,
        Arc::new(move |_| Ok(make())),
        Arc::new(vec![DataType::Binary]),
    )
}

/// Registers the four functions in `ctx`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udaf(udaf("visitor_set", DataType::UInt64, || Box::new(SetAccumulator::default())));
    ctx.register_udaf(udaf("visitor_set_union", DataType::Binary, || {
        Box::new(SetAccumulator { of_sets: true, ..Default::default() })
    }));
    ctx.register_udaf(udaf("hll", DataType::UInt64, || Box::new(HllAccumulator::default())));
    ctx.register_udaf(udaf("hll_union", DataType::Binary, || {
        Box::new(HllAccumulator { of_sketches: true, ..Default::default() })
    }));
}
