//! Tier 0 (fixed reorder point) against the replenishment skill on the reference plant, tuning
//! seeds 1..=SEEDS (the `eval twin` seeds start at 11):
//! `cargo run --release -p aifactory-runtime --example replenish_twin -- [DAYS] [SEEDS] [SERVICE] [WINDOW]`.

use aifactory_core::plant::Plant;
use aifactory_skills::forecast::DemandRecorder;
use aifactory_skills::replenish::{ForecastReplenishment, ReplenishConfig};
use aifactory_twin::{BaselinePolicy, PlantModel, PlantTime, Policy, Simulation};
use std::collections::BTreeMap;
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let days: f64 = args.next().map_or(Ok(90.0), |a| a.parse())?;
    let seeds: u64 = args.next().map_or(Ok(5), |a| a.parse())?;
    let mut config = ReplenishConfig::default();
    if let Some(v) = args.next() {
        config.service_level = v.parse()?;
    }
    if let Some(v) = args.next() {
        config.window_days = v.parse()?;
    }
    if let Some(v) = args.next() {
        config.sigma_origins = v.parse()?;
    }
    config.stockout_cost = match std::env::var("STOCKOUT").ok().as_deref() {
        Some("none") => None,
        Some(v) => Some(v.parse()?),
        None => config.stockout_cost,
    };
    let book: usize = std::env::var("OB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(70);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plants/hangzhou-auto-parts.toml");
    let plant = Plant::load(&path)?;
    let products: Vec<String> = plant
        .products
        .iter()
        .filter(|p| p.demand.is_some())
        .map(|p| p.id.clone())
        .collect();
    let (start, _) = plant.start();
    let model = Arc::new(PlantModel::new(plant.clone()));
    let (mut sum0, mut sum1) = ([0.0; 4], [0.0; 4]);
    for seed in 1..=seeds {
        let mut recorder = DemandRecorder::new(start, products.clone(), book);
        let mut sim = Simulation::new(
            Arc::clone(&model),
            seed ^ 0x0DE5_B00C,
            Box::new(BaselinePolicy::default()),
            Some(0.0),
        );
        sim.run_until(PlantTime::from_days(book as f64), &mut recorder);
        let history: BTreeMap<String, Vec<f64>> =
            recorder.products.into_iter().zip(recorder.units).collect();
        let mut row = Vec::new();
        for skill in [false, true] {
            let policy: Box<dyn Policy + Send> = if skill {
                Box::new(ForecastReplenishment::new(
                    BaselinePolicy::default(),
                    &plant,
                    config,
                    &history,
                )?)
            } else {
                Box::new(BaselinePolicy::default())
            };
            let mut sim = Simulation::new(Arc::clone(&model), seed, policy, None);
            sim.run_until(PlantTime::from_days(days), &mut ());
            let k = sim.finish().kpis;
            let sums = if skill { &mut sum1 } else { &mut sum0 };
            sums[0] += k.stockouts as f64;
            sums[1] += k.material_holding_cost;
            sums[2] += k.total_cost;
            sums[3] += k.holding_cost;
            row.push(format!(
                "stockouts {:>4} material holding {:>8.0} holding {:>8.0} otd {:.3} total {:>9.0}",
                k.stockouts,
                k.material_holding_cost,
                k.holding_cost,
                k.on_time_delivery,
                k.total_cost
            ));
        }
        println!("seed {seed}\n  tier0 {}\n  skill {}", row[0], row[1]);
    }
    let n = seeds as f64;
    println!(
        "mean tier0 stockouts {:.1} mat-holding {:.0} holding {:.0} total {:.0} | skill {:.1} {:.0} {:.0} {:.0}",
        sum0[0] / n,
        sum0[1] / n,
        sum0[3] / n,
        sum0[2] / n,
        sum1[0] / n,
        sum1[1] / n,
        sum1[3] / n,
        sum1[2] / n
    );
    Ok(())
}
