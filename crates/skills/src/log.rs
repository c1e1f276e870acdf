//! How a skill running inside a twin policy writes its decisions: numbered ids per skill, twin
//! time turned into plant time, handed to the caller's [`DecisionLog`].

use aifactory_core::{Decision, DecisionLog, LedgerRecord, Outcome, Timestamp};
use aifactory_plant::PlantTime;

#[derive(Debug, Clone)]
pub struct SkillLog {
    log: DecisionLog,
    start_ms: i64,
    prefix: &'static str,
    next: u64,
}

impl SkillLog {
    /// Decisions get ids `D-{prefix}-000001`, …; `start` is the plant's day zero.
    pub fn new(log: DecisionLog, start: Timestamp, prefix: &'static str) -> Self {
        SkillLog {
            log,
            start_ms: start.0,
            prefix,
            next: 0,
        }
    }

    /// Another skill's log into the same ledger, numbering its own ids `D-{prefix}-…`.
    pub fn with_prefix(&self, prefix: &'static str) -> SkillLog {
        SkillLog::new(self.log.clone(), Timestamp(self.start_ms), prefix)
    }

    /// Plant time of twin time `now`.
    pub fn at(&self, now: PlantTime) -> Timestamp {
        Timestamp(
            self.start_ms
                .saturating_add(i64::try_from(now.0).unwrap_or(i64::MAX)),
        )
    }

    /// The id the next decision will get.
    pub fn next_id(&self) -> String {
        format!("D-{}-{:06}", self.prefix, self.next + 1)
    }

    /// Logs the decision `build` makes from its id and time; returns the id.
    pub fn record(
        &mut self,
        now: PlantTime,
        build: impl FnOnce(String, Timestamp) -> Decision,
    ) -> String {
        let id = self.next_id();
        self.next += 1;
        self.log.push(build(id.clone(), self.at(now)));
        id
    }

    /// Queues the measured outcome of decision `id`.
    pub fn outcome(
        &self,
        now: PlantTime,
        id: &str,
        measured: serde_json::Value,
        success: Option<bool>,
    ) {
        self.log.push_record(LedgerRecord::Outcome {
            decision: id.to_owned(),
            outcome: Outcome {
                measured_at: self.at(now),
                measured,
                success,
            },
        });
    }

    /// Queues a model update of `skill`'s `model`.
    pub fn model_update(
        &self,
        now: PlantTime,
        skill: &str,
        model: &str,
        versions: (String, String),
        trigger: String,
    ) {
        self.log.push_record(LedgerRecord::ModelUpdate {
            at: self.at(now),
            skill: skill.to_owned(),
            model: model.to_owned(),
            from_version: versions.0,
            to_version: versions.1,
            trigger,
        });
    }
}
