//! Basic math, string and null-handling functions.

use super::ScalarFunction;
use super::{Param as P, Sig};
use sluice_common::{DataType, Value};

const NUMBER_KEEPS_TYPE: &[Sig] = &[
    Sig::of(&[P::Int]),
    Sig::of(&[P::BigInt]),
    Sig::of(&[P::Double]),
    Sig::of(&[P::Decimal]),
];
const SQRT: &[Sig] = &[
    Sig::of(&[P::Int]),
    Sig::of(&[P::BigInt]),
    Sig::of(&[P::Double]),
];
const LEN: &[Sig] = &[Sig::of(&[P::String]), Sig::of(&[P::Bytes])];
const CONCAT: &[Sig] = &[Sig::variadic(&[P::String]), Sig::variadic(&[P::Bytes])];
const SUBSTRING: &[Sig] = &[
    Sig::of(&[P::String, P::Int]),
    Sig::of(&[P::String, P::Int, P::Int]),
    Sig::of(&[P::Bytes, P::Int]),
    Sig::of(&[P::Bytes, P::Int, P::Int]),
];
/// COALESCE(T first, T... others).
const COALESCE: &[Sig] = &[Sig::variadic(&[P::T, P::T])];
/// IFNULL(T expression, T altValue) and NULLIF(T expr1, T expr2).
const TWO_OF_ONE_TYPE: &[Sig] = &[Sig::of(&[P::T, P::T])];

fn arity(args: &[DataType], n: usize) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!("expects {n} argument(s), got {}", args.len()))
    }
}

fn numeric1(args: &[DataType]) -> Result<DataType, String> {
    arity(args, 1)?;
    if args[0].is_numeric() {
        Ok(args[0].clone())
    } else {
        Err(format!("expects a numeric argument, got {}", args[0]))
    }
}

fn string_args(args: &[DataType], min: usize, max: usize) -> Result<DataType, String> {
    if args.len() < min || args.len() > max {
        return Err(format!(
            "expects {min} to {max} arguments, got {}",
            args.len()
        ));
    }
    if args[0] != DataType::String {
        return Err(format!("expects a STRING first argument, got {}", args[0]));
    }
    Ok(DataType::String)
}

fn str_map(args: &[Value], f: impl Fn(&str) -> String) -> Value {
    match args.first() {
        Some(Value::String(s)) => Value::String(f(s)),
        _ => Value::Null,
    }
}

fn float_map(args: &[Value], f: impl Fn(f64) -> f64) -> Value {
    match args.first() {
        Some(Value::Double(d)) => Value::Double(f(*d)),
        Some(v) => v.as_f64().map_or(Value::Null, |d| Value::Double(f(d))),
        None => Value::Null,
    }
}

fn same_type_or_first(args: &[DataType]) -> Result<DataType, String> {
    let first = args.first().ok_or("does not accept parameters ().")?;
    for a in &args[1..] {
        if !a.coerces_to(first) {
            return Err(format!("all arguments must have the type {first}, got {a}"));
        }
    }
    Ok(first.clone())
}

/// ksqlDB's Substring bounds over `n` units: a negative position counts from the end, a
/// length clips at the end.
fn substring_bounds(n: usize, pos: i64, len: Option<i64>) -> (usize, usize) {
    let n = n as i64;
    let start = if pos < 0 {
        (n + pos).max(0)
    } else {
        (pos - 1).min(n).max(0)
    };
    let end = match len {
        Some(l) => start.saturating_add(l).min(n).max(start),
        None => n,
    };
    (start as usize, end as usize)
}

/// 1-based substring with ksqlDB's rules: negative positions count from the end.
fn substring(args: &[Value]) -> Value {
    if let (Some(Value::Bytes(b)), Some(pos)) = (args.first(), args.get(1).and_then(Value::as_i64))
    {
        let len = match args.get(2) {
            None => None,
            Some(v) => match v.as_i64() {
                Some(l) => Some(l),
                None => return Value::Null,
            },
        };
        let (start, end) = substring_bounds(b.len(), pos, len);
        return Value::Bytes(b.get(start..end).unwrap_or_default().to_vec());
    }
    let (Some(Value::String(s)), Some(pos)) = (args.first(), args.get(1).and_then(Value::as_i64))
    else {
        return Value::Null;
    };
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len() as i64;
    let start = if pos > 0 {
        pos - 1
    } else if pos < 0 {
        (n + pos).max(0)
    } else {
        0
    };
    let len = match args.get(2) {
        None => n,
        Some(v) => match v.as_i64() {
            Some(l) => l.max(0),
            None => return Value::Null,
        },
    };
    let start = start.clamp(0, n) as usize;
    let end = (start as i64).saturating_add(len).clamp(0, n) as usize;
    Value::String(chars[start..end.max(start)].iter().collect())
}

pub(super) static FUNCTIONS: &[ScalarFunction] = &[
    ScalarFunction {
        name: "ABS",
        sigs: NUMBER_KEEPS_TYPE,
        signature: "ABS(number)",
        description: "The absolute value of a number.",
        return_type: numeric1,
        eval: |a| match a.first() {
            Some(Value::Int(i)) => Value::Int(i.wrapping_abs()),
            Some(Value::BigInt(i)) => Value::BigInt(i.wrapping_abs()),
            Some(Value::Double(d)) => Value::Double(d.abs()),
            Some(Value::Decimal { unscaled, scale }) => {
                unscaled
                    .checked_abs()
                    .map_or(Value::Null, |unscaled| Value::Decimal {
                        unscaled,
                        scale: *scale,
                    })
            }
            _ => Value::Null,
        },
    },
    ScalarFunction {
        name: "CEIL",
        sigs: NUMBER_KEEPS_TYPE,
        signature: "CEIL(number)",
        description: "The smallest integral value not less than the argument.",
        return_type: numeric1,
        eval: |a| match a.first() {
            Some(Value::Double(d)) => Value::Double(d.ceil()),
            Some(Value::Decimal { unscaled, scale }) => {
                decimal_to_integral(*unscaled, *scale, true)
            }
            Some(v) => v.clone(),
            None => Value::Null,
        },
    },
    ScalarFunction {
        name: "FLOOR",
        sigs: NUMBER_KEEPS_TYPE,
        signature: "FLOOR(number)",
        description: "The largest integral value not greater than the argument.",
        return_type: numeric1,
        eval: |a| match a.first() {
            Some(Value::Double(d)) => Value::Double(d.floor()),
            Some(Value::Decimal { unscaled, scale }) => {
                decimal_to_integral(*unscaled, *scale, false)
            }
            Some(v) => v.clone(),
            None => Value::Null,
        },
    },
    ScalarFunction {
        name: "SQRT",
        sigs: SQRT,
        signature: "SQRT(number)",
        description: "The square root of a number, as DOUBLE.",
        return_type: |a| numeric1(a).map(|_| DataType::Double),
        eval: |a| float_map(a, f64::sqrt),
    },
    ScalarFunction {
        name: "UCASE",
        sigs: &[],
        signature: "UCASE(string)",
        description: "The string in upper case.",
        return_type: |a| string_args(a, 1, 1),
        eval: |a| str_map(a, |s| s.to_uppercase()),
    },
    ScalarFunction {
        name: "LCASE",
        sigs: &[],
        signature: "LCASE(string)",
        description: "The string in lower case.",
        return_type: |a| string_args(a, 1, 1),
        eval: |a| str_map(a, |s| s.to_lowercase()),
    },
    ScalarFunction {
        name: "TRIM",
        sigs: &[],
        signature: "TRIM(string)",
        description: "The string without leading and trailing whitespace.",
        return_type: |a| string_args(a, 1, 1),
        // Java's String.trim, like LTRIM/RTRIM: characters up to U+0020, not Unicode spaces.
        eval: |a| str_map(a, |s| s.trim_matches(super::string::java_space).to_string()),
    },
    ScalarFunction {
        name: "LEN",
        sigs: LEN,
        signature: "LEN(string | bytes)",
        description: "The number of characters in a string, or of bytes in a BYTES value.",
        return_type: |a| match a {
            [DataType::Bytes] => Ok(DataType::Int),
            _ => string_args(a, 1, 1).map(|_| DataType::Int),
        },
        eval: |a| match a.first() {
            Some(Value::String(s)) => Value::Int(s.chars().count() as i32),
            Some(Value::Bytes(b)) => Value::Int(b.len() as i32),
            _ => Value::Null,
        },
    },
    ScalarFunction {
        name: "SUBSTRING",
        sigs: SUBSTRING,
        signature: "SUBSTRING(string | bytes, pos [, len])",
        description: "The substring starting at 1-based position pos (negative counts from the end), of at most len characters (bytes for a BYTES value).",
        return_type: |a| match a.first() {
            Some(DataType::Bytes) if (2..=3).contains(&a.len()) => Ok(DataType::Bytes),
            _ => string_args(a, 2, 3),
        },
        eval: substring,
    },
    ScalarFunction {
        name: "CONCAT",
        sigs: CONCAT,
        signature: "CONCAT(string, ...) | CONCAT(bytes, ...)",
        description: "The concatenation of its arguments; NULL arguments are skipped.",
        return_type: |a| {
            if a.iter().all(|t| *t == DataType::String) && !a.is_empty() {
                Ok(DataType::String)
            } else if a.iter().all(|t| *t == DataType::Bytes) && !a.is_empty() {
                Ok(DataType::Bytes)
            } else {
                Err("expects one or more STRING arguments".into())
            }
        },
        eval: |a| {
            if a.iter().any(|v| matches!(v, Value::Bytes(_))) {
                let mut out = Vec::new();
                for v in a {
                    if let Value::Bytes(b) = v {
                        out.extend_from_slice(b);
                    }
                }
                return Value::Bytes(out);
            }
            let mut out = String::new();
            for v in a {
                if let Value::String(s) = v {
                    out.push_str(s);
                }
            }
            Value::String(out)
        },
    },
    ScalarFunction {
        name: "REPLACE",
        sigs: &[],
        signature: "REPLACE(string, old, new)",
        description: "The string with every occurrence of old replaced by new.",
        return_type: |a| string_args(a, 3, 3),
        eval: |a| match (a.first(), a.get(1), a.get(2)) {
            (Some(Value::String(s)), Some(Value::String(o)), Some(Value::String(n))) => {
                Value::String(s.replace(o.as_str(), n))
            }
            _ => Value::Null,
        },
    },
    ScalarFunction {
        name: "COALESCE",
        sigs: COALESCE,
        signature: "COALESCE(value, ...)",
        description: "The first argument that is not NULL.",
        return_type: same_type_or_first,
        eval: |a| {
            a.iter()
                .find(|v| !v.is_null())
                .cloned()
                .unwrap_or(Value::Null)
        },
    },
    ScalarFunction {
        name: "IFNULL",
        sigs: TWO_OF_ONE_TYPE,
        signature: "IFNULL(value, alternative)",
        description: "value, or alternative when value is NULL.",
        return_type: |a| {
            arity(a, 2)?;
            same_type_or_first(a)
        },
        eval: |a| match a.first() {
            Some(v) if !v.is_null() => v.clone(),
            _ => a.get(1).cloned().unwrap_or(Value::Null),
        },
    },
    ScalarFunction {
        name: "NULLIF",
        sigs: TWO_OF_ONE_TYPE,
        signature: "NULLIF(value, other)",
        description: "NULL when value equals other, else value.",
        return_type: |a| {
            arity(a, 2)?;
            // The second argument may be of any type comparable with the first, as ksqlDB
            // compares the two with equals.
            if a[1].coerces_to(&a[0]) || a[0].coerces_to(&a[1]) || a[1] == DataType::String {
                Ok(a[0].clone())
            } else {
                Err(format!(
                    "expects arguments of one type, got {} and {}",
                    a[0], a[1]
                ))
            }
        },
        eval: |a| match (a.first(), a.get(1)) {
            (Some(v), Some(other)) if v.sql_eq(other) == Some(true) => Value::Null,
            (Some(v), _) => v.clone(),
            _ => Value::Null,
        },
    },
];

/// CEIL/FLOOR of a decimal as ksqlDB computes them: rounded to an integer, keeping the
/// scale (CEIL(1.23) is 2.00). NULL if the result no longer fits.
fn decimal_to_integral(unscaled: i128, scale: u8, up: bool) -> Value {
    let Some(p) = 10i128.checked_pow(scale as u32) else {
        return Value::Null;
    };
    let floor = unscaled.div_euclid(p);
    let whole = if up && unscaled.rem_euclid(p) != 0 {
        floor + 1
    } else {
        floor
    };
    match whole.checked_mul(p) {
        Some(unscaled) => Value::Decimal { unscaled, scale },
        None => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::lookup;
    use crate::functions::testing::{call, rule};

    #[test]
    fn bytes_overloads() {
        let b = |v: &[u8]| Value::Bytes(v.to_vec());
        assert_eq!(call("LEN", &[b(b"abc")]), Value::Int(3));
        assert_eq!(call("CONCAT", &[b(b"ab"), Value::Null, b(b"c")]), b(b"abc"));
        assert_eq!(
            call("SUBSTRING", &[b(b"hello"), Value::Int(2), Value::Int(3)]),
            b(b"ell")
        );
        assert_eq!(call("SUBSTRING", &[b(b"hello"), Value::Int(-2)]), b(b"lo"));
        assert_eq!(
            rule("SUBSTRING", &[DataType::Bytes, DataType::Int]),
            Ok(DataType::Bytes)
        );
        assert_eq!(
            rule("CONCAT", &[DataType::Bytes, DataType::Bytes]),
            Ok(DataType::Bytes)
        );
    }

    #[test]
    fn ceil_floor_sqrt() {
        let dec = |unscaled: i128, scale: u8| Value::Decimal { unscaled, scale };
        assert_eq!(call("CEIL", &[Value::Double(1.2)]), Value::Double(2.0));
        assert_eq!(call("CEIL", &[Value::Double(-1.2)]), Value::Double(-1.0));
        assert_eq!(call("FLOOR", &[Value::Double(-1.2)]), Value::Double(-2.0));
        assert_eq!(call("CEIL", &[Value::Int(7)]), Value::Int(7));
        assert_eq!(
            call("FLOOR", &[Value::BigInt(i64::MIN)]),
            Value::BigInt(i64::MIN)
        );
        // Decimals keep their scale: CEIL(1.23) = 2.00, FLOOR(-1.23) = -2.00.
        assert_eq!(call("CEIL", &[dec(123, 2)]), dec(200, 2));
        assert_eq!(call("CEIL", &[dec(-123, 2)]), dec(-100, 2));
        assert_eq!(call("FLOOR", &[dec(123, 2)]), dec(100, 2));
        assert_eq!(call("FLOOR", &[dec(-123, 2)]), dec(-200, 2));
        assert_eq!(call("CEIL", &[dec(500, 2)]), dec(500, 2));
        assert_eq!(call("CEIL", &[dec(5, 0)]), dec(5, 0));
        for f in ["CEIL", "FLOOR", "SQRT"] {
            assert_eq!(call(f, &[Value::Null]), Value::Null, "{f}");
        }
        assert_eq!(call("SQRT", &[Value::Int(16)]), Value::Double(4.0));
        assert!(matches!(call("SQRT", &[Value::Double(-1.0)]), Value::Double(d) if d.is_nan()));
    }

    #[test]
    fn lcase_trim_replace() {
        let s = |t: &str| Value::String(t.into());
        assert_eq!(call("LCASE", &[s("ÀbC")]), s("àbc"));
        assert_eq!(call("LCASE", &[Value::Null]), Value::Null);
        assert_eq!(call("TRIM", &[s("  a b \t\n")]), s("a b"));
        assert_eq!(call("TRIM", &[s("")]), s(""));
        assert_eq!(call("TRIM", &[s("\u{a0}x\u{a0}")]), s("\u{a0}x\u{a0}"));
        assert_eq!(call("TRIM", &[Value::Null]), Value::Null);
        assert_eq!(
            call("REPLACE", &[s("aXbXc"), s("X"), s("--")]),
            s("a--b--c")
        );
        assert_eq!(call("REPLACE", &[s("abc"), s("z"), s("y")]), s("abc"));
        assert_eq!(call("REPLACE", &[s(""), s(""), s("y")]), s("y"));
        assert_eq!(
            call("REPLACE", &[s("abc"), Value::Null, s("y")]),
            Value::Null
        );
    }

    #[test]
    fn substring_edges() {
        let s = Value::String("hello".into());
        assert_eq!(
            call("substring", &[s.clone(), Value::Int(2)]),
            Value::String("ello".into())
        );
        assert_eq!(
            call("SUBSTRING", &[s.clone(), Value::Int(2), Value::Int(2)]),
            Value::String("el".into())
        );
        assert_eq!(
            call("SUBSTRING", &[s.clone(), Value::Int(-3)]),
            Value::String("llo".into())
        );
        assert_eq!(
            call("SUBSTRING", &[s.clone(), Value::Int(10)]),
            Value::String("".into())
        );
        assert_eq!(
            call("SUBSTRING", &[Value::Null, Value::Int(1)]),
            Value::Null
        );
    }

    #[test]
    fn coalesce_without_arguments_is_a_type_error() {
        assert_eq!(
            same_type_or_first(&[]),
            Err("does not accept parameters ().".to_string())
        );
        assert_eq!(same_type_or_first(&[DataType::Int]), Ok(DataType::Int));
    }

    #[test]
    fn null_handling() {
        assert_eq!(call("UCASE", &[Value::Null]), Value::Null);
        assert_eq!(
            call("COALESCE", &[Value::Null, Value::Int(2)]),
            Value::Int(2)
        );
        assert_eq!(call("IFNULL", &[Value::Null, Value::Int(3)]), Value::Int(3));
        assert_eq!(call("NULLIF", &[Value::Int(3), Value::Int(3)]), Value::Null);
        assert_eq!(
            call("NULLIF", &[Value::Int(3), Value::BigInt(4)]),
            Value::Int(3)
        );
        assert_eq!(call("NULLIF", &[Value::Int(3), Value::Null]), Value::Int(3));
        assert_eq!(call("NULLIF", &[Value::Null, Value::Int(3)]), Value::Null);
        assert_eq!(
            call("CONCAT", &[Value::String("a".into()), Value::Null]),
            Value::String("a".into())
        );
        assert_eq!(call("ABS", &[Value::Int(i32::MIN)]), Value::Int(i32::MIN));
        assert_eq!(call("LEN", &[Value::String("".into())]), Value::Int(0));
    }

    #[test]
    fn type_rules() {
        assert!((lookup("ABS").unwrap().return_type)(&[DataType::String]).is_err());
        assert_eq!(
            (lookup("LEN").unwrap().return_type)(&[DataType::String]),
            Ok(DataType::Int)
        );
        assert!((lookup("IFNULL").unwrap().return_type)(&[DataType::Int]).is_err());
    }
}
