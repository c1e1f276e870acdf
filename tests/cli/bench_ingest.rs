//! `aifactory bench ingest`: the benchmark counts what it committed against what it sent, through
//! the embedded broker; speed is for the benchmark itself, not asserted here.

use crate::{aifactory, text};

#[test]
fn a_small_bench_run_commits_every_point_it_sent() {
    let out = aifactory(&[
        "bench",
        "ingest",
        "--points",
        "20000",
        "--single-points",
        "500",
        "--latency-seconds",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).expect("one JSON object");
    assert!(
        v["ceiling"]["points_per_s"]
            .as_f64()
            .is_some_and(|x| x > 0.0)
    );
    let runs = v["throughput"].as_array().expect("throughput runs");
    assert_eq!(runs.len(), 2, "single-metric and batched, embedded broker");
    for run in runs {
        assert_eq!(run["lost_points"], 0, "{run}");
        assert_eq!(run["points_committed"], run["points_sent"], "{run}");
        assert_eq!(run["quarantined"], 0, "{run}");
    }
    // 10 device births of 100 metrics + the node's rebirth flag + 200 DDATA of 100 metrics.
    assert_eq!(runs[1]["points_sent"], 1_000 + 1 + 20_000);
    let latency = &v["latency"];
    assert!(
        latency["p99_ms"]
            .as_f64()
            .is_some_and(|p| p >= latency["p50_ms"].as_f64().unwrap_or(f64::MAX))
    );
    assert_eq!(latency["lost_points"], 0);
}

#[test]
fn bad_bench_arguments_are_refused_with_the_reason() {
    let out = aifactory(&["bench", "ingest", "--metrics-per-message", "0"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--metrics-per-message"),
        "{}",
        text(&out.stderr)
    );
    let out = aifactory(&["bench", "ingest", "--soak-seconds", "-5"]);
    assert!(!out.status.success());
    let out = aifactory(&["bench", "ingest", "--no-embedded"]);
    assert!(!out.status.success(), "--no-embedded needs --mqtt");
}
