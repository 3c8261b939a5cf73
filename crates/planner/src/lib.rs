//! The planner: binds parsed statements to the catalog and turns them into what the
//! engine runs. Planning is a pure function of the statement and a catalog snapshot; it
//! performs no I/O, so the server can plan, check and only then change anything.
//!
//! - [`bind`]: sqlparser expressions → typed engine expressions over a row layout.
//! - [`ddl`]: CREATE STREAM/TABLE → a source definition.
//! - [`query`]: SELECT → persistent (CREATE ... AS), push and pull plans.
//! - [`insert`]: INSERT VALUES → a row to append.

pub mod bind;
pub mod ddl;
pub mod insert;
pub mod query;

use sluice_common::SourceDef;

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
