//! OPC UA end to end through the binary: the twin serves its machines (`sim --opcua-listen`),
//! `ingest --opcua` browses, subscribes and stores what changes.

use crate::{aifactory, repo_file, text};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

#[test]
fn the_twin_served_over_opcua_is_ingested_into_the_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("opcua.sqlite").display().to_string();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let bin = env!("CARGO_BIN_EXE_aifactory");
    // 0.05 simulated days at 1200× take 3.6 s; then the server stays up for 2 s more.
    let twin = Command::new(bin)
        .args([
            "sim",
            "--plant",
            &repo_file("plants/sme-textile.toml"),
            "--days",
            "0.05",
        ])
        .args([
            "--telemetry-period",
            "60",
            "--opcua-listen",
            &listen,
            "--pace",
            "1200",
        ])
        .args(["--hold", "2", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the twin starts");
    let up = Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(
            up.elapsed() < Duration::from_secs(30),
            "the OPC UA server never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("opc.tcp://{listen}/");
    let browse = aifactory(&["opcua", "browse", &url, "--json"]);
    assert!(browse.status.success(), "{}", text(&browse.stderr));
    let nodes: serde_json::Value = serde_json::from_slice(&browse.stdout).expect("json");
    assert!(
        nodes
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["browse_name"] == "LOOM-01")),
        "{nodes}"
    );
    let ingest = aifactory(&[
        "ingest",
        "--opcua",
        &url,
        "--site",
        "sx",
        "--db",
        &db,
        "--duration",
        "3",
        "--json",
    ]);
    assert!(ingest.status.success(), "{}", text(&ingest.stderr));
    let stats: serde_json::Value = serde_json::from_slice(&ingest.stdout).expect("json");
    assert!(stats["changes"].as_u64().is_some_and(|n| n > 20), "{stats}");
    assert_eq!(stats["skipped"], 0, "{stats}");
    let twin = twin.wait_with_output().expect("the twin finishes");
    assert!(twin.status.success(), "{}", text(&twin.stderr));
    let run: serde_json::Value = serde_json::from_slice(&twin.stdout).expect("json");
    assert!(
        run["opcua"]["updates"].as_u64().is_some_and(|n| n > 0),
        "{run}"
    );

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (counts, latest) = runtime.block_on(async {
        let store = aifactory_store::Store::open(&db).await.expect("open");
        (
            store.series_counts().await.expect("series"),
            store.latest(Some("sx")).await.expect("latest"),
        )
    });
    let loom_temps = counts
        .iter()
        .find(|(s, _)| {
            &*s.node == "opcua" && &*s.device == "LOOM-01" && &*s.metric == "temperature_c"
        })
        .map(|(_, n)| *n);
    assert!(loom_temps.is_some_and(|n| n > 0), "{counts:?}");
    // Temperatures are plausible readings, stamped in the twin's simulated time (March 2026).
    let temps: Vec<_> = latest
        .iter()
        .filter(|l| &*l.series.metric == "temperature_c")
        .collect();
    assert!(!temps.is_empty());
    assert!(
        temps
            .iter()
            .all(|l| (1_772_000_000_000..1_773_000_000_000).contains(&l.at_ms)),
        "{temps:?}"
    );
}

#[test]
fn opcua_errors_are_clear() {
    let port = free_port();
    let out = aifactory(&["opcua", "browse", &format!("opc.tcp://127.0.0.1:{port}/")]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("OPC UA client"),
        "{}",
        text(&out.stderr)
    );
    let out = aifactory(&[
        "sim",
        "--plant",
        &repo_file("plants/sme-textile.toml"),
        "--days",
        "0.01",
        "--opcua-listen",
        "127.0.0.1:0",
        "--pace",
        "0",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--pace"),
        "{}",
        text(&out.stderr)
    );
}
