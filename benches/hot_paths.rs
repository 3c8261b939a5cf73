//! Criterion micro-benchmarks of the per-event hot paths: expression evaluation, value
//! (de)serialization, state row and key encoding, and durable log appends and state updates
//! through the committer. `cargo bench --bench hot_paths`; see docs/performance.md.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sluice_common::codec::{decode_row, encode_row_vec};
use sluice_common::keycodec::encode_key_vec;
use sluice_common::{Column, ColumnRole, DataType, FormatKind, FormatSpec, Value};
use sluice_planner::bind::{Binder, Scope};
use sluice_storage::{Cf, EmbeddedLog, Log, Record, Txn};
use std::hint::black_box;

/// The bench event of `sluice bench`: K, ID, USER_ID, AMOUNT, QTY, CATEGORY, PAYLOAD.
fn columns() -> Vec<(String, DataType)> {
    [
        ("K", DataType::String),
        ("ID", DataType::BigInt),
        ("USER_ID", DataType::String),
        ("AMOUNT", DataType::Double),
        ("QTY", DataType::Int),
        ("CATEGORY", DataType::String),
        ("PAYLOAD", DataType::String),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect()
}

fn event() -> Vec<Value> {
    vec![
        Value::String("k00012345".into()),
        Value::BigInt(1_234_567),
        Value::String("u0012345".into()),
        Value::Double(123.45),
        Value::Int(3),
        Value::String("books".into()),
        Value::String("xxxxxxxxxxxx".into()),
    ]
}

fn bind(sql: &str) -> sluice_expr::Expr {
    let scope = Scope {
        columns: columns(),
        qualifiers: vec!["EVENTS".into()],
        joined: Vec::new(),
    };
    let parsed = sluice_sql::parse_expr(sql).expect("benchmark expression parses");
    Binder::plain(&scope)
        .bind(&parsed)
        .expect("benchmark expression binds")
        .expr
}

fn expressions(c: &mut Criterion) {
    let row = event();
    let mut g = c.benchmark_group("expr");
    g.throughput(Throughput::Elements(1));
    for (name, sql) in [
        ("filter", "QTY > 2 AND CATEGORY <> 'tools'"),
        ("arithmetic", "AMOUNT * 0.908 + ID % 123"),
        (
            "case",
            "CASE WHEN AMOUNT < 100 THEN 'low' WHEN AMOUNT < 1000 THEN 'mid' ELSE 'high' END",
        ),
        (
            "string_fn",
            "LCASE(CATEGORY) || '-' || SUBSTRING(USER_ID, 2, 4)",
        ),
        (
            "regexp_extract",
            "REGEXP_EXTRACT('(&|^)channel_id=([^&]*)', PAYLOAD, 2)",
        ),
    ] {
        let e = bind(sql);
        g.bench_function(name, |b| b.iter(|| black_box(e.eval(black_box(&row)))));
    }
    g.finish();
}

fn formats(c: &mut Criterion) {
    let value_cols: Vec<Column> = columns()
        .into_iter()
        .skip(1)
        .map(|(name, data_type)| Column {
            name,
            data_type,
            role: ColumnRole::Value,
        })
        .collect();
    let json = FormatSpec {
        kind: FormatKind::Json,
        delimiter: None,
        wrap_single_value: None,
    };
    let values = event()[1..].to_vec();
    let bytes = sluice_format::encode_value(&json, &value_cols, Some(&values))
        .unwrap()
        .unwrap();
    let mut g = c.benchmark_group("format");
    g.throughput(Throughput::Elements(1));
    g.bench_function("json_encode", |b| {
        b.iter(|| sluice_format::encode_value(&json, &value_cols, Some(black_box(&values))))
    });
    g.bench_function("json_decode", |b| {
        b.iter(|| sluice_format::decode_value(&json, &value_cols, Some(black_box(&bytes))))
    });
    g.finish();
}

fn state_encoding(c: &mut Criterion) {
    let row = vec![
        Value::BigInt(17),
        Value::Double(1234.5),
        Value::Double(1.5),
        Value::Double(999.0),
        Value::String("k00012345".into()),
    ];
    let bytes = encode_row_vec(&row);
    let key1 = vec![Value::String("k00012345".into())];
    let key2 = vec![Value::BigInt(1_234_567), Value::String("2026-11-27".into())];
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("row_encode", |b| b.iter(|| encode_row_vec(black_box(&row))));
    g.bench_function("row_decode", |b| b.iter(|| decode_row(black_box(&bytes))));
    g.bench_function("key_encode_string", |b| {
        b.iter(|| encode_key_vec(black_box(&key1)))
    });
    g.bench_function("key_encode_composite", |b| {
        b.iter(|| encode_key_vec(black_box(&key2)))
    });
    g.finish();
}

/// Durable (fsynced) commits of 1000 appends or 1000 state puts per transaction: the cost
/// per event of the write path under group commit, on this machine's disk.
fn storage(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = EmbeddedLog::open(dir.path()).expect("open log");
    let topic = log.create_topic("bench", 1).expect("topic");
    let value = vec![b'x'; 100];
    let mut g = c.benchmark_group("storage");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1000));
    g.bench_function("append_1000_durable", |b| {
        b.iter_batched(
            || {
                let mut txn = Txn::new();
                for i in 0..1000u32 {
                    txn.append(
                        &topic,
                        0,
                        Record {
                            key: Some(i.to_be_bytes().to_vec()),
                            value: Some(value.clone()),
                            timestamp: 1,
                            headers: vec![],
                        },
                    );
                }
                txn
            },
            |txn| log.submit(txn).wait_blocking().expect("commit"),
            BatchSize::SmallInput,
        )
    });
    let mut round = 0u64;
    g.bench_function("state_put_1000_durable", |b| {
        b.iter_batched(
            || {
                round += 1;
                let mut txn = Txn::new();
                for i in 0..1000u64 {
                    let key =
                        encode_key_vec(&[Value::BigInt(((round * 7919 + i) % 1_000_000) as i64)]);
                    txn.put(
                        Cf::State,
                        key,
                        encode_row_vec(&[Value::BigInt(i as i64), Value::Double(1.0)]),
                    );
                }
                txn
            },
            |txn| log.submit(txn).wait_blocking().expect("commit"),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, expressions, formats, state_encoding, storage);
criterion_main!(benches);
