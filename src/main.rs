//! The `sluice` binary: `sluice server` runs the database, `sluice shell` talks to it.

use anyhow::Context;
use clap::{Parser, Subcommand};
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
        /// Most rows a pull query may return.
        #[arg(long, default_value_t = 100_000)]
        pull_max_rows: u64,
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
}

fn main() -> anyhow::Result<()> {
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
            pull_max_rows,
        } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_writer(std::io::stderr)
                .init();
            let config = sluice_server::ServerConfig {
                data_dir,
                listen,
                pull_max_rows,
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
        } => {
            let output: sluice_shell::OutputFormat =
                output.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
            let args = sluice_shell::ShellArgs {
                server,
                execute,
                file,
                output,
                history_file,
            };
            let code = runtime.block_on(sluice_shell::run(args))?;
            std::process::exit(code);
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
