//! JSON functions: they read JSON held in STRING values, and write values as JSON text.
//! Like Jackson's readTree in ksqlDB, parsing takes the first JSON value in the text and
//! ignores whatever follows it.

use super::ScalarFunction;
use super::support::{all_strings, count, expect, is_string, str_arg};
use base64::Engine as _;
use serde_json::Value as Json;
use sluice_common::value::{format_decimal, format_double};
use sluice_common::{DataType, Value};

fn parse(text: &str) -> Option<Json> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Json>()
        .next()?
        .ok()
}

fn parse_arg(args: &[Value], i: usize) -> Option<Json> {
    str_arg(args, i).and_then(parse)
}

fn one_string(args: &[DataType]) -> Result<(), String> {
    count(args, 1, 1)?;
    expect(args, 0, "STRING", is_string)
}

#[derive(Debug, PartialEq)]
enum Step {
    Key(String),
    Index(i64),
}

/// Parses the JSONPath subset ksqlDB accepts: `$`, `.key`, `['key']`, `["key"]`, `[n]`.
fn parse_path(path: &str) -> Option<Vec<Step>> {
    let rest = path.trim().strip_prefix('$')?;
    let chars: Vec<char> = rest.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                i = start;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                if i == start {
                    return None;
                }
                steps.push(Step::Key(chars[start..i].iter().collect()));
            }
            '[' => {
                let close = chars[i..].iter().position(|&c| c == ']')? + i;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                let quoted = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
                steps.push(match quoted {
                    Some(key) => Step::Key(key.to_string()),
                    None => Step::Index(inner.parse().ok()?),
                });
                i = close + 1;
            }
            _ => return None,
        }
    }
    Some(steps)
}

fn extract_json_field(args: &[Value]) -> Value {
    let (Some(doc), Some(path)) = (parse_arg(args, 0), str_arg(args, 1).and_then(parse_path))
    else {
        return Value::Null;
    };
    let mut node = &doc;
    for step in &path {
        let next = match (step, node) {
            (Step::Key(k), Json::Object(m)) => m.get(k),
            (Step::Index(i), Json::Array(a)) => usize::try_from(*i).ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return Value::Null,
        }
    }
    match node {
        Json::Null => Value::Null,
        Json::String(s) => Value::String(s.clone()),
        other => Value::String(other.to_string()),
    }
}

fn array_contains(args: &[Value]) -> Value {
    let Some(Json::Array(items)) = parse_arg(args, 0) else {
        return Value::Boolean(false);
    };
    let want = args.get(1).unwrap_or(&Value::Null);
    let found = items.iter().any(|item| match (want, item) {
        (Value::Null, Json::Null) => true,
        (Value::Boolean(b), Json::Bool(x)) => b == x,
        (Value::String(s), Json::String(x)) => s == x,
        (Value::Int(_) | Value::BigInt(_), Json::Number(n)) => {
            n.as_i64().is_some() && n.as_i64() == want.as_i64()
        }
        (Value::Double(d), Json::Number(n)) => n.as_i64().is_none() && n.as_f64() == Some(*d),
        _ => false,
    });
    Value::Boolean(found)
}

fn json_concat(args: &[Value]) -> Value {
    let mut docs = Vec::with_capacity(args.len());
    for i in 0..args.len() {
        match parse_arg(args, i) {
            Some(d) => docs.push(d),
            None => return Value::Null,
        }
    }
    let out = if docs.iter().all(Json::is_object) {
        let mut merged = serde_json::Map::new();
        for d in docs {
            if let Json::Object(m) = d {
                merged.extend(m);
            }
        }
        Json::Object(merged)
    } else {
        let mut items = Vec::new();
        for d in docs {
            match d {
                Json::Array(a) => items.extend(a),
                other => items.push(other),
            }
        }
        Json::Array(items)
    };
    Value::String(out.to_string())
}

/// Text of a JSON node as ksqlDB hands it out: strings unquoted, anything else as JSON.
fn node_text(node: &Json) -> Value {
    match node {
        Json::String(s) => Value::String(s.clone()),
        other => Value::String(other.to_string()),
    }
}

fn format_date(days: i64) -> String {
    let (y, m, d) = sluice_common::civil::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn format_time(ms: i64) -> String {
    let ms = ms.rem_euclid(86_400_000);
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, milli) = (rest / 1000, rest % 1000);
    if milli == 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}.{milli:03}")
    }
}

/// Writes a value as compact JSON, the way ksqlDB's TO_JSON_STRING serializes it.
fn write_json(v: &Value, out: &mut String) {
    let quoted = |s: &str, out: &mut String| {
        out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "null".into()));
    };
    match v {
        Value::Null => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::BigInt(i) => out.push_str(&i.to_string()),
        Value::Double(d) if d.is_finite() => out.push_str(&format_double(*d)),
        Value::Double(d) => quoted(&format_double(*d), out),
        Value::Decimal { unscaled, scale } => out.push_str(&format_decimal(*unscaled, *scale)),
        Value::String(s) => quoted(s, out),
        Value::Bytes(b) => quoted(&base64::engine::general_purpose::STANDARD.encode(b), out),
        Value::Date(d) => quoted(&format_date(i64::from(*d)), out),
        Value::Time(t) => quoted(&format_time(*t), out),
        Value::Timestamp(t) => {
            let days = t.div_euclid(86_400_000);
            let ms = t.rem_euclid(86_400_000);
            let time = format_time(ms);
            let time = if ms % 1000 == 0 {
                format!("{time}.000")
            } else {
                time
            };
            quoted(&format!("{}T{time}", format_date(days)), out);
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            out.push('{');
            for (i, (k, val)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match k {
                    Value::String(s) => quoted(s, out),
                    other => quoted(&other.to_string(), out),
                }
                out.push(':');
                write_json(val, out);
            }
            out.push('}');
        }
        Value::Struct(fields) => {
            out.push('{');
            for (i, (k, val)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                quoted(k, out);
                out.push(':');
                write_json(val, out);
            }
            out.push('}');
        }
    }
}

pub(super) static FUNCTIONS: &[ScalarFunction] = &[
    ScalarFunction {
        name: "IS_JSON_STRING",
        sigs: &[],
        signature: "IS_JSON_STRING(string)",
        description: "Whether the string parses as JSON.",
        return_type: |a| one_string(a).map(|_| DataType::Boolean),
        eval: |a| Value::Boolean(parse_arg(a, 0).is_some()),
    },
    ScalarFunction {
        name: "EXTRACTJSONFIELD",
        sigs: &[],
        signature: "EXTRACTJSONFIELD(json, path)",
        description: "The part of a JSON string a JSONPath ($.a.b[0]) selects; strings come unquoted.",
        return_type: |a| {
            count(a, 2, 2)?;
            all_strings(a, 0)?;
            Ok(DataType::String)
        },
        eval: extract_json_field,
    },
    ScalarFunction {
        name: "JSON_ARRAY_CONTAINS",
        sigs: &[],
        signature: "JSON_ARRAY_CONTAINS(json, value)",
        description: "Whether a JSON array string contains the value (BOOLEAN, INTEGER, BIGINT, DOUBLE or STRING).",
        return_type: |a| {
            count(a, 2, 2)?;
            expect(a, 0, "STRING", is_string)?;
            expect(a, 1, "BOOLEAN, INTEGER, BIGINT, DOUBLE or STRING", |t| {
                matches!(
                    t,
                    DataType::Boolean
                        | DataType::Int
                        | DataType::BigInt
                        | DataType::Double
                        | DataType::String
                )
            })?;
            Ok(DataType::Boolean)
        },
        eval: array_contains,
    },
    ScalarFunction {
        name: "JSON_ARRAY_LENGTH",
        sigs: &[],
        signature: "JSON_ARRAY_LENGTH(json)",
        description: "The number of elements of a JSON array string, or NULL if it is not one.",
        return_type: |a| one_string(a).map(|_| DataType::Int),
        eval: |a| match parse_arg(a, 0) {
            Some(Json::Array(items)) => Value::Int(items.len() as i32),
            _ => Value::Null,
        },
    },
    ScalarFunction {
        name: "JSON_CONCAT",
        sigs: &[],
        signature: "JSON_CONCAT(json, json, ...)",
        description: "JSON objects merged (later keys win), or otherwise the arguments joined into one array.",
        return_type: |a| {
            count(a, 2, usize::MAX)?;
            all_strings(a, 0)?;
            Ok(DataType::String)
        },
        eval: json_concat,
    },
    ScalarFunction {
        name: "JSON_ITEMS",
        sigs: &[],
        signature: "JSON_ITEMS(json)",
        description: "The elements of a JSON array string, each as a JSON string.",
        return_type: |a| one_string(a).map(|_| DataType::Array(Box::new(DataType::String))),
        eval: |a| match parse_arg(a, 0) {
            Some(Json::Array(items)) => {
                Value::Array(items.iter().map(|i| Value::String(i.to_string())).collect())
            }
            _ => Value::Null,
        },
    },
    ScalarFunction {
        name: "JSON_KEYS",
        sigs: &[],
        signature: "JSON_KEYS(json)",
        description: "The keys of a JSON object string.",
        return_type: |a| one_string(a).map(|_| DataType::Array(Box::new(DataType::String))),
        eval: |a| match parse_arg(a, 0) {
            Some(Json::Object(m)) => {
                Value::Array(m.keys().map(|k| Value::String(k.clone())).collect())
            }
            _ => Value::Null,
        },
    },
    ScalarFunction {
        name: "JSON_RECORDS",
        sigs: &[],
        signature: "JSON_RECORDS(json)",
        description: "The entries of a JSON object string, as a map from key to value text.",
        return_type: |a| {
            one_string(a)
                .map(|_| DataType::Map(Box::new(DataType::String), Box::new(DataType::String)))
        },
        eval: |a| match parse_arg(a, 0) {
            Some(Json::Object(m)) => Value::Map(
                m.iter()
                    .map(|(k, v)| (Value::String(k.clone()), node_text(v)))
                    .collect(),
            ),
            _ => Value::Null,
        },
    },
    ScalarFunction {
        name: "TO_JSON_STRING",
        sigs: &[],
        signature: "TO_JSON_STRING(value)",
        description: "The value serialized as a JSON string.",
        return_type: |a| {
            count(a, 1, 1)?;
            Ok(DataType::String)
        },
        eval: |a| {
            let mut out = String::new();
            write_json(a.first().unwrap_or(&Value::Null), &mut out);
            Value::String(out)
        },
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::lookup;
    use crate::functions::testing::call;

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("$.a['b c'][2]"),
            Some(vec![
                Step::Key("a".into()),
                Step::Key("b c".into()),
                Step::Index(2)
            ])
        );
        assert_eq!(parse_path("a.b"), None);
        assert_eq!(parse_path("$."), None);
    }

    #[test]
    fn extract_fields() {
        let doc = s(r#"{"name": "cdc", "@type": "UDF", "n": {"x": [1, 1.23450]}}}"#);
        assert_eq!(
            call("EXTRACTJSONFIELD", &[doc.clone(), s("$.name")]),
            s("cdc")
        );
        assert_eq!(
            call("EXTRACTJSONFIELD", &[doc.clone(), s("$.@type")]),
            s("UDF")
        );
        assert_eq!(
            call("EXTRACTJSONFIELD", &[doc.clone(), s("$.n.x[1]")]),
            s("1.23450")
        );
        assert_eq!(
            call("EXTRACTJSONFIELD", &[doc.clone(), s("$.n")]),
            s(r#"{"x":[1,1.23450]}"#)
        );
        assert_eq!(
            call("EXTRACTJSONFIELD", &[doc.clone(), s("$.n.x[-1]")]),
            Value::Null
        );
        assert_eq!(call("EXTRACTJSONFIELD", &[doc, s("$.zz")]), Value::Null);
        assert_eq!(
            call("EXTRACTJSONFIELD", &[s("not json"), s("$.a")]),
            Value::Null
        );
        assert_eq!(
            call("EXTRACTJSONFIELD", &[Value::Null, s("$")]),
            Value::Null
        );
    }

    #[test]
    fn arrays_and_objects() {
        assert_eq!(call("IS_JSON_STRING", &[s("[1, 2]")]), Value::Boolean(true));
        assert_eq!(call("IS_JSON_STRING", &[s("abc")]), Value::Boolean(false));
        assert_eq!(call("IS_JSON_STRING", &[s("")]), Value::Boolean(false));
        assert_eq!(
            call("IS_JSON_STRING", &[Value::Null]),
            Value::Boolean(false)
        );
        let colors = s(r#"["Pink", null, 3, 2.5, true]"#);
        for (v, want) in [
            (s("Pink"), true),
            (s("Red"), false),
            (Value::Null, true),
            (Value::Int(3), true),
            (Value::Double(3.0), false),
            (Value::Double(2.5), true),
            (Value::Boolean(true), true),
        ] {
            assert_eq!(
                call("JSON_ARRAY_CONTAINS", &[colors.clone(), v.clone()]),
                Value::Boolean(want),
                "{v:?}"
            );
        }
        assert_eq!(
            call("JSON_ARRAY_CONTAINS", &[s("{}"), s("a")]),
            Value::Boolean(false)
        );
        assert_eq!(call("JSON_ARRAY_LENGTH", &[colors]), Value::Int(5));
        assert_eq!(call("JSON_ARRAY_LENGTH", &[s("")]), Value::Null);
        assert_eq!(call("JSON_ARRAY_LENGTH", &[s("{}")]), Value::Null);
        assert_eq!(
            call("JSON_ITEMS", &[s(r#"[{"b": 1, "a": "x"}, 2]"#)]),
            Value::Array(vec![s(r#"{"b":1,"a":"x"}"#), s("2")])
        );
        assert_eq!(
            call("JSON_KEYS", &[s(r#"{"Red": 3, "Green": 5}"#)]),
            Value::Array(vec![s("Red"), s("Green")])
        );
        assert_eq!(call("JSON_KEYS", &[s("[]")]), Value::Null);
        assert_eq!(
            call("JSON_RECORDS", &[s(r#"{"a": 3, "b": "Seven", "c": [1]}"#)]),
            Value::Map(vec![
                (s("a"), s("3")),
                (s("b"), s("Seven")),
                (s("c"), s("[1]"))
            ])
        );
    }

    #[test]
    fn concat() {
        assert_eq!(
            call(
                "JSON_CONCAT",
                &[s(r#"{"a": {"5": 6}}"#), s(r#"{"a": {"3": 4}}"#)]
            ),
            s(r#"{"a":{"3":4}}"#)
        );
        assert_eq!(
            call("JSON_CONCAT", &[s("[1, 2]"), s(r#"{"a": 1}"#), s("4")]),
            s(r#"[1,2,{"a":1},4]"#)
        );
        assert_eq!(
            call("JSON_CONCAT", &[s("null"), s("null")]),
            s("[null,null]")
        );
        assert_eq!(call("JSON_CONCAT", &[s("1"), s("")]), Value::Null);
        assert_eq!(call("JSON_CONCAT", &[Value::Null, s("1")]), Value::Null);
    }

    #[test]
    fn to_json_string() {
        let j = |v: Value| call("TO_JSON_STRING", &[v]);
        assert_eq!(j(Value::Null), s("null"));
        assert_eq!(j(s("a\"b")), s(r#""a\"b""#));
        assert_eq!(j(Value::Double(123.456)), s("123.456"));
        assert_eq!(j(Value::Double(1.0)), s("1.0"));
        assert_eq!(
            j(Value::Decimal {
                unscaled: 123456,
                scale: 3
            }),
            s("123.456")
        );
        assert_eq!(j(Value::Bytes(vec![b'!'])), s(r#""IQ==""#));
        assert_eq!(j(Value::Time(60_220_000)), s(r#""16:43:40""#));
        assert_eq!(j(Value::Date(1000)), s(r#""1972-09-27""#));
        assert_eq!(j(Value::Date(-1)), s(r#""1969-12-31""#));
        assert_eq!(
            j(Value::Timestamp(60_220_000_000)),
            s(r#""1971-11-28T23:46:40.000""#)
        );
        assert_eq!(
            j(Value::Struct(vec![
                ("ID".into(), Value::Int(1)),
                ("L".into(), Value::Array(vec![Value::Null]))
            ])),
            s(r#"{"ID":1,"L":[null]}"#)
        );
        assert_eq!(
            j(Value::Map(vec![(s("id"), Value::BigInt(1))])),
            s(r#"{"id":1}"#)
        );
    }

    #[test]
    fn type_rules() {
        let rule = |n: &str, a: &[DataType]| (lookup(n).unwrap().return_type)(a);
        assert!(rule("JSON_KEYS", &[DataType::Int]).is_err());
        assert!(rule("JSON_ARRAY_CONTAINS", &[DataType::String, DataType::Bytes]).is_err());
        assert!(rule("JSON_CONCAT", &[DataType::String]).is_err());
        assert_eq!(
            rule("TO_JSON_STRING", &[DataType::Int]),
            Ok(DataType::String)
        );
    }
}
