//! Fuzzing the parser and planner with generated statements.
//!
//! Each case is a statement built from ksqlDB's grammar (expressions nested a few levels,
//! every statement kind, quoted and reserved names, odd literals), sometimes mangled at
//! the byte level so the error paths run too. For every case:
//! - parsing and planning never panic (proptest reports a panic as a failing case);
//! - a parse error has a message and a position;
//! - a statement that parses prints back to SQL that parses to the same statement, and
//!   printing that again gives the same text (`parse(print(s)) == s`).
//!
//! CI runs a few thousand cases. `SLUICE_FUZZ_SECS=1800 cargo test --release -p
//! sluice-planner --test sql_fuzz -- --nocapture` keeps generating new cases, with fresh
//! seeds, for that many seconds and reports how many ran (docs/operations.md).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use sluice_common::SourceDef;
use sluice_planner::{Catalog, QueryConfig, SessionConfig};
use sluice_sql::{ExplainTarget, Name, Select, SelectItem, Statement, StatementKind};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

// ---- generators ----

fn column() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "K", "V", "NAME", "ARR", "M", "ST", "TS", "D", "ROWTIME", "ROWKEY", "WINDOWSTART",
            "x", "missing",
        ])
        .prop_map(String::from),
        1 => prop::sample::select(vec![
            "`a b`", "`SELECT`", "`x``y`", "`x````y`", "\"d\"\"q\"", "\"Quoted\"", "`Ünï`", "`V`", "S.K", "T.V", "A.NAME",
            "`S`.`K`", "123abc", "_u@x",
        ])
        .prop_map(String::from),
    ]
}

/// A name that may stand where only a plain name can (a column definition, an alias,
/// a struct field).
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["K", "V", "NAME", "A", "B", "x", "NEW_COL"]).prop_map(String::from),
        1 => prop::sample::select(vec!["`a b`", "`SELECT`", "`x``y`", "\"Quoted\"", "`Ünï`", "123abc", "_u@x"])
            .prop_map(String::from),
    ]
}

fn string_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z%_ ]{0,8}".prop_map(|s| format!("'{s}'")),
        Just("'it''s'".to_string()),
        Just("'two '''' quotes'".to_string()),
        Just(r"'back\slash\'".to_string()),
        Just(r"'it\''s'".to_string()),
        Just("'ünï ☃'".to_string()),
        Just("''".to_string()),
        Just("'2024-01-02T03:04:05.678'".to_string()),
        Just("'[1,2]'".to_string()),
    ]
}

fn literal() -> impl Strategy<Value = String> {
    let common = prop_oneof![
        any::<i32>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("9223372036854775808".to_string()),
        Just("99999999999999999999999999999999999999999".to_string()),
        (0u32..1000, 0u32..1000).prop_map(|(a, b)| format!("{a}.{b}")),
        (0u32..100, -400i32..400).prop_map(|(a, e)| format!("{a}.5e{e}")),
        string_literal(),
        Just("TRUE".to_string()),
        Just("false".to_string()),
        Just("NULL".to_string()),
        Just("?".to_string()),
    ];
    prop_oneof![
        30 => common,
        // Literals ksqlDB does not have, refused by the parser.
        1 => prop::sample::select(vec!["X'0aFF'", "N'nat'", "X'a '''' b'"]).prop_map(String::from),
    ]
}

fn data_type() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(vec![
        "BOOLEAN",
        "INT",
        "INTEGER",
        "BIGINT",
        "DOUBLE",
        "STRING",
        "VARCHAR",
        "BYTES",
        "TIMESTAMP",
        "DATE",
        "TIME",
        "DECIMAL(4, 2)",
        "DECIMAL(38,0)",
    ])
    .prop_map(String::from);
    let leaf = prop_oneof![
        20 => leaf,
        1 => prop::sample::select(vec!["DECIMAL(0, 5)", "UNKNOWN_TYPE", "DECIMAL(39, 1)"]).prop_map(String::from),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| format!("ARRAY<{t}>")),
            (inner.clone(), inner.clone()).prop_map(|(k, v)| format!("MAP<{k}, {v}>")),
            prop::collection::vec((field(), inner), 1..3).prop_map(|fields| {
                let f: Vec<String> = fields.iter().map(|(n, t)| format!("{n} {t}")).collect();
                format!("STRUCT<{}>", f.join(", "))
            }),
        ]
    })
}

const FUNCTIONS: &[&str] = &[
    "ABS",
    "CONCAT",
    "LEN",
    "UCASE",
    "SUBSTRING",
    "COALESCE",
    "IFNULL",
    "COUNT",
    "SUM",
    "MAX",
    "LATEST_BY_OFFSET",
    "COLLECT_LIST",
    "ARRAY_LENGTH",
    "FLOOR",
    "CEIL",
    "ROUND",
    "EXTRACTJSONFIELD",
    "TIMESTAMPTOSTRING",
    "REGEXP_EXTRACT",
    "LPAD",
    "AS_VALUE",
    "NO_SUCH_FUNCTION",
];

fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![3 => column(), 2 => literal()];
    leaf.prop_recursive(4, 48, 4, |e| {
        let binop = prop::sample::select(vec![
            "+", "-", "*", "/", "%", "||", "=", "<>", "!=", "<", "<=", ">", ">=", "AND", "OR",
        ]);
        prop_oneof![
            (e.clone(), binop, e.clone()).prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            e.clone().prop_map(|a| format!("({a})")),
            e.clone().prop_map(|a| format!("-{a}")),
            e.clone().prop_map(|a| format!("NOT {a}")),
            (
                prop::sample::select(FUNCTIONS),
                prop::collection::vec(e.clone(), 0..3)
            )
                .prop_map(|(f, args)| format!("{f}({})", args.join(", "))),
            Just("COUNT(*)".to_string()),
            (e.clone(), e.clone(), e.clone())
                .prop_map(|(c, t, f)| format!("CASE WHEN {c} THEN {t} ELSE {f} END")),
            (e.clone(), e.clone(), e.clone())
                .prop_map(|(x, w, t)| format!("CASE {x} WHEN {w} THEN {t} END")),
            (e.clone(), data_type()).prop_map(|(a, t)| format!("CAST({a} AS {t})")),
            (e.clone(), any::<bool>(), e.clone(), e.clone()).prop_map(|(a, not, lo, hi)| {
                format!(
                    "({a}) {}BETWEEN ({lo}) AND ({hi})",
                    if not { "NOT " } else { "" }
                )
            }),
            (
                e.clone(),
                any::<bool>(),
                prop::collection::vec(e.clone(), 1..4)
            )
                .prop_map(|(a, not, list)| format!(
                    "({a}) {}IN ({})",
                    if not { "NOT " } else { "" },
                    list.join(", ")
                )),
            (e.clone(), any::<bool>(), string_literal())
                .prop_map(|(a, not, p)| format!("({a}) {}LIKE {p}", if not { "NOT " } else { "" })),
            (e.clone(), string_literal()).prop_map(|(a, p)| format!("({a}) LIKE {p} ESCAPE '!'")),
            (e.clone(), any::<bool>())
                .prop_map(|(a, not)| format!("({a}) IS {}NULL", if not { "NOT " } else { "" })),
            (e.clone(), e.clone()).prop_map(|(a, b)| format!("({a}) IS DISTINCT FROM ({b})")),
            (column(), column()).prop_map(|(a, f)| format!("{a}->{f}")),
            (e.clone(), e.clone()).prop_map(|(a, i)| format!("({a})[{i}]")),
            prop::collection::vec(e.clone(), 0..3)
                .prop_map(|items| format!("ARRAY[{}]", items.join(", "))),
            prop::collection::vec((string_literal(), e.clone()), 1..3).prop_map(|kv| {
                let kv: Vec<String> = kv.iter().map(|(k, v)| format!("{k} := {v}")).collect();
                format!("MAP({})", kv.join(", "))
            }),
            prop::collection::vec((field(), e.clone()), 1..3).prop_map(|kv| {
                let kv: Vec<String> = kv.iter().map(|(k, v)| format!("{k} := {v}")).collect();
                format!("STRUCT({})", kv.join(", "))
            }),
            (e.clone(), e.clone()).prop_map(|(a, body)| format!("TRANSFORM({a}, x => {body})")),
            (e.clone(), e.clone())
                .prop_map(|(a, body)| format!("REDUCE({a}, 0, (s, x) => s + {body})")),
            (e.clone(), e).prop_map(|(a, body)| format!("FILTER({a}, (x) => {body})")),
        ]
    })
}

fn source() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec!["S", "T", "S2", "T2", "`S`", "s"]).prop_map(String::from),
        1 => prop::sample::select(vec!["missing", "`bad name`", "`w-1`", "w-1"]).prop_map(String::from),
    ]
}

fn duration() -> impl Strategy<Value = String> {
    let unit = prop::sample::select(vec![
        "MILLISECONDS",
        "MILLISECOND",
        "SECOND",
        "SECONDS",
        "MINUTE",
        "MINUTES",
        "HOUR",
        "HOURS",
        "DAY",
        "DAYS",
    ]);
    prop_oneof![
        30 => (0u64..100_000, unit).prop_map(|(n, u)| format!("{n} {u}")),
        1 => Just("3 WEEKS".to_string()),
        1 => Just("99999999999999 DAYS".to_string()),
    ]
}

fn window_extra() -> impl Strategy<Value = String> {
    (prop::option::of(duration()), prop::option::of(duration())).prop_map(|(r, g)| {
        let mut s = String::new();
        if let Some(r) = r {
            s += &format!(", RETENTION {r}");
        }
        if let Some(g) = g {
            s += &format!(", GRACE PERIOD {g}");
        }
        s
    })
}

fn window() -> impl Strategy<Value = String> {
    prop_oneof![
        (duration(), window_extra()).prop_map(|(d, x)| format!("WINDOW TUMBLING (SIZE {d}{x})")),
        (duration(), duration(), window_extra())
            .prop_map(|(d, a, x)| format!("WINDOW HOPPING (SIZE {d}, ADVANCE BY {a}{x})")),
        (duration(), window_extra()).prop_map(|(d, x)| format!("WINDOW SESSION ({d}{x})")),
    ]
}

fn select_item() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (expr(), prop::option::of(field())).prop_map(|(e, a)| match a {
            Some(a) => format!("{e} AS {a}"),
            None => e,
        }),
        1 => Just("*".to_string()),
        1 => Just("S.*".to_string()),
        1 => Just("ST->*".to_string()),
        1 => Just("S.ST->*".to_string()),
    ]
}

fn join() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "JOIN",
            "INNER JOIN",
            "LEFT JOIN",
            "LEFT OUTER JOIN",
            "RIGHT JOIN",
            "FULL OUTER JOIN",
        ]),
        source(),
        prop::option::of(prop::sample::select(vec!["A", "B", "AS B"])),
        prop::option::of(prop_oneof![
            duration().prop_map(|d| format!("WITHIN {d}")),
            (duration(), duration()).prop_map(|(a, b)| format!("WITHIN ({a}, {b})")),
            (duration(), duration()).prop_map(|(a, g)| format!("WITHIN {a} GRACE PERIOD {g}")),
        ]),
        expr(),
    )
        .prop_map(|(kind, src, alias, within, on)| {
            let alias = alias.map(|a| format!(" {a}")).unwrap_or_default();
            let within = within.map(|w| format!(" {w}")).unwrap_or_default();
            format!("{kind} {src}{alias}{within} ON {on}")
        })
}

fn select() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(select_item(), 1..4),
        source(),
        prop::option::of(prop::sample::select(vec!["A", "AS A"])),
        prop::collection::vec(join(), 0..2),
        prop::option::of(window()),
        prop::option::of(expr()),
        prop::collection::vec(expr(), 0..3),
        prop::option::of(expr()),
        prop::collection::vec(expr(), 0..2),
        prop::sample::select(vec!["", " EMIT CHANGES", " EMIT FINAL"]),
        prop::option::of(0u64..1000),
    )
        .prop_map(
            |(
                items,
                from,
                alias,
                joins,
                window,
                selection,
                group,
                having,
                partition,
                emit,
                limit,
            )| {
                let mut s = format!("SELECT {} FROM {from}", items.join(", "));
                if let Some(a) = alias {
                    s += &format!(" {a}");
                }
                for j in joins {
                    s += &format!(" {j}");
                }
                if let Some(w) = window {
                    s += &format!(" {w}");
                }
                if let Some(w) = selection {
                    s += &format!(" WHERE {w}");
                }
                // GROUP BY and PARTITION BY take value expressions: a condition there must be
                // parenthesized.
                let paren = |list: Vec<String>| {
                    list.iter()
                        .map(|e| format!("({e})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                if !group.is_empty() {
                    s += &format!(" GROUP BY {}", paren(group));
                }
                if let Some(h) = having {
                    s += &format!(" HAVING {h}");
                }
                if !partition.is_empty() {
                    s += &format!(" PARTITION BY {}", paren(partition));
                }
                s += emit;
                if let Some(n) = limit {
                    s += &format!(" LIMIT {n}");
                }
                s
            },
        )
}

fn properties() -> impl Strategy<Value = String> {
    let prop = prop_oneof![
        Just("KAFKA_TOPIC='t1'".to_string()),
        Just("kafka_topic = 'other'".to_string()),
        prop::sample::select(vec!["'JSON'", "'KAFKA'", "'DELIMITED'", "'AVRO'", "'NONE'"])
            .prop_map(|f| format!("VALUE_FORMAT={f}")),
        Just("KEY_FORMAT='KAFKA'".to_string()),
        Just("FORMAT='JSON'".to_string()),
        (-3i32..20).prop_map(|n| format!("PARTITIONS={n}")),
        Just("TIMESTAMP='TS'".to_string()),
        Just("TIMESTAMP_FORMAT='yyyy-MM-dd'".to_string()),
        Just("WRAP_SINGLE_VALUE=false".to_string()),
        Just("WINDOW_TYPE='TUMBLING'".to_string()),
        Just("WINDOW_SIZE='10 SECONDS'".to_string()),
        Just("`Quoted` = 1.5".to_string()),
    ];
    prop::collection::vec(prop, 1..4).prop_map(|p| format!(" WITH ({})", p.join(", ")))
}

fn column_defs() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            field(),
            data_type(),
            prop::sample::select(vec!["", " KEY", " PRIMARY KEY", " HEADERS", " HEADER('h')"]),
        ),
        1..5,
    )
    .prop_map(|cols| {
        let c: Vec<String> = cols.iter().map(|(n, t, k)| format!("{n} {t}{k}")).collect();
        format!(" ({})", c.join(", "))
    })
}

fn statement() -> impl Strategy<Value = String> {
    let kind = || prop::sample::select(vec!["STREAM", "TABLE"]);
    let create_prefix = prop::sample::select(vec![
        "CREATE",
        "CREATE OR REPLACE",
        "CREATE SOURCE",
        "CREATE IF NOT EXISTS",
    ]);
    prop_oneof![
        6 => select(),
        2 => (create_prefix.clone(), kind(), source(), prop::option::of(column_defs()), prop::option::of(properties()))
            .prop_map(|(c, k, n, cols, p)| {
                // IF NOT EXISTS goes after the kind.
                let (c, ine) = match c.strip_suffix(" IF NOT EXISTS") {
                    Some(c) => (c, " IF NOT EXISTS"),
                    None => (c, ""),
                };
                format!("{c} {k}{ine} {n}{}{}", cols.unwrap_or_default(), p.unwrap_or_default())
            }),
        3 => (prop::sample::select(vec!["CREATE", "CREATE OR REPLACE"]), kind(), source(), prop::option::of(properties()), select())
            .prop_map(|(c, k, n, p, q)| format!("{c} {k} {n}{} AS {q}", p.unwrap_or_default())),
        2 => (source(), prop::option::of(prop::collection::vec(field(), 1..4)), prop::collection::vec(expr(), 0..4), prop::option::of(Just(" WITH (EXPECTED_VERSION = 3, EVENT_ID = 'e1')")))
            .prop_map(|(t, cols, vals, p)| {
                let cols = cols.map(|c| format!(" ({})", c.join(", "))).unwrap_or_default();
                format!("INSERT INTO {t}{cols} VALUES ({}){}", vals.join(", "), p.unwrap_or(""))
            }),
        1 => (source(), select()).prop_map(|(t, q)| format!("INSERT INTO {t} {q}")),
        1 => (source(), expr()).prop_map(|(t, w)| format!("DELETE FROM {t} WHERE {w}")),
        1 => prop::sample::select(vec![
            "SHOW STREAMS", "LIST TABLES", "SHOW QUERIES EXTENDED", "SHOW TOPICS", "SHOW FUNCTIONS",
            "SHOW PROPERTIES", "SHOW TYPES", "TERMINATE ALL", "TERMINATE CSAS_S_1",
            "DESCRIBE FUNCTION ABS", "EXPLAIN CTAS_T_2", "PRINT 't1' FROM BEGINNING LIMIT 3",
            "PRINT t1 INTERVAL 2", "SET 'auto.offset.reset' = 'earliest'", "UNSET 'a''b'",
            "DROP TYPE IF EXISTS ADDR", "SHOW", "ASSERT TOPIC x",
        ]).prop_map(String::from),
        1 => (prop::sample::select(vec!["DESCRIBE", "DESCRIBE EXTENDED", "DROP STREAM", "DROP TABLE IF EXISTS", "DROP STREAM"]), source(), any::<bool>())
            .prop_map(|(v, s, del)| format!("{v} {s}{}", if del && v.starts_with("DROP") { " DELETE TOPIC" } else { "" })),
        1 => (kind(), source(), prop::collection::vec((field(), data_type()), 1..3)).prop_map(|(k, s, cols)| {
            let c: Vec<String> = cols.iter().map(|(n, t)| format!("ADD COLUMN {n} {t}")).collect();
            format!("ALTER {k} {s} {}", c.join(", "))
        }),
        1 => (field(), data_type()).prop_map(|(n, t)| format!("CREATE TYPE {n} AS {t}")),
        1 => select().prop_map(|q| format!("EXPLAIN {q}")),
    ]
}

/// A statement, sometimes mangled: a byte range cut, a token spliced in, or the text cut
/// short, so half-statements and stray tokens reach the parser too.
fn case() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "(", ")", ",", ";", "'", "`", "\"", "->", "=>", "[", "]", "*", ".", "SELECT", "FROM",
        "WHERE", "EMIT", "CHANGES", "AS", "NULL", "CAST(", "--", "/*", "\u{0}", "ü", "1e999", ":=",
        "::", "$1", "@",
    ]);
    prop_oneof![
        6 => statement().prop_map(|s| format!("{s};")),
        1 => (statement(), statement()).prop_map(|(a, b)| format!("{a}; {b};")),
        1 => (statement(), any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(s, a, b)| {
                let (a, b) = (a.index(s.len() + 1), b.index(s.len() + 1));
                let (lo, hi) = (a.min(b), a.max(b));
                cut(&s, lo, hi)
            }),
        1 => (statement(), any::<prop::sample::Index>(), token)
            .prop_map(|(s, at, t)| {
                let at = at.index(s.len() + 1);
                let mut out = cut(&s, at, s.len());
                out.push_str(t);
                out.push_str(s.get(at..).unwrap_or(""));
                out
            }),
    ]
}

/// `s` without the bytes `lo..hi`, both moved down to character boundaries.
fn cut(s: &str, mut lo: usize, mut hi: usize) -> String {
    while !s.is_char_boundary(lo) {
        lo -= 1;
    }
    while !s.is_char_boundary(hi) {
        hi -= 1;
    }
    format!("{}{}", &s[..lo], &s[hi..])
}

// ---- the checks ----

/// The statement with every position zeroed, so a reparse of the printed text (whose
/// positions differ) compares equal. sqlparser's expressions already ignore spans in
/// their equality.
fn without_positions(mut k: StatementKind) -> StatementKind {
    fn name(n: &mut Name) {
        n.line = 0;
        n.column = 0;
    }
    fn select(s: &mut Select) {
        for item in &mut s.items {
            match item {
                SelectItem::QualifiedWildcard(n) => name(n),
                SelectItem::StructAll { qualifier, path } => {
                    qualifier.iter_mut().for_each(name);
                    path.iter_mut().for_each(name);
                }
                SelectItem::Expr { alias, .. } => alias.iter_mut().for_each(name),
                SelectItem::Wildcard => {}
            }
        }
        name(&mut s.from);
        s.alias.iter_mut().for_each(name);
        for j in &mut s.joins {
            name(&mut j.source);
            j.alias.iter_mut().for_each(name);
            j.line = 0;
            j.column = 0;
        }
        if let Some(w) = &mut s.window {
            w.line = 0;
            w.column = 0;
        }
    }
    match &mut k {
        StatementKind::CreateSource {
            name: n, columns, ..
        }
        | StatementKind::Alter {
            name: n, columns, ..
        } => {
            name(n);
            columns.iter_mut().for_each(|c| name(&mut c.name));
        }
        StatementKind::CreateAs { name: n, query, .. } => {
            name(n);
            select(query);
        }
        StatementKind::InsertValues {
            target, columns, ..
        } => {
            name(target);
            columns.iter_mut().flatten().for_each(name);
        }
        StatementKind::InsertSelect { target, query } => {
            name(target);
            select(query);
        }
        StatementKind::Delete { target, .. } => name(target),
        StatementKind::Select(s) => select(s),
        StatementKind::Describe { name: n, .. }
        | StatementKind::DescribeFunction(n)
        | StatementKind::Explain(ExplainTarget::Query(n))
        | StatementKind::Drop { name: n, .. }
        | StatementKind::Terminate(Some(n))
        | StatementKind::Print { topic: n, .. }
        | StatementKind::CreateType { name: n, .. }
        | StatementKind::DropType { name: n, .. } => name(n),
        StatementKind::Explain(ExplainTarget::Statement(s)) => {
            let inner = std::mem::replace(
                &mut s.kind,
                StatementKind::Show(sluice_sql::ShowWhat::Types),
            );
            s.kind = without_positions(inner);
            s.text.clear();
            s.line = 0;
            s.column = 0;
        }
        StatementKind::Show(_)
        | StatementKind::Terminate(None)
        | StatementKind::Set { .. }
        | StatementKind::Unset { .. } => {}
    }
    k
}

fn round_trip(stmt: &Statement) -> Result<(), TestCaseError> {
    let printed = stmt.to_string();
    let reparsed = sluice_sql::parse(&printed).map_err(|e| {
        TestCaseError::fail(format!(
            "printed statement does not parse: {e}\n  printed: {printed}\n  from: {}",
            stmt.text
        ))
    })?;
    prop_assert_eq!(reparsed.len(), 1, "printed: {}", printed);
    let again = reparsed[0].to_string();
    prop_assert_eq!(&again, &printed, "printing is not a fixed point");
    prop_assert_eq!(
        without_positions(reparsed[0].kind.clone()),
        without_positions(stmt.kind.clone()),
        "printed: {}",
        printed
    );
    Ok(())
}

fn catalog() -> BTreeMap<String, SourceDef> {
    let cfg = SessionConfig::default();
    let mut c = BTreeMap::new();
    let defs = [
        "CREATE STREAM S (K INT KEY, V INT, NAME STRING, ARR ARRAY<INT>, M MAP<STRING, INT>, ST STRUCT<A INT, B STRING>, TS BIGINT, D DECIMAL(4, 2)) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON');",
        "CREATE STREAM S2 (K INT KEY, V INT, NAME STRING) WITH (KAFKA_TOPIC='s2', VALUE_FORMAT='JSON');",
        "CREATE TABLE T (K INT PRIMARY KEY, V INT, NAME STRING, ARR ARRAY<INT>, ST STRUCT<A INT, B STRING>, TS BIGINT) WITH (KAFKA_TOPIC='t', VALUE_FORMAT='JSON');",
        "CREATE TABLE T2 (K STRING PRIMARY KEY, V BIGINT) WITH (KAFKA_TOPIC='t2', FORMAT='JSON');",
    ];
    for (i, sql) in defs.iter().enumerate() {
        let stmt = sluice_sql::parse(sql)
            .expect("catalog DDL parses")
            .remove(0);
        let StatementKind::CreateSource {
            kind,
            name,
            columns,
            properties,
            ..
        } = &stmt.kind
        else {
            unreachable!("catalog DDL is CREATE STREAM/TABLE");
        };
        let (def, _) = sluice_planner::ddl::plan_create_source(
            i as u64 + 1,
            *kind,
            name,
            columns,
            properties,
            sql,
            &cfg,
        )
        .expect("catalog DDL plans");
        c.insert(def.name.clone(), def);
    }
    c
}

/// Plans the statement the way the server would; the outcome does not matter, only that
/// planning returns one.
fn plan(stmt: &Statement, catalog: &BTreeMap<String, SourceDef>) {
    let cfg = SessionConfig::default();
    let ids = || sluice_planner::query::NewIds {
        sink_id: 100,
        query_num: 1,
        query_id: "Q_1".into(),
    };
    match &stmt.kind {
        StatementKind::Select(s) if s.emit_changes => {
            let _ = sluice_planner::query::plan_push(s, catalog);
        }
        StatementKind::Select(s) => {
            let q = QueryConfig::default();
            let limits = sluice_plan::PullLimits::default();
            let _ = sluice_planner::pull::plan_pull(s, catalog, &q, limits);
            let _ = sluice_planner::pull::prepare_pull(s, catalog, &q, limits);
        }
        StatementKind::CreateAs {
            kind,
            name,
            properties,
            query,
            ..
        } => {
            let _ = sluice_planner::query::plan_create_as(
                ids(),
                *kind,
                name,
                properties,
                query,
                catalog,
                &stmt.text,
                &cfg,
            );
        }
        StatementKind::CreateSource {
            kind,
            name,
            columns,
            properties,
            ..
        } => {
            let _ = sluice_planner::ddl::plan_create_source(
                7, *kind, name, columns, properties, &stmt.text, &cfg,
            );
        }
        StatementKind::InsertSelect { target, query } => {
            if let Some(def) = catalog.source(&target.value) {
                let _ =
                    sluice_planner::query::plan_insert_select(ids(), &def, query, catalog, &cfg);
            }
        }
        StatementKind::InsertValues {
            target,
            columns,
            values,
            properties,
        } => {
            if let Some(def) = catalog.source(&target.value) {
                let _ = sluice_planner::insert::plan_insert_values(
                    &def,
                    target,
                    columns.as_deref(),
                    values,
                );
                let _ = sluice_planner::insert::plan_insert_options(&def, target, properties);
            }
        }
        StatementKind::Delete { target, selection } => {
            if let Some(def) = catalog.source(&target.value) {
                let _ = sluice_planner::delete::plan_delete_keys(&def, selection);
            }
        }
        StatementKind::Explain(ExplainTarget::Statement(inner)) => plan(inner, catalog),
        _ => {}
    }
}

/// Cases that parsed, and statements in them, so a run shows the generator reaches past
/// the parser.
static PARSED: AtomicU64 = AtomicU64::new(0);
static STATEMENTS: AtomicU64 = AtomicU64::new(0);

fn check(text: &str, catalog: &BTreeMap<String, SourceDef>) -> Result<(), TestCaseError> {
    match sluice_sql::parse(text) {
        Ok(stmts) => {
            PARSED.fetch_add(1, Ordering::Relaxed);
            STATEMENTS.fetch_add(stmts.len() as u64, Ordering::Relaxed);
            for stmt in &stmts {
                round_trip(stmt)?;
                plan(stmt, catalog);
            }
        }
        Err(e) => {
            prop_assert!(!e.message.is_empty(), "an empty parse error for {}", text);
            prop_assert!(
                e.line >= 1,
                "a parse error without a position: {} for {}",
                e,
                text
            );
        }
    }
    Ok(())
}

fn run(runner: &mut TestRunner, catalog: &BTreeMap<String, SourceDef>) -> u32 {
    match runner.run(&case(), |text| check(&text, catalog)) {
        Ok(()) => runner.config().cases,
        Err(TestError::Fail(why, text)) => panic!("{why}\n  minimal case: {text}"),
        Err(TestError::Abort(why)) => panic!("aborted: {why}"),
    }
}

#[test]
fn generated_statements_round_trip_and_never_panic() {
    let catalog = catalog();
    let secs: u64 = std::env::var("SLUICE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let config = Config {
        cases: if secs > 0 { 10_000 } else { 3_000 },
        failure_persistence: None,
        ..Config::default()
    };
    if secs == 0 {
        let cases = run(&mut TestRunner::new(config), &catalog);
        report(u64::from(cases), 1, 0);
        return;
    }
    // The long run: fresh random seeds until the time is up.
    let until = Instant::now() + Duration::from_secs(secs);
    let (mut cases, mut rounds) = (0u64, 0u64);
    while Instant::now() < until {
        cases += u64::from(run(&mut TestRunner::new(config.clone()), &catalog));
        rounds += 1;
    }
    report(cases, rounds, secs);
}

fn report(cases: u64, rounds: u64, secs: u64) {
    let parsed = PARSED.load(Ordering::Relaxed);
    let statements = STATEMENTS.load(Ordering::Relaxed);
    eprintln!(
        "sql fuzz: {cases} cases in {rounds} rounds over {secs} s, no failure; \
         {parsed} checks parsed ({statements} statements printed, reparsed and planned)"
    );
    // Shrinking reruns cases, so the counts are of checks, not cases; most must parse or
    // the generator is testing only the first token.
    assert!(parsed * 4 > cases, "only {parsed} of {cases} cases parsed");
}

/// Statements the generator reaches rarely, printed and reparsed by hand.
#[test]
fn every_statement_kind_round_trips() {
    for sql in [
        "CREATE OR REPLACE STREAM IF NOT EXISTS `a-b` (`k k` STRUCT<`x``y` INT> KEY, v INT HEADER('h'), h ARRAY<STRUCT<a BYTES>> HEADERS) WITH (KAFKA_TOPIC='t', PARTITIONS=-1, X=true);",
        "CREATE TABLE t WITH (kafka_topic='t') AS SELECT k, COUNT(*) AS n FROM s LEFT JOIN t2 WITHIN (1 SECOND, 2 HOURS) GRACE PERIOD 3 DAYS ON s.k = t2.k WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS, RETENTION 1 DAY, GRACE PERIOD 0 MILLISECONDS) WHERE v > 1 GROUP BY k HAVING COUNT(*) > 1 EMIT FINAL;",
        "SELECT TRANSFORM(arr, x => x + 1), REDUCE(m, 0, (s, k, v) => s + v), s->a->*, q.r->* FROM s PARTITION BY (k, v) EMIT CHANGES LIMIT 5;",
        "INSERT INTO s (k, v) VALUES (1, 'it''s') WITH (EXPECTED_VERSION=2);",
        r#"SELECT 'two '''' quotes', `x````y`, "d""q", 'back\' FROM s WHERE a LIKE '%''%' ESCAPE '''';"#,
        "INSERT INTO s SELECT * FROM s2 WINDOW SESSION (5 MINUTES);",
        "DELETE FROM t WHERE k IN (1, 2);",
        "ALTER STREAM s ADD COLUMN a INT, ADD b MAP<STRING, DECIMAL(4, 2)>;",
        "DROP TABLE IF EXISTS t DELETE TOPIC;",
        "EXPLAIN SELECT * FROM s;",
        "EXPLAIN CSAS_S_1;",
        "PRINT 'my''topic' FROM BEGINNING LIMIT 2;",
        "SET 'a' = 'b'; UNSET 'a';",
        "CREATE TYPE IF NOT EXISTS addr AS STRUCT<street STRING>; DROP TYPE addr;",
        "DESCRIBE EXTENDED s; DESCRIBE FUNCTION abs; TERMINATE ALL; TERMINATE q;",
        "SHOW STREAMS; SHOW TABLES; SHOW QUERIES; SHOW TOPICS; SHOW FUNCTIONS; SHOW PROPERTIES; SHOW TYPES;",
    ] {
        for stmt in sluice_sql::parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}")) {
            if let Err(e) = round_trip(&stmt) {
                panic!("{e}");
            }
        }
    }
}
