//! The `Decision` record: the unit of the decision ledger. Every AI output that can change the
//! plant becomes one of these *before* it is executed; its outcome is filled in once measured.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The five stages of the production cycle the programme names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleStage {
    Design,
    Testing,
    Production,
    Management,
    Sales,
}

impl LifecycleStage {
    pub const ALL: [LifecycleStage; 5] = [
        LifecycleStage::Design,
        LifecycleStage::Testing,
        LifecycleStage::Production,
        LifecycleStage::Management,
        LifecycleStage::Sales,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleStage::Design => "design",
            LifecycleStage::Testing => "testing",
            LifecycleStage::Production => "production",
            LifecycleStage::Management => "management",
            LifecycleStage::Sales => "sales",
        }
    }
}

/// Who carried a decision out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutedBy {
    /// A guarded command issued by the coordinator without a person in the loop.
    Auto,
    /// A person approved and executed it.
    Human,
    /// An AI agent executed it through its tools.
    Agent,
    /// Recorded as advice only; nobody executed it.
    None,
}

impl ExecutedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutedBy::Auto => "auto",
            ExecutedBy::Human => "human",
            ExecutedBy::Agent => "agent",
            ExecutedBy::None => "none",
        }
    }
}

/// A word that does not name a known variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{given}`; expected one of: {expected}")]
pub struct UnknownVariant {
    pub what: &'static str,
    pub given: String,
    pub expected: &'static str,
}

impl FromStr for LifecycleStage {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LifecycleStage::ALL
            .into_iter()
            .find(|stage| stage.as_str() == s)
            .ok_or_else(|| UnknownVariant {
                what: "lifecycle stage",
                given: s.to_owned(),
                expected: "design, testing, production, management, sales",
            })
    }
}

impl FromStr for ExecutedBy {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            ExecutedBy::Auto,
            ExecutedBy::Human,
            ExecutedBy::Agent,
            ExecutedBy::None,
        ]
        .into_iter()
        .find(|who| who.as_str() == s)
        .ok_or_else(|| UnknownVariant {
            what: "executor",
            given: s.to_owned(),
            expected: "auto, human, agent, none",
        })
    }
}

impl fmt::Display for LifecycleStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ExecutedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened after a decision was executed, measured rather than assumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub measured_at: Timestamp,
    /// The measured values, e.g. `{"tardiness_h": 0.0}`.
    pub measured: serde_json::Value,
    /// Whether the outcome met what the decision expected.
    pub success: Option<bool>,
}

/// One AI output that can change the plant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Unique within a ledger; chosen by the caller (e.g. `"D-20260302-000017"`).
    pub id: String,
    pub at: Timestamp,
    /// The skill that produced it, e.g. `"rul"`, `"scheduling"`.
    pub skill: String,
    pub stage: LifecycleStage,
    /// A reference to the inputs it was computed from (a query, a window, a snapshot id).
    pub inputs_ref: String,
    pub model: String,
    pub model_version: String,
    /// The decision itself, e.g. `{"machine": "TURN-01", "action": "preventive_maintenance"}`.
    pub output: serde_json::Value,
    /// In [0, 1] where the skill can say; `None` where it cannot.
    pub confidence: Option<f64>,
    pub executed_by: ExecutedBy,
    pub outcome: Option<Outcome>,
}

/// What one ledger entry records: a decision, the measured outcome of an earlier one, or a
/// model update. The ledger (crate `assess`) chains these; skills hand them over through a
/// [`DecisionLog`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LedgerRecord {
    /// A decision as made, before it was executed (its `outcome` is left empty: outcomes are
    /// appended as their own entries when measured).
    Decision(Decision),
    /// The measured effect of an earlier decision.
    Outcome { decision: String, outcome: Outcome },
    /// A model retrained or replaced, with what triggered it (e.g. outcomes that missed).
    ModelUpdate {
        at: Timestamp,
        skill: String,
        model: String,
        from_version: String,
        to_version: String,
        trigger: String,
    },
}

impl LedgerRecord {
    pub fn at(&self) -> Timestamp {
        match self {
            LedgerRecord::Decision(d) => d.at,
            LedgerRecord::Outcome { outcome, .. } => outcome.measured_at,
            LedgerRecord::ModelUpdate { at, .. } => *at,
        }
    }
}

/// Where skills running inside a policy hand their decisions (and, in a closed loop, the
/// outcomes they measured and the model updates they made), in the order they happened, for
/// the caller to write to the ledger before the twin (or plant) acts on them. Cheap to clone:
/// clones share one queue.
#[derive(Debug, Clone, Default)]
pub struct DecisionLog {
    queue: std::sync::Arc<std::sync::Mutex<Vec<LedgerRecord>>>,
}

impl DecisionLog {
    pub fn new() -> Self {
        DecisionLog::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<LedgerRecord>> {
        // A panic elsewhere while holding the lock leaves a valid Vec: keep using it.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn push(&self, decision: Decision) {
        self.lock().push(LedgerRecord::Decision(decision));
    }

    /// Queues an outcome or a model update (or a decision).
    pub fn push_record(&self, record: LedgerRecord) {
        self.lock().push(record);
    }

    /// Takes every record logged so far, oldest first.
    pub fn drain(&self) -> Vec<LedgerRecord> {
        std::mem::take(&mut *self.lock())
    }

    /// Takes every record logged so far and keeps the decisions, for callers that have only
    /// decisions to take (tests of a skill that logs nothing else).
    pub fn drain_decisions(&self) -> Vec<Decision> {
        self.drain()
            .into_iter()
            .filter_map(|r| match r {
                LedgerRecord::Decision(d) => Some(d),
                _ => None,
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod log_tests {
    use super::*;

    #[test]
    fn clones_share_one_queue_in_order() {
        let log = DecisionLog::new();
        let writer = log.clone();
        for i in 0..3 {
            writer.push(Decision {
                id: format!("D-{i}"),
                at: Timestamp(i),
                skill: "s".into(),
                stage: LifecycleStage::Production,
                inputs_ref: String::new(),
                model: "m".into(),
                model_version: "1".into(),
                output: serde_json::Value::Null,
                confidence: None,
                executed_by: ExecutedBy::Auto,
                outcome: None,
            });
        }
        let ids: Vec<String> = log.drain_decisions().into_iter().map(|d| d.id).collect();
        assert_eq!(ids, ["D-0", "D-1", "D-2"]);
        assert!(log.is_empty() && writer.is_empty());
    }
}
