//! Tuning harness for the streaming detector on NAB: `cargo run --release -p aifactory-skills
//! --example nab_tune -- [DATA_DIR] [CONFIG_JSON ...]`. Prints the three normalised scores of
//! NAB's windowed Gaussian and of each configuration given (the defaults if none).

use aifactory_skills::anomaly::{AnomalyConfig, AnomalyDetector, WindowedGaussian};
use aifactory_skills::nab::{
    detect_corpus, load_corpus, score_profiles, score_series_at, write_results,
};
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data/nab"));
    let mut corpus = load_corpus(&dir)?;
    // NAB_SUBSET=even|odd keeps every other series, for a tune-on-half / test-on-half check.
    if let Ok(half) = std::env::var("NAB_SUBSET") {
        let keep = usize::from(half == "odd");
        corpus.series = corpus
            .series
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == keep)
            .map(|(_, s)| s)
            .collect();
    }
    let configs: Vec<String> = args.collect();
    if std::env::var("NAB_BASELINE").is_ok() {
        let scores = detect_corpus(&corpus, WindowedGaussian::default);
        if let Ok(out) = std::env::var("NAB_OUT") {
            for (series, s) in corpus.series.iter().zip(&scores) {
                write_results(std::path::Path::new(&out), "windowedGaussian", series, s)?;
            }
        }
        let r = score_profiles(&corpus, &scores)?;
        println!(
            "windowedGaussian {:.3} {:.3} {:.3}",
            r[0].normalised, r[1].normalised, r[2].normalised
        );
    }
    if let Ok(n) = std::env::var("NAB_REFINE") {
        let base: AnomalyConfig = serde_json::from_str(configs.first().ok_or("give a config")?)?;
        return refine(&corpus, base, n.parse()?);
    }
    if let Ok(n) = std::env::var("NAB_SEARCH") {
        return search(&corpus, n.parse()?);
    }
    let configs = if configs.is_empty() {
        vec!["{}".to_string()]
    } else {
        configs
    };
    for c in configs {
        let mut base = serde_json::to_value(AnomalyConfig::default())?;
        let patch: serde_json::Value = serde_json::from_str(&c)?;
        if let (Some(b), Some(p)) = (base.as_object_mut(), patch.as_object()) {
            for (k, v) in p {
                b.insert(k.clone(), v.clone());
            }
        }
        let config: AnomalyConfig = serde_json::from_value(base)?;
        let start = Instant::now();
        let scores = detect_corpus(&corpus, || AnomalyDetector::new(config.clone()));
        let secs = start.elapsed().as_secs_f64();
        let r = score_profiles(&corpus, &scores)?;
        if std::env::var("NAB_DETAIL").is_ok() {
            for s in score_series_at(&corpus, &scores, &corpus.profiles[0], r[0].threshold) {
                println!(
                    "  {:>7.3} {}/{} fp {:>3}  {}",
                    s.raw, s.windows_detected, s.windows, s.fp_rows, s.series
                );
            }
        }
        println!(
            "{:.3} {:.3} {:.3}  thr {:.4} det {} miss {} fp {}  {:.2} Mpts/s  {c}",
            r[0].normalised,
            r[1].normalised,
            r[2].normalised,
            r[0].threshold,
            r[0].windows_detected,
            r[0].windows_missed,
            r[0].fp_rows,
            corpus.points() as f64 / secs / 1e6
        );
    }
    Ok(())
}

/// Random search over the knobs (fixed seed), printing the best configurations found.
fn search(
    corpus: &aifactory_skills::nab::NabCorpus,
    n: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut results = Vec::new();
    for _ in 0..n {
        let mut u = || uniform();
        let log = |u: f64, lo: f64, hi: f64| (lo.ln() + u * (hi.ln() - lo.ln())).exp();
        let c = AnomalyConfig {
            warmup: 150,
            bins: log(u(), 5.0, 60.0).round(),
            markov_decay: 1.0 - log(u(), 1e-4, 1e-2),
            markov_weight: u(),
            residual_alpha: log(u(), 0.005, 0.3),
            residual_scale: log(u(), 2.0, 20.0),
            residual_weight: u(),
            seasonal_alpha: log(u(), 0.01, 0.5),
            seasonal_scale: log(u(), 2.0, 20.0),
            seasonal_weight: if u() < 0.3 { 0.0 } else { u() },
            seasonal_weekly: u() < 0.5,
            novelty_margin: log(u(), 0.005, 0.1),
            short_window: log(u(), 1.0, 60.0).round() as usize,
            long_alpha: log(u(), 1e-4, 1e-2),
            alarm_level: 0.3 + 0.7 * u(),
            holdoff: if u() < 0.2 {
                0
            } else {
                log(u(), 10.0, 3000.0) as usize
            },
            holdoff_factor: 0.5,
            log_scale: true,
        };
        let scores = detect_corpus(corpus, || AnomalyDetector::new(c.clone()));
        let r = score_profiles(corpus, &scores)?;
        results.push((r[0].normalised, r[1].normalised, r[2].normalised, c));
    }
    results.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (s, fp, fn_, c) in results.iter().take(10) {
        println!("{s:.3} {fp:.3} {fn_:.3} {}", serde_json::to_string(c)?);
    }
    Ok(())
}

/// Hill climbing from `base`: multiplicative jitter on every knob, keeping improvements.
fn refine(
    corpus: &aifactory_skills::nab::NabCorpus,
    base: AnomalyConfig,
    n: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let eval = |c: &AnomalyConfig| -> Result<f64, Box<dyn std::error::Error>> {
        let scores = detect_corpus(corpus, || AnomalyDetector::new(c.clone()));
        Ok(score_profiles(corpus, &scores)?[0].normalised)
    };
    let mut best = base;
    let mut best_score = eval(&best)?;
    println!("start {best_score:.3}");
    for i in 0..n {
        let mut u = || uniform();
        let mut c = best.clone();
        let jit = |x: f64, u1: f64, u2: f64| {
            if u1 < 0.35 {
                x * (0.6 * (u2 - 0.5)).exp()
            } else {
                x
            }
        };
        c.bins = jit(c.bins, u(), u()).round().max(3.0);
        c.markov_decay = 1.0 - jit(1.0 - c.markov_decay, u(), u());
        c.markov_weight = jit(c.markov_weight, u(), u());
        c.residual_alpha = jit(c.residual_alpha, u(), u()).min(0.9);
        c.residual_scale = jit(c.residual_scale, u(), u());
        c.residual_weight = jit(c.residual_weight, u(), u());
        c.seasonal_alpha = jit(c.seasonal_alpha, u(), u()).min(0.9);
        c.seasonal_scale = jit(c.seasonal_scale, u(), u());
        c.seasonal_weight = jit(c.seasonal_weight, u(), u());
        c.novelty_margin = jit(c.novelty_margin, u(), u());
        c.short_window = jit(c.short_window as f64, u(), u()).round().max(1.0) as usize;
        c.long_alpha = jit(c.long_alpha, u(), u()).min(0.5);
        c.alarm_level = jit(c.alarm_level, u(), u()).min(1.0);
        c.holdoff = jit(c.holdoff as f64, u(), u()).round() as usize;
        let s = eval(&c)?;
        if s > best_score {
            best_score = s;
            best = c;
            println!("{i} {best_score:.3} {}", serde_json::to_string(&best)?);
        }
    }
    Ok(())
}
