//! No record content can make a scalar function panic.
//!
//! A function's arguments come from records, so a panic in one (a string cut by byte
//! index inside a multibyte character, an index past the end, an overflow) once stopped
//! the persistent query reading that record. This test calls every registered function,
//! for every argument type tuple its type rule accepts (arity 0 to 3, over one
//! representative of each type), with edge values of those types, and fails listing
//! every call that panicked. The engine also catches panics per record; this keeps them
//! from being there to catch.

use sluice_common::{DataType, Value};
use sluice_expr::functions::{ScalarFunction, all};
use std::panic::{AssertUnwindSafe, catch_unwind};

fn types() -> Vec<DataType> {
    vec![
        DataType::Boolean,
        DataType::Int,
        DataType::BigInt,
        DataType::Double,
        DataType::Decimal {
            precision: 4,
            scale: 2,
        },
        DataType::String,
        DataType::Bytes,
        DataType::Timestamp,
        DataType::Date,
        DataType::Time,
        DataType::Array(Box::new(DataType::String)),
        DataType::Array(Box::new(DataType::Int)),
        DataType::Map(Box::new(DataType::String), Box::new(DataType::Int)),
        DataType::Struct(vec![("A".into(), DataType::Int)]),
    ]
}

fn strings() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        " ",
        "a",
        "é",
        "+1é34",
        "-1é",
        "1é",
        "aé",
        "🙂🙂x",
        "%",
        "%s%d%n",
        "a,b,,c",
        "[1,2]",
        "{\"a\":[1,{\"b\":null}]}",
        "$.a[0]",
        "$[",
        "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
        "EEEE, MMMM d, yyyy G",
        "'",
        "2020-02-29",
        "2020-02-29T23:59:59.999+05:30",
        "23:59:60",
        "http://user@host:8080/p/a?q=1&r=é#frag",
        "http://[::1",
        "\\",
        "(",
        ".*",
        "[",
        "\u{0}",
        "-",
        "+",
        "Z",
        "+18:00:01",
        "America/New_York",
        "UTC+é",
        "0x1F",
        "1e400",
        "NaN",
        "-9223372036854775809",
        "AQID",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("é".repeat(200));
    v.push("a".repeat(5_000));
    v
}

fn values(t: &DataType) -> Vec<Value> {
    let mut out = vec![Value::Null];
    match t {
        DataType::Boolean => out.extend([Value::Boolean(true), Value::Boolean(false)]),
        DataType::Int => {
            out.extend([0, 1, -1, 2, 3, 7, 64, 1000, -1000, i32::MAX, i32::MIN].map(Value::Int))
        }
        DataType::BigInt => out.extend(
            [
                0,
                1,
                -1,
                5,
                i64::MAX,
                i64::MIN,
                1_600_000_000_000,
                253_402_300_800_000,
                -62_135_596_800_001,
            ]
            .map(Value::BigInt),
        ),
        DataType::Double => out.extend(
            [
                0.0,
                -0.0,
                1.5,
                -2.5,
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                1e308,
                5e-324,
                1e19,
                -1e19,
            ]
            .map(Value::Double),
        ),
        DataType::Decimal { .. } => out.extend(
            [
                (0, 2),
                (1234, 2),
                (-9999, 2),
                (i128::MAX, 2),
                (i128::MIN, 0),
                (5, 38),
            ]
            .map(|(unscaled, scale)| Value::Decimal { unscaled, scale }),
        ),
        DataType::String => out.extend(strings().into_iter().map(Value::String)),
        DataType::Bytes => out.extend(
            [vec![], vec![0xff], vec![0, 1, 2], vec![0xc3], vec![7; 300]].map(Value::Bytes),
        ),
        DataType::Timestamp => {
            out.extend([0, -1, 1_600_000_000_000, i64::MAX, i64::MIN].map(Value::Timestamp))
        }
        DataType::Date => {
            out.extend([0, -1, 2_932_896, -719_528, i32::MAX, i32::MIN].map(Value::Date))
        }
        DataType::Time => out.extend([0, 86_399_999, -1, i64::MAX].map(Value::Time)),
        DataType::Array(item) => {
            out.push(Value::Array(vec![]));
            out.push(Value::Array(vec![Value::Null]));
            let items = values(item);
            out.push(Value::Array(items.clone()));
            out.push(Value::Array(items.into_iter().rev().take(3).collect()));
        }
        DataType::Map(k, v) => {
            out.push(Value::Map(vec![]));
            let keys = values(k);
            let vals = values(v);
            out.push(Value::Map(
                keys.into_iter()
                    .zip(vals.into_iter().cycle())
                    .take(6)
                    .collect(),
            ));
        }
        DataType::Struct(fields) => {
            out.push(Value::Struct(
                fields
                    .iter()
                    .map(|(n, _)| (n.clone(), Value::Null))
                    .collect(),
            ));
            out.push(Value::Struct(
                fields
                    .iter()
                    .map(|(n, t)| (n.clone(), values(t).pop().unwrap_or(Value::Null)))
                    .collect(),
            ));
        }
    }
    out
}

/// A small deterministic generator: the same calls on every run, so a failure repeats.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

/// Argument type tuples of up to `max_arity` the function's type rule accepts.
fn accepted(f: &ScalarFunction, max_arity: usize) -> Vec<Vec<DataType>> {
    let ts = types();
    let mut out = Vec::new();
    let mut tuple: Vec<DataType> = Vec::new();
    fn walk(
        f: &ScalarFunction,
        ts: &[DataType],
        tuple: &mut Vec<DataType>,
        max: usize,
        out: &mut Vec<Vec<DataType>>,
    ) {
        if (f.return_type)(tuple).is_ok() {
            out.push(tuple.clone());
        }
        if tuple.len() == max {
            return;
        }
        for t in ts {
            tuple.push(t.clone());
            walk(f, ts, tuple, max, out);
            tuple.pop();
        }
    }
    walk(f, &ts, &mut tuple, max_arity, &mut out);
    out
}

#[test]
fn no_scalar_function_panics_on_any_argument_values() {
    // Quiet the default hook: panics are collected and reported below.
    std::panic::set_hook(Box::new(|_| {}));
    let mut panics: Vec<String> = Vec::new();
    let mut rng = Lcg(0x5eed);
    let mut calls = 0u64;
    for f in all() {
        let started = std::time::Instant::now();
        for tuple in accepted(f, 3) {
            let pools: Vec<Vec<Value>> = tuple.iter().map(values).collect();
            // Every value of each argument at least once, then random combinations.
            let widest = pools.iter().map(Vec::len).max().unwrap_or(1);
            let samples = widest + 40;
            for s in 0..samples {
                let args: Vec<Value> = pools
                    .iter()
                    .map(|p| {
                        let i = if s < widest {
                            s % p.len()
                        } else {
                            rng.next(p.len())
                        };
                        p[i].clone()
                    })
                    .collect();
                calls += 1;
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| (f.eval)(&args))) {
                    let why = payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    let shown: Vec<String> = args
                        .iter()
                        .map(|a| {
                            let text = format!("{a:?}");
                            if text.chars().count() > 60 {
                                format!("{}...", text.chars().take(60).collect::<String>())
                            } else {
                                text
                            }
                        })
                        .collect();
                    panics.push(format!("{}({}): {why}", f.name, shown.join(", ")));
                    break;
                }
            }
        }
        if std::env::var_os("NO_PANICS_TIMING").is_some() {
            eprintln!("{} {:?}", f.name, started.elapsed());
        }
    }
    let _ = std::panic::take_hook();
    assert!(calls > 10_000, "only {calls} calls made");
    assert!(
        panics.is_empty(),
        "{} function calls panicked (first per type tuple):\n  {}",
        panics.len(),
        panics.join("\n  ")
    );
}

/// No record content can make an aggregate panic: every aggregate, over every argument
/// type its type rule accepts, folds edge values in (and retracts some, where it can),
/// and gives a result at every step.
#[test]
fn no_aggregate_panics_on_any_values() {
    use sluice_expr::aggregate::AGGREGATES;
    use sluice_expr::{AggCall, AggKind, Expr};
    std::panic::set_hook(Box::new(|_| {}));
    let mut panics: Vec<String> = Vec::new();
    for (name, _, _) in AGGREGATES {
        for star in [false, true] {
            let Some(kind) = AggKind::from_name(name, star) else {
                continue;
            };
            for t in types() {
                if kind.return_type(Some(&t), Some(3)).is_err() {
                    continue;
                }
                let mut call = AggCall::new(kind, Some(Expr::Column(0)), Some(t.clone()));
                call.arg2 = Some(Expr::Column(1));
                call.n = Some(3);
                let vals = values(&t);
                let r = catch_unwind(AssertUnwindSafe(|| {
                    let mut state = Vec::new();
                    call.init(&mut state);
                    for (i, v) in vals.iter().enumerate() {
                        let row = vec![v.clone(), vals[(i * 7) % vals.len()].clone()];
                        call.update(&mut state, &row);
                        let _ = call.result(&state);
                        if call.supports_retract() && i % 3 == 2 {
                            call.retract(&mut state, &row);
                            let _ = call.result(&state);
                        }
                    }
                }));
                if let Err(payload) = r {
                    let why = payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    panics.push(format!("{name} over {t}: {why}"));
                }
            }
        }
    }
    let _ = std::panic::take_hook();
    assert!(
        panics.is_empty(),
        "aggregates panicked:\n  {}",
        panics.join("\n  ")
    );
}
