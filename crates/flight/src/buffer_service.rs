//! The ingester's side: a Flight service whose only call is DoGet of a buffer ticket.

use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse,
    PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use hourglass_proto::internal::v1::{BufferTicket, ChunkMetadata};
use hourglass_query::BufferSource;
use hourglass_types::{TableName, TenantId};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use crate::{BUFFER_TICKET_PREFIX, BulkIngest, ClusterSecret};

/// Serves an ingester's buffer to queriers.
#[derive(Debug, Clone)]
pub struct BufferService {
    buffers: Arc<dyn BufferSource>,
    secret: ClusterSecret,
    bulk: Option<Arc<BulkIngest>>,
}

impl BufferService {
    /// A service over `buffers`, accepting calls that carry `secret`.
    pub fn new(buffers: Arc<dyn BufferSource>, secret: ClusterSecret) -> Self {
        Self { buffers, secret, bulk: None }
    }

    /// Also takes bulk ingest from senders: `DoPut` to the path `["events"]`, authenticated
    /// with a tenant's write key rather than the cluster secret.
    pub fn with_bulk_ingest(mut self, bulk: Arc<BulkIngest>) -> Self {
        self.bulk = Some(bulk);
        self
    }

    /// The tonic service to mount on a gRPC server.
    pub fn into_server(self) -> FlightServiceServer<Self> {
        match self.bulk.as_ref().map(|b| b.max_message_bytes()) {
            Some(limit) => FlightServiceServer::new(self).max_decoding_message_size(limit),
            None => FlightServiceServer::new(self),
        }
    }
}

fn parse_ticket(ticket: &Ticket) -> Result<(TableName, TenantId, i64, i64), Status> {
    let body = ticket
        .ticket
        .strip_prefix(BUFFER_TICKET_PREFIX)
        .ok_or_else(|| Status::invalid_argument("not a buffer ticket"))?;
    let t = BufferTicket::decode(body).map_err(|e| Status::invalid_argument(format!("bad buffer ticket: {e}")))?;
    let table = TableName::parse(&t.table).ok_or_else(|| Status::invalid_argument(format!("no table {}", t.table)))?;
    let tenant = TenantId::new(&t.tenant).map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok((table, tenant, t.from_ms, t.to_ms))
}

type Stream<T> = BoxStream<'static, Result<T, Status>>;

#[tonic::async_trait]
impl FlightService for BufferService {
    type HandshakeStream = Stream<HandshakeResponse>;
    type ListFlightsStream = Stream<FlightInfo>;
    type DoGetStream = Stream<FlightData>;
    type DoPutStream = Stream<PutResult>;
    type DoActionStream = Stream<arrow_flight::Result>;
    type ListActionsStream = Stream<ActionType>;
    type DoExchangeStream = Stream<FlightData>;

    async fn do_get(&self, request: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        self.secret.check(request.metadata())?;
        let (table, tenant, from_ms, to_ms) = parse_ticket(request.get_ref())?;
        let chunks = self
            .buffers
            .snapshot(table, &tenant, from_ms, to_ms)
            .await
            .map_err(|e| Status::unavailable(format!("buffer snapshot failed: {e}")))?;
        // Each chunk is its own Flight stream: a schema message carrying the chunk's metadata,
        // then its batches. Chunks without rows are left out.
        let messages = stream::iter(chunks.into_iter().filter(|c| !c.batches.is_empty())).flat_map(|chunk| {
            let metadata = ChunkMetadata { ingester_id: chunk.ingester_id, max_seq: chunk.max_seq }.encode_to_vec();
            let schema = chunk.batches[0].schema();
            FlightDataEncoderBuilder::new()
                .with_metadata(metadata.into())
                .with_schema(schema)
                .build(stream::iter(chunk.batches.into_iter().map(Ok)))
                .map_err(|e| Status::internal(format!("encoding buffered batches: {e}")))
        });
        Ok(Response::new(messages.boxed()))
    }

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented("the buffer service needs no handshake"))
    }

    async fn list_flights(&self, _request: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        Err(Status::unimplemented("the buffer service lists no flights"))
    }

    async fn get_flight_info(&self, _request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        Err(Status::unimplemented("the buffer service answers DoGet only"))
    }

    async fn poll_flight_info(&self, _request: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented("the buffer service answers DoGet only"))
    }

    async fn get_schema(&self, _request: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        Err(Status::unimplemented("the buffer service answers DoGet only"))
    }

    async fn do_put(&self, request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        let Some(bulk) = &self.bulk else {
            return Err(Status::unimplemented("this ingester takes no bulk ingest"));
        };
        let (metadata, _, messages) = request.into_parts();
        Ok(Response::new(bulk.do_put(&metadata, messages).await?))
    }

    async fn do_action(&self, _request: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        Err(Status::unimplemented("the buffer service has no actions"))
    }

    async fn list_actions(&self, _request: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        Ok(Response::new(stream::empty().boxed()))
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(Status::unimplemented("the buffer service answers DoGet only"))
    }
}
