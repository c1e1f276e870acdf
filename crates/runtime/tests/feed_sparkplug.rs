//! A plant that speaks Sparkplug B on the feed: its events and acknowledgements as the String
//! metrics `aifactory/event` and `aifactory/ack` of a device's DDATA, its readings as ordinary
//! metrics, and commands back as a DCMD of `aifactory/command` to the device that was born —
//! each settled by the acknowledgement that comes back the same way. The host session's rules
//! hold: data before a birth is quarantined and a rebirth asked for; a malformed envelope inside
//! a metric is quarantined with its reason. Needs `AIFACTORY_TEST_MQTT_URL`; says it skipped
//! without.

use aifactory_connect::Value;
use aifactory_connect::envelope;
use aifactory_connect::mqtt::Link;
use aifactory_connect::sparkplug::{EdgeNode, device_command};
use aifactory_core::{Decision, ExecutedBy, LifecycleStage, Timestamp};
use aifactory_plant::{Ack, AckStatus, Action, Command, CommandSink};
use aifactory_runtime::feed::{self, ACK_METRIC, COMMAND_METRIC, EVENT_METRIC};
use aifactory_store::Store;
use common::{job_shop, runtime, tier0_feed, unique};
use serde_json::json;
use std::time::Duration;

mod common;

#[test]
fn a_sparkplug_plant_sends_events_and_acks_as_metrics_and_takes_commands_as_dcmds() {
    let Ok(url) = std::env::var("AIFACTORY_TEST_MQTT_URL") else {
        eprintln!("skipped: AIFACTORY_TEST_MQTT_URL is not set");
        return;
    };
    let (_, plant) = job_shop("spb");
    let site = plant.plant.id.clone();
    let start = plant.start().0.0;
    let runtime = runtime();
    runtime.block_on(async {
        let store = Store::open_in_memory()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let spec = tier0_feed(plant, &url);
        let connected = feed::connect(spec).await.unwrap_or_else(|e| panic!("{e}"));
        let commands = connected.commands();
        let mut running = connected
            .run(store.clone(), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // The edge node: subscribed to its commands (DCMD) and to the host's NCMD.
        let broker = url.parse().unwrap_or_else(|e| panic!("{e}"));
        let (edge_link, mut to_edge) = Link::connect(
            &broker,
            &format!("spb-edge-{}", unique()),
            &[
                format!("spBv1.0/{site}/DCMD/line1/#"),
                format!("spBv1.0/{site}/NCMD/line1"),
            ],
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let publish = |m: aifactory_connect::sparkplug::Message| {
            edge_link
                .publish(m.topic, m.payload, false)
                .unwrap_or_else(|e| panic!("{e}"));
        };
        let ms = |minute: i64| u64::try_from(start + minute * 60_000).unwrap_or(0);
        let mut edge = EdgeNode::new(&site, "line1", 0);

        // Data before any birth: quarantined, and the host asks the node for a rebirth.
        publish(edge.data(Some("MILL-01"), ms(0), &[("vibration", Value::Float(1.0))]));
        let rebirth = tokio::time::timeout(Duration::from_secs(10), to_edge.recv())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no rebirth request"));
        assert_eq!(rebirth.topic, format!("spBv1.0/{site}/NCMD/line1"));

        publish(edge.birth(ms(0), &[]));
        let text = |s: &str| Value::Text(s.to_owned());
        publish(edge.device_birth(
            "MILL-01",
            ms(0),
            &[
                ("vibration", Value::Float(1.0)),
                (EVENT_METRIC, text("")),
                (ACK_METRIC, text("")),
            ],
        ));
        // A state event inside a metric, a reading beside it.
        let state = json!({
            "spec": "aifactory/1", "id": "spb-1", "source": "line1", "seq": 1,
            "type": "machine_state", "time": start + 60_000, "machine": "MILL-01",
            "data": {"code": 170_000, "raw": "PackML:Idle"},
        });
        publish(edge.data(
            Some("MILL-01"),
            ms(1),
            &[
                (EVENT_METRIC, text(&state.to_string())),
                ("vibration", Value::Float(2.5)),
            ],
        ));
        // A malformed envelope inside the metric.
        publish(edge.data(
            Some("MILL-01"),
            ms(2),
            &[(EVENT_METRIC, text("{\"spec\": 1}"))],
        ));
        let report = running
            .wait_until(Duration::from_secs(20), |r| {
                r.events >= 1 && r.telemetry_points >= 2 && r.quarantined >= 2
            })
            .await;
        assert_eq!(report.events, 1, "{report:?}");
        assert_eq!(report.quarantined, 2, "{report:?}");
        assert!(report.telemetry_points >= 2, "{report:?}");

        // A command for the device goes out as its DCMD.
        let at = Timestamp(start + 180_000);
        store
            .record_decision(&Decision {
                id: "H-1".to_owned(),
                at,
                skill: "maintenance_work_order".to_owned(),
                stage: LifecycleStage::Production,
                inputs_ref: "test".to_owned(),
                model: "approved-by:test".to_owned(),
                model_version: "1".to_owned(),
                output: json!({}),
                confidence: None,
                executed_by: ExecutedBy::Human,
                outcome: None,
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        commands
            .send(Command {
                id: "C-H-1".to_owned(),
                decision: Some("H-1".to_owned()),
                expires: Some(Timestamp(at.0 + 86_400_000)),
                action: Action::StartMaintenance {
                    machine: "MILL-01".to_owned(),
                },
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let dcmd = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(m) = to_edge.recv().await {
                if m.topic.contains("/DCMD/") {
                    return Some(m);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no DCMD"));
        assert_eq!(dcmd.topic, format!("spBv1.0/{site}/DCMD/line1/MILL-01"));
        let read = device_command(&dcmd.topic, &dcmd.payload).unwrap_or_else(|e| panic!("{e}"));
        let Some((_, Value::Text(body))) = read.metrics.iter().find(|(n, _)| n == COMMAND_METRIC)
        else {
            panic!("no {COMMAND_METRIC} in {read:?}");
        };
        let command = envelope::decode_command(body.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(command.id, "C-H-1");
        // Acknowledged the same way: completed, the decision's outcome.
        let ack = Ack::new("C-H-1", AckStatus::Completed, Timestamp(start + 240_000));
        let ack = envelope::encode_ack(&ack, "line1", "spb-2", 2);
        publish(edge.data(
            Some("MILL-01"),
            ms(4),
            &[(
                ACK_METRIC,
                Value::Text(String::from_utf8_lossy(&ack).into_owned()),
            )],
        ));
        let report = running
            .wait_until(Duration::from_secs(20), |r| {
                r.outcomes.contains_key("completed")
            })
            .await;
        assert_eq!(report.outcomes.get("completed"), Some(&1), "{report:?}");
        let report = running.stop().await.unwrap_or_else(|e| panic!("{e}"));
        let outcome = store
            .decision("H-1")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .and_then(|d| d.outcome)
            .unwrap_or_else(|| panic!("H-1 has no outcome"));
        assert_eq!(outcome.measured["status"], "completed");
        let quarantined = store
            .quarantined(10)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let kinds: Vec<&str> = quarantined.iter().map(|q| q.reason_kind.as_str()).collect();
        assert_eq!(quarantined.len() as u64, report.quarantined, "{kinds:?}");
        assert!(kinds.contains(&"data_before_birth"), "{kinds:?}");
        assert!(
            quarantined
                .iter()
                .any(|q| q.reason_kind == "envelope" && q.reason.contains("spec")),
            "{:?}",
            quarantined.iter().map(|q| &q.reason).collect::<Vec<_>>()
        );
        edge_link.close().await;
    });
}
