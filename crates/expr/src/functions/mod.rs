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
pub use string::{check_regex_size, regex_pattern_arg};
mod support;
mod url;

use sluice_common::{DataType, Value};
use std::sync::OnceLock;

/// ISO-8601 text to days / milliseconds, as ksqlDB reads date and time literals.
pub(crate) use math::{parse_date, parse_time, parse_timestamp};

pub struct ScalarFunction {
    pub name: &'static str,
    /// The overloads ksqlDB declares for the function (its `@Udf` methods), resolved as
    /// ksqlDB's `UdfIndex` does (see [`resolve`]). Empty: the function checks its
    /// arguments itself in `return_type`.
    pub sigs: &'static [Sig],
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

/// A parameter type of an overload, as ksqlDB's UDF framework types Java parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    Boolean,
    Int,
    BigInt,
    Double,
    /// Any DECIMAL (a `BigDecimal` parameter).
    Decimal,
    String,
    Bytes,
    Timestamp,
    Date,
    Time,
    /// One generic type `T`, the same for every parameter that names it.
    T,
}

impl Param {
    fn data_type(self) -> Option<DataType> {
        Some(match self {
            Param::Boolean => DataType::Boolean,
            Param::Int => DataType::Int,
            Param::BigInt => DataType::BigInt,
            Param::Double => DataType::Double,
            Param::Decimal => DataType::Decimal {
                precision: 1,
                scale: 0,
            },
            Param::String => DataType::String,
            Param::Bytes => DataType::Bytes,
            Param::Timestamp => DataType::Timestamp,
            Param::Date => DataType::Date,
            Param::Time => DataType::Time,
            Param::T => return None,
        })
    }
}

/// One overload: its parameters, the last repeating when `variadic`.
#[derive(Debug, Clone, Copy)]
pub struct Sig {
    pub params: &'static [Param],
    pub variadic: bool,
}

impl Sig {
    pub const fn of(params: &'static [Param]) -> Sig {
        Sig {
            params,
            variadic: false,
        }
    }

    pub const fn variadic(params: &'static [Param]) -> Sig {
        Sig {
            params,
            variadic: true,
        }
    }

    fn param(&self, i: usize) -> Option<Param> {
        match self.params.get(i) {
            Some(p) => Some(*p),
            None if self.variadic => self.params.last().copied(),
            None => None,
        }
    }

    fn arity_fits(&self, n: usize) -> bool {
        if self.variadic {
            n + 1 >= self.params.len()
        } else {
            n == self.params.len()
        }
    }

    /// Whether the arguments (None: a NULL literal, which any parameter takes) fit, with
    /// ksqlDB's implicit casts when `casts`; a generic takes the first type it meets and
    /// then only that type.
    fn accepts(&self, args: &[Option<DataType>], casts: bool) -> bool {
        if !self.arity_fits(args.len()) {
            return false;
        }
        let mut generic: Option<&DataType> = None;
        for (i, arg) in args.iter().enumerate() {
            let (Some(p), Some(t)) = (self.param(i), arg) else {
                continue;
            };
            let ok = match p.data_type() {
                None => match generic {
                    Some(g) => g == t,
                    None => {
                        generic = Some(t);
                        true
                    }
                },
                Some(want) => {
                    std::mem::discriminant(t) == std::mem::discriminant(&want)
                        || (casts && t.can_implicitly_cast(&want))
                }
            };
            if !ok {
                return false;
            }
        }
        true
    }

    /// ksqlDB's preference among matching overloads: fixed arity over variadic, then more
    /// parameters, then fewer generics.
    fn rank(&self) -> (bool, usize, isize) {
        let generics = self.params.iter().filter(|p| **p == Param::T).count();
        (!self.variadic, self.params.len(), -(generics as isize))
    }
}

/// The outcome of overload resolution: for each argument, the type to CAST it to (None:
/// as it is), and the argument types the function then sees.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub casts: Vec<Option<DataType>>,
    pub types: Vec<DataType>,
}

/// Argument types as ksqlDB lists them in resolution errors.
pub fn describe_args(args: &[Option<DataType>]) -> String {
    args.iter()
        .map(|a| a.as_ref().map_or("null".to_string(), ToString::to_string))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Picks the overload ksqlDB's `UdfIndex` would: first among those the arguments fit
/// exactly, else among those they fit with implicit casts (INTEGER → BIGINT → DECIMAL →
/// DOUBLE, STRING → temporal types and BYTES). Two equally preferred matches are
/// ambiguous. Errors are ksqlDB's text after `Function 'name' `.
pub fn resolve(sigs: &[Sig], args: &[Option<DataType>]) -> Result<Resolved, String> {
    for casts in [false, true] {
        let mut matching: Vec<&Sig> = sigs.iter().filter(|s| s.accepts(args, casts)).collect();
        if matching.is_empty() {
            continue;
        }
        matching.sort_by_key(|s| s.rank());
        let best = matching[matching.len() - 1];
        if matching.len() > 1 && matching[matching.len() - 2].rank() == best.rank() {
            return Err(format!(
                "cannot be resolved due to ambiguous method parameters ({}).",
                describe_args(args)
            ));
        }
        let generic = args
            .iter()
            .enumerate()
            .find(|(i, a)| a.is_some() && best.param(*i) == Some(Param::T))
            .and_then(|(_, a)| a.clone());
        let mut out = Resolved {
            casts: Vec::with_capacity(args.len()),
            types: Vec::with_capacity(args.len()),
        };
        for (i, arg) in args.iter().enumerate() {
            let want = best.param(i).and_then(Param::data_type);
            let (cast, ty) = match (arg, want) {
                (Some(t), Some(w)) if std::mem::discriminant(t) != std::mem::discriminant(&w) => {
                    // A number cast to a DECIMAL parameter keeps its digits.
                    let w = match (&w, t.as_decimal()) {
                        (DataType::Decimal { .. }, Some((precision, scale))) => {
                            DataType::Decimal { precision, scale }
                        }
                        _ => w,
                    };
                    (Some(w.clone()), w)
                }
                (Some(t), _) => (None, t.clone()),
                (None, Some(w)) => (None, w),
                (None, None) => (None, generic.clone().unwrap_or(DataType::String)),
            };
            out.casts.push(cast);
            out.types.push(ty);
        }
        return Ok(out);
    }
    Err(format!(
        "does not accept parameters ({}).",
        describe_args(args)
    ))
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
    use super::{Param as P, Resolved, Sig, resolve};
    use sluice_common::DataType;

    const NUMERIC_VARARGS: &[Sig] = &[
        Sig::variadic(&[P::Int, P::Int]),
        Sig::variadic(&[P::BigInt, P::BigInt]),
        Sig::variadic(&[P::Double, P::Double]),
        Sig::variadic(&[P::Decimal, P::Decimal]),
        Sig::variadic(&[P::String, P::String]),
    ];

    #[test]
    fn exact_matches_win_then_implicit_casts() {
        let int = Some(DataType::Int);
        assert_eq!(
            resolve(NUMERIC_VARARGS, &[int.clone(), None, int.clone()]),
            Ok(Resolved {
                casts: vec![None, None, None],
                types: vec![DataType::Int; 3]
            })
        );
        let r = resolve(NUMERIC_VARARGS, &[int.clone(), Some(DataType::Double)]).unwrap();
        assert_eq!(r.casts, vec![Some(DataType::Double), None]);
        assert_eq!(
            resolve(NUMERIC_VARARGS, &[int.clone(), Some(DataType::BigInt)]),
            Err("cannot be resolved due to ambiguous method parameters (INTEGER, BIGINT).".into())
        );
        assert_eq!(
            resolve(NUMERIC_VARARGS, &[None, None]),
            Err("cannot be resolved due to ambiguous method parameters (null, null).".into())
        );
        assert_eq!(
            resolve(NUMERIC_VARARGS, &[Some(DataType::String), int]),
            Err("does not accept parameters (STRING, INTEGER).".into())
        );
    }

    #[test]
    fn generics_take_one_type_and_fixed_arity_beats_varargs() {
        let coalesce = &[Sig::variadic(&[P::T, P::T])];
        assert!(resolve(coalesce, &[Some(DataType::Int), None, Some(DataType::Int)]).is_ok());
        assert!(resolve(coalesce, &[Some(DataType::Int), Some(DataType::BigInt)]).is_err());
        let sigs = &[Sig::of(&[P::String, P::Int]), Sig::variadic(&[P::String])];
        let r = resolve(sigs, &[Some(DataType::String), None]).unwrap();
        assert_eq!(r.types, vec![DataType::String, DataType::Int]);
        let dec = &[Sig::of(&[P::Decimal]), Sig::of(&[P::Double])];
        let r = resolve(dec, &[Some(DataType::BigInt)]).unwrap_err();
        assert!(r.starts_with("cannot be resolved"));
        let only_dec = &[Sig::of(&[P::Decimal])];
        assert_eq!(
            resolve(only_dec, &[Some(DataType::Int)]).unwrap().casts,
            vec![Some(DataType::Decimal {
                precision: 10,
                scale: 0
            })]
        );
    }

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
