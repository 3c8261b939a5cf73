//! `sluice test`: runs ksqlDB's query-validation test cases (QTT JSON) through the same
//! executor, planner and engine the server runs, each case in a fresh in-process
//! instance on a temporary RocksDB.
//!
//! A case is a list of statements, input records and the records expected on output
//! topics (or an expected error). The runner executes the statements, produces the
//! inputs, waits until every persistent query has caught up, then compares each output
//! topic record by record with ksqlDB's rules (see ../shared/ksql-qtt/README.md).
//!
//! RQTT cases (rest-query-validation-tests) add the responses a client sees: the
//! statements' admin responses, then the rows of pull and push queries planned by
//! `Executor::plan_query`, as the Query RPC does (see rqtt.rs).

mod case;
mod compare;
mod lenient;
mod rqtt;

pub use case::{Case, CaseOutcome, Status, load_cases, run_case};

use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub paths: Vec<PathBuf>,
    /// Only cases whose id contains this text.
    pub filter: Option<String>,
    /// Write per-case results as JSON here.
    pub json_report: Option<PathBuf>,
    /// Print passing cases too.
    pub verbose: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub outcomes: Vec<CaseOutcome>,
}

/// Runs every selected case, printing failures and the closing `N passed, M failed` line.
pub fn run(opts: &Options, out: &mut dyn Write) -> Result<Summary, RunnerError> {
    let mut cases = load_cases(&opts.paths)?;
    if let Some(f) = &opts.filter {
        cases.retain(|c| c.id.contains(f.as_str()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(32 << 20)
        .enable_all()
        .build()
        .map_err(|e| RunnerError::Read {
            path: PathBuf::from("<runtime>"),
            message: e.to_string(),
        })?;
    let mut summary = Summary::default();
    for case in &cases {
        let outcome = runtime.block_on(run_case(case));
        match &outcome.status {
            Status::Passed => {
                summary.passed += 1;
                if opts.verbose {
                    let _ = writeln!(out, "PASS {}", outcome.id);
                }
            }
            Status::Failed(why) => {
                summary.failed += 1;
                let _ = writeln!(out, "FAIL {}\n{}\n", outcome.id, indent(why));
            }
            Status::Skipped(why) => {
                summary.skipped += 1;
                let _ = writeln!(out, "SKIP {}: {why}", outcome.id);
            }
        }
        summary.outcomes.push(outcome);
    }
    runtime.shutdown_background();
    if let Some(path) = &opts.json_report {
        let report: Vec<serde_json::Value> = summary
            .outcomes
            .iter()
            .map(|o| {
                let (status, detail) = match &o.status {
                    Status::Passed => ("passed", String::new()),
                    Status::Failed(d) => ("failed", d.clone()),
                    Status::Skipped(d) => ("skipped", d.clone()),
                };
                serde_json::json!({"id": o.id, "file": o.file, "name": o.name, "status": status, "detail": detail, "millis": o.millis})
            })
            .collect();
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        std::fs::write(path, text).map_err(|e| RunnerError::Read {
            path: path.clone(),
            message: e.to_string(),
        })?;
    }
    let skipped = if summary.skipped > 0 {
        format!(", {} skipped", summary.skipped)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{} passed, {} failed{skipped}",
        summary.passed, summary.failed
    );
    Ok(summary)
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
