//! Process optimisation (the design stage): Bayesian optimisation of process parameters inside
//! their safe bounds, from few and noisy trials.
//!
//! A Gaussian process with a Matérn-5/2 kernel models the cost (e.g. the scrap rate of a trial
//! batch) over the parameter box scaled to the unit cube; its length-scale and noise are chosen
//! by marginal likelihood on a small grid after every trial, and the next trial maximises the
//! expected improvement over the best predicted cost. Trials never leave the bounds the
//! equipment allows. Same seed and same observations → same suggestions.

use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What can go wrong setting up or feeding the optimiser.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BoError {
    #[error("parameter {index}: the bounds [{min}, {max}] are empty or not finite")]
    Bounds { index: usize, min: f64, max: f64 },
    #[error("no parameters to optimise")]
    NoParameters,
    #[error("a trial has {got} values for {expected} parameters")]
    Dimension { expected: usize, got: usize },
    #[error("the observed cost {0} is not finite")]
    Cost(f64),
}

/// Bayesian optimiser over a box of parameters, minimising a noisy cost.
#[derive(Debug, Clone)]
pub struct BayesOpt {
    bounds: Vec<(f64, f64)>,
    /// Trials in unit-cube coordinates and their costs.
    xs: Vec<Vec<f64>>,
    ys: Vec<f64>,
    initial: usize,
    rng: ChaCha8Rng,
}

/// The fitted surrogate: what the GP believes after the trials so far.
#[derive(Debug, Clone)]
struct Surrogate {
    xs: Vec<Vec<f64>>,
    alpha: DVector<f64>,
    chol_l: DMatrix<f64>,
    length: f64,
    mean: f64,
    scale: f64,
}

fn matern52(a: &[f64], b: &[f64], length: f64) -> f64 {
    let r = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
        / length;
    let s = 5f64.sqrt() * r;
    (1.0 + s + s * s / 3.0) * (-s).exp()
}

fn normal_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

impl Surrogate {
    /// Fits the GP on standardised costs, choosing length-scale and noise by marginal likelihood.
    fn fit(xs: &[Vec<f64>], ys: &[f64]) -> Option<Surrogate> {
        let n = ys.len();
        let mean = ys.iter().sum::<f64>() / n as f64;
        let var = ys.iter().map(|y| (y - mean) * (y - mean)).sum::<f64>() / n as f64;
        let scale = var.sqrt().max(1e-12);
        let y = DVector::from_iterator(n, ys.iter().map(|v| (v - mean) / scale));
        let mut best: Option<(f64, Surrogate)> = None;
        for &length in &[0.08, 0.12, 0.18, 0.25, 0.35, 0.5, 0.7, 1.0, 1.5] {
            for &noise in &[1e-4, 1e-3, 1e-2, 0.05, 0.15, 0.4] {
                let k = DMatrix::from_fn(n, n, |i, j| {
                    matern52(&xs[i], &xs[j], length) + if i == j { noise } else { 0.0 }
                });
                let Some(chol) = k.cholesky() else { continue };
                let alpha = chol.solve(&y);
                let l = chol.l();
                let log_det: f64 = (0..n).map(|i| l[(i, i)].ln()).sum::<f64>() * 2.0;
                let log_lik = -0.5 * y.dot(&alpha) - 0.5 * log_det;
                if best.as_ref().is_none_or(|(b, _)| log_lik > *b) {
                    best = Some((
                        log_lik,
                        Surrogate {
                            xs: xs.to_vec(),
                            alpha,
                            chol_l: l,
                            length,
                            mean,
                            scale,
                        },
                    ));
                }
            }
        }
        best.map(|(_, s)| s)
    }

    /// Posterior mean and standard deviation of the cost at `x`.
    fn predict(&self, x: &[f64]) -> (f64, f64) {
        let k = DVector::from_iterator(
            self.xs.len(),
            self.xs.iter().map(|xi| matern52(xi, x, self.length)),
        );
        let mu = k.dot(&self.alpha);
        let v = self
            .chol_l
            .solve_lower_triangular(&k)
            .unwrap_or_else(|| DVector::zeros(k.len()));
        let var = (1.0 - v.dot(&v)).max(1e-12);
        (self.mean + self.scale * mu, self.scale * var.sqrt())
    }
}

impl BayesOpt {
    /// An optimiser over `bounds` (per parameter `(min, max)`); the first `initial` trials are a
    /// space-filling design, starting from `start` (e.g. today's settings) if given.
    pub fn new(bounds: Vec<(f64, f64)>, initial: usize, seed: u64) -> Result<BayesOpt, BoError> {
        if bounds.is_empty() {
            return Err(BoError::NoParameters);
        }
        for (index, &(min, max)) in bounds.iter().enumerate() {
            if !(min.is_finite() && max.is_finite() && min < max) {
                return Err(BoError::Bounds { index, min, max });
            }
        }
        Ok(BayesOpt {
            bounds,
            xs: Vec::new(),
            ys: Vec::new(),
            initial: initial.max(2),
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    fn box_to_unit(&self, x: &[f64]) -> Vec<f64> {
        x.iter()
            .zip(&self.bounds)
            .map(|(v, (lo, hi))| ((v - lo) / (hi - lo)).clamp(0.0, 1.0))
            .collect()
    }

    fn unit_to_box(&self, u: &[f64]) -> Vec<f64> {
        u.iter()
            .zip(&self.bounds)
            .map(|(v, (lo, hi))| lo + v.clamp(0.0, 1.0) * (hi - lo))
            .collect()
    }

    /// Records a trial's cost (lower is better).
    pub fn observe(&mut self, x: &[f64], cost: f64) -> Result<(), BoError> {
        if x.len() != self.bounds.len() {
            return Err(BoError::Dimension {
                expected: self.bounds.len(),
                got: x.len(),
            });
        }
        if !cost.is_finite() {
            return Err(BoError::Cost(cost));
        }
        self.xs.push(self.box_to_unit(x));
        self.ys.push(cost);
        Ok(())
    }

    pub fn trials(&self) -> usize {
        self.ys.len()
    }

    /// The next parameter values to try, inside the bounds.
    pub fn suggest(&mut self) -> Vec<f64> {
        let d = self.bounds.len();
        if self.xs.is_empty() {
            // The centre of the box first, as classical designs of experiments do.
            return self.unit_to_box(&vec![0.5; d]);
        }
        if self.xs.len() < self.initial {
            // Stratified in each dimension across the initial design (a Latin hypercube drawn
            // one row at a time from a fixed-seed permutation).
            let k = self.xs.len();
            let n = self.initial;
            let u: Vec<f64> = (0..d)
                .map(|j| {
                    let stratum = (k * (2 * j + 1) + j * 7) % n;
                    (stratum as f64 + self.rng.random::<f64>()) / n as f64
                })
                .collect();
            return self.unit_to_box(&u);
        }
        let Some(model) = Surrogate::fit(&self.xs, &self.ys) else {
            let u: Vec<f64> = (0..d).map(|_| self.rng.random::<f64>()).collect();
            return self.unit_to_box(&u);
        };
        // Improvement is measured against the best *predicted* cost at a tried point, which is
        // robust to one lucky noisy trial.
        let incumbent_index = (0..self.xs.len())
            .min_by(|&a, &b| {
                model
                    .predict(&self.xs[a])
                    .0
                    .total_cmp(&model.predict(&self.xs[b]).0)
            })
            .unwrap_or(0);
        let incumbent = self.xs[incumbent_index].clone();
        let best = model.predict(&incumbent).0;
        let ei = |x: &[f64]| {
            let (mu, sd) = model.predict(x);
            let z = (best - mu) / sd;
            (best - mu) * normal_cdf(z) + sd * normal_pdf(z)
        };
        let mut best_x = incumbent.clone();
        let mut best_ei = f64::NEG_INFINITY;
        for i in 0..1500 {
            let cand: Vec<f64> = if i % 3 == 0 {
                (0..d).map(|_| self.rng.random::<f64>()).collect()
            } else {
                let width = if i % 3 == 1 { 0.15 } else { 0.04 };
                incumbent
                    .iter()
                    .map(|v| (v + width * (self.rng.random::<f64>() * 2.0 - 1.0)).clamp(0.0, 1.0))
                    .collect()
            };
            let e = ei(&cand);
            if e > best_ei {
                best_ei = e;
                best_x = cand;
            }
        }
        self.unit_to_box(&best_x)
    }

    /// The tried parameters the model believes best, and the predicted cost there.
    pub fn recommendation(&self) -> Option<(Vec<f64>, f64)> {
        let model = Surrogate::fit(&self.xs, &self.ys)?;
        self.xs
            .iter()
            .map(|x| (x, model.predict(x).0))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(x, c)| (self.unit_to_box(x), c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A quadratic bowl with its minimum at (0.3, 0.7) of a box [0, 10] × [-1, 1].
    fn bowl(x: &[f64]) -> f64 {
        let a = (x[0] - 3.0) / 10.0;
        let b = (x[1] - 0.4) / 2.0;
        0.05 + 0.3 * a * a + 0.2 * b * b
    }

    #[test]
    fn finds_the_bottom_of_a_bowl_in_few_trials() {
        let mut bo = BayesOpt::new(vec![(0.0, 10.0), (-1.0, 1.0)], 5, 3).unwrap();
        for _ in 0..20 {
            let x = bo.suggest();
            assert!((0.0..=10.0).contains(&x[0]) && (-1.0..=1.0).contains(&x[1]));
            bo.observe(&x, bowl(&x)).unwrap();
        }
        let (x, _) = bo.recommendation().unwrap();
        assert!(
            (x[0] - 3.0).abs() < 0.6 && (x[1] - 0.4).abs() < 0.15,
            "{x:?}"
        );
    }

    #[test]
    fn same_seed_same_suggestions() {
        let run = || {
            let mut bo = BayesOpt::new(vec![(0.0, 1.0), (0.0, 1.0)], 4, 9).unwrap();
            let mut out = Vec::new();
            for _ in 0..8 {
                let x = bo.suggest();
                bo.observe(&x, (x[0] - 0.2).powi(2) + x[1]).unwrap();
                out.push(x);
            }
            out
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn bad_setup_and_bad_observations_are_refused() {
        assert_eq!(
            BayesOpt::new(vec![], 3, 1).unwrap_err(),
            BoError::NoParameters
        );
        assert!(matches!(
            BayesOpt::new(vec![(1.0, 1.0)], 3, 1),
            Err(BoError::Bounds { index: 0, .. })
        ));
        assert!(matches!(
            BayesOpt::new(vec![(0.0, f64::NAN)], 3, 1),
            Err(BoError::Bounds { .. })
        ));
        let mut bo = BayesOpt::new(vec![(0.0, 1.0)], 3, 1).unwrap();
        assert!(matches!(
            bo.observe(&[0.1, 0.2], 1.0),
            Err(BoError::Dimension { .. })
        ));
        assert_eq!(
            bo.observe(&[0.1], f64::INFINITY),
            Err(BoError::Cost(f64::INFINITY))
        );
        assert_eq!(bo.trials(), 0);
    }
}
