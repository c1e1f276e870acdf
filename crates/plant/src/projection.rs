//! The plant's state, projected from its events and master data: one definition for the twin
//! and for a real plant.
//!
//! Events arrive as [`Arrival`]s (an event with its id, the source that sent it and that
//! source's sequence number). They are checked when offered (a refusal names the event and the
//! field), held for a reorder window and applied in (time, source, sequence) order, so events
//! that arrive out of order by less than the window give the same state as events in order.
//! An id seen before within the dedup horizon is dropped; a unit count for one work order's
//! step comes from one source only — the first that reports it — so an operator terminal and
//! a machine reporting the same operation do not count its units twice.
//!
//! Machine time follows the KPI time model of `core::kpi`: a machine is idle, busy (set-up
//! first, then running), down (failure to end of repair) or in planned maintenance. The OEE
//! inputs come from those times and the completed operations' counts, and [`Projection::kpis`]
//! hands them to `Kpis::compute`, the one definition of every KPI.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

use aifactory_core::{EventKind, KpiInputs, Kpis, PlantEvent, Timestamp};
use serde::Serialize;

use crate::{MachineId, MasterData, PlantTime};

/// One event as it arrives from a plant.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    /// Unique per event at its source; a second arrival with the same id is a duplicate.
    pub id: String,
    /// Who reported it, e.g. `machine`, `mes`, `operator-terminal`, `twin`.
    pub source: String,
    /// The source's own sequence number: orders events of one source with equal timestamps.
    pub seq: u64,
    pub event: PlantEvent,
}

/// How long the projection waits for stragglers and remembers ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectionConfig {
    /// Events are applied once the newest event seen is this much later (plant milliseconds).
    pub reorder_window_ms: u64,
    /// Ids are remembered this long after their event is applied (plant milliseconds); an
    /// event older than this behind the applied time is refused, since its duplicate could no
    /// longer be recognised. Finished orders are forgotten after the same horizon.
    pub dedup_horizon_ms: u64,
    /// With [`Projection::offer_received`], an event stamped further ahead of its receive time
    /// than this is refused (a wrong clock, microseconds sent as milliseconds).
    pub max_ahead_ms: u64,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        ProjectionConfig {
            reorder_window_ms: 60_000,
            dedup_horizon_ms: 86_400_000,
            max_ahead_ms: 300_000,
        }
    }
}

/// An event the projection cannot use, with what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProjectionError {
    #[error("event {id} ({kind}): machine `{machine}` is not in the plant file")]
    UnknownMachine {
        id: String,
        kind: &'static str,
        machine: String,
    },
    #[error("event {id} ({kind}): product `{product}` is not in the plant file")]
    UnknownProduct {
        id: String,
        kind: &'static str,
        product: String,
    },
    #[error("event {id} ({kind}): material `{material}` is not in the plant file")]
    UnknownMaterial {
        id: String,
        kind: &'static str,
        material: String,
    },
    #[error("event {id} ({kind}): {field} {problem}")]
    Field {
        id: String,
        kind: &'static str,
        field: &'static str,
        problem: &'static str,
    },
    #[error(
        "event {id} ({kind}): {behind_ms} ms behind what is applied, past the dedup horizon: \
         a duplicate could not be told apart"
    )]
    PastHorizon {
        id: String,
        kind: &'static str,
        behind_ms: u64,
    },
    #[error("event {id} ({kind}): stamped {ahead_ms} ms after it was received")]
    AheadOfReceipt {
        id: String,
        kind: &'static str,
        ahead_ms: u64,
    },
    #[error("event {id} ({kind}): at {at} ms is before the plant's start")]
    BeforeStart {
        id: String,
        kind: &'static str,
        at: i64,
    },
}

/// What an offered event came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// Held for the reorder window, or applied.
    Accepted,
    /// Its id was seen before: dropped.
    Duplicate,
    /// Older than what is already applied by more than the window: applied now, at the
    /// machine's current time (its duration cannot be placed exactly).
    Late,
}

/// When a decision is due: what changed on the floor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DecisionPoint {
    MachineFree {
        machine: MachineId,
        at: PlantTime,
    },
    OrderReceived {
        order: String,
        at: PlantTime,
    },
    OrderReleased {
        order: String,
        at: PlantTime,
    },
    Breakdown {
        machine: MachineId,
        at: PlantTime,
    },
    Repaired {
        machine: MachineId,
        at: PlantTime,
    },
    MaterialReceived {
        material: usize,
        at: PlantTime,
    },
    /// A work order is ready for its next step (released, or its last step ended): the
    /// machines that can run that step have one more job waiting.
    WorkReady {
        work_order: String,
        step: usize,
        at: PlantTime,
    },
}

/// A machine's state: a standard code integrators know (the UMH codes, mapped from PackML,
/// MTConnect and OPC 40001) and what the source itself said, if it said more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateCode {
    /// 10000: producing.
    Running,
    /// 40000: an unplanned stop that is not an equipment failure.
    UnspecifiedStop,
    /// 100000: changeover (set-up between products).
    Changeover,
    /// 170000: no order to run.
    NoOrder,
    /// 180000: equipment failure.
    EquipmentFailure,
    /// 210000: preventive maintenance.
    PreventiveMaintenance,
}

impl StateCode {
    /// The numeric code of the United Manufacturing Hub's state list.
    pub fn code(self) -> u32 {
        match self {
            StateCode::Running => 10_000,
            StateCode::UnspecifiedStop => 40_000,
            StateCode::Changeover => 100_000,
            StateCode::NoOrder => 170_000,
            StateCode::EquipmentFailure => 180_000,
            StateCode::PreventiveMaintenance => 210_000,
        }
    }
}

/// The few words a dashboard shows for a standard state code: `busy` (producing or changing
/// over), `idle` (no order), `down` (failed), `maintenance`, or `stopped` (any other stop).
pub fn state_word(code: u32) -> &'static str {
    match code {
        10_000 | 20_000 | 50_000 | 100_000..=130_000 => "busy",
        170_000 | 150_000 => "idle",
        180_000 => "down",
        210_000 => "maintenance",
        _ => "stopped",
    }
}

/// A machine's state as the floor shows it: a standard code (UMH) and, where the source said
/// more, its own words (a PackML state, an MTConnect execution value, a vendor code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MachineState {
    pub code: u32,
    pub raw: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Idle,
    Busy,
    /// Set-up as the machine reported it, with or without a known operation.
    Setup,
    /// An unplanned stop that is not a failure (unspecified, material, operator away,
    /// external): downtime in the KPI time model, not a failure.
    Stopped,
    Down,
    Maintenance,
}

/// An operation running (or interrupted by a failure) on a machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunningOp {
    pub work_order: String,
    pub product: usize,
    /// Routing step index.
    pub step: usize,
    pub quantity: u32,
    pub started: PlantTime,
    /// Set-up time still to go, milliseconds.
    pub setup_left_ms: u64,
}

/// One machine's accumulated times (milliseconds) and counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MachineTotals {
    pub idle_ms: u64,
    pub setup_ms: u64,
    pub run_ms: u64,
    pub breakdown_ms: u64,
    pub maintenance_ms: u64,
    /// Running time the units made would have taken at the ideal cycle time, seconds.
    pub ideal_run_s: f64,
    pub units_processed: u64,
    pub units_good: u64,
    pub failures: u64,
    pub services: u64,
    /// `run_ms` when the machine last failed or went into service: its running time since is
    /// the age a maintenance policy looks at.
    pub run_ms_at_renewal: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct MachineTrack {
    status: Status,
    since: u64,
    running: Option<RunningOp>,
    totals: MachineTotals,
    /// What the machine itself last said, until another event changes its state.
    reported: Option<MachineState>,
    /// The product of the last operation started here: what the machine is set up for.
    last_product: Option<usize>,
    /// When it entered its current status.
    entered: u64,
}

/// A work order as the floor has reported it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkOrder {
    pub product: usize,
    /// Units still in the order (good units of the last completed step).
    pub quantity: u32,
    /// The routing step it waits for or runs; equal to the routing's length when done.
    pub next_step: usize,
    /// Running now on this machine.
    pub running_on: Option<MachineId>,
    /// Held for material since this time.
    pub waiting_for_material: bool,
    /// When its last step ended (or its units were all scrapped).
    pub finished: Option<PlantTime>,
    /// The customer order it delivers to, when its release said so.
    pub sales_order: Option<String>,
    /// The work order it makes a component for: its units go there, not to the customer.
    pub parent: Option<String>,
    /// When it was released, and when it became ready for its next step.
    pub released: PlantTime,
    pub ready_since: PlantTime,
    /// Its customer order's due date, when the release named one that was known.
    pub due: Option<PlantTime>,
}

impl WorkOrder {
    pub fn done(&self, master: &MasterData) -> bool {
        self.next_step >= master.steps(self.product) || self.quantity == 0
    }
}

/// A sales order as the floor has reported it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SalesOrder {
    pub product: usize,
    pub quantity: u32,
    pub received: PlantTime,
    pub due: Option<PlantTime>,
    pub released: bool,
    pub completed: Option<PlantTime>,
    /// Good units delivered by its finished work orders.
    pub delivered: u32,
}

/// Counts of what the projection did with what it was offered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Intake {
    pub applied: u64,
    pub duplicates: u64,
    pub late: u64,
    /// Completions of a work order's step from a source other than the one counting it.
    pub double_reports: u64,
    pub stockouts: u64,
}

/// An event checked and resolved to master-data positions.
#[derive(Debug, Clone, PartialEq)]
enum Fact {
    OrderReceived {
        order: String,
        product: usize,
        quantity: u32,
        due: Option<PlantTime>,
    },
    OrderReleased {
        order: String,
    },
    OrderCompleted {
        order: String,
    },
    WorkOrderReleased {
        work_order: String,
        product: usize,
        quantity: u32,
        sales_order: Option<String>,
        parent: Option<String>,
    },
    OperationStarted {
        machine: MachineId,
        work_order: String,
        product: usize,
        step: usize,
        quantity: u32,
        setup_ms: u64,
    },
    OperationCompleted {
        machine: MachineId,
        work_order: String,
        step: usize,
        good: u32,
        scrapped: u32,
        ideal_s: Option<f64>,
    },
    MachineFailed(MachineId),
    RepairCompleted(MachineId),
    MaintenanceStarted(MachineId),
    MaintenanceCompleted(MachineId),
    Stockout {
        work_order: Option<String>,
    },
    PurchasePlaced {
        material: usize,
        quantity: f64,
    },
    PurchaseReceived {
        material: usize,
        quantity: f64,
    },
    /// Carried by the completion's count; nothing to apply.
    UnitsScrapped,
    /// Not about the floor's state (a command's acknowledgement): it changes nothing here.
    NotFloor,
    MachineState {
        machine: MachineId,
        code: u32,
        raw: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Held {
    at: u64,
    source: String,
    seq: u64,
    id: String,
    fact: Fact,
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, &self.source, self.seq, &self.id).cmp(&(
            other.at,
            &other.source,
            other.seq,
            &other.id,
        ))
    }
}

/// The projection itself. Pure: it reads no clock; time is the events' own.
#[derive(Debug, Clone)]
pub struct Projection {
    master: Arc<MasterData>,
    start: Timestamp,
    config: ProjectionConfig,
    held: BinaryHeap<Reverse<Held>>,
    /// Newest event time offered, and everything at or before `applied_to` is applied.
    newest: u64,
    applied_to: u64,
    /// Ids seen, with their event time, forgotten after the dedup horizon (`seen_order` keeps
    /// them in arrival order so forgetting costs nothing per event).
    seen: HashMap<String, u64>,
    seen_order: VecDeque<(u64, String)>,
    /// Plant time of the last sweep of finished orders and counting sources.
    swept_at: u64,
    machines: Vec<MachineTrack>,
    work_orders: BTreeMap<String, WorkOrder>,
    sales_orders: BTreeMap<String, SalesOrder>,
    on_order: Vec<f64>,
    received: Vec<f64>,
    /// Which source counts the units of (work order, step, machine), and when it first did.
    counting: HashMap<(String, usize, MachineId), (String, u64)>,
    /// The ideal time of all units made, summed in the order they were made.
    ideal_run_s: f64,
    intake: Intake,
}

fn field_str<'a>(
    e: &'a PlantEvent,
    id: &str,
    kind: &'static str,
    field: &'static str,
) -> Result<&'a str, ProjectionError> {
    e.detail
        .get(field)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| ProjectionError::Field {
            id: id.to_owned(),
            kind,
            field,
            problem: "is missing or not text",
        })
}

fn field_u32(
    e: &PlantEvent,
    id: &str,
    kind: &'static str,
    field: &'static str,
) -> Result<u32, ProjectionError> {
    e.detail
        .get(field)
        .and_then(serde_json::Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| ProjectionError::Field {
            id: id.to_owned(),
            kind,
            field,
            problem: "is missing or not a whole number of at most 4294967295",
        })
}

fn field_f64(
    e: &PlantEvent,
    id: &str,
    kind: &'static str,
    field: &'static str,
) -> Result<f64, ProjectionError> {
    e.detail
        .get(field)
        .and_then(serde_json::Value::as_f64)
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| ProjectionError::Field {
            id: id.to_owned(),
            kind,
            field,
            problem: "is missing or not a finite number ≥ 0",
        })
}

/// The latest time an event may name: the end of year 9999, in ms since the epoch.
const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// The longest duration an event may state (a year): beyond it a sum could run to infinity.
const MAX_SECONDS: f64 = 366.0 * 86_400.0;

/// Seconds to whole milliseconds, rounding half up (`f64::round` is a libm call on the twin's
/// hot path); the twin and the projection round the same way.
#[inline]
pub fn ms(seconds: f64) -> u64 {
    (seconds.max(0.0) * 1000.0 + 0.5) as u64
}

impl Projection {
    pub fn new(master: Arc<MasterData>, config: ProjectionConfig) -> Projection {
        let (start, _) = master.plant().start();
        let machines = master
            .machine_ids()
            .map(|_| MachineTrack {
                status: Status::Idle,
                since: 0,
                running: None,
                totals: MachineTotals::default(),
                reported: None,
                last_product: None,
                entered: 0,
            })
            .collect();
        let materials = master.plant().materials.len();
        Projection {
            start,
            config,
            held: BinaryHeap::new(),
            newest: 0,
            applied_to: 0,
            seen: HashMap::new(),
            seen_order: VecDeque::new(),
            swept_at: 0,
            machines,
            work_orders: BTreeMap::new(),
            sales_orders: BTreeMap::new(),
            on_order: vec![0.0; materials],
            received: vec![0.0; materials],
            counting: HashMap::new(),
            ideal_run_s: 0.0,
            intake: Intake::default(),
            master,
        }
    }

    pub fn master(&self) -> &MasterData {
        &self.master
    }

    /// Checks an event and holds it for the reorder window; returns the decision points of the
    /// events this one's time lets through. A refused event changes nothing. The host ticks
    /// [`Projection::advance_to`] as its clock moves, so that a quiet plant's last events are
    /// applied within one window.
    pub fn offer(
        &mut self,
        arrival: Arrival,
    ) -> Result<(Offered, Vec<DecisionPoint>), ProjectionError> {
        let kind = arrival.event.kind.as_str();
        if arrival.event.at.0 < self.start.0 {
            return Err(ProjectionError::BeforeStart {
                id: arrival.id,
                kind,
                at: arrival.event.at.0,
            });
        }
        let at = PlantTime::since(self.start, arrival.event.at).0;
        if self.seen.contains_key(&arrival.id) {
            self.intake.duplicates += 1;
            return Ok((Offered::Duplicate, Vec::new()));
        }
        let behind_ms = self.applied_to.saturating_sub(at);
        if behind_ms > self.config.dedup_horizon_ms {
            return Err(ProjectionError::PastHorizon {
                id: arrival.id,
                kind,
                behind_ms,
            });
        }
        let fact = self.check(&arrival)?;
        self.seen.insert(arrival.id.clone(), at);
        self.seen_order.push_back((at, arrival.id.clone()));
        let held = Held {
            at,
            source: arrival.source,
            seq: arrival.seq,
            id: arrival.id,
            fact,
        };
        if at < self.applied_to {
            // Too late to place in order: applied now, where the floor is.
            self.intake.late += 1;
            let mut points = Vec::new();
            let now = self.applied_to;
            self.apply(Held { at: now, ..held }, &mut points);
            return Ok((Offered::Late, points));
        }
        self.newest = self.newest.max(at);
        self.held.push(Reverse(held));
        let points = self.release(self.newest.saturating_sub(self.config.reorder_window_ms));
        Ok((Offered::Accepted, points))
    }

    /// [`Projection::offer`] for an event the host received at `received` (its own clock in
    /// plant time): an event stamped more than `max_ahead_ms` after its receipt is refused, so
    /// one wrong clock cannot push the projection's time ahead of the plant's.
    pub fn offer_received(
        &mut self,
        arrival: Arrival,
        received: PlantTime,
    ) -> Result<(Offered, Vec<DecisionPoint>), ProjectionError> {
        let at = PlantTime::since(self.start, arrival.event.at).0;
        let ahead_ms = at.saturating_sub(received.0);
        if ahead_ms > self.config.max_ahead_ms {
            return Err(ProjectionError::AheadOfReceipt {
                kind: arrival.event.kind.as_str(),
                id: arrival.id,
                ahead_ms,
            });
        }
        self.offer(arrival)
    }

    /// Applies every held event up to `until` and brings every machine's time to it (the end
    /// of a horizon, or the source saying nothing more is coming up to then).
    pub fn advance_to(&mut self, until: PlantTime) -> Vec<DecisionPoint> {
        let points = self.release(until.0);
        for m in 0..self.machines.len() {
            self.settle(m, until.0.max(self.applied_to));
        }
        points
    }

    fn release(&mut self, until: u64) -> Vec<DecisionPoint> {
        let mut points = Vec::new();
        while self.held.peek().is_some_and(|Reverse(h)| h.at <= until) {
            if let Some(Reverse(h)) = self.held.pop() {
                self.applied_to = self.applied_to.max(h.at);
                self.apply(h, &mut points);
            }
        }
        self.applied_to = self.applied_to.max(until);
        self.forget();
        points
    }

    /// Forgets what the dedup horizon no longer needs: ids, counting sources, and orders
    /// finished before it. Memory follows the plant's rate times the horizon, not its age.
    fn forget(&mut self) {
        let keep_from = self.applied_to.saturating_sub(self.config.dedup_horizon_ms);
        while self
            .seen_order
            .front()
            .is_some_and(|(at, _)| *at < keep_from)
        {
            if let Some((at, id)) = self.seen_order.pop_front()
                && self.seen.get(&id) == Some(&at)
            {
                self.seen.remove(&id);
            }
        }
        // The rest is swept once an hour of plant time: a pass over the open orders.
        if self.applied_to < self.swept_at.saturating_add(3_600_000) {
            return;
        }
        self.swept_at = self.applied_to;
        self.counting.retain(|_, (_, at)| *at >= keep_from);
        self.work_orders
            .retain(|_, w| w.finished.is_none_or(|t| t.0 >= keep_from));
        self.sales_orders
            .retain(|_, o| o.completed.is_none_or(|t| t.0 >= keep_from));
    }

    fn machine(&self, a: &Arrival, kind: &'static str) -> Result<MachineId, ProjectionError> {
        let id = a
            .event
            .machine
            .as_deref()
            .ok_or_else(|| ProjectionError::Field {
                id: a.id.clone(),
                kind,
                field: "machine",
                problem: "is missing",
            })?;
        self.master
            .machine_index(id)
            .filter(|&m| m < self.machines.len())
            .ok_or_else(|| ProjectionError::UnknownMachine {
                id: a.id.clone(),
                kind,
                machine: id.to_owned(),
            })
    }

    fn order(a: &Arrival, kind: &'static str) -> Result<String, ProjectionError> {
        a.event.order.clone().ok_or_else(|| ProjectionError::Field {
            id: a.id.clone(),
            kind,
            field: "order",
            problem: "is missing",
        })
    }

    fn product(&self, a: &Arrival, kind: &'static str) -> Result<usize, ProjectionError> {
        let product = field_str(&a.event, &a.id, kind, "product")?;
        self.master
            .product_index(product)
            .ok_or_else(|| ProjectionError::UnknownProduct {
                id: a.id.clone(),
                kind,
                product: product.to_owned(),
            })
    }

    fn material(&self, a: &Arrival, kind: &'static str) -> Result<usize, ProjectionError> {
        let material = field_str(&a.event, &a.id, kind, "material")?;
        self.master
            .material_index(material)
            .ok_or_else(|| ProjectionError::UnknownMaterial {
                id: a.id.clone(),
                kind,
                material: material.to_owned(),
            })
    }

    fn step(
        &self,
        a: &Arrival,
        kind: &'static str,
        product: Option<usize>,
    ) -> Result<usize, ProjectionError> {
        let step = field_u32(&a.event, &a.id, kind, "step")? as usize;
        let steps = product.map(|p| self.master.routing(p).len());
        if steps.is_some_and(|n| step >= n) {
            return Err(ProjectionError::Field {
                id: a.id.clone(),
                kind,
                field: "step",
                problem: "is past the product's routing",
            });
        }
        Ok(step)
    }

    fn check(&self, a: &Arrival) -> Result<Fact, ProjectionError> {
        let kind = a.event.kind.as_str();
        let e = &a.event;
        Ok(match e.kind {
            EventKind::OrderReceived => {
                // The contract's times: milliseconds since the epoch, or RFC 3339 text.
                let field = |problem| ProjectionError::Field {
                    id: a.id.clone(),
                    kind,
                    field: "due",
                    problem,
                };
                let due_ms = match e.detail.get("due") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::Number(n)) => Some(
                        n.as_i64()
                            .filter(|ms| (0..=MAX_TIME_MS).contains(ms))
                            .ok_or_else(|| field("is not a whole number of ms in 1970..=9999"))?,
                    ),
                    Some(serde_json::Value::String(text)) => Some(
                        chrono::DateTime::parse_from_rfc3339(text)
                            .map_err(|_| field("is not an RFC 3339 time"))?
                            .timestamp_millis(),
                    ),
                    Some(_) => {
                        return Err(field("is neither ms since the epoch nor RFC 3339 text"));
                    }
                };
                let due = due_ms.map(|ms| PlantTime::since(self.start, Timestamp(ms)));
                Fact::OrderReceived {
                    order: Self::order(a, kind)?,
                    product: self.product(a, kind)?,
                    quantity: field_u32(e, &a.id, kind, "quantity")?,
                    due,
                }
            }
            EventKind::OrderReleased => Fact::OrderReleased {
                order: Self::order(a, kind)?,
            },
            EventKind::OrderCompleted => Fact::OrderCompleted {
                order: Self::order(a, kind)?,
            },
            EventKind::WorkOrderReleased => {
                let optional_text = |field: &'static str| match e.detail.get(field) {
                    None | Some(serde_json::Value::Null) => Ok(None),
                    Some(_) => field_str(e, &a.id, kind, field).map(|v| Some(v.to_owned())),
                };
                Fact::WorkOrderReleased {
                    work_order: Self::order(a, kind)?,
                    product: self.product(a, kind)?,
                    quantity: field_u32(e, &a.id, kind, "quantity")?,
                    sales_order: optional_text("sales_order")?,
                    parent: optional_text("parent")?,
                }
            }
            EventKind::OperationStarted => {
                let product = self.product(a, kind)?;
                let setup_s = match e.detail.get("setup_s") {
                    None => 0.0,
                    Some(_) => field_f64(e, &a.id, kind, "setup_s")?,
                };
                if setup_s > MAX_SECONDS {
                    return Err(ProjectionError::Field {
                        id: a.id.clone(),
                        kind,
                        field: "setup_s",
                        problem: "is over a year of seconds",
                    });
                }
                Fact::OperationStarted {
                    machine: self.machine(a, kind)?,
                    work_order: Self::order(a, kind)?,
                    product,
                    step: self.step(a, kind, Some(product))?,
                    quantity: field_u32(e, &a.id, kind, "quantity")?,
                    setup_ms: ms(setup_s),
                }
            }
            EventKind::OperationCompleted => {
                let product = match e.detail.get("product") {
                    None => None,
                    Some(_) => Some(self.product(a, kind)?),
                };
                let ideal_s = match e.detail.get("ideal_s") {
                    None => None,
                    Some(_) => Some(field_f64(e, &a.id, kind, "ideal_s")?),
                };
                if ideal_s.is_some_and(|s| s > MAX_SECONDS) {
                    return Err(ProjectionError::Field {
                        id: a.id.clone(),
                        kind,
                        field: "ideal_s",
                        problem: "is over a year of seconds",
                    });
                }
                Fact::OperationCompleted {
                    machine: self.machine(a, kind)?,
                    work_order: Self::order(a, kind)?,
                    step: self.step(a, kind, product)?,
                    good: field_u32(e, &a.id, kind, "good")?,
                    scrapped: match e.detail.get("scrapped") {
                        None => 0,
                        Some(_) => field_u32(e, &a.id, kind, "scrapped")?,
                    },
                    ideal_s,
                }
            }
            EventKind::MachineFailed => Fact::MachineFailed(self.machine(a, kind)?),
            EventKind::RepairCompleted => Fact::RepairCompleted(self.machine(a, kind)?),
            EventKind::MaintenanceStarted => Fact::MaintenanceStarted(self.machine(a, kind)?),
            EventKind::MaintenanceCompleted => Fact::MaintenanceCompleted(self.machine(a, kind)?),
            EventKind::Stockout => Fact::Stockout {
                work_order: e.order.clone(),
            },
            EventKind::PurchasePlaced => Fact::PurchasePlaced {
                material: self.material(a, kind)?,
                quantity: field_f64(e, &a.id, kind, "quantity")?,
            },
            EventKind::PurchaseReceived => Fact::PurchaseReceived {
                material: self.material(a, kind)?,
                quantity: field_f64(e, &a.id, kind, "quantity")?,
            },
            EventKind::UnitsScrapped => Fact::UnitsScrapped,
            EventKind::CommandAck => Fact::NotFloor,
            EventKind::MachineState => {
                let code = field_u32(e, &a.id, kind, "code")?;
                if !(10_000..=220_000).contains(&code) || code % 10_000 != 0 {
                    return Err(ProjectionError::Field {
                        id: a.id.clone(),
                        kind,
                        field: "code",
                        problem: "is not a UMH state code (10000, 20000, … 220000)",
                    });
                }
                let raw = match e.detail.get("raw") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::String(text)) => Some(text.clone()),
                    Some(other) => Some(other.to_string()),
                };
                Fact::MachineState {
                    machine: self.machine(a, kind)?,
                    code,
                    raw,
                }
            }
        })
    }

    /// Brings a machine's time to `now`, as the KPI time model counts it.
    fn settle(&mut self, m: MachineId, now: u64) {
        let Some(track) = self.machines.get_mut(m) else {
            return;
        };
        let elapsed = now.saturating_sub(track.since);
        if elapsed == 0 {
            return;
        }
        track.since = now;
        let t = &mut track.totals;
        match track.status {
            Status::Idle => t.idle_ms += elapsed,
            Status::Down => t.breakdown_ms += elapsed,
            Status::Maintenance => t.maintenance_ms += elapsed,
            Status::Stopped => t.breakdown_ms += elapsed,
            Status::Setup => {
                // Reported set-up is the running operation's set-up: it is not counted again
                // when the machine reports running.
                t.setup_ms += elapsed;
                if let Some(r) = track.running.as_mut() {
                    r.setup_left_ms = r.setup_left_ms.saturating_sub(elapsed);
                }
            }
            Status::Busy => {
                let setup_left = track.running.as_ref().map_or(0, |r| r.setup_left_ms);
                let setup = elapsed.min(setup_left);
                if let Some(r) = track.running.as_mut() {
                    r.setup_left_ms -= setup;
                }
                t.setup_ms += setup;
                t.run_ms += elapsed - setup;
            }
        }
    }

    fn set_status(&mut self, m: MachineId, now: u64, status: Status) {
        self.settle(m, now);
        if let Some(track) = self.machines.get_mut(m) {
            if track.status != status {
                track.entered = now;
            }
            track.status = status;
            track.reported = None;
        }
    }

    fn apply(&mut self, h: Held, points: &mut Vec<DecisionPoint>) {
        let now = h.at;
        let at = PlantTime(now);
        self.intake.applied += 1;
        match h.fact {
            Fact::OrderReceived {
                order,
                product,
                quantity,
                due,
            } => {
                self.sales_orders.insert(
                    order.clone(),
                    SalesOrder {
                        product,
                        quantity,
                        received: at,
                        due,
                        released: false,
                        completed: None,
                        delivered: 0,
                    },
                );
                points.push(DecisionPoint::OrderReceived { order, at });
            }
            Fact::OrderReleased { order } => {
                if let Some(o) = self.sales_orders.get_mut(&order) {
                    o.released = true;
                }
                points.push(DecisionPoint::OrderReleased { order, at });
            }
            Fact::OrderCompleted { order } => {
                if let Some(o) = self.sales_orders.get_mut(&order) {
                    o.completed.get_or_insert(at);
                }
            }
            Fact::WorkOrderReleased {
                work_order,
                product,
                quantity,
                sales_order,
                parent,
            } => {
                // Reported again (or after its first step): what is known stays.
                if self.work_orders.contains_key(&work_order) {
                    return;
                }
                let due = sales_order
                    .as_ref()
                    .and_then(|so| self.sales_orders.get(so))
                    .and_then(|o| o.due);
                self.work_orders.insert(
                    work_order.clone(),
                    WorkOrder {
                        product,
                        quantity,
                        next_step: 0,
                        running_on: None,
                        waiting_for_material: false,
                        finished: None,
                        sales_order,
                        parent,
                        released: at,
                        ready_since: at,
                        due,
                    },
                );
                points.push(DecisionPoint::WorkReady {
                    work_order,
                    step: 0,
                    at,
                });
            }
            Fact::OperationStarted {
                machine,
                work_order,
                product,
                step,
                quantity,
                setup_ms,
            } => {
                let replaced = self.machines[machine].running.as_ref().map(|r| {
                    (
                        r.work_order == work_order && r.step == step,
                        r.work_order.clone(),
                    )
                });
                if let Some((true, _)) = replaced {
                    // The operation already running here, reported again (a second source, or
                    // after a repair): its set-up is not started over.
                    return;
                }
                if let Some((false, other)) = replaced
                    && let Some(w) = self.work_orders.get_mut(&other)
                {
                    w.running_on = None;
                }
                // The time so far belongs to what the machine was doing before.
                self.settle(machine, now);
                self.machines[machine].last_product = Some(product);
                self.machines[machine].running = Some(RunningOp {
                    work_order: work_order.clone(),
                    product,
                    step,
                    quantity,
                    started: at,
                    setup_left_ms: setup_ms,
                });
                self.enter(machine, now, Status::Busy, points);
                let wo = self
                    .work_orders
                    .entry(work_order)
                    .or_insert_with(|| WorkOrder {
                        product,
                        quantity,
                        next_step: step,
                        running_on: None,
                        waiting_for_material: false,
                        finished: None,
                        sales_order: None,
                        parent: None,
                        released: at,
                        ready_since: at,
                        due: None,
                    });
                wo.next_step = wo.next_step.max(step);
                wo.running_on = Some(machine);
                wo.waiting_for_material = false;
            }
            Fact::OperationCompleted {
                machine,
                work_order,
                step,
                good,
                scrapped,
                ideal_s,
            } => {
                let ran_here = self.machines[machine]
                    .running
                    .as_ref()
                    .is_some_and(|r| r.work_order == work_order && r.step == step);
                let product = self.machines[machine]
                    .running
                    .as_ref()
                    .filter(|_| ran_here)
                    .map(|r| r.product)
                    .or_else(|| self.work_orders.get(&work_order).map(|w| w.product));
                // Whoever reports the end first frees the machine; only the source that first
                // reported this step's end on this machine counts its units.
                if ran_here {
                    self.settle(machine, now);
                    self.machines[machine].running = None;
                    self.enter(machine, now, Status::Idle, points);
                }
                let (counter, _) = self
                    .counting
                    .entry((work_order.clone(), step, machine))
                    .or_insert_with(|| (h.source.clone(), now));
                if *counter != h.source {
                    self.intake.double_reports += 1;
                    return;
                }
                let processed = u64::from(good) + u64::from(scrapped);
                // The ideal time of the units made: the plant's own figure where it sends one,
                // else the routing's standard time on this machine.
                let ideal = ideal_s.unwrap_or_else(|| {
                    product
                        .and_then(|p| self.master.step(p, step))
                        .and_then(|alts| alts.iter().find(|(m, _, _)| *m == machine))
                        .map_or(0.0, |(_, _, unit_s)| unit_s * processed as f64)
                });
                self.ideal_run_s += ideal;
                let t = &mut self.machines[machine].totals;
                t.units_processed += processed;
                t.units_good += u64::from(good);
                t.ideal_run_s += ideal;
                let steps = product.map_or(0, |p| self.master.steps(p));
                let mut delivered = None;
                if let Some(wo) = self.work_orders.get_mut(&work_order) {
                    wo.quantity = good;
                    wo.next_step = wo.next_step.max(step + 1);
                    wo.running_on = None;
                    if (wo.next_step >= steps || good == 0) && wo.finished.is_none() {
                        wo.finished = Some(at);
                        if wo.parent.is_none() {
                            delivered = wo.sales_order.clone().map(|so| (so, good));
                        }
                    } else if wo.finished.is_none() {
                        wo.ready_since = at;
                        points.push(DecisionPoint::WorkReady {
                            work_order: work_order.clone(),
                            step: wo.next_step,
                            at,
                        });
                    }
                }
                if let Some((so, good)) = delivered
                    && let Some(o) = self.sales_orders.get_mut(&so)
                {
                    o.delivered = o.delivered.saturating_add(good);
                }
            }
            Fact::MachineFailed(m) => self.enter(m, now, Status::Down, points),
            Fact::RepairCompleted(m) => {
                if matches!(self.machines[m].status, Status::Down | Status::Stopped) {
                    let back = self.back_to_work(m);
                    self.enter(m, now, back, points);
                }
            }
            Fact::MaintenanceStarted(m) => self.enter(m, now, Status::Maintenance, points),
            Fact::MaintenanceCompleted(m) => {
                if self.machines[m].status == Status::Maintenance {
                    let back = self.back_to_work(m);
                    self.enter(m, now, back, points);
                }
            }
            Fact::Stockout { work_order } => {
                self.intake.stockouts += 1;
                if let Some(wo) = work_order.and_then(|w| self.work_orders.get_mut(&w)) {
                    wo.waiting_for_material = true;
                }
            }
            Fact::PurchasePlaced { material, quantity } => {
                self.on_order[material] += quantity;
            }
            Fact::PurchaseReceived { material, quantity } => {
                self.on_order[material] = (self.on_order[material] - quantity).max(0.0);
                self.received[material] += quantity;
                points.push(DecisionPoint::MaterialReceived { material, at });
            }
            Fact::UnitsScrapped | Fact::NotFloor => {}
            Fact::MachineState { machine, code, raw } => {
                let was = self.machines[machine].status;
                // Running, reduced speed and micro-stops are running time; changeover, cleaning,
                // emptying and setting up are set-up; an equipment failure is a breakdown;
                // other unplanned stops are downtime; breaks, no shift and no order are not
                // loading time. "No data" changes nothing, and "no shift" does not end a stop
                // that began inside the shift.
                let status = match code {
                    30_000 => was,
                    160_000 if matches!(was, Status::Down | Status::Stopped) => was,
                    10_000 | 20_000 | 50_000 => Status::Busy,
                    100_000..=130_000 => Status::Setup,
                    180_000 => Status::Down,
                    210_000 => Status::Maintenance,
                    40_000 | 60_000..=90_000 | 140_000 | 190_000..=200_000 | 220_000 => {
                        Status::Stopped
                    }
                    _ => Status::Idle,
                };
                self.enter(machine, now, status, points);
                self.machines[machine].reported = Some(MachineState { code, raw });
            }
        }
    }

    /// Where a machine goes after a repair or a service: back to its operation, or idle.
    fn back_to_work(&self, m: MachineId) -> Status {
        if self.machines[m].running.is_some() {
            Status::Busy
        } else {
            Status::Idle
        }
    }

    /// Moves a machine to `status` at `now`, counting a failure or a service and saying which
    /// decision is due only when the state really changes.
    fn enter(&mut self, m: MachineId, now: u64, status: Status, points: &mut Vec<DecisionPoint>) {
        let was = self.machines[m].status;
        self.set_status(m, now, status);
        let at = PlantTime(now);
        if was == status {
            return;
        }
        let totals = &mut self.machines[m].totals;
        match status {
            Status::Down => {
                totals.failures += 1;
                totals.run_ms_at_renewal = totals.run_ms;
                points.push(DecisionPoint::Breakdown { machine: m, at });
            }
            Status::Maintenance => {
                totals.services += 1;
                totals.run_ms_at_renewal = totals.run_ms;
            }
            _ => {}
        }
        if was == Status::Down {
            points.push(DecisionPoint::Repaired { machine: m, at });
        }
        if status == Status::Idle && self.machines[m].running.is_none() {
            points.push(DecisionPoint::MachineFree { machine: m, at });
        }
    }

    /// Every event up to this plant time is applied.
    pub fn applied_to(&self) -> PlantTime {
        PlantTime(self.applied_to)
    }

    pub fn intake(&self) -> &Intake {
        &self.intake
    }

    /// A machine's state now: what it reported last if nothing changed it since, else the
    /// state its events imply.
    pub fn state(&self, machine: MachineId) -> Option<MachineState> {
        let t = self.machines.get(machine)?;
        if let Some(reported) = &t.reported {
            return Some(reported.clone());
        }
        let code = self.derived_state(machine)?;
        Some(MachineState {
            code: code.code(),
            raw: None,
        })
    }

    /// The standard state a machine's events imply.
    pub fn derived_state(&self, machine: MachineId) -> Option<StateCode> {
        let t = self.machines.get(machine)?;
        Some(match t.status {
            Status::Idle => StateCode::NoOrder,
            Status::Down => StateCode::EquipmentFailure,
            Status::Maintenance => StateCode::PreventiveMaintenance,
            Status::Setup => StateCode::Changeover,
            Status::Stopped => StateCode::UnspecifiedStop,
            Status::Busy if t.running.as_ref().is_some_and(|r| r.setup_left_ms > 0) => {
                StateCode::Changeover
            }
            Status::Busy => StateCode::Running,
        })
    }

    /// Work orders waiting for a step this machine can run (held for material or not): the
    /// machine's queue, as a dispatcher sees it.
    pub fn queue(&self, machine: MachineId) -> usize {
        self.work_orders
            .values()
            .filter(|w| w.finished.is_none() && w.running_on.is_none())
            .filter(|w| {
                self.master
                    .step(w.product, w.next_step)
                    .is_some_and(|alts| alts.iter().any(|(m, _, _)| *m == machine))
            })
            .count()
    }

    /// Work orders waiting for a step this machine can run and not held for material, earliest
    /// ready first: what a dispatcher may choose from when the machine is free.
    pub fn waiting_for(&self, machine: MachineId) -> Vec<(&str, &WorkOrder)> {
        let mut waiting: Vec<(&str, &WorkOrder)> = self
            .work_orders
            .iter()
            .filter(|(_, w)| {
                w.finished.is_none() && w.running_on.is_none() && !w.waiting_for_material
            })
            .filter(|(_, w)| {
                self.master
                    .step(w.product, w.next_step)
                    .is_some_and(|alts| alts.iter().any(|(m, _, _)| *m == machine))
            })
            .map(|(id, w)| (id.as_str(), w))
            .collect();
        waiting.sort_by_key(|(id, w)| (w.ready_since, w.released, *id));
        waiting
    }

    /// Whether the machine can take work now: idle, with no operation on it.
    pub fn is_free(&self, machine: MachineId) -> bool {
        self.machines
            .get(machine)
            .is_some_and(|t| t.status == Status::Idle && t.running.is_none())
    }

    /// How long (ms) the machine has been in its current state, at the applied time.
    pub fn in_state_for_ms(&self, machine: MachineId) -> u64 {
        self.machines
            .get(machine)
            .map_or(0, |t| self.applied_to.saturating_sub(t.entered))
    }

    /// Whether the machine is down (a failure) or in maintenance.
    pub fn out_of_service(&self, machine: MachineId) -> Option<bool> {
        match self.machines.get(machine)?.status {
            Status::Down => Some(true),
            Status::Maintenance => Some(false),
            _ => None,
        }
    }

    /// The product the machine last started an operation of: its set-up.
    pub fn last_product(&self, machine: MachineId) -> Option<usize> {
        self.machines.get(machine)?.last_product
    }

    /// The operation on a machine (running, or interrupted by a failure).
    pub fn running(&self, machine: MachineId) -> Option<&RunningOp> {
        self.machines.get(machine)?.running.as_ref()
    }

    pub fn totals(&self, machine: MachineId) -> Option<&MachineTotals> {
        self.machines.get(machine).map(|t| &t.totals)
    }

    pub fn work_orders(&self) -> &BTreeMap<String, WorkOrder> {
        &self.work_orders
    }

    pub fn sales_orders(&self) -> &BTreeMap<String, SalesOrder> {
        &self.sales_orders
    }

    /// Quantity on order, per material in plant-file order.
    pub fn on_order(&self) -> &[f64] {
        &self.on_order
    }

    /// Quantity received from purchases so far, per material.
    pub fn received(&self) -> &[f64] {
        &self.received
    }

    /// The OEE inputs of `core::kpi` from machine times and counts: the horizon is the time
    /// applied so far. Fields the floor's events do not carry (costs, deliveries) stay zero.
    pub fn kpi_inputs(&self) -> KpiInputs {
        let sum = |f: fn(&MachineTotals) -> u64| -> f64 {
            self.machines
                .iter()
                .map(|t| f(&t.totals) as f64 / 1000.0)
                .sum()
        };
        KpiInputs {
            horizon_s: self.applied_to as f64 / 1000.0,
            run_s: sum(|t| t.run_ms),
            setup_s: sum(|t| t.setup_ms),
            breakdown_s: sum(|t| t.breakdown_ms),
            maintenance_s: sum(|t| t.maintenance_ms),
            ideal_run_s: self.ideal_run_s,
            op_units_processed: self.machines.iter().map(|t| t.totals.units_processed).sum(),
            op_units_good: self.machines.iter().map(|t| t.totals.units_good).sum(),
            failures: self.machines.iter().map(|t| t.totals.failures).sum(),
            preventive_maintenance: self.machines.iter().map(|t| t.totals.services).sum(),
            stockouts: self.intake.stockouts,
            ..KpiInputs::default()
        }
    }

    /// OEE and its factors by `Kpis::compute`, the one definition of every KPI.
    pub fn kpis(&self) -> Kpis {
        Kpis::compute(&self.kpi_inputs())
    }
}
