//! The store's contract, exercised on real SQLite files: what goes in comes back exactly, the
//! ledger refuses rewrites, and a reopened file keeps everything.

use aifactory_core::{
    Decision, EventKind, ExecutedBy, KpiInputs, Kpis, LifecycleStage, Outcome, Plant, PlantEvent,
    TelemetryReading, Timestamp,
};
use aifactory_store::{Counts, RunId, RunInfo, SqliteStore, StoreError};
use serde_json::json;
use std::path::Path;

const PLANT: &str = r#"
[plant]
id = "SITE-1"
name = "Test works"
name_zh = "测试工厂"
industry = "machining"
start = 2026-03-02T00:00:00+08:00

[[areas]]
id = "A1"
name = "Machining hall"

[[lines]]
id = "L1"
name = "Shaft line"
area = "A1"

[[work_centres]]
id = "WC-TURN"
name = "Turning"
line = "L1"
kind = "turning"

[[work_centres]]
id = "WC-QC"
name = "Inspection"
kind = "inspection"

[[machine_types]]
id = "LATHE"
name = "CNC lathe"
power_kw = { run = 12.0, idle = 2.0, down = 0.5 }
health = { wear_per_run_hour = 0.001, mtbf_new_h = 400.0, hazard_growth = 3.0, slowdown_at_worn = 0.2, defect_at_worn = 0.05 }
maintenance = { preventive_h = 2.0, preventive_cost = 300.0, corrective_h = 8.0, corrective_cost = 2000.0, pm_interval_run_h = 200.0 }
sensors = { vibration_mm_s = 2.0, temperature_rise_c = 25.0, current_a = 18.0 }

[[machines]]
id = "TURN-01"
name = "Lathe 1"
work_centre = "WC-TURN"
type = "LATHE"

[[machines]]
id = "QC-01"
work_centre = "WC-QC"
type = "LATHE"

[[materials]]
id = "BAR-40"
name = "Steel bar 40 mm"
unit_cost = 12.5
lead_time_days = 3.0
initial_stock = 100.0
reorder_point = 40.0
order_qty = 200.0

[[products]]
id = "SHAFT-A"
name = "Shaft A"
price = 80.0
lot_size = 20
bom = [{ item = "BAR-40", qty = 1.0 }]
routing = [{ name = "turn", times = { "TURN-01" = 6.0 } }, { name = "inspect", times = { "QC-01" = 1.5 } }]

[tariff]
periods = [{ name = "flat", from_h = 0, to_h = 24, price_per_kwh = 0.8 }]
"#;

fn plant() -> Plant {
    match Plant::parse(PLANT, Path::new("test-plant.toml")) {
        Ok(plant) => plant,
        Err(e) => panic!("test plant does not parse: {e}"),
    }
}

fn t(ms: i64) -> Timestamp {
    Timestamp(1_772_380_800_000 + ms)
}

fn run_info() -> RunInfo {
    RunInfo {
        plant_id: "SITE-1".to_owned(),
        // Above i64::MAX, so the bit-for-bit storage of the seed is exercised.
        seed: u64::MAX - 6,
        policy: "baseline".to_owned(),
        sim_days: 30.5,
        started_at: t(0),
    }
}

fn events() -> Vec<PlantEvent> {
    vec![
        PlantEvent {
            at: t(1_000),
            kind: EventKind::OrderReceived,
            machine: None,
            order: Some("SO-1".to_owned()),
            detail: json!({"units": 40, "product": "SHAFT-A", "due": "2026-03-09"}),
        },
        PlantEvent {
            at: t(2_000),
            kind: EventKind::MachineFailed,
            machine: Some("TURN-01".to_owned()),
            order: None,
            detail: json!({"wear": 0.8125, "nested": {"list": [1, 2.5, null, true]}}),
        },
        PlantEvent {
            at: t(2_000),
            kind: EventKind::UnitsScrapped,
            machine: Some("QC-01".to_owned()),
            order: Some("WO-7".to_owned()),
            detail: serde_json::Value::Null,
        },
    ]
}

fn telemetry(n: usize) -> Vec<TelemetryReading> {
    let signals = ["vibration_mm_s", "temperature_c", "current_a"];
    let machines = ["TURN-01", "QC-01"];
    (0..n)
        .map(|i| TelemetryReading {
            at: t(i as i64 * 60_000),
            machine: machines[i % machines.len()].to_owned(),
            signal: signals[(i / machines.len()) % signals.len()].to_owned(),
            // Irrational-looking values so a lossy round trip cannot pass by accident.
            value: (i as f64).sqrt() * 1.000_000_1 - 3.3,
        })
        .collect()
}

fn kpis() -> Kpis {
    Kpis::compute(&KpiInputs {
        horizon_s: 7.0 * 86_400.0,
        run_s: 400_000.0,
        setup_s: 20_000.0,
        breakdown_s: 15_000.0,
        ideal_run_s: 350_000.0,
        op_units_processed: 5_000,
        op_units_good: 4_930,
        finished_good_units: 2_400,
        scrapped_units: 70,
        orders_due: 60,
        orders_on_time: 55,
        orders_completed: 58,
        tardiness_h: 31.5,
        energy_kwh: 12_345.6,
        energy_cost: 9_876.5,
        failures: 3,
        events_processed: 123_456,
        ..KpiInputs::default()
    })
}

fn decision(id: &str, at_ms: i64) -> Decision {
    Decision {
        id: id.to_owned(),
        at: t(at_ms),
        skill: "rul".to_owned(),
        stage: LifecycleStage::Production,
        inputs_ref: "telemetry:TURN-01:2026-03-01/2026-03-02".to_owned(),
        model: "weibull-rul".to_owned(),
        model_version: "0.1.0".to_owned(),
        output: json!({"machine": "TURN-01", "action": "preventive_maintenance", "rul_h": 41.25}),
        confidence: Some(0.87),
        executed_by: ExecutedBy::Auto,
        outcome: None,
    }
}

fn tempdir() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("cannot create a temporary folder: {e}"),
    }
}

async fn open(path: &Path) -> SqliteStore {
    match SqliteStore::open(path).await {
        Ok(store) => store,
        Err(e) => panic!("cannot open {}: {e}", path.display()),
    }
}

mod file_store {
    use super::*;

    #[tokio::test]
    async fn wal_mode_is_on_and_survives_reopening() -> Result<(), StoreError> {
        let dir = tempdir();
        let path = dir.path().join("plant.db");
        let store = open(&path).await;
        assert_eq!(store.journal_mode().await?, "wal");
        store.close().await;
        let store = open(&path).await;
        assert_eq!(store.journal_mode().await?, "wal");
        Ok(())
    }

    #[tokio::test]
    async fn everything_written_reads_back_exactly_and_survives_reopening() -> Result<(), StoreError>
    {
        let dir = tempdir();
        let path = dir.path().join("plant.db");
        let store = open(&path).await;
        assert_eq!(store.counts().await?, Counts::default());

        let plant = plant();
        store.save_plant(&plant).await?;
        let run = store.start_run(&run_info()).await?;

        let run_events = events();
        let live_events = vec![PlantEvent {
            at: t(5),
            kind: EventKind::RepairCompleted,
            machine: Some("TURN-01".to_owned()),
            order: None,
            detail: json!({"source": "mes"}),
        }];
        store.append_events(Some(run), &run_events).await?;
        store.append_events(None, &live_events).await?;

        let readings = telemetry(50_000);
        store.append_telemetry(Some(run), &readings).await?;
        let live_readings = telemetry(7);
        store.append_telemetry(None, &live_readings).await?;

        let kpis = kpis();
        store.save_kpis(run, &kpis).await?;

        let first = decision("D-1", 10);
        let mut second = decision("D-2", 20);
        second.stage = LifecycleStage::Sales;
        second.executed_by = ExecutedBy::Human;
        second.confidence = None;
        second.outcome = Some(Outcome {
            measured_at: t(30),
            measured: json!({"quoted_days": 4}),
            success: None,
        });
        store.record_decision(&first).await?;
        store.record_decision(&second).await?;
        let outcome = Outcome {
            measured_at: t(86_400_000),
            measured: json!({"failures_avoided": 1, "downtime_h": 0.0}),
            success: Some(true),
        };
        store.record_outcome("D-1", &outcome).await?;
        store.close().await;

        // Everything below reads a freshly opened file: migrations must be a no-op the second time.
        let store = open(&path).await;
        assert_eq!(
            store.counts().await?,
            Counts {
                runs: 1,
                events: 4,
                telemetry: 50_007,
                decisions: 2,
                machines: 2,
                products: 1,
            }
        );
        assert_eq!(store.run(run).await?, Some(run_info()));
        assert_eq!(store.events(Some(run)).await?, run_events);
        assert_eq!(store.events(None).await?, live_events);
        assert_eq!(store.telemetry(Some(run)).await?, readings);
        assert_eq!(store.telemetry(None).await?, live_readings);

        let machines = store.machines("SITE-1").await?;
        let paths: Vec<(&str, &str)> = machines
            .iter()
            .map(|m| (m.id.as_str(), m.equipment_path.as_str()))
            .collect();
        assert_eq!(
            paths,
            [
                ("TURN-01", "SITE-1/A1/L1/WC-TURN/TURN-01"),
                ("QC-01", "SITE-1/WC-QC/QC-01"),
            ]
        );
        assert_eq!(machines[0].name, "Lathe 1");
        assert_eq!(machines[0].work_centre, "WC-TURN");
        assert_eq!(machines[0].machine_type, "LATHE");

        let Some(stored) = store.run_kpis(run).await? else {
            panic!("the run's kpis were not read back");
        };
        let expected = match serde_json::to_value(&kpis) {
            Ok(serde_json::Value::Object(fields)) => fields,
            other => panic!("kpis do not serialise to an object: {other:?}"),
        };
        assert_eq!(stored.len(), expected.len());
        assert!(stored.len() >= 20, "every numeric KPI is a row: {stored:?}");
        for (name, value) in &expected {
            assert_eq!(stored.get(name).copied(), value.as_f64(), "kpi {name}");
        }
        assert_eq!(stored.get("oee").copied(), Some(kpis.oee));
        assert_eq!(stored.get("failures").copied(), Some(3.0));

        let mut first_done = first.clone();
        first_done.outcome = Some(outcome);
        assert_eq!(
            store.decisions(10).await?,
            vec![second.clone(), first_done.clone()]
        );
        assert_eq!(store.decisions(1).await?, vec![second]);
        assert_eq!(store.decision("D-1").await?, Some(first_done));
        assert_eq!(store.decision("D-404").await?, None);
        Ok(())
    }

    #[tokio::test]
    async fn saving_the_plant_again_updates_instead_of_duplicating() -> Result<(), StoreError> {
        let dir = tempdir();
        let store = open(&dir.path().join("plant.db")).await;
        let mut plant = plant();
        store.save_plant(&plant).await?;
        plant.machines[0].name = "Lathe 1 (retrofitted)".to_owned();
        store.save_plant(&plant).await?;
        let counts = store.counts().await?;
        assert_eq!((counts.machines, counts.products), (2, 1));
        let machines = store.machines("SITE-1").await?;
        assert_eq!(machines[0].name, "Lathe 1 (retrofitted)");
        Ok(())
    }
}

mod ledger {
    use super::*;

    #[tokio::test]
    async fn a_duplicate_decision_id_is_refused_and_the_first_kept() -> Result<(), StoreError> {
        let store = SqliteStore::open_in_memory().await?;
        let original = decision("D-7", 100);
        store.record_decision(&original).await?;
        let mut rewrite = decision("D-7", 200);
        rewrite.output = json!({"action": "nothing"});
        match store.record_decision(&rewrite).await {
            Err(StoreError::DuplicateDecision(id)) => assert_eq!(id, "D-7"),
            other => panic!("expected a duplicate-decision error, got {other:?}"),
        }
        assert_eq!(store.decisions(10).await?, vec![original]);
        Ok(())
    }

    #[tokio::test]
    async fn an_outcome_for_an_unknown_decision_is_refused() -> Result<(), StoreError> {
        let store = SqliteStore::open_in_memory().await?;
        store.record_decision(&decision("D-1", 1)).await?;
        let outcome = Outcome {
            measured_at: t(5),
            measured: json!({}),
            success: Some(false),
        };
        match store.record_outcome("D-2", &outcome).await {
            Err(StoreError::UnknownDecision(id)) => assert_eq!(id, "D-2"),
            other => panic!("expected an unknown-decision error, got {other:?}"),
        }
        assert_eq!(store.decision("D-1").await?.and_then(|d| d.outcome), None);
        Ok(())
    }

    #[tokio::test]
    async fn a_remeasured_outcome_replaces_the_reported_one() -> Result<(), StoreError> {
        let store = SqliteStore::open_in_memory().await?;
        store.record_decision(&decision("D-1", 1)).await?;
        let early = Outcome {
            measured_at: t(5),
            measured: json!({"oee": 0.61}),
            success: Some(false),
        };
        let late = Outcome {
            measured_at: t(9),
            measured: json!({"oee": 0.72}),
            success: Some(true),
        };
        store.record_outcome("D-1", &early).await?;
        store.record_outcome("D-1", &late).await?;
        assert_eq!(
            store.decision("D-1").await?.and_then(|d| d.outcome),
            Some(late)
        );
        Ok(())
    }

    #[tokio::test]
    async fn decisions_come_newest_first() -> Result<(), StoreError> {
        let store = SqliteStore::open_in_memory().await?;
        for (id, at) in [("D-b", 20), ("D-a", 10), ("D-c", 30), ("D-c2", 30)] {
            store.record_decision(&decision(id, at)).await?;
        }
        let ids: Vec<String> = store
            .decisions(3)
            .await?
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, ["D-c2", "D-c", "D-b"]);
        Ok(())
    }

    #[tokio::test]
    async fn a_non_finite_confidence_is_refused() -> Result<(), StoreError> {
        let store = SqliteStore::open_in_memory().await?;
        let mut d = decision("D-nan", 1);
        d.confidence = Some(f64::NAN);
        assert!(matches!(
            store.record_decision(&d).await,
            Err(StoreError::Invalid { .. })
        ));
        assert_eq!(store.counts().await?.decisions, 0);
        Ok(())
    }
}

mod runs_and_batches {
    use super::*;

    #[tokio::test]
    async fn a_run_needs_a_saved_plant() -> Result<(), StoreError> {
        let store = SqliteStore::open_in_memory().await?;
        match store.start_run(&run_info()).await {
            Err(StoreError::UnknownPlant(id)) => assert_eq!(id, "SITE-1"),
            other => panic!("expected an unknown-plant error, got {other:?}"),
        }
        Ok(())
    }

    #[tokio::test]
    async fn data_for_an_unknown_run_is_refused() -> Result<(), StoreError> {
        let store = SqliteStore::open_in_memory().await?;
        let ghost = RunId(99);
        assert!(matches!(
            store.append_events(Some(ghost), &events()).await,
            Err(StoreError::UnknownRun(RunId(99)))
        ));
        assert!(matches!(
            store.append_telemetry(Some(ghost), &telemetry(3)).await,
            Err(StoreError::UnknownRun(RunId(99)))
        ));
        assert!(matches!(
            store.save_kpis(ghost, &kpis()).await,
            Err(StoreError::UnknownRun(RunId(99)))
        ));
        assert_eq!(store.run_kpis(ghost).await?, None);
        assert_eq!(store.run(ghost).await?, None);
        Ok(())
    }

    #[tokio::test]
    async fn a_batch_with_a_nan_reading_stores_nothing() -> Result<(), StoreError> {
        let store = SqliteStore::open_in_memory().await?;
        let mut readings = telemetry(10_000);
        readings[9_999].value = f64::NAN;
        assert!(matches!(
            store.append_telemetry(None, &readings).await,
            Err(StoreError::Invalid { .. })
        ));
        assert_eq!(store.counts().await?.telemetry, 0);
        Ok(())
    }

    #[tokio::test]
    async fn batches_spanning_many_statements_keep_their_order() -> Result<(), StoreError> {
        let store = SqliteStore::open_in_memory().await?;
        // Several full statements plus a partial one, for both batch writers.
        let readings = telemetry(30_001);
        store.append_telemetry(None, &readings).await?;
        let many_events: Vec<PlantEvent> = (0..12_345)
            .map(|i| PlantEvent {
                at: t(i),
                kind: EventKind::OperationCompleted,
                machine: Some(format!("M-{}", i % 7)),
                order: Some(format!("WO-{i}")),
                detail: json!({"i": i}),
            })
            .collect();
        store.append_events(None, &many_events).await?;
        assert_eq!(store.telemetry(None).await?, readings);
        assert_eq!(store.events(None).await?, many_events);
        Ok(())
    }

    #[tokio::test]
    async fn saving_kpis_again_replaces_them() -> Result<(), StoreError> {
        let store = SqliteStore::open_in_memory().await?;
        store.save_plant(&plant()).await?;
        let run = store.start_run(&run_info()).await?;
        let mut k = kpis();
        store.save_kpis(run, &k).await?;
        k.oee = 0.5;
        store.save_kpis(run, &k).await?;
        let stored = store.run_kpis(run).await?;
        assert_eq!(stored.and_then(|s| s.get("oee").copied()), Some(0.5));
        Ok(())
    }
}
