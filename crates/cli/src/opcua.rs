//! OPC UA from the command line: `aifactory opcua browse URL` lists a server's address space,
//! and `aifactory ingest --opcua URL` subscribes to every variable it finds and stores the
//! changes.

use crate::ingest::now_ms;
use aifactory_connect::mqtt::{Batch, Received};
use aifactory_connect::opcua::{Change, Client};
use aifactory_store::Store;
use anyhow::Context;
use std::process::ExitCode;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn browse(url: &str, json: bool) -> anyhow::Result<ExitCode> {
    let runtime = crate::runtime()?;
    let nodes = runtime.block_on(async {
        let client = Client::connect(url, CONNECT_TIMEOUT).await?;
        let nodes = client.browse().await;
        client.disconnect().await;
        anyhow::Ok(nodes?)
    })?;
    if json {
        let rows: Vec<serde_json::Value> = nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "node_id": n.node_id,
                    "browse_name": n.browse_name,
                    "class": n.class,
                    "parent": n.parent,
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        for n in &nodes {
            let indent = if n.parent.is_some() { "  " } else { "" };
            println!("{indent}{} ({}) {}", n.browse_name, n.class, n.node_id);
        }
        println!("{} nodes under Objects", nodes.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// What an OPC UA ingest stored.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct OpcUaStats {
    pub(crate) variables: usize,
    pub(crate) changes: u64,
    /// Changes whose number was not finite (NaN, infinity): not telemetry, not stored.
    pub(crate) skipped: u64,
    pub(crate) commits: u64,
}

/// Subscribes to every variable under Objects and commits the changes as points of `site`
/// (in batches, at least every 100 ms) until `stop` resolves.
pub(crate) async fn ingest(
    url: &str,
    site: &str,
    store: &Store,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<OpcUaStats> {
    let client = Client::connect(url, CONNECT_TIMEOUT).await?;
    let nodes = client.browse().await?;
    let variables = Client::variables(&nodes);
    if variables.is_empty() {
        client.disconnect().await;
        anyhow::bail!("{url} has no variables under Objects to subscribe to");
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
                        && let Err(e) = commit(store, site, &mut pending, &mut stats).await
                    {
                        break Err(e);
                    }
                }
                None => break Err(anyhow::anyhow!("the subscription to {url} ended")),
            },
            _ = tick.tick() => {
                if let Err(e) = commit(store, site, &mut pending, &mut stats).await {
                    break Err(e);
                }
            }
        }
    };
    let flushed = commit(store, site, &mut pending, &mut stats).await;
    client.disconnect().await;
    result.and(flushed).map(|()| stats)
}

async fn commit(
    store: &Store,
    site: &str,
    pending: &mut Vec<Change>,
    stats: &mut OpcUaStats,
) -> anyhow::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let before = pending.len() as u64;
    let points = pending
        .drain(..)
        .map(|c| c.to_point(site))
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
        .commit_ingest(&crate::ingest::to_store(batch), now_ms())
        .await
        .context("storing OPC UA changes")?;
    stats.changes += n;
    stats.commits += 1;
    Ok(())
}

/// The signals the twin's machines report, served as Double variables.
const TWIN_SIGNALS: [&str; 3] = ["vibration_mm_s", "temperature_c", "current_a"];

/// How the twin serves its machines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Serve {
    pub(crate) listen: std::net::SocketAddr,
    /// Simulated seconds per wall-clock second; `None` runs as fast as the twin can.
    pub(crate) pace: Option<f64>,
    /// Seconds to keep serving after the run, so clients can read the final state.
    pub(crate) hold_s: f64,
}

/// What the server did.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub(crate) struct ServeStats {
    pub(crate) updates: u64,
    pub(crate) set_point_writes: u64,
}

/// Updates the server from the twin's thread: readings as variables, events as the machine's
/// `state`, at simulated time, paced against the wall clock when asked.
struct ServerObserver {
    server: std::sync::Arc<aifactory_connect::opcua::MachineServer>,
    pace: Option<f64>,
    started: std::time::Instant,
    start_ms: i64,
    updates: u64,
}

impl ServerObserver {
    fn wait_for(&self, at_ms: i64) {
        if let Some(pace) = self.pace {
            let due =
                Duration::from_secs_f64(((at_ms - self.start_ms).max(0) as f64 / 1000.0) / pace);
            if let Some(wait) = due.checked_sub(self.started.elapsed()) {
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

/// Simulates `spec` while serving its machines over OPC UA.
pub(crate) fn simulate_and_serve(
    spec: &crate::run::RunSpec,
    serve: Serve,
    quiet: bool,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<(aifactory_twin::SimResult, ServeStats, String)> {
    use aifactory_connect::opcua::{MachineNodes, MachineServer};
    let runtime = crate::runtime()?;
    runtime.block_on(async {
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
            .with_context(|| format!("serving OPC UA on {}", serve.listen))?;
        let url = server.endpoint_url().to_owned();
        if !quiet {
            eprintln!("Serving {} machines over OPC UA at {url}", machines.len());
        }
        let server = std::sync::Arc::new(server);
        let writes_seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let inbox = aifactory_twin::CommandInbox::new();
        {
            let seen = writes_seen.clone();
            let inbox = inbox.clone();
            tokio::spawn(async move {
                while let Some(w) = writes.recv().await {
                    seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    inbox.send(aifactory_twin::Command::SetPoint {
                        machine: w.machine,
                        param: w.setpoint,
                        value: w.value,
                    });
                }
            });
        }
        let spec = &crate::run::RunSpec {
            commands: Some(inbox),
            ..spec.clone()
        };
        let (start, _) = spec.plant.start();
        let mut observer = ServerObserver {
            server: server.clone(),
            pace: serve.pace,
            started: std::time::Instant::now(),
            start_ms: start.0,
            updates: 0,
        };
        let twin = {
            let spec = spec.clone();
            let bar = bar.clone();
            tokio::task::spawn_blocking(move || {
                let result = crate::run::simulate(&spec, &mut observer, &bar);
                (result, observer.updates)
            })
        };
        let (result, updates) = twin.await.context("the twin thread failed")?;
        let result = result?;
        tokio::time::sleep(Duration::from_secs_f64(serve.hold_s)).await;
        if let Ok(server) = std::sync::Arc::try_unwrap(server) {
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
    })
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
