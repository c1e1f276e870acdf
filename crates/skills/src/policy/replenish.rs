//! Replenishment from forecasts as a policy layer: [`ForecastReplenishment`] refits each
//! material's demand and buys by the cost-optimal service level of [`crate::replenish`].

use crate::bom;
use crate::forecast::{
    DemandForecaster, MaterialTargets, ReplenishmentPlan, lead_time_sigma, normal_quantile,
    purchase_for,
};
use crate::log::SkillLog;
use crate::replenish::*;
use aifactory_core::{Decision, DecisionLog, ExecutedBy, LifecycleStage, Plant, Timestamp};
use aifactory_plant::{MaterialView, OrderView, PlantTime, Policy, PurchaseRequest};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub(crate) struct MaterialState {
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
    pub(crate) allocated: f64,
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
    pub(crate) needs: Vec<Vec<(usize, f64)>>,
    pub(crate) materials: Vec<MaterialState>,
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
