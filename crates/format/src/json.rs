//! The JSON format and the JSON ↔ SQL value mapping used everywhere values meet JSON.

use crate::{FormatError, Result, invalid};
use base64::Engine;
use serde_json::{Map as JsonMap, Value as Json};
use sluice_common::{Column, DataType, Value};

/// Writes the JSON text straight from the values: building a `serde_json::Value` tree
/// first (an ordered map per record) cost more than the writing itself. The output is the
/// same as serializing [`value_to_json`].
pub(crate) fn encode(columns: &[Column], values: &[Value], wrap_single: bool) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    if columns.len() == 1 && !wrap_single {
        write_value(&values[0], &mut out)?;
    } else {
        out.push(b'{');
        for (i, (c, v)) in columns.iter().zip(values).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(&c.name, &mut out)?;
            out.push(b':');
            write_value(v, &mut out)?;
        }
        out.push(b'}');
    }
    Ok(out)
}

fn write_str(s: &str, out: &mut Vec<u8>) -> Result<()> {
    serde_json::to_writer(&mut *out, s).map_err(|e| FormatError::Invalid(e.to_string()))
}

fn write_value(v: &Value, out: &mut Vec<u8>) -> Result<()> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::BigInt(i) | Value::Timestamp(i) | Value::Time(i) => {
            out.extend_from_slice(i.to_string().as_bytes())
        }
        Value::Date(d) => out.extend_from_slice(d.to_string().as_bytes()),
        // As ksqlDB's Jackson writes a double: Java's Double.toString digits (`1.0E10`), and
        // NaN and the infinities as the strings "NaN", "Infinity", "-Infinity" (Jackson's
        // default WRITE_NAN_AS_STRINGS), which its JSON reader takes back as doubles.
        Value::Double(d) if d.is_finite() => {
            out.extend_from_slice(sluice_common::value::format_double(*d).as_bytes())
        }
        Value::Double(d) => {
            out.push(b'"');
            out.extend_from_slice(sluice_common::value::format_double(*d).as_bytes());
            out.push(b'"');
        }
        Value::String(s) => write_str(s, out)?,
        Value::Decimal { .. } | Value::Bytes(_) => {
            serde_json::to_writer(&mut *out, &value_to_json(v))
                .map_err(|e| FormatError::Invalid(e.to_string()))?
        }
        // Written here rather than through a JSON tree, whose numbers would lose Java's
        // notation (`1.0E300` would come out as `1.0e+300`).
        Value::Map(entries) => {
            out.push(b'{');
            for (i, (k, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match k {
                    Value::String(s) => write_str(s, out)?,
                    other => write_str(&other.to_string(), out)?,
                }
                out.push(b':');
                write_value(item, out)?;
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Struct(fields) => {
            out.push(b'{');
            for (i, (k, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out)?;
                out.push(b':');
                write_value(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

pub(crate) fn decode(columns: &[Column], bytes: &[u8], wrap_single: bool) -> Result<Vec<Value>> {
    if (columns.len() > 1 || wrap_single)
        && let Some(row) = object_row::decode(columns, bytes)
    {
        return row;
    }
    decode_tree(columns, bytes, wrap_single)
}

/// The general path: the text parsed into a `serde_json::Value`, then converted.
fn decode_tree(columns: &[Column], bytes: &[u8], wrap_single: bool) -> Result<Vec<Value>> {
    let json: Json = serde_json::from_slice(bytes)
        .map_err(|e| FormatError::Invalid(format!("invalid JSON: {e}")))?;
    if columns.len() == 1 && !wrap_single {
        return Ok(vec![json_to_value(&json, &columns[0].data_type)?]);
    }
    let obj = match &json {
        Json::Object(obj) => obj,
        // A single-column value may arrive unwrapped even when the source wraps it.
        other if columns.len() == 1 && !other.is_null() => {
            return Ok(vec![json_to_value(other, &columns[0].data_type)?]);
        }
        Json::Null => return Ok(vec![Value::Null; columns.len()]),
        other => return invalid(format!("expected a JSON object, got: {other}")),
    };
    columns
        .iter()
        .map(|c| match field(obj, &c.name) {
            None => Ok(Value::Null),
            Some(v) => json_to_value(v, &c.data_type)
                .map_err(|e| FormatError::Invalid(format!("field {}: {e}", c.name))),
        })
        .collect()
}

fn field<'a>(obj: &'a JsonMap<String, Json>, name: &str) -> Option<&'a Json> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// Converts a SQL value to JSON as ksqlDB writes it: temporal types as numbers, bytes as
/// base64, maps and structs as objects.
pub fn value_to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::BigInt(i) | Value::Timestamp(i) | Value::Time(i) => Json::from(*i),
        Value::Date(d) => Json::from(*d),
        Value::Double(d) => {
            let text = sluice_common::value::format_double(*d);
            match d.is_finite() {
                true => serde_json::from_str::<serde_json::Number>(&text)
                    .map(Json::Number)
                    .unwrap_or(Json::String(text)),
                false => Json::String(text),
            }
        }
        Value::Decimal { unscaled, scale } => {
            let text = sluice_common::value::format_decimal(*unscaled, *scale);
            serde_json::from_str::<serde_json::Number>(&text)
                .map(Json::Number)
                .unwrap_or(Json::String(text))
        }
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Array(items) => Json::Array(items.iter().map(value_to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (key, value_to_json(v))
                })
                .collect(),
        ),
        Value::Struct(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), value_to_json(v)))
                .collect(),
        ),
    }
}

fn mismatch<T>(json: &Json, t: &DataType) -> Result<T> {
    let shown = json.to_string();
    // Cut by characters, not bytes: a record's text is anything (`é` is two bytes).
    let shown = if shown.chars().count() > 60 {
        format!("{}...", shown.chars().take(57).collect::<String>())
    } else {
        shown
    };
    invalid(format!(
        "Can't convert type. sourceType: {}, requiredType: {t}, value: {shown}",
        json_kind(json)
    ))
}

fn json_kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "NullNode",
        Json::Bool(_) => "BooleanNode",
        Json::Number(n) if n.is_f64() => "DoubleNode",
        Json::Number(_) => "IntNode",
        Json::String(_) => "TextNode",
        Json::Array(_) => "ArrayNode",
        Json::Object(_) => "ObjectNode",
    }
}

/// Converts JSON to a value of SQL type `t`, with ksqlDB's leniency: numbers widen, numeric
/// strings parse, anything converts to STRING as its JSON text.
pub fn json_to_value(json: &Json, t: &DataType) -> Result<Value> {
    if json.is_null() {
        return Ok(Value::Null);
    }
    Ok(match t {
        DataType::Boolean => match json {
            Json::Bool(b) => Value::Boolean(*b),
            Json::String(s) if s.eq_ignore_ascii_case("true") => Value::Boolean(true),
            Json::String(s) if s.eq_ignore_ascii_case("false") => Value::Boolean(false),
            _ => return mismatch(json, t),
        },
        DataType::Int => match json {
            // Like Jackson, an integral column accepts a number with a fraction by truncation.
            Json::Number(n) => match n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.is_finite())
                        .map(|f| f.trunc() as i64)
                })
                .and_then(|i| i32::try_from(i).ok())
            {
                Some(i) => Value::Int(i),
                None => return mismatch(json, t),
            },
            Json::String(s) => return parse_text(s, t).or_else(|_| mismatch(json, t)),
            _ => return mismatch(json, t),
        },
        DataType::BigInt | DataType::Timestamp | DataType::Time => match json {
            Json::Number(n) => match n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 9.2e18)
                    .map(|f| f.trunc() as i64)
            }) {
                Some(i) => match t {
                    DataType::BigInt => Value::BigInt(i),
                    DataType::Timestamp => Value::Timestamp(i),
                    _ => Value::Time(i),
                },
                None => return mismatch(json, t),
            },
            Json::String(s) => return parse_text(s, t).or_else(|_| mismatch(json, t)),
            _ => return mismatch(json, t),
        },
        DataType::Date => match json {
            Json::Number(n) => match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
                Some(i) => Value::Date(i),
                None => return mismatch(json, t),
            },
            _ => return mismatch(json, t),
        },
        DataType::Double => match json {
            Json::Number(n) => match n.as_f64() {
                Some(d) => Value::Double(d),
                None => return mismatch(json, t),
            },
            Json::String(s) => return parse_text(s, t).or_else(|_| mismatch(json, t)),
            _ => return mismatch(json, t),
        },
        DataType::Decimal { .. } => match json {
            Json::Number(n) => return parse_text(&n.to_string(), t),
            Json::String(s) => return parse_text(s, t).or_else(|_| mismatch(json, t)),
            _ => return mismatch(json, t),
        },
        DataType::String => match json {
            Json::String(s) => Value::String(s.clone()),
            other => Value::String(other.to_string()),
        },
        DataType::Bytes => match json {
            Json::String(s) => match base64::engine::general_purpose::STANDARD.decode(s) {
                Ok(b) => Value::Bytes(b),
                Err(_) => {
                    return invalid(format!("Value is not a valid Base64 encoded string: {s}"));
                }
            },
            _ => return mismatch(json, t),
        },
        DataType::Array(item) => match json {
            Json::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| json_to_value(i, item))
                    .collect::<Result<_>>()?,
            ),
            _ => return mismatch(json, t),
        },
        DataType::Map(k, v) => match json {
            Json::Object(obj) => Value::Map(
                obj.iter()
                    .map(|(key, val)| Ok((parse_text(key, k)?, json_to_value(val, v)?)))
                    .collect::<Result<_>>()?,
            ),
            _ => return mismatch(json, t),
        },
        DataType::Struct(fields) => match json {
            Json::Object(obj) => Value::Struct(
                fields
                    .iter()
                    .map(|(name, ft)| {
                        let v = match field(obj, name) {
                            None => Value::Null,
                            Some(j) => json_to_value(j, ft)?,
                        };
                        Ok((name.clone(), v))
                    })
                    .collect::<Result<_>>()?,
            ),
            _ => return mismatch(json, t),
        },
    })
}

/// Parses a value of type `t` from text (DELIMITED fields, JSON strings, map keys).
pub(crate) fn parse_text(text: &str, t: &DataType) -> Result<Value> {
    let bad = || FormatError::Invalid(format!("cannot parse '{text}' as {t}"));
    Ok(match t {
        DataType::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" => Value::Boolean(true),
            "false" => Value::Boolean(false),
            _ => return Err(bad()),
        },
        DataType::Int => Value::Int(text.trim().parse().map_err(|_| bad())?),
        DataType::BigInt => Value::BigInt(text.trim().parse().map_err(|_| bad())?),
        DataType::Timestamp => Value::Timestamp(text.trim().parse().map_err(|_| bad())?),
        DataType::Time => Value::Time(text.trim().parse().map_err(|_| bad())?),
        DataType::Date => Value::Date(text.trim().parse().map_err(|_| bad())?),
        DataType::Double => Value::Double(text.trim().parse().map_err(|_| bad())?),
        DataType::Decimal { precision, scale } => {
            let (unscaled, s) = match Value::parse_decimal(text) {
                Some(d) => d,
                None => {
                    // Exponent notation from JSON numbers, e.g. 1.5E+2.
                    let f: f64 = text.trim().parse().map_err(|_| bad())?;
                    Value::parse_decimal(&format!("{f:.*}", *scale as usize)).ok_or_else(|| {
                        FormatError::Invalid(format!("cannot parse '{text}' as {t}"))
                    })?
                }
            };
            let unscaled = Value::decimal_rescale(unscaled, s, *scale)
                .ok_or_else(|| FormatError::Invalid(format!("decimal '{text}' overflows {t}")))?;
            if unscaled.unsigned_abs() >= 10u128.pow(*precision as u32) {
                return invalid(format!("decimal '{text}' does not fit in {t}"));
            }
            Value::Decimal {
                unscaled,
                scale: *scale,
            }
        }
        DataType::String => Value::String(text.to_string()),
        DataType::Bytes => match base64::engine::general_purpose::STANDARD.decode(text) {
            Ok(b) => Value::Bytes(b),
            Err(_) => return Err(bad()),
        },
        DataType::Array(_) | DataType::Map(..) | DataType::Struct(_) => {
            let json: Json = serde_json::from_str(text).map_err(|_| bad())?;
            return json_to_value(&json, t);
        }
    })
}

#[cfg(test)]
mod tests {
    /// The reproduction of a poison record: a long text of multibyte characters where an
    /// INT is expected. The error cuts the shown value by characters (it once sliced bytes
    /// and panicked, stopping the query reading it).
    #[test]
    fn type_errors_on_multibyte_text_cut_by_characters() {
        let text = format!("a{}", "é".repeat(80));
        let err = json_to_value(&Json::String(text), &DataType::Int).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("requiredType: INTEGER"), "{message}");
        assert!(message.ends_with("..."), "{message}");
        let row = format!("{{\"V\": \"a{}\"}}", "é".repeat(80));
        let columns = vec![Column {
            name: "V".into(),
            data_type: DataType::Int,
            role: sluice_common::ColumnRole::Value,
        }];
        assert!(decode_tree(&columns, row.as_bytes(), false).is_err());
    }

    #[test]
    fn object_rows_decode_as_the_general_path_does() {
        use sluice_common::ColumnRole;
        let col = |name: &str, data_type: DataType| Column {
            name: name.into(),
            data_type,
            role: ColumnRole::Value,
        };
        let columns = vec![
            col("ID", DataType::BigInt),
            col("Name", DataType::String),
            col("AMOUNT", DataType::Double),
            col("N", DataType::Int),
            col(
                "PRICE",
                DataType::Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
            col("OK", DataType::Boolean),
            col("TAGS", DataType::Array(Box::new(DataType::String))),
        ];
        let inputs = [
            r#"{"ID":1,"Name":"a","AMOUNT":1.5,"N":3,"PRICE":12.34,"OK":true,"TAGS":["x"]}"#,
            r#"{"id":1,"name":"case","amount":2,"n":"4","price":"1.1","ok":"false"}"#,
            r#"{"ID":1,"id":2,"ID":3,"name":"first","NAME":"second","name":"third"}"#,
            r#"{"Name":12.50,"TAGS":null,"extra":{"deep":[1,2,{"x":null}]}}"#,
            r#"{"Name":{"b":1,"a":[true]},"N":1.9,"ID":-9007199254740993}"#,
            r#"{"Name":"esc\"aped\u00e9","ID":18446744073709551615}"#,
            r#"{"N":"not a number","ID":"also not"}"#,
            r#"{"N":1,"N":"bad"}"#,
            r#"{"N":"bad","N":2}"#,
            r#"{"OK":1,"TAGS":"no"}"#,
            r#"{"N":2147483648,"ID":1e3,"AMOUNT":-0.0,"PRICE":1e-2,"Name":-1.50e+2}"#,
            r#"{"N":-2147483648,"ID":-9223372036854775808,"AMOUNT":1e400,"PRICE":123456789012}"#,
            r#"{"N":1e2,"ID":9.3e18,"AMOUNT":5,"OK":0,"TAGS":[1,2.5]}"#,
            r#"{"Name":{},"TAGS":{"a":1}}"#,
            r#"{}"#,
        ];
        for input in inputs {
            let fast = object_row::decode(&columns, input.as_bytes()).expect(input);
            let tree = decode_tree(&columns, input.as_bytes(), false);
            match (&fast, &tree) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{input}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{input}"),
                _ => panic!("{input}: fast {fast:?}, general {tree:?}"),
            }
        }
        // Not an object, or not JSON: left to the general path.
        for input in ["null", "[1]", "5", "{\"ID\":", "{\"ID\":1} x"] {
            assert!(
                object_row::decode(&columns, input.as_bytes()).is_none(),
                "{input}"
            );
        }
    }

    use super::*;
    use sluice_common::ColumnRole;

    fn col(name: &str) -> Column {
        Column {
            name: name.into(),
            data_type: DataType::String,
            role: ColumnRole::Value,
        }
    }

    /// The direct writer must produce exactly what serializing the JSON tree produces.
    #[test]
    fn direct_encoding_matches_the_json_tree() {
        let values = vec![
            Value::Null,
            Value::Boolean(true),
            Value::Int(-7),
            Value::BigInt(i64::MIN),
            Value::Double(0.1),
            Value::Double(1e300),
            Value::Double(-0.0),
            Value::Double(f64::NAN),
            Value::Double(3.0),
            Value::Decimal {
                unscaled: -1250,
                scale: 2,
            },
            Value::String("quote \" back \\ ctl \u{1} tab \t é 𝄞 </".into()),
            Value::Bytes(vec![0, 255, 7]),
            Value::Timestamp(1_700_000_000_000),
            Value::Date(19000),
            Value::Time(3_600_000),
            Value::Array(vec![Value::Int(1), Value::Null, Value::String("x".into())]),
            Value::Map(vec![
                (Value::String("k".into()), Value::Double(2.5)),
                (Value::Int(3), Value::Boolean(false)),
            ]),
            Value::Struct(vec![
                ("A".into(), Value::Array(vec![])),
                ("b c".into(), Value::Struct(vec![])),
            ]),
        ];
        let columns: Vec<Column> = (0..values.len()).map(|i| col(&format!("C{i}"))).collect();
        let mut tree = JsonMap::new();
        for (c, v) in columns.iter().zip(&values) {
            tree.insert(c.name.clone(), value_to_json(v));
        }
        // Compared as parsed JSON: the tree writes exponents as serde_json does (`1.0e+300`),
        // the direct writer as Java does (`1.0E300`).
        let expected = Json::Object(tree);
        let got = encode(&columns, &values, true).unwrap();
        let text = String::from_utf8(got.clone()).unwrap();
        assert!(text.contains("1.0E300"), "{text}");
        assert_eq!(
            serde_json::from_slice::<Json>(&got).unwrap(),
            expected,
            "{text}"
        );
        for v in &values {
            let got = encode(&columns[..1], std::slice::from_ref(v), false).unwrap();
            assert_eq!(
                serde_json::from_slice::<Json>(&got).unwrap(),
                value_to_json(v),
                "{v:?}"
            );
        }
    }
}

/// Decoding a JSON object straight into a row: one pass over the text, no tree. The
/// general path parsed into a `serde_json::Value` first (an ordered map with an owned
/// string per key and per number), which cost nine times the encoding.
///
/// It keeps the general path's rules: a column takes the field of the same name, else
/// the first field whose name matches ignoring ASCII case; of repeated fields the last
/// wins; each value converts through [`json_to_value`] (strings into STRING columns
/// directly). Anything else (text that is not a JSON object, a syntax error) returns
/// `None`, and the general path decodes it and words the error.
mod object_row {
    use super::{Json, json_to_value};
    use crate::{FormatError, Result};
    use serde::Deserialize;
    use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
    use sluice_common::{Column, DataType, Value};
    use std::fmt;

    pub(super) fn decode(columns: &[Column], bytes: &[u8]) -> Option<Result<Vec<Value>>> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let row = de.deserialize_any(RowVisitor { columns }).ok()?;
        de.end().ok()?;
        Some(row)
    }

    /// How a column got its value so far.
    #[derive(Clone, PartialEq)]
    enum Matched {
        No,
        /// By a field whose name differs in case: later fields of another name lose.
        IgnoringCase(String),
        Exactly,
    }

    struct RowVisitor<'a> {
        columns: &'a [Column],
    }

    impl<'de> Visitor<'de> for RowVisitor<'_> {
        type Value = Result<Vec<Value>>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let n = self.columns.len();
            let mut row = vec![Value::Null; n];
            let mut matched = vec![Matched::No; n];
            // Per column, the error of its current value: a later repeat of the field can
            // replace a bad value, and the general path reports the first column that fails.
            let mut failed: Vec<Option<FormatError>> = Vec::new();
            while let Some(field) = map.next_key_seed(FieldSeed {
                columns: self.columns,
            })? {
                let take = match &field {
                    Field::Exact(i) => {
                        matched[*i] = Matched::Exactly;
                        Some(*i)
                    }
                    Field::IgnoringCase(i, name) => match &matched[*i] {
                        Matched::No => {
                            matched[*i] = Matched::IgnoringCase(name.clone());
                            Some(*i)
                        }
                        Matched::IgnoringCase(first) if first == name => Some(*i),
                        _ => None,
                    },
                    Field::Other => None,
                };
                match take {
                    Some(i) => {
                        let column = &self.columns[i];
                        let value = map.next_value_seed(ValueSeed {
                            ty: &column.data_type,
                        })?;
                        if let Some(slot) = failed.get_mut(i) {
                            *slot = None;
                        }
                        match value {
                            Ok(v) => row[i] = v,
                            Err(e) => {
                                failed.resize_with(n, || None);
                                failed[i] = Some(FormatError::Invalid(format!(
                                    "field {}: {e}",
                                    column.name
                                )));
                            }
                        }
                    }
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(match failed.into_iter().flatten().next() {
                Some(e) => Err(e),
                None => Ok(row),
            })
        }
    }

    enum Field {
        Exact(usize),
        IgnoringCase(usize, String),
        Other,
    }

    struct FieldSeed<'a> {
        columns: &'a [Column],
    }

    impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
        type Value = Field;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Field, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de> Visitor<'de> for FieldSeed<'_> {
        type Value = Field;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a field name")
        }

        fn visit_str<E: de::Error>(self, name: &str) -> std::result::Result<Field, E> {
            if let Some(i) = self.columns.iter().position(|c| c.name == name) {
                return Ok(Field::Exact(i));
            }
            Ok(
                match self
                    .columns
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(name))
                {
                    Some(i) => Field::IgnoringCase(i, name.to_string()),
                    None => Field::Other,
                },
            )
        }
    }

    /// One field's value for a column of type `ty`; conversion errors are returned as
    /// values, so only JSON syntax errors stop the parse.
    struct ValueSeed<'a> {
        ty: &'a DataType,
    }

    impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
        type Value = Result<Value>;

        fn deserialize<D: Deserializer<'de>>(
            self,
            d: D,
        ) -> std::result::Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    /// serde_json's key for a number passed as a map (its `arbitrary_precision` form).
    const NUMBER_TOKEN: &str = "$serde_json::private::Number";

    enum Key {
        Number,
        Field(String),
    }

    struct KeySeed;

    impl<'de> DeserializeSeed<'de> for KeySeed {
        type Value = Key;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Key, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de> Visitor<'de> for KeySeed {
        type Value = Key;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a key")
        }

        fn visit_str<E: de::Error>(self, k: &str) -> std::result::Result<Key, E> {
            Ok(match k == NUMBER_TOKEN {
                true => Key::Number,
                false => Key::Field(k.to_string()),
            })
        }
    }

    /// A JSON number, as its text, converted to `ty` exactly as `json_to_value` converts
    /// the `Json::Number` holding that text.
    fn number(text: String, ty: &DataType) -> Result<Value> {
        let direct = match ty {
            DataType::Int => text.parse::<i32>().ok().map(Value::Int),
            DataType::BigInt => text.parse::<i64>().ok().map(Value::BigInt),
            DataType::Timestamp => text.parse::<i64>().ok().map(Value::Timestamp),
            DataType::Time => text.parse::<i64>().ok().map(Value::Time),
            DataType::Double => text
                .parse::<f64>()
                .ok()
                .filter(|d| d.is_finite())
                .map(Value::Double),
            DataType::String => return Ok(Value::String(text)),
            _ => None,
        };
        if let Some(v) = direct {
            return Ok(v);
        }
        // Fractions and exponents for integral types, out-of-range values and every other
        // type take the general conversion (which also words the errors).
        match text.parse::<serde_json::Number>() {
            Ok(n) => json_to_value(&Json::Number(n), ty),
            Err(e) => Err(FormatError::Invalid(format!(
                "invalid JSON number {text}: {e}"
            ))),
        }
    }

    impl<'de> Visitor<'de> for ValueSeed<'_> {
        type Value = Result<Value>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON value")
        }

        fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
            Ok(Ok(Value::Null))
        }

        fn visit_bool<E: de::Error>(self, b: bool) -> std::result::Result<Self::Value, E> {
            Ok(json_to_value(&Json::Bool(b), self.ty))
        }

        fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Self::Value, E> {
            Ok(match self.ty {
                DataType::String => Ok(Value::String(s.to_string())),
                ty => json_to_value(&Json::String(s.to_string()), ty),
            })
        }

        // Numbers arrive here too: with arbitrary precision, serde_json hands a number to
        // `deserialize_any` as a one-entry map whose key is a private token and whose
        // value is the number's text. The common column types are converted from that
        // text directly; going through a `Json` tree cost an allocation and a map per
        // number, most of a numeric field's decoding time.
        fn visit_map<A: MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut obj = serde_json::Map::new();
            match map.next_key_seed(KeySeed)? {
                None => return Ok(json_to_value(&Json::Object(obj), self.ty)),
                Some(Key::Number) => {
                    let text: String = map.next_value()?;
                    return Ok(number(text, self.ty));
                }
                Some(Key::Field(k)) => {
                    let v: Json = map.next_value()?;
                    obj.insert(k, v);
                }
            }
            while let Some((k, v)) = map.next_entry::<String, Json>()? {
                obj.insert(k, v);
            }
            Ok(json_to_value(&Json::Object(obj), self.ty))
        }

        fn visit_seq<A: de::SeqAccess<'de>>(
            self,
            seq: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let json = Json::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
            Ok(json_to_value(&json, self.ty))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Self::Value, E> {
            Ok(json_to_value(&Json::from(v), self.ty))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
            Ok(json_to_value(&Json::from(v), self.ty))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Self::Value, E> {
            Ok(json_to_value(&Json::from(v), self.ty))
        }
    }
}
