//! A plant we did not write: the Python emulator under `tests/plant-emulator/` (written from
//! `docs/PLANT-CONTRACT.md` alone, sharing no code with the twin) runs a small job shop for a
//! simulated day in lockstep through a real Mosquitto broker, and the runtime's plant feed
//! schedules it: dispatch lists and a maintenance order go out, the emulator accepts most,
//! rejects one with a reason and ignores one, and the ledger shows every decision with its
//! outcome.
//!
//! Needs `AIFACTORY_TEST_MQTT_URL` and `AIFACTORY_TEST_EMULATOR=1` (Python 3 with the pinned
//! paho-mqtt; `.ci/run` installs it and sets both); without them it says it skipped.

use aifactory_core::{Plant, SeriesName};
use aifactory_runtime::feed;
use aifactory_store::Store;
use common::{broker_and_python, runtime, tier0_feed, unique, workspace};
use std::time::Duration;

mod common;

#[test]
fn the_runtime_schedules_a_plant_it_did_not_write() {
    let Some((url, python)) = broker_and_python() else {
        return;
    };
    let root = workspace();
    // A site of its own per run, so that no other run's messages on a long-lived broker mix in.
    let text = std::fs::read_to_string(root.join("tests/plant-emulator/job-shop.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let text = text.replacen(
        "id = \"emu-shop\"",
        &format!("id = \"emu-{}\"", unique()),
        1,
    );
    let plant_path = std::env::temp_dir().join(format!("emulator-shop-{}.toml", unique()));
    std::fs::write(&plant_path, &text).unwrap_or_else(|e| panic!("{e}"));
    let plant = Plant::parse(&text, &plant_path).unwrap_or_else(|e| panic!("{e}"));
    let site = plant.plant.id.clone();
    let summary_path = std::env::temp_dir().join(format!("emulator-summary-{}.json", unique()));
    let runtime = runtime();
    runtime.block_on(async {
        let store = Store::open_in_memory()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let spec = tier0_feed(plant, &url);
        let connected = feed::connect(spec).await.unwrap_or_else(|e| panic!("{e}"));
        let mut running = connected
            .run(store.clone(), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));

        let emulator = {
            let root = root.clone();
            let summary = summary_path.clone();
            let url = url.clone();
            let plant_file = plant_path.clone();
            let python = python.clone();
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(&python)
                    .current_dir(&root)
                    .args([
                        "tests/plant-emulator/emulator.py",
                        "--broker",
                        &url,
                        "--plant",
                    ])
                    .arg(&plant_file)
                    .args([
                        "--hours",
                        "24",
                        "--seed",
                        "7",
                        "--lockstep",
                        "--reject",
                        "2",
                        "--ignore",
                        "3",
                        "--answer-timeout",
                        "60",
                        "--client-id",
                        &format!("emu-{}", unique()),
                        "--summary",
                    ])
                    .arg(&summary)
                    .output()
            })
        };
        let output = emulator
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("running {python}: {e}"));
        let _ = std::fs::remove_file(&plant_path);
        assert!(
            output.status.success(),
            "the emulator failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&summary_path).unwrap_or_else(|e| panic!("{e}")))
                .unwrap_or_else(|e| panic!("{e}"));
        let _ = std::fs::remove_file(&summary_path);
        let heartbeats = summary["heartbeats"].as_u64().unwrap_or(0);
        let answers = summary["answers"].as_u64().unwrap_or(0);
        running
            .wait_until(Duration::from_secs(30), |r| r.heartbeats >= heartbeats)
            .await;
        let report = running.stop().await.unwrap_or_else(|e| panic!("{e}"));
        println!(
            "emulator: {summary}\nfeed: {}",
            serde_json::to_string(&report).unwrap_or_default()
        );

        // The emulator ran its day: every order done, one breakdown.
        assert_eq!(summary["orders"]["completed"], 12, "{summary}");
        assert_eq!(summary["breakdowns"], 1, "{summary}");
        // Every heartbeat heard, every one that asked answered; every event taken, none refused
        // or double counted.
        assert_eq!((report.heartbeats, report.answered), (heartbeats, answers));
        assert!(answers > 12 && answers < heartbeats, "{summary}");
        let events: u64 = summary["events"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.as_str() != "heartbeat")
                    .filter_map(|(_, v)| v.as_u64())
                    .sum()
            })
            .unwrap_or(0);
        let quarantined = store
            .quarantined(100)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let reasons: Vec<(&str, &str)> = quarantined
            .iter()
            .map(|q| (q.reason_kind.as_str(), q.reason.as_str()))
            .collect();
        assert_eq!(quarantined.len() as u64, report.quarantined, "{reasons:?}");
        assert_eq!((report.refused, report.duplicates), (0, 0), "{reasons:?}");
        assert_eq!(report.events, events, "{report:?}");
        // It scheduled the shop and ordered a service; the plant answered every way it can.
        let dispatch_lists = summary["commands"]["dispatch_list"].as_u64().unwrap_or(0);
        assert!(dispatch_lists >= 4, "{summary}");
        assert!(summary["commands"]["start_maintenance"].as_u64() >= Some(1));
        assert_eq!(
            report.commands, report.decisions,
            "tier 0: every decision is a command"
        );
        assert!(report.outcomes.get("completed") >= Some(&3), "{report:?}");
        assert_eq!(report.outcomes.get("rejected"), Some(&1), "{report:?}");
        assert_eq!(report.outcomes.get("expired"), Some(&1), "{report:?}");

        // The ledger: every decision with its outcome, the rejection with its reason.
        let decisions = store
            .decisions(10_000)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decisions.len() as u64, report.decisions);
        let mut rejected = 0;
        let mut expired = 0;
        let mut maintenance_done = 0;
        for d in &decisions {
            let full = store
                .decision(&d.id)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("decision {} is not in the ledger", d.id));
            let settled: u64 = report.outcomes.values().sum();
            let Some(outcome) = full.outcome else {
                // Only a command still open at the end may lack its outcome.
                assert!(settled < report.commands, "{} has no outcome", d.id);
                continue;
            };
            match outcome.measured["status"].as_str() {
                Some("rejected") => {
                    rejected += 1;
                    let reason = outcome.measured["reason"].as_str().unwrap_or_default();
                    assert!(reason.contains("manual mode"), "{reason}");
                    assert_eq!(outcome.success, Some(false));
                }
                Some("expired") => expired += 1,
                Some("completed") if d.skill == "maintenance" => maintenance_done += 1,
                _ => {}
            }
        }
        assert_eq!((rejected, expired), (1, 1));
        assert!(
            maintenance_done >= 1,
            "no maintenance order was carried out"
        );

        // The plant's telemetry is stored under its own names.
        let series = store
            .series_counts()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let vibration = SeriesName {
            site: site.as_str().into(),
            node: "mqtt".into(),
            device: "MILL-01".into(),
            metric: "vibration".into(),
        };
        assert_eq!(
            series.get(&vibration).copied(),
            Some(heartbeats),
            "{:?}",
            series.keys().collect::<Vec<_>>()
        );
    });
}
