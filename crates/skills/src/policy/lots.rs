//! Lot sizing at release: each released order is opened as lots of nearly equal size (no tail lot
//! of a few units paying a whole set-up) started with a scrap allowance learnt from the plant's
//! own yields, so a lot's scrap rarely needs a make-up work order of its own — which pays every
//! set-up of the routing again for a handful of units. Good units beyond what the order needs go
//! to the plant's finished stock and serve the next order or shortfall of the product.
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
    /// The chance a lot may still fall short (one-sided normal quantile below).
    pub shortfall_risk: f64,
    /// Yield assumed for a step before the plant has shown it, and how many units it weighs.
    pub prior_yield: f64,
    pub prior_units: f64,
    /// No lot starts more than this multiple of what it must deliver.
    pub max_allowance: f64,
}

impl Default for LotConfig {
    fn default() -> Self {
        LotConfig {
            shortfall_risk: 0.1,
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

/// The units to start so that, each unit good with probability `yield_`, at least `required`
/// come out good with probability about `1 - risk` (normal approximation of the binomial),
/// capped at `max_allowance × required`.
pub fn planned_quantity(required: u32, yield_: f64, risk: f64, max_allowance: f64) -> u32 {
    if required == 0 || !yield_.is_finite() || yield_ <= 0.0 || yield_ >= 1.0 {
        return required;
    }
    let z = normal_quantile(1.0 - risk.clamp(1e-6, 0.5));
    let r = f64::from(required);
    // n·y − z·√(n·y·(1−y)) = r, solved for √n.
    let s = z * (yield_ * (1.0 - yield_)).sqrt();
    let root = (s + (s * s + 4.0 * yield_ * r).sqrt()) / (2.0 * yield_);
    let cap = (r * max_allowance.max(1.0)).floor();
    (root * root).ceil().min(cap).max(r) as u32
}

/// The standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9).
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
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
                    / ((good + scrapped) as f64 + config.prior_units)
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
                entry.0 += good;
                entry.1 += scrapped;
            }
            EventKind::WorkOrderReleased => {
                // A top-level work order of a sized order: one of its lots, or a make-up.
                let top_level = event.detail.get("parent").is_none_or(|p| p.is_null());
                if let (true, Some(order)) = (
                    top_level,
                    event.detail.get("sales_order").and_then(|v| v.as_str()),
                ) && let Some(sized) = state.open.get_mut(order)
                {
                    sized.work_orders += 1;
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
    /// Product ids and routing lengths, in the plant file's order.
    products: Vec<(String, usize)>,
}

impl<P: Policy> LotSizing<P> {
    pub fn new(
        inner: P,
        shared: SharedLots,
        config: LotConfig,
        products: Vec<(String, usize)>,
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
        let Some((product, steps)) = self.products.get(order.product) else {
            return self.inner.lots(now, order, lot_size);
        };
        let yield_ = self.shared.product_yield(product, *steps, &self.config);
        let c = self.config;
        let lots: Vec<Lot> = equal_lots(order.quantity, lot_size)
            .into_iter()
            .map(|required| Lot {
                required,
                planned: planned_quantity(required, yield_, c.shortfall_risk, c.max_allowance),
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
                    "lots": lots
                        .iter()
                        .map(|l| serde_json::json!({ "required": l.required, "planned": l.planned }))
                        .collect::<Vec<_>>(),
                }),
                confidence: Some(1.0 - c.shortfall_risk),
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
    fn the_allowance_grows_with_scrap_and_stays_within_its_cap() {
        assert_eq!(planned_quantity(60, 1.0, 0.1, 1.5), 60);
        let at_2 = planned_quantity(60, 0.98, 0.1, 1.5);
        let at_10 = planned_quantity(60, 0.90, 0.1, 1.5);
        assert!(at_2 > 60 && at_2 < at_10, "{at_2} {at_10}");
        // Started units times yield cover what is required, with a margin for the spread.
        assert!(f64::from(at_10) * 0.9 > 60.0 + 1.28 * (f64::from(at_10) * 0.09).sqrt() - 1.0);
        assert_eq!(planned_quantity(60, 0.2, 0.1, 1.5), 90);
        assert_eq!(planned_quantity(0, 0.9, 0.1, 1.5), 0);
        assert_eq!(planned_quantity(10, f64::NAN, 0.1, 1.5), 10);
    }

    #[test]
    fn the_normal_quantile_matches_its_table() {
        assert!((normal_quantile(0.9) - 1.281_551_6).abs() < 1e-6);
        assert!((normal_quantile(0.5)).abs() < 1e-9);
        assert!((normal_quantile(0.001) + 3.090_232_3).abs() < 1e-6);
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

        let mut policy = LotSizing::new(
            aifactory_plant::BaselinePolicy::default(),
            shared.clone(),
            config,
            vec![("GEAR".to_owned(), 1)],
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
