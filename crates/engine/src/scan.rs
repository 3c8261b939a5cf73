//! Pull queries on streams: a scan of the stream's topic from its start to each
//! partition's end offset when the query starts. Rows are handed over a bounded channel as
//! they are read, so memory does not grow with the topic; the scan stops at LIMIT, and
//! fails once it would return more than the pull row cap.

use crate::push::{PushEvent, evaluate, key_only_filter};
use crate::query::Engine;
use crate::{EngineError, Result};
use sluice_common::Value;
use sluice_plan::PushPlan;
use sluice_storage::Log;
use tokio::sync::mpsc;

/// Rows buffered between the scan and its reader.
const CHANNEL: usize = 512;
const READ_BATCH: usize = 512;

#[derive(Debug, Clone, PartialEq)]
pub enum ScanEvent {
    Row(Vec<Value>),
    /// The scan reached the end offsets, or LIMIT (`limit_reached`). Nothing follows.
    Done {
        limit_reached: bool,
    },
    /// The scan stopped early; nothing follows.
    Failed(String),
}

impl Engine {
    /// Starts a pull query on a stream: `plan`'s filter, projection and LIMIT over the
    /// records its topic holds now. More than `max_rows` rows fail the query. Dropping the
    /// receiver stops the scan.
    pub fn scan_stream(&self, plan: PushPlan, max_rows: u64) -> Result<mpsc::Receiver<ScanEvent>> {
        let log = self.log().clone();
        let topic = log.topic(&plan.source.topic).ok_or_else(|| {
            EngineError::Invalid(format!("topic {} does not exist", plan.source.topic))
        })?;
        // The end offsets now bound the scan: records appended while it runs are not read.
        let ends: Vec<u64> = (0..topic.partitions).map(|p| topic.end_offset(p)).collect();
        let (tx, rx) = mpsc::channel(CHANNEL);
        let key_only = key_only_filter(&plan);
        tokio::task::spawn_blocking(move || {
            let done = |tx: &mpsc::Sender<ScanEvent>, limit_reached: bool| {
                let _ = tx.blocking_send(ScanEvent::Done { limit_reached });
            };
            if plan.limit == Some(0) {
                return done(&tx, true);
            }
            let mut sent = 0u64;
            for (p, &end) in (0u32..).zip(&ends) {
                let mut from = 0u64;
                while from < end {
                    let want =
                        usize::try_from(end - from).map_or(READ_BATCH, |n| n.min(READ_BATCH));
                    let records = match log.read(&topic, p, from, want) {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = tx.blocking_send(ScanEvent::Failed(e.to_string()));
                            return;
                        }
                    };
                    let Some(last) = records.last() else { break };
                    from = last.offset + 1;
                    for rec in records.iter().filter(|r| r.offset < end) {
                        let Some(PushEvent::Row { row, .. }) = evaluate(&plan, key_only, rec)
                        else {
                            continue;
                        };
                        if sent >= max_rows {
                            let _ = tx.blocking_send(ScanEvent::Failed(format!(
                                "Pull query on {} would return more than {} rows (the pull row limit); add a LIMIT or a narrower WHERE clause, or raise 'sluice.pull.max.rows'",
                                plan.source.name, max_rows
                            )));
                            return;
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
            }
            done(&tx, false);
        });
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_common::{Column, ColumnRole, DataType, FormatKind, FormatSpec, Schema, SourceDef};
    use sluice_expr::Expr;
    use sluice_storage::{EmbeddedLog, Record, Txn};
    use std::sync::Arc;

    fn stream() -> SourceDef {
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
        let mut rx = engine.scan_stream(plan, max_rows).unwrap();
        let mut out = Vec::new();
        while let Some(ev) = rx.recv().await {
            out.push(ev);
        }
        out
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
        assert!(matches!(&capped[2..], [ScanEvent::Failed(m)] if m.contains("pull row limit")));
    }
}
