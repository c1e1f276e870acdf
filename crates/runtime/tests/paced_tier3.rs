//! Tier 3 on a plant feed: the closed loop is built on the plant's own trial batches, sent over
//! the wire when the feed starts while the plant runs; then its releases go out as commands like
//! every other decision. A plant that refuses trial batches stops it with the trial and the reason.
//! Needs `AIFACTORY_TEST_MQTT_URL` (a real broker); says it skipped without.

use aifactory_connect::mqtt::{BrokerAddress, Link};
use aifactory_core::DecisionLog;
use aifactory_runtime::feed::{self, FeedError};
use aifactory_runtime::paced::paced_rung;
use common::{job_shop, reference_plant, runtime, tier0_feed, unique};
use serde_json::json;
use std::time::Duration;

mod common;

#[test]
fn tier_3_on_a_feed_runs_on_the_plants_trial_batches_and_plans_its_releases() {
    let Ok(url) = std::env::var("AIFACTORY_TEST_MQTT_URL") else {
        eprintln!("skipped: AIFACTORY_TEST_MQTT_URL is not set");
        return;
    };
    let broker: BrokerAddress = url.parse().unwrap_or_else(|e| panic!("{e}"));
    // A small shop: few steps with set-points, so the trial batches are over in seconds even
    // in a debug build, while the plant runs.
    let (_, plant) = job_shop("tier3");
    let rt = runtime();
    // A day and a half at 3,600 times real time: 36 seconds (its first orders come on day 1).
    let run = paced_rung(
        rt.handle(),
        &plant,
        &broker,
        &format!("aifactory-test-tier3-{}", unique()),
        3,
        1,
        1.5,
        3_600.0,
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        run.plant.trial_batches > 0,
        "the loop was tuned on the plant's trial line: {:?}",
        run.plant
    );
    let sent = |kind: &str| run.feed.latency.get(kind).map_or(0, |l| l.count);
    assert!(
        sent("order_received") > 0,
        "releases planned by the feed: {:?}",
        run.feed.latency
    );
    // (Set-points follow once the loop has tuned a step; the shop's risks are too small for
    // that in a day, and the driver's own test shows them going out ahead of the lists.)
    let completed = run.feed.outcomes.get("completed").copied().unwrap_or(0);
    assert!(completed > 0, "{:?}", run.feed.outcomes);
    assert!(
        run.kpis.good_units > 0,
        "the plant made something: {:?}",
        run.kpis
    );
}

#[test]
fn a_plant_that_refuses_trial_batches_stops_tier_3_naming_the_trial_and_its_reason() {
    let Ok(url) = std::env::var("AIFACTORY_TEST_MQTT_URL") else {
        eprintln!("skipped: AIFACTORY_TEST_MQTT_URL is not set");
        return;
    };
    let broker: BrokerAddress = url.parse().unwrap_or_else(|e| panic!("{e}"));
    let plant = reference_plant(&format!("notrials-{}", unique()));
    let site = plant.plant.id.clone();
    let start = plant.start().0.0;
    let rt = runtime();
    let mut connected = rt
        .block_on(feed::connect(tier0_feed(plant.clone(), &url)))
        .unwrap_or_else(|e| panic!("{e}"));
    // A plant with no trial line: it says its time, then refuses the first trial batch.
    let (plant_side, mut commands) = rt
        .block_on(Link::connect(
            &broker,
            &format!("notrials-plant-{}", unique()),
            &[format!("aifactory/{site}/_commands/#")],
            false,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let heartbeat = json!({
        "spec": "aifactory/1", "id": "h-1", "source": "plc", "seq": 1,
        "type": "heartbeat", "time": start,
    });
    plant_side
        .publish(
            format!("aifactory/{site}/_events"),
            heartbeat.to_string().into_bytes(),
            false,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let acks = format!("aifactory/{site}/_acks");
    let refusing = rt.spawn(async move {
        let command = tokio::time::timeout(Duration::from_secs(30), commands.recv()).await;
        let command = command.ok().flatten().map(|m| m.payload);
        let id = command
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(&p).ok())
            .and_then(|c| c["id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let ack = json!({
            "spec": "aifactory/1", "type": "ack", "id": "a-1", "source": "plc", "seq": 2,
            "time": start, "correlation": id, "status": "rejected", "reason": "no trial line",
        });
        plant_side
            .publish(acks, ack.to_string().into_bytes(), false)
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_millis(500)).await;
        id
    });
    let log = DecisionLog::new();
    let built = {
        let mut trials = connected.trial_batches(rt.handle(), Duration::from_secs(30));
        feed::coordinator_for(&plant, 3, 1, &log, Some(&mut trials))
    };
    let refused_id = rt.block_on(refusing).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refused_id, "T1");
    let failure = connected.trial_failure();
    let Some(FeedError::TrialBatch { id, reason }) = &failure else {
        panic!("no trial failure: {failure:?} (built: {:?})", built.err());
    };
    assert_eq!(id, "T1");
    assert_eq!(reason, "rejected: no trial line");
    assert!(
        failure
            .as_ref()
            .is_some_and(|f| f.to_string() == "trial batch T1: rejected: no trial line")
    );
}
