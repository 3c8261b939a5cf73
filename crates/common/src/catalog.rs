//! What the catalog records about sources (streams and tables) and persistent queries.
//! Serialized as JSON in the catalog column family, so fields only ever get added with
//! defaults.

use crate::schema::Schema;
use crate::types::DataType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceKind {
    Stream,
    Table,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::Stream => "STREAM",
            SourceKind::Table => "TABLE",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FormatKind {
    /// No columns in this part of the record (a key format for key-less streams).
    None,
    Json,
    Kafka,
    Delimited,
}

impl fmt::Display for FormatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FormatKind::None => "NONE",
            FormatKind::Json => "JSON",
            FormatKind::Kafka => "KAFKA",
            FormatKind::Delimited => "DELIMITED",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatSpec {
    pub kind: FormatKind,
    /// DELIMITED only: the field separator.
    #[serde(default)]
    pub delimiter: Option<char>,
    /// Whether a single column is written wrapped in a JSON object (`{"COL": v}`) or as the
    /// bare value. ksqlDB wraps single value columns by default and never wraps keys.
    #[serde(default)]
    pub wrap_single_value: Option<bool>,
}

impl SourceDef {
    /// The value columns the value format carries (header columns excluded).
    pub fn payload_columns(&self) -> &[crate::schema::Column] {
        let values = self.schema.values();
        &values[..values.len() - self.headers.len().min(values.len())]
    }

    /// Why rows may not be written into this source directly (INSERT VALUES, BulkInsert),
    /// in ksqlDB's words; `None` when they may. Source streams and tables (CREATE SOURCE)
    /// are read-only, and a table written by a query belongs to that query.
    pub fn insert_refusal(&self) -> Option<String> {
        (self.read_only || (self.kind == SourceKind::Table && self.written_by.is_some())).then(
            || {
                format!(
                    "Cannot insert values into read-only {}: {}",
                    self.kind.to_string().to_lowercase(),
                    self.name
                )
            },
        )
    }
}

impl FormatSpec {
    pub fn new(kind: FormatKind) -> FormatSpec {
        FormatSpec {
            kind,
            delimiter: None,
            wrap_single_value: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceDef {
    /// Unique for the life of the database; names the source's state (table store) so a
    /// dropped and re-created name never sees stale rows.
    pub id: u64,
    pub name: String,
    pub kind: SourceKind,
    pub schema: Schema,
    pub topic: String,
    pub key_format: FormatSpec,
    pub value_format: FormatSpec,
    /// A value column to take event time from instead of the record timestamp.
    #[serde(default)]
    pub timestamp_column: Option<String>,
    /// Java DateTimeFormatter pattern for a STRING timestamp column.
    #[serde(default)]
    pub timestamp_format: Option<String>,
    /// Value columns filled from record headers instead of the value: (column, header
    /// key), where no key means every header. They come last in the schema.
    #[serde(default)]
    pub headers: Vec<(String, Option<String>)>,
    /// The persistent query writing this source, for CREATE ... AS SELECT sources.
    #[serde(default)]
    pub written_by: Option<String>,
    /// The SQL text that created the source, shown by DESCRIBE EXTENDED.
    #[serde(default)]
    pub sql: String,
    /// Declared with CREATE SOURCE STREAM/TABLE: nothing may write to it, drop its topic,
    /// replace or alter it.
    #[serde(default)]
    pub read_only: bool,
    /// A windowed source (`WINDOW_TYPE` in its WITH clause): each record's key carries a
    /// window after the key columns, read as the WINDOWSTART and WINDOWEND columns.
    #[serde(default)]
    pub window: Option<WindowSpec>,
}

/// How a windowed source's keys carry their window, as Kafka Streams writes them: a time
/// window (tumbling, hopping) appends its start (8 bytes, big-endian) to the key, its end
/// being start + size; a session window appends its end, then its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    pub kind: WindowKind,
    /// The window size in milliseconds (time windows only).
    #[serde(default)]
    pub size_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowKind {
    Tumbling,
    Hopping,
    Session,
}

impl fmt::Display for WindowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WindowKind::Tumbling => "TUMBLING",
            WindowKind::Hopping => "HOPPING",
            WindowKind::Session => "SESSION",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryDef {
    pub id: String,
    /// Unique number naming the query's state and committed offsets.
    pub num: u64,
    /// The statement that started the query; re-planned against the catalog on restart.
    pub sql: String,
    pub sink: String,
    pub sources: Vec<String>,
    /// The request properties the statement was planned with (`SET` before it, e.g.
    /// `ksql.functions.collect_list.limit`): re-planning at start-up uses these, never the
    /// defaults, so a restart cannot change what the query computes.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// The CREATE TYPE aliases the statement resolved, as they were then; `None` for
    /// queries stored before this was recorded (they resolve against the current types).
    #[serde(default)]
    pub types: Option<BTreeMap<String, DataType>>,
    /// Where the query keeps aggregate state, decided when it was created; `None` for
    /// queries stored before this was recorded (decided from what is stored).
    #[serde(default)]
    pub state_layout: Option<StateLayoutKind>,
    /// The version of the aggregate state encoding the query's state was written with (0:
    /// stored before versions were recorded).
    #[serde(default)]
    pub state_version: u32,
}

/// A `CREATE OR REPLACE ... AS SELECT` in progress: the new query, building from the log
/// beside the one it replaces, and the definition its sink takes when it takes over.
/// Kept in the catalog so a restart resumes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replacement {
    pub query: QueryDef,
    pub sink: SourceDef,
    /// The id of the query it replaces.
    pub replaces: String,
}

/// Where an aggregation keeps each group's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateLayoutKind {
    /// Under its own key, beside the sink table's row.
    Separate,
    /// Appended to the sink table's row (one write per update).
    InSinkRow,
}
