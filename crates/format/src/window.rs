//! Windowed keys, as Kafka Streams writes them (and so ksqlDB): the key's bytes in its key
//! format, then the window. A time window (tumbling, hopping) adds its start as 8 bytes
//! big-endian, its end being start + size; a session window adds its end, then its start.

use crate::{Result, invalid};
use sluice_common::{WindowKind, WindowSpec};

/// Bytes the window adds after the key.
fn suffix_len(spec: &WindowSpec) -> usize {
    match spec.kind {
        WindowKind::Session => 16,
        WindowKind::Tumbling | WindowKind::Hopping => 8,
    }
}

/// Appends a window to a key's bytes.
pub fn append_window(key: &mut Vec<u8>, spec: &WindowSpec, start: i64, end: i64) {
    match spec.kind {
        WindowKind::Session => {
            key.extend_from_slice(&end.to_be_bytes());
            key.extend_from_slice(&start.to_be_bytes());
        }
        WindowKind::Tumbling | WindowKind::Hopping => key.extend_from_slice(&start.to_be_bytes()),
    }
}

/// Splits a windowed key into the key's own bytes and the window's (start, end).
pub fn split_window<'a>(bytes: &'a [u8], spec: &WindowSpec) -> Result<(&'a [u8], i64, i64)> {
    let n = suffix_len(spec);
    let Some(at) = bytes.len().checked_sub(n) else {
        return invalid(format!(
            "windowed key of {} bytes is shorter than its {} window ({n} bytes)",
            bytes.len(),
            spec.kind
        ));
    };
    let (key, window) = bytes.split_at(at);
    let long = |b: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        i64::from_be_bytes(a)
    };
    let (start, end) = match spec.kind {
        WindowKind::Session => (long(&window[8..16]), long(&window[..8])),
        WindowKind::Tumbling | WindowKind::Hopping => {
            let start = long(&window[..8]);
            (start, start.saturating_add(spec.size_ms.unwrap_or(0)))
        }
    };
    Ok((key, start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_round_trip_and_short_keys_are_errors() {
        let session = WindowSpec {
            kind: WindowKind::Session,
            size_ms: None,
        };
        let tumbling = WindowSpec {
            kind: WindowKind::Tumbling,
            size_ms: Some(30_000),
        };
        let mut k = b"key".to_vec();
        append_window(&mut k, &session, 12_345, 34_555);
        assert_eq!(k.len(), 3 + 16);
        assert_eq!(&k[3..11], &34_555i64.to_be_bytes());
        assert_eq!(
            split_window(&k, &session).unwrap(),
            (&b"key"[..], 12_345, 34_555)
        );
        let mut k = b"key".to_vec();
        append_window(&mut k, &tumbling, 60_000, 90_000);
        assert_eq!(
            split_window(&k, &tumbling).unwrap(),
            (&b"key"[..], 60_000, 90_000)
        );
        assert!(split_window(b"short", &session).is_err());
        assert!(split_window(b"", &tumbling).is_err());
    }
}
