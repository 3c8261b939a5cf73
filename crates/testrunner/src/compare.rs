//! Record comparison with ksqlDB's rules: JSON equality where numbers compare by value
//! (DOUBLE within 1e-6) except DECIMAL, which must match exactly, scale included; object
//! fields are looked up as written, then upper-cased.

use serde_json::Value as Json;
use sluice_common::{DataType, SourceDef};

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
