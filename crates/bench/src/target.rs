//! The server under test: one the harness spawns on a temporary data directory (the default
//! for repeatable figures: a fresh process per workload, so peak RSS is the workload's own),
//! or one already running that it connects to.

use anyhow::{Context, bail};
use sluice_proto::v1 as pb;
use sluice_proto::v1::sluice_client::SluiceClient;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Answers can be large (SHOW QUERIES with many queries); the 4 MiB default is too tight.
const MAX_MESSAGE_BYTES: usize = 256 << 20;

pub enum Target {
    Spawned {
        child: Child,
        bin: PathBuf,
        data_dir: PathBuf,
        /// Keeps the temporary data directory alive for the workload's duration.
        _temp: Option<tempfile::TempDir>,
        url: String,
        port: u16,
        log: PathBuf,
    },
    External {
        url: String,
        pid: Option<u32>,
    },
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

impl Target {
    /// Starts `bin server` on a fresh data directory under `parent` (the system temp dir when
    /// absent) and waits until it answers.
    pub async fn spawn(bin: &Path, parent: Option<&Path>) -> anyhow::Result<Target> {
        let temp = match parent {
            Some(p) => {
                std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
                tempfile::Builder::new()
                    .prefix("sluice-bench-")
                    .tempdir_in(p)
            }
            None => tempfile::Builder::new().prefix("sluice-bench-").tempdir(),
        }
        .context("creating a temporary data directory")?;
        let data_dir = temp.path().join("data");
        let log = temp.path().join("server.log");
        let port = free_port()?;
        let child = start(bin, &data_dir, port, &log)?;
        let target = Target::Spawned {
            child,
            bin: bin.to_path_buf(),
            data_dir,
            _temp: Some(temp),
            url: format!("http://127.0.0.1:{port}"),
            port,
            log,
        };
        target.wait_ready(Duration::from_secs(120)).await?;
        Ok(target)
    }

    pub fn external(url: &str, pid: Option<u32>) -> Target {
        let url = if url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
        Target::External { url, pid }
    }

    pub fn url(&self) -> &str {
        match self {
            Target::Spawned { url, .. } | Target::External { url, .. } => url,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        match self {
            Target::Spawned { child, .. } => Some(child.id()),
            Target::External { pid, .. } => *pid,
        }
    }

    pub async fn client(&self) -> anyhow::Result<crate::client::Client> {
        let bearer = sluice_proto::Bearer::new(std::env::var("SLUICE_TOKEN").ok().as_deref())
            .map_err(|e| anyhow::anyhow!("SLUICE_TOKEN: {e}"))?;
        // SLUICE_TLS_CA: a TLS server's CA (the URL is https://).
        let ca = std::env::var_os("SLUICE_TLS_CA").map(std::path::PathBuf::from);
        let channel = sluice_proto::endpoint(self.url(), ca.as_deref())
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connecting to {}", self.url()))?;
        Ok(SluiceClient::with_interceptor(channel, bearer)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    /// Polls until the server answers a statement; returns how long that took.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            if let Ok(mut c) = self.client().await
                && c.execute(pb::ExecuteRequest {
                    sql: "SHOW TOPICS;".into(),
                    properties: Default::default(),
                })
                .await
                .is_ok()
            {
                return Ok(start.elapsed());
            }
            if let Target::Spawned { child, log, .. } = self
                && let Ok(Some(status)) = has_exited(child)
            {
                bail!(
                    "the server exited with {status} before answering; its log:\n{}",
                    tail(log)
                );
            }
            if start.elapsed() > timeout {
                bail!(
                    "the server at {} did not answer within {timeout:?}",
                    self.url()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// SIGKILL then start again on the same data directory and port; returns the instant the
    /// new process was started. Only for spawned servers.
    pub fn kill_and_restart(&mut self) -> anyhow::Result<Instant> {
        match self {
            Target::Spawned {
                child,
                bin,
                data_dir,
                port,
                log,
                ..
            } => {
                child.kill().context("killing the server")?;
                child.wait().context("reaping the server")?;
                let started = Instant::now();
                *child = start(bin, data_dir, *port, log)?;
                Ok(started)
            }
            Target::External { .. } => bail!("the recovery workload needs --spawn"),
        }
    }

    pub fn log_tail(&self) -> String {
        match self {
            Target::Spawned { log, .. } => tail(log),
            Target::External { .. } => String::new(),
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Target::Spawned { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// `Child::try_wait` needs `&mut`; the readiness loop only has `&self`, so look at /proc.
fn has_exited(child: &Child) -> std::io::Result<Option<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id()))?;
    let state = stat
        .rsplit_once(')')
        .map(|(_, r)| r.trim_start())
        .unwrap_or("");
    Ok(state
        .starts_with('Z')
        .then(|| "a crash or exit".to_string()))
}

fn start(bin: &Path, data_dir: &Path, port: u16, log: &Path) -> anyhow::Result<Child> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    Command::new(bin)
        .arg("server")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("starting {} server", bin.display()))
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// CPU time and memory of the server process, read from /proc.
pub struct ProcStats {
    pid: Option<u32>,
}

impl ProcStats {
    pub fn new(pid: Option<u32>) -> ProcStats {
        ProcStats { pid }
    }

    /// User + system CPU seconds the process has used so far.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid?)).ok()?;
        // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
        Some((utime + stime) / ticks)
    }

    fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Peak resident set size since start or the last [`ProcStats::reset_peak`].
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        self.status_kib("VmHWM:").map(|k| k * 1024)
    }

    pub fn rss_bytes(&self) -> Option<u64> {
        self.status_kib("VmRSS:").map(|k| k * 1024)
    }

    /// Resets the peak RSS counter (Linux `clear_refs` 5), so a workload on a long-running
    /// server reports its own peak. Best effort: needs permission over the process.
    pub fn reset_peak(&self) {
        if let Some(pid) = self.pid {
            let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        }
    }
}
