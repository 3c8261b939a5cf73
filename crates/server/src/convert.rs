//! Values between the engine and the wire.

use pb::value::Kind;
use sluice_common::{DataType, Value};
use sluice_proto::v1 as pb;

pub fn to_proto(v: &Value) -> pb::Value {
    let kind = match v {
        Value::Null => Kind::Null(true),
        Value::Boolean(b) => Kind::Boolean(*b),
        Value::Int(i) => Kind::Int(*i),
        Value::BigInt(i) => Kind::Bigint(*i),
        Value::Double(d) => Kind::Double(*d),
        Value::Decimal { unscaled, scale } => {
            Kind::Decimal(sluice_common::value::format_decimal(*unscaled, *scale))
        }
        Value::String(s) => Kind::String(s.clone()),
        Value::Bytes(b) => Kind::Bytes(b.clone()),
        Value::Timestamp(t) => Kind::Timestamp(*t),
        Value::Date(d) => Kind::Date(*d),
        Value::Time(t) => Kind::Time(*t),
        Value::Array(items) => Kind::Array(pb::Array {
            items: items.iter().map(to_proto).collect(),
        }),
        Value::Map(entries) => Kind::Map(pb::Map {
            entries: entries
                .iter()
                .map(|(k, v)| pb::MapEntry {
                    key: match k {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                    value: Some(to_proto(v)),
                })
                .collect(),
        }),
        Value::Struct(fields) => Kind::Struct(pb::Struct {
            fields: fields
                .iter()
                .map(|(n, v)| pb::Field {
                    name: n.clone(),
                    value: Some(to_proto(v)),
                })
                .collect(),
        }),
    };
    pb::Value { kind: Some(kind) }
}

pub fn row_to_proto(row: &[Value]) -> pb::Row {
    pb::Row {
        values: row.iter().map(to_proto).collect(),
    }
}

/// Converts a wire value to a value of column type `t`, widening numbers as SQL does.
pub fn from_proto(v: &pb::Value, t: &DataType) -> Result<Value, String> {
    let Some(kind) = &v.kind else {
        return Ok(Value::Null);
    };
    let raw = match kind {
        Kind::Null(_) => return Ok(Value::Null),
        Kind::Boolean(b) => Value::Boolean(*b),
        Kind::Int(i) => Value::Int(*i),
        Kind::Bigint(i) => Value::BigInt(*i),
        Kind::Double(d) => Value::Double(*d),
        Kind::Decimal(s) => match Value::parse_decimal(s) {
            Some((unscaled, scale)) => Value::Decimal { unscaled, scale },
            None => return Err(format!("'{s}' is not a decimal")),
        },
        Kind::String(s) => Value::String(s.clone()),
        Kind::Bytes(b) => Value::Bytes(b.clone()),
        Kind::Timestamp(t) => Value::Timestamp(*t),
        Kind::Date(d) => Value::Date(*d),
        Kind::Time(t) => Value::Time(*t),
        Kind::Array(a) => {
            let DataType::Array(item) = t else {
                return Err(format!("expected {t}, got an array"));
            };
            return Ok(Value::Array(
                a.items
                    .iter()
                    .map(|i| from_proto(i, item))
                    .collect::<Result<_, _>>()?,
            ));
        }
        Kind::Map(m) => {
            let DataType::Map(kt, vt) = t else {
                return Err(format!("expected {t}, got a map"));
            };
            let mut entries = Vec::with_capacity(m.entries.len());
            for e in &m.entries {
                let k = sluice_expr::eval::cast(Value::String(e.key.clone()), kt);
                let v = e
                    .value
                    .as_ref()
                    .map_or(Ok(Value::Null), |v| from_proto(v, vt))?;
                entries.push((k, v));
            }
            return Ok(Value::Map(entries));
        }
        Kind::Struct(s) => {
            let DataType::Struct(fields) = t else {
                return Err(format!("expected {t}, got a struct"));
            };
            let mut out = Vec::with_capacity(fields.len());
            for (name, ft) in fields {
                let v = s
                    .fields
                    .iter()
                    .find(|f| f.name.eq_ignore_ascii_case(name))
                    .and_then(|f| f.value.as_ref());
                out.push((
                    name.clone(),
                    v.map_or(Ok(Value::Null), |v| from_proto(v, ft))?,
                ));
            }
            return Ok(Value::Struct(out));
        }
    };
    if raw.data_type().is_some_and(|rt| rt == *t) {
        return Ok(raw);
    }
    let ok = raw.data_type().is_some_and(|rt| rt.coerces_to(t))
        || matches!(
            (&raw, t),
            (Value::BigInt(_), DataType::Timestamp)
                | (Value::Int(_), DataType::Date)
                | (Value::BigInt(_), DataType::Time)
        );
    if !ok {
        return Err(format!(
            "expected {t}, got {}",
            raw.data_type().map_or("NULL".into(), |d| d.to_string())
        ));
    }
    let cast = match (&raw, t) {
        (Value::BigInt(i), DataType::Timestamp) => Value::Timestamp(*i),
        (Value::BigInt(i), DataType::Time) => Value::Time(*i),
        (Value::Int(i), DataType::Date) => Value::Date(*i),
        _ => sluice_expr::eval::cast(raw, t),
    };
    Ok(cast)
}
