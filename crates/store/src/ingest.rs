//! Ingested plant telemetry, laid out for throughput in two stages. A commit writes its numeric
//! samples as ONE staged row (series ids, timestamps and values, each a pco-compressed column),
//! however many series it touches: the cost of a commit does not grow with the plant's number of
//! signals. Once enough is staged (`COMPACT_SAMPLES` or `COMPACT_ROWS`), a commit also folds the
//! staged rows into per-series chunks — the samples of one series over many commits, compressed
//! as columns — and updates the minute and hour roll-ups and the latest values, in the same
//! transaction. Queries read chunks and roll-ups and merge in what is still staged, so every
//! committed sample is queryable at once.
//!
//! Exactly-once: each message that carries its own timestamps comes with a 128-bit key (a hash
//! of its topic and payload, computed by the caller). Keys are kept in `ingest_messages`, in the
//! same transaction as the samples, so a message redelivered after a crash is recognised and its
//! samples are not stored twice.

use crate::StoreError;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

/// Rows per multi-row INSERT on SQLite: a batch is a few statements, not one per row, and well
/// under SQLite's limit of 32766 parameters.
pub(crate) const ROWS_PER_INSERT: usize = 1000;

/// Ids of series already in the database. An id never changes once committed, so the cache
/// lives as long as the store; new ids join it only after their transaction has committed.
#[derive(Debug, Default)]
pub(crate) struct SeriesCache(Mutex<HashMap<SeriesName, i64>>);

impl SeriesCache {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<SeriesName, i64>> {
        // A panic elsewhere cannot leave a half-written entry: the map is still good.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fills in the ids it knows; returns the names still to look up or register.
    pub(crate) fn resolve<'a>(&self, batch: &mut BatchSeries<'a>) -> Vec<&'a SeriesName> {
        let map = self.map();
        let mut missing = Vec::new();
        for (name, id) in batch.ids.iter_mut() {
            match map.get(*name) {
                Some(&known) => *id = known,
                None => missing.push(*name),
            }
        }
        missing
    }

    pub(crate) fn remember(&self, committed: impl Iterator<Item = (SeriesName, i64)>) {
        self.map().extend(committed);
    }
}

/// The series a batch writes to, each once, with its id once resolved. A fast fixed-seed hash,
/// since a commit looks up every sample's series.
#[derive(Debug, Default)]
pub(crate) struct BatchSeries<'a> {
    ids: HashMap<&'a SeriesName, i64, foldhash::fast::FixedState>,
}

impl<'a> BatchSeries<'a> {
    /// Every series the fresh messages write to (ids still unknown).
    pub(crate) fn of(fresh: &[&'a IngestMessage]) -> BatchSeries<'a> {
        let mut batch = BatchSeries::default();
        for m in fresh {
            for s in &m.samples {
                batch.ids.entry(&s.series).or_insert(-1);
            }
            for o in &m.others {
                batch.ids.entry(&o.series).or_insert(-1);
            }
        }
        batch
    }

    pub(crate) fn set(&mut self, name: &'a SeriesName, id: i64) {
        self.ids.insert(name, id);
    }

    /// The id of a series of the batch; an error if it was never resolved (a bug, not input).
    pub(crate) fn id(&self, s: &SeriesName) -> Result<i64, StoreError> {
        self.ids
            .get(s)
            .copied()
            .filter(|&id| id >= 0)
            .ok_or_else(|| StoreError::Invalid {
                what: "ingested telemetry",
                detail: format!("no id for series {s:?}"),
            })
    }
}

/// The messages to store: those without a key, and the first with each key the database took
/// as new (`inserted`); the rest are redeliveries, counted in `report`.
pub(crate) fn fresh_messages<'a>(
    messages: &'a [IngestMessage],
    mut inserted: HashSet<Vec<u8>>,
    report: &mut IngestReport,
) -> Vec<&'a IngestMessage> {
    let mut fresh = Vec::with_capacity(messages.len());
    for m in messages {
        let new = match &m.key {
            None => true,
            Some(key) => inserted.remove(&key[..]),
        };
        if new {
            fresh.push(m);
        } else {
            report.duplicates += 1;
        }
    }
    fresh
}

/// One signal of one machine, named as it entered (see [`aifactory_core::SeriesName`]).
pub use aifactory_core::SeriesName;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub series: SeriesName,
    pub at_ms: i64,
    pub value: f64,
}

/// A sample that is not a number: a state as text, or raw bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum OtherValue {
    Text(String),
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OtherSample {
    pub series: SeriesName,
    pub at_ms: i64,
    pub value: OtherValue,
}

/// The samples of one MQTT message; `key` is `None` for messages without their own timestamps,
/// which cannot be told apart from a new message with the same content.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IngestMessage {
    pub key: Option<[u8; 16]>,
    pub samples: Vec<Sample>,
    pub others: Vec<OtherSample>,
}

/// A refused message, kept whole with its reason.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineRow {
    pub received_ms: i64,
    pub topic: String,
    /// Stable short name of the reason, e.g. `malformed_protobuf`.
    pub reason_kind: String,
    pub reason: String,
    pub payload: Vec<u8>,
}

/// What one commit takes: messages and quarantined messages, stored together or not at all.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IngestBatch {
    pub messages: Vec<IngestMessage>,
    pub quarantined: Vec<QuarantineRow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IngestReport {
    pub messages: u64,
    /// Messages whose key was already stored (redeliveries): their samples were dropped.
    pub duplicates: u64,
    pub samples: u64,
    /// Text and bytes samples.
    pub others: u64,
    pub chunks: u64,
    pub quarantined: u64,
}

/// The samples of one series, sorted by time, as two compressed columns, with what they add to
/// the series' roll-ups and its latest value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Chunk {
    pub(crate) first_ms: i64,
    pub(crate) last_ms: i64,
    pub(crate) count: i64,
    pub(crate) timestamps: Vec<u8>,
    pub(crate) values: Vec<u8>,
    /// One entry per (resolution, bucket) the samples fall in.
    pub(crate) rollups: Vec<Rollup>,
    /// The last sample by time (the last to arrive among equal times).
    pub(crate) latest: (i64, f64),
}

/// The widths of the roll-ups kept for dashboards: a minute and an hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resolution {
    Minute,
    Hour,
}

impl Resolution {
    pub const ALL: [Resolution; 2] = [Resolution::Minute, Resolution::Hour];

    pub fn width_ms(self) -> i64 {
        match self {
            Resolution::Minute => 60_000,
            Resolution::Hour => 3_600_000,
        }
    }

    /// The start of the bucket `at_ms` falls in (buckets are aligned to the Unix epoch).
    pub fn bucket_of(self, at_ms: i64) -> i64 {
        at_ms.div_euclid(self.width_ms()) * self.width_ms()
    }
}

/// Count, sum, minimum and maximum of the samples of one series in one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rollup {
    pub(crate) width_ms: i64,
    pub(crate) bucket_ms: i64,
    pub(crate) count: i64,
    pub(crate) sum: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

/// One bucket of an aggregate query: the samples of a series in `[start_ms, start_ms + width)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub start_ms: i64,
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

/// The most recent value of a series: a number, or text (a machine state, an event).
#[derive(Debug, Clone, PartialEq)]
pub struct Latest {
    pub series: SeriesName,
    pub at_ms: i64,
    pub value: LatestValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LatestValue {
    Number(f64),
    Text(String),
}

/// What to delete: everything strictly older than each cut-off (milliseconds since the epoch);
/// `None` keeps that kind. Chunks go whole, once their last sample is older than `raw_before_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    pub raw_before_ms: Option<i64>,
    pub minute_rollups_before_ms: Option<i64>,
    pub hour_rollups_before_ms: Option<i64>,
    /// Message keys guard against redelivery; a broker redelivers within minutes, not days.
    pub message_keys_before_ms: Option<i64>,
    pub quarantine_before_ms: Option<i64>,
}

/// Rows deleted by a prune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneReport {
    pub chunks: u64,
    pub values: u64,
    pub rollups: u64,
    pub message_keys: u64,
    pub quarantined: u64,
}

/// The number of DELETE statements a prune runs, in the order of [`prune_plan`].
pub(crate) const PRUNE_STATEMENTS: usize = 6;

/// For each prune statement — chunks, values, minute roll-ups, hour roll-ups, message keys,
/// quarantine — its cut-off (skipped when `None`) and, for roll-ups, the width it applies to.
pub(crate) fn prune_plan(r: &Retention) -> [(Option<i64>, Option<i64>); PRUNE_STATEMENTS] {
    [
        (r.raw_before_ms, None),
        (r.raw_before_ms, None),
        (
            r.minute_rollups_before_ms,
            Some(Resolution::Minute.width_ms()),
        ),
        (r.hour_rollups_before_ms, Some(Resolution::Hour.width_ms())),
        (r.message_keys_before_ms, None),
        (r.quarantine_before_ms, None),
    ]
}

impl PruneReport {
    pub(crate) fn from_counts(deleted: [u64; PRUNE_STATEMENTS]) -> PruneReport {
        PruneReport {
            chunks: deleted[0],
            values: deleted[1],
            rollups: deleted[2] + deleted[3],
            message_keys: deleted[4],
            quarantined: deleted[5],
        }
    }
}

impl Bucket {
    /// A bucket from its stored sums; a non-positive count is corruption.
    pub(crate) fn from_sums(
        start_ms: i64,
        count: i64,
        sum: f64,
        min: f64,
        max: f64,
    ) -> Result<Bucket, StoreError> {
        let count = u64::try_from(count)
            .ok()
            .filter(|&c| c > 0)
            .ok_or_else(|| StoreError::Corrupt {
                what: "telemetry roll-ups",
                detail: format!("the bucket at {start_ms} ms counts {count} samples"),
            })?;
        Ok(Bucket {
            start_ms,
            count,
            min,
            max,
            mean: sum / count as f64,
        })
    }
}

/// A latest-value row: exactly one of `number` and `text` is set.
pub(crate) fn decode_latest(
    series: SeriesName,
    at_ms: i64,
    number: Option<f64>,
    text: Option<String>,
) -> Result<Latest, StoreError> {
    let value = match (number, text) {
        (Some(v), None) => LatestValue::Number(v),
        (None, Some(t)) => LatestValue::Text(t),
        _ => {
            return Err(StoreError::Corrupt {
                what: "latest values",
                detail: format!(
                    "{}/{}/{}/{} has no value or two",
                    series.site, series.node, series.device, series.metric
                ),
            });
        }
    };
    Ok(Latest {
        series,
        at_ms,
        value,
    })
}

/// The newest text value per series among a batch's fresh messages.
pub(crate) fn latest_text_of<'a>(
    fresh: &[&'a IngestMessage],
) -> BTreeMap<&'a SeriesName, (i64, &'a str)> {
    let mut out: BTreeMap<&SeriesName, (i64, &str)> = BTreeMap::new();
    for o in fresh.iter().flat_map(|m| m.others.iter()) {
        if let OtherValue::Text(text) = &o.value
            && out.get(&o.series).is_none_or(|(at, _)| o.at_ms >= *at)
        {
            out.insert(&o.series, (o.at_ms, text.as_str()));
        }
    }
    out
}

/// A stored latest value: (series id, name, (at, number, text) if one is stored).
pub(crate) type StoredLatest = (i64, SeriesName, Option<(i64, Option<f64>, Option<String>)>);

/// The latest value per series from the stored ones and what is still staged (the newer wins;
/// a staged sample at the same time as a stored one wins, as it came later), ordered by series;
/// series with no value at all are left out.
pub(crate) fn merge_latest(
    stored: Vec<StoredLatest>,
    staged: &[IdSample],
) -> Result<Vec<Latest>, StoreError> {
    let mut newest: HashMap<i64, (i64, f64)> = HashMap::new();
    for &(id, at, v) in staged {
        let e = newest.entry(id).or_insert((at, v));
        if at >= e.0 {
            *e = (at, v);
        }
    }
    let mut out = Vec::new();
    for (id, series, found) in stored {
        let from_table = match found {
            Some((at, number, text)) => Some(decode_latest(series.clone(), at, number, text)?),
            None => None,
        };
        let merged = match (from_table, newest.get(&id)) {
            (Some(t), Some(&(at, v))) if at >= t.at_ms => Some(Latest {
                series,
                at_ms: at,
                value: LatestValue::Number(v),
            }),
            (Some(t), _) => Some(t),
            (None, Some(&(at, v))) => Some(Latest {
                series,
                at_ms: at,
                value: LatestValue::Number(v),
            }),
            (None, None) => None,
        };
        out.extend(merged);
    }
    out.sort_by(|a, b| a.series.cmp(&b.series));
    Ok(out)
}

pub(crate) fn check_samples(messages: &[IngestMessage]) -> Result<(), StoreError> {
    for s in messages.iter().flat_map(|m| &m.samples) {
        if !s.value.is_finite() {
            return Err(StoreError::Invalid {
                what: "ingested samples",
                detail: format!(
                    "{}/{}/{}/{} at {} ms has value {}; only finite numbers are stored",
                    s.series.site,
                    s.series.node,
                    s.series.device,
                    s.series.metric,
                    s.at_ms,
                    s.value
                ),
            });
        }
    }
    Ok(())
}

/// Staged samples are folded into per-series chunks once there are this many of them…
pub(crate) const COMPACT_SAMPLES: i64 = 250_000;
/// …or this many staged rows (many small commits of a slow stream).
pub(crate) const COMPACT_ROWS: i64 = 2_000;

/// One sample by series id: (series id, time in ms, value).
pub(crate) type IdSample = (i64, i64, f64);

fn compress_error(e: pco::errors::PcoError) -> StoreError {
    StoreError::Invalid {
        what: "ingested samples",
        detail: format!("compressing samples: {e}"),
    }
}

/// The numeric samples of one commit as one row: series ids, timestamps and values, each
/// compressed as a column. A commit writes one such row however many series it touches; the
/// per-series layout is built later, many commits at a time (see [`build_chunks`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Staged {
    pub(crate) first_ms: i64,
    pub(crate) last_ms: i64,
    pub(crate) count: i64,
    pub(crate) series_ids: Vec<u8>,
    pub(crate) timestamps: Vec<u8>,
    pub(crate) values: Vec<u8>,
}

/// Compresses a commit's samples into a staged row; `None` when there are none.
pub(crate) fn stage(samples: &[IdSample]) -> Result<Option<Staged>, StoreError> {
    if samples.is_empty() {
        return Ok(None);
    }
    // A staged row lives until the next fold: compress for speed, not size (the lowest level,
    // no search for a mode or a delta order; timestamps of a commit are nearly sorted).
    let fast = pco::ChunkConfig::default()
        .with_compression_level(0)
        .with_mode_spec(pco::ModeSpec::Classic)
        .with_delta_spec(pco::DeltaSpec::NoOp);
    let fast_deltas = fast
        .clone()
        .with_delta_spec(pco::DeltaSpec::TryConsecutive(1));
    let ids: Vec<i64> = samples.iter().map(|s| s.0).collect();
    let ts: Vec<i64> = samples.iter().map(|s| s.1).collect();
    let vs: Vec<f64> = samples.iter().map(|s| s.2).collect();
    Ok(Some(Staged {
        first_ms: ts.iter().copied().min().unwrap_or_default(),
        last_ms: ts.iter().copied().max().unwrap_or_default(),
        count: samples.len() as i64,
        series_ids: pco::standalone::simple_compress(&ids, &fast).map_err(compress_error)?,
        timestamps: pco::standalone::simple_compress(&ts, &fast_deltas).map_err(compress_error)?,
        values: pco::standalone::simple_compress(&vs, &fast).map_err(compress_error)?,
    }))
}

/// Decodes a staged row; any inconsistency is corruption, never a panic.
pub(crate) fn unstage(
    series_ids: &[u8],
    timestamps: &[u8],
    values: &[u8],
    count: i64,
) -> Result<Vec<IdSample>, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        what: "staged telemetry",
        detail,
    };
    let ids = pco::standalone::simple_decompress::<i64>(series_ids)
        .map_err(|e| corrupt(format!("series ids: {e}")))?;
    let ts = pco::standalone::simple_decompress::<i64>(timestamps)
        .map_err(|e| corrupt(format!("timestamps: {e}")))?;
    let vs = pco::standalone::simple_decompress::<f64>(values)
        .map_err(|e| corrupt(format!("values: {e}")))?;
    if ids.len() != ts.len() || ts.len() != vs.len() || i64::try_from(ts.len()).ok() != Some(count)
    {
        return Err(corrupt(format!(
            "{} series ids, {} timestamps and {} values for a row of {count}",
            ids.len(),
            ts.len(),
            vs.len()
        )));
    }
    Ok(ids
        .into_iter()
        .zip(ts)
        .zip(vs)
        .map(|((id, t), v)| (id, t, v))
        .collect())
}

/// Count, sum, minimum and maximum per bucket at each resolution of time-sorted points.
pub(crate) fn rollups_of(points: &[(i64, f64)], resolutions: &[Resolution]) -> Vec<Rollup> {
    let mut rollups: Vec<Rollup> = Vec::new();
    for resolution in resolutions {
        let width_ms = resolution.width_ms();
        for &(at, v) in points {
            let bucket_ms = resolution.bucket_of(at);
            match rollups.last_mut() {
                // Sorted by time, so a bucket's samples are contiguous.
                Some(r) if r.width_ms == width_ms && r.bucket_ms == bucket_ms => {
                    r.count += 1;
                    r.sum += v;
                    r.min = r.min.min(v);
                    r.max = r.max.max(v);
                }
                _ => rollups.push(Rollup {
                    width_ms,
                    bucket_ms,
                    count: 1,
                    sum: v,
                    min: v,
                    max: v,
                }),
            }
        }
    }
    rollups
}

/// Adds roll-ups of samples not yet folded in to stored buckets, bucket by bucket.
pub(crate) fn merge_buckets(stored: Vec<Bucket>, extra: &[Rollup]) -> Vec<Bucket> {
    let mut by_start: BTreeMap<i64, (u64, f64, f64, f64)> = stored
        .into_iter()
        .map(|b| (b.start_ms, (b.count, b.mean * b.count as f64, b.min, b.max)))
        .collect();
    for r in extra {
        let e = by_start
            .entry(r.bucket_ms)
            .or_insert((0, 0.0, f64::INFINITY, f64::NEG_INFINITY));
        e.0 += r.count as u64;
        e.1 += r.sum;
        e.2 = e.2.min(r.min);
        e.3 = e.3.max(r.max);
    }
    by_start
        .into_iter()
        .map(|(start_ms, (count, sum, min, max))| Bucket {
            start_ms,
            count,
            min,
            max,
            mean: sum / count as f64,
        })
        .collect()
}

/// Groups samples by series and compresses each group into one chunk, with its roll-ups and
/// latest value.
pub(crate) fn build_chunks(
    samples: impl Iterator<Item = IdSample>,
) -> Result<BTreeMap<i64, Chunk>, StoreError> {
    let mut by_series: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
    for (id, at, v) in samples {
        by_series.entry(id).or_default().push((at, v));
    }
    let mut out = BTreeMap::new();
    for (series, mut points) in by_series {
        // Stable, so samples with equal timestamps keep their arrival order.
        points.sort_by_key(|p| p.0);
        let timestamps: Vec<i64> = points.iter().map(|p| p.0).collect();
        let values: Vec<f64> = points.iter().map(|p| p.1).collect();
        // Chunks are kept: compress values for size (pco finds decimal and other structure);
        // timestamps of a series are sorted and near-regular, so deltas of deltas suit them
        // without pco's (slow) search for repeating patterns.
        let config = pco::ChunkConfig::default();
        let time_config =
            pco::ChunkConfig::default().with_delta_spec(pco::DeltaSpec::TryConsecutive(2));
        let chunk = Chunk {
            latest: points.last().copied().unwrap_or_default(),
            rollups: rollups_of(&points, &Resolution::ALL),
            first_ms: timestamps.first().copied().unwrap_or_default(),
            last_ms: timestamps.last().copied().unwrap_or_default(),
            count: timestamps.len() as i64,
            timestamps: pco::standalone::simple_compress(&timestamps, &time_config)
                .map_err(compress_error)?,
            values: pco::standalone::simple_compress(&values, &config).map_err(compress_error)?,
        };
        out.insert(series, chunk);
    }
    Ok(out)
}

/// Decodes a stored chunk; any inconsistency is corruption, never a panic.
pub(crate) fn decode_chunk(
    timestamps: &[u8],
    values: &[u8],
    count: i64,
) -> Result<Vec<(i64, f64)>, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        what: "telemetry chunk",
        detail,
    };
    let ts = pco::standalone::simple_decompress::<i64>(timestamps)
        .map_err(|e| corrupt(format!("timestamps: {e}")))?;
    let vs = pco::standalone::simple_decompress::<f64>(values)
        .map_err(|e| corrupt(format!("values: {e}")))?;
    if ts.len() != vs.len() || i64::try_from(ts.len()).ok() != Some(count) {
        return Err(corrupt(format!(
            "{} timestamps and {} values for a chunk of {count}",
            ts.len(),
            vs.len()
        )));
    }
    Ok(ts.into_iter().zip(vs).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_group_by_series_sort_by_time_and_decode_exactly() {
        let samples = [
            (1, 30, 3.5),
            (2, 10, -1.0),
            (1, 10, 1.25),
            (1, 20, f64::MAX),
        ];
        let built = build_chunks(samples.into_iter()).unwrap_or_default();
        assert_eq!(built.len(), 2);
        let a = built.get(&1).cloned().unwrap_or_else(|| panic!("no chunk"));
        assert_eq!((a.first_ms, a.last_ms, a.count), (10, 30, 3));
        assert_eq!(a.latest, (30, 3.5));
        let back = decode_chunk(&a.timestamps, &a.values, a.count).unwrap_or_default();
        assert_eq!(back, vec![(10, 1.25), (20, f64::MAX), (30, 3.5)]);
    }

    #[test]
    fn a_damaged_chunk_is_corruption_not_a_panic() {
        let built = build_chunks([(7, 1, 1.0)].into_iter()).unwrap_or_default();
        let c = built.get(&7).cloned().unwrap_or_else(|| panic!("no chunk"));
        assert!(decode_chunk(&c.timestamps[..c.timestamps.len() / 2], &c.values, 1).is_err());
        assert!(decode_chunk(&c.timestamps, &c.values, 2).is_err());
        assert!(decode_chunk(b"garbage", &c.values, 1).is_err());
    }

    #[test]
    fn staged_rows_round_trip_and_damage_is_corruption() {
        let samples: Vec<IdSample> = (0..500)
            .map(|i| (i % 7, 1_000 + i, i as f64 * 0.25))
            .collect();
        let staged = stage(&samples)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("nothing staged"));
        assert_eq!(
            (staged.first_ms, staged.last_ms, staged.count),
            (1_000, 1_499, 500)
        );
        let back = unstage(&staged.series_ids, &staged.timestamps, &staged.values, 500);
        assert_eq!(back.ok(), Some(samples));
        assert!(unstage(&staged.series_ids, &staged.timestamps, &staged.values, 499).is_err());
        assert!(
            unstage(
                &staged.timestamps[..3],
                &staged.timestamps,
                &staged.values,
                500
            )
            .is_err()
        );
        assert!(matches!(stage(&[]), Ok(None)));
    }

    #[test]
    fn unfolded_rollups_merge_into_stored_buckets() {
        let stored = vec![Bucket {
            start_ms: 0,
            count: 2,
            min: 1.0,
            max: 3.0,
            mean: 2.0,
        }];
        let extra = rollups_of(&[(5, 7.0), (60_000, -1.0)], &[Resolution::Minute]);
        let merged = merge_buckets(stored, &extra);
        assert_eq!(merged.len(), 2);
        assert_eq!(
            (merged[0].count, merged[0].min, merged[0].max),
            (3, 1.0, 7.0)
        );
        assert!((merged[0].mean - 11.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            (merged[1].start_ms, merged[1].count, merged[1].mean),
            (60_000, 1, -1.0)
        );
    }
}
