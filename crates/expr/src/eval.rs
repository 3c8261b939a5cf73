//! The expression tree and its evaluation over one row.

use crate::functions::ScalarFunction;
use crate::limits::max_value_bytes;
use sluice_common::value::format_double;
use sluice_common::{DataType, Value};
use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
    Concat,
}

impl BinaryOp {
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq
                | BinaryOp::NotEq
                | BinaryOp::Lt
                | BinaryOp::LtEq
                | BinaryOp::Gt
                | BinaryOp::GtEq
        )
    }

    pub fn is_arithmetic(self) -> bool {
        matches!(
            self,
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod
        )
    }
}

#[derive(Debug, Clone)]
pub enum Expr {
    Column(usize),
    Literal(Value),
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// Exact DECIMAL arithmetic to the result type ksqlDB gives it: the exact result at
    /// `scale` digits, NULL where that needs rounding (ksqlDB computes with
    /// `MathContext(precision, UNNECESSARY)` and `setScale(scale)`, and a failure is NULL).
    Decimal {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
        precision: u8,
        scale: u8,
    },
    Not(Box<Expr>),
    Negate(Box<Expr>),
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    Cast {
        expr: Box<Expr>,
        to: DataType,
    },
    Call {
        func: &'static ScalarFunction,
        args: Vec<Expr>,
    },
    /// Searched CASE; a simple CASE is rewritten into this by the planner.
    Case {
        branches: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        escape: Option<char>,
        negated: bool,
    },
    /// `ARRAY[a, b, ...]`
    MakeArray(Vec<Expr>),
    /// `MAP(k := v, ...)`
    MakeMap(Vec<(Expr, Expr)>),
    /// `STRUCT(name := v, ...)`
    MakeStruct(Vec<(String, Expr)>),
    /// `s->field`
    Field {
        expr: Box<Expr>,
        name: String,
    },
    /// `a[i]` (1-based, negative counts from the end) or `m[key]`.
    Subscript {
        expr: Box<Expr>,
        index: Box<Expr>,
    },
    /// TRANSFORM, FILTER and REDUCE over an array or a map, with lambdas.
    HigherOrder {
        func: HigherOrder,
        input: Box<Expr>,
        init: Option<Box<Expr>>,
        lambdas: Vec<Lambda>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HigherOrder {
    Transform,
    Filter,
    Reduce,
}

/// A lambda's body sees the enclosing row's first `base` columns followed by its
/// parameters, so parameters are plain column references and lambdas can nest.
#[derive(Debug, Clone)]
pub struct Lambda {
    pub base: usize,
    pub body: Box<Expr>,
}

/// A lambda call that fails, as ksqlDB's generated code does; the whole higher-order
/// function is then NULL.
struct LambdaFailed;

impl Lambda {
    fn call(&self, row: &[Value], args: &[Value]) -> Result<Value, LambdaFailed> {
        let mut r = Vec::with_capacity(self.base + args.len());
        r.extend_from_slice(&row[..self.base.min(row.len())]);
        r.resize(self.base, Value::Null);
        r.extend_from_slice(args);
        if self.unboxes_null(&self.body, &r) {
            return Err(LambdaFailed);
        }
        Ok(self.body.eval(&r))
    }

    /// ksqlDB compiles a lambda's parameters as boxed Java values: arithmetic directly on a
    /// NULL parameter unboxes it and throws, where arithmetic on NULL columns is NULL.
    fn unboxes_null(&self, e: &Expr, r: &[Value]) -> bool {
        match e {
            Expr::Binary {
                op: BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod,
                left,
                right,
            } => [left, right].into_iter().any(|o| match o.as_ref() {
                Expr::Column(i) => *i >= self.base && r.get(*i).is_none_or(Value::is_null),
                other => self.unboxes_null(other, r),
            }),
            Expr::Negate(inner) => match inner.as_ref() {
                Expr::Column(i) => *i >= self.base && r.get(*i).is_none_or(Value::is_null),
                other => self.unboxes_null(other, r),
            },
            _ => false,
        }
    }
}

fn higher_order(
    func: HigherOrder,
    input: Value,
    init: Option<Value>,
    lambdas: &[Lambda],
    row: &[Value],
) -> Value {
    let apply = || -> Result<Value, LambdaFailed> {
        match (func, input, lambdas) {
            (HigherOrder::Transform, Value::Array(items), [f]) => items
                .into_iter()
                .map(|i| f.call(row, &[i]))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            (HigherOrder::Transform, Value::Map(entries), [fk, fv]) => entries
                .into_iter()
                .map(|(k, v)| {
                    let args = [k, v];
                    Ok((fk.call(row, &args)?, fv.call(row, &args)?))
                })
                .collect::<Result<_, _>>()
                .map(Value::Map),
            (HigherOrder::Filter, Value::Array(items), [f]) => {
                let mut kept = Vec::new();
                for i in items {
                    if f.call(row, std::slice::from_ref(&i))?.as_bool() == Some(true) {
                        kept.push(i);
                    }
                }
                Ok(Value::Array(kept))
            }
            (HigherOrder::Filter, Value::Map(entries), [f]) => {
                let mut kept = Vec::new();
                for (k, v) in entries {
                    if f.call(row, &[k.clone(), v.clone()])?.as_bool() == Some(true) {
                        kept.push((k, v));
                    }
                }
                Ok(Value::Map(kept))
            }
            (HigherOrder::Reduce, Value::Array(items), [f]) => {
                let mut acc = init.unwrap_or(Value::Null);
                for i in items {
                    acc = f.call(row, &[acc, i])?;
                }
                Ok(acc)
            }
            (HigherOrder::Reduce, Value::Map(entries), [f]) => {
                let mut acc = init.unwrap_or(Value::Null);
                for (k, v) in entries {
                    acc = f.call(row, &[acc, k, v])?;
                }
                Ok(acc)
            }
            // Folding nothing leaves the initial state, as ksqlDB's REDUCE does for NULL input.
            (HigherOrder::Reduce, Value::Null, _) => Ok(init.unwrap_or(Value::Null)),
            _ => Ok(Value::Null),
        }
    };
    apply().unwrap_or(Value::Null)
}

impl Expr {
    pub fn eval(&self, row: &[Value]) -> Value {
        match self {
            Expr::Column(i) => row.get(*i).cloned().unwrap_or(Value::Null),
            Expr::Literal(v) => v.clone(),
            Expr::Binary {
                op: BinaryOp::And,
                left,
                right,
            } => {
                // Three-valued logic: FALSE wins over NULL.
                match left.eval(row).as_bool() {
                    Some(false) => Value::Boolean(false),
                    l => match (l, right.eval(row).as_bool()) {
                        (_, Some(false)) => Value::Boolean(false),
                        (Some(true), Some(true)) => Value::Boolean(true),
                        _ => Value::Null,
                    },
                }
            }
            Expr::Binary {
                op: BinaryOp::Or,
                left,
                right,
            } => match left.eval(row).as_bool() {
                Some(true) => Value::Boolean(true),
                l => match (l, right.eval(row).as_bool()) {
                    (_, Some(true)) => Value::Boolean(true),
                    (Some(false), Some(false)) => Value::Boolean(false),
                    _ => Value::Null,
                },
            },
            Expr::Binary { op, left, right } => binary(*op, left.eval(row), right.eval(row)),
            Expr::Decimal {
                op,
                left,
                right,
                precision,
                scale,
            } => decimal_exact(*op, &left.eval(row), &right.eval(row), *precision, *scale),
            Expr::Not(e) => match e.eval(row).as_bool() {
                Some(b) => Value::Boolean(!b),
                None => Value::Null,
            },
            Expr::Negate(e) => match e.eval(row) {
                Value::Int(i) => Value::Int(i.wrapping_neg()),
                Value::BigInt(i) => Value::BigInt(i.wrapping_neg()),
                Value::Double(d) => Value::Double(-d),
                Value::Decimal { unscaled, scale } => Value::Decimal {
                    unscaled: unscaled.wrapping_neg(),
                    scale,
                },
                _ => Value::Null,
            },
            Expr::IsNull { expr, negated } => Value::Boolean(expr.eval(row).is_null() != *negated),
            Expr::Cast { expr, to } => cast(expr.eval(row), to),
            Expr::Call { func, args } => {
                // A function's arguments together, and its result, are at most
                // `max_value_bytes`, else the call is NULL (like a function that fails):
                // sizes a client can choose (LPAD's length, CONCAT of many of them) must
                // not become allocations that exhaust the server's memory.
                let limit = max_value_bytes();
                let mut values = Vec::with_capacity(args.len());
                let mut bytes = 0usize;
                for a in args {
                    let v = a.eval(row);
                    bytes = bytes.saturating_add(v.size_within(limit));
                    if bytes > limit {
                        return Value::Null;
                    }
                    values.push(v);
                }
                let out = (func.eval)(&values);
                if out.size_within(limit) > limit {
                    Value::Null
                } else {
                    out
                }
            }
            Expr::Case {
                branches,
                otherwise,
            } => {
                for (when, then) in branches {
                    if when.eval(row).as_bool() == Some(true) {
                        return then.eval(row);
                    }
                }
                otherwise.as_ref().map_or(Value::Null, |e| e.eval(row))
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                // ksqlDB's InListEvaluator: NULL never matches, and the answer is TRUE or
                // FALSE, never NULL (so `NULL NOT IN (...)` is TRUE).
                let v = expr.eval(row);
                let found = !v.is_null()
                    && list
                        .iter()
                        .any(|item| v.sql_eq(&item.eval(row)) == Some(true));
                Value::Boolean(found != *negated)
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let v = expr.eval(row);
                match (v.sql_cmp(&low.eval(row)), v.sql_cmp(&high.eval(row))) {
                    (Some(l), Some(h)) => {
                        Value::Boolean((l != Ordering::Less && h != Ordering::Greater) != *negated)
                    }
                    _ => Value::Null,
                }
            }
            Expr::HigherOrder {
                func,
                input,
                init,
                lambdas,
            } => higher_order(
                *func,
                input.eval(row),
                init.as_ref().map(|i| i.eval(row)),
                lambdas,
                row,
            ),
            Expr::MakeArray(items) => Value::Array(items.iter().map(|e| e.eval(row)).collect()),
            Expr::MakeMap(entries) => {
                let mut out: Vec<(Value, Value)> = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    let (k, v) = (k.eval(row), v.eval(row));
                    // A repeated key keeps its last value, as a map literal would.
                    match out.iter_mut().find(|(ok, _)| *ok == k) {
                        Some(slot) => slot.1 = v,
                        None => out.push((k, v)),
                    }
                }
                Value::Map(out)
            }
            Expr::MakeStruct(fields) => Value::Struct(
                fields
                    .iter()
                    .map(|(n, e)| (n.clone(), e.eval(row)))
                    .collect(),
            ),
            Expr::Field { expr, name } => match expr.eval(row) {
                Value::Struct(fields) => fields
                    .into_iter()
                    .find(|(n, _)| n == name)
                    .map_or(Value::Null, |(_, v)| v),
                _ => Value::Null,
            },
            Expr::Subscript { expr, index } => match (expr.eval(row), index.eval(row)) {
                (Value::Array(items), i) => match i.as_i64() {
                    Some(i) if i > 0 => {
                        items.into_iter().nth(i as usize - 1).unwrap_or(Value::Null)
                    }
                    Some(i) if i < 0 => {
                        let n = items.len() as i64;
                        if -i <= n {
                            items
                                .into_iter()
                                .nth((n + i) as usize)
                                .unwrap_or(Value::Null)
                        } else {
                            Value::Null
                        }
                    }
                    _ => Value::Null,
                },
                (Value::Map(entries), k) => entries
                    .into_iter()
                    .find(|(ek, _)| ek.sql_eq(&k) == Some(true))
                    .map_or(Value::Null, |(_, v)| v),
                _ => Value::Null,
            },
            Expr::Like {
                expr,
                pattern,
                escape,
                negated,
            } => match (expr.eval(row), pattern.eval(row)) {
                (Value::String(s), Value::String(p)) => {
                    Value::Boolean(like(&s, &p, *escape) != *negated)
                }
                _ => Value::Null,
            },
        }
    }

    /// Evaluates a predicate: only TRUE passes (NULL and FALSE filter the row out).
    pub fn test(&self, row: &[Value]) -> bool {
        self.eval(row).as_bool() == Some(true)
    }

    /// Whether every column of the row this expression reads satisfies `allowed`. Lambda
    /// parameters are not row columns and always qualify. Lets a caller evaluate the
    /// expression over a partially decoded row (e.g. only the key) with the same result.
    pub fn reads_only(&self, allowed: &dyn Fn(usize) -> bool) -> bool {
        self.reads_only_below(allowed, usize::MAX)
    }

    /// `params_from`: columns at or above it are lambda parameters, not row columns.
    fn reads_only_below(&self, allowed: &dyn Fn(usize) -> bool, params_from: usize) -> bool {
        let ok = |e: &Expr| e.reads_only_below(allowed, params_from);
        match self {
            Expr::Column(i) => *i >= params_from || allowed(*i),
            Expr::Literal(_) => true,
            Expr::Binary { left, right, .. } | Expr::Decimal { left, right, .. } => {
                ok(left) && ok(right)
            }
            Expr::Not(e) | Expr::Negate(e) => ok(e),
            Expr::IsNull { expr, .. } | Expr::Cast { expr, .. } | Expr::Field { expr, .. } => {
                ok(expr)
            }
            Expr::Call { args, .. } | Expr::MakeArray(args) => args.iter().all(ok),
            Expr::Case {
                branches,
                otherwise,
            } => {
                branches.iter().all(|(w, t)| ok(w) && ok(t)) && otherwise.as_deref().is_none_or(ok)
            }
            Expr::InList { expr, list, .. } => ok(expr) && list.iter().all(ok),
            Expr::Between {
                expr, low, high, ..
            } => ok(expr) && ok(low) && ok(high),
            Expr::Like { expr, pattern, .. } => ok(expr) && ok(pattern),
            Expr::MakeMap(entries) => entries.iter().all(|(k, v)| ok(k) && ok(v)),
            Expr::MakeStruct(fields) => fields.iter().all(|(_, v)| ok(v)),
            Expr::Subscript { expr, index } => ok(expr) && ok(index),
            Expr::HigherOrder {
                input,
                init,
                lambdas,
                ..
            } => {
                ok(input)
                    && init.as_deref().is_none_or(ok)
                    && lambdas
                        .iter()
                        .all(|l| l.body.reads_only_below(allowed, l.base.min(params_from)))
            }
        }
    }
}

fn binary(op: BinaryOp, l: Value, r: Value) -> Value {
    use Value::*;
    if l.is_null() || r.is_null() {
        // ksqlDB's comparisons are FALSE, not NULL, when an operand is NULL.
        return if op.is_comparison() {
            Boolean(false)
        } else {
            Null
        };
    }
    if op.is_comparison() {
        let ord = if matches!(op, BinaryOp::Eq | BinaryOp::NotEq) {
            match l.sql_eq(&r) {
                Some(true) => Some(Ordering::Equal),
                Some(false) => Some(Ordering::Less),
                None => None,
            }
        } else {
            l.sql_cmp(&r)
        };
        let Some(ord) = ord else { return Null };
        return Boolean(match op {
            BinaryOp::Eq => ord == Ordering::Equal,
            BinaryOp::NotEq => ord != Ordering::Equal,
            BinaryOp::Lt => ord == Ordering::Less,
            BinaryOp::LtEq => ord != Ordering::Greater,
            BinaryOp::Gt => ord == Ordering::Greater,
            _ => ord != Ordering::Less,
        });
    }
    if op == BinaryOp::Concat {
        // `||` chains are bounded like function calls (see `max_value_bytes`).
        let limit = max_value_bytes();
        if l.size_within(limit).saturating_add(r.size_within(limit)) > limit {
            return Null;
        }
        return match (l, r) {
            (String(a), String(b)) => String(a + &b),
            (a, b) => String(format!("{a}{b}")),
        };
    }
    match (l, r) {
        (Int(a), Int(b)) => match op {
            BinaryOp::Add => Int(a.wrapping_add(b)),
            BinaryOp::Sub => Int(a.wrapping_sub(b)),
            BinaryOp::Mul => Int(a.wrapping_mul(b)),
            BinaryOp::Div => a.checked_div(b).map_or(Null, Int),
            BinaryOp::Mod => a.checked_rem(b).map_or(Null, Int),
            _ => Null,
        },
        (a @ (Int(_) | BigInt(_)), b @ (Int(_) | BigInt(_))) => {
            let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) else {
                return Null;
            };
            match op {
                BinaryOp::Add => BigInt(a.wrapping_add(b)),
                BinaryOp::Sub => BigInt(a.wrapping_sub(b)),
                BinaryOp::Mul => BigInt(a.wrapping_mul(b)),
                BinaryOp::Div => a.checked_div(b).map_or(Null, BigInt),
                BinaryOp::Mod => a.checked_rem(b).map_or(Null, BigInt),
                _ => Null,
            }
        }
        (a @ (Decimal { .. } | Int(_) | BigInt(_)), b @ (Decimal { .. } | Int(_) | BigInt(_))) => {
            decimal_op(op, &a, &b)
        }
        (a, b) => {
            let (Some(a), Some(b)) = (a.as_f64(), b.as_f64()) else {
                return Null;
            };
            Double(match op {
                BinaryOp::Add => a + b,
                BinaryOp::Sub => a - b,
                BinaryOp::Mul => a * b,
                BinaryOp::Div => a / b,
                BinaryOp::Mod => a % b,
                _ => return Null,
            })
        }
    }
}

fn as_decimal(v: &Value) -> Option<(i128, u8)> {
    match v {
        Value::Decimal { unscaled, scale } => Some((*unscaled, *scale)),
        Value::Int(i) => Some((*i as i128, 0)),
        Value::BigInt(i) => Some((*i as i128, 0)),
        _ => None,
    }
}

fn decimal_op(op: BinaryOp, a: &Value, b: &Value) -> Value {
    let (Some((a, sa)), Some((b, sb))) = (as_decimal(a), as_decimal(b)) else {
        return Value::Null;
    };
    let s = sa.max(sb);
    let (Some(x), Some(y)) = (
        Value::decimal_rescale(a, sa, s),
        Value::decimal_rescale(b, sb, s),
    ) else {
        return Value::Null;
    };
    let result = match op {
        BinaryOp::Add => x.checked_add(y).map(|u| (u, s)),
        BinaryOp::Sub => x.checked_sub(y).map(|u| (u, s)),
        BinaryOp::Mul => a.checked_mul(b).map(|u| (u, sa + sb)),
        BinaryOp::Mod => x.checked_rem(y).map(|u| (u, s)),
        BinaryOp::Div => {
            if y == 0 {
                None
            } else {
                // Keep six extra fractional digits, as ksqlDB's division scale does.
                let out_scale = (s + 6).min(38);
                Value::decimal_rescale(x, s, out_scale + s)
                    .and_then(|num| num.checked_div(y))
                    .map(|u| (u, out_scale))
            }
        }
        _ => None,
    };
    result.map_or(Value::Null, |(unscaled, scale)| Value::Decimal {
        unscaled,
        scale,
    })
}

/// `left op right` in exact decimal arithmetic, the result at `scale` digits and within
/// `precision`; NULL where that is not exact (or an operand is NULL, or a divisor zero).
fn decimal_exact(op: BinaryOp, l: &Value, r: &Value, precision: u8, scale: u8) -> Value {
    let (Some((a, sa)), Some((b, sb))) = (as_decimal(l), as_decimal(r)) else {
        return Value::Null;
    };
    let pow = |n: u32| 10i128.checked_pow(n);
    // The exact result as (unscaled, scale).
    let exact: Option<(i128, i64)> = (|| match op {
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mod => {
            let s = sa.max(sb);
            let x = Value::decimal_rescale(a, sa, s)?;
            let y = Value::decimal_rescale(b, sb, s)?;
            let u = match op {
                BinaryOp::Add => x.checked_add(y)?,
                BinaryOp::Sub => x.checked_sub(y)?,
                _ => x.checked_rem(y)?,
            };
            Some((u, i64::from(s)))
        }
        BinaryOp::Mul => Some((a.checked_mul(b)?, i64::from(sa) + i64::from(sb))),
        BinaryOp::Div => {
            if b == 0 {
                return None;
            }
            // a / b at `scale` digits: a * 10^(scale - sa + sb) / b, which must divide
            // exactly.
            let e = i64::from(scale) - i64::from(sa) + i64::from(sb);
            let (n, d) = if e >= 0 {
                (a.checked_mul(pow(u32::try_from(e).ok()?)?)?, b)
            } else {
                (a, b.checked_mul(pow(u32::try_from(-e).ok()?)?)?)
            };
            if n % d != 0 {
                return None;
            }
            Some((n / d, i64::from(scale)))
        }
        _ => None,
    })();
    let Some((u, s)) = exact else {
        return Value::Null;
    };
    let target = i64::from(scale);
    let u = if s <= target {
        u32::try_from(target - s)
            .ok()
            .and_then(pow)
            .and_then(|m| u.checked_mul(m))
    } else {
        u32::try_from(s - target)
            .ok()
            .and_then(pow)
            .filter(|d| u % d == 0)
            .map(|d| u / d)
    };
    match u {
        Some(u) if pow(u32::from(precision)).is_none_or(|max| u.abs() < max) => {
            Value::Decimal { unscaled: u, scale }
        }
        _ => Value::Null,
    }
}

/// CAST with ksqlDB's semantics; values that cannot convert become NULL.
pub fn cast(v: Value, to: &DataType) -> Value {
    use Value::*;
    if v.is_null() {
        return Null;
    }
    match to {
        DataType::String => match v {
            String(s) => String(s),
            Double(d) => String(format_double(d)),
            Date(d) => crate::temporal::format_date(d as i64, "yyyy-MM-dd").map_or(Null, String),
            Time(t) => crate::temporal::format_time(t, "HH:mm:ss.SSS").map_or(Null, String),
            Timestamp(t) => crate::temporal::format_timestamp(
                t,
                "yyyy-MM-dd'T'HH:mm:ss.SSS",
                &crate::temporal::Zone::utc(),
            )
            .map_or(Null, String),
            // Java's Struct.toString, which is what ksqlDB prints.
            Struct(fields) => String(format!(
                "Struct{{{}}}",
                fields
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(n, v)| format!(
                        "{n}={}",
                        cast(v.clone(), &DataType::String)
                            .as_str()
                            .unwrap_or("null")
                    ))
                    .collect::<Vec<_>>()
                    .join(",")
            )),
            other => String(other.to_string()),
        },
        DataType::Array(item) => match v {
            Array(items) => Array(items.into_iter().map(|i| cast(i, item)).collect()),
            _ => Null,
        },
        DataType::Map(kt, vt) => match v {
            Map(entries) => Map(entries
                .into_iter()
                .map(|(k, v)| (cast(k, kt), cast(v, vt)))
                .collect()),
            _ => Null,
        },
        DataType::Struct(fields) => match v {
            Struct(have) => Struct(
                fields
                    .iter()
                    .map(|(n, t)| {
                        let v = have
                            .iter()
                            .find(|(hn, _)| hn == n)
                            .map_or(Null, |(_, v)| v.clone());
                        (n.clone(), cast(v, t))
                    })
                    .collect(),
            ),
            _ => Null,
        },
        DataType::Boolean => match v {
            Boolean(b) => Boolean(b),
            String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Boolean(true),
                "false" => Boolean(false),
                _ => Null,
            },
            _ => Null,
        },
        DataType::Int => match v {
            Int(i) => Int(i),
            BigInt(i) => Int(i as i32),
            Double(d) => Int(d as i32),
            d @ Decimal { .. } => d.as_f64().map_or(Null, |f| Int(f as i32)),
            String(s) => s.trim().parse().map_or(Null, Int),
            _ => Null,
        },
        DataType::BigInt => match v {
            Int(i) => BigInt(i as i64),
            BigInt(i) => BigInt(i),
            Double(d) => BigInt(d as i64),
            d @ Decimal { .. } => d.as_f64().map_or(Null, |f| BigInt(f as i64)),
            String(s) => s.trim().parse().map_or(Null, BigInt),
            Timestamp(t) => BigInt(t),
            _ => Null,
        },
        DataType::Double => match v {
            String(s) => s.trim().parse().map_or(Null, Double),
            other => other.as_f64().map_or(Null, Double),
        },
        DataType::Decimal { precision, scale } => {
            let parsed = match &v {
                Decimal { unscaled, scale } => Some((*unscaled, *scale)),
                Int(_) | BigInt(_) => v.as_i64().map(|i| (i as i128, 0)),
                Double(d) => Value::parse_decimal(&format!("{d:.*}", *scale as usize)),
                // Java's `new BigDecimal(text)`: exponents allowed.
                String(s) => sluice_common::value::parse_big_decimal(s.trim()),
                _ => None,
            };
            match parsed.and_then(|(u, s)| Value::decimal_rescale(u, s, *scale)) {
                // 10^39 does not fit a u128; every i128 has at most 39 digits.
                Some(u)
                    if 10u128
                        .checked_pow(*precision as u32)
                        .is_none_or(|limit| u.unsigned_abs() < limit) =>
                {
                    Decimal {
                        unscaled: u,
                        scale: *scale,
                    }
                }
                _ => Null,
            }
        }
        DataType::Timestamp => match v {
            Timestamp(t) | BigInt(t) => Timestamp(t),
            Date(d) => i64::from(d).checked_mul(86_400_000).map_or(Null, Timestamp),
            String(s) => crate::functions::parse_timestamp(&s).map_or(Null, Timestamp),
            _ => Null,
        },
        DataType::Date if matches!(v, String(_)) => match v {
            String(s) => crate::functions::parse_date(&s)
                .and_then(|d| i32::try_from(d).ok())
                .map_or(Null, Date),
            _ => Null,
        },
        DataType::Time if matches!(v, String(_)) => match v {
            String(s) => crate::functions::parse_time(&s).map_or(Null, Time),
            _ => Null,
        },
        DataType::Date if matches!(v, Timestamp(_)) => match v {
            Timestamp(t) => i32::try_from(t.div_euclid(86_400_000)).map_or(Null, Date),
            _ => Null,
        },
        DataType::Time if matches!(v, Timestamp(_)) => match v {
            Timestamp(t) => Time(t.rem_euclid(86_400_000)),
            _ => Null,
        },
        DataType::Bytes => match v {
            Bytes(b) => Bytes(b),
            // As ksqlDB reads text where bytes are wanted: base64.
            String(s) => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .map_or(Null, Bytes)
            }
            _ => Null,
        },
        _ => {
            if v.data_type().is_some_and(|t| t.coerces_to(to)) {
                v
            } else {
                Null
            }
        }
    }
}

/// SQL LIKE: `%` any run, `_` one character, `escape` makes the next character literal.
pub fn like(s: &str, pattern: &str, escape: Option<char>) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Any,
        One,
        Lit(char),
    }
    let mut toks = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        if Some(c) == escape {
            if let Some(n) = it.next() {
                toks.push(Tok::Lit(n));
            }
        } else if c == '%' {
            toks.push(Tok::Any);
        } else if c == '_' {
            toks.push(Tok::One);
        } else {
            toks.push(Tok::Lit(c));
        }
    }
    let chars: Vec<char> = s.chars().collect();
    // Iterative wildcard matching with backtracking to the last `%`.
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < chars.len() {
        match toks.get(pi) {
            Some(Tok::One) => {
                si += 1;
                pi += 1;
            }
            Some(Tok::Lit(c)) if *c == chars[si] => {
                si += 1;
                pi += 1;
            }
            Some(Tok::Any) => {
                star = Some((pi, si));
                pi += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    toks[pi..].iter().all(|t| *t == Tok::Any)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(v: Value) -> Box<Expr> {
        Box::new(Expr::Literal(v))
    }

    #[test]
    fn reads_only_sees_every_column_reference_but_lambda_parameters() {
        let key = |e: &Expr| e.reads_only(&|i| i < 2);
        let eq = |l: Expr, r: Expr| Expr::Binary {
            op: BinaryOp::Eq,
            left: Box::new(l),
            right: Box::new(r),
        };
        assert!(key(&eq(Expr::Column(0), Expr::Literal(Value::Int(1)))));
        assert!(!key(&eq(Expr::Column(0), Expr::Column(2))));
        let case = Expr::Case {
            branches: vec![(Expr::Column(1), Expr::Literal(Value::Null))],
            otherwise: Some(Box::new(Expr::Column(5))),
        };
        assert!(!key(&case));
        // TRANSFORM(col1, x => x + col0): x is column 3 of the lambda's row (base 3).
        let lambda = |body: Expr| Expr::HigherOrder {
            func: HigherOrder::Transform,
            input: Box::new(Expr::Column(1)),
            init: None,
            lambdas: vec![Lambda {
                base: 3,
                body: Box::new(body),
            }],
        };
        assert!(key(&lambda(eq(Expr::Column(3), Expr::Column(0)))));
        assert!(!key(&lambda(eq(Expr::Column(3), Expr::Column(2)))));
    }

    #[test]
    fn lambda_arithmetic_on_a_null_parameter_nulls_the_whole_call() {
        // TRANSFORM(col0, x => x + 5): x is column 1 of the lambda's row (base 1).
        let transform = |body: Expr| Expr::HigherOrder {
            func: HigherOrder::Transform,
            input: Box::new(Expr::Column(0)),
            init: None,
            lambdas: vec![Lambda {
                base: 1,
                body: Box::new(body),
            }],
        };
        let plus5 = transform(Expr::Binary {
            op: BinaryOp::Add,
            left: Box::new(Expr::Column(1)),
            right: Box::new(Expr::Literal(Value::Int(5))),
        });
        let arr = |v: Vec<Value>| vec![Value::Array(v)];
        assert_eq!(
            plus5.eval(&arr(vec![Value::Int(3), Value::Int(6)])),
            Value::Array(vec![Value::Int(8), Value::Int(11)])
        );
        assert_eq!(
            plus5.eval(&arr(vec![Value::Int(5), Value::Null])),
            Value::Null
        );
        // Without arithmetic a NULL element simply maps through.
        let ident = transform(Expr::Column(1));
        assert_eq!(
            ident.eval(&arr(vec![Value::Null])),
            Value::Array(vec![Value::Null])
        );
    }

    #[test]
    fn iso_text_casts_to_dates_and_times() {
        let s = |t: &str| Value::String(t.into());
        assert_eq!(cast(s("2022-06-14"), &DataType::Date), Value::Date(19157));
        assert_eq!(
            cast(s("09:16:00"), &DataType::Time),
            Value::Time(33_360_000)
        );
        assert_eq!(
            cast(s("2022-06-14T00:00:00"), &DataType::Timestamp),
            Value::Timestamp(1_655_164_800_000)
        );
        assert_eq!(cast(s("not a date"), &DataType::Date), Value::Null);
    }

    #[test]
    fn values_past_the_size_limit_are_null_not_built() {
        use crate::functions::lookup as lookup_scalar;
        let lpad = lookup_scalar("LPAD").unwrap();
        let concat = lookup_scalar("CONCAT").unwrap();
        let pad = |n: i64| Expr::Call {
            func: lpad,
            args: vec![
                Expr::Literal(Value::String("a".into())),
                Expr::Literal(Value::BigInt(n)),
                Expr::Literal(Value::String("b".into())),
            ],
        };
        let limit = max_value_bytes() as i64;
        assert_eq!(pad(limit).eval(&[]).size_within(usize::MAX), limit as usize);
        assert_eq!(pad(limit + 1).eval(&[]), Value::Null);
        let many = Expr::Call {
            func: concat,
            args: (0..20).map(|_| pad(limit / 4)).collect(),
        };
        assert_eq!(many.eval(&[]), Value::Null, "twenty quarter-limit pieces");
        let few = Expr::Call {
            func: concat,
            args: (0..3).map(|_| pad(limit / 4)).collect(),
        };
        assert_eq!(
            few.eval(&[]).size_within(usize::MAX),
            3 * (limit / 4) as usize
        );
        let chain = Expr::Binary {
            op: BinaryOp::Concat,
            left: Box::new(pad(limit / 2 + 1)),
            right: Box::new(pad(limit / 2)),
        };
        assert_eq!(chain.eval(&[]), Value::Null);
    }

    #[test]
    fn arithmetic_widens_and_division_by_zero_is_null() {
        let e = Expr::Binary {
            op: BinaryOp::Mul,
            left: Box::new(Expr::Column(0)),
            right: lit(Value::Int(2)),
        };
        assert_eq!(e.eval(&[Value::BigInt(21)]), Value::BigInt(42));
        assert_eq!(e.eval(&[Value::Double(1.5)]), Value::Double(3.0));
        assert_eq!(e.eval(&[Value::Null]), Value::Null);
        let d = Expr::Binary {
            op: BinaryOp::Div,
            left: lit(Value::Int(1)),
            right: lit(Value::Int(0)),
        };
        assert_eq!(d.eval(&[]), Value::Null);
        let dec = Expr::Binary {
            op: BinaryOp::Add,
            left: lit(Value::Decimal {
                unscaled: 150,
                scale: 2,
            }),
            right: lit(Value::Decimal {
                unscaled: 5,
                scale: 1,
            }),
        };
        assert_eq!(
            dec.eval(&[]),
            Value::Decimal {
                unscaled: 200,
                scale: 2
            }
        );
    }

    #[test]
    fn three_valued_logic() {
        let and = Expr::Binary {
            op: BinaryOp::And,
            left: lit(Value::Null),
            right: lit(Value::Boolean(false)),
        };
        assert_eq!(and.eval(&[]), Value::Boolean(false));
        let or = Expr::Binary {
            op: BinaryOp::Or,
            left: lit(Value::Null),
            right: lit(Value::Boolean(false)),
        };
        assert_eq!(or.eval(&[]), Value::Null);
        assert!(!or.test(&[]));
    }

    #[test]
    fn casts() {
        assert_eq!(
            cast(Value::String("12".into()), &DataType::Int),
            Value::Int(12)
        );
        assert_eq!(cast(Value::String("x".into()), &DataType::Int), Value::Null);
        assert_eq!(
            cast(Value::Double(2.0), &DataType::String),
            Value::String("2.0".into())
        );
        assert_eq!(
            cast(
                Value::String("1.005".into()),
                &DataType::Decimal {
                    precision: 4,
                    scale: 2
                }
            ),
            Value::Decimal {
                unscaled: 101,
                scale: 2
            }
        );
        assert_eq!(
            cast(
                Value::Int(1000),
                &DataType::Decimal {
                    precision: 3,
                    scale: 1
                }
            ),
            Value::Null
        );
    }

    #[test]
    fn like_patterns() {
        assert!(like("hello", "h%o", None));
        assert!(like("hello", "_ello", None));
        assert!(!like("hello", "h_o", None));
        assert!(like("50%", "50!%", Some('!')));
        assert!(!like("500", "50!%", Some('!')));
        assert!(like("", "%", None));
        assert!(like("abcabc", "%abc", None));
    }
}
