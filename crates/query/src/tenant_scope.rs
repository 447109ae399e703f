//! The execution node that restricts rows to one tenant, and keeps every other expression of
//! the query above it.
//!
//! A plain `FilterExec` would not do: DataFusion pushes filters down through it and may merge
//! or reorder predicates, so a user's expression (say a failing cast) could run on another
//! tenant's rows and leak their values in an error message. This node accepts no pushed-down
//! filters (the `ExecutionPlan` default), so everything the query evaluates sees only rows that
//! already passed the tenant test.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, Scalar, StringArray};
use datafusion::arrow::compute::kernels::cmp::eq;
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties};
use futures::StreamExt;

/// Keeps the rows of `input` whose `tenant_col` equals `tenant`, then projects `output`.
#[derive(Debug)]
pub(crate) struct TenantScopeExec {
    input: Arc<dyn ExecutionPlan>,
    tenant_col: usize,
    tenant: Arc<str>,
    output: Vec<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl TenantScopeExec {
    pub(crate) fn try_new(
        input: Arc<dyn ExecutionPlan>,
        tenant_col: usize,
        tenant: Arc<str>,
        output: Vec<usize>,
    ) -> Result<Self> {
        let schema = Arc::new(input.schema().project(&output)?);
        let partitions = input.output_partitioning().partition_count();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self { input, tenant_col, tenant, output, schema, properties })
    }
}

impl DisplayAs for TenantScopeExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantScopeExec: tenant_id={}", self.tenant)
    }
}

/// Keeps `tenant`'s rows of `batch` and projects `output`.
fn scope(batch: &RecordBatch, tenant_col: usize, tenant: &Scalar<ArrayRef>, output: &[usize]) -> Result<RecordBatch> {
    let mask = eq(batch.column(tenant_col), tenant)?;
    let kept = filter_record_batch(batch, &mask)?;
    Ok(kept.project(output)?)
}

impl ExecutionPlan for TenantScopeExec {
    fn name(&self) -> &str {
        "TenantScopeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal("TenantScopeExec takes one child".into()));
        }
        let input = children.swap_remove(0);
        Ok(Arc::new(Self::try_new(input, self.tenant_col, Arc::clone(&self.tenant), self.output.clone())?))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let tenant_type = self.input.schema().field(self.tenant_col).data_type().clone();
        let tenant = Scalar::new(cast(&StringArray::from(vec![self.tenant.as_ref()]), &tenant_type)?);
        let (col, output) = (self.tenant_col, self.output.clone());
        let stream = input.map(move |batch| batch.and_then(|b| scope(&b, col, &tenant, &output)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), stream)))
    }
}
