//! The feasibility checker: a hand-made feasible schedule passes, and each way of breaking it is
//! reported as exactly that violation.

use aifactory_schedule::{
    Alternative, Downtime, Frozen, Job, Operation, Placement, Problem, Schedule, Violation, check,
};

fn alt(machine: usize, duration: i64) -> Alternative {
    Alternative { machine, duration }
}

fn op(alternatives: Vec<Alternative>) -> Operation {
    Operation {
        alternatives,
        frozen: None,
    }
}

/// Three machines, two jobs in two set-up families (switching costs 1), downtime on M1 and M2,
/// job 0 operation 1 frozen on M2 at 3.
fn problem() -> Problem {
    let mut frozen = op(vec![alt(2, 2)]);
    frozen.frozen = Some(Frozen {
        machine: 2,
        start: 3,
    });
    Problem {
        name: "check".into(),
        machines: 3,
        jobs: vec![
            Job {
                release: 0,
                due: Some(5),
                weight: 1.0,
                family: Some(0),
                operations: vec![op(vec![alt(0, 3), alt(1, 5)]), frozen],
            },
            Job {
                release: 2,
                due: None,
                weight: 1.0,
                family: Some(1),
                operations: vec![op(vec![alt(0, 4)]), op(vec![alt(1, 3), alt(2, 1)])],
            },
        ],
        downtime: vec![
            Downtime {
                machine: 2,
                start: 5,
                end: 8,
            },
            Downtime {
                machine: 1,
                start: 6,
                end: 8,
            },
        ],
        setup: Some(vec![vec![vec![0, 1], vec![1, 0]]; 3]),
    }
}

fn place(job: usize, op: usize, machine: usize, start: i64, end: i64) -> Placement {
    Placement {
        job,
        op,
        machine,
        start,
        end,
    }
}

/// Feasible, and tight: job 1 waits one unit of set-up on M0, job 0 ends exactly when M2 goes
/// down, job 1 starts on M1 exactly when its downtime ends.
fn schedule() -> Schedule {
    Schedule {
        placements: vec![
            vec![place(0, 0, 0, 0, 3), place(0, 1, 2, 3, 5)],
            vec![place(1, 0, 0, 4, 8), place(1, 1, 1, 8, 11)],
        ],
    }
}

#[track_caller]
fn assert_only(problem: &Problem, schedule: &Schedule, expected: Violation) {
    assert_eq!(check(problem, schedule), vec![expected]);
}

#[test]
fn feasible_schedule_passes() {
    assert_eq!(check(&problem(), &schedule()), vec![]);
    assert_eq!(schedule().makespan(), 11);
}

#[test]
fn missing_job() {
    let mut s = schedule();
    s.placements.pop();
    assert_only(
        &problem(),
        &s,
        Violation::JobCount {
            expected: 2,
            found: 1,
        },
    );
}

#[test]
fn missing_operation() {
    let mut s = schedule();
    s.placements[1].pop();
    assert_only(
        &problem(),
        &s,
        Violation::OperationCount {
            job: 1,
            expected: 2,
            found: 1,
        },
    );
}

#[test]
fn mislabelled_placement() {
    let mut s = schedule();
    s.placements[1][0].job = 0;
    assert_only(
        &problem(),
        &s,
        Violation::WrongIndex {
            job: 1,
            op: 0,
            found_job: 0,
            found_op: 0,
        },
    );
}

#[test]
fn ineligible_machine() {
    let mut s = schedule();
    s.placements[0][0] = place(0, 0, 2, 0, 3);
    assert_only(
        &problem(),
        &s,
        Violation::IneligibleMachine {
            job: 0,
            op: 0,
            machine: 2,
        },
    );
}

#[test]
fn machine_out_of_range_is_ineligible_not_a_panic() {
    let mut s = schedule();
    s.placements[0][0].machine = 9;
    assert_only(
        &problem(),
        &s,
        Violation::IneligibleMachine {
            job: 0,
            op: 0,
            machine: 9,
        },
    );
}

#[test]
fn wrong_duration() {
    let mut s = schedule();
    s.placements[1][1].end = 12;
    assert_only(
        &problem(),
        &s,
        Violation::WrongDuration {
            job: 1,
            op: 1,
            machine: 1,
            expected: 3,
            found: 4,
        },
    );
}

#[test]
fn wrong_duration_uses_the_chosen_alternative() {
    // Job 0 operation 0 takes 5 on M1, not the 3 it takes on M0.
    let mut s = schedule();
    s.placements[0][0] = place(0, 0, 1, 0, 3);
    assert_only(
        &problem(),
        &s,
        Violation::WrongDuration {
            job: 0,
            op: 0,
            machine: 1,
            expected: 5,
            found: 3,
        },
    );
}

#[test]
fn start_before_release() {
    let mut p = problem();
    p.jobs[0].release = 1;
    assert_only(
        &p,
        &schedule(),
        Violation::BeforeRelease {
            job: 0,
            start: 0,
            release: 1,
        },
    );
}

#[test]
fn precedence() {
    let mut s = schedule();
    s.placements[1][0] = place(1, 0, 0, 5, 9);
    assert_only(
        &problem(),
        &s,
        Violation::Precedence {
            job: 1,
            op: 1,
            start: 8,
            previous_end: 9,
        },
    );
}

#[test]
fn overlap_on_a_machine() {
    let mut s = schedule();
    s.placements[1][0] = place(1, 0, 0, 2, 6);
    assert_only(
        &problem(),
        &s,
        Violation::Overlap {
            machine: 0,
            first: (0, 0),
            second: (1, 0),
            first_end: 3,
            second_start: 2,
        },
    );
}

#[test]
fn overlap_under_a_long_operation_is_caught_for_each_short_one() {
    // A long operation spans two short ones that do not overlap each other.
    let single = |d| Job {
        release: 0,
        due: None,
        weight: 1.0,
        family: None,
        operations: vec![op(vec![alt(0, d)])],
    };
    let p = Problem {
        name: String::new(),
        machines: 1,
        jobs: vec![single(10), single(1), single(1)],
        downtime: vec![],
        setup: None,
    };
    let s = Schedule {
        placements: vec![
            vec![place(0, 0, 0, 0, 10)],
            vec![place(1, 0, 0, 2, 3)],
            vec![place(2, 0, 0, 5, 6)],
        ],
    };
    let overlap = |second, second_start| Violation::Overlap {
        machine: 0,
        first: (0, 0),
        second: (second, 0),
        first_end: 10,
        second_start,
    };
    assert_eq!(check(&p, &s), vec![overlap(1, 2), overlap(2, 5)]);
}

#[test]
fn zero_length_operations_touching_others_are_fine() {
    let single = |d| Job {
        release: 0,
        due: None,
        weight: 1.0,
        family: None,
        operations: vec![op(vec![alt(0, d)])],
    };
    let p = Problem {
        name: String::new(),
        machines: 1,
        jobs: vec![single(3), single(0), single(2)],
        downtime: vec![Downtime {
            machine: 0,
            start: 5,
            end: 7,
        }],
        setup: None,
    };
    let mut s = Schedule {
        placements: vec![
            vec![place(0, 0, 0, 0, 3)],
            vec![place(1, 0, 0, 3, 3)],
            vec![place(2, 0, 0, 3, 5)],
        ],
    };
    assert_eq!(check(&p, &s), vec![]);
    // At the downtime's start it is fine, strictly inside it is not.
    s.placements[1][0] = place(1, 0, 0, 5, 5);
    assert_eq!(check(&p, &s), vec![]);
    s.placements[1][0] = place(1, 0, 0, 6, 6);
    assert_only(
        &p,
        &s,
        Violation::Downtime {
            job: 1,
            op: 0,
            machine: 0,
            start: 6,
            end: 6,
            down_start: 5,
            down_end: 7,
        },
    );
}

#[test]
fn missing_setup_time() {
    let mut s = schedule();
    s.placements[1][0] = place(1, 0, 0, 3, 7);
    assert_only(
        &problem(),
        &s,
        Violation::Setup {
            machine: 0,
            first: (0, 0),
            second: (1, 0),
            gap: 0,
            required: 1,
        },
    );
}

#[test]
fn no_setup_within_a_family_or_without_a_table() {
    let mut s = schedule();
    s.placements[1][0] = place(1, 0, 0, 3, 7);
    let mut same_family = problem();
    same_family.jobs[1].family = Some(0);
    assert_eq!(check(&same_family, &s), vec![]);
    let mut no_table = problem();
    no_table.setup = None;
    assert_eq!(check(&no_table, &s), vec![]);
}

#[test]
fn operation_runs_into_downtime() {
    let mut p = problem();
    p.downtime.push(Downtime {
        machine: 1,
        start: 9,
        end: 10,
    });
    assert_only(
        &p,
        &schedule(),
        Violation::Downtime {
            job: 1,
            op: 1,
            machine: 1,
            start: 8,
            end: 11,
            down_start: 9,
            down_end: 10,
        },
    );
}

#[test]
fn frozen_operation_moved() {
    let mut p = problem();
    let frozen = Frozen {
        machine: 2,
        start: 2,
    };
    p.jobs[0].operations[1].frozen = Some(frozen);
    assert_only(
        &p,
        &schedule(),
        Violation::FrozenMoved {
            job: 0,
            op: 1,
            frozen,
            machine: 2,
            start: 3,
        },
    );
}

#[test]
fn every_violation_reads_as_one_sentence() {
    let all = [
        Violation::JobCount {
            expected: 2,
            found: 1,
        },
        Violation::OperationCount {
            job: 1,
            expected: 2,
            found: 1,
        },
        Violation::WrongIndex {
            job: 1,
            op: 0,
            found_job: 0,
            found_op: 0,
        },
        Violation::IneligibleMachine {
            job: 0,
            op: 0,
            machine: 2,
        },
        Violation::WrongDuration {
            job: 1,
            op: 1,
            machine: 1,
            expected: 3,
            found: 4,
        },
        Violation::BeforeRelease {
            job: 0,
            start: 0,
            release: 1,
        },
        Violation::Precedence {
            job: 1,
            op: 1,
            start: 8,
            previous_end: 9,
        },
        Violation::Overlap {
            machine: 0,
            first: (0, 0),
            second: (1, 0),
            first_end: 3,
            second_start: 2,
        },
        Violation::Setup {
            machine: 0,
            first: (0, 0),
            second: (1, 0),
            gap: 0,
            required: 1,
        },
        Violation::Downtime {
            job: 1,
            op: 1,
            machine: 1,
            start: 8,
            end: 11,
            down_start: 9,
            down_end: 10,
        },
        Violation::FrozenMoved {
            job: 0,
            op: 1,
            frozen: Frozen {
                machine: 2,
                start: 2,
            },
            machine: 2,
            start: 3,
        },
    ];
    let text: Vec<String> = all.iter().map(ToString::to_string).collect();
    let expected = [
        "the schedule has 1 jobs but the problem has 2.",
        "job 1 has 1 placements but 2 operations.",
        "the placement of job 1 operation 0 is labelled job 0 operation 0.",
        "job 0 operation 0 runs on machine 2, which is not one of its eligible machines.",
        "job 1 operation 1 lasts 4 on machine 1 but should last 3.",
        "job 0 starts at 0, before its release at 1.",
        "job 1 operation 1 starts at 8, before operation 0 ends at 9.",
        "on machine 0, job 1 operation 0 starts at 2, before job 0 operation 0 ends at 3.",
        "on machine 0, only 0 passes between job 0 operation 0 and job 1 operation 0, less than \
         the set-up time of 1.",
        "job 1 operation 1 runs on machine 1 from 8 to 11, into its downtime from 9 to 10.",
        "job 0 operation 1 is frozen on machine 2 at 2 but was placed on machine 2 at 3.",
    ];
    assert_eq!(text, expected);
}
