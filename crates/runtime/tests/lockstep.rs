//! The twin as a plant on the wire, in lockstep: the same rung run in process and over a real
//! broker (the twin asking for every decision, the runtime answering with commands) gives the
//! same ledger and the same KPIs; a request the runtime cannot put to its policy is answered with
//! nothing, and one it cannot read stops the run naming the field. Needs
//! `AIFACTORY_TEST_MQTT_URL` (a real broker); says it skipped without.

use aifactory_connect::envelope::{self, Sync};
use aifactory_connect::mqtt::{BrokerAddress, Link};
use aifactory_coordinator::Links;
use aifactory_runtime::ladder::run_rung;
use aifactory_runtime::lockstep::{self, Service};
use aifactory_twin::PlantModel;
use common::{reference_plant, runtime, unique};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

mod common;

#[test]
fn a_rung_over_the_wire_writes_the_ledger_and_kpis_of_the_same_rung_in_process() {
    let Ok(url) = std::env::var("AIFACTORY_TEST_MQTT_URL") else {
        eprintln!("skipped: AIFACTORY_TEST_MQTT_URL is not set");
        return;
    };
    let broker: BrokerAddress = url.parse().unwrap_or_else(|e| panic!("{e}"));
    let rt = runtime();
    let (seed, days) = (7, 0.2);
    // Tier 0 is the rules alone; tier 3 takes records on file, trial batches, the loop's
    // observer and every kind of request.
    for tier in [0, 3] {
        let plant = reference_plant(&format!("lockstep-{}", unique()));
        let model = Arc::new(PlantModel::new(plant.clone()));
        let in_process =
            run_rung(&model, tier, Links::ALL, seed, days).unwrap_or_else(|e| panic!("{e}"));
        let service = rt
            .block_on(Service::connect(
                plant.clone(),
                &broker,
                &format!("aifactory-test-runtime-{}", unique()),
                tier,
                Links::ALL,
                seed,
                days,
            ))
            .unwrap_or_else(|e| panic!("{e}"));
        let handle = rt.handle().clone();
        let twin = {
            let (model, broker) = (Arc::clone(&model), broker.clone());
            std::thread::spawn(move || {
                lockstep::run_plant(
                    &handle,
                    model,
                    &broker,
                    &format!("aifactory-test-twin-{}", unique()),
                    seed,
                    days,
                    &mut |_| {},
                )
            })
        };
        let served = service.run().unwrap_or_else(|e| panic!("tier {tier}: {e}"));
        let plant_run = twin
            .join()
            .unwrap_or_else(|_| panic!("the twin's thread panicked"))
            .unwrap_or_else(|e| panic!("tier {tier}: {e}"));
        let counts = served.counts.clone();
        assert!(counts.requests > 50, "tier {tier}: {counts:?}");
        assert_eq!(counts.requests, plant_run.counts.requests, "tier {tier}");
        assert_eq!(counts.events, plant_run.counts.events, "tier {tier}");
        assert_eq!(counts.refused, 0, "tier {tier}");
        if tier == 3 {
            assert!(counts.trial_batches > 0, "{counts:?}");
            assert!(plant_run.counts.trial_batches > 0);
        }
        let over_wire = lockstep::rung(&plant, seed, days, plant_run.result.kpis, served)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(over_wire.kpis, in_process.kpis, "tier {tier}: KPIs");
        assert_eq!(
            over_wire.ledger_sha256, in_process.ledger_sha256,
            "tier {tier}: ledger"
        );
        assert_eq!(over_wire.decisions, in_process.decisions, "tier {tier}");
        assert_eq!(over_wire.assessment.tier, in_process.assessment.tier);
        if tier == 3 {
            assert!(over_wire.decisions > 0);
        }
    }
}

/// A hand-written plant: a link that publishes what the test says and reads the answers.
struct FakePlant {
    rt: tokio::runtime::Runtime,
    link: Link,
    incoming: tokio::sync::mpsc::Receiver<aifactory_connect::mqtt::Incoming>,
    site: String,
    seq: u64,
}

impl FakePlant {
    fn send(&mut self, kind: &str, data: serde_json::Value) -> String {
        self.seq += 1;
        let id = format!("F{}", self.seq);
        let body = json!({
            "spec": "aifactory/1", "id": id, "source": "fake", "seq": self.seq, "type": kind,
            "time": 1_767_225_600_000_i64 + self.seq as i64, "data": data,
        });
        let topic = format!("aifactory/{}/_events", self.site);
        let payload = serde_json::to_vec(&body).unwrap_or_default();
        self.rt
            .block_on(self.link.publish_waiting(topic, payload, false))
            .unwrap_or_else(|e| panic!("{e}"));
        id
    }

    fn next_sync(&mut self) -> Sync {
        loop {
            let message = self
                .rt
                .block_on(async {
                    tokio::time::timeout(Duration::from_secs(30), self.incoming.recv()).await
                })
                .unwrap_or_else(|_| panic!("no answer within 30 s"))
                .unwrap_or_else(|| panic!("the link closed"));
            if message.topic.ends_with("/_sync") {
                return envelope::decode_sync(&message.payload).unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
}

#[test]
fn requests_outside_the_plant_get_no_command_and_unreadable_ones_stop_the_run_naming_the_field() {
    let Ok(url) = std::env::var("AIFACTORY_TEST_MQTT_URL") else {
        eprintln!("skipped: AIFACTORY_TEST_MQTT_URL is not set");
        return;
    };
    let broker: BrokerAddress = url.parse().unwrap_or_else(|e| panic!("{e}"));
    let site = format!("lockstep-bad-{}", unique());
    let plant = reference_plant(&site);
    let service_rt = runtime();
    let service = service_rt
        .block_on(Service::connect(
            plant,
            &broker,
            &format!("aifactory-test-runtime-{}", unique()),
            0,
            Links::ALL,
            1,
            1.0,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let served = std::thread::spawn(move || service.run());
    let rt = runtime();
    let filters = [envelope::sync_topic(&site)];
    let (link, incoming) = rt
        .block_on(Link::connect(
            &broker,
            &format!("aifactory-test-fake-{}", unique()),
            &filters,
            false,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut fake = FakePlant {
        rt,
        link,
        incoming,
        site,
        seq: 0,
    };
    fake.send("records_on_file", json!({}));
    match fake.next_sync() {
        Sync::Ready { policy, .. } => assert!(!policy.is_empty()),
        other => panic!("expected ready, got {other:?}"),
    }
    // Machine 99 is not in the plant: answered, with nothing to do.
    let view = json!({
        "machine": 99, "now": 0, "run_h_since_maintenance": 500.0,
        "recommended_interval_h": 400.0, "last_vibration_mm_s": 0.0,
        "last_temperature_c": 0.0, "last_current_a": 0.0, "queue_len": 0,
    });
    let id = fake.send(
        "decision_request",
        json!({"call": "start_maintenance", "view": view}),
    );
    match fake.next_sync() {
        Sync::Answered {
            correlation,
            commands,
        } => {
            assert_eq!(correlation, id);
            assert!(commands.is_empty(), "{commands:?}");
        }
        other => panic!("expected an answer, got {other:?}"),
    }
    // The same machine inside the plant, past its service interval: a maintenance command.
    let mut inside = view.clone();
    inside["machine"] = json!(0);
    let id = fake.send(
        "decision_request",
        json!({"call": "start_maintenance", "view": inside}),
    );
    match fake.next_sync() {
        Sync::Answered {
            correlation,
            commands,
        } => {
            assert_eq!(correlation, id);
            assert_eq!(commands.len(), 1, "{commands:?}");
        }
        other => panic!("expected an answer, got {other:?}"),
    }
    // A call the contract does not have: the run cannot stay the in-process run, so it stops.
    fake.send("decision_request", json!({"call": "guess", "machine": 0}));
    let err = served
        .join()
        .unwrap_or_else(|_| panic!("the service panicked"))
        .expect_err("an unreadable request stops the run");
    let text = err.to_string();
    assert!(text.contains("data") && text.contains("guess"), "{text}");
}

#[test]
fn the_paced_twin_is_a_plant_a_feed_runs_its_commands_carried_out_and_acknowledged() {
    let Ok(url) = std::env::var("AIFACTORY_TEST_MQTT_URL") else {
        eprintln!("skipped: AIFACTORY_TEST_MQTT_URL is not set");
        return;
    };
    let broker: BrokerAddress = url.parse().unwrap_or_else(|e| panic!("{e}"));
    let plant = reference_plant(&format!("paced-{}", unique()));
    let model = Arc::new(PlantModel::new(plant.clone()));
    let rt = runtime();
    let log = aifactory_core::DecisionLog::new();
    let coordinator = aifactory_runtime::feed::coordinator_for(&plant, 1, 1, &log, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let spec = aifactory_runtime::feed::FeedSpec {
        plant: plant.clone(),
        broker: broker.clone(),
        client_id: format!("aifactory-test-feed-{}", unique()),
        policy: coordinator.policy,
        observer: coordinator.observer,
        log: Some(log),
        tier: 1,
        plans_releases: false,
        command_ttl_ms: aifactory_runtime::feed::COMMAND_TTL_MS,
        clock: aifactory_runtime::Clock::system(),
    };
    let store = rt
        .block_on(aifactory_store::Store::open_in_memory())
        .unwrap_or_else(|e| panic!("{e}"));
    let feed = rt
        .block_on(async {
            aifactory_runtime::feed::connect(spec)
                .await?
                .run(store.clone(), None)
                .await
        })
        .unwrap_or_else(|e| panic!("{e}"));
    // A day at 7,200 times real time: twelve seconds, two plant hours a second.
    let handle = rt.handle().clone();
    let twin = {
        let broker = broker.clone();
        std::thread::spawn(move || {
            lockstep::run_paced_plant(
                &handle,
                model,
                &broker,
                &format!("aifactory-test-paced-{}", unique()),
                3,
                1.0,
                lockstep::PacedPlant {
                    // A reading every ten minutes: the stream a debug build's feed keeps up with.
                    telemetry_period_s: Some(600.0),
                    pace: Some((7_200.0, aifactory_runtime::Clock::system())),
                    releases_by_command: false,
                    stop: None,
                },
                &mut |_| {},
            )
        })
    };
    let plant_run = twin
        .join()
        .unwrap_or_else(|_| panic!("the twin's thread panicked"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut feed = feed;
    let (events, acks) = (plant_run.counts.events, plant_run.counts.acks);
    rt.block_on(feed.wait_until(Duration::from_secs(180), |r| {
        r.events >= events && r.acks >= acks
    }));
    let report = rt
        .block_on(async { feed.stop().await })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.events, events, "{report:?}");
    assert_eq!((report.refused, report.quarantined), (0, 0), "{report:?}");
    // Every reading arrived, named by machine and signal (three signals a message).
    assert_eq!(
        report.telemetry_points,
        3 * plant_run.counts.telemetry_messages,
        "{report:?}"
    );
    // Where work waited at a free machine, the feed's dispatch lists went out and arrived, the
    // twin carried them out, and every acknowledgement came back.
    assert!(plant_run.counts.commands > 0, "{report:?}");
    // Every command the twin took was sent by the feed; those the feed decided on the last
    // events (it may lag a debug build's twin by a few plant minutes) never reached it.
    assert!(
        report.commands >= plant_run.counts.commands,
        "{report:?} {:?}",
        plant_run.counts
    );
    assert_eq!(report.acks, plant_run.counts.acks, "{report:?}");
    assert!(
        report.outcomes.get("completed").is_some_and(|n| *n > 0),
        "{report:?}"
    );
    assert!(plant_run.result.kpis.oee > 0.0);
}
