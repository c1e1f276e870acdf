//! Recording a simulation into the store while it runs: the twin (synchronous, on a blocking
//! thread) hands batches through a bounded channel to an async writer, so memory stays flat
//! however long the run and the twin never waits on SQL more than one batch.

use crate::ingest::IngestTask;
use crate::publish::edge_publisher;
use crate::run::{RunSpec, simulate};
use aifactory_connect::mqtt::BrokerAddress;
use aifactory_core::{PlantEvent, TelemetryReading};
use aifactory_store::{RunInfo, SqliteStore};
use aifactory_twin::{Observer, SimResult};
use anyhow::Context;
use indicatif::ProgressBar;
use std::path::PathBuf;
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub(crate) struct StoreTarget {
    pub(crate) path: PathBuf,
    pub(crate) batch_rows: usize,
    /// Send the twin's telemetry the way a plant's arrives — Sparkplug B through this broker,
    /// taken in by ingest into the same store — instead of writing it directly.
    pub(crate) via_mqtt: Option<BrokerAddress>,
}

/// What a recorded run wrote.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    pub(crate) run_id: i64,
    pub(crate) events: u64,
    /// Readings written directly (none when telemetry went through MQTT).
    pub(crate) telemetry: u64,
    pub(crate) via_mqtt: Option<ViaMqtt>,
}

/// What went through the broker and ingest.
#[derive(Debug, Clone)]
pub(crate) struct ViaMqtt {
    pub(crate) broker: String,
    pub(crate) published: u64,
    pub(crate) points: u64,
    pub(crate) quarantined: u64,
}

/// Hands the twin's output to two observers.
struct Both<'a> {
    first: &'a mut dyn Observer,
    second: &'a mut dyn Observer,
}

impl Observer for Both<'_> {
    fn wants_events(&self) -> bool {
        self.first.wants_events() || self.second.wants_events()
    }
    fn event(&mut self, event: PlantEvent) {
        if self.second.wants_events() {
            self.second.event(event.clone());
        }
        if self.first.wants_events() {
            self.first.event(event);
        }
    }
    fn wants_telemetry(&self) -> bool {
        self.first.wants_telemetry() || self.second.wants_telemetry()
    }
    fn telemetry(&mut self, readings: [TelemetryReading; 3]) {
        if self.second.wants_telemetry() {
            self.second.telemetry(readings.clone());
        }
        if self.first.wants_telemetry() {
            self.first.telemetry(readings);
        }
    }
}

#[derive(Debug)]
enum Batch {
    Events(Vec<PlantEvent>),
    Telemetry(Vec<TelemetryReading>),
    Decisions(Vec<aifactory_core::Decision>),
}

struct Recorder {
    tx: mpsc::Sender<Batch>,
    events: Vec<PlantEvent>,
    telemetry: Vec<TelemetryReading>,
    batch_rows: usize,
    keep_telemetry: bool,
    /// The skills' decisions, sent ahead of the events that carry them out.
    decisions: Option<aifactory_core::DecisionLog>,
    /// Set when the writer has gone away (it failed); its error is reported, not this one.
    closed: bool,
}

impl Recorder {
    fn send(&mut self, batch: Batch) {
        if !self.closed && self.tx.blocking_send(batch).is_err() {
            self.closed = true;
        }
    }

    /// Sends the decisions logged since the last call. Called before anything the twin
    /// reports, so a decision reaches the ledger's queue before the events of its execution.
    fn send_decisions(&mut self) {
        if let Some(log) = &self.decisions
            && !log.is_empty()
        {
            // Only decisions reach a recorded run's store: `sim` refuses the closed loop
            // (tier 3), whose outcomes and model updates the store has no table for yet.
            let decisions = log.drain_decisions();
            self.send(Batch::Decisions(decisions));
        }
    }

    fn flush(&mut self) {
        self.send_decisions();
        if !self.events.is_empty() {
            let events = std::mem::take(&mut self.events);
            self.send(Batch::Events(events));
        }
        if !self.telemetry.is_empty() {
            let telemetry = std::mem::take(&mut self.telemetry);
            self.send(Batch::Telemetry(telemetry));
        }
    }
}

impl Observer for Recorder {
    fn wants_events(&self) -> bool {
        !self.closed
    }
    fn event(&mut self, event: PlantEvent) {
        self.send_decisions();
        self.events.push(event);
        if self.events.len() >= self.batch_rows {
            let events = std::mem::take(&mut self.events);
            self.send(Batch::Events(events));
        }
    }
    fn wants_telemetry(&self) -> bool {
        self.keep_telemetry && !self.closed
    }
    fn telemetry(&mut self, readings: [TelemetryReading; 3]) {
        self.telemetry.extend(readings);
        if self.telemetry.len() >= self.batch_rows {
            let telemetry = std::mem::take(&mut self.telemetry);
            self.send(Batch::Telemetry(telemetry));
        }
    }
}

/// Simulates `spec`, writing master data, events, telemetry and KPIs to the SQLite file.
pub(crate) fn simulate_and_record(
    spec: &RunSpec,
    target: &StoreTarget,
    bar: &ProgressBar,
) -> anyhow::Result<(SimResult, Written)> {
    let runtime = crate::runtime()?;
    runtime.block_on(async {
        let store = SqliteStore::open(&target.path)
            .await
            .with_context(|| format!("opening database {}", target.path.display()))?;
        store
            .save_plant(&spec.plant)
            .await
            .context("saving plant master data")?;
        let (start, _) = spec.plant.start();
        let run_id = store
            .start_run(&RunInfo {
                plant_id: spec.plant.plant.id.clone(),
                seed: spec.seed,
                policy: aifactory_twin::Policy::name(&spec.policy),
                sim_days: spec.days,
                started_at: start,
            })
            .await
            .context("registering the run")?;

        let (tx, mut rx) = mpsc::channel::<Batch>(4);
        let writer_store = store.clone();
        let writer = tokio::spawn(async move {
            let (mut events, mut telemetry) = (0u64, 0u64);
            while let Some(batch) = rx.recv().await {
                match batch {
                    Batch::Events(rows) => {
                        writer_store
                            .append_events(Some(run_id), &rows)
                            .await
                            .context("writing events")?;
                        events += rows.len() as u64;
                    }
                    Batch::Telemetry(rows) => {
                        writer_store
                            .append_telemetry(Some(run_id), &rows)
                            .await
                            .context("writing telemetry")?;
                        telemetry += rows.len() as u64;
                    }
                    Batch::Decisions(rows) => {
                        for decision in &rows {
                            writer_store
                                .record_decision(decision)
                                .await
                                .with_context(|| format!("writing decision {}", decision.id))?;
                        }
                    }
                }
            }
            anyhow::Ok((events, telemetry))
        });

        // The live path: ingest (into the same file) subscribes before the twin says anything.
        let live = match &target.via_mqtt {
            None => None,
            Some(broker) => {
                let ingest_store = SqliteStore::open(&target.path)
                    .await
                    .with_context(|| format!("opening database {}", target.path.display()))?;
                let ingest = IngestTask::start(
                    broker,
                    ingest_store.into(),
                    format!("aifactory-record-{}-{}", spec.plant.plant.id, run_id.0),
                    vec![format!("spBv1.0/{}/#", spec.plant.plant.id)],
                    false,
                )
                .await?;
                let client_id = format!("aifactory-twin-{}-{}", spec.plant.plant.id, run_id.0);
                let (edge, publisher) = edge_publisher(spec, broker, &client_id, None);
                Some((broker.clone(), ingest, edge, publisher))
            }
        };
        let (live, mut edge) = match live {
            Some((broker, ingest, edge, publisher)) => {
                (Some((broker, ingest, publisher)), Some(edge))
            }
            None => (None, None),
        };

        let spec_owned = spec.clone();
        let bar_owned = bar.clone();
        let batch_rows = target.batch_rows;
        let keep_telemetry = edge.is_none();
        let result = tokio::task::spawn_blocking(move || {
            let mut recorder = Recorder {
                tx,
                events: Vec::new(),
                telemetry: Vec::new(),
                batch_rows,
                keep_telemetry,
                decisions: spec_owned.decisions.clone(),
                closed: false,
            };
            let result = match &mut edge {
                Some(edge) => simulate(
                    &spec_owned,
                    &mut Both {
                        first: &mut recorder,
                        second: edge,
                    },
                    &bar_owned,
                ),
                None => simulate(&spec_owned, &mut recorder, &bar_owned),
            };
            recorder.flush();
            // Closes the publisher's channel: it sends what is left and finishes.
            drop(edge);
            result
        })
        .await
        .context("the simulation thread stopped")??;
        let (events, telemetry) = writer.await.context("the database writer stopped")??;
        let via_mqtt = match live {
            None => None,
            Some((broker, mut ingest, publisher)) => {
                let sent = publisher
                    .await
                    .context("the publisher task failed")?
                    .with_context(|| {
                        format!("publishing to mqtt://{}:{}", broker.host, broker.port)
                    })?;
                let complete = ingest
                    .wait_for(sent.messages, std::time::Duration::from_secs(30))
                    .await;
                let settled = *ingest.settled().borrow();
                let points = ingest.points();
                let (stats, _) = ingest.stop().await?;
                if !complete {
                    anyhow::bail!(
                        "ingest stalled: {settled} of {} published messages were committed",
                        sent.messages
                    );
                }
                Some(ViaMqtt {
                    broker: format!("mqtt://{}:{}", broker.host, broker.port),
                    published: sent.messages,
                    points,
                    quarantined: stats.quarantined,
                })
            }
        };
        store
            .save_kpis(run_id, &result.kpis)
            .await
            .context("saving KPIs")?;
        Ok((
            result,
            Written {
                run_id: run_id.0,
                events,
                telemetry,
                via_mqtt,
            },
        ))
    })
}
