//! The `sessions` table: one row per session, computed when queried from the tenant's
//! `events` by the processor's sessionizer and the tenant's settings.
//!
//! Sessions are not stored. A session's start, end and attributes can change whenever a late
//! event arrives (it may join or extend a session of any age), and computing them from every
//! event of the tenant gives the batch definition of ANALYTICS.md by construction, with no
//! correction step to get wrong. The price is a full read of the tenant's events per query;
//! the hourly rollups of the report API are what make dashboards fast.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_expr::{Distribution, EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::TryStreamExt;
use hourglass_processor::sessions::{self, SessionRules};

use crate::table::{TenantTable, to_query_schema};

/// `sessions` for one tenant, over that tenant's `events` table.
#[derive(Debug)]
pub struct SessionsTable {
    events: TenantTable,
    rules: SessionRules,
}

impl SessionsTable {
    /// Sessions of the events `events` reads, by `rules` (the tenant's settings).
    pub fn new(events: TenantTable, rules: SessionRules) -> Self {
        Self { events, rules }
    }
}

#[async_trait]
impl TableProvider for SessionsTable {
    fn schema(&self) -> SchemaRef {
        sessions::schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Filters are not pushed into the events scan: an event outside a session filter's
        // range can still decide where the sessions inside it start and end.
        let events_schema = self.events.schema();
        let columns =
            sessions::INPUT_COLUMNS.iter().map(|c| events_schema.index_of(c)).collect::<Result<Vec<_>, _>>()?;
        let input = self.events.scan(state, Some(&columns), &[], None).await?;
        let input: Arc<dyn ExecutionPlan> = Arc::new(CoalescePartitionsExec::new(input));
        let output = projection.cloned().unwrap_or_else(|| (0..sessions::schema().fields().len()).collect());
        Ok(Arc::new(SessionizeExec::try_new(input, self.rules.clone(), output)?))
    }
}

/// Reads every input row, then emits the sessions of them as one batch.
#[derive(Debug)]
struct SessionizeExec {
    input: Arc<dyn ExecutionPlan>,
    rules: SessionRules,
    output: Vec<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl SessionizeExec {
    fn try_new(input: Arc<dyn ExecutionPlan>, rules: SessionRules, output: Vec<usize>) -> Result<Self> {
        let schema = Arc::new(sessions::schema().project(&output)?);
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(Self { input, rules, output, schema, properties })
    }
}

impl DisplayAs for SessionizeExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionizeExec: timeout_ms={}", self.rules.timeout_ms)
    }
}

/// The input's string columns as plain `Utf8`, which the sessionizer reads.
fn plain_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View | DataType::LargeUtf8 => f.as_ref().clone().with_data_type(DataType::Utf8),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

impl ExecutionPlan for SessionizeExec {
    fn name(&self) -> &str {
        "SessionizeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        // Every event of the tenant must reach the one partition that sessionizes; without
        // this the optimizer may drop the coalescing and leave other partitions unread.
        vec![Distribution::SinglePartition]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal("SessionizeExec takes one child".into()));
        }
        Ok(Arc::new(Self::try_new(children.swap_remove(0), self.rules.clone(), self.output.clone())?))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!("SessionizeExec has one partition, not {partition}")));
        }
        let input = self.input.execute(0, Arc::clone(&context))?;
        let plain = plain_schema(&self.input.schema());
        let (rules, output) = (self.rules.clone(), self.output.clone());
        let reservation = MemoryConsumer::new("SessionizeExec").register(context.memory_pool());
        let sessions = futures::stream::once(async move {
            // Every event is held until the last one is read: count them against the query's
            // memory budget, so a tenant too large for it fails cleanly instead of the process.
            // The plain copies are what is held; the concatenation doubles them for a moment,
            // and the sessionizer's own state is about one more copy of the keys.
            let batches: Vec<RecordBatch> = input
                .and_then(|batch| {
                    let converted = to_query_schema(&batch, &plain).and_then(|plain| {
                        reservation.try_grow(2 * plain.get_array_memory_size())?;
                        Ok(plain)
                    });
                    futures::future::ready(converted)
                })
                .try_collect()
                .await?;
            let all = concat_batches(&plain, &batches)?;
            drop(batches);
            let built = sessions::build(&all, &rules).map_err(|e| DataFusionError::External(Box::new(e)))?;
            Ok(built.project(&output)?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), sessions)))
    }
}
