//! The Numenta Anomaly Benchmark (NAB v1.1): corpus loading and the official scoring.
//!
//! Scoring follows NAB's sweeper exactly: anomaly windows, the scaled sigmoid that rewards early
//! detection and forgives false positives just after a window, the probationary period
//! (`min(floor(15 % of rows), 750)`), one threshold per profile chosen over the whole corpus
//! (the best of all distinct anomaly scores, ties going to the higher threshold), and
//! normalisation between the null detector (0) and the perfect detector (100). The scores this
//! module computes for NAB's own simple detectors match its published table; see the tests.

use aifactory_core::time::{Timestamp, days_from_civil};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What can go wrong reading a NAB folder or scoring detections.
#[derive(Debug, thiserror::Error)]
pub enum NabError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Json { path: PathBuf, message: String },
    #[error("{series}: {message}")]
    Detections { series: String, message: String },
}

/// One NAB data file with its labelled anomaly windows.
#[derive(Debug, Clone)]
pub struct NabSeries {
    /// `"<category>/<file>.csv"`, the key NAB's label files use.
    pub key: String,
    pub timestamps: Vec<Timestamp>,
    pub values: Vec<f64>,
    /// Anomaly windows as inclusive row ranges, in time order.
    pub windows: Vec<(usize, usize)>,
}

impl NabSeries {
    /// NAB's probationary period: rows before it are never scored.
    pub fn probationary_rows(&self) -> usize {
        probationary_rows(self.values.len())
    }

    /// Whether row `i` lies inside a labelled window (NAB's `label` column).
    pub fn label(&self, i: usize) -> bool {
        self.windows.iter().any(|&(s, e)| s <= i && i <= e)
    }
}

/// `min(floor(0.15 · rows), 0.15 · 5000)`, as NAB's sweeper computes it.
pub fn probationary_rows(rows: usize) -> usize {
    ((0.15 * rows as f64).floor()).min(750.0) as usize
}

/// The NAB corpus: every data file that the window labels name.
#[derive(Debug, Clone)]
pub struct NabCorpus {
    pub series: Vec<NabSeries>,
    pub profiles: Vec<CostProfile>,
}

impl NabCorpus {
    pub fn points(&self) -> usize {
        self.series.iter().map(|s| s.values.len()).sum()
    }
    pub fn windows(&self) -> usize {
        self.series.iter().map(|s| s.windows.len()).sum()
    }
}

/// One application profile's weights (NAB's `config/profiles.json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CostProfile {
    pub name: String,
    pub tp_weight: f64,
    pub fp_weight: f64,
    pub fn_weight: f64,
}

impl CostProfile {
    /// NAB's three profiles, in the order NAB's scoreboard lists them.
    pub fn nab_defaults() -> Vec<CostProfile> {
        let p = |name: &str, fp: f64, fn_: f64| CostProfile {
            name: name.to_string(),
            tp_weight: 1.0,
            fp_weight: fp,
            fn_weight: fn_,
        };
        vec![
            p("standard", 0.11, 1.0),
            p("reward_low_FP_rate", 0.22, 1.0),
            p("reward_low_FN_rate", 0.11, 2.0),
        ]
    }
}

/// Loads `data/`, `labels/combined_windows.json` and (if present) `config/profiles.json` from a
/// NAB checkout or the copy in the shared data folder.
pub fn load_corpus(root: &Path) -> Result<NabCorpus, NabError> {
    let windows_path = root.join("labels").join("combined_windows.json");
    let windows: BTreeMap<String, Vec<(String, String)>> = read_json(&windows_path)?;
    let profiles_path = root.join("config").join("profiles.json");
    let profiles = if profiles_path.exists() {
        read_profiles(&profiles_path)?
    } else {
        CostProfile::nab_defaults()
    };
    let mut series = Vec::with_capacity(windows.len());
    for (key, limits) in &windows {
        let path = root.join("data").join(key);
        let (timestamps, values) = read_series_csv(&path)?;
        let mut rows = Vec::with_capacity(limits.len());
        for (start, end) in limits {
            let find = |text: &str| -> Result<usize, NabError> {
                let t = parse_timestamp(text).ok_or_else(|| NabError::Json {
                    path: windows_path.clone(),
                    message: format!("{key}: window limit {text:?} is not a timestamp"),
                })?;
                // NAB's own files repeat a few timestamps (clock changes); like NAB, a window
                // limit is the first row with that time.
                timestamps
                    .iter()
                    .position(|&x| x == t)
                    .ok_or_else(|| NabError::Json {
                        path: windows_path.clone(),
                        message: format!(
                            "{key}: window limit {text} is not a row of the data file"
                        ),
                    })
            };
            let (s, e) = (find(start)?, find(end)?);
            if e < s {
                return Err(NabError::Json {
                    path: windows_path.clone(),
                    message: format!("{key}: window {start} .. {end} ends before it starts"),
                });
            }
            rows.push((s, e));
        }
        rows.sort_unstable();
        series.push(NabSeries {
            key: key.clone(),
            timestamps,
            values,
            windows: rows,
        });
    }
    Ok(NabCorpus { series, profiles })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, NabError> {
    let text = std::fs::read_to_string(path).map_err(|source| NabError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| NabError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn read_profiles(path: &Path) -> Result<Vec<CostProfile>, NabError> {
    #[derive(serde::Deserialize)]
    struct Matrix {
        #[serde(rename = "tpWeight")]
        tp: f64,
        #[serde(rename = "fpWeight")]
        fp: f64,
        #[serde(rename = "fnWeight")]
        fn_: f64,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(rename = "CostMatrix")]
        cost_matrix: Matrix,
    }
    let raw: BTreeMap<String, Entry> = read_json(path)?;
    let mut profiles: Vec<CostProfile> = raw
        .into_iter()
        .map(|(name, e)| CostProfile {
            name,
            tp_weight: e.cost_matrix.tp,
            fp_weight: e.cost_matrix.fp,
            fn_weight: e.cost_matrix.fn_,
        })
        .collect();
    // Keep the scoreboard order: standard first, then the low-FP and low-FN profiles.
    let rank = |n: &str| match n {
        "standard" => 0,
        "reward_low_FP_rate" => 1,
        "reward_low_FN_rate" => 2,
        _ => 3,
    };
    profiles.sort_by_key(|p| rank(&p.name));
    Ok(profiles)
}

/// Reads one `timestamp,value` file.
pub fn read_series_csv(path: &Path) -> Result<(Vec<Timestamp>, Vec<f64>), NabError> {
    let text = std::fs::read_to_string(path).map_err(|source| NabError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_series_csv(&text).map_err(|(line, message)| NabError::Parse {
        path: path.to_path_buf(),
        line,
        message,
    })
}

/// Parses `timestamp,value` text; errors carry the 1-based line and what is wrong.
pub fn parse_series_csv(text: &str) -> Result<(Vec<Timestamp>, Vec<f64>), (usize, String)> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim().starts_with("timestamp") => {}
        Some((_, header)) => {
            return Err((
                1,
                format!("expected the header `timestamp,value`, found {header:?}"),
            ));
        }
        None => return Err((1, "the file is empty".to_string())),
    }
    let (mut stamps, mut values) = (Vec::new(), Vec::new());
    for (i, line) in lines {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut cols = line.split(',');
        let (Some(ts), Some(v)) = (cols.next(), cols.next()) else {
            return Err((
                line_no,
                format!("expected `timestamp,value`, found {line:?}"),
            ));
        };
        let t = parse_timestamp(ts.trim()).ok_or_else(|| {
            (
                line_no,
                format!("timestamp: {ts:?} is not YYYY-MM-DD HH:MM:SS"),
            )
        })?;
        let x: f64 = v
            .trim()
            .parse()
            .map_err(|_| (line_no, format!("value: {v:?} is not a number")))?;
        if !x.is_finite() {
            return Err((line_no, format!("value: {v:?} is not finite")));
        }
        stamps.push(t);
        values.push(x);
    }
    if values.is_empty() {
        return Err((2, "the file has a header but no rows".to_string()));
    }
    Ok((stamps, values))
}

/// `YYYY-MM-DD HH:MM:SS` with optional fractional seconds, read as UTC.
pub fn parse_timestamp(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b' ' || b[10] == b'T') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> { text.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let frac_ms = match text.get(19..) {
        None | Some("") => 0,
        Some(rest) => {
            let digits = rest.strip_prefix('.')?;
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let padded = format!("{digits:0<3}");
            padded[..3].parse::<i64>().ok()?
        }
    };
    let days = days_from_civil(y as i32, mo, d);
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
    Some(Timestamp(secs * 1000 + frac_ms))
}

/// NAB's timestamp text, `YYYY-MM-DD HH:MM:SS`.
pub fn format_timestamp(t: Timestamp) -> String {
    let secs = t.0.div_euclid(1000);
    let (y, m, d) = aifactory_core::time::civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// NAB's scaled sigmoid of a relative position: about +0.987 at a window's left edge, 0 at its
/// right edge, falling towards -1 for false positives far behind it.
pub fn scaled_sigmoid(relative_position: f64) -> f64 {
    if relative_position > 3.0 {
        -1.0
    } else {
        2.0 * sigmoid(-5.0 * relative_position) - 1.0
    }
}

/// NAB's weight of one detection at row `row` (`calcSweepScore`): inside the labelled window
/// `inside` (first and last row) the true-positive weight by its position, scaled so the
/// window's left edge earns `tp_weight`; outside any window the false-positive weight by its
/// distance after the window before it (`previous`), −`fp_weight` when there is none.
pub fn detection_weight(
    row: usize,
    inside: Option<(usize, usize)>,
    previous: Option<(usize, usize)>,
    profile: &CostProfile,
) -> f64 {
    match inside {
        Some((start, end)) => {
            let width = (end - start + 1) as f64;
            let position = -((end as f64 - row as f64 + 1.0) / width);
            scaled_sigmoid(position) * profile.tp_weight / scaled_sigmoid(-1.0)
        }
        None => {
            let unweighted = match previous {
                None => -1.0,
                Some((start, end)) => {
                    let width = (end - start + 1) as f64;
                    scaled_sigmoid((row - end) as f64 / (width - 1.0))
                }
            };
            unweighted * profile.fp_weight
        }
    }
}

/// A profile's result: the corpus-wide threshold and the raw and normalised scores at it.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileScore {
    pub profile: String,
    pub threshold: f64,
    pub raw: f64,
    /// 0 = the null detector, 100 = the perfect detector.
    pub normalised: f64,
    pub null_raw: f64,
    pub perfect_raw: f64,
    /// Detected rows inside windows and outside them, at the threshold.
    pub tp_rows: usize,
    pub fp_rows: usize,
    /// Windows with at least one detection, and without.
    pub windows_detected: usize,
    pub windows_missed: usize,
}

/// One scorable row: its anomaly score, its weighted sweep score and its window.
#[derive(Debug, Clone, Copy)]
struct ScoredRow {
    anomaly: f64,
    sweep: f64,
    window: Option<u32>,
}

/// Scores a detector's anomaly scores (one vector per series, in corpus order) under one
/// profile: NAB's threshold sweep over the whole corpus, then normalisation.
pub fn score_corpus(
    corpus: &NabCorpus,
    scores: &[Vec<f64>],
    profile: &CostProfile,
) -> Result<ProfileScore, NabError> {
    if scores.len() != corpus.series.len() {
        return Err(NabError::Detections {
            series: "corpus".into(),
            message: format!(
                "{} score vectors for {} series",
                scores.len(),
                corpus.series.len()
            ),
        });
    }
    let mut rows = Vec::with_capacity(corpus.points());
    let mut window_base = 0u32;
    for (series, s) in corpus.series.iter().zip(scores) {
        if s.len() != series.values.len() {
            return Err(NabError::Detections {
                series: series.key.clone(),
                message: format!("{} scores for {} rows", s.len(), series.values.len()),
            });
        }
        if let Some(i) = s.iter().position(|x| !x.is_finite()) {
            return Err(NabError::Detections {
                series: series.key.clone(),
                message: format!("row {i}: the anomaly score {} is not finite", s[i]),
            });
        }
        sweep_rows(series, s, profile, window_base, &mut rows);
        window_base += series.windows.len() as u32;
    }
    let total_windows = window_base as usize;
    Ok(best_threshold(&mut rows, total_windows, profile))
}

/// NAB's `calcSweepScore` for one series: each scorable row's weighted score if it were a
/// detection.
fn sweep_rows(
    series: &NabSeries,
    scores: &[f64],
    profile: &CostProfile,
    window_base: u32,
    out: &mut Vec<ScoredRow>,
) {
    let probation = series.probationary_rows();
    let mut next_window = 0usize;
    let mut current: Option<usize> = None;
    let mut previous: Option<(usize, usize)> = None;
    for (i, &anomaly) in scores.iter().enumerate() {
        if current.is_none()
            && let Some(&(s, _)) = series.windows.get(next_window)
            && s == i
        {
            current = Some(next_window);
            next_window += 1;
        }
        let inside = current.map(|w| series.windows[w]);
        let sweep = detection_weight(i, inside, previous, profile);
        if i >= probation {
            out.push(ScoredRow {
                anomaly,
                sweep,
                window: current.map(|w| window_base + w as u32),
            });
        }
        if let Some((_, end)) = inside
            && i == end
        {
            previous = inside;
            current = None;
        }
    }
}

/// NAB's `calcScoreByThreshold` over the corpus and the optimiser's pick of the best row.
fn best_threshold(
    rows: &mut [ScoredRow],
    total_windows: usize,
    profile: &CostProfile,
) -> ProfileScore {
    rows.sort_by(|a, b| b.anomaly.total_cmp(&a.anomaly));
    // Each window with scorable rows starts as a false negative.
    let mut window_best: Vec<Option<f64>> = vec![None; total_windows];
    for r in rows.iter() {
        if let Some(w) = r.window {
            window_best[w as usize] = Some(-profile.fn_weight);
        }
    }
    let scored_windows = window_best.iter().filter(|w| w.is_some()).count();
    let null_raw = -profile.fn_weight * scored_windows as f64;
    let mut total = null_raw;
    let mut detected = vec![false; total_windows];
    let (mut tp_rows, mut fp_rows, mut windows_detected) = (0usize, 0usize, 0usize);
    let mut best = (1.1_f64, total, 0usize, 0usize, 0usize);
    let mut threshold = 1.1_f64;
    for r in rows.iter() {
        if r.anomaly != threshold {
            // The running total now holds every row scoring at least `threshold`.
            if total > best.1 {
                best = (threshold, total, tp_rows, fp_rows, windows_detected);
            }
            threshold = r.anomaly;
        }
        match r.window {
            None => {
                fp_rows += 1;
                total += r.sweep;
            }
            Some(w) => {
                tp_rows += 1;
                let w = w as usize;
                if !detected[w] {
                    detected[w] = true;
                    windows_detected += 1;
                }
                let old = window_best[w].unwrap_or(-profile.fn_weight);
                if r.sweep > old {
                    window_best[w] = Some(r.sweep);
                    total += r.sweep - old;
                }
            }
        }
    }
    if total > best.1 {
        best = (threshold, total, tp_rows, fp_rows, windows_detected);
    }
    let perfect_raw = total_windows as f64 * profile.tp_weight;
    ProfileScore {
        profile: profile.name.clone(),
        threshold: best.0,
        raw: best.1,
        normalised: 100.0 * (best.1 - null_raw) / (perfect_raw - null_raw),
        null_raw,
        perfect_raw,
        tp_rows: best.2,
        fp_rows: best.3,
        windows_detected: best.4,
        windows_missed: scored_windows - best.4,
    }
}

/// One series' share of a corpus score at a given threshold.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesScore {
    pub series: String,
    pub raw: f64,
    pub windows: usize,
    pub windows_detected: usize,
    pub fp_rows: usize,
}

/// Scores each series at `threshold` (detections are scores at or above it): where a corpus
/// score comes from.
pub fn score_series_at(
    corpus: &NabCorpus,
    scores: &[Vec<f64>],
    profile: &CostProfile,
    threshold: f64,
) -> Vec<SeriesScore> {
    let mut out = Vec::with_capacity(corpus.series.len());
    for (series, s) in corpus.series.iter().zip(scores) {
        let mut rows = Vec::new();
        sweep_rows(series, s, profile, 0, &mut rows);
        let mut best: Vec<Option<f64>> = vec![None; series.windows.len()];
        let mut fp = 0.0;
        let mut fp_rows = 0;
        for r in rows.iter().filter(|r| r.anomaly >= threshold) {
            match r.window {
                None => {
                    fp += r.sweep;
                    fp_rows += 1;
                }
                Some(w) => {
                    let b = &mut best[w as usize];
                    *b = Some(b.map_or(r.sweep, |v: f64| v.max(r.sweep)));
                }
            }
        }
        let scored: std::collections::HashSet<u32> = rows.iter().filter_map(|r| r.window).collect();
        let tp: f64 = best.iter().flatten().sum();
        let detected = best.iter().filter(|b| b.is_some()).count();
        let missed = scored.len() - detected;
        out.push(SeriesScore {
            series: series.key.clone(),
            raw: tp + fp - missed as f64 * profile.fn_weight,
            windows: series.windows.len(),
            windows_detected: detected,
            fp_rows,
        });
    }
    out
}

/// Writes one series' detections in NAB's results layout:
/// `<dir>/<detector>/<category>/<detector>_<file>.csv` with `timestamp,value,anomaly_score,label`.
pub fn write_results(
    dir: &Path,
    detector: &str,
    series: &NabSeries,
    scores: &[f64],
) -> Result<PathBuf, NabError> {
    let (category, file) = series.key.rsplit_once('/').unwrap_or(("", &series.key));
    let folder = dir.join(detector).join(category);
    std::fs::create_dir_all(&folder).map_err(|source| NabError::Io {
        path: folder.clone(),
        source,
    })?;
    let path = folder.join(format!("{detector}_{file}"));
    let mut text = String::with_capacity(series.values.len() * 48);
    text.push_str("timestamp,value,anomaly_score,label\n");
    let mut next_window = 0usize;
    for (i, ((t, v), s)) in series
        .timestamps
        .iter()
        .zip(&series.values)
        .zip(scores)
        .enumerate()
    {
        while series.windows.get(next_window).is_some_and(|&(_, e)| e < i) {
            next_window += 1;
        }
        let label = series
            .windows
            .get(next_window)
            .is_some_and(|&(s, e)| s <= i && i <= e);
        let _ = writeln!(text, "{},{v},{s},{}", format_timestamp(*t), u8::from(label));
    }
    std::fs::write(&path, text).map_err(|source| NabError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Runs a fresh detector over every series of the corpus, in corpus order.
pub fn detect_corpus<D: crate::anomaly::StreamingDetector>(
    corpus: &NabCorpus,
    make: impl Fn() -> D,
) -> Vec<Vec<f64>> {
    corpus
        .series
        .iter()
        .map(|s| crate::anomaly::score_series(make(), &s.timestamps, &s.values))
        .collect()
}

/// Scores detections under every profile of the corpus.
pub fn score_profiles(
    corpus: &NabCorpus,
    scores: &[Vec<f64>],
) -> Result<Vec<ProfileScore>, NabError> {
    corpus
        .profiles
        .iter()
        .map(|p| score_corpus(corpus, scores, p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize, windows: Vec<(usize, usize)>) -> NabSeries {
        NabSeries {
            key: "test/s.csv".into(),
            timestamps: (0..n as i64).map(|i| Timestamp(i * 300_000)).collect(),
            values: vec![0.0; n],
            windows,
        }
    }

    #[test]
    fn scaled_sigmoid_matches_nab_anchor_points() {
        assert!((scaled_sigmoid(-1.0) - 0.986_614).abs() < 1e-6);
        assert!((scaled_sigmoid(-0.5) - 0.848_283).abs() < 1e-6);
        assert!(scaled_sigmoid(0.0).abs() < 1e-12);
        assert!((scaled_sigmoid(1.0) + 0.986_614).abs() < 1e-6);
        assert_eq!(scaled_sigmoid(3.5), -1.0);
    }

    #[test]
    fn null_and_perfect_detectors_score_0_and_100() {
        let corpus = NabCorpus {
            series: vec![
                series(1000, vec![(300, 349), (700, 749)]),
                series(200, vec![]),
            ],
            profiles: CostProfile::nab_defaults(),
        };
        let null: Vec<Vec<f64>> = corpus
            .series
            .iter()
            .map(|s| vec![0.0; s.values.len()])
            .collect();
        let mut perfect = null.clone();
        for (s, p) in corpus.series.iter().zip(perfect.iter_mut()) {
            for &(start, _) in &s.windows {
                p[start] = 1.0;
            }
        }
        for profile in &corpus.profiles {
            let n = score_corpus(&corpus, &null, profile).unwrap();
            assert_eq!(n.normalised, 0.0, "{profile:?}");
            assert_eq!(n.raw, -2.0 * profile.fn_weight);
            let p = score_corpus(&corpus, &perfect, profile).unwrap();
            assert!((p.normalised - 100.0).abs() < 1e-9, "{p:?}");
            assert_eq!(p.windows_detected, 2);
        }
    }

    #[test]
    fn late_detection_and_false_positives_cost_what_nab_says() {
        let corpus = NabCorpus {
            series: vec![series(1000, vec![(300, 349)])],
            profiles: CostProfile::nab_defaults(),
        };
        let standard = &corpus.profiles[0];
        // A detection in the middle of the window and one false positive long before it.
        let mut s = vec![0.0; 1000];
        s[325] = 0.9;
        s[200] = 0.9;
        let r = score_corpus(&corpus, &[s], standard).unwrap();
        let tp = scaled_sigmoid(-((349.0 - 325.0 + 1.0) / 50.0)) / scaled_sigmoid(-1.0);
        assert!((r.raw - (tp - 0.11)).abs() < 1e-12, "{r:?}");
        assert_eq!(r.threshold, 0.9);
        assert_eq!((r.tp_rows, r.fp_rows), (1, 1));
        // A false positive right after the window is almost free.
        let mut s = vec![0.0; 1000];
        s[300] = 0.9;
        s[351] = 0.9;
        let r = score_corpus(&corpus, &[s], standard).unwrap();
        let after = scaled_sigmoid(2.0 / 49.0) * 0.11;
        assert!((r.raw - (1.0 + after)).abs() < 1e-12, "{r:?}");
    }

    #[test]
    fn the_threshold_sweep_picks_the_best_threshold() {
        let corpus = NabCorpus {
            series: vec![series(1000, vec![(300, 349)])],
            profiles: CostProfile::nab_defaults(),
        };
        // A high score far from the window (FP) and a lower score early in the window: the
        // best threshold takes both (one TP outweighs one FP).
        let mut s = vec![0.0; 1000];
        s[600] = 0.8;
        s[301] = 0.7;
        let r = score_corpus(&corpus, &[s.clone()], &corpus.profiles[0]).unwrap();
        assert_eq!(r.threshold, 0.7);
        // Rows in the probationary period (the first 150 here) are never scored.
        s[10] = 0.99;
        let r2 = score_corpus(&corpus, &[s], &corpus.profiles[0]).unwrap();
        assert_eq!(r2.raw, r.raw);
    }

    #[test]
    fn bad_detections_are_refused_with_the_series() {
        let corpus = NabCorpus {
            series: vec![series(10, vec![])],
            profiles: CostProfile::nab_defaults(),
        };
        let e = score_corpus(&corpus, &[vec![0.0; 9]], &corpus.profiles[0]).unwrap_err();
        assert!(e.to_string().contains("9 scores for 10 rows"), "{e}");
        let mut s = vec![0.0; 10];
        s[4] = f64::NAN;
        let e = score_corpus(&corpus, &[s], &corpus.profiles[0]).unwrap_err();
        assert!(e.to_string().contains("row 4"), "{e}");
    }

    #[test]
    fn csv_errors_name_the_line() {
        assert_eq!(parse_series_csv("").unwrap_err().0, 1);
        assert!(
            parse_series_csv("time,v\n")
                .unwrap_err()
                .1
                .contains("header")
        );
        let e = parse_series_csv("timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,x\n")
            .unwrap_err();
        assert_eq!(e.0, 3);
        assert!(e.1.contains("value"), "{e:?}");
        let e = parse_series_csv("timestamp,value\n2014-13-01 00:00:00,1\n").unwrap_err();
        assert!(e.1.contains("timestamp"), "{e:?}");
        let (t, v) =
            parse_series_csv("timestamp,value\n2014-01-01 00:00:00,1.5\n2014-01-01 00:05:00,2\n")
                .unwrap();
        assert_eq!(v, vec![1.5, 2.0]);
        assert_eq!(t[1].0 - t[0].0, 300_000);
        assert_eq!(format_timestamp(t[1]), "2014-01-01 00:05:00");
        assert_eq!(
            parse_timestamp("2014-04-10 07:15:00.000000"),
            parse_timestamp("2014-04-10 07:15:00")
        );
    }

    proptest::proptest! {
        #[test]
        fn csv_parser_never_panics(text in "\\PC{0,200}") {
            let _ = parse_series_csv(&text);
        }
    }
}
