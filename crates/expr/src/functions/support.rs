//! Argument checking and extraction shared by the string, JSON, math and URL families.

use sluice_common::{DataType, Value};

pub(super) fn ordinal(i: usize) -> &'static str {
    match i {
        0 => "first",
        1 => "second",
        2 => "third",
        3 => "fourth",
        4 => "fifth",
        _ => "next",
    }
}

/// Checks the argument count lies in `min..=max`.
pub(super) fn count(args: &[DataType], min: usize, max: usize) -> Result<(), String> {
    if args.len() >= min && args.len() <= max {
        Ok(())
    } else if min == max {
        Err(format!("expects {min} argument(s), got {}", args.len()))
    } else if max == usize::MAX {
        Err(format!(
            "expects at least {min} argument(s), got {}",
            args.len()
        ))
    } else {
        Err(format!(
            "expects {min} to {max} arguments, got {}",
            args.len()
        ))
    }
}

/// Checks argument `i` (when present) satisfies `ok`; `what` names the expected type.
pub(super) fn expect(
    args: &[DataType],
    i: usize,
    what: &str,
    ok: fn(&DataType) -> bool,
) -> Result<(), String> {
    match args.get(i) {
        // ksqlDB's wording, then which argument is wrong.
        Some(t) if !ok(t) => Err(format!(
            "does not accept parameters ({}). The {} argument must be {} {what}, not {t}.",
            args.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            ordinal(i),
            article(what)
        )),
        _ => Ok(()),
    }
}

fn article(what: &str) -> &'static str {
    if what.starts_with(['A', 'E', 'I', 'O', 'U']) {
        "an"
    } else {
        "a"
    }
}

pub(super) fn is_string(t: &DataType) -> bool {
    *t == DataType::String
}

pub(super) fn is_integral(t: &DataType) -> bool {
    t.is_integral()
}

pub(super) fn is_numeric(t: &DataType) -> bool {
    t.is_numeric()
}

/// Checks every argument from `from` on is a STRING.
pub(super) fn all_strings(args: &[DataType], from: usize) -> Result<(), String> {
    (from..args.len()).try_for_each(|i| expect(args, i, "STRING", is_string))
}

pub(super) fn str_arg(args: &[Value], i: usize) -> Option<&str> {
    match args.get(i) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

pub(super) fn int_arg(args: &[Value], i: usize) -> Option<i64> {
    args.get(i).and_then(Value::as_i64)
}

pub(super) fn f64_arg(args: &[Value], i: usize) -> Option<f64> {
    args.get(i).and_then(Value::as_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_argument() {
        let args = [DataType::String, DataType::Int];
        assert_eq!(
            expect(&args, 1, "STRING", is_string),
            Err(
                "does not accept parameters (STRING, INTEGER). The second argument must be a STRING, not INTEGER."
                    .into()
            )
        );
        assert_eq!(expect(&args, 1, "INTEGER", is_integral).map(|_| ()), Ok(()));
        assert!(count(&args, 3, 3).is_err());
        assert!(count(&args, 1, usize::MAX).is_ok());
        assert_eq!(
            expect(&[DataType::Boolean], 0, "ARRAY", |_| false),
            Err(
                "does not accept parameters (BOOLEAN). The first argument must be an ARRAY, not BOOLEAN."
                    .into()
            )
        );
    }
}
