//! `aifactory eval twin`: each tier-1 skill against its tier-0 baseline on the twin, paired on
//! common random numbers (the same seed gives both runs the same demand and failure draws), with
//! 95 % confidence intervals of the per-seed difference.

use crate::bench_policies::{Interval, interval};
use aifactory_core::Kpis;
use aifactory_skills::defect_risk::{
    DefectRecorder, DefectRiskModel, OperationRow, capture_at_budget, log_loss,
};
use aifactory_skills::forecast::{BacktestConfig, DemandForecaster, DemandRecorder, backtest};
use aifactory_skills::maintenance::{MaintenanceConfig, PredictiveMaintenance};
use aifactory_skills::quality::{ProcessSettings, StepToTune, VariedSettings, learn_settings};
use aifactory_skills::replenish::{ForecastReplenishment, ReplenishConfig};
use aifactory_twin::{BaselinePolicy, PlantModel, PlantTime, Simulation};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub(crate) struct TwinArgs {
    /// Plant file [default: the built-in reference plant].
    #[arg(long)]
    plant: Option<PathBuf>,
    /// Seeds (paired runs per skill).
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    /// The first seed; seeds run from here upwards.
    #[arg(long, default_value_t = 11)]
    first_seed: u64,
    /// Simulated days per maintenance run (the forecasting backtest simulates 240 days of demand).
    #[arg(long, default_value_t = 90.0)]
    days: f64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Days of demand the forecasting backtest simulates (120-day windows, 14-day horizons).
const DEMAND_DAYS: usize = 240;

/// Days of operations the defect-risk comparison simulates: the model learns on the first
/// half and is scored on the second.
const DEFECT_DAYS: f64 = 120.0;
/// How far settings vary in that run: ± this share of each parameter's range.
const DEFECT_SPREAD: f64 = 0.25;
/// Inspection budget: the share of units fully inspected, riskiest jobs first.
const INSPECTION_BUDGET: f64 = 0.2;

/// Days of order history the replenishment skill starts with: ten weeks of the ERP's order
/// book, simulated with an independent seed (whole weeks, so weekdays line up).
const ORDER_BOOK_DAYS: usize = 70;

/// One KPI's paired comparison.
#[derive(Debug, serde::Serialize)]
struct Paired {
    kpi: &'static str,
    tier0: f64,
    skill: f64,
    /// Mean and 95 % half-width of (skill − tier 0) per seed.
    difference: Interval,
    /// Whether the interval excludes zero in the better direction.
    better: bool,
}

fn paired(kpi: &'static str, lower_is_better: bool, tier0: &[f64], skill: &[f64]) -> Paired {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let diffs: Vec<f64> = skill.iter().zip(tier0).map(|(s, t)| s - t).collect();
    let difference = interval(&diffs);
    let better = if lower_is_better {
        difference.mean + difference.ci95 < 0.0
    } else {
        difference.mean - difference.ci95 > 0.0
    };
    Paired {
        kpi,
        tier0: mean(tier0),
        skill: mean(skill),
        difference,
        better,
    }
}

/// A KPI to compare: its name, whether lower is better, and how to read it from a run.
type KpiColumn = (&'static str, bool, fn(&Kpis) -> f64);

/// Paired comparisons of the KPIs `columns` names.
fn compare(tier0: &[Kpis], skill: &[Kpis], columns: &[KpiColumn]) -> Vec<Paired> {
    columns
        .iter()
        .map(|&(name, lower_is_better, read)| {
            let t: Vec<f64> = tier0.iter().map(read).collect();
            let s: Vec<f64> = skill.iter().map(read).collect();
            paired(name, lower_is_better, &t, &s)
        })
        .collect()
}

fn print_rows(rows: &[Paired], decimals: usize) {
    for p in rows {
        println!(
            "  {:<18} {:>12.d$} → {:>12.d$}   {:+.d$} ± {:.d$}{}",
            p.kpi,
            p.tier0,
            p.skill,
            p.difference.mean,
            p.difference.ci95,
            if p.better { "   better (95 %)" } else { "" },
            d = decimals
        );
    }
}

/// Runs one policy on the twin for `days` and returns its KPIs.
fn run_kpis(
    model: &Arc<PlantModel>,
    seed: u64,
    days: f64,
    policy: Box<dyn aifactory_twin::Policy + Send>,
) -> Kpis {
    let mut sim = Simulation::new(Arc::clone(model), seed, policy, None);
    sim.run_until(PlantTime::from_days(days), &mut ());
    sim.finish().kpis
}

pub(crate) fn run(args: &TwinArgs) -> anyhow::Result<ExitCode> {
    crate::setup::check_days(args.days)?;
    if args.seeds < 2 || args.seeds > 1000 {
        anyhow::bail!("--seeds must be between 2 and 1000, got {}", args.seeds);
    }
    let plant = crate::setup::plant_or_reference(args.plant.as_deref())?;
    let products: Vec<String> = plant
        .products
        .iter()
        .filter(|p| p.demand.is_some())
        .map(|p| p.id.clone())
        .collect();
    let (start, _) = plant.start();
    let model = Arc::new(PlantModel::new(plant));
    let seeds: Vec<u64> = (args.first_seed..args.first_seed + args.seeds).collect();
    let bar = (!args.json).then(|| {
        let bar = indicatif::ProgressBar::new(seeds.len() as u64 * 6);
        bar.set_message("tier 0 and tier 1 runs");
        bar
    });
    let tick = || {
        if let Some(b) = &bar {
            b.inc(1);
        }
    };
    // Maintenance: tier 0 (fixed-interval service) against the condition-based skill.
    // Tier 0 once per seed; each skill's run is paired with it.
    let (mut tier0, mut skill): (Vec<Kpis>, Vec<Kpis>) = (Vec::new(), Vec::new());
    for &seed in &seeds {
        tier0.push(run_kpis(
            &model,
            seed,
            args.days,
            Box::new(BaselinePolicy::default()),
        ));
        tick();
        let policy =
            PredictiveMaintenance::new(BaselinePolicy::default(), MaintenanceConfig::default());
        skill.push(run_kpis(&model, seed, args.days, Box::new(policy)));
        tick();
    }
    let maintenance = compare(
        &tier0,
        &skill,
        &[
            ("failures", true, |k| k.failures as f64),
            ("maintenance_cost", true, |k| k.maintenance_cost),
            ("downtime_h", true, |k| k.downtime_h),
            ("availability", false, |k| k.availability),
            ("oee", false, |k| k.oee),
        ],
    );
    // Quality: default process settings against settings learnt by Bayesian optimisation from
    // trial batches (15 per step, 1,000 units each, scrap counted with binomial noise). The
    // harness holds the twin's hidden defect model; the skill sees only the trial results.
    let plant = model.plant();
    let health = plant
        .machine_types
        .first()
        .map(|t| t.health)
        .ok_or_else(|| anyhow::anyhow!("the plant has no machine type"))?;
    let steps: Vec<StepToTune> = plant
        .products
        .iter()
        .enumerate()
        .flat_map(|(p, product)| {
            product
                .routing
                .iter()
                .enumerate()
                .filter(|(_, step)| !step.params.is_empty())
                .map(move |(s, step)| StepToTune {
                    product: p,
                    step: s,
                    bounds: step.params.iter().map(|x| (x.min, x.max)).collect(),
                })
        })
        .collect();
    let mut q_skill: Vec<Kpis> = Vec::new();
    for &seed in &seeds {
        let mut noise =
            <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed ^ 0x0A11);
        let settings = learn_settings(&steps, 15, seed, |step, x| {
            let spec = &plant.products[step.product].routing[step.step];
            let p = aifactory_twin::physics::defect_probability(
                spec.base_defect,
                &health,
                0.0,
                &spec.params,
                x,
            )
            .clamp(0.0, 1.0);
            let bad = rand_distr::Binomial::new(1000, p)
                .map_or(0, |b| rand_distr::Distribution::sample(&b, &mut noise));
            bad as f64 / 1000.0
        })?;
        let policy = ProcessSettings::new(BaselinePolicy::default(), settings);
        q_skill.push(run_kpis(&model, seed, args.days, Box::new(policy)));
        tick();
    }
    let quality = compare(
        &tier0,
        &q_skill,
        &[
            ("scrap_rate", true, |k| k.scrap_rate),
            ("scrap_cost", true, |k| k.scrap_cost),
            ("failures", true, |k| k.failures as f64),
            ("oee", false, |k| k.oee),
        ],
    );
    // Defect risk: which jobs to inspect. The skill ranks jobs by predicted risk; the baseline
    // by each step's observed scrap rate (what an inspection plan by part number does).
    let (mut capture_skill, mut capture_rate, mut loss_skill, mut loss_rate) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &seed in &seeds {
        let mut recorder = DefectRecorder::new(model.plant());
        let policy = VariedSettings::new(BaselinePolicy::default(), DEFECT_SPREAD, seed);
        let mut sim = Simulation::new(Arc::clone(&model), seed, Box::new(policy), None);
        sim.run_until(PlantTime::from_days(DEFECT_DAYS), &mut recorder);
        let split = start.0 + (DEFECT_DAYS / 2.0 * 86_400_000.0) as i64;
        let (train, test): (Vec<OperationRow>, Vec<OperationRow>) =
            recorder.rows.into_iter().partition(|r| r.at.0 < split);
        let risk = DefectRiskModel::fit(&train)
            .map_err(|e| anyhow::anyhow!("defect-risk model, seed {seed}: {e}"))?;
        let rates = DefectRiskModel::rates(&train);
        let by_skill: Vec<(f64, &OperationRow)> = test
            .iter()
            .map(|r| (risk.risk(&r.product, r.step, r.run_h, &r.params), r))
            .collect();
        let by_rate: Vec<(f64, &OperationRow)> = test
            .iter()
            .map(|r| {
                let rate = rates.get(&(r.product.clone(), r.step)).copied();
                (rate.unwrap_or(0.0), r)
            })
            .collect();
        capture_skill.push(capture_at_budget(&by_skill, INSPECTION_BUDGET));
        capture_rate.push(capture_at_budget(&by_rate, INSPECTION_BUDGET));
        loss_skill.push(log_loss(&by_skill));
        loss_rate.push(log_loss(&by_rate));
        tick();
    }
    let defect_risk = vec![
        paired("defects_found", false, &capture_rate, &capture_skill),
        paired("log_loss", true, &loss_rate, &loss_skill),
    ];
    // Replenishment: the fixed reorder point against buying on forecasts of exploded demand,
    // the skill starting from ten weeks of order history.
    let mut r_skill: Vec<Kpis> = Vec::new();
    for &seed in &seeds {
        let history = order_book(&model, start, &products, seed)?;
        let policy = ForecastReplenishment::new(
            BaselinePolicy::default(),
            model.plant(),
            ReplenishConfig::default(),
            &history,
        )?;
        r_skill.push(run_kpis(&model, seed, args.days, Box::new(policy)));
        tick();
    }
    let replenishment = compare(
        &tier0,
        &r_skill,
        &[
            ("stockouts", true, |k| k.stockouts as f64),
            ("material_holding", true, |k| k.material_holding_cost),
            ("holding_cost", true, |k| k.holding_cost),
            ("on_time_delivery", false, |k| k.on_time_delivery),
            ("total_cost", true, |k| k.total_cost),
        ],
    );
    // Forecasting: the skill against seasonal naive on each seed's demand (rolling origin).
    let forecaster = DemandForecaster::default();
    let config = BacktestConfig::default();
    let (mut mase_skill, mut mase_naive) = (Vec::new(), Vec::new());
    for &seed in &seeds {
        let mut recorder = DemandRecorder::new(start, products.clone(), DEMAND_DAYS);
        let mut sim = Simulation::new(
            Arc::clone(&model),
            seed,
            Box::new(BaselinePolicy::default()),
            Some(0.0),
        );
        sim.run_until(PlantTime::from_days(DEMAND_DAYS as f64), &mut recorder);
        let mut per_seed: Option<aifactory_skills::forecast::BacktestReport> = None;
        for series in &recorder.units {
            let report = backtest(series, &forecaster, &config)
                .map_err(|e| anyhow::anyhow!("forecast backtest, seed {seed}: {e}"))?;
            match &mut per_seed {
                Some(r) => r.merge(report),
                None => per_seed = Some(report),
            }
        }
        if let Some(r) = per_seed {
            mase_skill.push(r.mean_mase_skill());
            mase_naive.push(r.mean_mase_naive());
        }
        tick();
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let forecasting = paired("mase", true, &mase_naive, &mase_skill);
    let mase_ratio = forecasting.skill / forecasting.tier0.max(1e-12);
    if args.json {
        let value = serde_json::json!({
            "seeds": seeds,
            "days": args.days,
            "maintenance": { "tier0": "edd+pm+reorder", "skill": "edd+cbm+reorder", "kpis": maintenance },
            "quality": { "tier0": "default process settings", "skill": "settings learnt by Bayesian optimisation (15 trial batches per step)", "kpis": quality },
            "defect_risk": { "baseline": "inspect steps by their observed scrap rate", "skill": "per-job risk (logistic regression on running hours and settings)", "days": DEFECT_DAYS, "settings_spread": DEFECT_SPREAD, "inspection_budget": INSPECTION_BUDGET, "kpis": defect_risk },
            "replenishment": { "tier0": "fixed reorder point", "skill": "forecast (MSTL+AutoETS) of BOM-exploded demand, safety stock from measured error, 95 % cycle service level", "kpis": replenishment },
            "forecasting": { "baseline": "seasonal naive (7 days)", "skill": "MSTL+AutoETS", "mase": forecasting, "mase_ratio": mase_ratio },
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Tier-1 skills against tier 0 on the twin: seeds {}..{}, paired; ± is the 95 % interval of the per-seed difference.\n",
        seeds[0],
        seeds[seeds.len() - 1]
    );
    println!(
        "Maintenance ({} days): fixed-interval service vs condition-based skill",
        args.days
    );
    print_rows(&maintenance, 3);
    println!(
        "\nQuality ({} days): default process settings vs settings learnt by Bayesian optimisation",
        args.days
    );
    print_rows(&quality, 4);
    println!(
        "\nDefect risk ({DEFECT_DAYS} days, settings varied ±{:.0} % of range, learnt on the first half): share of scrap found inspecting {:.0} % of units, by step rate vs by predicted risk",
        DEFECT_SPREAD * 100.0,
        INSPECTION_BUDGET * 100.0
    );
    print_rows(&defect_risk, 4);
    println!(
        "\nReplenishment ({} days): fixed reorder point vs forecast-based reorder point ({ORDER_BOOK_DAYS} days of order history)",
        args.days
    );
    print_rows(&replenishment, 3);
    println!(
        "\nForecasting ({DEMAND_DAYS} days of demand, rolling origin): seasonal naive vs MSTL+AutoETS"
    );
    println!(
        "  {:<18} {:>12.3} → {:>12.3}   {:+.3} ± {:.3}{}   (ratio {:.3})",
        "MASE",
        forecasting.tier0,
        forecasting.skill,
        forecasting.difference.mean,
        forecasting.difference.ci95,
        if forecasting.better {
            "   better (95 %)"
        } else {
            ""
        },
        mase_ratio
    );
    Ok(ExitCode::SUCCESS)
}

/// Units ordered per product and day over [`ORDER_BOOK_DAYS`] of the plant under tier 0 with an
/// independent seed: the order history a plant's ERP would hand the skill on its first day.
fn order_book(
    model: &Arc<PlantModel>,
    start: aifactory_core::Timestamp,
    products: &[String],
    seed: u64,
) -> anyhow::Result<std::collections::BTreeMap<String, Vec<f64>>> {
    let mut recorder = DemandRecorder::new(start, products.to_vec(), ORDER_BOOK_DAYS);
    let mut sim = Simulation::new(
        Arc::clone(model),
        seed ^ 0x0DE5_B00C,
        Box::new(BaselinePolicy::default()),
        Some(0.0),
    );
    sim.run_until(PlantTime::from_days(ORDER_BOOK_DAYS as f64), &mut recorder);
    Ok(recorder.products.into_iter().zip(recorder.units).collect())
}
