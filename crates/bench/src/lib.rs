//! `sluice bench`: named workloads driven over gRPC against a real Sluice server, spawned on
//! a temporary data directory (`--spawn`, a fresh process per workload) or already running.
//! Each run reports wall time, the server process's own CPU seconds and peak RSS (from
//! /proc), and rates per wall second and per server CPU-second; see docs/performance.md.

mod client;
mod events;
mod nexmark;
mod progress;
mod report;
mod rng;
mod target;
mod workloads;

pub use report::Figure;

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::time::Instant;
use target::{ProcStats, Target};

/// Every workload, in the order `all` runs them.
pub const WORKLOADS: &[&str] = &[
    "ingest",
    "groupby",
    "stateless",
    "freshness",
    "pull",
    "pull-query",
    "recovery",
    "fanout",
    "catchup",
    "nexmark",
];

#[derive(Debug, Clone)]
pub struct Options {
    /// Workload names, or `all`.
    pub workloads: Vec<String>,
    /// Connect to this server instead of spawning one.
    pub server: Option<String>,
    /// The external server's pid, to read its CPU and memory from /proc.
    pub server_pid: Option<u32>,
    /// The `sluice` binary to spawn (normally the running executable).
    pub server_bin: PathBuf,
    /// Where spawned servers put their temporary data directories.
    pub data_parent: Option<PathBuf>,
    pub events: u64,
    pub keys: u64,
    pub value_size: usize,
    /// Events per second for rate-driven workloads (freshness).
    pub rate: u64,
    /// Seconds for time-driven workloads (freshness, pull).
    pub duration_s: f64,
    /// Concurrent clients: load streams, pull clients.
    pub concurrency: usize,
    /// Pull requests each pull client keeps in flight on its Pull call.
    pub pipeline: usize,
    /// Push subscribers for fanout.
    pub subscribers: usize,
    /// Rows per message push subscribers ask for (`max_rows_per_message`).
    pub push_rows_per_message: u32,
    /// Rows per BulkInsert request.
    pub batch: usize,
    pub partitions: u32,
    pub seed: u64,
    /// Nexmark queries to run (`q0`, `q1`, ...); empty means every one Sluice can express.
    pub nexmark_queries: Vec<String>,
    pub json: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workloads: vec!["all".into()],
            server: None,
            server_pid: None,
            server_bin: PathBuf::from("sluice"),
            data_parent: None,
            events: 1_000_000,
            keys: 1_000_000,
            value_size: 100,
            rate: 100_000,
            duration_s: 10.0,
            concurrency: 4,
            pipeline: 8,
            subscribers: 100,
            push_rows_per_message: 1,
            batch: 1000,
            partitions: 1,
            seed: 42,
            nexmark_queries: vec![],
            json: None,
        }
    }
}

/// Everything a workload needs: options, the server, and a tag that keeps its object names
/// apart from earlier runs on a long-lived server.
pub(crate) struct Ctx<'a> {
    pub opts: &'a Options,
    pub target: Target,
    pub tag: String,
}

impl Ctx<'_> {
    /// `base` made unique for this run, e.g. `EVENTS_R1A2B3`.
    pub fn name(&self, base: &str) -> String {
        format!("{base}_{}", self.tag)
    }

    pub fn meter(&self) -> Meter {
        Meter::start(&self.target)
    }
}

/// Measures one interval: wall time, server CPU and peak RSS.
pub(crate) struct Meter {
    proc: ProcStats,
    t0: Instant,
    cpu0: Option<f64>,
    /// Peak RSS of the server before the interval (its setup: loads, earlier phases).
    setup_peak: Option<u64>,
}

impl Meter {
    pub fn start(target: &Target) -> Meter {
        let proc = ProcStats::new(target.pid());
        let setup_peak = proc.peak_rss_bytes();
        proc.reset_peak();
        Meter {
            cpu0: proc.cpu_seconds(),
            proc,
            t0: Instant::now(),
            setup_peak,
        }
    }

    pub fn t0(&self) -> Instant {
        self.t0
    }

    /// Fills wall, CPU and peak RSS of `fig` for the interval ending at `end`.
    pub fn stop_at(&self, mut fig: Figure, end: Instant) -> Figure {
        fig.wall_s = end.duration_since(self.t0).as_secs_f64();
        fig.server_cpu_s = match (self.cpu0, self.proc.cpu_seconds()) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        fig.peak_rss_bytes = self.proc.peak_rss_bytes();
        if let Some(p) = self.setup_peak {
            fig = fig.param("setup_peak_rss_bytes", p);
        }
        fig.rates()
    }

    pub fn rss_bytes(&self) -> Option<u64> {
        self.proc.rss_bytes()
    }
}

fn selected(opts: &Options) -> anyhow::Result<Vec<&'static str>> {
    let mut out = Vec::new();
    for w in &opts.workloads {
        if w.eq_ignore_ascii_case("all") {
            out.extend_from_slice(WORKLOADS);
            continue;
        }
        match WORKLOADS.iter().find(|n| n.eq_ignore_ascii_case(w)) {
            Some(n) => out.push(*n),
            None => bail!(
                "unknown workload '{w}'; the workloads are: {}, all",
                WORKLOADS.join(", ")
            ),
        }
    }
    if out.is_empty() {
        bail!(
            "no workload given; the workloads are: {}, all",
            WORKLOADS.join(", ")
        );
    }
    Ok(out)
}

/// Runs the selected workloads, prints the table to stdout and writes the JSON report.
pub async fn run(opts: &Options) -> anyhow::Result<Vec<Figure>> {
    let names = selected(opts)?;
    let tag = format!(
        "R{:X}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    );
    let mut figures = Vec::new();
    for name in names {
        let target = match &opts.server {
            Some(url) => Target::external(url, opts.server_pid),
            None => Target::spawn(&opts.server_bin, opts.data_parent.as_deref()).await?,
        };
        if name == "recovery" && opts.server.is_some() {
            eprintln!(
                "recovery: skipped, it kills and restarts the server, so it needs a spawned one (omit --server)"
            );
            continue;
        }
        let mut ctx = Ctx {
            opts,
            target,
            tag: tag.clone(),
        };
        eprintln!("{name}: running");
        let result = workloads::run(name, &mut ctx).await;
        let figs = match result {
            Ok(f) => f,
            Err(e) => {
                let log = ctx.target.log_tail();
                if log.is_empty() {
                    return Err(e.context(format!("workload {name}")));
                }
                return Err(e.context(format!("workload {name}; server log tail:\n{log}")));
            }
        };
        for f in &figs {
            eprintln!(
                "{}",
                report::table(std::slice::from_ref(f))
                    .lines()
                    .nth(2)
                    .unwrap_or("")
            );
        }
        figures.extend(figs);
    }
    print!("{}", report::table(&figures));
    if let Some(path) = &opts.json {
        let text = serde_json::to_string_pretty(&figures)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(figures)
}
