//! The one place Hourglass errors become PostgreSQL errors with SQLSTATE codes, so that clients
//! can tell a typo from a refused statement, a timeout or an outage.

use datafusion::error::DataFusionError;
use hourglass_types::ErrorKind;
use pgwire::error::{ErrorInfo, PgWireError};

/// SQLSTATE codes Hourglass sends.
pub(crate) mod sqlstate {
    /// Bad SQL syntax.
    pub const SYNTAX_ERROR: &str = "42601";
    /// A table that does not exist (or that the scope cannot see).
    pub const UNDEFINED_TABLE: &str = "42P01";
    /// A column that does not exist.
    pub const UNDEFINED_COLUMN: &str = "42703";
    /// A function that does not exist.
    pub const UNDEFINED_FUNCTION: &str = "42883";
    /// A type mismatch, including a parameter of the wrong type.
    pub const DATATYPE_MISMATCH: &str = "42804";
    /// Any other planning error.
    pub const SYNTAX_OR_ACCESS: &str = "42000";
    /// A setting that does not exist.
    pub const UNDEFINED_OBJECT: &str = "42704";
    /// A parameter value that does not read as its type.
    pub const INVALID_TEXT: &str = "22P02";
    /// Division by zero.
    pub const DIVISION_BY_ZERO: &str = "22012";
    /// Any other error in the data.
    pub const DATA_EXCEPTION: &str = "22000";
    /// Something Hourglass does not do.
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    /// DDL, DML and other writes: Hourglass's SQL is read-only.
    pub const READ_ONLY: &str = "25006";
    /// A permission the token does not carry (for example `system.*` for a tenant).
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    /// A result past the configured size limit.
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    /// A query past its time limit (PostgreSQL's `statement_timeout` code).
    pub const QUERY_CANCELED: &str = "57014";
    /// A query past its memory limit.
    pub const OUT_OF_MEMORY: &str = "53200";
    /// The querier's shared memory is taken by other queries; retry.
    pub const INSUFFICIENT_RESOURCES: &str = "53000";
    /// The tenant has too many queries running and waiting; retry.
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    /// Storage or catalog unavailable; retry.
    pub const UNAVAILABLE: &str = "57P03";
    /// Credentials that are not a read token or the admin token.
    pub const INVALID_AUTHORIZATION: &str = "28000";
    /// A bug: the server log has the details.
    pub const INTERNAL: &str = "XX000";
}

/// A PostgreSQL error with `code` and `message`.
pub(crate) fn user_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".to_string(), code.to_string(), message.into())))
}

/// The SQLSTATE for a DataFusion planning or execution failure.
fn datafusion_code(e: &DataFusionError) -> &'static str {
    match e.find_root() {
        DataFusionError::SQL(..) => sqlstate::SYNTAX_ERROR,
        DataFusionError::SchemaError(..) => sqlstate::UNDEFINED_COLUMN,
        DataFusionError::NotImplemented(_) => sqlstate::FEATURE_NOT_SUPPORTED,
        DataFusionError::Plan(message) => {
            let message = message.to_ascii_lowercase();
            if message.contains("not found") && message.contains("table") {
                sqlstate::UNDEFINED_TABLE
            } else if message.contains("invalid function") || message.contains("no function matches") {
                sqlstate::UNDEFINED_FUNCTION
            } else if message.contains("expected parameter of type") || message.contains("cannot be cast") {
                sqlstate::DATATYPE_MISMATCH
            } else {
                sqlstate::SYNTAX_OR_ACCESS
            }
        }
        DataFusionError::ArrowError(error, _) if error.to_string().contains("Divide by zero") => {
            sqlstate::DIVISION_BY_ZERO
        }
        DataFusionError::Execution(message) if message.contains("Divide by zero") => sqlstate::DIVISION_BY_ZERO,
        _ => sqlstate::DATA_EXCEPTION,
    }
}

/// A query error as the client sees it.
pub(crate) fn query_error(e: hourglass_query::Error) -> PgWireError {
    let message = hourglass_types::error::display_chain(&e);
    use hourglass_query::Error as Query;
    let code = match (&e, e.kind()) {
        (Query::NotReadOnly(_), _) => sqlstate::READ_ONLY,
        (Query::Timeout { .. }, _) => {
            let message = format!("canceling statement due to statement timeout: {message}");
            return user_error(sqlstate::QUERY_CANCELED, message);
        }
        (Query::Cancelled(_), _) => {
            return user_error(sqlstate::QUERY_CANCELED, format!("canceling statement due to user request: {message}"));
        }
        (Query::MemoryLimit { .. }, _) => sqlstate::OUT_OF_MEMORY,
        (Query::QuerierBusy, _) => sqlstate::INSUFFICIENT_RESOURCES,
        (Query::TooManyQueries(_), _) => sqlstate::TOO_MANY_CONNECTIONS,
        (_, ErrorKind::PermissionDenied) => sqlstate::INSUFFICIENT_PRIVILEGE,
        (_, ErrorKind::PayloadTooLarge) => sqlstate::PROGRAM_LIMIT_EXCEEDED,
        (_, ErrorKind::QueryTimeout | ErrorKind::Cancelled) => sqlstate::QUERY_CANCELED,
        (_, ErrorKind::LimitExceeded) => sqlstate::PROGRAM_LIMIT_EXCEEDED,
        (_, ErrorKind::ResourceExhausted) => sqlstate::OUT_OF_MEMORY,
        (_, ErrorKind::Unavailable) => sqlstate::UNAVAILABLE,
        (Query::DataFusion(df), ErrorKind::InvalidArgument) => datafusion_code(df),
        (_, ErrorKind::InvalidArgument) => sqlstate::DATA_EXCEPTION,
        (_, ErrorKind::NotFound) => sqlstate::UNDEFINED_TABLE,
        (_, ErrorKind::Unauthenticated) => sqlstate::INVALID_AUTHORIZATION,
        (_, ErrorKind::Conflict) => sqlstate::DATA_EXCEPTION,
        (_, ErrorKind::Internal) => {
            tracing::warn!(error = %message, "postgres wire query failed");
            return user_error(sqlstate::INTERNAL, "internal error; the server log has the details");
        }
    };
    user_error(code, message)
}

/// Whether `e` is a planning failure (as opposed to a failure while running).
pub(crate) fn is_planning_error(e: &hourglass_query::Error) -> bool {
    match e {
        hourglass_query::Error::DataFusion(df) => matches!(
            df.find_root(),
            DataFusionError::Plan(_) | DataFusionError::SchemaError(..) | DataFusionError::NotImplemented(_)
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: PgWireError) -> String {
        match e {
            PgWireError::UserError(info) => info.code,
            other => panic!("not a user error: {other}"),
        }
    }

    #[test]
    fn each_failure_has_its_own_sqlstate() {
        let plan = |m: &str| hourglass_query::Error::DataFusion(DataFusionError::Plan(m.into()));
        assert_eq!(code(query_error(plan("table 'datafusion.public.nope' not found"))), "42P01");
        assert_eq!(code(query_error(plan("Invalid function 'nope'"))), "42883");
        assert_eq!(code(query_error(hourglass_query::Error::NotReadOnly("DDL".into()))), "25006");
        assert_eq!(code(query_error(hourglass_query::Error::Timeout { seconds: 1 })), "57014");
        assert_eq!(code(query_error(hourglass_query::Error::ResultTooLarge { limit: 1 })), "54000");
        assert_eq!(
            code(query_error(hourglass_query::Error::DataFusion(DataFusionError::ResourcesExhausted("x".into())))),
            "53200"
        );
        assert_eq!(code(query_error(hourglass_query::Error::MemoryLimit { limit: 1 })), "53200");
        assert_eq!(code(query_error(hourglass_query::Error::QuerierBusy)), "53000");
        assert_eq!(code(query_error(hourglass_query::Error::TooManyQueries("busy".into()))), "53300");
        assert_eq!(code(query_error(hourglass_query::Error::TooManyRows { limit: 1 })), "54000");
        assert_eq!(code(query_error(hourglass_query::Error::Cancelled("by the admin"))), "57014");
    }
}
