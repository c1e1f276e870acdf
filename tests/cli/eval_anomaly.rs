//! `aifactory eval anomaly` and `eval anomaly-data`: a labelled folder scored end to end, the
//! twin written as such a folder, and malformed files reported by file, line and column.

use crate::{aifactory, text};
use std::fmt::Write;
use std::path::Path;

/// A machine whose current follows its load until row 1,700, then climbs away from it while
/// staying inside its usual range; rows 1,700.. are labelled.
fn machine_csv(fault: bool) -> String {
    let mut out = String::from("timestamp,vibration_mm_s,current_a,anomaly\n");
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for i in 0..2000u32 {
        let load = 0.3 + 0.7 * ((f64::from(i) / 37.0).sin() * 0.5 + 0.5);
        let vib = 2.0 * (0.4 + 0.6 * load) * (1.0 + 0.03 * (next() - 0.5));
        let drift = if fault && i >= 1700 { 0.3 } else { 0.0 };
        let current = 27.0 * (0.3 + 0.7 * load) * (1.0 + drift + 0.03 * (next() - 0.5));
        let label = u8::from(fault && i >= 1700);
        let (d, h, m) = (1 + i / 1440, (i / 60) % 24, i % 60);
        writeln!(
            out,
            "2024-03-{d:02}T{h:02}:{m:02}:00Z,{vib:.4},{current:.3},{label}"
        )
        .unwrap();
    }
    out
}

fn folder(root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("TURN-01.csv"), machine_csv(true)).unwrap();
    std::fs::write(root.join("TURN-02.csv"), machine_csv(false)).unwrap();
}

#[test]
fn eval_anomaly_scores_a_labelled_folder() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path());
    let data = dir.path().to_str().unwrap();
    let o = aifactory(&["eval", "anomaly", "--data", data, "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["detector"], "multivariate");
    assert_eq!(v["files"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["files"][0]["train_rows"], 600);
    let overall = &v["overall"];
    assert_eq!(overall["events"], 1);
    assert_eq!(overall["events_missed"], 0, "{overall}");
    assert!(overall["recall"].as_f64().unwrap() > 0.9, "{overall}");
    // Six hundred training rows calibrate the tails only roughly: a few per cent of false
    // alarms on the healthy machine (1.8 % today).
    assert!(
        overall["false_alarm_rate"].as_f64().unwrap() < 0.05,
        "{overall}"
    );
    assert!(v["oracle"]["f1"].as_f64().is_some(), "{v}");
    // The table names the threshold's origin and the oracle as what it is.
    let o = aifactory(&[
        "eval",
        "anomaly",
        "--data",
        data,
        "--detector",
        "univariate",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("TURN-01.csv"), "{out}");
    assert!(out.contains("the detector's alarm level"), "{out}");
    assert!(out.contains("Oracle"), "{out}");
}

/// Runs `eval anomaly` on a folder holding one good file and `bad`, and returns stderr.
fn error_for(bad: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path());
    std::fs::write(dir.path().join("BAD-01.csv"), bad).unwrap();
    let o = aifactory(&["eval", "anomaly", "--data", dir.path().to_str().unwrap()]);
    assert!(!o.status.success());
    text(&o.stderr)
}

#[test]
fn a_missing_label_column_is_named_with_file_and_line() {
    let e = error_for("timestamp,a,b\n2024-03-01T00:00:00Z,1,2\n");
    assert!(
        e.contains("BAD-01.csv: line 1: no `anomaly` label column"),
        "{e}"
    );
}

#[test]
fn a_non_numeric_cell_is_named_with_file_line_and_column() {
    let e = error_for(
        "timestamp,a,b,anomaly\n2024-03-01T00:00:00Z,1,2,0\n2024-03-01T00:01:00Z,1,n/a,0\n",
    );
    assert!(
        e.contains("BAD-01.csv: line 3, column 3 (b): \"n/a\" is not a number"),
        "{e}"
    );
}

#[test]
fn unsorted_timestamps_are_named_with_file_line_and_column() {
    let e = error_for("timestamp;a;anomaly\n2024-03-01T00:05:00Z;1;0\n2024-03-01T00:01:00Z;1;0\n");
    assert!(
        e.contains("BAD-01.csv: line 3, column 1 (timestamp)") && e.contains("earlier than line 2"),
        "{e}"
    );
}

#[test]
fn both_commands_explain_themselves() {
    for (args, needle) in [
        (["eval", "anomaly", "--help"], "--train-share"),
        (["eval", "anomaly-data", "--help"], "--from-nab"),
    ] {
        let o = aifactory(&args);
        assert!(o.status.success(), "{args:?}");
        assert!(text(&o.stdout).contains(needle), "{}", text(&o.stdout));
    }
}

#[test]
fn bad_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path());
    let data = dir.path().to_str().unwrap();
    for (args, expected) in [
        (vec!["--detector", "magic"], "not known"),
        (vec!["--train-share", "1.5"], "--train-share"),
        (vec!["--settings", "{\"nope\": 1}"], "unknown field"),
    ] {
        let mut all = vec!["eval", "anomaly", "--data", data];
        all.extend(args);
        let o = aifactory(&all);
        assert!(!o.status.success());
        assert!(text(&o.stderr).contains(expected), "{}", text(&o.stderr));
    }
    let empty = tempfile::tempdir().unwrap();
    let o = aifactory(&["eval", "anomaly", "--data", empty.path().to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("no .csv file"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn anomaly_data_writes_the_twin_as_a_labelled_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("twin");
    let o = aifactory(&[
        "eval",
        "anomaly-data",
        "--out",
        out.to_str().unwrap(),
        "--days",
        "20",
        "--seed",
        "3",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let written = std::fs::read_to_string(out.join("TURN-01-s3.csv")).expect("a file per machine");
    let mut lines = written.lines();
    assert_eq!(
        lines.next(),
        Some("timestamp,vibration_mm_s,temperature_c,current_a,anomaly")
    );
    let first = lines.next().unwrap_or_default();
    assert!(first.starts_with("20") && first.contains("Z,"), "{first}");
    assert!(
        written
            .lines()
            .skip(1)
            .all(|l| l.ends_with(",0") || l.ends_with(",1"))
    );
    let labelled: usize = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .map(|t| t.lines().filter(|l| l.ends_with(",1")).count())
        .sum();
    assert!(labelled > 0, "run to failure labels some P–F intervals");
    assert!(
        text(&o.stdout).contains("P–F intervals"),
        "{}",
        text(&o.stdout)
    );
    let o = aifactory(&["eval", "anomaly", "--data", out.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
}
