//! Map functions. A NULL map gives NULL, as in ksqlDB.

use super::ScalarFunction;
use super::array::same;
use super::datetime::rejected;
use sluice_common::{DataType, Value};

fn map(v: Option<&Value>) -> Option<&Vec<(Value, Value)>> {
    match v? {
        Value::Map(m) => Some(m),
        _ => None,
    }
}

/// The key and value types of a MAP argument; a NULL literal (typed STRING) is accepted.
fn map_types(args: &[DataType], i: usize) -> Result<(DataType, DataType), String> {
    match args.get(i) {
        Some(DataType::Map(k, v)) => Ok(((**k).clone(), (**v).clone())),
        Some(DataType::String) => Ok((DataType::String, DataType::String)),
        _ => Err(rejected(args)),
    }
}

fn one_map(args: &[DataType]) -> Result<(DataType, DataType), String> {
    if args.len() != 1 {
        return Err(rejected(args));
    }
    map_types(args, 0)
}

/// Puts an entry, replacing the value of an equal key where it stands.
fn put(out: &mut Vec<(Value, Value)>, k: Value, v: Value) {
    match out.iter_mut().find(|(key, _)| same(key, &k)) {
        Some(slot) => slot.1 = v,
        None => out.push((k, v)),
    }
}

fn array_of(t: DataType) -> DataType {
    DataType::Array(Box::new(t))
}

fn entries(args: &[Value]) -> Option<Value> {
    let m = map(args.first())?;
    let sorted = args.get(1)?.as_bool()?;
    let mut pairs = m.clone();
    if sorted {
        pairs.sort_by(|(a, _), (b, _)| a.sql_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    }
    Some(Value::Array(
        pairs
            .into_iter()
            .map(|(k, v)| Value::Struct(vec![("K".into(), k), ("V".into(), v)]))
            .collect(),
    ))
}

fn as_map(args: &[Value]) -> Option<Value> {
    let (Value::Array(keys), Value::Array(values)) = (args.first()?, args.get(1)?) else {
        return None;
    };
    let mut out = Vec::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        put(
            &mut out,
            k.clone(),
            values.get(i).cloned().unwrap_or(Value::Null),
        );
    }
    Some(Value::Map(out))
}

pub(super) static FUNCTIONS: &[ScalarFunction] = &[
    ScalarFunction {
        name: "ENTRIES",
        sigs: &[],
        signature: "ENTRIES(map, sorted)",
        description: "The map's entries as an array of STRUCT<K, V>, sorted by key when sorted is true.",
        return_type: |a| {
            if a.len() != 2 || a[1] != DataType::Boolean {
                return Err(rejected(a));
            }
            let (k, v) = map_types(a, 0)?;
            if k != DataType::String {
                return Err(rejected(a));
            }
            Ok(array_of(DataType::Struct(vec![
                ("K".into(), k),
                ("V".into(), v),
            ])))
        },
        eval: |a| entries(a).unwrap_or(Value::Null),
    },
    ScalarFunction {
        name: "MAP_KEYS",
        sigs: &[],
        signature: "MAP_KEYS(map)",
        description: "The map's keys as an array.",
        return_type: |a| one_map(a).map(|(k, _)| array_of(k)),
        eval: |a| match map(a.first()) {
            Some(m) => Value::Array(m.iter().map(|(k, _)| k.clone()).collect()),
            None => Value::Null,
        },
    },
    ScalarFunction {
        name: "MAP_VALUES",
        sigs: &[],
        signature: "MAP_VALUES(map)",
        description: "The map's values as an array.",
        return_type: |a| one_map(a).map(|(_, v)| array_of(v)),
        eval: |a| match map(a.first()) {
            Some(m) => Value::Array(m.iter().map(|(_, v)| v.clone()).collect()),
            None => Value::Null,
        },
    },
    ScalarFunction {
        name: "MAP_UNION",
        sigs: &[],
        signature: "MAP_UNION(map1, map2)",
        description: "The entries of both maps, map2's value winning for a key in both; a NULL map counts as empty unless both are NULL.",
        return_type: |a| {
            if a.len() != 2 {
                return Err(rejected(a));
            }
            let (k1, v1) = map_types(a, 0)?;
            let (k2, v2) = map_types(a, 1)?;
            if a[0] == DataType::String {
                return Ok(a[1].clone());
            }
            if a[1] == DataType::String || (k2.coerces_to(&k1) && v2.coerces_to(&v1)) {
                Ok(a[0].clone())
            } else if k1.coerces_to(&k2) && v1.coerces_to(&v2) {
                Ok(a[1].clone())
            } else {
                Err(rejected(a))
            }
        },
        eval: |a| match (map(a.first()), map(a.get(1))) {
            (None, None) => Value::Null,
            (l, r) => {
                let mut out = l.cloned().unwrap_or_default();
                for (k, v) in r.into_iter().flatten() {
                    put(&mut out, k.clone(), v.clone());
                }
                Value::Map(out)
            }
        },
    },
    ScalarFunction {
        name: "AS_MAP",
        sigs: &[],
        signature: "AS_MAP(keys, values)",
        description: "A map pairing each key with the value at the same position (NULL when values runs out).",
        return_type: |a| {
            let elem = |t: &DataType| match t {
                DataType::Array(e) => Some((**e).clone()),
                DataType::String => Some(DataType::String),
                _ => None,
            };
            match (a.len(), a.first().and_then(elem), a.get(1).and_then(elem)) {
                (2, Some(DataType::String), Some(v)) => {
                    Ok(DataType::Map(Box::new(DataType::String), Box::new(v)))
                }
                _ => Err(rejected(a)),
            }
        },
        eval: |a| as_map(a).unwrap_or(Value::Null),
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::lookup;
    use crate::functions::testing::call;

    fn ty(name: &str, args: &[DataType]) -> Result<DataType, String> {
        (lookup(name).unwrap().return_type)(args)
    }

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    fn m(entries: &[(&str, Option<i32>)]) -> Value {
        Value::Map(
            entries
                .iter()
                .map(|(k, v)| (s(k), v.map_or(Value::Null, Value::Int)))
                .collect(),
        )
    }

    fn smap(v: DataType) -> DataType {
        DataType::Map(Box::new(DataType::String), Box::new(v))
    }

    #[test]
    fn keys_values_entries() {
        let a = m(&[("foo", Some(10)), ("bar", None)]);
        assert_eq!(
            call("MAP_KEYS", std::slice::from_ref(&a)),
            Value::Array(vec![s("foo"), s("bar")])
        );
        assert_eq!(
            call("MAP_VALUES", std::slice::from_ref(&a)),
            Value::Array(vec![Value::Int(10), Value::Null])
        );
        assert_eq!(call("MAP_KEYS", &[Value::Null]), Value::Null);
        assert_eq!(call("MAP_VALUES", &[m(&[])]), Value::Array(vec![]));
        let e = call("ENTRIES", &[a.clone(), Value::Boolean(true)]);
        assert_eq!(
            e,
            Value::Array(vec![
                Value::Struct(vec![("K".into(), s("bar")), ("V".into(), Value::Null)]),
                Value::Struct(vec![("K".into(), s("foo")), ("V".into(), Value::Int(10))]),
            ])
        );
        assert_eq!(
            call("ENTRIES", &[Value::Null, Value::Boolean(true)]),
            Value::Null
        );
        assert_eq!(
            ty("ENTRIES", &[smap(DataType::Int), DataType::Boolean]),
            Ok(DataType::Array(Box::new(DataType::Struct(vec![
                ("K".into(), DataType::String),
                ("V".into(), DataType::Int)
            ]))))
        );
        assert!(ty("ENTRIES", &[smap(DataType::Int)]).is_err());
        assert_eq!(
            ty("MAP_KEYS", &[smap(DataType::Int)]),
            Ok(DataType::Array(Box::new(DataType::String)))
        );
        assert!(ty("MAP_VALUES", &[DataType::Int]).is_err());
    }

    #[test]
    fn union() {
        let l = m(&[("foo", Some(10)), ("bar", Some(20))]);
        let r = m(&[("foo", None), ("apple", Some(-1))]);
        assert_eq!(
            call("MAP_UNION", &[l.clone(), r.clone()]),
            m(&[("foo", None), ("bar", Some(20)), ("apple", Some(-1))])
        );
        assert_eq!(call("MAP_UNION", &[Value::Null, r.clone()]), r);
        assert_eq!(call("MAP_UNION", &[Value::Null, Value::Null]), Value::Null);
        assert_eq!(
            ty("MAP_UNION", &[smap(DataType::Int), smap(DataType::BigInt)]),
            Ok(smap(DataType::BigInt))
        );
        assert!(ty("MAP_UNION", &[smap(DataType::Int), smap(DataType::String)]).is_err());
    }

    #[test]
    fn as_map() {
        let keys = Value::Array(vec![s("a"), s("b"), s("c")]);
        let vals = Value::Array(vec![Value::Int(1), Value::Int(2)]);
        assert_eq!(
            call("AS_MAP", &[keys.clone(), vals.clone()]),
            m(&[("a", Some(1)), ("b", Some(2)), ("c", None)])
        );
        let two = Value::Array(vec![s("a"), s("a")]);
        assert_eq!(call("AS_MAP", &[two, vals]), m(&[("a", Some(2))]));
        assert_eq!(call("AS_MAP", &[keys, Value::Null]), Value::Null);
        assert!(
            ty(
                "AS_MAP",
                &[
                    DataType::Array(Box::new(DataType::Int)),
                    DataType::Array(Box::new(DataType::Int))
                ]
            )
            .is_err()
        );
    }
}
