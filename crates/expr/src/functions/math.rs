//! Math functions: rounding, exponentials and logarithms, trigonometry, GREATEST/LEAST and
//! GEO_DISTANCE. Floating-point results follow Java's `Math`, so NaN and infinities pass
//! through rather than becoming NULL.

use super::ScalarFunction;
use super::support::{count, expect, f64_arg, int_arg, is_integral, is_numeric, is_string};
use super::{Param as P, Sig};
use sluice_common::{DataType, Value};
use std::cmp::Ordering;
use std::f64::consts::PI;

/// ksqlDB declares most DOUBLE functions for INT, BIGINT and DOUBLE arguments.
const NUMBER_TO_DOUBLE: &[Sig] = &[
    Sig::of(&[P::Int]),
    Sig::of(&[P::BigInt]),
    Sig::of(&[P::Double]),
];
const NUMBERS_TO_DOUBLE: &[Sig] = &[
    Sig::of(&[P::Int, P::Int]),
    Sig::of(&[P::BigInt, P::BigInt]),
    Sig::of(&[P::Double, P::Double]),
];
/// GREATEST and LEAST: `(T val, T... vals)` for each comparable type.
const EXTREMES: &[Sig] = &[
    Sig::variadic(&[P::Int, P::Int]),
    Sig::variadic(&[P::BigInt, P::BigInt]),
    Sig::variadic(&[P::Double, P::Double]),
    Sig::variadic(&[P::String, P::String]),
    Sig::variadic(&[P::Decimal, P::Decimal]),
    Sig::variadic(&[P::Bytes, P::Bytes]),
    Sig::variadic(&[P::Date, P::Date]),
    Sig::variadic(&[P::Time, P::Time]),
    Sig::variadic(&[P::Timestamp, P::Timestamp]),
];
const ATAN2: &[Sig] = &[
    Sig::of(&[P::Int, P::Int]),
    Sig::of(&[P::Int, P::BigInt]),
    Sig::of(&[P::Int, P::Double]),
    Sig::of(&[P::BigInt, P::Int]),
    Sig::of(&[P::BigInt, P::BigInt]),
    Sig::of(&[P::BigInt, P::Double]),
    Sig::of(&[P::Double, P::Int]),
    Sig::of(&[P::Double, P::BigInt]),
    Sig::of(&[P::Double, P::Double]),
];
const ROUND: &[Sig] = &[
    Sig::of(&[P::BigInt]),
    Sig::of(&[P::Int]),
    Sig::of(&[P::Double]),
    Sig::of(&[P::Double, P::Int]),
    Sig::of(&[P::Decimal]),
    Sig::of(&[P::Decimal, P::Int]),
];
const SIGN: &[Sig] = NUMBER_TO_DOUBLE;
const LOG: &[Sig] = &[
    Sig::of(&[P::Int]),
    Sig::of(&[P::BigInt]),
    Sig::of(&[P::Double]),
    Sig::of(&[P::Int, P::Int]),
    Sig::of(&[P::BigInt, P::BigInt]),
    Sig::of(&[P::Double, P::Double]),
];

fn double_rule(args: &[DataType], n: usize) -> Result<DataType, String> {
    count(args, n, n)?;
    (0..n).try_for_each(|i| expect(args, i, "numeric", is_numeric))?;
    Ok(DataType::Double)
}

fn unary(args: &[Value], f: fn(f64) -> f64) -> Value {
    f64_arg(args, 0).map_or(Value::Null, |x| Value::Double(f(x)))
}

fn binary(args: &[Value], f: fn(f64, f64) -> f64) -> Value {
    match (f64_arg(args, 0), f64_arg(args, 1)) {
        (Some(a), Some(b)) => Value::Double(f(a, b)),
        _ => Value::Null,
    }
}

/// Rounds (or, with `trunc`, truncates) `unscaled * 10^-scale` to `places` fractional
/// digits and expresses the result with `out_scale` digits. Halves round towards positive
/// infinity, as ksqlDB documents for ROUND.
fn round_unscaled(
    unscaled: i128,
    scale: i32,
    places: i32,
    out_scale: i32,
    trunc: bool,
) -> Option<i128> {
    let (q, q_scale) = if places >= scale {
        (unscaled, scale)
    } else {
        let q = match 10i128.checked_pow((scale - places) as u32) {
            Some(div) => {
                let q = unscaled / div;
                let r = (unscaled % div).abs();
                let rest = div - r;
                if !trunc && (r > rest || (r == rest && unscaled > 0)) {
                    q + unscaled.signum()
                } else {
                    q
                }
            }
            // More digits dropped than an i128 holds: nothing is left.
            None => return Some(0),
        };
        (q, places)
    };
    if q == 0 {
        return Some(0);
    }
    if out_scale >= q_scale {
        q.checked_mul(10i128.checked_pow((out_scale - q_scale) as u32)?)
    } else {
        let div = 10i128.checked_pow((q_scale - out_scale) as u32)?;
        Some(q / div)
    }
}

/// Java's Math.round (half towards positive infinity) or a truncation, as BIGINT.
fn round_double_to_long(d: f64, trunc: bool) -> i64 {
    let r = if trunc {
        d.trunc()
    } else {
        let f = d.floor();
        if d - f >= 0.5 { f + 1.0 } else { f }
    };
    // `as` saturates and maps NaN to 0, as Java's (long) conversion does.
    r as i64
}

/// Rounds a double to `places` digits through its shortest decimal form, as
/// BigDecimal.valueOf does.
fn round_double(d: f64, places: i64, trunc: bool) -> f64 {
    if !d.is_finite() {
        return d;
    }
    let Some((unscaled, scale)) = Value::parse_decimal(&format!("{d}")) else {
        return d;
    };
    let places = places.clamp(-400, 400) as i32;
    let out_scale = places.max(0);
    match round_unscaled(unscaled, i32::from(scale), places, out_scale, trunc) {
        Some(u) => sluice_common::value::format_decimal(u, out_scale as u8)
            .parse()
            .unwrap_or(d),
        None => d,
    }
}

fn round_rule(args: &[DataType]) -> Result<DataType, String> {
    count(args, 1, 2)?;
    expect(args, 0, "numeric", is_numeric)?;
    expect(args, 1, "INTEGER", is_integral)?;
    Ok(match (&args[0], args.len()) {
        (DataType::Double, 1) => DataType::BigInt,
        (DataType::Decimal { precision, scale }, 1) => DataType::Decimal {
            precision: (precision.saturating_sub(*scale) + 1).clamp(1, 38),
            scale: 0,
        },
        (DataType::Decimal { precision, scale }, _) => DataType::Decimal {
            precision: (precision + 1).min(38),
            scale: *scale,
        },
        (t, _) => t.clone(),
    })
}

/// ROUND's result types as ksqlDB's overloads give them: an integral value or a DOUBLE
/// rounds to a BIGINT, a DOUBLE to places stays DOUBLE, a DECIMAL rounds to
/// DECIMAL(precision - scale, 0), or keeps its type when places are given.
fn round_rule_ksql(args: &[DataType]) -> Result<DataType, String> {
    Ok(match args {
        [DataType::Int | DataType::BigInt | DataType::Double] => DataType::BigInt,
        [DataType::Decimal { precision, scale }] => DataType::Decimal {
            precision: precision.saturating_sub(*scale).max(1),
            scale: 0,
        },
        [
            t @ (DataType::Double | DataType::Decimal { .. }),
            DataType::Int,
        ] => t.clone(),
        _ => return round_rule(args),
    })
}

fn round_eval(args: &[Value], trunc: bool) -> Value {
    let places = if args.len() > 1 {
        match int_arg(args, 1) {
            Some(p) => p,
            None => return Value::Null,
        }
    } else {
        0
    };
    let p = places.clamp(-100, 100) as i32;
    let round_int = |i: i64| round_unscaled(i128::from(i), 0, p, 0, trunc);
    match args.first() {
        Some(Value::Int(i)) => round_int(i64::from(*i))
            .and_then(|r| i32::try_from(r).ok())
            .map_or(Value::Null, Value::Int),
        Some(Value::BigInt(i)) => round_int(*i)
            .and_then(|r| i64::try_from(r).ok())
            .map_or(Value::Null, Value::BigInt),
        Some(Value::Double(d)) if args.len() == 1 => Value::BigInt(round_double_to_long(*d, trunc)),
        Some(Value::Double(d)) => Value::Double(round_double(*d, places, trunc)),
        Some(Value::Decimal { unscaled, scale }) => {
            let out = if args.len() == 1 { 0 } else { *scale };
            round_unscaled(*unscaled, i32::from(*scale), p, i32::from(out), trunc).map_or(
                Value::Null,
                |u| Value::Decimal {
                    unscaled: u,
                    scale: out,
                },
            )
        }
        _ => Value::Null,
    }
}

fn type_list(args: &[DataType]) -> String {
    args.iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// GREATEST/LEAST accept values of one type. A STRING argument may stand for a NULL
/// literal (which the planner types as STRING) or, beside dates and times, for a literal
/// of that type; numbers of mixed types resolve only when a DOUBLE makes the choice
/// unambiguous, as in ksqlDB.
fn extreme_rule(args: &[DataType]) -> Result<DataType, String> {
    if args.is_empty() {
        return Err("does not accept parameters ().".into());
    }
    let typed: Vec<&DataType> = args.iter().filter(|t| !is_string(t)).collect();
    let Some(first) = typed.first() else {
        return Ok(DataType::String);
    };
    if typed.iter().all(|t| t == first) {
        return match first {
            DataType::Boolean | DataType::Array(_) | DataType::Map(..) | DataType::Struct(_) => {
                Err(format!("does not accept parameters ({}).", type_list(args)))
            }
            t => Ok((*t).clone()),
        };
    }
    if typed.iter().all(|t| t.is_numeric()) {
        if typed.contains(&&DataType::Double) {
            return Ok(DataType::Double);
        }
        if typed.iter().all(|t| matches!(t, DataType::Decimal { .. })) {
            return typed[1..].iter().try_fold((*first).clone(), |acc, t| {
                DataType::numeric_common(&acc, t).ok_or_else(|| "unreachable".to_string())
            });
        }
        return Err(format!(
            "cannot be resolved due to ambiguous method parameters ({}).",
            type_list(args)
        ));
    }
    Err(format!("does not accept parameters ({}).", type_list(args)))
}

pub(crate) fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.trim().splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    ((1..=12).contains(&m) && (1..=31).contains(&d))
        .then(|| sluice_common::civil::days_from_civil(y, m, d))
}

pub(crate) fn parse_time(s: &str) -> Option<i64> {
    let (hms, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    let mut it = hms.split(':');
    let h: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let sec: i64 = it.next().map_or(Some(0), |x| x.parse().ok())?;
    // Milliseconds from the first three characters (not bytes: the text is the client's).
    let ms: i64 = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().take(3).collect();
        format!("{digits:0<3}").parse().ok()?
    };
    // Checked before the arithmetic: an out-of-range field must not overflow it.
    ((0..24).contains(&h) && (0..60).contains(&m) && (0..60).contains(&sec) && ms >= 0)
        .then(|| ((h * 60 + m) * 60 + sec) * 1000 + ms)
}

pub(crate) fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = match s.find(['T', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let days = parse_date(date)?;
    let ms = time.map_or(Some(0), parse_time)?;
    days.checked_mul(sluice_common::civil::MILLIS_PER_DAY)?
        .checked_add(ms)
}

/// Converts an argument to the type GREATEST/LEAST compares in.
fn coerce(v: &Value, to: &DataType) -> Value {
    match (v, to) {
        (Value::Null, _) => Value::Null,
        (Value::String(s), DataType::Date) => parse_date(s)
            .and_then(|d| i32::try_from(d).ok())
            .map_or(Value::Null, Value::Date),
        (Value::String(s), DataType::Time) => parse_time(s).map_or(Value::Null, Value::Time),
        (Value::String(s), DataType::Timestamp) => {
            parse_timestamp(s).map_or(Value::Null, Value::Timestamp)
        }
        _ => crate::eval::cast(v.clone(), to),
    }
}

/// The type GREATEST/LEAST compare in, read from the values: the planner admitted mixed
/// numbers only beside a DOUBLE, and STRING values beside other types only as literals to
/// convert.
fn extreme_type(args: &[Value]) -> Option<DataType> {
    let types: Vec<DataType> = args
        .iter()
        .filter_map(Value::data_type)
        .filter(|t| !is_string(t))
        .collect();
    let Some(first) = types.first() else {
        return args
            .iter()
            .any(|v| !v.is_null())
            .then_some(DataType::String);
    };
    if let Some(t) = types
        .iter()
        .find(|t| matches!(t, DataType::Date | DataType::Time | DataType::Timestamp))
    {
        return Some(t.clone());
    }
    if types.iter().all(|t| t.is_numeric()) {
        if types.iter().all(|t| matches!(t, DataType::Decimal { .. })) {
            return Some(first.clone());
        }
        if types.iter().any(|t| t != first) {
            return Some(DataType::Double);
        }
    }
    Some(first.clone())
}

fn extreme(args: &[Value], want: Ordering) -> Value {
    let Some(target) = extreme_type(args) else {
        return Value::Null;
    };
    let convert = |v: &Value| match (&target, v) {
        // Decimals keep their own scale; sql_cmp compares across scales exactly.
        (DataType::Decimal { .. }, Value::Decimal { .. }) => v.clone(),
        _ => coerce(v, &target),
    };
    let mut best = Value::Null;
    for v in args {
        let v = convert(v);
        if v.is_null() {
            continue;
        }
        if best.is_null() || v.sql_cmp(&best) == Some(want) {
            best = v;
        }
    }
    best
}

fn geo_distance(args: &[Value]) -> Value {
    let coords: Option<Vec<f64>> = (0..4).map(|i| f64_arg(args, i)).collect();
    let Some(c) = coords else {
        return Value::Null;
    };
    let (lat1, lon1, lat2, lon2) = (c[0], c[1], c[2], c[3]);
    let lat_ok = |l: f64| (-90.0..=90.0).contains(&l);
    let lon_ok = |l: f64| (-180.0..=180.0).contains(&l);
    if !(lat_ok(lat1) && lat_ok(lat2) && lon_ok(lon1) && lon_ok(lon2)) {
        return Value::Null;
    }
    let radius = match args.get(4) {
        None | Some(Value::Null) => 6371.0,
        Some(Value::String(u)) => match u.trim().to_ascii_lowercase().as_str() {
            "km" | "kilometer" | "kilometers" | "kilometre" | "kilometres" => 6371.0,
            "mi" | "mile" | "miles" => 3959.0,
            _ => return Value::Null,
        },
        Some(_) => return Value::Null,
    };
    // Written as Java's Math.toRadians and the haversine formula are in ksqlDB, so the
    // last digits agree.
    let rad = |deg: f64| deg / 180.0 * PI;
    let d_lat = rad(lat2 - lat1);
    let d_lon = rad(lon2 - lon1);
    let a = (d_lat / 2.0).sin().powi(2)
        + (d_lon / 2.0).sin().powi(2) * rad(lat1).cos() * rad(lat2).cos();
    Value::Double(radius * 2.0 * a.sqrt().asin())
}

pub(super) static FUNCTIONS: &[ScalarFunction] = &[
    ScalarFunction {
        name: "ROUND",
        sigs: ROUND,
        signature: "ROUND(number [, places])",
        description: "The number rounded to places fractional digits (default 0; halves round up); ROUND(DOUBLE) is a BIGINT.",
        return_type: round_rule_ksql,
        eval: |a| match a {
            [Value::Int(i)] => Value::BigInt(i64::from(*i)),
            _ => round_eval(a, false),
        },
    },
    ScalarFunction {
        name: "TRUNC",
        sigs: &[],
        signature: "TRUNC(number [, places])",
        description: "The number truncated towards zero to places fractional digits (default 0); TRUNC(DOUBLE) is a BIGINT.",
        return_type: round_rule,
        eval: |a| round_eval(a, true),
    },
    ScalarFunction {
        name: "SIGN",
        sigs: SIGN,
        signature: "SIGN(number)",
        description: "-1, 0 or 1 as the number is negative, zero or positive.",
        return_type: |a| {
            count(a, 1, 1)?;
            expect(a, 0, "numeric", is_numeric)?;
            Ok(DataType::Int)
        },
        eval: |a| match a.first() {
            Some(Value::Int(i)) => Value::Int(i.signum()),
            Some(Value::BigInt(i)) => Value::Int(i.signum() as i32),
            Some(Value::Decimal { unscaled, .. }) => Value::Int(unscaled.signum() as i32),
            Some(Value::Double(d)) if d.is_nan() || *d == 0.0 => Value::Int(0),
            Some(Value::Double(d)) => Value::Int(d.signum() as i32),
            _ => Value::Null,
        },
    },
    ScalarFunction {
        name: "EXP",
        sigs: NUMBER_TO_DOUBLE,
        signature: "EXP(number)",
        description: "e raised to the power of the number.",
        return_type: |a| double_rule(a, 1),
        eval: |a| unary(a, f64::exp),
    },
    ScalarFunction {
        name: "LN",
        sigs: NUMBER_TO_DOUBLE,
        signature: "LN(number)",
        description: "The natural logarithm of the number.",
        return_type: |a| double_rule(a, 1),
        eval: |a| unary(a, f64::ln),
    },
    ScalarFunction {
        name: "LOG",
        sigs: LOG,
        signature: "LOG([base,] number)",
        description: "The logarithm of the number to the base (default e).",
        return_type: |a| {
            count(a, 1, 2)?;
            double_rule(a, a.len())
        },
        eval: |a| {
            if a.len() == 1 {
                return unary(a, f64::ln);
            }
            binary(a, |base, x| {
                if base <= 0.0 || base == 1.0 {
                    f64::NAN
                } else {
                    x.ln() / base.ln()
                }
            })
        },
    },
    ScalarFunction {
        name: "POWER",
        sigs: NUMBERS_TO_DOUBLE,
        signature: "POWER(base, exponent)",
        description: "The base raised to the exponent.",
        return_type: |a| double_rule(a, 2),
        eval: |a| binary(a, f64::powf),
    },
    ScalarFunction {
        name: "CBRT",
        sigs: NUMBER_TO_DOUBLE,
        signature: "CBRT(number)",
        description: "The cube root of the number.",
        return_type: |a| double_rule(a, 1),
        eval: |a| unary(a, f64::cbrt),
    },
    ScalarFunction {
        name: "RANDOM",
        sigs: &[],
        signature: "RANDOM()",
        description: "A random DOUBLE in [0, 1).",
        return_type: |a| double_rule(a, 0),
        eval: |_| Value::Double((random_u64() >> 11) as f64 / (1u64 << 53) as f64),
    },
    ScalarFunction {
        name: "GREATEST",
        sigs: EXTREMES,
        signature: "GREATEST(value, ...)",
        description: "The largest non-NULL argument.",
        return_type: extreme_rule,
        eval: |a| extreme(a, Ordering::Greater),
    },
    ScalarFunction {
        name: "LEAST",
        sigs: EXTREMES,
        signature: "LEAST(value, ...)",
        description: "The smallest non-NULL argument.",
        return_type: extreme_rule,
        eval: |a| extreme(a, Ordering::Less),
    },
    ScalarFunction {
        name: "DEGREES",
        sigs: NUMBER_TO_DOUBLE,
        signature: "DEGREES(radians)",
        description: "Radians converted to degrees.",
        return_type: |a| double_rule(a, 1),
        eval: |a| unary(a, |x| x * 180.0 / PI),
    },
    ScalarFunction {
        name: "RADIANS",
        sigs: NUMBER_TO_DOUBLE,
        signature: "RADIANS(degrees)",
        description: "Degrees converted to radians.",
        return_type: |a| double_rule(a, 1),
        eval: |a| unary(a, |x| x / 180.0 * PI),
    },
    ScalarFunction {
        name: "PI",
        sigs: &[],
        signature: "PI()",
        description: "The constant pi.",
        return_type: |a| double_rule(a, 0),
        eval: |_| Value::Double(PI),
    },
    ScalarFunction {
        name: "SIN",
        sigs: NUMBER_TO_DOUBLE,
        signature: "SIN(radians)",
        description: "The sine of an angle.",
        return_type: |a| double_rule(a, 1),
        eval: |a| unary(a, f64::sin),
    },
    ScalarFunction {
        name: "COS",
        sigs: NUMBER_TO_DOUBLE,
        signature: "COS(radians)",
        description: "The cosine of an angle.",
        return_type: |a| double_rule(a, 1),
        eval: |a| unary(a, f64::cos),
    },
    ScalarFunction {
        name: "TAN",
        sigs: NUMBER_TO_DOUBLE,
        signature: "TAN(radians)",
        description: "The tangent of an angle.",
        return_type: |a| double_rule(a, 1),
        eval: |a| unary(a, f64::tan),
    },
    ScalarFunction {
        name: "COT",
        sigs: NUMBER_TO_DOUBLE,
        signature: "COT(radians)",
        description: "The cotangent of an angle.",
        return_type: |a| double_rule(a, 1),
        eval: |a| unary(a, |x| 1.0 / x.tan()),
    },
    ScalarFunction {
        name: "ASIN",
        sigs: NUMBER_TO_DOUBLE,
        signature: "ASIN(number)",
        description: "The arc sine, in radians.",
        return_type: |a| double_rule(a, 1),
        eval: |a| unary(a, f64::asin),
    },
    ScalarFunction {
        name: "ACOS",
        sigs: NUMBER_TO_DOUBLE,
        signature: "ACOS(number)",
        description: "The arc cosine, in radians.",
        return_type: |a| double_rule(a, 1),
        eval: |a| unary(a, f64::acos),
    },
    ScalarFunction {
        name: "ATAN",
        sigs: NUMBER_TO_DOUBLE,
        signature: "ATAN(number)",
        description: "The arc tangent, in radians.",
        return_type: |a| double_rule(a, 1),
        eval: |a| unary(a, f64::atan),
    },
    ScalarFunction {
        name: "ATAN2",
        sigs: ATAN2,
        signature: "ATAN2(y, x)",
        description: "The angle, in radians, of the point (x, y).",
        return_type: |a| double_rule(a, 2),
        eval: |a| binary(a, f64::atan2),
    },
    ScalarFunction {
        name: "SINH",
        sigs: NUMBER_TO_DOUBLE,
        signature: "SINH(number)",
        description: "The hyperbolic sine.",
        return_type: |a| double_rule(a, 1),
        eval: |a| unary(a, f64::sinh),
    },
    ScalarFunction {
        name: "COSH",
        sigs: NUMBER_TO_DOUBLE,
        signature: "COSH(number)",
        description: "The hyperbolic cosine.",
        return_type: |a| double_rule(a, 1),
        eval: |a| unary(a, f64::cosh),
    },
    ScalarFunction {
        name: "TANH",
        sigs: NUMBER_TO_DOUBLE,
        signature: "TANH(number)",
        description: "The hyperbolic tangent.",
        return_type: |a| double_rule(a, 1),
        eval: |a| unary(a, f64::tanh),
    },
    ScalarFunction {
        name: "GEO_DISTANCE",
        sigs: &[],
        signature: "GEO_DISTANCE(lat1, lon1, lat2, lon2 [, unit])",
        description: "The great-circle distance between two points, in km (default) or 'mi'.",
        return_type: |a| {
            count(a, 4, 5)?;
            (0..4).try_for_each(|i| expect(a, i, "numeric", is_numeric))?;
            expect(a, 4, "STRING", is_string)?;
            Ok(DataType::Double)
        },
        eval: geo_distance,
    },
];

/// 64 random bits from the standard library's randomly keyed hasher, mixed with a counter
/// so successive calls differ. Enough for RANDOM, which ksqlDB backs with Math.random(),
/// not a secure source.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::testing::{call, rule};

    fn dec(unscaled: i128, scale: u8) -> Value {
        Value::Decimal { unscaled, scale }
    }

    #[test]
    fn cast_text_to_temporal() {
        assert_eq!(parse_date("2000-02-29"), Some(11_016));
        assert_eq!(parse_date("-0001-12-31"), None);
        assert_eq!(parse_date("2000-13-01"), None);
        assert_eq!(parse_time("12:34:56.7"), Some(45_296_700));
        assert_eq!(parse_time("24:00"), None);
        assert_eq!(parse_time("-1:00"), None);
        assert_eq!(parse_timestamp("1970-01-02T00:00:01.5"), Some(86_401_500));
        // Client text that once panicked: multi-byte fraction digits, fields and years
        // whose arithmetic overflows.
        assert_eq!(
            parse_timestamp("2020-01-01T00:00:00.\u{e9}\u{e9}\u{e9}"),
            None
        );
        assert_eq!(parse_time("9223372036854775807:00"), None);
        assert_eq!(parse_timestamp("9223372036854775807-01-01"), None);
        assert_eq!(parse_timestamp("-9223372036854775808-01-01"), None);
    }

    #[test]
    fn trigonometric_and_hyperbolic() {
        let d = |x: f64| Value::Double(x);
        let approx = |f: &str, x: f64, want: f64| match call(f, &[d(x)]) {
            Value::Double(got) => assert!((got - want).abs() < 1e-12, "{f}({x}) = {got}"),
            other => panic!("{f}({x}) = {other:?}"),
        };
        approx("COS", 0.0, 1.0);
        approx("TAN", 0.0, 0.0);
        approx("TAN", std::f64::consts::FRAC_PI_4, 1.0);
        approx("ASIN", 1.0, std::f64::consts::FRAC_PI_2);
        approx("ACOS", 1.0, 0.0);
        approx("ATAN", 1.0, std::f64::consts::FRAC_PI_4);
        approx("SINH", 0.0, 0.0);
        approx("COSH", 0.0, 1.0);
        approx("TANH", 0.0, 0.0);
        // Integers are widened; out-of-domain input is NaN, as Java's Math gives.
        assert_eq!(call("COS", &[Value::Int(0)]), d(1.0));
        assert!(matches!(call("ASIN", &[d(2.0)]), Value::Double(x) if x.is_nan()));
        assert!(matches!(call("ACOS", &[d(-2.0)]), Value::Double(x) if x.is_nan()));
        assert_eq!(call("TANH", &[d(1000.0)]), d(1.0));
        assert_eq!(call("COSH", &[d(1000.0)]), d(f64::INFINITY));
        for f in ["COS", "TAN", "ASIN", "ACOS", "ATAN", "SINH", "COSH", "TANH"] {
            assert_eq!(call(f, &[Value::Null]), Value::Null, "{f}");
        }
    }

    #[test]
    fn rounding() {
        assert_eq!(call("ROUND", &[Value::Double(2.5)]), Value::BigInt(3));
        assert_eq!(call("ROUND", &[Value::Double(-2.5)]), Value::BigInt(-2));
        assert_eq!(
            call("ROUND", &[Value::Double(0.49999999999999994)]),
            Value::BigInt(0)
        );
        assert_eq!(call("ROUND", &[Value::Double(f64::NAN)]), Value::BigInt(0));
        assert_eq!(
            call("ROUND", &[Value::Double(1e300)]),
            Value::BigInt(i64::MAX)
        );
        assert_eq!(
            call("ROUND", &[Value::Double(1.235), Value::Int(2)]),
            Value::Double(1.24)
        );
        assert_eq!(
            call("ROUND", &[Value::Double(-1.235), Value::Int(2)]),
            Value::Double(-1.23)
        );
        assert_eq!(
            call("ROUND", &[Value::Double(1234.5), Value::Int(-2)]),
            Value::Double(1200.0)
        );
        assert_eq!(call("ROUND", &[dec(1250, 2)]), dec(13, 0));
        assert_eq!(call("ROUND", &[dec(-1250, 2)]), dec(-12, 0));
        assert_eq!(
            call("ROUND", &[dec(12345, 3), Value::Int(1)]),
            dec(12300, 3)
        );
        assert_eq!(
            call("ROUND", &[Value::Int(1250), Value::Int(-2)]),
            Value::Int(1300)
        );
        assert_eq!(call("ROUND", &[Value::BigInt(7)]), Value::BigInt(7));
        assert_eq!(call("ROUND", &[Value::Null]), Value::Null);
        assert_eq!(
            call("ROUND", &[Value::Double(1.5), Value::Null]),
            Value::Null
        );
        assert_eq!(
            call("ROUND", &[dec(i128::MAX / 10, 0), Value::Int(-50)]),
            dec(0, 0)
        );
        assert_eq!(call("TRUNC", &[Value::Double(-2.7)]), Value::BigInt(-2));
        assert_eq!(
            call("TRUNC", &[dec(-1299, 2), Value::Int(1)]),
            dec(-1290, 2)
        );
        assert_eq!(rule("ROUND", &[DataType::Double]), Ok(DataType::BigInt));
        assert_eq!(
            rule(
                "ROUND",
                &[DataType::Decimal {
                    precision: 5,
                    scale: 2
                }]
            ),
            // ksqlDB's provideDecimalSchema: DECIMAL(precision - scale, 0).
            Ok(DataType::Decimal {
                precision: 3,
                scale: 0
            })
        );
        assert_eq!(rule("ROUND", &[DataType::Int]), Ok(DataType::BigInt));
        assert_eq!(call("ROUND", &[Value::Int(7)]), Value::BigInt(7));
        assert!(rule("ROUND", &[DataType::String]).is_err());
        assert!(rule("ROUND", &[DataType::Double, DataType::Double]).is_err());
    }

    #[test]
    fn elementary() {
        assert_eq!(call("SIGN", &[Value::Double(-0.5)]), Value::Int(-1));
        assert_eq!(call("SIGN", &[Value::Double(f64::NAN)]), Value::Int(0));
        assert_eq!(call("SIGN", &[dec(0, 2)]), Value::Int(0));
        assert_eq!(call("EXP", &[Value::Int(0)]), Value::Double(1.0));
        assert_eq!(
            call("LN", &[Value::Int(0)]),
            Value::Double(f64::NEG_INFINITY)
        );
        assert_eq!(
            call("LOG", &[Value::Int(10), Value::Int(1000)]),
            Value::Double(1000f64.ln() / 10f64.ln())
        );
        assert!(
            matches!(call("LOG", &[Value::Int(1), Value::Int(5)]), Value::Double(d) if d.is_nan())
        );
        assert_eq!(
            call("POWER", &[Value::Int(2), Value::Int(10)]),
            Value::Double(1024.0)
        );
        assert_eq!(call("CBRT", &[Value::Int(-27)]), Value::Double(-3.0));
        assert_eq!(call("DEGREES", &[Value::Double(PI)]), Value::Double(180.0));
        assert_eq!(call("RADIANS", &[Value::Int(180)]), Value::Double(PI));
        assert_eq!(call("PI", &[]), Value::Double(PI));
        assert_eq!(
            call("ATAN2", &[Value::Int(1), Value::Int(1)]),
            Value::Double(PI / 4.0)
        );
        assert_eq!(call("COT", &[Value::Null]), Value::Null);
        let Value::Double(r) = call("RANDOM", &[]) else {
            panic!()
        };
        assert!((0.0..1.0).contains(&r));
        assert!(rule("SIN", &[DataType::String]).is_err());
        assert!(rule("PI", &[DataType::Int]).is_err());
    }

    #[test]
    fn greatest_and_least() {
        let ints = [Value::Int(2), Value::Null, Value::Int(-7), Value::Int(5)];
        assert_eq!(call("LEAST", &ints), Value::Int(-7));
        assert_eq!(call("GREATEST", &ints), Value::Int(5));
        assert_eq!(call("LEAST", &[Value::Null, Value::Null]), Value::Null);
        assert_eq!(
            call(
                "LEAST",
                &[
                    Value::Int(1),
                    Value::BigInt(-1_000_000_000_000),
                    Value::Double(0.5)
                ]
            ),
            Value::Double(-1e12)
        );
        assert_eq!(
            call("LEAST", &[dec(123456789, 2), dec(123456, 6)]),
            dec(123456, 6)
        );
        assert_eq!(
            call(
                "LEAST",
                &[Value::Date(19200), Value::String("2022-06-14".into())]
            ),
            Value::Date(19157)
        );
        assert_eq!(
            call(
                "LEAST",
                &[Value::Time(33_370_000), Value::String("09:16:00".into())]
            ),
            Value::Time(33_360_000)
        );
        assert_eq!(
            call(
                "GREATEST",
                &[Value::Timestamp(0), Value::String("2022-06-14".into())]
            ),
            Value::Timestamp(1_655_164_800_000)
        );
        assert_eq!(
            rule("LEAST", &[DataType::Int, DataType::BigInt]).map_err(|e| e.contains("ambiguous")),
            Err(true)
        );
        assert_eq!(
            rule(
                "LEAST",
                &[DataType::Int, DataType::Double, DataType::String]
            ),
            Ok(DataType::Double)
        );
        assert_eq!(
            rule(
                "LEAST",
                &[
                    DataType::Decimal {
                        precision: 9,
                        scale: 2
                    },
                    DataType::Decimal {
                        precision: 7,
                        scale: 6
                    }
                ]
            ),
            Ok(DataType::Decimal {
                precision: 13,
                scale: 6
            })
        );
        assert!(rule("LEAST", &[]).is_err());
        assert!(rule("GREATEST", &[DataType::Boolean]).is_err());
        assert!(rule("GREATEST", &[DataType::Date, DataType::Int]).is_err());
    }

    #[test]
    fn geo() {
        let d = |args: &[Value]| call("GEO_DISTANCE", args);
        let pts = [
            Value::Double(37.4439),
            Value::Double(-122.1663),
            Value::Double(51.5257),
            Value::Double(-0.1122),
        ];
        assert_eq!(d(&pts), Value::Double(8634.659796579544));
        let mut mi = pts.to_vec();
        mi.push(Value::String("MI".into()));
        assert_eq!(d(&mi), Value::Double(5365.659729188262));
        mi[4] = Value::String("parsecs".into());
        assert_eq!(d(&mi), Value::Null);
        assert_eq!(
            d(&[Value::Int(91), Value::Int(0), Value::Int(0), Value::Int(0)]),
            Value::Null
        );
        assert_eq!(
            d(&[
                Value::Double(39.18660374),
                Value::Double(-76.73262144),
                Value::Double(39.18660374),
                Value::Double(-76.73222145)
            ]),
            Value::Double(0.03447366811448324)
        );
        assert!(
            rule(
                "GEO_DISTANCE",
                &[DataType::Double, DataType::Double, DataType::Double]
            )
            .is_err()
        );
    }
}
