//! Compact binary encoding of rows for operator state and table stores.
//!
//! Layout: a version byte, then per value a tag byte and a fixed- or length-prefixed
//! payload. Self-describing, so a stored row decodes without its schema.

use crate::CodecError;
use crate::value::Value;

const VERSION: u8 = 1;

pub fn encode_row(row: &[Value], out: &mut Vec<u8>) {
    out.push(VERSION);
    put_len(row.len(), out);
    for v in row {
        encode_value(v, out);
    }
}

pub fn encode_row_vec(row: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * row.len() + 2);
    encode_row(row, &mut out);
    out
}

pub fn decode_row(bytes: &[u8]) -> Result<Vec<Value>, CodecError> {
    let mut r = Reader { bytes, pos: 0 };
    let version = r.u8()?;
    if version != VERSION {
        return Err(CodecError::Corrupt(format!(
            "unknown row encoding version {version}"
        )));
    }
    let n = r.len()?;
    let mut row = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        row.push(r.value()?);
    }
    Ok(row)
}

fn put_len(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_bytes(b: &[u8], out: &mut Vec<u8>) {
    put_len(b.len(), out);
    out.extend_from_slice(b);
}

pub fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(0),
        Value::Boolean(b) => out.extend_from_slice(&[1, *b as u8]),
        Value::Int(i) => {
            out.push(2);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::BigInt(i) => {
            out.push(3);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Double(d) => {
            out.push(4);
            out.extend_from_slice(&d.to_le_bytes());
        }
        Value::Decimal { unscaled, scale } => {
            out.push(5);
            out.extend_from_slice(&unscaled.to_le_bytes());
            out.push(*scale);
        }
        Value::String(s) => {
            out.push(6);
            put_bytes(s.as_bytes(), out);
        }
        Value::Bytes(b) => {
            out.push(7);
            put_bytes(b, out);
        }
        Value::Timestamp(t) => {
            out.push(8);
            out.extend_from_slice(&t.to_le_bytes());
        }
        Value::Date(d) => {
            out.push(9);
            out.extend_from_slice(&d.to_le_bytes());
        }
        Value::Time(t) => {
            out.push(10);
            out.extend_from_slice(&t.to_le_bytes());
        }
        Value::Array(items) => {
            out.push(11);
            put_len(items.len(), out);
            for i in items {
                encode_value(i, out);
            }
        }
        Value::Map(entries) => {
            out.push(12);
            put_len(entries.len(), out);
            for (k, v) in entries {
                encode_value(k, out);
                encode_value(v, out);
            }
        }
        Value::Struct(fields) => {
            out.push(13);
            put_len(fields.len(), out);
            for (name, v) in fields {
                put_bytes(name.as_bytes(), out);
                encode_value(v, out);
            }
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| {
                CodecError::Corrupt(format!("truncated at byte {} (wanted {n} more)", self.pos))
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn len(&mut self) -> Result<usize, CodecError> {
        let mut n: usize = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            n |= ((b & 0x7f) as usize) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(CodecError::Corrupt("length prefix too long".into()))
    }

    fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.len()?;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, CodecError> {
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|_| CodecError::Corrupt("invalid UTF-8 in stored string".into()))
    }

    fn value(&mut self) -> Result<Value, CodecError> {
        Ok(match self.u8()? {
            0 => Value::Null,
            1 => Value::Boolean(self.u8()? != 0),
            2 => Value::Int(i32::from_le_bytes(self.array()?)),
            3 => Value::BigInt(i64::from_le_bytes(self.array()?)),
            4 => Value::Double(f64::from_le_bytes(self.array()?)),
            5 => {
                let unscaled = i128::from_le_bytes(self.array()?);
                Value::Decimal {
                    unscaled,
                    scale: self.u8()?,
                }
            }
            6 => Value::String(self.string()?),
            7 => Value::Bytes(self.bytes()?.to_vec()),
            8 => Value::Timestamp(i64::from_le_bytes(self.array()?)),
            9 => Value::Date(i32::from_le_bytes(self.array()?)),
            10 => Value::Time(i64::from_le_bytes(self.array()?)),
            11 => {
                let n = self.len()?;
                let mut items = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    items.push(self.value()?);
                }
                Value::Array(items)
            }
            12 => {
                let n = self.len()?;
                let mut entries = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let k = self.value()?;
                    entries.push((k, self.value()?));
                }
                Value::Map(entries)
            }
            13 => {
                let n = self.len()?;
                let mut fields = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let name = self.string()?;
                    fields.push((name, self.value()?));
                }
                Value::Struct(fields)
            }
            t => return Err(CodecError::Corrupt(format!("unknown value tag {t}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind() {
        let row = vec![
            Value::Null,
            Value::Boolean(true),
            Value::Int(-5),
            Value::BigInt(1 << 40),
            Value::Double(2.5),
            Value::Decimal {
                unscaled: -1234,
                scale: 2,
            },
            Value::String("héllo".into()),
            Value::Bytes(vec![0, 1, 255]),
            Value::Timestamp(1_700_000_000_000),
            Value::Date(19000),
            Value::Time(3_600_000),
            Value::Array(vec![Value::Int(1), Value::Null]),
            Value::Map(vec![(Value::String("a".into()), Value::Int(1))]),
            Value::Struct(vec![("F".into(), Value::String("x".into()))]),
        ];
        let bytes = encode_row_vec(&row);
        assert_eq!(decode_row(&bytes).unwrap(), row);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let bytes = encode_row_vec(&[Value::String("abcdef".into())]);
        for cut in 0..bytes.len() {
            assert!(decode_row(&bytes[..cut]).is_err());
        }
    }
}
