//! Machines served over OPC UA as part of a plant on the wire (`docs/PLANT-CONTRACT.md`, "OPC
//! UA"): a bridge that reads each machine's state and signals by browse path, writes its
//! set-points with a read-back and starts its job orders through OPC 40001-3's
//! `JobOrderControl.Start` (a dispatch list), speaking the contract on the broker on the machines' behalf —
//! `machine_state` events, telemetry named `{machine}/{browse path}`, and an acknowledgement for
//! every command. The plant feed then treats these machines like any other: one ledger, one
//! command tracker, one quarantine, one restart path for every machine, whatever it speaks.
//!
//! It never decides and never stores: it only translates, so a bridge that restarts loses
//! nothing the feed has not already kept (a command redelivered under the same id is answered
//! with the acknowledgement it had, not carried out twice).

use crate::clock::Clock;
use aifactory_connect::Value;
use aifactory_connect::envelope;
use aifactory_connect::json::ROOT;
use aifactory_connect::mqtt::{BrokerAddress, Link, MqttError};
use aifactory_connect::opcua::{
    Client, NamedMethod, NamedVariable, OpcUaError, named_methods, named_variables,
};
use aifactory_core::{EventKind, PlantEvent, Timestamp};
use aifactory_plant::{Ack, AckStatus, Action, Command, DispatchJob};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::sync::watch;

/// Read-backs after a set-point write: at most this many, spread over [`READ_BACK_WITHIN`].
const READ_BACKS: u32 = 3;
const READ_BACK_WITHIN: Duration = Duration::from_secs(2);
/// How often the bridge says what time it is when its machines are quiet.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// What to bridge.
#[derive(Debug, Clone)]
pub struct BridgeSpec {
    /// The OPC UA server, `opc.tcp://host:port/…`.
    pub opcua_url: String,
    pub broker: BrokerAddress,
    pub client_id: String,
    /// The plant's site (its plant-file id): the contract's topics live under it.
    pub site: String,
    /// The plant file's machine ids: an object whose browse name is one of them is that machine.
    pub machines: Vec<String>,
    /// The `source` of the events and acknowledgements the bridge publishes.
    pub source: String,
    /// Stamps acknowledgements and values that come without a source timestamp.
    pub clock: Clock,
}

/// What a bridge did so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BridgeReport {
    /// The plant's machines found on the server, and the variables read under them.
    pub machines: Vec<String>,
    pub variables: usize,
    /// `machine_state` events published, and state values outside the OPC 40001-1 table
    /// (counted, not published: the state before holds).
    pub states: u64,
    pub unknown_states: u64,
    pub telemetry: u64,
    pub commands: u64,
    /// Acknowledgements published, by status.
    pub acks: BTreeMap<String, u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    OpcUa(#[from] OpcUaError),
    #[error("{url} serves none of the plant's machines ({machines}) as an object")]
    NoMachines { url: String, machines: String },
    #[error("connecting to mqtt://{host}:{port}")]
    Connect {
        host: String,
        port: u16,
        #[source]
        source: MqttError,
    },
    #[error("publishing to the broker")]
    Publish(#[source] MqttError),
    #[error("the subscription to {url} ended")]
    SubscriptionEnded { url: String },
    #[error("the bridge task stopped")]
    Task(#[source] tokio::task::JoinError),
}

/// The state code (UMH) of an OPC 40001-1 `MachineryItemState` value — its state's name, or its
/// number (0 NotAvailable, 1 OutOfService, 2 Executing, 3 NotExecuting) — with the raw words
/// kept. `OutOfService` is preventive maintenance when the operation mode says `Maintenance`.
/// `None`: NotAvailable (no data: the state before holds) or a value outside the table.
pub fn machinery_item_state(value: &Value, mode: Option<&str>) -> Option<(u32, String)> {
    let word = match value {
        Value::Text(t) => t.trim().to_owned(),
        Value::Bool(_) | Value::Bytes(_) => return None,
        other => {
            const BY_NUMBER: [&str; 4] =
                ["NotAvailable", "OutOfService", "Executing", "NotExecuting"];
            let n = other.as_f64()?;
            let index = (n.fract() == 0.0 && (0.0..4.0).contains(&n)).then_some(n as usize)?;
            BY_NUMBER[index].to_owned()
        }
    };
    let code = match word.as_str() {
        "Executing" => 10_000,
        "NotExecuting" => 170_000,
        "OutOfService" if mode.is_some_and(|m| m.eq_ignore_ascii_case("Maintenance")) => 210_000,
        "OutOfService" => 180_000,
        _ => return None,
    };
    Some((code, format!("OPC40001:{word}")))
}

/// A running bridge; [`Bridge::stop`] ends it.
#[derive(Debug)]
pub struct Bridge {
    report: watch::Receiver<BridgeReport>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<BridgeReport, BridgeError>>,
}

impl Bridge {
    /// Connects to the server and the broker, finds the plant's machines by browse name,
    /// subscribes to their variables and to their command topics, and starts bridging.
    pub async fn start(spec: BridgeSpec) -> Result<Bridge, BridgeError> {
        let client = Client::connect(&spec.opcua_url, crate::opcua::CONNECT_TIMEOUT).await?;
        let nodes = client.browse().await?;
        let variables = named_variables(&nodes, |name| spec.machines.iter().any(|m| m == name));
        let methods = named_methods(&nodes, |name| spec.machines.iter().any(|m| m == name));
        if variables.is_empty() {
            client.disconnect().await;
            return Err(BridgeError::NoMachines {
                url: spec.opcua_url.clone(),
                machines: spec.machines.join(", "),
            });
        }
        let mut machines: Vec<String> = variables.iter().map(|v| v.machine.clone()).collect();
        machines.sort();
        machines.dedup();
        let filters: Vec<String> = machines
            .iter()
            .map(|m| envelope::command_topic(&spec.site, Some(m)))
            .collect();
        let (link, incoming) = Link::connect(&spec.broker, &spec.client_id, &filters, false)
            .await
            .map_err(|source| BridgeError::Connect {
                host: spec.broker.host.clone(),
                port: spec.broker.port,
                source,
            })?;
        let ids: Vec<String> = variables.iter().map(|v| v.node_id.clone()).collect();
        let changes = client.subscribe(&ids, Duration::from_millis(100)).await?;
        let report = BridgeReport {
            machines,
            variables: variables.len(),
            ..BridgeReport::default()
        };
        let (report_tx, report_rx) = watch::channel(report.clone());
        let (stop_tx, stop_rx) = watch::channel(false);
        let started = spec.clock.epoch_ms();
        let state = BridgeState {
            by_node: variables
                .iter()
                .map(|v| (v.node_id.clone(), v.clone()))
                .collect(),
            variables,
            methods,
            client,
            link,
            spec,
            started,
            seq: 0,
            modes: HashMap::new(),
            answered: HashMap::new(),
            report,
            report_tx,
        };
        let task = tokio::spawn(state.run(changes, incoming, stop_rx));
        Ok(Bridge {
            report: report_rx,
            stop: stop_tx,
            task,
        })
    }

    /// What it did so far.
    pub fn report(&self) -> BridgeReport {
        self.report.borrow().clone()
    }

    /// Waits until `done` holds for the report, or `timeout` passes; answers the last report.
    pub async fn wait_until(
        &mut self,
        timeout: Duration,
        done: impl Fn(&BridgeReport) -> bool,
    ) -> BridgeReport {
        let _ = tokio::time::timeout(timeout, self.report.wait_for(|r| done(r))).await;
        self.report()
    }

    /// Disconnects from both sides and answers the final report.
    pub async fn stop(self) -> Result<BridgeReport, BridgeError> {
        let _ = self.stop.send(true);
        self.task.await.map_err(BridgeError::Task)?
    }
}

struct BridgeState {
    spec: BridgeSpec,
    client: Client,
    link: Link,
    variables: Vec<NamedVariable>,
    /// The machines' methods (OPC 40001-3 job control).
    methods: Vec<NamedMethod>,
    by_node: HashMap<String, NamedVariable>,
    /// Wall ms at the start: ids of this run never repeat an earlier run's.
    started: i64,
    seq: u64,
    /// Each machine's `MachineryOperationMode`, as last read.
    modes: HashMap<String, String>,
    /// The last word already given for each command id: a redelivered command gets it again.
    answered: HashMap<String, Ack>,
    report: BridgeReport,
    report_tx: watch::Sender<BridgeReport>,
}

impl BridgeState {
    async fn run(
        mut self,
        mut changes: tokio::sync::mpsc::UnboundedReceiver<aifactory_connect::opcua::Change>,
        mut incoming: tokio::sync::mpsc::Receiver<aifactory_connect::mqtt::Incoming>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<BridgeReport, BridgeError> {
        // A quiet machine still keeps the plant's time moving, so commands expire on time.
        let mut quiet = tokio::time::interval(HEARTBEAT_EVERY);
        let result = loop {
            tokio::select! {
                _ = quiet.tick() => {
                    let now = self.spec.clock.epoch_ms();
                    if let Err(e) = self.heartbeat(now, false) {
                        break Err(e);
                    }
                }
                // The guard `wait_for` answers is dropped inside: it must not be held across awaits.
                () = async { let _ = stop.wait_for(|s| *s).await; } => break Ok(()),
                change = changes.recv() => match change {
                    Some(c) => {
                        if let Err(e) = self.change(c) {
                            break Err(e);
                        }
                    }
                    None => break Err(BridgeError::SubscriptionEnded {
                        url: self.spec.opcua_url.clone(),
                    }),
                },
                message = incoming.recv() => match message {
                    Some(m) => {
                        if let Err(e) = self.command(&m.payload).await {
                            break Err(e);
                        }
                    }
                    None => break Ok(()),
                },
            }
            self.report_tx.send_replace(self.report.clone());
        };
        self.report_tx.send_replace(self.report.clone());
        self.client.disconnect().await;
        self.link.close().await;
        result.map(|()| self.report)
    }

    fn next_id(&mut self) -> (String, u64) {
        self.seq += 1;
        (
            format!("{}-{}-{}", self.spec.source, self.started, self.seq),
            self.seq,
        )
    }

    fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), BridgeError> {
        self.link
            .publish(topic, payload, false)
            .map_err(BridgeError::Publish)
    }

    /// A value change: the machine's state as a `machine_state` event, a number as telemetry.
    fn change(&mut self, change: aifactory_connect::opcua::Change) -> Result<(), BridgeError> {
        let Some(variable) = self.by_node.get(&change.node_id).cloned() else {
            return Ok(());
        };
        let at = if change.at_ms > 0 {
            change.at_ms
        } else {
            self.spec.clock.epoch_ms()
        };
        if is_state(&variable, "MachineryOperationMode") {
            if let Value::Text(mode) = &change.value {
                self.modes.insert(variable.machine.clone(), mode.clone());
            }
            return Ok(());
        }
        if is_state(&variable, "MachineryItemState") {
            let mode = self.modes.get(&variable.machine).map(String::as_str);
            let Some((code, raw)) = machinery_item_state(&change.value, mode) else {
                self.report.unknown_states += 1;
                return Ok(());
            };
            let event = PlantEvent {
                at: Timestamp(at),
                kind: EventKind::MachineState,
                machine: Some(variable.machine.clone()),
                order: None,
                detail: serde_json::json!({ "code": code, "raw": raw }),
            };
            let (id, seq) = self.next_id();
            let payload = envelope::encode_event(&event, &self.spec.source, &id, seq);
            self.publish(format!("{ROOT}/{}/_events", self.spec.site), payload)?;
            self.report.states += 1;
            // A server's subscription delivers its changes in order, so nothing stamped earlier
            // follows from this source: ask for the decisions up to this change now (a lockstep
            // heartbeat) rather than leave it held for the feed's reorder window — a machine
            // that has just gone free wants its next job at once.
            return self.heartbeat(at, true);
        }
        let Some(number) = change.value.as_f64().filter(|v| v.is_finite()) else {
            return Ok(());
        };
        let payload = serde_json::json!({ "ts": at, "values": { variable.name.clone(): number } });
        self.publish(
            format!("{ROOT}/{}/{}", self.spec.site, variable.machine),
            serde_json::to_vec(&payload).unwrap_or_default(),
        )?;
        self.report.telemetry += 1;
        Ok(())
    }

    /// The bridge's time on `_events`; with `answer`, a promise that nothing earlier follows.
    fn heartbeat(&mut self, at_ms: i64, answer: bool) -> Result<(), BridgeError> {
        let (id, seq) = self.next_id();
        let mut body = serde_json::json!({
            "spec": envelope::SPEC, "id": id, "source": self.spec.source, "seq": seq,
            "type": "heartbeat", "time": at_ms,
        });
        if answer {
            body["data"] = serde_json::json!({ "answer": true });
        }
        self.publish(
            format!("{ROOT}/{}/_events", self.spec.site),
            serde_json::to_vec(&body).unwrap_or_default(),
        )
    }

    fn ack(&mut self, ack: Ack) -> Result<(), BridgeError> {
        let (id, seq) = self.next_id();
        let payload = envelope::encode_ack(&ack, &self.spec.source, &id, seq);
        self.publish(format!("{ROOT}/{}/_acks", self.spec.site), payload)?;
        *self
            .report
            .acks
            .entry(ack.status.as_str().to_owned())
            .or_default() += 1;
        if ack.status.is_final() {
            self.answered.insert(ack.command.clone(), ack);
        }
        Ok(())
    }

    /// A command for one of the bridged machines: acknowledged as received, then carried out
    /// (a set-point: a write and its read-back) or refused with the reason.
    async fn command(&mut self, payload: &[u8]) -> Result<(), BridgeError> {
        // Not a command (a malformed one has no id to answer): nothing to acknowledge.
        let Ok(command) = envelope::decode_command(payload) else {
            return Ok(());
        };
        self.report.commands += 1;
        if let Some(last) = self.answered.get(&command.id).cloned() {
            return self.ack(last);
        }
        let now = Timestamp(self.spec.clock.epoch_ms());
        if command.expires.is_some_and(|e| e < now) {
            return self.ack(
                Ack::new(&command.id, AckStatus::Expired, now)
                    .because("it expired before it reached the machine"),
            );
        }
        self.ack(Ack::new(&command.id, AckStatus::Received, now))?;
        let last = self.carry_out(&command).await;
        self.ack(last)
    }

    async fn carry_out(&self, command: &Command) -> Ack {
        let at = || Timestamp(self.spec.clock.epoch_ms());
        if let Action::DispatchList { machine, jobs } = &command.action {
            return self.start_job(command, machine, jobs).await;
        }
        let Action::SetPoint {
            machine,
            param,
            value,
        } = &command.action
        else {
            return Ack::new(&command.id, AckStatus::Rejected, at()).because(format!(
                "`{}` is not carried out over OPC UA here: this server is bridged for state, \
                 signals, set-points and dispatch lists (OPC 40001-3 JobOrderControl.Start)",
                command.action.name()
            ));
        };
        let Some(variable) = self
            .variables
            .iter()
            .find(|v| &v.machine == machine && (&v.name == param || &v.leaf == param))
        else {
            return Ack::new(&command.id, AckStatus::Rejected, at()).because(format!(
                "{machine} has no variable `{param}` on {}",
                self.spec.opcua_url
            ));
        };
        match self.client.write(&variable.node_id, *value).await {
            Ok(()) => {}
            Err(OpcUaError::WriteRefused { status, .. }) => {
                return Ack::new(&command.id, AckStatus::Rejected, at())
                    .because(format!("the OPC UA server refused the write: {status}"));
            }
            Err(e) => {
                return Ack::new(&command.id, AckStatus::Failed, at()).because(e.to_string());
            }
        }
        // Read back until two reads agree: a controller may clamp a value a scan cycle after
        // it took the write, so the first read can still show what was written.
        let mut read = None;
        for attempt in 0..READ_BACKS {
            if attempt > 0 {
                tokio::time::sleep(READ_BACK_WITHIN / READ_BACKS).await;
            }
            if let Ok(Some(v)) = self.client.read(&variable.node_id).await
                && let Some(n) = v.as_f64()
            {
                let settled = read == Some(n);
                read = Some(n);
                if settled {
                    break;
                }
            }
        }
        match read {
            Some(n) => {
                let mut ack = Ack::new(&command.id, AckStatus::Completed, at());
                ack.read_back = Some(n);
                ack
            }
            None => Ack::new(&command.id, AckStatus::Failed, at()).because(format!(
                "no read-back of {machine} {param} within {} s",
                READ_BACK_WITHIN.as_secs()
            )),
        }
    }
}

impl BridgeState {
    /// A dispatch list as OPC 40001-3 job control: `Start` on the machine's `JobOrderControl`
    /// with each listed job order's id in turn, until the machine takes one (`ReturnStatus`
    /// 0). The job orders are the plant's own (stored on the machine by its MES); a machine
    /// that refuses them all fails the command with each refusal.
    async fn start_job(&self, command: &Command, machine: &str, jobs: &[DispatchJob]) -> Ack {
        let at = || Timestamp(self.spec.clock.epoch_ms());
        let Some(start) = self.methods.iter().find(|m| {
            m.machine == machine
                && (m.name == "JobOrderControl.Start" || m.name.ends_with(".JobOrderControl.Start"))
        }) else {
            return Ack::new(&command.id, AckStatus::Rejected, at()).because(format!(
                "{machine} has no JobOrderControl.Start method (OPC 40001-3) on {}",
                self.spec.opcua_url
            ));
        };
        let mut refusals = Vec::new();
        for job in jobs {
            let called = self
                .client
                .call(
                    &start.object_id,
                    &start.node_id,
                    &[Value::Text(job.order.clone())],
                )
                .await;
            let status = match called {
                Ok(out) => out.first().cloned().flatten().and_then(|v| v.as_f64()),
                Err(OpcUaError::CallRefused { status, .. }) => {
                    return Ack::new(&command.id, AckStatus::Rejected, at())
                        .because(format!("the OPC UA server refused Start: {status}"));
                }
                Err(e) => {
                    return Ack::new(&command.id, AckStatus::Failed, at()).because(e.to_string());
                }
            };
            match status {
                Some(0.0) => {
                    return Ack::new(&command.id, AckStatus::Completed, at())
                        .because(format!("{machine} started job order {}", job.order));
                }
                Some(s) => refusals.push(format!(
                    "{}: ReturnStatus {s}{}",
                    job.order,
                    match s as u64 {
                        1 => " (unknown job order)",
                        3 => " (invalid state)",
                        4 => " (cannot accept)",
                        32 => " (invalid request)",
                        _ => "",
                    }
                )),
                None => refusals.push(format!("{}: no ReturnStatus", job.order)),
            }
        }
        Ack::new(&command.id, AckStatus::Failed, at()).because(format!(
            "{machine} started none of the listed job orders ({})",
            refusals.join("; ")
        ))
    }
}

/// Whether `variable` is the machine's `name` state (`MachineryItemState`, or its `CurrentState`
/// as OPC 40001-1 nests it).
fn is_state(variable: &NamedVariable, name: &str) -> bool {
    variable.leaf == name || variable.name.ends_with(&format!("{name}.CurrentState"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machinery_item_states_map_to_the_contract_codes() {
        let text = |s: &str| Value::Text(s.to_owned());
        assert_eq!(
            machinery_item_state(&text("Executing"), None),
            Some((10_000, "OPC40001:Executing".to_owned()))
        );
        assert_eq!(
            machinery_item_state(&text("NotExecuting"), None).map(|s| s.0),
            Some(170_000)
        );
        assert_eq!(
            machinery_item_state(&text("OutOfService"), None).map(|s| s.0),
            Some(180_000)
        );
        assert_eq!(
            machinery_item_state(&text("OutOfService"), Some("Maintenance")).map(|s| s.0),
            Some(210_000)
        );
        assert_eq!(
            machinery_item_state(&Value::Float(2.0), None).map(|s| s.0),
            Some(10_000)
        );
        assert_eq!(machinery_item_state(&text("NotAvailable"), None), None);
        assert_eq!(machinery_item_state(&text("Dancing"), None), None);
        assert_eq!(machinery_item_state(&Value::Float(7.0), None), None);
        assert_eq!(machinery_item_state(&Value::Bool(true), None), None);
    }
}
