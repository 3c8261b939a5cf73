//! `sluice bench` end to end: every workload runs against spawned real servers at a small
//! scale and the JSON report holds every figure the harness promises.

use std::process::Command;

#[test]
fn every_workload_runs_and_reports_its_figures() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "bench",
            "all",
            "--events",
            "3000",
            "--keys",
            "300",
            "--duration",
            "1",
            "--rate",
            "1000",
            "--subscribers",
            "5",
            "--batch",
            "200",
            "--data-dir",
        ])
        .arg(dir.path())
        .arg("--json")
        .arg(&report)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("ev/cpu-s"), "no final table:\n{stdout}");

    let figures: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let by_name = |name: &str| {
        figures
            .iter()
            .find(|f| f["workload"] == name)
            .unwrap_or_else(|| panic!("no {name} figure in {figures:#?}"))
    };
    for f in &figures {
        for field in [
            "workload",
            "events",
            "wall_s",
            "server_cpu_s",
            "events_per_s",
            "events_per_cpu_s",
            "peak_rss_bytes",
        ] {
            assert!(f.get(field).is_some(), "{field} missing in {f}");
        }
        assert!(f["wall_s"].as_f64().unwrap() > 0.0, "{f}");
        assert!(f["peak_rss_bytes"].as_u64().unwrap() > 1 << 20, "{f}");
        assert!(f["server_cpu_s"].as_f64().unwrap() > 0.0, "{f}");
    }
    for name in ["ingest", "groupby", "stateless", "fanout", "catchup"] {
        assert_eq!(by_name(name)["events"], 3000, "{name}");
    }
    let fresh = by_name("freshness");
    assert_eq!(fresh["events"], 1000);
    for p in ["p50_ms", "p99_ms", "p999_ms"] {
        assert!(fresh[p].as_f64().is_some(), "freshness lacks {p}: {fresh}");
    }
    for name in ["pull", "pull-query"] {
        let pull = by_name(name);
        assert!(pull["qps"].as_f64().unwrap() > 0.0, "{pull}");
        assert!(pull["p99_ms"].as_f64().is_some(), "{pull}");
    }
    let rec = by_name("recovery");
    assert!(
        rec["params"]["restart_to_first_pull_s"].as_f64().unwrap() > 0.0,
        "{rec}"
    );
    // Every expressible Nexmark query ran over the events of its streams, of 3000 events:
    // bids are 46 of every 50, auctions 3, persons 1; the joins read two streams.
    let nexmark: Vec<_> = figures
        .iter()
        .filter(|f| f["workload"].as_str().unwrap().starts_with("nexmark-"))
        .collect();
    assert!(nexmark.len() >= 15, "{nexmark:#?}");
    for (q, what) in [
        ("nexmark-q11", "session windows"),
        ("nexmark-q3", "an auction-person join"),
        ("nexmark-q20", "a bid-auction join"),
        ("nexmark-q4", "a join feeding two aggregations"),
        (
            "nexmark-q8",
            "a join of two windowed aggregations' changelogs",
        ),
    ] {
        assert!(
            nexmark.iter().any(|f| f["workload"] == q),
            "{q} ({what}) ran: {nexmark:#?}"
        );
    }
    for f in nexmark {
        let events = match f["workload"].as_str().unwrap() {
            "nexmark-q3" | "nexmark-q8" => 180 + 60,
            "nexmark-q20" => 2760 + 180,
            "nexmark-q4" => 180 + 2760,
            _ => 2760,
        };
        assert_eq!(f["events"], events, "{f}");
    }
}

#[test]
fn unknown_workload_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["bench", "ingestt"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown workload 'ingestt'") && stderr.contains("groupby"),
        "{stderr}"
    );
}
