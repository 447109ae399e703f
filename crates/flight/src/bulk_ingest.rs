//! Bulk ingest over gRPC for server-side senders, on nodes with an ingester:
//!
//! - Arrow Flight `DoPut` to the path descriptor `["events"]`: record batches whose columns are
//!   event fields (see [`hourglass_ingest::arrow_input`]); one `PutResult` per batch, in order,
//!   once that batch is durable, its `app_metadata` a JSON [`BatchAck`].
//! - `hourglass.ingest.v1.IngestService/Ingest` (`proto/hourglass/ingest/v1/ingest.proto`): a
//!   client stream of protobuf events, one answer once all are durable.
//!
//! Both authenticate with the tenant's write key and hand validated events to the same
//! [`Ingester::ingest_validated`] as HTTP ingest: the same rules, dedupe and durability.
//! Several batches (or requests) of one stream are validated and committed at once, so a
//! stream keeps the group commit and both cores busy rather than waiting for each sync.

use std::sync::{Arc, OnceLock};

use arrow::array::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_descriptor::DescriptorType;
use arrow_flight::{FlightData, PutResult};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt, stream};
use hourglass_catalog::{Principal, TokenCache};
use hourglass_ingest::parse::{EventFields, Props, Timestamp, ValidEvent, check_fields};
use hourglass_ingest::{EventError, IngestLimits, IngestOutcome, Ingester};
use hourglass_proto::ingest::v1 as pb;
use hourglass_types::TenantId;
use hourglass_types::error::display_chain;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::sql_service::status;

/// Batches (or requests) of one stream validated and committed at the same time.
const IN_FLIGHT: usize = 4;

/// Most rejected events listed in one answer; the counts stay exact.
pub const MAX_LISTED_ERRORS: usize = 1000;

/// The table a `DoPut` descriptor names: events go in through `raw_events`, and `events` is
/// what they become, so senders name `events` as they do over HTTP.
const TABLE: &str = "events";

/// The acknowledgement of one `DoPut` batch, sent as the JSON `app_metadata` of its
/// `PutResult` once the batch's accepted events are durable.
#[derive(Debug, serde::Serialize)]
pub struct BatchAck {
    /// The batch's position in the stream, from 0.
    pub batch: usize,
    /// Rows in the batch.
    pub rows: usize,
    /// Rows now durable, including re-sends of events already stored.
    pub accepted: usize,
    /// Rows rejected.
    pub rejected: usize,
    /// Of the accepted, how many were re-sends stored only once.
    pub duplicates: usize,
    /// The reason for each rejected row (its `index` is the row in the batch), at most
    /// [`MAX_LISTED_ERRORS`].
    pub errors: Vec<EventError>,
    /// Whether more rows were rejected than `errors` lists.
    pub errors_truncated: bool,
}

/// Bulk ingest into one node's ingester.
#[derive(Debug)]
pub struct BulkIngest {
    /// Set once the ingester has replayed its WAL; calls before then are told to retry.
    ingester: OnceLock<Arc<Ingester>>,
    limits: IngestLimits,
    tokens: Arc<TokenCache>,
}

fn ingest_status(e: hourglass_ingest::Error) -> Status {
    status(e.kind(), display_chain(&e))
}

impl BulkIngest {
    /// Bulk ingest held to `limits` (those of the node's ingester), authenticating write keys
    /// with `tokens`. It answers "unavailable" until [`BulkIngest::attach`] hands it the
    /// ingester, so that the gRPC port can serve while the WAL replays.
    pub fn new(limits: IngestLimits, tokens: Arc<TokenCache>) -> Arc<Self> {
        Arc::new(Self { ingester: OnceLock::new(), limits, tokens })
    }

    /// Starts storing into `ingester`. Only the first call has an effect.
    pub fn attach(&self, ingester: Arc<Ingester>) {
        let _ = self.ingester.set(ingester);
    }

    fn ingester(&self) -> Result<&Arc<Ingester>, Status> {
        self.ingester.get().ok_or_else(|| Status::unavailable("the ingester is replaying its WAL; retry shortly"))
    }

    /// The largest gRPC message the node should accept: one batch or request may be as large
    /// as one HTTP ingest body.
    pub fn max_message_bytes(&self) -> usize {
        self.limits.max_body_bytes
    }

    /// The tenant whose write key the call carries.
    async fn writer(&self, metadata: &MetadataMap) -> Result<TenantId, Status> {
        let token = crate::token_auth::token(metadata)?;
        match self.tokens.resolve(&token).await.map_err(|e| status(e.kind(), display_chain(&e)))? {
            Some(Principal::Writer(tenant)) => Ok(tenant),
            Some(_) => Err(Status::permission_denied(
                "bulk ingest needs the tenant's write key; read tokens and the admin token cannot write",
            )),
            None => Err(Status::unauthenticated("unknown token")),
        }
    }

    /// Validates and stores a batch of rows or protobuf events on a task of its own (so the
    /// batches of one stream use every core), returning once the accepted ones are durable.
    async fn store(
        self: &Arc<Self>,
        tenant: &TenantId,
        validate: impl FnOnce(i64) -> Result<Vec<Result<ValidEvent, EventError>>, Status> + Send + 'static,
    ) -> Result<IngestOutcome, Status> {
        let this = Arc::clone(self);
        let tenant = tenant.clone();
        let task = tokio::spawn(async move {
            let ingester = this.ingester()?;
            let now = ingester.now_ms();
            let items = tokio::task::spawn_blocking(move || validate(now))
                .await
                .map_err(|e| Status::internal(format!("validating a batch failed: {e}")))??;
            ingester.ingest_validated(&tenant, items).await.map_err(ingest_status)
        });
        task.await.map_err(|e| Status::internal(format!("storing a batch failed: {e}")))?
    }

    /// Flight `DoPut`: checks the write key and the descriptor of the stream's first message,
    /// then stores each batch and answers with its [`BatchAck`].
    pub async fn do_put<S>(
        self: &Arc<Self>,
        metadata: &MetadataMap,
        mut messages: S,
    ) -> Result<BoxStream<'static, Result<PutResult, Status>>, Status>
    where
        S: Stream<Item = Result<FlightData, Status>> + Send + Unpin + 'static,
    {
        let tenant = self.writer(metadata).await?;
        self.ingester()?;
        let first = messages.next().await.ok_or_else(|| Status::invalid_argument("DoPut stream is empty"))??;
        let named_events = first.flight_descriptor.as_ref().is_some_and(|d| {
            d.r#type() == DescriptorType::Path && d.path.len() == 1 && d.path[0].eq_ignore_ascii_case(TABLE)
        });
        if !named_events {
            return Err(Status::invalid_argument(format!(
                "DoPut takes the path descriptor [\"{TABLE}\"] (pyarrow: flight.FlightDescriptor.for_path(\"{TABLE}\"))"
            )));
        }
        let data = stream::once(async { Ok(first) }).chain(messages).map_err(FlightError::from);
        let limits = self.limits.clone();
        let this = Arc::clone(self);
        let acks = FlightRecordBatchStream::new_from_flight_data(data)
            .enumerate()
            .map(move |(index, batch)| {
                let this = Arc::clone(&this);
                let tenant = tenant.clone();
                let limits = limits.clone();
                async move {
                    let batch: RecordBatch = batch.map_err(|e| match e {
                        FlightError::Tonic(status) => *status,
                        other => Status::invalid_argument(format!("batch {index} is not valid Arrow IPC: {other}")),
                    })?;
                    let rows = batch.num_rows();
                    let outcome = this
                        .store(&tenant, move |now| {
                            hourglass_ingest::arrow_input::events_from_batch(&batch, &limits, now)
                                .map_err(|e| Status::invalid_argument(format!("batch {index}: {}", display_chain(&e))))
                        })
                        .await?;
                    let rejected = outcome.errors.len();
                    let mut errors = outcome.errors;
                    errors.truncate(MAX_LISTED_ERRORS);
                    let ack = BatchAck {
                        batch: index,
                        rows,
                        accepted: outcome.accepted,
                        rejected,
                        duplicates: outcome.duplicates,
                        errors_truncated: rejected > errors.len(),
                        errors,
                    };
                    let metadata =
                        serde_json::to_vec(&ack).map_err(|e| Status::internal(format!("encoding an ack: {e}")))?;
                    Ok(PutResult { app_metadata: metadata.into() })
                }
            })
            .buffered(IN_FLIGHT);
        Ok(acks.boxed())
    }
}

/// The protobuf events of one request as the fields every ingest path validates.
fn fields_of(event: pb::Event) -> EventFields {
    let mut props: Vec<(String, String)> = event.props.into_iter().collect();
    props.sort_unstable();
    let timestamp = event.timestamp.map(|t| match t {
        pb::event::Timestamp::TimestampMs(ms) => Timestamp::Millis(ms),
        pb::event::Timestamp::TimestampRfc3339(text) => Timestamp::Text(text),
    });
    EventFields {
        event_id: event.event_id,
        timestamp,
        // Proto3 cannot tell an empty string from a missing one.
        name: Some(event.name).filter(|n| !n.is_empty()),
        client_id: event.client_id,
        user_id: event.user_id,
        session_id: event.session_id,
        url: event.url,
        referrer: event.referrer,
        title: event.title,
        user_agent: event.user_agent,
        ip: event.ip,
        country: event.country,
        language: event.language,
        screen_width: event.screen_width,
        revenue: event.revenue,
        currency: event.currency,
        interactive: event.interactive,
        props: (!props.is_empty()).then_some(Props(props)),
    }
}

/// `hourglass.ingest.v1.IngestService` over a node's [`BulkIngest`].
#[derive(Debug, Clone)]
pub struct IngestRpc {
    bulk: Arc<BulkIngest>,
}

impl IngestRpc {
    /// The service over `bulk`.
    pub fn new(bulk: Arc<BulkIngest>) -> Self {
        Self { bulk }
    }

    /// The tonic service to mount on a gRPC server.
    pub fn into_server(self) -> pb::ingest_service_server::IngestServiceServer<Self> {
        let limit = self.bulk.max_message_bytes();
        pb::ingest_service_server::IngestServiceServer::new(self).max_decoding_message_size(limit)
    }
}

#[tonic::async_trait]
impl pb::ingest_service_server::IngestService for IngestRpc {
    async fn ingest(
        &self,
        request: Request<Streaming<pb::IngestRequest>>,
    ) -> Result<Response<pb::IngestResponse>, Status> {
        let tenant = self.bulk.writer(request.metadata()).await?;
        self.bulk.ingester()?;
        let limits = self.bulk.limits.clone();
        let bulk = Arc::clone(&self.bulk);
        let mut outcomes = request
            .into_inner()
            .enumerate()
            .map(move |(index, request)| {
                let bulk = Arc::clone(&bulk);
                let tenant = tenant.clone();
                let limits = limits.clone();
                async move {
                    let events = request?.events;
                    let outcome = bulk
                        .store(&tenant, move |now| {
                            Ok(events
                                .into_iter()
                                .enumerate()
                                .map(|(i, event)| check_fields(i, fields_of(event), &limits, now))
                                .collect())
                        })
                        .await?;
                    Ok::<_, Status>((index, outcome))
                }
            })
            .buffered(IN_FLIGHT);
        let mut response = pb::IngestResponse::default();
        while let Some((request, outcome)) = outcomes.try_next().await? {
            response.accepted += outcome.accepted as u64;
            response.duplicates += outcome.duplicates as u64;
            response.rejected += outcome.errors.len() as u64;
            for e in outcome.errors {
                if response.errors.len() == MAX_LISTED_ERRORS {
                    response.errors_truncated = true;
                    break;
                }
                response.errors.push(pb::EventError {
                    request: request as u64,
                    index: e.index as u64,
                    field: e.field.unwrap_or_default(),
                    error: e.error,
                });
            }
        }
        Ok(Response::new(response))
    }
}
