//! A machine we did not write, served over OPC UA by an independent stack (Python asyncua,
//! `tests/plant-emulator/opcua_machine.py`): the bridge finds it by browse name, its
//! `MachineryItemState` reaches the plant feed as state events and its signals as telemetry
//! named `{machine}/{browse name}`; a set-point is written and read back (the controller clamps
//! it), a refused write and a command it cannot carry out are recorded as rejected with the
//! server's reason — each the outcome of its decision in the ledger.
//!
//! Needs `AIFACTORY_TEST_MQTT_URL` and `AIFACTORY_TEST_EMULATOR_PYTHON` (a Python with the
//! pinned asyncua; `.ci/run` installs it and sets both); without them it says it skipped.
#![cfg(feature = "opcua")]

use aifactory_core::{Decision, ExecutedBy, LifecycleStage, Timestamp};
use aifactory_plant::{Action, Command, CommandSink, DispatchJob};
use aifactory_runtime::Clock;
use aifactory_runtime::feed;
use aifactory_runtime::opcua_plant::{Bridge, BridgeSpec};
use aifactory_store::Store;
use common::{broker_and_python, job_shop, runtime, tier0_feed, unique, workspace};
use std::io::BufRead;
use std::process::{Child, Command as Process, Stdio};
use std::time::Duration;

mod common;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Kills the server however the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the asyncua machine and waits for its `listening` line.
fn start_machine(python: &str, port: u16) -> (Server, String) {
    let mut child = Process::new(python)
        .current_dir(workspace())
        .args(["tests/plant-emulator/opcua_machine.py", "--port"])
        .arg(port.to_string())
        .args(["--machine", "MILL-02", "--cycle", "0.5", "--max", "7000"])
        .args(["--seconds", "120", "--jobs", "WO-7"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("{e}"));
    let url = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("the OPC UA machine did not start: `{line}`"))
        .to_owned();
    (Server(child), url)
}

fn decision(id: &str, at: Timestamp, skill: &str) -> Decision {
    Decision {
        id: id.to_owned(),
        at,
        skill: skill.to_owned(),
        stage: LifecycleStage::Production,
        inputs_ref: "test".to_owned(),
        model: "approved-by:test".to_owned(),
        model_version: "1".to_owned(),
        output: serde_json::json!({}),
        confidence: None,
        executed_by: ExecutedBy::Human,
        outcome: None,
    }
}

#[test]
fn a_machine_served_over_opcua_by_another_stack_is_read_written_and_refused() {
    let Some((url, python)) = broker_and_python() else {
        return;
    };
    let (_, plant) = job_shop("opc");
    let site = plant.plant.id.clone();
    let machines: Vec<String> = plant.machines.iter().map(|m| m.id.clone()).collect();
    let (_server, opcua_url) = start_machine(&python, free_port());

    let runtime = runtime();
    runtime.block_on(async {
        let store = Store::open_in_memory()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let broker: aifactory_connect::mqtt::BrokerAddress =
            url.parse().unwrap_or_else(|e| panic!("{e}"));
        let spec = tier0_feed(plant, &url);
        let connected = feed::connect(spec).await.unwrap_or_else(|e| panic!("{e}"));
        let commands = connected.commands();
        let mut running = connected
            .run(store.clone(), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // A server with none of the plant's machines is an error naming them, not an idle bridge.
        let wrong = Bridge::start(BridgeSpec {
            opcua_url: opcua_url.clone(),
            broker: broker.clone(),
            client_id: format!("aifactory-test-bridge-{}", unique()),
            site: site.clone(),
            machines: vec!["TURN-01".to_owned(), "TURN-02".to_owned()],
            source: "opcua-wrong".to_owned(),
            clock: Clock::system(),
        })
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
        assert_eq!(
            wrong,
            Err(format!(
                "{opcua_url} serves none of the plant's machines (TURN-01, TURN-02) as an object"
            ))
        );
        let bridge = Bridge::start(BridgeSpec {
            opcua_url: opcua_url.clone(),
            broker,
            client_id: format!("aifactory-test-bridge-{}", unique()),
            site: site.clone(),
            machines,
            source: "opcua-mill".to_owned(),
            clock: Clock::system(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bridge.report().machines, ["MILL-02"]);

        // Its state, read by browse path: NotExecuting and Executing in turn, as state events.
        let report = running
            .wait_until(Duration::from_secs(30), |r| {
                r.events >= 3 && r.telemetry_points >= 5
            })
            .await;
        assert!(report.events >= 3, "{report:?} / {:?}", bridge.report());
        assert_eq!((report.refused, report.quarantined), (0, 0), "{report:?}");
        // The feed commits what it took at least every second.
        let mut raws: Vec<String> = Vec::new();
        for _ in 0..50 {
            let events = store
                .events(Some(running.run()))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            raws = events
                .iter()
                .filter(|e| e.machine.as_deref() == Some("MILL-02"))
                .filter_map(|e| e.detail["raw"].as_str().map(str::to_owned))
                .collect();
            if raws.len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(raws.iter().any(|r| r == "OPC40001:Executing"), "{raws:?}");
        assert!(
            raws.iter().any(|r| r == "OPC40001:NotExecuting"),
            "{raws:?}"
        );
        // Its signals, under its own names.
        let series = store
            .series_counts()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = series
            .keys()
            .filter(|s| *s.site == *site)
            .map(|s| format!("{}/{}", s.device, s.metric))
            .collect();
        assert!(
            names.iter().any(|n| n == "MILL-02/SpindleSpeed"),
            "{names:?}"
        );
        assert!(
            names.iter().any(|n| n == "MILL-02/Temperature"),
            "{names:?}"
        );

        // Five decisions, each written to the ledger before its command leaves.
        let at = Timestamp(Clock::system().epoch_ms());
        let sent = [
            (
                "H-1",
                "set_point_change",
                Action::SetPoint {
                    machine: "MILL-02".into(),
                    param: "spindle_speed".into(),
                    value: 9000.0,
                },
            ),
            (
                "H-2",
                "set_point_change",
                Action::SetPoint {
                    machine: "MILL-02".into(),
                    param: "coolant_flow".into(),
                    value: 3.0,
                },
            ),
            (
                "H-3",
                "maintenance_work_order",
                Action::StartMaintenance {
                    machine: "MILL-02".into(),
                },
            ),
            (
                "H-4",
                "dispatch_list",
                Action::DispatchList {
                    machine: "MILL-02".into(),
                    jobs: vec![
                        DispatchJob {
                            order: "WO-9".into(),
                            step: 1,
                        },
                        DispatchJob {
                            order: "WO-7".into(),
                            step: 1,
                        },
                    ],
                },
            ),
            (
                "H-5",
                "dispatch_list",
                Action::DispatchList {
                    machine: "MILL-02".into(),
                    jobs: vec![DispatchJob {
                        order: "WO-7".into(),
                        step: 1,
                    }],
                },
            ),
        ];
        for (id, skill, action) in sent {
            store
                .record_decision(&decision(id, at, skill))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            commands
                .send(Command {
                    id: format!("C-{id}"),
                    decision: Some(id.to_owned()),
                    expires: Some(Timestamp(at.0 + 86_400_000)),
                    action,
                })
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let report = running
            .wait_until(Duration::from_secs(30), |r| {
                r.outcomes.values().sum::<u64>() >= 5
            })
            .await;
        let bridged = bridge.stop().await.unwrap_or_else(|e| panic!("{e}"));
        let report_end = running.stop().await.unwrap_or_else(|e| panic!("{e}"));
        println!(
            "feed: {}\nbridge: {}",
            serde_json::to_string(&report_end).unwrap_or_default(),
            serde_json::to_string(&bridged).unwrap_or_default()
        );
        assert_eq!(report.outcomes.get("completed"), Some(&2), "{report:?}");
        assert_eq!(report.outcomes.get("rejected"), Some(&2), "{report:?}");
        assert_eq!(report.outcomes.get("failed"), Some(&1), "{report:?}");
        assert_eq!(report.acks_refused, 0, "{report:?}");

        let outcome = |id: &'static str| {
            let store = store.clone();
            async move {
                store
                    .decision(id)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .and_then(|d| d.outcome)
                    .unwrap_or_else(|| panic!("{id} has no outcome"))
                    .measured
            }
        };
        // Written, and read back as the controller clamped it.
        let written = outcome("H-1").await;
        assert_eq!(written["status"], "completed", "{written}");
        assert_eq!(written["read_back"], 7000.0, "{written}");
        // Refused by the server, with its status.
        let refused = outcome("H-2").await;
        assert_eq!(refused["status"], "rejected", "{refused}");
        let reason = refused["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("BadUserAccessDenied"), "{reason}");
        // Not something this machine takes over OPC UA: refused, not pretended.
        let maintenance = outcome("H-3").await;
        assert_eq!(maintenance["status"], "rejected", "{maintenance}");
        assert!(
            maintenance["reason"]
                .as_str()
                .is_some_and(|r| r.contains("start_maintenance")),
            "{maintenance}"
        );
        // A dispatch list as OPC 40001-3 job control: WO-9 is not a job order the machine
        // holds, so it starts WO-7, the next on the list.
        let dispatched = outcome("H-4").await;
        assert_eq!(dispatched["status"], "completed", "{dispatched}");
        assert_eq!(
            dispatched["reason"], "MILL-02 started job order WO-7",
            "{dispatched}"
        );
        // WO-7 is running: a list naming only it is refused by the machine, with its status.
        let again = outcome("H-5").await;
        assert_eq!(again["status"], "failed", "{again}");
        assert!(
            again["reason"]
                .as_str()
                .is_some_and(|r| r.contains("WO-7: ReturnStatus 3 (invalid state)")),
            "{again}"
        );
    });
}
