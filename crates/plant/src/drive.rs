//! Decisions for a plant seen only through its events: at each decision point the policy is asked
//! with views built from the [`Projection`] and the plant's master data — never from a
//! simulator's insides — and its answers become [`Action`]s to send as commands.
//!
//! This is the other side of the twin's own loop: the twin asks its policy directly; a plant
//! behind a wire (or the twin behind one) is driven by a [`Driver`] in the runtime. A free
//! machine is offered preventive maintenance first, then the work waiting for it; the answer
//! goes out as a `start_maintenance` or a `dispatch_list` (the policy's pick first, the rest in
//! the order they became ready). A planning policy is handed the whole floor when work is
//! released, a machine fails or comes back.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::command::{Action, DispatchJob};
use crate::policy::{
    Floor, FloorAlternative, FloorJob, FloorMachine, MachineView, OrderView, ParamSpec, QueuedOp,
    sized_lots,
};
use crate::projection::{DecisionPoint, Projection, WorkOrder};
use crate::{MachineId, PlantTime, Policy};

/// Where a work order that names no due date is assumed due: far enough to rank last.
const NO_DUE_MS: u64 = 365 * 86_400_000;
/// Work-order numbers handed to ids that do not carry one (`WO-000017` carries 17).
const FIRST_FREE_NUMBER: u32 = 1_000_000_000;

/// One decision taken, with what brought it about.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub action: Action,
    /// When it was decided (the projection's applied time).
    pub at: PlantTime,
    /// The decision point that asked for it, e.g. `machine_free`.
    pub trigger: &'static str,
    /// The work that was waiting for the machine, as the policy saw it (empty for maintenance).
    pub waiting: Vec<DispatchJob>,
    /// Running hours since the machine's last failure or service, as the policy saw them.
    pub run_h_since_renewal: f64,
}

/// Drives a policy from a plant's projected state.
pub struct Driver {
    policy: Box<dyn Policy + Send>,
    /// Last sensor readings per machine: vibration mm/s, temperature °C, current A.
    readings: Vec<[f64; 3]>,
    /// Work-order numbers as policies see them ([`QueuedOp::job`]), and back.
    numbers: HashMap<String, u32>,
    ids: HashMap<u32, String>,
    next_free: u32,
    /// Per machine: failures plus services seen (a renewal cancels a maintenance order).
    renewals: Vec<u64>,
    /// Per machine: the dispatch list sent while it is free (not sent again unchanged).
    sent_list: Vec<Option<Vec<DispatchJob>>>,
    /// Per machine: maintenance ordered and not yet begun (not ordered twice).
    maintenance_ordered: Vec<Option<u64>>,
    /// Per machine: the set-points sent to it, by parameter name (not sent again unchanged).
    set_points: Vec<HashMap<String, f64>>,
    /// Whether the plant releases sales orders when told to (`release` commands); otherwise it
    /// releases them by its own rules and the policy is not asked.
    plans_releases: bool,
    /// Sales orders a release was sent for (not sent twice).
    releases_sent: BTreeSet<String>,
    /// When pending sales orders are next offered for release without a new one arriving.
    next_release_review: PlantTime,
    /// How often that is (the plant file's review period).
    review_ms: u64,
    /// Services begun or ended so far, for a policy that replans on them.
    services_seen: u64,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("policy", &self.policy.name())
            .field("readings", &self.readings)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// A driver for a plant of `machines` machines.
    pub fn new(policy: Box<dyn Policy + Send>, machines: usize) -> Driver {
        Driver {
            policy,
            readings: vec![[0.0; 3]; machines],
            numbers: HashMap::new(),
            ids: HashMap::new(),
            next_free: FIRST_FREE_NUMBER,
            renewals: vec![0; machines],
            sent_list: vec![None; machines],
            maintenance_ordered: vec![None; machines],
            set_points: vec![HashMap::new(); machines],
            plans_releases: false,
            releases_sent: BTreeSet::new(),
            next_release_review: PlantTime(0),
            review_ms: u64::MAX,
            services_seen: 0,
        }
    }

    /// The plant releases sales orders when told to: the policy is offered the pending ones
    /// whenever one arrives and every `review` besides, and each it releases goes out as a
    /// `release` command.
    pub fn planning_releases(mut self, review: PlantTime) -> Driver {
        self.plans_releases = true;
        self.review_ms = review.0.max(1);
        self
    }

    /// The policy's name, for the ledger.
    pub fn policy_name(&self) -> String {
        self.policy.name()
    }

    /// A sensor reading: signals whose names say vibration, temperature or current feed the
    /// machine's view (the twin's `vibration_mm_s`, a plant's `vibration`); others are ignored.
    pub fn reading(&mut self, machine: MachineId, signal: &str, value: f64) {
        let Some(r) = self.readings.get_mut(machine) else {
            return;
        };
        let signal = signal.to_ascii_lowercase();
        let slot = if signal.starts_with("vib") {
            0
        } else if signal.starts_with("temp") {
            1
        } else if signal.starts_with("current") {
            2
        } else {
            return;
        };
        if value.is_finite() {
            r[slot] = value;
        }
    }

    /// Takes up a command sent before a restart and not yet settled: its machine is not offered
    /// the same again while it stands.
    pub fn resume(&mut self, projection: &Projection, action: &Action) {
        if let Action::Release { orders, .. } = action {
            self.releases_sent.extend(orders.iter().cloned());
            return;
        }
        let Some(m) = action
            .machine()
            .and_then(|m| projection.master().machine_index(m))
        else {
            return;
        };
        if let Some(t) = projection.totals(m) {
            self.renewals[m] = t.failures + t.services;
        }
        match action {
            Action::DispatchList { jobs, .. } if projection.is_free(m) => {
                self.sent_list[m] = Some(jobs.clone());
            }
            Action::StartMaintenance { .. } => {
                self.maintenance_ordered[m] = Some(projection.applied_to().0);
            }
            _ => {}
        }
    }

    /// A command it sent was not carried out (rejected, failed or expired): what it asked
    /// is open again — a release is offered to the policy anew, a set-point sent again.
    pub fn unmet(&mut self, projection: &Projection, action: &Action) {
        match action {
            Action::Release { orders, .. } => {
                for order in orders {
                    self.releases_sent.remove(order);
                }
            }
            Action::SetPoint { machine, param, .. } => {
                if let Some(sent) = projection
                    .master()
                    .machine_index(machine)
                    .and_then(|m| self.set_points.get_mut(m))
                {
                    sent.remove(param);
                }
            }
            _ => {}
        }
    }

    /// The number a policy knows the work order by.
    fn number(&mut self, id: &str) -> u32 {
        if let Some(&n) = self.numbers.get(id) {
            return n;
        }
        let carried = id
            .strip_prefix("WO-")
            .and_then(|d| d.parse::<u32>().ok())
            .filter(|n| *n < FIRST_FREE_NUMBER && !self.ids.contains_key(n));
        let n = carried.unwrap_or_else(|| {
            while self.ids.contains_key(&self.next_free) {
                self.next_free = self.next_free.wrapping_add(1);
            }
            self.next_free
        });
        self.numbers.insert(id.to_owned(), n);
        self.ids.insert(n, id.to_owned());
        n
    }

    /// What the decision points ask: maintenance orders and dispatch lists for the machines
    /// they concern, after handing a planning policy the floor where it changed.
    pub fn decide(&mut self, projection: &Projection, points: &[DecisionPoint]) -> Vec<Decided> {
        let master = projection.master();
        let machines = self.readings.len();
        for m in 0..machines {
            let Some(t) = projection.totals(m) else {
                continue;
            };
            let count = t.failures + t.services;
            if self.renewals[m] != count {
                self.renewals[m] = count;
                self.maintenance_ordered[m] = None;
            }
            if !projection.is_free(m) {
                self.sent_list[m] = None;
            }
            // An order the plant did not carry out before the machine took other work is dead.
            if projection.running(m).is_some() {
                self.maintenance_ordered[m] = None;
            }
        }
        // Services begun or ended: a change of capacity a closed loop replans on.
        let services: u64 = (0..machines)
            .map(|m| {
                projection.totals(m).map_or(0, |t| t.services)
                    + u64::from(projection.out_of_service(m) == Some(false))
            })
            .sum();
        let serviced = services != self.services_seen;
        self.services_seen = services;
        let replan = (serviced && self.policy.replan_on_service())
            || points.iter().any(|p| {
                matches!(
                    p,
                    DecisionPoint::OrderReleased { .. }
                        | DecisionPoint::WorkReady { step: 0, .. }
                        | DecisionPoint::Breakdown { .. }
                        | DecisionPoint::Repaired { .. }
                )
            });
        if replan && self.policy.wants_floor() {
            let floor = self.floor(projection);
            self.policy.plan(&floor);
        }
        // The machines each point concerns, with the first point's kind.
        let mut concerned: Vec<(MachineId, &'static str)> = Vec::new();
        let mut add = |m: MachineId, why: &'static str| {
            if !concerned.iter().any(|(c, _)| *c == m) {
                concerned.push((m, why));
            }
        };
        for p in points {
            match p {
                DecisionPoint::MachineFree { machine, .. } => add(*machine, "machine_free"),
                DecisionPoint::Repaired { machine, .. } => add(*machine, "repaired"),
                DecisionPoint::WorkReady {
                    work_order, step, ..
                } => {
                    let product = projection.work_orders().get(work_order).map(|w| w.product);
                    if let Some(alts) = product.and_then(|p| master.step(p, *step)) {
                        for (m, _, _) in alts {
                            add(*m, "work_ready");
                        }
                    }
                }
                DecisionPoint::MaterialReceived { .. } => {
                    for m in 0..machines {
                        add(m, "material_received");
                    }
                }
                DecisionPoint::OrderReceived { .. }
                | DecisionPoint::OrderReleased { .. }
                | DecisionPoint::Breakdown { .. } => {}
            }
        }
        let now = projection.applied_to();
        let mut decided = self.releases(projection, points);
        for (m, trigger) in concerned {
            if m >= machines || !projection.is_free(m) || self.maintenance_ordered[m].is_some() {
                continue;
            }
            let Some(machine_id) = master.machine_id(m).map(str::to_owned) else {
                continue;
            };
            let run_h = projection.totals(m).map_or(0.0, |t| {
                t.run_ms.saturating_sub(t.run_ms_at_renewal) as f64 / 3_600_000.0
            });
            let view = MachineView {
                machine: m,
                now,
                run_h_since_maintenance: run_h,
                recommended_interval_h: master
                    .machine_maintenance()
                    .get(m)
                    .map_or(f64::INFINITY, |(_, mm)| mm.pm_interval_run_h),
                last_vibration_mm_s: self.readings[m][0],
                last_temperature_c: self.readings[m][1],
                last_current_a: self.readings[m][2],
                queue_len: projection.queue(m),
            };
            if self.policy.start_maintenance(&view) {
                self.maintenance_ordered[m] = Some(now.0);
                self.sent_list[m] = None;
                decided.push(Decided {
                    action: Action::StartMaintenance {
                        machine: machine_id,
                    },
                    at: now,
                    trigger,
                    waiting: Vec::new(),
                    run_h_since_renewal: run_h,
                });
                continue;
            }
            // A job another free machine was just told to start first is not on offer here: in
            // a plant, as in the twin, the first machine to take a job takes it from the others'
            // queues. Without this every free alternative machine would be sent the same job,
            // and all but one of those lists would go stale.
            let claimed: Vec<&DispatchJob> = self
                .sent_list
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != m && projection.is_free(*other))
                .filter_map(|(_, list)| list.as_ref().and_then(|l| l.first()))
                .collect();
            let waiting: Vec<_> = projection
                .waiting_for(m)
                .into_iter()
                .filter(|(id, w)| {
                    !claimed
                        .iter()
                        .any(|c| c.order == *id && c.step == w.next_step)
                })
                .collect();
            if waiting.is_empty() {
                continue;
            }
            let candidates: Vec<QueuedOp> = waiting
                .iter()
                .map(|(id, w)| self.queued(projection, m, id, w))
                .collect();
            let jobs: Vec<DispatchJob> = waiting
                .iter()
                .map(|(id, w)| DispatchJob {
                    order: (*id).to_owned(),
                    step: w.next_step,
                })
                .collect();
            let pick = self
                .policy
                .dispatch(now, m, &candidates)
                .min(candidates.len() - 1);
            let mut list = jobs.clone();
            let first = list.remove(pick);
            list.insert(0, first);
            // The plant starts the first listed job that waits; a list with the same first job
            // changes nothing it does, and would only supersede the one it holds.
            if self.sent_list[m].as_ref().and_then(|l| l.first()) == list.first() {
                continue;
            }
            self.sent_list[m] = Some(list.clone());
            if let Some(first) = list.first() {
                decided.extend(self.set_points(projection, m, first, now, run_h));
            }
            decided.push(Decided {
                action: Action::DispatchList {
                    machine: machine_id,
                    jobs: list,
                },
                at: now,
                trigger,
                waiting: jobs,
                run_h_since_renewal: run_h,
            });
        }
        decided
    }

    /// Release commands for the pending sales orders the policy releases now: asked when an
    /// order arrives and every review period. Orders the plant names in no known way (no
    /// `SO-` number) are offered under a number of their own.
    fn releases(&mut self, projection: &Projection, points: &[DecisionPoint]) -> Vec<Decided> {
        let now = projection.applied_to();
        let arrived = points
            .iter()
            .any(|p| matches!(p, DecisionPoint::OrderReceived { .. }));
        if !self.plans_releases || (!arrived && now < self.next_release_review) {
            return Vec::new();
        }
        self.next_release_review = PlantTime(now.0 - now.0 % self.review_ms + self.review_ms);
        self.releases_sent.retain(|id| {
            projection
                .sales_orders()
                .get(id)
                .is_some_and(|o| !o.released)
        });
        let pending: Vec<(&String, OrderView)> = projection
            .sales_orders()
            .iter()
            .filter(|(id, o)| !o.released && !self.releases_sent.contains(*id))
            .enumerate()
            .map(|(i, (id, o))| {
                let order = id
                    .strip_prefix("SO-")
                    .and_then(|d| d.parse::<usize>().ok())
                    .filter(|n| *n > 0)
                    .map_or(FIRST_FREE_NUMBER as usize + i, |n| n - 1);
                let view = OrderView {
                    order,
                    product: o.product,
                    quantity: o.quantity,
                    received: o.received,
                    due: o.due.unwrap_or(PlantTime(o.received.0 + NO_DUE_MS)),
                };
                (id, view)
            })
            .collect();
        if pending.is_empty() {
            return Vec::new();
        }
        let views: Vec<OrderView> = pending.iter().map(|(_, v)| *v).collect();
        let mut chosen = self.policy.release(now, &views);
        chosen.sort_unstable();
        chosen.dedup();
        let mut decided = Vec::new();
        for i in chosen {
            let Some((id, _)) = pending.get(i) else {
                continue;
            };
            self.releases_sent.insert((*id).clone());
            let lot_size = projection
                .master()
                .plant()
                .products
                .get(views[i].product)
                .map_or(1, |p| p.lot_size);
            let lots = sized_lots(&mut *self.policy, now, &views[i], lot_size)
                .map(|lots| BTreeMap::from([((*id).clone(), lots)]))
                .unwrap_or_default();
            decided.push(Decided {
                action: Action::Release {
                    orders: vec![(*id).clone()],
                    lots,
                },
                at: now,
                trigger: if arrived {
                    "order_received"
                } else {
                    "release_review"
                },
                waiting: Vec::new(),
                run_h_since_renewal: 0.0,
            });
        }
        decided
    }

    /// Set-point commands for the job machine `m` is told to start first: the policy's
    /// parameters for its step, those that differ from what the machine was last sent (or,
    /// never sent, from the default).
    fn set_points(
        &mut self,
        projection: &Projection,
        m: MachineId,
        job: &DispatchJob,
        now: PlantTime,
        run_h: f64,
    ) -> Vec<Decided> {
        let master = projection.master();
        let Some(product) = projection.work_orders().get(&job.order).map(|w| w.product) else {
            return Vec::new();
        };
        let Some(params) = master
            .plant()
            .products
            .get(product)
            .and_then(|p| p.routing.get(job.step))
            .map(|s| &s.params)
            .filter(|p| !p.is_empty())
        else {
            return Vec::new();
        };
        let specs: Vec<ParamSpec> = params.iter().map(ParamSpec::from).collect();
        let values = self.policy.process_params(m, product, job.step, &specs);
        let Some(machine) = master.machine_id(m) else {
            return Vec::new();
        };
        let mut decided = Vec::new();
        for (param, value) in params.iter().zip(values) {
            let value = value.clamp(param.min, param.max);
            let last = self.set_points[m].get(&param.name).copied();
            if last.unwrap_or(param.default) == value {
                continue;
            }
            self.set_points[m].insert(param.name.clone(), value);
            decided.push(Decided {
                action: Action::SetPoint {
                    machine: machine.to_owned(),
                    param: param.name.clone(),
                    value,
                },
                at: now,
                trigger: "set_point",
                waiting: Vec::new(),
                run_h_since_renewal: run_h,
            });
        }
        decided
    }

    /// A waiting work order as a dispatcher sees it on machine `m`.
    fn queued(
        &mut self,
        projection: &Projection,
        m: MachineId,
        id: &str,
        w: &WorkOrder,
    ) -> QueuedOp {
        let (setup_s, unit_s) = projection
            .master()
            .step(w.product, w.next_step)
            .and_then(|alts| alts.iter().find(|(mm, _, _)| *mm == m))
            .map_or((0.0, 0.0), |(_, setup, unit)| (*setup, *unit));
        let setup = if projection.last_product(m) == Some(w.product) {
            0.0
        } else {
            setup_s
        };
        QueuedOp {
            job: self.number(id),
            product: w.product,
            step: w.next_step,
            quantity: w.quantity,
            due: w.due.unwrap_or(PlantTime(w.released.0 + NO_DUE_MS)),
            released: w.released,
            ready_since: w.ready_since,
            processing_s: setup + unit_s * f64::from(w.quantity),
        }
    }

    /// The whole floor for a planning policy: open work orders in number order, each machine's
    /// expected time out of service from the master data's mean repair and service times.
    fn floor(&mut self, projection: &Projection) -> Floor {
        let master = projection.master();
        let now = projection.applied_to();
        let open: Vec<(String, WorkOrder)> = projection
            .work_orders()
            .iter()
            .filter(|(_, w)| w.finished.is_none() && !w.done(master))
            .map(|(id, w)| (id.clone(), w.clone()))
            .collect();
        let parents: BTreeSet<&str> = open
            .iter()
            .filter_map(|(_, w)| w.parent.as_deref())
            .collect();
        let mut jobs = Vec::with_capacity(open.len());
        for (id, w) in &open {
            let routing = master.routing(w.product);
            let operations: Vec<Vec<FloorAlternative>> = routing
                .iter()
                .skip(w.next_step)
                .map(|alts| {
                    alts.iter()
                        .map(|&(machine, setup_s, unit_s)| FloorAlternative {
                            machine,
                            setup_s,
                            run_s: unit_s * f64::from(w.quantity),
                        })
                        .collect()
                })
                .collect();
            let running = w.running_on.map(|m| {
                let op = projection.running(m);
                let planned = routing
                    .get(w.next_step)
                    .and_then(|alts| alts.iter().find(|(mm, _, _)| *mm == m))
                    .map_or(0.0, |(_, setup, unit)| {
                        let setup = op.map_or(*setup, |r| r.setup_left_ms as f64 / 1000.0);
                        setup + unit * f64::from(w.quantity)
                    });
                let elapsed_s = op.map_or(0.0, |r| {
                    now.0.saturating_sub(r.started.0) as f64 / 1000.0
                        - r.setup_left_ms as f64 / 1000.0
                });
                (m, (planned - elapsed_s.max(0.0)).max(0.0))
            });
            jobs.push(FloorJob {
                job: self.number(id),
                product: w.product,
                quantity: w.quantity,
                due: w.due.unwrap_or(PlantTime(w.released.0 + NO_DUE_MS)),
                next_step: w.next_step,
                operations,
                running,
                waiting: w.waiting_for_material || parents.contains(id.as_str()),
            });
        }
        jobs.sort_by_key(|j| j.job);
        let maintenance = master.machine_maintenance();
        let machines = (0..self.readings.len())
            .map(|m| {
                let expected_h = match projection.out_of_service(m) {
                    Some(true) => maintenance.get(m).map_or(0.0, |(_, mm)| mm.corrective_h),
                    Some(false) => maintenance.get(m).map_or(0.0, |(_, mm)| mm.preventive_h),
                    None => 0.0,
                };
                FloorMachine {
                    unavailable_for_s: (expected_h * 3600.0
                        - projection.in_state_for_ms(m) as f64 / 1000.0)
                        .max(0.0),
                    last_product: projection
                        .running(m)
                        .map(|r| r.product)
                        .or(projection.last_product(m)),
                }
            })
            .collect();
        Floor {
            now,
            jobs,
            machines,
        }
    }
}
