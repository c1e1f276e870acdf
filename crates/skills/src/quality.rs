//! Process settings learnt from trial batches (the design stage feeding production): Bayesian
//! optimisation finds, for each routing step, the parameter values with the least scrap, and a
//! policy wrapper runs production at them.
//!
//! The skill never sees the process model: it proposes settings, the caller runs a trial batch
//! (on the line or on the twin) and reports the scrap rate, and after the budget the settings
//! the optimiser believes best are kept.

use crate::bo::{BayesOpt, BoError};
use std::collections::BTreeMap;

/// A routing step whose parameters are to be learnt: (product index, step index) and the safe
/// bounds of each parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct StepToTune {
    pub product: usize,
    pub step: usize,
    pub bounds: Vec<(f64, f64)>,
}

/// Learnt settings per (product, step).
pub type Settings = BTreeMap<(usize, usize), Vec<f64>>;

/// Runs `budget` trials per step; `trial(step, values)` returns the scrap rate of a batch.
pub fn learn_settings(
    steps: &[StepToTune],
    budget: usize,
    seed: u64,
    mut trial: impl FnMut(&StepToTune, &[f64]) -> f64,
) -> Result<Settings, BoError> {
    let mut settings = Settings::new();
    for (i, step) in steps.iter().enumerate() {
        let initial = 2 * step.bounds.len() + 1;
        let mut bo = BayesOpt::new(step.bounds.clone(), initial, seed.wrapping_add(i as u64))?;
        for _ in 0..budget.max(initial) {
            let x = bo.suggest();
            let cost = trial(step, &x);
            bo.observe(&x, cost)?;
        }
        if let Some((best, _)) = bo.recommendation() {
            settings.insert((step.product, step.step), best);
        }
    }
    Ok(settings)
}

pub use crate::policy::quality::{ProcessSettings, VariedSettings};

#[cfg(test)]
mod tests {
    use super::*;
    use aifactory_plant::BaselinePolicy;
    use aifactory_plant::{ParamSpec, Policy};

    #[test]
    fn learns_settings_near_each_steps_optimum_and_applies_them() {
        let steps = vec![
            StepToTune {
                product: 0,
                step: 1,
                bounds: vec![(100.0, 200.0), (0.1, 0.5)],
            },
            StepToTune {
                product: 2,
                step: 0,
                bounds: vec![(800.0, 900.0)],
            },
        ];
        let optimum = |s: &StepToTune| -> Vec<f64> {
            if s.product == 0 {
                vec![170.0, 0.2]
            } else {
                vec![830.0]
            }
        };
        let settings = learn_settings(&steps, 20, 4, |s, x| {
            let o = optimum(s);
            0.02 + x
                .iter()
                .zip(&o)
                .zip(&s.bounds)
                .map(|((v, o), (lo, hi))| ((v - o) / (hi - lo)).powi(2))
                .sum::<f64>()
        })
        .unwrap();
        let turning = &settings[&(0, 1)];
        assert!(
            (turning[0] - 170.0).abs() < 12.0 && (turning[1] - 0.2).abs() < 0.05,
            "{turning:?}"
        );
        assert!((settings[&(2, 0)][0] - 830.0).abs() < 8.0, "{settings:?}");

        let mut policy = ProcessSettings::new(BaselinePolicy::default(), settings.clone());
        let spec = |min: f64, max: f64| ParamSpec {
            min,
            max,
            default: (min + max) / 2.0,
        };
        let specs = [spec(100.0, 200.0), spec(0.1, 0.5)];
        assert_eq!(policy.process_params(0, 0, 1, &specs), *turning);
        // Steps it did not learn keep the inner policy's (default) values.
        assert_eq!(policy.process_params(0, 1, 1, &specs), vec![150.0, 0.3]);
    }
}
