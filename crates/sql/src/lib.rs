//! The ksqlDB SQL dialect on top of `sqlparser`.
//!
//! sqlparser tokenizes and parses expressions, identifiers and literals; this crate adds
//! the statement grammar ksqlDB has and ANSI SQL lacks (CREATE STREAM, KEY columns, WITH
//! properties, EMIT CHANGES, PRINT, TERMINATE, ...). Output is a small AST whose
//! expressions are sqlparser's `Expr`; binding them is the planner's job.
//!
//! Every error carries the line and column it was found at.

pub mod ast;
mod dialect;
mod params;
mod parser;
mod print;
mod types;

pub use ast::*;
pub use dialect::KsqlDialect;
pub use params::{Param, bind_params, placeholder_at, placeholders};
pub use parser::{parse, parse_expr};
pub use types::{parse_type, with_type_aliases, with_type_aliases_used};

/// A syntax error, with where it was found (1-based; 0 when unknown).
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("{message}{}", if *.line > 0 { format!(" (line {}:{})", .line, .column) } else { String::new() })]
pub struct ParseError {
    pub message: String,
    pub line: u64,
    pub column: u64,
}
