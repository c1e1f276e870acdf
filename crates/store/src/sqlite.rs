//! The SQLite engine: one file in WAL mode, one writer connection and a few readers.

use crate::{Counts, MachineRecord, RunId, RunInfo, StoreError};
use aifactory_core::{
    Decision, EventKind, ExecutedBy, Kpis, LifecycleStage, Outcome, Plant, PlantEvent,
    TelemetryReading, Timestamp,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Decode, Row, Sqlite, Transaction, Type};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

/// The SELECT every decision read shares: each decision with its latest outcome, if any.
macro_rules! decision_select {
    () => {
        "SELECT d.id, d.at, d.skill, d.stage, d.inputs_ref, d.model, d.model_version, d.output, \
         d.confidence, d.executed_by, o.measured_at, o.measured, o.success \
         FROM decisions AS d LEFT JOIN decision_outcomes AS o \
         ON o.seq = (SELECT MAX(seq) FROM decision_outcomes WHERE decision_id = d.id)"
    };
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// SQLite's default cap on bound parameters per statement (the bundled build keeps it). Bulk
/// inserts fill statements up to it because fewer, larger statements mean fewer round trips to
/// the connection's worker thread, which dominate the cost of small ones.
const MAX_VARIABLES: usize = 32_766;

/// How long a write waits for another process's write lock before giving up. Long enough for a
/// large telemetry batch written by a second process (the CLI beside a server) to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The writer's page cache in KiB, written as SQLite's negative `cache_size`.
const WRITER_CACHE_KIB: &str = "-65536";

/// Readers run concurrently with the writer in WAL mode; a handful covers a server's requests.
const READERS: u32 = 4;

/// The embedded store on SQLite.
///
/// Writes go through a single connection so that they queue in the pool instead of failing on
/// SQLite's one-writer lock; reads use their own connections and see the last committed state.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file if it is missing, switching it to WAL mode,
    /// enforcing foreign keys, and applying any migrations it has not seen yet.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let base = SqliteConnectOptions::new()
            .filename(path)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // FULL (not NORMAL) so that a decision is durable on disk before the caller executes it,
        // as the ledger promises; one fsync per transaction is cheap for batched writes. A 64 MiB
        // page cache (negative = KiB) keeps the telemetry index's hot pages in memory, which
        // measured up to ~1.5x faster on large batches than SQLite's 2 MiB default.
        let writer_options = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .pragma("cache_size", WRITER_CACHE_KIB);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(writer_options)
            .await
            .map_err(open_error)?;
        MIGRATOR.run(&writer).await.map_err(StoreError::Migrate)?;
        // `query_only` so that a write sent to the wrong pool fails instead of racing the writer.
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(base.pragma("query_only", "ON"))
            .await
            .map_err(open_error)?;
        Ok(SqliteStore { writer, reader })
    }

    /// Opens an empty store in memory, for tests. One connection serves reads and writes because
    /// each SQLite connection to `:memory:` would otherwise see its own, separate database.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true);
        // The connection must never be retired: the database disappears with it.
        let pool = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: ":memory:".into(),
                source,
            })?;
        MIGRATOR.run(&pool).await.map_err(StoreError::Migrate)?;
        Ok(SqliteStore {
            writer: pool.clone(),
            reader: pool,
        })
    }

    /// Closes every connection, which also checkpoints the WAL into the main file.
    pub async fn close(self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// SQLite's journal mode, lowercase (`wal` for a file store, `memory` in memory).
    pub async fn journal_mode(&self) -> Result<String, StoreError> {
        let row = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&self.reader)
            .await
            .map_err(read("journal mode"))?;
        let mode: String = get(&row, 0, "journal mode")?;
        Ok(mode.to_lowercase())
    }

    /// Writes a plant's master data, inserting new rows and updating existing ones by id.
    /// Nothing is deleted: events, telemetry and decisions may still name a machine that a newer
    /// plant file dropped.
    pub async fn save_plant(&self, plant: &Plant) -> Result<(), StoreError> {
        const WHAT: &str = "plant master data";
        let w = write(WHAT);
        let site = plant.plant.id.as_str();
        let mut tx = self.begin_write(WHAT).await?;

        let (start_at, utc_offset_min) = plant.start();
        sqlx::query(
            "INSERT INTO sites (id, name, name_zh, industry, currency, start_at, utc_offset_min) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, name_zh = excluded.name_zh, \
             industry = excluded.industry, currency = excluded.currency, \
             start_at = excluded.start_at, utc_offset_min = excluded.utc_offset_min",
        )
        .bind(site)
        .bind(plant.plant.name.as_str())
        .bind(plant.plant.name_zh.as_deref())
        .bind(plant.plant.industry.as_str())
        .bind(plant.plant.currency.as_str())
        .bind(start_at.0)
        .bind(utc_offset_min)
        .execute(&mut *tx)
        .await
        .map_err(w)?;

        // Parents before children, so that every foreign key resolves as rows arrive.
        for area in &plant.areas {
            sqlx::query(
                "INSERT INTO areas (site_id, id, name) VALUES (?, ?, ?) \
                 ON CONFLICT (site_id, id) DO UPDATE SET name = excluded.name",
            )
            .bind(site)
            .bind(area.id.as_str())
            .bind(area.name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(w)?;
        }
        for line in &plant.lines {
            sqlx::query(
                "INSERT INTO lines (site_id, id, name, area_id) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (site_id, id) DO UPDATE SET name = excluded.name, \
                 area_id = excluded.area_id",
            )
            .bind(site)
            .bind(line.id.as_str())
            .bind(line.name.as_str())
            .bind(line.area.as_str())
            .execute(&mut *tx)
            .await
            .map_err(w)?;
        }
        for wc in &plant.work_centres {
            sqlx::query(
                "INSERT INTO work_centres (site_id, id, name, line_id, kind) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (site_id, id) DO UPDATE SET name = excluded.name, \
                 line_id = excluded.line_id, kind = excluded.kind",
            )
            .bind(site)
            .bind(wc.id.as_str())
            .bind(wc.name.as_str())
            .bind(wc.line.as_deref())
            .bind(wc.kind.as_str())
            .execute(&mut *tx)
            .await
            .map_err(w)?;
        }
        for t in &plant.machine_types {
            sqlx::query(
                "INSERT INTO machine_types \
                 (site_id, id, name, power_run_kw, power_idle_kw, power_down_kw) \
                 VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (site_id, id) DO UPDATE SET name = excluded.name, \
                 power_run_kw = excluded.power_run_kw, power_idle_kw = excluded.power_idle_kw, \
                 power_down_kw = excluded.power_down_kw",
            )
            .bind(site)
            .bind(t.id.as_str())
            .bind(t.name.as_str())
            .bind(t.power_kw.run)
            .bind(t.power_kw.idle)
            .bind(t.power_kw.down)
            .execute(&mut *tx)
            .await
            .map_err(w)?;
        }
        for m in &plant.machines {
            // A validated plant always resolves the path; the id alone is the honest fallback.
            let path = plant
                .equipment_path(&m.id)
                .unwrap_or_else(|| format!("{site}/{}", m.id));
            sqlx::query(
                "INSERT INTO machines \
                 (site_id, id, name, work_centre_id, machine_type_id, equipment_path) \
                 VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (site_id, id) DO UPDATE SET name = excluded.name, \
                 work_centre_id = excluded.work_centre_id, \
                 machine_type_id = excluded.machine_type_id, \
                 equipment_path = excluded.equipment_path",
            )
            .bind(site)
            .bind(m.id.as_str())
            .bind(m.name.as_str())
            .bind(m.work_centre.as_str())
            .bind(m.machine_type.as_str())
            .bind(path)
            .execute(&mut *tx)
            .await
            .map_err(w)?;
        }
        for m in &plant.materials {
            sqlx::query(
                "INSERT INTO materials \
                 (site_id, id, name, unit, unit_cost, lead_time_days, reorder_point, order_qty) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (site_id, id) DO UPDATE SET name = excluded.name, \
                 unit = excluded.unit, unit_cost = excluded.unit_cost, \
                 lead_time_days = excluded.lead_time_days, \
                 reorder_point = excluded.reorder_point, order_qty = excluded.order_qty",
            )
            .bind(site)
            .bind(m.id.as_str())
            .bind(m.name.as_str())
            .bind(m.unit.as_str())
            .bind(m.unit_cost)
            .bind(m.lead_time_days)
            .bind(m.reorder_point)
            .bind(m.order_qty)
            .execute(&mut *tx)
            .await
            .map_err(w)?;
        }
        for p in &plant.products {
            sqlx::query(
                "INSERT INTO products (site_id, id, name, name_zh, price, lot_size) \
                 VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (site_id, id) DO UPDATE SET name = excluded.name, \
                 name_zh = excluded.name_zh, price = excluded.price, lot_size = excluded.lot_size",
            )
            .bind(site)
            .bind(p.id.as_str())
            .bind(p.name.as_str())
            .bind(p.name_zh.as_deref())
            .bind(p.price)
            .bind(i64::from(p.lot_size))
            .execute(&mut *tx)
            .await
            .map_err(w)?;
        }
        tx.commit().await.map_err(w)
    }

    /// The machines of a saved plant, in equipment-path order.
    pub async fn machines(&self, plant_id: &str) -> Result<Vec<MachineRecord>, StoreError> {
        const WHAT: &str = "machines";
        let rows = sqlx::query(
            "SELECT id, name, work_centre_id, machine_type_id, equipment_path FROM machines \
             WHERE site_id = ? ORDER BY equipment_path, id",
        )
        .bind(plant_id)
        .fetch_all(&self.reader)
        .await
        .map_err(read(WHAT))?;
        rows.iter()
            .map(|row| {
                Ok(MachineRecord {
                    id: get(row, 0, WHAT)?,
                    name: get(row, 1, WHAT)?,
                    work_centre: get(row, 2, WHAT)?,
                    machine_type: get(row, 3, WHAT)?,
                    equipment_path: get(row, 4, WHAT)?,
                })
            })
            .collect()
    }

    /// Records the start of a simulation run of a saved plant.
    pub async fn start_run(&self, run: &RunInfo) -> Result<RunId, StoreError> {
        const WHAT: &str = "run";
        finite(WHAT, "sim_days", run.sim_days)?;
        let mut tx = self.begin_write(WHAT).await?;
        let known = sqlx::query("SELECT 1 FROM sites WHERE id = ?")
            .bind(run.plant_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(write(WHAT))?;
        if known.is_none() {
            return Err(StoreError::UnknownPlant(run.plant_id.clone()));
        }
        let row = sqlx::query(
            "INSERT INTO runs (site_id, seed, policy, sim_days, started_at) \
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(run.plant_id.as_str())
        .bind(run.seed.cast_signed())
        .bind(run.policy.as_str())
        .bind(run.sim_days)
        .bind(run.started_at.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(write(WHAT))?;
        let id: i64 = get(&row, 0, WHAT)?;
        tx.commit().await.map_err(write(WHAT))?;
        Ok(RunId(id))
    }

    /// What a run was started with, or `None` for an unknown run.
    pub async fn run(&self, run: RunId) -> Result<Option<RunInfo>, StoreError> {
        const WHAT: &str = "run";
        let row = sqlx::query(
            "SELECT site_id, seed, policy, sim_days, started_at FROM runs WHERE id = ?",
        )
        .bind(run.0)
        .fetch_optional(&self.reader)
        .await
        .map_err(read(WHAT))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let seed: i64 = get(&row, 1, WHAT)?;
        Ok(Some(RunInfo {
            plant_id: get(&row, 0, WHAT)?,
            seed: seed.cast_unsigned(),
            policy: get(&row, 2, WHAT)?,
            sim_days: get(&row, 3, WHAT)?,
            started_at: Timestamp(get(&row, 4, WHAT)?),
        }))
    }

    /// Appends plant events in one transaction: all of them are stored or none.
    pub async fn append_events(
        &self,
        run: Option<RunId>,
        events: &[PlantEvent],
    ) -> Result<(), StoreError> {
        const WHAT: &str = "events";
        const COLUMNS: usize = 6;
        if events.is_empty() {
            return Ok(());
        }
        // Encoded up front so that a bad detail fails before anything is written.
        let details = events
            .iter()
            .map(|e| serde_json::to_string(&e.detail))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Invalid {
                what: "event detail",
                detail: e.to_string(),
            })?;
        let run_id = run.map(|r| r.0);
        let mut tx = self.begin_write(WHAT).await?;
        check_run(&mut tx, run, WHAT).await?;
        let per_statement = MAX_VARIABLES / COLUMNS;
        let head = "INSERT INTO events (run_id, at, kind, machine, order_id, detail) VALUES ";
        let mut full_sql = None;
        for (chunk, chunk_details) in events
            .chunks(per_statement)
            .zip(details.chunks(per_statement))
        {
            let sql = if chunk.len() == per_statement {
                full_sql
                    .get_or_insert_with(|| values_sql(head, COLUMNS, per_statement))
                    .clone()
            } else {
                values_sql(head, COLUMNS, chunk.len())
            };
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (e, detail) in chunk.iter().zip(chunk_details) {
                query = query
                    .bind(run_id)
                    .bind(e.at.0)
                    .bind(e.kind.as_str())
                    .bind(e.machine.as_deref())
                    .bind(e.order.as_deref())
                    .bind(detail.as_str());
            }
            query.execute(&mut *tx).await.map_err(write(WHAT))?;
        }
        tx.commit().await.map_err(write(WHAT))
    }

    /// The events of a run (or live events for `None`), in the order they were appended.
    pub async fn events(&self, run: Option<RunId>) -> Result<Vec<PlantEvent>, StoreError> {
        const WHAT: &str = "event";
        let rows = sqlx::query(
            "SELECT at, kind, machine, order_id, detail FROM events WHERE run_id IS ? ORDER BY seq",
        )
        .bind(run.map(|r| r.0))
        .fetch_all(&self.reader)
        .await
        .map_err(read("events"))?;
        rows.iter()
            .map(|row| {
                let kind: String = get(row, 1, WHAT)?;
                let detail: String = get(row, 4, WHAT)?;
                Ok(PlantEvent {
                    at: Timestamp(get(row, 0, WHAT)?),
                    kind: event_kind(&kind)?,
                    machine: get(row, 2, WHAT)?,
                    order: get(row, 3, WHAT)?,
                    detail: json(&detail, "event detail")?,
                })
            })
            .collect()
    }

    /// Appends telemetry in one transaction: all of it is stored or none. The hot path: rows go
    /// in as multi-row inserts of four numbers each, the (machine, signal) names once per series.
    pub async fn append_telemetry(
        &self,
        run: Option<RunId>,
        readings: &[TelemetryReading],
    ) -> Result<(), StoreError> {
        const WHAT: &str = "telemetry";
        const COLUMNS: usize = 4;
        if readings.is_empty() {
            return Ok(());
        }
        // SQLite would store NaN as NULL and lose the reading; refuse the batch before writing.
        if let Some((i, r)) = readings
            .iter()
            .enumerate()
            .find(|(_, r)| !r.value.is_finite())
        {
            return Err(StoreError::Invalid {
                what: WHAT,
                detail: format!(
                    "reading {i} ({}/{} at {}) is {}; only finite values can be stored",
                    r.machine, r.signal, r.at, r.value
                ),
            });
        }
        let run_id = run.map(|r| r.0);
        let mut tx = self.begin_write(WHAT).await?;
        check_run(&mut tx, run, WHAT).await?;
        let series = series_ids(&mut tx, readings).await?;
        let per_statement = MAX_VARIABLES / COLUMNS;
        let head = "INSERT INTO telemetry (run_id, series_id, at, value) VALUES ";
        let mut full_sql = None;
        for chunk in readings.chunks(per_statement) {
            let sql = if chunk.len() == per_statement {
                full_sql
                    .get_or_insert_with(|| values_sql(head, COLUMNS, per_statement))
                    .clone()
            } else {
                values_sql(head, COLUMNS, chunk.len())
            };
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for r in chunk {
                let series_id = series
                    .get(r.machine.as_str())
                    .and_then(|signals| signals.get(r.signal.as_str()))
                    .copied()
                    .ok_or_else(|| StoreError::Corrupt {
                        what: "telemetry series",
                        detail: format!(
                            "no id for {}/{} after registering it",
                            r.machine, r.signal
                        ),
                    })?;
                query = query
                    .bind(run_id)
                    .bind(series_id)
                    .bind(r.at.0)
                    .bind(r.value);
            }
            query.execute(&mut *tx).await.map_err(write(WHAT))?;
        }
        tx.commit().await.map_err(write(WHAT))
    }

    /// The telemetry of a run (or live telemetry for `None`), in the order it was appended.
    pub async fn telemetry(&self, run: Option<RunId>) -> Result<Vec<TelemetryReading>, StoreError> {
        const WHAT: &str = "telemetry";
        let rows = sqlx::query(
            "SELECT t.at, s.machine, s.signal, t.value \
             FROM telemetry AS t JOIN telemetry_series AS s ON s.id = t.series_id \
             WHERE t.run_id IS ? ORDER BY t.seq",
        )
        .bind(run.map(|r| r.0))
        .fetch_all(&self.reader)
        .await
        .map_err(read(WHAT))?;
        rows.iter()
            .map(|row| {
                Ok(TelemetryReading {
                    at: Timestamp(get(row, 0, WHAT)?),
                    machine: get(row, 1, WHAT)?,
                    signal: get(row, 2, WHAT)?,
                    value: get(row, 3, WHAT)?,
                })
            })
            .collect()
    }

    /// Stores a run's KPIs as one name/value row per numeric field, replacing any saved before,
    /// so that a KPI added to [`Kpis`] needs no migration.
    pub async fn save_kpis(&self, run: RunId, kpis: &Kpis) -> Result<(), StoreError> {
        const WHAT: &str = "kpis";
        const COLUMNS: usize = 3;
        let value = serde_json::to_value(kpis).map_err(|e| StoreError::Invalid {
            what: WHAT,
            detail: e.to_string(),
        })?;
        let serde_json::Value::Object(fields) = value else {
            return Err(StoreError::Invalid {
                what: WHAT,
                detail: format!("expected an object of numbers, got {value}"),
            });
        };
        // serde_json writes a non-finite number as null, so null here means NaN or infinity.
        let mut rows = Vec::with_capacity(fields.len());
        for (name, field) in fields {
            match field.as_f64() {
                Some(v) if v.is_finite() => rows.push((name, v)),
                _ => {
                    return Err(StoreError::Invalid {
                        what: WHAT,
                        detail: format!("kpi `{name}` is {field}, not a finite number"),
                    });
                }
            }
        }
        let mut tx = self.begin_write(WHAT).await?;
        check_run(&mut tx, Some(run), WHAT).await?;
        sqlx::query("DELETE FROM run_kpis WHERE run_id = ?")
            .bind(run.0)
            .execute(&mut *tx)
            .await
            .map_err(write(WHAT))?;
        for chunk in rows.chunks(MAX_VARIABLES / COLUMNS) {
            let sql = values_sql(
                "INSERT INTO run_kpis (run_id, name, value) VALUES ",
                COLUMNS,
                chunk.len(),
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (name, v) in chunk {
                query = query.bind(run.0).bind(name.as_str()).bind(*v);
            }
            query.execute(&mut *tx).await.map_err(write(WHAT))?;
        }
        tx.commit().await.map_err(write(WHAT))
    }

    /// A run's KPIs by name, or `None` when none were saved for it.
    pub async fn run_kpis(&self, run: RunId) -> Result<Option<BTreeMap<String, f64>>, StoreError> {
        const WHAT: &str = "kpis";
        let rows = sqlx::query("SELECT name, value FROM run_kpis WHERE run_id = ?")
            .bind(run.0)
            .fetch_all(&self.reader)
            .await
            .map_err(read(WHAT))?;
        if rows.is_empty() {
            return Ok(None);
        }
        let kpis = rows
            .iter()
            .map(|row| Ok((get(row, 0, WHAT)?, get(row, 1, WHAT)?)))
            .collect::<Result<_, StoreError>>()?;
        Ok(Some(kpis))
    }

    /// Adds a decision to the ledger, with its outcome if it already has one. A decision whose
    /// id is already recorded is refused, never merged or overwritten.
    pub async fn record_decision(&self, decision: &Decision) -> Result<(), StoreError> {
        const WHAT: &str = "decision";
        if let Some(c) = decision.confidence {
            finite(WHAT, "confidence", c)?;
        }
        let output = to_json(&decision.output, "decision output")?;
        let measured = decision
            .outcome
            .as_ref()
            .map(|o| to_json(&o.measured, "decision outcome"))
            .transpose()?;
        let mut tx = self.begin_write(WHAT).await?;
        let inserted = sqlx::query(
            "INSERT INTO decisions \
             (id, at, skill, stage, inputs_ref, model, model_version, output, confidence, executed_by) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(decision.id.as_str())
        .bind(decision.at.0)
        .bind(decision.skill.as_str())
        .bind(decision.stage.as_str())
        .bind(decision.inputs_ref.as_str())
        .bind(decision.model.as_str())
        .bind(decision.model_version.as_str())
        .bind(output)
        .bind(decision.confidence)
        .bind(decision.executed_by.as_str())
        .execute(&mut *tx)
        .await
        .map_err(write(WHAT))?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::DuplicateDecision(decision.id.clone()));
        }
        if let (Some(outcome), Some(measured)) = (&decision.outcome, measured) {
            insert_outcome(&mut tx, &decision.id, outcome, measured).await?;
        }
        tx.commit().await.map_err(write(WHAT))
    }

    /// Records the measured outcome of a ledger decision. A re-measurement is appended; the
    /// latest becomes the decision's outcome and earlier ones stay in the audit trail.
    pub async fn record_outcome(
        &self,
        decision_id: &str,
        outcome: &Outcome,
    ) -> Result<(), StoreError> {
        const WHAT: &str = "decision outcome";
        let measured = to_json(&outcome.measured, WHAT)?;
        let mut tx = self.begin_write(WHAT).await?;
        insert_outcome(&mut tx, decision_id, outcome, measured).await?;
        tx.commit().await.map_err(write(WHAT))
    }

    /// One decision by id, with its latest outcome.
    pub async fn decision(&self, id: &str) -> Result<Option<Decision>, StoreError> {
        let row = sqlx::query(concat!(decision_select!(), " WHERE d.id = ?"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(read("decision"))?;
        row.as_ref().map(decode_decision).transpose()
    }

    /// The `limit` most recent decisions, newest first (by `at`, then by recording order).
    pub async fn decisions(&self, limit: u32) -> Result<Vec<Decision>, StoreError> {
        let rows = sqlx::query(concat!(
            decision_select!(),
            " ORDER BY d.at DESC, d.seq DESC LIMIT ?"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(read("decisions"))?;
        rows.iter().map(decode_decision).collect()
    }

    /// Row counts. Exact, so they cost a scan of each table: for status pages, not hot loops.
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        const WHAT: &str = "counts";
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM runs), (SELECT COUNT(*) FROM events), \
             (SELECT COUNT(*) FROM telemetry), (SELECT COUNT(*) FROM decisions), \
             (SELECT COUNT(*) FROM machines), (SELECT COUNT(*) FROM products)",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(read(WHAT))?;
        let count = |i: usize| -> Result<u64, StoreError> {
            let n: i64 = get(&row, i, WHAT)?;
            u64::try_from(n).map_err(|_| StoreError::Corrupt {
                what: WHAT,
                detail: format!("negative count {n}"),
            })
        };
        Ok(Counts {
            runs: count(0)?,
            events: count(1)?,
            telemetry: count(2)?,
            decisions: count(3)?,
            machines: count(4)?,
            products: count(5)?,
        })
    }

    /// Starts a write transaction that takes SQLite's write lock at once, so that a second
    /// process's writer waits (busy timeout) instead of failing when a read upgrades to a write.
    async fn begin_write(
        &self,
        what: &'static str,
    ) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(write(what))
    }
}

fn decode_decision(row: &SqliteRow) -> Result<Decision, StoreError> {
    const WHAT: &str = "decision";
    let id: String = get(row, 0, WHAT)?;
    let stage: String = get(row, 3, WHAT)?;
    let output: String = get(row, 7, WHAT)?;
    let executed_by: String = get(row, 9, WHAT)?;
    let measured_at: Option<i64> = get(row, 10, WHAT)?;
    let outcome = match measured_at {
        None => None,
        Some(at) => {
            let measured: String = get(row, 11, WHAT)?;
            Some(Outcome {
                measured_at: Timestamp(at),
                measured: json(&measured, "decision outcome")?,
                success: get(row, 12, WHAT)?,
            })
        }
    };
    let corrupt = |e: aifactory_core::decision::UnknownVariant| StoreError::Corrupt {
        what: WHAT,
        detail: format!("decision `{id}`: {e}"),
    };
    Ok(Decision {
        at: Timestamp(get(row, 1, WHAT)?),
        skill: get(row, 2, WHAT)?,
        stage: stage.parse::<LifecycleStage>().map_err(corrupt)?,
        inputs_ref: get(row, 4, WHAT)?,
        model: get(row, 5, WHAT)?,
        model_version: get(row, 6, WHAT)?,
        output: json(&output, "decision output")?,
        confidence: get(row, 8, WHAT)?,
        executed_by: executed_by.parse::<ExecutedBy>().map_err(corrupt)?,
        outcome,
        id,
    })
}

/// Appends an outcome row, refusing ids that are not in the ledger. One statement, so the check
/// and the insert cannot be split by another writer.
async fn insert_outcome(
    tx: &mut Transaction<'static, Sqlite>,
    decision_id: &str,
    outcome: &Outcome,
    measured: String,
) -> Result<(), StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO decision_outcomes (decision_id, measured_at, measured, success) \
         SELECT id, ?, ?, ? FROM decisions WHERE id = ?",
    )
    .bind(outcome.measured_at.0)
    .bind(measured)
    .bind(outcome.success)
    .bind(decision_id)
    .execute(&mut **tx)
    .await
    .map_err(write("decision outcome"))?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::UnknownDecision(decision_id.to_owned()));
    }
    Ok(())
}

/// Fails with [`StoreError::UnknownRun`] unless `run` is live (`None`) or a stored run.
async fn check_run(
    tx: &mut Transaction<'static, Sqlite>,
    run: Option<RunId>,
    what: &'static str,
) -> Result<(), StoreError> {
    let Some(run) = run else {
        return Ok(());
    };
    let found = sqlx::query("SELECT 1 FROM runs WHERE id = ?")
        .bind(run.0)
        .fetch_optional(&mut **tx)
        .await
        .map_err(write(what))?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::UnknownRun(run)),
    }
}

/// Series ids by machine, then signal, for every pair in `readings`, registering new pairs.
/// Nested maps so that lookups borrow the readings' `&str`s instead of building owned keys.
async fn series_ids(
    tx: &mut Transaction<'static, Sqlite>,
    readings: &[TelemetryReading],
) -> Result<HashMap<String, HashMap<String, i64>>, StoreError> {
    const WHAT: &str = "telemetry series";
    let rows = sqlx::query("SELECT id, machine, signal FROM telemetry_series")
        .fetch_all(&mut **tx)
        .await
        .map_err(write(WHAT))?;
    let mut ids: HashMap<String, HashMap<String, i64>> = HashMap::new();
    for row in &rows {
        let id: i64 = get(row, 0, WHAT)?;
        let machine: String = get(row, 1, WHAT)?;
        let signal: String = get(row, 2, WHAT)?;
        ids.entry(machine).or_default().insert(signal, id);
    }
    for r in readings {
        let known = ids
            .get(r.machine.as_str())
            .is_some_and(|signals| signals.contains_key(r.signal.as_str()));
        if known {
            continue;
        }
        let row = sqlx::query(
            "INSERT INTO telemetry_series (machine, signal) VALUES (?, ?) RETURNING id",
        )
        .bind(r.machine.as_str())
        .bind(r.signal.as_str())
        .fetch_one(&mut **tx)
        .await
        .map_err(write(WHAT))?;
        let id: i64 = get(&row, 0, WHAT)?;
        ids.entry(r.machine.clone())
            .or_default()
            .insert(r.signal.clone(), id);
    }
    Ok(ids)
}

/// `head` followed by `rows` tuples of `columns` placeholders.
fn values_sql(head: &str, columns: usize, rows: usize) -> String {
    let tuple = format!("({})", vec!["?"; columns].join(", "));
    let mut sql = String::with_capacity(head.len() + rows * (tuple.len() + 2));
    sql.push_str(head);
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&tuple);
    }
    sql
}

fn write(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError + Copy {
    move |source| StoreError::Write { what, source }
}

fn read(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError + Copy {
    move |source| StoreError::Read { what, source }
}

/// One column of a row; a value of the wrong type is corruption, not a panic.
fn get<'r, T>(row: &'r SqliteRow, column: usize, what: &'static str) -> Result<T, StoreError>
where
    T: Decode<'r, Sqlite> + Type<Sqlite>,
{
    row.try_get(column).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

fn finite(what: &'static str, field: &str, value: f64) -> Result<(), StoreError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            what,
            detail: format!("{field} is {value}; only finite numbers can be stored"),
        })
    }
}

fn to_json(value: &serde_json::Value, what: &'static str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid {
        what,
        detail: e.to_string(),
    })
}

fn json(text: &str, what: &'static str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what,
        detail: format!("invalid json: {e}"),
    })
}

fn event_kind(text: &str) -> Result<EventKind, StoreError> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|_| {
        StoreError::Corrupt {
            what: "event",
            detail: format!("unknown event kind `{text}`"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_sql_writes_one_tuple_per_row() {
        assert_eq!(
            values_sql("INSERT INTO t (a, b) VALUES ", 2, 3),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)"
        );
    }

    #[tokio::test]
    async fn the_engine_refuses_to_rewrite_the_ledger() -> Result<(), StoreError> {
        let store = SqliteStore::open_in_memory().await?;
        let decision = Decision {
            id: "D-1".to_owned(),
            at: Timestamp(1),
            skill: "rul".to_owned(),
            stage: LifecycleStage::Production,
            inputs_ref: "window".to_owned(),
            model: "m".to_owned(),
            model_version: "1".to_owned(),
            output: serde_json::json!({"action": "service"}),
            confidence: None,
            executed_by: ExecutedBy::None,
            outcome: Some(Outcome {
                measured_at: Timestamp(2),
                measured: serde_json::json!({}),
                success: None,
            }),
        };
        store.record_decision(&decision).await?;
        for sql in [
            "UPDATE decisions SET skill = 'forged'",
            "DELETE FROM decisions",
            "UPDATE decision_outcomes SET success = 1",
            "DELETE FROM decision_outcomes",
        ] {
            let result = sqlx::query(sql).execute(&store.writer).await;
            assert!(result.is_err(), "`{sql}` must be refused");
        }
        assert_eq!(store.decision("D-1").await?, Some(decision));
        Ok(())
    }
}
