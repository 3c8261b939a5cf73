//! The planner: binds parsed statements to the catalog and turns them into what the
//! engine runs. Planning is a pure function of the statement and a catalog snapshot; it
//! performs no I/O, so the server can plan, check and only then change anything.
//!
//! - [`bind`]: sqlparser expressions → typed engine expressions over a row layout.
//! - [`ddl`]: CREATE STREAM/TABLE → a source definition.
//! - [`query`]: SELECT → persistent (CREATE ... AS), push and pull plans.
//! - [`insert`]: INSERT VALUES → a row to append.

pub mod bind;
mod coerce;
pub mod ddl;
pub mod delete;
pub mod insert;
mod join;
pub mod pull;
mod push_agg;
pub mod query;

use sluice_common::SourceDef;

/// Session properties that change how statements are planned (ksqlDB's names).
#[derive(Debug, Clone, Default)]
pub struct SessionConfig {
    /// `ksql.persistence.default.format.value`
    pub default_value_format: Option<sluice_common::FormatKind>,
    /// `ksql.persistence.default.format.key`
    pub default_key_format: Option<sluice_common::FormatKind>,
    /// `ksql.persistence.wrap.single.values`
    pub wrap_single_values: Option<bool>,
    /// `ksql.output.topic.name.prefix`
    pub topic_prefix: String,
    /// `ksql.functions.collect_list.limit`: the most values COLLECT_LIST keeps.
    pub collect_list_limit: Option<usize>,
    /// `ksql.functions.collect_set.limit`: the most values COLLECT_SET keeps.
    pub collect_set_limit: Option<usize>,
    /// `ksql.new.query.planner.enabled`: ksqlDB's newer planner, under which a stream's
    /// projection may leave out key columns (the result has no key) and key columns take
    /// the projection's order.
    pub new_query_planner: bool,
}

/// How pull and push queries may run: ksqlDB's `ksql.query.pull.*` / `ksql.query.push.*`
/// settings (and the push start position), with ksqlDB's defaults. The server holds one as
/// its configuration; a request's properties override it ([`QueryConfig::with_overrides`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryConfig {
    /// `ksql.query.pull.table.scan.enabled`: pull queries that are not key lookups or key
    /// range scans may scan the whole table. ksqlDB's default: true.
    pub table_scan_enabled: bool,
    /// `ksql.query.pull.range.scan.enabled`: a bound on a STRING or BYTES key reads that
    /// key range only. Off, such a query needs a table scan. Default: true.
    pub range_scan_enabled: bool,
    /// `ksql.query.pull.stream.enabled`: pull queries on streams. Default: true.
    pub stream_pull_enabled: bool,
    /// `ksql.query.pull.limit.clause.enabled`: LIMIT in pull queries. Default: true.
    pub limit_clause_enabled: bool,
    /// `ksql.query.push.v2.enabled`: scalable push queries. Default: false.
    pub push_v2_enabled: bool,
    /// `auto.offset.reset` (or `ksql.streams.auto.offset.reset`) is `latest`: push queries
    /// start at the end of their source. ksqlDB's default: latest.
    pub offset_reset_latest: bool,
}

impl Default for QueryConfig {
    fn default() -> QueryConfig {
        QueryConfig {
            table_scan_enabled: true,
            range_scan_enabled: true,
            stream_pull_enabled: true,
            limit_clause_enabled: true,
            push_v2_enabled: false,
            offset_reset_latest: true,
        }
    }
}

impl QueryConfig {
    /// This configuration with a request's properties applied; unknown properties and
    /// values that are not booleans (or offsets) are ignored. A request may turn table
    /// scans off but not on: ksqlDB refuses to enable them past the server's setting.
    pub fn with_overrides<'a>(
        &self,
        props: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> QueryConfig {
        let mut cfg = self.clone();
        let flag = |v: &str| match v.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        };
        let mut offset: Option<(bool, bool)> = None;
        for (k, v) in props {
            let set = |field: &mut bool| {
                if let Some(b) = flag(v) {
                    *field = b;
                }
            };
            match k.as_str() {
                "ksql.query.pull.table.scan.enabled" => {
                    if let Some(b) = flag(v) {
                        cfg.table_scan_enabled = self.table_scan_enabled && b;
                    }
                }
                "ksql.query.pull.range.scan.enabled" => set(&mut cfg.range_scan_enabled),
                "ksql.query.pull.stream.enabled" => set(&mut cfg.stream_pull_enabled),
                "ksql.query.pull.limit.clause.enabled" => set(&mut cfg.limit_clause_enabled),
                "ksql.query.push.v2.enabled" => set(&mut cfg.push_v2_enabled),
                // The plain consumer property wins over the streams-prefixed one, as in
                // ksqlDB.
                "auto.offset.reset" | "ksql.streams.auto.offset.reset" => {
                    let plain = k == "auto.offset.reset";
                    let latest = match v.trim().to_ascii_lowercase().as_str() {
                        "latest" => Some(true),
                        "earliest" => Some(false),
                        _ => None,
                    };
                    if let Some(l) = latest
                        && offset.is_none_or(|(was_plain, _)| plain || !was_plain)
                    {
                        offset = Some((plain, l));
                    }
                }
                _ => {}
            }
        }
        if let Some((_, latest)) = offset {
            cfg.offset_reset_latest = latest;
        }
        cfg
    }
}

impl SessionConfig {
    /// Reads the properties a request or test case carries; unknown ones are ignored.
    pub fn from_properties<'a>(
        props: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> SessionConfig {
        let mut cfg = SessionConfig::default();
        let format = |v: &str| match v.to_ascii_uppercase().as_str() {
            "JSON" | "JSON_SR" => Some(sluice_common::FormatKind::Json),
            "KAFKA" => Some(sluice_common::FormatKind::Kafka),
            "DELIMITED" => Some(sluice_common::FormatKind::Delimited),
            "NONE" => Some(sluice_common::FormatKind::None),
            _ => None,
        };
        for (k, v) in props {
            match k.as_str() {
                "ksql.new.query.planner.enabled" => {
                    cfg.new_query_planner = v.trim().eq_ignore_ascii_case("true")
                }
                "ksql.persistence.default.format.value" => cfg.default_value_format = format(v),
                "ksql.persistence.default.format.key" => cfg.default_key_format = format(v),
                "ksql.persistence.wrap.single.values" => cfg.wrap_single_values = v.parse().ok(),
                "ksql.output.topic.name.prefix" => cfg.topic_prefix = v.clone(),
                "ksql.functions.collect_list.limit" => cfg.collect_list_limit = v.parse().ok(),
                "ksql.functions.collect_set.limit" => cfg.collect_set_limit = v.parse().ok(),
                _ => {}
            }
        }
        cfg
    }
}

/// A planning error, positioned in the statement text where possible (1-based; 0 = none).
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("{message}")]
pub struct PlanError {
    pub message: String,
    pub line: u64,
    pub column: u64,
    pub kind: PlanErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanErrorKind {
    /// The statement is wrong (unknown column, type mismatch, ...).
    Invalid,
    /// A named source does not exist.
    NotFound,
    /// A name is already taken.
    AlreadyExists,
    /// A numeric literal cannot be represented (ksqlDB finds these while parsing).
    BadLiteral,
}

impl PlanError {
    pub fn new(message: impl Into<String>, line: u64, column: u64) -> PlanError {
        PlanError {
            message: message.into(),
            line,
            column,
            kind: PlanErrorKind::Invalid,
        }
    }

    pub fn at_name(message: impl Into<String>, name: &sluice_sql::Name) -> PlanError {
        PlanError::new(message, name.line, name.column)
    }

    pub fn with_kind(mut self, kind: PlanErrorKind) -> PlanError {
        self.kind = kind;
        self
    }
}

pub type Result<T> = std::result::Result<T, PlanError>;

/// What the planner needs to know about existing sources.
pub trait Catalog {
    fn source(&self, name: &str) -> Option<SourceDef>;

    /// Every source's name, for hints when a name is not found.
    fn source_names(&self) -> Vec<String> {
        Vec::new()
    }
}

impl Catalog for std::collections::BTreeMap<String, SourceDef> {
    fn source(&self, name: &str) -> Option<SourceDef> {
        self.get(name).cloned()
    }

    fn source_names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// ksqlDB's message for an unknown source: `X does not exist.`, and, when a source of
/// that name in another case exists, which spelling to use (a name with lower-case
/// letters must be quoted; an upper-case one needs no quotes).
pub fn unknown_source_message(catalog: &dyn Catalog, name: &str) -> String {
    let hint = catalog
        .source_names()
        .into_iter()
        .find(|n| n.eq_ignore_ascii_case(name) && n != name)
        .map(|existing| {
            if existing == existing.to_ascii_uppercase() {
                format!(
                    "\nDid you mean {existing}? Hint: try removing double quotes from the source name."
                )
            } else {
                format!(
                    "\nDid you mean \"{existing}\"? Hint: try wrapping the source name in double quotes."
                )
            }
        })
        .unwrap_or_default();
    format!("{name} does not exist.{hint}")
}

pub(crate) fn lookup(catalog: &dyn Catalog, name: &sluice_sql::Name) -> Result<SourceDef> {
    catalog.source(&name.value).ok_or_else(|| {
        PlanError::at_name(unknown_source_message(catalog, &name.value), name)
            .with_kind(PlanErrorKind::NotFound)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A JSON source with an INT key column K and an INT value column V.
    pub(crate) fn def(name: &str, kind: sluice_common::SourceKind) -> SourceDef {
        SourceDef {
            id: 1,
            name: name.into(),
            kind,
            schema: sluice_common::Schema::new(vec![
                sluice_common::Column {
                    name: "K".into(),
                    data_type: sluice_common::DataType::Int,
                    role: match kind {
                        sluice_common::SourceKind::Stream => sluice_common::ColumnRole::Key,
                        sluice_common::SourceKind::Table => sluice_common::ColumnRole::PrimaryKey,
                    },
                },
                sluice_common::Column {
                    name: "V".into(),
                    data_type: sluice_common::DataType::Int,
                    role: sluice_common::ColumnRole::Value,
                },
            ]),
            topic: "t".into(),
            key_format: sluice_common::FormatSpec::new(sluice_common::FormatKind::Json),
            value_format: sluice_common::FormatSpec::new(sluice_common::FormatKind::Json),
            timestamp_column: None,
            timestamp_format: None,
            headers: Vec::new(),
            written_by: None,
            sql: String::new(),
            read_only: false,
            window: None,
        }
    }

    /// A push query plans a join (its rows named as ksqlDB names them), aggregated or
    /// not; pull queries refuse one rather than plan the FROM source alone, after
    /// checking the joined source exists.
    #[test]
    fn joins_are_planned_or_refused_wherever_a_query_is_planned() {
        use sluice_common::SourceKind::{Stream, Table};
        let mut c: BTreeMap<String, SourceDef> = BTreeMap::new();
        c.insert("S".into(), def("S", Stream));
        c.insert("T".into(), def("T", Table));
        let select = |sql: &str| match sluice_sql::parse(sql).unwrap().remove(0).kind {
            sluice_sql::StatementKind::Select(s) => *s,
            other => panic!("{other:?}"),
        };
        let push = select("SELECT * FROM s LEFT JOIN t ON s.k = t.k EMIT CHANGES;");
        let (planned, columns) = query::plan_push(&push, &c).unwrap();
        let query::PushKind::Plain(plan) = planned else {
            panic!("a plain push plan");
        };
        assert!(plan.join.is_some());
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["S_K", "S_V", "T_K", "T_V"]);
        let grouped = select(
            "SELECT t.v, COUNT(*) FROM s LEFT JOIN t ON s.k = t.k GROUP BY t.v EMIT CHANGES;",
        );
        let (planned, _) = query::plan_push(&grouped, &c).unwrap();
        let query::PushKind::Aggregate(plan) = planned else {
            panic!("an aggregating push plan");
        };
        assert!(plan.join.is_some());
        let missing = select("SELECT * FROM s JOIN nope ON s.k = nope.k EMIT CHANGES;");
        let e = query::plan_push(&missing, &c).unwrap_err();
        assert_eq!(e.kind, PlanErrorKind::NotFound, "{e}");
        let pull = select("SELECT * FROM t JOIN t2 ON t.k = t2.k WHERE t.k = 1;");
        let e = pull::plan_pull(
            &pull,
            &c,
            &QueryConfig::default(),
            sluice_plan::PullLimits::default(),
        )
        .unwrap_err();
        assert!(
            e.message
                .starts_with("Pull queries don't support JOIN clauses."),
            "{e}"
        );
        assert!(
            pull::prepare_pull(
                &pull,
                &c,
                &QueryConfig::default(),
                sluice_plan::PullLimits::default()
            )
            .unwrap()
            .is_none()
        );
    }

    #[test]
    fn unknown_sources_hint_at_the_other_case() {
        let mut c: BTreeMap<String, SourceDef> = BTreeMap::new();
        c.insert("FOO".into(), def("FOO", sluice_common::SourceKind::Stream));
        c.insert("bAr".into(), def("bAr", sluice_common::SourceKind::Stream));
        assert_eq!(
            unknown_source_message(&c, "foo"),
            "foo does not exist.\nDid you mean FOO? Hint: try removing double quotes from the source name."
        );
        assert_eq!(
            unknown_source_message(&c, "BAR"),
            "BAR does not exist.\nDid you mean \"bAr\"? Hint: try wrapping the source name in double quotes."
        );
        assert_eq!(unknown_source_message(&c, "BAZ"), "BAZ does not exist.");
    }
}
