//! Ingested plant telemetry, laid out for throughput: a time series is stored as chunks — the
//! samples of one series from one commit, timestamps and values each compressed as a column
//! (pco) — instead of one row per sample, so a million samples a second is a few thousand row
//! inserts, and a range query reads and decodes only the chunks that overlap it.
//!
//! Exactly-once: each message that carries its own timestamps comes with a 128-bit key (a hash
//! of its topic and payload, computed by the caller). Keys are kept in `ingest_messages`, in the
//! same transaction as the samples, so a message redelivered after a crash is recognised and its
//! samples are not stored twice.

use crate::StoreError;
use std::collections::BTreeMap;

/// One signal of one machine: Sparkplug group / edge node / device / metric, or for JSON topics
/// site / machine / "" / signal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesName {
    pub site: String,
    pub node: String,
    /// Empty for node-level metrics.
    pub device: String,
    pub metric: String,
}

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

/// The samples of one series, sorted by time, as two compressed columns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Chunk {
    pub(crate) first_ms: i64,
    pub(crate) last_ms: i64,
    pub(crate) count: i64,
    pub(crate) timestamps: Vec<u8>,
    pub(crate) values: Vec<u8>,
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

/// Groups samples by series and compresses each group into one chunk.
pub(crate) fn chunks<'a>(
    samples: impl Iterator<Item = &'a Sample>,
) -> Result<BTreeMap<&'a SeriesName, Chunk>, StoreError> {
    let mut by_series: BTreeMap<&SeriesName, Vec<(i64, f64)>> = BTreeMap::new();
    for s in samples {
        by_series
            .entry(&s.series)
            .or_default()
            .push((s.at_ms, s.value));
    }
    let mut out = BTreeMap::new();
    for (series, mut points) in by_series {
        // Stable, so samples with equal timestamps keep their arrival order.
        points.sort_by_key(|p| p.0);
        let timestamps: Vec<i64> = points.iter().map(|p| p.0).collect();
        let values: Vec<f64> = points.iter().map(|p| p.1).collect();
        let compress = |e: pco::errors::PcoError| StoreError::Invalid {
            what: "ingested samples",
            detail: format!("compressing a chunk: {e}"),
        };
        let chunk = Chunk {
            first_ms: timestamps.first().copied().unwrap_or_default(),
            last_ms: timestamps.last().copied().unwrap_or_default(),
            count: timestamps.len() as i64,
            timestamps: pco::standalone::simple_compress(&timestamps, &pco::ChunkConfig::default())
                .map_err(compress)?,
            values: pco::standalone::simple_compress(&values, &pco::ChunkConfig::default())
                .map_err(compress)?,
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

    fn sample(metric: &str, at_ms: i64, value: f64) -> Sample {
        Sample {
            series: SeriesName {
                site: "s".into(),
                node: "n".into(),
                device: "d".into(),
                metric: metric.into(),
            },
            at_ms,
            value,
        }
    }

    #[test]
    fn chunks_group_by_series_sort_by_time_and_decode_exactly() {
        let samples = [
            sample("a", 30, 3.5),
            sample("b", 10, -1.0),
            sample("a", 10, 1.25),
            sample("a", 20, f64::MAX),
        ];
        let built = chunks(samples.iter()).unwrap_or_default();
        assert_eq!(built.len(), 2);
        let a = built.values().next().cloned();
        let a = a.unwrap_or_else(|| panic!("no chunk"));
        assert_eq!((a.first_ms, a.last_ms, a.count), (10, 30, 3));
        let back = decode_chunk(&a.timestamps, &a.values, a.count).unwrap_or_default();
        assert_eq!(back, vec![(10, 1.25), (20, f64::MAX), (30, 3.5)]);
    }

    #[test]
    fn a_damaged_chunk_is_corruption_not_a_panic() {
        let samples = [sample("a", 1, 1.0)];
        let built = chunks(samples.iter()).unwrap_or_default();
        let c = built
            .values()
            .next()
            .cloned()
            .unwrap_or_else(|| panic!("no chunk"));
        assert!(decode_chunk(&c.timestamps[..c.timestamps.len() / 2], &c.values, 1).is_err());
        assert!(decode_chunk(&c.timestamps, &c.values, 2).is_err());
        assert!(decode_chunk(b"garbage", &c.values, 1).is_err());
    }
}
