//! Remaining-useful-life on NASA C-MAPSS: cross-validate on the training units, fit once on
//! all of them, score the last cycle of every test unit, print one JSON object.
//!
//! ```text
//! cargo run --release -p aifactory-skills --example cmapss -- \
//!     [--data DIR] [--subset FD001] [--cv-folds 5] [--cv-only] [--budget 1.0] [--models 1]
//!     [--seed 42] [--no-health-index] [--no-channel-features] [--predictions]
//! ```
//!
//! `--cv-only` never opens the test files' scores: use it while choosing settings.

use aifactory_skills::rul::{
    CMAPSS_SETTINGS, CvOptions, RulConfig, RulModel, RulVariant, cross_validate, evaluate_cmapss,
    load_cmapss,
};
use std::path::PathBuf;
use std::process::ExitCode;

fn value<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
    v.parse().map_err(|_| format!("{flag}: cannot parse {v:?}"))
}

fn cv_json(cv: &aifactory_skills::rul::CvReport) -> serde_json::Value {
    serde_json::json!({
        "rmse": cv.rmse,
        "rmse_capped": cv.rmse_capped,
        "rmse_in_range": cv.rmse_in_range,
        "nasa_score_mean": cv.nasa_score_mean,
        "n_points": cv.n_points,
    })
}

fn run() -> Result<serde_json::Value, String> {
    let mut dir = PathBuf::from("/work/shared/data/cmapss");
    let mut subset = "FD001".to_string();
    let mut config = RulConfig {
        operating_settings: CMAPSS_SETTINGS.to_vec(),
        ..RulConfig::default()
    };
    let mut cv = CvOptions::default();
    let mut cv_only = false;
    let mut fit_only = false;
    let mut with_predictions = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--data" => dir = value(&flag, args.next())?,
            "--subset" => subset = value(&flag, args.next())?,
            "--cv-folds" => cv.folds = value(&flag, args.next())?,
            "--cv-cuts" => cv.cuts_per_history = value(&flag, args.next())?,
            "--cv-seed" => cv.seed = value(&flag, args.next())?,
            "--cv-only" => cv_only = true,
            "--fit-only" => fit_only = true,
            "--budget" => config.budget = value(&flag, args.next())?,
            "--max-bin" => config.max_bin = value(&flag, args.next())?,
            "--mem-gb" => config.memory_limit_gb = value(&flag, args.next())?,
            "--models" => config.n_models = value(&flag, args.next())?,
            "--seed" => config.seed = value(&flag, args.next())?,
            "--threads" => config.threads = Some(value(&flag, args.next())?),
            "--min-corr" => config.min_abs_corr = value(&flag, args.next())?,
            "--ridge" => config.ridge = value(&flag, args.next())?,
            "--mean-window" => config.mean_window = value(&flag, args.next())?,
            "--baseline" => config.baseline_len = value(&flag, args.next())?,
            "--ewma" => config.ewma_alpha = value(&flag, args.next())?,
            "--late-weight" => config.late_weight = value(&flag, args.next())?,
            "--no-variants" => config.variants.clear(),
            "--no-regimes" => config.operating_settings.clear(),
            "--regime-history" => config.regime_history = true,
            "--max-regimes" => config.max_regimes = value(&flag, args.next())?,
            "--variant" => {
                // ALPHA,WINDOW,BUDGET,SPAN[,HI_ALPHA...]: slopes over SPAN and the whole history.
                let spec: String = value(&flag, args.next())?;
                let f: Vec<&str> = spec.split(',').collect();
                let bad = || format!("--variant: cannot parse {spec:?}");
                if f.len() < 4 {
                    return Err(bad());
                }
                let hi_alphas = if f.len() > 4 {
                    f[4..]
                        .iter()
                        .map(|a| a.parse().map_err(|_| bad()))
                        .collect::<Result<Vec<f64>, String>>()?
                } else {
                    config.hi_alphas.clone()
                };
                config.variants.push(RulVariant {
                    ewma_alpha: f[0].parse().map_err(|_| bad())?,
                    mean_window: f[1].parse().map_err(|_| bad())?,
                    budget: f[2].parse().map_err(|_| bad())?,
                    slope_spans: vec![f[3].parse().map_err(|_| bad())?, 0],
                    hi_alphas,
                });
            }
            "--no-health-index" => config.health_index = false,
            "--no-channel-features" => config.channel_features = false,
            "--predictions" => with_predictions = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let cv_opts = (cv.folds >= 2).then_some(&cv);
    if fit_only {
        let data = load_cmapss(&dir, &subset).map_err(|e| e.to_string())?;
        let started = std::time::Instant::now();
        let model = RulModel::fit(&data.train, &config).map_err(|e| e.to_string())?;
        return Ok(serde_json::json!({
            "train_s": started.elapsed().as_secs_f64(),
            "n_features": model.n_features(),
            "n_regimes": model.n_regimes(),
            "channels": model.channels(),
        }));
    }
    if cv_only {
        let data = load_cmapss(&dir, &subset).map_err(|e| e.to_string())?;
        let opts = cv_opts.ok_or("--cv-only needs --cv-folds >= 2")?;
        let started = std::time::Instant::now();
        let report = cross_validate(&data.train, &config, opts).map_err(|e| e.to_string())?;
        return Ok(serde_json::json!({
            "subset": subset,
            "cv_rmse": report.rmse,
            "cv": cv_json(&report),
            "cv_s": started.elapsed().as_secs_f64(),
            "config": format!("{config:?}"),
        }));
    }
    let origin = std::time::Instant::now();
    let clock = move || origin.elapsed().as_secs_f64();
    let r = evaluate_cmapss(&dir, &subset, &config, cv_opts, &clock).map_err(|e| e.to_string())?;
    let mut out = serde_json::json!({
        "subset": r.subset,
        "rmse": r.rmse,
        "rmse_capped": r.rmse_capped,
        "nasa_score": r.nasa_score,
        "train_s": r.train_s,
        "cv_rmse": r.cv.as_ref().map(|c| c.rmse),
        "cv_rmse_capped": r.cv.as_ref().map(|c| c.rmse_capped),
        "cv": r.cv.as_ref().map(cv_json),
        "n_train": r.n_train,
        "n_test": r.n_test,
        "n_features": r.n_features,
        "channels": r.channels,
        "config": format!("{config:?}"),
    });
    if with_predictions {
        out["predictions"] = serde_json::json!(r.predictions);
        out["truth"] = serde_json::json!(r.truth);
    }
    Ok(out)
}

fn main() -> ExitCode {
    match run() {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cmapss: {e}");
            ExitCode::FAILURE
        }
    }
}
