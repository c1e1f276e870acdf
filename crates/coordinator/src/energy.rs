//! The tariff in the shared plan: an energy-intensive machine (a furnace) that comes free during
//! a dear tariff period waits for the cheaper one that follows — when every job waiting for it
//! has the slack to wait — so its load moves out of peak hours.

use aifactory_core::{Decision, DecisionLog, ExecutedBy, LifecycleStage, Timestamp};
use aifactory_plant::{MachineId, MasterData, PlantTime, Policy, QueuedOp};
use aifactory_skills::log::SkillLog;
use std::sync::Arc;

/// Hold only when waiting saves at least this much per hour held (currency per hour): the run
/// power above idle times the price step.
const MIN_SAVING_PER_H: f64 = 30.0;
/// Never hold longer than this.
const MAX_HOLD_MS: u64 = 4 * 3_600_000;
/// Every waiting job must still have this much time to its due date after the hold.
const MIN_SLACK_MS: u64 = 48 * 3_600_000;

/// Holds energy-intensive machines through dear tariff periods; every other decision is the
/// inner policy's.
#[derive(Debug)]
pub struct TariffAware<P> {
    inner: P,
    master: Arc<MasterData>,
    machine_ids: Vec<String>,
    ledger: Option<SkillLog>,
}

impl<P: Policy> TariffAware<P> {
    pub fn new(inner: P, master: Arc<MasterData>) -> Self {
        let machine_ids = master.machine_ids().map(str::to_owned).collect();
        TariffAware {
            inner,
            master,
            machine_ids,
            ledger: None,
        }
    }

    pub fn with_log(mut self, log: DecisionLog, start: Timestamp) -> Self {
        self.ledger = Some(SkillLog::new(log, start, "EN"));
        self
    }
}

impl<P: Policy> aifactory_plant::Layer for TariffAware<P> {
    type Inner = P;
    fn inner(&self) -> &P {
        &self.inner
    }
    fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }
    fn label(&self) -> &str {
        "tariff"
    }

    fn hold_until(
        &mut self,
        now: PlantTime,
        machine: MachineId,
        candidates: &[QueuedOp],
    ) -> Option<PlantTime> {
        if let Some(t) = self.inner.hold_until(now, machine, candidates) {
            return Some(t);
        }
        let (run_kw, idle_kw) = self.master.power_kw(machine)?;
        let (price, change) = self.master.tariff_at(now);
        let (next_price, _) = self.master.tariff_at(change);
        let saving = (run_kw - idle_kw) * (price - next_price);
        let hold_ms = change.0.saturating_sub(now.0);
        if saving < MIN_SAVING_PER_H || hold_ms == 0 || hold_ms > MAX_HOLD_MS {
            return None;
        }
        let slack_ok = candidates
            .iter()
            .all(|op| op.due.0 >= change.0.saturating_add(MIN_SLACK_MS));
        if !slack_ok {
            return None;
        }
        if let Some(log) = &mut self.ledger {
            let id = self
                .machine_ids
                .get(machine)
                .cloned()
                .unwrap_or_else(|| format!("#{machine}"));
            log.record(now, |decision, at| Decision {
                id: decision,
                at,
                skill: "scheduling".to_owned(),
                stage: LifecycleStage::Production,
                inputs_ref: format!("tariff; queue:{id}:{}", candidates.len()),
                model: "tariff-hold".to_owned(),
                model_version: "1/slack-48h".to_owned(),
                output: serde_json::json!({
                    "machine": id,
                    "action": "hold_for_tariff",
                    "hold_h": hold_ms as f64 / 3_600_000.0,
                    "price_now": price,
                    "price_after": next_price,
                    "saving_per_h": saving,
                    "jobs_waiting": candidates.len(),
                }),
                confidence: None,
                executed_by: ExecutedBy::Auto,
                outcome: None,
            });
        }
        Some(change)
    }
}
