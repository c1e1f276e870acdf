//! The closed loop of tier 3: decisions executed through guarded commands, their effects
//! measured from what the plant reports and linked back to them, and models updated from
//! those outcomes.
//!
//! - Set-points pass a guard: values outside the equipment's bounds are refused; a change of
//!   more than a quarter of a parameter's range from the current value needs a person's
//!   approval (the approval queue; the twin's engineer approves at the next shift change), and
//!   every tuned step keeps a control group — one operation in ten runs at the previous values —
//!   so the verified effect is measured under the same wear and mix. A tuned setting that does
//!   not beat its control in production is rolled back. Automatic services are rate-limited:
//!   at most a fifth of the fleet in a planned service at once (the plan board enforces it;
//!   urgent stops are never held back).
//! - [`LoopObserver`] reads the plant's events: a maintenance decision's outcome is the service
//!   it led to (or the failure that came first); a quote's outcome is the delivery against the
//!   promise; a step's defect-risk estimate is re-estimated from production (a model update)
//!   and the settings decision gets its A/B outcome; each order's flow time is measured.
//! - [`ReleaseControl`] releases an order when its due date comes within the product's measured
//!   flow time (90th percentile, with a margin) instead of on arrival, so work in process stays
//!   low; each move of a product's lead time is a model update.

use aifactory_core::{EventKind, PlantEvent, TelemetryReading, Timestamp};
use aifactory_plant::{MachineId, Observer, ParamSpec, PlantTime, Policy, QueuedOp};
use aifactory_skills::board::PlanBoard;
use aifactory_skills::condition::{ConditionAlarm, SharedWatch};
use aifactory_skills::log::SkillLog;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// A change larger than this share of a parameter's range needs a person's approval.
pub const APPROVAL_SHARE: f64 = 0.25;
/// The engineer's approval arrives this long after the request (the next shift change).
pub const APPROVAL_DELAY_MS: u64 = 8 * 3_600_000;
/// One operation in this many runs at the previous settings: the control group.
pub const CONTROL_EVERY: u64 = 10;
/// Units at the tuned settings before a step's effect is judged (the control arm then has
/// about a tenth of that).
pub const VERIFY_UNITS: u64 = 2_000;
/// Units produced at a step before its risk estimate is re-estimated from production.
pub const RISK_UNITS: u64 = 100;
/// Units at the previous settings before the control arm can judge a tuned setting.
pub const CONTROL_UNITS: u64 = 200;
/// A tuned setting is rolled back when it is worse than its control at this one-sided z.
pub const ROLLBACK_Z: f64 = -1.645;
/// Continuing optimisation (evolutionary operation): each move is this share of a parameter's
/// range — well inside what the guard lets through without a person.
pub const SEARCH_STEP_SHARE: f64 = 0.1;
/// Units each arm (the current settings and the move) makes before a move is judged.
pub const SEARCH_UNITS: u64 = 1_000;
/// Operations each arm runs before a move is judged (the time test needs several).
pub const SEARCH_OPS: u64 = 8;
/// A move is adopted when its seconds per good unit beat the current settings' at this
/// one-sided t, and its scrap rate is no higher than theirs (`SEARCH_SCRAP_Z`): a faster
/// cycle is not bought with scrap.
pub const SEARCH_ADOPT_T: f64 = 1.645;
pub const SEARCH_SCRAP_Z: f64 = 0.0;

/// A set-point change the guard let through (now or after approval).
#[derive(Debug, Clone, PartialEq)]
pub struct GuardedChange {
    pub values: Vec<f64>,
    pub previous: Vec<f64>,
    /// When the new values take effect (twin time): at once, or once approved.
    pub effective_from: PlantTime,
    pub needs_approval: bool,
}

/// Checks a proposed change against the equipment's bounds and the approval rule.
/// `Err` names the parameter outside its bounds.
pub fn guard_change(
    specs: &[(String, f64, f64)],
    previous: &[f64],
    proposed: &[f64],
    now: PlantTime,
) -> Result<GuardedChange, String> {
    let mut needs_approval = false;
    for (((name, min, max), &old), &new) in specs.iter().zip(previous).zip(proposed) {
        if !(new.is_finite() && new >= *min && new <= *max) {
            return Err(format!(
                "{name} = {new} is outside its bounds [{min}, {max}]"
            ));
        }
        let range = (max - min).abs().max(f64::EPSILON);
        if (new - old).abs() / range > APPROVAL_SHARE {
            needs_approval = true;
        }
    }
    Ok(GuardedChange {
        values: proposed.to_vec(),
        previous: previous.to_vec(),
        effective_from: if needs_approval {
            PlantTime(now.0 + APPROVAL_DELAY_MS)
        } else {
            now
        },
        needs_approval,
    })
}

/// Production counts of one arm.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Arm {
    good: u64,
    scrapped: u64,
}

impl Arm {
    fn units(&self) -> u64 {
        self.good + self.scrapped
    }
    fn rate(&self) -> f64 {
        self.scrapped as f64 / self.units().max(1) as f64
    }
}

/// One arm of a search move: production and per-operation seconds per good unit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct SearchArm {
    counts: Arm,
    ops: u64,
    /// Sum and sum of squares of each timed operation's running seconds per good unit.
    s_per_good: (f64, f64),
    timed: u64,
}

impl SearchArm {
    fn mean_var(&self) -> (f64, f64) {
        let n = self.timed.max(1) as f64;
        let mean = self.s_per_good.0 / n;
        let var = if self.timed > 1 {
            ((self.s_per_good.1 - n * mean * mean) / (n - 1.0)).max(0.0)
        } else {
            f64::INFINITY
        };
        (mean, var)
    }
}

/// The continuing search around a step's settings: one small move at a time, run beside the
/// current settings (operations alternate), adopted when it makes good units faster without
/// more scrap, dropped otherwise.
#[derive(Debug, Clone, Default)]
struct Search {
    /// Each parameter's bounds.
    bounds: Vec<(f64, f64)>,
    centre: Vec<f64>,
    /// The move under test: its values, parameter, direction and decision.
    candidate: Option<(Vec<f64>, usize, f64, Option<String>)>,
    /// The next direction to try: parameter index × 2 + (0 up, 1 down).
    next_direction: usize,
    /// Moves dropped in a row (every direction failing: the search rests at the centre).
    dropped_in_a_row: usize,
    started: u64,
    centre_arm: SearchArm,
    candidate_arm: SearchArm,
    adopted: u64,
}

/// Which settings an operation ran at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RanAt {
    Tuned,
    Control,
    SearchCentre,
    SearchMove,
}

/// One routing step under the loop.
#[derive(Debug, Clone, Default)]
struct StepLoop {
    risk_decision: Option<String>,
    settings_decision: Option<String>,
    risk_at_defaults: f64,
    /// The guarded change, if the step was tuned.
    change: Option<GuardedChange>,
    /// Operations started on the step (for the control group).
    started: u64,
    tuned: Arm,
    control: Arm,
    risk_measured: bool,
    verified: bool,
    rolled_back: bool,
    /// The continuing search, once the step's settings are settled.
    search: Option<Search>,
}

#[derive(Debug)]
struct LoopState {
    log: Option<SkillLog>,
    start: Timestamp,
    board: PlanBoard,
    machine_index: HashMap<String, MachineId>,
    product_index: HashMap<String, usize>,
    steps: BTreeMap<(usize, usize), StepLoop>,
    /// What each machine is running: (product, step, which settings).
    running: Vec<Option<(usize, usize, RanAt)>>,
    /// When each machine's running operation began cutting (after its set-up), or `None`
    /// once a failure interrupted it (its time then says nothing about the settings).
    cutting_since: Vec<Option<Timestamp>>,
    /// The continuing search is on (tier 3, unless cut).
    search: bool,
    /// Quotes awaiting delivery: sales order → (decision, promised plant time ms).
    quotes: HashMap<String, (String, i64)>,
    /// Orders released by the release control: sales order → (product, released at).
    released: HashMap<String, (usize, PlantTime)>,
    /// Measured flow times per product (hours, release to completion), the latest last.
    flow_h: BTreeMap<usize, Vec<f64>>,
    /// The release lead time last reported per product (hours).
    reported_lead_h: BTreeMap<usize, f64>,
    /// Latest twin time seen by the policy (set-points take effect by it).
    now: PlantTime,
    /// The condition watch on the machines' signals (the anomaly trigger; the maintenance skill
    /// reads the same watch's alarms), and where its decisions go.
    watch: Option<SharedWatch>,
    anomaly_log: Option<SkillLog>,
    outcomes: u64,
    model_updates: u64,
    rollbacks: u64,
    anomalies: u64,
    search_moves: u64,
    search_adopted: u64,
}

/// The loop's shared state: the policy layers write what they decided, the observer measures.
#[derive(Debug, Clone)]
pub struct ClosedLoop(Arc<Mutex<LoopState>>);

/// What the loop did in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopCounts {
    pub outcomes: u64,
    pub model_updates: u64,
    pub rollbacks: u64,
    /// Anomalies the condition watch raised (each brings a machine's service forward).
    pub anomalies: u64,
    /// Moves the continuing search tried, and adopted.
    pub search_moves: u64,
    pub search_adopted: u64,
}

impl ClosedLoop {
    pub(crate) fn new(
        log: Option<SkillLog>,
        start: Timestamp,
        board: PlanBoard,
        machine_ids: Vec<String>,
        product_ids: Vec<String>,
        anomaly_trigger: bool,
        search: bool,
    ) -> Self {
        let machines = machine_ids.len();
        ClosedLoop(Arc::new(Mutex::new(LoopState {
            anomaly_log: log.as_ref().map(|l| l.with_prefix("ANOM")),
            watch: anomaly_trigger.then(|| SharedWatch::new(machine_ids.clone())),
            log,
            start,
            board,
            machine_index: machine_ids
                .into_iter()
                .enumerate()
                .map(|(i, id)| (id, i))
                .collect(),
            product_index: product_ids
                .into_iter()
                .enumerate()
                .map(|(i, id)| (id, i))
                .collect(),
            steps: BTreeMap::new(),
            running: vec![None; machines],
            cutting_since: vec![None; machines],
            search,
            quotes: HashMap::new(),
            released: HashMap::new(),
            flow_h: BTreeMap::new(),
            reported_lead_h: BTreeMap::new(),
            now: PlantTime(0),
            outcomes: 0,
            model_updates: 0,
            rollbacks: 0,
            anomalies: 0,
            search_moves: 0,
            search_adopted: 0,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, LoopState> {
        // Every writer leaves whole entries behind: a poisoned lock still holds usable data.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The loop's condition watch (none with the anomaly trigger cut): the maintenance skill
    /// acts on its alarms at once, as at tiers 1 and 2.
    pub(crate) fn condition_watch(&self) -> Option<SharedWatch> {
        self.lock().watch.clone()
    }

    pub fn counts(&self) -> LoopCounts {
        let s = self.lock();
        LoopCounts {
            outcomes: s.outcomes,
            model_updates: s.model_updates,
            rollbacks: s.rollbacks,
            anomalies: s.anomalies,
            search_moves: s.search_moves,
            search_adopted: s.search_adopted,
        }
    }

    /// A step's quality decisions, and its guarded change if it was tuned.
    pub(crate) fn register_step(
        &self,
        step: (usize, usize),
        risk_decision: Option<String>,
        settings_decision: Option<String>,
        risk_at_defaults: f64,
        change: Option<GuardedChange>,
    ) {
        self.lock().steps.insert(
            step,
            StepLoop {
                risk_decision,
                settings_decision,
                risk_at_defaults,
                change,
                ..StepLoop::default()
            },
        );
    }

    /// A quote given for `order`, promising delivery at plant time `promised_ms`.
    pub(crate) fn register_quote(&self, order: String, decision: String, promised_ms: i64) {
        self.lock().quotes.insert(order, (decision, promised_ms));
    }
}

/// Runs production at the guarded set-points, with the control group; every other decision is
/// the inner policy's.
#[derive(Debug)]
pub struct GuardedSettings<P> {
    inner: P,
    state: ClosedLoop,
}

impl<P: Policy> GuardedSettings<P> {
    pub(crate) fn new(inner: P, state: ClosedLoop) -> Self {
        GuardedSettings { inner, state }
    }
}

impl<P: Policy> aifactory_plant::Layer for GuardedSettings<P> {
    type Inner = P;
    fn inner(&self) -> &P {
        &self.inner
    }
    fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }
    fn label(&self) -> &str {
        "guarded-settings"
    }

    fn dispatch(&mut self, now: PlantTime, machine: MachineId, candidates: &[QueuedOp]) -> usize {
        self.state.lock().now = now;
        self.inner.dispatch(now, machine, candidates)
    }

    fn process_params(
        &mut self,
        machine: MachineId,
        product: usize,
        step: usize,
        specs: &[ParamSpec],
    ) -> Vec<f64> {
        let fallback = self.inner.process_params(machine, product, step, specs);
        let mut state = self.state.lock();
        let state = &mut *state;
        let now = state.now;
        let (values, ran_at) = match state.steps.get_mut(&(product, step)) {
            Some(s) if s.search.is_some() => {
                let search = s.search.as_mut().map(|search| {
                    search.started += 1;
                    match &search.candidate {
                        Some((values, ..)) if search.started % 2 == 0 => {
                            (values.clone(), RanAt::SearchMove)
                        }
                        _ => (search.centre.clone(), RanAt::SearchCentre),
                    }
                });
                search.unwrap_or((fallback, RanAt::Control))
            }
            Some(s) => match &s.change {
                Some(c) if !s.rolled_back && now >= c.effective_from => {
                    s.started += 1;
                    let control = s.started % CONTROL_EVERY == 0 && !s.verified;
                    if control {
                        (c.previous.clone(), RanAt::Control)
                    } else {
                        (c.values.clone(), RanAt::Tuned)
                    }
                }
                _ => (fallback, RanAt::Control),
            },
            None => (fallback, RanAt::Control),
        };
        if let Some(slot) = state.running.get_mut(machine) {
            *slot = Some((product, step, ran_at));
        }
        // A settled step with no search yet starts one from the settings it runs at.
        if state.search
            && let Some(s) = state.steps.get_mut(&(product, step))
            && s.search.is_none()
            && !specs.is_empty()
            && values.len() == specs.len()
            && settled(s)
        {
            s.search = Some(Search {
                bounds: specs.iter().map(|p| (p.min, p.max)).collect(),
                centre: values.clone(),
                ..Search::default()
            });
            propose_move(state, (product, step), now);
        }
        if values.len() == specs.len() {
            values
                .iter()
                .zip(specs)
                .map(|(v, s)| v.clamp(s.min, s.max))
                .collect()
        } else {
            specs.iter().map(|s| s.default).collect()
        }
    }
}

/// Flow times kept per product (the latest).
const FLOW_SAMPLES: usize = 60;
/// Flow times needed before the release control holds a product's orders.
const FLOW_MIN_SAMPLES: usize = 10;
/// An order is released this far ahead of its due date: the 90th percentile of the product's
/// measured flow times, times this factor, plus `RELEASE_BUFFER_H`.
const RELEASE_FACTOR: f64 = 1.3;
const RELEASE_BUFFER_H: f64 = 24.0;

/// The release lead time of a product from its measured flow times, hours.
fn release_lead_h(samples: &[f64]) -> Option<f64> {
    if samples.len() < FLOW_MIN_SAMPLES {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let q90 = sorted[((sorted.len() - 1) as f64 * 0.9).round() as usize];
    Some(q90 * RELEASE_FACTOR + RELEASE_BUFFER_H)
}

/// Releases orders to the floor when their due date comes within the product's measured flow
/// time (with a margin), not on arrival, so work in process stays low; every other decision
/// is the inner policy's. The flow times are outcomes the loop measures, and each move of a
/// product's lead time is a model update.
#[derive(Debug)]
pub struct ReleaseControl<P> {
    inner: P,
    state: ClosedLoop,
    product_ids: Vec<String>,
}

impl<P: Policy> ReleaseControl<P> {
    pub(crate) fn new(inner: P, state: ClosedLoop, product_ids: Vec<String>) -> Self {
        ReleaseControl {
            inner,
            state,
            product_ids,
        }
    }
}

impl<P: Policy> aifactory_plant::Layer for ReleaseControl<P> {
    type Inner = P;
    fn inner(&self) -> &P {
        &self.inner
    }
    fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }
    fn label(&self) -> &str {
        "release-control"
    }

    fn release(&mut self, now: PlantTime, pending: &[aifactory_plant::OrderView]) -> Vec<usize> {
        let mut chosen = self.inner.release(now, pending);
        let mut state = self.state.lock();
        let state = &mut *state;
        chosen.retain(|&i| {
            let Some(order) = pending.get(i) else {
                return false;
            };
            let lead = state
                .flow_h
                .get(&order.product)
                .and_then(|s| release_lead_h(s));
            let go = lead.is_none_or(|h| now.0 as f64 + h * 3_600_000.0 >= order.due.0 as f64);
            if go {
                state
                    .released
                    .insert(format!("SO-{:06}", order.order + 1), (order.product, now));
            }
            go
        });
        // Each product's lead time, reported when it first exists and on moves of 15 %.
        for (&product, samples) in &state.flow_h {
            let Some(lead) = release_lead_h(samples) else {
                continue;
            };
            let before = state.reported_lead_h.get(&product).copied();
            if before.is_some_and(|b| (lead - b).abs() <= 0.15 * b) {
                continue;
            }
            state.reported_lead_h.insert(product, lead);
            if let Some(log) = &state.log {
                let name = self
                    .product_ids
                    .get(product)
                    .cloned()
                    .unwrap_or_else(|| format!("#{product}"));
                log.model_update(
                    now,
                    "scheduling",
                    "release-lead-time",
                    (
                        before.map_or_else(|| "0/on-arrival".to_owned(), |b| format!("lead-{b:.0}h")),
                        format!("lead-{lead:.0}h"),
                    ),
                    format!(
                        "{name}: {} measured flow times, 90th percentile × {RELEASE_FACTOR} + {RELEASE_BUFFER_H} h",
                        samples.len()
                    ),
                );
                state.model_updates += 1;
            }
        }
        chosen
    }
}

/// Measures outcomes from the plant's events and links them to the decisions behind them.
#[derive(Debug)]
pub struct LoopObserver {
    state: ClosedLoop,
}

impl LoopObserver {
    pub(crate) fn new(state: ClosedLoop) -> Self {
        LoopObserver { state }
    }
}

fn twin_time(start: Timestamp, at: Timestamp) -> PlantTime {
    PlantTime(u64::try_from(at.0.saturating_sub(start.0)).unwrap_or(0))
}

impl Observer for LoopObserver {
    fn wants_events(&self) -> bool {
        true
    }

    fn event(&mut self, event: PlantEvent) {
        let mut state = self.state.lock();
        let state = &mut *state;
        let now = twin_time(state.start, event.at);
        let machine = event
            .machine
            .as_deref()
            .and_then(|m| state.machine_index.get(m).copied());
        if let Some(watch) = &state.watch {
            watch.observe_event(&event);
        }
        match event.kind {
            EventKind::OperationStarted => {
                if let Some(slot) = machine.and_then(|m| state.cutting_since.get_mut(m)) {
                    let setup_ms =
                        (event.detail["setup_s"].as_f64().unwrap_or(0.0) * 1000.0) as i64;
                    *slot = Some(Timestamp(event.at.0.saturating_add(setup_ms.max(0))));
                }
            }
            EventKind::MaintenanceStarted | EventKind::MachineFailed => {
                let Some(m) = machine else { return };
                if let Some(slot) = state.cutting_since.get_mut(m) {
                    *slot = None;
                }
                let failed = event.kind == EventKind::MachineFailed;
                let awaiting = {
                    let mut board = state.board.lock();
                    board.anomalies.remove(&m);
                    board.awaiting_service.remove(&m)
                };
                let Some(log) = &state.log else { return };
                for (id, decided) in awaiting.unwrap_or_default() {
                    log.outcome(
                        now,
                        &id,
                        serde_json::json!({
                            "machine": event.machine,
                            "result": if failed { "failed_before_service" } else { "serviced" },
                            "after_h": (now.0.saturating_sub(decided.0)) as f64 / 3_600_000.0,
                        }),
                        Some(!failed),
                    );
                    state.outcomes += 1;
                }
            }
            EventKind::OrderCompleted => {
                let Some(order) = &event.order else { return };
                if let Some((product, released)) = state.released.remove(order) {
                    let hours = now.0.saturating_sub(released.0) as f64 / 3_600_000.0;
                    let samples = state.flow_h.entry(product).or_default();
                    samples.push(hours);
                    if samples.len() > FLOW_SAMPLES {
                        samples.remove(0);
                    }
                }
                if let (Some((id, promised)), Some(log)) = (state.quotes.remove(order), &state.log)
                {
                    let late_h = (event.at.0 - promised) as f64 / 3_600_000.0;
                    log.outcome(
                        now,
                        &id,
                        serde_json::json!({
                            "order": order,
                            "delivered_vs_promise_h": late_h,
                        }),
                        Some(late_h <= 0.0),
                    );
                    state.outcomes += 1;
                }
            }
            EventKind::OperationCompleted => {
                let Some(m) = machine else { return };
                let Some(Some((product, step, ran_at))) = state.running.get(m).copied() else {
                    return;
                };
                let cutting_since = state.cutting_since.get_mut(m).and_then(Option::take);
                let (good, scrapped) = (
                    event.detail["good"].as_u64().unwrap_or(0),
                    event.detail["scrapped"].as_u64().unwrap_or(0),
                );
                // Set-points are asked for only on steps that have them: the machine's record
                // counts only if this completion is that operation.
                let same_operation = event.detail["product"]
                    .as_str()
                    .and_then(|p| state.product_index.get(p))
                    == Some(&product)
                    && event.detail["step"].as_u64() == Some(step as u64);
                if !same_operation {
                    return;
                }
                let Some(s) = state.steps.get_mut(&(product, step)) else {
                    return;
                };
                let arm = match (ran_at, s.search.as_mut()) {
                    (RanAt::Tuned, _) => &mut s.tuned,
                    (RanAt::Control, _) => &mut s.control,
                    (RanAt::SearchCentre | RanAt::SearchMove, Some(search)) => {
                        let arm = if ran_at == RanAt::SearchMove {
                            &mut search.candidate_arm
                        } else {
                            &mut search.centre_arm
                        };
                        arm.ops += 1;
                        if let (Some(since), true) = (cutting_since, good > 0) {
                            // Cutting time per good unit, against the machine's nameplate time
                            // for the units where it reports one, so that operations on a slow
                            // and a fast machine compare.
                            let cut_s = (event.at.0 - since.0).max(0) as f64 / 1000.0;
                            let units = (good + scrapped) as f64;
                            let per_unit = match event.detail["ideal_s"].as_f64() {
                                Some(ideal) if ideal > 0.0 => cut_s / ideal,
                                _ => cut_s / units,
                            };
                            let per_good = per_unit * units / good as f64;
                            arm.s_per_good.0 += per_good;
                            arm.s_per_good.1 += per_good * per_good;
                            arm.timed += 1;
                        }
                        &mut arm.counts
                    }
                    (_, None) => return,
                };
                arm.good += good;
                arm.scrapped += scrapped;
                measure_step(state, (product, step), now);
                judge_move(state, (product, step), now);
            }
            _ => {}
        }
    }

    fn wants_telemetry(&self) -> bool {
        self.state.lock().watch.is_some()
    }

    fn telemetry(&mut self, readings: [TelemetryReading; 3]) {
        for reading in readings {
            self.reading(reading);
        }
    }

    fn reading(&mut self, reading: TelemetryReading) {
        let mut state = self.state.lock();
        let state = &mut *state;
        let Some(watch) = &state.watch else {
            return;
        };
        if let Some(alarm) = watch.observe_reading(&reading) {
            raise_anomaly(state, &reading, alarm);
        }
    }
}

/// An anomaly the condition watch confirmed: a decision (cited by the maintenance decision it
/// leads to, and answered by the machine's next service or failure) and a flag on the board.
fn raise_anomaly(state: &mut LoopState, reading: &TelemetryReading, alarm: ConditionAlarm) {
    let now = twin_time(state.start, alarm.at);
    let series = format!("{}/{}", reading.machine, reading.signal);
    let id = state.anomaly_log.as_mut().map(|log| {
        log.record(now, |id, at| {
            let config = aifactory_skills::anomaly::AnomalyConfig::default();
            let mut decision = aifactory_skills::anomaly::alarm_decision(
                id,
                at,
                &series,
                alarm.value,
                alarm.score,
                &config,
            );
            decision.output["machine"] = serde_json::json!(reading.machine);
            decision.output["no_load_level"] = serde_json::json!(alarm.level);
            decision.output["recent_over_level"] = serde_json::json!(alarm.recent_ratio);
            decision.output["action"] = serde_json::json!(
                "bring the machine's service forward: its no-load current is rising"
            );
            decision.executed_by = aifactory_core::ExecutedBy::Auto;
            decision
        })
    });
    state.anomalies += 1;
    let mut board = state.board.lock();
    if let Some(id) = &id {
        board
            .awaiting_service
            .entry(alarm.machine)
            .or_default()
            .push((id.clone(), now));
    }
    board.anomalies.insert(alarm.machine, (id, now));
}

/// A step's settings are settled once production has measured its risk and any tuned change
/// has been verified (kept or rolled back): the continuing search starts from there.
fn settled(s: &StepLoop) -> bool {
    s.risk_measured && (s.change.is_none() || s.verified || s.rolled_back)
}

fn product_name(state: &LoopState, product: usize) -> String {
    state
        .product_index
        .iter()
        .find(|&(_, &i)| i == product)
        .map_or_else(|| format!("#{product}"), |(id, _)| id.clone())
}

/// Puts the next move of a step's search under test: the next direction (each parameter up,
/// then down) that stays in bounds and passes the guard, as a process-settings decision.
/// Every direction dropped in a row: the search rests at its centre.
fn propose_move(state: &mut LoopState, key: (usize, usize), now: PlantTime) {
    let product = product_name(state, key.0);
    let Some(s) = state.steps.get_mut(&key) else {
        return;
    };
    let cited = s.settings_decision.clone();
    let Some(search) = s.search.as_mut() else {
        return;
    };
    search.candidate = None;
    search.started = 0;
    search.centre_arm = SearchArm::default();
    search.candidate_arm = SearchArm::default();
    let directions = 2 * search.bounds.len();
    let mut chosen = None;
    while search.dropped_in_a_row < directions {
        let d = search.next_direction % directions;
        search.next_direction = (d + 1) % directions;
        let (param, sign) = (d / 2, if d % 2 == 0 { 1.0 } else { -1.0 });
        let (min, max) = search.bounds[param];
        let mut values = search.centre.clone();
        values[param] += sign * SEARCH_STEP_SHARE * (max - min);
        let specs: Vec<(String, f64, f64)> = search
            .bounds
            .iter()
            .enumerate()
            .map(|(i, &(lo, hi))| (format!("parameter {}", i + 1), lo, hi))
            .collect();
        match guard_change(&specs, &search.centre, &values, now) {
            Ok(change) if !change.needs_approval => {
                chosen = Some((values, param, sign, d));
                break;
            }
            _ => search.dropped_in_a_row += 1,
        }
    }
    let Some((values, param, sign, direction)) = chosen else {
        return;
    };
    let centre = search.centre.clone();
    let version = format!("centre-{}", search.adopted);
    let id = state.log.as_mut().map(|log| {
        let mut inputs_ref = format!("production:{product}/{}", key.1 + 1);
        if let Some(id) = &cited {
            inputs_ref.push_str(" decision:");
            inputs_ref.push_str(id);
        }
        log.record(now, |id, at| aifactory_core::Decision {
            id,
            at,
            skill: "process-settings".to_owned(),
            stage: aifactory_core::LifecycleStage::Design,
            inputs_ref,
            model: "evop".to_owned(),
            model_version: version,
            output: serde_json::json!({
                "product": product,
                "step": key.1 + 1,
                "centre": centre,
                "move": values,
                "parameter": param + 1,
                "direction": sign,
                "share_of_range": SEARCH_STEP_SHARE,
                "action": "run the move beside the current settings, every other operation; adopt it if good units come faster without more scrap",
            }),
            confidence: None,
            executed_by: aifactory_core::ExecutedBy::Auto,
            outcome: None,
        })
    });
    state.search_moves += 1;
    if let Some(search) = state.steps.get_mut(&key).and_then(|s| s.search.as_mut()) {
        search.candidate = Some((values, direction, sign, id));
    }
}

/// Judges a step's move once both arms have made enough: adopted when good units come
/// faster (one-sided t on seconds per good unit) and scrap is not worse; dropped otherwise.
/// Either way the move's decision gets its outcome, and the next move goes under test.
fn judge_move(state: &mut LoopState, key: (usize, usize), now: PlantTime) {
    let product = product_name(state, key.0);
    let Some(search) = state.steps.get_mut(&key).and_then(|s| s.search.as_mut()) else {
        return;
    };
    let Some((values, direction, _, id)) = search.candidate.clone() else {
        return;
    };
    let (a, b) = (search.centre_arm, search.candidate_arm);
    if a.counts.units() < SEARCH_UNITS
        || b.counts.units() < SEARCH_UNITS
        || a.timed < SEARCH_OPS
        || b.timed < SEARCH_OPS
    {
        return;
    }
    let ((centre_s, centre_var), (move_s, move_var)) = (a.mean_var(), b.mean_var());
    // A floor on the standard error: identical operations still tell a difference apart.
    let se = (centre_var / a.timed as f64 + move_var / b.timed as f64)
        .sqrt()
        .max(1e-9 * centre_s.abs());
    let t = if se > 0.0 && se.is_finite() {
        (centre_s - move_s) / se
    } else {
        0.0
    };
    let pooled = (a.counts.scrapped + b.counts.scrapped) as f64
        / (a.counts.units() + b.counts.units()).max(1) as f64;
    let scrap_se = (pooled
        * (1.0 - pooled)
        * (1.0 / a.counts.units().max(1) as f64 + 1.0 / b.counts.units().max(1) as f64))
        .sqrt();
    let z = if scrap_se > 0.0 {
        (a.counts.rate() - b.counts.rate()) / scrap_se
    } else {
        0.0
    };
    let adopt = t > SEARCH_ADOPT_T && z >= SEARCH_SCRAP_Z;
    let before = format!("centre-{}", search.adopted);
    if adopt {
        search.centre = values.clone();
        search.adopted += 1;
        search.dropped_in_a_row = 0;
        // A move that worked is tried again in the same direction.
        search.next_direction = direction;
    } else {
        search.dropped_in_a_row += 1;
    }
    let after = format!("centre-{}", search.adopted);
    if let Some(log) = &state.log {
        if let Some(id) = &id {
            log.outcome(
                now,
                id,
                serde_json::json!({
                    "centre_s_per_good_unit": centre_s,
                    "move_s_per_good_unit": move_s,
                    "t": t,
                    "centre_scrap_rate": a.counts.rate(),
                    "move_scrap_rate": b.counts.rate(),
                    "z": z,
                    "centre_units": a.counts.units(),
                    "move_units": b.counts.units(),
                    "adopted": adopt,
                }),
                Some(adopt),
            );
            state.outcomes += 1;
        }
        if adopt {
            log.model_update(
                now,
                "process-settings",
                "evop",
                (before, after),
                format!(
                    "{product} step {}: the move made good units in {move_s:.2} s against {centre_s:.2} s (t = {t:.2}), scrap {:.4} against {:.4}",
                    key.1 + 1,
                    b.counts.rate(),
                    a.counts.rate()
                ),
            );
            state.model_updates += 1;
        }
    }
    if adopt {
        state.search_adopted += 1;
    }
    propose_move(state, key, now);
}

/// Judges a step once its arms have enough units: the risk estimate (testing) is re-estimated
/// from production, and the tuned settings (design) are verified against their control.
fn measure_step(state: &mut LoopState, key: (usize, usize), now: PlantTime) {
    let Some(log) = &state.log else { return };
    let Some(s) = state.steps.get_mut(&key) else {
        return;
    };
    // The step's risk as it runs now (tuned and control together): the outcome of the risk
    // decision that led to it, and the estimate the risk model carries from here on.
    let all = Arm {
        good: s.tuned.good + s.control.good,
        scrapped: s.tuned.scrapped + s.control.scrapped,
    };
    if !s.risk_measured && all.units() >= RISK_UNITS {
        s.risk_measured = true;
        let production = all.rate();
        if let Some(id) = &s.risk_decision {
            log.outcome(
                now,
                id,
                serde_json::json!({
                    "predicted_scrap_risk_at_defaults": s.risk_at_defaults,
                    "production_scrap_rate": production,
                    "units": all.units(),
                    "tuned": s.change.is_some(),
                }),
                // Met: the step scraps no more than the risk that was predicted for it.
                Some(production <= s.risk_at_defaults.max(0.001) * 1.5),
            );
            state.outcomes += 1;
        }
        log.model_update(
            now,
            "defect-risk",
            "trial-scrap-rate",
            (
                "1/mean-of-trials".to_owned(),
                "2/production-rate".to_owned(),
            ),
            format!(
                "product {} step {}: {} production units, scrap {:.4} against {:.4} from trials",
                key.0,
                key.1 + 1,
                all.units(),
                production,
                s.risk_at_defaults
            ),
        );
        state.model_updates += 1;
    }
    if s.change.is_none() || s.verified {
        return;
    }
    if s.tuned.units() < VERIFY_UNITS || s.control.units() < CONTROL_UNITS {
        return;
    }
    s.verified = true;
    let (tuned, control) = (s.tuned.rate(), s.control.rate());
    // Two-proportion z-test: roll back when the tuned settings are significantly worse than
    // their control (one-sided, 95 %).
    let pooled = (s.tuned.scrapped + s.control.scrapped) as f64
        / (s.tuned.units() + s.control.units()).max(1) as f64;
    let se = (pooled
        * (1.0 - pooled)
        * (1.0 / s.tuned.units().max(1) as f64 + 1.0 / s.control.units().max(1) as f64))
        .sqrt();
    let z = if se > 0.0 {
        (control - tuned) / se
    } else {
        0.0
    };
    let keep = z > ROLLBACK_Z;
    if let Some(id) = &s.settings_decision {
        log.outcome(
            now,
            id,
            serde_json::json!({
                "tuned_scrap_rate": tuned,
                "control_scrap_rate": control,
                "tuned_units": s.tuned.units(),
                "control_units": s.control.units(),
                "z": z,
                "kept": keep,
            }),
            Some(keep),
        );
        state.outcomes += 1;
    }
    if !keep {
        s.rolled_back = true;
        state.rollbacks += 1;
        log.model_update(
            now,
            "process-settings",
            "bo-gp-ei",
            ("1/tuned".to_owned(), "1/rolled-back".to_owned()),
            format!(
                "product {} step {}: tuned scrap {tuned:.4} not better than control {control:.4} (z = {z:.2})",
                key.0,
                key.1 + 1
            ),
        );
        state.model_updates += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loop logging to `log` (ids `D-LOOP-…`), plant time from 0.
    fn logging_loop(
        log: &aifactory_core::DecisionLog,
        board: &PlanBoard,
        machines: &[&str],
        products: &[&str],
        (anomaly_trigger, search): (bool, bool),
    ) -> ClosedLoop {
        let start = Timestamp(0);
        ClosedLoop::new(
            Some(SkillLog::new(log.clone(), start, "LOOP")),
            start,
            board.clone(),
            machines.iter().map(|m| (*m).to_owned()).collect(),
            products.iter().map(|p| (*p).to_owned()).collect(),
            anomaly_trigger,
            search,
        )
    }

    #[test]
    fn every_maintenance_decision_awaiting_a_machines_service_gets_its_outcome() {
        let log = aifactory_core::DecisionLog::new();
        let board = PlanBoard::new();
        let state = logging_loop(&log, &board, &["M1", "M2"], &[], (false, false));
        // A window asked for, then a stop at once, on M1 before its service starts.
        for (id, at) in [("MNT-1", 1_000), ("MNT-2", 2_000)] {
            board
                .lock()
                .awaiting_service
                .entry(0)
                .or_default()
                .push((id.to_owned(), PlantTime(at)));
        }
        let mut observer = LoopObserver::new(state);
        observer.event(PlantEvent {
            at: Timestamp(3_600_000),
            kind: EventKind::MaintenanceStarted,
            machine: Some("M1".into()),
            order: None,
            detail: serde_json::json!({}),
        });
        let answered: Vec<String> = log
            .drain()
            .into_iter()
            .filter_map(|r| match r {
                aifactory_core::LedgerRecord::Outcome { decision, outcome } => {
                    assert_eq!(outcome.success, Some(true));
                    Some(decision)
                }
                _ => None,
            })
            .collect();
        assert_eq!(answered, ["MNT-1", "MNT-2"]);
        assert!(board.lock().awaiting_service.is_empty());
    }

    fn specs() -> Vec<(String, f64, f64)> {
        vec![("speed".into(), 100.0, 200.0), ("feed".into(), 0.1, 0.5)]
    }

    #[test]
    fn the_guard_refuses_values_outside_the_bounds_and_names_them() {
        let err = guard_change(&specs(), &[150.0, 0.3], &[150.0, 0.6], PlantTime(0));
        assert_eq!(
            err,
            Err("feed = 0.6 is outside its bounds [0.1, 0.5]".to_owned())
        );
        let err = guard_change(&specs(), &[150.0, 0.3], &[f64::NAN, 0.3], PlantTime(0));
        assert!(err.is_err());
    }

    #[test]
    fn small_moves_run_at_once_large_ones_wait_for_approval() {
        let now = PlantTime(5_000);
        let small = guard_change(&specs(), &[150.0, 0.3], &[170.0, 0.35], now);
        assert_eq!(
            small.map(|c| (c.needs_approval, c.effective_from)),
            Ok((false, now))
        );
        // 30 of a 100 range: more than a quarter.
        let large = guard_change(&specs(), &[150.0, 0.3], &[180.0, 0.3], now);
        assert_eq!(
            large.map(|c| (c.needs_approval, c.effective_from)),
            Ok((true, PlantTime(5_000 + APPROVAL_DELAY_MS)))
        );
    }

    #[test]
    fn arms_count_units_and_rates() {
        let arm = Arm {
            good: 990,
            scrapped: 10,
        };
        assert_eq!(arm.units(), 1000);
        assert!((arm.rate() - 0.01).abs() < 1e-12);
        assert_eq!(Arm::default().rate(), 0.0);
    }

    fn event(at_ms: i64, kind: EventKind, machine: &str, detail: serde_json::Value) -> PlantEvent {
        PlantEvent {
            at: Timestamp(at_ms),
            kind,
            machine: Some(machine.into()),
            order: None,
            detail,
        }
    }

    fn current(at_ms: i64, machine: &str, value: f64) -> [TelemetryReading; 3] {
        let reading = |signal: &str, value: f64| TelemetryReading {
            at: Timestamp(at_ms),
            machine: machine.into(),
            signal: signal.into(),
            value,
        };
        [
            reading("vibration_mm_s", 1.0),
            reading("temperature_c", 30.0),
            reading("current_a", value),
        ]
    }

    #[test]
    fn a_rising_no_load_current_raises_an_anomaly_answered_by_the_service() {
        let log = aifactory_core::DecisionLog::new();
        let start = Timestamp(0);
        let board = PlanBoard::new();
        let state = logging_loop(&log, &board, &["M1", "M2"], &[], (true, false));
        let mut observer = LoopObserver::new(state.clone());
        assert!(observer.wants_telemetry());
        let minute = 60_000;
        let wobble = |i: i64| 4.0 * (1.0 + 0.04 * (((i * 37) % 11) as f64 / 10.0 - 0.5));
        let mut raised_at = None;
        for i in 0..2_000 {
            // M1 idles; from minute 1,000 its no-load current climbs 30 % in 500 minutes.
            let rise = (i - 1_000).clamp(0, 500) as f64 / 500.0 * 0.3;
            observer.telemetry(current(i * minute, "M1", wobble(i) * (1.0 + rise)));
            observer.telemetry(current(i * minute, "M2", wobble(i)));
            if raised_at.is_none() && board.lock().anomalies.contains_key(&0) {
                raised_at = Some(i);
            }
        }
        let raised_at = raised_at.expect("an anomaly on M1");
        assert!(
            (1_000..1_400).contains(&raised_at),
            "raised at minute {raised_at}"
        );
        assert!(!board.lock().anomalies.contains_key(&1));
        assert_eq!(state.counts().anomalies, 1);
        // The maintenance skill reads the same watch: M1's alarm stands there too.
        let watch = state.condition_watch().expect("the trigger is on");
        assert!(watch.alarm(0).is_some() && watch.alarm(1).is_none());
        let decisions = log.drain_decisions();
        assert_eq!(decisions.len(), 1);
        let d = &decisions[0];
        assert_eq!(d.id, "D-ANOM-000001");
        assert_eq!(d.skill, "anomaly");
        assert_eq!(d.inputs_ref, "telemetry:M1/current_a");
        assert_eq!(d.output["machine"], "M1");
        // The service answers the anomaly and clears the flag.
        observer.event(event(
            2_000 * minute,
            EventKind::MaintenanceStarted,
            "M1",
            serde_json::json!({}),
        ));
        assert!(board.lock().anomalies.is_empty());
        assert!(watch.alarm(0).is_none(), "the service answers the alarm");
        let answered: Vec<String> = log
            .drain()
            .into_iter()
            .filter_map(|r| match r {
                aifactory_core::LedgerRecord::Outcome { decision, .. } => Some(decision),
                _ => None,
            })
            .collect();
        assert_eq!(answered, ["D-ANOM-000001"]);
        // Without the trigger the observer wants no telemetry at all.
        let off = ClosedLoop::new(
            None,
            start,
            PlanBoard::new(),
            vec!["M1".into()],
            Vec::new(),
            false,
            false,
        );
        assert!(off.condition_watch().is_none());
        assert!(!LoopObserver::new(off).wants_telemetry());
    }

    /// Runs `ops` operations of product 0, step 0 on machine M1, each of 100 units with
    /// `scrapped(values)` scrapped, cutting for `seconds(values)` a unit.
    fn produce(
        settings: &mut GuardedSettings<aifactory_plant::BaselinePolicy>,
        observer: &mut LoopObserver,
        clock: &mut i64,
        ops: usize,
        seconds: &dyn Fn(&[f64]) -> f64,
        scrapped: &dyn Fn(&[f64]) -> u64,
    ) {
        let specs = [ParamSpec {
            min: 0.0,
            max: 10.0,
            default: 5.0,
        }];
        for _ in 0..ops {
            let values = Policy::process_params(settings, 0, 0, 0, &specs);
            let detail = serde_json::json!({"product": "P", "step": 0, "setup_s": 0.0});
            observer.event(event(*clock, EventKind::OperationStarted, "M1", detail));
            *clock += (seconds(&values) * 100_000.0) as i64;
            let bad = scrapped(&values);
            observer.event(event(
                *clock,
                EventKind::OperationCompleted,
                "M1",
                serde_json::json!({"product": "P", "step": 0, "good": 100 - bad, "scrapped": bad}),
            ));
        }
    }

    #[test]
    fn the_search_adopts_a_faster_move_and_drops_one_that_scraps_more() {
        let log = aifactory_core::DecisionLog::new();
        let state = logging_loop(&log, &PlanBoard::new(), &["M1"], &["P"], (false, true));
        state.register_step((0, 0), None, Some("D-QUAL-000001".into()), 0.01, None);
        let mut settings =
            GuardedSettings::new(aifactory_plant::BaselinePolicy::default(), state.clone());
        let mut observer = LoopObserver::new(state.clone());
        let mut clock = 0;
        // Higher values cut faster (with a little noise); above 6.5, scrap jumps.
        let seconds = |v: &[f64]| 10.0 - 0.5 * v[0] + 0.01 * ((v[0] * 1e3) as i64 % 3) as f64;
        let scrapped = |v: &[f64]| if v[0] > 6.6 { 20 } else { 1 };
        produce(
            &mut settings,
            &mut observer,
            &mut clock,
            2,
            &seconds,
            &scrapped,
        );
        // The risk is measured first (100 units): then the search starts at the defaults and
        // tries parameter 1 up by a tenth of its range.
        produce(
            &mut settings,
            &mut observer,
            &mut clock,
            1,
            &seconds,
            &scrapped,
        );
        let decisions = log.drain_decisions();
        let first = decisions
            .iter()
            .find(|d| d.model == "evop")
            .expect("a move");
        assert_eq!(first.output["move"], serde_json::json!([6.0]));
        assert_eq!(first.stage, aifactory_core::LifecycleStage::Design);
        assert!(first.inputs_ref.contains("decision:D-QUAL-000001"));
        produce(
            &mut settings,
            &mut observer,
            &mut clock,
            40,
            &seconds,
            &scrapped,
        );
        let counts = state.counts();
        assert!(counts.search_adopted >= 1, "{counts:?}");
        assert!(counts.search_moves >= 2, "{counts:?}");
        let records = log.drain();
        let outcomes: Vec<bool> = records
            .iter()
            .filter_map(|r| match r {
                aifactory_core::LedgerRecord::Outcome { outcome, .. } => outcome.success,
                _ => None,
            })
            .collect();
        // 6.0 adopted (faster, no more scrap); 7.0 dropped (scraps more), whatever its speed.
        assert_eq!(outcomes.first(), Some(&true), "{outcomes:?}");
        assert_eq!(outcomes.get(1), Some(&false), "{outcomes:?}");
        assert!(records.iter().any(|r| matches!(r,
            aifactory_core::LedgerRecord::ModelUpdate { model, .. } if model == "evop")));
        // The centre stayed at 6.0: every operation now runs there or at a move around it.
        let specs = [ParamSpec {
            min: 0.0,
            max: 10.0,
            default: 5.0,
        }];
        let v = Policy::process_params(&mut settings, 0, 0, 0, &specs);
        assert!((v[0] - 6.0).abs() < 1.0 + 1e-9, "{v:?}");
    }
}
