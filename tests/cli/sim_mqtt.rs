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

#[test]
fn the_twin_obeys_dcmd_maintenance_and_set_points() {
    use aifactory_connect::Value;
    use aifactory_connect::mqtt::{BrokerAddress, publish_stream};
    use aifactory_connect::sparkplug::{Message, device_command_message};
    let Ok(url) = std::env::var("AIFACTORY_TEST_MQTT_URL") else {
        eprintln!("skipped: AIFACTORY_TEST_MQTT_URL is not set");
        return;
    };
    let plant = repo_file("plants/sme-textile.toml");
    // Two days at 12 simulated hours a second, run to failure: maintenance only on command.
    let twin = std::process::Command::new(env!("CARGO_BIN_EXE_aifactory"))
        .args([
            "sim",
            "--plant",
            &plant,
            "--days",
            "2",
            "--maintenance",
            "rtf",
        ])
        .args(["--mqtt", &url, "--pace", "43200", "--json"])
        .args([
            "--mqtt-client-id",
            &format!("dcmd-twin-{}", std::process::id()),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the twin starts");
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let broker: BrokerAddress = url.parse().expect("broker address");
    let commands = [
        device_command_message(
            "sx-textile",
            "twin",
            "LOOM-01",
            0,
            &[
                ("Maintenance/Start", Value::Bool(true)),
                ("Setpoint/loom_speed", Value::Float(680.0)),
            ],
        ),
        device_command_message(
            "sx-textile",
            "twin",
            "LOOM-99",
            0,
            &[("Maintenance/Start", Value::Bool(true))],
        ),
    ];
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let sent = runtime.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        for (topic, payload) in commands {
            tx.send(Message { topic, payload }).await.expect("queued");
        }
        drop(tx);
        publish_stream(
            &broker,
            &format!("dcmd-host-{}", std::process::id()),
            None,
            rx,
        )
        .await
    });
    assert_eq!(sent.map(|s| s.acknowledged).ok(), Some(2));
    let out = twin.wait_with_output().expect("the twin finishes");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["commands"]["received"], 3, "{}", v["commands"]);
    assert_eq!(
        v["commands"]["refused"], 1,
        "LOOM-99 is not a machine: {}",
        v["commands"]
    );
    assert!(
        v["commands"]["obeyed"].as_u64().is_some_and(|n| n >= 2),
        "{}",
        v["commands"]
    );
    let machines = v["machines"].as_array().expect("machines");
    let pm = |id: &str| {
        machines
            .iter()
            .find(|m| m["machine"] == id)
            .and_then(|m| m["preventive_maintenance"].as_u64())
    };
    assert_eq!(pm("LOOM-01"), Some(1), "{machines:?}");
    assert_eq!(pm("LOOM-02"), Some(0), "run to failure without a command");
}

#[test]
fn pace_without_a_live_output_is_refused() {
    let plant = repo_file("plants/sme-textile.toml");
    let out = aifactory(&["sim", "--plant", &plant, "--days", "1", "--pace", "60"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--pace needs --mqtt"),
        "{}",
        text(&out.stderr)
    );
    let out = aifactory(&[
        "sim",
        "--plant",
        &plant,
        "--mqtt",
        "mqtt://127.0.0.1:1",
        "--pace",
        "-1",
    ]);
    assert!(!out.status.success());
}
