//! One run of the twin from a [`RunSpec`]: the policy its tier builds, day by day to the
//! horizon, and the records a plant has on file at day 0 (the same for every tier, so runs
//! compare on common random numbers).

use aifactory_coordinator::CoordinatorError;
use aifactory_core::Plant;
use aifactory_core::{PlantEvent, TelemetryReading};
use aifactory_twin::{BaselinePolicy, Observer, PlantModel, PlantTime, SimResult, Simulation};
use std::sync::Arc;

/// What to simulate and how.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub plant: Plant,
    pub days: f64,
    pub seed: u64,
    pub policy: BaselinePolicy,
    pub telemetry_period_s: Option<f64>,
    /// Commands from outside (DCMD, OPC UA writes) the twin obeys; `None` keeps the run
    /// deterministic.
    pub commands: Option<aifactory_twin::CommandInbox>,
    /// 0: `policy` decides; 1: the AI skills each on their own; 2: the coordinator's shared
    /// plan (both on top of `policy` for what they do not cover); 3: the shared plan as a
    /// closed loop (outcomes measured from the run's events, models updated online).
    pub tier: u8,
    /// Where the skills log their decisions (a recorded run writes them to the ledger).
    pub decisions: Option<aifactory_core::DecisionLog>,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("setting up the tier-1 skills")]
    Tier1(#[source] CoordinatorError),
    #[error("setting up the tier-{tier} coordinator")]
    Coordinator {
        tier: u8,
        #[source]
        source: CoordinatorError,
    },
}

/// What a long run tells its caller as it goes, so a terminal can draw a bar: the runtime
/// never draws one itself. `()` tells no one.
pub trait Progress: Send + Sync {
    /// `day` whole simulated days are done.
    fn day(&self, day: u64);
    /// The run has reached its horizon.
    fn finished(&self);
}

impl Progress for () {
    fn day(&self, _day: u64) {}
    fn finished(&self) {}
}

/// Tier 1 (the coordinator's): every skill decides on its own; with the observer that feeds
/// the maintenance skill's condition watch.
fn tier1_policy(
    model: &PlantModel,
    base: BaselinePolicy,
    log: Option<&aifactory_core::DecisionLog>,
) -> Result<
    (
        aifactory_coordinator::Tier1,
        aifactory_skills::condition::WatchFeed,
    ),
    RunError,
> {
    aifactory_coordinator::tier1(
        model.master(),
        base,
        log,
        &std::collections::BTreeMap::new(),
    )
    .map_err(RunError::Tier1)
}

/// Runs the twin day by day (so progress moves) and closes the books at the horizon.
pub fn simulate(
    spec: &RunSpec,
    observer: &mut dyn aifactory_twin::Observer,
    progress: &dyn Progress,
) -> Result<SimResult, RunError> {
    let model = Arc::new(PlantModel::new(spec.plant.clone()));
    let mut loop_observer = None;
    let policy: Box<dyn aifactory_twin::Policy + Send> = match spec.tier {
        0 => Box::new(spec.policy),
        1 => {
            let (policy, feed) = tier1_policy(&model, spec.policy, spec.decisions.as_ref())?;
            loop_observer = Some(Box::new(feed) as Box<dyn Observer + Send>);
            Box::new(policy)
        }
        tier => {
            let coordinator = |source| RunError::Coordinator { tier, source };
            // The same records on file and trial line as the ladder's tiers 2 and 3.
            let (order_book, records) = records_on_file(&model, spec.seed);
            let mut trials = twin_trials(&model, spec.seed);
            let setup = aifactory_coordinator::Setup {
                master: model.master(),
                tier: aifactory_coordinator::Tier::from_number(tier).map_err(coordinator)?,
                links: aifactory_coordinator::Links::ALL,
                log: spec.decisions.as_ref(),
                seed: spec.seed,
                order_book: &order_book,
                maintenance_records: &records,
            };
            let configured =
                aifactory_coordinator::build(&setup, Some(&mut trials)).map_err(coordinator)?;
            // The skills watch what the plant reports: the condition watch its readings, tier 3
            // its events to measure outcomes.
            loop_observer = configured.observer;
            configured.policy
        }
    };
    let policy: Box<dyn aifactory_twin::Policy + Send> = match &spec.commands {
        Some(inbox) => Box::new(aifactory_twin::Commanded::new(
            aifactory_twin::Boxed(policy),
            &model,
            inbox.clone(),
        )),
        None => policy,
    };
    let mut sim = Simulation::new(model, spec.seed, policy, spec.telemetry_period_s);
    let mut both;
    let observer: &mut dyn Observer = match &mut loop_observer {
        Some(closed_loop) => {
            both = Both {
                first: observer,
                second: closed_loop.as_mut(),
            };
            &mut both
        }
        None => observer,
    };
    let whole_days = spec.days.floor() as u64;
    for day in 1..=whole_days {
        sim.run_until(PlantTime::from_days(day as f64), observer);
        progress.day(day);
    }
    sim.run_until(PlantTime::from_days(spec.days), observer);
    progress.finished();
    Ok(sim.finish())
}

/// Hands the twin's output to two observers.
pub(crate) struct Both<'a> {
    pub(crate) first: &'a mut dyn Observer,
    pub(crate) second: &'a mut dyn Observer,
}

impl Observer for Both<'_> {
    fn wants_events(&self) -> bool {
        self.first.wants_events() || self.second.wants_events()
    }
    fn event(&mut self, event: PlantEvent) {
        if self.second.wants_events() {
            self.second.event(event.clone());
        }
        if self.first.wants_events() {
            self.first.event(event);
        }
    }
    fn wants_telemetry(&self) -> bool {
        self.first.wants_telemetry() || self.second.wants_telemetry()
    }
    fn telemetry(&mut self, readings: [TelemetryReading; 3]) {
        if self.second.wants_telemetry() {
            self.second.telemetry(readings.clone());
        }
        if self.first.wants_telemetry() {
            self.first.telemetry(readings);
        }
    }
    fn reading(&mut self, reading: TelemetryReading) {
        if self.second.wants_telemetry() {
            self.second.reading(reading.clone());
        }
        if self.first.wants_telemetry() {
            self.first.reading(reading);
        }
    }
}

/// Days of order book before day 0 each run starts with (every tier gets the same history).
const ORDER_BOOK_DAYS: u32 = 120;

/// Running hours of maintenance records per machine before day 0 (about a year).
const MAINTENANCE_RECORD_H: f64 = 6_000.0;

/// What a plant has on file at day 0 for seed `seed`: the order book and the maintenance records.
pub type OnFile = (
    std::collections::BTreeMap<String, Vec<f64>>,
    Vec<Vec<(f64, bool)>>,
);

/// The order book and maintenance records the twin has on file at day 0 for `seed`.
pub fn records_on_file(model: &PlantModel, seed: u64) -> OnFile {
    (
        aifactory_twin::order_book_history(model, ORDER_BOOK_DAYS, seed),
        aifactory_twin::maintenance_history(model, MAINTENANCE_RECORD_H, seed),
    )
}

/// Trial batches of 1,000 units on the twin, with their own seeded noise.
pub fn twin_trials(
    model: &PlantModel,
    seed: u64,
) -> impl FnMut(usize, usize, &[f64]) -> Option<f64> {
    let mut noise = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed ^ 0x0A11);
    move |product, step, values| model.trial_batch(product, step, values, 1000, &mut noise)
}
