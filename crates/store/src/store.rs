//! [`Store`]: one type over both engines, so that callers choose the engine by where the data
//! lives (a file path or a `postgres://` URL) and not in their code.

use crate::ingest::{
    Bucket, IngestBatch, IngestReport, Latest, OtherValue, PruneReport, QuarantineRow, Resolution,
    Retention, SeriesName,
};
use crate::{Counts, MachineRecord, PgStore, RunId, RunInfo, SqliteStore, StoreError};
use aifactory_core::{Decision, Kpis, Outcome, Plant, PlantEvent, TelemetryReading, Timestamp};
use std::collections::BTreeMap;
use std::path::Path;

/// The store on either engine; every method forwards to the engine's method of the same name,
/// which keep the same contract (the conformance tests run on both).
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Runs the same call on whichever engine `$self` holds.
macro_rules! forward {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Store::Sqlite($store) => $call,
            Store::Postgres($store) => $call,
        }
    };
}

impl Store {
    /// Opens the store at `location`: a `postgres://` or `postgresql://` URL connects to
    /// PostgreSQL (see [`PgStore::open`]); anything else is the path of a SQLite file, created
    /// if missing (see [`SqliteStore::open`]).
    pub async fn open(location: &str) -> Result<Self, StoreError> {
        if is_postgres_url(location) {
            PgStore::open(location).await.map(Store::Postgres)
        } else {
            Self::open_path(Path::new(location)).await
        }
    }

    /// Opens the SQLite file at `path`, for paths that are not UTF-8.
    pub async fn open_path(path: &Path) -> Result<Self, StoreError> {
        SqliteStore::open(path).await.map(Store::Sqlite)
    }

    /// An empty SQLite store in memory, for tests.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        SqliteStore::open_in_memory().await.map(Store::Sqlite)
    }

    /// The engine's name, `"sqlite"` or `"postgres"`, for status pages and logs.
    pub fn engine(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Closes every connection (on SQLite this also checkpoints the WAL).
    pub async fn close(self) {
        forward!(self, s => s.close().await)
    }

    /// See [`SqliteStore::save_plant`].
    pub async fn save_plant(&self, plant: &Plant) -> Result<(), StoreError> {
        forward!(self, s => s.save_plant(plant).await)
    }

    /// See [`SqliteStore::machines`].
    pub async fn machines(&self, plant_id: &str) -> Result<Vec<MachineRecord>, StoreError> {
        forward!(self, s => s.machines(plant_id).await)
    }

    /// See [`SqliteStore::start_run`].
    pub async fn start_run(&self, run: &RunInfo) -> Result<RunId, StoreError> {
        forward!(self, s => s.start_run(run).await)
    }

    /// See [`SqliteStore::runs`].
    pub async fn runs(&self, plant_id: &str) -> Result<Vec<(RunId, RunInfo)>, StoreError> {
        forward!(self, s => s.runs(plant_id).await)
    }

    /// See [`SqliteStore::run`].
    pub async fn run(&self, run: RunId) -> Result<Option<RunInfo>, StoreError> {
        forward!(self, s => s.run(run).await)
    }

    /// See [`SqliteStore::append_events`].
    pub async fn append_events(
        &self,
        run: Option<RunId>,
        events: &[PlantEvent],
    ) -> Result<(), StoreError> {
        forward!(self, s => s.append_events(run, events).await)
    }

    /// See [`SqliteStore::events`].
    pub async fn events(&self, run: Option<RunId>) -> Result<Vec<PlantEvent>, StoreError> {
        forward!(self, s => s.events(run).await)
    }

    /// See [`SqliteStore::append_telemetry`].
    pub async fn append_telemetry(
        &self,
        run: Option<RunId>,
        readings: &[TelemetryReading],
    ) -> Result<(), StoreError> {
        forward!(self, s => s.append_telemetry(run, readings).await)
    }

    /// See [`SqliteStore::telemetry`].
    pub async fn telemetry(&self, run: Option<RunId>) -> Result<Vec<TelemetryReading>, StoreError> {
        forward!(self, s => s.telemetry(run).await)
    }

    /// See [`SqliteStore::streaming_machines`].
    pub async fn streaming_machines(&self) -> Result<Vec<String>, StoreError> {
        forward!(self, s => s.streaming_machines().await)
    }

    /// See [`SqliteStore::save_kpis`].
    pub async fn save_kpis(&self, run: RunId, kpis: &Kpis) -> Result<(), StoreError> {
        forward!(self, s => s.save_kpis(run, kpis).await)
    }

    /// See [`SqliteStore::run_kpis`].
    pub async fn run_kpis(&self, run: RunId) -> Result<Option<BTreeMap<String, f64>>, StoreError> {
        forward!(self, s => s.run_kpis(run).await)
    }

    /// See [`SqliteStore::record_decision`].
    pub async fn record_decision(&self, decision: &Decision) -> Result<(), StoreError> {
        forward!(self, s => s.record_decision(decision).await)
    }

    /// See [`SqliteStore::record_outcome`].
    pub async fn record_outcome(
        &self,
        decision_id: &str,
        outcome: &Outcome,
    ) -> Result<(), StoreError> {
        forward!(self, s => s.record_outcome(decision_id, outcome).await)
    }

    /// See [`SqliteStore::append_ledger`].
    pub async fn append_ledger(
        &self,
        records: &[aifactory_core::LedgerRecord],
    ) -> Result<(), StoreError> {
        forward!(self, s => s.append_ledger(records).await)
    }

    /// See [`SqliteStore::ledger`].
    pub async fn ledger(&self) -> Result<Vec<aifactory_assess::LedgerEntry>, StoreError> {
        forward!(self, s => s.ledger().await)
    }

    /// See [`SqliteStore::decision`].
    pub async fn decision(&self, id: &str) -> Result<Option<Decision>, StoreError> {
        forward!(self, s => s.decision(id).await)
    }

    /// See [`SqliteStore::decisions`].
    pub async fn decisions(&self, limit: u32) -> Result<Vec<Decision>, StoreError> {
        forward!(self, s => s.decisions(limit).await)
    }

    /// See [`SqliteStore::counts`].
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        forward!(self, s => s.counts().await)
    }

    /// See [`SqliteStore::save_user`].
    pub async fn save_user(&self, user: &crate::StoredUser) -> Result<(), StoreError> {
        forward!(self, s => s.save_user(user).await)
    }

    /// See [`SqliteStore::users`].
    pub async fn users(&self) -> Result<Vec<crate::StoredUser>, StoreError> {
        forward!(self, s => s.users().await)
    }

    /// See [`SqliteStore::save_token`].
    pub async fn save_token(&self, token: &crate::StoredToken) -> Result<(), StoreError> {
        forward!(self, s => s.save_token(token).await)
    }

    /// See [`SqliteStore::tokens`].
    pub async fn tokens(&self) -> Result<Vec<crate::StoredToken>, StoreError> {
        forward!(self, s => s.tokens().await)
    }

    /// See [`SqliteStore::revoke_token`].
    pub async fn revoke_token(
        &self,
        id: &str,
        by: &str,
        at: aifactory_core::Timestamp,
    ) -> Result<bool, StoreError> {
        forward!(self, s => s.revoke_token(id, by, at).await)
    }

    /// See [`SqliteStore::delete_expired_tokens`].
    pub async fn delete_expired_tokens(
        &self,
        before: aifactory_core::Timestamp,
    ) -> Result<u64, StoreError> {
        forward!(self, s => s.delete_expired_tokens(before).await)
    }

    /// See [`SqliteStore::add_proposal`].
    pub async fn add_proposal(&self, p: &crate::NewProposal) -> Result<i64, StoreError> {
        forward!(self, s => s.add_proposal(p).await)
    }

    /// See [`SqliteStore::proposal`].
    pub async fn proposal(&self, seq: i64) -> Result<Option<crate::StoredProposal>, StoreError> {
        forward!(self, s => s.proposal(seq).await)
    }

    /// See [`SqliteStore::proposals`].
    pub async fn proposals(
        &self,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<crate::StoredProposal>, StoreError> {
        forward!(self, s => s.proposals(status, limit).await)
    }

    /// See [`SqliteStore::transition_proposal`].
    pub async fn transition_proposal(
        &self,
        seq: i64,
        from: &str,
        to: &str,
        decided_by: Option<&str>,
        decided_at: Option<aifactory_core::Timestamp>,
        decision: Option<&str>,
    ) -> Result<bool, StoreError> {
        forward!(self, s => s.transition_proposal(seq, from, to, decided_by, decided_at, decision).await)
    }

    /// See [`SqliteStore::save_action`].
    pub async fn save_action(&self, action: &crate::StoredAction) -> Result<(), StoreError> {
        forward!(self, s => s.save_action(action).await)
    }

    /// See [`SqliteStore::action`].
    pub async fn action(&self, id: &str) -> Result<Option<crate::StoredAction>, StoreError> {
        forward!(self, s => s.action(id).await)
    }

    /// See [`SqliteStore::actions`].
    pub async fn actions(
        &self,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<crate::StoredAction>, StoreError> {
        forward!(self, s => s.actions(status, limit).await)
    }

    /// See [`SqliteStore::transition_action`].
    pub async fn transition_action(
        &self,
        id: &str,
        from: &str,
        to: &str,
        decided_by: Option<&str>,
        at: Timestamp,
        result: Option<&str>,
    ) -> Result<bool, StoreError> {
        forward!(self, s => s.transition_action(id, from, to, decided_by, at, result).await)
    }

    /// See [`SqliteStore::append_audit`].
    pub async fn append_audit(&self, entries: &[crate::AuditEntry]) -> Result<(), StoreError> {
        forward!(self, s => s.append_audit(entries).await)
    }

    /// See [`SqliteStore::audit`].
    pub async fn audit(
        &self,
        conversation: Option<&str>,
        limit: u32,
    ) -> Result<Vec<crate::AuditEntry>, StoreError> {
        forward!(self, s => s.audit(conversation, limit).await)
    }

    /// See [`SqliteStore::record_usage`].
    pub async fn record_usage(&self, usage: &crate::UsageRecord) -> Result<(), StoreError> {
        forward!(self, s => s.record_usage(usage).await)
    }

    /// See [`SqliteStore::usage_totals`].
    pub async fn usage_totals(&self) -> Result<Vec<crate::UsageTotal>, StoreError> {
        forward!(self, s => s.usage_totals().await)
    }

    /// See [`SqliteStore::commit_ingest`].
    pub async fn commit_ingest(
        &self,
        batch: &IngestBatch,
        now_ms: i64,
    ) -> Result<IngestReport, StoreError> {
        forward!(self, s => s.commit_ingest(batch, now_ms).await)
    }

    /// See [`SqliteStore::samples`].
    pub async fn samples(
        &self,
        series: &SeriesName,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, f64)>, StoreError> {
        forward!(self, s => s.samples(series, from_ms, to_ms).await)
    }

    /// See [`SqliteStore::other_samples`].
    pub async fn other_samples(
        &self,
        series: &SeriesName,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, OtherValue)>, StoreError> {
        forward!(self, s => s.other_samples(series, from_ms, to_ms).await)
    }

    /// See [`SqliteStore::series_counts`].
    pub async fn series_counts(&self) -> Result<BTreeMap<SeriesName, u64>, StoreError> {
        forward!(self, s => s.series_counts().await)
    }

    /// See [`SqliteStore::compact`].
    pub async fn compact(&self) -> Result<u64, StoreError> {
        forward!(self, s => s.compact().await)
    }

    /// See [`SqliteStore::latest`].
    pub async fn latest(&self, site: Option<&str>) -> Result<Vec<Latest>, StoreError> {
        forward!(self, s => s.latest(site).await)
    }

    /// See [`SqliteStore::aggregate`].
    pub async fn aggregate(
        &self,
        series: &SeriesName,
        resolution: Resolution,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Bucket>, StoreError> {
        forward!(self, s => s.aggregate(series, resolution, from_ms, to_ms).await)
    }

    /// See [`SqliteStore::prune`].
    pub async fn prune(&self, retention: &Retention) -> Result<PruneReport, StoreError> {
        forward!(self, s => s.prune(retention).await)
    }

    /// See [`SqliteStore::quarantined`].
    pub async fn quarantined(&self, limit: u32) -> Result<Vec<QuarantineRow>, StoreError> {
        forward!(self, s => s.quarantined(limit).await)
    }
}

impl From<SqliteStore> for Store {
    fn from(store: SqliteStore) -> Self {
        Store::Sqlite(store)
    }
}

impl From<PgStore> for Store {
    fn from(store: PgStore) -> Self {
        Store::Postgres(store)
    }
}

/// Whether `location` names a PostgreSQL server rather than a file. The scheme is matched
/// without regard to case, as URL schemes are.
pub fn is_postgres_url(location: &str) -> bool {
    ["postgres://", "postgresql://"].iter().any(|scheme| {
        location
            .get(..scheme.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(scheme))
    })
}

#[cfg(test)]
mod tests {
    use super::is_postgres_url;

    #[test]
    fn urls_choose_postgres_and_paths_choose_sqlite() {
        assert!(is_postgres_url("postgres://u@h/db"));
        assert!(is_postgres_url("PostgreSQL://u@h/db"));
        assert!(!is_postgres_url("plant.db"));
        assert!(!is_postgres_url("/var/lib/aifactory/postgres.db"));
        assert!(!is_postgres_url("pg"));
    }
}
