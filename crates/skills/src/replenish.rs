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
use crate::forecast::{
    DemandForecaster, MaterialTargets, ReplenishmentPlan, lead_time_sigma, normal_quantile,
    purchase_for,
};
use crate::log::SkillLog;
use aifactory_core::{Decision, DecisionLog, ExecutedBy, LifecycleStage, Plant, Timestamp};
use aifactory_plant::{MaterialView, OrderView, PlantTime, Policy, PurchaseRequest};
use std::collections::BTreeMap;

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

#[derive(Debug, Clone)]
struct MaterialState {
    id: String,
    /// Today's forecast decision, which purchases cite.
    forecast_decision: Option<String>,
    /// In a closed loop: the last forecast's decision, the day it was made (index into
    /// `daily`) and its first day's mean and interval, awaiting that day's actual demand.
    awaiting: Option<(String, usize, f64, f64, f64)>,
    /// Whole days of lead time plus jitter: the longest horizon the reorder point protects.
    protection_days: usize,
    lead_days: f64,
    jitter_days: f64,
    holding_per_unit_day: f64,
    lot: f64,
    /// Work orders one shortage holds up: released lots per sales order, demand-weighted over
    /// the products that use the material.
    orders_per_shortage: f64,

    /// Material demand per day, the seeded history first, then day by day of the run.
    daily: Vec<f64>,
    allocated: f64,
    /// On hand + on order after the last purchase call, plus what it ordered.
    expected_position: Option<f64>,
    targets: Option<MaterialTargets>,
    plan: Option<ReplenishmentPlan>,
}

/// The replenishment skill wrapped around another policy, which keeps every other decision
/// and buys the materials the skill cannot plan yet.
#[derive(Debug, Clone)]
pub struct ForecastReplenishment<P> {
    pub inner: P,
    config: ReplenishConfig,
    forecaster: DemandForecaster,
    z: f64,
    /// Material index → units per unit of product, per product index.
    needs: Vec<Vec<(usize, f64)>>,
    materials: Vec<MaterialState>,
    /// Days of seeded history before the run's day 0.
    history_days: usize,
    seen_orders: Vec<bool>,
    planned_day: Option<i64>,
    /// Where forecasts (sales stage) and purchases (management stage) are logged.
    ledger: Option<(SkillLog, SkillLog)>,
    /// Closed loop (tier 3): each forecast's first day is scored against the demand that came
    /// (an outcome), and the weekly refits on that demand are model updates.
    closed_loop: bool,
    /// (outcomes since the last model update, of which outside the interval, updates so far).
    loop_counts: (u64, u64, u64),
}

const DAY_MS: u64 = 86_400_000;

fn day_of(t: PlantTime) -> i64 {
    i64::try_from(t.0 / DAY_MS).unwrap_or(i64::MAX)
}

impl<P: Policy> ForecastReplenishment<P> {
    /// A skill for `plant`, seeded with `history`: units ordered per product and day for the
    /// days before the run (e.g. the ERP's order book; may be empty). All series must have
    /// the same length.
    pub fn new(
        inner: P,
        plant: &Plant,
        config: ReplenishConfig,
        history: &BTreeMap<String, Vec<f64>>,
    ) -> Result<Self, ReplenishError> {
        if !(config.service_level > 0.0 && config.service_level < 1.0) {
            return Err(ReplenishError::ServiceLevel(config.service_level));
        }
        if config.window_days < 21 || config.sigma_origins == 0 || config.sigma_step_days == 0 {
            return Err(ReplenishError::Config);
        }
        let z = normal_quantile(config.service_level)
            .map_err(|_| ReplenishError::ServiceLevel(config.service_level))?;
        if let Some(cost) = config.stockout_cost
            && !(cost.is_finite() && cost >= 0.0)
        {
            return Err(ReplenishError::StockoutCost(cost));
        }
        for (product, series) in history {
            if let Some(bad) = series.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
                return Err(ReplenishError::History {
                    product: product.clone(),
                    reason: format!("{bad} is not a non-negative finite number of units"),
                });
            }
        }
        let material_index: BTreeMap<&str, usize> = plant
            .materials
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.as_str(), i))
            .collect();
        let mut needs: Vec<Vec<(usize, f64)>> = Vec::with_capacity(plant.products.len());
        for product in &plant.products {
            let one = BTreeMap::from([(product.id.clone(), vec![1.0])]);
            let per_unit = bom::explode(plant, &one)?;
            needs.push(
                per_unit
                    .iter()
                    .filter(|(_, v)| v[0] > 0.0)
                    .filter_map(|(id, v)| material_index.get(id.as_str()).map(|&i| (i, v[0])))
                    .collect(),
            );
        }
        // Work orders per sales order, weighted by each product's use of each material.
        let mut weighted = vec![(0.0_f64, 0.0_f64); plant.materials.len()];
        for (product, needs) in plant.products.iter().zip(&needs) {
            let Some(demand) = &product.demand else {
                continue;
            };
            let lots = (demand.order_size / f64::from(product.lot_size.max(1))).max(1.0);
            for &(material, per_unit) in needs {
                let weight = demand.units_per_day * per_unit;
                weighted[material].0 += weight * lots;
                weighted[material].1 += weight;
            }
        }
        let exploded = bom::explode(plant, history)?;
        let history_days = history.values().map(Vec::len).next().unwrap_or(0);
        let materials = plant
            .materials
            .iter()
            .zip(&weighted)
            .map(|(m, &(lots, weight))| MaterialState {
                id: m.id.clone(),
                forecast_decision: None,
                awaiting: None,
                holding_per_unit_day: m.holding_cost_per_unit_day,
                lot: m.order_qty,
                orders_per_shortage: if weight > 0.0 { lots / weight } else { 1.0 },
                protection_days: (m.lead_time_days + m.lead_time_jitter_days).ceil().max(1.0)
                    as usize,
                lead_days: m.lead_time_days,
                jitter_days: m.lead_time_jitter_days,
                daily: exploded
                    .get(&m.id)
                    .cloned()
                    .unwrap_or_else(|| vec![0.0; history_days]),
                allocated: 0.0,
                expected_position: None,
                targets: None,
                plan: None,
            })
            .collect();
        Ok(ForecastReplenishment {
            inner,
            config,
            forecaster: DemandForecaster::default(),
            z,
            needs,
            materials,
            history_days,
            seen_orders: Vec::new(),
            planned_day: None,
            ledger: None,
            closed_loop: false,
            loop_counts: (0, 0, 0),
        })
    }

    /// Logs each day's material-demand forecast and every purchase (citing the forecast it
    /// rests on) to `log`; `start` is the plant's day zero.
    /// Closes the loop: forecasts are scored against the demand that came, and the refits that
    /// take it in are logged as model updates (weekly).
    pub fn with_closed_loop(mut self) -> Self {
        self.closed_loop = true;
        self
    }

    pub fn with_log(mut self, log: DecisionLog, start: Timestamp) -> Self {
        self.ledger = Some((
            SkillLog::new(log.clone(), start, "FC"),
            SkillLog::new(log, start, "REP"),
        ));
        self
    }

    /// The current plan of each material (`None` while the inner policy buys it).
    pub fn plans(&self) -> impl Iterator<Item = Option<&ReplenishmentPlan>> {
        self.materials.iter().map(|m| m.plan.as_ref())
    }

    /// Records newly seen sales orders as material demand on the day they were received.
    fn record_orders(&mut self, pending: &[OrderView]) {
        for order in pending {
            if self.seen_orders.len() <= order.order {
                self.seen_orders.resize(order.order + 1, false);
            }
            if std::mem::replace(&mut self.seen_orders[order.order], true) {
                continue;
            }
            let day = self.history_days as i64 + day_of(order.received).max(0);
            let Some(needs) = self.needs.get(order.product) else {
                continue;
            };
            for &(material, per_unit) in needs {
                let units = per_unit * f64::from(order.quantity);
                let state = &mut self.materials[material];
                let day = day as usize;
                if state.daily.len() <= day {
                    state.daily.resize(day + 1, 0.0);
                }
                state.daily[day] += units;
                state.allocated += units;
            }
        }
    }

    /// In a closed loop, once a week: the forecasts of the week are refit on the demand their
    /// outcomes measured — a model update in the ledger.
    fn record_refit(&mut self, today: i64) {
        let (outcomes, outside, updates) = self.loop_counts;
        if !self.closed_loop || today % 7 != 0 || outcomes == 0 {
            return;
        }
        let Some((forecasts, _)) = &self.ledger else {
            return;
        };
        let now = PlantTime(u64::try_from(today.max(0)).unwrap_or(0) * DAY_MS);
        let version = |n: u64| format!("{}/refit-{n}", crate::forecast::MODEL_VERSION);
        forecasts.model_update(
            now,
            "forecast",
            crate::forecast::MODEL_ID,
            (version(updates), version(updates + 1)),
            format!(
                "{outcomes} forecast outcomes this week, {outside} outside the interval: refit on the newest {} days",
                self.config.window_days
            ),
        );
        self.loop_counts = (0, 0, updates + 1);
    }

    /// Recomputes every material's reorder point from the complete days before `today`.
    fn plan_day(&mut self, today: i64) {
        self.plan_day_materials(today);
        self.record_refit(today);
    }

    fn plan_day_materials(&mut self, today: i64) {
        let end = self.history_days + today.max(0) as usize;
        let config = self.config;
        for state in &mut self.materials {
            if state.daily.len() < end {
                state.daily.resize(end, 0.0);
            }
            if let (true, Some((id, day, mean, lower, upper)), Some((forecasts, _))) = (
                self.closed_loop,
                state.awaiting.take(),
                self.ledger.as_ref(),
            ) && day < end
            {
                let actual = state.daily[day];
                let inside = actual >= lower && actual <= upper;
                let now = PlantTime(u64::try_from(today.max(0)).unwrap_or(0) * DAY_MS);
                forecasts.outcome(
                    now,
                    &id,
                    serde_json::json!({
                        "item": state.id,
                        "actual": actual,
                        "forecast": mean,
                        "error": actual - mean,
                        "inside_interval": inside,
                    }),
                    Some(inside),
                );
                self.loop_counts.0 += 1;
                self.loop_counts.1 += u64::from(!inside);
            }
            let history = &state.daily[..end];
            state.plan = None;
            state.targets = None;
            if history.len() < config.history_needed(state.protection_days) {
                continue;
            }
            let recent = &history[history.len() - 28..];
            let daily_mean = recent.iter().sum::<f64>() / recent.len() as f64;
            // The longest lead time: material netted for orders already received leaves the
            // forecast to cover only orders still to come, over the whole lead time.
            let horizon = (state.lead_days + state.jitter_days).max(0.5);
            let days = (horizon.ceil() as usize).max(1);
            let window = &history[history.len() - config.window_days..];
            let Ok(forecast) = self
                .forecaster
                .fit(window)
                .and_then(|f| f.forecast(days, 0.8))
            else {
                continue;
            };
            let Ok(sigma_days) = lead_time_sigma(
                history,
                &self.forecaster,
                days,
                config.window_days,
                config.sigma_origins,
                config.sigma_step_days,
            ) else {
                continue;
            };
            let share = horizon / days as f64;
            let demand = forecast.total(days) * share;
            state.forecast_decision = self.ledger.as_mut().map(|(forecasts, _)| {
                let now = PlantTime(u64::try_from(today.max(0)).unwrap_or(0) * DAY_MS);
                forecasts.record(now, |id, at| Decision {
                    id,
                    at,
                    skill: "forecast".to_owned(),
                    stage: LifecycleStage::Sales,
                    inputs_ref: format!("orders:{}d", config.window_days),
                    model: crate::forecast::MODEL_ID.to_owned(),
                    model_version: crate::forecast::MODEL_VERSION.to_owned(),
                    output: serde_json::json!({
                        "item": state.id,
                        "unit": "units/day",
                        "mean": forecast.mean,
                        "interval": {
                            "level": forecast.level,
                            "lower": forecast.lower,
                            "upper": forecast.upper,
                        },
                        "error_sigma_over_horizon": sigma_days,
                    }),
                    confidence: None,
                    // Handed to purchasing automatically (the reorder point below).
                    executed_by: ExecutedBy::Auto,
                    outcome: None,
                })
            });
            if self.closed_loop
                && let Some(id) = &state.forecast_decision
            {
                let first = |v: &[f64]| v.first().copied().unwrap_or(0.0);
                state.awaiting = Some((
                    id.clone(),
                    end,
                    first(&forecast.mean),
                    first(&forecast.lower),
                    first(&forecast.upper),
                ));
            }
            let sigma = sigma_days * share.sqrt();
            let z = match config.stockout_cost {
                Some(cost) => cost_optimal_z(
                    cost,
                    state.orders_per_shortage,
                    daily_mean,
                    state.holding_per_unit_day,
                    sigma,
                    state.lot,
                ),
                None => self.z,
            };
            let safety_stock = (z * sigma).max(0.0);
            let reorder_point = demand + safety_stock;
            state.targets = Some(MaterialTargets {
                reorder_point,
                order_up_to: reorder_point,
            });
            state.plan = Some(ReplenishmentPlan {
                lead_time_demand: demand,
                z,
                safety_stock,
                reorder_point,
                order_up_to: reorder_point,
                position: f64::NAN,
                order_qty: 0.0,
            });
        }
    }
}

impl<P: Policy> aifactory_plant::Layer for ForecastReplenishment<P> {
    type Inner = P;
    fn inner(&self) -> &P {
        &self.inner
    }
    fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }
    fn label(&self) -> &str {
        "forecast-replenishment"
    }

    fn release(&mut self, now: PlantTime, pending: &[OrderView]) -> Vec<usize> {
        self.record_orders(pending);
        self.inner.release(now, pending)
    }

    fn purchase(&mut self, now: PlantTime, stock: &[MaterialView]) -> Vec<PurchaseRequest> {
        let today = day_of(now);
        if self.planned_day != Some(today) {
            self.planned_day = Some(today);
            self.plan_day(today);
        }
        let mut orders = Vec::new();
        let mut rest = Vec::new();
        for view in stock {
            let Some(state) = self.materials.get_mut(view.material) else {
                rest.push(*view);
                continue;
            };
            // What the stock says was issued since the last call shrinks the allocation.
            let position = view.on_hand + view.on_order;
            if let Some(expected) = state.expected_position {
                let issued = (expected - position).max(0.0);
                state.allocated = (state.allocated - issued).max(0.0);
            }
            state.expected_position = Some(position);
            match state.targets {
                Some(targets) => {
                    let net = MaterialView {
                        on_hand: view.on_hand - state.allocated,
                        ..*view
                    };
                    if let Some(request) = purchase_for(&net, &targets) {
                        state.expected_position = Some(position + request.quantity);
                        if let Some(plan) = &mut state.plan {
                            plan.position = net.on_hand + net.on_order;
                            plan.order_qty = request.quantity;
                            if let Some((_, purchases)) = &mut self.ledger {
                                let cites = state
                                    .forecast_decision
                                    .as_ref()
                                    .map_or_else(String::new, |f| format!("decision:{f}"));
                                let level = 0.5 * libm::erfc(-plan.z / std::f64::consts::SQRT_2);
                                let plan = plan.clone();
                                let item = state.id.clone();
                                purchases.record(now, |id, at| {
                                    crate::forecast::replenishment_decision(
                                        id,
                                        at,
                                        &item,
                                        cites,
                                        &plan,
                                        level,
                                        ExecutedBy::Auto,
                                    )
                                });
                            }
                        }
                        orders.push(request);
                    }
                }
                None => rest.push(*view),
            }
        }
        if !rest.is_empty() {
            for request in self.inner.purchase(now, &rest) {
                if let Some(state) = self.materials.get_mut(request.material)
                    && let Some(expected) = &mut state.expected_position
                {
                    *expected += request.quantity.max(0.0);
                }
                orders.push(request);
            }
        }
        orders
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aifactory_plant::BaselinePolicy;
    use rand::{Rng, SeedableRng};

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
