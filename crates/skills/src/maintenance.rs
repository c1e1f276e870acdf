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

pub use crate::policy::maintenance::PredictiveMaintenance;

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

/// Model id written into maintenance decisions.
pub const MODEL_ID: &str = "cbm-health-index";
/// Model version: the health index and threshold rule (2: with the no-load current watch).
pub const MODEL_VERSION: &str = "2/vib-baseline/failure-quantile/gap/no-load-current";

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

/// How a machine's run since its last renewal ended, as the service-age model counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Serviced by age or health index: the machine was still sound (a censored age).
    Service,
    /// Serviced because the condition watch saw a fault coming: a failure caught in time.
    ServiceOnAlarm,
    /// Failed: a failure the watch (if any) did not see coming.
    Failure,
}

/// What a condition watch has done for the fleet: failures it caught in time and failures it
/// missed. Before any are seen it is credited with one of each (a catch rate of one half).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct WatchRecord {
    caught: u32,
    missed: u32,
}

impl WatchRecord {
    const PRIOR_CAUGHT: f64 = 1.0;
    const PRIOR_MISSED: f64 = 1.0;

    fn catch_rate(&self) -> f64 {
        (f64::from(self.caught) + Self::PRIOR_CAUGHT)
            / (f64::from(self.caught + self.missed) + Self::PRIOR_CAUGHT + Self::PRIOR_MISSED)
    }
}

/// Service ages learnt per machine group (machines of one type), from the fleet's renewals.
///
/// With a condition watch, a failure the watch catches costs a service, not a repair: the
/// renewal–reward cost of a failure is weighed by the watch's measured catch rate, so ages
/// lengthen where the watch works (a service by age then buys little).
#[derive(Debug, Clone)]
pub struct ServiceAges {
    /// Machine → group.
    group_of: Vec<usize>,
    /// Per group: planned and failure cost, the recommended interval, renewals seen, the
    /// learnt age.
    groups: Vec<AgeGroup>,
    /// Failures to see in a group before trusting its learnt age.
    min_failures: usize,
    /// The condition watch's record, when one watches the fleet.
    watch: Option<WatchRecord>,
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
    pub fn new(machines: &[(String, f64, f64, f64)], min_failures: usize) -> Self {
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
        ServiceAges {
            group_of,
            groups,
            min_failures,
            watch: None,
        }
    }

    /// A condition watch guards the fleet: failures it catches cost a service.
    pub fn with_condition_watch(mut self) -> Self {
        self.watch = Some(WatchRecord::default());
        self.learn();
        self
    }

    /// Adds renewals from the maintenance records (per machine, in the twin's order) and
    /// learns from them at once.
    pub fn with_history(mut self, history: &[Vec<(f64, bool)>]) -> Self {
        for (machine, renewals) in history.iter().enumerate() {
            if let Some(&g) = self.group_of.get(machine) {
                self.groups[g].renewals.extend(renewals.iter().copied());
            }
        }
        self.learn();
        for g in &mut self.groups {
            g.reported_h = g.age_h;
        }
        self
    }

    /// The share of failures the condition watch catches in time, as measured so far; `None`
    /// without a watch.
    pub fn catch_rate(&self) -> Option<f64> {
        self.watch.map(|w| w.catch_rate())
    }

    /// The cost of a failure to the renewal–reward model: a repair, or a service where the
    /// watch catches it.
    fn failure_cost(&self, g: &AgeGroup) -> f64 {
        match self.catch_rate() {
            Some(p) => p * g.planned_cost + (1.0 - p) * g.failure_cost,
            None => g.failure_cost,
        }
    }

    fn learn(&mut self) {
        let ages: Vec<Option<f64>> = self
            .groups
            .iter()
            .map(|g| {
                optimal_service_age(
                    &g.renewals,
                    g.planned_cost,
                    self.failure_cost(g),
                    g.recommended_h,
                    self.min_failures,
                )
            })
            .collect();
        for (g, age) in self.groups.iter_mut().zip(ages) {
            g.age_h = age;
        }
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

    /// Records a renewal; returns (group name, age before, age after) for every group whose
    /// learnt age moved by more than 5 % (or was first learnt). A failure the watch caught
    /// counts as a failure at that age (the fault was real), and moves the watch's catch rate,
    /// which weighs every group's failures.
    pub fn observe(
        &mut self,
        machine: usize,
        age_h: f64,
        how: Renewal,
    ) -> Vec<(String, Option<f64>, f64)> {
        let Some(&g) = self.group_of.get(machine) else {
            return Vec::new();
        };
        let failed = match how {
            Renewal::Service => false,
            Renewal::ServiceOnAlarm => self.watch.is_some(),
            Renewal::Failure => true,
        };
        self.groups[g].renewals.push((age_h, failed));
        if let Some(watch) = &mut self.watch {
            match how {
                Renewal::ServiceOnAlarm => watch.caught += 1,
                Renewal::Failure => watch.missed += 1,
                Renewal::Service => {}
            }
        }
        self.learn();
        let mut moved = Vec::new();
        for g in &mut self.groups {
            let Some(after) = g.age_h else { continue };
            match g.reported_h {
                Some(b) if (after - b).abs() <= 0.05 * b => {}
                before => {
                    g.reported_h = Some(after);
                    moved.push((g.name.clone(), before, after));
                }
            }
        }
        moved
    }
}

/// Once a service age is learnt, a window is asked for at this share of it, and the machine is
/// stopped at once past `AGE_URGENT_SHARE` of it.
pub(crate) const AGE_WINDOW_SHARE: f64 = 0.9;
pub(crate) const AGE_URGENT_SHARE: f64 = 1.1;

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
        let mut ages = ServiceAges::new(&machines, 5).with_history(&history);
        let lathe = ages.age_h(1).expect("lathes share the records");
        assert!(lathe < 220.0, "{lathe}");
        assert_eq!(ages.age_h(2), None);
        assert_eq!(ages.learnt().len(), 1);
        // A run of early failures moves the lathes' age: reported as a model update.
        let mut moved = Vec::new();
        for _ in 0..200 {
            moved.extend(ages.observe(0, 10.0, Renewal::Failure));
        }
        let (group, before, after) = moved.first().cloned().expect("the age moved");
        assert_eq!(group, "lathe");
        assert_eq!(before, Some(lathe));
        assert!(after != lathe);
    }

    #[test]
    fn a_watch_that_catches_failures_lengthens_the_service_age() {
        let machines = vec![("lathe".to_owned(), 600.0, 4800.0, 220.0)];
        let history = vec![renewals(3.0, 200.0, 220.0, 200)];
        let mut plain = ServiceAges::new(&machines, 5).with_history(&history);
        let mut watched = ServiceAges::new(&machines, 5)
            .with_condition_watch()
            .with_history(&history);
        assert_eq!(plain.catch_rate(), None);
        assert_eq!(watched.catch_rate(), Some(0.5));
        // The same thirty faults at 150 h: caught by the watch (a service each), or failures.
        for _ in 0..30 {
            watched.observe(0, 150.0, Renewal::ServiceOnAlarm);
            plain.observe(0, 150.0, Renewal::Failure);
        }
        assert!(watched.catch_rate().expect("a watch") > 0.9);
        let (watched, plain) = (
            watched.age_h(0).expect("learnt"),
            plain.age_h(0).expect("learnt"),
        );
        // Caught failures cost about a service: servicing by age buys little, so it waits.
        assert!(watched > 0.8 * 220.0, "{watched}");
        assert!(plain < 150.0, "{plain}");
        // Without a watch a service on an alarm is a sound machine serviced (censored).
        let mut unwatched = ServiceAges::new(&machines, 1);
        unwatched.observe(0, 150.0, Renewal::ServiceOnAlarm);
        assert_eq!(unwatched.age_h(0), None);
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
