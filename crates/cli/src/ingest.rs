//! `aifactory ingest`: subscribe to a broker and store what the plant says — Sparkplug B and
//! aifactory JSON — into the store, acknowledging each message only after it is committed
//! (the runtime's `StoreSink` on connect's ingest loop; OPC UA through the runtime's `opcua`).

use aifactory_connect::mqtt::{BrokerAddress, IngestOptions, IngestStats, ingest};
use aifactory_runtime::Clock;
use aifactory_runtime::ingest::StoreSink;
use aifactory_store::Store;
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub(crate) struct IngestArgs {
    /// MQTT broker to subscribe to (mqtt://host:port).
    #[arg(long, env = "AIFACTORY_MQTT", default_value = "mqtt://127.0.0.1:1883")]
    mqtt: String,
    /// Where to store: a SQLite file, or a postgres://user@host/database URL
    /// [default: <data.dir>/plant.sqlite].
    #[arg(long, env = "AIFACTORY_DB")]
    db: Option<String>,
    /// Topic filter to subscribe to; repeat for several [default: spBv1.0/# and aifactory/#].
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// MQTT client id. Keep it stable: the broker keeps this client's session, so messages
    /// that arrive while ingest is down are delivered when it comes back.
    #[arg(long, default_value = "aifactory-ingest")]
    client_id: String,
    /// Subscribe to this OPC UA server (opc.tcp://host:port) instead of a broker: every variable
    /// under its Objects folder, stored as series of --site (security policy None, anonymous).
    #[cfg(feature = "opcua")]
    #[arg(long, conflicts_with = "topics")]
    opcua: Option<String>,
    /// The site OPC UA series belong to: machine objects become devices of edge node `opcua`.
    #[cfg(feature = "opcua")]
    #[arg(long, default_value = "plant", requires = "opcua")]
    site: String,
    /// Stop after this many seconds [default: run until Ctrl-C].
    #[arg(long)]
    duration: Option<f64>,
    /// Print the final counts as one JSON object.
    #[arg(long)]
    json: bool,
    /// Crash tests: abort right after this many commits, before acknowledging the last.
    #[arg(long, hide = true)]
    abort_after_commits: Option<u64>,
}

pub(crate) fn run(config: &crate::config::Config, args: IngestArgs) -> anyhow::Result<ExitCode> {
    let broker: BrokerAddress = args.mqtt.parse()?;
    if let Some(d) = args.duration
        && !(d > 0.0 && d <= 1.0e9)
    {
        anyhow::bail!("--duration must be a positive number of seconds, got {d}");
    }
    let db = args
        .db
        .clone()
        .unwrap_or_else(|| config.data.dir.join("plant.sqlite").display().to_string());
    let is_url = db.to_ascii_lowercase().starts_with("postgres");
    if !is_url
        && let Some(dir) = PathBuf::from(&db)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data folder {}", dir.display()))?;
    }
    let mut options = IngestOptions {
        client_id: args.client_id.clone(),
        abort_after_commits: args.abort_after_commits,
        ..IngestOptions::default()
    };
    if !args.topics.is_empty() {
        options.topics = args.topics.clone();
    }
    let runtime = crate::setup::runtime()?;
    let clock = Clock::system();
    #[cfg(feature = "opcua")]
    if let Some(url) = &args.opcua {
        let duration = args.duration;
        let stats = runtime.block_on(async {
            let store = Store::open(&db)
                .await
                .with_context(|| format!("opening store {db}"))?;
            if !args.json {
                eprintln!("Ingesting every variable of {url} into {db}");
            }
            let stop = async move {
                match duration {
                    Some(d) => tokio::time::sleep(Duration::from_secs_f64(d)).await,
                    None => {
                        crate::setup::stop_requested().await;
                    }
                }
            };
            aifactory_runtime::opcua::ingest(url, &args.site, &store, &clock, stop)
                .await
                .with_context(|| format!("ingesting from {url}"))
        })?;
        if args.json {
            println!("{}", serde_json::to_string(&stats)?);
        } else {
            println!(
                "{} variables, {} changes stored, {} skipped (not finite), {} commits",
                stats.variables, stats.changes, stats.skipped, stats.commits
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let stats: IngestStats = runtime.block_on(async {
        let store = Store::open(&db)
            .await
            .with_context(|| format!("opening store {db}"))?;
        let mut sink = StoreSink {
            store,
            clock: clock.clone(),
        };
        if !args.json {
            eprintln!(
                "Ingesting {} from {} into {}{}",
                options.topics.join(", "),
                args.mqtt,
                db,
                match args.duration {
                    Some(d) => format!(" for {d} s"),
                    None => " (Ctrl-C to stop)".to_owned(),
                }
            );
        }
        let duration = args.duration;
        let stop = async move {
            match duration {
                Some(d) => tokio::time::sleep(Duration::from_secs_f64(d)).await,
                None => {
                    crate::setup::stop_requested().await;
                }
            }
        };
        ingest(&broker, &options, &mut sink, || clock.epoch_ms(), stop)
            .await
            .with_context(|| format!("ingesting from {}", args.mqtt))
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&stats)?);
    } else {
        println!(
            "{} messages, {} points, {} quarantined, {} rebirths requested, {} commits",
            stats.messages,
            stats.points,
            stats.quarantined,
            stats.rebirths_requested,
            stats.commits
        );
        for (reason, n) in &stats.quarantined_by_reason {
            println!("  quarantined {n} × {reason}");
        }
        if let Some(e) = &stats.last_connection_error {
            println!("{} connection errors; last: {e}", stats.connection_errors);
        }
    }
    Ok(ExitCode::SUCCESS)
}
