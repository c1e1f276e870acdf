//! The `aifactory` command line: argument parsing, wiring and presentation. It owns nothing of
//! the domain: plant files are read by `core`, simulated by `twin`, run live, recorded and
//! ingested by `runtime`, stored by `store`. A command builds the runtime's configuration from
//! its arguments and calls it. It is the only place that knows about terminals, progress bars,
//! exit codes and `--json`, and the one that builds the async runtime.

mod agent;
mod assess;
mod backup;
mod bench_agent;
mod bench_feed;
mod bench_ingest;
mod bench_login;
mod bench_paced;
mod bench_policies;
mod config;
mod eval;
mod eval_anomaly;
mod eval_twin;
mod import;
mod ingest;
mod ladder;
mod logging;
#[cfg(feature = "opcua")]
mod opcua;
mod output;
mod portal;
mod run;
mod schedule;
mod serve;
mod setup;
mod token;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

pub use config::Config;
pub use setup::REFERENCE_PLANT;

#[derive(Debug, Parser)]
#[command(
    name = "aifactory",
    version,
    long_version = env!("AIFACTORY_LONG_VERSION"),
    about = "Run a plant as an AI factory and prove which tier it has reached.",
    long_about = "aifactory connects a plant (or its digital twin), records every AI decision in a \
ledger, and computes the plant's AI-factory tier from that evidence.\n\n\
Start with `aifactory demo`: it simulates the built-in reference plant (an automotive-parts \
machining plant in Hangzhou) for 30 days under baseline rules and prints its KPIs.",
    after_help = "Examples:\n  aifactory demo\n  aifactory sim --plant plants/sme-textile.toml --days 90 --policy edd --json\n  aifactory plant check plants/hangzhou-auto-parts.toml"
)]
struct Cli {
    /// Configuration file (see config/default.toml for every key).
    #[arg(long, env = "AIFACTORY_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    log: logging::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate the reference plant for 30 days under baseline rules, save it to SQLite, show KPIs.
    Demo(run::DemoArgs),
    /// Simulate any plant file with a chosen policy and seed; print KPIs (or JSON).
    Sim(run::SimArgs),
    /// Work with plant files.
    #[command(subcommand)]
    Plant(PlantCommand),
    /// Solve a job-shop or flexible job-shop instance (Taillard, Brandimarte or JSON file).
    Schedule(schedule::ScheduleArgs),
    /// Import machines, routings and orders from CSV exports (the SME path): check every row,
    /// write a scheduling instance, optionally schedule the orders.
    Import(import::ImportArgs),
    /// Subscribe to an MQTT broker and store the plant's Sparkplug B and JSON telemetry.
    Ingest(ingest::IngestArgs),
    /// Work with OPC UA servers.
    #[cfg(feature = "opcua")]
    #[command(subcommand)]
    Opcua(OpcuaCommand),
    /// Measure the AI skills on public benchmarks (NAB anomaly detection, C-MAPSS remaining
    /// useful life), scored the way the benchmarks' own tools score them.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Measure speed (wall-clock): see bench/ for the side-by-side runs against peers.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Compute the plant's AI-factory tier from its decision ledger and data coverage (rules in
    /// docs/TIERS.md); write a signed evidence bundle and an HTML report; `assess verify
    /// BUNDLE` checks one.
    Assess(assess::AssessArgs),
    /// Copy the embedded store while `serve` runs (an online, consistent snapshot), then check
    /// the copy: SQLite's integrity check and the decision ledger's hash chain end to end.
    Backup(backup::BackupArgs),
    /// Restore a backup into a new store file (never over an existing one), checked the same
    /// way as a backup and brought up to this version's schema.
    Restore(backup::RestoreArgs),
    /// Run the same plant and seeds under each tier configuration (tier 0 baseline rules,
    /// tier 1 skills on their own, tier 2 one shared plan, tier 3 closed loop) and print KPIs
    /// with 95 % intervals and the tier assessed from each run's own decisions.
    Ladder(ladder::LadderArgs),
    /// Serve the web UI and the HTTP API over a store, with a live twin of the reference plant
    /// (or --plant) running under the AI coordinator: machines, the plan and what-ifs, control
    /// charts, forecasts, the decision ledger, the tier. Prints the address and the admin's
    /// password at start.
    Serve(serve::ServeArgs),
    /// The agent platform: ask in English or Chinese, list and decide held actions, metering,
    /// fine-tuning export. Works against `--server` or on a plant started here.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// API tokens of a running `aifactory serve` (admins): list them with their state, issue
    /// one for a program with an expiry, revoke one by id. Needs --server and an admin's
    /// --token (`POST /api/v1/login` as admin gives one).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Serve the agent's tools to MCP clients (Qwen-Agent, Dify, Claude, …) over stdio, or
    /// streamable HTTP with --http; acting tools wait for a person's approval.
    Mcp(agent::McpArgs),
    /// The programme office on PostgreSQL: serve the portal's API, seed a synthetic city, add
    /// users, submit a plant's evidence bundle.
    #[command(subcommand)]
    Portal(portal::PortalCommand),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Compare dispatching and planning policies on a plant over many seeds (95 % intervals).
    ///
    /// Orders arrive for --days days; then the plant works off the order book (up to
    /// --drain-days more), so the makespan (when the last order is done) can be compared.
    Policies(bench_policies::PoliciesArgs),
    /// Ingest throughput end to end (publisher → broker → ingest → store), the store's raw
    /// ceiling, ingest-to-queryable latency at half the rate, and optionally a memory soak.
    ///
    /// Uses the embedded broker, and with --mqtt an external one too; stores into fresh SQLite
    /// files in a temporary folder unless --db names a PostgreSQL database.
    Ingest(bench_ingest::IngestBenchArgs),
    /// A plant's feed through a broker into the runtime: messages per second broker to
    /// decision, and decision latency per decision-point kind paced at --speedup.
    ///
    /// The twin records --days of a plant (tier-0 rules); a publisher replays its events and
    /// telemetry in the plant contract, once as fast as the runtime takes them and once paced,
    /// with a lockstep heartbeat after every moment with events. Embedded broker unless --mqtt.
    Feed(bench_feed::FeedBenchArgs),
    /// The twin as a plant that does not wait, paced like a plant (--speed), with a plant feed
    /// deciding for it across the broker: every KPI against the band a further in-process run
    /// of the same coordinator falls in (95 %, over --seeds seeds).
    Paced(bench_paced::PacedBenchArgs),
    /// The agent: the offline planner's tool choice on 50 plant questions (English and
    /// Chinese), end-to-end latency on a live twin, and the runtime's overhead per tool step.
    Agent(bench_agent::AgentBenchArgs),
    /// Logins under attack and under load: memory after many failed logins with huge names
    /// (must stay flat), login p50/p99 with 20 at once, and /api/v1/telemetry/latest's
    /// throughput with and without them, side by side.
    Login(bench_login::LoginBenchArgs),
    /// The programme portal at city scale on PostgreSQL: seeds plants with three quarters of
    /// evidence and vouchers, then times the year-end ingest of every plant's bundle and the
    /// targets dashboard, a plant's history and the voucher book over HTTP (p50/p95/p99).
    Portal(portal::PortalBenchArgs),
    /// Time the twin on a plant with no observer: events per second and simulated days per second.
    Twin {
        /// Plant file [default: the built-in reference plant].
        #[arg(long)]
        plant: Option<PathBuf>,
        /// Simulated days.
        #[arg(long, default_value_t = 365.0)]
        days: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Dispatching rule: fifo, edd or spt.
        #[arg(long, default_value = "fifo")]
        policy: String,
        /// Maintenance rule: rtf, pm or pm:HOURS.
        #[arg(long, default_value = "pm")]
        maintenance: String,
        /// Seconds between sensor readings per machine [default: the plant file's]; 0 = off.
        #[arg(long)]
        telemetry_period: Option<f64>,
        /// Repeat the run and report the fastest.
        #[arg(long, default_value_t = 3)]
        repeat: u32,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[cfg(feature = "opcua")]
#[derive(Debug, Subcommand)]
enum OpcuaCommand {
    /// List the nodes under a server's Objects folder (anonymous, security policy None).
    Browse {
        /// The server, e.g. opc.tcp://192.168.1.20:4840/
        url: String,
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PlantCommand {
    /// Validate a plant file: exit 0 if it is valid, else print file:line:col: field: reason.
    Check {
        /// The plant file.
        file: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Entry point of the binary: parses, runs, and maps errors to exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    logging::init(&cli.log)?;
    let config = match &cli.config {
        Some(path) => Config::load(path)
            .with_context(|| format!("reading configuration {}", path.display()))?,
        None => Config::default(),
    };
    match cli.command {
        Command::Demo(args) => run::demo(&config, args),
        Command::Sim(args) => run::sim(&config, args),
        Command::Plant(PlantCommand::Check { file, json }) => run::plant_check(&file, json),
        Command::Schedule(args) => schedule::run(args),
        Command::Ingest(args) => ingest::run(&config, args),
        Command::Import(args) => import::run(&args),
        Command::Eval(command) => eval::run(command),
        Command::Assess(args) => assess::run(args),
        Command::Ladder(args) => ladder::run(&args),
        Command::Backup(args) => backup::backup(&config, args),
        Command::Restore(args) => backup::restore(&config, args),
        Command::Serve(args) => serve::run(&config, args),
        Command::Agent(command) => agent::run(&config, command),
        Command::Mcp(args) => agent::mcp(&config, args),
        Command::Token(command) => token::run(command),
        #[cfg(feature = "opcua")]
        Command::Opcua(OpcuaCommand::Browse { url, json }) => opcua::browse(&url, json),
        Command::Bench(BenchCommand::Policies(args)) => bench_policies::run(&args),
        Command::Bench(BenchCommand::Ingest(args)) => bench_ingest::run(&args),
        Command::Bench(BenchCommand::Feed(args)) => bench_feed::run(&args),
        Command::Bench(BenchCommand::Paced(args)) => bench_paced::run(&args),
        Command::Bench(BenchCommand::Agent(args)) => bench_agent::run(&config, &args),
        Command::Bench(BenchCommand::Login(args)) => bench_login::run(&args),
        Command::Bench(BenchCommand::Portal(args)) => portal::bench(&args),
        Command::Portal(command) => portal::run(command),
        Command::Bench(BenchCommand::Twin {
            plant,
            days,
            seed,
            policy,
            maintenance,
            telemetry_period,
            repeat,
            json,
        }) => run::bench_twin(
            plant.as_deref(),
            days,
            seed,
            (&policy, &maintenance),
            telemetry_period,
            repeat,
            json,
        ),
    }
}
