//! A rung at plant speed: the twin as a plant that does not wait ([`run_paced_plant`]), paced
//! at a speed factor, and a plant feed deciding on its events across the broker with the
//! coordinator a real plant's feed runs — and the same coordinator in the twin's own loop, the
//! in-process run to compare it with. The two differ only by the wire and the plant's pace:
//! decisions arrive when the runtime has made them, not at the instant the twin asks, and a
//! free machine waits (two plant minutes at most) for its dispatch list before its own rules
//! choose.

use crate::Clock;
use crate::feed::{self, COMMAND_TTL_MS, FeedError, FeedReport, FeedSpec};
use crate::lockstep::{LockstepError, PacedPlant, PlantCounts, run_paced_plant};
use crate::run::twin_trials;
use aifactory_connect::mqtt::BrokerAddress;
use aifactory_core::{DecisionLog, Kpis, Plant};
use aifactory_plant::BaselinePolicy;
use aifactory_store::{Store, StoreError};
use aifactory_twin::{PlantModel, PlantTime, Simulation};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// The coordinator of `tier` (as [`feed::coordinator_for`] builds it for a plant feed, tier 3
/// on the twin's trial line) in the twin's own loop: the in-process run a paced rung compares
/// with.
pub fn in_process(plant: &Plant, tier: u8, seed: u64, days: f64) -> Result<Kpis, PacedError> {
    let log = DecisionLog::new();
    let model = Arc::new(PlantModel::new(plant.clone()));
    let coordinator = {
        let mut trials = twin_trials(&model, seed);
        feed::coordinator_for(plant, tier, seed, &log, Some(&mut trials))?
    };
    let mut sim = Simulation::new(model, seed, coordinator.policy, None);
    match coordinator.observer {
        Some(mut observer) => sim.run_until(PlantTime::from_days(days), observer.as_mut()),
        None => sim.run_until(PlantTime::from_days(days), &mut ()),
    }
    Ok(sim.finish().kpis)
}

/// Runs the twin of `plant` as a paced plant on `broker` for `days` at `speed` plant seconds a
/// wall second, with a feed under the coordinator of `tier` deciding for it — releases
/// included: the plant releases a sales order when the feed says so. At tier 3 the feed builds
/// its coordinator on the plant's trial batches once the plant runs. Call from outside the
/// async runtime `rt` belongs to.
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
    day: &mut (dyn FnMut(u64) + Send),
) -> Result<PacedRun, PacedError> {
    let began = Instant::now();
    let log = DecisionLog::new();
    let on_trials = tier == 3;
    let coordinator = if on_trials {
        // Replaced once the trial batches have run.
        feed::FeedCoordinator {
            policy: Box::new(BaselinePolicy::default()),
            observer: None,
        }
    } else {
        feed::coordinator_for(plant, tier, seed, &log, None)?
    };
    let spec = FeedSpec {
        plant: plant.clone(),
        broker: broker.clone(),
        client_id: format!("{client_prefix}-feed"),
        policy: coordinator.policy,
        observer: coordinator.observer,
        log: Some(log.clone()),
        tier,
        plans_releases: true,
        command_ttl_ms: COMMAND_TTL_MS,
        clock: Clock::system(),
    };
    let mut connected = rt.block_on(feed::connect(spec))?;
    let model = Arc::new(PlantModel::new(plant.clone()));
    let stop_plant = Arc::new(AtomicBool::new(false));
    std::thread::scope(|scope| {
        let twin = scope.spawn(|| {
            run_paced_plant(
                rt,
                model,
                broker,
                &format!("{client_prefix}-plant"),
                seed,
                days,
                PacedPlant {
                    telemetry_period_s: None,
                    pace: Some((speed, Clock::system())),
                    releases_by_command: true,
                    stop: Some(Arc::clone(&stop_plant)),
                },
                day,
            )
        });
        let running = (|| {
            if on_trials {
                let built = {
                    let mut trials = connected.trial_batches(rt, feed::TRIAL_WAIT);
                    feed::coordinator_for(plant, tier, seed, &log, Some(&mut trials))
                };
                if let Some(failure) = connected.trial_failure() {
                    return Err(PacedError::Feed(failure));
                }
                connected.decide_with(built?);
            }
            rt.block_on(async {
                let store = Store::open_in_memory().await.map_err(PacedError::Store)?;
                Ok::<_, PacedError>(connected.run(store, None).await?)
            })
        })();
        if running.is_err() {
            // No feed to decide for it: the plant stops instead of running out its days.
            stop_plant.store(true, Ordering::Relaxed);
        }
        // The plant's failure first: a feed waiting on a plant that stopped fails after it.
        let run = twin.join().map_err(|_| PacedError::Thread)??;
        let mut running = running?;
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
    })
}
