//! INSERT INTO ... VALUES: one row, coerced to the target's column types.

use crate::bind::{Binder, Scope, err_at};
use crate::{PlanError, Result};
use sluice_common::{DataType, ROWOFFSET, ROWPARTITION, ROWTIME, SourceDef, Value};
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
        if matches!(name.value.as_str(), ROWPARTITION | ROWOFFSET) {
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
        // ksqlDB evaluates the expression, then coerces the value strictly (its
        // GenericExpressionResolver): numbers widen exactly, text becomes a temporal type
        // or bytes, structs are matched field by field; anything else is refused.
        let Some(coerced) = sluice_expr::coerce::coerce_value(&value, &col.data_type, false) else {
            let hint = match (&value, &col.data_type) {
                (Value::String(_), DataType::Timestamp) => {
                    ". Timestamp format must be yyyy-mm-ddThh:mm:ss[.S]"
                }
                (Value::String(_), DataType::Time) => ". Time format must be hh:mm:ss[.S]",
                (Value::String(_), DataType::Date) => ". Date format must be yyyy-mm-dd",
                _ => "",
            };
            let value_type = bound.ty.as_ref().map_or("NULL", DataType::base_name);
            return err_at(
                expr,
                format!(
                    "Expected type {} for field {} but got {value_type}({}){hint}",
                    col.data_type,
                    col.name,
                    java_text(&value)
                ),
            );
        };
        row[idx] = coerced;
    }
    Ok(InsertRow { row, rowtime })
}

/// A value as Java's `toString` prints it in ksqlDB's messages (a struct as Connect's
/// `Struct{A=1,B=x}`).
fn java_text(v: &Value) -> String {
    match v {
        Value::Struct(fields) => format!(
            "Struct{{{}}}",
            fields
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(n, v)| format!("{n}={}", java_text(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

/// Longest event id accepted, in bytes: ids are kept forever in the index.
pub const MAX_EVENT_ID_BYTES: usize = 256;

/// The event-store checks of `INSERT ... VALUES (...) WITH (...)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsertOptions {
    /// `EXPECTED_VERSION = n`: append only if the key holds exactly n events.
    pub expected_version: Option<u64>,
    /// `EVENT_ID = '...'`: append only if no event of the target has this id.
    pub event_id: Option<String>,
}

pub fn plan_insert_options(
    target: &SourceDef,
    at: &Name,
    properties: &sluice_sql::Properties,
) -> Result<InsertOptions> {
    use sluice_sql::PropValue;
    let mut options = InsertOptions::default();
    for (name, value) in &properties.values {
        match (name.as_str(), value) {
            ("EXPECTED_VERSION", PropValue::Num(n)) => match n.parse::<u64>() {
                Ok(v) => options.expected_version = Some(v),
                Err(_) => {
                    return Err(PlanError::at_name(
                        format!(
                            "EXPECTED_VERSION must be a whole number of events (0 or more), not {n}"
                        ),
                        at,
                    ));
                }
            },
            ("EXPECTED_VERSION", other) => {
                return Err(PlanError::at_name(
                    format!(
                        "EXPECTED_VERSION must be a whole number of events (0 or more), not {other}"
                    ),
                    at,
                ));
            }
            ("EVENT_ID", PropValue::Str(id)) => {
                if id.is_empty() || id.len() > MAX_EVENT_ID_BYTES {
                    return Err(PlanError::at_name(
                        format!(
                            "EVENT_ID must be 1 to {MAX_EVENT_ID_BYTES} bytes long; it is {}",
                            id.len()
                        ),
                        at,
                    ));
                }
                options.event_id = Some(id.clone());
            }
            ("EVENT_ID", other) => {
                return Err(PlanError::at_name(
                    format!("EVENT_ID must be a quoted string, not {other}"),
                    at,
                ));
            }
            (other, _) => {
                return Err(PlanError::at_name(
                    format!(
                        "Unknown INSERT property {other}: INSERT ... VALUES accepts EXPECTED_VERSION and EVENT_ID"
                    ),
                    at,
                ));
            }
        }
    }
    if options.expected_version.is_some() {
        if target.kind != sluice_common::SourceKind::Stream {
            return Err(PlanError::at_name(
                format!(
                    "EXPECTED_VERSION applies to streams: {} is a table, whose keys have a current row, not a version",
                    target.name
                ),
                at,
            ));
        }
        if target.schema.key_count() == 0 {
            return Err(PlanError::at_name(
                format!(
                    "EXPECTED_VERSION needs a key: {} has no KEY column, and versions are counted per key",
                    target.name
                ),
                at,
            ));
        }
    }
    Ok(options)
}
