//! Commands a plant accepts and the acknowledgements it returns, and the pure bookkeeping that
//! turns a command's acknowledgements into its decision's outcome.
//!
//! A command carries the ledger decision it executes (written before the command leaves), an
//! id that makes a resend harmless, and an expiry after which the plant must not act on it. A
//! plant answers with acknowledgements in the order received → accepted → completed (or
//! rejected after received, failed after accepted, expired before completion); the last one
//! settles the command. Acknowledgements travel over networks: repeats and stale ones are
//! normal and are told apart from contradictions, which are refused with the reason.

use crate::MasterData;
use crate::policy::Lot;
use aifactory_core::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// What a command asks the plant to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Take the machine out for preventive maintenance as soon as it is free.
    StartMaintenance { machine: String },
    /// Run process parameter `param` at `value` on the machine from its next operation on.
    SetPoint {
        machine: String,
        param: String,
        value: f64,
    },
    /// The order in which the machine should take the work waiting for it: the next time it
    /// is free, it starts the first of `jobs` that waits there and can start.
    DispatchList {
        machine: String,
        jobs: Vec<DispatchJob>,
    },
    /// Keep the machine idle until `until` (ms since the epoch) although work waits for it:
    /// the plan has better work arriving soon.
    Hold { machine: String, until: Timestamp },
    /// Release these sales orders to the floor (the plant opens their work orders).
    Release {
        orders: Vec<String>,
        /// The work orders to open for some of them, by order id, where the decision sized them
        /// otherwise than the plant's standard lots (absent: the plant's own rule). What the
        /// plant's finished stock covers is taken off the last lots.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        lots: BTreeMap<String, Vec<Lot>>,
    },
    /// Place a purchase order for `quantity` of `material` (in its unit).
    Purchase { material: String, quantity: f64 },
    /// Run a trial batch of `product`'s routing step `step` (0-based) at these parameter
    /// values, in the step's parameter order, and report its yield as the completed
    /// acknowledgement's read-back.
    TrialBatch {
        product: String,
        step: usize,
        values: Vec<f64>,
    },
}

/// One entry of a dispatch list: a work order's routing step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchJob {
    pub order: String,
    pub step: usize,
}

impl Action {
    /// The machine it is for; `None` for plant-wide commands (releases, purchases, trials).
    pub fn machine(&self) -> Option<&str> {
        match self {
            Action::StartMaintenance { machine }
            | Action::SetPoint { machine, .. }
            | Action::DispatchList { machine, .. }
            | Action::Hold { machine, .. } => Some(machine),
            Action::Release { .. } | Action::Purchase { .. } | Action::TrialBatch { .. } => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Action::StartMaintenance { .. } => "start_maintenance",
            Action::SetPoint { .. } => "set_point",
            Action::DispatchList { .. } => "dispatch_list",
            Action::Hold { .. } => "hold",
            Action::Release { .. } => "release",
            Action::Purchase { .. } => "purchase",
            Action::TrialBatch { .. } => "trial_batch",
        }
    }

    /// Why the plant described by `master` cannot carry this out, if it cannot: a machine or
    /// parameter it does not have, or a value that is not finite.
    pub fn refusal(&self, master: &MasterData) -> Option<String> {
        if let Some(machine) = self.machine()
            && master.machine_index(machine).is_none()
        {
            return Some(format!("machine `{machine}` is not in the plant"));
        }
        match self {
            Action::Purchase { material, quantity } => {
                if master.material_index(material).is_none() {
                    return Some(format!("material `{material}` is not in the plant"));
                }
                if !(quantity.is_finite() && *quantity > 0.0) {
                    return Some(format!("quantity {quantity} is not a positive number"));
                }
            }
            Action::TrialBatch {
                product,
                step,
                values,
            } => {
                let Some(p) = master.product_index(product) else {
                    return Some(format!("product `{product}` is not in the plant"));
                };
                if *step >= master.steps(p) {
                    return Some(format!("product `{product}` has no routing step {step}"));
                }
                if values.iter().any(|v| !v.is_finite()) {
                    return Some("a trial value is not a finite number".to_owned());
                }
            }
            Action::Release { orders, .. } if orders.is_empty() => {
                return Some("the release names no order".to_owned());
            }
            Action::Release { orders, lots } => {
                for (order, lots) in lots {
                    if !orders.contains(order) {
                        return Some(format!(
                            "lots are given for `{order}`, which is not released"
                        ));
                    }
                    if lots.is_empty() {
                        return Some(format!("the lots of `{order}` are empty"));
                    }
                    if let Some(i) = lots
                        .iter()
                        .position(|l| l.required == 0 || l.planned < l.required)
                    {
                        return Some(format!(
                            "lot {} of `{order}` requires {} units and starts {}: a lot must \
                             require some and start at least as many",
                            i + 1,
                            lots[i].required,
                            lots[i].planned
                        ));
                    }
                }
            }
            _ => {}
        }
        if let Action::SetPoint { param, value, .. } = self {
            let known = master.plant().products.iter().any(|p| {
                p.routing
                    .iter()
                    .any(|s| s.params.iter().any(|q| q.name == *param))
            });
            if !known {
                return Some(format!("no routing step has parameter `{param}`"));
            }
            if !value.is_finite() {
                return Some(format!("value {value} of `{param}` is not a finite number"));
            }
        }
        if let Action::DispatchList { jobs, .. } = self
            && jobs.is_empty()
        {
            return Some("the dispatch list is empty".to_owned());
        }
        None
    }
}

/// One command to a plant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Unique per plant; a command received twice under one id is carried out once.
    pub id: String,
    /// The ledger decision this command executes; `None` for a host application's own command
    /// (a Sparkplug DCMD, an OPC UA write) that no decision of ours made.
    pub decision: Option<String>,
    /// After this plant time the plant must not act on it; `None`: it never expires.
    pub expires: Option<Timestamp>,
    #[serde(flatten)]
    pub action: Action,
}

/// How far a command got, as the plant (or, for expiry, the runtime) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    Received,
    Accepted,
    Rejected,
    Completed,
    Failed,
    Expired,
}

impl AckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AckStatus::Received => "received",
            AckStatus::Accepted => "accepted",
            AckStatus::Rejected => "rejected",
            AckStatus::Completed => "completed",
            AckStatus::Failed => "failed",
            AckStatus::Expired => "expired",
        }
    }

    /// Whether this status settles the command: nothing after it changes the outcome.
    pub fn is_final(self) -> bool {
        !matches!(self, AckStatus::Received | AckStatus::Accepted)
    }

    /// Whether the command did what it asked.
    pub fn succeeded(self) -> bool {
        self == AckStatus::Completed
    }
}

/// One acknowledgement of a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub command: String,
    pub status: AckStatus,
    pub at: Timestamp,
    /// Why it was rejected, failed or expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a set-point: the value the plant runs at, read back after the write (a controller
    /// may clamp it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_back: Option<f64>,
}

impl Ack {
    pub fn new(command: &str, status: AckStatus, at: Timestamp) -> Ack {
        Ack {
            command: command.to_owned(),
            status,
            at,
            reason: None,
            read_back: None,
        }
    }

    pub fn because(mut self, reason: impl Into<String>) -> Ack {
        self.reason = Some(reason.into());
        self
    }
}

/// Why a command did not leave.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    #[error("this plant takes no commands")]
    NotAccepted,
    #[error("the plant's command channel is closed: {0}")]
    Closed(String),
    #[error("command `{0}` was already sent")]
    Duplicate(String),
}

/// Where commands to a plant go: the twin's inbox, or a connector to a real plant. Sending only
/// hands the command over; what became of it comes back as acknowledgements.
pub trait CommandSink: Send + Sync {
    fn send(&self, command: Command) -> Result<(), SendError>;
}

/// A function is a sink: for tests and for adapters that only forward.
impl<F> CommandSink for F
where
    F: Fn(Command) -> Result<(), SendError> + Send + Sync,
{
    fn send(&self, command: Command) -> Result<(), SendError> {
        self(command)
    }
}

/// An acknowledgement that cannot be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AckError {
    #[error("acknowledgement for command `{0}`, which was never sent (or was long settled)")]
    UnknownCommand(String),
    #[error("command `{command}` was already settled as {settled}; `{got}` came after")]
    AfterSettled {
        command: String,
        settled: &'static str,
        got: &'static str,
    },
    #[error("command `{command}` cannot be {got} after it was {was}")]
    Contradicts {
        command: String,
        was: &'static str,
        got: &'static str,
    },
}

/// A command's last word: its decision's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settled {
    pub command: Command,
    pub ack: Ack,
    /// When it was handed to the sink.
    pub sent: Timestamp,
}

/// What one acknowledgement did.
#[derive(Debug, Clone, PartialEq)]
pub enum AckEffect {
    /// The command moved on to this (not final) status.
    Progressed(AckStatus),
    /// The command is settled.
    Settled(Box<Settled>),
    /// A repeat, or a status the command is already past (networks reorder): nothing changes.
    Stale,
}

#[derive(Debug, Clone)]
struct Open {
    command: Command,
    sent: Timestamp,
    status: Option<AckStatus>,
}

/// Commands sent and not yet settled, and the final status of the most recent settled ones (so a
/// late acknowledgement is told apart from one for a command never sent).
#[derive(Debug, Clone, Default)]
pub struct AckTracker {
    open: BTreeMap<String, Open>,
    settled: BTreeMap<String, (AckStatus, Command)>,
    settled_order: VecDeque<String>,
}

/// Settled commands remembered for telling late acknowledgements apart.
const SETTLED_KEPT: usize = 10_000;

impl AckTracker {
    pub fn new() -> AckTracker {
        AckTracker::default()
    }

    /// Records that `command` left at `at`; an id already in use is refused.
    pub fn sent(&mut self, command: &Command, at: Timestamp) -> Result<(), SendError> {
        if self.open.contains_key(&command.id) || self.settled.contains_key(&command.id) {
            return Err(SendError::Duplicate(command.id.clone()));
        }
        self.open.insert(
            command.id.clone(),
            Open {
                command: command.clone(),
                sent: at,
                status: None,
            },
        );
        Ok(())
    }

    /// Applies one acknowledgement.
    pub fn ack(&mut self, ack: Ack) -> Result<AckEffect, AckError> {
        if let Some(&(settled, _)) = self.settled.get(&ack.command) {
            return if settled == ack.status {
                Ok(AckEffect::Stale)
            } else if !ack.status.is_final() {
                // Received or accepted arriving after the last word: the network reordered.
                Ok(AckEffect::Stale)
            } else {
                Err(AckError::AfterSettled {
                    command: ack.command,
                    settled: settled.as_str(),
                    got: ack.status.as_str(),
                })
            };
        }
        let Some(open) = self.open.get_mut(&ack.command) else {
            return Err(AckError::UnknownCommand(ack.command));
        };
        let was = open.status;
        match (was, ack.status) {
            (Some(w), s) if !s.is_final() && s <= w => return Ok(AckEffect::Stale),
            // A controller that refused a command after accepting it failed to carry it out.
            (Some(AckStatus::Accepted), AckStatus::Rejected) => {
                return Err(AckError::Contradicts {
                    command: ack.command,
                    was: AckStatus::Accepted.as_str(),
                    got: AckStatus::Rejected.as_str(),
                });
            }
            _ => {}
        }
        if !ack.status.is_final() {
            open.status = Some(ack.status);
            return Ok(AckEffect::Progressed(ack.status));
        }
        let Some(open) = self.open.remove(&ack.command) else {
            return Err(AckError::UnknownCommand(ack.command));
        };
        self.remember(&open.command, ack.status);
        Ok(AckEffect::Settled(Box::new(Settled {
            command: open.command,
            sent: open.sent,
            ack,
        })))
    }

    /// Settles as expired every open command whose expiry is before `now`.
    pub fn expire(&mut self, now: Timestamp) -> Vec<Settled> {
        let due: Vec<String> = self
            .open
            .iter()
            .filter(|(_, o)| o.command.expires.is_some_and(|e| e < now))
            .map(|(id, _)| id.clone())
            .collect();
        due.into_iter()
            .filter_map(|id| {
                let open = self.open.remove(&id)?;
                self.remember(&open.command, AckStatus::Expired);
                let reason = match open.status {
                    Some(s) => format!("not completed before it expired (last: {})", s.as_str()),
                    None => "no acknowledgement before it expired".to_owned(),
                };
                Some(Settled {
                    ack: Ack::new(&id, AckStatus::Expired, now).because(reason),
                    command: open.command,
                    sent: open.sent,
                })
            })
            .collect()
    }

    /// The command `id`, while it is open.
    pub fn open(&self, id: &str) -> Option<&Command> {
        self.open.get(id).map(|o| &o.command)
    }

    /// The command `id`, open or among the recently settled.
    pub fn command(&self, id: &str) -> Option<&Command> {
        self.open(id)
            .or_else(|| self.settled.get(id).map(|(_, c)| c))
    }

    /// Open commands with their latest status (`None`: nothing heard yet).
    pub fn pending(&self) -> impl Iterator<Item = (&Command, Option<AckStatus>)> {
        self.open.values().map(|o| (&o.command, o.status))
    }

    fn remember(&mut self, command: &Command, status: AckStatus) {
        self.settled
            .insert(command.id.clone(), (status, command.clone()));
        self.settled_order.push_back(command.id.clone());
        while self.settled_order.len() > SETTLED_KEPT {
            if let Some(old) = self.settled_order.pop_front() {
                self.settled.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(id: &str, expires: Option<i64>) -> Command {
        Command {
            id: id.to_owned(),
            decision: Some(format!("D-{id}")),
            expires: expires.map(Timestamp),
            action: Action::StartMaintenance {
                machine: "TURN-01".to_owned(),
            },
        }
    }

    fn ack(id: &str, status: AckStatus, at: i64) -> Ack {
        Ack::new(id, status, Timestamp(at))
    }

    #[test]
    fn a_release_with_lots_is_refused_when_a_lot_cannot_be_opened() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../plants/hangzhou-auto-parts.toml");
        let master =
            MasterData::new(aifactory_core::Plant::load(&path).unwrap_or_else(|e| panic!("{e}")));
        let release = |lots: Vec<(&str, Vec<Lot>)>| Action::Release {
            orders: vec!["SO-000001".into()],
            lots: lots.into_iter().map(|(o, l)| (o.to_owned(), l)).collect(),
        };
        let lot = |required, planned| Lot { required, planned };
        assert_eq!(
            release(vec![("SO-000001", vec![lot(30, 32), lot(30, 30)])]).refusal(&master),
            None
        );
        assert_eq!(release(Vec::new()).refusal(&master), None);
        let refused = |a: Action| a.refusal(&master).unwrap_or_default();
        assert!(refused(release(vec![("SO-000002", vec![lot(5, 5)])])).contains("`SO-000002`"));
        assert!(refused(release(vec![("SO-000001", Vec::new())])).contains("empty"));
        let fewer = refused(release(vec![("SO-000001", vec![lot(30, 32), lot(30, 29)])]));
        assert!(
            fewer.contains("lot 2") && fewer.contains("starts 29"),
            "{fewer}"
        );
        assert!(refused(release(vec![("SO-000001", vec![lot(0, 3)])])).contains("lot 1"));
        // Lots travel only where given: a plain release reads as before.
        let plain: Action = serde_json::from_str(r#"{"action":"release","orders":["SO-000001"]}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plain, release(Vec::new()));
        assert!(
            !serde_json::to_string(&plain)
                .unwrap_or_default()
                .contains("lots")
        );
    }

    #[test]
    fn a_command_settles_on_its_last_word_and_repeats_are_stale() {
        let mut t = AckTracker::new();
        t.sent(&command("C1", None), Timestamp(0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.ack(ack("C1", AckStatus::Received, 1)),
            Ok(AckEffect::Progressed(AckStatus::Received))
        );
        assert_eq!(
            t.ack(ack("C1", AckStatus::Accepted, 2)),
            Ok(AckEffect::Progressed(AckStatus::Accepted))
        );
        assert_eq!(
            t.ack(ack("C1", AckStatus::Received, 3)),
            Ok(AckEffect::Stale)
        );
        match t.ack(ack("C1", AckStatus::Completed, 4)) {
            Ok(AckEffect::Settled(s)) => {
                assert_eq!(s.ack.status, AckStatus::Completed);
                assert_eq!(s.command.decision.as_deref(), Some("D-C1"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            t.ack(ack("C1", AckStatus::Completed, 5)),
            Ok(AckEffect::Stale)
        );
        assert_eq!(
            t.ack(ack("C1", AckStatus::Accepted, 5)),
            Ok(AckEffect::Stale)
        );
        assert!(matches!(
            t.ack(ack("C1", AckStatus::Failed, 6)),
            Err(AckError::AfterSettled { .. })
        ));
        assert_eq!(t.pending().count(), 0);
    }

    #[test]
    fn unknown_commands_duplicates_and_contradictions_are_refused() {
        let mut t = AckTracker::new();
        assert!(matches!(
            t.ack(ack("nope", AckStatus::Accepted, 1)),
            Err(AckError::UnknownCommand(id)) if id == "nope"
        ));
        t.sent(&command("C1", None), Timestamp(0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.sent(&command("C1", None), Timestamp(0)),
            Err(SendError::Duplicate("C1".into()))
        );
        t.ack(ack("C1", AckStatus::Accepted, 1))
            .unwrap_or_else(|e| panic!("{e}"));
        let refused = t.ack(ack("C1", AckStatus::Rejected, 2));
        assert!(
            matches!(refused, Err(AckError::Contradicts { .. })),
            "{refused:?}"
        );
        // Rejected straight after received is the normal refusal.
        t.sent(&command("C2", None), Timestamp(0))
            .unwrap_or_else(|e| panic!("{e}"));
        t.ack(ack("C2", AckStatus::Received, 1))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            t.ack(ack("C2", AckStatus::Rejected, 2).because("interlock")),
            Ok(AckEffect::Settled(s)) if s.ack.reason.as_deref() == Some("interlock")
        ));
    }

    #[test]
    fn commands_past_their_expiry_settle_as_expired_once() {
        let mut t = AckTracker::new();
        t.sent(&command("C1", Some(100)), Timestamp(0))
            .unwrap_or_else(|e| panic!("{e}"));
        t.sent(&command("C2", None), Timestamp(0))
            .unwrap_or_else(|e| panic!("{e}"));
        t.sent(&command("C3", Some(500)), Timestamp(0))
            .unwrap_or_else(|e| panic!("{e}"));
        t.ack(ack("C1", AckStatus::Accepted, 10))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(t.expire(Timestamp(100)).is_empty(), "not before its time");
        let expired = t.expire(Timestamp(101));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].command.id, "C1");
        assert_eq!(expired[0].ack.status, AckStatus::Expired);
        assert!(
            expired[0]
                .ack
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("accepted"))
        );
        assert!(t.expire(Timestamp(101)).is_empty(), "once");
        // A completion that arrives after the runtime gave up contradicts the record.
        assert!(matches!(
            t.ack(ack("C1", AckStatus::Completed, 102)),
            Err(AckError::AfterSettled { .. })
        ));
        assert_eq!(t.pending().count(), 2);
    }

    #[test]
    fn commands_travel_as_json_with_their_action_flattened() {
        let c = Command {
            id: "C-7".into(),
            decision: Some("H-1".into()),
            expires: Some(Timestamp(1_000)),
            action: Action::SetPoint {
                machine: "TURN-01".into(),
                param: "cutting_speed".into(),
                value: 205.0,
            },
        };
        let json = serde_json::to_value(&c).unwrap_or_default();
        assert_eq!(json["action"], "set_point");
        assert_eq!(json["param"], "cutting_speed");
        let back: Command = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, c);
    }

    mod property {
        use super::*;
        use proptest::prelude::*;

        fn status() -> impl Strategy<Value = AckStatus> {
            prop_oneof![
                Just(AckStatus::Received),
                Just(AckStatus::Accepted),
                Just(AckStatus::Rejected),
                Just(AckStatus::Completed),
                Just(AckStatus::Failed),
                Just(AckStatus::Expired),
            ]
        }

        proptest! {
            /// Whatever acknowledgements arrive, in whatever order, each sent command settles at
            /// most once, and a settled one never reopens.
            #[test]
            fn a_command_settles_at_most_once(
                acks in prop::collection::vec((0usize..4, status()), 0..40),
                expire_at in prop::option::of(0i64..50),
            ) {
                let mut t = AckTracker::new();
                for i in 0..3 {
                    t.sent(&command(&format!("C{i}"), Some(25)), Timestamp(0))
                        .unwrap_or_else(|e| panic!("{e}"));
                }
                let mut settled = std::collections::BTreeMap::<String, usize>::new();
                for (n, (i, s)) in acks.into_iter().enumerate() {
                    if expire_at == Some(n as i64) {
                        for s in t.expire(Timestamp(n as i64)) {
                            *settled.entry(s.command.id).or_default() += 1;
                        }
                    }
                    if let Ok(AckEffect::Settled(s)) = t.ack(ack(&format!("C{i}"), s, n as i64)) {
                        *settled.entry(s.command.id.clone()).or_default() += 1;
                    }
                }
                for (id, times) in &settled {
                    prop_assert_eq!(*times, 1, "{} settled {} times", id, times);
                    prop_assert!(t.open(id).is_none());
                }
                prop_assert!(!settled.contains_key("C3"), "never sent, never settled");
                for i in 0..3 {
                    prop_assert!(t.command(&format!("C{i}")).is_some(), "still known");
                }
            }
        }
    }
}
