//! Instance formats: the public benchmark files parse to the sizes they declare, every codec
//! round-trips, damaged files give an error naming the line instead of a panic.

use std::path::{Path, PathBuf};

use aifactory_schedule::formats::{machine_label, validate};
use aifactory_schedule::{
    Alternative, Downtime, Format, FormatError, Frozen, Job, Operation, Problem, parse,
};
use proptest::prelude::*;

fn shared_data() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipped: shared data not found at {}", dir.display());
        None
    }
}

fn err(text: &str, format: Format) -> FormatError {
    match parse(text, format) {
        Ok(p) => panic!("expected an error, parsed {p:?}"),
        Err(e) => e,
    }
}

/// The error points at `line` and its message contains `fragment`.
#[track_caller]
fn assert_err(text: &str, format: Format, line: usize, fragment: &str) {
    let e = err(text, format);
    let message = e.to_string();
    assert_eq!(e.line(), Some(line), "wrong line in {message:?}");
    assert!(
        message.contains(fragment),
        "{message:?} does not contain {fragment:?}"
    );
    assert!(
        message.starts_with(&format!("line {line}")),
        "{message:?} does not open with its line"
    );
}

/// The error is a validation error containing `fragment`.
#[track_caller]
fn assert_invalid(problem: &Problem, fragment: &str) {
    match validate(problem) {
        Err(e @ FormatError::Invalid(_)) => {
            let message = e.to_string();
            assert!(
                message.contains(fragment),
                "{message:?} does not contain {fragment:?}"
            );
        }
        other => panic!("expected an invalid-problem error, got {other:?}"),
    }
}

fn one(machine: usize, duration: i64) -> Operation {
    Operation {
        alternatives: vec![Alternative { machine, duration }],
        frozen: None,
    }
}

fn job(operations: Vec<Operation>) -> Job {
    Job {
        release: 0,
        due: None,
        weight: 1.0,
        family: None,
        operations,
    }
}

fn small() -> Problem {
    Problem {
        name: "small".into(),
        machines: 2,
        jobs: vec![
            job(vec![one(0, 3), one(1, 2)]),
            job(vec![one(1, 4), one(0, 1)]),
        ],
        downtime: Vec::new(),
        setup: None,
    }
}

// ---- format names ----

#[test]
fn format_names_parse_and_print() {
    for (name, f) in [
        ("taillard", Format::Taillard),
        ("brandimarte", Format::Brandimarte),
        ("json", Format::Json),
        ("JSON", Format::Json),
    ] {
        assert_eq!(name.parse::<Format>().unwrap(), f);
        assert_eq!(f.to_string(), name.to_lowercase());
    }
    let e = "fjs".parse::<Format>().unwrap_err();
    assert!(e.to_string().contains("unknown format `fjs`"), "{e}");
}

#[test]
fn format_is_guessed_from_extension_then_content() {
    let guess = |p: &str, t: &str| Format::guess(Path::new(p), t);
    assert_eq!(guess("mk01.fjs", "10 6 2"), Format::Brandimarte);
    assert_eq!(guess("MK01.FJS", "10 6 2"), Format::Brandimarte);
    assert_eq!(guess("plant.json", ""), Format::Json);
    assert_eq!(guess("plant", "  \n{\"machines\": 1}"), Format::Json);
    assert_eq!(guess("ta01.txt", "15 15"), Format::Taillard);
    assert_eq!(guess("-", "6 6"), Format::Taillard);
}

#[test]
fn machine_labels_follow_the_file() {
    assert_eq!(machine_label(Format::Brandimarte, 0), 1);
    assert_eq!(machine_label(Format::Taillard, 0), 0);
    assert_eq!(machine_label(Format::Json, 4), 4);
}

// ---- the public benchmark files ----

#[test]
fn every_shared_instance_parses_to_its_declared_size() {
    let Some(data) = shared_data() else { return };
    for (folder, ext, format) in [
        ("jssp", "txt", Format::Taillard),
        ("fjsp", "fjs", Format::Brandimarte),
    ] {
        let bounds = std::fs::read_to_string(data.join(folder).join("bounds.csv")).unwrap();
        let mut seen = 0;
        for row in bounds.lines().skip(1) {
            let cols: Vec<&str> = row.split(',').collect();
            let path = data.join(folder).join(format!("{}.{ext}", cols[0]));
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(Format::guess(&path, &text), format);
            let p = parse(&text, format).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(p.jobs.len(), cols[1].parse::<usize>().unwrap(), "{row}");
            assert_eq!(p.machines, cols[2].parse::<usize>().unwrap(), "{row}");
            if format == Format::Taillard {
                assert!(p.is_classic());
                assert!(p.jobs.iter().all(|j| j.operations.len() == p.machines));
            }
            seen += 1;
        }
        assert_eq!(seen, if folder == "jssp" { 83 } else { 10 });
    }
}

#[test]
fn shared_instances_have_the_published_sizes() {
    let Some(data) = shared_data() else { return };
    let load = |rel: &str, format| {
        let text = std::fs::read_to_string(data.join(rel)).unwrap();
        parse(&text, format).unwrap()
    };
    let ta01 = load("jssp/ta01.txt", Format::Taillard);
    assert_eq!((ta01.jobs.len(), ta01.machines), (15, 15));
    let ta31 = load("jssp/ta31.txt", Format::Taillard);
    assert_eq!((ta31.jobs.len(), ta31.machines), (30, 15));
    // ft06 line 2 opens with "2 1 0 3": machine 2 for 1, then machine 0 for 3.
    let ft06 = load("jssp/ft06.txt", Format::Taillard);
    assert_eq!(ft06.jobs[0].operations[..2], [one(2, 1), one(0, 3)]);

    let mk01 = load("fjsp/mk01.fjs", Format::Brandimarte);
    assert_eq!((mk01.jobs.len(), mk01.machines), (10, 6));
    // mk01 line 2 opens with "6 2 1 5 3 4": 6 operations, the first on machine 1 (→ 0) for 5
    // or machine 3 (→ 2) for 4.
    assert_eq!(mk01.jobs[0].operations.len(), 6);
    assert_eq!(
        mk01.jobs[0].operations[0].alternatives,
        [
            Alternative {
                machine: 0,
                duration: 5
            },
            Alternative {
                machine: 2,
                duration: 4
            }
        ]
    );
    let mk06 = load("fjsp/mk06.fjs", Format::Brandimarte);
    assert_eq!(mk06.machines, 15);
    let used = mk06
        .jobs
        .iter()
        .flat_map(|j| &j.operations)
        .flat_map(|o| &o.alternatives)
        .map(|a| a.machine)
        .max();
    assert_eq!(used, Some(9), "mk06 uses machines 1-10 only");
}

// ---- Taillard ----

#[test]
fn taillard_accepts_comments_blank_lines_and_loose_spacing() {
    let text = "# ft-like\n# two jobs\n\n  2   2 \r\n\n0 3\t1 2\r\n\n 1 4 0 1  \n\n";
    assert_eq!(
        parse(text, Format::Taillard).unwrap(),
        Problem {
            name: String::new(),
            ..small()
        }
    );
}

#[test]
fn taillard_accepts_a_job_visiting_a_machine_twice() {
    let p = parse("1 2\n0 3 0 4\n", Format::Taillard).unwrap();
    assert_eq!(p.jobs[0].operations, [one(0, 3), one(0, 4)]);
}

#[test]
fn taillard_empty_file() {
    assert_err("", Format::Taillard, 1, "expected a header line");
    assert_err(
        "# only a comment\n\n",
        Format::Taillard,
        3,
        "found end of file",
    );
}

#[test]
fn taillard_header_with_wrong_count() {
    assert_err(
        "2 2 2\n0 1 1 1\n",
        Format::Taillard,
        1,
        "expected 2 numbers in the header",
    );
}

#[test]
fn taillard_header_not_integer() {
    assert_err(
        "# c\n2 two\n",
        Format::Taillard,
        2,
        "token 2 (`two`) is not an integer",
    );
}

#[test]
fn taillard_header_without_machines() {
    assert_err(
        "2 0\n\n\n",
        Format::Taillard,
        1,
        "number of machines must be at least 1",
    );
    assert_err(
        "0 3\n",
        Format::Taillard,
        1,
        "number of jobs must be at least 1",
    );
}

#[test]
fn taillard_job_line_with_wrong_count() {
    let text = "2 6\n0 1 1 1 2 1 3 1 4 1 5 1\n0 1 1 1 2 1 3 1 4 1 5\n";
    assert_err(
        text,
        Format::Taillard,
        3,
        "line 3: expected 12 numbers (6 machine/duration pairs), found 11",
    );
}

#[test]
fn taillard_non_integer_token() {
    assert_err(
        "1 2\n0 3 1 2.5\n",
        Format::Taillard,
        2,
        "token 4 (`2.5`) is not an integer",
    );
}

#[test]
fn taillard_machine_out_of_range() {
    assert_err(
        "1 2\n0 3 2 2\n",
        Format::Taillard,
        2,
        "token 3: machine 2 is out of range (0 to 1)",
    );
    assert_err(
        "1 2\n-1 3 0 2\n",
        Format::Taillard,
        2,
        "machine -1 is out of range",
    );
}

#[test]
fn taillard_negative_duration() {
    assert_err(
        "1 2\n0 3 1 -2\n",
        Format::Taillard,
        2,
        "token 4: duration -2 is negative",
    );
}

#[test]
fn taillard_missing_job_lines() {
    assert_err(
        "3 2\n0 3 1 2\n\n1 4 0 1\n",
        Format::Taillard,
        5,
        "expected 3 job lines, found 2",
    );
}

#[test]
fn taillard_content_after_the_last_job() {
    assert_err(
        "1 2\n0 3 1 2\n1 4 0 1\n",
        Format::Taillard,
        3,
        "unexpected content after the 1 job lines",
    );
}

// ---- Brandimarte ----

#[test]
fn brandimarte_converts_machines_to_zero_based() {
    let text = "2 3 1.5\n2 1 1 5 2 2 3 3 4\n1 1 3 7\n";
    let p = parse(text, Format::Brandimarte).unwrap();
    assert_eq!(p.machines, 3);
    assert_eq!(p.jobs[0].operations[0], one(0, 5));
    assert_eq!(
        p.jobs[0].operations[1].alternatives,
        [
            Alternative {
                machine: 1,
                duration: 3
            },
            Alternative {
                machine: 2,
                duration: 4
            }
        ]
    );
    assert_eq!(p.jobs[1].operations, [one(2, 7)]);
    // The third header number is optional.
    assert_eq!(
        parse("2 3\n2 1 1 5 2 2 3 3 4\n1 1 3 7\n", Format::Brandimarte).unwrap(),
        p
    );
}

#[test]
fn brandimarte_header_with_wrong_count() {
    assert_err(
        "2\n",
        Format::Brandimarte,
        1,
        "expected 2 or 3 numbers in the header",
    );
}

#[test]
fn brandimarte_header_average_not_a_number() {
    assert_err(
        "1 2 x\n1 1 1 1\n",
        Format::Brandimarte,
        1,
        "token 3 (`x`) is not a number",
    );
}

#[test]
fn brandimarte_non_integer_token() {
    assert_err(
        "1 2\n1 1 1 z\n",
        Format::Brandimarte,
        2,
        "token 4 (`z`) is not an integer",
    );
}

#[test]
fn brandimarte_job_without_operations() {
    assert_err(
        "1 2\n0\n",
        Format::Brandimarte,
        2,
        "token 1: a job needs at least 1 operation",
    );
}

#[test]
fn brandimarte_operation_without_machines() {
    assert_err(
        "1 2\n2 1 1 3 0\n",
        Format::Brandimarte,
        2,
        "token 5: operation 1 has no eligible machine",
    );
}

#[test]
fn brandimarte_machine_out_of_range() {
    assert_err(
        "1 2\n1 1 0 3\n",
        Format::Brandimarte,
        2,
        "token 3: machine 0 is out of range (1 to 2)",
    );
    assert_err(
        "1 2\n1 2 1 3 3 3\n",
        Format::Brandimarte,
        2,
        "token 5: machine 3 is out of range",
    );
}

#[test]
fn brandimarte_machine_listed_twice() {
    assert_err(
        "1 2\n1 2 2 3 2 4\n",
        Format::Brandimarte,
        2,
        "token 5: machine 2 is listed twice",
    );
}

#[test]
fn brandimarte_negative_duration() {
    assert_err(
        "1 2\n1 1 2 -3\n",
        Format::Brandimarte,
        2,
        "token 4: duration -3 is negative",
    );
}

#[test]
fn brandimarte_line_ends_inside_an_operation() {
    assert_err(
        "1 2\n2 1 1 3 2 1 4 2\n",
        Format::Brandimarte,
        2,
        "token 9: expected a duration, found end of line",
    );
    assert_err(
        "1 2\n2 1 1 3\n",
        Format::Brandimarte,
        2,
        "token 5: expected the machine count of operation 1",
    );
}

#[test]
fn brandimarte_extra_tokens() {
    assert_err(
        "1 2\n1 1 1 3 9 9\n",
        Format::Brandimarte,
        2,
        "token 5: 2 extra tokens after the 1 operations",
    );
}

#[test]
fn brandimarte_missing_job_lines() {
    assert_err(
        "2 2\n1 1 1 3\n",
        Format::Brandimarte,
        3,
        "expected 2 job lines, found 1",
    );
}

// ---- JSON ----

#[test]
fn json_defaults_optional_fields() {
    let text = r#"{"machines": 2, "jobs": [
        {"operations": [{"alternatives": [{"machine": 0, "duration": 3}]}]}
    ]}"#;
    let p = parse(text, Format::Json).unwrap();
    assert_eq!(p.name, "");
    assert_eq!(p.jobs[0], job(vec![one(0, 3)]));
    assert!(p.downtime.is_empty() && p.setup.is_none());
}

#[test]
fn json_example_in_the_module_docs_parses() {
    let text = r#"{
      "name": "two jobs",
      "machines": 2,
      "jobs": [
        { "release": 0, "due": 9, "weight": 2.0, "family": 0,
          "operations": [
            { "alternatives": [{ "machine": 0, "duration": 3 }, { "machine": 1, "duration": 4 }] },
            { "alternatives": [{ "machine": 1, "duration": 2 }],
              "frozen": { "machine": 1, "start": 5 } }
          ] },
        { "family": 1,
          "operations": [{ "alternatives": [{ "machine": 1, "duration": 5 }] }] }
      ],
      "downtime": [{ "machine": 0, "start": 10, "end": 12 }],
      "setup": [[[0, 1], [1, 0]], [[0, 2], [2, 0]]]
    }"#;
    let p = parse(text, Format::Json).unwrap();
    assert_eq!(
        p.jobs[0].operations[1].frozen,
        Some(Frozen {
            machine: 1,
            start: 5
        })
    );
    assert_eq!(p.setup_time(1, Some(0), Some(1)), 2);
}

#[test]
fn json_syntax_error_carries_line_and_column() {
    let e = err("{\n  \"machines\": 2,\n  \"jobs\": [,]\n}", Format::Json);
    match &e {
        FormatError::Json { line, column, .. } => assert_eq!((*line, *column), (3, 12)),
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().starts_with("line 3, column 12: "), "{e}");
    assert!(
        !e.to_string().contains("at line"),
        "position said twice: {e}"
    );
}

#[test]
fn json_missing_field() {
    assert_err(
        "{\n\"jobs\": []\n}",
        Format::Json,
        3,
        "missing field `machines`",
    );
}

#[test]
fn json_is_validated() {
    let text = r#"{"machines": 2, "jobs": [{"operations": [{"alternatives": []}]}]}"#;
    let e = err(text, Format::Json);
    assert_eq!(
        e.to_string(),
        "invalid problem: job 0 operation 0 has no eligible machine"
    );
    assert_eq!(e.line(), None);
}

// ---- validate ----

#[test]
fn validate_accepts_a_full_problem() {
    let mut p = small();
    p.jobs[0].family = Some(0);
    p.jobs[1].family = Some(1);
    p.jobs[1].release = 5;
    p.jobs[1].due = Some(20);
    p.jobs[0].operations[1].frozen = Some(Frozen {
        machine: 1,
        start: 3,
    });
    p.downtime.push(Downtime {
        machine: 1,
        start: 0,
        end: 2,
    });
    p.setup = Some(vec![vec![vec![0, 1], vec![2, 0]]; 2]);
    validate(&p).unwrap();
    // Zero durations are allowed (milestones, instantaneous checks).
    p.jobs[0].operations[0].alternatives[0].duration = 0;
    validate(&p).unwrap();
}

#[test]
fn validate_rejects_no_machines() {
    let p = Problem {
        machines: 0,
        ..small()
    };
    assert_invalid(&p, "number of machines must be at least 1");
}

#[test]
fn validate_rejects_no_jobs() {
    let p = Problem {
        jobs: vec![],
        ..small()
    };
    assert_invalid(&p, "the problem has no jobs");
}

#[test]
fn validate_rejects_a_job_without_operations() {
    let mut p = small();
    p.jobs[1].operations.clear();
    assert_invalid(&p, "job 1 has no operations");
}

#[test]
fn validate_rejects_an_operation_without_machines() {
    let mut p = small();
    p.jobs[1].operations[0].alternatives.clear();
    assert_invalid(&p, "job 1 operation 0 has no eligible machine");
}

#[test]
fn validate_rejects_unknown_machine() {
    let mut p = small();
    p.jobs[0].operations[1].alternatives[0].machine = 2;
    assert_invalid(
        &p,
        "job 0 operation 1 names machine 2, but there are only 2",
    );
}

#[test]
fn validate_rejects_duplicate_machine() {
    let mut p = small();
    p.jobs[0].operations[0].alternatives.push(Alternative {
        machine: 0,
        duration: 9,
    });
    assert_invalid(&p, "job 0 operation 0 lists machine 0 twice");
}

#[test]
fn validate_rejects_negative_duration() {
    let mut p = small();
    p.jobs[1].operations[1].alternatives[0].duration = -1;
    assert_invalid(&p, "job 1 operation 1 has a negative duration (-1)");
}

#[test]
fn validate_rejects_negative_release() {
    let mut p = small();
    p.jobs[0].release = -4;
    assert_invalid(&p, "job 0 has a negative release (-4)");
}

#[test]
fn validate_rejects_bad_weights() {
    for w in [-1.0, f64::NAN, f64::INFINITY] {
        let mut p = small();
        p.jobs[1].weight = w;
        assert_invalid(&p, "job 1 has weight");
    }
}

#[test]
fn validate_rejects_empty_or_reversed_downtime() {
    let mut p = small();
    p.downtime.push(Downtime {
        machine: 0,
        start: 5,
        end: 5,
    });
    assert_invalid(&p, "downtime 0 on machine 0 is empty or reversed (5 to 5)");
}

#[test]
fn validate_rejects_downtime_on_unknown_machine() {
    let mut p = small();
    p.downtime.push(Downtime {
        machine: 7,
        start: 0,
        end: 5,
    });
    assert_invalid(&p, "downtime 0 is on machine 7");
}

#[test]
fn validate_rejects_frozen_on_an_ineligible_machine() {
    let mut p = small();
    p.jobs[0].operations[0].frozen = Some(Frozen {
        machine: 1,
        start: 0,
    });
    assert_invalid(
        &p,
        "job 0 operation 0 is frozen on machine 1, which is not one of its eligible machines",
    );
}

#[test]
fn validate_rejects_frozen_at_negative_start() {
    let mut p = small();
    p.jobs[0].operations[0].frozen = Some(Frozen {
        machine: 0,
        start: -1,
    });
    assert_invalid(&p, "frozen at a negative start");
}

#[test]
fn validate_rejects_setup_for_wrong_machine_count() {
    let mut p = small();
    p.setup = Some(vec![vec![vec![0]]]);
    assert_invalid(&p, "the set-up table has 1 machines, expected 2");
}

#[test]
fn validate_rejects_ragged_setup() {
    let mut p = small();
    p.setup = Some(vec![
        vec![vec![0, 1], vec![1, 0]],
        vec![vec![0, 1], vec![1]],
    ]);
    assert_invalid(&p, "machine 1 row 1 has 1 entries, expected 2");
    p.setup = Some(vec![vec![vec![0, 1], vec![1, 0]], vec![vec![0]]]);
    assert_invalid(&p, "machine 1 has 1 rows, expected 2");
}

#[test]
fn validate_rejects_negative_setup() {
    let mut p = small();
    p.setup = Some(vec![vec![vec![0, -1], vec![1, 0]]; 2]);
    assert_invalid(&p, "negative time (-1)");
}

#[test]
fn validate_rejects_family_outside_setup() {
    let mut p = small();
    p.jobs[1].family = Some(2);
    p.setup = Some(vec![vec![vec![0, 1], vec![1, 0]]; 2]);
    assert_invalid(
        &p,
        "job 1 has family 2, but the set-up matrices cover only 2 families",
    );
}

// ---- round trips and damage ----

fn write_taillard(p: &Problem) -> String {
    let mut s = format!("{} {}\n", p.jobs.len(), p.machines);
    for job in &p.jobs {
        let pairs: Vec<String> = job
            .operations
            .iter()
            .map(|o| {
                format!(
                    "{} {}",
                    o.alternatives[0].machine, o.alternatives[0].duration
                )
            })
            .collect();
        s += &pairs.join(" ");
        s.push('\n');
    }
    s
}

fn write_brandimarte(p: &Problem) -> String {
    let mut s = format!("{} {} 1.5\n", p.jobs.len(), p.machines);
    for job in &p.jobs {
        let mut tokens = vec![job.operations.len().to_string()];
        for op in &job.operations {
            tokens.push(op.alternatives.len().to_string());
            for a in &op.alternatives {
                tokens.push((a.machine + 1).to_string());
                tokens.push(a.duration.to_string());
            }
        }
        s += &tokens.join(" ");
        s.push('\n');
    }
    s
}

fn problem(jobs: Vec<Vec<Operation>>, machines: usize) -> Problem {
    Problem {
        name: String::new(),
        machines,
        jobs: jobs.into_iter().map(job).collect(),
        downtime: Vec::new(),
        setup: None,
    }
}

/// Classic job shops: every job has one operation per machine, machines may repeat.
fn classic() -> impl Strategy<Value = Problem> {
    (1usize..5, 1usize..5).prop_flat_map(|(n_jobs, machines)| {
        let op = (0..machines, 0i64..100).prop_map(|(m, d)| one(m, d));
        prop::collection::vec(prop::collection::vec(op, machines), n_jobs)
            .prop_map(move |jobs| problem(jobs, machines))
    })
}

/// Flexible job shops: each operation has a non-empty set of distinct machines.
fn flexible() -> impl Strategy<Value = Problem> {
    (1usize..5, 1usize..5).prop_flat_map(|(n_jobs, machines)| {
        let alt = (
            prop::sample::subsequence((0..machines).collect::<Vec<_>>(), 1..=machines),
            prop::collection::vec(0i64..100, machines),
        )
            .prop_map(|(ms, ds)| Operation {
                alternatives: ms
                    .iter()
                    .map(|&m| Alternative {
                        machine: m,
                        duration: ds[m],
                    })
                    .collect(),
                frozen: None,
            });
        prop::collection::vec(prop::collection::vec(alt, 1..5), n_jobs)
            .prop_map(move |jobs| problem(jobs, machines))
    })
}

/// A few byte edits: (position fraction, kind, byte).
fn edits() -> impl Strategy<Value = Vec<(f64, u8, u8)>> {
    prop::collection::vec((0.0f64..1.0, 0u8..3, any::<u8>()), 1..6)
}

fn damage(text: &str, edits: &[(f64, u8, u8)]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for &(at, kind, b) in edits {
        let i = ((at * bytes.len() as f64) as usize).min(bytes.len());
        match kind {
            0 if i < bytes.len() => bytes[i] = b,
            1 => bytes.insert(i, b),
            _ if i < bytes.len() => {
                bytes.remove(i);
            }
            _ => bytes.push(b),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #[test]
    fn taillard_round_trips(p in classic()) {
        prop_assert_eq!(parse(&write_taillard(&p), Format::Taillard).unwrap(), p);
    }

    #[test]
    fn brandimarte_round_trips(p in flexible()) {
        prop_assert_eq!(parse(&write_brandimarte(&p), Format::Brandimarte).unwrap(), p);
    }

    #[test]
    fn json_round_trips(mut p in flexible(), release in 0i64..50, due in proptest::option::of(0i64..500)) {
        p.name = "random \"quoted\" name".into();
        p.jobs[0].release = release;
        p.jobs[0].due = due;
        p.jobs[0].weight = 2.5;
        let text = serde_json::to_string_pretty(&p).unwrap();
        prop_assert_eq!(parse(&text, Format::Json).unwrap(), p);
    }

    #[test]
    fn damaged_files_never_panic(c in classic(), f in flexible(), edits in edits()) {
        for text in [
            write_taillard(&c),
            write_brandimarte(&f),
            serde_json::to_string(&f).unwrap(),
        ] {
            let damaged = damage(&text, &edits);
            for format in [Format::Taillard, Format::Brandimarte, Format::Json] {
                // Either outcome is fine; a syntax error must still say where.
                if let Err(e @ (FormatError::Syntax { .. } | FormatError::Json { .. })) =
                    parse(&damaged, format)
                {
                    prop_assert!(e.line().is_some_and(|l| l >= 1), "{}", e);
                }
            }
        }
    }
}
