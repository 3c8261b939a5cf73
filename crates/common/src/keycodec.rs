//! Order-preserving ("memcomparable") encoding of key values: byte-wise comparison of two
//! encodings orders them as SQL orders the values, so RocksDB range scans serve key ranges.
//!
//! Each value starts with 0x00 for NULL (NULLs first) or 0x01. Integers are big-endian with
//! the sign bit flipped; doubles flip all bits when negative, else only the sign bit; strings
//! and bytes escape 0x00 as 0x00 0xFF and end with 0x00 0x00, so a prefix sorts first.

use crate::value::Value;

pub fn encode_key(values: &[Value], out: &mut Vec<u8>) {
    for v in values {
        encode_key_value(v, out);
    }
}

pub fn encode_key_vec(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 9);
    encode_key(values, &mut out);
    out
}

fn escaped(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

pub fn encode_key_value(v: &Value, out: &mut Vec<u8>) {
    if v.is_null() {
        out.push(0);
        return;
    }
    out.push(1);
    match v {
        Value::Null => {}
        Value::Boolean(b) => out.push(*b as u8),
        Value::Int(i) => out.extend_from_slice(&((*i as u32) ^ (1 << 31)).to_be_bytes()),
        Value::BigInt(i) | Value::Timestamp(i) | Value::Time(i) => {
            out.extend_from_slice(&((*i as u64) ^ (1 << 63)).to_be_bytes())
        }
        Value::Date(i) => out.extend_from_slice(&((*i as u32) ^ (1 << 31)).to_be_bytes()),
        Value::Double(d) => {
            // -0.0 and 0.0 are equal in SQL, so they must encode alike.
            let d = if *d == 0.0 { 0.0 } else { *d };
            let bits = d.to_bits();
            let bits = if bits >> 63 == 1 {
                !bits
            } else {
                bits ^ (1 << 63)
            };
            out.extend_from_slice(&bits.to_be_bytes());
        }
        Value::Decimal { unscaled, .. } => {
            // A key column has one declared scale, so unscaled values order like the decimals.
            out.extend_from_slice(&((*unscaled as u128) ^ (1 << 127)).to_be_bytes())
        }
        Value::String(s) => escaped(s.as_bytes(), out),
        Value::Bytes(b) => escaped(b, out),
        Value::Array(items) => {
            for i in items {
                out.push(1);
                encode_key_value(i, out);
            }
            out.push(0);
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                out.push(1);
                encode_key_value(k, out);
                encode_key_value(v, out);
            }
            out.push(0);
        }
        Value::Struct(fields) => {
            for (_, v) in fields {
                out.push(1);
                encode_key_value(v, out);
            }
            out.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: Value) -> Vec<u8> {
        encode_key_vec(&[v])
    }

    #[test]
    fn integers_and_doubles_keep_order() {
        let ints = [i64::MIN, -100, -1, 0, 1, 7, i64::MAX];
        for w in ints.windows(2) {
            assert!(enc(Value::BigInt(w[0])) < enc(Value::BigInt(w[1])));
        }
        let doubles = [f64::NEG_INFINITY, -2.5, -0.1, 0.0, 0.1, 3.0, f64::INFINITY];
        for w in doubles.windows(2) {
            assert!(enc(Value::Double(w[0])) < enc(Value::Double(w[1])), "{w:?}");
        }
        assert_eq!(enc(Value::Double(-0.0)), enc(Value::Double(0.0)));
    }

    #[test]
    fn strings_order_with_prefixes_and_zero_bytes() {
        let s = ["", "a", "a\0", "a\0b", "ab", "b"];
        for w in s.windows(2) {
            assert!(
                enc(Value::String(w[0].into())) < enc(Value::String(w[1].into())),
                "{w:?}"
            );
        }
        assert!(enc(Value::Null) < enc(Value::String(String::new())));
    }

    #[test]
    fn composite_keys_order_by_first_then_second() {
        let a = encode_key_vec(&[Value::String("a".into()), Value::Int(9)]);
        let b = encode_key_vec(&[Value::String("ab".into()), Value::Int(1)]);
        assert!(a < b);
    }
}
