//! Coercion of expression lists to one type, as ksqlDB's `CoercionUtil.coerceUserList` does
//! for ARRAY and MAP constructors and IN lists.
//!
//! The common type is found by walking the list in order: the first typed element sets it,
//! NULL literals are skipped, and each later element must coerce to it (or it to the
//! element). Literals coerce more openly than other expressions: a string literal becomes a
//! number wide enough for its text or a boolean, and any literal becomes a string. Nested
//! constructors are resolved element by element, and structs merge their field sets. The
//! elements are then converted: literals at plan time, other expressions by a CAST.

use crate::bind::Bound;
use sluice_common::value::{decimal_value_type, parse_big_decimal};
use sluice_common::{DataType, Value};
use sluice_expr::Expr;
use sluice_expr::coerce::{coerce_value, parse_boolean_exact};

/// What the common-type walk needs to know about one element.
#[derive(Debug, Clone)]
pub(crate) struct Typed {
    node: Node,
    ty: Option<DataType>,
    /// The element as ksqlDB prints it in coercion errors.
    text: String,
}

#[derive(Debug, Clone)]
enum Node {
    Literal(Value),
    Array(Vec<Typed>),
    Map(Vec<(Typed, Typed)>),
    Struct(Vec<(String, Typed)>),
    Other,
}

/// Why a list has no common type. `Coercion` failures inside a nested constructor are
/// reported against the outer element, as ksqlDB does; other errors pass through.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CoerceError {
    Coercion(String),
    Other(String),
}

impl CoerceError {
    pub(crate) fn message(self) -> String {
        match self {
            CoerceError::Coercion(m) | CoerceError::Other(m) => m,
        }
    }
}

type R<T> = std::result::Result<T, CoerceError>;

impl Typed {
    /// Describes a bound element; `text` is how it was written.
    pub(crate) fn of(bound: &Bound, text: String) -> Typed {
        Typed::from_expr(&bound.expr, bound.ty.clone(), text)
    }

    /// Nested constructors were bound (and so converted) already: their elements have the
    /// constructor's element type, except NULL literals.
    fn from_expr(expr: &Expr, ty: Option<DataType>, text: String) -> Typed {
        let child = |e: &Expr, t: Option<&DataType>| {
            let ty = match e {
                Expr::Literal(Value::Null) => None,
                _ => t.cloned(),
            };
            Typed::from_expr(e, ty, String::new())
        };
        let node = match (expr, &ty) {
            (Expr::Literal(v), _) => Node::Literal(v.clone()),
            (Expr::MakeArray(items), Some(DataType::Array(t))) => {
                Node::Array(items.iter().map(|i| child(i, Some(t))).collect())
            }
            (Expr::MakeMap(entries), Some(DataType::Map(kt, vt))) => Node::Map(
                entries
                    .iter()
                    .map(|(k, v)| (child(k, Some(kt)), child(v, Some(vt))))
                    .collect(),
            ),
            (Expr::MakeStruct(fields), Some(DataType::Struct(types))) => Node::Struct(
                fields
                    .iter()
                    .map(|(n, e)| {
                        let t = types.iter().find(|(tn, _)| tn == n).map(|(_, t)| t);
                        (n.clone(), child(e, t))
                    })
                    .collect(),
            ),
            _ => Node::Other,
        };
        Typed { node, ty, text }
    }

    fn is_literal(&self) -> bool {
        matches!(self.node, Node::Literal(_))
    }
}

/// The common type of a list, None when it is empty or all NULL literals.
pub(crate) fn common_type(items: &[Typed]) -> R<Option<DataType>> {
    let mut result = None;
    for e in items {
        result = resolve(e, result)?;
    }
    Ok(result)
}

fn resolve(e: &Typed, common: Option<DataType>) -> R<Option<DataType>> {
    let Some(target) = common else {
        return Ok(e.ty.clone());
    };
    let Some(source) = &e.ty else {
        return Ok(Some(target));
    };
    let failure = |inner: R<Option<DataType>>| match inner {
        Err(CoerceError::Coercion(_)) => Err(coercion_failure(e, source, &target)),
        other => other,
    };
    match &e.node {
        Node::Array(items) => {
            let DataType::Array(item) = &target else {
                return Err(coercion_failure(e, source, &target));
            };
            failure(structured(item, items.iter()).map(|t| t.map(|t| DataType::Array(Box::new(t)))))
        }
        Node::Map(entries) => {
            let DataType::Map(kt, vt) = &target else {
                return Err(coercion_failure(e, source, &target));
            };
            failure((|| {
                let k = structured(kt, entries.iter().map(|(k, _)| k))?;
                let v = structured(vt, entries.iter().map(|(_, v)| v))?;
                Ok(match (k, v) {
                    (Some(k), Some(v)) => Some(DataType::Map(Box::new(k), Box::new(v))),
                    _ => None,
                })
            })())
        }
        Node::Struct(fields) => {
            let DataType::Struct(target_fields) = &target else {
                return Err(coercion_failure(e, source, &target));
            };
            failure((|| {
                let mut names: Vec<&String> = fields.iter().map(|(n, _)| n).collect();
                for (n, _) in target_fields {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
                let mut out = Vec::with_capacity(names.len());
                for name in names {
                    let value = fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
                    let target_ty = target_fields
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, t)| t.clone());
                    let ty = match (value.and_then(|v| v.ty.as_ref()), target_ty) {
                        (None, Some(t)) => t,
                        (Some(t), None) => t.clone(),
                        (Some(_), Some(t)) => match value {
                            Some(v) => resolve(v, Some(t))?.unwrap_or(DataType::String),
                            None => t,
                        },
                        (None, None) => DataType::String,
                    };
                    out.push((name.clone(), ty));
                }
                Ok(Some(DataType::Struct(out)))
            })())
        }
        Node::Literal(Value::String(text)) if target.is_numeric() => {
            numeric_from_text(text, &target).map(Some)
        }
        Node::Literal(Value::String(text)) if target == DataType::Boolean => {
            match parse_boolean_exact(text.trim()) {
                Some(_) => Ok(Some(target)),
                None => Err(invalid_syntax(text, &target)),
            }
        }
        _ => {
            let lax = e.is_literal();
            source
                .can_coerce(&target, lax)
                .or_else(|| target.can_coerce(source, lax))
                .map(Some)
                .ok_or_else(|| coercion_failure(e, source, &target))
        }
    }
}

/// The common type of a nested constructor's elements with what the list holds so far.
fn structured<'a>(
    target: &DataType,
    items: impl Iterator<Item = &'a Typed>,
) -> R<Option<DataType>> {
    let mut result = Some(target.clone());
    for e in items {
        result = resolve(e, result)?;
    }
    Ok(result)
}

/// A string literal beside numbers: the narrowest type its text needs, widened with the
/// list's type.
fn numeric_from_text(text: &str, target: &DataType) -> R<DataType> {
    let source = text_numeric_type(text).ok_or_else(|| invalid_syntax(text, target))?;
    Ok(match (&source, target) {
        (DataType::Double, _) | (_, DataType::Double) => DataType::Double,
        (DataType::Decimal { .. }, _) | (_, DataType::Decimal { .. }) => {
            DataType::decimal_widen(&source, target).unwrap_or(DataType::Double)
        }
        _ if source.can_implicitly_cast(target) => target.clone(),
        _ => source,
    })
}

/// ksqlDB reads numeric text as a BigDecimal: integers strictly inside INT's range are
/// INTEGER, then BIGINT; anything with a point or exponent, or larger, a DECIMAL.
fn text_numeric_type(text: &str) -> Option<DataType> {
    let (unscaled, scale) = parse_big_decimal(text.trim())?;
    if !text.contains(['.', 'e', 'E']) && scale == 0 {
        if unscaled > i128::from(i32::MIN) && unscaled < i128::from(i32::MAX) {
            return Some(DataType::Int);
        }
        if unscaled > i128::from(i64::MIN) && unscaled < i128::from(i64::MAX) {
            return Some(DataType::BigInt);
        }
    }
    let (precision, scale) = decimal_value_type(unscaled, scale);
    Some(DataType::Decimal { precision, scale })
}

fn invalid_syntax(text: &str, target: &DataType) -> CoerceError {
    CoerceError::Other(format!(
        "invalid input syntax for type {}: \"{text}\".",
        target.base_name()
    ))
}

fn coercion_failure(e: &Typed, source: &DataType, target: &DataType) -> CoerceError {
    CoerceError::Coercion(format!(
        "operator does not exist: {target} = {source} ({})\nHint: You might need to add explicit type casts.",
        e.text
    ))
}

/// Converts a bound element to the common type: a literal becomes a literal of that type,
/// anything else of another type is CAST.
pub(crate) fn convert(bound: Bound, common: &DataType) -> std::result::Result<Expr, String> {
    if bound.ty.as_ref().is_none_or(|t| t == common) {
        return Ok(bound.expr);
    }
    match bound.expr {
        Expr::Literal(v) => match coerce_value(&v, common, true) {
            Some(c) => Ok(Expr::Literal(c)),
            None => Err(format!(
                "invalid input syntax for type {}: \"{v}\".",
                common.base_name()
            )),
        },
        other => Ok(Expr::Cast {
            expr: Box::new(other),
            to: common.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(v: Value) -> Typed {
        let ty = v.data_type();
        Typed {
            node: Node::Literal(v),
            ty,
            text: String::new(),
        }
    }

    fn col(t: DataType, name: &str) -> Typed {
        Typed {
            node: Node::Other,
            ty: Some(t),
            text: name.into(),
        }
    }

    #[test]
    fn numbers_and_numeric_text_widen_to_one_type() {
        let items = [
            lit(Value::Null),
            lit(Value::Int(10)),
            lit(Value::String("2e1".into())),
            col(DataType::Int, "A"),
            col(DataType::BigInt, "B"),
        ];
        assert_eq!(
            common_type(&items),
            Ok(Some(DataType::Decimal {
                precision: 19,
                scale: 0
            }))
        );
    }

    #[test]
    fn text_that_is_no_number_is_a_syntax_error() {
        let items = [
            lit(Value::Int(1)),
            lit(Value::String("not a number".into())),
        ];
        assert_eq!(
            common_type(&items),
            Err(CoerceError::Other(
                "invalid input syntax for type INTEGER: \"not a number\".".into()
            ))
        );
    }

    #[test]
    fn literals_coerce_to_text_but_columns_do_not() {
        let items = [col(DataType::String, "K"), lit(Value::Int(10))];
        assert_eq!(common_type(&items), Ok(Some(DataType::String)));
        let items = [col(DataType::String, "K"), col(DataType::Int, "V")];
        assert_eq!(
            common_type(&items),
            Err(CoerceError::Coercion(
                "operator does not exist: STRING = INTEGER (V)\nHint: You might need to add explicit type casts."
                    .into()
            ))
        );
        let items = [
            col(DataType::Boolean, "V"),
            lit(Value::String("yes".into())),
        ];
        assert_eq!(common_type(&items), Ok(Some(DataType::Boolean)));
    }

    #[test]
    fn struct_constructors_merge_their_fields() {
        let s = |fields: Vec<(&str, DataType)>| {
            let ty = DataType::Struct(
                fields
                    .iter()
                    .map(|(n, t)| (n.to_string(), t.clone()))
                    .collect(),
            );
            let expr = Expr::MakeStruct(
                fields
                    .iter()
                    .map(|(n, _)| (n.to_string(), Expr::Column(0)))
                    .collect(),
            );
            Typed::from_expr(&expr, Some(ty), String::new())
        };
        let items = [
            lit(Value::Null),
            s(vec![("X", DataType::Int), ("Y", DataType::BigInt)]),
            s(vec![("Y", DataType::Int), ("Z", DataType::BigInt)]),
        ];
        assert_eq!(
            common_type(&items),
            Ok(Some(DataType::Struct(vec![
                ("Y".into(), DataType::BigInt),
                ("Z".into(), DataType::BigInt),
                ("X".into(), DataType::Int),
            ])))
        );
    }

    #[test]
    fn literals_convert_at_plan_time() {
        let b = Bound {
            expr: Expr::Literal(Value::String("2e1".into())),
            ty: Some(DataType::String),
        };
        let to = DataType::Decimal {
            precision: 19,
            scale: 0,
        };
        assert!(matches!(
            convert(b, &to),
            Ok(Expr::Literal(Value::Decimal {
                unscaled: 20,
                scale: 0
            }))
        ));
    }
}
