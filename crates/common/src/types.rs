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

    /// The common type two numeric operands are widened to for arithmetic and comparison.
    pub fn numeric_common(a: &DataType, b: &DataType) -> Option<DataType> {
        use DataType::*;
        Some(match (a, b) {
            (Double, x) | (x, Double) if x.is_numeric() => Double,
            (
                Decimal {
                    precision: p1,
                    scale: s1,
                },
                Decimal {
                    precision: p2,
                    scale: s2,
                },
            ) => {
                let scale = (*s1).max(*s2);
                let int = (p1 - s1).max(p2 - s2);
                Decimal {
                    precision: (int + scale).min(38),
                    scale,
                }
            }
            (Decimal { precision, scale }, x) | (x, Decimal { precision, scale })
                if x.is_integral() =>
            {
                let int_digits = if *x == Int { 10 } else { 19 };
                let int = (precision - scale).max(int_digits);
                Decimal {
                    precision: (int + scale).min(38),
                    scale: *scale,
                }
            }
            (BigInt, x) | (x, BigInt) if x.is_integral() => BigInt,
            (Int, Int) => Int,
            _ => return None,
        })
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
                    write!(f, "`{name}` {t}")?;
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
}
