//! Lower bounds on the makespan, cheap enough to report with every schedule.

use crate::problem::{Operation, Problem};

/// The larger of the job bound (release + the shortest way through the job's operations) and
/// the machine bound (for operations that can only run on one machine: earliest release among
/// them + their total duration). Frozen operations count like any other.
pub fn lower_bound(problem: &Problem) -> i64 {
    let job_bound = problem
        .jobs
        .iter()
        .map(|job| job.release + job.operations.iter().map(Operation::shortest).sum::<i64>())
        .max()
        .unwrap_or(0);

    // Machine bound over single-machine operations, with the least head before and tail after.
    let mut load = vec![0i64; problem.machines];
    let mut head = vec![i64::MAX; problem.machines];
    let mut tail = vec![i64::MAX; problem.machines];
    // Flexible operations add their smallest duration to a pooled bound over all machines.
    let mut pooled = 0i64;
    for job in &problem.jobs {
        let mins: Vec<i64> = job.operations.iter().map(Operation::shortest).collect();
        let mut before = job.release;
        for (k, op) in job.operations.iter().enumerate() {
            let after: i64 = mins[k + 1..].iter().sum();
            if let [only] = op.alternatives.as_slice()
                && only.machine < problem.machines
            {
                load[only.machine] += only.duration;
                head[only.machine] = head[only.machine].min(before);
                tail[only.machine] = tail[only.machine].min(after);
            }
            pooled += mins[k];
            before += mins[k];
        }
    }
    let machine_bound = (0..problem.machines)
        .filter(|&m| load[m] > 0)
        .map(|m| head[m] + load[m] + tail[m])
        .max()
        .unwrap_or(0);
    let pooled_bound = if problem.machines > 0 {
        (pooled + problem.machines as i64 - 1) / problem.machines as i64
    } else {
        0
    };
    job_bound.max(machine_bound).max(pooled_bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::{Alternative, Job, Operation};

    fn op(machine: usize, duration: i64) -> Operation {
        Operation {
            alternatives: vec![Alternative { machine, duration }],
            frozen: None,
        }
    }

    #[test]
    fn machine_and_job_bounds() {
        let job = |ops| Job {
            release: 0,
            due: None,
            weight: 1.0,
            family: None,
            operations: ops,
        };
        let p = Problem {
            name: "t".into(),
            machines: 2,
            jobs: vec![job(vec![op(0, 3), op(1, 2)]), job(vec![op(0, 4), op(1, 1)])],
            downtime: vec![],
            setup: None,
        };
        // Machine 0: load 7, least tail 1 → 8; jobs: 5 and 5.
        assert_eq!(lower_bound(&p), 8);
    }
}
