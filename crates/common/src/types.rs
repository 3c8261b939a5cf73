//! SQL data types, named and printed as ksqlDB does.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    Boolean,
    Int,
    BigInt,
    Double,
    Decimal {
        precision: u8,
        scale: u8,
    },
    String,
    Bytes,
    /// Milliseconds since the Unix epoch.
    Timestamp,
    /// Days since the Unix epoch.
    Date,
    /// Milliseconds since midnight.
    Time,
    Array(Box<DataType>),
    Map(Box<DataType>, Box<DataType>),
    Struct(Vec<(String, DataType)>),
}

impl DataType {
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            DataType::Int | DataType::BigInt | DataType::Double | DataType::Decimal { .. }
        )
    }

    pub fn is_integral(&self) -> bool {
        matches!(self, DataType::Int | DataType::BigInt)
    }

    /// Whether values of `self` may be used where `target` is expected without an explicit
    /// CAST (ksqlDB's implicit widening: INT → BIGINT → DECIMAL → DOUBLE).
    pub fn coerces_to(&self, target: &DataType) -> bool {
        use DataType::*;
        if self == target {
            return true;
        }
        match (self, target) {
            (Int, BigInt | Double | Decimal { .. }) => true,
            (BigInt, Double | Decimal { .. }) => true,
            (Decimal { .. }, Double | Decimal { .. }) => true,
            (Array(a), Array(b)) => a.coerces_to(b),
            (Map(k1, v1), Map(k2, v2)) => k1.coerces_to(k2) && v1.coerces_to(v2),
            _ => false,
        }
    }

    /// The type's base name as ksqlDB prints it in messages (`DECIMAL`, `ARRAY`, ...).
    pub fn base_name(&self) -> &'static str {
        match self {
            DataType::Boolean => "BOOLEAN",
            DataType::Int => "INTEGER",
            DataType::BigInt => "BIGINT",
            DataType::Double => "DOUBLE",
            DataType::Decimal { .. } => "DECIMAL",
            DataType::String => "STRING",
            DataType::Bytes => "BYTES",
            DataType::Timestamp => "TIMESTAMP",
            DataType::Date => "DATE",
            DataType::Time => "TIME",
            DataType::Array(_) => "ARRAY",
            DataType::Map(..) => "MAP",
            DataType::Struct(_) => "STRUCT",
        }
    }

    /// Rank of a numeric base type in ksqlDB's widening order.
    fn numeric_rank(&self) -> Option<u8> {
        match self {
            DataType::Int => Some(0),
            DataType::BigInt => Some(1),
            DataType::Decimal { .. } => Some(2),
            DataType::Double => Some(3),
            _ => None,
        }
    }

    /// ksqlDB's `SqlBaseType.canImplicitlyCast`: on base types only, the same base type, a
    /// wider number, or text to a temporal type or bytes.
    pub fn can_implicitly_cast(&self, to: &DataType) -> bool {
        if std::mem::discriminant(self) == std::mem::discriminant(to) {
            return true;
        }
        // Text is read as a date, time, timestamp or (base64) bytes where one is wanted.
        if *self == DataType::String
            && matches!(
                to,
                DataType::Timestamp | DataType::Date | DataType::Time | DataType::Bytes
            )
        {
            return true;
        }
        matches!((self.numeric_rank(), to.numeric_rank()), (Some(a), Some(b)) if a <= b)
    }

    /// The DECIMAL an integral or decimal type widens to without loss (INT is
    /// DECIMAL(10, 0), BIGINT DECIMAL(19, 0)).
    pub fn as_decimal(&self) -> Option<(u8, u8)> {
        match self {
            DataType::Int => Some((10, 0)),
            DataType::BigInt => Some((19, 0)),
            DataType::Decimal { precision, scale } => Some((*precision, *scale)),
            _ => None,
        }
    }

    /// A DECIMAL wide enough for both types (ksqlDB's `DecimalUtil.widen`), which must be
    /// integral or decimal.
    pub fn decimal_widen(a: &DataType, b: &DataType) -> Option<DataType> {
        let (p1, s1) = a.as_decimal()?;
        let (p2, s2) = b.as_decimal()?;
        let scale = s1.max(s2);
        let int = (p1 - s1).max(p2 - s2);
        Some(decimal(u32::from(int) + u32::from(scale), u32::from(scale)))
    }

    /// ksqlDB's `DefaultSqlValueCoercer.canCoerce`: the type values of `self` take when
    /// coerced to `to`, or None. `lax` adds the conversions ksqlDB allows for literals
    /// (anything to STRING, STRING to BOOLEAN and numbers).
    pub fn can_coerce(&self, to: &DataType, lax: bool) -> Option<DataType> {
        use DataType::*;
        match (self, to) {
            (Decimal { .. } | Int | BigInt, Decimal { .. }) => DataType::decimal_widen(self, to),
            (Int, Int | BigInt | Double) | (BigInt, BigInt | Double) => Some(to.clone()),
            (Decimal { .. }, Double) | (Double, Double) => Some(to.clone()),
            (Boolean, Boolean) | (String, String) => Some(to.clone()),
            (String, Timestamp | Time | Date | Bytes) => Some(to.clone()),
            (Timestamp, Timestamp) | (Time, Time) | (Date, Date) | (Bytes, Bytes) => {
                Some(to.clone())
            }
            (Array(a), Array(b)) => a.can_coerce(b, lax).map(|t| Array(Box::new(t))),
            (Map(k1, v1), Map(k2, v2)) => Some(Map(
                Box::new(k1.can_coerce(k2, lax)?),
                Box::new(v1.can_coerce(v2, lax)?),
            )),
            (Struct(from), Struct(target)) => {
                let mut names: Vec<&std::string::String> = Vec::new();
                for (n, _) in from.iter().chain(target.iter()) {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
                let mut fields = Vec::with_capacity(names.len());
                for name in names {
                    let f = from.iter().find(|(n, _)| n == name).map(|(_, t)| t);
                    let t = target.iter().find(|(n, _)| n == name).map(|(_, t)| t);
                    let ty = match (f, t) {
                        (Some(f), Some(t)) => f.can_coerce(t, lax)?,
                        (Some(only), None) | (None, Some(only)) => only.clone(),
                        (None, None) => continue,
                    };
                    fields.push((name.clone(), ty));
                }
                Some(Struct(fields))
            }
            (
                Boolean | Int | BigInt | Decimal { .. } | Double | Timestamp | Time | Date,
                String,
            ) if lax => Some(to.clone()),
            (String, Boolean | Int | BigInt | Double) if lax => Some(to.clone()),
            _ => None,
        }
    }

    /// The result type of `left op right` for an arithmetic operator, as ksqlDB's
    /// `Operator.resultType` gives it; the error text is ksqlDB's.
    pub fn arithmetic_result(
        op: ArithOp,
        left: Option<&DataType>,
        right: Option<&DataType>,
    ) -> Result<DataType, std::string::String> {
        let (Some(l), Some(r)) = (left, right) else {
            let name = |t: Option<&DataType>| t.map_or("null".to_string(), |t| t.to_string());
            return Err(format!(
                "Arithmetic on types {} and {} are not supported.",
                name(left),
                name(right)
            ));
        };
        if op == ArithOp::Add && *l == DataType::String && *r == DataType::String {
            return Ok(DataType::String);
        }
        if l.is_numeric() && r.is_numeric() {
            let resolve = |a: (u8, u8), b: (u8, u8)| op.decimal_result(a, b);
            if l.can_implicitly_cast(r) {
                return Ok(match (l.as_decimal(), r) {
                    (Some(a), DataType::Decimal { precision, scale }) => {
                        resolve(a, (*precision, *scale))
                    }
                    _ => r.clone(),
                });
            }
            if r.can_implicitly_cast(l) {
                return Ok(match (l, r.as_decimal()) {
                    (DataType::Decimal { precision, scale }, Some(b)) => {
                        resolve((*precision, *scale), b)
                    }
                    _ => l.clone(),
                });
            }
        }
        Err(format!(
            "Unsupported arithmetic types. {} {}",
            l.base_name(),
            r.base_name()
        ))
    }

    /// The common type two numeric operands are widened to for arithmetic and comparison.
    pub fn numeric_common(a: &DataType, b: &DataType) -> Option<DataType> {
        use DataType::*;
        Some(match (a, b) {
            (Double, x) | (x, Double) if x.is_numeric() => Double,
            (Decimal { .. }, x) | (x, Decimal { .. }) if x.is_numeric() => {
                DataType::decimal_widen(a, b)?
            }
            (BigInt, x) | (x, BigInt) if x.is_integral() => BigInt,
            (Int, Int) => Int,
            _ => return None,
        })
    }
}

/// A DECIMAL type from computed precision and scale, saturated to what the type holds.
fn decimal(precision: u32, scale: u32) -> DataType {
    let cap = u32::from(u8::MAX);
    DataType::Decimal {
        precision: precision.clamp(1, cap) as u8,
        scale: scale.min(precision).min(cap) as u8,
    }
}

/// The arithmetic operators, for result typing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl ArithOp {
    /// ksqlDB's `SqlDecimal.add/subtract/multiply/divide/modulus` result types.
    pub fn decimal_result(self, (p1, s1): (u8, u8), (p2, s2): (u8, u8)) -> DataType {
        let (p1, s1, p2, s2) = (u32::from(p1), u32::from(s1), u32::from(p2), u32::from(s2));
        match self {
            ArithOp::Add | ArithOp::Sub => {
                let scale = s1.max(s2);
                decimal(scale + (p1 - s1).max(p2 - s2) + 1, scale)
            }
            ArithOp::Mul => decimal(p1 + p2 + 1, s1 + s2),
            ArithOp::Div => {
                let scale = 6.max(s1 + p2 + 1);
                decimal(p1 - s1 + s2 + scale, scale)
            }
            ArithOp::Mod => {
                let scale = s1.max(s2);
                decimal((p1 - s1).min(p2 - s2) + scale, scale)
            }
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Boolean => f.write_str("BOOLEAN"),
            DataType::Int => f.write_str("INTEGER"),
            DataType::BigInt => f.write_str("BIGINT"),
            DataType::Double => f.write_str("DOUBLE"),
            DataType::Decimal { precision, scale } => write!(f, "DECIMAL({precision}, {scale})"),
            DataType::String => f.write_str("STRING"),
            DataType::Bytes => f.write_str("BYTES"),
            DataType::Timestamp => f.write_str("TIMESTAMP"),
            DataType::Date => f.write_str("DATE"),
            DataType::Time => f.write_str("TIME"),
            DataType::Array(t) => write!(f, "ARRAY<{t}>"),
            DataType::Map(k, v) => write!(f, "MAP<{k}, {v}>"),
            DataType::Struct(fields) => {
                f.write_str("STRUCT<")?;
                for (i, (name, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "`{}` {t}", name.replace('`', "``"))?;
                }
                f.write_str(">")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_ksqldb() {
        assert_eq!(DataType::Int.to_string(), "INTEGER");
        assert_eq!(
            DataType::Map(Box::new(DataType::String), Box::new(DataType::BigInt)).to_string(),
            "MAP<STRING, BIGINT>"
        );
        assert_eq!(
            DataType::Struct(vec![("A".into(), DataType::Int)]).to_string(),
            "STRUCT<`A` INTEGER>"
        );
    }

    #[test]
    fn numeric_widening() {
        assert_eq!(
            DataType::numeric_common(&DataType::Int, &DataType::BigInt),
            Some(DataType::BigInt)
        );
        assert_eq!(
            DataType::numeric_common(&DataType::Int, &DataType::Double),
            Some(DataType::Double)
        );
        assert_eq!(
            DataType::numeric_common(&DataType::Int, &DataType::String),
            None
        );
        assert!(DataType::Int.coerces_to(&DataType::BigInt));
        assert!(!DataType::BigInt.coerces_to(&DataType::Int));
    }

    fn dec(precision: u8, scale: u8) -> DataType {
        DataType::Decimal { precision, scale }
    }

    #[test]
    fn arithmetic_result_types_follow_ksqldb_operator() {
        let r = |op, l: &DataType, r: &DataType| DataType::arithmetic_result(op, Some(l), Some(r));
        assert_eq!(
            r(ArithOp::Add, &DataType::Int, &DataType::BigInt),
            Ok(DataType::BigInt)
        );
        assert_eq!(
            r(ArithOp::Mul, &DataType::BigInt, &DataType::Double),
            Ok(DataType::Double)
        );
        assert_eq!(r(ArithOp::Add, &dec(4, 2), &dec(4, 2)), Ok(dec(5, 2)));
        assert_eq!(r(ArithOp::Sub, &dec(4, 2), &DataType::Int), Ok(dec(13, 2)));
        assert_eq!(r(ArithOp::Mul, &dec(4, 2), &dec(3, 1)), Ok(dec(8, 3)));
        assert_eq!(r(ArithOp::Div, &dec(4, 2), &dec(4, 2)), Ok(dec(11, 7)));
        assert_eq!(r(ArithOp::Mod, &dec(4, 2), &dec(3, 1)), Ok(dec(4, 2)));
        assert_eq!(
            r(ArithOp::Add, &DataType::String, &DataType::String),
            Ok(DataType::String)
        );
        assert_eq!(
            r(ArithOp::Add, &DataType::Boolean, &dec(2, 1)),
            Err("Unsupported arithmetic types. BOOLEAN DECIMAL".into())
        );
        assert_eq!(
            DataType::arithmetic_result(ArithOp::Add, Some(&DataType::Int), None),
            Err("Arithmetic on types INTEGER and null are not supported.".into())
        );
        assert_eq!(
            DataType::arithmetic_result(ArithOp::Mul, None, None),
            Err("Arithmetic on types null and null are not supported.".into())
        );
    }

    #[test]
    fn coercion_strict_and_lax() {
        use DataType::*;
        assert_eq!(Int.can_coerce(&dec(4, 2), false), Some(dec(12, 2)));
        assert_eq!(BigInt.can_coerce(&Double, false), Some(Double));
        assert_eq!(BigInt.can_coerce(&Int, false), None);
        assert_eq!(String.can_coerce(&Timestamp, false), Some(Timestamp));
        assert_eq!(Int.can_coerce(&String, false), None);
        assert_eq!(Int.can_coerce(&String, true), Some(String));
        assert_eq!(String.can_coerce(&Boolean, true), Some(Boolean));
        let a = Struct(vec![("X".into(), Int), ("Y".into(), BigInt)]);
        let b = Struct(vec![("Y".into(), Int), ("Z".into(), BigInt)]);
        assert_eq!(
            b.can_coerce(&a, false),
            Some(Struct(vec![
                ("Y".into(), BigInt),
                ("Z".into(), BigInt),
                ("X".into(), Int)
            ]))
        );
        assert!(Int.can_implicitly_cast(&dec(2, 1)));
        assert!(!Double.can_implicitly_cast(&BigInt));
    }
}
