//! ksqlDB's lexical rules: backticks quote identifiers, single quotes delimit strings.

use sqlparser::ast::{
    AccessExpr, BinaryOperator, CastKind, DataType as SqlType, Expr, Ident, LambdaFunction,
    LambdaFunctionParameter, LambdaSyntax, ObjectName, OneOrManyWithParens, Subscript,
};
use sqlparser::dialect::{Dialect, Precedence};
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

    /// `->` is ksqlDB's struct dereference, a primary expression like a subscript: it binds
    /// tighter than any operator (`s->a * 10` is `(s->a) * 10`; sqlparser gives `->`, its
    /// JSON operator, a low precedence). `s->*` is left to the select-item parser.
    fn get_next_precedence(&self, parser: &Parser) -> Option<Result<u8, ParserError>> {
        (parser.peek_token_ref().token == Token::Arrow
            && matches!(parser.peek_nth_token_ref(1).token, Token::Word(_)))
        .then(|| Ok(self.prec_value(Precedence::Period)))
    }

    /// The right side of `->` is a field name, never an expression: `s->a[1]` is
    /// `(s->a)[1]`.
    fn parse_infix(
        &self,
        parser: &mut Parser,
        expr: &Expr,
        _precedence: u8,
    ) -> Option<Result<Expr, ParserError>> {
        if parser.peek_token_ref().token != Token::Arrow
            || !matches!(parser.peek_nth_token_ref(1).token, Token::Word(_))
        {
            return None;
        }
        parser.next_token();
        let t = parser.next_token();
        let Token::Word(w) = t.token else {
            return None;
        };
        let field = Ident {
            value: w.value,
            quote_style: w.quote_style,
            span: t.span,
        };
        let deref = Expr::BinaryOp {
            left: Box::new(expr.clone()),
            op: BinaryOperator::Arrow,
            right: Box::new(Expr::Identifier(field)),
        };
        // Subscripts right after the field apply to it (sqlparser reads them only after
        // plain identifiers).
        let mut chain = Vec::new();
        while parser.peek_token_ref().token == Token::LBracket {
            parser.next_token();
            let index = match parser.parse_expr() {
                Ok(i) => i,
                Err(e) => return Some(Err(e)),
            };
            if let Err(e) = parser.expect_token(&Token::RBracket) {
                return Some(Err(e));
            }
            chain.push(AccessExpr::Subscript(Subscript::Index { index }));
        }
        if chain.is_empty() {
            return Some(Ok(deref));
        }
        Some(Ok(Expr::CompoundFieldAccess {
            root: Box::new(deref),
            access_chain: chain,
        }))
    }

    /// CAST's target uses ksqlDB's type grammar (`MAP<K, V>`, `STRUCT<F T>`, ...), which
    /// sqlparser's ANSI grammar rejects; it is parsed here and carried as the type's text.
    ///
    /// Words sqlparser gives ANSI special syntax (`FLOOR(x TO DAY)`, `POSITION(a IN b)`,
    /// `EXTRACT(...)`) are plain function names in ksqlDB's grammar, so a call of one
    /// parses as an ordinary function call and resolves like any other function.
    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        if let Some(params) = lambda_params(parser) {
            return Some(parse_lambda(parser, params));
        }
        let [first, second] = parser.peek_tokens();
        if let Token::Word(w) = &first
            && w.quote_style.is_none()
            && second == Token::LParen
            && PLAIN_FUNCTION_WORDS
                .iter()
                .any(|k| w.value.eq_ignore_ascii_case(k))
        {
            let name = ObjectName::from(vec![Ident::new(w.value.clone())]);
            parser.next_token();
            return Some(parser.parse_function(name));
        }
        let is_cast = matches!(&first, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("CAST"));
        if !is_cast || second != Token::LParen {
            return None;
        }
        Some(parse_cast(parser))
    }
}

/// Function names that sqlparser would parse as special syntax, which ksqlDB does not have.
/// (SUBSTRING and TRIM keep sqlparser's forms: the binder reads their plain forms.)
const PLAIN_FUNCTION_WORDS: &[&str] =
    &["CEIL", "FLOOR", "POSITION", "OVERLAY", "EXTRACT", "CONVERT"];

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

#[cfg(test)]
mod tests {
    use crate::parse_expr;

    /// FLOOR and CEIL are ordinary functions in ksqlDB (`FLOOR(x)`, never `FLOOR(x TO DAY)`).
    #[test]
    fn special_syntax_words_are_plain_function_calls() {
        for text in [
            "FLOOR(v)",
            "ceil(exp(id))",
            "POSITION('a', s)",
            "Extract(x, 1)",
        ] {
            let e = parse_expr(text).unwrap();
            assert!(
                matches!(e, sqlparser::ast::Expr::Function(_)),
                "{text}: {e:?}"
            );
        }
        // A quoted name is a column, not a call.
        assert!(matches!(
            parse_expr("`FLOOR`").unwrap(),
            sqlparser::ast::Expr::Identifier(_)
        ));
    }

    /// `->` binds tighter than any operator, and subscripts after a field apply to it, as
    /// in ksqlDB's grammar (dereference and subscript are primary expressions).
    #[test]
    fn dereference_is_a_primary_expression() {
        assert_eq!(parse_expr("s->a * 10").unwrap().to_string(), "s -> a * 10");
        let e = parse_expr("s->a * 10").unwrap();
        assert!(
            matches!(
                &e,
                sqlparser::ast::Expr::BinaryOp {
                    op: sqlparser::ast::BinaryOperator::Multiply,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = parse_expr("s->a[1]->b").unwrap();
        let sqlparser::ast::Expr::BinaryOp { left, op, .. } = &e else {
            panic!("{e:?}");
        };
        assert_eq!(*op, sqlparser::ast::BinaryOperator::Arrow);
        assert!(
            matches!(
                left.as_ref(),
                sqlparser::ast::Expr::CompoundFieldAccess { .. }
            ),
            "{left:?}"
        );
        assert!(parse_expr("s->a + t->b = 3").is_ok());
    }
}
