//! Read-your-writes: a pull query that carries a log position (the token an insert was
//! acknowledged with) waits until what it reads reflects that position.
//!
//! A view reflects an append once the query maintaining it has consumed its input topics
//! at least up to where they ended when the append was acknowledged. Queries commit their
//! output, state and consumed offsets in one transaction, so a consumed offset is a
//! precise watermark: once it passes an end offset, the view and the query's output topic
//! hold everything derived from the records before it. Views over views are handled by
//! settling the writers of a query's input topics first (upstream before downstream): an
//! input's end offset is captured only once every query appending to it has caught up, so
//! it covers what they derived from the position.
//!
//! The end offsets are read when the wait starts, not looked up for the exact position:
//! that is at least the position (acknowledged appends are already in them), costs no
//! search of the log, and under a steady load adds at most the worker's current lag.

use std::collections::HashSet;
use std::time::Duration;

use sluice_common::{SourceDef, SourceKind};

use crate::query::{Watched, WorkerRef};
use crate::{Engine, EngineError, Result};

impl Engine {
    /// Waits until a pull query on `source` sees everything the log held at `position`:
    /// the query or materializer that keeps `source` (a table), or every query appending
    /// to its topic (a stream), has consumed its inputs that far, upstream queries first.
    /// Fails with [`EngineError::PositionAhead`] for a position the log has not reached,
    /// and [`EngineError::NotCaughtUp`] when `timeout` passes first.
    pub async fn await_position(
        &self,
        source: &SourceDef,
        position: u64,
        timeout: Duration,
    ) -> Result<()> {
        let next = self.log().next_seq();
        if position >= next {
            return Err(EngineError::PositionAhead {
                position,
                committed: next.saturating_sub(1),
            });
        }
        let start = match (&source.kind, &source.written_by) {
            (SourceKind::Stream, _) => None,
            (SourceKind::Table, Some(q)) => Some(WorkerRef::Query(q)),
            (SourceKind::Table, None) => Some(WorkerRef::Materializer(source.id)),
        };
        let wanted_worker = start.is_some();
        let (workers, start) = self.watched(start);
        let roots: Vec<usize> = match start {
            Some(i) => vec![i],
            None if wanted_worker => {
                return Err(EngineError::Invalid(format!(
                    "{} is not being kept current (its query is not running), so it cannot show position {position}; see SHOW QUERIES",
                    source.name
                )));
            }
            None => writers(&workers, &source.topic),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        for i in settle_order(&workers, &roots) {
            let w = &workers[i];
            let ends: Vec<u64> = w
                .sources
                .iter()
                .flat_map(|t| (0..t.partitions).map(move |p| t.end_offset(p)))
                .collect();
            let mut rx = w.positions.clone();
            let caught_up = |at: &Vec<u64>| at.iter().zip(&ends).all(|(a, e)| a >= e);
            let waited = tokio::time::timeout_at(deadline, async {
                rx.wait_for(caught_up).await.map(|_| ())
            })
            .await;
            match waited {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    return Err(EngineError::NotCaughtUp(format!(
                        "query {} stopped before it reached position {position}",
                        w.label
                    )));
                }
                Err(_) => {
                    let at = w.positions.borrow();
                    let lag: u64 = ends
                        .iter()
                        .zip(at.iter())
                        .map(|(e, a)| e.saturating_sub(*a))
                        .sum();
                    let why = match &w.failed {
                        Some(f) => format!("; it is failing: {f}"),
                        None => String::new(),
                    };
                    return Err(EngineError::NotCaughtUp(format!(
                        "{} has not caught up to position {position} within {} ms: query {} is {lag} record(s) behind{why}. Retry, or allow longer with 'sluice.pull.wait.timeout.ms'",
                        source.name,
                        timeout.as_millis(),
                        w.label
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The workers appending to `topic`.
fn writers(workers: &[Watched], topic: &str) -> Vec<usize> {
    (0..workers.len())
        .filter(|&i| workers[i].sink.as_deref() == Some(topic))
        .collect()
}

/// `roots` and, transitively, the writers of their input topics, upstream first: each
/// worker comes after every writer of each of its inputs (a cycle, which the catalog does
/// not allow, would be cut where it closes).
fn settle_order(workers: &[Watched], roots: &[usize]) -> Vec<usize> {
    fn visit(i: usize, workers: &[Watched], seen: &mut HashSet<usize>, out: &mut Vec<usize>) {
        if !seen.insert(i) {
            return;
        }
        for topic in &workers[i].sources {
            for j in writers(workers, &topic.name) {
                visit(j, workers, seen, out);
            }
        }
        out.push(i);
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for &r in roots {
        visit(r, workers, &mut seen, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_storage::{EmbeddedLog, Log, Topic};
    use std::sync::Arc;
    use tokio::sync::watch;

    fn worker(name: &str, sink: Option<&str>, sources: &[&Arc<Topic>]) -> Watched {
        Watched {
            label: name.into(),
            sink: sink.map(str::to_string),
            sources: sources.iter().map(|t| (*t).clone()).collect(),
            positions: watch::channel(Vec::new()).1,
            failed: None,
        }
    }

    #[test]
    fn upstream_writers_settle_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let [s, a, b, other] = ["s", "a", "b", "other"].map(|n| log.create_topic(n, 1).unwrap());
        // s -> A -> a; a and s -> B -> b; other -> C -> a (a second writer of a).
        let workers = vec![
            worker("B", Some("b"), &[&a, &s]),
            worker("A", Some("a"), &[&s]),
            worker("C", Some("a"), &[&other]),
            worker("D", Some("d"), &[&b]),
        ];
        assert_eq!(settle_order(&workers, &[0]), [1, 2, 0]);
        assert_eq!(settle_order(&workers, &[3]), [1, 2, 0, 3]);
        assert_eq!(writers(&workers, "a"), [1, 2]);
        // A cycle is cut, not followed forever.
        let x = log.create_topic("x", 1).unwrap();
        let cyclic = vec![
            worker("X", Some("x"), &[&a]),
            worker("Y", Some("a"), &[&other]),
            worker("Z", Some("other"), &[&x]),
        ];
        assert_eq!(settle_order(&cyclic, &[0]), [2, 1, 0]);
    }
}
