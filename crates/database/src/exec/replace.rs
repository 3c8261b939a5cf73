//! `CREATE OR REPLACE STREAM|TABLE v AS SELECT ...` on a running query: the new query is
//! built from the log beside the old one, which keeps serving, and takes over once it has
//! caught up, without a record of output lost or written twice (the engine's side is in
//! `sluice_engine`'s `replace.rs`).
//!
//! The replacement is kept in the catalog (`replace/<sink>`) from the statement on, so a
//! restart resumes it. The swap is one catalog transaction: the sink takes the new
//! definition (new store id, same topic), the new query becomes its writer and the old
//! one's entry goes. A replacement must read the same sources, keep the topic, formats,
//! key and window, and may only add value columns at the end (ksqlDB's rule for query
//! upgrades, so what downstream readers decode keeps its meaning); it may add none while
//! other queries read or write the sink, whose plans hold its old columns.

use super::*;
use sluice_engine::Replaced;
use tracing::Instrument;

/// How long the cut-over may take to bring a replacement the last stretch to where the
/// old query stopped (about a batch per partition) before it is undone and retried.
const CUT_OVER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// What the background swap needs of the executor: it outlives the statement.
struct Swap {
    engine: Arc<Engine>,
    log: Arc<EmbeddedLog>,
    catalog: Arc<RwLock<CatalogState>>,
    ddl: Arc<tokio::sync::Mutex<()>>,
    replacing: Arc<tokio::sync::watch::Sender<usize>>,
}

impl Executor {
    /// Starts replacing the query writing `existing` with the statement's; returns once
    /// the replacement is durable and building. The caller holds the DDL lock.
    pub(super) async fn replace_query(
        &self,
        existing: SourceDef,
        stmt: &Statement,
        properties_in: &std::collections::HashMap<String, String>,
    ) -> Result<Outcome, ExecError> {
        let StatementKind::CreateAs {
            kind, properties, ..
        } = &stmt.kind
        else {
            return Err(ExecError::internal("not a CREATE ... AS SELECT"));
        };
        let what = existing.kind.to_string().to_lowercase();
        if existing.kind != *kind {
            // ksqlDB's words first (its metastore refuses a name of another kind).
            return Err(ExecError::invalid(format!(
                "Cannot add {new} '{name}': A {what} with the same name already exists (a replacement keeps the kind of what it replaces: cannot replace {what} {name} with a {new})",
                new = kind.to_string().to_lowercase(),
                name = existing.name
            )));
        }
        let Some(old_id) = existing.written_by.clone() else {
            return Err(ExecError::invalid(format!(
                "Cannot replace {what} {}: no query writes it (it was declared, or its query was terminated). \
                 CREATE OR REPLACE ... AS SELECT replaces the query that writes a stream or table.",
                existing.name
            )));
        };
        let old = {
            let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
            if let Some(r) = cat.replacements.get(&existing.name) {
                return Err(ExecError::new(
                    ErrorCode::FailedPrecondition,
                    format!(
                        "{} is already being replaced by query {} (SHOW QUERIES shows its progress); TERMINATE {} to cancel that first.",
                        existing.name, r.query.id, r.query.id
                    ),
                ));
            }
            cat.queries.get(&old_id).cloned().ok_or_else(|| {
                ExecError::internal(format!(
                    "query {old_id} writing {} is not in the catalog",
                    existing.name
                ))
            })?
        };
        let mut txn = Txn::new();
        let (mut planned, qdef) = self.plan_create_as(stmt, properties_in, &mut txn)?;
        // The replacement writes where the old query does unless it names a topic.
        if !properties.values.contains_key("KAFKA_TOPIC") {
            planned.sink.topic = existing.topic.clone();
            planned.plan.sink.topic = existing.topic.clone();
        }
        self.check_replaceable(&existing, &old, &planned, &qdef)?;
        let rep = Replacement {
            query: qdef,
            sink: planned.sink.clone(),
            replaces: old_id.clone(),
        };
        txn.put(
            Cf::Catalog,
            format!("replace/{}", existing.name).into_bytes(),
            serde_json::to_vec(&rep).map_err(json_err)?,
        );
        self.log.submit(txn).wait().await?;
        let new_id = rep.query.id.clone();
        {
            let mut cat = self.catalog_write();
            cat.replacements.insert(existing.name.clone(), rep.clone());
            self.replacing.send_replace(cat.replacements.len());
        }
        if let Err(e) = self.spawn_replacement(&rep, planned.plan, old.num) {
            self.engine.register_failed(&new_id, e.to_string());
            return Err(e);
        }
        Ok(Outcome {
            message: format!(
                "Replacing query {old_id} with {new_id}: it builds {} from the log while {old_id} keeps serving, \
                 and takes over once it has caught up (SHOW QUERIES shows its progress).",
                existing.name
            ),
            query_id: new_id,
            ..Outcome::default()
        })
    }

    /// Whether `planned` may replace `old` as the writer of `existing`.
    fn check_replaceable(
        &self,
        existing: &SourceDef,
        old: &QueryDef,
        planned: &sluice_planner::query::PlannedQuery,
        new: &QueryDef,
    ) -> Result<(), ExecError> {
        let what = existing.kind.to_string().to_lowercase();
        let refuse = |why: String| {
            ExecError::invalid(format!(
                "Cannot replace {what} {}: {why}. DROP it and create it again to change that.",
                existing.name
            ))
        };
        if new.sources != old.sources {
            return Err(refuse(format!(
                "the new query reads [{}], the one it replaces ({}) reads [{}]; a replacement reads the same sources",
                new.sources.join(", "),
                old.id,
                old.sources.join(", ")
            )));
        }
        let sink = &planned.sink;
        if sink.topic != existing.topic {
            return Err(refuse(format!(
                "its topic would change from {} to {}",
                existing.topic, sink.topic
            )));
        }
        if let (Some(p), Some(t)) = (planned.partitions, self.log.topic(&existing.topic))
            && p != t.partitions
        {
            return Err(refuse(format!(
                "its topic has {} partitions, the new query asks for {p}",
                t.partitions
            )));
        }
        if sink.key_format != existing.key_format || sink.value_format != existing.value_format {
            return Err(refuse(format!(
                "its formats would change from {}/{} to {}/{}",
                existing.key_format.kind,
                existing.value_format.kind,
                sink.key_format.kind,
                sink.value_format.kind
            )));
        }
        if sink.window != existing.window {
            return Err(refuse("its windowing would change".into()));
        }
        let columns = |cols: &[Column]| {
            cols.iter()
                .map(|c| format!("{} {}", c.name, c.data_type))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // A schema change is refused in ksqlDB's words (DataSource::canUpgradeTo), then ours.
        let schema_refusal = |detail: String, why: String| {
            refuse(format!(
                "Cannot upgrade data source: DataSource '`{}`' has schema = {} which is not upgradeable to {}. ({detail}) {why}",
                existing.name,
                ksql_schema(&existing.schema),
                ksql_schema(&sink.schema)
            ))
        };
        if sink.schema.keys() != existing.schema.keys() {
            return Err(schema_refusal(
                "Key columns must be identical.".into(),
                format!(
                    "its key columns would change from ({}) to ({})",
                    columns(existing.schema.keys()),
                    columns(sink.schema.keys())
                ),
            ));
        }
        let (was, now) = (existing.schema.values(), sink.schema.values());
        if let Some((i, c)) = was
            .iter()
            .enumerate()
            .find(|(i, c)| now.get(*i).is_none_or(|n| n != *c))
        {
            let changed: Vec<String> = was[i..]
                .iter()
                .filter(|c| !now.contains(c))
                .map(|c| format!("`{}` {}", c.name, c.data_type))
                .collect();
            let detail = format!(
                "The following columns are changed, missing or reordered: [{}]",
                if changed.is_empty() {
                    format!("`{}` {}", c.name, c.data_type)
                } else {
                    changed.join(", ")
                }
            );
            return Err(schema_refusal(
                detail,
                match now.get(i) {
                    Some(n) => format!(
                        "its value column {} {} would become {} {}; a replacement keeps every value column and may add new ones after them",
                        c.name, c.data_type, n.name, n.data_type
                    ),
                    None => format!(
                        "its value column {} would be removed; a replacement keeps every value column and may add new ones after them",
                        c.name
                    ),
                },
            ));
        }
        if now.len() > was.len() {
            let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
            let others: Vec<String> = cat
                .queries
                .values()
                .filter(|q| {
                    q.id != old.id
                        && (q.sources.contains(&existing.name) || q.sink == existing.name)
                })
                .map(|q| q.id.clone())
                .collect();
            if !others.is_empty() {
                return Err(refuse(format!(
                    "it would gain columns ({}) while queries [{}] read or write it with its current ones",
                    columns(&now[was.len()..]),
                    others.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Waits until no replacement is being built (each has taken over or was cancelled),
    /// or `timeout` passes; returns whether none is. Scripts that must see the new
    /// definition (the test runner, migrations) wait here after CREATE OR REPLACE.
    pub async fn await_replacements(&self, timeout: std::time::Duration) -> bool {
        let mut rx = self.replacing.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Resumes a stored replacement at start-up (after the query it replaces started).
    pub(super) fn resume_replacement(
        &self,
        r: &Replacement,
        cat: &CatalogState,
    ) -> Result<(), ExecError> {
        let old = cat.queries.get(&r.replaces).ok_or_else(|| {
            ExecError::internal(format!(
                "query {} that {} replaces is not in the catalog",
                r.replaces, r.query.id
            ))
        })?;
        let plan = recovery::replan_into(&r.query, Some(&r.sink), cat)?;
        sluice_engine::state_compatible(&plan, r.query.state_version)?;
        tracing::info!(query = %r.query.id, replaces = %r.replaces, "resuming replacement");
        self.spawn_replacement(r, plan, old.num)
    }

    /// Starts building a replacement and the task that swaps it in once it has caught up.
    fn spawn_replacement(
        &self,
        r: &Replacement,
        plan: QueryPlan,
        old_num: u64,
    ) -> Result<(), ExecError> {
        let old = Replaced {
            id: r.replaces.clone(),
            num: old_num,
        };
        self.engine
            .start_replacement(plan.clone(), r.query.state_layout, &old)?;
        let swap = Swap {
            engine: self.engine.clone(),
            log: self.log.clone(),
            catalog: self.catalog.clone(),
            ddl: self.ddl.clone(),
            replacing: self.replacing.clone(),
        };
        let span = tracing::info_span!("replace", query = %r.query.id, replaces = %r.replaces);
        tokio::spawn(
            swap.run(r.sink.name.clone(), r.query.id.clone(), old, plan)
                .instrument(span),
        );
        Ok(())
    }

    /// Cancels the replacement of `sink`: its query stops, the one it would have replaced
    /// goes on. The caller holds the DDL lock.
    pub(super) async fn cancel_replacement(&self, sink: &str) -> Result<(), ExecError> {
        let Some(r) = self
            .catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .replacements
            .get(sink)
            .cloned()
        else {
            return Ok(());
        };
        self.engine.stop_query(&r.query.id).await;
        let mut txn = Txn::new();
        txn.delete(Cf::Catalog, format!("replace/{sink}").into_bytes());
        self.log.submit(txn).wait().await?;
        {
            let mut cat = self.catalog_write();
            cat.replacements.remove(sink);
            self.replacing.send_replace(cat.replacements.len());
        }
        Ok(())
    }
}

impl Swap {
    /// Waits for the replacement to catch up, then swaps it in. Ends quietly when the
    /// replacement is cancelled or the server stops.
    async fn run(self, sink: String, id: String, old: Replaced, plan: QueryPlan) {
        loop {
            if let Err(e) = self.engine.await_replacement_near(&id).await {
                tracing::debug!("replacement stopped before taking over: {e}");
                return;
            }
            let _guard = self.ddl.lock().await;
            let current = self
                .catalog
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .replacements
                .get(&sink)
                .filter(|r| r.query.id == id)
                .cloned();
            let Some(rep) = current else {
                return;
            };
            match self.take_over(&rep, &old, &plan).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!("replacement could not take over, retrying: {e}");
                    if let Err(e) = self.restore(&rep, &old, &plan).await {
                        tracing::error!("replacement stopped: {e}");
                        self.engine.register_failed(&id, e.to_string());
                        return;
                    }
                }
            }
            drop(_guard);
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    /// Stops the old query, brings the replacement to exactly where it stopped, makes the
    /// swap durable and only then lets the replacement emit.
    async fn take_over(
        &self,
        rep: &Replacement,
        old: &Replaced,
        plan: &QueryPlan,
    ) -> Result<(), ExecError> {
        // Bounded: the DDL lock is held meanwhile, and a replacement that cannot catch up
        // the last stretch (its commits failing, say) must not hold it forever.
        let at = tokio::time::timeout(
            CUT_OVER_TIMEOUT,
            self.engine.cut_over(&rep.query.id, old, plan),
        )
        .await
        .map_err(|_| {
            ExecError::internal(format!(
                "{} did not reach where {} stopped within {CUT_OVER_TIMEOUT:?}",
                rep.query.id, old.id
            ))
        })??;
        let mut txn = Txn::new();
        txn.put(
            Cf::Catalog,
            format!("source/{}", rep.sink.name).into_bytes(),
            serde_json::to_vec(&rep.sink).map_err(json_err)?,
        );
        txn.delete(Cf::Catalog, format!("query/{}", old.id).into_bytes());
        txn.put(
            Cf::Catalog,
            format!("query/{}", rep.query.id).into_bytes(),
            serde_json::to_vec(&rep.query).map_err(json_err)?,
        );
        txn.delete(
            Cf::Catalog,
            format!("replace/{}", rep.sink.name).into_bytes(),
        );
        self.log.submit(txn).wait().await?;
        {
            let mut cat = write_catalog(&self.catalog);
            cat.sources.insert(rep.sink.name.clone(), rep.sink.clone());
            cat.queries.remove(&old.id);
            cat.queries.insert(rep.query.id.clone(), rep.query.clone());
            cat.replacements.remove(&rep.sink.name);
            self.replacing.send_replace(cat.replacements.len());
        }
        self.engine.go_live(&rep.query.id)?;
        tracing::info!(positions = ?at, "replacement took over");
        Ok(())
    }

    /// After a failed take-over: the old query runs again from where it stopped and the
    /// replacement follows it afresh.
    async fn restore(
        &self,
        rep: &Replacement,
        old: &Replaced,
        plan: &QueryPlan,
    ) -> Result<(), ExecError> {
        self.engine.stop_query(&rep.query.id).await;
        let old_plan = {
            let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
            let q = cat
                .queries
                .get(&old.id)
                .ok_or_else(|| ExecError::internal(format!("query {} is gone", old.id)))?;
            (replan(q, &cat)?, q.state_layout)
        };
        if self.engine.status(&old.id).is_none() {
            self.engine.start_stored_query(old_plan.0, old_plan.1)?;
        }
        self.engine
            .start_replacement(plan.clone(), rep.query.state_layout, old)?;
        Ok(())
    }
}

/// A schema as ksqlDB's errors write it: "`ID` STRING KEY, `N` BIGINT".
fn ksql_schema(schema: &Schema) -> String {
    let keys = schema
        .keys()
        .iter()
        .map(|c| format!("`{}` {} KEY", c.name, c.data_type));
    let values = schema
        .values()
        .iter()
        .map(|c| format!("`{}` {}", c.name, c.data_type));
    keys.chain(values).collect::<Vec<_>>().join(", ")
}
