//! `aifactory demo`: runs with no service and no network, writes SQLite, prints KPIs.

use crate::{aifactory, text};

#[test]
fn demo_runs_and_saves_to_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("demo.sqlite");
    let db_arg = db.display().to_string();
    let out = aifactory(&["demo", "--days", "3", "--db", &db_arg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    // The short ladder follows the run: every tier, each with its assessed tier.
    for needle in [
        "OEE",
        "On-time delivery",
        "Total cost",
        "TURN-01",
        &db_arg,
        "The AI-factory ladder",
        "closed loop",
    ] {
        assert!(
            stdout.contains(needle),
            "`{needle}` missing from:\n{stdout}"
        );
    }
    assert!(db.exists());
    assert!(std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) > 100_000);
    // The telemetry took the plant's path: Sparkplug B through the embedded broker into ingest.
    assert!(
        stdout.contains("through the embedded broker") && stdout.contains("0 quarantined"),
        "{stdout}"
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let counts = runtime.block_on(async {
        let store = aifactory_store::Store::open(&db_arg).await.expect("open");
        store.series_counts().await.expect("series")
    });
    let turning: Vec<_> = counts
        .iter()
        .filter(|(s, _)| &*s.site == "hz-auto-parts" && &*s.device == "TURN-01")
        .collect();
    assert!(
        turning
            .iter()
            .any(|(s, n)| &*s.metric == "temperature_c" && **n > 100),
        "TURN-01 temperature missing from the ingested series: {turning:?}"
    );
}

#[test]
fn demo_json_is_one_object() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("d.sqlite").display().to_string();
    let out = aifactory(&["demo", "--days", "1", "--db", &db, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).expect("json");
    assert_eq!(v["plant"], "hz-auto-parts");
    assert!(v["oee"].as_f64().is_some_and(|x| (0.0..=1.0).contains(&x)));
}

#[test]
fn config_file_overrides_defaults_and_typos_fail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("c.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &cfg,
        format!(
            "[data]\ndir = {:?}\n[demo]\ndays = 1\nseed = 9\n",
            data.display().to_string()
        ),
    )
    .expect("write config");
    let out = aifactory(&["--config", &cfg.display().to_string(), "demo", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).expect("json");
    assert_eq!(v["seed"], 9);
    assert_eq!(v["sim_days"], 1.0);
    assert!(data.join("demo.sqlite").exists());

    std::fs::write(&cfg, "[demo]\ndayz = 1\n").expect("write config");
    let out = aifactory(&["--config", &cfg.display().to_string(), "demo"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("dayz"), "{}", text(&out.stderr));
}
