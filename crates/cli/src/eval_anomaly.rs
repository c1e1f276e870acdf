//! `aifactory eval anomaly`: a streaming anomaly detector scored on a folder of labelled CSV
//! files; `aifactory eval anomaly-data`: such a folder written from the twin's telemetry (the
//! P–F interval before each failure labelled) or from a NAB checkout. The layout, the training
//! prefix and the metrics are in docs/ANOMALY-EVAL.md.

use aifactory_core::{EventKind, PlantEvent, TelemetryReading, Timestamp};
use aifactory_skills::anomaly::AnomalyConfig;
use aifactory_skills::anomaly_eval::{
    self, DEFAULT_TRAIN_SHARE, Detector, EvalOptions, EvalReport, Metrics,
};
use aifactory_skills::multivariate::MultivariateConfig;
use aifactory_twin::{BaselinePolicy, MaintenanceRule, PlantModel, PlantTime, Simulation};
use anyhow::Context;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub(crate) struct AnomalyArgs {
    /// Folder of labelled CSV files, one per machine: a header, a timestamp column (ISO-8601 or
    /// epoch), numeric signal columns and a 0/1 `anomaly` column; comma or semicolon separated.
    /// `aifactory eval anomaly-data` writes such a folder from the twin.
    #[arg(long)]
    data: PathBuf,
    /// `multivariate` (all signals of a file together: PCA T² and Q, smoothed, calibrated on
    /// the training prefix) or `univariate` (the streaming detector on each signal alone, the
    /// largest score per row).
    #[arg(long, default_value = "multivariate")]
    detector: String,
    /// Share of each file's rows that trains the detector; the prefix ends before the file's
    /// first labelled row if that comes earlier. Only the rows after it are scored.
    #[arg(long, default_value_t = DEFAULT_TRAIN_SHARE)]
    train_share: f64,
    /// Alarm threshold on the scores [default: the detector's own alarm level]. The oracle
    /// line (the best threshold on the scored labels) is printed apart, as an upper bound.
    #[arg(long)]
    threshold: Option<f64>,
    /// Detector settings as a JSON object over the defaults, for experiments, e.g.
    /// '{"smoothing": 0.02, "univariate": true}' (the fields of MultivariateConfig or
    /// AnomalyConfig).
    #[arg(long)]
    settings: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct AnomalyDataArgs {
    /// Folder to write the CSV files to (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Plant file [default: the built-in reference plant].
    #[arg(long, conflicts_with = "from_nab")]
    plant: Option<PathBuf>,
    /// Simulated days per seed.
    #[arg(long, default_value_t = 90.0)]
    days: f64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seeds to run, from --seed upwards: one file per machine and seed, `<MACHINE>-s<SEED>.csv`.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Maintenance rule of the run: rtf (run to failure: every developing fault ends in a
    /// failure that labels it) or pm / pm:HOURS (services cut some faults short, and those
    /// stay unlabelled).
    #[arg(long, default_value = "rtf")]
    maintenance: String,
    /// Instead of the twin, convert a NAB checkout (data/ and labels/combined_windows.json):
    /// one file per series, `value` as the signal, NAB's windows as the label.
    #[arg(long)]
    from_nab: Option<PathBuf>,
}

/// Parses `--settings` over the defaults, refusing unknown fields.
fn with_settings<T: serde::Serialize + serde::de::DeserializeOwned>(
    defaults: T,
    settings: Option<&str>,
) -> anyhow::Result<T> {
    let Some(text) = settings else {
        return Ok(defaults);
    };
    let overrides: serde_json::Value =
        serde_json::from_str(text).context("--settings is not JSON")?;
    let serde_json::Value::Object(overrides) = overrides else {
        anyhow::bail!("--settings must be a JSON object, e.g. '{{\"smoothing\": 0.02}}'");
    };
    let mut value = serde_json::to_value(defaults)?;
    let fields = value
        .as_object_mut()
        .context("the detector settings are not an object")?;
    for (k, v) in overrides {
        if !fields.contains_key(&k) {
            let known: Vec<&str> = fields.keys().map(String::as_str).collect();
            anyhow::bail!(
                "--settings: unknown field {k:?}; known: {}",
                known.join(", ")
            );
        }
        fields.insert(k, v);
    }
    serde_json::from_value(value).context("--settings: a field has the wrong type")
}

pub(crate) fn run(args: &AnomalyArgs) -> anyhow::Result<ExitCode> {
    let detector = match args.detector.as_str() {
        "multivariate" => Detector::Multivariate(with_settings(
            MultivariateConfig::default(),
            args.settings.as_deref(),
        )?),
        "univariate" => Detector::Univariate(with_settings(
            AnomalyConfig::default(),
            args.settings.as_deref(),
        )?),
        other => {
            anyhow::bail!("--detector {other:?} is not known; use `multivariate` or `univariate`")
        }
    };
    if !(args.train_share > 0.0 && args.train_share < 1.0) {
        anyhow::bail!(
            "--train-share must be above 0 and below 1, got {}",
            args.train_share
        );
    }
    let files = anomaly_eval::read_folder(&args.data)
        .with_context(|| format!("reading labelled files under {}", args.data.display()))?;
    let options = EvalOptions {
        train_share: args.train_share,
        threshold: args.threshold,
        ..EvalOptions::default()
    };
    let bar = (!args.json).then(|| {
        let bar = indicatif::ProgressBar::new(files.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} files  {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let report = anomaly_eval::evaluate(&files, &detector, &options, &mut |name| {
        if let Some(b) = &bar {
            b.set_message(name.to_owned());
            b.inc(1);
        }
    })
    .context("scoring the files")?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["detector_settings"] = match &detector {
            Detector::Multivariate(c) => serde_json::to_value(c)?,
            Detector::Univariate(c) => serde_json::to_value(c)?,
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", table(&report, args));
    }
    Ok(ExitCode::SUCCESS)
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_owned(), |v| format!("{:.1}", 100.0 * v))
}

fn num(x: Option<f64>, decimals: usize) -> String {
    x.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
}

fn row(out: &mut String, name: &str, m: &Metrics) {
    let nab = m.nab.first().and_then(|n| n.normalised);
    let _ = writeln!(
        out,
        "{name:<24} {:>8} {:>7}/{:<3} {:>6}/{:<6} {:>6} {:>6} {:>6} {:>8} {:>7} {:>7}",
        m.scored_rows,
        m.events - m.events_missed,
        m.events,
        m.false_alarms,
        m.alarms,
        pct(m.precision),
        pct(m.recall),
        num(m.f1, 3),
        num(m.false_alarm_rate.map(|r| 100.0 * r), 3),
        num(m.median_lead_h, 1),
        num(nab, 1),
    );
}

fn table(report: &EvalReport, args: &AnomalyArgs) -> String {
    let mut out = String::new();
    let scored = report.files.iter().filter(|f| f.metrics.is_some()).count();
    let _ = writeln!(
        out,
        "Anomaly detection on {}: {} files ({scored} scored), detector {}; training prefix {:.0} % of each file (its labelled rows left out of training); threshold {:.3} ({}).\n",
        args.data.display(),
        report.files.len(),
        report.detector,
        100.0 * report.train_share,
        report.threshold,
        if args.threshold.is_some() {
            "--threshold"
        } else {
            "the detector's alarm level, fixed before scoring"
        }
    );
    let _ = writeln!(
        out,
        "{:<24} {:>8} {:>11} {:>13} {:>6} {:>6} {:>6} {:>8} {:>7} {:>7}",
        "file",
        "scored",
        "events hit",
        "false alarms",
        "prec%",
        "rec%",
        "F1",
        "FA rate%",
        "lead h",
        "NAB std"
    );
    for f in &report.files {
        match &f.metrics {
            Some(m) => row(&mut out, &f.file, m),
            None => {
                let _ = writeln!(
                    out,
                    "{:<24} not scored: {}",
                    f.file,
                    f.skipped.as_deref().unwrap_or("")
                );
            }
        }
    }
    row(&mut out, "overall", &report.overall);
    let m = &report.overall;
    let _ = writeln!(
        out,
        "\nOverall: {} of {} events caught (missed-alarm rate {} %), median lead {} h before the event's last row; {} alarms, {} of them false; false-alarm rate {} % of normal rows.",
        m.events - m.events_missed,
        m.events,
        pct(m.missed_alarm_rate),
        num(m.median_lead_h, 1),
        m.alarms,
        m.false_alarms,
        num(m.false_alarm_rate.map(|r| 100.0 * r), 3),
    );
    let nab: Vec<String> = m
        .nab
        .iter()
        .map(|n| format!("{} {}", n.profile, num(n.normalised, 1)))
        .collect();
    let _ = writeln!(
        out,
        "NAB-style (each event a window, each alarm's first row a detection; 0 = null, 100 = perfect): {}",
        nab.join(", ")
    );
    let oracle: Vec<String> = report
        .oracle
        .nab
        .iter()
        .map(|(p, t, s)| format!("{p} {} at {t:.3}", num(*s, 1)))
        .collect();
    let _ = writeln!(
        out,
        "Oracle — thresholds chosen on the scored labels, an upper bound and not a result: F1 {} at {:.3}; NAB-style {}.",
        num(report.oracle.f1, 3),
        report.oracle.f1_threshold,
        oracle.join(", ")
    );
    out
}

/// The signals each machine's file carries, in the twin's reading order.
const SIGNALS: [&str; 3] = ["vibration_mm_s", "temperature_c", "current_a"];

/// One machine's telemetry and the events that say when it ran and failed.
#[derive(Debug, Default)]
struct MachineLog {
    /// Readings while the machine was powered (not failed, not in service).
    rows: Vec<(Timestamp, [f64; 3])>,
    down: bool,
    /// When the current operation's running (after set-up) began or begins.
    running_from: Option<i64>,
    /// An operation a failure or a service interrupted, resumed after it.
    interrupted: bool,
    /// Running intervals (ms), in time order.
    running: Vec<(i64, i64)>,
    failures: Vec<i64>,
    renewals: Vec<i64>,
}

impl MachineLog {
    fn stop(&mut self, at: i64) {
        if let Some(from) = self.running_from.take()
            && at > from
        {
            self.running.push((from, at));
        }
    }
}

/// Records every machine's telemetry and the events that label it.
#[derive(Debug)]
struct TwinRecorder {
    index: HashMap<String, usize>,
    machines: Vec<MachineLog>,
}

impl aifactory_twin::Observer for TwinRecorder {
    fn wants_events(&self) -> bool {
        true
    }

    fn event(&mut self, event: PlantEvent) {
        let Some(&m) = event.machine.as_ref().and_then(|id| self.index.get(id)) else {
            return;
        };
        let log = &mut self.machines[m];
        let at = event.at.0;
        match event.kind {
            EventKind::OperationStarted => {
                let setup_s = event.detail["setup_s"].as_f64().unwrap_or(0.0).max(0.0);
                log.running_from = Some(at + (setup_s * 1000.0) as i64);
            }
            EventKind::OperationCompleted => {
                log.stop(at);
                log.interrupted = false;
            }
            EventKind::MachineFailed | EventKind::MaintenanceStarted => {
                log.interrupted = log.running_from.is_some_and(|from| from <= at);
                log.stop(at);
                log.down = true;
                if event.kind == EventKind::MachineFailed {
                    log.failures.push(at);
                }
            }
            EventKind::RepairCompleted | EventKind::MaintenanceCompleted => {
                log.down = false;
                log.renewals.push(at);
                if log.interrupted {
                    log.running_from = Some(at);
                    log.interrupted = false;
                }
            }
            _ => {}
        }
    }

    fn wants_telemetry(&self) -> bool {
        true
    }

    fn telemetry(&mut self, readings: [TelemetryReading; 3]) {
        let Some(&m) = self.index.get(&readings[0].machine) else {
            return;
        };
        let log = &mut self.machines[m];
        if log.down {
            return;
        }
        let mut values = [f64::NAN; 3];
        for r in &readings {
            if let Some(j) = SIGNALS.iter().position(|s| *s == r.signal) {
                values[j] = r.value;
            }
        }
        if values.iter().all(|v| v.is_finite()) {
            log.rows.push((readings[0].at, values));
        }
    }
}

/// The instant `hours` of running before `until`, walking back over `running` but not past
/// `floor`; `floor` if there was less running than that.
fn running_hours_before(running: &[(i64, i64)], until: i64, hours: f64, floor: i64) -> i64 {
    let mut left = (hours * 3_600_000.0) as i64;
    for &(from, to) in running.iter().rev() {
        let to = to.min(until);
        if to <= floor {
            break;
        }
        let from = from.max(floor);
        if to <= from {
            continue;
        }
        if to - from >= left {
            return to - left;
        }
        left -= to - from;
    }
    floor
}

/// Labels a machine's rows: 1 from `precursor_h` running hours before each failure (not
/// before the last renewal) up to the failure. Rows in the last `precursor_h` running hours of
/// the run are dropped: a failure just after the end would label them, and nobody knows.
fn labelled_rows(log: &MachineLog, precursor_h: f64, end: i64) -> Vec<(Timestamp, [f64; 3], bool)> {
    let mut intervals: Vec<(i64, i64)> = Vec::new();
    if precursor_h > 0.0 {
        for &f in &log.failures {
            let renewal = log
                .renewals
                .iter()
                .copied()
                .filter(|&r| r < f)
                .max()
                .unwrap_or(i64::MIN);
            intervals.push((
                running_hours_before(&log.running, f, precursor_h, renewal),
                f,
            ));
        }
    }
    let mut running = log.running.clone();
    if let Some(from) = log.running_from
        && from < end
    {
        running.push((from, end));
    }
    let cut = if precursor_h > 0.0 {
        running_hours_before(&running, end, precursor_h, i64::MIN)
    } else {
        end
    };
    log.rows
        .iter()
        .filter(|(t, _)| t.0 < cut)
        .map(|&(t, v)| {
            let label = intervals.iter().any(|&(a, b)| a <= t.0 && t.0 < b);
            (t, v, label)
        })
        .collect()
}

fn csv(rows: &[(Timestamp, [f64; 3], bool)]) -> String {
    let mut text = String::with_capacity(rows.len() * 56);
    text.push_str("timestamp,");
    text.push_str(&SIGNALS.join(","));
    text.push_str(",anomaly\n");
    for (t, v, l) in rows {
        let stamp = aifactory_skills::nab::format_timestamp(*t).replacen(' ', "T", 1);
        let _ = writeln!(
            text,
            "{stamp}Z,{:.4},{:.3},{:.3},{}",
            v[0],
            v[1],
            v[2],
            u8::from(*l)
        );
    }
    text
}

pub(crate) fn run_data(args: &AnomalyDataArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    if let Some(nab_dir) = &args.from_nab {
        return write_nab(nab_dir, &args.out);
    }
    crate::setup::check_days(args.days)?;
    if args.seeds == 0 || args.seeds > 1000 {
        anyhow::bail!("--seeds must be between 1 and 1000, got {}", args.seeds);
    }
    let maintenance: MaintenanceRule = args
        .maintenance
        .parse()
        .with_context(|| format!("--maintenance {:?}", args.maintenance))?;
    let plant = crate::setup::plant_or_reference(args.plant.as_deref())?;
    let precursor: Vec<f64> = plant
        .machines
        .iter()
        .map(|m| {
            plant
                .machine_type(&m.machine_type)
                .map_or(0.0, |t| t.sensors.precursor_h)
        })
        .collect();
    let ids: Vec<String> = plant.machines.iter().map(|m| m.id.clone()).collect();
    let model = Arc::new(PlantModel::new(plant));
    let bar = indicatif::ProgressBar::new(args.seeds);
    let (mut files, mut rows, mut events) = (0usize, 0usize, 0usize);
    for seed in args.seed..args.seed + args.seeds {
        let mut recorder = TwinRecorder {
            index: ids
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, id)| (id, i))
                .collect(),
            machines: ids.iter().map(|_| MachineLog::default()).collect(),
        };
        let policy = BaselinePolicy {
            maintenance,
            ..BaselinePolicy::default()
        };
        let mut sim = Simulation::new(Arc::clone(&model), seed, Box::new(policy), None);
        sim.run_until(PlantTime::from_days(args.days), &mut recorder);
        let end = recorder
            .machines
            .iter()
            .filter_map(|m| m.rows.last().map(|r| r.0.0 + 1))
            .max()
            .unwrap_or(0);
        for ((id, log), &p) in ids.iter().zip(&recorder.machines).zip(&precursor) {
            let labelled = labelled_rows(log, p, end);
            if labelled.is_empty() {
                continue;
            }
            let path = args.out.join(format!("{id}-s{seed}.csv"));
            std::fs::write(&path, csv(&labelled))
                .with_context(|| format!("writing {}", path.display()))?;
            files += 1;
            rows += labelled.len();
            events += anomaly_eval::events(&labelled.iter().map(|r| r.2).collect::<Vec<_>>()).len();
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "Wrote {files} files ({rows} rows, {events} labelled P–F intervals) to {}: seeds {}..{}, {} days each, maintenance {}.",
        args.out.display(),
        args.seed,
        args.seed + args.seeds - 1,
        args.days,
        args.maintenance
    );
    Ok(ExitCode::SUCCESS)
}

fn write_nab(nab_dir: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    let corpus = aifactory_skills::nab::load_corpus(nab_dir)
        .with_context(|| format!("reading the NAB corpus under {}", nab_dir.display()))?;
    for s in &corpus.series {
        let name = s.key.replace('/', "__");
        let mut text = String::with_capacity(s.values.len() * 40);
        text.push_str("timestamp,value,anomaly\n");
        let mut previous = None;
        for (i, (t, v)) in s.timestamps.iter().zip(&s.values).enumerate() {
            // NAB repeats a few timestamps at clock changes; the layout wants them strictly
            // increasing, so a repeat is left out (as NAB's window limits use the first).
            if previous.is_some_and(|p| *t <= p) {
                continue;
            }
            previous = Some(*t);
            let stamp = aifactory_skills::nab::format_timestamp(*t);
            let _ = writeln!(text, "{stamp},{v},{}", u8::from(s.label(i)));
        }
        let path = out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "Wrote {} NAB series ({} windows) to {}.",
        corpus.series.len(),
        corpus.windows(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn running_hours_walk_back_over_running_intervals_only() {
        // Ran 0–10 h and 20–40 h; failed at 40 h.
        let running = [(0, 10 * H), (20 * H, 40 * H)];
        assert_eq!(
            running_hours_before(&running, 40 * H, 5.0, i64::MIN),
            35 * H
        );
        // 25 running hours back: the 20 h of the second run, then 5 of the first.
        assert_eq!(
            running_hours_before(&running, 40 * H, 25.0, i64::MIN),
            5 * H
        );
        // Not past the last renewal.
        assert_eq!(running_hours_before(&running, 40 * H, 25.0, 15 * H), 15 * H);
        // Less running than asked: the floor.
        assert_eq!(running_hours_before(&running, 40 * H, 99.0, -1), -1);
    }

    #[test]
    fn the_p_f_interval_is_labelled_and_the_unknowable_tail_dropped() {
        let mut log = MachineLog::default();
        for h in 0..100 {
            log.rows.push((Timestamp(h * H), [1.0, 2.0, 3.0]));
        }
        log.running = vec![(0, 50 * H), (60 * H, 100 * H)];
        log.failures = vec![50 * H];
        log.renewals = vec![60 * H];
        let rows = labelled_rows(&log, 36.0, 100 * H);
        // Rows from 64 h on are in the last 36 running hours: dropped.
        assert_eq!(rows.len(), 64);
        let labelled: Vec<i64> = rows.iter().filter(|r| r.2).map(|r| r.0.0 / H).collect();
        assert_eq!(labelled, (14..50).collect::<Vec<_>>());
        // No P–F interval in the plant file: nothing labelled, nothing dropped.
        let rows = labelled_rows(&log, 0.0, 100 * H);
        assert_eq!((rows.len(), rows.iter().filter(|r| r.2).count()), (100, 0));
    }

    #[test]
    fn settings_override_defaults_and_unknown_fields_are_refused() {
        let c: MultivariateConfig = with_settings(
            MultivariateConfig::default(),
            Some(r#"{"smoothing": 0.05}"#),
        )
        .unwrap();
        assert_eq!(c.smoothing, 0.05);
        assert_eq!(c.t2, MultivariateConfig::default().t2);
        let e = with_settings(MultivariateConfig::default(), Some(r#"{"smoth": 1}"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field \"smoth\""), "{e}");
        assert!(with_settings(AnomalyConfig::default(), Some("[1]")).is_err());
        assert!(with_settings(AnomalyConfig::default(), Some(r#"{"warmup": "x"}"#)).is_err());
    }
}
