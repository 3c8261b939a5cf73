//! Select: a query's WHERE, its projection and its table functions (EXPLODE,
//! CUBE_EXPLODE), row by row.

use super::{Change, Cx, Operator};
use crate::{EngineError, Result};
use sluice_common::{SourceKind, Value};
use sluice_plan::{Operator as OperatorPlan, QueryPlan, TableFunction};
use std::sync::Arc;

pub(crate) struct Select {
    plan: Arc<QueryPlan>,
}

impl Select {
    pub(crate) fn new(plan: Arc<QueryPlan>) -> Select {
        Select { plan }
    }
}

impl Operator for Select {
    fn on_change(
        &self,
        _cx: &mut Cx<'_, '_>,
        src: Change,
        out_changes: &mut Vec<Change>,
    ) -> Result<()> {
        let plan = &*self.plan;
        let OperatorPlan::Select {
            filter,
            projection,
            table_functions,
        } = &plan.op
        else {
            return Ok(());
        };
        let rowtime = src.rowtime;

        let is_table = plan.source.kind == SourceKind::Table;
        let passes = !src.tombstone && filter.as_ref().is_none_or(|f| f.test(&src.row));
        if !passes {
            // A table row leaving the filter is a delete downstream; a stream
            // record without a value passes through as one (ksqlDB keeps them
            // unless a WHERE clause drops them).
            if is_table || (src.tombstone && filter.is_none()) {
                let mut out: Vec<Value> = projection.iter().map(|e| e.eval(&src.row)).collect();
                if src.tombstone && !is_table {
                    // A stream record without a value has only its key: a new key
                    // expression (PARTITION BY) that reads a value column or
                    // ROWTIME is NULL for it, one over key columns and literals is
                    // computed, as in ksqlDB (which fails reading the null row).
                    let source_keys = plan.source.schema.key_count();
                    for (i, e) in projection
                        .iter()
                        .enumerate()
                        .take(plan.sink.schema.key_count())
                    {
                        if !e.reads_only(&|c| c < source_keys) {
                            out[i] = Value::Null;
                        }
                    }
                }
                out_changes.push(Change::output(out, rowtime, true));
            }
            return Ok(());
        }
        let out: Vec<Value> = projection.iter().map(|e| e.eval(&src.row)).collect();
        if table_functions.is_empty() {
            out_changes.push(Change::output(out, rowtime, false));
            return Ok(());
        }
        for row in expand(out, table_functions)? {
            out_changes.push(Change::output(row, rowtime, false));
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "Select"
    }
}

/// Applies table functions: each listed column holds an array; output row i takes the
/// i-th value of each (NULL past the end of shorter ones).
fn expand(row: Vec<Value>, functions: &[(usize, TableFunction)]) -> Result<Vec<Vec<Value>>> {
    let mut columns: Vec<(usize, Vec<Value>)> = Vec::with_capacity(functions.len());
    for (i, f) in functions {
        let values = match row.get(*i) {
            Some(Value::Array(items)) => match f {
                TableFunction::Explode => items.clone(),
                TableFunction::CubeExplode => cube(items)?,
            },
            _ => Vec::new(),
        };
        columns.push((*i, values));
    }
    let n = columns.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    Ok((0..n)
        .map(|k| {
            let mut r = row.clone();
            for (i, values) in &columns {
                r[*i] = values.get(k).cloned().unwrap_or(Value::Null);
            }
            r
        })
        .collect())
}

/// Most elements CUBE_EXPLODE takes, as in ksqlDB: the output has 2^N rows, so 20 already
/// make about a million.
pub const CUBE_MAX_COLUMNS: usize = 20;

/// Every combination of keeping or nulling each element, in ksqlDB's order (the last
/// element varies fastest). A NULL element has one possibility, not two, so combinations
/// that would keep a NULL are skipped rather than searched for as duplicates.
fn cube(items: &[Value]) -> Result<Vec<Value>> {
    let n = items.len();
    if n > CUBE_MAX_COLUMNS {
        return Err(EngineError::Invalid(format!(
            "CUBE_EXPLODE input size ({n}) exceeds the maximum of {CUBE_MAX_COLUMNS} columns. The output cardinality is 2^N rows and would exhaust server memory."
        )));
    }
    let bit = |i: usize| 1usize << (n - 1 - i);
    let present: usize = (0..n)
        .filter(|&i| !items[i].is_null())
        .map(bit)
        .fold(0, |m, b| m | b);
    let mut out: Vec<Value> = Vec::with_capacity(1 << present.count_ones());
    for mask in 0..(1usize << n) {
        if mask & present != mask {
            continue;
        }
        out.push(Value::Array(
            (0..n)
                .map(|i| {
                    if mask & bit(i) != 0 {
                        items[i].clone()
                    } else {
                        Value::Null
                    }
                })
                .collect(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cube_skips_null_duplicates_and_refuses_more_than_twenty_elements() {
        let v = |i: i32| Value::Int(i);
        let got = cube(&[v(1), Value::Null]).unwrap();
        assert_eq!(
            got,
            vec![
                Value::Array(vec![Value::Null, Value::Null]),
                Value::Array(vec![v(1), Value::Null]),
            ]
        );
        let got = cube(&[v(1), v(2)]).unwrap();
        assert_eq!(
            got,
            vec![
                Value::Array(vec![Value::Null, Value::Null]),
                Value::Array(vec![Value::Null, v(2)]),
                Value::Array(vec![v(1), Value::Null]),
                Value::Array(vec![v(1), v(2)]),
            ]
        );
        assert_eq!(cube(&vec![Value::Null; 20]).unwrap().len(), 1);
        let err = cube(&vec![v(1); 21]).unwrap_err().to_string();
        assert!(err.contains("exceeds the maximum of 20"), "{err}");
    }
}
