//! `aifactory bench paced`: the twin as a plant that does not wait, paced like a plant, with a
//! plant feed deciding for it across the broker — compared KPI by KPI with the same coordinator
//! in the twin's own loop over several seeds. Each paced run's KPI is checked against the 95 %
//! interval a further in-process run would fall in (the prediction interval: mean ± t·s·√(1 +
//! 1/n) over the in-process seeds), so "inside" means the wire and the pace changed nothing the
//! seeds' own spread does not cover.

use crate::bench_policies::T95;
use aifactory_connect::mqtt::BrokerAddress;
use aifactory_core::Kpis;
use aifactory_runtime::feed::Latency;
use aifactory_runtime::paced::{in_process, paced_rung};
use anyhow::Context;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(crate) struct PacedBenchArgs {
    /// Plant file [default: the built-in reference plant].
    #[arg(long)]
    plant: Option<PathBuf>,
    /// Simulated days per run.
    #[arg(long, default_value_t = 30.0)]
    days: f64,
    /// Tiers to run, comma-separated: 0 the tier-0 rules, 1 the skills, 2 the coordinated
    /// skills, 3 the closed loop (built on the plant's trial batches) — the coordinators a
    /// plant feed runs.
    #[arg(long, default_value = "0,1,2", value_delimiter = ',')]
    tiers: Vec<u8>,
    /// In-process runs per tier (seeds 1..=N) that make the interval.
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Paced runs per tier (seeds 1..=N); each takes days × 86,400 / --speed wall seconds.
    #[arg(long, default_value_t = 1)]
    paced_seeds: u64,
    /// Plant seconds per wall second (3600: an hour of the plant a second).
    #[arg(long, default_value_t = 3600.0)]
    speed: f64,
    /// Through this broker (mqtt://host:port) [default: the embedded one, relayed with Nagle's
    /// algorithm off].
    #[arg(long)]
    mqtt: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The KPIs compared.
const KPIS: [&str; 14] = [
    "oee",
    "availability",
    "performance",
    "quality",
    "on_time_delivery",
    "throughput",
    "mean_tardiness_h",
    "avg_wip",
    "scrap_rate",
    "energy_kwh_per_good_unit",
    "total_cost",
    "good_units",
    "orders_completed",
    "failures",
];

#[derive(Debug, Serialize)]
struct Band {
    mean: f64,
    /// Where a further in-process run falls with 95 % probability.
    low: f64,
    high: f64,
    values: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct Paced {
    seed: u64,
    wall_s: f64,
    kpis: BTreeMap<String, f64>,
    /// The KPIs outside the in-process band.
    outside: Vec<String>,
    events: u64,
    telemetry_messages: u64,
    /// Trial batches the plant ran for the feed's coordinator (tier 3) before it decided.
    trial_batches: u64,
    commands: u64,
    outcomes: BTreeMap<String, u64>,
    latency: BTreeMap<String, Latency>,
}

#[derive(Debug, Serialize)]
struct TierReport {
    tier: u8,
    in_process: BTreeMap<String, Band>,
    paced: Vec<Paced>,
}

#[derive(Debug, Serialize)]
struct Report {
    plant: String,
    days: f64,
    speed: f64,
    broker: String,
    tiers: Vec<TierReport>,
}

fn numbers(kpis: &Kpis) -> BTreeMap<String, f64> {
    let value = serde_json::to_value(kpis).unwrap_or_default();
    KPIS.iter()
        .filter_map(|k| {
            value
                .get(*k)
                .and_then(serde_json::Value::as_f64)
                .map(|v| ((*k).to_owned(), v))
        })
        .collect()
}

fn band(values: Vec<f64>) -> Band {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n.max(1) as f64;
    let half = if n < 2 {
        f64::INFINITY
    } else {
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let t = T95.get(n - 2).copied().unwrap_or(1.96);
        t * var.sqrt() * (1.0 + 1.0 / n as f64).sqrt()
    };
    Band {
        mean,
        low: mean - half,
        high: mean + half,
        values,
    }
}

pub(crate) fn run(args: &PacedBenchArgs) -> anyhow::Result<ExitCode> {
    if !(args.days.is_finite() && args.days > 0.0 && args.days <= 365.0) {
        anyhow::bail!("--days must be more than 0 and at most 365");
    }
    if !(args.speed.is_finite() && args.speed >= 1.0) {
        anyhow::bail!("--speed must be at least 1");
    }
    if !(2..=30).contains(&args.seeds) {
        anyhow::bail!("--seeds must be 2 to 30: an interval needs a spread");
    }
    if let Some(t) = args.tiers.iter().find(|t| **t > 3) {
        anyhow::bail!("--tiers: {t} is not a tier (0, 1, 2 or 3)");
    }
    let mut plant = crate::setup::plant_or_reference(args.plant.as_deref())?;
    // A site of its own: another run on the same broker (a second bench, a `serve --plant-feed`
    // of the same plant) must not hear this one's events or send it commands.
    plant.plant.id = format!("{}-paced-{}", plant.plant.id, std::process::id());
    let broker: BrokerAddress = match &args.mqtt {
        Some(url) => url.parse().with_context(|| format!("--mqtt {url}"))?,
        None => crate::run::embedded_broker_low_latency()?,
    };
    let runtime = crate::setup::runtime()?;
    let mut tiers = Vec::new();
    for &tier in &args.tiers {
        if !args.json {
            eprintln!("tier {tier}: {} in-process run(s)…", args.seeds);
        }
        let mut columns: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for seed in 1..=args.seeds {
            let kpis = in_process(&plant, tier, seed, args.days)
                .with_context(|| format!("tier {tier}, seed {seed} in process"))?;
            for (k, v) in numbers(&kpis) {
                columns.entry(k).or_default().push(v);
            }
        }
        let bands: BTreeMap<String, Band> =
            columns.into_iter().map(|(k, v)| (k, band(v))).collect();
        let mut paced = Vec::new();
        for seed in 1..=args.paced_seeds {
            let bar = crate::run::progress(args.days, args.json);
            let run = paced_rung(
                runtime.handle(),
                &plant,
                &broker,
                &format!("aifactory-bench-paced-{}-{tier}-{seed}", std::process::id()),
                tier,
                seed,
                args.days,
                args.speed,
                &mut |day| aifactory_runtime::Progress::day(&*bar, day),
            )
            .with_context(|| format!("tier {tier}, seed {seed} paced at {}x", args.speed))?;
            aifactory_runtime::Progress::finished(&*bar);
            let kpis = numbers(&run.kpis);
            let outside = kpis
                .iter()
                .filter(|(k, v)| bands.get(*k).is_some_and(|b| **v < b.low || **v > b.high))
                .map(|(k, _)| k.clone())
                .collect();
            paced.push(Paced {
                seed,
                wall_s: run.wall.as_secs_f64(),
                kpis,
                outside,
                events: run.plant.events,
                telemetry_messages: run.plant.telemetry_messages,
                trial_batches: run.plant.trial_batches,
                commands: run.feed.commands,
                outcomes: run.feed.outcomes.clone(),
                latency: run.feed.latency.clone(),
            });
        }
        tiers.push(TierReport {
            tier,
            in_process: bands,
            paced,
        });
    }
    let report = Report {
        plant: plant.plant.id.clone(),
        days: args.days,
        speed: args.speed,
        broker: format!("mqtt://{}:{}", broker.host, broker.port),
        tiers,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print(report: &Report) {
    println!(
        "{}: {} day(s) paced at {}x through {}, against the same coordinator in process",
        report.plant, report.days, report.speed, report.broker
    );
    for tier in &report.tiers {
        println!("\ntier {}", tier.tier);
        print!("{:<26} {:>34}", "KPI", "in process: mean [95 % band]");
        for p in &tier.paced {
            print!(" {:>16}", format!("paced seed {}", p.seed));
        }
        println!();
        for (k, b) in &tier.in_process {
            print!(
                "{k:<26} {:>34}",
                format!("{:.4} [{:.4}, {:.4}]", b.mean, b.low, b.high)
            );
            for p in &tier.paced {
                let v = p.kpis.get(k).copied().unwrap_or(f64::NAN);
                let mark = if p.outside.contains(k) { " ✗" } else { "  " };
                print!(" {:>14.4}{mark}", v);
            }
            println!();
        }
        for p in &tier.paced {
            println!(
                "paced seed {}: {:.0} s wall, {} events, {} trial batches, {} commands {:?}; outside the band: {}",
                p.seed,
                p.wall_s,
                p.events,
                p.trial_batches,
                p.commands,
                p.outcomes,
                if p.outside.is_empty() {
                    "none".to_owned()
                } else {
                    p.outside.join(", ")
                }
            );
        }
    }
}
