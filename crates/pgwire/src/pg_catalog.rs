//! The slice of `pg_catalog` that PostgreSQL clients read on connect and for schema browsing
//! (`psql`'s `\dt`, `\d events`, `\dn`, `\l`; psycopg; JDBC's metadata calls; Grafana's and
//! Metabase's table pickers), built per session from the tables that session can read, and the
//! PostgreSQL functions those queries call.
//!
//! The catalog describes only what the session's scope sees: a tenant's `events` and
//! `raw_events` (and imported tables), or the admin's `system.*` tables. Object ids are
//! stable for a given set of tables, so a client may look up a table's oid and use it in its
//! next query.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float32Array, Int16Array, Int32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{MemTable, MemorySchemaProvider, SchemaProvider};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion::prelude::SessionContext;
use hourglass_query::SessionSetup;
use pgwire::api::Type;
use postgres_types::Kind as TypeKind;

use crate::types::{pg_type, sql_name};

/// Emulated catalog tables that have rows.
pub(crate) const TABLES: &[&str] =
    &["pg_namespace", "pg_class", "pg_attribute", "pg_type", "pg_am", "pg_database", "pg_roles", "pg_user"];

/// Emulated catalog tables that are always empty here: no indexes, constraints, defaults,
/// comments, inheritance, collations, functions or triggers.
pub(crate) const EMPTY_TABLES: &[&str] = &[
    "pg_description",
    "pg_attrdef",
    "pg_index",
    "pg_constraint",
    "pg_inherits",
    "pg_collation",
    "pg_proc",
    "pg_trigger",
    "pg_enum",
    "pg_tablespace",
    "pg_depend",
];

/// `information_schema` views answered with PostgreSQL's type names.
pub(crate) const INFORMATION_SCHEMA: &[&str] = &["tables", "columns", "schemata"];

/// The emulated catalog's table behind `information_schema.VIEW`.
pub(crate) fn information_schema_table(view: &str) -> String {
    format!("information_schema_{view}")
}

/// The version reported to clients: PostgreSQL 15 catalog queries are the ones emulated.
pub(crate) const SERVER_VERSION: &str = "15.0";

const CATALOG_NAMESPACE: i64 = 11;
const PUBLIC_NAMESPACE: i64 = 2200;
const INFORMATION_SCHEMA_NAMESPACE: i64 = 13_000;
const FIRST_USER_NAMESPACE: i64 = 16_000;
const FIRST_TABLE_OID: i64 = 16_384;
const OWNER_OID: i64 = 10;
const HEAP_AM: i64 = 2;
const DEFAULT_COLLATION: i64 = 100;

/// Column types of the emulated tables.
#[derive(Clone, Copy)]
enum Kind {
    Oid,
    Int4,
    Int2,
    Float4,
    Text,
    Bool,
    TextList,
}

/// One value of an emulated table.
#[derive(Clone)]
enum Cell {
    Int(i64),
    Float(f32),
    Text(String),
    Bool(bool),
    Null,
}

fn text(s: &str) -> Cell {
    Cell::Text(s.to_string())
}

fn data_type(kind: Kind) -> DataType {
    match kind {
        Kind::Oid => DataType::Int64,
        Kind::Int4 => DataType::Int32,
        Kind::Int2 => DataType::Int16,
        Kind::Float4 => DataType::Float32,
        Kind::Text => DataType::Utf8,
        Kind::Bool => DataType::Boolean,
        Kind::TextList => DataType::new_list(DataType::Utf8, true),
    }
}

fn int(cell: &Cell) -> Option<i64> {
    match cell {
        Cell::Int(v) => Some(*v),
        _ => None,
    }
}

fn column(kind: Kind, rows: &[Vec<Cell>], i: usize) -> ArrayRef {
    let cells = rows.iter().map(|row| row.get(i).cloned().unwrap_or(Cell::Null));
    match kind {
        Kind::Oid => Arc::new(cells.map(|c| int(&c)).collect::<Int64Array>()),
        Kind::Int4 => Arc::new(cells.map(|c| int(&c).and_then(|v| i32::try_from(v).ok())).collect::<Int32Array>()),
        Kind::Int2 => Arc::new(cells.map(|c| int(&c).and_then(|v| i16::try_from(v).ok())).collect::<Int16Array>()),
        Kind::Float4 => Arc::new(
            cells
                .map(|c| match c {
                    Cell::Float(v) => Some(v),
                    _ => None,
                })
                .collect::<Float32Array>(),
        ),
        Kind::Text => Arc::new(
            cells
                .map(|c| match c {
                    Cell::Text(v) => Some(v),
                    _ => None,
                })
                .collect::<StringArray>(),
        ),
        Kind::Bool => Arc::new(
            cells
                .map(|c| match c {
                    Cell::Bool(v) => Some(v),
                    _ => None,
                })
                .collect::<BooleanArray>(),
        ),
        Kind::TextList => arrow::array::new_null_array(&data_type(Kind::TextList), rows.len()),
    }
}

fn table(columns: &[(&str, Kind)], rows: &[Vec<Cell>]) -> datafusion::error::Result<MemTable> {
    let schema = Arc::new(Schema::new(
        columns.iter().map(|(name, kind)| Field::new(*name, data_type(*kind), true)).collect::<Vec<_>>(),
    ));
    let arrays = columns.iter().enumerate().map(|(i, (_, kind))| column(*kind, rows, i)).collect::<Vec<_>>();
    let batch = RecordBatch::try_new(Arc::clone(&schema), arrays)?;
    MemTable::try_new(schema, vec![vec![batch]])
}

/// A table the session can read, as the catalog lists it.
struct TableEntry {
    oid: i64,
    namespace: i64,
    name: String,
    schema: arrow::datatypes::SchemaRef,
}

/// Types listed in `pg_type`: every type results are sent as, and the ones clients cast to.
const LISTED_TYPES: &[Type] = &[
    Type::BOOL,
    Type::BYTEA,
    Type::CHAR,
    Type::NAME,
    Type::INT8,
    Type::INT2,
    Type::INT4,
    Type::TEXT,
    Type::OID,
    Type::JSON,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::UNKNOWN,
    Type::BPCHAR,
    Type::VARCHAR,
    Type::DATE,
    Type::TIME,
    Type::TIMESTAMP,
    Type::TIMESTAMPTZ,
    Type::INTERVAL,
    Type::NUMERIC,
    Type::BOOL_ARRAY,
    Type::INT2_ARRAY,
    Type::INT4_ARRAY,
    Type::INT8_ARRAY,
    Type::FLOAT4_ARRAY,
    Type::FLOAT8_ARRAY,
    Type::TEXT_ARRAY,
];

fn type_len(ty: &Type) -> i64 {
    match *ty {
        Type::BOOL | Type::CHAR => 1,
        Type::INT2 => 2,
        Type::INT4 | Type::OID | Type::FLOAT4 | Type::DATE => 4,
        Type::INT8 | Type::FLOAT8 | Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => 8,
        Type::NAME => 64,
        Type::INTERVAL => 16,
        _ => -1,
    }
}

fn array_of(ty: &Type) -> i64 {
    LISTED_TYPES
        .iter()
        .find(|candidate| matches!(candidate.kind(), TypeKind::Array(item) if item == ty))
        .map(|array| i64::from(array.oid()))
        .unwrap_or(0)
}

fn type_row(ty: &Type) -> Vec<Cell> {
    let (element, category) = match ty.kind() {
        TypeKind::Array(item) => (i64::from(item.oid()), "A"),
        _ => (
            0,
            match *ty {
                Type::BOOL => "B",
                Type::INT2 | Type::INT4 | Type::INT8 | Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC | Type::OID => "N",
                Type::DATE | Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => "D",
                Type::INTERVAL => "T",
                Type::JSON => "U",
                _ => "S",
            },
        ),
    };
    let len = type_len(ty);
    let collation = match *ty {
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DEFAULT_COLLATION,
        _ => 0,
    };
    vec![
        Cell::Int(i64::from(ty.oid())),
        text(ty.name()),
        Cell::Int(CATALOG_NAMESPACE),
        Cell::Int(OWNER_OID),
        Cell::Int(len),
        Cell::Bool(len > 0 && len <= 8),
        text("b"),
        text(category),
        Cell::Bool(matches!(*ty, Type::TEXT | Type::FLOAT8 | Type::TIMESTAMPTZ | Type::BOOL | Type::OID)),
        Cell::Bool(true),
        text(","),
        Cell::Int(0),
        Cell::Int(element),
        Cell::Int(array_of(ty)),
        Cell::Int(0),
        Cell::Int(-1),
        Cell::Int(0),
        Cell::Int(collation),
        Cell::Bool(false),
        Cell::Null,
        text(&format!("{}in", ty.name())),
        text(&format!("{}out", ty.name())),
    ]
}

/// What a PostgreSQL session adds to a Hourglass session: the emulated catalog (when the
/// statement reads it) and the PostgreSQL functions clients call.
#[derive(Debug, Clone)]
pub(crate) struct PgSession {
    /// The user name the client connected with (reported, never trusted for scope).
    pub user: String,
    /// The database name the client connected to.
    pub database: String,
    /// This connection's process id, as `BackendKeyData` told the client.
    pub backend_pid: i32,
    /// Whether to build the catalog tables.
    pub with_catalog: bool,
}

#[async_trait]
impl SessionSetup for PgSession {
    async fn setup(&self, ctx: &SessionContext) -> datafusion::error::Result<()> {
        for function in self.functions() {
            ctx.register_udf(function);
        }
        if self.with_catalog {
            self.register_catalog(ctx).await?;
        }
        Ok(())
    }
}

impl PgSession {
    fn functions(&self) -> Vec<ScalarUDF> {
        let version = format!("PostgreSQL {SERVER_VERSION} (Hourglass {})", env!("CARGO_PKG_VERSION"));
        let constants: Vec<(&str, ScalarValue)> = vec![
            ("pg_get_userbyid", ScalarValue::Utf8(Some(self.user.clone()))),
            ("pg_table_is_visible", ScalarValue::Boolean(Some(true))),
            ("pg_type_is_visible", ScalarValue::Boolean(Some(true))),
            ("pg_function_is_visible", ScalarValue::Boolean(Some(true))),
            ("pg_get_expr", ScalarValue::Utf8(None)),
            ("pg_get_indexdef", ScalarValue::Utf8(None)),
            ("pg_get_constraintdef", ScalarValue::Utf8(None)),
            ("pg_get_viewdef", ScalarValue::Utf8(None)),
            ("pg_get_triggerdef", ScalarValue::Utf8(None)),
            ("pg_get_partkeydef", ScalarValue::Utf8(None)),
            ("pg_get_serial_sequence", ScalarValue::Utf8(None)),
            ("obj_description", ScalarValue::Utf8(None)),
            ("col_description", ScalarValue::Utf8(None)),
            ("shobj_description", ScalarValue::Utf8(None)),
            ("pg_encoding_to_char", ScalarValue::Utf8(Some("UTF8".into()))),
            ("pg_relation_is_publishable", ScalarValue::Boolean(Some(false))),
            ("has_table_privilege", ScalarValue::Boolean(Some(true))),
            ("has_schema_privilege", ScalarValue::Boolean(Some(true))),
            ("has_database_privilege", ScalarValue::Boolean(Some(true))),
            ("has_column_privilege", ScalarValue::Boolean(Some(true))),
            ("pg_is_in_recovery", ScalarValue::Boolean(Some(false))),
            ("pg_relation_size", ScalarValue::Int64(Some(0))),
            ("pg_total_relation_size", ScalarValue::Int64(Some(0))),
            ("current_schema", ScalarValue::Utf8(Some("public".into()))),
            ("current_database", ScalarValue::Utf8(Some(self.database.clone()))),
            ("current_user", ScalarValue::Utf8(Some(self.user.clone()))),
            ("session_user", ScalarValue::Utf8(Some(self.user.clone()))),
            ("pg_backend_pid", ScalarValue::Int32(Some(self.backend_pid))),
            ("version", ScalarValue::Utf8(Some(version))),
        ];
        let mut functions: Vec<ScalarUDF> = constants
            .into_iter()
            .map(|(name, value)| ScalarUDF::new_from_impl(PgFunction::new(name, Body::Constant(value))))
            .collect();
        functions.push(ScalarUDF::new_from_impl(PgFunction::new("format_type", Body::FormatType)));
        functions.push(ScalarUDF::new_from_impl(PgFunction::new("current_setting", Body::Setting)));
        functions.push(ScalarUDF::new_from_impl(PgFunction::new("quote_ident", Body::QuoteIdent)));
        functions
    }

    async fn tables(ctx: &SessionContext) -> datafusion::error::Result<(Vec<(i64, String)>, Vec<TableEntry>)> {
        let mut namespaces = vec![
            (CATALOG_NAMESPACE, "pg_catalog".to_string()),
            (PUBLIC_NAMESPACE, "public".to_string()),
            (INFORMATION_SCHEMA_NAMESPACE, "information_schema".to_string()),
        ];
        let mut found = Vec::new();
        if let Some(catalog) = ctx.catalog("datafusion") {
            let mut schema_names = catalog.schema_names();
            schema_names.sort();
            for schema_name in schema_names {
                if matches!(schema_name.as_str(), "information_schema" | "pg_catalog") {
                    continue;
                }
                let namespace = match schema_name.as_str() {
                    "public" => PUBLIC_NAMESPACE,
                    _ => {
                        let oid = FIRST_USER_NAMESPACE + i64::try_from(namespaces.len()).unwrap_or(0);
                        namespaces.push((oid, schema_name.clone()));
                        oid
                    }
                };
                let Some(schema) = catalog.schema(&schema_name) else { continue };
                let mut table_names = schema.table_names();
                table_names.sort();
                for table_name in table_names {
                    if let Some(provider) = schema.table(&table_name).await? {
                        found.push((namespace, table_name, provider.schema()));
                    }
                }
            }
        }
        let tables = found
            .into_iter()
            .enumerate()
            .map(|(i, (namespace, name, schema))| TableEntry {
                oid: FIRST_TABLE_OID + i64::try_from(i).unwrap_or(0),
                namespace,
                name,
                schema,
            })
            .collect();
        Ok((namespaces, tables))
    }

    async fn register_catalog(&self, ctx: &SessionContext) -> datafusion::error::Result<()> {
        use Kind::*;
        let (namespaces, tables) = Self::tables(ctx).await?;
        let schema = Arc::new(MemorySchemaProvider::new());

        let rows: Vec<Vec<Cell>> =
            namespaces.iter().map(|(oid, name)| vec![Cell::Int(*oid), text(name), Cell::Int(OWNER_OID)]).collect();
        let cols = [("oid", Oid), ("nspname", Text), ("nspowner", Oid), ("nspacl", TextList)];
        schema.register_table("pg_namespace".into(), Arc::new(table(&cols, &rows)?))?;

        let rows: Vec<Vec<Cell>> = tables
            .iter()
            .map(|t| {
                vec![
                    Cell::Int(t.oid),
                    text(&t.name),
                    Cell::Int(t.namespace),
                    Cell::Int(0),
                    Cell::Int(0),
                    Cell::Int(OWNER_OID),
                    Cell::Int(HEAP_AM),
                    Cell::Int(t.oid),
                    Cell::Int(0),
                    Cell::Int(0),
                    Cell::Float(-1.0),
                    Cell::Int(0),
                    Cell::Int(0),
                    Cell::Bool(false),
                    Cell::Bool(false),
                    text("p"),
                    text("r"),
                    Cell::Int(i64::try_from(t.schema.fields().len()).unwrap_or(0)),
                    Cell::Int(0),
                    Cell::Bool(false),
                    Cell::Bool(false),
                    Cell::Bool(false),
                    Cell::Bool(false),
                    Cell::Bool(false),
                    Cell::Bool(true),
                    text("d"),
                    Cell::Bool(false),
                    Cell::Int(0),
                ]
            })
            .collect();
        let cols = [
            ("oid", Oid),
            ("relname", Text),
            ("relnamespace", Oid),
            ("reltype", Oid),
            ("reloftype", Oid),
            ("relowner", Oid),
            ("relam", Oid),
            ("relfilenode", Oid),
            ("reltablespace", Oid),
            ("relpages", Int4),
            ("reltuples", Float4),
            ("relallvisible", Int4),
            ("reltoastrelid", Oid),
            ("relhasindex", Bool),
            ("relisshared", Bool),
            ("relpersistence", Text),
            ("relkind", Text),
            ("relnatts", Int2),
            ("relchecks", Int2),
            ("relhasrules", Bool),
            ("relhastriggers", Bool),
            ("relhassubclass", Bool),
            ("relrowsecurity", Bool),
            ("relforcerowsecurity", Bool),
            ("relispopulated", Bool),
            ("relreplident", Text),
            ("relispartition", Bool),
            ("relrewrite", Oid),
            ("relacl", TextList),
            ("reloptions", TextList),
            ("relpartbound", Text),
        ];
        schema.register_table("pg_class".into(), Arc::new(table(&cols, &rows)?))?;

        let mut rows = Vec::new();
        for t in &tables {
            for (i, field) in t.schema.fields().iter().enumerate() {
                let ty = pg_type(field.data_type());
                let collation = if ty == Type::TEXT { DEFAULT_COLLATION } else { 0 };
                rows.push(vec![
                    Cell::Int(t.oid),
                    text(field.name()),
                    Cell::Int(i64::from(ty.oid())),
                    Cell::Int(-1),
                    Cell::Int(type_len(&ty)),
                    Cell::Int(i64::try_from(i + 1).unwrap_or(0)),
                    Cell::Int(i64::from(matches!(ty.kind(), TypeKind::Array(_)))),
                    Cell::Int(-1),
                    Cell::Int(-1),
                    Cell::Bool((1..=8).contains(&type_len(&ty))),
                    text("i"),
                    text("p"),
                    text(""),
                    Cell::Bool(!field.is_nullable()),
                    Cell::Bool(false),
                    Cell::Bool(false),
                    text(""),
                    text(""),
                    Cell::Bool(false),
                    Cell::Bool(true),
                    Cell::Int(0),
                    Cell::Int(collation),
                ]);
            }
        }
        let cols = [
            ("attrelid", Oid),
            ("attname", Text),
            ("atttypid", Oid),
            ("attstattarget", Int4),
            ("attlen", Int2),
            ("attnum", Int2),
            ("attndims", Int4),
            ("attcacheoff", Int4),
            ("atttypmod", Int4),
            ("attbyval", Bool),
            ("attalign", Text),
            ("attstorage", Text),
            ("attcompression", Text),
            ("attnotnull", Bool),
            ("atthasdef", Bool),
            ("atthasmissing", Bool),
            ("attidentity", Text),
            ("attgenerated", Text),
            ("attisdropped", Bool),
            ("attislocal", Bool),
            ("attinhcount", Int4),
            ("attcollation", Oid),
            ("attacl", TextList),
            ("attoptions", TextList),
        ];
        schema.register_table("pg_attribute".into(), Arc::new(table(&cols, &rows)?))?;

        let rows: Vec<Vec<Cell>> = LISTED_TYPES.iter().map(type_row).collect();
        let cols = [
            ("oid", Oid),
            ("typname", Text),
            ("typnamespace", Oid),
            ("typowner", Oid),
            ("typlen", Int2),
            ("typbyval", Bool),
            ("typtype", Text),
            ("typcategory", Text),
            ("typispreferred", Bool),
            ("typisdefined", Bool),
            ("typdelim", Text),
            ("typrelid", Oid),
            ("typelem", Oid),
            ("typarray", Oid),
            ("typbasetype", Oid),
            ("typtypmod", Int4),
            ("typndims", Int4),
            ("typcollation", Oid),
            ("typnotnull", Bool),
            ("typdefault", Text),
            ("typinput", Text),
            ("typoutput", Text),
        ];
        schema.register_table("pg_type".into(), Arc::new(table(&cols, &rows)?))?;

        let rows = vec![
            vec![Cell::Int(HEAP_AM), text("heap"), text("heap_tableam_handler"), text("t")],
            vec![Cell::Int(403), text("btree"), text("bthandler"), text("i")],
        ];
        let cols = [("oid", Oid), ("amname", Text), ("amhandler", Text), ("amtype", Text)];
        schema.register_table("pg_am".into(), Arc::new(table(&cols, &rows)?))?;

        let rows = vec![vec![
            Cell::Int(16_383),
            text(&self.database),
            Cell::Int(OWNER_OID),
            Cell::Int(6),
            text("c"),
            Cell::Bool(false),
            Cell::Bool(true),
            Cell::Int(-1),
            text("C"),
            text("C"),
            Cell::Null,
            Cell::Null,
            Cell::Int(1663),
        ]];
        let cols = [
            ("oid", Oid),
            ("datname", Text),
            ("datdba", Oid),
            ("encoding", Int4),
            ("datlocprovider", Text),
            ("datistemplate", Bool),
            ("datallowconn", Bool),
            ("datconnlimit", Int4),
            ("datcollate", Text),
            ("datctype", Text),
            ("daticulocale", Text),
            ("datacl", TextList),
            ("dattablespace", Oid),
        ];
        schema.register_table("pg_database".into(), Arc::new(table(&cols, &rows)?))?;

        let rows = vec![vec![
            Cell::Int(OWNER_OID),
            text(&self.user),
            Cell::Bool(false),
            Cell::Bool(true),
            Cell::Bool(false),
            Cell::Bool(false),
            Cell::Bool(true),
            Cell::Bool(false),
            Cell::Int(-1),
            Cell::Null,
            Cell::Bool(false),
        ]];
        let cols = [
            ("oid", Oid),
            ("rolname", Text),
            ("rolsuper", Bool),
            ("rolinherit", Bool),
            ("rolcreaterole", Bool),
            ("rolcreatedb", Bool),
            ("rolcanlogin", Bool),
            ("rolreplication", Bool),
            ("rolconnlimit", Int4),
            ("rolvaliduntil", Text),
            ("rolbypassrls", Bool),
            ("rolconfig", TextList),
        ];
        schema.register_table("pg_roles".into(), Arc::new(table(&cols, &rows)?))?;

        let rows = vec![vec![
            text(&self.user),
            Cell::Int(OWNER_OID),
            Cell::Bool(false),
            Cell::Bool(false),
            Cell::Bool(false),
            Cell::Bool(false),
            Cell::Null,
            Cell::Null,
        ]];
        let cols = [
            ("usename", Text),
            ("usesysid", Oid),
            ("usecreatedb", Bool),
            ("usesuper", Bool),
            ("userepl", Bool),
            ("usebypassrls", Bool),
            ("passwd", Text),
            ("valuntil", Text),
            ("useconfig", TextList),
        ];
        schema.register_table("pg_user".into(), Arc::new(table(&cols, &rows)?))?;

        self.register_information_schema(&schema, &namespaces, &tables)?;

        let empty: &[(&str, &[(&str, Kind)])] = &[
            ("pg_description", &[("objoid", Oid), ("classoid", Oid), ("objsubid", Int4), ("description", Text)]),
            ("pg_attrdef", &[("oid", Oid), ("adrelid", Oid), ("adnum", Int2), ("adbin", Text)]),
            (
                "pg_index",
                &[
                    ("indexrelid", Oid),
                    ("indrelid", Oid),
                    ("indnatts", Int2),
                    ("indnkeyatts", Int2),
                    ("indisunique", Bool),
                    ("indisprimary", Bool),
                    ("indisexclusion", Bool),
                    ("indimmediate", Bool),
                    ("indisclustered", Bool),
                    ("indisvalid", Bool),
                    ("indkey", Text),
                    ("indexprs", Text),
                    ("indpred", Text),
                ],
            ),
            (
                "pg_constraint",
                &[
                    ("oid", Oid),
                    ("conname", Text),
                    ("connamespace", Oid),
                    ("contype", Text),
                    ("condeferrable", Bool),
                    ("condeferred", Bool),
                    ("convalidated", Bool),
                    ("conrelid", Oid),
                    ("contypid", Oid),
                    ("conindid", Oid),
                    ("confrelid", Oid),
                    ("confupdtype", Text),
                    ("confdeltype", Text),
                    ("conkey", TextList),
                    ("confkey", TextList),
                    ("conbin", Text),
                ],
            ),
            ("pg_inherits", &[("inhrelid", Oid), ("inhparent", Oid), ("inhseqno", Int4), ("inhdetachpending", Bool)]),
            ("pg_collation", &[("oid", Oid), ("collname", Text), ("collnamespace", Oid), ("collprovider", Text)]),
            (
                "pg_proc",
                &[
                    ("oid", Oid),
                    ("proname", Text),
                    ("pronamespace", Oid),
                    ("proowner", Oid),
                    ("prokind", Text),
                    ("prorettype", Oid),
                    ("proargtypes", Text),
                    ("prosrc", Text),
                ],
            ),
            (
                "pg_trigger",
                &[("oid", Oid), ("tgrelid", Oid), ("tgname", Text), ("tgenabled", Text), ("tgisinternal", Bool)],
            ),
            ("pg_enum", &[("oid", Oid), ("enumtypid", Oid), ("enumsortorder", Float4), ("enumlabel", Text)]),
            ("pg_tablespace", &[("oid", Oid), ("spcname", Text), ("spcowner", Oid)]),
            (
                "pg_depend",
                &[
                    ("classid", Oid),
                    ("objid", Oid),
                    ("objsubid", Int4),
                    ("refclassid", Oid),
                    ("refobjid", Oid),
                    ("refobjsubid", Int4),
                    ("deptype", Text),
                ],
            ),
        ];
        debug_assert_eq!(empty.len(), EMPTY_TABLES.len());
        for (name, cols) in empty {
            schema.register_table((*name).into(), Arc::new(table(cols, &[])?))?;
        }

        let catalog = ctx
            .catalog("datafusion")
            .ok_or_else(|| DataFusionError::Internal("the session has no default catalog".into()))?;
        catalog.register_schema("pg_catalog", schema)?;
        Ok(())
    }
}

impl PgSession {
    fn register_information_schema(
        &self,
        schema: &MemorySchemaProvider,
        namespaces: &[(i64, String)],
        tables: &[TableEntry],
    ) -> datafusion::error::Result<()> {
        use Kind::*;
        let namespace_name =
            |oid: i64| namespaces.iter().find(|(n, _)| *n == oid).map(|(_, name)| name.clone()).unwrap_or_default();
        let rows: Vec<Vec<Cell>> = tables
            .iter()
            .map(|t| {
                vec![
                    text(&self.database),
                    text(&namespace_name(t.namespace)),
                    text(&t.name),
                    text("BASE TABLE"),
                    text("NO"),
                    text("NO"),
                ]
            })
            .collect();
        let cols = [
            ("table_catalog", Text),
            ("table_schema", Text),
            ("table_name", Text),
            ("table_type", Text),
            ("is_insertable_into", Text),
            ("is_typed", Text),
        ];
        schema.register_table(information_schema_table("tables"), Arc::new(table(&cols, &rows)?))?;

        let mut rows = Vec::new();
        for t in tables {
            for (i, field) in t.schema.fields().iter().enumerate() {
                let ty = pg_type(field.data_type());
                let is_array = matches!(ty.kind(), TypeKind::Array(_));
                let (precision, scale) = match ty {
                    Type::INT2 => (Cell::Int(16), Cell::Int(0)),
                    Type::INT4 => (Cell::Int(32), Cell::Int(0)),
                    Type::INT8 => (Cell::Int(64), Cell::Int(0)),
                    Type::FLOAT4 => (Cell::Int(24), Cell::Null),
                    Type::FLOAT8 => (Cell::Int(53), Cell::Null),
                    _ => (Cell::Null, Cell::Null),
                };
                let datetime_precision = match ty {
                    Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::TIME => Cell::Int(6),
                    Type::DATE => Cell::Int(0),
                    _ => Cell::Null,
                };
                rows.push(vec![
                    text(&self.database),
                    text(&namespace_name(t.namespace)),
                    text(&t.name),
                    text(field.name()),
                    Cell::Int(i64::try_from(i + 1).unwrap_or(0)),
                    Cell::Null,
                    text(if field.is_nullable() { "YES" } else { "NO" }),
                    text(if is_array { "ARRAY" } else { sql_name(&ty) }),
                    Cell::Null,
                    precision,
                    scale,
                    datetime_precision,
                    text(&self.database),
                    text("pg_catalog"),
                    text(ty.name()),
                    text("NO"),
                    text("NEVER"),
                    text("YES"),
                ]);
            }
        }
        let cols = [
            ("table_catalog", Text),
            ("table_schema", Text),
            ("table_name", Text),
            ("column_name", Text),
            ("ordinal_position", Int4),
            ("column_default", Text),
            ("is_nullable", Text),
            ("data_type", Text),
            ("character_maximum_length", Int4),
            ("numeric_precision", Int4),
            ("numeric_scale", Int4),
            ("datetime_precision", Int4),
            ("udt_catalog", Text),
            ("udt_schema", Text),
            ("udt_name", Text),
            ("is_identity", Text),
            ("is_generated", Text),
            ("is_updatable", Text),
        ];
        schema.register_table(information_schema_table("columns"), Arc::new(table(&cols, &rows)?))?;

        let rows: Vec<Vec<Cell>> =
            namespaces.iter().map(|(_, name)| vec![text(&self.database), text(name), text(&self.user)]).collect();
        let cols = [("catalog_name", Text), ("schema_name", Text), ("schema_owner", Text)];
        schema.register_table(information_schema_table("schemata"), Arc::new(table(&cols, &rows)?))?;
        Ok(())
    }
}

/// What a PostgreSQL function computes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Body {
    /// The same value whatever the arguments: functions whose answer is fixed here.
    Constant(ScalarValue),
    /// `format_type(oid, typmod)`: a type's SQL name.
    FormatType,
    /// `quote_ident(text)`: an identifier quoted where PostgreSQL would quote it.
    QuoteIdent,
    /// `current_setting(name)`: the settings clients read this way.
    Setting,
}

/// A PostgreSQL function that clients call in catalog queries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PgFunction {
    name: String,
    signature: Signature,
    body: Body,
}

impl PgFunction {
    fn new(name: &str, body: Body) -> Self {
        let signature = Signature::one_of(vec![TypeSignature::Nullary, TypeSignature::VariadicAny], Volatility::Stable);
        Self { name: name.to_string(), signature, body }
    }
}

/// Values of the server settings clients read with `SHOW` or `current_setting`.
pub(crate) fn setting(name: &str) -> Option<String> {
    Some(
        match name {
            "server_version" => SERVER_VERSION,
            "server_version_num" => "150000",
            "server_encoding" | "client_encoding" => "UTF8",
            "datestyle" => "ISO, MDY",
            "intervalstyle" => "postgres",
            "timezone" | "time zone" => "UTC",
            "transaction isolation level" | "transaction_isolation" | "default_transaction_isolation" => {
                "read committed"
            }
            "transaction_read_only" | "default_transaction_read_only" => "on",
            "standard_conforming_strings" | "integer_datetimes" => "on",
            "is_superuser" => "off",
            "search_path" => "\"$user\", public",
            "max_identifier_length" => "63",
            "max_index_keys" => "32",
            "lc_collate" | "lc_ctype" => "C",
            "application_name" => "",
            "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => "0",
            _ => return None,
        }
        .to_string(),
    )
}

/// A function argument as strings.
fn strings(value: ColumnarValue, rows: usize) -> datafusion::error::Result<StringArray> {
    let array = arrow::compute::cast(&value.into_array(rows)?, &DataType::Utf8)?;
    array
        .as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| DataFusionError::Internal("a cast to Utf8 gave another type".into()))
}

fn quote_ident(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { name.to_string() } else { format!("\"{}\"", name.replace('"', "\"\"")) }
}

impl ScalarUDFImpl for PgFunction {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(match &self.body {
            Body::Constant(value) => value.data_type(),
            Body::FormatType | Body::QuoteIdent | Body::Setting => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let first = || {
            args.args.first().cloned().ok_or_else(|| DataFusionError::Plan(format!("{} needs an argument", self.name)))
        };
        match &self.body {
            Body::Constant(value) => Ok(ColumnarValue::Scalar(value.clone())),
            Body::FormatType => {
                let oids = first()?.into_array(args.number_rows)?;
                let oids = arrow::compute::cast(&oids, &DataType::Int64)?;
                let oids = oids
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .cloned()
                    .unwrap_or_else(|| Int64Array::from(vec![None; oids.len()]));
                let names: StringArray = oids
                    .iter()
                    .map(|oid| {
                        let ty = oid.and_then(|oid| u32::try_from(oid).ok()).and_then(Type::from_oid)?;
                        Some(match sql_name(&ty) {
                            "text" if ty != Type::TEXT => ty.name().to_string(),
                            name => name.to_string(),
                        })
                    })
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(names)))
            }
            Body::Setting => {
                let names = strings(first()?, args.number_rows)?;
                let values: StringArray =
                    names.iter().map(|name| name.and_then(|n| setting(&n.to_ascii_lowercase()))).collect();
                Ok(ColumnarValue::Array(Arc::new(values)))
            }
            Body::QuoteIdent => {
                let names = strings(first()?, args.number_rows)?;
                let quoted: StringArray = names.iter().map(|name| name.map(quote_ident)).collect();
                Ok(ColumnarValue::Array(Arc::new(quoted)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_like_postgres() {
        assert_eq!(quote_ident("events"), "events");
        assert_eq!(quote_ident("Events"), "\"Events\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("1st"), "\"1st\"");
    }

    #[test]
    fn array_types_point_at_their_elements() {
        assert_eq!(array_of(&Type::TEXT), i64::from(Type::TEXT_ARRAY.oid()));
        assert_eq!(type_row(&Type::INT8_ARRAY)[12].clone().as_int(), Some(i64::from(Type::INT8.oid())));
    }

    impl Cell {
        fn as_int(&self) -> Option<i64> {
            int(self)
        }
    }
}
