//! The coordinator: the AI skills composed into one rung of the AI-factory ladder, as one
//! [`aifactory_plant::Policy`] that the twin (or a plant's connector) drives.
//!
//! - tier 0: no AI — EDD dispatching, fixed-interval service, reorder points, default settings;
//! - tier 1: skills each on their own — APS scheduling, condition-based maintenance (its
//!   health index, and a watch on each machine's no-load current that services a machine whose
//!   current rises), replenishment from forecasts;
//! - tier 2: one shared plan — maintenance windows from the condition-based skill enter the
//!   schedule (and the plan cites the maintenance decisions), capable-to-promise quotes every
//!   new order from the live plan, quality risk from trial batches decides which set-points are
//!   tuned, forecasts drive purchasing, and energy-intensive machines wait out dear tariff
//!   periods when the jobs waiting for them have the slack. Each of the four links of the
//!   assessment can be cut on its own.
//! - tier 3: the shared plan as a closed loop ([`closed_loop`]) — set-points through a guard
//!   (bounds, approval for large moves, a production control group, rollback when the verified
//!   effect is wrong), a rate limit on automatic services, outcomes measured from the plant's events and linked to the decisions
//!   behind them (services, deliveries against quotes, forecasts against demand, plans against
//!   dispatches, scrap against risk), models updated from them (service ages per machine type
//!   from the fleet's renewals, the maintenance threshold on each failure, forecasts weekly,
//!   defect risk from production, release lead times from flow times), orders released by
//!   measured flow time, and replans on every change of capacity; the condition watch on each
//!   machine's no-load current raises anomalies that bring its service forward through the
//!   plan (link `anomaly-trigger`), and a continuing search (evolutionary operation) moves
//!   each step's settings in small guarded steps, run beside the current ones and adopted only
//!   when good units come faster without more scrap (link `process-search`).
//!
//! It owns the wiring (the plan board, which links are on); each skill keeps its own model. It
//! never sees the twin's hidden truth (trial batches come through the caller's callback), never
//! reads a clock and does no I/O.

pub mod closed_loop;
mod energy;
mod quality;
mod quote;

pub use closed_loop::{ClosedLoop, LoopCounts, LoopObserver};
pub use energy::TariffAware;
pub use quality::{QualityPlan, TrialFn, TrialLine};
pub use quote::Quoting;

use aifactory_core::{DecisionLog, Timestamp};
use aifactory_plant::{BaselinePolicy, Boxed, MasterData, Observer, Policy};
use aifactory_skills::board::PlanBoard;
use aifactory_skills::condition::{SharedWatch, WatchFeed};
use aifactory_skills::maintenance::{MaintenanceConfig, PredictiveMaintenance, ServiceAges};
use aifactory_skills::policy::lots::{LotConfig, LotSizing, RoutingTime, SharedLots};
use aifactory_skills::quality::ProcessSettings;
use aifactory_skills::replenish::{ForecastReplenishment, ReplenishConfig};
use aifactory_skills::{ApsConfig, ApsPolicy};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoordinatorError {
    #[error("tier {0} is not a rung of the ladder (0 to 3)")]
    Tier(u8),
    #[error(
        "unknown link `{0}` (maintenance-to-schedule, forecast-to-plan, quality-to-process, schedule-to-quote, lot-sizing; in the closed loop: anomaly-trigger, process-search)"
    )]
    Link(String),
    #[error("the quality link needs trial batches, and none were offered")]
    NoTrials,
    #[error("a trial batch could not run for product {product}, step {step}")]
    Trial { product: usize, step: usize },
    #[error("tuning process settings: {0}")]
    Quality(String),
    #[error("setting up the replenishment skill: {0}")]
    Replenishment(String),
}

/// A rung of the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    Zero,
    One,
    Two,
    Three,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Zero, Tier::One, Tier::Two, Tier::Three];

    pub fn from_number(n: u8) -> Result<Tier, CoordinatorError> {
        match n {
            0 => Ok(Tier::Zero),
            1 => Ok(Tier::One),
            2 => Ok(Tier::Two),
            3 => Ok(Tier::Three),
            _ => Err(CoordinatorError::Tier(n)),
        }
    }

    pub fn number(self) -> u8 {
        match self {
            Tier::Zero => 0,
            Tier::One => 1,
            Tier::Two => 2,
            Tier::Three => 3,
        }
    }

    /// What the configuration runs, in a line.
    pub fn describe(self) -> &'static str {
        match self {
            Tier::Zero => {
                "EDD dispatching, fixed-interval service, reorder points, default settings"
            }
            Tier::One => {
                "skills each on their own: APS, condition-based maintenance, forecast replenishment"
            }
            Tier::Two => {
                "one shared plan: maintenance windows in the schedule, quotes from the live plan, set-points by quality risk, forecasts into purchasing"
            }
            Tier::Three => {
                "closed loop: guarded set-points with approval, control group and rollback; a continuing search around each step's settings; anomalies on machine signals bring services forward; outcomes linked to decisions; models updated online; replans on every capacity change"
            }
        }
    }
}

/// The links of the shared plan (tier 2 and up), and of the closed loop (tier 3), each of
/// which can be cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Links {
    pub maintenance_to_schedule: bool,
    pub forecast_to_plan: bool,
    pub quality_to_process: bool,
    pub schedule_to_quote: bool,
    /// Tier 3: the condition watch on each machine's signals brings services forward.
    pub anomaly_trigger: bool,
    /// Tier 3: the continuing search around each step's settings (evolutionary operation).
    pub process_search: bool,
    /// Tiers 2 and 3: orders opened as equal lots with a learnt scrap allowance.
    pub lot_sizing: bool,
}

impl Links {
    pub const ALL: Links = Links {
        maintenance_to_schedule: true,
        forecast_to_plan: true,
        quality_to_process: true,
        schedule_to_quote: true,
        anomaly_trigger: true,
        process_search: true,
        lot_sizing: true,
    };

    /// The shared plan's link ids, as the assessment names them.
    pub const IDS: [&'static str; 4] = [
        "maintenance-to-schedule",
        "forecast-to-plan",
        "quality-to-process",
        "schedule-to-quote",
    ];

    /// These links with `id` cut.
    pub fn without(mut self, id: &str) -> Result<Links, CoordinatorError> {
        match id {
            "maintenance-to-schedule" => self.maintenance_to_schedule = false,
            "forecast-to-plan" => self.forecast_to_plan = false,
            "quality-to-process" => self.quality_to_process = false,
            "schedule-to-quote" => self.schedule_to_quote = false,
            "anomaly-trigger" => self.anomaly_trigger = false,
            "process-search" => self.process_search = false,
            "lot-sizing" => self.lot_sizing = false,
            other => return Err(CoordinatorError::Link(other.to_owned())),
        }
        Ok(self)
    }
}

/// What to build.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// The plant's master data (the plant file, indexed).
    pub master: &'a MasterData,
    pub tier: Tier,
    pub links: Links,
    /// Where decisions go (none for a benchmark that only wants KPIs).
    pub log: Option<&'a DecisionLog>,
    /// Seeds the skills' own randomness (the solver, Bayesian optimisation).
    pub seed: u64,
    /// Units ordered per product id and day before day 0 (the ERP's order book), from which
    /// forecasting starts; empty: forecasts wait until the run has built the history.
    pub order_book: &'a BTreeMap<String, Vec<f64>>,
    /// The maintenance records before day 0 (per machine, in the twin's order: running hours
    /// of each renewal and whether it was a failure); the closed loop's service-age model
    /// starts from them. Empty: it learns from the run alone.
    pub maintenance_records: &'a [Vec<(f64, bool)>],
}

/// The skills of tier 1: APS inside condition-based maintenance inside forecast replenishment.
pub type Tier1 = ForecastReplenishment<PredictiveMaintenance<ApsPolicy>>;

/// Tier 1 on its own type (the CLI's `sim --policy tier1` records it), with the observer that
/// feeds its maintenance skill's condition watch (give it the plant's events and readings).
pub fn tier1(
    master: &MasterData,
    base: BaselinePolicy,
    log: Option<&DecisionLog>,
    order_book: &BTreeMap<String, Vec<f64>>,
) -> Result<(Tier1, WatchFeed), CoordinatorError> {
    let (start, _) = master.plant().start();
    let mut scheduling = ApsPolicy::new(ApsConfig::default(), base);
    if let Some(log) = log {
        scheduling = scheduling.with_log(log.clone(), start);
    }
    let watch = condition_watch(master);
    let mut maintenance = PredictiveMaintenance::new(scheduling, MaintenanceConfig::default())
        .with_condition_watch(watch.clone());
    if let Some(log) = log {
        let ids = master.machine_ids().map(str::to_owned).collect();
        maintenance = maintenance.with_log(log.clone(), start, ids);
    }
    Ok((
        replenishment(maintenance, master, log, start, order_book)?,
        watch.feed(),
    ))
}

/// The maintenance skill's own watch on every machine of the plant.
fn condition_watch(master: &MasterData) -> SharedWatch {
    SharedWatch::new(master.machine_ids().map(str::to_owned).collect())
}

fn replenishment<P: Policy>(
    inner: P,
    master: &MasterData,
    log: Option<&DecisionLog>,
    start: Timestamp,
    order_book: &BTreeMap<String, Vec<f64>>,
) -> Result<ForecastReplenishment<P>, CoordinatorError> {
    let mut skill = ForecastReplenishment::new(
        inner,
        master.plant(),
        ReplenishConfig::default(),
        order_book,
    )
    .map_err(|e| CoordinatorError::Replenishment(e.to_string()))?;
    if let Some(log) = log {
        skill = skill.with_log(log.clone(), start);
    }
    Ok(skill)
}

/// A configured rung: the policy, and the observer that must see the plant's events and
/// readings (pass it to the simulation, or feed it the plant's): at tiers 1 and 2 the
/// maintenance skill's condition watch, in the closed loop the observer that also measures
/// outcomes.
pub struct Configured {
    pub policy: Box<dyn Policy + Send>,
    pub observer: Option<Box<dyn Observer + Send>>,
    /// The loop's shared state, for its counts after a run.
    pub closed_loop: Option<ClosedLoop>,
    /// The plan board of tiers 2 and 3: the live plan and the maintenance windows, for a view.
    pub board: Option<PlanBoard>,
}

/// Builds the configuration of `setup.tier`. `trial` runs trial batches for the quality link
/// (tier 2 and up); without it, tier 2 with that link cut keeps the plant's own set-points and
/// any other configuration that needs them is refused.
pub fn build(
    setup: &Setup<'_>,
    trial: Option<TrialFn<'_>>,
) -> Result<Configured, CoordinatorError> {
    let base = BaselinePolicy::default();
    let (policy, observer): (Box<dyn Policy + Send>, _) = match setup.tier {
        Tier::Zero => (Box::new(base), None),
        Tier::One => {
            let (policy, feed) = tier1(setup.master, base, setup.log, setup.order_book)?;
            (Box::new(policy), Some(feed))
        }
        Tier::Two => {
            let board = PlanBoard::new();
            let watch = condition_watch(setup.master);
            let lots = lot_sizing(setup);
            let policy = shared_plan(setup, trial, board.clone(), None, Some(watch.clone()))?;
            let policy = with_lot_sizing(policy, setup, lots.clone());
            return Ok(Configured {
                policy,
                observer: Some(Box::new((watch.feed(), lots.feed()))),
                closed_loop: None,
                board: Some(board),
            });
        }
        Tier::Three => {
            let master = setup.master;
            let (start, _) = master.plant().start();
            let board = PlanBoard::new();
            let closed = ClosedLoop::new(
                setup
                    .log
                    .map(|l| aifactory_skills::log::SkillLog::new(l.clone(), start, "LOOP")),
                start,
                board.clone(),
                master.machine_ids().map(str::to_owned).collect(),
                master
                    .plant()
                    .products
                    .iter()
                    .map(|p| p.id.clone())
                    .collect(),
                setup.links.anomaly_trigger,
                setup.links.process_search,
            );
            let watch = closed.condition_watch();
            let lots = lot_sizing(setup);
            let policy = shared_plan(setup, trial, board.clone(), Some(closed.clone()), watch)?;
            let policy = with_lot_sizing(policy, setup, lots.clone());
            return Ok(Configured {
                policy,
                observer: Some(Box::new((LoopObserver::new(closed.clone()), lots.feed()))),
                closed_loop: Some(closed),
                board: Some(board),
            });
        }
    };
    Ok(Configured {
        policy,
        observer: observer.map(|feed| Box::new(feed) as Box<dyn Observer + Send>),
        closed_loop: None,
        board: None,
    })
}

impl std::fmt::Debug for Configured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Configured")
            .field("policy", &self.policy.name())
            .field("closed_loop", &self.closed_loop.is_some())
            .finish()
    }
}

/// The lot-sizing skill's shared yields and open decisions (tiers 2 and 3).
fn lot_sizing(setup: &Setup<'_>) -> SharedLots {
    let (start, _) = setup.master.plant().start();
    SharedLots::new(
        setup
            .log
            .map(|l| aifactory_skills::log::SkillLog::new(l.clone(), start, "LOT")),
    )
}

/// Orders opened as equal lots with a learnt scrap allowance, outside every other skill.
fn with_lot_sizing(
    policy: Box<dyn Policy + Send>,
    setup: &Setup<'_>,
    lots: SharedLots,
) -> Box<dyn Policy + Send> {
    if !setup.links.lot_sizing {
        return policy;
    }
    let master = setup.master;
    let products = master
        .plant()
        .products
        .iter()
        .enumerate()
        .map(|(i, p)| {
            // Each step's set-up and unit time, averaged over its eligible machines.
            let mean = |step: &[(usize, f64, f64)], of: fn(&(usize, f64, f64)) -> f64| {
                step.iter().map(of).sum::<f64>() / step.len().max(1) as f64
            };
            let routing = master.routing(i);
            RoutingTime {
                product: p.id.clone(),
                steps: p.routing.len(),
                setup_s: routing.iter().map(|s| mean(s, |e| e.1)).sum(),
                unit_s: routing.iter().map(|s| mean(s, |e| e.2)).sum(),
            }
        })
        .collect();
    Box::new(LotSizing::new(
        Boxed(policy),
        lots,
        LotConfig::default(),
        products,
    ))
}

/// Tier 2 (and, with `closed_loop`, tier 3): the skills on one plan board. `watch`: the
/// maintenance skill's condition watch (tier 2's own; at tier 3 the one the closed loop feeds).
fn shared_plan(
    setup: &Setup<'_>,
    trial: Option<TrialFn<'_>>,
    board: PlanBoard,
    closed_loop: Option<ClosedLoop>,
    watch: Option<SharedWatch>,
) -> Result<Box<dyn Policy + Send>, CoordinatorError> {
    let master = setup.master;
    let links = setup.links;
    let (start, _) = master.plant().start();
    if closed_loop.is_some() {
        // The guard's rate limit on automatic services: a fifth of the fleet at once.
        board.lock().max_planned_services = Some((master.machine_ids().count() / 5).max(1));
    }
    let config = ApsConfig {
        seed: setup.seed,
        ..ApsConfig::default()
    };
    let mut scheduling =
        ApsPolicy::new(config, BaselinePolicy::default()).with_board(board.clone());
    if closed_loop.is_some() {
        scheduling = scheduling.with_closed_loop();
    }
    if let Some(log) = setup.log {
        scheduling = scheduling.with_log(log.clone(), start);
    }
    let mut stack = Boxed(Box::new(scheduling));
    // The tariff in the plan: energy-intensive machines wait out dear periods when the jobs
    // waiting for them have the slack.
    let mut tariff = TariffAware::new(stack, std::sync::Arc::new(master.clone()));
    if let Some(log) = setup.log {
        tariff = tariff.with_log(log.clone(), start);
    }
    stack = Boxed(Box::new(tariff));
    // Quality: set-points tuned where trial batches show risk (cut: tuned everywhere, blind);
    // in the closed loop through the guard, with a control group.
    // A plant with no trial batches to offer (a real one behind a feed) and the link cut keeps
    // its own set-points: there is nothing to tune them on.
    stack = match trial {
        None if !links.quality_to_process && closed_loop.is_none() => stack,
        None => return Err(CoordinatorError::NoTrials),
        Some(trial) => {
            let quality = quality::plan_quality(
                master,
                trial,
                links.quality_to_process,
                setup.seed,
                setup.log.map(|l| (l, start)),
                closed_loop.as_ref(),
            )?;
            match &closed_loop {
                Some(closed) => Boxed(Box::new(closed_loop::GuardedSettings::new(
                    stack,
                    closed.clone(),
                ))),
                None => Boxed(Box::new(ProcessSettings::new(stack, quality.settings))),
            }
        }
    };
    // Maintenance: windows on the board for the plan to place (cut: stops on its own).
    let mut maintenance = PredictiveMaintenance::new(stack, MaintenanceConfig::default());
    if links.maintenance_to_schedule {
        maintenance = maintenance.with_board(board.clone(), master.service_hours());
    }
    let watched = watch.is_some();
    if let Some(watch) = watch {
        maintenance = maintenance.with_condition_watch(watch);
    }
    if closed_loop.is_some() {
        let machines: Vec<(String, f64, f64, f64)> = master
            .machine_maintenance()
            .into_iter()
            .map(|(kind, m)| {
                (
                    kind,
                    m.preventive_cost,
                    m.corrective_cost,
                    m.pm_interval_run_h,
                )
            })
            .collect();
        let min_failures = MaintenanceConfig::default().min_failures;
        let mut ages = ServiceAges::new(&machines, min_failures);
        if watched {
            // Failures the watch catches cost a service: ages weigh its measured catch rate.
            ages = ages.with_condition_watch();
        }
        maintenance = maintenance
            .with_closed_loop()
            .with_service_ages(ages.with_history(setup.maintenance_records));
    }
    if let Some(log) = setup.log {
        let ids = master.machine_ids().map(str::to_owned).collect();
        maintenance = maintenance.with_log(log.clone(), start, ids);
    }
    stack = Boxed(Box::new(maintenance));
    // Forecasts into purchasing (cut: reorder points).
    if links.forecast_to_plan {
        let mut skill = replenishment(stack, master, setup.log, start, setup.order_book)?;
        if closed_loop.is_some() {
            skill = skill.with_closed_loop();
        }
        stack = Boxed(Box::new(skill));
    }
    // Quotes from the live plan (cut: no quotes).
    if links.schedule_to_quote {
        let routings = (0..master.plant().products.len())
            .map(|p| master.routing(p))
            .collect();
        let mut quoting = Quoting::new(stack, board, routings, setup.seed);
        if let Some(log) = setup.log {
            quoting = quoting.with_log(log.clone(), start);
        }
        if let Some(closed) = &closed_loop {
            quoting = quoting.with_closed_loop(closed.clone());
        }
        stack = Boxed(Box::new(quoting));
    }
    // Closed loop: orders released by measured flow times (outermost, so quoting and
    // forecasting still see every order on arrival).
    if let Some(closed) = &closed_loop {
        let products = master
            .plant()
            .products
            .iter()
            .map(|p| p.id.clone())
            .collect();
        stack = Boxed(Box::new(closed_loop::ReleaseControl::new(
            stack,
            closed.clone(),
            products,
        )));
    }
    Ok(Box::new(stack))
}
