//! Loading QTT files into cases, and running one case.

use crate::compare::{Numbers, describe_schema, normalize_schema, record_matches};
use crate::{RunnerError, lenient};
use base64::Engine as _;
use serde_json::Value as Json;
use sluice_common::{FormatKind, SourceDef, SourceKind};
use sluice_database::Executor;
use sluice_format::{
    decode_key, decode_value, encode_key, encode_value, json_to_value, value_to_json,
};
use sluice_storage::{EmbeddedLog, Log, Record, StoredRecord, Txn};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One runnable case: a QTT test with its `format`/`config` variant applied.
#[derive(Debug, Clone)]
pub struct Case {
    /// `file.json: test name` plus ` [VARIANT]` for format/config expansions.
    pub id: String,
    pub file: String,
    pub name: String,
    pub test: Json,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Passed,
    Failed(String),
    Skipped(String),
}

#[derive(Debug, Clone)]
pub struct CaseOutcome {
    pub id: String,
    pub file: String,
    pub name: String,
    pub status: Status,
    pub millis: u64,
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), RunnerError> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| RunnerError::Read {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            collect_files(&e, out)?;
        }
    } else if path.extension().is_some_and(|e| e == "json") {
        out.push(path.to_path_buf());
    } else if !path.exists() {
        return Err(RunnerError::Read {
            path: path.to_path_buf(),
            message: "no such file or directory".into(),
        });
    }
    Ok(())
}

/// Loads every case of the given files and folders, expanding `format` and `config`.
pub fn load_cases(paths: &[PathBuf]) -> Result<Vec<Case>, RunnerError> {
    let mut files = Vec::new();
    for p in paths {
        collect_files(p, &mut files)?;
    }
    let mut cases = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| RunnerError::Read {
            path: f.clone(),
            message: e.to_string(),
        })?;
        let doc: Json = serde_json::from_str(&lenient::strip_comments(&text)).map_err(|e| {
            RunnerError::Read {
                path: f.clone(),
                message: format!("invalid JSON: {e}"),
            }
        })?;
        let file = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(tests) = doc.get("tests").and_then(Json::as_array) else {
            continue;
        };
        for t in tests {
            let name = t
                .get("name")
                .and_then(Json::as_str)
                .unwrap_or("unnamed")
                .to_string();
            let base = format!("{file}: {name}");
            let variants: Vec<(&str, String)> = ["format", "config"]
                .iter()
                .filter_map(|k| t.get(*k).and_then(Json::as_array).map(|a| (*k, a)))
                .flat_map(|(k, a)| {
                    a.iter()
                        .filter_map(|v| v.as_str())
                        .map(move |v| (k, v.to_string()))
                })
                .collect();
            if variants.is_empty() {
                cases.push(Case {
                    id: base,
                    file: file.clone(),
                    name,
                    test: t.clone(),
                });
                continue;
            }
            for (kind, v) in variants {
                let placeholder = if kind == "format" {
                    "{FORMAT}"
                } else {
                    "{CONFIG}"
                };
                let text = t.to_string().replace(placeholder, &v);
                let test: Json = serde_json::from_str(&text).unwrap_or_else(|_| t.clone());
                cases.push(Case {
                    id: format!("{base} [{v}]"),
                    file: file.clone(),
                    name: name.clone(),
                    test,
                });
            }
        }
    }
    Ok(cases)
}

pub async fn run_case(case: &Case) -> CaseOutcome {
    let start = Instant::now();
    let status = match case.test.get("enabled") {
        Some(Json::Bool(false)) => Status::Skipped("disabled in the corpus".into()),
        _ => match run_inner(&case.test).await {
            Ok(()) => Status::Passed,
            Err(CaseError::Fail(m)) => Status::Failed(m),
            Err(CaseError::Skip(m)) => Status::Skipped(m),
        },
    };
    CaseOutcome {
        id: case.id.clone(),
        file: case.file.clone(),
        name: case.name.clone(),
        status,
        millis: start.elapsed().as_millis() as u64,
    }
}

/// A case's "properties", as the request properties ksqlDB's harness sends with every
/// statement and query.
pub(crate) fn case_properties(test: &Json) -> std::collections::HashMap<String, String> {
    test.get("properties")
        .and_then(Json::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) enum CaseError {
    Fail(String),
    Skip(String),
}

pub(crate) fn fail<T>(m: impl Into<String>) -> Result<T, CaseError> {
    Err(CaseError::Fail(m.into()))
}

async fn run_inner(test: &Json) -> Result<(), CaseError> {
    let dir = tempfile::tempdir().map_err(|e| CaseError::Skip(format!("no temp dir: {e}")))?;
    let log = {
        let path = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || EmbeddedLog::open(&path))
            .await
            .map_err(|e| CaseError::Fail(e.to_string()))?
            .map_err(|e| CaseError::Fail(format!("cannot open storage: {e}")))?
    };
    let mut exec = Executor::open(
        Arc::new(log),
        sluice_plan::PullLimits {
            max_rows: 1_000_000,
            ..sluice_plan::PullLimits::default()
        },
    )
    .await
    .map_err(|e| CaseError::Fail(e.to_string()))?;
    // ksqlDB's test server enables scalable push queries, and its push queries read from
    // the earliest offset unless a case asks for the latest.
    exec.query_config = sluice_planner::QueryConfig {
        push_v2_enabled: true,
        offset_reset_latest: false,
        ..sluice_planner::QueryConfig::default()
    };
    let result = run_with(&exec, test).await;
    exec.engine.shutdown().await;
    drop(exec);
    result
}

async fn run_with(exec: &Executor, test: &Json) -> Result<(), CaseError> {
    if crate::rqtt::is_rqtt(test) {
        return crate::rqtt::run_rqtt(exec, test).await;
    }
    let expected_error = test.get("expectedException");
    let statements: Vec<&str> = test
        .get("statements")
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    // Case properties (format defaults, topic prefix, ...) apply to every statement.
    let properties = case_properties(test);
    // ksqlDB's harness runs the statements as one script, one per line, so error positions
    // count lines from the start of the script: each statement is parsed where it sits.
    let mut script_line = 0;
    for (i, sql) in statements.iter().enumerate() {
        let placed = format!("{}{sql}", "\n".repeat(script_line));
        script_line += sql.matches('\n').count() + 1;
        let result = match exec.parse(&placed) {
            Err(e) => Err(sluice_database::ExecError::from(e)),
            Ok(stmts) => {
                let mut r = Ok(());
                for s in &stmts {
                    if let Err(e) = exec.execute_with(s, &properties).await {
                        r = Err(e);
                        break;
                    }
                    // ksqlDB replaces a query before the next statement; here a
                    // replacement takes over in the background, so wait for it.
                    exec.await_replacements(std::time::Duration::from_secs(30))
                        .await;
                }
                r
            }
        };
        if let Err(e) = result {
            return match expected_error {
                Some(exp) => {
                    let want = exp.get("message").and_then(Json::as_str).unwrap_or("");
                    // ksqlDB's statement errors end with the statement they refer to.
                    let full = format!("{}\nStatement: {sql}", e.message);
                    if full.contains(want) {
                        Ok(())
                    } else {
                        fail(format!(
                            "statement {}: {sql}\nexpected an error containing: {want}\nactual error: {}",
                            i + 1,
                            e.message
                        ))
                    }
                }
                None => fail(format!("statement {} failed: {sql}\n{}", i + 1, e.message)),
            };
        }
    }
    produce_inputs(exec, test).await?;
    settle(exec).await?;
    if let Some(exp) = expected_error {
        return fail(format!(
            "expected an error containing: {}\nbut every statement succeeded",
            exp.get("message").and_then(Json::as_str).unwrap_or("(any)")
        ));
    }
    check_outputs(exec, test)?;
    check_post(exec, test)
}

/// The source whose formats describe a topic's bytes. Inputs prefer the source declared
/// over the topic; outputs (`written`) the one a query writes.
fn source_for_topic(exec: &Executor, topic: &str, written: bool) -> Option<SourceDef> {
    let all: Vec<SourceDef> = exec
        .catalog_snapshot()
        .into_values()
        .filter(|d| d.topic == topic)
        .collect();
    all.iter()
        .find(|d| d.written_by.is_some() == written)
        .or_else(|| all.first())
        .cloned()
}

fn raw_bytes(j: &Json) -> Vec<u8> {
    match j {
        Json::String(s) => s.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

fn encode_input_key(def: Option<&SourceDef>, key: &Json) -> Result<Option<Vec<u8>>, String> {
    if key.is_null() {
        return Ok(None);
    }
    let Some(def) = def else {
        return Ok(Some(raw_bytes(key)));
    };
    let keys = def.schema.keys();
    match def.key_format.kind {
        FormatKind::Kafka if keys.len() == 1 => {
            let v = json_to_value(key, &keys[0].data_type)
                .map_err(|e| format!("input key {key}: {e}"))?;
            encode_key(&def.key_format, keys, &[v]).map_err(|e| e.to_string())
        }
        FormatKind::Json => Ok(Some(key.to_string().into_bytes())),
        _ => Ok(Some(raw_bytes(key))),
    }
}

/// A test record's `{"start", "end", "type": "time"|"session"}`.
fn input_window(w: &Json) -> Result<(sluice_common::WindowSpec, i64, i64), String> {
    let start = w
        .get("start")
        .and_then(Json::as_i64)
        .ok_or("window without start")?;
    let end = w
        .get("end")
        .and_then(Json::as_i64)
        .ok_or("window without end")?;
    let kind = match w.get("type").and_then(Json::as_str) {
        Some(t) if t.eq_ignore_ascii_case("session") => sluice_common::WindowKind::Session,
        _ => sluice_common::WindowKind::Tumbling,
    };
    Ok((
        sluice_common::WindowSpec {
            kind,
            size_ms: Some(end - start),
        },
        start,
        end,
    ))
}

fn encode_input_value(def: Option<&SourceDef>, value: &Json) -> Result<Option<Vec<u8>>, String> {
    if value.is_null() {
        return Ok(None);
    }
    let Some(def) = def else {
        return Ok(Some(raw_bytes(value)));
    };
    match def.value_format.kind {
        FormatKind::Json => Ok(Some(value.to_string().into_bytes())),
        FormatKind::Kafka => match def.payload_columns().first() {
            Some(c) => {
                let v = json_to_value(value, &c.data_type)
                    .map_err(|e| format!("input value {value}: {e}"))?;
                encode_value(&def.value_format, def.payload_columns(), Some(&[v]))
                    .map_err(|e| e.to_string())
            }
            None => Ok(None),
        },
        _ => Ok(Some(raw_bytes(value))),
    }
}

pub(crate) async fn produce_inputs(exec: &Executor, test: &Json) -> Result<(), CaseError> {
    let Some(inputs) = test.get("inputs").and_then(Json::as_array) else {
        return Ok(());
    };
    let mut txn = Txn::new();
    for (i, rec) in inputs.iter().enumerate() {
        let topic_name = rec.get("topic").and_then(Json::as_str).unwrap_or_default();
        let def = source_for_topic(exec, topic_name, false);
        let topic = match exec.log().topic(topic_name) {
            Some(t) => t,
            None => exec
                .log()
                .create_topic(topic_name, 1)
                .map_err(|e| CaseError::Fail(e.to_string()))?,
        };
        let mut key = encode_input_key(def.as_ref(), rec.get("key").unwrap_or(&Json::Null))
            .map_err(|e| CaseError::Fail(format!("input {i}: {e}")))?;
        // A windowed record's key carries its window, laid out as its type says.
        if let (Some(w), Some(bytes)) = (rec.get("window"), key.as_mut()) {
            let (spec, start, end) =
                input_window(w).map_err(|e| CaseError::Fail(format!("input {i}: {e}")))?;
            sluice_format::append_window(bytes, &spec, start, end);
        }
        let value = encode_input_value(def.as_ref(), rec.get("value").unwrap_or(&Json::Null))
            .map_err(|e| CaseError::Fail(format!("input {i}: {e}")))?;
        let headers =
            rec.get("headers")
                .and_then(Json::as_array)
                .map(|hs| {
                    hs.iter()
                        .map(|h| {
                            let k = h
                                .get("KEY")
                                .and_then(Json::as_str)
                                .unwrap_or_default()
                                .to_string();
                            let v = h.get("VALUE").and_then(Json::as_str).and_then(|b| {
                                base64::engine::general_purpose::STANDARD.decode(b).ok()
                            });
                            (k, v)
                        })
                        .collect()
                })
                .unwrap_or_default();
        let timestamp = rec.get("timestamp").and_then(Json::as_i64).unwrap_or(0);
        let partition = topic.partition_for(key.as_deref());
        txn.append(
            &topic,
            partition,
            Record {
                key,
                value,
                timestamp,
                headers,
            },
        );
    }
    exec.log()
        .submit(txn)
        .wait()
        .await
        .map_err(|e| CaseError::Fail(e.to_string()))?;
    Ok(())
}

/// Waits until every persistent query and materializer has consumed its sources, and
/// stays so (a query's output may feed another).
pub(crate) async fn settle(exec: &Executor) -> Result<(), CaseError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let tables: Vec<u64> = exec
        .catalog_snapshot()
        .values()
        .filter(|d| d.kind == SourceKind::Table)
        .map(|d| d.id)
        .collect();
    let mut quiet = 0;
    while quiet < 3 {
        let busy = exec.engine.statuses().iter().any(|s| s.lag > 0)
            || tables
                .iter()
                .any(|id| exec.engine.materializer_lag(*id) > 0);
        quiet = if busy { 0 } else { quiet + 1 };
        if Instant::now() > deadline {
            return fail("persistent queries did not catch up within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(if busy { 2 } else { 5 })).await;
    }
    Ok(())
}

fn read_all(exec: &Executor, topic: &str) -> Result<Vec<StoredRecord>, CaseError> {
    let Some(t) = exec.log().topic(topic) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for p in 0..t.partitions {
        out.extend(
            exec.log()
                .read(&t, p, 0, usize::MAX)
                .map_err(|e| CaseError::Fail(e.to_string()))?,
        );
    }
    // In the order they were written, across partitions, as ksqlDB's harness reads them.
    out.sort_by_key(|r| r.seq);
    Ok(out)
}

fn actual_key(def: Option<&SourceDef>, bytes: Option<&[u8]>) -> Json {
    let Some(b) = bytes else { return Json::Null };
    let Some(def) = def else {
        return Json::String(String::from_utf8_lossy(b).into_owned());
    };
    match def.key_format.kind {
        FormatKind::Json => serde_json::from_slice(b)
            .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(b).into_owned())),
        FormatKind::Kafka => match decode_key(&def.key_format, def.schema.keys(), Some(b)) {
            Ok(v) if v.len() == 1 => value_to_json(&v[0]),
            _ => Json::String(String::from_utf8_lossy(b).into_owned()),
        },
        _ => Json::String(String::from_utf8_lossy(b).into_owned()),
    }
}

fn actual_value(def: Option<&SourceDef>, bytes: Option<&[u8]>) -> Json {
    let Some(b) = bytes else { return Json::Null };
    let text = || Json::String(String::from_utf8_lossy(b).into_owned());
    let Some(def) = def else {
        return serde_json::from_slice(b).unwrap_or_else(|_| text());
    };
    match def.value_format.kind {
        FormatKind::Json => serde_json::from_slice(b).unwrap_or_else(|_| text()),
        FormatKind::Kafka => {
            match decode_value(&def.value_format, def.payload_columns(), Some(b)) {
                Ok(Some(v)) if v.len() == 1 => value_to_json(&v[0]),
                _ => text(),
            }
        }
        _ => text(),
    }
}

/// How the harness's deserializer for a format types numbers: JSON text (and bytes no
/// source describes, which it reads as JSON) gives BigDecimals for fractions.
fn numbers(format: Option<&FormatKind>) -> Numbers {
    match format {
        None | Some(FormatKind::Json) => Numbers::JsonText,
        Some(_) => Numbers::Typed,
    }
}

pub(crate) fn check_outputs(exec: &Executor, test: &Json) -> Result<(), CaseError> {
    let Some(outputs) = test.get("outputs").and_then(Json::as_array) else {
        return Ok(());
    };
    let mut topics: Vec<&str> = Vec::new();
    for o in outputs {
        let t = o.get("topic").and_then(Json::as_str).unwrap_or_default();
        if !topics.contains(&t) {
            topics.push(t);
        }
    }
    for topic in topics {
        let expected: Vec<&Json> = outputs
            .iter()
            .filter(|o| o.get("topic").and_then(Json::as_str) == Some(topic))
            .collect();
        let def = source_for_topic(exec, topic, true);
        let actual = read_all(exec, topic)?;
        let shown: Vec<String> = actual
            .iter()
            .map(|r| {
                format!(
                    "key={} value={} ts={}",
                    actual_key(def.as_ref(), r.record.key.as_deref()),
                    actual_value(def.as_ref(), r.record.value.as_deref()),
                    r.record.timestamp
                )
            })
            .collect();
        let listing = || {
            format!(
                "expected on {topic}:\n  {}\nactual:\n  {}",
                expected
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n  "),
                shown.join("\n  ")
            )
        };
        if expected.len() != actual.len() {
            return fail(format!(
                "topic {topic}: expected {} records, got {}\n{}",
                expected.len(),
                actual.len(),
                listing()
            ));
        }
        for (i, (e, a)) in expected.iter().zip(&actual).enumerate() {
            // A windowed key: the window must match, then the key within it.
            let mut key_bytes = a.record.key.as_deref();
            let spec = def.as_ref().and_then(|d| d.window);
            match (e.get("window"), spec, key_bytes) {
                (None, None, _) => {}
                (Some(w), Some(spec), Some(bytes)) => {
                    let (inner, start, end) =
                        sluice_format::split_window(bytes, &spec).map_err(|err| {
                            CaseError::Fail(format!("topic {topic} record {i}: {err}"))
                        })?;
                    let kind = if spec.kind == sluice_common::WindowKind::Session {
                        "session"
                    } else {
                        "time"
                    };
                    let want = (
                        w.get("start").and_then(Json::as_i64),
                        w.get("end").and_then(Json::as_i64),
                        w.get("type")
                            .and_then(Json::as_str)
                            .map(str::to_ascii_lowercase),
                    );
                    if want != (Some(start), Some(end), Some(kind.to_string())) {
                        return fail(format!(
                            "topic {topic} record {i}: window differs: expected {w}, got {{start: {start}, end: {end}, type: {kind}}}\n{}",
                            listing()
                        ));
                    }
                    key_bytes = Some(inner);
                }
                (w, spec, _) => {
                    return fail(format!(
                        "topic {topic} record {i}: expected window {}, but the topic's key is {}",
                        w.map_or("none".to_string(), |w| w.to_string()),
                        if spec.is_some() {
                            "windowed"
                        } else {
                            "not windowed"
                        }
                    ));
                }
            }
            let ak = actual_key(def.as_ref(), key_bytes);
            let ek = e.get("key").unwrap_or(&Json::Null);
            if !record_matches(ek, &ak, numbers(def.as_ref().map(|d| &d.key_format.kind))) {
                return fail(format!(
                    "topic {topic} record {i}: key differs: expected {ek}, got {ak}\n{}",
                    listing()
                ));
            }
            let av = actual_value(def.as_ref(), a.record.value.as_deref());
            let ev = e.get("value").unwrap_or(&Json::Null);
            if !record_matches(ev, &av, numbers(def.as_ref().map(|d| &d.value_format.kind))) {
                return fail(format!(
                    "topic {topic} record {i}: value differs: expected {ev}, got {av}\n{}",
                    listing()
                ));
            }
            if let Some(ts) = e.get("timestamp").and_then(Json::as_i64)
                && ts != a.record.timestamp
            {
                return fail(format!(
                    "topic {topic} record {i}: timestamp differs: expected {ts}, got {}\n{}",
                    a.record.timestamp,
                    listing()
                ));
            }
            if let Some(hs) = e.get("headers").and_then(Json::as_array) {
                let got: Vec<Json> = a
                    .record
                    .headers
                    .iter()
                    .map(|(k, v)| serde_json::json!({"KEY": k, "VALUE": v.as_ref().map(|b| base64::engine::general_purpose::STANDARD.encode(b))}))
                    .collect();
                if hs != &got {
                    return fail(format!(
                        "topic {topic} record {i}: headers differ: expected {hs:?}, got {got:?}"
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_post(exec: &Executor, test: &Json) -> Result<(), CaseError> {
    let Some(sources) = test
        .get("post")
        .and_then(|p| p.get("sources"))
        .and_then(Json::as_array)
    else {
        return Ok(());
    };
    for s in sources {
        let name = s.get("name").and_then(Json::as_str).unwrap_or_default();
        let Some(def) = exec
            .source(name)
            .or_else(|| exec.source(&name.to_ascii_uppercase()))
        else {
            return fail(format!("post: source {name} does not exist"));
        };
        if let Some(kind) = s.get("type").and_then(Json::as_str) {
            let actual = if def.kind == SourceKind::Stream {
                "stream"
            } else {
                "table"
            };
            if !kind.eq_ignore_ascii_case(actual) {
                return fail(format!("post: {name} is a {actual}, expected a {kind}"));
            }
        }
        if let Some(schema) = s.get("schema").and_then(Json::as_str) {
            let actual = describe_schema(&def);
            if normalize_schema(schema) != normalize_schema(&actual) {
                return fail(format!(
                    "post: schema of {name} differs:\nexpected {schema}\nactual   {actual}"
                ));
            }
        }
        for (field, actual) in [
            ("keyFormat", &def.key_format.kind),
            ("valueFormat", &def.value_format.kind),
        ] {
            if let Some(f) = s
                .get(field)
                .and_then(|f| f.get("format"))
                .and_then(Json::as_str)
                && !f.eq_ignore_ascii_case(&actual.to_string())
                && !(f.eq_ignore_ascii_case("JSON_SR") && *actual == FormatKind::Json)
            {
                return fail(format!("post: {field} of {name} is {actual}, expected {f}"));
            }
        }
    }
    Ok(())
}
