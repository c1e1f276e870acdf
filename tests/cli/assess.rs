//! `aifactory assess` over a real SQLite store, and `assess verify` on the bundle it signs.

use crate::{aifactory, text};
use aifactory_core::{Decision, ExecutedBy, LifecycleStage, TelemetryReading, Timestamp};
use aifactory_store::Store;

fn decision(id: &str, at: i64, skill: &str, stage: LifecycleStage, inputs_ref: &str) -> Decision {
    Decision {
        id: id.into(),
        at: Timestamp(at),
        skill: skill.into(),
        stage,
        inputs_ref: inputs_ref.into(),
        model: format!("{skill}-model"),
        model_version: "1".into(),
        output: serde_json::json!({"n": at}),
        confidence: Some(0.7),
        executed_by: ExecutedBy::None,
        outcome: None,
    }
}

/// A store where the maintenance skill and the scheduler decide, the scheduler citing the
/// maintenance decisions, and two machines stream telemetry.
pub(crate) fn plant_store(path: &std::path::Path) {
    plant_store_at(&path.display().to_string());
}

/// [`plant_store`] at a store location: a SQLite path or a PostgreSQL URL.
fn plant_store_at(location: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::open(location).await.unwrap();
        for i in 0..4 {
            let m = format!("D-M{i}");
            store
                .record_decision(&decision(
                    &m,
                    i * 1000,
                    "maintenance",
                    LifecycleStage::Production,
                    "health@TURN-01",
                ))
                .await
                .unwrap();
            store
                .record_decision(&decision(
                    &format!("D-S{i}"),
                    i * 1000 + 1,
                    "scheduling",
                    LifecycleStage::Production,
                    &format!("floor;decision:{m}"),
                ))
                .await
                .unwrap();
        }
        let readings: Vec<TelemetryReading> = ["TURN-01", "MILL-01"]
            .iter()
            .map(|m| TelemetryReading {
                at: Timestamp(0),
                machine: (*m).into(),
                signal: "vibration_mm_s".into(),
                value: 2.0,
            })
            .collect();
        store.append_telemetry(None, &readings).await.unwrap();
        store.close().await;
    });
}

#[test]
fn assesses_the_ledger_signs_a_bundle_and_catches_an_edited_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("plant.db");
    plant_store(&db);
    let db = db.display().to_string();
    let bundle = dir.path().join("evidence.json");
    let html = dir.path().join("report.html");
    let out = aifactory(&[
        "assess",
        "--db",
        &db,
        "--plant-id",
        "PLANT-7",
        "--bundle",
        &bundle.display().to_string(),
        "--html",
        &html.display().to_string(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = &v["assessment"];
    // One linked stage, three links missing: tier 1, and it names what tier 2 lacks.
    assert_eq!(a["tier"], 1, "{v}");
    assert_eq!(v["coverage"]["machines_streaming"], 2, "{v}");
    let production = &a["stages"][2];
    assert_eq!(production["stage"], "production");
    assert_eq!(production["depth"], 2, "{v}");
    assert_eq!(production["decisions"], 8);
    let missing = a["missing_for_next_tier"].to_string();
    assert!(missing.contains("forecast-to-plan"), "{missing}");
    assert!(!missing.contains("maintenance-to-schedule"), "{missing}");
    // The key was created beside the store, owner-readable only.
    let key = dir.path().join("aifactory-signing.key");
    assert!(key.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
    assert!(std::fs::read_to_string(&html).unwrap().contains("PLANT-7"));

    let bundle_arg = bundle.display().to_string();
    let ok = aifactory(&["assess", "verify", &bundle_arg]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stdout).contains("PLANT-7 is tier 1"),
        "{}",
        text(&ok.stdout)
    );

    // Edit one ledger row (the 5th entry: a maintenance decision executed after all).
    let mut b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    b["ledger"][4]["record"]["executed_by"] = "auto".into();
    std::fs::write(&bundle, serde_json::to_vec(&b).unwrap()).unwrap();
    let bad = aifactory(&["assess", "verify", &bundle_arg]);
    assert!(!bad.status.success());
    let err = text(&bad.stderr);
    assert!(err.contains("row 5") && err.contains("edited"), "{err}");
    let bad_json = aifactory(&["assess", "verify", &bundle_arg, "--json"]);
    assert!(!bad_json.status.success());
    let v: serde_json::Value = serde_json::from_slice(&bad_json.stdout).unwrap();
    assert_eq!(v["verified"], false);

    // A second run reuses the key: the same public key signs.
    let again = aifactory(&["assess", "--db", &db, "--bundle", &bundle_arg]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(!text(&again.stdout).contains("created now"));
}

#[test]
fn bad_invocations_say_what_is_wrong() {
    let out = aifactory(&["assess"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--db"), "{}", text(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"format\": 1}").unwrap();
    let out = aifactory(&["assess", "verify", &junk.display().to_string()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not an evidence bundle"),
        "{}",
        text(&out.stderr)
    );
    let key = dir.path().join("bad.key");
    std::fs::write(&key, "not hex").unwrap();
    let db = dir.path().join("p.db");
    plant_store(&db);
    let out = aifactory(&[
        "assess",
        "--db",
        &db.display().to_string(),
        "--bundle",
        &dir.path().join("b.json").display().to_string(),
        "--key",
        &key.display().to_string(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("64 hex digits"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_recorded_tier1_run_is_assessed_tier1_and_tier0_is_tier0() {
    let dir = tempfile::tempdir().unwrap();
    let plant = crate::repo_file("plants/sme-textile.toml");
    let assess = |policy: &str| -> serde_json::Value {
        let db = dir
            .path()
            .join(format!("{policy}.db"))
            .display()
            .to_string();
        let out = aifactory(&[
            "sim", "--plant", &plant, "--policy", policy, "--days", "90", "--seed", "3", "--db",
            &db,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let out = aifactory(&["assess", "--db", &db, "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let tier0 = assess("edd");
    assert_eq!(tier0["assessment"]["tier"], 0, "{tier0}");
    let tier1 = assess("tier1");
    let a = &tier1["assessment"];
    assert_eq!(a["tier"], 1, "{tier1}");
    // The skills' own decisions are the evidence: maintenance stops in production, purchases
    // in management citing the forecasts they rest on.
    let stage = |name: &str| {
        a["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stage"] == name)
            .cloned()
            .unwrap()
    };
    assert!(
        stage("production")["decisions"].as_u64().unwrap() > 0,
        "{a}"
    );
    assert!(
        stage("management")["executed_auto"].as_u64().unwrap() > 0,
        "{a}"
    );
    assert!(a["links"][1]["citations"].as_u64().unwrap() > 0, "{a}");
    let missing = a["missing_for_next_tier"].to_string();
    assert!(missing.contains("maintenance-to-schedule"), "{missing}");
    // The coordinator's shared plan, recorded, is assessed as tier 2 from the store alone.
    let tier2 = assess("tier2");
    let a = &tier2["assessment"];
    assert_eq!(a["tier"], 2, "{tier2}");
    for link in a["links"].as_array().unwrap() {
        assert!(link["citations"].as_u64().unwrap() > 0, "{link}");
    }
}

/// Runs raw SQL on a SQLite file, as an intruder with a database client would.
fn sqlite_raw(path: &std::path::Path, sql: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use sqlx::Connection;
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
        conn.close().await.unwrap();
    });
}

/// SQLite's statements that drop the ledger's append-only triggers.
const SQLITE_DROP_TRIGGERS: &str = "DROP TRIGGER decisions_append_only_update; \
     DROP TRIGGER decisions_append_only_delete; DROP TRIGGER decision_outcomes_append_only_update; \
     DROP TRIGGER decision_outcomes_append_only_delete; DROP TRIGGER ledger_append_only_update; \
     DROP TRIGGER ledger_append_only_delete;";

/// `assess --db` on a store an intruder edited fails, naming the row.
fn assess_fails_naming(location: &str, expected: &[&str]) {
    let out = aifactory(&["assess", "--db", location]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    for e in expected {
        assert!(err.contains(e), "expected `{e}` in: {err}");
    }
}

#[test]
fn an_update_or_delete_with_a_raw_sql_client_fails_assess_naming_the_row() {
    let dir = tempfile::tempdir().unwrap();
    // Ledger order: D-M0, D-S0, D-M1, D-S1, D-M2, D-S2 (row 6), ...
    let edited = dir.path().join("edited.db");
    plant_store(&edited);
    sqlite_raw(
        &edited,
        &format!(
            "{SQLITE_DROP_TRIGGERS} UPDATE decisions SET output = '{{\"n\":1}}' WHERE id = 'D-S2'"
        ),
    );
    assess_fails_naming(
        &edited.display().to_string(),
        &["ledger row 6", "decision D-S2", "edited"],
    );
    let deleted = dir.path().join("deleted.db");
    plant_store(&deleted);
    sqlite_raw(
        &deleted,
        &format!("{SQLITE_DROP_TRIGGERS} DELETE FROM decisions WHERE id = 'D-M1'"),
    );
    assess_fails_naming(&deleted.display().to_string(), &["ledger row 3", "deleted"]);
    // Deleting the chain's row too leaves a gap, found at the same place.
    let both = dir.path().join("both.db");
    plant_store(&both);
    sqlite_raw(
        &both,
        &format!(
            "{SQLITE_DROP_TRIGGERS} DELETE FROM decisions WHERE id = 'D-M1'; DELETE FROM ledger WHERE seq = 3"
        ),
    );
    assess_fails_naming(&both.display().to_string(), &["ledger row 3", "removed"]);
}

#[test]
fn an_update_or_delete_with_a_raw_sql_client_fails_assess_naming_the_row_on_postgresql() {
    let Ok(admin_url) = std::env::var("AIFACTORY_TEST_PG_URL") else {
        eprintln!("skipped: set AIFACTORY_TEST_PG_URL to a PostgreSQL database");
        return;
    };
    let separator = if admin_url.contains('?') { '&' } else { '?' };
    for (case, sql, expected) in [
        (
            "edit",
            "UPDATE decisions SET confidence = 0.99 WHERE id = 'D-S2'",
            &["ledger row 6", "decision D-S2", "edited"][..],
        ),
        (
            "delete",
            "DELETE FROM decisions WHERE id = 'D-M1'",
            &["ledger row 3", "deleted"][..],
        ),
    ] {
        let schema = format!("aifactory_assess_{case}_{}", std::process::id());
        crate::portal::admin(
            &admin_url,
            format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
        );
        let url = format!("{admin_url}{separator}options[search_path]={schema}");
        plant_store_at(&url);
        crate::portal::admin(
            &url,
            format!("DROP FUNCTION ledger_append_only() CASCADE; {sql}"),
        );
        let out = aifactory(&["assess", "--db", &url]);
        crate::portal::admin(&admin_url, format!("DROP SCHEMA {schema} CASCADE"));
        assert!(!out.status.success(), "{case}: {}", text(&out.stdout));
        let err = text(&out.stderr);
        for e in expected {
            assert!(err.contains(e), "{case}: expected `{e}` in: {err}");
        }
    }
}

/// Copies the SQLite store at `from` to `to` with its ledger rewritten without the records
/// `drop` picks: the same plant and telemetry, a ledger that never had them.
fn copy_without(
    from: &std::path::Path,
    to: &std::path::Path,
    drop: impl Fn(&aifactory_core::LedgerRecord) -> bool,
) {
    std::fs::copy(from, to).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let records: Vec<aifactory_core::LedgerRecord> = runtime.block_on(async {
        let store = Store::open_path(from).await.unwrap();
        let entries = store.ledger().await.unwrap();
        store.close().await;
        entries
            .into_iter()
            .map(|e| e.record)
            .filter(|r| !drop(r))
            .collect()
    });
    sqlite_raw(
        to,
        &format!(
            "{SQLITE_DROP_TRIGGERS} DROP TRIGGER model_updates_append_only_delete; \
             DELETE FROM ledger; DELETE FROM decision_outcomes; DELETE FROM model_updates; \
             DELETE FROM decisions;"
        ),
    );
    runtime.block_on(async {
        let store = Store::open_path(to).await.unwrap();
        store.append_ledger(&records).await.unwrap();
        store.close().await;
    });
}

#[test]
fn a_recorded_tier3_run_earns_tier3_from_its_store_and_tier2_without_its_outcomes_or_model_updates()
{
    let dir = tempfile::tempdir().unwrap();
    let plant = crate::repo_file("plants/sme-textile.toml");
    let db = dir.path().join("tier3.db");
    let out = aifactory(&[
        "sim",
        "--plant",
        &plant,
        "--policy",
        "tier3",
        "--days",
        "60",
        "--seed",
        "3",
        "--db",
        &db.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let assess = |db: &std::path::Path| -> serde_json::Value {
        let out = aifactory(&["assess", "--db", &db.display().to_string(), "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let full = assess(&db);
    let a = &full["assessment"];
    assert_eq!(a["tier"], 3, "{full}");
    assert!(full["ledger_entries"].as_u64().unwrap() > 0, "{full}");
    let out = aifactory(&["assess", "--db", &db.display().to_string()]);
    let said = text(&out.stdout);
    assert!(
        said.contains("the store's hash chain verified")
            && said.contains(full["ledger_head"].as_str().unwrap()),
        "{said}"
    );
    let production = a["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "production")
        .unwrap();
    assert!(
        production["model_updates"].as_u64().unwrap() > 0,
        "{production}"
    );
    assert!(
        production["with_outcome"].as_u64().unwrap() > 0,
        "{production}"
    );

    let no_outcomes = dir.path().join("no-outcomes.db");
    copy_without(&db, &no_outcomes, |r| {
        matches!(r, aifactory_core::LedgerRecord::Outcome { .. })
    });
    let cut = assess(&no_outcomes);
    assert_eq!(cut["assessment"]["tier"], 2, "{cut}");
    let missing = cut["assessment"]["missing_for_next_tier"].to_string();
    assert!(missing.contains("outcome"), "{missing}");

    let no_updates = dir.path().join("no-model-updates.db");
    copy_without(&db, &no_updates, |r| {
        matches!(r, aifactory_core::LedgerRecord::ModelUpdate { .. })
    });
    let cut = assess(&no_updates);
    assert_eq!(cut["assessment"]["tier"], 2, "{cut}");
    let missing = cut["assessment"]["missing_for_next_tier"].to_string();
    assert!(missing.contains("model update"), "{missing}");
}

#[test]
fn the_ladder_assesses_each_configuration_at_its_tier() {
    let plant = crate::repo_file("plants/sme-textile.toml");
    let out = aifactory(&[
        "ladder", "--plant", &plant, "--days", "60", "--seeds", "2", "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rungs = v["rungs"].as_array().unwrap();
    assert_eq!(rungs.len(), 4);
    for (tier, rung) in rungs.iter().enumerate() {
        assert_eq!(rung["built"], true);
        assert_eq!(rung["assessed"], serde_json::json!([tier, tier]), "{v}");
        assert_eq!(rung["stages"].as_array().map(Vec::len), Some(5), "{v}");
    }
    let paired = &rungs[1]["total_cost_vs_tier0"];
    let gap = rungs[1]["total_cost"]["mean"].as_f64().unwrap()
        - rungs[0]["total_cost"]["mean"].as_f64().unwrap();
    assert!((paired["mean"].as_f64().unwrap() - gap).abs() < 1e-6 * (1.0 + gap.abs()));
    assert!(rungs[3]["kpis"]["energy_cost"]["mean"].as_f64().is_some());
    // Only the closed loop reports the loop's work: outcomes it measured, among others.
    assert!(rungs[2]["closed_loop"].is_null(), "{v}");
    assert!(
        rungs[3]["closed_loop"]["outcomes"]["mean"]
            .as_f64()
            .is_some_and(|n| n > 0.0),
        "{v}"
    );
    // Each run's KPIs and ledger hash, in seed order; the same run again gives the same ones.
    for rung in rungs {
        let runs = rung["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2, "{rung}");
        assert_eq!(
            (runs[0]["seed"].clone(), runs[1]["seed"].clone()),
            (1.into(), 2.into())
        );
        for run in runs {
            let head = run["ledger_sha256"].as_str().unwrap();
            assert!(
                head.len() == 64 && head.bytes().all(|b| b.is_ascii_hexdigit()),
                "{run}"
            );
            assert!(run["kpis"]["oee"].as_f64().is_some(), "{run}");
        }
    }
    assert_ne!(
        rungs[1]["runs"][0]["ledger_sha256"], rungs[2]["runs"][0]["ledger_sha256"],
        "tiers decide differently"
    );
    let again = aifactory(&[
        "ladder", "--plant", &plant, "--days", "60", "--seeds", "2", "--tiers", "2", "--json",
    ]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    let tier2 = again["rungs"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["tier"] == 2))
        .unwrap();
    assert_eq!(
        tier2["runs"], rungs[2]["runs"],
        "same seed, same ledger, same KPIs"
    );
    let out = aifactory(&["ladder", "--seeds", "1"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--seeds"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_cut_link_shows_in_the_ladder_and_bad_choices_are_refused() {
    let plant = crate::repo_file("plants/sme-textile.toml");
    let out = aifactory(&[
        "ladder",
        "--plant",
        &plant,
        "--days",
        "60",
        "--seeds",
        "2",
        "--tiers",
        "2",
        "--cut",
        "schedule-to-quote",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rung = &v["rungs"][0];
    assert_eq!(rung["tier"], 2);
    assert_eq!(rung["assessed"], serde_json::json!([1, 1]), "{v}");
    assert!(
        rung["missing_for_next_tier"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str().unwrap_or("").contains("schedule-to-quote")),
        "{v}"
    );
    for (args, needle) in [
        (vec!["ladder", "--tiers", "7"], "tier 7"),
        (vec!["ladder", "--cut", "energy-to-plan"], "energy-to-plan"),
    ] {
        let out = aifactory(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains(needle),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn the_ladder_says_what_a_closed_loop_link_is_worth_on_paired_seeds() {
    let plant = crate::repo_file("plants/sme-textile.toml");
    let out = aifactory(&[
        "ladder",
        "--plant",
        &plant,
        "--days",
        "30",
        "--seeds",
        "2",
        "--tiers",
        "3",
        "--worth",
        "anomaly-trigger",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["link"], "anomaly-trigger");
    let tier = &v["tiers"][0];
    assert_eq!(tier["tier"], 3);
    // Both arms stay tier 3: the trigger adds to the loop, the loop does not hang on it.
    assert_eq!(tier["assessed_with"], serde_json::json!([3, 3]), "{v}");
    assert_eq!(tier["assessed_without"], serde_json::json!([3, 3]), "{v}");
    assert!(
        tier["anomalies_with"]["mean"]
            .as_f64()
            .is_some_and(|n| n > 0.0),
        "{v}"
    );
    // The difference is the mean of the paired differences: with − without.
    let failures = &tier["kpis"]["failures"];
    let gap =
        failures["with"]["mean"].as_f64().unwrap() - failures["without"]["mean"].as_f64().unwrap();
    assert!(
        (failures["difference"]["mean"].as_f64().unwrap() - gap).abs() < 1e-9,
        "{v}"
    );
    for (args, needle) in [
        (
            vec!["ladder", "--worth", "energy-to-plan"],
            "energy-to-plan",
        ),
        (
            vec![
                "ladder",
                "--worth",
                "anomaly-trigger",
                "--cut",
                "forecast-to-plan",
            ],
            "--cut",
        ),
    ] {
        let out = aifactory(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains(needle),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn serve_refuses_a_short_admin_password() {
    let out = aifactory(&[
        "serve",
        "--admin-password",
        "short",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("at least 8 characters"),
        "{}",
        text(&out.stderr)
    );
}
