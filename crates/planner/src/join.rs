//! Join analysis: which sources a statement joins and what each ON condition compares,
//! checked by ksqlDB's rules (its `Analyzer`: one occurrence of each source, one equality
//! per join whose sides each read exactly one source, compatible windowing, no KAFKA
//! value format). Typing and planning the join come after this and build on its result.

use crate::bind::{
    Binder, JoinedColumns, Scope, ident_name, ksql_text, ksql_text_qualified, ty_name,
};
use crate::{Catalog, PlanError, Result, lookup};
use sluice_common::{Column, ColumnRole, FormatKind, Schema, SourceDef};
use sluice_plan::{JoinInput, JoinPlan, JoinType};
use sluice_sql::{Expr as SqlExpr, Name, Select};
use sqlparser::ast::{BinaryOperator, Spanned};
use std::ops::ControlFlow;

/// One source of a join and the name its columns are qualified with.
#[derive(Debug, Clone)]
pub(crate) struct JoinedSource {
    pub def: SourceDef,
    /// The alias, or the source's name when it has none.
    pub alias: String,
}

/// One `JOIN ... ON a = b`: the sources each side of the equality reads (indexes into
/// [`JoinAnalysis::sources`]).
#[derive(Debug, Clone)]
pub(crate) struct JoinCondition {
    pub left: usize,
    pub right: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct JoinAnalysis {
    /// The FROM source first, then each joined source in the order written.
    pub sources: Vec<JoinedSource>,
    pub conditions: Vec<JoinCondition>,
}

/// Checks the sources and ON conditions of the select's joins, in ksqlDB's order.
pub(crate) fn analyze(select: &Select, catalog: &dyn Catalog) -> Result<JoinAnalysis> {
    let from = lookup(catalog, &select.from)?;
    let mut sources = vec![JoinedSource {
        alias: alias_of(&select.from, select.alias.as_ref()),
        def: from,
    }];
    let mut conditions = Vec::with_capacity(select.joins.len());
    for join in &select.joins {
        let def = lookup(catalog, &join.source)?;
        if let Some(existing) = sources.iter().find(|s| s.def.name == def.name) {
            let message = if sources.len() > 1 {
                format!(
                    "N-way joins do not support multiple occurrences of the same source. Source: '{}'.",
                    def.name
                )
            } else {
                format!(
                    "Can not join '{}' to '{}': self joins are not yet supported.",
                    def.name, existing.def.name
                )
            };
            return Err(PlanError::at_name(message, &join.source));
        }
        sources.push(JoinedSource {
            alias: alias_of(&join.source, join.alias.as_ref()),
            def,
        });
        let joined = sources.len() - 1;

        // ksqlDB resolves qualifiers while building the syntax tree, before any other
        // check of the condition.
        for (at, qualifier, _) in column_refs(&join.on) {
            if let Some(q) = qualifier
                && !sources.iter().any(|s| s.alias == q)
            {
                return at_pos(
                    at,
                    format!(
                        "Failed to prepare statement: '{q}' is not a valid stream/table name or alias."
                    ),
                );
            }
        }
        let (left, right) = equality_sides(&join.on)?;
        let ls = only_source(left, &join.on, &sources)?;
        let rs = only_source(right, &join.on, &sources)?;
        if ls == rs {
            return err_on(
                &join.on,
                format!(
                    "Each side of the join must reference exactly one source and not the same source. Left side references `{}` and right references `{}`",
                    sources[ls].alias, sources[rs].alias
                ),
            );
        }
        compatible_windowing(&sources[ls], &sources[rs], &join.on)?;
        if ls != joined && rs != joined {
            return err_on(
                &join.on,
                format!(
                    "A join criteria is expected to reference the source (`{}`) in the FROM clause, instead the right source references `{}` and the left source references `{}`",
                    sources[joined].alias, sources[rs].alias, sources[ls].alias
                ),
            );
        }
        conditions.push(JoinCondition {
            left: ls,
            right: rs,
        });
    }
    let kafka: Vec<&str> = sources
        .iter()
        .filter(|s| s.def.value_format.kind == FormatKind::Kafka)
        .map(|s| s.alias.as_str())
        .collect();
    if !kafka.is_empty() {
        return Err(PlanError::at_name(
            format!(
                "Source(s) {} are using the 'KAFKA' value format. This format does not yet support JOIN.",
                kafka.join(", ")
            ),
            &select.from,
        ));
    }
    for (i, join) in select.joins.iter().enumerate() {
        verify_join(join, i + 1, &conditions[i], &sources)?;
    }
    for (join, c) in select.joins.iter().zip(&conditions) {
        let (left, right) = equality_sides(&join.on)?;
        let typed = |side: &SqlExpr, i: usize| -> Result<(String, String)> {
            let s = &sources[i];
            let scope = Scope::of_source(&s.def, Some(&s.alias));
            let bound = Binder::plain(&scope).bind(side)?;
            Ok((
                ksql_text_qualified(side, Some(&s.alias)),
                ty_name(&bound.ty),
            ))
        };
        let ((lt, lty), (rt, rty)) = (typed(left, c.left)?, typed(right, c.right)?);
        if lty != rty {
            return err_on(
                &join.on,
                format!(
                    "Invalid join condition: types don't match. Got {lt}{{{lty}}} = {rt}{{{rty}}}."
                ),
            );
        }
    }
    Ok(JoinAnalysis {
        sources,
        conditions,
    })
}

/// ksqlDB's `verifyJoin` for the join that adds `sources[joined]` to the result of the
/// joins before it (a table only when every source before it is a table): stream-table
/// joins are on the table's key and not FULL OUTER; table-table joins are on the right
/// table's key, and on the left one's too unless they are foreign-key joins, which are
/// neither FULL nor RIGHT OUTER, nor part of an n-way join, nor into a windowed table.
fn verify_join(
    join: &sluice_sql::Join,
    joined: usize,
    c: &JoinCondition,
    sources: &[JoinedSource],
) -> Result<()> {
    use sluice_common::SourceKind::Table;
    use sluice_sql::JoinKind;
    let (first, second) = equality_sides(&join.on)?;
    let (first_src, second_src) = (c.left, c.right);
    let (left_expr, right_expr, left_src) = if second_src == joined {
        (first, second, first_src)
    } else {
        (second, first, second_src)
    };
    let written = format!(
        "{} = {}",
        ksql_text_qualified(first, Some(&sources[first_src].alias)),
        ksql_text_qualified(second, Some(&sources[second_src].alias))
    );
    let left_is_table = sources[..joined].iter().all(|s| s.def.kind == Table);
    let right = &sources[joined];
    let type_word = match join.kind {
        JoinKind::Inner => "INNER",
        JoinKind::Left => "LEFT",
        JoinKind::Right => "RIGHT",
        JoinKind::Full => "OUTER",
    };
    let names = format!(
        "{} {type_word} {}",
        sources[left_src].def.name, right.def.name
    );
    let non_key = |e: &SqlExpr, src: usize| !is_key_column(e, &sources[src].def);
    if !left_is_table {
        if right.def.kind == Table {
            if join.kind == JoinKind::Full {
                return err_on(
                    &join.on,
                    format!(
                        "Invalid join type: full-outer join not supported for stream-table join. Got {names}."
                    ),
                );
            }
            if non_key(right_expr, joined) {
                return err_on(
                    &join.on,
                    format!(
                        "Invalid join condition: stream-table joins require to join on the table's primary key. Got {written}."
                    ),
                );
            }
        }
        return Ok(());
    }
    if right.def.kind != Table {
        return err_on(
            &join.on,
            format!(
                "Invalid join order: table-stream joins are not supported; only stream-table joins. Got {names}."
            ),
        );
    }
    if non_key(right_expr, joined) {
        return err_on(
            &join.on,
            format!(
                "Invalid join condition: table-table joins require to join on the primary key of the right input table. Got {written}."
            ),
        );
    }
    if !non_key(left_expr, left_src) {
        return Ok(());
    }
    // A foreign-key join.
    if join.kind == JoinKind::Full {
        return err_on(
            &join.on,
            format!(
                "Invalid join type: full-outer join not supported for foreign-key table-table join. Got {names}."
            ),
        );
    }
    if joined > 1 {
        return err_on(
            &join.on,
            format!(
                "Invalid join condition: foreign-key table-table joins are not supported as part of n-way joins. Got {written}."
            ),
        );
    }
    if right.def.window.is_some() {
        return err_on(
            &join.on,
            "Foreign-key table-table joins are not supported on windowed tables.".into(),
        );
    }
    if join.kind == JoinKind::Right {
        return err_on(
            &join.on,
            "RIGHT OUTER JOIN on a foreign key is not supported".into(),
        );
    }
    Ok(())
}

/// A join planned as the input of a query's operator: the joined row described as a
/// source (its scope resolves the joined sources' columns as ksqlDB names them), and the
/// join the engine runs to produce it.
#[derive(Debug, Clone)]
pub(crate) struct PlannedJoin {
    pub source: SourceDef,
    pub scope: Scope,
    pub plan: JoinPlan,
    /// Columns of the joined row that hold the join key: the first the projection reads
    /// becomes the result's key. A synthetic key is column 0 alone; a foreign-key join's
    /// are the left table's key columns, which the projection must all include.
    pub key_columns: Vec<usize>,
    /// The join expressions a projection must include one of, as ksqlDB writes them in
    /// its message.
    pub key_texts: Vec<String>,
    /// The synthetic key column's name, when the key is no source column.
    pub synthetic: Option<String>,
}

/// The most joins one statement may have (each nested join keeps its state under its
/// own tags).
const MAX_JOINS: usize = 15;

/// Plans the select's joins: stream-table, table-table (on the key or, first, a foreign
/// key) and stream-stream joins of any number of sources, each join's left side the
/// result of the joins before it. Joins of windowed sources are refused; others ksqlDB
/// refuses get its message.
pub(crate) fn plan_join(select: &Select, catalog: &dyn Catalog) -> Result<PlannedJoin> {
    use sluice_common::SourceKind::{Stream, Table};
    use sluice_sql::JoinKind;
    let analysis = analyze(select, catalog)?;
    if let Some(extra) = select.joins.get(MAX_JOINS) {
        return Err(PlanError::new(
            format!("A statement may join at most {} sources", MAX_JOINS + 1),
            extra.line,
            extra.column,
        ));
    }
    let windowed = analysis.sources.iter().any(|s| s.def.window.is_some());
    if windowed && select.joins.len() > 1 {
        let join = &select.joins[1];
        return Err(PlanError::new(
            "Joins of more than two windowed sources are not supported yet",
            join.line,
            join.column,
        ));
    }
    // The rows part of the joined row, built source by source: each source's columns
    // (pseudo columns included) under ksqlDB's `ALIAS_COLUMN` names.
    let mut rows: Vec<Column> = Vec::new();
    let mut joined: Vec<JoinedColumns> = Vec::new();
    let add_source = |s: &JoinedSource, rows: &mut Vec<Column>, joined: &mut Vec<JoinedColumns>| {
        let side = Scope::of_source(&s.def, Some(&s.alias));
        let mut qualifiers = vec![s.alias.clone()];
        if s.alias != s.def.name {
            qualifiers.push(s.def.name.clone());
        }
        // `*` names key columns first, then a windowed source's window bounds, then its
        // values, as ksqlDB orders a source's columns.
        let keys = s.def.schema.columns.iter().filter(|c| c.role.is_key());
        let values = s.def.schema.columns.iter().filter(|c| !c.role.is_key());
        let bounds: &[&str] = if s.def.window.is_some() {
            &[sluice_common::WINDOWSTART, sluice_common::WINDOWEND]
        } else {
            &[]
        };
        let star = keys
            .map(|c| c.name.as_str())
            .chain(bounds.iter().copied())
            .chain(values.map(|c| c.name.as_str()))
            .map(|n| format!("{}_{n}", s.alias))
            .collect();
        joined.push(JoinedColumns {
            qualifiers,
            prefix: s.alias.clone(),
            names: side.columns.iter().map(|(n, _)| n.clone()).collect(),
            star,
        });
        rows.extend(side.columns.into_iter().map(|(n, t)| Column {
            name: format!("{}_{n}", s.alias),
            data_type: t,
            role: ColumnRole::Value,
        }));
    };
    let rows_scope = |rows: &[Column], joined: &[JoinedColumns]| Scope {
        columns: rows
            .iter()
            .map(|c| (c.name.clone(), c.data_type.clone()))
            .collect(),
        qualifiers: joined.iter().flat_map(|j| j.qualifiers.clone()).collect(),
        joined: joined.to_vec(),
    };
    let first = &analysis.sources[0];
    add_source(first, &mut rows, &mut joined);
    let mut plan: Option<JoinPlan> = None;
    let mut left_is_table = first.def.kind == Table;
    // The last join's sides, for the result's key.
    let mut last: Option<(&SqlExpr, usize, &SqlExpr, sluice_common::DataType)> = None;
    for (i, join) in select.joins.iter().enumerate() {
        let right = &analysis.sources[i + 1];
        match (left_is_table, right.def.kind) {
            (false, Stream) if join.within.is_none() => {
                return err_on(
                    &join.on,
                    "Stream-Stream joins must have a WITHIN clause specified. None was provided. To learn about how to specify a WITHIN clause with a stream-stream join, please visit: https://docs.confluent.io/current/ksql/docs/syntax-reference.html#create-stream-as-select".into(),
                );
            }
            (false, Table) if join.within.is_some() => {
                return err_on(
                    &join.on,
                    "A window definition was provided for a Stream-Table join. These joins are not windowed. Please drop the window definition (ie. the WITHIN clause) and try to execute your join again.".into(),
                );
            }
            (true, Table) if join.within.is_some() => {
                return err_on(
                    &join.on,
                    "A window definition was provided for a Table-Table join. These joins are not windowed. Please drop the window definition (i.e. the WITHIN clause) and try to execute your Table-Table join again.".into(),
                );
            }
            _ => {}
        }
        let c = &analysis.conditions[i];
        let (first_side, second_side) = equality_sides(&join.on)?;
        // The side reading the source this join adds is its right side.
        let ((left_expr, left_src), right_expr) = if c.right == i + 1 {
            ((first_side, c.left), second_side)
        } else {
            ((second_side, c.right), first_side)
        };
        let foreign_key = i == 0
            && left_is_table
            && right.def.kind == Table
            && !is_key_column(left_expr, &first.def);
        // Windowed rows match on their windowed keys, so both sides must be joined on
        // their key, and the windows must be alike (ksqlDB cannot re-key them either).
        if windowed
            && (!is_key_column(left_expr, &analysis.sources[left_src].def)
                || !is_key_column(right_expr, &right.def)
                || analysis.sources[left_src].def.window != right.def.window)
        {
            return err_on(
                &join.on,
                "Implicit repartitioning of windowed sources is not supported. See https://github.com/confluentinc/ksql/issues/4385.".into(),
            );
        }
        let lk = Binder::plain(&rows_scope(&rows, &joined))
            .in_clause("JOIN ON")
            .bind(left_expr)?;
        let right_scope = Scope::of_source(&right.def, Some(&right.alias));
        let rk = Binder::plain(&right_scope)
            .in_clause("JOIN ON")
            .bind(right_expr)?;
        let key_type = lk.ty.clone().or(rk.ty.clone()).ok_or_else(|| {
            PlanError::new(
                "A join expression cannot be a bare NULL",
                join.line,
                join.column,
            )
        })?;
        add_source(right, &mut rows, &mut joined);
        let stage = JoinPlan {
            kind: match join.kind {
                JoinKind::Inner => JoinType::Inner,
                JoinKind::Left => JoinType::Left,
                JoinKind::Right => JoinType::Right,
                JoinKind::Full => JoinType::Full,
            },
            left: match plan.take() {
                None => JoinInput::Source(Box::new(first.def.clone())),
                Some(inner) => JoinInput::Join(Box::new(inner)),
            },
            right: right.def.clone(),
            left_key: lk.expr,
            right_key: rk.expr,
            within: join.within.as_ref().map(|w| sluice_plan::JoinWindow {
                before_ms: w.before_ms,
                after_ms: w.after_ms,
                grace_ms: w.grace_ms,
            }),
            foreign_key,
        };
        left_is_table = left_is_table && right.def.kind == Table;
        plan = Some(stage);
        last = Some((left_expr, left_src, right_expr, key_type));
    }
    let (Some(plan), Some((left_expr, left_src, right_expr, key_type))) = (plan, last) else {
        return Err(PlanError::at_name(
            "A join needs a JOIN clause",
            &select.from,
        ));
    };
    let join = select.joins.last().unwrap_or(&select.joins[0]);
    let right = &analysis.sources[analysis.sources.len() - 1];
    let foreign_key = plan.foreign_key;
    let synthetic_key = !foreign_key
        && (join.kind == JoinKind::Full
            || (crate::query::column_ref(left_expr).is_none()
                && crate::query::column_ref(right_expr).is_none()));
    let defs: Vec<&SourceDef> = analysis.sources.iter().map(|s| &s.def).collect();
    let synthetic = synthetic_key.then(|| synthetic_key_name(&defs));

    // The joined row: the result's key, then the rows part.
    let key_role = if plan.is_table() {
        ColumnRole::PrimaryKey
    } else {
        ColumnRole::Key
    };
    let mut columns: Vec<Column> = if foreign_key {
        first
            .def
            .schema
            .keys()
            .iter()
            .map(|k| Column {
                name: String::new(),
                data_type: k.data_type.clone(),
                role: key_role,
            })
            .collect()
    } else {
        vec![Column {
            name: synthetic.clone().unwrap_or_default(),
            data_type: key_type,
            role: key_role,
        }]
    };
    columns.extend(rows);
    let source = SourceDef {
        // Not a catalog source: it borrows its first input's id, which no other source has.
        id: first.def.id,
        name: analysis
            .sources
            .iter()
            .map(|s| s.alias.as_str())
            .chain(["JOIN"])
            .collect::<Vec<_>>()
            .join("_"),
        kind: if plan.is_table() { Table } else { Stream },
        schema: Schema::new(columns),
        topic: String::new(),
        key_format: first.def.key_format.clone(),
        value_format: first.def.value_format.clone(),
        timestamp_column: None,
        timestamp_format: None,
        headers: Vec::new(),
        written_by: None,
        sql: String::new(),
        read_only: true,
        // A join of windowed sources is windowed alike: its rows end with the bounds.
        window: first.def.window,
    };
    let mut scope = Scope::of_source(&source, None);
    scope.qualifiers = joined.iter().flat_map(|j| j.qualifiers.clone()).collect();
    scope.joined = joined;
    let mut key_columns = Vec::new();
    let mut key_texts = Vec::new();
    match &synthetic {
        _ if foreign_key => {
            for k in first.def.schema.keys() {
                if let Some(i) = scope.index_of(&format!("{}_{}", first.alias, k.name)) {
                    key_columns.push(i);
                    key_texts.push(format!("{}_{}", first.alias, k.name));
                }
            }
        }
        Some(k) => {
            key_columns.push(0);
            key_texts.push(k.clone());
        }
        None => {
            for (e, s) in [
                (left_expr, &analysis.sources[left_src]),
                (right_expr, right),
            ] {
                if let Some(c) = crate::query::column_ref(e)
                    && let Some(i) = scope.index_of(&format!("{}_{c}", s.alias))
                {
                    key_columns.push(i);
                    key_texts.push(format!("{}.{c}", s.alias));
                }
            }
        }
    }
    // ksqlDB checks the join key where it builds the join, under the join key's name.
    if !foreign_key && crate::ddl::contains_map(&source.schema.columns[0].data_type) {
        let key_name = match (&synthetic, key_columns.first()) {
            (Some(k), _) => k.clone(),
            (None, Some(&i)) => source.schema.columns[i].name.clone(),
            (None, None) => String::new(),
        };
        return Err(PlanError::at_name(
            format!(
                "Map keys, including types that contain maps, are not supported as they may lead to unexpected behavior due to inconsistent serialization. Key column name: `{key_name}`. Column type: {}. See https://github.com/confluentinc/ksql/issues/6621 for more.",
                source.schema.columns[0].data_type
            ),
            &select.from,
        ));
    }
    Ok(PlannedJoin {
        source,
        scope,
        plan,
        key_columns,
        key_texts,
        synthetic,
    })
}

/// ksqlDB's name for a synthetic join key: `ROWKEY`, or `ROWKEY_<n>` with the first `n`
/// no joined source has a column of that name.
fn synthetic_key_name(sources: &[&SourceDef]) -> String {
    let taken = |name: &str| sources.iter().any(|s| s.schema.index_of(name).is_some());
    if !taken("ROWKEY") {
        return "ROWKEY".into();
    }
    (1u64..)
        .map(|n| format!("ROWKEY_{n}"))
        .find(|n| !taken(n))
        .unwrap_or_else(|| "ROWKEY".into())
}

/// Whether `e` is a reference to `def`'s key, its one key column.
fn is_key_column(e: &SqlExpr, def: &SourceDef) -> bool {
    let keys: Vec<&str> = def.schema.keys().iter().map(|c| c.name.as_str()).collect();
    crate::query::column_ref(e).is_some_and(|c| keys == [c.as_str()])
}

fn alias_of(source: &Name, alias: Option<&Name>) -> String {
    alias.unwrap_or(source).value.clone()
}

fn err_on<T>(e: &SqlExpr, message: String) -> Result<T> {
    crate::bind::err_at(e, message)
}

fn position(e: &SqlExpr) -> (u64, u64) {
    let s = e.span().start;
    (s.line, s.column)
}

fn at_pos<T>((line, column): (u64, u64), message: String) -> Result<T> {
    Err(PlanError::new(message, line, column))
}

/// The two sides of the ON condition, which must be one equality.
fn equality_sides(on: &SqlExpr) -> Result<(&SqlExpr, &SqlExpr)> {
    let on_inner = unparen(on);
    let SqlExpr::BinaryOp { left, op, right } = on_inner else {
        return err_on(
            on,
            format!("Unsupported join expression: {}", ksql_text(on)),
        );
    };
    let is_eq = |e: &SqlExpr| {
        matches!(
            unparen(e),
            SqlExpr::BinaryOp {
                op: BinaryOperator::Eq,
                ..
            }
        )
    };
    match op {
        BinaryOperator::Eq => Ok((left, right)),
        BinaryOperator::And | BinaryOperator::Or if is_eq(left) && is_eq(right) => err_on(
            on,
            format!(
                "Invalid join condition: joins on multiple conditions are not yet supported. Got {}.",
                ksql_text(on)
            ),
        ),
        BinaryOperator::NotEq
        | BinaryOperator::Lt
        | BinaryOperator::LtEq
        | BinaryOperator::Gt
        | BinaryOperator::GtEq => err_on(on, "Only equality join criteria is supported.".into()),
        _ => err_on(
            on,
            format!("Unsupported join expression: {}", ksql_text(on)),
        ),
    }
}

fn unparen(mut e: &SqlExpr) -> &SqlExpr {
    while let SqlExpr::Nested(inner) = e {
        e = inner;
    }
    e
}

/// The one source `side` reads: every column it names must resolve (qualified by a
/// source's alias or name, or unambiguously unqualified), and all to the same source.
fn only_source(side: &SqlExpr, on: &SqlExpr, sources: &[JoinedSource]) -> Result<usize> {
    let mut used: Vec<usize> = Vec::new();
    for (at, qualifier, column) in column_refs(side) {
        let i = resolve(at, qualifier.as_deref(), &column, sources)?;
        if !used.contains(&i) {
            used.push(i);
        }
    }
    match used.as_slice() {
        [one] => Ok(*one),
        _ => err_on(
            side,
            format!(
                "Invalid comparison expression '{}' in join '{}'. Each side of the join comparision must contain references from exactly one source.",
                ksql_text(side),
                ksql_text(on)
            ),
        ),
    }
}

fn resolve(
    at: (u64, u64),
    qualifier: Option<&str>,
    column: &str,
    sources: &[JoinedSource],
) -> Result<usize> {
    let has = |s: &JoinedSource| {
        s.def.schema.columns.iter().any(|c| c.name == column)
            || is_pseudo_column(column, s.def.window.is_some())
    };
    match qualifier {
        Some(q) => {
            let Some(i) = sources.iter().position(|s| s.alias == q) else {
                return at_pos(
                    at,
                    format!(
                        "Failed to prepare statement: '{q}' is not a valid stream/table name or alias."
                    ),
                );
            };
            if !has(&sources[i]) {
                return at_pos(
                    at,
                    format!("JOIN ON column '{q}.{column}' cannot be resolved."),
                );
            }
            Ok(i)
        }
        None => {
            let found: Vec<usize> = (0..sources.len()).filter(|&i| has(&sources[i])).collect();
            match found.as_slice() {
                [one] => Ok(*one),
                [] => at_pos(at, format!("JOIN ON column '{column}' cannot be resolved.")),
                // ksqlDB finds this while preparing the statement, and says so before
                // the position.
                many => Err(PlanError::new(
                    format!(
                        "Exception while preparing statement: Line: {}, Col: {}: Column '{column}' is ambiguous. Could be {}.",
                        at.0,
                        at.1,
                        many.iter()
                            .map(|&i| format!("{}.{column}", sources[i].alias))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                    0,
                    0,
                )),
            }
        }
    }
}

/// ROWTIME, ROWPARTITION and ROWOFFSET, which every source row has, and a windowed
/// source's window bounds.
fn is_pseudo_column(name: &str, windowed: bool) -> bool {
    use sluice_common::{ROWOFFSET, ROWPARTITION, ROWTIME, WINDOWEND, WINDOWSTART};
    [ROWTIME, ROWPARTITION, ROWOFFSET].contains(&name)
        || (windowed && [WINDOWSTART, WINDOWEND].contains(&name))
}

/// The column references in `e` (expression, qualifier, column name), leaving out struct
/// field names (`s->f`) and lambda parameters, which are not columns.
fn column_refs(e: &SqlExpr) -> Vec<((u64, u64), Option<String>, String)> {
    let mut not_columns: Vec<*const SqlExpr> = Vec::new();
    let mut params: Vec<String> = Vec::new();
    let mut qualified: Vec<((u64, u64), String, String)> = Vec::new();
    let _ = sqlparser::ast::visit_expressions(e, |x| {
        match x {
            SqlExpr::BinaryOp {
                op: BinaryOperator::Arrow,
                right,
                ..
            } => not_columns.push(right.as_ref() as *const SqlExpr),
            // `q.col[1]`: sqlparser reads the qualifier as the root and `col` as a field.
            SqlExpr::CompoundFieldAccess { root, access_chain } => {
                if let (SqlExpr::Identifier(q), Some(sqlparser::ast::AccessExpr::Dot(c))) =
                    (root.as_ref(), access_chain.first())
                    && let SqlExpr::Identifier(c) = c
                {
                    not_columns.push(root.as_ref() as *const SqlExpr);
                    if let Some(sqlparser::ast::AccessExpr::Dot(d)) = access_chain.first() {
                        not_columns.push(d as *const SqlExpr);
                    }
                    qualified.push((position(x), ident_name(q), ident_name(c)));
                }
            }
            SqlExpr::Lambda(l) => match &l.params {
                sqlparser::ast::OneOrManyWithParens::One(p) => params.push(ident_name(&p.name)),
                sqlparser::ast::OneOrManyWithParens::Many(ps) => {
                    params.extend(ps.iter().map(|p| ident_name(&p.name)))
                }
            },
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    let mut out: Vec<((u64, u64), Option<String>, String)> = qualified
        .into_iter()
        .map(|(at, q, c)| (at, Some(q), c))
        .collect();
    let _ = sqlparser::ast::visit_expressions(e, |x| {
        if !not_columns.contains(&(x as *const SqlExpr)) {
            match x {
                SqlExpr::Identifier(i) => {
                    let name = ident_name(i);
                    if !params.contains(&name) {
                        out.push((position(x), None, name));
                    }
                }
                SqlExpr::CompoundIdentifier(parts) if parts.len() == 2 => {
                    out.push((
                        position(x),
                        Some(ident_name(&parts[0])),
                        ident_name(&parts[1]),
                    ));
                }
                _ => {}
            }
        }
        ControlFlow::<()>::Continue(())
    });
    out
}

/// ksqlDB's `throwOnIncompatibleSourceWindowing`.
fn compatible_windowing(l: &JoinedSource, r: &JoinedSource, on: &SqlExpr) -> Result<()> {
    use sluice_common::WindowKind::Session;
    let (lw, rw) = (l.def.window.map(|w| w.kind), r.def.window.map(|w| w.kind));
    match (lw, rw) {
        (None, None) => Ok(()),
        (Some(a), Some(b)) if (a == Session) == (b == Session) => Ok(()),
        (Some(a), Some(b)) => err_on(
            on,
            format!(
                "Incompatible windowed sources.\nLeft source: {a}\nRight source: {b}\n\
                 Session windowed sources can only be joined to other session windowed sources, \
                 and may still not result in expected behaviour as session bounds must be an exact \
                 match for the join to work\n\
                 Hopping and tumbling windowed sources can only be joined to other hopping and \
                 tumbling windowed sources"
            ),
        ),
        (a, b) => {
            let says = |w: Option<sluice_common::WindowKind>| {
                w.map_or_else(|| "not".to_string(), |k| k.to_string())
            };
            err_on(
                on,
                format!(
                    "Can not join windowed source to non-windowed source.\n`{}` is {} windowed\n`{}` is {} windowed",
                    l.alias,
                    says(a),
                    r.alias,
                    says(b)
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_common::{SourceKind, WindowKind, WindowSpec};
    use std::collections::BTreeMap;

    fn catalog() -> BTreeMap<String, SourceDef> {
        let mut c = BTreeMap::new();
        for (name, kind) in [
            ("S", SourceKind::Stream),
            ("S2", SourceKind::Stream),
            ("T", SourceKind::Table),
            ("T2", SourceKind::Table),
            ("T3", SourceKind::Table),
        ] {
            c.insert(name.to_string(), crate::tests::def(name, kind));
        }
        let mut w = crate::tests::def("W", SourceKind::Table);
        w.window = Some(WindowSpec {
            kind: WindowKind::Session,
            size_ms: None,
        });
        c.insert("W".into(), w);
        let mut k = crate::tests::def("KF", SourceKind::Stream);
        k.value_format = sluice_common::FormatSpec::new(FormatKind::Kafka);
        c.insert("KF".into(), k);
        c
    }

    fn analyzed(sql: &str) -> Result<JoinAnalysis> {
        let select = match sluice_sql::parse(sql).unwrap().remove(0).kind {
            sluice_sql::StatementKind::Select(s) => *s,
            other => panic!("{other:?}"),
        };
        analyze(&select, &catalog())
    }

    fn error(sql: &str) -> String {
        analyzed(sql).unwrap_err().message
    }

    #[test]
    fn sides_resolve_to_their_sources_whichever_way_round() {
        let a = analyzed("SELECT * FROM s a JOIN t b ON b.k = a.k EMIT CHANGES;").unwrap();
        let aliases: Vec<&str> = a.sources.iter().map(|s| s.alias.as_str()).collect();
        assert_eq!(aliases, ["A", "B"]);
        assert_eq!((a.conditions[0].left, a.conditions[0].right), (1, 0));
        // Unaliased sources are qualified by their names; expressions may wrap columns.
        let a = analyzed(
            "SELECT * FROM s JOIN t ON ABS(s.k) = t.k JOIN s2 ON s2.k = t.k EMIT CHANGES;",
        )
        .unwrap();
        assert_eq!(a.sources.len(), 3);
        assert_eq!((a.conditions[1].left, a.conditions[1].right), (2, 1));
    }

    #[test]
    fn ksqldb_refuses_these_joins_with_these_messages() {
        let cases = [
            (
                "SELECT * FROM s JOIN s ON s.k = s.k EMIT CHANGES;",
                "Can not join 'S' to 'S': self joins are not yet supported.",
            ),
            (
                "SELECT * FROM s JOIN t ON s.k = t.k JOIN s x ON x.k = s.k EMIT CHANGES;",
                "N-way joins do not support multiple occurrences of the same source. Source: 'S'.",
            ),
            (
                "SELECT * FROM s JOIN t ON s.k = t.k AND s.k = t.k EMIT CHANGES;",
                "Invalid join condition: joins on multiple conditions are not yet supported. Got ((S.K = T.K) AND (S.K = T.K)).",
            ),
            (
                "SELECT * FROM s JOIN t ON s.k > t.k EMIT CHANGES;",
                "Only equality join criteria is supported.",
            ),
            (
                "SELECT * FROM s JOIN t ON s.k = 0 EMIT CHANGES;",
                "Invalid comparison expression '0' in join '(S.K = 0)'. Each side of the join comparision must contain references from exactly one source.",
            ),
            (
                "SELECT * FROM s JOIN t ON s.k + t.k = t.k EMIT CHANGES;",
                "Invalid comparison expression '(S.K + T.K)' in join '((S.K + T.K) = T.K)'. Each side of the join comparision must contain references from exactly one source.",
            ),
            (
                "SELECT * FROM s JOIN t ON s.nope = t.k EMIT CHANGES;",
                "JOIN ON column 'S.NOPE' cannot be resolved.",
            ),
            (
                "SELECT * FROM s JOIN t ON nope.k = t.k EMIT CHANGES;",
                "Failed to prepare statement: 'NOPE' is not a valid stream/table name or alias.",
            ),
            (
                "SELECT * FROM s JOIN t ON k = nope.k EMIT CHANGES;",
                "Failed to prepare statement: 'NOPE' is not a valid stream/table name or alias.",
            ),
            (
                "SELECT * FROM s JOIN t ON k = t.k EMIT CHANGES;",
                "Exception while preparing statement: Line: 1, Col: 27: Column 'K' is ambiguous. Could be S.K or T.K.",
            ),
            (
                "SELECT * FROM s JOIN t ON s.k = s.k EMIT CHANGES;",
                "Each side of the join must reference exactly one source and not the same source. Left side references `S` and right references `S`",
            ),
            (
                "SELECT * FROM s JOIN t ON s.k = t.k JOIN s2 ON s.k = t.k EMIT CHANGES;",
                "A join criteria is expected to reference the source (`S2`) in the FROM clause, instead the right source references `T` and the left source references `S`",
            ),
            (
                "SELECT * FROM w JOIN t ON w.k = t.k EMIT CHANGES;",
                "Can not join windowed source to non-windowed source.\n`W` is SESSION windowed\n`T` is not windowed",
            ),
            (
                "SELECT * FROM s JOIN t ON CAST(s.k AS STRING) = t.k EMIT CHANGES;",
                "Invalid join condition: types don't match. Got CAST(S.K AS STRING){STRING} = T.K{INTEGER}.",
            ),
            (
                "SELECT * FROM s JOIN t ON t.k = s.k * 2.5 EMIT CHANGES;",
                "Invalid join condition: types don't match. Got T.K{INTEGER} = (S.K * 2.5){DECIMAL(13, 1)}.",
            ),
            (
                "SELECT * FROM s FULL JOIN t ON s.k = t.k EMIT CHANGES;",
                "Invalid join type: full-outer join not supported for stream-table join. Got S OUTER T.",
            ),
            (
                "SELECT * FROM s JOIN t ON s.k = t.v EMIT CHANGES;",
                "Invalid join condition: stream-table joins require to join on the table's primary key. Got S.K = T.V.",
            ),
            (
                "SELECT * FROM t LEFT JOIN s ON t.k = s.k EMIT CHANGES;",
                "Invalid join order: table-stream joins are not supported; only stream-table joins. Got T LEFT S.",
            ),
            (
                "SELECT * FROM t JOIN t2 ON t.k = t2.v EMIT CHANGES;",
                "Invalid join condition: table-table joins require to join on the primary key of the right input table. Got T.K = T2.V.",
            ),
            (
                "SELECT * FROM t RIGHT JOIN t2 ON t.v = t2.k EMIT CHANGES;",
                "RIGHT OUTER JOIN on a foreign key is not supported",
            ),
            (
                "SELECT * FROM t FULL OUTER JOIN t2 ON t.v = t2.k EMIT CHANGES;",
                "Invalid join type: full-outer join not supported for foreign-key table-table join. Got T OUTER T2.",
            ),
            (
                "SELECT * FROM t JOIN t2 ON t.k = t2.k JOIN t3 ON t2.v = t3.k EMIT CHANGES;",
                "Invalid join condition: foreign-key table-table joins are not supported as part of n-way joins. Got T2.V = T3.K.",
            ),
            (
                "SELECT * FROM s JOIN kf ON s.k = kf.k EMIT CHANGES;",
                "Source(s) KF are using the 'KAFKA' value format. This format does not yet support JOIN.",
            ),
        ];
        for (sql, message) in cases {
            assert_eq!(error(sql), message, "{sql}");
        }
        let e = analyzed("SELECT * FROM s\nJOIN t ON s.k = t.nope EMIT CHANGES;").unwrap_err();
        assert_eq!((e.line, e.column), (2, 17), "{e}");
    }
}

#[cfg(test)]
mod planning {
    use super::tests_support::*;

    #[test]
    fn the_left_join_column_becomes_the_key_and_shared_names_get_their_alias() {
        // S and T both have K and V: projected, each is named after its source (a column
        // only one source has keeps its name, as the QTT corpus checks).
        assert_eq!(
            schema("CREATE STREAM O AS SELECT s.k, s.v, t.v FROM s JOIN t ON s.k = t.k;"),
            "`S_K` INTEGER KEY, `S_V` INTEGER, `T_V` INTEGER"
        );
        // With both join columns projected, the left one is the key wherever it is.
        assert_eq!(
            schema("CREATE STREAM O AS SELECT t.k, s.k, s.v FROM s LEFT JOIN t ON s.k = t.k;"),
            "`S_K` INTEGER KEY, `T_K` INTEGER, `S_V` INTEGER"
        );
        // `*` names every column after its source, keys first.
        assert_eq!(
            schema("CREATE TABLE O AS SELECT * FROM t JOIN t2 ON t.k = t2.k;"),
            "`T_K` INTEGER PRIMARY KEY, `T_V` INTEGER, `T2_K` INTEGER, `T2_V` INTEGER"
        );
    }

    #[test]
    fn full_outer_joins_have_a_synthetic_key_the_projection_must_include() {
        assert_eq!(
            schema("CREATE TABLE O AS SELECT ROWKEY AS id, t.v FROM t FULL JOIN t2 ON t.k = t2.k;"),
            "`ID` INTEGER PRIMARY KEY, `T_V` INTEGER"
        );
        let e = error("CREATE TABLE O AS SELECT t.v FROM t FULL JOIN t2 ON t.k = t2.k;");
        assert!(
            e.contains("must include the join expression ROWKEY in its projection"),
            "{e}"
        );
        let e = error("CREATE STREAM O AS SELECT s.v FROM s JOIN t ON s.k = t.k;");
        assert!(
            e.contains("must include the join expressions S.K or T.K in its projection"),
            "{e}"
        );
    }

    #[test]
    fn foreign_key_joins_are_keyed_by_the_left_tables_key() {
        assert_eq!(
            schema("CREATE TABLE O AS SELECT t.k, t2.v FROM t JOIN t2 ON t.v = t2.k;"),
            "`T_K` INTEGER PRIMARY KEY, `T2_V` INTEGER"
        );
        let e = error("CREATE TABLE O AS SELECT t2.v FROM t JOIN t2 ON t.v = t2.k;");
        assert!(
            e.starts_with("Primary key column missing in projection.") && e.contains("`K`"),
            "{e}"
        );
    }

    #[test]
    fn n_way_joins_nest_and_key_by_their_last_join() {
        let planned = plan(
            "CREATE STREAM O AS SELECT s.k, t.v AS tv, t2.v AS t2v FROM s JOIN t ON s.k = t.k JOIN t2 ON s.k = t2.k;",
        )
        .unwrap();
        let join = planned.plan.join.as_ref().unwrap();
        assert_eq!(join.depth(), 1);
        let names: Vec<&str> = join.sources().iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["S", "T", "T2"]);
        assert_eq!(
            schema(
                "CREATE STREAM O AS SELECT s.k, t.v AS tv, t2.v AS t2v FROM s JOIN t ON s.k = t.k JOIN t2 ON s.k = t2.k;"
            ),
            "`S_K` INTEGER KEY, `TV` INTEGER, `T2V` INTEGER"
        );
        // The key is the last join's: here T2.K or S.K.
        let e = error(
            "CREATE STREAM O AS SELECT t.v FROM s JOIN t ON s.k = t.k JOIN t2 ON s.k = t2.k;",
        );
        assert!(e.contains("join expressions S.K or T2.K"), "{e}");
    }
}

#[cfg(test)]
mod tests_support {
    use crate::query::{NewIds, plan_create_as};
    use crate::{PlanError, Result};
    use sluice_common::SourceKind;
    use std::collections::BTreeMap;

    pub(super) fn plan(sql: &str) -> Result<crate::query::PlannedQuery> {
        let mut catalog = BTreeMap::new();
        for (name, kind) in [
            ("S", SourceKind::Stream),
            ("T", SourceKind::Table),
            ("T2", SourceKind::Table),
        ] {
            catalog.insert(name.to_string(), crate::tests::def(name, kind));
        }
        let stmt = sluice_sql::parse(sql).unwrap().remove(0);
        let sluice_sql::StatementKind::CreateAs {
            kind,
            name,
            properties,
            query,
            ..
        } = &stmt.kind
        else {
            panic!("not a CREATE ... AS SELECT: {sql}");
        };
        let ids = NewIds {
            sink_id: 100,
            query_num: 101,
            query_id: "Q".into(),
        };
        plan_create_as(
            ids,
            *kind,
            name,
            properties,
            query,
            &catalog,
            sql,
            &crate::SessionConfig::default(),
        )
    }

    pub(super) fn schema(sql: &str) -> String {
        let planned = plan(sql).unwrap_or_else(|e: PlanError| panic!("{sql}: {}", e.message));
        planned
            .sink
            .schema
            .columns
            .iter()
            .map(|c| {
                let role = match c.role {
                    sluice_common::ColumnRole::Key => " KEY",
                    sluice_common::ColumnRole::PrimaryKey => " PRIMARY KEY",
                    _ => "",
                };
                format!("`{}` {}{role}", c.name, c.data_type)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(super) fn error(sql: &str) -> String {
        plan(sql).map(|_| ()).unwrap_err().message
    }
}
