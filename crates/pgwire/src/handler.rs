//! The simple and extended query protocols over the querier.

use std::fmt::Debug;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
use datafusion::common::ScalarValue;
use futures::{Sink, stream};
use hourglass_query::{Interface, Querier, QueryResult, RunOptions};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{DataRowEncoder, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use rust_decimal::Decimal;

use crate::auth::Connection;
use crate::command::{Command, parse, parse_one};
use crate::compat::Rewritten;
use crate::errors::{is_planning_error, query_error, sqlstate, user_error};
use crate::pg_catalog::{PgSession, setting};
use crate::types::{fields, pg_type, rows};

/// A statement prepared by `Parse`: what it does, and for queries the result schema and
/// parameter types the querier worked out.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    command: Command,
    schema: SchemaRef,
    parameters: Vec<Option<DataType>>,
}

fn connection<C: ClientInfo + ?Sized>(client: &C) -> PgWireResult<Arc<Connection>> {
    client
        .session_extensions()
        .get::<Connection>()
        .ok_or_else(|| user_error(sqlstate::INVALID_AUTHORIZATION, "the connection is not authenticated"))
}

fn session(connection: &Connection, rewritten: &Rewritten) -> PgSession {
    PgSession {
        user: connection.user.clone(),
        database: connection.database.clone(),
        backend_pid: connection.pid,
        with_catalog: rewritten.reads_catalog,
    }
}

/// The empty answer to a catalog query about things Hourglass does not have.
fn empty_answer(rewritten: &Rewritten) -> QueryResult {
    let fields: Vec<Field> = rewritten.columns.iter().map(|name| Field::new(name, DataType::Utf8, true)).collect();
    QueryResult { schema: Arc::new(Schema::new(fields)), batches: Vec::new() }
}

/// Answers of `SHOW` for the settings clients ask about.
fn show_value(connection: &Connection, name: &str) -> Option<String> {
    if let Ok(settings) = connection.settings.lock()
        && let Some(value) = settings.get(name)
    {
        return Some(value.clone());
    }
    setting(name)
}

fn show_schema(name: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(name.replace(' ', "_"), DataType::Utf8, true)]))
}

fn query_response(result: QueryResult, format: &Format) -> Response {
    let fields = Arc::new(fields(&result.schema, format));
    Response::Query(QueryResponse::new(Arc::clone(&fields), rows(fields, result.batches)))
}

/// Runs SQL statements for authenticated connections.
pub(crate) struct Backend {
    querier: Arc<Querier>,
    parser: Arc<StatementParser>,
}

impl Backend {
    /// A backend answering with `querier`.
    pub fn new(querier: Arc<Querier>) -> Self {
        Self { parser: Arc::new(StatementParser { querier: Arc::clone(&querier) }), querier }
    }

    async fn run(
        &self,
        connection: &Connection,
        command: &Command,
        params: Vec<ScalarValue>,
        format: &Format,
    ) -> PgWireResult<Response> {
        match command {
            Command::Begin => Ok(Response::TransactionStart(Tag::new("BEGIN"))),
            Command::Commit => Ok(Response::TransactionEnd(Tag::new("COMMIT"))),
            Command::Rollback => Ok(Response::TransactionEnd(Tag::new("ROLLBACK"))),
            Command::Acknowledge(tag) => Ok(Response::Execution(Tag::new(tag))),
            Command::Set { name, value } => {
                if let Ok(mut settings) = connection.settings.lock() {
                    settings.insert(name.clone(), value.clone());
                }
                Ok(Response::Execution(Tag::new("SET")))
            }
            Command::Show(name) => {
                let value = show_value(connection, name).ok_or_else(|| {
                    user_error(sqlstate::UNDEFINED_OBJECT, format!("unrecognized configuration parameter \"{name}\""))
                })?;
                let fields = Arc::new(fields(&show_schema(name), format));
                let mut encoder = DataRowEncoder::new(Arc::clone(&fields));
                encoder.encode_field(&value)?;
                let row = encoder.take_row();
                Ok(Response::Query(QueryResponse::new(fields, stream::iter(vec![Ok(row)]))))
            }
            Command::Query(rewritten) => {
                let setup = session(connection, rewritten);
                let options = RunOptions { interface: Interface::Postgres, setup: Some(&setup) };
                let cancelled = connection.cancel.start_query().await;
                let result = tokio::select! {
                    result = self.querier.query_with(&connection.scope, &rewritten.sql, params, options) => result,
                    // A dropped sender means the next statement replaced this one's handle;
                    // only a sent value is a CancelRequest.
                    Ok(()) = cancelled => Err(hourglass_query::Error::Cancelled("by the client's cancel request")),
                };
                match result {
                    Ok(result) => Ok(query_response(result, format)),
                    Err(e) if rewritten.reads_unknown && is_planning_error(&e) => {
                        Ok(query_response(empty_answer(rewritten), format))
                    }
                    Err(e) => Err(query_error(e)),
                }
            }
        }
    }
}

fn error_response(e: PgWireError) -> Response {
    Response::Error(Box::new(ErrorInfo::from(e)))
}

#[async_trait]
impl SimpleQueryHandler for Backend {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let connection = connection(client)?;
        let commands = match parse(query) {
            Ok(commands) => commands,
            Err(e) => return Ok(vec![error_response(e)]),
        };
        let mut responses = Vec::with_capacity(commands.len());
        for command in &commands {
            match self.run(&connection, command, Vec::new(), &Format::UnifiedText).await {
                Ok(response) => responses.push(response),
                Err(e) => {
                    // Like PostgreSQL, an error ends the rest of a multi-statement query.
                    responses.push(error_response(e));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

/// Parses and describes statements for the extended protocol.
pub(crate) struct StatementParser {
    querier: Arc<Querier>,
}

#[async_trait]
impl QueryParser for StatementParser {
    type Statement = Prepared;

    async fn parse_sql<C>(&self, client: &C, sql: &str, _types: &[Option<Type>]) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let connection = connection(client)?;
        let Some(command) = parse_one(sql)? else { return Ok(None) };
        let (schema, parameters) = match &command {
            Command::Query(rewritten) => {
                let setup = session(&connection, rewritten);
                match self.querier.describe_with(&connection.scope, &rewritten.sql, Some(&setup)).await {
                    Ok(described) => {
                        (described.schema, described.parameters.into_iter().map(|(_, data_type)| data_type).collect())
                    }
                    Err(e) if rewritten.reads_unknown && is_planning_error(&e) => {
                        (empty_answer(rewritten).schema, Vec::new())
                    }
                    Err(e) => return Err(query_error(e)),
                }
            }
            Command::Show(name) => (show_schema(name), Vec::new()),
            _ => (Arc::new(Schema::empty()), Vec::new()),
        };
        Ok(Some(Prepared { command, schema, parameters }))
    }

    fn get_parameter_types(&self, statement: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(statement.parameters.iter().map(|t| t.as_ref().map(pg_type).unwrap_or(Type::TEXT)).collect())
    }

    fn get_result_schema(&self, statement: &Prepared, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        Ok(fields(&statement.schema, format.unwrap_or(&Format::UnifiedText)))
    }
}

fn bad_parameter(index: usize, e: impl std::fmt::Display) -> PgWireError {
    user_error(sqlstate::DATATYPE_MISMATCH, format!("parameter ${}: {e}", index + 1))
}

/// Parameter `index` of `portal`, read as `ty` (the client's type, else the one the querier
/// inferred), as the value DataFusion expects.
fn parameter(
    portal: &Portal<Prepared>,
    index: usize,
    ty: &Type,
    expected: Option<&DataType>,
) -> PgWireResult<ScalarValue> {
    let raw = portal.parameters.get(index).cloned().flatten();
    let value = read_parameter(portal, index, ty, raw).map_err(|e| match e {
        PgWireError::UserError(_) => e,
        other => user_error(sqlstate::INVALID_TEXT, format!("parameter ${}: not a valid {ty}: {other}", index + 1)),
    })?;
    match expected {
        Some(expected) if value.data_type() != *expected => {
            value.cast_to(expected).map_err(|e| bad_parameter(index, format!("expected {expected}: {e}")))
        }
        _ => Ok(value),
    }
}

fn read_parameter(
    portal: &Portal<Prepared>,
    index: usize,
    ty: &Type,
    raw: Option<bytes::Bytes>,
) -> PgWireResult<ScalarValue> {
    Ok(match *ty {
        Type::BOOL => ScalarValue::Boolean(portal.parameter::<bool>(index, ty)?),
        Type::INT2 => ScalarValue::Int16(portal.parameter::<i16>(index, ty)?),
        Type::INT4 => ScalarValue::Int32(portal.parameter::<i32>(index, ty)?),
        Type::INT8 => ScalarValue::Int64(portal.parameter::<i64>(index, ty)?),
        Type::OID => ScalarValue::Int64(portal.parameter::<u32>(index, ty)?.map(i64::from)),
        Type::FLOAT4 => ScalarValue::Float32(portal.parameter::<f32>(index, ty)?),
        Type::FLOAT8 => ScalarValue::Float64(portal.parameter::<f64>(index, ty)?),
        Type::NUMERIC => match portal.parameter::<Decimal>(index, ty)? {
            Some(d) => ScalarValue::Decimal128(Some(d.mantissa()), 38, i8::try_from(d.scale()).unwrap_or(0)),
            None => ScalarValue::Decimal128(None, 38, 0),
        },
        Type::DATE => ScalarValue::Date32(
            portal
                .parameter::<NaiveDate>(index, ty)?
                .map(|d| d.signed_duration_since(DateTime::UNIX_EPOCH.date_naive()).num_days())
                .map(|days| i32::try_from(days).map_err(|e| bad_parameter(index, e)))
                .transpose()?,
        ),
        Type::TIMESTAMP => ScalarValue::TimestampMicrosecond(
            portal.parameter::<NaiveDateTime>(index, ty)?.map(|t| t.and_utc().timestamp_micros()),
            None,
        ),
        Type::TIMESTAMPTZ => ScalarValue::TimestampMicrosecond(
            portal.parameter::<DateTime<FixedOffset>>(index, ty)?.map(|t| t.timestamp_micros()),
            Some("UTC".into()),
        ),
        // Text, unknown and anything else: the value's text, which DataFusion casts.
        _ if portal.parameter_format.is_binary(index)
            && !matches!(*ty, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON) =>
        {
            return Err(user_error(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!("parameter ${}: binary values of type {} are not supported; send it as text", index + 1, ty),
            ));
        }
        _ => ScalarValue::Utf8(
            raw.map(|bytes| String::from_utf8(bytes.to_vec()).map_err(|e| bad_parameter(index, e))).transpose()?,
        ),
    })
}

#[async_trait]
impl ExtendedQueryHandler for Backend {
    type Statement = Prepared;
    type QueryParser = StatementParser;

    fn query_parser(&self) -> Arc<StatementParser> {
        Arc::clone(&self.parser)
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<Prepared>, _max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let connection = connection(client)?;
        let statement = &portal.statement;
        let prepared = &statement.statement;
        let mut params = Vec::with_capacity(portal.parameter_len());
        for index in 0..portal.parameter_len() {
            let expected = prepared.parameters.get(index).cloned().flatten();
            let ty = statement
                .parameter_types
                .get(index)
                .cloned()
                .flatten()
                .filter(|ty| *ty != Type::UNKNOWN)
                .or_else(|| expected.as_ref().map(pg_type))
                .unwrap_or(Type::TEXT);
            params.push(parameter(portal, index, &ty, expected.as_ref())?);
        }
        self.run(&connection, &prepared.command, params, &portal.result_column_format).await
    }
}
