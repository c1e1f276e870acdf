//! OPC UA end to end on localhost: our server with two machines, our client browsing,
//! subscribing and writing, over real OPC UA binary on TCP.

#![cfg(feature = "opcua")]

use aifactory_connect::Value;
use aifactory_connect::opcua::{Client, MachineNodes, MachineServer, OpcUaError, SetpointWrite};
use std::time::Duration;

fn machines() -> Vec<MachineNodes> {
    ["TURN-01", "MILL-02"]
        .iter()
        .map(|m| MachineNodes {
            machine: (*m).to_owned(),
            signals: vec!["temperature_c".to_owned(), "vibration_mm_s".to_owned()],
            setpoints: vec!["spindle_speed_setpoint".to_owned()],
        })
        .collect()
}

async fn start() -> (
    MachineServer,
    tokio::sync::mpsc::UnboundedReceiver<SetpointWrite>,
) {
    let listen = "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}"));
    MachineServer::start(listen, &machines())
        .await
        .unwrap_or_else(|e| panic!("server: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_browses_subscribes_and_writes_set_points() {
    let (server, mut writes) = start().await;
    let client = Client::connect(server.endpoint_url(), Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));

    let nodes = client
        .browse()
        .await
        .unwrap_or_else(|e| panic!("browse: {e}"));
    let names: Vec<&str> = nodes.iter().map(|n| n.browse_name.as_str()).collect();
    assert!(
        names.contains(&"TURN-01") && names.contains(&"MILL-02"),
        "{names:?}"
    );
    let variables = Client::variables(&nodes);
    let temp = variables
        .iter()
        .find(|v| v.ends_with("TURN-01.temperature_c"))
        .cloned()
        .unwrap_or_else(|| panic!("no TURN-01 temperature in {variables:?}"));
    assert_eq!(
        variables.iter().filter(|v| v.contains("MILL-02.")).count(),
        4,
        "two signals, the state and the set-point: {variables:?}"
    );
    let under_turn = nodes
        .iter()
        .filter(|n| n.parent.as_deref().is_some_and(|p| p.ends_with("TURN-01")))
        .count();
    assert_eq!(under_turn, 4);

    let mut changes = client
        .subscribe(std::slice::from_ref(&temp), Duration::from_millis(100))
        .await
        .unwrap_or_else(|e| panic!("subscribe: {e}"));
    // The initial value comes first; then what the server sets, with its source timestamp.
    let at_ms = 1_767_225_600_123;
    server
        .update(at_ms, &[("TURN-01", "temperature_c", Value::Float(71.5))])
        .unwrap_or_else(|e| panic!("update: {e}"));
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(c) = changes.recv().await {
            if c.value == Value::Float(71.5) {
                return Some(c);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_else(|| panic!("the update never arrived"));
    assert_eq!(got.at_ms, at_ms);
    let named = aifactory_connect::opcua::named_variables(&nodes, |_| true);
    let series = named
        .iter()
        .find(|v| v.node_id == got.node_id)
        .map(|v| v.series("hz"))
        .unwrap_or_else(|| panic!("{} is not named", got.node_id));
    let point = got.to_point(series);
    assert_eq!(
        (
            &*point.series.device,
            &*point.series.metric,
            &*point.series.node
        ),
        ("TURN-01", "temperature_c", "opcua")
    );

    let setpoint = variables
        .iter()
        .find(|v| v.ends_with("MILL-02.spindle_speed_setpoint"))
        .cloned()
        .unwrap_or_else(|| panic!("no set-point"));
    client
        .write(&setpoint, 1500.0)
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    let write = tokio::time::timeout(Duration::from_secs(5), writes.recv())
        .await
        .ok()
        .flatten();
    assert_eq!(
        write,
        Some(SetpointWrite {
            machine: "MILL-02".into(),
            setpoint: "spindle_speed_setpoint".into(),
            value: 1500.0
        })
    );
    // Sensor readings are read-only.
    assert!(matches!(
        client.write(&temp, 1.0).await,
        Err(OpcUaError::WriteRefused { .. })
    ));
    assert!(client.write("not a node id", 1.0).await.is_err());
    client.disconnect().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_variables_and_dead_servers_are_errors_not_hangs() {
    let (server, _writes) = start().await;
    assert!(matches!(
        server.update(0, &[("TURN-01", "pressure_bar", Value::Float(1.0))]),
        Err(OpcUaError::UnknownVariable { .. })
    ));
    assert!(matches!(
        server.update(0, &[("LATHE-9", "temperature_c", Value::Float(1.0))]),
        Err(OpcUaError::UnknownVariable { .. })
    ));
    let url = server.endpoint_url().to_owned();
    server.shutdown().await;
    let started = std::time::Instant::now();
    let gone = Client::connect(&url, Duration::from_secs(3)).await;
    assert!(gone.is_err(), "connected to a stopped server");
    assert!(started.elapsed() < Duration::from_secs(30));
}
