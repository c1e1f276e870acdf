//! `aifactory schedule`: JSON as documented, file numbering kept, Gantt charts, clear errors.

use crate::{aifactory, text};
use std::io::Write;

const FT06: &str = "6 6
2 1 0 3 1 6 3 7 5 3 4 6
1 8 2 5 4 10 5 10 0 10 3 4
2 5 3 4 5 8 0 9 1 1 4 7
1 5 0 5 2 5 3 3 4 8 5 9
2 9 1 3 4 5 5 4 0 3 3 1
1 3 3 3 5 9 0 10 4 4 2 1
";

fn instance(text: &str, suffix: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(suffix)
        .tempfile()
        .expect("temp file");
    file.write_all(text.as_bytes()).expect("write");
    file
}

#[test]
fn ft06_json_is_optimal_and_complete() {
    let file = instance(FT06, ".txt");
    let dir = tempfile::tempdir().expect("temp dir");
    let svg = dir.path().join("ft06.svg");
    let out = aifactory(&[
        "schedule",
        &file.path().display().to_string(),
        "--time-limit",
        "5",
        "--json",
        "--gantt",
        &svg.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).expect("json");
    assert_eq!(v["makespan"], 55);
    for key in ["lower_bound", "objective", "time_to_best_s", "iterations"] {
        assert!(v[key].is_number(), "{key}");
    }
    let ops = v["operations"].as_array().expect("operations");
    assert_eq!(ops.len(), 36);
    assert!(
        ops.iter()
            .all(|o| o["machine"].as_u64().is_some_and(|m| m < 6))
    );
    let chart = std::fs::read_to_string(&svg).expect("svg written");
    assert!(chart.starts_with("<svg") && chart.contains("55"));
}

#[test]
fn brandimarte_machines_keep_their_file_numbering() {
    // 2 jobs, 2 machines (numbered 1 and 2 in the file).
    let file = instance("2 2 1\n2 1 1 3 1 2 4\n1 2 1 2 2 5\n", ".fjs");
    let out = aifactory(&[
        "schedule",
        &file.path().display().to_string(),
        "--time-limit",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).expect("json");
    let machines: Vec<u64> = v["operations"]
        .as_array()
        .expect("operations")
        .iter()
        .filter_map(|o| o["machine"].as_u64())
        .collect();
    assert!(machines.iter().all(|&m| m == 1 || m == 2), "{machines:?}");
    assert!(machines.contains(&2));
}

#[test]
fn malformed_instances_name_the_line() {
    let file = instance("2 2\n0 3 1 2\n1 4 0\n", ".txt");
    let out = aifactory(&[
        "schedule",
        &file.path().display().to_string(),
        "--time-limit",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("line 3"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let file = instance("1 2 1\n1 0\n", ".fjs");
    let out = aifactory(&[
        "schedule",
        &file.path().display().to_string(),
        "--time-limit",
        "1",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("line 2"),
        "{}",
        text(&out.stderr)
    );

    let out = aifactory(&["schedule", "/no/such/file.txt"]);
    assert!(
        text(&out.stderr).contains("cannot read instance file"),
        "{}",
        text(&out.stderr)
    );
    let file = instance(FT06, ".txt");
    let out = aifactory(&[
        "schedule",
        &file.path().display().to_string(),
        "--objective",
        "twt",
    ]);
    assert!(
        text(&out.stderr).contains("needs due dates"),
        "{}",
        text(&out.stderr)
    );
}
