//! Array functions. A NULL array gives NULL (ARRAY_CONTAINS: false), as in ksqlDB; element
//! equality is Java's `equals` on same-typed values, so NULL elements equal each other.

use super::ScalarFunction;
use super::datetime::rejected;
use sluice_common::value::{format_decimal, format_double};
use sluice_common::{DataType, Value};
use std::cmp::Ordering;

/// Element equality as Java collections see it: NULL equals NULL, NaN equals NaN.
pub(super) fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Double(x), Value::Double(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(k2, v2)| same(k, k2) && same(v, v2)))
        }
        (Value::Struct(x), Value::Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((n1, v1), (n2, v2))| n1 == n2 && same(v1, v2))
        }
        _ => a.sql_eq(b) == Some(true),
    }
}

/// Natural order with NULLs last; strings compare by UTF-16 units as Java's do.
fn order(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        (Value::Double(x), Value::Double(y)) => x.total_cmp(y),
        (Value::String(x), Value::String(y)) => x.encode_utf16().cmp(y.encode_utf16()),
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(a, b)| order(a, b))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        _ => a.sql_cmp(b).unwrap_or(Ordering::Equal),
    }
}

fn distinct(items: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for v in items {
        if !out.iter().any(|o| same(o, &v)) {
            out.push(v);
        }
    }
    out
}

fn array(v: Option<&Value>) -> Option<&Vec<Value>> {
    match v? {
        Value::Array(a) => Some(a),
        _ => None,
    }
}

/// The element type of an ARRAY argument. A NULL literal (typed STRING at plan time) is
/// taken as an array of unknown elements.
fn element(args: &[DataType], i: usize) -> Result<DataType, String> {
    match args.get(i) {
        Some(DataType::Array(e)) => Ok((**e).clone()),
        Some(DataType::String) => Ok(DataType::String),
        _ => Err(rejected(args)),
    }
}

fn arity(args: &[DataType], min: usize, max: usize) -> Result<(), String> {
    if (min..=max).contains(&args.len()) {
        Ok(())
    } else {
        Err(rejected(args))
    }
}

/// Whether a value of type `v` can stand beside elements of type `e` (a NULL literal can).
fn compatible(e: &DataType, v: &DataType) -> bool {
    v.coerces_to(e) || e.coerces_to(v) || *v == DataType::String
}

/// The element type two arrays share, the wider of the two.
fn common_element(args: &[DataType]) -> Result<DataType, String> {
    arity(args, 2, 2)?;
    let (a, b) = (element(args, 0)?, element(args, 1)?);
    if args[0] == DataType::String {
        Ok(b)
    } else if args[1] == DataType::String || b.coerces_to(&a) {
        Ok(a)
    } else if a.coerces_to(&b) {
        Ok(b)
    } else {
        Err(rejected(args))
    }
}

fn comparable(t: &DataType) -> bool {
    !matches!(t, DataType::Map(..) | DataType::Struct(_))
}

/// ARRAY_JOIN's text of an element: Java's `String.valueOf`.
fn element_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => "null".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::BigInt(i) => i.to_string(),
        Value::Double(d) => format_double(*d),
        Value::Decimal { unscaled, scale } => format_decimal(*unscaled, *scale),
        Value::String(s) => s.clone(),
        _ => return None,
    })
}

/// Most elements GENERATE_SERIES builds; past it the call gives NULL rather than
/// exhausting memory.
const MAX_SERIES: i128 = 1 << 24;

fn series(args: &[Value]) -> Option<Value> {
    let start = args.first()?.as_i64()?;
    let end = args.get(1)?.as_i64()?;
    let diff = i128::from(end) - i128::from(start);
    let step = match args.get(2) {
        Some(v) => v.as_i64()?,
        None if diff > 0 => 1,
        None => -1,
    };
    if step == 0 || (diff > 0 && step < 0) || (diff < 0 && step > 0) {
        return None;
    }
    let size = 1 + diff / i128::from(step);
    if size > MAX_SERIES {
        return None;
    }
    let long = args.iter().any(|v| matches!(v, Value::BigInt(_)));
    let items = (0..size as i64)
        .map(|i| {
            let n = start + i * step;
            if long {
                Value::BigInt(n)
            } else {
                Value::Int(n as i32)
            }
        })
        .collect();
    Some(Value::Array(items))
}

fn slice(args: &[Value]) -> Option<Value> {
    let items = array(args.first())?;
    let start = match args.get(1) {
        Some(Value::Null) | None => 0,
        Some(v) => v.as_i64()? - 1,
    };
    let end = match args.get(2) {
        Some(Value::Null) | None => items.len() as i64,
        Some(v) => v.as_i64()?,
    };
    if start < 0 || end > items.len() as i64 || start > end {
        return None;
    }
    Some(Value::Array(items[start as usize..end as usize].to_vec()))
}

fn sort(args: &[Value]) -> Option<Value> {
    let mut items = array(args.first())?.clone();
    let desc = match args.get(1) {
        None => false,
        Some(v) => match v.as_str()? {
            d if d.eq_ignore_ascii_case("ASC") => false,
            d if d.eq_ignore_ascii_case("DESC") => true,
            _ => return None,
        },
    };
    items.sort_by(|a, b| match (a.is_null(), b.is_null()) {
        // NULLs stay last whichever the direction.
        (false, false) if desc => order(b, a),
        _ => order(a, b),
    });
    Some(Value::Array(items))
}

fn extreme(args: &[Value], want: Ordering) -> Option<Value> {
    array(args.first())?
        .iter()
        .filter(|v| !v.is_null())
        .fold(None, |best: Option<&Value>, v| match best {
            Some(b) if order(v, b) != want => Some(b),
            _ => Some(v),
        })
        .cloned()
}

fn join(args: &[Value]) -> Option<Value> {
    let items = array(args.first())?;
    let delimiter = match args.get(1) {
        None => ",",
        Some(v) => v.as_str().unwrap_or(""),
    };
    let parts: Option<Vec<String>> = items.iter().map(element_text).collect();
    Some(Value::String(parts?.join(delimiter)))
}

fn or_null(v: Option<Value>) -> Value {
    v.unwrap_or(Value::Null)
}

pub(super) static FUNCTIONS: &[ScalarFunction] = &[
    ScalarFunction {
        name: "ARRAY_CONTAINS",
        sigs: &[],
        signature: "ARRAY_CONTAINS(array, value)",
        description: "Whether the array holds the value; false for a NULL array.",
        return_type: |a| {
            arity(a, 2, 2)?;
            if compatible(&element(a, 0)?, &a[1]) {
                Ok(DataType::Boolean)
            } else {
                Err(rejected(a))
            }
        },
        eval: |a| match (array(a.first()), a.get(1)) {
            (Some(items), Some(v)) => Value::Boolean(items.iter().any(|e| same(e, v))),
            _ => Value::Boolean(false),
        },
    },
    ScalarFunction {
        name: "ARRAY_DISTINCT",
        sigs: &[],
        signature: "ARRAY_DISTINCT(array)",
        description: "The array without repeated elements, in order of first appearance.",
        return_type: |a| {
            arity(a, 1, 1)?;
            Ok(DataType::Array(Box::new(element(a, 0)?)))
        },
        eval: |a| or_null(array(a.first()).map(|x| Value::Array(distinct(x.iter().cloned())))),
    },
    ScalarFunction {
        name: "ARRAY_EXCEPT",
        sigs: &[],
        signature: "ARRAY_EXCEPT(array1, array2)",
        description: "The distinct elements of array1 that are not in array2, in order.",
        return_type: |a| common_element(a).map(|e| DataType::Array(Box::new(e))),
        eval: |a| {
            or_null((|| {
                let (l, r) = (array(a.first())?, array(a.get(1))?);
                let kept = l.iter().filter(|v| !r.iter().any(|x| same(x, v)));
                Some(Value::Array(distinct(kept.cloned())))
            })())
        },
    },
    ScalarFunction {
        name: "ARRAY_INTERSECT",
        sigs: &[],
        signature: "ARRAY_INTERSECT(array1, array2)",
        description: "The distinct elements found in both arrays, in array1's order.",
        return_type: |a| common_element(a).map(|e| DataType::Array(Box::new(e))),
        eval: |a| {
            or_null((|| {
                let (l, r) = (array(a.first())?, array(a.get(1))?);
                let kept = l.iter().filter(|v| r.iter().any(|x| same(x, v)));
                Some(Value::Array(distinct(kept.cloned())))
            })())
        },
    },
    ScalarFunction {
        name: "ARRAY_UNION",
        sigs: &[],
        signature: "ARRAY_UNION(array1, array2)",
        description: "The distinct elements of both arrays, array1's first.",
        return_type: |a| common_element(a).map(|e| DataType::Array(Box::new(e))),
        eval: |a| {
            or_null((|| {
                let (l, r) = (array(a.first())?, array(a.get(1))?);
                Some(Value::Array(distinct(l.iter().chain(r).cloned())))
            })())
        },
    },
    ScalarFunction {
        name: "ARRAY_CONCAT",
        sigs: &[],
        signature: "ARRAY_CONCAT(array1, array2)",
        description: "array1's elements followed by array2's; a NULL array counts as empty unless both are NULL.",
        return_type: |a| common_element(a).map(|e| DataType::Array(Box::new(e))),
        eval: |a| match (array(a.first()), array(a.get(1))) {
            (None, None) => Value::Null,
            (l, r) => Value::Array(
                l.into_iter()
                    .flatten()
                    .chain(r.into_iter().flatten())
                    .cloned()
                    .collect(),
            ),
        },
    },
    ScalarFunction {
        name: "ARRAY_JOIN",
        sigs: &[],
        signature: "ARRAY_JOIN(array [, delimiter])",
        description: "The elements as text joined by the delimiter (default ','); NULL elements read 'null'.",
        return_type: |a| {
            arity(a, 1, 2)?;
            let e = element(a, 0)?;
            let primitive = !matches!(
                e,
                DataType::Array(_) | DataType::Map(..) | DataType::Struct(_)
            );
            if primitive && a.get(1).is_none_or(|d| *d == DataType::String) {
                Ok(DataType::String)
            } else {
                Err(rejected(a))
            }
        },
        eval: |a| or_null(join(a)),
    },
    ScalarFunction {
        name: "ARRAY_LENGTH",
        sigs: &[],
        signature: "ARRAY_LENGTH(array)",
        description: "The number of elements in the array.",
        return_type: |a| {
            arity(a, 1, 1)?;
            element(a, 0).map(|_| DataType::Int)
        },
        eval: |a| or_null(array(a.first()).map(|x| Value::Int(x.len() as i32))),
    },
    ScalarFunction {
        name: "ARRAY_MAX",
        sigs: &[],
        signature: "ARRAY_MAX(array)",
        description: "The largest non-NULL element; NULL for an empty array.",
        return_type: |a| {
            arity(a, 1, 1)?;
            let e = element(a, 0)?;
            if comparable(&e) {
                Ok(e)
            } else {
                Err(rejected(a))
            }
        },
        eval: |a| or_null(extreme(a, Ordering::Greater)),
    },
    ScalarFunction {
        name: "ARRAY_MIN",
        sigs: &[],
        signature: "ARRAY_MIN(array)",
        description: "The smallest non-NULL element; NULL for an empty array.",
        return_type: |a| {
            arity(a, 1, 1)?;
            let e = element(a, 0)?;
            if comparable(&e) {
                Ok(e)
            } else {
                Err(rejected(a))
            }
        },
        eval: |a| or_null(extreme(a, Ordering::Less)),
    },
    ScalarFunction {
        name: "ARRAY_REMOVE",
        sigs: &[],
        signature: "ARRAY_REMOVE(array, value)",
        description: "The array without the elements equal to value (NULL removes NULLs).",
        return_type: |a| {
            arity(a, 2, 2)?;
            let e = element(a, 0)?;
            if compatible(&e, &a[1]) {
                Ok(DataType::Array(Box::new(e)))
            } else {
                Err(rejected(a))
            }
        },
        eval: |a| {
            or_null((|| {
                let items = array(a.first())?;
                let victim = a.get(1)?;
                Some(Value::Array(
                    items.iter().filter(|v| !same(v, victim)).cloned().collect(),
                ))
            })())
        },
    },
    ScalarFunction {
        name: "ARRAY_SORT",
        sigs: &[],
        signature: "ARRAY_SORT(array [, 'ASC' | 'DESC'])",
        description: "The array sorted ascending or descending; NULLs last.",
        return_type: |a| {
            arity(a, 1, 2)?;
            let e = element(a, 0)?;
            if comparable(&e) && a.get(1).is_none_or(|d| *d == DataType::String) {
                Ok(DataType::Array(Box::new(e)))
            } else {
                Err(rejected(a))
            }
        },
        eval: |a| or_null(sort(a)),
    },
    ScalarFunction {
        name: "SLICE",
        sigs: &[],
        signature: "SLICE(array, from, to)",
        description: "Elements from 1-based position from to position to, inclusive; NULL when out of range.",
        return_type: |a| {
            arity(a, 3, 3)?;
            let e = element(a, 0)?;
            if a[1..]
                .iter()
                .all(|t| t.coerces_to(&DataType::Int) || *t == DataType::String)
            {
                Ok(DataType::Array(Box::new(e)))
            } else {
                Err(rejected(a))
            }
        },
        eval: |a| or_null(slice(a)),
    },
    ScalarFunction {
        name: "GENERATE_SERIES",
        sigs: &[],
        signature: "GENERATE_SERIES(start, end [, step])",
        description: "The integers from start to end inclusive, by step (default 1 or -1).",
        return_type: |a| {
            arity(a, 2, 3)?;
            if !a.iter().all(DataType::is_integral) {
                return Err(rejected(a));
            }
            let long = a.contains(&DataType::BigInt);
            Ok(DataType::Array(Box::new(if long {
                DataType::BigInt
            } else {
                DataType::Int
            })))
        },
        eval: |a| or_null(series(a)),
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::testing::{call, rule as ty};

    fn ints(v: &[Option<i32>]) -> Value {
        Value::Array(
            v.iter()
                .map(|x| x.map_or(Value::Null, Value::Int))
                .collect(),
        )
    }

    fn strs(v: &[&str]) -> Value {
        Value::Array(v.iter().map(|s| Value::String(s.to_string())).collect())
    }

    fn arr(t: DataType) -> DataType {
        DataType::Array(Box::new(t))
    }

    #[test]
    fn contains() {
        let a = strs(&["Pink", "Red"]);
        let pink = Value::String("Pink".into());
        assert_eq!(
            call("ARRAY_CONTAINS", &[a.clone(), pink.clone()]),
            Value::Boolean(true)
        );
        assert_eq!(
            call("ARRAY_CONTAINS", &[a, Value::String("x".into())]),
            Value::Boolean(false)
        );
        assert_eq!(
            call("ARRAY_CONTAINS", &[Value::Null, pink]),
            Value::Boolean(false)
        );
        assert_eq!(
            call("ARRAY_CONTAINS", &[ints(&[Some(1), None]), Value::Null]),
            Value::Boolean(true)
        );
        assert_eq!(
            call("ARRAY_CONTAINS", &[ints(&[Some(1)]), Value::BigInt(1)]),
            Value::Boolean(true)
        );
    }

    #[test]
    fn set_operations() {
        let l = ints(&[Some(1), Some(2), Some(2), None, Some(3)]);
        let r = ints(&[Some(3), Some(4), None]);
        assert_eq!(
            call("ARRAY_DISTINCT", std::slice::from_ref(&l)),
            ints(&[Some(1), Some(2), None, Some(3)])
        );
        assert_eq!(
            call("ARRAY_EXCEPT", &[l.clone(), r.clone()]),
            ints(&[Some(1), Some(2)])
        );
        assert_eq!(
            call("ARRAY_INTERSECT", &[l.clone(), r.clone()]),
            ints(&[None, Some(3)])
        );
        assert_eq!(
            call("ARRAY_UNION", &[l.clone(), r.clone()]),
            ints(&[Some(1), Some(2), None, Some(3), Some(4)])
        );
        assert_eq!(call("ARRAY_UNION", &[l.clone(), Value::Null]), Value::Null);
        assert_eq!(call("ARRAY_DISTINCT", &[Value::Null]), Value::Null);
        assert_eq!(call("ARRAY_DISTINCT", &[ints(&[])]), ints(&[]));
        assert_eq!(
            call("ARRAY_CONCAT", &[ints(&[Some(1)]), ints(&[Some(1)])]),
            ints(&[Some(1), Some(1)])
        );
        assert_eq!(call("ARRAY_CONCAT", &[Value::Null, r.clone()]), r);
        assert_eq!(
            call("ARRAY_CONCAT", &[Value::Null, Value::Null]),
            Value::Null
        );
    }

    #[test]
    fn join_elements() {
        let a = Value::Array(vec![Value::Boolean(true), Value::Null, Value::Double(0.0)]);
        assert_eq!(
            call("ARRAY_JOIN", std::slice::from_ref(&a)),
            Value::String("true,null,0.0".into())
        );
        assert_eq!(
            call("ARRAY_JOIN", &[a.clone(), Value::String("|".into())]),
            Value::String("true|null|0.0".into())
        );
        assert_eq!(
            call("ARRAY_JOIN", &[a, Value::Null]),
            Value::String("truenull0.0".into())
        );
        let d = Value::Array(vec![Value::Decimal {
            unscaled: 12345,
            scale: 2,
        }]);
        assert_eq!(call("ARRAY_JOIN", &[d]), Value::String("123.45".into()));
        assert_eq!(call("ARRAY_JOIN", &[Value::Null]), Value::Null);
        assert!(ty("ARRAY_JOIN", &[arr(arr(DataType::Int))]).is_err());
        assert_eq!(
            ty("ARRAY_JOIN", &[arr(DataType::Int), DataType::String]),
            Ok(DataType::String)
        );
    }

    #[test]
    fn min_max_sort() {
        let a = ints(&[Some(0), None, Some(1), Some(-1)]);
        assert_eq!(call("ARRAY_MAX", std::slice::from_ref(&a)), Value::Int(1));
        assert_eq!(call("ARRAY_MIN", std::slice::from_ref(&a)), Value::Int(-1));
        assert_eq!(call("ARRAY_MAX", &[ints(&[])]), Value::Null);
        assert_eq!(call("ARRAY_MAX", &[ints(&[None])]), Value::Null);
        assert_eq!(
            call("ARRAY_SORT", std::slice::from_ref(&a)),
            ints(&[Some(-1), Some(0), Some(1), None])
        );
        assert_eq!(
            call("ARRAY_SORT", &[a.clone(), Value::String("desc".into())]),
            ints(&[Some(1), Some(0), Some(-1), None])
        );
        assert_eq!(
            call("ARRAY_SORT", &[a, Value::String("up".into())]),
            Value::Null
        );
        assert_eq!(
            call("ARRAY_SORT", &[strs(&["foo", "F", "Food", "fo"])]),
            strs(&["F", "Food", "fo", "foo"])
        );
        assert_eq!(
            call("ARRAY_MIN", &[strs(&["foo", "bar"])]),
            Value::String("bar".into())
        );
        let decs = Value::Array(vec![
            Value::Decimal {
                unscaled: 10,
                scale: 1,
            },
            Value::Decimal {
                unscaled: -99,
                scale: 1,
            },
        ]);
        assert_eq!(
            call("ARRAY_MIN", &[decs]),
            Value::Decimal {
                unscaled: -99,
                scale: 1
            }
        );
        assert_eq!(
            ty("ARRAY_MAX", &[arr(DataType::Double)]),
            Ok(DataType::Double)
        );
        assert!(ty("ARRAY_MAX", &[DataType::Int]).is_err());
        assert!(
            ty(
                "ARRAY_MAX",
                &[arr(DataType::Map(
                    Box::new(DataType::String),
                    Box::new(DataType::Int)
                ))]
            )
            .is_err()
        );
    }

    #[test]
    fn remove_and_length() {
        let a = ints(&[Some(0), None, Some(1), Some(0)]);
        assert_eq!(
            call("ARRAY_REMOVE", &[a.clone(), Value::Int(0)]),
            ints(&[None, Some(1)])
        );
        assert_eq!(
            call("ARRAY_REMOVE", &[a.clone(), Value::Null]),
            ints(&[Some(0), Some(1), Some(0)])
        );
        assert_eq!(
            call("ARRAY_REMOVE", &[Value::Null, Value::Int(0)]),
            Value::Null
        );
        let nested = Value::Array(vec![strs(&["a"]), Value::Null, strs(&["a", "b"])]);
        assert_eq!(
            call("ARRAY_REMOVE", &[nested, strs(&["a"])]),
            Value::Array(vec![Value::Null, strs(&["a", "b"])])
        );
        assert_eq!(call("ARRAY_LENGTH", &[a]), Value::Int(4));
        assert_eq!(call("ARRAY_LENGTH", &[Value::Null]), Value::Null);
        assert!(ty("ARRAY_REMOVE", &[arr(DataType::Int), DataType::Boolean]).is_err());
        assert_eq!(
            ty("ARRAY_REMOVE", &[arr(DataType::Int), DataType::String]),
            Ok(arr(DataType::Int))
        );
    }

    #[test]
    fn slices() {
        let a = strs(&["a", "b", "c", "d"]);
        let s = |f: Value, t: Value| call("SLICE", &[a.clone(), f, t]);
        assert_eq!(s(Value::Int(2), Value::Int(3)), strs(&["b", "c"]));
        assert_eq!(s(Value::Null, Value::Int(1)), strs(&["a"]));
        assert_eq!(s(Value::Int(4), Value::Null), strs(&["d"]));
        assert_eq!(s(Value::Int(3), Value::Int(2)), strs(&[]));
        assert_eq!(s(Value::Int(0), Value::Int(2)), Value::Null);
        assert_eq!(s(Value::Int(2), Value::Int(5)), Value::Null);
        assert_eq!(s(Value::Int(4), Value::Int(2)), Value::Null);
    }

    #[test]
    fn series() {
        let g = |a: &[i32]| {
            call(
                "GENERATE_SERIES",
                &a.iter().map(|v| Value::Int(*v)).collect::<Vec<_>>(),
            )
        };
        let want = |v: &[i32]| ints(&v.iter().map(|x| Some(*x)).collect::<Vec<_>>());
        assert_eq!(g(&[0, 3]), want(&[0, 1, 2, 3]));
        assert_eq!(g(&[4, 3]), want(&[4, 3]));
        assert_eq!(g(&[2, 2]), want(&[2]));
        assert_eq!(g(&[-2, 1, 2]), want(&[-2, 0]));
        assert_eq!(g(&[9, 0, -3]), want(&[9, 6, 3, 0]));
        assert_eq!(g(&[1, -2, -2]), want(&[1, -1]));
        assert_eq!(g(&[0, 3, 0]), Value::Null);
        assert_eq!(g(&[0, 3, -1]), Value::Null);
        assert_eq!(g(&[0, i32::MAX]), Value::Null);
        assert_eq!(
            call("GENERATE_SERIES", &[Value::BigInt(1), Value::BigInt(2)]),
            Value::Array(vec![Value::BigInt(1), Value::BigInt(2)])
        );
        assert_eq!(
            call("GENERATE_SERIES", &[Value::Null, Value::Int(2)]),
            Value::Null
        );
        assert_eq!(
            ty("GENERATE_SERIES", &[DataType::Int, DataType::BigInt]),
            Ok(arr(DataType::BigInt))
        );
        assert!(ty("GENERATE_SERIES", &[DataType::Int, DataType::Double]).is_err());
        assert!(ty("GENERATE_SERIES", &[DataType::Int]).is_err());
    }

    #[test]
    fn type_rules() {
        assert_eq!(
            ty("ARRAY_UNION", &[arr(DataType::Int), arr(DataType::BigInt)]),
            Ok(arr(DataType::BigInt))
        );
        assert!(ty("ARRAY_UNION", &[arr(DataType::Int), arr(DataType::String)]).is_err());
        assert_eq!(ty("ARRAY_LENGTH", &[DataType::String]), Ok(DataType::Int));
        assert_eq!(
            ty("ARRAY_CONTAINS", &[arr(DataType::String), DataType::String]),
            Ok(DataType::Boolean)
        );
        assert!(ty("ARRAY_CONTAINS", &[arr(DataType::Int), DataType::Boolean]).is_err());
        assert_eq!(
            ty("SLICE", &[arr(DataType::Int), DataType::Int, DataType::Int]),
            Ok(arr(DataType::Int))
        );
    }
}
