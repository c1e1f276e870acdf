//! A plant on the wire (`docs/PLANT-CONTRACT.md`): its events, acknowledgements and telemetry
//! come in over MQTT, the plant-state projection keeps its state, a [`Driver`] asks the policy at
//! each decision point, and the answers go out as commands — each written to the ledger first,
//! then tracked until the plant's acknowledgements (or its expiry) settle it as the decision's
//! outcome. Nothing here knows whether the plant is the twin in another process, an emulator or
//! a factory.
//!
//! What cannot be used is kept: a malformed envelope, an event the projection refuses, an
//! acknowledgement for a command never sent and a bad telemetry message go to the quarantine
//! with the reason, and are counted. A message is acknowledged to the broker only once it is
//! kept, and a restart replays the feed's earlier runs from the store and takes up their open
//! commands, so a kill -9 loses nothing and sends nothing twice.

use crate::clock::Clock;
use crate::ingest::to_store;
use crate::view::{ack_event, machines_now, product_infos, update_orders};
use aifactory_connect::envelope::{self, Heartbeat, Message, ReceivedAck};
use aifactory_connect::mqtt::{Batch, BrokerAddress, Incoming, Link, MqttError, Received};
use aifactory_connect::sparkplug::{self, HostSession, MessageType};
use aifactory_connect::{Quarantine, json};
use aifactory_coordinator::{CoordinatorError, Links, Setup, Tier};
use aifactory_core::{
    Decision, DecisionLog, ExecutedBy, LedgerRecord, LifecycleStage, Outcome, Plant, PlantEvent,
    Timestamp,
};
use aifactory_plant::command::{AckEffect, AckError, Settled};
use aifactory_plant::drive::{Decided, Driver};
use aifactory_plant::projection::{DecisionPoint, Offered, Projection, ProjectionConfig};
use aifactory_plant::{
    AckStatus, AckTracker, Action, Command, CommandSink, MasterData, Observer, PlantTime, Policy,
    SendError,
};
use aifactory_server::live::{
    EventNow, OrderCounts, OrderNow, PlantId, PlantNow, ProductInfo, Publisher, Snapshot,
};
use aifactory_store::ingest::QuarantineRow;
use aifactory_store::{RunId, RunInfo, Store, StoreError};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};

/// The `source` of everything aifactory publishes to a plant.
pub const SOURCE: &str = "aifactory";
/// Sparkplug B metrics (String) that carry the contract's envelopes: events from the plant, its
/// acknowledgements, and commands to it (in a DCMD).
pub const EVENT_METRIC: &str = "aifactory/event";
pub const ACK_METRIC: &str = "aifactory/ack";
pub const COMMAND_METRIC: &str = "aifactory/command";
/// How long a command the driver sends stays valid, in plant time: a dispatch list is stale
/// once the machine has long taken other work, a maintenance order once its window passed.
pub const COMMAND_TTL_MS: i64 = 3_600_000;
/// How a feed's runs are named in the store (`policy`), so a restart finds the ones before.
const FEED_RUN: &str = "plant feed: ";
/// Recent events kept for the live view.
const RECENT_EVENTS: usize = 200;
/// Telemetry messages held before they are committed (they are also committed every second).
const BATCH_MESSAGES: usize = 2_000;
/// Messages taken but not yet acknowledged to the broker before a commit: under the in-flight
/// window brokers grant a client (Mosquitto: 20), which stops delivering when it is full.
const ACK_WINDOW: usize = 16;

/// What to connect to and how to decide.
pub struct FeedSpec {
    /// The plant file: the contract's vocabulary (machine, product and material ids).
    pub plant: Plant,
    pub broker: BrokerAddress,
    /// The MQTT client id; the session is persistent under it, so what the plant publishes
    /// while the runtime restarts is delivered when it is back.
    pub client_id: String,
    /// What decides. Its name goes into every decision's `model`.
    pub policy: Box<dyn Policy + Send>,
    /// What watches the plant's events for the policy (tier 3's closed loop measures its
    /// outcomes from them).
    pub observer: Option<Box<dyn Observer + Send>>,
    /// Where the policy's skills write their own decisions (plans, forecasts); the feed
    /// records them in the store with the commands' decisions.
    pub log: Option<DecisionLog>,
    /// The tier the policy is built to reach (shown in the live view).
    pub tier: u8,
    /// The plant releases sales orders when the runtime says so (`release` commands, planned
    /// by the policy and reviewed every plant-file review period); otherwise it releases them
    /// itself.
    pub plans_releases: bool,
    /// Plant milliseconds a command stays valid.
    pub command_ttl_ms: i64,
    /// The wall clock: receive times of telemetry without its own, and the view's refresh.
    pub clock: Clock,
}

impl std::fmt::Debug for FeedSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedSpec")
            .field("plant", &self.plant.plant.id)
            .field("broker", &self.broker)
            .field("policy", &self.policy.name())
            .finish_non_exhaustive()
    }
}

/// What the feed did so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FeedReport {
    /// Events the projection took, duplicates it dropped, events it refused (quarantined).
    pub events: u64,
    pub duplicates: u64,
    pub refused: u64,
    pub heartbeats: u64,
    /// Lockstep heartbeats answered.
    pub answered: u64,
    pub telemetry_points: u64,
    /// Messages put in the quarantine, for any reason.
    pub quarantined: u64,
    pub decisions: u64,
    pub commands: u64,
    pub acks: u64,
    /// Acknowledgements refused: for commands never sent, or contradicting a settled one.
    pub acks_refused: u64,
    /// Commands settled, by their last word (completed, rejected, failed, expired).
    pub outcomes: BTreeMap<String, u64>,
    /// Events of earlier runs of this feed replayed into the plant's state at the start, and
    /// their commands still open (taken up again, to be settled by their acknowledgements).
    pub restored_events: u64,
    pub restored_commands: u64,
    /// Per decision-point kind (`machine_free`, `work_ready`, …): wall time from the message
    /// that brought the decision point in to its command handed to the broker, ledger write
    /// included. Filled in the report [`PlantFeed::stop`] returns.
    pub latency: BTreeMap<String, Latency>,
}

/// A latency distribution, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Latencies kept per kind: the most recent, enough for a p99.
const LATENCIES_KEPT: usize = 20_000;

impl Latency {
    /// The distribution of `samples`, out of `count` seen in all (the samples may be the most
    /// recent of them).
    pub fn of<'a>(samples: impl IntoIterator<Item = &'a Duration>, count: u64) -> Latency {
        let mut ms: Vec<f64> = samples
            .into_iter()
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| {
            ms.get(((ms.len() as f64 * q).ceil() as usize).saturating_sub(1))
                .copied()
                .unwrap_or(0.0)
        };
        Latency {
            count,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: ms.last().copied().unwrap_or(0.0),
        }
    }
}

/// Why the feed did not start, or how it stopped.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("setting up the coordinator")]
    Coordinator(#[source] CoordinatorError),
    #[error(
        "tier 3 tunes set-points on trial batches, and this plant runs none (it must carry out `trial_batch` commands, docs/PLANT-CONTRACT.md); choose tier 0, 1 or 2"
    )]
    NoTrialBatches,
    #[error("trial batch {id}: {reason}")]
    TrialBatch { id: String, reason: String },
    #[error("connecting to mqtt://{host}:{port}")]
    Connect {
        host: String,
        port: u16,
        #[source]
        source: MqttError,
    },
    #[error("saving the plant's master data")]
    SavePlant(#[source] StoreError),
    #[error("registering the run")]
    RegisterRun(#[source] StoreError),
    #[error("reading what the feed kept before this start")]
    Restore(#[source] StoreError),
    #[error("writing the {what} to the ledger")]
    WriteRecord {
        what: String,
        #[source]
        source: StoreError,
    },
    #[error("writing decision {id} to the ledger")]
    WriteDecision {
        id: String,
        #[source]
        source: StoreError,
    },
    #[error("writing the outcome of decision {id}")]
    WriteOutcome {
        id: String,
        #[source]
        source: StoreError,
    },
    #[error("writing events")]
    WriteEvents(#[source] StoreError),
    #[error("writing telemetry and quarantined messages")]
    WriteIngest(#[source] StoreError),
    #[error("publishing to the broker")]
    Publish(#[source] MqttError),
    #[error("the feed task stopped")]
    Task(#[source] tokio::task::JoinError),
}

/// Commands to the plant through the broker, each tracked until its acknowledgements settle
/// it. Clones share one tracker; the server's approvals and the feed's own decisions go out
/// the same way.
#[derive(Debug, Clone)]
pub struct WireCommands {
    link: Arc<Link>,
    site: String,
    tracker: Arc<Mutex<AckTracker>>,
    /// Plant time (ms since the epoch) as the feed last saw it: when a command is sent.
    now_ms: Arc<AtomicI64>,
    seq: Arc<AtomicU64>,
    /// Ids sent since the last lockstep answer.
    sent: Arc<Mutex<Vec<String>>>,
    /// Machines that are Sparkplug B devices (from their DBIRTH), with their edge node: their
    /// commands go out as a DCMD of the `aifactory/command` metric.
    sparkplug_devices: Arc<Mutex<HashMap<String, String>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl WireCommands {
    fn take_sent(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.sent))
    }
}

impl CommandSink for WireCommands {
    fn send(&self, command: Command) -> Result<(), SendError> {
        let now = Timestamp(self.now_ms.load(Ordering::Relaxed));
        lock(&self.tracker).sent(&command, now)?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let payload = envelope::encode_command(&command, SOURCE, seq, now);
        let device = command
            .action
            .machine()
            .and_then(|m| lock(&self.sparkplug_devices).get(m).map(|n| (m, n.clone())));
        let (topic, payload) = match device {
            Some((machine, node)) => sparkplug::device_command_message(
                &self.site,
                &node,
                machine,
                u64::try_from(now.0).unwrap_or(0),
                &[(
                    COMMAND_METRIC,
                    aifactory_connect::Value::Text(String::from_utf8_lossy(&payload).into_owned()),
                )],
            ),
            None => (
                envelope::command_topic(&self.site, command.action.machine()),
                payload,
            ),
        };
        self.link
            .publish(topic, payload, false)
            .map_err(|e| SendError::Closed(e.to_string()))?;
        lock(&self.sent).push(command.id);
        Ok(())
    }
}

/// A feed connected to its broker, not yet running: its [`WireCommands`] can be handed to the
/// server before [`Connected::run`] starts it.
#[derive(Debug)]
pub struct Connected {
    spec: FeedSpec,
    commands: WireCommands,
    incoming: mpsc::Receiver<Incoming>,
    /// What the plant said while trial batches ran, taken first once the feed runs.
    early: Vec<Incoming>,
    trial_failure: Option<FeedError>,
    /// Acknowledgements of trial batches taken (counted with the feed's own).
    trial_acks: u64,
}

/// How long the feed waits for a trial batch's result.
pub const TRIAL_WAIT: Duration = Duration::from_secs(30);

impl Connected {
    pub fn commands(&self) -> WireCommands {
        self.commands.clone()
    }

    /// The plant's trial line, for a coordinator that tunes set-points on it (tier 3): each
    /// call sends a `trial_batch` command and waits (up to `wait`) for its `completed`
    /// acknowledgement, whose read-back is the batch's yield. What the plant says meanwhile is
    /// kept for the feed. A trial the plant refuses, fails or leaves unanswered ends the run of
    /// trials; [`Connected::trial_failure`] says why. Blocks: call from outside the async
    /// runtime `rt` belongs to.
    pub fn trial_batches<'a>(
        &'a mut self,
        rt: &'a Handle,
        wait: Duration,
    ) -> impl FnMut(usize, usize, &[f64]) -> Option<f64> + 'a {
        let mut sent = 0u64;
        move |product, step, values| {
            if self.trial_failure.is_some() {
                return None;
            }
            sent += 1;
            let id = format!("T{sent}");
            let result = rt.block_on(self.trial_batch(&id, product, step, values, wait));
            result
                .map_err(|reason| {
                    self.trial_failure = Some(FeedError::TrialBatch {
                        id: id.clone(),
                        reason,
                    });
                })
                .ok()
        }
    }

    async fn trial_batch(
        &mut self,
        id: &str,
        product: usize,
        step: usize,
        values: &[f64],
        wait: Duration,
    ) -> Result<f64, String> {
        let product = self
            .spec
            .plant
            .products
            .get(product)
            .map(|p| p.id.clone())
            .ok_or_else(|| format!("no product {product} in the plant"))?;
        let (start, _) = self.spec.plant.start();
        let deadline = tokio::time::Instant::now() + wait;
        // A command sent before the plant listens is lost: the first waits for it to speak.
        if self.early.is_empty() {
            let m = tokio::time::timeout_at(deadline, self.incoming.recv())
                .await
                .map_err(|_| format!("the plant said nothing within {} s", wait.as_secs()))?
                .ok_or_else(|| "the broker connection closed".to_owned())?;
            self.keep_early(m)?;
        }
        let command = Command {
            id: id.to_owned(),
            decision: None,
            expires: None,
            action: Action::TrialBatch {
                product,
                step,
                values: values.to_vec(),
            },
        };
        let seq = self.commands.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let payload = envelope::encode_command(&command, SOURCE, seq, start);
        self.commands
            .link
            .publish(
                envelope::command_topic(&self.commands.site, None),
                payload,
                false,
            )
            .map_err(|e| format!("not sent: {e}"))?;
        loop {
            let m = tokio::time::timeout_at(deadline, self.incoming.recv())
                .await
                .map_err(|_| format!("no answer within {} s", wait.as_secs()))?
                .ok_or_else(|| "the broker connection closed".to_owned())?;
            let answer = match envelope::decode(&m.topic, &m.payload) {
                Ok(Message::Ack(received)) if received.ack.command == id => {
                    self.trial_acks += 1;
                    if let Some(delivery) = &m.delivery {
                        self.commands
                            .link
                            .ack(delivery)
                            .map_err(|e| format!("acknowledging to the broker: {e}"))?;
                    }
                    received.ack
                }
                _ => {
                    self.keep_early(m)?;
                    continue;
                }
            };
            return match (answer.status, answer.read_back) {
                (AckStatus::Completed, Some(y)) if y.is_finite() => Ok(y),
                (AckStatus::Completed, _) => Err("completed without a yield".to_owned()),
                (AckStatus::Received | AckStatus::Accepted, _) => continue,
                (status, _) => Err(format!(
                    "{}{}",
                    status.as_str(),
                    answer.reason.map(|r| format!(": {r}")).unwrap_or_default()
                )),
            };
        }
    }

    /// Keeps a message the plant sent while trial batches ran, for the feed. It is
    /// acknowledged to the broker at once: a broker stops delivering to a client that holds
    /// too many unacknowledged (Mosquitto: 20), and the trials' answers must get through. So
    /// a crash in those seconds loses what was kept; a restart's projection then refuses what
    /// depends on it, with the reason.
    fn keep_early(&mut self, mut m: Incoming) -> Result<(), String> {
        if let Some(delivery) = m.delivery.take() {
            self.commands
                .link
                .ack(&delivery)
                .map_err(|e| format!("acknowledging to the broker: {e}"))?;
        }
        self.early.push(m);
        Ok(())
    }

    /// Why the trial batches stopped, if they did.
    pub fn trial_failure(&mut self) -> Option<FeedError> {
        self.trial_failure.take()
    }

    /// Decides with `coordinator` instead of the spec's policy (one built on the plant's
    /// trial batches).
    pub fn decide_with(&mut self, coordinator: FeedCoordinator) {
        self.spec.policy = coordinator.policy;
        self.spec.observer = coordinator.observer;
    }

    /// Saves the plant, registers a run and starts taking the plant's messages.
    pub async fn run(
        self,
        store: Store,
        publisher: Option<Publisher>,
    ) -> Result<PlantFeed, FeedError> {
        let Connected {
            spec,
            commands,
            incoming,
            early,
            trial_failure: _,
            trial_acks,
        } = self;
        store
            .save_plant(&spec.plant)
            .await
            .map_err(FeedError::SavePlant)?;
        let (start, _) = spec.plant.start();
        // The runs of this plant's feed before this one: a restart takes up where they ended.
        let earlier: Vec<RunId> = store
            .runs(&spec.plant.plant.id)
            .await
            .map_err(FeedError::Restore)?
            .into_iter()
            .filter(|(_, info)| info.policy.starts_with(FEED_RUN))
            .map(|(id, _)| id)
            .collect();
        let run = store
            .start_run(&RunInfo {
                plant_id: spec.plant.plant.id.clone(),
                seed: 0,
                policy: format!("{FEED_RUN}{}", spec.policy.name()),
                sim_days: 0.0,
                started_at: Timestamp(spec.clock.epoch_ms()),
            })
            .await
            .map_err(FeedError::RegisterRun)?;
        let master = Arc::new(MasterData::new(spec.plant.clone()));
        let machines = master.plant().machines.len();
        let (report_tx, report_rx) = watch::channel(FeedReport::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut state = FeedState {
            site: spec.plant.plant.id.clone(),
            name: spec.plant.plant.name.clone(),
            products: product_infos(&spec.plant),
            log: spec.log,
            scope: (run.0 > 1).then(|| format!("R{}", run.0)),
            projection: Projection::new(Arc::clone(&master), ProjectionConfig::default()),
            driver: if spec.plans_releases {
                let hours = master.plant().twin.review_period_h.max(0.001);
                Driver::new(spec.policy, machines)
                    .planning_releases(PlantTime((hours * 3_600_000.0) as u64))
            } else {
                Driver::new(spec.policy, machines)
            },
            observer: spec.observer,
            commands: commands.clone(),
            store,
            run,
            publisher,
            tier: spec.tier,
            ttl_ms: spec.command_ttl_ms,
            clock: spec.clock,
            start,
            now: start,
            decisions: 0,
            report: FeedReport {
                acks: trial_acks,
                ..FeedReport::default()
            },
            report_tx,
            events: Vec::new(),
            ingest: Batch::default(),
            refused_rows: Vec::new(),
            recent: VecDeque::new(),
            orders: BTreeMap::new(),
            unacked: Vec::new(),
            received: Duration::ZERO,
            latencies: BTreeMap::new(),
            sparkplug: HostSession::new(),
        };
        state.restore(&earlier).await?;
        let task = tokio::spawn(state.run(early, incoming, stop_rx));
        Ok(PlantFeed {
            run,
            stop: stop_tx,
            report: report_rx,
            task,
            commands,
        })
    }
}

/// The coordinator a plant feed runs, and what watches the plant's events for it.
pub struct FeedCoordinator {
    pub policy: Box<dyn Policy + Send>,
    pub observer: Option<Box<dyn Observer + Send>>,
}

impl std::fmt::Debug for FeedCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedCoordinator")
            .field("policy", &self.policy.name())
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// The coordinator of `tier` for a plant that only shows its events: no order book or
/// maintenance records before the feed starts, so the skills learn from the plant. Tiers 0–2
/// need nothing more: at tier 2 the quality-to-process link, which tunes set-points on trial
/// batches, is cut. Tier 3 keeps every link and needs the plant's trial batches (`trial`, e.g.
/// [`Connected::trial_batches`]).
pub fn coordinator_for(
    plant: &Plant,
    tier: u8,
    seed: u64,
    log: &DecisionLog,
    trial: Option<aifactory_coordinator::TrialFn<'_>>,
) -> Result<FeedCoordinator, FeedError> {
    let tier = Tier::from_number(tier).map_err(FeedError::Coordinator)?;
    let (links, trial) = match (tier, trial) {
        (Tier::Three, None) => return Err(FeedError::NoTrialBatches),
        (Tier::Three, trial) => (Links::ALL, trial),
        _ => (
            Links::ALL
                .without("quality-to-process")
                .map_err(FeedError::Coordinator)?,
            None,
        ),
    };
    let master = MasterData::new(plant.clone());
    let order_book = BTreeMap::new();
    let setup = Setup {
        master: &master,
        tier,
        links,
        log: Some(log),
        seed,
        order_book: &order_book,
        maintenance_records: &[],
    };
    let configured = aifactory_coordinator::build(&setup, trial).map_err(FeedError::Coordinator)?;
    Ok(FeedCoordinator {
        policy: configured.policy,
        observer: configured.observer,
    })
}

/// Connects to the broker and subscribes to everything under the plant's site.
pub async fn connect(spec: FeedSpec) -> Result<Connected, FeedError> {
    let site = spec.plant.plant.id.clone();
    let filters = [
        format!("{}/{site}/#", json::ROOT),
        format!("{}/{site}/#", sparkplug::NAMESPACE),
    ];
    let (link, incoming) = Link::connect(&spec.broker, &spec.client_id, &filters, true)
        .await
        .map_err(|source| FeedError::Connect {
            host: spec.broker.host.clone(),
            port: spec.broker.port,
            source,
        })?;
    let (start, _) = spec.plant.start();
    let commands = WireCommands {
        link: Arc::new(link),
        site,
        tracker: Arc::default(),
        now_ms: Arc::new(AtomicI64::new(start.0)),
        seq: Arc::default(),
        sent: Arc::default(),
        sparkplug_devices: Arc::default(),
    };
    Ok(Connected {
        spec,
        commands,
        incoming,
        early: Vec::new(),
        trial_failure: None,
        trial_acks: 0,
    })
}

/// A running feed; [`PlantFeed::stop`] ends it and returns what it did.
#[derive(Debug)]
pub struct PlantFeed {
    run: RunId,
    stop: watch::Sender<bool>,
    report: watch::Receiver<FeedReport>,
    task: tokio::task::JoinHandle<Result<FeedReport, FeedError>>,
    commands: WireCommands,
}

impl PlantFeed {
    /// The run the feed's events are stored under.
    pub fn run(&self) -> RunId {
        self.run
    }

    /// What it did so far (refreshed after every message).
    pub fn report(&self) -> FeedReport {
        self.report.borrow().clone()
    }

    /// Waits until `done` holds for the report, or `timeout` passes; answers the last report.
    pub async fn wait_until(
        &mut self,
        timeout: Duration,
        done: impl Fn(&FeedReport) -> bool,
    ) -> FeedReport {
        let _ = tokio::time::timeout(timeout, self.report.wait_for(|r| done(r))).await;
        self.report()
    }

    /// Commits what is held, disconnects and answers the final report.
    pub async fn stop(self) -> Result<FeedReport, FeedError> {
        let _ = self.stop.send(true);
        let report = self.task.await.map_err(FeedError::Task)?;
        if let Ok(link) = Arc::try_unwrap(self.commands.link) {
            link.close().await;
        }
        report
    }
}

/// Everything the feed task owns.
struct FeedState {
    site: String,
    name: String,
    products: Vec<ProductInfo>,
    log: Option<DecisionLog>,
    /// A later run on the same store suffixes its skills' decision ids (`@R2`): they number
    /// from 1 in every run, and the ledger keeps each id once.
    scope: Option<String>,
    projection: Projection,
    driver: Driver,
    observer: Option<Box<dyn Observer + Send>>,
    commands: WireCommands,
    store: Store,
    run: RunId,
    publisher: Option<Publisher>,
    tier: u8,
    ttl_ms: i64,
    clock: Clock,
    /// The plant file's start, and the plant's time as its messages say.
    start: Timestamp,
    now: Timestamp,
    decisions: u64,
    report: FeedReport,
    report_tx: watch::Sender<FeedReport>,
    /// Held until the next commit: events, telemetry and envelope-level quarantine, and the
    /// messages refused past the envelope.
    events: Vec<PlantEvent>,
    ingest: Batch,
    refused_rows: Vec<QuarantineRow>,
    recent: VecDeque<EventNow>,
    orders: BTreeMap<String, OrderNow>,
    /// Messages taken and not yet acknowledged to the broker (until the next commit).
    unacked: Vec<aifactory_connect::mqtt::Delivery>,
    /// When the message being handled arrived (the feed's clock), and the latencies so far.
    received: Duration,
    latencies: BTreeMap<&'static str, (u64, VecDeque<Duration>)>,
    /// Sparkplug B edge nodes' sessions (births, aliases, sequence numbers).
    sparkplug: HostSession,
}

/// Where a stored event keeps its envelope's id, source and sequence.
const ENVELOPE: &str = "envelope";

impl FeedState {
    /// Rebuilds the plant's state from the events the feed's earlier runs kept, and takes up
    /// their commands that were sent and never settled: their acknowledgements still count, and
    /// they are not sent again.
    async fn restore(&mut self, earlier: &[RunId]) -> Result<(), FeedError> {
        let mut last: Option<Timestamp> = None;
        for run in earlier {
            let events = self
                .store
                .events(Some(*run))
                .await
                .map_err(FeedError::Restore)?;
            for (i, event) in events.into_iter().enumerate() {
                if event.kind == aifactory_core::EventKind::CommandAck {
                    continue;
                }
                let identity = event.detail.get(ENVELOPE);
                let text = |k: &str| identity.and_then(|e| e.get(k)).and_then(|v| v.as_str());
                let id = text("id").map_or_else(|| format!("R{}-{i}", run.0), str::to_owned);
                let source = text("source").unwrap_or("restored").to_owned();
                let seq = identity
                    .and_then(|e| e.get("seq"))
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(i as u64);
                last = last.max(Some(event.at));
                // Taken once already: a refusal now (past the horizon) only means it is old.
                if self
                    .projection
                    .offer(aifactory_plant::Arrival {
                        id,
                        source,
                        seq,
                        event,
                    })
                    .is_ok()
                {
                    self.report.restored_events += 1;
                }
            }
        }
        if let Some(at) = last {
            self.projection.advance_to(PlantTime::since(self.start, at));
            self.now = at;
            self.commands.now_ms.store(at.0, Ordering::Relaxed);
        }
        let prefixes: Vec<String> = earlier.iter().map(|r| format!("D-R{}-", r.0)).collect();
        let decisions = self
            .store
            .decisions(10_000)
            .await
            .map_err(FeedError::Restore)?;
        for d in decisions {
            if d.outcome.is_some() || !prefixes.iter().any(|p| d.id.starts_with(p.as_str())) {
                continue;
            }
            let Ok(action) = serde_json::from_value::<Action>(d.output["command"].clone()) else {
                continue;
            };
            let command = Command {
                id: format!("C-{}", d.id),
                decision: Some(d.id.clone()),
                expires: Some(Timestamp(d.at.0 + self.ttl_ms)),
                action,
            };
            if lock(&self.commands.tracker).sent(&command, d.at).is_ok() {
                self.driver.resume(&self.projection, &command.action);
                self.report.restored_commands += 1;
            }
        }
        let _ = self.report_tx.send(self.report.clone());
        Ok(())
    }

    async fn run(
        mut self,
        early: Vec<Incoming>,
        mut incoming: mpsc::Receiver<Incoming>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<FeedReport, FeedError> {
        for m in early {
            self.take(m).await?;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                message = incoming.recv() => match message {
                    Some(m) => self.take(m).await?,
                    None => break,
                },
                _ = tick.tick() => {
                    self.commit().await?;
                    self.publish_view(true);
                }
            }
        }
        self.commit().await?;
        self.publish_view(false);
        self.report.latency = self
            .latencies
            .iter()
            .map(|(kind, (count, samples))| ((*kind).to_owned(), Latency::of(samples, *count)))
            .collect();
        let _ = self.report_tx.send(self.report.clone());
        Ok(self.report)
    }

    /// Handles one message, and acknowledges it to the broker once it is kept.
    async fn take(&mut self, mut m: Incoming) -> Result<(), FeedError> {
        let delivery = m.delivery.take();
        self.message(m).await?;
        self.unacked.extend(delivery);
        // Acknowledged only once kept: a crash before then brings it again.
        if self.ingest.messages.len() >= BATCH_MESSAGES || self.unacked.len() >= ACK_WINDOW {
            self.commit().await?;
        }
        let _ = self.report_tx.send(self.report.clone());
        Ok(())
    }

    async fn message(&mut self, m: Incoming) -> Result<(), FeedError> {
        self.received = self.clock.elapsed();
        if m.topic.starts_with(sparkplug::NAMESPACE) {
            return self.sparkplug(m).await;
        }
        self.envelope(m).await
    }

    /// A message in the contract's JSON layout on `aifactory/{site}/…`.
    async fn envelope(&mut self, m: Incoming) -> Result<(), FeedError> {
        let channel = m.topic.split('/').nth(2).unwrap_or_default().to_owned();
        match channel.as_str() {
            "_events" | "_acks" => match envelope::decode(&m.topic, &m.payload) {
                Ok(Message::Event(arrival)) => self.event(arrival, m).await,
                Ok(Message::Ack(ack)) => self.ack(ack, m).await,
                Ok(Message::Heartbeat(h)) => self.heartbeat(h).await,
                // A plant that asks for its decisions runs in lockstep against `ladder --wire`
                // (see `lockstep`); a feed decides at its own decision points.
                Ok(Message::Request(_) | Message::Records(_)) => {
                    let reason = aifactory_connect::Reason::Envelope {
                        field: "type".to_owned(),
                        problem: "decision requests and records on file are taken in lockstep \
                                  only; this feed decides from the plant's events"
                            .to_owned(),
                    };
                    self.quarantine(m, reason);
                    Ok(())
                }
                Err(reason) => {
                    self.quarantine(m, reason);
                    Ok(())
                }
            },
            // What aifactory itself publishes comes back on the site's wildcard.
            "_commands" | "_sync" | "_dispatch" => Ok(()),
            _ => {
                self.telemetry(m);
                Ok(())
            }
        }
    }

    /// A Sparkplug B message: the session's rules first (births, aliases, sequence numbers);
    /// the `aifactory/event` and `aifactory/ack` metrics of its data carry envelopes, taken as
    /// if they came on `_events` and `_acks`; every other metric is telemetry.
    async fn sparkplug(&mut self, m: Incoming) -> Result<(), FeedError> {
        let topic = match sparkplug::Topic::parse(&m.topic) {
            Ok(t) => t,
            Err(reason) => {
                self.quarantine(m, reason);
                return Ok(());
            }
        };
        let accepted = match self.sparkplug.handle(&m.topic, &m.payload) {
            Ok(a) => a,
            Err(rejected) => {
                if rejected.rebirth {
                    self.ask_rebirth(&topic.node)?;
                }
                self.quarantine(m, rejected.reason);
                return Ok(());
            }
        };
        if accepted.wants_rebirth() {
            self.ask_rebirth(&topic.node)?;
        }
        let birth = matches!(topic.kind, MessageType::NBirth | MessageType::DBirth);
        if let (MessageType::DBirth, Some(device)) = (topic.kind, &topic.device) {
            lock(&self.commands.sparkplug_devices).insert(device.clone(), topic.node.clone());
        }
        let mut telemetry = Vec::new();
        for point in accepted.points {
            let channel = match &*point.series.metric {
                EVENT_METRIC => "_events",
                ACK_METRIC => "_acks",
                _ => {
                    telemetry.push(point);
                    continue;
                }
            };
            // A birth states the metric with its last value: an envelope already taken.
            if birth {
                continue;
            }
            let aifactory_connect::Value::Text(body) = point.value else {
                let reason = aifactory_connect::Reason::Envelope {
                    field: point.series.metric.to_string(),
                    problem: "must be a String metric holding the envelope".to_owned(),
                };
                self.quarantine(
                    Incoming {
                        topic: m.topic.clone(),
                        payload: Vec::new(),
                        delivery: None,
                    },
                    reason,
                );
                continue;
            };
            let inner = Incoming {
                topic: format!("{}/{}/{channel}", json::ROOT, self.site),
                payload: body.into_bytes(),
                delivery: None,
            };
            self.envelope(inner).await?;
        }
        if !telemetry.is_empty() {
            // The session's sequence numbers already guard against redelivery: no message key.
            self.take_points(telemetry, None);
        }
        Ok(())
    }

    /// Readings taken: the driver's latest per machine and signal, and held for the next commit.
    fn take_points(&mut self, points: Vec<aifactory_connect::Point>, key: Option<[u8; 16]>) {
        for p in &points {
            if let (Some(machine), Some(v)) = (
                self.projection.master().machine_index(&p.series.device),
                p.value.as_f64(),
            ) {
                self.driver.reading(machine, &p.series.metric, v);
                // The closed loop's condition watch reads the plant's signals too.
                if let Some(o) = self.observer.as_mut().filter(|o| o.wants_telemetry()) {
                    o.reading(aifactory_core::TelemetryReading {
                        at: aifactory_core::Timestamp(p.timestamp_ms),
                        machine: p.series.device.to_string(),
                        signal: p.series.metric.to_string(),
                        value: v,
                    });
                }
            }
        }
        self.report.telemetry_points += points.len() as u64;
        self.ingest.messages.push(Received { key, points });
    }

    /// Asks an edge node to publish its births again (it lost them, or we did).
    fn ask_rebirth(&self, node: &str) -> Result<(), FeedError> {
        let (topic, payload) = sparkplug::rebirth_request(
            &self.site,
            node,
            u64::try_from(self.clock.epoch_ms()).unwrap_or(0),
        );
        self.commands
            .link
            .publish(topic, payload, false)
            .map_err(FeedError::Publish)
    }

    fn quarantine(&mut self, m: Incoming, reason: aifactory_connect::Reason) {
        self.report.quarantined += 1;
        self.ingest.quarantined.push(Quarantine {
            topic: m.topic,
            received_ms: self.clock.epoch_ms(),
            payload: m.payload,
            reason,
        });
    }

    fn refuse(&mut self, m: Incoming, kind: &str, reason: String) {
        self.report.quarantined += 1;
        self.refused_rows.push(QuarantineRow {
            received_ms: self.clock.epoch_ms(),
            topic: m.topic,
            reason_kind: kind.to_owned(),
            reason,
            payload: m.payload,
        });
    }

    fn telemetry(&mut self, m: Incoming) {
        let received = self.clock.epoch_ms();
        match json::decode(&m.topic, &m.payload, received) {
            Ok(decoded) => {
                let key = decoded
                    .timestamped
                    .then(|| aifactory_connect::mqtt::message_key(&m.topic, &m.payload));
                self.take_points(decoded.points, key);
            }
            Err(reason) => self.quarantine(m, reason),
        }
    }

    async fn event(
        &mut self,
        arrival: aifactory_plant::Arrival,
        m: Incoming,
    ) -> Result<(), FeedError> {
        // Kept with the envelope's identity, so that after a restart the replayed event and a
        // redelivery of it are one.
        let arrival_event = arrival.event.clone();
        let mut event = arrival.event.clone();
        if let Some(detail) = event.detail.as_object_mut() {
            detail.insert(
                ENVELOPE.to_owned(),
                serde_json::json!({"id": arrival.id, "source": arrival.source, "seq": arrival.seq}),
            );
        }
        match self.projection.offer(arrival) {
            Err(e) => {
                self.report.refused += 1;
                self.refuse(m, "event_refused", e.to_string());
                Ok(())
            }
            Ok((Offered::Duplicate, _)) => {
                self.report.duplicates += 1;
                Ok(())
            }
            Ok((_, points)) => {
                self.report.events += 1;
                if let Some(o) = self.observer.as_mut() {
                    o.event(arrival_event.clone());
                }
                self.recent.push_front(EventNow::from(event.clone()));
                self.recent.truncate(RECENT_EVENTS);
                let at = event.at;
                self.events.push(event);
                self.clock_to(at).await?;
                self.decide(&points).await
            }
        }
    }

    async fn heartbeat(&mut self, h: Heartbeat) -> Result<(), FeedError> {
        self.report.heartbeats += 1;
        self.clock_to(h.at).await?;
        let at = PlantTime::since(self.start, h.at);
        // A lockstep source promises nothing earlier follows; another source may still lag
        // by the reorder window.
        let until = if h.answer {
            at
        } else {
            PlantTime(at.0.saturating_sub(ProjectionConfig::default().reorder_window_ms))
        };
        let points = self.projection.advance_to(until);
        self.decide(&points).await?;
        if h.answer {
            // What the answer covers is kept before it goes out.
            self.commit().await?;
            let commands = self.commands.take_sent();
            let seq = self.commands.seq.fetch_add(1, Ordering::Relaxed) + 1;
            let payload = envelope::encode_answer(&h, SOURCE, seq, &commands);
            self.commands
                .link
                .publish(envelope::sync_topic(&self.site), payload, false)
                .map_err(FeedError::Publish)?;
            self.report.answered += 1;
        }
        Ok(())
    }

    /// Moves the feed's plant time forward and expires the commands that ran out.
    async fn clock_to(&mut self, at: Timestamp) -> Result<(), FeedError> {
        if at <= self.now {
            return Ok(());
        }
        self.now = at;
        self.commands.now_ms.store(at.0, Ordering::Relaxed);
        let expired = lock(&self.commands.tracker).expire(at);
        for settled in expired {
            self.settled(settled).await?;
        }
        Ok(())
    }

    async fn ack(&mut self, received: ReceivedAck, m: Incoming) -> Result<(), FeedError> {
        self.report.acks += 1;
        let ack = received.ack;
        let (known, effect) = {
            let mut tracker = lock(&self.commands.tracker);
            let known = tracker.command(&ack.command).cloned();
            (known, tracker.ack(ack.clone()))
        };
        match effect {
            Ok(AckEffect::Settled(settled)) => self.settled(*settled).await?,
            Ok(AckEffect::Progressed(_) | AckEffect::Stale) => {
                self.events
                    .push(ack_event(&ack, known.as_ref(), false, None));
            }
            Err(e @ AckError::UnknownCommand(_)) => {
                self.report.acks_refused += 1;
                self.refuse(m, "unknown_command", e.to_string());
            }
            Err(e) => {
                self.report.acks_refused += 1;
                self.events
                    .push(ack_event(&ack, known.as_ref(), false, Some(e.to_string())));
            }
        }
        Ok(())
    }

    /// A command's last word: stored as an event and as its decision's outcome.
    async fn settled(&mut self, settled: Settled) -> Result<(), FeedError> {
        let status = settled.ack.status;
        *self
            .report
            .outcomes
            .entry(status.as_str().to_owned())
            .or_default() += 1;
        if !status.succeeded() {
            self.driver.unmet(&self.projection, &settled.command.action);
        }
        let event = ack_event(&settled.ack, Some(&settled.command), true, None);
        self.recent.push_front(EventNow::from(event.clone()));
        self.events.push(event);
        if let Some(decision) = &settled.command.decision {
            let mut measured = serde_json::json!({
                "command": settled.command.id,
                "status": status.as_str(),
            });
            if let Some(r) = &settled.ack.reason {
                measured["reason"] = serde_json::json!(r);
            }
            if let Some(v) = settled.ack.read_back {
                measured["read_back"] = serde_json::json!(v);
            }
            let outcome = Outcome {
                measured_at: settled.ack.at,
                measured,
                success: Some(status.succeeded()),
            };
            self.store
                .record_outcome(decision, &outcome)
                .await
                .map_err(|source| FeedError::WriteOutcome {
                    id: decision.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Asks the driver what the decision points call for; each answer is written to the
    /// ledger, then sent.
    async fn decide(&mut self, points: &[DecisionPoint]) -> Result<(), FeedError> {
        let decided = self.driver.decide(&self.projection, points);
        let skills = self
            .log
            .as_ref()
            .map(DecisionLog::drain)
            .unwrap_or_default();
        for record in skills {
            let record = match &self.scope {
                Some(scope) => crate::scope::scoped_record(record, scope),
                None => record,
            };
            match record {
                LedgerRecord::Decision(d) => self.record(&d).await?,
                // A closed loop's outcomes and model updates go to the ledger as they come.
                other => {
                    self.store
                        .append_ledger(std::slice::from_ref(&other))
                        .await
                        .map_err(|source| FeedError::WriteRecord {
                            what: aifactory_assess::ledger::describe(&other),
                            source,
                        })?;
                }
            }
        }
        for d in decided {
            let decision = self.decision(&d);
            self.record(&decision).await?;
            let command = Command {
                id: format!("C-{}", decision.id),
                decision: Some(decision.id.clone()),
                expires: Some(Timestamp(decision.at.0 + self.ttl_ms)),
                action: d.action,
            };
            match self.commands.send(command.clone()) {
                Ok(()) => {
                    self.report.commands += 1;
                    let took = self.clock.elapsed().saturating_sub(self.received);
                    let (count, kept) = self.latencies.entry(d.trigger).or_default();
                    *count += 1;
                    kept.push_back(took);
                    if kept.len() > LATENCIES_KEPT {
                        kept.pop_front();
                    }
                }
                // Recorded as not executed, never lost: the decision's outcome says why.
                Err(e) => {
                    let ack = aifactory_plant::Ack::new(
                        &command.id,
                        aifactory_plant::AckStatus::Failed,
                        decision.at,
                    )
                    .because(format!("not sent: {e}"));
                    self.settled(Settled {
                        command,
                        ack,
                        sent: decision.at,
                    })
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn record(&mut self, decision: &Decision) -> Result<(), FeedError> {
        self.store
            .record_decision(decision)
            .await
            .map_err(|source| FeedError::WriteDecision {
                id: decision.id.clone(),
                source,
            })?;
        self.report.decisions += 1;
        if let Some(p) = &self.publisher {
            p.announcer().decision(decision.clone());
        }
        Ok(())
    }

    fn decision(&mut self, d: &Decided) -> Decision {
        self.decisions += 1;
        let skill = match d.action {
            Action::StartMaintenance { .. } => "maintenance",
            Action::DispatchList { .. } => "dispatching",
            Action::SetPoint { .. } => "process",
            Action::Hold { .. } => "dispatching",
            Action::Release { .. } => "release",
            Action::Purchase { .. } => "purchasing",
            Action::TrialBatch { .. } => "process",
        };
        Decision {
            id: format!("D-R{}-{:06}", self.run.0, self.decisions),
            at: Timestamp(self.start.0 + d.at.0 as i64),
            skill: skill.to_owned(),
            stage: LifecycleStage::Production,
            inputs_ref: format!("plant-state@{} ({})", d.at.0, d.trigger),
            model: self.driver.policy_name(),
            model_version: "1".to_owned(),
            output: serde_json::json!({
                "command": serde_json::to_value(&d.action).unwrap_or_default(),
                "trigger": d.trigger,
                "waiting": d.waiting,
                "run_h_since_renewal": d.run_h_since_renewal,
            }),
            confidence: None,
            executed_by: ExecutedBy::Auto,
            outcome: None,
        }
    }

    /// Writes what is held: events, telemetry and the quarantine.
    async fn commit(&mut self) -> Result<(), FeedError> {
        if !self.events.is_empty() {
            let events = std::mem::take(&mut self.events);
            self.store
                .append_events(Some(self.run), &events)
                .await
                .map_err(FeedError::WriteEvents)?;
        }
        if !self.ingest.messages.is_empty()
            || !self.ingest.quarantined.is_empty()
            || !self.refused_rows.is_empty()
        {
            let mut batch = to_store(std::mem::take(&mut self.ingest));
            batch.quarantined.append(&mut self.refused_rows);
            self.store
                .commit_ingest(&batch, self.clock.epoch_ms())
                .await
                .map_err(FeedError::WriteIngest)?;
        }
        for delivery in self.unacked.drain(..) {
            self.commands
                .link
                .ack(&delivery)
                .map_err(FeedError::Publish)?;
        }
        Ok(())
    }

    /// The live view, from the projection alone.
    fn publish_view(&mut self, running: bool) {
        let Some(publisher) = &self.publisher else {
            return;
        };
        let applied = self.projection.applied_to();
        let now = Timestamp(self.start.0 + applied.0 as i64);
        let machines = machines_now(&self.projection, applied.0 as f64 / 3_600_000.0);
        update_orders(&self.projection, self.start, now, &mut self.orders);
        let orders: Vec<OrderNow> = self.orders.values().cloned().collect();
        publisher.snapshot(Snapshot {
            plant: PlantNow {
                plant: PlantId {
                    id: self.site.clone(),
                    name: self.name.clone(),
                },
                tier: self.tier,
                speed: 1.0,
                sim_time: now,
                running,
                machines,
                orders: OrderCounts::of(&orders),
                kpis: self.projection.kpis(),
                recent_events: self.recent.iter().take(50).cloned().collect(),
            },
            orders,
            plan: None,
            series_site: self.site.clone(),
            series_node: json::NODE.to_owned(),
            spc: Vec::new(),
            forecasts: Vec::new(),
            anomalies: Vec::new(),
            products: self.products.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> Plant {
        let text = include_str!("../../../plants/hangzhou-auto-parts.toml");
        Plant::parse(text, std::path::Path::new("hangzhou-auto-parts.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_plant_feed_runs_tiers_0_to_2_without_trial_batches_and_tier_3_only_on_them() {
        let plant = reference();
        let log = DecisionLog::new();
        for tier in 0..=2 {
            let coordinator = coordinator_for(&plant, tier, 1, &log, None);
            let coordinator = coordinator.unwrap_or_else(|e| panic!("tier {tier}: {e}"));
            // From tier 1 the maintenance skill watches the plant's readings and events.
            let watches = coordinator
                .observer
                .as_ref()
                .is_some_and(|o| o.wants_telemetry() && o.wants_events());
            assert_eq!(watches, tier > 0, "tier {tier}");
        }
        assert!(matches!(
            coordinator_for(&plant, 3, 1, &log, None),
            Err(FeedError::NoTrialBatches)
        ));
        let mut trials = 0;
        let mut line = |_: usize, _: usize, _: &[f64]| {
            trials += 1;
            Some(0.01)
        };
        let tier3 = coordinator_for(&plant, 3, 1, &log, Some(&mut line));
        let tier3 = tier3.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            tier3.observer.is_some(),
            "the closed loop watches the events"
        );
        assert!(trials > 0, "tier 3 is built on trial batches");
        assert!(matches!(
            coordinator_for(&plant, 7, 1, &log, None),
            Err(FeedError::Coordinator(CoordinatorError::Tier(7)))
        ));
        // With the quality link on, tier 2 still needs trial batches.
        let master = MasterData::new(plant);
        let order_book = BTreeMap::new();
        let setup = Setup {
            master: &master,
            tier: Tier::Two,
            links: Links::ALL,
            log: None,
            seed: 1,
            order_book: &order_book,
            maintenance_records: &[],
        };
        assert!(matches!(
            aifactory_coordinator::build(&setup, None),
            Err(CoordinatorError::NoTrials)
        ));
    }
}
