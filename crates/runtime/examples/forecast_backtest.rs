//! Rolling-origin backtest of the demand forecasting skill on the twin's sales orders:
//! `cargo run --release -p aifactory-runtime --example forecast_backtest [-- PLANT_FILE]`.
//!
//! ```text
//!  plant file ─► twin (seeds 1..=10, 240 days) ─► order_received events ─► units/day per product
//!        │
//!        └─► per product and seed: windows of 120 days, origins every 7 days, horizon 14 days
//!              ├─ skill (MSTL + AutoETS) vs seasonal naive: MASE, intervals' coverage
//!              └─ replenishment: s = D_7 + z·σ_7, σ_7 from the errors of earlier origins;
//!                 achieved cycle service level vs target
//! ```
//!
//! Prints one JSON document (deterministic: fixed seeds); timing goes to stderr.

use aifactory_core::{ExecutedBy, Plant};
use aifactory_skills::forecast::{
    BacktestConfig, BacktestReport, DemandForecaster, DemandRecorder, ReplenishmentInput, backtest,
    lead_time_sigma, normal_quantile, plan_replenishment, replenishment_decision,
};
use aifactory_twin::{BaselinePolicy, PlantModel, PlantTime, Simulation};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

const SEEDS: std::ops::RangeInclusive<u64> = 1..=10;
const DAYS: usize = 240;
const SERVICE_LEVELS: [f64; 2] = [0.9, 0.95];
/// Past origins needed before σ of the lead-time error is trusted.
const WARM_UP: usize = 4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../plants/hangzhou-auto-parts.toml"
            ))
        });
    let plant = Plant::load(&path)?;
    let products: Vec<String> = plant
        .products
        .iter()
        .filter(|p| p.demand.is_some())
        .map(|p| p.id.clone())
        .collect();
    let (start, _) = plant.start();
    let model = Arc::new(PlantModel::new(plant));
    let forecaster = DemandForecaster::default();
    let config = BacktestConfig::default();
    let lead = config.lead_time;
    let z: Vec<f64> = SERVICE_LEVELS
        .iter()
        .map(|&sl| normal_quantile(sl))
        .collect::<Result<_, _>>()?;

    let started = Instant::now();
    let mut per_product: Vec<BacktestReport> = vec![BacktestReport::default(); products.len()];
    // Per service level: (cycles without stock-out, cycles).
    let mut cycles = vec![vec![(0usize, 0usize); SERVICE_LEVELS.len()]; products.len()];
    let mut example_decision = None;
    for seed in SEEDS {
        let mut recorder = DemandRecorder::new(start, products.clone(), DAYS);
        let mut sim = Simulation::new(
            Arc::clone(&model),
            seed,
            Box::new(BaselinePolicy::default()),
            Some(0.0),
        );
        sim.run_until(PlantTime::from_days(DAYS as f64), &mut recorder);
        for (p, series) in recorder.units.iter().enumerate() {
            let report = backtest(series, &forecaster, &config)?;
            // Replenishment check: at each origin, σ_L is the RMS of the lead-time errors of the
            // earlier origins (known by then: step = lead time); the order covers the cycle if
            // actual lead-time demand ≤ D_L + z·σ_L, i.e. the error ≤ z·σ_L.
            for k in WARM_UP..report.origins.len() {
                let past = &report.origins[..k];
                let sigma =
                    (past.iter().map(|o| o.lead_time_error.powi(2)).sum::<f64>() / k as f64).sqrt();
                for (i, &z) in z.iter().enumerate() {
                    cycles[p][i].1 += 1;
                    if report.origins[k].lead_time_error <= z * sigma {
                        cycles[p][i].0 += 1;
                    }
                }
            }
            if seed == 1 && p == 0 {
                // One worked decision at the end of the run: σ from the model's own errors.
                let history = &series[DAYS - config.window..];
                let sigma = lead_time_sigma(history, &forecaster, lead, 84, 5, 7)?;
                let fc = forecaster.fit(history)?.forecast(lead, 0.95)?;
                let plan = plan_replenishment(&ReplenishmentInput {
                    daily_mean: &fc.mean,
                    lead_time_days: lead,
                    review_days: 0,
                    sigma_lead: sigma,
                    sigma_protection: sigma,
                    service_level: 0.95,
                    position: 0.5 * fc.total(lead),
                    lot_size: 50.0,
                })?;
                example_decision = Some(replenishment_decision(
                    "D-EXAMPLE-1",
                    start.plus_seconds(DAYS as f64 * 86_400.0),
                    &products[p],
                    format!(
                        "twin:seed={seed}:demand:{}:days {}..{DAYS}",
                        products[p],
                        DAYS - config.window
                    ),
                    &plan,
                    0.95,
                    ExecutedBy::None,
                ));
            }
            per_product[p].merge(report);
        }
    }

    let mut all = BacktestReport::default();
    let mut all_cycles = vec![(0usize, 0usize); SERVICE_LEVELS.len()];
    let mut rows = Vec::new();
    for ((id, report), cyc) in products.iter().zip(per_product).zip(&cycles) {
        for (acc, c) in all_cycles.iter_mut().zip(cyc) {
            acc.0 += c.0;
            acc.1 += c.1;
        }
        rows.push(summary(id, &report, cyc));
        all.merge(report);
    }
    let out = json!({
        "plant": path.file_name().and_then(|n| n.to_str()),
        "model": format!("{} {}", aifactory_skills::forecast::MODEL_ID, aifactory_skills::forecast::MODEL_VERSION),
        "seeds": SEEDS.collect::<Vec<_>>(),
        "days": DAYS,
        "window_days": config.window,
        "origin_step_days": config.step,
        "horizon_days": config.horizon,
        "lead_time_days": lead,
        "overall": summary("all", &all, &all_cycles),
        "products": rows,
        "example_decision": example_decision,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    eprintln!("{:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn summary(id: &str, report: &BacktestReport, cycles: &[(usize, usize)]) -> serde_json::Value {
    let coverage: serde_json::Map<String, serde_json::Value> = report
        .levels
        .iter()
        .enumerate()
        .map(|(i, level)| (format!("{level}"), json!(round(report.coverage(i)))))
        .collect();
    let service: serde_json::Map<String, serde_json::Value> = SERVICE_LEVELS
        .iter()
        .zip(cycles)
        .map(|(sl, (ok, n))| (format!("{sl}"), json!(round(*ok as f64 / *n as f64))))
        .collect();
    json!({
        "product": id,
        "origins": report.origins.len(),
        "mase_skill": round(report.mean_mase_skill()),
        "mase_seasonal_naive": round(report.mean_mase_naive()),
        "mase_ratio": round(report.mase_ratio()),
        "interval_coverage": coverage,
        "lead_time_sigma_units": round(report.lead_time_sigma()),
        "achieved_cycle_service_level": service,
    })
}
