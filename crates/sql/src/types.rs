//! The type grammar, shared by column definitions and CAST (which sqlparser would parse
//! with its own, ANSI, type grammar).

use crate::ParseError;
use sluice_common::DataType;
use std::cell::RefCell;
use std::collections::BTreeMap;

thread_local! {
    /// Types registered with CREATE TYPE, visible to the parse running on this thread.
    static ALIASES: RefCell<BTreeMap<String, DataType>> = const { RefCell::new(BTreeMap::new()) };
    /// The aliases the parse running on this thread resolved.
    static USED: RefCell<BTreeMap<String, DataType>> = const { RefCell::new(BTreeMap::new()) };
}

/// Runs `f` (a parse) with these CREATE TYPE aliases resolvable as type names.
pub fn with_type_aliases<T>(aliases: &BTreeMap<String, DataType>, f: impl FnOnce() -> T) -> T {
    let previous = ALIASES.with(|a| std::mem::replace(&mut *a.borrow_mut(), aliases.clone()));
    let out = f();
    ALIASES.with(|a| *a.borrow_mut() = previous);
    out
}

/// Like [`with_type_aliases`], and also returns the aliases the parse resolved: what a
/// stored statement depends on, so it can be re-parsed without the catalog's current
/// types, and a type it uses cannot be dropped from under it.
pub fn with_type_aliases_used<T>(
    aliases: &BTreeMap<String, DataType>,
    f: impl FnOnce() -> T,
) -> (T, BTreeMap<String, DataType>) {
    let outer = USED.with(|u| std::mem::take(&mut *u.borrow_mut()));
    let out = with_type_aliases(aliases, f);
    let used = USED.with(|u| std::mem::replace(&mut *u.borrow_mut(), outer));
    (out, used)
}
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan};

pub(crate) struct TypeParser<'p, 'a> {
    p: &'p mut Parser<'a>,
    /// A `>>` token split in two while closing nested type parameters.
    pending_gt: u32,
    /// Nesting depth of ARRAY/MAP/STRUCT parameters, bounded so a hostile type cannot
    /// exhaust the stack.
    depth: u32,
}

const MAX_TYPE_DEPTH: u32 = 64;

type R<T> = Result<T, ParseError>;

fn describe(t: &Token) -> String {
    match t {
        Token::EOF => "end of input".to_string(),
        other => format!("'{other}'"),
    }
}

impl<'p, 'a> TypeParser<'p, 'a> {
    pub(crate) fn new(p: &'p mut Parser<'a>) -> Self {
        TypeParser {
            p,
            pending_gt: 0,
            depth: 0,
        }
    }

    fn err<T>(&self, at: &TokenWithSpan, message: impl Into<String>) -> R<T> {
        Err(ParseError {
            message: message.into(),
            line: at.span.start.line,
            column: at.span.start.column,
        })
    }

    fn expect(&mut self, token: Token) -> R<()> {
        let t = self.p.next_token();
        if t.token == token {
            Ok(())
        } else {
            self.err(
                &t,
                format!("Expected '{token}', found {}", describe(&t.token)),
            )
        }
    }

    fn uint(&mut self) -> R<u64> {
        let t = self.p.next_token();
        match &t.token {
            Token::Number(n, _) => n
                .parse()
                .or_else(|_| self.err(&t, format!("Expected a non-negative integer, found {n}"))),
            other => self.err(
                &t,
                format!("Expected a non-negative integer, found {}", describe(other)),
            ),
        }
    }

    fn close_angle(&mut self) -> R<()> {
        if self.pending_gt > 0 {
            self.pending_gt -= 1;
            return Ok(());
        }
        let t = self.p.next_token();
        match &t.token {
            Token::Gt => Ok(()),
            Token::ShiftRight => {
                self.pending_gt += 1;
                Ok(())
            }
            other => self.err(&t, format!("Expected '>', found {}", describe(other))),
        }
    }

    pub(crate) fn data_type(&mut self) -> R<DataType> {
        if self.depth >= MAX_TYPE_DEPTH {
            let t = self.p.peek_token();
            return self.err(
                &t,
                format!("Type is nested too deeply (more than {MAX_TYPE_DEPTH} levels)"),
            );
        }
        self.depth += 1;
        let out = self.data_type_at_depth();
        self.depth -= 1;
        out
    }

    fn data_type_at_depth(&mut self) -> R<DataType> {
        let t = self.p.next_token();
        let word = match &t.token {
            // Literal keywords can never name a type: ANTLR rejects them at the token.
            Token::Word(w)
                if w.quote_style.is_none()
                    && matches!(
                        w.value.to_ascii_uppercase().as_str(),
                        "NULL" | "TRUE" | "FALSE"
                    ) =>
            {
                let (line, column) = (t.span.start.line, t.span.start.column);
                return self.err(
                    &t,
                    format!(
                        "Syntax error at or near '{}' at line {line}:{column}",
                        w.value
                    ),
                );
            }
            Token::Word(w) => w.value.to_ascii_uppercase(),
            other => return self.err(&t, format!("Expected a type, found {}", describe(other))),
        };
        let base = match word.as_str() {
            "DECIMAL" | "ARRAY" | "MAP" | "STRUCT" => None,
            _ => Some(self.base_type(&t, &word)?),
        };
        if let Some(base) = base {
            // ksqlDB's grammar lets any base type take parameters, `VARCHAR(10)` or
            // `VARCHAR(STRING)`; they are accepted and ignored.
            if self.p.consume_token(&Token::LParen) {
                self.type_parameters()?;
            }
            return Ok(base);
        }
        Ok(match word.as_str() {
            "DECIMAL" => {
                self.expect(Token::LParen)?;
                let precision = self.uint()?;
                self.expect(Token::Comma)?;
                let scale = self.uint()?;
                self.expect(Token::RParen)?;
                // ksqlDB's SqlDecimal has no upper bound on precision; values here hold up
                // to 38 digits exactly, and the type itself up to what a u8 says.
                if precision == 0 {
                    return self.err(
                        &t,
                        format!("DECIMAL precision must be >= 1: DECIMAL({precision},{scale})"),
                    );
                }
                if scale > precision {
                    return self.err(
                        &t,
                        format!("DECIMAL precision must be >= scale: DECIMAL({precision},{scale})"),
                    );
                }
                if precision > u64::from(u8::MAX) {
                    return self.err(
                        &t,
                        format!("DECIMAL({precision},{scale}) is wider than Sluice supports (precision at most 255)"),
                    );
                }
                DataType::Decimal {
                    precision: precision as u8,
                    scale: scale as u8,
                }
            }
            "ARRAY" => {
                self.expect(Token::Lt)?;
                let item = self.data_type()?;
                self.close_angle()?;
                DataType::Array(Box::new(item))
            }
            "MAP" => {
                self.expect(Token::Lt)?;
                let k = self.data_type()?;
                self.expect(Token::Comma)?;
                let v = self.data_type()?;
                self.close_angle()?;
                DataType::Map(Box::new(k), Box::new(v))
            }
            "STRUCT" => {
                self.expect(Token::Lt)?;
                let mut fields = Vec::new();
                if !self.p.consume_token(&Token::Gt) {
                    loop {
                        let nt = self.p.next_token();
                        let name = match &nt.token {
                            Token::Word(w) if w.quote_style.is_some() => w.value.clone(),
                            Token::Word(w) => w.value.to_ascii_uppercase(),
                            other => {
                                return self.err(
                                    &nt,
                                    format!("Expected a field name, found {}", describe(other)),
                                );
                            }
                        };
                        fields.push((name, self.data_type()?));
                        // A `>>` that closed the field's type may also close this struct.
                        if self.pending_gt > 0 || !self.p.consume_token(&Token::Comma) {
                            break;
                        }
                    }
                    self.close_angle()?;
                }
                DataType::Struct(fields)
            }
            other => return self.err(&t, format!("Unknown type: {other}")),
        })
    }

    /// A type named by one word: a primitive or a CREATE TYPE alias.
    fn base_type(&self, t: &TokenWithSpan, word: &str) -> R<DataType> {
        Ok(match word {
            "BOOLEAN" => DataType::Boolean,
            "INT" | "INTEGER" => DataType::Int,
            "BIGINT" => DataType::BigInt,
            "DOUBLE" => DataType::Double,
            "STRING" | "VARCHAR" => DataType::String,
            "BYTES" => DataType::Bytes,
            "TIMESTAMP" => DataType::Timestamp,
            "DATE" => DataType::Date,
            "TIME" => DataType::Time,
            other => match ALIASES.with(|a| a.borrow().get(other).cloned()) {
                Some(ty) => {
                    USED.with(|u| u.borrow_mut().insert(other.to_string(), ty.clone()));
                    ty
                }
                None => return self.err(t, format!("Unknown type: {other}")),
            },
        })
    }

    /// `(p, ...)` after a base type, the `(` consumed: each parameter an integer or the
    /// word STRING, as ksqlDB's grammar has it.
    fn type_parameters(&mut self) -> R<()> {
        loop {
            let t = self.p.next_token();
            match &t.token {
                Token::Number(..) => {}
                Token::Word(w)
                    if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("STRING") => {}
                _ => return self.err(&t, "Expecting {'STRING', INTEGER_VALUE}"),
            }
            let t = self.p.next_token();
            match &t.token {
                Token::Comma => {}
                Token::RParen => return Ok(()),
                _ => return self.err(&t, "Expecting {',', ')'}"),
            }
        }
    }
}

/// Parses a type written as text (how CAST's target travels through sqlparser's AST).
pub fn parse_type(text: &str) -> Result<DataType, ParseError> {
    let dialect = crate::KsqlDialect;
    let mut parser = Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(|e| ParseError {
            message: e.to_string(),
            line: 0,
            column: 0,
        })?;
    TypeParser::new(&mut parser).data_type()
}

#[cfg(test)]
mod tests {
    use super::parse_type;

    #[test]
    fn shift_right_closes_nested_structs_at_the_right_level() {
        let t = parse_type("STRUCT<A STRUCT<B ARRAY<DOUBLE>>, C ARRAY<DOUBLE>, D INT>").unwrap();
        assert_eq!(
            t.to_string(),
            "STRUCT<`A` STRUCT<`B` ARRAY<DOUBLE>>, `C` ARRAY<DOUBLE>, `D` INTEGER>"
        );
        let t = parse_type("MAP<STRING, ARRAY<STRUCT<X INT>>>").unwrap();
        assert_eq!(t.to_string(), "MAP<STRING, ARRAY<STRUCT<`X` INTEGER>>>");
        assert!(parse_type("ARRAY<INT").is_err());
        let e = parse_type("ARRAY<NULL>").unwrap_err();
        assert!(
            e.message
                .starts_with("Syntax error at or near 'NULL' at line 1:")
        );
    }

    #[test]
    fn base_types_take_ignored_parameters() {
        assert_eq!(parse_type("VARCHAR(10)").unwrap().to_string(), "STRING");
        assert_eq!(parse_type("VARCHAR(STRING)").unwrap().to_string(), "STRING");
        assert_eq!(parse_type("INT(1, 2)").unwrap().to_string(), "INTEGER");
        let e = parse_type("STRING (KEY)").unwrap_err();
        assert_eq!(e.message, "Expecting {'STRING', INTEGER_VALUE}");
        assert_eq!((e.line, e.column), (1, 9));
        let e = parse_type("VARCHAR(10 KEY)").unwrap_err();
        assert_eq!(e.message, "Expecting {',', ')'}");
    }
}
