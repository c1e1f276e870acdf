//! The scheduling problem: jobs of ordered operations, each with eligible machines and their
//! durations (the flexible job shop; the classic job shop is the one-eligible case), release and
//! due dates, weights, machine unavailability, frozen operations and optional set-up times.
//! Times are integers in the instance's own unit (minutes, seconds, or abstract units).

use serde::{Deserialize, Serialize};

/// Machine index, 0-based internally (formats convert on the way in and out).
pub type MachineId = usize;

/// One way to run an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alternative {
    pub machine: MachineId,
    pub duration: i64,
}

/// An operation already started or pinned by the planner: it keeps its machine and start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frozen {
    pub machine: MachineId,
    pub start: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Non-empty; at most one entry per machine.
    pub alternatives: Vec<Alternative>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen: Option<Frozen>,
}

impl Operation {
    /// The shortest duration among its alternatives (0 if it has none).
    pub fn shortest(&self) -> i64 {
        self.alternatives
            .iter()
            .map(|a| a.duration)
            .min()
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Earliest start of the first operation.
    #[serde(default)]
    pub release: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<i64>,
    #[serde(default = "one")]
    pub weight: f64,
    /// Set-up family: a machine switching between families pays `setup[machine][from][to]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<usize>,
    pub operations: Vec<Operation>,
}

fn one() -> f64 {
    1.0
}

/// A machine is unavailable in `[start, end)` (planned maintenance, a closed shift).
/// Operations do not straddle it: they wait until it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downtime {
    pub machine: MachineId,
    pub start: i64,
    pub end: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(default)]
    pub name: String,
    pub machines: usize,
    pub jobs: Vec<Job>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub downtime: Vec<Downtime>,
    /// Sequence-dependent set-up times by machine, then family from, then family to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<Vec<Vec<Vec<i64>>>>,
}

/// What the solver minimises.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    Makespan,
    /// Total weighted tardiness: Σ weight · max(0, completion − due).
    WeightedTardiness,
    /// `makespan_weight · makespan + Σ weight · tardiness`.
    Mix {
        makespan_weight: f64,
    },
}

/// One operation placed in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub job: usize,
    pub op: usize,
    pub machine: MachineId,
    pub start: i64,
    pub end: i64,
}

/// A complete schedule: `placements[job][op]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub placements: Vec<Vec<Placement>>,
}

impl Schedule {
    pub fn makespan(&self) -> i64 {
        self.placements
            .iter()
            .flatten()
            .map(|p| p.end)
            .max()
            .unwrap_or(0)
    }

    /// Σ weight · max(0, completion − due) over jobs with a due date.
    pub fn weighted_tardiness(&self, problem: &Problem) -> f64 {
        problem
            .jobs
            .iter()
            .zip(&self.placements)
            .filter_map(|(job, ops)| {
                let due = job.due?;
                let end = ops.last().map_or(0, |p| p.end);
                Some(job.weight * (end - due).max(0) as f64)
            })
            .sum()
    }

    pub fn objective(&self, problem: &Problem, objective: Objective) -> f64 {
        match objective {
            Objective::Makespan => self.makespan() as f64,
            Objective::WeightedTardiness => self.weighted_tardiness(problem),
            Objective::Mix { makespan_weight } => {
                makespan_weight * self.makespan() as f64 + self.weighted_tardiness(problem)
            }
        }
    }
}

impl Problem {
    pub fn operation_count(&self) -> usize {
        self.jobs.iter().map(|j| j.operations.len()).sum()
    }

    /// Whether every operation has exactly one eligible machine (the classic job shop).
    pub fn is_classic(&self) -> bool {
        self.jobs
            .iter()
            .flat_map(|j| &j.operations)
            .all(|o| o.alternatives.len() == 1)
    }

    pub fn setup_time(&self, machine: MachineId, from: Option<usize>, to: Option<usize>) -> i64 {
        match (&self.setup, from, to) {
            (Some(s), Some(a), Some(b)) => s
                .get(machine)
                .and_then(|m| m.get(a))
                .and_then(|row| row.get(b))
                .copied()
                .unwrap_or(0),
            _ => 0,
        }
    }
}
