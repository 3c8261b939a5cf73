//! Expressions: the bound, typed-at-plan-time expression tree the engine evaluates per row,
//! the scalar function registry, and aggregate accumulators.
//!
//! Expressions refer to input columns by position, never by name: binding names to
//! positions is the planner's job, so evaluation is a plain walk over the tree.
//! Runtime problems inside an expression (a failed CAST, division by zero) give NULL, as in
//! ksqlDB; only broken plans are errors.

pub mod aggregate;
pub mod coerce;
pub mod eval;
pub mod functions;
pub mod limits;
pub mod temporal;

pub use aggregate::{AggCall, AggKind};
pub use eval::{BinaryOp, Expr, HigherOrder, Lambda};
pub use functions::{Param, Resolved, ScalarFunction, Sig, lookup, resolve};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExprError {
    #[error("{0}")]
    Eval(String),
}

pub type Result<T> = std::result::Result<T, ExprError>;
