//! RQTT cases (ksqlDB's rest-query-validation-tests): QTT plus the responses a client
//! sees. Leading non-SELECT statements each give an admin response; the trailing SELECTs
//! run as pull or push queries through `Executor::plan_query`, the same planning the
//! Query RPC does, once the inputs are produced and persistent queries have caught up.

use crate::case::{CaseError, check_outputs, fail, produce_inputs, settle};
use serde_json::{Map, Value as Json};
use sluice_common::DataType;
use sluice_database::ErrorCode;
use sluice_database::{ExecError, Executor, QueryKind};
use sluice_engine::{PushEvent, PushStart, ScanEvent};
use sluice_format::value_to_json;
use sluice_plan::PullPlan;
use sluice_sql::{ShowWhat, Statement, StatementKind};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A push query without LIMIT never ends; it is read until no row arrives for this long
/// (generous: the machine may be busy, and a row missed here fails the case).
const PUSH_QUIET: Duration = Duration::from_secs(1);
/// Upper bound on reading one push query, however busy it is.
const PUSH_DEADLINE: Duration = Duration::from_secs(10);

/// Whether a case needs the RQTT flow: it expects responses or errors the REST way, or
/// runs queries. Other cases in RQTT files are plain QTT cases.
pub(crate) fn is_rqtt(test: &Json) -> bool {
    [
        "responses",
        "expectedError",
        "inputConditions",
        "outputConditions",
    ]
    .iter()
    .any(|k| test.get(*k).is_some())
        || test
            .get("statements")
            .and_then(Json::as_array)
            .is_some_and(|a| {
                a.iter().filter_map(Json::as_str).any(|s| {
                    s.trim_start()
                        .get(..6)
                        .is_some_and(|w| w.eq_ignore_ascii_case("select"))
                })
            })
}

/// One response as the runner saw it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Actual {
    Admin(Map<String, Json>),
    Query(QueryResponse),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QueryResponse {
    pub header: Map<String, Json>,
    /// Column types, for comparing values (DECIMAL exactly, DOUBLE approximately).
    pub types: Vec<DataType>,
    pub rows: Vec<ActualRow>,
    pub final_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ActualRow {
    pub columns: Vec<Json>,
    pub tombstone: bool,
}

/// The ksqlDB entity type (`@type`) a successful statement answers with, or None where
/// ksqlDB's REST API returns no entity. DDL, CREATE AS, INSERT INTO ... SELECT, DROP and
/// TERMINATE all answer with a command status; INSERT VALUES is written directly and
/// returns nothing; SET/UNSET only change request properties, so they return nothing
/// either. Listing statements answer with their listing entity.
fn admin_type(kind: &StatementKind) -> Option<&'static str> {
    match kind {
        StatementKind::CreateSource { .. }
        | StatementKind::CreateAs { .. }
        | StatementKind::InsertSelect { .. }
        | StatementKind::Drop { .. }
        | StatementKind::Alter { .. }
        | StatementKind::Terminate(_)
        | StatementKind::CreateType { .. }
        | StatementKind::DropType { .. } => Some("currentStatus"),
        StatementKind::InsertValues { .. }
        | StatementKind::Delete { .. }
        | StatementKind::Set { .. }
        | StatementKind::Unset { .. }
        | StatementKind::Select(_)
        | StatementKind::Print { .. } => None,
        StatementKind::Show(what) => Some(match what {
            ShowWhat::Streams => "streams",
            ShowWhat::Tables => "tables",
            ShowWhat::Queries => "queries",
            ShowWhat::Topics => "kafka_topics",
            ShowWhat::Functions => "function_names",
            ShowWhat::Properties => "properties",
            ShowWhat::Types => "type_list",
        }),
        StatementKind::Describe { .. } => Some("sourceDescription"),
        StatementKind::DescribeFunction(_) => Some("describe_function"),
        StatementKind::Explain(_) => Some("queryDescription"),
    }
}

/// ksqlDB answers statement errors with HTTP 400 and server faults with 500.
fn http_status(code: ErrorCode) -> u64 {
    match code {
        ErrorCode::Internal | ErrorCode::Unavailable => 500,
        _ => 400,
    }
}

/// Judges a failure against `expectedError`. Ok means the case passed (the error was
/// the expected one). Its "type" is not compared: it names ksqlDB's REST entity class
/// (KsqlStatementErrorMessage is a KsqlErrorMessage), which has no Sluice counterpart.
fn judge_error(expected: Option<&Json>, err: &ExecError, what: &str) -> Result<(), CaseError> {
    let Some(exp) = expected else {
        return fail(format!("{what} failed: {}", err.message));
    };
    let want = exp.get("message").and_then(Json::as_str).unwrap_or("");
    if !err.message.contains(want) {
        return fail(format!(
            "{what}\nexpected an error containing: {want}\nactual error: {}",
            err.message
        ));
    }
    if let Some(status) = exp.get("status").and_then(Json::as_u64)
        && status != http_status(err.code)
    {
        return fail(format!(
            "{what}: expected HTTP status {status}, the error maps to {} ({:?}: {})",
            http_status(err.code),
            err.code,
            err.message
        ));
    }
    Ok(())
}

/// A planned query: a push query already reading, or a pull query still to run.
enum Begun {
    Push {
        rx: mpsc::Receiver<PushEvent>,
        header: Map<String, Json>,
        types: Vec<DataType>,
    },
    Pull {
        plan: Box<PullPlan>,
        header: Map<String, Json>,
        types: Vec<DataType>,
    },
    /// A pull query on a stream, already scanning.
    StreamPull {
        rx: mpsc::Receiver<ScanEvent>,
        header: Map<String, Json>,
        types: Vec<DataType>,
    },
}

pub(crate) async fn run_rqtt(exec: &Executor, test: &Json) -> Result<(), CaseError> {
    let expected_error = test.get("expectedError");
    // ksqlDB's harness sends the case's properties with every statement and query.
    let properties = crate::case::case_properties(test);
    let texts: Vec<&str> = test
        .get("statements")
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    let mut statements = Vec::new();
    for (i, sql) in texts.iter().enumerate() {
        match exec.parse(sql) {
            Ok(s) => statements.extend(s),
            Err(e) => {
                return judge_error(
                    expected_error,
                    &ExecError::from(e),
                    &format!("statement {}: {sql}", i + 1),
                );
            }
        }
    }
    let first_query = statements
        .iter()
        .position(|s| matches!(s.kind, StatementKind::Select(_)))
        .unwrap_or(statements.len());
    let queries = statements.split_off(first_query);
    if let Some(s) = queries
        .iter()
        .find(|s| !matches!(s.kind, StatementKind::Select(_)))
    {
        return fail(format!(
            "RQTT runs statements, then queries; this statement follows a query: {}",
            s.text
        ));
    }

    let mut actual = Vec::new();
    for stmt in &statements {
        match exec.execute_with(stmt, &properties).await {
            Ok(_) => {
                // A replacement takes over in the background (see case.rs).
                exec.await_replacements(std::time::Duration::from_secs(30))
                    .await;
                if let Some(t) = admin_type(&stmt.kind) {
                    let mut m = Map::new();
                    m.insert("@type".into(), Json::from(t));
                    m.insert("statementText".into(), Json::from(stmt.text.clone()));
                    actual.push(Actual::Admin(m));
                }
            }
            Err(e) => return judge_error(expected_error, &e, &format!("statement {}", stmt.text)),
        }
    }

    let wait_for_push = test
        .get("inputConditions")
        .and_then(|c| c.get("waitForActivePushQuery"))
        .and_then(Json::as_bool)
        .unwrap_or(false);
    // With waitForActivePushQuery the queries start before the inputs are produced (so a
    // push query reading from the latest offset sees them); otherwise after.
    let mut begun = Vec::new();
    if wait_for_push {
        for stmt in &queries {
            match begin_query(exec, stmt, &properties) {
                Ok(q) => begun.push(q),
                Err(e) => return judge_error(expected_error, &e, &format!("query {}", stmt.text)),
            }
        }
    }

    produce_inputs(exec, test).await?;
    settle(exec).await?;

    if !wait_for_push {
        for stmt in &queries {
            match begin_query(exec, stmt, &properties) {
                Ok(q) => begun.push(q),
                Err(e) => return judge_error(expected_error, &e, &format!("query {}", stmt.text)),
            }
        }
    }
    for (stmt, q) in queries.iter().zip(begun) {
        match finish_query(exec, q).await {
            Ok(r) => actual.push(Actual::Query(r)),
            Err(e) => return judge_error(expected_error, &e, &format!("query {}", stmt.text)),
        }
    }

    if let Some(exp) = expected_error {
        return fail(format!(
            "expected an error containing: {}\nbut every statement and query succeeded",
            exp.get("message").and_then(Json::as_str).unwrap_or("(any)")
        ));
    }
    if let Some(expected) = test.get("responses").and_then(Json::as_array) {
        let verify_order = test
            .get("outputConditions")
            .and_then(|c| c.get("verifyOrder"))
            .and_then(Json::as_bool)
            .unwrap_or(false);
        check_responses(expected, &actual, verify_order).map_err(CaseError::Fail)?;
    }
    check_outputs(exec, test)
}

fn header_for(id: &str, columns: &[HeaderColumn], pull: bool) -> Map<String, Json> {
    let mut m = Map::new();
    m.insert("queryId".into(), Json::from(id));
    m.insert("schema".into(), Json::from(header_schema(columns, pull)));
    m
}

/// Plans a query with the server's planning and the case's properties; a push query (or
/// a pull query on a stream) starts reading now.
fn begin_query(
    exec: &Executor,
    stmt: &Statement,
    properties: &std::collections::HashMap<String, String>,
) -> Result<Begun, ExecError> {
    let StatementKind::Select(select) = &stmt.kind else {
        return Err(ExecError::invalid("not a query"));
    };
    let planned = exec.plan_query(select, properties)?;
    let cols: Vec<HeaderColumn> = planned
        .columns
        .iter()
        .map(|c| HeaderColumn {
            name: c.name.clone(),
            ty: c.data_type.clone(),
            key: c.role.is_key(),
            header: c.header.clone(),
        })
        .collect();
    let types = cols.iter().map(|c| c.ty.clone()).collect();
    let start = if planned.config.offset_reset_latest {
        PushStart::Latest
    } else {
        PushStart::Earliest
    };
    Ok(match planned.kind {
        QueryKind::Pull(plan) => Begun::Pull {
            plan: Box::new(plan),
            header: header_for(&planned.id, &cols, true),
            types,
        },
        // A stream's pull query answers with a push query's header (no KEY marks).
        QueryKind::StreamPull(plan) => Begun::StreamPull {
            rx: exec.engine.scan_stream(plan, exec.pull_limits)?,
            header: header_for(&planned.id, &cols, false),
            types,
        },
        QueryKind::AggregatePush(plan) => Begun::Push {
            rx: exec.engine.push_aggregate(
                plan,
                start,
                sluice_database::TRANSIENT_AGGREGATION_GROUPS,
            )?,
            header: header_for(&planned.id, &cols, false),
            types,
        },
        QueryKind::Push(plan) => Begun::Push {
            rx: exec.engine.push(plan, start)?,
            header: header_for(&planned.id, &cols, false),
            types,
        },
    })
}

async fn finish_query(exec: &Executor, query: Begun) -> Result<QueryResponse, ExecError> {
    match query {
        Begun::Pull {
            plan,
            header,
            types,
        } => {
            let rows = exec.run_pull(*plan).await?;
            Ok(QueryResponse {
                header,
                types,
                rows: rows
                    .iter()
                    .map(|r| ActualRow {
                        columns: r.iter().map(value_to_json).collect(),
                        tombstone: false,
                    })
                    .collect(),
                final_message: None,
            })
        }
        Begun::Push { rx, header, types } => Ok(collect_push(rx, header, types).await),
        Begun::StreamPull {
            mut rx,
            header,
            types,
        } => {
            let mut rows = Vec::new();
            let mut final_message = None;
            while let Some(ev) = rx.recv().await {
                match ev {
                    ScanEvent::Row(row) => rows.push(ActualRow {
                        columns: row.iter().map(value_to_json).collect(),
                        tombstone: false,
                    }),
                    ScanEvent::Done { limit_reached } => {
                        final_message = Some(
                            if limit_reached {
                                "Limit Reached"
                            } else {
                                "Query Completed"
                            }
                            .to_string(),
                        );
                        break;
                    }
                    ScanEvent::Failed(e) => return Err(e.into()),
                }
            }
            Ok(QueryResponse {
                header,
                types,
                rows,
                final_message,
            })
        }
    }
}

/// Reads a push query until LIMIT ends it, it closes, or it goes quiet.
async fn collect_push(
    mut rx: mpsc::Receiver<PushEvent>,
    header: Map<String, Json>,
    types: Vec<DataType>,
) -> QueryResponse {
    let deadline = Instant::now() + PUSH_DEADLINE;
    let mut rows = Vec::new();
    let mut final_message = None;
    while Instant::now() < deadline {
        match tokio::time::timeout(PUSH_QUIET, rx.recv()).await {
            Ok(Some(PushEvent::Row { row, tombstone, .. })) => rows.push(ActualRow {
                columns: row.iter().map(value_to_json).collect::<Vec<Json>>(),
                tombstone,
            }),
            Ok(Some(PushEvent::Skipped { .. })) => {}
            Ok(Some(PushEvent::Failed { message, .. })) => {
                final_message = Some(format!("Error: {message}"));
                break;
            }
            Ok(Some(PushEvent::LimitReached)) => {
                final_message = Some("Limit Reached".to_string());
                break;
            }
            Ok(None) | Err(_) => break,
        }
    }
    QueryResponse {
        header,
        types,
        rows,
        final_message,
    }
}

/// A result column as a query header shows it.
#[derive(Debug, Clone)]
pub(crate) struct HeaderColumn {
    pub name: String,
    pub ty: DataType,
    pub key: bool,
    /// A header column of the source read.
    pub header: Option<sluice_sql::HeaderSpec>,
}

/// A query header's schema as ksqlDB writes it: "`ID` STRING KEY, `COUNT` BIGINT". Pull
/// queries on tables mark key columns with KEY (also a table's PRIMARY KEY) and header
/// columns with HEADER('k') or HEADERS, listing them after the keys as ksqlDB's schema
/// does; push queries (and pull queries on streams) mark neither.
pub(crate) fn header_schema(columns: &[HeaderColumn], mark_keys: bool) -> String {
    let text = |c: &HeaderColumn| {
        let mark = match (&c.header, c.key) {
            _ if !mark_keys => String::new(),
            (_, true) => " KEY".to_string(),
            (Some(sluice_sql::HeaderSpec::Key(k)), false) => format!(" HEADER('{k}')"),
            (Some(sluice_sql::HeaderSpec::All), false) => " HEADERS".to_string(),
            (None, false) => String::new(),
        };
        format!("`{}` {}{mark}", c.name, c.ty)
    };
    let mut ordered: Vec<&HeaderColumn> = columns.iter().collect();
    if mark_keys {
        let leading_keys = columns.iter().take_while(|c| c.key).count();
        ordered[leading_keys..].sort_by_key(|c| c.header.is_none());
    }
    ordered.into_iter().map(text).collect::<Vec<_>>().join(", ")
}

/// Compares the keys listed in `expected` with `actual`; `name|starts_with` matches a
/// prefix of a string. `values` compares one listed key's values.
pub(crate) fn listed_keys_match(
    expected: &Map<String, Json>,
    actual: &Map<String, Json>,
    values: &dyn Fn(&str, &Json, &Json) -> bool,
) -> Result<(), String> {
    for (key, want) in expected {
        if let Some(name) = key.strip_suffix("|starts_with") {
            let got = actual.get(name).and_then(Json::as_str);
            let prefix = want.as_str().unwrap_or_default();
            if !got.is_some_and(|g| g.starts_with(prefix)) {
                return Err(format!(
                    "{name}: expected a value starting with {want}, got {}",
                    got.map_or("nothing".to_string(), |g| format!("\"{g}\""))
                ));
            }
            continue;
        }
        match actual.get(key.as_str()) {
            Some(got) if values(key, want, got) => {}
            Some(got) => return Err(format!("{key}: expected {want}, got {got}")),
            None => return Err(format!("{key}: expected {want}, got nothing")),
        }
    }
    Ok(())
}

fn plain_values(_: &str, want: &Json, got: &Json) -> bool {
    crate::compare::matches(want, got, None, None)
}

fn row_object(row: &ActualRow) -> Map<String, Json> {
    let mut m = Map::new();
    m.insert("columns".into(), Json::Array(row.columns.clone()));
    m.insert("tombstone".into(), Json::Bool(row.tombstone));
    m
}

/// Whether an expected `{"row": {...}}` payload matches an actual row: columns compare
/// by their SQL types; tombstone only when listed.
fn row_matches(expected: &Map<String, Json>, row: &ActualRow, types: &[DataType]) -> bool {
    let values = |key: &str, want: &Json, got: &Json| -> bool {
        match (key, want, got) {
            ("columns", Json::Array(w), Json::Array(g)) => {
                w.len() == g.len()
                    && w.iter()
                        .zip(g)
                        .enumerate()
                        .all(|(i, (w, g))| crate::compare::matches(w, g, types.get(i), None))
            }
            _ => plain_values(key, want, got),
        }
    };
    listed_keys_match(expected, &row_object(row), &values).is_ok()
}

/// Matches expected rows to actual ones: in order, or as a multiset (each actual row used
/// once). Returns a description of the first expected row left unmatched.
pub(crate) fn match_rows(
    expected: &[&Map<String, Json>],
    actual: &[ActualRow],
    types: &[DataType],
    verify_order: bool,
) -> Result<(), String> {
    if expected.len() != actual.len() {
        return Err(format!(
            "expected {} rows, got {}",
            expected.len(),
            actual.len()
        ));
    }
    if verify_order {
        for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
            if !row_matches(e, a, types) {
                return Err(format!(
                    "row {i} differs: expected {}, got {}",
                    Json::Object((*e).clone()),
                    Json::Object(row_object(a))
                ));
            }
        }
        return Ok(());
    }
    let mut used = vec![false; actual.len()];
    for e in expected {
        let hit = actual
            .iter()
            .enumerate()
            .find(|(i, a)| !used[*i] && row_matches(e, a, types));
        match hit {
            Some((i, _)) => used[i] = true,
            None => {
                return Err(format!(
                    "no actual row matches expected {}",
                    Json::Object((*e).clone())
                ));
            }
        }
    }
    Ok(())
}

fn check_query(
    expected: &[Json],
    actual: &QueryResponse,
    verify_order: bool,
) -> Result<(), String> {
    let mut rows = Vec::new();
    for item in expected {
        if let Some(h) = item.get("header").and_then(Json::as_object) {
            listed_keys_match(h, &actual.header, &plain_values)
                .map_err(|e| format!("header {e}"))?;
        } else if let Some(r) = item.get("row").and_then(Json::as_object) {
            rows.push(r);
        } else if let Some(m) = item.get("finalMessage") {
            let want = m.as_str().unwrap_or_default();
            if actual.final_message.as_deref() != Some(want) {
                return Err(format!(
                    "expected final message \"{want}\", got {}",
                    actual
                        .final_message
                        .as_ref()
                        .map_or("none".to_string(), |m| format!("\"{m}\""))
                ));
            }
        } else {
            return Err(format!("unknown query response element {item}"));
        }
    }
    match_rows(&rows, &actual.rows, &actual.types, verify_order)
}

fn describe_actual(a: &Actual) -> String {
    match a {
        Actual::Admin(m) => format!("admin {}", Json::Object(m.clone())),
        Actual::Query(q) => {
            let mut lines = vec![format!("query {}", Json::Object(q.header.clone()))];
            lines.extend(
                q.rows
                    .iter()
                    .map(|r| format!("  row {}", Json::Object(row_object(r)))),
            );
            if let Some(m) = &q.final_message {
                lines.push(format!("  finalMessage {m}"));
            }
            lines.join("\n")
        }
    }
}

/// ksqlDB's runner needs at least as many responses as expected and compares that
/// prefix; extra responses are not an error.
pub(crate) fn check_responses(
    expected: &[Json],
    actual: &[Actual],
    verify_order: bool,
) -> Result<(), String> {
    let listing = || {
        actual
            .iter()
            .map(describe_actual)
            .collect::<Vec<_>>()
            .join("\n")
    };
    if actual.len() < expected.len() {
        return Err(format!(
            "expected {} responses, got {}\nactual:\n{}",
            expected.len(),
            actual.len(),
            listing()
        ));
    }
    for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
        let result = match (e.get("admin").and_then(Json::as_object), e.get("query"), a) {
            (Some(exp), _, Actual::Admin(got)) => listed_keys_match(exp, got, &plain_values),
            (None, Some(Json::Array(items)), Actual::Query(got)) => {
                check_query(items, got, verify_order)
            }
            _ => Err(format!("expected {e}, got {}", describe_actual(a))),
        };
        if let Err(why) = result {
            return Err(format!("response {i}: {why}\nactual:\n{}", listing()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Json) -> Map<String, Json> {
        match v {
            Json::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn row(columns: Json, tombstone: bool) -> ActualRow {
        ActualRow {
            columns: columns.as_array().cloned().unwrap_or_default(),
            tombstone,
        }
    }

    #[test]
    fn header_schema_marks_keys_only_for_pull() {
        let col = |name: &str, ty: DataType, key: bool| HeaderColumn {
            name: name.into(),
            ty,
            key,
            header: None,
        };
        let cols = vec![
            col("ID", DataType::String, true),
            col("COUNT", DataType::BigInt, false),
            col(
                "S",
                DataType::Struct(vec![("a".into(), DataType::Int)]),
                false,
            ),
        ];
        assert_eq!(
            header_schema(&cols, true),
            "`ID` STRING KEY, `COUNT` BIGINT, `S` STRUCT<`a` INTEGER>"
        );
        assert_eq!(
            header_schema(&cols, false),
            "`ID` STRING, `COUNT` BIGINT, `S` STRUCT<`a` INTEGER>"
        );
        // Header columns follow the keys, marked, in pull queries on tables only.
        let mut with_header = vec![
            col("K", DataType::Int, true),
            col("TEXT", DataType::String, false),
            col("H", DataType::Bytes, false),
        ];
        with_header[2].header = Some(sluice_sql::HeaderSpec::Key("abc".into()));
        assert_eq!(
            header_schema(&with_header, true),
            "`K` INTEGER KEY, `H` BYTES HEADER('abc'), `TEXT` STRING"
        );
        assert_eq!(
            header_schema(&with_header, false),
            "`K` INTEGER, `TEXT` STRING, `H` BYTES"
        );
    }

    #[test]
    fn only_listed_keys_compare_and_starts_with_matches_a_prefix() {
        let actual = obj(json!({"queryId": "transient_7", "schema": "`K` STRING"}));
        let same = obj(json!({"schema": "`K` STRING"}));
        assert!(listed_keys_match(&same, &actual, &plain_values).is_ok());
        let prefix = obj(json!({"queryId|starts_with": "transient_"}));
        assert!(listed_keys_match(&prefix, &actual, &plain_values).is_ok());
        let other = obj(json!({"queryId|starts_with": "SCALABLE_PUSH_QUERY"}));
        assert!(listed_keys_match(&other, &actual, &plain_values).is_err());
        let missing = obj(json!({"statementText": "x"}));
        assert!(listed_keys_match(&missing, &actual, &plain_values).is_err());
        // The key is matched literally too: a `|starts_with` suffix is not a plain key.
        let exact = obj(json!({"queryId": "transient_"}));
        assert!(listed_keys_match(&exact, &actual, &plain_values).is_err());
    }

    #[test]
    fn rows_are_a_multiset_unless_order_is_verified() {
        let types = [DataType::String, DataType::BigInt];
        let e1 = obj(json!({"columns": ["a", 1]}));
        let e2 = obj(json!({"columns": ["b", 2]}));
        let expected = [&e1, &e2];
        let swapped = [row(json!(["b", 2]), false), row(json!(["a", 1]), false)];
        assert!(match_rows(&expected, &swapped, &types, false).is_ok());
        assert!(match_rows(&expected, &swapped, &types, true).is_err());
        // Each actual row is used once.
        let twice = [row(json!(["a", 1]), false), row(json!(["a", 1]), false)];
        assert!(match_rows(&expected, &twice, &types, false).is_err());
        // The count is exact.
        assert!(match_rows(&expected, &swapped[..1], &types, false).is_err());
    }

    #[test]
    fn row_values_use_column_types_and_tombstone_only_when_listed() {
        let types = [DataType::Decimal {
            precision: 4,
            scale: 2,
        }];
        let e: Map<String, Json> =
            serde_json::from_str(r#"{"columns": [12.30]}"#).unwrap_or_default();
        let scale_lost = row(serde_json::from_str("[12.3]").unwrap_or_default(), true);
        assert!(match_rows(&[&e], &[scale_lost], &types, true).is_err());
        let exact = row(serde_json::from_str("[12.30]").unwrap_or_default(), true);
        assert!(match_rows(&[&e], std::slice::from_ref(&exact), &types, true).is_ok());
        let not_tombstone: Map<String, Json> =
            serde_json::from_str(r#"{"columns": [12.30], "tombstone": false}"#).unwrap_or_default();
        assert!(match_rows(&[&not_tombstone], &[exact], &types, true).is_err());
        let doubles = [DataType::Double];
        let d = obj(json!({"columns": [0.3]}));
        assert!(
            match_rows(
                &[&d],
                &[row(json!([0.30000000000000004]), false)],
                &doubles,
                true
            )
            .is_ok()
        );
    }

    #[test]
    fn responses_compare_kinds_in_order_and_allow_extra() {
        let admin = Actual::Admin(obj(json!({"@type": "currentStatus"})));
        let query = Actual::Query(QueryResponse {
            header: obj(json!({"queryId": "transient_1", "schema": "`K` STRING"})),
            types: vec![DataType::String],
            rows: vec![row(json!(["x"]), false)],
            final_message: Some("Limit Reached".into()),
        });
        let expected = vec![
            json!({"admin": {"@type": "currentStatus"}}),
            json!({"query": [{"header": {"schema": "`K` STRING"}}, {"row": {"columns": ["x"]}}, {"finalMessage": "Limit Reached"}]}),
        ];
        let actual = vec![admin.clone(), query.clone()];
        assert!(check_responses(&expected, &actual, false).is_ok());
        assert!(check_responses(&expected, std::slice::from_ref(&admin), false).is_err());
        assert!(check_responses(&expected, &[query.clone(), admin.clone()], false).is_err());
        let mut extra = actual.clone();
        extra.push(admin.clone());
        assert!(check_responses(&expected, &extra, false).is_ok());
        let wrong_final = vec![
            json!({"query": [{"finalMessage": "Query Completed"}, {"row": {"columns": ["x"]}}]}),
        ];
        assert!(check_responses(&wrong_final, &[query], false).is_err());
    }

    #[test]
    fn cases_with_queries_or_rest_expectations_are_rqtt() {
        assert!(is_rqtt(
            &json!({"statements": ["CREATE STREAM S (A INT) WITH (kafka_topic='t', value_format='JSON');", "  select * from S;"]})
        ));
        assert!(is_rqtt(&json!({"statements": [], "expectedError": {}})));
        assert!(!is_rqtt(
            &json!({"statements": ["INSERT INTO S (A) VALUES (1);"], "outputs": []})
        ));
    }

    #[test]
    fn statement_errors_are_http_400_and_faults_500() {
        assert_eq!(http_status(ErrorCode::InvalidArgument), 400);
        assert_eq!(http_status(ErrorCode::NotFound), 400);
        assert_eq!(http_status(ErrorCode::Internal), 500);
    }
}
