//! The live twin behind `aifactory serve`: a plant under the coordinator (tier 3, the closed
//! loop, unless told otherwise), run at a multiple of real time on a thread of its own. It
//! writes to the store what a real plant's data path would — events, telemetry through the
//! ingest path, the skills' decisions and the loop's outcomes and model updates — and publishes
//! a live view (machine states, KPIs so far, the plan, control charts, forecasts, anomalies)
//! for the server. Commands come back through [`TwinCommands`], which tracks each one's
//! acknowledgements and writes them to the store, the settling one as its decision's outcome.

use crate::clock::Clock;
use crate::ingest::{IngestError, IngestTask};
use crate::publish::{EdgeObserver, edge_publisher};
use crate::run::{RunSpec, records_on_file, twin_trials};
use aifactory_connect::mqtt::{BrokerAddress, MqttError, PublishStats};
use aifactory_coordinator::CoordinatorError;
use aifactory_core::{EventKind, Plant, PlantEvent, TelemetryReading, Timestamp};
use aifactory_plant::command::{AckEffect, AckError};
use aifactory_plant::projection::{Arrival, Projection, ProjectionConfig};
use aifactory_plant::{AckTracker, Command, CommandSink, SendError};
use aifactory_server::live::{
    AnomalyMark, DayForecast, DayQuantity, EventNow, Limits, OrderCounts, OrderNow, Plan, PlanJob,
    PlantId, PlantNow, ProductForecast, ProductInfo, Publisher, Snapshot, SpcChart, SpcPoint,
};
use aifactory_skills::anomaly::{AnomalyConfig, AnomalyDetector, StreamingDetector};
use aifactory_skills::spc::{Dispersion, IndividualsChart, RuleSet, XbarChart};
use aifactory_store::ingest::{IngestBatch, IngestMessage, Sample};
use aifactory_store::{RunInfo, Store, StoreError};
use aifactory_twin::{CommandInbox, Observer, PlantModel, PlantTime, Simulation};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// What to run live.
#[derive(Debug, Clone)]
pub struct LiveSpec {
    pub plant: Plant,
    pub seed: u64,
    /// The coordinator's tier: 3 (the default of `serve`) runs the shared plan as a closed
    /// loop, its outcomes and model updates written to the ledger with its decisions.
    pub tier: u8,
    /// Twin seconds per wall-clock second.
    pub speed: f64,
    /// Simulated as fast as possible before going live, so there is a plant to look at.
    pub warm_up_days: f64,
    /// Send the telemetry the way a plant's arrives — Sparkplug B through this broker, taken in
    /// by ingest — instead of writing it to the store directly.
    pub mqtt: Option<BrokerAddress>,
    /// The wall clock the twin is paced against (and ingest's receive times).
    pub clock: Clock,
}

/// Why the live twin did not start, or how it stopped.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("saving the plant's master data")]
    SavePlant(#[source] StoreError),
    #[error("setting up the tier-{tier} coordinator")]
    Coordinator {
        tier: u8,
        #[source]
        source: CoordinatorError,
    },
    #[error("registering the live run")]
    RegisterRun(#[source] StoreError),
    #[error("subscribing at mqtt://{host}:{port}")]
    Subscribe {
        host: String,
        port: u16,
        #[source]
        source: IngestError,
    },
    #[error("writing {records} ledger records")]
    WriteLedger {
        records: usize,
        #[source]
        source: StoreError,
    },
    #[error("writing events")]
    WriteEvents(#[source] StoreError),
    #[error("writing telemetry")]
    WriteTelemetry(#[source] StoreError),
    /// The writer went away while the twin ran; its own error says why.
    #[error("the store writer stopped")]
    WriterGone,
    #[error("the live twin stopped")]
    Twin(#[source] tokio::task::JoinError),
    #[error("the live writer stopped")]
    Writer(#[source] tokio::task::JoinError),
    #[error("the publisher task failed")]
    PublisherTask(#[source] tokio::task::JoinError),
    #[error("publishing the twin's telemetry")]
    Publish(#[source] MqttError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// The path through a broker: ingest subscribed, the twin's edge node publishing.
#[derive(Debug)]
struct ViaBroker {
    ingest: IngestTask,
    publisher: tokio::task::JoinHandle<Result<PublishStats, MqttError>>,
}

/// The node name of the twin's telemetry series in the store.
const NODE: &str = "twin";
/// Rows held before a batch goes to the writer.
const BATCH_ROWS: usize = 5_000;
/// Readings per control-chart subgroup, and subgroups fitted as phase I.
const SUBGROUP: usize = 5;
const PHASE_ONE: usize = 25;
/// Points kept per control chart, anomalies and recent events kept for the view.
const SPC_POINTS: usize = 120;
const ANOMALIES: usize = 300;
const RECENT_EVENTS: usize = 200;
/// Days of demand history a forecast is fitted on and shown, and the horizon.
const FORECAST_FIT_DAYS: usize = 84;
const FORECAST_SHOWN_DAYS: usize = 28;
const FORECAST_HORIZON: usize = 14;
const FORECAST_LEVEL: f64 = 0.9;

/// A running live twin; [`LiveTwin::stop`] ends it and returns how far it got.
#[derive(Debug)]
pub struct LiveTwin {
    stop: Arc<AtomicBool>,
    /// Set once the warm-up is done and the twin runs paced.
    warm: Arc<AtomicBool>,
    thread: tokio::task::JoinHandle<Result<PlantTime, LiveError>>,
    writer: tokio::task::JoinHandle<Result<(), LiveError>>,
    broker: Option<ViaBroker>,
}

impl LiveTwin {
    /// Waits until the warm-up is done (or the twin stopped early).
    pub async fn warmed_up(&self) {
        while !self.warm.load(Ordering::Relaxed) && !self.thread.is_finished() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the twin, waits for its writer (and, through a broker, for ingest to settle what
    /// was published) and returns the twin time it reached.
    pub async fn stop(self) -> Result<PlantTime, LiveError> {
        self.stop.store(true, Ordering::Relaxed);
        // The twin thread drops its edge node on the way out, which ends the publisher.
        let reached = self.thread.await.map_err(LiveError::Twin)??;
        self.writer.await.map_err(LiveError::Writer)??;
        if let Some(via) = self.broker {
            let sent = via
                .publisher
                .await
                .map_err(LiveError::PublisherTask)?
                .map_err(LiveError::Publish)?;
            let mut ingest = via.ingest;
            ingest
                .wait_for(sent.messages, Duration::from_secs(10))
                .await;
            ingest.stop().await?;
        }
        Ok(reached)
    }
}

/// The twin as a command sink, as a connector to a real plant would be: each command is tracked
/// from the moment it leaves until its acknowledgements settle it. Clones share one tracker.
#[derive(Debug, Clone)]
pub struct TwinCommands {
    inbox: CommandInbox,
    tracker: Arc<Mutex<AckTracker>>,
    /// The plant's time (ms since the epoch) as the runner last advanced it: when a command
    /// is sent.
    now_ms: Arc<AtomicI64>,
}

impl TwinCommands {
    pub fn new(inbox: CommandInbox) -> TwinCommands {
        TwinCommands {
            inbox,
            tracker: Arc::default(),
            now_ms: Arc::default(),
        }
    }

    /// The twin's inbox, for host commands that arrive by another path (a Sparkplug DCMD).
    pub fn inbox(&self) -> &CommandInbox {
        &self.inbox
    }

    fn tracker(&self) -> std::sync::MutexGuard<'_, AckTracker> {
        self.tracker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies the twin's acknowledgements so far and expires what is overdue at `now`; answers
    /// each acknowledgement as a plant event for the store (the settling one marked as its
    /// decision's outcome).
    fn settle(&self, now: Timestamp) -> Vec<PlantEvent> {
        self.now_ms.store(now.0, Ordering::Relaxed);
        let acks = self.inbox.take_acks();
        let mut tracker = self.tracker();
        let mut events = Vec::with_capacity(acks.len());
        for ack in acks {
            let known = tracker.command(&ack.command).cloned();
            let event = match tracker.ack(ack.clone()) {
                Ok(AckEffect::Settled(settled)) => {
                    crate::view::ack_event(&settled.ack, Some(&settled.command), true, None)
                }
                Ok(AckEffect::Progressed(_) | AckEffect::Stale) => {
                    crate::view::ack_event(&ack, known.as_ref(), false, None)
                }
                // A host application's own command (a DCMD), sent past the tracker.
                Err(AckError::UnknownCommand(_)) => crate::view::ack_event(&ack, None, false, None),
                Err(e) => crate::view::ack_event(&ack, known.as_ref(), false, Some(e.to_string())),
            };
            events.push(event);
        }
        for settled in tracker.expire(now) {
            events.push(crate::view::ack_event(
                &settled.ack,
                Some(&settled.command),
                true,
                None,
            ));
        }
        events
    }
}

impl CommandSink for TwinCommands {
    fn send(&self, command: Command) -> Result<(), SendError> {
        self.tracker()
            .sent(&command, Timestamp(self.now_ms.load(Ordering::Relaxed)))?;
        self.inbox.send(command);
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Batch {
    records: Vec<aifactory_core::LedgerRecord>,
    events: Vec<PlantEvent>,
    telemetry: IngestBatch,
    /// Twin time of the batch's end, for the ingest path's receive time.
    at_ms: i64,
}

/// Run rules assume independent points; a machine's sensor readings are autocorrelated (heat,
/// wear), so their charts flag only points beyond the limits (Nelson 1).
fn sensor_rules() -> RuleSet {
    RuleSet::only(&[aifactory_skills::spc::Rule::Nelson1])
}

/// One signal's control chart: phase-I subgroups until fitted, then the charts. Sensor
/// signals drift between subgroups (wear, heat), so the means are charted as individuals with
/// moving-range limits (Wheeler's three-way chart) and the ranges against the within-subgroup
/// R limits: limits from the within-subgroup spread alone would flag nearly every mean.
#[derive(Debug, Default)]
struct ChartState {
    open: Vec<f64>,
    phase_one: Vec<Vec<f64>>,
    means: Option<IndividualsChart>,
    ranges: Option<XbarChart>,
    points: VecDeque<SpcPoint>,
}

/// Sees everything the twin reports and keeps what the view and the store need.
struct Watcher {
    site: String,
    pending: Batch,
    tx: mpsc::Sender<Batch>,
    closed: bool,
    recent: VecDeque<EventNow>,
    detectors: HashMap<(String, String), AnomalyDetector>,
    /// The latest score per machine (the highest of its signals at its last reading).
    scores: HashMap<String, f64>,
    alarms: HashMap<String, bool>,
    anomalies: VecDeque<AnomalyMark>,
    charts: BTreeMap<(String, String), ChartState>,
    /// The twin's Sparkplug edge node, when telemetry goes through a broker.
    edge: Option<EdgeObserver>,
    /// Machines running an operation now, from when its set-up ends: control charts take
    /// readings only while a machine cuts, since idle and set-up readings are other processes.
    cutting_from: HashMap<String, Timestamp>,
    /// Units ordered per product per twin day (day 0 is the run's first).
    ordered: BTreeMap<String, BTreeMap<i64, f64>>,
    start: Timestamp,
    /// The plant's state projected from its events, as a real plant's would be: the machines'
    /// standard state codes come from here, not from the twin's insides.
    projection: Projection,
    /// Events offered to the projection so far (their sequence) and those it refused.
    offered: u64,
    refused: u64,
}

impl Watcher {
    fn send(&mut self) {
        let batch = std::mem::take(&mut self.pending);
        if !self.closed && self.tx.blocking_send(batch).is_err() {
            self.closed = true;
        }
    }

    fn rows(&self) -> usize {
        self.pending.events.len()
            + self
                .pending
                .telemetry
                .messages
                .iter()
                .map(|m| m.samples.len())
                .sum::<usize>()
    }

    fn chart(&mut self, machine: &str, signal: &str, at: Timestamp, value: f64) {
        let state = self
            .charts
            .entry((machine.to_owned(), signal.to_owned()))
            .or_default();
        state.open.push(value);
        if state.open.len() < SUBGROUP {
            return;
        }
        let subgroup = std::mem::take(&mut state.open);
        let mean = subgroup.iter().sum::<f64>() / SUBGROUP as f64;
        let range = subgroup.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            - subgroup.iter().copied().fold(f64::INFINITY, f64::min);
        let violations = match (&mut state.means, &state.ranges) {
            (Some(means), Some(ranges)) => {
                let mut v: Vec<String> = match means.observe(mean) {
                    Ok(point) => point
                        .signals
                        .iter()
                        .filter(|s| matches!(s, aifactory_skills::spc::Signal::Rule(_)))
                        .map(|s| s.as_str().to_owned())
                        .collect(),
                    Err(_) => Vec::new(),
                };
                let r = ranges.dispersion_limits();
                if range > r.upper || range < r.lower {
                    v.push("range_beyond_limits".to_owned());
                }
                v
            }
            _ => {
                state.phase_one.push(subgroup);
                if state.phase_one.len() >= PHASE_ONE {
                    let means: Vec<f64> = state
                        .phase_one
                        .iter()
                        .map(|g| g.iter().sum::<f64>() / g.len() as f64)
                        .collect();
                    state.means = IndividualsChart::fit(&means, sensor_rules()).ok();
                    state.ranges =
                        XbarChart::fit(&state.phase_one, Dispersion::Range, sensor_rules()).ok();
                    if state.means.is_none() || state.ranges.is_none() {
                        // A flat signal: start phase I again with later subgroups.
                        state.means = None;
                        state.ranges = None;
                        state.phase_one.clear();
                    }
                }
                Vec::new()
            }
        };
        state.points.push_back(SpcPoint {
            at,
            mean,
            range,
            violations,
        });
        if state.points.len() > SPC_POINTS {
            state.points.pop_front();
        }
    }

    fn spc(&self) -> Vec<SpcChart> {
        self.charts
            .iter()
            .filter_map(|((machine, signal), s)| {
                let mean = s.means.as_ref()?.limits();
                let ranges = s.ranges.as_ref()?;
                let range = ranges.dispersion_limits();
                Some(SpcChart {
                    machine: machine.clone(),
                    signal: signal.clone(),
                    subgroup_size: ranges.subgroup_size(),
                    mean: Limits {
                        center: mean.centre,
                        ucl: mean.upper,
                        lcl: mean.lower,
                    },
                    range: Limits {
                        center: range.centre,
                        ucl: range.upper,
                        lcl: range.lower,
                    },
                    points: s.points.iter().cloned().collect(),
                })
            })
            .collect()
    }
}

impl Observer for Watcher {
    fn wants_events(&self) -> bool {
        true
    }

    fn event(&mut self, event: PlantEvent) {
        self.offered += 1;
        let arrival = Arrival {
            id: format!("twin-{}", self.offered),
            source: "twin".to_owned(),
            seq: self.offered,
            event: event.clone(),
        };
        if self.projection.offer(arrival).is_err() {
            self.refused += 1;
        }
        if event.kind == EventKind::OrderReceived
            && let (Some(product), Some(quantity)) = (
                event.detail.get("product").and_then(|p| p.as_str()),
                event
                    .detail
                    .get("quantity")
                    .and_then(serde_json::Value::as_f64),
            )
        {
            let day = (event.at.0 - self.start.0).div_euclid(86_400_000);
            *self
                .ordered
                .entry(product.to_owned())
                .or_default()
                .entry(day)
                .or_default() += quantity;
        }
        if let Some(machine) = &event.machine {
            match event.kind {
                EventKind::OperationStarted => {
                    let setup_s = event
                        .detail
                        .get("setup_s")
                        .and_then(serde_json::Value::as_f64)
                        .unwrap_or(0.0);
                    self.cutting_from
                        .insert(machine.clone(), event.at.plus_seconds(setup_s));
                }
                EventKind::OperationCompleted
                | EventKind::MachineFailed
                | EventKind::MaintenanceStarted => {
                    self.cutting_from.remove(machine);
                    // A subgroup holds readings of one operation only.
                    for ((m, _), chart) in self.charts.iter_mut() {
                        if m == machine {
                            chart.open.clear();
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(edge) = self.edge.as_mut().filter(|e| e.wants_events()) {
            edge.event(event.clone());
        }
        self.recent.push_front(EventNow::from(event.clone()));
        self.recent.truncate(RECENT_EVENTS);
        self.pending.events.push(event);
        if self.rows() >= BATCH_ROWS {
            self.send();
        }
    }

    fn wants_telemetry(&self) -> bool {
        true
    }

    fn telemetry(&mut self, readings: [TelemetryReading; 3]) {
        let mut samples = Vec::with_capacity(3);
        let mut highest: Option<f64> = None;
        for r in &readings {
            let detector = self
                .detectors
                .entry((r.machine.clone(), r.signal.clone()))
                .or_insert_with(|| AnomalyDetector::new(AnomalyConfig::default()));
            let score = detector.update(r.at, r.value);
            highest = Some(highest.map_or(score, |h: f64| h.max(score)));
            if score >= AnomalyConfig::default().alarm_level {
                self.anomalies.push_front(AnomalyMark {
                    at: r.at,
                    machine: r.machine.clone(),
                    signal: r.signal.clone(),
                    score,
                });
                self.anomalies.truncate(ANOMALIES);
            }
            if self
                .cutting_from
                .get(&r.machine)
                .is_some_and(|t| r.at >= *t)
            {
                self.chart(&r.machine, &r.signal, r.at, r.value);
            }
            samples.push(Sample {
                series: r.series(&self.site, NODE),
                at_ms: r.at.0,
                value: r.value,
            });
        }
        if let (Some(score), Some(first)) = (highest, readings.first()) {
            self.scores.insert(first.machine.clone(), score);
            self.alarms.insert(
                first.machine.clone(),
                score >= AnomalyConfig::default().alarm_level,
            );
        }
        match self.edge.as_mut() {
            // Through the broker: ingest stores what the edge node publishes.
            Some(edge) => edge.telemetry(readings),
            None => self.pending.telemetry.messages.push(IngestMessage {
                key: None,
                samples,
                others: Vec::new(),
            }),
        }
        if self.rows() >= BATCH_ROWS {
            self.send();
        }
    }
}

/// Everything the twin thread owns.
struct Runner {
    sim: Simulation,
    /// Commands sent to the twin and their acknowledgements.
    commands: TwinCommands,
    model: Arc<PlantModel>,
    watcher: Watcher,
    log: aifactory_core::DecisionLog,
    board: Option<aifactory_skills::board::PlanBoard>,
    /// The coordinator's observer: from tier 1 the maintenance skill's condition watch, at tier
    /// 3 the loop that measures outcomes and updates models from the twin's events.
    observer: Option<Box<dyn aifactory_twin::Observer + Send>>,
    /// The coordinator's configured tier (the view labels it as configured, not earned).
    tier: u8,
    publisher: Publisher,
    speed: f64,
    /// Demand before day 0 per product, oldest first (the ERP's order book).
    order_book: BTreeMap<String, Vec<f64>>,
    forecasts: Vec<ProductForecast>,
    forecast_day: Option<i64>,
    /// The products and their routings, as the API and the agent see them.
    products: Vec<ProductInfo>,
    /// A later run on the same store suffixes its decision ids with its run (`@R2`): the skills
    /// number decisions from 1 in every run, and the ledger keeps each id once.
    scope: Option<String>,
    /// Per machine: survival over running age, from the records of its machine type.
    survival: Vec<Option<aifactory_skills::maintenance::Survival>>,
    /// Per machine: renewals seen and its running hours at the last one.
    renewed: Vec<(u64, f64)>,
    /// Every customer order of the run by id, as last projected.
    orders: BTreeMap<String, OrderNow>,
}

/// The horizon of the health figure, in running hours.
const HEALTH_HORIZON_H: f64 = 24.0;

impl Runner {
    fn advance(&mut self, until: PlantTime) {
        match &mut self.observer {
            Some(observer) => self.sim.run_until(
                until,
                &mut crate::run::Both {
                    first: &mut self.watcher,
                    second: observer.as_mut(),
                },
            ),
            None => self.sim.run_until(until, &mut self.watcher),
        }
        let now = Timestamp(self.watcher.start.0 + self.sim.now().0 as i64);
        for event in self.commands.settle(now) {
            self.watcher
                .recent
                .push_front(EventNow::from(event.clone()));
            self.watcher.pending.events.push(event);
        }
        self.watcher.recent.truncate(RECENT_EVENTS);
        // The skills' ledger records (decisions and, in the closed loop, outcomes and model
        // updates) go with the batch that holds the events they caused.
        let scope = self.scope.clone();
        self.watcher
            .pending
            .records
            .extend(self.log.drain().into_iter().map(|r| match &scope {
                Some(scope) => crate::scope::scoped_record(r, scope),
                None => r,
            }));
        self.watcher.pending.at_ms = self.watcher.start.0 + self.sim.now().0 as i64;
        self.watcher.send();
    }

    fn refresh_forecasts(&mut self) {
        let today = (self.sim.now().0 / 86_400_000) as i64;
        if self.forecast_day == Some(today) || today < 1 {
            return;
        }
        self.forecast_day = Some(today);
        let forecaster = aifactory_skills::forecast::DemandForecaster::default();
        let day_label =
            |d: i64| Timestamp(self.watcher.start.0 + d * 86_400_000).to_rfc3339()[..10].to_owned();
        self.forecasts = self
            .order_book
            .iter()
            .filter_map(|(product, before)| {
                // Whole days only: the book before day 0, then each finished day of the run.
                let live = self.watcher.ordered.get(product);
                let mut history: Vec<(i64, f64)> = before
                    .iter()
                    .enumerate()
                    .map(|(i, q)| (i as i64 - before.len() as i64, *q))
                    .collect();
                history.extend(
                    (0..today).map(|d| (d, live.and_then(|l| l.get(&d)).copied().unwrap_or(0.0))),
                );
                let fit_from = history.len().saturating_sub(FORECAST_FIT_DAYS);
                let values: Vec<f64> = history[fit_from..].iter().map(|(_, q)| *q).collect();
                let fitted = forecaster.fit(&values).ok()?;
                let f = fitted.forecast(FORECAST_HORIZON, FORECAST_LEVEL).ok()?;
                let shown = history.len().saturating_sub(FORECAST_SHOWN_DAYS);
                Some(ProductForecast {
                    product: product.clone(),
                    level: FORECAST_LEVEL,
                    history: history[shown..]
                        .iter()
                        .map(|(d, q)| DayQuantity {
                            day: day_label(*d),
                            quantity: *q,
                        })
                        .collect(),
                    forecast: (0..FORECAST_HORIZON)
                        .map(|i| DayForecast {
                            day: day_label(today + i as i64),
                            mean: f.mean[i],
                            lo: f.lower[i],
                            hi: f.upper[i],
                        })
                        .collect(),
                })
            })
            .collect();
    }

    fn publish(&mut self, running: bool) {
        self.refresh_forecasts();
        // Everything below comes from the plant's events (the projection) and its master data,
        // as it would for a real plant: the twin is asked only what time it is.
        let sim_time = self.sim.now();
        let start = self.watcher.start;
        let now = Timestamp(start.0 + sim_time.0 as i64);
        self.watcher.projection.advance_to(sim_time);
        let projection = &self.watcher.projection;
        let elapsed_h = (sim_time.0 as f64 / 3_600_000.0).max(1e-9);
        let board = self.board.as_ref().map(|b| b.lock());
        let next_service = |machine: usize| {
            board
                .as_ref()
                .and_then(|b| b.windows.get(&machine))
                .filter(|w| w.started_at.is_none())
                .and_then(|w| w.planned_start)
                .map(|t| Timestamp(start.0 + t.0 as i64))
        };
        let mut machines = crate::view::machines_now(projection, elapsed_h);
        for (i, m) in machines.iter_mut().enumerate() {
            let run_h = projection
                .totals(i)
                .map_or(0.0, |t| t.run_ms as f64 / 3_600_000.0);
            let renewals = m.failures + m.maintenances;
            if let Some(r) = self.renewed.get_mut(i)
                && r.0 != renewals
            {
                *r = (renewals, run_h);
            }
            let age_h = (run_h - self.renewed.get(i).map_or(0.0, |r| r.1)).max(0.0);
            let survival = self.survival.get(i).and_then(Option::as_ref);
            m.anomaly_score = self.watcher.scores.get(&m.id).copied();
            m.anomaly = self.watcher.alarms.get(&m.id).copied().unwrap_or(false);
            m.age_h = age_h;
            m.health = survival.and_then(|s| s.conditional(age_h, HEALTH_HORIZON_H));
            m.rul_h = survival.and_then(|s| s.median_residual(age_h));
            m.next_service = next_service(i);
        }
        crate::view::update_orders(projection, start, now, &mut self.orders);
        let orders: Vec<OrderNow> = self.orders.values().cloned().collect();
        let kpis = projection.kpis();
        let machine_ids: Vec<String> = self
            .model
            .master()
            .machine_ids()
            .map(str::to_owned)
            .collect();
        let plan = board
            .as_ref()
            .and_then(|b| b.live_plan.as_ref())
            .map(|p| Plan {
                at: Timestamp(start.0 + p.at.0 as i64),
                decision: p
                    .decision
                    .as_deref()
                    .map(|d| crate::scope::scoped_id(self.scope.as_deref(), d)),
                machines: machine_ids.clone(),
                problem: p.problem.clone(),
                schedule: p.schedule.clone(),
                jobs: p
                    .jobs
                    .iter()
                    .map(|j| match *j {
                        aifactory_skills::board::PlanJob::Work { number, first_step } => PlanJob {
                            label: format!("WO-{number:06}"),
                            order: Some(format!("WO-{number:06}")),
                            first_step,
                            kind: "work".into(),
                        },
                        aifactory_skills::board::PlanJob::Service(m) => PlanJob {
                            label: format!(
                                "service {}",
                                machine_ids.get(m).map_or("?", String::as_str)
                            ),
                            order: None,
                            first_step: 0,
                            kind: "service".into(),
                        },
                        aifactory_skills::board::PlanJob::SetUp => PlanJob {
                            label: "set-up".into(),
                            order: None,
                            first_step: 0,
                            kind: "setup".into(),
                        },
                    })
                    .collect(),
            });
        drop(board);
        let plant = &self.model.plant().plant;
        self.publisher.snapshot(Snapshot {
            plant: PlantNow {
                plant: PlantId {
                    id: plant.id.clone(),
                    name: plant.name.clone(),
                },
                tier: self.tier,
                speed: self.speed,
                sim_time: now,
                running,
                machines,
                orders: OrderCounts::of(&orders),
                kpis,
                recent_events: self.watcher.recent.iter().take(50).cloned().collect(),
            },
            orders,
            plan,
            series_site: self.watcher.site.clone(),
            series_node: NODE.to_owned(),
            spc: self.watcher.spc(),
            forecasts: self.forecasts.clone(),
            anomalies: self.watcher.anomalies.iter().cloned().collect(),
            products: self.products.clone(),
        });
    }
}

/// Flow control for a warm-up through a broker: the twin runs ahead only as far as the ingest
/// keeps up. Published at full speed, a day of telemetry overfills the broker's queue for the
/// ingest client on a loaded machine; the broker then drops messages and the host's session
/// never recovers (issue 8's follow-up).
struct WarmUpFlow {
    sent: Arc<std::sync::atomic::AtomicU64>,
    settled: tokio::sync::watch::Receiver<u64>,
    clock: Clock,
}

/// Messages the twin may run ahead of the ingest: well under a broker's default queue per
/// client (Mosquitto: 1,000 in flight or queued).
const WARM_UP_AHEAD: u64 = 400;

impl WarmUpFlow {
    /// Blocks (on the twin's thread) until the ingest has settled all but [`WARM_UP_AHEAD`] of
    /// what was sent; gives up after 30 s without progress, so a stalled broker cannot hang
    /// the start.
    fn wait(&self, stop: &AtomicBool) {
        let mut last = *self.settled.borrow();
        let mut since = self.clock.elapsed();
        loop {
            let settled = *self.settled.borrow();
            if settled + WARM_UP_AHEAD >= self.sent.load(Ordering::Relaxed)
                || stop.load(Ordering::Relaxed)
                || self.clock.elapsed().saturating_sub(since) > Duration::from_secs(30)
            {
                return;
            }
            if settled != last {
                last = settled;
                since = self.clock.elapsed();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Starts the live twin: saves the plant, registers a run, warms up, then runs paced by the
/// wall clock until stopped.
pub async fn start(
    spec: LiveSpec,
    store: Store,
    publisher: Publisher,
    commands: TwinCommands,
) -> Result<LiveTwin, LiveError> {
    let inbox = commands.inbox().clone();
    store
        .save_plant(&spec.plant)
        .await
        .map_err(LiveError::SavePlant)?;
    let model = Arc::new(PlantModel::new(spec.plant.clone()));
    let (start, _) = spec.plant.start();
    let log = aifactory_core::DecisionLog::new();
    let (order_book, records) = records_on_file(&model, spec.seed);
    // Health and remaining life per machine from the records of all machines of its type.
    let survival: Vec<Option<aifactory_skills::maintenance::Survival>> = spec
        .plant
        .machines
        .iter()
        .map(|m| {
            let pooled: Vec<(f64, bool)> = spec
                .plant
                .machines
                .iter()
                .zip(&records)
                .filter(|(other, _)| other.machine_type == m.machine_type)
                .flat_map(|(_, r)| r.iter().copied())
                .collect();
            aifactory_skills::maintenance::Survival::fit(&pooled)
        })
        .collect();
    let machine_count = spec.plant.machines.len();
    let configured = {
        let mut trials = twin_trials(&model, spec.seed);
        let coordinator = |source| LiveError::Coordinator {
            tier: spec.tier,
            source,
        };
        let setup = aifactory_coordinator::Setup {
            master: model.master(),
            tier: aifactory_coordinator::Tier::from_number(spec.tier).map_err(coordinator)?,
            links: aifactory_coordinator::Links::ALL,
            log: Some(&log),
            seed: spec.seed,
            order_book: &order_book,
            maintenance_records: &records,
        };
        aifactory_coordinator::build(&setup, Some(&mut trials)).map_err(coordinator)?
    };
    let inbox_for_edge = inbox.clone();
    let policy = Box::new(aifactory_twin::Commanded::new(
        aifactory_twin::Boxed(configured.policy),
        &model,
        inbox,
    ));
    let run_id = store
        .start_run(&RunInfo {
            plant_id: spec.plant.plant.id.clone(),
            seed: spec.seed,
            policy: format!("live tier {}", spec.tier),
            sim_days: 0.0,
            started_at: start,
        })
        .await
        .map_err(LiveError::RegisterRun)?;

    let (tx, mut rx) = mpsc::channel::<Batch>(8);
    let writer_store = store.clone();
    let announcer = publisher.announcer();
    let writer = tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            if !batch.records.is_empty() {
                writer_store
                    .append_ledger(&batch.records)
                    .await
                    .map_err(|source| LiveError::WriteLedger {
                        records: batch.records.len(),
                        source,
                    })?;
                for record in &batch.records {
                    if let aifactory_core::LedgerRecord::Decision(d) = record {
                        announcer.decision(d.clone());
                    }
                }
            }
            if !batch.events.is_empty() {
                writer_store
                    .append_events(Some(run_id), &batch.events)
                    .await
                    .map_err(LiveError::WriteEvents)?;
            }
            if !batch.telemetry.messages.is_empty() {
                writer_store
                    .commit_ingest(&batch.telemetry, batch.at_ms)
                    .await
                    .map_err(LiveError::WriteTelemetry)?;
            }
        }
        Ok(())
    });

    let mut flow: Option<WarmUpFlow> = None;
    let (edge, broker) = match &spec.mqtt {
        None => (None, None),
        Some(address) => {
            let ingest = IngestTask::start(
                address,
                store.clone(),
                format!(
                    "aifactory-serve-ingest-{}-{}",
                    spec.plant.plant.id, run_id.0
                ),
                vec![format!("spBv1.0/{}/#", spec.plant.plant.id)],
                false,
                spec.clock.clone(),
            )
            .await
            .map_err(|source| LiveError::Subscribe {
                host: address.host.clone(),
                port: address.port,
                source,
            })?;
            let run = RunSpec {
                plant: spec.plant.clone(),
                days: 0.0,
                seed: spec.seed,
                policy: aifactory_twin::BaselinePolicy::default(),
                telemetry_period_s: None,
                // A host application's DCMDs reach the same inbox as the web UI's approvals.
                commands: Some(inbox_for_edge),
                tier: spec.tier,
                decisions: None,
            };
            let client_id = format!("aifactory-serve-twin-{}-{}", spec.plant.plant.id, run_id.0);
            let (edge, publisher) = edge_publisher(&run, address, &client_id, None);
            flow = Some(WarmUpFlow {
                sent: edge.sent(),
                settled: ingest.settled(),
                clock: spec.clock.clone(),
            });
            (Some(edge), Some(ViaBroker { ingest, publisher }))
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stop_thread = Arc::clone(&stop);
    let sim = Simulation::new(Arc::clone(&model), spec.seed, policy, None);
    let mut runner = Runner {
        sim,
        commands,
        model: Arc::clone(&model),
        watcher: Watcher {
            site: spec.plant.plant.id.clone(),
            pending: Batch::default(),
            tx,
            closed: false,
            recent: VecDeque::new(),
            detectors: HashMap::new(),
            scores: HashMap::new(),
            alarms: HashMap::new(),
            anomalies: VecDeque::new(),
            charts: BTreeMap::new(),
            edge,
            cutting_from: HashMap::new(),
            ordered: BTreeMap::new(),
            start,
            projection: Projection::new(
                Arc::new(model.master().clone()),
                ProjectionConfig::default(),
            ),
            offered: 0,
            refused: 0,
        },
        log,
        board: configured.board,
        observer: configured.observer,
        tier: spec.tier,
        publisher,
        speed: spec.speed,
        order_book,
        forecasts: Vec::new(),
        forecast_day: None,
        products: crate::view::product_infos(&spec.plant),
        scope: (run_id.0 > 1).then(|| format!("R{}", run_id.0)),
        survival,
        renewed: vec![(0, 0.0); machine_count],
        orders: BTreeMap::new(),
    };
    let warm_up = PlantTime::from_days(spec.warm_up_days);
    let warm = Arc::new(AtomicBool::new(false));
    let warm_thread = Arc::clone(&warm);
    let clock = spec.clock.clone();
    let thread = tokio::task::spawn_blocking(move || {
        // Warm-up in twin hours, publishing as it goes so the page fills while it runs.
        let mut t = PlantTime(0);
        while t < warm_up && !stop_thread.load(Ordering::Relaxed) {
            t = PlantTime((t.0 + 3_600_000).min(warm_up.0));
            runner.advance(t);
            runner.publish(true);
            if let Some(flow) = &flow {
                flow.wait(&stop_thread);
            }
        }
        warm_thread.store(true, Ordering::Relaxed);
        let live_from = clock.elapsed();
        let mut last_publish = clock.elapsed();
        while !stop_thread.load(Ordering::Relaxed) {
            let wall = clock.elapsed().saturating_sub(live_from).as_secs_f64();
            let target = warm_up.0 + (wall * runner.speed * 1000.0) as u64;
            runner.advance(PlantTime(target));
            if clock.elapsed().saturating_sub(last_publish) >= Duration::from_millis(500) {
                runner.publish(true);
                last_publish = clock.elapsed();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        runner.publish(false);
        if runner.watcher.closed {
            return Err(LiveError::WriterGone);
        }
        Ok(runner.sim.now())
    });
    Ok(LiveTwin {
        stop,
        warm,
        thread,
        writer,
        broker,
    })
}
