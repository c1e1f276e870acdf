//! OPC UA both ways: ingest subscribes to every variable a server has and stores the changes,
//! and the twin serves its machines as a server (readings as variables, events as `state`,
//! writable set-points that reach the twin as commands).

use crate::clock::Clock;
use crate::run::{Progress, RunError, RunSpec, simulate};
use aifactory_connect::mqtt::{Batch, Received};
use aifactory_connect::opcua::{Change, Client, OpcUaError};
use aifactory_core::SeriesName;
use aifactory_store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long a client waits for a server to answer its connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why OPC UA ingest stopped.
#[derive(Debug, thiserror::Error)]
pub enum OpcUaIngestError {
    #[error(transparent)]
    OpcUa(#[from] OpcUaError),
    #[error("{url} has no variables under Objects to subscribe to")]
    NoVariables { url: String },
    #[error("the subscription to {url} ended")]
    SubscriptionEnded { url: String },
    #[error("storing OPC UA changes")]
    Store(#[source] StoreError),
}

/// What an OPC UA ingest stored.
#[derive(Debug, Default, serde::Serialize)]
pub struct OpcUaStats {
    pub variables: usize,
    pub changes: u64,
    /// Changes whose number was not finite (NaN, infinity): not telemetry, not stored.
    pub skipped: u64,
    pub commits: u64,
}

/// Subscribes to every variable under Objects and commits the changes as points of `site`
/// (in batches, at least every 100 ms, received at the clock's time) until `stop` resolves.
pub async fn ingest(
    url: &str,
    site: &str,
    store: &Store,
    clock: &Clock,
    stop: impl std::future::Future<Output = ()>,
) -> Result<OpcUaStats, OpcUaIngestError> {
    let client = Client::connect(url, CONNECT_TIMEOUT).await?;
    let nodes = client.browse().await?;
    // Named by browse path (machine object, then the path below it), never by NodeId.
    let named = aifactory_connect::opcua::named_variables(&nodes, |_| true);
    let variables: Vec<String> = named.iter().map(|v| v.node_id.clone()).collect();
    let series: HashMap<String, SeriesName> = named
        .iter()
        .map(|v| (v.node_id.clone(), v.series(site)))
        .collect();
    if variables.is_empty() {
        client.disconnect().await;
        return Err(OpcUaIngestError::NoVariables {
            url: url.to_owned(),
        });
    }
    let mut changes = client
        .subscribe(&variables, Duration::from_millis(100))
        .await?;
    let mut stats = OpcUaStats {
        variables: variables.len(),
        ..OpcUaStats::default()
    };
    let mut pending: Vec<Change> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tokio::pin!(stop);
    let result = loop {
        tokio::select! {
            () = &mut stop => break Ok(()),
            change = changes.recv() => match change {
                Some(c) => {
                    pending.push(c);
                    if pending.len() >= 10_000
                        && let Err(e) = commit(store, &series, clock, &mut pending, &mut stats).await
                    {
                        break Err(e);
                    }
                }
                None => break Err(OpcUaIngestError::SubscriptionEnded { url: url.to_owned() }),
            },
            _ = tick.tick() => {
                if let Err(e) = commit(store, &series, clock, &mut pending, &mut stats).await {
                    break Err(e);
                }
            }
        }
    };
    let flushed = commit(store, &series, clock, &mut pending, &mut stats).await;
    client.disconnect().await;
    result.and(flushed).map(|()| stats)
}

async fn commit(
    store: &Store,
    series: &HashMap<String, SeriesName>,
    clock: &Clock,
    pending: &mut Vec<Change>,
    stats: &mut OpcUaStats,
) -> Result<(), OpcUaIngestError> {
    if pending.is_empty() {
        return Ok(());
    }
    let before = pending.len() as u64;
    let points = pending
        .drain(..)
        .filter_map(|c| series.get(&c.node_id).map(|s| c.to_point(s.clone())))
        .filter(|p| p.value.as_f64().is_none_or(f64::is_finite))
        .collect::<Vec<_>>();
    let n = points.len() as u64;
    stats.skipped += before - n;
    // OPC UA has no redelivery to guard against: no message keys.
    let batch = Batch {
        messages: vec![Received { key: None, points }],
        quarantined: Vec::new(),
        settles: 0,
    };
    store
        .commit_ingest(&crate::ingest::to_store(batch), clock.epoch_ms())
        .await
        .map_err(OpcUaIngestError::Store)?;
    stats.changes += n;
    stats.commits += 1;
    Ok(())
}

/// The signals the twin's machines report, served as Double variables.
const TWIN_SIGNALS: [&str; 3] = ["vibration_mm_s", "temperature_c", "current_a"];

/// How the twin serves its machines.
#[derive(Debug, Clone)]
pub struct Serve {
    pub listen: std::net::SocketAddr,
    /// Simulated seconds per second of the clock; `None` runs as fast as the twin can.
    pub pace: Option<crate::publish::Pace>,
    /// Seconds to keep serving after the run, so clients can read the final state.
    pub hold_s: f64,
}

/// What the server did.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct ServeStats {
    pub updates: u64,
    pub set_point_writes: u64,
}

/// Why serving the twin failed.
#[derive(Debug, thiserror::Error)]
pub enum OpcUaServeError {
    #[error("serving OPC UA on {listen}")]
    Serve {
        listen: std::net::SocketAddr,
        #[source]
        source: OpcUaError,
    },
    #[error("the twin thread failed")]
    TwinThread(#[source] tokio::task::JoinError),
    #[error(transparent)]
    Run(#[from] RunError),
}

/// Updates the server from the twin's thread: readings as variables, events as the machine's
/// `state`, at simulated time, paced against the wall clock when asked.
struct ServerObserver {
    server: Arc<aifactory_connect::opcua::MachineServer>,
    /// Simulated seconds per second, the clock and its reading when the run started.
    pace: Option<(f64, Clock, Duration)>,
    start_ms: i64,
    updates: u64,
}

impl ServerObserver {
    fn wait_for(&self, at_ms: i64) {
        if let Some((pace, clock, started)) = &self.pace {
            let due =
                Duration::from_secs_f64(((at_ms - self.start_ms).max(0) as f64 / 1000.0) / pace);
            if let Some(wait) = due.checked_sub(clock.elapsed().saturating_sub(*started)) {
                std::thread::sleep(wait);
            }
        }
    }
}

impl aifactory_twin::Observer for ServerObserver {
    fn wants_events(&self) -> bool {
        true
    }
    fn wants_telemetry(&self) -> bool {
        true
    }
    fn event(&mut self, event: aifactory_core::PlantEvent) {
        if let Some(machine) = &event.machine {
            self.wait_for(event.at.0);
            let state = aifactory_connect::Value::Text(event.kind.as_str().to_owned());
            if self
                .server
                .update(event.at.0, &[(machine, "state", state)])
                .is_ok()
            {
                self.updates += 1;
            }
        }
    }
    fn telemetry(&mut self, readings: [aifactory_core::TelemetryReading; 3]) {
        let at = readings[0].at.0;
        self.wait_for(at);
        let values: Vec<(&str, &str, aifactory_connect::Value)> = readings
            .iter()
            .map(|r| {
                (
                    r.machine.as_str(),
                    r.signal.as_str(),
                    aifactory_connect::Value::Float(r.value),
                )
            })
            .collect();
        if self.server.update(at, &values).is_ok() {
            self.updates += 1;
        }
    }
}

/// Simulates `spec` while serving its machines over OPC UA; `serving` hears the server's URL
/// and its machine count once it listens, before the run starts. Returns the result, what the
/// server did and its URL.
pub async fn simulate_and_serve(
    spec: &RunSpec,
    serve: Serve,
    serving: impl FnOnce(&str, usize),
    progress: Arc<dyn Progress>,
) -> Result<(aifactory_twin::SimResult, ServeStats, String), OpcUaServeError> {
    use aifactory_connect::opcua::{MachineNodes, MachineServer};
    let machines: Vec<MachineNodes> = spec
        .plant
        .machines
        .iter()
        .map(|m| MachineNodes {
            machine: m.id.clone(),
            signals: TWIN_SIGNALS.iter().map(|s| (*s).to_owned()).collect(),
            setpoints: set_points_of(&spec.plant, &m.id),
        })
        .collect();
    let (server, mut writes) = MachineServer::start(serve.listen, &machines)
        .await
        .map_err(|source| OpcUaServeError::Serve {
            listen: serve.listen,
            source,
        })?;
    let url = server.endpoint_url().to_owned();
    serving(&url, machines.len());
    let server = Arc::new(server);
    let writes_seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let inbox = aifactory_twin::CommandInbox::new();
    {
        let seen = writes_seen.clone();
        let inbox = inbox.clone();
        tokio::spawn(async move {
            while let Some(w) = writes.recv().await {
                let number = seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                inbox.send(aifactory_plant::Command {
                    id: format!("opcua-write-{number}"),
                    decision: None,
                    expires: None,
                    action: aifactory_plant::Action::SetPoint {
                        machine: w.machine,
                        param: w.setpoint,
                        value: w.value,
                    },
                });
            }
        });
    }
    let spec = &RunSpec {
        commands: Some(inbox),
        ..spec.clone()
    };
    let (start, _) = spec.plant.start();
    let mut observer = ServerObserver {
        server: server.clone(),
        pace: serve.pace.map(|p| {
            let started = p.clock.elapsed();
            (p.speed, p.clock, started)
        }),
        start_ms: start.0,
        updates: 0,
    };
    let twin = {
        let spec = spec.clone();
        tokio::task::spawn_blocking(move || {
            let result = simulate(&spec, &mut observer, &*progress);
            (result, observer.updates)
        })
    };
    let (result, updates) = twin.await.map_err(OpcUaServeError::TwinThread)?;
    let result = result?;
    tokio::time::sleep(Duration::from_secs_f64(serve.hold_s)).await;
    if let Ok(server) = Arc::try_unwrap(server) {
        server.shutdown().await;
    }
    let set_point_writes = writes_seen.load(std::sync::atomic::Ordering::Relaxed);
    Ok((
        result,
        ServeStats {
            updates,
            set_point_writes,
        },
        url,
    ))
}

/// The process parameters of the routing steps a machine can run: its writable set-points.
fn set_points_of(plant: &aifactory_core::Plant, machine: &str) -> Vec<String> {
    let mut names: Vec<String> = plant
        .products
        .iter()
        .flat_map(|p| p.routing.iter())
        .filter(|step| step.times.contains_key(machine))
        .flat_map(|step| step.params.iter().map(|p| p.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}
