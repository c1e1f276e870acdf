//! `aifactory eval nab`: scores a NAB-layout folder, writes NAB's results layout, and says what is
//! wrong with a broken folder.

use crate::{aifactory, text};
use std::fmt::Write;
use std::path::Path;

/// A two-series NAB folder: a sine with one spike (and a window around it), and a quiet series.
fn tiny_nab(root: &Path) {
    std::fs::create_dir_all(root.join("data/synthetic")).unwrap();
    std::fs::create_dir_all(root.join("labels")).unwrap();
    let mut spiky = String::from("timestamp,value\n");
    let mut quiet = String::from("timestamp,value\n");
    for i in 0..2000u32 {
        let (h, m) = ((i * 5) / 60, (i * 5) % 60);
        let t = format!("2020-01-{:02} {:02}:{:02}:00", 1 + h / 24, h % 24, m);
        let base = 10.0 + 3.0 * (f64::from(i) * std::f64::consts::TAU / 288.0).sin();
        let v = if i == 1500 { base + 40.0 } else { base };
        writeln!(spiky, "{t},{v}").unwrap();
        writeln!(quiet, "{t},{base}").unwrap();
    }
    std::fs::write(root.join("data/synthetic/spiky.csv"), spiky).unwrap();
    std::fs::write(root.join("data/synthetic/quiet.csv"), quiet).unwrap();
    // Row 1450 .. 1549 around the spike at row 1500.
    let stamp = |i: u32| {
        let (h, m) = ((i * 5) / 60, (i * 5) % 60);
        format!("2020-01-{:02} {:02}:{:02}:00.000000", 1 + h / 24, h % 24, m)
    };
    let windows = serde_json::json!({
        "synthetic/spiky.csv": [[stamp(1450), stamp(1549)]],
        "synthetic/quiet.csv": [],
    });
    std::fs::write(
        root.join("labels/combined_windows.json"),
        windows.to_string(),
    )
    .unwrap();
}

#[test]
fn eval_nab_scores_a_corpus_and_writes_nab_results() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nab");
    tiny_nab(&data);
    let out = dir.path().join("results");
    let o = aifactory(&[
        "eval",
        "nab",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // The spike is found inside its window with no false alarm: close to a perfect score.
    let standard = v["standard"].as_f64().unwrap();
    assert!(standard > 80.0, "{v}");
    for key in ["reward_low_fp", "reward_low_fn", "points_per_s"] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key}: {v}");
    }
    assert_eq!(v["points"], 4000);
    let written = std::fs::read_to_string(out.join("aifactory/synthetic/aifactory_spiky.csv"))
        .expect("NAB results layout");
    let mut lines = written.lines();
    assert_eq!(lines.next(), Some("timestamp,value,anomaly_score,label"));
    let labelled = written.lines().filter(|l| l.ends_with(",1")).count();
    assert_eq!(labelled, 100, "rows inside the window carry label 1");
    assert_eq!(written.lines().count(), 2001);
}

#[test]
fn eval_nab_reports_a_broken_folder_precisely() {
    let dir = tempfile::tempdir().unwrap();
    let o = aifactory(&["eval", "nab", "--data", dir.path().to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("combined_windows.json"),
        "{}",
        text(&o.stderr)
    );

    let data = dir.path().join("nab");
    tiny_nab(&data);
    let csv = data.join("data/synthetic/quiet.csv");
    let mut body = std::fs::read_to_string(&csv).unwrap();
    body.push_str("2020-01-09 00:00:00,n/a\n");
    std::fs::write(&csv, body).unwrap();
    let o = aifactory(&["eval", "nab", "--data", data.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains("quiet.csv:2002: value"), "{err}");

    tiny_nab(&data);
    let windows = data.join("labels/combined_windows.json");
    std::fs::write(
        &windows,
        r#"{"synthetic/spiky.csv": [["2031-01-01 00:00:00", "2031-01-02 00:00:00"]], "synthetic/quiet.csv": []}"#,
    )
    .unwrap();
    let o = aifactory(&["eval", "nab", "--data", data.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("not a row of the data file"),
        "{}",
        text(&o.stderr)
    );

    tiny_nab(&data);
    let o = aifactory(&[
        "eval",
        "nab",
        "--data",
        data.to_str().unwrap(),
        "--detector",
        "magic",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("windowed-gaussian"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn eval_cmapss_names_the_missing_file_and_a_bad_subset() {
    let dir = tempfile::tempdir().unwrap();
    let o = aifactory(&["eval", "cmapss", "--data", dir.path().to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("train_FD001.txt"),
        "{}",
        text(&o.stderr)
    );
    let o = aifactory(&[
        "eval",
        "cmapss",
        "--data",
        dir.path().to_str().unwrap(),
        "--subset",
        "../etc",
    ]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("FD00"), "{}", text(&o.stderr));
}

#[test]
fn eval_bo_compares_with_random_search_on_the_twins_quality_surface() {
    let o = aifactory(&["eval", "bo", "--seeds", "2", "--budget", "15", "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let problems = v["problems"].as_array().unwrap();
    // Every routing step of the reference plant with process parameters is a problem.
    assert!(problems.len() >= 10, "{v}");
    assert!(
        problems
            .iter()
            .all(|p| p["parameters"].as_u64().unwrap() >= 1)
    );
    // Fewer trials than random search (fixed seeds: the same figures every run).
    assert!(v["ratio"].as_f64().unwrap() > 1.2, "{v}");
    let o = aifactory(&["eval", "bo", "--budget", "2"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("--budget"), "{}", text(&o.stderr));
}

#[test]
fn eval_twin_pairs_each_skill_with_its_tier0_baseline() {
    let o = aifactory(&["eval", "twin", "--seeds", "3", "--days", "20", "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let kpis = v["maintenance"]["kpis"].as_array().unwrap();
    let names: Vec<&str> = kpis.iter().map(|k| k["kpi"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "failures",
            "maintenance_cost",
            "downtime_h",
            "availability",
            "oee"
        ]
    );
    for k in kpis {
        let d = &k["difference"];
        let (mean, ci) = (d["mean"].as_f64().unwrap(), d["ci95"].as_f64().unwrap());
        assert!(ci.is_finite() && ci >= 0.0, "{k}");
        // The difference is the skill's mean minus tier 0's.
        let gap = k["skill"].as_f64().unwrap() - k["tier0"].as_f64().unwrap();
        assert!((mean - gap).abs() < 1e-6 * (1.0 + gap.abs()), "{k}");
    }
    let quality: Vec<&str> = v["quality"]["kpis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kpi"].as_str().unwrap())
        .collect();
    assert_eq!(quality, ["scrap_rate", "scrap_cost", "failures", "oee"]);
    // Ranking jobs by predicted risk finds more scrap than ranking steps by their rate.
    let defects = &v["defect_risk"]["kpis"];
    assert_eq!(defects[0]["kpi"], "defects_found", "{v}");
    assert_eq!(defects[0]["better"], true, "{v}");
    let found = defects[0]["skill"].as_f64().unwrap();
    assert!(found > 0.2 && found <= 1.0, "{v}");
    let replenishment: Vec<&str> = v["replenishment"]["kpis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kpi"].as_str().unwrap())
        .collect();
    assert_eq!(
        replenishment,
        [
            "stockouts",
            "material_holding",
            "holding_cost",
            "on_time_delivery",
            "total_cost"
        ]
    );
    // Material holding is part of holding, on both sides of every comparison.
    for side in ["tier0", "skill"] {
        let kpis = &v["replenishment"]["kpis"];
        assert!(kpis[1][side].as_f64().unwrap() > 0.0, "{v}");
        assert!(
            kpis[1][side].as_f64().unwrap() <= kpis[2][side].as_f64().unwrap(),
            "{v}"
        );
    }
    // Learnt settings scrap less than the defaults on every seed here.
    assert_eq!(v["quality"]["kpis"][0]["better"], true, "{v}");
    // The forecaster beats seasonal naive on the twin's demand on every seed.
    assert!(
        v["forecasting"]["mase_ratio"].as_f64().unwrap() < 0.9,
        "{v}"
    );
    assert_eq!(v["forecasting"]["mase"]["better"], true, "{v}");
    let o = aifactory(&["eval", "twin", "--seeds", "1"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("--seeds"), "{}", text(&o.stderr));
}
