//! The maintenance skill as a policy layer: [`PredictiveMaintenance`] keeps each machine's
//! health index from its readings, learns the failure threshold from the fleet's failures and
//! stops a free machine for service (or asks the shared plan for a window); the survival and
//! service-age models it uses are in [`crate::maintenance`]. With a condition watch
//! ([`crate::condition::SharedWatch`]) a machine whose no-load current has risen is serviced
//! at its next free moment (or given a window at once on a shared plan), whatever its age.

use crate::board::{PlanBoard, WindowRequest};
use crate::condition::{ConditionAlarm, SharedWatch};
use crate::log::SkillLog;
use crate::maintenance::{
    AGE_URGENT_SHARE, AGE_WINDOW_SHARE, MODEL_ID, MODEL_VERSION, MaintenanceConfig, Renewal,
    ServiceAges,
};
use aifactory_core::{Decision, DecisionLog, ExecutedBy, LifecycleStage, Timestamp};
use aifactory_plant::{MachineView, PlantTime, Policy};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
struct MachineHealth {
    baseline_sum: f64,
    baseline_n: u32,
    index: f64,
    last_run_h: f64,
    serviced_by_us: bool,
    /// The service asked for answers a condition alarm (a fault caught in time).
    serviced_on_alarm: bool,
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
    /// The anomaly decision the decision being made answers, if any (cited by it).
    cites: Option<String>,
    /// The condition watch on the machines' no-load current (from tier 1; at tier 3 the one
    /// the closed loop feeds).
    watch: Option<SharedWatch>,
    /// When the skill first saw each standing alarm of its watch.
    alarm_seen: BTreeMap<usize, PlantTime>,
    /// The watch's alarm behind the decision being made, if any (its evidence).
    condition: Option<ConditionAlarm>,
}

/// Before a threshold is learnt, the share of the recommended interval at which a window is
/// asked for on a shared plan.
const INTERVAL_WINDOW_SHARE: f64 = 0.85;

/// A machine flagged by the condition watch asks for a window at once; if the plan has not
/// serviced it this long after the anomaly, it is stopped at its next free moment.
pub const ANOMALY_URGENT_MS: u64 = 8 * 3_600_000;

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
            cites: None,
            watch: None,
            alarm_seen: BTreeMap::new(),
            condition: None,
        }
    }

    /// Services a machine whose no-load current the watch has seen rise (a fault on its way)
    /// at its next free moment, before its minimum interval if need be, on a shared plan too.
    /// Feed the watch the plant's events and readings.
    pub fn with_condition_watch(mut self, watch: SharedWatch) -> Self {
        self.watch = Some(watch);
        self
    }

    /// The watch's standing alarm on this machine, noting when the skill first saw it.
    fn condition_alarm(&mut self, view: &MachineView) -> Option<(ConditionAlarm, PlantTime)> {
        let alarm = self.watch.as_ref()?.alarm(view.machine);
        match alarm {
            Some(alarm) => {
                let seen = *self.alarm_seen.entry(view.machine).or_insert(view.now);
                Some((alarm, seen))
            }
            None => {
                self.alarm_seen.remove(&view.machine);
                None
            }
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
        // An anomaly on the machine's signals (the closed loop's condition watch, on the board,
        // or the skill's own) raises its risk: a window now, a stop if the plan has not placed
        // one in time.
        let condition = self.condition_alarm(view);
        let anomaly = self
            .board
            .as_ref()
            .and_then(|(b, _)| b.lock().anomalies.get(&view.machine).cloned())
            .or_else(|| condition.as_ref().map(|(_, seen)| (None, *seen)));
        self.condition = condition.map(|(alarm, _)| alarm);
        // The skill's own watch stops the machine at its next free moment, as on its own: on a
        // busy machine its alarm comes too close to the failure to wait for the plan (measured on
        // the textile mill). With nothing waiting for the machine a stop costs no production.
        let own_alarm = self.condition.is_some();
        let (urgent, due) = match &anomaly {
            Some((_, flagged)) => (
                urgent
                    || own_alarm
                    || view.queue_len == 0
                    || view.now.0.saturating_sub(flagged.0) >= ANOMALY_URGENT_MS,
                true,
            ),
            None => (urgent, due),
        };
        // A machine that has not run since its last service or repair cannot need another; its
        // window would stay on the board, since only a service that turns the hours back clears it.
        let renewed = view.run_h_since_maintenance <= 0.0;
        let (urgent, due) = (urgent && !renewed, due && !renewed);
        let on_alarm = anomaly.is_some();
        self.cites = anomaly.and_then(|(id, _)| id);
        let threshold = thresholds.0.unwrap_or(0.0);
        if urgent {
            let decision = self.log_stop(view, index, threshold, "preventive_maintenance");
            // The stop is a window that starts now: the plans made while it lasts plan around
            // the machine's service and cite the decision that stopped it.
            self.post_window(view, decision, Some(view.now));
            self.mark_serviced(view, true, on_alarm);
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
                self.post_window(view, decision, None);
            }
        }
        let decide = self.inner.start_maintenance(view);
        self.mark_serviced(view, decide, on_alarm);
        decide
    }

    /// Posts the machine's service on the board: a window for the plan to place, or, with
    /// `started`, one that began then (a stop made at once).
    fn post_window(
        &self,
        view: &MachineView,
        decision: Option<String>,
        started: Option<PlantTime>,
    ) {
        if let Some((board, service_h)) = &self.board {
            let hours = service_h.get(view.machine).copied().unwrap_or(1.0);
            board.lock().windows.insert(
                view.machine,
                WindowRequest {
                    decision,
                    duration_s: hours * 3600.0,
                    requested_at: view.now,
                    planned_start: started,
                    started_at: started,
                },
            );
        }
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

    fn mark_serviced(&mut self, view: &MachineView, decide: bool, on_alarm: bool) {
        if decide && let Some(h) = self.machines.get_mut(view.machine) {
            h.serviced_by_us = true;
            h.serviced_on_alarm = on_alarm;
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
        let anomaly = self.cites.clone();
        let condition = self.condition.clone();
        let (log, ids) = self.ledger.as_mut()?;
        let machine = ids
            .get(view.machine)
            .cloned()
            .unwrap_or_else(|| format!("#{}", view.machine));
        let mut output = serde_json::json!({
            "machine": machine,
            "action": action,
            "health_index": index,
            "threshold": threshold,
            "run_h_since_service": view.run_h_since_maintenance,
            "in_schedule_gap": view.queue_len == 0,
        });
        if let Some(cited) = &anomaly {
            output["anomaly"] = serde_json::json!(cited);
        }
        if let Some(alarm) = &condition {
            output["no_load_current"] = serde_json::json!({
                "level_a": alarm.level,
                "recent_ratio": alarm.recent_ratio,
                "score": alarm.score,
            });
        }
        let mut inputs = format!("vibration:{machine}");
        if condition.is_some() {
            inputs.push_str(&format!(";current_a:{machine}"));
        }
        if let Some(cited) = &anomaly {
            inputs.push_str(&format!(";decision:{cited}"));
        }
        let id = log.record(view.now, |id, at| Decision {
            id,
            at,
            skill: "maintenance".to_owned(),
            stage: LifecycleStage::Production,
            inputs_ref: inputs,
            model: MODEL_ID.to_owned(),
            model_version: MODEL_VERSION.to_owned(),
            output,
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
                .entry(view.machine)
                .or_default()
                .push((id.clone(), view.now));
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
            let age = h.last_run_h;
            let how = match (h.serviced_by_us, h.serviced_on_alarm) {
                (false, _) => Renewal::Failure,
                (true, true) => Renewal::ServiceOnAlarm,
                (true, false) => Renewal::Service,
            };
            let moved = self
                .ages
                .as_mut()
                .map(|a| a.observe(m, age, how))
                .unwrap_or_default();
            for moved in moved {
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
        h.serviced_on_alarm = false;
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
        // A fault on its way (the watch's alarm) is serviced now, whatever the machine's age.
        self.condition = self.condition_alarm(view).map(|(alarm, _)| alarm);
        let renewed = view.run_h_since_maintenance <= 0.0;
        let decide = !renewed && self.condition.is_some()
            || match self.threshold_at(ratio) {
                None => view.run_h_since_maintenance >= view.recommended_interval_h,
                Some(t) => {
                    view.run_h_since_maintenance
                        >= self.config.min_interval_share * view.recommended_interval_h
                        && index >= t
                }
            };
        let on_alarm = self.condition.is_some();
        self.mark_serviced(view, decide, on_alarm);
        if decide && (self.condition.is_some() || self.threshold_at(ratio).is_some()) {
            let threshold = self.threshold_at(ratio).unwrap_or(0.0);
            self.log_stop(view, index, threshold, "preventive_maintenance");
        }
        decide
    }
}

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

    #[test]
    fn an_anomaly_on_the_board_asks_for_a_window_citing_it_then_stops_the_machine() {
        let log = DecisionLog::new();
        let board = PlanBoard::new();
        let mut skill =
            PredictiveMaintenance::new(BaselinePolicy::default(), MaintenanceConfig::default())
                .with_board(board.clone(), vec![2.0, 2.0])
                .with_closed_loop()
                .with_log(log.clone(), Timestamp(0), vec!["M-1".into(), "M-2".into()]);
        // Young machines, far from any interval: nothing to do.
        let mut young = view(0, 10.0, 1.0);
        young.now = PlantTime::from_hours(1.0);
        assert!(!skill.start_maintenance(&young));
        assert!(board.lock().windows.is_empty());
        // The condition watch flags M-1.
        board.lock().anomalies.insert(
            0,
            (Some("D-ANOM-000001".into()), PlantTime::from_hours(1.0)),
        );
        assert!(!skill.start_maintenance(&young));
        let window = board.lock().windows.get(&0).cloned();
        let decision = window.and_then(|w| w.decision);
        assert_eq!(decision.as_deref(), Some("D-CBM-000001"));
        let logged = log.drain_decisions();
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert_eq!(logged[0].inputs_ref, "vibration:M-1;decision:D-ANOM-000001");
        assert_eq!(logged[0].output["anomaly"], "D-ANOM-000001");
        assert_eq!(logged[0].output["action"], "maintenance_window_request");
        // M-2 has no anomaly: untouched, and its decisions cite none.
        assert!(!skill.start_maintenance(&view(1, 10.0, 1.0)));
        assert!(!board.lock().windows.contains_key(&1));
        // Still not serviced when the plan has had its time: stopped at its next free moment.
        let mut late = young;
        late.now = PlantTime(PlantTime::from_hours(1.0).0 + ANOMALY_URGENT_MS);
        assert!(skill.start_maintenance(&late));
        let logged = log.drain_decisions();
        assert_eq!(logged.len(), 1);
        assert_eq!(logged[0].output["action"], "preventive_maintenance");
        assert_eq!(logged[0].output["anomaly"], "D-ANOM-000001");
    }

    #[test]
    fn a_rising_no_load_current_services_a_young_machine_at_its_next_free_moment() {
        let log = DecisionLog::new();
        let watch = SharedWatch::new(vec!["M-1".into(), "M-2".into()]);
        let mut skill =
            PredictiveMaintenance::new(BaselinePolicy::default(), MaintenanceConfig::default())
                .with_condition_watch(watch.clone())
                .with_log(log.clone(), Timestamp(0), vec!["M-1".into(), "M-2".into()]);
        // Far below its interval and with no threshold learnt: nothing to do.
        assert!(!skill.start_maintenance(&view(0, 10.0, 1.0)));
        crate::condition::feed_rising_current(&mut watch.feed(), "M-1");
        // The alarm overrides the interval: serviced now, with the current as its evidence.
        assert!(skill.start_maintenance(&view(0, 10.0, 1.0)));
        let logged = log.drain_decisions();
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert_eq!(logged[0].inputs_ref, "vibration:M-1;current_a:M-1");
        assert_eq!(logged[0].output["action"], "preventive_maintenance");
        assert!(logged[0].output["no_load_current"]["recent_ratio"].as_f64() > Some(1.0));
        // M-2 is quiet: untouched.
        assert!(!skill.start_maintenance(&view(1, 10.0, 1.0)));
        assert!(log.drain_decisions().is_empty());
    }

    #[test]
    fn on_a_shared_plan_the_skills_own_alarm_stops_the_machine_at_its_next_free_moment() {
        let board = PlanBoard::new();
        let watch = SharedWatch::new(vec!["M-1".into(), "M-2".into()]);
        let mut skill =
            PredictiveMaintenance::new(BaselinePolicy::default(), MaintenanceConfig::default())
                .with_board(board.clone(), vec![2.0, 2.0])
                .with_condition_watch(watch.clone());
        let mut young = view(0, 10.0, 1.0);
        young.now = PlantTime::from_hours(1.0);
        assert!(!skill.start_maintenance(&young));
        assert!(board.lock().windows.is_empty());
        crate::condition::feed_rising_current(&mut watch.feed(), "M-1");
        // Stopped at its next free moment, work waiting or not, without waiting for the plan:
        // on the board as a window that starts now, for the plans made during the service.
        assert!(skill.start_maintenance(&young));
        let window = board.lock().windows.get(&0).cloned();
        assert_eq!(window.and_then(|w| w.started_at), Some(young.now));
        assert!(!skill.start_maintenance(&view(1, 10.0, 1.0)));
        assert!(!board.lock().windows.contains_key(&1));
        // Serviced (its running hours start again): the alarm is answered, the window gone.
        watch.observe_event(&aifactory_core::PlantEvent {
            at: aifactory_core::Timestamp(0),
            kind: aifactory_core::EventKind::MaintenanceStarted,
            machine: Some("M-1".into()),
            order: None,
            detail: serde_json::json!({}),
        });
        let mut serviced = view(0, 0.5, 1.0);
        serviced.now = PlantTime::from_hours(4.0);
        skill.start_maintenance(&serviced);
        assert!(!board.lock().windows.contains_key(&0));
    }

    #[test]
    fn an_anomaly_on_an_idle_machine_stops_it_at_once() {
        let board = PlanBoard::new();
        let mut skill =
            PredictiveMaintenance::new(BaselinePolicy::default(), MaintenanceConfig::default())
                .with_board(board.clone(), vec![2.0]);
        board
            .lock()
            .anomalies
            .insert(0, (None, PlantTime::from_hours(1.0)));
        let mut busy = view(0, 10.0, 1.0);
        busy.now = PlantTime::from_hours(1.0);
        // Work waiting: a window for the plan to place.
        assert!(!skill.start_maintenance(&busy));
        assert!(board.lock().windows.contains_key(&0));
        // Nothing waiting: a stop costs no production, so it stops now.
        let mut idle = busy;
        idle.queue_len = 0;
        assert!(skill.start_maintenance(&idle));
    }

    #[test]
    fn a_machine_that_has_not_run_since_its_service_is_not_serviced_again() {
        // Found on the textile mill (tier 2, seed 1): a stop made at 0 running hours left its
        // window on the board (only a service that turns the hours back clears it), and the plan
        // serviced the idle loom 420 times back to back.
        let board = PlanBoard::new();
        let aps = crate::ApsPolicy::new(crate::ApsConfig::default(), BaselinePolicy::default())
            .with_board(board.clone());
        let mut skill = PredictiveMaintenance::new(aps, MaintenanceConfig::default())
            .with_board(board.clone(), vec![3.0]);
        board
            .lock()
            .anomalies
            .insert(0, (None, PlantTime::from_hours(1.0)));
        let mut fresh = view(0, 0.0, 1.0);
        fresh.queue_len = 0;
        for hour in 2..6 {
            fresh.now = PlantTime::from_hours(f64::from(hour));
            assert!(
                !skill.start_maintenance(&fresh),
                "serviced again at hour {hour} with no running hours since"
            );
        }
        assert!(!board.lock().windows.contains_key(&0));
        // Once it has run, the anomaly stops it as before.
        let mut ran = fresh;
        ran.run_h_since_maintenance = 5.0;
        assert!(skill.start_maintenance(&ran));
    }
}
