//! Figures of one workload run, the final table and the JSON report.

use serde::Serialize;

/// One workload run. Rates are given per wall second and per server CPU-second: the second
/// stays comparable on a shared, noisy machine where wall time does not.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figure {
    pub workload: String,
    /// Events the workload is measured over (inserted, processed or delivered).
    pub events: u64,
    pub wall_s: f64,
    /// Server process CPU (user + system) over the measured interval; null when the server's
    /// pid is unknown.
    pub server_cpu_s: Option<f64>,
    pub events_per_s: f64,
    pub events_per_cpu_s: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p999_ms: Option<f64>,
    /// Workload parameters and any workload-specific figures.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Load average of the machine when the run finished (1, 5, 15 minutes).
    pub loadavg: Option<[f64; 3]>,
}

impl Figure {
    pub fn new(workload: &str) -> Figure {
        Figure {
            workload: workload.to_string(),
            ..Figure::default()
        }
    }

    /// Fills the rates from events, wall time and CPU.
    pub fn rates(mut self) -> Figure {
        if self.wall_s > 0.0 {
            self.events_per_s = self.events as f64 / self.wall_s;
        }
        self.events_per_cpu_s = self
            .server_cpu_s
            .filter(|c| *c > 0.0)
            .map(|c| self.events as f64 / c);
        self.loadavg = loadavg();
        self
    }

    pub fn param(mut self, key: &str, value: impl Into<serde_json::Value>) -> Figure {
        self.params.insert(key.to_string(), value.into());
        self
    }

    pub fn latencies(mut self, samples_us: &mut [u64]) -> Figure {
        if samples_us.is_empty() {
            return self;
        }
        samples_us.sort_unstable();
        let at = |q: f64| {
            let i = ((samples_us.len() as f64 * q).ceil() as usize).clamp(1, samples_us.len());
            samples_us[i - 1] as f64 / 1000.0
        };
        self.p50_ms = Some(at(0.50));
        self.p99_ms = Some(at(0.99));
        self.p999_ms = Some(at(0.999));
        self
    }
}

fn loadavg() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = s.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// 1234567.0 -> "1.23M".
pub fn human(x: f64) -> String {
    let a = x.abs();
    if a >= 1e9 {
        format!("{:.2}G", x / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}K", x / 1e3)
    } else {
        format!("{x:.1}")
    }
}

fn opt(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.map(f).unwrap_or_else(|| "-".into())
}

/// The final table, one line per figure.
pub fn table(figures: &[Figure]) -> String {
    let header = [
        "workload", "events", "wall s", "cpu s", "ev/s", "ev/cpu-s", "peak RSS", "qps", "p50 ms",
        "p99 ms", "p999 ms",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for f in figures {
        rows.push(vec![
            f.workload.clone(),
            f.events.to_string(),
            format!("{:.2}", f.wall_s),
            opt(f.server_cpu_s, |c| format!("{c:.2}")),
            human(f.events_per_s),
            opt(f.events_per_cpu_s, human),
            f.peak_rss_bytes
                .map(|b| format!("{} MiB", b >> 20))
                .unwrap_or_else(|| "-".into()),
            opt(f.qps, human),
            opt(f.p50_ms, |x| format!("{x:.3}")),
            opt(f.p99_ms, |x| format!("{x:.3}")),
            opt(f.p999_ms, |x| format!("{x:.3}")),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (n, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if n == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut v: Vec<u64> = (1..=1000).map(|x| x * 1000).collect();
        let f = Figure::new("x").latencies(&mut v);
        assert_eq!(f.p50_ms, Some(500.0));
        assert_eq!(f.p99_ms, Some(990.0));
        assert_eq!(f.p999_ms, Some(999.0));
    }

    #[test]
    fn rates_need_cpu_to_be_known() {
        let mut f = Figure::new("x");
        f.events = 100;
        f.wall_s = 2.0;
        let f = f.rates();
        assert_eq!(f.events_per_s, 50.0);
        assert_eq!(f.events_per_cpu_s, None);
        assert!(table(&[f]).contains("50.0"));
    }
}
