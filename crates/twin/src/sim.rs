//! The event loop: simulated time, the plant's state, and the handlers that move it.

use crate::energy::EnergyMeter;
use crate::model::PlantModel;
use crate::physics::{self, Activity};
use crate::rng::{Stream, StreamKind, stream};
use aifactory_core::time::weekday_from_days;
use aifactory_core::{EventKind, KpiInputs, Kpis, PlantEvent, TelemetryReading, Timestamp};
use aifactory_plant::MachineId;
use aifactory_plant::{
    Floor, FloorAlternative, FloorJob, FloorMachine, MachineView, MaterialView, Observer,
    OrderView, ParamSpec, PlantTime, Policy, QueuedOp, lots_cover, standard_lots,
};
use rand::Rng;
use rand_distr::{Binomial, Distribution, Exp1, LogNormal, Poisson, StandardNormal};
use serde::Serialize;
use serde_json::json;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use aifactory_plant::projection::ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    DemandDay(u32),
    OrderArrival(usize),
    OpDone(MachineId),
    Failure(MachineId),
    RepairDone(MachineId),
    MaintenanceDone(MachineId),
    /// A held machine is offered its work again.
    Wake(MachineId),
    Telemetry(MachineId),
    Review,
    /// Pending sales orders offered for release outside the periodic review (a release
    /// command came in).
    ReleaseReview,
    PurchaseArrival(usize),
}

#[derive(Debug, PartialEq, Eq)]
struct Entry {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest event, FIFO among equals.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Idle,
    Busy,
    Down,
    Maintenance,
}

#[derive(Debug, Clone)]
struct Running {
    job: usize,
    params: Vec<f64>,
    setup_left_ms: u64,
    run_left_ms: u64,
    /// Wear gained per running hour during this operation.
    wear_rate_h: f64,
    load: f64,
    wear_at_start: f64,
    unit_ideal_s: f64,
}

#[derive(Debug, Clone)]
struct MachineState {
    status: Status,
    since: u64,
    wear: f64,
    hazard_budget: f64,
    run_h_since_pm: f64,
    last_product: Option<usize>,
    running: Option<Running>,
    queue: Vec<usize>,
    temperature: f64,
    last_reading: (f64, f64, f64),
    last_sample_ms: u64,
    /// When the plant expects a machine that is down or in service to be back.
    back_at: u64,
    /// Kept idle by the policy until then (twin ms), work waiting.
    held_until: Option<u64>,
    rng_failure: Stream,
    rng_sensor: Stream,
    rng_quality: Stream,
    rng_repair: Stream,
    run_ms: u64,
    setup_ms: u64,
    breakdown_ms: u64,
    maintenance_ms: u64,
    idle_ms: u64,
    failures: u64,
    preventive: u64,
}

#[derive(Debug, Clone)]
struct Job {
    number: u32,
    product: usize,
    /// Units started (the planned quantity of the lot).
    target: u32,
    /// Units its purpose needs: good units beyond go to the finished stock, a shortfall is
    /// taken from the stock or made up by a new work order.
    required: u32,
    quantity: u32,
    sales_order: Option<usize>,
    parent: Option<usize>,
    due: u64,
    released: u64,
    step: usize,
    waiting_children: u32,
    ready_since: u64,
    blocked: bool,
    done: bool,
}

/// What a work order is for: the assembly that waits for it, the sales order, the due date.
#[derive(Debug, Clone, Copy)]
struct Purpose {
    parent: Option<usize>,
    sales_order: Option<usize>,
    due: u64,
}

#[derive(Debug, Clone)]
struct SalesOrder {
    product: usize,
    quantity: u32,
    received: u64,
    due: u64,
    delivered: u32,
    released: bool,
    released_at: u64,
    completed: Option<u64>,
}

#[derive(Debug, Clone)]
struct MaterialState {
    on_hand: f64,
    on_order: f64,
    last_change: u64,
}

#[derive(Debug, Clone)]
struct PurchaseOrder {
    material: usize,
    quantity: f64,
}

/// Accumulated totals that become KPIs.
#[derive(Debug, Clone, Default)]
struct Counters {
    ideal_run_s: f64,
    op_units: u64,
    op_good: u64,
    finished_good: u64,
    scrapped: u64,
    orders_due: u64,
    orders_on_time: u64,
    orders_completed: u64,
    tardiness_h: f64,
    wip_units: f64,
    wip_unit_ms: f64,
    wip_last: u64,
    maintenance_cost: f64,
    tardiness_cost: f64,
    scrap_cost: f64,
    material_holding_cost: f64,
    stockouts: u64,
    events: u64,
    work_orders: u64,
    order_lead_time_h: f64,
}

/// One run of the twin: a plant, a seed and a policy, advanced with [`Simulation::run_until`].
pub struct Simulation {
    model: Arc<PlantModel>,
    state: State,
}

/// Everything that changes during a run. Kept apart from the (shared, immutable) model so that
/// handlers borrow the model as a plain reference instead of touching the `Arc` per event.
struct State {
    policy: Box<dyn Policy + Send>,
    seed: u64,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Entry>,
    machines: Vec<MachineState>,
    jobs: Vec<Job>,
    /// Jobs before this index are all done (a cursor so floors skip finished history).
    first_open_job: usize,
    orders: Vec<SalesOrder>,
    pending_orders: Vec<usize>,
    /// Good units per product made beyond what their work orders needed, used first by later
    /// orders and shortfalls of the same product.
    finished_stock: Vec<u32>,
    /// Orders generated for today, in arrival order; the first is in the event queue.
    arrivals: VecDeque<usize>,
    order_views: Vec<OrderView>,
    materials: Vec<MaterialState>,
    purchases: Vec<PurchaseOrder>,
    rng_demand: Stream,
    rng_supply: Stream,
    energy: EnergyMeter,
    counters: Counters,
    start: Timestamp,
    start_local_day: i64,
    telemetry_period_ms: u64,
    candidates: Vec<QueuedOp>,
    /// Sales orders arrive only on days before this one (`None`: demand never stops).
    demand_days: Option<u32>,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("plant", &self.model.plant().plant.id)
            .field("policy", &self.state.policy.name())
            .field("seed", &self.state.seed)
            .field("now", &self.state.now)
            .finish_non_exhaustive()
    }
}

/// Per-machine totals, including the hidden wear (the twin's ground truth, for evaluating skills).
#[derive(Debug, Clone, Serialize)]
pub struct MachineSummary {
    pub machine: String,
    pub run_h: f64,
    pub setup_h: f64,
    pub breakdown_h: f64,
    pub maintenance_h: f64,
    pub idle_h: f64,
    pub availability: f64,
    pub failures: u64,
    pub preventive_maintenance: u64,
    pub hidden_wear: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnergyByPeriod {
    pub period: String,
    pub kwh: f64,
    pub cost: f64,
}

/// Everything a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct SimResult {
    pub plant: String,
    pub policy: String,
    pub seed: u64,
    pub kpis: Kpis,
    pub energy_by_period: Vec<EnergyByPeriod>,
    pub machines: Vec<MachineSummary>,
}

/// A machine as a live view shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveMachine {
    pub id: String,
    pub name: String,
    pub work_centre: String,
    /// `idle`, `busy`, `down` or `maintenance`.
    pub state: &'static str,
    /// The work order running on it, when busy.
    pub work_order: Option<String>,
    pub step: Option<usize>,
    /// Work orders waiting at it.
    pub queue: usize,
}

/// The state names of [`LiveMachine::state`].
struct StateName;

impl StateName {
    const IDLE: &'static str = "idle";
    const BUSY: &'static str = "busy";
    const DOWN: &'static str = "down";
    const MAINTENANCE: &'static str = "maintenance";
}

/// A sales order as a live view shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveOrder {
    pub id: String,
    pub product: String,
    pub quantity: u32,
    pub delivered: u32,
    pub received: Timestamp,
    pub due: Timestamp,
    pub released: bool,
    pub completed: Option<Timestamp>,
}

/// The plant now: see [`Simulation::live`].
#[derive(Debug, Clone)]
pub struct LiveView {
    pub now: Timestamp,
    pub sim_time: PlantTime,
    /// KPIs and machine totals so far.
    pub result: SimResult,
    pub machines: Vec<LiveMachine>,
    pub orders: Vec<LiveOrder>,
}

impl Simulation {
    /// A simulation at time zero. Telemetry follows the plant file unless `telemetry_period_s`
    /// overrides it (0 turns it off).
    pub fn new(
        model: Arc<PlantModel>,
        seed: u64,
        policy: Box<dyn Policy + Send>,
        telemetry_period_s: Option<f64>,
    ) -> Simulation {
        let state = State::new(&model, seed, policy, telemetry_period_s);
        Simulation { model, state }
    }

    pub fn now(&self) -> PlantTime {
        PlantTime(self.state.now)
    }

    pub fn events_processed(&self) -> u64 {
        self.state.counters.events
    }

    /// Processes every event up to and including `until`.
    pub fn run_until(&mut self, until: PlantTime, observer: &mut dyn Observer) {
        self.state.run_until(&self.model, until, observer);
    }

    /// Offers the pending sales orders for release a millisecond from now, in the next
    /// [`Simulation::run_until`]: a plant whose releases come by command takes one in without
    /// waiting for its periodic review, and after everything it already said.
    pub fn review_releases(&mut self) {
        let at = self.state.now + 1;
        self.state.schedule(at, Ev::ReleaseReview);
    }

    /// No sales orders arrive from day `days` on: a fixed order book that the plant can clear,
    /// so a policy's makespan (when the last order of the book is done) can be measured.
    pub fn stop_demand_after_days(&mut self, days: u32) {
        self.state.demand_days = Some(days);
    }

    /// Sales orders received or announced for later today that are not yet complete.
    pub fn open_orders(&self) -> usize {
        self.state
            .orders
            .iter()
            .filter(|o| o.completed.is_none())
            .count()
    }

    /// When the last sales order so far was completed.
    pub fn last_order_completed(&self) -> Option<PlantTime> {
        self.state
            .orders
            .iter()
            .filter_map(|o| o.completed)
            .max()
            .map(PlantTime)
    }

    /// Closes the books at the current time and computes the KPIs.
    pub fn finish(self) -> SimResult {
        self.state.finish(&self.model)
    }

    /// The plant as it stands now, for a live view: KPIs so far, each machine's state and
    /// totals, the sales orders received. Settles the accruals up to now (splitting an interval
    /// in two changes results only by rounding), so a run that is watched is repeatable only
    /// with the same watching times.
    pub fn live(&mut self) -> LiveView {
        let state = &mut self.state;
        let model = &self.model;
        state.settle_all(model);
        let result = state.result(model);
        let now = state.now;
        let machines = state
            .machines
            .iter()
            .zip(&model.plant().machines)
            .map(|(s, spec)| LiveMachine {
                id: spec.id.clone(),
                name: spec.name.clone(),
                work_centre: spec.work_centre.clone(),
                state: match s.status {
                    Status::Idle => StateName::IDLE,
                    Status::Busy => StateName::BUSY,
                    Status::Down => StateName::DOWN,
                    Status::Maintenance => StateName::MAINTENANCE,
                },
                work_order: s
                    .running
                    .as_ref()
                    .and_then(|r| state.jobs.get(r.job))
                    .map(|j| format!("WO-{:06}", j.number)),
                step: s
                    .running
                    .as_ref()
                    .and_then(|r| state.jobs.get(r.job))
                    .map(|j| j.step),
                queue: s.queue.len(),
            })
            .collect();
        let orders = state
            .orders
            .iter()
            .enumerate()
            .filter(|(_, o)| o.received <= now)
            .map(|(i, o)| LiveOrder {
                id: format!("SO-{:06}", i + 1),
                product: model.products[o.product].id.clone(),
                quantity: o.quantity,
                delivered: o.delivered.min(o.quantity),
                received: state.timestamp(o.received),
                due: state.timestamp(o.due),
                released: o.released,
                completed: o.completed.map(|t| state.timestamp(t)),
            })
            .collect();
        LiveView {
            now: state.timestamp(now),
            sim_time: PlantTime(now),
            result,
            machines,
            orders,
        }
    }
}

impl State {
    fn new(
        model: &PlantModel,
        seed: u64,
        policy: Box<dyn Policy + Send>,
        telemetry_period_s: Option<f64>,
    ) -> State {
        let (start, offset_min) = model.plant().start();
        let start_local_day = (start.0.div_euclid(1000) + i64::from(offset_min) * 60) / 86_400;
        let ambient = model.plant().twin.ambient_c;
        let machines = model
            .machines
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let mut rng_failure = stream(seed, StreamKind::Failure, i as u64);
                let hazard_budget: f64 = rng_failure.sample(Exp1);
                MachineState {
                    status: Status::Idle,
                    since: 0,
                    wear: spec.initial_wear,
                    hazard_budget,
                    run_h_since_pm: 0.0,
                    last_product: None,
                    running: None,
                    queue: Vec::new(),
                    temperature: ambient,
                    last_reading: (0.0, ambient, 0.0),
                    last_sample_ms: 0,
                    back_at: 0,
                    held_until: None,
                    rng_failure,
                    rng_sensor: stream(seed, StreamKind::Sensor, i as u64),
                    rng_quality: stream(seed, StreamKind::Quality, i as u64),
                    rng_repair: stream(seed, StreamKind::Repair, i as u64),
                    run_ms: 0,
                    setup_ms: 0,
                    breakdown_ms: 0,
                    maintenance_ms: 0,
                    idle_ms: 0,
                    failures: 0,
                    preventive: 0,
                }
            })
            .collect::<Vec<_>>();
        let materials = model
            .materials
            .iter()
            .map(|m| MaterialState {
                on_hand: m.initial_stock,
                on_order: 0.0,
                last_change: 0,
            })
            .collect();
        let telemetry_period_ms =
            ms(telemetry_period_s.unwrap_or(model.plant().twin.telemetry_period_s));
        let mut sim = State {
            energy: EnergyMeter::new(model),
            policy,
            seed,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            machines,
            jobs: Vec::new(),
            first_open_job: 0,
            orders: Vec::new(),
            pending_orders: Vec::new(),
            finished_stock: vec![0; model.products.len()],
            arrivals: VecDeque::new(),
            order_views: Vec::new(),
            materials,
            purchases: Vec::new(),
            rng_demand: stream(seed, StreamKind::Demand, 0),
            rng_supply: stream(seed, StreamKind::Supply, 0),
            counters: Counters::default(),
            start,
            start_local_day,
            telemetry_period_ms,
            candidates: Vec::new(),
            demand_days: None,
        };
        sim.schedule(0, Ev::DemandDay(0));
        sim.schedule(0, Ev::Review);
        if telemetry_period_ms > 0 {
            let n = sim.machines.len().max(1) as u64;
            for m in 0..sim.machines.len() {
                // Spread the machines' sampling instants over one period.
                sim.schedule(telemetry_period_ms * m as u64 / n, Ev::Telemetry(m));
            }
        }
        sim
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Entry {
            at,
            seq: self.seq,
            ev,
        });
    }

    fn timestamp(&self, at: u64) -> Timestamp {
        Timestamp(self.start.0 + at as i64)
    }

    fn run_until(&mut self, model: &PlantModel, until: PlantTime, observer: &mut dyn Observer) {
        while let Some(top) = self.queue.peek() {
            if top.at > until.0 {
                break;
            }
            let Some(entry) = self.queue.pop() else { break };
            self.now = entry.at;
            self.counters.events += 1;
            match entry.ev {
                Ev::DemandDay(day) => self.on_demand_day(model, day),
                Ev::OrderArrival(order) => self.on_order_arrival(model, order, observer),
                Ev::OpDone(m) => self.on_op_done(model, m, observer),
                Ev::Failure(m) => self.on_failure(model, m, observer),
                Ev::RepairDone(m) => self.on_repair_done(model, m, observer),
                Ev::MaintenanceDone(m) => self.on_maintenance_done(model, m, observer),
                Ev::Wake(m) => {
                    if self.machines[m].held_until.is_some_and(|t| t <= self.now) {
                        self.machines[m].held_until = None;
                        self.try_start(model, m, observer);
                    }
                }
                Ev::Telemetry(m) => self.on_telemetry(model, m, observer),
                Ev::Review => self.on_review(model, observer),
                Ev::ReleaseReview => {
                    self.release_orders(model, observer);
                    for m in 0..self.machines.len() {
                        self.try_start(model, m, observer);
                    }
                }
                Ev::PurchaseArrival(po) => self.on_purchase_arrival(model, po, observer),
            }
        }
        self.now = self.now.max(until.0);
    }

    fn emit(
        &self,
        model: &PlantModel,
        observer: &mut dyn Observer,
        kind: EventKind,
        machine: Option<MachineId>,
        order: Option<String>,
        detail: serde_json::Value,
    ) {
        observer.event(PlantEvent {
            at: self.timestamp(self.now),
            kind,
            machine: machine.map(|m| model.machines[m].id.clone()),
            order,
            detail,
        });
    }

    // ---- demand and orders -------------------------------------------------------------

    fn on_demand_day(&mut self, model: &PlantModel, day: u32) {
        if self.demand_days.is_some_and(|last| day >= last) {
            return;
        }
        let weekday = weekday_from_days(self.start_local_day + i64::from(day)) as usize;
        let day_start = u64::from(day) * 86_400_000;
        let mut todays = Vec::new();
        for (p, product) in model.plant().products.iter().enumerate() {
            let Some(d) = &product.demand else { continue };
            let noise: f64 = self.rng_demand.sample(StandardNormal);
            let mean_units = mean_units_on(d, f64::from(day), weekday, noise);
            let rate = mean_units / d.order_size;
            let count = if rate > 0.0 {
                Poisson::new(rate).map_or(0.0, |dist| dist.sample(&mut self.rng_demand)) as u32
            } else {
                0
            };
            for _ in 0..count {
                let at = day_start + self.rng_demand.random_range(0..86_400_000u64);
                let size: f64 = self.rng_demand.random_range(0.5..1.5);
                let quantity = (d.order_size * size).round().max(1.0) as u32;
                let (lo, hi) = (d.due_days[0], d.due_days[1]);
                let due_days = if hi > lo {
                    self.rng_demand.random_range(lo..=hi)
                } else {
                    lo
                };
                let order = self.orders.len();
                self.orders.push(SalesOrder {
                    product: p,
                    quantity,
                    received: at,
                    due: at + ms(due_days * 86_400.0),
                    delivered: 0,
                    released: false,
                    released_at: 0,
                    completed: None,
                });
                todays.push((at, order));
            }
        }
        // Arrivals are chained (only the next one sits in the event queue), which keeps the
        // queue short: a day can bring hundreds of orders.
        todays.sort_unstable();
        let chain_idle = self.arrivals.is_empty();
        self.arrivals
            .extend(todays.into_iter().map(|(_, order)| order));
        if chain_idle {
            self.schedule_next_arrival();
        }
        self.schedule(day_start + 86_400_000, Ev::DemandDay(day + 1));
    }

    fn schedule_next_arrival(&mut self) {
        if let Some(&next) = self.arrivals.front() {
            self.schedule(self.orders[next].received, Ev::OrderArrival(next));
        }
    }

    fn on_order_arrival(&mut self, model: &PlantModel, order: usize, observer: &mut dyn Observer) {
        if observer.wants_events() {
            let o = &self.orders[order];
            self.emit(
                model,
                observer,
                EventKind::OrderReceived,
                None,
                Some(format!("SO-{:06}", order + 1)),
                json!({
                    "product": model.products[o.product].id,
                    "quantity": o.quantity,
                    "due": self.timestamp(o.due).to_rfc3339(),
                }),
            );
        }
        self.arrivals.pop_front();
        self.schedule_next_arrival();
        self.pending_orders.push(order);
        self.release_orders(model, observer);
    }

    fn release_orders(&mut self, model: &PlantModel, observer: &mut dyn Observer) {
        if self.pending_orders.is_empty() {
            return;
        }
        let mut views = std::mem::take(&mut self.order_views);
        views.clear();
        views.extend(self.pending_orders.iter().map(|&o| OrderView {
            order: o,
            product: self.orders[o].product,
            quantity: self.orders[o].quantity,
            received: PlantTime(self.orders[o].received),
            due: PlantTime(self.orders[o].due),
        }));
        let mut chosen = self.policy.release(PlantTime(self.now), &views);
        chosen.retain(|&i| i < views.len());
        chosen.sort_unstable();
        chosen.dedup();
        if chosen.len() == views.len() {
            self.pending_orders.clear();
        } else {
            for &i in chosen.iter().rev() {
                self.pending_orders.remove(i);
            }
        }
        for &i in &chosen {
            self.release_order(model, views[i].order, observer);
        }
        self.order_views = views;
        if !chosen.is_empty() {
            self.replan(model);
        }
    }

    fn release_order(&mut self, model: &PlantModel, order: usize, observer: &mut dyn Observer) {
        let (product, quantity, received, due) = {
            let o = &mut self.orders[order];
            o.released = true;
            o.released_at = self.now;
            (o.product, o.quantity, o.received, o.due)
        };
        if observer.wants_events() {
            self.emit(
                model,
                observer,
                EventKind::OrderReleased,
                None,
                Some(format!("SO-{:06}", order + 1)),
                json!({ "quantity": quantity }),
            );
        }
        let lot_size = model.products[product].lot_size;
        let view = OrderView {
            order,
            product,
            quantity,
            received: PlantTime(received),
            due: PlantTime(due),
        };
        let mut lots = self.policy.lots(PlantTime(self.now), &view, lot_size);
        if !lots_cover(&lots, quantity) {
            lots = standard_lots(quantity, lot_size);
        }
        // What the finished stock covers is delivered now and taken off the last lots.
        let from_stock = self.take_from_stock(product, quantity);
        if from_stock > 0 {
            self.credit_order(model, order, from_stock, observer);
        }
        let mut covered = from_stock;
        for lot in lots.iter_mut().rev() {
            let cut = covered.min(lot.required);
            lot.required -= cut;
            lot.planned -= cut;
            covered -= cut;
        }
        for lot in lots.into_iter().filter(|l| l.required > 0) {
            let purpose = Purpose {
                parent: None,
                sales_order: Some(order),
                due,
            };
            self.create_job(
                model,
                product,
                (lot.required, lot.planned),
                purpose,
                observer,
            );
        }
    }

    /// Takes up to `wanted` units of `product` from the finished stock; returns how many.
    fn take_from_stock(&mut self, product: usize, wanted: u32) -> u32 {
        let taken = self.finished_stock[product].min(wanted);
        if taken > 0 {
            self.finished_stock[product] -= taken;
            // Stock is held at the WIP rate until it is used.
            self.add_wip(-f64::from(taken));
        }
        taken
    }

    /// Creates a work order and, through the BOM, work orders for its component products.
    fn create_job(
        &mut self,
        model: &PlantModel,
        product: usize,
        (required, target): (u32, u32),
        purpose: Purpose,
        observer: &mut dyn Observer,
    ) -> usize {
        let Purpose {
            parent,
            sales_order,
            due,
        } = purpose;
        let id = self.jobs.len();
        self.counters.work_orders += 1;
        self.add_wip(f64::from(target));
        self.jobs.push(Job {
            number: id as u32 + 1,
            product,
            target,
            required,
            quantity: target,
            sales_order,
            parent,
            due,
            released: self.now,
            step: 0,
            waiting_children: 0,
            ready_since: self.now,
            blocked: false,
            done: false,
        });
        for &(component, per_unit) in &model.products[product].components {
            let quantity = (f64::from(target) * per_unit).ceil().max(1.0) as u32;
            self.jobs[id].waiting_children += 1;
            let purpose = Purpose {
                parent: Some(id),
                sales_order,
                due,
            };
            self.create_job(model, component, (quantity, quantity), purpose, observer);
        }
        if self.jobs[id].waiting_children == 0 {
            self.make_ready(model, id, observer);
        }
        id
    }

    /// Puts a job's current operation in the queue of every eligible machine.
    fn make_ready(&mut self, model: &PlantModel, job: usize, observer: &mut dyn Observer) {
        if self.jobs[job].step == 0 && observer.wants_events() {
            let j = &self.jobs[job];
            let parent = j.parent.and_then(|p| self.jobs.get(p)).map(|p| p.number);
            let mut detail = json!({
                "product": model.products[j.product].id,
                "quantity": j.quantity,
                "sales_order": j.sales_order.map(|o| format!("SO-{:06}", o + 1)),
                "parent": parent.map(|n| format!("WO-{n:06}")),
            });
            // A lot started with a scrap allowance says what it must deliver.
            if j.required != j.target {
                detail["required"] = json!(j.required);
            }
            let number = j.number;
            self.emit(
                model,
                observer,
                EventKind::WorkOrderReleased,
                None,
                Some(format!("WO-{number:06}")),
                detail,
            );
        }
        let j = &mut self.jobs[job];
        j.ready_since = self.now;
        let step = &model.products[j.product].steps[j.step];
        for &(m, _) in &step.eligible {
            self.machines[m].queue.push(job);
        }
        for &(m, _) in &step.eligible {
            self.try_start(model, m, observer);
        }
    }

    /// Hands a planning policy the whole floor.
    fn replan(&mut self, model: &PlantModel) {
        if !self.policy.wants_floor() {
            return;
        }
        for m in 0..self.machines.len() {
            self.settle(model, m);
        }
        while self.jobs.get(self.first_open_job).is_some_and(|j| j.done) {
            self.first_open_job += 1;
        }
        let mut jobs = Vec::new();
        for (index, j) in self.jobs.iter().enumerate().skip(self.first_open_job) {
            if j.done {
                continue;
            }
            let product = &model.products[j.product];
            let running = self.machines.iter().enumerate().find_map(|(m, st)| {
                st.running
                    .as_ref()
                    .filter(|r| r.job == index)
                    .map(|r| (m, (r.setup_left_ms + r.run_left_ms) as f64 / 1000.0))
            });
            let operations = product.steps[j.step..]
                .iter()
                .map(|step| {
                    step.eligible
                        .iter()
                        .map(|&(machine, unit_s)| FloorAlternative {
                            machine,
                            setup_s: step.setup_s,
                            run_s: unit_s * f64::from(j.quantity),
                        })
                        .collect()
                })
                .collect();
            jobs.push(FloorJob {
                job: j.number,
                product: j.product,
                quantity: j.quantity,
                due: PlantTime(j.due),
                next_step: j.step,
                operations,
                running,
                waiting: j.waiting_children > 0 || j.blocked,
            });
        }
        let machines = self
            .machines
            .iter()
            .map(|st| FloorMachine {
                unavailable_for_s: match st.status {
                    Status::Down | Status::Maintenance => {
                        st.back_at.saturating_sub(self.now) as f64 / 1000.0
                    }
                    Status::Idle | Status::Busy => 0.0,
                },
                // A running operation sets the machine up for its product.
                last_product: st
                    .running
                    .as_ref()
                    .map(|r| self.jobs[r.job].product)
                    .or(st.last_product),
            })
            .collect();
        let floor = Floor {
            now: PlantTime(self.now),
            jobs,
            machines,
        };
        self.policy.plan(&floor);
    }

    fn add_wip(&mut self, delta: f64) {
        let c = &mut self.counters;
        c.wip_unit_ms += c.wip_units * (self.now - c.wip_last) as f64;
        c.wip_last = self.now;
        c.wip_units += delta;
    }

    // ---- machines --------------------------------------------------------------------

    /// Brings a machine's time accounting, energy, wear and hazard up to now.
    fn settle(&mut self, model: &PlantModel, m: MachineId) {
        let spec = &model.machines[m];
        let st = &mut self.machines[m];
        let elapsed = self.now.saturating_sub(st.since);
        if elapsed == 0 {
            return;
        }
        let from = st.since;
        st.since = self.now;
        match st.status {
            Status::Idle => {
                st.idle_ms += elapsed;
                self.energy.add(model, from, self.now, spec.power.idle);
            }
            Status::Down => {
                st.breakdown_ms += elapsed;
                self.energy.add(model, from, self.now, spec.power.down);
            }
            Status::Maintenance => {
                st.maintenance_ms += elapsed;
                self.energy.add(model, from, self.now, spec.power.down);
            }
            Status::Busy => {
                let Some(run) = st.running.as_mut() else {
                    return;
                };
                let setup = elapsed.min(run.setup_left_ms);
                run.setup_left_ms -= setup;
                let running = (elapsed - setup).min(run.run_left_ms);
                run.run_left_ms -= running;
                st.setup_ms += setup;
                st.run_ms += running;
                let hours = running as f64 / 3_600_000.0;
                st.hazard_budget -=
                    physics::cumulative_hazard(&spec.health, st.wear, run.wear_rate_h, hours);
                st.wear += run.wear_rate_h * hours;
                st.run_h_since_pm += hours;
                self.energy.add(model, from, from + setup, spec.power.idle);
                self.energy
                    .add(model, from + setup, self.now, spec.power.run);
            }
        }
    }

    fn set_status(&mut self, model: &PlantModel, m: MachineId, status: Status) {
        self.settle(model, m);
        self.machines[m].status = status;
    }

    /// Schedules the end of the running operation on `m`, or its failure if that comes first.
    fn schedule_running(&mut self, model: &PlantModel, m: MachineId) {
        let spec = &model.machines[m];
        let st = &self.machines[m];
        let Some(run) = &st.running else { return };
        let hours_left = run.run_left_ms as f64 / 3_600_000.0;
        let to_failure = physics::hours_to_failure(
            &spec.health,
            st.wear,
            run.wear_rate_h,
            st.hazard_budget.max(0.0),
        );
        let setup = run.setup_left_ms;
        if to_failure < hours_left {
            let at = self.now + setup + (to_failure * 3_600_000.0) as u64;
            self.schedule(at, Ev::Failure(m));
        } else {
            let at = self.now + setup + run.run_left_ms;
            self.schedule(at, Ev::OpDone(m));
        }
    }

    fn machine_view(&self, model: &PlantModel, m: MachineId) -> MachineView {
        let st = &self.machines[m];
        MachineView {
            machine: m,
            now: PlantTime(self.now),
            run_h_since_maintenance: st.run_h_since_pm,
            recommended_interval_h: model.machines[m].maintenance.pm_interval_run_h,
            last_vibration_mm_s: st.last_reading.0,
            last_temperature_c: st.last_reading.1,
            last_current_a: st.last_reading.2,
            queue_len: st.queue.len(),
        }
    }

    /// Gives a free machine its next task: maintenance if the policy asks, else an operation.
    fn try_start(&mut self, model: &PlantModel, m: MachineId, observer: &mut dyn Observer) {
        if self.machines[m].status != Status::Idle {
            return;
        }
        let view = self.machine_view(model, m);
        if self.policy.start_maintenance(&view) {
            self.start_maintenance(model, m, observer);
            return;
        }
        if self.machines[m].queue.is_empty() {
            return;
        }
        let mut candidates = std::mem::take(&mut self.candidates);
        candidates.clear();
        let mut queue = std::mem::take(&mut self.machines[m].queue);
        for &job in &queue {
            let j = &self.jobs[job];
            let product = &model.products[j.product];
            if j.step == 0 && !self.materials_available(model, j.product, j.target) {
                if !j.blocked {
                    self.jobs[job].blocked = true;
                    self.counters.stockouts += 1;
                    if observer.wants_events() {
                        self.emit(
                            model,
                            observer,
                            EventKind::Stockout,
                            Some(m),
                            Some(format!("WO-{:06}", self.jobs[job].number)),
                            json!({ "product": product.id }),
                        );
                    }
                }
                continue;
            }
            let step = &product.steps[j.step];
            let unit_s = step
                .eligible
                .iter()
                .find(|(mm, _)| *mm == m)
                .map_or(0.0, |(_, s)| *s);
            let setup = if self.machines[m].last_product == Some(j.product) {
                0.0
            } else {
                step.setup_s
            };
            candidates.push(QueuedOp {
                job: j.number,
                product: j.product,
                step: j.step,
                quantity: j.quantity,
                due: PlantTime(j.due),
                released: PlantTime(j.released),
                ready_since: PlantTime(j.ready_since),
                processing_s: setup + unit_s * f64::from(j.quantity),
            });
        }
        if candidates.is_empty() {
            self.machines[m].queue = queue;
            self.candidates = candidates;
            return;
        }
        if self.machines[m].held_until.is_some_and(|t| t > self.now) {
            self.machines[m].queue = queue;
            self.candidates = candidates;
            return;
        }
        if let Some(until) = self
            .policy
            .hold_until(PlantTime(self.now), m, &candidates)
            .filter(|t| t.0 > self.now)
        {
            self.machines[m].held_until = Some(until.0);
            self.schedule(until.0, Ev::Wake(m));
            self.machines[m].queue = queue;
            self.candidates = candidates;
            return;
        }
        let pick = self
            .policy
            .dispatch(PlantTime(self.now), m, &candidates)
            .min(candidates.len() - 1);
        let job = candidates[pick].job as usize - 1;
        self.candidates = candidates;
        queue.retain(|&j| j != job);
        self.machines[m].queue = queue;
        let (product, step_index) = (self.jobs[job].product, self.jobs[job].step);
        let step = &model.products[product].steps[step_index];
        for &(other, _) in &step.eligible {
            if other != m {
                self.machines[other].queue.retain(|&j| j != job);
            }
        }
        if step_index == 0 {
            self.issue_materials(model, product, self.jobs[job].target);
            self.jobs[job].blocked = false;
        }
        self.start_operation(model, m, job, observer);
    }

    fn materials_available(&self, model: &PlantModel, product: usize, quantity: u32) -> bool {
        model.products[product]
            .materials
            .iter()
            .all(|&(mat, per_unit)| {
                self.materials[mat].on_hand + 1e-9 >= per_unit * f64::from(quantity)
            })
    }

    fn change_stock(&mut self, model: &PlantModel, material: usize, delta: f64) {
        let spec = &model.materials[material];
        let st = &mut self.materials[material];
        let days = (self.now - st.last_change) as f64 / 86_400_000.0;
        self.counters.material_holding_cost +=
            st.on_hand.max(0.0) * spec.holding_cost_per_unit_day * days;
        st.last_change = self.now;
        st.on_hand += delta;
    }

    fn issue_materials(&mut self, model: &PlantModel, product: usize, quantity: u32) {
        for &(mat, per_unit) in &model.products[product].materials {
            self.change_stock(model, mat, -per_unit * f64::from(quantity));
        }
    }

    fn start_operation(
        &mut self,
        model: &PlantModel,
        m: MachineId,
        job: usize,
        observer: &mut dyn Observer,
    ) {
        let (product, step_index, quantity, number) = {
            let j = &self.jobs[job];
            (j.product, j.step, j.quantity, j.number)
        };
        let step = &model.products[product].steps[step_index];
        let spec = &model.machines[m];
        let specs: Vec<ParamSpec> = step.params.iter().map(ParamSpec::from).collect();
        let params: Vec<f64> = if specs.is_empty() {
            Vec::new()
        } else {
            let chosen = self.policy.process_params(m, product, step_index, &specs);
            step.params
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    chosen
                        .get(i)
                        .copied()
                        .filter(|v| v.is_finite())
                        .unwrap_or(p.default)
                        .clamp(p.min, p.max)
                })
                .collect()
        };
        let base_unit_s = step
            .eligible
            .iter()
            .find(|(mm, _)| *mm == m)
            .map_or(0.0, |(_, s)| *s);
        let wear = self.machines[m].wear;
        let unit_s = base_unit_s
            * physics::slowdown(&spec.health, wear)
            * physics::time_multiplier(&step.params, &params);
        let setup_s = if self.machines[m].last_product == Some(product) {
            0.0
        } else {
            step.setup_s
        };
        let wear_rate_h = spec.health.wear_per_run_hour
            * step.load
            * physics::wear_multiplier(&step.params, &params);
        self.set_status(model, m, Status::Busy);
        self.machines[m].running = Some(Running {
            job,
            setup_left_ms: ms(setup_s),
            run_left_ms: ms(unit_s * f64::from(quantity)).max(1),
            wear_rate_h,
            load: step.load,
            wear_at_start: wear,
            unit_ideal_s: base_unit_s * step.ideal_multiplier,
            params,
        });
        if observer.wants_events() {
            self.emit(
                model,
                observer,
                EventKind::OperationStarted,
                Some(m),
                Some(format!("WO-{number:06}")),
                json!({
                    "product": model.products[product].id,
                    "step": step_index,
                    "quantity": quantity,
                    "setup_s": setup_s,
                    "params": self.machines[m].running.as_ref().map(|r| r.params.clone()),
                }),
            );
        }
        self.schedule_running(model, m);
    }

    fn on_op_done(&mut self, model: &PlantModel, m: MachineId, observer: &mut dyn Observer) {
        self.settle(model, m);
        let spec = &model.machines[m];
        let Some(run) = self.machines[m].running.take() else {
            return;
        };
        let job = run.job;
        let (product, step_index, quantity) = {
            let j = &self.jobs[job];
            (j.product, j.step, j.quantity)
        };
        let step = &model.products[product].steps[step_index];
        let mean_wear = 0.5 * (run.wear_at_start + self.machines[m].wear);
        let p_defect = physics::defect_probability(
            step.base_defect,
            &spec.health,
            mean_wear,
            &step.params,
            &run.params,
        );
        let defects = if p_defect > 0.0 {
            Binomial::new(u64::from(quantity), p_defect)
                .map_or(0, |b| b.sample(&mut self.machines[m].rng_quality)) as u32
        } else {
            0
        };
        let good = quantity - defects.min(quantity);
        let c = &mut self.counters;
        c.op_units += u64::from(quantity);
        c.op_good += u64::from(good);
        c.ideal_run_s += run.unit_ideal_s * f64::from(quantity);
        if defects > 0 {
            c.scrapped += u64::from(defects);
            c.scrap_cost += f64::from(defects)
                * (model.products[product].material_cost
                    + model.plant().costs.scrap_handling_per_unit);
            self.add_wip(-f64::from(defects));
        }
        self.machines[m].last_product = Some(product);
        self.machines[m].status = Status::Idle;
        let number = self.jobs[job].number;
        if observer.wants_events() {
            self.emit(
                model,
                observer,
                EventKind::OperationCompleted,
                Some(m),
                Some(format!("WO-{number:06}")),
                json!({
                    "product": model.products[product].id,
                    "step": step_index,
                    "good": good,
                    "scrapped": defects,
                    // The units' time at the ideal cycle time, as a machine reports its
                    // nameplate rate: what OEE's performance factor is measured against.
                    "ideal_s": run.unit_ideal_s * f64::from(quantity),
                }),
            );
            if defects > 0 {
                self.emit(
                    model,
                    observer,
                    EventKind::UnitsScrapped,
                    Some(m),
                    Some(format!("WO-{number:06}")),
                    json!({ "units": defects, "probability": p_defect }),
                );
            }
        }
        self.jobs[job].quantity = good;
        let last_step = step_index + 1 >= model.products[product].steps.len();
        if good == 0 || last_step {
            self.finish_job(model, job, observer);
        } else {
            self.jobs[job].step += 1;
            self.make_ready(model, job, observer);
        }
        self.try_start(model, m, observer);
    }

    /// A work order leaves the floor: deliver it, feed its parent, and remake any shortfall.
    fn finish_job(&mut self, model: &PlantModel, job: usize, observer: &mut dyn Observer) {
        self.jobs[job].done = true;
        let j = self.jobs[job].clone();
        let delivered = j.quantity.min(j.required);
        let surplus = j.quantity - delivered;
        // Surplus stays on the books (at the WIP rate) as finished stock.
        self.add_wip(-f64::from(delivered));
        self.finished_stock[j.product] += surplus;
        let shortfall = j.required - delivered;
        let from_stock = self.take_from_stock(j.product, shortfall);
        let make_up = shortfall - from_stock;
        if make_up > 0 {
            if let Some(parent) = j.parent {
                self.jobs[parent].waiting_children += 1;
            }
            let purpose = Purpose {
                parent: j.parent,
                sales_order: j.sales_order,
                due: j.due,
            };
            self.create_job(model, j.product, (make_up, make_up), purpose, observer);
        }
        match (j.parent, j.sales_order) {
            (Some(parent), _) => {
                let p = &mut self.jobs[parent];
                p.waiting_children = p.waiting_children.saturating_sub(1);
                if p.waiting_children == 0 {
                    self.make_ready(model, parent, observer);
                }
            }
            (None, Some(order)) => {
                self.credit_order(model, order, delivered + from_stock, observer);
            }
            (None, None) => {}
        }
    }

    /// Delivers `units` to a sales order, completing it when it has all it asked for.
    fn credit_order(
        &mut self,
        model: &PlantModel,
        order: usize,
        units: u32,
        observer: &mut dyn Observer,
    ) {
        self.counters.finished_good += u64::from(units);
        let o = &mut self.orders[order];
        o.delivered += units;
        if o.delivered >= o.quantity && o.completed.is_none() {
            o.completed = Some(self.now);
            let late_ms = self.now.saturating_sub(o.due);
            let late_h = late_ms as f64 / 3_600_000.0;
            let quantity = o.quantity;
            let lead_h = self.now.saturating_sub(o.released_at) as f64 / 3_600_000.0;
            let c = &mut self.counters;
            c.order_lead_time_h += lead_h;
            c.orders_completed += 1;
            c.orders_due += 1;
            if late_ms == 0 {
                c.orders_on_time += 1;
            }
            c.tardiness_h += late_h;
            c.tardiness_cost +=
                late_h / 24.0 * f64::from(quantity) * model.plant().costs.tardiness_per_unit_day;
            if observer.wants_events() {
                self.emit(
                    model,
                    observer,
                    EventKind::OrderCompleted,
                    None,
                    Some(format!("SO-{:06}", order + 1)),
                    json!({ "late_h": late_h }),
                );
            }
        }
    }

    fn on_failure(&mut self, model: &PlantModel, m: MachineId, observer: &mut dyn Observer) {
        self.set_status(model, m, Status::Down);
        let spec = &model.machines[m];
        let mean = spec.maintenance.corrective_h;
        let cv = model.plant().twin.repair_time_cv;
        let hours = if cv > 0.0 {
            // Log-normal with the given mean and coefficient of variation.
            let sigma2 = (1.0 + cv * cv).ln();
            LogNormal::new(mean.ln() - sigma2 / 2.0, sigma2.sqrt())
                .map_or(mean, |d| d.sample(&mut self.machines[m].rng_repair))
        } else {
            mean
        };
        let st = &mut self.machines[m];
        st.failures += 1;
        // The plant knows a repair is under way, not how long it will really take.
        st.back_at = self.now + ms(mean * 3600.0);
        self.counters.maintenance_cost += spec.maintenance.corrective_cost;
        if observer.wants_events() {
            let wo = self.machines[m]
                .running
                .as_ref()
                .map(|r| format!("WO-{:06}", self.jobs[r.job].number));
            self.emit(
                model,
                observer,
                EventKind::MachineFailed,
                Some(m),
                wo,
                json!({ "repair_h": hours }),
            );
        }
        self.schedule(self.now + ms(hours * 3600.0), Ev::RepairDone(m));
        self.replan(model);
    }

    /// Repair and service both restore a machine to as-good-as-new.
    fn renew(&mut self, m: MachineId) {
        let st = &mut self.machines[m];
        st.wear = 0.0;
        st.run_h_since_pm = 0.0;
        st.hazard_budget = st.rng_failure.sample(Exp1);
    }

    fn on_repair_done(&mut self, model: &PlantModel, m: MachineId, observer: &mut dyn Observer) {
        self.settle(model, m);
        self.renew(m);
        if observer.wants_events() {
            self.emit(
                model,
                observer,
                EventKind::RepairCompleted,
                Some(m),
                None,
                json!({}),
            );
        }
        if self.machines[m].running.is_some() {
            // Resume the interrupted operation where it stopped.
            self.machines[m].status = Status::Busy;
            self.schedule_running(model, m);
        } else {
            self.machines[m].status = Status::Idle;
            self.try_start(model, m, observer);
        }
    }

    fn start_maintenance(&mut self, model: &PlantModel, m: MachineId, observer: &mut dyn Observer) {
        self.set_status(model, m, Status::Maintenance);
        let spec = &model.machines[m];
        self.machines[m].preventive += 1;
        self.machines[m].back_at = self.now + ms(spec.maintenance.preventive_h * 3600.0);
        self.counters.maintenance_cost += spec.maintenance.preventive_cost;
        let hours = spec.maintenance.preventive_h;
        if observer.wants_events() {
            self.emit(
                model,
                observer,
                EventKind::MaintenanceStarted,
                Some(m),
                None,
                json!({ "kind": "preventive", "duration_h": hours }),
            );
        }
        self.schedule(self.now + ms(hours * 3600.0), Ev::MaintenanceDone(m));
        if self.policy.replan_on_service() {
            self.replan(model);
        }
    }

    fn on_maintenance_done(
        &mut self,
        model: &PlantModel,
        m: MachineId,
        observer: &mut dyn Observer,
    ) {
        self.set_status(model, m, Status::Idle);
        self.renew(m);
        if observer.wants_events() {
            self.emit(
                model,
                observer,
                EventKind::MaintenanceCompleted,
                Some(m),
                None,
                json!({}),
            );
        }
        if self.policy.replan_on_service() {
            self.replan(model);
        }
        self.try_start(model, m, observer);
    }

    fn on_telemetry(&mut self, model: &PlantModel, m: MachineId, observer: &mut dyn Observer) {
        self.settle(model, m);
        let spec = &model.machines[m];
        let ambient = model.plant().twin.ambient_c;
        let st = &mut self.machines[m];
        let (activity, load) = match (st.status, &st.running) {
            (Status::Busy, Some(run)) if run.setup_left_ms == 0 => (Activity::Running, run.load),
            (Status::Busy, _) | (Status::Idle, _) => (Activity::Idle, 0.0),
            (Status::Down, _) | (Status::Maintenance, _) => (Activity::Down, 0.0),
        };
        let (vibration, target_temp, current) =
            physics::sensor_levels(&spec.sensors, ambient, activity, load, st.wear);
        // A failure on its way shows in the current first (no random draw: a plant file
        // without a P–F interval reads exactly as before).
        let wear_rate = match &st.running {
            Some(run) if st.status == Status::Busy => run.wear_rate_h,
            _ => spec.health.wear_per_run_hour,
        };
        let fault = physics::precursor_share(
            physics::hours_to_failure(&spec.health, st.wear, wear_rate, st.hazard_budget.max(0.0)),
            spec.sensors.precursor_h,
        );
        let current = current * (1.0 + spec.sensors.precursor_rise * fault);
        // First-order thermal lag with a 15-minute time constant.
        let dt = (self.now - st.last_sample_ms) as f64 / 1000.0;
        st.last_sample_ms = self.now;
        st.temperature += (target_temp - st.temperature) * (1.0 - (-dt / 900.0).exp());
        let cv = spec.sensors.noise_cv;
        let z: [f64; 3] = [
            st.rng_sensor.sample(StandardNormal),
            st.rng_sensor.sample(StandardNormal),
            st.rng_sensor.sample(StandardNormal),
        ];
        let reading = (
            (vibration * (1.0 + cv * z[0])).max(0.0),
            st.temperature + cv * spec.sensors.temperature_rise_c.max(1.0) * z[1],
            (current * (1.0 + cv * z[2])).max(0.0),
        );
        st.last_reading = reading;
        if observer.wants_telemetry() {
            let at = self.timestamp(self.now);
            let machine = &spec.id;
            observer.telemetry([
                TelemetryReading {
                    at,
                    machine: machine.clone(),
                    signal: "vibration_mm_s".to_owned(),
                    value: reading.0,
                },
                TelemetryReading {
                    at,
                    machine: machine.clone(),
                    signal: "temperature_c".to_owned(),
                    value: reading.1,
                },
                TelemetryReading {
                    at,
                    machine: machine.clone(),
                    signal: "current_a".to_owned(),
                    value: reading.2,
                },
            ]);
        }
        self.schedule(self.now + self.telemetry_period_ms, Ev::Telemetry(m));
    }

    fn on_review(&mut self, model: &PlantModel, observer: &mut dyn Observer) {
        let views: Vec<MaterialView> = self
            .materials
            .iter()
            .enumerate()
            .map(|(i, s)| MaterialView {
                material: i,
                on_hand: s.on_hand,
                on_order: s.on_order,
                reorder_point: model.materials[i].reorder_point,
                order_qty: model.materials[i].order_qty,
            })
            .collect();
        let requests = self.policy.purchase(PlantTime(self.now), &views);
        for r in requests {
            if r.material >= self.materials.len() || r.quantity.is_nan() || r.quantity <= 0.0 {
                continue;
            }
            let spec = &model.materials[r.material];
            let jitter = spec.lead_time_jitter_days;
            let lead_days = if jitter > 0.0 {
                spec.lead_time_days + self.rng_supply.random_range(-jitter..=jitter)
            } else {
                spec.lead_time_days
            };
            let po = self.purchases.len();
            self.purchases.push(PurchaseOrder {
                material: r.material,
                quantity: r.quantity,
            });
            self.materials[r.material].on_order += r.quantity;
            if observer.wants_events() {
                self.emit(
                    model,
                    observer,
                    EventKind::PurchasePlaced,
                    None,
                    Some(format!("PO-{:06}", po + 1)),
                    json!({
                        "material": spec.id,
                        "quantity": r.quantity,
                        "cost": r.quantity * spec.unit_cost,
                        "lead_time_days": lead_days,
                    }),
                );
            }
            self.schedule(
                self.now + ms(lead_days.max(0.0) * 86_400.0),
                Ev::PurchaseArrival(po),
            );
        }
        self.release_orders(model, observer);
        for m in 0..self.machines.len() {
            self.try_start(model, m, observer);
        }
        let period = ms(model.plant().twin.review_period_h * 3600.0).max(1);
        self.schedule(self.now + period, Ev::Review);
    }

    fn on_purchase_arrival(&mut self, model: &PlantModel, po: usize, observer: &mut dyn Observer) {
        let PurchaseOrder { material, quantity } = self.purchases[po].clone();
        self.change_stock(model, material, quantity);
        self.materials[material].on_order -= quantity;
        if observer.wants_events() {
            self.emit(
                model,
                observer,
                EventKind::PurchaseReceived,
                None,
                Some(format!("PO-{:06}", po + 1)),
                json!({ "material": model.materials[material].id, "quantity": quantity }),
            );
        }
        for m in 0..self.machines.len() {
            self.try_start(model, m, observer);
        }
    }

    fn finish(mut self, model: &PlantModel) -> SimResult {
        self.settle_all(model);
        self.result(model)
    }

    /// Brings every accrual (machine time, wear, energy, holding) up to now.
    fn settle_all(&mut self, model: &PlantModel) {
        for m in 0..self.machines.len() {
            self.settle(model, m);
        }
        for mat in 0..self.materials.len() {
            self.change_stock(model, mat, 0.0);
        }
        self.add_wip(0.0);
    }

    /// The KPIs and machine totals as of now, orders still open past their due date counted
    /// late; call [`State::settle_all`] first.
    fn result(&self, model: &PlantModel) -> SimResult {
        let now = self.now;
        let rate = model.plant().costs.tardiness_per_unit_day;
        let mut c = self.counters.clone();
        for o in &self.orders {
            if o.completed.is_none() && o.due < now && o.received <= now {
                let late_h = (now - o.due) as f64 / 3_600_000.0;
                c.orders_due += 1;
                c.tardiness_h += late_h;
                c.tardiness_cost +=
                    late_h / 24.0 * f64::from(o.quantity - o.delivered.min(o.quantity)) * rate;
            }
        }
        let c = &c;
        let sum = |f: fn(&MachineState) -> u64| -> f64 {
            self.machines.iter().map(|s| f(s) as f64 / 1000.0).sum()
        };
        let wip_unit_s = c.wip_unit_ms / 1000.0;
        let inputs = KpiInputs {
            horizon_s: now as f64 / 1000.0,
            run_s: sum(|s| s.run_ms),
            setup_s: sum(|s| s.setup_ms),
            breakdown_s: sum(|s| s.breakdown_ms),
            maintenance_s: sum(|s| s.maintenance_ms),
            ideal_run_s: c.ideal_run_s,
            op_units_processed: c.op_units,
            op_units_good: c.op_good,
            finished_good_units: c.finished_good,
            scrapped_units: c.scrapped,
            orders_due: c.orders_due,
            orders_on_time: c.orders_on_time,
            orders_completed: c.orders_completed,
            tardiness_h: c.tardiness_h,
            wip_unit_s,
            energy_kwh: self.energy.total_kwh(),
            energy_cost: self.energy.total_cost(),
            maintenance_cost: c.maintenance_cost,
            tardiness_cost: c.tardiness_cost,
            // Finished stock nobody has used yet is charged at its material cost, as if
            // scrapped: conservative, since a later order of the product may still take it.
            scrap_cost: c.scrap_cost
                + self
                    .finished_stock
                    .iter()
                    .zip(&model.products)
                    .map(|(&units, p)| f64::from(units) * p.material_cost)
                    .sum::<f64>(),
            holding_cost: c.material_holding_cost
                + wip_unit_s / 86_400.0 * model.plant().costs.wip_holding_per_unit_day,
            material_holding_cost: c.material_holding_cost,
            failures: self.machines.iter().map(|s| s.failures).sum(),
            preventive_maintenance: self.machines.iter().map(|s| s.preventive).sum(),
            stockouts: c.stockouts,
            events_processed: c.events,
            work_orders: c.work_orders,
            order_lead_time_h: c.order_lead_time_h,
        };
        let machines = self
            .machines
            .iter()
            .zip(&model.machines)
            .map(|(s, spec)| {
                let h = |v: u64| v as f64 / 3_600_000.0;
                let loading = s.run_ms + s.setup_ms + s.breakdown_ms + s.maintenance_ms;
                MachineSummary {
                    machine: spec.id.clone(),
                    run_h: h(s.run_ms),
                    setup_h: h(s.setup_ms),
                    breakdown_h: h(s.breakdown_ms),
                    maintenance_h: h(s.maintenance_ms),
                    idle_h: h(s.idle_ms),
                    availability: if loading > 0 {
                        s.run_ms as f64 / loading as f64
                    } else {
                        0.0
                    },
                    failures: s.failures,
                    preventive_maintenance: s.preventive,
                    hidden_wear: s.wear,
                }
            })
            .collect();
        let energy_by_period = model
            .master
            .tariff_periods()
            .iter()
            .enumerate()
            .map(|(i, p)| EnergyByPeriod {
                period: p.name.clone(),
                kwh: self.energy.kwh_by_period[i],
                cost: self.energy.cost_by_period[i],
            })
            .collect();
        SimResult {
            plant: model.plant().plant.id.clone(),
            policy: self.policy.name(),
            seed: self.seed,
            kpis: Kpis::compute(&inputs),
            energy_by_period,
            machines,
        }
    }
}

/// Expected units ordered of a product on `day` (negative before day 0), with the day's
/// demand noise drawn as a standard normal.
fn mean_units_on(d: &aifactory_core::plant::Demand, day: f64, weekday: usize, noise: f64) -> f64 {
    d.units_per_day
        * (1.0 + d.trend_per_year).powf(day / 365.0)
        * d.weekly.get(weekday).copied().unwrap_or(1.0)
        * (1.0 + d.noise_cv * noise).max(0.0)
}

/// The plant's order book for the `days` days before day 0: units ordered per product id and
/// day, oldest first — what the ERP would hold when a skill is switched on. Drawn from the
/// demand model with its own seeded stream, so it changes nothing in the run itself.
pub fn order_book_history(
    model: &PlantModel,
    days: u32,
    seed: u64,
) -> std::collections::BTreeMap<String, Vec<f64>> {
    let (start, offset_min) = model.plant().start();
    let start_local_day = (start.0.div_euclid(1000) + i64::from(offset_min) * 60) / 86_400;
    let mut rng = stream(seed, StreamKind::History, 0);
    let mut book = std::collections::BTreeMap::new();
    for product in &model.plant().products {
        let Some(d) = &product.demand else { continue };
        let series: Vec<f64> = (1..=i64::from(days))
            .rev()
            .map(|back| {
                let weekday = weekday_from_days(start_local_day - back) as usize;
                let noise: f64 = rng.sample(StandardNormal);
                let rate = mean_units_on(d, -(back as f64), weekday, noise) / d.order_size;
                let count = if rate > 0.0 {
                    Poisson::new(rate).map_or(0.0, |dist| dist.sample(&mut rng)) as u32
                } else {
                    0
                };
                (0..count)
                    .map(|_| (d.order_size * rng.random_range(0.5..1.5)).round().max(1.0))
                    .sum()
            })
            .collect();
        book.insert(product.id.clone(), series);
    }
    book
}

/// The plant's maintenance records (the CMMS) before day 0: per machine, in the twin's order,
/// each renewal as (running hours since the previous one, whether it was a failure rather than
/// a service), over `run_hours` of running under the recommended fixed interval at nominal load
/// — what a plant switching on a maintenance model would find on file. Its own seeded stream,
/// so it changes nothing in the run.
pub fn maintenance_history(model: &PlantModel, run_hours: f64, seed: u64) -> Vec<Vec<(f64, bool)>> {
    model
        .machines
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut rng = stream(seed, StreamKind::MaintenanceHistory, i as u64);
            let interval = m.maintenance.pm_interval_run_h.max(1.0);
            let mut records = Vec::new();
            let mut total = 0.0;
            while total < run_hours && records.len() < 10_000 {
                let budget: f64 = rng.sample(Exp1);
                let to_failure =
                    physics::hours_to_failure(&m.health, 0.0, m.health.wear_per_run_hour, budget);
                let (age, failed) = if to_failure < interval {
                    (to_failure.max(0.01), true)
                } else {
                    (interval, false)
                };
                records.push((age, failed));
                total += age;
            }
            records
        })
        .collect()
}
