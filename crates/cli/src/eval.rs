//! `aifactory eval`: the skills measured on public benchmarks, the way their communities score
//! them, so a plant can check our claims on its own machine.

use aifactory_skills::anomaly::{AnomalyConfig, AnomalyDetector, WindowedGaussian};
use aifactory_skills::nab::{self, NabCorpus, ProfileScore};
use aifactory_skills::rul::{CvOptions, RulConfig, evaluate_cmapss};
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
const CMAPSS_PUBLISHED: &[(&str, f64)] = &[
    ("CNN (Babu 2016)", 18.45),
    ("Deep LSTM (Zheng 2017)", 16.14),
    ("DCNN (Li 2018)", 12.61),
    ("DAST (2022)", 11.43),
    ("STAR (2024)", 10.61),
];

fn run_cmapss(args: &CmapssArgs) -> anyhow::Result<ExitCode> {
    let config = RulConfig::default();
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
            "channels": report.channels,
            "rul_cap": config.rul_cap,
            "predictions": report.predictions,
            "truth": report.truth,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "C-MAPSS {}: trained on {} engines, scored on the last cycle of {} test engines\n",
        report.subset, report.n_train, report.n_test
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
    println!("\nPublished FD001 RMSE:");
    for (name, r) in CMAPSS_PUBLISHED {
        println!("  {name:<24} {r:>6.2}");
    }
    Ok(ExitCode::SUCCESS)
}
