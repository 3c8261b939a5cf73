//! Between topic records and rows.

use sluice_common::{SourceDef, Value};
use sluice_format::{
    FormatError, append_window, decode_key, decode_value, encode_key, encode_value, split_window,
};
use sluice_storage::{Record, StoredRecord};

/// A decoded record: `row` is keys, values, ROWTIME, ROWPARTITION, ROWOFFSET, and for a
/// windowed source WINDOWSTART, WINDOWEND.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    pub row: Vec<Value>,
    /// The record had no value: a table delete. Value columns are NULL.
    pub tombstone: bool,
}

/// ksqlDB's pattern for a STRING TIMESTAMP column without TIMESTAMP_FORMAT.
const DEFAULT_TIMESTAMP_FORMAT: &str = "yyyy-MM-dd'T'HH:mm:ss.SSS";

/// A STRING TIMESTAMP column's value as event time: read with the source's or sink's
/// TIMESTAMP_FORMAT (ksqlDB's default pattern when there is none), in UTC.
pub(crate) fn string_timestamp(text: &str, format: Option<&str>) -> Option<i64> {
    sluice_expr::temporal::parse_timestamp(
        text,
        format.unwrap_or(DEFAULT_TIMESTAMP_FORMAT),
        &sluice_expr::temporal::Zone::utc(),
    )
}

pub fn decode_record(def: &SourceDef, rec: &StoredRecord) -> Result<SourceRow, FormatError> {
    let schema = &def.schema;
    let (key, window) = match (&def.window, rec.record.key.as_deref()) {
        (Some(spec), Some(bytes)) => {
            let (key, start, end) = split_window(bytes, spec)?;
            (Some(key), Some((start, end)))
        }
        (_, key) => (key, None),
    };
    let mut row = decode_key(&def.key_format, schema.keys(), key)?;
    let values = decode_value(
        &def.value_format,
        def.payload_columns(),
        rec.record.value.as_deref(),
    )?;
    let tombstone = values.is_none();
    match values {
        Some(v) => row.extend(v),
        None => row.extend(std::iter::repeat_n(
            Value::Null,
            def.payload_columns().len(),
        )),
    }
    for (_, key) in &def.headers {
        let headers = &rec.record.headers;
        row.push(match key {
            None => Value::Array(
                headers
                    .iter()
                    .map(|(k, v)| {
                        Value::Struct(vec![
                            ("KEY".into(), Value::String(k.clone())),
                            ("VALUE".into(), v.clone().map_or(Value::Null, Value::Bytes)),
                        ])
                    })
                    .collect(),
            ),
            // The last header with that key wins, as in ksqlDB.
            Some(k) => headers
                .iter()
                .rev()
                .find(|(hk, _)| hk == k)
                .and_then(|(_, v)| v.clone())
                .map_or(Value::Null, Value::Bytes),
        });
    }
    let mut rowtime = rec.record.timestamp;
    if let Some(col) = &def.timestamp_column
        && let Some(i) = schema.index_of(col)
    {
        match &row[i] {
            Value::BigInt(t) | Value::Timestamp(t) => rowtime = *t,
            Value::String(text) => {
                rowtime =
                    string_timestamp(text, def.timestamp_format.as_deref()).ok_or_else(|| {
                        FormatError::Invalid(format!(
                            "cannot parse timestamp '{text}' of column {col} with format '{}'",
                            def.timestamp_format
                                .as_deref()
                                .unwrap_or(DEFAULT_TIMESTAMP_FORMAT)
                        ))
                    })?;
            }
            Value::Null if !tombstone => {
                return Err(FormatError::Invalid(format!(
                    "timestamp column {col} is NULL"
                )));
            }
            _ => {}
        }
    }
    // Kafka Streams drops records with a negative timestamp; so does ksqlDB.
    if rowtime < 0 {
        return Err(FormatError::Invalid(format!(
            "record timestamp {rowtime} is negative; record skipped"
        )));
    }
    row.push(Value::BigInt(rowtime));
    row.push(Value::Int(rec.partition as i32));
    row.push(Value::BigInt(rec.offset as i64));
    if def.window.is_some() {
        let (start, end) = window.map_or((Value::Null, Value::Null), |(s, e)| {
            (Value::BigInt(s), Value::BigInt(e))
        });
        row.push(start);
        row.push(end);
    }
    Ok(SourceRow { row, tombstone })
}

/// Encodes the first `schema.len()` values of `row` (keys then values) as a record of `def`;
/// for a windowed `def`, the two values after them are the window's start and end.
pub fn encode_row_record(
    def: &SourceDef,
    row: &[Value],
    timestamp: i64,
    tombstone: bool,
) -> Result<Record, FormatError> {
    let nkeys = def.schema.key_count();
    let n = def.schema.len();
    if row.len() < n {
        return Err(FormatError::Invalid(format!(
            "row has {} values, {} has {n} columns",
            row.len(),
            def.name
        )));
    }
    let mut key = encode_key(&def.key_format, def.schema.keys(), &row[..nkeys])?;
    if let (Some(spec), Some(bytes)) = (&def.window, key.as_mut()) {
        match (
            row.get(n).and_then(Value::as_i64),
            row.get(n + 1).and_then(Value::as_i64),
        ) {
            (Some(start), Some(end)) => append_window(bytes, spec, start, end),
            _ => {
                return Err(FormatError::Invalid(format!(
                    "a record of windowed {} needs its window's bounds",
                    def.name
                )));
            }
        }
    }
    let value = if tombstone {
        None
    } else {
        let payload = def.payload_columns();
        encode_value(
            &def.value_format,
            payload,
            Some(&row[nkeys..nkeys + payload.len()]),
        )?
    };
    Ok(Record {
        key,
        value,
        timestamp,
        headers: Vec::new(),
    })
}

#[cfg(test)]
mod string_timestamp_tests {
    use super::string_timestamp;

    #[test]
    fn string_timestamps_follow_the_format() {
        assert_eq!(
            string_timestamp("2018-05-11T21:58:33Z", Some("yyyy-MM-dd'T'HH:mm:ssX")),
            Some(1_526_075_913_000)
        );
        assert_eq!(
            string_timestamp("not a timestamp", Some("yyyy-MM-dd'T'HH:mm:ssX")),
            None
        );
        assert_eq!(
            string_timestamp("1970-01-01T00:00:01.000", None),
            Some(1000)
        );
    }
}
