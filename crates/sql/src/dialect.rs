//! ksqlDB's lexical rules: backticks quote identifiers, single quotes delimit strings.

use sqlparser::ast::{
    CastKind, DataType as SqlType, Expr, Ident, LambdaFunction, LambdaFunctionParameter,
    LambdaSyntax, ObjectName, OneOrManyWithParens,
};
use sqlparser::dialect::Dialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

#[derive(Debug, Default, Clone, Copy)]
pub struct KsqlDialect;

impl Dialect for KsqlDialect {
    /// ksqlDB's IDENTIFIER: `(LETTER | '_') (LETTER | DIGIT | '_' | '@')*`, letters ASCII.
    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_ascii_alphabetic() || ch == '_'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_ascii_alphanumeric() || ch == '_' || ch == '@'
    }

    /// Backticks and double quotes both quote identifiers (case kept, the quote doubled
    /// to escape it); strings take single quotes only.
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`' || ch == '"'
    }

    /// ksqlDB's DIGIT_IDENTIFIER: `123abc` is an (unquoted) identifier, `12e3` a number.
    fn supports_numeric_prefix(&self) -> bool {
        true
    }

    /// `f(x => x + 1)` is a lambda in ksqlDB, never a named argument.
    fn supports_named_fn_args_with_rarrow_operator(&self) -> bool {
        false
    }

    /// CAST's target uses ksqlDB's type grammar (`MAP<K, V>`, `STRUCT<F T>`, ...), which
    /// sqlparser's ANSI grammar rejects; it is parsed here and carried as the type's text.
    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        if let Some(params) = lambda_params(parser) {
            return Some(parse_lambda(parser, params));
        }
        let [first, second] = parser.peek_tokens();
        let is_cast = matches!(&first, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("CAST"));
        if !is_cast || second != Token::LParen {
            return None;
        }
        Some(parse_cast(parser))
    }
}

/// ksqlDB lambdas are `x => body` or `(x, y) => body`; sqlparser's use `->`, which is
/// ksqlDB's struct dereference, so they are recognised here by lookahead.
fn lambda_params(parser: &Parser) -> Option<Vec<Ident>> {
    let word = |t: &Token| match t {
        Token::Word(w) => Some(if w.quote_style.is_some() {
            Ident::with_quote('`', w.value.clone())
        } else {
            Ident::new(w.value.clone())
        }),
        _ => None,
    };
    let first = &parser.peek_nth_token_ref(0).token;
    if let Some(id) = word(first) {
        return (parser.peek_nth_token_ref(1).token == Token::RArrow).then(|| vec![id]);
    }
    if *first != Token::LParen {
        return None;
    }
    let mut params = Vec::new();
    let mut n = 1;
    loop {
        params.push(word(&parser.peek_nth_token_ref(n).token)?);
        match &parser.peek_nth_token_ref(n + 1).token {
            Token::Comma => n += 2,
            Token::RParen => break,
            _ => return None,
        }
    }
    (parser.peek_nth_token_ref(n + 2).token == Token::RArrow).then_some(params)
}

fn parse_lambda(parser: &mut Parser, params: Vec<Ident>) -> Result<Expr, ParserError> {
    // Skip the parameter list and the arrow, already validated by the lookahead.
    let skip = if params.len() == 1 && parser.peek_token().token != Token::LParen {
        2
    } else {
        params.len() * 2 + 2
    };
    for _ in 0..skip {
        parser.next_token();
    }
    let body = parser.parse_expr()?;
    let params: Vec<LambdaFunctionParameter> = params
        .into_iter()
        .map(|name| LambdaFunctionParameter {
            name,
            data_type: None,
        })
        .collect();
    Ok(Expr::Lambda(LambdaFunction {
        params: OneOrManyWithParens::Many(params),
        body: Box::new(body),
        syntax: LambdaSyntax::Arrow,
    }))
}

fn parse_cast(parser: &mut Parser) -> Result<Expr, ParserError> {
    parser.next_token();
    parser.expect_token(&Token::LParen)?;
    let expr = parser.parse_expr()?;
    let as_tok = parser.next_token();
    if !matches!(&as_tok.token, Token::Word(w) if w.value.eq_ignore_ascii_case("AS")) {
        return Err(ParserError::ParserError(format!(
            "Expected: AS, found: {} at Line: {}, Column: {}",
            as_tok.token, as_tok.span.start.line, as_tok.span.start.column
        )));
    }
    let data_type = crate::types::TypeParser::new(parser)
        .data_type()
        .map_err(|e| {
            ParserError::ParserError(format!(
                "{} at Line: {}, Column: {}",
                e.message, e.line, e.column
            ))
        })?;
    parser.expect_token(&Token::RParen)?;
    Ok(Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(expr),
        data_type: SqlType::Custom(
            ObjectName::from(vec![Ident::new(data_type.to_string())]),
            vec![],
        ),
        format: None,
    })
}
