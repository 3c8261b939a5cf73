//! Helpers for end-to-end tests: start the real `sluice` binary on a loopback port with a
//! temporary data directory, and talk to it with the generated gRPC client.
#![allow(dead_code)]

use sluice_proto::v1 as pb;
use sluice_proto::v1::sluice_client::SluiceClient;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// A path in this checkout. Read from the environment cargo sets when running tests, not
/// baked in with env!: the target dir is shared between checkouts (CI and local), and a
/// test binary reused from another checkout would otherwise read that checkout's files.
pub fn repo_path(rel: &str) -> PathBuf {
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    if rel.is_empty() { root } else { root.join(rel) }
}

pub struct Server {
    pub child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
}

/// A process's resident memory now, in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

impl Server {
    pub async fn start(data_dir: &Path) -> Server {
        Server::start_on(data_dir, free_port()).await
    }

    pub async fn start_on(data_dir: &Path, port: u16) -> Server {
        Server::spawn(data_dir, port, None, &[]).await
    }

    /// Starts the server with extra environment variables (tuning knobs).
    pub async fn start_with_env(data_dir: &Path, port: u16, env: &[(&str, &str)]) -> Server {
        Server::spawn(data_dir, port, None, env).await
    }

    /// Starts the server with its address space capped (`ulimit -v`, in KiB), so that a
    /// runaway allocation fails inside the server instead of exhausting the test machine.
    pub async fn start_limited(data_dir: &Path, max_address_space_kib: u64) -> Server {
        Server::spawn(data_dir, free_port(), Some(max_address_space_kib), &[]).await
    }

    /// Both of the above: a capped address space and extra environment variables.
    pub async fn start_limited_with_env(
        data_dir: &Path,
        max_address_space_kib: u64,
        env: &[(&str, &str)],
    ) -> Server {
        Server::spawn(data_dir, free_port(), Some(max_address_space_kib), env).await
    }

    async fn spawn(
        data_dir: &Path,
        port: u16,
        limit_kib: Option<u64>,
        env: &[(&str, &str)],
    ) -> Server {
        let server = Server::launch(data_dir, port, limit_kib, env);
        server.wait_ready().await;
        server
    }

    /// Starts the server and waits until it answers, or exits: Err with its exit status if
    /// it died first (a crash point reached while it recovers).
    pub async fn start_or_exit(
        data_dir: &Path,
        port: u16,
        env: &[(&str, &str)],
    ) -> Result<Server, std::process::ExitStatus> {
        let mut server = Server::launch(data_dir, port, None, env);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(status);
            }
            if let Ok(mut c) = SluiceClient::connect(server.url()).await
                && c.execute(pb::ExecuteRequest {
                    sql: "SHOW TOPICS;".into(),
                    properties: HashMap::new(),
                })
                .await
                .is_ok()
            {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "server neither became ready nor exited; log:\n{}",
            server.log()
        );
    }

    /// Waits up to `wait` for the process to exit by itself; its exit status.
    pub async fn exited(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    fn launch(data_dir: &Path, port: u16, limit_kib: Option<u64>, env: &[(&str, &str)]) -> Server {
        let addr = format!("127.0.0.1:{port}");
        let log_path = data_dir.with_extension(format!("{port}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("server log file");
        let mut cmd = match limit_kib {
            // `exec` keeps the pid, so `child.id()` is the server's.
            Some(kib) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
                    .arg(env!("CARGO_BIN_EXE_sluice"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_sluice")),
        };
        let child = cmd
            .args(["server", "--data-dir"])
            .arg(data_dir)
            .args(["--listen", &addr])
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn sluice server");
        Server {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
            log_path,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            // A server with --auth-file answers an anonymous call too: it is up.
            if let Ok(mut c) = SluiceClient::connect(self.url()).await
                && c.execute(pb::ExecuteRequest {
                    sql: "SHOW TOPICS;".into(),
                    properties: HashMap::new(),
                })
                .await
                .map_or_else(|e| e.code() == tonic::Code::Unauthenticated, |_| true)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "server did not become ready; log:\n{}",
            std::fs::read_to_string(&self.log_path).unwrap_or_default()
        );
    }

    pub async fn client(&self) -> SluiceClient<Channel> {
        SluiceClient::connect(self.url())
            .await
            .expect("connect")
            .max_decoding_message_size(64 << 20)
    }

    /// SIGKILL: no shutdown hooks, no flushes.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// SIGTERM, then waits (up to `wait`) for the process to exit; its exit status, or
    /// None if it is still running.
    pub fn terminate(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + wait;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn exec(
    c: &mut SluiceClient<Channel>,
    sql: &str,
) -> Result<pb::ExecuteResponse, tonic::Status> {
    c.execute(pb::ExecuteRequest {
        sql: sql.into(),
        properties: HashMap::new(),
    })
    .await
    .map(|r| r.into_inner())
}

pub async fn exec_ok(c: &mut SluiceClient<Channel>, sql: &str) -> pb::ExecuteResponse {
    match exec(c, sql).await {
        Ok(r) => r,
        Err(e) => panic!("{sql}\nfailed: {e:?}"),
    }
}

/// A query's result: column names, rows (as display strings) and the final message.
#[derive(Debug, Default)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<pb::Value>>,
    pub final_message: Option<String>,
}

pub fn show(v: &pb::Value) -> String {
    use pb::value::Kind;
    match &v.kind {
        None | Some(Kind::Null(_)) => "null".into(),
        Some(Kind::Boolean(b)) => b.to_string(),
        Some(Kind::Int(i)) => i.to_string(),
        Some(Kind::Bigint(i)) => i.to_string(),
        Some(Kind::Double(d)) => d.to_string(),
        Some(Kind::Decimal(d)) => d.clone(),
        Some(Kind::String(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
    }
}

impl QueryResult {
    pub fn text_rows(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|r| r.iter().map(show).collect())
            .collect()
    }
}

/// Runs a query and collects up to `max_rows` rows (or until the stream ends / `wait`).
pub async fn query(
    c: &mut SluiceClient<Channel>,
    sql: &str,
    props: &[(&str, &str)],
    max_rows: usize,
    wait: Duration,
) -> Result<QueryResult, tonic::Status> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut open = open_query_until(c, sql, props, deadline).await?;
    open.collect_until(max_rows, deadline).await?;
    Ok(open.result)
}

/// A running query whose header has arrived.
pub struct OpenQuery {
    stream: tonic::Streaming<pb::QueryResponse>,
    pub result: QueryResult,
    done: bool,
}

/// Starts a query and returns once its header has arrived (or the stream ended, or `wait`
/// passed). The server sends a push query's header only after the engine has fixed the
/// positions it reads from, so whatever is written after this returns is seen: a readiness
/// signal, where a sleep would only hope.
pub async fn open_query(
    c: &mut SluiceClient<Channel>,
    sql: &str,
    props: &[(&str, &str)],
    wait: Duration,
) -> Result<OpenQuery, tonic::Status> {
    open_query_until(c, sql, props, tokio::time::Instant::now() + wait).await
}

async fn open_query_until(
    c: &mut SluiceClient<Channel>,
    sql: &str,
    props: &[(&str, &str)],
    deadline: tokio::time::Instant,
) -> Result<OpenQuery, tonic::Status> {
    let req = pb::QueryRequest {
        sql: sql.into(),
        properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        start_from: vec![],
        ..Default::default()
    };
    let stream = c.query(req).await?.into_inner();
    let mut open = OpenQuery {
        stream,
        result: QueryResult::default(),
        done: false,
    };
    while !open.done && open.result.columns.is_empty() {
        if !open.next(usize::MAX, deadline).await? {
            break;
        }
    }
    Ok(open)
}

impl OpenQuery {
    /// Collects up to `max_rows` rows, until the stream ends or `wait` passes.
    pub async fn collect(
        mut self,
        max_rows: usize,
        wait: Duration,
    ) -> Result<QueryResult, tonic::Status> {
        self.collect_until(max_rows, tokio::time::Instant::now() + wait)
            .await?;
        Ok(self.result)
    }

    async fn collect_until(
        &mut self,
        max_rows: usize,
        deadline: tokio::time::Instant,
    ) -> Result<(), tonic::Status> {
        while self.next(max_rows, deadline).await? {}
        Ok(())
    }

    /// The next row, waiting up to `wait` for one (None when none came in time). Rows
    /// taken this way are not kept in the result.
    pub async fn next_row(
        &mut self,
        wait: Duration,
    ) -> Result<Option<Vec<pb::Value>>, tonic::Status> {
        let deadline = tokio::time::Instant::now() + wait;
        let before = self.result.rows.len();
        while self.next(usize::MAX, deadline).await? {
            if self.result.rows.len() > before {
                return Ok(Some(self.result.rows.remove(before)));
            }
        }
        Ok(None)
    }

    /// Takes one message into the result; false once there is nothing more to take.
    async fn next(
        &mut self,
        max_rows: usize,
        deadline: tokio::time::Instant,
    ) -> Result<bool, tonic::Status> {
        if self.done || self.result.rows.len() >= max_rows {
            return Ok(false);
        }
        let msg = match tokio::time::timeout_at(deadline, self.stream.message()).await {
            Err(_) => return Ok(false),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(None)) => {
                self.done = true;
                return Ok(false);
            }
            Ok(Ok(Some(m))) => m,
        };
        match msg.kind {
            Some(pb::query_response::Kind::Header(h)) => {
                self.result.columns = h.columns.into_iter().map(|c| c.name).collect()
            }
            Some(pb::query_response::Kind::Row(r)) => {
                self.result
                    .rows
                    .push(r.row.map(|r| r.values).unwrap_or_default());
            }
            Some(pb::query_response::Kind::Rows(rs)) => {
                for r in rs.rows {
                    self.result
                        .rows
                        .push(r.row.map(|r| r.values).unwrap_or_default());
                }
            }
            Some(pb::query_response::Kind::Final(f)) => {
                self.result.final_message = Some(f.message);
                self.done = true;
            }
            None => {}
        }
        Ok(!self.done && self.result.rows.len() < max_rows)
    }
}

pub async fn pull(c: &mut SluiceClient<Channel>, sql: &str) -> QueryResult {
    match query(c, sql, &[], usize::MAX, Duration::from_secs(30)).await {
        Ok(r) => r,
        Err(e) => panic!("{sql}\nfailed: {e:?}"),
    }
}

/// Polls a pull query until `check` accepts its rows (views are eventually consistent).
pub async fn eventually<F: Fn(&[Vec<String>]) -> bool>(
    c: &mut SluiceClient<Channel>,
    sql: &str,
    check: F,
) -> Vec<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = pull(c, sql).await.text_rows();
        if check(&rows) {
            return rows;
        }
        if Instant::now() > deadline {
            panic!("{sql}: condition not met; last rows: {rows:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn s(v: &str) -> pb::Value {
    pb::Value {
        kind: Some(pb::value::Kind::String(v.into())),
    }
}

pub fn big(v: i64) -> pb::Value {
    pb::Value {
        kind: Some(pb::value::Kind::Bigint(v)),
    }
}

/// SHOW QUERIES as (query id, status) pairs, in its order.
pub async fn show_queries(c: &mut SluiceClient<Channel>) -> Vec<(String, String)> {
    let r = exec_ok(c, "SHOW QUERIES;").await;
    r.results[0]
        .rows
        .iter()
        .map(|row| (show(&row.values[0]), show(&row.values[1])))
        .collect()
}

/// Every record a topic's first `partitions` partitions hold now, partition by partition.
pub async fn read_topic(
    c: &mut SluiceClient<Channel>,
    topic: &str,
    partitions: i32,
) -> Vec<pb::ConsumedRecord> {
    let mut out = Vec::new();
    for p in 0..partitions {
        let mut s = c
            .consume(pb::ConsumeRequest {
                topic: topic.into(),
                partition: p,
                offset: 0,
                max_records: 0,
                follow: false,
            })
            .await
            .unwrap()
            .into_inner();
        while let Some(m) = s.message().await.unwrap() {
            out.extend(m.records);
        }
    }
    out
}

/// Inserts `(k{v % keys}, v)` rows into the stream `events` (columns K, V) in batches of
/// `batch`, numbering them from `next`, until a call fails (the server went away);
/// appends each acknowledged batch's rows to `acked`.
pub async fn insert_until_failure(
    url: String,
    batch: i64,
    keys: i64,
    next: std::sync::Arc<std::sync::atomic::AtomicI64>,
    acked: std::sync::Arc<std::sync::Mutex<Vec<(String, i64)>>>,
) {
    let Ok(mut c) = SluiceClient::connect(url).await else {
        return;
    };
    loop {
        let first = next.fetch_add(batch, std::sync::atomic::Ordering::SeqCst);
        let rows: Vec<(String, i64)> = (first..first + batch)
            .map(|v| (format!("k{}", v % keys), v))
            .collect();
        let req = pb::BulkInsertRequest {
            target: "events".into(),
            columns: vec!["k".into(), "v".into()],
            rows: rows
                .iter()
                .map(|(k, v)| pb::Row {
                    values: vec![s(k), big(*v)],
                })
                .collect(),
            batch_id: first as u64,
            ..Default::default()
        };
        let Ok(resp) = c.bulk_insert(tokio_stream::iter(vec![req])).await else {
            return;
        };
        match resp.into_inner().message().await {
            Ok(Some(a)) if a.rows == batch as u64 => acked.lock().unwrap().extend(rows),
            _ => return,
        }
    }
}
