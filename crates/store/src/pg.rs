//! The PostgreSQL engine: one connection pool, the same methods and contract as the SQLite
//! engine, its own migrations in `migrations_pg/`, and `UNNEST`-based bulk inserts.

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
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Transaction};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations_pg");

/// Rows per bulk insert. Each column travels as one array parameter, so this bounds the size of
/// a single message rather than a parameter count; batches above it span several statements.
const ROWS_PER_STATEMENT: usize = 10_000;

/// Connections in the pool: a server's concurrent requests plus a recorder's writes.
const POOL_SIZE: u32 = 8;

/// How long a caller waits for a pooled connection (or a first connection) before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// The store on a PostgreSQL server.
///
/// Reads and writes share one pool: PostgreSQL serialises conflicting writers itself, so there
/// is no single-writer connection as on SQLite. Every multi-statement write is one transaction.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    series_cache: std::sync::Arc<crate::ingest::SeriesCache>,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user[:password]@host[:port]/database`)
    /// and applies any migrations it has not seen yet. The tables go into the first schema of the
    /// connection's `search_path`; to keep a store in its own (existing) schema, add
    /// `?options[search_path]=name` to the URL.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let connect_error = |source| StoreError::Connect {
            url: redact(url),
            source,
        };
        let options = PgConnectOptions::from_str(url).map_err(connect_error)?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        let chained_before = chain_migration_applied(&pool).await;
        MIGRATOR.run(&pool).await.map_err(StoreError::Migrate)?;
        let store = PgStore {
            pool,
            series_cache: std::sync::Arc::default(),
        };
        if !chained_before {
            store.chain_unchained_store().await?;
        }
        Ok(store)
    }

    /// Closes every connection of the pool.
    pub async fn close(self) {
        self.pool.close().await;
    }

    /// Writes a plant's master data, inserting new rows and updating existing ones by id.
    /// Nothing is deleted: events, telemetry and decisions may still name a machine that a newer
    /// plant file dropped.
    pub async fn save_plant(&self, plant: &Plant) -> Result<(), StoreError> {
        const WHAT: &str = "plant master data";
        let w = write(WHAT);
        let site = plant.plant.id.as_str();
        let mut tx = self.begin(WHAT).await?;

        let (start_at, utc_offset_min) = plant.start();
        sqlx::query(
            "INSERT INTO sites (id, name, name_zh, industry, currency, start_at, utc_offset_min) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
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
                "INSERT INTO areas (site_id, id, name) VALUES ($1, $2, $3) \
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
                "INSERT INTO lines (site_id, id, name, area_id) VALUES ($1, $2, $3, $4) \
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
                "INSERT INTO work_centres (site_id, id, name, line_id, kind) \
                 VALUES ($1, $2, $3, $4, $5) \
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
                 VALUES ($1, $2, $3, $4, $5, $6) \
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
                 VALUES ($1, $2, $3, $4, $5, $6) \
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
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
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
                 VALUES ($1, $2, $3, $4, $5, $6) \
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
        // `COLLATE "C"` orders by bytes, as SQLite does, whatever the database's locale.
        let rows = sqlx::query(
            "SELECT id, name, work_centre_id, machine_type_id, equipment_path FROM machines \
             WHERE site_id = $1 ORDER BY equipment_path COLLATE \"C\", id COLLATE \"C\"",
        )
        .bind(plant_id)
        .fetch_all(&self.pool)
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
        let mut tx = self.begin(WHAT).await?;
        let known = sqlx::query("SELECT 1 FROM sites WHERE id = $1")
            .bind(run.plant_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(write(WHAT))?;
        if known.is_none() {
            return Err(StoreError::UnknownPlant(run.plant_id.clone()));
        }
        let row = sqlx::query(
            "INSERT INTO runs (site_id, seed, policy, sim_days, started_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
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
             WHERE site_id = $1 ORDER BY id",
        )
        .bind(plant_id)
        .fetch_all(&self.pool)
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
            "SELECT site_id, seed, policy, sim_days, started_at FROM runs WHERE id = $1",
        )
        .bind(run.0)
        .fetch_optional(&self.pool)
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
        if events.is_empty() {
            return Ok(());
        }
        let details = event_details(events)?;
        let run_id = run.map(|r| r.0);
        let mut tx = self.begin(WHAT).await?;
        check_run(&mut tx, run, WHAT).await?;
        for (chunk, chunk_details) in events
            .chunks(ROWS_PER_STATEMENT)
            .zip(details.chunks(ROWS_PER_STATEMENT))
        {
            let at: Vec<i64> = chunk.iter().map(|e| e.at.0).collect();
            let kind: Vec<&str> = chunk.iter().map(|e| e.kind.as_str()).collect();
            let machine: Vec<Option<&str>> = chunk.iter().map(|e| e.machine.as_deref()).collect();
            let order: Vec<Option<&str>> = chunk.iter().map(|e| e.order.as_deref()).collect();
            // Sequence numbers follow the batch's order (ORDER BY the ordinality), so that reads
            // by `seq` give the events back as they were appended.
            sqlx::query(
                "INSERT INTO events (run_id, at, kind, machine, order_id, detail) \
                 SELECT $1, b.at, b.kind, b.machine, b.order_id, b.detail \
                 FROM UNNEST($2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[]) \
                 WITH ORDINALITY AS b (at, kind, machine, order_id, detail, n) ORDER BY b.n",
            )
            .bind(run_id)
            .bind(at)
            .bind(kind)
            .bind(machine)
            .bind(order)
            .bind(chunk_details)
            .execute(&mut *tx)
            .await
            .map_err(write(WHAT))?;
        }
        tx.commit().await.map_err(write(WHAT))
    }

    /// The events of a run (or live events for `None`), in the order they were appended.
    pub async fn events(&self, run: Option<RunId>) -> Result<Vec<PlantEvent>, StoreError> {
        // Two statements rather than `IS NOT DISTINCT FROM`, which no index can serve.
        let query = match run {
            Some(run) => sqlx::query(
                "SELECT at, kind, machine, order_id, detail FROM events \
                 WHERE run_id = $1 ORDER BY seq",
            )
            .bind(run.0),
            None => sqlx::query(
                "SELECT at, kind, machine, order_id, detail FROM events \
                 WHERE run_id IS NULL ORDER BY seq",
            ),
        };
        let rows = query.fetch_all(&self.pool).await.map_err(read("events"))?;
        rows.iter().map(decode_event).collect()
    }

    /// Appends telemetry in one transaction: all of it is stored or none. The hot path: each
    /// statement sends a column as one array, and the (machine, signal) names once per series.
    pub async fn append_telemetry(
        &self,
        run: Option<RunId>,
        readings: &[TelemetryReading],
    ) -> Result<(), StoreError> {
        const WHAT: &str = "telemetry";
        if readings.is_empty() {
            return Ok(());
        }
        check_readings(readings)?;
        let run_id = run.map(|r| r.0);
        let mut tx = self.begin(WHAT).await?;
        check_run(&mut tx, run, WHAT).await?;
        let series = series_ids(&mut tx, readings).await?;
        for chunk in readings.chunks(ROWS_PER_STATEMENT) {
            let series_id = chunk
                .iter()
                .map(|r| {
                    series
                        .get(r.machine.as_str())
                        .and_then(|signals| signals.get(r.signal.as_str()))
                        .copied()
                        .ok_or_else(|| StoreError::Corrupt {
                            what: "telemetry series",
                            detail: format!(
                                "no id for {}/{} after registering it",
                                r.machine, r.signal
                            ),
                        })
                })
                .collect::<Result<Vec<i64>, StoreError>>()?;
            let at: Vec<i64> = chunk.iter().map(|r| r.at.0).collect();
            let value: Vec<f64> = chunk.iter().map(|r| r.value).collect();
            sqlx::query(
                "INSERT INTO telemetry (run_id, series_id, at, value) \
                 SELECT $1, b.series_id, b.at, b.value \
                 FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::DOUBLE PRECISION[]) \
                 WITH ORDINALITY AS b (series_id, at, value, n) ORDER BY b.n",
            )
            .bind(run_id)
            .bind(series_id)
            .bind(at)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(write(WHAT))?;
        }
        tx.commit().await.map_err(write(WHAT))
    }

    /// The telemetry of a run (or live telemetry for `None`), in the order it was appended.
    pub async fn telemetry(&self, run: Option<RunId>) -> Result<Vec<TelemetryReading>, StoreError> {
        const WHAT: &str = "telemetry";
        let query = match run {
            Some(run) => sqlx::query(
                "SELECT t.at, s.machine, s.signal, t.value \
                 FROM telemetry AS t JOIN telemetry_series AS s ON s.id = t.series_id \
                 WHERE t.run_id = $1 ORDER BY t.seq",
            )
            .bind(run.0),
            None => sqlx::query(
                "SELECT t.at, s.machine, s.signal, t.value \
                 FROM telemetry AS t JOIN telemetry_series AS s ON s.id = t.series_id \
                 WHERE t.run_id IS NULL ORDER BY t.seq",
            ),
        };
        let rows = query.fetch_all(&self.pool).await.map_err(read(WHAT))?;
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
        .fetch_all(&self.pool)
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
        let (names, values): (Vec<String>, Vec<f64>) = kpi_rows(kpis)?.into_iter().unzip();
        let mut tx = self.begin(WHAT).await?;
        check_run(&mut tx, Some(run), WHAT).await?;
        sqlx::query("DELETE FROM run_kpis WHERE run_id = $1")
            .bind(run.0)
            .execute(&mut *tx)
            .await
            .map_err(write(WHAT))?;
        // A few dozen rows: one statement whatever their number.
        sqlx::query(
            "INSERT INTO run_kpis (run_id, name, value) \
             SELECT $1, b.name, b.value FROM UNNEST($2::TEXT[], $3::DOUBLE PRECISION[]) \
             AS b (name, value)",
        )
        .bind(run.0)
        .bind(names)
        .bind(values)
        .execute(&mut *tx)
        .await
        .map_err(write(WHAT))?;
        tx.commit().await.map_err(write(WHAT))
    }

    /// A run's KPIs by name, or `None` when none were saved for it.
    pub async fn run_kpis(&self, run: RunId) -> Result<Option<BTreeMap<String, f64>>, StoreError> {
        const WHAT: &str = "kpis";
        let rows = sqlx::query("SELECT name, value FROM run_kpis WHERE run_id = $1")
            .bind(run.0)
            .fetch_all(&self.pool)
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
        let mut tx = self.begin(WHAT).await?;
        // One chain: a second writer waits here until this transaction ends (readers do not).
        sqlx::query("LOCK TABLE ledger IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(write(WHAT))?;
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
            .fetch_all(&self.pool)
            .await
            .map_err(read("ledger"))?;
        let entries = rows
            .iter()
            .map(chain::decode_entry)
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(row) = sqlx::query(chain::UNCHAINED_SELECT)
            .fetch_optional(&self.pool)
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
        let mut tx = self.begin(WHAT).await?;
        sqlx::query("LOCK TABLE ledger IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(write(WHAT))?;
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
        let row = sqlx::query(concat!(decision_select!(), " WHERE d.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(read("decision"))?;
        row.as_ref().map(decode_decision).transpose()
    }

    /// The `limit` most recent decisions, newest first (by `at`, then by recording order).
    pub async fn decisions(&self, limit: u32) -> Result<Vec<Decision>, StoreError> {
        let rows = sqlx::query(concat!(
            decision_select!(),
            " ORDER BY d.at DESC, d.seq DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
        .fetch_one(&self.pool)
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

    async fn begin(
        &self,
        what: &'static str,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(write(what))
    }
}

/// Whether the schema already had the ledger's chain (migration 7) before this open.
async fn chain_migration_applied(pool: &PgPool) -> bool {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations WHERE version = 7")
        .fetch_one(pool)
        .await
        .is_ok_and(|n| n > 0)
}

/// The last chain entry's position and hash; `(0, GENESIS)` for an empty ledger.
async fn ledger_head(tx: &mut Transaction<'static, Postgres>) -> Result<(i64, String), StoreError> {
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
    tx: &mut Transaction<'static, Postgres>,
    seq: i64,
    kind: &str,
    row_seq: i64,
    prev: &str,
    hash: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO ledger (seq, kind, row_seq, prev, hash) VALUES ($1, $2, $3, $4, $5)")
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
    tx: &mut Transaction<'static, Postgres>,
    record: chain::Prepared<'_>,
) -> Result<i64, StoreError> {
    match record {
        chain::Prepared::Decision { decision, output } => {
            const WHAT: &str = "decision";
            let row = sqlx::query(
                "INSERT INTO decisions \
                 (id, at, skill, stage, inputs_ref, model, model_version, output, confidence, executed_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING RETURNING seq",
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
                 SELECT id, $1, $2, $3 FROM decisions WHERE id = $4 RETURNING seq",
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
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
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
    tx: &mut Transaction<'static, Postgres>,
    run: Option<RunId>,
    what: &'static str,
) -> Result<(), StoreError> {
    let Some(run) = run else {
        return Ok(());
    };
    let found = sqlx::query("SELECT 1 FROM runs WHERE id = $1")
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
/// Looks the batch's pairs up first and inserts only when one is missing, because an insert
/// that conflicts still consumes an identity value and the hot path should not burn them.
async fn series_ids(
    tx: &mut Transaction<'static, Postgres>,
    readings: &[TelemetryReading],
) -> Result<HashMap<String, HashMap<String, i64>>, StoreError> {
    const WHAT: &str = "telemetry series";
    // Sorted, so that concurrent writers registering overlapping pairs lock them in the same
    // order and cannot deadlock.
    let pairs: BTreeSet<(&str, &str)> = readings
        .iter()
        .map(|r| (r.machine.as_str(), r.signal.as_str()))
        .collect();
    let (machines, signals): (Vec<&str>, Vec<&str>) = pairs.iter().copied().unzip();
    let mut rows = lookup_series(tx, &machines, &signals).await?;
    if rows.len() < pairs.len() {
        sqlx::query(
            "INSERT INTO telemetry_series (machine, signal) \
             SELECT b.machine, b.signal FROM UNNEST($1::TEXT[], $2::TEXT[]) \
             WITH ORDINALITY AS b (machine, signal, n) ORDER BY b.n \
             ON CONFLICT (machine, signal) DO NOTHING",
        )
        .bind(machines.as_slice())
        .bind(signals.as_slice())
        .execute(&mut **tx)
        .await
        .map_err(write(WHAT))?;
        rows = lookup_series(tx, &machines, &signals).await?;
    }
    let mut ids: HashMap<String, HashMap<String, i64>> = HashMap::new();
    for row in &rows {
        let id: i64 = get(row, 0, WHAT)?;
        let machine: String = get(row, 1, WHAT)?;
        let signal: String = get(row, 2, WHAT)?;
        ids.entry(machine).or_default().insert(signal, id);
    }
    Ok(ids)
}

/// The stored series among the given (machine, signal) pairs, as rows of (id, machine, signal).
async fn lookup_series(
    tx: &mut Transaction<'static, Postgres>,
    machines: &[&str],
    signals: &[&str],
) -> Result<Vec<PgRow>, StoreError> {
    sqlx::query(
        "SELECT s.id, s.machine, s.signal FROM telemetry_series AS s \
         JOIN UNNEST($1::TEXT[], $2::TEXT[]) AS b (machine, signal) \
         ON s.machine = b.machine AND s.signal = b.signal",
    )
    .bind(machines)
    .bind(signals)
    .fetch_all(&mut **tx)
    .await
    .map_err(write("telemetry series"))
}

/// `url` without its password (in the user part or a `password=` parameter), for messages.
fn redact(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let mut out = match head.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((user_info, host)) => {
                    let user = user_info.split(':').next().unwrap_or_default();
                    format!("{scheme}://{user}@{host}{path}")
                }
                None => head.to_owned(),
            }
        }
        None => head.to_owned(),
    };
    if let Some(query) = query {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| !p.to_ascii_lowercase().starts_with("password="))
            .collect();
        if !kept.is_empty() {
            out.push('?');
            out.push_str(&kept.join("&"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_drops_passwords_and_keeps_the_rest() {
        assert_eq!(
            redact("postgres://app:s3cret@db.local:5433/plant?sslmode=require&password=x"),
            "postgres://app@db.local:5433/plant?sslmode=require"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(redact("postgresql://h"), "postgresql://h");
    }
}
