//! Energy metering under a time-of-use tariff: power × time, split at local hour boundaries.

use crate::model::PlantModel;

#[derive(Debug, Clone)]
pub(crate) struct EnergyMeter {
    /// Seconds from local midnight to simulated time zero.
    local_offset_s: u64,
    pub(crate) kwh_by_period: Vec<f64>,
    pub(crate) cost_by_period: Vec<f64>,
}

impl EnergyMeter {
    pub(crate) fn new(model: &PlantModel) -> EnergyMeter {
        let (start, offset_min) = model.plant().start();
        let local_s = start.0.div_euclid(1000) + i64::from(offset_min) * 60;
        EnergyMeter {
            local_offset_s: local_s.rem_euclid(86_400) as u64,
            kwh_by_period: vec![0.0; model.master.tariff_periods().len()],
            cost_by_period: vec![0.0; model.master.tariff_periods().len()],
        }
    }

    /// Adds `kw` drawn from `from_ms` to `to_ms` (simulated milliseconds).
    pub(crate) fn add(&mut self, model: &PlantModel, from_ms: u64, to_ms: u64, kw: f64) {
        if kw <= 0.0 || to_ms <= from_ms {
            return;
        }
        let mut t = from_ms;
        while t < to_ms {
            let local_ms = t + self.local_offset_s * 1000;
            let hour = ((local_ms / 3_600_000) % 24) as usize;
            let boundary = t + (3_600_000 - local_ms % 3_600_000);
            let end = boundary.min(to_ms);
            let kwh = kw * (end - t) as f64 / 3_600_000.0;
            let (price, period) = model.master.tariff_hour(hour);
            if let (Some(e), Some(c)) = (
                self.kwh_by_period.get_mut(period),
                self.cost_by_period.get_mut(period),
            ) {
                *e += kwh;
                *c += kwh * price;
            }
            t = end;
        }
    }

    pub(crate) fn total_kwh(&self) -> f64 {
        self.kwh_by_period.iter().sum()
    }

    pub(crate) fn total_cost(&self) -> f64 {
        self.cost_by_period.iter().sum()
    }
}
