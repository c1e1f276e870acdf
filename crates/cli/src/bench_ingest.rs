//! `aifactory bench ingest`: points per second from a Sparkplug publisher through a broker and
//! ingest into committed rows, with the embedded broker and (given `--mqtt`) an external one,
//! for single-metric messages and for batched DDATA; in the same run the store's raw ceiling
//! (the same batches committed without MQTT), the ingest-to-queryable latency at half the
//! measured rate, and optionally a memory soak.
//!
//! Every run counts what it committed against what it published: a lost point is reported,
//! never hidden in a rate.

use aifactory_connect::Value;
use aifactory_connect::mqtt::{BrokerAddress, IngestOptions, IngestStats, publish_stream};
use aifactory_connect::sparkplug::{EdgeNode, Message};
use aifactory_runtime::Clock;
use aifactory_runtime::clock::system_epoch_ms as now_ms;
use aifactory_runtime::ingest::IngestTask;
use aifactory_store::Store;
use aifactory_store::ingest::{IngestBatch, IngestMessage, Sample, SeriesName};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

#[derive(Debug, clap::Args)]
pub(crate) struct IngestBenchArgs {
    /// Also measure through this external broker (mqtt://host:port). Give it room: Mosquitto's
    /// defaults (20 messages in flight, 1000 queued per client) throttle and drop a fast stream;
    /// see docs/BENCHMARKS.md for the configuration used.
    #[arg(long)]
    mqtt: Option<String>,
    /// Only the external broker: skip the embedded one.
    #[arg(long, requires = "mqtt")]
    no_embedded: bool,
    /// Store to write to: a postgres:// URL [default: a fresh SQLite file per run in a
    /// temporary folder].
    #[arg(long)]
    db: Option<String>,
    /// Metrics per message on the batched path.
    #[arg(long, default_value_t = 100)]
    metrics_per_message: usize,
    /// Points to send on the batched path (per broker).
    #[arg(long, default_value_t = 5_000_000)]
    points: u64,
    /// Points to send as single-metric messages (per broker); 0 skips that shape.
    #[arg(long, default_value_t = 300_000)]
    single_points: u64,
    /// Devices the edge node publishes for (messages go round robin).
    #[arg(long, default_value_t = 10)]
    devices: usize,
    /// Messages a publisher may have ahead of what ingest has committed.
    #[arg(long, default_value_t = 5_000)]
    window: u64,
    /// Seconds of the latency run at half the measured rate; 0 skips it.
    #[arg(long, default_value_t = 10.0)]
    latency_seconds: f64,
    /// Seconds of the memory soak at half the measured rate (the acceptance soak is 600); 0
    /// skips it.
    #[arg(long, default_value_t = 0.0)]
    soak_seconds: f64,
    /// Points per commit for the store's raw ceiling [default: ingest's batch size].
    #[arg(long)]
    ceiling_batch: Option<u64>,
    /// Measure the store's raw ceiling only.
    #[arg(long)]
    ceiling_only: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Serialize)]
struct CeilingResult {
    engine: String,
    points: u64,
    points_per_commit: u64,
    seconds: f64,
    points_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
struct ThroughputResult {
    broker: String,
    metrics_per_message: usize,
    messages: u64,
    points_sent: u64,
    points_committed: u64,
    lost_points: u64,
    seconds: f64,
    points_per_s: f64,
    messages_per_s: f64,
    commits: u64,
    quarantined: u64,
    share_of_ceiling: f64,
}

#[derive(Debug, Clone, Serialize)]
struct LatencyResult {
    broker: String,
    target_points_per_s: f64,
    achieved_points_per_s: f64,
    messages: u64,
    lost_points: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
struct SoakResult {
    seconds: f64,
    points_per_s: f64,
    lost_points: u64,
    /// (seconds since start, resident memory in MiB), every 10 s.
    rss_mib: Vec<(f64, f64)>,
    /// Resident memory at the end of the first minute and at the end.
    rss_after_first_minute_mib: f64,
    rss_at_end_mib: f64,
    p99_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
struct Report {
    engine: String,
    ceiling: CeilingResult,
    throughput: Vec<ThroughputResult>,
    latency: Option<LatencyResult>,
    soak: Option<SoakResult>,
}

/// Where runs store: a fresh SQLite file per run, or one PostgreSQL database for all (runs use
/// distinct groups and fresh timestamps, so they never collide).
struct Stores {
    url: Option<String>,
    dir: tempfile::TempDir,
    runs: u32,
}

impl Stores {
    async fn fresh(&mut self) -> anyhow::Result<Store> {
        self.runs += 1;
        let location = match &self.url {
            Some(url) => url.clone(),
            None => self
                .dir
                .path()
                .join(format!("run{}.sqlite", self.runs))
                .display()
                .to_string(),
        };
        Store::open(&location)
            .await
            .with_context(|| format!("opening store {location}"))
    }
}

fn metric_names(n: usize) -> Vec<String> {
    (0..n).map(|k| format!("m{k:03}")).collect()
}

/// A plausible sensor value: smooth, two decimals, different per metric.
fn reading(i: u64, k: usize) -> f64 {
    ((i as f64 * 0.013 + k as f64).sin() * 2_000.0).round() / 100.0
}

/// The raw ceiling: the batches ingest would commit, written straight to the store.
async fn ceiling(
    store: &Store,
    points: u64,
    per_message: usize,
    devices: usize,
    batch_points: u64,
) -> anyhow::Result<CeilingResult> {
    let names = metric_names(per_message);
    let base = now_ms();
    let mut committed = 0u64;
    let mut message_index = 0u64;
    let mut busy = Duration::ZERO;
    while committed < points {
        let mut batch = IngestBatch::default();
        let mut in_batch = 0u64;
        while in_batch < batch_points && committed + in_batch < points {
            let device = format!("d{:02}", message_index as usize % devices);
            let at_ms = base + message_index as i64;
            let samples = names
                .iter()
                .enumerate()
                .map(|(k, metric)| Sample {
                    series: SeriesName::new("ceiling", "bench", device.as_str(), metric.as_str()),
                    at_ms,
                    value: reading(message_index, k),
                })
                .collect::<Vec<_>>();
            in_batch += samples.len() as u64;
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&message_index.to_le_bytes());
            key[8..].copy_from_slice(&base.to_le_bytes());
            batch.messages.push(IngestMessage {
                key: Some(key),
                samples,
                others: Vec::new(),
            });
            message_index += 1;
        }
        let started = Instant::now();
        store
            .commit_ingest(&batch, now_ms())
            .await
            .context("committing a ceiling batch")?;
        busy += started.elapsed();
        committed += in_batch;
    }
    let seconds = busy.as_secs_f64();
    Ok(CeilingResult {
        engine: store.engine().to_owned(),
        points: committed,
        points_per_commit: batch_points,
        seconds,
        points_per_s: committed as f64 / seconds.max(1e-9),
    })
}

/// How a publisher sends: everything prepared up front as fast as the window allows, or
/// generated at a steady rate with the current time as the timestamp (for latency).
enum Pace {
    /// Messages with the points each carries.
    Flat(Vec<(Message, u64)>),
    Rate {
        points_per_s: f64,
        seconds: f64,
        /// Record resident memory every 10 s (the soak).
        sample_every_10s: bool,
    },
}

struct RunOutcome {
    messages_sent: u64,
    points_sent: u64,
    messages_committed: u64,
    points_committed: u64,
    seconds: f64,
    stats: IngestStats,
    latencies_ms: Vec<i64>,
    rss_mib: Vec<(f64, f64)>,
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The births an edge node with `devices` devices of `names` metrics opens with, each with the
/// points it carries (an NBIRTH: its rebirth flag; bdSeq is session state, not a point).
fn births(
    edge: &mut EdgeNode,
    devices: usize,
    names: &[String],
    at_ms: u64,
) -> Vec<(Message, u64)> {
    let mut out = vec![(edge.birth(at_ms, &[]), 1)];
    for d in 0..devices {
        let metrics: Vec<(&str, Value)> = names
            .iter()
            .enumerate()
            .map(|(k, n)| (n.as_str(), Value::Float(reading(0, k))))
            .collect();
        out.push((
            edge.device_birth(&format!("d{d:02}"), at_ms, &metrics),
            names.len() as u64,
        ));
    }
    out
}

fn data(edge: &mut EdgeNode, i: u64, devices: usize, names: &[String], at_ms: u64) -> Message {
    let metrics: Vec<(&str, Value)> = names
        .iter()
        .enumerate()
        .map(|(k, n)| (n.as_str(), Value::Float(reading(i, k))))
        .collect();
    edge.data(
        Some(&format!("d{:02}", i as usize % devices)),
        at_ms,
        &metrics,
    )
}

/// One run: ingest subscribes to the run's group, the publisher sends, and the run ends when
/// ingest has committed every message sent (or nothing has been committed for 30 s).
#[allow(clippy::too_many_arguments)]
async fn run_once(
    broker: &BrokerAddress,
    store: Store,
    group: &str,
    pace: Pace,
    devices: usize,
    names: &[String],
    window: u64,
    measure_latency: bool,
) -> anyhow::Result<RunOutcome> {
    let mut ingest = IngestTask::start(
        broker,
        store,
        format!("aifactory-bench-{group}"),
        vec![format!("spBv1.0/{group}/#")],
        measure_latency,
        Clock::system(),
    )
    .await?;
    let (tx, rx) = mpsc::channel::<Message>(1024);
    let publisher = {
        let broker = broker.clone();
        let id = format!("aifactory-bench-pub-{group}");
        tokio::spawn(async move { publish_stream(&broker, &id, None, rx).await })
    };
    let started = Instant::now();
    let mut sent_messages = 0u64;
    let mut sent_points = 0u64;
    let mut rss = Vec::new();
    let mut committed_watch = ingest.settled();
    // Waits while the publisher is more than `window` messages ahead of the commits.
    async fn within_window(rx: &mut watch::Receiver<u64>, sent: u64, window: u64) {
        while sent.saturating_sub(*rx.borrow_and_update()) > window {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
    match pace {
        Pace::Flat(prepared) => {
            for (m, points) in prepared {
                within_window(&mut committed_watch, sent_messages, window).await;
                sent_points += points;
                if tx.send(m).await.is_err() {
                    break;
                }
                sent_messages += 1;
            }
        }
        Pace::Rate {
            points_per_s,
            seconds,
            sample_every_10s,
        } => {
            let mut edge = EdgeNode::new(group, "bench", 0);
            for (m, points) in births(&mut edge, devices, names, now_ms() as u64) {
                sent_points += points;
                if tx.send(m).await.is_err() {
                    break;
                }
                sent_messages += 1;
            }
            let per_message = names.len() as f64;
            let mut i = 0u64;
            let mut next_sample = 0.0;
            loop {
                let due = Duration::from_secs_f64(i as f64 * per_message / points_per_s);
                if due.as_secs_f64() >= seconds {
                    break;
                }
                if sample_every_10s && due.as_secs_f64() >= next_sample {
                    rss.push((started.elapsed().as_secs_f64(), rss_mib()));
                    next_sample += 10.0;
                }
                tokio::time::sleep_until((started + due).into()).await;
                within_window(&mut committed_watch, sent_messages, window).await;
                let m = data(&mut edge, i, devices, names, now_ms() as u64);
                sent_points += names.len() as u64;
                if tx.send(m).await.is_err() {
                    break;
                }
                sent_messages += 1;
                i += 1;
            }
        }
    }
    drop(tx);
    // Wait for ingest to commit everything, or to stall.
    ingest
        .wait_for(sent_messages, Duration::from_secs(30))
        .await;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(last) = rss.last()
        && last.0 < seconds - 1.0
    {
        rss.push((seconds, rss_mib()));
    }
    let messages_committed = *ingest.settled().borrow();
    let points_committed = ingest.points();
    let (stats, latencies_ms) = ingest.stop().await?;
    publisher
        .await
        .context("the publisher task failed")?
        .context("publishing")?;
    Ok(RunOutcome {
        messages_sent: sent_messages,
        points_sent: sent_points,
        messages_committed,
        points_committed,
        seconds,
        stats,
        latencies_ms,
        rss_mib: rss,
    })
}

fn percentile(sorted: &[i64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}

fn prepared(group: &str, devices: usize, names: &[String], points: u64) -> Vec<(Message, u64)> {
    let mut edge = EdgeNode::new(group, "bench", 0);
    let base = now_ms() as u64;
    let mut out = births(&mut edge, devices, names, base);
    let count = points.div_ceil(names.len() as u64);
    out.reserve(count as usize);
    for i in 0..count {
        out.push((
            data(&mut edge, i, devices, names, base + 1 + i),
            names.len() as u64,
        ));
    }
    out
}

pub(crate) fn run(args: &IngestBenchArgs) -> anyhow::Result<ExitCode> {
    if args.metrics_per_message == 0 || args.devices == 0 || args.window == 0 {
        anyhow::bail!("--metrics-per-message, --devices and --window must be at least 1");
    }
    if args.points < args.metrics_per_message as u64 {
        anyhow::bail!("--points must be at least --metrics-per-message");
    }
    for (name, v) in [
        ("--latency-seconds", args.latency_seconds),
        ("--soak-seconds", args.soak_seconds),
    ] {
        if !(0.0..=86_400.0).contains(&v) {
            anyhow::bail!("{name} must be between 0 and 86400, got {v}");
        }
    }
    let external: Option<BrokerAddress> = args.mqtt.as_deref().map(str::parse).transpose()?;
    let runtime = crate::setup::runtime()?;
    let report = runtime.block_on(bench(args, external))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    let lost: u64 = report.throughput.iter().map(|t| t.lost_points).sum::<u64>()
        + report.latency.as_ref().map_or(0, |l| l.lost_points)
        + report.soak.as_ref().map_or(0, |s| s.lost_points);
    if lost > 0 {
        eprintln!("error: {lost} points were published but not committed");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn spinner(quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

async fn bench(args: &IngestBenchArgs, external: Option<BrokerAddress>) -> anyhow::Result<Report> {
    let bar = spinner(args.json);
    let mut stores = Stores {
        url: args.db.clone(),
        dir: tempfile::tempdir().context("creating a temporary folder")?,
        runs: 0,
    };
    let batch_points = args
        .ceiling_batch
        .unwrap_or(IngestOptions::default().batch_points as u64)
        .max(1);
    bar.set_message("store ceiling (no MQTT)");
    let store = stores.fresh().await?;
    let engine = store.engine().to_owned();
    let ceiling = ceiling(
        &store,
        args.points,
        args.metrics_per_message,
        args.devices,
        batch_points,
    )
    .await?;
    store.close().await;

    let mut brokers: Vec<(String, BrokerAddress)> = Vec::new();
    if !args.no_embedded && !args.ceiling_only {
        brokers.push(("embedded".to_owned(), crate::run::embedded_broker()?));
    }
    if let Some(b) = external.filter(|_| !args.ceiling_only) {
        brokers.push((format!("mqtt://{}:{}", b.host, b.port), b));
    }
    let run_id = now_ms();
    let mut throughput = Vec::new();
    let mut group_n = 0;
    for (label, address) in &brokers {
        for (per_message, points) in [
            (1usize, args.single_points),
            (args.metrics_per_message, args.points),
        ] {
            if points == 0 {
                continue;
            }
            group_n += 1;
            let group = format!("bench{run_id}x{group_n}");
            let names = metric_names(per_message);
            bar.set_message(format!(
                "{label}: {points} points as {per_message}-metric messages (preparing)"
            ));
            let messages = prepared(&group, args.devices, &names, points);
            bar.set_message(format!(
                "{label}: {points} points as {per_message}-metric messages"
            ));
            let store = stores.fresh().await?;
            let outcome = run_once(
                address,
                store,
                &group,
                Pace::Flat(messages),
                args.devices,
                &names,
                args.window,
                false,
            )
            .await
            .with_context(|| format!("the {label} run with {per_message}-metric messages"))?;
            let points_per_s = outcome.points_committed as f64 / outcome.seconds;
            throughput.push(ThroughputResult {
                broker: label.clone(),
                metrics_per_message: per_message,
                messages: outcome.messages_sent,
                points_sent: outcome.points_sent,
                points_committed: outcome.points_committed,
                lost_points: outcome.points_sent.saturating_sub(outcome.points_committed),
                seconds: outcome.seconds,
                points_per_s,
                messages_per_s: outcome.messages_committed as f64 / outcome.seconds,
                commits: outcome.stats.commits,
                quarantined: outcome.stats.quarantined,
                share_of_ceiling: points_per_s / ceiling.points_per_s,
            });
        }
    }

    // Latency and soak: on the first broker, batched, at half the rate it sustained.
    let batched = throughput
        .iter()
        .find(|t| t.metrics_per_message == args.metrics_per_message);
    let mut latency = None;
    let mut soak = None;
    if let (Some(t), Some((label, address))) = (batched, brokers.first()) {
        let names = metric_names(args.metrics_per_message);
        let half = t.points_per_s / 2.0;
        for (seconds, is_soak) in [(args.latency_seconds, false), (args.soak_seconds, true)] {
            if seconds <= 0.0 {
                continue;
            }
            group_n += 1;
            let group = format!("bench{run_id}x{group_n}");
            bar.set_message(format!(
                "{label}: {} for {seconds} s at {half:.0} points/s",
                if is_soak { "memory soak" } else { "latency" }
            ));
            let store = stores.fresh().await?;
            let outcome = run_once(
                address,
                store,
                &group,
                Pace::Rate {
                    points_per_s: half,
                    seconds,
                    sample_every_10s: is_soak,
                },
                args.devices,
                &names,
                args.window,
                true,
            )
            .await
            .with_context(|| format!("the {label} latency run"))?;
            let mut l = outcome.latencies_ms.clone();
            l.sort_unstable();
            let lost = outcome.points_sent.saturating_sub(outcome.points_committed);
            if is_soak {
                let after_minute = outcome
                    .rss_mib
                    .iter()
                    .find(|(t, _)| *t >= 60.0)
                    .or(outcome.rss_mib.last())
                    .map_or(f64::NAN, |r| r.1);
                soak = Some(SoakResult {
                    seconds: outcome.seconds,
                    points_per_s: outcome.points_committed as f64 / outcome.seconds,
                    lost_points: lost,
                    rss_after_first_minute_mib: after_minute,
                    rss_at_end_mib: outcome.rss_mib.last().map_or(f64::NAN, |r| r.1),
                    rss_mib: outcome.rss_mib,
                    p99_ms: percentile(&l, 0.99),
                });
            } else {
                latency = Some(LatencyResult {
                    broker: label.clone(),
                    target_points_per_s: half,
                    achieved_points_per_s: outcome.points_committed as f64 / outcome.seconds,
                    messages: outcome.messages_sent,
                    lost_points: lost,
                    p50_ms: percentile(&l, 0.50),
                    p99_ms: percentile(&l, 0.99),
                    max_ms: l.last().map_or(f64::NAN, |&v| v as f64),
                });
            }
        }
    }
    bar.finish_and_clear();
    Ok(Report {
        engine,
        ceiling,
        throughput,
        latency,
        soak,
    })
}

fn table(r: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Store ceiling ({}, no MQTT): {:.0} points/s ({} points in commits of {})",
        r.ceiling.engine, r.ceiling.points_per_s, r.ceiling.points, r.ceiling.points_per_commit
    );
    let _ = writeln!(
        out,
        "\n{:<24} {:>8} {:>12} {:>12} {:>10} {:>8} {:>8} {:>6}",
        "broker", "metrics", "points", "points/s", "msgs/s", "commits", "ceiling", "lost"
    );
    for t in &r.throughput {
        let _ = writeln!(
            out,
            "{:<24} {:>8} {:>12} {:>12.0} {:>10.0} {:>8} {:>7.0}% {:>6}",
            t.broker,
            t.metrics_per_message,
            t.points_committed,
            t.points_per_s,
            t.messages_per_s,
            t.commits,
            t.share_of_ceiling * 100.0,
            t.lost_points
        );
    }
    if let Some(l) = &r.latency {
        let _ = writeln!(
            out,
            "\nIngest-to-queryable at {:.0} points/s ({}): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            l.achieved_points_per_s, l.broker, l.p50_ms, l.p99_ms, l.max_ms
        );
    }
    if let Some(s) = &r.soak {
        let _ = writeln!(
            out,
            "\nMemory soak, {:.0} s at {:.0} points/s: RSS {:.0} MiB after the first minute, {:.0} MiB at the end; p99 {:.0} ms; lost {}",
            s.seconds,
            s.points_per_s,
            s.rss_after_first_minute_mib,
            s.rss_at_end_mib,
            s.p99_ms,
            s.lost_points
        );
    }
    out
}
