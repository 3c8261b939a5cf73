//! The KAFKA format: one primitive column in the byte layout of Kafka's own serializers
//! (big-endian integers and IEEE doubles, UTF-8 strings, raw bytes).

use crate::{Result, invalid};
use sluice_common::{DataType, Value};

pub(crate) fn check_type(t: &DataType) -> Result<()> {
    match t {
        DataType::Int
        | DataType::BigInt
        | DataType::Double
        | DataType::String
        | DataType::Bytes => Ok(()),
        other => invalid(format!(
            "The 'KAFKA' format does not support type '{other}'"
        )),
    }
}

pub(crate) fn encode(v: &Value) -> Result<Vec<u8>> {
    Ok(match v {
        Value::Int(i) => i.to_be_bytes().to_vec(),
        Value::BigInt(i) => i.to_be_bytes().to_vec(),
        Value::Double(d) => d.to_be_bytes().to_vec(),
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Bytes(b) => b.clone(),
        other => return invalid(format!("The 'KAFKA' format cannot serialize {other:?}")),
    })
}

pub(crate) fn decode(t: &DataType, bytes: &[u8]) -> Result<Value> {
    let fixed = |n: usize| -> Result<()> {
        if bytes.len() == n {
            Ok(())
        } else {
            invalid(format!(
                "Size of data received by {t} deserializer is not {n} (got {} bytes)",
                bytes.len()
            ))
        }
    };
    Ok(match t {
        DataType::Int => {
            fixed(4)?;
            Value::Int(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
        }
        DataType::BigInt => {
            fixed(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(bytes);
            Value::BigInt(i64::from_be_bytes(a))
        }
        DataType::Double => {
            fixed(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(bytes);
            Value::Double(f64::from_be_bytes(a))
        }
        DataType::String => match std::str::from_utf8(bytes) {
            Ok(s) => Value::String(s.to_string()),
            Err(_) => return invalid("invalid UTF-8 in STRING"),
        },
        DataType::Bytes => Value::Bytes(bytes.to_vec()),
        other => {
            return invalid(format!(
                "The 'KAFKA' format does not support type '{other}'"
            ));
        }
    })
}
