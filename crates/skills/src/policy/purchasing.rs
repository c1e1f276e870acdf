//! Forecast-driven purchasing as a policy layer: [`ForecastPurchasing`] buys by the targets
//! [`crate::forecast::plan_replenishment`] set, and [`DemandRecorder`] watches the plant's orders
//! for the next refit.

use crate::forecast::{MaterialTargets, purchase_for};
use aifactory_core::Timestamp;
use aifactory_plant::{MaterialView, PlantTime, Policy, PurchaseRequest};

/// A policy that buys materials on forecast-based targets and leaves every other decision (and
/// materials without targets) to `inner`. Targets are set from outside, e.g. each day by a
/// planner that explodes product forecasts through the bill of materials.
#[derive(Debug, Clone)]
pub struct ForecastPurchasing<P> {
    pub inner: P,
    /// Indexed by material; `None` falls back to `inner`.
    pub targets: Vec<Option<MaterialTargets>>,
}

impl<P: Policy> ForecastPurchasing<P> {
    pub fn new(inner: P) -> Self {
        ForecastPurchasing {
            inner,
            targets: Vec::new(),
        }
    }

    pub fn set_targets(&mut self, material: usize, targets: MaterialTargets) {
        if self.targets.len() <= material {
            self.targets.resize(material + 1, None);
        }
        self.targets[material] = Some(targets);
    }
}

impl<P: Policy> aifactory_plant::Layer for ForecastPurchasing<P> {
    type Inner = P;
    fn inner(&self) -> &P {
        &self.inner
    }
    fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }
    fn label(&self) -> &str {
        "forecast-purchasing"
    }

    fn purchase(&mut self, now: PlantTime, stock: &[MaterialView]) -> Vec<PurchaseRequest> {
        let planned = |m: &MaterialView| self.targets.get(m.material).copied().flatten();
        let rest: Vec<MaterialView> = stock
            .iter()
            .filter(|m| planned(m).is_none())
            .copied()
            .collect();
        let mut orders: Vec<PurchaseRequest> = stock
            .iter()
            .filter_map(|m| planned(m).and_then(|t| purchase_for(m, &t)))
            .collect();
        if !rest.is_empty() {
            orders.extend(self.inner.purchase(now, &rest));
        }
        orders
    }
}

/// Records units ordered per product and day from the twin's (or a plant's) `order_received`
/// events: the demand history the forecaster learns from.
#[derive(Debug, Clone)]
pub struct DemandRecorder {
    start_ms: i64,
    /// Product ids, in the order of `units`.
    pub products: Vec<String>,
    /// `units[product][day]`.
    pub units: Vec<Vec<f64>>,
}

impl DemandRecorder {
    /// A recorder for `days` days from `start` (the plant's day zero).
    pub fn new(start: Timestamp, products: Vec<String>, days: usize) -> Self {
        let units = vec![vec![0.0; days]; products.len()];
        DemandRecorder {
            start_ms: start.0,
            products,
            units,
        }
    }
}

impl aifactory_plant::Observer for DemandRecorder {
    fn wants_events(&self) -> bool {
        true
    }
    fn event(&mut self, event: aifactory_core::PlantEvent) {
        if event.kind != aifactory_core::EventKind::OrderReceived {
            return;
        }
        let day = (event.at.0 - self.start_ms).div_euclid(86_400_000);
        let product = event.detail["product"].as_str().unwrap_or_default();
        let quantity = event.detail["quantity"].as_f64().unwrap_or(0.0);
        if let (Ok(day), Some(p)) = (
            usize::try_from(day),
            self.products.iter().position(|id| id == product),
        ) && let Some(slot) = self.units[p].get_mut(day)
        {
            *slot += quantity;
        }
    }
}
