//! The scheduling skill: on every release, breakdown and repair it turns the floor into a
//! flexible job-shop problem (running operations frozen, broken machines down until their
//! expected return, due dates from the sales orders), solves it with the APS solver, and then
//! dispatches by the plan — each machine takes the queued operation the plan starts first on
//! it, falling back to earliest-due-date for work the plan put elsewhere.

use aifactory_schedule::{
    Alternative, Downtime, Frozen, Job, Objective, Operation, Problem, SolveOptions, solve,
};
use aifactory_twin::{
    BaselinePolicy, Floor, MachineId, MachineView, MaterialView, Policy, PurchaseRequest, QueuedOp,
    SimTime,
};
use std::collections::HashMap;

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
    /// (work order, step) → (machine, planned start in seconds from the plan's `now`).
    plan: HashMap<(u32, usize), (MachineId, i64)>,
    pub replans: u64,
}

impl ApsPolicy {
    pub fn new(config: ApsConfig, base: BaselinePolicy) -> ApsPolicy {
        ApsPolicy {
            config,
            base,
            plan: HashMap::new(),
            replans: 0,
        }
    }
}

/// The floor as a scheduling problem, in whole seconds from now.
fn problem_of(floor: &Floor) -> (Problem, Vec<u32>) {
    let now_s = floor.now.0 as f64 / 1000.0;
    let mut numbers = Vec::with_capacity(floor.jobs.len());
    let mut jobs = Vec::with_capacity(floor.jobs.len());
    for j in &floor.jobs {
        let mut operations: Vec<Operation> = j
            .operations
            .iter()
            .map(|alts| Operation {
                alternatives: alts
                    .iter()
                    .map(|&(machine, seconds)| Alternative {
                        machine,
                        duration: seconds.ceil().max(1.0) as i64,
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
        numbers.push(j.job);
        jobs.push(Job {
            release: 0,
            due: Some(due),
            weight: f64::from(j.quantity),
            family: None,
            operations,
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
            machines: floor.machines.len(),
            jobs,
            downtime,
            setup: None,
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

    fn dispatch(&mut self, now: SimTime, machine: MachineId, candidates: &[QueuedOp]) -> usize {
        let planned = candidates
            .iter()
            .enumerate()
            .filter_map(|(i, op)| match self.plan.get(&(op.job, op.step)) {
                Some(&(m, start)) if m == machine => Some((start, op.job, i)),
                _ => None,
            })
            .min();
        match planned {
            Some((_, _, i)) => i,
            None => BaselinePolicy {
                dispatch: aifactory_twin::DispatchRule::Edd,
                ..self.base
            }
            .dispatch(now, machine, candidates),
        }
    }

    fn start_maintenance(&mut self, view: &MachineView) -> bool {
        self.base.start_maintenance(view)
    }

    fn purchase(&mut self, now: SimTime, stock: &[MaterialView]) -> Vec<PurchaseRequest> {
        self.base.purchase(now, stock)
    }

    fn wants_floor(&self) -> bool {
        true
    }

    fn plan(&mut self, floor: &Floor) {
        self.replans += 1;
        self.plan.clear();
        if floor.jobs.is_empty() {
            return;
        }
        let (problem, numbers) = problem_of(floor);
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
        for (j, ops) in solution.schedule.placements.iter().enumerate() {
            let Some(&number) = numbers.get(j) else {
                continue;
            };
            let first_step = floor.jobs[j].next_step;
            for p in ops {
                self.plan
                    .insert((number, first_step + p.op), (p.machine, p.start));
            }
        }
    }
}
