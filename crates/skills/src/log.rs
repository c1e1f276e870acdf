//! How a skill running inside a twin policy writes its decisions: numbered ids per skill, twin
//! time turned into plant time, handed to the caller's [`DecisionLog`].

use aifactory_core::{Decision, DecisionLog, Timestamp};
use aifactory_twin::SimTime;

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

    /// Plant time of twin time `now`.
    pub fn at(&self, now: SimTime) -> Timestamp {
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
        now: SimTime,
        build: impl FnOnce(String, Timestamp) -> Decision,
    ) -> String {
        let id = self.next_id();
        self.next += 1;
        self.log.push(build(id.clone(), self.at(now)));
        id
    }
}
