//! The one error type of the store: a variant per failing operation, so that a caller can tell
//! a refused write (duplicate ledger id) from a broken database.

use crate::RunId;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open store {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    /// A PostgreSQL store that cannot be reached. `url` is the address with any password left
    /// out, so that the error can be logged or shown.
    #[error("cannot connect to store {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot bring the store schema up to date: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("cannot write {what}: {source}")]
    Write {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot read {what}: {source}")]
    Read {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// Ledger entries are never overwritten: a second decision with the same id is refused.
    #[error("decision `{0}` is already in the ledger; ledger entries are never overwritten")]
    DuplicateDecision(String),
    #[error("no decision `{0}` in the ledger")]
    UnknownDecision(String),
    #[error("no plant `{0}` in the store; save the plant before starting a run")]
    UnknownPlant(String),
    #[error("no run {0} in the store")]
    UnknownRun(RunId),
    /// Input the store cannot keep faithfully (e.g. NaN, which SQLite turns into NULL).
    #[error("cannot store {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
    /// A ledger entry whose record is no longer in its table: deleted behind the store's back.
    #[error(
        "ledger row {seq}: its {kind} (row {row_seq} of its table) is gone; it was deleted outside aifactory"
    )]
    LedgerRecordMissing {
        seq: i64,
        kind: String,
        row_seq: i64,
    },
    /// A ledger record that no chain entry points at: inserted behind the store's back.
    #[error(
        "{kind} `{name}` is in the store but not in the ledger's chain; it was written outside aifactory"
    )]
    Unchained { kind: String, name: String },
    /// A stored row that does not decode into its domain type.
    #[error("{what}: the worker thread failed: {detail}")]
    Worker { what: &'static str, detail: String },
    #[error("corrupt {what} in the store: {detail}")]
    Corrupt { what: &'static str, detail: String },
}
