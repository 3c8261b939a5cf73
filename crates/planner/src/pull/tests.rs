use super::*;
use sluice_common::{ColumnRole, FormatKind, FormatSpec, Schema};
use sluice_sql::StatementKind;
use std::collections::BTreeMap;

fn col(n: &str, t: DataType, role: ColumnRole) -> Column {
    Column {
        name: n.into(),
        data_type: t,
        role,
    }
}

fn source(name: &str, kind: SourceKind, keys: &[(&str, DataType)], queryable: bool) -> SourceDef {
    let role = match kind {
        SourceKind::Table => ColumnRole::PrimaryKey,
        SourceKind::Stream => ColumnRole::Key,
    };
    SourceDef {
        id: 7,
        name: name.into(),
        kind,
        schema: Schema::new(
            keys.iter()
                .map(|(k, t)| col(k, t.clone(), role))
                .chain([
                    col("V", DataType::BigInt, ColumnRole::Value),
                    col("S", DataType::String, ColumnRole::Value),
                ])
                .collect(),
        ),
        topic: name.to_lowercase(),
        key_format: FormatSpec::new(FormatKind::Json),
        value_format: FormatSpec::new(FormatKind::Json),
        timestamp_column: None,
        timestamp_format: None,
        headers: Vec::new(),
        written_by: queryable.then(|| "CTAS_1".to_string()),
        sql: String::new(),
        read_only: false,
        window: None,
    }
}

fn catalog() -> BTreeMap<String, SourceDef> {
    let s = DataType::String;
    let mut c = BTreeMap::new();
    c.insert(
        "T".into(),
        source("T", SourceKind::Table, &[("ID", s.clone())], true),
    );
    c.insert(
        "TI".into(),
        source("TI", SourceKind::Table, &[("ID", DataType::Int)], true),
    );
    c.insert(
        "T2".into(),
        source(
            "T2",
            SourceKind::Table,
            &[("A", s.clone()), ("B", s.clone())],
            true,
        ),
    );
    c.insert(
        "RAW".into(),
        source("RAW", SourceKind::Table, &[("ID", s.clone())], false),
    );
    let mut cst = source("CST", SourceKind::Table, &[("ID", s.clone())], false);
    cst.read_only = true;
    c.insert("CST".into(), cst);
    c.insert(
        "ST".into(),
        source("ST", SourceKind::Stream, &[("ID", s)], false),
    );
    c
}

fn select(sql: &str) -> Select {
    let mut stmts = sluice_sql::parse(sql).unwrap();
    let StatementKind::Select(select) = stmts.remove(0).kind else {
        panic!("not a select: {sql}");
    };
    *select
}

fn plan_with(sql: &str, cfg: &QueryConfig) -> Result<PlannedPull> {
    plan_pull(
        &select(sql),
        &catalog(),
        cfg,
        sluice_plan::PullLimits::default(),
    )
}

fn plan(sql: &str) -> Result<PlannedPull> {
    plan_with(sql, &QueryConfig::default())
}

fn no_scans() -> QueryConfig {
    QueryConfig {
        table_scan_enabled: false,
        ..QueryConfig::default()
    }
}

fn access(sql: &str, cfg: &QueryConfig) -> PullAccess {
    match plan_with(sql, cfg).unwrap().kind {
        PullKind::Table(p) => p.access,
        PullKind::Stream(_) => panic!("a stream scan: {sql}"),
    }
}

fn error(sql: &str, cfg: &QueryConfig) -> String {
    match plan_with(sql, cfg) {
        Ok(_) => panic!("planned: {sql}"),
        Err(e) => e.message,
    }
}

fn keys(list: &[&str]) -> PullAccess {
    PullAccess::Keys(
        list.iter()
            .map(|k| vec![Value::String(k.to_string())])
            .collect(),
    )
}

#[test]
fn key_equalities_and_in_lists_are_lookups() {
    let cfg = no_scans();
    assert_eq!(
        access("SELECT * FROM t WHERE id = 'a';", &cfg),
        keys(&["a"])
    );
    assert_eq!(
        access("SELECT * FROM t WHERE 'a' = id;", &cfg),
        keys(&["a"])
    );
    assert_eq!(
        access("SELECT * FROM t WHERE id IN ('a', 'b');", &cfg),
        keys(&["a", "b"])
    );
    assert_eq!(
        access(
            "SELECT * FROM t WHERE id = 'a' OR id = 'b' OR id = 'a';",
            &cfg
        ),
        keys(&["a", "b"])
    );
    // Other conditions beside the key equality stay in the filter.
    assert_eq!(
        access("SELECT * FROM t WHERE id = 'a' AND v > 3;", &cfg),
        keys(&["a"])
    );
    // Both keys of a two-column key, in key order.
    assert_eq!(
        access("SELECT * FROM t2 WHERE b = 'y' AND a = 'x';", &cfg),
        PullAccess::Keys(vec![vec![
            Value::String("x".into()),
            Value::String("y".into())
        ]])
    );
    // A key value is widened to the key's type.
    assert_eq!(
        access("SELECT * FROM ti WHERE id = 1 + 2;", &cfg),
        PullAccess::Keys(vec![vec![Value::Int(3)]])
    );
}

#[test]
fn bounds_on_a_string_key_are_range_scans_unless_disabled() {
    let cfg = no_scans();
    assert_eq!(
        access("SELECT * FROM t WHERE id > 'a';", &cfg),
        PullAccess::Range {
            lower: Some((Value::String("a".into()), false)),
            upper: None
        }
    );
    let no_ranges = QueryConfig {
        range_scan_enabled: false,
        ..no_scans()
    };
    assert!(
        error("SELECT * FROM t WHERE id > 'a';", &no_ranges)
            .starts_with("Query requires table scan to be enabled.")
    );
    // A bound on an INTEGER key needs a table scan, which reads only the bounded keys.
    assert!(
        error("SELECT * FROM ti WHERE id > 3;", &cfg)
            .starts_with("Query requires table scan to be enabled.")
    );
    assert_eq!(
        access(
            "SELECT * FROM ti WHERE id > 3 AND id <= 9;",
            &QueryConfig::default()
        ),
        PullAccess::Range {
            lower: Some((Value::Int(3), false)),
            upper: Some((Value::Int(9), true))
        }
    );
}

#[test]
fn without_table_scans_the_where_clause_must_pin_the_key() {
    let cfg = no_scans();
    let cases = [
        (
            "SELECT * FROM t WHERE v = 100;",
            "WHERE clause missing key column for disjunct: (V = 100).",
        ),
        (
            "SELECT * FROM t WHERE id = 'a' OR v > 1;",
            "WHERE clause missing key column for disjunct: (V > 1).",
        ),
        (
            "SELECT * FROM t WHERE id != 'a';",
            "Bound on key columns '[`ID` STRING KEY]' must currently be '='.",
        ),
        (
            "SELECT * FROM t WHERE NOT (id = 'a');",
            "Bound on key columns '[`ID` STRING KEY]' must currently be '='.",
        ),
        (
            "SELECT * FROM t WHERE 'a' < id AND id < 'z';",
            "A comparison condition on the key column cannot be combined with other comparisons such as an IN predicate",
        ),
        (
            "SELECT * FROM t WHERE id = 'a' AND id IN ('b');",
            "A comparison condition on the key column cannot be combined",
        ),
        (
            "SELECT * FROM ti WHERE id IN (2, v + 1);",
            "A comparison must be between a key column and a resolvable expression.",
        ),
        (
            "SELECT * FROM t WHERE 'a' = 'a';",
            "A comparison must directly reference a key column.",
        ),
        (
            "SELECT * FROM t2 WHERE a = 'x';",
            "Multi-column sources must specify every key in the WHERE clause. Specified: [`A`] Expected: [`A` STRING KEY, `B` STRING KEY]",
        ),
        (
            "SELECT * FROM t WHERE '12' LIKE '12';",
            "Like condition must be between strings",
        ),
        (
            "SELECT * FROM t WHERE s IS NULL;",
            "Unsupported expression in WHERE clause: (S IS NULL)",
        ),
        (
            "SELECT * FROM t;",
            "Query requires table scan to be enabled.",
        ),
    ];
    for (sql, want) in cases {
        let got = error(sql, &cfg);
        assert!(got.contains(want), "{sql}: {got}");
        // Every key or scan error reads ksqlDB's guidance.
        if !want.starts_with("Query requires") {
            assert!(got.contains(PULL_QUERY_SYNTAX_HELP), "{sql}: {got}");
        }
    }
    // With scans, each is a scan.
    for (sql, _) in cases {
        if sql.contains("v + 1") {
            continue;
        }
        assert!(
            plan(sql).is_ok(),
            "{sql}: {:?}",
            plan(sql).err().map(|e| e.message)
        );
    }
    assert_eq!(
        access("SELECT * FROM t WHERE v = 100;", &QueryConfig::default()),
        PullAccess::Scan
    );
}

#[test]
fn key_values_must_resolve_to_the_key_type() {
    let cfg = QueryConfig::default();
    assert!(
        error("SELECT * FROM ti WHERE id IN ('10', 8);", &cfg)
            .contains("'10' can not be converted to the type of the key column: ID INTEGER KEY")
    );
    assert!(
        error("SELECT * FROM ti WHERE id IN (NULL);", &cfg)
            .contains("Primary key columns can not be NULL: (ID = null)")
    );
    let wrong = error("SELECT * FROM ti WHERE id = '10';", &cfg);
    assert!(
        wrong.contains(
            "Error in WHERE expression: Cannot compare ID (INTEGER) to '10' (STRING) with EQUAL.\nStatement: (ID = '10')"
        ),
        "{wrong}"
    );
    let null = error("SELECT * FROM ti WHERE id = NULL;", &cfg);
    assert!(
        null.contains(
            "Error in WHERE expression: Comparison with NULL not supported: INTEGER = NULL\nUse 'IS NULL' or 'IS NOT NULL' instead.\nStatement: (ID = null)"
        ),
        "{null}"
    );
}

#[test]
fn like_and_between_are_checked_as_ksqldb_checks_them() {
    let cfg = QueryConfig::default();
    // Their columns resolve before any pull-query rule applies.
    assert!(
        error("SELECT * FROM t WHERE nope LIKE 'x';", &no_scans())
            .contains("WHERE column 'NOPE' cannot be resolved.")
    );
    assert!(error("SELECT * FROM ti WHERE id LIKE 12;", &cfg).contains(
        "The column type for Like condition must be VARCHAR. The column type is INTEGER"
    ));
    assert!(
        error("SELECT * FROM t WHERE s BETWEEN 10 AND 'x';", &cfg).contains(
            "Invalid expression: Cannot compare S (STRING) to 10 (INTEGER) with GREATER_THAN_OR_EQUAL"
        )
    );
    assert_eq!(
        access("SELECT * FROM t WHERE id BETWEEN 'a' AND 'c';", &cfg),
        PullAccess::Range {
            lower: Some((Value::String("a".into()), true)),
            upper: Some((Value::String("c".into()), true))
        }
    );
}

#[test]
fn only_materialized_tables_are_queryable() {
    let got = error("SELECT * FROM raw WHERE id = 'a';", &QueryConfig::default());
    assert!(
        got.starts_with("The `RAW` table isn't queryable. To derive a queryable table, you can do 'CREATE TABLE QUERYABLE_RAW AS SELECT * FROM RAW'. See https://cnfl.io/queries for more info."),
        "{got}"
    );
    assert!(plan("SELECT * FROM cst WHERE id = 'a';").is_ok());
}

#[test]
fn pull_queries_refuse_some_clauses_and_pseudocolumns() {
    let cfg = QueryConfig::default();
    for (sql, want) in [
        (
            "SELECT id, ROWPARTITION FROM t WHERE id = 'a';",
            "Pull queries don't support the following columns in SELECT clauses: `ROWPARTITION`\n",
        ),
        (
            "SELECT * FROM t WHERE ROWOFFSET < 3 AND ROWPARTITION = 0;",
            "Pull queries don't support the following columns in WHERE clauses: `ROWOFFSET`, `ROWPARTITION`\n",
        ),
        // On a stream ROWOFFSET is allowed (a history's resume point), ROWPARTITION is not.
        (
            "SELECT id, ROWOFFSET, ROWPARTITION FROM st;",
            "Pull queries don't support the following columns in SELECT clauses: `ROWPARTITION`\n",
        ),
        (
            "SELECT * FROM st WHERE ROWOFFSET < 3 AND ROWPARTITION = 0;",
            "Pull queries don't support the following columns in WHERE clauses: `ROWPARTITION`\n",
        ),
        (
            "SELECT id FROM t GROUP BY id;",
            "Pull queries don't support GROUP BY clauses.",
        ),
        (
            "SELECT id FROM t WHERE id = 'a' PARTITION BY v;",
            "Pull queries don't support PARTITION BY clauses.",
        ),
    ] {
        let got = error(sql, &cfg);
        assert!(got.starts_with(want), "{sql}: {got}");
        assert!(got.ends_with(PULL_QUERY_SYNTAX_HELP), "{sql}: {got}");
    }
    // ROWTIME is allowed.
    assert!(plan("SELECT ROWTIME FROM t WHERE ROWTIME > 5;").is_ok());
    assert!(plan("SELECT ROWOFFSET FROM st WHERE id = 'a' AND ROWOFFSET > 5;").is_ok());
    let no_limit = QueryConfig {
        limit_clause_enabled: false,
        ..cfg
    };
    assert!(
        error("SELECT * FROM t LIMIT 2;", &no_limit)
            .starts_with("LIMIT clause in pull queries is currently disabled.")
    );
}

#[test]
fn streams_are_scanned_unless_disabled() {
    match plan("SELECT id FROM st WHERE v > 1 LIMIT 3;").unwrap().kind {
        PullKind::Stream(p) => {
            assert_eq!(p.scan.limit, Some(3));
            assert!(p.scan.filter.is_some());
            assert_eq!(p.keys, None, "no key pinned: a scan");
        }
        PullKind::Table(_) => panic!("a table read"),
    }
    let off = QueryConfig {
        stream_pull_enabled: false,
        ..QueryConfig::default()
    };
    assert!(error("SELECT * FROM st;", &off).starts_with("Pull queries on streams are disabled."));
}

#[test]
fn the_normal_form_distributes_and_over_or_and_pushes_not_down() {
    let w = sluice_sql::parse_expr("(a = 1 OR b = 2) AND NOT (c = 3 OR d LIKE 'x')").unwrap();
    let texts: Vec<String> = Pred::of(&w, false)
        .dnf()
        .unwrap()
        .iter()
        .map(|d| disjunct_text(d))
        .collect();
    assert_eq!(
        texts,
        [
            "(((A = 1) AND (C <> 3)) AND (NOT (D LIKE 'x')))",
            "(((B = 2) AND (C <> 3)) AND (NOT (D LIKE 'x')))"
        ]
    );
    let between = sluice_sql::parse_expr("x NOT BETWEEN 1 AND 5").unwrap();
    let texts: Vec<String> = Pred::of(&between, false)
        .dnf()
        .unwrap()
        .iter()
        .map(|d| disjunct_text(d))
        .collect();
    assert_eq!(texts, ["(X < 1)", "(X > 5)"]);
    // A normal form too large to enumerate is not searched for keys.
    let wide = (0..16)
        .map(|i| format!("(a = {i} OR b = {i})"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let w = sluice_sql::parse_expr(&wide).unwrap();
    assert!(Pred::of(&w, false).dnf().is_none());
    // A long IN list is one flat disjunction: one lookup per value.
    let list = (0..20_000)
        .map(|i| format!("'k{i}'"))
        .collect::<Vec<_>>()
        .join(", ");
    match access(
        &format!("SELECT * FROM t WHERE id IN ({list});"),
        &no_scans(),
    ) {
        PullAccess::Keys(k) => assert_eq!(k.len(), 20_000),
        other => panic!("{other:?}"),
    }
}

fn prepare(sql: &str) -> Option<PreparedPull> {
    prepare_pull(
        &select(sql),
        &catalog(),
        &QueryConfig::default(),
        sluice_plan::PullLimits::default(),
    )
    .unwrap()
}

fn key_params(sql: &str) -> Option<Vec<usize>> {
    prepare(sql).map(|p| p.key_params.into_iter().map(|(i, _)| i).collect())
}

#[test]
fn key_equalities_by_parameter_are_prepared() {
    assert_eq!(key_params("SELECT * FROM t WHERE id = ?;"), Some(vec![0]));
    assert_eq!(key_params("SELECT * FROM t WHERE ? = t.id;"), Some(vec![0]));
    assert_eq!(
        key_params("SELECT v FROM t WHERE (id = ?) AND v > 3;"),
        Some(vec![0])
    );
    // Parameters are numbered in text order, whatever the key order.
    assert_eq!(
        key_params("SELECT * FROM t2 WHERE b = ? AND a = ?;"),
        Some(vec![1, 0])
    );
}

#[test]
fn the_remaining_conditions_stay_in_the_filter() {
    let p = prepare("SELECT v FROM t WHERE id = ? AND v > 3;").unwrap();
    assert!(p.plan.filter.is_some());
    let p = prepare("SELECT v FROM t WHERE id = ?;").unwrap();
    assert!(p.plan.filter.is_none());
    assert_eq!(p.columns.len(), 1);
}

#[test]
fn other_shapes_are_planned_per_request() {
    for sql in [
        "SELECT * FROM t WHERE id = 'a';",
        "SELECT * FROM t WHERE id = ? OR id = ?;",
        "SELECT * FROM t WHERE id = ? AND v = ?;",
        "SELECT * FROM t WHERE id = ? AND id = ?;",
        "SELECT * FROM t WHERE id > ?;",
        "SELECT * FROM t WHERE v = ?;",
        "SELECT ?, v FROM t WHERE id = ?;",
        "SELECT * FROM t2 WHERE a = ?;",
        "SELECT * FROM t;",
        "SELECT * FROM st WHERE id = ?;",
        "SELECT * FROM raw WHERE id = ?;",
        "SELECT * FROM nowhere WHERE id = ?;",
    ] {
        assert!(prepare(sql).is_none(), "{sql}");
    }
}

#[test]
fn absurdly_deep_clauses_are_refused_before_they_are_walked() {
    let chain = vec!["v > 1"; 500].join(" AND ");
    let got = error(
        &format!("SELECT * FROM t WHERE {chain};"),
        &QueryConfig::default(),
    );
    assert!(got.starts_with("Expression is nested too deeply"), "{got}");
}

fn stream_keys(sql: &str) -> Option<Vec<Vec<Value>>> {
    match plan(sql).unwrap().kind {
        PullKind::Stream(p) => p.keys,
        PullKind::Table(_) => panic!("a table read: {sql}"),
    }
}

#[test]
fn a_stream_pull_that_pins_the_key_reads_those_keys() {
    let k = |v: &str| vec![Value::String(v.into())];
    assert_eq!(
        stream_keys("SELECT * FROM st WHERE id = 'c1';"),
        Some(vec![k("c1")])
    );
    assert_eq!(
        stream_keys("SELECT * FROM st WHERE id = 'c1' AND ROWTIME > 5 AND v < 3 LIMIT 2;"),
        Some(vec![k("c1")])
    );
    assert_eq!(
        stream_keys("SELECT * FROM st WHERE id IN ('a', 'b', 'a') OR id = 'c';"),
        Some(vec![k("a"), k("b"), k("c")])
    );
    // A disjunct that admits other keys, a range, or no key at all: a scan.
    for sql in [
        "SELECT * FROM st WHERE id = 'c1' OR v = 1;",
        "SELECT * FROM st WHERE id > 'c1';",
        "SELECT * FROM st WHERE id <> 'c1';",
        "SELECT * FROM st WHERE v = 1;",
        "SELECT * FROM st WHERE NOT (id = 'c1');",
    ] {
        assert_eq!(stream_keys(sql), None, "{sql}");
    }
    // ROWOFFSET and ROWPARTITION mean something on a stream (a history read from a
    // position); a table's pull query still refuses them, as ksqlDB's does.
    assert_eq!(
        stream_keys("SELECT ROWOFFSET, * FROM st WHERE id = 'c1' AND ROWOFFSET > 3;"),
        Some(vec![k("c1")])
    );
    assert!(
        error(
            "SELECT * FROM t WHERE id = 'a' AND ROWOFFSET > 3;",
            &QueryConfig::default()
        )
        .starts_with("Pull queries don't support the following columns in WHERE clauses")
    );
}
