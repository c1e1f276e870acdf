//! `aifactory bench policies`: the same plant under several policies over several seeds, with
//! 95 % confidence intervals — how a planner would judge a scheduling skill against EDD and FIFO.

use aifactory_skills::{ApsConfig, ApsPolicy};
use aifactory_twin::{
    BaselinePolicy, DispatchRule, Floor, MachineId, MachineView, MaterialView, PlantModel,
    PlantTime, Policy, PurchaseRequest, QueuedOp, Simulation,
};
use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Measures how long each replan takes. Timing is the CLI's business, not the skill's. The log
/// is shared because the simulation owns the policy.
struct Timed<P> {
    inner: P,
    log: Arc<Mutex<Vec<f64>>>,
}

impl<P: Policy> Policy for Timed<P> {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn dispatch(&mut self, now: PlantTime, m: MachineId, c: &[QueuedOp]) -> usize {
        self.inner.dispatch(now, m, c)
    }
    fn start_maintenance(&mut self, v: &MachineView) -> bool {
        self.inner.start_maintenance(v)
    }
    fn purchase(&mut self, now: PlantTime, s: &[MaterialView]) -> Vec<PurchaseRequest> {
        self.inner.purchase(now, s)
    }
    fn wants_floor(&self) -> bool {
        self.inner.wants_floor()
    }
    fn plan(&mut self, floor: &Floor) {
        let started = Instant::now();
        self.inner.plan(floor);
        if let Ok(mut log) = self.log.lock() {
            log.push(started.elapsed().as_secs_f64());
        }
    }
}

/// Two-sided 95 % Student t quantiles for 1..=30 degrees of freedom.
pub(crate) const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Interval {
    pub(crate) mean: f64,
    /// Half-width of the 95 % confidence interval of the mean.
    pub(crate) ci95: f64,
}

pub(crate) fn interval(values: &[f64]) -> Interval {
    let n = values.len();
    if n == 0 {
        return Interval {
            mean: 0.0,
            ci95: 0.0,
        };
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Interval {
            mean,
            ci95: f64::INFINITY,
        };
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let t = T95.get(n - 2).copied().unwrap_or(1.96);
    Interval {
        mean,
        ci95: t * (var / n as f64).sqrt(),
    }
}

/// `aifactory bench policies` options.
#[derive(Debug, clap::Args)]
pub(crate) struct PoliciesArgs {
    /// Plant file [default: the built-in reference plant].
    #[arg(long)]
    plant: Option<PathBuf>,
    /// Days on which sales orders arrive.
    #[arg(long, default_value_t = 60.0)]
    days: f64,
    /// Days after that to finish the order book; orders still open then count as unfinished.
    #[arg(long, default_value_t = 20.0)]
    drain_days: f64,
    /// Seeds 1..=N.
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    /// Comma-separated: fifo, edd, spt, aps (the APS scheduling skill). The others are also
    /// compared with the first, seed by seed.
    #[arg(long, default_value = "edd,fifo,aps")]
    policies: String,
    /// Tabu iterations per APS replan.
    #[arg(long, default_value_t = 2000)]
    aps_iterations: u64,
    /// Scenario: multiply every product's due-date window (0.5 = customers want it twice as fast).
    #[arg(long, default_value_t = 1.0)]
    due_scale: f64,
    /// Scenario: multiply every product's demand (1.2 = 20 % more orders).
    #[arg(long, default_value_t = 1.0)]
    load_scale: f64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct PolicyRow {
    policy: String,
    seeds: usize,
    mean_tardiness_h: Interval,
    on_time_delivery: Interval,
    /// Hours from the start until the last order of the book was done.
    makespan_h: Interval,
    /// Orders still open when the drain period ran out, summed over seeds.
    unfinished_orders: usize,
    throughput: Interval,
    avg_wip: Interval,
    total_cost: Interval,
    replans: usize,
    replan_mean_s: f64,
    replan_max_s: f64,
    /// This policy minus the first one listed, seed by seed (common random numbers make the
    /// paired interval much tighter than comparing the two intervals above).
    paired_vs_first: Option<Paired>,
}

#[derive(Debug, Clone, Serialize)]
struct Paired {
    against: String,
    mean_tardiness_h: Interval,
    makespan_h: Interval,
}

/// What one seed's run reports.
struct SeedRun {
    kpis: aifactory_core::Kpis,
    makespan_h: f64,
    unfinished_orders: usize,
    replan_s: Vec<f64>,
}

pub(crate) fn run(args: &PoliciesArgs) -> anyhow::Result<ExitCode> {
    crate::setup::check_days(args.days)?;
    if !(args.drain_days >= 0.0 && args.drain_days <= 3650.0) {
        bail!(
            "--drain-days must be between 0 and 3650, got {}",
            args.drain_days
        );
    }
    if args.seeds == 0 || args.seeds > 1000 {
        bail!("--seeds must be between 1 and 1000, got {}", args.seeds);
    }
    for (flag, value) in [
        ("--due-scale", args.due_scale),
        ("--load-scale", args.load_scale),
    ] {
        if !(value > 0.0 && value <= 100.0) {
            bail!("{flag} must be above 0 and at most 100, got {value}");
        }
    }
    let mut plant = crate::setup::plant_or_reference(args.plant.as_deref())?;
    for product in &mut plant.products {
        if let Some(demand) = &mut product.demand {
            demand.units_per_day *= args.load_scale;
            for d in &mut demand.due_days {
                *d *= args.due_scale;
            }
        }
    }
    let model = Arc::new(PlantModel::new(plant));
    let names: Vec<&str> = args
        .policies
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    for name in &names {
        if !matches!(*name, "fifo" | "edd" | "spt" | "aps") {
            bail!("policy `{name}` is unknown; expected a list of fifo, edd, spt, aps");
        }
    }
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(names.len() as u64 * args.seeds);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} runs {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    };
    let mut rows = Vec::new();
    let mut first: Option<(String, Vec<(f64, f64)>)> = None;
    for name in &names {
        bar.set_message(name.to_string());
        let mut runs = Vec::new();
        for seed in 1..=args.seeds {
            let base = BaselinePolicy::default();
            let run = if *name == "aps" {
                let config = ApsConfig {
                    iterations: args.aps_iterations,
                    ..ApsConfig::default()
                };
                run_one(&model, seed, args, ApsPolicy::new(config, base))
            } else {
                let dispatch = name.parse::<DispatchRule>()?;
                run_one(&model, seed, args, BaselinePolicy { dispatch, ..base })
            };
            runs.push(run);
            bar.inc(1);
        }
        let column = |f: &dyn Fn(&SeedRun) -> f64| -> Interval {
            interval(&runs.iter().map(f).collect::<Vec<_>>())
        };
        let replan_s: Vec<f64> = runs
            .iter()
            .flat_map(|r| r.replan_s.iter().copied())
            .collect();
        let mine: Vec<(f64, f64)> = runs
            .iter()
            .map(|r| (r.kpis.mean_tardiness_h, r.makespan_h))
            .collect();
        let paired_vs_first = first.as_ref().map(|(against, base)| {
            let diff = |f: fn(&(f64, f64)) -> f64| {
                interval(
                    &mine
                        .iter()
                        .zip(base)
                        .map(|(a, b)| f(a) - f(b))
                        .collect::<Vec<_>>(),
                )
            };
            Paired {
                against: against.clone(),
                mean_tardiness_h: diff(|p| p.0),
                makespan_h: diff(|p| p.1),
            }
        });
        if first.is_none() {
            first = Some(((*name).to_owned(), mine));
        }
        rows.push(PolicyRow {
            paired_vs_first,
            policy: (*name).to_owned(),
            seeds: runs.len(),
            mean_tardiness_h: column(&|r| r.kpis.mean_tardiness_h),
            on_time_delivery: column(&|r| r.kpis.on_time_delivery),
            makespan_h: column(&|r| r.makespan_h),
            unfinished_orders: runs.iter().map(|r| r.unfinished_orders).sum(),
            throughput: column(&|r| r.kpis.throughput),
            avg_wip: column(&|r| r.kpis.avg_wip),
            total_cost: column(&|r| r.kpis.total_cost),
            replans: replan_s.len(),
            replan_mean_s: if replan_s.is_empty() {
                0.0
            } else {
                replan_s.iter().sum::<f64>() / replan_s.len() as f64
            },
            replan_max_s: replan_s.iter().copied().fold(0.0, f64::max),
        });
    }
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} · orders for {} days (due × {}, demand × {}), drained ≤ {} days · seeds 1..={} · mean ± 95 % CI",
        model.plant().plant.id,
        args.days,
        args.due_scale,
        args.load_scale,
        args.drain_days,
        args.seeds
    );
    println!(
        "{:<6} {:>16} {:>14} {:>18} {:>10} {:>18} {:>14} {:>22} {:>22}",
        "policy",
        "tardiness h",
        "on-time %",
        "makespan h",
        "unfinished",
        "throughput /day",
        "WIP units",
        "total cost",
        "replans (mean/max s)"
    );
    for r in &rows {
        let pm = |i: Interval, scale: f64, digits: usize| {
            format!(
                "{:.*} ± {:.*}",
                digits,
                i.mean * scale,
                digits,
                i.ci95 * scale
            )
        };
        println!(
            "{:<6} {:>16} {:>14} {:>18} {:>10} {:>18} {:>14} {:>22} {:>22}",
            r.policy,
            pm(r.mean_tardiness_h, 1.0, 2),
            pm(r.on_time_delivery, 100.0, 1),
            pm(r.makespan_h, 1.0, 1),
            r.unfinished_orders,
            pm(r.throughput, 1.0, 1),
            pm(r.avg_wip, 1.0, 0),
            pm(r.total_cost, 1.0, 0),
            if r.replans == 0 {
                "-".to_owned()
            } else {
                format!(
                    "{} ({:.3}/{:.3})",
                    r.replans, r.replan_mean_s, r.replan_max_s
                )
            }
        );
    }
    let paired: Vec<(&str, &Paired)> = rows
        .iter()
        .filter_map(|r| r.paired_vs_first.as_ref().map(|p| (r.policy.as_str(), p)))
        .collect();
    if let Some((_, p)) = paired.first() {
        println!(
            "\ndifference to {}, paired by seed (negative = better)",
            p.against
        );
        println!(
            "{:<6} {:>18} {:>18}",
            "policy", "Δ tardiness h", "Δ makespan h"
        );
        for (policy, p) in &paired {
            println!(
                "{:<6} {:>18} {:>18}",
                policy,
                format!(
                    "{:+.2} ± {:.2}",
                    p.mean_tardiness_h.mean, p.mean_tardiness_h.ci95
                ),
                format!("{:+.1} ± {:.1}", p.makespan_h.mean, p.makespan_h.ci95)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs one seed: orders for `days`, then up to `drain_days` more until the book is empty.
fn run_one<P: Policy + Send + 'static>(
    model: &Arc<PlantModel>,
    seed: u64,
    args: &PoliciesArgs,
    inner: P,
) -> SeedRun {
    let log = Arc::new(Mutex::new(Vec::new()));
    let policy = Timed {
        inner,
        log: Arc::clone(&log),
    };
    let mut sim = Simulation::new(Arc::clone(model), seed, Box::new(policy), Some(0.0));
    // Demand is generated per whole day; a fractional --days still ends the window there.
    sim.stop_demand_after_days(args.days.ceil() as u32);
    sim.run_until(PlantTime::from_days(args.days), &mut ());
    let end = PlantTime::from_days(args.days + args.drain_days);
    // Step an hour at a time so the run stops soon after the last order, not at the cap.
    while sim.open_orders() > 0 && sim.now() < end {
        let next = PlantTime::from_hours(sim.now().hours() + 1.0).min(end);
        sim.run_until(next, &mut ());
    }
    let unfinished_orders = sim.open_orders();
    let makespan_h = sim.last_order_completed().map_or(0.0, PlantTime::hours);
    let kpis = sim.finish().kpis;
    let replan_s = log.lock().map(|v| v.clone()).unwrap_or_default();
    SeedRun {
        kpis,
        makespan_h,
        unfinished_orders,
        replan_s,
    }
}

#[cfg(test)]
mod tests {
    use super::interval;

    #[test]
    fn confidence_interval_uses_student_t() {
        let i = interval(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!((i.mean - 3.0).abs() < 1e-12);
        // s = 1.5811, t(4) = 2.776 → 2.776 · 1.5811 / √5 = 1.963
        assert!((i.ci95 - 1.963).abs() < 1e-3, "{}", i.ci95);
    }
}
