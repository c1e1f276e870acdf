//! Predictive maintenance (the production stage): when to stop a machine for service, from its
//! condition rather than the calendar.
//!
//! For each machine the skill learns a vibration baseline in the first running hours after
//! every service or repair, and reads each later reading as a health index (reading over
//! baseline, smoothed). It learns from the machine fleet's own failures: a failure shows as the
//! running hours since maintenance falling back to zero without the skill having asked for
//! service, and the health index just before it is recorded. Once enough failures are known,
//! a free machine is stopped when its health index reaches the level at which a chosen share of
//! past failures had already happened — the share set by the cost of a planned stop against
//! an unplanned one. The schedule enters through the machine's queue: in a gap (nothing
//! waiting) a stop costs no production, so the cost ratio — and with it the threshold — drops
//! (by default to the lowest index seen at a failure). Until enough failures are known it keeps
//! the machine type's recommended interval (tier 0).

use crate::board::{PlanBoard, WindowRequest};
use crate::log::SkillLog;
use aifactory_core::{Decision, DecisionLog, ExecutedBy, LifecycleStage, Timestamp};
use aifactory_plant::{MachineView, Policy};

/// Knobs of the maintenance skill.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceConfig {
    /// Running hours after a service during which readings set the baseline.
    pub baseline_h: f64,
    /// Smoothing of the health index between readings.
    pub smoothing: f64,
    /// Failures to see before trusting the learnt threshold.
    pub min_failures: usize,
    /// Cost of a planned stop over the cost of a failure: the share of past failures the
    /// threshold aims to pre-empt is `1 - ratio`, so cheap planned stops act earlier.
    pub cost_ratio: f64,
    /// Never service before this share of the recommended interval.
    pub min_interval_share: f64,
    /// In a gap of the schedule (nothing queued for the machine) a stop costs no production,
    /// only parts and labour, so the threshold's cost ratio is multiplied by this (1 = no
    /// difference; 0 = service in any gap once the index reaches the lowest level seen at a
    /// failure, and past `min_interval_share`).
    pub idle_cost_factor: f64,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            baseline_h: 8.0,
            smoothing: 0.05,
            min_failures: 5,
            cost_ratio: 0.5,
            min_interval_share: 0.6,
            idle_cost_factor: 0.0,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct MachineHealth {
    baseline_sum: f64,
    baseline_n: u32,
    index: f64,
    last_run_h: f64,
    serviced_by_us: bool,
}

/// The maintenance skill wrapped around another policy, which keeps every other decision.
#[derive(Debug, Clone)]
pub struct PredictiveMaintenance<P> {
    inner: P,
    config: MaintenanceConfig,
    machines: Vec<MachineHealth>,
    /// Health index just before each failure seen, fleet-wide, in arrival order.
    failure_indices: Vec<f64>,
    /// Where its decisions go, with the machines' ids.
    ledger: Option<(SkillLog, Vec<String>)>,
    /// The shared plan (coordinator tier 2 and 3), with each machine's service hours: a
    /// machine due for service gets a window in the schedule instead of stopping on its own.
    board: Option<(PlanBoard, Vec<f64>)>,
    /// Closed loop (tier 3): each failure learnt is a model update, and each decision awaits
    /// its outcome on the board.
    closed_loop: bool,
    /// Model updates so far (the version counter).
    pub updates: u64,
    /// Closed loop: service ages learnt from the fleet's renewals (age replacement).
    ages: Option<ServiceAges>,
    /// Whether the ages learnt from the maintenance records are still to be logged.
    announce_ages: bool,
}

/// Before a threshold is learnt, the share of the recommended interval at which a window is
/// asked for on a shared plan.
const INTERVAL_WINDOW_SHARE: f64 = 0.85;

/// Model id written into maintenance decisions.
pub const MODEL_ID: &str = "cbm-health-index";
/// Model version: the health index and threshold rule.
pub const MODEL_VERSION: &str = "1/vib-baseline/failure-quantile/gap";

impl<P: Policy> PredictiveMaintenance<P> {
    pub fn new(inner: P, config: MaintenanceConfig) -> Self {
        PredictiveMaintenance {
            inner,
            config,
            machines: Vec::new(),
            failure_indices: Vec::new(),
            ledger: None,
            board: None,
            closed_loop: false,
            updates: 0,
            ages: None,
            announce_ages: false,
        }
    }

    /// Learns, per machine group, the service age with the lowest long-run cost from the
    /// fleet's renewals (failures and services), and services machines by it as well as by
    /// condition. Each move of a learnt age is a model update in a closed loop.
    pub fn with_service_ages(mut self, ages: ServiceAges) -> Self {
        self.ages = Some(ages);
        self.announce_ages = true;
        self
    }

    /// Closes the loop: every failure the fleet has once the threshold is in use retrains it
    /// (a model update in the ledger), and every decision waits on the board for its outcome
    /// (serviced in time, or failed first), which the coordinator measures.
    pub fn with_closed_loop(mut self) -> Self {
        self.closed_loop = true;
        self
    }

    /// Plans services with the scheduler: once a machine's health index passes the lowest level
    /// seen at a failure (and the minimum share of its interval), the skill posts a maintenance
    /// window on `board` and the plan decides when the machine stops; only past the busy
    /// threshold does it stop the machine at once. `service_h` per machine, in the twin's order.
    pub fn with_board(mut self, board: PlanBoard, service_h: Vec<f64>) -> Self {
        self.board = Some((board, service_h));
        self
    }

    /// Logs every stop the skill decides (once it has learnt its threshold) to `log`, as
    /// production-stage decisions executed by the twin; `machine_ids` in the twin's order.
    pub fn with_log(
        mut self,
        log: DecisionLog,
        start: Timestamp,
        machine_ids: Vec<String>,
    ) -> Self {
        self.ledger = Some((SkillLog::new(log, start, "CBM"), machine_ids));
        self
    }

    /// The learnt health-index threshold, once enough failures are known.
    pub fn threshold(&self) -> Option<f64> {
        self.threshold_at(self.config.cost_ratio)
    }

    /// The threshold for a given planned-to-unplanned cost ratio: the `ratio` quantile of the
    /// health index at past failures.
    fn threshold_at(&self, cost_ratio: f64) -> Option<f64> {
        if self.failure_indices.len() < self.config.min_failures {
            return None;
        }
        let mut sorted = self.failure_indices.clone();
        sorted.sort_by(f64::total_cmp);
        let q = cost_ratio.clamp(0.0, 1.0);
        let pos = (q * (sorted.len() - 1) as f64).round() as usize;
        sorted.get(pos).copied()
    }

    pub fn failures_seen(&self) -> usize {
        self.failure_indices.len()
    }

    /// The shared-plan decision: stop now when urgent, ask for a window when due, and let the
    /// plan (the inner policy) say when a window's service starts.
    fn plan_service(&mut self, view: &MachineView) -> bool {
        if std::mem::take(&mut self.announce_ages)
            && let (Some(ages), Some((log, _))) = (&self.ages, &self.ledger)
        {
            // The ages fitted to the maintenance records before the run are the model's first
            // version: logged once, when the skill first decides.
            for (group, age, renewals, failures) in ages.learnt() {
                log.model_update(
                    view.now,
                    "maintenance",
                    "service-age-renewal-reward",
                    ("0/recommended".to_owned(), format!("age-{age:.0}h")),
                    format!(
                        "maintenance records of {group}: {renewals} renewals, {failures} failures"
                    ),
                );
                self.updates += 1;
            }
        }
        let index = self.observe(view);
        let past_minimum = view.run_h_since_maintenance
            >= self.config.min_interval_share * view.recommended_interval_h;
        let thresholds = (
            self.threshold_at(self.config.cost_ratio),
            self.threshold_at(self.config.cost_ratio * self.config.idle_cost_factor),
        );
        // Until enough failures are known, the recommended interval decides, as at tier 0 —
        // but the window is asked for ahead of it, so the plan can place the service.
        let (urgent, due) = match thresholds {
            (Some(urgent), Some(due)) => (
                past_minimum && index >= urgent,
                past_minimum && index >= due,
            ),
            _ => (
                view.run_h_since_maintenance >= view.recommended_interval_h,
                view.run_h_since_maintenance >= INTERVAL_WINDOW_SHARE * view.recommended_interval_h,
            ),
        };
        // A learnt service age (closed loop) asks for a window, and stops the machine, by age.
        let (urgent, due) = match self.ages.as_ref().and_then(|a| a.age_h(view.machine)) {
            Some(age) => (
                urgent || view.run_h_since_maintenance >= AGE_URGENT_SHARE * age,
                due || view.run_h_since_maintenance >= AGE_WINDOW_SHARE * age,
            ),
            None => (urgent, due),
        };
        let threshold = thresholds.0.unwrap_or(0.0);
        if urgent {
            self.log_stop(view, index, threshold, "preventive_maintenance");
            self.mark_serviced(view, true);
            return true;
        }
        if due {
            let due = thresholds.1.unwrap_or(0.0);
            let posted = self
                .board
                .as_ref()
                .is_some_and(|(b, _)| b.lock().windows.contains_key(&view.machine));
            if !posted {
                let decision = self.log_stop(view, index, due, "maintenance_window_request");
                if let Some((board, service_h)) = &self.board {
                    let hours = service_h.get(view.machine).copied().unwrap_or(1.0);
                    board.lock().windows.insert(
                        view.machine,
                        WindowRequest {
                            decision,
                            duration_s: hours * 3600.0,
                            requested_at: view.now,
                            planned_start: None,
                        },
                    );
                }
            }
        }
        let decide = self.inner.start_maintenance(view);
        self.mark_serviced(view, decide);
        decide
    }

    /// Writes a model update when a learnt service age moved.
    fn record_age_update(&mut self, view: &MachineView, moved: (String, Option<f64>, f64)) {
        let Some((log, _)) = &self.ledger else {
            return;
        };
        let (group, before, after) = moved;
        let version = |age: Option<f64>| {
            age.map_or_else(|| "0/recommended".to_owned(), |a| format!("age-{a:.0}h"))
        };
        log.model_update(
            view.now,
            "maintenance",
            "service-age-renewal-reward",
            (version(before), version(Some(after))),
            format!(
                "renewals of {group}: service age {after:.0} h minimises cost per running hour"
            ),
        );
        self.updates += 1;
    }

    /// Writes a model update when a failure moved (or first set) the threshold.
    fn record_update(&mut self, view: &MachineView, before: Option<f64>) {
        let after = self.threshold();
        if after.is_none() || after == before {
            return;
        }
        let Some((log, ids)) = &self.ledger else {
            return;
        };
        let version = |t: Option<f64>, n: u64| {
            t.map_or_else(
                || "0/recommended-interval".to_owned(),
                |t| format!("{n}/threshold-{t:.3}"),
            )
        };
        let machine = ids
            .get(view.machine)
            .cloned()
            .unwrap_or_else(|| format!("#{}", view.machine));
        log.model_update(
            view.now,
            "maintenance",
            MODEL_ID,
            (
                version(before, self.updates),
                version(after, self.updates + 1),
            ),
            format!(
                "failure of {machine}: {} failures known",
                self.failure_indices.len()
            ),
        );
        self.updates += 1;
    }

    fn mark_serviced(&mut self, view: &MachineView, decide: bool) {
        if decide && let Some(h) = self.machines.get_mut(view.machine) {
            h.serviced_by_us = true;
        }
    }

    /// Logs a maintenance decision; returns its id when logging.
    fn log_stop(
        &mut self,
        view: &MachineView,
        index: f64,
        threshold: f64,
        action: &str,
    ) -> Option<String> {
        let due = self.failure_indices.iter().filter(|&&f| f <= index).count() as f64
            / self.failure_indices.len().max(1) as f64;
        let (log, ids) = self.ledger.as_mut()?;
        let machine = ids
            .get(view.machine)
            .cloned()
            .unwrap_or_else(|| format!("#{}", view.machine));
        let id = log.record(view.now, |id, at| Decision {
            id,
            at,
            skill: "maintenance".to_owned(),
            stage: LifecycleStage::Production,
            inputs_ref: format!("vibration:{machine}"),
            model: MODEL_ID.to_owned(),
            model_version: MODEL_VERSION.to_owned(),
            output: serde_json::json!({
                "machine": machine,
                "action": action,
                "health_index": index,
                "threshold": threshold,
                "run_h_since_service": view.run_h_since_maintenance,
                "in_schedule_gap": view.queue_len == 0,
            }),
            confidence: Some(due),
            executed_by: ExecutedBy::Auto,
            outcome: None,
        });
        if self.closed_loop
            && let Some((board, _)) = &self.board
        {
            board
                .lock()
                .awaiting_service
                .insert(view.machine, (id.clone(), view.now));
        }
        Some(id)
    }

    fn observe(&mut self, view: &MachineView) -> f64 {
        let m = view.machine;
        if self.machines.len() <= m {
            self.machines.resize(m + 1, MachineHealth::default());
        }
        let config = self.config.clone();
        let h = &self.machines[m];
        if view.run_h_since_maintenance + 1e-9 < h.last_run_h {
            // The clock went back: a service. If we did not ask for it, the machine failed.
            let (age, failed) = (h.last_run_h, !h.serviced_by_us);
            let moved = self
                .ages
                .as_mut()
                .and_then(|a| a.observe(m, age, failed, self.config.min_failures));
            if let Some(moved) = moved {
                self.record_age_update(view, moved);
            }
            let h = &self.machines[m];
            if !h.serviced_by_us && h.index > 0.0 {
                let index = h.index;
                let before = self.threshold();
                self.failure_indices.push(index);
                if self.closed_loop {
                    self.record_update(view, before);
                }
            }
            self.machines[m] = MachineHealth::default();
            if let Some((board, _)) = &self.board {
                let mut board = board.lock();
                board.windows.remove(&m);
                board.in_planned_service.remove(&m);
            }
        }
        let h = &mut self.machines[m];
        h.serviced_by_us = false;
        h.last_run_h = view.run_h_since_maintenance;
        let v = view.last_vibration_mm_s;
        if v <= 0.0 {
            return h.index;
        }
        if view.run_h_since_maintenance <= config.baseline_h || h.baseline_n == 0 {
            h.baseline_sum += v;
            h.baseline_n += 1;
            return h.index;
        }
        let baseline = h.baseline_sum / f64::from(h.baseline_n);
        let ratio = v / baseline.max(1e-9);
        h.index = if h.index == 0.0 {
            ratio
        } else {
            (1.0 - config.smoothing) * h.index + config.smoothing * ratio
        };
        h.index
    }
}

impl<P: Policy> aifactory_plant::Layer for PredictiveMaintenance<P> {
    type Inner = P;
    fn inner(&self) -> &P {
        &self.inner
    }
    fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }
    fn label(&self) -> &str {
        "cbm"
    }

    fn start_maintenance(&mut self, view: &MachineView) -> bool {
        if self.board.is_some() {
            return self.plan_service(view);
        }
        let index = self.observe(view);
        let ratio = if view.queue_len == 0 {
            self.config.cost_ratio * self.config.idle_cost_factor
        } else {
            self.config.cost_ratio
        };
        let decide = match self.threshold_at(ratio) {
            None => view.run_h_since_maintenance >= view.recommended_interval_h,
            Some(t) => {
                view.run_h_since_maintenance
                    >= self.config.min_interval_share * view.recommended_interval_h
                    && index >= t
            }
        };
        if decide && let Some(h) = self.machines.get_mut(view.machine) {
            h.serviced_by_us = true;
        }
        if decide && let Some(threshold) = self.threshold_at(ratio) {
            self.log_stop(view, index, threshold, "preventive_maintenance");
        }
        decide
    }
}

/// The service age that minimises the long-run cost per running hour of an age-replacement
/// policy (service at age `T`, repair on failure), from renewals observed in the fleet:
/// `(age_h, failed)`, failures as events and services as censored ages. Survival is the
/// Kaplan–Meier estimate; the cost rate `(cp·S(T) + cf·(1 − S(T))) / ∫₀ᵀ S(t) dt` is searched at
/// the observed ages up to `max_age_h`. `None` until at least `min_failures` failures are known.
pub fn optimal_service_age(
    renewals: &[(f64, bool)],
    planned_cost: f64,
    failure_cost: f64,
    max_age_h: f64,
    min_failures: usize,
) -> Option<f64> {
    let mut sorted: Vec<(f64, bool)> = renewals
        .iter()
        .copied()
        .filter(|(age, _)| age.is_finite() && *age > 0.0)
        .collect();
    if sorted.iter().filter(|(_, failed)| *failed).count() < min_failures.max(1) {
        return None;
    }
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut at_risk = sorted.len() as f64;
    let (mut survival, mut area, mut last_age) = (1.0_f64, 0.0_f64, 0.0_f64);
    let mut candidates: Vec<(f64, f64)> = Vec::new();
    for &(age, failed) in &sorted {
        if age > max_age_h {
            break;
        }
        area += survival * (age - last_age);
        last_age = age;
        if failed {
            survival *= 1.0 - 1.0 / at_risk.max(1.0);
        }
        at_risk -= 1.0;
        if area > 0.0 {
            let rate = (planned_cost * survival + failure_cost * (1.0 - survival)) / area;
            candidates.push((age, rate));
        }
    }
    // At the longest age allowed (the recommended interval), if it is beyond the data.
    if last_age < max_age_h && at_risk > 0.0 {
        let area = area + survival * (max_age_h - last_age);
        let rate = (planned_cost * survival + failure_cost * (1.0 - survival)) / area;
        candidates.push((max_age_h, rate));
    }
    // The lowest rate. (Preferring the longest age within a few per cent of it, against noise,
    // cost more on the reference plant: services also cut the scrap and slowdown of a worn
    // machine, which this rate does not count.)
    candidates
        .iter()
        .copied()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|c| c.0)
}

/// Survival over running age since the last renewal (Kaplan–Meier), from a fleet's renewals:
/// `(age_h, failed)`, failures as events and services as censored ages. What a machine's
/// maintenance records say about its health and remaining life, without its sensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Survival {
    /// (age, survival just after it), ages ascending, one step per failure age.
    steps: Vec<(f64, f64)>,
}

impl Survival {
    /// `None` without a single failure on record (nothing to estimate from).
    pub fn fit(renewals: &[(f64, bool)]) -> Option<Survival> {
        let mut sorted: Vec<(f64, bool)> = renewals
            .iter()
            .copied()
            .filter(|(age, _)| age.is_finite() && *age > 0.0)
            .collect();
        if !sorted.iter().any(|(_, failed)| *failed) {
            return None;
        }
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut at_risk = sorted.len() as f64;
        let mut survival = 1.0_f64;
        let mut steps = Vec::new();
        for &(age, failed) in &sorted {
            if failed {
                survival *= 1.0 - 1.0 / at_risk.max(1.0);
                steps.push((age, survival));
            }
            at_risk -= 1.0;
        }
        Some(Survival { steps })
    }

    /// S(age): the share of machines still running at this age.
    pub fn at(&self, age: f64) -> f64 {
        self.steps
            .iter()
            .take_while(|(a, _)| *a <= age)
            .last()
            .map_or(1.0, |s| s.1)
    }

    /// The chance of running `hours` more without a failure, having run `age` since the last
    /// renewal; `None` where the records hold no machine that old.
    pub fn conditional(&self, age: f64, hours: f64) -> Option<f64> {
        let now = self.at(age);
        (now > 0.0).then(|| self.at(age + hours.max(0.0)) / now)
    }

    /// Median residual life: running hours until the conditional survival falls to one half;
    /// `None` where the records never fall that low (too few failures that old).
    pub fn median_residual(&self, age: f64) -> Option<f64> {
        let now = self.at(age);
        if now <= 0.0 {
            return Some(0.0);
        }
        self.steps
            .iter()
            .find(|(a, s)| *a > age && *s <= now / 2.0)
            .map(|(a, _)| a - age)
    }
}

/// Service ages learnt per machine group (machines of one type), from the fleet's renewals.
#[derive(Debug, Clone)]
pub struct ServiceAges {
    /// Machine → group.
    group_of: Vec<usize>,
    /// Per group: planned and failure cost, the recommended interval, renewals seen, the
    /// learnt age.
    groups: Vec<AgeGroup>,
}

#[derive(Debug, Clone)]
struct AgeGroup {
    name: String,
    planned_cost: f64,
    failure_cost: f64,
    recommended_h: f64,
    renewals: Vec<(f64, bool)>,
    age_h: Option<f64>,
    /// The age last reported as a model version (moves below 5 % are not reported).
    reported_h: Option<f64>,
}

impl ServiceAges {
    /// `machines`: per machine (in the twin's order) its group name (e.g. the machine type),
    /// planned-service cost, failure cost (repair) and recommended interval.
    pub fn new(machines: &[(String, f64, f64, f64)]) -> Self {
        let mut groups: Vec<AgeGroup> = Vec::new();
        let mut group_of = Vec::with_capacity(machines.len());
        for (name, planned, failure, recommended) in machines {
            let g = match groups.iter().position(|g| &g.name == name) {
                Some(g) => g,
                None => {
                    groups.push(AgeGroup {
                        name: name.clone(),
                        planned_cost: *planned,
                        failure_cost: *failure,
                        recommended_h: *recommended,
                        renewals: Vec::new(),
                        age_h: None,
                        reported_h: None,
                    });
                    groups.len() - 1
                }
            };
            group_of.push(g);
        }
        ServiceAges { group_of, groups }
    }

    /// Adds renewals from the maintenance records (per machine, in the twin's order) and
    /// learns from them at once.
    pub fn with_history(mut self, history: &[Vec<(f64, bool)>], min_failures: usize) -> Self {
        for (machine, renewals) in history.iter().enumerate() {
            if let Some(&g) = self.group_of.get(machine) {
                self.groups[g].renewals.extend(renewals.iter().copied());
            }
        }
        for g in &mut self.groups {
            g.age_h = optimal_service_age(
                &g.renewals,
                g.planned_cost,
                g.failure_cost,
                g.recommended_h,
                min_failures,
            );
            g.reported_h = g.age_h;
        }
        self
    }

    /// Per group with a learnt age: (group, age h, renewals, failures).
    pub fn learnt(&self) -> Vec<(String, f64, usize, usize)> {
        self.groups
            .iter()
            .filter_map(|g| {
                g.age_h.map(|age| {
                    (
                        g.name.clone(),
                        age,
                        g.renewals.len(),
                        g.renewals.iter().filter(|r| r.1).count(),
                    )
                })
            })
            .collect()
    }

    /// The learnt service age for a machine, once its group has enough failures.
    pub fn age_h(&self, machine: usize) -> Option<f64> {
        self.groups.get(*self.group_of.get(machine)?)?.age_h
    }

    /// Records a renewal; returns (group name, age before, age after) when the learnt age moved
    /// by more than 5 % (or was first learnt).
    fn observe(
        &mut self,
        machine: usize,
        age_h: f64,
        failed: bool,
        min_failures: usize,
    ) -> Option<(String, Option<f64>, f64)> {
        let g = self.groups.get_mut(*self.group_of.get(machine)?)?;
        g.renewals.push((age_h, failed));
        let before = g.reported_h;
        let after = optimal_service_age(
            &g.renewals,
            g.planned_cost,
            g.failure_cost,
            g.recommended_h,
            min_failures,
        )?;
        g.age_h = Some(after);
        match before {
            Some(b) if (after - b).abs() <= 0.05 * b => None,
            _ => {
                g.reported_h = Some(after);
                Some((g.name.clone(), before, after))
            }
        }
    }
}

/// Once a service age is learnt, a window is asked for at this share of it, and the machine is
/// stopped at once past `AGE_URGENT_SHARE` of it.
const AGE_WINDOW_SHARE: f64 = 0.9;
const AGE_URGENT_SHARE: f64 = 1.1;

#[cfg(test)]
mod tests {
    use super::*;
    use aifactory_plant::{BaselinePolicy, MachineId, PlantTime};

    fn view(machine: MachineId, run_h: f64, vibration: f64) -> MachineView {
        MachineView {
            machine,
            now: PlantTime::from_hours(0.0),
            run_h_since_maintenance: run_h,
            recommended_interval_h: 100.0,
            last_vibration_mm_s: vibration,
            last_temperature_c: 40.0,
            last_current_a: 10.0,
            queue_len: 1,
        }
    }

    #[test]
    fn keeps_the_recommended_interval_until_it_has_seen_failures() {
        let mut skill =
            PredictiveMaintenance::new(BaselinePolicy::default(), MaintenanceConfig::default());
        assert!(!skill.start_maintenance(&view(0, 50.0, 2.0)));
        assert!(skill.start_maintenance(&view(0, 100.0, 2.0)));
        assert_eq!(skill.threshold(), None);
    }

    #[test]
    fn learns_the_failure_level_and_stops_machines_before_it() {
        let config = MaintenanceConfig {
            smoothing: 1.0,
            ..MaintenanceConfig::default()
        };
        let mut skill = PredictiveMaintenance::new(BaselinePolicy::default(), config);
        // Five machines fail at health indices 1.5, 1.6, 1.7, 1.8 and 1.9 (vibration over a
        // baseline of 1.0), each before its recommended interval.
        for (m, level) in [1.5, 1.6, 1.7, 1.8, 1.9].into_iter().enumerate() {
            assert!(!skill.start_maintenance(&view(m, 1.0, 1.0)));
            assert!(!skill.start_maintenance(&view(m, 30.0, level)));
            // Repaired: the running hours start again from zero.
            assert!(!skill.start_maintenance(&view(m, 0.5, 1.0)));
        }
        assert_eq!(skill.failures_seen(), 5);
        assert_eq!(skill.threshold(), Some(1.7));
        // A healthy machine keeps running; a worn one is stopped before its interval, but never
        // before the minimum share of it (60 h of 100 here).
        assert!(!skill.start_maintenance(&view(9, 1.0, 1.0)));
        assert!(!skill.start_maintenance(&view(9, 45.0, 1.2)));
        assert!(!skill.start_maintenance(&view(9, 55.0, 1.75)));
        assert!(skill.start_maintenance(&view(9, 65.0, 1.75)));
        // A service we asked for is not counted as a failure.
        assert!(!skill.start_maintenance(&view(9, 0.5, 1.0)));
        assert_eq!(skill.failures_seen(), 5);
    }

    #[test]
    fn services_earlier_in_a_gap_of_the_schedule() {
        let config = MaintenanceConfig {
            smoothing: 1.0,
            ..MaintenanceConfig::default()
        };
        let log = DecisionLog::new();
        let ids = (0..10).map(|m| format!("M-{m}")).collect();
        let mut skill = PredictiveMaintenance::new(BaselinePolicy::default(), config).with_log(
            log.clone(),
            Timestamp(1_000),
            ids,
        );
        for (m, level) in [1.5, 1.6, 1.7, 1.8, 1.9].into_iter().enumerate() {
            skill.start_maintenance(&view(m, 1.0, 1.0));
            skill.start_maintenance(&view(m, 30.0, level));
            skill.start_maintenance(&view(m, 0.5, 1.0));
        }
        assert_eq!(skill.threshold(), Some(1.7));
        // Index 1.55: below the busy threshold, above the lowest level seen at a failure.
        let mut busy = view(7, 1.0, 1.0);
        assert!(!skill.start_maintenance(&busy));
        busy.run_h_since_maintenance = 65.0;
        busy.last_vibration_mm_s = 1.55;
        assert!(!skill.start_maintenance(&busy));
        let idle = MachineView {
            queue_len: 0,
            ..busy
        };
        assert!(skill.start_maintenance(&idle));
        // That stop, and only it, is in the ledger queue, with its machine and evidence.
        let logged = log.drain_decisions();
        assert_eq!(logged.len(), 1, "{logged:?}");
        let d = &logged[0];
        assert_eq!(d.id, "D-CBM-000001");
        assert_eq!(d.at, Timestamp(1_000));
        assert_eq!(d.output["machine"], "M-7");
        assert_eq!(d.output["in_schedule_gap"], true);
        assert_eq!(d.stage, LifecycleStage::Production);
        // One of five past failures came at or below index 1.55.
        assert_eq!(d.confidence, Some(0.2));
        // Not before the minimum share of the interval, gap or not.
        let mut early = view(8, 1.0, 1.0);
        skill.start_maintenance(&early);
        early.queue_len = 0;
        early.run_h_since_maintenance = 50.0;
        early.last_vibration_mm_s = 1.95;
        assert!(!skill.start_maintenance(&early));
    }
}

#[cfg(test)]
mod age_tests {
    use super::*;

    /// Renewals of machines under a fixed interval, failing by an increasing (or a constant)
    /// hazard: Weibull-like ages from a seeded stream.
    fn renewals(shape: f64, scale: f64, interval: f64, n: usize) -> Vec<(f64, bool)> {
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(7);
        (0..n)
            .map(|_| {
                let u: f64 = rand::Rng::random_range(&mut rng, 1e-9..1.0);
                let age = scale * (-u.ln()).powf(1.0 / shape);
                if age < interval {
                    (age, true)
                } else {
                    (interval, false)
                }
            })
            .collect()
    }

    #[test]
    fn wear_out_failures_call_for_earlier_service() {
        // Shape 3 (wear-out), failures eight times dearer than a service.
        let data = renewals(3.0, 200.0, 220.0, 400);
        let age = optimal_service_age(&data, 600.0, 4800.0, 220.0, 5);
        let age = age.expect("enough failures");
        assert!(age > 40.0 && age < 150.0, "{age}");
    }

    #[test]
    fn random_failures_leave_the_interval_about_alone() {
        // Shape 1: the hazard does not grow, a service buys nothing; only noise can move it.
        let data = renewals(1.0, 300.0, 220.0, 400);
        let age = optimal_service_age(&data, 600.0, 4800.0, 220.0, 5).expect("failures");
        assert!(age >= 0.8 * 220.0, "{age}");
    }

    #[test]
    fn too_few_failures_learn_nothing() {
        let data = [(100.0, true), (220.0, false), (220.0, false)];
        assert_eq!(optimal_service_age(&data, 600.0, 4800.0, 220.0, 5), None);
        assert_eq!(optimal_service_age(&[], 600.0, 4800.0, 220.0, 1), None);
        // Nonsense ages are ignored, not trusted.
        let bad = [(f64::NAN, true), (-5.0, true)];
        assert_eq!(optimal_service_age(&bad, 600.0, 4800.0, 220.0, 1), None);
    }

    #[test]
    fn groups_learn_from_records_and_report_moves() {
        let machines = vec![
            ("lathe".to_owned(), 600.0, 4800.0, 220.0),
            ("lathe".to_owned(), 600.0, 4800.0, 220.0),
            ("oven".to_owned(), 900.0, 9000.0, 300.0),
        ];
        let history = vec![renewals(3.0, 200.0, 220.0, 200), Vec::new(), Vec::new()];
        let mut ages = ServiceAges::new(&machines).with_history(&history, 5);
        let lathe = ages.age_h(1).expect("lathes share the records");
        assert!(lathe < 220.0, "{lathe}");
        assert_eq!(ages.age_h(2), None);
        assert_eq!(ages.learnt().len(), 1);
        // A run of early failures moves the lathes' age: reported as a model update.
        let mut moved = None;
        for _ in 0..200 {
            moved = moved.or(ages.observe(0, 10.0, true, 5));
        }
        let (group, before, after) = moved.expect("the age moved");
        assert_eq!(group, "lathe");
        assert_eq!(before, Some(lathe));
        assert!(after != lathe);
    }
}

#[cfg(test)]
mod survival_tests {
    use super::Survival;

    #[test]
    fn kaplan_meier_counts_services_as_censored() {
        // Four machines: failures at 10 h and 30 h, services (censored) at 20 h and 40 h.
        let s = Survival::fit(&[(10.0, true), (20.0, false), (30.0, true), (40.0, false)])
            .expect("failures on record");
        assert_eq!(s.at(5.0), 1.0);
        assert!((s.at(10.0) - 0.75).abs() < 1e-12);
        // At 30 h two are at risk (the 20 h one was serviced): 0.75 · (1 − 1/2).
        assert!((s.at(35.0) - 0.375).abs() < 1e-12);
        assert!((s.conditional(10.0, 25.0).expect("known") - 0.5).abs() < 1e-12);
        assert_eq!(s.median_residual(0.0), Some(30.0));
        assert_eq!(s.median_residual(10.0), Some(20.0));
        // Past the last failure the records say nothing more.
        assert_eq!(s.median_residual(35.0), None);
        assert!(Survival::fit(&[(10.0, false), (f64::NAN, true)]).is_none());
    }
}
