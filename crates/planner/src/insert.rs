//! INSERT INTO ... VALUES: one row, coerced to the target's column types.

use crate::bind::{Binder, Scope, err_at};
use crate::{PlanError, Result};
use sluice_common::{DataType, ROWTIME, SourceDef, Value};
use sluice_expr::eval::cast;
use sluice_sql::{Expr as SqlExpr, Name};

/// A row ready to encode: keys then values in schema order, and an explicit ROWTIME.
#[derive(Debug, Clone, PartialEq)]
pub struct InsertRow {
    pub row: Vec<Value>,
    pub rowtime: Option<i64>,
}

pub fn plan_insert_values(
    target: &SourceDef,
    at: &Name,
    columns: Option<&[Name]>,
    values: &[SqlExpr],
) -> Result<InsertRow> {
    let names: Vec<Name> = match columns {
        Some(c) => c.to_vec(),
        None => target
            .schema
            .columns
            .iter()
            .map(|c| Name {
                value: c.name.clone(),
                line: at.line,
                column: at.column,
            })
            .collect(),
    };
    let header_targets: Vec<&str> = names
        .iter()
        .filter(|n| target.headers.iter().any(|(h, _)| *h == n.value))
        .map(|n| n.value.as_str())
        .collect();
    if !header_targets.is_empty() {
        return Err(PlanError::at_name(
            format!(
                "Cannot insert into HEADER columns: {}",
                header_targets.join(", ")
            ),
            at,
        ));
    }
    if names.len() != values.len() {
        return Err(PlanError::at_name(
            format!(
                "Failed to prepare statement: Expected number columns and values to match: {}, {}",
                names.len(),
                values.len()
            ),
            at,
        ));
    }
    let mut row = vec![Value::Null; target.schema.len()];
    let mut rowtime = None;
    let scope = Scope::empty();
    for (name, expr) in names.iter().zip(values) {
        let bound = Binder::plain(&scope).bind(expr)?;
        let value = bound.expr.eval(&[]);
        if name.value == ROWTIME {
            rowtime = match cast(value, &DataType::BigInt) {
                Value::BigInt(t) => Some(t),
                _ => return err_at(expr, "ROWTIME must be a BIGINT"),
            };
            continue;
        }
        if name.value == sluice_common::ROWPARTITION || name.value == sluice_common::ROWOFFSET {
            return Err(PlanError::at_name(
                format!("Inserting into column `{}` is not allowed.", name.value),
                name,
            ));
        }
        let Some(idx) = target.schema.index_of(&name.value) else {
            return Err(PlanError::at_name(
                format!("Column name {} does not exist.", name.value),
                name,
            ));
        };
        let col = &target.schema.columns[idx];
        if let Some(t) = &bound.ty
            && !t.coerces_to(&col.data_type)
            && !(*t == DataType::String && col.data_type != DataType::String)
        {
            return err_at(
                expr,
                format!(
                    "Expected type {} for field {} but got {} ({t})",
                    col.data_type, col.name, expr
                ),
            );
        }
        let coerced = cast(value.clone(), &col.data_type);
        if coerced.is_null() && !value.is_null() {
            return err_at(
                expr,
                format!(
                    "Could not coerce value {expr} to {} for column {}",
                    col.data_type, col.name
                ),
            );
        }
        row[idx] = coerced;
    }
    Ok(InsertRow { row, rowtime })
}
