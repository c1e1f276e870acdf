//! The constructive start: Giffler–Thompson active schedules. The operation able to finish
//! earliest fixes a machine and a time; among the operations that could start on that machine
//! before then, a priority rule picks: most work remaining for the makespan, earliest due date
//! for tardiness objectives.

use super::graph::{Flat, State, after_downtime};
use crate::problem::Problem;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A feasible first solution. `noise` > 0 randomises priorities a little (for restarts).
pub(crate) fn greedy(
    flat: &Flat,
    problem: &Problem,
    rng: &mut ChaCha8Rng,
    noise: f64,
    by_due_date: bool,
) -> State {
    let jobs = problem.jobs.len();
    let mut next = vec![0usize; jobs];
    let mut job_ready: Vec<i64> = problem.jobs.iter().map(|j| j.release).collect();
    let mut machine_free = vec![0i64; flat.machines];
    let mut machine_last: Vec<Option<u32>> = vec![None; flat.machines];
    let mut machine = vec![0u32; flat.n];
    let mut dur = vec![0i64; flat.n];
    let mut seq: Vec<Vec<u32>> = vec![Vec::new(); flat.machines];
    // Remaining work of each job, by its shortest alternatives.
    let mut remaining: Vec<i64> = problem
        .jobs
        .iter()
        .map(|j| {
            j.operations
                .iter()
                .map(crate::problem::Operation::shortest)
                .sum()
        })
        .collect();
    // Earliest start of operation `o` on machine `m` given what is placed so far.
    let earliest_start = |job_ready: &[i64],
                          machine_free: &[i64],
                          machine_last: &[Option<u32>],
                          o: u32,
                          m: usize,
                          d: i64|
     -> i64 {
        let setup = match (problem.setup.is_some(), machine_last[m]) {
            (true, Some(prev)) => {
                problem.setup_time(m, flat.family[prev as usize], flat.family[o as usize])
            }
            _ => 0,
        };
        let mut start = job_ready[flat.job[o as usize] as usize].max(machine_free[m] + setup);
        if let Some((_, fixed)) = flat.frozen[o as usize] {
            start = start.max(fixed);
        }
        after_downtime(&flat.downtime[m], start, d)
    };
    let mut ready: Vec<(u32, i64, i64, usize, i64)> = Vec::new(); // (op, start, end, machine, dur)
    for _ in 0..flat.n {
        ready.clear();
        for (j, &step) in next.iter().enumerate() {
            if step >= problem.jobs[j].operations.len() {
                continue;
            }
            let o = flat.first_op[j] + step as u32;
            let mut best_alt: Option<(i64, i64, usize, i64)> = None;
            for &(m, d) in &flat.alts[o as usize] {
                if let Some((fm, _)) = flat.frozen[o as usize]
                    && fm != m
                {
                    continue;
                }
                let m = m as usize;
                let start = earliest_start(&job_ready, &machine_free, &machine_last, o, m, d);
                if best_alt.is_none_or(|b| (start + d, m) < (b.1, b.2)) {
                    best_alt = Some((start, start + d, m, d));
                }
            }
            if let Some((start, end, m, d)) = best_alt {
                ready.push((o, start, end, m, d));
            }
        }
        // The earliest completion fixes the machine and the conflict window.
        let Some(&(o_star, _, end_star, m_star, _)) = ready.iter().min_by_key(|r| (r.2, r.3, r.0))
        else {
            break;
        };
        let mut best: Option<(f64, i64, u32, i64, usize)> = None;
        for &(o, start, _, m, d) in &ready {
            if m != m_star || (start >= end_star && o != o_star) {
                continue;
            }
            let j = flat.job[o as usize] as usize;
            let jitter = if noise > 0.0 {
                rng.random_range(0.0..noise) * d as f64
            } else {
                0.0
            };
            // Frozen operations go first: they must keep their start.
            let primary = if let Some((_, fixed)) = flat.frozen[o as usize] {
                f64::MIN / 2.0 + fixed as f64
            } else if by_due_date {
                problem.jobs[j].due.map_or(i64::MAX / 4, |due| due) as f64 + jitter
            } else {
                -(remaining[j] as f64) + jitter
            };
            let candidate = (primary, -remaining[j], o, d, m);
            let better = match &best {
                None => true,
                Some(b) => (candidate.0, candidate.1, candidate.2) < (b.0, b.1, b.2),
            };
            if better {
                best = Some(candidate);
            }
        }
        let Some((_, _, o, d, m)) = best else { break };
        let j = flat.job[o as usize] as usize;
        let start = earliest_start(&job_ready, &machine_free, &machine_last, o, m, d);
        machine[o as usize] = m as u32;
        dur[o as usize] = d;
        seq[m].push(o);
        machine_free[m] = start + d;
        machine_last[m] = Some(o);
        job_ready[j] = start + d;
        remaining[j] -= flat.alts[o as usize].iter().map(|a| a.1).min().unwrap_or(0);
        next[j] += 1;
    }
    State::new(flat, machine, dur, seq)
}
