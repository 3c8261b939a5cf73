//! Splits SQL text into `;`-terminated statements.
//!
//! The splitter only understands as much SQL lexing as it needs to find the `;` that really
//! ends a statement: single-quoted strings (`''` escapes a quote), double-quoted and
//! backtick-quoted identifiers, `--` line comments and `/* */` block comments. Everything else
//! is left to the server's parser.
//!
//! Statements are returned without the whitespace and comments that precede them, so the
//! first word of a statement is its first keyword (which the shell uses for routing).

/// The result of splitting a chunk of input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Split {
    /// Complete statements, each ending with its `;`.
    pub statements: Vec<String>,
    /// Unfinished input after the last `;`, or empty when nothing but whitespace and closed
    /// comments follows it. The interactive shell keeps this and appends the next line.
    pub rest: String,
    /// The unfinished statement as it would run if the input ended here: `rest` without its
    /// leading comments and trailing whitespace/comments; `None` when `rest` holds no SQL.
    pub tail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Normal,
    /// Inside a quoted literal or identifier, ended by the given quote character. A doubled
    /// quote leaves and immediately re-enters this state, which is exactly the escape rule.
    Quoted(char),
    LineComment,
    BlockComment,
}

/// Splits `input` into complete statements and the unfinished remainder.
pub fn split(input: &str) -> Split {
    let mut out = Split::default();
    let mut state = State::Normal;
    // Byte offset where the current segment (text after the previous `;`) begins.
    let mut segment_start = 0;
    // Byte offset of the first character of the current statement that is not whitespace or
    // part of a comment.
    let mut first_significant: Option<usize> = None;
    // Byte offset just past the last significant character of the current statement.
    let mut significant_end = 0;

    let mut chars = input.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        match state {
            State::Normal => match c {
                '-' if next == Some('-') => {
                    chars.next();
                    state = State::LineComment;
                }
                '/' if next == Some('*') => {
                    chars.next();
                    state = State::BlockComment;
                }
                ';' => {
                    if let Some(start) = first_significant.take() {
                        out.statements.push(input[start..=i].to_string());
                    }
                    segment_start = i + 1;
                }
                c if c.is_whitespace() => {}
                c => {
                    if matches!(c, '\'' | '"' | '`') {
                        state = State::Quoted(c);
                    }
                    first_significant.get_or_insert(i);
                    significant_end = i + c.len_utf8();
                }
            },
            State::Quoted(quote) => {
                if c == quote {
                    state = State::Normal;
                }
                significant_end = i + c.len_utf8();
            }
            State::LineComment => {
                if c == '\n' {
                    state = State::Normal;
                }
            }
            State::BlockComment => {
                if c == '*' && next == Some('/') {
                    chars.next();
                    state = State::Normal;
                }
            }
        }
    }

    let remainder = input[segment_start..].trim_start();
    if let Some(start) = first_significant {
        // An unterminated quote runs to the end of the input; trailing whitespace in it
        // belongs to the literal.
        let end = if matches!(state, State::Quoted(_)) {
            input.len()
        } else {
            significant_end
        };
        out.tail = Some(input[start..end].to_string());
        out.rest = remainder.to_string();
    } else if state == State::BlockComment {
        // No SQL yet, but the comment must be closed by a later line before any `;` counts.
        out.rest = remainder.to_string();
    }
    out
}

/// Splits a whole script: complete statements plus the trailing unterminated one, if any.
pub fn split_script(input: &str) -> Vec<String> {
    let Split {
        mut statements,
        tail,
        ..
    } = split(input);
    statements.extend(tail);
    statements
}

/// The first word of a statement, upper-cased (e.g. `SELECT`); empty if it starts otherwise.
pub fn first_keyword(statement: &str) -> String {
    statement
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect::<String>()
        .to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmts(input: &str) -> Vec<String> {
        split_script(input)
    }

    #[test]
    fn splits_simple_statements() {
        assert_eq!(stmts("SELECT 1; SELECT 2;"), vec!["SELECT 1;", "SELECT 2;"]);
    }

    #[test]
    fn trailing_statement_without_semicolon() {
        assert_eq!(stmts("SELECT 1; SELECT 2"), vec!["SELECT 1;", "SELECT 2"]);
        assert_eq!(stmts("SELECT 2  \n\t"), vec!["SELECT 2"]);
    }

    #[test]
    fn skips_empty_statements() {
        assert_eq!(stmts(";;  ; SELECT 1;;\n;"), vec!["SELECT 1;"]);
        assert!(stmts("").is_empty());
        assert!(stmts("   \n ").is_empty());
        assert!(stmts("-- only a comment\n/* and another */;").is_empty());
    }

    #[test]
    fn semicolon_in_single_quoted_string() {
        assert_eq!(
            stmts("INSERT INTO s VALUES ('a;b'); SELECT 1;"),
            vec!["INSERT INTO s VALUES ('a;b');", "SELECT 1;"]
        );
    }

    #[test]
    fn escaped_quote_in_string() {
        assert_eq!(
            stmts("INSERT INTO s VALUES ('it''s; fine'); SELECT ';''';"),
            vec!["INSERT INTO s VALUES ('it''s; fine');", "SELECT ';''';"]
        );
        // An empty string literal followed by a semicolon.
        assert_eq!(
            stmts("SELECT ''; SELECT 2;"),
            vec!["SELECT '';", "SELECT 2;"]
        );
    }

    #[test]
    fn semicolon_in_quoted_identifiers() {
        assert_eq!(
            stmts("SELECT `a;b`, \"c;d\" FROM t; SELECT 2;"),
            vec!["SELECT `a;b`, \"c;d\" FROM t;", "SELECT 2;"]
        );
        assert_eq!(stmts("SELECT `a``;b`; x;"), vec!["SELECT `a``;b`;", "x;"]);
    }

    #[test]
    fn quotes_of_other_kinds_do_not_close() {
        assert_eq!(
            stmts("SELECT 'a\"b`c;'; x;"),
            vec!["SELECT 'a\"b`c;';", "x;"]
        );
        assert_eq!(stmts("SELECT \"a'b;\"; x;"), vec!["SELECT \"a'b;\";", "x;"]);
    }

    #[test]
    fn semicolon_in_line_comment() {
        assert_eq!(
            stmts("SELECT 1 -- not; the end\n FROM t;"),
            vec!["SELECT 1 -- not; the end\n FROM t;"]
        );
    }

    #[test]
    fn semicolon_in_block_comment() {
        assert_eq!(
            stmts("SELECT /* a; b\n c; */ 1; x;"),
            vec!["SELECT /* a; b\n c; */ 1;", "x;"]
        );
    }

    #[test]
    fn comment_markers_inside_strings_are_text() {
        assert_eq!(
            stmts("SELECT '--'; SELECT '/*'; x;"),
            vec!["SELECT '--';", "SELECT '/*';", "x;"]
        );
    }

    #[test]
    fn single_dash_and_slash_are_operators() {
        assert_eq!(stmts("SELECT 1-2, 4/2; x;"), vec!["SELECT 1-2, 4/2;", "x;"]);
    }

    #[test]
    fn leading_comments_and_whitespace_are_dropped() {
        assert_eq!(
            stmts("-- setup\n/* block */\n  CREATE STREAM s (a INT);\n-- next\nSELECT 1;"),
            vec!["CREATE STREAM s (a INT);", "SELECT 1;"]
        );
    }

    #[test]
    fn trailing_comment_after_unterminated_statement_is_dropped() {
        assert_eq!(stmts("SELECT 1 -- done"), vec!["SELECT 1"]);
        assert_eq!(stmts("SELECT 1 /* done */ "), vec!["SELECT 1"]);
    }

    #[test]
    fn unterminated_string_runs_to_end() {
        assert_eq!(stmts("SELECT 'abc; def  "), vec!["SELECT 'abc; def  "]);
    }

    #[test]
    fn unicode_text() {
        assert_eq!(
            stmts("SELECT 'é;ü'; SELECT `ß`"),
            vec!["SELECT 'é;ü';", "SELECT `ß`"]
        );
    }

    #[test]
    fn rest_for_incremental_input() {
        let s = split("SELECT 1; SELECT\n");
        assert_eq!(s.statements, vec!["SELECT 1;"]);
        assert_eq!(s.rest, "SELECT\n");
        assert_eq!(s.tail.as_deref(), Some("SELECT"));

        let s = split("SELECT 1;\n");
        assert_eq!(s.rest, "");
        assert_eq!(s.tail, None);

        let s = split("SELECT 1; -- trailing comment\n");
        assert_eq!(s.rest, "");
    }

    #[test]
    fn rest_keeps_open_block_comment() {
        let s = split("/* still\n");
        assert!(s.statements.is_empty());
        assert_eq!(s.rest, "/* still\n");
        assert_eq!(s.tail, None);
        let s = split(&format!("{}*/ SELECT 1;\n", s.rest));
        assert_eq!(s.statements, vec!["SELECT 1;"]);
        assert_eq!(s.rest, "");
    }

    #[test]
    fn rest_keeps_open_string_across_lines() {
        let s = split("INSERT INTO s VALUES ('a;\n");
        assert!(s.statements.is_empty());
        let s = split(&format!("{}b');\n", s.rest));
        assert_eq!(s.statements, vec!["INSERT INTO s VALUES ('a;\nb');"]);
    }

    #[test]
    fn first_keyword_is_upper_cased() {
        assert_eq!(first_keyword("select * from t;"), "SELECT");
        assert_eq!(first_keyword("  Print 'topic';"), "PRINT");
        assert_eq!(first_keyword("SET 'a'='b';"), "SET");
        assert_eq!(first_keyword("(SELECT 1)"), "");
        assert_eq!(first_keyword("exit"), "EXIT");
    }
}
