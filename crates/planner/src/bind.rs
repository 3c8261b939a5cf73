//! Binding: sqlparser expressions → typed engine expressions over a known row layout.

use crate::coerce;
use crate::{PlanError, PlanErrorKind, Result};
use sluice_common::{ArithOp, DataType, ROWOFFSET, ROWPARTITION, ROWTIME, SourceDef, Value};
use sluice_expr::{AggCall, AggKind, BinaryOp, Expr, HigherOrder, Lambda};
use sluice_sql::Expr as SqlExpr;
use sqlparser::ast::{
    AccessExpr, BinaryOperator, CastKind, DataType as SqlType, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, InTarget, Spanned, Subscript, UnaryOperator, Value as SqlValue,
};

/// The columns an expression can see, by position.
#[derive(Debug, Clone)]
pub struct Scope {
    pub columns: Vec<(String, DataType)>,
    /// Names that may qualify a column (`source.col`): the source name and its alias.
    pub qualifiers: Vec<String>,
    /// A joined row's sources, whose columns it holds as `ALIAS_COLUMN` (ksqlDB's names
    /// for them): `alias.column`, and `column` when one source alone has it, resolve to
    /// those. Empty outside joins.
    pub joined: Vec<JoinedColumns>,
}

/// One source of a joined row: the names that qualify it, the prefix of its columns in
/// the row, and its own column names.
#[derive(Debug, Clone)]
pub struct JoinedColumns {
    pub qualifiers: Vec<String>,
    pub prefix: String,
    /// Its columns' own names, pseudo columns included.
    pub names: Vec<String>,
    /// What `*` selects of it: its declared columns, keys first, by their joined names.
    pub star: Vec<String>,
}

impl JoinedColumns {
    fn qualified_by(&self, q: &str) -> bool {
        self.qualifiers.iter().any(|x| x == q)
    }

    fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }
}

/// The joined sources that have a column `name`.
pub(crate) fn holders<'a>(
    joined: &'a [JoinedColumns],
    name: &'a str,
) -> impl Iterator<Item = &'a JoinedColumns> + 'a {
    joined.iter().filter(move |j| j.has(name))
}

impl Scope {
    /// A source row: declared columns, then ROWTIME, ROWPARTITION, ROWOFFSET.
    pub fn of_source(def: &SourceDef, alias: Option<&str>) -> Scope {
        let mut columns: Vec<(String, DataType)> = def
            .schema
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.data_type.clone()))
            .collect();
        columns.push((ROWTIME.into(), DataType::BigInt));
        columns.push((ROWPARTITION.into(), DataType::Int));
        columns.push((ROWOFFSET.into(), DataType::BigInt));
        if def.window.is_some() {
            columns.push((sluice_common::WINDOWSTART.into(), DataType::BigInt));
            columns.push((sluice_common::WINDOWEND.into(), DataType::BigInt));
        }
        let mut qualifiers = vec![def.name.clone()];
        qualifiers.extend(alias.map(str::to_string));
        Scope {
            columns,
            qualifiers,
            joined: Vec::new(),
        }
    }

    pub fn empty() -> Scope {
        Scope {
            columns: Vec::new(),
            qualifiers: Vec::new(),
            joined: Vec::new(),
        }
    }

    /// In a joined row, the sources an unqualified `name` could be read from when more
    /// than one has it (`A.NAME or B.NAME`), and the row has no column of that very name.
    pub fn ambiguous(&self, name: &str) -> Option<String> {
        if self.joined.is_empty() || self.index_of(name).is_some() {
            return None;
        }
        let sources: Vec<String> = holders(&self.joined, name)
            .map(|j| format!("{}.{name}", j.prefix))
            .collect();
        (sources.len() > 1).then(|| sources.join(" or "))
    }

    /// The name a column reference has in this scope: in a joined row, `q.c` is the
    /// qualified source's `Q_C`, and `c` that of the one source holding a column `c`
    /// (unless the row has a column of that very name, such as ROWTIME or a synthetic
    /// key); elsewhere the column name itself. `None`: `q` qualifies no source here.
    pub fn resolve(&self, qualifier: Option<&str>, name: &str) -> Option<String> {
        if self.joined.is_empty() {
            return match qualifier {
                Some(q) if !self.qualifiers.iter().any(|x| x == q) => None,
                _ => Some(name.to_string()),
            };
        }
        match qualifier {
            Some(q) => self
                .joined
                .iter()
                .find(|j| j.qualified_by(q))
                .map(|j| format!("{}_{name}", j.prefix)),
            None if self.index_of(name).is_some() => Some(name.to_string()),
            None => {
                let mut found = holders(&self.joined, name);
                match (found.next(), found.next()) {
                    (Some(j), None) => Some(format!("{}_{name}", j.prefix)),
                    _ => Some(name.to_string()),
                }
            }
        }
    }

    /// The last column of that name: a lambda parameter shadows an outer column.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.columns.iter().rposition(|(n, _)| n == name)
    }
}

/// A bound expression and its type; `None` is the type of a bare NULL.
#[derive(Debug, Clone)]
pub struct Bound {
    pub expr: Expr,
    pub ty: Option<DataType>,
}

/// Normalizes an identifier as ksqlDB does: unquoted upper-cased, quoted kept.
pub fn ident_name(i: &Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_ascii_uppercase()
    }
}

/// An expression as ksqlDB prints it in messages and compares GROUP BY items: names
/// upper-cased, binary operations in parentheses, redundant parentheses dropped.
pub fn ksql_text(e: &SqlExpr) -> String {
    ksql_text_qualified(e, None)
}

/// [`ksql_text`] with bare column names qualified by `qualifier` (`INPUT.ID`), as ksqlDB
/// prints expressions after analysis.
pub fn ksql_text_qualified(e: &SqlExpr, qualifier: Option<&str>) -> String {
    let ksql_text = |x: &SqlExpr| ksql_text_qualified(x, qualifier);
    let join = |xs: &mut dyn Iterator<Item = &SqlExpr>| {
        xs.map(|x| ksql_text_qualified(x, qualifier))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // ksqlDB's ExpressionFormatter wraps a negated predicate as `(NOT ...)`.
    let not = |negated: bool, text: String| {
        if negated {
            format!("(NOT {text})")
        } else {
            text
        }
    };
    match e {
        SqlExpr::Identifier(i) => match qualifier {
            Some(q) => format!("{q}.{}", ident_name(i)),
            None => ident_name(i),
        },
        SqlExpr::CompoundIdentifier(parts) => {
            parts.iter().map(ident_name).collect::<Vec<_>>().join(".")
        }
        SqlExpr::Nested(inner) => ksql_text(inner),
        // Literals as ksqlDB prints them: text kept as written, booleans and NULL in
        // lower case.
        SqlExpr::Value(v) => match &v.value {
            SqlValue::Boolean(b) => b.to_string(),
            SqlValue::Null => "null".to_string(),
            other => other.to_string(),
        },
        // `s->f`: the field name escaped as a column name would be.
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::Arrow,
            right,
        } => match right.as_ref() {
            SqlExpr::Identifier(f) => format!("{}->{}", ksql_text(left), ident_name(f)),
            other => format!("{}->{}", ksql_text(left), ksql_text(other)),
        },
        SqlExpr::BinaryOp { left, op, right } => {
            let op = match op {
                BinaryOperator::NotEq => "<>".to_string(),
                other => other.to_string(),
            };
            format!("({} {op} {})", ksql_text(left), ksql_text(right))
        }
        SqlExpr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => format!("(NOT {})", ksql_text(expr)),
        SqlExpr::UnaryOp { op, expr } => {
            let value = ksql_text(expr);
            // A space keeps `- -1` from reading as a comment.
            let sep = if value.starts_with('-') { " " } else { "" };
            format!("{op}{sep}{value}")
        }
        SqlExpr::IsNull(x) => format!("({} IS NULL)", ksql_text(x)),
        SqlExpr::IsNotNull(x) => format!("({} IS NOT NULL)", ksql_text(x)),
        SqlExpr::Between {
            expr,
            negated,
            low,
            high,
        } => not(
            *negated,
            format!(
                "({} BETWEEN {} AND {})",
                ksql_text(expr),
                ksql_text(low),
                ksql_text(high)
            ),
        ),
        SqlExpr::In {
            expr,
            target: InTarget::List(list),
            negated,
            ..
        } => not(
            *negated,
            format!("({} IN ({}))", ksql_text(expr), join(&mut list.iter())),
        ),
        SqlExpr::Like {
            negated,
            expr,
            pattern,
            escape_char,
            ..
        } => not(
            *negated,
            format!(
                "({} LIKE {}{})",
                ksql_text(expr),
                ksql_text(pattern),
                escape_char
                    .as_ref()
                    .map(|c| format!(" ESCAPE {c}"))
                    .unwrap_or_default()
            ),
        ),
        SqlExpr::Cast {
            expr, data_type, ..
        } => format!("CAST({} AS {data_type})", ksql_text(expr)),
        SqlExpr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            let mut parts = vec!["CASE".to_string()];
            parts.extend(operand.iter().map(|o| ksql_text(o)));
            for c in conditions {
                parts.push(format!(
                    "WHEN {} THEN {}",
                    ksql_text(&c.condition),
                    ksql_text(&c.result)
                ));
            }
            if let Some(e) = else_result {
                parts.push(format!("ELSE {}", ksql_text(e)));
            }
            parts.push("END".to_string());
            format!("({})", parts.join(" "))
        }
        SqlExpr::Array(arr) => format!("ARRAY[{}]", join(&mut arr.elem.iter())),
        SqlExpr::CompoundFieldAccess { root, access_chain } => {
            let mut text = ksql_text(root);
            for a in access_chain {
                match a {
                    AccessExpr::Subscript(Subscript::Index { index }) => {
                        text = format!("{text}[{}]", ksql_text(index));
                    }
                    AccessExpr::Dot(SqlExpr::Identifier(f)) => {
                        text = format!("{text}->{}", ident_name(f));
                    }
                    other => text = format!("{text}{}", other.to_string().to_ascii_uppercase()),
                }
            }
            text
        }
        SqlExpr::Function(f) => {
            let name = f.name.to_string().to_ascii_uppercase();
            let constructor = matches!(name.as_str(), "MAP" | "STRUCT");
            let args = match &f.args {
                FunctionArguments::List(l) => l
                    .args
                    .iter()
                    .map(|a| match a {
                        // MAP(k:=v) and STRUCT(name:=v), as ksqlDB prints constructors.
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::BinaryOp {
                            left,
                            op: BinaryOperator::Assignment,
                            right,
                        })) if constructor => {
                            let key = match left.as_ref() {
                                SqlExpr::Identifier(i) if name == "STRUCT" => ident_name(i),
                                other => ksql_text(other),
                            };
                            format!("{key}:={}", ksql_text(right))
                        }
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => ksql_text(x),
                        other => other.to_string().to_ascii_uppercase(),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => String::new(),
            };
            format!("{name}({args})")
        }
        SqlExpr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            let mut args = vec![ksql_text(expr)];
            args.extend(substring_from.iter().map(|x| ksql_text(x)));
            args.extend(substring_for.iter().map(|x| ksql_text(x)));
            format!("SUBSTRING({})", args.join(", "))
        }
        other => other.to_string().to_ascii_uppercase(),
    }
}

/// The first aggregate call inside an expression (itself included), as written.
pub(crate) fn find_aggregate(e: &SqlExpr) -> Option<&sqlparser::ast::Function> {
    match e {
        SqlExpr::Function(f) => {
            let name = f.name.to_string().to_ascii_uppercase();
            if AggKind::from_name(&name, false).is_some() {
                return Some(f);
            }
            match &f.args {
                FunctionArguments::List(l) => l.args.iter().find_map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => find_aggregate(x),
                    _ => None,
                }),
                _ => None,
            }
        }
        SqlExpr::BinaryOp { left, right, .. } => {
            find_aggregate(left).or_else(|| find_aggregate(right))
        }
        SqlExpr::UnaryOp { expr, .. }
        | SqlExpr::Nested(expr)
        | SqlExpr::IsNull(expr)
        | SqlExpr::IsNotNull(expr)
        | SqlExpr::Cast { expr, .. } => find_aggregate(expr),
        SqlExpr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => operand
            .as_deref()
            .and_then(find_aggregate)
            .or_else(|| {
                conditions.iter().find_map(|c| {
                    find_aggregate(&c.condition).or_else(|| find_aggregate(&c.result))
                })
            })
            .or_else(|| else_result.as_deref().and_then(find_aggregate)),
        // Special syntax of ordinary functions and predicates: look inside them too.
        SqlExpr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => find_aggregate(expr)
            .or_else(|| substring_from.as_deref().and_then(find_aggregate))
            .or_else(|| substring_for.as_deref().and_then(find_aggregate)),
        SqlExpr::Trim { expr, .. } => find_aggregate(expr),
        SqlExpr::In {
            expr,
            target: InTarget::List(list),
            ..
        } => find_aggregate(expr).or_else(|| list.iter().find_map(find_aggregate)),
        SqlExpr::Between {
            expr, low, high, ..
        } => find_aggregate(expr)
            .or_else(|| find_aggregate(low))
            .or_else(|| find_aggregate(high)),
        SqlExpr::Like { expr, pattern, .. } | SqlExpr::ILike { expr, pattern, .. } => {
            find_aggregate(expr).or_else(|| find_aggregate(pattern))
        }
        SqlExpr::IsDistinctFrom(a, b) | SqlExpr::IsNotDistinctFrom(a, b) => {
            find_aggregate(a).or_else(|| find_aggregate(b))
        }
        SqlExpr::Tuple(items) => items.iter().find_map(find_aggregate),
        SqlExpr::Array(a) => a.elem.iter().find_map(find_aggregate),
        SqlExpr::CompoundFieldAccess { root, access_chain } => find_aggregate(root).or_else(|| {
            access_chain.iter().find_map(|a| match a {
                AccessExpr::Subscript(Subscript::Index { index }) => find_aggregate(index),
                _ => None,
            })
        }),
        _ => None,
    }
}

/// An aggregate call as ksqlDB prints it: `COUNT(*)` is its `COUNT(ROWTIME)`.
pub(crate) fn aggregate_text(f: &sqlparser::ast::Function) -> String {
    let text = ksql_text(&SqlExpr::Function(f.clone()));
    match text.as_str() {
        "COUNT(*)" | "COUNT()" => "COUNT(ROWTIME)".to_string(),
        _ => text,
    }
}

/// The position of an expression's leftmost operand, found without recursion.
pub(crate) fn leftmost_position(mut e: &SqlExpr) -> (u64, u64) {
    loop {
        e = match e {
            SqlExpr::BinaryOp { left, .. } => left,
            SqlExpr::UnaryOp { expr, .. } | SqlExpr::Nested(expr) => expr,
            SqlExpr::IsNull(expr) | SqlExpr::IsNotNull(expr) => expr,
            _ => break,
        };
    }
    match e {
        SqlExpr::Identifier(i) => (i.span.start.line, i.span.start.column),
        SqlExpr::Value(v) => (v.span.start.line, v.span.start.column),
        _ => (0, 0),
    }
}

pub(crate) fn err_at<T>(e: &SqlExpr, message: impl Into<String>) -> Result<T> {
    let s = e.span().start;
    Err(PlanError::new(message, s.line, s.column))
}

/// How aggregate calls are handled while binding.
pub enum AggMode<'a> {
    /// Aggregates are not allowed here.
    None,
    /// Aggregate context: group-by expressions and aggregate calls become columns of the
    /// aggregate row `[group keys..., ROWTIME, aggregate results...]`.
    Collect {
        group_by: &'a [SqlExpr],
        source: &'a Scope,
        aggs: &'a mut Vec<AggCall>,
        /// A windowed aggregation: its row has WINDOWSTART and WINDOWEND after ROWTIME,
        /// which the SELECT clause may read.
        window: bool,
    },
}

/// WINDOWSTART or WINDOWEND, when `e` reads either.
pub(crate) fn window_bound_in(e: &SqlExpr) -> Option<&'static str> {
    let mut found = None;
    let _ = sqlparser::ast::visit_expressions(e, |x| {
        if let SqlExpr::Identifier(i) = x {
            let n = ident_name(i);
            for bound in [sluice_common::WINDOWSTART, sluice_common::WINDOWEND] {
                if n == bound {
                    found = Some(bound);
                    return std::ops::ControlFlow::Break(());
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    });
    found
}

pub struct Binder<'a> {
    pub scope: &'a Scope,
    pub mode: AggMode<'a>,
    /// Nesting depth of the expression being bound, to refuse absurdly deep trees
    /// before they overflow a stack (here, in evaluation, or when dropped).
    depth: usize,
    /// The clause being bound (`SELECT`, `WHERE`, ...), named in unknown-column errors as
    /// ksqlDB names it.
    clause: &'static str,
}

/// Deepest expression tree the binder accepts.
pub const MAX_EXPR_DEPTH: usize = 256;

impl<'a> Binder<'a> {
    pub fn plain(scope: &'a Scope) -> Binder<'a> {
        Binder::new(scope, AggMode::None)
    }

    pub fn new(scope: &'a Scope, mode: AggMode<'a>) -> Binder<'a> {
        Binder {
            scope,
            mode,
            depth: 0,
            clause: "",
        }
    }

    /// Names the clause being bound in unknown-column errors: `WHERE column 'X' cannot be
    /// resolved.`
    pub fn in_clause(mut self, clause: &'static str) -> Binder<'a> {
        self.clause = clause;
        self
    }

    fn unresolved<T>(&self, e: &SqlExpr, name: &str) -> Result<T> {
        let written = match e {
            SqlExpr::CompoundIdentifier(_) => ksql_text(e),
            _ => name.to_string(),
        };
        let message = if self.clause.is_empty() {
            format!("Column '{written}' cannot be resolved.")
        } else {
            format!("{} column '{written}' cannot be resolved.", self.clause)
        };
        err_at(e, message)
    }

    pub fn bind(&mut self, e: &SqlExpr) -> Result<Bound> {
        if self.depth >= MAX_EXPR_DEPTH {
            // Not err_at: a span of a very deep tree is itself computed recursively.
            let (line, column) = leftmost_position(e);
            return Err(PlanError::new(
                format!(
                    "Expression is nested too deeply (more than {MAX_EXPR_DEPTH} levels of operators or calls)"
                ),
                line,
                column,
            ));
        }
        self.depth += 1;
        let out = self.bind_inner(e);
        self.depth -= 1;
        out
    }

    fn bind_inner(&mut self, e: &SqlExpr) -> Result<Bound> {
        if let AggMode::Collect {
            group_by, source, ..
        } = &self.mode
        {
            let text = ksql_text(e);
            if let Some(i) = group_by.iter().position(|g| ksql_text(g) == text) {
                let ty = Binder::plain(source).bind(&group_by[i])?.ty;
                return Ok(Bound {
                    expr: Expr::Column(i),
                    ty,
                });
            }
        }
        match e {
            SqlExpr::Identifier(i) => {
                let scope = self.scope_of_columns();
                if let Some(sources) = scope.ambiguous(&ident_name(i)) {
                    return err_at(
                        e,
                        format!(
                            "Column '{}' is ambiguous. Could be {sources}.",
                            ident_name(i)
                        ),
                    );
                }
                let name = scope.resolve(None, &ident_name(i));
                self.column(e, &name.unwrap_or_else(|| ident_name(i)))
            }
            SqlExpr::CompoundIdentifier(parts) if parts.len() == 2 && !self.joined().is_empty() => {
                let q = ident_name(&parts[0]);
                match self
                    .scope_of_columns()
                    .resolve(Some(&q), &ident_name(&parts[1]))
                {
                    Some(name) => self.column(e, &name),
                    None => err_at(
                        e,
                        format!(
                            "Failed to prepare statement: '{q}' is not a valid stream/table name or alias."
                        ),
                    ),
                }
            }
            SqlExpr::CompoundIdentifier(parts) if parts.len() == 2 => {
                let q = ident_name(&parts[0]);
                if !self.qualifiers().contains(&q) {
                    // ksqlDB resolves qualifiers while building the statement's syntax tree,
                    // so this is a "prepare" error there, in every kind of statement.
                    return err_at(
                        e,
                        format!(
                            "Failed to prepare statement: '{q}' is not a valid stream/table name or alias."
                        ),
                    );
                }
                self.column(e, &ident_name(&parts[1]))
            }
            SqlExpr::Value(v) => literal(e, &v.value),
            SqlExpr::Nested(inner) => self.bind(inner),
            SqlExpr::UnaryOp { op, expr } => {
                // ksqlDB's grammar reads `-5` as one literal, so its range is checked with
                // the sign.
                if *op == UnaryOperator::Minus
                    && let SqlExpr::Value(v) = expr.as_ref()
                    && let SqlValue::Number(n, _) = &v.value
                {
                    let (value, ty) = number(e, &format!("-{n}"))?;
                    return Ok(Bound {
                        expr: Expr::Literal(value),
                        ty: Some(ty),
                    });
                }
                let b = self.bind(expr)?;
                match op {
                    UnaryOperator::Not => {
                        expect_bool(expr, &b)?;
                        Ok(Bound {
                            expr: Expr::Not(Box::new(b.expr)),
                            ty: Some(DataType::Boolean),
                        })
                    }
                    UnaryOperator::Minus => {
                        if let Expr::Literal(v) = &b.expr {
                            return Ok(Bound {
                                expr: Expr::Literal(negate_literal(e, v)?),
                                ty: b.ty,
                            });
                        }
                        if !b.ty.as_ref().is_none_or(DataType::is_numeric) {
                            return err_at(
                                expr,
                                format!(
                                    "Unary minus needs a numeric operand, got {}",
                                    ty_name(&b.ty)
                                ),
                            );
                        }
                        Ok(Bound {
                            expr: Expr::Negate(Box::new(b.expr)),
                            ty: b.ty,
                        })
                    }
                    UnaryOperator::Plus => Ok(b),
                    other => err_at(e, format!("Unsupported operator {other}")),
                }
            }
            SqlExpr::BinaryOp { left, op, right } if *op != BinaryOperator::Arrow => {
                self.binary(e, left, op, right)
            }
            SqlExpr::IsNull(inner) | SqlExpr::IsNotNull(inner) => {
                let b = self.bind(inner)?;
                Ok(Bound {
                    expr: Expr::IsNull {
                        expr: Box::new(b.expr),
                        negated: matches!(e, SqlExpr::IsNotNull(_)),
                    },
                    ty: Some(DataType::Boolean),
                })
            }
            SqlExpr::IsDistinctFrom(ls, rs) | SqlExpr::IsNotDistinctFrom(ls, rs) => {
                let (l, r) = (self.bind(ls)?, self.bind(rs)?);
                let scope = self.scope_of_columns();
                let (le, re) = comparison_operands(e, ls, l, BinaryOp::Eq, rs, r, scope)?;
                let (l, r) = (Bound { expr: le, ty: None }, Bound { expr: re, ty: None });
                // (l IS NULL AND r IS NULL) OR COALESCE(l = r, FALSE), negated for DISTINCT.
                let both_null = Expr::Binary {
                    op: BinaryOp::And,
                    left: Box::new(Expr::IsNull {
                        expr: Box::new(l.expr.clone()),
                        negated: false,
                    }),
                    right: Box::new(Expr::IsNull {
                        expr: Box::new(r.expr.clone()),
                        negated: false,
                    }),
                };
                let eq = Expr::Case {
                    branches: vec![(
                        Expr::Binary {
                            op: BinaryOp::Eq,
                            left: Box::new(l.expr),
                            right: Box::new(r.expr),
                        },
                        Expr::Literal(Value::Boolean(true)),
                    )],
                    otherwise: Some(Box::new(Expr::Literal(Value::Boolean(false)))),
                };
                let same = Expr::Binary {
                    op: BinaryOp::Or,
                    left: Box::new(both_null),
                    right: Box::new(eq),
                };
                let expr = if matches!(e, SqlExpr::IsDistinctFrom(..)) {
                    Expr::Not(Box::new(same))
                } else {
                    same
                };
                Ok(Bound {
                    expr,
                    ty: Some(DataType::Boolean),
                })
            }
            SqlExpr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                // ksqlDB plans BETWEEN as `expr >= low AND expr <= high`, each a comparison
                // with its own type rules; NOT BETWEEN negates that, so a NULL makes
                // BETWEEN false and NOT BETWEEN true.
                let (v, mut lo, mut hi) = (self.bind(expr)?, self.bind(low)?, self.bind(high)?);
                if is_rowtime(expr) {
                    lo = magic_timestamp(low, lo)?;
                    hi = magic_timestamp(high, hi)?;
                }
                let scope = self.scope_of_columns();
                let (v1, lo) =
                    comparison_operands(e, expr, v.clone(), BinaryOp::GtEq, low, lo, scope)?;
                let (v2, hi) = comparison_operands(e, expr, v, BinaryOp::LtEq, high, hi, scope)?;
                let within = Expr::Binary {
                    op: BinaryOp::And,
                    left: Box::new(Expr::Binary {
                        op: BinaryOp::GtEq,
                        left: Box::new(v1),
                        right: Box::new(lo),
                    }),
                    right: Box::new(Expr::Binary {
                        op: BinaryOp::LtEq,
                        left: Box::new(v2),
                        right: Box::new(hi),
                    }),
                };
                Ok(Bound {
                    expr: if *negated {
                        Expr::Not(Box::new(within))
                    } else {
                        within
                    },
                    ty: Some(DataType::Boolean),
                })
            }
            SqlExpr::In {
                expr,
                target: InTarget::List(list),
                negated,
                ..
            } => {
                // ksqlDB drops NULL literals from the list (they never match) and coerces
                // the value and the rest to one type.
                let max = sluice_expr::limits::max_in_list();
                if list.len() > max {
                    return err_at(
                        e,
                        format!(
                            "the IN list has {} values, more than the server's limit max-in-list = {max}",
                            list.len()
                        ),
                    );
                }
                let mut exprs: Vec<&SqlExpr> = vec![expr.as_ref()];
                exprs.extend(list.iter().filter(|i| !is_null_literal(i)));
                let (_, mut items) = self.coerce_list(e, &exprs)?;
                let value = items.remove(0);
                Ok(Bound {
                    expr: Expr::InList {
                        expr: Box::new(value),
                        list: items,
                        negated: *negated,
                    },
                    ty: Some(DataType::Boolean),
                })
            }
            SqlExpr::Like {
                negated,
                any: false,
                expr,
                pattern,
                escape_char,
            } => {
                let (v, p) = (self.bind(expr)?, self.bind(pattern)?);
                for (x, b) in [(expr, &v), (pattern, &p)] {
                    if !b.ty.as_ref().is_none_or(|t| *t == DataType::String) {
                        return err_at(
                            x,
                            format!("LIKE needs STRING operands, got {}", ty_name(&b.ty)),
                        );
                    }
                }
                let escape = match escape_char.as_deref() {
                    None => None,
                    Some(SqlExpr::Value(v)) => match &v.value {
                        SqlValue::SingleQuotedString(s) if s.chars().count() == 1 => {
                            s.chars().next()
                        }
                        _ => return err_at(e, "ESCAPE must be a single character"),
                    },
                    Some(other) => return err_at(other, "ESCAPE must be a single character"),
                };
                Ok(Bound {
                    expr: Expr::Like {
                        expr: Box::new(v.expr),
                        pattern: Box::new(p.expr),
                        escape,
                        negated: *negated,
                    },
                    ty: Some(DataType::Boolean),
                })
            }
            SqlExpr::Cast {
                kind: CastKind::Cast,
                expr,
                data_type,
                ..
            } => {
                let b = self.bind(expr)?;
                let to = convert_type(e, data_type)?;
                if let Some(from) = &b.ty
                    && !castable(from, &to)
                {
                    return err_at(
                        e,
                        format!("Invalid Select: Cast of {from} to {to} is not supported"),
                    );
                }
                Ok(Bound {
                    expr: Expr::Cast {
                        expr: Box::new(b.expr),
                        to: to.clone(),
                    },
                    ty: Some(to),
                })
            }
            SqlExpr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                // ksqlDB requires every THEN and the ELSE to have the same type (NULL
                // literals aside): no widening, not even between numbers.
                let operand = operand.as_ref().map(|o| self.bind(o)).transpose()?;
                let mut branches = Vec::new();
                let mut ty: Option<DataType> = None;
                for cw in conditions {
                    let cond = self.bind(&cw.condition)?;
                    let when = match &operand {
                        Some(o) => Expr::Binary {
                            op: BinaryOp::Eq,
                            left: Box::new(o.expr.clone()),
                            right: Box::new(cond.expr),
                        },
                        None => {
                            if let Some(t) = cond.ty.as_ref().filter(|t| **t != DataType::Boolean) {
                                return err_at(
                                    &cw.condition,
                                    format!(
                                        "WHEN operand type should be boolean.\nType for '{}' is {t}",
                                        ksql_text(&cw.condition)
                                    ),
                                );
                            }
                            cond.expr
                        }
                    };
                    let then = self.bind(&cw.result)?;
                    match (&ty, &then.ty) {
                        (Some(prev), Some(t)) if prev != t => {
                            return err_at(
                                &cw.result,
                                format!(
                                    "Invalid Case expression. Type for all 'THEN' clauses should be the same.\nTHEN expression 'WHEN {} THEN {}' has type: {t}.\nPrevious THEN expression(s) type: {prev}.",
                                    ksql_text(&cw.condition),
                                    ksql_text(&cw.result)
                                ),
                            );
                        }
                        (None, Some(t)) => ty = Some(t.clone()),
                        _ => {}
                    }
                    branches.push((when, then.expr));
                }
                let otherwise = match else_result {
                    Some(x) => {
                        let b = self.bind(x)?;
                        match (&ty, &b.ty) {
                            (Some(then), Some(d)) if then != d => {
                                return err_at(
                                    x,
                                    format!(
                                        "Invalid Case expression. Type for the default clause should be the same as for 'THEN' clauses.\nTHEN type: {then}.\nDEFAULT type: {d}."
                                    ),
                                );
                            }
                            (None, Some(d)) => ty = Some(d.clone()),
                            _ => {}
                        }
                        Some(Box::new(b.expr))
                    }
                    None => None,
                };
                if ty.is_none() {
                    return err_at(
                        e,
                        "Invalid Case expression. All case branches have NULL type",
                    );
                }
                Ok(Bound {
                    expr: Expr::Case {
                        branches,
                        otherwise,
                    },
                    ty,
                })
            }
            SqlExpr::Function(f) => self.function(e, f),
            // sqlparser gives SUBSTRING and TRIM their own syntax trees; in ksqlDB they
            // are ordinary functions.
            SqlExpr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![expr.as_ref().clone()];
                args.extend(substring_from.iter().map(|x| x.as_ref().clone()));
                args.extend(substring_for.iter().map(|x| x.as_ref().clone()));
                self.bind(&call_expr("SUBSTRING", args))
            }
            SqlExpr::Trim {
                expr,
                trim_where: None,
                trim_what: None,
                trim_characters: None,
            } => self.bind(&call_expr("TRIM", vec![expr.as_ref().clone()])),
            SqlExpr::BinaryOp {
                left,
                op: BinaryOperator::Arrow,
                right,
            } => {
                let b = self.bind(left)?;
                let field = match right.as_ref() {
                    SqlExpr::Identifier(i) => ident_name(i),
                    other => return err_at(other, "Expected a field name after ->"),
                };
                let ty = match &b.ty {
                    Some(DataType::Struct(fields)) => {
                        match fields.iter().find(|(n, _)| *n == field) {
                            Some((_, t)) => Some(t.clone()),
                            None => {
                                return err_at(
                                    right,
                                    format!("Unknown field '{field}' in {}", ty_name(&b.ty)),
                                );
                            }
                        }
                    }
                    other => {
                        return err_at(
                            left,
                            format!("Expected a STRUCT before ->, got {}", ty_name(other)),
                        );
                    }
                };
                Ok(Bound {
                    expr: Expr::Field {
                        expr: Box::new(b.expr),
                        name: field,
                    },
                    ty,
                })
            }
            SqlExpr::CompoundFieldAccess { root, access_chain } => {
                // `q.col[1]`: sqlparser reads the qualifier as the root and `col` as a
                // field of it; it is the qualified column, subscripted.
                let (mut cur, chain) = match (root.as_ref(), access_chain.first()) {
                    (SqlExpr::Identifier(q), Some(AccessExpr::Dot(SqlExpr::Identifier(c)))) => (
                        self.bind(&SqlExpr::CompoundIdentifier(vec![q.clone(), c.clone()]))?,
                        &access_chain[1..],
                    ),
                    _ => (self.bind(root)?, &access_chain[..]),
                };
                for access in chain {
                    match access {
                        AccessExpr::Subscript(Subscript::Index { index }) => {
                            let idx = self.bind(index)?;
                            let ty = match &cur.ty {
                                Some(DataType::Array(item)) => {
                                    if !idx.ty.as_ref().is_none_or(DataType::is_integral) {
                                        return err_at(
                                            index,
                                            format!(
                                                "Array index must be an INTEGER, got {}",
                                                ty_name(&idx.ty)
                                            ),
                                        );
                                    }
                                    Some(item.as_ref().clone())
                                }
                                Some(DataType::Map(_, v)) => Some(v.as_ref().clone()),
                                other => {
                                    return err_at(
                                        root,
                                        format!(
                                            "Only ARRAY and MAP values can be subscripted, got {}",
                                            ty_name(other)
                                        ),
                                    );
                                }
                            };
                            cur = Bound {
                                expr: Expr::Subscript {
                                    expr: Box::new(cur.expr),
                                    index: Box::new(idx.expr),
                                },
                                ty,
                            };
                        }
                        _ => return err_at(e, format!("Unsupported expression: {e}")),
                    }
                }
                Ok(cur)
            }
            SqlExpr::Array(arr) => {
                if arr.elem.is_empty() {
                    return err_at(
                        e,
                        "Array constructor cannot be empty. Please supply at least one element (see https://github.com/confluentinc/ksql/issues/4239).",
                    );
                }
                let elems: Vec<&SqlExpr> = arr.elem.iter().collect();
                let (item_ty, items) = self.coerce_list(e, &elems)?;
                let Some(item_ty) = item_ty else {
                    return err_at(
                        e,
                        "Cannot construct an array with all NULL elements (see https://github.com/confluentinc/ksql/issues/4239). As a workaround, you may cast a NULL value to the desired type.",
                    );
                };
                Ok(Bound {
                    expr: Expr::MakeArray(items),
                    ty: Some(DataType::Array(Box::new(item_ty))),
                })
            }
            other => err_at(other, format!("Unsupported expression: {other}")),
        }
    }

    fn qualifiers(&self) -> &[String] {
        &self.scope_of_columns().qualifiers
    }

    /// The scope column references resolve in: the source row's when aggregating.
    fn scope_of_columns(&self) -> &Scope {
        match &self.mode {
            AggMode::Collect { source, .. } => source,
            AggMode::None => self.scope,
        }
    }

    fn joined(&self) -> &[JoinedColumns] {
        &self.scope_of_columns().joined
    }

    fn column(&mut self, e: &SqlExpr, name: &str) -> Result<Bound> {
        if let AggMode::Collect {
            group_by,
            source,
            window,
            ..
        } = &self.mode
        {
            if name == ROWTIME {
                return Ok(Bound {
                    expr: Expr::Column(group_by.len()),
                    ty: Some(DataType::BigInt),
                });
            }
            if *window
                && let Some(i) = [sluice_common::WINDOWSTART, sluice_common::WINDOWEND]
                    .iter()
                    .position(|b| *b == name)
            {
                if self.clause != "SELECT" {
                    return err_at(
                        e,
                        format!(
                            "Window bounds column {name} can only be used in the SELECT clause of windowed aggregations"
                        ),
                    );
                }
                return Ok(Bound {
                    expr: Expr::Column(group_by.len() + 1 + i),
                    ty: Some(DataType::BigInt),
                });
            }
            if source.index_of(name).is_some() {
                return err_at(
                    e,
                    format!("Non-aggregate SELECT expression(s) not part of GROUP BY: {name}"),
                );
            }
            return self.unresolved(e, name);
        }
        match self.scope.index_of(name) {
            Some(i) => Ok(Bound {
                expr: Expr::Column(i),
                ty: Some(self.scope.columns[i].1.clone()),
            }),
            None => self.unresolved(e, name),
        }
    }

    fn binary(
        &mut self,
        e: &SqlExpr,
        left: &SqlExpr,
        op: &BinaryOperator,
        right: &SqlExpr,
    ) -> Result<Bound> {
        let (mut l, mut r) = (self.bind(left)?, self.bind(right)?);
        let is_cmp = matches!(
            op,
            BinaryOperator::Eq
                | BinaryOperator::NotEq
                | BinaryOperator::Lt
                | BinaryOperator::LtEq
                | BinaryOperator::Gt
                | BinaryOperator::GtEq
        );
        if is_cmp && is_rowtime(left) {
            r = magic_timestamp(right, r)?;
        }
        if is_cmp && is_rowtime(right) {
            l = magic_timestamp(left, l)?;
        }
        let op_sql = op;
        let op = match op {
            BinaryOperator::Plus => BinaryOp::Add,
            BinaryOperator::Minus => BinaryOp::Sub,
            BinaryOperator::Multiply => BinaryOp::Mul,
            BinaryOperator::Divide => BinaryOp::Div,
            BinaryOperator::Modulo => BinaryOp::Mod,
            BinaryOperator::Eq => BinaryOp::Eq,
            BinaryOperator::NotEq => BinaryOp::NotEq,
            BinaryOperator::Lt => BinaryOp::Lt,
            BinaryOperator::LtEq => BinaryOp::LtEq,
            BinaryOperator::Gt => BinaryOp::Gt,
            BinaryOperator::GtEq => BinaryOp::GtEq,
            BinaryOperator::And => BinaryOp::And,
            BinaryOperator::Or => BinaryOp::Or,
            BinaryOperator::StringConcat => BinaryOp::Concat,
            other => return err_at(e, format!("Unsupported operator {other}")),
        };
        let _ = op_sql;
        let ty = match op {
            BinaryOp::And | BinaryOp::Or => {
                expect_bool(left, &l)?;
                expect_bool(right, &r)?;
                Some(DataType::Boolean)
            }
            BinaryOp::Concat => {
                for (x, b) in [(left, &l), (right, &r)] {
                    if !b.ty.as_ref().is_none_or(|t| *t == DataType::String) {
                        return err_at(
                            x,
                            format!("|| needs STRING operands, got {}", ty_name(&b.ty)),
                        );
                    }
                }
                Some(DataType::String)
            }
            _ if op.is_comparison() => {
                let (le, re) =
                    comparison_operands(e, left, l, op, right, r, self.scope_of_columns())?;
                return Ok(Bound {
                    expr: Expr::Binary {
                        op,
                        left: Box::new(le),
                        right: Box::new(re),
                    },
                    ty: Some(DataType::Boolean),
                });
            }
            _ => {
                let arith = match op {
                    BinaryOp::Add => ArithOp::Add,
                    BinaryOp::Sub => ArithOp::Sub,
                    BinaryOp::Mul => ArithOp::Mul,
                    BinaryOp::Div => ArithOp::Div,
                    _ => ArithOp::Mod,
                };
                let ty = DataType::arithmetic_result(arith, l.ty.as_ref(), r.ty.as_ref()).or_else(
                    |m| {
                        err_at(
                            e,
                            format!("Error processing expression: {}. {m}", ksql_text(e)),
                        )
                    },
                )?;
                if ty == DataType::String {
                    return Ok(Bound {
                        expr: Expr::Binary {
                            op: BinaryOp::Concat,
                            left: Box::new(l.expr),
                            right: Box::new(r.expr),
                        },
                        ty: Some(DataType::String),
                    });
                }
                if let DataType::Decimal { precision, scale } = ty {
                    return Ok(Bound {
                        expr: Expr::Decimal {
                            op,
                            left: Box::new(l.expr),
                            right: Box::new(r.expr),
                            precision,
                            scale,
                        },
                        ty: Some(ty),
                    });
                }
                Some(ty)
            }
        };
        Ok(Bound {
            expr: Expr::Binary {
                op,
                left: Box::new(l.expr),
                right: Box::new(r.expr),
            },
            ty,
        })
    }

    /// TRANSFORM / FILTER / REDUCE with lambda arguments.
    fn higher_order(&mut self, e: &SqlExpr, name: &str, list: &[FunctionArg]) -> Result<Bound> {
        let mut plain = Vec::new();
        let mut lambdas = Vec::new();
        for a in list {
            match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Lambda(l))) => lambdas.push(l),
                FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => plain.push(x),
                _ => return err_at(e, format!("Unsupported argument in call to {name}")),
            }
        }
        let func = match name {
            "TRANSFORM" => HigherOrder::Transform,
            "FILTER" => HigherOrder::Filter,
            _ => HigherOrder::Reduce,
        };
        let want_plain = if func == HigherOrder::Reduce { 2 } else { 1 };
        if plain.len() != want_plain || lambdas.is_empty() {
            return err_at(
                e,
                format!("Function {name} expects {want_plain} value argument(s) and a lambda"),
            );
        }
        if !matches!(self.mode, AggMode::None) {
            return err_at(
                e,
                format!("{name} with a lambda is not supported inside an aggregate query yet"),
            );
        }
        let input = self.bind(plain[0])?;
        let init = if func == HigherOrder::Reduce {
            Some(self.bind(plain[1])?)
        } else {
            None
        };
        let (is_map, k, v) = match &input.ty {
            Some(DataType::Array(item)) => (false, item.as_ref().clone(), DataType::String),
            Some(DataType::Map(k, v)) => (true, k.as_ref().clone(), v.as_ref().clone()),
            other => {
                return err_at(
                    plain[0],
                    format!(
                        "Function {name} expects an ARRAY or MAP, got {}",
                        ty_name(other)
                    ),
                );
            }
        };
        let expected_lambdas = if func == HigherOrder::Transform && is_map {
            2
        } else {
            1
        };
        if lambdas.len() != expected_lambdas {
            return err_at(
                e,
                format!(
                    "Function {name} over a {} takes {expected_lambdas} lambda(s)",
                    if is_map { "MAP" } else { "ARRAY" }
                ),
            );
        }
        let state_ty = init
            .as_ref()
            .and_then(|i| i.ty.clone())
            .unwrap_or(DataType::String);
        let param_types: Vec<DataType> = match (func, is_map) {
            (HigherOrder::Reduce, false) => vec![state_ty.clone(), k.clone()],
            (HigherOrder::Reduce, true) => vec![state_ty.clone(), k.clone(), v.clone()],
            (_, false) => vec![k.clone()],
            (_, true) => vec![k.clone(), v.clone()],
        };
        let base = self.scope.columns.len();
        let mut bound_lambdas = Vec::new();
        let mut body_types = Vec::new();
        for l in lambdas {
            let params: Vec<String> = match &l.params {
                sqlparser::ast::OneOrManyWithParens::One(p) => vec![ident_name(&p.name)],
                sqlparser::ast::OneOrManyWithParens::Many(ps) => {
                    ps.iter().map(|p| ident_name(&p.name)).collect()
                }
            };
            if params.len() != param_types.len() {
                return err_at(
                    e,
                    format!(
                        "The lambda of {name} takes {} parameter(s), got {}",
                        param_types.len(),
                        params.len()
                    ),
                );
            }
            let mut scope = self.scope.clone();
            scope.columns.truncate(base);
            scope
                .columns
                .extend(params.into_iter().zip(param_types.iter().cloned()));
            let body = Binder::plain(&scope).bind(&l.body)?;
            body_types.push(body.ty.clone());
            bound_lambdas.push(Lambda {
                base,
                body: Box::new(body.expr),
            });
        }
        let ty = match (func, is_map) {
            (HigherOrder::Transform, false) => Some(DataType::Array(Box::new(
                body_types[0].clone().unwrap_or(DataType::String),
            ))),
            (HigherOrder::Transform, true) => Some(DataType::Map(
                Box::new(body_types[0].clone().unwrap_or(DataType::String)),
                Box::new(body_types[1].clone().unwrap_or(DataType::String)),
            )),
            (HigherOrder::Filter, _) => input.ty.clone(),
            (HigherOrder::Reduce, _) => Some(state_ty),
        };
        Ok(Bound {
            expr: Expr::HigherOrder {
                func,
                input: Box::new(input.expr),
                init: init.map(|i| Box::new(i.expr)),
                lambdas: bound_lambdas,
            },
            ty,
        })
    }

    /// `MAP(k := v, ...)` and `STRUCT(name := v, ...)`.
    fn constructor(&mut self, e: &SqlExpr, name: &str, list: &[FunctionArg]) -> Result<Bound> {
        let mut pairs = Vec::with_capacity(list.len());
        for a in list {
            match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::BinaryOp {
                    left,
                    op: BinaryOperator::Assignment,
                    right,
                })) => pairs.push((left.as_ref(), right.as_ref())),
                _ => return err_at(e, format!("{name} arguments must be written key := value")),
            }
        }
        if name == "STRUCT" {
            let mut fields = Vec::with_capacity(pairs.len());
            let mut types = Vec::with_capacity(pairs.len());
            for (k, v) in pairs {
                let field = match k {
                    SqlExpr::Identifier(i) => ident_name(i),
                    other => return err_at(other, "STRUCT field names must be identifiers"),
                };
                if types.iter().any(|(n, _)| *n == field) {
                    return err_at(
                        k,
                        format!("Duplicate field names found in STRUCT: '{field}'"),
                    );
                }
                let b = self.bind(v)?;
                types.push((field.clone(), b.ty.unwrap_or(DataType::String)));
                fields.push((field, b.expr));
            }
            return Ok(Bound {
                expr: Expr::MakeStruct(fields),
                ty: Some(DataType::Struct(types)),
            });
        }
        if pairs.is_empty() {
            return err_at(
                e,
                "Map constructor cannot be empty. Please supply at least one key value pair (see https://github.com/confluentinc/ksql/issues/4239).",
            );
        }
        let keys: Vec<&SqlExpr> = pairs.iter().map(|(k, _)| *k).collect();
        let values: Vec<&SqlExpr> = pairs.iter().map(|(_, v)| *v).collect();
        let (kt, keys) = self.coerce_list(e, &keys)?;
        let Some(kt) = kt else {
            return err_at(
                e,
                "Cannot construct a map with all NULL keys (see https://github.com/confluentinc/ksql/issues/4239). As a workaround, you may cast a NULL key to the desired type.",
            );
        };
        let (vt, values) = self.coerce_list(e, &values)?;
        let Some(vt) = vt else {
            return err_at(
                e,
                "Cannot construct a map with all NULL values (see https://github.com/confluentinc/ksql/issues/4239). As a workaround, you may cast a NULL value to the desired type.",
            );
        };
        Ok(Bound {
            expr: Expr::MakeMap(keys.into_iter().zip(values).collect()),
            ty: Some(DataType::Map(Box::new(kt), Box::new(vt))),
        })
    }

    /// Binds a list of expressions that must share one type (ARRAY and MAP constructors,
    /// IN lists) and converts each to it: ksqlDB's `CoercionUtil.coerceUserList`.
    fn coerce_list(
        &mut self,
        at: &SqlExpr,
        exprs: &[&SqlExpr],
    ) -> Result<(Option<DataType>, Vec<Expr>)> {
        let mut bound = Vec::with_capacity(exprs.len());
        let mut typed = Vec::with_capacity(exprs.len());
        for x in exprs {
            let b = self.bind(x)?;
            typed.push(coerce::Typed::of(&b, ksql_text(x)));
            bound.push(b);
        }
        let common = coerce::common_type(&typed).or_else(|m| err_at(at, m.message()))?;
        let Some(common) = common else {
            return Ok((None, bound.into_iter().map(|b| b.expr).collect()));
        };
        let items = bound
            .into_iter()
            .zip(exprs)
            .map(|(b, x)| coerce::convert(b, &common).or_else(|m| err_at(x, m)))
            .collect::<Result<Vec<_>>>()?;
        Ok((Some(common), items))
    }

    fn function(&mut self, e: &SqlExpr, f: &sqlparser::ast::Function) -> Result<Bound> {
        let name = f.name.to_string().to_ascii_uppercase();
        let list = match &f.args {
            FunctionArguments::List(l) => l.args.as_slice(),
            FunctionArguments::None => &[],
            FunctionArguments::Subquery(_) => return err_at(e, "Subqueries are not supported"),
        };
        if name == "MAP" || name == "STRUCT" {
            return self.constructor(e, &name, list);
        }
        if matches!(name.as_str(), "TRANSFORM" | "FILTER" | "REDUCE") {
            return self.higher_order(e, &name, list);
        }
        let star =
            list.len() == 1 && matches!(list[0], FunctionArg::Unnamed(FunctionArgExpr::Wildcard));
        let mut args = Vec::with_capacity(list.len());
        if !star {
            for a in list {
                match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => args.push(x),
                    _ => return err_at(e, format!("Unsupported argument in call to {name}")),
                }
            }
        }
        if let Some(kind) = AggKind::from_name(&name, star || (name == "COUNT" && args.is_empty()))
        {
            let AggMode::Collect {
                source,
                aggs,
                group_by,
                window,
            } = &mut self.mode
            else {
                return err_at(
                    e,
                    format!(
                        "Aggregate function {name} is only allowed in the SELECT or HAVING of an aggregate query (one with GROUP BY)"
                    ),
                );
            };
            if args.iter().any(|a| find_aggregate(a).is_some()) {
                return err_at(
                    e,
                    format!("Aggregate functions can not be nested: {}", ksql_text(e)),
                );
            }
            if *window && let Some(bound) = args.iter().find_map(|a| window_bound_in(a)) {
                return err_at(
                    e,
                    format!(
                        "Window bounds column {bound} can only be used in the SELECT clause of windowed aggregations"
                    ),
                );
            }
            let mut arg = args
                .first()
                .map(|a| Binder::plain(source).bind(a))
                .transpose()?;
            let mut extras: &[&SqlExpr] = args.get(1..).unwrap_or(&[]);
            // TOPK(sort, col, ..., k) keeps whole rows: each entry is a struct of the sort
            // value (`sort_col`) and the other columns (`col0`, `col1`, ...).
            if kind == AggKind::TopK
                && args.len() > 2
                && let Some(sort) = arg.take()
            {
                let mut fields = vec![("sort_col".to_string(), sort.expr)];
                let mut types = vec![("sort_col".to_string(), sort.ty.unwrap_or(DataType::String))];
                for (i, c) in args[1..args.len() - 1].iter().enumerate() {
                    let b = Binder::plain(source).bind(c)?;
                    fields.push((format!("col{i}"), b.expr));
                    types.push((format!("col{i}"), b.ty.unwrap_or(DataType::String)));
                }
                arg = Some(Bound {
                    expr: Expr::MakeStruct(fields),
                    ty: Some(DataType::Struct(types)),
                });
                extras = &args[args.len() - 1..];
            }
            let arg_type = arg.as_ref().and_then(|a| a.ty.clone());
            // Trailing arguments are literals (TOPK's k, LATEST_BY_OFFSET's n and
            // ignore-nulls flag), except CORRELATION's second column.
            let mut call =
                AggCall::new(kind, arg.as_ref().map(|a| a.expr.clone()), arg_type.clone());
            for extra in extras {
                if kind == AggKind::Correlation && call.arg2.is_none() {
                    let b = Binder::plain(source).bind(extra)?;
                    if !b.ty.as_ref().is_none_or(DataType::is_numeric) {
                        return err_at(
                            extra,
                            format!(
                                "Function {name} expects numeric arguments, got {}",
                                ty_name(&b.ty)
                            ),
                        );
                    }
                    call.arg2 = Some(b.expr);
                    continue;
                }
                let b = Binder::plain(&Scope::empty()).bind(extra).or_else(|_| {
                    let position = args.iter().position(|a| std::ptr::eq(*a, *extra)).unwrap_or(0);
                    err_at(
                        extra,
                        format!(
                            "Parameter {} passed to function {name} must be a literal constant, but was expression: '{}'",
                            position + 1,
                            ksql_text(extra)
                        ),
                    )
                })?;
                match (b.expr.eval(&[]), kind) {
                    (Value::Boolean(flag), AggKind::LatestByOffset | AggKind::EarliestByOffset) => {
                        call.ignore_nulls = flag
                    }
                    (
                        v,
                        AggKind::LatestByOffset
                        | AggKind::EarliestByOffset
                        | AggKind::TopK
                        | AggKind::TopKDistinct,
                    ) if v.as_i64().is_some_and(|n| n > 0) && call.n.is_none() => {
                        call.n = v.as_i64().map(|n| n as usize)
                    }
                    _ => return err_at(extra, format!("Invalid parameter {extra} for {name}")),
                }
            }
            if kind == AggKind::Correlation && call.arg2.is_none() {
                return err_at(e, format!("Function {name} takes two columns"));
            }
            if matches!(kind, AggKind::TopK | AggKind::TopKDistinct) && call.n.is_none() {
                return err_at(
                    e,
                    format!("Function {name} takes a column and a positive k"),
                );
            }
            if !matches!(
                kind,
                AggKind::Correlation
                    | AggKind::TopK
                    | AggKind::TopKDistinct
                    | AggKind::LatestByOffset
                    | AggKind::EarliestByOffset
            ) && args.len() > 1
            {
                return err_at(
                    e,
                    format!("Function {name} takes one argument, got {}", args.len()),
                );
            }
            let ty = kind
                .return_type(arg_type.as_ref(), call.n)
                .or_else(|m| err_at(e, format!("Function '{}' {m}", name.to_ascii_lowercase())))?;
            let idx = group_by.len() + 1 + if *window { 2 } else { 0 } + aggs.len();
            // COUNT(1) counts rows, like COUNT(*).
            if kind == AggKind::Count
                && matches!(arg.as_ref().map(|a| &a.expr), Some(Expr::Literal(v)) if !v.is_null())
            {
                call.kind = AggKind::CountStar;
            }
            aggs.push(call);
            return Ok(Bound {
                expr: Expr::Column(idx),
                ty: Some(ty),
            });
        }
        let Some(func) = sluice_expr::lookup(&name) else {
            return err_at(
                e,
                format!("Can't find any functions with the name '{name}'"),
            );
        };
        let mut bound = Vec::with_capacity(args.len());
        for (i, a) in args.iter().enumerate() {
            // DATEADD(DAYS, 1, d) and friends take a bare time unit as their first argument.
            if i == 0
                && matches!(
                    name.as_str(),
                    "DATEADD" | "DATESUB" | "TIMESTAMPADD" | "TIMESTAMPSUB" | "TIMEADD" | "TIMESUB"
                )
                && let SqlExpr::Identifier(id) = a
                && id.quote_style.is_none()
                && is_time_unit(&id.value)
            {
                bound.push(Bound {
                    expr: Expr::Literal(Value::String(id.value.to_ascii_uppercase())),
                    ty: Some(DataType::String),
                });
                continue;
            }
            bound.push(self.bind(a)?);
        }
        // A literal pattern too large to compile is refused now, naming the limit, rather
        // than turning every call NULL.
        if let Some(i) = sluice_expr::functions::regex_pattern_arg(&name)
            && let Some(Bound {
                expr: Expr::Literal(Value::String(pattern)),
                ..
            }) = bound.get(i)
            && let Err(m) = sluice_expr::functions::check_regex_size(pattern)
        {
            return err_at(args.get(i).copied().unwrap_or(e), format!("{name}: {m}"));
        }
        if !func.sigs.is_empty() {
            // ksqlDB's UdfIndex: pick the overload, then CAST arguments it widens.
            let arg_types: Vec<Option<DataType>> = bound.iter().map(|b| b.ty.clone()).collect();
            let resolved = sluice_expr::resolve(func.sigs, &arg_types)
                .or_else(|m| err_at(e, format!("Function '{}' {m}", udf_display_name(&name))))?;
            let ty = (func.return_type)(&resolved.types)
                .or_else(|m| err_at(e, format!("Function '{}' {m}", udf_display_name(&name))))?;
            let args = bound
                .into_iter()
                .zip(resolved.casts)
                .map(|(b, cast)| match cast {
                    Some(to) => Expr::Cast {
                        expr: Box::new(b.expr),
                        to,
                    },
                    None => b.expr,
                })
                .collect();
            return Ok(Bound {
                expr: Expr::Call { func, args },
                ty: Some(ty),
            });
        }
        let arg_types: Vec<Option<DataType>> = bound.iter().map(|b| b.ty.clone()).collect();
        let ty = null_tolerant_return_type(func, &arg_types)
            .or_else(|m| err_at(e, format!("Function '{}' {m}", udf_display_name(&name))))?;
        Ok(Bound {
            expr: Expr::Call {
                func,
                args: bound.into_iter().map(|b| b.expr).collect(),
            },
            ty: Some(ty),
        })
    }
}

/// A function's result type where some arguments are NULL literals: in ksqlDB a NULL
/// argument fits any parameter, so a NULL takes whichever type the function accepts there
/// (STRING first, then the other scalar types), for up to two NULL arguments.
fn null_tolerant_return_type(
    func: &sluice_expr::ScalarFunction,
    args: &[Option<DataType>],
) -> std::result::Result<DataType, String> {
    let fill = |with: &[DataType]| -> Vec<DataType> {
        let mut it = with.iter();
        args.iter()
            .map(|a| match a {
                Some(t) => t.clone(),
                None => it.next().cloned().unwrap_or(DataType::String),
            })
            .collect()
    };
    let first = (func.return_type)(&fill(&[]));
    let nulls = args.iter().filter(|a| a.is_none()).count();
    if first.is_ok() || nulls == 0 || nulls > 2 {
        return first;
    }
    const CANDIDATES: [DataType; 9] = [
        DataType::String,
        DataType::Int,
        DataType::BigInt,
        DataType::Double,
        DataType::Boolean,
        DataType::Timestamp,
        DataType::Date,
        DataType::Time,
        DataType::Bytes,
    ];
    for a in &CANDIDATES {
        if nulls == 1 {
            if let Ok(t) = (func.return_type)(&fill(std::slice::from_ref(a))) {
                return Ok(t);
            }
            continue;
        }
        for b in &CANDIDATES {
            if let Ok(t) = (func.return_type)(&fill(&[a.clone(), b.clone()])) {
                return Ok(t);
            }
        }
    }
    first
}

/// Which CASTs ksqlDB accepts: anything to STRING, between numbers, text to scalars, and
/// between complex types of the same shape.
/// ROWTIME and a windowed source's WINDOWSTART and WINDOWEND: the BIGINT times ksqlDB
/// compares with timestamp text.
fn is_rowtime(e: &SqlExpr) -> bool {
    matches!(e, SqlExpr::Identifier(i) if matches!(ident_name(i).as_str(), ROWTIME | sluice_common::WINDOWSTART | sluice_common::WINDOWEND))
}

/// ksqlDB compares ROWTIME (and window bounds) with timestamp text: a string literal next to ROWTIME is read
/// as `yyyy[-MM[-dd[THH[:mm[:ss[.SSS]]]]]][zone]` (UTC unless a zone is given).
fn magic_timestamp(e: &SqlExpr, b: Bound) -> Result<Bound> {
    let Expr::Literal(Value::String(text)) = &b.expr else {
        return Ok(b);
    };
    match parse_timestamp_text(text) {
        Some(ms) => Ok(Bound {
            expr: Expr::Literal(Value::BigInt(ms)),
            ty: Some(DataType::BigInt),
        }),
        None => err_at(
            e,
            format!(
                "Failed to parse timestamp '{text}': expected yyyy-MM-dd'T'HH:mm:ss.SSS with an optional zone"
            ),
        ),
    }
}

fn parse_timestamp_text(text: &str) -> Option<i64> {
    let t = text.trim();
    // Split off a trailing zone: Z, +HH, +HHmm, +HH:mm (after the date part).
    let (body, offset_min) = match t
        .rfind(['+', 'Z'])
        .or_else(|| t.rfind('-').filter(|i| *i > 10))
    {
        Some(i) if i >= 4 && t.len() > i => {
            let zone = &t[i..];
            let offset = if zone == "Z" {
                0
            } else {
                let sign = if zone.starts_with('-') { -1 } else { 1 };
                let digits: String = zone[1..].chars().filter(|c| c.is_ascii_digit()).collect();
                let (h, m) = match digits.len() {
                    2 => (digits.parse::<i64>().ok()?, 0),
                    4 => (
                        digits[..2].parse::<i64>().ok()?,
                        digits[2..].parse::<i64>().ok()?,
                    ),
                    _ => return None,
                };
                sign * (h * 60 + m)
            };
            (&t[..i], offset)
        }
        _ => (t, 0),
    };
    let (date, time) = body.split_once('T').unwrap_or((body, ""));
    let mut d = date.split('-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: u32 = d.next().map_or(Some(1), |m| m.parse().ok())?;
    let day: u32 = d.next().map_or(Some(1), |x| x.parse().ok())?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut parts = hms.split(':').filter(|p| !p.is_empty());
    let h: i64 = parts.next().map_or(Some(0), |x| x.parse().ok())?;
    let mi: i64 = parts.next().map_or(Some(0), |x| x.parse().ok())?;
    let sec: i64 = parts.next().map_or(Some(0), |x| x.parse().ok())?;
    // Digits only, so the first three are three bytes; the text is the client's.
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}").get(..3)?.parse().ok()?
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || !(-1_000_000..=1_000_000).contains(&year)
    {
        return None;
    }
    let days = sluice_expr::temporal::days_from_civil(year, month, day);
    let secs = ((days.checked_mul(24)?.checked_add(h)?)
        .checked_mul(60)?
        .checked_add(mi)?)
    .checked_mul(60)?
    .checked_add(sec)?;
    secs.checked_mul(1000)?
        .checked_add(ms)?
        .checked_sub(offset_min.checked_mul(60_000)?)
}

/// A plain function call expression, for syntax sqlparser parses specially.
fn call_expr(name: &str, args: Vec<SqlExpr>) -> SqlExpr {
    SqlExpr::Function(sqlparser::ast::Function {
        name: sqlparser::ast::ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(sqlparser::ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: vec![],
        }),
        within_group: vec![],
        filter: None,
        null_treatment: None,
        over: None,
    })
}

fn is_time_unit(word: &str) -> bool {
    let w = word.to_ascii_uppercase();
    let w = w.strip_suffix('S').unwrap_or(&w);
    matches!(
        w,
        "MILLISECOND" | "SECOND" | "MINUTE" | "HOUR" | "DAY" | "WEEK" | "MONTH" | "YEAR"
    )
}

fn castable(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    match (from, to) {
        (a, b) if a == b => true,
        (_, String) => true,
        (a, b) if a.is_numeric() && b.is_numeric() => true,
        (
            String,
            Boolean | Int | BigInt | Double | Decimal { .. } | Timestamp | Date | Time | Bytes,
        ) => true,
        (Timestamp, Date | Time) | (Date, Timestamp) => true,
        (Array(a), Array(b)) => castable(a, b),
        (Map(k1, v1), Map(k2, v2)) => castable(k1, k2) && castable(v1, v2),
        (Struct(_), Struct(_)) => true,
        _ => false,
    }
}

pub(crate) fn ty_name(t: &Option<DataType>) -> String {
    t.as_ref().map_or("NULL".to_string(), |t| t.to_string())
}

fn expect_bool(e: &SqlExpr, b: &Bound) -> Result<()> {
    match &b.ty {
        None | Some(DataType::Boolean) => Ok(()),
        Some(t) => err_at(
            e,
            format!("Type mismatch: expected BOOLEAN, got {t} in {e}"),
        ),
    }
}

fn is_null_literal(e: &SqlExpr) -> bool {
    matches!(e, SqlExpr::Value(v) if matches!(v.value, SqlValue::Null))
}

/// ksqlDB's name for a comparison operator in type errors.
fn comparison_name(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Eq => "EQUAL",
        BinaryOp::NotEq => "NOT_EQUAL",
        BinaryOp::Lt => "LESS_THAN",
        BinaryOp::LtEq => "LESS_THAN_OR_EQUAL",
        BinaryOp::Gt => "GREATER_THAN",
        _ => "GREATER_THAN_OR_EQUAL",
    }
}

fn comparison_symbol(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Eq => "=",
        BinaryOp::NotEq => "<>",
        BinaryOp::Lt => "<",
        BinaryOp::LtEq => "<=",
        BinaryOp::Gt => ">",
        _ => ">=",
    }
}

/// ksqlDB's `ComparisonUtil.isValidComparison`, by the left operand's base type: numbers
/// compare with numbers; strings with strings and temporal types; dates and timestamps
/// with each other and strings; times with times and strings; booleans, arrays, maps and
/// structs only for (in)equality with their own kind; bytes with bytes.
fn valid_comparison(l: &DataType, equality: bool, r: &DataType) -> bool {
    use DataType::*;
    let temporal = |t: &DataType| matches!(t, Timestamp | Date | Time);
    match l {
        _ if l.is_numeric() => r.is_numeric(),
        String => *r == String || temporal(r),
        Boolean => *r == Boolean && equality,
        Array(_) => matches!(r, Array(_)) && equality,
        Map(..) => matches!(r, Map(..)) && equality,
        Struct(_) => matches!(r, Struct(_)) && equality,
        Time => matches!(r, Time | String),
        Date | Timestamp => matches!(r, Date | Timestamp | String),
        Bytes => *r == Bytes,
        _ => false,
    }
}

/// An expression as ksqlDB shows it in messages: in a joined row, column references read
/// as the row's columns (`I1.BAR` as `I1_BAR`).
fn shown(scope: &Scope, e: &SqlExpr) -> String {
    if scope.joined.is_empty() {
        return ksql_text(e);
    }
    let mut e = e.clone();
    let _ = sqlparser::ast::visit_expressions_mut(&mut e, |x| {
        let renamed = match x {
            SqlExpr::Identifier(i) => scope.resolve(None, &ident_name(i)),
            SqlExpr::CompoundIdentifier(p) if p.len() == 2 => {
                scope.resolve(Some(&ident_name(&p[0])), &ident_name(&p[1]))
            }
            _ => None,
        };
        if let Some(n) = renamed {
            *x = SqlExpr::Identifier(Ident::new(n));
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    ksql_text(&e)
}

/// Checks the operands of a comparison and converts them to a type both compare in: text
/// beside a temporal type is read as that type, a DATE beside a TIMESTAMP as midnight.
fn comparison_operands(
    at: &SqlExpr,
    left: &SqlExpr,
    l: Bound,
    op: BinaryOp,
    right: &SqlExpr,
    r: Bound,
    scope: &Scope,
) -> Result<(Expr, Expr)> {
    let (Some(lt), Some(rt)) = (&l.ty, &r.ty) else {
        let name = |t: &Option<DataType>| t.as_ref().map_or("NULL", DataType::base_name);
        return err_at(
            at,
            format!(
                "Comparison with NULL not supported: {} {} {}\nUse 'IS NULL' or 'IS NOT NULL' instead.",
                name(&l.ty),
                comparison_symbol(op),
                name(&r.ty)
            ),
        );
    };
    let equality = matches!(op, BinaryOp::Eq | BinaryOp::NotEq);
    if !valid_comparison(lt, equality, rt) {
        return err_at(
            at,
            format!(
                "Cannot compare {} ({lt}) to {} ({rt}) with {}.",
                shown(scope, left),
                shown(scope, right),
                comparison_name(op)
            ),
        );
    }
    let cast = |b: Bound, to: &DataType| Expr::Cast {
        expr: Box::new(b.expr),
        to: to.clone(),
    };
    let temporal =
        |t: &DataType| matches!(t, DataType::Timestamp | DataType::Date | DataType::Time);
    Ok(match (lt, rt) {
        (DataType::String, t) if temporal(t) => (cast(l, t), r.expr),
        (t, DataType::String) if temporal(t) => {
            let t = t.clone();
            (l.expr, cast(r, &t))
        }
        (DataType::Date, DataType::Timestamp) => (cast(l, &DataType::Timestamp), r.expr),
        (DataType::Timestamp, DataType::Date) => (l.expr, cast(r, &DataType::Timestamp)),
        _ => (l.expr, r.expr),
    })
}

fn literal(e: &SqlExpr, v: &SqlValue) -> Result<Bound> {
    let (value, ty) = match v {
        SqlValue::Null => {
            return Ok(Bound {
                expr: Expr::Literal(Value::Null),
                ty: None,
            });
        }
        SqlValue::Boolean(b) => (Value::Boolean(*b), DataType::Boolean),
        SqlValue::SingleQuotedString(s) => (Value::String(s.clone()), DataType::String),
        SqlValue::Number(n, _) => number(e, n)?,
        other => return err_at(e, format!("Unsupported literal {other}")),
    };
    Ok(Bound {
        expr: Expr::Literal(value),
        ty: Some(ty),
    })
}

/// ksqlDB's literal typing: integers are INT when they fit, else BIGINT; a decimal point
/// makes a DECIMAL; an exponent makes a DOUBLE. `n` may carry a leading minus.
fn number(e: &SqlExpr, n: &str) -> Result<(Value, DataType)> {
    let bad = |message: String| {
        let s = e.span().start;
        Err(PlanError::new(message, s.line, s.column).with_kind(PlanErrorKind::BadLiteral))
    };
    if n.contains(['e', 'E']) {
        let Ok(d) = n.parse::<f64>() else {
            return bad(format!("Invalid numeric literal: {n}"));
        };
        if d.is_infinite() {
            return bad(format!("Number overflows DOUBLE: {n}"));
        }
        return Ok((Value::Double(d), DataType::Double));
    }
    if n.contains('.') {
        let Some((unscaled, scale)) = Value::parse_decimal(n) else {
            return bad(format!("Invalid numeric literal: {n}"));
        };
        let v = Value::Decimal { unscaled, scale };
        let ty = v.data_type().unwrap_or(DataType::Double);
        return Ok((v, ty));
    }
    match n.parse::<i64>() {
        Ok(i) => match i32::try_from(i) {
            Ok(small) => Ok((Value::Int(small), DataType::Int)),
            Err(_) => Ok((Value::BigInt(i), DataType::BigInt)),
        },
        Err(_) => bad(format!("Invalid numeric literal: {n}")),
    }
}

fn negate_literal(e: &SqlExpr, v: &Value) -> Result<Value> {
    Ok(match v {
        Value::Int(i) => i
            .checked_neg()
            .map_or(Value::BigInt(-(*i as i64)), Value::Int),
        Value::BigInt(i) => match i.checked_neg() {
            Some(n) => Value::BigInt(n),
            None => {
                return err_at(
                    e,
                    format!("Invalid numeric literal: -({i}) overflows BIGINT"),
                );
            }
        },
        Value::Double(d) => Value::Double(-d),
        Value::Decimal { unscaled, scale } => Value::Decimal {
            unscaled: -unscaled,
            scale: *scale,
        },
        Value::Null => Value::Null,
        other => return err_at(e, format!("Cannot negate {other}")),
    })
}

/// Maps a type as sqlparser parsed it (in CAST) to Sluice's.
pub fn convert_type(e: &SqlExpr, t: &SqlType) -> Result<DataType> {
    Ok(match t {
        SqlType::Boolean | SqlType::Bool => DataType::Boolean,
        SqlType::Int(_) | SqlType::Integer(_) => DataType::Int,
        SqlType::BigInt(_) => DataType::BigInt,
        SqlType::Double(_) | SqlType::DoublePrecision | SqlType::Float(_) | SqlType::Real => {
            DataType::Double
        }
        SqlType::String(_) | SqlType::Varchar(_) | SqlType::Text => DataType::String,
        SqlType::Bytes(_) => DataType::Bytes,
        SqlType::Timestamp(..) => DataType::Timestamp,
        SqlType::Date => DataType::Date,
        SqlType::Time(..) => DataType::Time,
        SqlType::Decimal(info) | SqlType::Numeric(info) => match info {
            sqlparser::ast::ExactNumberInfo::PrecisionAndScale(p, s) => DataType::Decimal {
                precision: (*p).min(38) as u8,
                scale: (*s).clamp(0, 38) as u8,
            },
            sqlparser::ast::ExactNumberInfo::Precision(p) => DataType::Decimal {
                precision: (*p).min(38) as u8,
                scale: 0,
            },
            sqlparser::ast::ExactNumberInfo::None => {
                return err_at(e, "DECIMAL needs a precision and scale");
            }
        },
        // The dialect parses CAST targets with ksqlDB's type grammar and carries the text.
        SqlType::Custom(name, _) => match sluice_sql::parse_type(&name.to_string()) {
            Ok(t) => t,
            Err(err) => return err_at(e, err.message),
        },
        other => return err_at(e, format!("Unsupported type in CAST: {other}")),
    })
}

/// The name ksqlDB registers a scalar function under, as its error messages print it:
/// most UDFs are registered in lower case, a few built-ins (COALESCE) in upper case.
fn udf_display_name(name: &str) -> String {
    match name {
        "COALESCE" => name.to_string(),
        _ => name.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod display_name_tests {
    use super::udf_display_name;

    #[test]
    fn coalesce_keeps_its_registered_case() {
        assert_eq!(udf_display_name("COALESCE"), "COALESCE");
        assert_eq!(udf_display_name("LEAST"), "least");
    }
}

#[cfg(test)]
mod timestamp_text_tests {
    use super::parse_timestamp_text;

    #[test]
    fn timestamp_literals_from_clients_never_panic() {
        assert_eq!(parse_timestamp_text("1970-01-01T00:00:01.5"), Some(1500));
        assert_eq!(
            parse_timestamp_text("1970-01-01T00:00:00.001+01:00"),
            Some(1 - 3_600_000)
        );
        for text in [
            "2020-01-01T00:00:00.éé",
            "2020-01-01T00:00:00.1é",
            "9223372036854775807-01-01",
            "-9223372036854775807-12-31T23:59:59",
            "2020-01-01T99999999999999999:00",
            "2020-01-01+é",
        ] {
            assert_eq!(parse_timestamp_text(text), None, "{text}");
        }
    }
}

#[cfg(test)]
mod type_rule_tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            columns: vec![
                ("I".into(), DataType::Int),
                ("B".into(), DataType::BigInt),
                ("S".into(), DataType::String),
                (
                    "D".into(),
                    DataType::Decimal {
                        precision: 4,
                        scale: 2,
                    },
                ),
                ("TS".into(), DataType::Timestamp),
                ("DT".into(), DataType::Date),
            ],
            qualifiers: vec!["T".into()],
            joined: Vec::new(),
        }
    }

    fn bind(sql: &str) -> Result<Bound> {
        let e = sluice_sql::parse_expr(sql).expect("parses");
        Binder::plain(&scope()).bind(&e)
    }

    fn ty(sql: &str) -> DataType {
        bind(sql).expect("binds").ty.expect("typed")
    }

    fn error(sql: &str) -> String {
        bind(sql).expect_err("fails").message
    }

    fn eval(sql: &str, row: &[Value]) -> Value {
        bind(sql).expect("binds").expr.eval(row)
    }

    fn row() -> Vec<Value> {
        vec![
            Value::Int(30),
            Value::BigInt(40),
            Value::Null,
            Value::Decimal {
                unscaled: 1050,
                scale: 2,
            },
            Value::Timestamp(86_400_000),
            Value::Date(1),
        ]
    }

    #[test]
    fn arithmetic_types_and_null_operands() {
        assert_eq!(ty("I + B"), DataType::BigInt);
        assert_eq!(
            ty("D + D"),
            DataType::Decimal {
                precision: 5,
                scale: 2
            }
        );
        assert_eq!(
            ty("D / D"),
            DataType::Decimal {
                precision: 11,
                scale: 7
            }
        );
        assert_eq!(
            error("1 + null"),
            "Error processing expression: (1 + null). Arithmetic on types INTEGER and null are not supported."
        );
        assert!(error("D / null").contains("Arithmetic on types DECIMAL(4, 2) and null"));
    }

    #[test]
    fn decimal_arithmetic_is_exact_or_null() {
        // DECIMAL(4, 2) / INTEGER (as DECIMAL(10, 0)) has scale max(6, 2 + 10 + 1).
        assert_eq!(
            eval("D / 2", &row()),
            Value::Decimal {
                unscaled: 52_500_000_000_000,
                scale: 13
            }
        );
        // 10.50 / 9 does not terminate: ksqlDB's UNNECESSARY rounding fails, so NULL.
        assert_eq!(eval("D / 9", &row()), Value::Null);
        assert_eq!(
            eval("D * D", &row()),
            Value::Decimal {
                unscaled: 1_102_500,
                scale: 4
            }
        );
    }

    #[test]
    fn case_branches_must_share_one_type() {
        assert_eq!(ty("CASE WHEN I > 1 THEN NULL ELSE S END"), DataType::String);
        assert!(
            error("CASE WHEN I > 1 THEN I ELSE B END").starts_with(
                "Invalid Case expression. Type for the default clause should be the same as for 'THEN' clauses."
            )
        );
        assert!(
            error("CASE WHEN I > 1 THEN 'a' WHEN I > 2 THEN 10 END").contains(
                "Type for all 'THEN' clauses should be the same.\nTHEN expression 'WHEN (I > 2) THEN 10' has type: INTEGER."
            )
        );
        assert!(
            error("CASE WHEN I THEN 1 END").starts_with("WHEN operand type should be boolean.")
        );
    }

    #[test]
    fn comparisons_follow_ksqldb_rules() {
        assert!(
            error("I = null").starts_with("Comparison with NULL not supported: INTEGER = NULL")
        );
        assert_eq!(
            error("I >= 'x'"),
            "Cannot compare I (INTEGER) to 'x' (STRING) with GREATER_THAN_OR_EQUAL."
        );
        // Text beside a timestamp is read as one; a date beside a timestamp is midnight.
        assert_eq!(
            eval("TS = '1970-01-02T00:00:00'", &row()),
            Value::Boolean(true)
        );
        assert_eq!(eval("DT = TS", &row()), Value::Boolean(true));
    }

    #[test]
    fn between_and_in_are_never_null() {
        assert_eq!(eval("S BETWEEN 'a' AND 'b'", &row()), Value::Boolean(false));
        assert_eq!(
            eval("S NOT BETWEEN 'a' AND 'b'", &row()),
            Value::Boolean(true)
        );
        assert_eq!(eval("S IN ('a', NULL)", &row()), Value::Boolean(false));
        assert_eq!(eval("S NOT IN ('a')", &row()), Value::Boolean(true));
        // The list is coerced to one type: '30' is read as a number beside I.
        assert_eq!(eval("I IN ('30', 2)", &row()), Value::Boolean(true));
        assert!(error("I IN ('x')").contains("invalid input syntax for type INTEGER: \"x\""));
    }

    #[test]
    fn a_null_argument_fits_any_parameter() {
        // FROM_UNIXTIME takes a BIGINT; a NULL literal is accepted there.
        assert_eq!(ty("FROM_UNIXTIME(null)"), DataType::Timestamp);
    }

    #[test]
    fn constructors_coerce_their_elements() {
        assert_eq!(
            ty("ARRAY[null, 10, '2e1', I, B]"),
            DataType::Array(Box::new(DataType::Decimal {
                precision: 19,
                scale: 0
            }))
        );
        assert_eq!(
            ty("MAP(S := true, 'k' := 'no')"),
            DataType::Map(Box::new(DataType::String), Box::new(DataType::Boolean))
        );
        assert!(error("ARRAY[S, I]").starts_with("operator does not exist: STRING = INTEGER (I)"));
    }
}
