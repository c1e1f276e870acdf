//! Learnt process settings as policy layers: [`ProcessSettings`] runs production at the
//! settings [`crate::quality::learn_settings`] found, [`VariedSettings`] varies them per batch.

use crate::quality::Settings;
use aifactory_plant::{MachineId, ParamSpec, Policy};

/// Runs production at learnt settings; everything else is the inner policy's.
#[derive(Debug, Clone)]
pub struct ProcessSettings<P> {
    inner: P,
    settings: Settings,
}

impl<P: Policy> ProcessSettings<P> {
    pub fn new(inner: P, settings: Settings) -> Self {
        ProcessSettings { inner, settings }
    }
}

impl<P: Policy> aifactory_plant::Layer for ProcessSettings<P> {
    type Inner = P;
    fn inner(&self) -> &P {
        &self.inner
    }
    fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }
    fn label(&self) -> &str {
        "bo"
    }

    fn process_params(
        &mut self,
        machine: MachineId,
        product: usize,
        step: usize,
        specs: &[ParamSpec],
    ) -> Vec<f64> {
        match self.settings.get(&(product, step)) {
            Some(values) if values.len() == specs.len() => values
                .iter()
                .zip(specs)
                .map(|(v, s)| v.clamp(s.min, s.max))
                .collect(),
            _ => self.inner.process_params(machine, product, step, specs),
        }
    }
}

/// Runs each operation at settings drawn uniformly within ±`spread` of the parameter's range
/// around its default (clamped to the bounds), leaving every other decision to `inner`: a
/// plant whose settings vary (trials, recipes, operators), the data a defect-risk model learns
/// parameter effects from. Seeded, so runs repeat.
#[derive(Debug, Clone)]
pub struct VariedSettings<P> {
    inner: P,
    rng: rand_chacha::ChaCha8Rng,
    spread: f64,
}

impl<P: Policy> VariedSettings<P> {
    pub fn new(inner: P, spread: f64, seed: u64) -> Self {
        VariedSettings {
            inner,
            rng: <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed),
            spread: if spread.is_finite() {
                spread.clamp(0.0, 1.0)
            } else {
                0.0
            },
        }
    }
}

impl<P: Policy> aifactory_plant::Layer for VariedSettings<P> {
    type Inner = P;
    fn inner(&self) -> &P {
        &self.inner
    }
    fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }
    fn label(&self) -> &str {
        "varied-settings"
    }

    fn process_params(
        &mut self,
        _machine: MachineId,
        _product: usize,
        _step: usize,
        specs: &[ParamSpec],
    ) -> Vec<f64> {
        specs
            .iter()
            .map(|s| {
                let half = self.spread * (s.max - s.min).abs();
                let offset = if half > 0.0 {
                    rand::Rng::random_range(&mut self.rng, -half..=half)
                } else {
                    0.0
                };
                (s.default + offset).clamp(s.min.min(s.max), s.max.max(s.min))
            })
            .collect()
    }
}
