//! What each statement a PostgreSQL client sends asks for: a query for DataFusion, or one of
//! the session statements drivers send on their own (`BEGIN`, `SET`, `SHOW`...), which are
//! answered here because Hourglass sessions are read-only and have no transactions to keep.

use datafusion::sql::sqlparser::ast::{Expr, Set, Statement, Value};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use pgwire::error::PgWireResult;

use crate::compat::{Rewritten, rewrite};
use crate::errors::{sqlstate, user_error};

/// One statement of a client's SQL.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    /// A query (or anything else) for the querier, which refuses what is not read-only.
    Query(Rewritten),
    /// `BEGIN` / `START TRANSACTION`: accepted; every statement reads a consistent snapshot
    /// of its own, and there is nothing to commit.
    Begin,
    /// `COMMIT` / `END`.
    Commit,
    /// `ROLLBACK` / `ABORT`.
    Rollback,
    /// `SET name = value`: remembered for `SHOW`, without effect on queries.
    Set {
        /// Setting name, lowercased.
        name: String,
        /// The value as written.
        value: String,
    },
    /// `SHOW name`.
    Show(String),
    /// A session statement acknowledged with its tag and nothing else (`DISCARD ALL`,
    /// `DEALLOCATE`, `SET ROLE`...).
    Acknowledge(&'static str),
}

fn value_text(expr: &Expr) -> String {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(ident) => ident.value.clone(),
        other => other.to_string(),
    }
}

fn command(statement: Statement) -> Command {
    match statement {
        Statement::StartTransaction { .. } => Command::Begin,
        Statement::Commit { .. } => Command::Commit,
        Statement::Rollback { .. } => Command::Rollback,
        Statement::Set(Set::SingleAssignment { variable, values, .. }) => Command::Set {
            name: variable.to_string().to_ascii_lowercase(),
            value: values.iter().map(value_text).collect::<Vec<_>>().join(", "),
        },
        Statement::Set(Set::SetTimeZone { value, .. }) => {
            Command::Set { name: "timezone".into(), value: value_text(&value) }
        }
        Statement::Set(_) => Command::Acknowledge("SET"),
        Statement::ShowVariable { variable } => {
            Command::Show(variable.iter().map(|ident| ident.value.to_ascii_lowercase()).collect::<Vec<_>>().join(" "))
        }
        Statement::Discard { .. } => Command::Acknowledge("DISCARD ALL"),
        Statement::Deallocate { .. } => Command::Acknowledge("DEALLOCATE"),
        other => Command::Query(rewrite(other)),
    }
}

/// The statements of `sql`, in order.
pub(crate) fn parse(sql: &str) -> PgWireResult<Vec<Command>> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .map_err(|e| user_error(sqlstate::SYNTAX_ERROR, format!("syntax error: {e}")))?;
    Ok(statements.into_iter().map(command).collect())
}

/// The one statement of a prepared statement.
pub(crate) fn parse_one(sql: &str) -> PgWireResult<Option<Command>> {
    let mut commands = parse(sql)?;
    match commands.len() {
        0 | 1 => Ok(commands.pop()),
        _ => Err(user_error(sqlstate::SYNTAX_ERROR, "cannot insert multiple commands into a prepared statement")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_session_statements_are_answered_here() {
        let commands = parse(
            "BEGIN; SET extra_float_digits = 3; SET TIME ZONE 'UTC'; SHOW TRANSACTION ISOLATION LEVEL; \
             SELECT 1; COMMIT; ROLLBACK",
        )
        .expect("parses");
        assert!(matches!(commands[0], Command::Begin));
        assert!(matches!(&commands[1], Command::Set { name, value } if name == "extra_float_digits" && value == "3"));
        assert!(matches!(&commands[2], Command::Set { name, value } if name == "timezone" && value == "UTC"));
        assert!(matches!(&commands[3], Command::Show(name) if name == "transaction isolation level"));
        assert!(matches!(&commands[4], Command::Query(q) if q.sql == "SELECT 1"));
        assert!(matches!(commands[5], Command::Commit));
        assert!(matches!(commands[6], Command::Rollback));
    }

    #[test]
    fn prepared_statements_hold_one_statement() {
        assert!(parse_one("SELECT 1; SELECT 2").is_err());
        assert!(parse_one("SELEC 1").is_err());
        assert!(matches!(parse_one("SELECT $1").expect("parses"), Some(Command::Query(_))));
    }
}
