//! Pull queries on streams: a scan of the stream's topic from its start to each
//! partition's end offset when the query starts. Rows are handed over a bounded channel as
//! they are read, so memory does not grow with the topic; the scan stops at LIMIT, and
//! fails once it passes one of the pull limits (rows, bytes, time).

use crate::budget::PullBudget;
use crate::push::{PushEvent, evaluate, key_only_filter};
use crate::query::Engine;
use crate::{EngineError, Result};
use sluice_common::{DataType, FormatKind, Value};
use sluice_format::encode_key;
use sluice_plan::{PullLimits, StreamPullPlan};
use sluice_storage::{EmbeddedLog, EventPosition, Log, StoredRecord, Topic};
use std::collections::VecDeque;
use tokio::sync::mpsc;

/// Rows buffered between the scan and its reader.
const CHANNEL: usize = 512;
const READ_BATCH: usize = 512;

#[derive(Debug)]
pub enum ScanEvent {
    Row(Vec<Value>),
    /// The scan reached the end offsets, or LIMIT (`limit_reached`). Nothing follows.
    Done {
        limit_reached: bool,
    },
    /// The scan stopped early, on a read error or past one of its limits
    /// (`EngineError::LimitExceeded`); nothing follows.
    Failed(EngineError),
}

/// Where a stream pull reads its records from.
enum Reader {
    /// Every partition from offset 0 to its end offset at query start.
    Scan { partition: u32, from: u64 },
    /// The events of a few keys, from the topic's key index, merged into log order.
    Keys(Vec<KeyCursor>),
}

/// One key's events, read from the index a chunk at a time.
struct KeyCursor {
    key: Vec<u8>,
    /// Log position of the last entry taken from the index.
    after: u64,
    pending: VecDeque<EventPosition>,
    exhausted: bool,
}

impl Reader {
    /// The index serves `keys` when the topic is indexed and the key's bytes are one
    /// value's only encoding, so equal keys are equal bytes: the KAFKA format (a single
    /// column) of a type without two encodings of one value (DOUBLE has -0.0 and 0.0).
    fn for_plan(plan: &StreamPullPlan, topic: &Topic) -> Reader {
        let scan = Reader::Scan {
            partition: 0,
            from: 0,
        };
        let Some(keys) = &plan.keys else { return scan };
        let def = &plan.scan.source;
        let columns = def.schema.keys();
        let canonical = def.key_format.kind == FormatKind::Kafka
            && def.window.is_none()
            && columns.len() == 1
            && !matches!(columns[0].data_type, DataType::Double);
        if !topic.is_indexed() || !canonical || plan.scan.join.is_some() {
            return scan;
        }
        let mut cursors = Vec::with_capacity(keys.len());
        for tuple in keys {
            match encode_key(&def.key_format, columns, tuple) {
                // `k IN ('a', 'a')` names one key: one cursor, or its events come twice.
                Ok(Some(key)) if cursors.iter().any(|c: &KeyCursor| c.key == key) => {}
                Ok(Some(key)) => cursors.push(KeyCursor {
                    key,
                    after: 0,
                    pending: VecDeque::new(),
                    exhausted: false,
                }),
                // A NULL key has no events under it; a value the format cannot write
                // cannot be any record's key either.
                Ok(None) | Err(_) => {}
            }
        }
        Reader::Keys(cursors)
    }

    /// The next records to evaluate, in log order; empty once the reader is done.
    fn next_chunk(
        &mut self,
        log: &EmbeddedLog,
        topic: &Topic,
        ends: &[u64],
    ) -> sluice_storage::Result<Vec<StoredRecord>> {
        match self {
            Reader::Scan { partition, from } => {
                while let Some(&end) = ends.get(*partition as usize) {
                    if *from < end {
                        let want =
                            usize::try_from(end - *from).map_or(READ_BATCH, |n| n.min(READ_BATCH));
                        let mut records = log.read(topic, *partition, *from, want)?;
                        records.retain(|r| r.offset < end);
                        if let Some(last) = records.last() {
                            *from = last.offset + 1;
                            return Ok(records);
                        }
                    }
                    *partition += 1;
                    *from = 0;
                }
                Ok(Vec::new())
            }
            Reader::Keys(cursors) => {
                let mut out = Vec::new();
                while out.len() < READ_BATCH {
                    for c in cursors.iter_mut() {
                        if c.pending.is_empty() && !c.exhausted {
                            let got = log.key_history(topic, &c.key, c.after, READ_BATCH)?;
                            c.exhausted = got.len() < READ_BATCH;
                            if let Some(last) = got.last() {
                                c.after = last.seq;
                            }
                            c.pending.extend(got);
                        }
                    }
                    // The key whose next event is earliest in the log: keys may live in
                    // different partitions, and a history reads in log order.
                    let Some(c) = cursors
                        .iter_mut()
                        .filter(|c| !c.pending.is_empty())
                        .min_by_key(|c| c.pending.front().map_or(u64::MAX, |p| p.seq))
                    else {
                        break;
                    };
                    let Some(at) = c.pending.pop_front() else {
                        break;
                    };
                    // Appended after the query started: not part of what it reads.
                    if ends
                        .get(at.partition as usize)
                        .is_none_or(|&end| at.offset >= end)
                    {
                        continue;
                    }
                    if let Some(record) = log.read_at(topic, at.partition, at.offset)? {
                        out.push(record);
                    }
                }
                Ok(out)
            }
        }
    }
}

impl Engine {
    /// How a stream pull will read, for EXPLAIN: the key index or a scan of every partition.
    pub fn stream_pull_access(&self, plan: &StreamPullPlan) -> String {
        let Some(topic) = self.log().topic(&plan.scan.source.topic) else {
            return "a scan of every partition (the topic does not exist)".into();
        };
        match (Reader::for_plan(plan, &topic), &plan.keys) {
            (Reader::Keys(cursors), _) => format!(
                "the events of {} key(s), from the key index, in log order",
                cursors.len()
            ),
            (Reader::Scan { .. }, Some(_)) => {
                "a scan of every partition, filtered by key (the key index serves declared \
                 streams with one KAFKA-format key column, not DOUBLE)"
                    .into()
            }
            (Reader::Scan { .. }, None) => "a scan of every partition".into(),
        }
    }

    /// Starts a pull query on a stream: `plan`'s filter, projection and LIMIT over the
    /// records its topic holds now (only its keys' events, from the key index, when the
    /// plan pins the key and the stream is indexed). Past one of `limits` (rows, bytes,
    /// time) the query fails. Dropping the receiver stops the scan.
    pub fn scan_stream(
        &self,
        plan: StreamPullPlan,
        limits: PullLimits,
    ) -> Result<mpsc::Receiver<ScanEvent>> {
        let log = self.log().clone();
        let topic = log.topic(&plan.scan.source.topic).ok_or_else(|| {
            EngineError::Invalid(format!("topic {} does not exist", plan.scan.source.topic))
        })?;
        // The end offsets now bound the scan: records appended while it runs are not read.
        let ends: Vec<u64> = (0..topic.partitions).map(|p| topic.end_offset(p)).collect();
        let (tx, rx) = mpsc::channel(CHANNEL);
        let mut reader = Reader::for_plan(&plan, &topic);
        let plan = plan.scan;
        let key_only = key_only_filter(&plan);
        tokio::task::spawn_blocking(move || {
            let done = |tx: &mpsc::Sender<ScanEvent>, limit_reached: bool| {
                let _ = tx.blocking_send(ScanEvent::Done { limit_reached });
            };
            let fail = |tx: &mpsc::Sender<ScanEvent>, e: EngineError| {
                let _ = tx.blocking_send(ScanEvent::Failed(e));
            };
            if plan.limit == Some(0) {
                return done(&tx, true);
            }
            let mut budget = PullBudget::new(limits, &plan.source.name);
            let mut sent = 0u64;
            loop {
                let records = match reader.next_chunk(&log, &topic, &ends) {
                    Ok(r) if r.is_empty() => break,
                    Ok(r) => r,
                    Err(e) => return fail(&tx, e.into()),
                };
                for rec in &records {
                    if let Err(e) = budget.read() {
                        return fail(&tx, e);
                    }
                    let Some(PushEvent::Row { row, .. }) = evaluate(&plan, key_only, rec) else {
                        continue;
                    };
                    if let Err(e) = budget.charge(&row) {
                        return fail(&tx, e);
                    }
                    if tx.blocking_send(ScanEvent::Row(row)).is_err() {
                        return;
                    }
                    sent += 1;
                    if plan.limit.is_some_and(|l| sent >= l) {
                        return done(&tx, true);
                    }
                }
            }
            done(&tx, false);
        });
        Ok(rx)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use sluice_common::{Column, ColumnRole, FormatSpec, Schema, SourceDef};
    use sluice_expr::Expr;
    use sluice_plan::PushPlan;
    use sluice_storage::{EmbeddedLog, Record, Txn};
    use std::sync::Arc;

    /// A keyless JSON stream `S` of one BIGINT column `V`, on topic `s`.
    pub(crate) fn stream() -> SourceDef {
        SourceDef {
            id: 1,
            name: "S".into(),
            kind: sluice_common::SourceKind::Stream,
            schema: Schema::new(vec![Column {
                name: "V".into(),
                data_type: DataType::BigInt,
                role: ColumnRole::Value,
            }]),
            topic: "s".into(),
            key_format: FormatSpec::new(FormatKind::None),
            value_format: FormatSpec::new(FormatKind::Json),
            timestamp_column: None,
            timestamp_format: None,
            headers: Vec::new(),
            written_by: None,
            sql: String::new(),
            read_only: false,
            window: None,
        }
    }

    async fn append(log: &EmbeddedLog, values: &[Option<i64>]) {
        let topic = log.create_topic("s", 1).unwrap();
        let mut txn = Txn::new();
        for v in values {
            let record = Record {
                key: None,
                value: v.map(|v| format!("{{\"V\": {v}}}").into_bytes()),
                timestamp: 0,
                headers: Vec::new(),
            };
            txn.append(&topic, 0, record);
        }
        log.submit(txn).wait().await.unwrap();
    }

    async fn scan(engine: &Engine, limit: Option<u64>, max_rows: u64) -> Vec<ScanEvent> {
        let plan = PushPlan {
            source: stream(),
            filter: None,
            projection: vec![Expr::Column(0)],
            limit,
            skip_null_keys: false,
            join: None,
        };
        let plan = StreamPullPlan {
            scan: plan,
            keys: None,
        };
        let limits = PullLimits {
            max_rows,
            ..PullLimits::default()
        };
        let mut rx = engine.scan_stream(plan, limits).unwrap();
        let mut out = Vec::new();
        while let Some(ev) = rx.recv().await {
            out.push(ev);
        }
        out
    }

    /// Rows and ends compare by value; failures by their message.
    impl PartialEq for ScanEvent {
        fn eq(&self, other: &ScanEvent) -> bool {
            match (self, other) {
                (ScanEvent::Row(a), ScanEvent::Row(b)) => a == b,
                (ScanEvent::Done { limit_reached: a }, ScanEvent::Done { limit_reached: b }) => {
                    a == b
                }
                (ScanEvent::Failed(a), ScanEvent::Failed(b)) => a.to_string() == b.to_string(),
                _ => false,
            }
        }
    }

    fn row(v: i64) -> ScanEvent {
        ScanEvent::Row(vec![Value::BigInt(v)])
    }

    #[tokio::test]
    async fn a_stream_scan_reads_to_the_end_then_completes() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
        let engine = Engine::new(log.clone()).unwrap();
        // A tombstone carries no stream row.
        append(&log, &[Some(1), None, Some(2), Some(3)]).await;
        assert_eq!(
            scan(&engine, None, 100).await,
            [
                row(1),
                row(2),
                row(3),
                ScanEvent::Done {
                    limit_reached: false
                }
            ]
        );
        assert_eq!(
            scan(&engine, Some(2), 100).await,
            [
                row(1),
                row(2),
                ScanEvent::Done {
                    limit_reached: true
                }
            ]
        );
        assert_eq!(
            scan(&engine, Some(0), 100).await,
            [ScanEvent::Done {
                limit_reached: true
            }]
        );
        let capped = scan(&engine, None, 2).await;
        assert_eq!(&capped[..2], &[row(1), row(2)]);
        assert!(
            matches!(&capped[2..], [ScanEvent::Failed(e @ EngineError::LimitExceeded(_))] if e.to_string().contains("pull-max-rows"))
        );
    }

    /// An event-store stream: a STRING key in the KAFKA format, so the index serves it.
    fn keyed(partitions: u32) -> SourceDef {
        let mut def = stream();
        def.schema = Schema::new(vec![
            Column {
                name: "K".into(),
                data_type: DataType::String,
                role: ColumnRole::Key,
            },
            Column {
                name: "V".into(),
                data_type: DataType::BigInt,
                role: ColumnRole::Value,
            },
        ]);
        def.key_format = FormatSpec::new(FormatKind::Kafka);
        def.topic = format!("keyed{partitions}");
        def
    }

    /// (K, V, ROWTIME) of every row the pull returns, in the order returned.
    async fn pull_rows(
        engine: &Engine,
        def: &SourceDef,
        keys: Option<Vec<&str>>,
    ) -> Vec<(String, i64, i64)> {
        let plan = StreamPullPlan {
            scan: PushPlan {
                source: def.clone(),
                filter: None,
                projection: vec![Expr::Column(0), Expr::Column(1), Expr::Column(2)],
                limit: None,
                skip_null_keys: false,
                join: None,
            },
            keys: keys.map(|ks| {
                ks.into_iter()
                    .map(|k| vec![Value::String(k.into())])
                    .collect()
            }),
        };
        let mut rx = engine
            .scan_stream(
                plan,
                PullLimits {
                    max_rows: u64::MAX,
                    max_bytes: u64::MAX,
                    ..PullLimits::default()
                },
            )
            .unwrap();
        let mut out = Vec::new();
        while let Some(ev) = rx.recv().await {
            match ev {
                ScanEvent::Row(r) => out.push((
                    r[0].to_string(),
                    r[1].as_i64().unwrap(),
                    r[2].as_i64().unwrap(),
                )),
                ScanEvent::Done { .. } => break,
                ScanEvent::Failed(m) => panic!("{m}"),
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Differential: the events the key index returns for some keys are exactly the
        /// scan's events of those keys, in log order (ROWTIME is the append order here),
        /// whatever partitions the keys went to and however the appends were grouped.
        #[test]
        fn key_reads_equal_a_filtered_scan_in_log_order(
            events in proptest::collection::vec((0usize..5, proptest::option::of(0u32..3)), 0..300),
            txn_size in 1usize..40,
            wanted in proptest::collection::vec(0usize..6, 1..4),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
                let engine = Engine::new(log.clone()).unwrap();
                let def = keyed(3);
                let topic = log.create_topic(&def.topic, 3).unwrap();
                let mut txn = Txn::new();
                txn.index_topic(&topic);
                log.submit(txn).wait().await.unwrap();
                for (chunk_no, chunk) in events.chunks(txn_size).enumerate() {
                    let mut txn = Txn::new();
                    for (i, (k, partition)) in chunk.iter().enumerate() {
                        let n = (chunk_no * txn_size + i) as i64;
                        let key = format!("k{k}").into_bytes();
                        // Mostly the key's partition, sometimes another (a raw Produce may).
                        let p = partition.unwrap_or_else(|| topic.partition_for(Some(&key)));
                        txn.append(&topic, p, Record {
                            key: Some(key),
                            value: Some(format!("{{\"V\": {n}}}").into_bytes()),
                            timestamp: n,
                            headers: Vec::new(),
                        });
                    }
                    log.submit(txn).wait().await.unwrap();
                }
                let names: Vec<String> = wanted.iter().map(|k| format!("k{k}")).collect();
                let got = pull_rows(&engine, &def, Some(names.iter().map(String::as_str).collect())).await;
                let mut expected: Vec<_> = pull_rows(&engine, &def, None)
                    .await
                    .into_iter()
                    .filter(|(k, _, _)| names.contains(k))
                    .collect();
                expected.sort_by_key(|r| r.2);
                prop_assert_eq!(got, expected);
                Ok(())
            })?;
        }
    }

    #[tokio::test]
    async fn an_unindexed_stream_scans_and_the_filter_decides() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
        let engine = Engine::new(log.clone()).unwrap();
        let def = keyed(1);
        let topic = log.create_topic(&def.topic, 1).unwrap();
        let mut txn = Txn::new();
        for (n, k) in ["a", "b", "a"].iter().enumerate() {
            txn.append(
                &topic,
                0,
                Record {
                    key: Some(k.as_bytes().to_vec()),
                    value: Some(format!("{{\"V\": {n}}}").into_bytes()),
                    timestamp: n as i64,
                    headers: Vec::new(),
                },
            );
        }
        log.submit(txn).wait().await.unwrap();
        // Without an index the keys are only a hint: the scan reads everything (the plan's
        // filter, absent here, is what narrows it).
        assert_eq!(pull_rows(&engine, &def, Some(vec!["a"])).await.len(), 3);
        // Indexing it backfills the records it holds.
        let mut txn = Txn::new();
        txn.index_topic(&topic);
        log.submit(txn).wait().await.unwrap();
        assert_eq!(
            pull_rows(&engine, &def, Some(vec!["a"])).await,
            [("a".to_string(), 0, 0), ("a".to_string(), 2, 2)]
        );
    }
}
