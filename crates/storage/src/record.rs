//! Topic records as Kafka has them: key, value, timestamp, headers; and their on-disk form.

use crate::{Result, StorageError};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    /// `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub partition: u32,
    pub offset: u64,
    pub record: Record,
}

const VERSION: u8 = 1;

fn put_opt(b: Option<&[u8]>, out: &mut Vec<u8>) {
    match b {
        None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        Some(b) => {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
    }
}

impl Record {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        put_opt(self.key.as_deref(), out);
        put_opt(self.value.as_deref(), out);
        out.extend_from_slice(&(self.headers.len() as u32).to_le_bytes());
        for (k, v) in &self.headers {
            put_opt(Some(k.as_bytes()), out);
            put_opt(v.as_deref(), out);
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Record> {
        let mut r = Reader { b: bytes, pos: 0 };
        let version = r.take(1)?[0];
        if version != VERSION {
            return Err(r.corrupt(format!("unknown record version {version}")));
        }
        let timestamp = i64::from_le_bytes(r.array()?);
        let key = r.opt()?;
        let value = r.opt()?;
        let n = u32::from_le_bytes(r.array()?);
        let mut headers = Vec::with_capacity((n as usize).min(64));
        for _ in 0..n {
            let k = r.opt()?.unwrap_or_default();
            let k =
                String::from_utf8(k).map_err(|_| r.corrupt("header key is not UTF-8".into()))?;
            headers.push((k, r.opt()?));
        }
        Ok(Record {
            key,
            value,
            timestamp,
            headers,
        })
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn corrupt(&self, detail: String) -> StorageError {
        StorageError::Corrupt {
            what: "log record",
            detail,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.b.len() => {
                let s = &self.b[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            _ => Err(self.corrupt(format!("truncated at byte {}", self.pos))),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn opt(&mut self) -> Result<Option<Vec<u8>>> {
        let n = u32::from_le_bytes(self.array()?);
        if n == u32::MAX {
            return Ok(None);
        }
        Ok(Some(self.take(n as usize)?.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_tombstone_and_headers() {
        let r = Record {
            key: Some(b"k".to_vec()),
            value: None,
            timestamp: -5,
            headers: vec![("h".into(), Some(vec![1, 2])), ("n".into(), None)],
        };
        let mut buf = Vec::new();
        r.encode(&mut buf);
        assert_eq!(Record::decode(&buf).unwrap(), r);
        for cut in 0..buf.len() {
            assert!(Record::decode(&buf[..cut]).is_err());
        }
    }
}
