//! The `sluice` binary: `sluice server` runs the database, `sluice shell` talks to it.

mod c_malloc;

use anyhow::Context;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use sluice_server::{ExprLimits, Limits, PullLimits};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A single-binary event-sourcing / CQRS streaming database with ksqlDB's SQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How the server writes its log lines.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Server {
        /// Where the RocksDB database lives.
        #[arg(long, default_value = "./sluice-data", env = "SLUICE_DATA_DIR")]
        data_dir: PathBuf,
        /// Address to serve gRPC on.
        #[arg(long, default_value = "127.0.0.1:8815", env = "SLUICE_LISTEN")]
        listen: SocketAddr,
        /// Listen on a non-loopback address although traffic is not encrypted (there is no
        /// TLS yet: without this, such an address is refused).
        #[arg(long, env = "SLUICE_INSECURE")]
        insecure: bool,
        /// Tokens clients must present, one per line as `ROLE TOKEN` (roles: reader,
        /// writer, admin). Without it every caller may run every statement.
        #[arg(long, env = "SLUICE_AUTH_FILE")]
        auth_file: Option<PathBuf>,
        /// Serve TLS with this PEM certificate chain (with --tls-key).
        #[arg(long, env = "SLUICE_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, env = "SLUICE_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Require client certificates signed by this PEM CA (mutual TLS).
        #[arg(long, env = "SLUICE_TLS_CLIENT_CA", requires = "tls_cert")]
        tls_client_ca: Option<PathBuf>,
        /// Serve Prometheus metrics at http://HOST:PORT/metrics.
        #[arg(long, env = "SLUICE_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr>,
        /// Log lines as text, or as one JSON object each (with the request's span: its
        /// request id and statement).
        #[arg(long, value_enum, default_value = "text", env = "SLUICE_LOG_FORMAT")]
        log_format: LogFormat,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Interactive SQL shell, or run statements with -e / -f.
    Shell {
        /// Server address.
        #[arg(long, default_value = "http://127.0.0.1:8815", env = "SLUICE_SERVER")]
        server: String,
        /// Statements to run, then exit.
        #[arg(short = 'e', long = "execute")]
        execute: Option<String>,
        /// A SQL file to run, then exit.
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// Output format: table or json (one JSON object per line).
        #[arg(long, default_value = "table")]
        output: String,
        /// History file for interactive mode (default ~/.sluice_history).
        #[arg(long)]
        history_file: Option<PathBuf>,
        /// Bearer token for a server started with --auth-file (never echoed).
        #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// PEM CA to verify a TLS server's certificate with (the server URL is https://).
        #[arg(long, env = "SLUICE_TLS_CA")]
        tls_ca: Option<PathBuf>,
    },
    /// Run ksqlDB query-validation test cases (QTT JSON files or folders).
    Test {
        /// Files or folders of QTT JSON test cases.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Only run cases whose id (`file.json: name [variant]`) contains this text.
        #[arg(long)]
        filter: Option<String>,
        /// Write per-case results to this JSON file.
        #[arg(long = "json")]
        json_report: Option<PathBuf>,
        /// Also list passing cases.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Run benchmark workloads against a server (spawned per workload unless --server).
    Bench(BenchArgs),
}

/// A duration in whole milliseconds, for a flag's default.
fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A limit's value: a whole number, at least 1. A limit of 0 would refuse every request
/// (or, for some, has meant "the default"), so it is refused at start-up instead.
fn positive<T: std::str::FromStr + Default + PartialEq>(text: &str) -> Result<T, String> {
    match text.trim().parse::<T>() {
        Ok(v) if v == T::default() => {
            Err("a limit must be at least 1 (0 would refuse every request)".into())
        }
        Ok(v) => Ok(v),
        Err(_) => Err("expected a whole number".into()),
    }
}

/// What one client may ask of the server; each is named in the error past it
/// (docs/operations.md, "Limits"). The defaults are the libraries' own.
#[derive(clap::Args)]
struct LimitArgs {
    /// Most rows a pull query may return.
    #[arg(long, value_parser = positive::<u64>, default_value_t = PullLimits::default().max_rows, env = "SLUICE_PULL_MAX_ROWS")]
    pull_max_rows: u64,
    /// Most bytes a pull query's result may hold.
    #[arg(long, value_parser = positive::<u64>, default_value_t = PullLimits::default().max_bytes, env = "SLUICE_PULL_MAX_BYTES")]
    pull_max_bytes: u64,
    /// Longest a pull query may read for, in milliseconds.
    #[arg(long, value_parser = positive::<u64>, default_value_t = millis(PullLimits::default().timeout), env = "SLUICE_PULL_TIMEOUT_MS")]
    pull_timeout_ms: u64,
    /// Most bytes of SQL one request may carry.
    #[arg(long, value_parser = positive::<usize>, default_value_t = Limits::default().max_statement_bytes, env = "SLUICE_MAX_STATEMENT_BYTES")]
    max_statement_bytes: usize,
    /// Most push queries open at once, all clients together.
    #[arg(long, value_parser = positive::<usize>, default_value_t = Limits::default().max_push_queries, env = "SLUICE_MAX_PUSH_QUERIES")]
    max_push_queries: usize,
    /// Most push queries open at once on one client connection.
    #[arg(
        long,
        value_parser = positive::<usize>,
        default_value_t = Limits::default().max_push_queries_per_connection,
        env = "SLUICE_MAX_PUSH_QUERIES_PER_CONNECTION"
    )]
    max_push_queries_per_connection: usize,
    /// Most rows one BulkInsert request message may carry.
    #[arg(long, value_parser = positive::<usize>, default_value_t = Limits::default().max_bulk_rows, env = "SLUICE_MAX_BULK_ROWS")]
    max_bulk_rows: usize,
    /// Most values an IN list may hold.
    #[arg(long, value_parser = positive::<usize>, default_value_t = ExprLimits::default().max_in_list, env = "SLUICE_MAX_IN_LIST")]
    max_in_list: usize,
    /// Largest compiled regular expression, in bytes.
    #[arg(long, value_parser = positive::<usize>, default_value_t = ExprLimits::default().max_regex_bytes, env = "SLUICE_MAX_REGEX_BYTES")]
    max_regex_bytes: usize,
    /// Largest value a function call may take in or give back, in bytes.
    #[arg(long, value_parser = positive::<usize>, default_value_t = ExprLimits::default().max_value_bytes, env = "SLUICE_MAX_VALUE_BYTES")]
    max_value_bytes: usize,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Workloads to run: ingest, groupby, stateless, freshness, pull, pull-query, recovery,
    /// fanout, catchup, nexmark, or all.
    #[arg(default_value = "all")]
    workloads: Vec<String>,
    /// Drive this running server instead of spawning one per workload.
    #[arg(long)]
    server: Option<String>,
    /// Pid of the --server process, to measure its CPU and memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Where spawned servers keep their temporary data directories (default: system temp).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Events per workload.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Distinct keys (groupby view size, pull table size).
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Approximate bytes of each event's JSON value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Events per second for the freshness workload.
    #[arg(long, default_value_t = 100_000)]
    rate: u64,
    /// Seconds for time-driven workloads (freshness, pull).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Concurrent clients: load streams and pull clients.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Pull requests each pull client keeps in flight on its Pull call.
    #[arg(long, default_value_t = 8)]
    pipeline: usize,
    /// Push subscribers for fanout.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Rows a push subscriber (fanout, freshness, catchup) asks to get per message
    /// (`max_rows_per_message`; 1: one QueryRow each, as clients that predate QueryRows).
    #[arg(long, default_value_t = 1)]
    push_rows_per_message: u32,
    /// Rows per BulkInsert request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Partitions of the workloads' topics.
    #[arg(long, default_value_t = 1)]
    partitions: u32,
    /// Seed of the data generators.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Nexmark queries to run, comma-separated (default: every one Sluice expresses).
    #[arg(long, value_delimiter = ',')]
    nexmark_queries: Vec<String>,
    /// Write every figure to this JSON file.
    #[arg(long = "json")]
    json: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    c_malloc::tune();
    let cli = Cli::parse();
    if let Command::Test {
        paths,
        filter,
        json_report,
        verbose,
    } = cli.command
    {
        // Engine warnings about deliberately bad test records would drown the report.
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "error".into()),
            )
            .with_writer(std::io::stderr)
            .init();
        let opts = sluice_testrunner::Options {
            paths,
            filter,
            json_report,
            verbose,
        };
        let summary = sluice_testrunner::run(&opts, &mut std::io::stdout())?;
        std::process::exit(if summary.failed > 0 { 1 } else { 0 });
    }
    // Planning recurses over the expression tree and debug builds use large frames, so
    // threads get room for the deepest tree the planner accepts (its MAX_EXPR_DEPTH).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 << 20)
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Server {
            data_dir,
            listen,
            insecure,
            auth_file,
            metrics_listen,
            tls_cert,
            tls_key,
            tls_client_ca,
            log_format,
            limits,
        } => {
            let logs = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_writer(std::io::stderr);
            match log_format {
                LogFormat::Text => logs.init(),
                LogFormat::Json => logs.json().with_current_span(true).init(),
            }
            // The engine catches panics per record and per batch and carries on; they are
            // reported through tracing (with the query's span) instead of raw stderr text.
            std::panic::set_hook(Box::new(|info| {
                let location = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!("panicked at {location}: {message}");
            }));
            c_malloc::spawn_trimmer()?;
            let auth = auth_file
                .map(|f| sluice_server::auth::Tokens::load(&f))
                .transpose()?;
            let config = sluice_server::ServerConfig {
                data_dir,
                listen,
                pull_limits: PullLimits {
                    max_rows: limits.pull_max_rows,
                    max_bytes: limits.pull_max_bytes,
                    timeout: std::time::Duration::from_millis(limits.pull_timeout_ms),
                },
                insecure,
                auth,
                metrics_listen,
                tls: match (tls_cert, tls_key) {
                    (Some(cert), Some(key)) => Some(sluice_server::TlsFiles {
                        cert,
                        key,
                        client_ca: tls_client_ca,
                    }),
                    _ => None,
                },
                limits: Limits {
                    max_statement_bytes: limits.max_statement_bytes,
                    max_push_queries: limits.max_push_queries,
                    max_push_queries_per_connection: limits.max_push_queries_per_connection,
                    max_bulk_rows: limits.max_bulk_rows,
                },
                expr_limits: ExprLimits {
                    max_value_bytes: limits.max_value_bytes,
                    max_regex_bytes: limits.max_regex_bytes,
                    max_in_list: limits.max_in_list,
                },
            };
            runtime
                .block_on(sluice_server::run(config, shutdown_signal()))
                .context("server failed")?;
            Ok(())
        }
        Command::Shell {
            server,
            execute,
            file,
            output,
            history_file,
            token,
            tls_ca,
        } => {
            let output: sluice_shell::OutputFormat =
                output.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
            let args = sluice_shell::ShellArgs {
                server,
                execute,
                file,
                output,
                history_file,
                token,
                tls_ca,
            };
            let code = runtime.block_on(sluice_shell::run(args))?;
            std::process::exit(code);
        }
        Command::Bench(a) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "warn".into()),
                )
                .with_writer(std::io::stderr)
                .init();
            let opts = sluice_bench::Options {
                workloads: a.workloads,
                server: a.server,
                server_pid: a.server_pid,
                server_bin: std::env::current_exe().context("locating the sluice binary")?,
                data_parent: a.data_dir,
                events: a.events,
                keys: a.keys,
                value_size: a.value_size,
                rate: a.rate,
                duration_s: a.duration,
                concurrency: a.concurrency,
                pipeline: a.pipeline,
                subscribers: a.subscribers,
                push_rows_per_message: a.push_rows_per_message,
                batch: a.batch,
                partitions: a.partitions,
                seed: a.seed,
                nexmark_queries: a.nexmark_queries,
                json: a.json,
            };
            runtime.block_on(sluice_bench::run(&opts))?;
            Ok(())
        }
        Command::Test { .. } => unreachable!("handled above"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
