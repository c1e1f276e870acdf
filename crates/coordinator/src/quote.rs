//! Capable-to-promise from the live schedule: every new sales order is quoted by inserting it
//! into the plan the scheduling skill last posted on the board, and the quote cites that plan.

use crate::closed_loop::ClosedLoop;
use aifactory_core::{Decision, DecisionLog, ExecutedBy, LifecycleStage, Timestamp};
use aifactory_plant::{OrderView, PlantTime, Policy};
use aifactory_schedule::{Alternative, Job, Operation};
use aifactory_skills::board::PlanBoard;
use aifactory_skills::ctp;
use aifactory_skills::log::SkillLog;
use std::collections::BTreeSet;

/// Model id and version written into quotes.
const MODEL_ID: &str = "ctp-insertion";
const MODEL_VERSION: &str = "1/tabu-weighted-tardiness";

/// Tabu iterations per quote: a quote is asked for on every order, so it is cheaper than a
/// replan (which still runs at full budget).
const QUOTE_ITERATIONS: u64 = 300;

/// Quotes each order it sees; every decision is the inner policy's.
#[derive(Debug)]
pub struct Quoting<P> {
    inner: P,
    board: PlanBoard,
    /// Per product: per step, (machine, set-up s, s per unit) of each eligible machine.
    routings: Vec<Vec<Vec<(usize, f64, f64)>>>,
    quoted: BTreeSet<usize>,
    ledger: Option<SkillLog>,
    /// Closed loop: quotes await their delivery there.
    closed_loop: Option<ClosedLoop>,
    seed: u64,
}

impl<P: Policy> Quoting<P> {
    /// `routings[product]` as [`aifactory_plant::MasterData::routing`] gives them.
    pub fn new(
        inner: P,
        board: PlanBoard,
        routings: Vec<Vec<Vec<(usize, f64, f64)>>>,
        seed: u64,
    ) -> Self {
        Quoting {
            inner,
            board,
            routings,
            quoted: BTreeSet::new(),
            ledger: None,
            closed_loop: None,
            seed,
        }
    }

    /// Each quote's outcome (delivery against the promise) is measured by the loop.
    pub fn with_closed_loop(mut self, closed_loop: ClosedLoop) -> Self {
        self.closed_loop = Some(closed_loop);
        self
    }

    pub fn with_log(mut self, log: DecisionLog, start: Timestamp) -> Self {
        self.ledger = Some(SkillLog::new(log, start, "CTP"));
        self
    }

    fn quote(&mut self, now: PlantTime, order: &OrderView) {
        let board = self.board.lock();
        let Some(live) = &board.live_plan else {
            return;
        };
        let Some(routing) = self.routings.get(order.product) else {
            return;
        };
        let seconds = |t: PlantTime| ((t.0 as f64 - live.at.0 as f64) / 1000.0).round() as i64;
        let release = seconds(now).max(0);
        let job = Job {
            release,
            due: Some(seconds(order.due).max(release)),
            weight: f64::from(order.quantity),
            family: Some(order.product),
            operations: routing
                .iter()
                .map(|alternatives| Operation {
                    alternatives: alternatives
                        .iter()
                        .map(|&(machine, setup_s, unit_s)| Alternative {
                            machine,
                            duration: (setup_s + unit_s * f64::from(order.quantity))
                                .ceil()
                                .max(1.0) as i64,
                        })
                        .collect(),
                    frozen: None,
                })
                .collect(),
        };
        let problem = live.problem.clone();
        let plan_decision = live.decision.clone();
        let plan_at = live.at;
        drop(board);
        let Ok(quote) = ctp::quote(&problem, &job, QUOTE_ITERATIONS, self.seed) else {
            // A plan the quoting solver cannot take gets no quote rather than a made-up one.
            return;
        };
        let Some(log) = &mut self.ledger else {
            return;
        };
        // The twin's sales-order numbering (its events name orders the same way).
        let order_id = format!("SO-{:06}", order.order + 1);
        let mut inputs_ref = format!("order:{order_id}");
        if let Some(id) = plan_decision {
            inputs_ref.push_str(" decision:");
            inputs_ref.push_str(&id);
        }
        let promised_ms = plan_at.0 as f64 + quote.completion as f64 * 1000.0;
        let promised_at = log.at(PlantTime(promised_ms.max(0.0) as u64));
        let id = log.record(now, |id, at| Decision {
            id,
            at,
            skill: "ctp".to_owned(),
            stage: LifecycleStage::Sales,
            inputs_ref,
            model: MODEL_ID.to_owned(),
            model_version: MODEL_VERSION.to_owned(),
            output: serde_json::json!({
                "order": order_id,
                "quantity": order.quantity,
                "promised_at_ms": promised_at.0,
                "lead_time_h": (promised_ms - now.0 as f64) / 3_600_000.0,
                "meets_requested_date": quote.meets_request,
                "added_weighted_tardiness_s": quote.added_tardiness,
            }),
            confidence: None,
            executed_by: ExecutedBy::Auto,
            outcome: None,
        });
        if let Some(closed) = &self.closed_loop {
            closed.register_quote(order_id, id, promised_at.0);
        }
    }
}

impl<P: Policy> aifactory_plant::Layer for Quoting<P> {
    type Inner = P;
    fn inner(&self) -> &P {
        &self.inner
    }
    fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }
    fn label(&self) -> &str {
        "ctp"
    }

    fn release(&mut self, now: PlantTime, pending: &[OrderView]) -> Vec<usize> {
        for order in pending {
            if self.quoted.insert(order.order) {
                self.quote(now, order);
            }
        }
        self.inner.release(now, pending)
    }
}
