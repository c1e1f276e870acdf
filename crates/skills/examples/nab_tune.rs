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
    if let Ok(spec) = std::env::var("NAB_ROBUST") {
        // RANDOM,STEPS,RESAMPLES
        let v: Vec<usize> = spec.split(',').map(str::parse).collect::<Result<_, _>>()?;
        let [n, steps, b] = v[..] else {
            return Err("NAB_ROBUST=RANDOM,STEPS,RESAMPLES".into());
        };
        return robust_split(&corpus, n, steps, b);
    }
    if let Ok(spec) = std::env::var("NAB_ROBUST_FULL") {
        let v: Vec<usize> = spec.split(',').map(str::parse).collect::<Result<_, _>>()?;
        let [n, steps, b] = v[..] else {
            return Err("NAB_ROBUST_FULL=RANDOM,STEPS,RESAMPLES".into());
        };
        let (_, (obj, c)) = robust_tune(&corpus, n, steps, b)?;
        let r = score_profiles(
            &corpus,
            &detect_corpus(&corpus, || AnomalyDetector::new(c.clone())),
        )?;
        println!(
            "whole corpus: objective {obj:.2}; {:.2} {:.2} {:.2}  {}",
            r[0].normalised,
            r[1].normalised,
            r[2].normalised,
            serde_json::to_string(&c)?
        );
        return Ok(());
    }
    if let Ok(n) = std::env::var("NAB_SPLIT") {
        return split(&corpus, n.parse()?);
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

/// A seeded uniform generator in [0, 1) (xorshift), so searches repeat exactly.
fn uniform_source(mut state: u64) -> impl FnMut() -> f64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One random configuration of the knobs, over ranges fixed before any tuning.
fn random_config(u: &mut dyn FnMut() -> f64) -> AnomalyConfig {
    let log = |u: f64, lo: f64, hi: f64| (lo.ln() + u * (hi.ln() - lo.ln())).exp();
    AnomalyConfig {
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
    }
}

/// Random search over the knobs (fixed seed), printing the best configurations found.
fn search(
    corpus: &aifactory_skills::nab::NabCorpus,
    n: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut uniform = uniform_source(0x9E37_79B9_7F4A_7C15);
    let mut results = Vec::new();
    for _ in 0..n {
        let c = random_config(&mut uniform);
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

/// Keeps every other series (`keep` = 0: even positions, 1: odd).
fn half(
    corpus: &aifactory_skills::nab::NabCorpus,
    keep: usize,
) -> aifactory_skills::nab::NabCorpus {
    aifactory_skills::nab::NabCorpus {
        series: corpus
            .series
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == keep)
            .map(|(_, s)| s.clone())
            .collect(),
        profiles: corpus.profiles.clone(),
    }
}

/// Element-wise mean of several detectors' scores over the same corpus.
fn committee(members: &[&Vec<Vec<f64>>]) -> Vec<Vec<f64>> {
    let k = members.len() as f64;
    (0..members[0].len())
        .map(|s| {
            (0..members[0][s].len())
                .map(|i| members.iter().map(|m| m[s][i]).sum::<f64>() / k)
                .collect()
        })
        .collect()
}

/// The split-half check: random search on one half, the chosen detector scored on the other,
/// both ways. Choices compared: the single best configuration, and committees of the best K
/// (their scores averaged).
fn split(
    corpus: &aifactory_skills::nab::NabCorpus,
    n: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    for tune in 0..2 {
        let (tune_half, test_half) = (half(corpus, tune), half(corpus, 1 - tune));
        let mut uniform = uniform_source(0x9E37_79B9_7F4A_7C15);
        let mut results = Vec::new();
        for _ in 0..n {
            let c = random_config(&mut uniform);
            let scores = detect_corpus(&tune_half, || AnomalyDetector::new(c.clone()));
            let r = score_profiles(&tune_half, &scores)?;
            results.push((r[0].normalised, c));
        }
        results.sort_by(|a, b| b.0.total_cmp(&a.0));
        let test_scores: Vec<Vec<Vec<f64>>> = results
            .iter()
            .take(20)
            .map(|(_, c)| detect_corpus(&test_half, || AnomalyDetector::new(c.clone())))
            .collect();
        let defaults = detect_corpus(
            &test_half,
            || AnomalyDetector::new(AnomalyConfig::default()),
        );
        let d = score_profiles(&test_half, &defaults)?;
        println!(
            "tuned on {} ({} configs, best {:.2}); full-corpus defaults on the other half: {:.2} {:.2} {:.2}",
            ["even", "odd"][tune],
            n,
            results[0].0,
            d[0].normalised,
            d[1].normalised,
            d[2].normalised
        );
        for k in [1, 3, 5, 10, 20] {
            let members: Vec<&Vec<Vec<f64>>> = test_scores.iter().take(k).collect();
            let r = score_profiles(&test_half, &committee(&members))?;
            let in_members: Vec<Vec<Vec<f64>>> = results
                .iter()
                .take(k)
                .map(|(_, c)| detect_corpus(&tune_half, || AnomalyDetector::new(c.clone())))
                .collect();
            let refs: Vec<&Vec<Vec<f64>>> = in_members.iter().collect();
            let r_in = score_profiles(&tune_half, &committee(&refs))?;
            println!(
                "  committee of {k:>2}: tuning half {:.2}; other half {:.2} {:.2} {:.2}",
                r_in[0].normalised, r[0].normalised, r[1].normalised, r[2].normalised
            );
        }
    }
    Ok(())
}

/// Normalised standard-profile score averaged over bootstrap resamples of the series (fixed
/// seed): a configuration that wins on a few series only scores lower than one that wins
/// broadly.
struct BootstrapObjective {
    resamples: Vec<(aifactory_skills::nab::NabCorpus, Vec<usize>)>,
}

impl BootstrapObjective {
    fn new(corpus: &aifactory_skills::nab::NabCorpus, b: usize) -> Self {
        let mut uniform = uniform_source(0xD1B5_4A32_D192_ED03);
        let n = corpus.series.len();
        let resamples = (0..b)
            .map(|_| {
                let picks: Vec<usize> = (0..n)
                    .map(|_| ((uniform() * n as f64) as usize).min(n - 1))
                    .collect();
                let c = aifactory_skills::nab::NabCorpus {
                    series: picks.iter().map(|&i| corpus.series[i].clone()).collect(),
                    profiles: corpus.profiles.clone(),
                };
                (c, picks)
            })
            .collect();
        BootstrapObjective { resamples }
    }

    fn score(&self, scores: &[Vec<f64>]) -> Result<f64, Box<dyn std::error::Error>> {
        let mut sum = 0.0;
        for (c, picks) in &self.resamples {
            let s: Vec<Vec<f64>> = picks.iter().map(|&i| scores[i].clone()).collect();
            sum += aifactory_skills::nab::score_corpus(c, &s, &c.profiles[0])?.normalised;
        }
        Ok(sum / self.resamples.len() as f64)
    }
}

/// The split-half check of the robust tuning procedure: on the tuning half, random search then
/// hill climbing on the bootstrap-mean objective; the winner scored on the other half.
fn robust_split(
    corpus: &aifactory_skills::nab::NabCorpus,
    n: usize,
    steps: usize,
    b: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    for tune in 0..2 {
        let (tune_half, test_half) = (half(corpus, tune), half(corpus, 1 - tune));
        let (after_random, best) = robust_tune(&tune_half, n, steps, b)?;
        for (label, (obj, c)) in [("random", after_random), ("random+climb", best)] {
            let r = score_profiles(
                &test_half,
                &detect_corpus(&test_half, || AnomalyDetector::new(c.clone())),
            )?;
            let r_in = score_profiles(
                &tune_half,
                &detect_corpus(&tune_half, || AnomalyDetector::new(c.clone())),
            )?;
            println!(
                "tuned on {} {label:>13}: objective {obj:.2}, tuning half {:.2}; other half {:.2} {:.2} {:.2}  {}",
                ["even", "odd"][tune],
                r_in[0].normalised,
                r[0].normalised,
                r[1].normalised,
                r[2].normalised,
                serde_json::to_string(&c)?
            );
        }
    }
    Ok(())
}

/// The robust tuning procedure: random search then hill climbing on the bootstrap-mean
/// objective. Returns the best after the random stage and after climbing, with objectives.
type Tuned = (f64, AnomalyConfig);
fn robust_tune(
    corpus: &aifactory_skills::nab::NabCorpus,
    n: usize,
    steps: usize,
    b: usize,
) -> Result<(Tuned, Tuned), Box<dyn std::error::Error>> {
    let objective = BootstrapObjective::new(corpus, b);
    let eval = |c: &AnomalyConfig| -> Result<f64, Box<dyn std::error::Error>> {
        objective.score(&detect_corpus(corpus, || AnomalyDetector::new(c.clone())))
    };
    let mut uniform = uniform_source(0x9E37_79B9_7F4A_7C15);
    let mut best = (f64::NEG_INFINITY, AnomalyConfig::default());
    for _ in 0..n {
        let c = random_config(&mut uniform);
        let s = eval(&c)?;
        if s > best.0 {
            best = (s, c);
        }
    }
    let after_random = best.clone();
    let mut jitter = uniform_source(0x2545_F491_4F6C_DD1D);
    for _ in 0..steps {
        let c = jittered(&best.1, &mut jitter);
        let s = eval(&c)?;
        if s > best.0 {
            best = (s, c);
        }
    }
    Ok((after_random, best))
}

/// `base` with multiplicative jitter on about a third of its knobs.
fn jittered(base: &AnomalyConfig, uniform: &mut dyn FnMut() -> f64) -> AnomalyConfig {
    let mut u = || uniform();
    let mut c = base.clone();
    let mut jit = |x: f64| {
        let (u1, u2) = (u(), u());
        if u1 < 0.35 {
            x * (0.6 * (u2 - 0.5)).exp()
        } else {
            x
        }
    };
    c.bins = jit(c.bins).round().max(3.0);
    c.markov_decay = 1.0 - jit(1.0 - c.markov_decay);
    c.markov_weight = jit(c.markov_weight);
    c.residual_alpha = jit(c.residual_alpha).min(0.9);
    c.residual_scale = jit(c.residual_scale);
    c.residual_weight = jit(c.residual_weight);
    c.seasonal_alpha = jit(c.seasonal_alpha).min(0.9);
    c.seasonal_scale = jit(c.seasonal_scale);
    c.seasonal_weight = jit(c.seasonal_weight);
    c.novelty_margin = jit(c.novelty_margin);
    c.short_window = jit(c.short_window as f64).round().max(1.0) as usize;
    c.long_alpha = jit(c.long_alpha).min(0.5);
    c.alarm_level = jit(c.alarm_level).min(1.0);
    c.holdoff = jit(c.holdoff as f64).round() as usize;
    c
}

/// Hill climbing from `base`: multiplicative jitter on every knob, keeping improvements.
fn refine(
    corpus: &aifactory_skills::nab::NabCorpus,
    base: AnomalyConfig,
    n: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut uniform = uniform_source(0x2545_F491_4F6C_DD1D);
    let eval = |c: &AnomalyConfig| -> Result<f64, Box<dyn std::error::Error>> {
        let scores = detect_corpus(corpus, || AnomalyDetector::new(c.clone()));
        Ok(score_profiles(corpus, &scores)?[0].normalised)
    };
    let mut best = base;
    let mut best_score = eval(&best)?;
    println!("start {best_score:.3}");
    for i in 0..n {
        let c = jittered(&best, &mut uniform);
        let s = eval(&c)?;
        if s > best_score {
            best_score = s;
            best = c;
            println!("{i} {best_score:.3} {}", serde_json::to_string(&best)?);
        }
    }
    Ok(())
}
