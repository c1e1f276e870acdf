//! `aifactory ingest` against the real broker (AIFACTORY_TEST_MQTT_URL): messages published
//! while ingest is down are delivered when it comes back (persistent session) and stored.

use crate::{aifactory, repo_file, text};

#[test]
fn ingest_stores_what_the_twin_published_while_it_was_away() {
    let Ok(url) = std::env::var("AIFACTORY_TEST_MQTT_URL") else {
        eprintln!("skipped: AIFACTORY_TEST_MQTT_URL is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = dir.path().join("plant.sqlite").display().to_string();
    let client = format!("ingest-cli-test-{}", std::process::id());
    // A plant no other MQTT test publishes, so no second edge node shares its Sparkplug group.
    let plant = repo_file("plants/electronics-assembly.toml");
    // The site id of the plant file, which is the Sparkplug group the twin publishes under.
    let site = std::fs::read_to_string(&plant)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("id = \"")
                .map(|r| r.trim_end_matches('"').to_owned())
        })
        .unwrap_or_else(|| panic!("no plant id in {plant}"));
    let topic = format!("spBv1.0/{site}/#");
    let ingest = |seconds: &str| {
        aifactory(&[
            "ingest",
            "--mqtt",
            &url,
            "--db",
            &db,
            "--client-id",
            &client,
            "--topic",
            &topic,
            "--duration",
            seconds,
            "--json",
        ])
    };
    // First connection: the broker registers the session and its subscription.
    let out = ingest("0.5");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Hourly readings keep the stream under the broker's per-client queue.
    let out = aifactory(&[
        "sim",
        "--plant",
        &plant,
        "--days",
        "0.1",
        "--telemetry-period",
        "3600",
        "--mqtt",
        &url,
        "--mqtt-client-id",
        &format!("{client}-twin"),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap_or_default();
    let published = v["mqtt"]["messages"].as_u64().unwrap_or(0);
    assert!(published > 10, "{v}");
    let out = ingest("3");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stats: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap_or_default();
    // Other tests may publish the same plant at the same time: at least ours arrived.
    assert!(
        stats["messages"].as_u64().unwrap_or(0) >= published,
        "published {published}, ingested {stats}"
    );
    assert_eq!(stats["quarantined"].as_u64(), Some(0), "{stats}");
    assert!(stats["points"].as_u64().unwrap_or(0) >= published);
}
