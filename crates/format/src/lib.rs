//! Record formats: how a row's key and value columns become the bytes of a topic record and
//! back. JSON, KAFKA (one primitive column, Kafka's serializers' byte layout) and DELIMITED
//! (CSV-like), with ksqlDB's conventions: keys are never wrapped, a single JSON value column
//! is wrapped in an object unless WRAP_SINGLE_VALUE=false, field names match column names
//! (case-insensitively when no exact match exists).

mod delimited;
mod json;
mod kafka;
mod window;

use sluice_common::{Column, DataType, FormatKind, FormatSpec, Value};

pub use json::{json_to_value, value_to_json};
pub use window::{append_window, split_window};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FormatError {
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, FormatError>;

pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(FormatError::Invalid(msg.into()))
}

/// Checks that a format can carry these columns, before a source is created with it.
pub fn validate(format: &FormatSpec, columns: &[Column], is_key: bool) -> Result<()> {
    let listing = || {
        columns
            .iter()
            .map(|c| {
                format!(
                    "`{}` {}{}",
                    c.name,
                    c.data_type,
                    if is_key { " KEY" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    // ksqlDB's wording, so users (and its test corpus) recognise the error.
    let unsupported = |reason: String| {
        invalid(format!(
            "{} format does not support schema.\nformat: {}\nschema: Persistence{{columns=[{}], features=[]}}\nreason: {reason}",
            if is_key { "Key" } else { "Value" },
            format.kind,
            listing()
        ))
    };
    match format.kind {
        FormatKind::None if !columns.is_empty() => invalid(format!(
            "The 'NONE' format can only be used when no columns are defined. Got: [{}]",
            listing()
        )),
        FormatKind::Kafka if columns.len() > 1 => unsupported(format!(
            "The 'KAFKA' format only supports a single field. Got: [{}]",
            listing()
        )),
        FormatKind::Kafka | FormatKind::Delimited => {
            for c in columns {
                let ok = match format.kind {
                    FormatKind::Kafka => kafka::check_type(&c.data_type).is_ok(),
                    _ => !matches!(
                        c.data_type,
                        DataType::Array(_) | DataType::Map(..) | DataType::Struct(_)
                    ),
                };
                if !ok {
                    // ksqlDB's DELIMITED serde names the column; its KAFKA serde does not.
                    let column = match format.kind {
                        FormatKind::Delimited => format!(", column: `{}`", c.name),
                        _ => String::new(),
                    };
                    return unsupported(format!(
                        "The '{}' format does not support type '{}'{column}",
                        format.kind,
                        base_type_name(&c.data_type),
                    ));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A type's name without parameters, as ksqlDB names types in format errors.
fn base_type_name(t: &DataType) -> &'static str {
    match t {
        DataType::Boolean => "BOOLEAN",
        DataType::Int => "INTEGER",
        DataType::BigInt => "BIGINT",
        DataType::Double => "DOUBLE",
        DataType::Decimal { .. } => "DECIMAL",
        DataType::String => "STRING",
        DataType::Bytes => "BYTES",
        DataType::Timestamp => "TIMESTAMP",
        DataType::Date => "DATE",
        DataType::Time => "TIME",
        DataType::Array(_) => "ARRAY",
        DataType::Map(..) => "MAP",
        DataType::Struct(_) => "STRUCT",
    }
}

/// Serializes key columns. `None` means the record has no key.
pub fn encode_key(
    format: &FormatSpec,
    columns: &[Column],
    values: &[Value],
) -> Result<Option<Vec<u8>>> {
    // A single NULL key is no key; a multi-column key is an object even when all NULL.
    if columns.is_empty() || (columns.len() == 1 && values.first().is_none_or(Value::is_null)) {
        return Ok(None);
    }
    encode(format, columns, values, false)
}

/// Serializes value columns. `values == None` writes a tombstone.
pub fn encode_value(
    format: &FormatSpec,
    columns: &[Column],
    values: Option<&[Value]>,
) -> Result<Option<Vec<u8>>> {
    match values {
        None => Ok(None),
        Some(values) => encode(
            format,
            columns,
            values,
            format.wrap_single_value.unwrap_or(true),
        ),
    }
}

fn encode(
    format: &FormatSpec,
    columns: &[Column],
    values: &[Value],
    wrap_single: bool,
) -> Result<Option<Vec<u8>>> {
    match format.kind {
        FormatKind::None => Ok(None),
        FormatKind::Json => json::encode(columns, values, wrap_single).map(Some),
        FormatKind::Kafka => match values.first() {
            None | Some(Value::Null) => Ok(None),
            Some(v) => kafka::encode(v).map(Some),
        },
        FormatKind::Delimited => {
            delimited::encode(values, format.delimiter.unwrap_or(',')).map(Some)
        }
    }
}

/// Deserializes key columns; a missing key gives NULLs.
pub fn decode_key(
    format: &FormatSpec,
    columns: &[Column],
    bytes: Option<&[u8]>,
) -> Result<Vec<Value>> {
    match bytes {
        None => Ok(vec![Value::Null; columns.len()]),
        Some(_) if columns.is_empty() => Ok(Vec::new()),
        Some(b) => decode(format, columns, b, false).map_err(|e| prefix("key", e)),
    }
}

/// Deserializes value columns; `None` for a tombstone.
pub fn decode_value(
    format: &FormatSpec,
    columns: &[Column],
    bytes: Option<&[u8]>,
) -> Result<Option<Vec<Value>>> {
    match bytes {
        None => Ok(None),
        Some(b) => decode(format, columns, b, format.wrap_single_value.unwrap_or(true))
            .map(Some)
            .map_err(|e| prefix("value", e)),
    }
}

fn prefix(what: &str, e: FormatError) -> FormatError {
    let FormatError::Invalid(m) = e;
    FormatError::Invalid(format!("Failed to deserialise {what}: {m}"))
}

fn decode(
    format: &FormatSpec,
    columns: &[Column],
    bytes: &[u8],
    wrap_single: bool,
) -> Result<Vec<Value>> {
    match format.kind {
        FormatKind::None => Ok(vec![Value::Null; columns.len()]),
        FormatKind::Json => json::decode(columns, bytes, wrap_single),
        FormatKind::Kafka => match columns.first() {
            None => Ok(Vec::new()),
            Some(c) => Ok(vec![kafka::decode(&c.data_type, bytes)?]),
        },
        FormatKind::Delimited => delimited::decode(columns, bytes, format.delimiter.unwrap_or(',')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_common::{ColumnRole, DataType};

    fn col(name: &str, t: DataType) -> Column {
        Column {
            name: name.into(),
            data_type: t,
            role: ColumnRole::Value,
        }
    }

    #[test]
    fn json_value_round_trip_and_case_insensitive_fields() {
        let cols = vec![col("PAGE", DataType::String), col("MS", DataType::BigInt)];
        let f = FormatSpec::new(FormatKind::Json);
        let bytes = encode_value(
            &f,
            &cols,
            Some(&[Value::String("/a".into()), Value::BigInt(120)]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"PAGE":"/a","MS":120}"#
        );
        let row = decode_value(&f, &cols, Some(br#"{"page":"/b","ms":5}"#))
            .unwrap()
            .unwrap();
        assert_eq!(row, vec![Value::String("/b".into()), Value::BigInt(5)]);
        let missing = decode_value(&f, &cols, Some(br#"{"PAGE":"/c"}"#))
            .unwrap()
            .unwrap();
        assert_eq!(missing[1], Value::Null);
        assert!(decode_value(&f, &cols, Some(b"{not json")).is_err());
        assert!(decode_value(&f, &cols, Some(br#"{"MS":"abc"}"#)).is_err());
    }

    #[test]
    fn single_values_wrap_unless_told_not_to() {
        let cols = vec![col("V", DataType::Int)];
        let mut f = FormatSpec::new(FormatKind::Json);
        let b = encode_value(&f, &cols, Some(&[Value::Int(3)]))
            .unwrap()
            .unwrap();
        assert_eq!(b, br#"{"V":3}"#);
        f.wrap_single_value = Some(false);
        let b = encode_value(&f, &cols, Some(&[Value::Int(3)]))
            .unwrap()
            .unwrap();
        assert_eq!(b, b"3");
        assert_eq!(
            decode_value(&f, &cols, Some(b"4")).unwrap().unwrap(),
            vec![Value::Int(4)]
        );
    }

    #[test]
    fn kafka_keys_use_kafka_serializer_layout() {
        let cols = vec![col("K", DataType::BigInt)];
        let f = FormatSpec::new(FormatKind::Kafka);
        let b = encode_key(&f, &cols, &[Value::BigInt(1)]).unwrap().unwrap();
        assert_eq!(b, vec![0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            decode_key(&f, &cols, Some(&b)).unwrap(),
            vec![Value::BigInt(1)]
        );
        assert!(decode_key(&f, &cols, Some(&[1, 2])).is_err());
        let s = vec![col("K", DataType::String)];
        assert_eq!(
            encode_key(&f, &s, &[Value::String("u1".into())])
                .unwrap()
                .unwrap(),
            b"u1"
        );
    }

    #[test]
    fn delimited_round_trip_with_quotes_and_nulls() {
        let cols = vec![
            col("A", DataType::String),
            col("B", DataType::Int),
            col("C", DataType::Double),
        ];
        let f = FormatSpec::new(FormatKind::Delimited);
        let row = vec![
            Value::String("x,\"y".into()),
            Value::Null,
            Value::Double(1.5),
        ];
        let b = encode_value(&f, &cols, Some(&row)).unwrap().unwrap();
        assert_eq!(std::str::from_utf8(&b).unwrap(), "\"x,\"\"y\",,1.5");
        assert_eq!(decode_value(&f, &cols, Some(&b)).unwrap().unwrap(), row);
        assert!(decode_value(&f, &cols, Some(b"a,b")).is_err());
    }

    #[test]
    fn kafka_format_rejects_two_columns() {
        let cols = vec![col("A", DataType::Int), col("B", DataType::Int)];
        assert!(validate(&FormatSpec::new(FormatKind::Kafka), &cols, false).is_err());
    }
}
