//! Output rendering: value formatting, ASCII tables and JSON lines.
//!
//! Everything here builds strings and never touches stdout, so layouts can be unit-tested;
//! the session decides where and when the text is written.
//!
//! Table text follows ksqlDB's CLI: `null`, raw strings, `[1, 2]` for arrays, `{K=V}` for maps
//! and structs, ISO-8601 for temporal values (UTC, no zone suffix). JSON uses natural JSON
//! types, with timestamps as epoch milliseconds.

use serde_json::{Map as JsonMap, Value as Json, json};
use sluice_common::civil::{MILLIS_PER_DAY as MS_PER_DAY, civil_from_days};
use sluice_proto::v1::{Column, QueryFinal, QueryHeader, QueryRow, StatementResult, Value, value};

/// Formats a value as table text.
pub fn format_value(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut String, v: &Value) {
    use value::Kind;
    match &v.kind {
        None | Some(Kind::Null(_)) => out.push_str("null"),
        Some(Kind::Boolean(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Kind::Int(i)) => out.push_str(&i.to_string()),
        Some(Kind::Bigint(i)) => out.push_str(&i.to_string()),
        Some(Kind::Double(d)) => out.push_str(&format_double(*d)),
        Some(Kind::String(s)) | Some(Kind::Decimal(s)) => out.push_str(s),
        Some(Kind::Bytes(b)) => {
            out.push_str("0x");
            out.push_str(&hex(b));
        }
        Some(Kind::Array(a)) => {
            out.push('[');
            for (i, item) in a.items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Some(Kind::Map(m)) => {
            out.push('{');
            for (i, e) in m.entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&e.key);
                out.push('=');
                write_optional(out, e.value.as_ref());
            }
            out.push('}');
        }
        Some(Kind::Struct(s)) => {
            out.push('{');
            for (i, f) in s.fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&f.name);
                out.push('=');
                write_optional(out, f.value.as_ref());
            }
            out.push('}');
        }
        Some(Kind::Timestamp(ms)) => out.push_str(&format_timestamp(*ms)),
        Some(Kind::Date(days)) => out.push_str(&format_date(*days)),
        Some(Kind::Time(ms)) => out.push_str(&format_time(*ms)),
    }
}

fn write_optional(out: &mut String, v: Option<&Value>) {
    match v {
        Some(v) => write_value(out, v),
        None => out.push_str("null"),
    }
}

/// Shortest round-trip representation; integral values keep a `.0` so doubles stay
/// distinguishable from integers.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        "NaN".to_string()
    } else if d.is_infinite() {
        if d > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else {
        // Debug (unlike Display) keeps `.0` on integral values and switches to exponent
        // notation for very large or small magnitudes instead of printing hundreds of digits.
        format!("{d:?}")
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn format_ymd(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    if (0..=9999).contains(&y) {
        format!("{y:04}-{m:02}-{d:02}")
    } else {
        // ISO 8601 expanded years carry an explicit sign.
        format!("{y:+05}-{m:02}-{d:02}")
    }
}

/// `YYYY-MM-DD` for days since the epoch.
pub fn format_date(days: i32) -> String {
    format_ymd(i64::from(days))
}

/// `YYYY-MM-DDTHH:MM:SS.mmm` (UTC) for milliseconds since the epoch.
pub fn format_timestamp(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let of_day = ms.rem_euclid(MS_PER_DAY);
    let (h, m, s, milli) = split_ms_of_day(of_day);
    format!("{}T{h:02}:{m:02}:{s:02}.{milli:03}", format_ymd(days))
}

/// `HH:MM:SS`, plus `.mmm` when there are milliseconds, for milliseconds since midnight.
pub fn format_time(ms: i64) -> String {
    if !(0..MS_PER_DAY).contains(&ms) {
        // Not a time of day; show the raw number rather than a wrapped, misleading time.
        return ms.to_string();
    }
    let (h, m, s, milli) = split_ms_of_day(ms);
    if milli == 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}.{milli:03}")
    }
}

fn split_ms_of_day(ms: i64) -> (i64, i64, i64, i64) {
    (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

/// Converts a value to natural JSON.
pub fn value_to_json(v: &Value) -> Json {
    use value::Kind;
    match &v.kind {
        None | Some(Kind::Null(_)) => Json::Null,
        Some(Kind::Boolean(b)) => Json::Bool(*b),
        Some(Kind::Int(i)) => json!(i),
        Some(Kind::Bigint(i)) => json!(i),
        Some(Kind::Double(d)) => match serde_json::Number::from_f64(*d) {
            Some(n) => Json::Number(n),
            // JSON has no NaN or infinities.
            None => Json::String(format_double(*d)),
        },
        Some(Kind::String(s)) => Json::String(s.clone()),
        Some(Kind::Bytes(b)) => Json::String(hex(b)),
        Some(Kind::Decimal(s)) => match s.parse::<serde_json::Number>() {
            Ok(n) => Json::Number(n),
            Err(_) => Json::String(s.clone()),
        },
        Some(Kind::Array(a)) => Json::Array(a.items.iter().map(value_to_json).collect()),
        Some(Kind::Map(m)) => Json::Object(
            m.entries
                .iter()
                .map(|e| (e.key.clone(), optional_to_json(e.value.as_ref())))
                .collect(),
        ),
        Some(Kind::Struct(s)) => Json::Object(
            s.fields
                .iter()
                .map(|f| (f.name.clone(), optional_to_json(f.value.as_ref())))
                .collect(),
        ),
        Some(Kind::Timestamp(ms)) => json!(ms),
        Some(Kind::Date(days)) => Json::String(format_date(*days)),
        Some(Kind::Time(ms)) => Json::String(format_time(*ms)),
    }
}

fn optional_to_json(v: Option<&Value>) -> Json {
    v.map_or(Json::Null, value_to_json)
}

fn columns_to_json(columns: &[Column]) -> Json {
    Json::Array(
        columns
            .iter()
            .map(|c| {
                let mut o = JsonMap::new();
                o.insert("name".into(), Json::String(c.name.clone()));
                o.insert("type".into(), Json::String(c.r#type.clone()));
                if !c.role.is_empty() {
                    o.insert("role".into(), Json::String(c.role.clone()));
                }
                Json::Object(o)
            })
            .collect(),
    )
}

fn values_to_json(values: &[Value]) -> Json {
    Json::Array(values.iter().map(value_to_json).collect())
}

/// `{"header":{"queryId":..,"columns":[..]}}`
pub fn json_header(h: &QueryHeader) -> Json {
    let mut header = json!({"queryId": h.query_id, "columns": columns_to_json(&h.columns)});
    if h.push && h.position > 0 {
        header["position"] = json!(h.position);
    }
    json!({ "header": header })
}

/// `{"row":[..]}`, with the source position for push queries so a client can resume.
pub fn json_row(r: &QueryRow, push: bool) -> Json {
    let values = r.row.as_ref().map_or(&[][..], |row| &row.values[..]);
    let mut o = JsonMap::new();
    o.insert("row".into(), values_to_json(values));
    if push {
        o.insert("partition".into(), json!(r.partition));
        o.insert("offset".into(), json!(r.offset));
        // The log position to resume after (QueryRequest.start_after).
        if r.position > 0 {
            o.insert("position".into(), json!(r.position));
        }
    }
    if r.tombstone {
        o.insert("tombstone".into(), Json::Bool(true));
    }
    Json::Object(o)
}

/// `{"final":{"message":..,"rows":N}}`
pub fn json_final(f: &QueryFinal) -> Json {
    json!({"final": {"message": f.message, "rows": f.rows}})
}

/// One Execute result: statement, message, query id (if any), columns and rows.
pub fn json_statement(r: &StatementResult) -> Json {
    let mut o = JsonMap::new();
    o.insert("statement".into(), Json::String(r.statement.clone()));
    o.insert("message".into(), Json::String(r.message.clone()));
    if !r.query_id.is_empty() {
        o.insert("queryId".into(), Json::String(r.query_id.clone()));
    }
    // An insert's acknowledgement: its log position (a read-your-writes and catch-up
    // token), its key's version, and whether it was a retry of an appended event id.
    if r.position > 0 {
        o.insert("position".into(), json!(r.position));
    }
    if let Some(v) = r.version {
        o.insert("version".into(), json!(v));
    }
    if r.duplicate {
        o.insert("duplicate".into(), Json::Bool(true));
    }
    o.insert("columns".into(), columns_to_json(&r.columns));
    o.insert(
        "rows".into(),
        Json::Array(
            r.rows
                .iter()
                .map(|row| values_to_json(&row.values))
                .collect(),
        ),
    );
    Json::Object(o)
}

/// A statement the shell handled itself (SET, UNSET).
pub fn json_local(statement: &str, message: &str) -> Json {
    json!({"statement": statement, "message": message})
}

/// `{"error":{"statement":..,"message":..,"code":..}}`; the statement is omitted when the
/// error does not belong to one (e.g. a connection failure).
pub fn json_error(statement: Option<&str>, message: &str, code: tonic::Code) -> Json {
    let mut o = JsonMap::new();
    if let Some(s) = statement {
        o.insert("statement".into(), Json::String(s.to_string()));
    }
    o.insert("message".into(), Json::String(message.to_string()));
    o.insert("code".into(), Json::String(format!("{code:?}")));
    json!({ "error": Json::Object(o) })
}

/// Table cell text: the value with line breaks and tabs escaped, which would otherwise break
/// the table layout.
pub fn cell_text(v: &Value) -> String {
    escape_cell(&format_value(v))
}

fn escape_cell(s: &str) -> String {
    if !s.contains(['\n', '\r', '\t']) {
        return s.to_string();
    }
    s.replace('\n', "\\n")
        .replace('\r', "\\r")
        .replace('\t', "\\t")
}

fn display_width(s: &str) -> usize {
    s.chars().count()
}

/// Minimum column width of tables whose data is known up front.
const MIN_WIDTH: usize = 6;
/// Minimum column width of streamed tables, whose values are not known yet.
const MIN_STREAM_WIDTH: usize = 10;

/// Fixed-width table layout: a border line, `|cell |` rows, each cell padded to the column
/// width plus one space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLayout {
    widths: Vec<usize>,
}

impl TableLayout {
    /// Widths that fit the header names and every cell.
    pub fn fit(names: &[String], rows: &[Vec<String>]) -> Self {
        let mut widths: Vec<usize> = names
            .iter()
            .map(|n| display_width(n).max(MIN_WIDTH))
            .collect();
        for row in rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(display_width(cell));
                }
            }
        }
        Self { widths }
    }

    /// Widths guessed from column names and types, for rows that have not arrived yet.
    pub fn for_stream(columns: &[Column]) -> Self {
        let widths = columns
            .iter()
            .map(|c| {
                display_width(&c.name)
                    .max(type_width(&c.r#type))
                    .max(MIN_STREAM_WIDTH)
            })
            .collect();
        Self { widths }
    }

    pub fn border(&self) -> String {
        let mut s = String::from("+");
        for w in &self.widths {
            s.push_str(&"-".repeat(w + 1));
            s.push('+');
        }
        s
    }

    /// One table line; cells too long for their column are cut with a `…`. Missing cells are
    /// blank and extra cells are ignored, so a malformed row cannot break the layout.
    pub fn line(&self, cells: &[String]) -> String {
        let mut s = String::from("|");
        for (i, w) in self.widths.iter().enumerate() {
            let cell = cells.get(i).map_or("", String::as_str);
            let len = display_width(cell);
            if len > *w {
                s.extend(cell.chars().take(w.saturating_sub(1)));
                s.push('…');
                s.push(' ');
            } else {
                s.push_str(cell);
                s.push_str(&" ".repeat(w - len + 1));
            }
            s.push('|');
        }
        s
    }

    /// Header block: border, names, border (each line ends with `\n`).
    pub fn header(&self, names: &[String]) -> String {
        format!("{b}\n{}\n{b}\n", self.line(names), b = self.border())
    }
}

/// A width that shows typical values of a SQL type without cutting them.
fn type_width(sql_type: &str) -> usize {
    let base = sql_type
        .split(['(', '<', ' '])
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    match base.as_str() {
        "BOOLEAN" | "INT" | "INTEGER" | "DATE" => 10,
        "TIME" => 12,
        "TIMESTAMP" => 23,
        "ARRAY" | "MAP" | "STRUCT" => 30,
        _ => 20,
    }
}

/// Renders a complete table (header, rows, closing border) with widths fitted to the data.
pub fn render_table(names: &[String], rows: &[Vec<String>]) -> String {
    let layout = TableLayout::fit(names, rows);
    let mut s = layout.header(names);
    for row in rows {
        s.push_str(&layout.line(row));
        s.push('\n');
    }
    s.push_str(&layout.border());
    s.push('\n');
    s
}

/// Column names of a result header.
pub fn column_names(columns: &[Column]) -> Vec<String> {
    columns.iter().map(|c| escape_cell(&c.name)).collect()
}

/// Row cells of a result row.
pub fn row_cells(values: &[Value]) -> Vec<String> {
    values.iter().map(cell_text).collect()
}

/// The column of SHOW QUERIES that holds each query's SQL.
pub const QUERY_STRING_COLUMN: &str = "Query String";

/// Row cells of an Execute result. A statement's SQL (SHOW QUERIES' `Query String`) is shown
/// on one line with its line breaks as spaces, as ksqlDB's CLI does (`getQuerySingleLine`),
/// rather than escaped like data.
pub fn statement_row_cells(columns: &[Column], values: &[Value]) -> Vec<String> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| match (columns.get(i), &v.kind) {
            (Some(c), Some(value::Kind::String(sql))) if c.name == QUERY_STRING_COLUMN => {
                escape_cell(&single_line(sql))
            }
            _ => cell_text(v),
        })
        .collect()
}

fn single_line(s: &str) -> String {
    s.replace("\r\n", " ").replace('\n', " ")
}

/// `1 row` / `N rows`.
pub fn row_count(n: u64) -> String {
    if n == 1 {
        "1 row".to_string()
    } else {
        format!("{n} rows")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::v1::{Array, Field, Map, MapEntry, Row, Struct};

    fn v(kind: value::Kind) -> Value {
        Value { kind: Some(kind) }
    }
    fn s(x: &str) -> Value {
        v(value::Kind::String(x.into()))
    }
    fn int(x: i32) -> Value {
        v(value::Kind::Int(x))
    }
    fn col(name: &str, ty: &str) -> Column {
        Column {
            name: name.into(),
            r#type: ty.into(),
            role: String::new(),
        }
    }

    #[test]
    fn scalars() {
        use value::Kind::*;
        assert_eq!(format_value(&Value { kind: None }), "null");
        assert_eq!(format_value(&v(Null(true))), "null");
        assert_eq!(format_value(&v(Boolean(true))), "true");
        assert_eq!(format_value(&int(-5)), "-5");
        assert_eq!(
            format_value(&v(Bigint(9_007_199_254_740_993))),
            "9007199254740993"
        );
        assert_eq!(format_value(&s("raw 'text'")), "raw 'text'");
        assert_eq!(format_value(&v(Decimal("12.50".into()))), "12.50");
        assert_eq!(format_value(&v(Bytes(vec![0xde, 0xad, 0x01]))), "0xdead01");
        assert_eq!(format_value(&v(Bytes(vec![]))), "0x");
    }

    #[test]
    fn doubles() {
        assert_eq!(format_double(2.0), "2.0");
        assert_eq!(format_double(-0.5), "-0.5");
        assert_eq!(format_double(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_double(1e21), "1e21");
        assert_eq!(format_double(f64::NAN), "NaN");
        assert_eq!(format_double(f64::INFINITY), "Infinity");
        assert_eq!(format_double(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn nested_values() {
        use value::Kind;
        let arr = v(Kind::Array(Array {
            items: vec![int(1), int(2), v(Kind::Null(true))],
        }));
        assert_eq!(format_value(&arr), "[1, 2, null]");
        assert_eq!(format_value(&v(Kind::Array(Array { items: vec![] }))), "[]");
        let map = v(Kind::Map(Map {
            entries: vec![
                MapEntry {
                    key: "a".into(),
                    value: Some(int(1)),
                },
                MapEntry {
                    key: "b".into(),
                    value: None,
                },
            ],
        }));
        assert_eq!(format_value(&map), "{a=1, b=null}");
        let st = v(Kind::Struct(Struct {
            fields: vec![
                Field {
                    name: "F1".into(),
                    value: Some(int(1)),
                },
                Field {
                    name: "F2".into(),
                    value: Some(s("a")),
                },
                Field {
                    name: "F3".into(),
                    value: Some(arr.clone()),
                },
            ],
        }));
        assert_eq!(format_value(&st), "{F1=1, F2=a, F3=[1, 2, null]}");
    }

    #[test]
    fn temporal_values() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000");
        assert_eq!(
            format_timestamp(1_704_067_200_000),
            "2024-01-01T00:00:00.000"
        );
        assert_eq!(
            format_timestamp(1_709_210_096_789),
            "2024-02-29T12:34:56.789"
        );
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999");
        assert_eq!(format_timestamp(951_782_400_000), "2000-02-29T00:00:00.000");
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(19_723), "2024-01-01");
        assert_eq!(format_date(-719_162), "0001-01-01");
        assert_eq!(format_date(2_932_896), "9999-12-31");
        assert_eq!(format_date(2_932_897), "+10000-01-01");
        assert_eq!(format_time(0), "00:00:00");
        assert_eq!(format_time(45_296_000), "12:34:56");
        assert_eq!(format_time(45_296_007), "12:34:56.007");
        assert_eq!(format_time(MS_PER_DAY - 1), "23:59:59.999");
        assert_eq!(format_time(-1), "-1");
    }

    #[test]
    fn json_values() {
        use value::Kind;
        assert_eq!(value_to_json(&v(Kind::Null(true))), Json::Null);
        assert_eq!(value_to_json(&v(Kind::Boolean(false))), json!(false));
        assert_eq!(value_to_json(&int(3)), json!(3));
        assert_eq!(value_to_json(&v(Kind::Bigint(-7))), json!(-7));
        assert_eq!(value_to_json(&v(Kind::Double(2.5))), json!(2.5));
        assert_eq!(value_to_json(&v(Kind::Double(f64::NAN))), json!("NaN"));
        assert_eq!(
            value_to_json(&v(Kind::Decimal("12.50".into()))),
            // Exact: the scale survives (serde_json's arbitrary_precision is on).
            serde_json::from_str::<Json>("12.50").unwrap()
        );
        assert_eq!(value_to_json(&v(Kind::Decimal("bad".into()))), json!("bad"));
        assert_eq!(value_to_json(&v(Kind::Bytes(vec![1, 255]))), json!("01ff"));
        assert_eq!(
            value_to_json(&v(Kind::Timestamp(1_704_067_200_000))),
            json!(1_704_067_200_000i64)
        );
        assert_eq!(value_to_json(&v(Kind::Date(19_723))), json!("2024-01-01"));
        assert_eq!(value_to_json(&v(Kind::Time(1_000))), json!("00:00:01"));
        let nested = v(Kind::Struct(Struct {
            fields: vec![
                Field {
                    name: "A".into(),
                    value: Some(v(Kind::Array(Array {
                        items: vec![int(1)],
                    }))),
                },
                Field {
                    name: "M".into(),
                    value: Some(v(Kind::Map(Map {
                        entries: vec![MapEntry {
                            key: "k".into(),
                            value: Some(s("x")),
                        }],
                    }))),
                },
                Field {
                    name: "N".into(),
                    value: None,
                },
            ],
        }));
        assert_eq!(
            value_to_json(&nested).to_string(),
            r#"{"A":[1],"M":{"k":"x"},"N":null}"#
        );
    }

    #[test]
    fn json_lines() {
        let header = QueryHeader {
            query_id: "q1".into(),
            columns: vec![col("USER_ID", "STRING"), col("VIEWS", "BIGINT")],
            push: true,
            ..Default::default()
        };
        assert_eq!(
            json_header(&header).to_string(),
            r#"{"header":{"queryId":"q1","columns":[{"name":"USER_ID","type":"STRING"},{"name":"VIEWS","type":"BIGINT"}]}}"#
        );
        let row = QueryRow {
            row: Some(Row {
                values: vec![s("u1"), v(value::Kind::Bigint(2))],
            }),
            partition: 1,
            offset: 42,
            tombstone: false,
            ..Default::default()
        };
        assert_eq!(json_row(&row, false).to_string(), r#"{"row":["u1",2]}"#);
        assert_eq!(
            json_row(&row, true).to_string(),
            r#"{"row":["u1",2],"partition":1,"offset":42}"#
        );
        let tomb = QueryRow {
            row: None,
            tombstone: true,
            ..row
        };
        assert_eq!(
            json_row(&tomb, true).to_string(),
            r#"{"row":[],"partition":1,"offset":42,"tombstone":true}"#
        );
        let fin = QueryFinal {
            message: "Limit Reached".into(),
            rows: 2,
        };
        assert_eq!(
            json_final(&fin).to_string(),
            r#"{"final":{"message":"Limit Reached","rows":2}}"#
        );
    }

    #[test]
    fn json_statement_results() {
        let created = StatementResult {
            statement: "CREATE STREAM s (a INT);".into(),
            message: "Stream S created".into(),
            ..Default::default()
        };
        assert_eq!(
            json_statement(&created).to_string(),
            r#"{"statement":"CREATE STREAM s (a INT);","message":"Stream S created","columns":[],"rows":[]}"#
        );
        let shown = StatementResult {
            statement: "SHOW STREAMS;".into(),
            message: String::new(),
            columns: vec![Column {
                name: "Name".into(),
                r#type: "STRING".into(),
                role: "KEY".into(),
            }],
            rows: vec![Row {
                values: vec![s("S")],
            }],
            query_id: "CSAS_1".into(),
            ..Default::default()
        };
        assert_eq!(
            json_statement(&shown).to_string(),
            r#"{"statement":"SHOW STREAMS;","message":"","queryId":"CSAS_1","columns":[{"name":"Name","type":"STRING","role":"KEY"}],"rows":[["S"]]}"#
        );
        let retried = StatementResult {
            statement: "INSERT INTO s (a) VALUES (1) WITH (EVENT_ID = 'e');".into(),
            position: 42,
            version: Some(3),
            duplicate: true,
            ..Default::default()
        };
        assert_eq!(
            json_statement(&retried).to_string(),
            r#"{"statement":"INSERT INTO s (a) VALUES (1) WITH (EVENT_ID = 'e');","message":"","position":42,"version":3,"duplicate":true,"columns":[],"rows":[]}"#
        );
        assert_eq!(
            json_local("SET 'a'='b';", "ok").to_string(),
            r#"{"statement":"SET 'a'='b';","message":"ok"}"#
        );
        assert_eq!(
            json_error(
                Some("SELEC 1;"),
                "bad (line 1:1)",
                tonic::Code::InvalidArgument
            )
            .to_string(),
            r#"{"error":{"statement":"SELEC 1;","message":"bad (line 1:1)","code":"InvalidArgument"}}"#
        );
        assert_eq!(
            json_error(None, "down", tonic::Code::Unavailable).to_string(),
            r#"{"error":{"message":"down","code":"Unavailable"}}"#
        );
    }

    #[test]
    fn fitted_table() {
        let names = vec!["USER_ID".to_string(), "VIEWS".to_string()];
        let rows = vec![vec!["u1".to_string(), "2".to_string()]];
        assert_eq!(
            render_table(&names, &rows),
            "+--------+-------+\n\
             |USER_ID |VIEWS  |\n\
             +--------+-------+\n\
             |u1      |2      |\n\
             +--------+-------+\n"
        );
    }

    #[test]
    fn fitted_table_grows_with_data() {
        let names = vec!["A".to_string()];
        let rows = vec![
            vec!["a much longer value".to_string()],
            vec!["é".to_string()],
        ];
        assert_eq!(
            render_table(&names, &rows),
            "+--------------------+\n\
             |A                   |\n\
             +--------------------+\n\
             |a much longer value |\n\
             |é                   |\n\
             +--------------------+\n"
        );
    }

    #[test]
    fn ragged_rows_do_not_break_layout() {
        let layout = TableLayout::fit(&["A".to_string(), "B".to_string()], &[]);
        assert_eq!(layout.line(&["x".to_string()]), "|x      |       |");
        assert_eq!(
            layout.line(&["x".to_string(), "y".to_string(), "z".to_string()]),
            "|x      |y      |"
        );
    }

    #[test]
    fn stream_table_widths_and_truncation() {
        let layout = TableLayout::for_stream(&[col("ID", "INT"), col("NAME", "STRING")]);
        assert_eq!(layout.border(), "+-----------+---------------------+");
        assert_eq!(
            layout.header(&["ID".to_string(), "NAME".to_string()]),
            "+-----------+---------------------+\n\
             |ID         |NAME                 |\n\
             +-----------+---------------------+\n"
        );
        assert_eq!(
            layout.line(&["12345678901".to_string(), "bob".to_string()]),
            "|123456789… |bob                  |"
        );
        assert_eq!(
            layout.line(&["1234567890".to_string(), "b".to_string()]),
            "|1234567890 |b                    |"
        );
        let wide = TableLayout::for_stream(&[col("A_VERY_LONG_COLUMN_NAME_X", "INT")]);
        assert_eq!(wide.border(), format!("+{}+", "-".repeat(26)));
    }

    #[test]
    fn stream_widths_by_type() {
        assert_eq!(type_width("DECIMAL(10, 2)"), 20);
        assert_eq!(type_width("ARRAY<INT>"), 30);
        assert_eq!(type_width("timestamp"), 23);
        assert_eq!(type_width(""), 20);
    }

    #[test]
    fn cells_escape_line_breaks() {
        assert_eq!(cell_text(&s("a\nb\tc")), "a\\nb\\tc");
        assert_eq!(row_cells(&[s("x"), int(1)]), vec!["x", "1"]);
    }

    #[test]
    fn query_strings_show_on_one_line() {
        let columns = [
            Column {
                name: "Query ID".into(),
                r#type: "STRING".into(),
                role: String::new(),
            },
            Column {
                name: QUERY_STRING_COLUMN.into(),
                r#type: "STRING".into(),
                role: String::new(),
            },
        ];
        let sql = "CREATE STREAM b AS SELECT *\nFROM a\r\nEMIT CHANGES;";
        assert_eq!(
            statement_row_cells(&columns, &[s("q\n1"), s(sql)]),
            vec!["q\\n1", "CREATE STREAM b AS SELECT * FROM a EMIT CHANGES;"]
        );
        // A tab is still escaped: it would break the layout, and the rule covers line breaks.
        assert_eq!(
            statement_row_cells(&columns[1..], &[s("SELECT\t1")]),
            vec!["SELECT\\t1"]
        );
    }

    #[test]
    fn row_counts() {
        assert_eq!(row_count(0), "0 rows");
        assert_eq!(row_count(1), "1 row");
        assert_eq!(row_count(12), "12 rows");
    }
}
