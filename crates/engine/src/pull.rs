//! Pull queries: reads of a table's current state from its store.

use crate::budget::PullBudget;
use crate::changelog;
use crate::keys::{table_key, table_prefix};
use crate::query::Engine;
use crate::{EngineError, Result};
use sluice_common::Value;
use sluice_common::codec::decode_row;
use sluice_common::keycodec::encode_key_value;
use sluice_plan::{PullAccess, PullPlan};
use sluice_storage::{Cf, prefix_end};
use std::sync::atomic::Ordering;

impl Engine {
    /// Runs a pull query. Errors once it passes one of the plan's limits (rows, bytes,
    /// time).
    pub fn pull(&self, plan: &PullPlan) -> Result<Vec<Vec<Value>>> {
        self.pull_with(plan, &plan.access)
    }

    /// Runs a pull query through `access` instead of the plan's own (a prepared query's
    /// key lookup).
    pub fn pull_with(&self, plan: &PullPlan, access: &PullAccess) -> Result<Vec<Vec<Value>>> {
        let id = plan.table.id;
        // The table's rows as its writer last committed them: the changes since its last
        // checkpoint, over RocksDB. Held for the read, so that a checkpoint moving the
        // changes into RocksDB waits for it instead of hiding them from it.
        let overlay = self.overlay_of(id);
        let _scan = overlay.as_ref().map(|o| o.scan_guard());
        let overlay = overlay.as_deref();
        let mut rows = Vec::new();
        let mut budget = PullBudget::new(plan.limits, &plan.table.name);
        // Each stored row is filtered and projected as it is read, and reading stops at the
        // LIMIT or at the first limit passed: a scan never loads more of the table than it
        // needs.
        let mut take = |bytes: &[u8]| -> Result<bool> {
            self.pull_rows_read.fetch_add(1, Ordering::Relaxed);
            budget.read()?;
            let row = decode_row(bytes).map_err(|e| EngineError::Invalid(e.to_string()))?;
            if row.get(plan.table.schema.len() + 1) == Some(&crate::operator::HIDDEN_ROW) {
                return Ok(true);
            }
            if !plan.filter.as_ref().is_none_or(|f| f.test(&row)) {
                return Ok(true);
            }
            if plan.limit.is_some_and(|l| rows.len() as u64 >= l) {
                return Ok(false);
            }
            let out: Vec<Value> = plan.projection.iter().map(|e| e.eval(&row)).collect();
            budget.charge(&out)?;
            rows.push(out);
            Ok(plan.limit.is_none_or(|l| (rows.len() as u64) < l))
        };
        let (from, to) = match access {
            // A windowed table has a row per key and window, the window's bounds after
            // the key: a key's rows are a range, in window order.
            PullAccess::Keys(keys) if plan.table.window.is_some() => {
                for k in keys {
                    let from = table_key(id, k);
                    let to = prefix_end(&from).unwrap_or_else(|| vec![0xff; from.len() + 1]);
                    let more =
                        changelog::try_visit_range(self.log(), overlay, &from, &to, |_, v| {
                            take(v)
                        })?;
                    if !more {
                        break;
                    }
                }
                return Ok(rows);
            }
            PullAccess::Keys(keys) => {
                for k in keys {
                    let key = table_key(id, k);
                    let stored = match overlay.and_then(|o| o.with(&key, |v| v.map(<[u8]>::to_vec)))
                    {
                        Some(v) => v,
                        None => self.log().get(Cf::State, &key)?,
                    };
                    if let Some(v) = stored
                        && !take(&v)?
                    {
                        break;
                    }
                }
                return Ok(rows);
            }
            PullAccess::Range { lower, upper } => {
                let prefix = table_prefix(id);
                let from = match lower {
                    Some((v, _)) => {
                        let mut k = prefix.clone();
                        encode_key_value(v, &mut k);
                        k
                    }
                    None => prefix.clone(),
                };
                // Bounds are inclusive here; the filter applies strictness.
                let to = match upper {
                    Some((v, _)) => {
                        let mut k = prefix.clone();
                        encode_key_value(v, &mut k);
                        prefix_end(&k)
                    }
                    None => prefix_end(&prefix),
                };
                (from, to.unwrap_or_else(|| vec![0xff; prefix.len() + 1]))
            }
            PullAccess::Scan => {
                let prefix = table_prefix(id);
                let to = prefix_end(&prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 1]);
                (prefix, to)
            }
        };
        changelog::try_visit_range(self.log(), overlay, &from, &to, |_, v| take(v))?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_common::codec::encode_row_vec;
    use sluice_common::{
        Column, ColumnRole, DataType, FormatKind, FormatSpec, Schema, SourceDef, SourceKind,
    };
    use sluice_storage::{EmbeddedLog, Log, Txn};
    use std::sync::Arc;

    fn table() -> SourceDef {
        let col = |n: &str, t: DataType, role: ColumnRole| Column {
            name: n.into(),
            data_type: t,
            role,
        };
        SourceDef {
            id: 7,
            name: "T".into(),
            kind: SourceKind::Table,
            schema: Schema::new(vec![
                col("ID", DataType::Int, ColumnRole::Key),
                col("V", DataType::Int, ColumnRole::Value),
            ]),
            topic: "t".into(),
            key_format: FormatSpec::new(FormatKind::Kafka),
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

    /// Scans and ranges stop reading at the LIMIT, or one row past the row cap: they
    /// used to read the whole table before checking either.
    #[tokio::test]
    async fn scans_stop_at_the_limit_the_row_cap_and_the_byte_cap() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
        let engine = Engine::new(log.clone()).unwrap();
        let def = table();
        let mut txn = Txn::new();
        for i in 0..1000 {
            let row = vec![
                Value::Int(i),
                Value::Int(i),
                Value::BigInt(0),
                Value::Null,
                Value::Null,
            ];
            txn.put(
                Cf::State,
                table_key(def.id, &[Value::Int(i)]),
                encode_row_vec(&row),
            );
        }
        log.submit(txn).wait().await.unwrap();
        let plan = |access: PullAccess, limit: Option<u64>, max_rows: u64| PullPlan {
            table: def.clone(),
            access,
            filter: None,
            projection: vec![sluice_expr::Expr::Column(0)],
            limit,
            limits: sluice_plan::PullLimits {
                max_rows,
                ..sluice_plan::PullLimits::default()
            },
        };
        let read = |p: &PullPlan| {
            let before = engine.pull_rows_read();
            let result = engine.pull(p);
            (result, engine.pull_rows_read() - before)
        };
        let (rows, n) = read(&plan(PullAccess::Scan, Some(5), 100));
        assert_eq!(rows.unwrap().len(), 5);
        assert_eq!(n, 5);
        let (rows, n) = read(&plan(PullAccess::Scan, None, 10));
        assert!(rows.unwrap_err().to_string().contains("more than 10 rows"));
        assert_eq!(n, 11);
        let range = PullAccess::Range {
            lower: Some((Value::Int(100), true)),
            upper: None,
        };
        let (rows, n) = read(&plan(range, None, 10));
        assert!(rows.is_err());
        assert_eq!(n, 11);
        let (rows, _) = read(&plan(PullAccess::Scan, None, 1000));
        assert_eq!(rows.unwrap().len(), 1000);
        // The byte cap stops the scan the same way: an INT is counted as 16 bytes.
        let mut bytes = plan(PullAccess::Scan, None, 1000);
        bytes.limits.max_bytes = 160;
        let (rows, n) = read(&bytes);
        let e = rows.unwrap_err();
        assert!(matches!(e, EngineError::LimitExceeded(_)), "{e}");
        assert!(e.to_string().contains("more than 160 bytes"), "{e}");
        assert_eq!(n, 11);
    }
}
