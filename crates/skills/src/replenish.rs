//! Replenishment from forecasts (the management stage): buy materials for the demand that is
//! coming, not on a fixed reorder point.
//!
//! ```text
//!  sales orders ─► units per product and day ─► BOM explosion ─► material demand per day
//!                                                                   │
//!       MSTL+AutoETS forecast over the protection time (lead time + jitter) ─► D_P
//!       σ of the model's own errors of that sum (rolling backtest)          ─► σ_P
//!                                                                   ▼
//!  reorder point s = D_P + z·σ_P   (z from the target cycle service level)
//!  position = on hand + on order − allocated      (allocated: material that orders already
//!                                                  received will draw, not yet issued)
//!  position ≤ s ─► order whole supplier lots up to s
//! ```
//!
//! The skill sees only what a plant's ERP sees: the sales orders as they arrive (through
//! [`Policy::release`]) and each material's stock and open purchases (through
//! [`Policy::purchase`]). Material already promised to received orders is inferred from the
//! two: it grows with each order's exploded demand and shrinks by what the stock shows was
//! issued, never below zero (so scrap remakes and rounding cannot drift it). Targets are
//! recomputed once per day from complete days only. A material without enough history for the
//! model (and its error backtest) is left to the inner policy — tier 0 until the data exist.

use crate::bom;

/// Knobs of the replenishment skill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplenishConfig {
    /// Target cycle service level (the probability of no stock-out before an order lands),
    /// used for every material when `stockout_cost` is `None`.
    pub service_level: f64,
    /// Cost of one work order held up by missing material (CNY). When set, each material's
    /// safety factor balances its holding cost against the stock-outs it prevents (the
    /// cost-per-stock-out-occasion rule), instead of one service level for all.
    pub stockout_cost: Option<f64>,
    /// Days of history each fit sees.
    pub window_days: usize,
    /// Rolling origins of the error backtest behind σ, and the days between them.
    pub sigma_origins: usize,
    pub sigma_step_days: usize,
}

impl Default for ReplenishConfig {
    fn default() -> Self {
        ReplenishConfig {
            service_level: 0.95,
            stockout_cost: Some(STOCKOUT_COST),
            window_days: 42,
            sigma_origins: 8,
            sigma_step_days: 2,
        }
    }
}

/// Default cost of a work order held up by missing material (CNY), chosen on tuning seeds 1–10
/// of the reference plant (`examples/replenish_twin.rs`); the evaluation seeds start at 11.
pub const STOCKOUT_COST: f64 = 300.0;

/// Largest safety factor the cost rule may choose (beyond it stock grows without bound for
/// vanishing gains).
const MAX_Z: f64 = 3.5;

/// The safety factor that minimises holding plus stock-out cost per day for one material:
/// `z = √(2 ln(B·k·d / (√(2π)·h·σ·Q)))`, where `B` is the cost per held-up work order, `k`
/// the work orders one shortage holds up, `d` daily demand, `h` holding cost per unit and day,
/// `σ` the error of demand over the protection time and `Q` the supplier lot (so `d/Q`
/// replenishment cycles per day). Zero when even no safety stock is the cheaper risk.
pub fn cost_optimal_z(
    stockout_cost: f64,
    orders_per_shortage: f64,
    daily_demand: f64,
    holding_per_unit_day: f64,
    sigma: f64,
    lot: f64,
) -> f64 {
    let denominator = (2.0 * std::f64::consts::PI).sqrt() * holding_per_unit_day * sigma * lot;
    let ratio = stockout_cost * orders_per_shortage * daily_demand / denominator;
    // NaN compares as neither: no safety stock unless the ratio says it pays.
    if ratio.is_nan() || ratio <= 1.0 {
        return 0.0;
    }
    if ratio.is_infinite() {
        MAX_Z
    } else {
        (2.0 * ratio.ln()).sqrt().min(MAX_Z)
    }
}

impl ReplenishConfig {
    /// Days of history a material needs before the skill takes it over.
    pub fn history_needed(&self, protection_days: usize) -> usize {
        self.window_days + protection_days + (self.sigma_origins.max(1) - 1) * self.sigma_step_days
    }
}

/// Why the skill could not be set up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplenishError {
    #[error(transparent)]
    Bom(#[from] bom::BomError),
    #[error("service level {0} must lie strictly between 0 and 1")]
    ServiceLevel(f64),
    #[error("stock-out cost {0} must be a non-negative finite amount")]
    StockoutCost(f64),
    #[error("window_days must be at least 21 and sigma_origins, sigma_step_days at least 1")]
    Config,
    #[error("history of {product:?}: {reason}")]
    History { product: String, reason: String },
}

pub use crate::policy::replenish::ForecastReplenishment;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::ReplenishmentPlan;
    use aifactory_core::{Decision, DecisionLog, ExecutedBy, Plant, Timestamp};
    use aifactory_plant::BaselinePolicy;
    use aifactory_plant::{MaterialView, OrderView, PlantTime, Policy};
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    fn reference() -> Plant {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../plants/hangzhou-auto-parts.toml");
        Plant::load(&path).expect("the reference plant loads")
    }

    /// `days` of noisy demand around each product's nominal rate.
    fn history(plant: &Plant, days: usize) -> BTreeMap<String, Vec<f64>> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        plant
            .products
            .iter()
            .filter_map(|p| p.demand.as_ref().map(|d| (p, d)))
            .map(|(p, d)| {
                let series = (0..days)
                    .map(|_| (d.units_per_day * rng.random_range(0.6..1.4)).round())
                    .collect();
                (p.id.clone(), series)
            })
            .collect()
    }

    fn views(plant: &Plant, on_hand: impl Fn(usize) -> f64) -> Vec<MaterialView> {
        plant
            .materials
            .iter()
            .enumerate()
            .map(|(i, m)| MaterialView {
                material: i,
                on_hand: on_hand(i),
                on_order: 0.0,
                reorder_point: m.reorder_point,
                order_qty: m.order_qty,
            })
            .collect()
    }

    #[test]
    fn the_cost_rule_pays_for_safety_only_when_stockouts_cost_more() {
        // Cheap stock-outs against dear stock: no safety stock at all.
        assert_eq!(cost_optimal_z(1.0, 1.0, 100.0, 1.0, 100.0, 1000.0), 0.0);
        let low = cost_optimal_z(300.0, 2.0, 160.0, 0.021, 250.0, 1200.0);
        let high = cost_optimal_z(3000.0, 2.0, 160.0, 0.021, 250.0, 1200.0);
        assert!(low > 0.5 && high > low, "{low} {high}");
        // Dearer holding lowers the factor; it never exceeds the cap; NaN gives none.
        assert!(cost_optimal_z(300.0, 2.0, 160.0, 0.1, 250.0, 1200.0) < low);
        assert_eq!(
            cost_optimal_z(1e300, 1e10, 1e10, 1e-300, 1e-300, 1e-300),
            MAX_Z
        );
        assert_eq!(cost_optimal_z(f64::NAN, 1.0, 1.0, 1.0, 1.0, 1.0), 0.0);
    }

    #[test]
    fn bad_settings_and_history_are_refused_with_the_reason() {
        let plant = reference();
        let empty = BTreeMap::new();
        let bad_level = ReplenishConfig {
            service_level: 1.0,
            stockout_cost: None,
            ..ReplenishConfig::default()
        };
        assert_eq!(
            ForecastReplenishment::new(BaselinePolicy::default(), &plant, bad_level, &empty)
                .unwrap_err(),
            ReplenishError::ServiceLevel(1.0)
        );
        let bad_cost = ReplenishConfig {
            stockout_cost: Some(-1.0),
            ..ReplenishConfig::default()
        };
        assert_eq!(
            ForecastReplenishment::new(BaselinePolicy::default(), &plant, bad_cost, &empty)
                .unwrap_err(),
            ReplenishError::StockoutCost(-1.0)
        );
        let product = plant.products[0].id.clone();
        let negative = BTreeMap::from([(product.clone(), vec![3.0, -1.0])]);
        let e = ForecastReplenishment::new(
            BaselinePolicy::default(),
            &plant,
            ReplenishConfig::default(),
            &negative,
        )
        .unwrap_err();
        assert!(e.to_string().contains(&product), "{e}");
        let unknown = BTreeMap::from([("NOPE".to_string(), vec![1.0])]);
        assert!(matches!(
            ForecastReplenishment::new(
                BaselinePolicy::default(),
                &plant,
                ReplenishConfig::default(),
                &unknown
            ),
            Err(ReplenishError::Bom(_))
        ));
    }

    #[test]
    fn orders_received_but_not_issued_are_netted_out_of_the_position() {
        let plant = reference();
        let log = DecisionLog::new();
        let mut skill = ForecastReplenishment::new(
            BaselinePolicy::default(),
            &plant,
            ReplenishConfig::default(),
            &history(&plant, 84),
        )
        .unwrap()
        .with_log(log.clone(), Timestamp(0));
        // The first call of the day plans every material; plenty of stock buys nothing.
        let now = PlantTime::from_hours(1.0);
        assert!(skill.purchase(now, &views(&plant, |_| 1e6)).is_empty());
        let plans: Vec<ReplenishmentPlan> = skill.plans().map(|p| p.unwrap().clone()).collect();
        for plan in &plans {
            assert!(plan.reorder_point >= plan.lead_time_demand && plan.safety_stock >= 0.0);
        }
        // Stock just above every reorder point: still nothing to buy.
        let above = |i: usize| plans[i].reorder_point + 1.0;
        assert!(skill.purchase(now, &views(&plant, above)).is_empty());
        // A large order arrives: its materials are promised, so the same stock is now short
        // for every material the product uses, and only for those.
        let product = plant
            .products
            .iter()
            .position(|p| p.demand.is_some())
            .unwrap();
        let used: Vec<usize> = skill.needs[product].iter().map(|&(m, _)| m).collect();
        let order = OrderView {
            order: 0,
            product,
            quantity: 500,
            received: now,
            due: PlantTime::from_days(5.0),
        };
        assert_eq!(skill.release(now, &[order]), vec![0]);
        let bought = skill.purchase(now, &views(&plant, above));
        let mut materials: Vec<usize> = bought.iter().map(|r| r.material).collect();
        materials.sort_unstable();
        assert_eq!(materials, used);
        for r in &bought {
            let lot = plant.materials[r.material].order_qty;
            assert!(
                r.quantity >= lot && (r.quantity / lot).fract() == 0.0,
                "{r:?}"
            );
        }
        // Each material's forecast and each purchase are in the ledger queue; purchases cite
        // the forecast they rest on.
        let logged = log.drain_decisions();
        let forecasts = logged.iter().filter(|d| d.skill == "forecast").count();
        assert_eq!(forecasts, plant.materials.len());
        let purchases: Vec<&Decision> = logged
            .iter()
            .filter(|d| d.skill == "replenishment")
            .collect();
        assert_eq!(purchases.len(), bought.len());
        for p in purchases {
            assert!(p.inputs_ref.starts_with("decision:D-FC-"), "{p:?}");
            assert_eq!(p.executed_by, ExecutedBy::Auto);
            assert_eq!(p.output["action"], "order");
        }
        // Seeing the same order again does not promise its material twice.
        let allocated: Vec<f64> = skill.materials.iter().map(|m| m.allocated).collect();
        skill.release(now, &[order]);
        assert_eq!(
            allocated,
            skill
                .materials
                .iter()
                .map(|m| m.allocated)
                .collect::<Vec<_>>()
        );
    }
}
