//! The PostgreSQL side of ingest (see `crate::ingest` for the layout): one transaction per batch —
//! message keys first (duplicates drop out), the batch's numbers as one staged row, text and
//! bytes values, the quarantine — and, once enough is staged, the fold into per-series chunks,
//! roll-ups and latest values; bulk rows go in as one array per column (`UNNEST`). Reads run in
//! one repeatable-read transaction, so a fold between two of their statements cannot show a
//! sample twice or not at all.

use super::{PgStore, ROWS_PER_STATEMENT};
use crate::StoreError;
use crate::common::{
    fold_off_thread, get, read, series_name, stage_off_thread, staged_columns, staged_row, write,
};
use crate::ingest::{
    BatchSeries, Bucket, COMPACT_ROWS, COMPACT_SAMPLES, Chunk, IdSample, IngestBatch, IngestReport,
    Latest, LatestValue, OtherValue, PRUNE_STATEMENTS, PruneReport, QuarantineRow, Resolution,
    Retention, Rollup, SeriesName, check_samples, decode_chunk, fresh_messages, latest_text_of,
    merge_buckets, merge_latest, rollups_of,
};
use sqlx::{PgConnection, Postgres, Row, Transaction};
use std::collections::{BTreeMap, HashSet};

impl PgStore {
    /// A read-only transaction that sees one snapshot, so a fold between two of its statements
    /// cannot show a sample twice or not at all.
    async fn snapshot(
        &self,
        what: &'static str,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(read(what))
    }

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
        // Message keys, many per statement; the keys that come back were not there before.
        let keys: Vec<&[u8]> = batch
            .messages
            .iter()
            .filter_map(|m| m.key.as_ref().map(|k| &k[..]))
            .collect();
        let mut inserted = HashSet::with_capacity(keys.len());
        for part in keys.chunks(ROWS_PER_STATEMENT) {
            let rows = sqlx::query(
                "INSERT INTO ingest_messages (msg_key, committed_ms) \
                 SELECT k, $2 FROM UNNEST($1::BYTEA[]) AS t (k) \
                 ON CONFLICT (msg_key) DO NOTHING RETURNING msg_key",
            )
            .bind(part)
            .bind(now_ms)
            .fetch_all(&mut *tx)
            .await
            .map_err(write(WHAT))?;
            for row in rows {
                inserted.insert(row.try_get::<Vec<u8>, _>(0).map_err(write(WHAT))?);
            }
        }
        let fresh = fresh_messages(&batch.messages, inserted, &mut report);
        let mut ids = BatchSeries::of(&fresh);
        let missing = self.series_cache.resolve(&mut ids);
        let mut registered = Vec::with_capacity(missing.len());
        for name in missing {
            let id = series_id(&mut tx, name).await?;
            ids.set(name, id);
            registered.push((name.clone(), id));
        }
        let id_of = |s: &SeriesName| ids.id(s);
        let numbers = fresh
            .iter()
            .flat_map(|m| m.samples.iter())
            .map(|s| Ok((id_of(&s.series)?, s.at_ms, s.value)))
            .collect::<Result<Vec<IdSample>, StoreError>>()?;
        report.samples = numbers.len() as u64;
        if let Some(staged) = stage_off_thread(numbers).await? {
            sqlx::query(
                "INSERT INTO ingest_staged (first_ms, last_ms, samples, series_ids, timestamps, vals) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(staged.first_ms)
            .bind(staged.last_ms)
            .bind(staged.count)
            .bind(&staged.series_ids)
            .bind(&staged.timestamps)
            .bind(&staged.values)
            .execute(&mut *tx)
            .await
            .map_err(write(WHAT))?;
        }
        for other in fresh.iter().flat_map(|m| m.others.iter()) {
            let (text, bytes) = match &other.value {
                OtherValue::Text(t) => (Some(t.as_str()), None),
                OtherValue::Bytes(b) => (None, Some(b.as_slice())),
            };
            sqlx::query(
                "INSERT INTO ingest_values (series_id, at_ms, text_value, bytes_value) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id_of(&other.series)?)
            .bind(other.at_ms)
            .bind(text)
            .bind(bytes)
            .execute(&mut *tx)
            .await
            .map_err(write(WHAT))?;
            report.others += 1;
        }
        let texts = latest_text_of(&fresh)
            .into_iter()
            .map(|(series, (at, text))| {
                Ok((id_of(series)?, at, LatestValue::Text(text.to_owned())))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        upsert_latest(&mut tx, &texts).await?;
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
        let staged =
            sqlx::query("SELECT COUNT(*), COALESCE(SUM(samples), 0)::BIGINT FROM ingest_staged")
                .fetch_one(&mut *tx)
                .await
                .map_err(read(WHAT))?;
        let (rows, samples): (i64, i64) = (get(&staged, 0, WHAT)?, get(&staged, 1, WHAT)?);
        if rows >= COMPACT_ROWS || samples >= COMPACT_SAMPLES {
            report.chunks = fold_staged(&mut tx).await?;
        }
        tx.commit().await.map_err(write(WHAT))?;
        self.series_cache.remember(registered.into_iter());
        Ok(report)
    }

    /// Folds everything staged into per-series chunks, roll-ups and latest values now (ingest
    /// does it by itself once enough is staged); returns the chunks written.
    pub async fn compact(&self) -> Result<u64, StoreError> {
        const WHAT: &str = "ingested telemetry";
        let mut tx = self.pool.begin().await.map_err(write(WHAT))?;
        let chunks = fold_staged(&mut tx).await?;
        tx.commit().await.map_err(write(WHAT))?;
        Ok(chunks)
    }

    /// The samples of one series with `from_ms <= at <= to_ms`, in time order.
    pub async fn samples(
        &self,
        series: &SeriesName,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        const WHAT: &str = "ingested telemetry";
        let mut tx = self.snapshot(WHAT).await?;
        let Some(id) = find_series(&mut tx, series).await? else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT timestamps, vals, samples FROM ingest_chunks \
             WHERE series_id = $1 AND first_ms <= $2 AND last_ms >= $3 ORDER BY first_ms, id",
        )
        .bind(id)
        .bind(to_ms)
        .bind(from_ms)
        .fetch_all(&mut *tx)
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
        out.extend(
            staged_samples(&mut tx, from_ms, to_ms)
                .await?
                .into_iter()
                .filter(|&(sid, t, _)| sid == id && (from_ms..=to_ms).contains(&t))
                .map(|(_, t, v)| (t, v)),
        );
        // Chunks of different folds, and staged rows, may overlap in time; stable keeps arrival
        // order among equal timestamps.
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

    /// Every series ingested so far with its count of numeric samples.
    pub async fn series_counts(&self) -> Result<BTreeMap<SeriesName, u64>, StoreError> {
        const WHAT: &str = "ingested telemetry";
        let mut tx = self.snapshot(WHAT).await?;
        let rows = sqlx::query(
            "SELECT s.id, s.site, s.node, s.device, s.metric, COALESCE(SUM(c.samples), 0)::BIGINT \
             FROM ingest_series AS s LEFT JOIN ingest_chunks AS c ON c.series_id = s.id \
             GROUP BY s.id",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(read(WHAT))?;
        let staged = staged_samples(&mut tx, i64::MIN, i64::MAX).await?;
        let mut by_id = std::collections::HashMap::new();
        for (id, _, _) in staged {
            *by_id.entry(id).or_insert(0u64) += 1;
        }
        let mut out = BTreeMap::new();
        for row in &rows {
            let id: i64 = get(row, 0, WHAT)?;
            let name = series_name(row, 1, WHAT)?;
            let n: i64 = get(row, 5, WHAT)?;
            out.insert(
                name,
                u64::try_from(n).unwrap_or(0) + by_id.get(&id).copied().unwrap_or(0),
            );
        }
        Ok(out)
    }

    /// The latest value of every series (of one site, if given), ordered by series.
    pub async fn latest(&self, site: Option<&str>) -> Result<Vec<Latest>, StoreError> {
        const WHAT: &str = "latest values";
        let mut tx = self.snapshot(WHAT).await?;
        let rows = sqlx::query(
            "SELECT s.id, s.site, s.node, s.device, s.metric, l.at_ms, l.value, l.text_value \
             FROM ingest_series AS s LEFT JOIN ingest_latest AS l ON l.series_id = s.id \
             WHERE $1::TEXT IS NULL OR s.site = $1",
        )
        .bind(site)
        .fetch_all(&mut *tx)
        .await
        .map_err(read(WHAT))?;
        let mut stored = Vec::with_capacity(rows.len());
        for row in &rows {
            let name = series_name(row, 1, WHAT)?;
            let id: i64 = get(row, 0, WHAT)?;
            let at: Option<i64> = get(row, 5, WHAT)?;
            let number: Option<f64> = get(row, 6, WHAT)?;
            let text: Option<String> = get(row, 7, WHAT)?;
            stored.push((id, name, at.map(|at| (at, number, text))));
        }
        let staged = staged_samples(&mut tx, i64::MIN, i64::MAX).await?;
        merge_latest(stored, &staged)
    }

    /// The roll-up buckets of one series at `resolution` whose start lies in
    /// `[bucket of from_ms, to_ms]`, in time order; empty buckets are left out.
    pub async fn aggregate(
        &self,
        series: &SeriesName,
        resolution: Resolution,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Bucket>, StoreError> {
        const WHAT: &str = "telemetry roll-ups";
        let from_bucket = resolution.bucket_of(from_ms);
        let mut tx = self.snapshot(WHAT).await?;
        let Some(id) = find_series(&mut tx, series).await? else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT bucket_ms, samples, total, min_value, max_value FROM ingest_rollups \
             WHERE series_id = $1 AND width_ms = $2 AND bucket_ms >= $3 AND bucket_ms <= $4 \
             ORDER BY bucket_ms",
        )
        .bind(id)
        .bind(resolution.width_ms())
        .bind(from_bucket)
        .bind(to_ms)
        .fetch_all(&mut *tx)
        .await
        .map_err(read(WHAT))?;
        let stored = rows
            .iter()
            .map(|row| {
                Bucket::from_sums(
                    get(row, 0, WHAT)?,
                    get(row, 1, WHAT)?,
                    get(row, 2, WHAT)?,
                    get(row, 3, WHAT)?,
                    get(row, 4, WHAT)?,
                )
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut unfolded: Vec<(i64, f64)> = staged_samples(&mut tx, from_bucket, i64::MAX)
            .await?
            .into_iter()
            .filter(|&(sid, t, _)| {
                sid == id && t >= from_bucket && resolution.bucket_of(t) <= to_ms
            })
            .map(|(_, t, v)| (t, v))
            .collect();
        unfolded.sort_by_key(|p| p.0);
        Ok(merge_buckets(stored, &rollups_of(&unfolded, &[resolution])))
    }

    /// Deletes what `retention` says is too old, in one transaction (folding what is staged
    /// first, so the cut-offs apply to one layout).
    pub async fn prune(&self, retention: &Retention) -> Result<PruneReport, StoreError> {
        const WHAT: &str = "telemetry retention";
        let mut tx = self.pool.begin().await.map_err(write(WHAT))?;
        fold_staged(&mut tx).await?;
        let mut deleted = [0u64; PRUNE_STATEMENTS];
        for (n, (cutoff, width)) in crate::ingest::prune_plan(retention).into_iter().enumerate() {
            let Some(cutoff) = cutoff else { continue };
            let sql = [
                "DELETE FROM ingest_chunks WHERE last_ms < $1",
                "DELETE FROM ingest_values WHERE at_ms < $1",
                "DELETE FROM ingest_rollups WHERE bucket_ms < $1 AND width_ms = $2",
                "DELETE FROM ingest_rollups WHERE bucket_ms < $1 AND width_ms = $2",
                "DELETE FROM ingest_messages WHERE committed_ms < $1",
                "DELETE FROM quarantine WHERE received_ms < $1",
            ][n];
            let mut q = sqlx::query(sql).bind(cutoff);
            if let Some(w) = width {
                q = q.bind(w);
            }
            deleted[n] = q
                .execute(&mut *tx)
                .await
                .map_err(write(WHAT))?
                .rows_affected();
        }
        tx.commit().await.map_err(write(WHAT))?;
        Ok(PruneReport::from_counts(deleted))
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

/// Folds every staged row into per-series chunks, their roll-ups and latest values, and deletes
/// the staged rows; returns the chunks written.
async fn fold_staged(tx: &mut Transaction<'static, Postgres>) -> Result<u64, StoreError> {
    const WHAT: &str = "folding staged telemetry";
    let rows = sqlx::query(
        "SELECT id, series_ids, timestamps, vals, samples FROM ingest_staged ORDER BY id",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(read(WHAT))?;
    let Some(last) = rows.last() else {
        return Ok(0);
    };
    let last_id: i64 = get(last, 0, WHAT)?;
    let staged = rows
        .iter()
        .map(|row| staged_columns(row, 1, WHAT))
        .collect::<Result<Vec<_>, _>>()?;
    let built = fold_off_thread(staged).await?;
    let rows: Vec<_> = built.iter().collect();
    for part in rows.chunks(ROWS_PER_STATEMENT) {
        let column = |f: fn(&Chunk) -> i64| part.iter().map(|(_, c)| f(c)).collect::<Vec<i64>>();
        sqlx::query(
            "INSERT INTO ingest_chunks (series_id, first_ms, last_ms, samples, timestamps, vals) \
             SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], \
                                  $5::BYTEA[], $6::BYTEA[])",
        )
        .bind(part.iter().map(|(id, _)| **id).collect::<Vec<i64>>())
        .bind(column(|c| c.first_ms))
        .bind(column(|c| c.last_ms))
        .bind(column(|c| c.count))
        .bind(
            part.iter()
                .map(|(_, c)| c.timestamps.as_slice())
                .collect::<Vec<&[u8]>>(),
        )
        .bind(
            part.iter()
                .map(|(_, c)| c.values.as_slice())
                .collect::<Vec<&[u8]>>(),
        )
        .execute(&mut **tx)
        .await
        .map_err(write(WHAT))?;
    }
    let rollups: Vec<(i64, &Rollup)> = built
        .iter()
        .flat_map(|(id, chunk)| chunk.rollups.iter().map(move |r| (*id, r)))
        .collect();
    for part in rollups.chunks(ROWS_PER_STATEMENT) {
        let int = |f: fn(&Rollup) -> i64| part.iter().map(|(_, r)| f(r)).collect::<Vec<i64>>();
        let float = |f: fn(&Rollup) -> f64| part.iter().map(|(_, r)| f(r)).collect::<Vec<f64>>();
        sqlx::query(
            "INSERT INTO ingest_rollups \
             (series_id, width_ms, bucket_ms, samples, total, min_value, max_value) \
             SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], \
               $5::DOUBLE PRECISION[], $6::DOUBLE PRECISION[], $7::DOUBLE PRECISION[]) \
             ON CONFLICT (series_id, width_ms, bucket_ms) DO UPDATE SET \
               samples = ingest_rollups.samples + EXCLUDED.samples, \
               total = ingest_rollups.total + EXCLUDED.total, \
               min_value = LEAST(ingest_rollups.min_value, EXCLUDED.min_value), \
               max_value = GREATEST(ingest_rollups.max_value, EXCLUDED.max_value)",
        )
        .bind(part.iter().map(|(id, _)| *id).collect::<Vec<i64>>())
        .bind(int(|r| r.width_ms))
        .bind(int(|r| r.bucket_ms))
        .bind(int(|r| r.count))
        .bind(float(|r| r.sum))
        .bind(float(|r| r.min))
        .bind(float(|r| r.max))
        .execute(&mut **tx)
        .await
        .map_err(write(WHAT))?;
    }
    let latest: Vec<(i64, i64, LatestValue)> = built
        .iter()
        .map(|(id, c)| (*id, c.latest.0, LatestValue::Number(c.latest.1)))
        .collect();
    upsert_latest(tx, &latest).await?;
    sqlx::query("DELETE FROM ingest_staged WHERE id <= $1")
        .bind(last_id)
        .execute(&mut **tx)
        .await
        .map_err(write(WHAT))?;
    Ok(built.len() as u64)
}

/// Sets the latest value of each series, unless the stored one is newer.
async fn upsert_latest(
    tx: &mut Transaction<'static, Postgres>,
    latest: &[(i64, i64, LatestValue)],
) -> Result<(), StoreError> {
    const WHAT: &str = "latest values";
    for part in latest.chunks(ROWS_PER_STATEMENT) {
        let numbers: Vec<Option<f64>> = part
            .iter()
            .map(|(_, _, v)| match v {
                LatestValue::Number(n) => Some(*n),
                LatestValue::Text(_) => None,
            })
            .collect();
        let texts: Vec<Option<&str>> = part
            .iter()
            .map(|(_, _, v)| match v {
                LatestValue::Number(_) => None,
                LatestValue::Text(t) => Some(t.as_str()),
            })
            .collect();
        sqlx::query(
            "INSERT INTO ingest_latest (series_id, at_ms, value, text_value) \
             SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::DOUBLE PRECISION[], $4::TEXT[]) \
             ON CONFLICT (series_id) DO UPDATE SET at_ms = EXCLUDED.at_ms, \
               value = EXCLUDED.value, text_value = EXCLUDED.text_value \
             WHERE EXCLUDED.at_ms >= ingest_latest.at_ms",
        )
        .bind(part.iter().map(|(id, _, _)| *id).collect::<Vec<i64>>())
        .bind(part.iter().map(|(_, at, _)| *at).collect::<Vec<i64>>())
        .bind(numbers)
        .bind(texts)
        .execute(&mut **tx)
        .await
        .map_err(write(WHAT))?;
    }
    Ok(())
}

/// The staged samples of rows that may hold samples in `[from_ms, to_ms]`.
async fn staged_samples(
    conn: &mut PgConnection,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<IdSample>, StoreError> {
    const WHAT: &str = "staged telemetry";
    let rows = sqlx::query(
        "SELECT series_ids, timestamps, vals, samples FROM ingest_staged \
         WHERE first_ms <= $1 AND last_ms >= $2 ORDER BY id",
    )
    .bind(to_ms)
    .bind(from_ms)
    .fetch_all(&mut *conn)
    .await
    .map_err(read(WHAT))?;
    let mut out = Vec::new();
    for row in &rows {
        out.extend(staged_row(row, 0, WHAT)?);
    }
    Ok(out)
}

/// The id of a series, if it was ever ingested.
async fn find_series(conn: &mut PgConnection, s: &SeriesName) -> Result<Option<i64>, StoreError> {
    const WHAT: &str = "ingested telemetry series";
    let found = sqlx::query(
        "SELECT id FROM ingest_series WHERE site = $1 AND node = $2 AND device = $3 AND metric = $4",
    )
    .bind(&s.site)
    .bind(&s.node)
    .bind(&s.device)
    .bind(&s.metric)
    .fetch_optional(&mut *conn)
    .await
    .map_err(read(WHAT))?;
    found.map(|row| get(&row, 0, WHAT)).transpose()
}

/// The id of a series, registering it when new.
async fn series_id(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    s: &SeriesName,
) -> Result<i64, StoreError> {
    const WHAT: &str = "ingested telemetry series";
    if let Some(id) = find_series(tx, s).await? {
        return Ok(id);
    }
    let row = sqlx::query(
        "INSERT INTO ingest_series (site, node, device, metric) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (site, node, device, metric) DO UPDATE SET site = EXCLUDED.site RETURNING id",
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
