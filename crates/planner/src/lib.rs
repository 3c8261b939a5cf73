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
pub mod insert;
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
}

impl Catalog for std::collections::BTreeMap<String, SourceDef> {
    fn source(&self, name: &str) -> Option<SourceDef> {
        self.get(name).cloned()
    }
}

pub(crate) fn lookup(catalog: &dyn Catalog, name: &sluice_sql::Name) -> Result<SourceDef> {
    catalog.source(&name.value).ok_or_else(|| {
        PlanError::at_name(format!("{} does not exist.", name.value), name)
            .with_kind(PlanErrorKind::NotFound)
    })
}
