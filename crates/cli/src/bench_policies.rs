//! `aifactory bench policies`: the same plant under several policies over several seeds, with
//! 95 % confidence intervals — how a planner would judge a scheduling skill against EDD and FIFO.

use aifactory_skills::{ApsConfig, ApsPolicy};
use aifactory_twin::{
    BaselinePolicy, DispatchRule, Floor, MachineId, MachineView, MaterialView, PlantModel, Policy,
    PurchaseRequest, QueuedOp, SimTime, Simulation,
};
use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::Path;
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
    fn dispatch(&mut self, now: SimTime, m: MachineId, c: &[QueuedOp]) -> usize {
        self.inner.dispatch(now, m, c)
    }
    fn start_maintenance(&mut self, v: &MachineView) -> bool {
        self.inner.start_maintenance(v)
    }
    fn purchase(&mut self, now: SimTime, s: &[MaterialView]) -> Vec<PurchaseRequest> {
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
const T95: [f64; 30] = [
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

#[derive(Debug, Serialize)]
struct PolicyRow {
    policy: String,
    seeds: usize,
    mean_tardiness_h: Interval,
    on_time_delivery: Interval,
    throughput: Interval,
    avg_wip: Interval,
    total_cost: Interval,
    replans: usize,
    replan_mean_s: f64,
    replan_max_s: f64,
}

pub(crate) fn run(
    plant_file: Option<&Path>,
    days: f64,
    seeds: u64,
    policies: &str,
    aps_iterations: u64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    crate::run::check_days(days)?;
    if seeds == 0 || seeds > 1000 {
        bail!("--seeds must be between 1 and 1000, got {seeds}");
    }
    let plant = crate::run::plant_or_reference(plant_file)?;
    let model = Arc::new(PlantModel::new(plant));
    let names: Vec<&str> = policies
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    for name in &names {
        if !matches!(*name, "fifo" | "edd" | "spt" | "aps") {
            bail!("policy `{name}` is unknown; expected a list of fifo, edd, spt, aps");
        }
    }
    let bar = if json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(names.len() as u64 * seeds);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} runs {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    };
    let mut rows = Vec::new();
    for name in &names {
        bar.set_message(name.to_string());
        let mut results = Vec::new();
        let mut replan_s = Vec::new();
        for seed in 1..=seeds {
            let base = BaselinePolicy::default();
            let (result, times) = if *name == "aps" {
                let config = ApsConfig {
                    iterations: aps_iterations,
                    ..ApsConfig::default()
                };
                run_one(&model, seed, days, ApsPolicy::new(config, base))
            } else {
                let dispatch = name.parse::<DispatchRule>()?;
                run_one(&model, seed, days, BaselinePolicy { dispatch, ..base })
            };
            results.push(result);
            replan_s.extend(times);
            bar.inc(1);
        }
        let column = |f: fn(&aifactory_core::Kpis) -> f64| -> Interval {
            interval(&results.iter().map(f).collect::<Vec<_>>())
        };
        rows.push(PolicyRow {
            policy: (*name).to_owned(),
            seeds: results.len(),
            mean_tardiness_h: column(|k| k.mean_tardiness_h),
            on_time_delivery: column(|k| k.on_time_delivery),
            throughput: column(|k| k.throughput),
            avg_wip: column(|k| k.avg_wip),
            total_cost: column(|k| k.total_cost),
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
    if json {
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} · {days} days · seeds 1..={seeds} · mean ± 95 % CI",
        model.plant().plant.id
    );
    println!(
        "{:<6} {:>20} {:>18} {:>20} {:>18} {:>24} {:>22}",
        "policy",
        "tardiness h",
        "on-time %",
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
            "{:<6} {:>20} {:>18} {:>20} {:>18} {:>24} {:>22}",
            r.policy,
            pm(r.mean_tardiness_h, 1.0, 2),
            pm(r.on_time_delivery, 100.0, 1),
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
    Ok(ExitCode::SUCCESS)
}

fn run_one<P: Policy + Send + 'static>(
    model: &Arc<PlantModel>,
    seed: u64,
    days: f64,
    inner: P,
) -> (aifactory_core::Kpis, Vec<f64>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let policy = Timed {
        inner,
        log: Arc::clone(&log),
    };
    let mut sim = Simulation::new(Arc::clone(model), seed, Box::new(policy), Some(0.0));
    sim.run_until(SimTime::from_days(days), &mut ());
    let kpis = sim.finish().kpis;
    let times = log.lock().map(|v| v.clone()).unwrap_or_default();
    (kpis, times)
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
