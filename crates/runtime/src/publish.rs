//! The twin speaking as a plant does — one Sparkplug B edge node (group = the plant's site id,
//! node `twin`) with a device per machine, its sensor readings and events as DDATA, at
//! simulated time. The twin runs on a blocking thread and hands messages through a bounded
//! channel to the publisher, so a slow broker slows the twin, never memory.

use crate::clock::Clock;
use crate::run::{Progress, RunError, RunSpec, simulate};
use aifactory_connect::Value;
use aifactory_connect::mqtt::{
    BrokerAddress, MqttError, PublishStats, publish_stream_with_commands,
};
use aifactory_connect::sparkplug::{EdgeNode, Message};
use aifactory_core::{PlantEvent, TelemetryReading};
use aifactory_twin::{Observer, SimResult};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The edge node's id within the plant's group.
pub const EDGE_NODE: &str = "twin";

/// Why a published run failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the twin thread failed")]
    TwinThread(#[source] tokio::task::JoinError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("the publisher task failed")]
    PublisherTask(#[source] tokio::task::JoinError),
    #[error("publishing to mqtt://{host}:{port}")]
    Publish {
        host: String,
        port: u16,
        #[source]
        source: MqttError,
    },
}

/// Publishing paced against the wall clock: `speed` simulated seconds per second of `clock`,
/// from the plant's start, so subscribers see the plant move and commands arrive in time.
#[derive(Debug, Clone)]
pub struct Pace {
    pub speed: f64,
    pub clock: Clock,
}

/// An observer of the twin that publishes what it sees as the edge node's messages.
pub struct EdgeObserver {
    edge: EdgeNode,
    tx: mpsc::Sender<Message>,
    /// The NBIRTH, sent before the first message (from the twin's thread, which may block).
    birth: Option<Message>,
    /// Every metric each machine has declared, with its latest value (a rebirth repeats them).
    metrics: HashMap<String, BTreeMap<String, Value>>,
    closed: bool,
    /// Simulated seconds per wall-clock second, from the plant's start and the clock's reading
    /// then; `None`: full speed.
    pace: Option<(f64, i64, Duration, Clock)>,
    /// Messages handed to the publisher so far (for flow control against what a host settled).
    sent: Arc<std::sync::atomic::AtomicU64>,
}

impl fmt::Debug for EdgeObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EdgeObserver")
            .field("devices", &self.metrics.len())
            .field("closed", &self.closed)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl EdgeObserver {
    fn send(&mut self, m: Message) {
        if let Some(birth) = self.birth.take()
            && !self.closed
            && self.tx.blocking_send(birth).is_err()
        {
            self.closed = true;
        }
        if !self.closed && self.tx.blocking_send(m).is_err() {
            self.closed = true;
        }
        if !self.closed {
            self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The count of messages sent so far (births and data), shared with whoever paces on it.
    pub fn sent(&self) -> Arc<std::sync::atomic::AtomicU64> {
        Arc::clone(&self.sent)
    }

    /// DDATA for known metrics; a (re)birth of the device when one is new.
    fn publish(&mut self, machine: &str, at_ms: u64, values: Vec<(String, Value)>) {
        if let Some((pace, start_ms, started, clock)) = &self.pace {
            let sim_s = (at_ms as i64 - start_ms).max(0) as f64 / 1000.0;
            let due = Duration::from_secs_f64(sim_s / pace);
            if let Some(wait) = due.checked_sub(clock.elapsed().saturating_sub(*started)) {
                std::thread::sleep(wait);
            }
        }
        let known = self.metrics.entry(machine.to_owned()).or_default();
        let new_metric = values.iter().any(|(name, _)| !known.contains_key(name));
        for (name, value) in &values {
            known.insert(name.clone(), value.clone());
        }
        let message = if new_metric {
            let all: Vec<(&str, Value)> =
                known.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
            self.edge.device_birth(machine, at_ms, &all)
        } else {
            let these: Vec<(&str, Value)> = values
                .iter()
                .map(|(n, v)| (n.as_str(), v.clone()))
                .collect();
            self.edge.data(Some(machine), at_ms, &these)
        };
        self.send(message);
    }
}

fn epoch_ms(t: aifactory_core::Timestamp) -> u64 {
    u64::try_from(t.0).unwrap_or(0)
}

impl Observer for EdgeObserver {
    fn wants_events(&self) -> bool {
        !self.closed
    }
    fn event(&mut self, event: PlantEvent) {
        if let Some(machine) = &event.machine {
            let values = vec![(
                "event".to_owned(),
                Value::Text(event.kind.as_str().to_owned()),
            )];
            self.publish(machine, epoch_ms(event.at), values);
        }
    }
    fn wants_telemetry(&self) -> bool {
        !self.closed
    }
    fn telemetry(&mut self, readings: [TelemetryReading; 3]) {
        let machine = readings[0].machine.clone();
        let at = epoch_ms(readings[0].at);
        let values = readings
            .into_iter()
            .map(|r| (r.signal, Value::Float(r.value)))
            .collect();
        self.publish(&machine, at, values);
    }
}

/// The publisher of what the twin says: returns the observer to run the twin with (on a thread
/// that may block) and the task that publishes, which ends when the observer is dropped. Call it
/// inside the runtime.
pub fn edge_publisher(
    spec: &RunSpec,
    broker: &BrokerAddress,
    client_id: &str,
    pace: Option<Pace>,
) -> (
    EdgeObserver,
    tokio::task::JoinHandle<Result<PublishStats, MqttError>>,
) {
    let group = spec.plant.plant.id.clone();
    let mut edge = EdgeNode::new(&group, EDGE_NODE, 0);
    let will = edge.death();
    let (start, _) = spec.plant.start();
    let start_ms = start.0;
    let birth = edge.birth(
        epoch_ms(start),
        &[("plant", Value::Text(spec.plant.plant.name.clone()))],
    );
    let (tx, rx) = mpsc::channel::<Message>(1024);
    // The twin's devices hear their DCMDs: `Maintenance/Start` (Boolean true) and
    // `Setpoint/<process parameter>` (a number) become commands the twin obeys.
    let commands = spec.commands.clone().map(|inbox| {
        let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            // Sparkplug B has no command ids: each metric of a DCMD is one host command.
            let mut number = 0u64;
            while let Some(m) = cmd_rx.recv().await {
                for action in commands_of(&m) {
                    number += 1;
                    inbox.send(aifactory_plant::Command {
                        id: format!("dcmd-{number}"),
                        decision: None,
                        expires: None,
                        action,
                    });
                }
            }
        });
        (format!("spBv1.0/{group}/DCMD/{EDGE_NODE}/+"), cmd_tx)
    });
    let publisher = {
        let broker = broker.clone();
        let client_id = client_id.to_owned();
        tokio::spawn(async move {
            publish_stream_with_commands(&broker, &client_id, Some(&will), rx, commands).await
        })
    };
    let observer = EdgeObserver {
        edge,
        tx,
        birth: Some(birth),
        metrics: HashMap::new(),
        closed: false,
        pace: pace.map(|p| (p.speed, start_ms, p.clock.elapsed(), p.clock)),
        sent: Arc::default(),
    };
    (observer, publisher)
}

/// Simulates `spec` and publishes it to the broker; returns the result and what was sent.
pub async fn simulate_and_publish(
    spec: &RunSpec,
    broker: &BrokerAddress,
    client_id: &str,
    pace: Option<Pace>,
    progress: Arc<dyn Progress>,
) -> Result<(SimResult, PublishStats), PublishError> {
    let (mut observer, publisher) = edge_publisher(spec, broker, client_id, pace);
    let twin = {
        let spec = spec.clone();
        // Dropping the observer at the end closes the channel: the publisher then finishes.
        tokio::task::spawn_blocking(move || simulate(&spec, &mut observer, &*progress))
    };
    let result = twin.await.map_err(PublishError::TwinThread)??;
    let stats = publisher
        .await
        .map_err(PublishError::PublisherTask)?
        .map_err(|source| PublishError::Publish {
            host: broker.host.clone(),
            port: broker.port,
            source,
        })?;
    Ok((result, stats))
}

/// The actions a DCMD carries; malformed ones and unknown metrics carry none.
fn commands_of(m: &Message) -> Vec<aifactory_plant::Action> {
    let Ok(dcmd) = aifactory_connect::sparkplug::device_command(&m.topic, &m.payload) else {
        return Vec::new();
    };
    dcmd.metrics
        .iter()
        .filter_map(|(name, value)| match (name.as_str(), value) {
            ("Maintenance/Start", Value::Bool(true)) => {
                Some(aifactory_plant::Action::StartMaintenance {
                    machine: dcmd.device.clone(),
                })
            }
            (name, v) => name.strip_prefix("Setpoint/").and_then(|param| {
                v.as_f64().map(|value| aifactory_plant::Action::SetPoint {
                    machine: dcmd.device.clone(),
                    param: param.to_owned(),
                    value,
                })
            }),
        })
        .collect()
}
