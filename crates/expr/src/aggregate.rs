//! Aggregate functions as accumulators over a small state vector, so that a group's whole
//! state is one row that the engine stores in RocksDB and updates once per event.

use crate::eval::Expr;
use sluice_common::{DataType, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    LatestByOffset,
    EarliestByOffset,
}

/// Aggregate names with their signature and description, for SHOW FUNCTIONS.
pub static AGGREGATES: &[(&str, &str, &str)] = &[
    (
        "COUNT",
        "COUNT(*) | COUNT(col)",
        "The number of rows, or of non-NULL values of col.",
    ),
    ("SUM", "SUM(number)", "The sum of the non-NULL values."),
    (
        "AVG",
        "AVG(number)",
        "The mean of the non-NULL values, as DOUBLE.",
    ),
    ("MIN", "MIN(value)", "The smallest non-NULL value."),
    ("MAX", "MAX(value)", "The largest non-NULL value."),
    (
        "LATEST_BY_OFFSET",
        "LATEST_BY_OFFSET(col)",
        "The value of the most recent record with a non-NULL col.",
    ),
    (
        "EARLIEST_BY_OFFSET",
        "EARLIEST_BY_OFFSET(col)",
        "The value of the earliest record with a non-NULL col.",
    ),
];

impl AggKind {
    pub fn from_name(name: &str, star: bool) -> Option<AggKind> {
        Some(match name.to_ascii_uppercase().as_str() {
            "COUNT" if star => AggKind::CountStar,
            "COUNT" => AggKind::Count,
            "SUM" => AggKind::Sum,
            "AVG" => AggKind::Avg,
            "MIN" => AggKind::Min,
            "MAX" => AggKind::Max,
            "LATEST_BY_OFFSET" => AggKind::LatestByOffset,
            "EARLIEST_BY_OFFSET" => AggKind::EarliestByOffset,
            _ => return None,
        })
    }

    /// The result type for an argument type, or why the argument is not accepted.
    pub fn return_type(self, arg: Option<&DataType>) -> Result<DataType, String> {
        let need = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "expects {what}, got {}",
                    arg.map_or("no argument".to_string(), |t| t.to_string())
                ))
            }
        };
        match self {
            AggKind::CountStar | AggKind::Count => Ok(DataType::BigInt),
            AggKind::Sum => {
                need(arg.is_some_and(DataType::is_numeric), "a numeric argument")?;
                Ok(arg.cloned().unwrap_or(DataType::BigInt))
            }
            AggKind::Avg => {
                need(arg.is_some_and(DataType::is_numeric), "a numeric argument")?;
                Ok(DataType::Double)
            }
            AggKind::Min | AggKind::Max => {
                need(
                    arg.is_some_and(|t| {
                        !matches!(
                            t,
                            DataType::Array(_) | DataType::Map(..) | DataType::Struct(_)
                        )
                    }),
                    "a comparable argument",
                )?;
                Ok(arg.cloned().unwrap_or(DataType::BigInt))
            }
            AggKind::LatestByOffset | AggKind::EarliestByOffset => {
                need(arg.is_some(), "one argument")?;
                Ok(arg.cloned().unwrap_or(DataType::String))
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct AggCall {
    pub kind: AggKind,
    pub arg: Option<Expr>,
    pub arg_type: Option<DataType>,
}

impl AggCall {
    /// How many state slots this aggregate uses.
    pub fn slots(&self) -> usize {
        match self.kind {
            AggKind::Avg => 2,
            _ => 1,
        }
    }

    pub fn init(&self, state: &mut Vec<Value>) {
        match self.kind {
            AggKind::CountStar | AggKind::Count => state.push(Value::BigInt(0)),
            AggKind::Sum => state.push(zero(self.arg_type.as_ref())),
            AggKind::Avg => {
                state.push(Value::Double(0.0));
                state.push(Value::BigInt(0));
            }
            _ => state.push(Value::Null),
        }
    }

    /// Folds one input row into `state` (this aggregate's slots only).
    pub fn update(&self, state: &mut [Value], row: &[Value]) {
        let v = match &self.arg {
            Some(e) => e.eval(row),
            None => Value::Null,
        };
        match self.kind {
            AggKind::CountStar => bump(&mut state[0], 1),
            AggKind::Count => {
                if !v.is_null() {
                    bump(&mut state[0], 1)
                }
            }
            AggKind::Sum => {
                if !v.is_null() {
                    state[0] = add(&state[0], &v);
                }
            }
            AggKind::Avg => {
                if let Some(d) = v.as_f64() {
                    state[0] = Value::Double(state[0].as_f64().unwrap_or(0.0) + d);
                    bump(&mut state[1], 1);
                }
            }
            AggKind::Min => {
                if !v.is_null()
                    && (state[0].is_null()
                        || v.sql_cmp(&state[0]) == Some(std::cmp::Ordering::Less))
                {
                    state[0] = v;
                }
            }
            AggKind::Max => {
                if !v.is_null()
                    && (state[0].is_null()
                        || v.sql_cmp(&state[0]) == Some(std::cmp::Ordering::Greater))
                {
                    state[0] = v;
                }
            }
            AggKind::LatestByOffset => {
                if !v.is_null() {
                    state[0] = v;
                }
            }
            AggKind::EarliestByOffset => {
                if !v.is_null() && state[0].is_null() {
                    state[0] = v;
                }
            }
        }
    }

    /// Whether [`AggCall::retract`] can undo an update (needed to aggregate a table, whose
    /// rows are replaced and deleted).
    pub fn supports_retract(&self) -> bool {
        matches!(
            self.kind,
            AggKind::CountStar | AggKind::Count | AggKind::Sum | AggKind::Avg
        )
    }

    /// Removes one earlier input row from `state`.
    pub fn retract(&self, state: &mut [Value], row: &[Value]) {
        let v = match &self.arg {
            Some(e) => e.eval(row),
            None => Value::Null,
        };
        match self.kind {
            AggKind::CountStar => bump(&mut state[0], -1),
            AggKind::Count => {
                if !v.is_null() {
                    bump(&mut state[0], -1)
                }
            }
            AggKind::Sum => {
                if !v.is_null() {
                    state[0] = add(&state[0], &negate(&v));
                }
            }
            AggKind::Avg => {
                if let Some(d) = v.as_f64() {
                    state[0] = Value::Double(state[0].as_f64().unwrap_or(0.0) - d);
                    bump(&mut state[1], -1);
                }
            }
            // Not retractable; the planner refuses these over tables.
            _ => {}
        }
    }

    pub fn result(&self, state: &[Value]) -> Value {
        match self.kind {
            AggKind::Avg => match (state[0].as_f64(), state[1].as_i64()) {
                (Some(sum), Some(n)) if n > 0 => Value::Double(sum / n as f64),
                _ => Value::Null,
            },
            _ => state[0].clone(),
        }
    }
}

fn zero(t: Option<&DataType>) -> Value {
    match t {
        Some(DataType::Int) => Value::Int(0),
        Some(DataType::Double) => Value::Double(0.0),
        Some(DataType::Decimal { scale, .. }) => Value::Decimal {
            unscaled: 0,
            scale: *scale,
        },
        _ => Value::BigInt(0),
    }
}

fn negate(v: &Value) -> Value {
    match v {
        Value::Int(i) => Value::Int(i.wrapping_neg()),
        Value::BigInt(i) => Value::BigInt(i.wrapping_neg()),
        Value::Double(d) => Value::Double(-d),
        Value::Decimal { unscaled, scale } => Value::Decimal {
            unscaled: -unscaled,
            scale: *scale,
        },
        other => other.clone(),
    }
}

fn bump(v: &mut Value, n: i64) {
    if let Value::BigInt(c) = v {
        *c += n;
    }
}

fn add(acc: &Value, v: &Value) -> Value {
    match (acc, v) {
        (Value::Int(a), Value::Int(b)) => Value::Int(a.wrapping_add(*b)),
        (Value::BigInt(a), b) if b.as_i64().is_some() => {
            Value::BigInt(a.wrapping_add(b.as_i64().unwrap_or(0)))
        }
        (Value::Double(a), b) => Value::Double(a + b.as_f64().unwrap_or(0.0)),
        (
            Value::Decimal { unscaled: a, scale },
            Value::Decimal {
                unscaled: b,
                scale: sb,
            },
        ) => match Value::decimal_rescale(*b, *sb, *scale) {
            Some(b) => Value::Decimal {
                unscaled: a + b,
                scale: *scale,
            },
            None => acc.clone(),
        },
        _ => acc.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: AggKind, t: DataType, inputs: &[Value]) -> Value {
        let call = AggCall {
            kind,
            arg: Some(Expr::Column(0)),
            arg_type: Some(t),
        };
        let mut state = Vec::new();
        call.init(&mut state);
        for v in inputs {
            call.update(&mut state, std::slice::from_ref(v));
        }
        call.result(&state)
    }

    #[test]
    fn aggregates_skip_nulls() {
        let xs = [Value::Int(3), Value::Null, Value::Int(1), Value::Int(5)];
        assert_eq!(run(AggKind::Count, DataType::Int, &xs), Value::BigInt(3));
        assert_eq!(
            run(AggKind::CountStar, DataType::Int, &xs),
            Value::BigInt(4)
        );
        assert_eq!(run(AggKind::Sum, DataType::Int, &xs), Value::Int(9));
        assert_eq!(run(AggKind::Avg, DataType::Int, &xs), Value::Double(3.0));
        assert_eq!(run(AggKind::Min, DataType::Int, &xs), Value::Int(1));
        assert_eq!(run(AggKind::Max, DataType::Int, &xs), Value::Int(5));
        assert_eq!(
            run(AggKind::LatestByOffset, DataType::Int, &xs),
            Value::Int(5)
        );
        assert_eq!(
            run(AggKind::EarliestByOffset, DataType::Int, &xs),
            Value::Int(3)
        );
    }

    #[test]
    fn retract_undoes_update() {
        for kind in [
            AggKind::CountStar,
            AggKind::Count,
            AggKind::Sum,
            AggKind::Avg,
        ] {
            let call = AggCall {
                kind,
                arg: Some(Expr::Column(0)),
                arg_type: Some(DataType::BigInt),
            };
            assert!(call.supports_retract());
            let mut state = Vec::new();
            call.init(&mut state);
            call.update(&mut state, &[Value::BigInt(4)]);
            call.update(&mut state, &[Value::BigInt(6)]);
            call.retract(&mut state, &[Value::BigInt(4)]);
            let want = match kind {
                AggKind::Avg => Value::Double(6.0),
                AggKind::Sum => Value::BigInt(6),
                _ => Value::BigInt(1),
            };
            assert_eq!(call.result(&state), want, "{kind:?}");
        }
        let max = AggCall {
            kind: AggKind::Max,
            arg: Some(Expr::Column(0)),
            arg_type: Some(DataType::BigInt),
        };
        assert!(!max.supports_retract());
    }

    #[test]
    fn empty_inputs() {
        assert_eq!(run(AggKind::Sum, DataType::BigInt, &[]), Value::BigInt(0));
        assert_eq!(run(AggKind::Avg, DataType::BigInt, &[]), Value::Null);
        assert_eq!(
            run(AggKind::Max, DataType::BigInt, &[Value::Null]),
            Value::Null
        );
    }

    #[test]
    fn sum_types() {
        assert!(AggKind::Sum.return_type(Some(&DataType::String)).is_err());
        assert_eq!(
            AggKind::Avg.return_type(Some(&DataType::Int)),
            Ok(DataType::Double)
        );
    }
}
