//! `aifactory ladder`: the same plant and seeds under each tier configuration, with KPIs and 95 %
//! intervals and the tier that the assessment computes from each run's own decisions.
//!
//! Each rung is a configuration of the coordinator (crate `coordinator`); a rung it does not
//! build yet is reported as such, never simulated with a stand-in. `--cut LINK` cuts one link
//! of the shared plan, to measure what it is worth and to see the assessment notice.

use crate::bench_policies::{Interval, interval};
use aifactory_coordinator::{Links, Tier};
use aifactory_core::Kpis;
use aifactory_twin::PlantModel;
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, clap::Args)]
pub(crate) struct LadderArgs {
    /// Plant file [default: the built-in reference plant].
    #[arg(long)]
    plant: Option<PathBuf>,
    /// Simulated days per run.
    #[arg(long, default_value_t = 60.0)]
    days: f64,
    /// Seeds per configuration (the same seeds for every tier: paired runs).
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    /// The first seed; seeds run from here upwards.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Tiers to run, e.g. `0,2` [default: every tier the coordinator builds].
    #[arg(long, value_delimiter = ',')]
    tiers: Vec<u8>,
    /// Cut a link of the shared plan in tiers 2 and up, to see what it is worth and that the
    /// assessment notices: maintenance-to-schedule, forecast-to-plan, quality-to-process or
    /// schedule-to-quote; or lot-sizing (the plant's own lots at every tier).
    #[arg(long, value_name = "LINK")]
    cut: Option<String>,
    /// What a link is worth: run each tier with every link and with LINK cut, on the same
    /// seeds, and report the paired difference of every KPI (with − without, 95 % interval).
    /// Links of the shared plan as for --cut (and lot-sizing); of the closed loop (tier 3):
    /// anomaly-trigger, process-search.
    #[arg(long, value_name = "LINK", conflicts_with_all = ["cut", "wire"])]
    worth: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Run each rung over the wire: the twin as a separate `aifactory sim --lockstep` process,
    /// asking for every decision through a broker, and the coordinator answering here. The
    /// same seeds give the same KPIs and ledgers as in process; rungs run one at a time.
    #[arg(long)]
    wire: bool,
    /// With --wire: the broker (mqtt://host:port) [default: an embedded one].
    #[arg(long, requires = "wire")]
    mqtt: Option<String>,
}

impl LadderArgs {
    /// The demo's short ladder: every tier on the reference plant, two seeds.
    pub(crate) fn short(days: f64, first_seed: u64) -> LadderArgs {
        LadderArgs {
            plant: None,
            days,
            seeds: 2,
            first_seed,
            tiers: Vec::new(),
            cut: None,
            worth: None,
            json: false,
            wire: false,
            mqtt: None,
        }
    }
}

/// KPIs reported beside OEE, on-time delivery and total cost.
type KpiOf = fn(&RunResult) -> f64;
const DETAIL: [(&str, KpiOf); 18] = [
    ("availability", |r| r.kpis.availability),
    ("performance", |r| r.kpis.performance),
    ("quality", |r| r.kpis.quality),
    ("energy_cost", |r| r.kpis.energy_cost),
    ("maintenance_cost", |r| r.kpis.maintenance_cost),
    ("scrap_cost", |r| r.kpis.scrap_cost),
    ("holding_cost", |r| r.kpis.holding_cost),
    ("tardiness_cost", |r| r.kpis.tardiness_cost),
    ("failures", |r| r.kpis.failures as f64),
    ("downtime_h", |r| r.kpis.downtime_h),
    ("avg_wip", |r| r.kpis.avg_wip),
    // OEE's losses, machine hours: where each tier's gain comes from.
    ("setup_h", |r| r.kpis.setup_h),
    ("breakdown_h", |r| r.kpis.breakdown_h),
    ("planned_stop_h", |r| r.kpis.planned_stop_h),
    ("speed_loss_h", |r| r.kpis.speed_loss_h),
    ("defect_loss_h", |r| r.kpis.defect_loss_h),
    // How the floor's work was cut: what set-ups are paid per, and how long an order takes.
    ("work_orders", |r| r.kpis.work_orders as f64),
    ("mean_order_lead_time_h", |r| r.kpis.mean_order_lead_time_h),
];

/// The highest rung of the ladder.
const TOP_TIER: u8 = 3;

/// A description of each rung.
fn describe(tier: u8) -> &'static str {
    Tier::from_number(tier).map_or("not a rung", Tier::describe)
}

#[derive(Debug, Clone)]
struct RunResult {
    seed: u64,
    ledger_sha256: String,
    kpis: Kpis,
    assessed_tier: u8,
    decisions: usize,
    missing: Vec<String>,
    /// Per lifecycle stage: depth and what it lacks for the next.
    stages: Vec<StageDepth>,
    closed_loop: Option<aifactory_coordinator::LoopCounts>,
    wall_s: f64,
    wire: Option<aifactory_runtime::lockstep::ServiceCounts>,
}

#[derive(Debug, Clone, serde::Serialize)]
struct StageDepth {
    stage: String,
    depth: u8,
    missing: Vec<String>,
}

fn run_one(
    model: &Arc<PlantModel>,
    tier: u8,
    links: Links,
    seed: u64,
    days: f64,
) -> anyhow::Result<RunResult> {
    let began = std::time::Instant::now();
    let run = aifactory_runtime::ladder::run_rung(model, tier, links, seed, days)?;
    Ok(result_of(run, began.elapsed().as_secs_f64(), None))
}

/// A rung's run as the ladder reports it.
fn result_of(
    run: aifactory_runtime::ladder::RungRun,
    wall_s: f64,
    wire: Option<aifactory_runtime::lockstep::ServiceCounts>,
) -> RunResult {
    RunResult {
        wall_s,
        wire,
        seed: run.seed,
        ledger_sha256: run.ledger_sha256,
        kpis: run.kpis,
        assessed_tier: run.assessment.tier,
        decisions: run.decisions,
        missing: run.assessment.missing_for_next_tier,
        closed_loop: run.closed_loop,
        stages: run
            .assessment
            .stages
            .iter()
            .map(|s| StageDepth {
                stage: s.stage.to_string(),
                depth: s.depth,
                missing: s.missing.clone(),
            })
            .collect(),
    }
}

/// How a rung reaches its twin over the wire.
struct Wire {
    runtime: tokio::runtime::Runtime,
    broker: aifactory_connect::mqtt::BrokerAddress,
    /// The plant file the twin's process loads.
    plant_file: PathBuf,
    /// Holds the file written for the built-in plant until the ladder ends.
    _written: Option<tempfile::NamedTempFile>,
}

impl Wire {
    fn new(args: &LadderArgs) -> anyhow::Result<Wire> {
        let broker = match &args.mqtt {
            Some(url) => url.parse().with_context(|| format!("--mqtt {url}"))?,
            None => crate::run::embedded_broker_low_latency()?,
        };
        let (plant_file, written) = match &args.plant {
            Some(p) => (p.clone(), None),
            None => {
                let mut file = tempfile::Builder::new()
                    .prefix("aifactory-ladder-plant-")
                    .suffix(".toml")
                    .tempfile()
                    .context("writing the reference plant for the twin's process")?;
                std::io::Write::write_all(&mut file, crate::setup::REFERENCE_PLANT.as_bytes())
                    .context("writing the reference plant for the twin's process")?;
                (file.path().to_owned(), Some(file))
            }
        };
        Ok(Wire {
            runtime: crate::setup::runtime()?,
            broker,
            plant_file,
            _written: written,
        })
    }
}

/// One rung with the twin in its own process: the runtime's side here answers its requests.
fn run_one_wire(
    wire: &Wire,
    model: &Arc<PlantModel>,
    tier: u8,
    links: Links,
    seed: u64,
    days: f64,
) -> anyhow::Result<RunResult> {
    use aifactory_runtime::lockstep;
    let began = std::time::Instant::now();
    let plant = model.plant().clone();
    let url = format!("mqtt://{}:{}", wire.broker.host, wire.broker.port);
    let service = wire
        .runtime
        .block_on(lockstep::Service::connect(
            plant.clone(),
            &wire.broker,
            &format!("aifactory-ladder-{}-t{tier}-s{seed}", std::process::id()),
            tier,
            links,
            seed,
            days,
        ))
        .with_context(|| format!("connecting to {url}"))?;
    let exe = std::env::current_exe().context("finding this program to start the twin")?;
    let child = std::process::Command::new(exe)
        .arg("sim")
        .arg("--plant")
        .arg(&wire.plant_file)
        .args(["--days", &days.to_string(), "--seed", &seed.to_string()])
        .args(["--mqtt", &url, "--lockstep", "--json"])
        .args([
            "--mqtt-client-id",
            &format!("aifactory-twin-{}-t{tier}-s{seed}", std::process::id()),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting the twin's process (aifactory sim --lockstep)")?;
    let served = service.run();
    let output = child
        .wait_with_output()
        .context("waiting for the twin's process")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let served = served.with_context(|| format!("answering the twin: {}", stderr.trim()))?;
    if !output.status.success() {
        anyhow::bail!("the twin's process failed: {}", stderr.trim());
    }
    let kpis: Kpis = serde_json::from_slice(&output.stdout)
        .context("reading the KPIs the twin's process printed")?;
    let counts = served.counts.clone();
    let run = lockstep::rung(&plant, seed, days, kpis, served)?;
    Ok(result_of(run, began.elapsed().as_secs_f64(), Some(counts)))
}

#[derive(Debug, serde::Serialize)]
struct Rung {
    tier: u8,
    configuration: &'static str,
    built: bool,
    /// Assessed tier of each seed's run.
    assessed: Vec<u8>,
    oee: Option<Interval>,
    on_time_delivery: Option<Interval>,
    total_cost: Option<Interval>,
    decisions: Option<Interval>,
    /// The other KPIs behind OEE and cost, by name.
    kpis: std::collections::BTreeMap<&'static str, Interval>,
    /// Paired difference of total cost against tier 0.
    total_cost_vs_tier0: Option<Interval>,
    /// Paired difference of total cost against the rung below (when it ran too).
    total_cost_vs_previous: Option<Interval>,
    /// Each seed's total cost, in seed order.
    total_cost_by_seed: Vec<f64>,
    /// What the first seed's run lacks for the next tier.
    missing_for_next_tier: Vec<String>,
    /// The first seed's run, stage by stage.
    stages: Vec<StageDepth>,
    /// The closed loop's work per run (tier 3).
    closed_loop: Option<LoopWork>,
    /// Each run: its seed, every KPI and its ledger's SHA-256 (a refactor that changes no
    /// answer leaves all of them equal).
    runs: Vec<RunRecord>,
    /// How long each run took and, over the wire, what the runtime's side did: apart from
    /// `runs`, which the same seeds repeat exactly.
    timing: Vec<RunTiming>,
}

#[derive(Debug, serde::Serialize)]
struct RunRecord {
    seed: u64,
    assessed_tier: u8,
    decisions: usize,
    ledger_sha256: String,
    kpis: Kpis,
}

#[derive(Debug, serde::Serialize)]
struct RunTiming {
    seed: u64,
    /// Wall seconds the run took (over the wire: both processes, broker included).
    wall_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    wire: Option<aifactory_runtime::lockstep::ServiceCounts>,
}

#[derive(Debug, serde::Serialize)]
struct LoopWork {
    /// Outcomes measured and linked to their decisions by the loop's observer.
    outcomes: Interval,
    /// Model updates the loop's observer made (the skills' own are in the ledger too).
    model_updates: Interval,
    /// Tuned set-points rolled back by the guard.
    rollbacks: Interval,
}

pub(crate) fn run(args: &LadderArgs) -> anyhow::Result<ExitCode> {
    crate::setup::check_days(args.days)?;
    if args.seeds < 2 || args.seeds > 1000 {
        anyhow::bail!("--seeds must be between 2 and 1000, got {}", args.seeds);
    }
    let plant = crate::setup::plant_or_reference(args.plant.as_deref())?;
    let model = Arc::new(PlantModel::new(plant));
    let seeds: Vec<u64> = (args.first_seed..args.first_seed + args.seeds).collect();
    let built: Vec<u8> = Tier::ALL.iter().map(|t| t.number()).collect();
    let tiers: Vec<u8> = if args.tiers.is_empty() {
        built.clone()
    } else {
        let mut t = args.tiers.clone();
        t.sort_unstable();
        t.dedup();
        if let Some(bad) = t.iter().find(|t| !built.contains(t)) {
            anyhow::bail!(
                "--tiers: tier {bad} is not built (built: {})",
                built
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        t
    };
    if let Some(link) = &args.worth {
        return worth(args, &model, &seeds, &tiers, link);
    }
    let links = match &args.cut {
        Some(link) => Links::ALL.without(link)?,
        None => Links::ALL,
    };
    let jobs: Vec<(u8, u64)> = tiers
        .iter()
        .flat_map(|&t| seeds.iter().map(move |&s| (t, s)))
        .collect();
    let wire = args.wire.then(|| Wire::new(args)).transpose()?;
    // Over the wire every rung is the same site on one broker: one at a time.
    let workers = if wire.is_some() { 1 } else { usize::MAX };
    let results = run_pool(
        &jobs,
        workers,
        args.json,
        "tier runs",
        |&(tier, seed)| match &wire {
            Some(w) => run_one_wire(w, &model, tier, links, seed, args.days),
            None => run_one(&model, tier, links, seed, args.days),
        },
    )?;
    let mut by_tier: std::collections::BTreeMap<u8, Vec<RunResult>> = Default::default();
    for ((tier, seed), result) in jobs.iter().zip(results) {
        let result = result
            .with_context(|| format!("tier {tier}, seed {seed}: no result"))?
            .with_context(|| format!("tier {tier}, seed {seed}"))?;
        by_tier.entry(*tier).or_default().push(result);
    }
    let costs_of = |tier: u8| -> Vec<f64> {
        by_tier
            .get(&tier)
            .map(|r| r.iter().map(|x| x.kpis.total_cost).collect())
            .unwrap_or_default()
    };
    let paired = |runs: &[RunResult], base: &[f64]| -> Option<Interval> {
        (!runs.is_empty() && runs.len() == base.len()).then(|| {
            let diffs: Vec<f64> = runs
                .iter()
                .zip(base)
                .map(|(r, b)| r.kpis.total_cost - b)
                .collect();
            interval(&diffs)
        })
    };
    let tier0_cost = costs_of(0);
    let rungs: Vec<Rung> = (0..=TOP_TIER)
        .filter(|t| tiers.contains(t) || !built.contains(t))
        .map(|tier| {
            let configuration = describe(tier);
            let built = built.contains(&tier);
            let runs = by_tier.get(&tier).map(Vec::as_slice).unwrap_or_default();
            let stat = |f: fn(&RunResult) -> f64| {
                (!runs.is_empty()).then(|| interval(&runs.iter().map(f).collect::<Vec<_>>()))
            };
            Rung {
                tier,
                configuration,
                built,
                assessed: runs.iter().map(|r| r.assessed_tier).collect(),
                oee: stat(|r| r.kpis.oee),
                on_time_delivery: stat(|r| r.kpis.on_time_delivery),
                total_cost: stat(|r| r.kpis.total_cost),
                kpis: DETAIL
                    .iter()
                    .filter_map(|&(name, f)| stat(f).map(|i| (name, i)))
                    .collect(),
                decisions: stat(|r| r.decisions as f64),
                total_cost_vs_tier0: if tier > 0 {
                    paired(runs, &tier0_cost)
                } else {
                    None
                },
                total_cost_vs_previous: if tier > 0 {
                    paired(runs, &costs_of(tier - 1))
                } else {
                    None
                },
                total_cost_by_seed: runs.iter().map(|r| r.kpis.total_cost).collect(),
                runs: runs
                    .iter()
                    .map(|r| RunRecord {
                        seed: r.seed,
                        assessed_tier: r.assessed_tier,
                        decisions: r.decisions,
                        ledger_sha256: r.ledger_sha256.clone(),
                        kpis: r.kpis.clone(),
                    })
                    .collect(),
                timing: runs
                    .iter()
                    .map(|r| RunTiming {
                        seed: r.seed,
                        wall_s: r.wall_s,
                        wire: r.wire.clone(),
                    })
                    .collect(),
                missing_for_next_tier: runs.first().map(|r| r.missing.clone()).unwrap_or_default(),
                stages: runs.first().map(|r| r.stages.clone()).unwrap_or_default(),
                closed_loop: {
                    let counts: Vec<aifactory_coordinator::LoopCounts> =
                        runs.iter().filter_map(|r| r.closed_loop).collect();
                    (!counts.is_empty() && counts.len() == runs.len()).then(|| {
                        let of = |f: fn(&aifactory_coordinator::LoopCounts) -> u64| {
                            interval(&counts.iter().map(|c| f(c) as f64).collect::<Vec<_>>())
                        };
                        LoopWork {
                            outcomes: of(|c| c.outcomes),
                            model_updates: of(|c| c.model_updates),
                            rollbacks: of(|c| c.rollbacks),
                        }
                    })
                },
            }
        })
        .collect();
    if args.json {
        let value = serde_json::json!({
            "plant": model.plant().plant.id,
            "days": args.days,
            "seeds": seeds,
            "cut": args.cut,
            "rungs": rungs,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "The AI-factory ladder on {}: {} days, seeds {}..{} (paired); ± is the 95 % interval.\n",
        model.plant().plant.id,
        args.days,
        seeds[0],
        seeds[seeds.len() - 1]
    );
    let fmt = |i: &Option<Interval>, scale: f64, decimals: usize| {
        i.map_or_else(
            || "—".to_owned(),
            |i| {
                format!(
                    "{:.d$} ± {:.d$}",
                    i.mean * scale,
                    i.ci95 * scale,
                    d = decimals
                )
            },
        )
    };
    println!(
        "  {:<4} {:<9} {:<14} {:<14} {:<20} {:<20} {:<20}",
        "tier",
        "assessed",
        "OEE %",
        "on-time %",
        "total cost",
        "cost vs tier 0",
        "vs the tier below"
    );
    for r in &rungs {
        if !r.built {
            println!("  {:<4} {}", r.tier, r.configuration);
            continue;
        }
        let lo = r.assessed.iter().min().copied().unwrap_or(0);
        let hi = r.assessed.iter().max().copied().unwrap_or(0);
        let assessed = if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}–{hi}")
        };
        println!(
            "  {:<4} {:<9} {:<14} {:<14} {:<20} {:<20} {:<20}",
            r.tier,
            assessed,
            fmt(&r.oee, 100.0, 1),
            fmt(&r.on_time_delivery, 100.0, 1),
            fmt(&r.total_cost, 1.0, 0),
            fmt(&r.total_cost_vs_tier0, 1.0, 0),
            fmt(&r.total_cost_vs_previous, 1.0, 0),
        );
    }
    println!(
        "\n  Where OEE is lost, machine hours per run (mean), and how the work was cut:\n  {:<4} {:>10} {:>10} {:>13} {:>12} {:>10} {:>12} {:>12}",
        "tier",
        "set-ups",
        "breakdowns",
        "planned stops",
        "slow running",
        "defects",
        "work orders",
        "order lead h"
    );
    for r in rungs.iter().filter(|r| r.built) {
        let hours = |name: &str| {
            r.kpis
                .get(name)
                .map_or_else(|| "—".to_owned(), |i| format!("{:.0}", i.mean))
        };
        println!(
            "  {:<4} {:>10} {:>10} {:>13} {:>12} {:>10} {:>12} {:>12}",
            r.tier,
            hours("setup_h"),
            hours("breakdown_h"),
            hours("planned_stop_h"),
            hours("speed_loss_h"),
            hours("defect_loss_h"),
            hours("work_orders"),
            hours("mean_order_lead_time_h"),
        );
    }
    for r in rungs.iter().filter(|r| r.built) {
        println!("\n  tier {}: {}", r.tier, r.configuration);
        let assessed = r.assessed.first().copied().unwrap_or(0);
        if !r.missing_for_next_tier.is_empty() {
            println!(
                "    assessed tier {assessed} (first seed); missing for tier {}:",
                assessed + 1
            );
            for m in &r.missing_for_next_tier {
                println!("      - {m}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `run` on every job on up to `workers` threads (at most one per core), with a progress
/// bar unless `quiet`; the results in the jobs' order.
fn run_pool<J: Sync>(
    jobs: &[J],
    workers: usize,
    quiet: bool,
    message: &'static str,
    run: impl Fn(&J) -> anyhow::Result<RunResult> + Sync,
) -> anyhow::Result<Vec<Option<anyhow::Result<RunResult>>>> {
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(jobs.len() as u64)
    };
    bar.set_message(message);
    let results: Mutex<Vec<Option<anyhow::Result<RunResult>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let workers = workers.min(cores).min(jobs.len()).max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else {
                        break;
                    };
                    let result = run(job);
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(result);
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a ladder run panicked"))
}

/// KPIs whose paired difference `--worth` reports, beside those of [`DETAIL`].
const WORTH_HEADLINE: [(&str, KpiOf); 4] = [
    ("oee", |r| r.kpis.oee),
    ("on_time_delivery", |r| r.kpis.on_time_delivery),
    ("scrap_rate", |r| r.kpis.scrap_rate),
    ("total_cost", |r| r.kpis.total_cost),
];

/// `ladder --worth LINK`: each tier with every link and with `link` cut, paired by seed.
fn worth(
    args: &LadderArgs,
    model: &Arc<PlantModel>,
    seeds: &[u64],
    tiers: &[u8],
    link: &str,
) -> anyhow::Result<ExitCode> {
    let cut = Links::ALL.without(link)?;
    let jobs: Vec<(u8, u64, bool)> = tiers
        .iter()
        .flat_map(|&t| {
            seeds
                .iter()
                .flat_map(move |&s| [(t, s, true), (t, s, false)])
        })
        .collect();
    let results = run_pool(
        &jobs,
        usize::MAX,
        args.json,
        "paired runs",
        |&(tier, seed, with)| {
            let links = if with { Links::ALL } else { cut };
            run_one(model, tier, links, seed, args.days)
        },
    )?;
    let mut paired: std::collections::BTreeMap<u8, (Vec<RunResult>, Vec<RunResult>)> =
        Default::default();
    for ((tier, seed, with), result) in jobs.iter().zip(results) {
        let arm = if *with { "with" } else { "without" };
        let result = result
            .with_context(|| format!("tier {tier}, seed {seed}, {arm} {link}: no result"))?
            .with_context(|| format!("tier {tier}, seed {seed}, {arm} {link}"))?;
        let entry = paired.entry(*tier).or_default();
        if *with {
            entry.0.push(result);
        } else {
            entry.1.push(result);
        }
    }
    let mut report = Vec::new();
    for (tier, (with, without)) in &paired {
        let mut kpis = serde_json::Map::new();
        for (name, f) in WORTH_HEADLINE.iter().chain(DETAIL.iter()) {
            let a: Vec<f64> = with.iter().map(f).collect();
            let b: Vec<f64> = without.iter().map(f).collect();
            let diff: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
            kpis.insert(
                (*name).to_owned(),
                serde_json::json!({
                    "with": interval(&a),
                    "without": interval(&b),
                    "difference": interval(&diff),
                }),
            );
        }
        let loop_count = |runs: &[RunResult], f: fn(&aifactory_coordinator::LoopCounts) -> u64| {
            let v: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.closed_loop.map(|c| f(&c) as f64))
                .collect();
            (!v.is_empty()).then(|| interval(&v))
        };
        report.push(serde_json::json!({
            "tier": tier,
            "assessed_with": with.iter().map(|r| r.assessed_tier).collect::<Vec<_>>(),
            "assessed_without": without.iter().map(|r| r.assessed_tier).collect::<Vec<_>>(),
            "anomalies_with": loop_count(with, |c| c.anomalies),
            "search_moves_with": loop_count(with, |c| c.search_moves),
            "search_adopted_with": loop_count(with, |c| c.search_adopted),
            "kpis": kpis,
        }));
    }
    if args.json {
        let value = serde_json::json!({
            "plant": model.plant().plant.id,
            "days": args.days,
            "seeds": seeds,
            "link": link,
            "tiers": report,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "What `{link}` is worth on {}: {} days, seeds {}..{}, each run with the link and with it cut; \
         difference = with − without, ± the 95 % interval of the paired differences.\n",
        model.plant().plant.id,
        args.days,
        seeds[0],
        seeds[seeds.len() - 1]
    );
    for tier in &report {
        println!("  tier {}", tier["tier"]);
        println!(
            "    {:<22} {:>20} {:>20} {:>22}",
            "KPI", "with", "without", "difference"
        );
        if let Some(kpis) = tier["kpis"].as_object() {
            for (name, v) in kpis {
                let show = |i: &serde_json::Value| {
                    format!(
                        "{:.4} ± {:.4}",
                        i["mean"].as_f64().unwrap_or(f64::NAN),
                        i["ci95"].as_f64().unwrap_or(f64::NAN)
                    )
                };
                println!(
                    "    {:<22} {:>20} {:>20} {:>22}",
                    name,
                    show(&v["with"]),
                    show(&v["without"]),
                    show(&v["difference"])
                );
            }
        }
        for (key, what) in [
            ("anomalies_with", "anomalies raised"),
            ("search_moves_with", "search moves tried"),
            ("search_adopted_with", "search moves adopted"),
        ] {
            if let Some(a) = tier[key].as_object() {
                println!(
                    "    {what} (every link on): {:.1} ± {:.1} a run",
                    a["mean"].as_f64().unwrap_or(0.0),
                    a["ci95"].as_f64().unwrap_or(0.0)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
