//! Statements back to SQL text that parses to the same statement.
//!
//! The text is canonical rather than as written: every name is backtick-quoted (so reserved
//! words and case survive), durations are in milliseconds, and expressions print as
//! sqlparser prints them except where ksqlDB's syntax differs (lambdas use `=>`, which
//! sqlparser would print as `->`, ksqlDB's struct dereference). The parser fuzz test checks
//! `parse(print(s)) == s` on generated statements.

use crate::ast::*;
use sluice_common::SourceKind;
use sqlparser::ast::{Ident, Value, ValueWithSpan, VisitMut, VisitorMut};
use std::fmt::{self, Display, Formatter, Write};
use std::ops::ControlFlow;

impl Display for Statement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

/// `name` quoted with backticks, a backtick in it doubled.
fn quoted(f: &mut Formatter<'_>, name: &str) -> fmt::Result {
    f.write_char('`')?;
    f.write_str(&name.replace('`', "``"))?;
    f.write_char('`')
}

/// A single-quoted string literal, a quote in it doubled.
fn string(f: &mut Formatter<'_>, s: &str) -> fmt::Result {
    write!(f, "'{}'", s.replace('\'', "''"))
}

fn name(f: &mut Formatter<'_>, n: &Name) -> fmt::Result {
    quoted(f, &n.value)
}

fn kind(k: SourceKind) -> &'static str {
    match k {
        SourceKind::Stream => "STREAM",
        SourceKind::Table => "TABLE",
    }
}

/// An expression in ksqlDB's syntax.
///
/// sqlparser prints most of it, after three rewrites of a copy: each lambda becomes an
/// identifier whose unquoted text is the lambda with `=>`; each quoted identifier and
/// string literal becomes raw text quoted here. sqlparser's own quoting leaves a quote
/// that is already doubled (or follows a backslash) as it is, since it cannot know how
/// the text was escaped, so the value `it''s` would print as `'it''s'` and read back as
/// `it's`.
struct Ksql<'a>(&'a Expr);

impl Display for Ksql<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        struct Rewrite;
        impl VisitorMut for Rewrite {
            type Break = ();
            fn post_visit_value(&mut self, v: &mut ValueWithSpan) -> ControlFlow<()> {
                if let Value::SingleQuotedString(s) = &v.value {
                    // A placeholder prints its text verbatim.
                    v.value = Value::Placeholder(format!("'{}'", s.replace('\'', "''")));
                }
                ControlFlow::Continue(())
            }
            fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                match e {
                    Expr::Lambda(l) => {
                        let params: Vec<String> =
                            l.params.iter().map(|p| raw_ident(&p.name).value).collect();
                        let text = format!("({}) => {}", params.join(", "), l.body);
                        *e = Expr::Identifier(Ident::new(text));
                    }
                    Expr::Identifier(i) => *i = raw_ident(i),
                    Expr::CompoundIdentifier(parts) => {
                        for i in parts {
                            *i = raw_ident(i);
                        }
                    }
                    _ => {}
                }
                ControlFlow::Continue(())
            }
        }
        let mut e = self.0.clone();
        let _ = e.visit(&mut Rewrite);
        e.fmt(f)
    }
}

/// A quoted identifier as an unquoted one whose text is the quoted form: sqlparser prints
/// an unquoted identifier verbatim.
fn raw_ident(i: &Ident) -> Ident {
    match i.quote_style {
        Some(q) => {
            let doubled: String = [q, q].iter().collect();
            Ident::new(format!("{q}{}{q}", i.value.replace(q, &doubled)))
        }
        None => i.clone(),
    }
}

fn exprs(f: &mut Formatter<'_>, list: &[Expr]) -> fmt::Result {
    for (i, e) in list.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{}", Ksql(e))?;
    }
    Ok(())
}

fn properties(f: &mut Formatter<'_>, p: &Properties) -> fmt::Result {
    if p.values.is_empty() {
        return Ok(());
    }
    f.write_str(" WITH (")?;
    for (i, (key, value)) in p.values.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        quoted(f, key)?;
        f.write_str(" = ")?;
        match value {
            PropValue::Str(s) => string(f, s)?,
            PropValue::Num(n) => f.write_str(n)?,
            PropValue::Bool(b) => write!(f, "{b}")?,
        }
    }
    f.write_str(")")
}

impl Display for ColumnDef {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        name(f, &self.name)?;
        write!(f, " {}", self.data_type)?;
        match self.key {
            KeyKind::None => {}
            KeyKind::Key => f.write_str(" KEY")?,
            KeyKind::PrimaryKey => f.write_str(" PRIMARY KEY")?,
        }
        match &self.header {
            None => Ok(()),
            Some(HeaderSpec::All) => f.write_str(" HEADERS"),
            Some(HeaderSpec::Key(k)) => {
                f.write_str(" HEADER(")?;
                string(f, k)?;
                f.write_str(")")
            }
        }
    }
}

fn ms(f: &mut Formatter<'_>, ms: i64) -> fmt::Result {
    write!(f, "{ms} MILLISECONDS")
}

impl Display for Select {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SELECT ")?;
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match item {
                SelectItem::Wildcard => f.write_str("*")?,
                SelectItem::QualifiedWildcard(n) => {
                    name(f, n)?;
                    f.write_str(".*")?;
                }
                SelectItem::StructAll { qualifier, path } => {
                    if let Some(q) = qualifier {
                        name(f, q)?;
                        f.write_str(".")?;
                    }
                    for p in path {
                        name(f, p)?;
                        f.write_str("->")?;
                    }
                    f.write_str("*")?;
                }
                SelectItem::Expr { expr, alias } => {
                    write!(f, "{}", Ksql(expr))?;
                    if let Some(a) = alias {
                        f.write_str(" AS ")?;
                        name(f, a)?;
                    }
                }
            }
        }
        f.write_str(" FROM ")?;
        name(f, &self.from)?;
        if let Some(a) = &self.alias {
            f.write_str(" AS ")?;
            name(f, a)?;
        }
        for j in &self.joins {
            write!(f, " {} JOIN ", j.kind.as_str())?;
            name(f, &j.source)?;
            if let Some(a) = &j.alias {
                f.write_str(" AS ")?;
                name(f, a)?;
            }
            if let Some(w) = &j.within {
                f.write_str(" WITHIN (")?;
                ms(f, w.before_ms)?;
                f.write_str(", ")?;
                ms(f, w.after_ms)?;
                f.write_str(")")?;
                if let Some(g) = w.grace_ms {
                    f.write_str(" GRACE PERIOD ")?;
                    ms(f, g)?;
                }
            }
            write!(f, " ON {}", Ksql(&j.on))?;
        }
        if let Some(w) = &self.window {
            f.write_str(" WINDOW ")?;
            match w.kind {
                WindowClauseKind::Tumbling { size_ms } => {
                    f.write_str("TUMBLING (SIZE ")?;
                    ms(f, size_ms)?;
                }
                WindowClauseKind::Hopping {
                    size_ms,
                    advance_ms,
                } => {
                    f.write_str("HOPPING (SIZE ")?;
                    ms(f, size_ms)?;
                    f.write_str(", ADVANCE BY ")?;
                    ms(f, advance_ms)?;
                }
                WindowClauseKind::Session { gap_ms } => {
                    f.write_str("SESSION (")?;
                    ms(f, gap_ms)?;
                }
            }
            if let Some(r) = w.retention_ms {
                f.write_str(", RETENTION ")?;
                ms(f, r)?;
            }
            if let Some(g) = w.grace_ms {
                f.write_str(", GRACE PERIOD ")?;
                ms(f, g)?;
            }
            f.write_str(")")?;
        }
        if let Some(w) = &self.selection {
            write!(f, " WHERE {}", Ksql(w))?;
        }
        if !self.group_by.is_empty() {
            f.write_str(" GROUP BY ")?;
            exprs(f, &self.group_by)?;
        }
        if let Some(h) = &self.having {
            write!(f, " HAVING {}", Ksql(h))?;
        }
        if !self.partition_by.is_empty() {
            f.write_str(" PARTITION BY ")?;
            exprs(f, &self.partition_by)?;
        }
        if self.emit_final {
            f.write_str(" EMIT FINAL")?;
        } else if self.emit_changes {
            f.write_str(" EMIT CHANGES")?;
        }
        if let Some(n) = self.limit {
            write!(f, " LIMIT {n}")?;
        }
        Ok(())
    }
}

impl Display for StatementKind {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            StatementKind::CreateSource {
                kind: k,
                name: n,
                or_replace,
                if_not_exists,
                read_only,
                columns,
                properties: p,
            } => {
                f.write_str("CREATE ")?;
                if *or_replace {
                    f.write_str("OR REPLACE ")?;
                }
                if *read_only {
                    f.write_str("SOURCE ")?;
                }
                f.write_str(kind(*k))?;
                if *if_not_exists {
                    f.write_str(" IF NOT EXISTS")?;
                }
                f.write_str(" ")?;
                name(f, n)?;
                if !columns.is_empty() {
                    f.write_str(" (")?;
                    for (i, c) in columns.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        c.fmt(f)?;
                    }
                    f.write_str(")")?;
                }
                properties(f, p)
            }
            StatementKind::CreateAs {
                kind: k,
                name: n,
                or_replace,
                if_not_exists,
                properties: p,
                query,
            } => {
                f.write_str("CREATE ")?;
                if *or_replace {
                    f.write_str("OR REPLACE ")?;
                }
                f.write_str(kind(*k))?;
                if *if_not_exists {
                    f.write_str(" IF NOT EXISTS")?;
                }
                f.write_str(" ")?;
                name(f, n)?;
                properties(f, p)?;
                write!(f, " AS {query}")
            }
            StatementKind::InsertValues {
                target,
                columns,
                values,
                properties: p,
            } => {
                f.write_str("INSERT INTO ")?;
                name(f, target)?;
                if let Some(cols) = columns {
                    f.write_str(" (")?;
                    for (i, c) in cols.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        name(f, c)?;
                    }
                    f.write_str(")")?;
                }
                f.write_str(" VALUES (")?;
                exprs(f, values)?;
                f.write_str(")")?;
                properties(f, p)
            }
            StatementKind::InsertSelect { target, query } => {
                f.write_str("INSERT INTO ")?;
                name(f, target)?;
                write!(f, " {query}")
            }
            StatementKind::Delete { target, selection } => {
                f.write_str("DELETE FROM ")?;
                name(f, target)?;
                write!(f, " WHERE {}", Ksql(selection))
            }
            StatementKind::Select(s) => s.fmt(f),
            StatementKind::Show(what) => f.write_str(match what {
                ShowWhat::Streams => "SHOW STREAMS",
                ShowWhat::Tables => "SHOW TABLES",
                ShowWhat::Queries => "SHOW QUERIES",
                ShowWhat::Topics => "SHOW TOPICS",
                ShowWhat::Functions => "SHOW FUNCTIONS",
                ShowWhat::Properties => "SHOW PROPERTIES",
                ShowWhat::Types => "SHOW TYPES",
            }),
            StatementKind::Describe { name: n, extended } => {
                f.write_str(if *extended {
                    "DESCRIBE EXTENDED "
                } else {
                    "DESCRIBE "
                })?;
                name(f, n)
            }
            StatementKind::DescribeFunction(n) => {
                f.write_str("DESCRIBE FUNCTION ")?;
                name(f, n)
            }
            StatementKind::Explain(ExplainTarget::Query(n)) => {
                f.write_str("EXPLAIN ")?;
                name(f, n)
            }
            StatementKind::Explain(ExplainTarget::Statement(s)) => write!(f, "EXPLAIN {s}"),
            StatementKind::Alter {
                kind: k,
                name: n,
                columns,
            } => {
                write!(f, "ALTER {} ", kind(*k))?;
                name(f, n)?;
                for (i, c) in columns.iter().enumerate() {
                    f.write_str(if i > 0 {
                        ", ADD COLUMN "
                    } else {
                        " ADD COLUMN "
                    })?;
                    c.fmt(f)?;
                }
                Ok(())
            }
            StatementKind::Drop {
                kind: k,
                name: n,
                if_exists,
                delete_topic,
            } => {
                write!(f, "DROP {}", kind(*k))?;
                if *if_exists {
                    f.write_str(" IF EXISTS")?;
                }
                f.write_str(" ")?;
                name(f, n)?;
                if *delete_topic {
                    f.write_str(" DELETE TOPIC")?;
                }
                Ok(())
            }
            StatementKind::Terminate(None) => f.write_str("TERMINATE ALL"),
            StatementKind::Terminate(Some(n)) => {
                f.write_str("TERMINATE ")?;
                name(f, n)
            }
            StatementKind::Print {
                topic,
                from_beginning,
                limit,
            } => {
                f.write_str("PRINT ")?;
                string(f, &topic.value)?;
                if *from_beginning {
                    f.write_str(" FROM BEGINNING")?;
                }
                if let Some(n) = limit {
                    write!(f, " LIMIT {n}")?;
                }
                Ok(())
            }
            StatementKind::Set { key, value } => {
                f.write_str("SET ")?;
                string(f, key)?;
                f.write_str(" = ")?;
                string(f, value)
            }
            StatementKind::Unset { key } => {
                f.write_str("UNSET ")?;
                string(f, key)
            }
            StatementKind::CreateType {
                name: n,
                data_type,
                if_not_exists,
            } => {
                f.write_str("CREATE TYPE ")?;
                if *if_not_exists {
                    f.write_str("IF NOT EXISTS ")?;
                }
                name(f, n)?;
                write!(f, " AS {data_type}")
            }
            StatementKind::DropType { name: n, if_exists } => {
                f.write_str("DROP TYPE ")?;
                if *if_exists {
                    f.write_str("IF EXISTS ")?;
                }
                name(f, n)
            }
        }
    }
}
