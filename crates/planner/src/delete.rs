//! DELETE FROM table WHERE ...: the keys whose rows to delete. A source table's rows are
//! its topic's latest record per key, so a delete is a tombstone per key; the WHERE
//! clause must therefore name whole keys: `key = value` for every key column (combined
//! with AND), several keys with OR or `key IN (...)`.

use crate::Result;
use crate::bind::{Binder, Scope, err_at};
use sluice_common::{SourceDef, Value};
use sluice_expr::eval::cast;
use sluice_sql::Expr as SqlExpr;
use sqlparser::ast::{BinaryOperator, InTarget};
use std::collections::BTreeMap;

/// Most keys one DELETE may name: each is a record written in one transaction.
pub const MAX_DELETE_KEYS: usize = 10_000;

/// A partial key: key column index → value.
type Assignment = BTreeMap<usize, Value>;

/// The keys `selection` names, each with a value for every key column of `table`, in the
/// order written (duplicates once).
pub fn plan_delete_keys(table: &SourceDef, selection: &SqlExpr) -> Result<Vec<Vec<Value>>> {
    let scope = Scope::of_source(table, None);
    let nkeys = table.schema.key_count();
    let assignments = keys_of(table, &scope, selection)?;
    let mut keys: Vec<Vec<Value>> = Vec::with_capacity(assignments.len());
    let mut seen = std::collections::HashSet::with_capacity(assignments.len());
    for a in assignments {
        if let Some(missing) = (0..nkeys).find(|i| !a.contains_key(i)) {
            return err_at(
                selection,
                format!(
                    "DELETE must name every key column of {}: {} is missing from a disjunct of the WHERE clause",
                    table.name, table.schema.columns[missing].name
                ),
            );
        }
        let key: Vec<Value> = a.into_values().collect();
        if seen.insert(sluice_common::keycodec::encode_key_vec(&key)) {
            keys.push(key);
        }
    }
    if keys.len() > MAX_DELETE_KEYS {
        return err_at(
            selection,
            format!(
                "DELETE names {} keys, more than the {MAX_DELETE_KEYS} one statement may delete",
                keys.len()
            ),
        );
    }
    Ok(keys)
}

fn not_a_key_condition<T>(e: &SqlExpr) -> Result<T> {
    err_at(
        e,
        format!(
            "DELETE's WHERE clause must name the keys to delete (key_column = value for every key column, combined with AND; several keys with OR or key_column IN (...)); found: {e}"
        ),
    )
}

/// The key assignments `e` stands for (a disjunction of conjunctions).
fn keys_of(table: &SourceDef, scope: &Scope, e: &SqlExpr) -> Result<Vec<Assignment>> {
    match e {
        SqlExpr::Nested(inner) => keys_of(table, scope, inner),
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::Or,
            right,
        } => {
            let mut all = keys_of(table, scope, left)?;
            all.extend(keys_of(table, scope, right)?);
            Ok(all)
        }
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let (l, r) = (keys_of(table, scope, left)?, keys_of(table, scope, right)?);
            let mut all = Vec::with_capacity(l.len() * r.len());
            for a in &l {
                for b in &r {
                    if a.iter().any(|(i, v)| b.get(i).is_some_and(|w| w != v)) {
                        // `k = 1 AND k = 2` names no key.
                        continue;
                    }
                    let mut merged = a.clone();
                    merged.extend(b.iter().map(|(i, v)| (*i, v.clone())));
                    all.push(merged);
                }
            }
            if all.len() > MAX_DELETE_KEYS {
                return err_at(e, format!("DELETE names more than {MAX_DELETE_KEYS} keys"));
            }
            Ok(all)
        }
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            let (column, other) = match key_column(table, scope, left) {
                Some(c) => (c, right),
                None => match key_column(table, scope, right) {
                    Some(c) => (c, left),
                    None => return not_a_key_condition(e),
                },
            };
            let value = constant(table, scope, column, other)?;
            Ok(vec![Assignment::from([(column, value)])])
        }
        SqlExpr::In {
            expr,
            target: InTarget::List(list),
            negated: false,
            ..
        } => {
            let Some(column) = key_column(table, scope, expr) else {
                return not_a_key_condition(e);
            };
            list.iter()
                .map(|v| {
                    Ok(Assignment::from([(
                        column,
                        constant(table, scope, column, v)?,
                    )]))
                })
                .collect()
        }
        _ => not_a_key_condition(e),
    }
}

/// The key column `e` names, if it is one.
fn key_column(table: &SourceDef, scope: &Scope, e: &SqlExpr) -> Option<usize> {
    if !matches!(e, SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_)) {
        return None;
    }
    match Binder::plain(scope).bind(e).ok()?.expr {
        sluice_expr::Expr::Column(i) if i < table.schema.key_count() => Some(i),
        _ => None,
    }
}

/// `e` as a value of key column `column`: a constant expression of a type that coerces to
/// the column's, not NULL (no key is NULL).
fn constant(table: &SourceDef, scope: &Scope, column: usize, e: &SqlExpr) -> Result<Value> {
    let key = &table.schema.columns[column];
    let empty = Scope {
        columns: Vec::new(),
        qualifiers: scope.qualifiers.clone(),
        joined: Vec::new(),
    };
    let bound = match Binder::plain(&empty).bind(e) {
        Ok(b) => b,
        Err(_) => {
            return err_at(
                e,
                format!(
                    "DELETE compares key {} with {e}, which is not a constant",
                    key.name
                ),
            );
        }
    };
    if !bound
        .ty
        .as_ref()
        .is_none_or(|t| t.coerces_to(&key.data_type))
    {
        return err_at(
            e,
            format!(
                "DELETE compares key {} of type {} with {e}, which is not of that type",
                key.name, key.data_type
            ),
        );
    }
    let v = cast(bound.expr.eval(&[]), &key.data_type);
    if v.is_null() {
        return err_at(
            e,
            format!("DELETE names a NULL {}: no row has a NULL key", key.name),
        );
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_common::{Column, ColumnRole, DataType, FormatKind, FormatSpec, Schema, SourceKind};

    fn table(keys: &[&str]) -> SourceDef {
        let mut columns: Vec<Column> = keys
            .iter()
            .map(|k| Column {
                name: k.to_string(),
                data_type: DataType::Int,
                role: ColumnRole::PrimaryKey,
            })
            .collect();
        columns.push(Column {
            name: "V".into(),
            data_type: DataType::String,
            role: ColumnRole::Value,
        });
        SourceDef {
            id: 1,
            name: "T".into(),
            kind: SourceKind::Table,
            schema: Schema::new(columns),
            topic: "t".into(),
            key_format: FormatSpec::new(FormatKind::Json),
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

    fn keys(t: &SourceDef, sql: &str) -> Result<Vec<Vec<Value>>> {
        let stmt = sluice_sql::parse(&format!("DELETE FROM t WHERE {sql};"))
            .unwrap()
            .remove(0);
        let sluice_sql::StatementKind::Delete { selection, .. } = stmt.kind else {
            panic!("not a DELETE");
        };
        plan_delete_keys(t, &selection)
    }

    #[test]
    fn whole_keys_are_named_by_equalities_or_and_in() {
        let one = table(&["K"]);
        let i = Value::Int;
        assert_eq!(keys(&one, "K = 1").unwrap(), [[i(1)]]);
        assert_eq!(
            keys(&one, "1 = K OR K = 2 OR K = 1").unwrap(),
            [[i(1)], [i(2)]]
        );
        assert_eq!(keys(&one, "K IN (3, 4)").unwrap(), [[i(3)], [i(4)]]);
        let two = table(&["A", "B"]);
        assert_eq!(
            keys(&two, "A = 1 AND B IN (2, 3)").unwrap(),
            [[i(1), i(2)], [i(1), i(3)]]
        );
        assert!(keys(&two, "A = 1 AND A = 2").unwrap().is_empty());
    }

    #[test]
    fn anything_but_whole_keys_is_refused_where_it_is() {
        let two = table(&["A", "B"]);
        let e = keys(&two, "A = 1").unwrap_err();
        assert!(e.message.contains("B is missing"), "{e}");
        let e = keys(&two, "A = 1 AND V = 'x'").unwrap_err();
        assert!(e.message.contains("must name the keys to delete"), "{e}");
        assert_eq!((e.line, e.column), (1, 31));
        let e = keys(&two, "A > 1 AND B = 2").unwrap_err();
        assert!(e.message.contains("found: A > 1"), "{e}");
        let e = keys(&table(&["K"]), "K = NULL").unwrap_err();
        assert!(e.message.contains("NULL"), "{e}");
        let e = keys(&table(&["K"]), "K = 'x'").unwrap_err();
        assert!(e.message.contains("not of that type"), "{e}");
    }
}
