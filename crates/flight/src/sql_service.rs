//! Arrow Flight SQL for SQL clients (ADBC and JDBC drivers, DBeaver, Grafana's FlightSQL data
//! source): statements, prepared statements with parameters and the metadata commands, over
//! the same tenant-scoped sessions and limits as HTTP.
//!
//! Every call authenticates on its own: `authorization: Bearer <token>` or HTTP basic auth
//! whose password is the token (drivers send basic auth to the handshake and then the bearer
//! token the handshake returns). A read token reads its tenant's tables, the admin token the
//! `system.*` tables. Statement tickets carry only the SQL text, never the scope: whoever
//! redeems a ticket is authenticated again.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
    Any, CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandGetXdbcTypeInfo, CommandPreparedStatementQuery, CommandStatementIngest, CommandStatementQuery,
    DoPutPreparedStatementResult, Nullable, ProstMessageExt, Searchable, SqlInfo, TicketStatementQuery, XdbcDataType,
};
use arrow_flight::{
    FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use datafusion::common::ScalarValue;
use futures::{Stream, StreamExt, TryStreamExt, stream};
use hourglass_catalog::{Principal, TokenCache};
use hourglass_query::{Interface, Querier, RunOptions, Scope};
use hourglass_types::ErrorKind;
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::BulkIngest;

/// Largest gRPC message a Flight SQL call may carry (prepared statement parameters) on nodes
/// without bulk ingest; tonic's own default is 4 MiB.
const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 << 20;

type FlightStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// The one place query error kinds become gRPC statuses.
pub(crate) fn status(kind: ErrorKind, message: String) -> Status {
    match kind {
        ErrorKind::InvalidArgument => Status::invalid_argument(message),
        ErrorKind::Unauthenticated => Status::unauthenticated(message),
        ErrorKind::PermissionDenied => Status::permission_denied(message),
        ErrorKind::NotFound => Status::not_found(message),
        ErrorKind::Conflict => Status::already_exists(message),
        ErrorKind::PayloadTooLarge | ErrorKind::ResourceExhausted => Status::resource_exhausted(message),
        ErrorKind::Unavailable => Status::unavailable(message),
        ErrorKind::QueryTimeout => Status::deadline_exceeded(message),
        ErrorKind::LimitExceeded => Status::resource_exhausted(message),
        ErrorKind::Cancelled => Status::cancelled(message),
        ErrorKind::Internal => {
            tracing::warn!(error = %message, "flight sql request failed");
            Status::internal("internal error; the server log has the details")
        }
    }
}

/// A query error as a gRPC status; the `hourglass-error-code` metadata tells the query limits
/// apart where gRPC codes coincide.
fn query_status(e: hourglass_query::Error) -> Status {
    let mut status = status(e.kind(), hourglass_types::error::display_chain(&e));
    status.metadata_mut().insert("hourglass-error-code", tonic::metadata::MetadataValue::from_static(e.code()));
    status
}

fn arrow_status(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("encoding the result: {e}"))
}

/// A statement prepared by one principal, with the parameters last bound to it.
struct Prepared {
    scope: Scope,
    sql: String,
    params: Vec<ScalarValue>,
}

/// The Flight SQL service of a node that answers queries.
pub struct FlightSqlServer {
    querier: Arc<Querier>,
    tokens: Arc<TokenCache>,
    prepared: Mutex<HashMap<Vec<u8>, Prepared>>,
    info: SqlInfoData,
    types: XdbcTypeInfoData,
    bulk: Option<Arc<BulkIngest>>,
}

impl std::fmt::Debug for FlightSqlServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightSqlServer").finish_non_exhaustive()
    }
}

fn sql_info() -> Result<SqlInfoData, Status> {
    let mut builder = SqlInfoDataBuilder::new();
    builder.append(SqlInfo::FlightSqlServerName, "Hourglass");
    builder.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    builder.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    builder.append(SqlInfo::FlightSqlServerReadOnly, true);
    builder.append(SqlInfo::FlightSqlServerSql, true);
    builder.append(SqlInfo::FlightSqlServerSubstrait, false);
    builder.append(SqlInfo::FlightSqlServerTransaction, 0i32);
    builder.append(SqlInfo::FlightSqlServerCancel, false);
    builder.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    builder.build().map_err(arrow_status)
}

/// The SQL types Hourglass's columns have, as JDBC/ODBC clients know them.
fn xdbc_types() -> Result<XdbcTypeInfoData, Status> {
    let mut builder = XdbcTypeInfoDataBuilder::new();
    let types = [
        ("BOOLEAN", XdbcDataType::XdbcBit, None),
        ("INTEGER", XdbcDataType::XdbcInteger, Some(10)),
        ("BIGINT", XdbcDataType::XdbcBigint, Some(19)),
        ("DOUBLE", XdbcDataType::XdbcDouble, Some(15)),
        ("VARCHAR", XdbcDataType::XdbcVarchar, None),
        ("TIMESTAMP", XdbcDataType::XdbcTimestamp, None),
    ];
    for (name, data_type, precision) in types {
        let quoted = matches!(data_type, XdbcDataType::XdbcVarchar | XdbcDataType::XdbcTimestamp);
        builder.append(XdbcTypeInfo {
            type_name: name.to_string(),
            data_type,
            column_size: precision,
            literal_prefix: quoted.then(|| "'".to_string()),
            literal_suffix: quoted.then(|| "'".to_string()),
            create_params: None,
            nullable: Nullable::NullabilityNullable,
            case_sensitive: data_type == XdbcDataType::XdbcVarchar,
            searchable: Searchable::Full,
            unsigned_attribute: precision.map(|_| false),
            fixed_prec_scale: false,
            auto_increment: None,
            local_type_name: Some(name.to_string()),
            minimum_scale: None,
            maximum_scale: None,
            sql_data_type: data_type,
            datetime_subcode: None,
            num_prec_radix: precision.map(|_| 10),
            interval_precision: None,
        });
    }
    builder.build().map_err(arrow_status)
}

impl FlightSqlServer {
    /// A service running queries on `querier`, authenticating with `tokens`.
    pub fn new(querier: Arc<Querier>, tokens: Arc<TokenCache>) -> Result<Self, Status> {
        Ok(Self {
            querier,
            tokens,
            prepared: Mutex::new(HashMap::new()),
            info: sql_info()?,
            types: xdbc_types()?,
            bulk: None,
        })
    }

    /// Also takes bulk ingest: `DoPut` to the path `["events"]` (nodes with an ingester).
    pub fn with_bulk_ingest(mut self, bulk: Arc<BulkIngest>) -> Self {
        self.bulk = Some(bulk);
        self
    }

    /// The tonic service to mount on a gRPC server.
    pub fn into_server(self) -> FlightServiceServer<Self> {
        let limit = self.bulk.as_ref().map_or(DEFAULT_MAX_MESSAGE_BYTES, |b| b.max_message_bytes());
        FlightServiceServer::new(self).max_decoding_message_size(limit)
    }

    async fn scope(&self, metadata: &MetadataMap) -> Result<Scope, Status> {
        let token = crate::token_auth::token(metadata)?;
        let principal = self
            .tokens
            .resolve(&token)
            .await
            .map_err(|e| status(e.kind(), hourglass_types::error::display_chain(&e)))?
            .ok_or_else(|| Status::unauthenticated("unknown token"))?;
        match principal {
            Principal::Reader(tenant) => Ok(Scope::Tenant(tenant)),
            Principal::Admin => Ok(Scope::Admin),
            Principal::Writer(_) => Err(Status::permission_denied("queries need a read token, not a write key")),
        }
    }

    fn flight_info(schema: &Schema, ticket: Any, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
        let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket.encode_to_vec()));
        Ok(FlightInfo::new()
            .try_with_schema(schema)
            .map_err(arrow_status)?
            .with_endpoint(endpoint)
            .with_descriptor(descriptor))
    }

    fn stream(schema: SchemaRef, batches: Vec<RecordBatch>) -> Response<FlightStream> {
        let input = stream::iter(batches.into_iter().map(Ok::<_, FlightError>));
        let encoded = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(input)
            .map_err(|e| Status::internal(format!("encoding the result: {e}")));
        Response::new(encoded.boxed())
    }

    async fn run(&self, scope: &Scope, sql: &str, params: Vec<ScalarValue>) -> Result<Response<FlightStream>, Status> {
        let options = RunOptions { interface: Interface::FlightSql, setup: None };
        let result = self.querier.query_with(scope, sql, params, options).await.map_err(query_status)?;
        Ok(Self::stream(result.schema, result.batches))
    }

    fn prepared(&self, handle: &[u8], scope: &Scope) -> Result<(String, Vec<ScalarValue>), Status> {
        let prepared = self.prepared.lock().map_err(|_| Status::internal("prepared statements poisoned"))?;
        match prepared.get(handle) {
            // Another principal's handle is treated as unknown: it reveals nothing.
            Some(p) if &p.scope == scope => Ok((p.sql.clone(), p.params.clone())),
            _ => Err(Status::not_found("no such prepared statement")),
        }
    }

    /// The FlightInfo of a metadata command: its answer is the command itself, redeemed as a
    /// ticket.
    async fn metadata_info(
        &self,
        request: Request<FlightDescriptor>,
        schema: &Schema,
        ticket: Any,
    ) -> Result<Response<FlightInfo>, Status> {
        self.scope(request.metadata()).await?;
        Ok(Response::new(Self::flight_info(schema, ticket, request.into_inner())?))
    }

    fn one_batch<E: std::fmt::Display>(
        schema: SchemaRef,
        batch: Result<RecordBatch, E>,
    ) -> Result<Response<FlightStream>, Status> {
        Ok(Self::stream(schema, vec![batch.map_err(arrow_status)?]))
    }

    fn ipc_schema(schema: &Schema) -> Result<bytes::Bytes, Status> {
        let IpcMessage(bytes) =
            SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into().map_err(arrow_status)?;
        Ok(bytes)
    }
}

/// Reads a batch of parameter values: one row, one column per parameter.
async fn parameter_values(stream: PeekableFlightDataStream) -> Result<Vec<ScalarValue>, Status> {
    let batches: Vec<RecordBatch> = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(
        stream.map_err(|s| FlightError::Tonic(Box::new(s))),
    )
    .try_collect()
    .await
    .map_err(|e| Status::invalid_argument(format!("reading parameters: {e}")))?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else { return Ok(Vec::new()) };
    if batches.iter().map(|b| b.num_rows()).sum::<usize>() > 1 {
        return Err(Status::invalid_argument("bind one row of parameters per execution"));
    }
    batch
        .columns()
        .iter()
        .map(|column| ScalarValue::try_from_array(column, 0).map_err(|e| Status::invalid_argument(e.to_string())))
        .collect()
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlServer {
    type FlightService = FlightSqlServer;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        self.scope(request.metadata()).await?;
        let token = crate::token_auth::token(request.metadata())?;
        let reply = HandshakeResponse { protocol_version: 0, payload: token.clone().into() };
        let mut response: Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>> =
            Response::new(stream::iter([Ok(reply)]).boxed());
        let header =
            format!("Bearer {token}").parse().map_err(|_| Status::unauthenticated("token is not a header value"))?;
        response.metadata_mut().insert("authorization", header);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let scope = self.scope(request.metadata()).await?;
        let described = self.querier.describe(&scope, &query.query).await.map_err(query_status)?;
        let ticket = TicketStatementQuery { statement_handle: query.query.into_bytes().into() };
        Ok(Response::new(Self::flight_info(&described.schema, ticket.as_any(), request.into_inner())?))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let scope = self.scope(request.metadata()).await?;
        let sql = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("statement ticket is not UTF-8"))?;
        self.run(&scope, &sql, Vec::new()).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let scope = self.scope(request.metadata()).await?;
        let described = self.querier.describe(&scope, &query.query).await.map_err(query_status)?;
        let parameters = Schema::new(
            described
                .parameters
                .iter()
                .map(|(name, ty)| Field::new(name, ty.clone().unwrap_or(DataType::Utf8), true))
                .collect::<Vec<_>>(),
        );
        let handle = uuid::Uuid::new_v4().as_bytes().to_vec();
        self.prepared
            .lock()
            .map_err(|_| Status::internal("prepared statements poisoned"))?
            .insert(handle.clone(), Prepared { scope, sql: query.query, params: Vec::new() });
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema: Self::ipc_schema(&described.schema)?,
            parameter_schema: Self::ipc_schema(&parameters)?,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        let scope = self.scope(request.metadata()).await?;
        self.prepared(&query.prepared_statement_handle, &scope)?;
        self.prepared
            .lock()
            .map_err(|_| Status::internal("prepared statements poisoned"))?
            .remove(query.prepared_statement_handle.as_ref());
        Ok(())
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let scope = self.scope(request.metadata()).await?;
        self.prepared(&query.prepared_statement_handle, &scope)?;
        let values = parameter_values(request.into_inner()).await?;
        let mut prepared = self.prepared.lock().map_err(|_| Status::internal("prepared statements poisoned"))?;
        if let Some(p) = prepared.get_mut(query.prepared_statement_handle.as_ref()) {
            p.params = values;
        }
        Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(query.prepared_statement_handle) })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let scope = self.scope(request.metadata()).await?;
        let (sql, _) = self.prepared(&query.prepared_statement_handle, &scope)?;
        let described = self.querier.describe(&scope, &sql).await.map_err(query_status)?;
        Ok(Response::new(Self::flight_info(&described.schema, query.as_any(), request.into_inner())?))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let scope = self.scope(request.metadata()).await?;
        let (sql, params) = self.prepared(&query.prepared_statement_handle, &scope)?;
        self.run(&scope, &sql, params).await
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.metadata_info(request, &schema, query.as_any()).await
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let scope = self.scope(request.metadata()).await?;
        let mut builder = query.into_builder();
        let mut names: Vec<String> =
            self.querier.tables(&scope).await.map_err(query_status)?.into_iter().map(|t| t.0).collect();
        names.dedup();
        for name in names {
            builder.append(name);
        }
        Self::one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.metadata_info(request, &schema, query.as_any()).await
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let scope = self.scope(request.metadata()).await?;
        let mut builder = query.into_builder();
        let mut pairs: Vec<(String, String)> =
            self.querier.tables(&scope).await.map_err(query_status)?.into_iter().map(|t| (t.0, t.1)).collect();
        pairs.dedup();
        for (catalog, schema) in pairs {
            builder.append(catalog, schema);
        }
        Self::one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.metadata_info(request, &schema, query.as_any()).await
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let scope = self.scope(request.metadata()).await?;
        let mut builder = query.into_builder();
        for (catalog, schema, table, columns) in self.querier.tables(&scope).await.map_err(query_status)? {
            let kind = if schema == "information_schema" { "VIEW" } else { "TABLE" };
            builder.append(catalog, schema, table, kind, &columns).map_err(arrow_status)?;
        }
        Self::one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.metadata_info(request, &schema, query.as_any()).await
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.scope(request.metadata()).await?;
        let mut builder = query.into_builder();
        builder.append("TABLE");
        builder.append("VIEW");
        Self::one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.info).schema();
        self.metadata_info(request, &schema, query.as_any()).await
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.scope(request.metadata()).await?;
        let builder = query.into_builder(&self.info);
        Self::one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder(&self.types).schema();
        self.metadata_info(request, &schema, query.as_any()).await
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.scope(request.metadata()).await?;
        let builder = query.into_builder(&self.types);
        Self::one_batch(builder.schema(), builder.build())
    }

    async fn do_put_statement_ingest(
        &self,
        _command: CommandStatementIngest,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        // Flight SQL's ingest command answers with a row count only, so rejected rows would
        // vanish without a word; bulk ingest has its own DoPut with an answer per row.
        Err(Status::unimplemented(
            "Flight SQL ingest (adbc_ingest) is not supported: send the batches with DoPut to the path \
             descriptor [\"events\"] and a write key, which answers per batch and per rejected row",
        ))
    }

    async fn do_put_fallback(
        &self,
        request: Request<PeekableFlightDataStream>,
        _message: Any,
    ) -> Result<Response<<Self as FlightService>::DoPutStream>, Status> {
        let Some(bulk) = &self.bulk else {
            return Err(Status::unimplemented(
                "this node has no ingester: send bulk ingest (DoPut to [\"events\"]) to a node that ingests",
            ));
        };
        let (metadata, _, messages) = request.into_parts();
        Ok(Response::new(bulk.do_put(&metadata, messages).await?))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
