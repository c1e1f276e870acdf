//! Condition watch: the streaming anomaly detector run on each machine's no-load motor
//! current, as a trigger for maintenance.
//!
//! A motor's current under load follows the load of each operation and the machine's wear;
//! its current while the machine stands powered but not cutting (idle, or setting up) does not,
//! so a rise there is a developing fault (binding bearings, a dragging brake), not the work.
//! [`ConditionWatch`] follows each machine's state from the plant's events, learns the
//! no-load level after each renewal (service or repair), and feeds the ratio of every later
//! no-load reading to that level to an [`AnomalyDetector`]. An alarm on a rise, confirmed by
//! the recent readings standing clearly above the level, is reported once per incident; the
//! next renewal re-arms it. Pure: no clock, no I/O.
//!
//! [`SharedWatch`] is the watch as the maintenance skill uses it on its own (tiers 1 and 2):
//! its [`WatchFeed`] observes the plant's events and readings, and the skill asks it which
//! machines stand alarmed. At tier 3 the closed loop feeds the same watch and records each new
//! alarm as a decision.

use crate::anomaly::{AnomalyConfig, AnomalyDetector, StreamingDetector};
use aifactory_core::{EventKind, PlantEvent, TelemetryReading, Timestamp};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// The signal watched.
pub const SIGNAL: &str = "current_a";
/// No-load readings after a renewal that set the level.
pub const LEVEL_READINGS: u32 = 120;
/// Recent no-load readings whose mean must confirm an alarm.
pub const CONFIRM_READINGS: usize = 30;
/// The recent mean must stand this many standard errors above the level.
pub const CONFIRM_Z: f64 = 4.0;

/// An alarm on a machine's no-load current.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionAlarm {
    pub machine: usize,
    pub at: Timestamp,
    /// The reading that raised it, and the learnt no-load level.
    pub value: f64,
    pub level: f64,
    /// Mean of the recent no-load readings over the level.
    pub recent_ratio: f64,
    /// The detector's score.
    pub score: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Powered, not cutting (idle, or setting up until the given time).
    NoLoad,
    SettingUp {
        until: Timestamp,
    },
    Running,
    Stopped,
}

#[derive(Debug, Clone)]
struct Watched {
    phase: Phase,
    /// Sum, sum of squares and count of the no-load readings that set the level.
    level: (f64, f64, u32),
    detector: AnomalyDetector,
    recent: VecDeque<f64>,
    /// No-load readings since the detector last alarmed on a rise (an alarm stands for
    /// `CONFIRM_READINGS` readings, waiting for the recent mean to confirm it).
    since_detector_alarm: Option<usize>,
    alarmed: bool,
}

impl Watched {
    fn new(config: &AnomalyConfig) -> Self {
        Watched {
            phase: Phase::NoLoad,
            level: (0.0, 0.0, 0),
            detector: AnomalyDetector::new(config.clone()),
            recent: VecDeque::with_capacity(CONFIRM_READINGS),
            since_detector_alarm: None,
            alarmed: false,
        }
    }

    fn renew(&mut self, config: &AnomalyConfig) {
        let phase = self.phase;
        *self = Watched::new(config);
        self.phase = phase;
    }
}

/// The watch over every machine of a plant, indexed as the plant file lists them.
#[derive(Debug, Clone)]
pub struct ConditionWatch {
    config: AnomalyConfig,
    machines: Vec<Watched>,
}

impl ConditionWatch {
    pub fn new(machines: usize) -> Self {
        let config = AnomalyConfig::default();
        ConditionWatch {
            machines: (0..machines).map(|_| Watched::new(&config)).collect(),
            config,
        }
    }

    /// Follows a machine's state from one of its events (`setup_s`: the set-up time an
    /// operation start announces).
    pub fn event(&mut self, machine: usize, kind: EventKind, at: Timestamp, setup_s: f64) {
        let config = &self.config;
        let Some(w) = self.machines.get_mut(machine) else {
            return;
        };
        w.phase = match kind {
            EventKind::OperationStarted => {
                let setup_ms = (setup_s.max(0.0) * 1000.0) as i64;
                if setup_ms > 0 {
                    Phase::SettingUp {
                        until: Timestamp(at.0.saturating_add(setup_ms)),
                    }
                } else {
                    Phase::Running
                }
            }
            EventKind::OperationCompleted => Phase::NoLoad,
            EventKind::MachineFailed | EventKind::MaintenanceStarted => Phase::Stopped,
            EventKind::RepairCompleted | EventKind::MaintenanceCompleted => {
                w.renew(config);
                Phase::NoLoad
            }
            _ => return,
        };
    }

    /// Scores one reading of `signal`; an alarm when the machine's no-load current departs
    /// upwards from its level.
    pub fn reading(
        &mut self,
        machine: usize,
        at: Timestamp,
        signal: &str,
        value: f64,
    ) -> Option<ConditionAlarm> {
        if signal != SIGNAL || !value.is_finite() {
            return None;
        }
        let w = self.machines.get_mut(machine)?;
        let no_load = match w.phase {
            Phase::NoLoad => true,
            Phase::SettingUp { until } if at < until => true,
            Phase::SettingUp { .. } => {
                w.phase = Phase::Running;
                false
            }
            Phase::Running | Phase::Stopped => false,
        };
        if !no_load || value <= 0.0 {
            return None;
        }
        let (sum, squares, n) = &mut w.level;
        if *n < LEVEL_READINGS {
            *sum += value;
            *squares += value * value;
            *n += 1;
            return None;
        }
        let count = f64::from(*n);
        let level = *sum / count;
        let sd = (*squares / count - level * level).max(0.0).sqrt();
        let ratio = value / level.max(1e-9);
        let score = w.detector.update(at, ratio);
        if w.recent.len() == CONFIRM_READINGS {
            w.recent.pop_front();
        }
        w.recent.push_back(ratio);
        w.since_detector_alarm = if score >= self.config.alarm_level && ratio > 1.0 {
            Some(0)
        } else {
            w.since_detector_alarm
                .map(|n| n + 1)
                .filter(|&n| n < CONFIRM_READINGS)
        };
        if w.alarmed || w.since_detector_alarm.is_none() || w.recent.len() < CONFIRM_READINGS {
            return None;
        }
        let recent = w.recent.iter().sum::<f64>() / w.recent.len() as f64;
        let standard_error = sd / level.max(1e-9) / (CONFIRM_READINGS as f64).sqrt();
        if recent > 1.0 + CONFIRM_Z * standard_error.max(1e-6) {
            w.alarmed = true;
            return Some(ConditionAlarm {
                machine,
                at,
                value,
                level,
                recent_ratio: recent,
                score,
            });
        }
        None
    }
}

#[derive(Debug)]
struct SharedState {
    watch: ConditionWatch,
    machine_index: HashMap<String, usize>,
    /// Alarms standing, per machine, until its next service or failure.
    alarms: BTreeMap<usize, ConditionAlarm>,
}

/// A condition watch shared between the observer that feeds it ([`SharedWatch::feed`]) and the
/// skill that acts on its alarms ([`SharedWatch::alarm`]).
#[derive(Debug, Clone)]
pub struct SharedWatch(Arc<Mutex<SharedState>>);

impl SharedWatch {
    /// A watch over `machine_ids`, in the plant file's order.
    pub fn new(machine_ids: Vec<String>) -> Self {
        SharedWatch(Arc::new(Mutex::new(SharedState {
            watch: ConditionWatch::new(machine_ids.len()),
            machine_index: machine_ids
                .into_iter()
                .enumerate()
                .map(|(i, id)| (id, i))
                .collect(),
            alarms: BTreeMap::new(),
        })))
    }

    /// A poisoned lock still holds consistent data (each update replaces whole entries).
    fn lock(&self) -> MutexGuard<'_, SharedState> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The alarm standing on `machine`, if its no-load current has risen since its last
    /// renewal.
    pub fn alarm(&self, machine: usize) -> Option<ConditionAlarm> {
        self.lock().alarms.get(&machine).cloned()
    }

    /// The observer that feeds this watch the plant's events and readings.
    pub fn feed(&self) -> WatchFeed {
        WatchFeed(self.clone())
    }

    /// Follows a machine's state from one of the plant's events; a machine's stop (service or
    /// failure) answers its standing alarm either way.
    pub fn observe_event(&self, event: &PlantEvent) {
        let mut state = self.lock();
        let Some(&m) = event
            .machine
            .as_deref()
            .and_then(|id| state.machine_index.get(id))
        else {
            return;
        };
        let setup_s = event.detail["setup_s"].as_f64().unwrap_or(0.0);
        state.watch.event(m, event.kind, event.at, setup_s);
        if matches!(
            event.kind,
            EventKind::MachineFailed | EventKind::MaintenanceStarted
        ) {
            state.alarms.remove(&m);
        }
    }

    /// Scores one reading; the alarm when it raises a new one (it then stands until the
    /// machine stops).
    pub fn observe_reading(&self, reading: &TelemetryReading) -> Option<ConditionAlarm> {
        let mut state = self.lock();
        let state = &mut *state;
        let &m = state.machine_index.get(&reading.machine)?;
        let alarm = state
            .watch
            .reading(m, reading.at, &reading.signal, reading.value)?;
        state.alarms.insert(m, alarm.clone());
        Some(alarm)
    }
}

/// Feeds a [`SharedWatch`]: pass it to the simulation, or give it a plant feed's events and
/// readings.
#[derive(Debug, Clone)]
pub struct WatchFeed(SharedWatch);

impl aifactory_plant::Observer for WatchFeed {
    fn wants_events(&self) -> bool {
        true
    }

    fn event(&mut self, event: PlantEvent) {
        self.0.observe_event(&event);
    }

    fn wants_telemetry(&self) -> bool {
        true
    }

    fn telemetry(&mut self, readings: [TelemetryReading; 3]) {
        for reading in readings {
            self.reading(reading);
        }
    }

    fn reading(&mut self, reading: TelemetryReading) {
        self.0.observe_reading(&reading);
    }
}

/// Test support: feeds `machine`'s no-load current, steady for 2,000 minutes and then
/// climbing 30 % over the next 1,000 (the watch alarms during the climb).
#[cfg(test)]
pub(crate) fn feed_rising_current(feed: &mut WatchFeed, machine: &str) {
    use aifactory_plant::Observer;
    for i in 0..3_000 {
        let drift = if i >= 2_000 {
            0.3 * (i - 2_000) as f64 / 1_000.0
        } else {
            0.0
        };
        feed.reading(TelemetryReading {
            at: Timestamp(i * 60_000),
            machine: machine.to_owned(),
            signal: SIGNAL.to_owned(),
            value: tests::noise(i) * (1.0 + drift),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(i: i64) -> Timestamp {
        Timestamp(i * 60_000)
    }

    /// A noisy no-load current around 4 A: a deterministic wobble of ±3 %.
    pub(crate) fn noise(i: i64) -> f64 {
        let x = ((i * 7919) % 101) as f64 / 100.0 - 0.5;
        4.0 * (1.0 + 0.06 * x)
    }

    #[test]
    fn a_rising_no_load_current_alarms_once_and_a_renewal_rearms() {
        let mut watch = ConditionWatch::new(1);
        let mut alarms = Vec::new();
        for i in 0..3_000 {
            // From minute 2,000 the current climbs 30 % over 1,000 minutes.
            let drift = if i >= 2_000 {
                0.3 * (i - 2_000) as f64 / 1_000.0
            } else {
                0.0
            };
            if let Some(a) = watch.reading(0, minute(i), SIGNAL, noise(i) * (1.0 + drift)) {
                alarms.push(a);
            }
        }
        assert_eq!(alarms.len(), 1, "{alarms:?}");
        let alarm = &alarms[0];
        assert!(
            alarm.at > minute(2_000) && alarm.at < minute(2_600),
            "{alarm:?}"
        );
        assert!(alarm.recent_ratio > 1.0);
        // A service renews the machine: the level is learnt again and the watch re-armed.
        watch.event(0, EventKind::MaintenanceStarted, minute(3_000), 0.0);
        assert_eq!(watch.reading(0, minute(3_001), SIGNAL, 50.0), None);
        watch.event(0, EventKind::MaintenanceCompleted, minute(3_100), 0.0);
        let mut again = 0;
        for i in 3_100..6_000 {
            let drift = if i >= 5_000 { 0.3 } else { 0.0 };
            again += usize::from(
                watch
                    .reading(0, minute(i), SIGNAL, noise(i) * (1.0 + drift))
                    .is_some(),
            );
        }
        assert_eq!(again, 1);
    }

    #[test]
    fn readings_under_load_and_other_signals_are_not_scored() {
        let mut watch = ConditionWatch::new(2);
        for i in 0..500 {
            assert_eq!(watch.reading(0, minute(i), SIGNAL, noise(i)), None);
        }
        // Running (after its set-up) the current follows the work: never an alarm.
        watch.event(0, EventKind::OperationStarted, minute(500), 600.0);
        let mut alarms = 0;
        for i in 500..2_000 {
            let load = if i < 510 { 1.0 } else { 6.0 + (i % 7) as f64 };
            alarms += usize::from(
                watch
                    .reading(0, minute(i), SIGNAL, noise(i) * load)
                    .is_some(),
            );
            alarms += usize::from(
                watch
                    .reading(0, minute(i), "vibration_mm_s", 99.0)
                    .is_some(),
            );
        }
        assert_eq!(alarms, 0);
        // A machine the plant file does not list is ignored, not a panic.
        assert_eq!(watch.reading(7, minute(1), SIGNAL, 1.0), None);
        watch.event(7, EventKind::MachineFailed, minute(1), 0.0);
    }

    #[test]
    fn a_steady_noisy_current_never_alarms() {
        let mut watch = ConditionWatch::new(1);
        let alarms = (0..20_000)
            .filter(|&i| watch.reading(0, minute(i), SIGNAL, noise(i)).is_some())
            .count();
        assert_eq!(alarms, 0);
    }

    #[test]
    fn a_shared_watch_holds_an_alarm_until_the_machine_stops() {
        use aifactory_plant::Observer;
        let watch = SharedWatch::new(vec!["M-1".into(), "M-2".into()]);
        let mut feed = watch.feed();
        assert!(feed.wants_events() && feed.wants_telemetry());
        feed_rising_current(&mut feed, "M-1");
        let alarm = watch.alarm(0).expect("M-1's current rose");
        assert!(alarm.recent_ratio > 1.0, "{alarm:?}");
        assert_eq!(watch.alarm(1), None);
        // A machine the plant file does not list is ignored, not a panic.
        feed.reading(TelemetryReading {
            at: minute(3_001),
            machine: "M-9".into(),
            signal: SIGNAL.into(),
            value: 99.0,
        });
        let event = |kind, machine: &str| PlantEvent {
            at: minute(3_002),
            kind,
            machine: Some(machine.to_owned()),
            order: None,
            detail: serde_json::json!({}),
        };
        feed.event(event(EventKind::OperationCompleted, "M-9"));
        // Another machine's service leaves the alarm standing; its own answers it.
        feed.event(event(EventKind::MaintenanceStarted, "M-2"));
        assert!(watch.alarm(0).is_some());
        feed.event(event(EventKind::MaintenanceStarted, "M-1"));
        assert_eq!(watch.alarm(0), None);
    }
}
