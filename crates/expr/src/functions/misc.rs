//! Functions about columns rather than values.

use super::ScalarFunction;
use sluice_common::DataType;

pub(super) static FUNCTIONS: &[ScalarFunction] = &[ScalarFunction {
    name: "AS_VALUE",
    sigs: &[],
    signature: "AS_VALUE(column)",
    description: "Its argument unchanged; used to copy a key column into the value.",
    return_type: |a: &[DataType]| match a {
        [t] => Ok(t.clone()),
        _ => Err(format!("expects 1 argument, got {}", a.len())),
    },
    eval: |a| a.first().cloned().unwrap_or(sluice_common::Value::Null),
}];

#[cfg(test)]
mod tests {
    use sluice_common::{DataType, Value};

    #[test]
    fn as_value_is_identity() {
        let f = crate::functions::lookup("as_value").unwrap();
        assert_eq!((f.eval)(&[Value::Int(3)]), Value::Int(3));
        assert_eq!((f.eval)(&[Value::Null]), Value::Null);
        assert_eq!((f.return_type)(&[DataType::BigInt]), Ok(DataType::BigInt));
        assert!((f.return_type)(&[]).is_err());
    }
}
