//! Start-up recovery: every stored persistent query is re-planned from its SQL text with
//! the properties, types and state layout it was created with, and resumed from its
//! committed offsets; one that cannot be is listed in ERROR, never stops the start.

use super::*;

impl Executor {
    /// Starts every materializer and persistent query. One that fails to start (its stored
    /// statement no longer plans, its state cannot be read) is listed in ERROR with the
    /// reason; it never stops the others or the server.
    pub(super) fn restart_all(&self) {
        let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
        for def in cat.sources.values() {
            if def.kind == SourceKind::Table
                && def.written_by.is_none()
                && let Err(e) = self.engine.start_materializer(def.clone())
            {
                tracing::error!(table = %def.name, "table materializer not started: {e}");
            }
        }
        for q in cat.queries.values() {
            let started = replan(q, &cat).and_then(|plan| {
                sluice_engine::state_compatible(&plan, q.state_version)?;
                tracing::info!(query = %q.id, "resuming persistent query");
                Ok(self.engine.start_stored_query(plan, q.state_layout)?)
            });
            if let Err(e) = started {
                self.engine.register_failed(&q.id, e.to_string());
            }
        }
        self.replacing.send_replace(cat.replacements.len());
        for r in cat.replacements.values() {
            if let Err(e) = self.resume_replacement(r, &cat) {
                self.engine.register_failed(&r.query.id, e.to_string());
            }
        }
    }
}

/// Re-plans a stored persistent query against the catalog (at startup and for EXPLAIN).
pub(super) fn replan(q: &QueryDef, cat: &CatalogState) -> Result<QueryPlan, ExecError> {
    replan_into(q, cat.sources.get(&q.sink), cat)
}

/// Re-plans a stored persistent query writing `sink` (a replacement's sink is not yet the
/// catalog's).
pub(super) fn replan_into(
    q: &QueryDef,
    sink: Option<&SourceDef>,
    cat: &CatalogState,
) -> Result<QueryPlan, ExecError> {
    // The types the statement resolved when it was created, not whatever the names mean
    // now (older entries did not record them and see the current types).
    let types = q.types.as_ref().unwrap_or(&cat.types);
    let stmts = sluice_sql::with_type_aliases(types, || sluice_sql::parse(&q.sql))?;
    let properties: std::collections::HashMap<String, String> = q
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let cfg = sluice_planner::SessionConfig::from_properties(&properties);
    let Some(stmt) = stmts.first() else {
        return Err(ExecError::internal(format!(
            "stored query {} has no statement",
            q.id
        )));
    };
    match &stmt.kind {
        StatementKind::CreateAs {
            kind,
            name,
            properties,
            query,
            ..
        } => {
            let sink = sink.ok_or_else(|| {
                ExecError::internal(format!("sink {} of query {} is missing", q.sink, q.id))
            })?;
            let ids = NewIds {
                sink_id: sink.id,
                query_num: q.num,
                query_id: q.id.clone(),
            };
            let planned =
                plan_create_as(ids, *kind, name, properties, query, cat, &stmt.text, &cfg)?;
            if planned.sink.schema != sink.schema {
                return Err(ExecError::internal(format!(
                    "query {} no longer produces the schema of {}",
                    q.id, sink.name
                )));
            }
            // The stored sink is the truth (topic and formats may have been defaulted then).
            Ok(QueryPlan {
                sink: sink.clone(),
                ..planned.plan
            })
        }
        StatementKind::InsertSelect { query, .. } => {
            let sink = sink.ok_or_else(|| {
                ExecError::internal(format!("sink {} of query {} is missing", q.sink, q.id))
            })?;
            let ids = NewIds {
                sink_id: sink.id,
                query_num: q.num,
                query_id: q.id.clone(),
            };
            Ok(plan_insert_select(ids, sink, query, cat, &cfg)?)
        }
        _ => Err(ExecError::internal(format!(
            "stored query {} is not a persistent query",
            q.id
        ))),
    }
}
