//! The solver: every schedule it returns passes the independent checker, it is reproducible for
//! a seed and an iteration budget, and it meets quality baselines on classic instances.

use aifactory_schedule::formats::{Format, parse};
use aifactory_schedule::{
    Alternative, Downtime, Frozen, Job, Objective, Operation, Problem, SolveOptions, check,
    lower_bound, solve,
};
use proptest::prelude::*;
use std::path::PathBuf;

fn budget(iterations: u64) -> SolveOptions {
    SolveOptions {
        objective: Objective::Makespan,
        time_limit: None,
        max_iterations: Some(iterations),
        threads: 1,
        seed: 7,
    }
}

fn shared(relative: &str) -> Option<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(relative);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(_) => {
            eprintln!("skipped: shared data not found at {}", path.display());
            None
        }
    }
}

const FT06: &str = "6 6
2 1 0 3 1 6 3 7 5 3 4 6
1 8 2 5 4 10 5 10 0 10 3 4
2 5 3 4 5 8 0 9 1 1 4 7
1 5 0 5 2 5 3 3 4 8 5 9
2 9 1 3 4 5 5 4 0 3 3 1
1 3 3 3 5 9 0 10 4 4 2 1
";

#[test]
fn ft06_is_solved_to_optimality() {
    let problem = parse(FT06, Format::Taillard).expect("ft06 parses");
    let solution = solve(&problem, &budget(20_000));
    assert!(check(&problem, &solution.schedule).is_empty());
    assert_eq!(solution.makespan, 55);
    assert_eq!(solution.makespan, solution.schedule.makespan());
}

#[test]
fn same_seed_and_budget_same_schedule_on_one_or_two_threads() {
    let problem = parse(FT06, Format::Taillard).expect("ft06 parses");
    for threads in [1, 2] {
        let options = SolveOptions {
            threads,
            ..budget(3_000)
        };
        let a = solve(&problem, &options);
        let b = solve(&problem, &options);
        assert_eq!(a.schedule, b.schedule, "threads {threads}");
        assert_eq!(a.iterations, b.iterations);
    }
}

/// Quality baselines on real instances: a regression in the search shows up here.
#[test]
fn quality_baselines() {
    for (file, format, iterations, at_most) in [
        ("jssp/ft10.txt", Format::Taillard, 400_000, 945),
        ("jssp/la01.txt", Format::Taillard, 10_000, 666),
        ("jssp/ta01.txt", Format::Taillard, 300_000, 1250),
        ("fjsp/mk01.fjs", Format::Brandimarte, 50_000, 41),
    ] {
        let Some(text) = shared(file) else { return };
        let problem = parse(&text, format).expect("instance parses");
        let solution = solve(&problem, &budget(iterations));
        assert!(check(&problem, &solution.schedule).is_empty(), "{file}");
        assert!(
            solution.makespan <= at_most,
            "{file}: makespan {} > baseline {at_most}",
            solution.makespan
        );
        assert!(solution.makespan >= lower_bound(&problem));
    }
}

fn op(alternatives: &[(usize, i64)]) -> Operation {
    Operation {
        alternatives: alternatives
            .iter()
            .map(|&(machine, duration)| Alternative { machine, duration })
            .collect(),
        frozen: None,
    }
}

#[test]
fn frozen_operations_keep_their_machine_and_start() {
    let mut problem = parse(FT06, Format::Taillard).expect("ft06 parses");
    // Job 0's first operation already runs on its machine from t = 0.
    let machine = problem.jobs[0].operations[0].alternatives[0].machine;
    problem.jobs[0].operations[0].frozen = Some(Frozen { machine, start: 0 });
    let solution = solve(&problem, &budget(5_000));
    assert!(check(&problem, &solution.schedule).is_empty());
    let p = solution.schedule.placements[0][0];
    assert_eq!((p.machine, p.start), (machine, 0));
}

#[test]
fn tardiness_objective_reduces_weighted_tardiness() {
    let mut problem = parse(FT06, Format::Taillard).expect("ft06 parses");
    for (j, job) in problem.jobs.iter_mut().enumerate() {
        job.due = Some(30 + 5 * j as i64);
        job.weight = 1.0 + j as f64;
    }
    let makespan_first = solve(&problem, &budget(2_000));
    let twt = solve(
        &problem,
        &SolveOptions {
            objective: Objective::WeightedTardiness,
            ..budget(2_000)
        },
    );
    assert!(check(&problem, &twt.schedule).is_empty());
    assert!(
        twt.schedule.weighted_tardiness(&problem)
            <= makespan_first.schedule.weighted_tardiness(&problem),
        "{} vs {}",
        twt.schedule.weighted_tardiness(&problem),
        makespan_first.schedule.weighted_tardiness(&problem)
    );
    assert_eq!(twt.objective, twt.schedule.weighted_tardiness(&problem));
}

fn arbitrary_problem() -> impl Strategy<Value = Problem> {
    (1usize..5, 1usize..6, any::<u64>()).prop_flat_map(|(machines, jobs, _)| {
        let operation = prop::collection::btree_map(0..machines, 1i64..20, 1..=machines)
            .prop_map(|alts| op(&alts.into_iter().collect::<Vec<_>>()));
        let job =
            (prop::collection::vec(operation, 1..5), 0i64..30).prop_map(|(operations, release)| {
                Job {
                    release,
                    due: Some(release + 40),
                    weight: 1.0,
                    family: None,
                    operations,
                }
            });
        let downtime =
            prop::collection::vec((0..machines, 0i64..80, 1i64..15), 0..3).prop_map(|v| {
                v.into_iter()
                    .map(|(machine, start, len)| Downtime {
                        machine,
                        start,
                        end: start + len,
                    })
                    .collect::<Vec<_>>()
            });
        (prop::collection::vec(job, jobs..=jobs), downtime).prop_map(move |(jobs, downtime)| {
            Problem {
                name: "random".into(),
                machines,
                jobs,
                downtime,
                setup: None,
            }
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the instance — flexible, with releases and downtime — the schedule is feasible,
    /// no better than the lower bound, and its reported makespan is its real one.
    #[test]
    fn every_schedule_is_feasible(problem in arbitrary_problem(), seed in 0u64..1000, twt in any::<bool>()) {
        let options = SolveOptions {
            seed,
            objective: if twt { Objective::WeightedTardiness } else { Objective::Makespan },
            ..budget(300)
        };
        let solution = solve(&problem, &options);
        let violations = check(&problem, &solution.schedule);
        prop_assert!(violations.is_empty(), "{violations:?}");
        prop_assert!(solution.makespan >= lower_bound(&problem));
        prop_assert_eq!(solution.makespan, solution.schedule.makespan());
    }
}
