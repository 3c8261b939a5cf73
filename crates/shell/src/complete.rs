//! Tab completion, as ksqlDB's CLI offers it: SQL keywords, and the names of the server's
//! streams and tables and of their columns.
//!
//! The names are fetched with SHOW STREAMS, SHOW TABLES and DESCRIBE through the shell's
//! own client, once at the start and again after each statement that may change them
//! (CREATE, DROP, ALTER). The line editor only reads the shared [`Names`]; it never waits
//! on the server.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};
use sluice_proto::v1::{StatementResult, value};

use crate::client::Client;
use crate::split::first_keyword;

/// Words of ksqlDB's SQL that a user types, besides names.
const KEYWORDS: &[&str] = &[
    "ADVANCE",
    "ALL",
    "ALTER",
    "AND",
    "ARRAY",
    "AS",
    "ASSERT",
    "BEGINNING",
    "BETWEEN",
    "BIGINT",
    "BOOLEAN",
    "BY",
    "BYTES",
    "CASE",
    "CAST",
    "CHANGES",
    "COLUMN",
    "CREATE",
    "DATE",
    "DECIMAL",
    "DELETE",
    "DESCRIBE",
    "DOUBLE",
    "DROP",
    "ELSE",
    "EMIT",
    "END",
    "EXISTS",
    "EXIT",
    "EXPLAIN",
    "EXTENDED",
    "FALSE",
    "FINAL",
    "FROM",
    "FULL",
    "FUNCTION",
    "FUNCTIONS",
    "GRACE",
    "GROUP",
    "HAVING",
    "HOPPING",
    "IF",
    "IN",
    "INNER",
    "INSERT",
    "INT",
    "INTEGER",
    "INTERVAL",
    "INTO",
    "IS",
    "JOIN",
    "KEY",
    "LEFT",
    "LIKE",
    "LIMIT",
    "LIST",
    "MAP",
    "NOT",
    "NULL",
    "ON",
    "OR",
    "OUTER",
    "PARTITION",
    "PERIOD",
    "PRIMARY",
    "PRINT",
    "PROPERTIES",
    "QUERIES",
    "QUIT",
    "REPLACE",
    "RIGHT",
    "ROWOFFSET",
    "ROWPARTITION",
    "ROWTIME",
    "SELECT",
    "SESSION",
    "SET",
    "SHOW",
    "SIZE",
    "SOURCE",
    "STREAM",
    "STREAMS",
    "STRING",
    "STRUCT",
    "TABLE",
    "TABLES",
    "TERMINATE",
    "THEN",
    "TIME",
    "TIMESTAMP",
    "TOPIC",
    "TOPICS",
    "TRUE",
    "TUMBLING",
    "TYPE",
    "UNSET",
    "VALUES",
    "VARCHAR",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
    "WITHIN",
];

/// The server's names the completer offers: sources and, per source, its columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    pub sources: BTreeMap<String, Vec<String>>,
}

impl Names {
    /// Every name once, sources first.
    fn all(&self) -> impl Iterator<Item = &str> {
        let columns: BTreeSet<&str> = self
            .sources
            .values()
            .flatten()
            .map(String::as_str)
            .collect();
        self.sources.keys().map(String::as_str).chain(
            columns
                .into_iter()
                .filter(|c| !self.sources.contains_key(*c)),
        )
    }
}

/// Whether a statement (as the splitter yields it) may add, remove or change sources.
pub fn changes_names(statement: &str) -> bool {
    matches!(
        first_keyword(statement).as_str(),
        "CREATE" | "DROP" | "ALTER"
    )
}

/// Fetches the names from the server. A failed call leaves the names as they were: the
/// user then gets stale completions, not an error in the middle of typing.
pub async fn fetch(client: &mut Client) -> Option<Names> {
    let no_properties = BTreeMap::new();
    let mut names = Names::default();
    for show in ["SHOW STREAMS;", "SHOW TABLES;"] {
        let results = client.execute(show, &no_properties).await.ok()?;
        for result in &results {
            for name in first_column(result) {
                names.sources.insert(name, Vec::new());
            }
        }
    }
    for (source, columns) in names.sources.iter_mut() {
        let describe = format!("DESCRIBE {};", quote_identifier(source));
        // A source dropped in the meantime just has no columns.
        if let Ok(results) = client.execute(&describe, &no_properties).await {
            *columns = results.iter().flat_map(first_column).collect();
        }
    }
    Some(names)
}

/// Refreshes the shared names from the server.
pub async fn refresh(client: &mut Client, names: &RwLock<Names>) {
    if let Some(fresh) = fetch(client).await
        && let Ok(mut shared) = names.write()
    {
        *shared = fresh;
    }
}

fn first_column(result: &StatementResult) -> Vec<String> {
    result
        .rows
        .iter()
        .filter_map(|r| match r.values.first().and_then(|v| v.kind.as_ref()) {
            Some(value::Kind::String(s)) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// Whether a name can be written as a bare identifier (ksqlDB upper-cases those).
fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The name as it must be written in SQL: bare when it is a plain upper-case identifier,
/// back-quoted otherwise (with back-quotes doubled).
fn quote_identifier(name: &str) -> String {
    if is_plain_identifier(name) {
        name.to_string()
    } else {
        format!("`{}`", name.replace('`', "``"))
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Which quotes are open at the end of `text`: (a string literal, a back-quoted name).
fn open_quotes(text: &str) -> (bool, bool) {
    let (mut single, mut back) = (false, false);
    for c in text.chars() {
        match c {
            // A doubled quote closes and reopens, which leaves the state as it was.
            '\'' if !back => single = !single,
            '`' if !single => back = !back,
            _ => {}
        }
    }
    (single, back)
}

/// The completions of the word that ends at `pos`: where it starts, and the candidates
/// that extend it, in the case the user is typing (lower-case for a lower-case prefix).
pub fn complete(line: &str, pos: usize, names: &Names) -> (usize, Vec<String>) {
    let Some(before) = line.get(..pos) else {
        return (pos, Vec::new());
    };
    let word_len: usize = before
        .chars()
        .rev()
        .take_while(|c| is_word_char(*c))
        .map(char::len_utf8)
        .sum();
    let mut start = pos - word_len;
    let (in_string, in_name) = open_quotes(before.get(..start).unwrap_or_default());
    if in_string {
        return (pos, Vec::new());
    }
    // A back-quoted name being typed: its opening quote is part of what gets replaced.
    let quoted = in_name && before.get(..start).is_some_and(|b| b.ends_with('`'));
    if quoted {
        start -= 1;
    }
    let prefix = before.get(start..).unwrap_or_default();
    if prefix.is_empty() || (in_name && !quoted) {
        return (pos, Vec::new());
    }
    let lower = !quoted
        && prefix.chars().any(char::is_lowercase)
        && !prefix.chars().any(char::is_uppercase);
    let mut out: Vec<String> = Vec::new();
    let mut offer = |candidate: String| {
        if !out.contains(&candidate) {
            out.push(candidate);
        }
    };
    let upper_prefix = prefix.to_uppercase();
    for name in names.all() {
        let written = quote_identifier(name);
        if written.starts_with('`') {
            // Case-sensitive names match as written.
            if written.starts_with(prefix) && written != prefix {
                offer(written);
            }
        } else if !quoted && written.starts_with(&upper_prefix) && written != upper_prefix {
            offer(if lower {
                written.to_lowercase()
            } else {
                written
            });
        }
    }
    if !quoted {
        for k in KEYWORDS {
            if k.starts_with(&upper_prefix) && *k != upper_prefix {
                offer(if lower {
                    k.to_lowercase()
                } else {
                    (*k).to_string()
                });
            }
        }
    }
    (start, out)
}

/// The line editor's helper: completion from the shared names, nothing else.
pub struct SqlHelper {
    names: Arc<RwLock<Names>>,
}

impl SqlHelper {
    pub fn new(names: Arc<RwLock<Names>>) -> Self {
        Self { names }
    }
}

impl Completer for SqlHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let Ok(names) = self.names.read() else {
            return Ok((pos, Vec::new()));
        };
        Ok(complete(line, pos, &names))
    }
}

impl Hinter for SqlHelper {
    type Hint = String;
}

impl Highlighter for SqlHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for SqlHelper {}

impl Helper for SqlHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        let mut n = Names::default();
        n.sources.insert(
            "PAGEVIEWS".into(),
            vec!["USER_ID".into(), "PAGE".into(), "MS".into()],
        );
        n.sources
            .insert("USERS".into(), vec!["ID".into(), "NAME".into()]);
        n.sources.insert("myStream".into(), vec!["Col".into()]);
        n
    }

    fn words(line: &str) -> (usize, Vec<String>) {
        complete(line, line.len(), &names())
    }

    #[test]
    fn keywords_in_the_case_typed() {
        assert_eq!(words("SEL"), (0, vec!["SELECT".to_string()]));
        assert_eq!(words("sel"), (0, vec!["select".to_string()]));
        assert_eq!(words("Sel"), (0, vec!["SELECT".to_string()]));
        let (start, c) = words("SELECT * FROM pageviews EMIT CH");
        assert_eq!((start, c), (29, vec!["CHANGES".to_string()]));
    }

    #[test]
    fn sources_and_columns_from_the_server() {
        assert_eq!(
            words("SELECT * FROM pa"),
            (
                14,
                vec![
                    "pageviews".to_string(),
                    "page".to_string(),
                    "partition".to_string()
                ]
            )
        );
        assert_eq!(words("DESCRIBE USE").1, vec!["USERS", "USER_ID"]);
        assert_eq!(words("SELECT na").1, vec!["name"]);
        // A name already complete offers only longer ones.
        assert_eq!(words("SELECT * FROM USERS").1, Vec::<String>::new());
    }

    #[test]
    fn case_sensitive_names_are_back_quoted() {
        assert_eq!(words("SELECT * FROM `my").1, vec!["`myStream`"]);
        assert_eq!(words("SELECT * FROM `my").0, 14);
        assert_eq!(words("SELECT `C").1, vec!["`Col`"]);
        // Bare words never complete to a back-quoted name.
        assert!(!words("SELECT * FROM my").1.iter().any(|c| c.contains('`')));
    }

    #[test]
    fn nothing_inside_strings_or_for_an_empty_word() {
        assert_eq!(words("PRINT 'pa").1, Vec::<String>::new());
        assert_eq!(words("SELECT ").1, Vec::<String>::new());
        assert_eq!(words("SELECT 'it''s' AS x FROM pa").1[0], "pageviews");
        // The cursor mid-line completes the word before it.
        let line = "SELECT * FROM us WHERE x";
        assert_eq!(complete(line, 16, &names()).1, vec!["users", "user_id"]);
        // A position that is not a character boundary offers nothing.
        assert_eq!(complete("é", 1, &names()).1, Vec::<String>::new());
    }

    #[test]
    fn ddl_refreshes_the_names() {
        assert!(changes_names(
            "CREATE STREAM s (k INT KEY) WITH (kafka_topic='s');"
        ));
        assert!(changes_names("drop table t;"));
        assert!(changes_names("ALTER STREAM s ADD COLUMN c INT;"));
        assert!(!changes_names("SELECT * FROM s;"));
        assert!(!changes_names("INSERT INTO s (k) VALUES (1);"));
    }

    #[test]
    fn identifiers_quoted_as_needed() {
        assert_eq!(quote_identifier("PAGEVIEWS"), "PAGEVIEWS");
        assert_eq!(quote_identifier("_X1"), "_X1");
        assert_eq!(quote_identifier("my`s"), "`my``s`");
        assert_eq!(quote_identifier("1X"), "`1X`");
    }
}
