//! `aifactory import`: the SME path from CSV exports to a scheduling instance and a schedule.

use crate::{aifactory, repo_file, text};

#[test]
fn the_sample_csv_exports_import_and_schedule() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("instance.json").display().to_string();
    let run = aifactory(&[
        "import",
        &repo_file("examples/sme-csv"),
        "--out",
        &out,
        "--solve",
        "1",
        "--json",
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).expect("json");
    assert_eq!(
        (v["machines"].as_u64(), v["orders"].as_u64()),
        (Some(5), Some(6)),
        "{v}"
    );
    let orders = v["schedule"]["orders"]
        .as_array()
        .expect("scheduled orders");
    assert_eq!(orders.len(), 6);
    assert!(orders.iter().all(|o| {
        o["completes"]
            .as_str()
            .is_some_and(|c| c.starts_with("2026-12-"))
    }));
    // The instance is one `aifactory schedule` reads and solves.
    let solved = aifactory(&[
        "schedule",
        &out,
        "--objective",
        "twt",
        "--time-limit",
        "1",
        "--json",
    ]);
    assert!(solved.status.success(), "{}", text(&solved.stderr));
    let s: serde_json::Value = serde_json::from_slice(&solved.stdout).expect("json");
    assert_eq!(
        s["operations"].as_array().map(Vec::len),
        Some(18),
        "three steps for each of six orders"
    );
}

#[test]
fn bad_rows_are_refused_by_file_row_and_column_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let orders = dir.path().join("orders.csv");
    std::fs::write(
        &orders,
        "order_id,product_id,quantity,due\nA,SHAFT-20,3,2026-12-01\nB,SHAFT-20,x,2026-12-01\nC,BOLT,1,2026-12-31\n",
    )
    .expect("write");
    let out = dir.path().join("instance.json");
    let run = aifactory(&[
        "import",
        &repo_file("examples/sme-csv/machines.csv"),
        &repo_file("examples/sme-csv/routings.csv"),
        &orders.display().to_string(),
        "--out",
        &out.display().to_string(),
    ]);
    assert!(!run.status.success());
    let err = text(&run.stderr);
    assert!(err.contains("orders.csv:3: quantity: `x`"), "{err}");
    assert!(
        err.contains("orders.csv:4: product_id: `BOLT` has no routing"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written when a row is refused");
    let run = aifactory(&["import", "/nonexistent/machines.csv"]);
    assert!(!run.status.success());
    assert!(text(&run.stderr).contains("/nonexistent/machines.csv"));
}

#[test]
fn a_folder_without_the_three_tables_says_which_are_missing() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("machines.csv"),
        "machine_id,work_centre\nM1,WC\n",
    )
    .expect("write");
    let run = aifactory(&["import", &dir.path().display().to_string()]);
    assert!(!run.status.success());
    let err = text(&run.stderr);
    assert!(
        err.contains("no routings table") && err.contains("no orders table"),
        "{err}"
    );
}
