//! Commands from outside the plant's own policy — a host application's Sparkplug DCMD, an OPC UA
//! write, an operator — taken in at the next decision they concern, as a real machine controller
//! would: maintenance starts when the machine is next free, a set-point holds from the next
//! operation on (the twin clamps it into the parameter's range, as for any policy).
//!
//! Each command is acknowledged on the inbox (see [`Commanded`]) for the runtime to settle.
//!
//! Commands arrive when they arrive: a run that takes commands is only as repeatable as their
//! timing. Runs without an inbox stay deterministic from (plant, seed, policy).

use crate::model::PlantModel;
use aifactory_core::Timestamp;
use aifactory_plant::{Ack, AckStatus, Action, Command, CommandSink, SendError};
use aifactory_plant::{
    Lot, MachineId, MachineView, MasterData, OrderView, ParamSpec, PlantTime, Policy, QueuedOp,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

/// What became of the commands sent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandCounts {
    pub received: u64,
    /// Maintenance started, or a set-point used in an operation, because of a command.
    pub obeyed: u64,
    /// Naming a machine or parameter the plant does not have, or a value that is not finite.
    pub refused: u64,
    /// Sent again under an id already received: carried out once.
    pub duplicates: u64,
}

/// Ids of commands remembered for idempotency.
const SEEN_KEPT: usize = 10_000;

#[derive(Debug, Default)]
struct Inbox {
    waiting: Vec<Command>,
    acks: Vec<Ack>,
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
    counts: CommandCounts,
}

/// Where commands wait for the twin and its acknowledgements wait for the runtime; clones share
/// one queue.
#[derive(Debug, Clone, Default)]
pub struct CommandInbox(Arc<Mutex<Inbox>>);

impl CommandInbox {
    pub fn new() -> CommandInbox {
        CommandInbox::default()
    }

    fn inbox(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands a command to the twin; one under an id already received is counted and dropped.
    pub fn send(&self, command: Command) {
        let mut inbox = self.inbox();
        if !inbox.seen.insert(command.id.clone()) {
            inbox.counts.duplicates += 1;
            return;
        }
        inbox.seen_order.push_back(command.id.clone());
        while inbox.seen_order.len() > SEEN_KEPT {
            if let Some(old) = inbox.seen_order.pop_front() {
                inbox.seen.remove(&old);
            }
        }
        inbox.counts.received += 1;
        inbox.waiting.push(command);
    }

    pub fn counts(&self) -> CommandCounts {
        self.inbox().counts
    }

    /// The acknowledgements the twin gave since the last call, oldest first.
    pub fn take_acks(&self) -> Vec<Ack> {
        std::mem::take(&mut self.inbox().acks)
    }

    fn take(&self) -> Vec<Command> {
        std::mem::take(&mut self.inbox().waiting)
    }

    fn count(&self, f: impl FnOnce(&mut CommandCounts)) {
        f(&mut self.inbox().counts);
    }

    fn ack(&self, ack: Ack) {
        self.inbox().acks.push(ack);
    }
}

impl CommandSink for CommandInbox {
    fn send(&self, command: Command) -> Result<(), SendError> {
        CommandInbox::send(self, command);
        Ok(())
    }
}

/// A command accepted and not yet carried out.
#[derive(Debug, Clone)]
struct Waiting {
    id: String,
    expires: Option<Timestamp>,
}

/// A policy that obeys commands and otherwise leaves every decision to `inner`. It acknowledges
/// each command as a controller would: received and accepted (or rejected, with the reason) at
/// the next decision, completed when maintenance starts or the set-point is first used (with
/// the value used read back), expired when its time passed before that.
pub struct Commanded<P> {
    inner: P,
    inbox: CommandInbox,
    master: MasterData,
    /// The plant's start, for acknowledgement times and expiries.
    start: Timestamp,
    /// The latest plant time a decision was asked at.
    now: PlantTime,
    /// Parameter names per product and routing step, in the order of their specs.
    params: Vec<Vec<Vec<String>>>,
    maintenance: HashMap<MachineId, Vec<Waiting>>,
    set_points: HashMap<(MachineId, String), f64>,
    /// Set-point commands not yet used in an operation.
    set_points_waiting: HashMap<(MachineId, String), Waiting>,
    /// Per machine, the dispatch list it takes its next job from: (work-order number, step).
    dispatch_lists: HashMap<MachineId, (Waiting, Vec<(u32, usize)>)>,
    /// Per machine, a hold until a time (ms since the epoch), taken up the next time work waits.
    holds: HashMap<MachineId, (Waiting, Timestamp)>,
    /// How long a free machine with work waiting waits for a dispatch list before its own rules
    /// choose (a plant that lets a dispatcher decide); `None`: it never waits.
    dispatch_wait: Option<PlantTime>,
    /// Per machine, the end of the wait it is in, so it waits once per decision.
    waited_until: HashMap<MachineId, PlantTime>,
    /// Whether sales orders wait for a release command (a plant whose planning system
    /// releases work to the floor) instead of being released by the inner policy.
    releases_by_command: bool,
    /// Sales orders a release command named and the plant has not released yet.
    releases_waiting: HashMap<String, Waiting>,
    /// Lots a release command gave for an order, by order id, until the order is opened.
    lots_commanded: HashMap<String, Vec<Lot>>,
    /// Per release command, the orders it named that are still to be released.
    releases_left: HashMap<String, usize>,
}

/// The twin's work-order number in an id such as `WO-000017`.
fn work_order_number(id: &str) -> Option<u32> {
    id.strip_prefix("WO-")?.parse().ok()
}

impl<P> std::fmt::Debug for Commanded<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commanded")
            .field("maintenance", &self.maintenance)
            .field("set_points", &self.set_points)
            .finish_non_exhaustive()
    }
}

impl<P: Policy> Commanded<P> {
    pub fn new(inner: P, model: &PlantModel, inbox: CommandInbox) -> Commanded<P> {
        Commanded {
            inner,
            inbox,
            master: model.master().clone(),
            start: model.plant().start().0,
            now: PlantTime(0),
            params: model
                .products
                .iter()
                .map(|p| {
                    p.steps
                        .iter()
                        .map(|s| s.params.iter().map(|x| x.name.clone()).collect())
                        .collect()
                })
                .collect(),
            maintenance: HashMap::new(),
            set_points: HashMap::new(),
            set_points_waiting: HashMap::new(),
            dispatch_lists: HashMap::new(),
            holds: HashMap::new(),
            dispatch_wait: None,
            waited_until: HashMap::new(),
            releases_by_command: false,
            releases_waiting: HashMap::new(),
            lots_commanded: HashMap::new(),
            releases_left: HashMap::new(),
        }
    }

    /// Sales orders wait for a `release` command naming them; the inner policy releases none.
    /// Call [`crate::Simulation::review_releases`] when one comes, so it is taken up at once.
    pub fn releasing_on_command(mut self) -> Commanded<P> {
        self.releases_by_command = true;
        self
    }

    /// A machine that is free with work waiting and no dispatch list waits up to `wait` for one
    /// before its own rules choose.
    pub fn waiting_for_dispatch(mut self, wait: PlantTime) -> Commanded<P> {
        self.dispatch_wait = (wait.0 > 0).then_some(wait);
        self
    }

    fn at(&self) -> Timestamp {
        Timestamp(self.start.0 + self.now.0 as i64)
    }

    fn expired(&self, expires: Option<Timestamp>) -> bool {
        expires.is_some_and(|e| e < self.at())
    }

    fn ack(&self, id: &str, status: AckStatus) -> Ack {
        Ack::new(id, status, self.at())
    }

    /// `done` more of release command `id`'s orders are released. It completes once every
    /// order it named is; `unmet` settles it at once with that status and reason instead (it
    /// expired, or a newer command took over one of its orders).
    fn release_done(&mut self, id: &str, done: usize, unmet: Option<(AckStatus, &str)>) {
        let Some(left) = self.releases_left.get_mut(id) else {
            return;
        };
        *left = left.saturating_sub(done);
        if let Some((status, reason)) = unmet {
            self.releases_left.remove(id);
            self.releases_waiting.retain(|_, w| w.id != id);
            self.inbox
                .ack(self.ack(id, status).because(reason.to_owned()));
        } else if *left == 0 {
            self.releases_left.remove(id);
            self.inbox.ack(self.ack(id, AckStatus::Completed));
            self.inbox.count(|c| c.obeyed += 1);
        }
    }

    /// Takes in what arrived since the last decision.
    fn collect(&mut self) {
        for command in self.inbox.take() {
            self.inbox.ack(self.ack(&command.id, AckStatus::Received));
            if self.expired(command.expires) {
                self.inbox.ack(
                    self.ack(&command.id, AckStatus::Expired)
                        .because("it expired before the plant received it"),
                );
                continue;
            }
            if let Some(reason) = command.action.refusal(&self.master) {
                self.inbox.count(|c| c.refused += 1);
                self.inbox
                    .ack(self.ack(&command.id, AckStatus::Rejected).because(reason));
                continue;
            }
            if let Action::Release { orders, lots } = &command.action
                && self.releases_by_command
            {
                self.lots_commanded.extend(lots.clone());
                self.inbox.ack(self.ack(&command.id, AckStatus::Accepted));
                let waiting = Waiting {
                    id: command.id.clone(),
                    expires: command.expires,
                };
                let mut named = 0;
                for order in orders {
                    if let Some(older) =
                        self.releases_waiting.insert(order.clone(), waiting.clone())
                        && older.id != waiting.id
                    {
                        let reason = format!("superseded by command `{}`", waiting.id);
                        self.release_done(&older.id, 0, Some((AckStatus::Failed, &reason)));
                    }
                    named += 1;
                }
                *self.releases_left.entry(command.id).or_default() += named;
                continue;
            }
            let Some(machine) = command
                .action
                .machine()
                .and_then(|m| self.master.machine_index(m))
            else {
                self.inbox.count(|c| c.refused += 1);
                self.inbox.ack(
                    self.ack(&command.id, AckStatus::Rejected)
                        .because(format!(
                            "`{}` is not carried out by a running twin (only in lockstep, where the twin asks for it)",
                            command.action.name()
                        )),
                );
                continue;
            };
            self.inbox.ack(self.ack(&command.id, AckStatus::Accepted));
            let waiting = Waiting {
                id: command.id,
                expires: command.expires,
            };
            match command.action {
                Action::StartMaintenance { .. } => {
                    self.maintenance.entry(machine).or_default().push(waiting);
                }
                Action::SetPoint { param, value, .. } => {
                    if let Some(older) = self
                        .set_points_waiting
                        .insert((machine, param.clone()), waiting.clone())
                    {
                        self.inbox
                            .ack(self.ack(&older.id, AckStatus::Failed).because(format!(
                                "superseded by command `{}` before it was used",
                                waiting.id
                            )));
                    }
                    self.set_points.insert((machine, param), value);
                }
                Action::DispatchList { jobs, .. } => {
                    // An order the twin did not issue matches no candidate, so it is skipped.
                    let jobs = jobs
                        .iter()
                        .map(|j| (work_order_number(&j.order).unwrap_or(0), j.step))
                        .collect();
                    if let Some((older, _)) =
                        self.dispatch_lists.insert(machine, (waiting.clone(), jobs))
                    {
                        self.inbox.ack(
                            self.ack(&older.id, AckStatus::Failed)
                                .because(format!("superseded by command `{}`", waiting.id)),
                        );
                    }
                }
                Action::Hold { until, .. } => {
                    self.holds.insert(machine, (waiting, until));
                }
                Action::Release { .. } | Action::Purchase { .. } | Action::TrialBatch { .. } => {}
            }
        }
    }
}

impl<P: Policy> aifactory_plant::Layer for Commanded<P> {
    type Inner = P;
    fn inner(&self) -> &P {
        &self.inner
    }
    fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }
    fn label(&self) -> &str {
        "commands"
    }

    fn dispatch(&mut self, now: PlantTime, machine: MachineId, candidates: &[QueuedOp]) -> usize {
        self.now = now;
        self.collect();
        if let Some((w, jobs)) = self.dispatch_lists.remove(&machine) {
            if self.expired(w.expires) {
                self.inbox.ack(
                    self.ack(&w.id, AckStatus::Expired)
                        .because("the machine was not free before it expired"),
                );
            } else if let Some(pick) = jobs.iter().find_map(|&(job, step)| {
                candidates
                    .iter()
                    .position(|c| c.job == job && c.step == step)
            }) {
                self.inbox.ack(self.ack(&w.id, AckStatus::Completed));
                self.inbox.count(|c| c.obeyed += 1);
                return pick;
            } else {
                self.inbox.ack(
                    self.ack(&w.id, AckStatus::Failed)
                        .because("none of the listed jobs waits at this machine"),
                );
            }
        }
        self.inner.dispatch(now, machine, candidates)
    }

    fn hold_until(
        &mut self,
        now: PlantTime,
        machine: MachineId,
        candidates: &[QueuedOp],
    ) -> Option<PlantTime> {
        self.now = now;
        self.collect();
        if let Some((w, until)) = self.holds.remove(&machine) {
            if self.expired(w.expires) {
                self.inbox.ack(
                    self.ack(&w.id, AckStatus::Expired)
                        .because("no work waited at the machine before it expired"),
                );
            } else {
                self.inbox.ack(self.ack(&w.id, AckStatus::Completed));
                self.inbox.count(|c| c.obeyed += 1);
                return Some(PlantTime::since(self.start, until));
            }
        }
        if let Some(wait) = self.dispatch_wait
            && !self.dispatch_lists.contains_key(&machine)
        {
            match self.waited_until.get(&machine) {
                // Woken at the end of its wait: the rules (or a list that came) decide now.
                Some(end) if *end <= now => {
                    self.waited_until.remove(&machine);
                }
                Some(end) => return Some(*end),
                None => {
                    let end = PlantTime(now.0 + wait.0);
                    self.waited_until.insert(machine, end);
                    return Some(end);
                }
            }
        }
        self.waited_until.remove(&machine);
        self.inner.hold_until(now, machine, candidates)
    }

    fn release(&mut self, now: PlantTime, pending: &[OrderView]) -> Vec<usize> {
        self.now = now;
        self.collect();
        if !self.releases_by_command {
            return self.inner.release(now, pending);
        }
        let expired: Vec<String> = self
            .releases_waiting
            .values()
            .filter(|w| self.expired(w.expires))
            .map(|w| w.id.clone())
            .collect();
        for id in expired {
            let reason = "the orders were not released before it expired";
            self.release_done(&id, 0, Some((AckStatus::Expired, reason)));
        }
        let mut chosen = Vec::new();
        for (i, view) in pending.iter().enumerate() {
            let id = format!("SO-{:06}", view.order + 1);
            if let Some(w) = self.releases_waiting.remove(&id) {
                chosen.push(i);
                self.release_done(&w.id, 1, None);
            }
        }
        chosen
    }

    fn lots(&mut self, now: PlantTime, order: &OrderView, lot_size: u32) -> Vec<Lot> {
        match self
            .lots_commanded
            .remove(&format!("SO-{:06}", order.order + 1))
        {
            Some(lots) => lots,
            None => self.inner.lots(now, order, lot_size),
        }
    }

    fn start_maintenance(&mut self, view: &MachineView) -> bool {
        self.now = view.now;
        self.collect();
        let waiting = self.maintenance.remove(&view.machine).unwrap_or_default();
        let mut obeyed = false;
        for w in waiting {
            if self.expired(w.expires) {
                self.inbox.ack(
                    self.ack(&w.id, AckStatus::Expired)
                        .because("the machine was not free before it expired"),
                );
            } else {
                self.inbox.ack(self.ack(&w.id, AckStatus::Completed));
                obeyed = true;
            }
        }
        if obeyed {
            self.inbox.count(|c| c.obeyed += 1);
            return true;
        }
        self.inner.start_maintenance(view)
    }

    fn process_params(
        &mut self,
        machine: MachineId,
        product: usize,
        step: usize,
        specs: &[ParamSpec],
    ) -> Vec<f64> {
        self.collect();
        let mut values = self.inner.process_params(machine, product, step, specs);
        let names = self
            .params
            .get(product)
            .and_then(|p| p.get(step))
            .cloned()
            .unwrap_or_default();
        for (i, name) in names.iter().enumerate() {
            let key = (machine, name.clone());
            if let Some(w) = self.set_points_waiting.get(&key)
                && self.expired(w.expires)
            {
                let ack = self
                    .ack(&w.id, AckStatus::Expired)
                    .because("no operation used it before it expired");
                self.inbox.ack(ack);
                self.set_points_waiting.remove(&key);
                self.set_points.remove(&key);
            }
            if let (Some(v), Some(&set)) = (values.get_mut(i), self.set_points.get(&key)) {
                // The twin runs a value clamped into the step's range, as a controller would.
                *v = match specs.get(i) {
                    Some(spec) => set.clamp(spec.min, spec.max),
                    None => set,
                };
                self.inbox.count(|c| c.obeyed += 1);
                if let Some(w) = self.set_points_waiting.remove(&key) {
                    let mut ack = self.ack(&w.id, AckStatus::Completed);
                    ack.read_back = Some(*v);
                    self.inbox.ack(ack);
                }
            }
        }
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aifactory_core::Plant;
    use aifactory_plant::BaselinePolicy;
    use std::path::Path;

    fn model() -> PlantModel {
        let text = include_str!("../../../plants/hangzhou-auto-parts.toml");
        let plant = Plant::parse(text, Path::new("hangzhou-auto-parts.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        PlantModel::new(plant)
    }

    fn view(machine: MachineId, hours: u64) -> MachineView {
        MachineView {
            machine,
            now: PlantTime(hours * 3_600_000),
            run_h_since_maintenance: 0.0,
            recommended_interval_h: 1000.0,
            last_vibration_mm_s: 0.0,
            last_temperature_c: 0.0,
            last_current_a: 0.0,
            queue_len: 0,
        }
    }

    fn command(id: &str, action: Action) -> Command {
        Command {
            id: id.to_owned(),
            decision: None,
            expires: None,
            action,
        }
    }

    fn maintenance(id: &str, machine: &str) -> Command {
        command(
            id,
            Action::StartMaintenance {
                machine: machine.into(),
            },
        )
    }

    fn set_point(id: &str, machine: &str, param: &str, value: f64) -> Command {
        command(
            id,
            Action::SetPoint {
                machine: machine.into(),
                param: param.into(),
                value,
            },
        )
    }

    /// The statuses acknowledged per command, in order.
    fn statuses(inbox: &CommandInbox) -> HashMap<String, Vec<AckStatus>> {
        let mut by_command: HashMap<String, Vec<AckStatus>> = HashMap::new();
        for ack in inbox.take_acks() {
            by_command.entry(ack.command).or_default().push(ack.status);
        }
        by_command
    }

    fn queued(job: u32, step: usize) -> QueuedOp {
        QueuedOp {
            job,
            product: 0,
            step,
            quantity: 10,
            due: PlantTime(86_400_000),
            released: PlantTime(0),
            ready_since: PlantTime(0),
            processing_s: 600.0,
        }
    }

    fn dispatch_list(id: &str, machine: &str, jobs: &[(&str, usize)]) -> Command {
        command(
            id,
            Action::DispatchList {
                machine: machine.into(),
                jobs: jobs
                    .iter()
                    .map(|(order, step)| aifactory_plant::DispatchJob {
                        order: (*order).to_owned(),
                        step: *step,
                    })
                    .collect(),
            },
        )
    }

    #[test]
    fn a_dispatch_list_picks_the_first_listed_job_that_waits_here() {
        let model = model();
        let inbox = CommandInbox::new();
        let fifo = BaselinePolicy {
            dispatch: "fifo".parse().unwrap_or_else(|e| panic!("{e}")),
            ..BaselinePolicy::default()
        };
        let mut policy = Commanded::new(fifo, &model, inbox.clone());
        let turn = model.master().machine_index("TURN-01");
        let turn = turn.unwrap_or_else(|| panic!("no TURN-01"));
        let candidates = [queued(1, 0), queued(2, 0), queued(3, 1)];
        // WO-000009 does not wait here; WO-000003 waits at step 1, not 0; WO-000002 at step 0.
        inbox.send(dispatch_list(
            "L1",
            "TURN-01",
            &[("WO-000009", 0), ("WO-000003", 0), ("WO-000002", 0)],
        ));
        assert_eq!(policy.dispatch(PlantTime(1_000), turn, &candidates), 1);
        assert_eq!(
            policy.dispatch(PlantTime(2_000), turn, &candidates),
            0,
            "used once: the rule decides again"
        );
        // A newer list replaces one not yet used; one whose jobs are all elsewhere fails.
        inbox.send(dispatch_list("L2", "TURN-01", &[("WO-000003", 1)]));
        inbox.send(dispatch_list("L3", "TURN-01", &[("WO-000042", 0)]));
        assert_eq!(policy.dispatch(PlantTime(3_000), turn, &candidates), 0);
        inbox.send(dispatch_list("L4", "TURN-01", &[]));
        assert_eq!(policy.dispatch(PlantTime(4_000), turn, &candidates), 0);
        let acks = statuses(&inbox);
        use AckStatus::*;
        assert_eq!(acks["L1"], vec![Received, Accepted, Completed]);
        assert_eq!(acks["L2"], vec![Received, Accepted, Failed], "superseded");
        assert_eq!(
            acks["L3"],
            vec![Received, Accepted, Failed],
            "nothing listed waits here"
        );
        assert_eq!(acks["L4"], vec![Received, Rejected], "an empty list");
    }

    #[test]
    fn a_hold_keeps_its_machine_idle_once_and_plant_wide_commands_are_refused_with_the_reason() {
        let model = model();
        let inbox = CommandInbox::new();
        let mut policy = Commanded::new(BaselinePolicy::default(), &model, inbox.clone());
        let turn = model.master().machine_index("TURN-01");
        let turn = turn.unwrap_or_else(|| panic!("no TURN-01"));
        let start = model.plant().start().0;
        let candidates = [queued(1, 0)];
        inbox.send(command(
            "H1",
            Action::Hold {
                machine: "TURN-01".into(),
                until: PlantTime(7_200_000).at(start),
            },
        ));
        inbox.send(command(
            "P1",
            Action::Release {
                orders: vec!["SO-000001".into()],
                lots: Default::default(),
            },
        ));
        assert_eq!(
            policy.hold_until(PlantTime(1_000), turn, &candidates),
            Some(PlantTime(7_200_000))
        );
        assert_eq!(
            policy.hold_until(PlantTime(2_000), turn, &candidates),
            None,
            "used once: the rules decide again"
        );
        let mut expiring = command(
            "H2",
            Action::Hold {
                machine: "TURN-01".into(),
                until: PlantTime(9_000_000).at(start),
            },
        );
        expiring.expires = Some(PlantTime(3_000).at(start));
        inbox.send(expiring);
        assert_eq!(policy.hold_until(PlantTime(4_000), turn, &candidates), None);
        let acks = statuses(&inbox);
        use AckStatus::*;
        assert_eq!(acks["H1"], vec![Received, Accepted, Completed]);
        assert_eq!(
            acks["H2"],
            vec![Received, Expired],
            "expired before it was taken up"
        );
        assert_eq!(acks["P1"], vec![Received, Rejected]);
    }

    #[test]
    fn a_plant_releasing_on_command_releases_what_it_is_told_and_nothing_else() {
        let model = model();
        let inbox = CommandInbox::new();
        let mut policy =
            Commanded::new(BaselinePolicy::default(), &model, inbox.clone()).releasing_on_command();
        let start = model.plant().start().0;
        let order = |order: usize| OrderView {
            order,
            product: 0,
            quantity: 5,
            received: PlantTime(0),
            due: PlantTime(86_400_000),
        };
        let pending = [order(0), order(1), order(2)];
        assert!(
            policy.release(PlantTime(1_000), &pending).is_empty(),
            "the plant's own rule would release all three"
        );
        let release = |id: &str, orders: &[&str]| {
            command(
                id,
                Action::Release {
                    orders: orders.iter().map(|o| (*o).to_owned()).collect(),
                    lots: Default::default(),
                },
            )
        };
        let sized = vec![
            aifactory_plant::Lot {
                required: 3,
                planned: 4,
            },
            aifactory_plant::Lot {
                required: 2,
                planned: 2,
            },
        ];
        let mut r1 = release("R1", &["SO-000002", "SO-000003"]);
        if let Action::Release { lots, .. } = &mut r1.action {
            lots.insert("SO-000002".into(), sized.clone());
        }
        inbox.send(r1);
        let mut expiring = release("R2", &["SO-000009"]);
        expiring.expires = Some(PlantTime(5_000).at(start));
        inbox.send(expiring);
        assert_eq!(policy.release(PlantTime(2_000), &pending[..2]), vec![1]);
        // It opens the order as the command's lots, once; others by its own rule.
        assert_eq!(policy.lots(PlantTime(2_000), &pending[1], 60), sized);
        let own = aifactory_plant::standard_lots(5, 60);
        assert_eq!(policy.lots(PlantTime(2_000), &pending[1], 60), own);
        assert_eq!(policy.lots(PlantTime(2_000), &pending[0], 60), own);
        // SO-000003 arrives later; R1 completes once it is released too.
        assert_eq!(policy.release(PlantTime(3_000), &pending), vec![2]);
        assert!(policy.release(PlantTime(9_000), &pending).is_empty());
        let acks = statuses(&inbox);
        use AckStatus::*;
        assert_eq!(acks["R1"], vec![Received, Accepted, Completed]);
        assert_eq!(acks["R2"], vec![Received, Accepted, Expired]);
    }

    #[test]
    fn a_machine_waiting_for_dispatch_waits_once_and_not_when_its_list_is_there() {
        let model = model();
        let inbox = CommandInbox::new();
        let mut policy = Commanded::new(BaselinePolicy::default(), &model, inbox.clone())
            .waiting_for_dispatch(PlantTime(120_000));
        let turn = model.master().machine_index("TURN-01");
        let turn = turn.unwrap_or_else(|| panic!("no TURN-01"));
        let candidates = [queued(1, 0), queued(2, 0)];
        assert_eq!(
            policy.hold_until(PlantTime(1_000), turn, &candidates),
            Some(PlantTime(121_000))
        );
        // Asked again within the wait: still waiting; at its end: the rules choose.
        assert_eq!(
            policy.hold_until(PlantTime(60_000), turn, &candidates),
            Some(PlantTime(121_000))
        );
        assert_eq!(
            policy.hold_until(PlantTime(121_000), turn, &candidates),
            None
        );
        // A list that is there is taken at once.
        inbox.send(dispatch_list("L1", "TURN-01", &[("WO-000002", 0)]));
        assert_eq!(
            policy.hold_until(PlantTime(200_000), turn, &candidates),
            None
        );
        assert_eq!(policy.dispatch(PlantTime(200_000), turn, &candidates), 1);
    }

    #[test]
    fn maintenance_starts_once_where_commanded_and_unknown_machines_are_refused() {
        let model = model();
        let inbox = CommandInbox::new();
        let rtf: BaselinePolicy = BaselinePolicy {
            maintenance: "rtf".parse().unwrap_or_else(|e| panic!("{e}")),
            ..BaselinePolicy::default()
        };
        let mut policy = Commanded::new(rtf, &model, inbox.clone());
        let turn = model.master().machine_ids().position(|m| m == "TURN-01");
        let turn = turn.unwrap_or_else(|| panic!("no TURN-01"));
        assert!(
            !policy.start_maintenance(&view(turn, 0)),
            "run to failure by itself"
        );
        inbox.send(maintenance("C1", "TURN-01"));
        inbox.send(maintenance("C2", "LATHE-99"));
        inbox.send(maintenance("C1", "TURN-01"));
        assert!(
            !policy.start_maintenance(&view(turn + 1, 1)),
            "not another machine"
        );
        assert!(policy.start_maintenance(&view(turn, 2)));
        assert!(
            !policy.start_maintenance(&view(turn, 3)),
            "once per command"
        );
        assert_eq!(
            inbox.counts(),
            CommandCounts {
                received: 2,
                obeyed: 1,
                refused: 1,
                duplicates: 1,
            }
        );
        let acks = inbox.take_acks();
        let of = |id: &str| -> Vec<(AckStatus, i64)> {
            acks.iter()
                .filter(|a| a.command == id)
                .map(|a| (a.status, a.at.0))
                .collect()
        };
        let start = model.plant().start().0.0;
        assert_eq!(
            of("C1"),
            vec![
                (AckStatus::Received, start + 3_600_000),
                (AckStatus::Accepted, start + 3_600_000),
                (AckStatus::Completed, start + 7_200_000),
            ],
            "completed when the machine was next free"
        );
        assert_eq!(
            of("C2").iter().map(|a| a.0).collect::<Vec<_>>(),
            vec![AckStatus::Received, AckStatus::Rejected]
        );
        assert!(
            acks.iter().any(|a| a.command == "C2"
                && a.reason.as_deref().is_some_and(|r| r.contains("LATHE-99"))),
            "the rejection names the machine: {acks:?}"
        );
    }

    #[test]
    fn expired_commands_are_not_carried_out() {
        let model = model();
        let inbox = CommandInbox::new();
        let mut policy = Commanded::new(BaselinePolicy::default(), &model, inbox.clone());
        let start = model.plant().start().0;
        let mut late = maintenance("C1", "TURN-01");
        late.expires = Some(Timestamp(start.0 + 3_600_000));
        inbox.send(late);
        let turn = model.master().machine_index("TURN-01").unwrap_or_default();
        // Received in time (at 0 h), but the machine is free only at 2 h.
        policy.dispatch(PlantTime(0), turn, &[]);
        let view = MachineView {
            run_h_since_maintenance: 0.0,
            ..view(turn, 2)
        };
        assert!(!policy.start_maintenance(&view), "expired: not started");
        assert_eq!(
            statuses(&inbox).get("C1"),
            Some(&vec![
                AckStatus::Received,
                AckStatus::Accepted,
                AckStatus::Expired
            ])
        );
    }

    #[test]
    fn a_set_point_holds_for_its_machine_and_parameter_only() {
        let model = model();
        let inbox = CommandInbox::new();
        let mut policy = Commanded::new(BaselinePolicy::default(), &model, inbox.clone());
        // The first product's first step has a `cutting_speed` parameter.
        let specs = [ParamSpec {
            min: 120.0,
            max: 260.0,
            default: 180.0,
        }];
        assert_eq!(policy.process_params(0, 0, 0, &specs), vec![180.0]);
        let machine = model
            .master()
            .machine_ids()
            .next()
            .unwrap_or_default()
            .to_owned();
        inbox.send(set_point("S1", &machine, "cutting_speed", 205.0));
        inbox.send(set_point("S2", &machine, "no_such_param", 1.0));
        inbox.send(set_point("S3", &machine, "cutting_speed", f64::NAN));
        assert_eq!(policy.process_params(0, 0, 0, &specs), vec![205.0]);
        assert_eq!(
            policy.process_params(0, 0, 0, &specs),
            vec![205.0],
            "it holds"
        );
        assert_eq!(
            policy.process_params(1, 0, 0, &specs),
            vec![180.0],
            "other machines keep theirs"
        );
        assert_eq!(
            inbox.counts(),
            CommandCounts {
                received: 3,
                obeyed: 2,
                refused: 2,
                duplicates: 0,
            }
        );
        let acks = inbox.take_acks();
        let completed: Vec<&Ack> = acks
            .iter()
            .filter(|a| a.status == AckStatus::Completed)
            .collect();
        assert_eq!(completed.len(), 1, "completed once, at first use: {acks:?}");
        assert_eq!(completed[0].command, "S1");
        assert_eq!(completed[0].read_back, Some(205.0));
        // Out of range: the controller clamps and reads the clamped value back.
        inbox.send(set_point("S4", &machine, "cutting_speed", 900.0));
        assert_eq!(policy.process_params(0, 0, 0, &specs), vec![260.0]);
        assert!(
            inbox
                .take_acks()
                .iter()
                .any(|a| a.command == "S4" && a.read_back == Some(260.0))
        );
    }
}
