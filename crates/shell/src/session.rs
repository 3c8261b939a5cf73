//! One shell session: the connection, the local properties and the output streams.
//!
//! A session runs one statement at a time and reports its outcome; the caller (scripted or
//! interactive mode) decides whether to go on. Server errors are printed and reported as
//! [`Outcome::Failed`]; only failures to write output are returned as errors.

use std::collections::BTreeMap;
use std::io::{self, Write};

use sluice_proto::v1::{QueryFinal, QueryHeader, QueryRow, StatementResult, query_response};
use tonic::{Code, Status};

use crate::OutputFormat;
use crate::client::{Client, status_message};
use crate::command::{Command, classify};
use crate::render::{self, TableLayout};

/// How a statement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// The user asked to leave (`exit` / `quit`).
    Exit,
}

/// The text shown when the user stops a query with Ctrl-C.
pub const QUERY_INTERRUPTED: &str = "Query terminated";
/// The text ksqlDB's CLI shows when a PRINT ends, stopped or not.
pub const PRINT_CEASED: &str = "Topic printing ceased";

pub struct Session {
    client: Client,
    properties: BTreeMap<String, String>,
    format: OutputFormat,
    /// Interactive sessions catch Ctrl-C to stop the running statement and stay alive;
    /// scripts keep the default behaviour, where Ctrl-C ends the process.
    catch_interrupts: bool,
    /// Scripts name the failing statement in error messages; interactively the user has just
    /// typed it.
    echo_failed_statement: bool,
    out: Box<dyn Write + Send>,
    err: Box<dyn Write + Send>,
}

impl Session {
    pub fn new(
        client: Client,
        format: OutputFormat,
        interactive: bool,
        out: Box<dyn Write + Send>,
        err: Box<dyn Write + Send>,
    ) -> Self {
        Self {
            client,
            properties: BTreeMap::new(),
            format,
            catch_interrupts: interactive,
            echo_failed_statement: !interactive,
            out,
            err,
        }
    }

    /// Runs one statement (as produced by the splitter) and prints its results.
    pub async fn run(&mut self, statement: &str) -> io::Result<Outcome> {
        match classify(statement) {
            Err(message) => {
                self.report_error(statement, &message, Code::InvalidArgument)?;
                Ok(Outcome::Failed)
            }
            Ok(Command::Exit) => Ok(Outcome::Exit),
            Ok(Command::Set { key, value }) => {
                let message = match self.properties.insert(key.clone(), value.clone()) {
                    Some(old) => format!(
                        "Successfully changed local property '{key}' from '{old}' to '{value}'."
                    ),
                    None => format!("Successfully changed local property '{key}' to '{value}'."),
                };
                self.report_local(statement, &message)?;
                Ok(Outcome::Succeeded)
            }
            Ok(Command::Unset { key }) => {
                let message = match self.properties.remove(&key) {
                    Some(old) => {
                        format!("Successfully unset local property '{key}' (value was '{old}').")
                    }
                    None => format!("Local property '{key}' was not set."),
                };
                self.report_local(statement, &message)?;
                Ok(Outcome::Succeeded)
            }
            Ok(Command::Query) => self.query(statement, false).await,
            Ok(Command::Print) => self.query(statement, true).await,
            Ok(Command::Execute) => self.execute(statement).await,
        }
    }

    async fn execute(&mut self, statement: &str) -> io::Result<Outcome> {
        let call = self.client.execute(statement, &self.properties);
        let result = tokio::select! {
            r = call => Some(r),
            () = interrupted(self.catch_interrupts) => None,
        };
        let results = match result {
            None => {
                // The request may already be on its way; the server decides whether it ran.
                writeln!(
                    self.err,
                    "Interrupted; the statement may still complete on the server."
                )?;
                self.err.flush()?;
                return Ok(Outcome::Failed);
            }
            Some(Err(status)) => {
                self.report_status(statement, &status)?;
                return Ok(Outcome::Failed);
            }
            Some(Ok(results)) => results,
        };
        for result in &results {
            let text = match self.format {
                OutputFormat::Table => statement_text(result),
                OutputFormat::Json => json_line(&render::json_statement(result)),
            };
            self.write_out(&text)?;
        }
        Ok(Outcome::Succeeded)
    }

    async fn query(&mut self, statement: &str, print: bool) -> io::Result<Outcome> {
        let catch = self.catch_interrupts;
        let call = self.client.query(statement, &self.properties);
        let started = tokio::select! {
            r = call => Some(r),
            () = interrupted(catch) => None,
        };
        let mut printer = if print {
            QueryPrinter::for_print(self.format)
        } else {
            QueryPrinter::new(self.format)
        };
        let mut stream = match started {
            None => {
                let text = printer.on_interrupt();
                self.write_out(&text)?;
                return Ok(Outcome::Succeeded);
            }
            Some(Err(status)) => {
                self.report_status(statement, &status)?;
                return Ok(Outcome::Failed);
            }
            Some(Ok(stream)) => stream,
        };
        loop {
            let next = tokio::select! {
                m = stream.message() => Some(m),
                () = interrupted(catch) => None,
            };
            let text = match next {
                None => {
                    // Dropping the stream resets it, which is how the server learns to stop.
                    drop(stream);
                    let text = printer.on_interrupt();
                    self.write_out(&text)?;
                    return Ok(Outcome::Succeeded);
                }
                Some(Err(status)) => {
                    let text = printer.on_error();
                    self.write_out(&text)?;
                    self.report_status(statement, &status)?;
                    return Ok(Outcome::Failed);
                }
                Some(Ok(None)) => {
                    let text = printer.on_final(None);
                    self.write_out(&text)?;
                    return Ok(Outcome::Succeeded);
                }
                Some(Ok(Some(response))) => match response.kind {
                    Some(query_response::Kind::Header(h)) => printer.on_header(h),
                    Some(query_response::Kind::Row(r)) => printer.on_row(&r),
                    Some(query_response::Kind::Rows(rs)) => {
                        rs.rows.iter().map(|r| printer.on_row(r)).collect()
                    }
                    Some(query_response::Kind::Final(f)) => {
                        let text = printer.on_final(Some(&f));
                        self.write_out(&text)?;
                        return Ok(Outcome::Succeeded);
                    }
                    // A message kind newer than this shell; skipping it keeps old shells usable.
                    None => String::new(),
                },
            };
            self.write_out(&text)?;
        }
    }

    fn write_out(&mut self, text: &str) -> io::Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        self.out.write_all(text.as_bytes())?;
        // Push query rows must show up as they arrive, not when a buffer fills.
        self.out.flush()
    }

    fn report_local(&mut self, statement: &str, message: &str) -> io::Result<()> {
        let text = match self.format {
            OutputFormat::Table => format!("{message}\n"),
            OutputFormat::Json => json_line(&render::json_local(statement, message)),
        };
        self.write_out(&text)
    }

    fn report_status(&mut self, statement: &str, status: &Status) -> io::Result<()> {
        self.report_error(statement, &status_message(status), status.code())
    }

    fn report_error(&mut self, statement: &str, message: &str, code: Code) -> io::Result<()> {
        if self.format == OutputFormat::Json {
            let line = json_line(&render::json_error(Some(statement), message, code));
            self.write_out(&line)?;
        }
        writeln!(self.err, "Error: {message}")?;
        if self.echo_failed_statement {
            writeln!(self.err, "Statement: {statement}")?;
        }
        self.err.flush()
    }
}

/// Resolves on Ctrl-C when `enabled`, never otherwise.
async fn interrupted(enabled: bool) {
    // If the signal handler cannot be installed, Ctrl-C keeps its default effect (ending the
    // process), so waiting forever here loses nothing.
    if enabled && tokio::signal::ctrl_c().await.is_ok() {
        return;
    }
    std::future::pending::<()>().await
}

fn json_line(value: &serde_json::Value) -> String {
    format!("{value}\n")
}

/// Table-mode text of one Execute result: its message, then its table if it has one.
fn statement_text(result: &StatementResult) -> String {
    let mut text = String::new();
    if !result.message.is_empty() {
        text.push_str(&result.message);
        text.push('\n');
    }
    if !result.columns.is_empty() {
        let names = render::column_names(&result.columns);
        let rows: Vec<Vec<String>> = result
            .rows
            .iter()
            .map(|r| render::statement_row_cells(&result.columns, &r.values))
            .collect();
        text.push_str(&render::render_table(&names, &rows));
    }
    text
}

/// Turns the messages of one query stream into output text.
///
/// Push queries are printed row by row as they arrive, in a table whose widths are guessed
/// from the header. Pull queries are finite, so their rows are buffered and the table is
/// fitted to them at the end.
pub struct QueryPrinter {
    format: OutputFormat,
    /// A PRINT: its rows are lines of text, printed as they are (ksqlDB's CLI does not
    /// tabulate them).
    print: bool,
    push: bool,
    names: Option<Vec<String>>,
    /// Set once a streamed table's header is printed, so it gets closed exactly once.
    layout: Option<TableLayout>,
    buffered: Vec<Vec<String>>,
    rows: u64,
}

impl QueryPrinter {
    pub fn new(format: OutputFormat) -> Self {
        Self {
            format,
            print: false,
            push: false,
            names: None,
            layout: None,
            buffered: Vec::new(),
            rows: 0,
        }
    }

    /// For a PRINT's stream.
    pub fn for_print(format: OutputFormat) -> Self {
        Self {
            print: true,
            ..Self::new(format)
        }
    }

    pub fn on_header(&mut self, header: QueryHeader) -> String {
        self.push = header.push;
        if self.print && self.format == OutputFormat::Table {
            return String::new();
        }
        let names = render::column_names(&header.columns);
        let text = match self.format {
            OutputFormat::Json => json_line(&render::json_header(&header)),
            OutputFormat::Table if header.push => {
                let layout = TableLayout::for_stream(&header.columns);
                let text = layout.header(&names);
                self.layout = Some(layout);
                text
            }
            OutputFormat::Table => String::new(),
        };
        self.names = Some(names);
        text
    }

    pub fn on_row(&mut self, row: &QueryRow) -> String {
        self.rows += 1;
        if self.print && self.format == OutputFormat::Table {
            let values = row.row.as_ref().map_or(&[][..], |r| &r.values[..]);
            let line = values.iter().map(render::format_value).collect::<Vec<_>>();
            let line = line.join(" ");
            // As ksqlDB's CLI: lines are printed as sent, blank ones skipped.
            return if line.is_empty() {
                String::new()
            } else {
                format!("{line}\n")
            };
        }
        match self.format {
            OutputFormat::Json => json_line(&render::json_row(row, self.push)),
            OutputFormat::Table => {
                let values = row.row.as_ref().map_or(&[][..], |r| &r.values[..]);
                let mut cells = render::row_cells(values);
                if row.tombstone {
                    // A deleted table row carries only its key; mark the missing values.
                    for (cell, value) in cells.iter_mut().zip(values) {
                        if is_null(value) {
                            *cell = "<TOMBSTONE>".to_string();
                        }
                    }
                }
                match &self.layout {
                    Some(layout) => format!("{}\n", layout.line(&cells)),
                    None => {
                        self.buffered.push(cells);
                        String::new()
                    }
                }
            }
        }
    }

    /// The end of the query: a final message, or `None` when the stream just ended.
    pub fn on_final(&mut self, fin: Option<&QueryFinal>) -> String {
        self.finish(fin.map_or("", |f| f.message.as_str()))
    }

    /// The user stopped the query.
    pub fn on_interrupt(&mut self) -> String {
        let text = self.finish(QUERY_INTERRUPTED);
        match self.format {
            // The terminal has echoed `^C` without a line break; start on a fresh line.
            OutputFormat::Table => format!("\n{text}"),
            OutputFormat::Json => text,
        }
    }

    /// The query failed mid-stream: close what was printed so the error stands apart.
    pub fn on_error(&mut self) -> String {
        match (self.format, self.layout.take()) {
            (OutputFormat::Table, Some(layout)) => format!("{}\n", layout.border()),
            _ => String::new(),
        }
    }

    fn finish(&mut self, message: &str) -> String {
        if self.print && self.format == OutputFormat::Table {
            // ksqlDB's CLI ends every PRINT with this line, whether LIMIT or Ctrl-C ended it.
            return format!("{PRINT_CEASED}\n");
        }
        match self.format {
            OutputFormat::Json => json_line(&render::json_final(&QueryFinal {
                message: message.to_string(),
                rows: self.rows,
            })),
            OutputFormat::Table => {
                let mut text = String::new();
                // Pull results get a row count; an interrupt before the header has no table.
                let counted = !self.push && (self.names.is_some() || !self.buffered.is_empty());
                if let Some(layout) = self.layout.take() {
                    text.push_str(&layout.border());
                    text.push('\n');
                } else if self.names.is_some() || !self.buffered.is_empty() {
                    let names = self.names.take().unwrap_or_else(|| {
                        // Rows without a header (a server bug): still show the data.
                        let n = self.buffered.iter().map(Vec::len).max().unwrap_or(0);
                        (1..=n).map(|i| format!("COLUMN{i}")).collect()
                    });
                    text.push_str(&render::render_table(&names, &self.buffered));
                }
                if !message.is_empty() {
                    text.push_str(message);
                    text.push('\n');
                }
                if counted {
                    text.push_str(&render::row_count(self.rows));
                    text.push('\n');
                }
                text
            }
        }
    }
}

fn is_null(v: &sluice_proto::v1::Value) -> bool {
    matches!(v.kind, None | Some(sluice_proto::v1::value::Kind::Null(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::v1::{Column, Row, Value, value};

    fn col(name: &str, ty: &str) -> Column {
        Column {
            name: name.into(),
            r#type: ty.into(),
            role: String::new(),
        }
    }
    fn header(push: bool) -> QueryHeader {
        QueryHeader {
            query_id: "q1".into(),
            columns: vec![col("USER_ID", "STRING"), col("VIEWS", "BIGINT")],
            push,
            ..Default::default()
        }
    }
    fn row(user: &str, views: Option<i64>) -> QueryRow {
        let views = Value {
            kind: views.map(value::Kind::Bigint),
        };
        QueryRow {
            row: Some(Row {
                values: vec![
                    Value {
                        kind: Some(value::Kind::String(user.into())),
                    },
                    views,
                ],
            }),
            partition: 0,
            offset: 7,
            tombstone: false,
            ..Default::default()
        }
    }

    fn line(text: &str) -> QueryRow {
        QueryRow {
            row: Some(Row {
                values: vec![Value {
                    kind: Some(value::Kind::String(text.into())),
                }],
            }),
            partition: 0,
            offset: 0,
            tombstone: false,
            ..Default::default()
        }
    }

    #[test]
    fn print_lines_are_printed_as_sent() {
        let mut p = QueryPrinter::for_print(OutputFormat::Table);
        let h = QueryHeader {
            query_id: "transient_1".into(),
            columns: vec![col("LINE", "STRING")],
            push: true,
            ..Default::default()
        };
        assert_eq!(p.on_header(h.clone()), "");
        assert_eq!(
            p.on_row(&line("Key format: KAFKA_STRING")),
            "Key format: KAFKA_STRING\n"
        );
        let record = "rowtime: 2022/03/18 15:53:22.989 Z, key: a\tb, value: {}, partition: 0";
        // Not a table cell: nothing escaped, no borders.
        assert_eq!(p.on_row(&line(record)), format!("{record}\n"));
        assert_eq!(p.on_row(&line("")), "");
        let fin = QueryFinal {
            message: "Limit Reached".into(),
            rows: 1,
        };
        assert_eq!(p.on_final(Some(&fin)), "Topic printing ceased\n");
        let mut p = QueryPrinter::for_print(OutputFormat::Table);
        p.on_header(h.clone());
        assert_eq!(p.on_interrupt(), "\nTopic printing ceased\n");
        // JSON output stays one object per line.
        let mut p = QueryPrinter::for_print(OutputFormat::Json);
        assert!(p.on_header(h).starts_with("{\"header\""));
        assert_eq!(
            p.on_row(&line("x")),
            "{\"row\":[\"x\"],\"partition\":0,\"offset\":0}\n"
        );
    }

    #[test]
    fn pull_query_table() {
        let mut p = QueryPrinter::new(OutputFormat::Table);
        assert_eq!(p.on_header(header(false)), "");
        assert_eq!(p.on_row(&row("u1", Some(2))), "");
        let fin = QueryFinal {
            message: String::new(),
            rows: 1,
        };
        assert_eq!(
            p.on_final(Some(&fin)),
            "+--------+-------+\n\
             |USER_ID |VIEWS  |\n\
             +--------+-------+\n\
             |u1      |2      |\n\
             +--------+-------+\n\
             1 row\n"
        );
    }

    #[test]
    fn empty_pull_query_still_shows_header() {
        let mut p = QueryPrinter::new(OutputFormat::Table);
        p.on_header(header(false));
        assert_eq!(
            p.on_final(None),
            "+--------+-------+\n|USER_ID |VIEWS  |\n+--------+-------+\n+--------+-------+\n0 rows\n"
        );
    }

    #[test]
    fn push_query_streams_rows() {
        let mut p = QueryPrinter::new(OutputFormat::Table);
        let border = "+---------------------+---------------------+";
        assert_eq!(
            p.on_header(header(true)),
            format!("{border}\n|USER_ID              |VIEWS                |\n{border}\n")
        );
        assert_eq!(
            p.on_row(&row("u1", Some(2))),
            "|u1                   |2                    |\n"
        );
        let mut tomb = row("u2", None);
        tomb.tombstone = true;
        assert_eq!(
            p.on_row(&tomb),
            "|u2                   |<TOMBSTONE>          |\n"
        );
        let fin = QueryFinal {
            message: "Limit Reached".into(),
            rows: 2,
        };
        assert_eq!(p.on_final(Some(&fin)), format!("{border}\nLimit Reached\n"));
    }

    #[test]
    fn interrupted_push_query() {
        let mut p = QueryPrinter::new(OutputFormat::Table);
        p.on_header(header(true));
        let text = p.on_interrupt();
        assert!(text.starts_with("\n+---"), "{text}");
        assert!(text.ends_with("+\nQuery terminated\n"), "{text}");
        // An interrupt before anything arrived prints just the message.
        assert_eq!(
            QueryPrinter::new(OutputFormat::Table).on_interrupt(),
            "\nQuery terminated\n"
        );
    }

    #[test]
    fn failed_push_query_closes_table_once() {
        let mut p = QueryPrinter::new(OutputFormat::Table);
        p.on_header(header(true));
        assert!(p.on_error().starts_with("+---"));
        assert_eq!(p.on_error(), "");
        let mut pull = QueryPrinter::new(OutputFormat::Table);
        pull.on_header(header(false));
        pull.on_row(&row("u1", Some(1)));
        assert_eq!(pull.on_error(), "");
    }

    #[test]
    fn rows_without_header_are_still_shown() {
        let mut p = QueryPrinter::new(OutputFormat::Table);
        p.on_row(&row("u1", Some(2)));
        let text = p.on_final(None);
        assert!(text.contains("|COLUMN1 |COLUMN2 |\n"), "{text}");
        assert!(text.contains("|u1      |2       |\n"), "{text}");
    }

    #[test]
    fn json_query_lines() {
        let mut p = QueryPrinter::new(OutputFormat::Json);
        assert_eq!(
            p.on_header(header(true)),
            "{\"header\":{\"queryId\":\"q1\",\"columns\":[{\"name\":\"USER_ID\",\"type\":\"STRING\"},{\"name\":\"VIEWS\",\"type\":\"BIGINT\"}]}}\n"
        );
        assert_eq!(
            p.on_row(&row("u1", Some(2))),
            "{\"row\":[\"u1\",2],\"partition\":0,\"offset\":7}\n"
        );
        assert_eq!(p.on_error(), "");
        assert_eq!(
            p.on_final(Some(&QueryFinal {
                message: "Limit Reached".into(),
                rows: 1
            })),
            "{\"final\":{\"message\":\"Limit Reached\",\"rows\":1}}\n"
        );
        let mut pull = QueryPrinter::new(OutputFormat::Json);
        pull.on_header(header(false));
        assert_eq!(pull.on_row(&row("u1", None)), "{\"row\":[\"u1\",null]}\n");
        assert_eq!(
            pull.on_interrupt(),
            "{\"final\":{\"message\":\"Query terminated\",\"rows\":1}}\n"
        );
    }

    #[test]
    fn execute_results_in_table_mode() {
        let created = StatementResult {
            statement: "CREATE STREAM s (a INT);".into(),
            message: "Stream S created".into(),
            ..Default::default()
        };
        assert_eq!(statement_text(&created), "Stream S created\n");
        let shown = StatementResult {
            statement: "SHOW STREAMS;".into(),
            columns: vec![col("Stream Name", "STRING")],
            rows: vec![Row {
                values: vec![Value {
                    kind: Some(value::Kind::String("S".into())),
                }],
            }],
            ..Default::default()
        };
        assert_eq!(
            statement_text(&shown),
            "+------------+\n|Stream Name |\n+------------+\n|S           |\n+------------+\n"
        );
    }
}
