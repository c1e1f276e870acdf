//! Recording a simulation into the store while it runs: the twin (synchronous, on a blocking
//! thread) hands batches through a bounded channel to an async writer, so memory stays flat
//! however long the run and the twin never waits on SQL more than one batch.

use crate::run::{RunSpec, simulate};
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
}

/// What a recorded run wrote.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Written {
    pub(crate) run_id: i64,
    pub(crate) events: u64,
    pub(crate) telemetry: u64,
}

#[derive(Debug)]
enum Batch {
    Events(Vec<PlantEvent>),
    Telemetry(Vec<TelemetryReading>),
}

struct Recorder {
    tx: mpsc::Sender<Batch>,
    events: Vec<PlantEvent>,
    telemetry: Vec<TelemetryReading>,
    batch_rows: usize,
    /// Set when the writer has gone away (it failed); its error is reported, not this one.
    closed: bool,
}

impl Recorder {
    fn send(&mut self, batch: Batch) {
        if !self.closed && self.tx.blocking_send(batch).is_err() {
            self.closed = true;
        }
    }

    fn flush(&mut self) {
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
        self.events.push(event);
        if self.events.len() >= self.batch_rows {
            let events = std::mem::take(&mut self.events);
            self.send(Batch::Events(events));
        }
    }
    fn wants_telemetry(&self) -> bool {
        !self.closed
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
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
                }
            }
            anyhow::Ok((events, telemetry))
        });

        let spec_owned = spec.clone();
        let bar_owned = bar.clone();
        let batch_rows = target.batch_rows;
        let result = tokio::task::spawn_blocking(move || {
            let mut recorder = Recorder {
                tx,
                events: Vec::new(),
                telemetry: Vec::new(),
                batch_rows,
                closed: false,
            };
            let result = simulate(&spec_owned, &mut recorder, &bar_owned);
            recorder.flush();
            result
        })
        .await
        .context("the simulation thread stopped")?;
        let (events, telemetry) = writer.await.context("the database writer stopped")??;
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
            },
        ))
    })
}
