//! `aifactory import`: the SME path — machines, routings and orders from CSV exports become a
//! scheduling instance (and, with `--solve`, a schedule with each order's promised completion).

use aifactory_core::Timestamp;
use aifactory_core::import::import;
use aifactory_schedule::{Objective, Problem, SolveOptions, solve};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// CSV files, or folders of them: a machines, a routings and an orders table (told apart by
    /// their headers; columns in docs/IMPORT.md).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Write the scheduling instance (aifactory JSON, for `aifactory schedule`) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Schedule the orders now, minimising weighted tardiness, for this many seconds.
    #[arg(long)]
    solve: Option<f64>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn csv_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading folder {}", p.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")))
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn at(start: Timestamp, minutes: i64) -> String {
    let t = Timestamp(start.0 + minutes * 60_000).to_rfc3339();
    // Plant-local wall time, to the minute (the import has no time zone).
    t.get(..16).unwrap_or(&t).replace('T', " ")
}

pub(crate) fn run(args: &ImportArgs) -> anyhow::Result<ExitCode> {
    if let Some(s) = args.solve
        && !(s > 0.0 && s <= 3600.0)
    {
        anyhow::bail!("--solve takes 0 to 3600 seconds, got {s}");
    }
    let files = csv_files(&args.paths)?;
    let mut texts = Vec::with_capacity(files.len());
    for f in &files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        texts.push((f.display().to_string(), text));
    }
    let imported = match import(&texts) {
        Ok(i) => i,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            anyhow::bail!(
                "{} problem(s) in the CSV files; nothing was imported",
                errors.0.len()
            );
        }
    };
    let (problem, start) = aifactory_schedule::import::from_import(&imported);
    aifactory_schedule::formats::validate(&problem)
        .map_err(|e| anyhow::anyhow!("the imported instance is not schedulable: {e}"))?;
    if let Some(out) = &args.out {
        write_json(out, &problem)?;
    }
    let mut report = serde_json::json!({
        "machines": imported.machines.len(),
        "work_centres": imported.work_centres().len(),
        "products": imported.routings.len(),
        "orders": imported.orders.len(),
        "start": at(start, 0),
        "instance": args.out.as_ref().map(|p| p.display().to_string()),
    });
    let mut lines = vec![format!(
        "Imported {} machines in {} work centres, {} products, {} orders (times in minutes from {}).",
        imported.machines.len(),
        imported.work_centres().len(),
        imported.routings.len(),
        imported.orders.len(),
        at(start, 0)
    )];
    if let Some(out) = &args.out {
        lines.push(format!(
            "Wrote the scheduling instance to {} (try `aifactory schedule {} --objective twt`).",
            out.display(),
            out.display()
        ));
    }
    if let Some(seconds) = args.solve {
        let solution = solve(
            &problem,
            &SolveOptions {
                objective: Objective::WeightedTardiness,
                time_limit: Some(Duration::from_secs_f64(seconds)),
                threads: 1,
                ..SolveOptions::default()
            },
        );
        let mut orders = Vec::new();
        lines.push(format!(
            "{:<14} {:>8} {:<16} {:<16} {:>10}",
            "order", "quantity", "due", "completes", "late (min)"
        ));
        for ((order, job), ops) in imported
            .orders
            .iter()
            .zip(&problem.jobs)
            .zip(&solution.schedule.placements)
        {
            let end = ops.last().map_or(0, |p| p.end);
            let late = (end - job.due.unwrap_or(end)).max(0);
            lines.push(format!(
                "{:<14} {:>8} {:<16} {:<16} {:>10}",
                order.id,
                order.quantity,
                at(start, job.due.unwrap_or(0)),
                at(start, end),
                late
            ));
            orders.push(serde_json::json!({
                "order": order.id, "due": at(start, job.due.unwrap_or(0)),
                "completes": at(start, end), "late_minutes": late,
            }));
        }
        lines.push(format!(
            "Makespan {} min; weighted tardiness {} (lower bound on makespan {}).",
            solution.makespan, solution.objective, solution.lower_bound
        ));
        report["schedule"] = serde_json::json!({
            "makespan_minutes": solution.makespan,
            "weighted_tardiness": solution.objective,
            "orders": orders,
        });
    }
    if args.json {
        println!("{report}");
    } else {
        println!("{}", lines.join("\n"));
    }
    Ok(ExitCode::SUCCESS)
}

fn write_json(path: &Path, problem: &Problem) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(problem)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
