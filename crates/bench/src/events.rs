//! The generic event of the ingest, groupby, stateless and freshness workloads: a keyed
//! purchase-like record whose JSON value is about `--value-size` bytes.

use crate::client::row;
use crate::rng::Rng;
use pb::value::Kind;
use sluice_proto::v1 as pb;

/// Column list for CREATE STREAM/TABLE; the key column `K` is `STRING KEY` or
/// `STRING PRIMARY KEY`.
pub fn columns(key_role: &str) -> String {
    format!(
        "K STRING {key_role}, ID BIGINT, USER_ID STRING, AMOUNT DOUBLE, QTY INT, CATEGORY STRING, PAYLOAD STRING"
    )
}

const CATEGORIES: &[&str] = &["books", "music", "garden", "toys", "food", "tools", "games"];

/// JSON bytes of a value with an empty PAYLOAD, e.g.
/// `{"ID":123456,"USER_ID":"u0012345","AMOUNT":123.45,"QTY":3,"CATEGORY":"books","PAYLOAD":""}`.
const BASE_VALUE_BYTES: usize = 88;

/// Builds event rows deterministically from (seed, index), so any stream can build any row.
#[derive(Clone)]
pub struct EventGen {
    seed: u64,
    keys: u64,
    payload: String,
}

pub fn key(k: u64) -> String {
    format!("k{k:08}")
}

impl EventGen {
    pub fn new(seed: u64, keys: u64, value_size: usize) -> EventGen {
        EventGen {
            seed,
            keys: keys.max(1),
            payload: "x".repeat(value_size.saturating_sub(BASE_VALUE_BYTES)),
        }
    }

    /// The key index of event `i`: uniform over the key space.
    pub fn key_of(&self, i: u64) -> u64 {
        Rng::new(self.seed ^ i.wrapping_mul(0xA24B_AED4_963E_E407)).below(self.keys)
    }

    pub fn row(&self, i: u64) -> pb::Row {
        self.row_with_key(i, self.key_of(i))
    }

    pub fn row_with_key(&self, i: u64, k: u64) -> pb::Row {
        let mut r = Rng::new(self.seed ^ i.wrapping_mul(0x9FB2_1C65_1E98_DF25));
        let amount = (r.below(100_000) as f64) / 100.0;
        row(vec![
            Kind::String(key(k)),
            Kind::Bigint(i as i64),
            Kind::String(format!("u{:07}", r.below(1_000_000))),
            Kind::Double(amount),
            Kind::Int(1 + r.below(10) as i32),
            Kind::String(CATEGORIES[r.below(CATEGORIES.len() as u64) as usize].to_string()),
            Kind::String(self.payload.clone()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_deterministic_and_keys_in_range() {
        let g = EventGen::new(1, 10, 100);
        for i in 0..100 {
            assert!(g.key_of(i) < 10);
            assert_eq!(g.row(i), g.row(i));
        }
        assert_eq!(g.payload.len(), 12);
    }
}
