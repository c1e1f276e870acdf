//! `aifactory eval`: the skills measured on public benchmarks, the way their communities score
//! them, so a plant can check our claims on its own machine.

use aifactory_skills::anomaly::{AnomalyConfig, AnomalyDetector, WindowedGaussian};
use aifactory_skills::nab::{self, NabCorpus, ProfileScore};
use aifactory_skills::rul::{CMAPSS_SETTINGS, CvOptions, RulConfig, evaluate_cmapss};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum EvalCommand {
    /// Score the streaming anomaly detector on the Numenta Anomaly Benchmark (NAB v1.1, 58
    /// series) with NAB's own scoring: anomaly windows, the scaled sigmoid, the three
    /// application profiles, one threshold per profile over the corpus, and normalisation
    /// between the null (0) and perfect (100) detectors.
    Nab(NabArgs),
    /// Train the remaining-useful-life model on NASA C-MAPSS run-to-failure histories and
    /// score it on the official test set: the RUL predicted at each test engine's last cycle
    /// against the true RUL (RMSE, and the PHM08 score that punishes late predictions more).
    Cmapss(CmapssArgs),
    /// Bayesian optimisation of process parameters on the twin's quality surface against random
    /// search with the same budget: trials needed until a trial's settings are within 1 % of the
    /// optimum (regret normalised by the surface's range over the safe box), over many seeds.
    Bo(BoArgs),
    /// Each tier-1 skill against its tier-0 baseline on the twin, paired by seed, with 95 %
    /// confidence intervals: condition-based maintenance against fixed-interval service, demand
    /// forecasting against seasonal naive.
    Twin(crate::eval_twin::TwinArgs),
    /// Score a streaming anomaly detector on a folder of labelled CSV files (one per machine:
    /// timestamp, signals, 0/1 `anomaly`): each file's detector trains on a healthy prefix and
    /// scores the rest; point-wise precision, recall and F1, false- and missed-alarm rates,
    /// lead time and NAB-style scores at the detector's own alarm level (docs/ANOMALY-EVAL.md).
    Anomaly(crate::eval_anomaly::AnomalyArgs),
    /// Write a labelled folder for `eval anomaly` from the twin's telemetry (one CSV per
    /// machine and seed; `anomaly` = 1 in the P–F interval before each failure), or from a NAB
    /// checkout with --from-nab.
    AnomalyData(crate::eval_anomaly::AnomalyDataArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct BoArgs {
    /// Plant file [default: the built-in reference plant]; every routing step with process
    /// parameters is one problem.
    #[arg(long)]
    plant: Option<PathBuf>,
    /// Seeds per problem.
    #[arg(long, default_value_t = 20)]
    seeds: u64,
    /// Trials per run, for both methods.
    #[arg(long, default_value_t = 50)]
    budget: usize,
    /// Units in each trial batch (the scrap rate of a batch is the noisy cost a trial returns).
    #[arg(long, default_value_t = 1000)]
    batch: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct CmapssArgs {
    /// Folder holding train_<SUBSET>.txt, test_<SUBSET>.txt and RUL_<SUBSET>.txt.
    #[arg(long)]
    data: PathBuf,
    /// FD001 (one operating condition, one fault mode) .. FD004.
    #[arg(long, default_value = "FD001")]
    subset: String,
    /// Also cross-validate on the training engines first, in this many folds grouped by
    /// engine (0: skip; the test files are not used for it).
    #[arg(long, default_value_t = 0)]
    cv_folds: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct NabArgs {
    /// A NAB checkout (or copy) holding data/, labels/combined_windows.json and
    /// config/profiles.json.
    #[arg(long)]
    data: PathBuf,
    /// Also write the detections in NAB's results layout (DIR/<detector>/<category>/
    /// <detector>_<file>.csv with timestamp,value,anomaly_score,label), so NAB's own scorer can
    /// score them.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Detector: `aifactory` (ours) or `windowed-gaussian` (NAB's reference detector, to check
    /// the scorer against NAB's published table).
    #[arg(long, default_value = "aifactory")]
    detector: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: EvalCommand) -> anyhow::Result<ExitCode> {
    match command {
        EvalCommand::Nab(args) => run_nab(&args),
        EvalCommand::Cmapss(args) => run_cmapss(&args),
        EvalCommand::Bo(args) => run_bo(&args),
        EvalCommand::Twin(args) => crate::eval_twin::run(&args),
        EvalCommand::Anomaly(args) => crate::eval_anomaly::run(&args),
        EvalCommand::AnomalyData(args) => crate::eval_anomaly::run_data(&args),
    }
}

/// Published NAB scores for context (standard, low FP, low FN), from NAB's scoreboard.
const PUBLISHED: &[(&str, f64, f64, f64)] = &[
    ("ARTime", 74.9, 65.1, 80.4),
    ("Numenta HTM", 70.5, 62.6, 75.2),
    ("CAD OSE", 69.9, 67.0, 73.2),
    ("Windowed Gaussian", 39.6, 20.9, 47.4),
];

fn detect(corpus: &NabCorpus, detector: &str) -> anyhow::Result<(Vec<Vec<f64>>, &'static str)> {
    Ok(match detector {
        "aifactory" => (
            nab::detect_corpus(corpus, || AnomalyDetector::new(AnomalyConfig::default())),
            "aifactory",
        ),
        "windowed-gaussian" => (
            nab::detect_corpus(corpus, WindowedGaussian::default),
            "windowedGaussian",
        ),
        other => anyhow::bail!(
            "--detector {other:?} is not known; use `aifactory` or `windowed-gaussian`"
        ),
    })
}

fn run_nab(args: &NabArgs) -> anyhow::Result<ExitCode> {
    let corpus = nab::load_corpus(&args.data)
        .with_context(|| format!("reading the NAB corpus under {}", args.data.display()))?;
    // Throughput on one core: the fastest of three full passes, as the machine may be busy.
    let mut best_secs = f64::INFINITY;
    let mut scores = Vec::new();
    let mut folder = "";
    for _ in 0..3 {
        let start = Instant::now();
        let (s, name) = detect(&corpus, &args.detector)?;
        best_secs = best_secs.min(start.elapsed().as_secs_f64());
        scores = s;
        folder = name;
    }
    let points = corpus.points();
    let points_per_s = points as f64 / best_secs.max(1e-9);
    let profiles = nab::score_profiles(&corpus, &scores).context("scoring the detections")?;
    if let Some(out) = &args.out {
        for (series, s) in corpus.series.iter().zip(&scores) {
            nab::write_results(out, folder, series, s)
                .with_context(|| format!("writing results for {}", series.key))?;
        }
    }
    let by_name = |name: &str| profiles.iter().find(|p| p.profile == name);
    if args.json {
        let score_of = |name: &str| by_name(name).map(|p| p.normalised);
        let value = serde_json::json!({
            "detector": folder,
            "standard": score_of("standard"),
            "reward_low_fp": score_of("reward_low_FP_rate"),
            "reward_low_fn": score_of("reward_low_FN_rate"),
            "points_per_s": points_per_s.round(),
            "series": corpus.series.len(),
            "points": points,
            "windows": corpus.windows(),
            "profiles": profiles,
            "results_dir": args.out,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!(
            "{}",
            nab_table(&corpus, folder, &profiles, points_per_s, args)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn nab_table(
    corpus: &NabCorpus,
    detector: &str,
    profiles: &[ProfileScore],
    points_per_s: f64,
    args: &NabArgs,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "NAB: {} series, {} points, {} anomaly windows; detector {detector}\n",
        corpus.series.len(),
        corpus.points(),
        corpus.windows()
    );
    let _ = writeln!(
        out,
        "{:<22} {:>7} {:>11} {:>9} {:>8}",
        "profile", "score", "threshold", "windows", "FP rows"
    );
    for p in profiles {
        let _ = writeln!(
            out,
            "{:<22} {:>7.2} {:>11.4} {:>5}/{:<3} {:>8}",
            p.profile,
            p.normalised,
            p.threshold,
            p.windows_detected,
            p.windows_detected + p.windows_missed,
            p.fp_rows
        );
    }
    let _ = writeln!(
        out,
        "\nScoring throughput: {:.2} M points/s on one core.",
        points_per_s / 1e6
    );
    let _ = writeln!(out, "Published (standard / low FP / low FN):");
    for (name, s, fp, fn_) in PUBLISHED {
        let _ = writeln!(out, "  {name:<18} {s:>5.1} / {fp:>5.1} / {fn_:>5.1}");
    }
    if let Some(dir) = &args.out {
        let _ = writeln!(
            out,
            "\nDetections written under {}/{detector}/ in NAB's results layout.",
            dir.display()
        );
    }
    out
}

/// Published FD001 test RMSEs for context.
/// Published RMSE per subset (FD001..FD004; NaN where the paper or our sources give none).
const CMAPSS_PUBLISHED: &[(&str, [f64; 4])] = &[
    ("CNN (Babu 2016)", [18.45, 30.29, 19.82, 29.16]),
    ("Deep LSTM (Zheng 2017)", [16.14, 24.49, 16.18, 28.17]),
    ("DCNN (Li 2018)", [12.61, 22.36, 12.64, 23.31]),
    ("DAST (2022)", [11.43, 15.25, 11.32, f64::NAN]),
    ("STAR (2024)", [10.61, f64::NAN, f64::NAN, f64::NAN]),
];

fn run_cmapss(args: &CmapssArgs) -> anyhow::Result<ExitCode> {
    // The three operational settings define the operating regimes (six in FD002 and FD004).
    let config = RulConfig {
        operating_settings: CMAPSS_SETTINGS.to_vec(),
        ..RulConfig::default()
    };
    let cv = CvOptions {
        folds: args.cv_folds,
        ..CvOptions::default()
    };
    let spinner = (!args.json).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(if args.cv_folds >= 2 {
            format!(
                "cross-validating ({} folds), then training on {}",
                args.cv_folds, args.subset
            )
        } else {
            format!(
                "training on {} (about half a minute on two cores)",
                args.subset
            )
        });
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    });
    let origin = Instant::now();
    let clock = move || origin.elapsed().as_secs_f64();
    let report = evaluate_cmapss(
        &args.data,
        &args.subset,
        &config,
        (args.cv_folds >= 2).then_some(&cv),
        &clock,
    )
    .with_context(|| {
        format!(
            "evaluating C-MAPSS {} under {}",
            args.subset,
            args.data.display()
        )
    })?;
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    if args.json {
        let value = serde_json::json!({
            "subset": report.subset,
            "rmse": report.rmse,
            "rmse_capped": report.rmse_capped,
            "nasa_score": report.nasa_score,
            "train_s": report.train_s,
            "cv_rmse_capped": report.cv.as_ref().map(|c| c.rmse_capped),
            "n_train": report.n_train,
            "n_test": report.n_test,
            "n_features": report.n_features,
            "n_regimes": report.n_regimes,
            "channels": report.channels,
            "rul_cap": config.rul_cap,
            "predictions": report.predictions,
            "truth": report.truth,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "C-MAPSS {}: trained on {} engines ({} operating regime{} found), scored on the last cycle of {} test engines\n",
        report.subset,
        report.n_train,
        report.n_regimes,
        if report.n_regimes == 1 { "" } else { "s" },
        report.n_test
    );
    println!("RMSE (true RUL)            {:>8.2} cycles", report.rmse);
    println!(
        "RMSE (true RUL capped {:.0}) {:>8.2} cycles",
        config.rul_cap, report.rmse_capped
    );
    println!("PHM08 score (sum)          {:>8.1}", report.nasa_score);
    println!("Training time              {:>8.1} s", report.train_s);
    if let Some(cv) = &report.cv {
        println!(
            "Cross-validation (train)   {:>8.2} RMSE vs capped truth, {} cut points",
            cv.rmse_capped, cv.n_points
        );
    }
    let column = ["FD001", "FD002", "FD003", "FD004"]
        .iter()
        .position(|s| *s == report.subset);
    if let Some(column) = column {
        println!("\nPublished {} RMSE:", report.subset);
        for (name, r) in CMAPSS_PUBLISHED {
            if r[column].is_finite() {
                println!("  {name:<24} {:>6.2}", r[column]);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Trials until a trial's true normalised regret is at most 1 % (`budget + 1` if never).
fn trials_to_reach(regrets: &[f64], budget: usize) -> usize {
    regrets
        .iter()
        .position(|r| *r <= 0.01)
        .map_or(budget + 1, |i| i + 1)
}

fn run_bo(args: &BoArgs) -> anyhow::Result<ExitCode> {
    use aifactory_skills::bo::BayesOpt;
    use aifactory_twin::physics::defect_probability;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Binomial, Distribution};
    if args.seeds == 0 || args.budget < 5 || args.batch == 0 {
        anyhow::bail!("--seeds must be at least 1, --budget at least 5 and --batch at least 1");
    }
    let plant = crate::setup::plant_or_reference(args.plant.as_deref())?;
    let mut problems = Vec::new();
    for product in &plant.products {
        for step in &product.routing {
            if !step.params.is_empty() {
                problems.push((format!("{}/{}", product.id, step.name), step.clone()));
            }
        }
    }
    anyhow::ensure!(
        !problems.is_empty(),
        "the plant has no routing step with process parameters"
    );
    let health = plant
        .machine_types
        .first()
        .map(|t| t.health)
        .context("the plant has no machine type")?;
    let mut rows = Vec::new();
    let (mut bo_all, mut rs_all) = (Vec::new(), Vec::new());
    for (name, step) in &problems {
        let bounds: Vec<(f64, f64)> = step.params.iter().map(|p| (p.min, p.max)).collect();
        let (mut bo_n, mut rs_n) = (Vec::new(), Vec::new());
        for seed in 0..args.seeds {
            // Each seed hides the optimum somewhere else in the central 80 % of the box (seed 0
            // keeps the plant file's), so that a lucky guess such as the box's centre cannot
            // stand in for learning.
            let mut hide = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x0E7);
            let mut params = step.params.clone();
            if seed > 0 {
                for p in &mut params {
                    p.optimum = p.min + (0.1 + 0.8 * hide.random::<f64>()) * (p.max - p.min);
                }
            }
            let params = &params;
            // The hidden truth, known to this harness only: the cost surface, its optimum and
            // its worst value over the box (a convex quadratic: worst at a corner).
            let cost = |x: &[f64]| defect_probability(step.base_defect, &health, 0.0, params, x);
            let optimum: Vec<f64> = params.iter().map(|p| p.optimum).collect();
            let best = cost(&optimum);
            let worst = (0..1u32 << params.len())
                .map(|mask| {
                    let corner: Vec<f64> = params
                        .iter()
                        .enumerate()
                        .map(|(i, p)| if mask >> i & 1 == 1 { p.max } else { p.min })
                        .collect();
                    cost(&corner)
                })
                .fold(best, f64::max);
            let regret = |x: &[f64]| (cost(x) - best) / (worst - best).max(1e-12);
            let mut noise = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xB0B0);
            let mut trial = |x: &[f64]| {
                let p = cost(x).clamp(0.0, 1.0);
                let bad = Binomial::new(args.batch, p).map_or(0, |b| b.sample(&mut noise));
                bad as f64 / args.batch as f64
            };
            let mut bo = BayesOpt::new(bounds.clone(), 2 * params.len() + 1, seed)?;
            let mut bo_regrets = Vec::with_capacity(args.budget);
            for _ in 0..args.budget {
                let x = bo.suggest();
                bo_regrets.push(regret(&x));
                bo.observe(&x, trial(&x))?;
            }
            let mut uniform = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5EED);
            let rs_regrets: Vec<f64> = (0..args.budget)
                .map(|_| {
                    let x: Vec<f64> = bounds
                        .iter()
                        .map(|(lo, hi)| uniform.random_range(*lo..=*hi))
                        .collect();
                    regret(&x)
                })
                .collect();
            bo_n.push(trials_to_reach(&bo_regrets, args.budget));
            rs_n.push(trials_to_reach(&rs_regrets, args.budget));
        }
        let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len() as f64;
        let reached = |v: &[usize]| v.iter().filter(|n| **n <= args.budget).count();
        rows.push(serde_json::json!({
            "problem": name,
            "parameters": step.params.len(),
            "bo_mean_trials": mean(&bo_n),
            "random_mean_trials": mean(&rs_n),
            "bo_reached": reached(&bo_n),
            "random_reached": reached(&rs_n),
            "ratio": mean(&rs_n) / mean(&bo_n),
        }));
        bo_all.extend(bo_n);
        rs_all.extend(rs_n);
    }
    let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len() as f64;
    let ratio = mean(&rs_all) / mean(&bo_all);
    let value = serde_json::json!({
        "seeds": args.seeds,
        "budget": args.budget,
        "batch": args.batch,
        "bo_mean_trials": mean(&bo_all),
        "random_mean_trials": mean(&rs_all),
        "ratio": ratio,
        "note": "a run that never gets within 1 % counts as budget + 1 trials, so for random search the means (and the ratio) are lower bounds",
        "problems": rows,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Trials until within 1 % of the optimum ({} seeds, budget {}, batches of {} units):\n",
        args.seeds, args.budget, args.batch
    );
    println!(
        "{:<34} {:>6} {:>12} {:>14} {:>7}",
        "problem", "params", "BO (reached)", "random (reached)", "ratio"
    );
    for r in &rows {
        println!(
            "{:<34} {:>6} {:>6.1} ({:>3}) {:>8.1} ({:>3}) {:>7.2}",
            r["problem"].as_str().unwrap_or(""),
            r["parameters"],
            r["bo_mean_trials"].as_f64().unwrap_or(0.0),
            r["bo_reached"],
            r["random_mean_trials"].as_f64().unwrap_or(0.0),
            r["random_reached"],
            r["ratio"].as_f64().unwrap_or(0.0),
        );
    }
    println!(
        "\nOverall: BO {:.1} trials, random search {:.1} (a lower bound: misses count as budget + 1); {:.2}x fewer.",
        mean(&bo_all),
        mean(&rs_all),
        ratio
    );
    Ok(ExitCode::SUCCESS)
}
