//! The PostgreSQL dialect that clients send on connect and for schema browsing, rewritten into
//! SQL that DataFusion plans over the emulated `pg_catalog` ([`crate::pg_catalog`]).
//!
//! `psql`'s `\d`, psycopg, JDBC and Grafana write `pg_catalog.`-qualified function names,
//! `::regclass` casts, `OPERATOR(pg_catalog.~)` and `COLLATE pg_catalog.default`; none of those
//! change what a catalog query means here, so they are dropped or mapped to their plain forms.
//! Scalar subqueries over catalog relations that are always empty here (column defaults,
//! collations, policies...) are answered as `NULL` up front, because they are correlated in ways
//! DataFusion cannot plan and their answer is known.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, DataType as SqlType, ExactNumberInfo, Expr, Ident, ObjectName, ObjectNamePart, Query, SelectItem,
    SetExpr, Statement, Value, visit_expressions_mut, visit_relations, visit_relations_mut,
};

use crate::pg_catalog::{EMPTY_TABLES, INFORMATION_SCHEMA, TABLES, information_schema_table};

/// A statement ready for DataFusion, and what answering it needs.
#[derive(Debug, Clone)]
pub(crate) struct Rewritten {
    /// The statement in a form DataFusion plans.
    pub sql: String,
    /// It reads `pg_catalog` relations: its session needs the emulated catalog.
    pub reads_catalog: bool,
    /// It reads catalog relations Hourglass does not emulate: if it cannot be planned, the
    /// answer is an empty result (there is nothing of that kind here).
    pub reads_unknown: bool,
    /// Its result columns' names, for that empty answer.
    pub columns: Vec<String>,
}

fn part_name(part: &ObjectNamePart) -> String {
    match part {
        ObjectNamePart::Identifier(ident) => ident.value.to_ascii_lowercase(),
        ObjectNamePart::Function(f) => f.name.value.to_ascii_lowercase(),
    }
}

/// What a relation name refers to among the catalog relations.
enum Relation {
    /// A table of the session (events, raw_events, system.*, information_schema.*).
    User,
    /// An emulated `pg_catalog` table; `true` when it is always empty.
    Emulated(bool),
    /// A `pg_catalog` relation Hourglass does not have.
    Unknown,
    /// An `information_schema` view answered with PostgreSQL's type names (DataFusion's own
    /// speaks Arrow's), from the emulated catalog.
    InformationSchema,
}

fn classify(name: &ObjectName) -> Relation {
    let parts: Vec<String> = name.0.iter().map(part_name).collect();
    if let [schema, view] = parts.as_slice()
        && schema == "information_schema"
        && INFORMATION_SCHEMA.contains(&view.as_str())
    {
        return Relation::InformationSchema;
    }
    let table = match parts.as_slice() {
        [schema, table] if schema == "pg_catalog" => table.as_str(),
        [table] if table.starts_with("pg_") => table.as_str(),
        _ => return Relation::User,
    };
    if EMPTY_TABLES.contains(&table) {
        Relation::Emulated(true)
    } else if TABLES.contains(&table) {
        Relation::Emulated(false)
    } else {
        Relation::Unknown
    }
}

/// Whether `query` reads a catalog relation that has no rows here.
fn reads_nothing(query: &Query) -> bool {
    visit_relations(query, |name| match classify(name) {
        Relation::Emulated(true) | Relation::Unknown => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

fn custom_type_name(data_type: &SqlType) -> Option<String> {
    match data_type {
        SqlType::Regclass => Some("regclass".into()),
        SqlType::Custom(name, _) => name.0.last().map(part_name),
        _ => None,
    }
}

/// The plain type a PostgreSQL-only cast target stands for; `None` for the `reg*` casts that
/// only change how an oid prints, which are dropped.
fn plain_type(name: &str) -> Option<Option<SqlType>> {
    Some(match name {
        "regclass" | "regtype" | "regproc" | "regprocedure" | "regnamespace" | "regrole" | "regoper"
        | "regoperator" | "regconfig" => None,
        "oid" | "xid" | "cid" | "int8" => Some(SqlType::BigInt(None)),
        "name" | "text" | "bpchar" | "char" | "varchar" => Some(SqlType::Text),
        "int2" => Some(SqlType::SmallInt(None)),
        "int4" => Some(SqlType::Int(None)),
        "float4" => Some(SqlType::Real),
        "float8" => Some(SqlType::Double(ExactNumberInfo::None)),
        "bool" => Some(SqlType::Boolean),
        _ => return None,
    })
}

fn plain_operator(op: &str) -> Option<BinaryOperator> {
    Some(match op {
        "~" => BinaryOperator::PGRegexMatch,
        "~*" => BinaryOperator::PGRegexIMatch,
        "!~" => BinaryOperator::PGRegexNotMatch,
        "!~*" => BinaryOperator::PGRegexNotIMatch,
        "~~" => BinaryOperator::PGLikeMatch,
        "~~*" => BinaryOperator::PGILikeMatch,
        "!~~" => BinaryOperator::PGNotLikeMatch,
        "!~~*" => BinaryOperator::PGNotILikeMatch,
        "=" => BinaryOperator::Eq,
        "<>" | "!=" => BinaryOperator::NotEq,
        "<" => BinaryOperator::Lt,
        "<=" => BinaryOperator::LtEq,
        ">" => BinaryOperator::Gt,
        ">=" => BinaryOperator::GtEq,
        "||" => BinaryOperator::StringConcat,
        _ => return None,
    })
}

fn rewrite_expr(expr: &mut Expr) {
    match expr {
        Expr::Function(function) if function.name.0.len() == 2 && part_name(&function.name.0[0]) == "pg_catalog" => {
            function.name.0.remove(0);
        }
        Expr::Cast { expr: inner, data_type, .. } => {
            if let Some(plain) = custom_type_name(data_type).and_then(|name| plain_type(&name)) {
                match plain {
                    Some(plain) => *data_type = plain,
                    None => {
                        let inner = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
                        *expr = inner;
                    }
                }
            }
        }
        Expr::BinaryOp { op: BinaryOperator::PGCustomBinaryOperator(parts), .. } => {
            if let Some(plain) = parts.last().and_then(|op| plain_operator(op))
                && let Expr::BinaryOp { op, .. } = expr
            {
                *op = plain;
            }
        }
        Expr::Collate { expr: inner, .. } => {
            let inner = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
            *expr = inner;
        }
        Expr::Subquery(query) if reads_nothing(query) => *expr = Expr::value(Value::Null),
        Expr::Exists { subquery, negated } if reads_nothing(subquery) => {
            *expr = Expr::value(Value::Boolean(*negated));
        }
        Expr::InSubquery { subquery, negated, .. } if reads_nothing(subquery) => {
            *expr = Expr::value(Value::Boolean(*negated));
        }
        _ => {}
    }
}

/// The name PostgreSQL gives a result column.
fn column_name(item: &SelectItem) -> String {
    match item {
        SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
        SelectItem::UnnamedExpr(expr) => match expr {
            Expr::Identifier(ident) => ident.value.clone(),
            Expr::CompoundIdentifier(parts) => parts.last().map(|p| p.value.clone()).unwrap_or_default(),
            Expr::Function(f) => f.name.0.last().map(part_name).unwrap_or_default(),
            Expr::Cast { expr, .. } => column_name(&SelectItem::UnnamedExpr((**expr).clone())),
            _ => "?column?".to_string(),
        },
        _ => "?column?".to_string(),
    }
}

fn result_columns(body: &SetExpr) -> Vec<String> {
    match body {
        SetExpr::Select(select) => select.projection.iter().map(column_name).collect(),
        SetExpr::SetOperation { left, .. } => result_columns(left),
        SetExpr::Query(query) => result_columns(&query.body),
        _ => Vec::new(),
    }
}

/// Rewrites one parsed statement; see the module documentation.
pub(crate) fn rewrite(mut statement: Statement) -> Rewritten {
    let mut reads_catalog = false;
    let mut reads_unknown = false;
    let _ = visit_relations_mut(&mut statement, |name| {
        match classify(name) {
            Relation::User => {}
            Relation::Emulated(_) => {
                reads_catalog = true;
                if name.0.len() == 1 {
                    name.0.insert(0, ObjectNamePart::Identifier(Ident::new("pg_catalog")));
                }
            }
            Relation::Unknown => reads_unknown = true,
            Relation::InformationSchema => {
                reads_catalog = true;
                let view = name.0.last().map(part_name).unwrap_or_default();
                *name = ObjectName::from(vec![Ident::new("pg_catalog"), Ident::new(information_schema_table(&view))]);
            }
        }
        ControlFlow::<()>::Continue(())
    });
    let _ = visit_expressions_mut(&mut statement, |expr| {
        rewrite_expr(expr);
        ControlFlow::<()>::Continue(())
    });
    let columns = match &statement {
        Statement::Query(query) => result_columns(&query.body),
        _ => Vec::new(),
    };
    Rewritten { sql: statement.to_string(), reads_catalog, reads_unknown, columns }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn one(sql: &str) -> Rewritten {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses");
        rewrite(statements.remove(0))
    }

    #[test]
    fn psql_describe_lookup_becomes_plain_sql() {
        let r = one("SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c \
             LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname OPERATOR(pg_catalog.~) '^(events)$' COLLATE pg_catalog.default \
             AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 2, 3");
        assert!(r.reads_catalog);
        assert!(!r.reads_unknown);
        assert!(r.sql.contains("c.relname ~ '^(events)$'"), "{}", r.sql);
        assert!(r.sql.contains(" pg_table_is_visible(c.oid)"), "{}", r.sql);
        assert!(!r.sql.contains("COLLATE"), "{}", r.sql);
    }

    #[test]
    fn subqueries_over_empty_relations_are_null_and_reg_casts_are_dropped() {
        let r = one("SELECT a.attname, (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true) \
             FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid) AS def, \
             c.oid::pg_catalog.regclass, c.reloftype::pg_catalog.regtype::pg_catalog.text \
             FROM pg_attribute a, pg_class c");
        assert!(r.sql.contains("NULL AS def"), "{}", r.sql);
        assert!(!r.sql.contains("regclass") && !r.sql.contains("regtype"), "{}", r.sql);
        assert!(r.sql.contains("pg_catalog.pg_attribute a"), "{}", r.sql);
        assert_eq!(r.columns, vec!["attname", "def", "oid", "reloftype"]);
    }

    #[test]
    fn unknown_catalog_relations_are_flagged_and_user_tables_left_alone() {
        assert!(one("SELECT polname FROM pg_catalog.pg_policy").reads_unknown);
        let r = one("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'events'");
        assert!(r.reads_catalog);
        assert!(r.sql.contains("FROM pg_catalog.information_schema_columns"), "{}", r.sql);
        let r = one("SELECT count(*) FROM events WHERE name = 'x'");
        assert!(!r.reads_catalog && !r.reads_unknown);
        assert_eq!(r.sql, "SELECT count(*) FROM events WHERE name = 'x'");
    }
}
