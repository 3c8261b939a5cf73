//! Implicit value coercion as ksqlDB's `DefaultSqlValueCoercer` does it: widening numbers
//! exactly, text to temporal types and bytes, and (for literals, `lax`) anything to text and
//! text to booleans and numbers. Unlike CAST it never rounds or truncates: a value that does
//! not fit is a failure, not NULL.

use crate::eval::cast;
use sluice_common::value::parse_big_decimal;
use sluice_common::{DataType, Value};

/// Coerces `v` to `to`; None when the value cannot be represented there.
pub fn coerce_value(v: &Value, to: &DataType, lax: bool) -> Option<Value> {
    use Value as V;
    Some(match (v, to) {
        (V::Null, _) => V::Null,
        (V::Boolean(_), DataType::Boolean)
        | (V::Int(_), DataType::Int)
        | (V::BigInt(_), DataType::BigInt)
        | (V::Double(_), DataType::Double)
        | (V::String(_), DataType::String)
        | (V::Bytes(_), DataType::Bytes)
        | (V::Timestamp(_), DataType::Timestamp)
        | (V::Time(_), DataType::Time)
        | (V::Date(_), DataType::Date) => v.clone(),
        (V::Int(i), DataType::BigInt) => V::BigInt(i64::from(*i)),
        (V::Int(_) | V::BigInt(_) | V::Decimal { .. }, DataType::Double) => V::Double(v.as_f64()?),
        (V::Int(_) | V::BigInt(_), DataType::Decimal { precision, scale }) => {
            decimal_fit(i128::from(v.as_i64()?), 0, *precision, *scale)?
        }
        (V::Decimal { unscaled, scale: s }, DataType::Decimal { precision, scale }) => {
            decimal_fit(*unscaled, *s, *precision, *scale)?
        }
        (V::String(s), DataType::Timestamp | DataType::Time | DataType::Date | DataType::Bytes) => {
            let out = match to {
                DataType::Bytes => base64_decode(s.trim()).map(V::Bytes)?,
                _ => cast(V::String(s.trim().to_string()), to),
            };
            if out.is_null() {
                return None;
            }
            out
        }
        (V::Array(items), DataType::Array(item)) => V::Array(
            items
                .iter()
                .map(|i| coerce_value(i, item, lax))
                .collect::<Option<_>>()?,
        ),
        (V::Map(entries), DataType::Map(kt, vt)) => V::Map(
            entries
                .iter()
                .map(|(k, v)| Some((coerce_value(k, kt, lax)?, coerce_value(v, vt, lax)?)))
                .collect::<Option<_>>()?,
        ),
        // Fields are matched by name; target fields the value lacks are NULL, and fields
        // the target lacks are dropped.
        (V::Struct(have), DataType::Struct(fields)) => V::Struct(
            fields
                .iter()
                .map(|(n, t)| {
                    let v = have
                        .iter()
                        .find(|(hn, _)| hn == n)
                        .map_or(V::Null, |(_, v)| v.clone());
                    Some((n.clone(), coerce_value(&v, t, lax)?))
                })
                .collect::<Option<_>>()?,
        ),
        (
            V::Boolean(_)
            | V::Int(_)
            | V::BigInt(_)
            | V::Decimal { .. }
            | V::Double(_)
            | V::Timestamp(_)
            | V::Time(_)
            | V::Date(_),
            DataType::String,
        ) if lax => cast(v.clone(), to),
        (V::String(s), DataType::Boolean) if lax => V::Boolean(parse_boolean_exact(s.trim())?),
        (V::String(s), DataType::Int) if lax => V::Int(s.trim().parse().ok()?),
        (V::String(s), DataType::BigInt) if lax => V::BigInt(s.trim().parse().ok()?),
        (V::String(s), DataType::Double) if lax => V::Double(parse_java_double(s.trim())?),
        (V::String(s), DataType::Decimal { precision, scale }) if lax => {
            let (u, s) = parse_big_decimal(s.trim())?;
            decimal_fit(u, s, *precision, *scale)?
        }
        _ => return None,
    })
}

/// ksqlDB's `DecimalUtil.ensureFit`: the value at exactly `scale` digits (no rounding) and
/// below 10^(precision - scale).
pub fn decimal_fit(unscaled: i128, from: u8, precision: u8, scale: u8) -> Option<Value> {
    let u = if scale >= from {
        unscaled.checked_mul(10i128.checked_pow(u32::from(scale - from))?)?
    } else {
        let div = 10i128.checked_pow(u32::from(from - scale))?;
        if unscaled % div != 0 {
            return None;
        }
        unscaled / div
    };
    if let Some(max) = 10u128.checked_pow(u32::from(precision))
        && u.unsigned_abs() >= max
    {
        return None;
    }
    Some(Value::Decimal { unscaled: u, scale })
}

/// ksqlDB's `SqlBooleans.parseBooleanExact`: `true`, `false`, `yes`, `no` or a prefix of
/// one of them, any case.
pub fn parse_boolean_exact(s: &str) -> Option<bool> {
    let lower = s.to_ascii_lowercase();
    if lower.is_empty() {
        return None;
    }
    if "true".starts_with(&lower) || "yes".starts_with(&lower) {
        Some(true)
    } else if "false".starts_with(&lower) || "no".starts_with(&lower) {
        Some(false)
    } else {
        None
    }
}

/// Java's `Double.parseDouble`: decimal or exponent notation, `NaN`, `Infinity`, with an
/// optional `d`/`f` suffix.
pub fn parse_java_double(s: &str) -> Option<f64> {
    let body = s
        .strip_suffix(['d', 'D', 'f', 'F'])
        .filter(|b| !b.is_empty() && !b.ends_with(['e', 'E']))
        .unwrap_or(s);
    let unsigned = body.strip_prefix(['+', '-']).unwrap_or(body);
    match unsigned {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(if body.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }),
        _ if unsigned
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')) =>
        {
            body.parse().ok()
        }
        _ => None,
    }
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(precision: u8, scale: u8) -> DataType {
        DataType::Decimal { precision, scale }
    }

    #[test]
    fn strict_widens_numbers_exactly() {
        assert_eq!(
            coerce_value(&Value::Int(2), &DataType::BigInt, false),
            Some(Value::BigInt(2))
        );
        assert_eq!(
            coerce_value(&Value::Int(2), &dec(2, 1), false),
            Some(Value::Decimal {
                unscaled: 20,
                scale: 1
            })
        );
        assert_eq!(coerce_value(&Value::Int(200), &dec(2, 1), false), None);
        assert_eq!(
            coerce_value(
                &Value::Decimal {
                    unscaled: 125,
                    scale: 2
                },
                &dec(3, 1),
                false
            ),
            None
        );
        assert_eq!(coerce_value(&Value::BigInt(2), &DataType::Int, false), None);
        assert_eq!(
            coerce_value(&Value::String("10".into()), &DataType::Int, false),
            None
        );
    }

    #[test]
    fn lax_converts_text() {
        let s = |t: &str| Value::String(t.into());
        assert_eq!(
            coerce_value(&s("no"), &DataType::Boolean, true),
            Some(Value::Boolean(false))
        );
        assert_eq!(
            coerce_value(&s("2e1"), &dec(19, 0), true),
            Some(Value::Decimal {
                unscaled: 20,
                scale: 0
            })
        );
        assert_eq!(coerce_value(&s("x"), &DataType::Int, true), None);
        assert_eq!(
            coerce_value(&Value::Int(10), &DataType::String, true),
            Some(s("10"))
        );
        assert_eq!(parse_boolean_exact("Fal"), Some(false));
        assert_eq!(parse_boolean_exact("tx"), None);
        assert_eq!(parse_java_double("1e3"), Some(1000.0));
        assert!(parse_java_double("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_java_double("inf"), None);
    }

    #[test]
    fn structs_coerce_by_field_name() {
        let v = Value::Struct(vec![
            ("FOO".into(), Value::Int(2)),
            ("EXTRA".into(), Value::Int(1)),
        ]);
        let to = DataType::Struct(vec![
            ("FOO".into(), DataType::BigInt),
            ("BAZ".into(), DataType::Double),
        ]);
        assert_eq!(
            coerce_value(&v, &to, false),
            Some(Value::Struct(vec![
                ("FOO".into(), Value::BigInt(2)),
                ("BAZ".into(), Value::Null)
            ]))
        );
    }
}
