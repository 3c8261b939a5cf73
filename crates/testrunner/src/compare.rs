//! Record comparison.
//!
//! [`record_matches`] judges a QTT output record as ksqlDB's harness does
//! (ksqldb-functional-tests `ExpectedRecordComparator`): the actual record is deserialized
//! the way the harness's serde reads it, then compared node by node against the expected
//! JSON. Objects must have exactly the expected number of fields (a field is looked up as
//! written, then upper-cased); arrays compare element-wise; numbers follow Java's types:
//! - read from JSON text, an integer stays an integer, and a number with a fraction or an
//!   exponent is a `BigDecimal` (the harness enables USE_BIG_DECIMAL_FOR_FLOATS), which
//!   equals the expected number only with the same digits *and* scale (`1.50` is not
//!   `1.5`), and never equals an expected integer unless its scale is zero or less;
//! - read from KAFKA-format bytes, a DOUBLE is a Java `Double`, equal only to the exact same
//!   double, and an INT/BIGINT equals the expected number's integer part.
//!
//! [`matches`] is the looser comparison RQTT responses use (REST payloads, not records):
//! DOUBLE within 1e-6, DECIMAL exact; a row's or struct's missing fields read as NULL.

use serde_json::Value as Json;
use sluice_common::{DataType, SourceDef};

/// How the harness would have deserialized an actual record's key or value, which decides
/// the Java type each number has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbers {
    /// Parsed from JSON text (JSON formats): fractions are BigDecimals.
    JsonText,
    /// Decoded from KAFKA-format bytes: DOUBLEs are Doubles, integers Integers/Longs.
    Typed,
}

/// Whether an actual record part (key or value, already turned into JSON) matches the
/// expected JSON node, with ksqlDB's harness rules (see the module docs).
pub fn record_matches(expected: &Json, actual: &Json, numbers: Numbers) -> bool {
    match expected {
        Json::Null => actual.is_null(),
        Json::Bool(e) => actual.as_bool() == Some(*e),
        Json::String(e) => match actual {
            Json::String(a) => a == e,
            // A BigDecimal actual equals an expected text of the same digits and scale.
            Json::Number(a) if numbers == Numbers::JsonText && is_fractional(a) => {
                decimal(e).is_some_and(|d| Some(d) == decimal(&a.to_string()))
            }
            _ => false,
        },
        Json::Number(e) => {
            let Json::Number(a) = actual else {
                return false;
            };
            let a_text = a.to_string();
            if !is_fractional(a) {
                // An Integer/Long actual: compared with the expected value's integer part.
                return match (integer_part(&e.to_string()), a_text.parse::<i128>().ok()) {
                    (Some(x), Some(y)) => x == y,
                    _ => false,
                };
            }
            match numbers {
                Numbers::Typed => match (e.as_f64(), a.as_f64()) {
                    (Some(x), Some(y)) => x == y,
                    _ => false,
                },
                Numbers::JsonText => {
                    let (Some(x), Some(y)) = (decimal(&e.to_string()), decimal(&a_text)) else {
                        return false;
                    };
                    if !is_fractional(e) {
                        // An expected integer matches a BigDecimal only without decimal places.
                        return y.scale <= 0 && x.digits_value() == y.digits_value();
                    }
                    x == y
                }
            }
        }
        Json::Array(e) => match actual {
            Json::Array(a) => {
                a.len() == e.len() && e.iter().zip(a).all(|(x, y)| record_matches(x, y, numbers))
            }
            _ => false,
        },
        Json::Object(e) => match actual {
            Json::Object(a) => {
                a.len() == e.len()
                    && e.iter().all(|(k, v)| {
                        let found = a
                            .get(k)
                            .filter(|f| !f.is_null())
                            .or_else(|| a.get(&k.to_uppercase()));
                        record_matches(v, found.unwrap_or(&Json::Null), numbers)
                    })
            }
            _ => false,
        },
    }
}

/// Whether a JSON number's text has a fraction or an exponent (Jackson reads such a number
/// as a floating-point value, an integer otherwise).
fn is_fractional(n: &serde_json::Number) -> bool {
    n.to_string().contains(['.', 'e', 'E'])
}

/// A decimal number as Java's BigDecimal holds it: unscaled digits and a scale.
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    /// Unscaled digits without leading zeros ("" for zero).
    digits: String,
    scale: i64,
}

impl Decimal {
    /// The numeric value with the scale normalized away, for comparisons that ignore it.
    fn digits_value(&self) -> (bool, String, i64) {
        let trimmed = self.digits.trim_end_matches('0');
        let dropped = (self.digits.len() - trimmed.len()) as i64;
        if trimmed.is_empty() {
            return (false, String::new(), 0);
        }
        (self.negative, trimmed.to_string(), self.scale - dropped)
    }
}

/// Parses `-12.340E+3` the way `new BigDecimal(text)` does; None if it is not a number.
fn decimal(text: &str) -> Option<Decimal> {
    let t = text.trim();
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (t.get(..i)?, t.get(i + 1..)?.parse::<i64>().ok()?),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let all = format!("{int}{frac}");
    let digits = all.trim_start_matches('0').to_string();
    Some(Decimal {
        negative: negative && !digits.is_empty(),
        digits,
        scale: frac.len() as i64 - exponent,
    })
}

/// The integer part of a JSON number, as Java's `intValue()`/`longValue()` truncate it.
fn integer_part(text: &str) -> Option<i128> {
    if let Ok(i) = text.parse::<i128>() {
        return Some(i);
    }
    text.parse::<f64>().ok().map(|f| f.trunc() as i128)
}

/// `ty` is the SQL type of this value when known; `row` the source whose value columns
/// an object's fields are.
pub fn matches(
    expected: &Json,
    actual: &Json,
    ty: Option<&DataType>,
    row: Option<&SourceDef>,
) -> bool {
    match (expected, actual) {
        (Json::Null, Json::Null) => true,
        (Json::Bool(a), Json::Bool(b)) => a == b,
        (Json::String(a), Json::String(b)) => a == b,
        // ksqlDB's JSON reader takes a DECIMAL written as a string, so an expected "3.40"
        // is the decimal 3.40.
        (Json::String(a), Json::Number(b)) if matches!(ty, Some(DataType::Decimal { .. })) => {
            *a == b.to_string()
        }
        (Json::Number(a), Json::Number(b)) => {
            if matches!(ty, Some(DataType::Decimal { .. })) {
                return a.to_string() == b.to_string();
            }
            match (a.as_i64(), b.as_i64()) {
                (Some(x), Some(y)) => x == y,
                _ => match (a.as_f64(), b.as_f64()) {
                    (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-6 * x.abs().max(1.0),
                    _ => a.to_string() == b.to_string(),
                },
            }
        }
        (Json::Array(a), Json::Array(b)) => {
            let item = match ty {
                Some(DataType::Array(t)) => Some(t.as_ref()),
                _ => None,
            };
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| matches(x, y, item, None))
        }
        // A row: ksqlDB reads the expected value with the sink's value schema, so each value
        // column takes the expected field of its name (null when absent) and fields that
        // are no column are ignored.
        (Json::Object(a), Json::Object(b)) if ty.is_none() && row.is_some() => {
            let Some(def) = row else {
                return false;
            };
            let payload = def.payload_columns();
            if let [only] = payload
                && def.value_format.wrap_single_value == Some(false)
            {
                return matches(expected, actual, Some(&only.data_type), None);
            }
            payload
                .iter()
                .all(|c| field_matches(a, b, &c.name, &c.data_type))
        }
        // A struct is read the same way, field by field.
        (Json::Object(a), Json::Object(b)) if matches!(ty, Some(DataType::Struct(_))) => {
            let Some(DataType::Struct(fields)) = ty else {
                return false;
            };
            fields.iter().all(|(n, t)| field_matches(a, b, n, t))
        }
        (Json::Object(a), Json::Object(b)) => {
            if a.len() != b.len() {
                return false;
            }
            a.iter().all(|(k, v)| {
                let found = b.get(k).or_else(|| b.get(&k.to_ascii_uppercase()));
                let field_type = match (ty, row) {
                    (Some(DataType::Struct(fields)), _) => fields
                        .iter()
                        .find(|(n, _)| n == k || n.eq_ignore_ascii_case(k))
                        .map(|(_, t)| t),
                    (Some(DataType::Map(_, vt)), _) => Some(vt.as_ref()),
                    (None, Some(def)) => def
                        .schema
                        .values()
                        .iter()
                        .find(|c| c.name == *k || c.name == k.to_ascii_uppercase())
                        .map(|c| &c.data_type),
                    _ => None,
                };
                found.is_some_and(|f| matches(v, f, field_type, None))
            })
        }
        _ => false,
    }
}

/// Compares field `name` of an expected and an actual object, an absent field being null;
/// the expected field is looked up as written, then upper-cased.
fn field_matches(
    expected: &serde_json::Map<String, Json>,
    actual: &serde_json::Map<String, Json>,
    name: &str,
    ty: &DataType,
) -> bool {
    let ev = expected
        .get(name)
        .or_else(|| {
            expected
                .iter()
                .find(|(k, _)| k.to_ascii_uppercase() == name)
                .map(|(_, v)| v)
        })
        .unwrap_or(&Json::Null);
    let av = actual.get(name).unwrap_or(&Json::Null);
    matches(ev, av, Some(ty), None)
}

/// A source's schema the way QTT's post conditions write it: `ID INT KEY, NAME STRING`.
pub fn describe_schema(def: &SourceDef) -> String {
    def.schema
        .columns
        .iter()
        .map(|c| {
            format!(
                "`{}` {}{}",
                c.name,
                c.data_type,
                if c.role.is_key() { " KEY" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Normalizes schema text for comparison: no backticks, one spacing, INT for INTEGER, KEY
/// for PRIMARY KEY (ksqlDB reads the expected schema as column definitions, where a
/// table's PRIMARY KEY is its key).
pub fn normalize_schema(s: &str) -> String {
    let s = s
        .replace('`', "")
        .to_ascii_uppercase()
        .replace("INTEGER", "INT")
        .replace("VARCHAR", "STRING");
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let s = s.replace("PRIMARY KEY", "KEY");
    s.replace(" ,", ",")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(", ", ",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(text: &str) -> Json {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn records_compare_numbers_as_the_harness_reads_them() {
        let text = Numbers::JsonText;
        // BigDecimal equality: digits and scale.
        assert!(record_matches(&j("1.5"), &j("1.5"), text));
        assert!(!record_matches(&j("1.50"), &j("1.5"), text));
        assert!(!record_matches(&j("0.3"), &j("0.30000000000000004"), text));
        assert!(record_matches(&j("1.0E10"), &j("1.0E10"), text));
        assert!(!record_matches(&j("10000000000.0"), &j("1.0E10"), text));
        // An expected integer never matches a fraction; an integer actual takes the
        // expected value's integer part.
        assert!(!record_matches(&j("1"), &j("1.0"), text));
        assert!(record_matches(&j("1.0"), &j("1"), text));
        assert!(record_matches(&j("\"3.40\""), &j("3.40"), text));
        assert!(!record_matches(&j("\"3.4\""), &j("3.40"), text));
        // Doubles decoded from bytes compare as doubles.
        assert!(record_matches(&j("1"), &j("1.0"), Numbers::Typed));
        assert!(!record_matches(
            &j("0.3"),
            &j("0.30000000000000004"),
            Numbers::Typed
        ));
    }

    #[test]
    fn records_need_exactly_the_expected_fields() {
        let text = Numbers::JsonText;
        assert!(record_matches(
            &j(r#"{"a":1,"B":null}"#),
            &j(r#"{"A":1,"B":null}"#),
            text
        ));
        assert!(!record_matches(
            &j(r#"{"A":1}"#),
            &j(r#"{"A":1,"B":null}"#),
            text
        ));
        assert!(!record_matches(
            &j(r#"{"A":1,"B":null,"C":2}"#),
            &j(r#"{"A":1,"B":null}"#),
            text
        ));
        assert!(!record_matches(
            &j(r#"{"S":{"X":1}}"#),
            &j(r#"{"S":{"X":1,"Y":null}}"#),
            text
        ));
        assert!(record_matches(&j("[1,[2]]"), &j("[1,[2]]"), text));
        assert!(!record_matches(&j("[1]"), &j("[1,2]"), text));
    }

    #[test]
    fn decimals_are_exact_doubles_are_close() {
        let a: Json = serde_json::from_str("12.30").unwrap();
        let b: Json = serde_json::from_str("12.3").unwrap();
        assert!(!matches(
            &a,
            &b,
            Some(&DataType::Decimal {
                precision: 4,
                scale: 2
            }),
            None
        ));
        assert!(matches(&a, &b, Some(&DataType::Double), None));
        let dec = DataType::Decimal {
            precision: 3,
            scale: 2,
        };
        let text = Json::String("3.40".into());
        let num: Json = serde_json::from_str("3.40").unwrap();
        assert!(matches(&text, &num, Some(&dec), None));
        assert!(!matches(
            &Json::String("3.4".into()),
            &num,
            Some(&dec),
            None
        ));
        assert!(!matches(&text, &num, Some(&DataType::Double), None));
        let c: Json = serde_json::from_str("0.30000000000000004").unwrap();
        let d: Json = serde_json::from_str("0.3").unwrap();
        assert!(matches(&d, &c, None, None));
    }

    #[test]
    fn fields_match_as_written_or_upper_cased() {
        let e: Json = serde_json::json!({"count": 1});
        let a: Json = serde_json::json!({"COUNT": 1});
        assert!(matches(&e, &a, None, None));
        assert!(!matches(&serde_json::json!({"X": 1}), &a, None, None));
    }

    #[test]
    fn rows_and_structs_read_the_expected_value_through_the_schema() {
        let st = DataType::Struct(vec![
            ("A".into(), DataType::Int),
            ("B".into(), DataType::Int),
        ]);
        let actual = serde_json::json!({"A": 1, "B": null});
        assert!(matches(
            &serde_json::json!({"a": 1}),
            &actual,
            Some(&st),
            None
        ));
        assert!(matches(
            &serde_json::json!({"A": 1, "C": 5}),
            &actual,
            Some(&st),
            None
        ));
        assert!(!matches(
            &serde_json::json!({"A": 2}),
            &actual,
            Some(&st),
            None
        ));
        assert!(!matches(
            &serde_json::json!({"B": 1, "A": 1}),
            &actual,
            Some(&st),
            None
        ));
    }

    #[test]
    fn schema_text_normalizes() {
        assert_eq!(
            normalize_schema("`ID` INTEGER KEY, `NAME` STRING"),
            normalize_schema("ID INT KEY, NAME STRING")
        );
        assert_eq!(
            normalize_schema("`K` INTEGER KEY"),
            normalize_schema("K INT PRIMARY KEY")
        );
    }
}
