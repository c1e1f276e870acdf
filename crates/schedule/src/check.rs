//! The independent feasibility checker: is this schedule one the plant could actually run?
//!
//! Invariant: shares no code with the solver. It recomputes everything from the `Problem` and
//! the placements, so a bug in the solver's bookkeeping cannot hide itself here. It reports every
//! violation it finds rather than stopping at the first, in a stable order (shape, then per
//! operation in job order, then per machine in time order). Indices are 0-based, as in `Problem`.

use std::fmt;

use crate::problem::{Frozen, MachineId, Placement, Problem, Schedule};

/// One way a schedule breaks the problem. Operations are named `(job, op)` by their position in
/// `Schedule::placements`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// `placements` has a different number of jobs than the problem.
    JobCount { expected: usize, found: usize },
    /// A job has a different number of placements than operations.
    OperationCount {
        job: usize,
        expected: usize,
        found: usize,
    },
    /// The placement at `placements[job][op]` says it is another operation.
    WrongIndex {
        job: usize,
        op: usize,
        found_job: usize,
        found_op: usize,
    },
    IneligibleMachine {
        job: usize,
        op: usize,
        machine: MachineId,
    },
    WrongDuration {
        job: usize,
        op: usize,
        machine: MachineId,
        expected: i64,
        found: i64,
    },
    BeforeRelease {
        job: usize,
        start: i64,
        release: i64,
    },
    /// Operation `op` starts before operation `op - 1` of the same job ends.
    Precedence {
        job: usize,
        op: usize,
        start: i64,
        previous_end: i64,
    },
    /// Two operations share a machine at the same time; `first` starts no later than `second`.
    Overlap {
        machine: MachineId,
        first: (usize, usize),
        second: (usize, usize),
        first_end: i64,
        second_start: i64,
    },
    /// Consecutive operations on a machine leave less than the set-up time between them.
    Setup {
        machine: MachineId,
        first: (usize, usize),
        second: (usize, usize),
        gap: i64,
        required: i64,
    },
    Downtime {
        job: usize,
        op: usize,
        machine: MachineId,
        start: i64,
        end: i64,
        down_start: i64,
        down_end: i64,
    },
    /// A frozen operation was moved to another machine or start.
    FrozenMoved {
        job: usize,
        op: usize,
        frozen: Frozen,
        machine: MachineId,
        start: i64,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Violation::JobCount { expected, found } => write!(
                f,
                "the schedule has {found} jobs but the problem has {expected}."
            ),
            Violation::OperationCount {
                job,
                expected,
                found,
            } => write!(
                f,
                "job {job} has {found} placements but {expected} operations."
            ),
            Violation::WrongIndex {
                job,
                op,
                found_job,
                found_op,
            } => write!(
                f,
                "the placement of job {job} operation {op} is labelled job {found_job} operation \
                 {found_op}."
            ),
            Violation::IneligibleMachine { job, op, machine } => write!(
                f,
                "job {job} operation {op} runs on machine {machine}, which is not one of its \
                 eligible machines."
            ),
            Violation::WrongDuration {
                job,
                op,
                machine,
                expected,
                found,
            } => write!(
                f,
                "job {job} operation {op} lasts {found} on machine {machine} but should last \
                 {expected}."
            ),
            Violation::BeforeRelease {
                job,
                start,
                release,
            } => write!(
                f,
                "job {job} starts at {start}, before its release at {release}."
            ),
            Violation::Precedence {
                job,
                op,
                start,
                previous_end,
            } => write!(
                f,
                "job {job} operation {op} starts at {start}, before operation {} ends at \
                 {previous_end}.",
                op - 1
            ),
            Violation::Overlap {
                machine,
                first,
                second,
                first_end,
                second_start,
            } => write!(
                f,
                "on machine {machine}, job {} operation {} starts at {second_start}, before job \
                 {} operation {} ends at {first_end}.",
                second.0, second.1, first.0, first.1
            ),
            Violation::Setup {
                machine,
                first,
                second,
                gap,
                required,
            } => write!(
                f,
                "on machine {machine}, only {gap} passes between job {} operation {} and job {} \
                 operation {}, less than the set-up time of {required}.",
                first.0, first.1, second.0, second.1
            ),
            Violation::Downtime {
                job,
                op,
                machine,
                start,
                end,
                down_start,
                down_end,
            } => write!(
                f,
                "job {job} operation {op} runs on machine {machine} from {start} to {end}, into \
                 its downtime from {down_start} to {down_end}."
            ),
            Violation::FrozenMoved {
                job,
                op,
                frozen,
                machine,
                start,
            } => write!(
                f,
                "job {job} operation {op} is frozen on machine {} at {} but was placed on \
                 machine {machine} at {start}.",
                frozen.machine, frozen.start
            ),
        }
    }
}

/// Every violation of `problem` by `schedule`; empty means feasible.
pub fn check(problem: &Problem, schedule: &Schedule) -> Vec<Violation> {
    let mut out = Vec::new();
    if schedule.placements.len() != problem.jobs.len() {
        out.push(Violation::JobCount {
            expected: problem.jobs.len(),
            found: schedule.placements.len(),
        });
    }
    // Placements on a real machine, by machine, for the resource checks below.
    let mut by_machine: Vec<Vec<(usize, usize, Placement)>> = vec![Vec::new(); problem.machines];

    for (j, (job, placements)) in problem.jobs.iter().zip(&schedule.placements).enumerate() {
        if placements.len() != job.operations.len() {
            out.push(Violation::OperationCount {
                job: j,
                expected: job.operations.len(),
                found: placements.len(),
            });
        }
        let mut previous_end = None;
        for (o, (op, p)) in job.operations.iter().zip(placements).enumerate() {
            if (p.job, p.op) != (j, o) {
                out.push(Violation::WrongIndex {
                    job: j,
                    op: o,
                    found_job: p.job,
                    found_op: p.op,
                });
            }
            match op.alternatives.iter().find(|a| a.machine == p.machine) {
                None => out.push(Violation::IneligibleMachine {
                    job: j,
                    op: o,
                    machine: p.machine,
                }),
                Some(alt) if p.end - p.start != alt.duration => {
                    out.push(Violation::WrongDuration {
                        job: j,
                        op: o,
                        machine: p.machine,
                        expected: alt.duration,
                        found: p.end - p.start,
                    })
                }
                Some(_) => {}
            }
            if o == 0 && p.start < job.release {
                out.push(Violation::BeforeRelease {
                    job: j,
                    start: p.start,
                    release: job.release,
                });
            }
            if let Some(prev) = previous_end
                && p.start < prev
            {
                out.push(Violation::Precedence {
                    job: j,
                    op: o,
                    start: p.start,
                    previous_end: prev,
                });
            }
            previous_end = Some(p.end);
            if let Some(frozen) = op.frozen
                && (frozen.machine, frozen.start) != (p.machine, p.start)
            {
                out.push(Violation::FrozenMoved {
                    job: j,
                    op: o,
                    frozen,
                    machine: p.machine,
                    start: p.start,
                });
            }
            for d in problem.downtime.iter().filter(|d| d.machine == p.machine) {
                // Half-open intervals: touching a downtime at either end is fine; a zero-length
                // operation conflicts only strictly inside one.
                if p.start < d.end && d.start < p.end {
                    out.push(Violation::Downtime {
                        job: j,
                        op: o,
                        machine: p.machine,
                        start: p.start,
                        end: p.end,
                        down_start: d.start,
                        down_end: d.end,
                    });
                }
            }
            if let Some(list) = by_machine.get_mut(p.machine) {
                list.push((j, o, *p));
            }
        }
    }

    for (machine, list) in by_machine.iter_mut().enumerate() {
        // Sorting by (start, end) puts a zero-length operation before a real one starting at the
        // same instant, so it counts as sequenced before it rather than inside it.
        list.sort_by_key(|&(j, o, p)| (p.start, p.end, j, o));
        // Compare each operation with the one that ends last among those before it: that catches
        // an overlap even when a long operation spans several short ones.
        let mut latest: Option<(usize, usize, Placement)> = None;
        for &(j, o, p) in list.iter() {
            if let Some((pj, po, prev)) = latest {
                if p.start < prev.end {
                    out.push(Violation::Overlap {
                        machine,
                        first: (pj, po),
                        second: (j, o),
                        first_end: prev.end,
                        second_start: p.start,
                    });
                } else {
                    let required = problem.setup_time(
                        machine,
                        problem.jobs[pj].family,
                        problem.jobs[j].family,
                    );
                    let gap = p.start - prev.end;
                    if gap < required {
                        out.push(Violation::Setup {
                            machine,
                            first: (pj, po),
                            second: (j, o),
                            gap,
                            required,
                        });
                    }
                }
                if p.end <= prev.end {
                    continue;
                }
            }
            latest = Some((j, o, p));
        }
    }
    out
}
