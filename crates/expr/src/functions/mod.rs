//! The scalar function registry. Each function is declared once, in the module of its
//! family: name, signature text, one-line description, return-type rule and
//! implementation. The planner resolves calls here; SHOW FUNCTIONS and DESCRIBE FUNCTION
//! read the same table.
//!
//! To add a function: put a `ScalarFunction` in the `FUNCTIONS` slice of its family's
//! module (or a new module listed in `FAMILIES`), with unit tests beside it.

mod array;
mod basic;
mod datetime;
mod json;
mod map;
mod math;
mod misc;
mod string;
mod support;
mod url;

use sluice_common::{DataType, Value};
use std::sync::OnceLock;

/// ISO-8601 text to days / milliseconds, as ksqlDB reads date and time literals.
pub(crate) use math::{parse_date, parse_time, parse_timestamp};

pub struct ScalarFunction {
    pub name: &'static str,
    pub signature: &'static str,
    pub description: &'static str,
    /// Validates argument types and gives the result type, or says what is wrong.
    pub return_type: fn(&[DataType]) -> Result<DataType, String>,
    pub eval: fn(&[Value]) -> Value,
}

impl std::fmt::Debug for ScalarFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Every family's functions.
const FAMILIES: &[&[ScalarFunction]] = &[
    basic::FUNCTIONS,
    misc::FUNCTIONS,
    string::FUNCTIONS,
    json::FUNCTIONS,
    math::FUNCTIONS,
    url::FUNCTIONS,
    datetime::FUNCTIONS,
    array::FUNCTIONS,
    map::FUNCTIONS,
];

/// All scalar functions, sorted by name.
pub fn all() -> &'static [&'static ScalarFunction] {
    static ALL: OnceLock<Vec<&'static ScalarFunction>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut v: Vec<&'static ScalarFunction> = FAMILIES.iter().flat_map(|f| f.iter()).collect();
        v.sort_by_key(|f| f.name);
        v
    })
}

pub fn lookup(name: &str) -> Option<&'static ScalarFunction> {
    all()
        .iter()
        .copied()
        .find(|f| f.name.eq_ignore_ascii_case(name))
}

/// Calling registry functions by name, for the families' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::lookup;
    use sluice_common::{DataType, Value};

    pub fn call(name: &str, args: &[Value]) -> Value {
        (lookup(name).expect("function is registered").eval)(args)
    }

    pub fn rule(name: &str, args: &[DataType]) -> Result<DataType, String> {
        (lookup(name).expect("function is registered").return_type)(args)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_unique_and_upper_case() {
        let all = super::all();
        for w in all.windows(2) {
            assert_ne!(w[0].name, w[1].name, "declared twice");
        }
        for f in all {
            assert_eq!(f.name, f.name.to_ascii_uppercase());
        }
    }
}
