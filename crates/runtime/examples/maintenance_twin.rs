//! Tier 0 (fixed-interval service) against the predictive-maintenance skill on the reference
//! plant: `cargo run --release -p aifactory-runtime --example maintenance_twin -- [DAYS] [SEEDS]`.

use aifactory_core::plant::Plant;
use aifactory_skills::maintenance::{MaintenanceConfig, PredictiveMaintenance};
use aifactory_twin::{BaselinePolicy, PlantModel, PlantTime, Policy, Simulation};
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let days: f64 = args.next().map_or(Ok(90.0), |a| a.parse())?;
    let seeds: u64 = args.next().map_or(Ok(5), |a| a.parse())?;
    let mut config = MaintenanceConfig::default();
    if let Some(v) = args.next() {
        config.cost_ratio = v.parse()?;
    }
    if let Some(v) = args.next() {
        config.smoothing = v.parse()?;
    }
    if let Some(v) = args.next() {
        config.min_interval_share = v.parse()?;
    }
    if let Some(v) = args.next() {
        config.idle_cost_factor = v.parse()?;
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plants/hangzhou-auto-parts.toml");
    let plant = Plant::load(&path)?;
    let model = Arc::new(PlantModel::new(plant));
    let mut diffs = [0.0_f64; 4];
    for seed in 1..=seeds {
        let mut row = Vec::new();
        let mut pair = Vec::new();
        for skill in [false, true] {
            let policy: Box<dyn Policy + Send> = if skill {
                Box::new(PredictiveMaintenance::new(
                    BaselinePolicy::default(),
                    config.clone(),
                ))
            } else {
                Box::new(BaselinePolicy::default())
            };
            let mut sim = Simulation::new(Arc::clone(&model), seed, policy, None);
            sim.run_until(PlantTime::from_days(days), &mut ());
            let k = sim.finish().kpis;
            pair.push([
                k.maintenance_cost,
                k.failures as f64,
                k.availability,
                k.tardiness_cost,
            ]);
            row.push(format!(
                "maint {:>8.0} fail {:>3} pm {:>3} avail {:.3} oee {:.3} otd {:.3}",
                k.maintenance_cost,
                k.failures,
                k.preventive_maintenance,
                k.availability,
                k.oee,
                k.on_time_delivery
            ));
        }
        println!("seed {seed}\n  tier0 {}\n  skill {}", row[0], row[1]);
        for (d, (s, t)) in diffs.iter_mut().zip(pair[1].iter().zip(&pair[0])) {
            *d += (s - t) / seeds as f64;
        }
    }
    println!(
        "mean skill − tier 0: maintenance cost {:+.0}, failures {:+.2}, availability {:+.4}, tardiness cost {:+.0}",
        diffs[0], diffs[1], diffs[2], diffs[3]
    );
    Ok(())
}
