//! Pull queries: reads of a table's current state from its store.

use crate::keys::{table_key, table_prefix};
use crate::plan::{PullAccess, PullPlan};
use crate::query::Engine;
use crate::{EngineError, Result};
use sluice_common::Value;
use sluice_common::codec::decode_row;
use sluice_common::keycodec::encode_key_value;
use sluice_storage::{Cf, prefix_end};

impl Engine {
    /// Runs a pull query. Errors if more than `max_rows` rows would be returned.
    pub fn pull(&self, plan: &PullPlan) -> Result<Vec<Vec<Value>>> {
        self.pull_with(plan, &plan.access)
    }

    /// Runs a pull query through `access` instead of the plan's own (a prepared query's
    /// key lookup).
    pub fn pull_with(&self, plan: &PullPlan, access: &PullAccess) -> Result<Vec<Vec<Value>>> {
        let id = plan.table.id;
        let stored: Vec<Vec<u8>> = match access {
            PullAccess::Keys(keys) => {
                let mut out = Vec::new();
                for k in keys {
                    if let Some(v) = self.log().get(Cf::State, &table_key(id, k))? {
                        out.push(v);
                    }
                }
                out
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
                let to = to.unwrap_or_else(|| vec![0xff; prefix.len() + 1]);
                self.log()
                    .scan(Cf::State, &from, &to, usize::MAX)?
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect()
            }
            PullAccess::Scan => {
                let prefix = table_prefix(id);
                let to = prefix_end(&prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 1]);
                self.log()
                    .scan(Cf::State, &prefix, &to, usize::MAX)?
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect()
            }
        };
        let mut rows = Vec::new();
        for bytes in stored {
            let row = decode_row(&bytes).map_err(|e| EngineError::Invalid(e.to_string()))?;
            if !plan.filter.as_ref().is_none_or(|f| f.test(&row)) {
                continue;
            }
            if plan.limit.is_some_and(|l| rows.len() as u64 >= l) {
                break;
            }
            if rows.len() as u64 >= plan.max_rows {
                return Err(EngineError::Invalid(format!(
                    "Pull query on {} would return more than {} rows (the pull row limit); add a LIMIT or a narrower WHERE clause, or raise 'sluice.pull.max.rows'",
                    plan.table.name, plan.max_rows
                )));
            }
            rows.push(plan.projection.iter().map(|e| e.eval(&row)).collect());
        }
        Ok(rows)
    }
}
