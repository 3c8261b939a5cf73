//! Prometheus metrics (issue #15): `--metrics-listen` serves `/metrics`, scraped here and
//! parsed by the Prometheus project's own Python client (an independent parser; scripts/
//! test installs it and sets SLUICE_METRICS_PYTHON, else this test is skipped with a
//! message). The figures must match what the test did: records a query processed, its
//! lag, an open push subscription, RPC calls by status (refused ones included), the
//! committer's groups and RocksDB's memory.

mod common;

use common::*;
use sluice_proto::v1 as pb;
use sluice_proto::v1::sluice_client::SluiceClient;
use sluice_proto::{AuthedClient, Bearer};
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

/// A sample's labels, sorted.
type Labels = Vec<(String, String)>;
/// Every sample of a scrape: (name, labels) -> value.
type Samples = HashMap<(String, Labels), f64>;

const ADMIN: &str = "admin-3f6e1d2c9b8a7f60";

fn python() -> Option<String> {
    let py = std::env::var("SLUICE_METRICS_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import prometheus_client"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(py)
}

/// Every sample of the scrape as (name, labels) -> value, parsed by prometheus_client.
fn scrape(py: &str, url: &str) -> Samples {
    let script = r#"
import json, sys, urllib.request
from prometheus_client.openmetrics.parser import text_string_to_metric_families
body = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
out = []
for family in text_string_to_metric_families(body):
    for s in family.samples:
        out.append([s.name, sorted(s.labels.items()), s.value])
print(json.dumps(out))
"#;
    let o = Command::new(py).args(["-c", script, url]).output().unwrap();
    assert!(
        o.status.success(),
        "scrape failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let samples: Vec<(String, Labels, f64)> = serde_json::from_slice(&o.stdout).unwrap();
    samples.into_iter().map(|(n, l, v)| ((n, l), v)).collect()
}

fn get(m: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    *m.get(&(name.to_string(), l.clone())).unwrap_or_else(|| {
        panic!(
            "no sample {name}{l:?}; have: {:?}",
            m.keys().filter(|k| k.0 == name).collect::<Vec<_>>()
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_and_parsed_by_a_prometheus_parser() {
    let Some(py) = python() else {
        eprintln!(
            "skipping metrics test: no python with prometheus_client (run scripts/test, which installs it)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.txt");
    std::fs::write(&auth, format!("admin {ADMIN}\n")).unwrap();
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let server = Server::start_with_env(
        &dir.path().join("data"),
        free_port(),
        &[
            ("SLUICE_AUTH_FILE", auth.to_str().unwrap()),
            ("SLUICE_METRICS_LISTEN", metrics_addr.as_str()),
            // Small memtables, so a query's state reaches table files (which
            // query_state_bytes sizes) within the test.
            ("SLUICE_ROCKSDB_WRITE_BUFFER_MB", "1"),
        ],
    )
    .await;
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c: AuthedClient =
        SluiceClient::with_interceptor(channel.clone(), Bearer::new(Some(ADMIN)).unwrap());
    let run = |sql: &str| pb::ExecuteRequest {
        sql: sql.into(),
        properties: Default::default(),
    };
    c.execute(run("CREATE STREAM ev (k STRING KEY, v INT) WITH (kafka_topic='ev', value_format='JSON', partitions=2);")).await.unwrap();
    let qid = c
        .execute(run(
            "CREATE TABLE counts AS SELECT k, COUNT(*) AS n FROM ev GROUP BY k;",
        ))
        .await
        .unwrap()
        .into_inner()
        .results[0]
        .query_id
        .clone();
    for i in 0..50 {
        c.execute(run(&format!(
            "INSERT INTO ev (k, v) VALUES ('k{}', {i});",
            i % 5
        )))
        .await
        .unwrap();
    }
    // Refused: no token. (The harness's readiness probe was refused too: count from here.)
    let url = format!("http://{metrics_addr}/metrics");
    let unauthenticated = |m: &Samples| {
        m.get(&(
            "sluice_rpc_calls_total".to_string(),
            vec![
                ("code".to_string(), "Unauthenticated".to_string()),
                ("method".to_string(), "sluice.v1.Sluice/Execute".to_string()),
            ],
        ))
        .copied()
        .unwrap_or(0.0)
    };
    let refused_before = unauthenticated(&scrape(&py, &url));
    let mut anonymous = SluiceClient::new(channel.clone());
    assert_eq!(
        anonymous
            .execute(run("SHOW STREAMS;"))
            .await
            .unwrap_err()
            .code(),
        tonic::Code::Unauthenticated
    );
    // One push subscription, open while the metrics are scraped (its header has come).
    let mut push = c
        .query(pb::QueryRequest {
            sql: "SELECT * FROM ev EMIT CHANGES;".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    push.message().await.unwrap().expect("a header");

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let m = loop {
        let m = scrape(&py, &url);
        let processed = get(
            &m,
            "sluice_query_processed_records_total",
            &[("query", &qid)],
        );
        // The subscriber, caught up, follows the topic's shared reader.
        let shared = get(&m, "sluice_push_shared_readers", &[]);
        if (processed >= 50.0 && shared == 1.0) || std::time::Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        get(
            &m,
            "sluice_query_processed_records_total",
            &[("query", &qid)]
        ),
        50.0
    );
    assert_eq!(get(&m, "sluice_query_lag_records", &[("query", &qid)]), 0.0);
    assert_eq!(get(&m, "sluice_query_running", &[("query", &qid)]), 1.0);
    assert_eq!(
        get(&m, "sluice_query_errors_total", &[("query", &qid)]),
        0.0
    );
    assert_eq!(get(&m, "sluice_push_subscriptions", &[]), 1.0);
    assert_eq!(get(&m, "sluice_push_shared_readers", &[]), 1.0);
    let ok = get(
        &m,
        "sluice_rpc_calls_total",
        &[("method", "sluice.v1.Sluice/Execute"), ("code", "Ok")],
    );
    assert!(ok >= 52.0, "Execute calls: {ok}");
    let refused = unauthenticated(&m) - refused_before;
    assert_eq!(refused, 1.0);
    let timed = get(
        &m,
        "sluice_rpc_seconds_count",
        &[("method", "sluice.v1.Sluice/Execute")],
    );
    assert!(timed >= 53.0, "{timed}");
    assert!(get(&m, "sluice_commit_write_seconds_count", &[]) >= 50.0);
    assert!(get(&m, "sluice_commit_group_records_sum", &[]) >= 50.0);
    assert_eq!(get(&m, "sluice_commit_failed_groups_total", &[]), 0.0);
    assert!(get(&m, "sluice_log_next_position", &[]) > 50.0);
    assert!(get(&m, "sluice_rocksdb_memtable_bytes", &[]) > 0.0);
    drop(push);

    // State size: 20,000 more groups, whose state and table rows reach table files.
    let rows: Vec<pb::Row> = (0..20_000)
        .map(|i| pb::Row {
            values: vec![
                pb::Value {
                    kind: Some(pb::value::Kind::String(format!("group-{i:06}"))),
                },
                pb::Value {
                    kind: Some(pb::value::Kind::Int(i)),
                },
            ],
        })
        .collect();
    let mut acks = c
        .bulk_insert(tokio_stream::iter(vec![pb::BulkInsertRequest {
            target: "ev".into(),
            rows,
            ..Default::default()
        }]))
        .await
        .unwrap()
        .into_inner();
    acks.message().await.unwrap().expect("an ack");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let m = scrape(&py, &url);
        let bytes = get(&m, "sluice_query_state_bytes", &[("query", &qid)]);
        if bytes > 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the query's state size stayed {bytes}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
