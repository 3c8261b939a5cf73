//! SHOW, DESCRIBE, DESCRIBE FUNCTION and EXPLAIN: what the catalog and the engine say
//! about the database, as ksqlDB's result tables.

use super::*;

impl Executor {
    pub(super) fn show(&self, what: &ShowWhat) -> Outcome {
        let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
        let cols = |names: &[&str]| {
            names
                .iter()
                .map(|n| (n.to_string(), "STRING".to_string()))
                .collect::<Vec<_>>()
        };
        let s = |x: &str| Value::String(x.to_string());
        match what {
            ShowWhat::Streams | ShowWhat::Tables => {
                let kind = if *what == ShowWhat::Streams {
                    SourceKind::Stream
                } else {
                    SourceKind::Table
                };
                let rows = cat
                    .sources
                    .values()
                    .filter(|d| d.kind == kind)
                    .map(|d| {
                        vec![
                            s(&d.name),
                            s(&d.topic),
                            s(&d.key_format.kind.to_string()),
                            s(&d.value_format.kind.to_string()),
                        ]
                    })
                    .collect();
                let label = if kind == SourceKind::Stream {
                    "Stream Name"
                } else {
                    "Table Name"
                };
                Outcome {
                    columns: cols(&[label, "Kafka Topic", "Key Format", "Value Format"]),
                    rows,
                    ..Outcome::default()
                }
            }
            ShowWhat::Queries => {
                let statuses: BTreeMap<String, sluice_engine::QueryStatus> = self
                    .engine
                    .statuses()
                    .into_iter()
                    .map(|q| (q.id.clone(), q))
                    .collect();
                // A replacement being built is listed beside the query it replaces.
                let replacing: BTreeMap<&str, &str> = cat
                    .replacements
                    .values()
                    .map(|r| (r.query.id.as_str(), r.replaces.as_str()))
                    .collect();
                let mut rows: Vec<Vec<Value>> = cat
                    .queries
                    .values()
                    .chain(cat.replacements.values().map(|r| &r.query))
                    .map(|q| {
                        let st = statuses.get(&q.id);
                        let mut state = st.map_or("STOPPED".to_string(), |x| x.state.clone());
                        if let Some(old) = replacing.get(q.id.as_str())
                            && let Some(rest) = state.strip_prefix("CATCHING UP")
                        {
                            state = format!("CATCHING UP to replace {old}{rest}");
                        }
                        vec![
                            s(&q.id),
                            s(&state),
                            s(&q.sink),
                            s(&cat
                                .sources
                                .get(&q.sink)
                                .map(|d| d.topic.clone())
                                .unwrap_or_default()),
                            Value::BigInt(st.map_or(0, |x| x.processed as i64)),
                            Value::BigInt(st.map_or(0, |x| x.lag as i64)),
                            Value::BigInt(st.map_or(0, |x| x.errors as i64)),
                            Value::BigInt(st.map_or(0, |x| x.late as i64)),
                            s(&q.sql),
                        ]
                    })
                    .collect();
                // A source table's materializer is a persistent worker too: when a record
                // stops it, this is where the user sees it.
                for def in cat.sources.values() {
                    if def.kind != SourceKind::Table || def.written_by.is_some() {
                        continue;
                    }
                    let Some(st) = self.engine.materializer_status(def.id, &def.name) else {
                        continue;
                    };
                    rows.push(vec![
                        s(&st.id),
                        s(&st.state),
                        s(&def.name),
                        s(&def.topic),
                        Value::BigInt(st.processed as i64),
                        Value::BigInt(st.lag as i64),
                        Value::BigInt(st.errors as i64),
                        Value::BigInt(st.late as i64),
                        s(&def.sql),
                    ]);
                }
                let mut columns = cols(&["Query ID", "Status", "Sink Name", "Sink Kafka Topic"]);
                columns.extend([
                    ("Processed".to_string(), "BIGINT".to_string()),
                    ("Lag".into(), "BIGINT".into()),
                    ("Errors".into(), "BIGINT".into()),
                    // Records dropped for arriving after their window's grace period.
                    ("Late".into(), "BIGINT".into()),
                ]);
                columns.push(("Query String".into(), "STRING".into()));
                Outcome {
                    columns,
                    rows,
                    ..Outcome::default()
                }
            }
            ShowWhat::Topics => {
                let rows = self
                    .log
                    .topics()
                    .iter()
                    .map(|t| {
                        let end: u64 = (0..t.partitions).map(|p| t.end_offset(p)).sum();
                        vec![
                            s(&t.name),
                            Value::Int(t.partitions as i32),
                            Value::BigInt(end as i64),
                        ]
                    })
                    .collect();
                Outcome {
                    columns: vec![
                        ("Kafka Topic".into(), "STRING".into()),
                        ("Partitions".into(), "INTEGER".into()),
                        ("Records".into(), "BIGINT".into()),
                    ],
                    rows,
                    ..Outcome::default()
                }
            }
            ShowWhat::Functions => {
                let mut rows: Vec<Vec<Value>> = sluice_expr::functions::all()
                    .iter()
                    .map(|f| vec![s(f.name), s("SCALAR")])
                    .collect();
                rows.extend(
                    sluice_expr::aggregate::AGGREGATES
                        .iter()
                        .map(|(n, _, _)| vec![s(n), s("AGGREGATE")]),
                );
                rows.sort_by(|a, b| a[0].to_string().cmp(&b[0].to_string()));
                Outcome {
                    columns: cols(&["Function Name", "Type"]),
                    rows,
                    ..Outcome::default()
                }
            }
            ShowWhat::Types => Outcome {
                columns: cols(&["Type Name", "Schema"]),
                rows: cat
                    .types
                    .iter()
                    .map(|(n, t)| vec![s(n), s(&t.to_string())])
                    .collect(),
                ..Outcome::default()
            },
            ShowWhat::Properties => Outcome {
                columns: cols(&["Property", "Value"]),
                rows: vec![
                    vec![s("auto.offset.reset"), s("latest")],
                    vec![
                        s("sluice.pull.max.rows"),
                        s(&self.pull_limits.max_rows.to_string()),
                    ],
                    vec![
                        s("sluice.pull.max.bytes"),
                        s(&self.pull_limits.max_bytes.to_string()),
                    ],
                    vec![
                        s("sluice.pull.timeout.ms"),
                        s(&self.pull_limits.timeout.as_millis().to_string()),
                    ],
                ],
                ..Outcome::default()
            },
        }
    }

    pub(super) fn describe(&self, name: &Name, extended: bool) -> Result<Outcome, ExecError> {
        let def = self
            .source(&name.value)
            .ok_or_else(|| self.not_found(name))?;
        let rows = def
            .schema
            .columns
            .iter()
            .map(|c| {
                let header = def
                    .headers
                    .iter()
                    .find(|(n, _)| *n == c.name)
                    .map(|(_, k)| match k {
                        None => " (HEADERS)".to_string(),
                        Some(k) => format!(" (HEADER('{k}'))"),
                    });
                let t = match c.role {
                    ColumnRole::Value => format!("{}{}", c.data_type, header.unwrap_or_default()),
                    role => format!("{} ({})", c.data_type, role.label()),
                };
                vec![Value::String(c.name.clone()), Value::String(t)]
            })
            .collect();
        let mut message = format!(
            "Name: {}\nType: {}\nKafka topic: {} (key format: {}, value format: {})",
            def.name, def.kind, def.topic, def.key_format.kind, def.value_format.kind
        );
        if let Some(ts) = &def.timestamp_column {
            message.push_str(&format!("\nTimestamp field: {ts}"));
        }
        if extended {
            let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
            let readers: Vec<&str> = cat
                .queries
                .values()
                .filter(|q| q.sources.contains(&def.name))
                .map(|q| q.id.as_str())
                .collect();
            let writers: Vec<&str> = cat
                .queries
                .values()
                .filter(|q| q.sink == def.name)
                .map(|q| q.id.as_str())
                .collect();
            message.push_str(&format!(
                "\nQueries that read from this {}: [{}]",
                def.kind,
                readers.join(", ")
            ));
            message.push_str(&format!(
                "\nQueries that write into this {}: [{}]",
                def.kind,
                writers.join(", ")
            ));
            // What each writer has done, late records (past the grace period) included.
            for id in &writers {
                if let Some(st) = self.engine.status(id) {
                    message.push_str(&format!(
                        "\n  {}: {}, processed {}, errors {}, late records dropped {}, lag {}",
                        st.id, st.state, st.processed, st.errors, st.late, st.lag
                    ));
                }
            }
            if let Some(t) = self.log.topic(&def.topic) {
                let end: u64 = (0..t.partitions).map(|p| t.end_offset(p)).sum();
                message.push_str(&format!(
                    "\nPartitions: {}\nRecords in topic: {end}",
                    t.partitions
                ));
            }
            if def.kind == SourceKind::Table
                && def.written_by.is_none()
                && let Some(st) = self.engine.materializer_status(def.id, &def.name)
            {
                message.push_str(&format!(
                    "\nMaterialized by: {} ({}, processed {}, errors {})\nMaterialization lag: {}",
                    st.id, st.state, st.processed, st.errors, st.lag
                ));
            }
            if !def.sql.is_empty() {
                message.push_str(&format!("\nStatement: {}", def.sql));
            }
        }
        Ok(Outcome {
            message,
            columns: vec![
                ("Field".into(), "STRING".into()),
                ("Type".into(), "STRING".into()),
            ],
            rows,
            ..Outcome::default()
        })
    }

    pub(super) fn explain(&self, target: &ExplainTarget) -> Result<Outcome, ExecError> {
        match target {
            ExplainTarget::Query(id) => {
                let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
                let q = cat
                    .queries
                    .values()
                    .find(|q| q.id.eq_ignore_ascii_case(&id.value))
                    .ok_or_else(|| ExecError::new(ErrorCode::NotFound, format!("Query with id:{} does not exist, use SHOW QUERIES to view the full set of queries.", id.value)))?;
                let plan = replan(q, &cat)?;
                let status = self.engine.status(&q.id);
                let mut message =
                    format!("ID: {}\nSQL: {}\n\n{}", q.id, q.sql, describe_plan(&plan));
                if let Some(s) = status {
                    message.push_str(&format!(
                        "\nStatus: {}\nProcessed: {}\nLag: {}\nErrors: {}\nLate records dropped: {}",
                        s.state, s.processed, s.lag, s.errors, s.late
                    ));
                }
                Ok(Outcome::message(message))
            }
            ExplainTarget::Statement(stmt) => {
                let cat = self.catalog.read().unwrap_or_else(|p| p.into_inner());
                let text = match &stmt.kind {
                    StatementKind::CreateAs {
                        kind,
                        name,
                        properties,
                        query,
                        ..
                    } => {
                        let ids = NewIds {
                            sink_id: u64::MAX,
                            query_num: u64::MAX,
                            query_id: "(not started)".into(),
                        };
                        let planned = plan_create_as(
                            ids,
                            *kind,
                            name,
                            properties,
                            query,
                            &*cat,
                            &stmt.text,
                            &sluice_planner::SessionConfig::default(),
                        )?;
                        describe_plan(&planned.plan)
                    }
                    StatementKind::Select(select) if select.emit_changes => {
                        let (kind, _) = sluice_planner::query::plan_push(select, &*cat)?;
                        match kind {
                            PushKind::Plain(plan) => match &plan.join {
                                Some(j) => format!(
                                    "Push query over a join, state in memory for the subscription\n  filter: {}\n  projection: {} expressions\n{}",
                                    plan.filter.is_some(),
                                    plan.projection.len(),
                                    explain_join(j, 2)
                                ),
                                None => format!(
                                    "Push query over {} (topic {})\n  filter: {}\n  projection: {} expressions",
                                    plan.source.name,
                                    plan.source.topic,
                                    plan.filter.is_some(),
                                    plan.projection.len()
                                ),
                            },
                            PushKind::Aggregate(plan) => format!(
                                "Aggregating push query over {} (topic {}), state in memory for the subscription\n  filter: {}\n  group by: {} expressions\n  aggregates: {}",
                                plan.source.name,
                                plan.source.topic,
                                plan.filter.is_some(),
                                plan.group_by.len(),
                                plan.aggregates.len()
                            ),
                        }
                    }
                    StatementKind::Select(select) => {
                        let planned = sluice_planner::pull::plan_pull(
                            select,
                            &*cat,
                            &self.query_config,
                            self.pull_limits,
                        )?;
                        match planned.kind {
                            PullKind::Table(plan) => format!(
                                "Pull query on {}\n  access: {:?}\n  filter: {}",
                                plan.table.name,
                                plan.access,
                                plan.filter.is_some()
                            ),
                            PullKind::Stream(plan) => format!(
                                "Pull query on stream {} (topic {}, to its end offsets)\n  access: {}\n  filter: {}",
                                plan.scan.source.name,
                                plan.scan.source.topic,
                                self.engine.stream_pull_access(&plan),
                                plan.scan.filter.is_some()
                            ),
                        }
                    }
                    _ => {
                        return Err(ExecError::invalid(
                            "EXPLAIN supports queries and CREATE ... AS SELECT",
                        ));
                    }
                };
                Ok(Outcome::message(text))
            }
        }
    }
}

fn describe_plan(plan: &QueryPlan) -> String {
    let sink = &plan.sink;
    let columns: Vec<String> = sink
        .schema
        .columns
        .iter()
        .map(|c| {
            format!(
                "{} {}{}",
                c.name,
                c.data_type,
                if c.role.is_key() { " KEY" } else { "" }
            )
        })
        .collect();
    let op = match &plan.op {
        sluice_plan::Operator::Select { filter, .. } => format!(
            " > [ PROJECT ]\n{}",
            if filter.is_some() {
                "   > [ FILTER ]\n"
            } else {
                ""
            }
        ),
        sluice_plan::Operator::Aggregate {
            filter,
            group_by,
            aggregates,
            having,
            window,
            ..
        } => format!(
            " > [ AGGREGATE ] {} aggregate(s), {} grouping key(s){}{}\n{}",
            aggregates.len(),
            group_by.len(),
            if having.is_some() { ", HAVING" } else { "" },
            window.map_or(String::new(), |w| {
                let size = match w.kind {
                    sluice_common::WindowKind::Session => format!("gap {} ms", w.size_ms),
                    sluice_common::WindowKind::Hopping => {
                        format!("size {} ms, advance {} ms", w.size_ms, w.advance_ms)
                    }
                    sluice_common::WindowKind::Tumbling => format!("size {} ms", w.size_ms),
                };
                format!(
                    ", WINDOW {} ({size}, grace {} ms, retention {} ms), EMIT {}",
                    w.kind,
                    w.grace_ms,
                    w.retention_ms,
                    if w.emit_final { "FINAL" } else { "CHANGES" }
                )
            }),
            if filter.is_some() {
                "   > [ FILTER ]\n"
            } else {
                ""
            }
        ),
    };
    let sources = match &plan.join {
        Some(j) => explain_join(j, 6),
        None => format!(
            "      > [ SOURCE ] {} (topic {})",
            plan.source.name, plan.source.topic
        ),
    };
    format!(
        "Execution plan\n--------------\n > [ SINK ] {} {} | topic: {} | schema: [{}]\n{op}{sources}",
        sink.kind,
        sink.name,
        sink.topic,
        columns.join(", "),
    )
}

/// A join's lines of EXPLAIN, indented by `indent`: the join, then its inputs.
fn explain_join(j: &sluice_plan::JoinPlan, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let inner = " ".repeat(indent + 6);
    let left = match &j.left {
        sluice_plan::JoinInput::Source(d) => {
            format!("{inner}> [ SOURCE ] {} (topic {})", d.name, d.topic)
        }
        sluice_plan::JoinInput::Join(nested) => explain_join(nested, indent + 6),
    };
    let how = match (&j.within, j.foreign_key) {
        (Some(w), _) => format!(
            "within ({} ms before, {} ms after)",
            w.before_ms, w.after_ms
        ),
        (None, true) => "on a foreign key".to_string(),
        (None, false) => "on the join key".to_string(),
    };
    format!(
        "{pad}> [ JOIN ] {:?} {how}\n{left}\n{inner}> [ SOURCE ] {} (topic {})",
        j.kind, j.right.name, j.right.topic
    )
}

pub(super) fn describe_function(name: &Name) -> Result<Outcome, ExecError> {
    let upper = name.value.to_ascii_uppercase();
    if let Some(f) = sluice_expr::lookup(&upper) {
        return Ok(Outcome::message(format!(
            "Name: {}\nType: SCALAR\nSignature: {}\nDescription: {}",
            f.name, f.signature, f.description
        )));
    }
    if let Some((n, sig, desc)) = sluice_expr::aggregate::AGGREGATES
        .iter()
        .find(|(n, _, _)| *n == upper)
    {
        return Ok(Outcome::message(format!(
            "Name: {n}\nType: AGGREGATE\nSignature: {sig}\nDescription: {desc}"
        )));
    }
    Err(ExecError::new(
        ErrorCode::NotFound,
        format!("Can't find any functions with the name '{}'", name.value),
    ))
}
