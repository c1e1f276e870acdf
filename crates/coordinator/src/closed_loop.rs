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

use aifactory_core::{EventKind, PlantEvent, Timestamp};
use aifactory_plant::{MachineId, Observer, ParamSpec, PlantTime, Policy, QueuedOp};
use aifactory_skills::board::PlanBoard;
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
}

#[derive(Debug)]
struct LoopState {
    log: Option<SkillLog>,
    start: Timestamp,
    board: PlanBoard,
    machine_index: HashMap<String, MachineId>,
    product_index: HashMap<String, usize>,
    steps: BTreeMap<(usize, usize), StepLoop>,
    /// What each machine is running: (product, step, control arm?).
    running: Vec<Option<(usize, usize, bool)>>,
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
    outcomes: u64,
    model_updates: u64,
    rollbacks: u64,
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
}

impl ClosedLoop {
    pub(crate) fn new(
        log: Option<SkillLog>,
        start: Timestamp,
        board: PlanBoard,
        machine_ids: Vec<String>,
        product_ids: Vec<String>,
    ) -> Self {
        let machines = machine_ids.len();
        ClosedLoop(Arc::new(Mutex::new(LoopState {
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
            quotes: HashMap::new(),
            released: HashMap::new(),
            flow_h: BTreeMap::new(),
            reported_lead_h: BTreeMap::new(),
            now: PlantTime(0),
            outcomes: 0,
            model_updates: 0,
            rollbacks: 0,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, LoopState> {
        // Every writer leaves whole entries behind: a poisoned lock still holds usable data.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn counts(&self) -> LoopCounts {
        let s = self.lock();
        LoopCounts {
            outcomes: s.outcomes,
            model_updates: s.model_updates,
            rollbacks: s.rollbacks,
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
        let now = state.now;
        let (values, control) = match state.steps.get_mut(&(product, step)) {
            Some(s) => match &s.change {
                Some(c) if !s.rolled_back && now >= c.effective_from => {
                    s.started += 1;
                    let control = s.started % CONTROL_EVERY == 0 && !s.verified;
                    let values = if control { &c.previous } else { &c.values };
                    (values.clone(), control)
                }
                _ => (fallback, true),
            },
            None => (fallback, true),
        };
        if let Some(slot) = state.running.get_mut(machine) {
            *slot = Some((product, step, control));
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
        match event.kind {
            EventKind::MaintenanceStarted | EventKind::MachineFailed => {
                let Some(m) = machine else { return };
                let failed = event.kind == EventKind::MachineFailed;
                let awaiting = state.board.lock().awaiting_service.remove(&m);
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
                let Some(Some((product, step, control))) = state.running.get(m).copied() else {
                    return;
                };
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
                let arm = if control {
                    &mut s.control
                } else {
                    &mut s.tuned
                };
                arm.good += good;
                arm.scrapped += scrapped;
                measure_step(state, (product, step), now);
            }
            _ => {}
        }
    }
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

    #[test]
    fn every_maintenance_decision_awaiting_a_machines_service_gets_its_outcome() {
        let log = aifactory_core::DecisionLog::new();
        let start = Timestamp(0);
        let board = PlanBoard::new();
        let state = ClosedLoop::new(
            Some(SkillLog::new(log.clone(), start, "LOOP")),
            start,
            board.clone(),
            vec!["M1".into(), "M2".into()],
            Vec::new(),
        );
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
}
