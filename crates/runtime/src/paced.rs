//! A rung at plant speed: the twin as a plant that does not wait ([`run_paced_plant`]), paced
//! at a speed factor, and a plant feed deciding on its events across the broker with the
//! coordinator a real plant's feed runs — and the same coordinator in the twin's own loop, the
//! in-process run to compare it with. The two differ only by the wire and the plant's pace:
//! decisions arrive when the runtime has made them, not at the instant the twin asks, and a
//! free machine waits (two plant minutes at most) for its dispatch list before its own rules
//! choose.

use crate::Clock;
use crate::feed::{self, COMMAND_TTL_MS, FeedError, FeedReport, FeedSpec};
use crate::lockstep::{LockstepError, PlantCounts, run_paced_plant};
use aifactory_connect::mqtt::BrokerAddress;
use aifactory_core::{DecisionLog, Kpis, Plant};
use aifactory_store::{Store, StoreError};
use aifactory_twin::{PlantModel, PlantTime, Simulation};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;

/// Why a paced rung did not run.
#[derive(Debug, thiserror::Error)]
pub enum PacedError {
    #[error(transparent)]
    Feed(#[from] FeedError),
    #[error("the twin as a plant on the wire")]
    Plant(#[from] LockstepError),
    #[error("opening the feed's store")]
    Store(#[source] StoreError),
    #[error("the twin's thread stopped")]
    Thread,
}

/// What a paced rung gave.
#[derive(Debug, Clone)]
pub struct PacedRun {
    pub seed: u64,
    /// The plant's KPIs, as the twin counted them.
    pub kpis: Kpis,
    /// What crossed the wire, by the twin's count and the feed's.
    pub plant: PlantCounts,
    pub feed: FeedReport,
    pub wall: Duration,
}

/// The coordinator of `tier` (as [`feed::coordinator_for`] builds it for a plant feed) in the
/// twin's own loop: the in-process run a paced rung compares with.
pub fn in_process(plant: &Plant, tier: u8, seed: u64, days: f64) -> Result<Kpis, PacedError> {
    let log = DecisionLog::new();
    let policy = feed::coordinator_for(plant, tier, seed, &log)?;
    let model = Arc::new(PlantModel::new(plant.clone()));
    let mut sim = Simulation::new(model, seed, policy, None);
    sim.run_until(PlantTime::from_days(days), &mut ());
    Ok(sim.finish().kpis)
}

/// Runs the twin of `plant` as a paced plant on `broker` for `days` at `speed` plant seconds a
/// wall second, with a feed under the coordinator of `tier` deciding for it. Call from outside
/// the async runtime `rt` belongs to.
#[allow(clippy::too_many_arguments)]
pub fn paced_rung(
    rt: &Handle,
    plant: &Plant,
    broker: &BrokerAddress,
    client_prefix: &str,
    tier: u8,
    seed: u64,
    days: f64,
    speed: f64,
    day: &mut dyn FnMut(u64),
) -> Result<PacedRun, PacedError> {
    let began = Instant::now();
    let log = DecisionLog::new();
    let policy = feed::coordinator_for(plant, tier, seed, &log)?;
    let spec = FeedSpec {
        plant: plant.clone(),
        broker: broker.clone(),
        client_id: format!("{client_prefix}-feed"),
        policy,
        log: Some(log),
        tier,
        command_ttl_ms: COMMAND_TTL_MS,
        clock: Clock::system(),
    };
    let mut running = rt.block_on(async {
        let store = Store::open_in_memory().await.map_err(PacedError::Store)?;
        let connected = feed::connect(spec).await?;
        Ok::<_, PacedError>(connected.run(store, None).await?)
    })?;
    let model = Arc::new(PlantModel::new(plant.clone()));
    let run = run_paced_plant(
        rt,
        model,
        broker,
        &format!("{client_prefix}-plant"),
        seed,
        days,
        None,
        Some((speed, Clock::system())),
        day,
    )?;
    // Everything the plant said has reached the feed before it stops.
    let (events, acks) = (run.counts.events, run.counts.acks);
    rt.block_on(running.wait_until(Duration::from_secs(120), |r| {
        r.events >= events && r.acks >= acks
    }));
    let report = rt.block_on(running.stop())?;
    Ok(PacedRun {
        seed,
        kpis: run.result.kpis,
        plant: run.counts,
        feed: report,
        wall: began.elapsed(),
    })
}
