//! Decides what to do with one statement: stream it, execute it, or handle it locally.
//!
//! SET and UNSET never reach the server as statements: like ksqlDB's CLI, the shell keeps the
//! properties itself and sends them along with every later request.

use crate::split::first_keyword;

/// What a statement asks the shell to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A SELECT: runs through the streaming Query call.
    Query,
    /// A PRINT: streams through the Query call too, as lines of text the server renders.
    Print,
    /// Anything else the server understands: runs through Execute.
    Execute,
    /// `SET 'key'='value';`
    Set { key: String, value: String },
    /// `UNSET 'key';`
    Unset { key: String },
    /// `exit` / `quit`
    Exit,
}

/// Classifies a statement (as produced by the splitter: no leading whitespace or comments).
///
/// The error is a message for the user, for a malformed SET or UNSET.
pub fn classify(statement: &str) -> Result<Command, String> {
    let keyword = first_keyword(statement);
    match keyword.as_str() {
        "SELECT" => Ok(Command::Query),
        "PRINT" => Ok(Command::Print),
        "SET" => parse_set(&statement.trim_start()[keyword.len()..]),
        "UNSET" => parse_unset(&statement.trim_start()[keyword.len()..]),
        "EXIT" | "QUIT" if is_exit_command(statement) => Ok(Command::Exit),
        _ => Ok(Command::Execute),
    }
}

/// `exit` or `quit`, any case, with an optional `;`.
pub fn is_exit_command(line: &str) -> bool {
    let word = line.trim().trim_end_matches(';').trim_end();
    word.eq_ignore_ascii_case("exit") || word.eq_ignore_ascii_case("quit")
}

const SET_USAGE: &str = "expected SET 'property'='value';";
const UNSET_USAGE: &str = "expected UNSET 'property';";

fn parse_set(after_keyword: &str) -> Result<Command, String> {
    let usage = || format!("invalid SET statement: {SET_USAGE}");
    if !starts_with_separator(after_keyword) {
        return Err(usage());
    }
    let (key, rest) = quoted(after_keyword.trim_start()).ok_or_else(usage)?;
    let rest = rest.trim_start().strip_prefix('=').ok_or_else(usage)?;
    let (value, rest) = quoted(rest.trim_start()).ok_or_else(usage)?;
    if !is_end(rest) {
        return Err(usage());
    }
    if key.is_empty() {
        return Err("invalid SET statement: the property name is empty".to_string());
    }
    Ok(Command::Set { key, value })
}

fn parse_unset(after_keyword: &str) -> Result<Command, String> {
    let usage = || format!("invalid UNSET statement: {UNSET_USAGE}");
    if !starts_with_separator(after_keyword) {
        return Err(usage());
    }
    let (key, rest) = quoted(after_keyword.trim_start()).ok_or_else(usage)?;
    if !is_end(rest) {
        return Err(usage());
    }
    Ok(Command::Unset { key })
}

/// The keyword must end at whitespace or the opening quote (`SET'a'='b'` is still a SET).
fn starts_with_separator(s: &str) -> bool {
    s.starts_with(|c: char| c.is_whitespace() || c == '\'')
}

/// Only whitespace and an optional final `;` may follow.
fn is_end(rest: &str) -> bool {
    let rest = rest.trim();
    rest.is_empty() || rest == ";"
}

/// Parses a leading single-quoted literal (`''` is an escaped quote); returns its value and
/// the text after it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('\'')?;
    let mut value = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\'' {
            value.push(c);
        } else if chars.peek().is_some_and(|&(_, n)| n == '\'') {
            chars.next();
            value.push('\'');
        } else {
            return Some((value, &body[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(k: &str, v: &str) -> Command {
        Command::Set {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn routes_queries() {
        assert_eq!(classify("SELECT * FROM t;"), Ok(Command::Query));
        assert_eq!(
            classify("select * from t emit changes;"),
            Ok(Command::Query)
        );
        assert_eq!(
            classify("PRINT 'topic' FROM BEGINNING;"),
            Ok(Command::Print)
        );
        assert_eq!(classify("print t"), Ok(Command::Print));
    }

    #[test]
    fn routes_everything_else_to_execute() {
        for s in [
            "CREATE STREAM s (a INT) WITH (kafka_topic='t');",
            "INSERT INTO s VALUES (1);",
            "SHOW STREAMS;",
            "EXPLAIN SELECT * FROM t;",
            "DESCRIBE s;",
            "SELECTX 1;",
            "exit now;",
        ] {
            assert_eq!(classify(s), Ok(Command::Execute), "{s}");
        }
    }

    #[test]
    fn exit_commands() {
        assert_eq!(classify("exit"), Ok(Command::Exit));
        assert_eq!(classify("QUIT;"), Ok(Command::Exit));
        assert!(is_exit_command("  Exit ; "));
        assert!(!is_exit_command("exits"));
    }

    #[test]
    fn parses_set() {
        assert_eq!(
            classify("SET 'auto.offset.reset'='earliest';"),
            Ok(set("auto.offset.reset", "earliest"))
        );
        assert_eq!(classify("set  'a' =\n 'b'  ;"), Ok(set("a", "b")));
        assert_eq!(classify("SET'a'='b'"), Ok(set("a", "b")));
        assert_eq!(classify("SET 'a'='it''s';"), Ok(set("a", "it's")));
        assert_eq!(classify("SET 'a'='';"), Ok(set("a", "")));
    }

    #[test]
    fn rejects_malformed_set() {
        for s in [
            "SET a=b;",
            "SET 'a' 'b';",
            "SET 'a'='b' extra;",
            "SET 'a'='b",
            "SET;",
            "SET '';",
            "SETTINGS 'a'='b';",
        ] {
            let r = classify(s);
            if s.starts_with("SETTINGS") {
                assert_eq!(r, Ok(Command::Execute));
            } else {
                assert!(r.is_err(), "{s}: {r:?}");
            }
        }
        assert_eq!(
            classify("SET '' = 'x';"),
            Err("invalid SET statement: the property name is empty".to_string())
        );
        assert_eq!(
            classify("SET x;"),
            Err("invalid SET statement: expected SET 'property'='value';".to_string())
        );
    }

    #[test]
    fn parses_unset() {
        assert_eq!(
            classify("UNSET 'a.b';"),
            Ok(Command::Unset { key: "a.b".into() })
        );
        assert_eq!(
            classify("unset 'a'"),
            Ok(Command::Unset { key: "a".into() })
        );
        assert_eq!(
            classify("UNSET a;"),
            Err("invalid UNSET statement: expected UNSET 'property';".to_string())
        );
        assert!(classify("UNSET 'a' 'b';").is_err());
    }
}
