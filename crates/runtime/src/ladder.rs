//! One rung of the ladder: a plant under one tier configuration of the coordinator for one seed,
//! its ledger hash-chained and assessed. `aifactory ladder` runs these over tiers and seeds and
//! does the statistics; this is the run itself, so every caller runs a rung the same way.

use crate::run::{records_on_file, twin_trials};
use aifactory_assess::{Assessment, Coverage, Ledger};
use aifactory_coordinator::{CoordinatorError, Links, LoopCounts, Setup, Tier};
use aifactory_core::{DecisionLog, Kpis, LedgerRecord};
use aifactory_twin::{PlantModel, PlantTime, Simulation};
use std::sync::Arc;

/// Why a rung did not run.
#[derive(Debug, thiserror::Error)]
pub enum RungError {
    #[error("building tier {tier}")]
    Coordinator {
        tier: u8,
        #[source]
        source: CoordinatorError,
    },
    #[error("encoding ledger record {index} of the run")]
    Ledger {
        index: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// What one rung's run gave.
#[derive(Debug, Clone)]
pub struct RungRun {
    pub seed: u64,
    /// The head of the run's hash-chained ledger: a SHA-256 over every record in order, so two
    /// runs with the same head wrote the same ledger.
    pub ledger_sha256: String,
    pub kpis: Kpis,
    /// Decisions in the ledger (outcomes and model updates not counted).
    pub decisions: usize,
    /// The tier the assessment computes from the run's own ledger.
    pub assessment: Assessment,
    /// The closed loop's work (tier 3): outcomes measured, model updates, rollbacks.
    pub closed_loop: Option<LoopCounts>,
}

/// Runs `model` for `days` under the coordinator's tier `tier` with `links`, from the records a
/// plant has on file at day 0 and the twin's trial line, and assesses the ledger it wrote.
pub fn run_rung(
    model: &Arc<PlantModel>,
    tier: u8,
    links: Links,
    seed: u64,
    days: f64,
) -> Result<RungRun, RungError> {
    let log = DecisionLog::new();
    let mut trials = twin_trials(model, seed);
    let (order_book, records) = records_on_file(model, seed);
    let coordinator = |source| RungError::Coordinator { tier, source };
    let setup = Setup {
        master: model.master(),
        tier: Tier::from_number(tier).map_err(coordinator)?,
        links,
        log: Some(&log),
        seed,
        order_book: &order_book,
        maintenance_records: &records,
    };
    let configured =
        aifactory_coordinator::build(&setup, Some(&mut trials)).map_err(coordinator)?;
    let closed_loop = configured.closed_loop.clone();
    let mut sim = Simulation::new(Arc::clone(model), seed, configured.policy, None);
    match configured.observer {
        Some(mut observer) => sim.run_until(PlantTime::from_days(days), observer.as_mut()),
        None => sim.run_until(PlantTime::from_days(days), &mut ()),
    }
    let kpis = sim.finish().kpis;
    let machines = u32::try_from(model.master().machine_ids().count()).unwrap_or(u32::MAX);
    assess_rung(
        seed,
        kpis,
        log.drain(),
        machines,
        days,
        closed_loop.map(|c| c.counts()),
    )
}

/// A rung's run from what it left: the plant's KPIs and the ledger its decisions wrote,
/// hash-chained and assessed (every machine streams its sensors, as the twin's do).
pub fn assess_rung(
    seed: u64,
    kpis: Kpis,
    records: Vec<LedgerRecord>,
    machines: u32,
    days: f64,
    closed_loop: Option<LoopCounts>,
) -> Result<RungRun, RungError> {
    let decisions = records
        .iter()
        .filter(|r| matches!(r, LedgerRecord::Decision(_)))
        .count();
    let mut ledger = Ledger::new();
    for (index, r) in records.into_iter().enumerate() {
        ledger
            .append(r)
            .map_err(|source| RungError::Ledger { index, source })?;
    }
    let coverage = Coverage {
        machines,
        machines_streaming: machines,
        days,
    };
    let assessment = aifactory_assess::assess(ledger.entries(), &coverage);
    Ok(RungRun {
        seed,
        ledger_sha256: ledger.head().to_owned(),
        kpis,
        decisions,
        assessment,
        closed_loop,
    })
}
