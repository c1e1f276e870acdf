//! The SQLite engine: one file in WAL mode, one writer connection and a few readers.

mod accounts;
mod agent;
mod ingest;
mod proposals;

use crate::common::{
    check_readings, count, decision_select, decode_decision, decode_event, decode_reading,
    event_details, finite, get, kpi_rows, read, write,
};
use crate::{Counts, MachineRecord, RunId, RunInfo, StoreError, chain};
use aifactory_core::{
    Decision, Kpis, LedgerRecord, Outcome, Plant, PlantEvent, TelemetryReading, Timestamp,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Sqlite, Transaction};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

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
    series_cache: std::sync::Arc<crate::ingest::SeriesCache>,
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
        let chained_before = chain_migration_applied(&writer).await;
        MIGRATOR.run(&writer).await.map_err(StoreError::Migrate)?;
        // `query_only` so that a write sent to the wrong pool fails instead of racing the writer.
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(base.pragma("query_only", "ON"))
            .await
            .map_err(open_error)?;
        let store = SqliteStore {
            writer,
            reader,
            series_cache: std::sync::Arc::default(),
        };
        if !chained_before {
            store.chain_unchained_store().await?;
        }
        Ok(store)
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
            series_cache: std::sync::Arc::default(),
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

    /// Every run of a plant, oldest first.
    pub async fn runs(&self, plant_id: &str) -> Result<Vec<(RunId, RunInfo)>, StoreError> {
        const WHAT: &str = "runs";
        let rows = sqlx::query(
            "SELECT id, site_id, seed, policy, sim_days, started_at FROM runs \
             WHERE site_id = ? ORDER BY id",
        )
        .bind(plant_id)
        .fetch_all(&self.reader)
        .await
        .map_err(read(WHAT))?;
        rows.iter()
            .map(|row| {
                let seed: i64 = get(row, 2, WHAT)?;
                Ok((
                    RunId(get(row, 0, WHAT)?),
                    RunInfo {
                        plant_id: get(row, 1, WHAT)?,
                        seed: seed.cast_unsigned(),
                        policy: get(row, 3, WHAT)?,
                        sim_days: get(row, 4, WHAT)?,
                        started_at: Timestamp(get(row, 5, WHAT)?),
                    },
                ))
            })
            .collect()
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
        let details = event_details(events)?;
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
        let rows = sqlx::query(
            "SELECT at, kind, machine, order_id, detail FROM events WHERE run_id IS ? ORDER BY seq",
        )
        .bind(run.map(|r| r.0))
        .fetch_all(&self.reader)
        .await
        .map_err(read("events"))?;
        rows.iter().map(decode_event).collect()
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
        check_readings(readings)?;
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
        rows.iter().map(decode_reading).collect()
    }

    /// Machines with at least one telemetry reading stored (any run): the data coverage the
    /// tier assessment counts.
    pub async fn streaming_machines(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT s.machine FROM telemetry_series AS s \
             WHERE EXISTS (SELECT 1 FROM telemetry AS t WHERE t.series_id = s.id) \
             ORDER BY s.machine",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(read("streaming machines"))?;
        rows.iter()
            .map(|r| get::<_, String>(r, 0, "streaming machines"))
            .collect()
    }

    /// Stores a run's KPIs as one name/value row per numeric field, replacing any saved before,
    /// so that a KPI added to [`Kpis`] needs no migration.
    pub async fn save_kpis(&self, run: RunId, kpis: &Kpis) -> Result<(), StoreError> {
        const WHAT: &str = "kpis";
        const COLUMNS: usize = 3;
        let rows = kpi_rows(kpis)?;
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
        self.append_ledger(&[LedgerRecord::Decision(decision.clone())])
            .await
    }

    /// Records the measured outcome of a ledger decision. A re-measurement is appended; the
    /// latest becomes the decision's outcome and earlier ones stay in the audit trail.
    pub async fn record_outcome(
        &self,
        decision_id: &str,
        outcome: &Outcome,
    ) -> Result<(), StoreError> {
        self.append_ledger(&[LedgerRecord::Outcome {
            decision: decision_id.to_owned(),
            outcome: outcome.clone(),
        }])
        .await
    }

    /// Appends decisions, outcomes and model updates to the ledger in one transaction, in the
    /// order given, each chained to the entry before it (`ledger` table: seq, prev, hash). All
    /// or nothing: a duplicate decision id or an outcome of an unknown decision fails the batch.
    pub async fn append_ledger(&self, records: &[LedgerRecord]) -> Result<(), StoreError> {
        const WHAT: &str = "ledger";
        let entries = chain::entries(records);
        let prepared = entries
            .iter()
            .map(chain::prepare)
            .collect::<Result<Vec<_>, _>>()?;
        let mut tx = self.begin_write(WHAT).await?;
        let (mut seq, mut prev) = ledger_head(&mut tx).await?;
        for (record, prepared) in entries.iter().zip(prepared) {
            let row_seq = insert_record(&mut tx, prepared).await?;
            seq += 1;
            let hash = chain::hash(seq, &prev, record)?;
            insert_chain_entry(&mut tx, seq, chain::kind(record), row_seq, &prev, &hash).await?;
            prev = hash;
        }
        tx.commit().await.map_err(write(WHAT))
    }

    /// The whole ledger as its chain, oldest first, from the store's own rows: every entry with
    /// its stored `seq`, `prev` and `hash` and the record as its table holds it now, for
    /// `aifactory_assess::verify_chain`. An entry whose record was deleted, or a record no entry
    /// chains, is an error naming it.
    pub async fn ledger(&self) -> Result<Vec<aifactory_assess::LedgerEntry>, StoreError> {
        let rows = sqlx::query(chain::LEDGER_SELECT)
            .fetch_all(&self.reader)
            .await
            .map_err(read("ledger"))?;
        let entries = rows
            .iter()
            .map(chain::decode_entry)
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(row) = sqlx::query(chain::UNCHAINED_SELECT)
            .fetch_optional(&self.reader)
            .await
            .map_err(read("ledger"))?
        {
            return Err(chain::unchained(
                get(&row, 0, "ledger")?,
                get(&row, 1, "ledger")?,
            ));
        }
        Ok(entries)
    }

    /// Chains the records of a store written before the ledger had its chain: decisions in the
    /// order they were recorded, then their outcomes. Runs only at the open that adds the chain
    /// to the schema (and only if the chain is empty), so a chain emptied later is tampering,
    /// found by [`Self::ledger`], never quietly rebuilt.
    async fn chain_unchained_store(&self) -> Result<(), StoreError> {
        const WHAT: &str = "ledger";
        let mut tx = self.begin_write(WHAT).await?;
        let (seq, _) = ledger_head(&mut tx).await?;
        if seq > 0 {
            return Ok(());
        }
        let decisions = sqlx::query(
            "SELECT seq, id, at, skill, stage, inputs_ref, model, model_version, output, \
             confidence, executed_by FROM decisions ORDER BY seq",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(read(WHAT))?;
        let outcomes = sqlx::query(
            "SELECT seq, decision_id, measured_at, measured, success \
             FROM decision_outcomes ORDER BY seq",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(read(WHAT))?;
        let records = chain::unchained_records(&decisions, &outcomes)?;
        let mut prev = aifactory_assess::ledger::GENESIS.to_owned();
        for (i, (row_seq, record)) in records.iter().enumerate() {
            let seq = i as i64 + 1;
            let hash = chain::hash(seq, &prev, record)?;
            insert_chain_entry(&mut tx, seq, chain::kind(record), *row_seq, &prev, &hash).await?;
            prev = hash;
        }
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
        let column = |i: usize| count(get(&row, i, WHAT)?, WHAT);
        Ok(Counts {
            runs: column(0)?,
            events: column(1)?,
            telemetry: column(2)?,
            decisions: column(3)?,
            machines: column(4)?,
            products: column(5)?,
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

/// Whether the schema already had the ledger's chain (migration 7) before this open.
async fn chain_migration_applied(pool: &SqlitePool) -> bool {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations WHERE version = 7")
        .fetch_one(pool)
        .await
        .is_ok_and(|n| n > 0)
}

/// The last chain entry's position and hash; `(0, GENESIS)` for an empty ledger.
async fn ledger_head(tx: &mut Transaction<'static, Sqlite>) -> Result<(i64, String), StoreError> {
    let row = sqlx::query("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut **tx)
        .await
        .map_err(read("ledger"))?;
    match row {
        Some(row) => Ok((get(&row, 0, "ledger")?, get(&row, 1, "ledger")?)),
        None => Ok((0, aifactory_assess::ledger::GENESIS.to_owned())),
    }
}

async fn insert_chain_entry(
    tx: &mut Transaction<'static, Sqlite>,
    seq: i64,
    kind: &str,
    row_seq: i64,
    prev: &str,
    hash: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO ledger (seq, kind, row_seq, prev, hash) VALUES (?, ?, ?, ?, ?)")
        .bind(seq)
        .bind(kind)
        .bind(row_seq)
        .bind(prev)
        .bind(hash)
        .execute(&mut **tx)
        .await
        .map_err(write("ledger"))?;
    Ok(())
}

/// Writes one record to its table and returns its row's `seq`. A decision id already recorded
/// and an outcome of an unknown decision are refused; each is one statement, so the check and
/// the insert cannot be split by another writer.
async fn insert_record(
    tx: &mut Transaction<'static, Sqlite>,
    record: chain::Prepared<'_>,
) -> Result<i64, StoreError> {
    match record {
        chain::Prepared::Decision { decision, output } => {
            const WHAT: &str = "decision";
            let row = sqlx::query(
                "INSERT INTO decisions \
                 (id, at, skill, stage, inputs_ref, model, model_version, output, confidence, executed_by) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING seq",
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
            .fetch_optional(&mut **tx)
            .await
            .map_err(write(WHAT))?;
            match row {
                Some(row) => get(&row, 0, WHAT),
                None => Err(StoreError::DuplicateDecision(decision.id.clone())),
            }
        }
        chain::Prepared::Outcome {
            decision,
            outcome,
            measured,
        } => {
            const WHAT: &str = "decision outcome";
            let row = sqlx::query(
                "INSERT INTO decision_outcomes (decision_id, measured_at, measured, success) \
                 SELECT id, ?, ?, ? FROM decisions WHERE id = ? RETURNING seq",
            )
            .bind(outcome.measured_at.0)
            .bind(measured)
            .bind(outcome.success)
            .bind(decision)
            .fetch_optional(&mut **tx)
            .await
            .map_err(write(WHAT))?;
            match row {
                Some(row) => get(&row, 0, WHAT),
                None => Err(StoreError::UnknownDecision(decision.to_owned())),
            }
        }
        chain::Prepared::ModelUpdate {
            at,
            skill,
            model,
            from_version,
            to_version,
            trigger,
        } => {
            const WHAT: &str = "model update";
            let row = sqlx::query(
                "INSERT INTO model_updates \
                 (at, skill, model, from_version, to_version, triggered_by) \
                 VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
            )
            .bind(at.0)
            .bind(skill)
            .bind(model)
            .bind(from_version)
            .bind(to_version)
            .bind(trigger)
            .fetch_one(&mut **tx)
            .await
            .map_err(write(WHAT))?;
            get(&row, 0, WHAT)
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use aifactory_core::{ExecutedBy, LifecycleStage};

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
