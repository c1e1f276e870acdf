//! `aifactory bench feed`: a plant's feed through a broker into the runtime and back. The twin
//! records a plant's events and telemetry (tier-0 rules), then a publisher replays them in the
//! plant contract — once as fast as the runtime takes them (messages per second, broker to
//! decision), once paced at `--speedup` times real time. After every event that frees a machine
//! or a job the replay asks for the runtime's decision with a lockstep heartbeat, before the
//! twin's own next step: that times the decision latency per decision-point kind inside the
//! runtime, and the round trip the plant sees (heartbeat out, answer back).
//!
//! The replayed plant does not obey the commands (its events are recorded): the runtime still
//! decides at every decision point, which is what is timed.

use aifactory_connect::mqtt::{BrokerAddress, Link};
use aifactory_core::{Plant, PlantEvent, TelemetryReading, Timestamp};
use aifactory_runtime::Clock;
use aifactory_runtime::feed::{self, COMMAND_TTL_MS, FeedReport, FeedSpec, Latency};
use aifactory_store::Store;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub(crate) struct FeedBenchArgs {
    /// Plant file [default: the built-in reference plant].
    #[arg(long)]
    plant: Option<PathBuf>,
    /// Days of the plant's events and telemetry to replay.
    #[arg(long, default_value_t = 2.0)]
    days: f64,
    /// Seed of the twin that records them.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// What decides in the runtime: 0 the tier-0 rules, 1 the skills, 2 the coordinated skills.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=2))]
    tier: u8,
    /// Plant seconds per wall second of the paced run (3600: an hour of the plant a second);
    /// 0 skips the paced run.
    #[arg(long, default_value_t = 3600.0)]
    speedup: f64,
    /// Through this broker (mqtt://host:port) [default: the embedded one, relayed with Nagle's
    /// algorithm off so lockstep answers are not held back]. A flood overfills a
    /// broker's queue per client unless it allows more (Mosquitto: max_queued_messages, 1000 by
    /// default; it then drops messages); --paced-only skips the flood.
    #[arg(long)]
    mqtt: Option<String>,
    /// Only the paced run.
    #[arg(long)]
    paced_only: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// One message of the recorded plant, in time order.
enum Recorded {
    Event(PlantEvent),
    Telemetry([TelemetryReading; 3]),
}

impl Recorded {
    fn at(&self) -> Timestamp {
        match self {
            Recorded::Event(e) => e.at,
            Recorded::Telemetry(r) => r[0].at,
        }
    }
}

/// Records everything the twin shows.
#[derive(Default)]
struct Recorder(Vec<Recorded>);

impl aifactory_twin::Observer for Recorder {
    fn wants_events(&self) -> bool {
        true
    }
    fn event(&mut self, event: PlantEvent) {
        self.0.push(Recorded::Event(event));
    }
    fn wants_telemetry(&self) -> bool {
        true
    }
    fn telemetry(&mut self, readings: [TelemetryReading; 3]) {
        self.0.push(Recorded::Telemetry(readings));
    }
}

#[derive(Debug, Serialize)]
struct Run {
    mode: String,
    events: u64,
    telemetry_messages: u64,
    wall_s: f64,
    messages_per_s: f64,
    events_per_s: f64,
    /// Lockstep round trips the plant saw (heartbeat out, answer back), paced run only.
    round_trip: Option<Latency>,
    feed: FeedReport,
}

#[derive(Debug, Serialize)]
struct Report {
    plant: String,
    days: f64,
    tier: u8,
    broker: String,
    /// The recorded plant's own rate, live: events and telemetry messages per second.
    plant_events_per_s: f64,
    plant_messages_per_s: f64,
    runs: Vec<Run>,
}

pub(crate) fn run(args: &FeedBenchArgs) -> anyhow::Result<ExitCode> {
    if !(args.days.is_finite() && args.days > 0.0 && args.days <= 60.0) {
        anyhow::bail!("--days must be more than 0 and at most 60");
    }
    if !(args.speedup.is_finite() && args.speedup >= 0.0) {
        anyhow::bail!("--speedup must be 0 (skip) or more");
    }
    let plant = crate::setup::plant_or_reference(args.plant.as_deref())?;
    let broker: BrokerAddress = match &args.mqtt {
        Some(url) => url.parse().with_context(|| format!("--mqtt {url}"))?,
        None => crate::run::embedded_broker_low_latency()?,
    };
    let recorded = record(&plant, args.days, args.seed, args.json);
    let events = recorded
        .iter()
        .filter(|r| matches!(r, Recorded::Event(_)))
        .count() as f64;
    let seconds = args.days * 86_400.0;
    let runtime = crate::setup::runtime()?;
    let mut runs = Vec::new();
    if !args.paced_only {
        runs.push(runtime.block_on(replay(&plant, &recorded, &broker, args, None))?);
    }
    if args.speedup > 0.0 {
        runs.push(runtime.block_on(replay(
            &plant,
            &recorded,
            &broker,
            args,
            Some(args.speedup),
        ))?);
    }
    let report = Report {
        plant: plant.plant.id.clone(),
        days: args.days,
        tier: args.tier,
        broker: format!("mqtt://{}:{}", broker.host, broker.port),
        plant_events_per_s: events / seconds,
        plant_messages_per_s: recorded.len() as f64 / seconds,
        runs,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn record(plant: &Plant, days: f64, seed: u64, quiet: bool) -> Vec<Recorded> {
    let model = Arc::new(aifactory_twin::PlantModel::new(plant.clone()));
    let mut sim = aifactory_twin::Simulation::new(
        model,
        seed,
        Box::new(aifactory_twin::BaselinePolicy::default()),
        None,
    );
    if !quiet {
        eprintln!(
            "recording {days} day(s) of {} (tier-0 rules)…",
            plant.plant.id
        );
    }
    let mut recorder = Recorder::default();
    sim.run_until(aifactory_twin::PlantTime::from_days(days), &mut recorder);
    // The twin reports in time order; telemetry of one instant after its events.
    recorder.0.sort_by_key(Recorded::at);
    recorder.0
}

fn envelope(event: &PlantEvent, seq: u64) -> Vec<u8> {
    let mut body = serde_json::json!({
        "spec": "aifactory/1",
        "id": format!("twin-{seq}"),
        "source": "twin",
        "seq": seq,
        "type": event.kind.as_str(),
        "time": event.at.0,
        "data": event.detail,
    });
    if let Some(m) = &event.machine {
        body["machine"] = serde_json::json!(m);
    }
    if let Some(o) = &event.order {
        body["order"] = serde_json::json!(o);
    }
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Replays the recording into a fresh feed: as fast as possible (`speedup` none) or paced, with
/// a lockstep heartbeat after each moment that had events.
async fn replay(
    plant: &Plant,
    recorded: &[Recorded],
    broker: &BrokerAddress,
    args: &FeedBenchArgs,
    speedup: Option<f64>,
) -> anyhow::Result<Run> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // A site of its own per run: the feed's session is persistent.
    let site = format!("bench-{}-{nanos}", plant.plant.id);
    let mut plant = plant.clone();
    plant.plant.id.clone_from(&site);
    let store = Store::open_in_memory()
        .await
        .context("an in-memory store")?;
    let log = aifactory_core::DecisionLog::new();
    let coordinator = feed::coordinator_for(&plant, args.tier, args.seed, &log, None)?;
    let spec = FeedSpec {
        plant,
        broker: broker.clone(),
        client_id: format!("{site}-feed"),
        policy: coordinator.policy,
        observer: coordinator.observer,
        log: Some(log),
        tier: args.tier,
        plans_releases: false,
        command_ttl_ms: COMMAND_TTL_MS,
        clock: Clock::system(),
    };
    let running = feed::connect(spec)
        .await?
        .run(store, None)
        .await
        .context("starting the feed")?;
    let sync = aifactory_connect::envelope::sync_topic(&site);
    let (publisher, mut answers) =
        Link::connect(broker, &format!("{site}-plant"), &[sync], false).await?;
    let events_topic = format!("aifactory/{site}/_events");
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(recorded.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} messages ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(match speedup {
        None => "flood".to_owned(),
        Some(s) => format!("{s}x"),
    });
    let began = Instant::now();
    let first = recorded.first().map_or(0, |r| r.at().0);
    let mut seq = 0u64;
    let mut sent_at: HashMap<String, Instant> = HashMap::new();
    let mut round_trips: Vec<Duration> = Vec::new();
    let (mut events, mut telemetry) = (0u64, 0u64);
    let mut i = 0;
    while i < recorded.len() {
        let at = recorded[i].at();
        if let Some(s) = speedup {
            let due = Duration::from_secs_f64((at.0 - first) as f64 / 1000.0 / s);
            if let Some(wait) = due.checked_sub(began.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        while i < recorded.len() && recorded[i].at() == at {
            match &recorded[i] {
                Recorded::Event(e) => {
                    seq += 1;
                    events += 1;
                    publisher
                        .publish_waiting(events_topic.clone(), envelope(e, seq), false)
                        .await?;
                    // The twin decided right after this event, before its next one at the same
                    // time: ask the runtime here, as a plant waiting for its decision would.
                    if asks_for_a_decision(e) {
                        seq += 1;
                        heartbeat(&publisher, &events_topic, at, seq, &mut sent_at).await?;
                    }
                }
                Recorded::Telemetry(r) => {
                    telemetry += 1;
                    let values: BTreeMap<&str, f64> =
                        r.iter().map(|x| (x.signal.as_str(), x.value)).collect();
                    let body = serde_json::json!({"ts": at.0, "values": values});
                    publisher
                        .publish_waiting(
                            format!("aifactory/{site}/{}", r[0].machine),
                            serde_json::to_vec(&body).unwrap_or_default(),
                            false,
                        )
                        .await?;
                }
            }
            i += 1;
            bar.inc(1);
        }
        if i == recorded.len() {
            seq += 1;
            heartbeat(&publisher, &events_topic, at, seq, &mut sent_at).await?;
        }
        // Answers that came meanwhile: round trips, heartbeat out to answer back.
        while let Ok(answer) = answers.try_recv() {
            note_answer(&answer.payload, &mut sent_at, &mut round_trips);
        }
    }
    // Wait for the last answer: everything published has been taken and decided on.
    let deadline = Instant::now() + Duration::from_secs(600);
    while !sent_at.is_empty() && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), answers.recv()).await {
            Ok(Some(answer)) => note_answer(&answer.payload, &mut sent_at, &mut round_trips),
            Ok(None) => break,
            Err(_) => {}
        }
    }
    let wall = began.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let unanswered = sent_at.len();
    publisher.close().await;
    let report = running.stop().await?;
    if unanswered > 0 {
        anyhow::bail!("{unanswered} heartbeat(s) were never answered within 10 minutes");
    }
    let messages = events + telemetry;
    Ok(Run {
        mode: match speedup {
            None => "as fast as taken".to_owned(),
            Some(s) => format!("paced at {s}x real time"),
        },
        events,
        telemetry_messages: telemetry,
        wall_s: wall,
        messages_per_s: messages as f64 / wall,
        events_per_s: events as f64 / wall,
        round_trip: speedup.map(|_| Latency::of(&round_trips, round_trips.len() as u64)),
        feed: report,
    })
}

/// Events after which a plant's decision is due: a machine or a job became free.
fn asks_for_a_decision(e: &PlantEvent) -> bool {
    use aifactory_core::EventKind::*;
    matches!(
        e.kind,
        OperationCompleted
            | WorkOrderReleased
            | RepairCompleted
            | MaintenanceCompleted
            | PurchaseReceived
    )
}

/// A lockstep heartbeat at `at`, remembered until its answer comes.
async fn heartbeat(
    publisher: &Link,
    topic: &str,
    at: Timestamp,
    seq: u64,
    sent_at: &mut HashMap<String, Instant>,
) -> anyhow::Result<()> {
    let id = format!("twin-{seq}");
    let body = serde_json::json!({
        "spec": "aifactory/1", "id": id, "source": "twin", "seq": seq,
        "type": "heartbeat", "time": at.0, "data": {"answer": true},
    });
    // Timed from the moment it is handed over, so time queued behind the flood counts.
    sent_at.insert(id, Instant::now());
    publisher
        .publish_waiting(
            topic.to_owned(),
            serde_json::to_vec(&body).unwrap_or_default(),
            false,
        )
        .await?;
    Ok(())
}

fn note_answer(
    payload: &[u8],
    sent_at: &mut HashMap<String, Instant>,
    round_trips: &mut Vec<Duration>,
) {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return;
    };
    if let Some(sent) = body["correlation"]
        .as_str()
        .and_then(|id| sent_at.remove(id))
    {
        round_trips.push(sent.elapsed());
    }
}

fn print(report: &Report) {
    println!(
        "plant {} ({:.1} day(s)): live it sends {:.4} events/s and {:.2} messages/s in all; tier {} decides; broker {}",
        report.plant,
        report.days,
        report.plant_events_per_s,
        report.plant_messages_per_s,
        report.tier,
        report.broker
    );
    for run in &report.runs {
        println!(
            "\n{}: {} events + {} telemetry messages in {:.2} s = {:.0} messages/s ({:.0} events/s); {} decisions, {} commands, {} refused",
            run.mode,
            run.events,
            run.telemetry_messages,
            run.wall_s,
            run.messages_per_s,
            run.events_per_s,
            run.feed.decisions,
            run.feed.commands,
            run.feed.refused
        );
        if let Some(rt) = &run.round_trip {
            println!(
                "  lockstep round trip (heartbeat out, answer back): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {}",
                rt.p50_ms, rt.p99_ms, rt.max_ms, rt.count
            );
        }
        for (kind, l) in &run.feed.latency {
            println!(
                "  {kind:>18}: message in → command out p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {}",
                l.p50_ms, l.p99_ms, l.max_ms, l.count
            );
        }
    }
}
