//! `aifactory schedule`: read an instance, solve it, print or draw the schedule.

use aifactory_schedule::formats::{self, Format};
use aifactory_schedule::{Objective, SolveOptions, check, gantt, solve};
use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub(crate) struct ScheduleArgs {
    /// Instance file: Taillard/OR-Library (.txt), Brandimarte (.fjs) or aifactory JSON (.json).
    file: PathBuf,
    /// File format [default: guessed from the extension and contents].
    #[arg(long)]
    format: Option<Format>,
    /// Stop after this many seconds (the solver is anytime: longer gives better schedules).
    #[arg(long, env = "AIFACTORY_TIME_LIMIT", default_value_t = 10.0)]
    time_limit: f64,
    /// Stop after this many tabu iterations per thread; with it the result is reproducible on
    /// any machine (the time limit still applies as a safety net).
    #[arg(long)]
    iterations: Option<u64>,
    /// Independent searches run in parallel; the best wins.
    #[arg(long, env = "AIFACTORY_THREADS", default_value_t = 1)]
    threads: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// What to minimise: makespan, twt (total weighted tardiness; needs due dates).
    #[arg(long, default_value = "makespan")]
    objective: String,
    /// Print one JSON object with the schedule.
    #[arg(long)]
    json: bool,
    /// Also draw a Gantt chart to this SVG file.
    #[arg(long)]
    gantt: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct OperationJson {
    job: usize,
    op: usize,
    machine: usize,
    start: i64,
    end: i64,
}

#[derive(Debug, Serialize)]
struct ScheduleJson {
    instance: String,
    makespan: i64,
    lower_bound: i64,
    objective: f64,
    time_to_best_s: f64,
    elapsed_s: f64,
    iterations: u64,
    operations: Vec<OperationJson>,
}

pub(crate) fn run(args: ScheduleArgs) -> anyhow::Result<ExitCode> {
    if !args.time_limit.is_finite() || args.time_limit <= 0.0 {
        bail!(
            "--time-limit must be a positive number of seconds, got {}",
            args.time_limit
        );
    }
    if args.threads == 0 || args.threads > 256 {
        bail!("--threads must be between 1 and 256, got {}", args.threads);
    }
    let objective = match args.objective.as_str() {
        "makespan" => Objective::Makespan,
        "twt" => Objective::WeightedTardiness,
        other => bail!("--objective `{other}` is unknown; expected makespan or twt"),
    };
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read instance file {}", args.file.display()))?;
    let format = args
        .format
        .unwrap_or_else(|| Format::guess(&args.file, &text));
    let problem = formats::parse(&text, format)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    if objective == Objective::WeightedTardiness && problem.jobs.iter().all(|j| j.due.is_none()) {
        bail!(
            "--objective twt needs due dates; {} has none",
            args.file.display()
        );
    }
    let options = SolveOptions {
        objective,
        time_limit: Some(Duration::from_secs_f64(args.time_limit)),
        max_iterations: args.iterations,
        threads: args.threads,
        seed: args.seed,
    };
    let spinner = if args.json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(format!(
            "solving {} ({} jobs, {} machines, {} operations)",
            args.file.display(),
            problem.jobs.len(),
            problem.machines,
            problem.operation_count()
        ));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    };
    let solution = solve(&problem, &options);
    spinner.finish_and_clear();
    let violations = check(&problem, &solution.schedule);
    if !violations.is_empty() {
        let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
        bail!(
            "internal error: the solver produced an infeasible schedule:\n  {}",
            list.join("\n  ")
        );
    }
    if let Some(path) = &args.gantt {
        let title = format!(
            "{} — makespan {}",
            args.file
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            solution.makespan
        );
        std::fs::write(
            path,
            gantt::svg_numbered(&problem, &solution.schedule, &title, format),
        )
        .with_context(|| format!("writing Gantt chart {}", path.display()))?;
    }
    let instance = args
        .file
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    if args.json {
        let operations = solution
            .schedule
            .placements
            .iter()
            .flatten()
            .map(|p| OperationJson {
                job: p.job,
                op: p.op,
                machine: formats::machine_label(format, p.machine),
                start: p.start,
                end: p.end,
            })
            .collect();
        let out = ScheduleJson {
            instance,
            makespan: solution.makespan,
            lower_bound: solution.lower_bound,
            objective: solution.objective,
            time_to_best_s: solution.time_to_best_s,
            elapsed_s: solution.elapsed_s,
            iterations: solution.iterations,
            operations,
        };
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "{instance}: makespan {} (lower bound {}, gap to bound {:.2} %), objective {}, \
             best found after {:.2} s, {} iterations in {:.2} s ({:.0}/s)",
            solution.makespan,
            solution.lower_bound,
            100.0 * (solution.makespan - solution.lower_bound) as f64
                / solution.lower_bound.max(1) as f64,
            solution.objective,
            solution.time_to_best_s,
            solution.iterations,
            solution.elapsed_s,
            solution.iterations as f64 / solution.elapsed_s.max(1e-9)
        );
        if let Some(path) = &args.gantt {
            println!("Gantt chart: {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
