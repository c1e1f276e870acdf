//! The NAB scorer and detector on the real NAB v1.1 corpus (skipped when the shared data folder
//! is absent): the null and perfect detectors score exactly 0 and 100, NAB's windowed Gaussian
//! lands at its published score, and ours beats the best published standard score.

use aifactory_skills::anomaly::{AnomalyConfig, AnomalyDetector, WindowedGaussian};
use aifactory_skills::nab::{NabCorpus, detect_corpus, load_corpus, score_profiles};
use std::path::PathBuf;

fn corpus() -> Option<NabCorpus> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/nab");
    if !dir.exists() {
        eprintln!("skipped: NAB not found at {}", dir.display());
        return None;
    }
    Some(load_corpus(&dir).expect("the shared NAB copy loads"))
}

#[test]
fn null_and_perfect_detectors_bound_the_scale() {
    let Some(corpus) = corpus() else { return };
    assert_eq!(corpus.series.len(), 58);
    assert_eq!(corpus.windows(), 116);
    let null: Vec<Vec<f64>> = corpus
        .series
        .iter()
        .map(|s| vec![0.5; s.values.len()])
        .collect();
    let mut perfect: Vec<Vec<f64>> = corpus
        .series
        .iter()
        .map(|s| vec![0.0; s.values.len()])
        .collect();
    for (s, p) in corpus.series.iter().zip(perfect.iter_mut()) {
        for &(start, _) in &s.windows {
            p[start] = 1.0;
        }
    }
    let n = score_profiles(&corpus, &null).unwrap();
    let p = score_profiles(&corpus, &perfect).unwrap();
    for (n, p) in n.iter().zip(&p) {
        // NAB's published raw null scores: -116 (standard, low FP) and -232 (low FN).
        let fn_weight = if n.profile == "reward_low_FN_rate" {
            2.0
        } else {
            1.0
        };
        assert_eq!(n.raw, -116.0 * fn_weight, "{n:?}");
        assert_eq!(n.normalised, 0.0);
        assert!((p.normalised - 100.0).abs() < 1e-9, "{p:?}");
    }
}

#[test]
fn windowed_gaussian_lands_at_its_published_score() {
    let Some(corpus) = corpus() else { return };
    let scores = detect_corpus(&corpus, WindowedGaussian::default);
    let r = score_profiles(&corpus, &scores).unwrap();
    // Published: 39.6 / 20.9 / 47.4. We measure 40.13 / 23.94 / 47.73, the same figures a
    // line-by-line port of NAB's Python sweeper gives for these detections (BENCHMARKS.md).
    assert!((r[0].normalised - 39.65).abs() < 1.0, "{:?}", r[0]);
    assert!((r[2].normalised - 47.41).abs() < 1.0, "{:?}", r[2]);
    assert!((r[1].normalised - 20.87).abs() < 3.5, "{:?}", r[1]);
}

#[test]
fn the_streaming_detector_beats_the_published_best_on_nab() {
    let Some(corpus) = corpus() else { return };
    let scores = detect_corpus(&corpus, || AnomalyDetector::new(AnomalyConfig::default()));
    let r = score_profiles(&corpus, &scores).unwrap();
    assert!(r[0].normalised >= 75.0, "standard {:?}", r[0]);
    assert!(r[1].normalised > 65.1, "low FP {:?}", r[1]);
    assert!(r[2].normalised > 75.2, "low FN {:?}", r[2]);
}
