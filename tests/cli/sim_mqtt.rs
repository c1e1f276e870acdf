//! `aifactory sim --mqtt`: the twin publishes to a real broker (AIFACTORY_TEST_MQTT_URL) and
//! every message is acknowledged; a broker that is not there is a clear error, not a hang.

use crate::{aifactory, repo_file, text};

#[test]
fn the_twin_publishes_a_day_of_the_plant_and_every_message_is_acknowledged() {
    let Ok(url) = std::env::var("AIFACTORY_TEST_MQTT_URL") else {
        eprintln!("skipped: AIFACTORY_TEST_MQTT_URL is not set");
        return;
    };
    let plant = repo_file("plants/sme-textile.toml");
    let client = format!("cli-test-{}", std::process::id());
    let out = aifactory(&[
        "sim",
        "--plant",
        &plant,
        "--days",
        "1",
        "--mqtt",
        &url,
        "--mqtt-client-id",
        &client,
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap_or_default();
    let sent = v["mqtt"]["messages"].as_u64().unwrap_or(0);
    // One NBIRTH, a DBIRTH per machine, then readings every period and events.
    assert!(sent > 100, "{v}");
    assert_eq!(v["mqtt"]["acknowledged"].as_u64(), Some(sent), "{v}");
    assert!(v["oee"].is_number());
}

#[test]
fn an_unreachable_broker_is_a_clear_error() {
    let plant = repo_file("plants/sme-textile.toml");
    let out = aifactory(&[
        "sim",
        "--plant",
        &plant,
        "--days",
        "1",
        "--mqtt",
        "mqtt://127.0.0.1:9",
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("mqtt://127.0.0.1:9"), "{err}");
}

#[test]
fn a_malformed_broker_address_says_what_is_wrong() {
    let plant = repo_file("plants/sme-textile.toml");
    for (url, says) in [
        ("http://127.0.0.1:1883", "scheme `http`"),
        ("mqtt://host:port", "port must be a number"),
    ] {
        let out = aifactory(&["sim", "--plant", &plant, "--days", "1", "--mqtt", url]);
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(err.contains(says), "{url}: {err}");
    }
}
