//! The policy interface: the only way decisions reach a plant, the twin or a real one, and the
//! interface an AI skill or the coordinator implements. Policies see what a plant could observe
//! (queues, due dates, running hours, sensor readings, stock), never a simulation's hidden
//! truth (wear, optimum).

use crate::{MachineId, PlantTime, RuleError};
use serde::{Deserialize, Serialize};

/// An operation waiting for a machine, as a dispatcher sees it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QueuedOp {
    /// Work-order number.
    pub job: u32,
    pub product: usize,
    /// Routing step index.
    pub step: usize,
    pub quantity: u32,
    pub due: PlantTime,
    pub released: PlantTime,
    /// When it joined this queue.
    pub ready_since: PlantTime,
    /// Nominal seconds it would take on this machine, set-up included.
    pub processing_s: f64,
}

/// What can be observed about one machine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MachineView {
    pub machine: MachineId,
    pub now: PlantTime,
    /// Running hours since the last maintenance or repair.
    pub run_h_since_maintenance: f64,
    /// The interval the machine type recommends for fixed-interval service.
    pub recommended_interval_h: f64,
    /// Last sensor readings: vibration mm/s, temperature °C, current A (0 before the first).
    pub last_vibration_mm_s: f64,
    pub last_temperature_c: f64,
    pub last_current_a: f64,
    /// Operations waiting that this machine could take.
    pub queue_len: usize,
}

/// A sales order not yet released to the floor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OrderView {
    pub order: usize,
    pub product: usize,
    pub quantity: u32,
    pub received: PlantTime,
    pub due: PlantTime,
}

/// One work order a released sales order is opened as: `required` units of the order it must
/// deliver, `planned` units it starts (more than required where a lot carries a scrap allowance;
/// the good units beyond what the order needs go to the plant's finished stock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    pub required: u32,
    pub planned: u32,
}

/// The plant's own rule: lots of `lot_size` and one for the remainder, started as required.
pub fn standard_lots(quantity: u32, lot_size: u32) -> Vec<Lot> {
    let lot_size = lot_size.max(1);
    let mut left = quantity;
    let mut lots = Vec::with_capacity((quantity / lot_size + 1) as usize);
    while left > 0 {
        let q = left.min(lot_size);
        left -= q;
        lots.push(Lot {
            required: q,
            planned: q,
        });
    }
    lots
}

/// Whether `lots` open exactly `quantity` units of an order, each lot with something required
/// and started at least as required: what a plant checks before it opens lots it was sent.
pub fn lots_cover(lots: &[Lot], quantity: u32) -> bool {
    !lots.is_empty()
        && lots
            .iter()
            .all(|l| l.required > 0 && l.planned >= l.required)
        && lots
            .iter()
            .try_fold(0u32, |sum, l| sum.checked_add(l.required))
            == Some(quantity)
}

/// The lots `policy` opens `order` as, where they differ from the plant's standard ones and
/// cover the order (what a release command carries); `None` leaves the plant's own rule.
pub fn sized_lots(
    policy: &mut dyn Policy,
    now: PlantTime,
    order: &OrderView,
    lot_size: u32,
) -> Option<Vec<Lot>> {
    let lots = policy.lots(now, order, lot_size);
    (lots_cover(&lots, order.quantity) && lots != standard_lots(order.quantity, lot_size))
        .then_some(lots)
}

/// The stock position of one material.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MaterialView {
    pub material: usize,
    pub on_hand: f64,
    pub on_order: f64,
    pub reorder_point: f64,
    pub order_qty: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PurchaseRequest {
    pub material: usize,
    pub quantity: f64,
}

/// A process parameter as a policy may see it: no optimum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    pub min: f64,
    pub max: f64,
    pub default: f64,
}

impl From<&aifactory_core::plant::ProcessParam> for ParamSpec {
    fn from(p: &aifactory_core::plant::ProcessParam) -> ParamSpec {
        ParamSpec {
            min: p.min,
            max: p.max,
            default: p.default,
        }
    }
}

/// The whole shop floor, for planners that schedule ahead instead of dispatching greedily.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Floor {
    pub now: PlantTime,
    /// Work orders released and not finished, in release order.
    pub jobs: Vec<FloorJob>,
    pub machines: Vec<FloorMachine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloorJob {
    /// Work-order number, as in [`QueuedOp::job`].
    pub job: u32,
    pub product: usize,
    pub quantity: u32,
    pub due: PlantTime,
    /// Routing step of `operations[0]`.
    pub next_step: usize,
    /// Remaining operations from `next_step` on, each with its eligible machines.
    pub operations: Vec<Vec<FloorAlternative>>,
    /// When `operations[0]` is already running: its machine and the seconds it has left.
    pub running: Option<(MachineId, f64)>,
    /// Waiting for component work orders or for material: it cannot start yet.
    pub waiting: bool,
}

/// One machine an operation may run on, with nominal times for the whole quantity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FloorAlternative {
    pub machine: MachineId,
    /// Paid only when the machine last ran another product.
    pub setup_s: f64,
    pub run_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FloorMachine {
    /// Expected seconds until the machine can take work after a repair or service (0 if it can
    /// now or is running an operation, which `FloorJob::running` covers).
    pub unavailable_for_s: f64,
    /// The product it ran last (its set-up), if any.
    pub last_product: Option<usize>,
}

/// Everything that decides. Each call returns what a real plant would be told to do.
pub trait Policy {
    /// A short name for reports, e.g. `edd+pm+reorder`.
    fn name(&self) -> String;

    /// Which of `candidates` (never empty) `machine` runs next: an index into `candidates`.
    fn dispatch(&mut self, now: PlantTime, machine: MachineId, candidates: &[QueuedOp]) -> usize;

    /// Whether to start preventive maintenance on this (free) machine now.
    fn start_maintenance(&mut self, view: &MachineView) -> bool;

    /// Parameter values for an operation about to start; the plant clamps them into range.
    fn process_params(
        &mut self,
        _machine: MachineId,
        _product: usize,
        _step: usize,
        specs: &[ParamSpec],
    ) -> Vec<f64> {
        specs.iter().map(|s| s.default).collect()
    }

    /// Which pending sales orders to release to the floor now (indices into `pending`).
    fn release(&mut self, _now: PlantTime, pending: &[OrderView]) -> Vec<usize> {
        (0..pending.len()).collect()
    }

    /// The work orders a sales order it released is opened as (`order.quantity` is what the
    /// plant's finished stock does not cover): the plant's standard lots unless a policy sizes
    /// them. Lots that do not [`lots_cover`] the quantity are replaced by the standard ones.
    fn lots(&mut self, _now: PlantTime, order: &OrderView, lot_size: u32) -> Vec<Lot> {
        standard_lots(order.quantity, lot_size)
    }

    /// Purchase orders to place now.
    fn purchase(&mut self, now: PlantTime, stock: &[MaterialView]) -> Vec<PurchaseRequest>;

    /// Whether this policy plans ahead; only then does the plant build [`Floor`]s for it.
    fn wants_floor(&self) -> bool {
        false
    }

    /// The floor after work was released, a machine failed or a machine came back: replan.
    fn plan(&mut self, _floor: &Floor) {}

    /// Whether a planned service starting or ending is also an event to replan on (a closed
    /// loop reschedules on every change of capacity, not only on breakdowns and releases).
    fn replan_on_service(&self) -> bool {
        false
    }

    /// Whether a free machine with work waiting should stay idle until a later time (e.g. an
    /// energy-intensive machine waiting out a peak tariff): `Some(t)` with `t` after `now`
    /// holds it, and it is offered the work again at `t`. Asked before [`Policy::dispatch`].
    fn hold_until(
        &mut self,
        _now: PlantTime,
        _machine: MachineId,
        _candidates: &[QueuedOp],
    ) -> Option<PlantTime> {
        None
    }
}

/// A policy that takes some decisions itself and leaves every other one to an inner policy
/// (a skill wrapped around the tier-0 rules, commands from outside, …). Implement this instead
/// of [`Policy`], overriding only the decisions the layer takes: the blanket implementation
/// forwards the rest, so a decision added to `Policy` reaches the inner policy through every
/// layer without each one repeating it.
pub trait Layer {
    type Inner: Policy;
    fn inner(&self) -> &Self::Inner;
    fn inner_mut(&mut self) -> &mut Self::Inner;
    /// Appended to the inner policy's name, e.g. `cbm` in `edd+pm+reorder+cbm`.
    fn label(&self) -> &str;

    fn dispatch(&mut self, now: PlantTime, machine: MachineId, candidates: &[QueuedOp]) -> usize {
        self.inner_mut().dispatch(now, machine, candidates)
    }
    fn start_maintenance(&mut self, view: &MachineView) -> bool {
        self.inner_mut().start_maintenance(view)
    }
    fn process_params(
        &mut self,
        machine: MachineId,
        product: usize,
        step: usize,
        specs: &[ParamSpec],
    ) -> Vec<f64> {
        self.inner_mut()
            .process_params(machine, product, step, specs)
    }
    fn release(&mut self, now: PlantTime, pending: &[OrderView]) -> Vec<usize> {
        self.inner_mut().release(now, pending)
    }
    fn lots(&mut self, now: PlantTime, order: &OrderView, lot_size: u32) -> Vec<Lot> {
        self.inner_mut().lots(now, order, lot_size)
    }
    fn purchase(&mut self, now: PlantTime, stock: &[MaterialView]) -> Vec<PurchaseRequest> {
        self.inner_mut().purchase(now, stock)
    }
    fn wants_floor(&self) -> bool {
        self.inner().wants_floor()
    }
    fn plan(&mut self, floor: &Floor) {
        self.inner_mut().plan(floor);
    }
    fn replan_on_service(&self) -> bool {
        self.inner().replan_on_service()
    }
    fn hold_until(
        &mut self,
        now: PlantTime,
        machine: MachineId,
        candidates: &[QueuedOp],
    ) -> Option<PlantTime> {
        self.inner_mut().hold_until(now, machine, candidates)
    }
}

impl<L: Layer> Policy for L {
    fn name(&self) -> String {
        format!("{}+{}", self.inner().name(), self.label())
    }
    fn dispatch(&mut self, now: PlantTime, machine: MachineId, candidates: &[QueuedOp]) -> usize {
        Layer::dispatch(self, now, machine, candidates)
    }
    fn start_maintenance(&mut self, view: &MachineView) -> bool {
        Layer::start_maintenance(self, view)
    }
    fn process_params(
        &mut self,
        machine: MachineId,
        product: usize,
        step: usize,
        specs: &[ParamSpec],
    ) -> Vec<f64> {
        Layer::process_params(self, machine, product, step, specs)
    }
    fn release(&mut self, now: PlantTime, pending: &[OrderView]) -> Vec<usize> {
        Layer::release(self, now, pending)
    }
    fn lots(&mut self, now: PlantTime, order: &OrderView, lot_size: u32) -> Vec<Lot> {
        Layer::lots(self, now, order, lot_size)
    }
    fn purchase(&mut self, now: PlantTime, stock: &[MaterialView]) -> Vec<PurchaseRequest> {
        Layer::purchase(self, now, stock)
    }
    fn wants_floor(&self) -> bool {
        Layer::wants_floor(self)
    }
    fn plan(&mut self, floor: &Floor) {
        Layer::plan(self, floor);
    }
    fn replan_on_service(&self) -> bool {
        Layer::replan_on_service(self)
    }
    fn hold_until(
        &mut self,
        now: PlantTime,
        machine: MachineId,
        candidates: &[QueuedOp],
    ) -> Option<PlantTime> {
        Layer::hold_until(self, now, machine, candidates)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchRule {
    /// First in, first out: the operation that has waited longest.
    Fifo,
    /// Earliest due date.
    Edd,
    /// Shortest processing time.
    Spt,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaintenanceRule {
    /// Repair only after failures.
    RunToFailure,
    /// Service every `run_h` running hours; `None` uses each machine type's recommendation.
    FixedInterval { run_h: Option<f64> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurchasingRule {
    /// Order `order_qty` whenever on hand + on order falls to the reorder point.
    ReorderPoint,
    /// Never order: the plant lives on its opening stock.
    None,
}

/// The tier-0 factory: fixed rules, no AI.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselinePolicy {
    pub dispatch: DispatchRule,
    pub maintenance: MaintenanceRule,
    pub purchasing: PurchasingRule,
}

impl Default for BaselinePolicy {
    fn default() -> Self {
        BaselinePolicy {
            dispatch: DispatchRule::Edd,
            maintenance: MaintenanceRule::FixedInterval { run_h: None },
            purchasing: PurchasingRule::ReorderPoint,
        }
    }
}

impl std::str::FromStr for DispatchRule {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<Self, RuleError> {
        match s.to_ascii_lowercase().as_str() {
            "fifo" => Ok(DispatchRule::Fifo),
            "edd" => Ok(DispatchRule::Edd),
            "spt" => Ok(DispatchRule::Spt),
            _ => Err(RuleError::UnknownDispatchRule(s.to_owned())),
        }
    }
}

impl std::str::FromStr for MaintenanceRule {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<Self, RuleError> {
        let lower = s.to_ascii_lowercase();
        match lower.as_str() {
            "rtf" | "run-to-failure" => Ok(MaintenanceRule::RunToFailure),
            "pm" => Ok(MaintenanceRule::FixedInterval { run_h: None }),
            other => other
                .strip_prefix("pm:")
                .and_then(|h| h.parse::<f64>().ok())
                .filter(|h| h.is_finite() && *h > 0.0)
                .map(|h| MaintenanceRule::FixedInterval { run_h: Some(h) })
                .ok_or_else(|| RuleError::UnknownMaintenanceRule(s.to_owned())),
        }
    }
}

impl std::str::FromStr for PurchasingRule {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<Self, RuleError> {
        match s.to_ascii_lowercase().as_str() {
            "reorder" | "rop" => Ok(PurchasingRule::ReorderPoint),
            "none" => Ok(PurchasingRule::None),
            _ => Err(RuleError::UnknownPurchasingRule(s.to_owned())),
        }
    }
}

impl Policy for BaselinePolicy {
    fn name(&self) -> String {
        let dispatch = match self.dispatch {
            DispatchRule::Fifo => "fifo",
            DispatchRule::Edd => "edd",
            DispatchRule::Spt => "spt",
        };
        let maintenance = match self.maintenance {
            MaintenanceRule::RunToFailure => "rtf".to_owned(),
            MaintenanceRule::FixedInterval { run_h: None } => "pm".to_owned(),
            MaintenanceRule::FixedInterval { run_h: Some(h) } => format!("pm:{h}"),
        };
        let purchasing = match self.purchasing {
            PurchasingRule::ReorderPoint => "reorder",
            PurchasingRule::None => "none",
        };
        format!("{dispatch}+{maintenance}+{purchasing}")
    }

    fn dispatch(&mut self, _now: PlantTime, _machine: MachineId, candidates: &[QueuedOp]) -> usize {
        // Ties break on the work-order number so that results never depend on queue order.
        let key = |op: &QueuedOp| -> (f64, u32) {
            match self.dispatch {
                DispatchRule::Fifo => (op.ready_since.0 as f64, op.job),
                DispatchRule::Edd => (op.due.0 as f64, op.job),
                DispatchRule::Spt => (op.processing_s, op.job),
            }
        };
        candidates
            .iter()
            .enumerate()
            .min_by(|a, b| {
                key(a.1)
                    .partial_cmp(&key(b.1))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .map_or(0, |(i, _)| i)
    }

    fn start_maintenance(&mut self, view: &MachineView) -> bool {
        match self.maintenance {
            MaintenanceRule::RunToFailure => false,
            MaintenanceRule::FixedInterval { run_h } => {
                view.run_h_since_maintenance >= run_h.unwrap_or(view.recommended_interval_h)
            }
        }
    }

    fn purchase(&mut self, _now: PlantTime, stock: &[MaterialView]) -> Vec<PurchaseRequest> {
        if self.purchasing == PurchasingRule::None {
            return Vec::new();
        }
        stock
            .iter()
            .filter(|m| m.on_hand + m.on_order <= m.reorder_point)
            .map(|m| {
                // Enough lots to bring the position back above the reorder point.
                let short = m.reorder_point - (m.on_hand + m.on_order);
                let lots = (short / m.order_qty).floor() + 1.0;
                PurchaseRequest {
                    material: m.material,
                    quantity: lots * m.order_qty,
                }
            })
            .collect()
    }
}

/// Any policy behind a box, itself a policy: lets a coordinator stack layers chosen at run time
/// (a link cut, a skill left out) without a type per combination.
pub struct Boxed(pub Box<dyn Policy + Send>);

impl std::fmt::Debug for Boxed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Boxed").field(&self.0.name()).finish()
    }
}

impl Policy for Boxed {
    fn name(&self) -> String {
        self.0.name()
    }
    fn dispatch(&mut self, now: PlantTime, machine: MachineId, candidates: &[QueuedOp]) -> usize {
        self.0.dispatch(now, machine, candidates)
    }
    fn start_maintenance(&mut self, view: &MachineView) -> bool {
        self.0.start_maintenance(view)
    }
    fn process_params(
        &mut self,
        machine: MachineId,
        product: usize,
        step: usize,
        specs: &[ParamSpec],
    ) -> Vec<f64> {
        self.0.process_params(machine, product, step, specs)
    }
    fn release(&mut self, now: PlantTime, pending: &[OrderView]) -> Vec<usize> {
        self.0.release(now, pending)
    }
    fn lots(&mut self, now: PlantTime, order: &OrderView, lot_size: u32) -> Vec<Lot> {
        self.0.lots(now, order, lot_size)
    }
    fn purchase(&mut self, now: PlantTime, stock: &[MaterialView]) -> Vec<PurchaseRequest> {
        self.0.purchase(now, stock)
    }
    fn wants_floor(&self) -> bool {
        self.0.wants_floor()
    }
    fn plan(&mut self, floor: &Floor) {
        self.0.plan(floor);
    }
    fn replan_on_service(&self) -> bool {
        self.0.replan_on_service()
    }
    fn hold_until(
        &mut self,
        now: PlantTime,
        machine: MachineId,
        candidates: &[QueuedOp],
    ) -> Option<PlantTime> {
        self.0.hold_until(now, machine, candidates)
    }
}
