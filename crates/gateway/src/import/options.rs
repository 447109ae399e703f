//! What an import request asks for: the file's format, the CSV dialect, and the schema when the
//! client gives one instead of letting Hourglass infer it.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use hourglass_types::ErrorKind;

use crate::error::ApiError;

/// The formats an import accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Comma-separated values (any one-byte delimiter).
    Csv,
    /// One JSON object per line.
    Ndjson,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    fn named(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "csv" | "text/csv" | "tsv" | "text/tab-separated-values" => Some(Self::Csv),
            "ndjson" | "jsonl" | "json" | "application/x-ndjson" | "application/jsonl" | "application/json" => {
                Some(Self::Ndjson)
            }
            "parquet" | "application/vnd.apache.parquet" | "application/x-parquet" => Some(Self::Parquet),
            _ => None,
        }
    }
}

/// A parsed import request.
#[derive(Debug, Clone)]
pub(crate) struct ImportOptions {
    /// The file's format.
    pub format: Format,
    /// CSV: whether the first line names the columns.
    pub header: bool,
    /// CSV: the field delimiter.
    pub delimiter: u8,
    /// The schema the client gave, if any.
    pub schema: Option<SchemaRef>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::InvalidArgument, message)
}

impl ImportOptions {
    /// Reads the query parameters (`format`, `header`, `delimiter`, `schema`), falling back to
    /// the Content-Type for the format.
    pub fn parse(params: &HashMap<String, String>, content_type: Option<&str>) -> Result<Self, ApiError> {
        for key in params.keys() {
            if !matches!(key.as_str(), "format" | "header" | "delimiter" | "schema") {
                return Err(invalid(format!(
                    "unknown parameter {key:?}; the parameters are format, header, delimiter and schema"
                )));
            }
        }
        let named = params.get("format").map(String::as_str);
        let media = content_type.map(|c| c.split(';').next().unwrap_or(c));
        let format = match (named, media) {
            (Some(name), _) => Format::named(name)
                .ok_or_else(|| invalid(format!("format {name:?} is not one of csv, ndjson, parquet")))?,
            (None, Some(media)) => Format::named(media).ok_or_else(|| {
                invalid(format!(
                    "Content-Type {media:?} is not an import format; send text/csv, application/x-ndjson or \
                     application/vnd.apache.parquet, or say ?format=csv|ndjson|parquet"
                ))
            })?,
            (None, None) => return Err(invalid("say which format the file is in: ?format=csv|ndjson|parquet")),
        };
        let header = match params.get("header").map(|h| h.to_ascii_lowercase()) {
            None => true,
            Some(h) if h == "true" || h == "1" => true,
            Some(h) if h == "false" || h == "0" => false,
            Some(h) => return Err(invalid(format!("header must be true or false, not {h:?}"))),
        };
        let delimiter = match params.get("delimiter").map(String::as_str) {
            None if named.is_some_and(|n| n.eq_ignore_ascii_case("tsv")) => b'\t',
            None => b',',
            Some("\\t" | "tab") => b'\t',
            Some(d) if d.len() == 1 && d.is_ascii() => d.as_bytes()[0],
            Some(d) => return Err(invalid(format!("delimiter must be one ASCII character or \\t, not {d:?}"))),
        };
        let schema = params.get("schema").map(|spec| parse_schema(spec)).transpose()?;
        Ok(Self { format, header, delimiter, schema })
    }
}

/// The type a schema spec names.
fn parse_type(name: &str) -> Option<DataType> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "string" | "text" | "varchar" | "utf8" => DataType::Utf8,
        "int" | "integer" | "int64" | "bigint" | "long" => DataType::Int64,
        "int32" => DataType::Int32,
        "float" | "double" | "float64" | "real" => DataType::Float64,
        "bool" | "boolean" => DataType::Boolean,
        "timestamp" | "timestamptz" | "datetime" => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        "date" => DataType::Date32,
        _ => return None,
    })
}

/// `name:type,name:type,...` with the types of [`parse_type`]; names as they will be in SQL.
pub(crate) fn parse_schema(spec: &str) -> Result<SchemaRef, ApiError> {
    let mut fields = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, kind) = part
            .split_once(':')
            .ok_or_else(|| invalid(format!("schema entry {part:?} must be name:type, for example seats:int64")))?;
        let name = name.trim();
        if !valid_column(name) {
            return Err(invalid(format!(
                "schema column {name:?} must be lowercase letters, digits and _, starting with a letter or _"
            )));
        }
        let data_type = parse_type(kind).ok_or_else(|| {
            invalid(format!(
                "schema type {kind:?} of {name} is not one of string, int64, int32, float64, boolean, timestamp, date"
            ))
        })?;
        if fields.iter().any(|f: &Field| f.name() == name) {
            return Err(invalid(format!("schema names column {name} twice")));
        }
        fields.push(Field::new(name, data_type, true));
    }
    if fields.is_empty() {
        return Err(invalid("schema is empty; give name:type pairs separated by commas"));
    }
    Ok(Arc::new(Schema::new(fields)))
}

fn valid_column(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

/// A column name from a file as SQL can use it unquoted: lowercase ASCII letters, digits and
/// `_`, every other run of characters becoming one `_` ("Email Address" -> `email_address`).
pub(crate) fn normalize_column(raw: &str, position: usize) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches('_');
    let mut name = if trimmed.is_empty() { format!("column_{}", position + 1) } else { trimmed.to_string() };
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name.truncate(63);
    name
}

/// Names an imported table cannot take: the built-in tables and the schemas of SQL clients.
const RESERVED: [&str; 6] = ["events", "raw_events", "sessions", "information_schema", "pg_catalog", "system"];

/// Checks an imported table's name.
pub(crate) fn table_name(name: &str) -> Result<&str, ApiError> {
    if !valid_column(name) || name.starts_with('_') {
        return Err(invalid(format!(
            "table name {name:?} must be 1-63 lowercase letters, digits and _, starting with a letter"
        )));
    }
    if RESERVED.contains(&name) || name.starts_with("pg_") {
        return Err(invalid(format!("table name {name:?} is reserved; choose another")));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_format_comes_from_the_parameter_or_the_content_type() {
        let csv = ImportOptions::parse(&params(&[]), Some("text/csv; charset=utf-8")).expect("csv");
        assert_eq!((csv.format, csv.header, csv.delimiter), (Format::Csv, true, b','));
        let tsv = ImportOptions::parse(&params(&[("format", "tsv"), ("header", "false")]), None).expect("tsv");
        assert_eq!((tsv.format, tsv.header, tsv.delimiter), (Format::Csv, false, b'\t'));
        let ndjson = ImportOptions::parse(&params(&[("format", "ndjson")]), Some("text/csv")).expect("ndjson");
        assert_eq!(ndjson.format, Format::Ndjson);
        assert!(ImportOptions::parse(&params(&[]), None).is_err());
        assert!(ImportOptions::parse(&params(&[]), Some("image/png")).is_err());
        assert!(ImportOptions::parse(&params(&[("format", "csv"), ("delimiter", ";;")]), None).is_err());
        assert!(ImportOptions::parse(&params(&[("format", "csv"), ("sep", ";")]), None).is_err());
    }

    #[test]
    fn schemas_are_name_type_pairs() {
        let schema = parse_schema("email:string, seats:int64,signed_up:timestamp").expect("schema");
        assert_eq!(schema.fields().len(), 3);
        assert_eq!(schema.field(1).data_type(), &DataType::Int64);
        for bad in ["", "email", "Email:string", "email:blob", "a:int,a:int"] {
            assert!(parse_schema(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn column_names_become_plain_identifiers() {
        assert_eq!(normalize_column("Email Address", 0), "email_address");
        assert_eq!(normalize_column("  Plan (2024) ", 1), "plan_2024");
        assert_eq!(normalize_column("2FA enabled?", 2), "_2fa_enabled");
        assert_eq!(normalize_column("", 3), "column_4");
        assert_eq!(normalize_column("Prénom", 4), "pr_nom");
    }

    #[test]
    fn table_names_are_checked_and_reserved_ones_refused() {
        assert!(table_name("crm_accounts").is_ok());
        for bad in ["events", "raw_events", "pg_things", "Accounts", "", "_x", "a-b", "system"] {
            assert!(table_name(bad).is_err(), "{bad:?}");
        }
    }
}
