//! Keys of the engine's entries in the state column family.
//!
//! ```text
//!  'T' · source id u64 · memcomparable key      → table row (codec), for pull queries
//!  'A' · query num u64 · memcomparable group key → aggregate state (codec)
//!  'P' · query num u64 · memcomparable source key → last row seen (table aggregation)
//!  'O' · query num u64 · partition u32           → next source offset to read
//!  'M' · source id u64 · partition u32           → next offset a table materializer reads
//!  'S' · query num u64 · partition u32           → stream time, and the close time of the
//!                                                  last EMIT FINAL emission (windowed)
//!  'W' · query num u64 · partition u32 · memcomparable (window start, group key)
//!                                                → (group key, start, end): expiry index
//!  'F' · query num u64 · partition u32 · memcomparable (window start, group key)
//!                                                → a window's pending final row (EMIT FINAL)
//!  'R' · query num u64 · (input - 1) << 16 | partition u32
//!                                                → next offset of a join's later input
//!  'J' · query num u64 · side u8 · memcomparable join key
//!                                                → a join's table-side row (codec): its
//!                                                  time, then the row
//!  (every 'J' kind: + 16 × the join's nesting depth in an n-way join)
//!  'J' · query num u64 · 2+side · memcomparable (join key, time, seq)
//!                                                → a stream-stream join's buffered row
//!  'J' · query num u64 · 4+side · memcomparable (time, seq)
//!                                                → (join key): its expiry index
//!  'J' · query num u64 · 8 · memcomparable (foreign key, left key)
//!                                                → (left key): a foreign-key join's index
//!  'J' · query num u64 · 10 · memcomparable left key
//!                                                → a foreign-key join's left row: its
//!                                                  time, then the row
//!  'J' · query num u64 · 6 · memcomparable (time, side, seq)
//!                                                → (side, join key, row): a row an
//!                                                  outer join emits NULL-joined when its
//!                                                  window closes unmatched
//! ```
//!
//! And in the `changelog` column family:
//!
//! ```text
//!  'D' · 0 (query) or 1 (materializer) u8 · query num or source id u64 · seq u64
//!                                                → one committed batch's state changes,
//!                                                  not yet checkpointed (changelog.rs)
//! ```
//!
//! A windowed aggregation keeps each group's state per window under `'A'` with the
//! window's start after the group key; its expiry index is ordered by window start
//! within a partition, so the windows that retention expires are one range scan.

use sluice_common::Value;
use sluice_common::keycodec::encode_key;

fn prefixed(tag: u8, id: u64, extra: usize) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + extra);
    k.push(tag);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// A `[from, to)` range of keys.
pub(crate) type KeyRange = (Vec<u8>, Vec<u8>);

/// The key ranges of everything one worker keeps in the state column family: a query's
/// entries of every per-query kind above and, when it maintains a table, that table's
/// rows; a materializer's table rows and offsets. For sizing (metrics), not for reads.
pub(crate) fn worker_state_ranges(
    query_num: Option<u64>,
    table: Option<u64>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let range = |tag: u8, id: u64| (prefixed(tag, id, 0), prefixed(tag, id.saturating_add(1), 0));
    let mut out = Vec::new();
    if let Some(q) = query_num {
        out.extend([b'A', b'P', b'O', b'S', b'W', b'F', b'R', b'J'].map(|t| range(t, q)));
    }
    if let Some(t) = table {
        out.push(range(b'T', t));
        if query_num.is_none() {
            out.push(range(b'M', t));
        }
    }
    out
}

/// The prefix of a worker's state changelog records: a query's by its number, a table
/// materializer's by the table's source id (the two number spaces are apart).
pub(crate) fn changelog_prefix(query_num: Option<u64>, table: Option<u64>) -> Vec<u8> {
    let (kind, id) = match query_num {
        Some(q) => (0u8, q),
        None => (1u8, table.unwrap_or(0)),
    };
    let mut k = Vec::with_capacity(10);
    k.push(b'D');
    k.push(kind);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub(crate) fn table_prefix(source_id: u64) -> Vec<u8> {
    prefixed(b'T', source_id, 0)
}

pub(crate) fn table_key(source_id: u64, key: &[Value]) -> Vec<u8> {
    let mut k = prefixed(b'T', source_id, 16);
    encode_key(key, &mut k);
    k
}

pub(crate) fn agg_key(query: u64, key: &[Value]) -> Vec<u8> {
    let mut k = prefixed(b'A', query, 16);
    encode_key(key, &mut k);
    k
}

/// The last version of a source table row an aggregation over that table has seen, so an
/// update can be retracted from the group it was counted in.
pub(crate) fn source_row_key(query: u64, key: &[Value]) -> Vec<u8> {
    let mut k = prefixed(b'P', query, 16);
    encode_key(key, &mut k);
    k
}

/// All of a join's side rows.
pub(crate) fn join_prefix(query: u64) -> Vec<u8> {
    prefixed(b'J', query, 0)
}

/// `'J' · query · tag · memcomparable values`: a join's entries (see the kinds above).
pub(crate) fn join_entry_key(query: u64, tag: u8, values: &[Value]) -> Vec<u8> {
    let mut k = prefixed(b'J', query, 32);
    k.push(tag);
    encode_key(values, &mut k);
    k
}

/// A join's stream time (the highest record time of either input).
pub(crate) fn join_time_key(query: u64) -> Vec<u8> {
    offset_key(b'S', query, u32::MAX)
}

pub(crate) fn offset_key(tag: u8, id: u64, partition: u32) -> Vec<u8> {
    let mut k = prefixed(tag, id, 4);
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// A windowed aggregation's stream time for one partition of its groups.
pub(crate) fn stream_time_key(query: u64, partition: u32) -> Vec<u8> {
    offset_key(b'S', query, partition)
}

/// `tag · query · partition · memcomparable (time, group)`: a partition's window entries
/// in time order, so the ones up to a time are one range; `group` empty gives the bound
/// of entries before `time`.
fn timed_key(tag: u8, query: u64, partition: u32, time: i64, group: &[Value]) -> Vec<u8> {
    let mut k = offset_key(tag, query, partition);
    encode_key(&[Value::BigInt(time)], &mut k);
    encode_key(group, &mut k);
    k
}

/// The expiry index of windows of one partition, by window start (a session: its end).
pub(crate) fn window_expiry_key(
    query: u64,
    partition: u32,
    start: i64,
    group: &[Value],
) -> Vec<u8> {
    timed_key(b'W', query, partition, start, group)
}

/// A window's pending final result (EMIT FINAL), ordered by window start (a session: its
/// end) within a partition, as Kafka Streams fetches the windows that close.
pub(crate) fn pending_final_key(
    query: u64,
    partition: u32,
    start: i64,
    group: &[Value],
) -> Vec<u8> {
    timed_key(b'F', query, partition, start, group)
}

/// Where a pending final key's group key starts: after the tag, query, partition and the
/// encoded window start.
pub(crate) const PENDING_GROUP_AT: usize = 1 + 8 + 4 + 9;
