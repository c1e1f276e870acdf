//! Capable-to-promise (the sales stage): quote a delivery time for a new order by inserting it
//! into the current schedule, not by a fixed lead time.
//!
//! The orders already promised are solved first (weighted tardiness) to know what they need;
//! then the new order joins them with a due time of its release and a weight a thousand times
//! smaller than any promised order's, so the solver pulls it as early as it can while the
//! promised orders keep first call on the machines. The quote is the new order's completion in
//! that schedule, with what it would cost the others (their added weighted tardiness) so a
//! planner can see the trade-off. A fixed iteration budget and seed make quotes reproducible.

use aifactory_schedule::formats::validate;
use aifactory_schedule::{Job, Objective, Problem, SolveOptions, solve};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CtpError {
    #[error("the current schedule problem is invalid: {0}")]
    Problem(String),
    #[error("the new order is invalid: {0}")]
    Order(String),
}

/// A delivery quote for a new order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quote {
    /// When the new order would be finished (the problem's time unit).
    pub completion: i64,
    /// Whether that meets the due time the customer asked for (if they asked).
    pub meets_request: Option<bool>,
    /// Extra weighted tardiness the promised orders take on to make room.
    pub added_tardiness: f64,
    /// Completion of each promised order before and after the insertion.
    pub promised_before: Vec<i64>,
    pub promised_after: Vec<i64>,
}

fn weighted_tardiness(problem: &Problem, completions: &[i64]) -> f64 {
    problem
        .jobs
        .iter()
        .zip(completions)
        .map(|(j, &c)| j.due.map_or(0.0, |d| j.weight * (c - d).max(0) as f64))
        .sum()
}

fn completions(schedule: &aifactory_schedule::Schedule) -> Vec<i64> {
    schedule
        .placements
        .iter()
        .map(|ops| ops.iter().map(|p| p.end).max().unwrap_or(0))
        .collect()
}

/// Quotes `order` against the orders in `current` (solved with `iterations` tabu steps).
pub fn quote(
    current: &Problem,
    order: &Job,
    iterations: u64,
    seed: u64,
) -> Result<Quote, CtpError> {
    validate(current).map_err(|e| CtpError::Problem(e.to_string()))?;
    let options = SolveOptions {
        objective: Objective::WeightedTardiness,
        time_limit: None,
        max_iterations: Some(iterations.max(1)),
        threads: 1,
        seed,
    };
    let before = if current.jobs.is_empty() {
        Vec::new()
    } else {
        completions(&solve(current, &options).schedule)
    };
    // Jobs of weight zero (placeholders holding a machine's set-up) promise nothing.
    let min_weight = current
        .jobs
        .iter()
        .map(|j| j.weight)
        .filter(|&w| w > 0.0)
        .fold(f64::INFINITY, f64::min);
    let mut with_order = current.clone();
    let mut new_job = order.clone();
    new_job.due = Some(order.release);
    new_job.weight = if min_weight.is_finite() {
        min_weight * 1e-3
    } else {
        1.0
    };
    with_order.jobs.push(new_job);
    validate(&with_order).map_err(|e| CtpError::Order(e.to_string()))?;
    let after = completions(&solve(&with_order, &options).schedule);
    let completion = after.last().copied().unwrap_or(order.release);
    let promised_after = after[..current.jobs.len()].to_vec();
    let added = weighted_tardiness(current, &promised_after) - weighted_tardiness(current, &before);
    Ok(Quote {
        completion,
        meets_request: order.due.map(|d| completion <= d),
        added_tardiness: added.max(0.0),
        promised_before: before,
        promised_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aifactory_schedule::{Alternative, Operation};

    fn op(machine: usize, duration: i64) -> Operation {
        Operation {
            alternatives: vec![Alternative { machine, duration }],
            frozen: None,
        }
    }

    fn job(due: i64, ops: Vec<Operation>) -> Job {
        Job {
            release: 0,
            due: Some(due),
            weight: 1.0,
            family: None,
            operations: ops,
        }
    }

    fn shop() -> Problem {
        // Machine 0 is busy until 10 with promised work; machine 1 is free.
        Problem {
            name: "ctp".into(),
            machines: 2,
            jobs: vec![job(10, vec![op(0, 10)]), job(20, vec![op(0, 5), op(1, 5)])],
            downtime: Vec::new(),
            setup: None,
        }
    }

    #[test]
    fn quotes_from_the_live_schedule_without_delaying_promises() {
        // A new order that needs machine 0 for 3 units: the earliest it fits without making a
        // promised order late is after both promised machine-0 operations (at 15 → done 18),
        // or between them if the schedule has slack.
        let new = Job {
            release: 0,
            due: Some(30),
            weight: 1.0,
            family: None,
            operations: vec![op(0, 3)],
        };
        let q = quote(&shop(), &new, 2_000, 1).unwrap();
        assert_eq!(q.added_tardiness, 0.0, "{q:?}");
        assert!(q.completion <= 18, "{q:?}");
        assert_eq!(q.meets_request, Some(true));
        // The same order on the free machine is quoted at once.
        let free = Job {
            operations: vec![op(1, 3)],
            ..new.clone()
        };
        assert_eq!(quote(&shop(), &free, 2_000, 1).unwrap().completion, 3);
        // A request the shop cannot meet is said so.
        let tight = Job {
            due: Some(2),
            ..new
        };
        assert_eq!(
            quote(&shop(), &tight, 2_000, 1).unwrap().meets_request,
            Some(false)
        );
    }

    #[test]
    fn bad_orders_are_refused() {
        let bad = Job {
            release: 0,
            due: None,
            weight: 1.0,
            family: None,
            operations: vec![op(7, 3)],
        };
        assert!(matches!(
            quote(&shop(), &bad, 100, 1),
            Err(CtpError::Order(_))
        ));
        let empty_machines = Problem {
            machines: 0,
            ..shop()
        };
        assert!(matches!(
            quote(&empty_machines, &bad, 100, 1),
            Err(CtpError::Problem(_))
        ));
    }
}
