//! `aifactory ingest`: subscribe to a broker and store what the plant says — Sparkplug B and
//! aifactory JSON — into the store, acknowledging each message only after it is committed.

use aifactory_connect::mqtt::{Batch, BrokerAddress, IngestOptions, IngestStats, Sink, ingest};
use aifactory_connect::{Point, Value};
use aifactory_store::Store;
use aifactory_store::ingest::{
    IngestBatch, IngestMessage, OtherSample, OtherValue, QuarantineRow, Sample, SeriesName,
};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

struct StoreSink {
    store: Store,
}

fn series_of(p: &Point) -> SeriesName {
    SeriesName {
        site: p.series.site.clone(),
        node: p.series.node.clone(),
        device: p.series.device.clone().unwrap_or_default(),
        metric: p.series.metric.clone(),
    }
}

/// Numbers (and booleans as 0/1) go to the compressed series; text and bytes are kept apart.
fn to_store(batch: Batch) -> IngestBatch {
    let messages = batch
        .messages
        .into_iter()
        .map(|m| {
            let mut message = IngestMessage {
                key: m.key,
                ..IngestMessage::default()
            };
            for p in &m.points {
                match (&p.value, p.value.as_f64()) {
                    (_, Some(value)) => message.samples.push(Sample {
                        series: series_of(p),
                        at_ms: p.timestamp_ms,
                        value,
                    }),
                    (Value::Bytes(b), None) => message.others.push(OtherSample {
                        series: series_of(p),
                        at_ms: p.timestamp_ms,
                        value: OtherValue::Bytes(b.clone()),
                    }),
                    (other, None) => message.others.push(OtherSample {
                        series: series_of(p),
                        at_ms: p.timestamp_ms,
                        value: OtherValue::Text(match other {
                            Value::Text(t) => t.clone(),
                            v => format!("{v:?}"),
                        }),
                    }),
                }
            }
            message
        })
        .collect();
    let quarantined = batch
        .quarantined
        .into_iter()
        .map(|q| QuarantineRow {
            received_ms: q.received_ms,
            topic: q.topic,
            reason_kind: q.reason.kind().to_owned(),
            reason: q.reason.to_string(),
            payload: q.payload,
        })
        .collect();
    IngestBatch {
        messages,
        quarantined,
    }
}

impl Sink for StoreSink {
    async fn commit(&mut self, batch: Batch) -> Result<(), String> {
        self.store
            .commit_ingest(&to_store(batch), now_ms())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let stats: IngestStats = runtime.block_on(async {
        let store = Store::open(&db)
            .await
            .with_context(|| format!("opening store {db}"))?;
        let mut sink = StoreSink { store };
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
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        ingest(&broker, &options, &mut sink, now_ms, stop)
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
