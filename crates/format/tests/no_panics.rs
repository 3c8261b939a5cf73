//! No record bytes can make a format panic: every format decodes arbitrary bytes, and
//! texts built to sit multibyte characters where errors cut or fields split, into a value
//! or an error. (A JSON type error that cut its preview by byte index once stopped a
//! query for good.)

use sluice_common::{Column, ColumnRole, DataType, FormatKind, FormatSpec};
use sluice_format::{decode_key, decode_value};
use std::panic::{AssertUnwindSafe, catch_unwind};

fn columns() -> Vec<Vec<Column>> {
    let col = |n: &str, t: DataType| Column {
        name: n.into(),
        data_type: t,
        role: ColumnRole::Value,
    };
    let all = [
        DataType::Boolean,
        DataType::Int,
        DataType::BigInt,
        DataType::Double,
        DataType::Decimal {
            precision: 38,
            scale: 10,
        },
        DataType::String,
        DataType::Bytes,
        DataType::Timestamp,
        DataType::Date,
        DataType::Time,
        DataType::Array(Box::new(DataType::Int)),
        DataType::Map(Box::new(DataType::String), Box::new(DataType::Double)),
        DataType::Struct(vec![("A".into(), DataType::String)]),
    ];
    let mut out: Vec<Vec<Column>> = all.iter().map(|t| vec![col("V", t.clone())]).collect();
    out.push(
        all.iter()
            .enumerate()
            .map(|(i, t)| col(&format!("C{i}"), t.clone()))
            .collect(),
    );
    out
}

fn inputs() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        "",
        "{",
        "null",
        "{\"V\": \"a",
        "[1,2",
        "\"é\"",
        "1e400",
        "-0",
        "99999999999999999999999999999999999999999",
        "{\"V\":{\"A\":[{\"B\":\"é\"}]}}",
        "é,é,é",
        ",,,,",
        "\"a\"\"b\",c",
        "\u{feff}{}",
        "NaN",
        "Infinity",
        "{\"V\":\"2020-02-30T25:61:61.9999999999Z\"}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    v.push(format!("{{\"V\": \"a{}\"}}", "é".repeat(80)).into_bytes());
    v.push(format!("\"{}\"", "é".repeat(80)).into_bytes());
    v.push(vec![0xff, 0xfe, 0x00, 0xc3]);
    v.push(vec![0xc3; 9]);
    v.push(vec![0, 0, 0, 0, 0, 0, 0, 1]);
    v.push(vec![0x7f, 0xf8, 0, 0, 0, 0, 0, 0]);
    // A deterministic spread of random bytes.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in 0..64 {
        let mut b = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.push(x as u8);
        }
        v.push(b);
    }
    v
}

#[test]
fn no_format_panics_on_any_record_bytes() {
    std::panic::set_hook(Box::new(|_| {}));
    let mut panics = Vec::new();
    for kind in [FormatKind::Json, FormatKind::Kafka, FormatKind::Delimited] {
        for wrap in [None, Some(false)] {
            let mut format = FormatSpec::new(kind);
            format.wrap_single_value = wrap;
            for cols in columns() {
                for bytes in inputs() {
                    let r = catch_unwind(AssertUnwindSafe(|| {
                        let _ = decode_value(&format, &cols, Some(&bytes));
                        let _ = decode_key(&format, &cols, Some(&bytes));
                    }));
                    if r.is_err() {
                        panics.push(format!(
                            "{kind} wrap={wrap:?} {:?}: {:?}",
                            cols.iter()
                                .map(|c| c.data_type.to_string())
                                .collect::<Vec<_>>(),
                            String::from_utf8_lossy(&bytes)
                        ));
                    }
                }
            }
        }
    }
    let _ = std::panic::take_hook();
    assert!(
        panics.is_empty(),
        "decoding panicked:\n  {}",
        panics.join("\n  ")
    );
}
