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
    /// The record's position in the whole log, across topics and partitions: a record
    /// committed later has a higher one, and the records of one transaction are numbered
    /// in the order they were appended. 0 for records written before the log kept it.
    pub seq: u64,
    pub record: Record,
}

/// A record as first written: no log position.
const VERSION: u8 = 1;
/// A record with its log position (2 is taken by batch entries, which start alike).
const VERSION_SEQ: u8 = 3;

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
    pub(crate) fn encode(&self, seq: u64, out: &mut Vec<u8>) {
        out.push(VERSION_SEQ);
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        put_opt(self.key.as_deref(), out);
        put_opt(self.value.as_deref(), out);
        out.extend_from_slice(&(self.headers.len() as u32).to_le_bytes());
        for (k, v) in &self.headers {
            put_opt(Some(k.as_bytes()), out);
            put_opt(v.as_deref(), out);
        }
    }

    #[cfg(test)]
    fn decode(bytes: &[u8]) -> Result<(Record, u64)> {
        let mut r = Reader { b: bytes, pos: 0 };
        let rec = Record::read(&mut r)?;
        if r.pos != bytes.len() {
            return Err(r.corrupt(format!("{} trailing bytes", bytes.len() - r.pos)));
        }
        Ok(rec)
    }

    /// Moves past one encoded record, checking its framing but copying nothing.
    fn skip(r: &mut Reader<'_>) -> Result<()> {
        match r.take(1)?[0] {
            VERSION => {}
            VERSION_SEQ => {
                r.take(8)?;
            }
            version => return Err(r.corrupt(format!("unknown record version {version}"))),
        }
        r.take(8)?;
        r.skip_opt()?;
        r.skip_opt()?;
        let n = u32::from_le_bytes(r.array()?);
        for _ in 0..n {
            r.skip_opt()?;
            r.skip_opt()?;
        }
        Ok(())
    }

    /// One record and its log position.
    fn read(r: &mut Reader<'_>) -> Result<(Record, u64)> {
        let seq = match r.take(1)?[0] {
            VERSION => 0,
            VERSION_SEQ => u64::from_le_bytes(r.array()?),
            version => return Err(r.corrupt(format!("unknown record version {version}"))),
        };
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
        Ok((
            Record {
                key,
                value,
                timestamp,
                headers,
            },
            seq,
        ))
    }
}

/// A log entry holding consecutive records of one partition, as Kafka's record batches do:
/// one RocksDB key per committed run of records instead of one per record, which takes the
/// memtable insert (a skiplist search) off the per-record path. Keyed by its first offset.
const BATCH_VERSION: u8 = 2;

/// Appends records to a batch entry under construction.
pub(crate) struct BatchBuilder {
    buf: Vec<u8>,
    count: u32,
}

impl BatchBuilder {
    pub(crate) fn new() -> BatchBuilder {
        let mut buf = Vec::with_capacity(4096);
        buf.push(BATCH_VERSION);
        buf.extend_from_slice(&0u32.to_le_bytes());
        BatchBuilder { buf, count: 0 }
    }

    pub(crate) fn push(&mut self, record: &Record, seq: u64) {
        record.encode(seq, &mut self.buf);
        self.count += 1;
    }

    pub(crate) fn len(&self) -> u32 {
        self.count
    }

    pub(crate) fn bytes(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.buf[1..5].copy_from_slice(&self.count.to_le_bytes());
        self.buf
    }
}

/// The records of one log entry (a batch, or a single record as written before batches),
/// read one at a time: a reader starting inside an entry skips the records before its
/// offset without copying them, and stops at its limit without decoding the rest.
pub(crate) struct Entry<'a> {
    r: Reader<'a>,
    remaining: u32,
}

impl<'a> Entry<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Entry<'a>> {
        let mut r = Reader { b: bytes, pos: 0 };
        let remaining = match bytes.first() {
            Some(&BATCH_VERSION) => {
                r.take(1)?;
                u32::from_le_bytes(r.array()?)
            }
            Some(_) => 1,
            None => return Err(r.corrupt("empty log entry".into())),
        };
        Ok(Entry { r, remaining })
    }

    /// Records left to read.
    pub(crate) fn len(&self) -> u64 {
        self.remaining as u64
    }

    /// Passes over up to `n` records without decoding their contents.
    pub(crate) fn skip(&mut self, n: u64) -> Result<()> {
        for _ in 0..n.min(self.remaining as u64) {
            Record::skip(&mut self.r)?;
            self.finish_one()?;
        }
        Ok(())
    }

    /// The next record and its log position.
    pub(crate) fn next_record(&mut self) -> Result<Option<(Record, u64)>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let record = Record::read(&mut self.r)?;
        self.finish_one()?;
        Ok(Some(record))
    }

    /// Counts a record read; after the last, the entry must have been consumed exactly.
    fn finish_one(&mut self) -> Result<()> {
        self.remaining -= 1;
        if self.remaining == 0 && self.r.pos != self.r.b.len() {
            return Err(self
                .r
                .corrupt(format!("{} trailing bytes", self.r.b.len() - self.r.pos)));
        }
        Ok(())
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

    fn skip_opt(&mut self) -> Result<()> {
        let n = u32::from_le_bytes(self.array()?);
        if n != u32::MAX {
            self.take(n as usize)?;
        }
        Ok(())
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
        r.encode(7, &mut buf);
        assert_eq!(Record::decode(&buf).unwrap(), (r.clone(), 7));
        // A record written before log positions were kept still reads, at position 0.
        let mut old = vec![VERSION];
        old.extend_from_slice(&buf[9..]);
        assert_eq!(Record::decode(&old).unwrap(), (r, 0));
        for cut in 0..buf.len() {
            assert!(Record::decode(&buf[..cut]).is_err());
        }
    }

    fn all(bytes: &[u8]) -> Result<Vec<(Record, u64)>> {
        let mut e = Entry::parse(bytes)?;
        let mut out = Vec::new();
        while let Some(r) = e.next_record()? {
            out.push(r);
        }
        Ok(out)
    }

    #[test]
    fn batches_round_trip_and_single_records_still_read() {
        let recs: Vec<Record> = (0..3)
            .map(|i| Record {
                key: Some(vec![i]),
                value: Some(vec![i; i as usize]),
                timestamp: i as i64,
                headers: vec![],
            })
            .collect();
        let mut b = BatchBuilder::new();
        for (i, r) in recs.iter().enumerate() {
            b.push(r, 10 + i as u64);
        }
        assert_eq!(b.len(), 3);
        let bytes = b.finish();
        assert_eq!(Entry::parse(&bytes).unwrap().len(), 3);
        let with_seq: Vec<(Record, u64)> = recs.iter().cloned().zip(10..).collect();
        assert_eq!(all(&bytes).unwrap(), with_seq);
        for cut in 0..bytes.len() {
            assert!(all(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // Skipping passes over records without decoding them; the rest still read.
        let mut e = Entry::parse(&bytes).unwrap();
        e.skip(2).unwrap();
        assert_eq!(e.next_record().unwrap(), Some((recs[2].clone(), 12)));
        assert_eq!(e.next_record().unwrap(), None);
        let mut single = Vec::new();
        recs[1].encode(5, &mut single);
        assert_eq!(Entry::parse(&single).unwrap().len(), 1);
        assert_eq!(all(&single).unwrap(), vec![(recs[1].clone(), 5)]);
    }
}
