//! What the runtime's wire tests share: names new on every run (a long-lived broker must not
//! mix one run's messages into another's), the emulator's job shop and the reference plant
//! under sites of their own, and a plant feed under the tier-0 rules.
#![allow(dead_code)] // each test file uses part of it

use aifactory_core::Plant;
use aifactory_plant::BaselinePolicy;
use aifactory_runtime::Clock;
use aifactory_runtime::feed::{COMMAND_TTL_MS, FeedSpec};
use std::path::{Path, PathBuf};

/// The workspace root.
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A name part new on every run.
pub(crate) fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

/// The emulator's job shop (`tests/plant-emulator/job-shop.toml`) as its text and plant, under
/// the site `{prefix}-{unique}`.
pub(crate) fn job_shop(prefix: &str) -> (String, Plant) {
    let path = workspace().join("tests/plant-emulator/job-shop.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{e}"))
        .replacen(
            "id = \"emu-shop\"",
            &format!("id = \"{prefix}-{}\"", unique()),
            1,
        );
    let plant = Plant::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    (text, plant)
}

/// The reference plant under a site of its own, so tests beside it on the broker do not hear it.
pub(crate) fn reference_plant(site: &str) -> Plant {
    let path = workspace().join("plants/hangzhou-auto-parts.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{e}"))
        .replacen("id = \"hz-auto-parts\"", &format!("id = \"{site}\""), 1);
    Plant::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"))
}

/// The async runtime the tests block on: two workers, as on the CI machine.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A feed of `plant` through the broker at `url` under the tier-0 rules, with a client id new
/// on every run.
pub(crate) fn tier0_feed(plant: Plant, url: &str) -> FeedSpec {
    FeedSpec {
        plant,
        broker: url.parse().unwrap_or_else(|e| panic!("{e}")),
        client_id: format!("aifactory-test-feed-{}", unique()),
        policy: Box::new(BaselinePolicy::default()),
        observer: None,
        log: None,
        tier: 0,
        plans_releases: false,
        command_ttl_ms: COMMAND_TTL_MS,
        clock: Clock::system(),
    }
}

/// The broker and the Python (with the pinned paho-mqtt and asyncua) the emulator tests need,
/// or `None` after saying they skipped.
pub(crate) fn broker_and_python() -> Option<(String, String)> {
    let Ok(url) = std::env::var("AIFACTORY_TEST_MQTT_URL") else {
        eprintln!("skipped: AIFACTORY_TEST_MQTT_URL is not set");
        return None;
    };
    let Ok(python) = std::env::var("AIFACTORY_TEST_EMULATOR_PYTHON") else {
        eprintln!(
            "skipped: AIFACTORY_TEST_EMULATOR_PYTHON is not set (a python with paho-mqtt and asyncua)"
        );
        return None;
    };
    Some((url, python))
}
