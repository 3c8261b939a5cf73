//! The statements Sluice understands. Expressions are sqlparser's.

use sluice_common::{DataType, SourceKind};
pub use sqlparser::ast::Expr;
use std::collections::BTreeMap;

/// A name as written: unquoted names are upper-cased, backticked names keep their case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub value: String,
    pub line: u64,
    pub column: u64,
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.value)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The statement's own text, without the trailing `;`.
    pub text: String,
    pub line: u64,
    pub column: u64,
    pub kind: StatementKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    None,
    Key,
    PrimaryKey,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: Name,
    pub data_type: DataType,
    pub key: KeyKind,
    /// `HEADERS` (all headers) or `HEADER('k')` (the last header named k).
    pub header: Option<HeaderSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderSpec {
    All,
    Key(String),
}

/// WITH (...) properties, names upper-cased.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Properties {
    pub values: BTreeMap<String, PropValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PropValue {
    Str(String),
    Num(String),
    Bool(bool),
}

impl std::fmt::Display for PropValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PropValue::Str(s) | PropValue::Num(s) => f.write_str(s),
            PropValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

// ASTs are built once per statement; boxing every expression would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    Wildcard,
    /// `source.*`
    QualifiedWildcard(Name),
    /// `col->*` or `col->f->*`: every field of a struct; `src.col->*` names the source.
    StructAll {
        qualifier: Option<Name>,
        path: Vec<Name>,
    },
    Expr {
        expr: Expr,
        alias: Option<Name>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub items: Vec<SelectItem>,
    pub from: Name,
    pub alias: Option<Name>,
    /// `[INNER | LEFT [OUTER] | RIGHT [OUTER] | FULL [OUTER]] JOIN ...` clauses after the
    /// FROM source, in the order written (an n-way join is left-deep).
    pub joins: Vec<Join>,
    pub selection: Option<Expr>,
    pub group_by: Vec<Expr>,
    pub having: Option<Expr>,
    pub partition_by: Vec<Expr>,
    /// `EMIT CHANGES` or `EMIT FINAL`: a push query (or a persistent query's emission).
    pub emit_changes: bool,
    /// `EMIT FINAL`: a windowed aggregation emits one row per window, when it closes.
    pub emit_final: bool,
    pub limit: Option<u64>,
    /// `WINDOW TUMBLING (...)`, `HOPPING (...)` or `SESSION (...)`.
    pub window: Option<WindowClause>,
}

/// One `JOIN source [AS alias] [WITHIN ...] ON condition` clause, as ksqlDB's grammar has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    pub kind: JoinKind,
    pub source: Name,
    pub alias: Option<Name>,
    /// `WITHIN n unit` or `WITHIN (before, after)`: a stream-stream join's window.
    pub within: Option<JoinWithin>,
    pub on: Expr,
    /// Where the join type (or `JOIN`) was written, for errors about the join.
    pub line: u64,
    pub column: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

impl JoinKind {
    /// ksqlDB's name for the join type, as its messages use it.
    pub fn as_str(self) -> &'static str {
        match self {
            JoinKind::Inner => "INNER",
            JoinKind::Left => "LEFT OUTER",
            JoinKind::Right => "RIGHT OUTER",
            JoinKind::Full => "FULL OUTER",
        }
    }
}

/// A join window in milliseconds: a record of the left source joins right records from
/// `before_ms` before its time to `after_ms` after it. `WITHIN n` is `(n, n)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWithin {
    pub before_ms: i64,
    pub after_ms: i64,
    pub grace_ms: Option<i64>,
}

/// A WINDOW clause; every duration is in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowClause {
    pub kind: WindowClauseKind,
    pub retention_ms: Option<i64>,
    pub grace_ms: Option<i64>,
    /// Where the clause's window type was written, for errors about it.
    pub line: u64,
    pub column: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WindowClauseKind {
    Tumbling { size_ms: i64 },
    Hopping { size_ms: i64, advance_ms: i64 },
    Session { gap_ms: i64 },
}

#[derive(Debug, Clone, PartialEq)]
pub enum ShowWhat {
    Streams,
    Tables,
    Queries,
    Topics,
    Functions,
    Properties,
    Types,
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum StatementKind {
    CreateSource {
        kind: SourceKind,
        name: Name,
        or_replace: bool,
        if_not_exists: bool,
        /// `CREATE SOURCE STREAM/TABLE`: a read-only source, never written by Sluice.
        read_only: bool,
        columns: Vec<ColumnDef>,
        properties: Properties,
    },
    CreateAs {
        kind: SourceKind,
        name: Name,
        or_replace: bool,
        if_not_exists: bool,
        properties: Properties,
        query: Box<Select>,
    },
    InsertValues {
        target: Name,
        columns: Option<Vec<Name>>,
        values: Vec<Expr>,
        /// `WITH (EXPECTED_VERSION = n, EVENT_ID = '...')`: Sluice's event-store checks.
        properties: Properties,
    },
    InsertSelect {
        target: Name,
        query: Box<Select>,
    },
    /// `DELETE FROM table WHERE ...`: tombstones for the keys the WHERE clause names.
    Delete {
        target: Name,
        selection: Expr,
    },
    Select(Box<Select>),
    Show(ShowWhat),
    Describe {
        name: Name,
        extended: bool,
    },
    DescribeFunction(Name),
    /// EXPLAIN of a query id or of a statement.
    Explain(ExplainTarget),
    /// `ALTER STREAM|TABLE name ADD [COLUMN] col type, ...`
    Alter {
        kind: SourceKind,
        name: Name,
        columns: Vec<ColumnDef>,
    },
    Drop {
        kind: SourceKind,
        name: Name,
        if_exists: bool,
        delete_topic: bool,
    },
    /// None terminates all queries.
    Terminate(Option<Name>),
    Print {
        topic: Name,
        from_beginning: bool,
        limit: Option<u64>,
    },
    Set {
        key: String,
        value: String,
    },
    CreateType {
        name: Name,
        data_type: DataType,
        if_not_exists: bool,
    },
    DropType {
        name: Name,
        if_exists: bool,
    },
    Unset {
        key: String,
    },
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ExplainTarget {
    Query(Name),
    Statement(Box<Statement>),
}
