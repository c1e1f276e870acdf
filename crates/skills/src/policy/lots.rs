//! Lot sizing at release: each released order is opened as lots of nearly equal size (no tail lot
//! of a few units paying a whole set-up) started with a scrap allowance learnt from the plant's
//! own yields, so a lot's scrap rarely needs a make-up work order of its own — which pays every
//! set-up of the routing again for a handful of units. The allowance is chosen by machine time:
//! units are added while the set-up time of the make-up they are expected to save exceeds their
//! own processing time, so a routing of long units and short set-ups (a loom) gets none. Good
//! units beyond what the order needs go to the plant's finished stock and serve the next order or
//! shortfall of the product.
//!
//! [`LotSizing`] is the policy layer; [`LotFeed`] is its observer, which learns each product's
//! step yields from `operation_completed` events and measures each sizing decision's outcome
//! (did the order need a make-up work order?) when the order completes.

use aifactory_core::{Decision, EventKind, ExecutedBy, LifecycleStage, PlantEvent};
use aifactory_plant::{Lot, OrderView, PlantTime, Policy};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::log::SkillLog;

/// Model id in the ledger.
pub const MODEL_ID: &str = "lot-sizing/equal-lots+yield-allowance";
pub const MODEL_VERSION: &str = "1";

/// How lots are sized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LotConfig {
    /// Yield assumed for a step before the plant has shown it, and how many units it weighs.
    pub prior_yield: f64,
    pub prior_units: f64,
    /// No lot starts more than this multiple of what it must deliver.
    pub max_allowance: f64,
}

impl Default for LotConfig {
    fn default() -> Self {
        LotConfig {
            prior_yield: 0.98,
            prior_units: 50.0,
            max_allowance: 1.5,
        }
    }
}

/// `quantity` as `round(quantity / lot_size)` lots (at least one) whose sizes differ by at most
/// one unit: the plant's lot size kept on average, without a small remainder lot.
pub fn equal_lots(quantity: u32, lot_size: u32) -> Vec<u32> {
    if quantity == 0 {
        return Vec::new();
    }
    let lot_size = lot_size.max(1);
    let n = ((f64::from(quantity) / f64::from(lot_size)).round() as u32).clamp(1, quantity);
    let (base, extra) = (quantity / n, quantity % n);
    (0..n).map(|i| base + u32::from(i < extra)).collect()
}

/// A product's routing in machine time: the set-ups a work order pays and the processing time of
/// one unit, summed over its steps (each step's eligible machines averaged).
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingTime {
    pub product: String,
    pub steps: usize,
    pub setup_s: f64,
    pub unit_s: f64,
}

/// The units to start for `required` good ones, each unit good with probability `yield_`: the
/// count that minimises expected machine time, `planned × unit_s` plus the chance the lot falls
/// short times the make-up's `setup_s` (normal approximation of the binomial), capped at
/// `max_allowance × required`.
pub fn planned_quantity(
    required: u32,
    yield_: f64,
    (setup_s, unit_s): (f64, f64),
    max_allowance: f64,
) -> u32 {
    if required == 0
        || !yield_.is_finite()
        || yield_ <= 0.0
        || yield_ >= 1.0
        || !(setup_s.is_finite() && unit_s.is_finite() && setup_s > 0.0 && unit_s >= 0.0)
    {
        return required;
    }
    let r = f64::from(required);
    let cap = (r * max_allowance.max(1.0)).floor().max(r) as u32;
    let expected_s = |n: u32| {
        let n = f64::from(n);
        let sd = (n * yield_ * (1.0 - yield_)).sqrt().max(1e-9);
        let short = normal_cdf((r - 0.5 - n * yield_) / sd);
        n * unit_s + short * setup_s
    };
    (required..=cap)
        .min_by(|a, b| expected_s(*a).total_cmp(&expected_s(*b)))
        .unwrap_or(required)
}

/// The standard normal distribution function (Abramowitz and Stegun 7.1.26, |error| < 1.5e-7).
fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// An order sized by a logged decision, waiting for its outcome.
#[derive(Debug, Clone)]
struct Sized {
    decision: String,
    lots: usize,
    work_orders: usize,
}

#[derive(Debug, Default)]
struct LotState {
    /// Units good and scrapped per (product id, routing step).
    steps: HashMap<(String, usize), (u64, u64)>,
    /// Orders sized with a decision, by sales-order id.
    open: HashMap<String, Sized>,
    log: Option<SkillLog>,
}

/// Yields and open decisions shared by [`LotSizing`] and its [`LotFeed`].
#[derive(Debug, Clone, Default)]
pub struct SharedLots(Arc<Mutex<LotState>>);

impl SharedLots {
    pub fn new(log: Option<SkillLog>) -> Self {
        SharedLots(Arc::new(Mutex::new(LotState {
            log,
            ..LotState::default()
        })))
    }

    /// The observer that feeds it.
    pub fn feed(&self) -> LotFeed {
        LotFeed(self.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LotState> {
        // A panic elsewhere cannot leave the counts half-written: each update is one insert.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The estimated share of a lot of `product` that comes out good over `steps` routing steps:
    /// each step's observed yield shrunk toward the prior.
    pub fn product_yield(&self, product: &str, steps: usize, config: &LotConfig) -> f64 {
        let state = self.lock();
        (0..steps)
            .map(|step| {
                let (good, scrapped) = state
                    .steps
                    .get(&(product.to_owned(), step))
                    .copied()
                    .unwrap_or((0, 0));
                (good as f64 + config.prior_yield * config.prior_units)
                    / (good.saturating_add(scrapped) as f64 + config.prior_units)
            })
            .product()
    }
}

/// Learns step yields and answers lot-sizing decisions from the plant's events.
#[derive(Debug, Clone)]
pub struct LotFeed(SharedLots);

impl aifactory_plant::Observer for LotFeed {
    fn wants_events(&self) -> bool {
        true
    }

    fn event(&mut self, event: PlantEvent) {
        let mut state = self.0.lock();
        match event.kind {
            EventKind::OperationCompleted => {
                let detail = &event.detail;
                let (Some(product), Some(step)) = (
                    detail.get("product").and_then(|v| v.as_str()),
                    detail.get("step").and_then(serde_json::Value::as_u64),
                ) else {
                    return;
                };
                let count = |key| detail.get(key).and_then(serde_json::Value::as_u64);
                let (good, scrapped) = (count("good").unwrap_or(0), count("scrapped").unwrap_or(0));
                let entry = state
                    .steps
                    .entry((product.to_owned(), step as usize))
                    .or_default();
                // Counts come from the plant: saturate rather than overflow on a bad one.
                entry.0 = entry.0.saturating_add(good);
                entry.1 = entry.1.saturating_add(scrapped);
            }
            EventKind::WorkOrderReleased => {
                // A top-level work order of a sized order: one of its lots, or a make-up.
                let top_level = event.detail.get("parent").is_none_or(|p| p.is_null());
                if let (true, Some(order)) = (
                    top_level,
                    event.detail.get("sales_order").and_then(|v| v.as_str()),
                ) && let Some(sized) = state.open.get_mut(order)
                {
                    sized.work_orders = sized.work_orders.saturating_add(1);
                }
            }
            EventKind::OrderCompleted => {
                let Some(order) = event.order.as_deref() else {
                    return;
                };
                let Some(sized) = state.open.remove(order) else {
                    return;
                };
                let late_h = event
                    .detail
                    .get("late_h")
                    .and_then(serde_json::Value::as_f64)
                    .unwrap_or(0.0);
                let make_ups = sized.work_orders.saturating_sub(sized.lots);
                if let Some(log) = &state.log {
                    let now = PlantTime(
                        u64::try_from(event.at.0.saturating_sub(log.at(PlantTime(0)).0))
                            .unwrap_or(0),
                    );
                    log.outcome(
                        now,
                        &sized.decision,
                        serde_json::json!({
                            "lots": sized.lots,
                            "make_up_work_orders": make_ups,
                            "late_h": late_h,
                        }),
                        Some(make_ups == 0),
                    );
                }
            }
            _ => {}
        }
    }
}

/// Opens released orders as equal lots with a learnt scrap allowance; everything else is the
/// inner policy's.
#[derive(Debug)]
pub struct LotSizing<P> {
    inner: P,
    shared: SharedLots,
    config: LotConfig,
    /// Each product's routing in machine time, in the plant file's order.
    products: Vec<RoutingTime>,
}

impl<P: Policy> LotSizing<P> {
    pub fn new(
        inner: P,
        shared: SharedLots,
        config: LotConfig,
        products: Vec<RoutingTime>,
    ) -> Self {
        LotSizing {
            inner,
            shared,
            config,
            products,
        }
    }
}

impl<P: Policy> aifactory_plant::Layer for LotSizing<P> {
    type Inner = P;
    fn inner(&self) -> &P {
        &self.inner
    }
    fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }
    fn label(&self) -> &str {
        "lots"
    }

    fn lots(&mut self, now: PlantTime, order: &OrderView, lot_size: u32) -> Vec<Lot> {
        let Some(routing) = self.products.get(order.product) else {
            return self.inner.lots(now, order, lot_size);
        };
        let product = &routing.product;
        let yield_ = self
            .shared
            .product_yield(product, routing.steps, &self.config);
        let c = self.config;
        let times = (routing.setup_s, routing.unit_s);
        let lots: Vec<Lot> = equal_lots(order.quantity, lot_size)
            .into_iter()
            .map(|required| Lot {
                required,
                planned: planned_quantity(required, yield_, times, c.max_allowance),
            })
            .collect();
        let order_id = format!("SO-{:06}", order.order + 1);
        let mut state = self.shared.lock();
        if let Some(log) = state.log.as_mut() {
            let id = log.record(now, |id, at| Decision {
                id,
                at,
                skill: "lot-sizing".to_owned(),
                stage: LifecycleStage::Production,
                inputs_ref: format!("order:{order_id}"),
                model: MODEL_ID.to_owned(),
                model_version: MODEL_VERSION.to_owned(),
                output: serde_json::json!({
                    "order": order_id,
                    "product": product,
                    "quantity": order.quantity,
                    "standard_lot": lot_size,
                    "expected_yield": yield_,
                    "routing_setup_s": routing.setup_s,
                    "unit_s": routing.unit_s,
                    "lots": lots
                        .iter()
                        .map(|l| serde_json::json!({ "required": l.required, "planned": l.planned }))
                        .collect::<Vec<_>>(),
                }),
                confidence: None,
                executed_by: ExecutedBy::Auto,
                outcome: None,
            });
            state.open.insert(
                order_id,
                Sized {
                    decision: id,
                    lots: lots.len(),
                    work_orders: 0,
                },
            );
        }
        lots
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aifactory_plant::lots_cover;

    #[test]
    fn equal_lots_keep_the_lot_size_on_average_and_leave_no_small_remainder() {
        assert_eq!(equal_lots(121, 60), vec![61, 60]);
        assert_eq!(equal_lots(150, 60), vec![50, 50, 50]);
        assert_eq!(equal_lots(20, 60), vec![20]);
        assert_eq!(equal_lots(0, 60), Vec::<u32>::new());
        assert_eq!(equal_lots(5, 0), vec![1, 1, 1, 1, 1]);
    }

    #[test]
    fn the_allowance_is_worth_its_machine_time() {
        // Short units, long set-ups: units are added against scrap, more the more scrap.
        let cheap = (7_200.0, 300.0);
        assert_eq!(planned_quantity(60, 1.0, cheap, 1.5), 60);
        let at_2 = planned_quantity(60, 0.98, cheap, 1.5);
        let at_10 = planned_quantity(60, 0.90, cheap, 1.5);
        assert!(at_2 > 60 && at_2 < at_10, "{at_2} {at_10}");
        // The expected shortfall of the chosen count is small; one unit fewer risks more.
        assert!(f64::from(at_10) * 0.9 > 60.0, "{at_10}");
        // Long units, short set-ups (a loom): a make-up is cheaper than spare units.
        assert_eq!(planned_quantity(12, 0.97, (15_300.0, 12_000.0), 1.5), 12);
        // Where even the cap would fall short, spare units only add time; inputs that say
        // nothing leave the lot as required.
        assert_eq!(planned_quantity(60, 0.2, cheap, 1.5), 60);
        assert!(planned_quantity(60, 0.7, cheap, 1.5) <= 90);
        assert_eq!(planned_quantity(0, 0.9, cheap, 1.5), 0);
        assert_eq!(planned_quantity(10, f64::NAN, cheap, 1.5), 10);
        assert_eq!(planned_quantity(10, 0.9, (f64::NAN, 1.0), 1.5), 10);
    }

    #[test]
    fn the_normal_distribution_matches_its_table() {
        assert!((normal_cdf(1.281_551_6) - 0.9).abs() < 1e-6);
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-9);
        assert!((normal_cdf(-3.090_232_3) - 0.001).abs() < 1e-6);
    }

    fn event(kind: EventKind, order: &str, detail: serde_json::Value) -> PlantEvent {
        PlantEvent {
            at: aifactory_core::Timestamp(3_600_000),
            kind,
            machine: None,
            order: Some(order.to_owned()),
            detail,
        }
    }

    #[test]
    fn yields_are_learnt_from_operations_and_each_sizing_gets_its_outcome() {
        use aifactory_plant::{Layer, Observer};
        let log = aifactory_core::DecisionLog::new();
        let shared = SharedLots::new(Some(SkillLog::new(
            log.clone(),
            aifactory_core::Timestamp(0),
            "LOT",
        )));
        let mut feed = shared.feed();
        let config = LotConfig::default();
        let prior = shared.product_yield("GEAR", 1, &config);
        assert!((prior - config.prior_yield).abs() < 1e-12);
        for _ in 0..10 {
            feed.event(event(
                EventKind::OperationCompleted,
                "WO-000001",
                serde_json::json!({ "product": "GEAR", "step": 0, "good": 45, "scrapped": 5 }),
            ));
        }
        let learnt = shared.product_yield("GEAR", 1, &config);
        assert!(learnt < 0.92 && learnt > 0.89, "{learnt}");
        // A plant's bad counts neither panic nor poison the estimate of another step.
        for _ in 0..2 {
            feed.event(event(
                EventKind::OperationCompleted,
                "WO-000002",
                serde_json::json!({ "product": "GEAR", "step": 1, "good": u64::MAX, "scrapped": u64::MAX }),
            ));
        }
        feed.event(event(
            EventKind::OperationCompleted,
            "WO-000003",
            serde_json::json!({ "product": "GEAR", "step": "first", "good": "many" }),
        ));
        assert_eq!(shared.product_yield("GEAR", 1, &config), learnt);
        assert!(shared.product_yield("GEAR", 2, &config).is_finite());

        let mut policy = LotSizing::new(
            aifactory_plant::BaselinePolicy::default(),
            shared.clone(),
            config,
            vec![RoutingTime {
                product: "GEAR".to_owned(),
                steps: 1,
                setup_s: 3_600.0,
                unit_s: 60.0,
            }],
        );
        let view = OrderView {
            order: 6,
            product: 0,
            quantity: 121,
            received: PlantTime(0),
            due: PlantTime(86_400_000),
        };
        let lots = Layer::lots(&mut policy, PlantTime(1000), &view, 60);
        assert!(lots_cover(&lots, 121));
        assert_eq!(lots.len(), 2);
        assert!(lots.iter().all(|l| l.planned > l.required));
        for _ in 0..3 {
            feed.event(event(
                EventKind::WorkOrderReleased,
                "WO-000009",
                serde_json::json!({ "sales_order": "SO-000007", "parent": null }),
            ));
        }
        feed.event(event(
            EventKind::OrderCompleted,
            "SO-000007",
            serde_json::json!({ "late_h": 0.0 }),
        ));
        let records = log.drain();
        let outcome = records
            .iter()
            .find_map(|r| match r {
                aifactory_core::LedgerRecord::Outcome { decision, outcome } => {
                    Some((decision.clone(), outcome.clone()))
                }
                _ => None,
            })
            .expect("an outcome");
        assert_eq!(outcome.0, "D-LOT-000001");
        assert_eq!(outcome.1.success, Some(false));
        assert_eq!(outcome.1.measured["make_up_work_orders"], 1);
    }
}
