//! PRINT's text, rendered on the server as ksqlDB renders it (its `RecordFormatter` and
//! `TopicStreamWriter`): the CLI only prints the lines it is sent.
//!
//! A record becomes `rowtime: 2022/03/18 15:53:22.989 Z, key: 18, value: {...}, partition: 0`.
//! PRINT does not know the topic's formats, so it guesses them from the bytes: each of key
//! and value keeps a list of candidate formats, drops every format that fails to read a
//! record, and shows each record as the first candidate left reads it. Whenever a list
//! changes, a `Key format: ...` / `Value format: ...` line says what is still possible.

use sluice_expr::temporal::{self, Zone};
use sluice_storage::StoredRecord;

/// The one column of PRINT's result: each row is a line of text.
pub const COLUMN: &str = "LINE";

/// `ConsumerRecord.NO_TIMESTAMP`.
const NO_TIMESTAMP: i64 = -1;
/// ksqlDB's rowtime pattern, in UTC (zone id `Z`).
const ROWTIME_PATTERN: &str = "yyyy/MM/dd HH:mm:ss.SSS z";
const NO_DATA: &str = "¯\\_(ツ)_/¯ - no data processed";
const NO_FORMAT: &str = " does not match any supported format. \
    It may be a STRING with encoding other than UTF8, or some other format.";

/// The formats PRINT tries, in ksqlDB's order (the order decides which reading is shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    Avro,
    Protobuf,
    Json,
    JsonSr,
    KafkaInt,
    KafkaBigint,
    KafkaDouble,
    KafkaString,
    /// Always readable; never named in the format lines.
    UnrecognisedBytes,
}

const BASES: [Base; 9] = [
    Base::Avro,
    Base::Protobuf,
    Base::Json,
    Base::JsonSr,
    Base::KafkaInt,
    Base::KafkaBigint,
    Base::KafkaDouble,
    Base::KafkaString,
    Base::UnrecognisedBytes,
];

impl Base {
    fn name(self) -> &'static str {
        match self {
            Base::Avro => "AVRO",
            Base::Protobuf => "PROTOBUF",
            Base::Json => "JSON",
            Base::JsonSr => "JSON_SR",
            Base::KafkaInt => "KAFKA_INT",
            Base::KafkaBigint => "KAFKA_BIGINT",
            Base::KafkaDouble => "KAFKA_DOUBLE",
            Base::KafkaString => "KAFKA_STRING",
            Base::UnrecognisedBytes => "UNRECOGNISED_BYTES",
        }
    }

    /// The text of `bytes` read in this format, or `None` where the format cannot read them.
    fn read(self, bytes: &[u8]) -> Option<String> {
        match self {
            // These need the schema a registry holds for the id the record names, and Sluice
            // has no schema registry: no record reads as them.
            Base::Avro | Base::Protobuf | Base::JsonSr => None,
            Base::Json => {
                let text = utf8_text(bytes)?;
                parses_as_json(text).then(|| text.to_string())
            }
            Base::KafkaInt => Some(i32::from_be_bytes(bytes.try_into().ok()?).to_string()),
            Base::KafkaBigint => Some(i64::from_be_bytes(bytes.try_into().ok()?).to_string()),
            Base::KafkaDouble => Some(sluice_common::value::format_double(f64::from_be_bytes(
                bytes.try_into().ok()?,
            ))),
            Base::KafkaString => utf8_text(bytes).map(str::to_string),
            Base::UnrecognisedBytes => Some(kafka_bytes_text(bytes)),
        }
    }
}

/// Text for the string and JSON readers: not empty, and UTF-8 that Java decodes without a
/// replacement character (ksqlDB rejects any text containing U+FFFD, even a genuine one).
fn utf8_text(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    (!text.is_empty() && !text.contains('\u{fffd}')).then_some(text)
}

/// Whether Jackson's `readTree` accepts the text: one JSON value (what follows it is not
/// read), or nothing but whitespace.
fn parses_as_json(text: &str) -> bool {
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
    match values.next() {
        None => true,
        Some(first) => first.is_ok(),
    }
}

/// Kafka's `Bytes.toString()`: printable ASCII as is (but `\`), anything else as `\xNN`.
fn kafka_bytes_text(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (b' '..=b'~').contains(&b) && b != b'\\' {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\x{b:02X}");
        }
    }
    out
}

/// Kafka Streams' windowed key layouts, tried (for keys only) before each plain format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    /// `key ++ end ++ start` (big-endian milliseconds).
    Session,
    /// `key ++ start`.
    Hopping,
    Tumbling,
}

impl Window {
    fn name(self) -> &'static str {
        match self {
            Window::Session => "SESSION",
            Window::Hopping => "HOPPING",
            Window::Tumbling => "TUMBLING",
        }
    }

    fn read(self, base: Base, bytes: &[u8]) -> Option<String> {
        // Kafka's windowed deserializers read empty data as null.
        if bytes.is_empty() {
            return Some("<null>".into());
        }
        let long_at = |from: usize| -> Option<i64> {
            Some(i64::from_be_bytes(
                bytes.get(from..from + 8)?.try_into().ok()?,
            ))
        };
        match self {
            Window::Session => {
                let key_len = bytes.len().checked_sub(16)?;
                let key = base.read(bytes.get(..key_len)?)?;
                let (end, start) = (long_at(key_len)?, long_at(key_len + 8)?);
                // A window cannot start before the epoch or end before it starts.
                (start >= 0 && end >= start).then(|| format!("[{key}@{start}/{end}]"))
            }
            Window::Hopping | Window::Tumbling => {
                let key_len = bytes.len().checked_sub(8)?;
                let key = base.read(bytes.get(..key_len)?)?;
                let start = long_at(key_len)?;
                // The end is not in the bytes, so it is not shown.
                (start >= 0).then(|| format!("[{key}@{start}/-]"))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Format {
    window: Option<Window>,
    base: Base,
}

impl Format {
    fn name(self) -> String {
        match self.window {
            Some(w) => format!("{}({})", w.name(), self.base.name()),
            None => self.base.name().to_string(),
        }
    }

    fn read(self, bytes: &[u8]) -> Option<String> {
        match self.window {
            Some(w) => w.read(self.base, bytes),
            None => self.base.read(bytes),
        }
    }
}

/// The candidate formats of one side (key or value) of a topic's records.
#[derive(Debug, Clone)]
struct Candidates {
    formats: Vec<Format>,
    seen_data: bool,
}

impl Candidates {
    fn new(windowed: bool) -> Candidates {
        let mut formats = Vec::new();
        for base in BASES {
            if windowed && base != Base::UnrecognisedBytes {
                for w in [Window::Session, Window::Hopping, Window::Tumbling] {
                    formats.push(Format {
                        window: Some(w),
                        base,
                    });
                }
            }
            formats.push(Format { window: None, base });
        }
        Candidates {
            formats,
            seen_data: false,
        }
    }

    fn possible(&self) -> Vec<String> {
        if !self.seen_data {
            return vec![NO_DATA.to_string()];
        }
        self.formats
            .iter()
            .filter(|f| f.window.is_some() || f.base != Base::UnrecognisedBytes)
            .map(|f| f.name())
            .collect()
    }

    /// The bytes as the first candidate that reads them; candidates that cannot are dropped.
    fn format(&mut self, bytes: Option<&[u8]>) -> String {
        let Some(bytes) = bytes else {
            return "<null>".into();
        };
        self.seen_data = true;
        let mut first = None;
        self.formats.retain(|f| match f.read(bytes) {
            Some(text) => {
                first.get_or_insert(text);
                true
            }
            None => false,
        });
        first.unwrap_or_else(|| "<Failed to deserialize>".into())
    }
}

/// Formats the records of one PRINT, narrowing its format guesses as records come.
#[derive(Debug, Clone)]
pub struct RecordFormatter {
    keys: Candidates,
    values: Candidates,
    zone: Zone,
}

impl Default for RecordFormatter {
    fn default() -> Self {
        RecordFormatter {
            keys: Candidates::new(true),
            values: Candidates::new(false),
            zone: Zone::parse("Z").unwrap_or_else(Zone::utc),
        }
    }
}

impl RecordFormatter {
    /// The lines of a batch of records. If the batch ruled out the format that was being
    /// shown, the whole batch is formatted again, so it reads consistently.
    pub fn format(&mut self, records: &[StoredRecord]) -> Vec<String> {
        let active_key = self.keys.possible().into_iter().next();
        let active_value = self.values.possible().into_iter().next();
        let lines = self.format_all(records);
        let still =
            |now: Vec<String>, was: &Option<String>| was.as_ref().is_some_and(|w| now.contains(w));
        if still(self.keys.possible(), &active_key) && still(self.values.possible(), &active_value)
        {
            lines
        } else {
            self.format_all(records)
        }
    }

    fn format_all(&mut self, records: &[StoredRecord]) -> Vec<String> {
        records.iter().map(|r| self.format_record(r)).collect()
    }

    fn format_record(&mut self, r: &StoredRecord) -> String {
        let key = self.keys.format(r.record.key.as_deref());
        let value = self.values.format(r.record.value.as_deref());
        format!(
            "rowtime: {}, key: {key}, value: {value}, partition: {}",
            self.rowtime(r.record.timestamp),
            r.partition
        )
    }

    fn rowtime(&self, ts: i64) -> String {
        if ts == NO_TIMESTAMP {
            return "N/A".into();
        }
        temporal::format_timestamp(ts, ROWTIME_PATTERN, &self.zone)
            .unwrap_or_else(|| ts.to_string())
    }
}

/// Says which formats are still possible whenever that changes (and once at the start).
#[derive(Debug, Clone, Default)]
pub struct FormatsTracker {
    keys: Option<Vec<String>>,
    values: Option<Vec<String>>,
}

impl FormatsTracker {
    /// The `Key format:` / `Value format:` lines due after a batch was formatted.
    pub fn update(&mut self, formatter: &RecordFormatter) -> Vec<String> {
        let mut lines = Vec::new();
        let sides = [
            (&mut self.keys, formatter.keys.possible(), "Key format: "),
            (
                &mut self.values,
                formatter.values.possible(),
                "Value format: ",
            ),
        ];
        for (shown, now, prefix) in sides {
            if shown.as_ref() == Some(&now) {
                continue;
            }
            lines.push(if now.is_empty() {
                format!("{prefix}{NO_FORMAT}")
            } else {
                format!("{prefix}{}", now.join(" or "))
            });
            *shown = Some(now);
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_storage::Record;

    fn rec(key: Option<&[u8]>, value: Option<&[u8]>, ts: i64, partition: u32) -> StoredRecord {
        StoredRecord {
            partition,
            offset: 0,
            seq: 0,
            record: Record {
                key: key.map(<[u8]>::to_vec),
                value: value.map(<[u8]>::to_vec),
                timestamp: ts,
                headers: vec![],
            },
        }
    }

    #[test]
    fn record_lines_as_ksqldb_prints_them() {
        let mut f = RecordFormatter::default();
        let mut t = FormatsTracker::default();
        let lines = f.format(&[rec(
            Some(b"18"),
            Some(br#"{"orderid":18}"#),
            1_647_618_802_989,
            0,
        )]);
        assert_eq!(
            t.update(&f),
            [
                "Key format: JSON or KAFKA_STRING",
                "Value format: JSON or KAFKA_STRING"
            ]
        );
        assert_eq!(
            lines,
            [r#"rowtime: 2022/03/18 15:53:22.989 Z, key: 18, value: {"orderid":18}, partition: 0"#]
        );
        // Unchanged formats are not repeated.
        f.format(&[rec(Some(b"19"), Some(b"{}"), 0, 1)]);
        assert!(t.update(&f).is_empty());
    }

    #[test]
    fn rowtimes() {
        let f = RecordFormatter::default();
        assert_eq!(f.rowtime(0), "1970/01/01 00:00:00.000 Z");
        assert_eq!(f.rowtime(-2), "1969/12/31 23:59:59.998 Z");
        assert_eq!(f.rowtime(NO_TIMESTAMP), "N/A");
    }

    #[test]
    fn nulls_and_tombstones() {
        let mut f = RecordFormatter::default();
        let mut t = FormatsTracker::default();
        let lines = f.format(&[rec(None, None, 0, 0)]);
        assert_eq!(
            lines[0],
            "rowtime: 1970/01/01 00:00:00.000 Z, key: <null>, value: <null>, partition: 0"
        );
        // Nothing was read yet.
        assert_eq!(
            t.update(&f),
            [
                format!("Key format: {NO_DATA}"),
                format!("Value format: {NO_DATA}")
            ]
        );
    }

    #[test]
    fn numbers_by_length() {
        let mut f = RecordFormatter::default();
        let mut t = FormatsTracker::default();
        let lines = f.format(&[rec(
            Some(&7i32.to_be_bytes()),
            Some(&1.5f64.to_be_bytes()),
            0,
            0,
        )]);
        // Eight bytes read as a BIGINT first: the two cannot be told apart, and the first
        // format left decides what is shown.
        let bigint = i64::from_be_bytes(1.5f64.to_be_bytes());
        assert!(
            lines[0].contains(&format!("key: 7, value: {bigint},")),
            "{lines:?}"
        );
        assert_eq!(
            t.update(&f),
            [
                "Key format: KAFKA_INT or KAFKA_STRING",
                "Value format: KAFKA_BIGINT or KAFKA_DOUBLE"
            ]
        );
        assert_eq!(
            Base::KafkaDouble.read(&1.5f64.to_be_bytes()).as_deref(),
            Some("1.5")
        );
    }

    #[test]
    fn a_batch_is_reformatted_when_it_rules_out_the_shown_format() {
        let mut f = RecordFormatter::default();
        // "1" reads as JSON, "a" does not: the whole batch is then shown as strings
        // (identical text here), and the lines say so.
        let lines = f.format(&[
            rec(Some(b"k"), Some(b"1"), 0, 0),
            rec(Some(b"k"), Some(b"a"), 0, 0),
        ]);
        assert_eq!(lines.len(), 2);
        let mut t = FormatsTracker::default();
        assert_eq!(t.update(&f)[1], "Value format: KAFKA_STRING");
    }

    #[test]
    fn windowed_keys() {
        let mut key = b"k".to_vec();
        key.extend_from_slice(&1000i64.to_be_bytes());
        let mut f = RecordFormatter::default();
        let lines = f.format(&[rec(Some(&key), Some(b"x"), 0, 0)]);
        assert!(lines[0].contains("key: [k@1000/-],"), "{lines:?}");
        let mut t = FormatsTracker::default();
        assert_eq!(
            t.update(&f)[0],
            "Key format: HOPPING(KAFKA_STRING) or TUMBLING(KAFKA_STRING)"
        );

        let mut session = b"k".to_vec();
        session.extend_from_slice(&2000i64.to_be_bytes());
        session.extend_from_slice(&1000i64.to_be_bytes());
        let mut f = RecordFormatter::default();
        let lines = f.format(&[rec(Some(&session), Some(b"x"), 0, 0)]);
        assert!(lines[0].contains("key: [k@1000/2000],"), "{lines:?}");

        // A negative start is no window.
        assert_eq!(
            Window::Hopping.read(Base::KafkaString, &[b'k', 0xff, 0, 0, 0, 0, 0, 0, 0]),
            None
        );
    }

    #[test]
    fn unreadable_bytes() {
        let mut f = RecordFormatter::default();
        let mut t = FormatsTracker::default();
        let lines = f.format(&[rec(Some(b"k"), Some(&[0xff, b'a', b'\\']), 0, 0)]);
        assert!(lines[0].contains(r"value: \xFFa\x5C,"), "{lines:?}");
        assert_eq!(t.update(&f)[1], format!("Value format: {NO_FORMAT}"));
        assert_eq!(t.update(&f), Vec::<String>::new());
    }

    #[test]
    fn json_as_jackson_reads_it() {
        assert!(parses_as_json(r#"{"a":1}"#));
        assert!(parses_as_json("1 2"));
        assert!(parses_as_json("  "));
        assert!(!parses_as_json("abc"));
        assert!(!parses_as_json("{\"a\":"));
        assert_eq!(Base::Json.read(b""), None);
        assert_eq!(Base::KafkaString.read("\u{fffd}".as_bytes()), None);
    }
}
