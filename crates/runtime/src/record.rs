//! Recording a simulation into the store while it runs: the twin (synchronous, on a blocking
//! thread) hands batches through a bounded channel to an async writer, so memory stays flat
//! however long the run and the twin never waits on SQL more than one batch.

use crate::clock::Clock;
use crate::ingest::{IngestError, IngestTask};
use crate::publish::edge_publisher;
use crate::run::{Both, Progress, RunError, RunSpec, simulate};
use aifactory_connect::mqtt::{BrokerAddress, MqttError};
use aifactory_core::{PlantEvent, TelemetryReading};
use aifactory_store::{RunInfo, SqliteStore, StoreError};
use aifactory_twin::{Observer, SimResult};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Where and how a run is recorded.
#[derive(Debug, Clone)]
pub struct StoreTarget {
    pub path: PathBuf,
    pub batch_rows: usize,
    /// Send the twin's telemetry the way a plant's arrives — Sparkplug B through this broker,
    /// taken in by ingest into the same store — instead of writing it directly.
    pub via_mqtt: Option<BrokerAddress>,
    /// Ingest's receive times.
    pub clock: Clock,
}

/// What a recorded run wrote.
#[derive(Debug, Clone)]
pub struct Written {
    pub run_id: i64,
    pub events: u64,
    /// Readings written directly (none when telemetry went through MQTT).
    pub telemetry: u64,
    pub via_mqtt: Option<ViaMqtt>,
}

/// What went through the broker and ingest.
#[derive(Debug, Clone)]
pub struct ViaMqtt {
    pub broker: String,
    pub published: u64,
    pub points: u64,
    pub quarantined: u64,
}

/// Why a recorded run failed, and where.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("opening database {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("saving plant master data")]
    SavePlant(#[source] StoreError),
    #[error("registering the run")]
    RegisterRun(#[source] StoreError),
    #[error("writing events")]
    WriteEvents(#[source] StoreError),
    #[error("writing telemetry")]
    WriteTelemetry(#[source] StoreError),
    #[error("writing {records} ledger records, the first {first}")]
    WriteLedger {
        records: usize,
        first: String,
        #[source]
        source: StoreError,
    },
    #[error("saving KPIs")]
    SaveKpis(#[source] StoreError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("the simulation thread stopped")]
    SimulationThread(#[source] tokio::task::JoinError),
    #[error("the database writer stopped")]
    Writer(#[source] tokio::task::JoinError),
    #[error("the publisher task failed")]
    PublisherTask(#[source] tokio::task::JoinError),
    #[error("publishing to mqtt://{host}:{port}")]
    Publish {
        host: String,
        port: u16,
        #[source]
        source: MqttError,
    },
    #[error("ingest stalled: {settled} of {published} published messages were committed")]
    IngestStalled { settled: u64, published: u64 },
}

#[derive(Debug)]
enum Batch {
    Events(Vec<PlantEvent>),
    Telemetry(Vec<TelemetryReading>),
    /// Decisions, outcomes and model updates, in the order the skills logged them.
    Ledger(Vec<aifactory_core::LedgerRecord>),
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

    /// Sends the ledger records (decisions and, in a closed loop, outcomes and model updates)
    /// logged since the last call. Called before anything the twin reports, so a decision
    /// reaches the ledger's queue before the events of its execution.
    fn send_decisions(&mut self) {
        if let Some(log) = &self.decisions
            && !log.is_empty()
        {
            let records = log.drain();
            self.send(Batch::Ledger(records));
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
pub async fn simulate_and_record(
    spec: &RunSpec,
    target: &StoreTarget,
    progress: Arc<dyn Progress>,
) -> Result<(SimResult, Written), RecordError> {
    let open = |source| RecordError::Open {
        path: target.path.clone(),
        source,
    };
    let store = SqliteStore::open(&target.path).await.map_err(open)?;
    store
        .save_plant(&spec.plant)
        .await
        .map_err(RecordError::SavePlant)?;
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
        .map_err(RecordError::RegisterRun)?;

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
                        .map_err(RecordError::WriteEvents)?;
                    events += rows.len() as u64;
                }
                Batch::Telemetry(rows) => {
                    writer_store
                        .append_telemetry(Some(run_id), &rows)
                        .await
                        .map_err(RecordError::WriteTelemetry)?;
                    telemetry += rows.len() as u64;
                }
                Batch::Ledger(rows) => {
                    // One transaction per batch, chained in the order logged.
                    writer_store.append_ledger(&rows).await.map_err(|source| {
                        RecordError::WriteLedger {
                            records: rows.len(),
                            first: rows
                                .first()
                                .map(aifactory_assess::ledger::describe)
                                .unwrap_or_default(),
                            source,
                        }
                    })?;
                }
            }
        }
        Ok::<_, RecordError>((events, telemetry))
    });

    // The live path: ingest (into the same file) subscribes before the twin says anything.
    let live = match &target.via_mqtt {
        None => None,
        Some(broker) => {
            let ingest_store = SqliteStore::open(&target.path).await.map_err(open)?;
            let ingest = IngestTask::start(
                broker,
                ingest_store.into(),
                format!("aifactory-record-{}-{}", spec.plant.plant.id, run_id.0),
                vec![format!("spBv1.0/{}/#", spec.plant.plant.id)],
                false,
                target.clock.clone(),
            )
            .await?;
            let client_id = format!("aifactory-twin-{}-{}", spec.plant.plant.id, run_id.0);
            let (edge, publisher) = edge_publisher(spec, broker, &client_id, None);
            Some((broker.clone(), ingest, edge, publisher))
        }
    };
    let (live, mut edge) = match live {
        Some((broker, ingest, edge, publisher)) => (Some((broker, ingest, publisher)), Some(edge)),
        None => (None, None),
    };

    let spec_owned = spec.clone();
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
                &*progress,
            ),
            None => simulate(&spec_owned, &mut recorder, &*progress),
        };
        recorder.flush();
        // Closes the publisher's channel: it sends what is left and finishes.
        drop(edge);
        result
    })
    .await
    .map_err(RecordError::SimulationThread)??;
    let (events, telemetry) = writer.await.map_err(RecordError::Writer)??;
    let via_mqtt = match live {
        None => None,
        Some((broker, mut ingest, publisher)) => {
            let sent = publisher
                .await
                .map_err(RecordError::PublisherTask)?
                .map_err(|source| RecordError::Publish {
                    host: broker.host.clone(),
                    port: broker.port,
                    source,
                })?;
            let complete = ingest
                .wait_for(sent.messages, std::time::Duration::from_secs(30))
                .await;
            let settled = *ingest.settled().borrow();
            let points = ingest.points();
            let (stats, _) = ingest.stop().await?;
            if !complete {
                return Err(RecordError::IngestStalled {
                    settled,
                    published: sent.messages,
                });
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
        .map_err(RecordError::SaveKpis)?;
    Ok((
        result,
        Written {
            run_id: run_id.0,
            events,
            telemetry,
            via_mqtt,
        },
    ))
}
