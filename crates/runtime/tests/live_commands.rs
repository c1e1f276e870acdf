//! Commands through the runtime's sink to the live twin: each is acknowledged, the
//! acknowledgements are stored as plant events, and the one that settles a command names the
//! decision it executed — completed, rejected with the reason, or expired.

use aifactory_core::{Decision, EventKind, ExecutedBy, LifecycleStage, Plant, PlantEvent};
use aifactory_plant::Action;
use aifactory_runtime::live::{LiveSpec, TwinCommands, start};
use aifactory_server::live::Live;
use aifactory_store::{RunId, Store};
use aifactory_twin::CommandInbox;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn plant() -> Plant {
    let text = include_str!("../../../plants/hangzhou-auto-parts.toml");
    Plant::parse(text, Path::new("hangzhou-auto-parts.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn decision(id: &str, at: aifactory_core::Timestamp) -> Decision {
    Decision {
        id: id.to_owned(),
        at,
        skill: "what_if".to_owned(),
        stage: LifecycleStage::Production,
        inputs_ref: "test".to_owned(),
        model: "approved-by:test".to_owned(),
        model_version: "1".to_owned(),
        output: serde_json::json!({}),
        confidence: None,
        executed_by: ExecutedBy::Human,
        outcome: None,
    }
}

/// The acknowledgement events of command `id`, in the order stored.
fn acks<'a>(events: &'a [PlantEvent], id: &str) -> Vec<&'a PlantEvent> {
    events
        .iter()
        .filter(|e| e.kind == EventKind::CommandAck && e.detail["command"] == id)
        .collect()
}

fn statuses(events: &[&PlantEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e.detail["status"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_acknowledged_and_the_last_word_is_the_decisions_outcome() {
    let store = Store::open_in_memory()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let commands = TwinCommands::new(CommandInbox::new());
    let (live, publisher) = Live::new(Some(Arc::new(commands.clone())));
    let spec = LiveSpec {
        plant: plant(),
        seed: 1,
        tier: 2,
        // Two twin hours per wall second: maintenance waits for a free machine.
        speed: 7_200.0,
        warm_up_days: 1.5,
        mqtt: None,
        clock: aifactory_runtime::Clock::system(),
    };
    let twin = start(spec, store.clone(), publisher, commands)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    twin.warmed_up().await;
    let now = live
        .latest()
        .unwrap_or_else(|| panic!("a snapshot after the warm-up"))
        .plant
        .sim_time;
    let (start_at, _) = plant().start();

    let service = decision("T-1", now);
    let unknown = decision("T-2", now);
    let speed = decision("T-3", now);
    // Decided at the plant's start: its 24 h to act ran out during the warm-up.
    let stale = decision("T-4", start_at);
    for d in [&service, &unknown, &speed, &stale] {
        store
            .record_decision(d)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let sent = [
        live.command(
            &service,
            Action::StartMaintenance {
                machine: "TURN-01".into(),
            },
        ),
        live.command(
            &unknown,
            Action::StartMaintenance {
                machine: "LATHE-99".into(),
            },
        ),
        live.command(
            &speed,
            Action::SetPoint {
                machine: "TURN-01".into(),
                param: "cutting_speed".into(),
                value: 10_000.0,
            },
        ),
        live.command(
            &stale,
            Action::StartMaintenance {
                machine: "TURN-02".into(),
            },
        ),
    ];
    let ids: Vec<String> = sent
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(ids, ["C-T-1", "C-T-2", "C-T-3", "C-T-4"]);
    // The same decision's command again is refused, not sent twice.
    assert!(
        live.command(
            &service,
            Action::StartMaintenance {
                machine: "TURN-01".into()
            }
        )
        .is_err()
    );

    // Wait (at most two minutes of wall time) until every command has its last word.
    let mut events = Vec::new();
    for _ in 0..1_200 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        events = store
            .events(Some(RunId(1)))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let settled = ids
            .iter()
            .filter(|id| {
                acks(&events, id)
                    .iter()
                    .any(|e| e.detail["outcome"] == true)
            })
            .count();
        if settled == ids.len() {
            break;
        }
    }
    twin.stop().await.unwrap_or_else(|e| panic!("{e}"));

    let service_acks = acks(&events, "C-T-1");
    assert_eq!(
        statuses(&service_acks),
        ["received", "accepted", "completed"],
        "{service_acks:?}"
    );
    let done = service_acks[2];
    assert_eq!(done.detail["outcome"], true);
    assert_eq!(done.detail["decision"], "T-1");
    assert_eq!(done.machine.as_deref(), Some("TURN-01"));
    assert!(done.at >= now, "completed after it was sent");
    // The twin's own record shows the maintenance it started.
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventKind::MaintenanceStarted
                && e.machine.as_deref() == Some("TURN-01")
                && e.at == done.at),
        "maintenance started on TURN-01 when the command completed"
    );

    let refused = acks(&events, "C-T-2");
    assert_eq!(statuses(&refused), ["received", "rejected"], "{refused:?}");
    assert_eq!(refused[1].detail["decision"], "T-2");
    assert!(
        refused[1].detail["reason"]
            .as_str()
            .is_some_and(|r| r.contains("LATHE-99")),
        "{refused:?}"
    );

    let set = acks(&events, "C-T-3");
    assert_eq!(
        statuses(&set),
        ["received", "accepted", "completed"],
        "{set:?}"
    );
    // The controller clamps into the step's range and reads back what it runs.
    let read_back = set[2].detail["read_back"].as_f64().unwrap_or(f64::NAN);
    assert!(
        read_back < 10_000.0 && read_back > 0.0,
        "read back {read_back}"
    );

    // Expired by the runtime (or the twin, whichever saw it first); later words change nothing.
    let expired = acks(&events, "C-T-4");
    let last_word = expired.iter().find(|e| e.detail["outcome"] == true);
    assert!(
        last_word.is_some_and(|e| e.detail["status"] == "expired"
            && e.detail["reason"].is_string()
            && e.detail["decision"] == "T-4"),
        "{expired:?}"
    );
    assert!(
        expired.iter().all(|e| e.detail["decision"] == "T-4"
            && (e.detail["status"] == "expired" || e.detail["status"] == "received")),
        "every acknowledgement names the decision; none but received and expired: {expired:?}"
    );
    // Exactly one settling acknowledgement per command.
    for id in &ids {
        assert_eq!(
            acks(&events, id)
                .iter()
                .filter(|e| e.detail["outcome"] == true)
                .count(),
            1,
            "{id}"
        );
    }
}
