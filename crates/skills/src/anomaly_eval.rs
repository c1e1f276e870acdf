//! A generic evaluation of streaming anomaly detectors on labelled multivariate CSV files.
//!
//! Layout: a folder of `.csv` files, one per machine (or series). Each has a header; a
//! timestamp column (the column named `timestamp`, `time`, `ts`, `datetime` or `date`, else the
//! first); numeric signal columns; and a 0/1 `anomaly` label column. Cells are separated by
//! commas, or by semicolons when the header has more semicolons than commas (then a decimal
//! comma is read too). Timestamps are ISO-8601 (`2024-03-01T08:00:00Z`, `2024-03-01 08:00`,
//! with an optional fraction and UTC offset) or numeric epochs (seconds, or milliseconds when
//! the first is at least 10¹¹), strictly increasing. What is wrong with a file is reported with
//! its file, line and column.
//!
//! Training prefix of each file: its first `train_share` of rows, extended to the end of a
//! labelled run it would cut in two. A detector learns from the prefix's healthy rows only
//! (rows labelled 1 there are left out, as a plant leaves out the days before a known failure)
//! and scores every row after the prefix; the prefix's rows are never scored.
//!
//! Metrics at a threshold that no scored label chose (the detector's own alarm level, fixed
//! from its calibration): point-wise precision, recall, F1, false-alarm rate (alarmed normal
//! rows over normal rows); events (each contiguous labelled run) missed without any alarmed
//! row; lead time (from an event's first alarmed row to its last row); and NAB-style scores
//! with each event as a NAB window, counting an alarm once at the first row of each run of
//! alarmed rows. An oracle threshold, the best one on the scored labels, is reported apart.

use crate::anomaly::{AnomalyConfig, AnomalyDetector, StreamingDetector};
use crate::multivariate::{MultivariateConfig, MultivariateError};
use crate::nab::{CostProfile, detection_weight};
use aifactory_core::time::{Timestamp, days_from_civil};
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// Default share of each file's rows that trains the detector.
pub const DEFAULT_TRAIN_SHARE: f64 = 0.3;

/// Fewest training rows a file must have to be scored.
pub const MIN_TRAIN_ROWS: usize = 200;

/// Where in a file something is wrong, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column and its header name, where one cell is at fault.
    pub column: Option<(usize, String)>,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some((c, name)) = &self.column {
            write!(f, ", column {c} ({name})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What can go wrong reading a folder or scoring it.
#[derive(Debug, thiserror::Error)]
pub enum AnomalyEvalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {error}")]
    Parse { path: PathBuf, error: ParseError },
    #[error("{path}: no .csv file in the folder")]
    NoFiles { path: PathBuf },
    #[error("{file}: fitting the detector: {source}")]
    Fit {
        file: String,
        #[source]
        source: MultivariateError,
    },
    #[error("the training share must be above 0 and below 1, got {0}")]
    TrainShare(f64),
}

/// One labelled file.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledSeries {
    /// The file name.
    pub name: String,
    pub signals: Vec<String>,
    pub timestamps: Vec<Timestamp>,
    /// Row-major: `signals.len()` values per row.
    pub values: Vec<f64>,
    pub labels: Vec<bool>,
}

impl LabelledSeries {
    pub fn rows(&self) -> usize {
        self.timestamps.len()
    }

    pub fn row(&self, i: usize) -> &[f64] {
        let p = self.signals.len();
        &self.values[i * p..(i + 1) * p]
    }
}

/// Names a timestamp column may have (case-insensitive).
const TIME_NAMES: &[&str] = &["timestamp", "time", "ts", "datetime", "date"];

/// The label column's name (case-insensitive).
pub const LABEL_COLUMN: &str = "anomaly";

fn unquote(cell: &str) -> &str {
    let c = cell.trim();
    c.strip_prefix('"')
        .and_then(|c| c.strip_suffix('"'))
        .unwrap_or(c)
        .trim()
}

/// How the file writes its timestamps, decided by its first row.
#[derive(Debug, Clone, Copy, PartialEq)]
enum TimeFormat {
    Iso,
    EpochSeconds,
    EpochMillis,
}

/// Parses one file's bytes (see the module documentation for the layout).
pub fn parse_labelled_csv(name: &str, bytes: &[u8]) -> Result<LabelledSeries, ParseError> {
    let err = |line: usize, column: Option<(usize, String)>, message: String| ParseError {
        line,
        column,
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        err(
            line,
            None,
            format!("not UTF-8 text (byte {} of the file)", at + 1),
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let header = match lines.next() {
        Some(h) if !h.trim().is_empty() => h,
        _ => return Err(err(1, None, "the file is empty: no header".into())),
    };
    let delimiter = if header.matches(';').count() > header.matches(',').count() {
        ';'
    } else {
        ','
    };
    let names: Vec<String> = header
        .split(delimiter)
        .map(|c| unquote(c).to_owned())
        .collect();
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() {
            return Err(err(1, None, format!("column {} has no name", i + 1)));
        }
        if let Some(j) = names[..i].iter().position(|m| m.eq_ignore_ascii_case(n)) {
            return Err(err(
                1,
                Some((i + 1, n.clone())),
                format!("the name repeats column {}", j + 1),
            ));
        }
    }
    let col = |i: usize| Some((i + 1, names[i].clone()));
    let label = names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(LABEL_COLUMN))
        .ok_or_else(|| {
            err(
                1,
                None,
                format!(
                    "no `{LABEL_COLUMN}` label column (0/1) in the header `{}`",
                    names.join(&delimiter.to_string())
                ),
            )
        })?;
    let time = names
        .iter()
        .position(|n| TIME_NAMES.iter().any(|t| n.eq_ignore_ascii_case(t)))
        .unwrap_or(0);
    if time == label {
        return Err(err(
            1,
            None,
            "no timestamp column: name one `timestamp`, or put it first".into(),
        ));
    }
    let signal_cols: Vec<usize> = (0..names.len())
        .filter(|&i| i != time && i != label)
        .collect();
    if signal_cols.is_empty() {
        return Err(err(
            1,
            None,
            "no signal column besides the timestamp and the label".into(),
        ));
    }
    let p = signal_cols.len();
    let mut out = LabelledSeries {
        name: name.to_owned(),
        signals: signal_cols.iter().map(|&i| names[i].clone()).collect(),
        timestamps: Vec::new(),
        values: Vec::new(),
        labels: Vec::new(),
    };
    let mut format: Option<TimeFormat> = None;
    let mut previous: Option<(Timestamp, usize)> = None;
    let mut cells: Vec<&str> = Vec::with_capacity(names.len());
    for (i, line) in lines.enumerate() {
        let line_no = i + 2;
        if line.trim().is_empty() {
            continue;
        }
        cells.clear();
        cells.extend(line.split(delimiter).map(unquote));
        if cells.len() != names.len() {
            return Err(err(
                line_no,
                None,
                format!(
                    "{} cells, but the header has {} columns",
                    cells.len(),
                    names.len()
                ),
            ));
        }
        let cell = cells[time];
        let fmt = *format.get_or_insert_with(|| match cell.parse::<f64>() {
            Ok(x) if x.abs() >= 1e11 => TimeFormat::EpochMillis,
            Ok(_) => TimeFormat::EpochSeconds,
            Err(_) => TimeFormat::Iso,
        });
        let t = parse_time(cell, fmt).map_err(|m| err(line_no, col(time), m))?;
        if let Some((prev, prev_line)) = previous {
            if t == prev {
                return Err(err(
                    line_no,
                    col(time),
                    format!("{cell:?} repeats the timestamp of line {prev_line}"),
                ));
            }
            if t < prev {
                return Err(err(
                    line_no,
                    col(time),
                    format!(
                        "{cell:?} is earlier than line {prev_line}: rows must be in time order"
                    ),
                ));
            }
        }
        previous = Some((t, line_no));
        for &c in &signal_cols {
            let x = parse_number(cells[c], delimiter).map_err(|m| err(line_no, col(c), m))?;
            out.values.push(x);
        }
        let l = match cells[label] {
            "0" | "0.0" => false,
            "1" | "1.0" => true,
            other => {
                return Err(err(
                    line_no,
                    col(label),
                    format!("the label must be 0 or 1, found {other:?}"),
                ));
            }
        };
        out.timestamps.push(t);
        out.labels.push(l);
    }
    if out.timestamps.is_empty() {
        return Err(err(2, None, "the header has no rows after it".into()));
    }
    debug_assert_eq!(out.values.len(), out.timestamps.len() * p);
    Ok(out)
}

fn parse_number(cell: &str, delimiter: char) -> Result<f64, String> {
    if cell.is_empty() {
        return Err("the cell is empty (missing values are not supported)".into());
    }
    let parsed = if delimiter == ';' && cell.contains(',') && !cell.contains('.') {
        cell.replacen(',', ".", 1).parse::<f64>()
    } else {
        cell.parse::<f64>()
    };
    match parsed {
        Ok(x) if x.is_finite() => Ok(x),
        Ok(_) => Err(format!("{cell:?} is not a finite number")),
        Err(_) => Err(format!("{cell:?} is not a number")),
    }
}

fn parse_time(cell: &str, format: TimeFormat) -> Result<Timestamp, String> {
    match format {
        TimeFormat::Iso => parse_iso8601(cell).ok_or_else(|| {
            format!("{cell:?} is not an ISO-8601 time like 2024-03-01T08:00:00Z (the first row's format)")
        }),
        TimeFormat::EpochSeconds | TimeFormat::EpochMillis => {
            let x: f64 = cell
                .parse()
                .map_err(|_| format!("{cell:?} is not a number like the first row's epoch"))?;
            let ms = if format == TimeFormat::EpochSeconds {
                x * 1000.0
            } else {
                x
            };
            if !ms.is_finite() || ms.abs() > 1e17 {
                return Err(format!("{cell:?} is out of range for an epoch"));
            }
            Ok(Timestamp(ms.round() as i64))
        }
    }
}

/// ISO-8601 date and time: `YYYY-MM-DD`, then optionally `T` or a space and `HH:MM`,
/// `HH:MM:SS` or `HH:MM:SS.fff`, then optionally `Z` or an offset `±HH:MM`, `±HHMM`, `±HH`.
pub fn parse_iso8601(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = text.get(r)?;
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d == 0 || d > month_days[mo as usize - 1] {
        return None;
    }
    let (mut h, mut mi, mut s, mut ms) = (0u32, 0u32, 0u32, 0i64);
    let mut rest = &text[10..];
    if let Some(time) = rest.strip_prefix(['T', ' ']) {
        let tb = time.as_bytes();
        if tb.len() < 5 || tb[2] != b':' {
            return None;
        }
        h = digits(11..13)?;
        mi = digits(14..16)?;
        rest = &time[5..];
        if let Some(sec) = rest.strip_prefix(':') {
            s = digits(17..19)?;
            rest = sec.get(2..)?;
            if let Some(frac) = rest.strip_prefix(['.', ',']) {
                let n = frac.bytes().take_while(u8::is_ascii_digit).count();
                if n == 0 {
                    return None;
                }
                let padded = format!("{:0<3}", &frac[..n.min(3)]);
                ms = padded.parse().ok()?;
                rest = &frac[n..];
            }
        }
        if h > 23 || mi > 59 || s > 60 {
            return None;
        }
    }
    let offset_min: i64 = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let o = &rest[1..];
            let (oh, om) = match o.len() {
                2 => (o, "00"),
                4 => (o.get(..2)?, o.get(2..)?),
                5 if o.as_bytes()[2] == b':' => (o.get(..2)?, o.get(3..)?),
                _ => return None,
            };
            if !oh.bytes().chain(om.bytes()).all(|c| c.is_ascii_digit()) {
                return None;
            }
            let (oh, om): (i64, i64) = (oh.parse().ok()?, om.parse().ok()?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 60 + om)
        }
    };
    let days = days_from_civil(y as i32, mo, d);
    let secs =
        days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s) - offset_min * 60;
    Some(Timestamp(secs * 1000 + ms))
}

/// Reads every `.csv` file of `dir` (not its sub-folders), in file-name order.
pub fn read_folder(dir: &Path) -> Result<Vec<LabelledSeries>, AnomalyEvalError> {
    let io = |source| AnomalyEvalError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let is_csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if is_csv && path.is_file() {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(AnomalyEvalError::NoFiles {
            path: dir.to_path_buf(),
        });
    }
    paths.sort();
    paths.iter().map(|p| read_file(p)).collect()
}

/// Reads one labelled file.
pub fn read_file(path: &Path) -> Result<LabelledSeries, AnomalyEvalError> {
    let bytes = std::fs::read(path).map_err(|source| AnomalyEvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    parse_labelled_csv(&name, &bytes).map_err(|error| AnomalyEvalError::Parse {
        path: path.to_path_buf(),
        error,
    })
}

/// Rows of the training prefix: the first `share` of the rows, extended to the end of a
/// labelled run that would straddle its end.
pub fn training_rows(labels: &[bool], share: f64) -> usize {
    let mut end = ((labels.len() as f64 * share).floor() as usize).min(labels.len());
    if end > 0 {
        while end < labels.len() && labels[end] && labels[end - 1] {
            end += 1;
        }
    }
    end
}

/// The detector under evaluation.
#[derive(Debug, Clone)]
pub enum Detector {
    /// [`crate::multivariate`] over all signals of a file together.
    Multivariate(MultivariateConfig),
    /// [`AnomalyDetector`] on each signal alone; a row's score is the largest of them.
    Univariate(AnomalyConfig),
}

impl Detector {
    pub fn name(&self) -> &'static str {
        match self {
            Detector::Multivariate(_) => "multivariate",
            Detector::Univariate(_) => "univariate",
        }
    }

    /// The detector's own alarm level: the threshold no scored label chose.
    pub fn alarm_level(&self) -> f64 {
        match self {
            Detector::Multivariate(c) => c.alarm_level,
            Detector::Univariate(c) => c.alarm_level,
        }
    }

    /// Scores of the rows after the first `train`, whose rows labelled healthy train the
    /// detector.
    pub fn score(
        &self,
        series: &LabelledSeries,
        train: usize,
    ) -> Result<Vec<f64>, MultivariateError> {
        let n = series.rows();
        let healthy: Vec<usize> = (0..train).filter(|&i| !series.labels[i]).collect();
        match self {
            Detector::Multivariate(config) => {
                let rows: Vec<&[f64]> = healthy.iter().map(|&i| series.row(i)).collect();
                let stamps: Vec<Timestamp> =
                    healthy.iter().map(|&i| series.timestamps[i]).collect();
                let mut d = config.fit(&stamps, &rows)?;
                Ok((train..n)
                    .map(|i| d.update(series.timestamps[i], series.row(i)))
                    .collect())
            }
            Detector::Univariate(config) => {
                let mut ds: Vec<AnomalyDetector> = series
                    .signals
                    .iter()
                    .map(|_| AnomalyDetector::new(config.clone()))
                    .collect();
                let mut out = Vec::with_capacity(n - train);
                for i in healthy.into_iter().chain(train..n) {
                    let t = series.timestamps[i];
                    let s = ds
                        .iter_mut()
                        .zip(series.row(i))
                        .map(|(d, &x)| d.update(t, x))
                        .fold(0.0, f64::max);
                    if i >= train {
                        out.push(s);
                    }
                }
                Ok(out)
            }
        }
    }
}

/// Options of an evaluation.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub train_share: f64,
    /// The threshold to report at [default: the detector's alarm level].
    pub threshold: Option<f64>,
    pub profiles: Vec<CostProfile>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            train_share: DEFAULT_TRAIN_SHARE,
            threshold: None,
            profiles: CostProfile::nab_defaults(),
        }
    }
}

/// One file's scores, kept for the threshold-dependent metrics.
#[derive(Debug, Clone)]
pub struct ScoredFile {
    pub name: String,
    pub rows: usize,
    pub train_rows: usize,
    /// Rows of the prefix labelled anomalous, left out of training.
    pub train_labelled: usize,
    /// Why the file was not scored, if it was not.
    pub skipped: Option<String>,
    /// Timestamps, labels and scores of the scored rows.
    pub timestamps: Vec<Timestamp>,
    pub labels: Vec<bool>,
    pub scores: Vec<f64>,
}

/// Runs the detector on every file; `progress` hears each file's name once it is done.
pub fn score_files(
    files: &[LabelledSeries],
    detector: &Detector,
    train_share: f64,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<ScoredFile>, AnomalyEvalError> {
    if !(train_share > 0.0 && train_share < 1.0) {
        return Err(AnomalyEvalError::TrainShare(train_share));
    }
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let n = f.rows();
        let train = training_rows(&f.labels, train_share);
        let healthy = f.labels[..train].iter().filter(|&&l| !l).count();
        let skipped = if healthy < MIN_TRAIN_ROWS {
            Some(format!(
                "{healthy} healthy rows in the training prefix; at least {MIN_TRAIN_ROWS} are needed"
            ))
        } else if train >= n {
            Some("no rows after the training prefix".to_owned())
        } else {
            None
        };
        let mut scored = ScoredFile {
            name: f.name.clone(),
            rows: n,
            train_rows: train,
            train_labelled: train - healthy,
            skipped,
            timestamps: Vec::new(),
            labels: Vec::new(),
            scores: Vec::new(),
        };
        if scored.skipped.is_none() {
            scored.scores = detector
                .score(f, train)
                .map_err(|source| AnomalyEvalError::Fit {
                    file: f.name.clone(),
                    source,
                })?;
            scored.timestamps = f.timestamps[train..].to_vec();
            scored.labels = f.labels[train..].to_vec();
        }
        progress(&f.name);
        out.push(scored);
    }
    Ok(out)
}

/// A NAB-style score under one profile.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NabStyle {
    pub profile: String,
    pub raw: f64,
    pub null_raw: f64,
    pub perfect_raw: f64,
    /// 0 = the null detector, 100 = the perfect one; `None` where there is no event.
    pub normalised: Option<f64>,
}

/// Metrics of one file, or of all together, at one threshold.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Metrics {
    pub scored_rows: usize,
    pub anomalous_rows: usize,
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    /// Alarmed normal rows over normal rows.
    pub false_alarm_rate: Option<f64>,
    /// Labelled runs (events) in the scored rows, and those with no alarmed row.
    pub events: usize,
    pub events_missed: usize,
    /// Events missed over events.
    pub missed_alarm_rate: Option<f64>,
    /// Alarms (runs of alarmed rows), and those that start on a normal row.
    pub alarms: usize,
    pub false_alarms: usize,
    /// Median hours from an event's first alarmed row to its last row, over caught events.
    pub median_lead_h: Option<f64>,
    pub nab: Vec<NabStyle>,
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Contiguous labelled runs as inclusive index ranges.
pub fn events(labels: &[bool]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &l) in labels.iter().enumerate() {
        match (l, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i - 1));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, labels.len() - 1));
    }
    out
}

/// Raw counts behind [`Metrics`], summable over files.
#[derive(Debug, Clone, Default)]
struct Counts {
    rows: usize,
    anomalous: usize,
    tp: usize,
    fp: usize,
    events: usize,
    missed: usize,
    alarms: usize,
    false_alarms: usize,
    leads_h: Vec<f64>,
    /// Per profile: raw, null, perfect.
    nab: Vec<(f64, f64, f64)>,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.rows += o.rows;
        self.anomalous += o.anomalous;
        self.tp += o.tp;
        self.fp += o.fp;
        self.events += o.events;
        self.missed += o.missed;
        self.alarms += o.alarms;
        self.false_alarms += o.false_alarms;
        self.leads_h.extend_from_slice(&o.leads_h);
        if self.nab.is_empty() {
            self.nab = vec![(0.0, 0.0, 0.0); o.nab.len()];
        }
        for (a, b) in self.nab.iter_mut().zip(&o.nab) {
            a.0 += b.0;
            a.1 += b.1;
            a.2 += b.2;
        }
    }

    fn metrics(&self, profiles: &[CostProfile]) -> Metrics {
        let fn_ = self.anomalous - self.tp;
        let precision = ratio(self.tp, self.tp + self.fp);
        let recall = ratio(self.tp, self.anomalous);
        let f1 = match (precision, recall) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        };
        let mut leads = self.leads_h.clone();
        leads.sort_by(f64::total_cmp);
        let median_lead_h = (!leads.is_empty()).then(|| {
            let m = leads.len() / 2;
            if leads.len() % 2 == 1 {
                leads[m]
            } else {
                0.5 * (leads[m - 1] + leads[m])
            }
        });
        Metrics {
            scored_rows: self.rows,
            anomalous_rows: self.anomalous,
            true_positives: self.tp,
            false_positives: self.fp,
            false_negatives: fn_,
            precision,
            recall,
            f1,
            false_alarm_rate: ratio(self.fp, self.rows - self.anomalous),
            events: self.events,
            events_missed: self.missed,
            missed_alarm_rate: ratio(self.missed, self.events),
            alarms: self.alarms,
            false_alarms: self.false_alarms,
            median_lead_h,
            nab: profiles
                .iter()
                .zip(&self.nab)
                .map(|(p, &(raw, null_raw, perfect_raw))| NabStyle {
                    profile: p.name.clone(),
                    raw,
                    null_raw,
                    perfect_raw,
                    normalised: (perfect_raw > null_raw)
                        .then(|| 100.0 * (raw - null_raw) / (perfect_raw - null_raw)),
                })
                .collect(),
        }
    }
}

/// NAB's weighted score of `detections` (row indices, ascending) against `windows`, as NAB's
/// `calcSweepScore` computes it: the best detection in each window by the scaled sigmoid of its
/// position, each detection outside one by the sigmoid of its distance after the previous
/// window (−1 before any), each missed window −fn_weight; the per-detection rule is NAB's own
/// ([`detection_weight`]).
pub fn nab_style_raw(
    windows: &[(usize, usize)],
    detections: &[usize],
    profile: &CostProfile,
) -> f64 {
    let mut best: Vec<Option<f64>> = vec![None; windows.len()];
    let mut fp = 0.0;
    let mut w = 0usize;
    for &i in detections {
        while w < windows.len() && windows[w].1 < i {
            w += 1;
        }
        let inside = windows.get(w).copied().filter(|&(start, _)| start <= i);
        let previous = w.checked_sub(1).map(|k| windows[k]);
        let weight = detection_weight(i, inside, previous, profile);
        if inside.is_some() {
            let b = &mut best[w];
            *b = Some(b.map_or(weight, |v: f64| v.max(weight)));
        } else {
            fp += weight;
        }
    }
    let tp: f64 = best.iter().flatten().sum();
    let missed = best.iter().filter(|b| b.is_none()).count();
    tp + fp - missed as f64 * profile.fn_weight
}

fn counts(file: &ScoredFile, threshold: f64, profiles: &[CostProfile]) -> Counts {
    let mut c = Counts {
        rows: file.scores.len(),
        ..Counts::default()
    };
    let mut onsets = Vec::new();
    let mut was = false;
    for (i, (&s, &l)) in file.scores.iter().zip(&file.labels).enumerate() {
        let alarmed = s >= threshold;
        c.anomalous += usize::from(l);
        c.tp += usize::from(alarmed && l);
        c.fp += usize::from(alarmed && !l);
        if alarmed && !was {
            onsets.push(i);
            c.false_alarms += usize::from(!l);
        }
        was = alarmed;
    }
    c.alarms = onsets.len();
    let windows = events(&file.labels);
    c.events = windows.len();
    for &(s, e) in &windows {
        match (s..=e).find(|&i| file.scores[i] >= threshold) {
            Some(first) => {
                let ms = file.timestamps[e].0 - file.timestamps[first].0;
                c.leads_h.push(ms as f64 / 3_600_000.0);
            }
            None => c.missed += 1,
        }
    }
    c.nab = profiles
        .iter()
        .map(|p| {
            let null = -p.fn_weight * windows.len() as f64;
            let perfect = p.tp_weight * windows.len() as f64;
            (nab_style_raw(&windows, &onsets, p), null, perfect)
        })
        .collect();
    c
}

/// One file's line in the report.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub file: String,
    pub rows: usize,
    pub train_rows: usize,
    pub train_labelled: usize,
    pub skipped: Option<String>,
    pub metrics: Option<Metrics>,
}

/// The best threshold on the scored labels themselves: an upper bound, not a result.
#[derive(Debug, Clone, Serialize)]
pub struct Oracle {
    /// Threshold of the best F1, and the metrics there.
    pub f1_threshold: f64,
    pub f1: Option<f64>,
    /// Per profile: the threshold of the best NAB-style score, and that score.
    pub nab: Vec<(String, f64, Option<f64>)>,
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub detector: String,
    pub train_share: f64,
    pub threshold: f64,
    pub files: Vec<FileReport>,
    pub overall: Metrics,
    pub oracle: Oracle,
}

/// Metrics at `threshold`, per file and over all scored files.
pub fn metrics_at(
    scored: &[ScoredFile],
    threshold: f64,
    profiles: &[CostProfile],
) -> (Vec<FileReport>, Metrics) {
    let mut total = Counts {
        nab: vec![(0.0, 0.0, 0.0); profiles.len()],
        ..Counts::default()
    };
    let mut files = Vec::with_capacity(scored.len());
    for f in scored {
        let metrics = f.skipped.is_none().then(|| {
            let c = counts(f, threshold, profiles);
            total.add(&c);
            c.metrics(profiles)
        });
        files.push(FileReport {
            file: f.name.clone(),
            rows: f.rows,
            train_rows: f.train_rows,
            train_labelled: f.train_labelled,
            skipped: f.skipped.clone(),
            metrics,
        });
    }
    (files, total.metrics(profiles))
}

/// Thresholds the oracle tries: every hundredth in [0, 1], 200 quantiles of the scores, and
/// the threshold reported at (so the oracle is never below it).
fn candidate_thresholds(scored: &[ScoredFile], also: f64) -> Vec<f64> {
    let mut all: Vec<f64> = scored
        .iter()
        .flat_map(|f| f.scores.iter().copied())
        .collect();
    all.sort_by(f64::total_cmp);
    let mut c: Vec<f64> = (1..=100).map(|i| f64::from(i) / 100.0).collect();
    c.push(also);
    if !all.is_empty() {
        for j in 0..200 {
            c.push(all[(j * (all.len() - 1)) / 199]);
        }
    }
    c.retain(|x| x.is_finite() && *x > 0.0);
    c.sort_by(f64::total_cmp);
    c.dedup();
    c
}

fn oracle(scored: &[ScoredFile], threshold: f64, profiles: &[CostProfile]) -> Oracle {
    let mut best_f1 = (f64::NAN, None::<f64>);
    let mut best_nab: Vec<(String, f64, Option<f64>)> = profiles
        .iter()
        .map(|p| (p.name.clone(), f64::NAN, None))
        .collect();
    for t in candidate_thresholds(scored, threshold) {
        let (_, m) = metrics_at(scored, t, profiles);
        if m.f1.is_some_and(|f| best_f1.1.is_none_or(|b| f > b)) {
            best_f1 = (t, m.f1);
        }
        for (b, n) in best_nab.iter_mut().zip(&m.nab) {
            if n.normalised.is_some_and(|v| b.2.is_none_or(|x| v > x)) {
                b.1 = t;
                b.2 = n.normalised;
            }
        }
    }
    Oracle {
        f1_threshold: best_f1.0,
        f1: best_f1.1,
        nab: best_nab,
    }
}

/// Scores every file and reports at the detector's alarm level (or `options.threshold`), with
/// the oracle apart.
pub fn evaluate(
    files: &[LabelledSeries],
    detector: &Detector,
    options: &EvalOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<EvalReport, AnomalyEvalError> {
    let scored = score_files(files, detector, options.train_share, progress)?;
    Ok(report(&scored, detector, options))
}

/// The report of already scored files.
pub fn report(scored: &[ScoredFile], detector: &Detector, options: &EvalOptions) -> EvalReport {
    let threshold = options.threshold.unwrap_or_else(|| detector.alarm_level());
    let (files, overall) = metrics_at(scored, threshold, &options.profiles);
    EvalReport {
        detector: detector.name().to_owned(),
        train_share: options.train_share,
        threshold,
        files,
        overall,
        oracle: oracle(scored, threshold, &options.profiles),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LabelledSeries, ParseError> {
        parse_labelled_csv("m.csv", text.as_bytes())
    }

    fn located(text: &str) -> (usize, Option<usize>, String) {
        let e = parse(text).unwrap_err();
        (e.line, e.column.map(|c| c.0), e.message)
    }

    #[test]
    fn a_well_formed_file_reads_in_either_layout() {
        let comma = "timestamp,vib,current_a,anomaly\n\
                     2024-03-01T08:00:00Z,1.5,20,0\n\
                     2024-03-01T08:01:00Z,1.6,21,1\n\n";
        let s = parse(comma).unwrap();
        assert_eq!(s.signals, vec!["vib", "current_a"]);
        assert_eq!(s.values, vec![1.5, 20.0, 1.6, 21.0]);
        assert_eq!(s.labels, vec![false, true]);
        assert_eq!(s.timestamps[1].0 - s.timestamps[0].0, 60_000);
        assert_eq!(s.row(1), &[1.6, 21.0]);
        // Semicolons, a decimal comma, the label first, the time column by name, CRLF, quotes.
        let semi = "\u{feff}\"anomaly\";value;Time\r\n0;1,25;1700000000\r\n1;2;1700000060.5\r\n";
        let s = parse(semi).unwrap();
        assert_eq!(s.signals, vec!["value"]);
        assert_eq!(s.values, vec![1.25, 2.0]);
        assert_eq!(s.timestamps[0], Timestamp(1_700_000_000_000));
        assert_eq!(s.timestamps[1], Timestamp(1_700_000_060_500));
        // Millisecond epochs are told apart by their size.
        let s = parse("ts,x,anomaly\n1700000000000,1,0\n1700000001000,1,0\n").unwrap();
        assert_eq!(s.timestamps[1], Timestamp(1_700_000_001_000));
    }

    #[test]
    fn iso_times_with_offsets_and_fractions() {
        let t = |s: &str| parse_iso8601(s).map(|t| t.0);
        let base = t("2024-03-01T08:00:00Z").unwrap();
        assert_eq!(t("2024-03-01 08:00:00"), Some(base));
        assert_eq!(t("2024-03-01T08:00"), Some(base));
        assert_eq!(t("2024-03-01T09:00:00+01:00"), Some(base));
        assert_eq!(t("2024-03-01T03:30:00-0430"), Some(base));
        assert_eq!(t("2024-03-01T10:00:00+02"), Some(base));
        assert_eq!(t("2024-03-01T08:00:00.250Z"), Some(base + 250));
        assert_eq!(t("2024-03-01T08:00:00.5"), Some(base + 500));
        assert_eq!(t("2024-03-01"), Some(base - 8 * 3_600_000));
        assert_eq!(t("2024-02-29"), t("2024-03-01").map(|x| x - 86_400_000));
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-03-01T25:00",
            "2024-03-01T08:00:00+1",
            "2024-03-01T08:00:00.Z",
            "2024-03-01X08:00",
            "2024/03/01",
            "yesterday",
            "2024-03-01T08:00:00Zjunk",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_malformed_file_names_line_and_column() {
        assert_eq!(located("").0, 1);
        assert!(located("").2.contains("empty"));
        assert!(located("   \n1,2\n").2.contains("empty"));
        let (line, col, msg) = located("timestamp,a,b\n2024-03-01,1,2\n");
        assert_eq!((line, col), (1, None));
        assert!(msg.contains("no `anomaly` label column"), "{msg}");
        let (line, col, msg) = located("timestamp,anomaly\n2024-03-01,1\n");
        assert_eq!((line, col), (1, None));
        assert!(msg.contains("no signal column"), "{msg}");
        let (_, col, msg) = located("timestamp,a,A,anomaly\n");
        assert_eq!(col, Some(3));
        assert!(msg.contains("repeats column 2"), "{msg}");
        assert!(
            located("timestamp,,anomaly\n")
                .2
                .contains("column 2 has no name")
        );
        assert!(
            located("anomaly,a\n0,1\n")
                .2
                .contains("no timestamp column")
        );
        assert_eq!(
            located("timestamp,a,anomaly\n"),
            (2, None, "the header has no rows after it".into())
        );
        let head = "timestamp,a,b,anomaly\n2024-03-01T08:00:00,1,2,0\n";
        let (line, col, msg) = located(&format!("{head}2024-03-01T08:01:00,1,x,0\n"));
        assert_eq!((line, col), (3, Some(3)));
        assert!(msg.contains("\"x\" is not a number"), "{msg}");
        let (line, col, msg) = located(&format!("{head}2024-03-01T08:01:00,1,,0\n"));
        assert_eq!((line, col), (3, Some(3)));
        assert!(msg.contains("empty"), "{msg}");
        let (_, col, msg) = located(&format!("{head}2024-03-01T08:01:00,inf,1,0\n"));
        assert_eq!(col, Some(2));
        assert!(msg.contains("not a finite number"), "{msg}");
        let (line, col, msg) = located(&format!("{head}2024-03-01T08:01:00,1,2,2\n"));
        assert_eq!((line, col), (3, Some(4)));
        assert!(msg.contains("label must be 0 or 1"), "{msg}");
        let (line, col, msg) = located(&format!("{head}2024-03-01T07:59:00,1,2,0\n"));
        assert_eq!((line, col), (3, Some(1)));
        assert!(msg.contains("earlier than line 2"), "{msg}");
        let (line, _, msg) = located(&format!("{head}2024-03-01T08:00:00,1,2,0\n"));
        assert_eq!(line, 3);
        assert!(msg.contains("repeats the timestamp of line 2"), "{msg}");
        let (line, col, msg) = located(&format!("{head}\n2024-03-01T08:01:00,1,2\n"));
        assert_eq!((line, col), (4, None));
        assert!(msg.contains("3 cells, but the header has 4"), "{msg}");
        let (line, col, msg) = located(&format!("{head}1709280060,1,2,0\n"));
        assert_eq!((line, col), (3, Some(1)));
        assert!(msg.contains("ISO-8601"), "{msg}");
        let (_, _, msg) = located("ts,a,anomaly\n1,1,0\n2024-03-01,1,0\n");
        assert!(msg.contains("epoch"), "{msg}");
        let bytes = b"timestamp,a,anomaly\n1,\xff,0\n";
        let e = parse_labelled_csv("m.csv", bytes).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("UTF-8"), "{e}");
        let shown = parse(&format!("{head}2024-03-01T08:01:00,1,x,0\n"))
            .unwrap_err()
            .to_string();
        assert_eq!(shown, "line 3, column 3 (b): \"x\" is not a number");
    }

    #[test]
    fn a_folder_reads_its_csv_files_in_order_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_folder(dir.path()).unwrap_err();
        assert!(e.to_string().contains("no .csv file"), "{e}");
        let e = read_folder(&dir.path().join("absent")).unwrap_err();
        assert!(matches!(e, AnomalyEvalError::Io { .. }));
        std::fs::write(dir.path().join("b.csv"), "t,x,anomaly\n1,1,0\n").unwrap();
        std::fs::write(dir.path().join("a.CSV"), "t,x,anomaly\n1,2,0\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not data").unwrap();
        let files = read_folder(dir.path()).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["a.CSV", "b.csv"]);
        std::fs::write(dir.path().join("c.csv"), "t,x,anomaly\n1,1,7\n").unwrap();
        let e = read_folder(dir.path()).unwrap_err().to_string();
        assert!(e.contains("c.csv: line 2, column 3 (anomaly)"), "{e}");
    }

    #[test]
    fn the_training_prefix_never_cuts_a_labelled_run() {
        let mut labels = vec![false; 100];
        assert_eq!(training_rows(&labels, 0.3), 30);
        labels[20] = true;
        assert_eq!(training_rows(&labels, 0.3), 30);
        for l in &mut labels[25..40] {
            *l = true;
        }
        assert_eq!(training_rows(&labels, 0.3), 40);
        // A run that starts right at the end is not cut: it is scored whole.
        assert_eq!(training_rows(&labels, 0.25), 25);
        assert_eq!(training_rows(&[true; 10], 0.5), 10);
    }

    #[test]
    fn events_and_nab_style_scores() {
        let labels = [false, true, true, false, false, true, false];
        assert_eq!(events(&labels), vec![(1, 2), (5, 5)]);
        assert_eq!(events(&[true, true]), vec![(0, 1)]);
        let p = &CostProfile::nab_defaults()[0];
        let w = [(100, 149), (300, 349)];
        // Perfect: each window's first row. Null: nothing.
        assert!((nab_style_raw(&w, &[100, 300], p) - 2.0).abs() < 1e-12);
        assert_eq!(nab_style_raw(&w, &[], p), -2.0);
        // A false alarm before any window costs fp_weight; one just after a window is nearly
        // free; late in a window earns less than early.
        assert!((nab_style_raw(&w, &[10, 100, 300], p) - (2.0 - 0.11)).abs() < 1e-12);
        let after = nab_style_raw(&w, &[100, 151, 300], p);
        assert!(after < 2.0 && after > 2.0 - 0.11 / 5.0, "{after}");
        let late = nab_style_raw(&w, &[140, 300], p);
        assert!(late > 0.0 && late < 2.0 - 0.5, "{late}");
    }

    fn scored(labels: &[bool], scores: &[f64]) -> ScoredFile {
        ScoredFile {
            name: "m.csv".into(),
            rows: labels.len(),
            train_rows: 0,
            train_labelled: 0,
            skipped: None,
            timestamps: (0..labels.len() as i64)
                .map(|i| Timestamp(i * 3_600_000))
                .collect(),
            labels: labels.to_vec(),
            scores: scores.to_vec(),
        }
    }

    #[test]
    fn metrics_count_rows_events_and_alarms() {
        let mut labels = vec![false; 20];
        for l in &mut labels[10..15] {
            *l = true;
        }
        let mut scores = vec![0.0; 20];
        scores[3] = 0.9; // a false alarm
        scores[12] = 0.9; // caught, 2 h before the event's last row
        scores[13] = 0.9;
        let profiles = CostProfile::nab_defaults();
        let (files, m) = metrics_at(&[scored(&labels, &scores)], 0.5, &profiles);
        assert_eq!(files.len(), 1);
        assert_eq!(
            (m.true_positives, m.false_positives, m.false_negatives),
            (2, 1, 3)
        );
        assert_eq!(m.precision, Some(2.0 / 3.0));
        assert_eq!(m.recall, Some(0.4));
        assert_eq!(m.false_alarm_rate, Some(1.0 / 15.0));
        assert_eq!(
            (m.events, m.events_missed, m.alarms, m.false_alarms),
            (1, 0, 2, 1)
        );
        assert_eq!(m.median_lead_h, Some(2.0));
        let standard = &m.nab[0];
        assert_eq!((standard.null_raw, standard.perfect_raw), (-1.0, 1.0));
        let n = standard.normalised.unwrap();
        assert!(n > 0.0 && n < 100.0, "{n}");
        // Nothing alarmed: every event missed, no precision.
        let (_, m) = metrics_at(&[scored(&labels, &[0.0; 20])], 0.5, &profiles);
        assert_eq!(
            (m.events_missed, m.precision, m.recall),
            (1, None, Some(0.0))
        );
        assert_eq!(m.missed_alarm_rate, Some(1.0));
        assert_eq!(m.nab[0].normalised, Some(0.0));
        // The oracle finds the threshold that keeps the catch and drops the false alarm.
        scores[3] = 0.6;
        let r = report(
            &[scored(&labels, &scores)],
            &Detector::Multivariate(MultivariateConfig::default()),
            &EvalOptions {
                threshold: Some(0.5),
                ..EvalOptions::default()
            },
        );
        assert!(r.oracle.f1_threshold > 0.6 && r.oracle.f1_threshold <= 0.9);
        assert_eq!(r.threshold, 0.5);
    }

    #[test]
    fn short_prefixes_are_skipped_and_bad_shares_refused() {
        let mut text = String::from("timestamp,a,b,anomaly\n");
        for i in 0..1000 {
            let label = u8::from((100..250).contains(&i));
            text.push_str(&format!(
                "{},{},{},{label}\n",
                1_700_000_000 + i * 60,
                i % 7,
                i % 5
            ));
        }
        let s = parse(&text).unwrap();
        let d = Detector::Multivariate(MultivariateConfig::default());
        let out = score_files(std::slice::from_ref(&s), &d, 0.2, &mut |_| {}).unwrap();
        assert_eq!((out[0].train_rows, out[0].train_labelled), (250, 150));
        let why = out[0].skipped.as_deref().unwrap_or("");
        assert!(why.contains("100 healthy rows"), "{why}");
        assert!(matches!(
            score_files(&[s], &d, 1.0, &mut |_| {}),
            Err(AnomalyEvalError::TrainShare(_))
        ));
    }

    #[test]
    fn a_detector_scores_only_the_rows_after_training() {
        let mut text = String::from("timestamp,a,b,anomaly\n");
        for i in 0..2000 {
            let (a, mut b) = (
                (i % 13) as f64,
                (i % 13) as f64 * 2.0 + (i % 3) as f64 * 0.1,
            );
            let label = (1500..1600).contains(&i);
            if label {
                b = 30.0 - b;
            }
            text.push_str(&format!("{},{a},{b},{}\n", i * 60, u8::from(label)));
        }
        let s = parse(&text).unwrap();
        let mut seen = Vec::new();
        for d in [
            Detector::Multivariate(MultivariateConfig::default()),
            Detector::Univariate(AnomalyConfig::default()),
        ] {
            let r = evaluate(
                std::slice::from_ref(&s),
                &d,
                &EvalOptions::default(),
                &mut |f| seen.push(f.to_owned()),
            )
            .unwrap();
            assert_eq!(r.files[0].train_rows, 600);
            let m = r.files[0].metrics.as_ref().unwrap();
            assert_eq!((m.scored_rows, m.anomalous_rows, m.events), (1400, 100, 1));
            assert_eq!(r.threshold, d.alarm_level());
        }
        assert_eq!(seen, vec!["m.csv", "m.csv"]);
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic_the_parser(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = parse_labelled_csv("x.csv", &bytes);
        }

        #[test]
        fn random_text_never_panics_the_parser(text in "[0-9a-zT:;,.+\\- \n\"]{0,300}") {
            let _ = parse_labelled_csv("x.csv", text.as_bytes());
            let with_header = format!("timestamp,a,anomaly\n{text}");
            let _ = parse_labelled_csv("x.csv", with_header.as_bytes());
        }
    }
}
