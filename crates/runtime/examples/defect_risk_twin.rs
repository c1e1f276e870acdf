//! Defect risk on the reference plant under tier 0 with settings varied by ±SPREAD of their
//! range: learn on the first half of each run, score the second half against each step's
//! observed scrap rate:
//! `cargo run --release -p aifactory-runtime --example defect_risk_twin -- [DAYS] [SEEDS] [SPREAD]`.

use aifactory_core::plant::Plant;
use aifactory_skills::defect_risk::{
    DefectRecorder, DefectRiskModel, OperationRow, capture_at_budget, log_loss,
};
use aifactory_skills::quality::VariedSettings;
use aifactory_twin::{BaselinePolicy, PlantModel, PlantTime, Simulation};
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let days: f64 = args.next().map_or(Ok(120.0), |a| a.parse())?;
    let seeds: u64 = args.next().map_or(Ok(3), |a| a.parse())?;
    let spread: f64 = args.next().map_or(Ok(0.0), |a| a.parse())?;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plants/hangzhou-auto-parts.toml");
    let plant = Plant::load(&path)?;
    let (start, _) = plant.start();
    let model = Arc::new(PlantModel::new(plant.clone()));
    for seed in 1..=seeds {
        let mut recorder = DefectRecorder::new(&plant);
        let mut sim = Simulation::new(
            Arc::clone(&model),
            seed,
            Box::new(VariedSettings::new(BaselinePolicy::default(), spread, seed)),
            None,
        );
        sim.run_until(PlantTime::from_days(days), &mut recorder);
        let split = start.0 + (days / 2.0 * 86_400_000.0) as i64;
        let (train, test): (Vec<OperationRow>, Vec<OperationRow>) =
            recorder.rows.into_iter().partition(|r| r.at.0 < split);
        let risk = DefectRiskModel::fit(&train)?;
        let rates = DefectRiskModel::rates(&train);
        let skill: Vec<(f64, &OperationRow)> = test
            .iter()
            .map(|r| (risk.risk(&r.product, r.step, r.run_h, &r.params), r))
            .collect();
        let base: Vec<(f64, &OperationRow)> = test
            .iter()
            .map(|r| {
                (
                    rates
                        .get(&(r.product.clone(), r.step))
                        .copied()
                        .unwrap_or(0.0),
                    r,
                )
            })
            .collect();
        let hmax = test.iter().map(|r| r.run_h).fold(0.0, f64::max);
        println!(
            "seed {seed}: {} train / {} test ops, run_h max {hmax:.2}; log loss {:.5} vs {:.5}; capture@20% {:.3} vs {:.3}",
            train.len(),
            test.len(),
            log_loss(&skill),
            log_loss(&base),
            capture_at_budget(&skill, 0.2),
            capture_at_budget(&base, 0.2),
        );
    }
    Ok(())
}
