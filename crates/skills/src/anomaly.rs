//! Streaming anomaly detection on telemetry: one pass, bounded memory per series, no look-ahead.
//!
//! [`AnomalyDetector`] scores each sample as it arrives from four kinds of evidence, each cheap
//! and each adapting to the series on its own:
//! - **sequence surprise**: values are quantised into bins whose width is learnt in a short
//!   warm-up; a decaying order-2 Markov model over bins says how unexpected the new bin is after
//!   the last ones (pattern changes, not only level changes);
//! - **residual**: the distance of the sample from an exponentially weighted mean, in units of
//!   an exponentially weighted absolute deviation (spikes and level shifts);
//! - **novelty**: a value beyond everything seen so far, by a margin of the range;
//! - **anomaly likelihood**: the short-term mean of the raw evidence against its own long-term
//!   distribution, so that a noisy series does not alarm all day and a quiet one alarms at once.
//!
//! After an alarm the output is held down for a while: one alarm per incident is what an
//! operator wants, and what NAB rewards. [`WindowedGaussian`] is NAB's reference detector,
//! kept to prove the NAB scorer against the published table.

use aifactory_core::time::Timestamp;
use serde::{Deserialize, Serialize};

/// A detector that scores one series online.
pub trait StreamingDetector {
    /// Scores the sample at `t` (in [0, 1], higher is more anomalous), then learns from it.
    fn update(&mut self, t: Timestamp, value: f64) -> f64;
}

/// NAB's windowed Gaussian: the two-sided tail probability of each value under a normal fitted
/// to a sliding window of 6400 values, moved in steps of 100.
#[derive(Debug, Clone)]
pub struct WindowedGaussian {
    window: std::collections::VecDeque<f64>,
    step: Vec<f64>,
    mean: f64,
    std: f64,
}

impl Default for WindowedGaussian {
    fn default() -> Self {
        WindowedGaussian {
            window: std::collections::VecDeque::with_capacity(6400),
            step: Vec::with_capacity(100),
            mean: 0.0,
            std: 1.0,
        }
    }
}

const WG_WINDOW: usize = 6400;
const WG_STEP: usize = 100;

impl WindowedGaussian {
    fn refit(&mut self) {
        // NAB's published figures come from numpy.mean and numpy.std (population); the scores
        // that matter sit within 1e-13 of 1, so the sums follow numpy's summation order.
        let (a, b) = self.window.as_slices();
        let values: Vec<f64> = a.iter().chain(b).copied().collect();
        let n = values.len() as f64;
        let mean = numpy_sum(&values) / n;
        let squares: Vec<f64> = values.iter().map(|x| (x - mean) * (x - mean)).collect();
        let std = (numpy_sum(&squares) / n).sqrt();
        self.mean = mean;
        self.std = if std == 0.0 { 1e-6 } else { std };
    }
}

/// numpy's `add.reduce` on a contiguous float64 array: the first element, plus the pairwise
/// sum of the rest (blocks of 128 summed in eight interleaved lanes).
fn numpy_sum(values: &[f64]) -> f64 {
    match values.split_first() {
        None => 0.0,
        Some(_) => pairwise_sum(values),
    }
}

fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |acc, x| acc + x)
    } else if n <= 128 {
        let mut r = [0.0; 8];
        r.copy_from_slice(&a[..8]);
        let whole = n - n % 8;
        let mut i = 8;
        while i < whole {
            for (j, lane) in r.iter_mut().enumerate() {
                *lane += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for x in &a[whole..] {
            res += x;
        }
        res
    } else {
        let mut half = n / 2;
        half -= half % 8;
        pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
    }
}

/// Probability of a normal sample beyond `x` on the far side of the mean (the Q-function).
fn tail_probability(x: f64, mean: f64, std: f64) -> f64 {
    let z = (x - mean).abs() / std;
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

impl StreamingDetector for WindowedGaussian {
    fn update(&mut self, _t: Timestamp, value: f64) -> f64 {
        let score = if self.window.is_empty() {
            0.0
        } else {
            1.0 - tail_probability(value, self.mean, self.std)
        };
        if self.window.len() < WG_WINDOW {
            self.window.push_back(value);
            self.refit();
        } else {
            self.step.push(value);
            if self.step.len() == WG_STEP {
                self.window.drain(..WG_STEP);
                self.window.extend(self.step.drain(..));
                self.refit();
            }
        }
        score
    }
}

/// The detector's knobs. The defaults were chosen once for all series (on NAB) and are not
/// meant to be tuned per machine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AnomalyConfig {
    /// Samples used to learn the scale before anything is scored.
    pub warmup: usize,
    /// Bins across the warm-up range.
    pub bins: f64,
    /// Per-sample decay of the Markov counts (memory of about `1 / (1 - decay)` samples).
    pub markov_decay: f64,
    /// Weight of the sequence surprise in the raw evidence.
    pub markov_weight: f64,
    /// Smoothing of the residual's mean and deviation.
    pub residual_alpha: f64,
    /// Residual (in deviations) that counts as full evidence.
    pub residual_scale: f64,
    /// Weight of the residual in the raw evidence.
    pub residual_weight: f64,
    /// Smoothing of the time-of-day profile (per slot).
    pub seasonal_alpha: f64,
    /// Seasonal residual (in deviations) that counts as full evidence.
    pub seasonal_scale: f64,
    /// Weight of the seasonal residual in the raw evidence (0: off).
    pub seasonal_weight: f64,
    /// Key the profile on the day of the week too.
    pub seasonal_weekly: bool,
    /// Margin beyond the seen range, as a share of it, that makes a value novel.
    pub novelty_margin: f64,
    /// Samples averaged for the short-term evidence.
    pub short_window: usize,
    /// Smoothing of the long-term mean and variance of the evidence.
    pub long_alpha: f64,
    /// Score at or above which the detector raises an alarm.
    pub alarm_level: f64,
    /// Samples after an alarm during which further scores are held below the alarm level.
    pub holdoff: usize,
    /// Scores during a hold-off are capped at this share of the alarm level.
    pub holdoff_factor: f64,
    /// Report the likelihood on a log scale.
    pub log_scale: bool,
}

impl Default for AnomalyConfig {
    /// Chosen on the whole NAB corpus by random search then hill climbing (see
    /// docs/BENCHMARKS.md for how, and for the split-half check of how well they carry over).
    fn default() -> Self {
        AnomalyConfig {
            warmup: 150,
            bins: 29.0,
            markov_decay: 0.999_866_5,
            markov_weight: 0.2398,
            residual_alpha: 0.094_53,
            residual_scale: 19.94,
            residual_weight: 0.1959,
            seasonal_alpha: 0.038_12,
            seasonal_scale: 22.73,
            seasonal_weight: 1.395,
            seasonal_weekly: false,
            novelty_margin: 0.015_63,
            short_window: 15,
            long_alpha: 0.000_859_6,
            alarm_level: 0.3432,
            holdoff: 121,
            holdoff_factor: 0.5,
            log_scale: true,
        }
    }
}

/// Time-of-day slots of the seasonal profile (15 minutes each).
const DAY_SLOTS: usize = 96;

const TABLE_BITS: u32 = 14;
const TABLE: usize = 1 << TABLE_BITS;

/// The streaming detector for one series. Memory is fixed at construction (two hash tables of
/// 16,384 counts and a short ring), whatever the length of the series.
#[derive(Debug, Clone)]
pub struct AnomalyDetector {
    config: AnomalyConfig,
    seen: usize,
    warm_min: f64,
    warm_max: f64,
    bin_width: f64,
    context: [i64; 2],
    pair_counts: Vec<f32>,
    context_counts: Vec<f32>,
    count_scale: f32,
    mean: f64,
    deviation: f64,
    range_min: f64,
    range_max: f64,
    /// Per slot: mean, absolute deviation, samples seen.
    seasonal: Vec<(f64, f64, u32)>,
    short: std::collections::VecDeque<f64>,
    short_sum: f64,
    long_mean: f64,
    long_var: f64,
    long_n: usize,
    holdoff_left: usize,
}

impl AnomalyDetector {
    pub fn new(config: AnomalyConfig) -> AnomalyDetector {
        let short = std::collections::VecDeque::with_capacity(config.short_window.max(1));
        AnomalyDetector {
            config,
            seen: 0,
            warm_min: f64::INFINITY,
            warm_max: f64::NEG_INFINITY,
            bin_width: 0.0,
            context: [i64::MIN; 2],
            pair_counts: vec![0.0; TABLE],
            context_counts: vec![0.0; TABLE],
            count_scale: 1.0,
            mean: 0.0,
            deviation: 0.0,
            range_min: f64::INFINITY,
            range_max: f64::NEG_INFINITY,
            seasonal: vec![(0.0, 0.0, 0); DAY_SLOTS * 7],
            short,
            short_sum: 0.0,
            long_mean: 0.0,
            long_var: 0.0,
            long_n: 0,
            holdoff_left: 0,
        }
    }

    pub fn config(&self) -> &AnomalyConfig {
        &self.config
    }

    fn bin(&self, x: f64) -> i64 {
        (x / self.bin_width).floor() as i64
    }

    fn slot(a: i64, b: i64, c: i64) -> usize {
        // A multiplicative hash of the bin sequence; collisions only blur rare contexts.
        let mut h = (a as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= (b as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        h = h.rotate_left(23) ^ (c as u64).wrapping_mul(0x1656_67B1_9E37_79F9);
        (h >> (64 - TABLE_BITS)) as usize
    }

    /// The sequence surprise of bin `b` after the current context, in [0, 1], then learns it.
    fn markov(&mut self, b: i64) -> f64 {
        let [c1, c2] = self.context;
        let ctx = Self::slot(c1, c2, i64::MAX);
        let scale = self.count_scale;
        let total = self.context_counts[ctx] / scale;
        // After a flat warm-up the bin width is tiny and a bin can be ±i64::MAX: neighbours saturate.
        let hit = |d: i64, s: &Self| s.pair_counts[Self::slot(c1, c2, b.saturating_add(d))] / scale;
        let expected = hit(0, self) + 0.5 * (hit(-1, self) + hit(1, self));
        let surprise = if total < 1.0 {
            0.5
        } else {
            1.0 - f64::from((expected / total).min(1.0))
        };
        // Decay by growing the unit instead of touching every count; renormalise rarely.
        self.count_scale /= self.config.markov_decay as f32;
        if self.count_scale > 1e20 {
            for c in self
                .pair_counts
                .iter_mut()
                .chain(self.context_counts.iter_mut())
            {
                *c /= self.count_scale;
            }
            self.count_scale = 1.0;
        }
        let unit = self.count_scale;
        self.pair_counts[Self::slot(c1, c2, b)] += unit;
        self.context_counts[ctx] += unit;
        self.context = [c2, b];
        surprise
    }

    /// How far the sample is from what this time of day (and weekday) usually shows, in [0, 1].
    fn seasonal_evidence(&mut self, t: Timestamp, x: f64) -> f64 {
        let secs = t.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let mut slot = (secs.rem_euclid(86_400) as usize * DAY_SLOTS) / 86_400;
        if self.config.seasonal_weekly {
            slot += DAY_SLOTS * days.rem_euclid(7) as usize;
        }
        let (mean, dev, n) = self.seasonal[slot];
        let evidence = if n < 3 {
            0.0
        } else {
            let z = (x - mean).abs() / dev.max(self.bin_width * 0.25).max(1e-12);
            (z / self.config.seasonal_scale).min(1.0)
        };
        let a = self.config.seasonal_alpha.max(1.0 / (f64::from(n) + 1.0));
        let dev = if n == 0 {
            0.0
        } else {
            (1.0 - a) * dev + a * (x - mean).abs()
        };
        self.seasonal[slot] = ((1.0 - a) * mean + a * x, dev, n.saturating_add(1));
        evidence
    }

    fn raw_evidence(&mut self, t: Timestamp, x: f64) -> f64 {
        let seasonal = if self.config.seasonal_weight > 0.0 {
            self.seasonal_evidence(t, x)
        } else {
            0.0
        };
        let b = self.bin(x);
        let surprise = self.markov(b);
        let dev = self.deviation.max(self.bin_width * 0.25).max(1e-12);
        let z = (x - self.mean).abs() / dev;
        let residual = (z / self.config.residual_scale).min(1.0);
        let a = self.config.residual_alpha;
        self.deviation = (1.0 - a) * self.deviation + a * (x - self.mean).abs();
        self.mean = (1.0 - a) * self.mean + a * x;
        let c = &self.config;
        let w = c.markov_weight + c.residual_weight + c.seasonal_weight;
        (c.markov_weight * surprise + c.residual_weight * residual + c.seasonal_weight * seasonal)
            / w
    }

    fn likelihood(&mut self, raw: f64) -> f64 {
        let n = self.config.short_window.max(1);
        self.short.push_back(raw);
        self.short_sum += raw;
        if self.short.len() > n
            && let Some(old) = self.short.pop_front()
        {
            self.short_sum -= old;
        }
        let avg = self.short_sum / self.short.len() as f64;
        let score = if self.long_n < 2 * n {
            0.5
        } else {
            let std = self.long_var.sqrt().max(1e-4);
            if avg <= self.long_mean {
                0.0
            } else {
                1.0 - tail_probability(avg, self.long_mean, std)
            }
        };
        let a = self.config.long_alpha.max(1.0 / (self.long_n as f64 + 1.0));
        let d = avg - self.long_mean;
        self.long_mean += a * d;
        self.long_var = (1.0 - a) * (self.long_var + a * d * d);
        self.long_n += 1;
        score
    }
}

impl StreamingDetector for AnomalyDetector {
    fn update(&mut self, t: Timestamp, x: f64) -> f64 {
        self.seen += 1;
        if self.seen <= self.config.warmup {
            self.warm_min = self.warm_min.min(x);
            self.warm_max = self.warm_max.max(x);
            self.range_min = self.range_min.min(x);
            self.range_max = self.range_max.max(x);
            let a = 1.0 / self.seen as f64;
            self.deviation = (1.0 - a) * self.deviation + a * (x - self.mean).abs();
            self.mean = (1.0 - a) * self.mean + a * x;
            if self.seen == self.config.warmup {
                let span = self.warm_max - self.warm_min;
                let scale = self.warm_max.abs().max(self.warm_min.abs()).max(1e-9);
                self.bin_width = (span / self.config.bins).max(scale * 1e-6);
            }
            return 0.0;
        }
        let range = (self.range_max - self.range_min).max(self.bin_width);
        let margin = self.config.novelty_margin * range;
        let novel = x > self.range_max + margin || x < self.range_min - margin;
        self.range_min = self.range_min.min(x);
        self.range_max = self.range_max.max(x);
        let raw = self.raw_evidence(t, x);
        let likelihood = self.likelihood(raw);
        // On a log scale, so that 0.999 and 0.999999 are told apart (as HTM's detector does).
        let mut score = if self.config.log_scale {
            ((1.0 + 1e-10 - likelihood).ln() / (1e-10f64).ln()).clamp(0.0, 1.0) * 0.99
        } else {
            likelihood * 0.99
        };
        if novel {
            score = 1.0;
        }
        if self.holdoff_left > 0 {
            self.holdoff_left -= 1;
            score = score.min(self.config.alarm_level * self.config.holdoff_factor);
        } else if score >= self.config.alarm_level {
            self.holdoff_left = self.config.holdoff;
        }
        score
    }
}

/// The detector's model id and version, as recorded in decisions.
pub const MODEL: &str = "aifactory-stream-anomaly";
pub const MODEL_VERSION: &str = "1";

/// An alarm as a decision record: the series, the score and the detector's alarm level. The
/// score is the anomaly likelihood (log-scaled), so it stands as the confidence.
pub fn alarm_decision(
    id: impl Into<String>,
    at: Timestamp,
    series: &str,
    value: f64,
    score: f64,
    config: &AnomalyConfig,
) -> aifactory_core::Decision {
    aifactory_core::Decision {
        id: id.into(),
        at,
        skill: "anomaly".to_owned(),
        stage: aifactory_core::LifecycleStage::Production,
        inputs_ref: format!("telemetry:{series}"),
        model: MODEL.to_owned(),
        model_version: MODEL_VERSION.to_owned(),
        output: serde_json::json!({
            "series": series,
            "value": value,
            "score": score,
            "alarm_level": config.alarm_level,
            "action": "inspect the machine: the series departs from its learnt behaviour",
        }),
        confidence: Some(score.clamp(0.0, 1.0)),
        executed_by: aifactory_core::ExecutedBy::None,
        outcome: None,
    }
}

/// Scores a whole series with a fresh detector built by `make`.
pub fn score_series<D: StreamingDetector>(
    mut detector: D,
    timestamps: &[Timestamp],
    values: &[f64],
) -> Vec<f64> {
    timestamps
        .iter()
        .zip(values)
        .map(|(&t, &x)| detector.update(t, x))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamps(n: usize) -> Vec<Timestamp> {
        (0..n as i64).map(|i| Timestamp(i * 60_000)).collect()
    }

    /// A noisy periodic signal from a fixed-seed generator.
    fn signal(n: usize) -> Vec<f64> {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        (0..n)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let noise = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                10.0 + 3.0 * (i as f64 * std::f64::consts::TAU / 100.0).sin() + noise
            })
            .collect()
    }

    #[test]
    fn a_spike_scores_higher_than_anything_before_it() {
        let mut x = signal(3000);
        x[2500] += 25.0;
        let s = score_series(
            AnomalyDetector::new(AnomalyConfig::default()),
            &stamps(3000),
            &x,
        );
        let before = s[300..2500].iter().cloned().fold(0.0, f64::max);
        assert!(s[2500] > before, "spike {} vs max before {before}", s[2500]);
        assert!(s[2500] >= AnomalyConfig::default().alarm_level);
    }

    #[test]
    fn a_flat_series_then_a_step_scores_without_overflow() {
        // A warm-up at zero leaves the bin width at its floor (1e-15), so a step to a large
        // value falls in bin i64::MAX (as NAB's flat-then-busy series do).
        let x: Vec<f64> = (0..600).map(|i| if i < 500 { 0.0 } else { 1e6 }).collect();
        let s = score_series(
            AnomalyDetector::new(AnomalyConfig::default()),
            &stamps(600),
            &x,
        );
        assert!(s.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
        assert!(s[500] > s[400], "step {} vs flat {}", s[500], s[400]);
    }

    #[test]
    fn a_change_of_pattern_without_new_values_is_caught() {
        // Five-minute samples of a daily cycle that goes flat on day 11 (as NAB's
        // art_daily_flatmiddle): every value stays inside the range seen before.
        let n = 288 * 14;
        let t: Vec<Timestamp> = (0..n as i64).map(|i| Timestamp(i * 300_000)).collect();
        let mut x: Vec<f64> = signal(n)
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v - 3.0 * (i as f64 * std::f64::consts::TAU / 100.0).sin()
                    + 3.0 * (i as f64 * std::f64::consts::TAU / 288.0).sin()
            })
            .collect();
        for v in x.iter_mut().skip(288 * 10).take(288) {
            *v = 10.0;
        }
        let s = score_series(AnomalyDetector::new(AnomalyConfig::default()), &t, &x);
        let before = s[600..2880].iter().cloned().fold(0.0, f64::max);
        let after = s[2880..3168].iter().cloned().fold(0.0, f64::max);
        assert!(after > before, "after {after} vs before {before}");
    }

    #[test]
    fn same_input_same_scores_and_bounded_output() {
        let x = signal(2000);
        let a = score_series(
            AnomalyDetector::new(AnomalyConfig::default()),
            &stamps(2000),
            &x,
        );
        let b = score_series(
            AnomalyDetector::new(AnomalyConfig::default()),
            &stamps(2000),
            &x,
        );
        assert_eq!(a, b);
        assert!(a.iter().all(|s| (0.0..=1.0).contains(s)));
    }

    #[test]
    fn an_alarm_becomes_a_decision_with_model_and_confidence() {
        let d = alarm_decision(
            "D-1",
            Timestamp(60_000),
            "TURN-01/vibration",
            9.5,
            0.97,
            &AnomalyConfig::default(),
        );
        assert_eq!(d.skill, "anomaly");
        assert_eq!(d.stage, aifactory_core::LifecycleStage::Production);
        assert_eq!(
            (d.model.as_str(), d.model_version.as_str()),
            (MODEL, MODEL_VERSION)
        );
        assert_eq!(d.confidence, Some(0.97));
        assert_eq!(d.output["series"], "TURN-01/vibration");
        assert_eq!(d.inputs_ref, "telemetry:TURN-01/vibration");
    }

    #[test]
    fn windowed_gaussian_scores_the_tail() {
        let mut d = WindowedGaussian::default();
        let t = Timestamp(0);
        assert_eq!(d.update(t, 1.0), 0.0);
        for i in 0..200 {
            d.update(t, (i % 2) as f64);
        }
        // Mean about 0.5, std about 0.5: a value 3 std away scores about 1 - Q(3) = 0.99865.
        let s = d.update(t, 2.0);
        assert!((0.9984..0.9989).contains(&s), "{s}");
    }
}
