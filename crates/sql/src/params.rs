//! Query parameters: `?` placeholders in a statement, replaced by literal values before
//! planning. The Pull RPC uses them so that a repeated query is parsed once per call and
//! values never need quoting into SQL text.

use crate::ParseError;
use crate::ast::{Select, SelectItem};
use sqlparser::ast::{Expr, Value, ValueWithSpan, visit_expressions_mut};
use sqlparser::tokenizer::Location;
use std::ops::ControlFlow;

/// A parameter value: the literals a `?` may stand for.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Null,
    Boolean(bool),
    /// An integer or decimal number, as SQL text (`42`, `-1.5`).
    Number(String),
    String(String),
}

impl Param {
    fn literal(&self) -> Value {
        match self {
            Param::Null => Value::Null,
            Param::Boolean(b) => Value::Boolean(*b),
            Param::Number(n) => Value::Number(n.clone(), false),
            Param::String(s) => Value::SingleQuotedString(s.clone()),
        }
    }
}

/// Where `e` is a `?` placeholder, its position.
pub fn placeholder_at(e: &Expr) -> Option<Location> {
    match e {
        Expr::Value(ValueWithSpan {
            value: Value::Placeholder(p),
            span,
        }) if p == "?" => Some(span.start),
        _ => None,
    }
}

/// Every expression of `select`, in the order they are written.
fn exprs_mut(select: &mut Select) -> impl Iterator<Item = &mut Expr> {
    let items = select.items.iter_mut().filter_map(|i| match i {
        SelectItem::Expr { expr, .. } => Some(expr),
        _ => None,
    });
    items
        .chain(select.selection.iter_mut())
        .chain(select.group_by.iter_mut())
        .chain(select.having.iter_mut())
        .chain(select.partition_by.iter_mut())
}

/// Positions of the `?` placeholders of `select`, in text order.
pub fn placeholders(select: &mut Select) -> Vec<Location> {
    let mut at = Vec::new();
    for e in exprs_mut(select) {
        let _ = visit_expressions_mut(e, |x: &mut Expr| {
            if let Some(loc) = placeholder_at(x) {
                at.push(loc);
            }
            ControlFlow::<()>::Continue(())
        });
    }
    at.sort_by_key(|l| (l.line, l.column));
    at
}

/// Replaces the `?` placeholders of `select`, in text order, by `params`. The counts must
/// match.
pub fn bind_params(select: &mut Select, params: &[Param]) -> Result<(), ParseError> {
    let at = placeholders(select);
    if at.len() != params.len() {
        let (line, column) = at.first().map_or((0, 0), |l| (l.line, l.column));
        return Err(ParseError {
            message: format!(
                "the query has {} parameter placeholder{} (?) but {} value{} were given",
                at.len(),
                if at.len() == 1 { "" } else { "s" },
                params.len(),
                if params.len() == 1 { "" } else { "s" },
            ),
            line,
            column,
        });
    }
    if at.is_empty() {
        return Ok(());
    }
    for e in exprs_mut(select) {
        let _ = visit_expressions_mut(e, |x: &mut Expr| {
            if let Some(loc) = placeholder_at(x)
                && let Ok(i) =
                    at.binary_search_by_key(&(loc.line, loc.column), |l| (l.line, l.column))
            {
                *x = Expr::value(params[i].literal());
            }
            ControlFlow::<()>::Continue(())
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StatementKind, parse};

    fn select(sql: &str) -> Select {
        match parse(sql).unwrap().remove(0).kind {
            StatementKind::Select(s) => *s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn placeholders_are_bound_in_text_order() {
        let mut s = select("SELECT A, ? AS P FROM T WHERE K = ? AND V BETWEEN ? AND ?;");
        bind_params(
            &mut s,
            &[
                Param::String("x".into()),
                Param::String("it's".into()),
                Param::Number("1".into()),
                Param::Number("2.5".into()),
            ],
        )
        .unwrap();
        let mut want =
            select("SELECT A, 'x' AS P FROM T WHERE K = 'it''s' AND V BETWEEN 1 AND 2.5;");
        assert!(placeholders(&mut s).is_empty());
        // Spans differ; compare the rendered expressions.
        let render = |s: &Select| format!("{:?} {}", s.items.len(), s.selection.as_ref().unwrap());
        assert_eq!(render(&s), render(&want));
        assert_eq!(placeholders(&mut want).len(), 0);
    }

    #[test]
    fn a_count_mismatch_is_an_error_naming_both_counts() {
        let mut s = select("SELECT * FROM T WHERE K = ?;");
        let e = bind_params(&mut s, &[]).unwrap_err();
        assert!(
            e.message
                .contains("1 parameter placeholder (?) but 0 values"),
            "{e}"
        );
        assert_eq!((e.line, e.column), (1, 27));
        let mut s = select("SELECT * FROM T WHERE K = 'a';");
        let e = bind_params(&mut s, &[Param::Null]).unwrap_err();
        assert!(
            e.message
                .contains("0 parameter placeholders (?) but 1 value"),
            "{e}"
        );
    }
}
