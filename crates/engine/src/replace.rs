//! Replacing a running persistent query without losing or repeating output
//! (`CREATE OR REPLACE ... AS SELECT`).
//!
//! The replacement runs beside the query it replaces as a *shadow*: it reads the same
//! inputs from the start of the log, builds its own state and store (under its own ids),
//! and appends nothing to the sink topic, which the old query goes on writing. It never
//! reads an input partition past the position the old query has committed there, so it
//! can never have consumed a record whose output the old query has not written.
//!
//! Once it is close behind, the cut-over stops the old query, whose committed positions
//! `P` are then final, bounds the shadow at exactly `P` and waits for it to get there.
//! The topic then holds the old query's output for every record before `P` and nothing
//! for any record after; the caller makes the swap durable (the catalog names the new
//! query as the writer) and only then sends the shadow live, so it emits from `P` on.
//! A crash before the swap is durable restarts the old query from `P` and the shadow from
//! its own positions; a crash after it starts the new query live from `P`.

use crate::query::{BATCH, Mode, committed_positions, plan_inputs};
use crate::{Engine, EngineError, Result};
use sluice_common::StateLayoutKind;
use sluice_plan::QueryPlan;
use sluice_storage::{Log, Topic};
use std::sync::Arc;
use tokio::sync::watch;

type Shadow = (watch::Receiver<Vec<u64>>, Arc<watch::Sender<Mode>>);

/// The query a replacement takes over from: its id in SHOW QUERIES and the number its
/// committed offsets are kept under.
#[derive(Debug, Clone)]
pub struct Replaced {
    pub id: String,
    pub num: u64,
}

impl Engine {
    /// Starts `plan` as the shadow replacement of `old`, which reads the same inputs (the
    /// caller checks that). It resumes from its own committed positions (the start of the
    /// log on first start) and follows `old`'s committed positions while `old` runs.
    pub fn start_replacement(
        &self,
        plan: QueryPlan,
        layout: Option<StateLayoutKind>,
        old: &Replaced,
    ) -> Result<()> {
        let following = self
            .queries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&old.id)
            .map(|r| r.positions.clone());
        // A running query's positions are at least its committed ones; a query that is
        // not running (it failed to start) stays where it committed.
        let cap = match &following {
            Some(rx) => rx.borrow().clone(),
            None => self.stored_positions(&plan, old)?,
        };
        let id = plan.id.clone();
        self.start_in_mode(plan, layout, Mode::Shadow(cap))?;
        let Some(mut old_positions) = following else {
            return Ok(());
        };
        let Some(mode) = self.mode_of(&id) else {
            return Ok(());
        };
        tokio::spawn(async move {
            // Ends when the old query stops (its positions' sender goes) or the shadow
            // does (nobody reads the mode any more).
            while !mode.is_closed() && old_positions.changed().await.is_ok() {
                let at = old_positions.borrow_and_update().clone();
                mode.send_if_modified(|m| raise(m, &at));
            }
        });
        Ok(())
    }

    /// Waits until the replacement `id` is close behind the query it replaces: within a
    /// batch per input partition, so that stopping the old query for the cut-over pauses
    /// its output for about one batch.
    pub async fn await_replacement_near(&self, id: &str) -> Result<()> {
        let (mut positions, mode) = self.shadow_of(id)?;
        let mut mode = mode.subscribe();
        loop {
            let (behind, within) = match &*mode.borrow_and_update() {
                Mode::Live => return Ok(()),
                Mode::Shadow(cap) => (
                    behind(cap, &positions.borrow_and_update()),
                    (BATCH * cap.len().max(1)) as u64,
                ),
            };
            if behind <= within {
                return Ok(());
            }
            tokio::select! {
                r = positions.changed() => r.map_err(|_| stopped(id))?,
                r = mode.changed() => r.map_err(|_| stopped(id))?,
            }
        }
    }

    /// Stops `old` and brings the replacement `id` to exactly where `old` stopped; returns
    /// those positions. The replacement stays a shadow until [`Engine::go_live`].
    pub async fn cut_over(&self, id: &str, old: &Replaced, plan: &QueryPlan) -> Result<Vec<u64>> {
        let (mut positions, mode) = self.shadow_of(id)?;
        self.stop_query(&old.id).await;
        let last = self.stored_positions(plan, old)?;
        mode.send_replace(Mode::Shadow(last.clone()));
        let reached = positions
            .wait_for(|at| at.iter().zip(&last).all(|(a, l)| a >= l))
            .await
            .map_err(|_| stopped(id))?
            .clone();
        if reached != last {
            return Err(EngineError::Invalid(format!(
                "replacement {id} read past the positions {last:?} of {}: {reached:?}",
                old.id
            )));
        }
        Ok(last)
    }

    /// Lets a replacement emit: the swap to it is durable.
    pub fn go_live(&self, id: &str) -> Result<()> {
        let mode = self.mode_of(id).ok_or_else(|| stopped(id))?;
        mode.send_replace(Mode::Live);
        Ok(())
    }

    /// Whether query `id` is running as a replacement still being built.
    pub fn is_shadow(&self, id: &str) -> bool {
        self.mode_of(id)
            .is_some_and(|m| matches!(*m.borrow(), Mode::Shadow(_)))
    }

    /// `old`'s committed positions over `plan`'s inputs (the same as `old`'s).
    fn stored_positions(&self, plan: &QueryPlan, old: &Replaced) -> Result<Vec<u64>> {
        let mut topics: Vec<(u8, u32, Arc<Topic>)> = Vec::new();
        for (def, tag, base) in plan_inputs(plan) {
            let topic = self.log().topic(&def.topic).ok_or_else(|| {
                EngineError::Invalid(format!(
                    "topic {} of {} does not exist",
                    def.topic, def.name
                ))
            })?;
            topics.push((tag, base, topic));
        }
        let kept: Vec<(u8, u32, &Topic)> = topics.iter().map(|(t, b, x)| (*t, *b, &**x)).collect();
        committed_positions(self.log(), &kept, old.num, &old.id)
    }

    fn mode_of(&self, id: &str) -> Option<Arc<watch::Sender<Mode>>> {
        self.queries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|r| r.mode.clone())
    }

    /// A running replacement's committed positions and mode.
    fn shadow_of(&self, id: &str) -> Result<Shadow> {
        self.queries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|r| (r.positions.clone(), r.mode.clone()))
            .ok_or_else(|| stopped(id))
    }
}

/// Raises a shadow's bound to positions the query it follows has committed; never lowers
/// it (a late forward of older positions must not undo the cut-over's final bound).
fn raise(mode: &mut Mode, at: &[u64]) -> bool {
    let Mode::Shadow(cap) = mode else {
        return false;
    };
    let mut changed = false;
    for (c, a) in cap.iter_mut().zip(at) {
        if a > c {
            *c = *a;
            changed = true;
        }
    }
    changed
}

/// Records a shadow at `at` still has to read to reach its bound `cap`.
pub(crate) fn behind(cap: &[u64], at: &[u64]) -> u64 {
    cap.iter().zip(at).map(|(c, a)| c.saturating_sub(*a)).sum()
}

fn stopped(id: &str) -> EngineError {
    EngineError::Invalid(format!("replacement query {id} is not running"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::tests::{append, source, wait_processed};
    use sluice_plan::Operator;
    use sluice_storage::{EmbeddedLog, Log};

    fn copy(id: &str, num: u64, sink_id: u64) -> QueryPlan {
        QueryPlan {
            id: id.into(),
            num,
            source: source(1, "INPUT", "input"),
            sink: source(sink_id, "OUT", "out"),
            op: Operator::Select {
                filter: None,
                projection: vec![sluice_expr::Expr::Column(0), sluice_expr::Expr::Column(1)],
                table_functions: Vec::new(),
            },
            join: None,
        }
    }

    fn sink_values(log: &EmbeddedLog) -> Vec<String> {
        let out = log.topic("out").unwrap();
        log.read(&out, 0, 0, 100)
            .unwrap()
            .iter()
            .map(|r| {
                let v: serde_json::Value =
                    serde_json::from_slice(r.record.value.as_deref().unwrap()).unwrap();
                v["V"].as_str().unwrap().to_string()
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shadow_follows_silently_and_takes_over_where_the_old_query_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
        let input = log.create_topic("input", 1).unwrap();
        log.create_topic("out", 1).unwrap();
        let engine = Engine::new(log.clone()).unwrap();
        engine.start_query(copy("OLD", 2, 3)).unwrap();
        append(&log, &input, &["a", "b", "c"]).await;
        wait_processed(&engine, "OLD", 3).await;
        let old = Replaced {
            id: "OLD".into(),
            num: 2,
        };
        let plan = copy("NEW", 5, 4);
        engine.start_replacement(plan.clone(), None, &old).unwrap();
        // It follows the old query as it goes on, writing nothing.
        append(&log, &input, &["d", "e"]).await;
        let st = wait_processed(&engine, "NEW", 5).await;
        assert_eq!(st.processed, 5, "{st:?}");
        assert!(engine.is_shadow("NEW"));
        assert!(st.state.starts_with("CATCHING UP ("), "{st:?}");
        engine.await_replacement_near("NEW").await.unwrap();
        // Records after the cut go to the new query only once it is live.
        let at = engine.cut_over("NEW", &old, &plan).await.unwrap();
        assert_eq!(at, vec![5]);
        assert!(engine.status("OLD").is_none(), "the old query is stopped");
        append(&log, &input, &["f", "g"]).await;
        engine.go_live("NEW").unwrap();
        let st = wait_processed(&engine, "NEW", 7).await;
        assert_eq!(st.state, "RUNNING", "{st:?}");
        assert_eq!(sink_values(&log), ["a", "b", "c", "d", "e", "f", "g"]);
        engine.shutdown().await;
    }
}
