//! The PostgreSQL side of ingest: one transaction per batch — message keys first (duplicates drop
//! out), then one chunk per series, then the quarantine.

use super::PgStore;
use crate::StoreError;
use crate::common::{get, read, write};
use crate::ingest::{
    IngestBatch, IngestReport, OtherValue, QuarantineRow, SeriesName, check_samples, chunks,
    decode_chunk,
};
use sqlx::Row;
use std::collections::BTreeMap;

impl PgStore {
    /// Stores a batch of ingested messages atomically. `now_ms` (the caller's clock) records
    /// when each message key was committed, for pruning keys later.
    pub async fn commit_ingest(
        &self,
        batch: &IngestBatch,
        now_ms: i64,
    ) -> Result<IngestReport, StoreError> {
        const WHAT: &str = "ingested telemetry";
        check_samples(&batch.messages)?;
        let mut report = IngestReport {
            messages: batch.messages.len() as u64,
            ..IngestReport::default()
        };
        let mut tx = self.pool.begin().await.map_err(write(WHAT))?;
        let mut fresh = Vec::with_capacity(batch.messages.len());
        for m in &batch.messages {
            let new = match &m.key {
                None => true,
                Some(key) => {
                    let done = sqlx::query(
                        "INSERT INTO ingest_messages (msg_key, committed_ms) VALUES ($1, $2) \
                         ON CONFLICT (msg_key) DO NOTHING",
                    )
                    .bind(&key[..])
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(write(WHAT))?;
                    done.rows_affected() == 1
                }
            };
            if new {
                fresh.push(m);
            } else {
                report.duplicates += 1;
            }
        }
        let built = chunks(fresh.iter().flat_map(|m| m.samples.iter()))?;
        for (series, chunk) in &built {
            let series_id = series_id(&mut tx, series).await?;
            sqlx::query(
                "INSERT INTO ingest_chunks (series_id, first_ms, last_ms, samples, timestamps, vals) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(series_id)
            .bind(chunk.first_ms)
            .bind(chunk.last_ms)
            .bind(chunk.count)
            .bind(&chunk.timestamps)
            .bind(&chunk.values)
            .execute(&mut *tx)
            .await
            .map_err(write(WHAT))?;
            report.samples += chunk.count as u64;
            report.chunks += 1;
        }
        for other in fresh.iter().flat_map(|m| m.others.iter()) {
            let series_id = series_id(&mut tx, &other.series).await?;
            let (text, bytes) = match &other.value {
                OtherValue::Text(t) => (Some(t.as_str()), None),
                OtherValue::Bytes(b) => (None, Some(b.as_slice())),
            };
            sqlx::query(
                "INSERT INTO ingest_values (series_id, at_ms, text_value, bytes_value) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(series_id)
            .bind(other.at_ms)
            .bind(text)
            .bind(bytes)
            .execute(&mut *tx)
            .await
            .map_err(write(WHAT))?;
            report.others += 1;
        }
        for q in &batch.quarantined {
            sqlx::query(
                "INSERT INTO quarantine (received_ms, topic, reason_kind, reason, payload) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(q.received_ms)
            .bind(&q.topic)
            .bind(&q.reason_kind)
            .bind(&q.reason)
            .bind(&q.payload)
            .execute(&mut *tx)
            .await
            .map_err(write(WHAT))?;
            report.quarantined += 1;
        }
        tx.commit().await.map_err(write(WHAT))?;
        Ok(report)
    }

    /// The samples of one series with `from_ms <= at <= to_ms`, in time order.
    pub async fn samples(
        &self,
        series: &SeriesName,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        const WHAT: &str = "ingested telemetry";
        let rows = sqlx::query(
            "SELECT c.timestamps, c.vals, c.samples FROM ingest_chunks AS c \
             JOIN ingest_series AS s ON s.id = c.series_id \
             WHERE s.site = $1 AND s.node = $2 AND s.device = $3 AND s.metric = $4 \
               AND c.first_ms <= $5 AND c.last_ms >= $6 \
             ORDER BY c.first_ms, c.id",
        )
        .bind(&series.site)
        .bind(&series.node)
        .bind(&series.device)
        .bind(&series.metric)
        .bind(to_ms)
        .bind(from_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(read(WHAT))?;
        let mut out = Vec::new();
        for row in &rows {
            let timestamps: Vec<u8> = get(row, 0, WHAT)?;
            let values: Vec<u8> = get(row, 1, WHAT)?;
            let count: i64 = get(row, 2, WHAT)?;
            out.extend(
                decode_chunk(&timestamps, &values, count)?
                    .into_iter()
                    .filter(|(t, _)| (from_ms..=to_ms).contains(t)),
            );
        }
        // Chunks of different commits may overlap in time.
        out.sort_by_key(|p| p.0);
        Ok(out)
    }

    /// The text and bytes samples of one series with `from_ms <= at <= to_ms`, in time order.
    pub async fn other_samples(
        &self,
        series: &SeriesName,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, OtherValue)>, StoreError> {
        const WHAT: &str = "ingested values";
        let rows = sqlx::query(
            "SELECT v.at_ms, v.text_value, v.bytes_value FROM ingest_values AS v \
             JOIN ingest_series AS s ON s.id = v.series_id \
             WHERE s.site = $1 AND s.node = $2 AND s.device = $3 AND s.metric = $4 \
               AND v.at_ms BETWEEN $5 AND $6 ORDER BY v.at_ms, v.id",
        )
        .bind(&series.site)
        .bind(&series.node)
        .bind(&series.device)
        .bind(&series.metric)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(read(WHAT))?;
        rows.iter()
            .map(|row| {
                let at: i64 = get(row, 0, WHAT)?;
                let text: Option<String> = get(row, 1, WHAT)?;
                let bytes: Option<Vec<u8>> = get(row, 2, WHAT)?;
                let value = match (text, bytes) {
                    (Some(t), None) => OtherValue::Text(t),
                    (None, Some(b)) => OtherValue::Bytes(b),
                    _ => {
                        return Err(StoreError::Corrupt {
                            what: WHAT,
                            detail: format!("a value at {at} ms is neither text nor bytes"),
                        });
                    }
                };
                Ok((at, value))
            })
            .collect()
    }

    /// Every series ingested so far with its sample count.
    pub async fn series_counts(&self) -> Result<BTreeMap<SeriesName, u64>, StoreError> {
        const WHAT: &str = "ingested telemetry";
        let rows = sqlx::query(
            "SELECT s.site, s.node, s.device, s.metric, COALESCE(SUM(c.samples), 0)::BIGINT \
             FROM ingest_series AS s LEFT JOIN ingest_chunks AS c ON c.series_id = s.id \
             GROUP BY s.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(read(WHAT))?;
        let mut out = BTreeMap::new();
        for row in &rows {
            let name = SeriesName {
                site: get(row, 0, WHAT)?,
                node: get(row, 1, WHAT)?,
                device: get(row, 2, WHAT)?,
                metric: get(row, 3, WHAT)?,
            };
            let n: i64 = get(row, 4, WHAT)?;
            out.insert(name, u64::try_from(n).unwrap_or(0));
        }
        Ok(out)
    }

    /// The most recent quarantined messages, newest first.
    pub async fn quarantined(&self, limit: u32) -> Result<Vec<QuarantineRow>, StoreError> {
        const WHAT: &str = "quarantine";
        let rows = sqlx::query(
            "SELECT received_ms, topic, reason_kind, reason, payload FROM quarantine \
             ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(read(WHAT))?;
        rows.iter()
            .map(|row| {
                Ok(QuarantineRow {
                    received_ms: get(row, 0, WHAT)?,
                    topic: get(row, 1, WHAT)?,
                    reason_kind: get(row, 2, WHAT)?,
                    reason: get(row, 3, WHAT)?,
                    payload: get(row, 4, WHAT)?,
                })
            })
            .collect()
    }
}

/// The id of a series, registering it when new.
async fn series_id(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    s: &SeriesName,
) -> Result<i64, StoreError> {
    const WHAT: &str = "ingested telemetry series";
    let found = sqlx::query(
        "SELECT id FROM ingest_series WHERE site = $1 AND node = $2 AND device = $3 AND metric = $4",
    )
    .bind(&s.site)
    .bind(&s.node)
    .bind(&s.device)
    .bind(&s.metric)
    .fetch_optional(&mut **tx)
    .await
    .map_err(read(WHAT))?;
    if let Some(row) = found {
        return row.try_get(0).map_err(read(WHAT));
    }
    let row = sqlx::query(
        "INSERT INTO ingest_series (site, node, device, metric) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(&s.site)
    .bind(&s.node)
    .bind(&s.device)
    .bind(&s.metric)
    .fetch_one(&mut **tx)
    .await
    .map_err(write(WHAT))?;
    row.try_get(0).map_err(write(WHAT))
}
