//! The anytime solver: a constructive start, then tabu search, on one or more threads.
//!
//! Determinism: each thread's search is a pure function of (problem, seed, thread index,
//! iteration budget). With `max_iterations` set and no time limit the result is identical on
//! every run and machine; with a time limit the search stops wherever the clock says, so the
//! result can differ with machine speed (never with anything else).

mod construct;
mod graph;
mod tabu;

use crate::bounds::lower_bound;
use crate::problem::{Objective, Problem, Schedule};
use graph::Flat;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolveOptions {
    pub objective: Objective,
    pub time_limit: Option<Duration>,
    /// Tabu iterations per thread; `None` for no limit (then a time limit is required).
    pub max_iterations: Option<u64>,
    pub threads: usize,
    pub seed: u64,
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            objective: Objective::Makespan,
            time_limit: Some(Duration::from_secs(10)),
            max_iterations: None,
            threads: 1,
            seed: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    pub schedule: Schedule,
    pub makespan: i64,
    pub objective: f64,
    pub lower_bound: i64,
    /// Tabu iterations over all threads.
    pub iterations: u64,
    pub time_to_best_s: f64,
    pub elapsed_s: f64,
}

/// Solves `problem`. The problem must be valid (see `formats::validate`).
pub fn solve(problem: &Problem, options: &SolveOptions) -> Solution {
    let started = Instant::now();
    let flat = Flat::new(problem);
    let bound = lower_bound(problem);
    let threads = options.threads.max(1);
    let deadline = options.time_limit.map(|t| started + t);
    // With no budget at all, stop after a modest number of iterations rather than never.
    let max_iterations = options.max_iterations.unwrap_or(if deadline.is_some() {
        u64::MAX
    } else {
        100_000
    });
    let target = match options.objective {
        Objective::Makespan => bound as f64,
        _ => 0.0,
    };
    let run = |index: usize| {
        let seed = options
            .seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(index as u64);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let noise = if index == 0 { 0.0 } else { 0.3 };
        let by_due_date = options.objective != Objective::Makespan;
        let start = construct::greedy(&flat, problem, &mut rng, noise, by_due_date);
        let mut search = tabu::Search {
            flat: &flat,
            problem,
            objective: options.objective,
            rng,
            deadline,
            started,
            max_iterations,
            target,
            scratch: None,
        };
        search.run(start)
    };
    let found: Vec<tabu::Found> = if threads == 1 {
        vec![run(0)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads).map(|i| scope.spawn(move || run(i))).collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        })
    };
    let iterations = found.iter().map(|f| f.iterations).sum();
    // Best value; ties go to the lowest thread index so the choice is deterministic.
    let best = found
        .into_iter()
        .reduce(|a, b| if b.value < a.value { b } else { a });
    let (schedule, makespan, objective, time_to_best_s) = match best {
        Some(b) => (
            b.state.to_schedule(&flat, problem),
            b.state.makespan,
            b.value,
            b.time_to_best_s,
        ),
        None => (
            Schedule {
                placements: Vec::new(),
            },
            0,
            0.0,
            0.0,
        ),
    };
    Solution {
        schedule,
        makespan,
        objective,
        lower_bound: bound,
        iterations,
        time_to_best_s,
        elapsed_s: started.elapsed().as_secs_f64(),
    }
}
