//! Statement grammar over sqlparser's tokenizer and expression parser.

use crate::ParseError;
use crate::ast::*;
use crate::dialect::KsqlDialect;
use sluice_common::{DataType, SourceKind};
use sqlparser::ast::{Ident, SelectItem as SqlSelectItem};
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

/// Parses a script of `;`-separated statements.
pub fn parse(sql: &str) -> Result<Vec<Statement>, ParseError> {
    parse_script(sql).map_err(|e| with_position(e, sql))
}

/// Errors found at the end of the input (or by sqlparser's nesting limit) carry no
/// position; they are placed at the end of the input, which is where the parser stopped.
fn with_position(mut e: ParseError, sql: &str) -> ParseError {
    if e.line == 0 {
        let last = sql.trim_end();
        e.line = last.lines().count().max(1) as u64;
        e.column = last.lines().last().map_or(0, |l| l.chars().count()) as u64 + 1;
    }
    e
}

fn parse_script(sql: &str) -> Result<Vec<Statement>, ParseError> {
    let dialect = KsqlDialect;
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| convert(e.into()))?;
    check_foreign_tokens(&tokens)?;
    check_operator_chains(&tokens)?;
    let parser = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .with_tokens_with_locations(tokens);
    let mut p = P {
        p: parser,
        sql,
        line_starts: line_starts(sql),
    };
    let mut out = Vec::new();
    loop {
        while p.p.consume_token(&Token::SemiColon) {}
        if p.p.peek_token().token == Token::EOF {
            break;
        }
        out.push(p.statement()?);
    }
    Ok(out)
}

/// Parses a single expression (for tests and tools).
pub fn parse_expr(sql: &str) -> Result<Expr, ParseError> {
    let dialect = KsqlDialect;
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| convert(e.into()))?;
    check_foreign_tokens(&tokens)?;
    check_operator_chains(&tokens)?;
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .with_tokens_with_locations(tokens);
    parser.parse_expr().map_err(convert)
}

/// GROUP BY and PARTITION BY take value expressions in ksqlDB's grammar: a condition (a
/// comparison, AND/OR/NOT, IS NULL, BETWEEN, IN, LIKE) is a syntax error there unless it is
/// parenthesized, `GROUP BY (name IS NULL)`.
fn value_expressions(items: &[Expr], clause: &str) -> Result<(), ParseError> {
    use sqlparser::ast::{BinaryOperator as B, Spanned, UnaryOperator};
    for e in items {
        let condition = match e {
            Expr::BinaryOp { op, .. } => matches!(
                op,
                B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq | B::And | B::Or | B::Xor
            ),
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                ..
            } => true,
            Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::IsTrue(_)
            | Expr::IsNotTrue(_)
            | Expr::IsFalse(_)
            | Expr::IsNotFalse(_)
            | Expr::Between { .. }
            | Expr::In { .. }
            | Expr::Like { .. }
            | Expr::ILike { .. }
            | Expr::IsDistinctFrom(..)
            | Expr::IsNotDistinctFrom(..) => true,
            _ => false,
        };
        if condition {
            let at = e.span().start;
            return Err(ParseError {
                message: format!(
                    "{clause} takes value expressions; a condition here must be in parentheses: ({e})"
                ),
                line: at.line,
                column: at.column,
            });
        }
    }
    Ok(())
}

/// sqlparser's bound on its own recursion (nested parentheses, calls, CASE, NOT, unary
/// minus): each level is a few stack frames of the parser.
const RECURSION_LIMIT: usize = 50;

/// Most operators one expression may chain (`1+1+...`, `a AND b AND ...`, `s->a->b`,
/// `x[1][2]`), counted on the tokens before parsing.
///
/// sqlparser parses an operator chain in a loop, not by recursion, so its recursion limit
/// does not see it; but the tree it builds is as deep as the chain, and walking or merely
/// dropping a tree a million levels deep overflows the stack and aborts the server (a 2 MB
/// `WHERE n = 1+1+...+1` did). The planner refuses expressions deeper than 256 levels with
/// a clear message; this bound only has to keep what reaches it shallow enough to handle.
pub const MAX_OPERATOR_CHAIN: usize = 1000;

/// Refuses a statement whose operator chains could build a tree deeper than
/// [`MAX_OPERATOR_CHAIN`]. It counts, per open bracket level, the operators since the last
/// separator at that level (a comma, or a clause keyword); the sum over the open levels,
/// plus the levels themselves, bounds the depth of the tree the parser would build.
/// Tokens sqlparser gives a meaning that ksqlDB's grammar lacks, refused as ksqlDB
/// refuses them. `x::type` is PostgreSQL's cast: sqlparser would read it with its own type
/// grammar, whose modifiers take arbitrary identifiers. `X'..'` and `N'..'` are ANSI hex
/// and national strings: sqlparser takes any text between the quotes and prints it back
/// unescaped (the fuzz test found `X'a '''' b'`), and nothing could evaluate them.
fn check_foreign_tokens(tokens: &[TokenWithSpan]) -> Result<(), ParseError> {
    for t in tokens {
        let message = match &t.token {
            Token::DoubleColon => {
                "Syntax error at or near '::': ksqlDB casts with CAST(expression AS type)"
            }
            Token::HexStringLiteral(_) => {
                "Syntax error at or near X'...': ksqlDB has no hex literals; use TO_BYTES('...', 'hex')"
            }
            Token::NationalStringLiteral(_) => {
                "Syntax error at or near N'...': ksqlDB strings are written '...'"
            }
            _ => continue,
        };
        return Err(ParseError {
            message: message.into(),
            line: t.span.start.line,
            column: t.span.start.column,
        });
    }
    Ok(())
}

fn check_operator_chains(tokens: &[TokenWithSpan]) -> Result<(), ParseError> {
    use sqlparser::keywords::Keyword;
    // (opened by CASE, operators counted at this level)
    let mut levels: Vec<(bool, usize)> = vec![(false, 0)];
    let mut total = 0usize;
    for t in tokens {
        let mut operator = false;
        match &t.token {
            Token::LParen | Token::LBrace => levels.push((false, 0)),
            Token::LBracket => {
                // A subscript chains like an operator (`a[1][1]...`), then opens a level.
                operator = true;
            }
            Token::RParen | Token::RBracket | Token::RBrace => {
                if levels.len() > 1
                    && let Some((_, n)) = levels.pop()
                {
                    total -= n;
                }
            }
            Token::Comma => {
                if let Some(top) = levels.last_mut() {
                    total -= top.1;
                    top.1 = 0;
                }
            }
            Token::SemiColon => {
                levels = vec![(false, 0)];
                total = 0;
            }
            Token::Word(w) => match w.keyword {
                Keyword::CASE => levels.push((true, 0)),
                Keyword::END if levels.len() > 1 && levels.last().is_some_and(|l| l.0) => {
                    if let Some((_, n)) = levels.pop() {
                        total -= n;
                    }
                }
                // A CASE's branches are siblings, not a chain.
                Keyword::WHEN | Keyword::THEN | Keyword::ELSE => {
                    if let Some(top) = levels.last_mut().filter(|l| l.0) {
                        total -= top.1;
                        top.1 = 0;
                    }
                }
                // Clause keywords end the expression before them.
                Keyword::SELECT
                | Keyword::FROM
                | Keyword::WHERE
                | Keyword::GROUP
                | Keyword::HAVING
                | Keyword::PARTITION
                | Keyword::LIMIT
                | Keyword::WINDOW
                | Keyword::VALUES
                | Keyword::AS => {
                    if let Some(top) = levels.last_mut().filter(|l| !l.0) {
                        total -= top.1;
                        top.1 = 0;
                    }
                }
                Keyword::AND
                | Keyword::OR
                | Keyword::NOT
                | Keyword::IS
                | Keyword::LIKE
                | Keyword::ILIKE
                | Keyword::BETWEEN
                | Keyword::IN
                | Keyword::ESCAPE
                | Keyword::DIV
                | Keyword::COLLATE
                | Keyword::AT => operator = true,
                _ => {}
            },
            Token::Number(..)
            | Token::Char(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Whitespace(_)
            | Token::Placeholder(_)
            | Token::EOF => {}
            // Every other token is an operator of some kind (+ - * / % || = <> < > -> . ::).
            _ => operator = true,
        }
        if operator && let Some(top) = levels.last_mut() {
            top.1 += 1;
            total += 1;
        }
        if matches!(t.token, Token::LBracket) {
            levels.push((false, 0));
        }
        if total + levels.len() > MAX_OPERATOR_CHAIN {
            return Err(ParseError {
                message: format!(
                    "Expression is nested too deeply (more than {MAX_OPERATOR_CHAIN} chained operators or brackets)"
                ),
                line: t.span.start.line,
                column: t.span.start.column,
            });
        }
    }
    Ok(())
}

fn line_starts(sql: &str) -> Vec<usize> {
    let mut v = vec![0];
    for (i, c) in sql.char_indices() {
        if c == '\n' {
            v.push(i + 1);
        }
    }
    v
}

/// Turns sqlparser's "... at Line: L, Column: C" into a positioned error.
fn convert(e: ParserError) -> ParseError {
    let msg = match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
        ParserError::RecursionLimitExceeded => "statement is nested too deeply".to_string(),
    };
    if let Some(idx) = msg.find(" at Line: ") {
        let tail = &msg[idx + " at Line: ".len()..];
        let mut parts = tail.splitn(2, ", Column: ");
        let line = parts
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        let column = parts
            .next()
            .and_then(|c| {
                c.trim()
                    .split(|ch: char| !ch.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0);
        return ParseError {
            message: msg[..idx].to_string(),
            line,
            column,
        };
    }
    ParseError {
        message: msg,
        line: 0,
        column: 0,
    }
}

struct P<'a> {
    p: Parser<'a>,
    sql: &'a str,
    line_starts: Vec<usize>,
}

type R<T> = Result<T, ParseError>;

const CLAUSE_WORDS: &[&str] = &[
    "WHERE",
    "GROUP",
    "HAVING",
    "PARTITION",
    "EMIT",
    "LIMIT",
    "WINDOW",
    "JOIN",
    "INNER",
    "LEFT",
    "RIGHT",
    "FULL",
    "OUTER",
    "ON",
    "WITHIN",
];

impl<'a> P<'a> {
    fn err<T>(&self, at: &TokenWithSpan, message: impl Into<String>) -> R<T> {
        Err(ParseError {
            message: message.into(),
            line: at.span.start.line,
            column: at.span.start.column,
        })
    }

    fn offset(&self, loc: Location) -> usize {
        let Some(start) = (loc.line as usize)
            .checked_sub(1)
            .and_then(|l| self.line_starts.get(l))
        else {
            return self.sql.len();
        };
        let line = &self.sql[*start..];
        let col = (loc.column as usize).saturating_sub(1);
        *start + line.char_indices().nth(col).map_or(line.len(), |(i, _)| i)
    }

    /// The upper-cased word at the cursor, if it is an unquoted word.
    fn peek_word(&self) -> Option<String> {
        match self.p.peek_token().token {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
            _ => None,
        }
    }

    fn eat(&mut self, word: &str) -> bool {
        if self.peek_word().as_deref() == Some(word) {
            self.p.next_token();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, word: &str) -> R<()> {
        if self.eat(word) {
            return Ok(());
        }
        let t = self.p.peek_token();
        self.err(&t, format!("Expected {word}, found {}", describe(&t.token)))
    }

    fn expect_token(&mut self, token: Token) -> R<()> {
        if self.p.consume_token(&token) {
            return Ok(());
        }
        let t = self.p.peek_token();
        self.err(
            &t,
            format!("Expected '{token}', found {}", describe(&t.token)),
        )
    }

    fn name(&mut self) -> R<Name> {
        let t = self.p.peek_token();
        if let Token::Word(w) = &t.token
            && w.quote_style.is_none()
            && is_reserved(&w.value)
        {
            return Err(reserved_error(
                &w.value,
                t.span.start.line,
                t.span.start.column,
            ));
        }
        match self.p.parse_identifier() {
            Ok(ident) => Ok(name_of(&ident, &t)),
            Err(_) => self.err(&t, format!("Expected a name, found {}", describe(&t.token))),
        }
    }

    /// A stream or table name. ksqlDB's ParserUtil.getSourceName: quoted or not, it must
    /// be usable as a Kafka Streams store name.
    fn source_name(&mut self) -> R<Name> {
        let name = self.name()?;
        if !name
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ParseError {
                message: format!(
                    "Illegal argument at Line: {}, Col: {}. Source names may only contain alphanumeric values, '_' or '-'. Got: '{}'",
                    name.line, name.column, name.value
                ),
                line: name.line,
                column: name.column,
            });
        }
        Ok(name)
    }

    fn expr(&mut self) -> R<Expr> {
        let e = self.p.parse_expr().map_err(convert)?;
        check_reserved(&e)?;
        Ok(e)
    }

    fn uint(&mut self) -> R<u64> {
        let t = self.p.peek_token();
        self.p.parse_literal_uint().or_else(|_| {
            self.err(
                &t,
                format!(
                    "Expected a non-negative integer, found {}",
                    describe(&t.token)
                ),
            )
        })
    }

    fn statement(&mut self) -> R<Statement> {
        let first = self.p.peek_token();
        let start = self.offset(first.span.start);
        let kind = match self.peek_word().as_deref() {
            Some("CREATE") => self.create()?,
            Some("INSERT") => self.insert()?,
            Some("DELETE") => self.delete()?,
            Some("SELECT") => StatementKind::Select(Box::new(self.select()?)),
            Some("SHOW") | Some("LIST") => self.show()?,
            Some("DESCRIBE") => self.describe()?,
            Some("EXPLAIN") => {
                self.p.next_token();
                let next = self.peek_word();
                if matches!(next.as_deref(), Some("SELECT" | "CREATE" | "INSERT")) {
                    let inner = self.statement_inner()?;
                    StatementKind::Explain(ExplainTarget::Statement(Box::new(inner)))
                } else {
                    StatementKind::Explain(ExplainTarget::Query(self.name()?))
                }
            }
            Some("DROP") => self.drop()?,
            Some("ALTER") => self.alter()?,
            Some("TERMINATE") => {
                self.p.next_token();
                if self.eat("ALL") {
                    StatementKind::Terminate(None)
                } else {
                    StatementKind::Terminate(Some(self.name()?))
                }
            }
            Some("PRINT") => self.print()?,
            Some("SET") => {
                self.p.next_token();
                let key = self.string()?;
                self.expect_token(Token::Eq)?;
                let value = self.string()?;
                StatementKind::Set { key, value }
            }
            Some("UNSET") => {
                self.p.next_token();
                StatementKind::Unset {
                    key: self.string()?,
                }
            }
            // ksqlDB's grammar knows ASSERT only before NOT, TOPIC or SCHEMA, and reports
            // any other following token as the syntax error.
            Some("ASSERT") => {
                self.p.next_token();
                let next = self.p.peek_token();
                if !matches!(
                    self.peek_word().as_deref(),
                    Some("NOT" | "TOPIC" | "SCHEMA")
                ) {
                    let (line, column) = (next.span.start.line, next.span.start.column);
                    return self.err(
                        &next,
                        format!(
                            "Syntax error at or near {} at line {line}:{column}",
                            describe(&next.token)
                        ),
                    );
                }
                return self.err(&first, "Unknown statement 'ASSERT'");
            }
            _ => {
                return self.err(
                    &first,
                    format!("Unknown statement {}", describe(&first.token)),
                );
            }
        };
        let end_tok = self.p.peek_token();
        match end_tok.token {
            Token::SemiColon | Token::EOF => {}
            _ => {
                return self.err(
                    &end_tok,
                    format!(
                        "Unexpected {} after the end of the statement",
                        describe(&end_tok.token)
                    ),
                );
            }
        }
        Ok(self.finish(&first, start, &end_tok, kind))
    }

    /// The statement with its own text: from its first token up to `end_tok`.
    fn finish(
        &self,
        first: &TokenWithSpan,
        start: usize,
        end_tok: &TokenWithSpan,
        kind: StatementKind,
    ) -> Statement {
        let end = if end_tok.token == Token::EOF {
            self.sql.len()
        } else {
            self.offset(end_tok.span.start)
        };
        let text = self
            .sql
            .get(start..end)
            .unwrap_or_default()
            .trim()
            .to_string();
        Statement {
            text,
            line: first.span.start.line,
            column: first.span.start.column,
            kind,
        }
    }

    /// A nested statement (after EXPLAIN): same grammar, text to the end of the statement.
    fn statement_inner(&mut self) -> R<Statement> {
        let first = self.p.peek_token();
        let start = self.offset(first.span.start);
        let kind = match self.peek_word().as_deref() {
            Some("CREATE") => self.create()?,
            Some("INSERT") => self.insert()?,
            _ => StatementKind::Select(Box::new(self.select()?)),
        };
        let end_tok = self.p.peek_token();
        Ok(self.finish(&first, start, &end_tok, kind))
    }

    fn string(&mut self) -> R<String> {
        let t = self.p.next_token();
        match &t.token {
            Token::SingleQuotedString(s) => Ok(s.clone()),
            other => self.err(
                &t,
                format!("Expected a quoted string, found {}", describe(other)),
            ),
        }
    }

    fn create(&mut self) -> R<StatementKind> {
        self.expect("CREATE")?;
        let or_replace = if self.eat("OR") {
            self.expect("REPLACE")?;
            true
        } else {
            false
        };
        if self.eat("TYPE") {
            let if_not_exists = if self.eat("IF") {
                self.expect("NOT")?;
                self.expect("EXISTS")?;
                true
            } else {
                false
            };
            let name = self.name()?;
            self.expect("AS")?;
            let data_type = self.data_type()?;
            return Ok(StatementKind::CreateType {
                name,
                data_type,
                if_not_exists,
            });
        }
        let read_only = self.eat("SOURCE");
        let kind = self.source_kind("CREATE")?;
        let if_not_exists = if self.eat("IF") {
            self.expect("NOT")?;
            self.expect("EXISTS")?;
            true
        } else {
            false
        };
        let name = self.source_name()?;
        let mut columns = Vec::new();
        if self.p.consume_token(&Token::LParen) {
            loop {
                columns.push(self.column_def()?);
                if !self.p.consume_token(&Token::Comma) {
                    break;
                }
            }
            self.expect_token(Token::RParen)?;
        }
        let properties = if self.eat("WITH") {
            self.properties()?
        } else {
            Properties::default()
        };
        if self.peek_word().as_deref() == Some("AS") && read_only {
            let t = self.p.peek_token();
            return self.err(&t, "CREATE SOURCE cannot be used with AS SELECT");
        }
        if self.eat("AS") {
            if !columns.is_empty() {
                let t = self.p.peek_token();
                return self.err(&t, "CREATE ... AS SELECT cannot declare columns");
            }
            let query = Box::new(self.select()?);
            return Ok(StatementKind::CreateAs {
                kind,
                name,
                or_replace,
                if_not_exists,
                properties,
                query,
            });
        }
        Ok(StatementKind::CreateSource {
            kind,
            name,
            or_replace,
            if_not_exists,
            read_only,
            columns,
            properties,
        })
    }

    fn column_def(&mut self) -> R<ColumnDef> {
        let name = self.name()?;
        let data_type = self.data_type()?;
        // A second parameter list, `VARCHAR(STRING) (KEY)`: ANTLR wants the element to end.
        let next = self.p.peek_token();
        if next.token == Token::LParen {
            return self.err(&next, "Expecting {',', ')'}");
        }
        let key = if self.eat("PRIMARY") {
            self.expect("KEY")?;
            KeyKind::PrimaryKey
        } else if self.eat("KEY") {
            KeyKind::Key
        } else {
            KeyKind::None
        };
        let header = if self.eat("HEADERS") {
            Some(HeaderSpec::All)
        } else if self.eat("HEADER") {
            self.expect_token(Token::LParen)?;
            let k = self.string()?;
            self.expect_token(Token::RParen)?;
            Some(HeaderSpec::Key(k))
        } else {
            None
        };
        Ok(ColumnDef {
            name,
            data_type,
            key,
            header,
        })
    }

    fn data_type(&mut self) -> R<DataType> {
        crate::types::TypeParser::new(&mut self.p).data_type()
    }

    fn properties(&mut self) -> R<Properties> {
        self.expect_token(Token::LParen)?;
        let mut props = Properties::default();
        loop {
            let name = self.name()?;
            self.expect_token(Token::Eq)?;
            let t = self.p.next_token();
            let value = match &t.token {
                Token::SingleQuotedString(s) => PropValue::Str(s.clone()),
                Token::Number(n, _) => PropValue::Num(n.clone()),
                // ksqlDB's `number` literal takes a sign.
                Token::Minus => match self.p.peek_token().token {
                    Token::Number(n, _) => {
                        self.p.next_token();
                        PropValue::Num(format!("-{n}"))
                    }
                    other => {
                        return self.err(
                            &t,
                            format!("Expected a number after '-', found {}", describe(&other)),
                        );
                    }
                },
                Token::Word(w) if w.value.eq_ignore_ascii_case("true") => PropValue::Bool(true),
                Token::Word(w) if w.value.eq_ignore_ascii_case("false") => PropValue::Bool(false),
                other => {
                    return self.err(
                        &t,
                        format!("Expected a property value, found {}", describe(other)),
                    );
                }
            };
            let key = name.value.to_ascii_uppercase();
            if props.values.insert(key.clone(), value).is_some() {
                return self.err(&t, format!("Duplicate property {key}"));
            }
            if !self.p.consume_token(&Token::Comma) {
                break;
            }
        }
        self.expect_token(Token::RParen)?;
        Ok(props)
    }

    fn insert(&mut self) -> R<StatementKind> {
        self.expect("INSERT")?;
        self.expect("INTO")?;
        let target = self.source_name()?;
        if self.peek_word().as_deref() == Some("SELECT") {
            return Ok(StatementKind::InsertSelect {
                target,
                query: Box::new(self.select()?),
            });
        }
        let columns = if self.p.consume_token(&Token::LParen) {
            let mut cols = Vec::new();
            loop {
                cols.push(self.name()?);
                if !self.p.consume_token(&Token::Comma) {
                    break;
                }
            }
            self.expect_token(Token::RParen)?;
            Some(cols)
        } else {
            None
        };
        self.expect("VALUES")?;
        self.expect_token(Token::LParen)?;
        let mut values = Vec::new();
        if !self.p.consume_token(&Token::RParen) {
            loop {
                values.push(self.expr()?);
                if !self.p.consume_token(&Token::Comma) {
                    break;
                }
            }
            self.expect_token(Token::RParen)?;
        }
        let properties = if self.eat("WITH") {
            self.properties()?
        } else {
            Properties::default()
        };
        Ok(StatementKind::InsertValues {
            target,
            columns,
            values,
            properties,
        })
    }

    fn delete(&mut self) -> R<StatementKind> {
        self.expect("DELETE")?;
        self.expect("FROM")?;
        let target = self.source_name()?;
        let at = self.p.peek_token();
        if !self.eat("WHERE") {
            return self.err(
                &at,
                "DELETE needs a WHERE clause naming the keys to delete, e.g. DELETE FROM t WHERE id = 'u1'",
            );
        }
        Ok(StatementKind::Delete {
            target,
            selection: self.expr()?,
        })
    }

    fn select(&mut self) -> R<Select> {
        self.expect("SELECT")?;
        let mut items = Vec::new();
        loop {
            let t = self.p.peek_token();
            if let Some((qualifier, path)) = self.struct_all()? {
                items.push(SelectItem::StructAll { qualifier, path });
                if !self.p.consume_token(&Token::Comma) {
                    break;
                }
                continue;
            }
            let item = self.p.parse_select_item().map_err(convert)?;
            items.push(match item {
                SqlSelectItem::Wildcard(_) => SelectItem::Wildcard,
                SqlSelectItem::QualifiedWildcard(
                    sqlparser::ast::SelectItemQualifiedWildcardKind::ObjectName(n),
                    _,
                ) => {
                    let ident =
                        n.0.last()
                            .and_then(|p| p.as_ident())
                            .cloned()
                            .unwrap_or_else(|| Ident::new(n.to_string()));
                    SelectItem::QualifiedWildcard(name_of(&ident, &t))
                }
                SqlSelectItem::UnnamedExpr(expr) => {
                    check_reserved(&expr)?;
                    SelectItem::Expr { expr, alias: None }
                }
                SqlSelectItem::ExprWithAlias { expr, alias } => {
                    check_reserved(&expr)?;
                    check_reserved_ident(&alias)?;
                    let alias_tok = self.p.peek_token();
                    SelectItem::Expr {
                        expr,
                        alias: Some(name_of(&alias, &alias_tok)),
                    }
                }
                _ => return self.err(&t, "Unsupported select item"),
            });
            if !self.p.consume_token(&Token::Comma) {
                break;
            }
        }
        self.expect("FROM")?;
        let from = self.source_name()?;
        let alias = if self.eat("AS") {
            Some(self.name()?)
        } else {
            match self.peek_word() {
                Some(w) if !CLAUSE_WORDS.contains(&w.as_str()) => Some(self.name()?),
                _ => None,
            }
        };
        let joins = self.joins()?;
        let mut select = Select {
            items,
            from,
            alias,
            joins,
            selection: None,
            group_by: Vec::new(),
            having: None,
            partition_by: Vec::new(),
            emit_changes: false,
            emit_final: false,
            limit: None,
            window: None,
        };
        loop {
            let t = self.p.peek_token();
            match self.peek_word().as_deref() {
                Some("WHERE") if select.selection.is_none() => {
                    self.p.next_token();
                    select.selection = Some(self.expr()?);
                }
                Some("GROUP") if select.group_by.is_empty() => {
                    self.p.next_token();
                    self.expect("BY")?;
                    select.group_by = self.group_by_list()?;
                    value_expressions(&select.group_by, "GROUP BY")?;
                }
                Some("HAVING") if select.having.is_none() => {
                    self.p.next_token();
                    select.having = Some(self.expr()?);
                }
                Some("PARTITION") if select.partition_by.is_empty() => {
                    self.p.next_token();
                    self.expect("BY")?;
                    let open = self.p.peek_token();
                    if open.token == Token::LParen
                        && self.p.peek_nth_token(1).token == Token::RParen
                    {
                        return self.err(&open, "PARTITION BY requires at least one expression");
                    }
                    select.partition_by = self.expr_list()?;
                    let items: Vec<Expr> = match select.partition_by.as_slice() {
                        [Expr::Tuple(items)] => items.clone(),
                        list => list.to_vec(),
                    };
                    value_expressions(&items, "PARTITION BY")?;
                }
                Some("EMIT") => {
                    self.p.next_token();
                    if self.eat("CHANGES") {
                        select.emit_changes = true;
                    } else if self.eat("FINAL") {
                        // Still a push query (of final results only).
                        select.emit_changes = true;
                        select.emit_final = true;
                    } else {
                        let n = self.p.peek_token();
                        return self.err(
                            &n,
                            format!("Expected CHANGES after EMIT, found {}", describe(&n.token)),
                        );
                    }
                }
                Some("LIMIT") if select.limit.is_none() => {
                    self.p.next_token();
                    select.limit = Some(self.uint()?);
                }
                Some("WINDOW") if select.window.is_none() => {
                    self.p.next_token();
                    select.window = Some(self.window_clause()?);
                }
                Some("JOIN" | "INNER" | "LEFT" | "RIGHT" | "FULL") => {
                    // ksqlDB's grammar has every join right after FROM.
                    return self.err(
                        &t,
                        format!(
                            "A JOIN must follow the FROM source, before {}",
                            "WINDOW, WHERE, GROUP BY, PARTITION BY, HAVING, EMIT and LIMIT"
                        ),
                    );
                }
                _ => break,
            }
        }
        Ok(select)
    }

    /// The join clauses after the FROM source: `joinType JOIN aliasedRelation joinWindow?
    /// joinCriteria`, repeated, with ksqlDB's join types (`INNER`, `LEFT [OUTER]`,
    /// `RIGHT [OUTER]`, `FULL [OUTER]`, or none for INNER).
    fn joins(&mut self) -> R<Vec<Join>> {
        let mut joins = Vec::new();
        loop {
            let at = self.p.peek_token();
            let kind = match self.peek_word().as_deref() {
                Some("JOIN") => JoinKind::Inner,
                Some("INNER") => {
                    self.p.next_token();
                    JoinKind::Inner
                }
                Some(w @ ("LEFT" | "RIGHT" | "FULL")) => {
                    let kind = match w {
                        "LEFT" => JoinKind::Left,
                        "RIGHT" => JoinKind::Right,
                        _ => JoinKind::Full,
                    };
                    self.p.next_token();
                    self.eat("OUTER");
                    kind
                }
                _ => return Ok(joins),
            };
            self.expect("JOIN")?;
            let source = self.source_name()?;
            let alias = if self.eat("AS") {
                Some(self.name()?)
            } else {
                match self.peek_word() {
                    Some(w) if !CLAUSE_WORDS.contains(&w.as_str()) => Some(self.name()?),
                    _ => None,
                }
            };
            let within = if self.eat("WITHIN") {
                let (before_ms, after_ms) = if self.p.consume_token(&Token::LParen) {
                    let before = self.duration()?;
                    self.expect_token(Token::Comma)?;
                    let after = self.duration()?;
                    self.expect_token(Token::RParen)?;
                    (before, after)
                } else {
                    let n = self.duration()?;
                    (n, n)
                };
                let grace_ms = if self.eat("GRACE") {
                    self.expect("PERIOD")?;
                    Some(self.duration()?)
                } else {
                    None
                };
                Some(JoinWithin {
                    before_ms,
                    after_ms,
                    grace_ms,
                })
            } else {
                None
            };
            self.expect("ON")?;
            let on = self.expr()?;
            joins.push(Join {
                kind,
                source,
                alias,
                within,
                on,
                line: at.span.start.line,
                column: at.span.start.column,
            });
        }
    }

    /// `TUMBLING (SIZE n unit [, RETENTION n unit] [, GRACE PERIOD n unit])`,
    /// `HOPPING (SIZE n unit, ADVANCE BY n unit [, ...])` or `SESSION (n unit [, ...])`,
    /// as ksqlDB's grammar has them.
    fn window_clause(&mut self) -> R<WindowClause> {
        let at = self.p.peek_token();
        let kind_word = self.peek_word();
        let kind = kind_word.as_deref().unwrap_or("");
        if !matches!(kind, "TUMBLING" | "HOPPING" | "SESSION") {
            return self.err(
                &at,
                format!(
                    "Expected TUMBLING, HOPPING or SESSION after WINDOW, found {}",
                    describe(&at.token)
                ),
            );
        }
        self.p.next_token();
        self.expect_token(Token::LParen)?;
        let kind = match kind {
            "TUMBLING" => {
                self.expect("SIZE")?;
                WindowClauseKind::Tumbling {
                    size_ms: self.duration()?,
                }
            }
            "HOPPING" => {
                self.expect("SIZE")?;
                let size_ms = self.duration()?;
                self.expect_token(Token::Comma)?;
                self.expect("ADVANCE")?;
                self.expect("BY")?;
                WindowClauseKind::Hopping {
                    size_ms,
                    advance_ms: self.duration()?,
                }
            }
            _ => WindowClauseKind::Session {
                gap_ms: self.duration()?,
            },
        };
        let mut retention_ms = None;
        let mut grace_ms = None;
        while self.p.consume_token(&Token::Comma) {
            if retention_ms.is_none() && grace_ms.is_none() && self.eat("RETENTION") {
                retention_ms = Some(self.duration()?);
            } else if grace_ms.is_none() && self.eat("GRACE") {
                self.expect("PERIOD")?;
                grace_ms = Some(self.duration()?);
            } else {
                let t = self.p.peek_token();
                return self.err(
                    &t,
                    format!(
                        "Expected RETENTION or GRACE PERIOD, found {}",
                        describe(&t.token)
                    ),
                );
            }
        }
        self.expect_token(Token::RParen)?;
        Ok(WindowClause {
            kind,
            retention_ms,
            grace_ms,
            line: at.span.start.line,
            column: at.span.start.column,
        })
    }

    /// `n unit`, in milliseconds: ksqlDB's window units, singular or plural.
    fn duration(&mut self) -> R<i64> {
        let at = self.p.peek_token();
        let n = self.uint()?;
        let t = self.p.peek_token();
        let unit_ms: u64 = match self.peek_word().as_deref() {
            Some("MILLISECOND" | "MILLISECONDS") => 1,
            Some("SECOND" | "SECONDS") => 1_000,
            Some("MINUTE" | "MINUTES") => 60_000,
            Some("HOUR" | "HOURS") => 3_600_000,
            Some("DAY" | "DAYS") => 86_400_000,
            _ => {
                return self.err(
                    &t,
                    format!(
                        "Expected a time unit (MILLISECONDS, SECONDS, MINUTES, HOURS or DAYS), found {}",
                        describe(&t.token)
                    ),
                );
            }
        };
        self.p.next_token();
        n.checked_mul(unit_ms)
            .and_then(|ms| i64::try_from(ms).ok())
            .map_or_else(|| self.err(&at, "Window duration is too large"), Ok)
    }

    /// `a->b->*`: sqlparser cannot parse a `*` after `->`, so the path is read here.
    fn struct_all(&mut self) -> R<Option<(Option<Name>, Vec<Name>)>> {
        // An optional `source.` before the column.
        let qualified = matches!(self.p.peek_nth_token_ref(0).token, Token::Word(_))
            && self.p.peek_nth_token_ref(1).token == Token::Period;
        let mut n = if qualified { 2 } else { 0 };
        loop {
            let is_word = matches!(self.p.peek_nth_token_ref(n).token, Token::Word(_));
            if !is_word || self.p.peek_nth_token_ref(n + 1).token != Token::Arrow {
                return Ok(None);
            }
            if self.p.peek_nth_token_ref(n + 2).token == Token::Mul {
                break;
            }
            n += 2;
        }
        let qualifier = if qualified {
            let q = self.name()?;
            self.p.next_token();
            Some(q)
        } else {
            None
        };
        let mut path = Vec::new();
        loop {
            path.push(self.name()?);
            self.p.next_token();
            if self.p.consume_token(&Token::Mul) {
                return Ok(Some((qualifier, path)));
            }
        }
    }

    fn expr_list(&mut self) -> R<Vec<Expr>> {
        let mut out = Vec::new();
        loop {
            out.push(self.expr()?);
            if !self.p.consume_token(&Token::Comma) {
                return Ok(out);
            }
        }
    }

    fn show(&mut self) -> R<StatementKind> {
        self.p.next_token();
        let t = self.p.peek_token();
        let what = match self.peek_word().as_deref() {
            Some("STREAMS") => ShowWhat::Streams,
            Some("TABLES") => ShowWhat::Tables,
            Some("QUERIES") => ShowWhat::Queries,
            Some("TOPICS") => ShowWhat::Topics,
            Some("FUNCTIONS") => ShowWhat::Functions,
            Some("PROPERTIES") => ShowWhat::Properties,
            Some("TYPES") => ShowWhat::Types,
            _ => {
                return self.err(&t, format!("Expected STREAMS, TABLES, QUERIES, TOPICS, FUNCTIONS or PROPERTIES, found {}", describe(&t.token)));
            }
        };
        self.p.next_token();
        self.eat("EXTENDED");
        Ok(StatementKind::Show(what))
    }

    fn describe(&mut self) -> R<StatementKind> {
        self.expect("DESCRIBE")?;
        if self.eat("FUNCTION") {
            return Ok(StatementKind::DescribeFunction(self.name()?));
        }
        let extended = self.eat("EXTENDED");
        Ok(StatementKind::Describe {
            name: self.source_name()?,
            extended,
        })
    }

    /// GROUP BY's expressions. As in ksqlDB's grammar, one parenthesized list is a
    /// grouping set, `GROUP BY (a, b)` meaning `GROUP BY a, b`; such a list beside other
    /// expressions is a syntax error.
    fn group_by_list(&mut self) -> R<Vec<Expr>> {
        let mut list = self.expr_list()?;
        if let [Expr::Tuple(items)] = list.as_slice() {
            // Its elements are expressions, and a parenthesized list is not one:
            // `GROUP BY (a, (b, c))` is as wrong as `GROUP BY a, (b, c)`.
            list = items.clone();
        }
        if list.len() > 1
            && let Some(first) = list.iter().find_map(|e| match e {
                Expr::Tuple(items) => items.first(),
                _ => None,
            })
        {
            use sqlparser::ast::Spanned;
            let end = first.span().end;
            return Err(ParseError {
                message: "missing ')' at ','".into(),
                line: end.line,
                column: end.column,
            });
        }
        list.shrink_to_fit();
        Ok(list)
    }

    /// STREAM or TABLE, after the keyword `after` (for the error message).
    fn source_kind(&mut self, after: &str) -> R<SourceKind> {
        let t = self.p.peek_token();
        if self.eat("STREAM") {
            Ok(SourceKind::Stream)
        } else if self.eat("TABLE") {
            Ok(SourceKind::Table)
        } else {
            self.err(
                &t,
                format!(
                    "Expected STREAM or TABLE after {after}, found {}",
                    describe(&t.token)
                ),
            )
        }
    }

    fn alter(&mut self) -> R<StatementKind> {
        self.expect("ALTER")?;
        let kind = self.source_kind("ALTER")?;
        let name = self.source_name()?;
        let mut columns = Vec::new();
        loop {
            self.expect("ADD")?;
            self.eat("COLUMN");
            columns.push(self.column_def()?);
            if !self.p.consume_token(&Token::Comma) {
                break;
            }
        }
        Ok(StatementKind::Alter {
            kind,
            name,
            columns,
        })
    }

    fn drop(&mut self) -> R<StatementKind> {
        self.expect("DROP")?;
        if self.eat("TYPE") {
            let if_exists = if self.eat("IF") {
                self.expect("EXISTS")?;
                true
            } else {
                false
            };
            return Ok(StatementKind::DropType {
                name: self.name()?,
                if_exists,
            });
        }
        let kind = self.source_kind("DROP")?;
        let if_exists = if self.eat("IF") {
            self.expect("EXISTS")?;
            true
        } else {
            false
        };
        let name = self.source_name()?;
        let delete_topic = if self.eat("DELETE") {
            self.expect("TOPIC")?;
            true
        } else {
            false
        };
        Ok(StatementKind::Drop {
            kind,
            name,
            if_exists,
            delete_topic,
        })
    }

    fn print(&mut self) -> R<StatementKind> {
        self.expect("PRINT")?;
        let t = self.p.next_token();
        let topic = match &t.token {
            // Topic names are case-sensitive: a quoted name is taken as written, a bare
            // one too (PRINT resolves it case-insensitively if no exact match exists).
            Token::SingleQuotedString(s) => Name {
                value: s.clone(),
                line: t.span.start.line,
                column: t.span.start.column,
            },
            Token::Word(w) => Name {
                value: w.value.clone(),
                line: t.span.start.line,
                column: t.span.start.column,
            },
            other => {
                return self.err(
                    &t,
                    format!("Expected a topic name, found {}", describe(other)),
                );
            }
        };
        let mut from_beginning = false;
        let mut limit = None;
        loop {
            if self.eat("FROM") {
                self.expect("BEGINNING")?;
                from_beginning = true;
            } else if self.eat("LIMIT") {
                limit = Some(self.uint()?);
            } else if self.eat("INTERVAL") || self.eat("SAMPLE") {
                self.uint()?;
            } else {
                break;
            }
        }
        Ok(StatementKind::Print {
            topic,
            from_beginning,
            limit,
        })
    }
}

/// ksqlDB's reserved words: the keywords of its grammar that its `nonReserved` rule does
/// not let stand for an identifier. Unquoted, they cannot name anything.
const RESERVED: &[&str] = &[
    "SELECT",
    "FROM",
    "AS",
    "ALL",
    "DISTINCT",
    "WHERE",
    "WITHIN",
    "WINDOW",
    "GROUP",
    "BY",
    "HAVING",
    "LIMIT",
    "AT",
    "OR",
    "AND",
    "IN",
    "NOT",
    "EXISTS",
    "BETWEEN",
    "LIKE",
    "IS",
    "NULL",
    "TRUE",
    "FALSE",
    "MILLISECOND",
    "YEARS",
    "MONTHS",
    "DAYS",
    "HOURS",
    "MINUTES",
    "SECONDS",
    "MILLISECONDS",
    "TUMBLING",
    "HOPPING",
    "SIZE",
    "ADVANCE",
    "RETENTION",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "JOIN",
    "FULL",
    "OUTER",
    "INNER",
    "LEFT",
    "RIGHT",
    "ON",
    "WITH",
    "VALUES",
    "CREATE",
    "TABLE",
    "TOPIC",
    "STREAM",
    "STREAMS",
    "INSERT",
    "DELETE",
    "INTO",
    "DESCRIBE",
    "EXTENDED",
    "PRINT",
    "CAST",
    "LIST",
    "TOPICS",
    "QUERY",
    "QUERIES",
    "TERMINATE",
    "LOAD",
    "DROP",
    "TO",
    "RENAME",
    "SAMPLE",
    "EXPORT",
    "CATALOG",
    "PROPERTIES",
    "BEGINNING",
    "UNSET",
    "RUN",
    "SCRIPT",
    "DECIMAL",
    "CONNECTOR",
    "CONNECTORS",
    "NAMESPACE",
    "MATERIALIZED",
    "VIEW",
];

/// Time units a function may take as a bare word (DATEADD(DAYS, ...)): ksqlDB's grammar
/// reads them as a unit there, not as an identifier.
const TIME_UNITS: &[&str] = &[
    "MILLISECOND",
    "MILLISECONDS",
    "YEARS",
    "MONTHS",
    "DAYS",
    "HOURS",
    "MINUTES",
    "SECONDS",
];

pub(crate) fn is_reserved(word: &str) -> bool {
    let upper = word.to_ascii_uppercase();
    RESERVED.contains(&upper.as_str())
}

/// ksqlDB's message when a reserved word stands where an identifier should.
fn reserved_error(word: &str, line: u64, column: u64) -> ParseError {
    ParseError {
        message: format!(
            "\"{word}\" is a reserved keyword and it can't be used as an identifier. You can use it as an identifier by escaping it as '{word}' "
        ),
        line,
        column,
    }
}

fn check_reserved_ident(i: &Ident) -> R<()> {
    if i.quote_style.is_none()
        && is_reserved(&i.value)
        && !TIME_UNITS.contains(&i.value.to_ascii_uppercase().as_str())
    {
        return Err(reserved_error(
            &i.value,
            i.span.start.line,
            i.span.start.column,
        ));
    }
    Ok(())
}

/// Refuses reserved words used as column, field or qualifier names in an expression.
fn check_reserved(e: &Expr) -> R<()> {
    let mut found = Ok(());
    let _ = sqlparser::ast::visit_expressions(e, |x| {
        let r = match x {
            Expr::Identifier(i) => check_reserved_ident(i),
            Expr::CompoundIdentifier(parts) => parts.iter().try_for_each(check_reserved_ident),
            _ => Ok(()),
        };
        match r {
            Ok(()) => std::ops::ControlFlow::Continue(()),
            Err(err) => {
                found = Err(err);
                std::ops::ControlFlow::Break(())
            }
        }
    });
    found
}

fn name_of(ident: &Ident, t: &TokenWithSpan) -> Name {
    let value = if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_ascii_uppercase()
    };
    let (line, column) = if ident.span.start.line > 0 {
        (ident.span.start.line, ident.span.start.column)
    } else {
        (t.span.start.line, t.span.start.column)
    };
    Name {
        value,
        line,
        column,
    }
}

fn describe(t: &Token) -> String {
    match t {
        Token::EOF => "end of input".to_string(),
        other => format!("'{other}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> Statement {
        let mut v = parse(sql).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    fn chain(op: &str, n: usize) -> String {
        vec!["1"; n].join(op)
    }

    /// The statement that overflowed the server's stack: a million chained additions
    /// (2 MB). It must be refused before a tree that deep exists.
    #[test]
    fn a_million_chained_operators_are_refused_not_parsed() {
        let sql = format!("SELECT id FROM t WHERE n = {};", chain("+", 1_000_000));
        let e = parse(&sql).unwrap_err();
        assert!(e.message.contains("nested too deeply"), "{}", e.message);
        assert_eq!(e.line, 1);
        for sql in [
            format!("SELECT id FROM t WHERE {};", chain(" AND ", 200_000)),
            format!("SELECT s{} FROM t;", "->a".repeat(200_000)),
            format!("SELECT a{} FROM t;", "[1]".repeat(200_000)),
            format!(
                "SELECT {} FROM t;",
                vec!["CASE WHEN x THEN 1 END"; 200_000].join(" + ")
            ),
            format!(
                "SELECT {}1{} FROM t;",
                "(".repeat(200_000),
                ")".repeat(200_000)
            ),
            format!("SELECT {} FROM t;", chain("+CAST(1 AS INT)+", 100_000)),
        ] {
            let e = parse(&sql).unwrap_err();
            assert!(e.message.contains("nested too deeply"), "{}", e.message);
        }
    }

    #[test]
    fn group_and_partition_by_take_value_expressions() {
        for sql in [
            "SELECT COUNT(*) FROM t GROUP BY a AND b;",
            "SELECT COUNT(*) FROM t GROUP BY a, b = 1;",
            "SELECT * FROM t PARTITION BY a IS NULL;",
            "SELECT * FROM t PARTITION BY NOT a;",
        ] {
            let e = parse(sql).unwrap_err();
            assert!(
                e.message.contains("value expressions"),
                "{sql}: {}",
                e.message
            );
        }
        for sql in [
            "SELECT COUNT(*) FROM t GROUP BY (a IS NULL);",
            "SELECT COUNT(*) FROM t GROUP BY a + 1, b;",
            "SELECT * FROM t PARTITION BY (a AND b);",
        ] {
            parse(sql).unwrap();
        }
        // A parenthesized list is a grouping set, never an element of one or of a list
        // (the parser fuzz test found `GROUP BY (a, (b, c))` accepted, while its printed
        // form `GROUP BY a, (b, c)` was not).
        for sql in [
            "SELECT COUNT(*) FROM t GROUP BY a, (b, c);",
            "SELECT COUNT(*) FROM t GROUP BY (a, (b, c));",
        ] {
            let e = parse(sql).unwrap_err();
            assert_eq!(e.message, "missing ')' at ','", "{sql}");
        }
        assert_eq!(
            select_of("SELECT COUNT(*) FROM t GROUP BY (a, b);")
                .group_by
                .len(),
            2
        );
    }

    /// The fuzz test found `x::type` parsed (as sqlparser's PostgreSQL cast), with a
    /// type that printed differently from how it read.
    #[test]
    fn double_colon_casts_are_a_syntax_error() {
        let e = parse("SELECT a::INT FROM s;").unwrap_err();
        assert!(e.message.contains("'::'"), "{}", e.message);
        assert_eq!((e.line, e.column), (1, 9));
        assert!(crate::parse_expr("(false)::x").is_err());
        // Inside a string it is text.
        parse("SELECT 'a::b' FROM s;").unwrap();
        // Nor hex or national strings (the fuzz test found X'a '''' b' printed unescaped).
        let e = parse("SELECT X'0a' FROM s;").unwrap_err();
        assert!(e.message.contains("TO_BYTES"), "{}", e.message);
        assert!(parse("SELECT N'x' FROM s;").is_err());
        // A column named X is still a column.
        parse("SELECT x, 'a' FROM s;").unwrap();
    }

    #[test]
    fn long_flat_statements_still_parse() {
        // Chains the planner can take, and wide lists that are not chains at all.
        parse(&format!("SELECT id FROM t WHERE n = {};", chain("+", 200))).unwrap();
        let list = (0..20_000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        parse(&format!("SELECT id FROM t WHERE n IN ({list});")).unwrap();
        let branches = (0..2_000)
            .map(|i| format!("WHEN n = {i} THEN 'v{i}'"))
            .collect::<Vec<_>>()
            .join(" ");
        parse(&format!("SELECT CASE {branches} ELSE 'x' END FROM t;")).unwrap();
        let columns = (0..5_000)
            .map(|i| format!("c{i} + 1 AS a{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        parse(&format!("SELECT {columns} FROM t;")).unwrap();
    }

    #[test]
    fn insert_values_takes_event_store_properties() {
        let s = one(
            "INSERT INTO cart_events (cart_id, item) VALUES ('c1', 'apple') WITH (expected_version = 3, EVENT_ID = 'cmd-1');",
        );
        let StatementKind::InsertValues { properties, .. } = s.kind else {
            panic!("not an INSERT VALUES: {s:?}");
        };
        let got: Vec<(&str, &PropValue)> = properties
            .values
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        assert_eq!(
            got,
            [
                ("EVENT_ID", &PropValue::Str("cmd-1".into())),
                ("EXPECTED_VERSION", &PropValue::Num("3".into())),
            ]
        );
        let s = one("INSERT INTO s VALUES (1);");
        let StatementKind::InsertValues { properties, .. } = s.kind else {
            panic!("not an INSERT VALUES: {s:?}");
        };
        assert!(properties.values.is_empty());
        assert!(parse("INSERT INTO s VALUES (1) WITH;").is_err());
    }

    #[test]
    fn a_second_type_parameter_list_is_a_syntax_error() {
        let e =
            parse("CREATE STREAM s (k VARCHAR(STRING) (KEY)) WITH (kafka_topic='t');").unwrap_err();
        assert_eq!(e.message, "Expecting {',', ')'}");
        assert_eq!((e.line, e.column), (1, 36));
    }

    #[test]
    fn assert_is_a_syntax_error_at_the_following_token() {
        let e = parse("ASSERT VALUES foo (id INT) VALUES (123);").unwrap_err();
        assert_eq!(e.message, "Syntax error at or near 'VALUES' at line 1:8");
        assert_eq!((e.line, e.column), (1, 8));
        let e = parse("ASSERT TOPIC t;").unwrap_err();
        assert_eq!(e.message, "Unknown statement 'ASSERT'");
    }

    #[test]
    fn identifiers_follow_ksqldb_lexical_rules() {
        // Double quotes quote like backticks; a leading digit makes an unquoted identifier.
        let s = one(
            "CREATE STREAM \"MixedCase\" (k INT KEY, 1abc INT, `x``y` INT) WITH (kafka_topic='t');",
        );
        let StatementKind::CreateSource { name, columns, .. } = s.kind else {
            panic!("not a CREATE: {s:?}");
        };
        assert_eq!(name.value, "MixedCase");
        let cols: Vec<&str> = columns.iter().map(|c| c.name.value.as_str()).collect();
        assert_eq!(cols, ["K", "1ABC", "x`y"]);
        // `$` is no identifier character.
        assert!(parse("CREATE STREAM s (a$b INT) WITH (kafka_topic='t');").is_err());
        // Exponents stay numbers.
        let e = crate::parse_expr("12e3").unwrap();
        assert!(matches!(e, Expr::Value(_)), "{e:?}");
    }

    #[test]
    fn reserved_words_cannot_be_identifiers_unquoted() {
        let e = parse("CREATE STREAM ORDERS (c1 VARCHAR, size INTEGER) WITH (kafka_topic='t');")
            .unwrap_err();
        assert_eq!(
            e.message,
            "\"size\" is a reserved keyword and it can't be used as an identifier. You can use it as an identifier by escaping it as 'size' "
        );
        assert_eq!((e.line, e.column), (1, 35));
        assert!(parse("SELECT a AS size FROM t;").is_err());
        assert!(parse("SELECT s->size FROM t;").is_err());
        // Non-reserved keywords, quoted reserved words and time units are fine.
        assert!(
            parse("CREATE STREAM s (key INT, `size` INT, date DATE) WITH (kafka_topic='t');")
                .is_ok()
        );
        assert!(parse("SELECT DATEADD(DAYS, 1, d) AS x FROM t;").is_ok());
    }

    #[test]
    fn source_names_are_alphanumeric_underscore_or_dash() {
        let e = parse("CREATE STREAM `foo.bar` (k INT KEY) WITH (kafka_topic='t');").unwrap_err();
        assert_eq!(
            e.message,
            "Illegal argument at Line: 1, Col: 15. Source names may only contain alphanumeric values, '_' or '-'. Got: 'foo.bar'"
        );
        assert!(parse("SELECT * FROM `foo-bar`;").is_ok());
        assert!(parse("SELECT * FROM \"a b\";").is_err());
    }

    #[test]
    fn source_streams_and_alter() {
        let s = one("CREATE SOURCE TABLE t (k INT PRIMARY KEY, v STRING) WITH (kafka_topic='t');");
        assert!(matches!(
            s.kind,
            StatementKind::CreateSource {
                read_only: true,
                kind: SourceKind::Table,
                ..
            }
        ));
        assert!(parse("CREATE SOURCE STREAM s AS SELECT * FROM t;").is_err());
        let s = one("ALTER STREAM s ADD COLUMN a INT, ADD b STRING;");
        let StatementKind::Alter {
            kind,
            name,
            columns,
        } = s.kind
        else {
            panic!("not an ALTER: {s:?}");
        };
        assert_eq!((kind, name.value.as_str()), (SourceKind::Stream, "S"));
        assert_eq!(columns.len(), 2);
        assert!(parse("ALTER STREAM s DROP COLUMN a;").is_err());
    }

    #[test]
    fn create_stream_with_key_and_props() {
        let s = one(
            "CREATE STREAM pageviews (user_id STRING KEY, page STRING, `ms` BIGINT) WITH (kafka_topic='pageviews', value_format='JSON', partitions=1);",
        );
        let StatementKind::CreateSource {
            kind,
            name,
            columns,
            properties,
            ..
        } = s.kind
        else {
            panic!()
        };
        assert_eq!(kind, SourceKind::Stream);
        assert_eq!(name.value, "PAGEVIEWS");
        assert_eq!(columns[0].name.value, "USER_ID");
        assert_eq!(columns[0].key, KeyKind::Key);
        assert_eq!(columns[2].name.value, "ms");
        assert_eq!(
            properties.values["KAFKA_TOPIC"],
            PropValue::Str("pageviews".into())
        );
        assert_eq!(properties.values["PARTITIONS"], PropValue::Num("1".into()));
        assert!(s.text.starts_with("CREATE STREAM") && s.text.ends_with(")"));
    }

    #[test]
    fn nested_types_close_with_shift_right() {
        let s = one(
            "CREATE TABLE t (id INT PRIMARY KEY, a ARRAY<MAP<STRING, ARRAY<INT>>>, d DECIMAL(4, 2)) WITH (kafka_topic='t');",
        );
        let StatementKind::CreateSource { columns, .. } = s.kind else {
            panic!()
        };
        assert_eq!(columns[0].key, KeyKind::PrimaryKey);
        assert_eq!(
            columns[1].data_type.to_string(),
            "ARRAY<MAP<STRING, ARRAY<INTEGER>>>"
        );
        assert_eq!(
            columns[2].data_type,
            DataType::Decimal {
                precision: 4,
                scale: 2
            }
        );
    }

    #[test]
    fn ctas_with_group_by_and_emit() {
        let s = one(
            "CREATE TABLE v AS SELECT user_id, COUNT(*) AS views FROM pageviews GROUP BY user_id EMIT CHANGES;",
        );
        let StatementKind::CreateAs { query, .. } = s.kind else {
            panic!()
        };
        assert_eq!(query.from.value, "PAGEVIEWS");
        assert_eq!(query.group_by.len(), 1);
        assert!(query.emit_changes);
        assert_eq!(query.items.len(), 2);
    }

    #[test]
    fn script_with_several_statements_keeps_each_text() {
        let v = parse(
            "SHOW STREAMS;\n  INSERT INTO s (a) VALUES (1);  SELECT * FROM s EMIT CHANGES LIMIT 3;",
        )
        .unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[1].text, "INSERT INTO s (a) VALUES (1)");
        assert_eq!((v[1].line, v[1].column), (2, 3));
        let StatementKind::Select(q) = &v[2].kind else {
            panic!()
        };
        assert_eq!(q.limit, Some(3));
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("CREATE STREAM s (a STRING) WITH (kafka_topic='x')\nSELEC 1;").unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(e.column, 1);
        let e = parse("CREATE STREAM s (a NOTATYPE);").unwrap_err();
        assert!(e.message.contains("NOTATYPE"), "{e}");
        assert_eq!((e.line, e.column), (1, 20));
        let e = parse("SELECT * FROM").unwrap_err();
        assert!(e.message.contains("name"), "{e}");
    }

    fn select_of(sql: &str) -> Select {
        match one(sql).kind {
            StatementKind::Select(s) => *s,
            StatementKind::CreateAs { query, .. } => *query,
            other => panic!("not a query: {other:?}"),
        }
    }

    #[test]
    fn joins_follow_ksqldb_grammar() {
        let s = select_of(
            "CREATE STREAM out AS SELECT * FROM l AS a \
             LEFT OUTER JOIN r b WITHIN (1 SECOND, 2 MINUTES) GRACE PERIOD 3 SECONDS ON a.id = b.id \
             JOIN t ON a.k = t.k FULL JOIN u WITHIN 10 MILLISECONDS ON a.k = u.k \
             RIGHT JOIN v ON v.x = a.x INNER JOIN w ON w.x = a.x \
             WHERE a.x > 1 EMIT CHANGES;",
        );
        assert_eq!(s.from.value, "L");
        assert_eq!(s.alias.as_ref().map(|a| a.value.as_str()), Some("A"));
        let kinds: Vec<(JoinKind, &str, Option<&str>)> = s
            .joins
            .iter()
            .map(|j| {
                (
                    j.kind,
                    j.source.value.as_str(),
                    j.alias.as_ref().map(|a| a.value.as_str()),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (JoinKind::Left, "R", Some("B")),
                (JoinKind::Inner, "T", None),
                (JoinKind::Full, "U", None),
                (JoinKind::Right, "V", None),
                (JoinKind::Inner, "W", None),
            ]
        );
        assert_eq!(
            s.joins[0].within,
            Some(JoinWithin {
                before_ms: 1_000,
                after_ms: 120_000,
                grace_ms: Some(3_000),
            })
        );
        assert_eq!(
            s.joins[2].within,
            Some(JoinWithin {
                before_ms: 10,
                after_ms: 10,
                grace_ms: None,
            })
        );
        assert_eq!(s.joins[1].within, None);
        assert_eq!(s.joins[0].on.to_string(), "a.id = b.id");
        assert_eq!((s.joins[0].line, s.joins[0].column), (1, 43));
        assert!(s.selection.is_some() && s.emit_changes);

        // A join after another clause, a missing ON, a bad window unit.
        let e = parse("SELECT * FROM l WHERE x = 1 JOIN r ON l.k = r.k EMIT CHANGES;").unwrap_err();
        assert!(e.message.contains("must follow the FROM source"), "{e}");
        assert_eq!((e.line, e.column), (1, 29));
        let e = parse("SELECT * FROM l JOIN r EMIT CHANGES;").unwrap_err();
        assert!(e.message.contains("Expected ON"), "{e}");
        let e = parse("SELECT * FROM l JOIN r WITHIN 1 WEEK ON l.k = r.k;").unwrap_err();
        assert!(e.message.contains("time unit"), "{e}");
        let e = parse("SELECT * FROM l LEFT r ON l.k = r.k;").unwrap_err();
        assert!(e.message.contains("Expected JOIN"), "{e}");
    }

    #[test]
    fn misc_statements() {
        assert!(matches!(
            one("TERMINATE ALL;").kind,
            StatementKind::Terminate(None)
        ));
        assert!(matches!(
            one("DROP TABLE IF EXISTS t DELETE TOPIC;").kind,
            StatementKind::Drop {
                if_exists: true,
                delete_topic: true,
                ..
            }
        ));
        assert!(matches!(
            one("SET 'auto.offset.reset'='earliest';").kind,
            StatementKind::Set { .. }
        ));
        let StatementKind::Print {
            topic,
            from_beginning,
            limit,
        } = one("PRINT 'pageviews' FROM BEGINNING LIMIT 2;").kind
        else {
            panic!()
        };
        assert_eq!(
            (topic.value.as_str(), from_beginning, limit),
            ("pageviews", true, Some(2))
        );
        assert!(matches!(
            one("DESCRIBE EXTENDED x;").kind,
            StatementKind::Describe { extended: true, .. }
        ));
    }
}
