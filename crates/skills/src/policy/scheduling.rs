//! The scheduling skill: on every release, breakdown and repair it turns the floor into a
//! flexible job-shop problem (running operations frozen, broken machines down until their
//! expected return, due dates from the sales orders), solves it with the APS solver, and then
//! dispatches by the plan — each machine takes the queued operation the plan starts first on
//! it, falling back to earliest-due-date for work the plan put elsewhere.

use crate::board::{LivePlan, PlanBoard, PlanJob};
use crate::log::SkillLog;
use aifactory_core::{Decision, DecisionLog, ExecutedBy, LifecycleStage, Timestamp};
use aifactory_plant::{
    BaselinePolicy, Floor, MachineId, MachineView, MaterialView, PlantTime, Policy,
    PurchaseRequest, QueuedOp,
};
use aifactory_schedule::{
    Alternative, Downtime, Frozen, Job, Objective, Operation, Problem, SolveOptions, solve,
};
use std::collections::HashMap;

/// Model id written into scheduling decisions.
pub(crate) const MODEL_ID: &str = "aps-tabu-fjsp";
/// Model version: the solver and its fixed budget.
pub(crate) const MODEL_VERSION: &str = "1/tabu-2000";

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApsConfig {
    /// Tabu iterations per replan: a fixed budget keeps runs reproducible.
    pub iterations: u64,
    pub seed: u64,
    /// Weight of the plan's makespan next to total weighted tardiness (seconds).
    pub makespan_weight: f64,
}

impl Default for ApsConfig {
    fn default() -> Self {
        ApsConfig {
            iterations: 2_000,
            seed: 1,
            makespan_weight: 0.1,
        }
    }
}

/// Plans with the APS solver; maintenance and purchasing follow a baseline policy.
#[derive(Debug, Clone)]
pub struct ApsPolicy {
    pub config: ApsConfig,
    pub base: BaselinePolicy,
    /// (work order, step) → (machine, planned start in twin milliseconds); an entry leaves
    /// when its operation is dispatched.
    plan: HashMap<(u32, usize), (MachineId, i64)>,
    pub replans: u64,
    /// Where each plan is logged as a decision.
    ledger: Option<SkillLog>,
    /// The shared plan (coordinator tiers 2 and 3): maintenance windows to plan around, and
    /// where the live plan is posted for quoting.
    board: Option<PlanBoard>,
    /// Closed loop (tier 3): each plan's outcome (how much of it was dispatched as planned) is
    /// measured at the next replan, and planned services trigger replans.
    closed_loop: bool,
    /// The last plan's decision and its dispatches so far: (id, followed the plan, fell back).
    measuring: Option<(String, u64, u64)>,
}

impl ApsPolicy {
    pub fn new(config: ApsConfig, base: BaselinePolicy) -> ApsPolicy {
        ApsPolicy {
            config,
            base,
            plan: HashMap::new(),
            replans: 0,
            ledger: None,
            board: None,
            closed_loop: false,
            measuring: None,
        }
    }

    /// Closes the loop: every plan decision gets a measured outcome (the share of dispatches
    /// that followed it before the next replan), and services starting or ending are events
    /// to replan on.
    pub fn with_closed_loop(mut self) -> ApsPolicy {
        self.closed_loop = true;
        self
    }

    /// Plans on a shared board: maintenance windows posted there become service operations in
    /// the plan (each plan decision cites the maintenance decisions it planned around), a
    /// window's service starts when the plan reaches it, and each plan is posted back.
    pub fn with_board(mut self, board: PlanBoard) -> ApsPolicy {
        self.board = Some(board);
        self
    }

    /// Logs every plan it makes to `log` (production stage, executed by dispatching to it);
    /// `start` is the plant's day zero.
    pub fn with_log(mut self, log: DecisionLog, start: Timestamp) -> ApsPolicy {
        self.ledger = Some(SkillLog::new(log, start, "APS"));
        self
    }
}

/// The share of dispatches a plan should have decided for its outcome to count as met.
const PLAN_ADHERENCE_GOAL: f64 = 0.8;

/// How long a window may wait in the plan before it counts as late, seconds: within a shift
/// the scheduler may put it wherever it costs production least.
const WINDOW_SLACK_S: i64 = 8 * 3600;

/// The floor as a scheduling problem, in whole seconds from now. Each product is a set-up
/// family: a machine pays a step's set-up only when it switches products, as in the plant. The
/// second vector maps the problem's jobs back to what they stand for. `windows` are services
/// to fit in: (machine, seconds).
fn problem_of(floor: &Floor, windows: &[(MachineId, f64)]) -> (Problem, Vec<PlanJob>) {
    let now_s = floor.now.0 as f64 / 1000.0;
    let machines = floor.machines.len();
    let families = floor
        .jobs
        .iter()
        .map(|j| j.product + 1)
        .chain(
            floor
                .machines
                .iter()
                .filter_map(|m| m.last_product.map(|p| p + 1)),
        )
        .max()
        .unwrap_or(0);
    // setup[machine][from][to]: the set-up of product `to` on that machine, unless from == to.
    let mut setup = vec![vec![vec![0i64; families]; families]; machines];
    let mut jobs = Vec::with_capacity(floor.jobs.len() + machines);
    let mut numbers = Vec::with_capacity(floor.jobs.len() + machines);
    for j in &floor.jobs {
        let mut operations: Vec<Operation> = j
            .operations
            .iter()
            .map(|alts| Operation {
                alternatives: alts
                    .iter()
                    .map(|a| {
                        let seconds = a.setup_s.ceil() as i64;
                        if let Some(on_machine) = setup.get_mut(a.machine) {
                            for (from, row) in on_machine.iter_mut().enumerate() {
                                if from != j.product {
                                    row[j.product] = row[j.product].max(seconds);
                                }
                            }
                        }
                        Alternative {
                            machine: a.machine,
                            duration: a.run_s.ceil().max(1.0) as i64,
                        }
                    })
                    .collect(),
                frozen: None,
            })
            .collect();
        if let (Some((machine, left)), Some(first)) = (j.running, operations.first_mut()) {
            // A running operation stays where it is; on a broken machine it resumes after repair.
            let start = floor
                .machines
                .get(machine)
                .map_or(0.0, |m| m.unavailable_for_s)
                .ceil() as i64;
            first.alternatives = vec![Alternative {
                machine,
                duration: left.ceil().max(1.0) as i64,
            }];
            first.frozen = Some(Frozen { machine, start });
        }
        let due = (j.due.0 as f64 / 1000.0 - now_s).round() as i64;
        numbers.push(PlanJob::Work {
            number: j.job,
            first_step: j.next_step,
        });
        jobs.push(Job {
            release: 0,
            due: Some(due),
            weight: f64::from(j.quantity),
            family: Some(j.product),
            operations,
        });
    }
    let busy: Vec<bool> = (0..machines)
        .map(|m| {
            floor.machines[m].unavailable_for_s >= 1.0
                || floor
                    .jobs
                    .iter()
                    .any(|j| j.running.is_some_and(|(r, _)| r == m))
        })
        .collect();
    for (machine, m) in floor.machines.iter().enumerate() {
        // An idle machine keeps its last set-up: a one-second placeholder of that family at
        // time zero makes the first operation of another product pay the change-over.
        if let (Some(product), false) = (m.last_product, busy[machine]) {
            numbers.push(PlanJob::SetUp);
            jobs.push(Job {
                release: 0,
                due: None,
                weight: 0.0,
                family: Some(product),
                operations: vec![Operation {
                    alternatives: vec![Alternative {
                        machine,
                        duration: 1,
                    }],
                    frozen: Some(Frozen { machine, start: 0 }),
                }],
            });
        }
    }
    let mean_weight = floor
        .jobs
        .iter()
        .map(|j| f64::from(j.quantity))
        .sum::<f64>()
        / floor.jobs.len().max(1) as f64;
    for &(machine, seconds) in windows {
        if machine >= machines || floor.machines[machine].unavailable_for_s >= 1.0 {
            continue;
        }
        numbers.push(PlanJob::Service(machine));
        jobs.push(Job {
            release: 0,
            due: Some(WINDOW_SLACK_S),
            weight: mean_weight.max(1.0),
            family: None,
            operations: vec![Operation {
                alternatives: vec![Alternative {
                    machine,
                    duration: seconds.ceil().max(1.0) as i64,
                }],
                frozen: None,
            }],
        });
    }
    let downtime = floor
        .machines
        .iter()
        .enumerate()
        .filter(|(_, m)| m.unavailable_for_s >= 1.0)
        .map(|(machine, m)| Downtime {
            machine,
            start: 0,
            end: m.unavailable_for_s.ceil() as i64,
        })
        .collect();
    (
        Problem {
            name: "floor".to_owned(),
            machines,
            jobs,
            downtime,
            setup: Some(setup),
        },
        numbers,
    )
}

impl Policy for ApsPolicy {
    fn name(&self) -> String {
        format!(
            "aps+{}",
            self.base
                .name()
                .split_once('+')
                .map_or("", |(_, rest)| rest)
        )
    }

    fn dispatch(&mut self, now: PlantTime, machine: MachineId, candidates: &[QueuedOp]) -> usize {
        let planned = candidates
            .iter()
            .enumerate()
            .filter_map(|(i, op)| match self.plan.get(&(op.job, op.step)) {
                Some(&(m, start)) if m == machine => Some((start, op.job, i)),
                _ => None,
            })
            .min();
        if let Some((_, followed, fell_back)) = &mut self.measuring {
            if planned.is_some() {
                *followed += 1;
            } else {
                *fell_back += 1;
            }
        }
        match planned {
            Some((_, _, i)) => {
                self.plan.remove(&(candidates[i].job, candidates[i].step));
                i
            }
            None => BaselinePolicy {
                dispatch: aifactory_plant::DispatchRule::Edd,
                ..self.base
            }
            .dispatch(now, machine, candidates),
        }
    }

    fn start_maintenance(&mut self, view: &MachineView) -> bool {
        let Some(board) = &self.board else {
            return self.base.start_maintenance(view);
        };
        // On a shared board the maintenance skill decides whether a machine needs service and
        // the plan when: now, if nothing waits or the plan put the service before the machine's
        // next operation.
        let mut board = board.lock();
        let Some(window) = board.windows.get(&view.machine) else {
            return false;
        };
        let due = view.queue_len == 0
            || window.planned_start.is_some_and(|start| {
                let start = i64::try_from(start.0).unwrap_or(i64::MAX);
                self.plan
                    .values()
                    .filter(|(m, _)| *m == view.machine)
                    .map(|&(_, s)| s)
                    .min()
                    .is_none_or(|next| start <= next)
            });
        if !due {
            return false;
        }
        // The guard's rate limit: a planned service waits while too many machines are in one.
        if board
            .max_planned_services
            .is_some_and(|max| board.in_planned_service.len() >= max)
        {
            board.services_deferred += 1;
            return false;
        }
        board.in_planned_service.insert(view.machine);
        if let Some(window) = board.windows.get_mut(&view.machine) {
            window.started_at = Some(view.now);
        }
        true
    }

    fn purchase(&mut self, now: PlantTime, stock: &[MaterialView]) -> Vec<PurchaseRequest> {
        self.base.purchase(now, stock)
    }

    fn wants_floor(&self) -> bool {
        true
    }

    fn replan_on_service(&self) -> bool {
        self.closed_loop
    }

    fn plan(&mut self, floor: &Floor) {
        self.replans += 1;
        if let (Some((id, followed, fell_back)), Some(log)) = (self.measuring.take(), &self.ledger)
        {
            let dispatched = followed + fell_back;
            let adherence = if dispatched == 0 {
                1.0
            } else {
                followed as f64 / dispatched as f64
            };
            log.outcome(
                floor.now,
                &id,
                serde_json::json!({
                    "dispatched": dispatched,
                    "followed_plan": followed,
                    "adherence": adherence,
                }),
                Some(adherence >= PLAN_ADHERENCE_GOAL),
            );
        }
        self.plan.clear();
        if floor.jobs.is_empty() {
            return;
        }
        let windows: Vec<(MachineId, f64, Option<String>, bool)> =
            self.board.as_ref().map_or_else(Vec::new, |b| {
                b.lock()
                    .windows
                    .iter()
                    .map(|(&m, w)| (m, w.duration_s, w.decision.clone(), w.started_at.is_some()))
                    .collect()
            });
        // A started service is not placed again: while it runs it is the machine's downtime.
        let (problem, numbers) = problem_of(
            floor,
            &windows
                .iter()
                .filter(|w| !w.3)
                .map(|w| (w.0, w.1))
                .collect::<Vec<_>>(),
        );
        if aifactory_schedule::formats::validate(&problem).is_err() {
            // A floor the solver cannot take (should not happen): dispatch by the fallback rule.
            return;
        }
        let options = SolveOptions {
            objective: Objective::Mix {
                makespan_weight: self.config.makespan_weight,
            },
            time_limit: None,
            max_iterations: Some(self.config.iterations),
            threads: 1,
            seed: self.config.seed,
        };
        let solution = solve(&problem, &options);
        let planned_windows: Vec<MachineId> = numbers
            .iter()
            .filter_map(|n| match n {
                PlanJob::Service(m) => Some(*m),
                _ => None,
            })
            .collect();
        // A started service on a machine still out of service is in the plan as that
        // machine's downtime: the plan is made around it as around a window it places.
        let in_service = |m: MachineId, started: bool| {
            started
                && floor
                    .machines
                    .get(m)
                    .is_some_and(|machine| machine.unavailable_for_s >= 1.0)
        };
        let mut inputs_ref = format!("floor:{}-work-orders", floor.jobs.len());
        for &(m, _, ref decision, started) in &windows {
            let planned_around = planned_windows.contains(&m) || in_service(m, started);
            if let (true, Some(id)) = (planned_around, decision) {
                inputs_ref.push_str(" decision:");
                inputs_ref.push_str(id);
            }
        }
        let mut decision_id = None;
        if let Some(log) = &mut self.ledger {
            let operations: usize = solution.schedule.placements.iter().map(Vec::len).sum();
            decision_id = Some(log.record(floor.now, |id, at| Decision {
                id,
                at,
                skill: "scheduling".to_owned(),
                stage: LifecycleStage::Production,
                inputs_ref,
                model: MODEL_ID.to_owned(),
                model_version: MODEL_VERSION.to_owned(),
                output: serde_json::json!({
                    "work_orders": floor.jobs.len(),
                    "operations": operations,
                    "plan_end_h": solution.makespan as f64 / 3600.0,
                    "lower_bound_h": solution.lower_bound as f64 / 3600.0,
                    "objective": solution.objective,
                    "maintenance_windows": planned_windows.len(),
                }),
                confidence: None,
                executed_by: ExecutedBy::Auto,
                outcome: None,
            }));
        }
        let now_ms = i64::try_from(floor.now.0).unwrap_or(i64::MAX);
        let absolute = |start: i64| now_ms.saturating_add(start.saturating_mul(1000));
        let mut board = self.board.as_ref().map(PlanBoard::lock);
        for (j, ops) in solution.schedule.placements.iter().enumerate() {
            match numbers.get(j) {
                Some(&PlanJob::Work { number, first_step }) => {
                    for p in ops {
                        self.plan
                            .insert((number, first_step + p.op), (p.machine, absolute(p.start)));
                    }
                }
                Some(&PlanJob::Service(machine)) => {
                    if let (Some(board), Some(p)) = (board.as_mut(), ops.first())
                        && let Some(window) = board.windows.get_mut(&machine)
                    {
                        window.planned_start =
                            Some(PlantTime(u64::try_from(absolute(p.start)).unwrap_or(0)));
                    }
                }
                _ => {}
            }
        }
        if self.closed_loop
            && let Some(id) = &decision_id
        {
            self.measuring = Some((id.clone(), 0, 0));
        }
        if let Some(board) = board.as_mut() {
            board.live_plan = Some(LivePlan {
                at: floor.now,
                problem,
                schedule: solution.schedule,
                jobs: numbers,
                decision: decision_id,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ApsConfig, ApsPolicy, PlanJob, problem_of};
    use crate::board::{PlanBoard, WindowRequest};
    use aifactory_plant::{BaselinePolicy, MachineView, Policy};

    fn idle_view(machine: usize) -> MachineView {
        MachineView {
            machine,
            now: PlantTime::from_hours(5.0),
            run_h_since_maintenance: 100.0,
            recommended_interval_h: 120.0,
            last_vibration_mm_s: 2.0,
            last_temperature_c: 40.0,
            last_current_a: 10.0,
            queue_len: 0,
        }
    }

    #[test]
    fn planned_services_start_on_a_free_machine_within_the_rate_limit() {
        let board = PlanBoard::new();
        let mut aps = ApsPolicy::new(ApsConfig::default(), BaselinePolicy::default())
            .with_board(board.clone());
        // No window, no service: on a board the maintenance skill decides whether.
        assert!(!aps.start_maintenance(&idle_view(0)));
        {
            let mut b = board.lock();
            b.max_planned_services = Some(1);
            for m in [0, 1] {
                b.windows.insert(
                    m,
                    WindowRequest {
                        decision: Some(format!("D-CBM-00000{m}")),
                        duration_s: 3600.0,
                        requested_at: PlantTime::from_hours(4.0),
                        planned_start: None,
                        started_at: None,
                    },
                );
            }
        }
        // Machine 0 is free with nothing queued: its window starts. Machine 1 must wait while
        // one planned service runs.
        assert!(aps.start_maintenance(&idle_view(0)));
        assert!(!aps.start_maintenance(&idle_view(1)));
        assert_eq!(board.lock().services_deferred, 1);
        board.lock().in_planned_service.remove(&0);
        assert!(aps.start_maintenance(&idle_view(1)));
        // Busy with work the plan has not reached: the window waits for the plan.
        let busy = MachineView {
            queue_len: 2,
            ..idle_view(0)
        };
        board.lock().in_planned_service.clear();
        assert!(!aps.start_maintenance(&busy));
    }
    use aifactory_plant::{Floor, FloorAlternative, FloorJob, FloorMachine, PlantTime};

    fn job(number: u32, product: usize) -> FloorJob {
        FloorJob {
            job: number,
            product,
            quantity: 10,
            due: PlantTime::from_hours(10.0),
            next_step: 0,
            operations: vec![vec![FloorAlternative {
                machine: 0,
                setup_s: 600.0,
                run_s: 100.0,
            }]],
            running: None,
            waiting: false,
        }
    }

    #[test]
    fn a_plan_cites_the_windows_it_places_and_the_services_it_plans_around() {
        let board = PlanBoard::new();
        let log = aifactory_core::DecisionLog::new();
        let mut aps = ApsPolicy::new(ApsConfig::default(), BaselinePolicy::default())
            .with_board(board.clone())
            .with_log(log.clone(), aifactory_core::Timestamp(0));
        let now = PlantTime::from_hours(1.0);
        let window = |decision: &str, started_at| WindowRequest {
            decision: Some(decision.to_owned()),
            duration_s: 3600.0,
            requested_at: now,
            planned_start: started_at,
            started_at,
        };
        {
            let mut b = board.lock();
            // Machine 0 asks for a window; machine 1 was stopped now; machine 2's window is
            // not started and the machine is down for another cause (a repair).
            b.windows.insert(0, window("D-CBM-000001", None));
            b.windows.insert(1, window("D-CBM-000002", Some(now)));
            b.windows.insert(2, window("D-CBM-000003", None));
        }
        let machine = |unavailable_for_s| FloorMachine {
            unavailable_for_s,
            last_product: None,
        };
        let floor = Floor {
            now,
            jobs: vec![job(7, 0)],
            machines: vec![machine(0.0), machine(3600.0), machine(1800.0)],
        };
        aps.plan(&floor);
        let logged = log.drain_decisions();
        assert_eq!(logged.len(), 1, "{logged:?}");
        let cited = &logged[0].inputs_ref;
        assert!(cited.contains("decision:D-CBM-000001"), "{cited}");
        assert!(cited.contains("decision:D-CBM-000002"), "{cited}");
        assert!(!cited.contains("D-CBM-000003"), "{cited}");
        let plan = board.lock().live_plan.clone();
        let services: Vec<PlanJob> = plan
            .map(|p| p.jobs)
            .unwrap_or_default()
            .into_iter()
            .filter(|j| matches!(j, PlanJob::Service(_)))
            .collect();
        assert_eq!(services, vec![PlanJob::Service(0)]);
        // Once the stopped machine is back, its finished service is neither placed again nor
        // cited, though the skill has not yet taken the window down.
        let floor = Floor {
            machines: vec![machine(0.0), machine(0.0), machine(0.0)],
            ..floor
        };
        board.lock().windows.remove(&0);
        aps.plan(&floor);
        let logged = log.drain_decisions();
        assert!(!logged[0].inputs_ref.contains("D-CBM-000002"), "{logged:?}");
        let plan = board.lock().live_plan.clone();
        let jobs = plan.map(|p| p.jobs).unwrap_or_default();
        assert!(!jobs.contains(&PlanJob::Service(1)), "{jobs:?}");
    }

    #[test]
    fn set_ups_are_paid_only_on_a_change_of_product() {
        let floor = Floor {
            now: PlantTime::from_hours(1.0),
            jobs: vec![job(7, 0), job(8, 1)],
            machines: vec![FloorMachine {
                unavailable_for_s: 0.0,
                last_product: Some(1),
            }],
        };
        let (problem, numbers) = problem_of(&floor, &[]);
        let setup = problem.setup.as_ref().map(|s| s[0].clone());
        assert_eq!(setup, Some(vec![vec![0, 600], vec![600, 0]]));
        assert_eq!(problem.jobs[0].operations[0].alternatives[0].duration, 100);
        assert_eq!(problem.jobs[1].due, Some(9 * 3600));
        // The idle machine's current set-up (product 1) is a frozen placeholder at time zero.
        let work = |number| PlanJob::Work {
            number,
            first_step: 0,
        };
        assert_eq!(numbers, vec![work(7), work(8), PlanJob::SetUp]);
        assert_eq!(problem.jobs[2].family, Some(1));
        assert!(aifactory_schedule::formats::validate(&problem).is_ok());
        // The solver then runs product 1 first: no change-over before it.
        let solution = aifactory_schedule::solve(
            &problem,
            &aifactory_schedule::SolveOptions {
                time_limit: None,
                max_iterations: Some(200),
                ..Default::default()
            },
        );
        let start = |j: usize| solution.schedule.placements[j][0].start;
        assert!(start(1) < start(0), "{:?}", solution.schedule.placements);
    }
}
