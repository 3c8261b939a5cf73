//! Runtime values. One enum for every SQL type; NULL is a value of every type.

use crate::types::DataType;
use std::cmp::Ordering;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    Int(i32),
    BigInt(i64),
    Double(f64),
    /// Exact decimal: `unscaled * 10^-scale`.
    Decimal {
        unscaled: i128,
        scale: u8,
    },
    String(String),
    Bytes(Vec<u8>),
    Timestamp(i64),
    Date(i32),
    Time(i64),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    /// Field names travel with the values so a struct is self-describing in any format.
    Struct(Vec<(String, Value)>),
}

pub type Row = Vec<Value>;

impl Value {
    /// About how many bytes the value holds (strings, bytes, and collections' elements, at
    /// 16 bytes per scalar), counted only until `limit` is passed: bounding a value's size
    /// costs no more than the bound.
    pub fn size_within(&self, limit: usize) -> usize {
        match self {
            Value::String(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::Array(items) => {
                let mut n = 0usize;
                for v in items {
                    n = n.saturating_add(v.size_within(limit.saturating_sub(n)));
                    if n > limit {
                        break;
                    }
                }
                n
            }
            Value::Map(entries) => {
                let mut n = 0usize;
                for (k, v) in entries {
                    n = n
                        .saturating_add(k.size_within(limit))
                        .saturating_add(v.size_within(limit.saturating_sub(n)));
                    if n > limit {
                        break;
                    }
                }
                n
            }
            Value::Struct(fields) => {
                let mut n = 0usize;
                for (name, v) in fields {
                    n = n
                        .saturating_add(name.len())
                        .saturating_add(v.size_within(limit.saturating_sub(n)));
                    if n > limit {
                        break;
                    }
                }
                n
            }
            _ => 16,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v as i64),
            Value::BigInt(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(v) => Some(*v as f64),
            Value::BigInt(v) => Some(*v as f64),
            Value::Double(v) => Some(*v),
            Value::Decimal { unscaled, scale } => {
                Some(*unscaled as f64 / 10f64.powi(*scale as i32))
            }
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Re-scales a decimal to `scale` digits (rounding half up), as exact decimal arithmetic
    /// needs both operands on one scale.
    pub fn decimal_rescale(unscaled: i128, from: u8, to: u8) -> Option<i128> {
        match from.cmp(&to) {
            Ordering::Equal => Some(unscaled),
            Ordering::Less => unscaled.checked_mul(10i128.checked_pow((to - from) as u32)?),
            Ordering::Greater => {
                let div = 10i128.checked_pow((from - to) as u32)?;
                let q = unscaled / div;
                let r = unscaled % div;
                Some(if r.unsigned_abs() * 2 >= div.unsigned_abs() {
                    q + unscaled.signum()
                } else {
                    q
                })
            }
        }
    }

    /// Parses decimal text such as `-12.50` into (unscaled, scale).
    pub fn parse_decimal(text: &str) -> Option<(i128, u8)> {
        let text = text.trim();
        let (neg, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let joined = format!("{int}{frac}");
        let unscaled: i128 = if joined.is_empty() {
            0
        } else {
            joined.parse().ok()?
        };
        let scale = u8::try_from(frac.len()).ok()?;
        Some((if neg { -unscaled } else { unscaled }, scale))
    }

    /// The type a value has on its own; NULL has none.
    pub fn data_type(&self) -> Option<DataType> {
        Some(match self {
            Value::Null => return None,
            Value::Boolean(_) => DataType::Boolean,
            Value::Int(_) => DataType::Int,
            Value::BigInt(_) => DataType::BigInt,
            Value::Double(_) => DataType::Double,
            Value::Decimal { unscaled, scale } => {
                let (precision, scale) = decimal_value_type(*unscaled, *scale);
                DataType::Decimal { precision, scale }
            }
            Value::String(_) => DataType::String,
            Value::Bytes(_) => DataType::Bytes,
            Value::Timestamp(_) => DataType::Timestamp,
            Value::Date(_) => DataType::Date,
            Value::Time(_) => DataType::Time,
            Value::Array(items) => DataType::Array(Box::new(
                items
                    .iter()
                    .find_map(|v| v.data_type())
                    .unwrap_or(DataType::String),
            )),
            Value::Map(entries) => DataType::Map(
                Box::new(
                    entries
                        .iter()
                        .find_map(|(k, _)| k.data_type())
                        .unwrap_or(DataType::String),
                ),
                Box::new(
                    entries
                        .iter()
                        .find_map(|(_, v)| v.data_type())
                        .unwrap_or(DataType::String),
                ),
            ),
            Value::Struct(fields) => DataType::Struct(
                fields
                    .iter()
                    .map(|(n, v)| (n.clone(), v.data_type().unwrap_or(DataType::String)))
                    .collect(),
            ),
        })
    }

    /// SQL comparison: numbers compare across types by value; NULL compares as unknown (None).
    pub fn sql_cmp(&self, other: &Value) -> Option<Ordering> {
        use Value::*;
        match (self, other) {
            (Null, _) | (_, Null) => None,
            (Int(a), Int(b)) => Some(a.cmp(b)),
            (Int(_) | BigInt(_), Int(_) | BigInt(_)) => {
                self.as_i64()?.partial_cmp(&other.as_i64()?)
            }
            (
                Decimal {
                    unscaled: a,
                    scale: sa,
                },
                Decimal {
                    unscaled: b,
                    scale: sb,
                },
            ) => {
                let s = (*sa).max(*sb);
                Value::decimal_rescale(*a, *sa, s)?
                    .partial_cmp(&Value::decimal_rescale(*b, *sb, s)?)
            }
            (Decimal { unscaled, scale }, Int(_) | BigInt(_)) => {
                let b =
                    (other.as_i64()? as i128).checked_mul(10i128.checked_pow(*scale as u32)?)?;
                unscaled.partial_cmp(&b)
            }
            (Int(_) | BigInt(_), Decimal { .. }) => other.sql_cmp(self).map(Ordering::reverse),
            // ksqlDB compares a DOUBLE with a DECIMAL as BigDecimal.valueOf(double), the
            // double's shortest decimal digits, exactly.
            (Decimal { .. }, Double(d)) if exact_decimal(*d).is_some() => {
                let (unscaled, scale) = exact_decimal(*d)?;
                self.sql_cmp(&Decimal { unscaled, scale })
            }
            (Double(d), Decimal { .. }) if exact_decimal(*d).is_some() => {
                other.sql_cmp(self).map(Ordering::reverse)
            }
            (
                Int(_) | BigInt(_) | Double(_) | Decimal { .. },
                Int(_) | BigInt(_) | Double(_) | Decimal { .. },
            ) => self.as_f64()?.partial_cmp(&other.as_f64()?),
            (Boolean(a), Boolean(b)) => Some(a.cmp(b)),
            (String(a), String(b)) => Some(a.cmp(b)),
            // Java's ByteBuffer.compareTo compares bytes as signed values.
            (Bytes(a), Bytes(b)) => {
                Some(a.iter().map(|x| *x as i8).cmp(b.iter().map(|x| *x as i8)))
            }
            (Timestamp(a), Timestamp(b)) => Some(a.cmp(b)),
            (Date(a), Date(b)) => Some(a.cmp(b)),
            (Time(a), Time(b)) => Some(a.cmp(b)),
            (Array(a), Array(b)) => {
                for (x, y) in a.iter().zip(b) {
                    match x.sql_cmp(y)? {
                        Ordering::Equal => continue,
                        o => return Some(o),
                    }
                }
                Some(a.len().cmp(&b.len()))
            }
            _ => None,
        }
    }

    /// Equality as SQL `=` sees it (numeric across types), NULL never equal.
    pub fn sql_eq(&self, other: &Value) -> Option<bool> {
        match (self, other) {
            (Value::Null, _) | (_, Value::Null) => None,
            // Collections compare structurally, NULL elements equal to NULL (Java equals).
            (Value::Array(_), Value::Array(_))
            | (Value::Map(_), Value::Map(_))
            | (Value::Struct(_), Value::Struct(_)) => Some(structural_eq(self, other)),
            _ => self.sql_cmp(other).map(|o| o == Ordering::Equal),
        }
    }
}

/// A finite double as the decimal of its shortest digits, when that fits a decimal here.
fn exact_decimal(d: f64) -> Option<(i128, u8)> {
    if !d.is_finite() {
        return None;
    }
    parse_big_decimal(&format_double(d))
}

/// Java `equals` over collections: elements in order, map entries in any order, NULL
/// equal to NULL.
fn structural_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| structural_eq(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| {
                    y.iter()
                        .any(|(k2, v2)| structural_eq(k, k2) && structural_eq(v, v2))
                })
        }
        (Value::Struct(x), Value::Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((n1, v1), (n2, v2))| n1 == n2 && structural_eq(v1, v2))
        }
        _ => a == b,
    }
}

/// The DECIMAL type of a decimal value as ksqlDB's `DecimalUtil.fromValue` gives it: its
/// digits and scale, except that a value in (-1, 1) has one integer digit (`0.005` is
/// DECIMAL(4, 3)).
pub fn decimal_value_type(unscaled: i128, scale: u8) -> (u8, u8) {
    let one = 10i128.checked_pow(u32::from(scale));
    if one.is_none_or(|one| unscaled.unsigned_abs() < one.unsigned_abs()) {
        return (scale.saturating_add(1), scale);
    }
    let digits = unscaled.unsigned_abs().to_string().len();
    (u8::try_from(digits).unwrap_or(u8::MAX).max(scale), scale)
}

/// Parses a number as Java's `new BigDecimal(text)` does (sign, digits, optional fraction,
/// optional exponent), into (unscaled, scale) with a non-negative scale: `2e1` is 20.
pub fn parse_big_decimal(text: &str) -> Option<(i128, u8)> {
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(i) => {
            let e = text.get(i + 1..)?;
            let e = e.strip_prefix('+').unwrap_or(e);
            (text.get(..i)?, e.parse::<i32>().ok()?)
        }
        None => (text, 0),
    };
    let (neg, digits) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let joined = format!("{int}{frac}");
    let mut unscaled: i128 = joined.parse().ok()?;
    let mut scale = i64::try_from(frac.len()).ok()? - i64::from(exp);
    if scale < 0 {
        unscaled = unscaled.checked_mul(10i128.checked_pow(u32::try_from(-scale).ok()?)?)?;
        scale = 0;
    }
    let scale = u8::try_from(scale).ok()?;
    Some((if neg { -unscaled } else { unscaled }, scale))
}

/// Formats a double the way ksqlDB (Java's `Double.toString`) prints it: shortest digits that
/// round-trip; plain notation with at least one fractional digit for magnitudes in
/// [1e-3, 1e7), otherwise `d.dddE±n` with at least two significant digits (so `1.0E7`,
/// `4.9E-324`).
pub fn format_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let abs = v.abs();
    if (1e-3..1e7).contains(&abs) {
        let text = format!("{v}");
        return if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        };
    }
    // Shortest round-trip digits in scientific form, e.g. "1.7976931348623157e308" or "5e-324".
    let shortest = format!("{v:e}");
    let Some((mantissa, exponent)) = shortest.split_once('e') else {
        return shortest;
    };
    let mantissa = if mantissa.contains('.') {
        mantissa.to_string()
    } else {
        // One significant digit: Java prints two, the second rounded from the exact value.
        match format!("{v:.1e}").split_once('e') {
            Some((two, _)) => two.to_string(),
            None => format!("{mantissa}.0"),
        }
    };
    format!("{mantissa}E{exponent}")
}

/// Appends [`format_double`]'s text to `out`, without an intermediate string in the common
/// case (magnitudes in [1e-3, 1e7)): JSON encoding writes one per DOUBLE cell.
pub fn write_double(out: &mut Vec<u8>, v: f64) {
    use std::io::Write as _;
    let abs = v.abs();
    if v.is_finite() && (1e-3..1e7).contains(&abs) {
        let start = out.len();
        let _ = write!(out, "{v}");
        if !out[start..].contains(&b'.') {
            out.extend_from_slice(b".0");
        }
        return;
    }
    out.extend_from_slice(format_double(v).as_bytes());
}

/// Formats an exact decimal with exactly `scale` fractional digits.
pub fn format_decimal(unscaled: i128, scale: u8) -> String {
    let neg = unscaled < 0;
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale as usize;
    let body = if scale == 0 {
        digits
    } else if digits.len() > scale {
        format!(
            "{}.{}",
            &digits[..digits.len() - scale],
            &digits[digits.len() - scale..]
        )
    } else {
        format!("0.{}{}", "0".repeat(scale - digits.len()), digits)
    };
    if neg { format!("-{body}") } else { body }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Int(v) => write!(f, "{v}"),
            Value::BigInt(v) => write!(f, "{v}"),
            Value::Double(v) => f.write_str(&format_double(*v)),
            Value::Decimal { unscaled, scale } => f.write_str(&format_decimal(*unscaled, *scale)),
            Value::String(s) => f.write_str(s),
            Value::Bytes(b) => {
                for byte in b {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
            Value::Timestamp(v) | Value::Time(v) => write!(f, "{v}"),
            Value::Date(v) => write!(f, "{v}"),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}={v}")?;
                }
                f.write_str("}")
            }
            Value::Struct(fields) => {
                f.write_str("{")?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}={v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_format_and_rescale() {
        assert_eq!(Value::parse_decimal("-12.50"), Some((-1250, 2)));
        assert_eq!(Value::parse_decimal("abc"), None);
        assert_eq!(format_decimal(-1250, 2), "-12.50");
        assert_eq!(format_decimal(5, 3), "0.005");
        assert_eq!(Value::decimal_rescale(125, 2, 1), Some(13));
        assert_eq!(Value::decimal_rescale(12, 1, 3), Some(1200));
    }

    #[test]
    fn doubles_compare_with_decimals_by_their_decimal_digits() {
        let d = |u: i128, s: u8| Value::Decimal {
            unscaled: u,
            scale: s,
        };
        assert_eq!(d(1, 1).sql_cmp(&Value::Double(0.1)), Some(Ordering::Equal));
        assert_eq!(
            Value::Double(0.30000000000000004).sql_cmp(&d(3, 1)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            d(12345678901234567, 0).sql_cmp(&Value::Double(12345678901234568.0)),
            Some(Ordering::Less)
        );
    }

    #[test]
    fn decimal_values_type_and_parse_like_java() {
        assert_eq!(decimal_value_type(5, 3), (4, 3));
        assert_eq!(decimal_value_type(0, 2), (3, 2));
        assert_eq!(decimal_value_type(1250, 2), (4, 2));
        assert_eq!(decimal_value_type(-120, 1), (3, 1));
        assert_eq!(parse_big_decimal("2e1"), Some((20, 0)));
        assert_eq!(parse_big_decimal("-1.5E-2"), Some((-15, 3)));
        assert_eq!(parse_big_decimal("12.50"), Some((1250, 2)));
        assert_eq!(parse_big_decimal(".5"), Some((5, 1)));
        assert_eq!(parse_big_decimal("abc"), None);
        assert_eq!(parse_big_decimal("1e"), None);
    }

    #[test]
    fn comparisons_cross_numeric_types_and_null_is_unknown() {
        assert_eq!(
            Value::Int(2).sql_cmp(&Value::BigInt(3)),
            Some(Ordering::Less)
        );
        assert_eq!(
            Value::Double(2.5).sql_cmp(&Value::Int(2)),
            Some(Ordering::Greater)
        );
        assert_eq!(Value::Null.sql_eq(&Value::Null), None);
        assert_eq!(
            Value::Decimal {
                unscaled: 150,
                scale: 2
            }
            .sql_cmp(&Value::Int(1)),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn doubles_print_like_java() {
        assert_eq!(format_double(2.0), "2.0");
        assert_eq!(format_double(2.5), "2.5");
        assert_eq!(format_double(0.001), "0.001");
        assert_eq!(format_double(1234567.0), "1234567.0");
        assert_eq!(format_double(1e7), "1.0E7");
        assert_eq!(format_double(-1.5e-4), "-1.5E-4");
        assert_eq!(format_double(f64::MIN_POSITIVE), "2.2250738585072014E-308");
        assert_eq!(format_double(-f64::MAX), "-1.7976931348623157E308");
        assert_eq!(format_double(4.9e-324), "4.9E-324");
        assert_eq!(format_double(1e22), "1.0E22");
        assert_eq!(format_double(-0.0), "-0.0");
        assert_eq!(format_double(f64::NAN), "NaN");
        for v in [
            2.0,
            2.5,
            0.001,
            1234567.0,
            1e7,
            -1.5e-4,
            -0.0,
            0.1,
            1e300,
            0.30000000000000004,
        ] {
            let mut out = b"x".to_vec();
            write_double(&mut out, v);
            assert_eq!(&out[1..], format_double(v).as_bytes(), "{v}");
        }
    }
}
