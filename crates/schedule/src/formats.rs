//! Instance file formats: Taillard / OR-Library (classic job shop), Brandimarte (flexible job
//! shop) and our own JSON. Every parser ends in [`validate`], so a `Problem` that leaves this
//! module satisfies the invariants the solver relies on, whatever format it came from.
//!
//! **Taillard / OR-Library** (`jssp/*.txt`): a header `n_jobs n_machines`, then one line per job
//! of `n_machines` pairs `machine duration`, machines numbered from 0. Blank lines and lines
//! starting with `#` are skipped.
//!
//! **Brandimarte** (`fjsp/*.fjs`): a header `n_jobs n_machines [avg]` (the third number is
//! informational and may be a float), then one line per job: `n_ops`, then per operation `k`
//! followed by `k` pairs `machine duration`, machines numbered from 1 in the file and from 0 in
//! the `Problem`.
//!
//! **JSON**: the serde form of [`Problem`], field for field. Only `machines` and `jobs` (and in
//! each job, `operations`) are required; `release` defaults to 0, `weight` to 1, and `name`,
//! `due`, `family`, `frozen`, `downtime` and `setup` may be left out:
//!
//! ```json
//! {
//!   "name": "two jobs",
//!   "machines": 2,
//!   "jobs": [
//!     { "release": 0, "due": 9, "weight": 2.0, "family": 0,
//!       "operations": [
//!         { "alternatives": [{ "machine": 0, "duration": 3 }, { "machine": 1, "duration": 4 }] },
//!         { "alternatives": [{ "machine": 1, "duration": 2 }],
//!           "frozen": { "machine": 1, "start": 5 } }
//!       ] },
//!     { "family": 1,
//!       "operations": [{ "alternatives": [{ "machine": 1, "duration": 5 }] }] }
//!   ],
//!   "downtime": [{ "machine": 0, "start": 10, "end": 12 }],
//!   "setup": [[[0, 1], [1, 0]], [[0, 2], [2, 0]]]
//! }
//! ```

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::problem::{Alternative, Job, MachineId, Operation, Problem};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Taillard,
    Brandimarte,
    Json,
}

impl Format {
    /// `.fjs` is Brandimarte, `.json` or a text opening with `{` is JSON, anything else is taken
    /// for Taillard (the most common benchmark layout, `.txt` or no extension).
    pub fn guess(path: &Path, text: &str) -> Format {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("fjs") => Format::Brandimarte,
            Some("json") => Format::Json,
            _ if text.trim_start().starts_with('{') => Format::Json,
            _ => Format::Taillard,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Taillard => "taillard",
            Format::Brandimarte => "brandimarte",
            Format::Json => "json",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = FormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "taillard" => Ok(Format::Taillard),
            "brandimarte" => Ok(Format::Brandimarte),
            "json" => Ok(Format::Json),
            _ => Err(FormatError::UnknownFormat(s.to_owned())),
        }
    }
}

/// Machine number as the input file writes it, so that output reads like the file it came from.
pub fn machine_label(format: Format, machine: MachineId) -> usize {
    match format {
        Format::Brandimarte => machine + 1,
        Format::Taillard | Format::Json => machine,
    }
}

/// Why an instance was refused. All are fatal for that file: nothing is guessed or repaired.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The text does not follow the layout of its format.
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    /// serde_json refused the text (bad syntax, a missing field, a wrong type).
    #[error("line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    /// The text parsed but describes an impossible problem (see [`validate`]).
    #[error("invalid problem: {0}")]
    Invalid(String),
    #[error("unknown format `{0}` (expected taillard, brandimarte or json)")]
    UnknownFormat(String),
}

impl FormatError {
    /// The 1-based line the error points at, when it points at one.
    pub fn line(&self) -> Option<usize> {
        match self {
            FormatError::Syntax { line, .. } | FormatError::Json { line, .. } => Some(*line),
            FormatError::Invalid(_) | FormatError::UnknownFormat(_) => None,
        }
    }
}

fn syntax(line: usize, message: impl Into<String>) -> FormatError {
    FormatError::Syntax {
        line,
        message: message.into(),
    }
}

pub fn parse(text: &str, format: Format) -> Result<Problem, FormatError> {
    let problem = match format {
        Format::Taillard => parse_taillard(text)?,
        Format::Brandimarte => parse_brandimarte(text)?,
        Format::Json => parse_json(text)?,
    };
    validate(&problem)?;
    Ok(problem)
}

/// Non-blank, non-comment lines with their 1-based numbers, split into tokens.
struct Lines<'a> {
    inner: std::iter::Enumerate<std::str::Lines<'a>>,
    /// The number of the last line seen, so "missing line" errors can point past it.
    last: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Lines {
            inner: text.lines().enumerate(),
            last: 0,
        }
    }

    fn next_content(&mut self) -> Option<(usize, Vec<&'a str>)> {
        for (i, line) in self.inner.by_ref() {
            self.last = i + 1;
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            return Some((i + 1, trimmed.split_whitespace().collect()));
        }
        None
    }

    /// Where a missing line would have been: just past the end of the text.
    fn end(&self) -> usize {
        self.last + 1
    }

    /// Refuses content after the last expected line: it usually means a wrong header count.
    fn expect_end(&mut self, n_jobs: usize) -> Result<(), FormatError> {
        match self.next_content() {
            None => Ok(()),
            Some((line, _)) => Err(syntax(
                line,
                format!("unexpected content after the {n_jobs} job lines announced in the header"),
            )),
        }
    }
}

/// An integer token; `position` is 1-based within its line.
fn int(line: usize, position: usize, token: &str) -> Result<i64, FormatError> {
    token.parse().map_err(|_| {
        syntax(
            line,
            format!("token {position} (`{token}`) is not an integer"),
        )
    })
}

/// The header's job and machine counts, both at least 1.
fn header_counts(line: usize, tokens: &[&str]) -> Result<(usize, usize), FormatError> {
    let count = |position: usize, what: &str| {
        let n = int(line, position, tokens[position - 1])?;
        usize::try_from(n).ok().filter(|&n| n >= 1).ok_or_else(|| {
            syntax(
                line,
                format!("the number of {what} must be at least 1, found {n}"),
            )
        })
    };
    Ok((count(1, "jobs")?, count(2, "machines")?))
}

fn duration(line: usize, position: usize, d: i64) -> Result<i64, FormatError> {
    if d < 0 {
        return Err(syntax(
            line,
            format!("token {position}: duration {d} is negative"),
        ));
    }
    Ok(d)
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

fn parse_taillard(text: &str) -> Result<Problem, FormatError> {
    let mut lines = Lines::new(text);
    let (hline, header) = lines.next_content().ok_or_else(|| {
        syntax(
            lines.end(),
            "expected a header line `n_jobs n_machines`, found end of file",
        )
    })?;
    if header.len() != 2 {
        return Err(syntax(
            hline,
            format!(
                "expected 2 numbers in the header (n_jobs n_machines), found {}",
                header.len()
            ),
        ));
    }
    let (n_jobs, machines) = header_counts(hline, &header)?;
    let mut jobs = Vec::new();
    for j in 0..n_jobs {
        let (line, tokens) = lines.next_content().ok_or_else(|| {
            syntax(
                lines.end(),
                format!("expected {n_jobs} job lines, found {j}"),
            )
        })?;
        if tokens.len() != machines.saturating_mul(2) {
            return Err(syntax(
                line,
                format!(
                    "expected {} numbers ({machines} machine/duration pairs), found {}",
                    machines.saturating_mul(2),
                    tokens.len()
                ),
            ));
        }
        let mut operations = Vec::with_capacity(machines);
        for (i, pair) in tokens.chunks(2).enumerate() {
            let position = 2 * i + 1;
            let machine = int(line, position, pair[0])?;
            if machine < 0 || machine as usize >= machines {
                return Err(syntax(
                    line,
                    format!(
                        "token {position}: machine {machine} is out of range (0 to {})",
                        machines - 1
                    ),
                ));
            }
            let duration = duration(line, position + 1, int(line, position + 1, pair[1])?)?;
            operations.push(Operation {
                alternatives: vec![Alternative {
                    machine: machine as usize,
                    duration,
                }],
                frozen: None,
            });
        }
        jobs.push(job(operations));
    }
    lines.expect_end(n_jobs)?;
    Ok(Problem {
        name: String::new(),
        machines,
        jobs,
        downtime: Vec::new(),
        setup: None,
    })
}

/// Walks one Brandimarte job line, so every error can name the token it stopped at.
struct Cursor<'a> {
    line: usize,
    tokens: Vec<&'a str>,
    next: usize,
}

impl Cursor<'_> {
    /// The next integer; `what` names what was expected there.
    fn int(&mut self, what: &str) -> Result<(usize, i64), FormatError> {
        let position = self.next + 1;
        let token = self.tokens.get(self.next).ok_or_else(|| {
            syntax(
                self.line,
                format!("token {position}: expected {what}, found end of line"),
            )
        })?;
        self.next += 1;
        Ok((position, int(self.line, position, token)?))
    }
}

fn parse_brandimarte(text: &str) -> Result<Problem, FormatError> {
    let mut lines = Lines::new(text);
    let (hline, header) = lines.next_content().ok_or_else(|| {
        syntax(
            lines.end(),
            "expected a header line `n_jobs n_machines [avg]`, found end of file",
        )
    })?;
    if !(2..=3).contains(&header.len()) {
        return Err(syntax(
            hline,
            format!(
                "expected 2 or 3 numbers in the header (n_jobs n_machines [avg]), found {}",
                header.len()
            ),
        ));
    }
    let (n_jobs, machines) = header_counts(hline, &header)?;
    if let Some(avg) = header.get(2)
        && avg.parse::<f64>().is_err()
    {
        return Err(syntax(hline, format!("token 3 (`{avg}`) is not a number")));
    }
    let mut jobs = Vec::new();
    for j in 0..n_jobs {
        let (line, tokens) = lines.next_content().ok_or_else(|| {
            syntax(
                lines.end(),
                format!("expected {n_jobs} job lines, found {j}"),
            )
        })?;
        let mut cur = Cursor {
            line,
            tokens,
            next: 0,
        };
        let (position, n_ops) = cur.int("the number of operations")?;
        if n_ops < 1 {
            return Err(syntax(
                line,
                format!("token {position}: a job needs at least 1 operation, found {n_ops}"),
            ));
        }
        let mut operations = Vec::new();
        for o in 0..n_ops {
            let (position, k) = cur.int(&format!("the machine count of operation {o}"))?;
            if k < 1 {
                return Err(syntax(
                    line,
                    format!("token {position}: operation {o} has no eligible machine ({k})"),
                ));
            }
            let mut alternatives = Vec::new();
            for _ in 0..k {
                let (position, m) = cur.int("a machine number")?;
                if m < 1 || m as usize > machines {
                    return Err(syntax(
                        line,
                        format!("token {position}: machine {m} is out of range (1 to {machines})"),
                    ));
                }
                let machine = m as usize - 1;
                if alternatives
                    .iter()
                    .any(|a: &Alternative| a.machine == machine)
                {
                    return Err(syntax(
                        line,
                        format!("token {position}: machine {m} is listed twice for operation {o}"),
                    ));
                }
                let (position, d) = cur.int("a duration")?;
                let duration = duration(line, position, d)?;
                alternatives.push(Alternative { machine, duration });
            }
            operations.push(Operation {
                alternatives,
                frozen: None,
            });
        }
        if cur.next < cur.tokens.len() {
            return Err(syntax(
                line,
                format!(
                    "token {}: {} extra tokens after the {n_ops} operations",
                    cur.next + 1,
                    cur.tokens.len() - cur.next
                ),
            ));
        }
        jobs.push(job(operations));
    }
    lines.expect_end(n_jobs)?;
    Ok(Problem {
        name: String::new(),
        machines,
        jobs,
        downtime: Vec::new(),
        setup: None,
    })
}

fn parse_json(text: &str) -> Result<Problem, FormatError> {
    serde_json::from_str(text).map_err(|e| {
        let (line, column) = (e.line(), e.column());
        // serde_json appends the position to its message; we show it first, like the others.
        let full = e.to_string();
        let suffix = format!(" at line {line} column {column}");
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
        FormatError::Json {
            line,
            column,
            message,
        }
    })
}

/// The invariants every format must meet before a solver sees the problem. Indices in messages
/// are 0-based, as in the `Problem`.
pub fn validate(problem: &Problem) -> Result<(), FormatError> {
    let invalid = |m: String| Err(FormatError::Invalid(m));
    let machines = problem.machines;
    if machines == 0 {
        return invalid("the number of machines must be at least 1".into());
    }
    if problem.jobs.is_empty() {
        return invalid("the problem has no jobs".into());
    }
    for (j, job) in problem.jobs.iter().enumerate() {
        if job.release < 0 {
            return invalid(format!("job {j} has a negative release ({})", job.release));
        }
        if !(job.weight.is_finite() && job.weight >= 0.0) {
            return invalid(format!(
                "job {j} has weight {}; weights must be finite and not negative",
                job.weight
            ));
        }
        if job.operations.is_empty() {
            return invalid(format!("job {j} has no operations"));
        }
        for (o, op) in job.operations.iter().enumerate() {
            if op.alternatives.is_empty() {
                return invalid(format!("job {j} operation {o} has no eligible machine"));
            }
            let mut seen = HashSet::new();
            for alt in &op.alternatives {
                if alt.machine >= machines {
                    return invalid(format!(
                        "job {j} operation {o} names machine {}, but there are only {machines} \
                         (0 to {})",
                        alt.machine,
                        machines - 1
                    ));
                }
                if alt.duration < 0 {
                    return invalid(format!(
                        "job {j} operation {o} has a negative duration ({}) on machine {}",
                        alt.duration, alt.machine
                    ));
                }
                if !seen.insert(alt.machine) {
                    return invalid(format!(
                        "job {j} operation {o} lists machine {} twice",
                        alt.machine
                    ));
                }
            }
            if let Some(frozen) = op.frozen {
                if !seen.contains(&frozen.machine) {
                    return invalid(format!(
                        "job {j} operation {o} is frozen on machine {}, which is not one of its \
                         eligible machines",
                        frozen.machine
                    ));
                }
                if frozen.start < 0 {
                    return invalid(format!(
                        "job {j} operation {o} is frozen at a negative start ({})",
                        frozen.start
                    ));
                }
            }
        }
    }
    for (i, d) in problem.downtime.iter().enumerate() {
        if d.machine >= machines {
            return invalid(format!(
                "downtime {i} is on machine {}, but there are only {machines}",
                d.machine
            ));
        }
        if d.start >= d.end {
            return invalid(format!(
                "downtime {i} on machine {} is empty or reversed ({} to {})",
                d.machine, d.start, d.end
            ));
        }
    }
    if let Some(setup) = &problem.setup {
        validate_setup(problem, setup)?;
    }
    Ok(())
}

/// `setup[machine][from][to]`: one square matrix per machine, all the same size, covering every
/// family a job names.
fn validate_setup(problem: &Problem, setup: &[Vec<Vec<i64>>]) -> Result<(), FormatError> {
    let invalid = |m: String| Err(FormatError::Invalid(m));
    if setup.len() != problem.machines {
        return invalid(format!(
            "the set-up table has {} machines, expected {}",
            setup.len(),
            problem.machines
        ));
    }
    let families = setup[0].len();
    for (m, matrix) in setup.iter().enumerate() {
        if matrix.len() != families {
            return invalid(format!(
                "the set-up matrix of machine {m} has {} rows, expected {families} like machine 0",
                matrix.len()
            ));
        }
        for (from, row) in matrix.iter().enumerate() {
            if row.len() != families {
                return invalid(format!(
                    "the set-up matrix of machine {m} row {from} has {} entries, expected \
                     {families}",
                    row.len()
                ));
            }
            if let Some(t) = row.iter().find(|&&t| t < 0) {
                return invalid(format!(
                    "the set-up matrix of machine {m} row {from} has a negative time ({t})"
                ));
            }
        }
    }
    for (j, job) in problem.jobs.iter().enumerate() {
        if let Some(f) = job.family
            && f >= families
        {
            return invalid(format!(
                "job {j} has family {f}, but the set-up matrices cover only {families} families"
            ));
        }
    }
    Ok(())
}
