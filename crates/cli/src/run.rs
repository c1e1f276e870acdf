//! The commands `demo`, `sim`, `plant check` and `bench twin`: their arguments, wiring a plant,
//! a policy, the twin and (optionally) the store through the runtime, and what they print.

use crate::config::Config;
use crate::output;
use crate::setup::{REFERENCE_PLANT, check_days, plant_or_reference};
use aifactory_core::Plant;
use aifactory_runtime::record::{self, StoreTarget};
use aifactory_runtime::{Clock, Progress, RunSpec, simulate};
use aifactory_twin::{BaselinePolicy, DispatchRule, MaintenanceRule, PurchasingRule, SimResult};
use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Simulated days [default: 30, or demo.days in the config].
    #[arg(long, env = "AIFACTORY_DEMO_DAYS")]
    days: Option<f64>,
    /// Random seed [default: 42, or demo.seed in the config].
    #[arg(long, env = "AIFACTORY_SEED")]
    seed: Option<u64>,
    /// SQLite file to write [default: <data.dir>/demo.sqlite].
    #[arg(long, env = "AIFACTORY_DB")]
    db: Option<PathBuf>,
    /// Send the twin's telemetry through this MQTT broker (mqtt://host:port) rather than the
    /// embedded one; either way it goes twin → Sparkplug B → broker → ingest → store.
    #[arg(long)]
    mqtt: Option<String>,
    /// Print one JSON object instead of the table (the run only, no ladder).
    #[arg(long)]
    json: bool,
    /// Skip the short ladder (tier 0 to 3 on the reference plant, two seeds) after the run.
    #[arg(long)]
    no_ladder: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SimArgs {
    /// Plant file (TOML); see plants/ for examples.
    #[arg(long, env = "AIFACTORY_PLANT")]
    plant: PathBuf,
    /// Simulated days.
    #[arg(long, default_value_t = 30.0)]
    days: f64,
    /// Random seed: the same plant, seed and policy give the same result, byte for byte.
    #[arg(long, env = "AIFACTORY_SEED", default_value_t = 42)]
    seed: u64,
    /// Dispatching rule: fifo (longest waiting first), edd (earliest due date), spt (shortest
    /// job); or tier1: the AI skills decide, each on its own (APS scheduling and dispatching,
    /// condition-based maintenance, replenishment from forecasts once ~9 weeks of orders are
    /// known), with --purchasing until then; tier2: the coordinator's shared plan; or tier3:
    /// the shared plan as a closed loop (see docs/TIERS.md). With --db their decisions — and
    /// tier 3's measured outcomes and model updates — go to the hash-chained ledger, for
    /// `aifactory assess --db`.
    #[arg(long, default_value = "edd")]
    policy: String,
    /// Maintenance rule: rtf (run to failure), pm (each machine type's interval), pm:HOURS.
    #[arg(long, default_value = "pm")]
    maintenance: String,
    /// Purchasing rule: reorder (reorder point) or none (live on opening stock).
    #[arg(long, default_value = "reorder")]
    purchasing: String,
    /// Seconds between sensor readings per machine; 0 turns telemetry off [default: the plant file's].
    #[arg(long)]
    telemetry_period: Option<f64>,
    /// Also write events, telemetry and KPIs to this SQLite file.
    #[arg(long, env = "AIFACTORY_DB", conflicts_with = "mqtt")]
    db: Option<PathBuf>,
    /// Publish the run to this MQTT broker (mqtt://host:port) as a Sparkplug B edge node: group
    /// = the plant's site id, node `twin`, a device per machine; readings and events as DDATA.
    #[arg(long, env = "AIFACTORY_MQTT")]
    mqtt: Option<String>,
    /// MQTT client id when publishing.
    #[arg(long, default_value = "aifactory-twin", requires = "mqtt")]
    mqtt_client_id: String,
    /// With --mqtt: be a plant on the wire in the plant contract (docs/PLANT-CONTRACT.md) and
    /// ask aifactory for every decision (`decision_request`), advancing only once it has
    /// answered — a run over the wire that makes exactly the decisions of a run in process.
    /// The runtime decides (--policy is not used): `aifactory ladder --wire` starts both.
    #[arg(long, requires = "mqtt", conflicts_with_all = ["pace", "contract"])]
    lockstep: bool,
    /// With --mqtt: be a plant on the wire in the plant contract instead of a Sparkplug B edge
    /// node — events and telemetry as docs/PLANT-CONTRACT.md says, commands from `_commands`
    /// carried out when they arrive and acknowledged on `_acks`, the rest decided by the
    /// tier-0 rules — for `aifactory serve --plant-feed`. With --pace it runs like a plant.
    #[arg(long, requires = "mqtt")]
    contract: bool,
    /// Serve the plant's machines over OPC UA on this address while simulating (e.g.
    /// 127.0.0.1:4840; port 0 picks one): an object per machine with its readings, `state` and
    /// a writable `speed_setpoint_pct` (security policy None, anonymous).
    #[cfg(feature = "opcua")]
    #[arg(long, conflicts_with_all = ["mqtt", "db"])]
    opcua_listen: Option<std::net::SocketAddr>,
    /// With --mqtt or --opcua-listen: simulated seconds per wall-clock second (e.g. 60: a
    /// simulated hour a minute), so subscribers see the plant move and commands (DCMD, OPC UA
    /// writes) arrive in time [default: as fast as possible].
    #[arg(long)]
    pace: Option<f64>,
    /// With --opcua-listen: keep serving this many seconds after the run.
    #[cfg(feature = "opcua")]
    #[arg(long, default_value_t = 0.0, requires = "opcua_listen")]
    hold: f64,
    /// Print one JSON object (KPIs at the top level) instead of the table.
    #[arg(long)]
    json: bool,
}

/// `sim --mqtt URL --lockstep`: the twin as a plant that asks for its decisions;
/// `--contract`: one that publishes in the contract and takes commands as they come.
fn lockstep(spec: &RunSpec, url: &str, args: &SimArgs) -> anyhow::Result<ExitCode> {
    let broker: aifactory_connect::mqtt::BrokerAddress =
        url.parse().with_context(|| format!("--mqtt {url}"))?;
    let bar = progress(spec.days, args.json);
    let runtime = crate::setup::runtime()?;
    let model = Arc::new(aifactory_twin::PlantModel::new(spec.plant.clone()));
    let run = if args.lockstep {
        aifactory_runtime::lockstep::run_plant(
            runtime.handle(),
            model,
            &broker,
            &args.mqtt_client_id,
            spec.seed,
            spec.days,
            &mut |day| bar.day(day),
        )
        .with_context(|| format!("running in lockstep with aifactory over {url}"))?
    } else {
        aifactory_runtime::lockstep::run_paced_plant(
            runtime.handle(),
            model,
            &broker,
            &args.mqtt_client_id,
            spec.seed,
            spec.days,
            aifactory_runtime::lockstep::PacedPlant {
                telemetry_period_s: spec.telemetry_period_s,
                pace: args.pace.map(|speed| (speed, Clock::system())),
                releases_by_command: false,
                stop: None,
            },
            &mut |day| bar.day(day),
        )
        .with_context(|| format!("running as a plant on the wire over {url}"))?
    };
    bar.finished();
    let mut result = run.result;
    result.policy = if args.lockstep {
        format!("{} (over the wire)", run.policy)
    } else {
        format!("{} (commands over the wire)", run.policy)
    };
    if args.json {
        let mut value = sim_json_value(&result)?;
        if let Some(object) = value.as_object_mut() {
            object.insert("lockstep".to_owned(), serde_json::to_value(&run.counts)?);
        }
        println!("{value}");
    } else {
        println!("{}", output::kpi_table(&result, &spec.plant.plant.currency));
        println!(
            "Asked aifactory {} times over {url}; {} commands received, {} events and {} telemetry messages sent.",
            run.counts.requests,
            run.counts.commands,
            run.counts.events,
            run.counts.telemetry_messages
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn policy(dispatch: &str, maintenance: &str, purchasing: &str) -> anyhow::Result<BaselinePolicy> {
    // `tier1` and `tier2` keep EDD underneath for the work the skills' plan leaves open.
    let dispatch = if tier_of(dispatch) > 0 {
        "edd"
    } else {
        dispatch
    };
    Ok(BaselinePolicy {
        dispatch: dispatch.parse::<DispatchRule>()?,
        maintenance: maintenance.parse::<MaintenanceRule>()?,
        purchasing: purchasing.parse::<PurchasingRule>()?,
    })
}

/// The coordinator tier a `--policy` names (0 for a dispatching rule).
fn tier_of(policy: &str) -> u8 {
    match policy.to_ascii_lowercase().as_str() {
        "tier1" => 1,
        "tier2" => 2,
        "tier3" => 3,
        _ => 0,
    }
}

fn check_telemetry_period(period: Option<f64>) -> anyhow::Result<()> {
    if let Some(p) = period
        && (!p.is_finite() || p < 0.0 || (p > 0.0 && p < 1.0))
    {
        bail!("--telemetry-period must be 0 (off) or at least 1 second, got {p}");
    }
    Ok(())
}

/// The terminal's progress bar, told the runtime's progress.
pub(crate) struct Bar(ProgressBar);

impl Progress for Bar {
    fn day(&self, day: u64) {
        self.0.set_position(day);
    }
    fn finished(&self) {
        self.0.finish_and_clear();
    }
}

pub(crate) fn progress(days: f64, quiet: bool) -> Arc<Bar> {
    if quiet {
        return Arc::new(Bar(ProgressBar::hidden()));
    }
    let bar = ProgressBar::new(days.ceil() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} simulating day {pos}/{len} [{bar:30}] {per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    Arc::new(Bar(bar))
}

#[derive(Debug, Serialize)]
struct SimJson<'a> {
    plant: &'a str,
    policy: &'a str,
    seed: u64,
    #[serde(flatten)]
    kpis: &'a aifactory_core::Kpis,
    energy_by_period: &'a [aifactory_twin::EnergyByPeriod],
    machines: &'a [aifactory_twin::MachineSummary],
    #[serde(skip_serializing_if = "Option::is_none")]
    db: Option<String>,
}

/// The run as a JSON object, for commands that add their own fields to it.
fn sim_json_value(result: &SimResult) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::to_value(SimJson {
        plant: &result.plant,
        policy: &result.policy,
        seed: result.seed,
        kpis: &result.kpis,
        energy_by_period: &result.energy_by_period,
        machines: &result.machines,
        db: None,
    })?)
}

fn print_json(result: &SimResult, db: Option<&Path>) -> anyhow::Result<()> {
    let json = SimJson {
        plant: &result.plant,
        policy: &result.policy,
        seed: result.seed,
        kpis: &result.kpis,
        energy_by_period: &result.energy_by_period,
        machines: &result.machines,
        db: db.map(|p| p.display().to_string()),
    };
    println!("{}", serde_json::to_string(&json)?);
    Ok(())
}

fn execute(
    spec: &RunSpec,
    db: Option<&Path>,
    quiet: bool,
    config: &Config,
    via_mqtt: Option<aifactory_connect::mqtt::BrokerAddress>,
) -> anyhow::Result<(SimResult, Option<record::Written>)> {
    let bar = progress(spec.days, quiet);
    match db {
        None => Ok((simulate(spec, &mut (), &*bar)?, None)),
        Some(path) => {
            let target = StoreTarget {
                path: path.to_owned(),
                batch_rows: config.store.batch_rows.max(1),
                via_mqtt,
                clock: Clock::system(),
            };
            let (result, written) = crate::setup::runtime()?
                .block_on(record::simulate_and_record(spec, &target, bar))?;
            Ok((result, Some(written)))
        }
    }
}

pub(crate) fn demo(config: &Config, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let d = &config.demo;
    let (plant, source) = if d.plant.is_empty() {
        let plant = Plant::parse(
            REFERENCE_PLANT,
            Path::new("plants/hangzhou-auto-parts.toml"),
        )
        .context("the built-in reference plant is invalid")?;
        (plant, "built-in reference plant".to_owned())
    } else {
        let path = PathBuf::from(&d.plant);
        (Plant::load(&path)?, path.display().to_string())
    };
    let days = args.days.unwrap_or(d.days);
    check_days(days)?;
    let spec = RunSpec {
        plant,
        days,
        seed: args.seed.unwrap_or(d.seed),
        policy: policy(&d.policy, &d.maintenance, &d.purchasing)?,
        telemetry_period_s: Some(d.telemetry_period_s),
        commands: None,
        tier: 0,
        decisions: None,
    };
    let db = match args.db {
        Some(db) => db,
        None => config.data.dir.join("demo.sqlite"),
    };
    if let Some(dir) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data folder {}", dir.display()))?;
    }
    if !args.json {
        eprintln!(
            "Simulating {} ({source}) for {days} days, seed {} …",
            spec.plant.plant.name, spec.seed
        );
    }
    let broker = match &args.mqtt {
        Some(url) => url.parse()?,
        None => embedded_broker()?,
    };
    let (result, written) = execute(&spec, Some(&db), args.json, config, Some(broker))?;
    if args.json {
        print_json(&result, Some(&db))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", output::kpi_table(&result, &spec.plant.plant.currency));
    println!("{}", output::machine_table(&result));
    if let Some(w) = written {
        println!(
            "Saved run {} to {}: {} events, master data and KPIs.",
            w.run_id,
            db.display(),
            w.events,
        );
        if let Some(m) = &w.via_mqtt {
            println!(
                "Telemetry went the way a plant's does: {} Sparkplug B messages through {} ({}), \
                 {} points ingested, {} quarantined.",
                m.published,
                if args.mqtt.is_some() {
                    "the broker"
                } else {
                    "the embedded broker"
                },
                m.broker,
                m.points,
                m.quarantined
            );
        }
    }
    if d.plant.is_empty() && !args.no_ladder {
        // The ladder: the same plant under tier 0 to tier 3, each assessed from its own ledger.
        println!();
        crate::ladder::run(&crate::ladder::LadderArgs::short(
            days.min(30.0),
            args.seed.unwrap_or(d.seed),
        ))?;
    }
    println!(
        "\nNext: the full ladder with `aifactory ladder --days 60 --seeds 10`, compare policies with\n      \
         `aifactory sim --plant plants/hangzhou-auto-parts.toml --policy fifo`, or open the database\n      \
         with any SQLite client (tables: runs, events, kpis, decisions, decision_outcomes,\n      \
         model_updates, ledger, ingest_*)."
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn sim(config: &Config, args: SimArgs) -> anyhow::Result<ExitCode> {
    check_days(args.days)?;
    check_telemetry_period(args.telemetry_period)?;
    let plant = Plant::load(&args.plant)?;
    let spec = RunSpec {
        plant,
        days: args.days,
        seed: args.seed,
        policy: policy(&args.policy, &args.maintenance, &args.purchasing)?,
        telemetry_period_s: args.telemetry_period,
        commands: None,
        tier: tier_of(&args.policy),
        // A recorded tier-1 to tier-3 run writes the skills' ledger records to the store.
        decisions: (tier_of(&args.policy) > 0 && args.db.is_some())
            .then(aifactory_core::DecisionLog::new),
    };
    if let Some(p) = args.pace
        && !(p.is_finite() && p > 0.0)
    {
        bail!("--pace must be a positive number of simulated seconds per second, got {p}");
    }
    #[cfg(feature = "opcua")]
    let live = args.mqtt.is_some() || args.opcua_listen.is_some();
    #[cfg(not(feature = "opcua"))]
    let live = args.mqtt.is_some();
    if args.pace.is_some() && !live {
        bail!("--pace needs --mqtt or --opcua-listen: it paces what the twin publishes");
    }
    #[cfg(feature = "opcua")]
    if let Some(listen) = args.opcua_listen {
        if !(args.hold.is_finite() && (0.0..=86_400.0).contains(&args.hold)) {
            bail!(
                "--hold must be between 0 and 86400 seconds, got {}",
                args.hold
            );
        }
        let serve = aifactory_runtime::opcua::Serve {
            listen,
            pace: args.pace.map(|speed| aifactory_runtime::publish::Pace {
                speed,
                clock: Clock::system(),
            }),
            hold_s: args.hold,
        };
        let bar = progress(spec.days, args.json);
        let quiet = args.json;
        let (result, stats, url) =
            crate::setup::runtime()?.block_on(aifactory_runtime::opcua::simulate_and_serve(
                &spec,
                serve,
                |url, machines| {
                    if !quiet {
                        eprintln!("Serving {machines} machines over OPC UA at {url}");
                    }
                },
                bar,
            ))?;
        if args.json {
            let mut value = sim_json_value(&result)?;
            if let Some(object) = value.as_object_mut() {
                object.insert("opcua".to_owned(), serde_json::json!({"url": url, "updates": stats.updates, "set_point_writes": stats.set_point_writes}));
            }
            println!("{value}");
        } else {
            println!("{}", output::kpi_table(&result, &spec.plant.plant.currency));
            println!(
                "Served {} updates over OPC UA at {url}; {} set-point writes received.",
                stats.updates, stats.set_point_writes
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let (Some(url), true) = (&args.mqtt, args.lockstep || args.contract) {
        return lockstep(&spec, url, &args);
    }
    if let Some(url) = &args.mqtt {
        let broker: aifactory_connect::mqtt::BrokerAddress = url.parse()?;
        let bar = progress(spec.days, args.json);
        let inbox = aifactory_twin::CommandInbox::new();
        let spec = RunSpec {
            commands: Some(inbox.clone()),
            ..spec
        };
        let pace = args.pace.map(|speed| aifactory_runtime::publish::Pace {
            speed,
            clock: Clock::system(),
        });
        let (result, sent) =
            crate::setup::runtime()?.block_on(aifactory_runtime::publish::simulate_and_publish(
                &spec,
                &broker,
                &args.mqtt_client_id,
                pace,
                bar,
            ))?;
        let commands = inbox.counts();
        if args.json {
            let mut value = sim_json_value(&result)?;
            if let Some(object) = value.as_object_mut() {
                object.insert("mqtt".to_owned(), serde_json::to_value(sent)?);
                object.insert(
                    "commands".to_owned(),
                    serde_json::json!({
                        "received": commands.received,
                        "obeyed": commands.obeyed,
                        "refused": commands.refused,
                    }),
                );
            }
            println!("{value}");
        } else {
            println!("{}", output::kpi_table(&result, &spec.plant.plant.currency));
            println!(
                "Published {} Sparkplug B messages ({} bytes) to {url} as spBv1.0/{}/…/{}; {} acknowledged by the broker.",
                sent.messages,
                sent.bytes,
                spec.plant.plant.id,
                aifactory_runtime::publish::EDGE_NODE,
                sent.acknowledged
            );
            println!(
                "Commands (DCMD): {} received, {} obeyed, {} refused.",
                commands.received, commands.obeyed, commands.refused
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (result, written) = execute(&spec, args.db.as_deref(), args.json, config, None)?;
    if args.json {
        print_json(&result, args.db.as_deref())?;
    } else {
        println!("{}", output::kpi_table(&result, &spec.plant.plant.currency));
        println!("{}", output::machine_table(&result));
        if let (Some(w), Some(db)) = (written, &args.db) {
            println!(
                "Saved run {} to {}: {} events, {} telemetry readings.",
                w.run_id,
                db.display(),
                w.events,
                w.telemetry
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
struct CheckJson {
    file: String,
    valid: bool,
    problems: Vec<ProblemJson>,
}

#[derive(Debug, Serialize)]
struct ProblemJson {
    line: usize,
    col: usize,
    field: String,
    reason: String,
}

pub(crate) fn plant_check(file: &Path, json: bool) -> anyhow::Result<ExitCode> {
    match Plant::load(file) {
        Ok(plant) => {
            if json {
                let out = CheckJson {
                    file: file.display().to_string(),
                    valid: true,
                    problems: Vec::new(),
                };
                println!("{}", serde_json::to_string(&out)?);
            } else {
                println!(
                    "{}: ok — {} ({}): {} machines in {} work centres, {} products, {} materials",
                    file.display(),
                    plant.plant.name,
                    plant.plant.id,
                    plant.machines.len(),
                    plant.work_centres.len(),
                    plant.products.len(),
                    plant.materials.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            if json {
                let out = CheckJson {
                    file: file.display().to_string(),
                    valid: false,
                    problems: err
                        .problems()
                        .iter()
                        .map(|p| ProblemJson {
                            line: p.line,
                            col: p.col,
                            field: p.field.clone(),
                            reason: p.reason.clone(),
                        })
                        .collect(),
                };
                println!("{}", serde_json::to_string(&out)?);
            }
            eprintln!("{err}");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[derive(Debug, Serialize)]
struct BenchJson {
    engine: &'static str,
    plant: String,
    sim_days: f64,
    events: u64,
    wall_s: f64,
    events_per_s: f64,
    sim_days_per_s: f64,
    orders_completed: u64,
}

/// Wall-clock timing of the twin alone. The CLI is the edge: reading the clock is allowed here.
pub(crate) fn bench_twin(
    plant_file: Option<&Path>,
    days: f64,
    seed: u64,
    (dispatch, maintenance): (&str, &str),
    telemetry_period_s: Option<f64>,
    repeat: u32,
    json: bool,
) -> anyhow::Result<ExitCode> {
    check_days(days)?;
    check_telemetry_period(telemetry_period_s)?;
    let plant = plant_or_reference(plant_file)?;
    let spec = RunSpec {
        plant,
        days,
        seed,
        policy: policy(dispatch, maintenance, "reorder")?,
        telemetry_period_s,
        commands: None,
        tier: 0,
        decisions: None,
    };
    let mut best: Option<(f64, SimResult)> = None;
    for _ in 0..repeat.max(1) {
        let started = std::time::Instant::now();
        let result = simulate(&spec, &mut (), &())?;
        let wall = started.elapsed().as_secs_f64();
        if best.as_ref().is_none_or(|(w, _)| wall < *w) {
            best = Some((wall, result));
        }
    }
    let Some((wall_s, result)) = best else {
        bail!("no run was made");
    };
    let events = result.kpis.events_processed;
    let out = BenchJson {
        engine: "aifactory twin",
        plant: result.plant.clone(),
        sim_days: days,
        events,
        wall_s,
        events_per_s: events as f64 / wall_s,
        sim_days_per_s: days / wall_s,
        orders_completed: result.kpis.orders_completed,
    };
    if json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "{}: {days} simulated days, {events} events in {wall_s:.3} s = {:.0} events/s, {:.0} simulated days/s ({} orders completed)",
            out.plant, out.events_per_s, out.sim_days_per_s, out.orders_completed
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The in-process MQTT broker, started on a free local port.
#[cfg(feature = "embedded-broker")]
pub(crate) fn embedded_broker() -> anyhow::Result<aifactory_connect::mqtt::BrokerAddress> {
    let broker = aifactory_connect::broker::EmbeddedBroker::start(
        &aifactory_connect::broker::EmbeddedOptions::default(),
    )
    .context("starting the embedded MQTT broker")?;
    Ok(broker.address().clone())
}

/// The embedded broker for request-and-answer traffic (lockstep): every connection relayed with
/// Nagle's algorithm off, so an answer of several small packets is not held back.
#[cfg(feature = "embedded-broker")]
pub(crate) fn embedded_broker_low_latency() -> anyhow::Result<aifactory_connect::mqtt::BrokerAddress>
{
    let broker = aifactory_connect::broker::EmbeddedBroker::start(
        &aifactory_connect::broker::EmbeddedOptions {
            low_latency: true,
            ..Default::default()
        },
    )
    .context("starting the embedded MQTT broker")?;
    Ok(broker.address().clone())
}

#[cfg(not(feature = "embedded-broker"))]
pub(crate) fn embedded_broker_low_latency() -> anyhow::Result<aifactory_connect::mqtt::BrokerAddress>
{
    embedded_broker()
}

#[cfg(not(feature = "embedded-broker"))]
pub(crate) fn embedded_broker() -> anyhow::Result<aifactory_connect::mqtt::BrokerAddress> {
    bail!("this build has no embedded MQTT broker (feature `embedded-broker`); pass --mqtt URL")
}
