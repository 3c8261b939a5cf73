//! Aggregating push queries: `SELECT k, COUNT(*) FROM s GROUP BY k EMIT CHANGES`, or
//! aggregates over the whole source (`SELECT COUNT(*) FROM s EMIT CHANGES`, one group), as
//! ksqlDB runs them: a transient aggregation whose rows are sent as every group changes.
//! Unlike CREATE TABLE AS SELECT, the result needs no key or value column: the grouping
//! expressions may be left out of the projection, and a projection of keys alone is fine.

use crate::bind::{AggMode, Binder, Scope, err_at, find_aggregate, ksql_text};
use crate::query::{
    Namer, OutputColumn, bind_predicate, concrete, has_structured_state, same_column_or_text,
};
use crate::{PlanError, Result};
use sluice_common::{ColumnRole, DataType, FormatKind, SourceDef, SourceKind};
use sluice_expr::Expr;
use sluice_plan::AggregatePushPlan;
use sluice_sql::{Expr as SqlExpr, Select, SelectItem};

/// Plans an aggregating push query over `source` (for a join, the joined row, which
/// `scope` resolves names in, and `join` the planned join in front).
pub(crate) fn plan_push_aggregate(
    select: &Select,
    source: SourceDef,
    scope: Scope,
    join: Option<Box<sluice_plan::JoinPlan>>,
) -> Result<(AggregatePushPlan, Vec<OutputColumn>)> {
    let at = &select.from;
    let window = crate::query::window_plan(select, &source)?;
    crate::query::no_window_bounds_in_where(select, window.is_some())?;
    let filter = select
        .selection
        .as_ref()
        .map(|w| bind_predicate(&scope, w))
        .transpose()?;
    if source.value_format.kind == FormatKind::Kafka && !select.group_by.is_empty() {
        return Err(PlanError::at_name(
            format!(
                "Source(s) {} are using the 'KAFKA' value format. This format does not yet support GROUP BY.",
                source.name
            ),
            at,
        ));
    }
    let mut group_by = Vec::with_capacity(select.group_by.len());
    let mut group_types = Vec::with_capacity(select.group_by.len());
    for (i, g) in select.group_by.iter().enumerate() {
        if let Some(f) = find_aggregate(g) {
            return err_at(
                g,
                format!(
                    "GROUP BY does not support aggregate functions: {} is an aggregate function.",
                    f.name.to_string().to_ascii_uppercase()
                ),
            );
        }
        if select.group_by[..i]
            .iter()
            .any(|p| same_column_or_text(p, g, &scope.qualifiers))
        {
            return err_at(
                g,
                format!("Duplicate GROUP BY expression: {}", ksql_text(g)),
            );
        }
        let b = Binder::plain(&scope).in_clause("GROUP BY").bind(g)?;
        group_types.push(concrete(Some(g), &g.to_string(), b.ty)?);
        group_by.push(b.expr);
    }
    // `*` stands for every source column, each then a grouping key or an error.
    let mut items: Vec<(SqlExpr, Option<sluice_sql::Name>)> = Vec::new();
    for item in &select.items {
        match item {
            SelectItem::Wildcard | SelectItem::QualifiedWildcard(_) => {
                items.extend(source.schema.columns.iter().map(|c| {
                    (
                        SqlExpr::Identifier(sqlparser::ast::Ident::with_quote('`', &c.name)),
                        None,
                    )
                }))
            }
            SelectItem::Expr { expr, alias } => items.push((expr.clone(), alias.clone())),
            SelectItem::StructAll { .. } => {
                return Err(PlanError::at_name(
                    "Only columns and expressions may be selected in an aggregating push query",
                    at,
                ));
            }
        }
    }
    let mut aggregates = Vec::new();
    let mut namer = if join.is_some() {
        Namer::for_scope(&source, &scope)
    } else {
        Namer::for_source(&source)
    };
    let mut columns = Vec::with_capacity(items.len());
    let mut projection = Vec::with_capacity(items.len());
    let mut not_grouped: Vec<String> = Vec::new();
    for (expr, alias) in &items {
        let name = namer.name(expr, alias.as_ref());
        let text = ksql_text(expr);
        if let Some(g) = select.group_by.iter().position(|g| ksql_text(g) == text) {
            columns.push(OutputColumn {
                name,
                data_type: group_types[g].clone(),
                role: ColumnRole::PrimaryKey,
                header: None,
            });
            projection.push(Expr::Column(g));
            continue;
        }
        let mut binder = Binder::new(
            &scope,
            AggMode::Collect {
                group_by: &select.group_by,
                source: &scope,
                aggs: &mut aggregates,
                window: window.is_some(),
            },
        )
        .in_clause("SELECT");
        match binder.bind(expr) {
            Ok(b) => {
                columns.push(OutputColumn {
                    data_type: concrete(Some(expr), &name, b.ty)?,
                    name,
                    role: ColumnRole::Value,
                    header: None,
                });
                projection.push(b.expr);
            }
            // Collected, so the error lists every offending expression as ksqlDB does.
            Err(e) if e.message.starts_with("Non-aggregate") => not_grouped.push(text),
            Err(e) => return Err(e),
        }
    }
    for (i, c) in columns.iter().enumerate() {
        if columns[..i].iter().any(|p| p.name == c.name) {
            return Err(PlanError::at_name(
                format!(
                    "Duplicate value columns found in schema: `{}` {}",
                    c.name, c.data_type
                ),
                at,
            ));
        }
    }
    let having = match &select.having {
        Some(h) => {
            let mut binder = Binder::new(
                &scope,
                AggMode::Collect {
                    group_by: &select.group_by,
                    source: &scope,
                    aggs: &mut aggregates,
                    window: window.is_some(),
                },
            )
            .in_clause("HAVING");
            let b = binder.bind(h).map_err(crate::query::having_error)?;
            if !b.ty.as_ref().is_none_or(|t| *t == DataType::Boolean) {
                return err_at(h, format!("HAVING expression {h} must be BOOLEAN"));
            }
            Some(b.expr)
        }
        None => None,
    };
    if aggregates.is_empty() {
        return Err(PlanError::at_name(
            "GROUP BY requires aggregate functions in either the SELECT or HAVING clause.",
            at,
        ));
    }
    if !not_grouped.is_empty() {
        return Err(PlanError::at_name(
            format!(
                "Non-aggregate SELECT expression(s) not part of GROUP BY: {}\nEither add the column(s) to the GROUP BY or remove them from the SELECT.",
                not_grouped.join(", ")
            ),
            at,
        ));
    }
    if source.value_format.kind == FormatKind::Delimited
        && aggregates.iter().any(|a| has_structured_state(a.kind))
    {
        return Err(PlanError::at_name(
            "One of the functions used in the statement has an intermediate type that the value format can not handle. Please remove the function or change the format.",
            at,
        ));
    }
    if source.kind == SourceKind::Table {
        let mut stuck: Vec<&str> = Vec::new();
        for a in aggregates.iter().filter(|a| !a.supports_retract()) {
            if !stuck.contains(&a.kind.name()) {
                stuck.push(a.kind.name());
            }
        }
        if let [init @ .., last] = stuck.as_slice() {
            let (noun, list) = if init.is_empty() {
                ("function", last.to_string())
            } else {
                ("functions", format!("{} and {last}", init.join(", ")))
            };
            return Err(PlanError::at_name(
                format!(
                    "The aggregation {noun} {list} cannot be applied to a table source, only to a stream source."
                ),
                at,
            ));
        }
    }
    Ok((
        AggregatePushPlan {
            source,
            filter,
            group_by,
            aggregates,
            having,
            projection,
            limit: select.limit,
            window,
            join,
        },
        columns,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_common::{Column, FormatSpec, Schema};
    use sluice_sql::StatementKind;

    fn stream(kind: SourceKind) -> SourceDef {
        let col = |n: &str, t: DataType, role: ColumnRole| Column {
            name: n.into(),
            data_type: t,
            role,
        };
        SourceDef {
            id: 3,
            name: "S".into(),
            kind,
            schema: Schema::new(vec![
                col("K", DataType::Int, ColumnRole::Key),
                col("ID", DataType::Int, ColumnRole::Value),
            ]),
            topic: "s".into(),
            key_format: FormatSpec::new(FormatKind::Kafka),
            value_format: FormatSpec::new(FormatKind::Json),
            timestamp_column: None,
            timestamp_format: None,
            headers: Vec::new(),
            written_by: None,
            sql: String::new(),
            read_only: false,
            window: None,
        }
    }

    fn plan(sql: &str, kind: SourceKind) -> Result<(AggregatePushPlan, Vec<OutputColumn>)> {
        let mut stmts = sluice_sql::parse(sql).unwrap();
        let StatementKind::Select(select) = stmts.remove(0).kind else {
            panic!("not a select: {sql}");
        };
        let source = stream(kind);
        let scope = Scope::of_source(&source, None);
        plan_push_aggregate(&select, source, scope, None)
    }

    fn names(sql: &str) -> Vec<String> {
        plan(sql, SourceKind::Stream)
            .unwrap()
            .1
            .into_iter()
            .map(|c| format!("{} {}", c.name, c.data_type))
            .collect()
    }

    #[test]
    fn push_aggregations_need_no_key_or_value_column() {
        assert_eq!(
            names("SELECT COUNT(1) AS c FROM s GROUP BY id EMIT CHANGES;"),
            ["C BIGINT"]
        );
        assert_eq!(
            names("SELECT k FROM s GROUP BY k HAVING COUNT(k) > 1 EMIT CHANGES;"),
            ["K INTEGER"]
        );
        assert_eq!(
            names("SELECT SUM(id), COUNT(*) AS n FROM s EMIT CHANGES;"),
            ["KSQL_COL_0 INTEGER", "N BIGINT"]
        );
        let (p, _) = plan("SELECT COUNT(*) FROM s EMIT CHANGES;", SourceKind::Stream).unwrap();
        assert!(p.group_by.is_empty());
    }

    #[test]
    fn what_is_not_grouped_or_aggregated_is_refused() {
        let e = plan(
            "SELECT id, COUNT(*) FROM s EMIT CHANGES;",
            SourceKind::Stream,
        )
        .unwrap_err()
        .message;
        assert!(
            e.starts_with("Non-aggregate SELECT expression(s) not part of GROUP BY: ID"),
            "{e}"
        );
        let e = plan(
            "SELECT k FROM s GROUP BY k EMIT CHANGES;",
            SourceKind::Stream,
        )
        .unwrap_err()
        .message;
        assert!(
            e.starts_with("GROUP BY requires aggregate functions"),
            "{e}"
        );
        let e = plan(
            "SELECT k, MIN(id) FROM s GROUP BY k EMIT CHANGES;",
            SourceKind::Table,
        )
        .unwrap_err()
        .message;
        assert!(e.contains("cannot be applied to a table source"), "{e}");
    }
}
