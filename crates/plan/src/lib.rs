//! What the planner hands the engine.

use sluice_common::{SourceDef, Value, WindowKind};
use sluice_expr::{AggCall, Expr};

/// A persistent query: reads `source` from its earliest offset, writes `sink`.
///
/// A join query reads its [`JoinPlan`]'s inputs instead; `source` then describes the
/// joined row the operator sees (see [`JoinPlan`]), and has no topic of its own.
#[derive(Debug, Clone)]
pub struct QueryPlan {
    pub id: String,
    pub num: u64,
    pub source: SourceDef,
    pub sink: SourceDef,
    pub op: Operator,
    pub join: Option<JoinPlan>,
}

impl QueryPlan {
    /// The sources whose topics the query reads, a join's in the order written.
    pub fn inputs(&self) -> Vec<&SourceDef> {
        match &self.join {
            Some(j) => j.sources(),
            None => vec![&self.source],
        }
    }
}

/// Which rows of a join have a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinType {
    /// Rows that match on both sides.
    Inner,
    /// Every left row, with NULLs for a right side that does not match.
    Left,
    /// Every right row, with NULLs for a left side that does not match.
    Right,
    /// Every row of either side.
    Full,
}

/// A join feeding the query's operator: of two sources, or (n-way) of an inner join's
/// result and one more source.
///
/// The operator sees the joined row `[key..., rows..., ROWTIME, ROWPARTITION,
/// ROWOFFSET]`, where `rows` are the source rows of every joined source in the order
/// written, each laid out as a source row (declared columns, then its ROWTIME,
/// ROWPARTITION, ROWOFFSET) and all NULLs when that source has no match. The key is the
/// result's: the join key, or for a foreign-key join the left table's primary key
/// columns. An inner join's result row, seen by the join over it, is laid out alike.
#[derive(Debug, Clone)]
pub struct JoinPlan {
    pub kind: JoinType,
    pub left: JoinInput,
    pub right: SourceDef,
    /// The left side's join expression, over its rows (a source row, or an inner
    /// join's `rows`), and the right side's, over its source row.
    pub left_key: Expr,
    pub right_key: Expr,
    /// A stream-stream join's window (`WITHIN`); `None` for joins with a table.
    pub within: Option<JoinWindow>,
    /// A table-table join on a left expression that is not the left table's key: many
    /// left rows may join one right row, and the result is keyed by the left key.
    pub foreign_key: bool,
}

/// A stream-stream join's window, in milliseconds: a left record at `t` joins right
/// records of `[t - before, t + after]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindow {
    pub before_ms: i64,
    pub after_ms: i64,
    /// `GRACE PERIOD`: how late a record may arrive and still join. With one, outer
    /// joins emit a record's NULL-joined row once its window closes without a match;
    /// without one (ksqlDB's older semantics) at once when it arrives unmatched, with a
    /// default grace of [`DEFAULT_GRACE_MS`].
    pub grace_ms: Option<i64>,
}

/// The left side of a join.
#[derive(Debug, Clone)]
pub enum JoinInput {
    Source(Box<SourceDef>),
    /// The result of joining the sources before it (n-way joins).
    Join(Box<JoinPlan>),
}

impl JoinPlan {
    /// The sources it reads, in the order written.
    pub fn sources(&self) -> Vec<&SourceDef> {
        let mut out = match &self.left {
            JoinInput::Source(d) => vec![d.as_ref()],
            JoinInput::Join(j) => j.sources(),
        };
        out.push(&self.right);
        out
    }

    /// The left source, when the left side is one.
    pub fn left_source(&self) -> Option<&SourceDef> {
        match &self.left {
            JoinInput::Source(d) => Some(d.as_ref()),
            JoinInput::Join(_) => None,
        }
    }

    /// Whether the left side is a table (a join's result is one when all its sources are).
    pub fn left_is_table(&self) -> bool {
        match &self.left {
            JoinInput::Source(d) => d.kind == sluice_common::SourceKind::Table,
            JoinInput::Join(j) => j.is_table(),
        }
    }

    /// Whether the result is a table: a join of tables.
    pub fn is_table(&self) -> bool {
        self.left_is_table() && self.right.kind == sluice_common::SourceKind::Table
    }

    /// How many joins are nested on the left: 0 for a join of two sources.
    pub fn depth(&self) -> usize {
        match &self.left {
            JoinInput::Source(_) => 0,
            JoinInput::Join(j) => 1 + j.depth(),
        }
    }

    /// How many key columns the joined row starts with.
    pub fn key_len(&self) -> usize {
        match (&self.left, self.foreign_key) {
            (JoinInput::Source(d), true) => d.schema.key_count(),
            _ => 1,
        }
    }

    /// The length of the left side's rows.
    pub fn left_len(&self) -> usize {
        match &self.left {
            JoinInput::Source(d) => source_row_len(d),
            JoinInput::Join(j) => j.rows_len(),
        }
    }

    /// The length of `rows` in the joined row.
    pub fn rows_len(&self) -> usize {
        self.left_len() + source_row_len(&self.right)
    }

    /// Where the right row starts in the joined row.
    pub fn right_at(&self) -> usize {
        self.key_len() + self.left_len()
    }

    /// Whether it joins windowed sources: rows match on key and window, and the joined
    /// row ends with the window's bounds (WINDOWSTART, WINDOWEND).
    pub fn windowed(&self) -> bool {
        self.right.window.is_some()
    }

    /// The joined row's length.
    pub fn row_len(&self) -> usize {
        self.key_len() + self.rows_len() + 3 + if self.windowed() { 2 } else { 0 }
    }
}

/// A source row's length: declared columns, ROWTIME, ROWPARTITION, ROWOFFSET, and a
/// windowed source's window bounds.
pub fn source_row_len(def: &SourceDef) -> usize {
    def.schema.len() + 3 + if def.window.is_some() { 2 } else { 0 }
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
    /// `[group key values..., ROWTIME, aggregate results...]`; a windowed aggregation's
    /// row has the window's start and end after ROWTIME.
    Aggregate {
        filter: Option<Expr>,
        group_by: Vec<Expr>,
        aggregates: Vec<AggCall>,
        having: Option<Expr>,
        projection: Vec<Expr>,
        /// `WINDOW ...`: each group is aggregated per window of event time.
        window: Option<WindowPlan>,
    },
}

/// A windowed aggregation's windows, as Kafka Streams defines them; times in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPlan {
    pub kind: WindowKind,
    /// The window's size (time windows) or the inactivity gap (session windows).
    pub size_ms: i64,
    /// The distance between window starts: the size for tumbling windows.
    pub advance_ms: i64,
    /// How long after a window's end a record may still join it; later ones are dropped.
    pub grace_ms: i64,
    /// How long after its start a window is kept (for pull queries) before it is deleted.
    pub retention_ms: i64,
    /// EMIT FINAL: one row per window, when it closes, instead of every update.
    pub emit_final: bool,
}

/// ksqlDB's grace period when a window names none (Kafka Streams' old default).
pub const DEFAULT_GRACE_MS: i64 = 24 * 3_600_000;

impl WindowPlan {
    /// The time windows `[start, end)` holding `ts`, oldest first: windows start at
    /// multiples of the advance (aligned to the epoch), and none starts before 0.
    pub fn windows_for(&self, ts: i64) -> impl Iterator<Item = (i64, i64)> + use<> {
        let (size, advance) = (self.size_ms.max(1), self.advance_ms.max(1));
        let first = (ts.saturating_sub(size).saturating_add(advance)).max(0) / advance * advance;
        let count = if ts < first {
            0
        } else {
            (ts - first) / advance + 1
        };
        (0..count).map(move |i| {
            let start = first + i * advance;
            (start, start.saturating_add(size))
        })
    }
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
    /// A push query over a join: `source` is then the joined row (as for a persistent
    /// query's [`QueryPlan::join`]), and the join's sources are what is read.
    pub join: Option<Box<JoinPlan>>,
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
    /// `WINDOW TUMBLING/HOPPING/SESSION (...)`: groups are aggregated per window; the row
    /// has the window's start and end after ROWTIME, as in [`Operator::Aggregate`].
    pub window: Option<WindowPlan>,
    /// An aggregation over a join: `source` is then the joined row, as in [`PushPlan`].
    pub join: Option<Box<JoinPlan>>,
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
    /// What the query may take: past any of these it fails naming the limit.
    pub limits: PullLimits,
}

/// What one pull query may take (`sluice server --pull-max-rows`, `--pull-max-bytes`,
/// `--pull-timeout-ms`). A scan stops reading once one is passed, so a runaway query
/// costs at most the limit, not the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullLimits {
    /// Most rows a result may have.
    pub max_rows: u64,
    /// Most bytes a result may hold (strings and bytes at their length, other values at
    /// 16 bytes each, as `Value::size_within` counts).
    pub max_bytes: u64,
    /// Longest a query may read for.
    pub timeout: std::time::Duration,
}

impl Default for PullLimits {
    fn default() -> PullLimits {
        PullLimits {
            max_rows: 100_000,
            max_bytes: 64 << 20,
            timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// A pull query on a stream: the records its topic holds when the query starts, through
/// `scan`'s filter, projection and LIMIT.
#[derive(Debug, Clone)]
pub struct StreamPullPlan {
    pub scan: PushPlan,
    /// The key tuples the WHERE clause pins the stream's key to (every disjunct an equality
    /// on the whole key). Where the stream's events are indexed by key, only these keys'
    /// events are read, from the index, in log order; otherwise the topic is scanned.
    /// Either way `scan.filter` decides which records are returned.
    pub keys: Option<Vec<Vec<Value>>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hopping(size_ms: i64, advance_ms: i64) -> WindowPlan {
        WindowPlan {
            kind: WindowKind::Hopping,
            size_ms,
            advance_ms,
            grace_ms: 0,
            retention_ms: size_ms,
            emit_final: false,
        }
    }

    #[test]
    fn time_windows_are_aligned_to_the_epoch_and_hold_their_start_not_their_end() {
        let w = |p: &WindowPlan, ts| p.windows_for(ts).collect::<Vec<_>>();
        let tumbling = hopping(30_000, 30_000);
        assert_eq!(w(&tumbling, 0), [(0, 30_000)]);
        assert_eq!(w(&tumbling, 29_999), [(0, 30_000)]);
        assert_eq!(w(&tumbling, 30_000), [(30_000, 60_000)]);
        assert_eq!(w(&tumbling, 86_412_022), [(86_400_000, 86_430_000)]);
        let hop = hopping(30_000, 10_000);
        assert_eq!(w(&hop, 5_000), [(0, 30_000)]);
        assert_eq!(
            w(&hop, 25_000),
            [(0, 30_000), (10_000, 40_000), (20_000, 50_000)]
        );
        assert_eq!(
            w(&hop, 30_000),
            [(10_000, 40_000), (20_000, 50_000), (30_000, 60_000)]
        );
        // An advance that does not divide the size.
        assert_eq!(w(&hopping(10, 3), 10), [(3, 13), (6, 16), (9, 19)]);
    }
}
