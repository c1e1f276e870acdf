//! Bad input on the wire: malformed envelopes, unknown ids, duplicates, events out of order, a
//! state code outside the table, an acknowledgement for a command never sent and broken
//! telemetry — each quarantined or refused with its reason, nothing counted twice, and the feed
//! goes on answering. Needs `AIFACTORY_TEST_MQTT_URL` (a real broker); says it skipped without.

use aifactory_connect::mqtt::Link;
use aifactory_runtime::feed;
use aifactory_store::Store;
use common::{job_shop, runtime, tier0_feed, unique};
use serde_json::json;
use std::time::Duration;

mod common;

#[test]
fn bad_input_on_the_wire_is_quarantined_with_its_reason_and_nothing_counts_twice() {
    let Ok(url) = std::env::var("AIFACTORY_TEST_MQTT_URL") else {
        eprintln!("skipped: AIFACTORY_TEST_MQTT_URL is not set");
        return;
    };
    let (_, plant) = job_shop("bad");
    let site = plant.plant.id.clone();
    let start = plant.start().0.0;
    let runtime = runtime();
    runtime.block_on(async {
        let store = Store::open_in_memory()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let spec = tier0_feed(plant, &url);
        let mut running = feed::connect(spec)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .run(store.clone(), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let broker = url.parse().unwrap_or_else(|e| panic!("{e}"));
        let (plant_side, _) = Link::connect(&broker, &format!("bad-plant-{}", unique()), &[], false)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let events = format!("aifactory/{site}/_events");
        let acks = format!("aifactory/{site}/_acks");
        let mut seq = 0u64;
        let mut envelope = |kind: &str, minute: i64, fields: serde_json::Value| {
            seq += 1;
            let mut body = json!({
                "spec": "aifactory/1", "id": format!("m-{seq}"), "source": "mes",
                "seq": seq, "type": kind, "time": start + minute * 60_000,
            });
            if let (Some(b), Some(f)) = (body.as_object_mut(), fields.as_object()) {
                b.extend(f.clone());
            }
            body
        };
        let send = |topic: &str, body: &serde_json::Value| {
            plant_side
                .publish(topic.to_owned(), body.to_string().into_bytes(), false)
                .unwrap_or_else(|e| panic!("{e}"));
        };
        // Good: an order and its work order, then an operation whose end arrives first.
        let order = envelope(
            "order_received",
            1,
            json!({"order": "SO-1", "data": {"product": "BRACKET", "quantity": 20, "due": start + 86_400_000}}),
        );
        send(&events, &order);
        send(&events, &order); // the same id again: a duplicate
        send(
            &events,
            &envelope(
                "work_order_released",
                1,
                json!({"order": "WO-1", "data": {"product": "BRACKET", "quantity": 20, "sales_order": "SO-1"}}),
            ),
        );
        let started = envelope(
            "operation_started",
            2,
            json!({"machine": "SAW-01", "order": "WO-1", "data": {"product": "BRACKET", "step": 0, "quantity": 20}}),
        );
        let completed = envelope(
            "operation_completed",
            30,
            json!({"machine": "SAW-01", "order": "WO-1", "data": {"step": 0, "good": 19, "scrapped": 1}}),
        );
        send(&events, &completed);
        send(&events, &started);
        // Bad, each its own way.
        plant_side
            .publish(events.clone(), b"{not json".to_vec(), false)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut no_spec = envelope("machine_failed", 31, json!({"machine": "SAW-01"}));
        no_spec.as_object_mut().map(|b| b.remove("spec"));
        send(&events, &no_spec);
        send(&events, &envelope("machine_failed", 31, json!({"machine": "LATHE-99"})));
        send(
            &events,
            &envelope("machine_state", 31, json!({"machine": "MILL-01", "data": {"code": 12345}})),
        );
        send(&events, &envelope("teleport", 31, json!({"machine": "MILL-01"})));
        send(
            &acks,
            &envelope("ack", 31, json!({"correlation": "C-NEVER-SENT", "status": "completed"})),
        );
        send(
            &acks,
            &envelope("ack", 31, json!({"correlation": "C-X", "status": "rejected"})),
        );
        plant_side
            .publish(
                format!("aifactory/{site}/MILL-01"),
                br#"{"ts": 1, "values": [4.5]}"#.to_vec(),
                false,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        // A lockstep heartbeat: everything before it is applied and decided on.
        send(
            &events,
            &envelope("heartbeat", 40, json!({"data": {"answer": true}})),
        );
        let report = running
            .wait_until(Duration::from_secs(30), |r| r.answered >= 1)
            .await;
        assert_eq!(report.answered, 1, "the feed goes on after bad input: {report:?}");
        plant_side.close().await;
        let run = running.run();
        let report = running.stop().await.unwrap_or_else(|e| panic!("{e}"));

        // Four good events (the duplicate dropped), each bad message quarantined once.
        assert_eq!(report.events, 4, "{report:?}");
        assert_eq!(report.duplicates, 1, "{report:?}");
        assert_eq!(report.refused, 2, "unknown machine, state code: {report:?}");
        assert_eq!(report.acks_refused, 1, "{report:?}");
        let quarantined = store.quarantined(100).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(quarantined.len() as u64, report.quarantined);
        let mut reasons: Vec<(String, String)> = quarantined
            .iter()
            .map(|q| (q.reason_kind.clone(), q.reason.clone()))
            .collect();
        reasons.sort();
        let has = |kind: &str, says: &str| {
            reasons
                .iter()
                .any(|(k, r)| k == kind && r.contains(says))
        };
        assert!(has("json_syntax", ""), "{reasons:?}");
        assert!(has("envelope", "spec"), "{reasons:?}");
        assert!(has("envelope", "teleport"), "{reasons:?}");
        assert!(has("envelope", "reason"), "a rejection without its reason: {reasons:?}");
        assert!(has("event_refused", "LATHE-99"), "{reasons:?}");
        assert!(has("event_refused", "code"), "{reasons:?}");
        assert!(has("unknown_command", "C-NEVER-SENT"), "{reasons:?}");
        assert!(has("json_shape", "values"), "{reasons:?}");
        assert_eq!(reasons.len(), 8, "{reasons:?}");
        // What was taken is stored once: the order once, the operation's units once.
        let stored = store.events(Some(run)).await.unwrap_or_else(|e| panic!("{e}"));
        let of = |kind: &str| stored.iter().filter(|e| e.kind.as_str() == kind).count();
        assert_eq!(of("order_received"), 1);
        assert_eq!(of("operation_completed"), 1);
        // The reordered operation applied in order: the saw was freed and the work order moved
        // on, so the runtime dispatched its next step to a mill.
        assert!(report.decisions >= 1, "{report:?}");
    });
}
