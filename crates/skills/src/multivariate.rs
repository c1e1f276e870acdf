//! Multivariate streaming anomaly detection: a machine's signals watched together.
//!
//! A fault often shows first in how signals move together, not in any one of them: a motor
//! drawing more current than its vibration and temperature say the work needs is a developing
//! fault even while every reading stays inside its usual range. [`MultivariateConfig::fit`]
//! learns a machine's healthy behaviour from training rows; the fitted
//! [`MultivariateDetector`] then scores each later row as it arrives:
//!
//! ```text
//!  row x ─► log of positive signals ─► standardise ─► z ─► nearest regime (k-means centres:
//!                                                          idle, running, ...)
//!  per regime:  d = z − (centre + level)          level: re-learnt from the regime's first rows
//!                │                                after a gap, then following slowly (EWMA)
//!                ├─► PCA of the regime's training covariance ─► T² on the retained components
//!                │                                             (Q on the residual: optional)
//!                └─► EWMA of d ─► smoothed T², smoothed Q (residual in its own units)
//!  each statistic ─► tail probability under its distribution over the training rows
//!  (a quantile table and an exponential tail) ─► smallest p × number of tests
//!  ─► score = −log₁₀ p / decades, in [0, 1]; alarm at `alarm_level`
//! ```
//!
//! The smoothed statistics of every regime count at every row (as they stood at that regime's
//! last row), so a drift seen while the machine idles stays in view while it runs. A gap in
//! the stream (the machine was stopped: a repair, a service) restarts the smoothing and
//! re-learns each regime's level from its first rows after it, since a machine comes back
//! renewed; between gaps the level follows the stream slowly, so wear is followed and faster
//! departures stand out. Optional: per-signal evidence from [`AnomalyDetector`], and a
//! covariance that follows too. Memory and work per row are fixed by the number of signals and
//! regimes, never by the length of the stream. Deterministic: k-means is seeded, no clock.

use crate::anomaly::{AnomalyConfig, AnomalyDetector, StreamingDetector};
use aifactory_core::time::Timestamp;
use nalgebra::{DMatrix, SymmetricEigen};
use serde::{Deserialize, Serialize};

/// What can go wrong fitting the detector.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MultivariateError {
    #[error("the training prefix has {rows} rows; at least {needed} are needed")]
    TooFewRows { rows: usize, needed: usize },
    #[error("no signal to watch")]
    NoSignals,
    #[error("training row {row} has {found} values for {signals} signals")]
    RowLength {
        row: usize,
        found: usize,
        signals: usize,
    },
    #[error("training row {row}, signal {signal}: {value} is not a finite number")]
    NotFinite {
        row: usize,
        signal: usize,
        value: f64,
    },
}

/// The detector's knobs; see [`MultivariateConfig::default`] for how the defaults were chosen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MultivariateConfig {
    /// Read each signal that is positive throughout the training rows on a log scale.
    pub log_signals: bool,
    /// Operating regimes to tell apart (k-means on the standardised training rows; each
    /// regime gets its own components and calibration). 1: one model for all rows.
    pub regimes: usize,
    /// Share of the training variance the retained principal components explain (the rest is
    /// the residual that Q measures). At least one component is kept, and with two or more
    /// signals at least one is left to the residual.
    pub variance_share: f64,
    /// Hotelling's T² on each row's retained components.
    pub t2: bool,
    /// Q, the squared prediction error: the part of each row the components do not explain.
    pub q: bool,
    /// Weight per row of the EWMA of each row's deviation from its regime, for slow drifts
    /// (0: no smoothed statistics).
    pub smoothing: f64,
    /// T² of the smoothed deviation.
    pub smooth_t2: bool,
    /// Q of the smoothed deviation.
    pub smooth_q: bool,
    /// Score each row on every regime's smoothed statistics as they last stood, not only its
    /// own regime's.
    pub smooth_all_regimes: bool,
    /// A gap between rows longer than this many median training intervals restarts the
    /// smoothing (0: never).
    pub gap_reset: f64,
    /// After such a gap, each regime's first this-many rows set where it now stands (a
    /// machine back from a repair or a service is renewed, not faulty); 0: never.
    pub rebaseline: usize,
    /// The smoothed Q in units of each residual component's own spread (else as Q).
    pub whiten_smoothed: bool,
    /// Share of the training rows held out of the model's fit to learn the statistics'
    /// distributions from (0: learn both from all rows, in sample).
    pub calibration_share: f64,
    /// Per-signal evidence: the univariate [`AnomalyDetector`] on each signal, the largest of
    /// their scores calibrated like the other statistics.
    pub univariate: bool,
    /// Each regime's level follows the stream with this weight per row (0: fixed at where
    /// training or the last re-baselining put it): slow drifts such as wear are followed,
    /// faster departures stand out. Also while learning from the training rows.
    pub adapt: f64,
    /// Follow only rows scoring below this (above 1: every row).
    pub adapt_below: f64,
    /// Let each regime's covariance follow too (after training, on rows below
    /// `adapt_below`), its components re-derived every `refit_every` rows.
    pub adapt_covariance: bool,
    /// Rows between two eigen-decompositions while adapting.
    pub refit_every: usize,
    /// Top share of each statistic's training values to which an exponential tail is fitted.
    pub tail_share: f64,
    /// Decades of tail probability that make a score of 1 (p = 10^-decades).
    pub decades: f64,
    /// Score at or above which the detector alarms: the fixed threshold of the evaluation.
    pub alarm_level: f64,
}

impl Default for MultivariateConfig {
    /// Chosen on twin data of seeds 1–4 (docs/ANOMALY-EVAL.md has the comparison); the seeds
    /// reported there as results were not used.
    fn default() -> Self {
        MultivariateConfig {
            log_signals: true,
            regimes: 3,
            variance_share: 0.9,
            t2: true,
            q: false,
            smoothing: 0.03,
            smooth_t2: true,
            smooth_q: true,
            smooth_all_regimes: true,
            gap_reset: 10.0,
            rebaseline: 240,
            whiten_smoothed: true,
            calibration_share: 0.0,
            univariate: false,
            adapt: 0.002,
            adapt_below: 2.0,
            adapt_covariance: false,
            refit_every: 500,
            tail_share: 0.05,
            decades: 10.0,
            alarm_level: 0.7,
        }
    }
}

/// Fewest training rows the detector fits on.
pub const MIN_TRAINING_ROWS: usize = 20;

/// Fewest held-out rows a regime's statistics are calibrated on.
const MIN_CALIBRATION_ROWS: usize = 200;

/// Quantiles kept per statistic below its fitted tail.
const QUANTILES: usize = 256;

/// A statistic's training distribution: a quantile table for the body and an exponential tail
/// beyond it. Fixed size, whatever the training length.
#[derive(Debug, Clone)]
struct Calibrator {
    /// Values at probabilities `j / QUANTILES · (1 − tail_share)`, ascending.
    body: Vec<f64>,
    tail_share: f64,
    /// Mean excess over the tail's start (the exponential's scale).
    tail_scale: f64,
}

impl Calibrator {
    fn fit(mut values: Vec<f64>, tail_share: f64) -> Calibrator {
        values.retain(|v| v.is_finite());
        if values.is_empty() {
            values.push(0.0);
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let at = |prob: f64| {
            let pos = prob * (n - 1) as f64;
            let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
            let hi = (lo + 1).min(n - 1);
            values[lo] + frac * (values[hi] - values[lo])
        };
        let body_top = 1.0 - tail_share;
        let body: Vec<f64> = (0..=QUANTILES)
            .map(|j| at(j as f64 / QUANTILES as f64 * body_top))
            .collect();
        let start = body[QUANTILES];
        let excess: Vec<f64> = values
            .iter()
            .filter(|&&v| v > start)
            .map(|v| v - start)
            .collect();
        let mean_excess = if excess.is_empty() {
            0.0
        } else {
            excess.iter().sum::<f64>() / excess.len() as f64
        };
        let spread = (values[n - 1] - values[0]).abs();
        let floor = 1e-9 * (1.0 + start.abs()).max(spread);
        Calibrator {
            body,
            tail_share,
            tail_scale: mean_excess.max(floor),
        }
    }

    /// Probability of a training value at least `v`.
    fn p_value(&self, v: f64) -> f64 {
        let start = self.body[QUANTILES];
        if v.is_nan() {
            return 1.0;
        }
        if v >= start {
            return self.tail_share * (-(v - start) / self.tail_scale).exp();
        }
        if v < self.body[0] {
            return 1.0;
        }
        // The last quantile not above v, then linear between it and the next.
        let j = self.body.partition_point(|&q| q <= v).saturating_sub(1);
        let (lo, hi) = (self.body[j], self.body[(j + 1).min(QUANTILES)]);
        let frac = if hi > lo { (v - lo) / (hi - lo) } else { 1.0 };
        let prob = (j as f64 + frac) / QUANTILES as f64 * (1.0 - self.tail_share);
        (1.0 - prob).clamp(self.tail_share, 1.0)
    }
}

/// A principal-component model of one regime: the eigen-decomposition of its covariance, in
/// standardised units.
#[derive(Debug, Clone)]
struct Pca {
    /// Eigenvectors as rows, by decreasing eigenvalue.
    vectors: Vec<Vec<f64>>,
    values: Vec<f64>,
    retained: usize,
}

impl Pca {
    fn from_covariance(cov: &DMatrix<f64>, retained: Option<usize>, share: f64) -> Pca {
        let p = cov.nrows();
        let eigen = SymmetricEigen::new(cov.clone());
        let mut order: Vec<usize> = (0..p).collect();
        order.sort_by(|&a, &b| {
            eigen.eigenvalues[b]
                .total_cmp(&eigen.eigenvalues[a])
                .then(a.cmp(&b))
        });
        let trace: f64 = (0..p).map(|i| cov[(i, i)]).sum::<f64>().max(1e-12);
        // A direction the training never moved in keeps a small variance: a move along it is
        // news, not a division by zero.
        let floor = 1e-4 * trace / p as f64;
        let values: Vec<f64> = order
            .iter()
            .map(|&i| eigen.eigenvalues[i].max(floor))
            .collect();
        let vectors: Vec<Vec<f64>> = order
            .iter()
            .map(|&i| {
                let v: Vec<f64> = (0..p).map(|r| eigen.eigenvectors[(r, i)]).collect();
                // A fixed sign, so that refits and platforms agree.
                let flip = v
                    .iter()
                    .copied()
                    .find(|x| x.abs() > 1e-12)
                    .is_some_and(|x| x < 0.0);
                if flip {
                    v.iter().map(|x| -x).collect()
                } else {
                    v
                }
            })
            .collect();
        let retained = retained.unwrap_or_else(|| {
            let total: f64 = values.iter().sum();
            let mut cumulative = 0.0;
            let mut k = 0;
            while k < p {
                cumulative += values[k];
                k += 1;
                if cumulative >= share * total {
                    break;
                }
            }
            let most = if p >= 2 { p - 1 } else { 1 };
            k.clamp(1, most)
        });
        Pca {
            vectors,
            values,
            retained,
        }
    }

    /// (T², Q, whitened residual) of a deviation from the regime's centre: T² on the retained
    /// components, Q the squared residual, and the residual again in units of each residual
    /// component's own spread (for the smoothed statistics).
    fn statistics(&self, d: &[f64]) -> (f64, f64, f64) {
        let (mut t2, mut q, mut qw) = (0.0, 0.0, 0.0);
        for (i, (v, lambda)) in self.vectors.iter().zip(&self.values).enumerate() {
            let t: f64 = v.iter().zip(d).map(|(a, x)| a * x).sum();
            if i < self.retained {
                t2 += t * t / lambda;
            } else {
                q += t * t;
                qw += t * t / lambda;
            }
        }
        (t2, q, qw)
    }
}

/// One operating regime (idle, running, ...): its centre, its components, its smoothing state
/// and the training distributions of its statistics.
#[derive(Debug, Clone)]
struct Regime {
    centre: Vec<f64>,
    /// Where the regime stands since the last gap, relative to its centre: the mean deviation
    /// of its first rows after the gap.
    offset: Vec<f64>,
    /// Rows of this regime seen since the last gap, while re-learning the offset.
    rebase_seen: usize,
    pca: Pca,
    /// Covariance followed after training when adapting.
    cov: DMatrix<f64>,
    since_refit: usize,
    /// EWMA of the deviation from the centre, over this regime's rows.
    smooth: Vec<f64>,
    /// Tail probabilities of the smoothed statistics at this regime's last row (1 after a
    /// gap).
    smooth_p: [f64; 2],
    calibrators: Vec<(Statistic, Calibrator)>,
}

/// Which statistic a calibrator belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Statistic {
    T2,
    Q,
    SmoothT2,
    SmoothQ,
}

/// The fitted detector: call [`MultivariateDetector::update`] on each row after the training
/// rows, in time order.
#[derive(Debug, Clone)]
pub struct MultivariateDetector {
    config: MultivariateConfig,
    /// Per signal: read on a log scale, floored here.
    log_floor: Vec<Option<f64>>,
    mean: Vec<f64>,
    sd: Vec<f64>,
    regimes: Vec<Regime>,
    univariate: Vec<AnomalyDetector>,
    univariate_calibrator: Option<Calibrator>,
    /// Median interval between training rows (ms), and the last row's time.
    interval_ms: f64,
    last: Option<Timestamp>,
    z: Vec<f64>,
    d: Vec<f64>,
    /// The last row's regime and tail probability per statistic (1 where not enabled).
    last_regime: usize,
    last_p: [f64; 5],
}

/// A reading on the detector's scale: its log (floored) where the signal is read so.
fn transform(v: f64, log_floor: Option<f64>) -> f64 {
    match log_floor {
        Some(floor) => v.max(floor).ln(),
        None => v,
    }
}

fn distance2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn nearest(centres: &[Vec<f64>], z: &[f64]) -> usize {
    let mut best = (0, f64::INFINITY);
    for (k, c) in centres.iter().enumerate() {
        let d = distance2(c, z);
        if d < best.1 {
            best = (k, d);
        }
    }
    best.0
}

/// Operating regimes of the standardised rows `z` (`p` per row): k-means (k-means++ seeding
/// from a fixed seed, then Lloyd's iterations), regimes smaller than `min_rows` folded into
/// the others.
fn regimes(z: &[f64], p: usize, k: usize, min_rows: usize) -> Vec<Vec<f64>> {
    use rand::{Rng, SeedableRng};
    let n = z.len() / p;
    let row = |i: usize| &z[i * p..(i + 1) * p];
    let mean: Vec<f64> = (0..p)
        .map(|j| (0..n).map(|i| row(i)[j]).sum::<f64>() / n as f64)
        .collect();
    if k <= 1 || n < 2 * min_rows {
        return vec![mean];
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x005E_ED0F_4E61);
    let mut centres: Vec<Vec<f64>> = vec![row(rng.random_range(0..n)).to_vec()];
    let mut d2: Vec<f64> = (0..n).map(|i| distance2(row(i), &centres[0])).collect();
    while centres.len() < k {
        let total: f64 = d2.iter().sum();
        if total <= 0.0 {
            break;
        }
        let mut pick = rng.random::<f64>() * total;
        let mut chosen = n - 1;
        for (i, d) in d2.iter().enumerate() {
            pick -= d;
            if pick <= 0.0 {
                chosen = i;
                break;
            }
        }
        let c = row(chosen).to_vec();
        for (i, d) in d2.iter_mut().enumerate() {
            *d = d.min(distance2(row(i), &c));
        }
        centres.push(c);
    }
    let mut assign = vec![0usize; n];
    for round in 0..40 {
        let mut changed = false;
        for (i, a) in assign.iter_mut().enumerate() {
            let k = nearest(&centres, row(i));
            changed |= k != *a;
            *a = k;
        }
        let mut sums = vec![vec![0.0; p]; centres.len()];
        let mut counts = vec![0usize; centres.len()];
        for (i, &a) in assign.iter().enumerate() {
            counts[a] += 1;
            for (s, x) in sums[a].iter_mut().zip(row(i)) {
                *s += x;
            }
        }
        // Fold the smallest regime under the floor into the others, one at a time.
        if let Some((small, _)) = counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c < min_rows)
            .min_by_key(|(_, c)| **c)
            && centres.len() > 1
        {
            centres.remove(small);
            continue;
        }
        for (c, (s, &m)) in centres.iter_mut().zip(sums.iter().zip(&counts)) {
            if m > 0 {
                *c = s.iter().map(|x| x / m as f64).collect();
            }
        }
        if !changed && round > 0 {
            break;
        }
    }
    centres
}

fn covariance(z: &[f64], p: usize, members: &[usize], centre: &[f64]) -> DMatrix<f64> {
    let mut cov = DMatrix::<f64>::zeros(p, p);
    for &i in members {
        let r = &z[i * p..(i + 1) * p];
        for a in 0..p {
            for b in a..p {
                cov[(a, b)] += (r[a] - centre[a]) * (r[b] - centre[b]);
            }
        }
    }
    let n = (members.len().max(2) - 1) as f64;
    for a in 0..p {
        for b in a..p {
            cov[(a, b)] /= n;
            cov[(b, a)] = cov[(a, b)];
        }
    }
    cov
}

impl MultivariateConfig {
    /// Learns healthy behaviour from `rows` (one slice per row, the same signals in the same
    /// order, in time order; rows known to be anomalous left out) and returns the detector,
    /// ready for the rows that follow.
    pub fn fit(
        &self,
        timestamps: &[Timestamp],
        rows: &[&[f64]],
    ) -> Result<MultivariateDetector, MultivariateError> {
        let n = rows.len().min(timestamps.len());
        if n < MIN_TRAINING_ROWS {
            return Err(MultivariateError::TooFewRows {
                rows: n,
                needed: MIN_TRAINING_ROWS,
            });
        }
        let p = rows[0].len();
        if p == 0 {
            return Err(MultivariateError::NoSignals);
        }
        for (r, row) in rows.iter().enumerate() {
            if row.len() != p {
                return Err(MultivariateError::RowLength {
                    row: r,
                    found: row.len(),
                    signals: p,
                });
            }
            if let Some(s) = row.iter().position(|x| !x.is_finite()) {
                return Err(MultivariateError::NotFinite {
                    row: r,
                    signal: s,
                    value: row[s],
                });
            }
        }
        let (rows, timestamps) = (&rows[..n], &timestamps[..n]);
        // The model learns from the first rows; the statistics' distributions come from the
        // rows after them, which it has not seen (in-sample residuals are too small).
        let held_out = ((n as f64 * self.calibration_share.clamp(0.0, 0.9)) as usize)
            .min(n - MIN_TRAINING_ROWS / 2);
        let n_fit = n - held_out;
        let calibrate_from = if held_out > 0 { n_fit } else { 0 };
        let all_rows = rows;
        // Signals that stay positive are read on a log scale when so configured: a machine's
        // readings are mostly products (load × wear × a fault's rise), which a log makes sums.
        let log_floor: Vec<Option<f64>> = (0..p)
            .map(|j| {
                let min = all_rows.iter().map(|r| r[j]).fold(f64::INFINITY, f64::min);
                (self.log_signals && min > 0.0).then_some(0.5 * min)
            })
            .collect();
        let mut x: Vec<f64> = Vec::with_capacity(n_fit * p);
        for r in &all_rows[..n_fit] {
            x.extend(r.iter().zip(&log_floor).map(|(v, f)| transform(*v, *f)));
        }
        let nf = n_fit as f64;
        let mean: Vec<f64> = (0..p)
            .map(|j| (0..n_fit).map(|i| x[i * p + j]).sum::<f64>() / nf)
            .collect();
        let sd: Vec<f64> = (0..p)
            .map(|j| {
                let var = (0..n_fit)
                    .map(|i| (x[i * p + j] - mean[j]).powi(2))
                    .sum::<f64>()
                    / (nf - 1.0);
                // A constant signal keeps a tiny scale: any change of it is news.
                var.sqrt().max(1e-6 * (1.0 + mean[j].abs()))
            })
            .collect();
        let z: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, v)| (v - mean[i % p]) / sd[i % p])
            .collect();
        let min_rows = (n_fit / 50).max(MIN_TRAINING_ROWS);
        let centres = regimes(&z, p, self.regimes.max(1), min_rows);
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); centres.len()];
        for i in 0..n_fit {
            members[nearest(&centres, &z[i * p..(i + 1) * p])].push(i);
        }
        let regimes: Vec<Regime> = centres
            .into_iter()
            .zip(&members)
            .map(|(centre, m)| {
                let cov = covariance(&z, p, m, &centre);
                Regime {
                    offset: vec![0.0; p],
                    rebase_seen: self.rebaseline,
                    pca: Pca::from_covariance(&cov, None, self.variance_share),
                    cov,
                    since_refit: 0,
                    smooth: vec![0.0; p],
                    smooth_p: [1.0; 2],
                    calibrators: Vec::new(),
                    centre,
                }
            })
            .collect();
        let mut gaps: Vec<i64> = timestamps.windows(2).map(|w| w[1].0 - w[0].0).collect();
        gaps.sort_unstable();
        let interval_ms = gaps.get(gaps.len() / 2).copied().unwrap_or(1).max(1) as f64;
        let univariate = if self.univariate {
            (0..p)
                .map(|_| AnomalyDetector::new(AnomalyConfig::default()))
                .collect()
        } else {
            Vec::new()
        };
        let mut detector = MultivariateDetector {
            config: self.clone(),
            log_floor,
            mean,
            sd,
            regimes,
            univariate,
            univariate_calibrator: None,
            interval_ms,
            last: None,
            z: vec![0.0; p],
            d: vec![0.0; p],
            last_regime: 0,
            last_p: [1.0; 5],
        };
        // Replay the training rows through the statistics to learn their distributions, per
        // regime. The univariate detectors learn their scale in a warm-up: calibrate them on
        // the second half of the rows only.
        let enabled = detector.enabled();
        let mut samples: Vec<Vec<Vec<f64>>> =
            vec![vec![Vec::new(); enabled.len()]; detector.regimes.len()];
        let mut univariate_samples = Vec::new();
        let mut in_sample = samples.clone();
        for (i, (t, r)) in timestamps.iter().zip(all_rows).enumerate() {
            let (k, values) = detector.statistics(*t, r);
            detector.adapt(k, false);
            let into = if i < calibrate_from {
                &mut in_sample[k]
            } else {
                &mut samples[k]
            };
            for (e, s) in enabled.iter().zip(into.iter_mut()) {
                s.push(values.get(*e));
            }
            if self.univariate && i >= calibrate_from.max(n / 2) {
                univariate_samples.push(values.univariate);
            }
        }
        // A regime the held-out rows hardly visit is calibrated on all its rows.
        for (s, extra) in samples.iter_mut().zip(in_sample) {
            if s.first().map_or(0, Vec::len) < MIN_CALIBRATION_ROWS {
                for (a, b) in s.iter_mut().zip(extra) {
                    a.extend(b);
                }
            }
        }
        for (regime, s) in detector.regimes.iter_mut().zip(samples) {
            regime.calibrators = enabled
                .iter()
                .zip(s)
                .map(|(e, v)| (*e, Calibrator::fit(v, self.tail_share)))
                .collect();
        }
        if self.univariate {
            detector.univariate_calibrator =
                Some(Calibrator::fit(univariate_samples, self.tail_share));
        }
        Ok(detector)
    }
}

/// One row's statistics.
#[derive(Debug, Clone, Copy, Default)]
struct Values {
    t2: f64,
    q: f64,
    smooth_t2: f64,
    smooth_q: f64,
    univariate: f64,
}

impl Values {
    fn get(&self, s: Statistic) -> f64 {
        match s {
            Statistic::T2 => self.t2,
            Statistic::Q => self.q,
            Statistic::SmoothT2 => self.smooth_t2,
            Statistic::SmoothQ => self.smooth_q,
        }
    }
}

impl MultivariateDetector {
    pub fn config(&self) -> &MultivariateConfig {
        &self.config
    }

    /// Number of signals per row.
    pub fn signals(&self) -> usize {
        self.mean.len()
    }

    /// Operating regimes found in the training rows.
    pub fn regimes(&self) -> usize {
        self.regimes.len()
    }

    /// Principal components kept in each regime (the rest is Q's residual).
    pub fn retained_components(&self) -> Vec<usize> {
        self.regimes.iter().map(|r| r.pca.retained).collect()
    }

    /// Numbers the detector holds, counted from its buffers, plus one per per-signal
    /// [`AnomalyDetector`] (whose memory is fixed when it is built): set at fitting by the
    /// number of signals and regimes, whatever the length of the training rows or the stream.
    pub fn state_len(&self) -> usize {
        let regimes: usize = self
            .regimes
            .iter()
            .map(|r| {
                r.centre.len()
                    + r.pca.vectors.iter().map(Vec::len).sum::<usize>()
                    + r.pca.values.len()
                    + r.cov.len()
                    + r.smooth.len()
                    + r.offset.len()
                    + r.smooth_p.len()
                    + r.calibrators
                        .iter()
                        .map(|(_, c)| c.body.len() + 2)
                        .sum::<usize>()
            })
            .sum();
        self.log_floor.len()
            + self.mean.len()
            + self.sd.len()
            + regimes
            + self.z.len()
            + self.d.len()
            + self.univariate.len()
            + self
                .univariate_calibrator
                .as_ref()
                .map_or(0, |c| c.body.len() + 2)
    }

    fn enabled(&self) -> Vec<Statistic> {
        let c = &self.config;
        let residual = self.signals() >= 2;
        let mut out = Vec::new();
        if c.t2 {
            out.push(Statistic::T2);
        }
        if c.q && residual {
            out.push(Statistic::Q);
        }
        if c.smoothing > 0.0 {
            if c.smooth_t2 {
                out.push(Statistic::SmoothT2);
            }
            if c.smooth_q && residual {
                out.push(Statistic::SmoothQ);
            }
        }
        out
    }

    /// Standardises `x`, finds its regime, advances the smoothing and the per-signal
    /// detectors, and returns the regime and every statistic of the row.
    fn statistics(&mut self, t: Timestamp, x: &[f64]) -> (usize, Values) {
        for (j, z) in self.z.iter_mut().enumerate() {
            let v = x.get(j).copied().unwrap_or(f64::NAN);
            // A missing or broken reading stands at the mean: no evidence either way.
            *z = if v.is_finite() {
                (transform(v, self.log_floor[j]) - self.mean[j]) / self.sd[j]
            } else {
                0.0
            };
        }
        // A gap in the stream (the machine was off, the sensor silent) starts the smoothing
        // afresh: what came before says little about what comes after.
        let gap = self.config.gap_reset > 0.0
            && self.last.is_some_and(|last| {
                (t.0 - last.0) as f64 > self.config.gap_reset * self.interval_ms
            });
        self.last = Some(t);
        let rebaseline = self.config.rebaseline;
        if gap {
            for r in &mut self.regimes {
                r.smooth.iter_mut().for_each(|s| *s = 0.0);
                r.smooth_p = [1.0; 2];
                r.rebase_seen = 0;
            }
        }
        let k = if self.regimes.len() == 1 {
            0
        } else {
            let mut best = (0, f64::INFINITY);
            // By the training centres: a regime is an operating mode, and where a mode stands
            // after a renewal or a drift must not change which rows belong to it.
            for (k, r) in self.regimes.iter().enumerate() {
                let d = distance2(&r.centre, &self.z);
                if d < best.1 {
                    best = (k, d);
                }
            }
            best.0
        };
        let lambda = self.config.smoothing;
        let regime = &mut self.regimes[k];
        if regime.rebase_seen < rebaseline {
            // After a gap the machine may come back renewed or changed: its first rows in
            // each regime set where that regime now stands.
            regime.rebase_seen += 1;
            let w = 1.0 / regime.rebase_seen as f64;
            for ((o, z), c) in regime.offset.iter_mut().zip(&self.z).zip(&regime.centre) {
                *o += w * ((z - c) - *o);
            }
        }
        for (((d, z), c), o) in self
            .d
            .iter_mut()
            .zip(&self.z)
            .zip(&regime.centre)
            .zip(&regime.offset)
        {
            *d = z - c - o;
        }
        let (t2, q, _) = regime.pca.statistics(&self.d);
        let (smooth_t2, smooth_q) = if lambda > 0.0 {
            for (s, d) in regime.smooth.iter_mut().zip(&self.d) {
                *s += lambda * (d - *s);
            }
            let (st2, sq, sqw) = regime.pca.statistics(&regime.smooth);
            (st2, if self.config.whiten_smoothed { sqw } else { sq })
        } else {
            (0.0, 0.0)
        };
        let mut univariate = 0.0f64;
        for (j, d) in self.univariate.iter_mut().enumerate() {
            let v = x.get(j).copied().unwrap_or(f64::NAN);
            if v.is_finite() {
                univariate = univariate.max(d.update(t, v));
            }
        }
        (
            k,
            Values {
                t2,
                q,
                smooth_t2,
                smooth_q,
                univariate,
            },
        )
    }

    /// Scores the row at `t` (one value per signal, in the training order) in [0, 1], higher
    /// is more anomalous, then learns from it if adapting.
    pub fn update(&mut self, t: Timestamp, x: &[f64]) -> f64 {
        let (k, values) = self.statistics(t, x);
        let mut p_min = 1.0f64;
        let mut tests = 0usize;
        self.last_p = [1.0; 5];
        self.last_regime = k;
        let mut smooth_p = [1.0f64; 2];
        for (s, c) in &self.regimes[k].calibrators {
            let p = c.p_value(values.get(*s));
            self.last_p[*s as usize] = p;
            match s {
                Statistic::SmoothT2 => smooth_p[0] = p,
                Statistic::SmoothQ => smooth_p[1] = p,
                _ => {}
            }
            p_min = p_min.min(p);
            tests += 1;
        }
        self.regimes[k].smooth_p = smooth_p;
        if self.config.smooth_all_regimes {
            // A drift seen in one mode stays in view while the machine is in another: each
            // other regime's smoothed evidence as it stood at its last row.
            for (j, r) in self.regimes.iter().enumerate() {
                if j == k {
                    continue;
                }
                for (p, on) in r.smooth_p.iter().zip([
                    self.config.smooth_t2,
                    self.config.smooth_q && self.mean.len() >= 2,
                ]) {
                    if on && self.config.smoothing > 0.0 {
                        p_min = p_min.min(*p);
                        tests += 1;
                    }
                }
            }
        }
        if let Some(c) = &self.univariate_calibrator {
            let p = c.p_value(values.univariate);
            self.last_p[4] = p;
            p_min = p_min.min(p);
            tests += 1;
        }
        let p = (p_min * tests.max(1) as f64).min(1.0);
        let score = (-p.max(1e-300).log10() / self.config.decades).clamp(0.0, 1.0);
        if score < self.config.adapt_below {
            self.adapt(k, true);
        }
        score
    }

    /// What drove the last score: its regime, and the tail probability of each statistic
    /// under the training distribution (1 for those not enabled) — T², Q, smoothed T²,
    /// smoothed Q, univariate.
    pub fn evidence(&self) -> (usize, [(&'static str, f64); 5]) {
        let names = ["t2", "q", "smooth_t2", "smooth_q", "univariate"];
        let mut out = [("", 1.0); 5];
        for (o, (n, p)) in out.iter_mut().zip(names.iter().zip(self.last_p)) {
            *o = (n, p);
        }
        (self.last_regime, out)
    }

    /// Lets regime `k`'s level follow the row just scored (and its covariance, if so
    /// configured and `covariance`).
    fn adapt(&mut self, k: usize, covariance: bool) {
        let a = self.config.adapt;
        if a <= 0.0 {
            return;
        }
        let p = self.signals();
        let refit_every = self.config.refit_every.max(1);
        let share = self.config.variance_share;
        let r = &mut self.regimes[k];
        if r.rebase_seen < self.config.rebaseline {
            return;
        }
        for ((o, z), c) in r.offset.iter_mut().zip(&self.z).zip(&r.centre) {
            *o += a * (z - c - *o);
        }
        if !(covariance && self.config.adapt_covariance) {
            return;
        }
        for i in 0..p {
            let di = self.z[i] - r.offset[i] - r.centre[i];
            for j in i..p {
                let dj = self.z[j] - r.offset[j] - r.centre[j];
                let v = (1.0 - a) * r.cov[(i, j)] + a * di * dj;
                r.cov[(i, j)] = v;
                r.cov[(j, i)] = v;
            }
        }
        r.since_refit += 1;
        if r.since_refit >= refit_every {
            r.since_refit = 0;
            r.pca = Pca::from_covariance(&r.cov, Some(r.pca.retained), share);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed-seed xorshift in [0, 1).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            // Sum of twelve uniforms: close enough to a standard normal for a test.
            (0..12).map(|_| self.next()).sum::<f64>() - 6.0
        }
    }

    fn stamps(n: usize) -> Vec<Timestamp> {
        (0..n as i64).map(|i| Timestamp(i * 60_000)).collect()
    }

    /// Two signals that follow one load: each ranges widely, together they keep a ratio.
    /// From `fault` on, the second follows a load of its own: every value stays in range,
    /// only the relationship breaks.
    fn correlated(n: usize, fault: usize) -> Vec<Vec<f64>> {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        (0..n)
            .map(|i| {
                let load = rng.next();
                let other = rng.next();
                let a = 10.0 + 20.0 * load + 0.3 * rng.normal();
                let l2 = if i >= fault { other } else { load };
                let b = 4.0 + 8.0 * l2 + 0.12 * rng.normal();
                vec![a, b]
            })
            .collect()
    }

    fn score_all(config: &MultivariateConfig, data: &[Vec<f64>], train: usize) -> Vec<f64> {
        let t = stamps(data.len());
        let rows: Vec<&[f64]> = data.iter().map(|r| r.as_slice()).collect();
        let mut d = config.fit(&t[..train], &rows[..train]).unwrap();
        (train..data.len())
            .map(|i| d.update(t[i], rows[i]))
            .collect()
    }

    #[test]
    fn a_broken_relationship_no_single_signal_shows_is_caught() {
        let (n, train, fault) = (6000, 3000, 5000);
        let data = correlated(n, fault);
        let config = MultivariateConfig::default();
        let s = score_all(&config, &data, train);
        let before = &s[..fault - train];
        let during = &s[fault - train..];
        let alarmed = |v: &[f64]| {
            v.iter().filter(|&&x| x >= config.alarm_level).count() as f64 / v.len() as f64
        };
        assert!(alarmed(before) < 0.01, "false alarms {}", alarmed(before));
        assert!(alarmed(during) > 0.9, "caught {}", alarmed(during));
        // Each signal alone is blind to it: the univariate detector scores the fault rows no
        // higher than the healthy ones.
        for j in 0..2 {
            let mut u = AnomalyDetector::new(AnomalyConfig::default());
            let scores: Vec<f64> = data
                .iter()
                .enumerate()
                .map(|(i, r)| u.update(stamps(n)[i], r[j]))
                .collect();
            let level = AnomalyConfig::default().alarm_level;
            let share = |v: &[f64]| {
                v.iter().filter(|&&x| x >= level).count() as f64 / v.len().max(1) as f64
            };
            let healthy = share(&scores[train..fault]);
            let faulty = share(&scores[fault..]);
            assert!(
                faulty <= healthy + 0.01,
                "signal {j}: {faulty} vs {healthy}"
            );
        }
        // T² alone (the components' own range, one regime) misses it: Q is what catches it.
        let t2_only = MultivariateConfig {
            log_signals: false,
            regimes: 1,
            q: false,
            smooth_q: false,
            ..MultivariateConfig::default()
        };
        let s = score_all(&t2_only, &data, train);
        assert!(alarmed(&s[fault - train..]) < 0.05);
    }

    #[test]
    fn a_slow_drift_is_caught_by_the_smoothed_statistics() {
        let (n, train, fault) = (8000, 3000, 6000);
        let mut data = correlated(n, usize::MAX);
        // The second signal creeps up by a fraction of its noise per row.
        for (i, r) in data.iter_mut().enumerate().skip(fault) {
            r[1] += 0.6 * ((i - fault) as f64 / (n - fault) as f64);
        }
        let raw_only = MultivariateConfig {
            smoothing: 0.0,
            q: true,
            ..MultivariateConfig::default()
        };
        let first_alarm = |c: &MultivariateConfig| {
            score_all(c, &data, train)
                .iter()
                .position(|&s| s >= c.alarm_level)
                .map(|i| i + train)
        };
        let smooth = first_alarm(&MultivariateConfig::default()).expect("the drift is caught");
        assert!(smooth >= fault, "an alarm before the drift, at {smooth}");
        let raw = first_alarm(&raw_only).unwrap_or(n);
        assert!(smooth < raw, "smoothed {smooth} vs raw {raw}");
    }

    #[test]
    fn same_input_same_scores_bounded_output_and_bounded_state() {
        let data = correlated(4000, 3500);
        let config = MultivariateConfig {
            univariate: true,
            q: true,
            adapt_covariance: true,
            calibration_share: 0.3,
            refit_every: 100,
            ..MultivariateConfig::default()
        };
        let a = score_all(&config, &data, 1000);
        let b = score_all(&config, &data, 1000);
        assert_eq!(a, b);
        assert!(a.iter().all(|s| (0.0..=1.0).contains(s)));
        // The state does not grow with the stream, nor with the training length.
        let t = stamps(20_000);
        let long = correlated(20_000, usize::MAX);
        let rows: Vec<&[f64]> = long.iter().map(|r| r.as_slice()).collect();
        let mut short = config.fit(&t[..500], &rows[..500]).unwrap();
        let size = short.state_len();
        for i in 500..20_000 {
            short.update(t[i], rows[i]);
        }
        assert_eq!(short.state_len(), size);
        let big = config.fit(&t[..10_000], &rows[..10_000]).unwrap();
        assert_eq!(big.state_len(), size);
    }

    #[test]
    fn fitting_refuses_what_it_cannot_learn_from() {
        let config = MultivariateConfig::default();
        let t = stamps(100);
        let rows: Vec<Vec<f64>> = (0..100).map(|i| vec![i as f64, 1.0]).collect();
        let refs: Vec<&[f64]> = rows.iter().map(|r| r.as_slice()).collect();
        assert_eq!(
            config.fit(&t[..5], &refs[..5]).unwrap_err(),
            MultivariateError::TooFewRows {
                rows: 5,
                needed: MIN_TRAINING_ROWS
            }
        );
        let mut broken = refs.clone();
        let short = [1.0];
        broken[7] = &short;
        assert!(matches!(
            config.fit(&t, &broken).unwrap_err(),
            MultivariateError::RowLength { row: 7, .. }
        ));
        let nan = [1.0, f64::NAN];
        broken[7] = &nan;
        assert!(matches!(
            config.fit(&t, &broken).unwrap_err(),
            MultivariateError::NotFinite {
                row: 7,
                signal: 1,
                ..
            }
        ));
        let empty: Vec<&[f64]> = vec![&[]; 30];
        assert_eq!(
            config.fit(&stamps(30), &empty).unwrap_err(),
            MultivariateError::NoSignals
        );
        // A constant signal is fitted; any change of it scores high.
        let mut d = config.fit(&t, &refs).unwrap();
        assert!(d.update(Timestamp(0), &[50.0, 1.5]) >= config.alarm_level);
    }

    /// A machine with two modes, idle (low load) and running: `current` follows the load in
    /// both, from `fault` on it runs 8 % high while idle only.
    fn two_modes(
        n: usize,
        fault: usize,
        gap_at: Option<usize>,
        level_after_gap: f64,
    ) -> (Vec<Timestamp>, Vec<Vec<f64>>) {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let mut t = Vec::with_capacity(n);
        let mut rows = Vec::with_capacity(n);
        let mut clock = 0i64;
        for i in 0..n {
            clock += 60_000;
            if gap_at == Some(i) {
                clock += 6 * 3_600_000;
            }
            let running = (i / 50) % 3 != 0;
            let load = if running { 0.5 + 0.5 * rng.next() } else { 0.0 };
            let level = if gap_at.is_some_and(|g| i >= g) {
                level_after_gap
            } else {
                1.0
            };
            let vib = level * (0.2 + 2.0 * load) * (1.0 + 0.02 * rng.normal());
            let mut current = (4.0 + 30.0 * load) * (1.0 + 0.02 * rng.normal());
            if i >= fault && !running {
                current *= 1.08;
            }
            t.push(Timestamp(clock));
            rows.push(vec![vib, current]);
        }
        (t, rows)
    }

    fn alarm_share(
        config: &MultivariateConfig,
        t: &[Timestamp],
        rows: &[Vec<f64>],
        train: usize,
        from: usize,
        to: usize,
    ) -> f64 {
        let refs: Vec<&[f64]> = rows.iter().map(|r| r.as_slice()).collect();
        let mut d = config.fit(&t[..train], &refs[..train]).unwrap();
        let mut alarms = 0;
        for i in train..to {
            let s = d.update(t[i], refs[i]);
            if i >= from && s >= config.alarm_level {
                alarms += 1;
            }
        }
        alarms as f64 / (to - from) as f64
    }

    #[test]
    fn a_fault_in_one_operating_mode_is_caught_by_regimes() {
        let (t, rows) = two_modes(9000, 6000, None, 1.0);
        let config = MultivariateConfig::default();
        let healthy = alarm_share(&config, &t, &rows, 3000, 3000, 6000);
        let faulty = alarm_share(&config, &t, &rows, 3000, 6500, 9000);
        assert!(healthy < 0.01, "false alarms {healthy}");
        assert!(faulty > 0.5, "caught {faulty}");
        // One model for both modes: the idle rise hides in the spread between the modes.
        let one = MultivariateConfig {
            regimes: 1,
            ..config
        };
        let faulty_one = alarm_share(&one, &t, &rows, 3000, 6500, 9000);
        assert!(faulty_one < faulty / 2.0, "{faulty_one} vs {faulty}");
    }

    #[test]
    fn after_a_gap_the_level_is_learnt_again() {
        // The machine stops for six hours and comes back with 30 % less vibration (renewed).
        let (t, rows) = two_modes(9000, usize::MAX, Some(5000), 0.7);
        let config = MultivariateConfig::default();
        let after = alarm_share(&config, &t, &rows, 3000, 5600, 9000);
        assert!(after < 0.01, "alarms after the renewal {after}");
        // Without re-learning the level, the renewed machine looks faulty.
        let fixed = MultivariateConfig {
            rebaseline: 0,
            adapt: 0.0,
            ..config
        };
        let stuck = alarm_share(&fixed, &t, &rows, 3000, 5600, 9000);
        assert!(stuck > 0.5, "{stuck}");
    }

    #[test]
    fn calibration_is_a_tail_probability_that_keeps_falling() {
        let values: Vec<f64> = (0..10_000).map(|i| i as f64 / 10_000.0).collect();
        let c = Calibrator::fit(values, 0.05);
        assert!((c.p_value(0.5) - 0.5).abs() < 0.01, "{}", c.p_value(0.5));
        assert!((c.p_value(0.9) - 0.1).abs() < 0.01);
        assert_eq!(c.p_value(-1.0), 1.0);
        let (a, b) = (c.p_value(1.0), c.p_value(2.0));
        assert!(a < 0.05 && b < a * 1e-6, "{a} {b}");
    }
}
