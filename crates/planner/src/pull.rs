//! Pull queries (a SELECT without EMIT CHANGES), planned by ksqlDB's rules:
//!
//! - On a table, only a materialized one (CREATE TABLE AS SELECT, CREATE SOURCE TABLE) is
//!   queryable. The WHERE clause is rewritten as ksqlDB's `PullQueryRewriter` does (BETWEEN
//!   as two bounds, IN as equalities, NOT pushed down, then disjunctive normal form), each
//!   disjunct is validated as its `QueryFilterNode` does, and the key constraints it holds
//!   choose the access: key lookups, a key range, or a table scan, the last two subject to
//!   `ksql.query.pull.range.scan.enabled` and `ksql.query.pull.table.scan.enabled`.
//! - On a stream, a bounded scan of what the stream's topic holds when the query starts
//!   (`ksql.query.pull.stream.enabled`), with any WHERE clause as a filter. When the WHERE
//!   clause pins the key (`id = 'c1'`, `id IN (...)`), the plan carries the keys, and an
//!   event-store stream reads just their events from its key index: an aggregate's history.
//!
//! Both follow `PullQueryValidator`: no GROUP BY, PARTITION BY or HAVING, and no
//! ROWPARTITION or ROWOFFSET in the SELECT or WHERE clauses. A stream's may use ROWOFFSET
//! (Sluice, not ksqlDB): `ROWOFFSET > n` resumes reading a history.

use crate::bind::{Binder, Scope, err_at, ksql_text};
use crate::query::{
    OutputColumn, bind_predicate_shown, column_ref, conjuncts, no_table_functions, output_columns,
    project,
};
use crate::{Catalog, PlanError, QueryConfig, Result, lookup};
use sluice_common::{Column, DataType, ROWOFFSET, ROWPARTITION, SourceDef, SourceKind, Value};
use sluice_expr::eval::cast;
use sluice_plan::{PullAccess, PullLimits, PullPlan, PushPlan, StreamPullPlan};
use sluice_sql::{Expr as SqlExpr, Select, SelectItem};
use sqlparser::ast::{BinaryOperator, InTarget, UnaryOperator, Value as SqlValue};

/// What ksqlDB appends to every pull-query validation error.
pub const PULL_QUERY_SYNTAX_HELP: &str = " See https://cnfl.io/queries for more info.\nAdd EMIT CHANGES if you intended to issue a push query.";

/// Atoms at most in the normal form of a WHERE clause (an IN list of n values is n); a
/// clause whose normal form is larger (it grows exponentially with ANDs of ORs) is not
/// searched for keys: it reads the table by a scan instead.
const MAX_DNF_ATOMS: usize = 65_536;

/// A planned pull query.
#[derive(Debug, Clone)]
pub enum PullKind {
    /// A read of a table's materialized state.
    Table(PullPlan),
    /// A read of a stream's topic up to its end offsets at query start (of the keys' events
    /// only, where the WHERE clause pins the key); `limit` and the filter apply as they do
    /// to a push query.
    Stream(StreamPullPlan),
}

#[derive(Debug, Clone)]
pub struct PlannedPull {
    pub kind: PullKind,
    pub columns: Vec<OutputColumn>,
}

fn pull_error(message: impl Into<String>, line: u64, column: u64) -> PlanError {
    PlanError::new(
        format!("{}{PULL_QUERY_SYNTAX_HELP}", message.into()),
        line,
        column,
    )
}

fn pull_error_at<T>(e: &SqlExpr, message: impl Into<String>) -> Result<T> {
    err_at(e, format!("{}{PULL_QUERY_SYNTAX_HELP}", message.into()))
}

/// ksqlDB's error for a WHERE clause a pull query cannot run (`invalidWhereClauseException`
/// of a non-windowed source).
fn invalid_where<T>(w: &SqlExpr, message: &str) -> Result<T> {
    err_at(
        w,
        format!(
            "{message}.{PULL_QUERY_SYNTAX_HELP}\nPull queries require a WHERE clause that:\n - includes a key equality expression, e.g. `SELECT * FROM X WHERE <key-column> = Y;`.\n - in the case of a multi-column key, is a conjunction of equality expressions that cover all key columns.\n - to support range expressions, e.g.,  SELECT * FROM X WHERE <key-column> < Y;`, range scans need to be enabled by setting ksql.query.pull.range.scan.enabled=true\nIf more flexible queries are needed, , table scans can be enabled by setting ksql.query.pull.table.scan.enabled=true."
        ),
    )
}

/// Plans a pull query: a table read or a stream scan (see the module docs).
pub fn plan_pull(
    select: &Select,
    catalog: &dyn Catalog,
    cfg: &QueryConfig,
    limits: PullLimits,
) -> Result<PlannedPull> {
    let source = lookup(catalog, &select.from)?;
    if let Some(j) = select.joins.first() {
        return Err(pull_error(
            "Pull queries don't support JOIN clauses.",
            j.line,
            j.column,
        ));
    }
    if let Some(w) = &select.window {
        return Err(pull_error(
            "Pull queries don't support WINDOW clauses.",
            w.line,
            w.column,
        ));
    }
    check_depths(select)?;
    validate_clauses(select, cfg, source.kind == SourceKind::Stream)?;
    let scope = Scope::of_source(&source, select.alias.as_ref().map(|a| a.value.as_str()));
    if source.kind == SourceKind::Stream {
        if !cfg.stream_pull_enabled {
            return Err(PlanError::at_name(
                "Pull queries on streams are disabled. To create a push query on the stream, add EMIT CHANGES to the end. To enable pull queries on streams, set the ksql.query.pull.stream.enabled config to 'true'.",
                &select.from,
            ));
        }
        let filter = select
            .selection
            .as_ref()
            .map(|w| bind_predicate_shown(&scope, w, w))
            .transpose()?;
        let keys = select
            .selection
            .as_ref()
            .and_then(|w| stream_keys(&source, &scope, w));
        let items = project(select, &source, &scope)?;
        no_table_functions(&items, "pull queries")?;
        let columns = output_columns(&items, &source)?;
        let projection = items.into_iter().map(|i| i.bound.expr).collect();
        return Ok(PlannedPull {
            kind: PullKind::Stream(StreamPullPlan {
                scan: PushPlan {
                    source,
                    filter,
                    projection,
                    limit: select.limit,
                    skip_null_keys: false,
                    join: None,
                },
                keys,
            }),
            columns,
        });
    }
    let (filter, access) = match &select.selection {
        None => (None, Access::Scan),
        Some(w) => {
            let (filter, access) = plan_where(&source, &scope, w, cfg)?;
            (Some(filter), access)
        }
    };
    let mut items = project(select, &source, &scope)?;
    no_table_functions(&items, "pull queries")?;
    crate::query::star_window_bounds(select, &source, &scope, &mut items);
    let mut columns = output_columns(&items, &source)?;
    if source.window.is_some() {
        // A windowed table's key is its key columns and the window: a pull query shows
        // the window's bounds as key columns, as ksqlDB does.
        for (c, i) in columns.iter_mut().zip(&items) {
            if matches!(
                i.source_column.as_deref(),
                Some(sluice_common::WINDOWSTART | sluice_common::WINDOWEND)
            ) {
                c.role = sluice_common::ColumnRole::Key;
            }
        }
    }
    // ksqlDB finds a table unmaterialized, and a scan disabled, only once it builds the
    // physical plan, after every check of the query itself.
    if !queryable(&source) {
        return Err(PlanError::at_name(
            format!(
                "The `{0}` table isn't queryable. To derive a queryable table, you can do 'CREATE TABLE QUERYABLE_{0} AS SELECT * FROM {0}'.{PULL_QUERY_SYNTAX_HELP}",
                source.name
            ),
            &select.from,
        ));
    }
    let access = match access {
        Access::Keys(keys) => PullAccess::Keys(keys),
        // ksqlDB ranges over the first bound it finds; every bound of the WHERE clause
        // narrows the range further.
        Access::Range { lower, upper } if cfg.range_scan_enabled => select
            .selection
            .as_ref()
            .map(|w| key_bounds(&source, &scope, w))
            .transpose()?
            .flatten()
            .unwrap_or(PullAccess::Range { lower, upper }),
        Access::Range { .. } | Access::Scan if !cfg.table_scan_enabled => {
            let (line, column) = select
                .selection
                .as_ref()
                .map_or((select.from.line, select.from.column), position);
            return Err(PlanError::new(
                "Query requires table scan to be enabled. Table scans can be enabled by setting ksql.query.pull.table.scan.enabled=true",
                line,
                column,
            ));
        }
        // A scan reads the table in key order, so bounds on the first key column narrow
        // it without changing the rows it returns (the filter still applies to each).
        Access::Range { .. } | Access::Scan => select
            .selection
            .as_ref()
            .map(|w| key_bounds(&source, &scope, w))
            .transpose()?
            .flatten()
            .unwrap_or(PullAccess::Scan),
    };
    let projection = items.into_iter().map(|i| i.bound.expr).collect();
    Ok(PlannedPull {
        kind: PullKind::Table(PullPlan {
            table: source,
            access,
            filter,
            projection,
            limit: select.limit,
            limits,
        }),
        columns,
    })
}

/// Whether a table has a store pull queries can read: one written by a query (CREATE TABLE
/// AS SELECT) or declared with CREATE SOURCE TABLE. A table declared with plain CREATE
/// TABLE is materialized only for joins, as in ksqlDB.
pub fn queryable(table: &SourceDef) -> bool {
    table.written_by.is_some() || table.read_only
}

fn position(e: &SqlExpr) -> (u64, u64) {
    use sqlparser::ast::Spanned;
    let s = e.span().start;
    (s.line, s.column)
}

/// Refuses expressions nested deeper than the binder accepts before anything here walks
/// them recursively: a chain of thousands of ANDs would otherwise overflow the stack.
fn check_depths(select: &Select) -> Result<()> {
    struct Depth {
        depth: usize,
    }
    impl sqlparser::ast::Visitor for Depth {
        type Break = ();
        fn pre_visit_expr(&mut self, _: &SqlExpr) -> std::ops::ControlFlow<()> {
            self.depth += 1;
            if self.depth > crate::bind::MAX_EXPR_DEPTH {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        }
        fn post_visit_expr(&mut self, _: &SqlExpr) -> std::ops::ControlFlow<()> {
            self.depth -= 1;
            std::ops::ControlFlow::Continue(())
        }
    }
    let items = select.items.iter().filter_map(|i| match i {
        SelectItem::Expr { expr, .. } => Some(expr),
        _ => None,
    });
    for e in items.chain(&select.selection) {
        use sqlparser::ast::Visit;
        if e.visit(&mut Depth { depth: 0 }).is_break() {
            let (line, column) = crate::bind::leftmost_position(e);
            return Err(PlanError::new(
                format!(
                    "Expression is nested too deeply (more than {} levels of operators or calls)",
                    crate::bind::MAX_EXPR_DEPTH
                ),
                line,
                column,
            ));
        }
    }
    Ok(())
}

/// `PullQueryValidator`'s rules on the clauses of a pull query.
fn validate_clauses(select: &Select, cfg: &QueryConfig, stream: bool) -> Result<()> {
    if let Some(g) = select.group_by.first() {
        return pull_error_at(g, "Pull queries don't support GROUP BY clauses.");
    }
    if let Some(p) = select.partition_by.first() {
        return pull_error_at(p, "Pull queries don't support PARTITION BY clauses.");
    }
    if let Some(h) = &select.having {
        return pull_error_at(h, "Pull queries don't support HAVING clauses.");
    }
    if select.limit.is_some() && !cfg.limit_clause_enabled {
        return Err(pull_error(
            "LIMIT clause in pull queries is currently disabled. You can enable them by setting ksql.query.pull.limit.clause.enabled=true.",
            select.from.line,
            select.from.column,
        ));
    }
    // A stream's records have offsets, and `ROWOFFSET > n` resumes reading an aggregate's
    // history (issue #14, Sluice beyond ksqlDB); ROWPARTITION stays refused as ksqlDB does.
    let disallowed_columns = |e: &SqlExpr| {
        let mut names = disallowed_columns(e);
        if stream {
            names.retain(|n| n != ROWOFFSET);
        }
        names
    };
    let mut in_select: Vec<String> = Vec::new();
    let mut first: Option<&SqlExpr> = None;
    for item in &select.items {
        if let SelectItem::Expr { expr, .. } = item {
            for name in disallowed_columns(expr) {
                first.get_or_insert(expr);
                if !in_select.contains(&name) {
                    in_select.push(name);
                }
            }
        }
    }
    if let Some(e) = first {
        return pull_error_at(
            e,
            format!(
                "Pull queries don't support the following columns in SELECT clauses: {}\n",
                backquoted(&in_select)
            ),
        );
    }
    if let Some(w) = &select.selection {
        let mut in_where: Vec<String> = Vec::new();
        for name in disallowed_columns(w) {
            if !in_where.contains(&name) {
                in_where.push(name);
            }
        }
        if !in_where.is_empty() {
            return pull_error_at(
                w,
                format!(
                    "Pull queries don't support the following columns in WHERE clauses: {}\n",
                    backquoted(&in_where)
                ),
            );
        }
    }
    Ok(())
}

fn backquoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The pseudocolumns an expression reads that pull queries (and scalable push queries)
/// cannot: ROWPARTITION and ROWOFFSET. ROWTIME is allowed.
pub fn disallowed_columns(e: &SqlExpr) -> Vec<String> {
    let mut out = Vec::new();
    let _ = sqlparser::ast::visit_expressions(e, |x| {
        if let Some(name) = column_ref(x)
            && (name == ROWPARTITION || name == ROWOFFSET)
            && !out.contains(&name)
        {
            out.push(name);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    out
}

/// How the WHERE clause lets a pull query reach the table's rows, before the range and
/// table scan settings apply.
#[derive(Debug, Clone, PartialEq)]
enum Access {
    Keys(Vec<Vec<Value>>),
    /// A bound on a STRING or BYTES key: a range scan where enabled.
    Range {
        lower: Option<(Value, bool)>,
        upper: Option<(Value, bool)>,
    },
    Scan,
}

/// The key tuples a stream pull query's WHERE clause pins the key to, when every disjunct
/// of its normal form is an equality on the whole key; None when a record of another key
/// could match (or the clause is beyond the normal form's size). Never an error: the
/// filter, bound separately, reports what is wrong with the clause, and without keys the
/// query scans.
fn stream_keys(source: &SourceDef, scope: &Scope, w: &SqlExpr) -> Option<Vec<Vec<Value>>> {
    let keys = source.schema.keys();
    if keys.is_empty() {
        return None;
    }
    let pred = Pred::of(w, false);
    let disjuncts = pred.dnf()?;
    match extract_access(keys, scope, &disjuncts) {
        Ok(Access::Keys(tuples)) => Some(tuples),
        _ => None,
    }
}

/// Checks a table pull query's WHERE clause in ksqlDB's order — type check, then the
/// pull-query validation and key extraction, then compilation — and returns the filter
/// and the access the key constraints allow.
fn plan_where(
    table: &SourceDef,
    scope: &Scope,
    w: &SqlExpr,
    cfg: &QueryConfig,
) -> Result<(sluice_expr::Expr, Access)> {
    // ksqlDB's type check of a WHERE clause does not compare the operands of LIKE,
    // BETWEEN and IN: the pull-query rules below and compilation do. Their columns must
    // still resolve, as ksqlDB's analysis checks first.
    let (masked, operands) = mask_unchecked(w);
    bind_predicate_shown(scope, &masked, w)?;
    for operand in &operands {
        Binder::plain(scope).in_clause("WHERE").bind(operand)?;
    }
    let pred = Pred::of(w, false);
    let disjuncts = pred.dnf();
    let access = match disjuncts {
        None => {
            if !cfg.table_scan_enabled {
                return invalid_where(w, "WHERE clause has too many disjuncts to look up keys in");
            }
            Access::Scan
        }
        Some(disjuncts) => {
            let keys = table.schema.keys();
            if validate_disjuncts(w, keys, scope, &disjuncts, cfg.table_scan_enabled)? {
                Access::Scan
            } else {
                extract_access(keys, scope, &disjuncts)?
            }
        }
    };
    // Compiled as ksqlDB compiles it: with BETWEEN rewritten as comparisons, whose type
    // errors the interpreter reports as invalid expressions.
    let rewritten = rewrite_between(w);
    let filter = Binder::plain(scope)
        .in_clause("WHERE")
        .bind(&rewritten)
        .map_err(|mut e| {
            if is_type_error(&e.message) {
                e.message = format!("Invalid expression: {}", e.message);
            }
            e
        })?
        .expr;
    Ok((filter, access))
}

fn is_type_error(message: &str) -> bool {
    ["Cannot compare", "Comparison with NULL", "LIKE needs"]
        .iter()
        .any(|p| message.starts_with(p))
}

fn true_literal() -> SqlExpr {
    SqlExpr::Value(SqlValue::Boolean(true).into())
}

/// `w` with every LIKE, BETWEEN and IN replaced by TRUE.
/// `w` with every LIKE, BETWEEN and IN replaced by TRUE, and the operands they had.
fn mask_unchecked(w: &SqlExpr) -> (SqlExpr, Vec<SqlExpr>) {
    let mut out = w.clone();
    let mut operands = Vec::new();
    let _ = sqlparser::ast::visit_expressions_mut(&mut out, |e| {
        let masked = match e {
            SqlExpr::Like { expr, pattern, .. } | SqlExpr::ILike { expr, pattern, .. } => {
                operands.extend([(**expr).clone(), (**pattern).clone()]);
                true
            }
            SqlExpr::Between {
                expr, low, high, ..
            } => {
                operands.extend([(**expr).clone(), (**low).clone(), (**high).clone()]);
                true
            }
            SqlExpr::In {
                expr,
                target: InTarget::List(list),
                ..
            } => {
                operands.push((**expr).clone());
                operands.extend(list.iter().cloned());
                true
            }
            _ => false,
        };
        if masked {
            *e = true_literal();
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    (out, operands)
}

fn binary(left: SqlExpr, op: BinaryOperator, right: SqlExpr) -> SqlExpr {
    SqlExpr::Nested(Box::new(SqlExpr::BinaryOp {
        left: Box::new(left),
        op,
        right: Box::new(right),
    }))
}

fn negate(e: SqlExpr) -> SqlExpr {
    SqlExpr::UnaryOp {
        op: UnaryOperator::Not,
        expr: Box::new(SqlExpr::Nested(Box::new(e))),
    }
}

/// `w` with `x BETWEEN a AND b` as `(x >= a AND x <= b)`, as ksqlDB's pull-query rewriter
/// writes it. (It writes IN as equalities too; an IN list stays one here, so a list of
/// thousands of keys does not become a tree thousands deep.)
fn rewrite_between(w: &SqlExpr) -> SqlExpr {
    let mut out = w.clone();
    let _ = sqlparser::ast::visit_expressions_mut(&mut out, |e| {
        if let SqlExpr::Between {
            expr,
            negated,
            low,
            high,
        } = e
        {
            let both = binary(
                binary((**expr).clone(), BinaryOperator::GtEq, (**low).clone()),
                BinaryOperator::And,
                binary((**expr).clone(), BinaryOperator::LtEq, (**high).clone()),
            );
            *e = if *negated { negate(both) } else { both };
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl CmpOp {
    fn of(op: &BinaryOperator) -> Option<CmpOp> {
        Some(match op {
            BinaryOperator::Eq => CmpOp::Eq,
            BinaryOperator::NotEq => CmpOp::NotEq,
            BinaryOperator::Lt => CmpOp::Lt,
            BinaryOperator::LtEq => CmpOp::LtEq,
            BinaryOperator::Gt => CmpOp::Gt,
            BinaryOperator::GtEq => CmpOp::GtEq,
            _ => return None,
        })
    }

    fn negated(self) -> CmpOp {
        match self {
            CmpOp::Eq => CmpOp::NotEq,
            CmpOp::NotEq => CmpOp::Eq,
            CmpOp::Lt => CmpOp::GtEq,
            CmpOp::GtEq => CmpOp::Lt,
            CmpOp::Gt => CmpOp::LtEq,
            CmpOp::LtEq => CmpOp::Gt,
        }
    }

    /// The operator with its operands swapped: `a < b` is `b > a`.
    fn flipped(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::LtEq => CmpOp::GtEq,
            CmpOp::GtEq => CmpOp::LtEq,
            other => other,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::NotEq => "<>",
            CmpOp::Lt => "<",
            CmpOp::LtEq => "<=",
            CmpOp::Gt => ">",
            CmpOp::GtEq => ">=",
        }
    }
}

/// A WHERE clause as ksqlDB's pull-query rewriter sees it. Junctions are n-ary, so an IN
/// list of thousands of values is one flat OR, not a deep tree.
#[derive(Debug, Clone)]
enum Pred {
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Atom(Box<Atom>),
}

#[derive(Debug, Clone)]
enum Atom {
    Cmp {
        op: CmpOp,
        left: SqlExpr,
        right: SqlExpr,
    },
    Like {
        value: SqlExpr,
        pattern: SqlExpr,
        negated: bool,
    },
    /// Anything else (IS NULL, a boolean column, a function call, ...), possibly negated.
    Other { expr: SqlExpr, negated: bool },
}

impl Pred {
    /// Builds the predicate with NOT pushed down to the comparisons (`NOT a = b` is
    /// `a <> b`, `NOT (a AND b)` is `NOT a OR NOT b`).
    fn of(e: &SqlExpr, negated: bool) -> Pred {
        let cmp = |op: CmpOp, l: &SqlExpr, r: &SqlExpr, negated: bool| {
            Pred::Atom(Box::new(Atom::Cmp {
                op: if negated { op.negated() } else { op },
                left: l.clone(),
                right: r.clone(),
            }))
        };
        // De Morgan: a negated AND is an OR of the negations, and the other way round.
        let junction = |and: bool, parts: Vec<Pred>| {
            // Nested junctions of the same kind flatten: (a AND b) AND c is AND(a, b, c).
            let mut flat = Vec::with_capacity(parts.len());
            for p in parts {
                match (p, and) {
                    (Pred::And(inner), true) | (Pred::Or(inner), false) => flat.extend(inner),
                    (other, _) => flat.push(other),
                }
            }
            if and { Pred::And(flat) } else { Pred::Or(flat) }
        };
        match e {
            SqlExpr::Nested(inner) => Pred::of(inner, negated),
            SqlExpr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => Pred::of(expr, !negated),
            SqlExpr::BinaryOp {
                left,
                op: op @ (BinaryOperator::And | BinaryOperator::Or),
                right,
            } => junction(
                (*op == BinaryOperator::And) != negated,
                vec![Pred::of(left, negated), Pred::of(right, negated)],
            ),
            SqlExpr::BinaryOp { left, op, right } if CmpOp::of(op).is_some() => {
                let op = CmpOp::of(op).unwrap_or(CmpOp::Eq);
                cmp(op, left, right, negated)
            }
            SqlExpr::Between {
                expr,
                negated: between_negated,
                low,
                high,
            } => {
                let negated = negated != *between_negated;
                junction(
                    !negated,
                    vec![
                        cmp(CmpOp::GtEq, expr, low, negated),
                        cmp(CmpOp::LtEq, expr, high, negated),
                    ],
                )
            }
            SqlExpr::In {
                expr,
                target: InTarget::List(list),
                negated: in_negated,
                ..
            } if !list.is_empty() => {
                let negated = negated != *in_negated;
                junction(
                    negated,
                    list.iter()
                        .map(|v| cmp(CmpOp::Eq, expr, v, negated))
                        .collect(),
                )
            }
            SqlExpr::Like {
                negated: like_negated,
                expr,
                pattern,
                ..
            } => Pred::Atom(Box::new(Atom::Like {
                value: (**expr).clone(),
                pattern: (**pattern).clone(),
                negated: negated != *like_negated,
            })),
            other => Pred::Atom(Box::new(Atom::Other {
                expr: other.clone(),
                negated,
            })),
        }
    }

    /// The disjuncts of the predicate's disjunctive normal form, each a conjunction of
    /// atoms; None when they would hold more than [`MAX_DNF_ATOMS`] atoms in all.
    fn dnf(&self) -> Option<Vec<Vec<&Atom>>> {
        let size = |d: &[Vec<&Atom>]| d.iter().map(Vec::len).sum::<usize>();
        match self {
            Pred::Atom(a) => Some(vec![vec![a.as_ref()]]),
            Pred::Or(parts) => {
                let (mut out, mut atoms) = (Vec::new(), 0usize);
                for p in parts {
                    let d = p.dnf()?;
                    atoms += size(&d);
                    if atoms > MAX_DNF_ATOMS {
                        return None;
                    }
                    out.extend(d);
                }
                Some(out)
            }
            Pred::And(parts) => {
                let mut out: Vec<Vec<&Atom>> = vec![Vec::new()];
                for p in parts {
                    let next = p.dnf()?;
                    let (a, b) = (size(&out), size(&next));
                    // Every disjunct of one side meets every disjunct of the other.
                    let atoms = a
                        .saturating_mul(next.len())
                        .saturating_add(b.saturating_mul(out.len()));
                    if atoms > MAX_DNF_ATOMS {
                        return None;
                    }
                    let mut product = Vec::with_capacity(out.len() * next.len());
                    for x in &out {
                        for y in &next {
                            product.push(x.iter().chain(y.iter()).copied().collect());
                        }
                    }
                    out = product;
                }
                Some(out)
            }
        }
    }
}

impl Atom {
    /// The atom as ksqlDB prints expressions.
    fn text(&self) -> String {
        let not = |negated: bool, s: String| if negated { format!("(NOT {s})") } else { s };
        match self {
            Atom::Cmp { op, left, right } => {
                format!("({} {} {})", ksql_text(left), op.symbol(), ksql_text(right))
            }
            Atom::Like {
                value,
                pattern,
                negated,
            } => not(
                *negated,
                format!("({} LIKE {})", ksql_text(value), ksql_text(pattern)),
            ),
            Atom::Other { expr, negated } => not(*negated, ksql_text(expr)),
        }
    }
}

fn disjunct_text(atoms: &[&Atom]) -> String {
    atoms
        .iter()
        .map(|a| a.text())
        .reduce(|a, b| format!("({a} AND {b})"))
        .unwrap_or_default()
}

/// Whether an expression names any column.
fn has_column_ref(e: &SqlExpr) -> bool {
    sqlparser::ast::visit_expressions(e, |x| {
        if matches!(x, SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_)) {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    })
    .is_break()
}

/// The column a comparison reads directly, and the other side: the right side is looked
/// at first, as in ksqlDB. The operator is returned as seen from the column.
fn column_side<'e>(
    op: CmpOp,
    left: &'e SqlExpr,
    right: &'e SqlExpr,
) -> Option<(String, CmpOp, &'e SqlExpr)> {
    if let Some(c) = column_ref(right) {
        return Some((c, op.flipped(), left));
    }
    column_ref(left).map(|c| (c, op, right))
}

fn key_schema_text(keys: &[Column]) -> String {
    format!(
        "[{}]",
        keys.iter()
            .map(|k| format!("`{}` {} KEY", k.name, k.data_type))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// ksqlDB's per-disjunct validation of a pull query's WHERE clause. Returns whether the
/// query needs a table scan; errors where it would need one and scans are disabled, and
/// for what no scan can run.
fn validate_disjuncts(
    w: &SqlExpr,
    keys: &[Column],
    scope: &Scope,
    disjuncts: &[Vec<&Atom>],
    scans: bool,
) -> Result<bool> {
    for disjunct in disjuncts {
        let mut seen = vec![false; keys.len()];
        let mut keyed = false;
        let mut needs_scan = false;
        let mut scan_or = |message: &str| -> Result<()> {
            if scans {
                needs_scan = true;
                Ok(())
            } else {
                invalid_where(w, message)
            }
        };
        for atom in disjunct {
            match atom {
                Atom::Cmp { op, left, right } => {
                    let Some((column, op, other)) = column_side(*op, left, right) else {
                        scan_or("A comparison must directly reference a key column")?;
                        continue;
                    };
                    if has_column_ref(other) {
                        scan_or(
                            "A comparison must be between a key column and a resolvable expression",
                        )?;
                        continue;
                    }
                    let Some(ki) = keys.iter().position(|k| k.name == column) else {
                        continue;
                    };
                    if op == CmpOp::NotEq {
                        scan_or(&format!(
                            "Bound on key columns '{}' must currently be '='",
                            key_schema_text(keys)
                        ))?;
                    }
                    if seen[ki] && !scans {
                        return invalid_where(
                            w,
                            "A comparison condition on the key column cannot be combined with other comparisons such as an IN predicate",
                        );
                    }
                    seen[ki] = true;
                    keyed = true;
                }
                Atom::Like { value, pattern, .. } => match column_ref(value) {
                    Some(column) => {
                        let ty = scope.index_of(&column).map(|i| scope.columns[i].1.clone());
                        if let Some(ty) = ty
                            && ty != DataType::String
                        {
                            return invalid_where(
                                w,
                                &format!(
                                    "The column type for Like condition must be VARCHAR. The column type is {}",
                                    base_type_name(&ty)
                                ),
                            );
                        }
                        let literal = matches!(pattern, SqlExpr::Value(v) if matches!(v.value, SqlValue::SingleQuotedString(_) | SqlValue::DoubleQuotedString(_) | SqlValue::Null));
                        if !literal {
                            return invalid_where(
                                w,
                                &format!(
                                    "Like condition on non-string pattern {}",
                                    ksql_text(pattern)
                                ),
                            );
                        }
                    }
                    None => scan_or("Like condition must be between strings")?,
                },
                // Newer ksqlDB versions scan for any other condition (IS NULL, a boolean
                // column); without scans it stays unsupported.
                Atom::Other { .. } => scan_or(&format!(
                    "Unsupported expression in WHERE clause: {}",
                    atom.text()
                ))?,
            }
        }
        if needs_scan {
            return Ok(true);
        }
        if !keyed {
            if scans {
                return Ok(true);
            }
            return invalid_where(
                w,
                &format!(
                    "WHERE clause missing key column for disjunct: {}",
                    disjunct_text(disjunct)
                ),
            );
        }
        let count = seen.iter().filter(|s| **s).count();
        if count != keys.len() {
            if scans {
                return Ok(true);
            }
            let specified: Vec<String> = keys
                .iter()
                .zip(&seen)
                .filter(|(_, s)| **s)
                .map(|(k, _)| format!("`{}`", k.name))
                .collect();
            return invalid_where(
                w,
                &format!(
                    "Multi-column sources must specify every key in the WHERE clause. Specified: [{}] Expected: {}",
                    specified.join(", "),
                    key_schema_text(keys)
                ),
            );
        }
    }
    Ok(false)
}

/// A type's base name as ksqlDB's `SqlBaseType` prints it.
fn base_type_name(t: &DataType) -> &'static str {
    match t {
        DataType::Boolean => "BOOLEAN",
        DataType::Int => "INTEGER",
        DataType::BigInt => "BIGINT",
        DataType::Double => "DOUBLE",
        DataType::Decimal { .. } => "DECIMAL",
        DataType::String => "STRING",
        DataType::Bytes => "BYTES",
        DataType::Timestamp => "TIMESTAMP",
        DataType::Date => "DATE",
        DataType::Time => "TIME",
        DataType::Array(_) => "ARRAY",
        DataType::Map(..) => "MAP",
        DataType::Struct(_) => "STRUCT",
    }
}

/// A value as ksqlDB's error messages print a key value (Java's `toString`).
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => sluice_format::value_to_json(other).to_string(),
    }
}

/// The value a key comparison pins its key to: the other side evaluated and coerced to
/// the key's type, strictly (only widening, as ksqlDB's strict coercer).
fn resolve_key(key: &Column, other: &SqlExpr, comparison: &Atom) -> Result<Value> {
    let empty = Scope::empty();
    let b = Binder::plain(&empty).in_clause("WHERE").bind(other)?;
    let v = b.expr.eval(&[]);
    let (Some(ty), false) = (&b.ty, v.is_null()) else {
        return err_at(
            other,
            format!("Primary key columns can not be NULL: {}", comparison.text()),
        );
    };
    if !ty.coerces_to(&key.data_type) {
        return err_at(
            other,
            format!(
                "'{}' can not be converted to the type of the key column: {} {} KEY",
                value_text(&v),
                key.name,
                key.data_type
            ),
        );
    }
    Ok(cast(v, &key.data_type))
}

/// One disjunct's constraint on the key (ksqlDB's `KeyConstraint` / `NonKeyConstraint`).
enum Constraint {
    Equal(Vec<Value>),
    Range(CmpOp, Value),
    NonKey,
}

/// The key constraints of each disjunct (the WHERE clause needs no scan by the
/// validation), combined into the access they allow.
fn extract_access(keys: &[Column], _scope: &Scope, disjuncts: &[Vec<&Atom>]) -> Result<Access> {
    let mut constraints = Vec::with_capacity(disjuncts.len());
    for disjunct in disjuncts {
        // Per key column: the most selective comparison (an equality wins).
        let mut per_key: Vec<Option<(CmpOp, Value)>> = vec![None; keys.len()];
        for atom in disjunct {
            let Atom::Cmp { op, left, right } = atom else {
                continue;
            };
            let Some((column, op, other)) = column_side(*op, left, right) else {
                continue;
            };
            let Some(ki) = keys.iter().position(|k| k.name == column) else {
                continue;
            };
            let value = resolve_key(&keys[ki], other, atom)?;
            match &per_key[ki] {
                Some((CmpOp::Eq, _)) => {}
                Some(_) if op != CmpOp::Eq => {}
                _ => per_key[ki] = Some((op, value)),
            }
        }
        let set: Vec<&(CmpOp, Value)> = per_key.iter().flatten().collect();
        constraints.push(match set.as_slice() {
            [] => Constraint::NonKey,
            many if many.iter().all(|(op, _)| *op == CmpOp::Eq) && many.len() == keys.len() => {
                Constraint::Equal(many.iter().map(|(_, v)| v.clone()).collect())
            }
            [(op, v)]
                if keys.len() == 1
                    && matches!(keys[0].data_type, DataType::String | DataType::Bytes) =>
            {
                Constraint::Range(*op, v.clone())
            }
            _ => Constraint::NonKey,
        });
    }
    if constraints
        .iter()
        .all(|c| matches!(c, Constraint::Equal(_)))
    {
        let mut tuples: Vec<Vec<Value>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for c in constraints {
            if let Constraint::Equal(t) = c
                && seen.insert(sluice_common::keycodec::encode_key_vec(&t))
            {
                tuples.push(t);
            }
        }
        return Ok(Access::Keys(tuples));
    }
    if let [Constraint::Range(op, v)] = constraints.as_slice() {
        let v = v.clone();
        return Ok(match op {
            CmpOp::Gt => Access::Range {
                lower: Some((v, false)),
                upper: None,
            },
            CmpOp::GtEq => Access::Range {
                lower: Some((v, true)),
                upper: None,
            },
            CmpOp::Lt => Access::Range {
                lower: None,
                upper: Some((v, false)),
            },
            _ => Access::Range {
                lower: None,
                upper: Some((v, true)),
            },
        });
    }
    Ok(Access::Scan)
}

/// Bounds on the first key column that every row the WHERE clause accepts is within, from
/// its top-level conjuncts; None when it has none.
fn key_bounds(table: &SourceDef, scope: &Scope, w: &SqlExpr) -> Result<Option<PullAccess>> {
    let Some(k) = table.schema.keys().first() else {
        return Ok(None);
    };
    let mut parts = Vec::new();
    conjuncts(w, &mut parts);
    let constant = |e: &SqlExpr| -> Option<Value> {
        if has_column_ref(e) {
            return None;
        }
        let empty = Scope {
            columns: Vec::new(),
            qualifiers: scope.qualifiers.clone(),
            joined: Vec::new(),
        };
        let b = Binder::plain(&empty).bind(e).ok()?;
        if !b.ty.as_ref().is_some_and(|t| t.coerces_to(&k.data_type)) {
            return None;
        }
        let v = cast(b.expr.eval(&[]), &k.data_type);
        (!v.is_null()).then_some(v)
    };
    let mut lower: Option<(Value, bool)> = None;
    let mut upper: Option<(Value, bool)> = None;
    for part in parts {
        let (op, other) = match part {
            SqlExpr::BinaryOp { left, op, right } => {
                let Some(op) = CmpOp::of(op) else { continue };
                match column_side(op, left, right) {
                    Some((c, op, other)) if c == k.name => (op, other),
                    _ => continue,
                }
            }
            SqlExpr::Between {
                expr,
                negated: false,
                low,
                high,
            } if column_ref(expr).as_deref() == Some(k.name.as_str()) => {
                if let (Some(lo), Some(hi)) = (constant(low), constant(high)) {
                    lower = Some((lo, true));
                    upper = Some((hi, true));
                }
                continue;
            }
            _ => continue,
        };
        let Some(v) = constant(other) else { continue };
        match op {
            CmpOp::Gt => lower = Some((v, false)),
            CmpOp::GtEq => lower = Some((v, true)),
            CmpOp::Lt => upper = Some((v, false)),
            CmpOp::LtEq => upper = Some((v, true)),
            CmpOp::Eq => {
                lower = Some((v.clone(), true));
                upper = Some((v, true));
            }
            CmpOp::NotEq => {}
        }
    }
    Ok((lower.is_some() || upper.is_some()).then_some(PullAccess::Range { lower, upper }))
}

/// A pull query whose `?` parameters are exactly the values of its key columns (`WHERE id
/// = ?`, or `k1 = ? AND k2 = ?`, with any other conditions beside them), planned once and
/// then run as a key lookup per parameter set. This is the read side's point read; planning
/// it per request cost a fifth of a lookup's server CPU.
#[derive(Debug, Clone)]
pub struct PreparedPull {
    /// The query without its key conditions; run it with `PullAccess::Keys` of one key.
    pub plan: PullPlan,
    pub columns: Vec<OutputColumn>,
    /// Per key column, in key order: which parameter holds its value, and the key's type.
    pub key_params: Vec<(usize, DataType)>,
}

/// Prepares `select` (with its `?` placeholders unbound) when it has the shape of
/// [`PreparedPull`]; `Ok(None)` when it has not, and the query must be bound and planned
/// per request. A key value a parameter gives must already have the key's type: equality
/// with the key is then the lookup itself, and the condition can be dropped from the
/// filter.
pub fn prepare_pull(
    select: &Select,
    catalog: &dyn Catalog,
    cfg: &QueryConfig,
    limits: PullLimits,
) -> Result<Option<PreparedPull>> {
    if !select.joins.is_empty() {
        // plan_pull refuses it, with its message.
        return Ok(None);
    }
    let Some(table) = catalog.source(&select.from.value) else {
        return Ok(None);
    };
    let keys = table.schema.keys();
    let (Some(w), SourceKind::Table, false, true) = (
        &select.selection,
        table.kind,
        keys.is_empty(),
        queryable(&table),
    ) else {
        return Ok(None);
    };
    let mut parts = Vec::new();
    conjuncts(w, &mut parts);
    let mut key_at: Vec<Option<sqlparser::tokenizer::Location>> = vec![None; keys.len()];
    let mut rest: Vec<SqlExpr> = Vec::new();
    for part in parts {
        let key_eq = match part {
            SqlExpr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => match (
                sluice_sql::placeholder_at(left),
                sluice_sql::placeholder_at(right),
            ) {
                (None, Some(at)) => column_ref(left).map(|c| (c, at)),
                (Some(at), None) => column_ref(right).map(|c| (c, at)),
                _ => None,
            },
            _ => None,
        };
        let ki = key_eq
            .as_ref()
            .and_then(|(c, _)| keys.iter().position(|k| &k.name == c));
        match (ki, key_eq) {
            (Some(ki), Some((_, at))) if key_at[ki].is_none() => key_at[ki] = Some(at),
            (Some(_), Some(_)) => return Ok(None),
            _ => rest.push(part.clone()),
        }
    }
    let Some(key_at) = key_at.into_iter().collect::<Option<Vec<_>>>() else {
        return Ok(None);
    };
    let mut bare = select.clone();
    bare.selection = rest.into_iter().reduce(|l, r| SqlExpr::BinaryOp {
        left: Box::new(l),
        op: BinaryOperator::And,
        right: Box::new(r),
    });
    // Parameters anywhere but the key conditions need binding per request.
    if !sluice_sql::placeholders(&mut bare).is_empty() {
        return Ok(None);
    }
    // The remaining conditions must pass the checks the whole query would: the key
    // equalities make it a lookup whatever they are, so table scans do not matter here.
    let lookup_cfg = QueryConfig {
        table_scan_enabled: true,
        ..cfg.clone()
    };
    // So the key conditions hold every parameter, and a key's parameter number is the
    // rank of its placeholder in text order.
    let mut by_text: Vec<usize> = (0..key_at.len()).collect();
    by_text.sort_by_key(|&ki| (key_at[ki].line, key_at[ki].column));
    let mut param_of = vec![0; key_at.len()];
    for (param, ki) in by_text.into_iter().enumerate() {
        param_of[ki] = param;
    }
    let key_params = param_of
        .into_iter()
        .zip(keys)
        .map(|(param, k)| (param, k.data_type.clone()))
        .collect();
    let planned = plan_pull(&bare, catalog, &lookup_cfg, limits)?;
    let PullKind::Table(plan) = planned.kind else {
        return Ok(None);
    };
    Ok(Some(PreparedPull {
        plan,
        columns: planned.columns,
        key_params,
    }))
}

#[cfg(test)]
mod tests;
