//! What the planner hands the engine.

use sluice_common::{SourceDef, Value};
use sluice_expr::{AggCall, Expr};

/// A persistent query: reads `source` from its earliest offset, writes `sink`.
#[derive(Debug, Clone)]
pub struct QueryPlan {
    pub id: String,
    pub num: u64,
    pub source: SourceDef,
    pub sink: SourceDef,
    pub op: Operator,
}

#[derive(Debug, Clone)]
pub enum Operator {
    /// Filter, then compute the sink's columns (keys first) from the source row.
    Select {
        filter: Option<Expr>,
        projection: Vec<Expr>,
        /// Projection columns holding arrays that a table function turns into rows.
        table_functions: Vec<(usize, TableFunction)>,
    },
    /// Filter, group, aggregate. `projection` and `having` see the row
    /// `[group key values..., ROWTIME, aggregate results...]`.
    Aggregate {
        filter: Option<Expr>,
        group_by: Vec<Expr>,
        aggregates: Vec<AggCall>,
        having: Option<Expr>,
        projection: Vec<Expr>,
    },
}

/// Table functions: one input row becomes zero or more output rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFunction {
    /// One row per array element.
    Explode,
    /// One row per combination of the elements kept or replaced by NULL.
    CubeExplode,
}

/// A transient push query (`EMIT CHANGES`) over a stream's or table's topic.
#[derive(Debug, Clone)]
pub struct PushPlan {
    pub source: SourceDef,
    pub filter: Option<Expr>,
    pub projection: Vec<Expr>,
    pub limit: Option<u64>,
    /// Skip records without a key (scalable push queries do) when the source has key
    /// columns. Tables always skip them.
    pub skip_null_keys: bool,
}

/// An aggregating push query (`GROUP BY ... EMIT CHANGES`, or aggregates over the whole
/// source): a transient aggregation. `having` and `projection` see the row
/// `[group key values..., ROWTIME, aggregate results...]`, as in [`Operator::Aggregate`];
/// no GROUP BY is one group of no values.
#[derive(Debug, Clone)]
pub struct AggregatePushPlan {
    pub source: SourceDef,
    pub filter: Option<Expr>,
    pub group_by: Vec<Expr>,
    pub aggregates: Vec<AggCall>,
    pub having: Option<Expr>,
    pub projection: Vec<Expr>,
    pub limit: Option<u64>,
}

/// How a pull query reaches a table's rows.
#[derive(Debug, Clone, PartialEq)]
pub enum PullAccess {
    /// Exact key lookups, one per key tuple.
    Keys(Vec<Vec<Value>>),
    /// Keys within bounds on the (first) key column; `None` is unbounded.
    Range {
        lower: Option<(Value, bool)>,
        upper: Option<(Value, bool)>,
    },
    Scan,
}

#[derive(Debug, Clone)]
pub struct PullPlan {
    pub table: SourceDef,
    pub access: PullAccess,
    /// Applied to every row the access path yields (it may repeat the key condition).
    pub filter: Option<Expr>,
    pub projection: Vec<Expr>,
    pub limit: Option<u64>,
    /// Refuse to return more than this many rows (a guard against runaway scans).
    pub max_rows: u64,
}
