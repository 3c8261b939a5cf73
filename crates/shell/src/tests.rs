//! Session tests against an in-process mock of the Sluice service, checking what the shell
//! sends (one statement per call, session properties) and what it prints.

use std::collections::HashMap;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use sluice_proto::v1::sluice_server::{Sluice, SluiceServer};
use sluice_proto::v1::*;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::*;

type Responses<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Every request the mock received: (rpc, sql, properties).
type Log = Arc<Mutex<Vec<(String, String, HashMap<String, String>)>>>;

struct Mock {
    log: Log,
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(value::Kind::String(s.into())),
    }
}
fn bigint(i: i64) -> Value {
    Value {
        kind: Some(value::Kind::Bigint(i)),
    }
}
fn col(name: &str, ty: &str) -> Column {
    Column {
        name: name.into(),
        r#type: ty.into(),
        role: String::new(),
    }
}
fn msg(kind: query_response::Kind) -> Result<QueryResponse, Status> {
    Ok(QueryResponse { kind: Some(kind) })
}

#[tonic::async_trait]
impl Sluice for Mock {
    async fn execute(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<ExecuteResponse>, Status> {
        let req = request.into_inner();
        self.log
            .lock()
            .map_err(|_| Status::internal("poisoned"))?
            .push(("execute".into(), req.sql.clone(), req.properties));
        if req.sql.contains("BAD") {
            return Err(Status::invalid_argument("unexpected token BAD (line 1:1)"));
        }
        let result = if req.sql.starts_with("DESCRIBE") {
            StatementResult {
                statement: req.sql.clone(),
                columns: vec![col("Field", "STRING"), col("Type", "STRING")],
                rows: ["USER_ID", "VIEWS"]
                    .iter()
                    .map(|f| Row {
                        values: vec![string(f), string("STRING")],
                    })
                    .collect(),
                ..Default::default()
            }
        } else if req.sql.starts_with("SHOW") {
            StatementResult {
                statement: req.sql.clone(),
                columns: vec![col("Stream Name", "STRING")],
                rows: vec![Row {
                    values: vec![string("PAGEVIEWS")],
                }],
                ..Default::default()
            }
        } else {
            StatementResult {
                statement: req.sql.clone(),
                message: "Stream PAGEVIEWS created".into(),
                ..Default::default()
            }
        };
        Ok(Response::new(ExecuteResponse {
            results: vec![result],
        }))
    }

    type QueryStream = Responses<QueryResponse>;

    async fn query(
        &self,
        request: Request<QueryRequest>,
    ) -> Result<Response<Self::QueryStream>, Status> {
        let req = request.into_inner();
        self.log
            .lock()
            .map_err(|_| Status::internal("poisoned"))?
            .push(("query".into(), req.sql.clone(), req.properties));
        if req.sql.contains("MISSING") {
            return Err(Status::not_found(
                "Stream MISSING does not exist (line 1:15)",
            ));
        }
        let push = req.sql.contains("EMIT CHANGES");
        let header = QueryHeader {
            query_id: if push {
                "transient_1".into()
            } else {
                String::new()
            },
            columns: vec![col("USER_ID", "STRING"), col("VIEWS", "BIGINT")],
            push,
            ..Default::default()
        };
        let row = |u: &str, n: i64, offset: i64| QueryRow {
            row: Some(Row {
                values: vec![string(u), bigint(n)],
            }),
            partition: 0,
            offset,
            tombstone: false,
            ..Default::default()
        };
        let mut items = vec![
            msg(query_response::Kind::Header(header)),
            msg(query_response::Kind::Row(row("u1", 2, 10))),
        ];
        if req.sql.contains("FAIL") {
            items.push(Err(Status::internal("engine exploded")));
        } else {
            items.push(msg(query_response::Kind::Row(row("u2", 5, 11))));
            let message = if push { "Limit Reached" } else { "" };
            items.push(msg(query_response::Kind::Final(QueryFinal {
                message: message.into(),
                rows: 2,
            })));
        }
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }

    type BulkInsertStream = Responses<BulkInsertResponse>;

    async fn bulk_insert(
        &self,
        _request: Request<tonic::Streaming<BulkInsertRequest>>,
    ) -> Result<Response<Self::BulkInsertStream>, Status> {
        Err(Status::unimplemented("mock"))
    }

    async fn produce(
        &self,
        _request: Request<ProduceRequest>,
    ) -> Result<Response<ProduceResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }

    type ConsumeStream = Responses<ConsumeResponse>;

    async fn consume(
        &self,
        _request: Request<ConsumeRequest>,
    ) -> Result<Response<Self::ConsumeStream>, Status> {
        Err(Status::unimplemented("mock"))
    }

    type PullStream = Responses<PullResponse>;

    async fn pull(
        &self,
        _request: Request<tonic::Streaming<PullRequest>>,
    ) -> Result<Response<Self::PullStream>, Status> {
        Err(Status::unimplemented("mock"))
    }
}

/// A shared, inspectable output sink.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut inner = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        inner.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Starts a mock server and returns its URL and request log.
async fn start_mock() -> (String, Log) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let log = Log::default();
    let service = SluiceServer::new(Mock { log: log.clone() });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (format!("http://{addr}"), log)
}

struct Harness {
    session: Session,
    out: Buf,
    err: Buf,
    log: Log,
}

async fn harness(format: OutputFormat) -> Harness {
    let (url, log) = start_mock().await;
    let client = Client::connect(&url).await.expect("connect to mock");
    let (out, err) = (Buf::default(), Buf::default());
    let session = Session::new(
        client,
        format,
        false,
        Box::new(out.clone()),
        Box::new(err.clone()),
    );
    Harness {
        session,
        out,
        err,
        log,
    }
}

fn requests(log: &Log) -> Vec<(String, String, HashMap<String, String>)> {
    log.lock().map(|l| l.clone()).unwrap_or_default()
}

#[tokio::test]
async fn script_runs_statements_one_call_each() {
    let mut h = harness(OutputFormat::Table).await;
    let script = split::split_script(
        "SET 'auto.offset.reset'='earliest';\n\
         CREATE STREAM pageviews (user_id STRING) WITH (kafka_topic='pv');\n\
         SHOW STREAMS;\n\
         SELECT * FROM views;\n\
         SELECT * FROM pageviews EMIT CHANGES LIMIT 2",
    );
    assert_eq!(run_script(&mut h.session, &script).await.ok(), Some(0));

    let reqs = requests(&h.log);
    let calls: Vec<(&str, &str)> = reqs
        .iter()
        .map(|(r, s, _)| (r.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        calls,
        vec![
            (
                "execute",
                "CREATE STREAM pageviews (user_id STRING) WITH (kafka_topic='pv');"
            ),
            ("execute", "SHOW STREAMS;"),
            ("query", "SELECT * FROM views;"),
            ("query", "SELECT * FROM pageviews EMIT CHANGES LIMIT 2"),
        ]
    );
    for (_, _, props) in &reqs {
        assert_eq!(
            props.get("auto.offset.reset").map(String::as_str),
            Some("earliest")
        );
    }

    let push_border = "+---------------------+---------------------+";
    let expected = format!(
        "Successfully changed local property 'auto.offset.reset' to 'earliest'.\n\
         Stream PAGEVIEWS created\n\
         +------------+\n\
         |Stream Name |\n\
         +------------+\n\
         |PAGEVIEWS   |\n\
         +------------+\n\
         +--------+-------+\n\
         |USER_ID |VIEWS  |\n\
         +--------+-------+\n\
         |u1      |2      |\n\
         |u2      |5      |\n\
         +--------+-------+\n\
         2 rows\n\
         {push_border}\n\
         |USER_ID              |VIEWS                |\n\
         {push_border}\n\
         |u1                   |2                    |\n\
         |u2                   |5                    |\n\
         {push_border}\n\
         Limit Reached\n"
    );
    assert_eq!(h.out.text(), expected);
    assert_eq!(h.err.text(), "");
}

#[tokio::test]
async fn script_stops_at_first_failure() {
    let mut h = harness(OutputFormat::Table).await;
    let script =
        split::split_script("CREATE STREAM a (x INT);\nBAD STATEMENT;\nCREATE STREAM b (x INT);");
    assert_eq!(run_script(&mut h.session, &script).await.ok(), Some(1));
    assert_eq!(
        requests(&h.log).len(),
        2,
        "the statement after the failure must not run"
    );
    assert_eq!(
        h.err.text(),
        "Error: unexpected token BAD (line 1:1)\nStatement: BAD STATEMENT;\n"
    );
}

#[tokio::test]
async fn unset_removes_property_from_later_requests() {
    let mut h = harness(OutputFormat::Table).await;
    let script = split::split_script(
        "SET 'a'='1'; SET 'a'='2'; SHOW STREAMS; UNSET 'a'; UNSET 'a'; SHOW STREAMS;",
    );
    assert_eq!(run_script(&mut h.session, &script).await.ok(), Some(0));
    let reqs = requests(&h.log);
    assert_eq!(reqs[0].2.get("a").map(String::as_str), Some("2"));
    assert!(reqs[1].2.is_empty());
    let out = h.out.text();
    assert!(
        out.contains("Successfully changed local property 'a' from '1' to '2'.\n"),
        "{out}"
    );
    assert!(
        out.contains("Successfully unset local property 'a' (value was '2').\n"),
        "{out}"
    );
    assert!(out.contains("Local property 'a' was not set.\n"), "{out}");
}

#[tokio::test]
async fn malformed_set_fails_locally() {
    let mut h = harness(OutputFormat::Table).await;
    assert_eq!(h.session.run("SET a=b;").await.ok(), Some(Outcome::Failed));
    assert!(requests(&h.log).is_empty());
    assert!(
        h.err.text().starts_with("Error: invalid SET statement"),
        "{}",
        h.err.text()
    );
}

#[tokio::test]
async fn query_errors_are_reported() {
    let mut h = harness(OutputFormat::Table).await;
    assert_eq!(
        h.session.run("SELECT * FROM MISSING;").await.ok(),
        Some(Outcome::Failed)
    );
    assert!(
        h.err
            .text()
            .starts_with("Error: Stream MISSING does not exist (line 1:15)\n")
    );
    assert_eq!(h.out.text(), "");

    let mut h = harness(OutputFormat::Table).await;
    assert_eq!(
        h.session.run("SELECT * FROM FAIL EMIT CHANGES;").await.ok(),
        Some(Outcome::Failed)
    );
    let out = h.out.text();
    // The streamed table is closed before the error is shown.
    assert!(out.ends_with("|u1                   |2                    |\n+---------------------+---------------------+\n"), "{out}");
    assert!(h.err.text().starts_with("Error: engine exploded\n"));
}

#[tokio::test]
async fn json_output() {
    let mut h = harness(OutputFormat::Json).await;
    let script = split::split_script(
        "SET 'k'='v'; CREATE STREAM s (x INT); SELECT * FROM s EMIT CHANGES; BAD;",
    );
    assert_eq!(run_script(&mut h.session, &script).await.ok(), Some(1));
    let lines: Vec<serde_json::Value> = h
        .out
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let expected = [
        r#"{"statement":"SET 'k'='v';","message":"Successfully changed local property 'k' to 'v'."}"#,
        r#"{"statement":"CREATE STREAM s (x INT);","message":"Stream PAGEVIEWS created","columns":[],"rows":[]}"#,
        r#"{"header":{"queryId":"transient_1","columns":[{"name":"USER_ID","type":"STRING"},{"name":"VIEWS","type":"BIGINT"}]}}"#,
        r#"{"row":["u1",2],"partition":0,"offset":10}"#,
        r#"{"row":["u2",5],"partition":0,"offset":11}"#,
        r#"{"final":{"message":"Limit Reached","rows":2}}"#,
        r#"{"error":{"statement":"BAD;","message":"unexpected token BAD (line 1:1)","code":"InvalidArgument"}}"#,
    ];
    let expected: Vec<serde_json::Value> = expected
        .iter()
        .map(|l| serde_json::from_str(l).expect("valid expectation"))
        .collect();
    assert_eq!(lines, expected);
    assert!(h.err.text().starts_with("Error: unexpected token BAD"));
}

#[tokio::test]
async fn exit_statement_ends_script() {
    let mut h = harness(OutputFormat::Table).await;
    let script = split::split_script("SHOW STREAMS; exit; SHOW STREAMS;");
    assert_eq!(run_script(&mut h.session, &script).await.ok(), Some(0));
    assert_eq!(requests(&h.log).len(), 1);
}

#[tokio::test]
async fn run_reports_unreachable_server() {
    let args = ShellArgs {
        server: "http://127.0.0.1:9".into(),
        execute: Some("SHOW STREAMS;".into()),
        file: None,
        output: OutputFormat::Table,
        history_file: None,
        token: None,
        tls_ca: None,
    };
    assert_eq!(run(args).await.ok(), Some(1));
}

#[tokio::test]
async fn run_reports_unreadable_file() {
    let args = ShellArgs {
        server: "http://127.0.0.1:9".into(),
        execute: None,
        file: Some(PathBuf::from("/nonexistent/script.sql")),
        output: OutputFormat::Table,
        history_file: None,
        token: None,
        tls_ca: None,
    };
    assert_eq!(run(args).await.ok(), Some(1));
}

#[tokio::test]
async fn run_executes_script_against_server() {
    let (url, log) = start_mock().await;
    let args = ShellArgs {
        server: url,
        execute: Some("CREATE STREAM a (x INT); BAD; CREATE STREAM b (x INT);".into()),
        file: None,
        output: OutputFormat::Table,
        history_file: None,
        token: None,
        tls_ca: None,
    };
    assert_eq!(run(args).await.ok(), Some(1));
    assert_eq!(requests(&log).len(), 2);
}

#[test]
fn output_format_parses() {
    assert_eq!("table".parse::<OutputFormat>(), Ok(OutputFormat::Table));
    assert_eq!("JSON".parse::<OutputFormat>(), Ok(OutputFormat::Json));
    assert!("yaml".parse::<OutputFormat>().is_err());
}

#[tokio::test]
async fn completion_names_come_from_show_and_describe() {
    let (url, log) = start_mock().await;
    let mut client = Client::connect(&url).await.expect("connect to mock");
    let names = std::sync::RwLock::new(complete::Names::default());
    complete::refresh(&mut client, &names).await;
    let names = names.read().map(|n| n.clone()).unwrap_or_default();
    assert_eq!(
        names.sources.get("PAGEVIEWS"),
        Some(&vec!["USER_ID".to_string(), "VIEWS".to_string()])
    );
    let calls: Vec<String> = requests(&log).into_iter().map(|(_, sql, _)| sql).collect();
    assert_eq!(
        calls,
        ["SHOW STREAMS;", "SHOW TABLES;", "DESCRIBE PAGEVIEWS;"]
    );
    assert_eq!(
        complete::complete("SELECT vi", 9, &names),
        (7, vec!["views".to_string()])
    );
}
