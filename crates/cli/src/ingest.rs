//! `aifactory ingest`: subscribe to a broker and store what the plant says — Sparkplug B and
//! aifactory JSON — into the store, acknowledging each message only after it is committed.

use aifactory_connect::Value;
use aifactory_connect::mqtt::{Batch, BrokerAddress, IngestOptions, IngestStats, Sink, ingest};
use aifactory_store::Store;
use aifactory_store::ingest::{
    IngestBatch, IngestMessage, OtherSample, OtherValue, QuarantineRow, Sample, SeriesName,
};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, oneshot, watch};

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

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) struct StoreSink {
    pub(crate) store: Store,
}

/// Numbers (and booleans as 0/1) go to the compressed series; text and bytes are kept apart.
/// The points are taken apart, not copied: at a million points a second, copying each point's
/// four names would cost more than storing it.
pub(crate) fn to_store(batch: Batch) -> IngestBatch {
    let messages = batch
        .messages
        .into_iter()
        .map(|m| {
            let mut message = IngestMessage {
                key: m.key,
                samples: Vec::with_capacity(m.points.len()),
                others: Vec::new(),
            };
            for p in m.points {
                let number = p.value.as_f64();
                let series = SeriesName {
                    site: p.series.site,
                    node: p.series.node,
                    device: p.series.device.unwrap_or_default(),
                    metric: p.series.metric,
                };
                let at_ms = p.timestamp_ms;
                match (p.value, number) {
                    (_, Some(value)) => message.samples.push(Sample {
                        series,
                        at_ms,
                        value,
                    }),
                    (Value::Bytes(b), None) => message.others.push(OtherSample {
                        series,
                        at_ms,
                        value: OtherValue::Bytes(b),
                    }),
                    (Value::Text(t), None) => message.others.push(OtherSample {
                        series,
                        at_ms,
                        value: OtherValue::Text(t),
                    }),
                    (other, None) => message.others.push(OtherSample {
                        series,
                        at_ms,
                        value: OtherValue::Text(format!("{other:?}")),
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

/// Commits through the store, counts what it settled and optionally records, per message, the
/// time from its timestamp (a publisher's wall clock) to the end of its commit.
struct CountingSink {
    inner: StoreSink,
    points: Arc<AtomicU64>,
    settled: watch::Sender<u64>,
    latencies_ms: Option<Vec<i64>>,
}

impl Sink for CountingSink {
    async fn commit(&mut self, batch: Batch) -> Result<(), String> {
        let settles = batch.settles;
        let points = batch.points() as u64;
        let stamps: Vec<i64> = if self.latencies_ms.is_some() {
            batch
                .messages
                .iter()
                .filter_map(|m| m.points.first().map(|p| p.timestamp_ms))
                .collect()
        } else {
            Vec::new()
        };
        self.inner.commit(batch).await?;
        let done = now_ms();
        if let Some(l) = &mut self.latencies_ms {
            l.extend(stamps.iter().map(|t| done - t));
        }
        self.points.fetch_add(points, Ordering::Relaxed);
        self.settled.send_modify(|n| *n += settles);
        Ok(())
    }
}

type IngestOutcome = (
    Result<IngestStats, aifactory_connect::mqtt::MqttError>,
    Vec<i64>,
);

/// Ingest running as a task of the current runtime, for commands that feed the broker
/// themselves (demo, bench ingest): it counts the messages it has settled, so the caller can
/// wait until everything it published is committed.
pub(crate) struct IngestTask {
    settled: watch::Receiver<u64>,
    points: Arc<AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<IngestOutcome>,
}

impl IngestTask {
    /// Starts ingest into `store` and returns once the broker has confirmed the subscriptions.
    pub(crate) async fn start(
        broker: &BrokerAddress,
        store: Store,
        client_id: String,
        topics: Vec<String>,
        measure_latency: bool,
    ) -> anyhow::Result<IngestTask> {
        let points = Arc::new(AtomicU64::new(0));
        let (settled_tx, settled) = watch::channel(0u64);
        let subscribed = Arc::new(Notify::new());
        let options = IngestOptions {
            client_id,
            topics,
            subscribed: Some(subscribed.clone()),
            ..IngestOptions::default()
        };
        let (stop, stop_rx) = oneshot::channel::<()>();
        let mut sink = CountingSink {
            inner: StoreSink { store },
            points: points.clone(),
            settled: settled_tx,
            latencies_ms: measure_latency.then(Vec::new),
        };
        let broker_owned = broker.clone();
        let task = tokio::spawn(async move {
            let stop = async move {
                let _ = stop_rx.await;
            };
            let stats = ingest(&broker_owned, &options, &mut sink, now_ms, stop).await;
            (stats, sink.latencies_ms.unwrap_or_default())
        });
        let started = tokio::time::timeout(Duration::from_secs(10), subscribed.notified()).await;
        if started.is_err() {
            task.abort();
            anyhow::bail!(
                "ingest did not subscribe to mqtt://{}:{} within 10 s",
                broker.host,
                broker.port
            );
        }
        Ok(IngestTask {
            settled,
            points,
            stop: Some(stop),
            task,
        })
    }

    /// A receiver of the number of messages settled so far.
    pub(crate) fn settled(&self) -> watch::Receiver<u64> {
        self.settled.clone()
    }

    /// Points committed so far.
    pub(crate) fn points(&self) -> u64 {
        self.points.load(Ordering::Relaxed)
    }

    /// Waits until `messages` messages are settled; false if nothing was settled for `stall`.
    pub(crate) async fn wait_for(&mut self, messages: u64, stall: Duration) -> bool {
        loop {
            if *self.settled.borrow_and_update() >= messages {
                return true;
            }
            match tokio::time::timeout(stall, self.settled.changed()).await {
                Ok(Ok(())) => {}
                _ => return false,
            }
        }
    }

    /// Stops ingest (it commits what it holds first) and returns its counts and, if asked for,
    /// the latencies.
    pub(crate) async fn stop(mut self) -> anyhow::Result<(IngestStats, Vec<i64>)> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let (stats, latencies) = self.task.await.context("the ingest task failed")?;
        Ok((stats.context("ingest failed")?, latencies))
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
    let runtime = crate::runtime()?;
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
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            };
            crate::opcua::ingest(url, &args.site, &store, stop)
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
