//! The twin as a plant on the wire, in lockstep: `aifactory sim --mqtt URL --lockstep` runs the
//! twin in its own process and asks for every decision over the plant contract
//! (`decision_request`), and the runtime answers each with commands, deciding with the same
//! coordinator an in-process run builds. The twin advances only once a request is answered, so
//! a run over the wire makes exactly the calls, with exactly the views, of a run in process:
//! same seed, same ledger.
//!
//! [`run_paced_plant`] is the same twin as a plant that does not wait: paced, it publishes
//! what happens and carries out the commands that arrive, for `serve --plant-feed`.
//!
//! Both halves are here: [`run_plant`] is the plant's side (events and telemetry out, requests
//! out, commands in, acknowledgements out), [`Service`] the runtime's (records and trial
//! batches first, then every request put to the policy, every event to its observer). Neither
//! shares state with the other but the broker.

use crate::ladder::{RungError, RungRun, assess_rung};
use crate::run::{records_on_file, twin_trials};
use aifactory_connect::envelope::{self, Message, Records, Request, Sync};
use aifactory_connect::json;
use aifactory_connect::mqtt::{BrokerAddress, Incoming, Link, MqttError};
use aifactory_coordinator::{Links, Setup, Tier};
use aifactory_core::{DecisionLog, Kpis, Plant, PlantEvent, TelemetryReading, Timestamp};
use aifactory_plant::ask::{Answer, Ask};
use aifactory_plant::{
    Ack, AckStatus, Action, Command, Floor, Lot, MachineId, MachineView, MasterData, MaterialView,
    Observer, OrderView, ParamSpec, PlantTime, Policy, PurchaseRequest, QueuedOp,
};
use aifactory_twin::{PlantModel, SimResult, Simulation};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

/// The `source` the twin publishes under.
pub const PLANT_SOURCE: &str = "twin";
/// The `source` of what the runtime publishes.
pub const RUNTIME_SOURCE: &str = "aifactory";
/// How long either side waits for the other before it gives up.
const PATIENCE: Duration = Duration::from_secs(120);

/// Why a lockstep run stopped.
#[derive(Debug, thiserror::Error)]
pub enum LockstepError {
    #[error("connecting to mqtt://{host}:{port}")]
    Connect {
        host: String,
        port: u16,
        #[source]
        source: MqttError,
    },
    #[error("publishing to the broker")]
    Publish(#[source] MqttError),
    #[error("no message from the {0} for {1} s")]
    Quiet(&'static str, u64),
    #[error("the broker connection closed")]
    Closed,
    #[error("building tier {tier}")]
    Coordinator {
        tier: u8,
        #[source]
        source: aifactory_coordinator::CoordinatorError,
    },
    #[error("assessing the run's ledger")]
    Rung(#[from] RungError),
    #[error("the answer to request {request} is wrong: {why}")]
    Answer { request: String, why: String },
    #[error("{0}")]
    Refused(String),
}

/// The twin's link to the broker, shared by its observer and its policy.
struct Wire {
    rt: Handle,
    link: Link,
    incoming: mpsc::Receiver<Incoming>,
    site: String,
    master: Arc<MasterData>,
    start: Timestamp,
    seq: u64,
    /// Commands received and not yet taken by an answer, by id.
    received: HashMap<String, Command>,
    counts: PlantCounts,
    /// The first failure: the twin cannot return an error from inside its loop, so it runs on
    /// with the tier-0 answer and the run reports the failure at the end.
    failure: Option<LockstepError>,
    /// The latest plant time seen: a process-parameter request has none of its own.
    now: PlantTime,
}

/// What the twin's side did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlantCounts {
    pub events: u64,
    pub telemetry_messages: u64,
    pub requests: u64,
    pub commands: u64,
    pub trial_batches: u64,
    pub acks: u64,
}

impl Wire {
    /// Connects the twin of `model` to the broker, subscribed to the commands for its site and,
    /// when it asks for decisions, to the answers on `_sync`.
    fn connect(
        rt: &Handle,
        model: &PlantModel,
        broker: &BrokerAddress,
        client_id: &str,
        asks: bool,
    ) -> Result<Wire, LockstepError> {
        let plant = model.plant();
        let site = plant.plant.id.clone();
        let mut filters = vec![format!("{}/{site}/_commands/#", json::ROOT)];
        if asks {
            filters.push(envelope::sync_topic(&site));
        }
        let (link, incoming) = rt
            .block_on(Link::connect(broker, client_id, &filters, false))
            .map_err(|source| LockstepError::Connect {
                host: broker.host.clone(),
                port: broker.port,
                source,
            })?;
        Ok(Wire {
            rt: rt.clone(),
            link,
            incoming,
            site,
            master: Arc::new(model.master().clone()),
            start: plant.start().0,
            seq: 0,
            received: HashMap::new(),
            counts: PlantCounts::default(),
            failure: None,
            now: PlantTime(0),
        })
    }

    /// The wire back from the observer and policy that shared it, once the run is over.
    fn take_back(wire: Arc<Mutex<Wire>>) -> Result<Wire, LockstepError> {
        Ok(Arc::try_unwrap(wire)
            .map_err(|_| LockstepError::Closed)?
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn publish(&mut self, topic: String, payload: Vec<u8>) -> Result<(), LockstepError> {
        self.rt
            .block_on(self.link.publish_waiting(topic, payload, false))
            .map_err(LockstepError::Publish)
    }

    fn events_topic(&self) -> String {
        format!("{}/{}/_events", json::ROOT, self.site)
    }

    fn ack(&mut self, ack: &Ack) -> Result<(), LockstepError> {
        let seq = self.next_seq();
        let payload = envelope::encode_ack(ack, PLANT_SOURCE, &format!("A{seq}"), seq);
        self.counts.acks += 1;
        self.publish(format!("{}/{}/_acks", json::ROOT, self.site), payload)
    }

    /// The next message from the runtime: a `_sync` message or a command.
    fn next_message(&mut self) -> Result<Result<Sync, Command>, LockstepError> {
        let incoming = &mut self.incoming;
        let message = self
            .rt
            .block_on(async { tokio::time::timeout(PATIENCE, incoming.recv()).await })
            .map_err(|_| LockstepError::Quiet("runtime", PATIENCE.as_secs()))?
            .ok_or(LockstepError::Closed)?;
        if message.topic.ends_with("/_sync") {
            return envelope::decode_sync(&message.payload)
                .map(Ok)
                .map_err(|reason| {
                    LockstepError::Refused(format!("a _sync message from the runtime: {reason}"))
                });
        }
        let command = envelope::decode_command(&message.payload).map_err(|reason| {
            LockstepError::Refused(format!("a command on {}: {reason}", message.topic))
        })?;
        self.counts.commands += 1;
        Ok(Err(command))
    }

    /// The next `_sync` message; commands that come first are kept for the answer.
    fn next_sync(&mut self) -> Result<Sync, LockstepError> {
        loop {
            match self.next_message()? {
                Ok(sync) => return Ok(sync),
                Err(command) => {
                    self.received.insert(command.id.clone(), command);
                }
            }
        }
    }

    /// Publishes the request and waits for its answer; acknowledges every command in it.
    fn ask(&mut self, ask: Ask, now: PlantTime) -> Result<Answer, LockstepError> {
        self.now = self.now.max(now);
        let now = self.now;
        let seq = self.next_seq();
        let request = Request {
            id: format!("Q{seq}"),
            source: PLANT_SOURCE.to_owned(),
            seq,
            at: now.at(self.start),
            ask,
        };
        self.counts.requests += 1;
        let topic = self.events_topic();
        self.publish(topic, envelope::encode_request(&request))?;
        let commands = loop {
            if let Sync::Answered {
                correlation,
                commands,
            } = self.next_sync()?
                && correlation == request.id
            {
                break commands;
            }
        };
        let mut actions = Vec::with_capacity(commands.len());
        for id in &commands {
            // Published before the answer, on the same connection: already here.
            let command = self
                .received
                .remove(id)
                .ok_or_else(|| LockstepError::Answer {
                    request: request.id.clone(),
                    why: format!("command `{id}` it names never came"),
                })?;
            actions.push(command.action);
        }
        let answer = request
            .ask
            .answer(&actions, &self.master, self.start)
            .map_err(|e| LockstepError::Answer {
                request: request.id.clone(),
                why: e.to_string(),
            })?;
        let at = request.at;
        for (id, action) in commands.iter().zip(&actions) {
            let mut ack = Ack::new(id, AckStatus::Completed, at);
            if let (Action::SetPoint { param, .. }, Answer::ProcessParams(values)) =
                (action, &answer)
            {
                // The value the step runs at, clamped into its range as the twin runs it.
                ack.read_back = read_back(&self.master, &request.ask, param, values);
            }
            self.ack(&ack)?;
        }
        Ok(answer)
    }
}

fn read_back(master: &MasterData, ask: &Ask, param: &str, values: &[f64]) -> Option<f64> {
    let Ask::ProcessParams {
        product,
        step,
        specs,
        ..
    } = ask
    else {
        return None;
    };
    let step = master.plant().products.get(*product)?.routing.get(*step)?;
    let i = step.params.iter().position(|p| p.name == param)?;
    let spec = specs.get(i)?;
    values.get(i).map(|v| v.clamp(spec.min, spec.max))
}

fn lock(wire: &Mutex<Wire>) -> std::sync::MutexGuard<'_, Wire> {
    wire.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The twin's observer: every event and reading goes out in the contract.
struct WireObserver(Arc<Mutex<Wire>>);

impl Observer for WireObserver {
    fn wants_events(&self) -> bool {
        true
    }

    fn event(&mut self, event: PlantEvent) {
        let mut wire = lock(&self.0);
        if wire.failure.is_some() {
            return;
        }
        let seq = wire.next_seq();
        let at = PlantTime::since(wire.start, event.at);
        wire.now = wire.now.max(at);
        let payload = envelope::encode_event(&event, PLANT_SOURCE, &format!("E{seq}"), seq);
        wire.counts.events += 1;
        let topic = wire.events_topic();
        if let Err(e) = wire.publish(topic, payload) {
            wire.failure = Some(e);
        }
    }

    fn wants_telemetry(&self) -> bool {
        true
    }

    fn telemetry(&mut self, readings: [TelemetryReading; 3]) {
        let mut wire = lock(&self.0);
        if wire.failure.is_some() {
            return;
        }
        // One message per machine and instant (docs/CONNECT.md).
        let values: serde_json::Map<String, serde_json::Value> = readings
            .iter()
            .map(|r| (r.signal.clone(), r.value.into()))
            .collect();
        let body = serde_json::json!({"ts": readings[0].at.0, "values": values});
        let topic = format!("{}/{}/{}", json::ROOT, wire.site, readings[0].machine);
        let payload = serde_json::to_vec(&body).unwrap_or_default();
        wire.counts.telemetry_messages += 1;
        if let Err(e) = wire.publish(topic, payload) {
            wire.failure = Some(e);
        }
    }
}

/// The twin's policy: every call is a request to the runtime. After a failure it answers as the
/// tier-0 rules would, so the run ends and reports the failure.
struct AskingPolicy {
    wire: Arc<Mutex<Wire>>,
    fallback: aifactory_plant::BaselinePolicy,
    name: String,
    wants_floor: bool,
    replan_on_service: bool,
    /// Lots the last release answered with, by order number, until the twin opens the order.
    lots: HashMap<usize, Vec<Lot>>,
}

impl AskingPolicy {
    fn ask(&mut self, ask: Ask, now: PlantTime) -> Option<Answer> {
        let mut wire = lock(&self.wire);
        if wire.failure.is_some() {
            return None;
        }
        match wire.ask(ask, now) {
            Ok(answer) => Some(answer),
            Err(e) => {
                wire.failure = Some(e);
                None
            }
        }
    }

    fn work_orders(candidates: &[QueuedOp]) -> Vec<String> {
        candidates
            .iter()
            .map(|c| format!("WO-{:06}", c.job))
            .collect()
    }
}

impl Policy for AskingPolicy {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn dispatch(&mut self, now: PlantTime, machine: MachineId, candidates: &[QueuedOp]) -> usize {
        let ask = Ask::Dispatch {
            now,
            machine,
            candidates: candidates.to_vec(),
            orders: Self::work_orders(candidates),
        };
        match self.ask(ask, now) {
            Some(Answer::Dispatch(i)) => i,
            _ => self.fallback.dispatch(now, machine, candidates),
        }
    }

    fn start_maintenance(&mut self, view: &MachineView) -> bool {
        match self.ask(Ask::StartMaintenance { view: *view }, view.now) {
            Some(Answer::StartMaintenance(b)) => b,
            _ => self.fallback.start_maintenance(view),
        }
    }

    fn process_params(
        &mut self,
        machine: MachineId,
        product: usize,
        step: usize,
        specs: &[ParamSpec],
    ) -> Vec<f64> {
        let now = lock(&self.wire).now;
        let ask = Ask::ProcessParams {
            machine,
            product,
            step,
            specs: specs.to_vec(),
        };
        match self.ask(ask, now) {
            Some(Answer::ProcessParams(values)) => values,
            _ => self.fallback.process_params(machine, product, step, specs),
        }
    }

    fn release(&mut self, now: PlantTime, pending: &[OrderView]) -> Vec<usize> {
        let ask = Ask::Release {
            now,
            pending: pending.to_vec(),
            orders: pending
                .iter()
                .map(|o| format!("SO-{:06}", o.order + 1))
                .collect(),
        };
        match self.ask(ask, now) {
            Some(Answer::Release { chosen, lots }) => {
                for (i, lots) in lots {
                    if let Some(view) = pending.get(i) {
                        self.lots.insert(view.order, lots);
                    }
                }
                chosen
            }
            _ => self.fallback.release(now, pending),
        }
    }

    fn lots(&mut self, now: PlantTime, order: &OrderView, lot_size: u32) -> Vec<Lot> {
        match self.lots.remove(&order.order) {
            Some(lots) => lots,
            None => self.fallback.lots(now, order, lot_size),
        }
    }

    fn purchase(&mut self, now: PlantTime, stock: &[MaterialView]) -> Vec<PurchaseRequest> {
        let ask = Ask::Purchase {
            now,
            stock: stock.to_vec(),
        };
        match self.ask(ask, now) {
            Some(Answer::Purchase(requests)) => requests,
            _ => self.fallback.purchase(now, stock),
        }
    }

    fn wants_floor(&self) -> bool {
        self.wants_floor
    }

    fn plan(&mut self, floor: &Floor) {
        let now = floor.now;
        let _ = self.ask(
            Ask::Plan {
                floor: floor.clone(),
            },
            now,
        );
    }

    fn replan_on_service(&self) -> bool {
        self.replan_on_service
    }

    fn hold_until(
        &mut self,
        now: PlantTime,
        machine: MachineId,
        candidates: &[QueuedOp],
    ) -> Option<PlantTime> {
        let ask = Ask::HoldUntil {
            now,
            machine,
            candidates: candidates.to_vec(),
            orders: Self::work_orders(candidates),
        };
        match self.ask(ask, now) {
            Some(Answer::HoldUntil(until)) => until,
            _ => None,
        }
    }
}

/// What the twin's side of a lockstep run gave.
#[derive(Debug)]
pub struct PlantRun {
    pub result: SimResult,
    pub counts: PlantCounts,
    /// The policy the runtime said it runs.
    pub policy: String,
}

/// The twin's side: connects, hands over its records on file, runs the runtime's trial batches,
/// then runs `days` asking for every decision, and finally waits for the runtime to answer a
/// heartbeat at the end (so it has taken everything). Call from outside the async runtime
/// `rt` belongs to; `day` is called after each simulated day.
pub fn run_plant(
    rt: &Handle,
    model: Arc<PlantModel>,
    broker: &BrokerAddress,
    client_id: &str,
    seed: u64,
    days: f64,
    day: &mut dyn FnMut(u64),
) -> Result<PlantRun, LockstepError> {
    let mut wire = Wire::connect(rt, &model, broker, client_id, true)?;
    let start = wire.start;
    // The records a plant has on file before day 0.
    let (order_book, maintenance) = records_on_file(&model, seed);
    let records = Records {
        order_book,
        maintenance: wire
            .master
            .machine_ids()
            .map(str::to_owned)
            .zip(maintenance)
            .collect(),
    };
    let seq = wire.next_seq();
    let payload = envelope::encode_records(&records, PLANT_SOURCE, &format!("E{seq}"), seq, start);
    let topic = wire.events_topic();
    wire.publish(topic, payload)?;
    // Trial batches until the runtime is ready.
    let mut trials = twin_trials(&model, seed);
    let (name, wants_floor, replan_on_service) = loop {
        match wire.next_message()? {
            Ok(Sync::Ready {
                policy,
                wants_floor,
                replan_on_service,
            }) => break (policy, wants_floor, replan_on_service),
            Ok(Sync::Answered { .. }) => {}
            Err(command) => trial(&mut wire, &mut trials, command)?,
        }
    };
    let wire = Arc::new(Mutex::new(wire));
    let policy = AskingPolicy {
        wire: Arc::clone(&wire),
        fallback: aifactory_plant::BaselinePolicy::default(),
        name: name.clone(),
        wants_floor,
        replan_on_service,
        lots: HashMap::new(),
    };
    let mut observer = WireObserver(Arc::clone(&wire));
    let mut sim = Simulation::new(Arc::clone(&model), seed, Box::new(policy), None);
    let whole_days = days.floor() as u64;
    for d in 1..=whole_days {
        sim.run_until(PlantTime::from_days(d as f64), &mut observer);
        day(d);
    }
    sim.run_until(PlantTime::from_days(days), &mut observer);
    let result = sim.finish();
    drop(observer);
    let mut wire = Wire::take_back(wire)?;
    if let Some(failure) = wire.failure.take() {
        return Err(failure);
    }
    // The last word: a heartbeat at the end, answered once the runtime has taken everything.
    let seq = wire.next_seq();
    let end = PlantTime::from_days(days).at(start);
    let heartbeat = serde_json::json!({
        "spec": envelope::SPEC, "id": format!("H{seq}"), "source": PLANT_SOURCE, "seq": seq,
        "type": "heartbeat", "time": end.0, "data": {"answer": true},
    });
    let topic = wire.events_topic();
    wire.publish(topic, serde_json::to_vec(&heartbeat).unwrap_or_default())?;
    let id = format!("H{seq}");
    loop {
        if let Sync::Answered { correlation, .. } = wire.next_sync()?
            && correlation == id
        {
            break;
        }
    }
    let counts = wire.counts.clone();
    let Wire { rt, link, .. } = wire;
    rt.block_on(link.close());
    Ok(PlantRun {
        result,
        counts,
        policy: name,
    })
}

/// How often a paced plant takes in commands, publishes acknowledgements and a heartbeat.
const PACED_STEP_MS: u64 = 60_000;

/// How the twin runs as a plant that does not wait.
#[derive(Debug, Clone, Default)]
pub struct PacedPlant {
    /// Seconds between a machine's telemetry readings (`None`: the plant file's period).
    pub telemetry_period_s: Option<f64>,
    /// Plant seconds per second of the clock; `None`: as fast as it can.
    pub pace: Option<(f64, crate::Clock)>,
    /// Sales orders wait for a `release` command (the runtime plans releases) instead of
    /// being released by the plant's own rule as they arrive.
    pub releases_by_command: bool,
    /// Set to end the run early, at the next plant minute (the runtime beside it failed).
    pub stop: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// The twin as a plant that does not wait: it publishes its events and telemetry in the
/// contract, paced at `pace` (plant seconds per second of `clock`; `None`: as fast as it can),
/// and carries out the commands that arrive on `_commands` when they arrive, acknowledging each
/// on `_acks` — a dispatch list, a maintenance order, a set-point or a hold through
/// [`aifactory_twin::Commanded`], deciding the rest by the tier-0 rules as a plant's own
/// controllers would. A machine that is free with work waiting waits two plant minutes for a
/// dispatch list before its rules choose. Every plant minute it takes in what arrived and says
/// its time with a heartbeat — after a minute with events one that asks the runtime to decide on
/// them now (`answer`), without waiting for the answer. Call from outside the async runtime `rt` belongs to.
#[allow(clippy::too_many_arguments)]
pub fn run_paced_plant(
    rt: &Handle,
    model: Arc<PlantModel>,
    broker: &BrokerAddress,
    client_id: &str,
    seed: u64,
    days: f64,
    how: PacedPlant,
    day: &mut dyn FnMut(u64),
) -> Result<PlantRun, LockstepError> {
    let PacedPlant {
        telemetry_period_s,
        pace,
        releases_by_command,
        stop,
    } = how;
    let wire = Wire::connect(rt, &model, broker, client_id, false)?;
    let start = wire.start;
    let wire = Arc::new(Mutex::new(wire));
    let inbox = aifactory_twin::CommandInbox::new();
    // A free machine with work waiting gives the runtime's dispatch list two plant minutes:
    // commands are taken in once a minute, so at least once while it waits.
    let mut policy = aifactory_twin::Commanded::new(
        aifactory_plant::BaselinePolicy::default(),
        &model,
        inbox.clone(),
    )
    .waiting_for_dispatch(PlantTime(2 * PACED_STEP_MS));
    if releases_by_command {
        policy = policy.releasing_on_command();
    }
    // Trial batches run on the plant's trial line, apart from production, as they come.
    let mut trials = twin_trials(&model, seed);
    let name = policy.name();
    let mut observer = WireObserver(Arc::clone(&wire));
    let mut sim = Simulation::new(
        Arc::clone(&model),
        seed,
        Box::new(policy),
        telemetry_period_s,
    );
    let began = pace.as_ref().map(|(_, clock)| clock.elapsed());
    let end = PlantTime::from_days(days);
    let mut at = 0u64;
    let mut whole_days = 0u64;
    let mut events_before = 0u64;
    while at < end.0 {
        if stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
        {
            break;
        }
        at = (at + PACED_STEP_MS).min(end.0);
        sim.run_until(PlantTime(at), &mut observer);
        {
            let mut wire = lock(&wire);
            for ack in inbox.take_acks() {
                wire.ack(&ack)?;
            }
            // Every step ends with the plant's time. After a step that published events it also
            // promises that nothing earlier follows (the twin is one source, in order), so the
            // runtime decides on them now instead of holding them for its reorder window. It
            // goes out before the step's wall time has passed, so the runtime's answer is in
            // by the next step: at 3,600× a plant minute is 17 ms, and a free machine waits
            // only two of them for its dispatch list. A quiet step's plain heartbeat lets
            // commands expire on time. The twin never waits for the answer.
            let seq = wire.next_seq();
            let mut heartbeat = serde_json::json!({
                "spec": envelope::SPEC, "id": format!("H{seq}"), "source": PLANT_SOURCE,
                "seq": seq, "type": "heartbeat", "time": PlantTime(at).at(start).0,
            });
            if wire.counts.events != events_before {
                heartbeat["data"] = serde_json::json!({ "answer": true });
            }
            let topic = wire.events_topic();
            wire.publish(topic, serde_json::to_vec(&heartbeat).unwrap_or_default())?;
            events_before = wire.counts.events;
            if let Some(failure) = wire.failure.take() {
                return Err(failure);
            }
        }
        if let (Some((speed, clock)), Some(began)) = (&pace, began) {
            let due = began + Duration::from_secs_f64(at as f64 / 1000.0 / speed);
            if let Some(wait) = due.checked_sub(clock.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let mut wire = lock(&wire);
        // What came in this step's wall time, in the order it came: the twin takes it in its
        // next step.
        let mut release = false;
        while let Ok(message) = wire.incoming.try_recv() {
            match envelope::decode_command(&message.payload) {
                Ok(command) => {
                    wire.counts.commands += 1;
                    match command.action {
                        Action::TrialBatch { .. } => trial(&mut wire, &mut trials, command)?,
                        Action::Release { .. } => {
                            release = true;
                            inbox.send(command);
                        }
                        _ => inbox.send(command),
                    }
                }
                Err(reason) => {
                    return Err(LockstepError::Refused(format!(
                        "a command on {}: {reason}",
                        message.topic
                    )));
                }
            }
        }
        drop(wire);
        if release {
            sim.review_releases();
        }
        while whole_days < at / 86_400_000 {
            whole_days += 1;
            day(whole_days);
        }
    }
    let result = sim.finish();
    drop(observer);
    let wire = Wire::take_back(wire)?;
    let counts = wire.counts.clone();
    let Wire { rt, link, .. } = wire;
    rt.block_on(link.close());
    Ok(PlantRun {
        result,
        counts,
        policy: name,
    })
}

fn trial(
    wire: &mut Wire,
    trials: &mut impl FnMut(usize, usize, &[f64]) -> Option<f64>,
    command: Command,
) -> Result<(), LockstepError> {
    let at = wire.start;
    let ack = match &command.action {
        Action::TrialBatch {
            product,
            step,
            values,
        } => match wire.master.product_index(product) {
            Some(p) => {
                wire.counts.trial_batches += 1;
                match trials(p, *step, values) {
                    Some(y) => {
                        let mut ack = Ack::new(&command.id, AckStatus::Completed, at);
                        ack.read_back = Some(y);
                        ack
                    }
                    None => Ack::new(&command.id, AckStatus::Failed, at)
                        .because("the trial line gave no yield for these values"),
                }
            }
            None => Ack::new(&command.id, AckStatus::Rejected, at)
                .because(format!("product `{product}` is not in the plant")),
        },
        other => Ack::new(&command.id, AckStatus::Rejected, at).because(format!(
            "`{}` before the run starts; only trial batches are run then",
            other.name()
        )),
    };
    wire.ack(&ack)
}

/// The runtime's side of a lockstep run, connected and subscribed: start the plant after
/// [`Service::connect`] returns, then [`Service::run`].
pub struct Service {
    rt: Handle,
    link: Link,
    incoming: mpsc::Receiver<Incoming>,
    plant: Plant,
    master: MasterData,
    tier: u8,
    links: Links,
    seed: u64,
    days: f64,
    seq: u64,
    /// Messages that came while the service waited for something else.
    held: VecDeque<Incoming>,
    counts: ServiceCounts,
    /// Why a trial batch got no answer: the coordinator cannot be told, so the run stops after
    /// its build.
    failure: Option<LockstepError>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("plant", &self.plant.plant.id)
            .field("tier", &self.tier)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

/// What the runtime's side did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceCounts {
    pub events: u64,
    pub requests: u64,
    /// Requests refused (a view outside the plant): answered with no command.
    pub refused: u64,
    pub commands: u64,
    pub trial_batches: u64,
    /// Acknowledgements by status.
    pub acks: BTreeMap<String, u64>,
}

/// What a lockstep run gave the runtime: its ledger, assessed, and what it did.
#[derive(Debug)]
pub struct ServiceRun {
    pub records: Vec<aifactory_core::LedgerRecord>,
    pub closed_loop: Option<aifactory_coordinator::LoopCounts>,
    pub counts: ServiceCounts,
}

impl Service {
    /// Connects to the broker and subscribes to the plant's events and acknowledgements.
    #[allow(clippy::too_many_arguments)]
    pub async fn connect(
        plant: Plant,
        broker: &BrokerAddress,
        client_id: &str,
        tier: u8,
        links: Links,
        seed: u64,
        days: f64,
    ) -> Result<Service, LockstepError> {
        let site = plant.plant.id.clone();
        let (link, incoming) =
            Link::connect(broker, client_id, &envelope::plant_topics(&site), false)
                .await
                .map_err(|source| LockstepError::Connect {
                    host: broker.host.clone(),
                    port: broker.port,
                    source,
                })?;
        Ok(Service {
            rt: Handle::current(),
            link,
            incoming,
            master: MasterData::new(plant.clone()),
            plant,
            tier,
            links,
            seed,
            days,
            seq: 0,
            held: VecDeque::new(),
            counts: ServiceCounts::default(),
            failure: None,
        })
    }

    fn next(&mut self) -> Result<Incoming, LockstepError> {
        if let Some(m) = self.held.pop_front() {
            return Ok(m);
        }
        let incoming = &mut self.incoming;
        self.rt
            .block_on(async { tokio::time::timeout(PATIENCE, incoming.recv()).await })
            .map_err(|_| LockstepError::Quiet("plant", PATIENCE.as_secs()))?
            .ok_or(LockstepError::Closed)
    }

    fn publish(&mut self, topic: String, payload: Vec<u8>) -> Result<(), LockstepError> {
        self.rt
            .block_on(self.link.publish_waiting(topic, payload, false))
            .map_err(LockstepError::Publish)
    }

    fn send(&mut self, command: &Command, at: Timestamp) -> Result<(), LockstepError> {
        self.seq += 1;
        let payload = envelope::encode_command(command, RUNTIME_SOURCE, self.seq, at);
        let topic = envelope::command_topic(&self.plant.plant.id, command.action.machine());
        self.counts.commands += 1;
        self.publish(topic, payload)
    }

    fn answer(
        &mut self,
        correlation: &str,
        at: Timestamp,
        commands: &[String],
    ) -> Result<(), LockstepError> {
        self.seq += 1;
        let heartbeat = envelope::Heartbeat {
            id: correlation.to_owned(),
            source: RUNTIME_SOURCE.to_owned(),
            seq: self.seq,
            at,
            answer: true,
        };
        let payload = envelope::encode_answer(&heartbeat, RUNTIME_SOURCE, self.seq, commands);
        let topic = envelope::sync_topic(&self.plant.plant.id);
        self.publish(topic, payload)
    }

    fn count_ack(&mut self, status: AckStatus) {
        *self
            .counts
            .acks
            .entry(status.as_str().to_owned())
            .or_default() += 1;
    }

    /// Runs a trial batch on the plant's trial line and waits for its yield.
    fn trial(&mut self, product: usize, step: usize, values: &[f64]) -> Option<f64> {
        if self.failure.is_some() {
            return None;
        }
        let id = format!("T{}", self.counts.trial_batches + 1);
        self.counts.trial_batches += 1;
        let command = Command {
            id: id.clone(),
            decision: None,
            expires: None,
            action: Action::TrialBatch {
                product: self.master.plant().products.get(product)?.id.clone(),
                step,
                values: values.to_vec(),
            },
        };
        let start = self.plant.start().0;
        if let Err(e) = self.send(&command, start) {
            self.failure = Some(e);
            return None;
        }
        let mut skipped = Vec::new();
        let result = loop {
            let m = match self.next() {
                Ok(m) => m,
                Err(e) => {
                    self.failure = Some(e);
                    break None;
                }
            };
            match envelope::decode(&m.topic, &m.payload) {
                Ok(Message::Ack(a)) if a.ack.command == id => {
                    self.count_ack(a.ack.status);
                    break (a.ack.status == AckStatus::Completed)
                        .then_some(a.ack.read_back)
                        .flatten();
                }
                _ => skipped.push(m),
            }
        };
        self.held.extend(skipped);
        result
    }

    /// Takes the plant's records, builds the coordinator (running its trial batches on the
    /// plant), says it is ready, then answers every request until the heartbeat at the end.
    /// Blocks: call from outside the async runtime (e.g. `spawn_blocking`).
    pub fn run(mut self) -> Result<ServiceRun, LockstepError> {
        let records = loop {
            let m = self.next()?;
            if let Ok(Message::Records(records)) = envelope::decode(&m.topic, &m.payload) {
                break records;
            }
        };
        let maintenance: Vec<Vec<(f64, bool)>> = self
            .master
            .machine_ids()
            .map(|m| records.maintenance.get(m).cloned().unwrap_or_default())
            .collect();
        let log = DecisionLog::new();
        let tier = self.tier;
        let coordinator = |source| LockstepError::Coordinator { tier, source };
        let master = self.master.clone();
        let configured = {
            let setup = Setup {
                master: &master,
                tier: Tier::from_number(tier).map_err(coordinator)?,
                links: self.links,
                log: Some(&log),
                seed: self.seed,
                order_book: &records.order_book,
                maintenance_records: &maintenance,
            };
            let mut trial = |p: usize, s: usize, v: &[f64]| self.trial(p, s, v);
            aifactory_coordinator::build(&setup, Some(&mut trial)).map_err(coordinator)?
        };
        if let Some(failure) = self.failure.take() {
            return Err(failure);
        }
        let mut policy = configured.policy;
        let mut observer = configured.observer;
        let start = self.plant.start().0;
        self.seq += 1;
        let ready = Sync::Ready {
            policy: policy.name(),
            wants_floor: policy.wants_floor(),
            replan_on_service: policy.replan_on_service(),
        };
        let payload = envelope::encode_ready(RUNTIME_SOURCE, self.seq, start, &ready);
        let topic = envelope::sync_topic(&self.plant.plant.id);
        self.publish(topic, payload)?;
        let end = PlantTime::from_days(self.days).at(start);
        loop {
            let m = self.next()?;
            match envelope::decode(&m.topic, &m.payload) {
                Ok(Message::Event(arrival)) => {
                    self.counts.events += 1;
                    if let Some(o) = observer.as_mut() {
                        o.event(arrival.event);
                    }
                }
                Ok(Message::Request(request)) => {
                    self.counts.requests += 1;
                    let mut ids = Vec::new();
                    if request.ask.refusal(&master).is_some() {
                        self.counts.refused += 1;
                    } else {
                        let actions = request.ask.put(policy.as_mut(), &master, start);
                        for (k, action) in actions.into_iter().enumerate() {
                            let command = Command {
                                id: format!("C-{}-{k}", request.id),
                                decision: None,
                                expires: None,
                                action,
                            };
                            self.send(&command, request.at)?;
                            ids.push(command.id);
                        }
                    }
                    self.answer(&request.id, request.at, &ids)?;
                }
                Ok(Message::Ack(a)) => self.count_ack(a.ack.status),
                Ok(Message::Heartbeat(h)) if h.answer => {
                    self.answer(&h.id, h.at, &[])?;
                    if h.at >= end {
                        break;
                    }
                }
                Ok(Message::Heartbeat(_) | Message::Records(_)) => {}
                // Telemetry has topics of its own; on these two, a message the contract
                // refuses would make this run differ from the one in process: say so.
                Err(reason) => {
                    return Err(LockstepError::Refused(format!(
                        "a message on {}: {reason}",
                        m.topic
                    )));
                }
            }
        }
        let Service { rt, link, .. } = self;
        rt.block_on(link.close());
        Ok(ServiceRun {
            records: log.drain(),
            closed_loop: configured.closed_loop.map(|c| c.counts()),
            counts: self.counts,
        })
    }
}

/// A rung over the wire: the runtime's ledger assessed with the plant's KPIs, as
/// [`crate::ladder::run_rung`] gives it in process.
pub fn rung(
    plant: &Plant,
    seed: u64,
    days: f64,
    kpis: Kpis,
    run: ServiceRun,
) -> Result<RungRun, LockstepError> {
    let machines = u32::try_from(plant.machines.len()).unwrap_or(u32::MAX);
    Ok(assess_rung(
        seed,
        kpis,
        run.records,
        machines,
        days,
        run.closed_loop,
    )?)
}
